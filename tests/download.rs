//! The download pipeline on loopback peers: byte-identical results from 1-3
//! peers, `version.ini` last, majority validation, a peer lost mid-download,
//! every peer lost, cancel, and an update over an installed game.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lanspread::peer::{DownloadProgress, GameState, OperationKind, PeerCommand, PeerEvent};
use support::peer::{Downloaded, GameFiles};
use support::{Ended, Outcome, TestPeer, pseudo_random_bytes, start_test_peer, write_game};

const GAME: &str = "openarena";

/// A game of several chunks per file (8 MiB chunks), with a subdirectory and an empty file.
fn game_files(seed: u64) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("oa-part1.zip", pseudo_random_bytes(seed, 10_000_000)),
        ("oa-part2.zip", pseudo_random_bytes(seed + 1, 12_500_000)),
        ("maps/dm1.pk3", pseudo_random_bytes(seed + 2, 2_000_001)),
        ("empty.txt", Vec::new()),
    ]
}

/// Starts `count` peers serving the same game, each capped to `cap` bytes/s if given.
fn serving_peers(count: usize, version: &str, files: &[(&'static str, Vec<u8>)], cap: Option<u64>) -> Vec<TestPeer> {
    (0..count)
        .map(|_| {
            TestPeer::builder()
                .config(|c| c.upload_limit = cap)
                .game(GAME, version, files)
                .start()
        })
        .collect()
}

/// Waits until `peer` sees `GAME` on `count` peers, then fetches its file list, which must be at `version`.
async fn file_list(peer: &mut TestPeer, version: &str, count: usize) -> GameFiles {
    peer.wait_for_holders(GAME, count).await;
    let list = peer.fetch_files(GAME).await.unwrap();
    assert_eq!(list.version, version);
    list
}

/// Every progress sample seen while the download ran.
fn samples(ended: &Ended<Downloaded>) -> Vec<DownloadProgress> {
    ended
        .seen
        .iter()
        .filter_map(|event| match event {
            PeerEvent::DownloadProgress(sample) => Some(sample.clone()),
            _ => None,
        })
        .collect()
}

/// The local-library change events seen while the download ran (which must not name the game).
fn changes_while_running(ended: &Ended<Downloaded>) -> Vec<String> {
    ended
        .seen
        .iter()
        .filter_map(|event| match event {
            PeerEvent::LocalLibraryChanged { ids } => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn assert_tree_matches(root: &Path, files: &[(&str, Vec<u8>)], version: &str) {
    for (path, bytes) in files {
        let got = std::fs::read(root.join(path)).unwrap_or_else(|err| panic!("{path}: {err}"));
        assert!(
            got == *bytes,
            "{path} differs from the source ({} vs {} bytes)",
            got.len(),
            bytes.len()
        );
    }
    assert_eq!(std::fs::read_to_string(root.join("version.ini")).unwrap(), version);
    for leftover in [".version.ini.tmp", ".version.ini.discarded"] {
        assert!(!root.join(leftover).exists(), "{leftover} left behind");
    }
}

fn assert_monotone_to(samples: &[DownloadProgress], total: u64) {
    assert!(!samples.is_empty(), "no progress samples");
    for pair in samples.windows(2) {
        assert!(
            pair[1].bytes_done >= pair[0].bytes_done,
            "progress went backwards: {pair:?}"
        );
    }
    let last = samples.last().unwrap();
    assert_eq!((last.bytes_done, last.total_bytes), (total, total), "final sample");
}

fn total_size(files: &[(&str, Vec<u8>)], version: &str) -> u64 {
    files.iter().map(|(_, b)| b.len() as u64).sum::<u64>() + version.len() as u64
}

/// Polls for `version.ini` on a thread; when it first appears, checks that every payload file is already complete.
struct SentinelWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Option<Result<(), String>>>,
}

impl SentinelWatch {
    fn start(root: PathBuf, files: Vec<(&'static str, Vec<u8>)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            loop {
                if root.join("version.ini").exists() {
                    let incomplete: Vec<_> = files
                        .iter()
                        .filter(|(path, bytes)| std::fs::read(root.join(path)).ok().as_ref() != Some(bytes))
                        .map(|(path, _)| *path)
                        .collect();
                    return Some(if incomplete.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("version.ini appeared before {incomplete:?} were complete"))
                    });
                }
                // Checked after the file, so a stop after the download finished still sees the sentinel.
                if flag.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        SentinelWatch { stop, thread }
    }

    /// `Some(check)` if the sentinel appeared while watching.
    fn finish(self) -> Option<Result<(), String>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_from_one_two_and_three_peers_are_byte_identical_with_the_sentinel_last() {
    let files = game_files(10);
    let version = "20240301";
    for count in 1..=3 {
        // A cap makes the download last long enough for the sentinel watcher to see it.
        let servers = serving_peers(count, version, &files, Some(60_000_000));
        let addrs: Vec<SocketAddr> = servers.iter().map(TestPeer::addr).collect();
        let mut downloader = start_test_peer(&addrs, |_| {});
        let wanted = file_list(&mut downloader, version, count).await;
        let root = downloader.game_dir().join(GAME);
        let watch = SentinelWatch::start(root.clone(), files.clone());

        downloader.start_download(GAME, wanted.files).await;
        let ended = downloader.wait_for_download_end(GAME).await;
        let Outcome::Finished(Downloaded {
            summary,
            version: got_version,
        }) = &ended.outcome
        else {
            panic!("{count} peer(s): {:?}", ended.outcome);
        };
        assert_eq!(got_version, version);
        let mut used = summary.peers_used.clone();
        used.sort();
        let mut expected = addrs.clone();
        expected.sort();
        assert_eq!(used, expected, "every peer delivered part of the game");
        assert_eq!(summary.bytes, total_size(&files, version));

        match watch.finish() {
            Some(check) => check.unwrap_or_else(|err| panic!("{count} peer(s): {err}")),
            None => panic!("{count} peer(s): the watcher never saw version.ini"),
        }
        assert_tree_matches(&root, &files, version);
        assert_monotone_to(&samples(&ended), total_size(&files, version));
        let snapshot = downloader
            .wait_for_snapshot("the rescan after the download", |s| {
                s.game(GAME).is_some_and(|g| g.state == GameState::Downloaded)
            })
            .await;
        assert_eq!(snapshot.game(GAME).unwrap().local_version.as_deref(), Some(version));

        downloader.runtime.shutdown().await;
        for server in servers {
            server.runtime.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_lying_about_a_file_size_is_left_out_by_majority() {
    let files = game_files(20);
    let mut lying_files = files.clone();
    lying_files[1].1.extend_from_slice(b"a few more bytes");
    let mut servers = serving_peers(2, "3", &files, None);
    servers.extend(serving_peers(1, "3", &lying_files, None));
    let liar = servers[2].addr();
    let addrs: Vec<SocketAddr> = servers.iter().map(TestPeer::addr).collect();
    let mut downloader = start_test_peer(&addrs, |_| {});
    let wanted = file_list(&mut downloader, "3", 3).await;
    assert_eq!(
        wanted.files.iter().find(|f| f.path == "oa-part2.zip").unwrap().size,
        12_500_000
    );

    downloader.start_download(GAME, wanted.files).await;
    let excluded = downloader
        .wait_for("the liar to be excluded", |event| match event {
            PeerEvent::DownloadPeersExcluded { peers, .. } => Some(peers.clone()),
            _ => None,
        })
        .await;
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0].0, liar);
    assert!(excluded[0].1.contains("oa-part2.zip"), "{}", excluded[0].1);
    let ended = downloader.wait_for_download_end(GAME).await;
    let Outcome::Finished(Downloaded { summary, .. }) = &ended.outcome else {
        panic!("{:?}", ended.outcome);
    };
    assert!(!summary.peers_used.contains(&liar));
    assert_tree_matches(&downloader.game_dir().join(GAME), &files, "3");
}

/// One peer lists a file the others do not, one lacks a file the others have: the two
/// are left out, each with its reason, and the download goes on from the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_an_extra_or_a_missing_file_are_left_out_and_the_rest_serve() {
    let files = game_files(25);
    let mut with_extra = files.clone();
    with_extra.push(("extra.txt", b"only this peer has it\n".to_vec()));
    let lacking = files[1..].to_vec();
    let mut servers = serving_peers(2, "4", &files, None);
    servers.extend(serving_peers(1, "4", &with_extra, None));
    servers.extend(serving_peers(1, "4", &lacking, None));
    let (extra_peer, lacking_peer) = (servers[2].addr(), servers[3].addr());
    let addrs: Vec<SocketAddr> = servers.iter().map(TestPeer::addr).collect();
    let mut downloader = start_test_peer(&addrs, |_| {});
    let wanted = file_list(&mut downloader, "4", 4).await;
    assert!(
        !wanted.files.iter().any(|f| f.path == "extra.txt"),
        "a file one peer of four lists is not in the list"
    );

    downloader.start_download(GAME, wanted.files).await;
    let excluded = downloader
        .wait_for("the two dissenters to be excluded", |event| match event {
            PeerEvent::DownloadPeersExcluded { peers, .. } => Some(peers.clone()),
            _ => None,
        })
        .await;
    let reasons: BTreeMap<SocketAddr, String> = excluded.into_iter().collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[&extra_peer].contains("lists extra.txt"), "{reasons:?}");
    assert!(
        reasons[&lacking_peer].contains(&format!("lacks {}", files[0].0)),
        "{reasons:?}"
    );
    let ended = downloader.wait_for_download_end(GAME).await;
    let Outcome::Finished(Downloaded { summary, .. }) = &ended.outcome else {
        panic!("{:?}", ended.outcome);
    };
    assert!(!summary.peers_used.contains(&extra_peer) && !summary.peers_used.contains(&lacking_peer));
    assert_tree_matches(&downloader.game_dir().join(GAME), &files, "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_lost_mid_download_is_replaced_by_the_others() {
    let files = game_files(30);
    let servers = serving_peers(3, "7", &files, Some(8_000_000));
    let addrs: Vec<SocketAddr> = servers.iter().map(TestPeer::addr).collect();
    let mut downloader = start_test_peer(&addrs, |_| {});
    let wanted = file_list(&mut downloader, "7", 3).await;
    downloader.start_download(GAME, wanted.files).await;
    downloader.wait_for_download_progress(GAME).await;

    let mut servers = servers;
    let lost = servers.remove(0);
    lost.runtime.shutdown().await;
    let ended = downloader.wait_for_download_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Finished(_)), "{:?}", ended.outcome);
    assert_tree_matches(&downloader.game_dir().join(GAME), &files, "7");
    assert_monotone_to(&samples(&ended), total_size(&files, "7"));
}

/// An installed older version, with the archive names the new version reuses.
fn install_old_version(games: &Path) {
    write_game(
        games,
        GAME,
        "1",
        &[("oa-part1.zip", vec![1; 1000]), ("old-only.zip", vec![2; 10])],
    );
    std::fs::create_dir_all(games.join(GAME).join("local")).unwrap();
    std::fs::write(games.join(GAME).join("local/game.exe"), b"the installed game").unwrap();
}

fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut tree = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                tree.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    tree
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_lost_mid_download_fails_keeping_the_partial_payload_and_local() {
    let files = game_files(40);
    let servers = serving_peers(2, "2", &files, Some(5_000_000));
    let addrs: Vec<SocketAddr> = servers.iter().map(TestPeer::addr).collect();
    let mut downloader = start_test_peer(&addrs, install_old_version);
    let root = downloader.game_dir().join(GAME);
    let local_before = snapshot_tree(&root.join("local"));
    let wanted = file_list(&mut downloader, "2", 2).await;
    downloader.start_download(GAME, wanted.files).await;
    downloader.wait_for_download_progress(GAME).await;
    for server in servers {
        server.runtime.shutdown().await;
    }

    let ended = downloader.wait_for_download_end(GAME).await;
    let Outcome::Failed(reason) = &ended.outcome else {
        panic!("{:?}", ended.outcome);
    };
    assert!(
        reason.contains("every peer failed") || reason.contains("failed 5 times"),
        "{reason}"
    );
    for gone in [".version.ini.tmp", ".version.ini.discarded", "version.ini"] {
        assert!(
            !root.join(gone).exists(),
            "{gone} should be gone: the game is not downloaded"
        );
    }
    // The payload stays for a resume (see tests/resume.rs), at its final size.
    for (path, bytes) in files.iter().filter(|(path, _)| *path != "version.ini") {
        let len = std::fs::metadata(root.join(path)).map(|meta| meta.len());
        assert_eq!(len.ok(), Some(bytes.len() as u64), "{path} is kept for a resume");
    }
    assert_eq!(snapshot_tree(&root.join("local")), local_before, "local/ untouched");
    assert!(
        root.join("old-only.zip").exists(),
        "files outside the download are not ours to delete"
    );
    let active = downloader
        .wait_for("no active operations", |event| match event {
            PeerEvent::ActiveOperations(ops) => Some(ops.clone()),
            _ => None,
        })
        .await;
    assert!(active.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_download_cleans_up_and_a_new_download_then_works() {
    let files = game_files(50);
    let servers = serving_peers(1, "5", &files, Some(10_000_000));
    let mut downloader = start_test_peer(&[servers[0].addr()], |_| {});
    let root = downloader.game_dir().join(GAME);
    let wanted = file_list(&mut downloader, "5", 1).await.files;
    downloader.start_download(GAME, wanted.clone()).await;
    let active = downloader
        .wait_for("the download to be active", |event| match event {
            PeerEvent::ActiveOperations(ops) if !ops.is_empty() => Some(ops.clone()),
            _ => None,
        })
        .await;
    assert_eq!((active[0].id.as_str(), active[0].kind), (GAME, OperationKind::Download));
    downloader.wait_for_download_progress(GAME).await;

    // A second download of the same game is refused while the first runs.
    downloader.start_download(GAME, wanted.clone()).await;
    let refused = downloader.wait_for_refusal(GAME).await;
    assert!(refused.contains("already running"), "{refused}");

    downloader.cancel(GAME).await;
    let ended = downloader.wait_for_download_end(GAME).await;
    assert_eq!(ended.outcome, Outcome::Cancelled);
    assert!(
        !root.exists(),
        "a root the cancelled download created is removed: {:?}",
        snapshot_tree(&root)
    );

    downloader.start_download(GAME, wanted).await;
    let ended = downloader.wait_for_download_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Finished(_)), "{:?}", ended.outcome);
    assert_tree_matches(&root, &files, "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_download_keeps_what_it_verified_and_the_next_one_fetches_only_the_rest() {
    let files = game_files(70);
    let total: u64 = files.iter().map(|(_, bytes)| bytes.len() as u64).sum();
    let servers = serving_peers(1, "7", &files, Some(10_000_000));
    let mut downloader = start_test_peer(&[servers[0].addr()], |_| {});
    let root = downloader.game_dir().join(GAME);
    let wanted = file_list(&mut downloader, "7", 1).await.files;
    downloader.start_download(GAME, wanted.clone()).await;
    // Half verified: requests have ended and been journaled by then. (At the first verified
    // block, the request bringing it may still run: the pause drops it unjournaled, and
    // nothing was kept.)
    downloader
        .wait_for("half of the download verified", |event| {
            matches!(event, PeerEvent::DownloadProgress(sample) if sample.id == GAME && sample.bytes_done >= total / 2)
                .then_some(())
        })
        .await;

    downloader.send(PeerCommand::PauseDownload { id: GAME.into() }).await;
    let ended = downloader.wait_for_download_end(GAME).await;
    assert_eq!(ended.outcome, Outcome::Paused);
    let snapshot = downloader
        .wait_for_snapshot("the paused download listed as partial", |s| {
            s.game(GAME).is_some_and(|game| game.partial.is_some())
        })
        .await;
    let kept = snapshot.game(GAME).unwrap().partial.clone().unwrap();
    assert!(kept.done > 0 && kept.done < total, "{kept:?} of {total}");
    assert!(root.exists(), "the paused download's files stay");

    // A pause of nothing running is refused, with why.
    downloader.send(PeerCommand::PauseDownload { id: GAME.into() }).await;
    let refused = downloader.wait_for_refusal(GAME).await;
    assert!(refused.contains("only a download can be paused"), "{refused}");

    downloader.start_download(GAME, wanted).await;
    let ended = downloader.wait_for_download_end(GAME).await;
    let Outcome::Finished(done) = ended.outcome else {
        panic!("{:?}", ended.outcome);
    };
    assert!(
        done.summary.reused >= kept.done,
        "{:?} reused, {} kept",
        done.summary,
        kept.done
    );
    assert_tree_matches(&root, &files, "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_parks_the_old_sentinel_and_leaves_local_alone() {
    let files = game_files(60);
    let servers = serving_peers(1, "2", &files, Some(10_000_000));
    let mut downloader = start_test_peer(&[servers[0].addr()], install_old_version);
    let root = downloader.game_dir().join(GAME);
    let local_before = snapshot_tree(&root.join("local"));
    downloader
        .wait_for_snapshot("the update to be offered", |s| {
            s.game(GAME).is_some_and(|g| g.state == GameState::UpdateAvailable)
        })
        .await;
    let wanted = downloader.fetch_latest_files(GAME).await.unwrap();
    downloader.start_download(GAME, wanted.files).await;
    downloader.wait_for_download_progress(GAME).await;
    assert!(
        !root.join("version.ini").exists(),
        "the old sentinel is parked during the download"
    );
    assert_eq!(std::fs::read(root.join(".version.ini.discarded")).unwrap(), b"1");
    assert_eq!(snapshot_tree(&root.join("local")), local_before);

    let ended = downloader.wait_for_download_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Finished(_)), "{:?}", ended.outcome);
    let changes = changes_while_running(&ended);
    assert!(
        !changes.iter().any(|id| id == GAME),
        "the half-written game was rescanned during its download: {changes:?}"
    );
    assert_tree_matches(&root, &files, "2");
    assert_eq!(
        snapshot_tree(&root.join("local")),
        local_before,
        "local/ untouched until install"
    );
    let snapshot = downloader
        .wait_for_snapshot("the new version in the library", |s| {
            s.game(GAME).is_some_and(|g| g.local_version.as_deref() == Some("2"))
        })
        .await;
    assert_eq!(snapshot.game(GAME).unwrap().state, GameState::Installed);
}
