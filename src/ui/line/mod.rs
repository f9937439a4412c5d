//! The line-mode front end: the commands that print lines instead of drawing a
//! screen (`get`, `list`, `verify`, `serve`'s log, `install` / `uninstall` / `remove`).
//! Like the TUI, it drives the runtime only through `PeerCommand`s and reads
//! its `PeerEvent`s. Progress goes to stderr, results to stdout, and an exit
//! code says how it went: 0 done, 1 failed, 2 nothing to get, 130 cancelled.

mod get;
mod link;
mod list;
mod local;
mod search;
mod serve;
mod status;
mod verify;

use std::process::ExitCode;

pub use get::{GetMode, GetPlan, get, plan};
pub use list::list;
pub use local::{LocalOperation, local_operation};
pub use serve::serve;
pub use status::{events, status};
pub use verify::verify;

use crate::catalog::CatalogError;
use crate::install::{InstallError, LockError};
use crate::peer::{PeerCommand, PeerError, PeerEvent};
use link::Link;

/// The exit code of an operation that Ctrl-C cancelled, as shells report a SIGINT.
const CANCELLED: u8 = 130;

/// Why a line-mode command could not run (what went wrong in the operation itself is
/// printed and becomes its exit code instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("{0:?} is not in the catalog; see `lanspread list` for what peers share, or add it with --catalog")]
    NotInCatalog(String),
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("cannot listen for signals: {0}")]
    Signal(#[source] std::io::Error),
    #[error("cannot print JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a local operation panicked: {0}")]
    Panicked(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Attach(#[from] crate::control::client::AttachError),
    #[error("the runtime's control socket: {0}")]
    Control(#[from] crate::proto::FrameError),
}

/// What a local operation (`install`, `uninstall`, `remove`) reports as its failure.
#[derive(Debug, thiserror::Error)]
enum LocalError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// The next runtime event about `id` (events about other games, of a runtime this command
/// is attached to, are skipped). The first Ctrl-C cancels the operation on `id`, and only
/// that; its end then still arrives as an event.
async fn next_event_or_cancel(runtime: &mut Link, id: &str, cancelled: &mut bool) -> Result<PeerEvent, LineError> {
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c(), if !*cancelled => {
                *cancelled = true;
                eprintln!("\ncancelling...");
                runtime.send(PeerCommand::CancelDownload { id: id.to_owned() }).await?;
                continue;
            }
            event = runtime.next_event() => event.ok_or(LineError::Peer(PeerError::Stopped))?,
        };
        if event.game_id().is_none_or(|of| of == id) {
            return Ok(event);
        }
    }
}

fn exit_code(cancelled: bool) -> ExitCode {
    if cancelled {
        ExitCode::from(CANCELLED)
    } else {
        ExitCode::FAILURE
    }
}
