//! The sending side: `StreamInstallProvider` first checks the game's archives
//! against their recorded hashes (`check`), then reads them with the install's
//! own archive code (`visit_entries`: same path checks, same checksum
//! verification) and writes control and chunk frames into a
//! `StreamInstallFrameSink`. It runs on a blocking thread and holds the
//! outbound transfer guard of its game until it returns.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::check::{ArchiveCheck, CheckError, check_archives};
use super::sink::{SinkClosed, StreamInstallFrameSink};
use super::wire::{MAX_DATA_FRAME, StreamControl, StreamFrame};
use crate::install::unpack::{EntryKind, UnpackError, VisitOptions, visit_entries_with};

/// Bytes per data frame the provider sends.
const PIECE: usize = 256 << 10;

/// Games being streamed out right now. One stream per game at a time: each
/// one expands the archives (CPU and disk heavy), and while one runs the
/// game's archives must not be replaced by a local download or removal.
#[derive(Clone, Default)]
pub struct OutboundTransfers {
    active: Arc<Mutex<HashSet<String>>>,
}

/// Held while a game is streamed out; dropping it frees the game.
pub struct TransferGuard {
    transfers: OutboundTransfers,
    id: String,
}

impl OutboundTransfers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `None` when `id` is already being streamed.
    pub fn try_acquire(&self, id: &str) -> Option<TransferGuard> {
        self.lock().insert(id.to_owned()).then(|| TransferGuard {
            transfers: self.clone(),
            id: id.to_owned(),
        })
    }

    pub fn is_active(&self, id: &str) -> bool {
        self.lock().contains(id)
    }
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.transfers.lock().remove(&self.id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProvideError {
    #[error(transparent)]
    Closed(#[from] SinkClosed),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Check(#[from] CheckError),
}

pub struct StreamInstallProvider<'a> {
    pub game_root: &'a Path,
    /// Where RAR members are expanded one at a time (on disk, not in memory).
    pub scratch_dir: &'a Path,
    /// The archives are checked against these recorded hashes before anything is streamed.
    pub check: ArchiveCheck<'a>,
}

impl StreamInstallProvider<'_> {
    /// Checks the archives, streams every archive member, then `Done`; on a failed check or
    /// an archive error, an `Error` frame instead.
    pub fn run(&self, sink: &StreamInstallFrameSink) -> Result<(), ProvideError> {
        let refuse = |err: CheckError| {
            let _ = sink.send_blocking(StreamFrame::Control(StreamControl::Error {
                message: err.to_string(),
            }));
            ProvideError::Check(err)
        };
        let mut progress = |bytes, total| {
            // A receiver that is gone shows up as `cancelled` at the next read.
            let _ = sink.send_blocking(StreamFrame::Control(StreamControl::Checking { bytes, total }));
        };
        let started = Instant::now();
        let checked = match check_archives(&self.check, &mut progress, &|| sink.is_cancelled()) {
            Ok(checked) => {
                tracing::info!(
                    game = self.check.id,
                    "checked {} bytes of archives against their recorded hashes in {:?}",
                    checked.bytes,
                    started.elapsed()
                );
                checked
            }
            Err(CheckError::Cancelled) => return Err(ProvideError::Closed(SinkClosed)),
            Err(err) => return Err(refuse(err)),
        };
        let mut sent = (0u64, 0u64, 0u64);
        let options = VisitOptions {
            scratch_dir: Some(self.scratch_dir),
            cancelled: Some(&|| sink.is_cancelled()),
        };
        let mut closed = false;
        let visited = visit_entries_with(self.game_root, options, &mut |entry| {
            let send = |frame| sink.send_blocking(frame).map_err(|_| UnpackError::Cancelled);
            let result = (|| {
                match entry.kind {
                    EntryKind::Dir => {
                        send(StreamFrame::Control(StreamControl::Directory {
                            path: entry.path.clone(),
                        }))?;
                        sent.1 += 1;
                    }
                    EntryKind::File => {
                        send(StreamFrame::Control(StreamControl::BeginFile {
                            path: entry.path.clone(),
                            size: entry.size,
                            crc32: entry.crc32,
                        }))?;
                        let mut hasher = crc32fast::Hasher::new();
                        let mut buffer = vec![0u8; PIECE.min(MAX_DATA_FRAME)];
                        loop {
                            let read = entry.reader.read(&mut buffer).map_err(|err| UnpackError::Corrupt {
                                archive: entry.archive.to_path_buf(),
                                reason: format!("{}: {err}", entry.path),
                            })?;
                            if read == 0 {
                                break;
                            }
                            hasher.update(&buffer[..read]);
                            send(StreamFrame::Data(Bytes::copy_from_slice(&buffer[..read])))?;
                            sent.2 += read as u64;
                        }
                        // Formats without a recorded CRC (tar, split RAR members) get the sender's own.
                        let crc32 = entry.crc32.is_none().then(|| hasher.finalize());
                        send(StreamFrame::Control(StreamControl::EndFile { crc32 }))?;
                        sent.0 += 1;
                    }
                }
                Ok(())
            })();
            closed |= sink.is_cancelled();
            result
        });
        match visited {
            Ok(_) => {
                checked.ensure_unchanged().map_err(refuse)?;
                let (files, dirs, bytes) = sent;
                sink.send_blocking(StreamFrame::Control(StreamControl::Done { files, dirs, bytes }))?;
                Ok(())
            }
            Err(_) if closed || sink.is_cancelled() => Err(ProvideError::Closed(SinkClosed)),
            Err(err) => {
                let message = err.to_string();
                let _ = sink.send_blocking(StreamFrame::Control(StreamControl::Error { message }));
                Err(err.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_per_game_and_the_guard_frees_it() {
        let transfers = OutboundTransfers::default();
        let guard = transfers.try_acquire("openarena").unwrap();
        assert!(transfers.try_acquire("openarena").is_none());
        assert!(
            transfers.try_acquire("xonotic").is_some(),
            "other games are independent"
        );
        assert!(transfers.is_active("openarena"));
        drop(guard);
        assert!(!transfers.is_active("openarena"));
        assert!(transfers.try_acquire("openarena").is_some());
    }
}
