//! What a line-mode command drives: a runtime of its own, or the one that already runs on
//! the state dir (a `serve`, a TUI), attached through its control socket. Both take the
//! same `PeerCommand`s and give the same `PeerEvent`s, so a command reads the same
//! either way.

use std::collections::VecDeque;

use crate::config::Config;
use crate::control::client::{AttachError, Session, attach};
use crate::control::wire::FromRuntime;
use crate::peer::{PeerCommand, PeerError, PeerEvent, PeerRuntimeHandle};

use super::LineError;

pub enum Link {
    Own(PeerRuntimeHandle),
    Attached(Attached),
}

/// A runtime reached through its control socket.
pub struct Attached {
    session: Session,
    /// Events a snapshot stands for, not handed out yet.
    pending: VecDeque<PeerEvent>,
}

impl Link {
    /// Attaches to the runtime on `config.state_dir` when one runs there (saying so on
    /// stderr), else `None`: the caller starts its own.
    pub async fn attach_if_running(config: &Config) -> Result<Option<Link>, LineError> {
        match attach(&config.state_dir).await {
            Ok(session) => {
                eprintln!(
                    "lanspread: attached to the {} that runs on {} (pid {})",
                    session.runtime,
                    config.state_dir.display(),
                    session.pid
                );
                Ok(Some(Link::Attached(Attached {
                    session,
                    pending: VecDeque::new(),
                })))
            }
            Err(AttachError::NoRuntime { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn send(&mut self, command: PeerCommand) -> Result<(), LineError> {
        match self {
            Link::Own(runtime) => Ok(runtime.send(command).await?),
            Link::Attached(attached) => Ok(attached.session.send(command).await?),
        }
    }

    /// The next event; `None` once the runtime stopped (or, attached, dropped us).
    pub async fn next_event(&mut self) -> Option<PeerEvent> {
        match self {
            Link::Own(runtime) => runtime.next_event().await,
            Link::Attached(attached) => attached.next_event().await,
        }
    }

    /// The next event, or `PeerError::Stopped`.
    pub async fn event(&mut self) -> Result<PeerEvent, LineError> {
        self.next_event().await.ok_or(LineError::Peer(PeerError::Stopped))
    }

    /// Stops a runtime of our own; an attached one goes on.
    pub async fn finish(self) {
        if let Link::Own(runtime) = self {
            runtime.shutdown().await;
        }
    }
}

impl Attached {
    async fn next_event(&mut self) -> Option<PeerEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            match self.session.next().await {
                Ok(FromRuntime::Event(event)) => return Some(*event),
                // The state at attach time, or after we fell behind: what it says, as the
                // events that would have said it.
                Ok(FromRuntime::Snapshot(snapshot)) => self.pending.extend(snapshot.into_events()),
                Ok(FromRuntime::Refused { reason }) => {
                    eprintln!("lanspread: the runtime dropped this command: {reason}");
                    return None;
                }
                Ok(FromRuntime::Welcome { .. }) => {}
                Err(_) => return None,
            }
        }
    }
}
