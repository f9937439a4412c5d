//! What a download can take from the disk instead of the network: blocks of the game's
//! current payload whose hashes are known, from two records —
//!
//! - the library's recorded block hashes of the version on disk, for files whose stamp
//!   still matches (a changed file's record is not trusted);
//! - the resume journal of an earlier, unfinished download (see `journal`).
//!
//! A block of the new list whose hash is known at the same path and offset stays where it
//! is (`keep`). Otherwise a block with that hash elsewhere is copied (`copies`), but only
//! from a place this download will not write: a file the new list does not have (an archive
//! renamed between versions), or a block of a target file that is itself kept. A copy is
//! hashed again as it is read, so a source changed since it was recorded is caught and the
//! block fetched instead. A one-block file has no block list, only a root: it is matched by
//! root against whole one-block files on disk.
//!
//! Planning is pure (`plan_reuse`); gathering the records and copying block (run them on a
//! blocking thread).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::TransferError;
use super::expected::Expected;
use super::journal::{DoneBlock, Recorded};
use super::storage;
use crate::beneath::open_file_beneath;
use crate::content::{BLOCK_SIZE, ContentHash, FileHashes};
use crate::layout::{VERSION_FILE, validate_relative_path};
use crate::library::RecordedGame;
use crate::proto::GameFileDescription;

/// Known content of one file on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub len: u64,
    /// Per block, its hash where known.
    pub blocks: Vec<Option<ContentHash>>,
}

impl SourceFile {
    fn block_len(&self, block: u64) -> u64 {
        BLOCK_SIZE.min(self.len.saturating_sub(block * BLOCK_SIZE))
    }
}

/// One block to copy from elsewhere on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCopy {
    /// Index into the new file list.
    pub file: usize,
    pub block: u64,
    pub from: String,
    pub offset: u64,
    pub len: u64,
}

/// What [`plan_reuse`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReusePlan {
    /// Per file of the new list, per block: its hash if the block is already in place.
    pub keep: Vec<Vec<Option<ContentHash>>>,
    pub copies: Vec<BlockCopy>,
}

impl ReusePlan {
    /// The kept blocks as journal records.
    pub fn kept_records(&self) -> Vec<DoneBlock> {
        let mut records = Vec::new();
        for (index, keep) in self.keep.iter().enumerate() {
            for (block, hash) in keep.iter().enumerate() {
                if let (Some(hash), Ok(file), Ok(block)) = (hash, u32::try_from(index), u32::try_from(block)) {
                    records.push(DoneBlock {
                        file,
                        block,
                        hash: *hash,
                    });
                }
            }
        }
        records
    }

    pub fn kept_bytes(&self, expected: &[Option<Expected>]) -> u64 {
        let mut bytes = 0;
        for (keep, wanted) in self.keep.iter().zip(expected) {
            let Some(wanted) = wanted else { continue };
            for (block, hash) in keep.iter().enumerate() {
                if hash.is_some() {
                    bytes += wanted.block_len(block as u64);
                }
            }
        }
        bytes
    }
}

/// Decides, for each block of `files` (the new list) with `expected` content, whether it is
/// in place, can be copied from `sources` (path → known content), or must be fetched.
pub fn plan_reuse(
    files: &[GameFileDescription],
    expected: &[Option<Expected>],
    sources: &BTreeMap<String, SourceFile>,
) -> ReusePlan {
    let targets: BTreeSet<&str> = files.iter().filter(|f| !f.is_dir).map(|f| f.path.as_str()).collect();
    let mut keep: Vec<Vec<Option<ContentHash>>> = Vec::with_capacity(files.len());
    for (file, wanted) in files.iter().zip(expected) {
        let (Some(wanted), Some(source)) = (wanted, sources.get(&file.path)) else {
            keep.push(vec![None; wanted.as_ref().map_or(0, |w| w.block_count() as usize)]);
            continue;
        };
        let blocks = (0..wanted.block_count())
            .map(|block| {
                let hash = source.blocks.get(block as usize).copied().flatten()?;
                (source.block_len(block) == wanted.block_len(block) && wanted.matches(block, &hash)).then_some(hash)
            })
            .collect();
        keep.push(blocks);
    }

    // Where each known block can be read without being overwritten meanwhile.
    let mut by_hash: HashMap<ContentHash, (&str, u64, u64)> = HashMap::new();
    let mut by_root: HashMap<ContentHash, (&str, u64)> = HashMap::new();
    let kept_at: BTreeMap<&str, &Vec<Option<ContentHash>>> = files.iter().map(|f| f.path.as_str()).zip(&keep).collect();
    for (path, source) in sources {
        let stays = |block: usize| {
            !targets.contains(path.as_str())
                || kept_at
                    .get(path.as_str())
                    .is_some_and(|keep| keep.get(block).is_some_and(Option::is_some))
        };
        for (block, hash) in source.blocks.iter().enumerate() {
            if let Some(hash) = hash
                && stays(block)
            {
                let offset = block as u64 * BLOCK_SIZE;
                by_hash
                    .entry(*hash)
                    .or_insert((path, offset, source.block_len(block as u64)));
            }
        }
        if source.len > 0
            && source.len <= BLOCK_SIZE
            && let Some(Some(hash)) = source.blocks.first()
            && stays(0)
        {
            let root = FileHashes { blocks: vec![*hash] }.root(source.len);
            by_root.entry(root).or_insert((path, source.len));
        }
    }

    let mut copies = Vec::new();
    for (index, (file, wanted)) in files.iter().zip(expected).enumerate() {
        let Some(wanted) = wanted else { continue };
        if file.path == VERSION_FILE {
            continue;
        }
        for block in 0..wanted.block_count() {
            if keep[index][block as usize].is_some() {
                continue;
            }
            let found = match wanted.block_hash(block) {
                Some(hash) => by_hash.get(&hash).copied(),
                None => by_root.get(&wanted.root).map(|(path, len)| (*path, 0, *len)),
            };
            if let Some((from, offset, len)) = found
                && len == wanted.block_len(block)
            {
                copies.push(BlockCopy {
                    file: index,
                    block,
                    from: from.to_owned(),
                    offset,
                    len,
                });
            }
        }
    }
    ReusePlan { keep, copies }
}

/// The known content of the game's files on disk: the library's record of the version on
/// disk (`on_disk`, its scanned list) where the stamps still match, then the journal's
/// blocks on top (written later, so they win). Paths the record cannot vouch for are left
/// out. Blocks.
pub fn gather_sources(
    state_dir: &Path,
    game_dir: &Path,
    id: &str,
    on_disk: &[GameFileDescription],
    journal: Option<&Recorded>,
) -> BTreeMap<String, SourceFile> {
    let root = game_dir.join(id);
    let mut sources = BTreeMap::new();
    if !on_disk.is_empty() {
        match RecordedGame::load(state_dir, game_dir, id) {
            Ok(recorded) => {
                for file in on_disk.iter().filter(|f| !f.is_dir && f.path != VERSION_FILE) {
                    let (Some(root_hash), Ok(meta)) = (file.hash, std::fs::symlink_metadata(root.join(&file.path)))
                    else {
                        continue;
                    };
                    if let Some(blocks) = recorded.blocks(&file.path, &root_hash, &meta) {
                        sources.insert(
                            file.path.clone(),
                            SourceFile {
                                len: meta.len(),
                                blocks: blocks.blocks.iter().copied().map(Some).collect(),
                            },
                        );
                    }
                }
            }
            Err(err) => tracing::info!(game = id, "not reusing the version on disk: {err}"),
        }
    }
    if let Some(journal) = journal {
        for done in &journal.blocks {
            let Some(file) = journal.list.files.get(done.file as usize) else {
                continue;
            };
            if file.is_dir || validate_relative_path(&file.path).is_err() {
                continue;
            }
            // The journal's file must still be the size it was being written at.
            let Ok(meta) = std::fs::symlink_metadata(root.join(&file.path)) else {
                continue;
            };
            if !meta.is_file() || meta.len() != file.size {
                continue;
            }
            let source = sources.entry(file.path.clone()).or_insert_with(|| SourceFile {
                len: file.size,
                blocks: Vec::new(),
            });
            if source.len != file.size {
                // The library's record describes another length: the journal's write came later.
                *source = SourceFile {
                    len: file.size,
                    blocks: Vec::new(),
                };
            }
            let count = FileHashes::block_count(file.size) as usize;
            source.blocks.resize(count, None);
            if let Some(slot) = source.blocks.get_mut(done.block as usize) {
                *slot = Some(done.hash);
            }
        }
    }
    sources
}

/// Copies the planned blocks into the prepared payload under `root`, checking each one's
/// hash as it is read; returns the copies that held what they should (the rest are left
/// for the network), with the block hashes read. `copied` is told the bytes done so far,
/// and `cancelled` is asked between blocks. Each target file is flushed before its copies
/// are returned, so the caller may journal them. Blocks.
pub fn copy_blocks(
    root: &Path,
    files: &[GameFileDescription],
    expected: &[Option<Expected>],
    copies: &[BlockCopy],
    copied: &mut dyn FnMut(u64),
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<(usize, u64, ContentHash)>, TransferError> {
    let mut done = Vec::new();
    let mut sources: HashMap<&str, Option<File>> = HashMap::new();
    let mut targets: BTreeMap<usize, File> = BTreeMap::new();
    let mut buffer = Vec::new();
    let mut bytes = 0;
    for copy in copies {
        if cancelled() {
            return Err(TransferError::Cancelled);
        }
        let Some(Some(wanted)) = expected.get(copy.file) else {
            continue;
        };
        let source = sources.entry(copy.from.as_str()).or_insert_with(|| {
            open_file_beneath(root, &copy.from)
                .inspect_err(|err| tracing::info!("not reusing {}: {err}", copy.from))
                .ok()
                .map(|opened| opened.file)
        });
        let Some(source) = source else { continue };
        buffer.resize(copy.len as usize, 0);
        if let Err(err) = source.read_exact_at(&mut buffer, copy.offset) {
            tracing::info!("not reusing block {} of {}: {err}", copy.offset / BLOCK_SIZE, copy.from);
            continue;
        }
        let hash = ContentHash::of(&buffer);
        if !wanted.matches(copy.block, &hash) {
            tracing::info!(
                "not reusing {} at {}: it changed since it was recorded",
                copy.from,
                copy.offset
            );
            continue;
        }
        let path = &files[copy.file].path;
        let target = match targets.entry(copy.file) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let disk_path = root.join(path);
                entry.insert(storage::open_payload(&disk_path).map_err(|err| TransferError::local(&disk_path, err))?)
            }
        };
        storage::write_at(target, &buffer, copy.block * BLOCK_SIZE)
            .map_err(|err| TransferError::local(&root.join(path), err))?;
        done.push((copy.file, copy.block, hash));
        bytes += copy.len;
        copied(bytes);
    }
    for (file, target) in targets {
        target
            .sync_data()
            .map_err(|err| TransferError::local(&root.join(&files[file].path), err))?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u64 = BLOCK_SIZE;

    fn h(tag: u8) -> ContentHash {
        ContentHash::of(&[tag])
    }

    fn listed(path: &str, size: u64, blocks: &[u8]) -> (GameFileDescription, Option<Expected>) {
        let expected = Expected::of(
            size,
            FileHashes {
                blocks: blocks.iter().map(|tag| h(*tag)).collect(),
            },
        );
        let file = GameFileDescription {
            path: path.into(),
            size,
            is_dir: false,
            hash: Some(expected.root),
        };
        (file, Some(expected))
    }

    fn source(len: u64, blocks: &[Option<u8>]) -> SourceFile {
        SourceFile {
            len,
            blocks: blocks.iter().map(|tag| tag.map(h)).collect(),
        }
    }

    fn plan(new: &[(GameFileDescription, Option<Expected>)], sources: &[(&str, SourceFile)]) -> ReusePlan {
        let (files, expected): (Vec<_>, Vec<_>) = new.iter().cloned().unzip();
        let sources = sources.iter().map(|(p, s)| (p.to_string(), s.clone())).collect();
        plan_reuse(&files, &expected, &sources)
    }

    #[test]
    fn blocks_in_place_are_kept_and_the_rest_is_left_to_fetch() {
        // a.pak: block 1 changed; the journal knows block 0 and 2 only.
        let new = [listed("a.pak", 3 * B, &[1, 2, 3])];
        let reuse = plan(&new, &[("a.pak", source(3 * B, &[Some(1), Some(9), None]))]);
        assert_eq!(reuse.keep, [vec![Some(h(1)), None, None]]);
        assert!(reuse.copies.is_empty(), "no other place holds 2 or 3");
        assert_eq!(reuse.kept_bytes(&[new[0].1.clone()]), B);
        assert_eq!(
            reuse.kept_records(),
            [DoneBlock {
                file: 0,
                block: 0,
                hash: h(1)
            }]
        );
    }

    #[test]
    fn a_renamed_file_is_copied_but_never_from_a_place_being_rewritten() {
        let new = [
            listed("new-name.pak", 2 * B, &[5, 6]),
            // b.pak's block 0 stays; its block 1 is rewritten, so it is no source for anything.
            listed("b.pak", 2 * B, &[7, 8]),
            listed("c.pak", 2 * B, &[9, 7]),
        ];
        let sources = [
            ("old-name.pak", source(2 * B, &[Some(5), Some(6)])),
            ("b.pak", source(2 * B, &[Some(7), Some(9)])),
        ];
        let reuse = plan(&new, &sources);
        let copies: Vec<(usize, u64, &str, u64)> = reuse
            .copies
            .iter()
            .map(|c| (c.file, c.block, c.from.as_str(), c.offset))
            .collect();
        assert_eq!(
            copies,
            [
                (0, 0, "old-name.pak", 0),
                (0, 1, "old-name.pak", B),
                // c.pak's block 1 (7) is b.pak's kept block 0.
                (2, 1, "b.pak", 0),
            ],
            "c.pak's block 0 (9) sits in b.pak's block 1, which is rewritten: fetched"
        );
        assert_eq!(reuse.keep[1], [Some(h(7)), None]);
    }

    #[test]
    fn a_one_block_file_is_matched_by_root_and_a_short_last_block_by_length() {
        let small = listed("readme.txt", 100, &[4]);
        let reuse = plan(
            std::slice::from_ref(&small),
            &[("old/readme.txt", source(100, &[Some(4)]))],
        );
        assert_eq!(reuse.copies.len(), 1);
        assert_eq!(
            (reuse.copies[0].from.as_str(), reuse.copies[0].len),
            ("old/readme.txt", 100)
        );
        // The same block hash under another length is other content: the root differs.
        let reuse = plan(&[small], &[("old/readme.txt", source(99, &[Some(4)]))]);
        assert!(reuse.copies.is_empty());

        // A file grown by a block keeps its whole first blocks; its old short tail is no match.
        let grown = listed("a.pak", 2 * B + 10, &[1, 2, 3]);
        let reuse = plan(&[grown], &[("a.pak", source(B + 10, &[Some(1), Some(2)]))]);
        assert_eq!(reuse.keep, [vec![Some(h(1)), None, None]]);
    }
}
