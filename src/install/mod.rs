//! Install, update, uninstall, remove-downloaded and startup recovery.
//!
//! Layout of a game root:
//! - `<id>/local/` — the installed game.
//! - `<id>/.local.installing/`, `<id>/.local.backup/`, `<id>/.local.removing/` —
//!   staging, the previous install during an update, and an install being
//!   deleted; lanspread's only when they hold [`OWNED_MARKER`] or the journal
//!   (`<state_dir>/games/<id>/install_intent.json`) names them.
//!
//! The library scan and the protocol's path validator keep all of these out
//! of file lists. Nothing here knows about the network or the UI.

pub mod intent;
pub mod launch;
pub mod lock;
pub mod recovery;
pub mod transaction;

use std::path::PathBuf;

pub use lock::{GameDirLock, LockError, OwnerLocks, StateDirLock};
pub use recovery::{RecoveryReport, recover};
pub use transaction::{Completed, Failpoints, Step, Transaction};

pub mod unpack;

/// Staging directory an install unpacks into before it is renamed to `local/`.
pub const INSTALLING_DIR: &str = ".local.installing";
/// Where an update parks the old `local/` until the new one is promoted.
pub const BACKUP_DIR: &str = ".local.backup";
/// Where an uninstall moves `local/` before deleting it.
pub const REMOVING_DIR: &str = ".local.removing";
/// Marker file proving a reserved directory was created by lanspread.
pub const OWNED_MARKER: &str = ".lanspread_owned";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error("{0:?} is not a catalog game id")]
    UnknownGame(String),
    #[error("{0} is not downloaded (no regular version.ini in its folder); download it first")]
    NotDownloaded(String),
    #[error("{0} is not installed")]
    NotInstalled(String),
    #[error("{0} is installed; uninstall it before removing its downloaded files")]
    Installed(String),
    #[error("{} is not a plain folder (a symlink or a file?); lanspread leaves it alone", .0.display())]
    NotAGameRoot(PathBuf),
    #[error("{} is left over from an interrupted operation; restart lanspread so startup recovery can deal with it", .0.display())]
    Leftover(PathBuf),
    #[error("cannot fill the install: {0}")]
    Staging(String),
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
    /// A test stopped the transaction dead after this step, as a crash would.
    #[error("injected crash after {0:?}")]
    InjectedCrash(Step),
}

impl Transaction<'_> {
    /// Installs (or updates) a downloaded game by unpacking its archives into staging.
    pub fn install_downloaded(
        &self,
        unpacker: &dyn unpack::Unpacker,
        progress: &mut dyn FnMut(unpack::UnpackProgress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Completed, InstallError> {
        let root = self.game_dir.join(self.id);
        let sentinel = root.join(crate::proto::VERSION_FILE);
        if !std::fs::symlink_metadata(sentinel).is_ok_and(|meta| meta.is_file()) {
            return Err(InstallError::NotDownloaded(self.id.to_owned()));
        }
        self.install(|staging| match unpacker.unpack(&root, staging, progress, cancelled) {
            Ok(_) => Ok(()),
            Err(unpack::UnpackError::Cancelled) => Err(InstallError::Cancelled),
            Err(err) => Err(InstallError::Staging(err.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::is_reserved_name;

    #[test]
    fn install_directories_are_reserved_from_the_wire() {
        for name in [INSTALLING_DIR, BACKUP_DIR, REMOVING_DIR, OWNED_MARKER] {
            assert!(is_reserved_name(name), "{name}");
        }
    }
}
