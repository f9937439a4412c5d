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

use std::fmt;
use std::path::{Path, PathBuf};

pub use lock::{LockError, StateDirLock};
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
    /// The downloaded archives could not be unpacked (damaged, unsafe, or the disk is full).
    #[error("cannot unpack: {0}")]
    Unpack(#[source] unpack::UnpackError),
    /// A streamed install could not get the game from its senders, or could not write it.
    #[error("cannot install: {0}")]
    Transfer(#[source] crate::peer::download::TransferError),
    /// The worker running the operation panicked (a bug); the text says which and how.
    #[error("internal error: {0}")]
    Panicked(String),
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
            Err(err) => Err(InstallError::Unpack(err)),
        })
    }
}

/// Bytes available to unprivileged users on the file system holding `path`, or holding its
/// nearest existing ancestor (the path may be what could not be created); `None` when it
/// cannot tell. For messages about local disk errors: a full disk must say so, and where.
pub fn free_space(path: &Path) -> Option<u64> {
    path.ancestors().find_map(|dir| {
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    })
}

/// Shows a [`free_space`] reading in an error message: "8.0 MiB free on its file system".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace(pub Option<u64>);

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let Some(bytes) = self.0 else {
            return f.write_str("the free space on its file system is unknown");
        };
        let (mut value, mut unit) = (bytes as f64, 0);
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{bytes} B free on its file system")
        } else {
            write!(f, "{value:.1} {} free on its file system", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::is_reserved_name;

    #[test]
    fn free_space_is_measured_at_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(&dir.path().join("not/yet/created")).is_some());
        assert_eq!(FreeSpace(Some(0)).to_string(), "0 B free on its file system");
        assert_eq!(FreeSpace(Some(3 << 20)).to_string(), "3.0 MiB free on its file system");
        assert!(FreeSpace(None).to_string().contains("unknown"));
    }

    #[test]
    fn install_directories_are_reserved_from_the_wire() {
        for name in [INSTALLING_DIR, BACKUP_DIR, REMOVING_DIR, OWNED_MARKER] {
            assert!(is_reserved_name(name), "{name}");
        }
    }
}
