//! Fixtures shared by the TUI's unit tests: a small LAN with games in every state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::app::App;
use super::input::Action;
use crate::peer::{
    AbsentPeer, ActiveOperation, DownloadProgress, DownloadSummary, GameState, LibraryEntry, LibrarySnapshot,
    OperationKind, PeerEvent, PeerGameVersion, PeerProgress, PeerSummary,
};
use crate::proto::GameFileDescription;

pub const GIB: u64 = 1 << 30;

pub fn addr(port: u16) -> SocketAddr {
    ([10, 0, 0, 2], port).into()
}

pub fn clock() -> String {
    "12:00:00".to_owned()
}

pub fn peer(port: u16, name: &str, games: usize) -> PeerSummary {
    PeerSummary {
        addr: addr(port),
        peer_id: format!("id-{name}"),
        name: name.to_owned(),
        game_count: games,
        latency: Duration::from_millis(3),
        library_loaded: true,
        unanswered_for: None,
    }
}

pub fn game(
    id: &str,
    name: &str,
    state: GameState,
    local: Option<&str>,
    latest: Option<&str>,
    size: u64,
) -> LibraryEntry {
    let peers = match (state, latest) {
        (GameState::RemoteOnly | GameState::UpdateAvailable, Some(latest)) => vec![
            PeerGameVersion {
                addr: addr(1),
                peer_name: "alice".into(),
                version: latest.into(),
                size,
                expanded_size: None,
            },
            PeerGameVersion {
                addr: addr(2),
                peer_name: "bob".into(),
                version: latest.into(),
                size,
                expanded_size: None,
            },
        ],
        _ => Vec::new(),
    };
    LibraryEntry {
        id: id.into(),
        name: name.into(),
        state,
        local_version: local.map(Into::into),
        latest_version: latest.map(Into::into),
        installed: matches!(state, GameState::Installed),
        size,
        expanded_size: None,
        peers,
        ..LibraryEntry::default()
    }
}

/// `game` as its peers announce it expanding to `expanded` bytes (peers from before that
/// announce nothing, as [`game`] has it).
pub fn with_expanded(mut game: LibraryEntry, expanded: u64) -> LibraryEntry {
    game.expanded_size = Some(expanded);
    for peer in &mut game.peers {
        peer.expanded_size = Some(expanded);
    }
    game
}

/// Xonotic only on peers (3 GiB of archives expanding to 4 GiB), OpenArena installed, Quake
/// downloaded, Warsow with an update from older peers (no expanded size), one stray folder.
pub fn snapshot() -> LibrarySnapshot {
    LibrarySnapshot {
        game_dir: PathBuf::from("/games"),
        games: vec![
            game(
                "openarena",
                "OpenArena",
                GameState::Installed,
                Some("0.8.8"),
                Some("0.8.8"),
                GIB,
            ),
            game("quake", "Quake", GameState::Downloaded, Some("1.09"), None, GIB / 2),
            game(
                "warsow",
                "Warsow",
                GameState::UpdateAvailable,
                Some("2.0"),
                Some("2.1"),
                2 * GIB,
            ),
            with_expanded(
                game(
                    "xonotic",
                    "Xonotic",
                    GameState::RemoteOnly,
                    None,
                    Some("0.8.6"),
                    3 * GIB,
                ),
                4 * GIB,
            ),
        ],
        peers: vec![peer(1, "alice", 2), peer(2, "bob", 2)],
        absent_peers: Vec::new(),
        uncatalogued: vec!["mystuff".into()],
        local_scanned: true,
    }
}

pub fn app() -> App {
    App::new(PathBuf::from("/games"), SocketAddr::from(([0, 0, 0, 0], 14000))).with_clock(clock)
}

/// An app that has seen [`snapshot`].
pub fn app_with_library() -> App {
    let mut app = app();
    app.update(PeerEvent::LibraryUpdated(snapshot()));
    app
}

/// Moves the library cursor to the game called `name`.
pub fn select(app: &mut App, name: &str) {
    app.apply(Action::Top);
    for _ in 0..app.library_rows().len() {
        let index = app.selected_library_index().unwrap_or(0);
        if app.library_rows()[index].name == name {
            return;
        }
        app.apply(Action::Down);
    }
    panic!("{name} is not in the library");
}

/// The download of `id` at `version` finished: 4 GiB in 20 s from peers 1 and 2, all from seeds.
pub fn download_finished(id: &str, version: &str) -> PeerEvent {
    PeerEvent::DownloadGameFilesFinished {
        id: id.into(),
        version: version.into(),
        summary: DownloadSummary {
            bytes: 4 * GIB,
            reused: 0,
            elapsed: Duration::from_secs(20),
            peers_used: vec![addr(1), addr(2)],
            from_seeds: 4 * GIB,
            from_partials: 0,
            availability_bytes: 0,
        },
    }
}

pub fn active(id: &str, kind: OperationKind) -> PeerEvent {
    PeerEvent::ActiveOperations(vec![ActiveOperation { id: id.into(), kind }])
}

pub fn progress(id: &str, done: u64, total: u64) -> DownloadProgress {
    DownloadProgress {
        id: id.into(),
        bytes_done: done,
        total_bytes: total,
        bytes_per_second: Some(50e6),
        eta: Some(Duration::from_secs(40)),
        active_peers: 2,
        seeds: 2,
        partial_sources: 0,
        peers: vec![
            PeerProgress {
                addr: addr(1),
                partial: false,
                bytes: done / 2,
                bytes_per_second: 30e6,
            },
            PeerProgress {
                addr: addr(2),
                partial: false,
                bytes: done / 2,
                bytes_per_second: 20e6,
            },
        ],
        elapsed: Duration::from_secs(10),
    }
}

pub fn files() -> Vec<GameFileDescription> {
    vec![
        GameFileDescription {
            path: "xonotic/version.ini".into(),
            size: 5,
            is_dir: false,
            hash: None,
        },
        GameFileDescription {
            path: "xonotic/data.zip".into(),
            size: 3 * GIB,
            is_dir: false,
            hash: None,
        },
    ]
}

/// The screen as text, one string per row.
pub fn screen(buffer: &ratatui::buffer::Buffer) -> Vec<String> {
    let width = usize::from(buffer.area.width);
    buffer
        .content
        .chunks(width)
        .map(|row| row.iter().map(|cell| cell.symbol()).collect())
        .collect()
}

/// [`snapshot`] after bob missed pings for `silent` and alice left with Xonotic, with a
/// configured peer (10.0.0.9:7) that never answered.
pub fn snapshot_with_absent_peers(silent: Duration) -> LibrarySnapshot {
    let mut snapshot = snapshot();
    snapshot.peers.retain(|peer| peer.name == "bob");
    snapshot.peers[0].unanswered_for = Some(silent);
    snapshot.absent_peers = vec![
        AbsentPeer {
            addr: addr(1),
            name: Some("alice".into()),
            status: "left".into(),
            why: "left: stopped answering pings".into(),
            game_count: 2,
        },
        AbsentPeer {
            addr: ([10, 0, 0, 9], 7).into(),
            name: None,
            status: "no answer".into(),
            why: "10.0.0.9:7 did not answer within 5s".into(),
            game_count: 0,
        },
    ];
    let xonotic = snapshot.games.iter_mut().find(|game| game.id == "xonotic").unwrap();
    xonotic.left_peers = std::mem::take(&mut xonotic.peers);
    xonotic.left_peers.retain(|peer| peer.peer_name == "alice");
    xonotic.latest_version = None;
    snapshot
}
