//! A gzip reader (RFC 1952) that checks each member's trailer itself, so a bad
//! trailer becomes a [`UnpackError::ChecksumMismatch`] with both values rather
//! than an opaque decoder error. Concatenated members are read as one stream;
//! zero padding after the last member is accepted, other trailing bytes are not.
//! Deflate itself is flate2's.

use std::io::{self, BufRead, Read};
use std::path::Path;

use flate2::bufread::DeflateDecoder;

use super::UnpackError;
use super::readers::StreamState;

/// The `entry` named in stream-level gzip errors.
pub(super) const GZIP_STREAM_ENTRY: &str = "(gzip stream)";

const FLAG_HCRC: u8 = 0x02;
const FLAG_EXTRA: u8 = 0x04;
const FLAG_NAME: u8 = 0x08;
const FLAG_COMMENT: u8 = 0x10;
const FLAG_RESERVED: u8 = 0xe0;

enum State<R> {
    /// Before a member header (or the end of the stream).
    Header(R),
    Body(DeflateDecoder<R>),
    Done,
    /// A failure was recorded; every further read fails.
    Failed,
}

pub(super) struct GzipReader<'s, R> {
    state: State<R>,
    members: u64,
    crc: crc32fast::Hasher,
    size: u32,
    stream: &'s StreamState,
    archive: &'s Path,
}

impl<'s, R: BufRead> GzipReader<'s, R> {
    pub(super) fn new(inner: R, stream: &'s StreamState, archive: &'s Path) -> Self {
        GzipReader {
            state: State::Header(inner),
            members: 0,
            crc: crc32fast::Hasher::new(),
            size: 0,
            stream,
            archive,
        }
    }

    fn fail(&mut self, error: UnpackError) -> io::Error {
        let io_error = io::Error::new(io::ErrorKind::InvalidData, error.to_string());
        self.stream.record(error);
        self.state = State::Failed;
        io_error
    }

    fn corrupt(&mut self, reason: String) -> io::Error {
        let error = UnpackError::corrupt(self.archive, format!("gzip: {reason}"));
        self.fail(error)
    }
}

impl<R: BufRead> Read for GzipReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Header(mut inner) => {
                    if self.members > 0 {
                        match only_zeros_left(&mut inner) {
                            Ok(true) => {
                                self.state = State::Done;
                                continue;
                            }
                            Ok(false) => {}
                            Err(err) => {
                                return Err(self.corrupt(format!("reading after member {}: {err}", self.members)));
                            }
                        }
                    }
                    if let Err(err) = skip_header(&mut inner) {
                        let reason = if self.members == 0 {
                            format!("not a gzip file or bad header: {err}")
                        } else {
                            format!("garbage or a bad header after member {}: {err}", self.members)
                        };
                        return Err(self.corrupt(reason));
                    }
                    self.crc = crc32fast::Hasher::new();
                    self.size = 0;
                    self.state = State::Body(DeflateDecoder::new(inner));
                }
                State::Body(mut decoder) => {
                    let count = match decoder.read(buf) {
                        Ok(count) => count,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                            self.state = State::Body(decoder);
                            return Err(err);
                        }
                        Err(err) => return Err(self.corrupt(format!("corrupt deflate data: {err}"))),
                    };
                    if count > 0 {
                        self.crc.update(&buf[..count]);
                        self.size = self.size.wrapping_add(count as u32);
                        self.state = State::Body(decoder);
                        return Ok(count);
                    }
                    // End of the deflate data (or of the input): the trailer must follow.
                    let mut inner = decoder.into_inner();
                    let mut trailer = [0u8; 8];
                    if let Err(err) = inner.read_exact(&mut trailer) {
                        return Err(self.corrupt(format!("truncated: the member trailer is missing ({err})")));
                    }
                    let expected = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
                    let expected_size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
                    let actual = self.crc.clone().finalize();
                    if expected != actual {
                        let error = UnpackError::ChecksumMismatch {
                            archive: self.archive.to_path_buf(),
                            entry: GZIP_STREAM_ENTRY.to_owned(),
                            expected,
                            actual,
                        };
                        return Err(self.fail(error));
                    }
                    if expected_size != self.size {
                        return Err(self.corrupt(format!(
                            "member length {} does not match the recorded {expected_size} (mod 2^32)",
                            self.size
                        )));
                    }
                    self.members += 1;
                    self.state = State::Header(inner);
                }
                State::Done => {
                    self.state = State::Done;
                    return Ok(0);
                }
                State::Failed => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "gzip stream already failed"));
                }
            }
        }
    }
}

/// True if the rest of the stream is empty or only zero bytes (padding some tools add).
/// Consumes nothing unless it returns true.
fn only_zeros_left<R: BufRead>(inner: &mut R) -> io::Result<bool> {
    let available = inner.fill_buf()?;
    if available.is_empty() {
        return Ok(true);
    }
    if available[0] != 0 {
        return Ok(false);
    }
    loop {
        let available = inner.fill_buf()?;
        if available.is_empty() {
            return Ok(true);
        }
        if available.iter().any(|&byte| byte != 0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "non-zero bytes after zero padding",
            ));
        }
        let len = available.len();
        inner.consume(len);
    }
}

/// Reads a gzip member header (RFC 1952 section 2.3) and leaves `inner` at the deflate data.
fn skip_header<R: BufRead>(inner: &mut R) -> io::Result<()> {
    let mut fixed = [0u8; 10];
    inner.read_exact(&mut fixed)?;
    if fixed[0] != 0x1f || fixed[1] != 0x8b {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad magic number"));
    }
    if fixed[2] != 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown compression method {}", fixed[2]),
        ));
    }
    let flags = fixed[3];
    if flags & FLAG_RESERVED != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "reserved header flags set"));
    }
    if flags & FLAG_EXTRA != 0 {
        let mut len = [0u8; 2];
        inner.read_exact(&mut len)?;
        skip_exact(inner, u64::from(u16::from_le_bytes(len)))?;
    }
    if flags & FLAG_NAME != 0 {
        skip_zero_terminated(inner)?;
    }
    if flags & FLAG_COMMENT != 0 {
        skip_zero_terminated(inner)?;
    }
    if flags & FLAG_HCRC != 0 {
        skip_exact(inner, 2)?;
    }
    Ok(())
}

fn skip_exact<R: BufRead>(inner: &mut R, len: u64) -> io::Result<()> {
    let copied = io::copy(&mut inner.take(len), &mut io::sink())?;
    if copied < len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "header ends early"));
    }
    Ok(())
}

fn skip_zero_terminated<R: BufRead>(inner: &mut R) -> io::Result<()> {
    loop {
        let available = inner.fill_buf()?;
        if available.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "header ends early"));
        }
        match available.iter().position(|&byte| byte == 0) {
            Some(end) => {
                inner.consume(end + 1);
                return Ok(());
            }
            None => {
                let len = available.len();
                inner.consume(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn decode(bytes: &[u8]) -> (io::Result<Vec<u8>>, Option<UnpackError>) {
        let state = StreamState::default();
        let archive = Path::new("test.tar.gz");
        let mut reader = GzipReader::new(bytes, &state, archive);
        let mut out = Vec::new();
        let result = reader.read_to_end(&mut out).map(|_| out);
        (result, state.take_failure())
    }

    #[test]
    fn reads_concatenated_members_and_zero_padding() {
        let mut bytes = gzip(b"hello ");
        bytes.extend(gzip(b"world"));
        bytes.extend([0u8; 100]);
        let (result, failure) = decode(&bytes);
        assert_eq!(result.unwrap(), b"hello world");
        assert!(failure.is_none());
    }

    #[test]
    fn header_fields_are_skipped() {
        let mut encoder = flate2::GzBuilder::new()
            .filename("name.tar")
            .comment("a comment")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::fast());
        encoder.write_all(b"payload").unwrap();
        let (result, _) = decode(&encoder.finish().unwrap());
        assert_eq!(result.unwrap(), b"payload");
    }

    #[test]
    fn bad_trailer_crc_is_a_checksum_mismatch() {
        let mut bytes = gzip(b"some data to protect");
        let at = bytes.len() - 8;
        bytes[at] ^= 0x01;
        let (result, failure) = decode(&bytes);
        assert!(result.is_err());
        match failure {
            Some(UnpackError::ChecksumMismatch {
                entry,
                expected,
                actual,
                ..
            }) => {
                assert_eq!(entry, GZIP_STREAM_ENTRY);
                assert_eq!(actual, crc32fast::hash(b"some data to protect"));
                assert_eq!(expected, actual ^ 0x01);
            }
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
    }

    #[test]
    fn truncation_and_garbage_are_corrupt() {
        let bytes = gzip(&vec![7u8; 10_000]);
        for cut in [5, bytes.len() / 2, bytes.len() - 3] {
            let (result, failure) = decode(&bytes[..cut]);
            assert!(result.is_err(), "cut at {cut}");
            assert!(
                matches!(failure, Some(UnpackError::Corrupt { .. })),
                "cut at {cut}: {failure:?}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.extend(b"junk");
        let (result, failure) = decode(&trailing);
        assert!(result.is_err());
        assert!(matches!(failure, Some(UnpackError::Corrupt { .. })), "{failure:?}");
        let (result, failure) = decode(b"");
        assert!(result.is_err());
        assert!(matches!(failure, Some(UnpackError::Corrupt { .. })), "{failure:?}");
    }
}
