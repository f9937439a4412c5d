//! The `lanspread` command line: parses flags, builds the config, runs a subcommand.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lanspread::catalog::Catalog;
use lanspread::config::{Config, DEFAULT_PORT, PeerArgs};
use lanspread::peer::{LibrarySnapshot, PeerEvent, start_peer};
use lanspread::{logging, ui};
use tokio::signal::unix::{SignalKind, signal};

/// Share PC games across a LAN: peers find each other with mDNS and transfer over QUIC.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    peer: PeerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a peer without a user interface (e.g. on a seed box), until Ctrl-C or SIGTERM.
    /// Logs go to stderr and to a daily file in the log dir.
    Serve,
    /// Find peers for a few seconds and print the games they share.
    List {
        /// Print a JSON array of {"id", "name", "version", "size", "peers"} instead of a table
        #[arg(long)]
        json: bool,
        /// Seconds to look for peers (stops earlier once every --peer has answered, when mDNS is off)
        #[arg(long, value_name = "SECS", default_value_t = 3.0)]
        wait: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("lanspread: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lanspread: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))?;
            serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json, wait } => {
            anyhow::ensure!(
                wait.is_finite() && wait > 0.0,
                "--wait must be a positive number of seconds"
            );
            let mut config = Config::resolve(&cli.peer, SocketAddr::from(([0, 0, 0, 0], 0)))?;
            config.advertise = false;
            list(config, json, Duration::from_secs_f64(wait)).await
        }
    }
}

fn load_catalog(config: &Config) -> anyhow::Result<Catalog> {
    Ok(Catalog::load(config.catalog_file.as_deref())?)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _log_guard = logging::init(&config.log_dir, true)
        .with_context(|| format!("cannot set up logging in {}", config.log_dir.display()))?;
    let catalog = load_catalog(&config)?;
    tracing::info!(
        game_dir = %config.game_dir.display(),
        mdns = config.mdns,
        static_peers = config.static_peers.len(),
        "starting lanspread serve"
    );
    let mut runtime = start_peer(config, catalog)?;
    tracing::info!("listening on {}", runtime.local_addr());
    let mut terminate = signal(SignalKind::terminate())?;
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
    Ok(())
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

async fn list(config: Config, json: bool, wait: Duration) -> anyhow::Result<ExitCode> {
    let _log_guard = logging::init(&config.log_dir, false)
        .with_context(|| format!("cannot set up logging in {}", config.log_dir.display()))?;
    let catalog = load_catalog(&config)?;
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
    let rows = ui::table::remote_rows(&snapshot);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("{} peer(s) answered, sharing no games.", snapshot.peers.len());
    } else {
        print!("{}", ui::table::render_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
