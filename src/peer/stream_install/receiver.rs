//! The receiving side: `StreamedInstallTransaction` runs the regular install
//! transaction (staging in `.local.installing/`, journaled, promoted to
//! `local/`, through `.local.backup/` on update) with staging filled from
//! stream frames instead of an unpacker.
//!
//! Each file's CRC32 is computed as its bytes arrive (crc32fast) and checked
//! against the CRC the sender's archive records, or else the sender's own.
//! A zero-byte file without any CRC counts as CRC32 00000000; a non-empty
//! file without one is an error. Sizes, counts and paths are all checked:
//! a sender cannot write outside staging, more than it announced, or less.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::wire::{StreamControl, StreamFrame};
use crate::disk::free_space;
use crate::install::{Completed, InstallError, InstalledRecord, Transaction};
use crate::layout::resolve_in_root;
use crate::peer::download::TransferError;

const WRITE_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(
        "{path}: CRC32 {actual:08x} does not match the expected {expected:08x} (corrupted in transit or at the sender)"
    )]
    CrcMismatch { path: String, expected: u32, actual: u32 },
    #[error("{path} has {size} bytes but no CRC32 to check them against")]
    MissingCrc { path: String, size: u64 },
    #[error("{path}: {got} bytes received, {announced} announced")]
    SizeMismatch { path: String, announced: u64, got: u64 },
    #[error("the sender broke the stream protocol: {0}")]
    Protocol(String),
    #[error("the sender failed: {0}")]
    Sender(String),
    #[error("the stream ended before the sender said it was done")]
    Truncated,
    #[error("cancelled")]
    Cancelled,
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
        /// Bytes free on the file system holding `path` when the write failed.
        free: Option<u64>,
    },
}

impl From<ReceiveError> for TransferError {
    /// Whose fault it is: a write into our own staging failing is this disk's (no other sender
    /// can help), everything else is the sender's.
    fn from(err: ReceiveError) -> Self {
        match err {
            ReceiveError::Cancelled => TransferError::Cancelled,
            // Staging is fresh and only this stream writes into it: a file already there means
            // the sender sent its path twice.
            ReceiveError::Write { path, source, .. } if source.kind() == io::ErrorKind::AlreadyExists => {
                TransferError::Peer(format!("the sender sent {} twice", path.display()))
            }
            ReceiveError::Write { path, source, free } => TransferError::Local { path, source, free },
            other => TransferError::Peer(other.to_string()),
        }
    }
}

/// Counts of what arrived, for progress and the final check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

struct OpenFile {
    path: String,
    /// Where `path` is in staging, for error messages.
    full: PathBuf,
    writer: BufWriter<File>,
    size: u64,
    written: u64,
    archive_crc: Option<u32>,
    hasher: crc32fast::Hasher,
}

fn write_error(path: &Path) -> impl Fn(io::Error) -> ReceiveError + '_ {
    move |source| ReceiveError::Write {
        path: path.to_owned(),
        source,
        free: free_space(path),
    }
}

/// Creates `relative` under `staging` (and its parents), never through a symlink.
fn create_dirs(staging: &Path, relative: &str) -> Result<PathBuf, ReceiveError> {
    let mut current = staging.to_path_buf();
    for component in relative.split('/') {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(ReceiveError::Protocol(format!("{relative} collides with a file"))),
            Err(_) => fs::create_dir(&current).map_err(write_error(&current))?,
        }
    }
    Ok(current)
}

/// Writes the frames from `frames` into `staging` until `Done`. Blocks (run on a blocking thread).
pub fn receive_into(
    staging: &Path,
    frames: &mut mpsc::Receiver<StreamFrame>,
    progress: &mut dyn FnMut(Received),
    cancelled: &dyn Fn() -> bool,
) -> Result<Received, ReceiveError> {
    let mut received = Received::default();
    let mut open: Option<OpenFile> = None;
    loop {
        if cancelled() {
            return Err(ReceiveError::Cancelled);
        }
        let Some(frame) = frames.blocking_recv() else {
            return Err(if cancelled() {
                ReceiveError::Cancelled
            } else {
                ReceiveError::Truncated
            });
        };
        match frame {
            StreamFrame::Data(bytes) => {
                let file = open
                    .as_mut()
                    .ok_or_else(|| ReceiveError::Protocol("file bytes outside a file".into()))?;
                if file.written + bytes.len() as u64 > file.size {
                    return Err(ReceiveError::SizeMismatch {
                        path: file.path.clone(),
                        announced: file.size,
                        got: file.written + bytes.len() as u64,
                    });
                }
                file.writer.write_all(&bytes).map_err(write_error(&file.full))?;
                file.hasher.update(&bytes);
                file.written += bytes.len() as u64;
                received.bytes += bytes.len() as u64;
                progress(received);
            }
            StreamFrame::Control(StreamControl::Directory { path }) => {
                if open.is_some() {
                    return Err(ReceiveError::Protocol(format!("directory {path} inside a file")));
                }
                create_dirs(staging, &path)?;
                received.dirs += 1;
            }
            StreamFrame::Control(StreamControl::BeginFile { path, size, crc32 }) => {
                if open.is_some() {
                    return Err(ReceiveError::Protocol(format!("{path} begins inside another file")));
                }
                let full = resolve_in_root(staging, &path).map_err(|err| ReceiveError::Protocol(err.to_string()))?;
                if let Some((parent, _)) = path.rsplit_once('/') {
                    create_dirs(staging, parent)?;
                }
                // create_new: a duplicate path, or a symlink planted in staging, is an error, never followed.
                let handle = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&full)
                    .map_err(write_error(&full))?;
                open = Some(OpenFile {
                    writer: BufWriter::with_capacity(WRITE_BUFFER, handle),
                    path,
                    full,
                    size,
                    written: 0,
                    archive_crc: crc32,
                    hasher: crc32fast::Hasher::new(),
                });
            }
            StreamFrame::Control(StreamControl::EndFile { crc32: sender_crc }) => {
                let file = open
                    .take()
                    .ok_or_else(|| ReceiveError::Protocol("end of a file that never began".into()))?;
                finish_file(file, sender_crc)?;
                received.files += 1;
                progress(received);
            }
            StreamFrame::Control(StreamControl::Checking { bytes, total }) => {
                // Only a liveness signal; a sender that sends it once streaming began, or with
                // impossible numbers, is not following the protocol.
                if open.is_some() || received != Received::default() || bytes > total {
                    return Err(ReceiveError::Protocol(format!(
                        "checking progress {bytes} of {total} bytes after the stream began"
                    )));
                }
            }
            StreamFrame::Control(StreamControl::Done { files, dirs, bytes }) => {
                if open.is_some() {
                    return Err(ReceiveError::Protocol("done inside a file".into()));
                }
                let announced = Received { files, dirs, bytes };
                if announced != received {
                    return Err(ReceiveError::Protocol(format!(
                        "the sender announced {announced:?} but sent {received:?}"
                    )));
                }
                return Ok(received);
            }
            StreamFrame::Control(StreamControl::Error { message }) => return Err(ReceiveError::Sender(message)),
        }
    }
}

fn finish_file(file: OpenFile, sender_crc: Option<u32>) -> Result<(), ReceiveError> {
    let OpenFile {
        path,
        full,
        mut writer,
        size,
        written,
        archive_crc,
        hasher,
    } = file;
    if written != size {
        return Err(ReceiveError::SizeMismatch {
            path,
            announced: size,
            got: written,
        });
    }
    writer.flush().map_err(write_error(&full))?;
    let actual = hasher.finalize();
    let expected = match (archive_crc, sender_crc) {
        (Some(archive), Some(sender)) if archive != sender => {
            return Err(ReceiveError::CrcMismatch {
                path,
                expected: archive,
                actual: sender,
            });
        }
        (Some(crc), _) | (None, Some(crc)) => crc,
        (None, None) if size == 0 => 0,
        (None, None) => return Err(ReceiveError::MissingCrc { path, size }),
    };
    if actual != expected {
        return Err(ReceiveError::CrcMismatch { path, expected, actual });
    }
    Ok(())
}

/// The install transaction of a streamed install: one attempt from one sender.
pub struct StreamedInstallTransaction<'a> {
    pub transaction: Transaction<'a>,
    /// The version being streamed, recorded in `local/` with the install.
    pub version: &'a str,
}

impl StreamedInstallTransaction<'_> {
    /// Receives into staging and promotes; on any failure the staging (and a root this created) is rolled back.
    pub fn run(
        &self,
        frames: &mut mpsc::Receiver<StreamFrame>,
        progress: &mut dyn FnMut(Received),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Completed, InstallError> {
        let installed = InstalledRecord {
            version: self.version.to_owned(),
            streamed: true,
        };
        self.transaction.install(Some(installed), |staging| {
            match receive_into(staging, frames, progress, cancelled) {
                Ok(_) => Ok(()),
                Err(ReceiveError::Cancelled) => Err(InstallError::Cancelled),
                Err(err) => Err(InstallError::Transfer(err.into())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn control(control: StreamControl) -> StreamFrame {
        StreamFrame::Control(control)
    }

    fn file_frames(path: &str, bytes: &[u8], archive_crc: Option<u32>) -> Vec<StreamFrame> {
        vec![
            control(StreamControl::BeginFile {
                path: path.into(),
                size: bytes.len() as u64,
                crc32: archive_crc,
            }),
            StreamFrame::Data(Bytes::copy_from_slice(bytes)),
            control(StreamControl::EndFile { crc32: None }),
        ]
    }

    fn run(frames: Vec<StreamFrame>) -> (tempfile::TempDir, Result<Received, ReceiveError>) {
        let staging = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(frames.len().max(1));
        for frame in frames {
            tx.try_send(frame).unwrap();
        }
        drop(tx);
        let result = receive_into(staging.path(), &mut rx, &mut |_| {}, &|| false);
        (staging, result)
    }

    #[test]
    fn files_land_with_checked_crcs() {
        let mut frames = vec![control(StreamControl::Directory { path: "maps".into() })];
        frames.extend(file_frames("maps/a.bsp", b"hello", Some(crc32fast::hash(b"hello"))));
        frames.extend(file_frames("empty.txt", b"", None));
        frames.push(control(StreamControl::Done {
            files: 2,
            dirs: 1,
            bytes: 5,
        }));
        let (staging, result) = run(frames);
        assert_eq!(
            result.unwrap(),
            Received {
                files: 2,
                dirs: 1,
                bytes: 5
            }
        );
        assert_eq!(fs::read(staging.path().join("maps/a.bsp")).unwrap(), b"hello");
        assert_eq!(fs::read(staging.path().join("empty.txt")).unwrap(), b"");
    }

    #[test]
    fn a_wrong_crc_or_a_missing_one_on_a_non_empty_file_fails() {
        let (_, result) = run(file_frames("a", b"hello", Some(crc32fast::hash(b"hellO"))));
        assert!(matches!(result, Err(ReceiveError::CrcMismatch { .. })), "{result:?}");
        let (_, result) = run(file_frames("a", b"hello", None));
        assert!(
            matches!(&result, Err(ReceiveError::MissingCrc { path, size: 5 }) if path == "a"),
            "{result:?}"
        );
    }

    #[test]
    fn lies_and_truncation_are_errors() {
        let mut too_much = file_frames("a", b"abc", None);
        too_much[0] = control(StreamControl::BeginFile {
            path: "a".into(),
            size: 2,
            crc32: None,
        });
        let (_, result) = run(too_much);
        assert!(matches!(result, Err(ReceiveError::SizeMismatch { .. })), "{result:?}");

        let (_, result) = run(file_frames("a", b"", None));
        assert!(
            matches!(result, Err(ReceiveError::Truncated)),
            "no Done frame: {result:?}"
        );

        let mut duplicate = file_frames("a", b"", None);
        duplicate.extend(file_frames("a", b"", None));
        let (_, result) = run(duplicate);
        assert!(matches!(result, Err(ReceiveError::Write { .. })), "{result:?}");

        let (_, result) = run(vec![control(StreamControl::Done {
            files: 3,
            dirs: 0,
            bytes: 0,
        })]);
        assert!(matches!(result, Err(ReceiveError::Protocol(_))), "{result:?}");

        let (_, result) = run(vec![control(StreamControl::Error {
            message: "bad archive".into(),
        })]);
        assert!(
            matches!(&result, Err(ReceiveError::Sender(message)) if message == "bad archive"),
            "{result:?}"
        );
    }

    #[test]
    fn checking_progress_is_allowed_only_before_the_first_entry() {
        let checking = || control(StreamControl::Checking { bytes: 5, total: 10 });
        let mut frames = vec![checking(), checking()];
        frames.extend(file_frames("a", b"abc", Some(crc32fast::hash(b"abc"))));
        frames.push(control(StreamControl::Done {
            files: 1,
            dirs: 0,
            bytes: 3,
        }));
        let (_, result) = run(frames);
        assert!(result.is_ok(), "{result:?}");

        let mut late = file_frames("a", b"abc", Some(crc32fast::hash(b"abc")));
        late.push(checking());
        let (_, result) = run(late);
        assert!(matches!(result, Err(ReceiveError::Protocol(_))), "{result:?}");
        let (_, result) = run(vec![control(StreamControl::Checking { bytes: 11, total: 10 })]);
        assert!(matches!(result, Err(ReceiveError::Protocol(_))), "{result:?}");
    }

    #[test]
    fn a_failed_write_is_local_but_a_duplicate_path_is_the_senders_fault() {
        let write = |kind| ReceiveError::Write {
            path: "/games/openarena/.local.installing/a".into(),
            source: io::Error::from(kind),
            free: Some(0),
        };
        let full = TransferError::from(write(io::ErrorKind::StorageFull));
        assert!(matches!(full, TransferError::Local { free: Some(0), .. }), "{full:?}");
        assert!(!full.is_peer_fault());
        let duplicate = TransferError::from(write(io::ErrorKind::AlreadyExists));
        assert!(duplicate.is_peer_fault(), "{duplicate:?}");
        assert!(TransferError::from(ReceiveError::Truncated).is_peer_fault());
        assert!(matches!(
            TransferError::from(ReceiveError::Cancelled),
            TransferError::Cancelled
        ));
    }

    #[test]
    fn a_symlink_in_staging_is_never_followed() {
        let outside = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), staging.path().join("maps")).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        for frame in file_frames("maps/a.bsp", b"x", None) {
            tx.try_send(frame).unwrap();
        }
        drop(tx);
        let result = receive_into(staging.path(), &mut rx, &mut |_| {}, &|| false);
        assert!(matches!(result, Err(ReceiveError::Protocol(_))), "{result:?}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
