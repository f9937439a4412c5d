//! A front end's side of the control socket: attach to the runtime of a state dir, then
//! read what it sends and send it commands.

use std::path::{Path, PathBuf};

use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::socket::socket_path;
use super::wire::{self, CONTROL_VERSION, FromRuntime, ToRuntime};
use crate::peer::{PeerCommand, PeerEvent};
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
    /// Where the runtime's QUIC endpoint listens.
    pub listen: std::net::SocketAddr,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
}

/// Attaches to the runtime that holds `state_dir`; the first message after this is its
/// snapshot.
pub async fn attach(state_dir: &Path) -> Result<Session, AttachError> {
    let socket = socket_path(state_dir);
    if !super::socket::fits(state_dir) {
        return Err(AttachError::NoRuntime {
            state_dir: state_dir.to_owned(),
            socket,
        });
    }
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
        FromRuntime::Welcome {
            pid, runtime, listen, ..
        } => Ok(Session {
            pid,
            runtime,
            listen,
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

/// Events a front end fed by [`Session::into_channels`] may fall behind by; beyond it the
/// runtime resyncs this front end with a snapshot.
const CHANNEL_EVENTS: usize = 1024;

impl Session {
    /// The session as the channels a runtime of one's own has: its events (a snapshot read
    /// as the events it stands for), closed when the runtime stops or drops us, and its
    /// commands. For the TUI, whose loop reads channels.
    pub fn into_channels(self) -> (mpsc::Receiver<PeerEvent>, mpsc::Sender<PeerCommand>) {
        let Session {
            mut reader, mut writer, ..
        } = self;
        let (events_tx, events) = mpsc::channel(CHANNEL_EVENTS);
        let (commands, mut commands_rx) = mpsc::channel::<PeerCommand>(CHANNEL_EVENTS);
        tokio::spawn(async move {
            loop {
                let batch = match wire::receive(&mut reader).await {
                    Ok(FromRuntime::Event(event)) => vec![*event],
                    Ok(FromRuntime::Snapshot(snapshot)) => snapshot.into_events(),
                    Ok(FromRuntime::Refused { reason }) => {
                        tracing::warn!("the runtime dropped this front end: {reason}");
                        return;
                    }
                    Ok(FromRuntime::Welcome { .. }) => continue,
                    Err(FrameError::Truncated) => return,
                    Err(err) => {
                        tracing::warn!("the runtime's control socket: {err}");
                        return;
                    }
                };
                for event in batch {
                    if events_tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(command) = commands_rx.recv().await {
                if wire::send(&mut writer, &ToRuntime::Command(command)).await.is_err() {
                    return;
                }
            }
        });
        (events, commands)
    }
}
