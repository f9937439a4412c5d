//! The sender's check of its archives before a streamed install: each archive
//! (and RAR volume) at the game root is opened once beneath the game dir,
//! hashed from that handle with [`hash_file`], and compared with the block
//! hashes the library recorded for it and the root this peer announced. An
//! archive that rotted on disk (bytes changed without its stat stamp changing)
//! is refused before a byte of it is streamed, so the receiver moves to the
//! next sender instead of installing damage or failing mid-stream on a CRC.
//!
//! Cost: every archive is read once more than the stream itself reads it
//! (about 1.5 GiB/s of BLAKE3 on one core). That is acceptable: the stream reads
//! the same bytes right after, so on a machine with the memory the check warms
//! the page cache for it, and on a cold disk the stream's own decompression
//! and network rate, not the extra sequential read, bound the install. The
//! check runs on the provider's blocking thread, holding the game's transfer
//! guard, and stops as soon as the receiver goes away.
//!
//! What it does not cover: the unpack opens each archive again by name (the
//! archive walker opens its own handles, and unrar only takes a path), so an
//! archive swapped for another file between the check and the walk would be
//! streamed. [`CheckedArchives::ensure_unchanged`] catches that after the walk,
//! before `Done`: each checked path must still name the file that was hashed.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::beneath::open_file_beneath;
use crate::content::{ContentHash, FileHashes, hash_file};
use crate::install::unpack::{ArchiveFormat, find_archives};
use crate::proto::GameFileDescription;

/// How often the sender tells the receiver it is still checking: well inside the
/// receiver's stall timeout, so a long check of a big game is not taken for a dead sender.
pub const CHECK_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path} on this peer does not match its recorded hashes ({detail}): damaged on disk; not streaming it")]
    Damaged { path: String, detail: String },
    #[error(
        "{path} on this peer has no recorded hashes (changed since its last scan, or not hashed yet); \
         not streaming it"
    )]
    Unrecorded { path: String },
    #[error("{path} on this peer is not in the file list it serves (added since its last scan?); not streaming it")]
    Unlisted { path: String },
    #[error("cannot read {path} on this peer to check it: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} on this peer was replaced while it was streamed; not finishing the stream")]
    Replaced { path: String },
    #[error("the check was cancelled")]
    Cancelled,
}

/// What [`check_archives`] needs: where the game and its recorded hashes are, and what it serves.
pub struct ArchiveCheck<'a> {
    pub state_dir: &'a Path,
    pub game_dir: &'a Path,
    pub id: &'a str,
    /// The game's served file list (sorted by path), with the roots this peer announced.
    pub files: &'a [GameFileDescription],
}

/// An archive that passed the check, and the identity of the very file that was hashed.
#[derive(Debug)]
struct Checked {
    path: String,
    dev: u64,
    ino: u64,
}

/// The archives that passed; see [`CheckedArchives::ensure_unchanged`].
#[derive(Debug, Default)]
pub struct CheckedArchives {
    game_root: PathBuf,
    archives: Vec<Checked>,
    /// Bytes hashed, for the sender's log.
    pub bytes: u64,
}

impl CheckedArchives {
    /// Every checked path still names the file (device and inode) that was hashed, so what the
    /// walk opened by name in between was that file. Blocking.
    pub fn ensure_unchanged(&self) -> Result<(), CheckError> {
        for archive in &self.archives {
            let same = fs::symlink_metadata(self.game_root.join(&archive.path))
                .is_ok_and(|meta| meta.is_file() && meta.dev() == archive.dev && meta.ino() == archive.ino);
            if !same {
                return Err(CheckError::Replaced {
                    path: archive.path.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A root-level name the archive walk reads: an archive, or a later volume of an old-style
/// RAR set (`name.r00`, `name.r01`, ...; `name.partN.rar` volumes are archives by name).
fn is_archive_name(name: &str) -> bool {
    if ArchiveFormat::from_file_name(name).is_some() {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    lower.rsplit_once(".r").is_some_and(|(stem, digits)| {
        !stem.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Checks every archive of the game against its recorded hashes, in path order. `progress`
/// gets (bytes checked, bytes to check) at most every [`CHECK_PROGRESS_INTERVAL`];
/// `cancelled` is asked between reads. Blocking.
pub fn check_archives(
    check: &ArchiveCheck<'_>,
    progress: &mut dyn FnMut(u64, u64),
    cancelled: &dyn Fn() -> bool,
) -> Result<CheckedArchives, CheckError> {
    let game_root = check.game_dir.join(check.id);
    let listed: Vec<&GameFileDescription> = check
        .files
        .iter()
        .filter(|file| !file.is_dir && !file.path.contains('/') && is_archive_name(&file.path))
        .collect();
    // The walk unpacks what it finds on disk, not what was listed: an archive that appeared
    // since the scan has no recorded hashes to check it against.
    let found = find_archives(&game_root).map_err(|source| CheckError::Read {
        path: check.id.to_owned(),
        source,
    })?;
    for archive in &found {
        let name = archive.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if !listed.iter().any(|file| file.path == name) {
            return Err(CheckError::Unlisted { path: name.to_owned() });
        }
    }
    let total: u64 = listed.iter().map(|file| file.size).sum();
    let mut done = 0;
    let mut last_report = Instant::now();
    let mut checked = CheckedArchives {
        game_root,
        archives: Vec::with_capacity(listed.len()),
        bytes: 0,
    };
    for file in listed {
        let path = file.path.clone();
        let (Some(announced), Some(recorded)) = (
            file.hash,
            crate::library::block_hashes(check.state_dir, check.game_dir, check.id, &path),
        ) else {
            return Err(CheckError::Unrecorded { path });
        };
        let read_error = |source| CheckError::Read {
            path: path.clone(),
            source,
        };
        let opened = open_file_beneath(check.game_dir, &format!("{}/{path}", check.id))
            .map_err(|err| read_error(io::Error::other(err)))?;
        let meta = opened.file.metadata().map_err(read_error)?;
        if opened.len != file.size {
            let detail = format!("it has {} bytes, {} were recorded", opened.len, file.size);
            return Err(CheckError::Damaged { path, detail });
        }
        let base = done;
        let hashes = hash_file(
            &opened.file,
            opened.len,
            &mut |hashed| {
                if last_report.elapsed() >= CHECK_PROGRESS_INTERVAL {
                    last_report = Instant::now();
                    progress(base + hashed, total);
                }
            },
            cancelled,
        )
        .map_err(|err| match err.kind() {
            io::ErrorKind::Interrupted if cancelled() => CheckError::Cancelled,
            _ => read_error(err),
        })?;
        if let Some(detail) = difference(opened.len, &hashes, &recorded, announced) {
            return Err(CheckError::Damaged { path, detail });
        }
        done += opened.len;
        checked.bytes = done;
        checked.archives.push(Checked {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        });
    }
    Ok(checked)
}

/// How the hashed file differs from what was recorded and announced, if it does.
fn difference(len: u64, hashes: &FileHashes, recorded: &FileHashes, announced: ContentHash) -> Option<String> {
    let blocks = recorded.blocks.len();
    let differing: Vec<usize> = hashes
        .blocks
        .iter()
        .zip(&recorded.blocks)
        .enumerate()
        .filter(|(_, (now, then))| now != then)
        .map(|(index, _)| index + 1)
        .collect();
    match differing.as_slice() {
        [] if hashes.blocks.len() != blocks => {
            Some(format!("{} blocks hashed, {blocks} recorded", hashes.blocks.len()))
        }
        [] if hashes.root(len) != announced => Some("its root differs from the one this peer announced".to_owned()),
        [] => None,
        [block] => Some(format!("block {block} of {blocks} differs")),
        [first, ..] => Some(format!(
            "{} of {blocks} blocks differ, the first is block {first}",
            differing.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::BLOCK_SIZE;

    fn hashes(blocks: &[&[u8]]) -> FileHashes {
        FileHashes {
            blocks: blocks.iter().map(|block| ContentHash::of(block)).collect(),
        }
    }

    #[test]
    fn the_difference_names_the_first_differing_block() {
        let len = 3 * BLOCK_SIZE;
        let recorded = hashes(&[b"a", b"b", b"c"]);
        let root = recorded.root(len);
        assert_eq!(difference(len, &recorded, &recorded, root), None);
        assert_eq!(
            difference(len, &hashes(&[b"a", b"x", b"c"]), &recorded, root).as_deref(),
            Some("block 2 of 3 differs")
        );
        assert_eq!(
            difference(len, &hashes(&[b"x", b"b", b"y"]), &recorded, root).as_deref(),
            Some("2 of 3 blocks differ, the first is block 1")
        );
        assert_eq!(
            difference(len, &hashes(&[b"a", b"b"]), &recorded, root).as_deref(),
            Some("2 blocks hashed, 3 recorded")
        );
        let other_root = hashes(&[b"z"]).root(len);
        assert!(
            difference(len, &recorded, &recorded, other_root).is_some_and(|detail| detail.contains("announced")),
            "blocks that match a record disagreeing with the announced root still refuse"
        );
    }

    #[test]
    fn archives_and_rar_volumes_are_checked_nothing_else() {
        for name in [
            "game.zip",
            "GAME.TAR.GZ",
            "game.tzst",
            "game.part2.rar",
            "game.rar",
            "game.r00",
            "game.R12",
        ] {
            assert!(is_archive_name(name), "{name}");
        }
        for name in ["version.ini", "readme.txt", "game.r", "game.rx0", ".r00", "game.bin"] {
            assert!(!is_archive_name(name), "{name}");
        }
    }

    #[test]
    fn an_archive_replaced_after_its_check_is_caught() {
        let root = tempfile::tempdir().unwrap();
        let archive = root.path().join("game.zip");
        fs::write(&archive, b"checked").unwrap();
        let meta = fs::metadata(&archive).unwrap();
        let checked = CheckedArchives {
            game_root: root.path().to_owned(),
            archives: vec![Checked {
                path: "game.zip".into(),
                dev: meta.dev(),
                ino: meta.ino(),
            }],
            bytes: 7,
        };
        checked.ensure_unchanged().unwrap();
        let other = root.path().join("other.zip");
        fs::write(&other, b"swapped").unwrap();
        fs::rename(&other, &archive).unwrap();
        let err = checked.ensure_unchanged().unwrap_err();
        assert!(
            matches!(&err, CheckError::Replaced { path } if path == "game.zip"),
            "{err}"
        );
    }

    #[test]
    fn an_unlisted_or_unhashed_archive_is_refused_before_any_read() {
        let games = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        fs::create_dir_all(games.path().join("openarena")).unwrap();
        fs::write(games.path().join("openarena/game.zip"), b"not read").unwrap();
        let check = |files: &[GameFileDescription]| {
            let check = ArchiveCheck {
                state_dir: state.path(),
                game_dir: games.path(),
                id: "openarena",
                files,
            };
            check_archives(&check, &mut |_, _| panic!("nothing is hashed"), &|| false)
        };
        let err = check(&[]).unwrap_err();
        assert!(
            matches!(&err, CheckError::Unlisted { path } if path == "game.zip"),
            "{err}"
        );
        let listed = GameFileDescription {
            path: "game.zip".into(),
            size: 8,
            is_dir: false,
            hash: None,
        };
        let err = check(&[listed]).unwrap_err();
        assert!(
            matches!(&err, CheckError::Unrecorded { path } if path == "game.zip"),
            "{err}"
        );
        assert!(err.to_string().contains("no recorded hashes"), "{err}");
    }
}
