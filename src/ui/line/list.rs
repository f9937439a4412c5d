//! `list`: the games that peers share, as a table or JSON.

use std::process::ExitCode;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::library::{GameDB, Hashing, LibraryIndex, scan_local_library};
use crate::peer::{LibrarySnapshot, PeerEvent, start_peer};
use crate::ui::table;

use super::LineError;
use super::search::PeerSearch;

/// Looks for peers for up to `wait` and prints what they share, and what this machine has
/// of each game. Exits 2 when no peer answered.
pub async fn list(mut config: Config, json: bool, wait: Duration) -> Result<ExitCode, LineError> {
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    let local = read_local_library(&config, &catalog).await;
    // The runtime owns nothing of ours, so `list` works beside a running `serve` on the same dirs.
    let private = tempfile::tempdir().map_err(LineError::TempDir)?;
    config.game_dir = private.path().join("games");
    config.state_dir = private.path().join("state");
    let search = PeerSearch::of(&config, wait);
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
                    if !search.configured.is_empty() && search.heard_everyone(&snapshot) {
                        break;
                    }
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    runtime.shutdown().await;

    search.report_unanswered(&snapshot);
    if snapshot.peers.is_empty() {
        eprintln!("lanspread: {}", search.nobody_answered());
        return Ok(ExitCode::from(2));
    }
    for entry in &mut snapshot.games {
        entry.apply_local(local.get(&entry.id));
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

/// The local library, read only: no lock, no recovery, nothing written (the index is
/// read, so an unchanged game costs a `stat`; files never hashed are not hashed, a listing
/// needs no hashes). Empty when the game dir cannot be read.
async fn read_local_library(config: &Config, catalog: &Catalog) -> GameDB {
    let (game_dir, state_dir, catalog) = (config.game_dir.clone(), config.state_dir.clone(), catalog.clone());
    let scanned = tokio::task::spawn_blocking(move || {
        let mut index = LibraryIndex::load_for(&state_dir, &game_dir);
        scan_local_library(&game_dir, &catalog, &mut index, &mut Hashing::Skip)
    })
    .await;
    match scanned {
        Ok(Ok(local)) => local,
        Ok(Err(err)) => {
            tracing::info!("no local library to compare with: {err}");
            GameDB::default()
        }
        Err(err) => {
            tracing::warn!("reading the local library panicked: {err}");
            GameDB::default()
        }
    }
}
