//! The server component: accepts QUIC connections and answers requests from
//! the local game dir. It reads the library the actor last published and never
//! serves anything that library does not list (so never `local/`, reserved
//! entries, symlinks, non-catalog games, or anything outside the game root).
//!
//! Everything a connecting peer can make this peer hold is bounded (README,
//! "Hostile peers"): connections ([`admission`]), streams and buffered bytes per
//! connection (the serving transport config), a request's size and the time it
//! may take to arrive, blocking file work in flight, and a receiver's time
//! without taking bytes ([`outgoing`]).

mod admission;
mod blocks;
mod outgoing;
mod recorded;
mod trim;
mod uploads;

pub use self::blocks::{LayoutCache, SentCounts, UploadSlots};
pub use self::recorded::RecordedHashes;
pub use self::uploads::UploadLog;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Endpoint, RecvStream};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use self::admission::{Admission, Admitted};
use self::outgoing::Outgoing;
use self::trim::{FreedMemory, TRIM_INTERVAL};

use super::discovery::DiscoveredPeer;
use super::ratelimit::RateLimiter;
use super::stream_install::check::ArchiveCheck;
use super::stream_install::provider::{OutboundTransfers, StreamInstallProvider};
use super::stream_install::sink::{forward_frames, frame_channel};
use super::swarm::SwarmDownloads;
use crate::beneath::{OpenError, OpenedFile, open_file_beneath};
use crate::catalog::Catalog;
use crate::config::Limits;
use crate::layout::{validate_game_id, validate_relative_path};
use crate::library::{Game, GameDB};
use crate::proto::{
    ErrorKind, FrameError, GameFileDescription, GameListing, Hello, MAX_AVAILABILITY_WAIT_MS, MAX_BATCH_FILES,
    MAX_CHUNK_LEN, MAX_REQUEST_LEN, PROTOCOL_VERSION, Request, Response, file_list_pages, read_frame_within,
    write_frame,
};
use crate::untrusted::quote_untrusted;

/// What the server serves: the actor publishes a new one after every scan and
/// whenever an operation starts or ends.
#[derive(Debug, Clone, Default)]
pub struct ServedLibrary {
    pub game_dir: PathBuf,
    pub games: GameDB,
    /// Bumped whenever the announced summaries change; sent in every `Pong`.
    pub revision: u64,
    /// Games with a local operation running (download, install, removal...): their
    /// files may be rewritten at any moment, so every request for them gets `Busy`.
    pub busy: BTreeSet<String>,
}

pub struct ServerContext {
    pub catalog: Arc<Catalog>,
    pub library: watch::Receiver<Arc<ServedLibrary>>,
    pub peer_id: String,
    pub name: String,
    /// Peers that ping us. Every peer sends from the socket it listens on, so
    /// the source address is where it can be reached: one `--peer` suffices.
    pub inbound_peers: mpsc::Sender<DiscoveredPeer>,
    /// Shared by every upload (`--upload-limit`).
    pub upload_limit: Option<RateLimiter>,
    /// Games being streamed out, shared with the actor (which refuses local changes to them meanwhile).
    pub outbound: OutboundTransfers,
    /// File opens and reads on blocking threads at once (`[limits] file_reads_in_flight`).
    pub file_reads: Semaphore,
    /// The block hashes of the served games, as the scans recorded them.
    pub recorded: RecordedHashes,
    /// Downloads running here, whose verified blocks are served too.
    pub swarm: SwarmDownloads,
    /// Downloaders fetching blocks from this peer at once (`--upload-slots`).
    pub slots: Arc<UploadSlots>,
    /// How often each block was sent, so the least-sent go first.
    pub sent: SentCounts,
    pub layouts: LayoutCache,
    /// What was sent to whom, for the serve log and the TUI.
    pub uploads: UploadLog,
    /// Where upload reports go (the runtime's event stream).
    pub events: mpsc::Sender<super::PeerEvent>,
}

impl ServerContext {
    /// The file-read permits for `limits`.
    pub fn file_reads(limits: &Limits) -> Semaphore {
        Semaphore::new(limits.file_reads_in_flight as usize)
    }
}

/// Bytes read from disk per write to the QUIC stream; one such buffer per request being served.
const READ_BUFFER: usize = 256 << 10;
/// A request must arrive whole within this long of its stream opening.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// A connection's TLS handshake must finish within this long.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// A request waits this long for a file-read permit before it is answered `Busy`.
const FILE_READ_WAIT: Duration = Duration::from_secs(5);
/// File sends running at once on one connection, each holding a [`READ_BUFFER`]; more wait.
/// A downloader asks one peer for 4 chunks at a time (more only in its endgame).
const FILE_SENDS_PER_CONNECTION: usize = 8;
/// How long a file request waits for one of its connection's send slots before `Busy`.
const FILE_SEND_WAIT: Duration = Duration::from_secs(30);

/// QUIC error codes this server stops or resets a stream with.
const STOP_BAD_REQUEST: u32 = 1;
const RESET_FAILED: u32 = 2;
const STOP_TOO_SLOW: u32 = 3;

/// Accepts connections until the endpoint closes; each connection and stream gets its own task.
pub async fn run_server_component(endpoint: Endpoint, context: Arc<ServerContext>, limits: Limits) {
    let admission = Admission::new(limits);
    let freed = Arc::new(FreedMemory::default());
    let mut trim_tick = tokio::time::interval(TRIM_INTERVAL);
    let mut upload_tick = tokio::time::interval(uploads::REPORT_INTERVAL);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = trim_tick.tick() => freed.trim_if_freed(),
            _ = upload_tick.tick() => {
                if let Some(report) = context.uploads.report(std::time::Instant::now()) {
                    // Advisory, like progress: a slow consumer misses a report.
                    let _ = context.events.try_send(report);
                }
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                // A Retry costs the server no state and proves the source address is real,
                // so spoofed addresses cannot use up the connection limits.
                if !incoming.remote_address_validated() && incoming.may_retry() {
                    let _ = incoming.retry();
                    continue;
                }
                let remote = incoming.remote_address();
                match admission.admit(remote.ip()) {
                    Ok(admitted) => {
                        connections.spawn(serve_connection(incoming, admitted, context.clone(), freed.clone()));
                    }
                    Err(refused) => {
                        if refused.first {
                            tracing::warn!(%remote, "refusing connections from {}: {}", remote.ip(), refused.reason);
                        } else {
                            tracing::debug!(%remote, "refused a connection: {}", refused.reason);
                        }
                        incoming.refuse();
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    _admitted: Admitted,
    context: Arc<ServerContext>,
    freed: Arc<FreedMemory>,
) {
    let connection = match tokio::time::timeout(HANDSHAKE_DEADLINE, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => {
            tracing::debug!("incoming connection failed: {err}");
            return;
        }
        Err(_) => {
            tracing::debug!("incoming connection did not finish its handshake within {HANDSHAKE_DEADLINE:?}");
            return;
        }
    };
    let remote = connection.remote_address();
    let file_sends = Arc::new(Semaphore::new(FILE_SENDS_PER_CONNECTION));
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(send, recv, remote, context.clone(), file_sends.clone()));
                }
                Err(err) => {
                    tracing::debug!(%remote, "connection closed: {err}");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => freed.stream_ended(),
        }
    }
    drop(streams);
    freed.stream_ended();
}

async fn serve_stream(
    send: quinn::SendStream,
    mut recv: RecvStream,
    remote: SocketAddr,
    context: Arc<ServerContext>,
    file_sends: Arc<Semaphore>,
) {
    let mut send = Outgoing::new(send, remote);
    let arrived = tokio::time::timeout(REQUEST_DEADLINE, read_frame_within(&mut recv, MAX_REQUEST_LEN)).await;
    let request: Request = match arrived {
        Ok(Ok(request)) => request,
        Ok(Err(err @ (FrameError::TooLarge { .. } | FrameError::Malformed(_) | FrameError::Truncated))) => {
            tracing::debug!(%remote, "rejecting bad request: {err}");
            let _ = recv.stop(quinn::VarInt::from_u32(STOP_BAD_REQUEST));
            let _ = write_frame(&mut send, &Response::error(ErrorKind::BadRequest, err.to_string())).await;
            let _ = send.stream().finish();
            return;
        }
        Ok(Err(err)) => {
            tracing::debug!(%remote, "stream ended before a request: {err}");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "no whole request within {REQUEST_DEADLINE:?}; resetting the stream");
            let _ = recv.stop(quinn::VarInt::from_u32(STOP_TOO_SLOW));
            let _ = send.stream().reset(quinn::VarInt::from_u32(STOP_TOO_SLOW));
            return;
        }
    };
    // The request is whole; nothing more is read, so quinn may drop whatever else arrives.
    drop(recv);
    if let Request::Ping(hello) = &request
        && hello.protocol_version == PROTOCOL_VERSION
    {
        // Best effort: a full queue only delays learning about this peer to its next ping.
        let _ = context.inbound_peers.try_send(DiscoveredPeer {
            addr: remote,
            peer_id: hello.peer_id.clone(),
        });
    }
    if let Err(err) = handle_request(request, &mut send, remote, &context, &file_sends).await {
        tracing::debug!(%remote, "request failed mid-transfer: {err}");
        let _ = send.stream().reset(quinn::VarInt::from_u32(RESET_FAILED));
        return;
    }
    let _ = send.stream().finish();
}

/// Answers one request. An `Err` means the stream broke after the header went out.
async fn handle_request(
    request: Request,
    send: &mut Outgoing,
    remote: SocketAddr,
    context: &ServerContext,
    file_sends: &Semaphore,
) -> std::io::Result<()> {
    let library = context.library.borrow().clone();
    let response = match request {
        Request::Ping(hello) if hello.protocol_version != PROTOCOL_VERSION => Response::error(
            ErrorKind::ProtocolMismatch,
            format!(
                "this peer speaks protocol version {PROTOCOL_VERSION}, you sent {}; update the older lanspread",
                hello.protocol_version
            ),
        ),
        Request::Ping(_) => Response::Pong(Hello {
            protocol_version: PROTOCOL_VERSION,
            peer_id: context.peer_id.clone(),
            name: context.name.clone(),
            library_revision: library.revision,
        }),
        Request::ListGames => Response::Games {
            games: library.games.summaries(),
        },
        Request::GetGame { id } => match served_game(context, &library, &id) {
            Ok(game) => return send_file_list(send, game).await,
            Err(response) => response,
        },
        Request::GetGameFileData { id, path } => {
            let Ok(Ok(_slot)) = tokio::time::timeout(FILE_SEND_WAIT, file_sends.acquire()).await else {
                return write_response(send, &too_many_sends()).await;
            };
            return send_file_range(send, context, &library, &id, &path, None).await;
        }
        Request::GetGameFileChunk { id, path, offset, len } => {
            let Ok(Ok(_slot)) = tokio::time::timeout(FILE_SEND_WAIT, file_sends.acquire()).await else {
                return write_response(send, &too_many_sends()).await;
            };
            return send_file_range(send, context, &library, &id, &path, Some((offset, len))).await;
        }
        Request::GetGameFiles { id, paths } => {
            let Ok(Ok(_slot)) = tokio::time::timeout(FILE_SEND_WAIT, file_sends.acquire()).await else {
                return write_response(send, &too_many_sends()).await;
            };
            return send_files(send, context, &library, &id, &paths).await;
        }
        Request::GetBlockHashes { id, path } => return send_block_hashes(send, context, &library, &id, &path).await,
        Request::GetAvailability {
            id,
            list,
            since,
            wait_ms,
        } => {
            let wait = Duration::from_millis(u64::from(wait_ms.min(MAX_AVAILABILITY_WAIT_MS)));
            return blocks::send_availability(send, context, &library, &id, &list, since, wait).await;
        }
        Request::GetBlocks {
            id,
            list,
            offered,
            want,
        } => {
            let Ok(Ok(_slot)) = tokio::time::timeout(FILE_SEND_WAIT, file_sends.acquire()).await else {
                return write_response(send, &too_many_sends()).await;
            };
            let ask = blocks::BlockAsk {
                list: &list,
                offered: &offered,
                want,
            };
            return blocks::send_blocks(send, context, &library, remote, &id, ask).await;
        }
        Request::StreamInstall { id, version } => return stream_install(send, context, &library, &id, &version).await,
    };
    write_response(send, &response).await
}

/// Sends a game's file list: a `GameListing` header, then pages of at most
/// `FILE_LIST_PAGE_BYTES` each, so no frame grows with the game. The list is the
/// library snapshot taken when the request arrived, like every answer.
async fn send_file_list(send: &mut Outgoing, game: &Game) -> std::io::Result<()> {
    let listing = GameListing {
        id: game.id.clone(),
        version: game.version.as_ref().map(ToString::to_string).unwrap_or_default(),
        entries: game.files.len() as u64,
    };
    let pages = file_list_pages(&game.files).map_err(std::io::Error::other)?;
    write_response(send, &Response::GameListing(listing)).await?;
    for page in pages {
        write_response(send, &Response::FileListPage { files: page.to_vec() }).await?;
    }
    Ok(())
}

fn too_many_sends() -> Response {
    let message = format!("{FILE_SENDS_PER_CONNECTION} files are being sent on this connection; try again shortly");
    Response::error(ErrorKind::Busy, message)
}

async fn write_response(send: &mut Outgoing, response: &Response) -> std::io::Result<()> {
    write_frame(send, response).await.map_err(std::io::Error::other)
}

/// The game if it is a catalog id this peer has downloaded; otherwise the error to send.
fn served_game<'a>(context: &ServerContext, library: &'a ServedLibrary, id: &str) -> Result<&'a Game, Response> {
    let unknown = || {
        Response::error(
            ErrorKind::UnknownGame,
            format!("this peer does not share a game {}", quote_untrusted(id)),
        )
    };
    if validate_game_id(id).is_err() || !context.catalog.contains(id) {
        return Err(unknown());
    }
    if library.busy.contains(id) {
        let message = format!("this peer is changing {id} right now; ask another peer");
        return Err(Response::error(ErrorKind::Busy, message));
    }
    library
        .games
        .get(id)
        .filter(|game| game.is_downloaded())
        .ok_or_else(unknown)
}

/// Sends a header then the raw bytes of a whole file (`range` = None) or of a range.
async fn send_file_range(
    send: &mut Outgoing,
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    path: &str,
    range: Option<(u64, u64)>,
) -> std::io::Result<()> {
    let (file, size) = match open_current_file(context, library, id, path, false).await {
        Ok((file, size, _)) => (file, size),
        Err(response) => return write_response(send, &response).await,
    };
    let (offset, len, header) = match range {
        None => (0, size, Response::FileData { size }),
        Some((offset, len)) => {
            let in_bounds = offset.checked_add(len).is_some_and(|end| end <= size);
            if !in_bounds || len > MAX_CHUNK_LEN {
                let message =
                    format!("range {offset}+{len} is outside {path} ({size} bytes) or over {MAX_CHUNK_LEN} bytes");
                return write_response(send, &Response::error(ErrorKind::InvalidRange, message)).await;
            }
            (offset, len, Response::FileChunk { offset, len })
        }
    };
    write_response(send, &header).await?;
    send_bytes(send, context, Sending::Served(id), path, file, offset, len).await
}

/// Answers `GetGameFiles`: each file's `FileData` header and bytes in turn. The paths are
/// checked against the served list and their listed sizes summed before anything is
/// opened; a file that cannot be served ends the answer with its `Error`.
async fn send_files(
    send: &mut Outgoing,
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    paths: &[String],
) -> std::io::Result<()> {
    let game = match served_game(context, library, id) {
        Ok(game) => game,
        Err(response) => return write_response(send, &response).await,
    };
    if paths.is_empty() || paths.len() > MAX_BATCH_FILES {
        let message = format!("asked for {} files at once; 1 to {MAX_BATCH_FILES} may be", paths.len());
        return write_response(send, &Response::error(ErrorKind::BadRequest, message)).await;
    }
    let listed: u64 = paths
        .iter()
        .filter_map(|path| listed_file(game, path))
        .map(|file| file.size)
        .fold(0, u64::saturating_add);
    if listed > MAX_CHUNK_LEN {
        let message = format!("asked for {listed} bytes at once, over {MAX_CHUNK_LEN}");
        return write_response(send, &Response::error(ErrorKind::InvalidRange, message)).await;
    }
    for path in paths {
        let (file, size) = match open_current_file(context, library, id, path, false).await {
            Ok((file, size, _)) => (file, size),
            Err(response) => return write_response(send, &response).await,
        };
        write_response(send, &Response::FileData { size }).await?;
        send_bytes(send, context, Sending::Served(id), path, file, 0, size).await?;
    }
    Ok(())
}

/// Whose bytes a send carries.
#[derive(Clone, Copy)]
enum Sending<'a> {
    /// A served game's: the send fails if the game starts changing meanwhile.
    Served(&'a str),
    /// A download's own verified blocks, which are never rewritten.
    Downloading(&'a str),
}

/// Sends `len` raw bytes of `file` from `offset`, read on blocking threads, through the
/// upload cap, and counts them in the upload log.
async fn send_bytes(
    send: &mut Outgoing,
    context: &ServerContext,
    sending: Sending<'_>,
    path: &str,
    file: std::fs::File,
    offset: u64,
    len: u64,
) -> std::io::Result<()> {
    let file = Arc::new(file);
    let mut position = offset;
    let end = offset + len;
    let mut buffer = vec![0u8; READ_BUFFER.min(usize::try_from(len).unwrap_or(READ_BUFFER)).max(1)];
    while position < end {
        let want = buffer.len().min(usize::try_from(end - position).unwrap_or(usize::MAX));
        let reader = file.clone();
        let (returned, read) = read_file(context, move || {
            let read = reader.read_at(&mut buffer[..want], position);
            (buffer, read)
        })
        .await?;
        buffer = returned;
        let read = read?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{path} shrank while being sent"),
            ));
        }
        // Checked after the read: an operation publishes `busy` before it writes, so bytes
        // read before it was published are the old content, and later ones are never sent.
        if let Sending::Served(id) = sending
            && context.library.borrow().busy.contains(id)
        {
            return Err(std::io::Error::other(format!(
                "{id} started changing while {path} was sent"
            )));
        }
        if let Some(limiter) = &context.upload_limit {
            limiter.acquire(read).await;
        }
        send.write_all(&buffer[..read]).await?;
        let (Sending::Served(id) | Sending::Downloading(id)) = sending;
        context.uploads.sent(id, send.to(), read as u64);
        position += read as u64;
    }
    Ok(())
}

/// Runs blocking file work (an open, a read) on tokio's blocking pool, at most
/// `file_reads_in_flight` at once: a file that blocks (a FIFO slipped past the checks, a
/// hung network filesystem) can tie up those threads, never the whole pool.
async fn read_file<T: Send + 'static>(
    context: &ServerContext,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let permit = tokio::time::timeout(FILE_READ_WAIT, context.file_reads.acquire())
        .await
        .map_err(|_| std::io::Error::other(format!("no file read finished within {FILE_READ_WAIT:?}")))?
        .map_err(std::io::Error::other)?;
    let result = tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| std::io::Error::other(format!("a file read panicked: {err}")));
    drop(permit);
    result
}

/// Expands the game's archives onto the stream. The provider runs on a blocking
/// thread holding the game's transfer guard; `forward_frames` makes sure it ends
/// (and drops the guard) when the receiver goes away.
async fn stream_install(
    send: &mut Outgoing,
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    version: &str,
) -> std::io::Result<()> {
    let game = match served_game(context, library, id) {
        Ok(game) => game,
        Err(response) => return write_response(send, &response).await,
    };
    let ours = game.version.as_ref().map(ToString::to_string).unwrap_or_default();
    if ours != version {
        let message = format!("this peer has {id} {ours}, not {}", quote_untrusted(version));
        return write_response(send, &Response::error(ErrorKind::UnknownGame, message)).await;
    }
    let Some(guard) = context.outbound.try_acquire(id) else {
        let message = format!("{id} is already being streamed from this peer; try again shortly");
        return write_response(send, &Response::error(ErrorKind::Busy, message)).await;
    };
    // Accepted before the archives are checked: checking a big game takes longer than a
    // request may wait for its answer, so a failed check is an `Error` frame, sent before any entry.
    write_response(send, &Response::StreamInstallAccepted).await?;
    let (game_dir, state_dir, id_owned) = (
        library.game_dir.clone(),
        context.recorded.state_dir().to_path_buf(),
        id.to_owned(),
    );
    let root_files: Vec<_> = game
        .files
        .iter()
        .filter(|file| !file.path.contains('/'))
        .cloned()
        .collect();
    let (sink, source) = frame_channel();
    let producer = tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let game_root = game_dir.join(&id_owned);
        let scratch = tempfile::Builder::new()
            .prefix(".lanspread-stream-")
            .tempdir_in(&game_root)?;
        StreamInstallProvider {
            game_root: &game_root,
            scratch_dir: scratch.path(),
            check: ArchiveCheck {
                state_dir: &state_dir,
                game_dir: &game_dir,
                id: &id_owned,
                files: &root_files,
            },
        }
        .run(&sink)
        .map_err(std::io::Error::other)
    });
    match forward_frames(source, send, producer, context.upload_limit.as_ref()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            tracing::warn!(game = id, "streamed install failed at this sender: {err}");
            Ok(())
        }
        Err(err) => Err(std::io::Error::other(err)),
    }
}

/// Sends the recorded block hashes of a served file: a `BlockHashes` header, then the raw hashes.
async fn send_block_hashes(
    send: &mut Outgoing,
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    path: &str,
) -> std::io::Result<()> {
    let blocks = match open_current_file(context, library, id, path, true).await {
        Ok((_, _, blocks)) => blocks,
        Err(response) => return write_response(send, &response).await,
    };
    write_response(
        send,
        &Response::BlockHashes {
            count: blocks.len() as u64 / 32,
        },
    )
    .await?;
    send.write_all(&blocks).await
}

/// Opens a served file and checks that it is still the version whose block hashes are on
/// record. The file must be listed by the served library and is opened beneath the game dir
/// with no symlink at any component, only if it is a regular file (see [`open_file_beneath`]):
/// the listing never contains symlinks, but anything could have replaced a file since the
/// scan. A file changed since it was hashed is not served (its listed root would be a lie)
/// until a rescan hashes it again. Returns the handle, its length and, if `want_blocks`, the
/// recorded block hashes, raw (else nothing). One blocking hop: the open, then the check of
/// the handle it opened.
async fn open_current_file(
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    path: &str,
    want_blocks: bool,
) -> Result<(std::fs::File, u64, Vec<u8>), Response> {
    let game = served_game(context, library, id)?;
    validate_relative_path(path).map_err(|err| Response::error(ErrorKind::InvalidPath, err.to_string()))?;
    let not_found = || {
        Response::error(
            ErrorKind::NotFound,
            format!("{id} has no file {}", quote_untrusted(path)),
        )
    };
    let changed = || {
        let message = format!("{id}/{path} changed on this peer since it was hashed; ask another peer");
        Response::error(ErrorKind::NotFound, message)
    };
    let listed = listed_file(game, path).ok_or_else(not_found)?;
    let root = listed.hash.ok_or_else(changed)?;
    let (recorded, game_dir) = (context.recorded.clone(), library.game_dir.clone());
    let (owned_id, owned_path) = (id.to_owned(), path.to_owned());
    let opened = read_file(context, move || {
        let OpenedFile { file, len } = open_file_beneath(&game_dir, &format!("{owned_id}/{owned_path}"))?;
        let blocks = recorded.with_current(&game_dir, &owned_id, &owned_path, &root, &file, |blocks| {
            if want_blocks {
                blocks.blocks.iter().flat_map(|block| *block.as_bytes()).collect()
            } else {
                Vec::new()
            }
        });
        Ok::<_, OpenError>((file, len, blocks))
    })
    .await
    .map_err(|err| Response::error(ErrorKind::Busy, format!("this peer cannot read files right now: {err}")))?;
    match opened {
        Ok((file, len, Ok(Some(blocks)))) => Ok((file, len, blocks)),
        Ok((_, _, Ok(None))) => {
            tracing::info!(game = id, "not serving {path}: it changed since it was hashed");
            Err(changed())
        }
        Ok((_, _, Err(err))) => {
            tracing::warn!(game = id, "cannot read the recorded block hashes of {path}: {err}");
            Err(changed())
        }
        Err(OpenError::InvalidPath(err)) => Err(Response::error(ErrorKind::InvalidPath, err.to_string())),
        Err(err) => {
            tracing::debug!(game = id, "not serving a listed file: {err}");
            Err(not_found())
        }
    }
}

/// The served file `path` of `game`, if listed (a directory is not a file).
fn listed_file<'a>(game: &'a Game, path: &str) -> Option<&'a GameFileDescription> {
    // `files` is sorted by path: a game of 100,000 files must not cost 100,000 comparisons per request.
    let index = game.files.binary_search_by(|file| file.path.as_str().cmp(path)).ok()?;
    Some(&game.files[index]).filter(|file| !file.is_dir)
}
