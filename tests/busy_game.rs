//! A game is never served while it is being rewritten: while an operation runs
//! on a game, its peer answers `Busy` for it and downloaders move on.

mod support;

use std::net::SocketAddr;

use lanspread::catalog::Catalog;
use lanspread::peer::{PeerCommand, PeerEvent, start_peer};
use support::{TestPeer, pseudo_random_bytes, test_config, write_game};

const SIZE: usize = 48_000_000;

fn peer(static_peers: &[SocketAddr], upload_limit: Option<u64>, game: Option<(&str, &[u8])>) -> TestPeer {
    let (mut config, dir) = test_config();
    config.static_peers = static_peers.to_vec();
    config.upload_limit = upload_limit;
    if let Some((version, payload)) = game {
        write_game(&config.game_dir, "openarena", version, &[("oa.zip", payload.to_vec())]);
    }
    TestPeer {
        runtime: start_peer(config, Catalog::bundled()).expect("peer starts"),
        dir,
        snapshot: Default::default(),
    }
}

/// Asks for the latest file list of openarena and downloads it.
async fn download_latest(peer: &mut TestPeer, command: PeerCommand) {
    peer.runtime.send(command).await.unwrap();
    let files = peer
        .wait_for("the file list", |event| match event {
            PeerEvent::GotGameFiles { files, .. } => Some(files.clone()),
            _ => None,
        })
        .await;
    let id = "openarena".to_owned();
    peer.runtime
        .send(PeerCommand::DownloadGameFiles { id, files })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_survives_a_source_that_starts_updating_the_game_mid_transfer() {
    let old = pseudo_random_bytes(31, SIZE);
    let new = pseudo_random_bytes(32, SIZE); // same size: a stale read would go unnoticed
    let updater = peer(&[], None, Some(("2", &new)));
    // Both sources upload at 4 MB/s, so the update lands while the download runs.
    let mut rewriting = peer(&[updater.addr()], Some(4_000_000), Some(("1", &old)));
    let steady = peer(&[], Some(4_000_000), Some(("1", &old)));
    let mut downloader = peer(&[rewriting.addr(), steady.addr()], None, None);

    downloader
        .wait_for_snapshot("both sources with version 1", |snapshot| {
            snapshot
                .game("openarena")
                .is_some_and(|game| game.peers.len() == 2 && game.latest_version.as_deref() == Some("1"))
        })
        .await;
    download_latest(&mut downloader, PeerCommand::GetGame { id: "openarena".into() }).await;
    downloader
        .wait_for("the download under way", |event| match event {
            PeerEvent::DownloadProgress(progress) => (progress.bytes_done >= 8 << 20).then_some(()),
            _ => None,
        })
        .await;

    // One source now updates the very file being downloaded from it.
    rewriting
        .wait_for_snapshot("the newer version on the updater", |snapshot| {
            snapshot
                .game("openarena")
                .is_some_and(|game| game.latest_version.as_deref() == Some("2"))
        })
        .await;
    download_latest(
        &mut rewriting,
        PeerCommand::FetchLatestFromPeers { id: "openarena".into() },
    )
    .await;
    rewriting
        .wait_for("the source's update to finish", |event| match event {
            PeerEvent::DownloadGameFilesFinished { version, .. } => Some(assert_eq!(version, "2")),
            PeerEvent::DownloadGameFilesFailed { reason, .. } => panic!("the update failed: {reason}"),
            _ => None,
        })
        .await;

    downloader
        .wait_for("the download to finish", |event| match event {
            PeerEvent::DownloadGameFilesFinished { version, .. } => Some(assert_eq!(version, "1")),
            PeerEvent::DownloadGameFilesFailed { reason, .. } => panic!("the download failed: {reason}"),
            _ => None,
        })
        .await;
    let got = std::fs::read(downloader.game_dir().join("openarena/oa.zip")).unwrap();
    assert!(got == old, "the downloaded game is byte-identical to version 1");
    let rewritten = std::fs::read(rewriting.game_dir().join("openarena/oa.zip")).unwrap();
    assert!(rewritten == new, "the source holds version 2 now");
}
