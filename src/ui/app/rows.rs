//! What the panes draw, derived from the state on each call: library rows
//! (filtered, sorted, each game's state in words and a tone to colour it),
//! peer rows with their current send rates, and one transfer row per running
//! operation or waiting file-list request. Nothing here changes the state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{App, Ended, OperationKind as Kind, SortKey};
use crate::peer::space::{GameSizes, SpaceOperation, SpaceVerdict, check_space};
use crate::peer::{AbsentPeer, DownloadProgress, GameState, LibraryEntry, OperationKind, PeerSummary};
use crate::ui::format::{format_rate, format_size};

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
    /// The last install failed.
    Failed,
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
    /// It sends us blocks of a game it is downloading too (a partial source).
    pub partial: bool,
    /// Listed though it does not answer: it left, or a configured peer never did.
    pub absent: Option<AbsentPeer>,
}

impl PeerRow {
    /// A row for a peer that does not answer; `since` is when this UI first listed it so.
    pub fn absent(peer: &AbsentPeer, since: String) -> Self {
        let summary = PeerSummary {
            addr: peer.addr,
            peer_id: String::new(),
            // A configured peer that never answered is known only by its address.
            name: peer.name.clone().unwrap_or_else(|| peer.addr.to_string()),
            game_count: peer.game_count,
            latency: Duration::ZERO,
            library_loaded: true,
            unanswered_for: None,
        };
        PeerRow {
            summary,
            since,
            rate: None,
            partial: false,
            absent: Some(peer.clone()),
        }
    }

    /// How it answers, for the Ping column: "3ms", "silent 4s", "left", "no answer".
    pub fn status(&self) -> String {
        let peer = &self.summary;
        match (&self.absent, peer.unanswered_for) {
            (Some(absent), _) => absent.status.clone(),
            (None, Some(silent)) => format!("silent {}s", silent.as_secs()),
            (None, None) if peer.latency.is_zero() => "-".to_owned(),
            (None, None) if peer.latency.as_millis() == 0 => "<1ms".to_owned(),
            (None, None) => format!("{}ms", peer.latency.as_millis()),
        }
    }
}

/// Which transfer a row is: the running operation (or file-list request) of a game, or
/// an operation that ended (see [`super::History`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferKey {
    Running(String),
    Queued(String),
    Ended(u64),
}

/// What the transfers pane shows for one running or ended operation.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRow {
    pub key: TransferKey,
    /// How it ended, for an operation that did; `None` while it runs.
    pub ended: Option<Ended>,
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

impl App {
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

    pub fn peer_rows(&self) -> Vec<PeerRow> {
        let mut rates: BTreeMap<SocketAddr, f64> = BTreeMap::new();
        let mut partial: std::collections::BTreeSet<SocketAddr> = std::collections::BTreeSet::new();
        for progress in self.downloads.values().filter_map(|info| info.progress.as_ref()) {
            for peer in &progress.peers {
                *rates.entry(peer.addr).or_default() += peer.bytes_per_second;
                if peer.partial {
                    partial.insert(peer.addr);
                }
            }
        }
        let mut rows: Vec<PeerRow> = self
            .peers
            .iter()
            .map(|row| PeerRow {
                rate: rates.get(&row.summary.addr).copied(),
                partial: partial.contains(&row.summary.addr),
                ..row.clone()
            })
            .collect();
        // The peers that answer first, then those listed with why they do not.
        rows.sort_by_cached_key(|row| (row.absent.is_some(), row.summary.name.to_lowercase(), row.summary.addr));
        rows
    }

    /// What this peer sends others, a line per game: `↑ Xonotic to bob 2.1 MB/s, 10.0.0.9:1 1.0 MB/s`.
    pub fn upload_lines(&self) -> Vec<String> {
        let mut by_game: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for upload in &self.uploads {
            let to = self
                .peers
                .iter()
                .find(|peer| peer.summary.addr == upload.to)
                .map_or_else(|| upload.to.to_string(), |peer| peer.summary.name.clone());
            by_game
                .entry(self.name_of(&upload.id))
                .or_default()
                .push(format!("{to} {}", format_rate(upload.bytes_per_second)));
        }
        by_game
            .into_iter()
            .map(|(name, peers)| format!("↑ {name} to {}", peers.join(", ")))
            .collect()
    }

    /// Running operations, then file-list requests still waiting for an answer, then the
    /// operations that ended.
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
                    key: TransferKey::Running(id.clone()),
                    ended: None,
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
                    key: TransferKey::Running(id.clone()),
                    ended: None,
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
        // What waits for a slot, front first.
        rows.extend(self.queue.iter().enumerate().map(|(index, queued)| {
            let activity = match (queued.paused, self.snapshot.game(&queued.id)) {
                (true, _) => "paused: p resumes it".to_owned(),
                (false, Some(game)) if game.peers.is_empty() => "queued: waits for a peer that has it".to_owned(),
                (false, _) => format!("queued, {} in line", super::ordinal(index + 1)),
            };
            TransferRow {
                key: TransferKey::Queued(queued.id.clone()),
                ended: None,
                id: queued.id.clone(),
                name: self.name_of(&queued.id).to_owned(),
                label: "download".to_owned(),
                activity,
                version: None,
                total_bytes: None,
                progress: None,
                install: None,
            }
        }));
        // What ended, newest first, until the user clears it.
        rows.extend(self.history.iter().map(|ended| TransferRow {
            key: TransferKey::Ended(ended.seq),
            ended: Some(ended.clone()),
            id: ended.id.clone(),
            name: self.name_of(&ended.id).to_owned(),
            label: ended.kind.label().to_owned(),
            activity: ended.outcome_text(),
            version: None,
            total_bytes: None,
            progress: None,
            install: None,
        }));
        rows
    }

    /// The transfers that run now (and file-list requests waiting for an answer).
    pub fn running_transfers(&self) -> Vec<TransferRow> {
        let mut rows = self.transfer_rows();
        rows.retain(|row| matches!(row.key, TransferKey::Running(_)));
        rows
    }

    /// A warning when the selected game would not fit the free space, offering a streamed
    /// install when that fits. Real sizes where the peers announce them; otherwise the estimate
    /// of [`check_space`], marked with `~`.
    pub fn space_warning(&self) -> Option<String> {
        let index = self.selected_library_index()?;
        let RowKey::Game(id) = self.library_keys().swap_remove(index) else {
            return None;
        };
        let game = self.snapshot.game(&id)?;
        let operation = match game.state {
            // The TUI's runtime installs what it downloads.
            GameState::RemoteOnly | GameState::UpdateAvailable => SpaceOperation::Download { install: true },
            GameState::Downloaded | GameState::InstallFailed => SpaceOperation::Install,
            GameState::Installed | GameState::InstalledStreamed => return None,
        };
        let shortage = match self.space_verdict(game, operation)? {
            SpaceVerdict::Fits => return None,
            SpaceVerdict::Short(shortage) | SpaceVerdict::MayNotFit(shortage) => shortage,
        };
        let approx = if shortage.estimated { "~" } else { "" };
        let (name, free) = (&game.name, format_size(shortage.free));
        if operation == SpaceOperation::Install {
            return Some(format!(
                "installing {name} needs {approx}{}; only {free} free",
                format_size(shortage.needed)
            ));
        }
        if let Some(stream) = shortage.stream_instead {
            return Some(format!(
                "{name} needs {approx}{} to download and install, {free} free: \
                 press s for a streamed install ({approx}{})",
                format_size(shortage.needed),
                format_size(stream)
            ));
        }
        let stream = match self.space_verdict(game, SpaceOperation::StreamInstall)? {
            SpaceVerdict::Short(stream) | SpaceVerdict::MayNotFit(stream) => stream.needed,
            SpaceVerdict::Fits => return None,
        };
        Some(format!(
            "{name} needs {approx}{} even as a streamed install; only {free} free",
            format_size(stream)
        ))
    }

    /// [`check_space`] for `operation` on `game` with the sizes the snapshot knows; `None` while
    /// the free space is unknown. An update is assumed to overwrite all of the old download in
    /// place: at best, so the UI never refuses what fits (the runtime, which knows the paths,
    /// checks exactly before it starts).
    pub(super) fn space_verdict(&self, game: &LibraryEntry, operation: SpaceOperation) -> Option<SpaceVerdict> {
        let free = self.free_space?;
        let sizes = GameSizes {
            download: latest_size(game),
            expanded: game.expanded_size,
            replaced: if game.local_version.is_some() { game.size } else { 0 },
        };
        Some(check_space(operation, sizes, free))
    }

    fn state_rank(&self, game: &LibraryEntry) -> u8 {
        if self.active.contains_key(&game.id) || self.fetching.contains_key(&game.id) {
            return 0;
        }
        if self.failed_download(game).is_some() {
            return 1;
        }
        match game.state {
            GameState::InstallFailed => 1,
            GameState::UpdateAvailable => 2,
            GameState::Installed | GameState::InstalledStreamed => 3,
            GameState::Downloaded => 4,
            GameState::RemoteOnly => 5,
        }
    }

    /// The failed download of `game`, when that is the last thing that ended for it.
    pub(super) fn failed_download(&self, game: &LibraryEntry) -> Option<&Ended> {
        self.history
            .last_failure(&game.id)
            .filter(|ended| ended.kind == Kind::Download)
    }

    pub(super) fn game_row(&self, game: &LibraryEntry) -> LibraryRow {
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
        } else if let Some(state) = self.queue_state(game) {
            (state, Tone::Busy)
        } else if self
            .hashing
            .as_ref()
            .is_some_and(|hashing| hashing.games.contains(&game.id))
        {
            ("hashing, not shared yet".to_owned(), Tone::Busy)
        } else {
            match game.state {
                GameState::RemoteOnly | GameState::UpdateAvailable if self.failed_download(game).is_some() => {
                    let at = game
                        .partial
                        .as_ref()
                        .map(|p| format!(" at {:.0}%", p.done as f64 / p.total.max(1) as f64 * 100.0))
                        .unwrap_or_default();
                    // A retry needs a peer: when the only ones left, say so instead.
                    let next = if game.peers.is_empty() && !game.left_peers.is_empty() {
                        left_peers_text(game)
                    } else {
                        "R retries".to_owned()
                    };
                    (format!("download failed{at}: {next}"), Tone::Failed)
                }
                GameState::RemoteOnly | GameState::UpdateAvailable if game.partial.is_some() => {
                    let partial = game
                        .partial
                        .as_ref()
                        .map_or(0.0, |p| p.done as f64 / p.total.max(1) as f64);
                    let next = if game.peers.is_empty() && !game.left_peers.is_empty() {
                        left_peers_text(game)
                    } else {
                        "d resumes".to_owned()
                    };
                    (format!("partial {:.0}%: {next}", partial * 100.0), Tone::Update)
                }
                GameState::RemoteOnly if game.peers.is_empty() && !game.left_peers.is_empty() => {
                    (format!("gone: {}", left_peers_text(game)), Tone::Remote)
                }
                GameState::RemoteOnly => (peers_text(game), Tone::Remote),
                GameState::Downloaded => ("downloaded".to_owned(), Tone::Downloaded),
                GameState::InstallFailed => ("install failed: i to retry".to_owned(), Tone::Failed),
                GameState::Installed => ("installed".to_owned(), Tone::Installed),
                GameState::InstalledStreamed => ("installed, streamed".to_owned(), Tone::Installed),
                GameState::UpdateAvailable => ("update available".to_owned(), Tone::Update),
            }
        };
        let version = match (game.local_newest(), &game.latest_version) {
            (Some(local), Some(latest)) if local != latest && game.state == GameState::UpdateAvailable => {
                format!("{local} → {latest}")
            }
            (Some(local), _) => local.to_owned(),
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
}

/// "on 3 peers", or "on 3 peers, 2 with 1.0" when some have an older version: a
/// download fetches the latest version, so only from those.
fn peers_text(game: &LibraryEntry) -> String {
    let count = game.peers.len();
    let text = format!("on {count} peer{}", if count == 1 { "" } else { "s" });
    let Some(latest) = &game.latest_version else {
        return text;
    };
    match game.peers.iter().filter(|peer| &peer.version == latest).count() {
        with_latest if with_latest == count => text,
        with_latest => format!("{text}, {with_latest} with {latest}"),
    }
}

/// "bob left", "its 2 peers left": why a game only peers that left had is not available.
pub fn left_peers_text(game: &LibraryEntry) -> String {
    match game.left_peers.as_slice() {
        [only] => format!("{} left", only.peer_name),
        many => format!("its {} peers left", many.len()),
    }
}

/// What a running operation is doing, as a library state.
pub(super) fn busy_verb(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Download => "downloading",
        OperationKind::Install => "installing",
        OperationKind::StreamInstall => "stream-installing",
        OperationKind::Uninstall => "uninstalling",
        OperationKind::RemoveDownloaded => "removing",
        OperationKind::Verify => "verifying",
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
    use super::super::tests::{state_of, status_text};
    use crate::peer::{PeerCommand, PeerEvent};
    use crate::ui::app::SortKey;
    use crate::ui::input::{Action, InputMode};
    use crate::ui::test_support::*;

    #[test]
    fn peers_that_miss_pings_leave_or_were_never_reached_are_listed_with_why_and_logged_once() {
        let mut app = app_with_library();
        app.update(PeerEvent::LibraryUpdated(snapshot_with_absent_peers(
            std::time::Duration::from_secs(4),
        )));
        let rows: Vec<(String, String)> = app
            .peer_rows()
            .iter()
            .map(|row| (row.summary.name.clone(), row.status()))
            .collect();
        assert_eq!(
            rows,
            [
                ("bob".to_owned(), "silent 4s".to_owned()),
                ("10.0.0.9:7".to_owned(), "no answer".to_owned()),
                ("alice".to_owned(), "left".to_owned()),
            ]
        );
        assert_eq!(app.peer_count(), 1, "only bob answers, if late");
        assert_eq!(state_of(&app, "Xonotic"), "gone: alice left");
        let logged: Vec<&str> = app.log_lines().iter().map(|line| line.text.as_str()).collect();
        assert!(
            logged.contains(&"peer bob (10.0.0.2:2) is not answering pings"),
            "{logged:?}"
        );
        assert!(
            logged.contains(&"configured peer: 10.0.0.9:7 did not answer within 5s"),
            "{logged:?}"
        );

        // The same again (the next ping round): counted on, not logged again.
        let lines = app.log_lines().len();
        app.update(PeerEvent::LibraryUpdated(snapshot_with_absent_peers(
            std::time::Duration::from_secs(6),
        )));
        assert_eq!(app.log_lines().len(), lines);
        assert_eq!(app.peer_rows()[0].status(), "silent 6s");

        // Trying to fetch the game only alice had says why it cannot.
        select(&mut app, "Xonotic");
        assert!(app.apply(Action::Download).is_empty());
        assert!(status_text(&app).contains("alice left"), "{}", status_text(&app));

        app.update(PeerEvent::LibraryUpdated(snapshot()));
        assert_eq!(app.peer_count(), 2);
        assert!(app.peer_rows().iter().all(|row| row.absent.is_none()));
        assert_eq!(
            app.log_lines().back().unwrap().text,
            "peer bob (10.0.0.2:2) answers again"
        );
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
        let mut older = snapshot();
        let xonotic = older.games.iter_mut().find(|game| game.id == "xonotic").unwrap();
        let mut third = xonotic.peers[0].clone();
        (third.addr, third.version) = (addr(3), "0.8.5".into());
        xonotic.peers.push(third);
        app.update(PeerEvent::LibraryUpdated(older));
        assert_eq!(
            state_of(&app, "Xonotic"),
            "on 3 peers, 2 with 0.8.6",
            "a download fetches the latest version, from the 2 that have it"
        );
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
    fn too_little_space_warns_and_offers_a_streamed_install() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        app.set_free_space(Some(100 * GIB));
        assert_eq!(app.space_warning(), None);
        app.set_free_space(Some(7 * GIB));
        assert_eq!(
            app.space_warning(),
            None,
            "3 GiB of archives + 4 GiB unpacked fit exactly"
        );
        app.set_free_space(Some(6 * GIB));
        let warning = app.space_warning().unwrap();
        assert_eq!(
            warning,
            "Xonotic needs 7.0 GiB to download and install, 6.0 GiB free: press s for a streamed install (4.0 GiB)"
        );
        app.set_free_space(Some(3 * GIB));
        assert_eq!(
            app.space_warning().unwrap(),
            "Xonotic needs 4.0 GiB even as a streamed install; only 3.0 GiB free"
        );
        app.set_free_space(Some(GIB));
        assert!(app.apply(Action::Download).is_empty());
        assert_eq!(
            status_text(&app),
            "not enough space for Xonotic: downloading and installing it needs 7.0 GiB, 1.0 GiB free on /games"
        );
        select(&mut app, "OpenArena");
        assert_eq!(app.space_warning(), None, "an installed game needs no space");
    }

    #[test]
    fn an_unknown_expanded_size_falls_back_to_the_old_estimate_and_only_warns() {
        let mut app = app();
        let mut library = snapshot();
        let xonotic = library.games.iter_mut().find(|game| game.id == "xonotic").unwrap();
        // As peers from before expanded sizes announce it.
        xonotic.expanded_size = None;
        for peer in &mut xonotic.peers {
            peer.expanded_size = None;
        }
        app.update(PeerEvent::LibraryUpdated(library));
        select(&mut app, "Xonotic");
        app.set_free_space(Some(7 * GIB));
        assert_eq!(
            app.space_warning().unwrap(),
            "Xonotic needs ~9.0 GiB to download and install, 7.0 GiB free: press s for a streamed install (~6.0 GiB)"
        );
        app.set_free_space(Some(5 * GIB));
        assert_eq!(
            app.space_warning().unwrap(),
            "Xonotic needs ~6.0 GiB even as a streamed install; only 5.0 GiB free"
        );
        // A guess refuses nothing...
        let commands = app.apply(Action::StreamInstall);
        assert!(matches!(commands.as_slice(), [PeerCommand::StreamInstallGame { id }] if id == "xonotic"));
        // ...but archives that cannot fit are known.
        app.set_free_space(Some(GIB));
        assert!(app.apply(Action::Download).is_empty());
        assert_eq!(
            status_text(&app),
            "not enough space for Xonotic: downloading it needs 3.0 GiB, 1.0 GiB free on /games"
        );
        assert_eq!(
            app.space_warning().unwrap(),
            "Xonotic needs ~6.0 GiB even as a streamed install; only 1.0 GiB free"
        );
    }

    #[test]
    fn installing_a_download_warns_by_its_expanded_size() {
        let mut app = app();
        let mut library = snapshot();
        let quake = library.games.iter_mut().find(|game| game.id == "quake").unwrap();
        quake.expanded_size = Some(GIB);
        app.update(PeerEvent::LibraryUpdated(library));
        select(&mut app, "Quake");
        app.set_free_space(Some(GIB));
        assert_eq!(app.space_warning(), None);
        app.set_free_space(Some(GIB / 2));
        assert_eq!(
            app.space_warning().unwrap(),
            "installing Quake needs 1.0 GiB; only 512.0 MiB free"
        );
    }
}
