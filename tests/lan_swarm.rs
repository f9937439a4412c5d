//! The swarm harness `scripts/lan-swarm` on a small LAN: a seed and 3 `get`s in
//! network namespaces on one bridge, links shaped to 10 MB/s, a 30 MB game, found
//! by mDNS alone (slow enough that the downloads overlap long enough to swarm).
//! Every copy must be byte-identical and every `get` must finish; and, since the
//! `get`s serve each other the blocks they have verified, the seed must upload less
//! than one game per downloader. No timing assertions.
//!
//! Needs root, `ip` (iproute2) and `tc`. Without them the test writes
//! `SKIPPED lan_swarm: <why>` to stderr and passes; set `LANSPREAD_REQUIRE_NETNS=1`
//! (e.g. in CI) to make a skip a failure instead.
//!
//! Run: `cargo test --release --test lan_swarm -- --nocapture`

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lanspread");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lan-swarm");
const PEERS: u32 = 4;
const RATE_MBPS: u32 = 10;
const SIZE_MB: u32 = 30;
/// Upper bound for the whole script; it takes about 10 s here. After it, SIGTERM
/// (the script's trap removes its namespaces), then SIGKILL after [`CLEANUP_WAIT`].
const RUN_WAIT: Duration = Duration::from_secs(90);
const CLEANUP_WAIT: Duration = Duration::from_secs(15);
/// The script's exit code when the environment could not be set up (a skip, not a failure).
const SETUP_FAILED: i32 = 3;
const SBIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn lan_swarm() {
    let test = "lan_swarm";
    if let Err(why) = environment() {
        skip(test, &why);
        return;
    }
    let args = [
        "--peers".to_owned(),
        PEERS.to_string(),
        "--rate".to_owned(),
        RATE_MBPS.to_string(),
        "--size".to_owned(),
        SIZE_MB.to_string(),
        "--skip-alone".to_owned(),
        "--bin".to_owned(),
        BIN.to_owned(),
    ];
    let started = Instant::now();
    let run = run_script(&args);
    let output = format!(
        "`{SCRIPT} {}` exited with {} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        run.status,
        started.elapsed().as_secs_f64(),
        run.stdout,
        run.stderr
    );
    assert!(
        !run.timed_out,
        "the script outlived {RUN_WAIT:?} and was stopped\n{output}"
    );
    if run.status.code() == Some(SETUP_FAILED) {
        skip(test, &format!("the LAN could not be set up\n{output}"));
        return;
    }

    let result = parse_result(&run.stdout).unwrap_or_else(|| panic!("no RESULT line\n{output}"));
    let field = |key: &str| -> &str {
        result
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("RESULT has no {key}=\n{output}"))
    };
    let count = |key: &str| -> u32 {
        field(key)
            .parse()
            .unwrap_or_else(|_| panic!("RESULT {key}={} is not a count\n{output}", field(key)))
    };
    let gets = PEERS - 1;
    assert_eq!(count("gets"), gets, "{output}");
    assert_eq!(
        field("all_identical"),
        "1",
        "a copy differs from the seed's game\n{output}"
    );
    assert_eq!(count("finished"), gets, "not every get exited 0\n{output}");
    assert_eq!(field("all_ok"), "1", "{output}");
    assert!(
        run.status.success(),
        "every get finished and is identical, yet the script failed\n{output}"
    );
    eprintln!("{}", run.stdout);

    // Without a swarm every byte comes from the seed: (N-1) games plus protocol overhead.
    let ratio: f64 = field("seed_upload_ratio")
        .parse()
        .unwrap_or_else(|_| panic!("RESULT seed_upload_ratio is not a number\n{output}"));
    assert!(
        ratio < f64::from(gets),
        "the seed uploaded {ratio} times the game to {gets} downloaders (its veth's tx_bytes): \
         not less than one game per downloader, so the downloaders did not share blocks \
         with each other\n{output}"
    );
}

/// Root, `ip` and `tc`, or why not.
fn environment() -> Result<(), String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Err(format!("needs root to create network namespaces (euid={uid})")),
        None => return Err("cannot read the effective uid from /proc/self/status".to_owned()),
    }
    for tool in ["ip", "tc", "bash"] {
        if find_tool(tool).is_none() {
            return Err(format!("`{tool}` not found in {SBIN_PATH}"));
        }
    }
    Ok(())
}

fn skip(test: &str, why: &str) {
    let message = format!("SKIPPED {test}: {why}");
    if std::env::var_os("LANSPREAD_REQUIRE_NETNS").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{message} (and LANSPREAD_REQUIRE_NETNS is set)");
    }
    // Straight to the process's stderr, past libtest's output capture.
    let _ = writeln!(std::io::stderr(), "{message}");
}

struct Run {
    status: ExitStatus,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

/// The running script; Drop stops it with SIGTERM (its trap cleans up the namespaces),
/// then SIGKILL if it has not exited within [`CLEANUP_WAIT`], also when the test panics.
struct Script(Option<Child>);

impl Script {
    fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.0.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + CLEANUP_WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = writeln!(
            std::io::stderr(),
            "lan_swarm: the script ignored SIGTERM for {CLEANUP_WAIT:?}; killing it (namespaces lsw-{pid}-* may be left)"
        );
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the script to completion, bounded by [`RUN_WAIT`].
fn run_script(args: &[String]) -> Run {
    let path = match std::env::var("PATH") {
        Ok(path) if !path.is_empty() => format!("{SBIN_PATH}:{path}"),
        _ => SBIN_PATH.to_owned(),
    };
    let mut child = Command::new(find_tool("bash").unwrap())
        .arg(SCRIPT)
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn scripts/lan-swarm");
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    let mut script = Script(Some(child));
    let deadline = Instant::now() + RUN_WAIT;
    let mut timed_out = false;
    let status = loop {
        let child = script.0.as_mut().unwrap();
        if let Some(status) = child.try_wait().expect("wait for the script") {
            script.0 = None;
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break script.stop().expect("the script's exit status");
        }
        thread::sleep(Duration::from_millis(100));
    };
    Run {
        status,
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The `key=value` pairs of the last `RESULT` line.
fn parse_result(stdout: &str) -> Option<HashMap<String, String>> {
    let line = stdout.lines().rev().find(|line| line.starts_with("RESULT "))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
    )
}

fn read_all(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2)?.parse().ok()
}

fn find_tool(name: &str) -> Option<PathBuf> {
    SBIN_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}
