//! The install journal: `<state_dir>/games/<id>/install_intent.json`, written
//! atomically (temp file, fsync, rename, directory fsync) before every step of
//! an install-side operation and removed when it is done. After a crash it
//! tells startup recovery what was happening and which reserved directories
//! the operation created, so recovery can prove they are ours.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::InstalledRecord;
use crate::durable::{remove_file_if_exists, replace_file, sync_parent};

pub const INTENT_FILE: &str = "install_intent.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Unpack into `.local.installing/`, rename it to `local/`.
    Install,
    /// Unpack into `.local.installing/`, move `local/` to `.local.backup/`, promote, drop the backup.
    Update,
    /// Rename `local/` to `.local.removing/`, then delete that.
    Uninstall,
    /// Delete the whole downloaded game root (not installed).
    RemoveDownloaded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Filling `.local.installing/`; `local/` is untouched.
    Staging,
    /// Staging is complete; renames between `local/`, `.local.backup/` and `.local.installing/` are under way.
    Promoting,
    /// The new state is in place; only leftovers (backup, marker, intent) remain to be removed.
    Cleanup,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallIntent {
    pub id: String,
    pub operation: Operation,
    pub phase: Phase,
    /// Reserved directories (relative to the game root) this operation created and owns.
    pub created: Vec<String>,
    /// For an install: the record to write once `local/` holds it (recovery writes it
    /// if a crash came first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<InstalledRecord>,
}

/// Where the journal of `id` lives.
pub fn intent_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("games").join(id).join(INTENT_FILE)
}

impl InstallIntent {
    pub fn new(id: &str, operation: Operation) -> Self {
        InstallIntent {
            id: id.to_owned(),
            operation,
            phase: Phase::Staging,
            created: Vec::new(),
            installed: None,
        }
    }

    /// Writes the intent durably; after this returns, a crash finds it.
    pub fn save(&self, state_dir: &Path) -> io::Result<()> {
        let path = intent_path(state_dir, &self.id);
        let dir = path.parent().unwrap_or(state_dir);
        fs::create_dir_all(dir)?;
        sync_parent(dir)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        replace_file(&dir.join(format!("{INTENT_FILE}.tmp")), &path, &bytes)
    }

    /// `Ok(None)` when there is no intent; an unreadable one is an error (recovery must not guess).
    pub fn load(state_dir: &Path, id: &str) -> io::Result<Option<Self>> {
        let path = intent_path(state_dir, id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| io::Error::other(format!("{} is unreadable: {err}", path.display()))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub fn remove(state_dir: &Path, id: &str) -> io::Result<()> {
        let path = intent_path(state_dir, id);
        remove_file_if_exists(&path)?;
        remove_file_if_exists(&path.with_file_name(format!("{INTENT_FILE}.tmp")))?;
        sync_parent(&path).or_else(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(err)
            }
        })
    }

    /// Ids that have a journal directory in the state dir.
    pub fn ids_with_state(state_dir: &Path) -> io::Result<Vec<String>> {
        let dir = state_dir.join("games");
        match fs::read_dir(&dir) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_round_trip_and_are_removed() {
        let state = tempfile::tempdir().unwrap();
        assert_eq!(InstallIntent::load(state.path(), "openarena").unwrap(), None);
        let mut intent = InstallIntent::new("openarena", Operation::Update);
        intent.created.push(".local.installing".into());
        intent.save(state.path()).unwrap();
        intent.phase = Phase::Promoting;
        intent.save(state.path()).unwrap();
        assert_eq!(InstallIntent::load(state.path(), "openarena").unwrap(), Some(intent));
        assert_eq!(InstallIntent::ids_with_state(state.path()).unwrap(), ["openarena"]);
        InstallIntent::remove(state.path(), "openarena").unwrap();
        assert_eq!(InstallIntent::load(state.path(), "openarena").unwrap(), None);
        InstallIntent::remove(state.path(), "openarena").unwrap();

        fs::write(intent_path(state.path(), "openarena"), b"{not json").unwrap();
        assert!(InstallIntent::load(state.path(), "openarena").is_err());
    }
}
