//! End to end in a real terminal: `lanspread demo` in a detached tmux session,
//! keys sent with `send-keys`, the screen read with `capture-pane`. Downloads
//! a game (which installs itself), quits with `q`, and checks the terminal is
//! restored and the demo's files are gone.
//!
//! Needs tmux (`.ci/run` installs it); without it the test says so and passes,
//! unless `LANSPREAD_REQUIRE_TMUX=1` (set in CI) makes that a failure.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lanspread");
/// Bound for each wait on the screen; generous for a loaded 2-core machine.
const SCREEN_WAIT: Duration = Duration::from_secs(90);

struct Session {
    name: String,
}

impl Session {
    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux").args(args).output().expect("tmux runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Polls the screen (bounded) until `done` accepts it.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {SCREEN_WAIT:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).output();
    }
}

fn demo_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("lanspread-demo-"))
        .collect()
}

#[test]
fn demo_downloads_installs_and_quits_cleanly_in_tmux() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("LANSPREAD_REQUIRE_TMUX").is_err(),
            "tmux is required (LANSPREAD_REQUIRE_TMUX is set) but not installed"
        );
        eprintln!("SKIPPED demo_downloads_installs_and_quits_cleanly_in_tmux: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let session = Session {
        name: format!("lanspread-test-{}", std::process::id()),
    };
    // The shell keeps the pane open after the demo exits, so its exit status and the restored screen can be read.
    let command = format!(
        "env TMPDIR={} TERM=xterm-256color {BIN} demo --log-dir {}; echo EXITED:$?; sleep 600",
        tmp.display(),
        dir.path().join("logs").display()
    );
    let started = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session.name,
            "-x",
            "100",
            "-y",
            "30",
            &command,
        ])
        .status()
        .unwrap();
    assert!(started.success());

    session.wait_for("library with the demo games and 3 peers", |screen| {
        screen.contains("OpenArena") && screen.contains("Peers 3")
    });
    assert_eq!(demo_dirs(&tmp).len(), 1, "the demo works in one temp dir");

    // OpenArena is the first row (sorted by name): Enter downloads it, then it installs itself.
    session.keys(&["Enter"]);
    session.wait_for("the install in the log pane", |screen| {
        screen.contains("installed OpenArena")
    });
    let screen = session.wait_for("OpenArena shown as installed", |screen| {
        screen
            .lines()
            .any(|line| line.contains("OpenArena") && line.contains("installed"))
    });
    assert!(screen.contains("downloaded OpenArena 20240301"), "{screen}");

    session.keys(&["q"]);
    let screen = session.wait_for("the demo to exit", |screen| screen.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    assert_eq!(
        session
            .tmux(&["display", "-p", "-t", &session.name, "#{alternate_on}"])
            .trim(),
        "0"
    );
    assert!(!screen.contains("Library"), "the TUI's screen is gone:\n{screen}");
    assert_eq!(demo_dirs(&tmp), Vec::<String>::new(), "the demo removed its files");
}
