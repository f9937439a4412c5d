//! The download pipeline: majority validation of the peers' file lists, then
//! one task per download that learns what every block must hash to (see
//! `expected`), fetches chunks from every validated peer at once (see `queue`),
//! checks each block as it arrives and writes only verified ones positionally
//! into pre-created files (see `storage`), reports `DownloadProgressTracker`
//! samples of verified bytes, commits `version.ini` last and records the block
//! hashes it verified, so the finished game is served without being read again. Failures are `TransferError`s (see `error`): a peer's
//! fault moves its work to the other peers, a local one ends the download.

pub mod error;
pub mod expected;
pub mod majority;
pub mod progress;
pub mod queue;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::PeerEvent;
use super::client::PeerClient;
use crate::content::{BLOCK_SIZE, ContentHash, FileHashes, root_of};
use crate::layout::VERSION_FILE;
use crate::proto::GameFileDescription;
pub use error::TransferError;
use expected::{Expected, expected_content};
use progress::{DownloadProgress, DownloadProgressTracker};
use queue::{ChunkId, Completion, WorkQueue};
use storage::DownloadStorage;

/// Bytes per chunk request, and below the chunk requests each peer keeps in flight.
/// Chosen with `examples/transfer_bench.rs` (1 GiB, medians of quiet interleaved
/// runs): 1 MiB chunks cost 40-60% more CPU per GB; depth 8 and 16 MiB chunks raise
/// peak memory (up to 536 MiB) and endgame duplicates and hurt the slow-peer case;
/// among 4/8 MiB x 2/4 the rates are within noise, and 8 MiB x 4 was best or tied at 2 GiB.
pub const CHUNK_SIZE: u64 = 8 << 20;
pub const IN_FLIGHT_PER_PEER: usize = 4;
/// A chunk stream that delivers nothing for this long is given up (the peer may be gone).
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// `version.ini` is buffered in memory, so it must be small.
const MAX_VERSION_FILE: u64 = 64 << 10;

/// A validated download: what to fetch and from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadPlan {
    pub id: String,
    pub version: String,
    pub files: Vec<GameFileDescription>,
    pub peers: Vec<SocketAddr>,
    /// Peers left out because their file list disagrees with the majority.
    pub excluded: Vec<(SocketAddr, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DownloadSummary {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Peers that delivered at least one chunk (or the sentinel).
    pub peers_used: Vec<SocketAddr>,
}

#[derive(Debug)]
pub enum DownloadOutcome {
    Finished(DownloadSummary),
    /// Never `TransferError::Cancelled`: that is `Cancelled`.
    Failed(TransferError),
    Cancelled,
}

pub struct DownloadJob {
    pub plan: DownloadPlan,
    pub game_dir: PathBuf,
    /// Where the verified block hashes are recorded for the library.
    pub state_dir: PathBuf,
    pub client: PeerClient,
    pub cancel: CancellationToken,
    /// The file list of the version on disk now (empty if none): what the new one lacks goes.
    pub replaces: Vec<GameFileDescription>,
    /// Begin and progress events go straight out; the outcome goes back to the actor.
    pub events: mpsc::Sender<PeerEvent>,
}

#[derive(Clone)]
struct Chunk {
    /// Index into the plan's file list.
    file: usize,
    path: Arc<str>,
    /// Where `path` is on disk, for error messages.
    disk_path: Arc<Path>,
    offset: u64,
    len: u64,
}

/// Runs a download to its end; on failure or cancel the payload is discarded.
pub async fn download_game_files(job: DownloadJob) -> DownloadOutcome {
    let (game_dir, id, files) = (job.game_dir.clone(), job.plan.id.clone(), job.plan.files.clone());
    let previous = job.replaces.clone();
    let begun = tokio::task::spawn_blocking(move || DownloadStorage::begin(&game_dir, &id, &files, &previous)).await;
    let storage = match begun {
        Ok(Ok(storage)) => storage,
        Ok(Err(err)) => return DownloadOutcome::Failed(err),
        Err(err) => {
            return DownloadOutcome::Failed(TransferError::Internal(format!(
                "preparing the game folder panicked: {err}"
            )));
        }
    };
    let storage = Arc::new(storage);
    let result = download_impl(&job, &storage).await;
    // Every fetch task has ended, so this is the only reference left.
    let Some(storage) = Arc::into_inner(storage) else {
        return DownloadOutcome::Failed(TransferError::Internal("download storage still in use".to_owned()));
    };
    match result {
        Ok(fetched) => {
            let (state_dir, id) = (job.state_dir.clone(), job.plan.id.clone());
            let committed = tokio::task::spawn_blocking(move || {
                let root = storage.root().to_path_buf();
                storage.commit(&fetched.version_ini)?;
                if let Err(err) = crate::library::record_verified(&state_dir, &root, &id, fetched.verified) {
                    // The scan after the download then hashes the game itself.
                    tracing::warn!(game = id, "cannot record the verified block hashes: {err}");
                }
                Ok(())
            })
            .await;
            match committed {
                Ok(Ok(())) => DownloadOutcome::Finished(fetched.summary),
                Ok(Err(err)) => DownloadOutcome::Failed(err),
                Err(err) => DownloadOutcome::Failed(TransferError::Internal(format!(
                    "finishing the download panicked: {err}"
                ))),
            }
        }
        Err(err) => {
            let _ = tokio::task::spawn_blocking(move || storage.abort()).await;
            match err {
                TransferError::Cancelled => DownloadOutcome::Cancelled,
                err => DownloadOutcome::Failed(err),
            }
        }
    }
}

/// What a download fetched, ready to commit.
struct Fetched {
    summary: DownloadSummary,
    version_ini: Vec<u8>,
    /// Every payload file's path, length and verified block hashes, for the library.
    verified: Vec<(String, u64, FileHashes)>,
}

async fn download_impl(job: &DownloadJob, storage: &Arc<DownloadStorage>) -> Result<Fetched, TransferError> {
    let plan = &job.plan;
    let started = Instant::now();
    let total: u64 = plan.files.iter().filter(|f| !f.is_dir).map(|f| f.size).sum();
    let _ = job
        .events
        .send(PeerEvent::DownloadGameFilesBegin {
            id: plan.id.clone(),
            version: plan.version.clone(),
            total_bytes: total,
            peers: plan.peers.clone(),
        })
        .await;

    let listed = tokio::select! {
        () = job.cancel.cancelled() => return Err(TransferError::Cancelled),
        listed = expected_content(&job.client, &plan.id, &plan.files, &plan.peers) => listed?,
    };
    let (expected, liars) = listed;
    report_dropped(job, &liars).await;
    let liars: Vec<SocketAddr> = liars.iter().map(|(addr, _)| *addr).collect();
    let peers: Vec<SocketAddr> = plan
        .peers
        .iter()
        .copied()
        .filter(|addr| !liars.contains(addr))
        .collect();
    let expected = Arc::new(expected);
    let chunks = split_into_chunks(&plan.files, storage)?;

    let mut queue = WorkQueue::new(chunks.len(), &peers, IN_FLIGHT_PER_PEER);
    let mut tracker = DownloadProgressTracker::new(&plan.id, total, &peers, started);
    let received: BTreeMap<SocketAddr, Arc<AtomicU64>> = peers.iter().map(|a| (*a, Arc::default())).collect();
    // The hash of each one-block file, once its block arrived (longer files' lists are known).
    let mut single_blocks: Vec<Option<ContentHash>> = vec![None; plan.files.len()];
    let mut fetches: JoinSet<(SocketAddr, ChunkId, Result<Option<ContentHash>, TransferError>)> = JoinSet::new();
    let mut aborts: HashMap<(SocketAddr, ChunkId), tokio::task::AbortHandle> = HashMap::new();
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    let id: Arc<str> = plan.id.as_str().into();

    while !queue.is_complete() {
        for (addr, chunk_id) in queue.assign() {
            let (client, id, chunk) = (job.client.clone(), id.clone(), chunks[chunk_id].clone());
            let (counter, expected) = (received[&addr].clone(), expected.clone());
            let handle = fetches.spawn(async move {
                let Some(Some(file)) = expected.get(chunk.file) else {
                    return (
                        addr,
                        chunk_id,
                        Err(TransferError::Internal("a chunk of no file".into())),
                    );
                };
                let result = fetch_chunk(&client, addr, &id, &chunk, file, &counter).await;
                (addr, chunk_id, result)
            });
            aborts.insert((addr, chunk_id), handle);
        }
        if let Some(failure) = queue.take_failure() {
            fetches.shutdown().await;
            return Err(failure);
        }
        tokio::select! {
            () = job.cancel.cancelled() => {
                fetches.shutdown().await;
                return Err(TransferError::Cancelled);
            }
            _ = ticker.tick() => {
                emit_progress(job, &mut tracker, &received, queue.active_peers());
            }
            Some(joined) = fetches.join_next() => {
                // Aborted endgame duplicates end with a JoinError: nothing to record.
                let Ok((addr, chunk_id, result)) = joined else { continue };
                aborts.remove(&(addr, chunk_id));
                match result {
                    Ok(single_block) => {
                        if let Completion::First { redundant } = queue.complete(addr, chunk_id) {
                            let chunk = &chunks[chunk_id];
                            tracker.chunk_done(chunk.len);
                            if single_block.is_some() {
                                single_blocks[chunk.file] = single_block;
                            }
                            for other in redundant {
                                if let Some(handle) = aborts.remove(&(other, chunk_id)) {
                                    handle.abort();
                                }
                            }
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%addr, chunk = chunk_id, "chunk failed: {error}");
                        let reason = error.to_string();
                        let corrupt = error.drops_peer_at_once();
                        if queue.fail(addr, chunk_id, error) {
                            tracing::warn!(%addr, game = %plan.id, "dropping peer from this download: {reason}");
                            for chunk in queue.take_in_flight(addr) {
                                if let Some(handle) = aborts.remove(&(addr, chunk)) {
                                    handle.abort();
                                }
                            }
                            if corrupt {
                                let _ = job.events.try_send(PeerEvent::DownloadPeersExcluded {
                                    id: plan.id.clone(),
                                    peers: vec![(addr, reason)],
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    fetches.shutdown().await;

    let sentinel = plan
        .files
        .iter()
        .position(|f| f.path == VERSION_FILE && !f.is_dir)
        .ok_or_else(|| {
            TransferError::PeersFailed("the file list has no version.ini; the peers' copies are incomplete".into())
        })?;
    let (version_ini, sentinel_peer) = fetch_version_file(job, &queue, &plan.files[sentinel]).await?;
    tracker.chunk_done(version_ini.len() as u64);
    received[&sentinel_peer].fetch_add(version_ini.len() as u64, Ordering::Relaxed);
    emit_progress(job, &mut tracker, &received, 0);

    let mut verified = Vec::new();
    for (index, file) in plan.files.iter().enumerate() {
        let Some(Some(expected)) = expected.get(index) else {
            continue;
        };
        let single = if index == sentinel {
            Some(ContentHash::of(&version_ini))
        } else {
            single_blocks[index]
        };
        let hashes = expected
            .hashes(single)
            .ok_or_else(|| TransferError::Internal(format!("{} finished without its block verified", file.path)))?;
        verified.push((file.path.clone(), file.size, hashes));
    }
    let peers_used = received
        .iter()
        .filter(|(_, bytes)| bytes.load(Ordering::Relaxed) > 0)
        .map(|(addr, _)| *addr)
        .collect();
    Ok(Fetched {
        summary: DownloadSummary {
            bytes: tracker.bytes_done(),
            elapsed: started.elapsed(),
            peers_used,
        },
        version_ini,
        verified,
    })
}

/// Tells the user about peers left out of this download for what they sent.
async fn report_dropped(job: &DownloadJob, dropped: &[(SocketAddr, TransferError)]) {
    if dropped.is_empty() {
        return;
    }
    let peers = dropped.iter().map(|(addr, why)| (*addr, why.to_string())).collect();
    let _ = job
        .events
        .send(PeerEvent::DownloadPeersExcluded {
            id: job.plan.id.clone(),
            peers,
        })
        .await;
}

/// Cuts the payload into chunks of whole blocks (`CHUNK_SIZE` is a multiple of `BLOCK_SIZE`).
fn split_into_chunks(files: &[GameFileDescription], storage: &DownloadStorage) -> Result<Vec<Chunk>, TransferError> {
    let mut chunks = Vec::new();
    for (index, file) in files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_dir && f.path != VERSION_FILE)
    {
        let disk_path: Arc<Path> = storage
            .payload_path(&file.path)
            .ok_or_else(|| TransferError::Internal(format!("{} was not prepared", file.path)))?
            .into();
        let path: Arc<str> = file.path.as_str().into();
        let mut offset = 0;
        while offset < file.size {
            let len = CHUNK_SIZE.min(file.size - offset);
            chunks.push(Chunk {
                file: index,
                path: path.clone(),
                disk_path: disk_path.clone(),
                offset,
                len,
            });
            offset += len;
        }
    }
    Ok(chunks)
}

fn emit_progress(
    job: &DownloadJob,
    tracker: &mut DownloadProgressTracker,
    received: &BTreeMap<SocketAddr, Arc<AtomicU64>>,
    active_peers: usize,
) {
    for (addr, bytes) in received {
        tracker.set_peer_bytes(*addr, bytes.load(Ordering::Relaxed));
    }
    let sample: DownloadProgress = tracker.sample(Instant::now(), active_peers);
    // Progress is advisory: a slow consumer misses samples rather than slowing the download.
    let _ = job.events.try_send(PeerEvent::DownloadProgress(sample));
}

/// Fetches one chunk, block by block: each block is hashed and checked against `expected`
/// off the async threads, and written in place only if it matches. A block that does not
/// match fails the chunk with `Corrupt` before anything of it is written. Returns the
/// block's hash when the chunk is a whole one-block file (the file's list then needs it).
async fn fetch_chunk(
    client: &PeerClient,
    addr: SocketAddr,
    id: &str,
    chunk: &Chunk,
    expected: &Expected,
    received: &AtomicU64,
) -> Result<Option<ContentHash>, TransferError> {
    let stalled = |_| TransferError::Stalled {
        peer: addr,
        waited: STALL_TIMEOUT,
    };
    let mut reader = tokio::time::timeout(
        STALL_TIMEOUT,
        client.open_file_chunk(addr, id, &chunk.path, chunk.offset, chunk.len),
    )
    .await
    .map_err(stalled)?
    .map_err(|err| TransferError::Peer(err.to_string()))?;
    // Open only while this chunk is written (see `storage`).
    let disk_path = chunk.disk_path.clone();
    let file = tokio::task::spawn_blocking(move || storage::open_payload(&disk_path))
        .await
        .map_err(|err| TransferError::Internal(format!("the open task failed: {err}")))?
        .map_err(|err| TransferError::local(&chunk.disk_path, err))?;
    let file = Arc::new(file);
    let mut block = chunk.offset / BLOCK_SIZE;
    let mut block_len = expected.block_len(block);
    let mut batch = Vec::with_capacity(usize::try_from(block_len).unwrap_or(0));
    let mut last_hash = None;
    let mut position = chunk.offset;
    let end = chunk.offset + chunk.len;
    while position < end {
        let room = usize::try_from(block_len).unwrap_or(usize::MAX) - batch.len();
        let piece = tokio::time::timeout(STALL_TIMEOUT, reader.next_piece(room))
            .await
            .map_err(stalled)?
            .map_err(|err| TransferError::Peer(err.to_string()))?
            .ok_or_else(|| TransferError::Peer(format!("{addr} ended {} short", chunk.path)))?;
        received.fetch_add(piece.len() as u64, Ordering::Relaxed);
        batch.extend_from_slice(&piece);
        if batch.len() as u64 == block_len {
            let (file, wanted) = (file.clone(), expected.clone());
            let corrupt = TransferError::Corrupt {
                peer: addr,
                path: chunk.path.to_string(),
            };
            let (returned, hash) = tokio::task::spawn_blocking(move || {
                let hash = ContentHash::of(&batch);
                if !wanted.matches(block, &hash) {
                    return Ok(Err(corrupt));
                }
                storage::write_at(&file, &batch, position).map(|()| Ok((batch, hash)))
            })
            .await
            .map_err(|err| TransferError::Internal(format!("the write task failed: {err}")))?
            .map_err(|err| TransferError::local(&chunk.disk_path, err))??;
            batch = returned;
            batch.clear();
            last_hash = Some(hash);
            position += block_len;
            block += 1;
            block_len = expected.block_len(block);
        }
    }
    // The stream must end here: a peer sending more than it announced is caught by the reader.
    tokio::time::timeout(STALL_TIMEOUT, reader.next_piece(1))
        .await
        .map_err(stalled)?
        .map_err(|err| TransferError::Peer(err.to_string()))?;
    // Flush now, while other chunks still transfer, so the commit is not one long sync at the end
    // (measured: the final sync alone cost ~10% of a rate-capped download).
    tokio::task::spawn_blocking(move || file.sync_data())
        .await
        .map_err(|err| TransferError::Internal(format!("the sync task failed: {err}")))?
        .map_err(|err| TransferError::local(&chunk.disk_path, err))?;
    Ok(last_hash.filter(|_| expected.block_count() == 1))
}

/// Fetches `version.ini` into memory from the first live peer that delivers it whole and
/// matching its listed root.
async fn fetch_version_file(
    job: &DownloadJob,
    queue: &WorkQueue,
    listed: &GameFileDescription,
) -> Result<(Vec<u8>, SocketAddr), TransferError> {
    let size = listed.size;
    if size > MAX_VERSION_FILE {
        return Err(TransferError::PeersFailed(format!(
            "version.ini is {size} bytes; over {MAX_VERSION_FILE} is not a version file"
        )));
    }
    let mut errors = Vec::new();
    for addr in queue.live_peers().chain(job.plan.peers.iter().copied()) {
        if job.cancel.is_cancelled() {
            return Err(TransferError::Cancelled);
        }
        let mut bytes = Vec::new();
        match job
            .client
            .get_file_data(addr, &job.plan.id, VERSION_FILE, &mut bytes)
            .await
        {
            Ok(_) if bytes.len() as u64 == size && Some(root_of(&bytes)) == listed.hash => return Ok((bytes, addr)),
            Ok(_) if bytes.len() as u64 == size => errors.push(
                TransferError::Corrupt {
                    peer: addr,
                    path: VERSION_FILE.into(),
                }
                .to_string(),
            ),
            Ok(_) => errors.push(format!("{addr} sent {} bytes, expected {size}", bytes.len())),
            Err(err) => errors.push(err.to_string()),
        }
    }
    Err(TransferError::PeersFailed(format!(
        "no peer delivered version.ini: {}",
        errors.join("; ")
    )))
}
