//! Resume and delta updates on real processes: a `get` SIGKILLed mid-download is finished
//! by the next `get`, which fetches only the blocks the first one had not journaled; an
//! update fetches only the files that changed, and an archive renamed between versions is
//! reused from disk rather than fetched.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::process::{Finished, Lanspread, command, free_addr, spawn_get_download};
use support::{pseudo_random_bytes, wait_until, write_game};

const GAME: &str = "openarena";
const MIB: usize = 1 << 20;
/// Bytes per resume-journal record (see `peer::download::journal`).
const JOURNAL_RECORD: u64 = 44;

/// A `serve` sharing `GAME` at `version` with `files`, once it has recorded its hashes.
fn seed(root: &Path, version: &str, files: &[(&str, Vec<u8>)], extra: &[&str]) -> (Lanspread, SocketAddr) {
    let _ = std::fs::remove_dir_all(root.join("games").join(GAME));
    write_game(&root.join("games"), GAME, version, files);
    let addr = free_addr();
    let mut serve = Lanspread::serve(root, addr, &[], extra);
    // Announced (and its hashes recorded) once hashed.
    serve.wait_for_line(&["hashed 1 game(s)"]);
    (serve, addr)
}

fn spawn_get(root: &Path, peer: SocketAddr) -> Lanspread {
    spawn_get_download(root, GAME, &[peer])
}

/// (fetched, reused) from `get`'s summary line.
fn fetched_and_reused(finished: &Finished) -> (u64, u64) {
    let line = finished
        .stdout
        .lines()
        .find(|line| line.starts_with(&format!("downloaded {GAME}")))
        .unwrap_or_else(|| panic!("no summary line: {finished}"));
    let number_after = |label: &str| -> u64 {
        let start = line.find(label).unwrap_or_else(|| panic!("{label} in {line}")) + label.len();
        line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    (number_after("fetched "), number_after("reused "))
}

fn assert_files(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (path, bytes) in files {
        let found = std::fs::read(root.join("games").join(GAME).join(path)).unwrap();
        assert!(&found == bytes, "{path} is byte-identical");
    }
}

#[test]
fn get_killed_mid_download_resumes_and_fetches_only_what_was_not_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("a.pak", pseudo_random_bytes(1, 20 * MIB)),
        ("b.pak", pseudo_random_bytes(2, 20 * MIB)),
        ("maps/c.pak", pseudo_random_bytes(3, 8 * MIB + 123)),
    ];
    let total: u64 = files.iter().map(|(_, bytes)| bytes.len() as u64).sum::<u64>() + 1;
    // 8 MB/s: the download takes about 6 s, so it is killed well inside it.
    let (_seed, addr) = seed(&dir.path().join("seed"), "1", &files, &["--upload-limit", "8"]);

    let client = dir.path().join("client");
    let journal = client.join("state/downloads").join(GAME).join("blocks.bin");
    let first = spawn_get(&client, addr);
    let journaled = || std::fs::metadata(&journal).map_or(0, |meta| meta.len() / JOURNAL_RECORD);
    wait_until("a third of the blocks journaled", || journaled() >= 16);
    first.signal("KILL");
    let killed = first.finish();
    assert_ne!(killed.code(), Some(0), "{killed}");
    let done_at_kill = journaled();
    assert!(
        !client.join("games").join(GAME).join("version.ini").exists(),
        "a partial game is never taken for downloaded"
    );

    let second = spawn_get(&client, addr).finish();
    assert_eq!(second.code(), Some(0), "{second}");
    assert_files(&client, &files);
    let (fetched, reused) = fetched_and_reused(&second);
    assert_eq!(fetched + reused, total, "{second}");
    // Every journaled block is reused (all blocks here but c.pak's last are 1 MiB).
    assert!(
        reused >= done_at_kill * MIB as u64 - MIB as u64,
        "{done_at_kill} blocks were journaled; reused {reused}: {second}"
    );
    assert!(fetched <= total - reused, "{second}");
    assert!(!journal.exists(), "the journal goes with the commit");
    eprintln!("killed with {done_at_kill} blocks journaled; then fetched {fetched}, reused {reused} of {total}");
}

#[test]
fn an_update_fetches_the_changed_archive_and_reuses_a_renamed_one() {
    let dir = tempfile::tempdir().unwrap();
    let seed_root = dir.path().join("seed");
    let unchanged = pseudo_random_bytes(10, 12 * MIB + 5);
    let renamed = pseudo_random_bytes(11, 9 * MIB);
    let v1 = [
        ("same.pak", unchanged.clone()),
        ("changes.pak", pseudo_random_bytes(12, 10 * MIB)),
        ("old-name.pak", renamed.clone()),
    ];
    let client = dir.path().join("client");
    {
        let (_seed, addr) = seed(&seed_root, "1", &v1, &[]);
        let first = spawn_get(&client, addr).finish();
        assert_eq!(first.code(), Some(0), "{first}");
        assert_eq!(fetched_and_reused(&first).1, 0, "nothing to reuse the first time");
    }

    let changed = pseudo_random_bytes(13, 10 * MIB);
    let v2 = [
        ("same.pak", unchanged),
        ("changes.pak", changed.clone()),
        ("new-name.pak", renamed.clone()),
    ];
    let (_seed, addr) = seed(&seed_root, "2", &v2, &[]);
    let update = spawn_get(&client, addr).finish();
    assert_eq!(update.code(), Some(0), "{update}");
    assert_files(&client, &v2);
    assert!(
        !client.join("games").join(GAME).join("old-name.pak").exists(),
        "the old name goes at commit"
    );
    let (fetched, reused) = fetched_and_reused(&update);
    // Only the changed archive and version.ini travel.
    assert_eq!(fetched, changed.len() as u64 + 1, "{update}");
    assert_eq!(reused, (12 * MIB + 5 + 9 * MIB) as u64, "{update}");
}

#[test]
fn remove_deletes_an_unfinished_download_and_its_journal_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("a.pak", pseudo_random_bytes(5, 24 * MIB)),
        ("maps/b.pak", pseudo_random_bytes(6, 8 * MIB)),
    ];
    let (_seed, addr) = seed(&dir.path().join("seed"), "1", &files, &["--upload-limit", "8"]);
    let client = dir.path().join("client");
    let game = client.join("games").join(GAME);
    let journal_dir = client.join("state/downloads").join(GAME);
    let first = spawn_get(&client, addr);
    let journal = journal_dir.join("blocks.bin");
    wait_until("some blocks journaled", || {
        std::fs::metadata(&journal).is_ok_and(|meta| meta.len() >= 4 * JOURNAL_RECORD)
    });
    first.signal("KILL");
    first.finish();
    std::fs::create_dir_all(game.join("local")).unwrap();
    std::fs::write(game.join("local/save.dat"), b"mine").unwrap();
    std::fs::write(game.join("notes.txt"), b"also mine").unwrap();

    let removed = Lanspread::spawn(command(&client, &["remove", GAME])).finish();
    assert_eq!(removed.code(), Some(0), "{removed}");
    assert!(
        removed.stdout.contains("removed the unfinished download of openarena"),
        "{removed}"
    );
    assert!(
        !game.join("a.pak").exists() && !game.join("maps").exists(),
        "the payload went"
    );
    assert!(!journal_dir.exists(), "the journal went");
    assert_eq!(std::fs::read(game.join("local/save.dat")).unwrap(), b"mine");
    assert_eq!(std::fs::read(game.join("notes.txt")).unwrap(), b"also mine");

    // Nothing is left to resume: the next download fetches it all.
    let again = spawn_get(&client, addr).finish();
    assert_eq!(again.code(), Some(0), "{again}");
    assert_eq!(fetched_and_reused(&again).1, 0, "{again}");
    assert_files(&client, &files);
}
