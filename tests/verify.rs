//! `lanspread verify` on real processes: an intact game passes; a flipped byte (its file's
//! stamp unchanged, as bit rot leaves it) is found against the peers and, with no peer
//! around, against the hashes recorded here; `--repair` fetches exactly the one damaged
//! block, and the game is byte-identical again.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::process::{Finished, Lanspread, command, free_addr};
use support::{pseudo_random_bytes, rot, write_game};

const GAME: &str = "openarena";
const MIB: usize = 1 << 20;

fn lanspread(root: &Path, args: &[&str], peer: Option<SocketAddr>) -> Finished {
    let peer = peer.map(|addr| addr.to_string());
    let mut all = args.to_vec();
    all.extend(["--no-mdns", "--listen", "127.0.0.1:0"]);
    if let Some(peer) = &peer {
        all.extend(["--peer", peer]);
    }
    Lanspread::spawn(command(root, &all)).finish()
}

#[test]
fn verify_finds_a_flipped_byte_and_repair_fetches_only_its_block() {
    let dir = tempfile::tempdir().unwrap();
    let pak = pseudo_random_bytes(21, 3 * MIB + 17);
    let files = [("game.pak", pak.clone()), ("readme.txt", b"hello".to_vec())];
    let seed_root = dir.path().join("seed");
    write_game(&seed_root.join("games"), GAME, "1", &files);
    let seed_addr = free_addr();
    let mut seed = Lanspread::serve(&seed_root, seed_addr, &[], &[]);
    seed.wait_for_line(&["hashed 1 game(s)"]);

    let client = dir.path().join("client");
    let got = lanspread(&client, &["get", GAME, "--no-install"], Some(seed_addr));
    assert_eq!(got.code(), Some(0), "{got}");
    let intact = lanspread(&client, &["verify", GAME], Some(seed_addr));
    assert_eq!(intact.code(), Some(0), "{intact}");
    assert!(intact.stdout.contains("openarena 1 is intact"), "{intact}");
    assert!(intact.stdout.contains("against 1 peer(s)"), "{intact}");

    let local_pak = client.join("games").join(GAME).join("game.pak");
    rot(&local_pak, [MIB as u64 + 4242]);
    let damaged = lanspread(&client, &["verify", GAME], Some(seed_addr));
    assert_eq!(damaged.code(), Some(1), "{damaged}");
    assert!(
        damaged.stdout.contains("game.pak: 1 of 4 blocks differ (block 1)"),
        "{damaged}"
    );

    // No peer around: the hashes recorded at download time still catch it.
    let offline = lanspread(&client, &["verify", GAME, "--wait", "1"], None);
    assert_eq!(offline.code(), Some(1), "{offline}");
    assert!(offline.stdout.contains("against the hashes recorded here"), "{offline}");
    assert!(
        offline.stdout.contains("game.pak: 1 of 4 blocks differ (block 1)"),
        "{offline}"
    );

    let repaired = lanspread(&client, &["verify", GAME, "--repair"], Some(seed_addr));
    assert_eq!(repaired.code(), Some(0), "{repaired}");
    // One block, and version.ini, which every download fetches last.
    let fetched = MIB + "1".len();
    assert!(
        repaired
            .stdout
            .contains(&format!("repaired openarena: fetched {fetched} bytes")),
        "{repaired}"
    );
    assert!(
        std::fs::read(&local_pak).unwrap() == pak,
        "the game is byte-identical again"
    );
    let again = lanspread(&client, &["verify", GAME], Some(seed_addr));
    assert_eq!(again.code(), Some(0), "{again}");
}
