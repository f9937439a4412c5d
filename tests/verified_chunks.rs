//! Every block a download writes is checked against the content hashes the peers list,
//! on real processes: data that rotted on a serving peer's disk (its stamp unchanged, so
//! its recorded hashes still claim the old content) is caught, never written, fetched
//! again from another peer, and the peer that sent it is named and left out. A file
//! changed under a serving peer is never served with its stale hashes.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lanspread::config::Limits;
use lanspread::content::{BLOCK_SIZE, BlockHasher, root_of};
use lanspread::peer::client::{ClientError, PeerClient};
use lanspread::peer::download::IN_FLIGHT_PER_PEER;
use lanspread::peer::transport::make_endpoint;
use lanspread::proto::{Request, Response, write_frame};
use support::fake::{fake_peer, pass_through};
use support::process::{Lanspread, free_addr, spawn_get_download};
use support::{pseudo_random_bytes, rot, wait_until, write_game};

const GAME: &str = "openarena";
const PAK: &str = "game.pak";
const PAK_SIZE: usize = 40 << 20;

/// A `serve` sharing `GAME` version 1 (one `PAK_SIZE` file), once it has recorded its hashes.
fn seed(root: &Path, content: &[u8]) -> (Lanspread, SocketAddr) {
    write_game(&root.join("games"), GAME, "1", &[(PAK, content.to_vec())]);
    let addr = free_addr();
    let mut serve = Lanspread::serve(root, addr, &[], &[]);
    // Announced (and its hashes recorded) once hashed.
    serve.wait_for_line(&["hashed 1 game(s)"]);
    (serve, addr)
}

fn get(root: &Path, peers: &[SocketAddr]) -> support::process::Finished {
    spawn_get_download(root, GAME, peers).finish()
}

#[test]
fn same_size_corruption_on_one_of_two_peers_is_caught_and_the_result_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let content = pseudo_random_bytes(7, PAK_SIZE);
    let (_good, good_addr) = seed(&dir.path().join("good"), &content);
    let (_bad, bad_addr) = seed(&dir.path().join("bad"), &content);
    let bad_pak = dir.path().join("bad/games").join(GAME).join(PAK);
    // One byte every 2 MiB: every 8 MiB chunk holds some.
    let flipped = rot(&bad_pak, (1u64 << 20..PAK_SIZE as u64).step_by(2 << 20));
    assert_eq!(flipped, PAK_SIZE >> 21);

    let client = dir.path().join("client");
    let got = get(&client, &[good_addr, bad_addr]);
    assert_eq!(got.code(), Some(0), "{got}");
    let downloaded = std::fs::read(client.join("games").join(GAME).join(PAK)).unwrap();
    assert!(downloaded == content, "the download is byte-identical to the good copy");
    let named = format!("{bad_addr} sent corrupt data for {PAK}; not using it");
    assert!(got.stderr.contains(&named), "the bad peer is named: {got}");
    assert!(
        !got.stderr.contains(&format!("{good_addr} sent corrupt")),
        "the good peer is not blamed: {got}"
    );
}

/// A relay in front of an honest `serve` that passes file lists, block hashes and
/// `version.ini` through unchanged, but sends the blocks of `PAK` (whose bytes are
/// `content`) with a byte flipped in each, counting the block requests it gets.
fn corrupting_relay(honest: SocketAddr, content: Arc<Vec<u8>>, chunk_requests: Arc<AtomicUsize>) -> SocketAddr {
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap();
    let client = PeerClient::new(endpoint);
    fake_peer(GAME, "1", move |request, mut send| {
        let (client, chunk_requests, content) = (client.clone(), chunk_requests.clone(), content.clone());
        async move {
            match pass_through(&client, honest, request, &mut send).await {
                None => {}
                Some(Request::GetGameFileData { id, path }) => {
                    let mut bytes = Vec::new();
                    client.get_file_data(honest, &id, &path, &mut bytes).await.unwrap();
                    let _ = write_frame(
                        &mut send,
                        &Response::FileData {
                            size: bytes.len() as u64,
                        },
                    )
                    .await;
                    let _ = send.write_all(&bytes).await;
                }
                // From memory, at once: a relay slower than the honest peer could see its
                // blocks fetched from the other peer first and never be caught. `PAK` is the
                // only payload file, so global block b is its block b.
                Some(Request::GetBlocks { offered, want, .. }) => {
                    chunk_requests.fetch_add(1, Ordering::SeqCst);
                    let picked: Vec<u32> = offered.into_iter().take(want as usize).collect();
                    let _ = write_frame(&mut send, &Response::Blocks { picked: picked.clone() }).await;
                    for block in picked {
                        let start = block as usize * BLOCK_SIZE as usize;
                        let end = (start + BLOCK_SIZE as usize).min(content.len());
                        let mut bytes = content[start..end].to_vec();
                        bytes[0] ^= 1;
                        let _ = send.write_all(&bytes).await;
                    }
                }
                _ => {}
            }
            let _ = send.finish();
        }
    })
}

#[test]
fn a_peer_that_corrupts_every_block_is_dropped_after_its_first_bad_block() {
    let dir = tempfile::tempdir().unwrap();
    let content = pseudo_random_bytes(11, PAK_SIZE);
    let (_good, good_addr) = seed(&dir.path().join("good"), &content);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chunk_requests = Arc::new(AtomicUsize::new(0));
    let relay = {
        let _entered = runtime.enter();
        corrupting_relay(good_addr, Arc::new(content.clone()), chunk_requests.clone())
    };

    let client = dir.path().join("client");
    let got = get(&client, &[good_addr, relay]);
    assert_eq!(got.code(), Some(0), "{got}");
    assert!(std::fs::read(client.join("games").join(GAME).join(PAK)).unwrap() == content);
    let named = format!("{relay} sent corrupt data for {PAK}; not using it");
    assert_eq!(got.stderr.matches(&named).count(), 1, "named once: {got}");
    // Only the requests it had in flight when its first bad block arrived: none after.
    let asked = chunk_requests.load(Ordering::SeqCst);
    assert!(
        (1..=IN_FLIGHT_PER_PEER).contains(&asked),
        "the relay got {asked} block requests; at most the {IN_FLIGHT_PER_PEER} in flight at its first bad block"
    );
}

#[test]
fn a_file_changed_under_a_serving_peer_is_not_served_with_its_stale_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let old = pseudo_random_bytes(3, 3 << 20);
    let root = dir.path().join("seed");
    let (_seed, addr) = seed(&root, &old);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = {
        let _entered = runtime.enter();
        PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap())
    };
    // `None` while the peer does not share the game (it is hashing it again).
    let listed_root = |client: &PeerClient| {
        runtime.block_on(async {
            let details = client.get_game(addr, GAME).await.ok()?;
            details.files.iter().find(|f| f.path == PAK)?.hash
        })
    };
    assert_eq!(listed_root(&client), Some(root_of(&old)));

    // Same size, other bytes, a new mtime: a real change, which the peer must rehash.
    let new = pseudo_random_bytes(4, 3 << 20);
    std::fs::write(root.join("games").join(GAME).join(PAK), &new).unwrap();
    let count = (new.len() as u64).div_ceil(BLOCK_SIZE);
    let mut hasher = BlockHasher::new();
    hasher.update(&old);
    let old_hashes = hasher.finish();
    let mut refused = 0;
    wait_until("the peer lists the new content", || {
        // Whatever the moment: the old hashes are never handed out again.
        match runtime.block_on(client.get_block_hashes(addr, GAME, PAK, count)) {
            Ok(hashes) => assert_ne!(hashes, old_hashes, "stale block hashes served"),
            // Refused as changed, or not shared at all while the peer hashes it again.
            Err(ClientError::Remote { message, .. }) => {
                assert!(
                    message.contains("changed") || message.contains("does not share"),
                    "{message}"
                );
                refused += 1;
            }
            Err(err) => panic!("{err}"),
        }
        listed_root(&client) == Some(root_of(&new))
    });
    let hashes = runtime
        .block_on(client.get_block_hashes(addr, GAME, PAK, count))
        .unwrap();
    assert_eq!(
        hashes.root(new.len() as u64),
        root_of(&new),
        "the rehashed blocks are served"
    );
    // Bytes of the old version under the new root are never sent either: a chunk now is new bytes.
    let mut chunk = Vec::new();
    runtime
        .block_on(client.get_file_chunk(addr, GAME, PAK, 0, BLOCK_SIZE, &mut chunk))
        .unwrap();
    assert!(chunk == new[..BLOCK_SIZE as usize]);
    eprintln!("refused {refused} time(s) while the change was not rehashed yet");
}

/// Small files travel in batches (`GetGameFiles`); each is checked against its root all the
/// same. Every small file rotted on one of two seeds: the batch it sends first fails, it is
/// named once and left out, and the other seed's copy arrives byte-identical.
#[test]
fn corrupt_small_files_in_a_batch_are_caught_and_the_peer_is_named() {
    const FILES: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..FILES)
        .map(|index| {
            let path = format!("data/d{:02}/f{index:04}.cfg", index % 10);
            (path, pseudo_random_bytes(index as u64, 1 + index * 37 % 3000))
        })
        .collect();
    let listed: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|(path, bytes)| (path.as_str(), bytes.clone()))
        .collect();
    let serve = |name: &str| {
        let root = dir.path().join(name);
        write_game(&root.join("games"), GAME, "1", &listed);
        let addr = free_addr();
        let mut serve = Lanspread::serve(&root, addr, &[], &[]);
        serve.wait_for_line(&["hashed 1 game(s)"]);
        (serve, addr)
    };
    let (_good, good_addr) = serve("good");
    let (_bad, bad_addr) = serve("bad");
    for (path, _) in &files {
        rot(&dir.path().join("bad/games").join(GAME).join(path), [0]);
    }

    let client = dir.path().join("client");
    let got = get(&client, &[good_addr, bad_addr]);
    assert_eq!(got.code(), Some(0), "{got}");
    for (path, bytes) in &files {
        let downloaded = std::fs::read(client.join("games").join(GAME).join(path)).unwrap();
        assert!(downloaded == *bytes, "{path} is byte-identical to the good copy");
    }
    let named = format!("{bad_addr} sent corrupt data for data/");
    assert_eq!(got.stderr.matches(&named).count(), 1, "named once: {got}");
    assert!(
        !got.stderr.contains(&format!("{good_addr} sent corrupt")),
        "the good peer is not blamed: {got}"
    );
}
