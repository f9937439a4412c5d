//! The resume journal of a download: which blocks of the payload are verified and durable,
//! kept in `<state>/downloads/<id>/` until the download commits or is cancelled.
//!
//! - `list.json` — the validated file list the blocks belong to (its version and files),
//!   and the files of the replaced version that the commit must remove. Written once per
//!   download start, durably (temp file, fsync, rename).
//! - `blocks.bin` — appended records of 44 bytes: file index (u32 LE, into the list),
//!   block index (u32 LE), the block's hash (32 bytes), and a CRC-32 of those 40 bytes.
//!
//! A record is appended only after its block's data was flushed (`fdatasync`), so a crash
//! never marks an unwritten block done; the journal itself is not synced per record: a
//! record lost in a crash costs one block fetched again, and a torn last record fails its
//! CRC and is ignored, with anything after it.
//!
//! The next download of the game reads the journal back: with the same list, its blocks are
//! done and stay where they are; with another list (a newer version), they are still known
//! content that the new download may reuse wherever its list wants the same hash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::storage;
use crate::content::ContentHash;
use crate::durable::{replace_file, sync_dir};
use crate::proto::GameFileDescription;

const DIR: &str = "downloads";
const LIST_FILE: &str = "list.json";
const LIST_TMP_FILE: &str = "list.json.tmp";
const BLOCKS_FILE: &str = "blocks.bin";
const RECORD_LEN: usize = 44;

/// What a download is fetching, as `list.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalList {
    pub version: String,
    pub files: Vec<GameFileDescription>,
    /// Payload of the replaced version the new list lacks: removed at commit.
    pub stale: Vec<GameFileDescription>,
}

/// One verified, durable block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneBlock {
    /// Index into [`JournalList::files`].
    pub file: u32,
    pub block: u32,
    pub hash: ContentHash,
}

/// A journal read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub list: JournalList,
    pub blocks: Vec<DoneBlock>,
}

/// The journal of a running download; records are appended from any thread.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    blocks: Mutex<File>,
}

fn journal_dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(DIR).join(id)
}

/// Whether game `id` has a journal, i.e. a partial download that can resume.
pub fn exists(state_dir: &Path, id: &str) -> bool {
    journal_dir(state_dir, id).join(LIST_FILE).is_file()
}

/// Reads game `id`'s journal; `None` when there is none or its list is unreadable (then
/// nothing of it can be trusted). Blocks.
pub fn load(state_dir: &Path, id: &str) -> Option<Recorded> {
    let dir = journal_dir(state_dir, id);
    let list: JournalList = match fs::read(dir.join(LIST_FILE)) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(list) => list,
            Err(err) => {
                tracing::warn!(game = id, "ignoring the unreadable resume journal: {err}");
                return None;
            }
        },
        Err(_) => return None,
    };
    let raw = fs::read(dir.join(BLOCKS_FILE)).unwrap_or_default();
    let mut blocks = Vec::with_capacity(raw.len() / RECORD_LEN);
    for record in raw.chunks_exact(RECORD_LEN) {
        let (body, crc) = record.split_at(RECORD_LEN - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            // A torn write from a crash: it and anything after it are not trusted.
            break;
        }
        let file = u32::from_le_bytes(body[0..4].try_into().unwrap_or_default());
        let block = u32::from_le_bytes(body[4..8].try_into().unwrap_or_default());
        let mut hash = [0; 32];
        hash.copy_from_slice(&body[8..40]);
        if (file as usize) < list.files.len() {
            blocks.push(DoneBlock {
                file,
                block,
                hash: ContentHash(hash),
            });
        }
    }
    Some(Recorded { list, blocks })
}

/// How far an unfinished download got: `done` of `total` payload bytes verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartialDownload {
    pub version: String,
    pub done: u64,
    pub total: u64,
}

impl Recorded {
    pub fn progress(&self) -> PartialDownload {
        let files = &self.list.files;
        let total = files.iter().filter(|f| !f.is_dir).map(|f| f.size).sum();
        let mut seen = std::collections::BTreeSet::new();
        let done = self
            .blocks
            .iter()
            .filter(|done| seen.insert((done.file, done.block)))
            .filter_map(|done| {
                let size = files.get(done.file as usize)?.size;
                let start = u64::from(done.block) * crate::content::BLOCK_SIZE;
                Some(crate::content::BLOCK_SIZE.min(size.saturating_sub(start)))
            })
            .sum();
        PartialDownload {
            version: self.list.version.clone(),
            done,
            total,
        }
    }
}

/// Every game with an unfinished download in `state_dir`, and how far it got. Blocks.
pub fn all_partial(state_dir: &Path) -> std::collections::BTreeMap<String, PartialDownload> {
    let Ok(dirs) = fs::read_dir(state_dir.join(DIR)) else {
        return Default::default();
    };
    dirs.flatten()
        .filter_map(|entry| {
            let id = entry.file_name().into_string().ok()?;
            crate::layout::validate_game_id(&id).ok()?;
            Some((id.clone(), load(state_dir, &id)?.progress()))
        })
        .collect()
}

/// Deletes an unfinished download of game `id` under `game_dir`: the payload files its
/// journal lists (this download's and the replaced version's), then their folders and the
/// game folder if that left them empty, then the journal. Only regular files the journal
/// names: never `local/`, never anything else. Returns how many files went. Blocks.
pub fn remove_partial(state_dir: &Path, game_dir: &Path, id: &str) -> io::Result<usize> {
    let root = game_dir.join(id);
    let mut removed = 0;
    if let Some(recorded) = load(state_dir, id) {
        let (dirs, files): (Vec<&GameFileDescription>, Vec<&GameFileDescription>) = recorded
            .list
            .files
            .iter()
            .chain(&recorded.list.stale)
            .partition(|file| file.is_dir);
        removed = storage::remove_payload(&root, storage::paths_of(&files), storage::paths_of(&dirs))?;
        for name in [crate::layout::VERSION_TMP_FILE, crate::layout::VERSION_DISCARDED_FILE] {
            crate::durable::remove_file_if_exists(&root.join(name))?;
        }
        let _ = fs::remove_dir(&root);
    }
    remove(state_dir, id);
    Ok(removed)
}

/// Deletes game `id`'s journal (after a commit, a cancel, or a `remove`). Blocks.
pub fn remove(state_dir: &Path, id: &str) {
    let dir = journal_dir(state_dir, id);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!("cannot remove the resume journal {}: {err}", dir.display()),
    }
}

impl Journal {
    /// Starts a fresh journal for `list`, holding `carried` (blocks already in place for it).
    /// Replaces any previous journal of the game. Blocks.
    pub fn start(state_dir: &Path, id: &str, list: &JournalList, carried: &[DoneBlock]) -> io::Result<Self> {
        let dir = journal_dir(state_dir, id);
        fs::create_dir_all(&dir)?;
        // The old records go first: until the new list is in place they would describe it.
        let mut blocks = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join(BLOCKS_FILE))?;
        blocks.write_all(&encode(carried))?;
        blocks.sync_data()?;
        let json = serde_json::to_vec(list).map_err(io::Error::other)?;
        replace_file(&dir.join(LIST_TMP_FILE), &dir.join(LIST_FILE), &json)?;
        sync_dir(&dir)?;
        let blocks = OpenOptions::new().append(true).open(dir.join(BLOCKS_FILE))?;
        Ok(Journal {
            dir,
            blocks: Mutex::new(blocks),
        })
    }

    /// Records blocks whose data is already durable. Blocks.
    pub fn record(&self, done: &[DoneBlock]) -> io::Result<()> {
        let bytes = encode(done);
        // A panic while holding the lock cannot leave a half-written record behind it.
        let mut file = self.blocks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&bytes)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn encode(done: &[DoneBlock]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(done.len() * RECORD_LEN);
    for block in done {
        let start = bytes.len();
        bytes.extend_from_slice(&block.file.to_le_bytes());
        bytes.extend_from_slice(&block.block.to_le_bytes());
        bytes.extend_from_slice(block.hash.as_bytes());
        let crc = crc32fast::hash(&bytes[start..]);
        bytes.extend_from_slice(&crc.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> JournalList {
        JournalList {
            version: "2".into(),
            files: vec![GameFileDescription {
                path: "a.zip".into(),
                size: 5 << 20,
                is_dir: false,
                hash: Some(ContentHash::of(b"root")),
            }],
            stale: Vec::new(),
        }
    }

    fn done(block: u32) -> DoneBlock {
        DoneBlock {
            file: 0,
            block,
            hash: ContentHash::of(&block.to_le_bytes()),
        }
    }

    #[test]
    fn removing_a_partial_download_never_follows_a_symlinked_folder() {
        let (state, games, outside) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let mut list = list();
        list.files[0].path = "maps/a.zip".into();
        Journal::start(state.path(), "openarena", &list, &[]).unwrap();
        let root = games.path().join("openarena");
        fs::create_dir_all(&root).unwrap();
        fs::write(outside.path().join("a.zip"), b"not ours").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("maps")).unwrap();
        assert_eq!(remove_partial(state.path(), games.path(), "openarena").unwrap(), 0);
        assert_eq!(fs::read(outside.path().join("a.zip")).unwrap(), b"not ours");
        assert!(!exists(state.path(), "openarena"), "the journal goes all the same");
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_ignored() {
        let state = tempfile::tempdir().unwrap();
        assert_eq!(load(state.path(), "openarena"), None);
        let journal = Journal::start(state.path(), "openarena", &list(), &[done(0)]).unwrap();
        journal.record(&[done(3), done(1)]).unwrap();
        assert!(exists(state.path(), "openarena"));
        let loaded = load(state.path(), "openarena").unwrap();
        assert_eq!(loaded.list, list());
        assert_eq!(loaded.blocks, [done(0), done(3), done(1)]);

        // A crash in the middle of a record: the whole records before it still count.
        let blocks = journal.dir().join(BLOCKS_FILE);
        let mut bytes = fs::read(&blocks).unwrap();
        bytes.truncate(bytes.len() - 10);
        fs::write(&blocks, &bytes).unwrap();
        assert_eq!(load(state.path(), "openarena").unwrap().blocks, [done(0), done(3)]);
        // A flipped bit fails its record's CRC, and the records after it are dropped too.
        bytes[RECORD_LEN + 9] ^= 1;
        fs::write(&blocks, &bytes).unwrap();
        assert_eq!(load(state.path(), "openarena").unwrap().blocks, [done(0)]);

        // Starting again replaces the old records.
        let again = Journal::start(state.path(), "openarena", &list(), &[]).unwrap();
        again.record(&[done(4)]).unwrap();
        assert_eq!(load(state.path(), "openarena").unwrap().blocks, [done(4)]);
        remove(state.path(), "openarena");
        assert!(!exists(state.path(), "openarena"));
    }
}
