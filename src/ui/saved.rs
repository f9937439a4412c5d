//! What the TUI keeps in the state dir between runs: how the user left the library (its
//! sort and filter, `tui-view.json`, written when the TUI ends) and the download queue
//! (`tui-queue.json`, written whenever it changes, so a crash keeps it too). A file that
//! cannot be read costs the user a sort order or a queue, never a start.

use std::io;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::app::{Queued, SortKey};
use crate::durable::replace_file;

const VIEW_FILE: &str = "tui-view.json";
const QUEUE_FILE: &str = "tui-queue.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedView {
    pub sort: SortKey,
    pub filter: String,
}

/// The downloads to resume at the next start, front first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQueue {
    pub downloads: Vec<Queued>,
}

/// `file` in `state_dir`, or the default when it is missing or unreadable (logged).
fn load<T: DeserializeOwned + Default>(state_dir: &Path, file: &str) -> T {
    let path = state_dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            tracing::warn!(path = %path.display(), %err, "ignoring an unreadable file");
            T::default()
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => T::default(),
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "cannot read");
            T::default()
        }
    }
}

fn save<T: Serialize>(value: &T, state_dir: &Path, file: &str) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    replace_file(&state_dir.join(format!("{file}.tmp")), &state_dir.join(file), &bytes)
}

impl SavedView {
    pub fn load(state_dir: &Path) -> SavedView {
        load(state_dir, VIEW_FILE)
    }

    pub fn save(&self, state_dir: &Path) -> io::Result<()> {
        save(self, state_dir, VIEW_FILE)
    }
}

impl SavedQueue {
    pub fn load(state_dir: &Path) -> SavedQueue {
        load(state_dir, QUEUE_FILE)
    }

    pub fn save(&self, state_dir: &Path) -> io::Result<()> {
        save(self, state_dir, QUEUE_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_view_comes_back_and_a_damaged_one_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SavedView::load(dir.path()), SavedView::default());
        let view = SavedView {
            sort: SortKey::Size,
            filter: "quake".into(),
        };
        view.save(dir.path()).unwrap();
        assert_eq!(SavedView::load(dir.path()), view);
        std::fs::write(dir.path().join(VIEW_FILE), b"{not json").unwrap();
        assert_eq!(SavedView::load(dir.path()), SavedView::default());
    }

    #[test]
    fn a_saved_queue_comes_back_in_its_order() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SavedQueue::load(dir.path()), SavedQueue::default());
        let queue = SavedQueue {
            downloads: vec![
                Queued {
                    id: "xonotic".into(),
                    paused: true,
                },
                Queued {
                    id: "openarena".into(),
                    paused: false,
                },
            ],
        };
        queue.save(dir.path()).unwrap();
        assert_eq!(SavedQueue::load(dir.path()), queue);
    }
}
