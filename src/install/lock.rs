//! One lanspread per state dir and per game dir: transactions and startup
//! recovery assume no other process changes the same games at the same time.
//! Each lock is an advisory `flock` (on `<state_dir>/lanspread.lock` and on
//! `<game_dir>/.lanspread.lock`), released when the holder exits, also on a
//! crash. The game-dir lock file names its holder's state dir and pid, so a
//! refused process can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::disk::{CreateFolderError, create_folder};

pub const LOCK_FILE: &str = "lanspread.lock";
/// In the game dir; a dot name, so the library scan and the watcher skip it.
pub const GAME_DIR_LOCK_FILE: &str = ".lanspread.lock";

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
    #[error(
        "the game dir {} is in use by another lanspread ({holder}); one lanspread per game dir: stop that one first, or use another --game-dir",
        .game_dir.display()
    )]
    GameDirHeld { game_dir: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot make the {what} {}: {} is not a folder; pass --{what} a folder (it is created if missing)",
        .path.display(), .blocker.display()
    )]
    NotAFolder {
        what: &'static str,
        path: PathBuf,
        blocker: PathBuf,
    },
    #[error("cannot create the {what} {}: {source}", .path.display())]
    Create {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates `path` (the `what`: "game-dir", "state-dir") if missing.
fn create_dir(path: &Path, what: &'static str) -> Result<(), LockError> {
    create_folder(path).map_err(|err| match err {
        CreateFolderError::NotAFolder(blocker) => LockError::NotAFolder {
            what,
            path: path.to_owned(),
            blocker,
        },
        CreateFolderError::Io(source) => LockError::Create {
            what,
            path: path.to_owned(),
            source,
        },
    })
}

impl StateDirLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        create_dir(state_dir, "state-dir")?;
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

/// The game dir's owner lock. `None` inside when the game dir is read-only to
/// us: then this process cannot change anything there either, so serving it
/// unlocked is safe.
#[derive(Debug)]
pub struct GameDirLock {
    _file: Option<File>,
}

impl GameDirLock {
    /// Locks `game_dir` for the process whose state dir is `state_dir`.
    pub fn acquire(game_dir: &Path, state_dir: &Path) -> Result<Self, LockError> {
        let path = game_dir.join(GAME_DIR_LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                match File::open(&path) {
                    Ok(file) => file,
                    Err(_) => {
                        tracing::warn!(
                            "{} is read-only to lanspread: serving it without a lock",
                            game_dir.display()
                        );
                        return Ok(GameDirLock { _file: None });
                    }
                }
            }
            Err(err) => return Err(io(err)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "holder unknown".to_owned()
                } else {
                    holder.replace('\n', ", ")
                };
                return Err(LockError::GameDirHeld {
                    game_dir: game_dir.to_owned(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        // Who holds it, for the message of the next one refused. Best effort: the lock is what counts.
        let record = format!("state dir {}\npid {}\n", state_dir.display(), std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()));
        if let Err(err) = written {
            tracing::debug!("cannot record the holder in {}: {err}", path.display());
        }
        Ok(GameDirLock { _file: Some(file) })
    }
}

/// Both locks a process needs before it changes or serves a game dir.
#[derive(Debug)]
pub struct OwnerLocks {
    pub state: StateDirLock,
    pub game: GameDirLock,
}

impl OwnerLocks {
    /// The state dir first, then the game dir (created if missing).
    pub fn acquire(state_dir: &Path, game_dir: &Path) -> Result<Self, LockError> {
        let state = StateDirLock::acquire(state_dir)?;
        create_dir(game_dir, "game-dir")?;
        let game = GameDirLock::acquire(game_dir, state_dir)?;
        Ok(OwnerLocks { state, game })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_where_a_dir_should_be_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("afile");
        std::fs::write(&file, b"").unwrap();
        let err = OwnerLocks::acquire(&dir.path().join("state"), &file).err().unwrap();
        let hint = "is not a folder; pass --game-dir a folder (it is created if missing)";
        assert_eq!(
            err.to_string(),
            format!("cannot make the game-dir {0}: {0} {hint}", file.display())
        );
        // A file in the way further up is named too, not just "Not a directory".
        let err = StateDirLock::acquire(&file.join("state")).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot make the state-dir {}: {} {}",
                file.join("state").display(),
                file.display(),
                hint.replace("game-dir", "state-dir")
            )
        );
    }

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let state = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(state.path()).unwrap();
        let err = StateDirLock::acquire(state.path()).unwrap_err();
        assert!(err.to_string().contains("another lanspread"), "{err}");
        drop(first);
        StateDirLock::acquire(state.path()).unwrap();
    }

    #[test]
    fn a_game_dir_has_one_owner_and_the_refusal_names_it() {
        let games = tempfile::tempdir().unwrap();
        let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = OwnerLocks::acquire(state_a.path(), games.path()).unwrap();
        let err = OwnerLocks::acquire(state_b.path(), games.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&games.path().display().to_string()), "{text}");
        assert!(text.contains(&state_a.path().display().to_string()), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(first);
        OwnerLocks::acquire(state_b.path(), games.path()).unwrap();
    }
}
