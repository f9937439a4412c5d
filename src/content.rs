//! Content identity: BLAKE3 hashes of fixed-size blocks of a file, and a root hash of the
//! whole file computed from them.
//!
//! A file of length `len` is split into `ceil(len / BLOCK_SIZE)` blocks (the last may be
//! short; an empty file has none). Each block's hash is plain BLAKE3 of its bytes. The
//! file's root is BLAKE3 in derive-key mode (the domain tag [`ROOT_CONTEXT`], so a root can
//! never be mistaken for the hash of some block's bytes) over the length as u64 LE and the
//! block hashes in order. So the root changes with any byte, with the length and with the
//! block order, and whoever has verified every block gets the root without reading the
//! file again.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes per hashed block: 1 MiB.
///
/// The downloader checks and writes one block at a time, and the block divides its
/// 8 MiB chunk (`peer::download::CHUNK_SIZE`), so a chunk is whole blocks and a block is
/// verified just as it is written. A 500 GB game's block list is 500k x 32 B = 16 MB, and
/// damage is repaired 1 MiB at a time. Smaller blocks would grow the list (64 MB at 256 KiB)
/// for little gain; bigger ones would cost more per repaired flipped byte.
pub const BLOCK_SIZE: u64 = 1 << 20;

/// The domain tag of a file's root (BLAKE3 derive-key context); changing it changes every root.
const ROOT_CONTEXT: &str = "lanspread 2026-11 file root v1";

/// Bytes read per `read_at` by [`hash_file`]. Measured with `examples/hash_bench.rs` (1 GiB
/// in the page cache, 2-core AMD EPYC with AVX2, under load from other builds): 64 KiB to
/// 1 MiB pieces all ran at 1.3-1.6 GiB/s, within noise of each other and of
/// `b3sum --num-threads 1` (1.5-1.8 GiB/s; it maps the file instead of copying it); 4 MiB
/// varied (1.1-1.55) and 16 MiB was slower every time (~1.0), the piece no longer fitting
/// in cache. 1 MiB is one block per read and gives a cold disk long sequential reads.
const READ_PIECE: usize = 1 << 20;

/// A BLAKE3 hash: of a block's bytes, or a file's root. Serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses exactly 64 lowercase hex digits, so a hash has a single text form.
    pub fn from_hex(text: &str) -> Option<Self> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let nibble = |digit: u8| match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(ContentHash(bytes))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for ContentHash {
    /// The first 8 digits: enough to tell hashes apart in logs and test failures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash(")?;
        self.0[..4].iter().try_for_each(|byte| write!(f, "{byte:02x}"))?;
        write!(f, "…)")
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ContentHash::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected a hash of 64 lowercase hex digits"))
    }
}

/// The block hashes of one file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHashes {
    pub blocks: Vec<ContentHash>,
}

impl FileHashes {
    /// How many blocks a file of `len` bytes has.
    pub fn block_count(len: u64) -> u64 {
        len.div_ceil(BLOCK_SIZE)
    }

    /// The file's identity: see the module note. `len` is the file's length, which the
    /// blocks alone do not pin down (the last block may be short).
    pub fn root(&self, len: u64) -> ContentHash {
        let mut hasher = blake3::Hasher::new_derive_key(ROOT_CONTEXT);
        hasher.update(&len.to_le_bytes());
        for block in &self.blocks {
            hasher.update(block.as_bytes());
        }
        ContentHash(*hasher.finalize().as_bytes())
    }
}

/// The root of bytes held in memory (small files, tests).
pub fn root_of(bytes: &[u8]) -> ContentHash {
    let mut hasher = BlockHasher::new();
    hasher.update(bytes);
    hasher.finish().root(bytes.len() as u64)
}

/// Hashes a file's bytes fed in order, in pieces of any size; a block's hash is known as
/// soon as its last byte is fed ([`BlockHasher::blocks`]).
#[derive(Debug, Clone, Default)]
pub struct BlockHasher {
    current: blake3::Hasher,
    /// Bytes fed into `current`, below [`BLOCK_SIZE`].
    in_block: u64,
    blocks: Vec<ContentHash>,
}

impl BlockHasher {
    pub fn new() -> Self {
        BlockHasher::default()
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = usize::try_from(BLOCK_SIZE - self.in_block).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.current.update(now);
            self.in_block += now.len() as u64;
            bytes = rest;
            if self.in_block == BLOCK_SIZE {
                self.blocks.push(ContentHash(*self.current.finalize().as_bytes()));
                self.current.reset();
                self.in_block = 0;
            }
        }
    }

    /// The hashes of the blocks completed so far.
    pub fn blocks(&self) -> &[ContentHash] {
        &self.blocks
    }

    /// Completes the last, short block, if any bytes of it were fed.
    pub fn finish(mut self) -> FileHashes {
        if self.in_block > 0 {
            self.blocks.push(ContentHash(*self.current.finalize().as_bytes()));
        }
        FileHashes { blocks: self.blocks }
    }
}

/// Hashes the first `len` bytes of `file` (opened by the caller, normally with
/// [`crate::beneath::open_file_beneath`]). `progress` gets the bytes hashed so far after
/// each piece read; `cancelled` is asked between pieces, and a cancel fails with
/// [`io::ErrorKind::Interrupted`]. A file shorter than `len` fails with
/// [`io::ErrorKind::UnexpectedEof`] (it shrank since it was measured). Blocks.
pub fn hash_file(
    file: &File,
    len: u64,
    progress: &mut dyn FnMut(u64),
    cancelled: &dyn Fn() -> bool,
) -> io::Result<FileHashes> {
    let mut hasher = BlockHasher::new();
    let mut buffer = vec![0; READ_PIECE.min(usize::try_from(len).unwrap_or(usize::MAX))];
    let mut offset = 0;
    while offset < len {
        if cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "hashing cancelled"));
        }
        let want = usize::try_from(len - offset).unwrap_or(usize::MAX).min(buffer.len());
        let read = match file.read_at(&mut buffer[..want], offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ended at byte {offset} of {len} while being hashed"),
                ));
            }
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..read]);
        offset += read as u64;
        progress(offset);
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: u64) -> Vec<u8> {
        // Not a repeating pattern with a period dividing BLOCK_SIZE, so equal blocks are rare.
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    /// The definition, computed the slow obvious way.
    fn reference(data: &[u8]) -> FileHashes {
        FileHashes {
            blocks: data.chunks(BLOCK_SIZE as usize).map(ContentHash::of).collect(),
        }
    }

    fn one_shot(data: &[u8]) -> FileHashes {
        let mut hasher = BlockHasher::new();
        hasher.update(data);
        hasher.finish()
    }

    #[test]
    fn blocks_split_at_block_size_boundaries() {
        let b = BLOCK_SIZE;
        for (len, count) in [(0, 0), (1, 1), (b - 1, 1), (b, 1), (b + 1, 2), (3 * b + b / 2, 4)] {
            let data = bytes(len);
            let hashes = one_shot(&data);
            assert_eq!(hashes.blocks.len() as u64, count, "len {len}");
            assert_eq!(FileHashes::block_count(len), count, "len {len}");
            assert_eq!(hashes, reference(&data), "len {len}");
        }
        assert_eq!(
            one_shot(&bytes(b + 1)).blocks[1],
            ContentHash::of(&bytes(b + 1)[b as usize..])
        );
    }

    #[test]
    fn streaming_in_odd_pieces_equals_one_shot() {
        let data = bytes(3 * BLOCK_SIZE + BLOCK_SIZE / 2);
        let expected = one_shot(&data);
        for piece in [
            1usize,
            7,
            4093,
            65_537,
            BLOCK_SIZE as usize - 1,
            BLOCK_SIZE as usize + 3,
        ] {
            let mut hasher = BlockHasher::new();
            let mut done_blocks = 0;
            for part in data.chunks(piece) {
                hasher.update(part);
                assert!(hasher.blocks().len() >= done_blocks, "blocks are only ever added");
                done_blocks = hasher.blocks().len();
            }
            assert_eq!(done_blocks, 3, "three whole blocks are known before finish");
            assert_eq!(hasher.finish(), expected, "piece {piece}");
        }
    }

    #[test]
    fn hash_file_matches_the_stream_and_reports_progress() {
        let data = bytes(2 * BLOCK_SIZE + 5);
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, &data).unwrap();
        let mut seen = Vec::new();
        let hashes = hash_file(&file, data.len() as u64, &mut |done| seen.push(done), &|| false).unwrap();
        assert_eq!(hashes, one_shot(&data));
        assert_eq!(seen.last(), Some(&(data.len() as u64)));
        assert!(seen.windows(2).all(|pair| pair[0] < pair[1]));

        let err = hash_file(&file, data.len() as u64 + 1, &mut |_| {}, &|| false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "a file that shrank");
        let err = hash_file(&file, data.len() as u64, &mut |_| {}, &|| true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted, "a cancel");
        assert_eq!(
            hash_file(&file, 0, &mut |_| {}, &|| false).unwrap(),
            FileHashes::default()
        );
    }

    #[test]
    fn the_root_changes_with_any_byte_the_length_and_the_block_order() {
        let len = 3 * BLOCK_SIZE + 10;
        let data = bytes(len);
        let root = one_shot(&data).root(len);
        for position in [0, BLOCK_SIZE as usize - 1, BLOCK_SIZE as usize, len as usize - 1] {
            let mut flipped = data.clone();
            flipped[position] ^= 1;
            assert_ne!(one_shot(&flipped).root(len), root, "byte {position} flipped");
        }
        assert_ne!(one_shot(&data).root(len + 1), root, "the length is part of the root");
        let mut swapped = one_shot(&data);
        swapped.blocks.swap(0, 1);
        assert_ne!(swapped.root(len), root, "block order is part of the root");
        // A trailing zero byte changes the length, hence the root, though a block hash could not tell.
        let mut longer = data.clone();
        longer.push(0);
        assert_ne!(one_shot(&longer).root(len + 1), root);
        assert_ne!(
            FileHashes::default().root(0),
            ContentHash::of(&[]),
            "roots are domain-separated"
        );
    }

    #[test]
    fn hashes_serialize_as_lowercase_hex() {
        let hash = ContentHash::of(b"lanspread");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{}\"", blake3::hash(b"lanspread").to_hex()));
        assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<ContentHash>(&json.to_uppercase()).is_err());
        assert!(serde_json::from_str::<ContentHash>("\"00\"").is_err());
        assert_eq!(format!("{hash:?}").len(), "ContentHash(…)".len() + 8);
    }
}
