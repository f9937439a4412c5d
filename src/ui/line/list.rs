//! `list`: the games that peers share, as a table or JSON.

use std::process::ExitCode;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::peer::{LibrarySnapshot, PeerEvent, start_peer};
use crate::ui::table;

use super::LineError;

/// Looks for peers for up to `wait` and prints what they share. Exits 2 when no peer answered.
pub async fn list(mut config: Config, json: bool, wait: Duration) -> Result<ExitCode, LineError> {
    // Only remote libraries matter, so `list` works beside a running `serve` on the same dirs.
    let private = tempfile::tempdir().map_err(LineError::TempDir)?;
    config.game_dir = private.path().join("games");
    config.state_dir = private.path().join("state");
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    let wait_for_all_static = !config.mdns && !config.static_peers.is_empty();
    let static_count = config.static_peers.len();
    let mut runtime = start_peer(config, catalog)?;
    let mut snapshot = LibrarySnapshot::default();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            event = runtime.next_event() => match event {
                Some(PeerEvent::LibraryUpdated(update)) => {
                    snapshot = update;
                    let all_answered = snapshot.peers.len() >= static_count
                        && snapshot.peers.iter().all(|peer| peer.library_loaded);
                    if wait_for_all_static && all_answered {
                        break;
                    }
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    runtime.shutdown().await;

    if snapshot.peers.is_empty() {
        eprintln!(
            "lanspread: no peer answered within {:.1}s; check the --peer addresses, that peers run `lanspread serve`, \
             and that mDNS (UDP 5353) reaches this network",
            wait.as_secs_f64()
        );
        return Ok(ExitCode::from(2));
    }
    let rows = table::remote_rows(&snapshot);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("{} peer(s) answered, sharing no games.", snapshot.peers.len());
    } else {
        print!("{}", table::render_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
