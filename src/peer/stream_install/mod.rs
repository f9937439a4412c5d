//! Streamed install: the sender expands its archives and streams the files;
//! the receiver writes them straight into staging, checks each file's CRC32
//! and promotes to `local/`, never storing the archives. Only a sender's fault
//! (`TransferError::is_peer_fault`) moves on to the next sender; a local error
//! (a full disk) or any failure of the install transaction itself ends the
//! install at once, since another sender could not do better.

pub mod check;
pub mod provider;
pub mod receiver;
pub mod sink;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::receiver::StreamedInstallTransaction;
use self::wire::{StreamControl, StreamFrame};
use super::client::{ClientError, PeerClient, StreamInstallReader};
use super::download::TransferError;
use super::download::majority::{majority_file_list, validate_majority};
use super::{PeerEvent, ProgressThrottle, join_all};
use crate::install::{Completed, Failpoints, InstallError, Transaction};
use crate::proto::ErrorKind;

/// A sender that delivers no frame for this long is given up on.
const STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Frames buffered between the network and the writer thread.
const RECEIVE_QUEUE: usize = 8;
/// A busy sender is asked again this often, this many times, before the next peer is tried.
const BUSY_RETRY_DELAY: Duration = Duration::from_millis(250);
const BUSY_RETRIES: u32 = 8;

/// Everything a streamed install needs; it runs as one task owned by the actor.
pub struct StreamInstallJob {
    pub id: String,
    pub version: String,
    /// The peers announcing `version`; validated by majority before use.
    pub peers: Vec<SocketAddr>,
    pub game_dir: PathBuf,
    pub state_dir: PathBuf,
    pub client: PeerClient,
    pub cancel: CancellationToken,
    pub events: mpsc::Sender<PeerEvent>,
}

/// Preflight, then one attempt per validated peer (in address order) until one succeeds
/// or fails in a way no other peer could fix.
pub async fn stream_install_game(job: StreamInstallJob) -> Result<Completed, InstallError> {
    let peers = validated_peers(&job).await.map_err(InstallError::Transfer)?;
    let mut failures = Vec::new();
    for addr in peers {
        if job.cancel.is_cancelled() {
            return Err(InstallError::Cancelled);
        }
        match attempt(&job, addr).await {
            Ok(completed) => return Ok(completed),
            Err(InstallError::Transfer(err)) if err.is_peer_fault() => {
                let reason = err.to_string();
                tracing::warn!(game = job.id, %addr, "streamed install attempt failed: {reason}");
                let _ = job
                    .events
                    .send(PeerEvent::StreamInstallAttemptFailed {
                        id: job.id.clone(),
                        peer: addr,
                        reason: reason.clone(),
                    })
                    .await;
                failures.push(format!("{addr}: {reason}"));
            }
            Err(err) => return Err(err),
        }
    }
    Err(InstallError::Transfer(TransferError::PeersFailed(format!(
        "every peer failed ({})",
        failures.join("; ")
    ))))
}

/// Fresh file lists from the latest-version peers, then the same majority validation as downloads.
async fn validated_peers(job: &StreamInstallJob) -> Result<Vec<SocketAddr>, TransferError> {
    let requests = job.peers.iter().map(|addr| {
        let (client, id, addr) = (job.client.clone(), job.id.clone(), *addr);
        async move { (addr, client.get_game(addr, &id).await) }
    });
    let answers = join_all(requests).await;
    let manifests: Vec<_> = answers
        .iter()
        .filter_map(|(addr, result)| match result {
            Ok(details) if details.version == job.version => Some((*addr, details)),
            Ok(details) => {
                tracing::info!(game = job.id, %addr, "now has version {}, skipped", details.version);
                None
            }
            Err(err) => {
                tracing::warn!(game = job.id, %addr, "no file list: {err}");
                None
            }
        })
        .collect();
    let files = majority_file_list(&manifests);
    let plan = validate_majority(&job.id, &job.version, &files, &manifests)?;
    if !plan.excluded.is_empty() {
        let _ = job
            .events
            .send(PeerEvent::DownloadPeersExcluded {
                id: job.id.clone(),
                peers: plan.excluded.clone(),
            })
            .await;
    }
    Ok(plan.peers)
}

/// Asks `addr` to stream, waiting out a short `Busy` (a sender frees a cancelled stream's
/// guard a moment after the receiver gave up on it).
async fn open_stream(job: &StreamInstallJob, addr: SocketAddr) -> Result<StreamInstallReader, InstallError> {
    let mut tries = 0;
    loop {
        match job.client.open_stream_install(addr, &job.id, &job.version).await {
            Ok(reader) => return Ok(reader),
            Err(ClientError::Remote {
                kind: ErrorKind::Busy, ..
            }) if tries < BUSY_RETRIES && !job.cancel.is_cancelled() => {
                tries += 1;
                tokio::time::sleep(BUSY_RETRY_DELAY).await;
            }
            Err(err) => return Err(InstallError::Transfer(TransferError::Peer(err.to_string()))),
        }
    }
}

/// One sender: frames flow from the network task into the transaction on a blocking thread.
async fn attempt(job: &StreamInstallJob, addr: SocketAddr) -> Result<Completed, InstallError> {
    let reader = open_stream(job, addr).await?;
    let (frames_tx, mut frames_rx) = mpsc::channel(RECEIVE_QUEUE);
    let stop_network = job.cancel.child_token();
    let network = tokio::spawn(forward_from_network(reader, frames_tx, stop_network.clone()));

    let (game_dir, state_dir, id) = (job.game_dir.clone(), job.state_dir.clone(), job.id.clone());
    let (events, cancel, version) = (job.events.clone(), job.cancel.clone(), job.version.clone());
    let result = tokio::task::spawn_blocking(move || {
        let mut progress = ProgressThrottle::new(events, id.clone());
        let transaction = StreamedInstallTransaction {
            transaction: Transaction {
                game_dir: &game_dir,
                state_dir: &state_dir,
                id: &id,
                failpoints: Failpoints::default(),
            },
            version: &version,
        };
        let mut last = receiver::Received::default();
        let result = transaction.run(
            &mut frames_rx,
            &mut |received| {
                last = received;
                progress.report(received.files, received.bytes);
            },
            &|| cancel.is_cancelled(),
        );
        if result.is_ok() {
            progress.finish(last.files, last.bytes);
        }
        result
    })
    .await
    .unwrap_or_else(|err| Err(InstallError::Panicked(format!("the streamed install panicked: {err}"))));
    // Whatever happened, the sender must stop: it frees its transfer guard as soon as its write fails.
    stop_network.cancel();
    let _ = network.await;
    result
}

/// Reads frames from the sender until it finishes, fails, stalls, or we stop it.
async fn forward_from_network(
    mut reader: StreamInstallReader,
    frames: mpsc::Sender<StreamFrame>,
    stop: CancellationToken,
) {
    let addr = reader.addr();
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => break,
            frame = tokio::time::timeout(STALL_TIMEOUT, reader.next_frame()) => frame,
        };
        let failure = match frame {
            Ok(Ok(Some(frame))) => {
                if frames.send(frame).await.is_err() {
                    break;
                }
                continue;
            }
            Ok(Ok(None)) => return,
            Ok(Err(err)) => format!("the stream from {addr} broke: {err}"),
            Err(_) => format!("{addr} sent nothing for {STALL_TIMEOUT:?}"),
        };
        let _ = frames
            .send(StreamFrame::Control(StreamControl::Error { message: failure }))
            .await;
        break;
    }
    reader.cancel();
}
