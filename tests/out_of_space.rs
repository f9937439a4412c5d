//! A real full disk: the game dir of the peer under test is a small tmpfs,
//! filled up with a filler file so a download, an install (unpack) and a
//! streamed install run out of space part-way. The download and the streamed
//! install are checked for space before they start, so the filler is written
//! once they have begun (their seeds upload slowly), as another program filling
//! the disk would. Each must fail at once with
//! the path and the free space in its message, blame no peer (no excluded or
//! failed peer, the senders still serve), keep the previous `local/` and leave
//! no reserved directory; after the filler is deleted, the same command
//! succeeds.
//!
//! Needs to mount a tmpfs (root, or CAP_SYS_ADMIN). Where it cannot, each test
//! writes `SKIPPED: <why>` to stderr and passes; set `LANSPREAD_REQUIRE_TMPFS=1`
//! (as CI does) to make a skip a failure instead.
//!
//! Run: `cargo test --release --test out_of_space -- --nocapture`

mod support;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use lanspread::disk::free_space;
use lanspread::peer::{PeerCommand, PeerEvent};
use lanspread::proto::GameFileDescription;
use support::archives::{Tree, read_tree, sample_tree, write_zip};
use support::{TestPeer, pseudo_random_bytes, start_test_peer};

const GAME: &str = "openarena";
/// The tmpfs each test mounts; small, as it lives in memory.
const TMPFS_SIZE: &str = "32m";
/// Free space left beside the filler: less than each test's payload.
const LEFT_FREE: u64 = 4 << 20;
const FILLER: &str = "filler.bin";
const NO_SPACE: &str = "No space left on device";

/// A tmpfs mounted on a directory, unmounted on drop (also when a test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs on `dir`, or reports why it cannot (`None`: the test skips).
    fn mount(dir: &Path, test: &str) -> Option<Tmpfs> {
        let size = format!("size={TMPFS_SIZE}");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(dir)
            .output();
        let why = match mounted {
            Ok(output) if output.status.success() => return Some(Tmpfs { dir: dir.to_path_buf() }),
            Ok(output) => format!(
                "cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): mount {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(err) => format!("cannot run mount: {err}"),
        };
        let message = format!("SKIPPED: {why} ({test})");
        if std::env::var_os("LANSPREAD_REQUIRE_TMPFS").is_some_and(|v| !v.is_empty() && v != "0") {
            panic!("{message}, and LANSPREAD_REQUIRE_TMPFS is set");
        }
        // Straight to the process's stderr, past libtest's output capture.
        let _ = writeln!(std::io::stderr(), "{message}");
        None
    }

    /// Writes a filler file that leaves [`LEFT_FREE`] bytes free.
    fn fill(&self) {
        let free = free_space(&self.dir).expect("statvfs of the tmpfs");
        assert!(free > LEFT_FREE, "the fresh tmpfs has only {free} bytes free");
        fs::write(self.dir.join(FILLER), vec![0xa5; (free - LEFT_FREE) as usize]).unwrap();
    }

    /// Frees the space the filler took.
    fn unfill(&self) {
        fs::remove_file(self.dir.join(FILLER)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a runtime still holding files open must not keep the mount alive.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Starts the peer under test with a tmpfs as its game dir; `prepare` writes into it first.
/// `None` when no tmpfs can be mounted (the test skips).
fn peer_on_tmpfs(peers: &[SocketAddr], test: &str, prepare: impl FnOnce(&Path)) -> Option<(TestPeer, Tmpfs)> {
    let mut mounted = None;
    let peer = start_test_peer(peers, |games| {
        mounted = Tmpfs::mount(games, test);
        if mounted.is_some() {
            prepare(games);
        }
    });
    // Returned after the peer, so it is dropped first: unmounted before the temp dir is deleted.
    mounted.map(|tmpfs| (peer, tmpfs))
}

/// A peer serving `GAME` at `version` with `files`, listening on 127.0.0.2.
/// Uploads at 4 MB/s, so the disk can be filled while a transfer from it runs.
fn seed(version: &str, files: &[(&str, Vec<u8>)]) -> TestPeer {
    TestPeer::builder()
        .config(|config| {
            config.listen = "127.0.0.2:0".parse().unwrap();
            config.upload_limit = Some(4_000_000);
        })
        .game(GAME, version, files)
        .start()
}

/// An installed old version: `local/` holding `sample_tree()`, and an old archive.
fn install_old_version(root: &Path) {
    fs::create_dir_all(root.join("local")).unwrap();
    for (path, content) in sample_tree() {
        match content {
            Some(bytes) => fs::write(root.join("local").join(path), bytes).unwrap(),
            None => fs::create_dir_all(root.join("local").join(path)).unwrap(),
        }
    }
}

/// `sample_tree()` plus a file too big for the space left.
fn big_tree() -> Tree {
    let mut tree = sample_tree();
    tree.insert("data/big.bin".into(), Some(pseudo_random_bytes(7, 9_000_000)));
    tree
}

fn assert_no_reserved_leftovers(root: &Path) {
    for name in [
        ".local.installing",
        ".local.backup",
        ".local.removing",
        ".version.ini.tmp",
        ".version.ini.discarded",
    ] {
        assert!(!root.join(name).exists(), "{name} left behind in {}", root.display());
    }
}

/// The reason names the file system the test filled, says it is full and how much is free.
fn assert_names_path_and_free_space(reason: &str, path: &Path) {
    assert!(
        reason.contains(&path.display().to_string()),
        "no path {}: {reason}",
        path.display()
    );
    assert!(reason.contains(NO_SPACE), "{reason}");
    assert!(reason.contains("free on its file system"), "{reason}");
}

fn assert_blames_no_peer(reason: &str, peers: &[SocketAddr]) {
    assert!(!reason.contains("every peer failed"), "{reason}");
    for addr in peers {
        assert!(!reason.contains(&addr.to_string()), "{addr} is blamed: {reason}");
    }
}

/// Waits until `peer` sees `GAME` on `count` peers, then fetches its file list.
async fn file_list(peer: &mut TestPeer, count: usize) -> Vec<GameFileDescription> {
    peer.wait_for_snapshot("the game on every seed", |s| {
        s.game(GAME).is_some_and(|g| g.peers.len() == count)
    })
    .await;
    peer.runtime
        .send(PeerCommand::GetGame { id: GAME.into() })
        .await
        .unwrap();
    peer.wait_for("GotGameFiles", |event| match event {
        PeerEvent::GotGameFiles { id, files, .. } if id == GAME => Some(files.clone()),
        _ => None,
    })
    .await
}

/// Events of one operation on `GAME` that say something about peers, and how it ended.
#[derive(Debug, Default)]
struct Seen {
    begin_peers: Vec<SocketAddr>,
    peer_complaints: Vec<String>,
}

/// Runs a download of `files` to its end: `Ok(peers used)` or `Err(reason)`; once it has
/// begun, fills `fill` (if given).
async fn download(
    peer: &mut TestPeer,
    files: &[GameFileDescription],
    seen: &mut Seen,
    fill: Option<&Tmpfs>,
) -> Result<usize, String> {
    peer.runtime
        .send(PeerCommand::DownloadGameFiles {
            id: GAME.into(),
            files: files.to_vec(),
        })
        .await
        .unwrap();
    peer.wait_for("the download to end", |event| match event {
        PeerEvent::DownloadGameFilesBegin { peers, .. } => {
            seen.begin_peers = peers.clone();
            if let Some(tmpfs) = fill {
                tmpfs.fill();
            }
            None
        }
        PeerEvent::DownloadPeersExcluded { peers, .. } => {
            seen.peer_complaints.push(format!("excluded: {peers:?}"));
            None
        }
        PeerEvent::DownloadGameFilesFinished { summary, .. } => Some(Ok(summary.peers_used.len())),
        PeerEvent::DownloadGameFilesFailed { reason, .. } => Some(Err(reason.clone())),
        PeerEvent::DownloadGameFilesCancelled { .. } => Some(Err("cancelled".into())),
        PeerEvent::OperationRefused { reason, .. } => Some(Err(format!("refused: {reason}"))),
        _ => None,
    })
    .await
}

/// Sends `command` (an install) and waits for its end: `Ok(updated)` or `Err(reason)`; once
/// it has begun, fills `fill` (if given).
async fn install(
    peer: &mut TestPeer,
    command: PeerCommand,
    seen: &mut Seen,
    fill: Option<&Tmpfs>,
) -> Result<bool, String> {
    peer.runtime.send(command).await.unwrap();
    peer.wait_for("the install to end", |event| match event {
        PeerEvent::InstallGameBegin { .. } => {
            if let Some(tmpfs) = fill {
                tmpfs.fill();
            }
            None
        }
        PeerEvent::StreamInstallAttemptFailed { peer, reason, .. } => {
            seen.peer_complaints.push(format!("{peer}: {reason}"));
            None
        }
        PeerEvent::DownloadPeersExcluded { peers, .. } => {
            seen.peer_complaints.push(format!("excluded: {peers:?}"));
            None
        }
        PeerEvent::InstallGameFinished { updated, .. } => Some(Ok(*updated)),
        PeerEvent::InstallGameFailed { reason, .. } => Some(Err(reason.clone())),
        PeerEvent::OperationRefused { reason, .. } => Some(Err(format!("refused: {reason}"))),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_does_not_fit_fails_naming_the_path_and_free_space_and_blames_no_peer() {
    let files = vec![
        ("oa.zip", pseudo_random_bytes(3, 12_000_000)),
        ("maps/dm1.pk3", pseudo_random_bytes(4, 100_000)),
    ];
    let seeds = [seed("2", &files), seed("2", &files)];
    let addrs: Vec<SocketAddr> = seeds.iter().map(TestPeer::addr).collect();
    let Some((mut downloader, tmpfs)) = peer_on_tmpfs(&addrs, "download", |games| {
        install_old_version(&games.join(GAME));
        fs::write(games.join(GAME).join("version.ini"), "1").unwrap();
    }) else {
        return;
    };
    let root = downloader.game_dir().join(GAME);
    let local_before = read_tree(&root.join("local"));
    let wanted = file_list(&mut downloader, 2).await;

    let mut seen = Seen::default();
    let reason = download(&mut downloader, &wanted, &mut seen, Some(&tmpfs))
        .await
        .expect_err("the download cannot fit");
    // Blocks are fetched rarest-first in random order, so either file may be the one
    // being written when the disk fills; the reason names that one.
    let failed_file = files
        .iter()
        .map(|(path, _)| root.join(path))
        .find(|path| reason.contains(&path.display().to_string()))
        .unwrap_or_else(|| root.join(files[0].0));
    assert_names_path_and_free_space(&reason, &failed_file);
    assert_blames_no_peer(&reason, &addrs);
    assert!(seen.peer_complaints.is_empty(), "{:?}", seen.peer_complaints);
    assert_eq!(read_tree(&root.join("local")), local_before, "local/ untouched");
    // What was verified before the disk filled stays for the retry to resume from.
    assert!(root.join("oa.zip").exists(), "the partial payload stays for a resume");
    assert!(
        !root.join("version.ini").exists(),
        "but the game is not taken for downloaded"
    );
    assert_no_reserved_leftovers(&root);

    // Space freed: the same seeds serve the retry, none of them left out.
    tmpfs.unfill();
    let mut seen = Seen::default();
    let used = download(&mut downloader, &wanted, &mut seen, None)
        .await
        .expect("the retry fits");
    assert!(used > 0);
    let (mut began, mut expected) = (seen.begin_peers.clone(), addrs.clone());
    began.sort();
    expected.sort();
    assert_eq!(began, expected, "every seed takes part in the retry");
    assert!(seen.peer_complaints.is_empty(), "{:?}", seen.peer_complaints);
    for (path, bytes) in &files {
        assert!(
            fs::read(root.join(path)).unwrap() == *bytes,
            "{path} differs from the seeds'"
        );
    }
    assert_eq!(fs::read_to_string(root.join("version.ini")).unwrap(), "2");
    assert_eq!(read_tree(&root.join("local")), local_before);
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_that_does_not_fit_fails_naming_the_path_and_free_space_and_keeps_local() {
    let tree = big_tree();
    let Some((mut peer, tmpfs)) = peer_on_tmpfs(&[], "install", |games| {
        let root = games.join(GAME);
        install_old_version(&root);
        write_zip(&root.join("game.zip"), &tree);
        fs::write(root.join("version.ini"), "2").unwrap();
    }) else {
        return;
    };
    let root = peer.game_dir().join(GAME);
    peer.wait_for_snapshot("the local game", |s| {
        s.game(GAME).is_some_and(|g| g.local_version.as_deref() == Some("2"))
    })
    .await;
    tmpfs.fill();

    let mut seen = Seen::default();
    let reason = install(&mut peer, PeerCommand::InstallGame { id: GAME.into() }, &mut seen, None)
        .await
        .expect_err("the unpack cannot fit");
    assert_names_path_and_free_space(&reason, &root.join(".local.installing"));
    assert_eq!(
        read_tree(&root.join("local")),
        sample_tree(),
        "the old local/ is intact"
    );
    assert_no_reserved_leftovers(&root);

    tmpfs.unfill();
    let updated = install(&mut peer, PeerCommand::InstallGame { id: GAME.into() }, &mut seen, None).await;
    assert_eq!(updated, Ok(true));
    assert_eq!(read_tree(&root.join("local")), tree);
    assert_no_reserved_leftovers(&root);
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_install_that_does_not_fit_fails_at_once_without_trying_the_next_sender() {
    let tree = big_tree();
    let zip = tempfile::tempdir().unwrap();
    write_zip(&zip.path().join("game.zip"), &tree);
    let archive = fs::read(zip.path().join("game.zip")).unwrap();
    let seeds = [
        seed("2", &[("game.zip", archive.clone())]),
        seed("2", &[("game.zip", archive)]),
    ];
    let addrs: Vec<SocketAddr> = seeds.iter().map(TestPeer::addr).collect();
    let Some((mut receiver, tmpfs)) = peer_on_tmpfs(&addrs, "streamed install", |games| {
        install_old_version(&games.join(GAME));
    }) else {
        return;
    };
    let root = receiver.game_dir().join(GAME);
    receiver
        .wait_for_snapshot("both senders", |s| s.game(GAME).is_some_and(|g| g.peers.len() == 2))
        .await;

    let mut seen = Seen::default();
    let command = || PeerCommand::StreamInstallGame { id: GAME.into() };
    let reason = install(&mut receiver, command(), &mut seen, Some(&tmpfs))
        .await
        .expect_err("the stream cannot fit");
    assert_names_path_and_free_space(&reason, &root.join(".local.installing"));
    assert_blames_no_peer(&reason, &addrs);
    assert!(
        seen.peer_complaints.is_empty(),
        "no sender is blamed or tried next: {:?}",
        seen.peer_complaints
    );
    assert_eq!(
        read_tree(&root.join("local")),
        sample_tree(),
        "the old local/ is intact"
    );
    assert_no_reserved_leftovers(&root);

    tmpfs.unfill();
    let updated = install(&mut receiver, command(), &mut seen, None).await;
    assert_eq!(updated, Ok(true), "{:?}", seen.peer_complaints);
    assert!(seen.peer_complaints.is_empty(), "{:?}", seen.peer_complaints);
    assert_eq!(read_tree(&root.join("local")), tree);
    assert_no_reserved_leftovers(&root);
    drop(tmpfs);
}
