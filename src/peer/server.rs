//! The server component: accepts QUIC connections and answers requests from
//! the local game dir. It reads the library the actor last published and never
//! serves anything that library does not list (so never `local/`, reserved
//! entries, symlinks, non-catalog games, or anything outside the game root).

use std::collections::BTreeSet;
use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use quinn::{Endpoint, RecvStream, SendStream};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::discovery::DiscoveredPeer;
use super::ratelimit::RateLimiter;
use super::stream_install::provider::{OutboundTransfers, StreamInstallProvider};
use super::stream_install::sink::{forward_frames, frame_channel};
use crate::beneath::{OpenError, OpenedFile, open_file_beneath};
use crate::catalog::Catalog;
use crate::layout::{validate_game_id, validate_relative_path};
use crate::library::{Game, GameDB};
use crate::proto::{
    ErrorKind, FrameError, GameDetails, Hello, MAX_CHUNK_LEN, PROTOCOL_VERSION, Request, Response, read_frame,
    write_frame,
};

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
}

/// Bytes read from disk per write to the QUIC stream.
const READ_BUFFER: usize = 1 << 20;

/// Accepts connections until the endpoint closes; each connection and stream gets its own task.
pub async fn run_server_component(endpoint: Endpoint, context: Arc<ServerContext>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                connections.spawn(serve_connection(incoming, context.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(incoming: quinn::Incoming, context: Arc<ServerContext>) {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(err) => {
            tracing::debug!("incoming connection failed: {err}");
            return;
        }
    };
    let remote = connection.remote_address();
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(send, recv, remote, context.clone()));
                }
                Err(err) => {
                    tracing::debug!(%remote, "connection closed: {err}");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
}

async fn serve_stream(mut send: SendStream, mut recv: RecvStream, remote: SocketAddr, context: Arc<ServerContext>) {
    let request: Request = match read_frame(&mut recv).await {
        Ok(request) => request,
        Err(err @ (FrameError::TooLarge { .. } | FrameError::Malformed(_) | FrameError::Truncated)) => {
            tracing::debug!("rejecting bad request: {err}");
            let _ = recv.stop(quinn::VarInt::from_u32(1));
            let _ = write_frame(&mut send, &Response::error(ErrorKind::BadRequest, err.to_string())).await;
            let _ = send.finish();
            return;
        }
        Err(err) => {
            tracing::debug!("stream ended before a request: {err}");
            return;
        }
    };
    if let Request::Ping(hello) = &request
        && hello.protocol_version == PROTOCOL_VERSION
    {
        // Best effort: a full queue only delays learning about this peer to its next ping.
        let _ = context.inbound_peers.try_send(DiscoveredPeer {
            addr: remote,
            peer_id: hello.peer_id.clone(),
        });
    }
    if let Err(err) = handle_request(request, &mut send, &context).await {
        tracing::debug!("request failed mid-transfer: {err}");
        let _ = send.reset(quinn::VarInt::from_u32(2));
        return;
    }
    let _ = send.finish();
}

/// Answers one request. An `Err` means the stream broke after the header went out.
async fn handle_request(request: Request, send: &mut SendStream, context: &ServerContext) -> std::io::Result<()> {
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
            Ok(game) => Response::GameDetails(GameDetails {
                id: game.id.clone(),
                version: game.version.as_ref().map(ToString::to_string).unwrap_or_default(),
                files: game.files.clone(),
            }),
            Err(response) => response,
        },
        Request::GetGameFileData { id, path } => {
            return send_file_range(send, context, &library, &id, &path, None).await;
        }
        Request::GetGameFileChunk { id, path, offset, len } => {
            return send_file_range(send, context, &library, &id, &path, Some((offset, len))).await;
        }
        Request::StreamInstall { id, version } => return stream_install(send, context, &library, &id, &version).await,
    };
    write_response(send, &response).await
}

async fn write_response(send: &mut SendStream, response: &Response) -> std::io::Result<()> {
    write_frame(send, response).await.map_err(std::io::Error::other)
}

/// The game if it is a catalog id this peer has downloaded; otherwise the error to send.
fn served_game<'a>(context: &ServerContext, library: &'a ServedLibrary, id: &str) -> Result<&'a Game, Response> {
    let unknown = || {
        Response::error(
            ErrorKind::UnknownGame,
            format!("this peer does not share a game {id:?}"),
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
    send: &mut SendStream,
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    path: &str,
    range: Option<(u64, u64)>,
) -> std::io::Result<()> {
    let opened = open_served_file(context, library, id, path).await;
    let (mut file, size) = match opened {
        Ok(opened) => opened,
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
    file.seek(SeekFrom::Start(offset)).await?;
    let mut remaining = len;
    let mut buffer = vec![0u8; READ_BUFFER.min(usize::try_from(len).unwrap_or(READ_BUFFER)).max(1)];
    while remaining > 0 {
        let want = buffer.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let read = file.read(&mut buffer[..want]).await?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{path} shrank while being sent"),
            ));
        }
        // Checked after the read: an operation publishes `busy` before it writes, so bytes
        // read before it was published are the old content, and later ones are never sent.
        if context.library.borrow().busy.contains(id) {
            return Err(std::io::Error::other(format!(
                "{id} started changing while {path} was sent"
            )));
        }
        if let Some(limiter) = &context.upload_limit {
            limiter.acquire(read).await;
        }
        send.write_all(&buffer[..read]).await?;
        remaining -= read as u64;
    }
    Ok(())
}

/// Expands the game's archives onto the stream. The provider runs on a blocking
/// thread holding the game's transfer guard; `forward_frames` makes sure it ends
/// (and drops the guard) when the receiver goes away.
async fn stream_install(
    send: &mut SendStream,
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
        let message = format!("this peer has {id} {ours}, not {version}");
        return write_response(send, &Response::error(ErrorKind::UnknownGame, message)).await;
    }
    let Some(guard) = context.outbound.try_acquire(id) else {
        let message = format!("{id} is already being streamed from this peer; try again shortly");
        return write_response(send, &Response::error(ErrorKind::Busy, message)).await;
    };
    write_response(send, &Response::StreamInstallAccepted).await?;
    let game_root = library.game_dir.join(id);
    let (sink, source) = frame_channel();
    let producer = tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let scratch = tempfile::Builder::new()
            .prefix(".lanspread-stream-")
            .tempdir_in(&game_root)?;
        StreamInstallProvider {
            game_root: &game_root,
            scratch_dir: scratch.path(),
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

/// Opens a file only if the served library lists it, beneath the game dir with no symlink at
/// any component and only if it is a regular file (see [`open_file_beneath`]): the listing
/// never contains symlinks, but anything could have replaced a file since the scan.
async fn open_served_file(
    context: &ServerContext,
    library: &ServedLibrary,
    id: &str,
    path: &str,
) -> Result<(tokio::fs::File, u64), Response> {
    let game = served_game(context, library, id)?;
    validate_relative_path(path).map_err(|err| Response::error(ErrorKind::InvalidPath, err.to_string()))?;
    let not_found = || Response::error(ErrorKind::NotFound, format!("{id} has no file {path:?}"));
    if !game.files.iter().any(|file| file.path == path && !file.is_dir) {
        return Err(not_found());
    }
    let game_dir = library.game_dir.clone();
    let relative = format!("{id}/{path}");
    let opened = tokio::task::spawn_blocking(move || open_file_beneath(&game_dir, &relative))
        .await
        .map_err(|_| not_found())?;
    match opened {
        Ok(OpenedFile { file, len }) => Ok((tokio::fs::File::from_std(file), len)),
        Err(OpenError::InvalidPath(err)) => Err(Response::error(ErrorKind::InvalidPath, err.to_string())),
        Err(err) => {
            tracing::debug!(game = id, "not serving a listed file: {err}");
            Err(not_found())
        }
    }
}
