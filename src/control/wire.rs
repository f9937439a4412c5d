//! What a front end and a runtime say over the control socket.
//!
//! Frames are the network protocol's (a 4-byte big-endian length, then JSON; see
//! `proto`), checked the same way, with a limit of their own: a snapshot of a large
//! library, or a file list in a `GotGameFiles` event, outgrows a network control frame.
//! What travels are the runtime's own [`PeerCommand`]s and [`PeerEvent`]s: nothing is
//! invented for remote control that the in-process channel does not have.
//!
//! A session: the front end sends [`ToRuntime::Hello`] with [`CONTROL_VERSION`]; the
//! runtime answers [`FromRuntime::Welcome`] (or [`FromRuntime::Refused`] and closes),
//! then a [`FromRuntime::Snapshot`], then live events; the front end sends commands.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::peer::{ActiveOperation, DownloadProgress, LibrarySnapshot, PeerCommand, PeerEvent, Upload};
use crate::proto::{FrameError, encode_frame_within, read_frame_within, write_frame_within};

/// The control protocol's version; a front end of another version is refused with both.
pub const CONTROL_VERSION: u32 = 1;
/// Hard limit for one control-socket frame, either way.
pub const MAX_CONTROL_FRAME: usize = 16 << 20;

/// From a front end to the runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub enum ToRuntime {
    /// The first frame of a session.
    Hello {
        version: u32,
    },
    Command(PeerCommand),
}

/// From the runtime to a front end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "snake_case")]
pub enum FromRuntime {
    /// The answer to a `Hello` this runtime speaks: who it is.
    Welcome {
        version: u32,
        pid: u32,
        /// What runs the runtime: "serve", "tui", "get", ...
        runtime: String,
        /// The address its QUIC endpoint listens on.
        listen: SocketAddr,
    },
    /// The session is refused (another version, a bad first frame); the socket closes.
    Refused {
        reason: String,
    },
    /// Everything a front end needs to draw the runtime's state, sent once after the
    /// welcome and again whenever the front end fell behind.
    Snapshot(Box<Snapshot>),
    Event(Box<PeerEvent>),
}

/// The runtime's state at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub library: LibrarySnapshot,
    pub active: Vec<ActiveOperation>,
    /// The latest progress of each running download.
    pub downloads: Vec<DownloadProgress>,
    /// What this peer sends to others now.
    pub uploads: Vec<Upload>,
    /// The last lines of the runtime's log, oldest first.
    pub log: Vec<String>,
}

impl Snapshot {
    /// The events that would have told a front end what this snapshot says.
    pub fn into_events(self) -> Vec<PeerEvent> {
        let mut events = vec![
            PeerEvent::LibraryUpdated(self.library),
            PeerEvent::ActiveOperations(self.active),
            PeerEvent::Uploads(self.uploads),
        ];
        events.extend(self.downloads.into_iter().map(PeerEvent::DownloadProgress));
        events
    }

    /// Follows the runtime's state with one of its events (the log is taken when sent).
    pub fn apply(&mut self, event: &PeerEvent) {
        match event {
            PeerEvent::LibraryUpdated(library) => self.library = library.clone(),
            PeerEvent::ActiveOperations(active) => self.active = active.clone(),
            PeerEvent::Uploads(uploads) => self.uploads = uploads.clone(),
            PeerEvent::DownloadProgress(progress) => {
                match self.downloads.iter_mut().find(|known| known.id == progress.id) {
                    Some(known) => *known = progress.clone(),
                    None => self.downloads.push(progress.clone()),
                }
            }
            PeerEvent::DownloadGameFilesFinished { id, .. }
            | PeerEvent::DownloadGameFilesFailed { id, .. }
            | PeerEvent::DownloadGameFilesCancelled { id }
            | PeerEvent::DownloadGameFilesPaused { id } => self.downloads.retain(|known| known.id != *id),
            _ => {}
        }
    }
}

/// Writes one control frame.
pub async fn send<W, T>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    write_frame_within(writer, message, MAX_CONTROL_FRAME).await
}

/// One control frame, encoded once to be written to every front end.
pub fn encode(message: &FromRuntime) -> Result<Vec<u8>, FrameError> {
    encode_frame_within(message, MAX_CONTROL_FRAME)
}

/// Reads one control frame; a malformed, oversized or unknown message is an error.
pub async fn receive<R, T>(reader: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    read_frame_within(reader, MAX_CONTROL_FRAME).await
}

/// Who runs a runtime, as its welcome tells front ends.
#[derive(Debug, Clone)]
pub struct Identity {
    pub pid: u32,
    /// "serve", "tui", "get", ...
    pub runtime: String,
    pub listen: SocketAddr,
}

/// The runtime's answer to a front end's first frame.
pub fn welcome(first: &ToRuntime, identity: &Identity) -> FromRuntime {
    let pid = identity.pid;
    match first {
        ToRuntime::Hello { version } if *version == CONTROL_VERSION => FromRuntime::Welcome {
            version: CONTROL_VERSION,
            pid,
            runtime: identity.runtime.clone(),
            listen: identity.listen,
        },
        ToRuntime::Hello { version } => FromRuntime::Refused {
            reason: format!(
                "this front end speaks control protocol {version}, the runtime (pid {pid}) {CONTROL_VERSION}: \
                 use the same lanspread for both"
            ),
        },
        ToRuntime::Command(_) => FromRuntime::Refused {
            reason: "a session begins with a hello".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::peer::{OperationKind, PeerProgress};

    async fn round_trip<T: Serialize + serde::de::DeserializeOwned>(message: &T) -> T {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        send(&mut a, message).await.unwrap();
        receive(&mut b).await.unwrap()
    }

    #[tokio::test]
    async fn commands_events_and_snapshots_cross_the_wire_unchanged() {
        let command = ToRuntime::Command(PeerCommand::VerifyGame {
            id: "openarena".into(),
            repair: true,
        });
        let back = round_trip(&command).await;
        assert_eq!(format!("{back:?}"), format!("{command:?}"));

        let progress = DownloadProgress {
            id: "openarena".into(),
            bytes_done: 3 << 20,
            total_bytes: 10 << 20,
            bytes_per_second: Some(2.5e6),
            eta: Some(Duration::from_millis(2800)),
            active_peers: 2,
            seeds: 1,
            partial_sources: 1,
            peers: vec![PeerProgress {
                addr: "10.0.0.3:47474".parse().unwrap(),
                partial: true,
                bytes: 1 << 20,
                bytes_per_second: 1.0e6,
            }],
            elapsed: Duration::from_secs(1),
        };
        let event = FromRuntime::Event(Box::new(PeerEvent::DownloadProgress(progress.clone())));
        let FromRuntime::Event(back) = round_trip(&event).await else {
            panic!("an event comes back an event");
        };
        assert!(matches!(*back, PeerEvent::DownloadProgress(ref got) if *got == progress));

        let snapshot = Snapshot {
            active: vec![ActiveOperation {
                id: "openarena".into(),
                kind: OperationKind::Download,
            }],
            downloads: vec![progress],
            log: vec!["a line".into()],
            ..Snapshot::default()
        };
        let FromRuntime::Snapshot(back) = round_trip(&FromRuntime::Snapshot(Box::new(snapshot.clone()))).await else {
            panic!("a snapshot comes back a snapshot");
        };
        assert_eq!(back.active, snapshot.active);
        assert_eq!(back.downloads, snapshot.downloads);
        assert_eq!(back.log, snapshot.log);
    }

    #[tokio::test]
    async fn garbage_oversized_and_unknown_frames_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&5u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{nope").await.unwrap();
        let garbage: Result<ToRuntime, _> = receive(&mut b).await;
        assert!(matches!(garbage, Err(FrameError::Malformed(_))), "{garbage:?}");

        // Refused on the length alone: the promised body is never waited for.
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let oversized: Result<ToRuntime, _> = receive(&mut b).await;
        assert!(matches!(oversized, Err(FrameError::TooLarge { .. })), "{oversized:?}");

        let unknown = br#"{"type":"format_disk","body":{}}"#;
        a.write_all(&(unknown.len() as u32).to_be_bytes()).await.unwrap();
        a.write_all(unknown).await.unwrap();
        let unknown: Result<ToRuntime, _> = receive(&mut b).await;
        assert!(matches!(unknown, Err(FrameError::Malformed(_))), "{unknown:?}");

        let too_big = FromRuntime::Refused {
            reason: "x".repeat(MAX_CONTROL_FRAME),
        };
        assert!(matches!(send(&mut a, &too_big).await, Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn a_session_begins_with_a_hello_of_this_version() {
        let identity = Identity {
            pid: 4242,
            runtime: "serve".into(),
            listen: "127.0.0.1:47474".parse().unwrap(),
        };
        let welcome_of = |first| welcome(&first, &identity);
        assert!(matches!(
            welcome_of(ToRuntime::Hello { version: CONTROL_VERSION }),
            FromRuntime::Welcome { pid: 4242, ref runtime, .. } if runtime == "serve"
        ));
        let FromRuntime::Refused { reason } = welcome_of(ToRuntime::Hello { version: 99 }) else {
            panic!("another version is refused");
        };
        assert!(
            reason.contains("99") && reason.contains(&CONTROL_VERSION.to_string()),
            "{reason}"
        );
        assert!(matches!(
            welcome_of(ToRuntime::Command(PeerCommand::ListGames)),
            FromRuntime::Refused { .. }
        ));
    }
}
