//! `get` and `get --stream`: find the peers with a game's latest version, then
//! download and install it (or stream-install it), with a progress line on
//! stderr when it is a terminal and a summary on stdout.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::peer::{LibrarySnapshot, PeerCommand, PeerError, PeerEvent, PeerRuntimeHandle, start_peer};
use crate::ui::format::{format_rate, format_size, progress_line};

use super::{LineError, exit_code, next_event_or_cancel};

/// How long `get` keeps looking for more peers with the game after the first one answered.
const GET_SETTLE: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum GetMode {
    Download,
    DownloadAndInstall,
    Stream,
}

/// Runs `get` on a peer of its own; `wait` bounds the search for peers that have `id`.
pub async fn get(config: Config, id: String, wait: Duration, mode: GetMode) -> Result<ExitCode, LineError> {
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    if !catalog.contains(&id) {
        return Err(LineError::NotInCatalog(id));
    }
    let only_static_peers = !config.mdns;
    let static_count = config.static_peers.len();
    let mut runtime = start_peer(config, catalog)?;
    let code = get_with(&mut runtime, &id, wait, only_static_peers, static_count, mode).await;
    runtime.shutdown().await;
    code
}

async fn get_with(
    runtime: &mut PeerRuntimeHandle,
    id: &str,
    wait: Duration,
    only_static_peers: bool,
    static_count: usize,
    mode: GetMode,
) -> Result<ExitCode, LineError> {
    // 1. Find the peers that have the game's latest version.
    let deadline = Instant::now() + wait;
    let mut settle_until: Option<Instant> = None;
    let mut snapshot = LibrarySnapshot::default();
    loop {
        let until = settle_until.map_or(deadline, |settle| settle.min(deadline));
        let event = tokio::select! {
            () = tokio::time::sleep_until(until) => break,
            event = runtime.next_event() => event,
        };
        let Some(PeerEvent::LibraryUpdated(update)) = event else {
            continue;
        };
        snapshot = update;
        let all_answered = snapshot.peers.len() >= static_count && snapshot.peers.iter().all(|p| p.library_loaded);
        if only_static_peers && all_answered {
            break;
        }
        if snapshot.game(id).is_some_and(|game| !game.peers.is_empty()) {
            settle_until.get_or_insert_with(|| Instant::now() + GET_SETTLE);
        }
    }
    let Some(entry) = snapshot.game(id).filter(|game| !game.peers.is_empty()) else {
        eprintln!(
            "lanspread: no peer shares {id} ({} peer(s) answered within {:.1}s)",
            snapshot.peers.len(),
            wait.as_secs_f64()
        );
        return Ok(ExitCode::from(2));
    };
    let latest = entry.latest_version.clone().unwrap_or_default();
    if mode == GetMode::Stream {
        return stream_install_with(runtime, id, &latest).await;
    }
    if entry.local_version.as_deref() == Some(latest.as_str()) {
        println!("{id} {latest} is already downloaded");
        return Ok(ExitCode::SUCCESS);
    }

    // 2. The file list, then the download.
    runtime.send(PeerCommand::GetGame { id: id.to_owned() }).await?;
    let files = loop {
        match runtime.next_event().await {
            Some(PeerEvent::GotGameFiles { id: got, files, .. }) if got == id => break files,
            Some(PeerEvent::GameFilesUnavailable { id: got, reason }) if got == id => {
                eprintln!("lanspread: cannot get {id}: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Some(_) => {}
            None => return Err(PeerError::Stopped.into()),
        }
    };
    runtime
        .send(PeerCommand::DownloadGameFiles {
            id: id.to_owned(),
            files,
        })
        .await?;

    let show_progress = std::io::stderr().is_terminal();
    let mut cancelled = false;
    loop {
        match next_event_or_cancel(runtime, id, &mut cancelled).await? {
            PeerEvent::DownloadGameFilesBegin {
                version,
                total_bytes,
                peers,
                ..
            } => {
                eprintln!(
                    "downloading {id} {version} ({}) from {} peer(s)",
                    format_size(total_bytes),
                    peers.len()
                );
            }
            PeerEvent::DownloadPeersExcluded { peers, .. } => {
                for (addr, why) in peers {
                    eprintln!("left out {addr}: {why}");
                }
            }
            PeerEvent::DownloadProgress(progress) if show_progress => {
                eprint!("\r{}\x1b[K", progress_line(&progress));
                let _ = std::io::stderr().flush();
            }
            PeerEvent::DownloadGameFilesFinished { version, summary, .. } => {
                if show_progress {
                    eprint!("\r\x1b[K");
                }
                let seconds = summary.elapsed.as_secs_f64();
                println!(
                    "downloaded {id} {version}: {} bytes in {seconds:.2} s ({}) from {} peer(s)",
                    summary.bytes,
                    format_rate(summary.bytes as f64 / seconds.max(1e-9)),
                    summary.peers_used.len()
                );
                if mode == GetMode::Download {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            PeerEvent::InstallGameBegin { .. } => eprintln!("installing {id}..."),
            PeerEvent::InstallGameProgress { files, bytes, .. } if show_progress => {
                eprint!("\r{files} files, {} extracted\x1b[K", format_size(bytes));
                let _ = std::io::stderr().flush();
            }
            PeerEvent::InstallGameFinished { updated, .. } => {
                if show_progress {
                    eprint!("\r\x1b[K");
                }
                println!("{} {id}", if updated { "updated" } else { "installed" });
                return Ok(ExitCode::SUCCESS);
            }
            PeerEvent::InstallGameFailed { reason, .. } => {
                eprintln!("\nlanspread: {id} was downloaded but its install failed: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            PeerEvent::DownloadGameFilesFailed { reason, .. } => {
                eprintln!("\nlanspread: download of {id} failed: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            PeerEvent::DownloadGameFilesCancelled { .. } => {
                eprintln!("lanspread: download of {id} cancelled; partial files removed");
                return Ok(exit_code(true));
            }
            PeerEvent::OperationRefused { id: got, reason } if got == id => {
                eprintln!("lanspread: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            _ => {}
        }
    }
}

/// `get --stream`: the same progress line and summary, for a streamed install.
async fn stream_install_with(runtime: &mut PeerRuntimeHandle, id: &str, version: &str) -> Result<ExitCode, LineError> {
    runtime
        .send(PeerCommand::StreamInstallGame { id: id.to_owned() })
        .await?;
    let show_progress = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let (mut files, mut bytes) = (0, 0);
    let mut cancelled = false;
    loop {
        match next_event_or_cancel(runtime, id, &mut cancelled).await? {
            PeerEvent::InstallGameBegin { .. } => eprintln!("stream-installing {id} {version}"),
            PeerEvent::StreamInstallAttemptFailed { peer, reason, .. } => {
                eprintln!("\n{peer} failed ({reason}); trying the next peer");
            }
            PeerEvent::InstallGameProgress { files: f, bytes: b, .. } => {
                (files, bytes) = (f, b);
                if show_progress {
                    let rate = b as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    eprint!("\r{f} files, {} written  {}\x1b[K", format_size(b), format_rate(rate));
                    let _ = std::io::stderr().flush();
                }
            }
            PeerEvent::InstallGameFinished { updated, .. } => {
                if show_progress {
                    eprint!("\r\x1b[K");
                }
                let seconds = started.elapsed().as_secs_f64();
                println!(
                    "stream-{} {id} {version}: {bytes} bytes in {files} files, {seconds:.2} s ({})",
                    if updated { "updated" } else { "installed" },
                    format_rate(bytes as f64 / seconds.max(1e-9)),
                );
                return Ok(ExitCode::SUCCESS);
            }
            PeerEvent::InstallGameFailed { reason, .. } => {
                eprintln!("\nlanspread: streamed install of {id} failed: {reason}");
                return Ok(exit_code(cancelled));
            }
            PeerEvent::OperationRefused { id: got, reason } if got == id => {
                eprintln!("lanspread: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            _ => {}
        }
    }
}
