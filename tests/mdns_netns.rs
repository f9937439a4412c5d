//! mDNS discovery for real, with no static peers: two network namespaces joined
//! by a veth pair, each running the real `lanspread` binary via `ip netns exec`.
//! Nothing binds to the host's own interfaces.
//!
//! Needs root (to create namespaces) and `ip` from iproute2. Without them each
//! test writes `SKIPPED <test>: <why>` to stderr and passes; set
//! `LANSPREAD_REQUIRE_NETNS=1` (e.g. in CI) to make a skip a failure instead.
//!
//! Run: `cargo test --test mdns_netns -- --nocapture`

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lanspread");
const PORT: u16 = 47474;
/// Seconds `list` looks for peers, per attempt.
const LIST_WAIT_SECS: u32 = 8;
const LIST_ATTEMPTS: usize = 3;
/// Upper bound for `serve` to log that it listens.
const READY_WAIT: Duration = Duration::from_secs(15);
/// Upper bound for two `serve` processes to see each other's games.
const MUTUAL_WAIT: Duration = Duration::from_secs(30);

/// `list` in namespace B finds `serve` in namespace A by mDNS alone and prints A's game.
#[test]
fn mdns_between_namespaces() {
    let test = "mdns_between_namespaces";
    let Some(mut lan) = TwoHostLan::create(test, 1) else {
        return;
    };
    let started = Instant::now();
    let root = lan.dir.path().to_owned();
    write_game(&root.join("a/games"), "openarena", "20240301", 3000);

    let serve = lan.spawn_serve('a', &root.join("a"));
    serve.wait_for_line("listening on", READY_WAIT);

    let want_peer = format!("{}:{PORT}", lan.addr('a'));
    let mut attempts = Vec::new();
    for attempt in 1..=LIST_ATTEMPTS {
        let out = lan.run_list('b', &root.join("b"));
        let found = out.status.success() && list_has(&out.stdout, "openarena", "20240301", &want_peer);
        if found {
            eprintln!(
                "{test}: `list` in {} found openarena 20240301 at {want_peer} on attempt {attempt} ({:.1}s)",
                lan.ns('b'),
                started.elapsed().as_secs_f64()
            );
            return;
        }
        attempts.push(format!(
            "attempt {attempt}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status, out.stdout, out.stderr
        ));
    }
    panic!(
        "`lanspread list` in {} never showed openarena 20240301 at {want_peer} (no --peer, mDNS only) \
         after {LIST_ATTEMPTS} attempts of {LIST_WAIT_SECS}s\n{}\n=== serve stderr in {} ===\n{}",
        lan.ns('b'),
        attempts.join("\n"),
        lan.ns('a'),
        serve.log()
    );
}

/// Two `serve` peers, one per namespace, each list the other's game, found by mDNS alone.
#[test]
fn mdns_two_servers_see_each_others_games() {
    let test = "mdns_two_servers_see_each_others_games";
    let Some(mut lan) = TwoHostLan::create(test, 2) else {
        return;
    };
    let started = Instant::now();
    let root = lan.dir.path().to_owned();
    write_game(&root.join("a/games"), "openarena", "20240301", 3000);
    write_game(&root.join("b/games"), "xonotic", "0.8.6", 5000);

    let serve_a = lan.spawn_serve('a', &root.join("a"));
    let serve_b = lan.spawn_serve('b', &root.join("b"));
    // What `log_event` in src/main.rs prints once a peer's game list arrives.
    let a_sees = "library: xonotic (Xonotic) remote: local -, latest 0.8.6 on 1 peer(s)";
    let b_sees = "library: openarena (OpenArena) remote: local -, latest 20240301 on 1 peer(s)";
    let deadline = Instant::now() + MUTUAL_WAIT;
    let a_line = serve_a.wait_for_line_until(a_sees, deadline);
    let b_line = serve_b.wait_for_line_until(b_sees, deadline);
    let failure = |what: &str| {
        format!(
            "{what} within {MUTUAL_WAIT:?} (no --peer, mDNS only)\n=== serve stderr in {} ===\n{}\n=== serve stderr in {} ===\n{}",
            lan.ns('a'),
            serve_a.log(),
            lan.ns('b'),
            serve_b.log()
        )
    };
    assert!(a_line.is_some(), "{}", failure("A never logged B's xonotic"));
    assert!(b_line.is_some(), "{}", failure("B never logged A's openarena"));

    // Each knows the other at its veth address and well-known port.
    let (a_addr, b_addr) = (format!("{}:{PORT}", lan.addr('a')), format!("{}:{PORT}", lan.addr('b')));
    let joined = |log: &str, addr: &str| log.lines().any(|l| l.contains("peer joined") && l.contains(addr));
    assert!(
        joined(&serve_a.log(), &b_addr),
        "{}",
        failure(&format!("A never joined {b_addr}"))
    );
    assert!(
        joined(&serve_b.log(), &a_addr),
        "{}",
        failure(&format!("B never joined {a_addr}"))
    );
    eprintln!(
        "{test}: {} and {} saw each other's games ({:.1}s)",
        lan.ns('a'),
        lan.ns('b'),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// Environment

/// Two namespaces `lsp<case><side>-<pid>` joined by one veth pair, with the
/// `serve` processes run inside them. Drop kills the processes, then deletes
/// the namespaces (which destroys the veth pair), even when a test panics.
struct TwoHostLan {
    case: u8,
    namespaces: Vec<String>,
    /// The host-side name of one veth end, deleted in Drop in case it never moved into a namespace.
    veth: Option<String>,
    children: Vec<Arc<Mutex<Child>>>,
    dir: tempfile::TempDir,
}

impl TwoHostLan {
    /// Sets up the namespaces, or reports why not (`None`: the caller returns, i.e. skips).
    fn create(test: &str, case: u8) -> Option<Self> {
        let skip = |why: String| -> Option<Self> {
            let message = format!("SKIPPED {test}: {why}");
            if std::env::var_os("LANSPREAD_REQUIRE_NETNS").is_some_and(|v| !v.is_empty() && v != "0") {
                panic!("{message} (and LANSPREAD_REQUIRE_NETNS is set)");
            }
            // Straight to the process's stderr, past libtest's output capture.
            let _ = writeln!(std::io::stderr(), "{message}");
            None
        };
        match effective_uid() {
            Some(0) => {}
            Some(uid) => return skip(format!("needs root to create network namespaces (euid={uid})")),
            None => return skip("cannot read the effective uid from /proc/self/status".to_owned()),
        }
        if ip_command().is_none() {
            return skip("`ip` (iproute2) not found in /usr/sbin, /sbin, /usr/bin or /bin".to_owned());
        }

        let mut lan = TwoHostLan {
            case,
            namespaces: Vec::new(),
            veth: None,
            children: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for side in ['a', 'b'] {
            let ns = lan.ns(side);
            if let Err(err) = ip(&["netns", "add", &ns]) {
                return skip(format!("`ip netns add {ns}` failed: {err}"));
            }
            lan.namespaces.push(ns);
        }
        let (veth_a, veth_b) = (lan.veth_name('a'), lan.veth_name('b'));
        if let Err(err) = ip(&["link", "add", &veth_a, "type", "veth", "peer", "name", &veth_b]) {
            return skip(format!("cannot create a veth pair: {err}"));
        }
        lan.veth = Some(veth_a);
        for side in ['a', 'b'] {
            let (ns, dev, cidr) = (lan.ns(side), lan.veth_name(side), format!("{}/24", lan.addr(side)));
            ip(&["link", "set", &dev, "netns", &ns]).unwrap();
            ip(&["-n", &ns, "link", "set", "lo", "up"]).unwrap();
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", &dev]).unwrap();
            ip(&["-n", &ns, "link", "set", &dev, "multicast", "on"]).unwrap();
            ip(&["-n", &ns, "link", "set", &dev, "up"]).unwrap();
            // A real LAN has a default route; here multicast at least goes out the veth.
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", &dev]).unwrap();
        }
        for side in ['a', 'b'] {
            std::fs::create_dir_all(lan.dir.path().join(side.to_string()).join("games")).unwrap();
        }
        Some(lan)
    }

    fn ns(&self, side: char) -> String {
        format!("lsp{}{side}-{}", self.case, std::process::id())
    }

    /// At most 15 bytes (IFNAMSIZ): `lsv` + case + side + pid (at most 7 digits).
    fn veth_name(&self, side: char) -> String {
        format!("lsv{}{side}{}", self.case, std::process::id())
    }

    fn addr(&self, side: char) -> String {
        format!("10.213.{}.{}", self.case, if side == 'a' { 1 } else { 2 })
    }

    /// `ip netns exec <ns> lanspread <args>` with the peer's dirs under `root`,
    /// isolated from any config file or `RUST_LOG` of the user running the tests.
    fn command(&self, side: char, root: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(ip_command().unwrap());
        command
            .args(["netns", "exec", &self.ns(side), BIN])
            .args(args)
            .arg("--game-dir")
            .arg(root.join("games"))
            .arg("--state-dir")
            .arg(root.join("state"))
            .args(["--name", &format!("lsp-{side}")])
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("RUST_LOG", "info,quinn=warn,mdns_sd=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    fn spawn_serve(&mut self, side: char, root: &Path) -> LoggedChild {
        let listen = format!("0.0.0.0:{PORT}");
        let mut child = self
            .command(side, root, &["serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn `ip netns exec … lanspread serve`");
        let stderr = child.stderr.take().unwrap();
        self.children.push(Arc::new(Mutex::new(child)));
        LoggedChild::new(stderr)
    }

    /// Runs `list --json` to completion, bounded: killed if it outlives its --wait by far.
    fn run_list(&mut self, side: char, root: &Path) -> ListOutput {
        let wait = LIST_WAIT_SECS.to_string();
        let child = self
            .command(side, root, &["list", "--json", "--wait", &wait])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn `ip netns exec … lanspread list`");
        let child = Arc::new(Mutex::new(child));
        self.children.push(child.clone());
        let (stdout, stderr) = {
            let mut child = child.lock().unwrap();
            (
                read_all(child.stdout.take().unwrap()),
                read_all(child.stderr.take().unwrap()),
            )
        };
        let deadline = Instant::now() + Duration::from_secs(u64::from(LIST_WAIT_SECS) + 30);
        let status = loop {
            if let Some(status) = child.lock().unwrap().try_wait().expect("wait for `list`") {
                break status;
            }
            if Instant::now() >= deadline {
                let mut child = child.lock().unwrap();
                let _ = child.kill();
                break child.wait().expect("reap `list`");
            }
            thread::sleep(Duration::from_millis(50));
        };
        ListOutput {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }
}

impl Drop for TwoHostLan {
    fn drop(&mut self) {
        for child in &self.children {
            let mut child = child.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            if let Err(err) = ip(&["netns", "del", ns]) {
                let _ = writeln!(
                    std::io::stderr(),
                    "mdns_netns cleanup: `ip netns del {ns}` failed: {err}"
                );
            }
        }
        // Only still in the host namespace if moving it failed; deleting one end removes both.
        if let Some(veth) = &self.veth
            && ip(&["link", "show", veth]).is_ok()
        {
            let _ = ip(&["link", "del", veth]);
        }
    }
}

struct ListOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Whether `list --json` output has `id` at `version` with `peer` among its peers.
fn list_has(stdout: &str, id: &str, version: &str, peer: &str) -> bool {
    let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(stdout) else {
        return false;
    };
    rows.iter().any(|row| {
        row["id"] == id
            && row["version"] == version
            && row["peers"]
                .as_array()
                .is_some_and(|peers| peers.iter().any(|p| p == peer))
    })
}

/// A child's stderr, read line by line on a thread: kept whole for failure
/// messages, and fed to a channel for bounded waits.
struct LoggedChild {
    lines: Mutex<mpsc::Receiver<String>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl LoggedChild {
    fn new(stderr: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        LoggedChild {
            lines: Mutex::new(rx),
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        self.wait_for_line_until(needle, Instant::now() + within)
            .unwrap_or_else(|| {
                panic!(
                    "no line containing {needle:?} within {within:?}; stderr:\n{}",
                    self.log()
                )
            })
    }

    /// The first line (including ones already read) containing `needle`, or `None`
    /// at `deadline` or when the process closed its stderr.
    fn wait_for_line_until(&self, needle: &str, deadline: Instant) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return Some(line.clone());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Removes terminal colour sequences (`ESC [ … letter`), in case the logger adds them anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `<game_dir>/<id>/version.ini` holding `version`, plus one data file of `size` bytes.
fn write_game(game_dir: &Path, id: &str, version: &str, size: usize) {
    let root = game_dir.join(id);
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("version.ini"), format!("{version}\n")).unwrap();
    let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(root.join("data/pak0.bin"), bytes).unwrap();
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2)?.parse().ok()
}

fn ip_command() -> Option<PathBuf> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

/// Runs `ip <args>`; the error carries its exit status and stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let ip = ip_command().ok_or("`ip` not found")?;
    let out = Command::new(ip)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run ip: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
