//! A game is never served while it is being rewritten: while an operation runs
//! on a game, its peer answers `Busy` for it and downloaders move on.

mod support;

use lanspread::peer::PeerEvent;
use support::{Outcome, TestPeer, pseudo_random_bytes, start_test_peer};

const GAME: &str = "openarena";
const SIZE: usize = 48_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_survives_a_source_that_starts_updating_the_game_mid_transfer() {
    let old = [("oa.zip", pseudo_random_bytes(31, SIZE))];
    let new = [("oa.zip", pseudo_random_bytes(32, SIZE))]; // same size: a stale read would go unnoticed
    let updater = TestPeer::builder().game(GAME, "2", &new).start();
    // Both sources upload at 4 MB/s, so the update lands while the download runs.
    let mut rewriting = TestPeer::builder()
        .static_peers(&[updater.addr()])
        .config(|c| c.upload_limit = Some(4_000_000))
        .game(GAME, "1", &old)
        .start();
    let steady = TestPeer::builder()
        .config(|c| c.upload_limit = Some(4_000_000))
        .game(GAME, "1", &old)
        .start();
    let mut downloader = start_test_peer(&[rewriting.addr(), steady.addr()], |_| {});

    downloader
        .wait_for_snapshot("both sources with version 1", |snapshot| {
            snapshot
                .game(GAME)
                .is_some_and(|game| game.peers.len() == 2 && game.latest_version.as_deref() == Some("1"))
        })
        .await;
    downloader.download(GAME).await;
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
                .game(GAME)
                .is_some_and(|game| game.latest_version.as_deref() == Some("2"))
        })
        .await;
    let latest = rewriting.fetch_latest_files(GAME).await.unwrap();
    rewriting.start_download(GAME, latest.files).await;
    let update = rewriting.wait_for_download_end(GAME).await;
    let Outcome::Finished(updated) = &update.outcome else {
        panic!("the update failed: {:?}", update.outcome);
    };
    assert_eq!(updated.version, "2");

    let download = downloader.wait_for_download_end(GAME).await;
    let Outcome::Finished(downloaded) = &download.outcome else {
        panic!("the download failed: {:?}", download.outcome);
    };
    assert_eq!(downloaded.version, "1");
    let got = std::fs::read(downloader.game_dir().join("openarena/oa.zip")).unwrap();
    assert!(got == old[0].1, "the downloaded game is byte-identical to version 1");
    let rewritten = std::fs::read(rewriting.game_dir().join("openarena/oa.zip")).unwrap();
    assert!(rewritten == new[0].1, "the source holds version 2 now");
}
