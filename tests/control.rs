//! The control socket on real processes: `status` and `events` attach to a running
//! `serve`; two attached front ends see the same events; the socket is 0600 and refused to
//! another user; a SIGKILLed `serve` leaves a stale socket the next start replaces; garbage,
//! oversized and unknown messages get an error and `serve` keeps serving; a front end that
//! stops reading does not stall a download.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Output;

use support::process::{BIN, Lanspread, as_unprivileged, command, free_addr, running_as_root, spawn_get_download};
use support::write_game;

fn socket(root: &Path) -> std::path::PathBuf {
    root.join("state/control.sock")
}

fn status(root: &Path, json: bool) -> Output {
    let args: &[&str] = if json { &["status", "--json"] } else { &["status"] };
    command(root, args).output().unwrap()
}

fn status_json(root: &Path) -> serde_json::Value {
    let out = status(root, true);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A `serve` on loopback sharing openarena; returned once it listens.
fn serve_game(root: &Path) -> (Lanspread, std::net::SocketAddr) {
    write_game(
        &root.join("games"),
        "openarena",
        "20240301",
        &[("oa.zip", support::pseudo_random_bytes(7, 3_000_000))],
    );
    let addr = free_addr();
    let mut serve = Lanspread::serve(root, addr, &[], &[]);
    serve.wait_for_line(&["listening on"]);
    (serve, addr)
}

/// `lanspread events --json` on `root`, returned once attached.
fn follow(root: &Path) -> Lanspread {
    let mut events = Lanspread::spawn(command(root, &["events", "--json"]));
    events.wait_for_line(&["attached to serve"]);
    events
}

#[test]
fn status_and_two_event_streams_follow_a_running_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (root, other) = (dir.path().join("seed"), dir.path().join("other"));
    let (mut serve, addr) = serve_game(&root);
    serve.wait_for_line(&["hashed 1 game(s)"]);

    let status = status_json(&root);
    assert_eq!(status["runtime"]["runtime"], "serve");
    assert_eq!(status["runtime"]["pid"], serve.pid());
    let games = status["snapshot"]["library"]["games"].as_array().unwrap();
    assert!(
        games
            .iter()
            .any(|game| game["id"] == "openarena" && game["local_version"] == "20240301"),
        "{games:?}"
    );
    assert!(
        status["snapshot"]["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line.as_str().unwrap().contains("listening on")),
        "the last log lines come with the snapshot: {status}"
    );
    let text = String::from_utf8(self::status(&root, false).stdout).unwrap();
    assert!(text.starts_with(&format!("serve (pid {})", serve.pid())), "{text}");
    assert!(text.contains("openarena 20240301"), "{text}");

    // Two front ends attached; a second peer joins; both see it, in the same order.
    let (first, second) = (follow(&root), follow(&root));
    let other_addr = free_addr();
    let mut peer = Lanspread::serve(&other, other_addr, &[addr], &[]);
    serve.wait_for_line(&["peer joined", &other_addr.to_string()]);
    peer.wait_for_line(&["library: openarena"]);
    let lines = |events: Lanspread| {
        events.signal("INT");
        let finished = events.finish();
        assert_eq!(finished.code(), Some(0), "{finished}");
        let lines: Vec<serde_json::Value> = finished
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines[0]["type"], "snapshot", "a snapshot comes first");
        let joined = lines
            .iter()
            .position(|line| line["body"]["PeerJoined"]["addr"] == other_addr.to_string())
            .unwrap_or_else(|| panic!("no PeerJoined for {other_addr}: {lines:?}"));
        lines[joined..].to_vec()
    };
    let (first, second) = (lines(first), lines(second));
    let common = first.len().min(second.len());
    assert_eq!(first[..common], second[..common]);
    assert!(serve.child.try_wait().unwrap().is_none(), "serve still runs");
}

#[test]
fn garbage_oversized_and_unknown_messages_get_an_error_and_serve_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("seed");
    let (mut serve, _) = serve_game(&root);
    let answer = |stream: &mut UnixStream| -> serde_json::Value {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    let frame = |body: &[u8]| [&(body.len() as u32).to_be_bytes()[..], body].concat();
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage", frame(b"\x00\x01 not json")),
        ("oversized", u32::MAX.to_be_bytes().to_vec()),
        ("unknown", frame(br#"{"type":"format_disk","body":{}}"#)),
        ("old version", frame(br#"{"type":"hello","body":{"version":0}}"#)),
    ];
    for (case, bytes) in cases {
        let mut stream = UnixStream::connect(socket(&root)).unwrap();
        stream.write_all(&bytes).unwrap();
        let answer = answer(&mut stream);
        assert_eq!(answer["type"], "refused", "{case}: {answer}");
        let reason = answer["body"]["reason"].as_str().unwrap();
        assert!(!reason.is_empty(), "{case}: {reason}");
    }
    serve.wait_for_line(&["a front end was refused"]);
    assert_eq!(status_json(&root)["runtime"]["runtime"], "serve", "serve keeps serving");
}

#[test]
fn a_sigkilled_serve_leaves_a_stale_socket_that_the_next_start_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("seed");
    let (serve, _) = serve_game(&root);
    serve.signal("KILL");
    let _ = serve.finish();
    let meta = std::fs::symlink_metadata(socket(&root)).unwrap();
    assert!(meta.file_type().is_socket(), "the killed serve left its socket");

    let out = status(&root, false);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no lanspread runs on the state dir"), "{stderr}");

    let (again, _) = serve_game(&root);
    assert_eq!(status_json(&root)["runtime"]["pid"], again.pid());
    drop(again);
}

#[test]
fn the_socket_is_0600_and_refused_to_another_user() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("seed");
    let (_serve, _) = serve_game(&root);
    let meta = std::fs::symlink_metadata(socket(&root)).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    if !running_as_root() {
        assert!(
            std::env::var_os("LANSPREAD_REQUIRE_ROOT").is_none(),
            "LANSPREAD_REQUIRE_ROOT is set, but this test does not run as root"
        );
        println!("SKIPPED: another user's attempt needs root (to run as nobody)");
        return;
    }
    // Everything on the way is open to `nobody`: only the socket's own mode refuses it.
    let open = |path: &Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    open(dir.path(), 0o755);
    open(&root, 0o755);
    open(&root.join("state"), 0o755);
    let bin = dir.path().join("lanspread");
    std::fs::copy(BIN, &bin).unwrap();
    let logs = dir.path().join("nobody-logs");
    std::fs::create_dir(&logs).unwrap();
    open(&logs, 0o777);
    let mut command = std::process::Command::new(&bin);
    command
        .args(["status", "--state-dir"])
        .arg(root.join("state"))
        .arg("--log-dir")
        .arg(&logs)
        .env("XDG_CONFIG_HOME", dir.path().join("config"));
    let out = as_unprivileged(command).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to") && stderr.contains("Permission denied"),
        "{stderr}"
    );
    assert_eq!(
        status_json(&root)["runtime"]["runtime"],
        "serve",
        "its owner still attaches"
    );
}

#[test]
fn a_front_end_that_stops_reading_does_not_stall_a_download() {
    let dir = tempfile::tempdir().unwrap();
    let (root, client) = (dir.path().join("seed"), dir.path().join("client"));
    let (mut serve, addr) = serve_game(&root);
    serve.wait_for_line(&["hashed 1 game(s)"]);
    // Attached (a hello, its welcome taken), then never reads again.
    let mut stalled = UnixStream::connect(socket(&root)).unwrap();
    let hello = br#"{"type":"hello","body":{"version":1}}"#;
    stalled.write_all(&(hello.len() as u32).to_be_bytes()).unwrap();
    stalled.write_all(hello).unwrap();
    let mut len = [0u8; 4];
    stalled.read_exact(&mut len).unwrap();

    let get = spawn_get_download(&client, "openarena", &[addr]);
    let finished = get.finish();
    assert_eq!(finished.code(), Some(0), "{finished}");
    assert_eq!(status_json(&root)["runtime"]["runtime"], "serve");
    drop(stalled);
}

#[test]
fn serve_tells_systemd_it_is_ready_once_its_library_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("seed");
    write_game(
        &root.join("games"),
        "openarena",
        "20240301",
        &[("oa.zip", vec![1; 1000])],
    );
    let notify = dir.path().join("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(support::WAIT)).unwrap();
    let mut command = command(&root, &["serve", "--no-mdns", "--listen", "127.0.0.1:0"]);
    command.env("NOTIFY_SOCKET", &notify);
    let serve = Lanspread::spawn(command);
    let mut datagram = [0u8; 4096];
    let len = systemd.recv(&mut datagram).expect("a READY=1 within the wait");
    let ready = String::from_utf8_lossy(&datagram[..len]).into_owned();
    assert!(ready.lines().any(|line| line == "READY=1"), "{ready}");
    assert!(ready.contains("STATUS=serving 1 game(s)"), "{ready}");
    // Ready means a front end can attach and sees the scanned library.
    let status = status_json(&root);
    assert_eq!(status["snapshot"]["library"]["local_scanned"], true);

    serve.signal("TERM");
    let len = systemd.recv(&mut datagram).expect("a STOPPING=1 at shutdown");
    assert_eq!(&datagram[..len], b"STOPPING=1");
    let finished = serve.finish();
    assert_eq!(finished.code(), Some(0), "{finished}");
}

#[test]
fn the_systemd_unit_parses() {
    let Ok(version) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        assert!(
            std::env::var_os("LANSPREAD_REQUIRE_SYSTEMD").is_none(),
            "LANSPREAD_REQUIRE_SYSTEMD is set, but systemd-analyze is missing"
        );
        println!("SKIPPED: systemd-analyze is not installed (Debian package systemd)");
        return;
    };
    assert!(version.status.success());
    // The unit as shipped, with ExecStart pointing at this build (verify checks it exists).
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/lanspread.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/lanspread serve"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lanspread.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/lanspread", BIN)).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn a_front_end_that_asks_serve_to_stop_ends_it_cleanly_and_its_socket_goes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("seed");
    let (mut serve, _) = serve_game(&root);
    let follower = follow(&root);
    let mut stream = UnixStream::connect(socket(&root)).unwrap();
    for message in [
        &br#"{"type":"hello","body":{"version":1}}"#[..],
        br#"{"type":"command","body":"Shutdown"}"#,
    ] {
        stream.write_all(&(message.len() as u32).to_be_bytes()).unwrap();
        stream.write_all(message).unwrap();
    }
    serve.wait_for_line(&["a front end asked this runtime to stop"]);
    let finished = serve.finish();
    assert_eq!(finished.code(), Some(0), "{finished}");
    assert!(!socket(&root).exists(), "the socket is removed");
    // Every attached front end sees the runtime go.
    let follower = follower.finish();
    assert_eq!(follower.code(), Some(0), "{follower}");
    assert!(follower.stderr.contains("the runtime stopped"), "{follower}");
}
