//! The actor's view of the local library, and the rules for rescanning it.
//!
//! Rescans are per game id where possible (the monitor reports which ids
//! changed; the index keeps the rest cheap), one scan job at a time, with
//! requests merged while a job runs. A rescan of a game with an operation in
//! progress is held and run once after the operation settles, so observers
//! never see a half-written game; a full scan keeps such a game's old entry
//! for the same reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::library::{Game, GameDB, HashProgress, Hashing, LibraryError, LibraryIndex, scan_game, scan_local_library};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanScope {
    All,
    Games(BTreeSet<String>),
}

impl ScanScope {
    fn merge(self, other: ScanScope) -> ScanScope {
        match (self, other) {
            (ScanScope::Games(mut a), ScanScope::Games(b)) => {
                a.extend(b);
                ScanScope::Games(a)
            }
            _ => ScanScope::All,
        }
    }
}

/// A scan to run on a blocking thread.
pub struct ScanJob {
    generation: u64,
    game_dir: PathBuf,
    scope: ScanScope,
    index: LibraryIndex,
}

pub struct ScanResult {
    generation: u64,
    index: LibraryIndex,
    outcome: Result<ScanOutcome, LibraryError>,
}

enum ScanOutcome {
    All(GameDB),
    /// Per id: the game, or `None` when it is neither downloaded nor installed;
    /// and whether it is a folder whose name is not in the catalog (listed, never shared).
    Games(Vec<(String, Option<Game>, bool)>),
}

impl ScanJob {
    /// Scans (hashing new and changed files) and saves the index. Blocks.
    pub fn run(self, catalog: &Catalog, state_dir: &Path) -> ScanResult {
        // Hashing progress is not reported anywhere yet.
        self.run_reporting(catalog, state_dir, &mut |_| {})
    }

    /// [`ScanJob::run`], telling `progress` how far the hashing of each game has got.
    pub fn run_reporting(
        mut self,
        catalog: &Catalog,
        state_dir: &Path,
        progress: &mut dyn FnMut(HashProgress<'_>),
    ) -> ScanResult {
        if !self.index.is_for(&self.game_dir) {
            self.index = LibraryIndex::load_for(state_dir, &self.game_dir);
        }
        let hashing = &mut Hashing::Compute(progress);
        let outcome = match &self.scope {
            ScanScope::All => {
                scan_local_library(&self.game_dir, catalog, &mut self.index, hashing).map(ScanOutcome::All)
            }
            ScanScope::Games(ids) => Ok(ScanOutcome::Games(
                ids.iter()
                    .map(|id| {
                        if catalog.contains(id) {
                            (
                                id.clone(),
                                scan_game(&self.game_dir, id, catalog, &mut self.index, hashing),
                                false,
                            )
                        } else {
                            (id.clone(), None, self.game_dir.join(id).is_dir())
                        }
                    })
                    .collect(),
            )),
        };
        if let Err(err) = self.index.save(state_dir) {
            tracing::warn!("cannot save the library index in {}: {err}", state_dir.display());
        }
        ScanResult {
            generation: self.generation,
            index: self.index,
            outcome,
        }
    }
}

/// What applying a scan changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Games whose local state differs from before.
    pub changed: BTreeSet<String>,
    pub error: Option<String>,
    /// The result was for an earlier game dir and was dropped.
    pub stale: bool,
}

pub struct LocalLibrary {
    pub games: GameDB,
    game_dir: PathBuf,
    generation: u64,
    /// `None` while a job holds it.
    index: Option<LibraryIndex>,
    pending: Option<ScanScope>,
    /// Ids whose rescan waits for their operation to settle.
    held: BTreeSet<String>,
}

impl LocalLibrary {
    pub fn new(game_dir: &Path) -> Self {
        LocalLibrary {
            games: GameDB::default(),
            game_dir: game_dir.to_owned(),
            generation: 0,
            index: Some(LibraryIndex::default()),
            pending: Some(ScanScope::All),
            held: BTreeSet::new(),
        }
    }

    pub fn game_dir(&self) -> &Path {
        &self.game_dir
    }

    /// Switches game dir: everything known is dropped and a full scan is queued.
    pub fn set_game_dir(&mut self, game_dir: &Path) {
        self.game_dir = game_dir.to_owned();
        self.generation += 1;
        self.games = GameDB::default();
        self.held.clear();
        self.pending = Some(ScanScope::All);
    }

    /// Queues a rescan; ids for which `busy` holds are held until [`LocalLibrary::settled`].
    pub fn request(&mut self, scope: ScanScope, busy: impl Fn(&str) -> bool) {
        let scope = match scope {
            ScanScope::All => ScanScope::All,
            ScanScope::Games(ids) => {
                let (held, now): (BTreeSet<String>, BTreeSet<String>) = ids.into_iter().partition(|id| busy(id));
                self.held.extend(held);
                if now.is_empty() {
                    return;
                }
                ScanScope::Games(now)
            }
        };
        self.pending = Some(match self.pending.take() {
            Some(pending) => pending.merge(scope),
            None => scope,
        });
    }

    /// An operation on `id` ended: rescan it once (it certainly changed, held or not).
    pub fn settled(&mut self, id: &str) {
        self.held.remove(id);
        self.request(ScanScope::Games(BTreeSet::from([id.to_owned()])), |_| false);
    }

    /// The next job, if one is queued and none is running.
    pub fn next_job(&mut self) -> Option<ScanJob> {
        // One job at a time: a running job holds the index.
        self.index.as_ref()?;
        let scope = self.pending.take()?;
        let index = self.index.take()?;
        Some(ScanJob {
            generation: self.generation,
            game_dir: self.game_dir.clone(),
            scope,
            index,
        })
    }

    /// Folds a finished job in. Games for which `busy` holds keep their old entry.
    pub fn apply(&mut self, result: ScanResult, busy: impl Fn(&str) -> bool) -> Applied {
        self.index = Some(result.index);
        if result.generation != self.generation {
            return Applied {
                stale: true,
                ..Applied::default()
            };
        }
        let outcome = match result.outcome {
            Ok(outcome) => outcome,
            Err(err) => {
                // Not requeued here (that could spin on an unreadable dir): the next change or periodic scan retries.
                return Applied {
                    error: Some(err.to_string()),
                    ..Applied::default()
                };
            }
        };
        let mut changed = BTreeSet::new();
        let mut update = |games: &mut GameDB, id: &str, new: Option<Game>, held: &mut BTreeSet<String>| {
            if busy(id) {
                held.insert(id.to_owned());
                return;
            }
            let old = games.games.get(id);
            if old != new.as_ref() {
                changed.insert(id.to_owned());
                match new {
                    Some(game) => games.games.insert(id.to_owned(), game),
                    None => games.games.remove(id),
                };
            }
        };
        match outcome {
            ScanOutcome::All(mut fresh) => {
                let ids: BTreeSet<String> = fresh.games.keys().chain(self.games.games.keys()).cloned().collect();
                for id in ids {
                    let new = fresh.games.remove(&id);
                    update(&mut self.games, &id, new, &mut self.held);
                }
                self.games.uncatalogued = fresh.uncatalogued;
            }
            ScanOutcome::Games(results) => {
                for (id, game, uncatalogued_folder) in results {
                    update(&mut self.games, &id, game, &mut self.held);
                    let list = &mut self.games.uncatalogued;
                    let listed = list.contains(&id);
                    if uncatalogued_folder && !listed {
                        list.push(id);
                        list.sort();
                    } else if !uncatalogued_folder && listed {
                        list.retain(|name| *name != id);
                    }
                }
            }
        }
        Applied {
            changed,
            ..Applied::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> ScanScope {
        ScanScope::Games(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn requests_merge_while_a_job_runs() {
        let mut local = LocalLibrary::new(Path::new("/games"));
        let job = local.next_job().expect("the initial full scan");
        assert_eq!(job.scope, ScanScope::All);
        local.request(ids(&["a"]), |_| false);
        local.request(ids(&["b"]), |_| false);
        assert!(local.next_job().is_none(), "one job at a time");
        local.index = Some(job.index);
        assert_eq!(local.next_job().unwrap().scope, ids(&["a", "b"]));
    }

    #[test]
    fn a_busy_game_is_held_and_rescanned_once_after_it_settles() {
        let mut local = LocalLibrary::new(Path::new("/games"));
        local.pending = None;
        local.request(ids(&["busy", "idle"]), |id| id == "busy");
        local.request(ids(&["busy"]), |id| id == "busy");
        assert!(local.held.contains("busy"));
        assert_eq!(local.next_job().unwrap().scope, ids(&["idle"]));
        local.index = Some(LibraryIndex::default());
        assert!(local.next_job().is_none(), "nothing else queued while busy");
        local.settled("busy");
        assert!(!local.held.contains("busy"));
        assert_eq!(local.next_job().unwrap().scope, ids(&["busy"]));
    }

    #[test]
    fn results_for_an_old_game_dir_are_dropped() {
        let mut local = LocalLibrary::new(Path::new("/old"));
        let job = local.next_job().unwrap();
        local.set_game_dir(Path::new("/new"));
        let result = ScanResult {
            generation: job.generation,
            index: job.index,
            outcome: Ok(ScanOutcome::All(GameDB::default())),
        };
        assert!(local.apply(result, |_| false).stale);
        assert_eq!(local.next_job().unwrap().game_dir, PathBuf::from("/new"));
    }
}
