//! Each pane's cursor. A cursor is kept by key, not by position, so rows moving
//! under a new snapshot, a filter or a sort keep it on the same game, peer or
//! transfer; when its row goes away it stays at the same position.

use std::net::SocketAddr;

use super::{App, Pane, RowKey, TransferKey};

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

impl App {
    pub fn library_keys(&self) -> Vec<RowKey> {
        self.library_rows().into_iter().map(|row| row.key).collect()
    }

    fn peer_keys(&self) -> Vec<SocketAddr> {
        self.peer_rows().iter().map(|row| row.summary.addr).collect()
    }

    fn transfer_keys(&self) -> Vec<TransferKey> {
        self.transfer_rows().into_iter().map(|row| row.key).collect()
    }

    pub fn selected_library_index(&self) -> Option<usize> {
        self.library_selection.resolve(&self.library_keys())
    }

    pub fn selected_peer_index(&self) -> Option<usize> {
        self.peer_selection.resolve(&self.peer_keys())
    }

    pub fn selected_transfer_index(&self) -> Option<usize> {
        self.transfer_selection.resolve(&self.transfer_keys())
    }

    /// Moves the focused pane's cursor; in the log pane, scrolls.
    pub(super) fn move_selection(&mut self, delta: isize) {
        match self.focus {
            Pane::Library => {
                let keys = self.library_keys();
                self.library_selection.move_by(&keys, delta);
            }
            Pane::Peers => {
                let keys = self.peer_keys();
                self.peer_selection.move_by(&keys, delta);
            }
            Pane::Transfers => {
                let keys = self.transfer_keys();
                self.transfer_selection.move_by(&keys, delta);
            }
            Pane::Log => {
                // Up (a negative delta) scrolls back in time.
                let scroll = self.log_scroll();
                let scroll = if delta < 0 {
                    scroll.saturating_add(delta.unsigned_abs())
                } else {
                    scroll.saturating_sub(delta.unsigned_abs())
                };
                self.log_scroll = scroll.min(self.log_max_scroll());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::peer::{GameState, PeerEvent};
    use crate::ui::test_support::*;

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
}
