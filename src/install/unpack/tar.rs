//! tar, plain or compressed with gzip or zstd, read as one stream.
//!
//! The tar crate accepts an archive that simply stops at a member boundary, so
//! the stream is watched: a tar whose data ends before its end-of-archive block
//! is reported as truncated. After the last member the rest of the stream is
//! read too, so the gzip trailer and the zstd checksum are always verified.

use std::io::{self, BufReader, Read};
use std::path::Path;

use tar::EntryType;

use super::gzip::GzipReader;
use super::readers::{ProbeReader, StreamState};
use super::{MemberData, RawKind, UnpackError, Walker, open_archive, unix_special_kind};

const READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Zstd,
}

pub(super) fn walk(walker: &mut Walker<'_, '_>, archive: &Path, compression: Compression) -> Result<(), UnpackError> {
    let file = open_archive(archive)?;
    let buffered = BufReader::with_capacity(READ_BUFFER, file);
    let state = StreamState::default();
    let (decoded, layer): (Box<dyn Read + '_>, &'static str) = match compression {
        Compression::None => (Box::new(buffered), "tar"),
        Compression::Gzip => (Box::new(GzipReader::new(buffered, &state, archive)), "gzip"),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|err| UnpackError::corrupt(archive, format!("zstd: cannot start decoding: {err}")))?;
            (
                Box::new(ZstdReader {
                    decoder,
                    state: &state,
                    archive,
                }),
                "zstd",
            )
        }
    };
    let mut stream = ProbeReader::new(decoded, &state, archive, layer);
    let walked = walk_members(walker, archive, &mut stream);
    // A failure of a lower layer (gzip, zstd, the file) explains any error above it.
    if let Err(err) = walked {
        return Err(match err {
            UnpackError::Cancelled => err,
            other => state.take_failure().unwrap_or(other),
        });
    }
    if state.eof_seen() {
        return Err(state.take_failure().unwrap_or_else(|| {
            UnpackError::corrupt(
                archive,
                "tar: the archive ends before its end-of-archive block (truncated)",
            )
        }));
    }
    // Read what follows the end-of-archive block, so trailers and checksums are checked.
    if let Err(err) = io::copy(&mut stream, &mut io::sink()) {
        return Err(state
            .take_failure()
            .unwrap_or_else(|| UnpackError::corrupt(archive, format!("{layer}: {err}"))));
    }
    Ok(())
}

fn walk_members(walker: &mut Walker<'_, '_>, archive: &Path, stream: &mut dyn Read) -> Result<(), UnpackError> {
    let corrupt = |err: io::Error| UnpackError::corrupt(archive, format!("tar: {err}"));
    let mut tar = tar::Archive::new(stream);
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_name = match std::str::from_utf8(&entry.path_bytes()) {
            Ok(name) => name.to_owned(),
            Err(_) => {
                return Err(UnpackError::UnsafePath {
                    archive: archive.to_path_buf(),
                    entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                });
            }
        };
        let header = entry.header();
        let mode = header.mode().unwrap_or(0);
        let kind = match header.entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => match unix_special_kind(mode) {
                // A regular-file header whose mode claims a link or device is not trusted either.
                Some(special) => RawKind::Unsafe(special.to_owned()),
                None => RawKind::File,
            },
            EntryType::Directory => RawKind::Dir,
            EntryType::Symlink => RawKind::Unsafe(describe_link("symlink", &entry)),
            EntryType::Link => RawKind::Unsafe(describe_link("hard link", &entry)),
            EntryType::Char => RawKind::Unsafe("character device".to_owned()),
            EntryType::Block => RawKind::Unsafe("block device".to_owned()),
            EntryType::Fifo => RawKind::Unsafe("FIFO".to_owned()),
            // Metadata for the whole archive (e.g. `git archive`'s commit id): nothing to unpack.
            EntryType::XGlobalHeader => continue,
            other => RawKind::Unsafe(format!("tar entry of unsupported type {:?}", other.as_byte() as char)),
        };
        let data = MemberData {
            size: entry.size(),
            crc32: None,
            executable: mode & 0o111 != 0,
        };
        walker.member(archive, &raw_name, kind, data, &mut entry)?;
    }
    Ok(())
}

fn describe_link<R: Read>(what: &str, entry: &tar::Entry<'_, R>) -> String {
    match entry.link_name_bytes() {
        Some(target) => format!("{what} to {:?}", String::from_utf8_lossy(&target)),
        None => what.to_owned(),
    }
}

/// Records zstd's errors precisely: a frame checksum failure is a checksum error,
/// anything else corruption or truncation.
struct ZstdReader<'s, R: io::BufRead> {
    decoder: zstd::stream::read::Decoder<'static, R>,
    state: &'s StreamState,
    archive: &'s Path,
}

impl<R: io::BufRead> Read for ZstdReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder.read(buf).inspect_err(|err| {
            let message = err.to_string();
            let error = if message.to_ascii_lowercase().contains("checksum") {
                UnpackError::ChecksumFailed {
                    archive: self.archive.to_path_buf(),
                    entry: "(zstd stream)".to_owned(),
                    detail: format!("zstd: {message}"),
                }
            } else if err.kind() == io::ErrorKind::UnexpectedEof {
                UnpackError::corrupt(self.archive, format!("zstd: truncated: {message}"))
            } else if err.kind() != io::ErrorKind::Interrupted {
                UnpackError::corrupt(self.archive, format!("zstd: {message}"))
            } else {
                return;
            };
            self.state.record(error);
        })
    }
}
