//! Install-side transactions on one game root. Every step is journaled first
//! (see `intent`) and every directory lanspread creates is marked with
//! `.lanspread_owned`, so startup recovery can finish or undo any of them.
//!
//! - install: fill `.local.installing/`, rename it to `local/`.
//! - update: fill `.local.installing/`, move `local/` to `.local.backup/`,
//!   promote, delete the backup. A failure before promotion restores `local/`.
//! - uninstall: rename `local/` to `.local.removing/`, then delete that, so a
//!   crash never leaves a half-deleted `local/` that looks installed.
//! - remove-downloaded: delete the sentinel, then the whole (uninstalled) root.
//!
//! Once `local/` holds the new install, the operation has succeeded: later
//! cleanup failures are logged for startup recovery, not reported as failures.
//!
//! All functions block; the runtime calls them on blocking threads.

use std::fs;
use std::io;
use std::path::Path;

use super::InstallError;
use super::intent::{InstallIntent, Operation, Phase};
use super::launch;
use super::record::{InstallFailure, InstalledRecord};
use crate::catalog::Catalog;
use crate::durable::{remove_file_if_exists, sync_dir, sync_filesystem};
pub use crate::layout::GameLayout;
use crate::layout::validate_game_id;
use crate::layout::{BACKUP_DIR, INSTALLING_DIR, OWNED_MARKER, REMOVING_DIR};

/// Points between the steps of a transaction, in order. Tests stop a
/// transaction dead at any of them (a simulated crash) or make the step fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    IntentWritten,
    StagingCreated,
    Staged,
    PromotionRecorded,
    LocalMovedToBackup,
    Promoted,
    CleanupRecorded,
    BackupRemoved,
    LaunchSettingsWritten,
    IntentRemoved,
    LocalRenamedForRemoval,
    RemovalDeleted,
    LaunchSettingsRemoved,
    SentinelDeleted,
    RootDeleted,
}

impl Step {
    pub const INSTALL: &[Step] = &[
        Step::IntentWritten,
        Step::StagingCreated,
        Step::Staged,
        Step::PromotionRecorded,
        Step::Promoted,
        Step::CleanupRecorded,
        Step::LaunchSettingsWritten,
        Step::IntentRemoved,
    ];
    pub const UPDATE: &[Step] = &[
        Step::IntentWritten,
        Step::StagingCreated,
        Step::Staged,
        Step::PromotionRecorded,
        Step::LocalMovedToBackup,
        Step::Promoted,
        Step::CleanupRecorded,
        Step::BackupRemoved,
        Step::LaunchSettingsWritten,
        Step::IntentRemoved,
    ];
    pub const UNINSTALL: &[Step] = &[
        Step::IntentWritten,
        Step::LocalRenamedForRemoval,
        Step::CleanupRecorded,
        Step::RemovalDeleted,
        Step::LaunchSettingsRemoved,
        Step::IntentRemoved,
    ];
    pub const REMOVE_DOWNLOADED: &[Step] = &[
        Step::IntentWritten,
        Step::SentinelDeleted,
        Step::RootDeleted,
        Step::IntentRemoved,
    ];
}

/// Fault injection for tests; `Failpoints::default()` injects nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Failpoints {
    /// Stop dead right after this step, with no cleanup, as a crash would.
    pub crash_after: Option<Step>,
    /// Make the I/O of this step fail, as a full or broken disk would.
    pub fail_at: Option<Step>,
}

impl Failpoints {
    fn crash_point(&self, step: Step) -> Result<(), InstallError> {
        if self.crash_after == Some(step) {
            return Err(InstallError::InjectedCrash(step));
        }
        Ok(())
    }

    fn io<T>(&self, step: Step, operation: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if self.fail_at == Some(step) {
            return Err(io::Error::other(format!("injected failure at {step:?}")));
        }
        operation()
    }
}

/// What a successful transaction left for recovery to tidy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completed {
    /// An install replaced an older `local/`.
    pub updated: bool,
    /// Cleanup steps that failed after the operation itself succeeded.
    pub warnings: Vec<String>,
}

/// The cleanup after an operation has already succeeded: failures become warnings for recovery.
struct Cleanup<'a> {
    id: &'a str,
    after: &'static str,
    completed: Completed,
}

impl<'a> Cleanup<'a> {
    fn new(id: &'a str, after: &'static str, updated: bool) -> Self {
        Cleanup {
            id,
            after,
            completed: Completed {
                updated,
                warnings: Vec::new(),
            },
        }
    }

    fn step(&mut self, what: &str, result: io::Result<()>) {
        if let Err(err) = result {
            tracing::warn!(
                game = self.id,
                "{what} failed after {}; recovery will finish it: {err}",
                self.after
            );
            self.completed.warnings.push(format!("{what}: {err}"));
        }
    }
}

pub struct Transaction<'a> {
    pub game_dir: &'a Path,
    pub state_dir: &'a Path,
    pub id: &'a str,
    pub failpoints: Failpoints,
}

fn io_error(action: &str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let (action, path) = (action.to_owned(), path.to_owned());
    move |source| InstallError::Io { action, path, source }
}

/// Creates a reserved directory and marks it as ours.
fn create_owned_dir(path: &Path) -> io::Result<()> {
    fs::create_dir(path)?;
    mark_owned(path)
}

pub fn mark_owned(path: &Path) -> io::Result<()> {
    fs::File::create(path.join(OWNED_MARKER))?.sync_all()?;
    sync_dir(path)
}

pub fn is_owned(path: &Path) -> bool {
    fs::symlink_metadata(path.join(OWNED_MARKER)).is_ok_and(|meta| meta.is_file())
}

/// Removes the game root if nothing is left in it (never anything in it: `remove_dir` refuses).
pub(super) fn remove_root_if_empty(layout: &GameLayout) {
    if fs::remove_dir(&layout.root).is_ok() {
        let _ = layout.root.parent().map(sync_dir);
    }
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

impl Transaction<'_> {
    fn layout(&self) -> GameLayout {
        GameLayout::new(self.game_dir, self.id)
    }

    fn save(&self, intent: &InstallIntent, step: Step) -> Result<(), InstallError> {
        self.failpoints
            .io(step, || intent.save(self.state_dir))
            .map_err(io_error("write the install journal for", self.state_dir))
    }

    /// Installs, or updates when `local/` exists. `fill` writes the new game into the staging directory;
    /// `installed` says what it is (recorded once it is in place; `None`: unknown).
    pub fn install(
        &self,
        installed: Option<InstalledRecord>,
        fill: impl FnOnce(&Path) -> Result<(), InstallError>,
    ) -> Result<Completed, InstallError> {
        validate_game_id(self.id).map_err(|_| InstallError::UnknownGame(self.id.to_owned()))?;
        let layout = self.layout();
        let created_root = !is_real_dir(&layout.root);
        if created_root {
            fs::create_dir_all(&layout.root).map_err(io_error("create", &layout.root))?;
        }
        let update = is_real_dir(&layout.local());
        let staging = layout.installing();
        for leftover in [layout.installing(), layout.backup()] {
            if leftover.exists() {
                return Err(InstallError::Leftover(leftover));
            }
        }

        let mut intent = InstallIntent::new(self.id, if update { Operation::Update } else { Operation::Install });
        intent.created.push(INSTALLING_DIR.to_owned());
        intent.installed = installed.clone();
        self.save(&intent, Step::IntentWritten)?;
        self.failpoints.crash_point(Step::IntentWritten)?;

        let staged = self
            .failpoints
            .io(Step::StagingCreated, || create_owned_dir(&staging))
            .map_err(io_error("create", &staging))
            .and_then(|()| {
                self.failpoints.crash_point(Step::StagingCreated)?;
                fill(&staging)
            })
            .and_then(|()| sync_filesystem(&staging).map_err(io_error("flush the new install to disk in", &staging)))
            .and_then(|()| {
                self.failpoints.crash_point(Step::Staged)?;
                intent.phase = Phase::Promoting;
                if update {
                    intent.created.push(BACKUP_DIR.to_owned());
                }
                self.save(&intent, Step::PromotionRecorded)?;
                self.failpoints.crash_point(Step::PromotionRecorded)
            });
        if let Err(err) = staged {
            return Err(self.abandon_staging(err, created_root));
        }

        if update {
            let moved = self
                .failpoints
                .io(Step::LocalMovedToBackup, || {
                    fs::rename(layout.local(), layout.backup())?;
                    mark_owned(&layout.backup())?;
                    sync_dir(&layout.root)
                })
                .map_err(io_error("move the old install aside from", &layout.local()));
            if let Err(err) = moved {
                return Err(self.abandon_staging(err, created_root));
            }
            self.failpoints.crash_point(Step::LocalMovedToBackup)?;
        }

        let promoted = self
            .failpoints
            .io(Step::Promoted, || {
                fs::rename(&staging, layout.local())?;
                sync_dir(&layout.root)
            })
            .map_err(io_error("move the new install into place at", &layout.local()));
        if let Err(err) = promoted {
            return Err(self.abandon_staging(err, created_root));
        }
        self.failpoints.crash_point(Step::Promoted)?;

        // The new install is in place: from here on, failures are only warnings.
        let mut cleanup = Cleanup::new(self.id, "a successful install", update);
        let mut warn = |what: &str, result: io::Result<()>| cleanup.step(what, result);
        intent.phase = Phase::Cleanup;
        warn(
            "recording cleanup",
            self.failpoints
                .io(Step::CleanupRecorded, || intent.save(self.state_dir)),
        );
        self.failpoints.crash_point(Step::CleanupRecorded)?;
        let recorded = match &installed {
            Some(record) => record.save(&layout),
            None => InstalledRecord::remove(&layout),
        };
        warn("recording the installed version", recorded);
        warn("clearing the install-failed record", InstallFailure::clear(&layout));
        if update {
            warn(
                "removing the old install",
                self.failpoints
                    .io(Step::BackupRemoved, || fs::remove_dir_all(layout.backup())),
            );
            self.failpoints.crash_point(Step::BackupRemoved)?;
        }
        warn(
            "removing the ownership marker",
            remove_file_if_exists(&layout.local().join(OWNED_MARKER)),
        );
        warn(
            "writing launch settings",
            self.failpoints.io(Step::LaunchSettingsWritten, || {
                launch::write_default(self.state_dir, self.id, &layout.local())
            }),
        );
        self.failpoints.crash_point(Step::LaunchSettingsWritten)?;
        warn(
            "removing the install journal",
            self.failpoints
                .io(Step::IntentRemoved, || InstallIntent::remove(self.state_dir, self.id)),
        );
        self.failpoints.crash_point(Step::IntentRemoved)?;
        Ok(cleanup.completed)
    }

    /// Undoes an install that failed before promotion: the old `local/` back, staging gone, journal gone,
    /// and a game root this install created removed if that leaves it empty (a pre-existing one stays).
    /// A simulated crash passes through untouched: a real one would not clean up either.
    fn abandon_staging(&self, err: InstallError, created_root: bool) -> InstallError {
        if matches!(err, InstallError::InjectedCrash(_)) {
            return err;
        }
        let layout = self.layout();
        let mut problems = Vec::new();
        if !is_real_dir(&layout.local()) && is_real_dir(&layout.backup()) {
            if let Err(restore) = fs::rename(layout.backup(), layout.local()) {
                problems.push(format!("restoring the old install failed: {restore}"));
            } else {
                let _ = remove_file_if_exists(&layout.local().join(OWNED_MARKER));
            }
        }
        if layout.installing().exists()
            && let Err(remove) = fs::remove_dir_all(layout.installing())
        {
            problems.push(format!("removing {INSTALLING_DIR} failed: {remove}"));
        }
        if problems.is_empty() {
            if let Err(remove) = InstallIntent::remove(self.state_dir, self.id) {
                tracing::warn!(game = self.id, "cannot remove the install journal: {remove}");
            }
        } else {
            // Leave the journal: startup recovery finishes what failed here.
            tracing::error!(game = self.id, "rollback incomplete: {}", problems.join("; "));
        }
        if created_root && fs::remove_dir(&layout.root).is_ok() {
            let _ = sync_dir(self.game_dir);
        } else {
            let _ = sync_dir(&layout.root);
        }
        err
    }

    /// Removes `local/`. Refused when the game is not installed.
    pub fn uninstall(&self) -> Result<Completed, InstallError> {
        let layout = self.layout();
        if !is_real_dir(&layout.local()) {
            return Err(InstallError::NotInstalled(self.id.to_owned()));
        }
        if layout.removing().exists() {
            return Err(InstallError::Leftover(layout.removing()));
        }
        let mut intent = InstallIntent::new(self.id, Operation::Uninstall);
        intent.created.push(REMOVING_DIR.to_owned());
        self.save(&intent, Step::IntentWritten)?;
        self.failpoints.crash_point(Step::IntentWritten)?;

        let renamed = self
            .failpoints
            .io(Step::LocalRenamedForRemoval, || {
                fs::rename(layout.local(), layout.removing())?;
                sync_dir(&layout.root)?;
                mark_owned(&layout.removing())
            })
            .map_err(io_error("move aside", &layout.local()));
        if let Err(err) = renamed {
            let _ = InstallIntent::remove(self.state_dir, self.id);
            return Err(err);
        }
        self.failpoints.crash_point(Step::LocalRenamedForRemoval)?;

        // `local/` is gone: the game is uninstalled; what follows is cleanup.
        let mut cleanup = Cleanup::new(self.id, "uninstalling", false);
        let mut warn = |what: &str, result: io::Result<()>| cleanup.step(what, result);
        intent.phase = Phase::Cleanup;
        warn(
            "recording cleanup",
            self.failpoints
                .io(Step::CleanupRecorded, || intent.save(self.state_dir)),
        );
        self.failpoints.crash_point(Step::CleanupRecorded)?;
        warn(
            "deleting the old install",
            self.failpoints
                .io(Step::RemovalDeleted, || fs::remove_dir_all(layout.removing())),
        );
        self.failpoints.crash_point(Step::RemovalDeleted)?;
        warn("clearing the install-failed record", InstallFailure::clear(&layout));
        warn("removing the installed record", InstalledRecord::remove(&layout));
        // A streamed install had nothing but `local/`: its now empty root goes too.
        remove_root_if_empty(&layout);
        warn(
            "removing launch settings",
            self.failpoints
                .io(Step::LaunchSettingsRemoved, || launch::remove(self.state_dir, self.id)),
        );
        self.failpoints.crash_point(Step::LaunchSettingsRemoved)?;
        warn(
            "removing the install journal",
            self.failpoints
                .io(Step::IntentRemoved, || InstallIntent::remove(self.state_dir, self.id)),
        );
        self.failpoints.crash_point(Step::IntentRemoved)?;
        Ok(cleanup.completed)
    }

    /// Deletes a downloaded, uninstalled game root. Only catalog ids that are
    /// direct children of the game dir, and only after finding a regular
    /// root-level `version.ini`.
    pub fn remove_downloaded(&self, catalog: &Catalog) -> Result<Completed, InstallError> {
        if validate_game_id(self.id).is_err() || !catalog.contains(self.id) {
            return Err(InstallError::UnknownGame(self.id.to_owned()));
        }
        let layout = self.layout();
        match fs::symlink_metadata(&layout.root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(InstallError::NotAGameRoot(layout.root)),
            Err(_) => return Err(InstallError::NotDownloaded(self.id.to_owned())),
        }
        if layout.local().exists() {
            return Err(InstallError::Installed(self.id.to_owned()));
        }
        for reserved in [layout.installing(), layout.backup(), layout.removing()] {
            if reserved.exists() {
                return Err(InstallError::Leftover(reserved));
            }
        }
        if !fs::symlink_metadata(layout.sentinel()).is_ok_and(|meta| meta.is_file()) {
            return Err(InstallError::NotDownloaded(self.id.to_owned()));
        }

        let intent = InstallIntent::new(self.id, Operation::RemoveDownloaded);
        self.save(&intent, Step::IntentWritten)?;
        self.failpoints.crash_point(Step::IntentWritten)?;
        // The sentinel goes first: a crash mid-delete never leaves a root that looks downloaded.
        let result = self
            .failpoints
            .io(Step::SentinelDeleted, || {
                fs::remove_file(layout.sentinel())?;
                sync_dir(&layout.root)
            })
            .map_err(io_error("delete", &layout.sentinel()));
        if let Err(err) = result {
            let _ = InstallIntent::remove(self.state_dir, self.id);
            return Err(err);
        }
        self.failpoints.crash_point(Step::SentinelDeleted)?;
        self.failpoints
            .io(Step::RootDeleted, || {
                fs::remove_dir_all(&layout.root)?;
                sync_dir(self.game_dir)
            })
            .map_err(io_error("delete", &layout.root))?;
        self.failpoints.crash_point(Step::RootDeleted)?;
        let mut completed = Completed::default();
        let cleaned = self.failpoints.io(Step::IntentRemoved, || {
            InstallIntent::remove(self.state_dir, self.id)?;
            launch::remove(self.state_dir, self.id)
        });
        if let Err(err) = cleaned {
            tracing::warn!(
                game = self.id,
                "cannot remove the journal after removing the game: {err}"
            );
            completed.warnings.push(err.to_string());
        }
        self.failpoints.crash_point(Step::IntentRemoved)?;
        Ok(completed)
    }
}
