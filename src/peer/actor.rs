//! The actor: one task that owns `PeerGameDB`, the local library and the
//! candidate peer list. Network and disk work runs in tasks it owns (a
//! `JoinSet`), which report back through the internal channel; the actor
//! itself never awaits the network or the disk, except to hand out events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::{ClientError, PeerClient};
use super::db::PeerGameDB;
use super::discovery::{DiscoveredPeer, Discovery};
use super::download;
use super::download::journal::{self, PartialDownload};
use super::download::majority::validate_majority;
use super::download::reuse::SourceFile;
use super::download::{DownloadJob, DownloadOutcome, DownloadPlan, TransferError, download_game_files};
use super::local::{HashEnd, HashOutcome, LocalLibrary, ScanResult, ScanScope};
use super::monitor::{LocalGameMonitor, MonitorControl, run_local_game_monitor};
use super::ping::{self, PingResult, PongOutcome, classify_pong};
use super::ratelimit::RateLimiter;
use super::server::{
    LayoutCache, RecordedHashes, SentCounts, ServedLibrary, ServerContext, UploadLog, UploadSlots, run_server_component,
};
use super::space::{self, GameSizes, SpaceOperation, SpaceVerdict};
use super::stream_install::provider::OutboundTransfers;
use super::stream_install::{StreamInstallJob, stream_install_game};
use super::swarm::{Registration, SwarmDownloads};
use super::transport::make_endpoint;
use super::verify::{self, LocalGame, Verified};
use super::{
    AbsentPeer, ActiveOperation, OperationKind, PeerCommand, PeerError, PeerEvent, PeerRuntimeHandle, ProgressThrottle,
    join_all,
};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::control;
use crate::install;
use crate::install::unpack::Unpacker;
use crate::proto::{GameDetails, GameFileDescription, GameSummary, Hello, PROTOCOL_VERSION};

const COMMAND_QUEUE: usize = 64;
const EVENT_QUEUE: usize = 1024;
const INTERNAL_QUEUE: usize = 256;
/// How often hashing progress may go out (see [`PeerEvent::HashingProgress`]).
const HASH_PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// How long shutdown waits for cancelled operations to clean up. With the endpoint's
/// close (at most 500 ms) a shutdown ends within 2 s whatever runs.
const SHUTDOWN_SETTLE: Duration = Duration::from_millis(1200);

/// Results of the actor's own tasks.
enum Internal {
    Ping(PingResult),
    RemoteGames {
        addr: SocketAddr,
        peer_id: String,
        revision: u64,
        result: Result<Vec<GameSummary>, ClientError>,
    },
    GameDetails {
        id: String,
        results: Vec<(SocketAddr, Result<GameDetails, ClientError>)>,
    },
    LocalScanned(ScanResult),
    PartialRemoved {
        id: String,
        result: Result<usize, String>,
    },
    VerifyEnded {
        id: String,
        repair: bool,
        result: Result<Verified, TransferError>,
    },
    Hashed(HashOutcome),
    DownloadEnded {
        id: String,
        version: String,
        outcome: DownloadOutcome,
        /// What a failed download left for a resume.
        partial: Option<PartialDownload>,
    },
    InstallSideEnded {
        id: String,
        kind: OperationKind,
        result: Result<install::Completed, install::InstallError>,
    },
}

/// An operation running on one game; at most one per game.
struct RunningOperation {
    kind: OperationKind,
    cancel: CancellationToken,
    /// Set before `cancel` to pause a download instead: it keeps what it verified.
    pause: Arc<AtomicBool>,
}

impl RunningOperation {
    /// Stops a download keeping its verified blocks for a resume; `false` for other kinds.
    fn pause(&self) -> bool {
        if self.kind != OperationKind::Download {
            return false;
        }
        self.pause.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancel.cancel();
        true
    }
}

struct Candidate {
    is_static: bool,
    added: Instant,
    /// Why the last ping of a configured peer failed (in short, and whole): it is listed
    /// as unreachable.
    unreachable: Option<(&'static str, String)>,
}

struct PeerActor {
    config: Config,
    catalog: Arc<Catalog>,
    peer_id: String,
    client: PeerClient,
    events: mpsc::Sender<PeerEvent>,
    internal: mpsc::Sender<Internal>,
    db: PeerGameDB,
    library: LocalLibrary,
    /// Moves the file watches when the game dir changes; `None` without a watcher.
    monitor_control: Option<mpsc::Sender<MonitorControl>>,
    served: watch::Sender<Arc<ServedLibrary>>,
    /// Downloads running here, whose verified blocks the server serves.
    swarm: SwarmDownloads,
    /// Unfinished downloads that are not running, served from their journals meanwhile.
    serving_partials: BTreeMap<String, Registration>,
    /// The peers known now, for downloads looking for partial sources.
    known_peers: watch::Sender<Vec<SocketAddr>>,
    candidates: HashMap<SocketAddr, Candidate>,
    pings_in_flight: HashSet<SocketAddr>,
    fetches_in_flight: HashSet<SocketAddr>,
    operations: BTreeMap<String, RunningOperation>,
    /// Unfinished downloads that the next download of the game resumes (shown, never announced).
    partials: BTreeMap<String, PartialDownload>,
    /// The server component, until the first library scan has been applied.
    pending_server: Option<(quinn::Endpoint, Arc<ServerContext>)>,
    /// Games this peer is streaming out (the server holds their guards).
    outbound: OutboundTransfers,
    unpacker: Arc<dyn Unpacker>,
    tasks: JoinSet<()>,
    /// Held for the actor's lifetime (the game-dir lock moves with `SetGameDir`):
    /// no other lanspread changes these games meanwhile.
    locks: install::OwnerLocks,
    /// Set once shutdown begins: no new operation starts (not even an auto-install).
    shutting_down: bool,
}

pub(super) fn start(
    config: Config,
    catalog: Catalog,
    unpacker: Arc<dyn Unpacker>,
) -> Result<PeerRuntimeHandle, PeerError> {
    // Creates the state and game dirs when missing.
    let locks = install::OwnerLocks::acquire(&config.state_dir, &config.game_dir)?;
    // Bound holding the state dir's lock: only its owner replaces a stale socket. A state
    // dir too long for a socket path runs without one, as before there were front ends.
    let control_socket = match control::socket::bind(&config.state_dir) {
        Ok(socket) => Some(socket),
        Err(err @ control::socket::SocketError::PathTooLong { .. }) => {
            tracing::warn!("{err}");
            None
        }
        Err(err) => return Err(err.into()),
    };
    let endpoint = make_endpoint(config.listen, &config.limits)?;
    let local_addr = endpoint.local_addr().map_err(PeerError::ListenAddress)?;
    let peer_id = uuid::Uuid::new_v4().simple().to_string();
    let catalog = Arc::new(catalog);
    let (served, served_rx) = watch::channel(Arc::new(ServedLibrary {
        game_dir: config.game_dir.clone(),
        ..ServedLibrary::default()
    }));

    let (discovered_tx, discovered_rx) = mpsc::channel(INTERNAL_QUEUE);
    let mut tasks = JoinSet::new();
    let discovery = if config.mdns {
        let (discovery, browse) = Discovery::start(&peer_id, local_addr, config.advertise, discovered_tx.clone())?;
        tasks.spawn(async move {
            let _ = browse.await;
        });
        Some(discovery)
    } else {
        None
    };

    let outbound = OutboundTransfers::default();
    let swarm = SwarmDownloads::default();
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let upload_slots = Arc::new(UploadSlots::new(config.upload_slots as usize));
    let server_context = Arc::new(ServerContext {
        catalog: catalog.clone(),
        library: served_rx,
        peer_id: peer_id.clone(),
        name: config.peer_name.clone(),
        inbound_peers: discovered_tx,
        upload_limit: config.upload_limit.map(RateLimiter::new),
        outbound: outbound.clone(),
        file_reads: ServerContext::file_reads(&config.limits),
        recorded: RecordedHashes::new(&config.state_dir),
        swarm: swarm.clone(),
        slots: upload_slots.clone(),
        sent: SentCounts::default(),
        layouts: LayoutCache::default(),
        uploads: UploadLog::default(),
        events: events_tx.clone(),
    });

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (front_tx, front_rx) = mpsc::channel(EVENT_QUEUE);
    let identity = control::hub::Identity {
        pid: std::process::id(),
        runtime: config.runtime_name.to_owned(),
        listen: local_addr,
    };
    let hub = tokio::spawn(control::hub::run(
        control_socket,
        identity,
        events_rx,
        front_tx,
        commands_tx.clone(),
    ));
    let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_QUEUE);
    let candidates = config
        .static_peers
        .iter()
        .map(|addr| {
            (
                *addr,
                Candidate {
                    is_static: true,
                    added: Instant::now(),
                    unreachable: None,
                },
            )
        })
        .collect();
    let db = PeerGameDB::new(config.ping_interval);
    let game_dir = config.game_dir.clone();
    let library = LocalLibrary::new(&game_dir);
    let library = if config.hash_library {
        library
    } else {
        library.without_hashing()
    };
    let actor = PeerActor {
        client: PeerClient::new(endpoint.clone()),
        config,
        catalog,
        peer_id: peer_id.clone(),
        events: events_tx,
        internal: internal_tx,
        db,
        library,
        monitor_control: None,
        served,
        swarm,
        serving_partials: BTreeMap::new(),
        known_peers: watch::channel(Vec::new()).0,
        candidates,
        pings_in_flight: HashSet::new(),
        fetches_in_flight: HashSet::new(),
        operations: BTreeMap::new(),
        partials: BTreeMap::new(),
        pending_server: None,
        outbound,
        unpacker,
        tasks,
        locks,
        shutting_down: false,
    };
    let shutdown = CancellationToken::new();
    let actor_task = tokio::spawn(actor.run(Channels {
        commands: commands_rx,
        internal: internal_rx,
        discovered: discovered_rx,
        shutdown: shutdown.clone(),
        endpoint,
        discovery,
        server_context,
    }));
    tracing::info!(%local_addr, peer_id, "peer runtime started");
    Ok(PeerRuntimeHandle {
        commands: commands_tx,
        events: Some(front_rx),
        local_addr,
        peer_id,
        shutdown,
        actor: actor_task,
        hub,
        upload_slots,
    })
}

/// What the actor's loop listens on, and what it starts and stops.
struct Channels {
    commands: mpsc::Receiver<PeerCommand>,
    internal: mpsc::Receiver<Internal>,
    discovered: mpsc::Receiver<DiscoveredPeer>,
    shutdown: CancellationToken,
    endpoint: quinn::Endpoint,
    discovery: Option<Discovery>,
    server_context: Arc<ServerContext>,
}

impl PeerActor {
    async fn run(mut self, channels: Channels) {
        let Channels {
            mut commands,
            mut internal,
            mut discovered,
            shutdown,
            endpoint,
            discovery,
            server_context,
        } = channels;
        // Recovery first: nothing is served or scanned while a game may be half-installed.
        let (game_dir, state_dir) = (self.config.game_dir.clone(), self.config.state_dir.clone());
        match tokio::task::spawn_blocking(move || install::recover(&game_dir, &state_dir)).await {
            Ok(report) => {
                for problem in report.left_alone {
                    self.emit(PeerEvent::RuntimeFailed {
                        component: "recovery".into(),
                        error: problem,
                    })
                    .await;
                }
            }
            Err(err) => {
                let error = format!("startup recovery panicked: {err}");
                self.emit(PeerEvent::RuntimeFailed {
                    component: "recovery".into(),
                    error,
                })
                .await;
            }
        }
        let state_dir = self.config.state_dir.clone();
        match tokio::task::spawn_blocking(move || journal::all_partial(&state_dir)).await {
            Ok(partials) => self.partials = partials,
            Err(err) => tracing::warn!("reading the resume journals panicked: {err}"),
        }
        let ids: Vec<String> = self.partials.keys().cloned().collect();
        for id in ids {
            self.serve_partial(id).await;
        }
        self.pending_server = Some((endpoint.clone(), server_context));
        let (monitor_tx, mut monitor_changes) = mpsc::channel(INTERNAL_QUEUE);
        self.start_monitor(monitor_tx);
        self.run_next_scan();
        let mut fallback_scan = tokio::time::interval(self.config.fallback_scan_interval);
        fallback_scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        fallback_scan.reset();
        let mut ping_tick = tokio::time::interval(self.config.ping_interval);
        ping_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hash_tick = tokio::time::interval(HASH_PROGRESS_INTERVAL);
        hash_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    Some(PeerCommand::Shutdown) => {
                        tracing::info!("a front end asked this runtime to stop");
                        shutdown.cancel();
                        break;
                    }
                    Some(command) => self.handle_command(command).await,
                    None => break,
                },
                Some(message) = internal.recv() => self.handle_internal(message).await,
                Some(found) = discovered.recv() => self.add_discovered(found),
                _ = ping_tick.tick() => self.ping_round().await,
                _ = hash_tick.tick(), if self.library.is_hashing() => self.emit_hash_progress(),
                Some(ids) = monitor_changes.recv() => self.request_scan(ScanScope::Games(ids)),
                _ = fallback_scan.tick() => self.request_scan(ScanScope::All),
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(err) = joined
                        && err.is_panic()
                    {
                        self.emit(PeerEvent::RuntimeFailed { component: "task".into(), error: format!("a runtime task panicked: {err}") }).await;
                    }
                }
            }
        }
        // A blocking thread is not aborted with its task: the cancel stops it at its next read.
        self.library.cancel_hashing();
        self.settle_operations(&mut internal).await;
        if let Some(discovery) = discovery {
            discovery.stop();
        }
        endpoint.close(quinn::VarInt::from_u32(0), b"shutting down");
        self.tasks.shutdown().await;
        // Give the close frames a moment to reach the peers, so they drop us at once.
        let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
        tracing::info!("peer runtime stopped");
    }

    /// Starts the file watcher; without one (disabled, or no inotify) the periodic full scan still runs.
    fn start_monitor(&mut self, changes: mpsc::Sender<std::collections::BTreeSet<String>>) {
        if !self.config.watch_game_dir {
            return;
        }
        match LocalGameMonitor::new(&self.config.game_dir) {
            Ok((monitor, raw)) => {
                let (control_tx, control_rx) = mpsc::channel(8);
                self.monitor_control = Some(control_tx);
                self.tasks
                    .spawn(run_local_game_monitor(monitor, raw, control_rx, changes));
            }
            Err(err) => tracing::warn!(
                "cannot watch {}: {err}; changes show up at the next periodic scan",
                self.config.game_dir.display()
            ),
        }
    }

    /// Cancels running operations and lets them clean up, briefly, so a shutdown
    /// usually leaves nothing behind. What is still running after [`SHUTDOWN_SETTLE`]
    /// is left as a crash would leave it: the journal and startup recovery finish it.
    async fn settle_operations(&mut self, internal: &mut mpsc::Receiver<Internal>) {
        self.shutting_down = true;
        for operation in self.operations.values() {
            // A download keeps what it verified: the next start resumes it.
            if !operation.pause() {
                operation.cancel.cancel();
            }
        }
        let settle = async {
            while !self.operations.is_empty() {
                match internal.recv().await {
                    Some(message @ (Internal::DownloadEnded { .. } | Internal::InstallSideEnded { .. })) => {
                        self.handle_internal(message).await;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_SETTLE, settle).await.is_err() {
            let running: Vec<&str> = self.operations.keys().map(String::as_str).collect();
            tracing::warn!(
                "still running at shutdown: {}; startup recovery will finish them",
                running.join(", ")
            );
        }
    }

    /// Tells the server which games have an operation running (it answers `Busy` for them).
    /// Published before an operation's task touches the disk.
    fn publish_busy(&self) {
        let busy: std::collections::BTreeSet<String> = self.operations.keys().cloned().collect();
        self.served.send_if_modified(|served| {
            if served.busy == busy {
                return false;
            }
            Arc::make_mut(served).busy = busy;
            true
        });
    }

    async fn emit(&self, event: PeerEvent) {
        // A caller that dropped its receiver simply stops hearing from us.
        let _ = self.events.send(event).await;
    }

    async fn emit_snapshot(&self) {
        // The server starts once the first scan is applied (or failed), so it is pending
        // exactly while the local library is still unknown.
        let local_scanned = self.pending_server.is_none();
        let mut snapshot = self.db.snapshot(
            &self.library.games,
            local_scanned,
            &self.catalog,
            self.library.game_dir(),
            Instant::now(),
        );
        for (addr, candidate) in &self.candidates {
            if let Some((status, why)) = &candidate.unreachable
                && self.db.get(addr).is_none()
                && !self.db.has_departed(addr)
            {
                snapshot.absent_peers.push(AbsentPeer {
                    addr: *addr,
                    name: None,
                    status: (*status).to_owned(),
                    why: why.clone(),
                    game_count: 0,
                });
            }
        }
        snapshot.absent_peers.sort_by_key(|peer| peer.addr);
        for entry in &mut snapshot.games {
            if entry.local_version.is_none() {
                entry.partial = self.partials.get(&entry.id).cloned();
            }
        }
        self.emit(PeerEvent::LibraryUpdated(snapshot)).await;
    }

    async fn handle_command(&mut self, command: PeerCommand) {
        match command {
            PeerCommand::ListGames => {
                self.request_scan(ScanScope::All);
                self.emit_snapshot().await;
            }
            PeerCommand::GetGame { id } | PeerCommand::FetchLatestFromPeers { id } => self.fetch_game_files(id).await,
            PeerCommand::SetGameDir { path } => self.set_game_dir(path).await,
            PeerCommand::VerifyGame { id, repair } => self.start_verify(id, repair).await,
            PeerCommand::GetPeerCount => self.emit(PeerEvent::PeerCount(self.db.len())).await,
            // Taken by the loop, which stops.
            PeerCommand::Shutdown => {}
            PeerCommand::DownloadGameFiles { id, files } => self.start_download(id, files).await,
            PeerCommand::UninstallGame { id } => self.start_install_side(id, OperationKind::Uninstall).await,
            PeerCommand::RemoveDownloadedGame { id } => {
                let downloaded = self.library.games.get(&id).is_some_and(|game| game.is_downloaded());
                if !downloaded && self.partials.contains_key(&id) {
                    self.start_remove_partial(id).await;
                } else {
                    self.start_install_side(id, OperationKind::RemoveDownloaded).await;
                }
            }
            PeerCommand::PauseDownload { id } => {
                if !self.operations.get(&id).is_some_and(RunningOperation::pause) {
                    let reason = format!("no download of {id} is running: only a download can be paused");
                    self.emit(PeerEvent::OperationRefused { id, reason }).await;
                }
            }
            PeerCommand::CancelDownload { id } => match self.operations.get(&id) {
                Some(operation) if operation.kind.is_cancellable() => operation.cancel.cancel(),
                _ => {
                    let reason = format!("no download or install of {id} is running");
                    self.emit(PeerEvent::OperationRefused { id, reason }).await;
                }
            },
            PeerCommand::InstallGame { id } => self.start_install(id).await,
            PeerCommand::StreamInstallGame { id } => self.start_stream_install(id).await,
        }
    }

    /// Moves to another game dir: it must be free (its lock is taken before the old one is let go)
    /// and nothing may run in the current one.
    async fn set_game_dir(&mut self, path: PathBuf) {
        let refuse = |error: String| PeerEvent::RuntimeFailed {
            component: "library".into(),
            error,
        };
        let path = match crate::config::absolute(&path, None) {
            Ok(path) => path,
            Err(err) => return self.emit(refuse(err.to_string())).await,
        };
        if path == self.config.game_dir {
            self.request_scan(ScanScope::All);
            return;
        }
        if !self.operations.is_empty() {
            let error = format!(
                "cannot switch the game dir to {} while operations run in the current one; wait for them or cancel them",
                path.display()
            );
            return self.emit(refuse(error)).await;
        }
        if let Err(err) = std::fs::create_dir_all(&path) {
            let error = format!("cannot use {} as the game dir: {err}", path.display());
            return self.emit(refuse(error)).await;
        }
        match install::GameDirLock::acquire(&path, &self.config.state_dir) {
            Ok(lock) => self.locks.game = lock,
            Err(err) => return self.emit(refuse(err.to_string())).await,
        }
        tracing::info!("game dir is now {}", path.display());
        // Scan the new dir only once it is watched: a change in between is then either
        // seen by the scan or reported by the watcher, never lost.
        if let Some(control) = &self.monitor_control {
            let (watching, watched) = tokio::sync::oneshot::channel();
            if control
                .send(MonitorControl::SetGameDir(path.clone(), watching))
                .await
                .is_ok()
                && tokio::time::timeout(Duration::from_secs(5), watched).await.is_err()
            {
                tracing::warn!("the file watcher did not confirm the new game dir; the periodic scan covers it");
            }
        }
        self.library.set_game_dir(&path);
        self.config.game_dir = path;
        self.run_next_scan();
    }

    fn busy_reason(&self, id: &str) -> Option<String> {
        if let Some(running) = self.operations.get(id) {
            return Some(format!("{id} is busy: a {} is already running", running.kind.label()));
        }
        // Its archives are being read for another peer: they must not change underneath.
        self.outbound
            .is_active(id)
            .then(|| format!("{id} is busy: it is being streamed to another peer; try again shortly"))
    }

    /// Registers an operation on `id`, or refuses it (and returns None) when `id` is busy.
    async fn begin_operation(&mut self, id: &str, kind: OperationKind) -> Option<CancellationToken> {
        let refusal = if self.shutting_down {
            Some("lanspread is shutting down".to_owned())
        } else {
            self.busy_reason(id)
        };
        if let Some(reason) = refusal {
            self.emit(PeerEvent::OperationRefused {
                id: id.to_owned(),
                reason,
            })
            .await;
            return None;
        }
        self.library.stop_hashing(id);
        let cancel = CancellationToken::new();
        self.operations.insert(
            id.to_owned(),
            RunningOperation {
                kind,
                cancel: cancel.clone(),
                pause: Arc::new(AtomicBool::new(false)),
            },
        );
        self.publish_busy();
        self.emit_active_operations().await;
        Some(cancel)
    }

    /// The operation on `id` has ended: the server may serve it again, and its held rescan runs.
    fn end_operation(&mut self, id: &str) {
        self.operations.remove(id);
        self.publish_busy();
        self.library.settled(id);
    }

    /// Unpacks the downloaded archives into `local/` on a blocking thread.
    async fn start_install(&mut self, id: String) {
        if !self.catalog.contains(&id) {
            let reason = format!("{id:?} is not in the catalog");
            self.emit(PeerEvent::OperationRefused { id, reason }).await;
            return;
        }
        let Some(cancel) = self.begin_operation(&id, OperationKind::Install).await else {
            return;
        };
        self.emit(PeerEvent::InstallGameBegin { id: id.clone() }).await;
        let (game_dir, state_dir) = (self.config.game_dir.clone(), self.config.state_dir.clone());
        let (unpacker, events, internal) = (self.unpacker.clone(), self.events.clone(), self.internal.clone());
        self.tasks.spawn(async move {
            let task_id = id.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut progress = ProgressThrottle::new(events, task_id.clone());
                let transaction = install::Transaction {
                    game_dir: &game_dir,
                    state_dir: &state_dir,
                    id: &task_id,
                    failpoints: install::Failpoints::default(),
                };
                transaction.install_downloaded(unpacker.as_ref(), &mut |p| progress.report(p.files, p.bytes), &|| {
                    cancel.is_cancelled()
                })
            })
            .await
            .unwrap_or_else(|err| Err(install::InstallError::Panicked(format!("the install panicked: {err}"))));
            let kind = OperationKind::Install;
            let _ = internal.send(Internal::InstallSideEnded { id, kind, result }).await;
        });
    }

    /// Streams the game from a peer that has its latest version (see `stream_install`).
    async fn start_stream_install(&mut self, id: String) {
        if !self.catalog.contains(&id) {
            let reason = format!("{id:?} is not in the catalog");
            self.emit(PeerEvent::OperationRefused { id, reason }).await;
            return;
        }
        let (Some(version), peers) = (self.db.latest_version(&id), self.db.peers_with_latest(&id)) else {
            let reason = format!("no peer currently shares {}", self.catalog.display_name(&id));
            self.emit(PeerEvent::OperationRefused { id, reason }).await;
            return;
        };
        if let Some(reason) = self.space_refusal(&id, SpaceOperation::StreamInstall, &[]) {
            self.emit(PeerEvent::OperationRefused { id, reason }).await;
            return;
        }
        let Some(cancel) = self.begin_operation(&id, OperationKind::StreamInstall).await else {
            return;
        };
        self.emit(PeerEvent::InstallGameBegin { id: id.clone() }).await;
        let job = StreamInstallJob {
            id: id.clone(),
            version: version.to_string(),
            peers,
            game_dir: self.config.game_dir.clone(),
            state_dir: self.config.state_dir.clone(),
            client: self.client.clone(),
            cancel,
            events: self.events.clone(),
        };
        let internal = self.internal.clone();
        self.tasks.spawn(async move {
            let result = stream_install_game(job).await;
            let kind = OperationKind::StreamInstall;
            let _ = internal.send(Internal::InstallSideEnded { id, kind, result }).await;
        });
    }

    /// Runs an install-side transaction on a blocking thread; the result comes back as `InstallSideEnded`.
    async fn start_install_side(&mut self, id: String, kind: OperationKind) {
        if self.begin_operation(&id, kind).await.is_none() {
            return;
        }
        let begin = match kind {
            OperationKind::Uninstall => PeerEvent::UninstallGameBegin { id: id.clone() },
            _ => PeerEvent::RemoveDownloadedGameBegin { id: id.clone() },
        };
        self.emit(begin).await;
        let (game_dir, state_dir, catalog) = (
            self.config.game_dir.clone(),
            self.config.state_dir.clone(),
            self.catalog.clone(),
        );
        let internal = self.internal.clone();
        self.tasks.spawn(async move {
            let task_id = id.clone();
            let result = tokio::task::spawn_blocking(move || {
                let transaction = install::Transaction {
                    game_dir: &game_dir,
                    state_dir: &state_dir,
                    id: &task_id,
                    failpoints: install::Failpoints::default(),
                };
                match kind {
                    OperationKind::Uninstall => transaction.uninstall(),
                    _ => transaction.remove_downloaded(&catalog),
                }
            })
            .await
            .unwrap_or_else(|err| {
                Err(install::InstallError::Panicked(format!(
                    "the operation panicked: {err}"
                )))
            });
            let _ = internal.send(Internal::InstallSideEnded { id, kind, result }).await;
        });
    }

    async fn handle_install_side_ended(
        &mut self,
        id: String,
        kind: OperationKind,
        result: Result<install::Completed, install::InstallError>,
    ) {
        self.end_operation(&id);
        let reason = |err: install::InstallError| err.to_string();
        let event = match (kind, result) {
            (OperationKind::Install | OperationKind::StreamInstall, Ok(completed)) => PeerEvent::InstallGameFinished {
                id,
                updated: completed.updated,
            },
            (OperationKind::Install | OperationKind::StreamInstall, Err(err)) => PeerEvent::InstallGameFailed {
                id,
                reason: reason(err),
            },
            (OperationKind::Uninstall, Ok(_)) => PeerEvent::UninstallGameFinished { id },
            (OperationKind::Uninstall, Err(err)) => PeerEvent::UninstallGameFailed {
                id,
                reason: reason(err),
            },
            (OperationKind::RemoveDownloaded, Ok(_)) => PeerEvent::RemoveDownloadedGameFinished { id },
            (OperationKind::RemoveDownloaded, Err(err)) => PeerEvent::RemoveDownloadedGameFailed {
                id,
                reason: reason(err),
            },
            (OperationKind::Download | OperationKind::Verify, _) => {
                unreachable!("downloads and verifies end through their own messages")
            }
        };
        tracing::info!("{event:?}");
        self.emit(event).await;
        self.emit_active_operations().await;
        self.run_next_scan();
    }

    async fn emit_active_operations(&self) {
        let active = self
            .operations
            .iter()
            .map(|(id, operation)| ActiveOperation {
                id: id.clone(),
                kind: operation.kind,
            })
            .collect();
        self.emit(PeerEvent::ActiveOperations(active)).await;
    }

    /// Serves the journaled blocks of the unfinished download of `id` to peers downloading
    /// the same list, until a download of it starts or it is removed.
    async fn serve_partial(&mut self, id: String) {
        let (state_dir, game_dir, key) = (self.config.state_dir.clone(), self.config.game_dir.clone(), id.clone());
        let serving = tokio::task::spawn_blocking(move || download::serving_partial(&state_dir, &game_dir, &key)).await;
        match serving {
            Ok(Some(serving)) => {
                let registration = self.swarm.register(Arc::new(serving));
                self.serving_partials.insert(id, registration);
            }
            Ok(None) => {
                self.serving_partials.remove(&id);
            }
            Err(err) => tracing::warn!(game = id, "reading the resume journal panicked: {err}"),
        }
    }

    /// Validates the peers' file lists by majority and spawns the download task.
    async fn start_download(&mut self, id: String, files: Vec<GameFileDescription>) {
        // Checked before validation too, so a busy game is refused rather than failed.
        if let Some(reason) = self.busy_reason(&id) {
            self.emit(PeerEvent::OperationRefused { id, reason }).await;
            return;
        }
        let failed = |reason: String| PeerEvent::DownloadGameFilesFailed { id: id.clone(), reason };
        let Some(version) = self.db.latest_version(&id) else {
            let name = self.catalog.display_name(&id).to_owned();
            self.emit(failed(format!("no peer currently shares {name}"))).await;
            return;
        };
        let peers = self.db.peers_with_latest(&id);
        let manifests: Vec<(SocketAddr, &GameDetails)> = peers
            .iter()
            .filter_map(|addr| self.db.game_files(addr, &id).map(|details| (*addr, details)))
            .filter(|(_, details)| details.version == version.as_str())
            .collect();
        let plan = match validate_majority(&id, version.as_str(), &files, &manifests) {
            Ok(plan) => plan,
            Err(err) => {
                self.emit(failed(err.to_string())).await;
                return;
            }
        };
        if !plan.excluded.is_empty() {
            for (addr, why) in &plan.excluded {
                tracing::warn!(%addr, game = id, "left out of the download: {why}");
            }
            let peers = plan.excluded.clone();
            self.emit(PeerEvent::DownloadPeersExcluded { id: id.clone(), peers })
                .await;
        }
        self.launch_download(plan, None).await;
    }

    /// Starts the download task for a validated plan (a space check first). `on_disk` is
    /// what the payload holds when a verify just hashed it (see `DownloadJob::on_disk`).
    async fn launch_download(&mut self, plan: DownloadPlan, on_disk: Option<BTreeMap<String, SourceFile>>) {
        let (id, version) = (plan.id.clone(), plan.version.clone());
        let operation = SpaceOperation::Download {
            install: self.config.auto_install,
        };
        if let Some(reason) = self.space_refusal(&id, operation, &plan.files) {
            self.emit(PeerEvent::OperationRefused { id, reason }).await;
            return;
        }
        tracing::info!(game = id, version = %version, peers = plan.peers.len(), "download starting");
        let Some(cancel) = self.begin_operation(&id, OperationKind::Download).await else {
            return;
        };
        // The download serves its own verified blocks from now on.
        self.serving_partials.remove(&id);
        let pause = self
            .operations
            .get(&id)
            .map(|operation| operation.pause.clone())
            .unwrap_or_default();
        let job = DownloadJob {
            pause,
            plan,
            game_dir: self.config.game_dir.clone(),
            state_dir: self.config.state_dir.clone(),
            client: self.client.clone(),
            cancel,
            replaces: self
                .library
                .games
                .get(&id)
                .map(|game| game.files.clone())
                .unwrap_or_default(),
            on_disk,
            events: self.events.clone(),
            swarm: self.swarm.clone(),
            peers: self.known_peers.subscribe(),
        };
        let internal = self.internal.clone();
        let state_dir = self.config.state_dir.clone();
        self.tasks.spawn(async move {
            let outcome = download_game_files(job).await;
            let partial = match outcome {
                DownloadOutcome::Failed(_) | DownloadOutcome::Paused => {
                    let id = id.clone();
                    tokio::task::spawn_blocking(move || journal::load(&state_dir, &id).map(|j| j.progress()))
                        .await
                        .ok()
                        .flatten()
                }
                _ => None,
            };
            let _ = internal
                .send(Internal::DownloadEnded {
                    id,
                    version,
                    outcome,
                    partial,
                })
                .await;
        });
    }

    /// Deletes an unfinished download (its payload and journal) on a blocking thread.
    async fn start_remove_partial(&mut self, id: String) {
        let Some(_cancel) = self.begin_operation(&id, OperationKind::RemoveDownloaded).await else {
            return;
        };
        // Its files are about to go: no one is served from them any more.
        self.serving_partials.remove(&id);
        let (state_dir, game_dir, internal) = (
            self.config.state_dir.clone(),
            self.config.game_dir.clone(),
            self.internal.clone(),
        );
        self.tasks.spawn(async move {
            let owned = id.clone();
            let result = tokio::task::spawn_blocking(move || journal::remove_partial(&state_dir, &game_dir, &owned))
                .await
                .map_err(|err| format!("the removal panicked: {err}"))
                .and_then(|removed| removed.map_err(|err| err.to_string()));
            let _ = internal.send(Internal::PartialRemoved { id, result }).await;
        });
    }

    async fn handle_partial_removed(&mut self, id: String, result: Result<usize, String>) {
        self.end_operation(&id);
        let event = match result {
            Ok(files) => {
                tracing::info!(game = id, files, "removed the unfinished download");
                self.partials.remove(&id);
                PeerEvent::RemoveDownloadedGameFinished { id }
            }
            Err(reason) => {
                self.serve_partial(id.clone()).await;
                PeerEvent::RemoveDownloadedGameFailed { id, reason }
            }
        };
        self.emit(event).await;
        self.emit_active_operations().await;
        self.emit_snapshot().await;
        self.run_next_scan();
    }

    /// Hashes the downloaded `id` against the peers with the same version (or the record),
    /// on a task of its own; a repair follows in `handle_verify_ended`.
    async fn start_verify(&mut self, id: String, repair: bool) {
        let Some(game) = self.library.games.get(&id).filter(|game| game.is_downloaded()) else {
            let reason = format!(
                "{} is not downloaded here; nothing to verify",
                self.catalog.display_name(&id)
            );
            self.emit(PeerEvent::OperationRefused { id, reason }).await;
            return;
        };
        let version = game.version.as_ref().map(ToString::to_string).unwrap_or_default();
        let files = game.files.clone();
        let peers = self.db.peers_with_version(&id, &version);
        let Some(cancel) = self.begin_operation(&id, OperationKind::Verify).await else {
            return;
        };
        let (client, events, internal) = (self.client.clone(), self.events.clone(), self.internal.clone());
        let (game_dir, state_dir) = (self.config.game_dir.clone(), self.config.state_dir.clone());
        self.tasks.spawn(async move {
            let game = LocalGame {
                id: &id,
                version: &version,
                game_dir: &game_dir,
                state_dir: &state_dir,
                files: &files,
            };
            let result = verify::verify(game, &client, &peers, &events, &cancel).await;
            let _ = internal.send(Internal::VerifyEnded { id, repair, result }).await;
        });
    }

    async fn handle_verify_ended(&mut self, id: String, repair: bool, result: Result<Verified, TransferError>) {
        self.end_operation(&id);
        match result {
            Ok(verified) => {
                let report = verified.report;
                tracing::info!(game = id, damaged = report.damaged.len(), reference = ?report.reference, "verified");
                let damaged = !report.damaged.is_empty();
                self.emit(PeerEvent::VerifyFinished(report)).await;
                self.emit_active_operations().await;
                if repair && damaged && !self.shutting_down {
                    match verified.repair {
                        Some(plan) => self.launch_download(plan, Some(verified.on_disk)).await,
                        None => {
                            let reason = "no peer with this version answered; nothing to repair from".to_owned();
                            self.emit(PeerEvent::DownloadGameFilesFailed { id, reason }).await;
                        }
                    }
                }
            }
            Err(TransferError::Cancelled) => {
                let reason = "cancelled".to_owned();
                self.emit(PeerEvent::VerifyFailed { id, reason }).await;
                self.emit_active_operations().await;
            }
            Err(err) => {
                let reason = err.to_string();
                tracing::warn!(game = id, "verify failed: {reason}");
                self.emit(PeerEvent::VerifyFailed { id, reason }).await;
                self.emit_active_operations().await;
            }
        }
        self.run_next_scan();
    }

    /// Why `operation` on `id` cannot fit the game dir (see [`space::check_space`]), with
    /// `files` the list a download would fetch. An unknown free space refuses nothing, and
    /// neither does an estimate: only real sizes do.
    fn space_refusal(&self, id: &str, operation: SpaceOperation, files: &[GameFileDescription]) -> Option<String> {
        // One statvfs: quick enough for the actor, which otherwise never touches the disk.
        let free = crate::disk::free_space(&self.config.game_dir)?;
        let on_disk = self.library.games.get(id).map_or(&[][..], |game| &game.files);
        let sizes = GameSizes::of_download(files, on_disk, self.db.latest_expanded_size(id));
        match space::check_space(operation, sizes, free) {
            SpaceVerdict::Short(shortage) => {
                Some(shortage.message(self.catalog.display_name(id), id, &self.config.game_dir))
            }
            SpaceVerdict::Fits | SpaceVerdict::MayNotFit(_) => None,
        }
    }

    async fn handle_download_ended(&mut self, id: String, version: String, outcome: DownloadOutcome) {
        self.end_operation(&id);
        match outcome {
            DownloadOutcome::Finished(summary) => {
                tracing::info!(game = id, bytes = summary.bytes, "download finished");
                self.emit(PeerEvent::DownloadGameFilesFinished {
                    id: id.clone(),
                    version,
                    summary,
                })
                .await;
                self.after_download_finished(&id).await;
            }
            DownloadOutcome::Failed(err) => {
                let reason = err.to_string();
                tracing::warn!(game = id, "download failed: {reason}");
                self.emit(PeerEvent::DownloadGameFilesFailed { id, reason }).await;
            }
            DownloadOutcome::Cancelled => {
                tracing::info!(game = id, "download cancelled");
                self.emit(PeerEvent::DownloadGameFilesCancelled { id }).await;
            }
            DownloadOutcome::Paused => {
                tracing::info!(game = id, "download paused; its verified blocks are kept");
                self.emit(PeerEvent::DownloadGameFilesPaused { id }).await;
            }
        }
        self.emit_active_operations().await;
        self.run_next_scan();
    }

    /// Auto-install: a finished download goes through the same path as `PeerCommand::InstallGame`.
    async fn after_download_finished(&mut self, id: &str) {
        if self.config.auto_install && !self.shutting_down {
            self.start_install(id.to_owned()).await;
        }
    }

    async fn handle_internal(&mut self, message: Internal) {
        match message {
            Internal::Ping(result) => self.handle_ping(result).await,
            Internal::RemoteGames {
                addr,
                peer_id,
                revision,
                result,
            } => {
                self.fetches_in_flight.remove(&addr);
                let same_peer = self.db.get(&addr).is_some_and(|peer| peer.peer_id == peer_id);
                match result {
                    Ok(games) if same_peer => {
                        self.db.set_games(addr, revision, games, &self.catalog);
                        self.emit_snapshot().await;
                    }
                    Ok(_) => {}
                    // The next pong retries, since the fetched revision did not advance.
                    Err(err) => tracing::warn!(%addr, "cannot fetch the game list: {err}"),
                }
            }
            Internal::GameDetails { id, results } => self.handle_game_details(id, results).await,
            Internal::LocalScanned(result) => self.handle_scan(result).await,
            Internal::PartialRemoved { id, result } => self.handle_partial_removed(id, result).await,
            Internal::VerifyEnded { id, repair, result } => self.handle_verify_ended(id, repair, result).await,
            Internal::Hashed(outcome) => self.handle_hashed(outcome).await,
            Internal::DownloadEnded {
                id,
                version,
                outcome,
                partial,
            } => {
                match partial {
                    Some(partial) => self.partials.insert(id.clone(), partial),
                    None => self.partials.remove(&id),
                };
                if self.partials.contains_key(&id) {
                    self.serve_partial(id.clone()).await;
                }
                self.handle_download_ended(id, version, outcome).await;
            }
            Internal::InstallSideEnded { id, kind, result } => self.handle_install_side_ended(id, kind, result).await,
        }
    }

    /// Queues a rescan (held for busy games) and starts it if no scan runs.
    fn request_scan(&mut self, scope: ScanScope) {
        let operations = &self.operations;
        self.library.request(scope, |id| operations.contains_key(id));
        self.run_next_scan();
    }

    fn run_next_scan(&mut self) {
        let Some(job) = self.library.next_job() else {
            return;
        };
        let (catalog, state_dir, internal) = (
            self.catalog.clone(),
            self.config.state_dir.clone(),
            self.internal.clone(),
        );
        self.tasks.spawn(async move {
            match tokio::task::spawn_blocking(move || job.run(&catalog, &state_dir)).await {
                Ok(result) => {
                    let _ = internal.send(Internal::LocalScanned(result)).await;
                }
                Err(err) => tracing::error!("library scan panicked: {err}"),
            }
        });
    }

    async fn handle_scan(&mut self, result: ScanResult) {
        let operations = &self.operations;
        let applied = self.library.apply(result, |id| operations.contains_key(id));
        let applied_stale = applied.stale;
        if let Some(error) = applied.error {
            self.emit(PeerEvent::RuntimeFailed {
                component: "library".into(),
                error,
            })
            .await;
        } else if !applied.stale {
            let previous = self.served.borrow().clone();
            // Games still being hashed are listed locally but neither announced nor served.
            let shared = self.library.shared();
            let announced_changed =
                previous.games.summaries() != shared.summaries() || previous.game_dir != self.library.game_dir();
            self.served.send_replace(Arc::new(ServedLibrary {
                game_dir: self.library.game_dir().to_owned(),
                games: shared,
                revision: previous.revision + u64::from(announced_changed),
                busy: previous.busy.clone(),
            }));
            if !applied.changed.is_empty() {
                let ids = applied.changed.into_iter().collect();
                self.emit(PeerEvent::LocalLibraryChanged { ids }).await;
            }
            self.emit_snapshot().await;
        }
        // Served once the first scan is published (or failed), so no peer sees a not-yet-scanned library.
        if !applied_stale && let Some((endpoint, context)) = self.pending_server.take() {
            self.tasks
                .spawn(run_server_component(endpoint, context, self.config.limits));
            // The first snapshot that says the local library is known.
            self.emit_snapshot().await;
        }
        self.run_next_scan();
        self.after_hashing_moved().await;
    }

    /// Starts hashing the next queued game on a blocking thread, if none is being hashed.
    fn run_next_hash(&mut self) {
        if self.shutting_down {
            return;
        }
        let Some(job) = self.library.next_hash() else {
            return;
        };
        let internal = self.internal.clone();
        let panicked = job.panicked();
        self.tasks.spawn(async move {
            let outcome = tokio::task::spawn_blocking(move || job.run())
                .await
                .unwrap_or_else(|err| {
                    tracing::error!("hashing panicked: {err}");
                    panicked
                });
            let _ = internal.send(Internal::Hashed(outcome)).await;
        });
    }

    /// A game's hashes are known: its rescan publishes it. Then the next game is hashed.
    async fn handle_hashed(&mut self, outcome: HashOutcome) {
        match self.library.hashed(outcome) {
            HashEnd::Hashed(id) => {
                tracing::info!(game = id, "hashed; announced from its rescan on");
                self.request_scan(ScanScope::Games(std::collections::BTreeSet::from([id])));
            }
            HashEnd::Failed { id, error } => {
                let error = format!(
                    "cannot hash {}: {error}; it is not shared until a rescan can read it",
                    self.catalog.display_name(&id)
                );
                tracing::warn!(game = id, "{error}");
                self.emit(PeerEvent::RuntimeFailed {
                    component: "hashing".into(),
                    error,
                })
                .await;
            }
            HashEnd::Dropped => {}
        }
        self.after_hashing_moved().await;
    }

    /// Starts the next hash job if one is due, reports progress, and the end once everything
    /// hashed is published.
    async fn after_hashing_moved(&mut self) {
        self.run_next_hash();
        self.emit_hash_progress();
        if let Some(run) = self.library.hash_run_ended() {
            self.emit(PeerEvent::HashingFinished {
                games: run.games,
                bytes: run.bytes,
                elapsed: run.elapsed,
            })
            .await;
        }
    }

    fn emit_hash_progress(&mut self) {
        if let Some(progress) = self.library.hash_progress() {
            // Advisory, like download progress: a full queue drops a sample.
            let _ = self.events.try_send(PeerEvent::HashingProgress(progress));
        }
    }

    /// A peer seen via mDNS or by its ping becomes a candidate; a pong makes it a peer.
    fn add_discovered(&mut self, found: DiscoveredPeer) {
        if found.peer_id == self.peer_id
            || self.db.get(&found.addr).is_some()
            || self.db.find_by_peer_id(&found.peer_id).is_some()
        {
            return;
        }
        self.candidates.entry(found.addr).or_insert_with(|| Candidate {
            is_static: false,
            added: Instant::now(),
            unreachable: None,
        });
    }

    fn hello(&self) -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            peer_id: self.peer_id.clone(),
            name: self.config.peer_name.clone(),
            library_revision: self.served.borrow().revision,
        }
    }

    /// Pings every candidate without a ping in flight, then prunes silent peers.
    async fn ping_round(&mut self) {
        let hello = self.hello();
        let targets: Vec<SocketAddr> = self.candidates.keys().copied().chain(self.db.addrs()).collect();
        for addr in targets {
            if self.pings_in_flight.insert(addr) {
                let (client, internal, hello) = (self.client.clone(), self.internal.clone(), hello.clone());
                self.tasks.spawn(async move {
                    let _ = internal
                        .send(Internal::Ping(ping::ping(client, addr, hello).await))
                        .await;
                });
            }
        }

        let now = Instant::now();
        for addr in self.db.stale_peers(now, self.config.peer_timeout) {
            self.drop_peer(addr, "stopped answering pings").await;
        }
        // While a peer misses pings, each round shows for how long; forgetting a peer
        // that left long ago takes its games off the library.
        if self.db.forget_departed(now) | self.db.any_unanswered(now) {
            self.emit_snapshot().await;
        }
        let timeout = self.config.peer_timeout;
        let db = &self.db;
        self.candidates.retain(|addr, candidate| {
            candidate.is_static || db.get(addr).is_some() || now.duration_since(candidate.added) < timeout
        });
    }

    async fn handle_ping(&mut self, PingResult { addr, result }: PingResult) {
        self.pings_in_flight.remove(&addr);
        let (theirs, latency) = match result {
            Ok(pong) => pong,
            Err(err) => {
                tracing::debug!(%addr, "ping failed: {err}");
                let why = (err.short(), err.to_string());
                if let Some(candidate) = self.candidates.get_mut(&addr).filter(|c| c.is_static)
                    && candidate.unreachable.as_ref() != Some(&why)
                {
                    if candidate.unreachable.is_none() && self.db.get(&addr).is_none() {
                        tracing::warn!(%addr, "configured peer does not answer: {}", why.1);
                    }
                    candidate.unreachable = Some(why);
                    self.emit_snapshot().await;
                }
                match err {
                    ClientError::Closed { .. } => self.drop_peer(addr, "it shut down").await,
                    ClientError::ProtocolMismatch { .. } => {
                        let error = err.to_string();
                        self.emit(PeerEvent::RuntimeFailed {
                            component: "ping".into(),
                            error,
                        })
                        .await;
                    }
                    _ => {}
                }
                return;
            }
        };
        if let Some(candidate) = self.candidates.get_mut(&addr) {
            candidate.unreachable = None;
        }
        match classify_pong(&mut self.db, &self.peer_id, addr, &theirs, Instant::now(), latency) {
            PongOutcome::OurOwnAddress | PongOutcome::KnownElsewhere(_) => {
                if !self.candidates.get(&addr).is_some_and(|c| c.is_static) {
                    self.candidates.remove(&addr);
                }
            }
            PongOutcome::Restarted => {
                self.drop_peer(addr, "restarted").await;
                self.join_peer(addr, &theirs, latency).await;
            }
            PongOutcome::Joined => self.join_peer(addr, &theirs, latency).await,
            PongOutcome::Alive { refetch } => {
                if refetch {
                    self.fetch_remote_games(addr, &theirs);
                }
            }
        }
    }

    async fn join_peer(&mut self, addr: SocketAddr, hello: &Hello, latency: Duration) {
        self.db.insert_peer(addr, hello, latency, Instant::now());
        self.known_peers.send_replace(self.db.addrs().collect());
        tracing::info!(%addr, name = hello.name, "peer joined");
        self.emit(PeerEvent::PeerJoined {
            addr,
            peer_id: hello.peer_id.clone(),
            name: hello.name.clone(),
        })
        .await;
        self.emit(PeerEvent::PeerCount(self.db.len())).await;
        self.fetch_remote_games(addr, hello);
    }

    async fn drop_peer(&mut self, addr: SocketAddr, why: &str) {
        let Some(peer) = self.db.remove_peer(&addr, why, Instant::now()) else {
            return;
        };
        self.known_peers.send_replace(self.db.addrs().collect());
        tracing::info!(%addr, name = peer.name, "peer left: {why}");
        self.client.forget(addr);
        if !self.candidates.get(&addr).is_some_and(|c| c.is_static) {
            self.candidates.remove(&addr);
        }
        self.emit(PeerEvent::PeerLeft {
            addr,
            peer_id: peer.peer_id,
            name: peer.name,
        })
        .await;
        self.emit(PeerEvent::PeerCount(self.db.len())).await;
        self.emit_snapshot().await;
    }

    fn fetch_remote_games(&mut self, addr: SocketAddr, hello: &Hello) {
        if !self.fetches_in_flight.insert(addr) {
            return;
        }
        let (client, internal) = (self.client.clone(), self.internal.clone());
        let (peer_id, revision) = (hello.peer_id.clone(), hello.library_revision);
        self.tasks.spawn(async move {
            let result = client.list_games(addr).await;
            let _ = internal
                .send(Internal::RemoteGames {
                    addr,
                    peer_id,
                    revision,
                    result,
                })
                .await;
        });
    }

    async fn fetch_game_files(&mut self, id: String) {
        if !self.catalog.contains(&id) {
            let reason = format!("{id:?} is not in the catalog");
            self.emit(PeerEvent::GameFilesUnavailable { id, reason }).await;
            return;
        }
        let peers = self.db.peers_with_latest(&id);
        if peers.is_empty() {
            let reason = format!("no peer currently shares {}", self.catalog.display_name(&id));
            self.emit(PeerEvent::GameFilesUnavailable { id, reason }).await;
            return;
        }
        let (client, internal) = (self.client.clone(), self.internal.clone());
        self.tasks.spawn(async move {
            let requests = peers.into_iter().map(|addr| {
                let (client, id) = (client.clone(), id.clone());
                async move { (addr, client.get_game(addr, &id).await) }
            });
            let results = join_all(requests).await;
            let _ = internal.send(Internal::GameDetails { id, results }).await;
        });
    }

    async fn handle_game_details(&mut self, id: String, results: Vec<(SocketAddr, Result<GameDetails, ClientError>)>) {
        let Some(latest) = self.db.latest_version(&id) else {
            let reason = "every peer sharing it has left".to_owned();
            self.emit(PeerEvent::GameFilesUnavailable { id, reason }).await;
            return;
        };
        let mut peers = Vec::new();
        let mut failures = Vec::new();
        for (addr, result) in results {
            match result {
                Ok(details) if details.version == latest.as_str() => {
                    self.db.set_game_files(addr, details);
                    peers.push(addr);
                }
                Ok(details) => failures.push(format!("{addr} now has version {}", details.version)),
                Err(err) => failures.push(err.to_string()),
            }
        }
        if peers.is_empty() {
            let reason = format!("no peer sent the file list: {}", failures.join("; "));
            self.emit(PeerEvent::GameFilesUnavailable { id, reason }).await;
            return;
        }
        for failure in &failures {
            tracing::warn!(game = id, "file list request failed: {failure}");
        }
        let files = self.db.merged_files(&id, &peers);
        self.emit(PeerEvent::GotGameFiles {
            id,
            version: latest.to_string(),
            files,
            peers,
        })
        .await;
    }
}
