//! A front end's side of the control socket: attach to the runtime of a state dir, then
//! read what it sends and send it commands.

use std::path::{Path, PathBuf};

use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::socket::socket_path;
use super::wire::{self, CONTROL_VERSION, FromRuntime, ToRuntime};
use crate::peer::PeerCommand;
use crate::proto::FrameError;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no lanspread runs on the state dir {} (nothing listens on {}); start `lanspread serve`", state_dir.display(), socket.display())]
    NoRuntime { state_dir: PathBuf, socket: PathBuf },
    #[error("cannot connect to {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the runtime refused: {0}")]
    Refused(String),
    #[error("the runtime's control socket: {0}")]
    Frame(#[from] FrameError),
    #[error("the runtime answered the hello with something else")]
    Unexpected,
}

/// An attached front end.
pub struct Session {
    /// The runtime's process and what runs it ("serve", "tui", ...).
    pub pid: u32,
    pub runtime: String,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
}

/// Attaches to the runtime that holds `state_dir`; the first message after this is its
/// snapshot.
pub async fn attach(state_dir: &Path) -> Result<Session, AttachError> {
    let socket = socket_path(state_dir);
    let stream = match UnixStream::connect(&socket).await {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AttachError::NoRuntime {
                state_dir: state_dir.to_owned(),
                socket,
            });
        }
        Err(source) => return Err(AttachError::Connect { socket, source }),
    };
    let (mut reader, mut writer) = stream.into_split();
    wire::send(
        &mut writer,
        &ToRuntime::Hello {
            version: CONTROL_VERSION,
        },
    )
    .await?;
    match wire::receive(&mut reader).await? {
        FromRuntime::Welcome { pid, runtime, .. } => Ok(Session {
            pid,
            runtime,
            reader,
            writer,
        }),
        FromRuntime::Refused { reason } => Err(AttachError::Refused(reason)),
        _ => Err(AttachError::Unexpected),
    }
}

impl Session {
    /// The next message; `FrameError::Truncated` once the runtime closed the socket.
    pub async fn next(&mut self) -> Result<FromRuntime, FrameError> {
        wire::receive(&mut self.reader).await
    }

    pub async fn send(&mut self, command: PeerCommand) -> Result<(), FrameError> {
        wire::send(&mut self.writer, &ToRuntime::Command(command)).await
    }
}
