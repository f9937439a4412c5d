//! The swarm on loopback peers (README, "The swarm"): a peer that is still downloading
//! serves the blocks it has verified to a third peer; a seed whose upload slots are taken
//! sends that peer there; a partial source that sends a corrupt block is dropped and named;
//! a partial source that vanishes costs only what it had in flight; availability names only
//! blocks the peer has verified.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lanspread::config::Limits;
use lanspread::content::{BLOCK_SIZE, ContentHash};
use lanspread::peer::PeerEvent;
use lanspread::peer::client::{BlockOffer, ClientError, PeerClient};
use lanspread::peer::download::{CHUNK_SIZE, IN_FLIGHT_PER_PEER};
use lanspread::peer::swarm::{Availability, Bitmap, BlockLayout, list_digest};
use lanspread::peer::transport::make_endpoint;
use lanspread::proto::{ErrorKind, Request, Response, write_frame};
use support::fake::{fake_peer, pass_through};
use support::peer::Downloaded;
use support::{Outcome, TestPeer, pseudo_random_bytes};

const GAME: &str = "openarena";
const VERSION: &str = "20240301";
/// The seed's upload cap: slow enough that the first downloader is still at it when the
/// second one starts.
const SEED_CAP: u64 = 4_000_000;

fn game_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("oa-part1.zip", pseudo_random_bytes(41, 14_000_000)),
        ("oa-part2.zip", pseudo_random_bytes(42, 9_000_000)),
    ]
}

fn payload(files: &[(&str, Vec<u8>)]) -> u64 {
    files.iter().map(|(_, bytes)| bytes.len() as u64).sum()
}

fn seed(files: &[(&'static str, Vec<u8>)], slots: u32) -> TestPeer {
    TestPeer::builder()
        .config(|c| {
            c.upload_limit = Some(SEED_CAP);
            c.upload_slots = slots;
        })
        .game(GAME, VERSION, files)
        .start()
}

/// How many blocks the game's payload is cut into.
fn total_blocks(files: &[(&str, Vec<u8>)]) -> u32 {
    files
        .iter()
        .map(|(_, bytes)| bytes.len().div_ceil(BLOCK_SIZE as usize) as u32)
        .sum()
}

fn assert_same_files(peer: &TestPeer, files: &[(&str, Vec<u8>)]) {
    for (path, bytes) in files {
        let got = std::fs::read(peer.game_dir().join(GAME).join(path)).unwrap();
        assert!(got == *bytes, "{path} differs from the seed's");
    }
}

/// Starts the download of the game's latest version on `peer`, which sees `holders` of it.
async fn start_download(peer: &mut TestPeer, holders: usize) {
    peer.wait_for_holders(GAME, holders).await;
    let list = peer.fetch_files(GAME).await.unwrap();
    assert_eq!(list.version, VERSION);
    peer.start_download(GAME, list.files).await;
}

/// Waits until `peer`'s download of the game has verified at least `fraction` of it.
async fn wait_for_share(peer: &mut TestPeer, fraction: f64) {
    peer.wait_for("the first download to get going", |event| match event {
        PeerEvent::DownloadProgress(sample) if sample.id == GAME && sample.fraction() >= fraction => Some(()),
        _ => None,
    })
    .await;
}

/// A seed with `slots` upload slots, a first downloader that has verified `share` of the
/// game, and a second one that knows both and has started: the seed and the two peers.
async fn two_downloaders(files: &[(&'static str, Vec<u8>)], slots: u32, share: f64) -> (TestPeer, TestPeer, TestPeer) {
    let seed = seed(files, slots);
    let mut first = TestPeer::builder().static_peers(&[seed.addr()]).start();
    start_download(&mut first, 1).await;
    wait_for_share(&mut first, share).await;
    let mut second = TestPeer::builder().static_peers(&[seed.addr(), first.addr()]).start();
    // The first downloader does not list the game (it has not got it): one holder.
    start_download(&mut second, 1).await;
    (seed, first, second)
}

fn finished(outcome: &Outcome<Downloaded>, who: &str) -> Downloaded {
    match outcome {
        Outcome::Finished(downloaded) => downloaded.clone(),
        other => panic!("{who}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_still_downloading_serves_a_third_peer_whom_the_full_seed_sends_there() {
    let files = game_files();
    // One upload slot: while the first downloader holds it, the seed tells the second to
    // ask elsewhere, and the only elsewhere is the first downloader.
    let (_seed, mut first, mut second) = two_downloaders(&files, 1, 0.2).await;
    let (first_end, second_end) = tokio::join!(first.wait_for_download_end(GAME), second.wait_for_download_end(GAME));
    finished(&first_end.outcome, "first");
    let got = finished(&second_end.outcome, "second").summary;
    assert_same_files(&first, &files);
    assert_same_files(&second, &files);
    assert!(
        got.peers_used.contains(&first.addr()) && got.from_partials > 0,
        "the second downloader fetched from the first: {got:?}"
    );
    eprintln!(
        "second downloader: {} bytes from the seed, {} from the partial peer, {} of availability",
        got.from_seeds, got.from_partials, got.availability_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_source_sending_a_corrupt_block_is_dropped_and_named() {
    let files = game_files();
    let seed = seed(&files, 4);
    let blocks_of_files = Arc::new(files_blocks());
    let block_requests = Arc::new(AtomicUsize::new(0));
    // A peer that claims, for an older version it lists, to hold every block of the new
    // list, and sends them with a byte flipped. It is no seed of the new version, so the
    // downloader meets it only as a partial source.
    let liar = {
        let (contents, block_requests) = (blocks_of_files.clone(), block_requests.clone());
        let blocks = total_blocks(&files);
        fake_peer(GAME, "1", move |request, mut send| {
            let (contents, block_requests) = (contents.clone(), block_requests.clone());
            async move {
                match request {
                    Request::GetAvailability { .. } => {
                        let bitmap = Bitmap::full(blocks);
                        let header = Response::Availability {
                            blocks,
                            generation: 1,
                            full: false,
                            bitmap: true,
                            added: 0,
                        };
                        let _ = write_frame(&mut send, &header).await;
                        let _ = send.write_all(bitmap.as_bytes()).await;
                    }
                    // Global blocks follow the files in list order: oa-part1 then oa-part2;
                    // a block of oa-part1 past its end is in oa-part2.
                    Request::GetBlocks { offered, .. } => {
                        block_requests.fetch_add(1, Ordering::SeqCst);
                        let picked: Vec<u32> = offered.into_iter().take(1).collect();
                        let _ = write_frame(&mut send, &Response::Blocks { picked: picked.clone() }).await;
                        for block in picked {
                            let _ = send.write_all(&corrupt_block(&contents, block)).await;
                        }
                    }
                    _ => {}
                }
                let _ = send.finish();
            }
        })
    };

    let mut downloader = TestPeer::builder().static_peers(&[seed.addr(), liar]).start();
    // Both list the game (the liar an older version), so the latest is the seed's.
    start_download(&mut downloader, 2).await;
    let ended = downloader.wait_for_download_end(GAME).await;
    finished(&ended.outcome, "downloader");
    assert_same_files(&downloader, &files);
    let named: Vec<&String> = ended
        .seen
        .iter()
        .filter_map(|event| match event {
            PeerEvent::DownloadPeersExcluded { peers, .. } => Some(peers),
            _ => None,
        })
        .flatten()
        .filter(|(addr, _)| *addr == liar)
        .map(|(_, why)| why)
        .collect();
    assert_eq!(named.len(), 1, "the liar is named once: {named:?}");
    assert!(named[0].contains("sent corrupt data"), "{named:?}");
    let asked = block_requests.load(Ordering::SeqCst);
    assert!(
        (1..=IN_FLIGHT_PER_PEER).contains(&asked),
        "the liar got {asked} block requests; at most those in flight at its first bad block"
    );
}

/// Block `block` of the test game, with its first byte flipped.
fn corrupt_block(files: &[Vec<u8>], block: u32) -> Vec<u8> {
    let mut out = block_bytes(files, block).to_vec();
    out[0] ^= 1;
    out
}

fn files_blocks() -> Vec<Vec<u8>> {
    game_files().into_iter().map(|(_, bytes)| bytes).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_source_that_vanishes_costs_only_its_blocks_in_flight() {
    let files = game_files();
    let (_seed, first, mut second) = two_downloaders(&files, 4, 0.3).await;
    // Once the second downloader has fetched from the first, the first goes away.
    second
        .wait_for("a block from the partial peer", |event| match event {
            PeerEvent::DownloadProgress(sample) => sample
                .peers
                .iter()
                .any(|peer| peer.addr == first.addr() && peer.bytes > 0)
                .then_some(()),
            _ => None,
        })
        .await;
    let gone = first.addr();
    first.runtime.shutdown().await;

    let ended = second.wait_for_download_end(GAME).await;
    let got = finished(&ended.outcome, "second").summary;
    assert_same_files(&second, &files);
    assert!(got.peers_used.contains(&gone), "{got:?}");
    // Every byte received counts, wasted ones too: at most what was in flight to the
    // vanished peer (and endgame duplicates, as many again) on top of the game.
    let received = got.from_seeds + got.from_partials;
    let bound = payload(&files) + VERSION.len() as u64 + 2 * IN_FLIGHT_PER_PEER as u64 * CHUNK_SIZE;
    assert!(received <= bound, "received {received} bytes, over {bound}: {got:?}");
}

/// A relay in front of `honest` that passes the file list, block hashes and `version.ini`
/// through, serves `GetBlocks` until it has sent `serves` blocks and refuses every later
/// request: a seed that breaks down part way through, always after as many blocks. (It
/// served its first two requests once: those held two blocks at one run, and the next
/// downloader had both from its seed before it heard of the partial peer.)
fn failing_relay(honest: std::net::SocketAddr, serves: u32) -> std::net::SocketAddr {
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap();
    let client = PeerClient::new(endpoint);
    let left = Arc::new(std::sync::atomic::AtomicU32::new(serves));
    fake_peer(GAME, VERSION, move |request, mut send| {
        let (client, left) = (client.clone(), left.clone());
        async move {
            let request = pass_through(&client, honest, request, &mut send).await;
            let granted = match &request {
                Some(Request::GetBlocks { want, .. }) => {
                    let before = left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                            Some(left.saturating_sub(*want))
                        })
                        .unwrap_or_default();
                    before.min(*want)
                }
                _ => 0,
            };
            match request {
                None => {}
                Some(Request::GetBlocks { id, list, offered, .. }) if granted > 0 => {
                    let details = client.get_game(honest, &id).await.unwrap();
                    let layout = BlockLayout::new(&details.files).unwrap();
                    let offer = BlockOffer {
                        list: &list,
                        offered: &offered,
                        want: granted,
                    };
                    let (picked, mut reader) = client.open_blocks(honest, &id, &offer, &layout).await.unwrap();
                    let _ = write_frame(&mut send, &Response::Blocks { picked }).await;
                    while let Some(piece) = reader.next_piece(1 << 20).await.unwrap() {
                        let _ = send.write_all(&piece).await;
                    }
                }
                _ => {
                    // Late enough that the answers already under way are in and journaled
                    // before the downloader gives up on this seed.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let refusal = Response::error(ErrorKind::Internal, "this seed broke down");
                    let _ = write_frame(&mut send, &refusal).await;
                }
            }
            let _ = send.finish();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_download_that_is_not_running_serves_its_journaled_blocks() {
    let files = game_files();
    // Uncapped, so the relay's answers are in long before its refusals.
    let mut honest = TestPeer::builder().game(GAME, VERSION, &files).start();
    // The relay asks the honest seed for the list at once: it must share the game by then.
    honest.wait_for_hashing_done().await;
    // The first half of the blocks, then refusals: the download fails part way and keeps
    // its verified blocks for a resume.
    let breaking = failing_relay(honest.addr(), total_blocks(&files) / 2);
    let mut partial = TestPeer::builder().static_peers(&[breaking]).start();
    start_download(&mut partial, 1).await;
    let ended = partial.wait_for_download_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Failed(_)), "{:?}", ended.outcome);

    // A new downloader of the same game, from a slow seed, finds the journaled blocks at
    // the partial peer.
    let slow = seed(&files, 4);
    let mut downloader = TestPeer::builder().static_peers(&[slow.addr(), partial.addr()]).start();
    start_download(&mut downloader, 1).await;
    let ended = downloader.wait_for_download_end(GAME).await;
    let got = finished(&ended.outcome, "downloader").summary;
    assert_same_files(&downloader, &files);
    assert!(
        got.peers_used.contains(&partial.addr()) && got.from_partials > 0,
        "the unfinished download served its blocks: {got:?}"
    );
}

/// Block `block` of the test game.
fn block_bytes(files: &[Vec<u8>], block: u32) -> &[u8] {
    let mut global = 0u32;
    for bytes in files {
        let count = bytes.len().div_ceil(BLOCK_SIZE as usize) as u32;
        if block < global + count {
            let start = (block - global) as usize * BLOCK_SIZE as usize;
            return &bytes[start..(start + BLOCK_SIZE as usize).min(bytes.len())];
        }
        global += count;
    }
    panic!("block {block} is past the game");
}

/// A seed relay in front of `honest` that sends at most two blocks per answer and corrupts
/// the last block of its seventh (its number goes to `corrupted`), by when at least three
/// requests are done (four are in flight at most); it answers `Busy` from then on, and
/// refuses other requests.
fn corrupting_relay(honest: std::net::SocketAddr, corrupted: Arc<std::sync::OnceLock<u32>>) -> std::net::SocketAddr {
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap();
    let client = PeerClient::new(endpoint);
    let answers = Arc::new(AtomicUsize::new(0));
    fake_peer(GAME, VERSION, move |request, mut send| {
        let (client, answers, corrupted) = (client.clone(), answers.clone(), corrupted.clone());
        async move {
            match pass_through(&client, honest, request, &mut send).await {
                None => {}
                Some(Request::GetBlocks {
                    id,
                    list,
                    offered,
                    want,
                }) => {
                    let answer = answers.fetch_add(1, Ordering::SeqCst);
                    if answer > 6 {
                        let busy = Response::error(ErrorKind::Busy, "this relay is done");
                        let _ = write_frame(&mut send, &busy).await;
                        let _ = send.finish();
                        return;
                    }
                    let details = client.get_game(honest, &id).await.unwrap();
                    let layout = BlockLayout::new(&details.files).unwrap();
                    let offer = BlockOffer {
                        list: &list,
                        offered: &offered,
                        want: want.min(2),
                    };
                    let (picked, mut reader) = client.open_blocks(honest, &id, &offer, &layout).await.unwrap();
                    let mut bytes = Vec::new();
                    while let Some(piece) = reader.next_piece(1 << 20).await.unwrap() {
                        bytes.extend_from_slice(&piece);
                    }
                    if answer == 6 {
                        let last = *picked.last().unwrap();
                        let at = bytes.len() - layout.block_len(last).unwrap() as usize;
                        bytes[at] ^= 1;
                        corrupted.set(last).unwrap();
                    }
                    let _ = write_frame(&mut send, &Response::Blocks { picked }).await;
                    let _ = send.write_all(&bytes).await;
                }
                Some(_) => {
                    let refusal = Response::error(ErrorKind::Internal, "this relay only sends blocks");
                    let _ = write_frame(&mut send, &refusal).await;
                }
            }
            let _ = send.finish();
        }
    })
}

/// What a downloader of the game needs to ask a peer about it: its list digest and layout.
async fn list_of(client: &PeerClient, seed: std::net::SocketAddr) -> (ContentHash, BlockLayout) {
    let details = client.get_game(seed, GAME).await.unwrap();
    (list_digest(&details.files), BlockLayout::new(&details.files).unwrap())
}

/// Every block `addr` advertises for `list`, fetched from it and compared with the game:
/// the advertised blocks, each checked.
async fn check_advertised(
    client: &PeerClient,
    addr: std::net::SocketAddr,
    list: &ContentHash,
    layout: &BlockLayout,
) -> Vec<u32> {
    let truth = files_blocks();
    let advertised = match client
        .get_availability(addr, GAME, list, 0, layout.total(), Duration::ZERO)
        .await
    {
        Ok(Availability::Bitmap { bitmap, .. }) => bitmap.iter().collect::<Vec<u32>>(),
        Ok(Availability::Full) => (0..layout.total()).collect(),
        Ok(Availability::Added { blocks, .. }) => blocks,
        // Not serving the list (yet): nothing advertised.
        Err(_) => return Vec::new(),
    };
    for &block in &advertised {
        let offer = BlockOffer {
            list,
            offered: &[block],
            want: 1,
        };
        let (picked, mut reader) = match client.open_blocks(addr, GAME, &offer, layout).await {
            Ok(answer) => answer,
            // Refusing (busy, or the download is ending) sends nothing wrong.
            Err(ClientError::Remote { .. }) => continue,
            Err(error) => panic!("asking for block {block}: {error}"),
        };
        assert_eq!(picked, [block]);
        let mut bytes = Vec::new();
        loop {
            match reader.next_piece(1 << 20).await {
                Ok(Some(piece)) => bytes.extend_from_slice(&piece),
                Ok(None) => break,
                // Cut off (the download is ending): what came is not the whole block.
                Err(_) => return advertised,
            }
        }
        assert!(
            bytes == block_bytes(&truth, block),
            "advertised block {block} is not the game's"
        );
    }
    advertised
}

/// Checks what `addr` advertises until aborted (at most 1000 times); returns how many
/// checks began after the relay corrupted its block, each of them passed.
fn keep_checking(
    client: &PeerClient,
    addr: std::net::SocketAddr,
    (list, layout): &(ContentHash, BlockLayout),
    corrupted: &Arc<std::sync::OnceLock<u32>>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let checks_after = Arc::new(AtomicUsize::new(0));
    let (client, list, layout, corrupted, count) = (
        client.clone(),
        *list,
        layout.clone(),
        corrupted.clone(),
        checks_after.clone(),
    );
    let task = tokio::spawn(async move {
        for _ in 0..1000 {
            let after = corrupted.get().is_some();
            check_advertised(&client, addr, &list, &layout).await;
            if after {
                count.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (task, checks_after)
}

/// Stops `keep_checking`, failing the test if a check failed.
async fn stop_checking(task: tokio::task::JoinHandle<()>) {
    task.abort();
    if let Err(error) = task.await {
        assert!(error.is_cancelled(), "a check failed: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_download_advertises_only_blocks_it_verified_though_it_received_a_corrupt_one() {
    let files = game_files();
    let mut honest = TestPeer::builder().game(GAME, VERSION, &files).start();
    honest.wait_for_hashing_done().await;
    let slow = seed(&files, 4);
    let corrupted = Arc::new(std::sync::OnceLock::new());
    let relay = corrupting_relay(honest.addr(), corrupted.clone());
    // The relay sends good blocks, then a corrupt one, and is dropped; the slow seed sends
    // the rest, seconds of it, while the checks run.
    let mut downloader = TestPeer::builder().static_peers(&[relay, slow.addr()]).start();
    start_download(&mut downloader, 2).await;
    let client = PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    let (checking, checks_after) = keep_checking(
        &client,
        downloader.addr(),
        &list_of(&client, honest.addr()).await,
        &corrupted,
    );
    let ended = downloader.wait_for_download_end(GAME).await;
    stop_checking(checking).await;
    let got = finished(&ended.outcome, "downloader").summary;
    assert_same_files(&downloader, &files);
    assert!(got.peers_used.contains(&relay), "{got:?}");
    let bad = corrupted.get().expect("the relay corrupted a block");
    let checks = checks_after.load(Ordering::SeqCst);
    assert!(
        checks > 0,
        "the availability was checked after block {bad} came corrupt"
    );
    eprintln!("{checks} checks after block {bad} came corrupt, each passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_download_does_not_advertise_a_block_it_received_corrupt() {
    let files = game_files();
    let mut honest = TestPeer::builder().game(GAME, VERSION, &files).start();
    honest.wait_for_hashing_done().await;
    let corrupted = Arc::new(std::sync::OnceLock::new());
    let relay = corrupting_relay(honest.addr(), corrupted.clone());
    // The downloader's only source sends one corrupt block after good ones: the download
    // fails with some blocks verified and journaled and one received bad.
    let mut partial = TestPeer::builder().static_peers(&[relay]).start();
    start_download(&mut partial, 1).await;
    let client = PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    let list = list_of(&client, honest.addr()).await;
    let (checking, _) = keep_checking(&client, partial.addr(), &list, &corrupted);
    let ended = partial.wait_for_download_end(GAME).await;
    assert!(matches!(ended.outcome, Outcome::Failed(_)), "{:?}", ended.outcome);
    stop_checking(checking).await;

    // It serves what it journaled, and not the block that came bad.
    let bad = *corrupted.get().expect("the relay corrupted a block");
    let advertised = check_advertised(&client, partial.addr(), &list.0, &list.1).await;
    assert!(
        !advertised.is_empty(),
        "the blocks of the requests before the bad one were journaled"
    );
    assert!(
        !advertised.contains(&bad),
        "block {bad} was received corrupt and never verified, yet advertised"
    );
}

/// Reads one block answer to its end.
async fn read_answer(mut reader: lanspread::peer::client::ChunkReader) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(piece) = reader.next_piece(1 << 20).await.expect("the answer arrives whole") {
        bytes.extend_from_slice(&piece);
    }
    bytes
}

/// An upload slot is taken until its answer has arrived, not only until quinn queued it
/// (a slow link holds seconds of queued answers): while the one holder's block is held up
/// on the way, a second downloader is refused even after the slot's idle time, and is
/// served once the holder has its block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slot_stays_taken_until_its_answer_has_arrived() {
    let files = game_files();
    let mut seed = seed(&files, 1);
    seed.wait_for_hashing_done().await;
    let relay = support::hostile::Relay::start(seed.addr()).await.unwrap();
    let client = || PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    let (holder, other) = (client(), client());
    // The holder's connection is up before its answers are held back.
    let (list, layout) = list_of(&holder, relay.addr).await;
    let truth = files_blocks();

    relay.hold_answers(true);
    let asking = {
        let (holder, layout, addr) = (holder.clone(), layout.clone(), relay.addr);
        tokio::spawn(async move {
            let offer = BlockOffer {
                list: &list,
                offered: &[0],
                want: 1,
            };
            let (picked, reader) = holder.open_blocks(addr, GAME, &offer, &layout).await.unwrap();
            (picked, read_answer(reader).await)
        })
    };
    // Longer than a slot stays taken by a holder with nothing in flight (1 s), shorter
    // than the slot waits for an answer to arrive (5 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let offer = BlockOffer {
        list: &list,
        offered: &[1],
        want: 1,
    };
    match other.open_blocks(seed.addr(), GAME, &offer, &layout).await {
        Err(ClientError::Remote { kind, .. }) => assert_eq!(kind, ErrorKind::Busy),
        Err(error) => panic!("the second downloader was not refused but failed: {error}"),
        Ok(_) => panic!("the second downloader got the slot while the holder's block was still on its way"),
    }

    relay.hold_answers(false);
    let (picked, bytes) = asking.await.unwrap();
    assert_eq!(picked, [0]);
    assert!(bytes == block_bytes(&truth, 0), "block 0 arrived different");
    let mut served = None;
    for _ in 0..40 {
        match other.open_blocks(seed.addr(), GAME, &offer, &layout).await {
            Ok((picked, reader)) => {
                served = Some((picked, read_answer(reader).await));
                break;
            }
            Err(ClientError::Remote {
                kind: ErrorKind::Busy, ..
            }) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("asking again: {error}"),
        }
    }
    let (picked, bytes) = served.expect("the second downloader is served once the holder's block arrived");
    assert_eq!(picked, [1]);
    assert!(bytes == block_bytes(&truth, 1), "block 1 arrived different");
}
