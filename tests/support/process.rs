//! Real `lanspread` processes for tests about processes: kills, signals,
//! locks and two programs at once. A child is killed when its handle drops,
//! so a failing test leaves no process behind.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::WAIT;

pub const BIN: &str = env!("CARGO_BIN_EXE_lanspread");

/// A free UDP port on loopback (released again; the race with other tests is harmless in practice).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free loopback address for a peer to listen on.
pub fn free_addr() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
}

/// `lanspread ARGS --game-dir ROOT/games --state-dir ROOT/state`, ready to spawn or run.
pub fn command(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .arg("--game-dir")
        .arg(root.join("games"))
        .arg("--state-dir")
        .arg(root.join("state"))
        .env("RUST_LOG", "info");
    command
}

/// `lanspread get ID --no-install` from the client at `root`, with `peers` as its only peers.
pub fn spawn_get_download(root: &Path, id: &str, peers: &[SocketAddr]) -> Lanspread {
    let mut args = vec![
        "get",
        id,
        "--no-install",
        "--no-mdns",
        "--listen",
        "127.0.0.1:0",
        "--wait",
        "15",
    ];
    let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
    for peer in &peers {
        args.extend(["--peer", peer]);
    }
    Lanspread::spawn(command(root, &args))
}

/// A running `lanspread` with its stderr lines forwarded to a channel and its stdout collected.
pub struct Lanspread {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Lanspread {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lanspread starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Progress lines end in '\r', not '\n': split on both.
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                for part in String::from_utf8_lossy(&line).split('\r') {
                    let part = part.trim_end_matches('\n');
                    if !part.is_empty() && tx.send(part.to_owned()).is_err() {
                        return;
                    }
                }
                line.clear();
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        Lanspread {
            child,
            lines,
            seen: Vec::new(),
            stdout: Some(stdout),
        }
    }

    /// `lanspread serve` on `listen` with `peers` as static peers, no mDNS.
    pub fn serve(root: &Path, listen: SocketAddr, peers: &[SocketAddr], extra: &[&str]) -> Self {
        let mut args = vec![
            "serve".to_owned(),
            "--no-mdns".to_owned(),
            "--listen".to_owned(),
            listen.to_string(),
        ];
        for peer in peers {
            args.extend(["--peer".to_owned(), peer.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn(command(root, &args))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for a stderr line containing every one of `needles`.
    pub fn wait_for_line(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|needle| line.contains(needle)) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {needles:?} within {WAIT:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit; returns its status, its whole stdout
    /// and every stderr line.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "lanspread did not exit within {WAIT:?}; stderr so far:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let stdout = self.stdout.take().unwrap().join().unwrap_or_default();
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(2)) {
            self.seen.push(line);
        }
        Finished {
            status,
            stdout,
            stderr: std::mem::take(&mut self.seen).join("\n"),
        }
    }
}

impl Drop for Lanspread {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `command` as `nobody` when this runs as root (root may write and connect anywhere);
/// as it is otherwise.
pub fn as_unprivileged(command: Command) -> Command {
    if !running_as_root() {
        return command;
    }
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    wrapped.arg(command.get_program());
    wrapped.args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to this process's effective user.
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}
