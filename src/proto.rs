//! The wire protocol shared by client and server.
//!
//! One bidirectional QUIC stream carries one request. A control frame is a
//! 4-byte big-endian length followed by that many bytes of JSON; frames over
//! [`MAX_FRAME_LEN`] ([`MAX_REQUEST_LEN`] for requests) are rejected before their
//! body is read, and a body's buffer grows only as its bytes arrive, so a
//! promised length costs nothing. File bytes follow their response header raw,
//! so they are never JSON-encoded.
//!
//! No frame grows with a game: a file list travels as a [`GameListing`] header
//! announcing its entry count, then [`Response::FileListPage`] frames of at most
//! [`FILE_LIST_PAGE_BYTES`] each until exactly that many entries were sent.
//!
//! Every relative path that crosses the wire goes through
//! [`crate::layout::validate_relative_path`], on both sides, before it touches a filesystem.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::content::ContentHash;

/// Bumped whenever a request or response changes shape incompatibly.
/// Version 2: `GetGame` answers with a [`GameListing`] header and file-list pages.
/// Version 3: `GetBlockHashes`; downloads verify every block against them; a streamed
/// install may send `Checking` frames while the sender checks its archives.
/// Version 4: `GetGameFiles`, several whole small files in one request.
/// Version 5: the swarm: `GetAvailability` and `GetBlocks`, answered by full and partial peers.
/// Version 6: `GetAvailability` may wait (`wait_ms`) for the next verified block.
pub const PROTOCOL_VERSION: u32 = 6;
/// TLS application protocol; a peer speaking another major version fails the handshake.
pub const ALPN: &[u8] = b"lanspread/1";
/// The longest a `GetAvailability` answer is held for a block to be verified: well
/// inside a client's request deadline.
pub const MAX_AVAILABILITY_WAIT_MS: u32 = 1_000;
/// Hard limit for one control frame. No frame carries a whole file list (see [`FILE_LIST_PAGE_BYTES`]).
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Hard limit for one request frame: an id and a path (at most 4 KiB) fit many times over,
/// and a server holds at most this much per stream while a request arrives.
pub const MAX_REQUEST_LEN: usize = 64 << 10;
/// The largest range one `GetGameFileChunk` may ask for.
pub const MAX_CHUNK_LEN: u64 = 64 << 20;
/// Most paths one `GetGameFiles` may ask for. With [`MAX_REQUEST_LEN`] bounding the request,
/// a client also keeps the paths' bytes well under it.
pub const MAX_BATCH_FILES: usize = 128;
/// Most blocks one `GetBlocks` may offer the serving peer to choose from (4 bytes each
/// in the request, well under [`MAX_REQUEST_LEN`] as JSON).
pub const MAX_OFFERED_BLOCKS: usize = 256;
/// Most blocks one `Blocks` answer may carry; at most [`MAX_PICKED_BYTES`] of data.
pub const MAX_PICKED_BLOCKS: usize = 128;
/// Most bytes of block data one `Blocks` answer may carry.
pub const MAX_PICKED_BYTES: u64 = 8 << 20;
/// Largest encoded `FileListPage` frame. One entry (a path of at most 4 KiB, escaped at
/// most 6 bytes per byte, plus its size) always fits, and a 100,000-file list takes a few
/// dozen pages, so the per-frame overhead is negligible.
pub const FILE_LIST_PAGE_BYTES: usize = 256 << 10;
/// Most entries one game's file list may announce. The largest real game folders hold
/// a few hundred thousand files; a million leaves room for them while bounding what a
/// peer can make a downloader hold (about 100 MiB at a typical 100 bytes per entry)
/// and the time it may take to send (see `peer::client`).
pub const MAX_LIST_ENTRIES: u64 = 1_000_000;
/// Most path bytes one file list may carry in total: with paths of up to 4 KiB, the entry
/// limit alone would let a peer make a downloader hold gigabytes. 256 bytes per path at
/// [`MAX_LIST_ENTRIES`] entries; real paths average well under 100.
pub const MAX_LIST_PATH_BYTES: u64 = 256 << 20;
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Liveness check and handshake; the answer carries the peer's identity.
    Ping(Hello),
    ListGames,
    GetGame {
        id: String,
    },
    /// The whole file: a `FileData` header, then exactly `size` raw bytes.
    GetGameFileData {
        id: String,
        path: String,
    },
    /// A byte range: a `FileChunk` header, then exactly `len` raw bytes.
    GetGameFileChunk {
        id: String,
        path: String,
        offset: u64,
        len: u64,
    },
    /// Whole files, for games of many small ones (a request and a sync per file would cost
    /// more than the bytes): for each path in order, a `FileData` header and exactly `size`
    /// raw bytes. At most [`MAX_BATCH_FILES`] paths, and at most [`MAX_CHUNK_LEN`] bytes in
    /// all. An `Error` frame in place of a header ends the answer.
    GetGameFiles {
        id: String,
        paths: Vec<String>,
    },
    /// The block hashes of a served file of more than one block: a `BlockHashes` header,
    /// then `count` raw 32-byte hashes in block order (a file of one block is checked
    /// against its root alone).
    GetBlockHashes {
        id: String,
        path: String,
    },
    /// Which blocks of the game, as the file list with digest `list` cuts it into blocks
    /// (see `peer::swarm`), this peer holds verified: an `Availability` header, then a
    /// bitmap or the blocks verified since generation `since` (0: everything). A full peer
    /// holds them all; a peer downloading the same list holds those it has verified.
    /// When it has verified nothing since `since` (> 0), it holds the answer until it
    /// verifies a block, at most `wait_ms` (capped at [`MAX_AVAILABILITY_WAIT_MS`]).
    GetAvailability {
        id: String,
        list: ContentHash,
        since: u64,
        #[serde(default)]
        wait_ms: u32,
    },
    /// At most `want` of the `offered` blocks (global block indexes of list `list`, the
    /// downloader's preference first; at most [`MAX_OFFERED_BLOCKS`]): the serving peer picks
    /// those it has sent least (so a seed sends each block about once before any twice)
    /// among those it holds verified, and answers `Blocks` with its pick, then their bytes
    /// in that order.
    GetBlocks {
        id: String,
        list: ContentHash,
        offered: Vec<u32>,
        want: u32,
    },
    /// The game's archives expanded by the sender: `StreamInstallAccepted`, then stream frames.
    StreamInstall {
        id: String,
        version: String,
    },
}

/// Who a peer is; sent in both directions of a ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    /// Random per process; tells one peer seen at two addresses apart from two peers.
    pub peer_id: String,
    pub name: String,
    /// Changes whenever the peer's announced library changes, so others re-fetch only then.
    pub library_revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Pong(Hello),
    Games {
        games: Vec<GameSummary>,
    },
    /// The header of a file list; `entries` file descriptions follow in `FileListPage` frames.
    GameListing(GameListing),
    /// The next entries of the file list announced by `GameListing`; never empty.
    FileListPage {
        files: Vec<GameFileDescription>,
    },
    FileData {
        size: u64,
    },
    FileChunk {
        offset: u64,
        len: u64,
    },
    /// `count` block hashes follow raw; `count` is the file's block count.
    BlockHashes {
        count: u64,
    },
    /// Of list `blocks` blocks, which this peer holds: `full` (all of them, nothing
    /// follows), else, if `since` was 0 or `bitmap`, a bitmap of `blocks.div_ceil(8)` raw
    /// bytes (bit `i % 8` of byte `i / 8` is block `i`), else `added` raw u32 LE block
    /// indexes verified since `since`. `generation` is what the next request passes as `since`.
    Availability {
        blocks: u32,
        generation: u64,
        full: bool,
        bitmap: bool,
        added: u32,
    },
    /// The picked blocks (a subset of the offered ones, no repeats, at most
    /// [`MAX_PICKED_BLOCKS`] and [`MAX_PICKED_BYTES`]); their bytes follow raw, in this order.
    Blocks {
        picked: Vec<u32>,
    },
    StreamInstallAccepted,
    Error {
        kind: ErrorKind,
        message: String,
    },
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request could not be parsed (garbage, wrong shape, too large).
    BadRequest,
    /// The peers speak different protocol versions.
    ProtocolMismatch,
    /// The id is not in the serving peer's catalog or not downloaded there.
    UnknownGame,
    /// The path is not a valid relative path inside a game.
    InvalidPath,
    /// The path is valid but no such file is served.
    NotFound,
    /// The byte range lies outside the file or is too long.
    InvalidRange,
    /// The server failed for a reason of its own (e.g. an I/O error).
    Internal,
    /// The request is valid but cannot be served right now; try again later.
    Busy,
}

/// What a peer announces about one downloaded game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameSummary {
    pub id: String,
    pub name: String,
    pub version: String,
    /// Total size of the served files in bytes.
    pub size: u64,
    /// What the game's archives expand to when installed, read from their headers by the
    /// serving peer; `None` when it cannot tell (no readable archives) or is an older peer.
    #[serde(default)]
    pub expanded_size: Option<u64>,
}

/// The header of a game's file list on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameListing {
    pub id: String,
    pub version: String,
    /// How many file descriptions the pages after this header carry in total.
    pub entries: u64,
}

/// A game's whole file list, as the client assembles it from a listing and its pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameDetails {
    pub id: String,
    pub version: String,
    pub files: Vec<GameFileDescription>,
}

/// One entry of a game's file list. `path` is relative to the game root and `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GameFileDescription {
    pub path: String,
    pub size: u64,
    pub is_dir: bool,
    /// The file's content root ([`crate::content::FileHashes::root`]); `None` for
    /// directories and in lists from peers older than hashed file lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ContentHash>,
}

/// Cuts `files` into the runs a server sends as `FileListPage` frames: each run encodes to
/// at most [`FILE_LIST_PAGE_BYTES`], cut before the entry that would exceed it. One entry
/// always fits (its path is at most 4 KiB, escaped at most sixfold).
pub fn file_list_pages(files: &[GameFileDescription]) -> Result<Vec<&[GameFileDescription]>, serde_json::Error> {
    let empty = serde_json::to_vec(&Response::FileListPage { files: Vec::new() })?.len();
    let mut pages = Vec::new();
    let mut start = 0;
    let mut len = empty;
    for (index, file) in files.iter().enumerate() {
        let entry = serde_json::to_vec(file)?.len();
        // Entries after the first of a page are preceded by a comma.
        if index > start && len + 1 + entry > FILE_LIST_PAGE_BYTES {
            pages.push(&files[start..index]);
            start = index;
            len = empty;
        }
        len += usize::from(index > start) + entry;
    }
    if start < files.len() {
        pages.push(&files[start..]);
    }
    Ok(pages)
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("stream ended before a complete frame")]
    Truncated,
    #[error("stream I/O failed: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for FrameError {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(err)
        }
    }
}

/// Writes one length-prefixed JSON frame of at most [`MAX_FRAME_LEN`] bytes.
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    write_frame_within(writer, message, MAX_FRAME_LEN).await
}

/// Writes one length-prefixed JSON frame of at most `limit` bytes.
pub async fn write_frame_within<W, T>(writer: &mut W, message: &T, limit: usize) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    writer.write_all(&encode_frame_within(message, limit)?).await?;
    Ok(())
}

/// One length-prefixed JSON frame of at most `limit` bytes, ready to write (to write the
/// same frame to several readers).
pub fn encode_frame_within<T: Serialize>(message: &T, limit: usize) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(message)?;
    let too_large = || FrameError::TooLarge { len: body.len(), limit };
    if body.len() > limit {
        return Err(too_large());
    }
    let len = u32::try_from(body.len()).map_err(|_| too_large())?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads one length-prefixed JSON frame of at most [`MAX_FRAME_LEN`] bytes (a response).
pub async fn read_frame<R, T>(reader: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    read_frame_within(reader, MAX_FRAME_LEN).await
}

/// Reads one length-prefixed JSON frame of at most `limit` bytes, rejecting a longer one
/// before reading its body.
pub async fn read_frame_within<R, T>(reader: &mut R, limit: usize) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len_bytes = [0u8; 4];
    reader.read_exact(&mut len_bytes).await?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    let body = read_body(reader, len).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// Reads exactly `len` bytes (checked against a limit by the caller). The buffer grows with
/// what has arrived, never to the promised length up front: a peer that announces a large
/// frame and sends nothing more holds almost no memory.
pub async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    const FIRST_RESERVE: usize = 4 << 10;
    let mut body = Vec::new();
    let mut limited = reader.take(len as u64);
    while body.len() < len {
        if body.len() == body.capacity() {
            let grown = (body.capacity() * 2).max(FIRST_RESERVE).min(len);
            body.reserve_exact(grown - body.len());
        }
        if limited.read_buf(&mut body).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_rejected() {
        let request = Request::GetGameFileChunk {
            id: "openarena".into(),
            path: "data.pk3".into(),
            offset: 10,
            len: 20,
        };
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &request).await.unwrap();
        let decoded: Request = read_frame(&mut buffer.as_slice()).await.unwrap();
        assert_eq!(decoded, request);

        let mut oversized = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        oversized.extend_from_slice(b"{}");
        let err = read_frame::<_, Request>(&mut oversized.as_slice()).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");

        let mut request_frame = Vec::new();
        write_frame(&mut request_frame, &Request::ListGames).await.unwrap();
        let err = read_frame_within::<_, Request>(&mut request_frame.as_slice(), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { limit: 3, .. }), "{err}");

        let mut truncated = 10u32.to_be_bytes().to_vec();
        truncated.extend_from_slice(b"{}");
        let err = read_frame::<_, Request>(&mut truncated.as_slice()).await.unwrap_err();
        assert!(matches!(err, FrameError::Truncated), "{err}");

        let mut wrong_shape = Vec::new();
        write_frame(&mut wrong_shape, &serde_json::json!({"type": "get_game", "idd": 3}))
            .await
            .unwrap();
        let err = read_frame::<_, Request>(&mut wrong_shape.as_slice()).await.unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }

    #[test]
    fn file_list_pages_are_cut_before_the_limit_and_carry_every_entry_once() {
        let files: Vec<GameFileDescription> = (0..20_000)
            .map(|index| GameFileDescription {
                path: format!("dir{}/{}", index % 300, "x".repeat(index % 97 + 1)),
                size: index as u64,
                is_dir: false,
                hash: (index % 2 == 0).then(|| crate::content::ContentHash::of(&index.to_le_bytes())),
            })
            .collect();
        let pages = file_list_pages(&files).unwrap();
        assert!(pages.len() > 1, "a list over one page is split");
        for page in &pages {
            assert!(!page.is_empty());
            let frame = serde_json::to_vec(&Response::FileListPage { files: page.to_vec() }).unwrap();
            assert!(frame.len() <= FILE_LIST_PAGE_BYTES, "page of {} bytes", frame.len());
        }
        // Every page but the last was full enough that its next entry would not have fit.
        for pair in pages.windows(2) {
            let mut grown = pair[0].to_vec();
            grown.push(pair[1][0].clone());
            let frame = serde_json::to_vec(&Response::FileListPage { files: grown }).unwrap();
            assert!(frame.len() > FILE_LIST_PAGE_BYTES, "a page was cut early");
        }
        assert_eq!(pages.concat(), files);

        let longest = GameFileDescription {
            path: "\u{1}".repeat(4096),
            size: u64::MAX,
            is_dir: false,
            hash: Some(crate::content::ContentHash::of(b"longest")),
        };
        let frame = serde_json::to_vec(&Response::FileListPage { files: vec![longest] }).unwrap();
        assert!(frame.len() <= FILE_LIST_PAGE_BYTES, "one entry always fits a page");
        assert!(file_list_pages(&[]).unwrap().is_empty());
    }

    /// A reader that yields its bytes a few at a time, like a slow stream.
    struct Trickle<'a>(&'a [u8]);

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.0.len().min(buf.remaining()).min(1000);
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_body_buffer_grows_with_what_arrived_not_with_the_promise() {
        let arrived = vec![7u8; 10_000];
        let err = read_body(&mut Trickle(&arrived), MAX_FRAME_LEN).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);

        let mut probe = Trickle(&arrived);
        let body = read_body(&mut probe, arrived.len()).await.unwrap();
        assert_eq!(body, arrived);
        assert!(body.capacity() <= arrived.len(), "never reserved past the length");
    }
}
