//! The actor's view of the local library, and the rules for rescanning and hashing it.
//!
//! Rescans are per game id where possible (the monitor reports which ids
//! changed; the index keeps the rest cheap), one scan job at a time, with
//! requests merged while a job runs. A rescan of a game with an operation in
//! progress is held and run once after the operation settles, so observers
//! never see a half-written game; a full scan keeps such a game's old entry
//! for the same reason.
//!
//! Hashing runs beside the scans, not in them, so a first start with 40 GiB of
//! new games shares its other games at once. A scan never hashes
//! ([`Hashing::Defer`]): every game whose roots the index knows is published when
//! the scan is applied, and each game with files to hash comes back as a
//! [`HashTask`] for the queue here. One task runs at a time on a blocking thread,
//! smallest first, without the index: the index keeps one owner, the scan job. A
//! finished task waits here for the index, goes in only if the index still holds
//! the scan it was made from, and its game is then rescanned like any other, which
//! finds it warm, publishes it and saves the index. So only a scan publishes, and
//! only games with every root known ([`LocalLibrary::shared`]: the server never
//! serves a game without hashes). A game that changed while being hashed fails
//! that check or is no longer fresh, and is hashed again: a scan offering a task
//! for a game already queued or running replaces it (cancelling the running one)
//! unless it saw the same stamps. A game with an operation running is not hashed;
//! the rescan after the operation offers it again. A new game dir or shutdown
//! cancels the running task and empties the queue.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::HashingProgress;
use crate::catalog::Catalog;
use crate::library::{
    Game, GameDB, HashKey, HashTask, HashedGame, Hashing, LibraryError, LibraryIndex, scan_game, scan_local_library,
};

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
    /// The games found with files to hash.
    tasks: Vec<HashTask>,
}

enum ScanOutcome {
    All(GameDB),
    /// Per id: the game, or `None` when it is neither downloaded nor installed;
    /// and whether it is a folder whose name is not in the catalog (listed, never shared).
    Games(Vec<(String, Option<Game>, bool)>),
}

impl ScanJob {
    /// Scans (hashing nothing: games with files to hash become tasks) and saves the index. Blocks.
    pub fn run(mut self, catalog: &Catalog, state_dir: &Path) -> ScanResult {
        if !self.index.is_for(&self.game_dir) {
            self.index = LibraryIndex::load_for(state_dir, &self.game_dir);
        }
        let mut tasks = Vec::new();
        let hashing = &mut Hashing::Defer(&mut tasks);
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
            tasks,
        }
    }
}

/// One game's hashing, to run on a blocking thread.
pub struct HashJob {
    generation: u64,
    task: HashTask,
    cancel: CancellationToken,
    done: Arc<AtomicU64>,
}

pub struct HashOutcome {
    generation: u64,
    key: HashKey,
    result: io::Result<HashedGame>,
}

impl HashJob {
    /// Hashes the game's new and changed files, publishing the bytes done so far. Blocks.
    pub fn run(self) -> HashOutcome {
        let key = self.task.key();
        let (cancel, done) = (self.cancel, self.done);
        let result = self.task.run(&mut |hashed| done.store(hashed, Ordering::Relaxed), &|| {
            cancel.is_cancelled()
        });
        HashOutcome {
            generation: self.generation,
            key,
            result,
        }
    }

    /// What to report if [`HashJob::run`] panics, so the queue moves on.
    pub fn panicked(&self) -> HashOutcome {
        HashOutcome {
            generation: self.generation,
            key: self.task.key(),
            result: Err(io::Error::other("the hashing thread panicked")),
        }
    }
}

/// What became of a hash job.
#[derive(Debug, PartialEq, Eq)]
pub enum HashEnd {
    /// Its hashes wait for the index; rescan the game to publish it.
    Hashed(String),
    Failed {
        id: String,
        error: String,
    },
    /// Cancelled, or for an earlier game dir: nothing to do.
    Dropped,
}

/// The whole of one stretch of hashing, from an empty queue to an empty queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRunSummary {
    pub games: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

struct RunningHash {
    key: HashKey,
    bytes: u64,
    cancel: CancellationToken,
    done: Arc<AtomicU64>,
}

struct HashRun {
    started: Instant,
    games: usize,
    bytes: u64,
}

/// See the module note.
#[derive(Default)]
struct HashQueue {
    queued: Vec<HashTask>,
    /// At most one; it stays here until its outcome arrives, even once cancelled.
    running: Option<RunningHash>,
    /// Hashed, waiting for the index (a scan job may hold it).
    finished: Vec<HashedGame>,
    /// Hashed, until a scan that started after its hashes went into the index is applied.
    publishing: BTreeSet<String>,
    run: Option<HashRun>,
    reported: Option<HashingProgress>,
}

impl HashQueue {
    /// Queues `task`, unless the same scan of its game is queued, running or hashed already.
    fn offer(&mut self, task: HashTask) {
        let key = task.key();
        if let Some(running) = &self.running
            && running.key.id == key.id
        {
            if running.key == key && !running.cancel.is_cancelled() {
                return;
            }
            running.cancel.cancel();
        }
        if self.finished.iter().any(|hashed| hashed.key() == key) {
            return;
        }
        self.queued.retain(|queued| queued.id() != key.id);
        self.queued.push(task);
        self.run.get_or_insert_with(|| HashRun {
            started: Instant::now(),
            games: 0,
            bytes: 0,
        });
    }

    /// Stops hashing `id`: it is gone, hashed, or about to change.
    fn forget(&mut self, id: &str) {
        self.queued.retain(|queued| queued.id() != id);
        self.publishing.remove(id);
        if let Some(running) = &self.running
            && running.key.id == id
        {
            running.cancel.cancel();
        }
    }

    fn clear(&mut self) {
        self.queued.clear();
        self.finished.clear();
        self.publishing.clear();
        if let Some(running) = &self.running {
            running.cancel.cancel();
        }
    }

    fn is_cancelled(running: &RunningHash) -> bool {
        running.cancel.is_cancelled()
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
    hashing: HashQueue,
    /// Whether games with files to hash are queued for hashing (see [`Self::without_hashing`]).
    hashes: bool,
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
            hashing: HashQueue::default(),
            hashes: true,
        }
    }

    /// A library that never hashes: games with files to hash are listed without their roots
    /// and never shared (`Config::hash_library`).
    pub fn without_hashing(mut self) -> Self {
        self.hashes = false;
        self
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
        self.hashing.clear();
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
        let mut index = self.index.take()?;
        for hashed in self.hashing.finished.drain(..) {
            let id = hashed.key().id;
            if !index.insert_hashed(hashed) {
                tracing::debug!(game = id, "dropping hashes of a scan that is out of date");
            }
        }
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
        // The games this scan looked at: each is now hashed, gone, or offered again below.
        let scanned: Vec<String> = match &outcome {
            ScanOutcome::All(fresh) => {
                let queued = self.hashing.queued.iter().map(|task| task.id().to_owned());
                let running = self.hashing.running.iter().map(|running| running.key.id.clone());
                fresh.games.keys().cloned().chain(queued).chain(running).collect()
            }
            ScanOutcome::Games(results) => results.iter().map(|(id, ..)| id.clone()).collect(),
        };
        let offered: BTreeSet<&str> = result.tasks.iter().map(HashTask::id).collect();
        for id in &scanned {
            // Still waiting for the index means this scan saw the game without its hashes.
            if !self.hashing.finished.iter().any(|hashed| hashed.key().id == *id) {
                self.hashing.publishing.remove(id);
            }
        }
        for id in scanned.iter().filter(|id| !offered.contains(id.as_str()) && !busy(id)) {
            self.hashing.forget(id);
        }
        for task in result.tasks {
            if self.hashes && !busy(task.id()) {
                self.hashing.offer(task);
            }
        }
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

impl LocalLibrary {
    /// The games that may be shared: those with every root known.
    pub fn shared(&self) -> GameDB {
        let mut shared = self.games.clone();
        shared.games.retain(|_, game| game.is_hashed());
        shared
    }

    /// An operation starts on `id`: stop hashing it (its rescan afterwards offers it again).
    pub fn stop_hashing(&mut self, id: &str) {
        self.hashing.forget(id);
    }

    /// Shutdown: cancels the running hash job and forgets the queue.
    pub fn cancel_hashing(&mut self) {
        self.hashing.clear();
    }

    pub fn is_hashing(&self) -> bool {
        self.hashing.running.is_some() || !self.hashing.queued.is_empty()
    }

    /// The next hash job (the smallest game first), if one is queued and none is running.
    pub fn next_hash(&mut self) -> Option<HashJob> {
        if self.hashing.running.is_some() {
            return None;
        }
        let (smallest, _) = self
            .hashing
            .queued
            .iter()
            .enumerate()
            .min_by_key(|(_, task)| (task.bytes(), task.id().to_owned()))?;
        let task = self.hashing.queued.remove(smallest);
        let (cancel, done) = (CancellationToken::new(), Arc::new(AtomicU64::new(0)));
        self.hashing.running = Some(RunningHash {
            key: task.key(),
            bytes: task.bytes(),
            cancel: cancel.clone(),
            done: done.clone(),
        });
        Some(HashJob {
            generation: self.generation,
            task,
            cancel,
            done,
        })
    }

    /// Folds a finished hash job in.
    pub fn hashed(&mut self, outcome: HashOutcome) -> HashEnd {
        // Only one job runs, so this is its outcome.
        let running = self.hashing.running.take();
        let cancelled = running.as_ref().is_some_and(HashQueue::is_cancelled);
        if outcome.generation != self.generation || cancelled {
            return HashEnd::Dropped;
        }
        match outcome.result {
            Ok(hashed) => {
                if let Some(run) = &mut self.hashing.run {
                    run.games += 1;
                    run.bytes += hashed.hashed_bytes();
                }
                let id = outcome.key.id;
                self.hashing.finished.push(hashed);
                self.hashing.publishing.insert(id.clone());
                HashEnd::Hashed(id)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => HashEnd::Dropped,
            Err(err) => HashEnd::Failed {
                id: outcome.key.id,
                error: err.to_string(),
            },
        }
    }

    /// How far the hashing has got, when that changed since the last call.
    pub fn hash_progress(&mut self) -> Option<HashingProgress> {
        let queue = &mut self.hashing;
        let run = queue.run.as_ref()?;
        let running = queue
            .running
            .as_ref()
            .filter(|running| !HashQueue::is_cancelled(running));
        let running_done = running.map_or(0, |running| running.done.load(Ordering::Relaxed));
        // A changed file may hash more than it was listed with.
        let running_total = running.map_or(0, |running| running.bytes.max(running_done));
        let mut games: Vec<String> = running.map(|running| running.key.id.clone()).into_iter().collect();
        games.extend(queue.queued.iter().map(|task| task.id().to_owned()));
        if games.is_empty() {
            // Only publishing is left: the end follows.
            return None;
        }
        let progress = HashingProgress {
            games,
            done_bytes: run.bytes + running_done,
            total_bytes: run.bytes + running_total + queue.queued.iter().map(HashTask::bytes).sum::<u64>(),
        };
        if queue.reported.as_ref() == Some(&progress) {
            return None;
        }
        queue.reported = Some(progress.clone());
        Some(progress)
    }

    /// The stretch of hashing that just ended, once: nothing is queued or running any more,
    /// and every game it hashed is published.
    pub fn hash_run_ended(&mut self) -> Option<HashRunSummary> {
        if self.is_hashing() || !self.hashing.publishing.is_empty() {
            return None;
        }
        let run = self.hashing.run.take()?;
        self.hashing.reported = None;
        Some(HashRunSummary {
            games: run.games,
            bytes: run.bytes,
            elapsed: run.started.elapsed(),
        })
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

    fn write(path: &Path, bytes: &[u8], mtime_secs: u64) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(mtime_secs))
            .unwrap();
    }

    /// Runs the queued scan job and applies it.
    fn scan(local: &mut LocalLibrary, catalog: &Catalog, state: &Path) -> Applied {
        let job = local.next_job().expect("a scan is queued");
        let result = job.run(catalog, state);
        local.apply(result, |_| false)
    }

    fn shared_root(local: &LocalLibrary, id: &str, path: &str) -> Option<crate::content::ContentHash> {
        let game = local.shared().games.remove(id)?;
        game.files.into_iter().find(|file| file.path == path)?.hash
    }

    /// A game dir with `openarena` hashed on an earlier start, and a new `xonotic`.
    fn warm_and_new(games: &Path, state: &Path, catalog: &Catalog, new: &[u8]) {
        write(&games.join("openarena/version.ini"), b"1", 1_000);
        write(&games.join("openarena/oa.pk3"), &[7; 5000], 1_000);
        let mut index = LibraryIndex::load_for(state, games);
        scan_local_library(games, catalog, &mut index, &mut Hashing::Compute(&mut |_| {})).unwrap();
        index.save(state).unwrap();
        write(&games.join("xonotic/version.ini"), b"2", 1_000);
        write(&games.join("xonotic/data.pk3"), new, 1_000);
    }

    #[test]
    fn a_warm_game_is_shared_at_once_and_a_new_one_once_hashed() {
        let (games, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (games, state, catalog) = (games.path(), state.path(), Catalog::bundled());
        let new = vec![3; 3 << 20];
        warm_and_new(games, state, &catalog, &new);
        let mut local = LocalLibrary::new(games);
        scan(&mut local, &catalog, state);

        // Published by the scan: the warm game only. The new one is listed, with no roots.
        assert!(shared_root(&local, "openarena", "oa.pk3").is_some());
        assert!(!local.shared().games.contains_key("xonotic"));
        let listed = &local.games.games["xonotic"];
        assert!(listed.is_downloaded() && !listed.is_hashed());
        let progress = local.hash_progress().expect("hashing starts");
        let total = new.len() as u64 + 1;
        assert_eq!(
            (progress.games, progress.done_bytes, progress.total_bytes),
            (vec!["xonotic".to_owned()], 0, total)
        );

        let job = local.next_hash().expect("xonotic's hash job");
        assert!(local.next_hash().is_none(), "one game at a time");
        // A rescan while it is hashed (the periodic one, say) neither queues it again nor stops it.
        local.request(ScanScope::All, |_| false);
        scan(&mut local, &catalog, state);
        assert!(local.next_hash().is_none());
        assert!(!job.cancel.is_cancelled());

        assert_eq!(local.hashed(job.run()), HashEnd::Hashed("xonotic".into()));
        assert!(!local.is_hashing());
        assert!(!local.shared().games.contains_key("xonotic"), "published by its rescan");
        assert_eq!(local.hash_run_ended(), None, "not over until it is published");
        local.request(ScanScope::Games(BTreeSet::from(["xonotic".to_owned()])), |_| false);
        let applied = scan(&mut local, &catalog, state);
        assert_eq!(applied.changed, BTreeSet::from(["xonotic".to_owned()]));
        assert_eq!(
            shared_root(&local, "xonotic", "data.pk3"),
            Some(crate::content::root_of(&new))
        );
        let run = local.hash_run_ended().expect("the end of hashing");
        assert_eq!((run.games, run.bytes), (1, total));
        assert_eq!(local.hash_run_ended(), None, "reported once");
        assert!(local.next_job().is_none() && local.next_hash().is_none());
    }

    #[test]
    fn a_game_changed_while_it_is_hashed_is_hashed_again() {
        let (games, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (games, state, catalog) = (games.path(), state.path(), Catalog::bundled());
        warm_and_new(games, state, &catalog, &[1; 4000]);
        let mut local = LocalLibrary::new(games);
        scan(&mut local, &catalog, state);
        let stale = local.next_hash().expect("xonotic's hash job");

        let changed = vec![2; 6000];
        write(&games.join("xonotic/data.pk3"), &changed, 2_000);
        local.request(ScanScope::Games(BTreeSet::from(["xonotic".to_owned()])), |_| false);
        scan(&mut local, &catalog, state);
        assert!(stale.cancel.is_cancelled(), "the change cancels the running hash");
        assert!(
            local.next_hash().is_none(),
            "the new one waits for the old thread to end"
        );
        assert_eq!(local.hashed(stale.run()), HashEnd::Dropped);
        assert!(local.hash_run_ended().is_none(), "the change is still to hash");

        let fresh = local.next_hash().expect("the changed game's hash job");
        assert_eq!(local.hashed(fresh.run()), HashEnd::Hashed("xonotic".into()));
        local.request(ScanScope::Games(BTreeSet::from(["xonotic".to_owned()])), |_| false);
        scan(&mut local, &catalog, state);
        assert_eq!(
            shared_root(&local, "xonotic", "data.pk3"),
            Some(crate::content::root_of(&changed))
        );
        assert!(local.hash_run_ended().is_some());
    }

    #[test]
    fn an_operation_or_a_new_game_dir_stops_the_hashing() {
        let (games, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (games, state, catalog) = (games.path(), state.path(), Catalog::bundled());
        warm_and_new(games, state, &catalog, &[1; 4000]);
        let mut local = LocalLibrary::new(games);
        scan(&mut local, &catalog, state);
        let job = local.next_hash().unwrap();
        local.stop_hashing("xonotic");
        assert!(job.cancel.is_cancelled());
        assert_eq!(local.hashed(job.run()), HashEnd::Dropped);
        assert!(
            local.hash_run_ended().is_some(),
            "nothing left: its rescan after the operation offers it again"
        );

        local.request(ScanScope::Games(BTreeSet::from(["xonotic".to_owned()])), |_| false);
        scan(&mut local, &catalog, state);
        let job = local.next_hash().expect("offered again");
        local.set_game_dir(Path::new("/elsewhere"));
        assert!(job.cancel.is_cancelled());
        assert_eq!(local.hashed(job.run()), HashEnd::Dropped);
        assert!(!local.is_hashing());
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
            tasks: Vec::new(),
        };
        assert!(local.apply(result, |_| false).stale);
        assert_eq!(local.next_job().unwrap().game_dir, PathBuf::from("/new"));
    }
}
