//! Download progress is honest (issue 14): a block counts as done as soon as it is
//! verified and written, not when the answer that brings it ends, so the percentage and
//! the rate move with the bytes instead of in jumps of a whole answer (up to 32 MiB).
//!
//! A relay in front of an honest seed sends all but the last block of its first answer
//! and then holds that answer open, answering `Busy` to every other request, until the
//! test has seen a progress sample; then it passes everything through.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use lanspread::config::Limits;
use lanspread::peer::client::{BlockOffer, ChunkReader, PeerClient};
use lanspread::peer::swarm::BlockLayout;
use lanspread::peer::transport::make_endpoint;
use lanspread::peer::{DownloadProgress, PeerEvent};
use lanspread::proto::{ErrorKind, Request, Response, write_frame};
use quinn::SendStream;
use support::fake::{fake_peer, not_scripted, pass_through};
use support::{Outcome, TestPeer, WAIT, pseudo_random_bytes};
use tokio::sync::Notify;

const GAME: &str = "openarena";
const VERSION: &str = "20240301";

/// What the relay did, for the test to check.
#[derive(Default)]
struct RelayState {
    /// Bytes of the held answer sent before it was held: every block of it but the last.
    sent_before_hold: OnceLock<u64>,
    /// `GetBlocks` answers sent to their end.
    answers_ended: AtomicUsize,
    released: AtomicBool,
    release: Notify,
}

/// Passes the answer's bytes on from `reader` to `send`: `limit` bytes, or to its end.
async fn forward(reader: &mut ChunkReader, send: &mut SendStream, mut limit: Option<u64>) {
    while limit != Some(0) {
        let room = limit.map_or(1 << 20, |left| left.min(1 << 20) as usize);
        let Some(piece) = reader.next_piece(room).await.unwrap() else {
            break;
        };
        if let Some(left) = &mut limit {
            *left -= piece.len() as u64;
        }
        let _ = send.write_all(&piece).await;
    }
}

fn holding_relay(honest: std::net::SocketAddr, state: Arc<RelayState>) -> std::net::SocketAddr {
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap();
    let client = PeerClient::new(endpoint);
    let first = Arc::new(AtomicBool::new(true));
    fake_peer(GAME, VERSION, move |request, mut send| {
        let (client, state, first) = (client.clone(), state.clone(), first.clone());
        async move {
            match pass_through(&client, honest, request, &mut send).await {
                None => {}
                Some(Request::GetBlocks {
                    id,
                    list,
                    offered,
                    want,
                }) => {
                    let details = client.get_game(honest, &id).await.unwrap();
                    let layout = BlockLayout::new(&details.files).unwrap();
                    let offer = BlockOffer {
                        list: &list,
                        offered: &offered,
                        want,
                    };
                    let (picked, mut reader) = client.open_blocks(honest, &id, &offer, &layout).await.unwrap();
                    // Held: the first answer of two blocks or more (the downloader's requests
                    // race, and one may want a single block). Until the release, every other
                    // answer is `Busy`, so nothing but the held answer's blocks can count.
                    let released = state.released.load(Ordering::SeqCst);
                    let hold = !released && picked.len() >= 2 && first.swap(false, Ordering::SeqCst);
                    if !hold && !released {
                        let busy = Response::error(ErrorKind::Busy, "the relay holds its first answer");
                        let _ = write_frame(&mut send, &busy).await;
                        let _ = send.finish();
                        return;
                    }
                    let held_back = layout.block_len(*picked.last().unwrap()).unwrap();
                    let before_hold: u64 = picked
                        .iter()
                        .map(|block| layout.block_len(*block).unwrap())
                        .sum::<u64>()
                        - held_back;
                    let _ = write_frame(&mut send, &Response::Blocks { picked: picked.clone() }).await;
                    if hold {
                        forward(&mut reader, &mut send, Some(before_hold)).await;
                        state.sent_before_hold.set(before_hold).unwrap();
                        // Bounded: a test that never releases fails on its own deadline first.
                        let _ = tokio::time::timeout(WAIT, state.release.notified()).await;
                    }
                    forward(&mut reader, &mut send, None).await;
                    state.answers_ended.fetch_add(1, Ordering::SeqCst);
                }
                Some(Request::GetGameFileData { id, path }) => {
                    let mut bytes = Vec::new();
                    client.get_file_data(honest, &id, &path, &mut bytes).await.unwrap();
                    let header = Response::FileData {
                        size: bytes.len() as u64,
                    };
                    let _ = write_frame(&mut send, &header).await;
                    let _ = send.write_all(&bytes).await;
                }
                Some(_) => return not_scripted(send).await,
            }
            let _ = send.finish();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_counts_as_done_once_verified_though_its_answer_is_still_open() {
    let files = vec![("oa.zip", pseudo_random_bytes(61, 9_000_000))];
    let total = files[0].1.len() as u64 + VERSION.len() as u64;
    let mut honest = TestPeer::builder().game(GAME, VERSION, &files).start();
    honest.wait_for_hashing_done().await;
    let state = Arc::new(RelayState::default());
    let relay = holding_relay(honest.addr(), state.clone());
    let mut downloader = TestPeer::builder().static_peers(&[relay]).start();
    downloader.wait_for_holders(GAME, 1).await;
    let list = downloader.fetch_files(GAME).await.unwrap();
    downloader.start_download(GAME, list.files).await;

    // Seen while the relay holds its first answer open, before any answer has ended.
    let (sample, sent): (DownloadProgress, u64) = downloader
        .wait_for("a sample counting the blocks of the open answer", |event| {
            let sent = *state.sent_before_hold.get()?;
            match event {
                PeerEvent::DownloadProgress(sample) if sample.bytes_done >= sent => Some((sample.clone(), sent)),
                _ => None,
            }
        })
        .await;
    assert_eq!(state.answers_ended.load(Ordering::SeqCst), 0, "no answer ended yet");
    assert!(sent > 0, "the held answer sent a block before it was held");
    assert_eq!(sample.bytes_done, sent, "every block sent so far counts, and no more");

    state.released.store(true, Ordering::SeqCst);
    state.release.notify_one();
    let ended = downloader.wait_for_download_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Finished(_)), "{:?}", ended.outcome);
    let samples: Vec<u64> = ended
        .seen
        .iter()
        .filter_map(|event| match event {
            PeerEvent::DownloadProgress(sample) => Some(sample.bytes_done),
            _ => None,
        })
        .collect();
    assert!(samples.windows(2).all(|pair| pair[0] <= pair[1]), "{samples:?}");
    assert_eq!(samples.last(), Some(&total), "{samples:?}");
    let got = std::fs::read(downloader.game_dir().join(GAME).join("oa.zip")).unwrap();
    assert!(got == files[0].1, "oa.zip differs from the seed's");
}
