//! Shutdown ends promptly whatever runs, with the same guarantees as a crash,
//! and starts nothing new.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanspread::catalog::Catalog;
use lanspread::install::unpack::{ArchiveStats, UnpackError, UnpackProgress, Unpacker};
use lanspread::peer::{PeerCommand, PeerEvent, start_peer_with};
use support::archives::{sample_tree, write_zip};
use support::process::{Lanspread, command, free_addr};
use support::{pseudo_random_bytes, test_config, write_game};

/// Unpacks nothing, slowly, until it is cancelled: an install that is still running at shutdown.
struct UntilCancelled;

impl Unpacker for UntilCancelled {
    fn unpack(
        &self,
        _game_root: &Path,
        _target: &Path,
        progress: &mut dyn FnMut(UnpackProgress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ArchiveStats, UnpackError> {
        let deadline = Instant::now() + support::WAIT;
        while !cancelled() && Instant::now() < deadline {
            progress(UnpackProgress { files: 0, bytes: 0 });
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(UnpackError::Cancelled)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_an_install_cancels_it_and_reports_its_end() {
    let (config, dir) = test_config();
    let root = write_game(&config.game_dir, "openarena", "1", &[]);
    write_zip(&root.join("game.zip"), &sample_tree());
    let (game_dir, state_dir) = (config.game_dir.clone(), config.state_dir.clone());
    let mut runtime = start_peer_with(config, Catalog::bundled(), Arc::new(UntilCancelled)).unwrap();
    let mut events = runtime.take_events().unwrap();
    tokio::time::timeout(support::WAIT, async {
        loop {
            match events.recv().await {
                Some(PeerEvent::LibraryUpdated(snapshot)) if snapshot.game("openarena").is_some() => break,
                Some(_) => {}
                None => panic!("the runtime stopped"),
            }
        }
    })
    .await
    .expect("timed out waiting for the library scan");
    runtime
        .send(PeerCommand::InstallGame { id: "openarena".into() })
        .await
        .unwrap();
    tokio::time::timeout(support::WAIT, async {
        while let Some(event) = events.recv().await {
            if matches!(event, PeerEvent::InstallGameProgress { .. }) {
                return;
            }
        }
    })
    .await
    .expect("timed out waiting for the install to run");

    let started = Instant::now();
    runtime.shutdown().await;
    eprintln!("shutdown with an install running took {:?}", started.elapsed());
    let mut rest = Vec::new();
    while let Ok(event) = events.try_recv() {
        rest.push(event);
    }
    assert!(
        rest.iter().any(|event| matches!(
            event,
            PeerEvent::InstallGameFailed { reason, .. } if reason.contains("cancelled")
        )),
        "the cancelled install's end is reported before the runtime stops: {rest:?}"
    );
    assert!(
        !rest
            .iter()
            .any(|event| matches!(event, PeerEvent::InstallGameBegin { .. })),
        "nothing new starts during shutdown"
    );
    assert!(
        !game_dir.join("openarena/.local.installing").exists(),
        "staging rolled back"
    );
    assert!(
        !state_dir.join("games/openarena/install_intent.json").exists(),
        "no journal left"
    );
    drop(dir);
}

#[test]
fn sigterm_of_serve_while_it_streams_an_install_exits_cleanly_and_the_receiver_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let seed_root = dir.path().join("seed");
    let root = write_game(&seed_root.join("games"), "openarena", "1", &[]);
    let mut tree = sample_tree();
    tree.insert("big.bin".into(), Some(pseudo_random_bytes(41, 24_000_000)));
    write_zip(&root.join("game.zip"), &tree);
    let addr = free_addr();
    // 4 MB/s for 24 MB: the stream is well under way when the seed is stopped.
    let mut seed = Lanspread::serve(&seed_root, addr, &[], &["--upload-limit", "4"]);
    seed.wait_for_line(&["hashed 1 game(s)"]); // announced once hashed

    let client_root = dir.path().join("client");
    let peer = addr.to_string();
    let mut client = Lanspread::spawn(command(
        &client_root,
        &[
            "get",
            "openarena",
            "--stream",
            "--no-mdns",
            "--wait",
            "15",
            "--peer",
            &peer,
        ],
    ));
    client.wait_for_line(&["stream-installing openarena"]);
    let staging = client_root.join("games/openarena/.local.installing");
    support::wait_until("files arriving in staging", || staging.join("big.bin").exists());

    let stopped = Instant::now();
    seed.signal("TERM");
    let seed = seed.finish();
    eprintln!("serve stopped {:?} after SIGTERM, mid-stream", stopped.elapsed());
    assert_eq!(seed.code(), Some(0), "{seed}");
    assert!(seed.stderr.contains("peer runtime stopped"), "{seed}");

    let client = client.finish();
    assert_eq!(client.code(), Some(1), "{client}");
    assert!(
        client.stderr.contains("streamed install of openarena failed"),
        "{client}"
    );
    assert!(!staging.exists(), "the receiver rolled its staging back");
    assert!(!client_root.join("games/openarena/local").exists());
}
