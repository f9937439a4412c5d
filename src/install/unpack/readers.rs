//! Readers that verify what they pass on and remember why they failed, so the
//! walker can report the archive's fault precisely even when a visitor or the
//! tar crate turned the read error into something vaguer.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::path::Path;

use super::UnpackError;

/// Why a member's data could not be verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// The format reader failed (decompression error, truncated archive, ...).
    Read(String),
    /// The data ended before the recorded size.
    Short {
        read: u64,
        expected: u64,
    },
    /// The data goes on past the recorded size.
    Long {
        expected: u64,
    },
    Crc {
        expected: u32,
        actual: u32,
    },
}

impl Failure {
    pub(super) fn into_error(self, archive: &Path, entry: &str) -> UnpackError {
        match self {
            Failure::Crc { expected, actual } => UnpackError::ChecksumMismatch {
                archive: archive.to_path_buf(),
                entry: entry.to_owned(),
                expected,
                actual,
            },
            Failure::Read(reason) => UnpackError::corrupt(archive, format!("entry {entry:?}: {reason}")),
            Failure::Short { read, expected } => UnpackError::corrupt(
                archive,
                format!("entry {entry:?}: data ends after {read} of its {expected} bytes (truncated archive?)"),
            ),
            Failure::Long { expected } => UnpackError::corrupt(
                archive,
                format!("entry {entry:?}: more data than its recorded {expected} bytes"),
            ),
        }
    }

    fn to_io_error(&self) -> io::Error {
        let kind = match self {
            Failure::Short { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        let message = match self {
            Failure::Read(reason) => reason.clone(),
            Failure::Short { read, expected } => format!("data ends after {read} of {expected} bytes"),
            Failure::Long { expected } => format!("more data than the recorded {expected} bytes"),
            Failure::Crc { expected, actual } => {
                format!("CRC32 {actual:08x} does not match the recorded {expected:08x}")
            }
        };
        io::Error::new(kind, message)
    }
}

/// Passes a member's bytes on while counting and hashing them; at the end checks the
/// recorded size and CRC32. Once failed, every read returns the same error.
pub(super) struct VerifyingReader<'r> {
    inner: &'r mut dyn Read,
    expected_size: u64,
    expected_crc: Option<u32>,
    hasher: crc32fast::Hasher,
    read: u64,
    finished: bool,
    failure: Option<Failure>,
}

impl<'r> VerifyingReader<'r> {
    pub(super) fn new(inner: &'r mut dyn Read, expected_size: u64, expected_crc: Option<u32>) -> Self {
        VerifyingReader {
            inner,
            expected_size,
            expected_crc,
            hasher: crc32fast::Hasher::new(),
            read: 0,
            finished: false,
            failure: None,
        }
    }

    pub(super) fn failure(&self) -> Option<Failure> {
        self.failure.clone()
    }

    fn fail(&mut self, failure: Failure) -> io::Error {
        let err = failure.to_io_error();
        self.failure = Some(failure);
        err
    }
}

impl Read for VerifyingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(failure) = &self.failure {
            return Err(failure.to_io_error());
        }
        if self.finished || buf.is_empty() {
            return Ok(0);
        }
        let count = match self.inner.read(buf) {
            Ok(count) => count,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Err(err),
            Err(err) => return Err(self.fail(Failure::Read(err.to_string()))),
        };
        if count == 0 {
            if self.read < self.expected_size {
                let failure = Failure::Short {
                    read: self.read,
                    expected: self.expected_size,
                };
                return Err(self.fail(failure));
            }
            let actual = self.hasher.clone().finalize();
            if let Some(expected) = self.expected_crc
                && expected != actual
            {
                return Err(self.fail(Failure::Crc { expected, actual }));
            }
            self.finished = true;
            return Ok(0);
        }
        self.read += count as u64;
        if self.read > self.expected_size {
            let failure = Failure::Long {
                expected: self.expected_size,
            };
            return Err(self.fail(failure));
        }
        self.hasher.update(&buf[..count]);
        Ok(count)
    }
}

/// Shared between the layers of one archive stream (decompressor, probe, format reader):
/// the first failure of a lower layer, and whether the stream ended.
#[derive(Default)]
pub(super) struct StreamState {
    failure: RefCell<Option<UnpackError>>,
    eof_seen: Cell<bool>,
}

impl StreamState {
    /// Records a failure unless an earlier (lower-layer) one is already recorded.
    pub(super) fn record(&self, error: UnpackError) {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some(error);
        }
    }

    pub(super) fn take_failure(&self) -> Option<UnpackError> {
        self.failure.borrow_mut().take()
    }

    pub(super) fn eof_seen(&self) -> bool {
        self.eof_seen.get()
    }
}

/// Sits on top of a decoded archive stream: notes the end of the stream and records the
/// stream's read errors (as [`UnpackError::Corrupt`], unless a lower layer recorded a more
/// precise error first).
pub(super) struct ProbeReader<'s, R> {
    inner: R,
    state: &'s StreamState,
    archive: &'s Path,
    layer: &'static str,
}

impl<'s, R: Read> ProbeReader<'s, R> {
    pub(super) fn new(inner: R, state: &'s StreamState, archive: &'s Path, layer: &'static str) -> Self {
        ProbeReader {
            inner,
            state,
            archive,
            layer,
        }
    }
}

impl<R: Read> Read for ProbeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.state.eof_seen.set(true);
                Ok(0)
            }
            Ok(count) => Ok(count),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => {
                let reason = if err.kind() == io::ErrorKind::UnexpectedEof {
                    format!("{} data is truncated: {err}", self.layer)
                } else {
                    format!("{} data is corrupt: {err}", self.layer)
                };
                self.state.record(UnpackError::corrupt(self.archive, reason));
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(reader: &mut VerifyingReader<'_>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn verifying_reader_accepts_matching_data() {
        let data = b"hello world";
        let crc = crc32fast::hash(data);
        let mut source: &[u8] = data;
        let mut reader = VerifyingReader::new(&mut source, data.len() as u64, Some(crc));
        assert_eq!(read_all(&mut reader).unwrap(), data);
        assert_eq!(reader.failure(), None);
        // Reading again after the end stays at the end.
        assert_eq!(reader.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn verifying_reader_reports_crc_short_and_long_data() {
        let data = b"hello world";
        let crc = crc32fast::hash(data);

        let mut source: &[u8] = b"hello_world";
        let mut reader = VerifyingReader::new(&mut source, 11, Some(crc));
        assert!(read_all(&mut reader).is_err());
        assert_eq!(
            reader.failure(),
            Some(Failure::Crc {
                expected: crc,
                actual: crc32fast::hash(b"hello_world")
            })
        );

        let mut source: &[u8] = b"hello";
        let mut reader = VerifyingReader::new(&mut source, 11, None);
        let err = read_all(&mut reader).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(reader.failure(), Some(Failure::Short { read: 5, expected: 11 }));

        let mut source: &[u8] = data;
        let mut reader = VerifyingReader::new(&mut source, 4, None);
        assert!(read_all(&mut reader).is_err());
        assert_eq!(reader.failure(), Some(Failure::Long { expected: 4 }));
    }
}
