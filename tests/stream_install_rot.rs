//! A sender whose archive rotted on disk, as real processes: `lanspread serve`
//! senders and a `lanspread get --stream` receiver. "Rot" is a byte changed
//! after the sender recorded the archive's hashes, with the file's mtime put
//! back, so the stat stamp the library keys its hashes by does not change.
//! The sender must notice before it streams a byte and refuse; the receiver
//! then moves on to the next sender, or fails cleanly when there is none.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use support::archives::{Tree, read_tree, write_zip};
use support::process::{Finished, Lanspread, command, free_addr};
use support::{pseudo_random_bytes, rot, wait_until, write_game};

const GAME: &str = "openarena";
const VERSION: &str = "20240301";
/// Where the flipped byte lands: inside the archive's third 1 MiB block.
const FLIPPED_AT: u64 = 2 * (1 << 20) + 12_345;

/// A few MB of incompressible data in several blocks, and some small files.
fn tree() -> Tree {
    let mut tree = Tree::new();
    tree.insert("data".into(), None);
    tree.insert("data/big.pak".into(), Some(pseudo_random_bytes(7, 5_000_000)));
    tree.insert("readme.txt".into(), Some(b"a game\n".to_vec()));
    tree
}

/// `lanspread serve` at `root` sharing `GAME` with a copy of `zip`, once its scan has
/// recorded the archive's hashes.
fn sender(root: &Path, zip: &Path, listen: SocketAddr) -> Lanspread {
    let game = write_game(&root.join("games"), GAME, VERSION, &[]);
    fs::copy(zip, game.join("game.zip")).unwrap();
    let mut serve = Lanspread::serve(root, listen, &[], &[]);
    serve.wait_for_line(&["library:", GAME, "downloaded"]);
    let hashes = root.join("state").join("hashes").join(format!("{GAME}.bin"));
    wait_until("the sender's recorded hashes", || hashes.exists());
    serve
}

fn archive_of(root: &Path) -> PathBuf {
    root.join("games").join(GAME).join("game.zip")
}

/// `lanspread get --stream GAME` with `peers`, to the end.
fn get_streamed(root: &Path, peers: &[SocketAddr]) -> Finished {
    let mut args = vec![
        "get".to_owned(),
        GAME.to_owned(),
        "--stream".to_owned(),
        "--no-mdns".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--wait".to_owned(),
        "15".to_owned(),
    ];
    for peer in peers {
        args.extend(["--peer".to_owned(), peer.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Lanspread::spawn(command(root, &args)).finish()
}

/// The shared archive, written once so every sender serves the very same bytes.
fn shared_zip(dir: &Path, tree: &Tree) -> PathBuf {
    let zip = dir.join("game.zip");
    write_zip(&zip, tree);
    zip
}

#[test]
fn a_rotten_sender_refuses_and_the_install_streams_from_the_next_peer() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree();
    let zip = shared_zip(dir.path(), &tree);
    // The receiver tries senders in address order: the rotten one must come first.
    let mut addrs = [free_addr(), free_addr()];
    addrs.sort();
    let (bad_addr, good_addr) = (addrs[0], addrs[1]);
    let mut bad = sender(&dir.path().join("bad"), &zip, bad_addr);
    let _good = sender(&dir.path().join("good"), &zip, good_addr);
    rot(&archive_of(&dir.path().join("bad")), [FLIPPED_AT]);

    let client = dir.path().join("client");
    let got = get_streamed(&client, &[bad_addr, good_addr]);
    assert_eq!(got.code(), Some(0), "{got}");
    let local = client.join("games").join(GAME).join("local");
    assert!(read_tree(&local) == tree, "the install is what was shared\n{got}");
    let names_the_bad_peer = got.stderr.lines().any(|line| {
        line.contains(&bad_addr.to_string())
            && line.contains("game.zip on this peer does not match its recorded hashes")
    });
    assert!(
        names_the_bad_peer,
        "the receiver names the rotten sender and why\n{got}"
    );
    assert!(
        !got.stderr
            .lines()
            .any(|line| line.contains(&good_addr.to_string()) && line.contains("attempt failed")),
        "the good sender was not blamed\n{got}"
    );
    let warning = bad.wait_for_line(&["WARN", "game.zip", "block 3 of", "differs"]);
    assert!(warning.contains("not streaming it"), "{warning}");
}

#[test]
fn a_single_rotten_sender_fails_the_install_cleanly_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree();
    let zip = shared_zip(dir.path(), &tree);
    let addr = free_addr();
    let mut bad = sender(&dir.path().join("bad"), &zip, addr);
    rot(&archive_of(&dir.path().join("bad")), [FLIPPED_AT]);

    let client = dir.path().join("client");
    let got = get_streamed(&client, &[addr]);
    assert_eq!(got.code(), Some(1), "{got}");
    assert!(
        got.stderr
            .contains("game.zip on this peer does not match its recorded hashes")
            && got.stderr.contains("damaged on disk"),
        "the sender's reason reaches the user\n{got}"
    );
    bad.wait_for_line(&["WARN", "game.zip", "differs"]);
    // Staging, and the game root the install created, are rolled back: nothing of the game is left.
    assert!(!client.join("games").join(GAME).exists(), "{got}");
}

#[test]
fn a_sender_without_recorded_hashes_refuses_with_its_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree();
    let zip = shared_zip(dir.path(), &tree);
    let addr = free_addr();
    let root = dir.path().join("seed");
    let mut seed = sender(&root, &zip, addr);
    // The side file is read when a stream is asked for; without it nothing vouches for the archive.
    fs::remove_file(root.join("state").join("hashes").join(format!("{GAME}.bin"))).unwrap();

    let client = dir.path().join("client");
    let got = get_streamed(&client, &[addr]);
    assert_eq!(got.code(), Some(1), "{got}");
    assert!(
        got.stderr.contains("game.zip on this peer has no recorded hashes"),
        "{got}"
    );
    seed.wait_for_line(&["WARN", "game.zip", "no recorded hashes"]);
    assert!(!client.join("games").join(GAME).exists(), "{got}");
}
