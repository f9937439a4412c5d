//! What every block of a download must hash to, and how a received block is checked.
//!
//! The validated file list gives each file's root (`content::FileHashes::root`). A file of
//! one block is checked against the root alone: the root is derived from its length and
//! that one block hash. A longer file's block list is fetched first (`GetBlockHashes`) from
//! any validated peer and accepted only if it gives the listed root, so every block can
//! then be checked on its own as it arrives, and a liar is caught before a byte is fetched.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::error::TransferError;
use crate::content::{BLOCK_SIZE, ContentHash, FileHashes};
use crate::peer::client::PeerClient;
use crate::proto::GameFileDescription;

/// Block lists fetched at once while a download starts.
const LISTS_IN_FLIGHT: usize = 8;

/// What one file of a download must hold.
#[derive(Debug, Clone)]
pub struct Expected {
    pub size: u64,
    pub root: ContentHash,
    /// The block hashes; `None` for a file of one block (checked against `root`).
    blocks: Option<Arc<FileHashes>>,
}

impl Expected {
    /// The expected content of a file of `size` bytes whose block hashes are known.
    pub fn of(size: u64, hashes: FileHashes) -> Self {
        Expected {
            size,
            root: hashes.root(size),
            blocks: (hashes.blocks.len() > 1).then(|| Arc::new(hashes)),
        }
    }

    /// The length of block `block` (the last one may be short).
    pub fn block_len(&self, block: u64) -> u64 {
        BLOCK_SIZE.min(self.size.saturating_sub(block * BLOCK_SIZE))
    }

    pub fn block_count(&self) -> u64 {
        FileHashes::block_count(self.size)
    }

    /// The hash block `block` must have, when the file's block list is known (longer files).
    pub fn block_hash(&self, block: u64) -> Option<ContentHash> {
        let list = self.blocks.as_ref()?;
        list.blocks.get(usize::try_from(block).ok()?).copied()
    }

    /// Whether `hash` (of the received bytes of block `block`) is what the file must hold there.
    pub fn matches(&self, block: u64, hash: &ContentHash) -> bool {
        match &self.blocks {
            Some(list) => usize::try_from(block)
                .ok()
                .and_then(|block| list.blocks.get(block))
                .is_some_and(|expected| expected == hash),
            None => block == 0 && FileHashes { blocks: vec![*hash] }.root(self.size) == self.root,
        }
    }

    /// The block hashes, once a file of one block has its block verified (`verified_single`).
    pub fn hashes(&self, verified_single: Option<ContentHash>) -> Option<FileHashes> {
        match (&self.blocks, self.size) {
            (Some(list), _) => Some((**list).clone()),
            (None, 0) => Some(FileHashes::default()),
            (None, _) => verified_single.map(|hash| FileHashes { blocks: vec![hash] }),
        }
    }
}

/// The expected content of every file of `files` (directories get `None`), fetching the
/// block lists of files longer than a block from `peers`. A peer whose list does not give the
/// listed root is lying about the content: it is returned in the second list, with why, and
/// asked nothing more. Fails when some file's list comes from no peer, or a file without
/// a root is listed.
pub async fn expected_content(
    client: &PeerClient,
    id: &str,
    files: &[GameFileDescription],
    peers: &[SocketAddr],
) -> Result<(Vec<Option<Expected>>, Vec<(SocketAddr, TransferError)>), TransferError> {
    let mut expected: Vec<Option<Expected>> = Vec::with_capacity(files.len());
    let mut wanted = Vec::new();
    for (index, file) in files.iter().enumerate() {
        if file.is_dir {
            expected.push(None);
            continue;
        }
        let root = file.hash.ok_or_else(|| {
            TransferError::PeersFailed(format!("the peers list {} without a content hash", file.path))
        })?;
        if file.size == 0 && FileHashes::default().root(0) != root {
            return Err(TransferError::PeersFailed(format!(
                "the peers list the empty file {} with the root of some content",
                file.path
            )));
        }
        if FileHashes::block_count(file.size) > 1 {
            wanted.push(index);
        }
        expected.push(Some(Expected {
            size: file.size,
            root,
            blocks: None,
        }));
    }

    let mut liars: Vec<(SocketAddr, TransferError)> = Vec::new();
    let mut running = JoinSet::new();
    let spawn = |running: &mut JoinSet<_>, index: usize, addr: SocketAddr| {
        let (client, id, file) = (client.clone(), id.to_owned(), files[index].clone());
        running.spawn(async move {
            let count = FileHashes::block_count(file.size);
            (index, addr, client.get_block_hashes(addr, &id, &file.path, count).await)
        });
    };
    let mut queue = wanted.into_iter();
    // Per file: the peers already asked, so a failure moves on to the next one.
    let mut asked: Vec<BTreeSet<SocketAddr>> = vec![BTreeSet::new(); files.len()];
    let mut errors: Vec<String> = Vec::new();
    let mut turn = 0usize;
    loop {
        while running.len() < LISTS_IN_FLIGHT {
            let Some(index) = queue.next() else { break };
            let addr =
                next_peer(peers, &liars, &asked[index], &mut turn).ok_or_else(|| no_list(&files[index], &errors))?;
            asked[index].insert(addr);
            spawn(&mut running, index, addr);
        }
        let Some(joined) = running.join_next().await else { break };
        let (index, addr, result) =
            joined.map_err(|err| TransferError::Internal(format!("a block-list fetch failed: {err}")))?;
        let file = &files[index];
        match result {
            Ok(list) if Some(list.root(file.size)) == file.hash => {
                if let Some(Some(expected)) = expected.get_mut(index) {
                    expected.blocks = Some(Arc::new(list));
                }
                continue;
            }
            Ok(_) => {
                let lie = TransferError::Corrupt {
                    peer: addr,
                    path: file.path.clone(),
                };
                tracing::warn!(%addr, "{lie}");
                errors.push(lie.to_string());
                if !liars.iter().any(|(liar, _)| *liar == addr) {
                    liars.push((addr, lie));
                }
            }
            Err(err) => {
                tracing::debug!(%addr, "no block list for {}: {err}", file.path);
                errors.push(err.to_string());
            }
        }
        let next = next_peer(peers, &liars, &asked[index], &mut turn).ok_or_else(|| no_list(file, &errors))?;
        asked[index].insert(next);
        spawn(&mut running, index, next);
    }
    Ok((expected, liars))
}

/// The next peer in turn that has not lied and was not asked for this file yet.
fn next_peer(
    peers: &[SocketAddr],
    liars: &[(SocketAddr, TransferError)],
    asked: &BTreeSet<SocketAddr>,
    turn: &mut usize,
) -> Option<SocketAddr> {
    for _ in 0..peers.len() {
        let addr = peers[*turn % peers.len()];
        *turn += 1;
        if !asked.contains(&addr) && !liars.iter().any(|(liar, _)| *liar == addr) {
            return Some(addr);
        }
    }
    None
}

fn no_list(file: &GameFileDescription, errors: &[String]) -> TransferError {
    let last = errors.last().map_or("no peer to ask", String::as_str);
    TransferError::PeersFailed(format!(
        "no peer sent the block hashes of {} (last error: {last})",
        file.path
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::root_of;

    #[test]
    fn blocks_are_checked_against_the_list_or_a_single_block_against_the_root() {
        let small = vec![7u8; 1000];
        let single = Expected {
            size: 1000,
            root: root_of(&small),
            blocks: None,
        };
        assert!(single.matches(0, &ContentHash::of(&small)));
        assert!(!single.matches(0, &ContentHash::of(&small[1..])));
        assert!(!single.matches(1, &ContentHash::of(&small)), "there is no block 1");
        assert_eq!(
            single.hashes(Some(ContentHash::of(&small))).map(|h| h.root(1000)),
            Some(single.root)
        );

        let size = 2 * BLOCK_SIZE + 5;
        let list = FileHashes {
            blocks: vec![ContentHash::of(b"a"), ContentHash::of(b"b"), ContentHash::of(b"c")],
        };
        let multi = Expected {
            size,
            root: list.root(size),
            blocks: Some(Arc::new(list)),
        };
        assert_eq!(
            (multi.block_count(), multi.block_len(1), multi.block_len(2)),
            (3, BLOCK_SIZE, 5)
        );
        assert!(multi.matches(1, &ContentHash::of(b"b")));
        assert!(!multi.matches(1, &ContentHash::of(b"a")), "a block at the wrong place");
        assert!(!multi.matches(3, &ContentHash::of(b"c")));
    }
}
