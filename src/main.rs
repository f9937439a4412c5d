//! The `lanspread` command line: parses flags, builds the config, runs a subcommand.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lanspread::catalog::Catalog;
use lanspread::config::{Config, DEFAULT_PORT, PeerArgs};
use lanspread::demo::Demo;
use lanspread::install::unpack::ArchiveUnpacker;
use lanspread::peer::{LibrarySnapshot, PeerCommand, PeerEvent, PeerRuntimeHandle, start_peer};
use lanspread::ui::format::{format_rate, format_size, progress_line};
use lanspread::ui::{TuiContext, run_tui};
use lanspread::{install, logging, ui};
use tokio::signal::unix::{SignalKind, signal};

/// Share PC games across a LAN: peers find each other with mDNS and transfer over QUIC.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    peer: PeerArgs,
    /// Without a command: the terminal UI (library, peers, transfers, log; `?` for keys)
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// A LAN party on this machine: three seed peers on loopback share generated games,
    /// and the terminal UI opens on your own empty peer. Everything is removed on exit.
    Demo,
    /// Run a peer without a user interface (e.g. on a seed box), until Ctrl-C or SIGTERM.
    /// Logs go to stderr and to a daily file in the log dir.
    Serve,
    /// Find peers for a few seconds and print the games they share. Reads nothing
    /// local: it runs on a private temporary game and state dir.
    List {
        /// Print a JSON array of {"id", "name", "version", "size", "peers"} instead of a table
        #[arg(long)]
        json: bool,
        /// Seconds to look for peers (stops earlier once every --peer has answered, when mDNS is off)
        #[arg(long, value_name = "SECS", default_value_t = 3.0)]
        wait: f64,
    },
    /// Download a game from every peer that has its latest version, then install it.
    /// Shows a progress line on stderr when it is a terminal and prints a summary;
    /// exits 0 only when the game is complete (and installed, unless --no-install).
    /// Ctrl-C cancels and cleans up.
    /// Unpack a downloaded game's archives into its `local/` folder (an update if installed).
    Install { id: String },
    /// Remove the installed copy (`local/`) of a game; the downloaded archives stay.
    Uninstall { id: String },
    /// Delete a downloaded game's folder. Refused while it is installed.
    Remove { id: String },
    Get {
        /// The game id, as in `lanspread list`
        id: String,
        /// Only download; do not install afterwards
        #[arg(long)]
        no_install: bool,
        /// Seconds to look for peers that have the game
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        wait: f64,
        /// Streamed install: a peer unpacks and sends the files; no archive is stored here
        /// (for a disk without room for archives plus the install)
        #[arg(long, conflicts_with = "no_install")]
        stream: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("lanspread: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lanspread: {err:#}");
            ExitCode::FAILURE
        }
    };
    // A blocking task still running (an install cut short by shutdown) must not hold the
    // exit: it is left as a crash would leave it, for the journal and startup recovery.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(command) = cli.command else {
        let config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
        return tui(config).await;
    };
    match command {
        Command::Demo => {
            let config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
            demo(&config.log_dir).await
        }
        Command::Serve => {
            let config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))?;
            serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json, wait } => {
            anyhow::ensure!(
                wait.is_finite() && wait > 0.0,
                "--wait must be a positive number of seconds"
            );
            let mut config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
            config.advertise = false;
            // Only remote libraries matter, so `list` works beside a running `serve` on the same dirs.
            let private = tempfile::tempdir().context("cannot create a temporary directory")?;
            config.game_dir = private.path().join("games");
            config.state_dir = private.path().join("state");
            list(config, json, Duration::from_secs_f64(wait)).await
        }
        Command::Install { id } => {
            let config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
            local_operation(config, LocalOperation::Install, id).await
        }
        Command::Uninstall { id } => {
            let config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
            local_operation(config, LocalOperation::Uninstall, id).await
        }
        Command::Remove { id } => {
            let config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
            local_operation(config, LocalOperation::Remove, id).await
        }
        Command::Get {
            id,
            no_install,
            wait,
            stream,
        } => {
            anyhow::ensure!(
                wait.is_finite() && wait > 0.0,
                "--wait must be a positive number of seconds"
            );
            let mut config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
            config.advertise = false;
            config.auto_install = !no_install;
            get(config, id, Duration::from_secs_f64(wait), stream).await
        }
    }
}

/// The terminal UI on a peer. Logs go to the log file only: the TUI owns the terminal.
async fn tui(config: Config) -> anyhow::Result<ExitCode> {
    let _log_guard = logging::init(&config.log_dir, false)
        .with_context(|| format!("cannot set up logging in {}", config.log_dir.display()))?;
    let catalog = load_catalog(&config)?;
    let (game_dir, log_dir) = (config.game_dir.clone(), config.log_dir.clone());
    let mut runtime = start_peer(config, catalog)?;
    let context = TuiContext::new(game_dir, runtime.local_addr()).with_log_dir(log_dir);
    let result = run_tui(&mut runtime, context).await;
    runtime.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn demo(log_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let _log_guard =
        logging::init(log_dir, false).with_context(|| format!("cannot set up logging in {}", log_dir.display()))?;
    eprintln!("lanspread demo: generating games for three seed peers...");
    let demo = Demo::start().await?;
    let config = demo.user_config();
    let (game_dir, listen) = (config.game_dir.clone(), config.listen);
    let result = async {
        let mut runtime = start_peer(config, Catalog::bundled())?;
        let context = TuiContext::new(game_dir, runtime.local_addr()).with_log_dir(log_dir.to_owned());
        let result = run_tui(&mut runtime, context).await;
        runtime.shutdown().await;
        anyhow::Ok(result?)
    }
    .await;
    tracing::info!(%listen, "demo finished; removing its files");
    demo.stop().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

fn load_catalog(config: &Config) -> anyhow::Result<Catalog> {
    Ok(Catalog::load(config.catalog_file.as_deref())?)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _log_guard = logging::init(&config.log_dir, true)
        .with_context(|| format!("cannot set up logging in {}", config.log_dir.display()))?;
    let catalog = load_catalog(&config)?;
    tracing::info!(
        game_dir = %config.game_dir.display(),
        mdns = config.mdns,
        static_peers = config.static_peers.len(),
        "starting lanspread serve"
    );
    let mut runtime = start_peer(config, catalog)?;
    tracing::info!("listening on {}", runtime.local_addr());
    let mut terminate = signal(SignalKind::terminate())?;
    let mut previous = LibrarySnapshot::default();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            event = runtime.next_event() => match event {
                Some(event) => log_event(event, &mut previous),
                None => break,
            },
        }
    }
    tracing::info!("shutting down");
    runtime.shutdown().await;
    Ok(())
}

/// Logs what a headless operator wants to see; the runtime logs membership itself.
fn log_event(event: PeerEvent, previous: &mut LibrarySnapshot) {
    match event {
        PeerEvent::LibraryUpdated(snapshot) => {
            for entry in &snapshot.games {
                if previous.game(&entry.id) != Some(entry) {
                    tracing::info!(
                        "library: {} ({}) {}: local {}, latest {} on {} peer(s)",
                        entry.id,
                        entry.name,
                        entry.state.label(),
                        entry.local_version.as_deref().unwrap_or("-"),
                        entry.latest_version.as_deref().unwrap_or("-"),
                        entry.peers.len()
                    );
                }
            }
            for gone in previous.games.iter().filter(|old| snapshot.game(&old.id).is_none()) {
                tracing::info!("library: {} ({}) is no longer available", gone.id, gone.name);
            }
            *previous = snapshot;
        }
        PeerEvent::RuntimeFailed { component, error } => tracing::error!("{component}: {error}"),
        PeerEvent::GameFilesUnavailable { id, reason } => tracing::warn!("{id}: {reason}"),
        _ => {}
    }
}

async fn list(config: Config, json: bool, wait: Duration) -> anyhow::Result<ExitCode> {
    let _log_guard = logging::init(&config.log_dir, false)
        .with_context(|| format!("cannot set up logging in {}", config.log_dir.display()))?;
    let catalog = load_catalog(&config)?;
    let wait_for_all_static = !config.mdns && !config.static_peers.is_empty();
    let static_count = config.static_peers.len();
    let mut runtime = start_peer(config, catalog)?;
    let mut snapshot = LibrarySnapshot::default();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            event = runtime.next_event() => match event {
                Some(PeerEvent::LibraryUpdated(update)) => {
                    snapshot = update;
                    let all_answered = snapshot.peers.len() >= static_count
                        && snapshot.peers.iter().all(|peer| peer.library_loaded);
                    if wait_for_all_static && all_answered {
                        break;
                    }
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    runtime.shutdown().await;

    if snapshot.peers.is_empty() {
        eprintln!(
            "lanspread: no peer answered within {:.1}s; check the --peer addresses, that peers run `lanspread serve`, \
             and that mDNS (UDP 5353) reaches this network",
            wait.as_secs_f64()
        );
        return Ok(ExitCode::from(2));
    }
    let rows = ui::table::remote_rows(&snapshot);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("{} peer(s) answered, sharing no games.", snapshot.peers.len());
    } else {
        print!("{}", ui::table::render_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// How long `get` keeps looking for more peers with the game after the first one answered.
const GET_SETTLE: Duration = Duration::from_millis(1500);

async fn get(config: Config, id: String, wait: Duration, stream: bool) -> anyhow::Result<ExitCode> {
    let _log_guard = logging::init(&config.log_dir, false)
        .with_context(|| format!("cannot set up logging in {}", config.log_dir.display()))?;
    let catalog = load_catalog(&config)?;
    anyhow::ensure!(
        catalog.contains(&id),
        "{id:?} is not in the catalog; see `lanspread list` for what peers share, or add it with --catalog"
    );
    let only_static_peers = !config.mdns;
    let static_count = config.static_peers.len();
    let install = config.auto_install;
    let mut runtime = start_peer(config, catalog)?;
    let mode = match (stream, install) {
        (true, _) => GetMode::Stream,
        (false, true) => GetMode::DownloadAndInstall,
        (false, false) => GetMode::Download,
    };
    let code = get_with(&mut runtime, &id, wait, only_static_peers, static_count, mode).await;
    runtime.shutdown().await;
    code
}

async fn get_with(
    runtime: &mut PeerRuntimeHandle,
    id: &str,
    wait: Duration,
    only_static_peers: bool,
    static_count: usize,
    mode: GetMode,
) -> anyhow::Result<ExitCode> {
    // 1. Find the peers that have the game's latest version.
    let deadline = tokio::time::Instant::now() + wait;
    let mut settle_until: Option<tokio::time::Instant> = None;
    let mut snapshot = LibrarySnapshot::default();
    loop {
        let until = settle_until.map_or(deadline, |settle| settle.min(deadline));
        let event = tokio::select! {
            () = tokio::time::sleep_until(until) => break,
            event = runtime.next_event() => event,
        };
        let Some(PeerEvent::LibraryUpdated(update)) = event else {
            continue;
        };
        snapshot = update;
        let all_answered = snapshot.peers.len() >= static_count && snapshot.peers.iter().all(|p| p.library_loaded);
        if only_static_peers && all_answered {
            break;
        }
        if snapshot.game(id).is_some_and(|game| !game.peers.is_empty()) {
            settle_until.get_or_insert_with(|| tokio::time::Instant::now() + GET_SETTLE);
        }
    }
    let Some(entry) = snapshot.game(id).filter(|game| !game.peers.is_empty()) else {
        eprintln!(
            "lanspread: no peer shares {id} ({} peer(s) answered within {:.1}s)",
            snapshot.peers.len(),
            wait.as_secs_f64()
        );
        return Ok(ExitCode::from(2));
    };
    let latest = entry.latest_version.clone().unwrap_or_default();
    if mode == GetMode::Stream {
        return stream_install_with(runtime, id, &latest).await;
    }
    if entry.local_version.as_deref() == Some(latest.as_str()) {
        println!("{id} {latest} is already downloaded");
        return Ok(ExitCode::SUCCESS);
    }

    // 2. The file list, then the download.
    runtime.send(PeerCommand::GetGame { id: id.to_owned() }).await?;
    let files = loop {
        match runtime.next_event().await {
            Some(PeerEvent::GotGameFiles { id: got, files, .. }) if got == id => break files,
            Some(PeerEvent::GameFilesUnavailable { id: got, reason }) if got == id => {
                eprintln!("lanspread: cannot get {id}: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Some(_) => {}
            None => anyhow::bail!("the peer runtime stopped"),
        }
    };
    runtime
        .send(PeerCommand::DownloadGameFiles {
            id: id.to_owned(),
            files,
        })
        .await?;

    use std::io::{IsTerminal, Write};
    let show_progress = std::io::stderr().is_terminal();
    let mut cancelled = false;
    loop {
        let event = next_event_or_cancel(runtime, id, &mut cancelled).await?;
        match event {
            Some(PeerEvent::DownloadGameFilesBegin {
                version,
                total_bytes,
                peers,
                ..
            }) => {
                eprintln!(
                    "downloading {id} {version} ({}) from {} peer(s)",
                    format_size(total_bytes),
                    peers.len()
                );
            }
            Some(PeerEvent::DownloadPeersExcluded { peers, .. }) => {
                for (addr, why) in peers {
                    eprintln!("left out {addr}: {why}");
                }
            }
            Some(PeerEvent::DownloadProgress(progress)) if show_progress => {
                eprint!("\r{}\x1b[K", progress_line(&progress));
                let _ = std::io::stderr().flush();
            }
            Some(PeerEvent::DownloadGameFilesFinished { version, summary, .. }) => {
                if show_progress {
                    eprint!("\r\x1b[K");
                }
                let seconds = summary.elapsed.as_secs_f64();
                println!(
                    "downloaded {id} {version}: {} bytes in {seconds:.2} s ({}) from {} peer(s)",
                    summary.bytes,
                    format_rate(summary.bytes as f64 / seconds.max(1e-9)),
                    summary.peers_used.len()
                );
                if mode == GetMode::Download {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Some(PeerEvent::InstallGameBegin { .. }) => eprintln!("installing {id}..."),
            Some(PeerEvent::InstallGameProgress { files, bytes, .. }) if show_progress => {
                eprint!("\r{files} files, {} extracted\x1b[K", format_size(bytes));
                let _ = std::io::stderr().flush();
            }
            Some(PeerEvent::InstallGameFinished { updated, .. }) => {
                if show_progress {
                    eprint!("\r\x1b[K");
                }
                println!("{} {id}", if updated { "updated" } else { "installed" });
                return Ok(ExitCode::SUCCESS);
            }
            Some(PeerEvent::InstallGameFailed { reason, .. }) => {
                eprintln!("\nlanspread: {id} was downloaded but its install failed: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Some(PeerEvent::DownloadGameFilesFailed { reason, .. }) => {
                eprintln!("\nlanspread: download of {id} failed: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Some(PeerEvent::DownloadGameFilesCancelled { .. }) => {
                eprintln!("lanspread: download of {id} cancelled; partial files removed");
                return Ok(ExitCode::from(130));
            }
            Some(PeerEvent::OperationRefused { id: got, reason }) if got == id => {
                eprintln!("lanspread: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Some(_) => {}
            None => anyhow::bail!("the peer runtime stopped"),
        }
    }
}

#[derive(Clone, Copy)]
enum LocalOperation {
    Install,
    Uninstall,
    Remove,
}

/// Runs an install-side transaction on the local game dir, without the network.
/// Like every command, it first takes the state-dir lock and runs startup recovery.
async fn local_operation(config: Config, operation: LocalOperation, id: String) -> anyhow::Result<ExitCode> {
    let _log_guard = logging::init(&config.log_dir, false)
        .with_context(|| format!("cannot set up logging in {}", config.log_dir.display()))?;
    let catalog = load_catalog(&config)?;
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<(String, install::Completed)> {
        let _locks = install::OwnerLocks::acquire(&config.state_dir, &config.game_dir)?;
        let report = install::recover(&config.game_dir, &config.state_dir);
        for problem in &report.left_alone {
            eprintln!("lanspread: recovery left alone {problem}");
        }
        let transaction = install::Transaction {
            game_dir: &config.game_dir,
            state_dir: &config.state_dir,
            id: &id,
            failpoints: install::Failpoints::default(),
        };
        let root = config.game_dir.join(&id);
        Ok(match operation {
            LocalOperation::Install => {
                anyhow::ensure!(catalog.contains(&id), "{id:?} is not in the catalog");
                let completed = transaction.install_downloaded(&ArchiveUnpacker, &mut |_| {}, &|| false)?;
                let verb = if completed.updated { "updated" } else { "installed" };
                (format!("{verb} {id} into {}", root.join("local").display()), completed)
            }
            LocalOperation::Uninstall => (
                format!("uninstalled {id} (removed {})", root.join("local").display()),
                transaction.uninstall()?,
            ),
            LocalOperation::Remove => (
                format!("removed {id} ({})", root.display()),
                transaction.remove_downloaded(&catalog)?,
            ),
        })
    })
    .await?;
    match outcome {
        Ok((message, completed)) => {
            println!("{message}");
            for warning in completed.warnings {
                eprintln!("lanspread: warning: {warning} (startup recovery will finish it)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("lanspread: {err:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GetMode {
    Download,
    DownloadAndInstall,
    Stream,
}

/// `get --stream`: the same progress line and summary, for a streamed install.
async fn stream_install_with(runtime: &mut PeerRuntimeHandle, id: &str, version: &str) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal, Write};
    runtime
        .send(PeerCommand::StreamInstallGame { id: id.to_owned() })
        .await?;
    let show_progress = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let (mut files, mut bytes) = (0, 0);
    let mut cancelled = false;
    loop {
        let event = next_event_or_cancel(runtime, id, &mut cancelled).await?;
        match event {
            Some(PeerEvent::InstallGameBegin { .. }) => eprintln!("stream-installing {id} {version}"),
            Some(PeerEvent::StreamInstallAttemptFailed { peer, reason, .. }) => {
                eprintln!("\n{peer} failed ({reason}); trying the next peer");
            }
            Some(PeerEvent::InstallGameProgress { files: f, bytes: b, .. }) => {
                (files, bytes) = (f, b);
                if show_progress {
                    let rate = b as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    eprint!("\r{f} files, {} written  {}\x1b[K", format_size(b), format_rate(rate));
                    let _ = std::io::stderr().flush();
                }
            }
            Some(PeerEvent::InstallGameFinished { updated, .. }) => {
                if show_progress {
                    eprint!("\r\x1b[K");
                }
                let seconds = started.elapsed().as_secs_f64();
                println!(
                    "stream-{} {id} {version}: {bytes} bytes in {files} files, {seconds:.2} s ({})",
                    if updated { "updated" } else { "installed" },
                    format_rate(bytes as f64 / seconds.max(1e-9)),
                );
                return Ok(ExitCode::SUCCESS);
            }
            Some(PeerEvent::InstallGameFailed { reason, .. }) => {
                eprintln!("\nlanspread: streamed install of {id} failed: {reason}");
                return Ok(if cancelled {
                    ExitCode::from(130)
                } else {
                    ExitCode::FAILURE
                });
            }
            Some(PeerEvent::OperationRefused { id: got, reason }) if got == id => {
                eprintln!("lanspread: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Some(_) => {}
            None => anyhow::bail!("the peer runtime stopped"),
        }
    }
}

/// The next runtime event. The first Ctrl-C cancels the operation on `id`;
/// its end then still arrives as an event.
async fn next_event_or_cancel(
    runtime: &mut PeerRuntimeHandle,
    id: &str,
    cancelled: &mut bool,
) -> anyhow::Result<Option<PeerEvent>> {
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c(), if !*cancelled => {
                *cancelled = true;
                eprintln!("\ncancelling...");
                runtime.send(PeerCommand::CancelDownload { id: id.to_owned() }).await?;
            }
            event = runtime.next_event() => return Ok(event),
        }
    }
}
