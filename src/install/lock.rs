//! One lanspread per state dir: transactions and startup recovery assume no
//! other process changes the same games at the same time. The lock is an
//! advisory `flock` on `<state_dir>/lanspread.lock`, released when the holder
//! exits (also on a crash).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "lanspread.lock";

#[derive(Debug)]
pub struct StateDirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another lanspread is using the state dir {} (a running `serve` or TUI?); stop it first, or give this one its own --state-dir",
        .0.display()
    )]
    Held(PathBuf),
    #[error("cannot lock {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl StateDirLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(StateDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held(state_dir.to_owned())),
            Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let state = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(state.path()).unwrap();
        let err = StateDirLock::acquire(state.path()).unwrap_err();
        assert!(err.to_string().contains("another lanspread"), "{err}");
        drop(first);
        StateDirLock::acquire(state.path()).unwrap();
    }
}
