//! `TransferError`: why a download or a streamed install stopped, classified so
//! the kind decides what happens next. `Peer`, `Stalled` and `Corrupt` are a
//! sender's fault: the work goes to another peer and the failure counts against
//! that one (`Corrupt` drops it at once). `Local` is this machine's disk (full, read-only, a file in the way): no
//! other peer can help, so the whole operation fails at once and no peer is
//! blamed. The rest end the operation as they say.
//!
//! Errors stay typed up to the actor; they become text only where a
//! `PeerEvent` is built.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::disk::{FreeSpace, free_space};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The peer answered wrongly, or the connection to it failed. The text names the peer.
    #[error("{0}")]
    Peer(String),
    /// The peer sent bytes (or a block list) that do not hash to the validated content:
    /// it is dropped from the operation at once.
    #[error("{peer} sent corrupt data for {path}; not using it")]
    Corrupt { peer: std::net::SocketAddr, path: String },
    /// The source cannot serve now: its upload slots are taken, or it holds none of the
    /// blocks offered yet. Not its fault: it is asked again a little later.
    #[error("{0}")]
    Busy(String),
    /// The peer stopped sending.
    #[error("{peer} sent nothing for {waited:?}")]
    Stalled {
        peer: std::net::SocketAddr,
        waited: Duration,
    },
    /// Writing here failed: the disk is full, read-only, or something is in the way.
    #[error(
        "cannot write {}: {source}; {}: free some space there (or fix the folder) and retry; no peer is at fault",
        .path.display(),
        FreeSpace(*.free)
    )]
    Local {
        path: PathBuf,
        #[source]
        source: io::Error,
        /// Bytes free on the file system holding `path` when the error happened.
        free: Option<u64>,
    },
    /// The peers' file lists do not agree well enough to pick what to fetch.
    #[error("{0}")]
    NoMajority(String),
    /// Every peer failed, or one piece failed too often: no peer could deliver.
    #[error("{0}")]
    PeersFailed(String),
    #[error("cancelled")]
    Cancelled,
    /// A bug or a panicked worker, not the disk and not a peer.
    #[error("internal error: {0}")]
    Internal(String),
}

impl TransferError {
    /// A local error at `path`, with the free space of its file system measured now.
    pub fn local(path: &Path, source: io::Error) -> Self {
        TransferError::Local {
            path: path.to_path_buf(),
            source,
            free: free_space(path),
        }
    }

    /// Whether the failure is the sending peer's: retry elsewhere and count it against that peer.
    /// Anything else ends the whole operation.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            TransferError::Peer(_) | TransferError::Stalled { .. } | TransferError::Corrupt { .. }
        )
    }

    /// Whether one such failure is enough to stop asking that peer: corrupt data is no accident.
    pub fn drops_peer_at_once(&self) -> bool {
        matches!(self, TransferError::Corrupt { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_error_names_the_path_and_the_free_space_and_blames_no_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("game.zip");
        let err = TransferError::local(&path, io::Error::from(io::ErrorKind::StorageFull));
        assert!(!err.is_peer_fault());
        let TransferError::Local { free, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(free.is_some(), "statvfs of a missing file falls back to its directory");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("free on its file system"), "{text}");
        assert!(text.contains("no peer is at fault"), "{text}");

        let stalled = TransferError::Stalled {
            peer: "127.0.0.1:1".parse().unwrap(),
            waited: Duration::from_secs(10),
        };
        assert!(stalled.is_peer_fault());
        assert!(TransferError::Peer("127.0.0.1:1 closed the connection".into()).is_peer_fault());
    }
}
