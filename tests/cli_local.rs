//! The local commands (`install`, `uninstall`, `remove`) and `get` with its
//! install, run as real processes: messages, exit codes, the state-dir lock.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::archives::{read_tree, sample_tree, write_zip};

const BIN: &str = env!("CARGO_BIN_EXE_lanspread");

/// `lanspread ARGS` on the dirs under `dir`; the local commands take no network flags.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--game-dir")
        .arg(dir.join("games"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn downloaded_game(dir: &Path) {
    let root = dir.join("games/openarena");
    std::fs::create_dir_all(&root).unwrap();
    write_zip(&root.join("game.zip"), &sample_tree());
    std::fs::write(root.join("version.ini"), "20240301").unwrap();
}

#[test]
fn install_uninstall_and_remove_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    downloaded_game(dir.path());
    let local = dir.path().join("games/openarena/local");

    let out = run(dir.path(), &["install", "openarena"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("installed openarena into "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(read_tree(&local), sample_tree());

    let out = run(dir.path(), &["install", "openarena"]);
    assert!(
        text(&out.stdout).starts_with("updated openarena"),
        "{}",
        text(&out.stdout)
    );

    let out = run(dir.path(), &["remove", "openarena"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is installed; uninstall it before removing"),
        "{}",
        text(&out.stderr)
    );

    let out = run(dir.path(), &["uninstall", "openarena"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!local.exists());

    let out = run(dir.path(), &["install", "xonotic"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("xonotic is not downloaded"),
        "{}",
        text(&out.stderr)
    );

    let out = run(dir.path(), &["remove", "openarena"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!dir.path().join("games/openarena").exists());
}

#[test]
fn a_second_lanspread_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    downloaded_game(dir.path());
    let _held = lanspread::install::StateDirLock::acquire(&dir.path().join("state")).unwrap();
    let out = run(dir.path(), &["install", "openarena"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("another lanspread is using the state dir"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("games/openarena/local").exists(), "nothing happened");
}

/// Starts `serve` for a game dir holding a downloaded game; killed on drop.
struct Seed(std::process::Child, SocketAddr);

impl Seed {
    fn start(seed: &Path) -> Self {
        downloaded_game(seed);
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(BIN)
            .args(["serve", "--no-mdns", "--listen", &addr.to_string()])
            .arg("--game-dir")
            .arg(seed.join("games"))
            .arg("--state-dir")
            .arg(seed.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Seed(child, addr)
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn get_stream_installs_without_storing_archives() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::start(&dir.path().join("seed"));
    let client = dir.path().join("client");
    let out = run(
        &client,
        &[
            "get",
            "openarena",
            "--no-mdns",
            "--stream",
            "--wait",
            "15",
            "--peer",
            &seed.1.to_string(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("stream-installed openarena 20240301: "), "{stdout}");
    assert!(stdout.contains(" files, ") && stdout.contains("MB/s"), "{stdout}");
    let root = client.join("games/openarena");
    assert_eq!(read_tree(&root.join("local")), sample_tree());
    let mut names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".lanspread_installed", "local"],
        "no archive was stored; the record says what is installed"
    );
    let record = std::fs::read_to_string(root.join(".lanspread_installed")).unwrap();
    assert_eq!(record, r#"{"version":"20240301","streamed":true}"#);
}

#[test]
fn get_downloads_and_installs() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed::start(&dir.path().join("seed"));
    let client = dir.path().join("client");
    let out = run(
        &client,
        &[
            "get",
            "openarena",
            "--no-mdns",
            "--wait",
            "15",
            "--peer",
            &seed.1.to_string(),
        ],
    );
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("downloaded openarena 20240301:"), "{stdout}");
    assert_eq!(lines[1], "installed openarena");
    assert_eq!(read_tree(&client.join("games/openarena/local")), sample_tree());
}
