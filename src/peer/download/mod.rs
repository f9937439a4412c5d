//! The download pipeline: majority validation of the peers' file lists, then
//! one task per download that fetches chunks from every validated peer at once
//! (see `queue`), writes them positionally into pre-created files (see
//! `storage`), reports `DownloadProgressTracker` samples, and commits
//! `version.ini` last. Failures are `TransferError`s (see `error`): a peer's
//! fault moves its work to the other peers, a local one ends the download.

pub mod error;
pub mod progress;
pub mod queue;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
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
use crate::layout::VERSION_FILE;
use crate::proto::{GameDetails, GameFileDescription};
pub use error::TransferError;
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
/// Received bytes are written to disk in batches of this size (small writes are slow).
const WRITE_BATCH: usize = 1 << 20;
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

/// The union of the peers' file lists, sorted by path; where peers disagree on a
/// file's size (or kind), the value most of them report wins.
pub fn majority_file_list(manifests: &[(SocketAddr, &GameDetails)]) -> Vec<GameFileDescription> {
    let mut votes: BTreeMap<&str, HashMap<(u64, bool), usize>> = BTreeMap::new();
    for (_, details) in manifests {
        for file in &details.files {
            *votes
                .entry(&file.path)
                .or_default()
                .entry((file.size, file.is_dir))
                .or_default() += 1;
        }
    }
    votes
        .into_iter()
        .filter_map(|(path, counts)| {
            let ((size, is_dir), _) = counts
                .into_iter()
                .max_by_key(|&((size, _), count)| (count, std::cmp::Reverse(size)))?;
            Some(GameFileDescription {
                path: path.to_owned(),
                size,
                is_dir,
                // Votes are on size and kind only so far; comparing hashes is the next step.
                hash: None,
            })
        })
        .collect()
}

/// Compares each requested file's size across the peers' manifests. Peers
/// that disagree with the strict majority on any file are left out; a file
/// without a majority fails the plan.
pub fn validate_majority(
    id: &str,
    version: &str,
    requested: &[GameFileDescription],
    manifests: &[(SocketAddr, &GameDetails)],
) -> Result<DownloadPlan, TransferError> {
    if manifests.is_empty() {
        return Err(TransferError::NoMajority(
            "no peer has sent a file list for this version; ask for the game's files first".to_owned(),
        ));
    }
    let peer_count = manifests.len();
    let lists: Vec<HashMap<&str, &GameFileDescription>> = manifests
        .iter()
        .map(|(_, details)| details.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .collect();
    let mut disagreements: BTreeMap<SocketAddr, String> = BTreeMap::new();
    for wanted in requested {
        let mut votes: HashMap<Option<(u64, bool)>, usize> = HashMap::new();
        for list in &lists {
            *votes
                .entry(list.get(wanted.path.as_str()).map(|f| (f.size, f.is_dir)))
                .or_default() += 1;
        }
        let majority = votes
            .iter()
            .find(|(_, count)| **count * 2 > peer_count)
            .map(|(vote, _)| *vote);
        let Some(majority) = majority else {
            return Err(TransferError::NoMajority(format!(
                "the {peer_count} peers disagree about {} and no size has a majority; try again when more peers are around",
                wanted.path
            )));
        };
        let Some((size, is_dir)) = majority else {
            return Err(TransferError::NoMajority(format!(
                "most peers do not have {}; fetch the file list again",
                wanted.path
            )));
        };
        if (size, is_dir) != (wanted.size, wanted.is_dir) {
            return Err(TransferError::NoMajority(format!(
                "the file list is out of date ({} is {size} bytes at most peers); fetch it again",
                wanted.path
            )));
        }
        for ((addr, _), list) in manifests.iter().zip(&lists) {
            let theirs = list.get(wanted.path.as_str()).map(|f| (f.size, f.is_dir));
            if theirs != majority && !disagreements.contains_key(addr) {
                let what = theirs.map_or("missing".to_owned(), |(size, _)| format!("{size} bytes"));
                disagreements.insert(
                    *addr,
                    format!("reports {} as {what}, most peers say {size} bytes", wanted.path),
                );
            }
        }
    }
    Ok(DownloadPlan {
        id: id.to_owned(),
        version: version.to_owned(),
        files: requested.to_vec(),
        peers: manifests
            .iter()
            .map(|(addr, _)| *addr)
            .filter(|addr| !disagreements.contains_key(addr))
            .collect(),
        excluded: disagreements.into_iter().collect(),
    })
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
    pub client: PeerClient,
    pub cancel: CancellationToken,
    /// The file list of the version on disk now (empty if none): what the new one lacks goes.
    pub replaces: Vec<GameFileDescription>,
    /// Begin and progress events go straight out; the outcome goes back to the actor.
    pub events: mpsc::Sender<PeerEvent>,
}

#[derive(Clone)]
struct Chunk {
    path: Arc<str>,
    /// Where `path` is on disk, for error messages.
    disk_path: Arc<Path>,
    file: Arc<File>,
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
        Ok((summary, version_ini)) => match tokio::task::spawn_blocking(move || storage.commit(&version_ini)).await {
            Ok(Ok(())) => DownloadOutcome::Finished(summary),
            Ok(Err(err)) => DownloadOutcome::Failed(err),
            Err(err) => DownloadOutcome::Failed(TransferError::Internal(format!(
                "finishing the download panicked: {err}"
            ))),
        },
        Err(err) => {
            let _ = tokio::task::spawn_blocking(move || storage.abort()).await;
            match err {
                TransferError::Cancelled => DownloadOutcome::Cancelled,
                err => DownloadOutcome::Failed(err),
            }
        }
    }
}

async fn download_impl(
    job: &DownloadJob,
    storage: &Arc<DownloadStorage>,
) -> Result<(DownloadSummary, Vec<u8>), TransferError> {
    let plan = &job.plan;
    let started = Instant::now();
    let chunks = split_into_chunks(&plan.files, storage)?;
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

    let mut queue = WorkQueue::new(chunks.len(), &plan.peers, IN_FLIGHT_PER_PEER);
    let mut tracker = DownloadProgressTracker::new(&plan.id, total, &plan.peers, started);
    let received: BTreeMap<SocketAddr, Arc<AtomicU64>> = plan.peers.iter().map(|a| (*a, Arc::default())).collect();
    let mut fetches: JoinSet<(SocketAddr, ChunkId, Result<(), TransferError>)> = JoinSet::new();
    let mut aborts: HashMap<(SocketAddr, ChunkId), tokio::task::AbortHandle> = HashMap::new();
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    let id: Arc<str> = plan.id.as_str().into();

    while !queue.is_complete() {
        for (addr, chunk_id) in queue.assign() {
            let (client, id, chunk) = (job.client.clone(), id.clone(), chunks[chunk_id].clone());
            let counter = received[&addr].clone();
            let handle = fetches.spawn(async move {
                let result = fetch_chunk(&client, addr, &id, &chunk, &counter).await;
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
                    Ok(()) => {
                        if let Completion::First { redundant } = queue.complete(addr, chunk_id) {
                            tracker.chunk_done(chunks[chunk_id].len);
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
                        if queue.fail(addr, chunk_id, error) {
                            tracing::warn!(%addr, game = %plan.id, "dropping peer from this download: {reason}");
                            for chunk in queue.take_in_flight(addr) {
                                if let Some(handle) = aborts.remove(&(addr, chunk)) {
                                    handle.abort();
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    fetches.shutdown().await;

    let sentinel = plan.files.iter().find(|f| f.path == VERSION_FILE && !f.is_dir);
    let (version_ini, sentinel_peer) = match sentinel {
        Some(file) => fetch_version_file(job, &queue, file.size).await?,
        None => {
            return Err(TransferError::PeersFailed(
                "the file list has no version.ini; the peers' copies are incomplete".into(),
            ));
        }
    };
    tracker.chunk_done(version_ini.len() as u64);
    received[&sentinel_peer].fetch_add(version_ini.len() as u64, Ordering::Relaxed);
    emit_progress(job, &mut tracker, &received, 0);

    let peers_used = received
        .iter()
        .filter(|(_, bytes)| bytes.load(Ordering::Relaxed) > 0)
        .map(|(addr, _)| *addr)
        .collect();
    Ok((
        DownloadSummary {
            bytes: tracker.bytes_done(),
            elapsed: started.elapsed(),
            peers_used,
        },
        version_ini,
    ))
}

fn split_into_chunks(files: &[GameFileDescription], storage: &DownloadStorage) -> Result<Vec<Chunk>, TransferError> {
    let mut chunks = Vec::new();
    for file in files.iter().filter(|f| !f.is_dir && f.path != VERSION_FILE) {
        let handle = storage
            .file(&file.path)
            .ok_or_else(|| TransferError::Internal(format!("{} was not prepared", file.path)))?;
        let path: Arc<str> = file.path.as_str().into();
        let disk_path: Arc<Path> = storage.root().join(&file.path).into();
        let mut offset = 0;
        while offset < file.size {
            let len = CHUNK_SIZE.min(file.size - offset);
            chunks.push(Chunk {
                path: path.clone(),
                disk_path: disk_path.clone(),
                file: handle.clone(),
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

/// Fetches one chunk and writes it in place, in batches, off the async threads.
async fn fetch_chunk(
    client: &PeerClient,
    addr: SocketAddr,
    id: &str,
    chunk: &Chunk,
    received: &AtomicU64,
) -> Result<(), TransferError> {
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
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut position = chunk.offset;
    loop {
        let piece = tokio::time::timeout(STALL_TIMEOUT, reader.next_piece(WRITE_BATCH))
            .await
            .map_err(stalled)?
            .map_err(|err| TransferError::Peer(err.to_string()))?;
        let finished = piece.is_none();
        if let Some(piece) = &piece {
            received.fetch_add(piece.len() as u64, Ordering::Relaxed);
            batch.extend_from_slice(piece);
        }
        if batch.len() >= WRITE_BATCH || (finished && !batch.is_empty()) {
            let file = chunk.file.clone();
            let written = batch.len() as u64;
            batch = tokio::task::spawn_blocking(move || storage::write_at(&file, &batch, position).map(|()| batch))
                .await
                .map_err(|err| TransferError::Internal(format!("the write task failed: {err}")))?
                .map_err(|err| TransferError::local(&chunk.disk_path, err))?;
            batch.clear();
            position += written;
        }
        if finished {
            // Flush now, while other chunks still transfer, so the commit is not one long sync at the end
            // (measured: the final sync alone cost ~10% of a rate-capped download).
            let file = chunk.file.clone();
            return tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|err| TransferError::Internal(format!("the sync task failed: {err}")))?
                .map_err(|err| TransferError::local(&chunk.disk_path, err));
        }
    }
}

/// Fetches `version.ini` into memory from the first live peer that delivers it whole.
async fn fetch_version_file(
    job: &DownloadJob,
    queue: &WorkQueue,
    size: u64,
) -> Result<(Vec<u8>, SocketAddr), TransferError> {
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
            Ok(_) if bytes.len() as u64 == size => return Ok((bytes, addr)),
            Ok(_) => errors.push(format!("{addr} sent {} bytes, expected {size}", bytes.len())),
            Err(err) => errors.push(err.to_string()),
        }
    }
    Err(TransferError::PeersFailed(format!(
        "no peer delivered version.ini: {}",
        errors.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> GameFileDescription {
        GameFileDescription {
            path: path.into(),
            size,
            is_dir: false,
            hash: None,
        }
    }

    fn details(files: Vec<GameFileDescription>) -> GameDetails {
        GameDetails {
            id: "g".into(),
            version: "1".into(),
            files,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_majority_wins_and_dissenters_are_excluded() {
        let good = details(vec![file("a.zip", 100), file("version.ini", 1)]);
        let liar = details(vec![file("a.zip", 999), file("version.ini", 1)]);
        let requested = good.files.clone();
        let manifests = [(addr(1), &good), (addr(2), &liar), (addr(3), &good)];
        let plan = validate_majority("g", "1", &requested, &manifests).unwrap();
        assert_eq!(plan.peers, [addr(1), addr(3)]);
        assert_eq!(plan.excluded.len(), 1);
        assert_eq!(plan.excluded[0].0, addr(2));
        assert!(plan.excluded[0].1.contains("999 bytes"), "{}", plan.excluded[0].1);
    }

    #[test]
    fn no_majority_or_stale_list_is_a_clear_failure() {
        let one = details(vec![file("a.zip", 100)]);
        let two = details(vec![file("a.zip", 200)]);
        let err = validate_majority("g", "1", &one.files, &[(addr(1), &one), (addr(2), &two)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no size has a majority"), "{err}");

        let err = validate_majority("g", "1", &[file("a.zip", 5)], &[(addr(1), &one)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of date"), "{err}");

        let err = validate_majority("g", "1", &one.files, &[]).unwrap_err().to_string();
        assert!(err.contains("no peer"), "{err}");
    }
}
