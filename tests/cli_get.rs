//! `lanspread get` against a real `lanspread serve`, as real processes: it does
//! only what is missing (nothing, the install, or the download and install),
//! finishes an install that a killed `get` left undone, and a Ctrl-C during the
//! install exits 130 with the previous install intact.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::archives::{Tree, read_tree, sample_tree, write_zip};
use support::process::{Finished, Lanspread, command, free_addr};
use support::{pseudo_random_bytes, write_game};

const GAME: &str = "openarena";

/// A seed box sharing `GAME` at `version` as one zip of `tree`.
fn seed(root: &Path, version: &str, tree: &Tree) -> (Lanspread, SocketAddr) {
    let game = write_game(&root.join("games"), GAME, version, &[]);
    write_zip(&game.join("game.zip"), tree);
    let addr = free_addr();
    let mut serve = Lanspread::serve(root, addr, &[], &[]);
    // Announced once hashed.
    serve.wait_for_line(&["hashed 1 game(s)"]);
    (serve, addr)
}

/// `lanspread get GAME` from the client at `root`, with `seed` as its only peer.
fn spawn_get(root: &Path, seed: SocketAddr) -> Lanspread {
    let seed = seed.to_string();
    let args = [
        "get",
        GAME,
        "--no-mdns",
        "--listen",
        "127.0.0.1:0",
        "--peer",
        &seed,
        "--wait",
        "15",
    ];
    Lanspread::spawn(command(root, &args))
}

/// Compares an install with what was shared, naming the paths rather than printing the bytes.
fn assert_holds(local: &Path, expected: &Tree, why: &str) {
    let found = read_tree(local);
    if &found != expected {
        let differ: Vec<&String> = found
            .keys()
            .chain(expected.keys())
            .filter(|path| found.get(*path) != expected.get(*path))
            .collect();
        panic!("{why}: {} differs in {differ:?}", local.display());
    }
}

fn get(root: &Path, seed: SocketAddr) -> Finished {
    spawn_get(root, seed).finish()
}

/// Tens of MB of incompressible data and thousands of small files, so an install runs
/// long enough (file creation dominates) for a test to signal the process while it is under way.
fn big_tree(seed: u64) -> Tree {
    let mut tree = Tree::new();
    tree.insert("data".into(), None);
    for part in 0..6u64 {
        tree.insert(
            format!("data/part{part}.pak"),
            Some(pseudo_random_bytes(seed + part, 8_000_000)),
        );
    }
    tree.insert("maps".into(), None);
    for map in 0..4000u64 {
        tree.insert(
            format!("maps/m{map:04}.bsp"),
            Some(pseudo_random_bytes(seed * 10_000 + map, 4096)),
        );
    }
    tree.insert("readme.txt".into(), Some(format!("version {seed}\n").into_bytes()));
    tree
}

#[test]
fn get_of_an_up_to_date_game_says_so_and_downloads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_seed, seed_addr) = seed(&dir.path().join("seed"), "20240301", &sample_tree());
    let client = dir.path().join("client");

    let first = get(&client, seed_addr);
    assert_eq!(first.code(), Some(0), "{first}");
    assert!(first.stdout.contains(&format!("installed {GAME}")), "{first}");

    // Another downloaded game with many files makes the local scan slower than the seed's
    // answer, which is how `get` once decided from a library that did not hold its game yet.
    let many: Vec<(String, Vec<u8>)> = (0..30_000).map(|n| (format!("d{}/f{n}", n % 30), Vec::new())).collect();
    let many: Vec<(&str, Vec<u8>)> = many
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.clone()))
        .collect();
    write_game(&client.join("games"), "xonotic", "1", &many);

    let second = get(&client, seed_addr);
    assert_eq!(second.code(), Some(0), "{second}");
    assert!(
        second.stdout.contains(&format!("{GAME} 20240301 is up to date")),
        "{second}"
    );
    assert!(!second.stderr.contains("downloading"), "{second}");
    assert!(!second.stdout.contains("updated"), "{second}");
    assert_holds(
        &client.join("games").join(GAME).join("local"),
        &sample_tree(),
        "installed",
    );
}

/// Tries (a bounded number of times, each in a fresh client dir from `prepare`) to land
/// `signal` on a `get` while its install runs. A signal can still come too late, when the
/// install beat it; that attempt proves nothing and the next one runs. Returns the client
/// dir and how the interrupted `get` ended.
fn interrupt_an_install(
    dir: &Path,
    seed: SocketAddr,
    signal: &str,
    prepare: impl Fn(&Path),
) -> (std::path::PathBuf, Finished) {
    for attempt in 0..3 {
        let client = dir.join(format!("client-{attempt}"));
        prepare(&client);
        let mut get = spawn_get(&client, seed);
        get.wait_for_line(&["installing"]);
        get.signal(signal);
        let ended = get.finish();
        if ended.code() == Some(0) {
            eprintln!("attempt {attempt}: the install finished before SIG{signal} landed; trying again");
            continue;
        }
        return (client, ended);
    }
    panic!("the install always finished before SIG{signal} landed; make the test archive larger");
}

#[test]
fn get_finishes_the_install_that_a_killed_get_left_undone() {
    let dir = tempfile::tempdir().unwrap();
    let tree = big_tree(1);
    let (_seed, seed_addr) = seed(&dir.path().join("seed"), "1", &tree);
    let (client, killed) = interrupt_an_install(dir.path(), seed_addr, "KILL", |_| {});
    let local = client.join("games").join(GAME).join("local");
    assert_eq!(killed.code(), None, "not killed by the signal: {killed}");
    assert!(!local.exists(), "no install was promoted");

    let second = get(&client, seed_addr);
    assert_eq!(second.code(), Some(0), "{second}");
    assert!(second.stdout.contains(&format!("installed {GAME}")), "{second}");
    assert!(!second.stderr.contains("downloading"), "downloaded again: {second}");
    assert_holds(&local, &tree, "installed by the second get");

    // Now complete: a third `get` has nothing left to do.
    let third = get(&client, seed_addr);
    assert_eq!(third.code(), Some(0), "{third}");
    assert!(third.stdout.contains("is up to date"), "{third}");
}

#[test]
fn ctrl_c_during_the_install_exits_130_and_keeps_the_previous_install() {
    let dir = tempfile::tempdir().unwrap();
    let old = sample_tree();
    // Version 1 installed with the local command (no network).
    let install_version_1 = |client: &Path| {
        let game = write_game(&client.join("games"), GAME, "1", &[]);
        write_zip(&game.join("game.zip"), &old);
        let installed = Lanspread::spawn(command(client, &["install", GAME])).finish();
        assert_eq!(installed.code(), Some(0), "{installed}");
        assert_holds(
            &client.join("games").join(GAME).join("local"),
            &old,
            "installed version 1",
        );
    };

    let (_seed, seed_addr) = seed(&dir.path().join("seed"), "2", &big_tree(2));
    let (client, interrupted) = interrupt_an_install(dir.path(), seed_addr, "INT", install_version_1);
    assert_eq!(interrupted.code(), Some(130), "{interrupted}");
    assert_holds(
        &client.join("games").join(GAME).join("local"),
        &old,
        "the previous install changed",
    );
}

#[test]
fn a_failed_install_shows_in_list_and_get_says_so_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let seed_root = dir.path().join("seed");
    write_game(
        &seed_root.join("games"),
        GAME,
        "3",
        &[("game.zip", b"not a zip at all".to_vec())],
    );
    let seed_addr = free_addr();
    let mut serve = Lanspread::serve(&seed_root, seed_addr, &[], &[]);
    serve.wait_for_line(&["hashed 1 game(s)"]);
    let client = dir.path().join("client");

    let first = get(&client, seed_addr);
    assert_eq!(first.code(), Some(1), "{first}");
    assert!(
        first.stderr.contains("was downloaded but its install failed"),
        "{first}"
    );

    let peer = seed_addr.to_string();
    let list = command(
        &client,
        &["list", "--json", "--no-mdns", "--wait", "15", "--peer", &peer],
    )
    .output()
    .unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["id"], GAME);
    assert_eq!(rows[0]["state"], "install failed", "{rows}");
    assert_eq!(rows[0]["local_version"], "3");
    assert!(
        rows[0]["install_failure"].as_str().is_some_and(|why| !why.is_empty()),
        "{rows}"
    );
    let table = command(&client, &["list", "--no-mdns", "--wait", "15", "--peer", &peer])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("install failed") && table.contains("`lanspread get openarena` retries it"),
        "{table}"
    );

    // `get` says what state the game is in, and tries the install again (it fails again: same archive).
    let again = get(&client, seed_addr);
    assert_eq!(again.code(), Some(1), "{again}");
    assert!(again.stderr.contains("its last install failed"), "{again}");
    assert!(again.stderr.contains("installing again"), "{again}");
    assert!(
        !again.stdout.contains("downloaded"),
        "nothing is downloaded again: {again}"
    );
}

#[test]
fn without_mdns_get_and_list_name_the_configured_peers_that_did_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree();
    let (_seed, seed_addr) = seed(&dir.path().join("seed"), "20240301", &tree);
    // Nobody listens here (the port was free a moment ago). `--wait 6` outlasts its ping's
    // 5 s deadline, so the reason is known.
    let nobody = free_addr().to_string();
    let client = dir.path().join("client");
    let list = command(&client, &["list", "--no-mdns", "--peer", &nobody, "--wait", "6"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&list.stderr);
    assert_eq!(list.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("configured peer: {nobody} did not answer")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("mDNS"),
        "mDNS is off, so it is not the thing to check: {stderr}"
    );

    // One configured peer answers and shares the game, the other does not: the game comes
    // from the one, and the other is named.
    let seed_addr = seed_addr.to_string();
    let args = [
        "get",
        GAME,
        "--no-mdns",
        "--listen",
        "127.0.0.1:0",
        "--peer",
        &seed_addr,
        "--peer",
        &nobody,
        "--wait",
        "3",
    ];
    let got = Lanspread::spawn(command(&client, &args)).finish();
    assert_eq!(got.code(), Some(0), "{got}");
    assert_holds(
        &client.join("games").join(GAME).join("local"),
        &tree,
        "the game from the peer that answered",
    );
    let list = command(
        &client,
        &[
            "list",
            "--no-mdns",
            "--peer",
            &seed_addr,
            "--peer",
            &nobody,
            "--wait",
            "3",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&list.stderr);
    assert_eq!(list.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("configured peer {nobody}: no answer within 3.0s")),
        "{stderr}"
    );
}
