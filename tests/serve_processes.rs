//! Two real `lanspread serve` processes on loopback, each other's static peer,
//! see each other's games; `lanspread list` prints them; SIGTERM stops cleanly.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use support::process::{BIN, Lanspread, free_port};
use support::{WAIT, write_game};

#[test]
fn two_serve_processes_see_each_others_games() {
    let dir = tempfile::tempdir().unwrap();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    write_game(
        &root_a.join("games"),
        "openarena",
        "20240301",
        &[("oa.zip", vec![1; 1000])],
    );
    write_game(&root_b.join("games"), "teeworlds", "0.7.5", &[("tw.zip", vec![2; 500])]);
    let addr_a: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let addr_b: SocketAddr = ([127, 0, 0, 1], free_port()).into();

    let mut a = Lanspread::serve(&root_a, addr_a, &[addr_b], &[]);
    let mut b = Lanspread::serve(&root_b, addr_b, &[addr_a], &[]);
    a.wait_for_line(&["library: teeworlds", "remote", "latest 0.7.5 on 1 peer(s)"]);
    b.wait_for_line(&["library: openarena", "remote", "latest 20240301 on 1 peer(s)"]);

    // `list` sees both, as JSON for scripts.
    let output = Command::new(BIN)
        .args(["list", "--json", "--no-mdns", "--wait", "15"])
        .args(["--peer", &addr_a.to_string(), "--peer", &addr_b.to_string()])
        .arg("--game-dir")
        .arg(dir.path().join("lister/games"))
        .arg("--state-dir")
        .arg(dir.path().join("lister/state"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "list failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |id: &str| rows.iter().find(|row| row["id"] == id).unwrap().clone();
    assert_eq!(row("openarena")["version"], "20240301");
    assert_eq!(row("openarena")["name"], "OpenArena");
    assert_eq!(row("openarena")["peers"], serde_json::json!([addr_a.to_string()]));
    assert_eq!(row("teeworlds")["version"], "0.7.5");
    assert_eq!(row("teeworlds")["peers"], serde_json::json!([addr_b.to_string()]));

    // SIGTERM: a clean shutdown with exit status 0, and the log file was written.
    let status = Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    a.wait_for_line(&["peer runtime stopped"]);
    let exit = a.child.wait().unwrap();
    assert!(exit.success(), "serve exited with {exit}");
    let logs: Vec<_> = std::fs::read_dir(root_a.join("state/logs"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        logs.iter()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("lanspread.log")),
        "no log file in {:?}",
        logs
    );

    // b notices that a is gone.
    b.wait_for_line(&["peer left", &addr_a.to_string()]);
}

#[test]
fn a_killed_serve_process_is_pruned_after_the_ping_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "ping_interval_secs = 0.3\npeer_timeout_secs = 1.5\n").unwrap();
    let config = config.to_str().unwrap();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    write_game(&root_b.join("games"), "teeworlds", "0.7.5", &[("tw.zip", vec![2; 500])]);
    let addr_a: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let addr_b: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut a = Lanspread::serve(&root_a, addr_a, &[addr_b], &["--config", config]);
    let mut b = Lanspread::serve(&root_b, addr_b, &[addr_a], &["--config", config]);
    a.wait_for_line(&["library: teeworlds", "on 1 peer(s)"]);

    // SIGKILL: no goodbye, so a only notices through missed pings.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    a.wait_for_line(&["peer left: stopped answering pings", &addr_b.to_string()]);
    // Its games stay listed for a while, saying who had them, so a returning peer
    // does not make the library jump.
    a.wait_for_line(&["library: teeworlds", "on 0 peer(s); gone: ", " left"]);
}

#[test]
fn list_without_any_peer_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let silent: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let output = Command::new(BIN)
        .args(["list", "--no-mdns", "--wait", "1", "--peer", &silent.to_string()])
        .arg("--game-dir")
        .arg(dir.path().join("games"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no peer answered"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn help_explains_every_peer_flag() {
    let output = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--game-dir",
        "--state-dir",
        "--listen",
        "--peer",
        "--catalog",
        "--no-mdns",
        "--log-dir",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
}

fn get_command(dir: &Path, id: &str, peers: &[SocketAddr]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(["get", id, "--no-mdns", "--no-install", "--wait", "15"]);
    for peer in peers {
        command.args(["--peer", &peer.to_string()]);
    }
    command
        .arg("--game-dir")
        .arg(dir.join("games"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap()
}

#[test]
fn get_downloads_a_game_from_every_serve_process() {
    let dir = tempfile::tempdir().unwrap();
    let payload = support::pseudo_random_bytes(7, 20_000_000);
    let files = [("oa.zip", payload.clone()), ("maps/dm1.pk3", vec![3; 4096])];
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    write_game(&root_a.join("games"), "openarena", "20240301", &files);
    write_game(&root_b.join("games"), "openarena", "20240301", &files);
    let addr_a: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let addr_b: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut a = Lanspread::serve(&root_a, addr_a, &[addr_b], &[]);
    let mut b = Lanspread::serve(&root_b, addr_b, &[addr_a], &[]);
    // A new game is announced once hashed; `get` asks each peer once.
    a.wait_for_line(&["hashed 1 game(s)"]);
    b.wait_for_line(&["hashed 1 game(s)"]);

    let client = dir.path().join("client");
    let output = get_command(&client, "openarena", &[addr_a, addr_b]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "get failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("downloaded openarena 20240301: 20004104 bytes (fetched 20004104, reused 0) in "),
        "{stdout}"
    );
    assert!(
        stdout.contains("MB/s") && stdout.contains("from 2 peer(s); seeds sent "),
        "{stdout}"
    );
    let root = client.join("games/openarena");
    assert!(std::fs::read(root.join("oa.zip")).unwrap() == payload);
    assert_eq!(std::fs::read(root.join("maps/dm1.pk3")).unwrap(), vec![3; 4096]);
    assert_eq!(std::fs::read_to_string(root.join("version.ini")).unwrap(), "20240301");

    let again = get_command(&client, "openarena", &[addr_a, addr_b]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already downloaded"));

    let missing = get_command(&client, "xonotic", &[addr_a, addr_b]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no peer shares xonotic"));
    let unknown = get_command(&client, "not-a-game", &[addr_a]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not in the catalog"));
}

#[test]
fn get_survives_a_serve_process_killed_mid_download() {
    let dir = tempfile::tempdir().unwrap();
    let payload = support::pseudo_random_bytes(9, 40_000_000);
    let files = [("oa.zip", payload.clone())];
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    write_game(&root_a.join("games"), "openarena", "20240301", &files);
    write_game(&root_b.join("games"), "openarena", "20240301", &files);
    let addr_a: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let addr_b: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    // Slow enough (2 x 8 MB/s for 40 MB) that the kill lands mid-download.
    let mut a = Lanspread::serve(&root_a, addr_a, &[addr_b], &["--upload-limit", "8"]);
    let mut b = Lanspread::serve(&root_b, addr_b, &[addr_a], &["--upload-limit", "8"]);
    a.wait_for_line(&["hashed 1 game(s)"]);
    b.wait_for_line(&["hashed 1 game(s)"]);

    let client = dir.path().join("client");
    let get = Command::new(BIN)
        .args(["get", "openarena", "--no-mdns", "--no-install", "--wait", "15"])
        .args(["--peer", &addr_a.to_string(), "--peer", &addr_b.to_string()])
        .arg("--game-dir")
        .arg(client.join("games"))
        .arg("--state-dir")
        .arg(client.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The download has begun once its pre-created payload file exists.
    let target = client.join("games/openarena/oa.zip");
    let deadline = Instant::now() + WAIT;
    while !target.exists() {
        assert!(Instant::now() < deadline, "the download never began");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    a.child.kill().unwrap(); // SIGKILL: no goodbye; its chunks stall and go to the other peer
    a.child.wait().unwrap();

    let output = get.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "get failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("downloaded openarena 20240301: 40000008 bytes"),
        "{stdout}"
    );
    assert!(std::fs::read(&target).unwrap() == payload, "the game is byte-identical");
    assert_eq!(
        std::fs::read_to_string(client.join("games/openarena/version.ini")).unwrap(),
        "20240301"
    );
}
