//! The block hashes of a game's payload files, kept beside the library index: one binary
//! file per game, `<state>/hashes/<id>.bin`.
//!
//! Why not in the JSON index: the index is loaded whole at start and rewritten on every
//! save, and a 500 GB game's 500k block hashes would add ~32 MB of hex to it. The roots stay
//! in the index (they go out in file lists); the blocks are read only when a file's blocks
//! are needed (serving, verifying, a rescan of a changed game) and written once per scan of
//! a changed game.
//!
//! Format (integers little-endian): the magic `LSHASH` + version `0x0001`; the game root's
//! path (u32 length + bytes); a u32 file count; per file its path (u32 length + UTF-8), its
//! stamp (len u64, mtime_ns u128) and root (32 bytes); then, per file in the same order,
//! its `ceil(len / BLOCK_SIZE)` block hashes of 32 bytes. A reader checks the total length
//! and that the blocks give the stored root, so a torn or foreign file is refused, never
//! trusted. Written to a temp file and renamed; no fsync, as for the index: it is a cache,
//! and a lost one means a rehash.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::content::{ContentHash, FileHashes};

const DIR: &str = "hashes";
const MAGIC: &[u8; 8] = b"LSHASH\x00\x01";
/// Longer paths are not written by this build; a header claiming one is corrupt.
const MAX_PATH_LEN: u32 = 64 * 1024;
/// Path length, len, mtime and root: the least a file entry of the header takes.
const MIN_ENTRY_LEN: u64 = 4 + 8 + 16 + 32;

/// One file's block hashes, and the stamp and root of the file version they describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredFile {
    pub len: u64,
    pub mtime_ns: u128,
    pub root: ContentHash,
    pub hashes: FileHashes,
}

fn side_file(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join(DIR).join(format!("{id}.bin"))
}

/// Replaces game `id`'s side file with `files` (paths relative to `game_root`).
pub(super) fn write(
    state_dir: &Path,
    game_root: &Path,
    id: &str,
    files: &BTreeMap<String, StoredFile>,
) -> io::Result<()> {
    let path = side_file(state_dir, id);
    fs::create_dir_all(state_dir.join(DIR))?;
    let tmp = path.with_extension("bin.tmp");
    let mut out = BufWriter::new(fs::File::create(&tmp)?);
    let too_long = || io::Error::other("a path is too long for the hash file");
    let write_bytes = |out: &mut BufWriter<fs::File>, bytes: &[u8]| -> io::Result<()> {
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|len| *len <= MAX_PATH_LEN)
            .ok_or_else(too_long)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(bytes)
    };
    out.write_all(MAGIC)?;
    write_bytes(&mut out, game_root.as_os_str().as_bytes())?;
    let count = u32::try_from(files.len()).map_err(|_| io::Error::other("too many files for the hash file"))?;
    out.write_all(&count.to_le_bytes())?;
    for (path, file) in files {
        write_bytes(&mut out, path.as_bytes())?;
        out.write_all(&file.len.to_le_bytes())?;
        out.write_all(&file.mtime_ns.to_le_bytes())?;
        out.write_all(file.root.as_bytes())?;
    }
    for file in files.values() {
        for block in &file.hashes.blocks {
            out.write_all(block.as_bytes())?;
        }
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    fs::rename(tmp, path)
}

/// Deletes game `id`'s side file, if any.
pub(super) fn remove(state_dir: &Path, id: &str) {
    let path = side_file(state_dir, id);
    if let Err(err) = fs::remove_file(&path)
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {err}", path.display());
    }
}

/// Every file of game `id`'s side file; empty when there is none.
pub(super) fn read_all(state_dir: &Path, game_root: &Path, id: &str) -> io::Result<BTreeMap<String, StoredFile>> {
    let Some((mut reader, header)) = open(state_dir, game_root, id)? else {
        return Ok(BTreeMap::new());
    };
    let mut files = BTreeMap::new();
    for entry in header {
        let hashes = read_blocks(&mut reader, &entry)?;
        files.insert(entry.path, StoredFile { hashes, ..entry.file });
    }
    Ok(files)
}

/// One file of game `id`'s side file, reading only the header and that file's blocks.
pub(super) fn read_one(state_dir: &Path, game_root: &Path, id: &str, path: &str) -> io::Result<Option<StoredFile>> {
    let Some((mut reader, header)) = open(state_dir, game_root, id)? else {
        return Ok(None);
    };
    let mut skip = 0;
    for entry in header {
        if entry.path == path {
            reader.seek_relative(i64::try_from(skip).map_err(|_| corrupt("offset"))?)?;
            let hashes = read_blocks(&mut reader, &entry)?;
            return Ok(Some(StoredFile { hashes, ..entry.file }));
        }
        skip += entry.block_count * 32;
    }
    Ok(None)
}

/// The length and modification time of a file version, as recorded beside its hashes.
pub(super) fn stamp_of(meta: &fs::Metadata) -> (u64, u128) {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    (meta.len(), mtime_ns)
}

/// One game's recorded block hashes, loaded whole: what a server keeps in memory while it
/// answers `GetBlockHashes` (one read of the side file, not one per request).
#[derive(Debug, Default)]
pub struct RecordedGame {
    files: BTreeMap<String, StoredFile>,
}

impl RecordedGame {
    /// Loads game `id`'s side file (empty when there is none). Blocks.
    pub fn load(state_dir: &Path, game_dir: &Path, id: &str) -> io::Result<Self> {
        Ok(RecordedGame {
            files: read_all(state_dir, &game_dir.join(id), id)?,
        })
    }

    /// The blocks of `path` if they were recorded for content `root` and for the file version
    /// whose metadata is `meta` (normally an fstat of the handle about to be read): a file
    /// changed since it was hashed gets `None`, never stale hashes.
    pub fn blocks(&self, path: &str, root: &ContentHash, meta: &fs::Metadata) -> Option<&FileHashes> {
        let stored = self.files.get(path)?;
        let (len, mtime_ns) = stamp_of(meta);
        (stored.root == *root && stored.len == len && stored.mtime_ns == mtime_ns).then_some(&stored.hashes)
    }
}

/// Records the block hashes a download verified for the files it wrote into `game_root`,
/// stamped with their metadata now, so the scan after the download finds them and reads
/// nothing again. Paths that are not regular files of the verified length now are left out. Blocks.
pub fn record_verified(
    state_dir: &Path,
    game_root: &Path,
    id: &str,
    files: impl IntoIterator<Item = (String, u64, FileHashes)>,
) -> io::Result<()> {
    let mut records = BTreeMap::new();
    for (path, verified_len, hashes) in files {
        let Ok(meta) = fs::symlink_metadata(game_root.join(&path)) else {
            continue;
        };
        let (len, mtime_ns) = stamp_of(&meta);
        if !meta.is_file() || len != verified_len {
            continue;
        }
        let root = hashes.root(len);
        records.insert(
            path,
            StoredFile {
                len,
                mtime_ns,
                root,
                hashes,
            },
        );
    }
    write(state_dir, game_root, id, &records)
}

struct HeaderEntry {
    path: String,
    /// With empty `hashes`, filled by [`read_blocks`].
    file: StoredFile,
    block_count: u64,
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt hash file: bad {what}"))
}

/// Opens and checks the side file and reads its header; the reader is left at the blocks.
/// `None` when there is no side file.
fn open(state_dir: &Path, game_root: &Path, id: &str) -> io::Result<Option<(BufReader<fs::File>, Vec<HeaderEntry>)>> {
    let file = match fs::File::open(side_file(state_dir, id)) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let total_len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut magic = [0; 8];
    reader.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(corrupt("magic or version"));
    }
    if read_bytes(&mut reader)? != game_root.as_os_str().as_bytes() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "hash file of another game dir",
        ));
    }
    let count = u64::from(u32::from_le_bytes(read_array(&mut reader)?));
    if count * MIN_ENTRY_LEN > total_len {
        return Err(corrupt("file count"));
    }
    let mut header = Vec::new();
    let mut blocks_len = 0u64;
    for _ in 0..count {
        let path = String::from_utf8(read_bytes(&mut reader)?).map_err(|_| corrupt("path"))?;
        let len = u64::from_le_bytes(read_array(&mut reader)?);
        let mtime_ns = u128::from_le_bytes(read_array(&mut reader)?);
        let root = ContentHash(read_array(&mut reader)?);
        let block_count = FileHashes::block_count(len);
        blocks_len = block_count
            .checked_mul(32)
            .and_then(|len| blocks_len.checked_add(len))
            .ok_or_else(|| corrupt("length"))?;
        header.push(HeaderEntry {
            path,
            file: StoredFile {
                len,
                mtime_ns,
                root,
                hashes: FileHashes::default(),
            },
            block_count,
        });
    }
    if reader.stream_position()?.checked_add(blocks_len) != Some(total_len) {
        return Err(corrupt("length"));
    }
    Ok(Some((reader, header)))
}

fn read_blocks(reader: &mut impl Read, entry: &HeaderEntry) -> io::Result<FileHashes> {
    // The header's total was checked against the file's length, so this is bounded by it.
    let blocks = (0..entry.block_count)
        .map(|_| read_array(reader).map(ContentHash))
        .collect::<io::Result<Vec<_>>>()?;
    let hashes = FileHashes { blocks };
    if hashes.root(entry.file.len) != entry.file.root {
        return Err(corrupt(&format!("blocks for {:?}", entry.path)));
    }
    Ok(hashes)
}

fn read_array<const N: usize>(reader: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_bytes(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = u32::from_le_bytes(read_array(reader)?);
    if len > MAX_PATH_LEN {
        return Err(corrupt("path length"));
    }
    let mut bytes = vec![0; len as usize];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(len: u64, seed: u8) -> StoredFile {
        let hashes = FileHashes {
            blocks: (0..FileHashes::block_count(len))
                .map(|i| ContentHash::of(&[seed, i as u8]))
                .collect(),
        };
        StoredFile {
            len,
            mtime_ns: 1_700_000_000_123_456_789,
            root: hashes.root(len),
            hashes,
        }
    }

    #[test]
    fn side_files_round_trip_and_refuse_damage() {
        let state = tempfile::tempdir().unwrap();
        let root = Path::new("/games/openarena");
        let block = crate::content::BLOCK_SIZE;
        let files = BTreeMap::from([
            ("a.zip".to_owned(), stored(3 * block + 1, 1)),
            ("empty".to_owned(), stored(0, 2)),
            ("maps/b.pk3".to_owned(), stored(block, 3)),
        ]);
        write(state.path(), root, "openarena", &files).unwrap();
        assert_eq!(read_all(state.path(), root, "openarena").unwrap(), files);
        for (path, file) in &files {
            assert_eq!(
                read_one(state.path(), root, "openarena", path).unwrap().as_ref(),
                Some(file)
            );
        }
        assert_eq!(read_one(state.path(), root, "openarena", "missing").unwrap(), None);
        assert!(read_all(state.path(), Path::new("/other/openarena"), "openarena").is_err());
        assert!(read_all(state.path(), root, "xonotic").unwrap().is_empty());

        let path = side_file(state.path(), "openarena");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(
            read_one(state.path(), root, "openarena", "maps/b.pk3").is_err(),
            "a flipped block"
        );
        fs::write(&path, &bytes[..last]).unwrap();
        assert!(
            read_one(state.path(), root, "openarena", "a.zip").is_err(),
            "a torn file"
        );
        remove(state.path(), "openarena");
        assert!(!path.exists());
    }
}
