//! `App`: everything the TUI shows, as plain data. [`App::update`] folds a
//! [`PeerEvent`] in, [`App::apply`] carries out an [`Action`]; both return the
//! [`PeerCommand`]s to send and do no I/O, so the whole behaviour is unit-tested
//! without a terminal or a runtime. Rendering reads `&App` and nothing else.
//!
//! This file holds the state and the two entry points; the jobs behind them
//! live beside it: `rows` turns the state into the rows the panes draw,
//! `actions` carries out the user's game actions, `selection` keeps each
//! pane's cursor.
//!
//! Invariants: what runs is what the last [`PeerEvent::ActiveOperations`] said
//! (plus file-list requests this UI made and is waiting on); selections are
//! kept by key, so rows moving around under a new snapshot keep the cursor on
//! the same game or peer.

mod actions;
mod details;
mod history;
mod queue;
mod rows;
mod selection;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use details::{Details, DetailsOf, Fact, LABEL_WIDTH};
pub use history::{Ended, History, Outcome};
pub use queue::{QueueMove, Queued, ordinal};
pub use rows::{
    InstallProgress, LibraryRow, PeerRow, RowKey, Tone, TransferKey, TransferRow, latest_size, left_peers_text,
};
pub use selection::Selection;

use super::format::{format_duration, format_rate, format_size, verify_lines};
use super::input::{Action, InputMode};
use super::render::{MIN_HEIGHT, MIN_WIDTH, Screen};
use super::saved::SavedView;
use super::text;
use crate::peer::{
    ActiveOperation, DownloadProgress, HashingProgress, LibrarySnapshot, OperationKind, PeerCommand, PeerEvent,
    PeerSummary, Upload,
};

/// Log lines kept for the log pane; the log file has them all.
pub const LOG_CAPACITY: usize = 1000;
/// Rows moved by PgUp / PgDn.
pub const PAGE: usize = 10;

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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    #[default]
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

impl LogLine {
    /// The text in rows that fit `columns` beside the time (the log pane wraps, so a long
    /// message is read whole).
    pub fn rows(&self, columns: usize) -> Vec<String> {
        text::wrap(&self.text, columns.saturating_sub(text::width(&self.time) + 1))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    pub level: Level,
    pub text: String,
    /// The message holds only while this game's operation runs ("cancelling ...").
    pub while_running: Option<String>,
}

/// What a confirmation dialog does on "yes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    Install(String),
    Uninstall(String),
    RemoveDownloaded(String),
    /// Verify again and fetch the damaged blocks.
    Repair(String),
    Quit,
    /// Stop the runtime of the process this TUI is attached to.
    StopRuntime,
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

#[derive(Debug, Clone)]
struct DownloadInfo {
    version: Option<String>,
    total_bytes: Option<u64>,
    progress: Option<DownloadProgress>,
}

/// The runtime a TUI is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// What runs it: "serve", ...
    pub runtime: String,
    pub pid: u32,
}

#[derive(Debug, Clone)]
pub struct App {
    game_dir: PathBuf,
    listen_addr: SocketAddr,
    log_dir: Option<PathBuf>,
    free_space: Option<u64>,
    snapshot: LibrarySnapshot,
    peers: Vec<PeerRow>,
    /// What this peer sends others now (the runtime's last report).
    uploads: Vec<Upload>,
    active: BTreeMap<String, OperationKind>,
    downloads: BTreeMap<String, DownloadInfo>,
    installs: BTreeMap<String, InstallProgress>,
    /// Games whose operation just ended: their next on-disk change is that operation's own.
    just_ended: BTreeSet<String>,
    fetching: BTreeMap<String, Fetch>,
    /// Downloads asked of the runtime that it has not reported running (or refused) yet:
    /// they hold a download slot in between.
    starting: BTreeSet<String>,
    /// While local games are being hashed (and not shared yet).
    hashing: Option<HashingProgress>,
    /// Games this UI saw waiting for their hashes: their next change is being shared.
    hashed_unshared: BTreeSet<String>,
    log: VecDeque<LogLine>,
    log_total: u64,
    /// Lines scrolled up from the newest; 0 follows the tail.
    log_scroll: usize,
    /// Columns and rows of text the log pane has on this screen.
    log_view: (usize, usize),
    monochrome: bool,
    status: Option<StatusMessage>,
    focus: Pane,
    library_selection: Selection<RowKey>,
    peer_selection: Selection<SocketAddr>,
    transfer_selection: Selection<TransferKey>,
    filter: String,
    filtering: bool,
    sort: SortKey,
    dialog: Option<Dialog>,
    help: bool,
    help_scroll: usize,
    details: Option<DetailsOf>,
    details_scroll: usize,
    history: History,
    /// Downloads waiting for a slot (or paused), front first; see `queue`.
    queue: Vec<Queued>,
    downloads_at_once: usize,
    /// The terminal's columns and rows (for scrolling what depends on them).
    screen: (u16, u16),
    quit: bool,
    runtime_stopped: bool,
    /// The runtime is another process's (a `serve`), reached on its control socket.
    attached: Option<Attachment>,
    spinner: usize,
    /// The terminal is below `MIN_WIDTH` x `MIN_HEIGHT` (see [`App::set_screen_size`]).
    too_small: bool,
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
            uploads: Vec::new(),
            active: BTreeMap::new(),
            downloads: BTreeMap::new(),
            installs: BTreeMap::new(),
            just_ended: BTreeSet::new(),
            fetching: BTreeMap::new(),
            starting: BTreeSet::new(),
            hashing: None,
            hashed_unshared: BTreeSet::new(),
            log: VecDeque::new(),
            log_total: 0,
            log_scroll: 0,
            log_view: Screen::log_text_size(MIN_WIDTH, MIN_HEIGHT),
            monochrome: false,
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
            help_scroll: 0,
            details: None,
            details_scroll: 0,
            history: History::default(),
            queue: Vec::new(),
            downloads_at_once: crate::config::DEFAULT_DOWNLOADS_AT_ONCE,
            screen: (MIN_WIDTH, MIN_HEIGHT),
            quit: false,
            runtime_stopped: false,
            attached: None,
            spinner: 0,
            too_small: false,
            dirty: true,
            clock: local_clock,
        }
    }

    /// Starts with the sort and filter the user left.
    pub fn with_view(mut self, view: SavedView) -> App {
        self.sort = view.sort;
        self.filter = view.filter;
        self
    }

    /// The sort and filter to keep for the next start.
    pub fn view(&self) -> SavedView {
        SavedView {
            sort: self.sort,
            filter: self.filter.clone(),
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

    /// Drives the runtime of another process: `q` detaches, and never stops it.
    pub fn with_attached(mut self, attached: Option<Attachment>) -> App {
        if let Some(attached) = &attached {
            let text = format!(
                "attached to {}, pid {}; q detaches, the service keeps running",
                attached.runtime, attached.pid
            );
            self.report(Level::Info, text);
        }
        self.attached = attached;
        self
    }

    pub fn attached(&self) -> Option<&Attachment> {
        self.attached.as_ref()
    }

    /// Draw without colour (`NO_COLOR`, or a terminal without colours): selection and focus
    /// then show by reverse video, markers, bold and border lines alone.
    pub fn set_monochrome(&mut self, monochrome: bool) {
        self.monochrome = monochrome;
        self.dirty = true;
    }

    pub fn is_monochrome(&self) -> bool {
        self.monochrome
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

    /// The peers that answer (the Peers pane also lists those that do not, with why).
    pub fn peer_count(&self) -> usize {
        self.peers.iter().filter(|row| row.absent.is_none()).count()
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

    /// The open dialog; the quit question says what runs now, not what ran when it opened.
    pub fn dialog(&self) -> Option<Dialog> {
        let mut dialog = self.dialog.clone()?;
        if dialog.confirm == Confirmed::Quit {
            dialog.message = self
                .quit_question()
                .unwrap_or_else(|| "Nothing is running any more.".to_owned());
        }
        Some(dialog)
    }

    pub fn is_help_open(&self) -> bool {
        self.help
    }

    /// Rows of the help scrolled past at the top.
    pub fn help_scroll(&self) -> usize {
        self.help_scroll
    }

    pub fn hashing(&self) -> Option<&HashingProgress> {
        self.hashing.as_ref()
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

    /// Lines scrolled up from the newest, at most to where the first page shows.
    pub fn log_scroll(&self) -> usize {
        self.log_scroll.min(self.log_max_scroll())
    }

    /// The scroll that shows the first page: as many of the oldest lines as fit whole.
    fn log_max_scroll(&self) -> usize {
        let (columns, rows) = self.log_view;
        let mut used = 0;
        let fitting = self
            .log
            .iter()
            .take_while(|line| {
                used += line.rows(columns).len();
                used <= rows
            })
            .count();
        self.log.len().saturating_sub(fitting.max(1))
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

    /// The terminal's size, from each draw and resize: below the minimum nothing is drawn
    /// but "Terminal too small", and only quitting acts.
    pub fn set_screen_size(&mut self, width: u16, height: u16) {
        let too_small = width < MIN_WIDTH || height < MIN_HEIGHT;
        if (width, height) != self.screen {
            self.screen = (width, height);
            self.scroll_details(0);
        }
        let log_view = Screen::log_text_size(width, height);
        if log_view != self.log_view {
            self.log_view = log_view;
            // How far the log can scroll depends on it (at the tail, nothing changes).
            self.dirty |= self.log_scroll > 0;
        }
        if too_small != self.too_small {
            self.too_small = too_small;
            self.dirty = true;
        }
    }

    pub fn input_mode(&self) -> InputMode {
        if self.too_small {
            InputMode::TooSmall
        } else if self.help {
            InputMode::Help
        } else if self.dialog.is_some() {
            InputMode::Dialog
        } else if self.details.is_some() {
            InputMode::Details
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

    // ---- write side ----

    /// Folds one runtime event into the state; returns the commands it calls for (a
    /// requested file list arriving starts its download, a freed slot the next queued one).
    pub fn update(&mut self, event: PeerEvent) -> Vec<PeerCommand> {
        let mut commands = self.fold(event);
        commands.extend(self.start_queued());
        commands
    }

    fn fold(&mut self, event: PeerEvent) -> Vec<PeerCommand> {
        self.dirty = true;
        // A download that ends or is refused before it was reported running frees its slot.
        if let PeerEvent::OperationRefused { id, .. }
        | PeerEvent::DownloadGameFilesFailed { id, .. }
        | PeerEvent::DownloadGameFilesCancelled { id }
        | PeerEvent::DownloadGameFilesPaused { id }
        | PeerEvent::DownloadGameFilesFinished { id, .. } = &event
        {
            self.starting.remove(id);
        }
        match event {
            PeerEvent::Uploads(uploads) => self.uploads = uploads,
            PeerEvent::LibraryUpdated(snapshot) => self.set_snapshot(snapshot),
            PeerEvent::LocalLibraryChanged { ids } => {
                let still_hashing = |id: &String| self.hashing.as_ref().is_some_and(|h| h.games.contains(id));
                let (hashed, ids): (Vec<String>, Vec<String>) = ids
                    .into_iter()
                    .partition(|id| self.hashed_unshared.contains(id) && !still_hashing(id));
                if !hashed.is_empty() {
                    let names: Vec<&str> = hashed.iter().map(|id| self.name_of(id)).collect();
                    let text = format!("hashed, now shared: {}", names.join(", "));
                    self.push_log(Level::Info, text);
                    for id in &hashed {
                        self.hashed_unshared.remove(id);
                    }
                }
                // The rescan after our own operation says what its Finished line said already.
                let names: Vec<&str> = ids
                    .iter()
                    .filter(|id| !self.just_ended.contains(*id))
                    .map(|id| self.name_of(id))
                    .collect();
                if !names.is_empty() {
                    let text = format!("changed on disk: {}", names.join(", "));
                    self.push_log(Level::Info, text);
                } else if hashed.is_empty() {
                    self.dirty = false;
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
                        unanswered_for: None,
                    };
                    self.peers.push(PeerRow {
                        summary,
                        since: (self.clock)(),
                        rate: None,
                        partial: false,
                        absent: None,
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
                self.starting.insert(id.clone());
                return vec![PeerCommand::DownloadGameFiles { id, files }];
            }
            PeerEvent::GameFilesUnavailable { id, reason } => {
                self.fetching.remove(&id);
                self.ended(&id, OperationKind::Download, Outcome::Failed(reason.clone()));
                self.report_game(&id, |name| format!("cannot download {name}: {reason}"));
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
            PeerEvent::VerifyProgress { .. } => {}
            PeerEvent::VerifyFinished(report) => {
                let found = match (report.damaged.len(), report.unchecked.len()) {
                    (0, 0) => "intact".to_owned(),
                    (0, unchecked) => format!("{unchecked} file(s) could not be checked"),
                    (damaged, _) => format!("{damaged} damaged"),
                };
                self.ended(&report.id, OperationKind::Verify, Outcome::Done(found));
                let level = if report.damaged.is_empty() {
                    Level::Info
                } else {
                    Level::Error
                };
                for line in verify_lines(&report) {
                    self.push_log(level, line);
                }
                self.offer_repair(&report);
            }
            PeerEvent::VerifyFailed { id, reason } => {
                self.ended(&id, OperationKind::Verify, Outcome::Failed(reason.clone()));
                self.report_game(&id, |name| format!("verify of {name} failed: {reason}"));
            }
            PeerEvent::DownloadGameFilesFinished { id, version, summary } => {
                self.downloads.remove(&id);
                let seconds = summary.elapsed.as_secs_f64();
                let fetched = summary.bytes - summary.reused;
                let reused = if summary.reused > 0 {
                    format!(" ({} reused)", format_size(summary.reused))
                } else {
                    String::new()
                };
                let what = format!(
                    "{}{reused} in {} ({}) from {} peer{}",
                    format_size(summary.bytes),
                    format_duration(summary.elapsed),
                    format_rate(fetched as f64 / seconds.max(1e-9)),
                    summary.peers_used.len(),
                    if summary.peers_used.len() == 1 { "" } else { "s" }
                );
                let text = format!("downloaded {} {version}: {what}", self.name_of(&id));
                self.ended(
                    &id,
                    OperationKind::Download,
                    Outcome::Done(format!("{version}, {what}")),
                );
                self.push_log(Level::Info, text);
            }
            PeerEvent::DownloadGameFilesFailed { id, reason } => {
                self.downloads.remove(&id);
                self.fetching.remove(&id);
                self.ended(&id, OperationKind::Download, Outcome::Failed(reason.clone()));
                self.report_game(&id, |name| format!("download of {name} failed: {reason}"));
            }
            PeerEvent::DownloadGameFilesCancelled { id } => {
                self.downloads.remove(&id);
                self.ended(&id, OperationKind::Download, Outcome::Cancelled);
                let text = format!("download of {} cancelled; partial files removed", self.name_of(&id));
                self.report(Level::Info, text);
            }
            PeerEvent::DownloadGameFilesPaused { id } => {
                self.downloads.remove(&id);
                self.log_game(Level::Info, &id, |name| {
                    format!("paused the download of {name}; it keeps what it verified")
                });
            }
            PeerEvent::DownloadPeersExcluded { id, peers } => {
                for (addr, why) in peers {
                    self.log_game(Level::Warn, &id, |name| format!("{name}: left out {addr}: {why}"));
                }
            }
            PeerEvent::StreamInstallAttemptFailed { id, peer, reason } => {
                self.log_game(Level::Warn, &id, |name| {
                    format!("{name}: streaming from {peer} failed: {reason}; trying another peer")
                });
            }
            PeerEvent::InstallGameBegin { id } => {
                let how = match self.install_kind(&id) {
                    OperationKind::StreamInstall => "stream-installing",
                    _ => "installing",
                };
                self.log_game(Level::Info, &id, |name| format!("{how} {name}"));
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
                self.ended(&id, self.install_kind(&id), Outcome::Done(verb.to_owned()));
                self.log_game(Level::Info, &id, |name| format!("{verb} {name}"));
            }
            PeerEvent::InstallGameFailed { id, reason } => {
                self.installs.remove(&id);
                self.ended(&id, self.install_kind(&id), Outcome::Failed(reason.clone()));
                self.report_game(&id, |name| format!("install of {name} failed: {reason}"));
            }
            PeerEvent::UninstallGameBegin { id } => {
                self.log_game(Level::Info, &id, |name| format!("uninstalling {name}"));
            }
            PeerEvent::UninstallGameFinished { id } => {
                self.ended(&id, OperationKind::Uninstall, Outcome::Done(String::new()));
                self.log_game(Level::Info, &id, |name| format!("uninstalled {name}"));
            }
            PeerEvent::UninstallGameFailed { id, reason } => {
                self.ended(&id, OperationKind::Uninstall, Outcome::Failed(reason.clone()));
                self.report_game(&id, |name| format!("uninstall of {name} failed: {reason}"));
            }
            PeerEvent::RemoveDownloadedGameBegin { id } => {
                self.log_game(Level::Info, &id, |name| format!("removing the download of {name}"));
            }
            PeerEvent::RemoveDownloadedGameFinished { id } => {
                self.ended(&id, OperationKind::RemoveDownloaded, Outcome::Done(String::new()));
                self.log_game(Level::Info, &id, |name| format!("removed the download of {name}"));
            }
            PeerEvent::RemoveDownloadedGameFailed { id, reason } => {
                self.ended(&id, OperationKind::RemoveDownloaded, Outcome::Failed(reason.clone()));
                self.report_game(&id, |name| format!("removing {name} failed: {reason}"));
            }
            PeerEvent::HashingProgress(progress) => {
                self.hashed_unshared.extend(progress.games.iter().cloned());
                self.hashing = Some(progress);
            }
            PeerEvent::HashingFinished { games, bytes, elapsed } => {
                // Sent once every hashed game is published: none is waiting any more.
                self.hashing = None;
                self.hashed_unshared.clear();
                if games > 0 {
                    let text = format!(
                        "hashed {games} game{} ({}) in {}",
                        if games == 1 { "" } else { "s" },
                        format_size(bytes),
                        format_duration(elapsed)
                    );
                    self.push_log(Level::Info, text);
                }
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
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Top | Action::Bottom => {
                let delta = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -(PAGE as isize),
                    Action::PageDown => PAGE as isize,
                    Action::Top => isize::MIN,
                    _ => isize::MAX,
                };
                if self.help {
                    let most = super::render::help_max_scroll(self.screen.0, self.screen.1);
                    self.help_scroll = self.help_scroll.saturating_add_signed(delta).min(most);
                } else if self.details.is_some() {
                    self.scroll_details(delta);
                } else {
                    self.move_selection(delta);
                }
            }
            Action::Details => self.open_details(),
            Action::NextPane => self.focus = self.focus.next(),
            Action::PrevPane => self.focus = self.focus.prev(),
            Action::Download => return self.download(),
            Action::StreamInstall => return self.stream_install(),
            Action::Update => return self.update_game(),
            Action::Install => return self.install(),
            Action::Uninstall => self.ask_uninstall(),
            Action::RemoveDownloaded => self.ask_remove(),
            Action::Verify => return self.verify(),
            Action::Cancel => return self.cancel(),
            Action::Retry => return self.retry(),
            Action::PauseResume => return self.pause_or_resume(),
            Action::Queue(how) => self.move_in_queue(how),
            Action::ClearEnded => {
                let text = match self.history.clear() {
                    0 => "nothing to clear: no transfer has ended".to_owned(),
                    count => format!("cleared {count} ended transfer{}", if count == 1 { "" } else { "s" }),
                };
                self.say(Level::Info, text);
            }
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
            Action::ToggleHelp => {
                self.help = !self.help;
                self.help_scroll = 0;
            }
            Action::Confirm => {
                if let Some(dialog) = self.dialog.take() {
                    return self.confirmed(dialog.confirm);
                }
            }
            Action::Back => {
                if self.help {
                    self.help = false;
                } else if let Some(dialog) = self.dialog.take() {
                    let text = match dialog.confirm {
                        Confirmed::Quit => "not quitting; everything goes on",
                        Confirmed::StopRuntime => "not stopped; it goes on",
                        _ => "nothing was changed",
                    };
                    self.say(Level::Info, text.to_owned());
                } else if self.details.is_some() {
                    self.close_details();
                } else if self.filtering || !self.filter.is_empty() {
                    self.filtering = false;
                    self.filter.clear();
                }
            }
            Action::Quit => self.ask_quit(),
            Action::StopRuntime => self.ask_stop_runtime(),
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
            self.starting.clear();
            self.downloads.clear();
            self.installs.clear();
            let text = match &self.attached {
                Some(attached) => format!(
                    "the {} (pid {}) stopped or dropped this TUI (see its log); press q to quit",
                    attached.runtime, attached.pid
                ),
                None => "the peer runtime stopped (see the log file); press q to quit".to_owned(),
            };
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
        let before: BTreeMap<SocketAddr, PeerRow> = self.peers.drain(..).map(|row| (row.summary.addr, row)).collect();
        let clock = self.clock;
        let since = |addr: &SocketAddr| before.get(addr).map_or_else(clock, |row| row.since.clone());
        let mut log = Vec::new();
        for summary in &snapshot.peers {
            let was_silent = before
                .get(&summary.addr)
                .is_some_and(|row| row.summary.unanswered_for.is_some());
            let (name, addr) = (&summary.name, summary.addr);
            match (was_silent, summary.unanswered_for.is_some()) {
                (false, true) => log.push((Level::Warn, format!("peer {name} ({addr}) is not answering pings"))),
                (true, false) => log.push((Level::Info, format!("peer {name} ({addr}) answers again"))),
                _ => {}
            }
            self.peers.push(PeerRow {
                summary: summary.clone(),
                since: since(&summary.addr),
                rate: None,
                partial: false,
                absent: None,
            });
        }
        for peer in &snapshot.absent_peers {
            let listed_why = before
                .get(&peer.addr)
                .and_then(|row| row.absent.as_ref())
                .map(|absent| &absent.why);
            // A peer that left was logged by its `PeerLeft`; a configured one that never
            // answered is logged here, and again when the reason changes.
            if peer.name.is_none() && listed_why != Some(&peer.why) {
                log.push((Level::Warn, format!("configured peer: {}", peer.why)));
            }
            let since = if listed_why.is_some() {
                since(&peer.addr)
            } else {
                clock()
            };
            self.peers.push(PeerRow::absent(peer, since));
        }
        for (level, text) in log {
            self.push_log(level, text);
        }
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
            self.starting.remove(id);
        }
        let ended = |id: &String| !self.active.contains_key(id);
        if self
            .status
            .as_ref()
            .and_then(|status| status.while_running.as_ref())
            .is_some_and(ended)
        {
            self.status = None;
        }
    }

    /// Whether the install of `id` that runs is a streamed one.
    fn install_kind(&self, id: &str) -> OperationKind {
        match self.active.get(id) {
            Some(OperationKind::StreamInstall) => OperationKind::StreamInstall,
            _ => OperationKind::Install,
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

    /// Logs a line about one game, named as the library shows it.
    fn log_game(&mut self, level: Level, id: &str, line: impl FnOnce(&str) -> String) {
        let text = line(self.name_of(id));
        self.push_log(level, text);
    }

    /// Reports a failure of one game's operation, named as the library shows it.
    fn report_game(&mut self, id: &str, line: impl FnOnce(&str) -> String) {
        let text = line(self.name_of(id));
        self.report(Level::Error, text);
    }

    /// Status line only: the answer to a key.
    fn say(&mut self, level: Level, text: String) {
        self.status = Some(StatusMessage {
            level,
            text,
            while_running: None,
        });
    }

    /// Status line only, until the operation of `id` ends.
    fn say_while_running(&mut self, id: &str, text: String) {
        self.status = Some(StatusMessage {
            level: Level::Info,
            text,
            while_running: Some(id.to_owned()),
        });
    }

    /// Status line and log: something the runtime reported.
    fn report(&mut self, level: Level, text: String) {
        self.push_log(level, text.clone());
        self.say(level, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::GameState;
    use crate::ui::test_support::*;

    #[test]
    fn the_sort_and_filter_of_the_last_run_come_back() {
        let mut app = app_with_library();
        app.apply(Action::CycleSort);
        app.apply(Action::CycleSort);
        app.apply(Action::StartFilter);
        for typed in "QUA".chars() {
            app.apply(Action::FilterInput(typed));
        }
        app.apply(Action::FilterAccept);
        let view = app.view();
        assert_eq!((view.sort, view.filter.as_str()), (SortKey::Size, "QUA"));
        let mut next = super::App::new(PathBuf::from("/games"), ([0, 0, 0, 0], 1).into()).with_view(view);
        next.update(PeerEvent::LibraryUpdated(snapshot()));
        let names: Vec<String> = next.library_rows().into_iter().map(|row| row.name).collect();
        assert_eq!(names, ["Quake"], "the filter matches whatever the case");
        assert_eq!(next.sort(), SortKey::Size);
    }

    // Shared with the other files' tests.
    pub(super) fn status_text(app: &App) -> String {
        app.status().map(|status| status.text.clone()).unwrap_or_default()
    }

    pub(super) fn state_of(app: &App, name: &str) -> String {
        let rows = app.library_rows();
        rows.iter()
            .find(|row| row.name == name)
            .map(|row| row.state.clone())
            .unwrap_or_else(|| panic!("{name} not shown"))
    }

    /// The library with Quake's install failed and Xonotic installed by a streamed install.
    fn app_with_install_states() -> App {
        let mut snapshot = snapshot();
        for game in &mut snapshot.games {
            match game.id.as_str() {
                "quake" => {
                    game.state = GameState::InstallFailed;
                    game.install_failure = Some("cannot unpack: game.zip is damaged".into());
                }
                "xonotic" => {
                    game.state = GameState::InstalledStreamed;
                    game.installed = true;
                    game.streamed = true;
                    game.installed_version = Some("0.8.6".into());
                }
                _ => {}
            }
        }
        let mut app = app();
        app.update(PeerEvent::LibraryUpdated(snapshot));
        app
    }

    #[test]
    fn a_failed_install_shows_in_its_row_and_i_retries_it() {
        let mut app = app_with_install_states();
        assert_eq!(state_of(&app, "Quake"), "install failed: i to retry");
        select(&mut app, "Quake");
        let commands = app.apply(Action::Install);
        assert!(
            matches!(commands.as_slice(), [PeerCommand::InstallGame { id }] if id == "quake"),
            "no reinstall dialog: nothing is installed at this version ({commands:?})"
        );
        assert!(app.dialog().is_none());
        app.apply(Action::Download);
        assert!(
            status_text(&app).contains("its install failed: press i to retry"),
            "{}",
            status_text(&app)
        );
    }

    #[test]
    fn a_streamed_install_has_a_story_every_message_agrees_with() {
        let mut app = app_with_install_states();
        assert_eq!(state_of(&app, "Xonotic"), "installed, streamed");
        let row = app
            .library_rows()
            .into_iter()
            .find(|row| row.name == "Xonotic")
            .unwrap();
        assert_eq!(row.version, "0.8.6", "the installed version, not a guess");
        select(&mut app, "Xonotic");

        assert!(app.apply(Action::Install).is_empty());
        assert!(
            status_text(&app).contains("no archives here to install from"),
            "{}",
            status_text(&app)
        );
        assert!(app.apply(Action::Download).is_empty());
        assert!(
            status_text(&app).contains("streamed: no archives"),
            "{}",
            status_text(&app)
        );
        assert!(app.apply(Action::Update).is_empty());
        assert_eq!(status_text(&app), "Xonotic is up to date (version 0.8.6)");

        app.apply(Action::Uninstall);
        let dialog = app.dialog().expect("uninstall asks first");
        assert!(
            dialog
                .message
                .contains("no archives are kept here, so its folder goes too"),
            "{}",
            dialog.message
        );
        assert!(!dialog.message.contains("archives stay"), "{}", dialog.message);
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

        app.update(download_finished("xonotic", "0.8.6"));
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        assert!(app.running_transfers().is_empty());
        assert_eq!(state_of(&app, "Xonotic"), "on 2 peers");
        let last = &app.log_lines().back().unwrap().text;
        assert!(last.starts_with("downloaded Xonotic 0.8.6: 4.0 GiB in 20s"), "{last}");

        // A sample trailing the end does not bring the transfer back.
        app.update(PeerEvent::DownloadProgress(progress("xonotic", 4 * GIB, 4 * GIB)));
        assert!(app.running_transfers().is_empty());
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
        assert!(app.running_transfers().is_empty());
        // Nothing is stuck: the game can be downloaded again.
        assert_eq!(app.apply(Action::Download).len(), 1);
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
        assert!(app.running_transfers().is_empty());
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
            component: "discovery".into(),
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
        assert!(
            app.running_transfers().is_empty(),
            "the refused request no longer waits"
        );
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
        // Up to the first page, which shows the oldest lines whole.
        let (_, rows) = Screen::log_text_size(MIN_WIDTH, MIN_HEIGHT);
        assert_eq!(app.log_scroll(), 31 - rows);
        assert_eq!(app.log_lines_since(29).count(), 2);
        for _ in 0..LOG_CAPACITY {
            app.update(PeerEvent::UninstallGameBegin { id: "more".into() });
        }
        assert_eq!(app.log_lines().len(), LOG_CAPACITY);
        assert_eq!(app.log_lines_since(0).count(), LOG_CAPACITY);
    }
}
