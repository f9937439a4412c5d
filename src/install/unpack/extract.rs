//! [`ArchiveUnpacker`]: [`visit_entries_with`] plus writing into the target.
//!
//! Paths come validated from the walker (relative, no `..`, no reserved
//! names), and each is joined onto the target component by component. Every
//! directory on the way is checked with `symlink_metadata`: an existing symlink
//! (or non-directory) is never written through. Files are created with
//! `create_new`, which fails on anything already at the path, a dangling
//! symlink included. Data goes out in 1 MiB writes.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{
    ArchiveEntry, ArchiveStats, EntryKind, UnpackError, UnpackProgress, Unpacker, VisitOptions, visit_entries_with,
};

const WRITE_BUFFER: usize = 1 << 20;
/// Progress is reported at least every this many bytes ...
const PROGRESS_BYTES: u64 = 4 << 20;
/// ... or this many files.
const PROGRESS_FILES: u64 = 64;

/// The real unpacker: every archive at the game root, all formats of this module.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArchiveUnpacker;

impl Unpacker for ArchiveUnpacker {
    fn unpack(
        &self,
        game_root: &Path,
        target: &Path,
        progress: &mut dyn FnMut(UnpackProgress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ArchiveStats, UnpackError> {
        let metadata = fs::symlink_metadata(target).map_err(|err| UnpackError::io(target, err))?;
        if !metadata.is_dir() {
            return Err(UnpackError::UnsafeTarget {
                path: target.to_path_buf(),
            });
        }
        let mut writer = TargetWriter {
            target,
            known_dirs: HashSet::new(),
            buffer: vec![0u8; WRITE_BUFFER],
            progress,
            cancelled,
            done: UnpackProgress::default(),
            reported: UnpackProgress::default(),
        };
        // RAR scratch files go inside the target: same filesystem, under a reserved name no
        // member can have, and removed before this returns.
        let options = VisitOptions {
            scratch_dir: Some(target),
            cancelled: Some(cancelled),
        };
        let stats = visit_entries_with(game_root, options, &mut |entry| writer.write_entry(entry))?;
        (writer.progress)(writer.done);
        Ok(stats)
    }
}

struct TargetWriter<'a> {
    target: &'a Path,
    /// Directories under the target created or checked by this unpack.
    known_dirs: HashSet<PathBuf>,
    buffer: Vec<u8>,
    progress: &'a mut dyn FnMut(UnpackProgress),
    cancelled: &'a dyn Fn() -> bool,
    done: UnpackProgress,
    reported: UnpackProgress,
}

impl TargetWriter<'_> {
    fn write_entry(&mut self, entry: ArchiveEntry<'_>) -> Result<(), UnpackError> {
        if (self.cancelled)() {
            return Err(UnpackError::Cancelled);
        }
        let components: Vec<&str> = entry.path.split('/').collect();
        let Some((last, parents)) = components.split_last() else {
            return Ok(());
        };
        let mut dir = self.target.to_path_buf();
        for component in parents {
            dir.push(component);
            self.ensure_dir(&dir)?;
        }
        let destination = dir.join(last);
        match entry.kind {
            EntryKind::Dir => self.ensure_dir(&destination),
            EntryKind::File => {
                self.write_file(&destination, entry)?;
                self.done.files += 1;
                self.maybe_report();
                Ok(())
            }
        }
    }

    /// Creates `dir` or checks that it is a real directory (not a symlink).
    fn ensure_dir(&mut self, dir: &Path) -> Result<(), UnpackError> {
        if self.known_dirs.contains(dir) {
            return Ok(());
        }
        match fs::symlink_metadata(dir) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(UnpackError::UnsafeTarget {
                    path: dir.to_path_buf(),
                });
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => match fs::create_dir(dir) {
                Ok(()) => {}
                Err(err) => return Err(UnpackError::io(dir, err)),
            },
            Err(err) => return Err(UnpackError::io(dir, err)),
        }
        self.known_dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn write_file(&mut self, destination: &Path, entry: ArchiveEntry<'_>) -> Result<(), UnpackError> {
        let mut file = match OpenOptions::new().write(true).create_new(true).open(destination) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(UnpackError::UnsafeTarget {
                    path: destination.to_path_buf(),
                });
            }
            Err(err) => return Err(UnpackError::io(destination, err)),
        };
        loop {
            if (self.cancelled)() {
                return Err(UnpackError::Cancelled);
            }
            let filled = fill(entry.reader, &mut self.buffer).map_err(|err| {
                // The walker replaces this with the precise failure it recorded.
                UnpackError::corrupt(entry.archive, format!("entry {:?}: {err}", entry.path))
            })?;
            if filled == 0 {
                break;
            }
            file.write_all(&self.buffer[..filled])
                .map_err(|err| UnpackError::io(destination, err))?;
            self.done.bytes += filled as u64;
            self.maybe_report();
        }
        if entry.executable {
            set_executable(&file, destination)?;
        }
        Ok(())
    }

    fn maybe_report(&mut self) {
        if self.done.bytes - self.reported.bytes >= PROGRESS_BYTES
            || self.done.files - self.reported.files >= PROGRESS_FILES
        {
            self.reported = self.done;
            (self.progress)(self.done);
        }
    }
}

/// Reads until `buffer` is full or the reader ends, so writes are whole buffers.
fn fill(reader: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Adds `x` wherever the file has `r` (so 644 becomes 755).
#[cfg(unix)]
fn set_executable(file: &File, path: &Path) -> Result<(), UnpackError> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = file.metadata().map_err(|err| UnpackError::io(path, err))?.permissions();
    let mode = permissions.mode();
    permissions.set_mode(mode | ((mode & 0o444) >> 2));
    file.set_permissions(permissions)
        .map_err(|err| UnpackError::io(path, err))
}

#[cfg(not(unix))]
fn set_executable(_file: &File, _path: &Path) -> Result<(), UnpackError> {
    Ok(())
}
