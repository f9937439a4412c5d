//! Disk space: how much is free where, and how byte counts read in messages.
//! Shared by the runtime (space checks, full-disk errors) and the front ends.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a folder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateFolderError {
    /// A file (or something else) stands where the folder or one of its parents should be.
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Creates `path` and its missing parents; when something that is not a folder is in
/// the way, names it instead of the bare "File exists" / "Not a directory".
pub fn create_folder(path: &Path) -> Result<(), CreateFolderError> {
    std::fs::create_dir_all(path).map_err(|err| match path.ancestors().find(|dir| dir.exists()) {
        Some(existing) if !existing.is_dir() => CreateFolderError::NotAFolder(existing.to_owned()),
        _ => CreateFolderError::Io(err),
    })
}

/// Bytes available to unprivileged users on the file system holding `path`, or holding its
/// nearest existing ancestor (the path may be what could not be created); `None` when it
/// cannot tell (then nothing is refused on its account).
pub fn free_space(path: &Path) -> Option<u64> {
    path.ancestors().find_map(|dir| {
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    })
}

/// `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Shows a [`free_space`] reading in an error message: "8.0 MiB free on its file system".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace(pub Option<u64>);

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) => write!(f, "{} free on its file system", format_size(bytes)),
            None => f.write_str("the free space on its file system is unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_at_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).is_some());
        assert!(free_space(&dir.path().join("not/yet/created")).is_some());
        assert_eq!(FreeSpace(Some(0)).to_string(), "0 B free on its file system");
        assert_eq!(FreeSpace(Some(3 << 20)).to_string(), "3.0 MiB free on its file system");
        assert!(FreeSpace(None).to_string().contains("unknown"));
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(3 << 30), "3.0 GiB");
    }
}
