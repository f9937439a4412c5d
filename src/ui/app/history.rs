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

    fn push(&mut self, ended: Ended) {
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
