//! `verify ID [--repair]`: hash a downloaded game and compare it with the peers that have
//! the same version (or the hashes recorded here); with `--repair`, fetch only the damaged
//! blocks. Exit codes: 0 intact (or repaired), 1 damaged and not repaired (or failed),
//! 2 nothing to compare with (for the whole game, or for files it could not check and no
//! damage found in the rest), 130 after Ctrl-C.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::peer::verify::Reference;
use crate::peer::{PeerCommand, PeerEvent, start_peer};
use crate::ui::format::{format_size, format_size_of, progress_line, verify_lines};

use super::get::{clear_progress, discover};
use super::link::Link;
use super::search::PeerSearch;
use super::{LineError, exit_code, next_event_or_cancel};

/// Runs `verify` on a peer of its own; `wait` bounds the search for peers with the game.
pub async fn verify(config: Config, id: String, wait: Duration, repair: bool) -> Result<ExitCode, LineError> {
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    if !catalog.contains(&id) {
        return Err(LineError::NotInCatalog(id));
    }
    let search = PeerSearch::of(&config, wait);
    let mut runtime = match Link::attach_if_running(&config).await? {
        Some(attached) => attached,
        None => Link::Own(start_peer(config, catalog)?),
    };
    let snapshot = match discover(&mut runtime, &id, &search).await? {
        Ok(snapshot) => snapshot,
        Err(code) => {
            runtime.finish().await;
            return Ok(code);
        }
    };
    if snapshot
        .game(&id)
        .and_then(|game| game.local_version.as_ref())
        .is_none()
    {
        eprintln!("lanspread: {id} is not downloaded here; nothing to verify");
        runtime.finish().await;
        return Ok(ExitCode::FAILURE);
    }
    runtime.send(PeerCommand::VerifyGame { id: id.clone(), repair }).await?;
    let show_progress = std::io::stderr().is_terminal();
    let mut cancelled = false;
    let code = loop {
        match next_event_or_cancel(&mut runtime, &id, &mut cancelled).await? {
            PeerEvent::VerifyProgress { id: of, bytes, total } if of == id && show_progress => {
                eprint!("\rverifying {id}: {}\x1b[K", format_size_of(bytes, total));
                let _ = std::io::stderr().flush();
            }
            PeerEvent::VerifyFinished(report) if report.id == id => {
                clear_progress(show_progress);
                for line in verify_lines(&report) {
                    println!("{line}");
                }
                match (&report.reference, report.damaged.is_empty()) {
                    (Reference::Nothing, _) => break ExitCode::from(2),
                    (_, true) if !report.unchecked.is_empty() => break ExitCode::from(2),
                    (_, true) => break ExitCode::SUCCESS,
                    (_, false) if !repair => break ExitCode::FAILURE,
                    (_, false) => eprintln!("repairing {id}..."),
                }
            }
            PeerEvent::VerifyFailed { id: of, reason } if of == id => {
                clear_progress(show_progress);
                eprintln!("lanspread: verify of {id} failed: {reason}");
                break exit_code(cancelled);
            }
            PeerEvent::OperationRefused { id: of, reason } if of == id => {
                eprintln!("lanspread: {reason}");
                break ExitCode::FAILURE;
            }
            PeerEvent::DownloadPeersExcluded { id: of, peers } if of == id => {
                for (addr, why) in peers {
                    eprintln!("left out {addr}: {why}");
                }
            }
            PeerEvent::DownloadProgress(progress) if progress.id == id && show_progress => {
                eprint!("\r{}\x1b[K", progress_line(&progress));
                let _ = std::io::stderr().flush();
            }
            PeerEvent::DownloadGameFilesFinished { id: of, summary, .. } if of == id => {
                clear_progress(show_progress);
                let fetched = summary.bytes - summary.reused;
                println!(
                    "repaired {id}: fetched {fetched} bytes ({}), reused {} bytes",
                    format_size(fetched),
                    summary.reused
                );
                break ExitCode::SUCCESS;
            }
            PeerEvent::DownloadGameFilesFailed { id: of, reason } if of == id => {
                clear_progress(show_progress);
                eprintln!("lanspread: repair of {id} failed: {reason}");
                break ExitCode::FAILURE;
            }
            PeerEvent::DownloadGameFilesCancelled { id: of } if of == id => break exit_code(true),
            _ => {}
        }
    };
    runtime.finish().await;
    Ok(code)
}
