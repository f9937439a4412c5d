//! The block hashes the server hands out (`GetBlockHashes`), and the check that a file
//! about to be served is still the version they describe.
//!
//! A few games' side files are kept in memory, most recently used first: a 20,000-file game
//! would otherwise parse its whole side file once per request. An entry is never trusted
//! blindly: the blocks must be recorded for the root the served list announces *and* for
//! the stamp (length, mtime) of the handle about to be read. On a miss the game's side file
//! is read again once (a rescan may have rewritten it); if it still misses, the file changed
//! since it was hashed and is not served until the rescan the file watcher triggers.

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::content::{ContentHash, FileHashes};
use crate::library::RecordedGame;

/// Games whose recorded hashes are kept in memory (a 500 GB game's take 16 MB).
const CACHED_GAMES: usize = 4;

/// Recently used games first.
type Cache = VecDeque<(String, Arc<RecordedGame>)>;

/// Cheap to clone (shared), so blocking work can take it along.
#[derive(Clone)]
pub struct RecordedHashes {
    state_dir: Arc<Path>,
    games: Arc<Mutex<Cache>>,
}

impl RecordedHashes {
    pub fn new(state_dir: &Path) -> Self {
        RecordedHashes {
            state_dir: state_dir.into(),
            games: Arc::default(),
        }
    }

    /// Where the library keeps the recorded hashes.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// `read` of the recorded blocks of `path` of game `id` if they describe the content
    /// `root` and the file version `file` holds now; `Ok(None)` if the file changed since it
    /// was hashed. Blocks (an fstat, and the side file on a miss).
    pub fn with_current<T>(
        &self,
        game_dir: &Path,
        id: &str,
        path: &str,
        root: &ContentHash,
        file: &File,
        read: impl FnOnce(&FileHashes) -> T,
    ) -> io::Result<Option<T>> {
        let meta: Metadata = file.metadata()?;
        if let Some(game) = self.cached(id)
            && let Some(blocks) = game.blocks(path, root, &meta)
        {
            return Ok(Some(read(blocks)));
        }
        let game = Arc::new(RecordedGame::load(&self.state_dir, game_dir, id)?);
        let result = game.blocks(path, root, &meta).map(read);
        self.remember(id, game);
        Ok(result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The queue holds no invariant a panic could break.
        self.games.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, id: &str) -> Option<Arc<RecordedGame>> {
        let mut games = self.lock();
        let position = games.iter().position(|(cached, _)| cached == id)?;
        let entry = games.remove(position)?;
        let game = entry.1.clone();
        games.push_front(entry);
        Some(game)
    }

    fn remember(&self, id: &str, game: Arc<RecordedGame>) {
        let mut games = self.lock();
        games.retain(|(cached, _)| cached != id);
        games.push_front((id.to_owned(), game));
        games.truncate(CACHED_GAMES);
    }
}
