//! Background hashing on a running peer: a game is announced and served only once the
//! roots of all its files are known, and a game with a lot to hash does not hold back a
//! game whose hashes the index already has.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use lanspread::catalog::Catalog;
use lanspread::config::Limits;
use lanspread::content::root_of;
use lanspread::library::{Hashing, LibraryIndex, scan_local_library};
use lanspread::peer::PeerEvent;
use lanspread::peer::client::{ClientError, PeerClient};
use lanspread::peer::transport::make_endpoint;
use lanspread::proto::ErrorKind;
use support::{TestPeer, WAIT, pseudo_random_bytes, write_game};

/// Hashed on an earlier start, so warm in the index.
const WARM: &str = "openarena";
/// New: its files are hashed after the start.
const NEW: &str = "xonotic";

fn client() -> PeerClient {
    PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap())
}

async fn listed(client: &PeerClient, server: SocketAddr) -> Vec<String> {
    let games = tokio::time::timeout(WAIT, client.list_games(server))
        .await
        .expect("the game list within the wait bound")
        .expect("the server lists its games");
    games.into_iter().map(|game| game.id).collect()
}

/// Writes `WARM` and hashes it the way a previous run of the peer did, into its state dir.
fn write_warm_game(games: &Path) {
    write_game(games, WARM, "1", &[("oa.pk3", pseudo_random_bytes(1, 200_000))]);
    let state = games.parent().unwrap().join("state");
    let mut index = LibraryIndex::load_for(&state, games);
    scan_local_library(
        games,
        &Catalog::bundled(),
        &mut index,
        &mut Hashing::Compute(&mut |_| {}),
    )
    .unwrap();
    index.save(&state).unwrap();
}

/// The games named in a hashing progress event, if `event` is one.
fn hashing(event: &PeerEvent) -> Option<Vec<String>> {
    match event {
        PeerEvent::HashingProgress(progress) => Some(progress.games.clone()),
        _ => None,
    }
}

/// The warm game is served while the new one is still being hashed: 64 GiB (sparse, so
/// free to write), which takes the hasher tens of seconds, against the milliseconds of a
/// list request. Shutdown then cancels the hashing instead of waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_being_hashed_does_not_hold_back_a_warm_one() {
    let mut peer = TestPeer::builder()
        .prepare(|games| {
            write_warm_game(games);
            let root = write_game(games, NEW, "2", &[]);
            let big = std::fs::File::create(root.join("data.bin")).unwrap();
            big.set_len(64 << 30).unwrap();
        })
        .start();
    let queued = peer.wait_for("the new game's hashing", hashing).await;
    assert_eq!(queued, [NEW], "the warm game is not hashed again");

    let client = client();
    let games = listed(&client, peer.addr()).await;
    assert!(
        games.contains(&WARM.to_owned()),
        "the warm game is announced: {games:?}"
    );
    assert!(
        !games.contains(&NEW.to_owned()),
        "a game without hashes is not announced: {games:?}"
    );
    match client.get_game(peer.addr(), NEW).await {
        Err(ClientError::Remote {
            kind: ErrorKind::UnknownGame,
            ..
        }) => {}
        other => panic!("a game without hashes is not served: {other:?}"),
    }
    let snapshot = peer
        .wait_for_snapshot("the local library", |snapshot| snapshot.game(NEW).is_some())
        .await;
    assert_eq!(
        snapshot.game(NEW).unwrap().local_version.as_deref(),
        Some("2"),
        "listed locally all the same"
    );

    tokio::time::timeout(WAIT, peer.runtime.shutdown())
        .await
        .expect("shutdown cancels the hashing");
}

/// A new game shows up for peers only after the hashing that started with the peer has
/// ended, and then with the root of every file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_game_is_announced_once_hashed_and_lists_its_roots() {
    let files = [
        ("data.bin", pseudo_random_bytes(2, 24 << 20)),
        ("maps/dm1.bsp", pseudo_random_bytes(3, 70_000)),
    ];
    let mut peer = TestPeer::builder().game(NEW, "2", &files).start();
    let queued = peer.wait_for("the new game's hashing", hashing).await;
    assert_eq!(queued, [NEW]);
    let mut seen = Vec::new();
    peer.wait_for("the end of hashing", |event| {
        seen.push(event.clone());
        matches!(event, PeerEvent::HashingFinished { games: 1, .. }).then_some(())
    })
    .await;
    let last = seen.iter().rev().find_map(|event| match event {
        PeerEvent::HashingProgress(progress) => Some(progress.clone()),
        _ => None,
    });
    if let Some(last) = last {
        assert!(last.done_bytes <= last.total_bytes, "{last:?}");
        assert_eq!(last.games, [NEW]);
    }

    let client = client();
    assert!(listed(&client, peer.addr()).await.contains(&NEW.to_owned()));
    let details = client.get_game(peer.addr(), NEW).await.expect("served once hashed");
    for (path, bytes) in &files {
        let file = details.files.iter().find(|file| file.path == *path).unwrap();
        assert_eq!(file.hash, Some(root_of(bytes)), "{path}");
    }
    assert!(
        details.files.iter().all(|file| file.is_dir || file.hash.is_some()),
        "{:?}",
        details.files
    );
    peer.runtime.shutdown().await;
}
