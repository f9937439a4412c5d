//! What the library says about an install: a failed or interrupted install is
//! a state of its own, a streamed install is named and recorded (and uninstalls
//! whole), and an update that renamed an archive installs cleanly.

mod support;

use lanspread::install::unpack::ArchiveUnpacker;
use lanspread::install::{Failpoints, GameLayout, InstallFailure, InstalledRecord, Step, Transaction, recover};
use lanspread::peer::{GameState, PeerCommand};
use support::archives::{Tree, read_tree, sample_tree, write_zip};
use support::peer::Outcome;
use support::{TestPeer, write_game};

const GAME: &str = "openarena";

fn tree(marker: &str) -> Tree {
    let mut tree = sample_tree();
    tree.insert("game.exe".into(), Some(format!("game {marker}").into_bytes()));
    tree
}

/// A seed sharing `GAME` at `version` as one archive named `archive` holding `content`.
fn seed(
    version: &'static str,
    archive: &'static str,
    content: &'static Tree,
    peers: &[std::net::SocketAddr],
) -> TestPeer {
    TestPeer::builder()
        .static_peers(peers)
        .prepare(move |games| {
            let root = write_game(games, GAME, version, &[]);
            write_zip(&root.join(archive), content);
        })
        .start()
}

fn installing_peer(peers: &[std::net::SocketAddr]) -> TestPeer {
    TestPeer::builder()
        .static_peers(peers)
        .config(|config| config.auto_install = true)
        .start()
}

async fn latest_is(peer: &mut TestPeer, version: &str) {
    peer.wait_for_snapshot("the expected latest version", |snapshot| {
        snapshot
            .game(GAME)
            .is_some_and(|game| game.latest_version.as_deref() == Some(version))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_renamed_its_archive_leaves_no_stale_archive_and_installs() {
    let (v1, v2): (&'static Tree, &'static Tree) = (Box::leak(Box::new(tree("1"))), Box::leak(Box::new(tree("2"))));
    let first = seed("1", "game-v1.zip", v1, &[]);
    let mut client = installing_peer(&[first.addr()]);
    latest_is(&mut client, "1").await;
    client.download(GAME).await;
    assert!(matches!(
        client.wait_for_download_end(GAME).await.outcome,
        Outcome::Finished(_)
    ));
    assert_eq!(
        client.wait_for_install_end(GAME).await.outcome,
        Outcome::Finished(false)
    );

    // A peer with version 2, whose archive has another name, holding the same paths.
    let _second = seed("2", "game-v2.zip", v2, &[client.addr()]);
    latest_is(&mut client, "2").await;
    let files = client.fetch_latest_files(GAME).await.expect("the new file list");
    client.start_download(GAME, files.files).await;
    assert!(matches!(
        client.wait_for_download_end(GAME).await.outcome,
        Outcome::Finished(_)
    ));
    let installed = client.wait_for_install_end(GAME).await;
    assert_eq!(installed.outcome, Outcome::Finished(true), "{:?}", installed.seen);

    let root = client.game_dir().join(GAME);
    assert!(!root.join("game-v1.zip").exists(), "the replaced archive is gone");
    assert!(root.join("game-v2.zip").exists());
    assert_eq!(read_tree(&root.join("local")), *v2);
    let snapshot = client
        .wait_for_snapshot("version 2 installed", |snapshot| {
            snapshot
                .game(GAME)
                .is_some_and(|game| game.installed_version.as_deref() == Some("2"))
        })
        .await;
    assert_eq!(snapshot.game(GAME).unwrap().state, GameState::Installed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_install_is_a_state_with_its_reason_until_an_install_succeeds() {
    let seed = TestPeer::builder()
        .game(GAME, "1", &[("game.zip", b"not a zip archive at all".to_vec())])
        .start();
    let mut client = installing_peer(&[seed.addr()]);
    latest_is(&mut client, "1").await;
    client.download(GAME).await;
    assert!(matches!(
        client.wait_for_download_end(GAME).await.outcome,
        Outcome::Finished(_)
    ));
    let Outcome::Failed(reason) = client.wait_for_install_end(GAME).await.outcome else {
        panic!("a broken archive cannot install");
    };
    let snapshot = client
        .wait_for_snapshot("the failed install", |snapshot| {
            snapshot
                .game(GAME)
                .is_some_and(|game| game.state == GameState::InstallFailed)
        })
        .await;
    let entry = snapshot.game(GAME).unwrap();
    assert_eq!(entry.install_failure.as_deref(), Some(reason.as_str()));
    assert_eq!(entry.local_version.as_deref(), Some("1"), "still downloaded");
    assert!(!entry.installed);

    // Fixed on disk (as a re-download would), the retry clears the state.
    let root = client.game_dir().join(GAME);
    std::fs::remove_file(root.join("game.zip")).unwrap();
    write_zip(&root.join("game.zip"), &tree("1"));
    client.send(PeerCommand::InstallGame { id: GAME.into() }).await;
    assert_eq!(
        client.wait_for_install_end(GAME).await.outcome,
        Outcome::Finished(false)
    );
    client
        .wait_for_snapshot("installed", |snapshot| {
            snapshot.game(GAME).is_some_and(|game| {
                game.state == GameState::Installed && game.install_failure.is_none() && game.installed
            })
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_install_is_named_recorded_and_uninstalled_whole() {
    let content: &'static Tree = Box::leak(Box::new(tree("1")));
    let seed = seed("1", "game.zip", content, &[]);
    let mut client = installing_peer(&[seed.addr()]);
    latest_is(&mut client, "1").await;
    client.send(PeerCommand::StreamInstallGame { id: GAME.into() }).await;
    assert_eq!(
        client.wait_for_install_end(GAME).await.outcome,
        Outcome::Finished(false)
    );
    let snapshot = client
        .wait_for_snapshot("the streamed install", |snapshot| {
            snapshot.game(GAME).is_some_and(|game| game.installed)
        })
        .await;
    let entry = snapshot.game(GAME).unwrap();
    assert_eq!(entry.state, GameState::InstalledStreamed);
    assert_eq!(entry.state.label(), "installed, streamed: no archives");
    assert_eq!(entry.installed_version.as_deref(), Some("1"));
    assert_eq!(entry.local_newest(), Some("1"));
    assert_eq!(entry.local_version, None, "no archives here");
    assert!(entry.streamed);

    client.send(PeerCommand::UninstallGame { id: GAME.into() }).await;
    client
        .wait_for("the uninstall", |event| match event {
            lanspread::peer::PeerEvent::UninstallGameFinished { .. } => Some(()),
            lanspread::peer::PeerEvent::UninstallGameFailed { reason, .. } => panic!("uninstall failed: {reason}"),
            _ => None,
        })
        .await;
    assert!(
        !client.game_dir().join(GAME).exists(),
        "nothing is left of a streamed install after its uninstall"
    );
    client
        .wait_for_snapshot("the game only remote again", |snapshot| {
            snapshot
                .game(GAME)
                .is_some_and(|game| game.state == GameState::RemoteOnly)
        })
        .await;
}

#[test]
fn an_install_interrupted_by_a_crash_is_recorded_as_failed_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (games, state) = (dir.path().join("games"), dir.path().join("state"));
    let root = write_game(&games, GAME, "2", &[]);
    write_zip(&root.join("game.zip"), &tree("2"));
    let transaction = Transaction {
        game_dir: &games,
        state_dir: &state,
        id: GAME,
        failpoints: Failpoints {
            crash_after: Some(Step::Staged),
            fail_at: None,
        },
    };
    assert!(
        transaction
            .install_downloaded(&ArchiveUnpacker, &mut |_| {}, &|| false)
            .is_err()
    );
    let layout = GameLayout::new(&games, GAME);
    assert_eq!(InstallFailure::read(&layout), None, "a crash writes nothing");

    recover(&games, &state);
    let failure = InstallFailure::read(&layout).expect("recovery records the interrupted install");
    assert_eq!(failure.version, "2");
    assert!(failure.reason.contains("interrupted"), "{}", failure.reason);
    assert!(!layout.local().exists());
    assert_eq!(InstalledRecord::read(&layout), None);

    // The next install succeeds, records what it installed and clears the failure.
    let transaction = Transaction {
        failpoints: Failpoints::default(),
        ..transaction
    };
    transaction
        .install_downloaded(&ArchiveUnpacker, &mut |_| {}, &|| false)
        .unwrap();
    assert_eq!(InstallFailure::read(&layout), None);
    assert_eq!(
        InstalledRecord::read(&layout),
        Some(InstalledRecord {
            version: "2".into(),
            streamed: false
        })
    );
}
