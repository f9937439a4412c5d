//! Transfer benchmark for the download pipeline (DESIGN.md, "Performance").
//!
//! ```text
//! cargo run --release --example transfer_bench -- [--size-gib N] [--files K] [--repeat R] [--only r2,r1,a,b,c,d]
//! ```
//!
//! Generates a synthetic `openarena` game (K payload files + `version.ini`)
//! under a temp dir in `$TMPDIR` (or /tmp), then measures in one process, on
//! the same files:
//!
//! - r2: a plain TCP copy over 127.0.0.1, file to file, 1 MiB buffers;
//! - r1: a raw quinn copy (both endpoints from `make_endpoint`, so identical
//!   transport settings), one bi stream per file, 1 MiB reads on the server,
//!   1 MiB batched writes on the client; the transport's own limit;
//! - a: a lanspread download from one in-process peer on loopback;
//! - b: from three peers each capped at 100 MB/s (reference: 300 MB/s);
//! - c: from three peers, one capped at 10 MB/s (reference: the fast 200 MB/s);
//! - d: a resume. A download from one peer (as a) runs in a tokio runtime of its own, which is
//!   shut down once a progress sample passes half the bytes: its tasks are dropped mid-flight,
//!   without the cancel that would discard the payload, so the resume journal and the verified
//!   blocks stay on disk as after a SIGKILL (blocking writes already started may finish, as a
//!   killed process's page cache would keep them). A new downloading runtime on the same game
//!   and state dirs, against the same still-running server (which may still be sending into the
//!   dead connection until its idle timeout), then finishes it. Only this second part is timed,
//!   from its `DownloadGameFiles` (planning what is on disk included) to the commit; its ratio
//!   is its time over a's (goal: <= 0.55), and the note gives where the first part stopped and
//!   the second part's fetched and reused bytes (`DownloadSummary`). Selecting d runs a too.
//!
//! Every scenario starts with the source files freshly read (warm page cache),
//! and every copy is `fdatasync`ed before the clock stops, because a download
//! syncs its payload before it commits `version.ini`. Every copy is compared
//! byte for byte with the source afterwards, so a broken transfer fails the run.
//! Peak RSS is the whole process's `VmHWM` (all peers run in-process), reset
//! through `/proc/self/clear_refs` before each scenario. CPU is the whole process's
//! user + system time during the timed part, shown in cores (over the wall time) and in
//! seconds per GiB of payload, which compares runs of different speed, e.g. the cost of
//! block verification against a build without it; for d, per GiB of the whole payload
//! (its note also gives it per fetched GiB).
//!
//! `RUST_LOG=lanspread=debug` shows the peers' logs on stderr.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use lanspread::catalog::Catalog;
use lanspread::config::{Config, Limits};
use lanspread::peer::download::{CHUNK_SIZE, IN_FLIGHT_PER_PEER};
use lanspread::peer::transport::{SERVER_NAME, make_endpoint};
use lanspread::peer::{DownloadProgress, DownloadSummary, PeerCommand, PeerEvent, PeerRuntimeHandle, start_peer};
use lanspread::proto::GameFileDescription;

const GAME_ID: &str = "openarena";
const VERSION_INI: &[u8] = b"version=20240301\n";
/// Read and write buffer of the references.
const BUFFER: usize = 1 << 20;
const MB: f64 = 1e6;
const GIB: f64 = (1u64 << 30) as f64;
const FAST_CAP: u64 = 100_000_000;
const SLOW_CAP: u64 = 10_000_000;
/// How long (d) lets the stopped download's blocking writes finish.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// Bound for everything before the timed part (peers finding each other, file lists).
const SETUP_WAIT: Duration = Duration::from_secs(30);
/// Other processes using more than this many cores during a scenario make it noisy.
const NOISY_CORES: f64 = 0.25;
/// The machine counts as idle below this many busy cores (outside this process).
const IDLE_CORES: f64 = 0.15;

#[derive(Parser)]
#[command(about = "Benchmark lanspread downloads against raw quinn and TCP copies on loopback")]
struct Args {
    /// Total payload size in GiB (fractions allowed)
    #[arg(long, default_value_t = 2.0)]
    size_gib: f64,
    /// Number of payload files
    #[arg(long, default_value_t = 4)]
    files: usize,
    /// Run every scenario this many times; a summary of medians follows
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Run only these scenarios (comma-separated keys: r2, r1, a, b, c, d; d brings a, its reference)
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Before each scenario, wait up to this many seconds for the rest of the machine to go idle; 0: never wait
    #[arg(long, default_value_t = 30)]
    settle: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TcpCopy,
    RawQuinn,
    OnePeer,
    ThreePeers,
    SlowPeer,
    Resume,
}

impl Kind {
    /// In running order: (d) runs after (a), its reference.
    const ALL: [Kind; 6] = [
        Kind::TcpCopy,
        Kind::RawQuinn,
        Kind::OnePeer,
        Kind::ThreePeers,
        Kind::SlowPeer,
        Kind::Resume,
    ];

    fn key(self) -> &'static str {
        match self {
            Kind::TcpCopy => "r2",
            Kind::RawQuinn => "r1",
            Kind::OnePeer => "a",
            Kind::ThreePeers => "b",
            Kind::SlowPeer => "c",
            Kind::Resume => "d",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::TcpCopy => "TCP copy 127.0.0.1",
            Kind::RawQuinn => "raw quinn, stream/file",
            Kind::OnePeer => "lanspread, 1 peer",
            Kind::ThreePeers => "lanspread, 3x100 MB/s",
            Kind::SlowPeer => "lanspread, 2x100+1x10",
            Kind::Resume => "lanspread, resume at 50%",
        }
    }

    /// Upload caps of the serving peers, for the lanspread scenarios.
    fn caps(self) -> Option<Vec<Option<u64>>> {
        match self {
            Kind::TcpCopy | Kind::RawQuinn => None,
            Kind::OnePeer | Kind::Resume => Some(vec![None]),
            Kind::ThreePeers => Some(vec![Some(FAST_CAP); 3]),
            Kind::SlowPeer => Some(vec![Some(FAST_CAP), Some(FAST_CAP), Some(SLOW_CAP)]),
        }
    }
}

struct Measurement {
    kind: Kind,
    bytes: u64,
    elapsed: Duration,
    /// Process CPU time (user + system) during the scenario, in seconds.
    cpu: f64,
    /// CPU time of everything else on the machine meanwhile, in seconds (noise indicator).
    other_cpu: f64,
    /// RSS when the scenario started (memory kept from earlier scenarios) and its peak.
    start_rss_kib: Option<u64>,
    peak_rss_kib: Option<u64>,
    /// From the last payload byte written to the end: mostly the final fdatasync.
    tail: Option<Duration>,
    /// Extra facts shown under the table (per-peer shares).
    note: String,
}

impl Measurement {
    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / MB
    }

    /// CPU seconds per GiB of payload: what the scenario costs, whatever the machine's speed.
    fn cpu_per_gib(&self) -> f64 {
        self.cpu / (self.bytes as f64 / GIB)
    }

    /// Whether other processes used enough CPU meanwhile to distort the number.
    fn noisy(&self) -> bool {
        self.other_cpu / self.elapsed.as_secs_f64() > NOISY_CORES
    }
}

#[derive(Clone)]
struct PayloadFile {
    rel: String,
    size: u64,
}

/// Where everything lives: the generated game and one game dir per serving peer.
struct Layout {
    base: PathBuf,
    /// `<base>/master/openarena`
    master: PathBuf,
    files: Vec<PayloadFile>,
    total: u64,
}

impl Layout {
    fn server_root(&self, index: usize) -> PathBuf {
        self.base.join(format!("server{index}"))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = Args::parse();
    ensure!(args.size_gib > 0.0, "--size-gib must be positive");
    ensure!(args.files > 0, "--files must be at least 1");
    ensure!(args.repeat > 0, "--repeat must be at least 1");
    let selected: Vec<Kind> = if args.only.is_empty() {
        Kind::ALL.to_vec()
    } else {
        let mut kinds = Vec::new();
        for key in &args.only {
            let kind = Kind::ALL
                .into_iter()
                .find(|kind| kind.key() == key.trim())
                .ok_or_else(|| anyhow!("unknown scenario {key:?}; use r2, r1, a, b, c, d"))?;
            kinds.push(kind);
        }
        // A resume is reported against a full download measured in the same run.
        if kinds.contains(&Kind::Resume) {
            kinds.push(Kind::OnePeer);
        }
        Kind::ALL.into_iter().filter(|kind| kinds.contains(kind)).collect()
    };

    let temp = tempfile::Builder::new()
        .prefix("transfer_bench.")
        .tempdir_in(std::env::temp_dir())
        .context("cannot create the temp dir")?;
    let outcome = tokio::select! {
        outcome = bench(&args, &selected, temp.path()) => outcome,
        () = interrupted() => {
            // Give the blocking writes of the dropped scenario a moment to end before the temp dir goes.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Err(anyhow!("interrupted; the temp dir is removed"))
        }
    };
    // On success, on error and on Ctrl-C alike: the data is gigabytes.
    let closed = temp.close().context("cannot remove the temp dir");
    outcome.and(closed)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

async fn bench(args: &Args, selected: &[Kind], base: &Path) -> Result<()> {
    let layout = make_layout(base, args.size_gib, args.files)?;

    println!("lanspread transfer benchmark");
    println!(
        "  payload: {} files, {:.3} GiB ({} bytes) + version.ini, in {}",
        layout.files.len(),
        layout.total as f64 / f64::from(1 << 30),
        layout.total,
        layout.base.display()
    );
    println!(
        "  pipeline: CHUNK_SIZE = {} MiB, IN_FLIGHT_PER_PEER = {}",
        CHUNK_SIZE >> 20,
        IN_FLIGHT_PER_PEER
    );
    println!(
        "  cpus: {}, runtime: tokio multi-thread (default workers), everything in one process",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  page cache: warm; every scenario starts right after a full read of the source files");
    println!("  copies are fdatasync'ed before the clock stops (as a download does) and verified byte for byte");
    println!(
        "  peak RSS: VmHWM of the whole process, {}",
        if reset_peak_rss() {
            "reset before each scenario"
        } else {
            "NOT resettable here: cumulative since start"
        }
    );

    let started = Instant::now();
    let generator = {
        let (master, files) = (layout.master.clone(), layout.files.clone());
        tokio::task::spawn_blocking(move || generate(&master, &files))
    };
    generator.await.context("generator panicked")??;
    for index in 0..3 {
        link_game(
            &layout.master,
            &layout.server_root(index).join("games").join(GAME_ID),
            &layout.files,
        )?;
    }
    println!("  generated in {:.1} s", started.elapsed().as_secs_f64());

    let mut runs: Vec<Vec<Measurement>> = Vec::new();
    for run in 0..args.repeat {
        println!();
        println!(
            "run {}/{} (load average: {})",
            run + 1,
            args.repeat,
            fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        );
        let mut measurements = Vec::new();
        for &kind in selected {
            if args.settle > 0 && !wait_until_idle(Duration::from_secs(args.settle)).await {
                eprintln!("  the machine stayed busy for {} s; measuring anyway", args.settle);
            }
            let measurement = run_scenario(kind, &layout)
                .await
                .with_context(|| format!("scenario {} ({}) failed", kind.key(), kind.label()))?;
            eprintln!(
                "  {:<3}{:<24} {:>8.1} MB/s in {:.2} s",
                kind.key(),
                kind.label(),
                measurement.mbps(),
                measurement.elapsed.as_secs_f64()
            );
            measurements.push(measurement);
        }
        print_table(&measurements);
        runs.push(measurements);
    }
    if runs.len() > 1 {
        print_summary(&runs, selected);
    }
    Ok(())
}

async fn run_scenario(kind: Kind, layout: &Layout) -> Result<Measurement> {
    match kind.caps() {
        Some(_) if kind == Kind::Resume => resume_download(layout).await,
        Some(caps) => peer_download(kind, layout, &caps).await,
        None => {
            let destination = layout.base.join(format!("copy-{}", kind.key()));
            let _ = fs::remove_dir_all(&destination);
            warm(layout)?;
            let measured = match kind {
                Kind::TcpCopy => {
                    let (sources, targets) = (source_paths(layout), target_paths(layout, &destination)?);
                    let total = layout.total;
                    tokio::task::spawn_blocking(move || tcp_copy(&sources, &targets, total))
                        .await
                        .context("TCP copy panicked")?
                }
                _ => raw_quinn_copy(layout, &destination).await,
            };
            let measurement = measured?;
            verify_copy(layout, &destination, false).await?;
            fs::remove_dir_all(&destination).context("cannot remove the copy")?;
            Ok(measurement)
        }
    }
}

// ---------------------------------------------------------------------------
// Generated data

fn make_layout(base: &Path, size_gib: f64, count: usize) -> Result<Layout> {
    let total = (size_gib * f64::from(1 << 30)) as u64;
    ensure!(total >= count as u64, "{count} files do not fit in {total} bytes");
    let each = total / count as u64;
    let mut sizes = vec![each; count];
    sizes[count - 1] = total - each * (count as u64 - 1);
    // Uneven sizes, so the short last chunk of a file is exercised too.
    if count > 1 && each > 1 << 20 {
        sizes[0] -= 12_345;
        sizes[count - 1] += 12_345;
    }
    let files = sizes
        .into_iter()
        .enumerate()
        .map(|(index, size)| PayloadFile {
            rel: format!("baseoa/pak{index}.pk3"),
            size,
        })
        .collect();
    Ok(Layout {
        base: base.to_owned(),
        master: base.join("master").join(GAME_ID),
        files,
        total,
    })
}

/// Writes the payload files (one thread each, xorshift bytes) and `version.ini`, synced.
fn generate(root: &Path, files: &[PayloadFile]) -> Result<()> {
    std::thread::scope(|scope| {
        let writers: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(index, file)| scope.spawn(move || write_random_file(&root.join(&file.rel), file.size, index as u64)))
            .collect();
        writers
            .into_iter()
            .try_for_each(|writer| writer.join().map_err(|_| anyhow!("generator thread panicked"))?)
    })?;
    fs::write(root.join("version.ini"), VERSION_INI)?;
    File::open(root.join("version.ini"))?.sync_all()?;
    Ok(())
}

fn write_random_file(path: &Path, size: u64, seed: u64) -> Result<()> {
    fs::create_dir_all(path.parent().context("file without a parent")?)?;
    let mut out = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut state = (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buffer = vec![0u8; BUFFER];
    let mut left = size;
    while left > 0 {
        let len = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        for word in buffer[..len].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        out.write_all(&buffer[..len])?;
        left -= len as u64;
    }
    out.sync_all()?;
    Ok(())
}

/// Gives a serving peer its own game dir holding the same game, by hard links.
fn link_game(master: &Path, root: &Path, files: &[PayloadFile]) -> Result<()> {
    let relatives = files.iter().map(|file| file.rel.as_str()).chain(["version.ini"]);
    for relative in relatives {
        let target = root.join(relative);
        fs::create_dir_all(target.parent().context("file without a parent")?)?;
        fs::hard_link(master.join(relative), &target).with_context(|| format!("cannot link {}", target.display()))?;
    }
    Ok(())
}

/// Reads every source file once, so each scenario starts with a warm page cache.
fn warm(layout: &Layout) -> Result<()> {
    back_free_memory(layout.total);
    let mut buffer = vec![0u8; BUFFER];
    for path in source_paths(layout) {
        let mut file = File::open(&path)?;
        while file.read(&mut buffer)? > 0 {}
    }
    Ok(())
}

/// Touches, then frees, twice the payload's size of memory, so the copy's page-cache pages
/// are backed by the host when the clock starts. On a VM whose balloon reports free pages
/// back to the host (this development machine), the first write into a page costs a host
/// fault: a plain 1 GiB pwrite loop took 0.85 s the first time and 0.20 s right after, and
/// which scenario paid that depended on the order they ran in.
fn back_free_memory(payload: u64) {
    let len = usize::try_from(payload * 2).unwrap_or(usize::MAX);
    let mut memory: Vec<u8> = Vec::with_capacity(len);
    for _ in (0..len).step_by(4096) {
        memory.extend_from_slice(&[1u8; 4096]);
    }
    std::hint::black_box(&memory);
}

fn source_paths(layout: &Layout) -> Vec<PathBuf> {
    layout.files.iter().map(|file| layout.master.join(&file.rel)).collect()
}

fn target_paths(layout: &Layout, root: &Path) -> Result<Vec<PathBuf>> {
    let targets: Vec<PathBuf> = layout.files.iter().map(|file| root.join(&file.rel)).collect();
    for target in &targets {
        fs::create_dir_all(target.parent().context("file without a parent")?)?;
    }
    Ok(targets)
}

/// Compares a copy with the generated files, byte for byte (one thread per file).
async fn verify_copy(layout: &Layout, copy: &Path, with_version: bool) -> Result<()> {
    let pairs: Vec<(PathBuf, PathBuf, u64)> = layout
        .files
        .iter()
        .map(|file| (layout.master.join(&file.rel), copy.join(&file.rel), file.size))
        .collect();
    tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let checks: Vec<_> = pairs
                .iter()
                .map(|(source, copy, size)| scope.spawn(move || compare_files(source, copy, *size)))
                .collect();
            checks
                .into_iter()
                .try_for_each(|check| check.join().map_err(|_| anyhow!("verify thread panicked"))?)
        })
    })
    .await
    .context("verification panicked")??;
    if with_version {
        let version = fs::read(copy.join("version.ini")).context("the copy has no version.ini")?;
        ensure!(version == VERSION_INI, "version.ini differs: {version:?}");
    }
    Ok(())
}

fn compare_files(source: &Path, copy: &Path, size: u64) -> Result<()> {
    let actual = fs::metadata(copy)
        .with_context(|| format!("{} is missing", copy.display()))?
        .len();
    ensure!(actual == size, "{} has {actual} bytes, expected {size}", copy.display());
    let (mut left, mut right) = (File::open(source)?, File::open(copy)?);
    let (mut a, mut b) = (vec![0u8; BUFFER], vec![0u8; BUFFER]);
    let mut offset = 0u64;
    while offset < size {
        let len = BUFFER.min(usize::try_from(size - offset).unwrap_or(usize::MAX));
        left.read_exact(&mut a[..len])?;
        right.read_exact(&mut b[..len])?;
        if a[..len] != b[..len] {
            let at = a[..len].iter().zip(&b[..len]).position(|(x, y)| x != y).unwrap_or(0);
            bail!(
                "{} differs from the source at byte {}",
                copy.display(),
                offset + at as u64
            );
        }
        offset += len as u64;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Process probes

/// Waits until the rest of the machine used under `IDLE_CORES` for two seconds in a row, at most `limit`.
async fn wait_until_idle(limit: Duration) -> bool {
    let started = Instant::now();
    let mut quiet_seconds = 0;
    while started.elapsed() < limit {
        let (machine, own) = (machine_busy_seconds(), cpu_seconds());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let others = (machine_busy_seconds() - machine) - (cpu_seconds() - own);
        quiet_seconds = if others < IDLE_CORES { quiet_seconds + 1 } else { 0 };
        if quiet_seconds >= 2 {
            return true;
        }
    }
    false
}

/// Starts the clock and the CPU and peak-memory accounting of one scenario.
struct Probe {
    started: Instant,
    cpu: f64,
    machine_cpu: f64,
    start_rss_kib: Option<u64>,
}

impl Probe {
    fn start() -> Self {
        reset_peak_rss();
        Probe {
            start_rss_kib: status_kib("VmRSS:"),
            cpu: cpu_seconds(),
            machine_cpu: machine_busy_seconds(),
            started: Instant::now(),
        }
    }

    fn finish(self, kind: Kind, bytes: u64) -> Measurement {
        let elapsed = self.started.elapsed();
        let cpu = cpu_seconds() - self.cpu;
        Measurement {
            kind,
            bytes,
            elapsed,
            cpu,
            other_cpu: (machine_busy_seconds() - self.machine_cpu - cpu).max(0.0),
            start_rss_kib: self.start_rss_kib,
            peak_rss_kib: status_kib("VmHWM:"),
            tail: None,
            note: String::new(),
        }
    }
}

/// Resets `VmHWM` to the current RSS (Linux >= 4.0).
fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` field of `/proc/self/status`, e.g. `VmHWM:` (peak RSS) or `VmRSS:`.
fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Busy CPU time of the whole machine (`/proc/stat`: all but idle and iowait), in seconds.
fn machine_busy_seconds() -> f64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(index, _)| !matches!(index, 3 | 4))
        .map(|(_, t)| t)
        .sum();
    busy as f64 / 100.0
}

/// User + system CPU time of the whole process (`/proc/self/stat`, USER_HZ = 100).
fn cpu_seconds() -> f64 {
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // Fields after the name start at field 3 (state); utime is field 14, stime 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

// ---------------------------------------------------------------------------
// r2: TCP copy

fn tcp_copy(sources: &[PathBuf], targets: &[PathBuf], total: u64) -> Result<Measurement> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let probe = Probe::start();
    let copied = std::thread::scope(|scope| -> Result<(u64, Instant)> {
        let server = scope.spawn(|| -> Result<()> {
            std::thread::scope(|inner| {
                let mut senders = Vec::new();
                for _ in 0..sources.len() {
                    let (stream, _) = listener.accept()?;
                    senders.push(inner.spawn(move || tcp_send(stream, sources)));
                }
                senders
                    .into_iter()
                    .try_for_each(|sender| sender.join().map_err(|_| anyhow!("TCP sender panicked"))?)
            })
        });
        let receivers: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(index, target)| scope.spawn(move || tcp_receive(addr, index, target)))
            .collect();
        let (mut copied, mut written_at) = (0, probe.started);
        for receiver in receivers {
            let (bytes, at) = receiver.join().map_err(|_| anyhow!("TCP receiver panicked"))??;
            copied += bytes;
            written_at = written_at.max(at);
        }
        server.join().map_err(|_| anyhow!("TCP server panicked"))??;
        Ok((copied, written_at))
    })?;
    let mut measurement = probe.finish(Kind::TcpCopy, total);
    measurement.tail = Some(Instant::now().saturating_duration_since(copied.1));
    ensure!(copied.0 == total, "TCP copied {} of {total} bytes", copied.0);
    Ok(measurement)
}

fn tcp_send(mut stream: TcpStream, sources: &[PathBuf]) -> Result<()> {
    let mut index = [0u8; 4];
    stream.read_exact(&mut index)?;
    let path = sources
        .get(u32::from_be_bytes(index) as usize)
        .context("bad file index")?;
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..read])?;
    }
}

/// Returns the byte count and when the last byte was written (before the sync).
fn tcp_receive(addr: SocketAddr, index: usize, target: &Path) -> Result<(u64, Instant)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(&u32::try_from(index)?.to_be_bytes())?;
    let mut out = File::create(target)?;
    let mut buffer = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        // Fill the whole buffer before writing: >= 1 MiB per write.
        let mut filled = 0;
        while filled < buffer.len() {
            let read = stream.read(&mut buffer[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            break;
        }
        out.write_all(&buffer[..filled])?;
        total += filled as u64;
    }
    let written_at = Instant::now();
    out.sync_data()?;
    Ok((total, written_at))
}

// ---------------------------------------------------------------------------
// r1: raw quinn copy

async fn raw_quinn_copy(layout: &Layout, destination: &Path) -> Result<Measurement> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = make_endpoint(loopback, &Limits::default())?;
    let client = make_endpoint(loopback, &Limits::default())?;
    let server_addr = server.local_addr()?;
    let sources = Arc::new(source_paths(layout));
    let serving = {
        let (server, sources) = (server.clone(), sources.clone());
        tokio::spawn(async move {
            let incoming = server.accept().await.context("the server endpoint closed")?;
            let connection = incoming.await?;
            let mut streams = JoinSet::new();
            // Until the client closes the connection.
            while let Ok((send, recv)) = connection.accept_bi().await {
                streams.spawn(raw_send(send, recv, sources.clone()));
            }
            while let Some(joined) = streams.join_next().await {
                joined??;
            }
            anyhow::Ok(())
        })
    };
    let connection = client.connect(server_addr, SERVER_NAME)?.await?;
    let targets = target_paths(layout, destination)?;

    let probe = Probe::start();
    let mut transfers = JoinSet::new();
    for (index, target) in targets.into_iter().enumerate() {
        transfers.spawn(raw_receive(connection.clone(), index, target));
    }
    let (mut copied, mut written_at) = (0, probe.started);
    while let Some(joined) = transfers.join_next().await {
        let (bytes, at) = joined??;
        copied += bytes;
        written_at = written_at.max(at);
    }
    let mut measurement = probe.finish(Kind::RawQuinn, layout.total);
    measurement.tail = Some(Instant::now().saturating_duration_since(written_at));

    connection.close(quinn::VarInt::from_u32(0), b"done");
    serving.await??;
    client.wait_idle().await;
    server.close(quinn::VarInt::from_u32(0), b"done");
    ensure!(
        copied == layout.total,
        "quinn copied {copied} of {} bytes",
        layout.total
    );
    Ok(measurement)
}

/// Server side of r1: the file index, then the file in 1 MiB reads (as `server.rs` reads).
async fn raw_send(mut send: quinn::SendStream, mut recv: quinn::RecvStream, sources: Arc<Vec<PathBuf>>) -> Result<()> {
    let mut index = [0u8; 4];
    recv.read_exact(&mut index).await?;
    let path = sources
        .get(u32::from_be_bytes(index) as usize)
        .context("bad file index")?;
    let mut file = tokio::fs::File::open(path).await?;
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        send.write_all(&buffer[..read]).await?;
    }
    send.finish()?;
    Ok(())
}

/// Client side of r1: stream pieces batched into >= 1 MiB writes on a blocking thread.
/// Returns the byte count and when the last byte was written (before the sync).
async fn raw_receive(connection: quinn::Connection, index: usize, target: PathBuf) -> Result<(u64, Instant)> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&u32::try_from(index)?.to_be_bytes()).await?;
    send.finish()?;
    let file = Arc::new(tokio::task::spawn_blocking(move || File::create(target)).await??);
    let mut batch = Vec::with_capacity(BUFFER);
    let mut total = 0u64;
    loop {
        let piece = recv.read_chunk(BUFFER, true).await?;
        let finished = piece.is_none();
        if let Some(piece) = piece {
            batch.extend_from_slice(&piece.bytes);
        }
        if batch.len() >= BUFFER || (finished && !batch.is_empty()) {
            let file = file.clone();
            total += batch.len() as u64;
            batch = tokio::task::spawn_blocking(move || (&*file).write_all(&batch).map(|()| batch)).await??;
            batch.clear();
        }
        if finished {
            break;
        }
    }
    let written_at = Instant::now();
    tokio::task::spawn_blocking(move || file.sync_data()).await??;
    Ok((total, written_at))
}

// ---------------------------------------------------------------------------
// a, b, c: lanspread downloads

async fn peer_download(kind: Kind, layout: &Layout, caps: &[Option<u64>]) -> Result<Measurement> {
    let mut servers = Vec::new();
    for (index, cap) in caps.iter().enumerate() {
        servers.push(start_server(&layout.server_root(index), *cap, index)?);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(PeerRuntimeHandle::local_addr).collect();
    let root = layout.base.join(format!("download-{}", kind.key()));
    let _ = fs::remove_dir_all(&root);
    let mut config = Config::for_local_test(&root);
    config.static_peers = addrs.clone();
    config.peer_name = "bench-downloader".to_owned();
    let game_root = config.game_dir.join(GAME_ID);
    let mut downloader = start_peer(config, Catalog::bundled())?;
    let mut events = downloader.take_events().context("the event receiver is gone")?;

    let outcome = drive_download(kind, layout, &downloader, &mut events, &addrs, caps)
        .await
        .map(|(measurement, _)| measurement);
    // Without a receiver the runtime never blocks on events while it shuts down.
    drop(events);
    downloader.shutdown().await;
    for server in servers {
        server.shutdown().await;
    }
    let measurement = outcome?;
    verify_copy(layout, &game_root, true).await?;
    fs::remove_dir_all(&root).context("cannot remove the downloaded copy")?;
    Ok(measurement)
}

/// (d): a one-peer download stopped hard at half, then finished by a new downloading runtime
/// on the same game and state dirs, against the same server; only the second part is timed.
async fn resume_download(layout: &Layout) -> Result<Measurement> {
    let server = start_server(&layout.server_root(0), None, 0)?;
    let addrs = vec![server.local_addr()];
    let root = layout.base.join(format!("download-{}", Kind::Resume.key()));
    let _ = fs::remove_dir_all(&root);
    let mut config = Config::for_local_test(&root);
    config.static_peers = addrs.clone();
    config.peer_name = "bench-downloader".to_owned();
    let game_root = config.game_dir.join(GAME_ID);

    let outcome = async {
        let stopped_at = stopped_download(layout, config.clone()).await?;
        let mut downloader = start_peer(config, Catalog::bundled())?;
        let mut events = downloader.take_events().context("the event receiver is gone")?;
        let outcome = drive_download(Kind::Resume, layout, &downloader, &mut events, &addrs, &[None]).await;
        drop(events);
        downloader.shutdown().await;
        let (mut measurement, summary) = outcome?;
        let fetched = summary.bytes.saturating_sub(summary.reused);
        let note = format!(
            "stopped at {:.1}% verified; then fetched {} bytes ({:.1}%), reused {} bytes ({:.1}%), CPU {:.2} s per fetched GiB; {}",
            percent(stopped_at, layout.total),
            fetched,
            percent(fetched, summary.bytes),
            summary.reused,
            percent(summary.reused, summary.bytes),
            measurement.cpu / (fetched as f64 / GIB),
            measurement.note
        );
        measurement.note = note;
        anyhow::Ok(measurement)
    }
    .await;
    server.shutdown().await;
    let measurement = outcome?;
    verify_copy(layout, &game_root, true).await?;
    fs::remove_dir_all(&root).context("cannot remove the downloaded copy")?;
    Ok(measurement)
}

fn percent(part: u64, whole: u64) -> f64 {
    part as f64 * 100.0 / whole.max(1) as f64
}

/// First part of (d): downloads in a tokio runtime of its own and shuts that runtime down once
/// progress passes half the bytes. Its tasks are dropped mid-flight, without the cancel that
/// would discard the payload, so the journal and the verified blocks stay as after a SIGKILL.
/// Returns the verified bytes of the last progress sample.
async fn stopped_download(layout: &Layout, config: Config) -> Result<u64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stopped-download")
        .build()
        .context("cannot build the downloading runtime")?;
    let handle = runtime.handle().clone();
    // The handle and its event receiver outlive the runtime: dropping the command sender or the
    // receiver first would let the runtime notice and wind down the download on its own terms.
    let mut kept = None;
    let outcome = half_download(layout, &handle, config, &mut kept).await;
    let started = Instant::now();
    // Blocking writes in flight finish (as a killed process's page cache would keep them); the
    // tasks are dropped. Off the async threads: shutting a runtime down may block.
    tokio::task::spawn_blocking(move || runtime.shutdown_timeout(STOP_WAIT))
        .await
        .context("the runtime shutdown panicked")?;
    drop(kept);
    ensure!(
        started.elapsed() < STOP_WAIT,
        "a blocking task of the stopped download still ran after {STOP_WAIT:?}"
    );
    outcome
}

async fn half_download(
    layout: &Layout,
    runtime: &tokio::runtime::Handle,
    config: Config,
    kept: &mut Option<(PeerRuntimeHandle, mpsc::Receiver<PeerEvent>)>,
) -> Result<u64> {
    let mut downloader = {
        let _entered = runtime.enter();
        start_peer(config, Catalog::bundled())?
    };
    let events = downloader.take_events().context("the event receiver is gone")?;
    let (downloader, events) = kept.insert((downloader, events));
    let files = request_file_list(layout, downloader, events, 1).await?;
    downloader
        .send(PeerCommand::DownloadGameFiles {
            id: GAME_ID.into(),
            files,
        })
        .await?;
    let limit = Duration::from_secs(60 + layout.total / 5_000_000);
    wait_for(events, limit, "half of the download", |event| match event {
        PeerEvent::DownloadProgress(progress) if progress.bytes_done * 2 >= progress.total_bytes => {
            Some(Ok(progress.bytes_done))
        }
        PeerEvent::DownloadGameFilesFinished { id, .. } if id == GAME_ID => {
            Some(Err(anyhow!("the download finished before it could be stopped at half")))
        }
        PeerEvent::DownloadGameFilesFailed { id, reason } if id == GAME_ID => {
            Some(Err(anyhow!("DOWNLOAD FAILED: {reason}")))
        }
        PeerEvent::DownloadGameFilesCancelled { id } if id == GAME_ID => Some(Err(anyhow!("download cancelled"))),
        _ => None,
    })
    .await
}

fn start_server(root: &Path, cap: Option<u64>, index: usize) -> Result<PeerRuntimeHandle> {
    let mut config = Config::for_local_test(root);
    config.upload_limit = cap;
    config.peer_name = format!("bench-server{index}");
    let mut server = start_peer(config, Catalog::bundled())?;
    let mut events = server.take_events().context("the event receiver is gone")?;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let PeerEvent::RuntimeFailed { component, error } = event {
                eprintln!("server {index}: {component} failed: {error}");
            }
        }
    });
    Ok(server)
}

/// Waits until the downloader sees every server's library, then asks for the game's file list.
async fn request_file_list(
    layout: &Layout,
    downloader: &PeerRuntimeHandle,
    events: &mut mpsc::Receiver<PeerEvent>,
    count: usize,
) -> Result<Vec<GameFileDescription>> {
    wait_for(events, SETUP_WAIT, "every server's library", |event| match event {
        PeerEvent::LibraryUpdated(snapshot) => snapshot
            .game(GAME_ID)
            .filter(|game| game.peers.len() == count)
            .map(|_| Ok(())),
        _ => None,
    })
    .await?;
    downloader.send(PeerCommand::GetGame { id: GAME_ID.into() }).await?;
    let files: Vec<GameFileDescription> = wait_for(events, SETUP_WAIT, "the file list", |event| match event {
        PeerEvent::GotGameFiles { id, files, peers, .. } if id == GAME_ID => Some(if peers.len() == count {
            Ok(files.clone())
        } else {
            Err(anyhow!("the file list came from {} of {count} peers", peers.len()))
        }),
        PeerEvent::GameFilesUnavailable { id, reason } if id == GAME_ID => Some(Err(anyhow!("no file list: {reason}"))),
        _ => None,
    })
    .await?;
    let payload: u64 = files
        .iter()
        .filter(|file| !file.is_dir && file.path != "version.ini")
        .map(|file| file.size)
        .sum();
    ensure!(
        payload == layout.total,
        "the file list has {payload} bytes, expected {}",
        layout.total
    );
    Ok(files)
}

async fn drive_download(
    kind: Kind,
    layout: &Layout,
    downloader: &PeerRuntimeHandle,
    events: &mut mpsc::Receiver<PeerEvent>,
    addrs: &[SocketAddr],
    caps: &[Option<u64>],
) -> Result<(Measurement, DownloadSummary)> {
    let count = addrs.len();
    let files = request_file_list(layout, downloader, events, count).await?;

    warm(layout)?;
    let probe = Probe::start();
    downloader
        .send(PeerCommand::DownloadGameFiles {
            id: GAME_ID.into(),
            files,
        })
        .await?;
    // Slowest plausible rate 5 MB/s, plus slack.
    let limit = Duration::from_secs(60 + layout.total / 5_000_000);
    let mut last_progress: Option<DownloadProgress> = None;
    // The download emits one last progress sample with every byte done right before it syncs and commits.
    let (mut begun_at, mut received_at) = (None, None);
    // (when, bytes the peers sent so far): the steady rate, without start-up and endgame.
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let summary = wait_for(events, limit, "the download to finish", |event| match event {
        PeerEvent::DownloadGameFilesBegin { .. } => {
            begun_at = Some(Instant::now());
            None
        }
        PeerEvent::DownloadProgress(progress) => {
            if progress.bytes_done == progress.total_bytes && received_at.is_none() {
                received_at = Some(Instant::now());
            }
            samples.push((
                Instant::now(),
                progress.peers.iter().map(|peer| peer.bytes).sum::<u64>(),
            ));
            last_progress = Some(progress.clone());
            None
        }
        PeerEvent::DownloadGameFilesFinished { id, summary, .. } if id == GAME_ID => Some(Ok(summary.clone())),
        PeerEvent::DownloadGameFilesFailed { id, reason } if id == GAME_ID => {
            Some(Err(anyhow!("DOWNLOAD FAILED: {reason}")))
        }
        PeerEvent::DownloadGameFilesCancelled { id } if id == GAME_ID => Some(Err(anyhow!("download cancelled"))),
        PeerEvent::OperationRefused { id, reason } if id == GAME_ID => Some(Err(anyhow!("download refused: {reason}"))),
        PeerEvent::DownloadPeersExcluded { peers, .. } => {
            Some(Err(anyhow!("peers excluded from the download: {peers:?}")))
        }
        _ => None,
    })
    .await?;
    let started = probe.started;
    let mut measurement = probe.finish(kind, layout.total);
    let finished_at = Instant::now();
    measurement.tail = received_at.map(|at| finished_at.saturating_duration_since(at));
    let mut note = String::new();
    // A resume fetches only what the disk lacks; its transfer rate is of those bytes.
    let fetched = layout.total.saturating_sub(summary.reused);
    if let (Some(begun), Some(received)) = (begun_at, received_at) {
        let _ = write!(
            note,
            "setup {:.2} s, transfer {:.2} s ({:.1} MB/s), commit {:.2} s",
            begun.saturating_duration_since(started).as_secs_f64(),
            received.saturating_duration_since(begun).as_secs_f64(),
            fetched as f64 / received.saturating_duration_since(begun).as_secs_f64() / MB,
            finished_at.saturating_duration_since(received).as_secs_f64()
        );
    }
    let from = samples.iter().find(|(_, bytes)| *bytes * 5 >= layout.total);
    let to = samples.iter().rev().find(|(_, bytes)| *bytes * 5 <= layout.total * 4);
    if let (Some(from), Some(to)) = (from, to)
        && to.0 > from.0
        && summary.reused == 0
    {
        let rate = (to.1 - from.1) as f64 / to.0.duration_since(from.0).as_secs_f64() / MB;
        let _ = write!(note, ", steady (20-80%) {rate:.1} MB/s");
    }
    ensure!(
        summary.bytes == layout.total + VERSION_INI.len() as u64,
        "the download reports {} bytes, expected {}",
        summary.bytes,
        layout.total + VERSION_INI.len() as u64
    );
    ensure!(
        summary.peers_used.len() == count,
        "only {} of {count} peers delivered data",
        summary.peers_used.len()
    );
    if count > 1
        && let Some(progress) = last_progress
    {
        note.push_str("; sent per peer (incl. endgame duplicates):");
        for (addr, cap) in addrs.iter().zip(caps) {
            let sent = progress
                .peers
                .iter()
                .find(|peer| peer.addr == *addr)
                .map_or(0, |peer| peer.bytes);
            let cap = cap.map_or("uncapped".to_owned(), |cap| format!("cap {} MB/s", cap / 1_000_000));
            let _ = write!(note, " {:.0} MB ({cap})", sent as f64 / MB);
        }
    }
    measurement.note = note;
    Ok((measurement, summary))
}

/// Receives events until `pick` returns a result, bounded by `limit`.
async fn wait_for<T>(
    events: &mut mpsc::Receiver<PeerEvent>,
    limit: Duration,
    what: &str,
    mut pick: impl FnMut(&PeerEvent) -> Option<Result<T>>,
) -> Result<T> {
    let waited = tokio::time::timeout(limit, async {
        loop {
            let event = events.recv().await.context("the downloading peer stopped")?;
            if let PeerEvent::RuntimeFailed { component, error } = &event {
                eprintln!("downloader: {component} failed: {error}");
            }
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await;
    waited.unwrap_or_else(|_| Err(anyhow!("timed out after {limit:?} waiting for {what}")))
}

// ---------------------------------------------------------------------------
// Reporting

/// A scenario's ratios to its references: (text, ratio), for the references measured. A rate
/// ratio (higher is better), except for (d): its time over a full download's (lower is better).
fn ratios_of(m: &Measurement, measurements: &[Measurement]) -> Vec<(&'static str, f64)> {
    let measured = |wanted: Kind| measurements.iter().find(|other| other.kind == wanted);
    let fast_sum = (2 * FAST_CAP) as f64 / MB;
    let all_caps = (3 * FAST_CAP) as f64 / MB;
    match m.kind {
        Kind::TcpCopy | Kind::RawQuinn => Vec::new(),
        Kind::OnePeer => [("r1 raw quinn", Kind::RawQuinn), ("r2 TCP copy", Kind::TcpCopy)]
            .into_iter()
            .filter_map(|(name, kind)| measured(kind).map(|reference| (name, m.mbps() / reference.mbps())))
            .collect(),
        Kind::ThreePeers => vec![("sum of caps 300 MB/s", m.mbps() / all_caps)],
        Kind::SlowPeer => vec![("fast peers' 200 MB/s", m.mbps() / fast_sum)],
        Kind::Resume => measured(Kind::OnePeer)
            .map(|full| {
                (
                    "time/a's, goal <= 0.55",
                    m.elapsed.as_secs_f64() / full.elapsed.as_secs_f64(),
                )
            })
            .into_iter()
            .collect(),
    }
}

fn print_table(measurements: &[Measurement]) {
    println!();
    println!(
        "{:<28} {:>8} {:>6}  {:<22} {:>6} {:>7} {:>6} {:>14} {:>7} {:>6}",
        "scenario", "MB/s", "ratio", "reference", "CPU", "s/GiB", "other", "RSS start/peak", "time", "tail"
    );
    for m in measurements {
        let references = ratios_of(m, measurements);
        let first = references.first();
        let mib = |kib: Option<u64>| kib.map_or("?".to_owned(), |kib| (kib / 1024).to_string());
        let rss = format!("{}/{} MiB", mib(m.start_rss_kib), mib(m.peak_rss_kib));
        println!(
            "{:<28} {:>8.1} {:>6}  {:<22} {:>5.2}c {:>7.2} {:>5.2}c{} {:>14} {:>6.2}s {:>6}",
            format!("{:<3}{}", m.kind.key(), m.kind.label()),
            m.mbps(),
            first.map_or("-".to_owned(), |(_, ratio)| format!("{ratio:.3}")),
            first.map_or("-", |(name, _)| *name),
            m.cpu / m.elapsed.as_secs_f64(),
            m.cpu_per_gib(),
            m.other_cpu / m.elapsed.as_secs_f64(),
            if m.noisy() { "*" } else { " " },
            rss,
            m.elapsed.as_secs_f64(),
            m.tail
                .map_or("?".to_owned(), |tail| format!("{:.2}s", tail.as_secs_f64()))
        );
        for (name, ratio) in references.iter().skip(1) {
            println!("{:<28} {:>8} {:>6.3}  {:<22}", "", "", ratio, name);
        }
    }
    println!("(MB = 10^6 bytes; MB/s = payload bytes / time, for d too (its second part only); CPU = this");
    println!(
        " process's CPU time / wall time, in cores; s/GiB = its CPU seconds per GiB of payload; other = the rest of the"
    );
    println!(" machine's busy CPU meanwhile, in cores (*: over {NOISY_CORES}, something else ran: noisy); RSS = whole");
    println!(" process, start = kept from earlier scenarios; tail = last payload byte written to done, i.e.");
    println!(" the fdatasync (for a download: the commit, which syncs then writes version.ini))");
    for m in measurements.iter().filter(|m| !m.note.is_empty()) {
        println!("{}: {}", m.kind.key(), m.note);
    }
}

fn print_summary(runs: &[Vec<Measurement>], kinds: &[Kind]) {
    println!();
    println!(
        "summary over {} runs: median (min..max), of the runs without noise (n = clean/all) if any",
        runs.len()
    );
    println!(
        "{:<28} {:>24} {:>21} {:>24}  {:<22} {:>5}",
        "scenario", "MB/s", "CPU s/GiB", "ratio", "reference", "n"
    );
    for &kind in kinds {
        // A download's ratio to r1/r2 (a resume's to a) is only clean if those were clean too.
        let clean = |run: &[Measurement]| {
            run.iter()
                .filter(|m| {
                    m.kind == kind
                        || (kind == Kind::OnePeer && m.kind.caps().is_none())
                        || (kind == Kind::Resume && m.kind == Kind::OnePeer)
                })
                .all(|m| !m.noisy())
        };
        let measured: Vec<&Vec<Measurement>> = runs.iter().filter(|run| run.iter().any(|m| m.kind == kind)).collect();
        let clean_runs: Vec<&Vec<Measurement>> = measured.iter().copied().filter(|run| clean(run)).collect();
        let count = format!("{}/{}", clean_runs.len(), measured.len());
        let used = if clean_runs.is_empty() { measured } else { clean_runs };
        let mut speeds = Vec::new();
        let mut cpus = Vec::new();
        let mut ratios: Vec<Vec<f64>> = Vec::new();
        let mut names = Vec::new();
        for run in used {
            let Some(m) = run.iter().find(|m| m.kind == kind) else {
                continue;
            };
            speeds.push(m.mbps());
            cpus.push(m.cpu_per_gib());
            for (slot, (name, ratio)) in ratios_of(m, run).into_iter().enumerate() {
                if ratios.len() <= slot {
                    ratios.push(Vec::new());
                    names.push(name);
                }
                ratios[slot].push(ratio);
            }
        }
        let spread = |values: &mut Vec<f64>, digits: usize| {
            values.sort_by(f64::total_cmp);
            format!(
                "{:.digits$} ({:.digits$}..{:.digits$})",
                values[values.len() / 2],
                values[0],
                values[values.len() - 1]
            )
        };
        let name = format!("{:<3}{}", kind.key(), kind.label());
        if speeds.is_empty() {
            continue;
        }
        let speed = spread(&mut speeds, 1);
        let cpu = spread(&mut cpus, 2);
        if ratios.is_empty() {
            println!("{name:<28} {speed:>24} {cpu:>21} {:>24}  {:<22} {count:>5}", "-", "");
        }
        for (slot, values) in ratios.iter_mut().enumerate() {
            let first = if slot == 0 {
                (name.as_str(), speed.as_str(), cpu.as_str(), count.as_str())
            } else {
                ("", "", "", "")
            };
            println!(
                "{:<28} {:>24} {:>21} {:>24}  {:<22} {:>5}",
                first.0,
                first.1,
                first.2,
                spread(values, 3),
                names[slot],
                first.3
            );
        }
    }
}
