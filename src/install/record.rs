//! Small records that tell the library what an install is, beyond what the
//! folders show: which version `local/` holds and whether it came from a
//! streamed install (so there are no archives), and that the last install of
//! the downloaded version failed, with why.
//!
//! Both live in the game root, so `local/` holds exactly the game's files. The
//! installed record travels in the install journal and is written right after
//! promotion; startup recovery writes it when a crash came in between, so once
//! recovery has run it always describes `local/`. The failure record is advisory (a state to show and a hint to retry): it is
//! written when an install fails or recovery rolls one back, and cleared by a
//! successful install, an uninstall and a removal.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::durable::{remove_file_if_exists, replace_file};
use crate::layout::GameLayout;

/// Records are tiny; anything bigger is not ours and is ignored.
const MAX_RECORD: u64 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledRecord {
    pub version: String,
    /// Installed by a streamed install: `local/` only, no archives in the game root.
    pub streamed: bool,
}

impl InstalledRecord {
    pub fn save(&self, layout: &GameLayout) -> io::Result<()> {
        save_json(self, &layout.installed_record())
    }

    /// The record of an installed `local/`; `None` for an install made before records existed.
    pub fn read(layout: &GameLayout) -> Option<Self> {
        read_json(&layout.installed_record())
    }

    pub fn remove(layout: &GameLayout) -> io::Result<()> {
        remove_file_if_exists(&layout.installed_record())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallFailure {
    /// The downloaded version whose install failed.
    pub version: String,
    pub reason: String,
}

impl InstallFailure {
    pub fn save(&self, layout: &GameLayout) -> io::Result<()> {
        save_json(self, &layout.install_failed_record())
    }

    pub fn read(layout: &GameLayout) -> Option<Self> {
        read_json(&layout.install_failed_record())
    }

    pub fn clear(layout: &GameLayout) -> io::Result<()> {
        remove_file_if_exists(&layout.install_failed_record())
    }
}

/// Durably replaces `path` (through a reserved temp name beside it).
fn save_json<T: Serialize>(value: &T, path: &Path) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    replace_file(Path::new(&temp), path, &bytes)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    // Opened without following a symlink someone may have put there.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_RECORD).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes)
        .inspect_err(|err| tracing::warn!("ignoring unreadable {}: {err}", path.display()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let layout = GameLayout::new(dir.path(), "openarena");
        fs::create_dir_all(layout.local()).unwrap();
        assert_eq!(InstalledRecord::read(&layout), None);
        let record = InstalledRecord {
            version: "2".into(),
            streamed: true,
        };
        record.save(&layout).unwrap();
        assert_eq!(InstalledRecord::read(&layout), Some(record));
        InstalledRecord::remove(&layout).unwrap();
        assert_eq!(InstalledRecord::read(&layout), None);

        let failure = InstallFailure {
            version: "2".into(),
            reason: "disk full".into(),
        };
        failure.save(&layout).unwrap();
        assert_eq!(InstallFailure::read(&layout), Some(failure));
        InstallFailure::clear(&layout).unwrap();
        assert_eq!(InstallFailure::read(&layout), None);

        fs::write(layout.install_failed_record(), b"not json").unwrap();
        assert_eq!(InstallFailure::read(&layout), None);
        fs::remove_file(layout.install_failed_record()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", layout.install_failed_record()).unwrap();
        assert_eq!(InstallFailure::read(&layout), None, "a symlink is not followed");
    }
}
