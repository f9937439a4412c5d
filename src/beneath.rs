//! Opening (or removing) a file beneath a trusted directory with no window between
//! the check and the use.
//!
//! Anyone with write access to the game dir (another user on the box, a game's
//! own installer) can swap a listed file or directory for a symlink or a FIFO
//! at any moment. Checking a path (`canonicalize`, `symlink_metadata`) and then
//! opening it again by name lets a swap land in between. So the path is walked
//! one component at a time from a descriptor of the trusted base, each
//! directory opened with `O_NOFOLLOW` relative to the previous one, and the
//! final file opened with `O_NOFOLLOW | O_NONBLOCK` (a FIFO then opens at once
//! instead of waiting for a writer) and checked with `fstat` on the very handle
//! that will be read: what is read is what was checked.
//!
//! Why a walk of `openat` rather than one `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`: both refuse a symlink at every component, but
//! `openat2` needs Linux 5.6 and is refused (EPERM/ENOSYS) by older container
//! seccomp profiles, so it would need this walk as a fallback anyway; one code
//! path is simpler to keep right and to test. The components are validated
//! first (no `..`, not absolute), so each `openat` names one entry directly
//! inside a directory already held open, and nothing can lead outside the base.
//!
//! A removal walks the same way to the entry's folder and unlinks the entry from
//! that folder's descriptor, so no swap can send it outside the base either.
//!
//! The functions here block (they make syscalls); callers on tokio use `spawn_blocking`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::layout::{PathError, validate_relative_path};

/// A regular file opened beneath a trusted directory, and its length from the `fstat` of
/// this handle.
#[derive(Debug)]
pub struct OpenedFile {
    pub file: File,
    pub len: u64,
}

/// Why [`open_file_beneath`] refused or failed. Messages name only the relative path asked
/// for (escaped), so they never grow with anything else.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    InvalidPath(#[from] PathError),
    #[error("{relative:?} does not exist")]
    NotFound { relative: String },
    #[error("{relative:?} is or passes through a symlink")]
    Symlink { relative: String },
    #[error("{relative:?} is a {kind}, not a regular file")]
    NotRegular { relative: String, kind: &'static str },
    #[error("cannot open {relative:?}: {source}")]
    Io { relative: String, source: io::Error },
}

/// Opens the regular file `relative` (`/`-separated, validated by
/// [`validate_relative_path`]) beneath `base`, refusing a symlink at every component and
/// anything but a regular file at the end. `base` itself is trusted and may be reached
/// through symlinks. Blocking.
pub fn open_file_beneath(base: &Path, relative: &str) -> Result<OpenedFile, OpenError> {
    let io_error = |errno: Errno| OpenError::Io {
        relative: relative.to_owned(),
        source: io::Error::from(errno),
    };
    let (dir, name) = open_parent_beneath(base, relative)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd =
        rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(|errno| refusal(&dir, name, errno, relative))?;
    let stat = rustix::fs::fstat(&fd).map_err(io_error)?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::RegularFile {
        return Err(OpenError::NotRegular {
            relative: relative.to_owned(),
            kind: describe(file_type),
        });
    }
    // O_NONBLOCK has no effect on a regular file's reads, so the handle is used as is.
    Ok(OpenedFile {
        file: File::from(fd),
        len: u64::try_from(stat.st_size).unwrap_or(0),
    })
}

/// What [`remove_beneath`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A regular file (anything else there stays).
    File,
    /// A directory, only if empty.
    EmptyDir,
}

/// Removes `relative` beneath `base` if it is what `what` says, unlinking it from a
/// descriptor of its folder reached as [`open_file_beneath`] reaches it: a folder on the way
/// that is (or was swapped for) a symlink ends the walk, so a removal never leads outside
/// `base`. Whatever is at the end is never followed either (unlinking a symlink swapped in
/// after the check would remove the link, itself beneath `base`). Returns whether it removed
/// something: `false` for a path that does not exist, passes through a symlink, is of
/// another kind, or (a directory) is not empty. Blocking.
pub fn remove_beneath(base: &Path, relative: &str, what: Removal) -> Result<bool, OpenError> {
    let (dir, name) = match open_parent_beneath(base, relative) {
        Ok(opened) => opened,
        Err(OpenError::NotFound { .. } | OpenError::Symlink { .. }) => return Ok(false),
        Err(err) => return Err(err),
    };
    let io_error = |errno: Errno| OpenError::Io {
        relative: relative.to_owned(),
        source: io::Error::from(errno),
    };
    let file_type = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => FileType::from_raw_mode(stat.st_mode),
        Err(Errno::NOENT) => return Ok(false),
        Err(errno) => return Err(io_error(errno)),
    };
    let (wanted, flags) = match what {
        Removal::File => (FileType::RegularFile, AtFlags::empty()),
        Removal::EmptyDir => (FileType::Directory, AtFlags::REMOVEDIR),
    };
    if file_type != wanted {
        return Ok(false);
    }
    match rustix::fs::unlinkat(&dir, name, flags) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST | Errno::ISDIR | Errno::NOTDIR) => Ok(false),
        Err(errno) => Err(io_error(errno)),
    }
}

/// Validates `relative` and opens the folder it lies in beneath `base`, one `openat` with
/// `O_NOFOLLOW` per component; returns that folder and the last component.
fn open_parent_beneath<'r>(base: &Path, relative: &'r str) -> Result<(OwnedFd, &'r str), OpenError> {
    validate_relative_path(relative)?;
    let base_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir: OwnedFd = rustix::fs::open(base, base_flags, Mode::empty()).map_err(|errno| OpenError::Io {
        relative: relative.to_owned(),
        source: io::Error::from(errno),
    })?;
    let (parents, name) = match relative.rsplit_once('/') {
        Some((parents, name)) => (Some(parents), name),
        None => (None, relative),
    };
    for component in parents.into_iter().flat_map(|parents| parents.split('/')) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        dir = rustix::fs::openat(&dir, component, flags, Mode::empty())
            .map_err(|errno| refusal(&dir, component, errno, relative))?;
    }
    Ok((dir, name))
}

/// Classifies a failed `openat` of `component` inside `dir`. Opening a symlink with
/// `O_NOFOLLOW` fails with ELOOP, but with `O_DIRECTORY` too Linux reports ENOTDIR, as for
/// a file used as a directory; an `lstat` tells the two apart. That second look only picks
/// the error's name: nothing was opened through the link either way.
fn refusal(dir: &OwnedFd, component: &str, errno: Errno, relative: &str) -> OpenError {
    let relative = relative.to_owned();
    match errno {
        Errno::LOOP => OpenError::Symlink { relative },
        Errno::NOTDIR => match rustix::fs::statat(dir.as_fd(), component, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => OpenError::Symlink { relative },
            _ => OpenError::NotFound { relative },
        },
        Errno::NOENT => OpenError::NotFound { relative },
        other => OpenError::Io {
            relative,
            source: io::Error::from(other),
        },
    }
}

fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use super::*;

    /// `<tmp>/base/` holding `file.txt`, `dir/inner.txt`, `game/data.bin`; `<tmp>/outside/`
    /// holding `secret.txt`, `inner.txt` and `data.bin`, all with content that tells them apart.
    fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        fs::create_dir_all(base.join("dir")).unwrap();
        fs::create_dir_all(base.join("game")).unwrap();
        fs::write(base.join("file.txt"), b"hello beneath").unwrap();
        fs::write(base.join("dir/inner.txt"), b"inner").unwrap();
        fs::write(base.join("game/data.bin"), b"data").unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        for name in ["secret.txt", "inner.txt", "data.bin"] {
            fs::write(outside.join(name), b"SECRET").unwrap();
        }
        (tmp, base)
    }

    fn read_all(opened: OpenedFile) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut file = opened.file;
        file.read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn regular_files_open_with_their_length() {
        let (_tmp, base) = fixture();
        let opened = open_file_beneath(&base, "file.txt").unwrap();
        assert_eq!(opened.len, 13);
        assert_eq!(read_all(opened), b"hello beneath");
        let opened = open_file_beneath(&base, "dir/inner.txt").unwrap();
        assert_eq!(opened.len, 5);
        assert_eq!(read_all(opened), b"inner");
    }

    #[test]
    fn removal_takes_only_regular_files_and_empty_folders_and_never_passes_a_symlink() {
        let (tmp, base) = fixture();
        let outside = tmp.path().join("outside");
        symlink(&outside, base.join("swapped")).unwrap();
        symlink(outside.join("secret.txt"), base.join("link.txt")).unwrap();
        fs::create_dir(base.join("empty")).unwrap();
        let gone = |relative, what| remove_beneath(&base, relative, what).unwrap();
        assert!(!gone("swapped/secret.txt", Removal::File), "through a symlinked folder");
        assert!(!gone("link.txt", Removal::File), "a symlink is not a regular file");
        assert!(!gone("swapped", Removal::EmptyDir), "a symlink is not a folder");
        assert_eq!(fs::read(outside.join("secret.txt")).unwrap(), b"SECRET");
        assert!(!gone("dir", Removal::EmptyDir), "not empty");
        assert!(!gone("dir", Removal::File), "a folder is not a file");
        assert!(!gone("missing.txt", Removal::File));
        assert!(gone("dir/inner.txt", Removal::File));
        assert!(gone("dir", Removal::EmptyDir));
        assert!(gone("empty", Removal::EmptyDir));
        assert!(!base.join("dir").exists() && !base.join("empty").exists());
        assert!(matches!(
            remove_beneath(&base, "../outside/secret.txt", Removal::File),
            Err(OpenError::InvalidPath(_))
        ));
    }

    #[test]
    fn the_trusted_base_may_be_a_symlink() {
        let (tmp, base) = fixture();
        let link = tmp.path().join("base-link");
        symlink(&base, &link).unwrap();
        assert_eq!(
            read_all(open_file_beneath(&link, "file.txt").unwrap()),
            b"hello beneath"
        );
    }

    #[test]
    fn a_symlink_as_the_last_component_is_refused() {
        let (tmp, base) = fixture();
        symlink(tmp.path().join("outside/secret.txt"), base.join("link.txt")).unwrap();
        // A link to a file inside the base is refused just the same.
        symlink(base.join("file.txt"), base.join("inside-link.txt")).unwrap();
        for relative in ["link.txt", "inside-link.txt"] {
            let err = open_file_beneath(&base, relative).unwrap_err();
            assert!(matches!(err, OpenError::Symlink { .. }), "{relative}: {err:?}");
        }
    }

    #[test]
    fn a_symlink_as_a_directory_component_is_refused() {
        let (tmp, base) = fixture();
        fs::remove_dir_all(base.join("dir")).unwrap();
        symlink(tmp.path().join("outside"), base.join("dir")).unwrap();
        let err = open_file_beneath(&base, "dir/inner.txt").unwrap_err();
        assert!(matches!(err, OpenError::Symlink { .. }), "{err:?}");
    }

    #[test]
    fn a_symlinked_game_root_is_refused() {
        let (tmp, base) = fixture();
        fs::remove_dir_all(base.join("game")).unwrap();
        symlink(tmp.path().join("outside"), base.join("game")).unwrap();
        let err = open_file_beneath(&base, "game/data.bin").unwrap_err();
        assert!(matches!(err, OpenError::Symlink { .. }), "{err:?}");
    }

    #[test]
    fn traversal_and_absolute_paths_are_invalid() {
        let (_tmp, base) = fixture();
        for relative in [
            "../outside/secret.txt",
            "dir/../../outside/secret.txt",
            "/etc/passwd",
            "",
            "a//b",
        ] {
            let err = open_file_beneath(&base, relative).unwrap_err();
            assert!(matches!(err, OpenError::InvalidPath(_)), "{relative:?}: {err:?}");
        }
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let (_tmp, base) = fixture();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            base.join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // A blocking open would wait for a writer forever; run it on a thread to fail, not hang.
        let (sender, receiver) = std::sync::mpsc::channel();
        let base_clone = base.clone();
        std::thread::spawn(move || {
            let _ = sender.send(open_file_beneath(&base_clone, "pipe").map(|_| ()));
        });
        let result = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("opening a FIFO returns at once");
        match result {
            Err(OpenError::NotRegular { kind, .. }) => assert_eq!(kind, "FIFO"),
            other => panic!("expected NotRegular, got {other:?}"),
        }
    }

    #[test]
    fn directories_are_not_regular_files() {
        let (_tmp, base) = fixture();
        match open_file_beneath(&base, "dir") {
            Err(OpenError::NotRegular { kind, .. }) => assert_eq!(kind, "directory"),
            other => panic!("expected NotRegular, got {other:?}"),
        }
    }

    #[test]
    fn missing_files_are_not_found() {
        let (_tmp, base) = fixture();
        for relative in ["missing.txt", "missing/inner.txt", "dir/missing.txt", "file.txt/x"] {
            let err = open_file_beneath(&base, relative).unwrap_err();
            assert!(matches!(err, OpenError::NotFound { .. }), "{relative}: {err:?}");
        }
    }

    #[test]
    fn messages_name_only_the_escaped_relative_path() {
        let (_tmp, base) = fixture();
        let err = open_file_beneath(&base, "dir/missing\u{7f}.txt").unwrap_err();
        assert_eq!(err.to_string(), "\"dir/missing\\u{7f}.txt\" does not exist");
    }
}
