//! `get` and `get --stream`: find the peers with a game's latest version, then
//! download and install it (or stream-install it), with a progress line on
//! stderr when it is a terminal and a summary on stdout.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::library::Version;
use crate::peer::{LibraryEntry, LibrarySnapshot, PeerCommand, PeerEvent, PeerRuntimeHandle, start_peer};
use crate::ui::format::{format_rate, format_size, progress_line};

use super::link::Link;
use super::search::PeerSearch;
use super::{LineError, exit_code, next_event_or_cancel};

/// How long `get` keeps looking for more peers with the game after the first one answered.
const GET_SETTLE: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetMode {
    Download,
    DownloadAndInstall,
    Stream,
}

/// Runs `get` through the runtime that runs on the state dir, or else on a peer of its
/// own; `wait` bounds the search for peers that have `id`.
pub async fn get(config: Config, id: String, wait: Duration, mode: GetMode) -> Result<ExitCode, LineError> {
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    if !catalog.contains(&id) {
        return Err(LineError::NotInCatalog(id));
    }
    let search = PeerSearch::of(&config, wait);
    if let Some(mut attached) = Link::attach_if_running(&config).await? {
        if mode == GetMode::Download {
            // Its config decides what follows a download, and it installs.
            eprintln!(
                "lanspread: --no-install cannot be kept: the lanspread running on this state dir installs \
                 what it downloads; get without --no-install, or stop it first"
            );
            return Ok(ExitCode::FAILURE);
        }
        return get_with(&mut attached, &id, &search, mode).await;
    }
    let mut runtime = Link::Own(start_peer(config, catalog)?);
    let code = get_with(&mut runtime, &id, &search, mode).await;
    if let (Ok(code), Link::Own(own)) = (&code, &mut runtime)
        && *code == ExitCode::SUCCESS
    {
        finish_uploads(own).await;
    }
    runtime.finish().await;
    code
}

/// How long `get` goes on sending to peers that fetch from it once its own game is done.
const LINGER_MOST: Duration = Duration::from_secs(30);
/// Sending nothing for this long, it leaves.
const LINGER_IDLE: Duration = Duration::from_millis(500);

/// Once the game is here, goes on serving peers that are fetching blocks from us (the
/// swarm: their blocks in flight would otherwise fail and wait for a stall timeout), until
/// none has been sent for [`LINGER_IDLE`], at most [`LINGER_MOST`], or Ctrl-C. Events are
/// read and dropped meanwhile, so the runtime never waits on a full event queue.
async fn finish_uploads(runtime: &mut PeerRuntimeHandle) {
    if runtime.uploads_in_flight() == 0 {
        return;
    }
    eprintln!("lanspread: sending to peers that are still fetching from us (Ctrl-C stops)");
    let slots = runtime.upload_slots();
    let drain = async {
        while runtime.next_event().await.is_some() {}
        // The runtime stopped: nothing is being sent any more.
    };
    tokio::select! {
        () = linger(|| slots.streams()) => {}
        () = drain => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Returns once `in_flight` has been 0 for [`LINGER_IDLE`], or after [`LINGER_MOST`].
async fn linger(in_flight: impl Fn() -> usize) {
    let start = tokio::time::Instant::now();
    let mut idle_since = start;
    while start.elapsed() < LINGER_MOST {
        if in_flight() > 0 {
            idle_since = tokio::time::Instant::now();
        } else if idle_since.elapsed() >= LINGER_IDLE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `get` has left to do for a game, decided from its library entry by [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetPlan {
    /// Download the latest version (and install it, unless only downloading).
    Download,
    /// The latest version is downloaded but not installed (an earlier install was cut
    /// short or failed): install it.
    Install,
    /// Nothing: the latest version is here (and installed, unless only downloading).
    UpToDate,
}

/// The one place that decides what `get` does for a game that peers share. `entry`
/// must come from a snapshot with the local library scanned.
pub fn plan(entry: &LibraryEntry, mode: GetMode) -> GetPlan {
    let latest = entry.latest_version.as_deref().map(Version::new);
    // A version newer than any peer's counts as up to date: `get` never downgrades.
    let at_latest = |version: Option<&str>| latest.is_some() && version.map(Version::new) >= latest;
    let downloaded = at_latest(entry.local_version.as_deref());
    // A streamed install has no download: the version it recorded is what counts.
    let installed = entry.installed_is_current()
        && at_latest(entry.installed_version.as_deref().or(entry.local_version.as_deref()));
    match (mode, downloaded, installed) {
        // Only downloading: an install (even a streamed one) does not count.
        (GetMode::Download, true, _) => GetPlan::UpToDate,
        (GetMode::Download, false, _) => GetPlan::Download,
        (_, _, true) => GetPlan::UpToDate,
        (_, true, false) => GetPlan::Install,
        (_, false, false) => GetPlan::Download,
    }
}

async fn get_with(runtime: &mut Link, id: &str, search: &PeerSearch, mode: GetMode) -> Result<ExitCode, LineError> {
    // 1. Find the peers that have the game's latest version, and learn what is here.
    let snapshot = match discover(runtime, id, search).await? {
        Ok(snapshot) => snapshot,
        Err(code) => return Ok(code),
    };
    let Some(entry) = snapshot.game(id).filter(|game| !game.peers.is_empty()) else {
        search.report_unanswered(&snapshot);
        match snapshot.peers.len() {
            0 => eprintln!("lanspread: {}", search.nobody_answered()),
            answered => eprintln!(
                "lanspread: no peer shares {id} ({answered} peer(s) answered within {:.1}s)",
                search.wait.as_secs_f64()
            ),
        }
        return Ok(ExitCode::from(2));
    };
    let latest = entry.latest_version.clone().unwrap_or_default();
    if mode == GetMode::Stream {
        return stream_install_with(runtime, id, &latest).await;
    }
    match plan(entry, mode) {
        GetPlan::UpToDate => {
            let version = entry.local_newest().unwrap_or(&latest);
            if entry.installed {
                println!("{id} {version} is up to date");
            } else {
                println!("{id} {version} is already downloaded");
            }
            return Ok(ExitCode::SUCCESS);
        }
        GetPlan::Install => {
            match &entry.install_failure {
                Some(why) => {
                    eprintln!("{id} {latest} is downloaded; its last install failed ({why}); installing again")
                }
                None => eprintln!("{id} {latest} is downloaded but not installed"),
            }
            runtime.send(PeerCommand::InstallGame { id: id.to_owned() }).await?;
        }
        GetPlan::Download => {
            // The file list, then the download.
            runtime.send(PeerCommand::GetGame { id: id.to_owned() }).await?;
            let files = loop {
                match runtime.event().await? {
                    PeerEvent::GotGameFiles { id: got, files, .. } if got == id => break files,
                    PeerEvent::GameFilesUnavailable { id: got, reason } if got == id => {
                        eprintln!("lanspread: cannot get {id}: {reason}");
                        return Ok(ExitCode::FAILURE);
                    }
                    _ => {}
                }
            };
            runtime
                .send(PeerCommand::DownloadGameFiles {
                    id: id.to_owned(),
                    files,
                })
                .await?;
        }
    }
    follow_download_and_install(runtime, id, mode).await
}

/// Waits (at most the search's `wait`) for the peers, settling shortly after the first one
/// that shares `id`, or until every configured peer answered and one shares it when mDNS
/// is off; then for the local scan.
/// A failed local scan ends the command with its exit code (the `Err`).
pub(super) async fn discover(
    runtime: &mut Link,
    id: &str,
    search: &PeerSearch,
) -> Result<Result<LibrarySnapshot, ExitCode>, LineError> {
    let deadline = Instant::now() + search.wait;
    let mut settle_until: Option<Instant> = None;
    let mut snapshot = LibrarySnapshot::default();
    loop {
        let until = settle_until.map_or(deadline, |settle| settle.min(deadline));
        let event = tokio::select! {
            () = tokio::time::sleep_until(until) => break,
            event = runtime.event() => event?,
        };
        if let Err(code) = fold_library(event, &mut snapshot) {
            return Ok(Err(code));
        }
        let shared = snapshot.game(id).is_some_and(|game| !game.peers.is_empty());
        // A peer that answered without the game may still be hashing it (a game is announced
        // once hashed), so only an answer with the game ends the wait early.
        if search.heard_everyone(&snapshot) && shared && snapshot.local_scanned {
            break;
        }
        if shared {
            settle_until.get_or_insert_with(|| Instant::now() + GET_SETTLE);
        }
    }
    // Deciding before the local scan would download again what is already here.
    while !snapshot.local_scanned {
        let event = runtime.event().await?;
        if let Err(code) = fold_library(event, &mut snapshot) {
            return Ok(Err(code));
        }
    }
    Ok(Ok(snapshot))
}

/// Keeps the newest library snapshot; a failed local scan ends `get` (with its exit code),
/// since what is here cannot be known.
fn fold_library(event: PeerEvent, snapshot: &mut LibrarySnapshot) -> Result<(), ExitCode> {
    match event {
        PeerEvent::LibraryUpdated(update) => *snapshot = update,
        PeerEvent::RuntimeFailed { component, error } if component == "library" && !snapshot.local_scanned => {
            eprintln!("lanspread: cannot scan the game dir: {error}");
            return Err(ExitCode::FAILURE);
        }
        _ => {}
    }
    Ok(())
}

/// Prints the progress and the outcome of a download and/or install of `id` until it ends.
async fn follow_download_and_install(runtime: &mut Link, id: &str, mode: GetMode) -> Result<ExitCode, LineError> {
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
                clear_progress(show_progress);
                let seconds = summary.elapsed.as_secs_f64();
                // The rate is the network's: reused bytes did not travel.
                let fetched = summary.bytes - summary.reused;
                println!(
                    "downloaded {id} {version}: {} bytes (fetched {fetched}, reused {}) in {seconds:.2} s ({}) from {} peer(s); \
                     seeds sent {} bytes, partial peers {} bytes, availability {} bytes",
                    summary.bytes,
                    summary.reused,
                    format_rate(fetched as f64 / seconds.max(1e-9)),
                    summary.peers_used.len(),
                    summary.from_seeds,
                    summary.from_partials,
                    summary.availability_bytes,
                );
                if mode == GetMode::Download {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            PeerEvent::InstallGameBegin { .. } => {
                eprintln!("installing {id}...");
                // A Ctrl-C that came as the download finished cancels its install too.
                if cancelled {
                    runtime.send(PeerCommand::CancelDownload { id: id.to_owned() }).await?;
                }
            }
            PeerEvent::InstallGameProgress { files, bytes, .. } if show_progress => {
                eprint!("\r{files} files, {} extracted\x1b[K", format_size(bytes));
                let _ = std::io::stderr().flush();
            }
            PeerEvent::InstallGameFinished { updated, .. } => {
                clear_progress(show_progress);
                println!("{} {id}", if updated { "updated" } else { "installed" });
                return Ok(ExitCode::SUCCESS);
            }
            PeerEvent::InstallGameFailed { reason, .. } => {
                if cancelled {
                    eprintln!(
                        "\nlanspread: install of {id} cancelled; the download stays and an earlier install is unchanged"
                    );
                } else {
                    eprintln!("\nlanspread: {id} was downloaded but its install failed: {reason}");
                }
                return Ok(exit_code(cancelled));
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

/// Clears the progress line, so the summary starts on a clean line.
pub(super) fn clear_progress(show_progress: bool) {
    if show_progress {
        eprint!("\r\x1b[K");
    }
}

/// `get --stream`: the same progress line and summary, for a streamed install.
async fn stream_install_with(runtime: &mut Link, id: &str, version: &str) -> Result<ExitCode, LineError> {
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
                clear_progress(show_progress);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Runs `linger` on a paused clock with `in_flight` answers until `send_for`, then none;
    /// returns how long it lingered.
    async fn lingered(send_for: Duration) -> Duration {
        let in_flight = Arc::new(AtomicUsize::new(1));
        let start = tokio::time::Instant::now();
        let sending = in_flight.clone();
        let stop_sending = tokio::spawn(async move {
            tokio::time::sleep(send_for).await;
            sending.store(0, Ordering::SeqCst);
        });
        linger(|| in_flight.load(Ordering::SeqCst)).await;
        stop_sending.abort();
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_get_serves_until_its_answers_end_then_leaves_once_idle() {
        let took = lingered(Duration::from_secs(7)).await;
        assert!(
            took >= Duration::from_secs(7) + LINGER_IDLE,
            "left at {took:?}, while still sending"
        );
        assert!(
            took < Duration::from_secs(8),
            "lingered {took:?}, long after the answers ended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_get_leaves_after_the_longest_linger_even_while_sending() {
        let took = lingered(Duration::from_secs(3600)).await;
        assert!(
            took >= LINGER_MOST && took < LINGER_MOST + Duration::from_secs(1),
            "{took:?}"
        );
    }

    fn entry(local: Option<&str>, latest: &str, installed: bool) -> LibraryEntry {
        LibraryEntry {
            id: "openarena".into(),
            local_version: local.map(Into::into),
            latest_version: Some(latest.into()),
            installed,
            ..LibraryEntry::default()
        }
    }

    #[test]
    fn get_does_only_what_is_missing() {
        let install = GetMode::DownloadAndInstall;
        assert_eq!(plan(&entry(None, "2", false), install), GetPlan::Download);
        assert_eq!(plan(&entry(Some("1"), "2", true), install), GetPlan::Download);
        assert_eq!(plan(&entry(Some("2"), "2", false), install), GetPlan::Install);
        assert_eq!(plan(&entry(Some("2"), "2", true), install), GetPlan::UpToDate);
        assert_eq!(
            plan(&entry(Some("3"), "2", true), install),
            GetPlan::UpToDate,
            "never a downgrade"
        );
        // `local/` recorded an older version than the download: an update's install was cut short.
        let cut_short = LibraryEntry {
            installed_version: Some("1".into()),
            ..entry(Some("2"), "2", true)
        };
        assert_eq!(plan(&cut_short, install), GetPlan::Install);
        // A streamed install at the latest version has no download and needs none.
        let streamed = LibraryEntry {
            installed_version: Some("2".into()),
            streamed: true,
            ..entry(None, "2", true)
        };
        assert_eq!(plan(&streamed, install), GetPlan::UpToDate);
        assert_eq!(plan(&streamed, GetMode::Download), GetPlan::Download);

        let download = GetMode::Download;
        assert_eq!(plan(&entry(Some("2"), "2", false), download), GetPlan::UpToDate);
        assert_eq!(plan(&entry(Some("1"), "2", false), download), GetPlan::Download);
    }
}
