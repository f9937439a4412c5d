//! The user's actions. A game action applies to the selected transfer's game
//! while the transfers pane has the focus, the selected library row otherwise;
//! each one that starts an operation opens with `idle_target`, which refuses a
//! busy game (only `cancel` wants a busy one). A refusal says why on the status
//! line and sends nothing. Destructive actions open a confirmation [`Dialog`]
//! first and act in `confirmed`.

use super::rows::left_peers_text;
use super::{App, Confirmed, Dialog, Fetch, Level, Pane, RowKey};
use crate::layout::GameLayout;
use crate::peer::space::{SpaceOperation, SpaceVerdict};
use crate::peer::verify::{Reference, VerifyReport};
use crate::peer::{GameState, LibraryEntry, OperationKind, PeerCommand};
use crate::ui::format::format_size;

/// Which game a game action applies to.
enum Target<'a> {
    Game(&'a LibraryEntry),
    Folder(&'a str),
}

impl App {
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
    pub(super) fn target_game(&mut self) -> Option<LibraryEntry> {
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
        if let Some(fetch) = self.fetching.get(&game.id) {
            return Some(format!(
                "{name} is busy: its {} is asking peers for the file list",
                fetch.label()
            ));
        }
        self.queued(&game.id).map(|(index, queued)| {
            if queued.paused {
                format!("{name}'s download is paused in the queue: p resumes it, c takes it out")
            } else {
                format!(
                    "{name} is queued, {} in line: p pauses it, J/K/N reorder, c takes it out",
                    super::ordinal(index + 1)
                )
            }
        })
    }

    /// The selected catalog game when nothing runs on it; otherwise `None`, with
    /// a status message saying why. Every action that starts an operation opens with it.
    fn idle_target(&mut self) -> Option<LibraryEntry> {
        let game = self.target_game()?;
        match self.busy_reason(&game) {
            Some(reason) => {
                self.say(Level::Warn, reason);
                None
            }
            None => Some(game),
        }
    }

    /// Says why an action does nothing; the action returns what this returns.
    pub(super) fn refuse(&mut self, why: String) -> Vec<PeerCommand> {
        self.say(Level::Warn, why);
        Vec::new()
    }

    pub(super) fn download(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.idle_target() else {
            return Vec::new();
        };
        let name = &game.name;
        let refusal = match game.state {
            GameState::RemoteOnly => return self.fetch(&game, Fetch::Download),
            GameState::UpdateAvailable => format!(
                "{name} is already downloaded; a newer version ({}) is available: press u to update",
                game.latest_version.as_deref().unwrap_or("?")
            ),
            GameState::Downloaded => format!("{name} is already downloaded (not installed): press i to install it"),
            GameState::InstallFailed => format!("{name} is already downloaded; its install failed: press i to retry"),
            GameState::Installed => format!("{name} is already downloaded and installed"),
            GameState::InstalledStreamed => {
                format!("{name} is installed (streamed: no archives here); its archives are only needed to share it")
            }
        };
        self.refuse(refusal)
    }

    pub(super) fn update_game(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.idle_target() else {
            return Vec::new();
        };
        let name = &game.name;
        let refusal = match game.state {
            GameState::UpdateAvailable => return self.fetch(&game, Fetch::Update),
            GameState::RemoteOnly => format!("{name} is not downloaded: press d to download it first"),
            GameState::Downloaded | GameState::InstallFailed | GameState::Installed | GameState::InstalledStreamed => {
                match game.local_newest() {
                    Some(version) => format!("{name} is up to date (version {version})"),
                    None => format!("{name} is up to date"),
                }
            }
        };
        self.refuse(refusal)
    }

    /// Asks for the file list; its arrival ([`PeerEvent::GotGameFiles`]) starts the download.
    pub(super) fn fetch(&mut self, game: &LibraryEntry, fetch: Fetch) -> Vec<PeerCommand> {
        let name = &game.name;
        if game.peers.is_empty() {
            return self.refuse(no_source(game));
        }
        // The TUI's runtime installs what it downloads. Only real sizes refuse; an estimate
        // (older peers) shows as the space warning instead.
        let operation = SpaceOperation::Download { install: true };
        if let Some(SpaceVerdict::Short(shortage)) = self.space_verdict(game, operation) {
            let text = shortage.message(name, &game.id, &self.game_dir);
            self.say(Level::Error, text);
            return Vec::new();
        }
        if self.slots_full() {
            self.enqueue(game);
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

    pub(super) fn stream_install(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.idle_target() else {
            return Vec::new();
        };
        let name = &game.name;
        let refusal = match game.state {
            GameState::Installed | GameState::InstalledStreamed => format!("{name} is already installed"),
            GameState::Downloaded | GameState::InstallFailed => {
                format!("{name} is already downloaded: press i to install it from its archives")
            }
            GameState::RemoteOnly | GameState::UpdateAvailable if game.peers.is_empty() => no_source(&game),
            GameState::RemoteOnly | GameState::UpdateAvailable => {
                match self.space_verdict(&game, SpaceOperation::StreamInstall) {
                    Some(SpaceVerdict::Short(shortage)) => shortage.message(name, &game.id, &self.game_dir),
                    _ => {
                        self.push_log(Level::Info, format!("{name}: asking a peer to stream its install"));
                        return vec![PeerCommand::StreamInstallGame { id: game.id.clone() }];
                    }
                }
            }
        };
        self.refuse(refusal)
    }

    /// `v`: hash the selected downloaded game; the outcome goes to the log.
    pub(super) fn verify(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.idle_target() else {
            return Vec::new();
        };
        if game.local_version.is_none() {
            let text = format!("{} is not downloaded here: there is nothing to verify", game.name);
            return self.refuse(text);
        }
        let (id, name) = (game.id.clone(), game.name.clone());
        self.say(Level::Info, format!("verifying {name}..."));
        vec![PeerCommand::VerifyGame { id, repair: false }]
    }

    /// After a verify found damage that peers can repair: ask whether to fetch it.
    pub(super) fn offer_repair(&mut self, report: &VerifyReport) {
        let Reference::Peers(peers) = report.reference else {
            return;
        };
        if report.damaged.is_empty() || self.dialog.is_some() {
            return;
        }
        let name = self.name_of(&report.id).to_owned();
        self.dialog = Some(Dialog {
            title: format!("Repair {name}?"),
            message: format!(
                "{} of {} files of {name} are damaged (see the log). Fetch only the damaged blocks from {peers} peer(s)?",
                report.damaged.len(),
                report.files
            ),
            confirm: Confirmed::Repair(report.id.clone()),
        });
    }

    pub(super) fn install(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.idle_target() else {
            return Vec::new();
        };
        let name = &game.name;
        if game.streamed {
            let text = format!(
                "{name} was installed by a streamed install: there are no archives here to install from \
                 (s streams it again when a peer has a newer version)"
            );
            return self.refuse(text);
        }
        if game.local_version.is_none() {
            let text =
                format!("{name} is not downloaded: press d to download it (it installs itself) or s to stream it");
            return self.refuse(text);
        }
        if game.installed_is_current() && game.install_failure.is_none() {
            // Unpacking again replaces local/, and whatever was changed in it.
            self.dialog = Some(Dialog {
                title: format!("Reinstall {name}?"),
                message: format!(
                    "This unpacks the downloaded archives of {name} again and replaces its installed files ({}).",
                    GameLayout::new(&self.game_dir, &game.id).local().display()
                ),
                confirm: Confirmed::Install(game.id.clone()),
            });
            return Vec::new();
        }
        vec![PeerCommand::InstallGame { id: game.id.clone() }]
    }

    pub(super) fn ask_uninstall(&mut self) {
        let Some(game) = self.idle_target() else {
            return;
        };
        let name = &game.name;
        if !game.installed {
            self.say(Level::Warn, format!("{name} is not installed"));
            return;
        }
        let after = if game.streamed {
            "It was a streamed install: no archives are kept here, so its folder goes too."
        } else {
            "The downloaded archives stay."
        };
        self.dialog = Some(Dialog {
            title: format!("Uninstall {name}?"),
            message: format!(
                "This deletes the installed files of {name} ({}). {after}",
                GameLayout::new(&self.game_dir, &game.id).local().display()
            ),
            confirm: Confirmed::Uninstall(game.id.clone()),
        });
    }

    pub(super) fn ask_remove(&mut self) {
        let Some(game) = self.idle_target() else {
            return;
        };
        let name = &game.name;
        if game.local_version.is_none()
            && let Some(partial) = &game.partial
        {
            self.dialog = Some(Dialog {
                title: format!("Remove the unfinished download of {name}?"),
                message: format!(
                    "This deletes the {} of {name} {} fetched so far; d would resume it instead.",
                    format_size(partial.done),
                    partial.version
                ),
                confirm: Confirmed::RemoveDownloaded(game.id.clone()),
            });
            return;
        }
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

    pub(super) fn cancel(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        let name = &game.name;
        match self.active.get(&game.id) {
            Some(kind) if kind.is_cancellable() => {
                let id = game.id.clone();
                self.say_while_running(&id, format!("cancelling the {} of {name}", kind.label()));
                return vec![PeerCommand::CancelDownload { id }];
            }
            Some(kind) => {
                let text = format!(
                    "the {} of {name} cannot be cancelled; it finishes on its own",
                    kind.label()
                );
                return self.refuse(text);
            }
            None => {}
        }
        if self.dequeue(&game) {
            return Vec::new();
        }
        let Some(fetch) = self.fetching.remove(&game.id) else {
            return self.refuse(format!(
                "nothing to cancel: no download or install of {name} is running"
            ));
        };
        // The answer will be ignored, so nothing starts.
        self.report(
            Level::Info,
            format!("{name}: {} cancelled before it started", fetch.label()),
        );
        Vec::new()
    }

    pub(super) fn ask_quit(&mut self) {
        if matches!(&self.dialog, Some(dialog) if dialog.confirm == Confirmed::Quit) {
            // Quit pressed again in the quit dialog: that is a yes.
            self.quit = true;
            return;
        }
        // Detaching stops nothing: the runtime is the other process's.
        if self.runtime_stopped || self.attached.is_some() {
            self.quit = true;
            return;
        }
        let Some(message) = self.quit_question() else {
            self.quit = true;
            return;
        };
        self.dialog = Some(Dialog {
            title: "Quit lanspread?".to_owned(),
            message,
            confirm: Confirmed::Quit,
        });
    }

    /// Asks whether to stop the runtime this TUI is attached to; a TUI of its own runtime
    /// stops it by quitting.
    pub(super) fn ask_stop_runtime(&mut self) {
        let Some(attached) = &self.attached else {
            self.say(Level::Info, "this TUI runs its own peer: q quits it".to_owned());
            return;
        };
        let running = match self.running_labels() {
            labels if labels.is_empty() => String::new(),
            labels => format!(" Running now: {}.", labels.join(", ")),
        };
        self.dialog = Some(Dialog {
            title: format!("Stop the {} (pid {})?", attached.runtime, attached.pid),
            message: format!(
                "It stops serving the LAN, and every front end attached to it detaches. \
                 Its downloads pause and resume at its next start; an install is rolled back.{running}"
            ),
            confirm: Confirmed::StopRuntime,
        });
    }

    /// What quitting would stop, as it is now (the dialog shows it live), or `None` when
    /// nothing runs.
    pub(super) fn quit_question(&self) -> Option<String> {
        let running = self.running_labels();
        (!running.is_empty()).then(|| {
            format!(
                "Still running: {}. Quitting stops it: a download keeps what it verified and resumes at the next start, an install is rolled back.",
                running.join(", ")
            )
        })
    }

    /// What runs, for people: "download of Xonotic 25%".
    fn running_labels(&self) -> Vec<String> {
        self.running_transfers()
            .iter()
            .map(|row| {
                let percent = row
                    .progress
                    .as_ref()
                    .map(|progress| format!(" {:.0}%", progress.fraction() * 100.0))
                    .unwrap_or_default();
                format!("{} of {}{percent}", row.label, row.name)
            })
            .collect()
    }

    /// Runs a failed operation again: the selected ended transfer's, or in the library the
    /// game's last one that failed.
    pub(super) fn retry(&mut self) -> Vec<PeerCommand> {
        let Some(game) = self.target_game() else {
            return Vec::new();
        };
        let name = &game.name;
        let selected_ended = match self.focus {
            Pane::Transfers => self
                .selected_transfer_index()
                .and_then(|index| self.transfer_rows().swap_remove(index).ended),
            _ => None,
        };
        let kind = match selected_ended {
            Some(ended) => match ended.retry() {
                Some(kind) => kind,
                None => {
                    let outcome = ended.outcome_text();
                    return self.refuse(format!(
                        "nothing to retry: the {} of {name} {outcome}",
                        ended.kind.label()
                    ));
                }
            },
            None => match self.history.last_failure(&game.id) {
                Some(ended) => ended.kind,
                None if game.state == GameState::InstallFailed => OperationKind::Install,
                None => return self.refuse(format!("nothing to retry: nothing of {name} failed")),
            },
        };
        match kind {
            OperationKind::Download if game.state == GameState::UpdateAvailable => self.update_game(),
            OperationKind::Download => self.download(),
            OperationKind::Install => self.install(),
            OperationKind::StreamInstall => self.stream_install(),
            OperationKind::Verify => self.verify(),
            OperationKind::Uninstall => {
                self.ask_uninstall();
                Vec::new()
            }
            OperationKind::RemoveDownloaded => {
                self.ask_remove();
                Vec::new()
            }
        }
    }

    pub(super) fn confirmed(&mut self, confirm: Confirmed) -> Vec<PeerCommand> {
        match confirm {
            Confirmed::Install(id) => vec![PeerCommand::InstallGame { id }],
            Confirmed::Uninstall(id) => vec![PeerCommand::UninstallGame { id }],
            Confirmed::RemoveDownloaded(id) => vec![PeerCommand::RemoveDownloadedGame { id }],
            Confirmed::Repair(id) => vec![PeerCommand::VerifyGame { id, repair: true }],
            Confirmed::Quit => {
                self.quit = true;
                Vec::new()
            }
            Confirmed::StopRuntime => vec![PeerCommand::Shutdown],
        }
    }
}

/// Why `game` cannot be fetched now: no peer that answers has it.
fn no_source(game: &LibraryEntry) -> String {
    let name = &game.name;
    if game.left_peers.is_empty() {
        format!("no peer shares {name} right now")
    } else {
        format!(
            "no peer shares {name} right now ({}); it can be fetched once one is back",
            left_peers_text(game)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{state_of, status_text};
    use crate::peer::{OperationKind, PeerCommand, PeerEvent};
    use crate::ui::app::{Attachment, Pane};
    use crate::ui::input::{Action, InputMode};
    use crate::ui::test_support::*;

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
    fn verify_logs_its_report_and_offers_a_repair_only_when_peers_can_give_one() {
        use crate::peer::verify::{Damage, DamageKind, Reference, VerifyReport};
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        assert!(app.apply(Action::Verify).is_empty(), "xonotic is not downloaded here");

        select(&mut app, "Quake");
        let commands = app.apply(Action::Verify);
        assert!(matches!(commands.as_slice(), [PeerCommand::VerifyGame { id, repair: false }] if id == "quake"));
        let report = |reference| VerifyReport {
            id: "quake".into(),
            version: "1.09".into(),
            reference,
            files: 3,
            bytes: 3 << 20,
            damaged: vec![Damage {
                path: "pak0.pak".into(),
                kind: DamageKind::Blocks { blocks: vec![1], of: 2 },
            }],
            unchecked: Vec::new(),
        };
        app.update(PeerEvent::VerifyFinished(report(Reference::Recorded)));
        assert!(app.dialog().is_none(), "no peer to repair from");
        let logged: Vec<&str> = app.log_lines().iter().map(|line| line.text.as_str()).collect();
        assert!(
            logged
                .iter()
                .any(|line| line.contains("quake 1.09 is damaged: 1 of 3 files")),
            "{logged:?}"
        );
        assert!(
            logged
                .iter()
                .any(|line| line.contains("pak0.pak: 1 of 2 blocks differ (block 1)")),
            "{logged:?}"
        );

        app.update(PeerEvent::VerifyFinished(report(Reference::Peers(2))));
        assert_eq!(app.dialog().unwrap().title, "Repair Quake?");
        let commands = app.apply(Action::Confirm);
        assert!(matches!(commands.as_slice(), [PeerCommand::VerifyGame { id, repair: true }] if id == "quake"));
    }

    #[test]
    fn an_unfinished_download_shows_how_far_it_got_and_r_offers_to_remove_it() {
        use crate::peer::download::journal::PartialDownload;
        let mut library = crate::ui::test_support::snapshot();
        let xonotic = library.games.iter_mut().find(|game| game.id == "xonotic").unwrap();
        xonotic.partial = Some(PartialDownload {
            version: "0.8.6".into(),
            done: 63 << 20,
            total: 100 << 20,
        });
        let mut app = app_with_library();
        app.update(PeerEvent::LibraryUpdated(library));
        assert_eq!(super::super::tests::state_of(&app, "Xonotic"), "partial 63%: d resumes");
        select(&mut app, "Xonotic");
        assert!(app.apply(Action::RemoveDownloaded).is_empty());
        assert_eq!(
            app.dialog().unwrap().title,
            "Remove the unfinished download of Xonotic?"
        );
        let commands = app.apply(Action::Confirm);
        assert!(matches!(commands.as_slice(), [PeerCommand::RemoveDownloadedGame { id }] if id == "xonotic"));
    }

    #[test]
    fn attached_q_detaches_at_once_and_shift_q_stops_the_serve_after_asking() {
        let attached = || {
            app_with_library().with_attached(Some(Attachment {
                runtime: "serve".into(),
                pid: 4242,
            }))
        };
        // Detaching stops nothing, so nothing is asked, even while something runs.
        let mut app = attached();
        app.update(active("xonotic", OperationKind::Download));
        assert!(app.apply(Action::Quit).is_empty());
        assert!(app.should_quit());

        let mut app = attached();
        assert!(app.apply(Action::StopRuntime).is_empty(), "it asks first");
        let dialog = app.dialog().unwrap();
        assert_eq!(dialog.title, "Stop the serve (pid 4242)?");
        app.apply(Action::Back);
        assert!(app.dialog().is_none());
        app.apply(Action::StopRuntime);
        assert!(matches!(app.apply(Action::Confirm)[..], [PeerCommand::Shutdown]));
        assert!(!app.should_quit(), "the TUI stays until the serve has stopped");

        // A TUI of its own runtime stops it by quitting: Q only says so.
        let mut app = app_with_library();
        assert!(app.apply(Action::StopRuntime).is_empty());
        assert!(app.dialog().is_none());
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
        // The question follows what runs while it is open.
        app.update(PeerEvent::DownloadProgress(progress("xonotic", 2 * GIB, 4 * GIB)));
        let message = app.dialog().unwrap().message;
        assert!(message.contains("download of Xonotic 50%"), "{message}");
        app.apply(Action::Back);
        assert!(!app.should_quit());
        assert_eq!(app.status().unwrap().text, "not quitting; everything goes on");
        app.apply(Action::Quit);
        // Ctrl-C / q again in the dialog means yes.
        app.apply(Action::Quit);
        assert!(app.should_quit());
    }

    #[test]
    fn enter_does_not_answer_a_dialog() {
        use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let mut app = app_with_library();
        select(&mut app, "OpenArena");
        app.apply(Action::Uninstall);
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(crate::ui::input::action_for(app.input_mode(), &enter), None);
        let yes = KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(
            crate::ui::input::action_for(app.input_mode(), &yes),
            Some(Action::Confirm)
        );
    }

    #[test]
    fn the_cancelling_message_goes_when_the_cancel_has_ended() {
        let mut app = app_with_library();
        app.update(active("xonotic", OperationKind::Download));
        select(&mut app, "Xonotic");
        app.apply(Action::Cancel);
        assert_eq!(app.status().unwrap().text, "cancelling the download of Xonotic");
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        assert_eq!(app.status(), None, "nothing runs that is being cancelled");
        app.update(active("xonotic", OperationKind::Download));
        app.apply(Action::Cancel);
        app.update(PeerEvent::DownloadGameFilesCancelled { id: "xonotic".into() });
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        assert_eq!(
            app.status().unwrap().text,
            "download of Xonotic cancelled; partial files removed",
            "the outcome replaces it"
        );
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
        app.set_free_space(Some(3 * GIB));
        assert!(app.apply(Action::StreamInstall).is_empty());
        assert_eq!(
            status_text(&app),
            "not enough space for Xonotic: even a streamed install needs 4.0 GiB, 3.0 GiB free on /games"
        );
        app.set_free_space(Some(4 * GIB));
        assert_eq!(app.apply(Action::StreamInstall).len(), 1, "fits as a streamed install");
    }

    #[test]
    fn a_download_that_only_fits_as_a_streamed_install_is_refused_with_the_offer() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        // 3 GiB of archives + 4 GiB unpacked do not fit 6 GiB; the 4 GiB of a streamed install do.
        app.set_free_space(Some(6 * GIB));
        assert!(app.apply(Action::Download).is_empty());
        assert_eq!(
            status_text(&app),
            "not enough space for Xonotic: downloading and installing it needs 7.0 GiB, 6.0 GiB free on /games; \
             a streamed install needs only 4.0 GiB: press s, or `lanspread get --stream xonotic`"
        );
        let commands = app.apply(Action::StreamInstall);
        assert!(matches!(commands.as_slice(), [PeerCommand::StreamInstallGame { id }] if id == "xonotic"));

        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        app.set_free_space(Some(7 * GIB));
        let commands = app.apply(Action::Download);
        assert!(
            matches!(commands.as_slice(), [PeerCommand::GetGame { id }] if id == "xonotic"),
            "exactly enough space: {commands:?}"
        );
    }
}
