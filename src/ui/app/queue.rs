//! The download queue. At most `downloads_at_once` downloads run (file-list requests
//! count); a download asked for beyond that waits in the queue, in an order the user
//! sets (`K`/`J` move it, `N` makes it next). `p` pauses a running download (it keeps
//! what it verified, and goes to the front of the queue, paused) and resumes a paused
//! one. The queue, running downloads first, is kept in the state dir (see
//! `ui::saved`), so a restart resumes where the user left.

use serde::{Deserialize, Serialize};

use super::{App, Level};
use crate::peer::{GameState, LibraryEntry, OperationKind, PeerCommand};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub id: String,
    /// Waits until the user resumes it, not just for a free slot.
    pub paused: bool,
}

/// Where `K`, `J` and `N` move a queued download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMove {
    Up,
    Down,
    /// To the front: it starts at the next free slot.
    Next,
}

/// "1st", "2nd", "3rd", "11th".
pub fn ordinal(position: usize) -> String {
    let suffix = match (position % 10, position % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{position}{suffix}")
}

/// Whether a download of `game` still has something to fetch.
fn wants_download(game: &LibraryEntry) -> bool {
    matches!(game.state, GameState::RemoteOnly | GameState::UpdateAvailable)
}

impl App {
    /// Starts with the queue the user left and the number of downloads that run at once.
    pub fn with_queue(mut self, queue: Vec<Queued>, downloads_at_once: usize) -> App {
        self.queue = queue;
        self.downloads_at_once = downloads_at_once.max(1);
        self
    }

    /// The queue, front first.
    pub fn queue(&self) -> &[Queued] {
        &self.queue
    }

    /// What a restart should resume: the downloads that run now (a quit pauses them, so
    /// they keep what they verified), then the queue.
    pub fn queue_to_keep(&self) -> Vec<Queued> {
        let running = self
            .active
            .iter()
            .filter(|(_, kind)| **kind == OperationKind::Download)
            .map(|(id, _)| id)
            .chain(self.fetching.keys())
            .chain(&self.starting);
        let mut keep: Vec<Queued> = Vec::new();
        for id in running {
            if !keep.iter().any(|kept| &kept.id == id) && self.queued(id).is_none() {
                keep.push(Queued {
                    id: id.clone(),
                    paused: false,
                });
            }
        }
        keep.extend(self.queue.iter().cloned());
        keep
    }

    /// Downloads that hold a slot: running, asked of the runtime, or asking peers for
    /// their file list.
    fn downloads_running(&self) -> usize {
        let running = self
            .active
            .values()
            .filter(|kind| **kind == OperationKind::Download)
            .count();
        let waiting = self
            .fetching
            .keys()
            .chain(&self.starting)
            .filter(|id| !self.active.contains_key(*id))
            .count();
        running + waiting
    }

    pub(super) fn slots_full(&self) -> bool {
        self.downloads_running() >= self.downloads_at_once
    }

    /// The queued entry of `id` and its place (0 = front).
    pub fn queued(&self, id: &str) -> Option<(usize, &Queued)> {
        self.queue.iter().enumerate().find(|(_, queued)| queued.id == id)
    }

    /// Puts `game` at the back of the queue: every download slot is taken.
    pub(super) fn enqueue(&mut self, game: &LibraryEntry) {
        self.queue.push(Queued {
            id: game.id.clone(),
            paused: false,
        });
        let text = format!(
            "{} queued, {} in line: {} download{} run at once (p pauses, J/K/N reorder, c takes it out)",
            game.name,
            ordinal(self.queue.len()),
            self.downloads_at_once,
            if self.downloads_at_once == 1 { "" } else { "s" }
        );
        self.say(Level::Info, text);
    }

    /// Starts queued downloads while slots are free: the first that is not paused, idle,
    /// and has a peer to fetch from. Entries whose game needs no download any more go.
    pub(super) fn start_queued(&mut self) -> Vec<PeerCommand> {
        // Until the local library is read, a downloaded game would look remote.
        if !self.snapshot.local_scanned || self.queue.is_empty() {
            return Vec::new();
        }
        let snapshot = &self.snapshot;
        self.queue
            .retain(|queued| snapshot.game(&queued.id).is_none_or(wants_download));
        let mut commands = Vec::new();
        while !self.slots_full() {
            let startable = self.queue.iter().position(|queued| {
                !queued.paused
                    && !self.active.contains_key(&queued.id)
                    && !self.fetching.contains_key(&queued.id)
                    && self
                        .snapshot
                        .game(&queued.id)
                        .is_some_and(|game| !game.peers.is_empty())
            });
            let Some(index) = startable else { break };
            let queued = self.queue.remove(index);
            let Some(game) = self.snapshot.game(&queued.id).cloned() else {
                continue;
            };
            let fetch = if game.state == GameState::UpdateAvailable {
                super::Fetch::Update
            } else {
                super::Fetch::Download
            };
            commands.extend(self.fetch(&game, fetch));
        }
        commands
    }

    /// `p`: pauses the selected running download, pauses or resumes a queued one.
    pub(super) fn pause_or_resume(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        let name = game.name.clone();
        if let Some((index, queued)) = self.queued(&game.id) {
            let paused = !queued.paused;
            self.queue[index].paused = paused;
            let text = if paused {
                format!("{name} paused in the queue (p resumes it)")
            } else if self.slots_full() {
                format!("{name} resumes when a download slot is free")
            } else {
                format!("resuming {name}")
            };
            self.say(Level::Info, text);
            return self.start_queued();
        }
        match self.active.get(&game.id) {
            Some(OperationKind::Download) => {
                // At the front, so that a resume starts it first.
                self.queue.insert(
                    0,
                    Queued {
                        id: game.id.clone(),
                        paused: true,
                    },
                );
                self.say_while_running(
                    &game.id,
                    format!("pausing {name}; it keeps what it verified (p resumes it)"),
                );
                vec![PeerCommand::PauseDownload { id: game.id }]
            }
            Some(kind) => self.refuse(format!(
                "only a download can be paused; the {} of {name} runs to its end (c cancels it)",
                kind.label()
            )),
            None if self.fetching.contains_key(&game.id) => self.refuse(format!(
                "{name} is asking peers for its file list; pause it once it runs"
            )),
            None => self.refuse(format!("nothing to pause: no download of {name} is running or queued")),
        }
    }

    /// `K`, `J`, `N`: moves the selected queued download.
    pub(super) fn move_in_queue(&mut self, how: QueueMove) {
        let Some(game) = self.target_game() else {
            return;
        };
        let Some((index, _)) = self.queued(&game.id) else {
            let text = format!(
                "{} is not queued: J/K/N reorder the downloads waiting in the queue",
                game.name
            );
            return self.say(Level::Warn, text);
        };
        let target = match how {
            QueueMove::Up => index.saturating_sub(1),
            QueueMove::Down => (index + 1).min(self.queue.len() - 1),
            QueueMove::Next => 0,
        };
        let queued = self.queue.remove(index);
        self.queue.insert(target, queued);
        let text = format!("{} is {} in line", game.name, ordinal(target + 1));
        self.say(Level::Info, text);
    }

    /// Takes `id` out of the queue, if it is there; says so.
    pub(super) fn dequeue(&mut self, game: &LibraryEntry) -> bool {
        let Some((index, _)) = self.queued(&game.id) else {
            return false;
        };
        self.queue.remove(index);
        let kept = match &game.partial {
            Some(partial) => format!(
                "; the {} it fetched stay (r removes them)",
                crate::ui::format::format_size(partial.done)
            ),
            None => String::new(),
        };
        self.say(Level::Info, format!("{} taken out of the queue{kept}", game.name));
        true
    }

    /// How a queued (or paused) game's Library row reads its state.
    pub(super) fn queue_state(&self, game: &LibraryEntry) -> Option<String> {
        let (index, queued) = self.queued(&game.id)?;
        if !queued.paused {
            return Some(format!("queued, {} in line", ordinal(index + 1)));
        }
        let at = game
            .partial
            .as_ref()
            .map(|partial| format!(" at {:.0}%", partial.done as f64 / partial.total.max(1) as f64 * 100.0))
            .unwrap_or_default();
        Some(format!("paused{at}: p resumes"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::state_of;
    use super::*;
    use crate::peer::{ActiveOperation, PeerEvent};
    use crate::ui::app::{Pane, TransferKey};
    use crate::ui::input::Action;
    use crate::ui::test_support::*;

    #[test]
    fn ordinals_read_as_words_do() {
        let read: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            read,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"
            ]
        );
    }

    /// The library of [`snapshot`] with three more games only peers have.
    fn lan(downloads_at_once: usize) -> App {
        let mut library = snapshot();
        for (id, name) in [("doom", "Doom"), ("hexen", "Hexen"), ("tyrian", "Tyrian")] {
            library
                .games
                .push(game(id, name, GameState::RemoteOnly, None, Some("1.0"), GIB));
        }
        let mut app = app().with_queue(Vec::new(), downloads_at_once);
        app.update(PeerEvent::LibraryUpdated(library));
        app
    }

    fn download(app: &mut App, name: &str) -> Vec<PeerCommand> {
        app.apply(Action::NextPane);
        while app.focus() != Pane::Library {
            app.apply(Action::NextPane);
        }
        select(app, name);
        app.apply(Action::Download)
    }

    fn running(app: &mut App, ids: &[&str]) -> Vec<PeerCommand> {
        app.update(PeerEvent::ActiveOperations(
            ids.iter()
                .map(|id| ActiveOperation {
                    id: (*id).into(),
                    kind: OperationKind::Download,
                })
                .collect(),
        ))
    }

    fn asked(commands: &[PeerCommand]) -> Vec<String> {
        commands
            .iter()
            .map(|command| match command {
                PeerCommand::GetGame { id } => format!("get {id}"),
                PeerCommand::FetchLatestFromPeers { id } => format!("update {id}"),
                PeerCommand::PauseDownload { id } => format!("pause {id}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn queue_of(app: &App) -> Vec<(String, bool)> {
        app.queue()
            .iter()
            .map(|queued| (queued.id.clone(), queued.paused))
            .collect()
    }

    #[test]
    fn downloads_beyond_the_limit_wait_and_the_next_starts_when_one_ends() {
        let mut app = lan(1);
        assert_eq!(asked(&download(&mut app, "Doom")), ["get doom"]);
        assert!(download(&mut app, "Hexen").is_empty());
        assert_eq!(
            app.status().unwrap().text,
            "Hexen queued, 1st in line: 1 download run at once (p pauses, J/K/N reorder, c takes it out)"
        );
        assert!(download(&mut app, "Xonotic").is_empty());
        assert_eq!(state_of(&app, "Hexen"), "queued, 1st in line");
        assert_eq!(state_of(&app, "Xonotic"), "queued, 2nd in line");
        let queued: Vec<String> = app
            .transfer_rows()
            .into_iter()
            .filter(|row| matches!(row.key, TransferKey::Queued(_)))
            .map(|row| row.activity)
            .collect();
        assert_eq!(queued, ["queued, 1st in line", "queued, 2nd in line"]);

        // Doom runs, then ends: Hexen starts, and only Hexen.
        assert!(running(&mut app, &["doom"]).is_empty());
        assert!(
            app.update(PeerEvent::DownloadGameFilesCancelled { id: "doom".into() })
                .is_empty()
        );
        assert_eq!(asked(&running(&mut app, &[])), ["get hexen"]);
        assert_eq!(queue_of(&app), [("xonotic".to_owned(), false)]);
        // Its file list is being asked for: that holds the slot too.
        assert!(running(&mut app, &[]).is_empty());
        assert_eq!(
            asked(&app.update(PeerEvent::GameFilesUnavailable {
                id: "hexen".into(),
                reason: "gone".into(),
            })),
            ["get xonotic"]
        );
        assert!(app.queue().is_empty());
    }

    #[test]
    fn a_download_asked_of_the_runtime_holds_its_slot_until_it_runs() {
        let mut app = lan(1);
        download(&mut app, "Doom");
        download(&mut app, "Hexen");
        // The file list arrives: the download is asked for, but not reported running yet.
        let commands = app.update(PeerEvent::GotGameFiles {
            id: "doom".into(),
            version: "1.0".into(),
            files: files(),
            peers: vec![addr(1)],
        });
        assert!(
            matches!(commands.as_slice(), [PeerCommand::DownloadGameFiles { id, .. }] if id == "doom"),
            "{commands:?}"
        );
        assert_eq!(queue_of(&app), [("hexen".to_owned(), false)]);
        assert!(running(&mut app, &["doom"]).is_empty());
        // Refused before it ran: the slot is free again.
        let mut app = lan(1);
        download(&mut app, "Doom");
        download(&mut app, "Hexen");
        app.update(PeerEvent::GotGameFiles {
            id: "doom".into(),
            version: "1.0".into(),
            files: files(),
            peers: vec![addr(1)],
        });
        let commands = app.update(PeerEvent::OperationRefused {
            id: "doom".into(),
            reason: "no room".into(),
        });
        assert_eq!(asked(&commands), ["get hexen"]);
    }

    #[test]
    fn the_queue_is_reordered_and_a_queued_download_taken_out() {
        let mut app = lan(1);
        download(&mut app, "Doom");
        for name in ["Hexen", "Tyrian", "Xonotic"] {
            download(&mut app, name);
        }
        let order = |app: &App| queue_of(app).into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(order(&app), ["hexen", "tyrian", "xonotic"]);
        select(&mut app, "Xonotic");
        app.apply(Action::Queue(QueueMove::Next));
        assert_eq!(app.status().unwrap().text, "Xonotic is 1st in line");
        assert_eq!(order(&app), ["xonotic", "hexen", "tyrian"]);
        select(&mut app, "Hexen");
        app.apply(Action::Queue(QueueMove::Down));
        assert_eq!(order(&app), ["xonotic", "tyrian", "hexen"]);
        app.apply(Action::Queue(QueueMove::Down));
        assert_eq!(order(&app), ["xonotic", "tyrian", "hexen"], "the back stays the back");
        app.apply(Action::Queue(QueueMove::Up));
        assert_eq!(order(&app), ["xonotic", "hexen", "tyrian"]);
        // In the Transfers pane, the queued rows are selected and moved the same way.
        app.apply(Action::NextPane);
        app.apply(Action::NextPane);
        app.apply(Action::Bottom);
        app.apply(Action::Queue(QueueMove::Next));
        assert_eq!(order(&app), ["tyrian", "xonotic", "hexen"]);

        select_in_library(&mut app, "Hexen");
        assert!(app.apply(Action::Cancel).is_empty());
        assert_eq!(app.status().unwrap().text, "Hexen taken out of the queue");
        assert_eq!(order(&app), ["tyrian", "xonotic"]);
        assert_eq!(state_of(&app, "Hexen"), "on 2 peers");

        select(&mut app, "Quake");
        app.apply(Action::Queue(QueueMove::Up));
        assert!(app.status().unwrap().text.starts_with("Quake is not queued"));
    }

    fn select_in_library(app: &mut App, name: &str) {
        while app.focus() != Pane::Library {
            app.apply(Action::NextPane);
        }
        select(app, name);
    }

    #[test]
    fn a_paused_download_keeps_its_place_and_waits_until_resumed() {
        let mut app = lan(1);
        download(&mut app, "Doom");
        download(&mut app, "Hexen");
        running(&mut app, &["doom"]);

        select(&mut app, "Doom");
        assert_eq!(asked(&app.apply(Action::PauseResume)), ["pause doom"]);
        assert_eq!(
            app.status().unwrap().text,
            "pausing Doom; it keeps what it verified (p resumes it)"
        );
        assert_eq!(queue_of(&app), [("doom".to_owned(), true), ("hexen".to_owned(), false)]);
        app.update(PeerEvent::DownloadGameFilesPaused { id: "doom".into() });
        // The slot goes to Hexen, not to the paused Doom.
        assert_eq!(asked(&running(&mut app, &[])), ["get hexen"]);
        assert_eq!(state_of(&app, "Doom"), "paused: p resumes");
        running(&mut app, &["hexen"]);

        // Resumed while Hexen runs: it waits for the slot, at the front.
        assert!(app.apply(Action::PauseResume).is_empty());
        assert_eq!(app.status().unwrap().text, "Doom resumes when a download slot is free");
        assert_eq!(asked(&running(&mut app, &[])), ["get doom"]);

        // Only a download pauses.
        app.update(PeerEvent::ActiveOperations(vec![ActiveOperation {
            id: "quake".into(),
            kind: OperationKind::Install,
        }]));
        select(&mut app, "Quake");
        assert!(app.apply(Action::PauseResume).is_empty());
        assert!(app.status().unwrap().text.starts_with("only a download can be paused"));
    }

    #[test]
    fn a_restart_resumes_the_running_downloads_first_once_the_library_is_known() {
        let mut app = lan(2);
        download(&mut app, "Doom");
        download(&mut app, "Hexen");
        download(&mut app, "Tyrian");
        running(&mut app, &["doom", "hexen"]);
        select(&mut app, "Tyrian");
        app.apply(Action::PauseResume);
        let kept = app.queue_to_keep();
        let kept_ids: Vec<(&str, bool)> = kept.iter().map(|q| (q.id.as_str(), q.paused)).collect();
        assert_eq!(kept_ids, [("doom", false), ("hexen", false), ("tyrian", true)]);

        // The next start: nothing starts before the local library is scanned and peers show.
        let mut next = app_with_queue(kept);
        let mut library = snapshot();
        library.local_scanned = false;
        for (id, name) in [("doom", "Doom"), ("hexen", "Hexen"), ("tyrian", "Tyrian")] {
            library
                .games
                .push(game(id, name, GameState::RemoteOnly, None, Some("1.0"), GIB));
        }
        assert!(next.update(PeerEvent::LibraryUpdated(library.clone())).is_empty());
        library.local_scanned = true;
        assert_eq!(
            asked(&next.update(PeerEvent::LibraryUpdated(library))),
            ["get doom", "get hexen"]
        );
        assert_eq!(queue_of(&next), [("tyrian".to_owned(), true)]);
    }

    fn app_with_queue(queue: Vec<Queued>) -> App {
        app().with_queue(queue, 2)
    }

    #[test]
    fn a_queued_game_that_got_downloaded_leaves_the_queue() {
        let mut app = lan(1);
        download(&mut app, "Doom");
        download(&mut app, "Hexen");
        let mut library = app.snapshot().clone();
        library.games.iter_mut().find(|game| game.id == "hexen").unwrap().state = GameState::Installed;
        app.update(PeerEvent::LibraryUpdated(library));
        assert!(app.queue().is_empty());
    }
}
