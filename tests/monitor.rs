//! The local game monitor: changes on disk reach the library (and other peers)
//! as exactly one change event per change, without waiting for a full scan.
//!
//! "Exactly one" is checked without sleeping: after the changes under test, a
//! barrier change to another game is made; its event can only arrive after any
//! duplicate event of the earlier changes.

mod support;

use std::path::Path;
use std::time::Duration;

use lanspread::peer::{GameState, PeerCommand, PeerEvent};
use support::{TestPeer, start_test_peer, write_game};

/// Waits for the change event naming `id`, counting every change event per id on the way.
async fn wait_for_change(peer: &mut TestPeer, id: &str, seen: &mut Vec<String>) {
    peer.wait_for(&format!("a LocalLibraryChanged for {id}"), |event| match event {
        PeerEvent::LocalLibraryChanged { ids } => {
            seen.extend(ids.iter().cloned());
            ids.iter().any(|changed| changed == id).then_some(())
        }
        _ => None,
    })
    .await;
}

fn count(seen: &[String], id: &str) -> usize {
    seen.iter().filter(|changed| *changed == id).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_on_disk_gives_exactly_one_change_event_for_its_game() {
    let mut peer = start_test_peer(&[], |_| {});
    let games = peer.game_dir();
    peer.wait_for_snapshot("the initial scan", |s| s.local_scanned).await;
    let mut seen = Vec::new();

    // A new game root with a version.ini.
    write_game(&games, "openarena", "1", &[("oa.zip", vec![1; 100])]);
    wait_for_change(&mut peer, "openarena", &mut seen).await;
    let snapshot = peer
        .wait_for_snapshot("openarena downloaded", |s| s.game("openarena").is_some())
        .await;
    assert_eq!(snapshot.game("openarena").unwrap().local_version.as_deref(), Some("1"));

    // local/ appears: installed.
    std::fs::create_dir(games.join("openarena/local")).unwrap();
    wait_for_change(&mut peer, "openarena", &mut seen).await;
    peer.wait_for_snapshot("openarena installed", |s| {
        s.game("openarena").is_some_and(|g| g.state == GameState::Installed)
    })
    .await;

    // version.ini edited in place: a new version (the root is watched since it appeared).
    std::fs::write(games.join("openarena/version.ini"), "2").unwrap();
    wait_for_change(&mut peer, "openarena", &mut seen).await;
    peer.wait_for_snapshot("version 2", |s| {
        s.game("openarena")
            .is_some_and(|g| g.local_version.as_deref() == Some("2"))
    })
    .await;

    // The root removed.
    std::fs::remove_dir_all(games.join("openarena")).unwrap();
    wait_for_change(&mut peer, "openarena", &mut seen).await;
    peer.wait_for_snapshot("openarena gone", |s| s.game("openarena").is_none())
        .await;

    // Barrier: a change to another game; any duplicate for openarena would have come first.
    write_game(&games, "xonotic", "1", &[]);
    wait_for_change(&mut peer, "xonotic", &mut seen).await;
    assert_eq!(count(&seen, "openarena"), 4, "one event per change: {seen:?}");
    assert_eq!(count(&seen, "xonotic"), 1, "{seen:?}");
    peer.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_scan_catches_changes_when_the_watcher_is_off() {
    let mut peer = TestPeer::builder()
        .config(|c| {
            c.watch_game_dir = false;
            c.fallback_scan_interval = Duration::from_millis(300);
        })
        .start();
    write_game(&peer.game_dir(), "teeworlds", "0.7", &[("tw.zip", vec![1; 10])]);
    let mut seen = Vec::new();
    wait_for_change(&mut peer, "teeworlds", &mut seen).await;
    let snapshot = peer
        .wait_for_snapshot("teeworlds", |s| s.game("teeworlds").is_some())
        .await;
    assert_eq!(snapshot.game("teeworlds").unwrap().state, GameState::Downloaded);
    peer.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_move_with_the_game_dir() {
    let mut peer = start_test_peer(&[], |_| {});
    let old_dir = peer.game_dir();
    peer.wait_for_snapshot("the initial scan", |s| s.local_scanned).await;
    let new_dir = peer.dir.path().join("other-games");
    peer.send(PeerCommand::SetGameDir { path: new_dir.clone() }).await;
    peer.wait_for_snapshot("the new game dir", |s| s.game_dir == new_dir)
        .await;

    let mut seen = Vec::new();
    write_game(&old_dir, "openarena", "1", &[]);
    write_game(&new_dir, "xonotic", "1", &[]);
    wait_for_change(&mut peer, "xonotic", &mut seen).await;
    // Barrier for the old dir: one more change in the new dir.
    write_game(&new_dir, "teeworlds", "1", &[]);
    wait_for_change(&mut peer, "teeworlds", &mut seen).await;
    assert_eq!(
        count(&seen, "openarena"),
        0,
        "the old dir is no longer watched: {seen:?}"
    );
    let snapshot = peer.wait_for_snapshot("both new games", |s| s.games.len() == 2).await;
    assert!(snapshot.game("openarena").is_none());
    peer.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_added_on_one_peer_appears_at_the_other() {
    let mut a = start_test_peer(&[], |_| {});
    let mut b = start_test_peer(&[a.addr()], |_| {});
    b.wait_for_snapshot("b to know a", |s| s.peers.len() == 1 && s.peers[0].library_loaded)
        .await;
    a.wait_for_snapshot("a to know b", |s| s.peers.len() == 1).await;

    add_game_atomically(&a.game_dir(), "openarena", "20240301");
    let snapshot = b
        .wait_for_snapshot("openarena at b", |s| s.game("openarena").is_some())
        .await;
    let game = snapshot.game("openarena").unwrap();
    assert_eq!(game.state, GameState::RemoteOnly);
    assert_eq!(game.latest_version.as_deref(), Some("20240301"));
    assert_eq!(game.peers[0].addr, a.addr());
}

/// Builds a game next to the game dir and renames it in, as a careful copy would.
fn add_game_atomically(game_dir: &Path, id: &str, version: &str) {
    let staging = game_dir.parent().unwrap().join(format!("incoming-{id}"));
    write_game(&staging, id, version, &[("data.zip", vec![9; 1000])]);
    std::fs::rename(staging.join(id), game_dir.join(id)).unwrap();
}
