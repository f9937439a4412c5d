//! How the user left the library: its sort and filter, kept in the state dir
//! (`tui-view.json`) so the next start shows the same list. Read before the
//! terminal is taken and written after it is given back, never in the loop.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::app::SortKey;
use crate::durable::replace_file;

const FILE: &str = "tui-view.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedView {
    pub sort: SortKey,
    pub filter: String,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl SavedView {
    /// The saved view, or the default one when there is none or it cannot be read (a
    /// damaged file costs the user a sort order, not a start).
    pub fn load(state_dir: &Path) -> SavedView {
        let path = path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
                tracing::warn!(path = %path.display(), %err, "ignoring an unreadable saved view");
                SavedView::default()
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => SavedView::default(),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot read the saved view");
                SavedView::default()
            }
        }
    }

    pub fn save(&self, state_dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        replace_file(&state_dir.join(format!("{FILE}.tmp")), &path(state_dir), &bytes)
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
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert_eq!(SavedView::load(dir.path()), SavedView::default());
    }
}
