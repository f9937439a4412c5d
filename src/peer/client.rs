//! Requests to remote peers. One cached QUIC connection per peer address;
//! one bidirectional stream per request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, Endpoint, RecvStream};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::stream_install::wire::{StreamFrame, StreamFrameError, read_stream_frame};
use super::swarm::{Availability, Bitmap, BlockLayout};
use super::transport::SERVER_NAME;
use crate::content::{ContentHash, FileHashes};
use crate::layout::validate_relative_path;
use crate::proto::{
    ErrorKind, FILE_LIST_PAGE_BYTES, FrameError, GameDetails, GameFileDescription, GameSummary, Hello, MAX_CHUNK_LEN,
    MAX_LIST_ENTRIES, MAX_LIST_PATH_BYTES, MAX_PICKED_BLOCKS, MAX_PICKED_BYTES, PROTOCOL_VERSION, Request, Response,
    read_frame, read_frame_within, write_frame,
};
use crate::untrusted::untrusted_message;

/// How long connecting plus one request's header exchange may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Each page of a file list must arrive within this long of the previous one.
const PAGE_TIMEOUT: Duration = REQUEST_TIMEOUT;
/// Entries of a file list a peer must send per second at least, on top of
/// [`REQUEST_TIMEOUT`]: a LAN moves a 100,000-entry list (about 10 MB) in well under a
/// second, so 10,000 a second only trips on a peer that dribbles, and even a
/// [`MAX_LIST_ENTRIES`] list is over within two minutes.
const LIST_ENTRIES_PER_SECOND: u64 = 10_000;
/// Largest piece read from a stream at once.
const COPY_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("{addr} closed the connection (it shut down)")]
    Closed { addr: SocketAddr },
    #[error("{addr} did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout { addr: SocketAddr },
    #[error("connection to {addr} failed: {reason}")]
    Stream { addr: SocketAddr, reason: String },
    #[error("bad frame from {addr}: {source}")]
    Frame { addr: SocketAddr, source: FrameError },
    #[error("{addr} refused the request ({kind:?}): {message}")]
    Remote {
        addr: SocketAddr,
        kind: ErrorKind,
        message: String,
    },
    #[error("{addr} speaks protocol version {theirs}, we speak {PROTOCOL_VERSION}; update the older lanspread")]
    ProtocolMismatch { addr: SocketAddr, theirs: u32 },
    #[error("{addr} sent an invalid answer: {reason}")]
    InvalidResponse { addr: SocketAddr, reason: String },
    #[error("peer {addr} lists {entries} files for {id}, over the {MAX_LIST_ENTRIES}-file limit")]
    ListTooLong { addr: SocketAddr, id: String, entries: u64 },
    #[error("peer {addr} lists over {MAX_LIST_PATH_BYTES} bytes of paths for {id}, over the limit")]
    ListPathsTooLong { addr: SocketAddr, id: String },
    #[error("peer {addr} sent more than the {announced} files it announced for {id}")]
    ListOverrun {
        addr: SocketAddr,
        id: String,
        announced: u64,
    },
    #[error("peer {addr} sent {received} of the {announced} files of {id} and then nothing within {waited:?}")]
    ListTimeout {
        addr: SocketAddr,
        id: String,
        announced: u64,
        received: u64,
        waited: Duration,
    },
    #[error("writing received bytes failed: {0}")]
    Sink(std::io::Error),
}

impl ClientError {
    /// A word or two for a column: why a peer did not answer.
    pub fn short(&self) -> &'static str {
        match self {
            ClientError::Timeout { .. } | ClientError::ListTimeout { .. } => "no answer",
            ClientError::Connect { .. } | ClientError::Stream { .. } => "cannot connect",
            ClientError::Closed { .. } => "shut down",
            ClientError::ProtocolMismatch { .. } => "other version",
            ClientError::Remote { .. } => "refused",
            _ => "bad answer",
        }
    }
}

/// A cheap, cloneable client sharing one connection per peer.
#[derive(Clone)]
pub struct PeerClient {
    endpoint: Endpoint,
    connections: Arc<Mutex<HashMap<SocketAddr, Connection>>>,
}

impl PeerClient {
    pub fn new(endpoint: Endpoint) -> Self {
        PeerClient {
            endpoint,
            connections: Arc::default(),
        }
    }

    async fn connection(&self, addr: SocketAddr) -> Result<Connection, ClientError> {
        let cached = self.lock_connections().get(&addr).cloned();
        if let Some(connection) = cached {
            match connection.close_reason() {
                None => return Ok(connection),
                Some(quinn::ConnectionError::ApplicationClosed(_)) => {
                    // The peer said goodbye: report it once, reconnect on the next request.
                    self.lock_connections().remove(&addr);
                    return Err(ClientError::Closed { addr });
                }
                Some(_) => {}
            }
        }
        let connect_error = |reason: String| ClientError::Connect { addr, reason };
        let connecting = self
            .endpoint
            .connect(addr, SERVER_NAME)
            .map_err(|err| connect_error(err.to_string()))?;
        let connection = tokio::time::timeout(REQUEST_TIMEOUT, connecting)
            .await
            .map_err(|_| ClientError::Timeout { addr })?
            .map_err(|err| connect_error(describe_connection_error(&err)))?;
        self.lock_connections().insert(addr, connection.clone());
        Ok(connection)
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Connection>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops the cached connection to a peer that left.
    pub fn forget(&self, addr: SocketAddr) {
        if let Some(connection) = self.lock_connections().remove(&addr) {
            connection.close(quinn::VarInt::from_u32(0), b"peer left");
        }
    }

    /// Sends `request` on a new stream and reads the response header.
    async fn request(&self, addr: SocketAddr, request: &Request) -> Result<(Response, RecvStream), ClientError> {
        let exchange = async {
            let connection = self.connection(addr).await?;
            let stream_error = |err: &dyn std::fmt::Display| ClientError::Stream {
                addr,
                reason: err.to_string(),
            };
            let (mut send, mut recv) = connection.open_bi().await.map_err(|err| match err {
                quinn::ConnectionError::ApplicationClosed(_) => ClientError::Closed { addr },
                err => stream_error(&err),
            })?;
            write_frame(&mut send, request)
                .await
                .map_err(|source| ClientError::Frame { addr, source })?;
            send.finish().map_err(|e| stream_error(&e))?;
            let response: Response = read_frame(&mut recv)
                .await
                .map_err(|source| ClientError::Frame { addr, source })?;
            Ok((response, recv))
        };
        let (response, recv) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout { addr })??;
        match response {
            Response::Error { kind, message } => Err(ClientError::Remote {
                addr,
                kind,
                message: untrusted_message(&message),
            }),
            response => Ok((response, recv)),
        }
    }

    pub async fn ping(&self, addr: SocketAddr, hello: &Hello) -> Result<Hello, ClientError> {
        match self.request(addr, &Request::Ping(hello.clone())).await? {
            (Response::Pong(theirs), _) if theirs.protocol_version != PROTOCOL_VERSION => {
                Err(ClientError::ProtocolMismatch {
                    addr,
                    theirs: theirs.protocol_version,
                })
            }
            (Response::Pong(theirs), _) => Ok(theirs),
            (other, _) => Err(unexpected(addr, &other)),
        }
    }

    pub async fn list_games(&self, addr: SocketAddr) -> Result<Vec<GameSummary>, ClientError> {
        match self.request(addr, &Request::ListGames).await? {
            (Response::Games { games }, _) => Ok(games),
            (other, _) => Err(unexpected(addr, &other)),
        }
    }

    /// The file list and version of one game; every path is validated before it is returned.
    /// The list arrives as a `GameListing` header and pages (see [`crate::proto`]); its
    /// announced length is checked against [`MAX_LIST_ENTRIES`] before any page is read,
    /// and memory grows only with the entries that arrived.
    pub async fn get_game(&self, addr: SocketAddr, id: &str) -> Result<GameDetails, ClientError> {
        let (listing, mut recv) = match self.request(addr, &Request::GetGame { id: id.to_owned() }).await? {
            (Response::GameListing(listing), recv) => (listing, recv),
            (other, _) => return Err(unexpected(addr, &other)),
        };
        if listing.id != id {
            return Err(ClientError::InvalidResponse {
                addr,
                reason: format!("asked for {id}, got {}", listing.id),
            });
        }
        let announced = listing.entries;
        if announced > MAX_LIST_ENTRIES {
            return Err(ClientError::ListTooLong {
                addr,
                id: id.to_owned(),
                entries: announced,
            });
        }
        let list_time = REQUEST_TIMEOUT + Duration::from_secs(announced / LIST_ENTRIES_PER_SECOND);
        let deadline = tokio::time::Instant::now() + list_time;
        let mut files: Vec<GameFileDescription> = Vec::new();
        let mut path_bytes = 0u64;
        while (files.len() as u64) < announced {
            let page_deadline = deadline.min(tokio::time::Instant::now() + PAGE_TIMEOUT);
            let page = tokio::time::timeout_at(page_deadline, read_frame_within(&mut recv, FILE_LIST_PAGE_BYTES))
                .await
                .map_err(|_| ClientError::ListTimeout {
                    addr,
                    id: id.to_owned(),
                    announced,
                    received: files.len() as u64,
                    waited: if page_deadline == deadline {
                        list_time
                    } else {
                        PAGE_TIMEOUT
                    },
                })?
                .map_err(|source| ClientError::Frame { addr, source })?;
            let page = match page {
                Response::FileListPage { files: page } if !page.is_empty() => page,
                Response::FileListPage { .. } => {
                    return Err(ClientError::InvalidResponse {
                        addr,
                        reason: format!("an empty file-list page for {id}"),
                    });
                }
                other => return Err(unexpected(addr, &other)),
            };
            if files.len() as u64 + page.len() as u64 > announced {
                return Err(ClientError::ListOverrun {
                    addr,
                    id: id.to_owned(),
                    announced,
                });
            }
            for file in &page {
                validate_relative_path(&file.path).map_err(|err| ClientError::InvalidResponse {
                    addr,
                    reason: err.to_string(),
                })?;
                path_bytes += file.path.len() as u64;
            }
            if path_bytes > MAX_LIST_PATH_BYTES {
                return Err(ClientError::ListPathsTooLong {
                    addr,
                    id: id.to_owned(),
                });
            }
            files.extend(page);
        }
        Ok(GameDetails {
            id: listing.id,
            version: listing.version,
            files,
        })
    }

    /// Requests bytes `offset..offset+len` of a served file; the reader yields exactly `len` bytes.
    pub async fn open_file_chunk(
        &self,
        addr: SocketAddr,
        id: &str,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<ChunkReader, ClientError> {
        validate_relative_path(path).map_err(|err| ClientError::InvalidResponse {
            addr,
            reason: err.to_string(),
        })?;
        if len > MAX_CHUNK_LEN {
            return Err(ClientError::InvalidResponse {
                addr,
                reason: format!("chunk of {len} bytes is over the {MAX_CHUNK_LEN}-byte limit"),
            });
        }
        let request = Request::GetGameFileChunk {
            id: id.to_owned(),
            path: path.to_owned(),
            offset,
            len,
        };
        match self.request(addr, &request).await? {
            (Response::FileChunk { offset: o, len: l }, recv) if o == offset && l == len => {
                Ok(ChunkReader::new(addr, recv, len))
            }
            (other, _) => Err(unexpected(addr, &other)),
        }
    }

    /// Requests a whole served file; the reader yields exactly the size its header announced.
    pub async fn open_file_data(&self, addr: SocketAddr, id: &str, path: &str) -> Result<ChunkReader, ClientError> {
        validate_relative_path(path).map_err(|err| ClientError::InvalidResponse {
            addr,
            reason: err.to_string(),
        })?;
        let request = Request::GetGameFileData {
            id: id.to_owned(),
            path: path.to_owned(),
        };
        match self.request(addr, &request).await? {
            (Response::FileData { size }, recv) => Ok(ChunkReader::new(addr, recv, size)),
            (other, _) => Err(unexpected(addr, &other)),
        }
    }

    /// The block hashes of a served file of `expected` blocks (known from the validated file
    /// list). A peer announcing another count is refused before anything is read, and the
    /// hashes must arrive within [`REQUEST_TIMEOUT`] after the header; their buffer grows as
    /// they arrive. The caller checks them against the file's root.
    pub async fn get_block_hashes(
        &self,
        addr: SocketAddr,
        id: &str,
        path: &str,
        expected: u64,
    ) -> Result<FileHashes, ClientError> {
        validate_relative_path(path).map_err(|err| ClientError::InvalidResponse {
            addr,
            reason: err.to_string(),
        })?;
        let request = Request::GetBlockHashes {
            id: id.to_owned(),
            path: path.to_owned(),
        };
        let recv = match self.request(addr, &request).await? {
            (Response::BlockHashes { count }, recv) if count == expected => recv,
            (Response::BlockHashes { count }, _) => {
                return Err(ClientError::InvalidResponse {
                    addr,
                    reason: format!("announced {count} block hashes for {path}, which has {expected} blocks"),
                });
            }
            (other, _) => return Err(unexpected(addr, &other)),
        };
        let mut reader = ChunkReader::new(addr, recv, expected * 32);
        let mut raw = Vec::new();
        let mut blocks = Vec::new();
        let read_all = async {
            while let Some(piece) = reader.next_piece(COPY_BUFFER).await? {
                raw.extend_from_slice(&piece);
                let whole = raw.len() / 32 * 32;
                blocks.extend(raw[..whole].chunks_exact(32).map(|bytes| {
                    let mut hash = [0; 32];
                    hash.copy_from_slice(bytes);
                    ContentHash(hash)
                }));
                raw.drain(..whole);
            }
            Ok::<_, ClientError>(())
        };
        tokio::time::timeout(REQUEST_TIMEOUT, read_all)
            .await
            .map_err(|_| ClientError::Timeout { addr })??;
        Ok(FileHashes { blocks })
    }

    /// Which blocks of list `list` (of `blocks` blocks, known from the validated list) `addr`
    /// holds, since generation `since`. The answer must describe exactly that many blocks and
    /// arrive within [`REQUEST_TIMEOUT`]; what follows its header is at most a bitmap's or
    /// `blocks` indexes' worth, each checked.
    pub async fn get_availability(
        &self,
        addr: SocketAddr,
        id: &str,
        list: &ContentHash,
        since: u64,
        blocks: u32,
        wait: Duration,
    ) -> Result<Availability, ClientError> {
        let request = Request::GetAvailability {
            id: id.to_owned(),
            list: *list,
            since,
            wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        let invalid = |reason: String| ClientError::InvalidResponse { addr, reason };
        let (header, recv) = self.request(addr, &request).await?;
        let Response::Availability {
            blocks: announced,
            generation,
            full,
            bitmap,
            added,
        } = header
        else {
            return Err(unexpected(addr, &header));
        };
        if announced != blocks {
            return Err(invalid(format!("announced {announced} blocks; the list has {blocks}")));
        }
        if full {
            return Ok(Availability::Full);
        }
        let len = if bitmap {
            u64::from(blocks).div_ceil(8)
        } else if added <= blocks {
            u64::from(added) * 4
        } else {
            return Err(invalid(format!("announced {added} new blocks of {blocks}")));
        };
        let mut reader = ChunkReader::new(addr, recv, len);
        let mut raw = Vec::new();
        let read_all = async {
            while let Some(piece) = reader.next_piece(COPY_BUFFER).await? {
                raw.extend_from_slice(&piece);
            }
            Ok::<_, ClientError>(())
        };
        tokio::time::timeout(REQUEST_TIMEOUT, read_all)
            .await
            .map_err(|_| ClientError::Timeout { addr })??;
        if bitmap {
            let bitmap =
                Bitmap::from_bytes(blocks, raw).ok_or_else(|| invalid("a bitmap with bits past its end".into()))?;
            return Ok(Availability::Bitmap { generation, bitmap });
        }
        let added: Vec<u32> = raw
            .chunks_exact(4)
            .map(|bytes| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            .collect();
        if added.iter().any(|block| *block >= blocks) {
            return Err(invalid(format!("named a block past the list's {blocks}")));
        }
        Ok(Availability::Added {
            generation,
            blocks: added,
        })
    }

    /// Offers `addr` the blocks `offered` of list `list`, of which it may pick `want`;
    /// returns the ones it picked and a reader of their bytes, in that order. The pick must
    /// be offered blocks, each once, at most `want` and [`MAX_PICKED_BYTES`] (lengths from
    /// `layout`).
    pub async fn open_blocks(
        &self,
        addr: SocketAddr,
        id: &str,
        offer: &BlockOffer<'_>,
        layout: &BlockLayout,
    ) -> Result<(Vec<u32>, ChunkReader), ClientError> {
        let (list, offered, want) = (offer.list, offer.offered, offer.want);
        let request = Request::GetBlocks {
            id: id.to_owned(),
            list: *list,
            offered: offered.to_vec(),
            want,
        };
        let invalid = |reason: &str| ClientError::InvalidResponse {
            addr,
            reason: reason.to_owned(),
        };
        let (header, recv) = self.request(addr, &request).await?;
        let Response::Blocks { picked } = header else {
            return Err(unexpected(addr, &header));
        };
        if picked.is_empty() || picked.len() > MAX_PICKED_BLOCKS || picked.len() > want as usize {
            return Err(invalid("picked no blocks, or too many"));
        }
        let offered: std::collections::HashSet<u32> = offered.iter().copied().collect();
        let mut seen = std::collections::HashSet::new();
        if !picked
            .iter()
            .all(|block| offered.contains(block) && seen.insert(*block))
        {
            return Err(invalid("picked a block it was not offered, or one twice"));
        }
        let len: u64 = picked.iter().filter_map(|block| layout.block_len(*block)).sum();
        if len > MAX_PICKED_BYTES {
            return Err(invalid("picked more bytes than one answer may carry"));
        }
        Ok((picked, ChunkReader::new(addr, recv, len)))
    }

    /// Asks `addr` to stream `id` at `version` expanded; frames follow on the returned reader.
    pub async fn open_stream_install(
        &self,
        addr: SocketAddr,
        id: &str,
        version: &str,
    ) -> Result<StreamInstallReader, ClientError> {
        let request = Request::StreamInstall {
            id: id.to_owned(),
            version: version.to_owned(),
        };
        match self.request(addr, &request).await? {
            (Response::StreamInstallAccepted, recv) => Ok(StreamInstallReader { addr, recv }),
            (other, _) => Err(unexpected(addr, &other)),
        }
    }

    /// Copies bytes `offset..offset+len` of a served file into `sink`; returns `len`.
    pub async fn get_file_chunk<W>(
        &self,
        addr: SocketAddr,
        id: &str,
        path: &str,
        offset: u64,
        len: u64,
        sink: &mut W,
    ) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin,
    {
        self.open_file_chunk(addr, id, path, offset, len)
            .await?
            .copy_to(sink)
            .await
    }

    /// Copies a whole served file into `sink`; returns its size.
    pub async fn get_file_data<W>(
        &self,
        addr: SocketAddr,
        id: &str,
        path: &str,
        sink: &mut W,
    ) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin,
    {
        self.open_file_data(addr, id, path).await?.copy_to(sink).await
    }
}

/// What a `GetBlocks` offers: blocks of list `list`, of which the source may pick `want`.
pub struct BlockOffer<'a> {
    pub list: &'a ContentHash,
    pub offered: &'a [u32],
    pub want: u32,
}

/// The frames of a streamed install after its `StreamInstallAccepted` header.
pub struct StreamInstallReader {
    addr: SocketAddr,
    recv: RecvStream,
}

impl StreamInstallReader {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next frame (paths already validated); `None` when the sender finished the stream.
    pub async fn next_frame(&mut self) -> Result<Option<StreamFrame>, StreamFrameError> {
        read_stream_frame(&mut self.recv).await
    }

    /// Tells the sender to stop: its next write fails and its producer ends.
    pub fn cancel(mut self) {
        let _ = self.recv.stop(quinn::VarInt::from_u32(0));
    }
}

/// The raw bytes after a `FileChunk`/`FileData` header. A peer that sends fewer
/// or more bytes than it announced is an error, never a short or long file.
pub struct ChunkReader {
    addr: SocketAddr,
    recv: RecvStream,
    len: u64,
    remaining: u64,
}

impl ChunkReader {
    fn new(addr: SocketAddr, recv: RecvStream, len: u64) -> Self {
        ChunkReader {
            addr,
            recv,
            len,
            remaining: len,
        }
    }

    /// The number of bytes this reader yields in total.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next piece of at most `max` bytes; `None` once all bytes arrived and the stream ended.
    pub async fn next_piece(&mut self, max: usize) -> Result<Option<Bytes>, ClientError> {
        let addr = self.addr;
        let stream_error = |err: quinn::ReadError| ClientError::Stream {
            addr,
            reason: err.to_string(),
        };
        if self.remaining == 0 {
            return match self.recv.read_chunk(1, true).await.map_err(stream_error)? {
                None => Ok(None),
                Some(_) => Err(ClientError::InvalidResponse {
                    addr,
                    reason: format!("sent more than the announced {} bytes", self.len),
                }),
            };
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(max.max(1));
        match self.recv.read_chunk(want, true).await.map_err(stream_error)? {
            Some(chunk) => {
                self.remaining -= chunk.bytes.len() as u64;
                Ok(Some(chunk.bytes))
            }
            None => Err(ClientError::InvalidResponse {
                addr,
                reason: format!(
                    "stream ended {} bytes short of the announced {}",
                    self.remaining, self.len
                ),
            }),
        }
    }

    /// Copies everything into `sink`; returns the byte count.
    pub async fn copy_to<W>(mut self, sink: &mut W) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin,
    {
        while let Some(piece) = self.next_piece(COPY_BUFFER).await? {
            sink.write_all(&piece).await.map_err(ClientError::Sink)?;
        }
        sink.flush().await.map_err(ClientError::Sink)?;
        Ok(self.len)
    }
}

fn unexpected(addr: SocketAddr, response: &Response) -> ClientError {
    let kind = serde_json::to_value(response)
        .ok()
        .and_then(|value| value.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    ClientError::InvalidResponse {
        addr,
        reason: format!("unexpected {kind} response"),
    }
}

fn describe_connection_error(err: &quinn::ConnectionError) -> String {
    let text = err.to_string();
    if text.contains("no application protocol") || text.contains("120") {
        format!("{text} (the peer runs an incompatible lanspread version)")
    } else if text.contains("certificate") {
        format!("{text} (the peer uses different certificates; see certs/README.md)")
    } else {
        text
    }
}
