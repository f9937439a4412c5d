//! `serve`: a peer without a user interface; what an operator wants to see goes to the log.

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::peer::{LibrarySnapshot, PeerEvent, start_peer};

use super::LineError;

/// Runs until Ctrl-C or SIGTERM, then shuts down cleanly.
pub async fn serve(config: Config) -> Result<ExitCode, LineError> {
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    tracing::info!(
        game_dir = %config.game_dir.display(),
        mdns = config.mdns,
        static_peers = config.static_peers.len(),
        "starting lanspread serve"
    );
    let mut runtime = start_peer(config, catalog)?;
    tracing::info!("listening on {}", runtime.local_addr());
    let mut terminate = signal(SignalKind::terminate()).map_err(LineError::Signal)?;
    let mut previous = LibrarySnapshot::default();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            event = runtime.next_event() => match event {
                Some(event) => log_event(event, &mut previous),
                None => break,
            },
        }
    }
    tracing::info!("shutting down");
    runtime.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Logs what a headless operator wants to see; the runtime logs membership itself.
fn log_event(event: PeerEvent, previous: &mut LibrarySnapshot) {
    match event {
        PeerEvent::LibraryUpdated(snapshot) => {
            for entry in &snapshot.games {
                if previous.game(&entry.id) != Some(entry) {
                    tracing::info!(
                        "library: {} ({}) {}: local {}, latest {} on {} peer(s)",
                        entry.id,
                        entry.name,
                        entry.state.label(),
                        entry.local_version.as_deref().unwrap_or("-"),
                        entry.latest_version.as_deref().unwrap_or("-"),
                        entry.peers.len()
                    );
                }
            }
            for gone in previous.games.iter().filter(|old| snapshot.game(&old.id).is_none()) {
                tracing::info!("library: {} ({}) is no longer available", gone.id, gone.name);
            }
            *previous = snapshot;
        }
        PeerEvent::RuntimeFailed { component, error } => tracing::error!("{component}: {error}"),
        PeerEvent::GameFilesUnavailable { id, reason } => tracing::warn!("{id}: {reason}"),
        _ => {}
    }
}
