//! The details view (Enter): everything known about the selected game or peer, as
//! labelled facts: a game's catalog description, who has which version, its sizes
//! beside the free space, where it lives, its state and its last error; a peer's
//! status, its games and what goes between us.

use std::net::SocketAddr;

use super::rows::{busy_verb, latest_size};
use super::{App, Level, Pane, RowKey};
use crate::layout::GameLayout;
use crate::peer::{LibraryEntry, PeerGameVersion};
use crate::ui::format::{format_rate, format_size};
use crate::ui::text;

/// Columns the labels take, their gap included.
pub const LABEL_WIDTH: usize = 12;

/// What the details view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailsOf {
    Game(String),
    Peer(SocketAddr),
}

/// One fact: a label (empty for a further line of the same fact) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub label: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub title: String,
    pub facts: Vec<Fact>,
}

impl Details {
    /// The facts as screen rows of `columns`: each text wrapped beside its label.
    pub fn rows(&self, columns: usize) -> Vec<(&'static str, String)> {
        let room = columns.saturating_sub(LABEL_WIDTH).max(8);
        let mut rows = Vec::new();
        for fact in &self.facts {
            for (index, line) in text::wrap(&fact.text, room).into_iter().enumerate() {
                rows.push((if index == 0 { fact.label } else { "" }, line));
            }
        }
        rows
    }
}

fn fact(label: &'static str, text: impl Into<String>) -> Fact {
    Fact {
        label,
        text: text.into(),
    }
}

/// "alice (10.0.0.5:47474): 1.0, 1.2 GiB", one per peer, under one label.
fn peer_facts(label: &'static str, peers: &[PeerGameVersion]) -> Vec<Fact> {
    peers
        .iter()
        .enumerate()
        .map(|(index, peer)| {
            let text = format!(
                "{} ({}): {}, {}",
                peer.peer_name,
                peer.addr,
                peer.version,
                format_size(peer.size)
            );
            fact(if index == 0 { label } else { "" }, text)
        })
        .collect()
}

impl App {
    /// Opens the details of what the focused pane has selected.
    pub(super) fn open_details(&mut self) {
        let of = match self.focus {
            Pane::Library => match self
                .selected_library_index()
                .map(|index| self.library_keys().swap_remove(index))
            {
                Some(RowKey::Game(id)) => Some(DetailsOf::Game(id)),
                Some(RowKey::Folder(folder)) => {
                    let text = format!("{folder} is not in the catalog: lanspread knows nothing more of it");
                    return self.say(Level::Info, text);
                }
                None => None,
            },
            Pane::Transfers => self
                .selected_transfer_index()
                .map(|index| DetailsOf::Game(self.transfer_rows().swap_remove(index).id)),
            Pane::Peers => self
                .selected_peer_index()
                .map(|index| DetailsOf::Peer(self.peer_rows()[index].summary.addr)),
            Pane::Log => {
                return self.say(
                    Level::Info,
                    "the log shows every line whole; Enter opens details in the other panes".to_owned(),
                );
            }
        };
        match of {
            Some(of) => {
                self.details = Some(of);
                self.details_scroll = 0;
            }
            None => self.say(Level::Info, format!("nothing selected in {}", self.focus.title())),
        }
    }

    pub(super) fn close_details(&mut self) {
        self.details = None;
    }

    pub fn is_details_open(&self) -> bool {
        self.details.is_some()
    }

    /// Rows scrolled past at the top of the details view.
    pub fn details_scroll(&self) -> usize {
        self.details_scroll
    }

    /// Scrolls the details view, within its rows on this screen.
    pub(super) fn scroll_details(&mut self, delta: isize) {
        let (columns, visible) = crate::ui::render::details_text_size(self.screen.0, self.screen.1);
        let rows = self.details().map_or(0, |details| details.rows(columns).len());
        let most = rows.saturating_sub(visible);
        self.details_scroll = self.details_scroll.saturating_add_signed(delta).min(most);
    }

    /// The open details view, built from the state now (it follows progress and peers).
    pub fn details(&self) -> Option<Details> {
        match self.details.as_ref()? {
            DetailsOf::Game(id) => Some(match self.snapshot.game(id) {
                Some(game) => self.game_details(game),
                // Gone from the library (its last peer left long ago).
                None => Details {
                    title: id.clone(),
                    facts: vec![fact(
                        "State",
                        "no longer in the library: no peer has it and it is not here",
                    )],
                },
            }),
            DetailsOf::Peer(addr) => Some(self.peer_details(*addr)),
        }
    }

    fn game_details(&self, game: &LibraryEntry) -> Details {
        let mut facts = Vec::new();
        facts.push(fact(
            "About",
            game.description
                .as_deref()
                .unwrap_or("(the catalog has no description)"),
        ));
        facts.push(fact("State", self.game_row(game).state));
        let here = match (&game.local_version, &game.installed_version, game.installed) {
            (Some(downloaded), Some(installed), true) => format!("downloaded {downloaded}, installed {installed}"),
            (Some(downloaded), None, true) => format!("downloaded and installed {downloaded}"),
            (Some(downloaded), _, false) => format!("downloaded {downloaded}, not installed"),
            (None, Some(installed), true) if game.streamed => {
                format!("installed {installed} by a streamed install: no archives here")
            }
            (None, installed, true) => format!("installed {}", installed.as_deref().unwrap_or("(version unknown)")),
            (None, _, false) => "nothing yet".to_owned(),
        };
        facts.push(fact("Here", here));
        let latest = match &game.latest_version {
            Some(latest) => {
                let with = game.peers.iter().filter(|peer| &peer.version == latest).count();
                format!(
                    "{latest}, on {with} of {} peer{}",
                    game.peers.len(),
                    plural(game.peers.len())
                )
            }
            None => "no peer has it now".to_owned(),
        };
        facts.push(fact("Latest", latest));
        if game.peers.is_empty() {
            facts.push(fact("Peers", "none"));
        }
        facts.extend(peer_facts("Peers", &game.peers));
        facts.extend(peer_facts("Left", &game.left_peers));

        let mut download = format!("{} (the latest version's archives)", format_size(latest_size(game)));
        if let Some(partial) = &game.partial {
            download.push_str(&format!(
                "; {} of {} fetched and kept, d resumes",
                format_size(partial.done),
                format_size(partial.total)
            ));
        }
        facts.push(fact("Download", download));
        let installed = match game.expanded_size {
            Some(bytes) => format!("{} once unpacked", format_size(bytes)),
            None => "unknown: its peers do not say".to_owned(),
        };
        facts.push(fact("Installed", installed));
        let free = self.free_space.map_or_else(
            || "unknown".to_owned(),
            |free| format!("{} in the game dir", format_size(free)),
        );
        facts.push(fact("Free", free));

        let layout = GameLayout::new(&self.game_dir, &game.id);
        facts.push(fact("Folder", layout.root.display().to_string()));
        let install_path = layout.local().display().to_string();
        facts.push(fact(
            "Install",
            if game.installed {
                install_path
            } else {
                format!("not installed; it goes into {install_path}")
            },
        ));
        if let Some(kind) = self.active.get(&game.id) {
            let percent = self
                .downloads
                .get(&game.id)
                .and_then(|info| info.progress.as_ref())
                .map(|progress| format!(", {:.0}%", progress.fraction() * 100.0))
                .unwrap_or_default();
            facts.push(fact("Running", format!("{}{percent}", busy_verb(*kind))));
        }
        let last_error = match (&game.install_failure, self.history.last_failure(&game.id)) {
            (_, Some(ended)) => Some(format!(
                "{} at {}: {}",
                ended.kind.label(),
                ended.time,
                ended.outcome_text()
            )),
            (Some(failure), None) => Some(format!("install: {failure}")),
            (None, None) => None,
        };
        facts.push(fact("Last error", last_error.unwrap_or_else(|| "none".to_owned())));
        Details {
            title: format!("{} ({})", game.name, game.id),
            facts,
        }
    }

    fn peer_details(&self, addr: SocketAddr) -> Details {
        let Some(row) = self.peer_rows().into_iter().find(|row| row.summary.addr == addr) else {
            return Details {
                title: addr.to_string(),
                facts: vec![fact("Status", "no longer listed: it left a while ago")],
            };
        };
        let peer = &row.summary;
        let mut facts = vec![fact("Address", addr.to_string())];
        if !peer.peer_id.is_empty() {
            facts.push(fact("Peer id", peer.peer_id.clone()));
        }
        let status = match (&row.absent, peer.unanswered_for) {
            (Some(absent), _) => absent.why.clone(),
            (None, Some(silent)) => format!("silent for {} s: it is dropped if it stays silent", silent.as_secs()),
            (None, None) => format!("answers pings ({})", row.status()),
        };
        facts.push(fact("Status", status));
        facts.push(fact("Listed", format!("since {}", row.since)));
        if let Some(rate) = row.rate {
            let how = if row.partial {
                " (blocks of a game it is downloading too)"
            } else {
                ""
            };
            facts.push(fact("Sends us", format!("{}{how}", format_rate(rate))));
        }
        for upload in self.uploads.iter().filter(|upload| upload.to == addr) {
            let text = format!("{}: {}", self.name_of(&upload.id), format_rate(upload.bytes_per_second));
            facts.push(fact("Gets", text));
        }
        // What it has (or had, for a peer that left), as the library knows it.
        let games: Vec<String> = self
            .snapshot
            .games
            .iter()
            .filter_map(|game| {
                let has = |peers: &[PeerGameVersion]| peers.iter().find(|p| p.addr == addr).map(|p| p.version.clone());
                has(&game.peers)
                    .or_else(|| has(&game.left_peers))
                    .map(|version| format!("{} {version}", game.name))
            })
            .collect();
        let count = if row.absent.is_some() {
            games.len()
        } else {
            peer.game_count
        };
        facts.push(fact(
            "Games",
            if peer.library_loaded || row.absent.is_some() {
                format!("{count} shared")
            } else {
                "its list has not arrived yet".to_owned()
            },
        ));
        facts.extend(games.into_iter().map(|game| fact("", game)));
        Details {
            title: format!("peer {}", peer.name),
            facts,
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::PeerEvent;
    use crate::ui::input::{Action, InputMode};
    use crate::ui::test_support::*;

    fn text_of(details: &Details, label: &str) -> String {
        let at = details
            .facts
            .iter()
            .position(|fact| fact.label == label)
            .unwrap_or_else(|| panic!("no {label} in {details:#?}"));
        // A fact and its unlabelled continuation lines.
        let rest = details.facts[at + 1..].iter().take_while(|fact| fact.label.is_empty());
        std::iter::once(&details.facts[at])
            .chain(rest)
            .map(|fact| fact.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn enter_shows_a_games_description_peers_sizes_path_state_and_last_error() {
        let mut app = app();
        let mut library = snapshot();
        library.games[3].description = Some("Fast-paced free arena shooter.".into());
        app.update(PeerEvent::LibraryUpdated(library));
        app.set_free_space(Some(20 * GIB));
        select(&mut app, "Xonotic");
        app.update(PeerEvent::DownloadGameFilesFailed {
            id: "xonotic".into(),
            reason: "every peer failed (10.0.0.2:1: connection lost)".into(),
        });

        app.apply(Action::Details);
        assert_eq!(app.input_mode(), InputMode::Details);
        let details = app.details().unwrap();
        assert_eq!(details.title, "Xonotic (xonotic)");
        assert_eq!(text_of(&details, "About"), "Fast-paced free arena shooter.");
        assert_eq!(text_of(&details, "State"), "download failed: R retries");
        assert_eq!(text_of(&details, "Here"), "nothing yet");
        assert_eq!(text_of(&details, "Latest"), "0.8.6, on 2 of 2 peers");
        assert_eq!(
            text_of(&details, "Peers"),
            "alice (10.0.0.2:1): 0.8.6, 3.0 GiB\nbob (10.0.0.2:2): 0.8.6, 3.0 GiB"
        );
        assert!(text_of(&details, "Download").starts_with("3.0 GiB"));
        assert_eq!(text_of(&details, "Installed"), "4.0 GiB once unpacked");
        assert_eq!(text_of(&details, "Free"), "20.0 GiB in the game dir");
        assert_eq!(text_of(&details, "Folder"), "/games/xonotic");
        assert_eq!(
            text_of(&details, "Install"),
            "not installed; it goes into /games/xonotic/local"
        );
        assert_eq!(
            text_of(&details, "Last error"),
            "download at 12:00:00: failed: every peer failed (10.0.0.2:1: connection lost)"
        );

        // Esc closes it; so does Enter, which opened it.
        app.apply(Action::Back);
        assert!(!app.is_details_open());
        app.apply(Action::Details);
        assert!(app.is_details_open());
    }

    #[test]
    fn an_installed_game_without_a_description_says_so_and_where_it_is() {
        let mut app = app_with_library();
        select(&mut app, "OpenArena");
        app.apply(Action::Details);
        let details = app.details().unwrap();
        assert_eq!(text_of(&details, "About"), "(the catalog has no description)");
        assert_eq!(text_of(&details, "Here"), "downloaded and installed 0.8.8");
        assert_eq!(text_of(&details, "Install"), "/games/openarena/local");
        assert_eq!(text_of(&details, "Last error"), "none");
    }

    #[test]
    fn a_peers_details_show_its_status_and_games() {
        let mut app = app_with_library();
        app.apply(Action::NextPane);
        app.apply(Action::Details);
        let details = app.details().unwrap();
        assert_eq!(details.title, "peer alice");
        assert_eq!(text_of(&details, "Address"), "10.0.0.2:1");
        assert_eq!(text_of(&details, "Status"), "answers pings (3ms)");
        // alice has the remote versions of the snapshot: Xonotic and Warsow's update.
        assert_eq!(text_of(&details, "Games"), "2 shared\nWarsow 2.1\nXonotic 0.8.6");
    }

    #[test]
    fn the_log_pane_and_an_uncatalogued_folder_say_why_there_are_no_details() {
        let mut app = app_with_library();
        select(&mut app, "mystuff");
        app.apply(Action::Details);
        assert!(!app.is_details_open());
        assert!(app.status().unwrap().text.contains("not in the catalog"));
        for _ in 0..3 {
            app.apply(Action::NextPane);
        }
        app.apply(Action::Details);
        assert!(!app.is_details_open());
        assert!(app.status().unwrap().text.contains("the log shows every line whole"));
    }

    #[test]
    fn long_details_scroll_within_the_screen_and_no_further() {
        let mut app = app();
        let mut library = snapshot();
        let xonotic = &mut library.games[3];
        xonotic.peers = (1..=40)
            .map(|port| PeerGameVersion {
                addr: addr(port),
                peer_name: format!("peer{port}"),
                version: "0.8.6".into(),
                size: 3 * GIB,
                expanded_size: None,
            })
            .collect();
        app.update(PeerEvent::LibraryUpdated(library));
        app.set_screen_size(80, 24);
        select(&mut app, "Xonotic");
        app.apply(Action::Details);
        let (columns, visible) = crate::ui::render::details_text_size(80, 24);
        let rows = app.details().unwrap().rows(columns).len();
        assert!(rows > visible, "{rows} rows for {visible}");
        app.apply(Action::Bottom);
        assert_eq!(app.details_scroll(), rows - visible);
        app.apply(Action::Up);
        assert_eq!(app.details_scroll(), rows - visible - 1);
        app.apply(Action::Top);
        assert_eq!(app.details_scroll(), 0);
        // The library cursor stayed where it was.
        app.apply(Action::Back);
        assert_eq!(
            app.library_rows()[app.selected_library_index().unwrap()].name,
            "Xonotic"
        );
    }
}
