//! One owner per game dir and per state dir, on real `lanspread` processes;
//! and dirs given as relative paths work like absolute ones.

mod support;

use std::path::Path;

use support::process::{Lanspread, command, free_addr};
use support::write_game;

fn seed_game(root: &Path, payload: &[u8]) {
    write_game(
        &root.join("games"),
        "openarena",
        "20240301",
        &[("oa.zip", payload.to_vec())],
    );
}

/// `lanspread ARGS` with an explicit game dir and state dir (not under one root).
fn with_dirs(args: &[&str], game_dir: &Path, state_dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(support::process::BIN);
    command
        .args(args)
        .arg("--game-dir")
        .arg(game_dir)
        .arg("--state-dir")
        .arg(state_dir);
    command
}

#[test]
fn a_second_get_into_the_same_game_dir_is_refused_and_the_first_completes() {
    let dir = tempfile::tempdir().unwrap();
    let payload = support::pseudo_random_bytes(21, 20_000_000);
    let seed_root = dir.path().join("seed");
    seed_game(&seed_root, &payload);
    let seed_addr = free_addr();
    // Slow enough (4 MB/s for 20 MB) that the second get starts while the first downloads.
    let mut seed = Lanspread::serve(&seed_root, seed_addr, &[], &["--upload-limit", "4"]);
    seed.wait_for_line(&["hashed 1 game(s)"]); // announced once hashed

    let games = dir.path().join("shared-games");
    let peer = seed_addr.to_string();
    let get_args = [
        "get",
        "openarena",
        "--no-mdns",
        "--no-install",
        "--wait",
        "15",
        "--peer",
        &peer,
    ];
    let first = Lanspread::spawn(with_dirs(&get_args, &games, &dir.path().join("state-1")));
    let target = games.join("openarena/oa.zip");
    support::wait_until("the first download to begin", || target.exists());

    let second = with_dirs(&get_args, &games, &dir.path().join("state-2"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is in use by another lanspread"), "{stderr}");
    assert!(
        stderr.contains(&games.display().to_string()),
        "names the game dir: {stderr}"
    );
    assert!(
        stderr.contains(&dir.path().join("state-1").display().to_string()),
        "names the state dir that holds it: {stderr}"
    );
    assert!(second.stdout.is_empty(), "the refused get reports nothing as done");

    let first = first.finish();
    assert_eq!(first.code(), Some(0), "{first}");
    assert!(first.stdout.starts_with("downloaded openarena 20240301"), "{first}");
    assert!(
        std::fs::read(&target).unwrap() == payload,
        "the first get's game is intact"
    );
}

#[test]
fn install_beside_a_serve_on_the_same_game_dir_is_refused_and_list_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("box");
    seed_game(&root, b"not really a zip");
    let addr = free_addr();
    let mut serve = Lanspread::serve(&root, addr, &[], &[]);
    serve.wait_for_line(&["library: openarena"]);

    let games = root.join("games");
    let refused = with_dirs(&["install", "openarena"], &games, &dir.path().join("other-state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is in use by another lanspread"), "{stderr}");
    assert!(!games.join("openarena/local").exists(), "nothing was installed");

    // `list` owns nothing, so it works beside everything, even on the same dirs.
    let list = command(
        &root,
        &["list", "--no-mdns", "--wait", "15", "--peer", &addr.to_string()],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(stdout.contains("openarena"), "{stdout}");
}

#[test]
fn serve_with_a_relative_game_dir_sees_games_added_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("games")).unwrap();
    let mut serve = Lanspread::spawn({
        let mut command = std::process::Command::new(support::process::BIN);
        command
            .args(["serve", "--no-mdns", "--listen", &free_addr().to_string()])
            .args(["--game-dir", "games", "--state-dir", "state"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info");
        command
    });
    serve.wait_for_line(&["listening on"]);

    // Copied in while serve runs: only the watcher can notice it this soon
    // (the periodic full scan runs every 5 minutes).
    write_game(
        &dir.path().join("games"),
        "openarena",
        "20240301",
        &[("oa.zip", vec![7; 1000])],
    );
    serve.wait_for_line(&["library: openarena", "downloaded", "local 20240301"]);
    std::fs::remove_dir_all(dir.path().join("games/openarena")).unwrap();
    serve.wait_for_line(&["library: openarena", "no longer available"]);
    assert!(
        dir.path().join("state/library-index.json").exists(),
        "the state dir is relative to the working dir too"
    );
}
