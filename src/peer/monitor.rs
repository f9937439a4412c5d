//! The local game monitor (`run_local_game_monitor`): a notify watcher on the
//! game dir and on each game root, never recursive (a root can hold hundreds
//! of thousands of files; `local/` is watched only as an entry of its root).
//! Raw events are mapped to game ids and debounced; the actor receives sets
//! of ids to rescan and decides when (it holds rescans of busy games).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::layout::validate_game_id;

/// Quiet time after the last event before the batch goes out.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// A steady stream of events (a big copy) still reports at least this often.
const MAX_DELAY: Duration = Duration::from_secs(2);
const RAW_EVENT_QUEUE: usize = 1024;

pub enum MonitorControl {
    /// Move every watch to a new game dir; the sender is told once the new watches are in place.
    SetGameDir(PathBuf, tokio::sync::oneshot::Sender<()>),
}

pub struct LocalGameMonitor {
    watcher: RecommendedWatcher,
    game_dir: PathBuf,
    watched_roots: HashSet<PathBuf>,
}

impl LocalGameMonitor {
    /// Creates the watcher; raw events go to the returned receiver.
    pub fn new(game_dir: &Path) -> notify::Result<(Self, mpsc::Receiver<notify::Result<notify::Event>>)> {
        let (raw_tx, raw_rx) = mpsc::channel(RAW_EVENT_QUEUE);
        // notify calls this on its own thread, so blocking on a full queue is backpressure, not a stall.
        let watcher = notify::recommended_watcher(move |event| {
            let _ = raw_tx.blocking_send(event);
        })?;
        let mut monitor = LocalGameMonitor {
            watcher,
            game_dir: game_dir.to_owned(),
            watched_roots: HashSet::new(),
        };
        monitor.watch_game_dir()?;
        Ok((monitor, raw_rx))
    }

    fn watch_game_dir(&mut self) -> notify::Result<()> {
        self.watcher.watch(&self.game_dir, RecursiveMode::NonRecursive)?;
        self.sync_root_watches();
        Ok(())
    }

    fn set_game_dir(&mut self, game_dir: PathBuf) -> notify::Result<()> {
        let _ = self.watcher.unwatch(&self.game_dir);
        for root in self.watched_roots.drain() {
            let _ = self.watcher.unwatch(&root);
        }
        self.game_dir = game_dir;
        self.watch_game_dir()
    }

    /// Watches every root folder that exists and drops watches of roots that are gone.
    fn sync_root_watches(&mut self) {
        let current: HashSet<PathBuf> = std::fs::read_dir(&self.game_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                    .filter(|entry| {
                        entry
                            .file_name()
                            .to_str()
                            .is_some_and(|name| validate_game_id(name).is_ok())
                    })
                    .map(|entry| entry.path())
                    .collect()
            })
            .unwrap_or_default();
        for gone in self.watched_roots.difference(&current).cloned().collect::<Vec<_>>() {
            let _ = self.watcher.unwatch(&gone);
            self.watched_roots.remove(&gone);
        }
        for root in current {
            if !self.watched_roots.contains(&root) {
                match self.watcher.watch(&root, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched_roots.insert(root);
                    }
                    Err(err) => tracing::debug!("cannot watch {}: {err}", root.display()),
                }
            }
        }
    }

    /// The game id an event path belongs to, if any.
    fn game_id_of(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.game_dir).ok()?;
        let id = relative.components().next()?.as_os_str().to_str()?;
        validate_game_id(id).is_ok().then(|| id.to_owned())
    }

    pub fn watched_root_count(&self) -> usize {
        self.watched_roots.len()
    }
}

/// Turns raw events into debounced batches of game ids on `changes`, until `changes` closes.
pub async fn run_local_game_monitor(
    mut monitor: LocalGameMonitor,
    mut raw: mpsc::Receiver<notify::Result<notify::Event>>,
    mut control: mpsc::Receiver<MonitorControl>,
    changes: mpsc::Sender<BTreeSet<String>>,
) {
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    let mut first_dirty: Option<Instant> = None;
    let mut last_event = Instant::now();
    loop {
        let flush_at = first_dirty.map(|first| (last_event + DEBOUNCE).min(first + MAX_DELAY));
        tokio::select! {
            event = raw.recv() => match event {
                Some(Ok(event)) => {
                    if matches!(event.kind, EventKind::Access(_)) {
                        continue;
                    }
                    let mut structural = false;
                    for path in &event.paths {
                        if let Some(id) = monitor.game_id_of(path) {
                            structural |= path.parent() == Some(monitor.game_dir.as_path());
                            dirty.insert(id);
                        }
                    }
                    if structural {
                        monitor.sync_root_watches();
                    }
                    if !dirty.is_empty() {
                        last_event = Instant::now();
                        first_dirty.get_or_insert(last_event);
                    }
                }
                Some(Err(err)) => tracing::warn!("file watcher error: {err}; the periodic full scan covers for it"),
                None => return,
            },
            command = control.recv() => match command {
                Some(MonitorControl::SetGameDir(game_dir, watching)) => {
                    dirty.clear();
                    first_dirty = None;
                    if let Err(err) = monitor.set_game_dir(game_dir) {
                        tracing::warn!("cannot watch the new game dir: {err}; relying on periodic scans");
                    }
                    let _ = watching.send(());
                }
                None => return,
            },
            () = sleep_until_or_forever(flush_at) => {
                first_dirty = None;
                if changes.send(std::mem::take(&mut dirty)).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
