//! `serve`: a peer without a user interface; what an operator wants to see goes to the log.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::catalog::Catalog;
use crate::config::Config;
use crate::peer::{HashingProgress, LibrarySnapshot, PeerEvent, start_peer};
use crate::ui::app::left_peers_text;
use crate::ui::format::{format_size, format_size_of};

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
    let mut hashing = HashingLog::default();
    let mut ready = false;
    let stop_requested = runtime.stop_requested();
    tokio::pin!(stop_requested);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            () = &mut stop_requested => break,
            event = runtime.next_event() => match event {
                Some(event) => {
                    // Ready for systemd (`Type=notify`) once the first scan of the game
                    // dir is published: peers and front ends then see what is here.
                    if let PeerEvent::LibraryUpdated(library) = &event
                        && library.local_scanned
                        && !ready
                    {
                        ready = true;
                        let games = library.games.iter().filter(|game| game.local_version.is_some()).count();
                        tell_systemd(&format!("READY=1\nSTATUS=serving {games} game(s) from {}", library.game_dir.display()));
                    }
                    log_event(event, &mut previous, &mut hashing);
                }
                None => break,
            },
        }
    }
    tracing::info!("shutting down");
    tell_systemd("STOPPING=1");
    runtime.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn tell_systemd(state: &str) {
    if let Err(err) = crate::systemd::notify(state) {
        tracing::warn!("{err}");
    }
}

/// Logs what a headless operator wants to see; the runtime logs membership itself.
fn log_event(event: PeerEvent, previous: &mut LibrarySnapshot, hashing: &mut HashingLog) {
    match event {
        PeerEvent::LibraryUpdated(snapshot) => {
            for entry in &snapshot.games {
                if previous.game(&entry.id) != Some(entry) {
                    // A game only departed peers had stays listed for a while: say why.
                    let gone = if entry.peers.is_empty() && !entry.left_peers.is_empty() {
                        format!("; gone: {}", left_peers_text(entry))
                    } else {
                        String::new()
                    };
                    tracing::info!(
                        "library: {} ({}) {}: local {}, latest {} on {} peer(s){gone}",
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
        PeerEvent::HashingProgress(progress) => hashing.progress(&progress, Instant::now()),
        PeerEvent::HashingFinished { games, bytes, elapsed } => {
            hashing.last = None;
            let gib = bytes as f64 / f64::from(1 << 30);
            tracing::info!(
                "hashed {games} game(s), {} in {:.1} s ({:.2} GiB/s); they are shared now",
                format_size(bytes),
                elapsed.as_secs_f64(),
                gib / elapsed.as_secs_f64().max(1e-3)
            );
        }
        PeerEvent::RuntimeFailed { component, error } => tracing::error!("{component}: {error}"),
        PeerEvent::GameFilesUnavailable { id, reason } => tracing::warn!("{id}: {reason}"),
        _ => {}
    }
}

/// Hashing progress in the log: a line when it starts, then one every [`HashingLog::EVERY`].
#[derive(Default)]
struct HashingLog {
    /// When the last line was logged; `None` while nothing is being hashed.
    last: Option<Instant>,
}

impl HashingLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn progress(&mut self, progress: &HashingProgress, now: Instant) {
        let games = progress.games.len();
        match self.last {
            None => tracing::info!(
                "hashing {games} game(s), {}; each is shared once hashed",
                format_size(progress.total_bytes)
            ),
            Some(last) if now.duration_since(last) >= Self::EVERY => tracing::info!(
                "hashing: {} done, {games} game(s) left",
                format_size_of(progress.done_bytes.min(progress.total_bytes), progress.total_bytes)
            ),
            Some(_) => return,
        }
        self.last = Some(now);
    }
}
