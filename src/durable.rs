//! Crash-safe small-file writes: data to a temp file, fsync, rename over the
//! destination, fsync the directory. After a crash the destination holds
//! either the old content or the new, never a mix.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `destination` through `temp` (same directory).
pub fn replace_file(temp: &Path, destination: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, destination)?;
    sync_parent(destination)
}

/// Makes a rename, creation or removal inside `path`'s directory durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Flushes every dirty file of the filesystem holding `path`: one call instead
/// of an fsync per file when thousands of files were just written.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    sync_filesystem_of(&fs::File::open(path)?)
}

/// [`sync_filesystem`] for the filesystem holding an open file. Reports write-back errors
/// of that filesystem (since Linux 5.8).
pub fn sync_filesystem_of(file: &fs::File) -> io::Result<()> {
    rustix::fs::syncfs(file).map_err(io::Error::from)
}

/// Removes a file if it exists; a missing file is not an error.
pub fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_file_swaps_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let (temp, destination) = (dir.path().join(".x.tmp"), dir.path().join("x"));
        fs::write(&destination, b"old").unwrap();
        replace_file(&temp, &destination, b"new").unwrap();
        assert_eq!(fs::read(&destination).unwrap(), b"new");
        assert!(!temp.exists());
        remove_file_if_exists(&temp).unwrap();
        remove_file_if_exists(&destination).unwrap();
        assert!(!destination.exists());
    }
}
