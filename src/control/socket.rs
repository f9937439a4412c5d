//! The control socket's file: `<state dir>/control.sock`, mode 0600, owned by the one
//! runtime of that state dir and removed when it ends. A socket left by a runtime that was
//! killed is found stale (nobody accepts on it) and replaced; anything else at the path is
//! left alone.

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket's name in the state dir.
pub const SOCKET_NAME: &str = "control.sock";

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("a runtime already listens on {}", path.display())]
    InUse { path: PathBuf },
    #[error("{} is not a socket; move it away (lanspread keeps its control socket there)", path.display())]
    NotASocket { path: PathBuf },
    #[error(
        "the control socket {} would be longer than a Unix socket path may be ({MAX_SOCKET_PATH} bytes); \
         front ends cannot attach (a shorter --state-dir lets them)",
        path.display()
    )]
    PathTooLong { path: PathBuf },
    #[error("cannot make the control socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// The longest path a Unix socket may have on Linux (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// The private folder the socket is made in, and its name there: short, since the staged
/// path must fit [`MAX_SOCKET_PATH`] too (`<state dir>/.cXXXXXX/s`).
const STAGING_PREFIX: &str = ".c";
const STAGED_NAME: &str = "s";
/// How much longer than the state dir the staged path is.
const STAGING_EXTRA: usize = 1 + STAGING_PREFIX.len() + 6 + 1 + STAGED_NAME.len();

/// Whether a runtime of `state_dir` can have a control socket (a front end that finds it
/// cannot knows that no runtime listens there).
pub fn fits(state_dir: &Path) -> bool {
    let len = state_dir.as_os_str().len();
    len + 1 + SOCKET_NAME.len() <= MAX_SOCKET_PATH && len + STAGING_EXTRA <= MAX_SOCKET_PATH
}

/// A bound control socket; dropping it removes the file, if it is still this one.
#[derive(Debug)]
pub struct ControlSocket {
    pub listener: UnixListener,
    path: PathBuf,
    /// The socket file's device and inode, to remove only what is ours.
    identity: (u64, u64),
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds `<state_dir>/control.sock`. The socket is made in a private folder (0700) and
/// set to 0600 there, then renamed into place, so no other user can ever connect to it;
/// the rename also replaces a stale socket, once nothing accepts on it. Call it holding
/// the state dir's owner lock: two runtimes starting at once would both find a stale
/// socket, and the later rename would take the path from the first.
pub fn bind(state_dir: &Path) -> Result<ControlSocket, SocketError> {
    let path = socket_path(state_dir);
    if !fits(state_dir) {
        return Err(SocketError::PathTooLong { path });
    }
    let io = |source| SocketError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(SocketError::NotASocket { path }),
        Ok(_) => match UnixStream::connect(&path) {
            Ok(_) => return Err(SocketError::InUse { path }),
            // Refused: nothing listens, the socket is stale and is replaced below.
            Err(err) if err.kind() == ErrorKind::ConnectionRefused => {}
            Err(err) => return Err(io(err)),
        },
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(io(err)),
    }
    let private = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .rand_bytes(6)
        .tempdir_in(state_dir)
        .map_err(io)?;
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    let staged = private.path().join(STAGED_NAME);
    let listener = UnixListener::bind(&staged).map_err(io)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    std::fs::rename(&staged, &path).map_err(io)?;
    let meta = std::fs::symlink_metadata(&path).map_err(io)?;
    Ok(ControlSocket {
        listener,
        path,
        identity: (meta.dev(), meta.ino()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_0600_one_runtime_s_and_gone_when_it_ends() {
        let state = tempfile::tempdir().unwrap();
        let socket = bind(state.path()).unwrap();
        let meta = std::fs::symlink_metadata(socket_path(state.path())).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(UnixStream::connect(socket_path(state.path())).is_ok(), "it accepts");
        assert!(matches!(bind(state.path()), Err(SocketError::InUse { .. })));
        drop(socket);
        assert!(!socket_path(state.path()).exists(), "removed at the end");
        let leftovers: Vec<_> = std::fs::read_dir(state.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "no private folder left: {leftovers:?}");
    }

    #[test]
    fn a_stale_socket_is_replaced_and_anything_else_left_alone() {
        let state = tempfile::tempdir().unwrap();
        // A runtime killed with its socket bound: the file stays, nothing accepts.
        drop(UnixListener::bind(socket_path(state.path())).unwrap());
        let socket = bind(state.path()).unwrap();
        assert!(UnixStream::connect(socket_path(state.path())).is_ok());
        drop(socket);

        std::fs::write(socket_path(state.path()), b"not mine").unwrap();
        assert!(matches!(bind(state.path()), Err(SocketError::NotASocket { .. })));
        assert_eq!(std::fs::read(socket_path(state.path())).unwrap(), b"not mine");
    }

    #[test]
    fn a_state_dir_too_long_for_a_socket_is_named_and_nothing_is_made() {
        let root = tempfile::tempdir().unwrap();
        let fitting = MAX_SOCKET_PATH - STAGING_EXTRA.max(1 + SOCKET_NAME.len());
        let name = |len: usize| "d".repeat(len - root.path().as_os_str().len() - 1);
        let longest = root.path().join(name(fitting));
        std::fs::create_dir(&longest).unwrap();
        let socket = bind(&longest).unwrap();
        assert!(
            UnixStream::connect(socket_path(&longest)).is_ok(),
            "the longest that fits works"
        );
        drop(socket);

        let too_long = root.path().join(name(fitting + 1));
        std::fs::create_dir(&too_long).unwrap();
        assert!(!fits(&too_long));
        assert!(matches!(bind(&too_long), Err(SocketError::PathTooLong { .. })));
        assert_eq!(std::fs::read_dir(&too_long).unwrap().count(), 0, "nothing made");
    }

    #[test]
    fn a_socket_replaced_under_a_runtime_is_not_removed_by_it() {
        let state = tempfile::tempdir().unwrap();
        let first = bind(state.path()).unwrap();
        std::fs::remove_file(socket_path(state.path())).unwrap();
        let second = bind(state.path()).unwrap();
        drop(first);
        assert!(socket_path(state.path()).exists(), "the second runtime's socket stays");
        drop(second);
    }
}
