//! The download pipeline: majority validation of the peers' file lists, then
//! one task per download that learns what every block must hash to (see
//! `expected`), fetches blocks from every validated peer and every peer
//! downloading the same list at once (see `queue` for who is offered which
//! blocks, `availability` for who holds which, `fetch` for one request, and
//! `peer::swarm`), serves what it has verified meanwhile, checks each block as
//! it arrives and writes only verified ones positionally into pre-created files
//! (see `storage`), reports
//! `DownloadProgressTracker` samples of verified bytes, commits `version.ini`
//! last and records the block hashes it verified, so the finished game is
//! served without being read again. Failures are `TransferError`s (see
//! `error`): a peer's fault moves its work to the other peers, a local one
//! ends the download.

mod availability;
pub mod error;
pub mod expected;
mod fetch;
pub mod journal;
pub mod majority;
pub mod progress;
pub mod queue;
pub mod reuse;
pub mod storage;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::PeerEvent;
use super::client::PeerClient;
use crate::content::{ContentHash, FileHashes, root_of};
use crate::layout::VERSION_FILE;
use crate::peer::swarm::{BlockLayout, ServingDownload, SwarmDownloads, list_digest};
use crate::proto::GameFileDescription;
use availability::AvailabilityWatch;
pub use error::TransferError;
use expected::{Expected, expected_content};
use fetch::Fetcher;
use journal::{DoneBlock, Journal, JournalList};
use progress::{DownloadProgress, DownloadProgressTracker};
use queue::{RequestId, SourceKind, WorkQueue};
use reuse::ReusePlan;
use storage::DownloadStorage;

/// The most bytes one request brings (a source's pick), and the most requests one source
/// has in flight (each source's budget may hold it to fewer). Chosen, as chunk size and
/// depth before the swarm, with `examples/transfer_bench.rs` (1 GiB, medians of quiet
/// interleaved runs): 1 MiB chunks cost 40-60% more CPU per GB; depth 8 and 16 MiB chunks raise
/// peak memory (up to 536 MiB) and endgame duplicates and hurt the slow-peer case;
/// among 4/8 MiB x 2/4 the rates are within noise, and 8 MiB x 4 was best or tied at 2 GiB.
pub const CHUNK_SIZE: u64 = crate::proto::MAX_PICKED_BYTES;
pub const IN_FLIGHT_PER_PEER: usize = 4;
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// A download with nothing in flight for this long gives up instead of hanging (every
/// source busy or cooling all that time, or a scheduling bug).
const IDLE_LIMIT: Duration = Duration::from_secs(60);
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

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DownloadSummary {
    /// The payload's bytes, fetched or reused.
    pub bytes: u64,
    /// Of `bytes`, those found on disk (resumed, or unchanged by an update) rather than fetched.
    pub reused: u64,
    pub elapsed: Duration,
    /// Peers that delivered at least one block (or the sentinel).
    pub peers_used: Vec<SocketAddr>,
    /// Bytes received from full peers (duplicates included), and from partial ones.
    pub from_seeds: u64,
    pub from_partials: u64,
    /// Bytes spent learning which blocks the partial sources hold (estimated).
    pub availability_bytes: u64,
}

#[derive(Debug)]
pub enum DownloadOutcome {
    Finished(DownloadSummary),
    /// Never `TransferError::Cancelled`: that is `Cancelled` or `Paused`.
    Failed(TransferError),
    Cancelled,
    /// Stopped on request with its verified blocks and resume journal kept.
    Paused,
}

pub struct DownloadJob {
    pub plan: DownloadPlan,
    pub game_dir: PathBuf,
    /// Where the verified block hashes are recorded for the library.
    pub state_dir: PathBuf,
    pub client: PeerClient,
    pub cancel: CancellationToken,
    /// Set before `cancel` fires for a pause: the download keeps what it verified.
    pub pause: Arc<AtomicBool>,
    /// The file list of the version on disk now (empty if none): what the new one lacks goes.
    pub replaces: Vec<GameFileDescription>,
    /// What the payload on disk holds, when just hashed (a repair after `verify`); `None`
    /// takes it from the library's record and the resume journal (see `reuse`).
    pub on_disk: Option<BTreeMap<String, reuse::SourceFile>>,
    /// Begin and progress events go straight out; the outcome goes back to the actor.
    pub events: mpsc::Sender<PeerEvent>,
    /// Where this download serves its verified blocks to others.
    pub swarm: SwarmDownloads,
    /// The peers known now: those that are not seeds are asked whether they download the
    /// same list (and become sources if they do).
    pub peers: watch::Receiver<Vec<SocketAddr>>,
}

/// Runs a download to its end. A cancel discards the payload and the resume journal; a
/// pause, like any other failure, keeps every verified block and the journal, so the next
/// download of the game fetches only what is missing.
pub async fn download_game_files(job: DownloadJob) -> DownloadOutcome {
    let plan = &job.plan;
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
        () = job.cancel.cancelled() => return job.stopped(),
        listed = expected_content(&job.client, &plan.id, &plan.files, &plan.peers) => listed,
    };
    let (expected, liars) = match listed {
        Ok(listed) => listed,
        Err(err) => return DownloadOutcome::Failed(err),
    };
    report_dropped(&job, &liars).await;
    let expected = Arc::new(expected);
    let prepared = {
        let (state_dir, game_dir, plan) = (job.state_dir.clone(), job.game_dir.clone(), plan.clone());
        let (expected, replaces, on_disk) = (expected.clone(), job.replaces.clone(), job.on_disk.clone());
        tokio::task::spawn_blocking(move || prepare(&state_dir, &game_dir, &plan, &expected, &replaces, on_disk)).await
    };
    let prepared = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(err)) => return DownloadOutcome::Failed(err),
        Err(err) => {
            return DownloadOutcome::Failed(TransferError::Internal(format!(
                "preparing the game folder panicked: {err}"
            )));
        }
    };
    let Prepared {
        storage,
        journal,
        reuse,
    } = prepared;
    let liars: Vec<SocketAddr> = liars.iter().map(|(addr, _)| *addr).collect();
    let peers: Vec<SocketAddr> = plan
        .peers
        .iter()
        .copied()
        .filter(|addr| !liars.contains(addr))
        .collect();
    let storage = Arc::new(storage);
    let journal = Arc::new(journal);
    let result = download_impl(&job, &peers, &expected, reuse, &storage, &journal).await;
    // Every fetch task has ended, so this is the only reference left.
    let Some(storage) = Arc::into_inner(storage) else {
        return DownloadOutcome::Failed(TransferError::Internal("download storage still in use".to_owned()));
    };
    let (state_dir, id) = (job.state_dir.clone(), job.plan.id.clone());
    match result {
        Ok(fetched) => {
            let committed = tokio::task::spawn_blocking(move || {
                let root = storage.root().to_path_buf();
                storage.commit(&fetched.version_ini)?;
                journal::remove(&state_dir, &id);
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
        Err(TransferError::Cancelled) if job.pause.load(Ordering::SeqCst) => {
            let _ = tokio::task::spawn_blocking(move || storage.keep_partial()).await;
            DownloadOutcome::Paused
        }
        Err(TransferError::Cancelled) => {
            let _ = tokio::task::spawn_blocking(move || {
                storage.abort();
                journal::remove(&state_dir, &id);
            })
            .await;
            DownloadOutcome::Cancelled
        }
        Err(err) => {
            let _ = tokio::task::spawn_blocking(move || storage.keep_partial()).await;
            DownloadOutcome::Failed(err)
        }
    }
}

impl DownloadJob {
    /// How a download stopped on request before it touched the disk ended.
    fn stopped(&self) -> DownloadOutcome {
        if self.pause.load(Ordering::SeqCst) {
            DownloadOutcome::Paused
        } else {
            DownloadOutcome::Cancelled
        }
    }
}

/// What an unfinished download of `id` (its resume journal) can serve while no download
/// of it runs: the journaled blocks, which were verified and durable when recorded. `None`
/// without a readable journal. Blocks.
pub fn serving_partial(state_dir: &Path, game_dir: &Path, id: &str) -> Option<ServingDownload> {
    let recorded = journal::load(state_dir, id)?;
    let layout = Arc::new(BlockLayout::new(&recorded.list.files).ok()?);
    let serving = ServingDownload::new(
        id,
        list_digest(&recorded.list.files),
        layout.clone(),
        game_dir.to_path_buf(),
    );
    serving.add(
        recorded
            .blocks
            .iter()
            .filter_map(|done| layout.global(done.file as usize, u64::from(done.block))),
    );
    Some(serving)
}

/// The disk side of a download, ready to fetch into.
struct Prepared {
    storage: DownloadStorage,
    journal: Journal,
    reuse: ReusePlan,
}

/// Finds what is already on disk (the version being replaced, an unfinished download's
/// journal), starts the new journal with the blocks that stay in place, then prepares the
/// payload files. The journal comes first: if preparing fails half-way, it still describes
/// only blocks that are in place. Blocks.
fn prepare(
    state_dir: &Path,
    game_dir: &Path,
    plan: &DownloadPlan,
    expected: &[Option<Expected>],
    replaces: &[GameFileDescription],
    on_disk: Option<BTreeMap<String, reuse::SourceFile>>,
) -> Result<Prepared, TransferError> {
    let earlier = journal::load(state_dir, &plan.id);
    let sources = match on_disk {
        Some(hashed) => hashed,
        None => reuse::gather_sources(state_dir, game_dir, &plan.id, replaces, earlier.as_ref()),
    };
    let reuse = reuse::plan_reuse(&plan.files, expected, &sources);
    // What the commit removes: the replaced version's payload, and an abandoned partial
    // download's, that the new list does not have.
    let wanted: BTreeSet<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    let mut stale: BTreeMap<String, GameFileDescription> = BTreeMap::new();
    let earlier_files = earlier
        .iter()
        .flat_map(|earlier| earlier.list.stale.iter().chain(&earlier.list.files));
    for file in replaces.iter().chain(earlier_files) {
        if !wanted.contains(file.path.as_str()) && file.path != VERSION_FILE {
            stale.entry(file.path.clone()).or_insert_with(|| file.clone());
        }
    }
    let stale: Vec<GameFileDescription> = stale.into_values().collect();
    let list = JournalList {
        version: plan.version.clone(),
        files: plan.files.clone(),
        stale: stale.clone(),
    };
    let journal = Journal::start(state_dir, &plan.id, &list, &reuse.kept_records())
        .map_err(|err| TransferError::local(&state_dir.join("downloads"), err))?;
    let storage = DownloadStorage::begin(game_dir, &plan.id, &plan.files, &stale)?;
    Ok(Prepared {
        storage,
        journal,
        reuse,
    })
}

/// What a download fetched, ready to commit.
struct Fetched {
    summary: DownloadSummary,
    version_ini: Vec<u8>,
    /// Every payload file's path, length and verified block hashes, for the library.
    verified: Vec<(String, u64, FileHashes)>,
}

async fn download_impl(
    job: &DownloadJob,
    seeds: &[SocketAddr],
    expected: &Arc<Vec<Option<Expected>>>,
    reuse: ReusePlan,
    storage: &Arc<DownloadStorage>,
    journal: &Arc<Journal>,
) -> Result<Fetched, TransferError> {
    let plan = &job.plan;
    let started = Instant::now();
    let total: u64 = plan.files.iter().filter(|f| !f.is_dir).map(|f| f.size).sum();
    let mut tracker = DownloadProgressTracker::new(&plan.id, total, seeds, started);
    // Per file, per block: its verified hash once it is in place.
    let mut have: Vec<Vec<Option<ContentHash>>> = reuse.keep.clone();
    let mut reused = reuse.kept_bytes(expected);
    tracker.reused(reused, Instant::now());
    let mut received: BTreeMap<SocketAddr, (SourceKind, Arc<AtomicU64>)> = seeds
        .iter()
        .map(|addr| (*addr, (SourceKind::Seed, Arc::default())))
        .collect();
    if !reuse.copies.is_empty() {
        let copied = copy_reusable(job, expected, reuse.copies, storage, journal, &mut tracker, reused).await?;
        for (file, block, hash) in copied {
            reused += expected[file].as_ref().map_or(0, |wanted| wanted.block_len(block));
            have[file][block as usize] = Some(hash);
        }
        tracker.reused(reused, Instant::now());
    }
    emit_progress(job, &mut tracker, &received, 0);

    let layout = Arc::new(BlockLayout::new(&plan.files).map_err(|err| TransferError::PeersFailed(err.to_string()))?);
    let list = list_digest(&plan.files);
    let held: Vec<u32> = have
        .iter()
        .enumerate()
        .flat_map(|(file, blocks)| {
            let layout = &layout;
            blocks
                .iter()
                .enumerate()
                .filter(|(_, hash)| hash.is_some())
                .filter_map(move |(block, _)| layout.global(file, block as u64))
        })
        .collect();
    let mut held_map = vec![false; layout.total() as usize];
    for block in &held {
        held_map[*block as usize] = true;
    }
    // Serve what is verified to the peers downloading the same list, while this runs.
    let serving = Arc::new(ServingDownload::new(
        &plan.id,
        list,
        layout.clone(),
        job.game_dir.clone(),
    ));
    serving.add(held.iter().copied());
    // From here the verified set is the progress counter (the same bytes as `reused`).
    tracker.reused(serving.verified_bytes(), Instant::now());
    let _registration = job.swarm.register(serving.clone());

    let disk_paths: Vec<Option<Arc<Path>>> = plan
        .files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            (layout.global(index, 0).is_some())
                .then(|| storage.payload_path(&file.path).map(Arc::from))
                .flatten()
        })
        .collect();
    let (picks_tx, mut picks) = mpsc::unbounded_channel();
    let fetcher = Arc::new(Fetcher {
        client: job.client.clone(),
        id: plan.id.as_str().into(),
        list,
        layout: layout.clone(),
        expected: expected.clone(),
        disk_paths: Arc::new(disk_paths),
        journal: journal.clone(),
        picks: picks_tx,
        serving: serving.clone(),
    });
    let rotation = rand_rotation(layout.total());
    let mut queue = WorkQueue::new(layout.clone(), &held_map, seeds, IN_FLIGHT_PER_PEER, rotation);
    let mut availability = AvailabilityWatch::new(rotation);
    let mut fetches: JoinSet<(SocketAddr, RequestId, Result<Vec<DoneBlock>, TransferError>)> = JoinSet::new();
    let mut aborts: HashMap<RequestId, tokio::task::AbortHandle> = HashMap::new();
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    let mut last_busy = Instant::now();

    while !queue.is_complete() {
        if queue.active_sources() > 0 {
            last_busy = Instant::now();
        } else if last_busy.elapsed() > IDLE_LIMIT {
            fetches.shutdown().await;
            return Err(TransferError::PeersFailed(format!(
                "no peer could be asked for the missing blocks for {IDLE_LIMIT:?}"
            )));
        }
        for assignment in queue.assign(Instant::now()) {
            let (source, request) = (assignment.source, assignment.request);
            let kind = received.get(&source).map_or(SourceKind::Partial, |(kind, _)| *kind);
            let counter = received
                .entry(source)
                .or_insert_with(|| (kind, Arc::default()))
                .1
                .clone();
            let fetcher = fetcher.clone();
            let handle = fetches.spawn(async move {
                let result = fetcher.fetch(source, kind, &assignment, &counter).await;
                (source, request, result)
            });
            aborts.insert(request, handle);
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
                let partial = queue.partial_sources();
                tracker.set_sources(queue.live_sources().count() - partial, partial);
                tracker.set_done(serving.verified_bytes());
                let sample = emit_progress(job, &mut tracker, &received, queue.active_sources());
                for peer in &sample.peers {
                    queue.source_rate(peer.addr, peer.bytes_per_second);
                }
                let known = job.peers.borrow().clone();
                abort_requests(&mut aborts, AvailabilityWatch::drop_departed(&known, &mut queue));
                availability.poll(&known, &fetcher, &queue);
            }
            Some((request, picked)) = picks.recv() => queue.picked(request, &picked),
            Some(answer) = availability.next_answer() => {
                abort_requests(&mut aborts, availability.apply(answer, &mut queue, &mut received));
            }
            Some(joined) = fetches.join_next() => {
                // Aborted duplicates end with a JoinError: nothing to record.
                let Ok((addr, request, result)) = joined else { continue };
                aborts.remove(&request);
                match result {
                    Ok(blocks) => {
                        let globals: Vec<u32> = blocks
                            .iter()
                            .filter_map(|done| layout.global(done.file as usize, u64::from(done.block)))
                            .collect();
                        let completion = queue.complete(request, &globals);
                        for done in &blocks {
                            let Some(global) = layout.global(done.file as usize, u64::from(done.block)) else { continue };
                            if completion.first.contains(&global) {
                                have[done.file as usize][done.block as usize] = Some(done.hash);
                            }
                        }
                        serving.add(completion.first.iter().copied());
                        abort_requests(&mut aborts, completion.redundant.into_iter().map(|(_, other)| other));
                    }
                    Err(TransferError::Busy(reason)) => {
                        tracing::debug!(%addr, "source busy: {reason}");
                        queue.busy(request, Instant::now(), &reason);
                    }
                    Err(error) => {
                        tracing::debug!(%addr, request, "request failed: {error}");
                        let reason = error.to_string();
                        let corrupt = error.drops_peer_at_once();
                        if queue.fail(request, error) {
                            tracing::warn!(%addr, game = %plan.id, "dropping peer from this download: {reason}");
                            abort_requests(&mut aborts, queue.take_requests(addr));
                            if corrupt {
                                // Not `try_send` like progress: the user must hear of it.
                                let excluded = PeerEvent::DownloadPeersExcluded {
                                    id: plan.id.clone(),
                                    peers: vec![(addr, reason)],
                                };
                                let _ = job.events.send(excluded).await;
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
    tracker.set_done(serving.verified_bytes() + version_ini.len() as u64);
    if let Some((_, counter)) = received.get(&sentinel_peer) {
        counter.fetch_add(version_ini.len() as u64, Ordering::Relaxed);
    }
    emit_progress(job, &mut tracker, &received, 0);

    let mut verified = Vec::new();
    for (index, file) in plan.files.iter().enumerate() {
        if file.is_dir {
            continue;
        }
        let blocks: Option<Vec<ContentHash>> = if index == sentinel {
            Some(vec![ContentHash::of(&version_ini)])
        } else {
            have[index].iter().copied().collect()
        };
        let blocks =
            blocks.ok_or_else(|| TransferError::Internal(format!("{} finished with a block missing", file.path)))?;
        verified.push((file.path.clone(), file.size, FileHashes { blocks }));
    }
    let sent_by = |wanted: SourceKind| -> u64 {
        received
            .values()
            .filter(|(kind, _)| *kind == wanted)
            .map(|(_, bytes)| bytes.load(Ordering::Relaxed))
            .sum()
    };
    let peers_used = received
        .iter()
        .filter(|(_, (_, bytes))| bytes.load(Ordering::Relaxed) > 0)
        .map(|(addr, _)| *addr)
        .collect();
    Ok(Fetched {
        summary: DownloadSummary {
            bytes: tracker.bytes_done(),
            reused,
            elapsed: started.elapsed(),
            peers_used,
            from_seeds: sent_by(SourceKind::Seed),
            from_partials: sent_by(SourceKind::Partial),
            availability_bytes: availability.traffic,
        },
        version_ini,
        verified,
    })
}

/// Aborts the fetches of `requests` (their blocks went back to the queue).
fn abort_requests(
    aborts: &mut HashMap<RequestId, tokio::task::AbortHandle>,
    requests: impl IntoIterator<Item = RequestId>,
) {
    for request in requests {
        if let Some(handle) = aborts.remove(&request) {
            handle.abort();
        }
    }
}

/// Where the tie-break order of a download's blocks starts: downloaders that start at once
/// begin in different places, so the seed's first blocks differ and they can swap them.
fn rand_rotation(total: u32) -> u32 {
    if total == 0 {
        return 0;
    }
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % total
}

/// Copies the blocks found elsewhere on disk (see `reuse`) into place, journals them, and
/// returns those that held what they should; progress goes out meanwhile.
async fn copy_reusable(
    job: &DownloadJob,
    expected: &Arc<Vec<Option<Expected>>>,
    copies: Vec<reuse::BlockCopy>,
    storage: &DownloadStorage,
    journal: &Arc<Journal>,
    tracker: &mut DownloadProgressTracker,
    kept: u64,
) -> Result<Vec<(usize, u64, ContentHash)>, TransferError> {
    let copied_bytes = Arc::new(AtomicU64::new(0));
    let root = storage.root().to_path_buf();
    let (files, expected, journal) = (job.plan.files.clone(), expected.clone(), journal.clone());
    let (counter, cancel) = (copied_bytes.clone(), job.cancel.clone());
    let mut task = tokio::task::spawn_blocking(move || {
        let done = reuse::copy_blocks(
            &root,
            &files,
            &expected,
            &copies,
            &mut |bytes| counter.store(bytes, Ordering::Relaxed),
            &|| cancel.is_cancelled(),
        )?;
        let records: Vec<DoneBlock> = done
            .iter()
            .filter_map(|(file, block, hash)| {
                Some(DoneBlock {
                    file: u32::try_from(*file).ok()?,
                    block: u32::try_from(*block).ok()?,
                    hash: *hash,
                })
            })
            .collect();
        if let Err(err) = journal.record(&records) {
            tracing::warn!("cannot journal the reused blocks: {err}");
        }
        Ok(done)
    });
    let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            joined = &mut task => {
                return joined.map_err(|err| TransferError::Internal(format!("the copy task failed: {err}")))?;
            }
            _ = ticker.tick() => {
                tracker.reused(kept + copied_bytes.load(Ordering::Relaxed), Instant::now());
                let sample = tracker.sample(Instant::now(), 0);
                let _ = job.events.try_send(PeerEvent::DownloadProgress(sample));
            }
        }
    }
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

fn emit_progress(
    job: &DownloadJob,
    tracker: &mut DownloadProgressTracker,
    received: &BTreeMap<SocketAddr, (SourceKind, Arc<AtomicU64>)>,
    active_peers: usize,
) -> DownloadProgress {
    for (addr, (kind, bytes)) in received {
        tracker.set_peer_bytes(*addr, bytes.load(Ordering::Relaxed), *kind == SourceKind::Partial);
    }
    let sample: DownloadProgress = tracker.sample(Instant::now(), active_peers);
    // Progress is advisory: a slow consumer misses samples rather than slowing the download.
    let _ = job.events.try_send(PeerEvent::DownloadProgress(sample.clone()));
    sample
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
    let seeds = queue
        .live_sources()
        .filter(|(_, kind)| *kind == SourceKind::Seed)
        .map(|(addr, _)| addr);
    for addr in seeds.chain(job.plan.peers.iter().copied()) {
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
