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

use std::path::PathBuf;

pub use lock::{GameDirLock, LockError, OwnerLocks, StateDirLock};
pub use record::{InstallFailure, InstalledRecord};
pub use recovery::{RecoveryReport, recover};
pub use transaction::{Completed, Failpoints, GameLayout, Step, Transaction};

pub mod unpack;

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
