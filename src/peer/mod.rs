//! The peer runtime. [`start_peer`] binds the QUIC endpoint, starts the
//! long-lived tasks (server component, mDNS discovery, ping service, library
//! loader) and one actor task that owns all peer state. Callers drive it with
//! [`PeerCommand`]s and observe it through [`PeerEvent`]s; nothing outside the
//! actor touches its state.

mod actor;
pub mod client;
pub mod db;
pub mod discovery;
pub mod download;
mod local;
pub mod monitor;
mod ping;
pub mod ratelimit;
pub mod server;
pub mod space;
pub mod stream_install;
pub mod swarm;
pub mod transport;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::install::unpack::{ArchiveUnpacker, Unpacker};
use crate::proto::GameFileDescription;

pub use db::PeerGameDB;
pub use download::DownloadSummary;
pub use download::progress::{DownloadProgress, PeerProgress};

/// One game being sent to one peer, and at what rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Upload {
    pub id: String,
    pub to: SocketAddr,
    pub bytes_per_second: f64,
}

/// What callers ask the runtime to do. Answers arrive as [`PeerEvent`]s.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum PeerCommand {
    /// Rescan the local library and emit a fresh [`PeerEvent::LibraryUpdated`].
    ListGames,
    /// Fetch the file list of the latest version of `id` from the peers that
    /// have it, for a new download; answered by [`PeerEvent::GotGameFiles`].
    GetGame { id: String },
    /// Like `GetGame` but for an update: always asks the peers, whatever is on disk.
    FetchLatestFromPeers { id: String },
    /// Download the latest version of `id` from every peer that has it, using
    /// the file list from [`PeerEvent::GotGameFiles`]. Answered by the
    /// `DownloadGameFiles*` events; refused while another operation runs on `id`, and when
    /// it cannot fit the game dir (with its install, under `auto_install`; see [`space`]).
    DownloadGameFiles {
        id: String,
        files: Vec<GameFileDescription>,
    },
    /// Cancel the running download, install or streamed install of `id`.
    CancelDownload { id: String },
    /// Stop the running download of `id`, keeping its verified blocks and resume journal:
    /// the next download of it fetches only what is missing. Answered by
    /// [`PeerEvent::DownloadGameFilesPaused`].
    PauseDownload { id: String },
    /// Unpack the downloaded archives of `id` into `local/` (an update when it is already installed).
    InstallGame { id: String },
    /// Install `id` without storing its archives: a peer with the latest version
    /// expands them and streams the files into staging. Answered by the
    /// `InstallGame*` events (and `StreamInstallAttemptFailed` per failed sender). Refused
    /// when the announced expanded size cannot fit the game dir (see [`space`]).
    StreamInstallGame { id: String },
    /// Remove the installed `local/` of `id`; the downloaded archives stay.
    UninstallGame { id: String },
    /// Delete the downloaded game root of `id`; refused while it is installed or busy.
    RemoveDownloadedGame { id: String },
    /// Hash the downloaded `id` and compare it with the peers that have the same version (or,
    /// when none answers, with the hashes recorded here); answered by `VerifyProgress` and
    /// `VerifyFinished` (or `VerifyFailed`). With `repair`, damaged blocks are then fetched
    /// from those peers by a download that keeps everything intact (the `DownloadGameFiles*`
    /// events follow).
    VerifyGame { id: String, repair: bool },
    /// Switch to another game dir (created if missing) and rescan it.
    SetGameDir { path: PathBuf },
    /// Answered by [`PeerEvent::PeerCount`].
    GetPeerCount,
    /// Stop the runtime, as its owner's shutdown does (downloads pause; its front ends see
    /// their events end). A front end attached to another process's runtime asks first.
    Shutdown,
}

/// Everything the runtime reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum PeerEvent {
    /// The merged local + remote library; sent after every change.
    LibraryUpdated(LibrarySnapshot),
    /// These local games changed on disk (appeared, vanished, new version, installed, ...).
    LocalLibraryChanged {
        ids: Vec<String>,
    },
    PeerJoined {
        addr: SocketAddr,
        peer_id: String,
        name: String,
    },
    PeerLeft {
        addr: SocketAddr,
        peer_id: String,
        name: String,
    },
    PeerCount(usize),
    /// The merged file list of the latest version of a game, and the peers that have it.
    GotGameFiles {
        id: String,
        version: String,
        files: Vec<GameFileDescription>,
        peers: Vec<SocketAddr>,
    },
    /// `GetGame` / `FetchLatestFromPeers` could not get a file list.
    GameFilesUnavailable {
        id: String,
        reason: String,
    },
    DownloadGameFilesBegin {
        id: String,
        version: String,
        total_bytes: u64,
        peers: Vec<SocketAddr>,
    },
    /// A few times a second while a download runs.
    DownloadProgress(DownloadProgress),
    /// The game is complete on disk, `version.ini` written last.
    DownloadGameFilesFinished {
        id: String,
        version: String,
        summary: DownloadSummary,
    },
    /// The download stopped; what it verified stays for the next download to resume.
    /// `reason` is for people.
    DownloadGameFilesFailed {
        id: String,
        reason: String,
    },
    /// The download was cancelled; its partial files are gone.
    DownloadGameFilesCancelled {
        id: String,
    },
    /// The download was paused (or stopped by a shutdown); what it verified stays for the
    /// next download to resume.
    DownloadGameFilesPaused {
        id: String,
    },
    /// One sender of a streamed install failed; the next validated peer is tried.
    StreamInstallAttemptFailed {
        id: String,
        peer: SocketAddr,
        reason: String,
    },
    /// Peers left out of a download because their file list disagrees with the majority.
    /// What this peer sent in the last couple of seconds, per game and peer; an empty list
    /// once it stopped sending.
    Uploads(Vec<Upload>),
    DownloadPeersExcluded {
        id: String,
        peers: Vec<(SocketAddr, String)>,
    },
    InstallGameBegin {
        id: String,
    },
    /// A few times a second while archives are unpacked (or a streamed install is written).
    InstallGameProgress {
        id: String,
        files: u64,
        bytes: u64,
    },
    /// `local/` holds the new install; `updated` when it replaced an older one.
    InstallGameFinished {
        id: String,
        updated: bool,
    },
    /// The install stopped; a previous `local/` is intact. `reason` is for people.
    InstallGameFailed {
        id: String,
        reason: String,
    },
    UninstallGameBegin {
        id: String,
    },
    UninstallGameFinished {
        id: String,
    },
    UninstallGameFailed {
        id: String,
        reason: String,
    },
    RemoveDownloadedGameBegin {
        id: String,
    },
    RemoveDownloadedGameFinished {
        id: String,
    },
    RemoveDownloadedGameFailed {
        id: String,
        reason: String,
    },
    /// What runs right now; the single source of truth for "is an operation active".
    ActiveOperations(Vec<ActiveOperation>),
    /// A command was not carried out (e.g. a second download of the same game).
    OperationRefused {
        id: String,
        reason: String,
    },
    /// Local games are being hashed (see `library`); each is shared once hashed. Sent when
    /// hashing starts and then at most 4 times a second while it runs, when it moved.
    HashingProgress(HashingProgress),
    /// Nothing is left to hash: `games` were hashed, `bytes` in all, in `elapsed`.
    HashingFinished {
        games: usize,
        bytes: u64,
        elapsed: Duration,
    },
    /// How far a verify has hashed the game.
    VerifyProgress {
        id: String,
        bytes: u64,
        total: u64,
    },
    /// What a verify found; a repair, when asked for and possible, starts right after.
    VerifyFinished(verify::VerifyReport),
    VerifyFailed {
        id: String,
        reason: String,
    },
    /// A part of the runtime failed; the runtime keeps going without it where it can.
    RuntimeFailed {
        component: String,
        error: String,
    },
}

impl PeerEvent {
    /// The game an event is about; `None` for events about the runtime or the library.
    pub fn game_id(&self) -> Option<&str> {
        use PeerEvent::*;
        match self {
            GotGameFiles { id, .. }
            | GameFilesUnavailable { id, .. }
            | DownloadGameFilesBegin { id, .. }
            | DownloadGameFilesFinished { id, .. }
            | DownloadGameFilesFailed { id, .. }
            | DownloadGameFilesCancelled { id }
            | DownloadGameFilesPaused { id }
            | StreamInstallAttemptFailed { id, .. }
            | DownloadPeersExcluded { id, .. }
            | InstallGameBegin { id }
            | InstallGameProgress { id, .. }
            | InstallGameFinished { id, .. }
            | InstallGameFailed { id, .. }
            | UninstallGameBegin { id }
            | UninstallGameFinished { id }
            | UninstallGameFailed { id, .. }
            | RemoveDownloadedGameBegin { id }
            | RemoveDownloadedGameFinished { id }
            | RemoveDownloadedGameFailed { id, .. }
            | OperationRefused { id, .. }
            | VerifyProgress { id, .. }
            | VerifyFailed { id, .. } => Some(id),
            DownloadProgress(progress) => Some(&progress.id),
            VerifyFinished(report) => Some(&report.id),
            LibraryUpdated(_)
            | LocalLibraryChanged { .. }
            | PeerJoined { .. }
            | PeerLeft { .. }
            | PeerCount(_)
            | Uploads(_)
            | ActiveOperations(_)
            | HashingProgress(_)
            | HashingFinished { .. }
            | RuntimeFailed { .. } => None,
        }
    }
}

/// How far the hashing of local games has got, over everything queued since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HashingProgress {
    /// The games waiting for their hashes, the one being hashed first: not shared yet.
    pub games: Vec<String>,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActiveOperation {
    pub id: String,
    pub kind: OperationKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OperationKind {
    Download,
    Install,
    StreamInstall,
    Uninstall,
    RemoveDownloaded,
    Verify,
}

impl OperationKind {
    /// Whether `PeerCommand::CancelDownload` can stop it.
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            OperationKind::Download | OperationKind::Install | OperationKind::StreamInstall | OperationKind::Verify
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            OperationKind::Download => "download",
            OperationKind::Install => "install",
            OperationKind::StreamInstall => "streamed install",
            OperationKind::Uninstall => "uninstall",
            OperationKind::RemoveDownloaded => "removal",
            OperationKind::Verify => "verify",
        }
    }
}

/// The library as the UI shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LibrarySnapshot {
    pub game_dir: PathBuf,
    /// Local and remote catalog games, sorted by name.
    pub games: Vec<LibraryEntry>,
    /// The peers that answer (or have only just stopped: see `unanswered_for`).
    pub peers: Vec<PeerSummary>,
    /// Peers listed although they do not answer: left ones, and configured ones never reached.
    pub absent_peers: Vec<AbsentPeer>,
    /// Folders in the game dir that are not catalog ids: never shared.
    pub uncatalogued: Vec<String>,
    /// Whether the local library has been scanned since start; until then every
    /// game looks not downloaded, which is unknown rather than absent.
    pub local_scanned: bool,
}

impl LibrarySnapshot {
    pub fn game(&self, id: &str) -> Option<&LibraryEntry> {
        self.games.iter().find(|game| game.id == id)
    }
}

impl LibraryEntry {
    /// The newest version here: downloaded, or installed (a streamed install has only the latter).
    pub fn local_newest(&self) -> Option<&str> {
        [self.local_version.as_deref(), self.installed_version.as_deref()]
            .into_iter()
            .flatten()
            .max_by(|a, b| crate::library::Version::new(*a).cmp(&crate::library::Version::new(*b)))
    }

    /// Whether `local/` holds the downloaded version (an install from before records
    /// existed is taken to be that version).
    pub fn installed_is_current(&self) -> bool {
        self.installed
            && match (&self.installed_version, &self.local_version) {
                (Some(installed), Some(downloaded)) => installed == downloaded,
                _ => true,
            }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LibraryEntry {
    pub id: String,
    pub name: String,
    /// The catalog's words about the game, when it has some.
    pub description: Option<String>,
    pub state: GameState,
    /// Version of the local download, if any.
    pub local_version: Option<String>,
    /// Newest version any peer announces.
    pub latest_version: Option<String>,
    pub installed: bool,
    /// The version `local/` holds, when its install recorded one.
    pub installed_version: Option<String>,
    /// Installed by a streamed install: there are no archives here to reinstall from.
    pub streamed: bool,
    /// Why the last install of the downloaded version failed (`GameState::InstallFailed`).
    pub install_failure: Option<String>,
    /// Bytes of the local download, or of the latest remote version.
    pub size: u64,
    /// What the newest version's archives expand to: our own reading when the local download
    /// is the newest, else what its peers announce (see [`PeerGameDB::latest_expanded_size`]);
    /// `None` when unknown (only older peers have it).
    pub expanded_size: Option<u64>,
    /// Which peer has which version.
    pub peers: Vec<PeerGameVersion>,
    /// What the peers that left (within [`db::LEFT_PEER_MEMORY`]) had: not sources, but the
    /// game stays visible, marked, until they are back or forgotten.
    pub left_peers: Vec<PeerGameVersion>,
    /// An unfinished download here that the next download resumes (see `download::journal`).
    pub partial: Option<download::journal::PartialDownload>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum GameState {
    /// Only other peers have it.
    #[default]
    RemoteOnly,
    /// Downloaded here (archives present), not installed.
    Downloaded,
    /// Downloaded here, but its last install failed or was interrupted; `local/` is as before it.
    InstallFailed,
    /// Installed here (and downloaded at the latest version, or nothing newer is around).
    Installed,
    /// Installed by a streamed install: `local/` only, no archives here.
    InstalledStreamed,
    /// Here, but a peer announces a newer version.
    UpdateAvailable,
}

impl GameState {
    pub fn label(self) -> &'static str {
        match self {
            GameState::RemoteOnly => "remote",
            GameState::Downloaded => "downloaded",
            GameState::InstallFailed => "install failed",
            GameState::Installed => "installed",
            GameState::InstalledStreamed => "installed, streamed: no archives",
            GameState::UpdateAvailable => "update available",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerGameVersion {
    pub addr: SocketAddr,
    pub peer_name: String,
    pub version: String,
    pub size: u64,
    /// What this peer says its archives expand to (`None` from older peers).
    pub expanded_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerSummary {
    pub addr: SocketAddr,
    pub peer_id: String,
    pub name: String,
    pub game_count: usize,
    pub latency: Duration,
    /// Whether this peer's game list has arrived yet.
    pub library_loaded: bool,
    /// How long since its last pong, once it missed a ping (it is pruned after `peer_timeout`).
    pub unanswered_for: Option<Duration>,
}

/// A peer that does not answer but is still listed, with why: one that left (its games
/// stay visible for a while), or a configured `--peer` that was never reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AbsentPeer {
    pub addr: SocketAddr,
    /// Its name, when it ever answered.
    pub name: Option<String>,
    /// A word or two for a column: "left", "no answer", "cannot connect".
    pub status: String,
    /// The whole reason, for people: "left: stopped answering pings", "no answer: ...".
    pub why: String,
    /// The games it had, when it left.
    pub game_count: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error("cannot read the address of the UDP socket: {0}")]
    ListenAddress(#[source] std::io::Error),
    #[error(transparent)]
    Locked(#[from] crate::install::LockError),
    #[error("cannot start mDNS discovery: {0} (use --no-mdns and --peer to connect without it)")]
    Discovery(#[from] mdns_sd::Error),
    #[error(transparent)]
    ControlSocket(#[from] crate::control::socket::SocketError),
    #[error("the peer runtime has stopped")]
    Stopped,
}

/// The caller's side of a running peer.
pub struct PeerRuntimeHandle {
    commands: mpsc::Sender<PeerCommand>,
    /// Events from the runtime; take it with [`PeerRuntimeHandle::take_events`] to consume elsewhere.
    events: Option<mpsc::Receiver<PeerEvent>>,
    local_addr: SocketAddr,
    peer_id: String,
    shutdown: CancellationToken,
    actor: tokio::task::JoinHandle<()>,
    /// Serves front ends on the control socket (`control::hub`).
    hub: tokio::task::JoinHandle<()>,
    upload_slots: Arc<server::UploadSlots>,
}

impl PeerRuntimeHandle {
    /// The address the QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Block answers this peer is sending to others now (the swarm).
    pub fn uploads_in_flight(&self) -> usize {
        self.upload_slots.streams()
    }

    /// The upload slots, to count [`Self::uploads_in_flight`] while the handle is borrowed.
    pub fn upload_slots(&self) -> Arc<server::UploadSlots> {
        self.upload_slots.clone()
    }

    /// A sender for commands that can be moved to another task.
    pub fn commands(&self) -> mpsc::Sender<PeerCommand> {
        self.commands.clone()
    }

    pub async fn send(&self, command: PeerCommand) -> Result<(), PeerError> {
        self.commands.send(command).await.map_err(|_| PeerError::Stopped)
    }

    /// The event receiver; `None` once taken.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<PeerEvent>> {
        self.events.take()
    }

    /// Receives the next event (while the receiver has not been taken).
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        self.events.as_mut()?.recv().await
    }

    /// Resolves once a [`PeerCommand::Shutdown`] asked the runtime to stop (the owner then
    /// calls [`Self::shutdown`], as for a signal).
    pub fn stop_requested(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let token = self.shutdown.clone();
        async move { token.cancelled().await }
    }

    /// Stops advertising, closes the endpoint, and waits for the actor to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(err) = self.actor.await {
            tracing::warn!("peer actor ended abnormally: {err}");
        }
        // Stopping the hub removes the control socket; attached front ends see it close.
        self.hub.abort();
        let _ = self.hub.await;
    }
}

/// Starts a peer that unpacks with the real archive formats. Must be called inside a tokio runtime.
pub fn start_peer(config: Config, catalog: Catalog) -> Result<PeerRuntimeHandle, PeerError> {
    start_peer_with(config, catalog, Arc::new(ArchiveUnpacker))
}

/// Starts a peer with an injected unpacker, so extraction stays behind one seam.
pub fn start_peer_with(
    config: Config,
    catalog: Catalog,
    unpacker: Arc<dyn Unpacker>,
) -> Result<PeerRuntimeHandle, PeerError> {
    actor::start(config, catalog, unpacker)
}

/// Sends install progress as events, at most a few times a second, from a blocking thread.
pub(crate) struct ProgressThrottle {
    events: mpsc::Sender<PeerEvent>,
    id: String,
    last: Option<Instant>,
}

impl ProgressThrottle {
    const INTERVAL: Duration = Duration::from_millis(250);

    pub(crate) fn new(events: mpsc::Sender<PeerEvent>, id: String) -> Self {
        ProgressThrottle { events, id, last: None }
    }

    pub(crate) fn report(&mut self, files: u64, bytes: u64) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Self::INTERVAL) {
            return;
        }
        self.last = Some(now);
        self.send(files, bytes);
    }

    /// The final figures, sent whatever the throttle says.
    pub(crate) fn finish(&mut self, files: u64, bytes: u64) {
        self.send(files, bytes);
    }

    fn send(&self, files: u64, bytes: u64) {
        // Advisory, like download progress: a full queue drops a sample.
        let _ = self.events.try_send(PeerEvent::InstallGameProgress {
            id: self.id.clone(),
            files,
            bytes,
        });
    }
}

/// Runs futures concurrently and returns their outputs in order.
pub(crate) async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = JoinSet::new();
    for (index, future) in futures.into_iter().enumerate() {
        set.spawn(async move { (index, future.await) });
    }
    let mut outputs = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(output) = joined {
            outputs.push(output);
        }
    }
    outputs.sort_by_key(|(index, _)| *index);
    outputs.into_iter().map(|(_, output)| output).collect()
}
