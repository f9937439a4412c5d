//! Runtime configuration: command-line flags over an optional TOML config file
//! over XDG defaults.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The port `serve` listens on by default and the one assumed for `--peer HOST` without a port.
/// Downloads the TUI runs at once unless `downloads_at_once` or the flag says otherwise.
pub const DEFAULT_DOWNLOADS_AT_ONCE: usize = 2;

pub const DEFAULT_PORT: u16 = 47474;

/// Every flag of a peer, in the groups that commands take: the TUI, `serve` and `get`
/// take all three; `list` and `verify` run a peer that shares nothing; `install`,
/// `uninstall` and `remove` take only [`LocalArgs`]. A command offers only the flags it
/// uses.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PeerArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub sharing: SharingArgs,
}

/// Where this machine keeps games, state and logs, and what it knows of games.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LocalArgs {
    /// Folder holding one sub-folder per game id [default: ~/Games/lanspread]
    #[arg(long, value_name = "DIR")]
    pub game_dir: Option<PathBuf>,
    /// Folder for lanspread's own state: library index, install journal
    /// [default: $XDG_STATE_HOME/lanspread or ~/.local/state/lanspread]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Folder for daily-rolling log files [default: <state dir>/logs]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// A TOML file of extra games ([[game]] tables with id, name, description)
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Config file [default: $XDG_CONFIG_HOME/lanspread/config.toml, if it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How this peer meets others.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Network")]
pub struct NetworkArgs {
    /// UDP address to listen on for QUIC [default: 0.0.0.0:0, any free port;
    /// `serve` uses 0.0.0.0:47474 so static peers can find a seed box]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// A peer to contact directly, besides those found by mDNS; repeatable.
    /// Without a port, 47474 is assumed.
    #[arg(long = "peer", value_name = "ADDR:PORT")]
    pub peers: Vec<String>,
    /// Do not advertise or browse with mDNS; only --peer addresses are contacted
    #[arg(long)]
    pub no_mdns: bool,
    /// Name shown to other peers [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// What this peer grants the peers that download from it.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Sharing")]
pub struct SharingArgs {
    /// Cap this peer's total upload rate at MBPS megabytes (10^6 bytes) per second [default: no cap]
    #[arg(long, value_name = "MBPS")]
    pub upload_limit: Option<f64>,
    /// Peers this one sends game blocks to at once; the rest are told to ask other peers,
    /// and a peer that has had a slot for a while gives it to one that waits [default: 4]
    #[arg(long, value_name = "N")]
    pub upload_slots: Option<u32>,
}

/// The optional config file; every key mirrors a flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    game_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    #[serde(default)]
    peers: Vec<String>,
    mdns: Option<bool>,
    catalog: Option<PathBuf>,
    name: Option<String>,
    ping_interval_secs: Option<f64>,
    peer_timeout_secs: Option<f64>,
    upload_limit_mbps: Option<f64>,
    upload_slots: Option<u32>,
    downloads_at_once: Option<usize>,
    watch_game_dir: Option<bool>,
    fallback_scan_secs: Option<f64>,
    #[serde(default)]
    limits: LimitsFile,
}

/// `[limits]` in the config file: what one peer grants others (see [`Limits`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    connections_per_address: Option<u32>,
    connections: Option<u32>,
    streams_per_connection: Option<u32>,
    send_buffer_per_connection_mib: Option<u32>,
    file_reads_in_flight: Option<u32>,
}

/// What this peer grants the peers that connect to it, so that a hostile one cannot
/// exhaust it. Every limit is per serving peer; README "Hostile peers" has the reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open (and half-open) connections from one IP address; more are refused.
    pub connections_per_address: u32,
    /// Open connections from everyone together.
    pub connections: u32,
    /// Requests one connection may have open at once; more wait (QUIC flow control).
    pub streams_per_connection: u32,
    /// Bytes one connection may have sent but not yet acknowledged; writes beyond it wait.
    pub send_buffer_per_connection: u64,
    /// File opens and reads on blocking threads at once, over all requests.
    pub file_reads_in_flight: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_address: 8,
            connections: 128,
            streams_per_connection: 32,
            send_buffer_per_connection: 8 << 20,
            file_reads_in_flight: 16,
        }
    }
}

impl LimitsFile {
    fn resolve(&self) -> Result<Limits, ConfigError> {
        let default = Limits::default();
        let positive = |value: Option<u32>, default: u32, name: &'static str| match value {
            Some(0) => Err(ConfigError::BadLimit(name)),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        Ok(Limits {
            connections_per_address: positive(
                self.connections_per_address,
                default.connections_per_address,
                "connections_per_address",
            )?,
            connections: positive(self.connections, default.connections, "connections")?,
            streams_per_connection: positive(
                self.streams_per_connection,
                default.streams_per_connection,
                "streams_per_connection",
            )?,
            send_buffer_per_connection: match self.send_buffer_per_connection_mib {
                Some(mib) => u64::from(positive(Some(mib), 0, "send_buffer_per_connection_mib")?) << 20,
                None => default.send_buffer_per_connection,
            },
            file_reads_in_flight: positive(
                self.file_reads_in_flight,
                default.file_reads_in_flight,
                "file_reads_in_flight",
            )?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub game_dir: PathBuf,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub listen: SocketAddr,
    pub static_peers: Vec<SocketAddr>,
    pub mdns: bool,
    /// Whether to announce ourselves over mDNS (off for short-lived commands like `list`).
    pub advertise: bool,
    pub catalog_file: Option<PathBuf>,
    pub peer_name: String,
    pub ping_interval: Duration,
    /// A peer that has not answered a ping for this long is dropped.
    pub peer_timeout: Duration,
    /// Install a game as soon as its download finishes.
    pub auto_install: bool,
    /// Cap on the bytes per second this peer uploads, over all transfers.
    pub upload_limit: Option<u64>,
    /// Downloaders served blocks at once (see `peer::server::UploadSlots`).
    pub upload_slots: u32,
    /// Downloads the TUI runs at once; more wait in its queue.
    pub downloads_at_once: usize,
    /// Watch the game dir for changes (off: only the periodic scan notices them).
    pub watch_game_dir: bool,
    /// Full rescan period, a safety net for changes the watcher missed.
    pub fallback_scan_interval: Duration,
    /// What this peer grants the peers that connect to it.
    pub limits: Limits,
    /// Hash, in the background, the games without recorded hashes, so they can be shared.
    /// Off for `verify`: its reference must be what was recorded before it ran, and hashes it
    /// computed itself from the bytes it checks would only agree with them.
    pub hash_library: bool,
    /// What runs this runtime ("serve", "tui", "get", ...), as front ends that attach to
    /// its control socket are told.
    pub runtime_name: &'static str,
}

/// Four downloaders at full rate, as BitTorrent clients default to: more split the uplink
/// into shares too thin to pass blocks on quickly.
pub const DEFAULT_UPLOAD_SLOTS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("cannot resolve peer address {address:?}: {reason}")]
    BadPeer { address: String, reason: String },
    #[error("{0} must be a positive number of seconds")]
    BadDuration(&'static str),
    #[error("an upload limit must be a positive number of MB/s")]
    BadRate,
    #[error("[limits] {0} must be a positive whole number")]
    BadLimit(&'static str),
    #[error("cannot make {path} an absolute path: {source}")]
    Absolute { path: PathBuf, source: std::io::Error },
    #[error("cannot create a temporary log dir for the demo: {0}")]
    DemoLogs(#[source] std::io::Error),
    #[error("cannot work out a default for {0}: set $HOME or pass the flag")]
    NoHome(&'static str),
}

impl Config {
    /// Builds the config from flags, the config file, and defaults, in that order of precedence.
    /// `default_listen` differs per subcommand (`serve` wants a well-known port).
    pub fn resolve(args: &PeerArgs, default_listen: SocketAddr) -> Result<Self, ConfigError> {
        let file_path = args.local.config.clone().or_else(|| {
            let path = xdg_dir("XDG_CONFIG_HOME", ".config")
                .ok()?
                .join("lanspread/config.toml");
            path.exists().then_some(path)
        });
        let file = match &file_path {
            Some(path) => read_config_file(path)?,
            None => ConfigFile::default(),
        };

        // Flags are relative to the working directory, config-file paths to the file's folder;
        // both are made absolute once, here (the watcher and the locks compare absolute paths).
        let file_base = file_path.as_deref().and_then(Path::parent);
        let from_flag = |path: &Option<PathBuf>| path.as_deref().map(|path| absolute(path, None)).transpose();
        let from_file = |path: Option<PathBuf>| path.map(|path| absolute(&path, file_base)).transpose();
        let state_dir = match from_flag(&args.local.state_dir)?.or(from_file(file.state_dir)?) {
            Some(dir) => dir,
            None => absolute(&xdg_dir("XDG_STATE_HOME", ".local/state")?.join("lanspread"), None)?,
        };
        let game_dir = match from_flag(&args.local.game_dir)?.or(from_file(file.game_dir)?) {
            Some(dir) => dir,
            None => absolute(&home()?.join("Games/lanspread"), None)?,
        };
        let log_dir = match from_flag(&args.local.log_dir)?.or(from_file(file.log_dir)?) {
            Some(dir) => dir,
            None => state_dir.join("logs"),
        };
        let catalog_file = from_flag(&args.local.catalog)?.or(from_file(file.catalog)?);
        let peers = if args.network.peers.is_empty() {
            file.peers
        } else {
            args.network.peers.clone()
        };
        let static_peers = peers
            .iter()
            .map(|peer| resolve_peer_address(peer))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Config {
            game_dir,
            state_dir,
            log_dir,
            listen: args.network.listen.or(file.listen).unwrap_or(default_listen),
            static_peers,
            mdns: !args.network.no_mdns && file.mdns.unwrap_or(true),
            advertise: true,
            catalog_file,
            peer_name: args.network.name.clone().or(file.name).unwrap_or_else(host_name),
            ping_interval: seconds(file.ping_interval_secs, 2.0, "ping_interval_secs")?,
            peer_timeout: seconds(file.peer_timeout_secs, 10.0, "peer_timeout_secs")?,
            auto_install: true,
            upload_limit: args
                .sharing
                .upload_limit
                .or(file.upload_limit_mbps)
                .map(megabytes_per_second)
                .transpose()?,
            upload_slots: match args
                .sharing
                .upload_slots
                .or(file.upload_slots)
                .unwrap_or(DEFAULT_UPLOAD_SLOTS)
            {
                0 => return Err(ConfigError::BadLimit("upload_slots")),
                slots => slots,
            },
            downloads_at_once: match file.downloads_at_once.unwrap_or(DEFAULT_DOWNLOADS_AT_ONCE) {
                0 => return Err(ConfigError::BadLimit("downloads_at_once")),
                downloads => downloads,
            },
            watch_game_dir: file.watch_game_dir.unwrap_or(true),
            fallback_scan_interval: seconds(file.fallback_scan_secs, 300.0, "fallback_scan_secs")?,
            limits: file.limits.resolve()?,
            hash_library: true,
            runtime_name: "lanspread",
        })
    }

    /// A config for tests and the demo: everything under `root`, no mDNS, fast liveness checks.
    pub fn for_local_test(root: &Path) -> Self {
        Config {
            game_dir: root.join("games"),
            state_dir: root.join("state"),
            log_dir: root.join("logs"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            static_peers: Vec::new(),
            mdns: false,
            advertise: false,
            catalog_file: None,
            peer_name: "test".to_owned(),
            ping_interval: Duration::from_millis(200),
            peer_timeout: Duration::from_secs(2),
            auto_install: false,
            upload_limit: None,
            upload_slots: DEFAULT_UPLOAD_SLOTS,
            downloads_at_once: DEFAULT_DOWNLOADS_AT_ONCE,
            watch_game_dir: true,
            fallback_scan_interval: Duration::from_secs(300),
            limits: Limits::default(),
            hash_library: true,
            runtime_name: "test",
        }
    }
}

fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn seconds(value: Option<f64>, default: f64, name: &'static str) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::BadDuration(name))
    }
}

/// Megabytes (10^6 bytes) per second, as users think of link speeds, to bytes per second.
pub fn megabytes_per_second(value: f64) -> Result<u64, ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok((value * 1e6) as u64)
    } else {
        Err(ConfigError::BadRate)
    }
}

/// `HOST:PORT`, `IP:PORT`, `[V6]:PORT`, or a bare host/IP meaning port 47474.
pub fn resolve_peer_address(address: &str) -> Result<SocketAddr, ConfigError> {
    let bad = |reason: String| ConfigError::BadPeer {
        address: address.to_owned(),
        reason,
    };
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let with_port = if address.contains(':') {
        address.to_owned()
    } else {
        format!("{address}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|err| bad(err.to_string()))?
        .next()
        .ok_or_else(|| bad("no address found".to_owned()))
}

/// `path` made absolute against `base`, or against the working directory when `base` is `None`.
pub fn absolute(path: &Path, base: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let joined = match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_owned(),
    };
    std::path::absolute(&joined).map_err(|source| ConfigError::Absolute { path: joined, source })
}

fn home() -> Result<PathBuf, ConfigError> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .ok_or(ConfigError::NoHome("the game and state dirs"))
}

fn xdg_dir(variable: &str, fallback_under_home: &str) -> Result<PathBuf, ConfigError> {
    match std::env::var_os(variable).filter(|value| !value.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(home()?.join(fallback_under_home)),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "lanspread".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_default_their_port() {
        assert_eq!(
            resolve_peer_address("10.0.0.5").unwrap(),
            "10.0.0.5:47474".parse().unwrap()
        );
        assert_eq!(
            resolve_peer_address("10.0.0.5:9").unwrap(),
            "10.0.0.5:9".parse().unwrap()
        );
        assert_eq!(resolve_peer_address("[::1]:9").unwrap(), "[::1]:9".parse().unwrap());
        assert_eq!(resolve_peer_address("::1").unwrap(), "[::1]:47474".parse().unwrap());
        assert_eq!(resolve_peer_address("localhost:9").unwrap().port(), 9);
        assert!(resolve_peer_address("no such host.invalid").is_err());
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "game_dir = \"/games\"\nstate_dir = \"/state\"\npeers = [\"10.0.0.1\"]\nmdns = false\nping_interval_secs = 0.5\n",
        )
        .unwrap();
        let args = PeerArgs {
            local: LocalArgs {
                game_dir: Some("/flag-games".into()),
                config: Some(file.clone()),
                ..LocalArgs::default()
            },
            ..PeerArgs::default()
        };
        let config = Config::resolve(&args, "0.0.0.0:0".parse().unwrap()).unwrap();
        assert_eq!(config.game_dir, PathBuf::from("/flag-games"));
        assert_eq!(config.state_dir, PathBuf::from("/state"));
        assert_eq!(config.log_dir, PathBuf::from("/state/logs"));
        assert_eq!(config.static_peers, ["10.0.0.1:47474".parse().unwrap()]);
        assert!(!config.mdns);
        assert_eq!(config.ping_interval, Duration::from_millis(500));

        std::fs::write(&file, "gamedir = \"/typo\"\n").unwrap();
        let err = Config::resolve(&args, "0.0.0.0:0".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("gamedir"), "{err}");
    }

    #[test]
    fn limits_come_from_their_table_and_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let args = PeerArgs {
            local: LocalArgs {
                config: Some(file.clone()),
                ..LocalArgs::default()
            },
            ..PeerArgs::default()
        };
        std::fs::write(
            &file,
            "[limits]\nconnections_per_address = 2\nsend_buffer_per_connection_mib = 3\n",
        )
        .unwrap();
        let limits = Config::resolve(&args, "0.0.0.0:0".parse().unwrap()).unwrap().limits;
        assert_eq!(limits.connections_per_address, 2);
        assert_eq!(limits.send_buffer_per_connection, 3 << 20);
        assert_eq!(limits.connections, Limits::default().connections);

        std::fs::write(&file, "[limits]\nfile_reads_in_flight = 0\n").unwrap();
        let err = Config::resolve(&args, "0.0.0.0:0".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("file_reads_in_flight"), "{err}");
    }

    #[test]
    fn relative_dirs_become_absolute_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "state_dir = \"state\"\ncatalog = \"extra.toml\"\n").unwrap();
        let args = PeerArgs {
            local: LocalArgs {
                game_dir: Some("games".into()),
                config: Some(file),
                ..LocalArgs::default()
            },
            ..PeerArgs::default()
        };
        let config = Config::resolve(&args, "0.0.0.0:0".parse().unwrap()).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            config.game_dir,
            cwd.join("games"),
            "a flag is relative to the working dir"
        );
        assert_eq!(
            config.state_dir,
            dir.path().join("state"),
            "a config path is relative to the file"
        );
        assert_eq!(config.log_dir, dir.path().join("state/logs"));
        assert_eq!(config.catalog_file, Some(dir.path().join("extra.toml")));
    }
}
