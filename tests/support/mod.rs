//! Helpers shared by the integration tests: generated games, in-process peers
//! on 127.0.0.1, and bounded waits for runtime events.
#![allow(dead_code)] // each test binary uses a different subset

pub mod archives;
pub mod fake;
pub mod hostile;
pub mod peer;
pub mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

// Re-exported so tests name them as `support::TestPeer`; like the dead code above,
// each test binary uses a different subset.
#[allow(unused_imports)]
pub use peer::{Ended, Outcome, PeerBuilder, TestPeer, start_test_peer, test_config};

/// Upper bound for any wait in a test; generous so a loaded CI machine does not flake.
pub const WAIT: Duration = Duration::from_secs(20);

/// Deterministic pseudo-random bytes, so failures reproduce (the demo's generator).
pub use lanspread::demo::noise as pseudo_random_bytes;

/// Writes `<game_dir>/<id>/` with the given files and a `version.ini` holding `version`.
pub fn write_game(game_dir: &Path, id: &str, version: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let root = game_dir.join(id);
    for (path, bytes) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("version.ini"), version).unwrap();
    root
}

/// Polls `done` (bounded by [`WAIT`]) until it holds.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Flips one byte at each of `offsets` of `path` and puts its mtime back: the length and
/// mtime its hashes were recorded under stay the same, as when a disk silently corrupts a
/// sector. The rotten copy is made outside the game dir (beside the `games` folder above
/// `path`, so no scan lists it) and renamed over it, so no scan can catch the file between
/// the write and the restored mtime (and record the rotten bytes under a new stamp).
/// Returns how many bytes were flipped.
pub fn rot(path: &Path, offsets: impl IntoIterator<Item = u64>) -> usize {
    use std::os::unix::fs::FileExt;
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let games = path
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "games"))
        .expect("rot works on files under a games folder");
    let rotten = games.parent().unwrap().join(".rotting");
    std::fs::copy(path, &rotten).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&rotten)
        .unwrap();
    let mut flipped = 0;
    for offset in offsets {
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[byte[0] ^ 0x5a], offset).unwrap();
        flipped += 1;
    }
    file.set_modified(mtime).unwrap();
    file.sync_all().unwrap();
    drop(file);
    std::fs::rename(&rotten, path).unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime);
    flipped
}
