//! `App`: everything the TUI shows, as plain data. [`App::update`] folds a
//! [`PeerEvent`] in, [`App::apply`] carries out an [`Action`]; both return the
//! [`PeerCommand`]s to send and do no I/O, so the whole behaviour is unit-tested
//! without a terminal or a runtime. Rendering reads `&App` and nothing else.
//!
//! Invariants: what runs is what the last [`PeerEvent::ActiveOperations`] said
//! (plus file-list requests this UI made and is waiting on); selections are
//! kept by key, so rows moving around under a new snapshot keep the cursor on
//! the same game or peer.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::format::{format_duration, format_rate, format_size};
use super::input::{Action, InputMode};
use crate::peer::{
    ActiveOperation, DownloadProgress, GameState, LibraryEntry, LibrarySnapshot, OperationKind, PeerCommand, PeerEvent,
    PeerSummary,
};

/// Log lines kept for the log pane; the log file has them all.
pub const LOG_CAPACITY: usize = 1000;
/// Rows moved by PgUp / PgDn.
pub const PAGE: usize = 10;
/// Until the runtime reports install sizes, an install is assumed to take this many times its archives.
pub const INSTALL_SIZE_FACTOR: u64 = 2;

/// A log-pane timestamp, e.g. `14:03:27`. A plain fn so tests can pin it.
pub type Clock = fn() -> String;

/// Local wall-clock time of day.
pub fn local_clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Library,
    Peers,
    Transfers,
    Log,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Library, Pane::Peers, Pane::Transfers, Pane::Log];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Library => "Library",
            Pane::Peers => "Peers",
            Pane::Transfers => "Transfers",
            Pane::Log => "Log",
        }
    }

    fn index(self) -> usize {
        Pane::ALL.iter().position(|pane| *pane == self).unwrap_or(0)
    }

    fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % Pane::ALL.len()]
    }

    fn prev(self) -> Pane {
        Pane::ALL[(self.index() + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    State,
    Size,
}

impl SortKey {
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::State => "state",
            SortKey::Size => "size",
        }
    }

    fn next(self) -> SortKey {
        match self {
            SortKey::Name => SortKey::State,
            SortKey::State => SortKey::Size,
            SortKey::Size => SortKey::Name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: String,
    pub level: Level,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    pub level: Level,
    pub text: String,
}

/// What a confirmation dialog does on "yes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    Install(String),
    Uninstall(String),
    RemoveDownloaded(String),
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub title: String,
    pub message: String,
    pub confirm: Confirmed,
}

/// A file-list request this UI made, and what to do with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Download,
    Update,
}

impl Fetch {
    fn label(self) -> &'static str {
        match self {
            Fetch::Download => "download",
            Fetch::Update => "update",
        }
    }
}

/// A library row: a catalog game, or a folder in the game dir that is not one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowKey {
    Game(String),
    Folder(String),
}

/// How a row's state reads, for colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Remote,
    Downloaded,
    Installed,
    Update,
    Busy,
    Unshared,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryRow {
    pub key: RowKey,
    pub name: String,
    pub state: String,
    pub tone: Tone,
    pub version: String,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    pub summary: PeerSummary,
    /// When this UI first saw the peer (log clock).
    pub since: String,
    /// Bytes per second this peer sends us right now, summed over running downloads.
    pub rate: Option<f64>,
}

/// What the transfers pane shows for one running operation.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRow {
    pub id: String,
    pub name: String,
    /// `download`, `uninstall`, ...
    pub label: String,
    /// What it is doing, for operations without progress samples.
    pub activity: String,
    pub version: Option<String>,
    pub total_bytes: Option<u64>,
    pub progress: Option<DownloadProgress>,
    pub install: Option<InstallProgress>,
}

/// Files and bytes an install has written so far (the runtime reports no totals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallProgress {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
struct DownloadInfo {
    version: Option<String>,
    total_bytes: Option<u64>,
    progress: Option<DownloadProgress>,
}

/// A cursor kept by key, falling back to the last index when its row goes away.
#[derive(Debug, Clone)]
pub struct Selection<K> {
    key: Option<K>,
    index: usize,
}

impl<K> Default for Selection<K> {
    fn default() -> Self {
        Selection { key: None, index: 0 }
    }
}

impl<K: PartialEq + Clone> Selection<K> {
    /// The selected position among `keys`, if there are any.
    pub fn resolve(&self, keys: &[K]) -> Option<usize> {
        if keys.is_empty() {
            return None;
        }
        let found = self.key.as_ref().and_then(|key| keys.iter().position(|k| k == key));
        Some(found.unwrap_or(self.index.min(keys.len() - 1)))
    }

    fn move_by(&mut self, keys: &[K], delta: isize) {
        let Some(current) = self.resolve(keys) else {
            return;
        };
        let target = current.saturating_add_signed(delta).min(keys.len() - 1);
        self.index = target;
        self.key = Some(keys[target].clone());
    }
}

/// Which game a game action applies to.
enum Target<'a> {
    Game(&'a LibraryEntry),
    Folder(&'a str),
}

#[derive(Debug, Clone)]
pub struct App {
    game_dir: PathBuf,
    listen_addr: SocketAddr,
    log_dir: Option<PathBuf>,
    free_space: Option<u64>,
    snapshot: LibrarySnapshot,
    peers: Vec<PeerRow>,
    active: BTreeMap<String, OperationKind>,
    downloads: BTreeMap<String, DownloadInfo>,
    installs: BTreeMap<String, InstallProgress>,
    /// Games whose operation just ended: their next on-disk change is that operation's own.
    just_ended: std::collections::BTreeSet<String>,
    fetching: BTreeMap<String, Fetch>,
    log: VecDeque<LogLine>,
    log_total: u64,
    /// Lines scrolled up from the newest; 0 follows the tail.
    log_scroll: usize,
    status: Option<StatusMessage>,
    focus: Pane,
    library_selection: Selection<RowKey>,
    peer_selection: Selection<SocketAddr>,
    transfer_selection: Selection<String>,
    filter: String,
    filtering: bool,
    sort: SortKey,
    dialog: Option<Dialog>,
    help: bool,
    quit: bool,
    runtime_stopped: bool,
    spinner: usize,
    dirty: bool,
    clock: Clock,
}

impl App {
    pub fn new(game_dir: PathBuf, listen_addr: SocketAddr) -> App {
        App {
            game_dir,
            listen_addr,
            log_dir: None,
            free_space: None,
            snapshot: LibrarySnapshot::default(),
            peers: Vec::new(),
            active: BTreeMap::new(),
            downloads: BTreeMap::new(),
            installs: BTreeMap::new(),
            just_ended: std::collections::BTreeSet::new(),
            fetching: BTreeMap::new(),
            log: VecDeque::new(),
            log_total: 0,
            log_scroll: 0,
            status: None,
            focus: Pane::Library,
            library_selection: Selection::default(),
            peer_selection: Selection::default(),
            transfer_selection: Selection::default(),
            filter: String::new(),
            filtering: false,
            sort: SortKey::Name,
            dialog: None,
            help: false,
            quit: false,
            runtime_stopped: false,
            spinner: 0,
            dirty: true,
            clock: local_clock,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> App {
        self.clock = clock;
        self
    }

    pub fn with_log_dir(mut self, log_dir: Option<PathBuf>) -> App {
        self.log_dir = log_dir;
        self
    }

    // ---- read side, for rendering and the event loop ----

    pub fn game_dir(&self) -> &Path {
        &self.game_dir
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    pub fn log_dir(&self) -> Option<&Path> {
        self.log_dir.as_deref()
    }

    pub fn free_space(&self) -> Option<u64> {
        self.free_space
    }

    pub fn snapshot(&self) -> &LibrarySnapshot {
        &self.snapshot
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn focus(&self) -> Pane {
        self.focus
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn is_filtering(&self) -> bool {
        self.filtering
    }

    pub fn sort(&self) -> SortKey {
        self.sort
    }

    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    pub fn is_help_open(&self) -> bool {
        self.help
    }

    pub fn status(&self) -> Option<&StatusMessage> {
        self.status.as_ref()
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    pub fn log_lines(&self) -> &VecDeque<LogLine> {
        &self.log
    }

    pub fn log_scroll(&self) -> usize {
        self.log_scroll
    }

    /// Lines logged since `seen` lines were logged in total (for copying them to the log file).
    pub fn log_lines_since(&self, seen: u64) -> impl Iterator<Item = &LogLine> {
        let first = self.log_total - self.log.len() as u64;
        let skip = usize::try_from(seen.saturating_sub(first)).unwrap_or(usize::MAX);
        self.log.iter().skip(skip)
    }

    pub fn log_total(&self) -> u64 {
        self.log_total
    }

    pub fn active_operations(&self) -> impl Iterator<Item = (&str, OperationKind)> {
        self.active.iter().map(|(id, kind)| (id.as_str(), *kind))
    }

    /// A frame counter for the spinner of operations that report no progress.
    pub fn spinner(&self) -> usize {
        self.spinner
    }

    pub fn input_mode(&self) -> InputMode {
        if self.help {
            InputMode::Help
        } else if self.dialog.is_some() {
            InputMode::Dialog
        } else if self.filtering {
            InputMode::Filter
        } else {
            InputMode::Normal
        }
    }

    /// True while something on screen moves without events (a spinner): only then does the loop tick.
    pub fn is_animating(&self) -> bool {
        !self.fetching.is_empty()
            || self
                .active
                .keys()
                .any(|id| self.downloads.get(id).is_none_or(|info| info.progress.is_none()))
    }

    /// Whether anything changed since the last call; the loop draws only then.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Marks the screen stale (e.g. after a terminal resize).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn name_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.snapshot.game(id).map_or(id, |game| game.name.as_str())
    }

    /// The library as shown: filtered, sorted, with uncatalogued folders last.
    pub fn library_rows(&self) -> Vec<LibraryRow> {
        let needle = self.filter.to_lowercase();
        let matches = |text: &str| needle.is_empty() || text.to_lowercase().contains(&needle);
        let mut games: Vec<&LibraryEntry> = self
            .snapshot
            .games
            .iter()
            .filter(|game| matches(&game.name) || matches(&game.id))
            .collect();
        match self.sort {
            SortKey::Name => games.sort_by_key(|game| game.name.to_lowercase()),
            SortKey::State => games.sort_by_key(|game| (self.state_rank(game), game.name.to_lowercase())),
            SortKey::Size => games.sort_by_key(|game| (std::cmp::Reverse(latest_size(game)), game.name.to_lowercase())),
        }
        let mut rows: Vec<LibraryRow> = games.into_iter().map(|game| self.game_row(game)).collect();
        rows.extend(
            self.snapshot
                .uncatalogued
                .iter()
                .filter(|folder| matches(folder))
                .map(|folder| LibraryRow {
                    key: RowKey::Folder(folder.clone()),
                    name: folder.clone(),
                    state: "not shared (not in catalog)".to_owned(),
                    tone: Tone::Unshared,
                    version: String::new(),
                    size: None,
                }),
        );
        rows
    }

    pub fn library_keys(&self) -> Vec<RowKey> {
        self.library_rows().into_iter().map(|row| row.key).collect()
    }

    pub fn selected_library_index(&self) -> Option<usize> {
        self.library_selection.resolve(&self.library_keys())
    }

    pub fn peer_rows(&self) -> Vec<PeerRow> {
        let mut rates: BTreeMap<SocketAddr, f64> = BTreeMap::new();
        for progress in self.downloads.values().filter_map(|info| info.progress.as_ref()) {
            for peer in &progress.peers {
                *rates.entry(peer.addr).or_default() += peer.bytes_per_second;
            }
        }
        let mut rows: Vec<PeerRow> = self
            .peers
            .iter()
            .map(|row| PeerRow {
                rate: rates.get(&row.summary.addr).copied(),
                ..row.clone()
            })
            .collect();
        rows.sort_by(|a, b| {
            (a.summary.name.to_lowercase(), a.summary.addr).cmp(&(b.summary.name.to_lowercase(), b.summary.addr))
        });
        rows
    }

    pub fn selected_peer_index(&self) -> Option<usize> {
        let keys: Vec<SocketAddr> = self.peer_rows().iter().map(|row| row.summary.addr).collect();
        self.peer_selection.resolve(&keys)
    }

    /// Running operations, then file-list requests still waiting for an answer.
    pub fn transfer_rows(&self) -> Vec<TransferRow> {
        let mut rows: Vec<TransferRow> = self
            .active
            .iter()
            .map(|(id, kind)| {
                let info = self.downloads.get(id);
                let install = self.installs.get(id).copied();
                let activity = match (kind, install) {
                    (OperationKind::Install, Some(done)) => {
                        format!("unpacked {} files, {}", done.files, format_size(done.bytes))
                    }
                    (OperationKind::StreamInstall, Some(done)) => {
                        format!("received {} files, {}", done.files, format_size(done.bytes))
                    }
                    (kind, _) => busy_verb(*kind).to_owned(),
                };
                TransferRow {
                    id: id.clone(),
                    name: self.name_of(id).to_owned(),
                    label: kind.label().to_owned(),
                    activity,
                    install,
                    version: info.and_then(|info| info.version.clone()),
                    total_bytes: info.and_then(|info| info.total_bytes),
                    progress: info.and_then(|info| info.progress.clone()),
                }
            })
            .collect();
        rows.extend(
            self.fetching
                .iter()
                .filter(|(id, _)| !self.active.contains_key(*id))
                .map(|(id, fetch)| TransferRow {
                    id: id.clone(),
                    name: self.name_of(id).to_owned(),
                    label: fetch.label().to_owned(),
                    activity: "asking peers for the file list".to_owned(),
                    install: None,
                    version: None,
                    total_bytes: None,
                    progress: None,
                }),
        );
        rows
    }

    pub fn selected_transfer_index(&self) -> Option<usize> {
        let keys: Vec<String> = self.transfer_rows().into_iter().map(|row| row.id).collect();
        self.transfer_selection.resolve(&keys)
    }

    /// A warning when the selected game would not fit the free space, offering a streamed install.
    pub fn space_warning(&self) -> Option<String> {
        let free = self.free_space?;
        let index = self.selected_library_index()?;
        let RowKey::Game(id) = self.library_keys().swap_remove(index) else {
            return None;
        };
        let game = self.snapshot.game(&id)?;
        let archives = latest_size(game);
        let install = archives.saturating_mul(INSTALL_SIZE_FACTOR);
        let name = &game.name;
        match game.state {
            GameState::RemoteOnly | GameState::UpdateAvailable if free < install => Some(format!(
                "{name} needs ~{} even as a streamed install; only {} free",
                format_size(install),
                format_size(free)
            )),
            GameState::RemoteOnly | GameState::UpdateAvailable if free < archives.saturating_add(install) => {
                Some(format!(
                    "{name} needs ~{} ({} archives + ~{} installed), {} free: press s for a streamed install (~{})",
                    format_size(archives.saturating_add(install)),
                    format_size(archives),
                    format_size(install),
                    format_size(free),
                    format_size(install)
                ))
            }
            GameState::Downloaded if free < install => Some(format!(
                "installing {name} needs ~{}; only {} free",
                format_size(install),
                format_size(free)
            )),
            _ => None,
        }
    }

    fn state_rank(&self, game: &LibraryEntry) -> u8 {
        if self.active.contains_key(&game.id) || self.fetching.contains_key(&game.id) {
            return 0;
        }
        match game.state {
            GameState::UpdateAvailable => 1,
            GameState::Installed => 2,
            GameState::Downloaded => 3,
            GameState::RemoteOnly => 4,
        }
    }

    fn game_row(&self, game: &LibraryEntry) -> LibraryRow {
        let (state, tone) = if let Some(kind) = self.active.get(&game.id) {
            let percent = self
                .downloads
                .get(&game.id)
                .and_then(|info| info.progress.as_ref())
                .map(|progress| format!(" {:.0}%", progress.fraction() * 100.0))
                .unwrap_or_default();
            (format!("{}{percent}", busy_verb(*kind)), Tone::Busy)
        } else if self.fetching.contains_key(&game.id) {
            ("asking peers...".to_owned(), Tone::Busy)
        } else {
            match game.state {
                GameState::RemoteOnly => {
                    let count = game.peers.len();
                    (
                        format!("on {count} peer{}", if count == 1 { "" } else { "s" }),
                        Tone::Remote,
                    )
                }
                GameState::Downloaded => ("downloaded".to_owned(), Tone::Downloaded),
                GameState::Installed => ("installed".to_owned(), Tone::Installed),
                GameState::UpdateAvailable => ("update available".to_owned(), Tone::Update),
            }
        };
        let version = match (&game.local_version, &game.latest_version) {
            (Some(local), Some(latest)) if local != latest && game.state == GameState::UpdateAvailable => {
                format!("{local} → {latest}")
            }
            (Some(local), _) => local.clone(),
            (None, Some(latest)) => latest.clone(),
            (None, None) => String::new(),
        };
        LibraryRow {
            key: RowKey::Game(game.id.clone()),
            name: game.name.clone(),
            state,
            tone,
            version,
            size: Some(game.size),
        }
    }

    // ---- write side ----

    /// Folds one runtime event into the state; returns the commands it calls for
    /// (a requested file list arriving starts its download).
    pub fn update(&mut self, event: PeerEvent) -> Vec<PeerCommand> {
        self.dirty = true;
        match event {
            PeerEvent::LibraryUpdated(snapshot) => self.set_snapshot(snapshot),
            PeerEvent::LocalLibraryChanged { ids } => {
                // The rescan after our own operation says what its Finished line said already.
                let names: Vec<&str> = ids
                    .iter()
                    .filter(|id| !self.just_ended.contains(*id))
                    .map(|id| self.name_of(id))
                    .collect();
                if names.is_empty() {
                    self.dirty = false;
                } else {
                    let text = format!("changed on disk: {}", names.join(", "));
                    self.push_log(Level::Info, text);
                }
                for id in &ids {
                    self.just_ended.remove(id);
                }
            }
            PeerEvent::PeerJoined { addr, peer_id, name } => {
                if !self.peers.iter().any(|row| row.summary.addr == addr) {
                    let summary = PeerSummary {
                        addr,
                        peer_id,
                        name: name.clone(),
                        game_count: 0,
                        latency: Duration::ZERO,
                        library_loaded: false,
                    };
                    self.peers.push(PeerRow {
                        summary,
                        since: (self.clock)(),
                        rate: None,
                    });
                }
                self.push_log(Level::Info, format!("peer {name} joined ({addr})"));
            }
            PeerEvent::PeerLeft { addr, name, .. } => {
                self.peers.retain(|row| row.summary.addr != addr);
                self.push_log(Level::Info, format!("peer {name} left ({addr})"));
            }
            // The peer list itself is the count; nothing to show.
            PeerEvent::PeerCount(_) => self.dirty = false,
            PeerEvent::GotGameFiles {
                id,
                version,
                files,
                peers,
            } => {
                let Some(fetch) = self.fetching.remove(&id) else {
                    self.dirty = false;
                    return Vec::new();
                };
                let total: u64 = files.iter().map(|file| file.size).sum();
                let text = format!(
                    "{} {version}: {} files, {}, on {} peer{}; starting the {}",
                    self.name_of(&id),
                    files.len(),
                    format_size(total),
                    peers.len(),
                    if peers.len() == 1 { "" } else { "s" },
                    fetch.label()
                );
                self.push_log(Level::Info, text);
                return vec![PeerCommand::DownloadGameFiles { id, files }];
            }
            PeerEvent::GameFilesUnavailable { id, reason } => {
                self.fetching.remove(&id);
                let text = format!("cannot download {}: {reason}", self.name_of(&id));
                self.report(Level::Error, text);
            }
            PeerEvent::DownloadGameFilesBegin {
                id,
                version,
                total_bytes,
                peers,
            } => {
                self.fetching.remove(&id);
                let text = format!(
                    "downloading {} {version} ({}) from {} peer{}",
                    self.name_of(&id),
                    format_size(total_bytes),
                    peers.len(),
                    if peers.len() == 1 { "" } else { "s" }
                );
                self.downloads.insert(
                    id,
                    DownloadInfo {
                        version: Some(version),
                        total_bytes: Some(total_bytes),
                        progress: None,
                    },
                );
                self.push_log(Level::Info, text);
            }
            PeerEvent::DownloadProgress(progress) => {
                // A sample can trail its download's end; it must not bring the transfer back.
                if !self.active.contains_key(&progress.id) {
                    self.dirty = false;
                    return Vec::new();
                }
                let info = self.downloads.entry(progress.id.clone()).or_insert(DownloadInfo {
                    version: None,
                    total_bytes: Some(progress.total_bytes),
                    progress: None,
                });
                info.progress = Some(progress);
            }
            PeerEvent::DownloadGameFilesFinished { id, version, summary } => {
                self.downloads.remove(&id);
                let seconds = summary.elapsed.as_secs_f64();
                let text = format!(
                    "downloaded {} {version}: {} in {} ({}) from {} peer{}",
                    self.name_of(&id),
                    format_size(summary.bytes),
                    format_duration(summary.elapsed),
                    format_rate(summary.bytes as f64 / seconds.max(1e-9)),
                    summary.peers_used.len(),
                    if summary.peers_used.len() == 1 { "" } else { "s" }
                );
                self.push_log(Level::Info, text);
            }
            PeerEvent::DownloadGameFilesFailed { id, reason } => {
                self.downloads.remove(&id);
                self.fetching.remove(&id);
                let text = format!("download of {} failed: {reason}", self.name_of(&id));
                self.report(Level::Error, text);
            }
            PeerEvent::DownloadGameFilesCancelled { id } => {
                self.downloads.remove(&id);
                let text = format!("download of {} cancelled; partial files removed", self.name_of(&id));
                self.push_log(Level::Info, text);
            }
            PeerEvent::DownloadPeersExcluded { id, peers } => {
                for (addr, why) in peers {
                    let text = format!("{}: left out {addr}: {why}", self.name_of(&id));
                    self.push_log(Level::Warn, text);
                }
            }
            PeerEvent::StreamInstallAttemptFailed { id, peer, reason } => {
                let text = format!(
                    "{}: streaming from {peer} failed: {reason}; trying another peer",
                    self.name_of(&id)
                );
                self.push_log(Level::Warn, text);
            }
            PeerEvent::InstallGameBegin { id } => {
                let how = match self.active.get(&id) {
                    Some(OperationKind::StreamInstall) => "stream-installing",
                    _ => "installing",
                };
                let text = format!("{how} {}", self.name_of(&id));
                self.push_log(Level::Info, text);
            }
            PeerEvent::InstallGameProgress { id, files, bytes } => {
                if !self.active.contains_key(&id) {
                    self.dirty = false;
                    return Vec::new();
                }
                self.installs.insert(id, InstallProgress { files, bytes });
            }
            PeerEvent::InstallGameFinished { id, updated } => {
                self.installs.remove(&id);
                let verb = if updated { "updated" } else { "installed" };
                let text = format!("{verb} {}", self.name_of(&id));
                self.push_log(Level::Info, text);
            }
            PeerEvent::InstallGameFailed { id, reason } => {
                self.installs.remove(&id);
                let text = format!("install of {} failed: {reason}", self.name_of(&id));
                self.report(Level::Error, text);
            }
            PeerEvent::UninstallGameBegin { id } => {
                let text = format!("uninstalling {}", self.name_of(&id));
                self.push_log(Level::Info, text);
            }
            PeerEvent::UninstallGameFinished { id } => {
                let text = format!("uninstalled {}", self.name_of(&id));
                self.push_log(Level::Info, text);
            }
            PeerEvent::UninstallGameFailed { id, reason } => {
                let text = format!("uninstall of {} failed: {reason}", self.name_of(&id));
                self.report(Level::Error, text);
            }
            PeerEvent::RemoveDownloadedGameBegin { id } => {
                let text = format!("removing the download of {}", self.name_of(&id));
                self.push_log(Level::Info, text);
            }
            PeerEvent::RemoveDownloadedGameFinished { id } => {
                let text = format!("removed the download of {}", self.name_of(&id));
                self.push_log(Level::Info, text);
            }
            PeerEvent::RemoveDownloadedGameFailed { id, reason } => {
                let text = format!("removing {} failed: {reason}", self.name_of(&id));
                self.report(Level::Error, text);
            }
            PeerEvent::ActiveOperations(operations) => self.set_active(operations),
            PeerEvent::OperationRefused { id, reason } => {
                self.fetching.remove(&id);
                self.report(Level::Warn, reason);
            }
            PeerEvent::RuntimeFailed { component, error } => {
                self.report(Level::Error, format!("{component} failed: {error}"));
            }
        }
        Vec::new()
    }

    /// Carries out what the user asked for; returns the commands to send.
    pub fn apply(&mut self, action: Action) -> Vec<PeerCommand> {
        self.dirty = true;
        // A message answers the last key; the next key replaces it.
        self.status = None;
        match action {
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(PAGE as isize)),
            Action::PageDown => self.move_selection(PAGE as isize),
            Action::Top => self.move_selection(isize::MIN),
            Action::Bottom => self.move_selection(isize::MAX),
            Action::NextPane => self.focus = self.focus.next(),
            Action::PrevPane => self.focus = self.focus.prev(),
            Action::Download => return self.download(),
            Action::StreamInstall => return self.stream_install(),
            Action::Update => return self.update_game(),
            Action::Install => return self.install(),
            Action::Uninstall => self.ask_uninstall(),
            Action::RemoveDownloaded => self.ask_remove(),
            Action::Cancel => return self.cancel(),
            Action::CycleSort => {
                self.sort = self.sort.next();
                self.say(Level::Info, format!("sorted by {}", self.sort.label()));
            }
            Action::StartFilter => {
                self.filtering = true;
                self.focus = Pane::Library;
            }
            Action::FilterInput(typed) => {
                if self.filtering {
                    self.filter.push(typed);
                }
            }
            Action::FilterBackspace => {
                self.filter.pop();
            }
            Action::FilterAccept => self.filtering = false,
            Action::FilterClear => {
                self.filtering = false;
                self.filter.clear();
            }
            Action::ToggleHelp => self.help = !self.help,
            Action::Confirm => {
                if let Some(dialog) = self.dialog.take() {
                    return self.confirmed(dialog.confirm);
                }
            }
            Action::Back => {
                if self.help {
                    self.help = false;
                } else if self.dialog.take().is_some() {
                    self.say(Level::Info, "nothing was changed".to_owned());
                } else if self.filtering || !self.filter.is_empty() {
                    self.filtering = false;
                    self.filter.clear();
                }
            }
            Action::Quit => self.ask_quit(),
        }
        Vec::new()
    }

    /// The latest free-space reading of the game dir's file system.
    pub fn set_free_space(&mut self, free: Option<u64>) {
        // Redraw only when the shown figure changes, not on every byte some other program writes.
        if free.map(format_size) != self.free_space.map(format_size) {
            self.dirty = true;
        }
        self.free_space = free;
    }

    /// Advances the spinner; called by the loop's tick while [`App::is_animating`].
    pub fn tick(&mut self) {
        self.spinner = self.spinner.wrapping_add(1);
        self.dirty = true;
    }

    /// The runtime's event channel closed: nothing will change any more.
    pub fn runtime_stopped(&mut self) {
        if !self.runtime_stopped {
            self.runtime_stopped = true;
            self.dirty = true;
            self.active.clear();
            self.fetching.clear();
            self.downloads.clear();
            self.installs.clear();
            let text = "the peer runtime stopped (see the log file); press q to quit".to_owned();
            self.report(Level::Error, text);
        }
    }

    /// A command could not be handed to the runtime.
    pub fn command_not_sent(&mut self, command: &PeerCommand, why: &str) {
        self.dirty = true;
        if let PeerCommand::GetGame { id } | PeerCommand::FetchLatestFromPeers { id } = command {
            self.fetching.remove(id);
        }
        self.report(Level::Error, format!("could not ask the runtime: {why}; try again"));
    }

    fn set_snapshot(&mut self, snapshot: LibrarySnapshot) {
        if !snapshot.game_dir.as_os_str().is_empty() {
            self.game_dir = snapshot.game_dir.clone();
        }
        let since: BTreeMap<SocketAddr, String> = self
            .peers
            .iter()
            .map(|row| (row.summary.addr, row.since.clone()))
            .collect();
        self.peers = snapshot
            .peers
            .iter()
            .map(|summary| PeerRow {
                summary: summary.clone(),
                since: since.get(&summary.addr).cloned().unwrap_or_else(|| (self.clock)()),
                rate: None,
            })
            .collect();
        self.snapshot = snapshot;
    }

    fn set_active(&mut self, operations: Vec<ActiveOperation>) {
        let previous = std::mem::replace(
            &mut self.active,
            operations
                .into_iter()
                .map(|operation| (operation.id, operation.kind))
                .collect(),
        );
        self.just_ended
            .extend(previous.into_keys().filter(|id| !self.active.contains_key(id)));
        let active = &self.active;
        self.downloads.retain(|id, _| active.contains_key(id));
        self.installs.retain(|id, _| active.contains_key(id));
        for id in self.active.keys() {
            self.fetching.remove(id);
        }
    }

    fn push_log(&mut self, level: Level, text: String) {
        self.log.push_back(LogLine {
            time: (self.clock)(),
            level,
            text,
        });
        if self.log.len() > LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log_total += 1;
        if self.log_scroll > 0 {
            // Keep the lines the user scrolled to in view.
            self.log_scroll += 1;
        }
    }

    /// Status line only: the answer to a key.
    fn say(&mut self, level: Level, text: String) {
        self.status = Some(StatusMessage { level, text });
    }

    /// Status line and log: something the runtime reported.
    fn report(&mut self, level: Level, text: String) {
        self.push_log(level, text.clone());
        self.say(level, text);
    }

    fn move_selection(&mut self, delta: isize) {
        match self.focus {
            Pane::Library => {
                let keys = self.library_keys();
                self.library_selection.move_by(&keys, delta);
            }
            Pane::Peers => {
                let keys: Vec<SocketAddr> = self.peer_rows().iter().map(|row| row.summary.addr).collect();
                self.peer_selection.move_by(&keys, delta);
            }
            Pane::Transfers => {
                let keys: Vec<String> = self.transfer_rows().into_iter().map(|row| row.id).collect();
                self.transfer_selection.move_by(&keys, delta);
            }
            Pane::Log => {
                // Up (a negative delta) scrolls back in time.
                let scroll = if delta < 0 {
                    self.log_scroll.saturating_add(delta.unsigned_abs())
                } else {
                    self.log_scroll.saturating_sub(delta.unsigned_abs())
                };
                self.log_scroll = scroll.min(self.log.len().saturating_sub(1));
            }
        }
    }

    /// The game a game action applies to: the selected transfer's game while the
    /// transfers pane has the focus, the selected library row otherwise.
    fn target(&self) -> Option<Target<'_>> {
        if self.focus == Pane::Transfers {
            let rows = self.transfer_rows();
            if let Some(index) = self.selected_transfer_index() {
                return self.snapshot.game(&rows[index].id).map(Target::Game);
            }
        }
        let keys = self.library_keys();
        let index = self.library_selection.resolve(&keys)?;
        match &keys[index] {
            RowKey::Game(id) => self.snapshot.game(id).map(Target::Game),
            RowKey::Folder(folder) => self
                .snapshot
                .uncatalogued
                .iter()
                .find(|name| *name == folder)
                .map(|name| Target::Folder(name.as_str())),
        }
    }

    /// The selected catalog game, or a status message saying why there is none.
    fn target_game(&mut self) -> Option<LibraryEntry> {
        match self.target() {
            Some(Target::Game(game)) => Some(game.clone()),
            Some(Target::Folder(folder)) => {
                let text = format!(
                    "{folder} is not in the catalog, so lanspread neither shares nor manages it \
                     (add it with --catalog)"
                );
                self.say(Level::Warn, text);
                None
            }
            None => {
                let text = if self.snapshot.games.is_empty() {
                    "no games yet: games appear here as peers are found".to_owned()
                } else {
                    "no game selected".to_owned()
                };
                self.say(Level::Warn, text);
                None
            }
        }
    }

    fn busy_reason(&self, game: &LibraryEntry) -> Option<String> {
        let name = &game.name;
        if let Some(kind) = self.active.get(&game.id) {
            let hint = if kind.is_cancellable() {
                " (press c to cancel it)"
            } else {
                ""
            };
            return Some(format!("{name} is busy: its {} is running{hint}", kind.label()));
        }
        self.fetching.get(&game.id).map(|fetch| {
            format!(
                "{name} is busy: its {} is asking peers for the file list",
                fetch.label()
            )
        })
    }

    /// Refuses (with a status message) when `game` is busy.
    fn refuse_if_busy(&mut self, game: &LibraryEntry) -> bool {
        match self.busy_reason(game) {
            Some(reason) => {
                self.say(Level::Warn, reason);
                true
            }
            None => false,
        }
    }

    fn download(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        if self.refuse_if_busy(&game) {
            return Vec::new();
        }
        let name = &game.name;
        let refusal = match game.state {
            GameState::RemoteOnly => return self.fetch(&game, Fetch::Download),
            GameState::UpdateAvailable => format!(
                "{name} is already downloaded; a newer version ({}) is available: press u to update",
                game.latest_version.as_deref().unwrap_or("?")
            ),
            GameState::Downloaded => format!("{name} is already downloaded (not installed)"),
            GameState::Installed => format!("{name} is already downloaded and installed"),
        };
        self.say(Level::Warn, refusal);
        Vec::new()
    }

    fn update_game(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        if self.refuse_if_busy(&game) {
            return Vec::new();
        }
        let name = &game.name;
        let refusal = match game.state {
            GameState::UpdateAvailable => return self.fetch(&game, Fetch::Update),
            GameState::RemoteOnly => format!("{name} is not downloaded: press d to download it first"),
            GameState::Downloaded | GameState::Installed => format!(
                "{name} is up to date (version {})",
                game.local_version.as_deref().unwrap_or("?")
            ),
        };
        self.say(Level::Warn, refusal);
        Vec::new()
    }

    /// Asks for the file list; its arrival ([`PeerEvent::GotGameFiles`]) starts the download.
    fn fetch(&mut self, game: &LibraryEntry, fetch: Fetch) -> Vec<PeerCommand> {
        let name = &game.name;
        if game.peers.is_empty() {
            self.say(Level::Warn, format!("no peer shares {name} right now"));
            return Vec::new();
        }
        let archives = latest_size(game);
        if let Some(free) = self.free_space.filter(|free| archives > *free) {
            let text = format!(
                "not enough space for {name}: its archives need {}, {} free on {}",
                format_size(archives),
                format_size(free),
                self.game_dir.display()
            );
            self.say(Level::Error, text);
            return Vec::new();
        }
        self.fetching.insert(game.id.clone(), fetch);
        self.push_log(Level::Info, format!("{name}: asking peers for the file list"));
        let id = game.id.clone();
        vec![match fetch {
            Fetch::Download => PeerCommand::GetGame { id },
            Fetch::Update => PeerCommand::FetchLatestFromPeers { id },
        }]
    }

    fn stream_install(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        if self.refuse_if_busy(&game) {
            return Vec::new();
        }
        let name = &game.name;
        let refusal = match game.state {
            GameState::Installed => format!("{name} is already installed"),
            GameState::Downloaded => format!("{name} is already downloaded: press i to install it from its archives"),
            GameState::RemoteOnly | GameState::UpdateAvailable if game.peers.is_empty() => {
                format!("no peer shares {name} right now")
            }
            GameState::RemoteOnly | GameState::UpdateAvailable => {
                let install = latest_size(&game).saturating_mul(INSTALL_SIZE_FACTOR);
                match self.free_space.filter(|free| install > *free) {
                    Some(free) => format!(
                        "not enough space for {name}: even a streamed install needs ~{}, {} free on {}",
                        format_size(install),
                        format_size(free),
                        self.game_dir.display()
                    ),
                    None => {
                        self.push_log(Level::Info, format!("{name}: asking a peer to stream its install"));
                        return vec![PeerCommand::StreamInstallGame { id: game.id.clone() }];
                    }
                }
            }
        };
        self.say(Level::Warn, refusal);
        Vec::new()
    }

    fn install(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        if self.refuse_if_busy(&game) {
            return Vec::new();
        }
        let name = &game.name;
        if game.local_version.is_none() {
            let text =
                format!("{name} is not downloaded: press d to download it (it installs itself) or s to stream it");
            self.say(Level::Warn, text);
            return Vec::new();
        }
        if game.installed {
            // Unpacking again replaces local/, and whatever was changed in it.
            self.dialog = Some(Dialog {
                title: format!("Reinstall {name}?"),
                message: format!(
                    "This unpacks the downloaded archives of {name} again and replaces its installed files ({}).",
                    self.game_dir.join(&game.id).join("local").display()
                ),
                confirm: Confirmed::Install(game.id.clone()),
            });
            return Vec::new();
        }
        vec![PeerCommand::InstallGame { id: game.id.clone() }]
    }

    fn ask_uninstall(&mut self) {
        let Some(game) = self.target_game() else {
            return;
        };
        if self.refuse_if_busy(&game) {
            return;
        }
        let name = &game.name;
        if !game.installed {
            self.say(Level::Warn, format!("{name} is not installed"));
            return;
        }
        self.dialog = Some(Dialog {
            title: format!("Uninstall {name}?"),
            message: format!(
                "This deletes the installed files of {name} ({}). The downloaded archives stay.",
                self.game_dir.join(&game.id).join("local").display()
            ),
            confirm: Confirmed::Uninstall(game.id.clone()),
        });
    }

    fn ask_remove(&mut self) {
        let Some(game) = self.target_game() else {
            return;
        };
        if self.refuse_if_busy(&game) {
            return;
        }
        let name = &game.name;
        if game.local_version.is_none() {
            self.say(Level::Warn, format!("{name} is not downloaded here: nothing to remove"));
            return;
        }
        if game.installed {
            self.say(
                Level::Warn,
                format!("{name} is installed: press x to uninstall it first"),
            );
            return;
        }
        self.dialog = Some(Dialog {
            title: format!("Remove the download of {name}?"),
            message: format!(
                "This deletes {} ({}). Peers that have {name} can send it again later.",
                self.game_dir.join(&game.id).display(),
                format_size(game.size)
            ),
            confirm: Confirmed::RemoveDownloaded(game.id.clone()),
        });
    }

    fn cancel(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        let name = &game.name;
        match self.active.get(&game.id) {
            Some(kind) if kind.is_cancellable() => {
                self.say(Level::Info, format!("cancelling the {} of {name}", kind.label()));
                return vec![PeerCommand::CancelDownload { id: game.id.clone() }];
            }
            Some(kind) => {
                let text = format!(
                    "the {} of {name} cannot be cancelled; it finishes on its own",
                    kind.label()
                );
                self.say(Level::Warn, text);
                return Vec::new();
            }
            None => {}
        }
        if let Some(fetch) = self.fetching.remove(&game.id) {
            // The answer will be ignored, so nothing starts.
            let text = format!("{name}: {} cancelled before it started", fetch.label());
            self.push_log(Level::Info, text.clone());
            self.say(Level::Info, text);
        } else {
            self.say(
                Level::Warn,
                format!("nothing to cancel: no download or install of {name} is running"),
            );
        }
        Vec::new()
    }

    fn ask_quit(&mut self) {
        if matches!(&self.dialog, Some(dialog) if dialog.confirm == Confirmed::Quit) {
            // Quit pressed again in the quit dialog: that is a yes.
            self.quit = true;
            return;
        }
        let running: Vec<String> = self
            .transfer_rows()
            .iter()
            .map(|row| {
                let percent = row
                    .progress
                    .as_ref()
                    .map(|progress| format!(" {:.0}%", progress.fraction() * 100.0))
                    .unwrap_or_default();
                format!("{} of {}{percent}", row.label, row.name)
            })
            .collect();
        if running.is_empty() || self.runtime_stopped {
            self.quit = true;
            return;
        }
        self.dialog = Some(Dialog {
            title: "Quit lanspread?".to_owned(),
            message: format!(
                "Still running: {}. Quitting stops it; unfinished work is cleaned up.",
                running.join(", ")
            ),
            confirm: Confirmed::Quit,
        });
    }

    fn confirmed(&mut self, confirm: Confirmed) -> Vec<PeerCommand> {
        match confirm {
            Confirmed::Install(id) => vec![PeerCommand::InstallGame { id }],
            Confirmed::Uninstall(id) => vec![PeerCommand::UninstallGame { id }],
            Confirmed::RemoveDownloaded(id) => vec![PeerCommand::RemoveDownloadedGame { id }],
            Confirmed::Quit => {
                self.quit = true;
                Vec::new()
            }
        }
    }
}

/// What a running operation is doing, as a library state.
fn busy_verb(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Download => "downloading",
        OperationKind::Install => "installing",
        OperationKind::StreamInstall => "stream-installing",
        OperationKind::Uninstall => "uninstalling",
        OperationKind::RemoveDownloaded => "removing",
    }
}

/// Bytes of the newest version's archives: what a download would fetch.
pub fn latest_size(game: &LibraryEntry) -> u64 {
    game.latest_version
        .as_ref()
        .and_then(|latest| game.peers.iter().find(|peer| &peer.version == latest))
        .map_or(game.size, |peer| peer.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::DownloadSummary;
    use crate::ui::test_support::*;

    fn status_text(app: &App) -> String {
        app.status().map(|status| status.text.clone()).unwrap_or_default()
    }

    fn state_of(app: &App, name: &str) -> String {
        let rows = app.library_rows();
        rows.iter()
            .find(|row| row.name == name)
            .map(|row| row.state.clone())
            .unwrap_or_else(|| panic!("{name} not shown"))
    }

    #[test]
    fn peers_joining_and_a_snapshot_fill_the_peer_list_and_library() {
        let mut app = app();
        app.update(PeerEvent::PeerJoined {
            addr: addr(1),
            peer_id: "id-alice".into(),
            name: "alice".into(),
        });
        assert_eq!(app.peer_count(), 1);
        assert_eq!(app.peer_rows()[0].summary.name, "alice");
        assert_eq!(app.peer_rows()[0].since, "12:00:00");
        assert_eq!(app.log_lines()[0].text, format!("peer alice joined ({})", addr(1)));
        assert_eq!(app.log_lines()[0].time, "12:00:00");

        app.update(PeerEvent::LibraryUpdated(snapshot()));
        assert_eq!(app.peer_count(), 2);
        let names: Vec<String> = app.library_rows().into_iter().map(|row| row.name).collect();
        assert_eq!(names, ["OpenArena", "Quake", "Warsow", "Xonotic", "mystuff"]);
        assert_eq!(state_of(&app, "Xonotic"), "on 2 peers");
        assert_eq!(state_of(&app, "OpenArena"), "installed");
        assert_eq!(state_of(&app, "Warsow"), "update available");
        assert_eq!(state_of(&app, "mystuff"), "not shared (not in catalog)");
        assert_eq!(app.library_rows()[2].version, "2.0 → 2.1");

        app.update(PeerEvent::PeerLeft {
            addr: addr(2),
            peer_id: "id-bob".into(),
            name: "bob".into(),
        });
        assert_eq!(app.peer_count(), 1);
        assert!(app.log_lines().back().unwrap().text.starts_with("peer bob left"));
    }

    #[test]
    fn download_asks_for_the_file_list_then_downloads_those_files() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        let commands = app.apply(Action::Download);
        assert!(
            matches!(commands.as_slice(), [PeerCommand::GetGame { id }] if id == "xonotic"),
            "{commands:?}"
        );
        assert_eq!(state_of(&app, "Xonotic"), "asking peers...");
        assert_eq!(app.transfer_rows().len(), 1);
        assert!(app.is_animating());

        // A second press while waiting is refused, not sent twice.
        assert!(app.apply(Action::Download).is_empty());
        assert!(status_text(&app).contains("busy"), "{}", status_text(&app));

        let commands = app.update(PeerEvent::GotGameFiles {
            id: "xonotic".into(),
            version: "0.8.6".into(),
            files: files(),
            peers: vec![addr(1), addr(2)],
        });
        match commands.as_slice() {
            [PeerCommand::DownloadGameFiles { id, files: sent }] => {
                assert_eq!(id, "xonotic");
                assert_eq!(sent, &files());
            }
            other => panic!("expected DownloadGameFiles, got {other:?}"),
        }
        // A file list nobody here asked for starts nothing.
        let unasked = app.update(PeerEvent::GotGameFiles {
            id: "quake".into(),
            version: "1.09".into(),
            files: files(),
            peers: vec![addr(1)],
        });
        assert!(unasked.is_empty());
    }

    #[test]
    fn update_fetches_the_latest_file_list() {
        let mut app = app_with_library();
        select(&mut app, "Warsow");
        let commands = app.apply(Action::Update);
        assert!(matches!(commands.as_slice(), [PeerCommand::FetchLatestFromPeers { id }] if id == "warsow"));
        let commands = app.update(PeerEvent::GotGameFiles {
            id: "warsow".into(),
            version: "2.1".into(),
            files: files(),
            peers: vec![addr(1)],
        });
        assert!(matches!(commands.as_slice(), [PeerCommand::DownloadGameFiles { id, .. }] if id == "warsow"));
    }

    #[test]
    fn download_events_give_progress_then_a_finished_game() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        app.apply(Action::Download);
        app.update(active("xonotic", OperationKind::Download));
        app.update(PeerEvent::DownloadGameFilesBegin {
            id: "xonotic".into(),
            version: "0.8.6".into(),
            total_bytes: 4 * GIB,
            peers: vec![addr(1), addr(2)],
        });
        assert_eq!(state_of(&app, "Xonotic"), "downloading");
        app.update(PeerEvent::DownloadProgress(progress("xonotic", GIB, 4 * GIB)));
        assert_eq!(state_of(&app, "Xonotic"), "downloading 25%");
        let transfers = app.transfer_rows();
        assert_eq!(transfers.len(), 1);
        assert_eq!(transfers[0].label, "download");
        assert_eq!(transfers[0].version.as_deref(), Some("0.8.6"));
        assert_eq!(transfers[0].progress.as_ref().unwrap().bytes_done, GIB);
        assert!(!app.is_animating(), "a download with samples needs no tick");
        let rates: Vec<Option<f64>> = app.peer_rows().iter().map(|row| row.rate).collect();
        assert_eq!(rates, [Some(30e6), Some(20e6)]);

        app.update(PeerEvent::DownloadGameFilesFinished {
            id: "xonotic".into(),
            version: "0.8.6".into(),
            summary: DownloadSummary {
                bytes: 4 * GIB,
                elapsed: Duration::from_secs(20),
                peers_used: vec![addr(1), addr(2)],
            },
        });
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        assert!(app.transfer_rows().is_empty());
        assert_eq!(state_of(&app, "Xonotic"), "on 2 peers");
        let last = &app.log_lines().back().unwrap().text;
        assert!(last.starts_with("downloaded Xonotic 0.8.6: 4.0 GiB in 20s"), "{last}");

        // A sample trailing the end does not bring the transfer back.
        app.update(PeerEvent::DownloadProgress(progress("xonotic", 4 * GIB, 4 * GIB)));
        assert!(app.transfer_rows().is_empty());
    }

    #[test]
    fn a_failed_download_says_why_in_the_status_line_and_the_log() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        app.apply(Action::Download);
        app.update(active("xonotic", OperationKind::Download));
        app.update(PeerEvent::DownloadGameFilesFailed {
            id: "xonotic".into(),
            reason: "every peer failed".into(),
        });
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        let status = app.status().unwrap();
        assert_eq!(status.level, Level::Error);
        assert_eq!(status.text, "download of Xonotic failed: every peer failed");
        assert_eq!(app.log_lines().back().unwrap().level, Level::Error);
        assert!(app.transfer_rows().is_empty());
        // Nothing is stuck: the game can be downloaded again.
        assert_eq!(app.apply(Action::Download).len(), 1);
    }

    #[test]
    fn refused_actions_say_why_and_send_nothing() {
        let mut app = app_with_library();
        let mut refused = |name: &str, action: Action, expected: &str| {
            select(&mut app, name);
            let commands = app.apply(action);
            assert!(commands.is_empty(), "{action:?} on {name} sent {commands:?}");
            assert_eq!(status_text(&app), expected, "{action:?} on {name}");
        };
        refused(
            "Xonotic",
            Action::Update,
            "Xonotic is not downloaded: press d to download it first",
        );
        refused(
            "Xonotic",
            Action::Install,
            "Xonotic is not downloaded: press d to download it (it installs itself) or s to stream it",
        );
        refused(
            "Quake",
            Action::StreamInstall,
            "Quake is already downloaded: press i to install it from its archives",
        );
        refused("OpenArena", Action::StreamInstall, "OpenArena is already installed");
        refused("Xonotic", Action::Uninstall, "Xonotic is not installed");
        refused(
            "Xonotic",
            Action::RemoveDownloaded,
            "Xonotic is not downloaded here: nothing to remove",
        );
        refused(
            "Xonotic",
            Action::Cancel,
            "nothing to cancel: no download or install of Xonotic is running",
        );
        refused(
            "OpenArena",
            Action::Download,
            "OpenArena is already downloaded and installed",
        );
        refused(
            "OpenArena",
            Action::RemoveDownloaded,
            "OpenArena is installed: press x to uninstall it first",
        );
        refused("Quake", Action::Update, "Quake is up to date (version 1.09)");
        refused(
            "Warsow",
            Action::Download,
            "Warsow is already downloaded; a newer version (2.1) is available: press u to update",
        );
        refused(
            "mystuff",
            Action::Download,
            "mystuff is not in the catalog, so lanspread neither shares nor manages it (add it with --catalog)",
        );
    }

    #[test]
    fn actions_on_a_busy_game_are_refused() {
        let mut app = app_with_library();
        app.update(active("openarena", OperationKind::Uninstall));
        select(&mut app, "OpenArena");
        assert!(app.apply(Action::Uninstall).is_empty());
        assert_eq!(status_text(&app), "OpenArena is busy: its uninstall is running");
        assert!(app.apply(Action::Cancel).is_empty());
        assert_eq!(
            status_text(&app),
            "the uninstall of OpenArena cannot be cancelled; it finishes on its own"
        );
        assert_eq!(state_of(&app, "OpenArena"), "uninstalling");
        assert!(app.is_animating());
    }

    #[test]
    fn cancel_sends_cancel_download_for_a_running_download() {
        let mut app = app_with_library();
        app.update(active("xonotic", OperationKind::Download));
        select(&mut app, "Xonotic");
        let commands = app.apply(Action::Cancel);
        assert!(matches!(commands.as_slice(), [PeerCommand::CancelDownload { id }] if id == "xonotic"));
        // From the transfers pane the selected transfer is the target, whatever the library cursor says.
        select(&mut app, "Quake");
        app.apply(Action::NextPane);
        app.apply(Action::NextPane);
        assert_eq!(app.focus(), Pane::Transfers);
        let commands = app.apply(Action::Cancel);
        assert!(matches!(commands.as_slice(), [PeerCommand::CancelDownload { id }] if id == "xonotic"));
    }

    #[test]
    fn destructive_actions_ask_for_confirmation_first() {
        let mut app = app_with_library();
        select(&mut app, "OpenArena");
        assert!(
            app.apply(Action::Uninstall).is_empty(),
            "nothing is sent before the answer"
        );
        assert_eq!(app.dialog().unwrap().title, "Uninstall OpenArena?");
        assert_eq!(app.input_mode(), InputMode::Dialog);
        let commands = app.apply(Action::Confirm);
        assert!(matches!(commands.as_slice(), [PeerCommand::UninstallGame { id }] if id == "openarena"));
        assert!(app.dialog().is_none());

        select(&mut app, "Quake");
        assert!(app.apply(Action::RemoveDownloaded).is_empty());
        assert_eq!(app.dialog().unwrap().title, "Remove the download of Quake?");
        assert!(app.apply(Action::Back).is_empty(), "no keeps it");
        assert!(app.dialog().is_none());
        assert!(app.apply(Action::Confirm).is_empty(), "a stale yes does nothing");

        app.apply(Action::RemoveDownloaded);
        let commands = app.apply(Action::Confirm);
        assert!(matches!(commands.as_slice(), [PeerCommand::RemoveDownloadedGame { id }] if id == "quake"));
    }

    #[test]
    fn quit_asks_only_while_something_runs() {
        let mut app = app_with_library();
        app.apply(Action::Quit);
        assert!(app.should_quit());

        let mut app = app_with_library();
        app.update(active("xonotic", OperationKind::Download));
        app.update(PeerEvent::DownloadProgress(progress("xonotic", GIB, 4 * GIB)));
        app.apply(Action::Quit);
        assert!(!app.should_quit());
        let dialog = app.dialog().unwrap();
        assert!(dialog.message.contains("download of Xonotic 25%"), "{}", dialog.message);
        app.apply(Action::Back);
        assert!(!app.should_quit());
        app.apply(Action::Quit);
        // Ctrl-C / q again in the dialog means yes.
        app.apply(Action::Quit);
        assert!(app.should_quit());
    }

    #[test]
    fn filter_and_sort_change_the_rows_and_the_cursor_follows_its_game() {
        let mut app = app_with_library();
        select(&mut app, "Quake");
        app.apply(Action::StartFilter);
        assert_eq!(app.input_mode(), InputMode::Filter);
        for typed in "XO".chars() {
            app.apply(Action::FilterInput(typed));
        }
        let names: Vec<String> = app.library_rows().into_iter().map(|row| row.name).collect();
        assert_eq!(names, ["Xonotic"]);
        app.apply(Action::FilterBackspace);
        assert_eq!(app.filter(), "X");
        app.apply(Action::FilterAccept);
        assert_eq!(app.input_mode(), InputMode::Normal);
        assert_eq!(app.filter(), "X");
        app.apply(Action::Back);
        assert_eq!(app.filter(), "");
        assert_eq!(app.library_rows()[app.selected_library_index().unwrap()].name, "Quake");

        app.apply(Action::CycleSort);
        assert_eq!(app.sort(), SortKey::State);
        let names: Vec<String> = app.library_rows().into_iter().map(|row| row.name).collect();
        assert_eq!(names, ["Warsow", "OpenArena", "Quake", "Xonotic", "mystuff"]);
        assert_eq!(app.library_rows()[app.selected_library_index().unwrap()].name, "Quake");
        app.apply(Action::CycleSort);
        let names: Vec<String> = app.library_rows().into_iter().map(|row| row.name).collect();
        assert_eq!(names, ["Xonotic", "Warsow", "OpenArena", "Quake", "mystuff"]);
    }

    #[test]
    fn the_cursor_stays_on_its_game_when_a_snapshot_reorders_rows() {
        let mut app = app_with_library();
        select(&mut app, "Quake");
        let mut next = snapshot();
        next.games.insert(
            0,
            game("alien", "Alien Arena", GameState::RemoteOnly, None, Some("7"), GIB),
        );
        app.update(PeerEvent::LibraryUpdated(next));
        assert_eq!(app.library_rows()[app.selected_library_index().unwrap()].name, "Quake");
        // The selected game vanishing leaves the cursor at the same position.
        let mut gone = snapshot();
        gone.games.retain(|game| game.id != "quake");
        app.update(PeerEvent::LibraryUpdated(gone));
        assert_eq!(app.selected_library_index(), Some(1));
    }

    #[test]
    fn too_little_space_warns_and_offers_a_streamed_install() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        app.set_free_space(Some(100 * GIB));
        assert_eq!(app.space_warning(), None);
        app.set_free_space(Some(7 * GIB));
        let warning = app.space_warning().unwrap();
        assert_eq!(
            warning,
            "Xonotic needs ~9.0 GiB (3.0 GiB archives + ~6.0 GiB installed), 7.0 GiB free: \
             press s for a streamed install (~6.0 GiB)"
        );
        app.set_free_space(Some(5 * GIB));
        assert_eq!(
            app.space_warning().unwrap(),
            "Xonotic needs ~6.0 GiB even as a streamed install; only 5.0 GiB free"
        );
        app.set_free_space(Some(GIB));
        assert!(app.apply(Action::Download).is_empty());
        assert_eq!(
            status_text(&app),
            "not enough space for Xonotic: its archives need 3.0 GiB, 1.0 GiB free on /games"
        );
        select(&mut app, "OpenArena");
        assert_eq!(app.space_warning(), None, "an installed game needs no space");
    }

    #[test]
    fn install_and_streamed_install_map_to_their_commands() {
        let mut app = app_with_library();
        select(&mut app, "Quake");
        let commands = app.apply(Action::Install);
        assert!(matches!(commands.as_slice(), [PeerCommand::InstallGame { id }] if id == "quake"));

        select(&mut app, "Xonotic");
        let commands = app.apply(Action::StreamInstall);
        assert!(matches!(commands.as_slice(), [PeerCommand::StreamInstallGame { id }] if id == "xonotic"));

        // Reinstalling replaces local/, so it asks first.
        select(&mut app, "OpenArena");
        assert!(app.apply(Action::Install).is_empty());
        assert_eq!(app.dialog().unwrap().title, "Reinstall OpenArena?");
        let commands = app.apply(Action::Confirm);
        assert!(matches!(commands.as_slice(), [PeerCommand::InstallGame { id }] if id == "openarena"));
    }

    #[test]
    fn a_streamed_install_that_cannot_fit_is_refused() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        app.set_free_space(Some(5 * GIB));
        assert!(app.apply(Action::StreamInstall).is_empty());
        assert_eq!(
            status_text(&app),
            "not enough space for Xonotic: even a streamed install needs ~6.0 GiB, 5.0 GiB free on /games"
        );
        app.set_free_space(Some(7 * GIB));
        assert_eq!(app.apply(Action::StreamInstall).len(), 1, "fits as a streamed install");
    }

    #[test]
    fn install_events_show_files_and_bytes_written_then_the_result() {
        let mut app = app_with_library();
        app.update(active("quake", OperationKind::Install));
        app.update(PeerEvent::InstallGameBegin { id: "quake".into() });
        assert_eq!(state_of(&app, "Quake"), "installing");
        assert_eq!(app.transfer_rows()[0].activity, "installing");
        app.update(PeerEvent::InstallGameProgress {
            id: "quake".into(),
            files: 12,
            bytes: GIB,
        });
        let row = &app.transfer_rows()[0];
        assert_eq!(row.label, "install");
        assert_eq!(row.activity, "unpacked 12 files, 1.0 GiB");
        // Installs are cancellable through CancelDownload.
        select(&mut app, "Quake");
        let commands = app.apply(Action::Cancel);
        assert!(matches!(commands.as_slice(), [PeerCommand::CancelDownload { id }] if id == "quake"));
        app.update(PeerEvent::InstallGameFinished {
            id: "quake".into(),
            updated: false,
        });
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        assert!(app.transfer_rows().is_empty());
        let lines: Vec<&str> = app.log_lines().iter().map(|line| line.text.as_str()).collect();
        assert_eq!(lines, ["installing Quake", "installed Quake"]);

        app.update(active("xonotic", OperationKind::StreamInstall));
        app.update(PeerEvent::InstallGameBegin { id: "xonotic".into() });
        app.update(PeerEvent::StreamInstallAttemptFailed {
            id: "xonotic".into(),
            peer: addr(1),
            reason: "connection lost".into(),
        });
        app.update(PeerEvent::InstallGameProgress {
            id: "xonotic".into(),
            files: 3,
            bytes: 2048,
        });
        assert_eq!(app.transfer_rows()[0].activity, "received 3 files, 2.0 KiB");
        app.update(PeerEvent::InstallGameFailed {
            id: "xonotic".into(),
            reason: "no peer could stream it".into(),
        });
        assert_eq!(status_text(&app), "install of Xonotic failed: no peer could stream it");
        let lines: Vec<&str> = app.log_lines().iter().skip(2).map(|line| line.text.as_str()).collect();
        assert_eq!(
            lines,
            [
                "stream-installing Xonotic",
                "Xonotic: streaming from 10.0.0.2:1 failed: connection lost; trying another peer",
                "install of Xonotic failed: no peer could stream it",
            ]
        );
    }

    #[test]
    fn on_disk_changes_are_logged_unless_they_are_our_own_operations() {
        let mut app = app_with_library();
        app.update(active("quake", OperationKind::Install));
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        app.update(PeerEvent::LocalLibraryChanged {
            ids: vec!["quake".into()],
        });
        assert!(app.log_lines().is_empty(), "{:?}", app.log_lines());
        app.update(PeerEvent::LocalLibraryChanged {
            ids: vec!["quake".into(), "openarena".into()],
        });
        let lines: Vec<&str> = app.log_lines().iter().map(|line| line.text.as_str()).collect();
        assert_eq!(lines, ["changed on disk: Quake, OpenArena"]);
    }

    #[test]
    fn only_visible_changes_mark_the_screen_dirty() {
        let mut app = app_with_library();
        assert!(app.take_dirty());
        assert!(!app.take_dirty());
        app.update(PeerEvent::PeerCount(2));
        assert!(!app.take_dirty(), "the peer count is already shown");
        app.set_free_space(Some(10 * GIB));
        assert!(app.take_dirty());
        app.set_free_space(Some(10 * GIB + 1));
        assert!(!app.take_dirty(), "the same figure on screen");
        app.update(PeerEvent::DownloadProgress(progress("nothing-running", 1, 2)));
        assert!(!app.take_dirty());
        app.update(PeerEvent::UninstallGameBegin { id: "openarena".into() });
        assert!(app.take_dirty());
    }

    #[test]
    fn runtime_failures_and_refusals_reach_the_status_line() {
        let mut app = app_with_library();
        app.update(PeerEvent::RuntimeFailed {
            component: "discovery",
            error: "no multicast".into(),
        });
        assert_eq!(status_text(&app), "discovery failed: no multicast");
        select(&mut app, "Xonotic");
        app.apply(Action::Download);
        app.update(PeerEvent::OperationRefused {
            id: "xonotic".into(),
            reason: "xonotic is busy: a removal is already running".into(),
        });
        assert_eq!(status_text(&app), "xonotic is busy: a removal is already running");
        assert!(app.transfer_rows().is_empty(), "the refused request no longer waits");
        app.update(PeerEvent::GameFilesUnavailable {
            id: "xonotic".into(),
            reason: "no peer answered".into(),
        });
        assert_eq!(status_text(&app), "cannot download Xonotic: no peer answered");
    }

    #[test]
    fn the_log_scrolls_and_keeps_its_place_as_lines_arrive() {
        let mut app = app();
        for index in 0..30 {
            app.update(PeerEvent::UninstallGameBegin {
                id: format!("g{index}"),
            });
        }
        app.apply(Action::PrevPane);
        assert_eq!(app.focus(), Pane::Log);
        app.apply(Action::Up);
        app.apply(Action::Up);
        assert_eq!(app.log_scroll(), 2);
        app.update(PeerEvent::UninstallGameBegin { id: "new".into() });
        assert_eq!(app.log_scroll(), 3);
        app.apply(Action::Bottom);
        assert_eq!(app.log_scroll(), 0);
        app.apply(Action::Top);
        assert_eq!(app.log_scroll(), 30);
        assert_eq!(app.log_lines_since(29).count(), 2);
        for _ in 0..LOG_CAPACITY {
            app.update(PeerEvent::UninstallGameBegin { id: "more".into() });
        }
        assert_eq!(app.log_lines().len(), LOG_CAPACITY);
        assert_eq!(app.log_lines_since(0).count(), LOG_CAPACITY);
    }
}
