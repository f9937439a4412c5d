//! The command line: the clap types, the one place that turns a command into
//! its [`Config`], and the dispatch from a command to the front end that runs it
//! (the TUI, or the line-mode front end in [`crate::ui::line`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::catalog::{Catalog, CatalogError};
use crate::config::{Config, ConfigError, DEFAULT_PORT, LocalArgs, NetworkArgs, PeerArgs};
use crate::demo::{Demo, DemoError};
use crate::peer::{PeerError, start_peer};
use crate::ui::line::{self, GetMode, LineError, LocalOperation};
use crate::ui::{Attachment, TuiContext, TuiError, require_terminal, run_tui, run_tui_on};

/// Share PC games across a LAN: peers find each other with mDNS and transfer over QUIC.
#[derive(Parser)]
// A flag goes after its command (`lanspread serve --game-dir X`): each command has only the
// flags it uses, and the flags before any command are the TUI's.
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// The TUI's flags
    #[command(flatten)]
    pub peer: PeerArgs,
    /// Downloads the TUI runs at once; more wait in its queue [default: 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub downloads_at_once: Option<u16>,
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
    Demo {
        /// Keep the demo's logs in DIR instead of a temporary dir
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
    },
    /// Run a peer without a user interface (e.g. on a seed box)
    ///
    /// Shares the game dir and runs until Ctrl-C or SIGTERM. Listens on port 47474 unless
    /// --listen says otherwise. Logs go to stderr and to a daily file in the log dir.
    Serve {
        #[command(flatten)]
        peer: PeerArgs,
    },
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
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Unpack a downloaded game's archives into its `local/` folder
    ///
    /// Works without the network. Replaces an older install (an update); the previous
    /// `local/` stays until the new one is complete.
    Install {
        /// The game id (its folder name in the game dir)
        id: String,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Remove the installed copy (`local/`) of a game; the downloaded archives stay
    Uninstall {
        /// The game id (its folder name in the game dir)
        id: String,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Delete a downloaded game's folder; refused while it is installed
    Remove {
        /// The game id (its folder name in the game dir)
        id: String,
        #[command(flatten)]
        local: LocalArgs,
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
        #[command(flatten)]
        local: LocalArgs,
        #[command(flatten)]
        network: NetworkArgs,
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
        #[command(flatten)]
        peer: PeerArgs,
    },
    /// Print what the running lanspread of this state dir is doing
    ///
    /// Attaches to the `serve` (or TUI, or `get`) that holds the state dir, through its
    /// control socket (<state dir>/control.sock), and prints its library, peers, running
    /// operations, transfers and last log lines. Exits 1 when nothing runs there.
    Status {
        /// Print {"runtime": {"pid", "runtime"}, "snapshot": {...}} as JSON (README, "Control socket")
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Follow the events of the running lanspread of this state dir, until it stops
    ///
    /// Attaches like `status`, then prints one line per runtime event. Exits 0 when the
    /// runtime stops, 1 when nothing runs there.
    Events {
        /// One JSON object per line, exactly as the control socket carries them: first
        /// {"type": "snapshot", ...}, then {"type": "event", "body": {...}} (README, "Control socket")
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        local: LocalArgs,
    },
    #[command(flatten)]
    Generated(Generated),
}

impl Command {
    /// The command's name, as a runtime it starts tells attaching front ends.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Demo { .. } => "demo",
            Command::Serve { .. } => "serve",
            Command::List { .. } => "list",
            Command::Install { .. } => "install",
            Command::Uninstall { .. } => "uninstall",
            Command::Remove { .. } => "remove",
            Command::Verify { .. } => "verify",
            Command::Get { .. } => "get",
            Command::Status { .. } => "status",
            Command::Events { .. } => "events",
            Command::Generated(_) => "generated",
        }
    }
}

/// Written from the clap definitions, so they list exactly the flags that exist.
#[derive(Subcommand)]
pub enum Generated {
    /// Print a shell completion script to stdout
    ///
    /// For bash: `lanspread completions bash > ~/.local/share/bash-completion/completions/lanspread`;
    /// zsh: into a folder on $fpath as `_lanspread`; fish: `~/.config/fish/completions/lanspread.fish`.
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, or write one page per command
    ///
    /// `lanspread man > ~/.local/share/man/man1/lanspread.1`, then `man lanspread`; or
    /// `lanspread man --out-dir ~/.local/share/man/man1` for lanspread.1 and a page for each
    /// command (`man lanspread-serve`).
    Man {
        /// Write lanspread.1 and lanspread-COMMAND.1 for every command into DIR (which must exist)
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

impl Generated {
    /// Prints the script or page (or writes the pages); needs no config, logs or network.
    pub fn print(&self) -> Result<(), CliError> {
        use clap::CommandFactory;
        use std::io::Write;
        let mut command = Cli::command();
        let mut out = std::io::stdout().lock();
        match self {
            Generated::Completions { shell } => {
                clap_complete::generate(*shell, &mut command, "lanspread", &mut out);
                out.flush().map_err(CliError::Stdout)
            }
            Generated::Man { out_dir: None } => clap_mangen::Man::new(command)
                .render(&mut out)
                .map_err(CliError::Stdout),
            Generated::Man { out_dir: Some(dir) } => {
                clap_mangen::generate_to(command, dir).map_err(|source| CliError::ManPages {
                    dir: dir.clone(),
                    source,
                })?;
                writeln!(out, "wrote lanspread.1 and a page per command into {}", dir.display())
                    .map_err(CliError::Stdout)
            }
        }
    }
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
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("cannot write the man pages into {}: {source}", .dir.display())]
    ManPages { dir: PathBuf, source: std::io::Error },
    #[error("--wait must be a positive number of seconds")]
    BadWait,
    #[error(transparent)]
    Attach(#[from] crate::control::client::AttachError),
}

impl Cli {
    /// The config for this command, resolved once: flags over the config file over defaults,
    /// then what the command itself implies.
    pub fn config(&self) -> Result<Config, ConfigError> {
        // `serve` listens on the well-known port so static peers can find a seed box.
        let default_port = if matches!(self.command, Some(Command::Serve { .. })) {
            DEFAULT_PORT
        } else {
            0
        };
        let mut config = Config::resolve(&self.peer_args(), SocketAddr::from(([0, 0, 0, 0], default_port)))?;
        config.runtime_name = self.command.as_ref().map_or("tui", Command::name);
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
            Some(Command::Demo { log_dir: None }) => {
                config.log_dir = tempfile::Builder::new()
                    .prefix("lanspread-demo-logs-")
                    .tempdir()
                    .map_err(ConfigError::DemoLogs)?
                    .keep();
            }
            None => {
                if let Some(downloads) = self.downloads_at_once {
                    config.downloads_at_once = usize::from(downloads);
                }
            }
            _ => {}
        }
        Ok(config)
    }

    /// Whether logs also go to stderr: only for `serve`, which has no other output;
    /// the TUI owns the terminal and the line-mode commands print their own lines.
    pub fn logs_to_stderr(&self) -> bool {
        matches!(self.command, Some(Command::Serve { .. }))
    }

    /// The flags of this command as one set; the groups it does not take are left at
    /// their defaults.
    fn peer_args(&self) -> PeerArgs {
        let local_and_network = |local: &LocalArgs, network: &NetworkArgs| PeerArgs {
            local: local.clone(),
            network: network.clone(),
            ..PeerArgs::default()
        };
        let local = |local: &LocalArgs| PeerArgs {
            local: local.clone(),
            ..PeerArgs::default()
        };
        match &self.command {
            None => self.peer.clone(),
            Some(Command::Serve { peer } | Command::Get { peer, .. }) => peer.clone(),
            Some(Command::List { local, network, .. } | Command::Verify { local, network, .. }) => {
                local_and_network(local, network)
            }
            Some(
                Command::Install { local: args, .. }
                | Command::Uninstall { local: args, .. }
                | Command::Remove { local: args, .. }
                | Command::Status { local: args, .. }
                | Command::Events { local: args, .. },
            ) => local(args),
            Some(Command::Demo { log_dir }) => PeerArgs {
                local: LocalArgs {
                    log_dir: log_dir.clone(),
                    ..LocalArgs::default()
                },
                ..PeerArgs::default()
            },
            Some(Command::Generated(_)) => PeerArgs::default(),
        }
    }

    /// The completion script or man page asked for, if that is the command: it runs
    /// before any config is read or log dir made.
    pub fn generated(&self) -> Option<&Generated> {
        match &self.command {
            Some(Command::Generated(generated)) => Some(generated),
            _ => None,
        }
    }

    /// Runs the command with `config` (from [`Cli::config`]) and returns its exit code.
    pub async fn run(self, config: Config) -> Result<ExitCode, CliError> {
        let Some(command) = self.command else {
            return tui(config).await;
        };
        Ok(match command {
            Command::Demo { log_dir } => return demo(config, log_dir.is_none()).await,
            Command::Generated(generated) => {
                generated.print()?;
                ExitCode::SUCCESS
            }
            Command::Serve { .. } => line::serve(config).await?,
            Command::List { json, wait, .. } => line::list(config, json, seconds(wait)?).await?,
            Command::Install { id, .. } => line::local_operation(config, LocalOperation::Install, id).await?,
            Command::Uninstall { id, .. } => line::local_operation(config, LocalOperation::Uninstall, id).await?,
            Command::Remove { id, .. } => line::local_operation(config, LocalOperation::Remove, id).await?,
            Command::Verify { id, repair, wait, .. } => line::verify(config, id, seconds(wait)?, repair).await?,
            Command::Status { json, .. } => line::status(&config.state_dir, json).await?,
            Command::Events { json, .. } => line::events(&config.state_dir, json).await?,
            Command::Get {
                id,
                no_install,
                wait,
                stream,
                ..
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
    require_terminal()?;
    // A runtime on this state dir already (a `serve`): drive that one.
    match crate::control::client::attach(&config.state_dir).await {
        Ok(session) => {
            let attached = Attachment {
                runtime: session.runtime.clone(),
                pid: session.pid,
            };
            tracing::info!(
                pid = session.pid,
                runtime = session.runtime,
                "the TUI attached to the running runtime"
            );
            let context = TuiContext::new(config.game_dir.clone(), session.listen)
                .with_log_dir(config.log_dir.clone())
                .attached_to(attached);
            let (events, commands) = session.into_channels();
            run_tui_on(events, commands, context).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(crate::control::client::AttachError::NoRuntime { .. }) => {}
        Err(err) => return Err(err.into()),
    }
    let catalog = Catalog::load(config.catalog_file.as_deref())?;
    let (game_dir, log_dir, state_dir, downloads_at_once) = (
        config.game_dir.clone(),
        config.log_dir.clone(),
        config.state_dir.clone(),
        config.downloads_at_once,
    );
    let mut runtime = start_peer(config, catalog)?;
    let context = TuiContext::new(game_dir, runtime.local_addr())
        .with_log_dir(log_dir)
        .with_state_dir(state_dir)
        .with_downloads_at_once(downloads_at_once);
    let result = run_tui(&mut runtime, context).await;
    runtime.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The TUI on a peer of its own, beside three generated seed peers; `config` only gives the
/// log dir, removed at the end when [`Cli::config`] made it (`made_log_dir`).
async fn demo(config: Config, made_log_dir: bool) -> Result<ExitCode, CliError> {
    if let Err(err) = require_terminal() {
        if made_log_dir {
            let _ = std::fs::remove_dir_all(&config.log_dir);
        }
        return Err(err.into());
    }
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
