//! One request of a download, to one source: the blocks it picked of those offered
//! (`GetBlocks`, see `peer::swarm`). Every block is hashed off the async threads and
//! written only if it matches what the validated list says; once the request's data is
//! durable its blocks are journaled, so a crash never marks an unwritten block done.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::error::TransferError;
use super::expected::Expected;
use super::journal::{DoneBlock, Journal};
use super::queue::{Assignment, RequestId, SourceKind};
use super::storage;
use crate::content::ContentHash;
use crate::durable::sync_filesystem_of;
use crate::peer::client::{BlockOffer, ClientError, PeerClient};
use crate::peer::swarm::{BlockLayout, ServingDownload};
use crate::proto::ErrorKind;

/// A source that delivers nothing for this long is given up (it may be gone).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What every request of one download shares.
pub struct Fetcher {
    pub client: PeerClient,
    pub id: Arc<str>,
    pub list: ContentHash,
    pub layout: Arc<BlockLayout>,
    pub expected: Arc<Vec<Option<Expected>>>,
    /// Where each file of the list is on disk (payload files only).
    pub disk_paths: Arc<Vec<Option<Arc<Path>>>>,
    pub journal: Arc<Journal>,
    /// Each request's pick, as soon as its answer's header arrives.
    pub picks: mpsc::UnboundedSender<(RequestId, Vec<u32>)>,
    /// What this download serves others: each block once it is verified and written.
    pub serving: Arc<ServingDownload>,
}

impl Fetcher {
    /// Offers `addr` the assignment's blocks; fetches, checks and writes those it picks, and
    /// returns them verified, durable and journaled. Bytes count in `received` as they arrive.
    pub async fn fetch(
        &self,
        addr: SocketAddr,
        kind: SourceKind,
        assignment: &Assignment,
        received: &AtomicU64,
    ) -> Result<Vec<DoneBlock>, TransferError> {
        let request = assignment.request;
        let offer = BlockOffer {
            list: &self.list,
            offered: &assignment.offered,
            want: assignment.want,
        };
        let started = std::time::Instant::now();
        let opened = self.client.open_blocks(addr, &self.id, &offer, &self.layout);
        let (picked, mut reader) = within_stall(addr, opened)
            .await?
            .map_err(|err| source_error(err, kind))?;
        let answered = started.elapsed();
        // For the debug line below (the swarm harness reads it): which blocks, from whom.
        let picked_blocks = tracing::enabled!(tracing::Level::DEBUG).then(|| picked.clone());
        let _ = self.picks.send((request, picked.clone()));
        let mut done = Vec::with_capacity(picked.len());
        // The file being written, and one open file per file system written to (for the sync).
        let mut open: Option<(usize, Arc<File>)> = None;
        let mut file_systems: Vec<(u64, Arc<File>)> = Vec::new();
        let mut files_written = 0;
        let mut last_path: Option<Arc<Path>> = None;
        let mut batch = Vec::new();
        for block in picked {
            let at = self
                .layout
                .locate(block)
                .ok_or_else(|| TransferError::Internal(format!("block {block} is outside the list")))?;
            let (index, path) = (at.file.file, at.file.path.clone());
            let wanted = expected_file(&self.expected, index)?;
            let disk_path = self
                .disk_paths
                .get(index)
                .cloned()
                .flatten()
                .ok_or_else(|| TransferError::Internal(format!("{path} was not prepared")))?;
            let file = match &open {
                Some((open_index, file)) if *open_index == index => file.clone(),
                _ => {
                    // Open only while this request writes it (see `storage`).
                    let opening = disk_path.clone();
                    let (file, device) = blocking(
                        move || {
                            let file = storage::open_payload(&opening)?;
                            let device = file.metadata()?.dev();
                            Ok::<_, std::io::Error>((file, device))
                        },
                        "open",
                    )
                    .await?
                    .map_err(|err| TransferError::local(&disk_path, err))?;
                    let file = Arc::new(file);
                    files_written += 1;
                    if !file_systems.iter().any(|(known, _)| *known == device) {
                        file_systems.push((device, file.clone()));
                    }
                    file
                }
            };
            open = Some((index, file.clone()));
            batch.clear();
            while (batch.len() as u64) < at.len {
                let room = usize::try_from(at.len).unwrap_or(usize::MAX) - batch.len();
                let piece = within_stall(addr, reader.next_piece(room))
                    .await?
                    .map_err(peer_error)?
                    .ok_or_else(|| TransferError::Peer(format!("{addr} ended {path} short")))?;
                received.fetch_add(piece.len() as u64, Ordering::Relaxed);
                batch.extend_from_slice(&piece);
            }
            let (returned, hash) =
                verify_and_write(addr, file, &path, &disk_path, &wanted, at.block, batch, at.offset).await?;
            batch = returned;
            // Others may have it now: it is verified, and written where the server reads.
            // (Durable is for the journal: a crash must not mark an unwritten block done.)
            self.serving.add([block]);
            done.push(done_block(index, at.block, hash)?);
            last_path = Some(disk_path);
        }
        // The stream must end here: a peer sending more than it picked is caught by the reader.
        within_stall(addr, reader.next_piece(1)).await?.map_err(peer_error)?;
        let last_path = last_path.ok_or_else(|| TransferError::Internal("a pick of no blocks".into()))?;
        // One file: its own flush. More (small files): one sync per file system, as an
        // fdatasync per file costs a journal commit each, most of the time of small files.
        let single = (files_written == 1).then(|| open.map(|(_, file)| file)).flatten();
        let sync = move || match single {
            Some(file) => file.sync_data(),
            None => file_systems.iter().try_for_each(|(_, file)| sync_filesystem_of(file)),
        };
        let received_all = started.elapsed();
        let durable = make_durable_then_journal(sync, &self.journal, done, &last_path).await;
        tracing::debug!(
            %addr,
            offered = assignment.offered.len(),
            want = assignment.want,
            picked = ?picked_blocks.unwrap_or_default(),
            answer_ms = answered.as_millis() as u64,
            data_ms = received_all.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "blocks fetched"
        );
        durable
    }
}

/// A source's refusal to serve now is no fault of it: its upload slots are taken, or (a
/// partial source) it holds none of the offered blocks yet.
fn source_error(err: ClientError, kind: SourceKind) -> TransferError {
    match &err {
        ClientError::Remote {
            kind: ErrorKind::Busy, ..
        } => TransferError::Busy(err.to_string()),
        ClientError::Remote {
            kind: ErrorKind::NotFound | ErrorKind::UnknownGame,
            ..
        } if kind == SourceKind::Partial => TransferError::Busy(err.to_string()),
        _ => peer_error(err),
    }
}

/// Hashes `bytes` (block `block` of a file) on a blocking thread and writes them at
/// `position` only if they are what `wanted` says; returns the buffer for reuse, and the hash.
#[allow(clippy::too_many_arguments)]
async fn verify_and_write(
    addr: SocketAddr,
    file: Arc<File>,
    path: &str,
    disk_path: &Path,
    wanted: &Expected,
    block: u64,
    bytes: Vec<u8>,
    position: u64,
) -> Result<(Vec<u8>, ContentHash), TransferError> {
    let (wanted, corrupt) = (wanted.clone(), corrupt(addr, path));
    blocking(
        move || match checked(&bytes, &wanted, block, corrupt) {
            Ok(hash) => storage::write_at(&file, &bytes, position).map(|()| Ok((bytes, hash))),
            Err(corrupt) => Ok(Err(corrupt)),
        },
        "write",
    )
    .await?
    .map_err(|err| TransferError::local(disk_path, err))?
}

/// The hash of `bytes` if they are block `block` of what `wanted` describes; else `corrupt`.
fn checked(bytes: &[u8], wanted: &Expected, block: u64, corrupt: TransferError) -> Result<ContentHash, TransferError> {
    let hash = ContentHash::of(bytes);
    if wanted.matches(block, &hash) {
        Ok(hash)
    } else {
        Err(corrupt)
    }
}

fn corrupt(peer: SocketAddr, path: &str) -> TransferError {
    TransferError::Corrupt {
        peer,
        path: path.to_owned(),
    }
}

/// Runs `sync` (which makes the chunk's data durable), then journals its blocks: in this
/// order, so a crash never marks an unwritten block done.
async fn make_durable_then_journal(
    sync: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    journal: &Arc<Journal>,
    done: Vec<DoneBlock>,
    disk_path: &Path,
) -> Result<Vec<DoneBlock>, TransferError> {
    let journal = journal.clone();
    blocking(
        move || {
            sync()?;
            if let Err(err) = journal.record(&done) {
                tracing::warn!("cannot journal a finished chunk (a resume fetches it again): {err}");
            }
            Ok(done)
        },
        "sync",
    )
    .await?
    .map_err(|err| TransferError::local(disk_path, err))
}

fn expected_file(expected: &[Option<Expected>], file: usize) -> Result<Expected, TransferError> {
    match expected.get(file) {
        Some(Some(wanted)) => Ok(wanted.clone()),
        _ => Err(TransferError::Internal("a chunk of no file".into())),
    }
}

fn done_block(file: usize, block: u64, hash: ContentHash) -> Result<DoneBlock, TransferError> {
    let too_big = || TransferError::Internal("a file or block index over the journal's range".into());
    Ok(DoneBlock {
        file: u32::try_from(file).map_err(|_| too_big())?,
        block: u32::try_from(block).map_err(|_| too_big())?,
        hash,
    })
}

async fn within_stall<T>(addr: SocketAddr, work: impl Future<Output = T>) -> Result<T, TransferError> {
    tokio::time::timeout(STALL_TIMEOUT, work)
        .await
        .map_err(|_| TransferError::Stalled {
            peer: addr,
            waited: STALL_TIMEOUT,
        })
}

fn peer_error(err: crate::peer::client::ClientError) -> TransferError {
    TransferError::Peer(err.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    what: &str,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| TransferError::Internal(format!("the {what} task failed: {err}")))
}
