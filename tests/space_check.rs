//! Space checks from real sizes: what a game's archives expand to, read from
//! their headers (`lanspread::install::unpack::expanded_size`) and announced by
//! the serving peer; and the runtime refusing, before anything starts, a
//! download or streamed install that cannot fit the downloader's disk.
//!
//! "Cannot fit" without filling a disk: the shared game is a tar whose one
//! member is a GNU sparse file of 1 PiB, a real header describing real
//! (all-hole) content in a few hundred bytes. Its expanded size beats the free
//! space of any test machine (asserted through statvfs), while its archive is
//! tiny, so a download without an install still fits and is not refused.

use std::fs;

use lanspread::disk::free_space;
use lanspread::install::unpack::{UnpackError, expanded_size, visit_entries};
use lanspread::peer::PeerCommand;

mod support;

use support::archives::*;
use support::peer::{Outcome, TestPeer};

const GAME: &str = "openarena";
/// 1 PiB: more than any test machine has free.
const HUGE: u64 = 1 << 50;

/// The bytes of the files in `tree`.
fn tree_bytes(tree: &Tree) -> u64 {
    tree.values().flatten().map(|bytes| bytes.len() as u64).sum()
}

/// A game root with a `version.ini` in a fresh temp dir.
fn game_root() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("game");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("version.ini"), "1\n").unwrap();
    (dir, root)
}

/// A tar holding one GNU sparse file of `real_size` bytes, all of it a hole: the header
/// records the size, no data follows.
fn sparse_tar(name: &str, real_size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).unwrap();
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_size(0);
    let gnu = header.as_gnu_mut().unwrap();
    gnu.set_real_size(real_size);
    // One block of no data at the very end: everything before it is a hole.
    gnu.sparse[0].set_offset(real_size);
    gnu.sparse[0].set_length(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, std::io::empty()).unwrap();
    builder.into_inner().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The expanded size of real archives
// ---------------------------------------------------------------------------------------------

#[test]
fn the_expanded_size_of_zip_and_tar_archives_is_the_sum_of_their_files() {
    let tree = sample_tree();
    let expected = tree_bytes(&tree);
    assert!(
        expected > 1_300_000,
        "the sample tree has a file larger than a read buffer"
    );
    // `None`: a zip.
    let archives = [
        ("game.zip", None),
        ("game.tar", Some(Compression::None)),
        ("game.tar.gz", Some(Compression::Gzip)),
        ("game.tar.zst", Some(Compression::Zstd)),
    ];
    for (name, compression) in archives {
        let (_dir, root) = game_root();
        match compression {
            None => write_zip(&root.join(name), &tree),
            Some(compression) => write_tar(&root.join(name), &tree_members(&tree), compression),
        }
        assert_eq!(expanded_size(&root).unwrap(), expected, "{name}");
    }
}

#[test]
fn the_expanded_size_of_rar_archives_matches_what_an_unpack_reads() {
    for volumes in [
        &["normal.rar"][..],
        &["multi.part1.rar", "multi.part2.rar", "multi.part3.rar"],
    ] {
        let (_dir, root) = game_root();
        for volume in volumes {
            fs::copy(fixture(volume), root.join(volume)).unwrap();
        }
        let unpacked = visit_entries(&root, &mut |_| Ok(())).unwrap().bytes;
        assert!(unpacked > 0);
        assert_eq!(expanded_size(&root).unwrap(), unpacked, "{volumes:?}");
    }
}

#[test]
fn the_expanded_size_sums_every_archive_of_a_game() {
    let (_dir, root) = game_root();
    let mut first = Tree::new();
    first.insert("a.bin".into(), Some(vec![1; 1000]));
    let mut second = Tree::new();
    second.insert("maps".into(), None);
    second.insert("maps/b.bin".into(), Some(vec![2; 234]));
    write_zip(&root.join("base.zip"), &first);
    write_tar(&root.join("maps.tar.gz"), &tree_members(&second), Compression::Gzip);
    assert_eq!(expanded_size(&root).unwrap(), 1234);
}

#[test]
fn the_expanded_size_reads_headers_not_data() {
    // Reading 1 PiB of holes would never end within the test's time.
    let (_dir, root) = game_root();
    let archive = sparse_tar("huge.bin", HUGE);
    assert!(archive.len() < 4096, "{} bytes", archive.len());
    fs::write(root.join("huge.tar"), &archive).unwrap();
    assert_eq!(expanded_size(&root).unwrap(), HUGE);
}

#[test]
fn the_expanded_size_applies_the_unpack_checks() {
    let (_dir, root) = game_root();
    assert!(matches!(expanded_size(&root), Err(UnpackError::NoArchives { .. })));

    write_tar(
        &root.join("evil.tar"),
        &[TarMember::file("../escape.txt", b"x")],
        Compression::None,
    );
    let err = expanded_size(&root).unwrap_err();
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err:?}");

    // A damaged gzip trailer is found as in an unpack: the stream is read to its end.
    fs::remove_file(root.join("evil.tar")).unwrap();
    let mut gz = compress(&tar_bytes(&tree_members(&sample_tree())), Compression::Gzip);
    let crc_at = gz.len() - 8;
    gz[crc_at] ^= 0xff;
    fs::write(root.join("game.tar.gz"), gz).unwrap();
    let err = expanded_size(&root).unwrap_err();
    assert!(err.is_damaged_archive(), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Peers: the announced size and the runtime's refusal
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_s_expanded_size_is_announced_to_other_peers() {
    let tree = sample_tree();
    let seed = TestPeer::builder().zipped_game(GAME, "1", &tree).start();
    let mut downloader = TestPeer::builder().static_peers(&[seed.addr()]).start();
    let snapshot = downloader
        .wait_for_snapshot("the seed's game with its expanded size", |snapshot| {
            snapshot.game(GAME).is_some_and(|game| game.expanded_size.is_some())
        })
        .await;
    let game = snapshot.game(GAME).unwrap();
    assert_eq!(game.expanded_size, Some(tree_bytes(&tree)));
    assert_eq!(game.peers.len(), 1);
    assert_eq!(game.peers[0].expanded_size, Some(tree_bytes(&tree)));
    assert!(
        game.size < tree_bytes(&tree) + 1024,
        "the announced size is the archives' ({}), not the expanded one",
        game.size
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_or_streamed_install_that_cannot_fit_is_refused_before_it_starts() {
    let seed = TestPeer::builder()
        .prepare(|games| {
            let root = support::write_game(games, GAME, "1", &[]);
            fs::write(root.join("huge.tar"), sparse_tar("huge.bin", HUGE)).unwrap();
        })
        .start();
    let mut downloader = TestPeer::builder()
        .static_peers(&[seed.addr()])
        .config(|config| config.auto_install = true)
        .start();
    let game_dir = downloader.game_dir();
    let free = free_space(&game_dir).expect("statvfs works on the test's temp dir");
    assert!(free < HUGE, "the test machine has {free} bytes free: more than 1 PiB?");
    downloader
        .wait_for_snapshot("the seed's game with its expanded size", |snapshot| {
            snapshot.game(GAME).is_some_and(|game| game.expanded_size == Some(HUGE))
        })
        .await;

    let list = downloader.fetch_files(GAME).await.expect("the file list");
    downloader.start_download(GAME, list.files).await;
    let reason = downloader.wait_for_refusal(GAME).await;
    let expected_start = "not enough space for OpenArena: downloading and installing it needs 1024.0 TiB, ";
    assert!(reason.starts_with(expected_start), "{reason}");
    assert!(
        reason.ends_with(&format!(" free on {}", game_dir.display())),
        "names the free space and where: {reason}"
    );
    assert!(
        !reason.contains("streamed install"),
        "a streamed install cannot fit either, so it is not offered: {reason}"
    );
    assert!(
        !game_dir.join(GAME).exists(),
        "nothing was started: no game root was created"
    );

    downloader
        .send(PeerCommand::StreamInstallGame { id: GAME.into() })
        .await;
    let reason = downloader.wait_for_refusal(GAME).await;
    assert!(
        reason.starts_with("not enough space for OpenArena: even a streamed install needs 1024.0 TiB, "),
        "{reason}"
    );
    assert!(!game_dir.join(GAME).exists());

    // Without an install, a download needs only its (tiny) archives: not refused.
    let mut archives_only = TestPeer::builder().static_peers(&[seed.addr()]).start();
    archives_only.wait_for_holders(GAME, 1).await;
    archives_only.download(GAME).await;
    let ended = archives_only.wait_for_download_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Finished(_)), "{:?}", ended.outcome);
    assert!(archives_only.game_dir().join(GAME).join("huge.tar").is_file());
}
