//! The swarm: a peer downloading a game serves the blocks it has verified to
//! every peer downloading the same file list, so thirty downloaders do not all
//! pull from the one seed.
//!
//! Peers name a download by the digest of its validated file list
//! ([`list_digest`]); the list cuts the payload into numbered blocks
//! ([`BlockLayout`]: the payload files in list order, `version.ini` aside, each
//! cut into `BLOCK_SIZE` blocks). A downloader asks any peer which of those
//! blocks it holds (`GetAvailability`: a bitmap, then only what was added) and
//! offers a source the blocks it wants, rarest first; the source picks those it
//! has sent least (`GetBlocks`), so a seed sends each block about once before
//! any twice, and the downloaders pass the rest among themselves. A partial
//! peer serves only blocks it has verified and written ([`ServingDownload::add`]
//! is called right after the write, before the flush: durability is for the
//! resume journal, and a block served from the page cache is the same block;
//! an unfinished download that is not running serves what its journal holds),
//! and a downloader checks every block against the majority's hashes whoever
//! sent it, so a partial peer can neither poison anyone nor count towards the
//! majority.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::content::{BLOCK_SIZE, ContentHash, FileHashes};
use crate::layout::VERSION_FILE;
use crate::proto::GameFileDescription;

/// The digest that names a file list in the swarm: two peers downloading lists with the
/// same digest cut the payload into the same blocks with the same content.
pub fn list_digest(files: &[GameFileDescription]) -> ContentHash {
    let mut hasher = blake3::Hasher::new_derive_key("lanspread 2026 swarm file list v1");
    hasher.update(&(files.len() as u64).to_le_bytes());
    for file in files {
        hasher.update(&(file.path.len() as u64).to_le_bytes());
        hasher.update(file.path.as_bytes());
        hasher.update(&file.size.to_le_bytes());
        hasher.update(&[u8::from(file.is_dir)]);
        match &file.hash {
            Some(hash) => hasher.update(&[1]).update(hash.as_bytes()),
            None => hasher.update(&[0]),
        };
    }
    ContentHash(*hasher.finalize().as_bytes())
}

/// One payload file's place in the block numbering.
#[derive(Debug, Clone)]
pub struct LayoutFile {
    /// Index into the file list.
    pub file: usize,
    pub path: Arc<str>,
    pub size: u64,
    /// Global index of its block 0.
    pub first: u32,
}

/// Where a global block is: its file, the block within it, its bytes.
#[derive(Debug, Clone, Copy)]
pub struct BlockAt<'a> {
    pub file: &'a LayoutFile,
    pub block: u64,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the file list has more than {} blocks of {BLOCK_SIZE} bytes", u32::MAX)]
pub struct TooManyBlocks;

/// The payload of a file list cut into globally numbered blocks.
#[derive(Debug, Clone, Default)]
pub struct BlockLayout {
    /// Payload files with at least one block, in list order.
    files: Vec<LayoutFile>,
    /// Per list index, its position in `files`.
    by_list_index: Vec<Option<usize>>,
    total: u32,
}

impl BlockLayout {
    pub fn new(files: &[GameFileDescription]) -> Result<Self, TooManyBlocks> {
        let mut layout = BlockLayout {
            by_list_index: vec![None; files.len()],
            ..BlockLayout::default()
        };
        let mut next: u64 = 0;
        for (index, file) in files.iter().enumerate() {
            let blocks = FileHashes::block_count(file.size);
            if file.is_dir || file.path == VERSION_FILE || blocks == 0 {
                continue;
            }
            let first = u32::try_from(next).map_err(|_| TooManyBlocks)?;
            next += blocks;
            layout.by_list_index[index] = Some(layout.files.len());
            layout.files.push(LayoutFile {
                file: index,
                path: file.path.as_str().into(),
                size: file.size,
                first,
            });
        }
        layout.total = u32::try_from(next).map_err(|_| TooManyBlocks)?;
        Ok(layout)
    }

    /// How many blocks the payload has.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Where global block `global` is; `None` past the end.
    pub fn locate(&self, global: u32) -> Option<BlockAt<'_>> {
        if global >= self.total {
            return None;
        }
        let position = self.files.partition_point(|file| file.first <= global) - 1;
        let file = &self.files[position];
        let block = u64::from(global - file.first);
        let offset = block * BLOCK_SIZE;
        Some(BlockAt {
            file,
            block,
            offset,
            len: BLOCK_SIZE.min(file.size - offset),
        })
    }

    /// The global index of block `block` of list entry `file`.
    pub fn global(&self, file: usize, block: u64) -> Option<u32> {
        let entry = &self.files[(*self.by_list_index.get(file)?)?];
        let block = u32::try_from(block).ok()?;
        (u64::from(block) < FileHashes::block_count(entry.size)).then(|| entry.first + block)
    }

    /// The length of global block `global`.
    pub fn block_len(&self, global: u32) -> Option<u64> {
        self.locate(global).map(|at| at.len)
    }
}

/// One bit per block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitmap {
    bytes: Vec<u8>,
    len: u32,
}

impl Bitmap {
    pub fn empty(len: u32) -> Self {
        Bitmap {
            bytes: vec![0; (len as usize).div_ceil(8)],
            len,
        }
    }

    pub fn full(len: u32) -> Self {
        let mut bitmap = Bitmap::empty(len);
        for block in 0..len {
            bitmap.set(block);
        }
        bitmap
    }

    /// From its wire form; `None` if `bytes` is not `len` bits long or sets a bit past `len`.
    pub fn from_bytes(len: u32, bytes: Vec<u8>) -> Option<Self> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let spare = (8 - len % 8) % 8;
        if spare > 0 && bytes.last().is_some_and(|last| last >> (8 - spare) != 0) {
            return None;
        }
        Some(Bitmap { bytes, len })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn get(&self, block: u32) -> bool {
        block < self.len && self.bytes[(block / 8) as usize] & (1 << (block % 8)) != 0
    }

    /// Sets `block`; returns whether it was clear. Blocks past the end are ignored.
    pub fn set(&mut self, block: u32) -> bool {
        if block >= self.len {
            return false;
        }
        let (byte, bit) = ((block / 8) as usize, 1 << (block % 8));
        let was_clear = self.bytes[byte] & bit == 0;
        self.bytes[byte] |= bit;
        was_clear
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|block| self.get(*block))
    }
}

/// What a peer answers to `GetAvailability`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// A full peer: every block.
    Full,
    /// The blocks held now.
    Bitmap { generation: u64, bitmap: Bitmap },
    /// The blocks verified since the generation asked about.
    Added { generation: u64, blocks: Vec<u32> },
}

/// A download in progress on this peer, as the server sees it: which of its list's blocks
/// are verified and where the files are.
#[derive(Debug)]
pub struct ServingDownload {
    pub id: String,
    pub list: ContentHash,
    pub layout: Arc<BlockLayout>,
    /// The game dir the payload is in (files at `<game_dir>/<id>/<path>`).
    pub game_dir: PathBuf,
    have: Mutex<HaveLog>,
    /// The log's generation, for availability requests waiting for the next block.
    generation: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug)]
struct HaveLog {
    bitmap: Bitmap,
    /// Blocks in the order they were added; a generation is a length of this log.
    added: Vec<u32>,
    /// The bytes of the blocks in `bitmap`: the download's verified bytes.
    bytes: u64,
}

impl ServingDownload {
    pub fn new(id: &str, list: ContentHash, layout: Arc<BlockLayout>, game_dir: PathBuf) -> Self {
        let bitmap = Bitmap::empty(layout.total());
        ServingDownload {
            id: id.to_owned(),
            list,
            layout,
            game_dir,
            have: Mutex::new(HaveLog {
                bitmap,
                added: Vec::new(),
                bytes: 0,
            }),
            generation: tokio::sync::watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HaveLog> {
        // Every update leaves the log consistent; a panic cannot tear it.
        self.have.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks blocks as servable: call only once they are verified and written.
    pub fn add(&self, blocks: impl IntoIterator<Item = u32>) {
        let mut have = self.lock();
        for block in blocks {
            if have.bitmap.set(block) {
                have.added.push(block);
                have.bytes += self.layout.block_len(block).unwrap_or(0);
            }
        }
        self.generation.send_if_modified(|generation| {
            let grown = *generation != have.added.len() as u64;
            *generation = have.added.len() as u64;
            grown
        });
    }

    /// Returns once a block beyond generation `since` is added, or after `within`.
    pub async fn added_beyond(&self, since: u64, within: Duration) {
        let mut generation = self.generation.subscribe();
        let _ = tokio::time::timeout(within, generation.wait_for(|now| *now > since)).await;
    }

    /// The bytes of every block added so far, each counted once: the download's progress.
    pub fn verified_bytes(&self) -> u64 {
        self.lock().bytes
    }

    pub fn has(&self, block: u32) -> bool {
        self.lock().bitmap.get(block)
    }

    /// The answer to a downloader that last saw generation `since`: what was added since,
    /// or the whole bitmap when that is smaller (or `since` is 0 or unknown).
    pub fn availability(&self, since: u64) -> Availability {
        let have = self.lock();
        let generation = have.added.len() as u64;
        let added_since = usize::try_from(since)
            .ok()
            .filter(|since| *since > 0 && *since <= have.added.len())
            .map(|since| &have.added[since..]);
        match added_since {
            Some(added) if added.len() * 4 < have.bitmap.as_bytes().len() => Availability::Added {
                generation,
                blocks: added.to_vec(),
            },
            _ => Availability::Bitmap {
                generation,
                bitmap: have.bitmap.clone(),
            },
        }
    }
}

/// The downloads this peer serves from, by game id; shared by the actor (which registers
/// a download while it runs) and the server.
#[derive(Debug, Clone, Default)]
pub struct SwarmDownloads(Arc<Mutex<BTreeMap<String, Arc<ServingDownload>>>>);

impl SwarmDownloads {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<ServingDownload>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves `download` until the returned guard is dropped.
    pub fn register(&self, download: Arc<ServingDownload>) -> Registration {
        self.lock().insert(download.id.clone(), download.clone());
        Registration {
            downloads: self.clone(),
            download,
        }
    }

    /// The download of game `id` with list `list`, if one runs here.
    pub fn get(&self, id: &str, list: &ContentHash) -> Option<Arc<ServingDownload>> {
        self.lock().get(id).filter(|download| download.list == *list).cloned()
    }
}

/// Unregisters its download when dropped (the download ended, whatever its outcome).
#[derive(Debug)]
pub struct Registration {
    downloads: SwarmDownloads,
    download: Arc<ServingDownload>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut downloads = self.downloads.lock();
        if downloads
            .get(&self.download.id)
            .is_some_and(|current| Arc::ptr_eq(current, &self.download))
        {
            downloads.remove(&self.download.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> GameFileDescription {
        GameFileDescription {
            path: path.into(),
            size,
            is_dir: false,
            hash: None,
        }
    }

    #[test]
    fn the_layout_numbers_payload_blocks_in_list_order_without_version_ini_dirs_or_empty_files() {
        let mib = BLOCK_SIZE;
        let mut dir = file("maps", 0);
        dir.is_dir = true;
        let files = [
            file("a.zip", 2 * mib + 5),
            dir,
            file("empty", 0),
            file(VERSION_FILE, 17),
            file("maps/b", mib),
        ];
        let layout = BlockLayout::new(&files).unwrap();
        assert_eq!(layout.total(), 4);
        let at = layout.locate(2).unwrap();
        assert_eq!((&*at.file.path, at.block, at.offset, at.len), ("a.zip", 2, 2 * mib, 5));
        let at = layout.locate(3).unwrap();
        assert_eq!((&*at.file.path, at.block, at.len), ("maps/b", 0, mib));
        assert!(layout.locate(4).is_none());
        assert_eq!(layout.global(4, 0), Some(3));
        assert_eq!(layout.global(0, 3), None);
        assert_eq!(
            layout.global(3, 0),
            None,
            "version.ini is fetched last, outside the swarm"
        );
    }

    #[test]
    fn the_list_digest_covers_every_field() {
        let base = vec![file("a", 1), file("b", 2)];
        let digest = list_digest(&base);
        let mut renamed = base.clone();
        renamed[1].path = "c".into();
        let mut resized = base.clone();
        resized[1].size = 3;
        let mut rehashed = base.clone();
        rehashed[0].hash = Some(ContentHash::of(b"x"));
        for other in [renamed, resized, rehashed, base[..1].to_vec()] {
            assert_ne!(list_digest(&other), digest);
        }
        assert_eq!(list_digest(&base.clone()), digest);
    }

    #[test]
    fn bitmaps_refuse_a_wrong_length_or_bits_past_the_end() {
        assert!(Bitmap::from_bytes(9, vec![0xff]).is_none());
        assert!(Bitmap::from_bytes(9, vec![0xff, 0x02]).is_none());
        let bitmap = Bitmap::from_bytes(9, vec![0x81, 0x01]).unwrap();
        assert_eq!(bitmap.iter().collect::<Vec<_>>(), [0, 7, 8]);
        assert_eq!(Bitmap::full(9).iter().count(), 9);
    }

    #[tokio::test(start_paused = true)]
    async fn an_availability_ask_waits_for_the_next_block_at_most_its_wait() {
        let layout = Arc::new(BlockLayout::new(&[file("a", 100 * BLOCK_SIZE)]).unwrap());
        let download = Arc::new(ServingDownload::new("g", ContentHash::of(b"l"), layout, PathBuf::new()));
        download.add([1]);
        let asked_at = tokio::time::Instant::now();
        let waiting = tokio::spawn({
            let download = download.clone();
            async move {
                download.added_beyond(1, Duration::from_secs(30)).await;
                (tokio::time::Instant::now(), download.availability(1))
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "nothing was added beyond generation 1 yet");
        download.add([7]);
        let (answered_at, answer) = waiting.await.unwrap();
        assert_eq!(
            answered_at - asked_at,
            Duration::from_secs(5),
            "answered when block 7 came"
        );
        assert_eq!(
            answer,
            Availability::Added {
                generation: 2,
                blocks: vec![7]
            }
        );

        let asked_at = tokio::time::Instant::now();
        download.added_beyond(2, Duration::from_secs(1)).await;
        assert_eq!(
            tokio::time::Instant::now() - asked_at,
            Duration::from_secs(1),
            "with nothing new, its wait runs out"
        );
        download.added_beyond(1, Duration::from_secs(1)).await;
        assert_eq!(
            tokio::time::Instant::now() - asked_at,
            Duration::from_secs(1),
            "an asker behind is answered at once"
        );
    }

    #[test]
    fn availability_sends_what_was_added_since_or_the_bitmap_when_smaller() {
        let layout = Arc::new(BlockLayout::new(&[file("a", 100 * BLOCK_SIZE)]).unwrap());
        let download = ServingDownload::new("g", ContentHash::of(b"l"), layout, PathBuf::new());
        assert!(matches!(
            download.availability(0),
            Availability::Bitmap { generation: 0, .. }
        ));
        download.add([5, 6, 5]);
        let Availability::Bitmap { generation, bitmap } = download.availability(0) else {
            panic!("a first answer is a bitmap");
        };
        assert_eq!((generation, bitmap.iter().collect::<Vec<_>>()), (2, vec![5, 6]));
        download.add([9]);
        assert_eq!(
            download.availability(2),
            Availability::Added {
                generation: 3,
                blocks: vec![9]
            }
        );
        assert!(
            matches!(download.availability(99), Availability::Bitmap { generation: 3, .. }),
            "an unknown generation gets the whole bitmap"
        );
    }

    #[test]
    fn a_registration_serves_until_dropped_and_only_its_list() {
        let downloads = SwarmDownloads::default();
        let list = ContentHash::of(b"l");
        let layout = Arc::new(BlockLayout::default());
        let registration = downloads.register(Arc::new(ServingDownload::new("g", list, layout, PathBuf::new())));
        assert!(downloads.get("g", &list).is_some());
        assert!(downloads.get("g", &ContentHash::of(b"other")).is_none());
        drop(registration);
        assert!(downloads.get("g", &list).is_none());
    }
}
