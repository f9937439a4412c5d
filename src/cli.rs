//! The command line: the clap types, the one place that turns a command into
//! its [`Config`], and the dispatch from a command to the front end that runs it
//! (the TUI, or the line-mode front end in [`crate::ui::line`]).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::catalog::{Catalog, CatalogError};
use crate::config::{Config, ConfigError, DEFAULT_PORT, PeerArgs};
use crate::demo::{Demo, DemoError};
use crate::peer::{PeerError, start_peer};
use crate::ui::line::{self, GetMode, LineError, LocalOperation};
use crate::ui::{TuiContext, TuiError, run_tui};

/// Share PC games across a LAN: peers find each other with mDNS and transfer over QUIC.
#[derive(Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub peer: PeerArgs,
    /// Without a command: the terminal UI (library, peers, transfers, log; `?` for keys)
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// A LAN party on this machine, to try lanspread out
    ///
    /// Three seed peers on loopback share generated games, and the terminal UI opens
    /// on your own empty peer. Everything is removed on exit, logs included (they are in a
    /// temporary dir, shown in the help overlay, unless --log-dir is given).
    Demo,
    /// Run a peer without a user interface (e.g. on a seed box)
    ///
    /// Shares the game dir and runs until Ctrl-C or SIGTERM. Listens on port 47474 unless
    /// --listen says otherwise. Logs go to stderr and to a daily file in the log dir.
    Serve,
    /// Print the games that peers share, and what this machine has of each
    ///
    /// Looks for peers for a few seconds. Changes nothing local: it reads the game dir
    /// (and the library index) without locking, and its peer runs on a private temporary
    /// game and state dir, so it works beside a running `serve` or TUI.
    /// Exits 2 when no peer answered.
    List {
        /// Print a JSON array of {"id", "name", "version", "size", "peers", "state",
        /// "local_version", "installed_version", "install_failure"} instead of a table
        #[arg(long)]
        json: bool,
        /// Seconds to look for peers (stops earlier once every --peer has answered, when mDNS is off)
        #[arg(long, value_name = "SECS", default_value_t = 3.0)]
        wait: f64,
    },
    /// Unpack a downloaded game's archives into its `local/` folder
    ///
    /// Works without the network. Replaces an older install (an update); the previous
    /// `local/` stays until the new one is complete.
    Install {
        /// The game id (its folder name in the game dir)
        id: String,
    },
    /// Remove the installed copy (`local/`) of a game; the downloaded archives stay
    Uninstall {
        /// The game id (its folder name in the game dir)
        id: String,
    },
    /// Delete a downloaded game's folder; refused while it is installed
    Remove {
        /// The game id (its folder name in the game dir)
        id: String,
    },
    /// Check a downloaded game, block by block, and repair it if asked
    ///
    /// Hashes every file of the game and compares it with the peers that have the same
    /// version (their majority), or, when none answers, with the hashes recorded here when
    /// the game was scanned or downloaded. Prints the damaged files and blocks. With
    /// --repair, fetches only the damaged blocks from those peers. Exits 0 when intact (or
    /// repaired), 1 when damaged and not repaired, 2 when there is nothing to compare with.
    Verify {
        /// The game id (its folder name in the game dir)
        id: String,
        /// Fetch the damaged blocks from the peers that have the same version
        #[arg(long)]
        repair: bool,
        /// Seconds to look for peers that have the game
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        wait: f64,
    },
    /// Download a game from the peers that have its latest version, and install it
    ///
    /// Does only what is missing: nothing when the game is up to date, the install when
    /// it is downloaded but not installed, else the download from every peer that has
    /// the latest version and then the install. Shows a progress line on stderr when it
    /// is a terminal and prints a summary. Exits 0 only when the game is complete (and
    /// installed, unless --no-install), 2 when no peer shares it, 130 after Ctrl-C
    /// (which cancels and cleans up; an earlier install stays as it was), else 1. While it
    /// runs it is a peer like any other: others find it and fetch the blocks it has verified.
    Get {
        /// The game id, as in `lanspread list`
        id: String,
        /// Only download; do not install afterwards
        #[arg(long)]
        no_install: bool,
        /// Seconds to look for peers that have the game
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        wait: f64,
        /// Streamed install: a peer unpacks and sends the files; no archive is stored here
        /// (for a disk without room for archives plus the install)
        #[arg(long, conflicts_with = "no_install")]
        stream: bool,
    },
}

/// Why a command could not run; what it found out is printed by its front end instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Tui(#[from] TuiError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(transparent)]
    Line(#[from] LineError),
    #[error("--wait must be a positive number of seconds")]
    BadWait,
}

impl Cli {
    /// The config for this command, resolved once: flags over the config file over defaults,
    /// then what the command itself implies.
    pub fn config(&self) -> Result<Config, ConfigError> {
        // `serve` listens on the well-known port so static peers can find a seed box.
        let default_port = if matches!(self.command, Some(Command::Serve)) {
            DEFAULT_PORT
        } else {
            0
        };
        let mut config = Config::resolve(&self.peer, SocketAddr::from(([0, 0, 0, 0], default_port)))?;
        match &self.command {
            // Short-lived commands that others need not find.
            Some(Command::List { .. }) => config.advertise = false,
            // A `get` is a full peer while it runs: others find it and fetch the blocks it
            // has verified (the swarm), as they do from a TUI.
            Some(Command::Get { no_install, .. }) => {
                config.auto_install = !no_install;
            }
            Some(Command::Verify { .. }) => {
                config.advertise = false;
                // A repair rewrites blocks of the archives; the install stays as it is.
                config.auto_install = false;
                config.hash_library = false;
            }
            // The demo leaves nothing behind, its logs included (unless --log-dir says where).
            Some(Command::Demo) if self.peer.log_dir.is_none() => {
                config.log_dir = tempfile::Builder::new()
                    .prefix("lanspread-demo-logs-")
                    .tempdir()
                    .map_err(ConfigError::DemoLogs)?
                    .keep();
            }
            _ => {}
        }
        Ok(config)
    }

    /// Whether logs also go to stderr: only for `serve`, which has no other output;
    /// the TUI owns the terminal and the line-mode commands print their own lines.
    pub fn logs_to_stderr(&self) -> bool {
        matches!(self.command, Some(Command::Serve))
    }

    /// Runs the command with `config` (from [`Cli::config`]) and returns its exit code.
    pub async fn run(self, config: Config) -> Result<ExitCode, CliError> {
        let Some(command) = self.command else {
            return tui(config).await;
        };
        Ok(match command {
            Command::Demo => {
                let made_log_dir = self.peer.log_dir.is_none();
                return demo(config, made_log_dir).await;
            }
            Command::Serve => line::serve(config).await?,
            Command::List { json, wait } => line::list(config, json, seconds(wait)?).await?,
            Command::Install { id } => line::local_operation(config, LocalOperation::Install, id).await?,
            Command::Uninstall { id } => line::local_operation(config, LocalOperation::Uninstall, id).await?,
            Command::Remove { id } => line::local_operation(config, LocalOperation::Remove, id).await?,
            Command::Verify { id, repair, wait } => line::verify(config, id, seconds(wait)?, repair).await?,
            Command::Get {
                id,
                no_install,
                wait,
                stream,
            } => {
                let mode = match (stream, no_install) {
                    (true, _) => GetMode::Stream,
                    (false, false) => GetMode::DownloadAndInstall,
                    (false, true) => GetMode::Download,
                };
                line::get(config, id, seconds(wait)?, mode).await?
            }
        })
    }
}

fn seconds(wait: f64) -> Result<Duration, CliError> {
    if wait.is_finite() && wait > 0.0 {
        Ok(Duration::from_secs_f64(wait))
    } else {
        Err(CliError::BadWait)
    }
}

/// The terminal UI on a peer. Logs go to the log file only: the TUI owns the terminal.
async fn tui(config: Config) -> Result<ExitCode, CliError> {
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    let (game_dir, log_dir, state_dir) = (
        config.game_dir.clone(),
        config.log_dir.clone(),
        config.state_dir.clone(),
    );
    let mut runtime = start_peer(config, catalog)?;
    let context = TuiContext::new(game_dir, runtime.local_addr())
        .with_log_dir(log_dir)
        .with_state_dir(state_dir);
    let result = run_tui(&mut runtime, context).await;
    runtime.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The TUI on a peer of its own, beside three generated seed peers; `config` only gives the
/// log dir, removed at the end when [`Cli::config`] made it (`made_log_dir`).
async fn demo(config: Config, made_log_dir: bool) -> Result<ExitCode, CliError> {
    eprintln!("lanspread demo: generating games for three seed peers...");
    let demo = Demo::start().await?;
    let user = demo.user_config();
    let (game_dir, listen) = (user.game_dir.clone(), user.listen);
    let result = async {
        let mut runtime = start_peer(user, Catalog::bundled())?;
        let context = TuiContext::new(game_dir, runtime.local_addr()).with_log_dir(config.log_dir.clone());
        let result = run_tui(&mut runtime, context).await;
        runtime.shutdown().await;
        Ok::<_, CliError>(result?)
    }
    .await;
    tracing::info!(%listen, "demo finished; removing its files");
    demo.stop().await;
    if made_log_dir {
        // A fresh temporary dir of this run's: nothing but our logs is in it.
        if let Err(err) = std::fs::remove_dir_all(&config.log_dir) {
            eprintln!(
                "lanspread demo: cannot remove its logs in {}: {err}",
                config.log_dir.display()
            );
        }
    }
    result?;
    Ok(ExitCode::SUCCESS)
}
