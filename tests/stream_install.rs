//! Streamed install scenarios on loopback peers. Run one with e.g.
//! `cargo test --test stream_install corrupted_chunk`.
//!
//! Real senders listen on 127.0.0.2; scripted fake senders on 127.0.0.1, so
//! they sort first and the receiver (which tries validated peers in address
//! order) meets them first.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use lanspread::config::Limits;
use lanspread::install::unpack::{ArchiveUnpacker, Unpacker};
use lanspread::install::{Failpoints, Transaction, recover};
use lanspread::peer::client::PeerClient;
use lanspread::peer::stream_install::receiver::StreamedInstallTransaction;
use lanspread::peer::stream_install::wire::{StreamControl, StreamFrame, write_stream_frame};
use lanspread::peer::transport::make_endpoint;
use lanspread::peer::{GameState, PeerCommand, PeerEvent};
use lanspread::proto::{GameDetails, Request, Response, write_frame};
use support::archives::{Tree, read_tree, sample_tree};
use support::fake::{fake_peer, not_scripted, send_listing};
use support::{Ended, Outcome, TestPeer, pseudo_random_bytes, start_test_peer};

const GAME: &str = "openarena";
const VERSION: &str = "20240301";

fn big_tree() -> Tree {
    let mut tree = sample_tree();
    tree.insert("data/big.bin".into(), Some(pseudo_random_bytes(11, 12_000_000)));
    tree
}

/// A real sender on 127.0.0.2 sharing `GAME` as a zip of `tree`, optionally with an upload cap.
fn sender(tree: &Tree, cap: Option<u64>) -> TestPeer {
    TestPeer::builder()
        .config(|c| {
            c.listen = "127.0.0.2:0".parse().unwrap();
            c.upload_limit = cap;
        })
        .zipped_game(GAME, VERSION, tree)
        .start()
}

/// What a scripted sender announces and streams.
#[derive(Clone)]
struct Script {
    details: GameDetails,
    frames: Vec<StreamFrame>,
}

/// A fake sender on 127.0.0.1 that answers like a peer and streams `script.frames`.
fn fake_sender(script: Script) -> SocketAddr {
    let script = Arc::new(script);
    fake_peer(GAME, VERSION, move |request, mut send| {
        let script = script.clone();
        async move {
            match request {
                Request::GetGame { .. } => send_listing(&mut send, &script.details).await,
                Request::StreamInstall { .. } => {
                    write_frame(&mut send, &Response::StreamInstallAccepted).await.unwrap();
                    for frame in &script.frames {
                        if write_stream_frame(&mut send, frame).await.is_err() {
                            return;
                        }
                    }
                    let _ = send.finish();
                }
                _ => not_scripted(send).await,
            }
        }
    })
}

fn control(control: StreamControl) -> StreamFrame {
    StreamFrame::Control(control)
}

/// Frames for one file; `archive_crc` as a sender would put it in `BeginFile`.
fn file_frames(path: &str, bytes: &[u8], archive_crc: Option<u32>) -> Vec<StreamFrame> {
    vec![
        control(StreamControl::BeginFile {
            path: path.into(),
            size: bytes.len() as u64,
            crc32: archive_crc,
        }),
        StreamFrame::Data(Bytes::copy_from_slice(bytes)),
        control(StreamControl::EndFile { crc32: None }),
    ]
}

/// The sender's file list, once it has hashed and published the game.
async fn details_of(sender: &mut TestPeer) -> GameDetails {
    sender
        .wait_for_snapshot("the sender's own scan", |s| s.game(GAME).is_some())
        .await;
    sender.wait_for_hashing_done().await;
    let client = PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    client.get_game(sender.addr(), GAME).await.unwrap()
}

/// Starts a streamed install once the receiver sees `peers` peers with the game.
async fn start_stream(receiver: &mut TestPeer, peers: usize) {
    receiver.wait_for_holders(GAME, peers).await;
    receiver.send(PeerCommand::StreamInstallGame { id: GAME.into() }).await;
}

/// The failed attempts (sender and reason) seen before the install ended.
fn attempts(ended: &Ended<bool>) -> Vec<(SocketAddr, String)> {
    ended
        .seen
        .iter()
        .filter_map(|event| match event {
            PeerEvent::StreamInstallAttemptFailed { peer, reason, .. } => Some((*peer, reason.clone())),
            _ => None,
        })
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_install_matches_a_normal_install_and_stores_no_archive() {
    let tree = big_tree();
    let server = sender(&tree, None);
    let mut client = start_test_peer(&[server.addr()], |_| {});
    start_stream(&mut client, 1).await;
    let ended = client.wait_for_install_end(GAME).await;
    assert_eq!(ended.outcome, Outcome::Finished(false), "{:?}", attempts(&ended));

    let root = client.game_dir().join(GAME);
    let normal = tempfile::tempdir().unwrap();
    ArchiveUnpacker
        .unpack(&server.game_dir().join(GAME), normal.path(), &mut |_| {}, &|| false)
        .unwrap();
    assert_eq!(
        read_tree(&root.join("local")),
        read_tree(normal.path()),
        "local/ equals a normal install"
    );
    assert_eq!(read_tree(&root.join("local")), tree);
    assert_eq!(
        entries(&root),
        [".lanspread_installed", "local"],
        "no archive, no version.ini, nothing else lands"
    );
    let snapshot = client
        .wait_for_snapshot("installed", |s| s.game(GAME).is_some_and(|g| g.installed))
        .await;
    // Installed, and named for what it is: there are no archives here.
    assert_eq!(snapshot.game(GAME).unwrap().state, GameState::InstalledStreamed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_cancel_releases_the_senders_transfer_guard() {
    let server = sender(&big_tree(), Some(4_000_000));
    let mut client = start_test_peer(&[server.addr()], |_| {});
    start_stream(&mut client, 1).await;
    client.wait_for_install_progress(GAME).await;
    client.cancel(GAME).await;
    let ended = client.wait_for_install_end(GAME).await;
    assert_eq!(ended.outcome, Outcome::Failed("cancelled".into()));
    assert!(
        !client.game_dir().join(GAME).exists(),
        "the root the stream created is rolled back"
    );

    // The sender's producer ended and dropped its guard: the same game streams again from it.
    let mut second = start_test_peer(&[server.addr()], |_| {});
    start_stream(&mut second, 1).await;
    let ended = second.wait_for_install_end(GAME).await;
    assert_eq!(ended.outcome, Outcome::Finished(false), "{:?}", attempts(&ended));
    assert_eq!(read_tree(&second.game_dir().join(GAME).join("local")), big_tree());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_connection_killed_mid_stream_falls_back_to_the_next_peer() {
    let tree = big_tree();
    let mut servers = vec![sender(&tree, Some(4_000_000)), sender(&tree, Some(4_000_000))];
    servers.sort_by_key(TestPeer::addr);
    let addrs: Vec<SocketAddr> = servers.iter().map(TestPeer::addr).collect();
    let mut client = start_test_peer(&addrs, |_| {});
    start_stream(&mut client, 2).await;
    client.wait_for_install_progress(GAME).await;

    // The first peer in address order is the one streaming: kill it.
    let first = servers.remove(0);
    first.runtime.shutdown().await;
    let ended = client.wait_for_install_end(GAME).await;
    assert_eq!(ended.outcome, Outcome::Finished(false));
    let attempts = attempts(&ended);
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].0, addrs[0]);
    assert_eq!(read_tree(&client.game_dir().join(GAME).join("local")), tree);
    assert_eq!(
        entries(&client.game_dir().join(GAME)),
        [".lanspread_installed", "local"],
        "the failed attempt's staging is gone"
    );
}

/// A fake whose single file arrives with a flipped byte (its CRC32 is of the original).
fn corrupting_script(details: GameDetails) -> Script {
    let original = b"the real bytes of a file".to_vec();
    let mut corrupted = original.clone();
    corrupted[3] ^= 0x20;
    let mut frames = file_frames("readme.txt", &corrupted, Some(crc32fast::hash(&original)));
    frames.push(control(StreamControl::Done {
        files: 1,
        dirs: 0,
        bytes: corrupted.len() as u64,
    }));
    Script { details, frames }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_chunk_fails_the_attempt_and_falls_back() {
    let tree = sample_tree();
    let mut server = sender(&tree, None);
    let fake = fake_sender(corrupting_script(details_of(&mut server).await));
    assert!(fake < server.addr());
    let mut client = start_test_peer(&[fake, server.addr()], |_| {});
    start_stream(&mut client, 2).await;
    let ended = client.wait_for_install_end(GAME).await;
    assert_eq!(ended.outcome, Outcome::Finished(false));
    let attempts = attempts(&ended);
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].0, fake);
    assert!(attempts[0].1.contains("CRC32"), "{}", attempts[0].1);
    assert_eq!(read_tree(&client.game_dir().join(GAME).join("local")), tree);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_failing_rolls_back_a_created_root_and_keeps_an_existing_one() {
    let details = GameDetails {
        id: GAME.into(),
        version: VERSION.into(),
        files: vec![],
    };
    let fakes = [
        fake_sender(corrupting_script(details.clone())),
        fake_sender(corrupting_script(details.clone())),
    ];

    let mut fresh = start_test_peer(&fakes, |_| {});
    start_stream(&mut fresh, 2).await;
    let ended = fresh.wait_for_install_end(GAME).await;
    assert!(
        matches!(&ended.outcome, Outcome::Failed(reason) if reason.contains("every peer failed")),
        "{:?}",
        ended.outcome
    );
    assert_eq!(attempts(&ended).len(), 2);
    assert!(
        !fresh.game_dir().join(GAME).exists(),
        "a root this install created is removed"
    );

    let mut existing = start_test_peer(&fakes, |games| {
        fs::create_dir_all(games.join(GAME)).unwrap();
        fs::write(games.join(GAME).join("version.ini"), "1").unwrap();
        fs::write(games.join(GAME).join("old.zip"), b"downloaded archive").unwrap();
    });
    start_stream(&mut existing, 2).await;
    let ended = existing.wait_for_install_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Failed(_)), "{:?}", ended.outcome);
    assert_eq!(
        entries(&existing.game_dir().join(GAME)),
        ["old.zip", "version.ini"],
        "a pre-existing root stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_member_without_crc_installs_non_empty_without_crc_fails() {
    let details = GameDetails {
        id: GAME.into(),
        version: VERSION.into(),
        files: vec![],
    };
    let mut empty = file_frames("empty.dat", b"", None);
    empty.push(control(StreamControl::Done {
        files: 1,
        dirs: 0,
        bytes: 0,
    }));
    let fake = fake_sender(Script {
        details: details.clone(),
        frames: empty,
    });
    let mut client = start_test_peer(&[fake], |_| {});
    start_stream(&mut client, 1).await;
    assert_eq!(
        client.wait_for_install_end(GAME).await.outcome,
        Outcome::Finished(false)
    );
    assert_eq!(
        fs::read(client.game_dir().join(GAME).join("local/empty.dat")).unwrap(),
        b""
    );

    let mut non_empty = file_frames("data.dat", b"some bytes", None);
    non_empty.push(control(StreamControl::Done {
        files: 1,
        dirs: 0,
        bytes: 10,
    }));
    let fake = fake_sender(Script {
        details,
        frames: non_empty,
    });
    let mut client = start_test_peer(&[fake], |_| {});
    start_stream(&mut client, 1).await;
    let ended = client.wait_for_install_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Failed(_)), "{:?}", ended.outcome);
    let attempts = attempts(&ended);
    assert!(attempts[0].1.contains("no CRC32"), "{attempts:?}");
    assert!(!client.game_dir().join(GAME).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_after_promotion_still_reports_success_and_recovery_cleans_up() {
    let games = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let mut frames = file_frames("game.exe", b"binary", Some(crc32fast::hash(b"binary")));
    frames.push(control(StreamControl::Done {
        files: 1,
        dirs: 0,
        bytes: 6,
    }));
    for frame in frames {
        tx.try_send(frame).unwrap();
    }
    drop(tx);
    let (games_dir, state_dir) = (games.path().to_owned(), state.path().to_owned());
    let completed = tokio::task::spawn_blocking(move || {
        StreamedInstallTransaction {
            transaction: Transaction {
                game_dir: &games_dir,
                state_dir: &state_dir,
                id: GAME,
                failpoints: Failpoints {
                    crash_after: None,
                    fail_at: Some(lanspread::install::Step::IntentRemoved),
                },
            },
            version: "1",
        }
        .run(&mut rx, &mut |_| {}, &|| false)
    })
    .await
    .unwrap()
    .expect("bytes already in local/ are a successful install");
    assert!(
        !completed.warnings.is_empty(),
        "the cleanup failure is reported as a warning"
    );
    let intent = lanspread::install::intent::intent_path(state.path(), GAME);
    assert!(intent.exists(), "the journal is left for recovery");
    recover(games.path(), state.path());
    assert!(!intent.exists(), "recovery finished the cleanup");
    assert_eq!(
        fs::read(games.path().join(GAME).join("local/game.exe")).unwrap(),
        b"binary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_update_keeps_the_old_local_until_promotion_and_restores_it_on_failure() {
    let old_local = |games: &Path| {
        fs::create_dir_all(games.join(GAME).join("local")).unwrap();
        fs::write(games.join(GAME).join("local/old.exe"), b"old install").unwrap();
    };
    let old_tree: Tree = [("old.exe".to_owned(), Some(b"old install".to_vec()))]
        .into_iter()
        .collect();

    // A failing sender: the old install is back in place.
    let details = GameDetails {
        id: GAME.into(),
        version: VERSION.into(),
        files: vec![],
    };
    let fake = fake_sender(corrupting_script(details));
    let mut client = start_test_peer(&[fake], old_local);
    start_stream(&mut client, 1).await;
    let ended = client.wait_for_install_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Failed(_)), "{:?}", ended.outcome);
    assert_eq!(read_tree(&client.game_dir().join(GAME).join("local")), old_tree);
    assert_eq!(
        entries(&client.game_dir().join(GAME)),
        ["local"],
        "no staging or backup left"
    );

    // A working, slow sender: the old install stays until promotion, then the new one replaces it.
    let tree = big_tree();
    let server = sender(&tree, Some(4_000_000));
    let mut client = start_test_peer(&[server.addr()], old_local);
    start_stream(&mut client, 1).await;
    client.wait_for_install_progress(GAME).await;
    assert_eq!(
        read_tree(&client.game_dir().join(GAME).join("local")),
        old_tree,
        "untouched while streaming"
    );
    assert_eq!(client.wait_for_install_end(GAME).await.outcome, Outcome::Finished(true));
    assert_eq!(read_tree(&client.game_dir().join(GAME).join("local")), tree);
}
