//! Operations that ended: what, how and why, kept for the Transfers pane until the user
//! clears them (a failure must not vanish with its transfer row), and for the details
//! view's "last error".

use std::collections::VecDeque;

use super::App;
use crate::peer::OperationKind;

/// Ended operations kept; the oldest go first.
pub const HISTORY_CAPACITY: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it was asked; the text says what (`1.2 GiB in 4 s (300 MB/s) from 3 peers`).
    Done(String),
    Failed(String),
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Unique among the entries: what the Transfers pane's cursor holds on to.
    pub seq: u64,
    pub id: String,
    pub kind: OperationKind,
    pub outcome: Outcome,
    /// When it ended (log clock).
    pub time: String,
}

impl Ended {
    /// What the retry key does for it: only a failure is retried, by running it again.
    pub fn retry(&self) -> Option<OperationKind> {
        matches!(self.outcome, Outcome::Failed(_)).then_some(self.kind)
    }

    /// "failed: every peer failed ...", "done: 1.2 GiB in 4 s", "cancelled".
    pub fn outcome_text(&self) -> String {
        match &self.outcome {
            Outcome::Done(text) if text.is_empty() => "done".to_owned(),
            Outcome::Done(text) => format!("done: {text}"),
            Outcome::Failed(reason) => format!("failed: {reason}"),
            Outcome::Cancelled => "cancelled".to_owned(),
        }
    }
}

/// The ended operations, newest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    ended: VecDeque<Ended>,
    next_seq: u64,
}

impl History {
    pub fn iter(&self) -> impl Iterator<Item = &Ended> {
        self.ended.iter()
    }

    pub fn len(&self) -> usize {
        self.ended.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ended.is_empty()
    }

    /// The newest entry of `id`, if it failed and nothing of the game ended well since.
    pub fn last_failure(&self, id: &str) -> Option<&Ended> {
        self.ended
            .iter()
            .find(|ended| ended.id == id)
            .filter(|ended| matches!(ended.outcome, Outcome::Failed(_)))
    }

    fn push(&mut self, mut ended: Ended) {
        ended.seq = self.next_seq;
        self.next_seq += 1;
        self.ended.push_front(ended);
        self.ended.truncate(HISTORY_CAPACITY);
    }

    /// Forgets what ended; returns how many entries went.
    pub fn clear(&mut self) -> usize {
        let count = self.ended.len();
        self.ended.clear();
        count
    }
}

impl App {
    /// Records that the `kind` operation of `id` ended with `outcome`.
    pub(super) fn ended(&mut self, id: &str, kind: OperationKind, outcome: Outcome) {
        let time = (self.clock)();
        self.history.push(Ended {
            seq: 0,
            id: id.to_owned(),
            kind,
            outcome,
            time,
        });
    }

    pub fn history(&self) -> &History {
        &self.history
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::state_of;
    use super::*;
    use crate::peer::{PeerCommand, PeerEvent};
    use crate::ui::app::{Pane, TransferKey};
    use crate::ui::input::Action;
    use crate::ui::test_support::*;

    fn fail_download(app: &mut App, id: &str, reason: &str) {
        app.update(active(id, OperationKind::Download));
        app.update(PeerEvent::DownloadGameFilesFailed {
            id: id.into(),
            reason: reason.into(),
        });
        app.update(PeerEvent::ActiveOperations(Vec::new()));
    }

    fn ended(app: &App) -> Vec<(String, String)> {
        app.transfer_rows()
            .into_iter()
            .filter(|row| row.ended.is_some())
            .map(|row| (row.name, row.activity))
            .collect()
    }

    #[test]
    fn a_failed_download_stays_listed_with_its_reason_marks_its_game_and_r_retries_it() {
        let mut app = app_with_library();
        select(&mut app, "Xonotic");
        fail_download(&mut app, "xonotic", "every peer failed (10.0.0.2:1: connection lost)");
        assert_eq!(
            ended(&app),
            [(
                "Xonotic".to_owned(),
                "failed: every peer failed (10.0.0.2:1: connection lost)".to_owned()
            )]
        );
        assert_eq!(state_of(&app, "Xonotic"), "download failed: R retries");

        // From the library row...
        let commands = app.apply(Action::Retry);
        assert!(
            matches!(commands.as_slice(), [PeerCommand::GetGame { id }] if id == "xonotic"),
            "{commands:?}"
        );
        app.update(PeerEvent::GameFilesUnavailable {
            id: "xonotic".into(),
            reason: "no peer has it".into(),
        });
        // ...and from the ended transfer, where the newest is first.
        app.apply(Action::NextPane);
        app.apply(Action::NextPane);
        assert_eq!(app.focus(), Pane::Transfers);
        let rows = app.transfer_rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].activity, "failed: no peer has it");
        assert!(matches!(rows[0].key, TransferKey::Ended(_)));
        let commands = app.apply(Action::Retry);
        assert!(
            matches!(commands.as_slice(), [PeerCommand::GetGame { id }] if id == "xonotic"),
            "{commands:?}"
        );
    }

    #[test]
    fn finished_and_cancelled_transfers_stay_until_cleared_and_only_failures_are_retried() {
        let mut app = app_with_library();
        app.update(active("xonotic", OperationKind::Download));
        app.update(download_finished("xonotic", "0.8.6"));
        app.update(PeerEvent::InstallGameFinished {
            id: "xonotic".into(),
            updated: false,
        });
        app.update(active("warsow", OperationKind::Download));
        app.update(PeerEvent::DownloadGameFilesCancelled { id: "warsow".into() });
        app.update(PeerEvent::ActiveOperations(Vec::new()));
        assert_eq!(
            ended(&app),
            [
                ("Warsow".to_owned(), "cancelled".to_owned()),
                ("Xonotic".to_owned(), "done: installed".to_owned()),
                (
                    "Xonotic".to_owned(),
                    "done: 0.8.6, 4.0 GiB in 20s (214.7 MB/s) from 2 peers".to_owned()
                ),
            ]
        );
        assert_eq!(state_of(&app, "Warsow"), "update available", "a cancel is no failure");

        app.apply(Action::NextPane);
        app.apply(Action::NextPane);
        assert!(app.apply(Action::Retry).is_empty());
        assert_eq!(
            app.status().unwrap().text,
            "nothing to retry: the download of Warsow cancelled"
        );

        app.apply(Action::ClearEnded);
        assert_eq!(app.status().unwrap().text, "cleared 3 ended transfers");
        assert!(app.transfer_rows().is_empty());
        app.apply(Action::ClearEnded);
        assert_eq!(app.status().unwrap().text, "nothing to clear: no transfer has ended");
    }

    #[test]
    fn the_history_keeps_the_newest_entries() {
        let mut app = app_with_library();
        for round in 0..HISTORY_CAPACITY + 5 {
            fail_download(&mut app, "xonotic", &format!("attempt {round}"));
        }
        assert_eq!(app.history().len(), HISTORY_CAPACITY);
        let newest = app.history().iter().next().unwrap();
        assert_eq!(
            newest.outcome,
            Outcome::Failed(format!("attempt {}", HISTORY_CAPACITY + 4))
        );
    }
}
