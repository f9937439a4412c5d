//! The swarm on real processes: a `get` that is still downloading serves another
//! `get`, and when it is SIGKILLed mid-transfer the other one still finishes with a
//! byte-identical copy (the blocks it had in flight there go to the seed).

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::process::{Lanspread, command, free_addr};
use support::{pseudo_random_bytes, wait_until, write_game};

const GAME: &str = "openarena";
const VERSION: &str = "20240301";

fn game_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("oa-part1.zip", pseudo_random_bytes(51, 14_000_000)),
        ("oa-part2.zip", pseudo_random_bytes(52, 10_000_000)),
    ]
}

/// `get GAME --no-install` at `root`, listening on `listen`, with `peers` as its only peers;
/// its per-request debug lines go to its log file (see [`fetched_from`]).
fn spawn_get(root: &Path, listen: SocketAddr, peers: &[SocketAddr]) -> Lanspread {
    let listen = listen.to_string();
    let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
    let mut args = vec![
        "get",
        GAME,
        "--no-install",
        "--no-mdns",
        "--listen",
        &listen,
        "--wait",
        "15",
    ];
    for peer in &peers {
        args.extend(["--peer", peer.as_str()]);
    }
    let mut get = command(root, &args);
    get.env("RUST_LOG", "info,lanspread::peer::download=debug");
    Lanspread::spawn(get)
}

/// Whether the `get` at `root` has logged a block answer from `source`.
fn fetched_from(root: &Path, source: SocketAddr) -> bool {
    let needle = format!("addr={source}");
    let Ok(logs) = std::fs::read_dir(root.join("state/logs")) else {
        return false;
    };
    logs.flatten().any(|log| {
        std::fs::read_to_string(log.path()).is_ok_and(|text| {
            text.lines()
                .any(|line| line.contains("blocks fetched") && line.contains(&needle))
        })
    })
}

#[test]
fn a_partial_get_killed_while_it_serves_another_costs_that_one_nothing_but_time() {
    let files = game_files();
    let (seed_root, first_root, second_root) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    write_game(&seed_root.path().join("games"), GAME, VERSION, &files);
    let seed = free_addr();
    // One slot, slow: while the first `get` holds it the second is sent to the first.
    let mut serve = Lanspread::serve(
        seed_root.path(),
        seed,
        &[],
        &["--upload-limit", "4", "--upload-slots", "1"],
    );
    serve.wait_for_line(&["hashed 1 game(s)"]);

    let first_addr = free_addr();
    let mut first = spawn_get(first_root.path(), first_addr, &[seed]);
    wait_until("the first get to fetch from the seed", || {
        fetched_from(first_root.path(), seed)
    });
    let second = spawn_get(second_root.path(), free_addr(), &[seed, first_addr]);
    wait_until("the second get to fetch from the first", || {
        fetched_from(second_root.path(), first_addr)
    });
    first.signal("KILL");
    let _ = first.child.wait();

    let finished = second.finish();
    assert_eq!(finished.code(), Some(0), "{finished}");
    for (path, bytes) in &files {
        let got = std::fs::read(second_root.path().join("games").join(GAME).join(path)).unwrap();
        assert!(got == *bytes, "{path} differs from the seed's");
    }
    let partial_bytes: u64 = finished
        .stdout
        .split("partial peers ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|bytes| bytes.parse().ok())
        .unwrap_or_else(|| panic!("no partial peers figure in the summary: {finished}"));
    assert!(
        partial_bytes > 0,
        "the summary counts what the killed get sent: {finished}"
    );
    eprintln!("{}", finished.stdout.trim());
}
