//! One unit of a download's work, fetched from one peer: a run of blocks of one file
//! (`GetGameFileChunk`), or a batch of whole small files (`GetGameFiles`). Either way
//! every block is hashed off the async threads and written only if it matches what the
//! validated list says; once the unit's data is durable its blocks are journaled, so a
//! crash never marks an unwritten block done.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::error::TransferError;
use super::expected::Expected;
use super::journal::{DoneBlock, Journal};
use super::storage::{self, DownloadStorage};
use super::{CHUNK_SIZE, VERSION_FILE};
use crate::content::{BLOCK_SIZE, ContentHash, FileHashes};
use crate::durable::sync_filesystem_of;
use crate::peer::client::PeerClient;
use crate::proto::{GameFileDescription, MAX_BATCH_FILES};

/// A chunk stream that delivers nothing for this long is given up (the peer may be gone).
/// For a batch of small files, each whole file must arrive within it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Path bytes one batch of small files may name: well inside the request limit
/// (`proto::MAX_REQUEST_LEN`) even if JSON escaped every byte.
const BATCH_PATH_BYTES: usize = 8 << 10;

/// What one fetch brings: a run of blocks of one file, or whole files of one block each.
#[derive(Clone)]
pub enum Chunk {
    Blocks(BlockRun),
    /// Files of one block each, in list order, fetched with one request and one sync: a
    /// game of 100,000 small files would otherwise cost a request and an fsync per file.
    Files(Arc<[SmallFile]>),
}

#[derive(Clone)]
pub struct BlockRun {
    /// Index into the plan's file list.
    pub file: usize,
    pub first_block: u64,
    pub path: Arc<str>,
    /// Where `path` is on disk, for error messages.
    pub disk_path: Arc<Path>,
    pub offset: u64,
    pub len: u64,
}

#[derive(Clone)]
pub struct SmallFile {
    /// Index into the plan's file list.
    pub file: usize,
    pub path: Arc<str>,
    pub disk_path: Arc<Path>,
    pub size: u64,
}

impl Chunk {
    /// The payload bytes it brings.
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Blocks(run) => run.len,
            Chunk::Files(files) => files.iter().map(|file| file.size).sum(),
        }
    }
}

/// Cuts what is still missing into chunks: files of one block go into batches of at most
/// `MAX_BATCH_FILES` files and `CHUNK_SIZE` bytes; longer files into runs of consecutive
/// missing blocks of at most `CHUNK_SIZE`.
pub fn split_into_chunks(
    files: &[GameFileDescription],
    have: &[Vec<Option<ContentHash>>],
    storage: &DownloadStorage,
) -> Result<Vec<Chunk>, TransferError> {
    let blocks_per_chunk = CHUNK_SIZE / BLOCK_SIZE;
    let mut chunks = Vec::new();
    let mut batch: Vec<SmallFile> = Vec::new();
    let mut batch_path_bytes = 0;
    for (index, file) in files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_dir && f.path != VERSION_FILE)
    {
        let disk_path: Arc<Path> = storage
            .payload_path(&file.path)
            .ok_or_else(|| TransferError::Internal(format!("{} was not prepared", file.path)))?
            .into();
        let path: Arc<str> = file.path.as_str().into();
        let block_count = FileHashes::block_count(file.size);
        let missing = |block: u64| have[index].get(block as usize).is_none_or(Option::is_none);
        if block_count == 1 {
            if !missing(0) {
                continue;
            }
            let full = batch.len() == MAX_BATCH_FILES
                || batch.iter().map(|f| f.size).sum::<u64>() + file.size > CHUNK_SIZE
                || batch_path_bytes + path.len() > BATCH_PATH_BYTES;
            if full && !batch.is_empty() {
                chunks.push(Chunk::Files(std::mem::take(&mut batch).into()));
                batch_path_bytes = 0;
            }
            batch_path_bytes += path.len();
            batch.push(SmallFile {
                file: index,
                path,
                disk_path,
                size: file.size,
            });
            continue;
        }
        let mut block = 0;
        while block < block_count {
            if !missing(block) {
                block += 1;
                continue;
            }
            let first = block;
            while block < block_count && block - first < blocks_per_chunk && missing(block) {
                block += 1;
            }
            let offset = first * BLOCK_SIZE;
            chunks.push(Chunk::Blocks(BlockRun {
                file: index,
                first_block: first,
                path: path.clone(),
                disk_path: disk_path.clone(),
                offset,
                len: (block * BLOCK_SIZE).min(file.size) - offset,
            }));
        }
    }
    if !batch.is_empty() {
        chunks.push(Chunk::Files(batch.into()));
    }
    Ok(interleave_files(chunks))
}

/// Orders chunks so that neighbours belong to different files where it can: the chunks in
/// flight at once then write to different files, and writes to one file serialize on its
/// inode lock.
fn interleave_files(chunks: Vec<Chunk>) -> Vec<Chunk> {
    let mut by_file: Vec<std::collections::VecDeque<Chunk>> = Vec::new();
    let mut last_file = None;
    for chunk in chunks {
        let file = match &chunk {
            Chunk::Blocks(run) => Some(run.file),
            Chunk::Files(_) => None,
        };
        if file.is_none() || file != last_file || by_file.is_empty() {
            by_file.push(std::collections::VecDeque::new());
        }
        last_file = file;
        if let Some(group) = by_file.last_mut() {
            group.push_back(chunk);
        }
    }
    let mut ordered = Vec::new();
    while !by_file.is_empty() {
        for group in &mut by_file {
            if let Some(chunk) = group.pop_front() {
                ordered.push(chunk);
            }
        }
        by_file.retain(|group| !group.is_empty());
    }
    ordered
}

/// Fetches one chunk from `addr`; returns its verified, durable and journaled blocks.
/// Bytes are counted in `received` as they arrive.
pub async fn fetch(
    client: &PeerClient,
    addr: SocketAddr,
    id: &str,
    chunk: &Chunk,
    expected: &Arc<Vec<Option<Expected>>>,
    received: &AtomicU64,
    journal: &Arc<Journal>,
) -> Result<Vec<DoneBlock>, TransferError> {
    match chunk {
        Chunk::Blocks(run) => fetch_blocks(client, addr, id, run, expected, received, journal).await,
        Chunk::Files(files) => fetch_files(client, addr, id, files, expected, received, journal).await,
    }
}

/// Fetches a run of blocks of one file, block by block. A block that does not match fails
/// the chunk with `Corrupt` before anything of it is written.
async fn fetch_blocks(
    client: &PeerClient,
    addr: SocketAddr,
    id: &str,
    run: &BlockRun,
    expected: &Arc<Vec<Option<Expected>>>,
    received: &AtomicU64,
    journal: &Arc<Journal>,
) -> Result<Vec<DoneBlock>, TransferError> {
    let wanted = expected_file(expected, run.file)?;
    let mut reader = within_stall(addr, client.open_file_chunk(addr, id, &run.path, run.offset, run.len))
        .await?
        .map_err(peer_error)?;
    // Open only while this chunk is written (see `storage`).
    let disk_path = run.disk_path.clone();
    let file = blocking(move || storage::open_payload(&disk_path), "open")
        .await?
        .map_err(|err| TransferError::local(&run.disk_path, err))?;
    let file = Arc::new(file);
    let mut block = run.first_block;
    let mut block_len = wanted.block_len(block);
    let mut batch = Vec::with_capacity(usize::try_from(block_len).unwrap_or(0));
    let mut done = Vec::new();
    let mut position = run.offset;
    let end = run.offset + run.len;
    while position < end {
        let room = usize::try_from(block_len).unwrap_or(usize::MAX) - batch.len();
        let piece = within_stall(addr, reader.next_piece(room))
            .await?
            .map_err(peer_error)?
            .ok_or_else(|| TransferError::Peer(format!("{addr} ended {} short", run.path)))?;
        received.fetch_add(piece.len() as u64, Ordering::Relaxed);
        batch.extend_from_slice(&piece);
        if batch.len() as u64 == block_len {
            let (returned, hash) = verify_and_write(
                addr,
                file.clone(),
                &run.path,
                &run.disk_path,
                &wanted,
                block,
                batch,
                position,
            )
            .await?;
            batch = returned;
            batch.clear();
            done.push(done_block(run.file, block, hash)?);
            position += block_len;
            block += 1;
            block_len = wanted.block_len(block);
        }
    }
    // The stream must end here: a peer sending more than it announced is caught by the reader.
    within_stall(addr, reader.next_piece(1)).await?.map_err(peer_error)?;
    // Flushed now, while other chunks still transfer, so the commit is not one long sync at
    // the end (measured: the final sync alone cost ~10% of a rate-capped download).
    make_durable_then_journal(move || file.sync_data(), journal, done, &run.disk_path).await
}

/// Fetches a batch of whole small files with one request; each file is checked against its
/// root and written, then one `syncfs` makes the whole batch durable.
async fn fetch_files(
    client: &PeerClient,
    addr: SocketAddr,
    id: &str,
    files: &[SmallFile],
    expected: &Arc<Vec<Option<Expected>>>,
    received: &AtomicU64,
    journal: &Arc<Journal>,
) -> Result<Vec<DoneBlock>, TransferError> {
    let Some(last) = files.last() else {
        return Ok(Vec::new());
    };
    let paths: Vec<&str> = files.iter().map(|file| &*file.path).collect();
    let mut reader = within_stall(addr, client.open_files(addr, id, &paths))
        .await?
        .map_err(peer_error)?;
    let mut done = Vec::with_capacity(files.len());
    // One open file per file system written to (a sub-folder may be a mount point).
    let mut file_systems: Vec<(u64, File)> = Vec::new();
    for small in files {
        let wanted = expected_file(expected, small.file)?;
        let bytes = within_stall(addr, reader.next_file(small.size))
            .await?
            .map_err(peer_error)?;
        received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let (disk_path, corrupt) = (small.disk_path.clone(), corrupt(addr, &small.path));
        // One hop per file: check, open, write.
        let (hash, device, file) = blocking(
            move || {
                let hash = match checked(&bytes, &wanted, 0, corrupt) {
                    Ok(hash) => hash,
                    Err(corrupt) => return Ok(Err(corrupt)),
                };
                let file = storage::open_payload(&disk_path)?;
                storage::write_at(&file, &bytes, 0)?;
                let device = file.metadata()?.dev();
                Ok::<_, std::io::Error>(Ok((hash, device, file)))
            },
            "write",
        )
        .await?
        .map_err(|err| TransferError::local(&small.disk_path, err))??;
        done.push(done_block(small.file, 0, hash)?);
        if !file_systems.iter().any(|(known, _)| *known == device) {
            file_systems.push((device, file));
        }
    }
    // One sync per file system for the whole batch: an fdatasync per file costs a journal
    // commit each, which is most of the time of a game of many small files.
    let sync = move || file_systems.iter().try_for_each(|(_, file)| sync_filesystem_of(file));
    make_durable_then_journal(sync, journal, done, &last.disk_path).await
}

/// Hashes `bytes` (block `block` of a file) on a blocking thread and writes them at
/// `position` only if they are what `wanted` says; returns the buffer for reuse, and the hash.
#[allow(clippy::too_many_arguments)]
async fn verify_and_write(
    addr: SocketAddr,
    file: Arc<File>,
    path: &str,
    disk_path: &Path,
    wanted: &Expected,
    block: u64,
    bytes: Vec<u8>,
    position: u64,
) -> Result<(Vec<u8>, ContentHash), TransferError> {
    let (wanted, corrupt) = (wanted.clone(), corrupt(addr, path));
    blocking(
        move || match checked(&bytes, &wanted, block, corrupt) {
            Ok(hash) => storage::write_at(&file, &bytes, position).map(|()| Ok((bytes, hash))),
            Err(corrupt) => Ok(Err(corrupt)),
        },
        "write",
    )
    .await?
    .map_err(|err| TransferError::local(disk_path, err))?
}

/// The hash of `bytes` if they are block `block` of what `wanted` describes; else `corrupt`.
fn checked(bytes: &[u8], wanted: &Expected, block: u64, corrupt: TransferError) -> Result<ContentHash, TransferError> {
    let hash = ContentHash::of(bytes);
    if wanted.matches(block, &hash) {
        Ok(hash)
    } else {
        Err(corrupt)
    }
}

fn corrupt(peer: SocketAddr, path: &str) -> TransferError {
    TransferError::Corrupt {
        peer,
        path: path.to_owned(),
    }
}

/// Runs `sync` (which makes the chunk's data durable), then journals its blocks: in this
/// order, so a crash never marks an unwritten block done.
async fn make_durable_then_journal(
    sync: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    journal: &Arc<Journal>,
    done: Vec<DoneBlock>,
    disk_path: &Path,
) -> Result<Vec<DoneBlock>, TransferError> {
    let journal = journal.clone();
    blocking(
        move || {
            sync()?;
            if let Err(err) = journal.record(&done) {
                tracing::warn!("cannot journal a finished chunk (a resume fetches it again): {err}");
            }
            Ok(done)
        },
        "sync",
    )
    .await?
    .map_err(|err| TransferError::local(disk_path, err))
}

fn expected_file(expected: &[Option<Expected>], file: usize) -> Result<Expected, TransferError> {
    match expected.get(file) {
        Some(Some(wanted)) => Ok(wanted.clone()),
        _ => Err(TransferError::Internal("a chunk of no file".into())),
    }
}

fn done_block(file: usize, block: u64, hash: ContentHash) -> Result<DoneBlock, TransferError> {
    let too_big = || TransferError::Internal("a file or block index over the journal's range".into());
    Ok(DoneBlock {
        file: u32::try_from(file).map_err(|_| too_big())?,
        block: u32::try_from(block).map_err(|_| too_big())?,
        hash,
    })
}

async fn within_stall<T>(addr: SocketAddr, work: impl Future<Output = T>) -> Result<T, TransferError> {
    tokio::time::timeout(STALL_TIMEOUT, work)
        .await
        .map_err(|_| TransferError::Stalled {
            peer: addr,
            waited: STALL_TIMEOUT,
        })
}

fn peer_error(err: crate::peer::client::ClientError) -> TransferError {
    TransferError::Peer(err.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    what: &str,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| TransferError::Internal(format!("the {what} task failed: {err}")))
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

    fn chunks_of(files: &[GameFileDescription], have: impl Fn(usize, u64) -> bool) -> Vec<Chunk> {
        let games = tempfile::tempdir().unwrap();
        let storage = DownloadStorage::begin(games.path(), "game", files, &[]).unwrap();
        let have: Vec<Vec<Option<ContentHash>>> = files
            .iter()
            .enumerate()
            .map(|(index, f)| {
                (0..FileHashes::block_count(f.size))
                    .map(|block| have(index, block).then(|| ContentHash::of(b"x")))
                    .collect()
            })
            .collect();
        split_into_chunks(files, &have, &storage).unwrap()
    }

    fn batch_sizes(chunks: &[Chunk]) -> Vec<usize> {
        chunks
            .iter()
            .filter_map(|chunk| match chunk {
                Chunk::Files(files) => Some(files.len()),
                Chunk::Blocks(_) => None,
            })
            .collect()
    }

    #[test]
    fn neighbouring_chunks_belong_to_different_files_where_they_can() {
        let files = [
            file("a.pak", 3 * CHUNK_SIZE),
            file("b.pak", CHUNK_SIZE),
            file("c.pak", 2 * CHUNK_SIZE),
        ];
        let chunks = chunks_of(&files, |_, _| false);
        let order: Vec<(usize, u64)> = chunks
            .iter()
            .map(|chunk| match chunk {
                Chunk::Blocks(run) => (run.file, run.first_block),
                Chunk::Files(_) => panic!("no small files here"),
            })
            .collect();
        let blocks = CHUNK_SIZE / BLOCK_SIZE;
        assert_eq!(
            order,
            [(0, 0), (1, 0), (2, 0), (0, blocks), (2, blocks), (0, 2 * blocks)]
        );
    }

    #[test]
    fn small_files_go_in_batches_of_at_most_the_request_limit() {
        let mut files: Vec<_> = (0..300).map(|i| file(&format!("f{i:03}"), 10)).collect();
        files.push(file(VERSION_FILE, 1));
        let chunks = chunks_of(&files, |_, _| false);
        assert_eq!(
            batch_sizes(&chunks),
            [MAX_BATCH_FILES, MAX_BATCH_FILES, 300 - 2 * MAX_BATCH_FILES]
        );
        assert_eq!(
            chunks.iter().map(Chunk::len).sum::<u64>(),
            3000,
            "version.ini comes last, not here"
        );
    }

    #[test]
    fn a_batch_holds_at_most_a_chunk_of_bytes_and_a_bounded_path_length() {
        // Exactly one block each: eight fill a chunk.
        let files: Vec<_> = (0..20).map(|i| file(&format!("m{i:02}"), BLOCK_SIZE)).collect();
        assert_eq!(batch_sizes(&chunks_of(&files, |_, _| false)), [8, 8, 4]);

        let long = "d/".repeat(500);
        let files: Vec<_> = (0..20).map(|i| file(&format!("{long}f{i:02}"), 1)).collect();
        let chunks = chunks_of(&files, |_, _| false);
        for chunk in &chunks {
            let Chunk::Files(batch) = chunk else {
                panic!("only small files")
            };
            assert!(batch.iter().map(|f| f.path.len()).sum::<usize>() <= BATCH_PATH_BYTES);
        }
        assert_eq!(batch_sizes(&chunks).iter().sum::<usize>(), 20);
    }

    #[test]
    fn longer_files_go_in_runs_of_missing_blocks_and_what_is_had_is_skipped() {
        let files = [
            file("a.small", 5),
            file("big.pak", 20 * BLOCK_SIZE + 1),
            file("b.small", 6),
            file("empty", 0),
        ];
        // Of big.pak, blocks 3 and 4 are had; a.small is had.
        let chunks = chunks_of(&files, |file, block| {
            file == 0 || (file == 1 && (3..5).contains(&block))
        });
        let runs: Vec<(u64, u64)> = chunks
            .iter()
            .filter_map(|chunk| match chunk {
                Chunk::Blocks(run) => Some((run.first_block, run.len)),
                Chunk::Files(_) => None,
            })
            .collect();
        assert_eq!(
            runs,
            [(0, 3 * BLOCK_SIZE), (5, 8 * BLOCK_SIZE), (13, 7 * BLOCK_SIZE + 1)]
        );
        let batches: Vec<&Arc<[SmallFile]>> = chunks
            .iter()
            .filter_map(|chunk| match chunk {
                Chunk::Files(batch) => Some(batch),
                Chunk::Blocks(_) => None,
            })
            .collect();
        let [batch] = batches[..] else {
            panic!("one batch, not {}", batches.len())
        };
        assert_eq!(batch.iter().map(|f| &*f.path).collect::<Vec<_>>(), ["b.small"]);
    }
}
