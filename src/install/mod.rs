//! Install, update, uninstall, remove-downloaded and startup recovery.
//!
//! The game root's layout is in `crate::layout`; the journal lives at
//! `<state_dir>/games/<id>/install_intent.json`. Nothing here knows about the
//! network or the UI.

pub mod intent;
pub mod launch;
pub mod lock;
pub mod record;
pub mod recovery;
pub mod transaction;

use std::fmt;
use std::path::{Path, PathBuf};

pub use lock::{GameDirLock, LockError, OwnerLocks, StateDirLock};
pub use record::{InstallFailure, InstalledRecord};
pub use recovery::{RecoveryReport, recover};
pub use transaction::{Completed, Failpoints, GameLayout, Step, Transaction};

pub mod unpack;

pub use crate::layout::{BACKUP_DIR, INSTALLING_DIR, OWNED_MARKER, REMOVING_DIR};

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
    /// The outcome is recorded for the library: the installed version inside `local/`,
    /// or, when it fails, an install-failed record in the game root.
    pub fn install_downloaded(
        &self,
        unpacker: &dyn unpack::Unpacker,
        progress: &mut dyn FnMut(unpack::UnpackProgress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Completed, InstallError> {
        let layout = GameLayout::new(self.game_dir, self.id);
        let version = downloaded_version(&layout).ok_or_else(|| InstallError::NotDownloaded(self.id.to_owned()))?;
        let installed = InstalledRecord {
            version: version.clone(),
            streamed: false,
        };
        let result = self.install(Some(installed), |staging| {
            match unpacker.unpack(&layout.root, staging, progress, cancelled) {
                Ok(_) => Ok(()),
                Err(unpack::UnpackError::Cancelled) => Err(InstallError::Cancelled),
                Err(err) => Err(InstallError::Unpack(err)),
            }
        });
        if let Err(err) = &result
            && !matches!(err, InstallError::Cancelled | InstallError::InjectedCrash(_))
        {
            let failure = InstallFailure {
                version,
                reason: err.to_string(),
            };
            if let Err(err) = failure.save(&layout) {
                tracing::warn!(game = self.id, "cannot record the failed install: {err}");
            }
        }
        result
    }
}

/// The version in a regular `version.ini`, if the game is downloaded.
pub fn downloaded_version(layout: &GameLayout) -> Option<String> {
    if !std::fs::symlink_metadata(layout.sentinel()).is_ok_and(|meta| meta.is_file()) {
        return None;
    }
    let content = std::fs::read(layout.sentinel()).ok()?;
    let version = crate::library::Version::parse_ini(&String::from_utf8_lossy(&content));
    Some(version.map_or_else(|| "unknown".to_owned(), |version| version.to_string()))
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

    #[test]
    fn free_space_is_measured_at_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(&dir.path().join("not/yet/created")).is_some());
        assert_eq!(FreeSpace(Some(0)).to_string(), "0 B free on its file system");
        assert_eq!(FreeSpace(Some(3 << 20)).to_string(), "3.0 MiB free on its file system");
        assert!(FreeSpace(None).to_string().contains("unknown"));
    }
}
