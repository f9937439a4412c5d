//! Startup recovery: before the runtime serves anything, every game with a
//! journal or reserved leftovers is brought to a consistent state by combining
//! the journal with what is on disk and doing the one safe thing:
//!
//! - staging never promoted: delete `.local.installing/` (`local/` is untouched);
//! - an update caught between its renames: put `.local.backup/` back as `local/`;
//! - a promotion whose rename completed: finish it (delete the backup);
//! - an uninstall whose rename completed: finish deleting `.local.removing/`;
//! - a remove-downloaded whose sentinel is gone: finish deleting the root.
//!
//! Without a journal, a reserved directory is touched only if it carries
//! `.lanspread_owned`; anything not provably ours is left and logged.
//!
//! Legacy migration runs first: launcher metadata that older versions kept in
//! the game root is moved into the state dir, once.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::intent::{InstallIntent, Operation, Phase, intent_path};
use super::launch::{self, launch_path};
use super::record::{InstallFailure, InstalledRecord};
use super::transaction::{GameLayout, is_owned, remove_root_if_empty};
use crate::durable::{remove_file_if_exists, sync_dir};
use crate::layout::OWNED_MARKER;
use crate::layout::{VERSION_DISCARDED_FILE, VERSION_TMP_FILE, validate_game_id};

/// What older versions kept inside a game root: `(legacy name, path in the state dir)`.
pub const LEGACY_INTENT_FILE: &str = ".lanspread_install_intent.json";
pub const LEGACY_LAUNCH_FILE: &str = ".lanspread_launch.json";

/// What recovery did and what it refused to touch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub actions: Vec<String>,
    pub left_alone: Vec<String>,
}

impl RecoveryReport {
    fn did(&mut self, id: &str, what: String) {
        tracing::info!(game = id, "recovery: {what}");
        self.actions.push(format!("{id}: {what}"));
    }

    fn left(&mut self, id: &str, what: String) {
        tracing::warn!(game = id, "recovery: left alone: {what}");
        self.left_alone.push(format!("{id}: {what}"));
    }
}

/// Runs legacy migration, then recovery, for every game that needs it.
pub fn recover(game_dir: &Path, state_dir: &Path) -> RecoveryReport {
    let mut report = RecoveryReport::default();
    let mut ids = game_roots(game_dir);
    for id in &ids {
        migrate_legacy(game_dir, state_dir, id, &mut report);
    }
    match InstallIntent::ids_with_state(state_dir) {
        Ok(with_state) => ids.extend(with_state),
        Err(err) => report.left("*", format!("cannot list journals in {}: {err}", state_dir.display())),
    }
    ids.sort();
    ids.dedup();
    for id in ids {
        if let Err(err) = recover_game(game_dir, state_dir, &id, &mut report) {
            report.left(
                &id,
                format!("recovery failed: {err}; it will be retried at the next start"),
            );
        }
    }
    report
}

fn game_roots(game_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(game_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| validate_game_id(name).is_ok())
        .collect()
}

/// Moves a legacy file from the game root into the state dir; the state dir's copy wins if both exist.
fn migrate_legacy(game_dir: &Path, state_dir: &Path, id: &str, report: &mut RecoveryReport) {
    let root = game_dir.join(id);
    for (legacy, destination) in [
        (LEGACY_INTENT_FILE, intent_path(state_dir, id)),
        (LEGACY_LAUNCH_FILE, launch_path(state_dir, id)),
    ] {
        let source = root.join(legacy);
        if !fs::symlink_metadata(&source).is_ok_and(|meta| meta.is_file()) {
            continue;
        }
        let moved = move_file(&source, &destination);
        match moved {
            Ok(true) => report.did(id, format!("moved legacy {legacy} to {}", destination.display())),
            Ok(false) => report.did(id, format!("dropped legacy {legacy}: the state dir already has one")),
            Err(err) => report.left(id, format!("cannot migrate {}: {err}", source.display())),
        }
    }
}

/// Copies durably, then removes the source. Returns false when the destination already existed.
fn move_file(source: &Path, destination: &Path) -> io::Result<bool> {
    let copied = if destination.exists() {
        false
    } else {
        let dir = destination.parent().unwrap_or(destination);
        fs::create_dir_all(dir)?;
        let bytes = fs::read(source)?;
        crate::durable::replace_file(&destination.with_extension("migrating"), destination, &bytes)?;
        true
    };
    fs::remove_file(source)?;
    crate::durable::sync_parent(source)?;
    Ok(copied)
}

fn recover_game(game_dir: &Path, state_dir: &Path, id: &str, report: &mut RecoveryReport) -> io::Result<()> {
    let layout = GameLayout::new(game_dir, id);
    let intent = match InstallIntent::load(state_dir, id) {
        Ok(intent) => intent,
        Err(err) => {
            report.left(
                id,
                format!("unreadable journal ({err}); reserved directories are not touched"),
            );
            return Ok(());
        }
    };
    match intent {
        Some(intent) => follow_intent(&layout, state_dir, &intent, report)?,
        None => {
            sweep_without_intent(&layout, id, report)?;
            // A crash during the first journal write leaves only its temp file: nothing began.
            InstallIntent::remove(state_dir, id)?;
        }
    }
    sweep_download_sentinels(&layout, id, report)
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn remove_tree(path: &Path, id: &str, report: &mut RecoveryReport) -> io::Result<()> {
    if exists(path) {
        fs::remove_dir_all(path)?;
        report.did(id, format!("deleted {}", path.display()));
    }
    Ok(())
}

fn restore_backup(layout: &GameLayout, id: &str, report: &mut RecoveryReport) -> io::Result<()> {
    fs::rename(layout.backup(), layout.local())?;
    remove_file_if_exists(&layout.local().join(OWNED_MARKER))?;
    report.did(id, "restored the previous install from .local.backup".to_owned());
    Ok(())
}

fn follow_intent(
    layout: &GameLayout,
    state_dir: &Path,
    intent: &InstallIntent,
    report: &mut RecoveryReport,
) -> io::Result<()> {
    let id = intent.id.as_str();
    let (local, backup, staging, removing) = (
        exists(&layout.local()),
        exists(&layout.backup()),
        exists(&layout.installing()),
        exists(&layout.removing()),
    );
    match (intent.operation, intent.phase) {
        (Operation::Install | Operation::Update, Phase::Staging) => {
            // Never promoted: the staging directory goes; `local/` was not touched.
            remove_tree(&layout.installing(), id, report)?;
            record_interrupted_install(layout, id);
        }
        (Operation::Install | Operation::Update, Phase::Promoting) => {
            if staging {
                // The promoting rename did not happen: roll back.
                if !local && backup {
                    restore_backup(layout, id, report)?;
                }
                remove_tree(&layout.installing(), id, report)?;
                record_interrupted_install(layout, id);
            } else if local {
                // The rename completed: finish.
                remove_tree(&layout.backup(), id, report)?;
                finish_install(layout, state_dir, intent, report)?;
            } else if backup {
                restore_backup(layout, id, report)?;
            } else {
                report.left(
                    id,
                    "journal says an install was promoting, but nothing is on disk".to_owned(),
                );
            }
        }
        (Operation::Install | Operation::Update, Phase::Cleanup) => {
            remove_tree(&layout.backup(), id, report)?;
            remove_tree(&layout.installing(), id, report)?;
            finish_install(layout, state_dir, intent, report)?;
        }
        (Operation::Uninstall, _) => {
            if removing {
                remove_tree(&layout.removing(), id, report)?;
                launch::remove(state_dir, id)?;
                InstallFailure::clear(layout)?;
                InstalledRecord::remove(layout)?;
                remove_root_if_empty(layout);
                report.did(id, "finished the uninstall".to_owned());
            } else if local {
                report.did(id, "the uninstall had not started; the game stays installed".to_owned());
            }
        }
        (Operation::RemoveDownloaded, _) => {
            if local || backup || staging || removing {
                report.left(
                    id,
                    "journal says remove, but an install is present; not deleting".to_owned(),
                );
            } else if exists(&layout.root) {
                fs::remove_dir_all(&layout.root)?;
                report.did(id, "finished removing the downloaded game".to_owned());
            }
            launch::remove(state_dir, id)?;
        }
    }
    InstallIntent::remove(state_dir, id)?;
    if exists(&layout.root) {
        sync_dir(&layout.root)?;
    }
    Ok(())
}

/// A rolled-back install of a downloaded game shows as failed, so the user (and `get`) retry it.
/// A streamed install has no download to retry from, so nothing is recorded for it.
fn record_interrupted_install(layout: &GameLayout, id: &str) {
    let Some(version) = super::downloaded_version(layout) else {
        return;
    };
    let failure = InstallFailure {
        version,
        reason: "interrupted: lanspread stopped during the install".to_owned(),
    };
    if let Err(err) = failure.save(layout) {
        tracing::warn!(game = id, "cannot record the interrupted install: {err}");
    }
}

fn finish_install(
    layout: &GameLayout,
    state_dir: &Path,
    intent: &InstallIntent,
    report: &mut RecoveryReport,
) -> io::Result<()> {
    let id = intent.id.as_str();
    remove_file_if_exists(&layout.local().join(OWNED_MARKER))?;
    match &intent.installed {
        Some(record) => record.save(layout)?,
        // A journal from before records existed: what `local/` holds is unknown.
        None => InstalledRecord::remove(layout)?,
    }
    InstallFailure::clear(layout)?;
    launch::write_default(state_dir, id, &layout.local())?;
    report.did(id, "finished the install".to_owned());
    Ok(())
}

fn sweep_without_intent(layout: &GameLayout, id: &str, report: &mut RecoveryReport) -> io::Result<()> {
    for dir in [layout.installing(), layout.backup(), layout.removing()] {
        if !exists(&dir) {
            continue;
        }
        if !is_owned(&dir) {
            report.left(
                id,
                format!(
                    "{} has no {OWNED_MARKER} marker and no journal: not ours to delete",
                    dir.display()
                ),
            );
            continue;
        }
        if dir == layout.backup() && !exists(&layout.local()) {
            restore_backup(layout, id, report)?;
        } else {
            remove_tree(&dir, id, report)?;
        }
    }
    Ok(())
}

/// A download interrupted by a crash leaves its temporary sentinels; the game stays "not downloaded".
fn sweep_download_sentinels(layout: &GameLayout, id: &str, report: &mut RecoveryReport) -> io::Result<()> {
    for name in [VERSION_TMP_FILE, VERSION_DISCARDED_FILE] {
        let path: PathBuf = layout.root.join(name);
        if fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_file()) {
            fs::remove_file(&path)?;
            report.did(id, format!("removed {name} left by an interrupted download"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::INSTALLING_DIR;

    #[test]
    fn unowned_staging_without_a_journal_is_left_and_reported() {
        let games = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let staging = games.path().join("openarena").join(INSTALLING_DIR);
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("user-file"), b"not ours").unwrap();
        let report = recover(games.path(), state.path());
        assert!(staging.join("user-file").exists());
        assert_eq!(report.actions, Vec::<String>::new());
        assert_eq!(report.left_alone.len(), 1);
        assert!(
            report.left_alone[0].contains("no .lanspread_owned marker"),
            "{report:?}"
        );
    }

    #[test]
    fn a_journal_temp_file_from_a_crash_during_the_first_write_is_swept() {
        let games = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        fs::create_dir_all(games.path().join("openarena")).unwrap();
        let journal = intent_path(state.path(), "openarena");
        fs::create_dir_all(journal.parent().unwrap()).unwrap();
        let temp = journal.with_file_name(format!("{}.tmp", super::super::intent::INTENT_FILE));
        fs::write(&temp, b"{\"id\":\"openar").unwrap();
        let report = recover(games.path(), state.path());
        assert!(!temp.exists(), "the half-written journal is gone");
        assert!(!journal.exists());
        assert_eq!(report.left_alone, Vec::<String>::new());
    }

    #[test]
    fn legacy_files_move_into_the_state_dir_once() {
        let games = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = games.path().join("openarena");
        fs::create_dir_all(&root).unwrap();
        fs::write(
            root.join(LEGACY_LAUNCH_FILE),
            br#"{"executable":"oa.exe","arguments":[]}"#,
        )
        .unwrap();
        let report = recover(games.path(), state.path());
        assert!(!root.join(LEGACY_LAUNCH_FILE).exists());
        let settings = launch::load(state.path(), "openarena").unwrap().unwrap();
        assert_eq!(settings.executable.as_deref(), Some("oa.exe"));
        assert_eq!(report.actions.len(), 1, "{report:?}");
        // Idempotent: a second run finds nothing to do.
        assert_eq!(recover(games.path(), state.path()), RecoveryReport::default());

        // When the state dir already has settings, the legacy copy is dropped, not merged.
        fs::write(root.join(LEGACY_LAUNCH_FILE), br#"{"executable":"stale.exe"}"#).unwrap();
        recover(games.path(), state.path());
        let settings = launch::load(state.path(), "openarena").unwrap().unwrap();
        assert_eq!(settings.executable.as_deref(), Some("oa.exe"));
        assert!(!root.join(LEGACY_LAUNCH_FILE).exists());
    }

    #[test]
    fn interrupted_download_sentinels_are_swept() {
        let games = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = games.path().join("openarena");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join(VERSION_TMP_FILE), b"2").unwrap();
        fs::write(root.join(VERSION_DISCARDED_FILE), b"1").unwrap();
        fs::write(root.join("part.zip"), b"partial").unwrap();
        recover(games.path(), state.path());
        assert!(!root.join(VERSION_TMP_FILE).exists());
        assert!(!root.join(VERSION_DISCARDED_FILE).exists());
        assert!(
            root.join("part.zip").exists(),
            "payload is not provably complete or ours to judge"
        );
    }
}
