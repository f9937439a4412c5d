//! `status` and `events`: what the running lanspread of a state dir is doing, read from
//! its control socket (see `control`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::control::client::{Session, attach};
use crate::control::wire::{FromRuntime, Snapshot};
use crate::proto::FrameError;
use crate::ui::format::{format_rate, format_size, format_size_of};

use super::LineError;

/// Log lines `status` prints; `--json` has all the snapshot carries.
const STATUS_LOG_LINES: usize = 10;

/// Prints the runtime's snapshot.
pub async fn status(state_dir: &Path, json: bool) -> Result<ExitCode, LineError> {
    let mut session = attach(state_dir).await?;
    let snapshot = next_snapshot(&mut session).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let document = serde_json::json!({
            "runtime": { "pid": session.pid, "runtime": session.runtime },
            "snapshot": snapshot,
        });
        serde_json::to_writer_pretty(&mut out, &document)?;
        let _ = writeln!(out);
    } else {
        let _ = out.write_all(describe(&session, &snapshot).as_bytes());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the runtime's messages as they come, until it stops.
pub async fn events(state_dir: &Path, json: bool) -> Result<ExitCode, LineError> {
    // Listened to once, for the whole run: a Ctrl-C that came while a line was printed,
    // with no `ctrl_c()` future alive, was lost (CI: `events` ran on after SIGINT);
    // made before "attached" is said, which is when a script may interrupt it.
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(LineError::Signal)?;
    let mut session = attach(state_dir).await?;
    eprintln!(
        "attached to {} (pid {}) on {}; Ctrl-C stops following",
        session.runtime,
        session.pid,
        state_dir.display()
    );
    loop {
        let message = tokio::select! {
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
            message = session.next() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(FrameError::Truncated) => {
                eprintln!("the runtime stopped");
                return Ok(ExitCode::SUCCESS);
            }
            Err(err) => return Err(err.into()),
        };
        let line = if json {
            serde_json::to_string(&message)?
        } else {
            match &message {
                FromRuntime::Snapshot(snapshot) => describe(&session, snapshot).trim_end().to_owned(),
                FromRuntime::Event(event) => serde_json::to_string(event)?,
                FromRuntime::Refused { reason } => format!("the runtime dropped us: {reason}"),
                FromRuntime::Welcome { .. } => continue,
            }
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`events | head`) ends the command quietly.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

async fn next_snapshot(session: &mut Session) -> Result<Box<Snapshot>, LineError> {
    loop {
        match session.next().await? {
            FromRuntime::Snapshot(snapshot) => return Ok(snapshot),
            FromRuntime::Refused { reason } => return Err(crate::control::client::AttachError::Refused(reason).into()),
            _ => {}
        }
    }
}

/// The snapshot for people.
fn describe(session: &Session, snapshot: &Snapshot) -> String {
    let mut text = String::new();
    let library = &snapshot.library;
    let mut line = |line: String| {
        text.push_str(&line);
        text.push('\n');
    };
    line(format!(
        "{} (pid {}), game dir {}",
        session.runtime,
        session.pid,
        library.game_dir.display()
    ));
    let local: Vec<_> = library
        .games
        .iter()
        .filter(|game| game.local_version.is_some())
        .collect();
    line(format!(
        "games here: {}{}",
        local.len(),
        if library.local_scanned {
            ""
        } else {
            " (not scanned yet)"
        }
    ));
    for game in local {
        line(format!(
            "  {} {} {}, {}",
            game.id,
            game.local_version.as_deref().unwrap_or("-"),
            game.state.label(),
            format_size(game.size)
        ));
    }
    line(format!("peers: {}", library.peers.len()));
    for peer in &library.peers {
        line(format!("  {} {} ({} games)", peer.name, peer.addr, peer.game_count));
    }
    if snapshot.active.is_empty() {
        line("running: nothing".to_owned());
    }
    for operation in &snapshot.active {
        let progress = snapshot.downloads.iter().find(|download| download.id == operation.id);
        let detail = progress.map_or(String::new(), |download| {
            format!(
                ": {} at {}",
                format_size_of(download.bytes_done, download.total_bytes),
                format_rate(download.bytes_per_second.unwrap_or(0.0))
            )
        });
        line(format!("running: {} {}{detail}", operation.kind.label(), operation.id));
    }
    for upload in &snapshot.uploads {
        line(format!(
            "sending: {} to {} at {}",
            upload.id,
            upload.to,
            format_rate(upload.bytes_per_second)
        ));
    }
    let skip = snapshot.log.len().saturating_sub(STATUS_LOG_LINES);
    if !snapshot.log.is_empty() {
        line("log:".to_owned());
    }
    for log in &snapshot.log[skip..] {
        line(format!("  {log}"));
    }
    text
}
