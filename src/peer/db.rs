//! `PeerGameDB`: what the remote peers announce — per peer its identity, its
//! game summaries and the last file list it sent for each game — plus the
//! merge of that with the local library into the snapshot the UI shows.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::library::{Game, GameDB, Version};
use crate::proto::{GameDetails, GameFileDescription, GameSummary, Hello};

use super::download::majority::majority_file_list;
use super::{AbsentPeer, GameState, LibraryEntry, LibrarySnapshot, PeerGameVersion, PeerSummary};

/// How long the games of a peer that left stay in the library, marked: long enough to
/// see what failed and retry once the peer is back (a restarted seed takes a minute).
pub const LEFT_PEER_MEMORY: Duration = Duration::from_secs(10 * 60);
/// A pong later than the ping interval by this much is a missed ping: the peer is shown
/// as not answering (it is pruned only after `peer_timeout`).
const PONG_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RemotePeer {
    pub peer_id: String,
    pub name: String,
    pub last_seen: Instant,
    pub latency: Duration,
    /// The revision the peer reported in its last pong.
    pub library_revision: u64,
    /// The revision `games` was fetched at; `None` until the first fetch succeeds.
    pub fetched_revision: Option<u64>,
    pub games: BTreeMap<String, GameSummary>,
    /// Last file list this peer sent per game, with the version it was for.
    pub files: HashMap<String, GameDetails>,
}

/// A peer that left, remembered for [`LEFT_PEER_MEMORY`] with the games it had.
#[derive(Debug, Clone)]
struct DepartedPeer {
    name: String,
    why: String,
    left: Instant,
    games: BTreeMap<String, GameSummary>,
}

#[derive(Debug)]
pub struct PeerGameDB {
    peers: BTreeMap<SocketAddr, RemotePeer>,
    departed: BTreeMap<SocketAddr, DepartedPeer>,
    /// A peer whose last pong is older than this has missed a ping.
    unanswered_after: Duration,
}

impl Default for PeerGameDB {
    fn default() -> Self {
        PeerGameDB::new(Duration::from_secs(2))
    }
}

impl PeerGameDB {
    /// An empty db for peers pinged every `ping_interval`.
    pub fn new(ping_interval: Duration) -> Self {
        PeerGameDB {
            peers: BTreeMap::new(),
            departed: BTreeMap::new(),
            unanswered_after: ping_interval + PONG_GRACE,
        }
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<&RemotePeer> {
        self.peers.get(addr)
    }

    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.keys().copied()
    }

    pub fn find_by_peer_id(&self, peer_id: &str) -> Option<SocketAddr> {
        self.peers
            .iter()
            .find(|(_, peer)| peer.peer_id == peer_id)
            .map(|(addr, _)| *addr)
    }

    /// Records a fresh pong from a known or new peer.
    pub fn insert_peer(&mut self, addr: SocketAddr, hello: &Hello, latency: Duration, now: Instant) {
        self.departed.remove(&addr);
        self.peers.insert(
            addr,
            RemotePeer {
                peer_id: hello.peer_id.clone(),
                name: hello.name.clone(),
                last_seen: now,
                latency,
                library_revision: hello.library_revision,
                fetched_revision: None,
                games: BTreeMap::new(),
                files: HashMap::new(),
            },
        );
    }

    /// Refreshes liveness of a known peer; returns whether its library must be (re)fetched.
    pub fn touch_peer(&mut self, addr: SocketAddr, hello: &Hello, latency: Duration, now: Instant) -> bool {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return false;
        };
        peer.last_seen = now;
        peer.latency = latency;
        peer.name.clone_from(&hello.name);
        peer.library_revision = hello.library_revision;
        peer.fetched_revision != Some(hello.library_revision)
    }

    /// Removes a peer that left; its games stay in snapshots, marked, for [`LEFT_PEER_MEMORY`].
    pub fn remove_peer(&mut self, addr: &SocketAddr, why: &str, now: Instant) -> Option<RemotePeer> {
        let peer = self.peers.remove(addr)?;
        let departed = DepartedPeer {
            name: peer.name.clone(),
            why: why.to_owned(),
            left: now,
            games: peer.games.clone(),
        };
        self.departed.insert(*addr, departed);
        Some(peer)
    }

    /// Whether `addr` is a peer that left and is still remembered.
    pub fn has_departed(&self, addr: &SocketAddr) -> bool {
        self.departed.contains_key(addr)
    }

    /// Forgets the peers that left longer than [`LEFT_PEER_MEMORY`] ago; whether any was.
    pub fn forget_departed(&mut self, now: Instant) -> bool {
        let before = self.departed.len();
        self.departed
            .retain(|_, peer| now.saturating_duration_since(peer.left) < LEFT_PEER_MEMORY);
        self.departed.len() != before
    }

    /// Whether some peer has missed a ping (and is not pruned yet).
    pub fn any_unanswered(&self, now: Instant) -> bool {
        self.peers.values().any(|peer| self.unanswered_for(peer, now).is_some())
    }

    fn unanswered_for(&self, peer: &RemotePeer, now: Instant) -> Option<Duration> {
        let silent = now.saturating_duration_since(peer.last_seen);
        (silent > self.unanswered_after).then_some(silent)
    }

    /// Peers whose last pong is older than `timeout`.
    pub fn stale_peers(&self, now: Instant, timeout: Duration) -> Vec<SocketAddr> {
        self.peers
            .iter()
            .filter(|(_, peer)| now.saturating_duration_since(peer.last_seen) > timeout)
            .map(|(addr, _)| *addr)
            .collect()
    }

    /// Stores a fetched library, keeping only catalog ids. Returns false for an unknown peer.
    pub fn set_games(&mut self, addr: SocketAddr, revision: u64, games: Vec<GameSummary>, catalog: &Catalog) -> bool {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return false;
        };
        peer.games = games
            .into_iter()
            .filter(|game| catalog.contains(&game.id))
            .map(|game| (game.id.clone(), game))
            .collect();
        peer.files
            .retain(|id, details| peer.games.get(id).is_some_and(|g| g.version == details.version));
        peer.fetched_revision = Some(revision);
        true
    }

    pub fn latest_version(&self, id: &str) -> Option<Version> {
        self.peers
            .values()
            .filter_map(|peer| peer.games.get(id))
            .map(|game| Version::new(game.version.clone()))
            .max()
    }

    /// The peers that announce the latest version of `id`.
    pub fn peers_with_latest(&self, id: &str) -> Vec<SocketAddr> {
        let Some(latest) = self.latest_version(id) else {
            return Vec::new();
        };
        self.peers
            .iter()
            .filter(|(_, peer)| peer.games.get(id).is_some_and(|game| game.version == latest.as_str()))
            .map(|(addr, _)| *addr)
            .collect()
    }

    /// The peers that announce `version` of `id`.
    pub fn peers_with_version(&self, id: &str, version: &str) -> Vec<SocketAddr> {
        self.peers
            .iter()
            .filter(|(_, peer)| peer.games.get(id).is_some_and(|game| game.version == version))
            .map(|(addr, _)| *addr)
            .collect()
    }

    /// What the latest version of `id` expands to, as its peers announce it: the smallest
    /// claim, so that one peer cannot block a download by announcing a huge size (a claim too
    /// small only lets the download start, as before expanded sizes were announced). `None`
    /// when no peer with the latest version says (older peers).
    pub fn latest_expanded_size(&self, id: &str) -> Option<u64> {
        let latest = self.latest_version(id)?;
        self.peers
            .values()
            .filter_map(|peer| peer.games.get(id))
            .filter(|game| game.version == latest.as_str())
            .filter_map(|game| game.expanded_size)
            .min()
    }

    pub fn set_game_files(&mut self, addr: SocketAddr, details: GameDetails) {
        if let Some(peer) = self.peers.get_mut(&addr) {
            peer.files.insert(details.id.clone(), details);
        }
    }

    pub fn game_files(&self, addr: &SocketAddr, id: &str) -> Option<&GameDetails> {
        self.peers.get(addr)?.files.get(id)
    }

    /// The union of the given peers' file lists for `id`, sorted by path; the majority size wins.
    pub fn merged_files(&self, id: &str, peers: &[SocketAddr]) -> Vec<GameFileDescription> {
        let manifests: Vec<(SocketAddr, &GameDetails)> = peers
            .iter()
            .filter_map(|addr| self.game_files(addr, id).map(|details| (*addr, details)))
            .collect();
        majority_file_list(&manifests)
    }

    /// Merges remote announcements with the local library: one entry per game
    /// that is local or announced by any peer, sorted by display name.
    pub fn snapshot(
        &self,
        local: &GameDB,
        local_scanned: bool,
        catalog: &Catalog,
        game_dir: &std::path::Path,
        now: Instant,
    ) -> LibrarySnapshot {
        let mut entries: BTreeMap<&str, LibraryEntry> = BTreeMap::new();
        for (addr, peer) in &self.peers {
            for game in peer.games.values() {
                let entry = entries
                    .entry(&game.id)
                    .or_insert_with(|| LibraryEntry::new(&game.id, catalog));
                entry.peers.push(PeerGameVersion {
                    addr: *addr,
                    peer_name: peer.name.clone(),
                    version: game.version.clone(),
                    size: game.size,
                    expanded_size: game.expanded_size,
                });
            }
        }
        for (addr, peer) in &self.departed {
            for game in peer.games.values() {
                let entry = entries
                    .entry(&game.id)
                    .or_insert_with(|| LibraryEntry::new(&game.id, catalog));
                entry.left_peers.push(PeerGameVersion {
                    addr: *addr,
                    peer_name: peer.name.clone(),
                    version: game.version.clone(),
                    size: game.size,
                    expanded_size: game.expanded_size,
                });
            }
        }
        for game in local.games.values() {
            entries
                .entry(&game.id)
                .or_insert_with(|| LibraryEntry::new(&game.id, catalog));
        }
        let mut games: Vec<LibraryEntry> = entries
            .into_values()
            .map(|mut entry| {
                entry.latest_version = entry
                    .peers
                    .iter()
                    .map(|p| Version::new(p.version.clone()))
                    .max()
                    .map(|v| v.to_string());
                entry.expanded_size = self.latest_expanded_size(&entry.id);
                entry.apply_local(local.get(&entry.id));
                if entry.size == 0 {
                    // Known only from peers that left: the size they announced.
                    entry.size = entry.left_peers.iter().map(|peer| peer.size).max().unwrap_or(0);
                }
                entry
            })
            .collect();
        games.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));

        let peers = self
            .peers
            .iter()
            .map(|(addr, peer)| PeerSummary {
                addr: *addr,
                peer_id: peer.peer_id.clone(),
                name: peer.name.clone(),
                game_count: peer.games.len(),
                latency: peer.latency,
                library_loaded: peer.fetched_revision.is_some(),
                unanswered_for: self.unanswered_for(peer, now),
            })
            .collect();
        let absent_peers = self
            .departed
            .iter()
            .map(|(addr, peer)| AbsentPeer {
                addr: *addr,
                name: Some(peer.name.clone()),
                status: "left".to_owned(),
                why: format!("left: {}", peer.why),
                game_count: peer.games.len(),
            })
            .collect();
        LibrarySnapshot {
            game_dir: game_dir.to_owned(),
            games,
            peers,
            absent_peers,
            uncatalogued: local.uncatalogued.clone(),
            local_scanned,
        }
    }
}

impl LibraryEntry {
    /// Folds what is here into an entry that already holds the peers' side (their
    /// versions, the latest version and its announced expanded size): the local
    /// versions and install records, the size, and the state. `list` uses it too,
    /// with a library it scanned read-only.
    pub fn apply_local(&mut self, local_game: Option<&Game>) {
        let latest = self.latest_version.as_ref().map(|v| Version::new(v.clone()));
        self.local_version = local_game.and_then(|g| g.version.as_ref()).map(ToString::to_string);
        self.installed = local_game.is_some_and(|g| g.installed);
        self.installed_version = local_game
            .and_then(|g| g.installed_version.as_ref())
            .map(ToString::to_string);
        self.streamed = local_game.is_some_and(|g| g.streamed && !g.is_downloaded());
        self.install_failure = local_game.and_then(|g| g.install_failure.clone());
        self.size = match (local_game.filter(|g| g.is_downloaded()), &latest) {
            (Some(game), _) => game.size,
            (None, Some(latest)) => self
                .peers
                .iter()
                .find(|p| p.version == latest.as_str())
                .map_or(0, |p| p.size),
            (None, None) => 0,
        };
        // Our own reading of our archives when they are the newest version around.
        let local_latest = local_game.filter(|game| game.is_downloaded()).filter(|game| {
            latest
                .as_ref()
                .is_none_or(|latest| game.version.as_ref() >= Some(latest))
        });
        if let Some(expanded) = local_latest.and_then(|game| game.expanded_size) {
            self.expanded_size = Some(expanded);
        }
        let newest_here = self.local_newest().map(|v| Version::new(v.to_owned()));
        self.state = match (local_game, &latest) {
            (None, _) => GameState::RemoteOnly,
            (Some(_), Some(latest)) if newest_here.as_ref().is_some_and(|v| v < latest) => GameState::UpdateAvailable,
            (Some(_), _) if self.install_failure.is_some() => GameState::InstallFailed,
            (Some(_), _) if self.streamed => GameState::InstalledStreamed,
            (Some(game), _) if game.installed => GameState::Installed,
            (Some(_), _) => GameState::Downloaded,
        };
    }

    fn new(id: &str, catalog: &Catalog) -> Self {
        LibraryEntry {
            id: id.to_owned(),
            name: catalog.display_name(id).to_owned(),
            description: catalog.get(id).and_then(|entry| entry.description.clone()),
            state: GameState::RemoteOnly,
            local_version: None,
            latest_version: None,
            installed: false,
            installed_version: None,
            streamed: false,
            install_failure: None,
            size: 0,
            expanded_size: None,
            peers: Vec::new(),
            left_peers: Vec::new(),
            partial: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Game;

    fn hello(peer_id: &str, revision: u64) -> Hello {
        Hello {
            protocol_version: crate::proto::PROTOCOL_VERSION,
            peer_id: peer_id.into(),
            name: peer_id.into(),
            library_revision: revision,
        }
    }

    fn summary(id: &str, version: &str) -> GameSummary {
        GameSummary {
            id: id.into(),
            name: id.into(),
            version: version.into(),
            size: 10,
            expanded_size: None,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn latest_version_and_states_merge_local_and_remote() {
        let catalog = Catalog::bundled();
        let now = Instant::now();
        let mut db = PeerGameDB::default();
        for (port, games) in [
            (1, vec![summary("openarena", "2"), summary("xonotic", "5")]),
            (2, vec![summary("openarena", "10"), summary("not-in-catalog", "1")]),
        ] {
            db.insert_peer(addr(port), &hello(&format!("p{port}"), 1), Duration::ZERO, now);
            assert!(db.set_games(addr(port), 1, games, &catalog));
        }
        assert_eq!(db.latest_version("openarena"), Some(Version::new("10")));
        assert_eq!(db.peers_with_latest("openarena"), [addr(2)]);
        assert_eq!(
            db.peers_with_latest("not-in-catalog"),
            [],
            "non-catalog ids are dropped"
        );

        let mut local = GameDB::default();
        let game = |id: &str, version: Option<&str>, installed| Game {
            id: id.into(),
            name: id.into(),
            version: version.map(Version::new),
            installed,
            size: 1,
            expanded_size: Some(7),
            ..Game::default()
        };
        local
            .games
            .insert("openarena".into(), game("openarena", Some("2"), true));
        local
            .games
            .insert("teeworlds".into(), game("teeworlds", Some("1"), false));
        local.games.insert("xonotic".into(), game("xonotic", Some("5"), true));
        let snapshot = db.snapshot(&local, true, &catalog, std::path::Path::new("/g"), now);
        let states: Vec<_> = snapshot.games.iter().map(|g| (g.id.as_str(), g.state)).collect();
        assert_eq!(
            states,
            [
                ("openarena", GameState::UpdateAvailable),
                ("teeworlds", GameState::Downloaded),
                ("xonotic", GameState::Installed)
            ]
        );
        assert_eq!(snapshot.games[0].latest_version.as_deref(), Some("10"));
        assert_eq!(snapshot.peers.len(), 2);
        let expanded: Vec<_> = snapshot.games.iter().map(|g| g.expanded_size).collect();
        assert_eq!(
            expanded,
            [None, Some(7), Some(7)],
            "the latest version's (unknown from older peers), else our own reading"
        );
    }

    #[test]
    fn the_expanded_size_of_the_latest_version_is_the_smallest_claim() {
        let catalog = Catalog::bundled();
        let now = Instant::now();
        let mut db = PeerGameDB::default();
        let sized = |version: &str, expanded: Option<u64>| GameSummary {
            expanded_size: expanded,
            ..summary("openarena", version)
        };
        for (port, game) in [
            (1, sized("2", Some(500))),
            (2, sized("2", Some(900))),
            (3, sized("2", None)),
            (4, sized("1", Some(5))),
        ] {
            db.insert_peer(addr(port), &hello(&port.to_string(), 1), Duration::ZERO, now);
            db.set_games(addr(port), 1, vec![game], &catalog);
        }
        assert_eq!(db.latest_expanded_size("openarena"), Some(500));
        let snapshot = db.snapshot(&GameDB::default(), true, &catalog, std::path::Path::new("/g"), now);
        let entry = snapshot.game("openarena").unwrap();
        assert_eq!(entry.expanded_size, Some(500));
        assert_eq!(entry.peers[0].expanded_size, Some(500), "each peer's own claim");
        db.remove_peer(&addr(1), "it shut down", now);
        db.remove_peer(&addr(2), "it shut down", now);
        assert_eq!(db.latest_expanded_size("openarena"), None, "only an older peer is left");
    }

    #[test]
    fn a_peer_that_misses_pings_is_marked_and_one_that_left_keeps_its_games_listed_for_a_while() {
        let catalog = Catalog::bundled();
        let start = Instant::now();
        let mut db = PeerGameDB::new(Duration::from_secs(2));
        db.insert_peer(addr(1), &hello("seed", 1), Duration::from_millis(1), start);
        db.set_games(addr(1), 1, vec![summary("openarena", "2")], &catalog);
        let snapshot_at = |db: &PeerGameDB, at: Duration| {
            db.snapshot(
                &GameDB::default(),
                true,
                &catalog,
                std::path::Path::new("/g"),
                start + at,
            )
        };

        // Pinged every 2 s: a pong 2.5 s old is on time, one 4 s old is a missed ping.
        assert_eq!(
            snapshot_at(&db, Duration::from_millis(2500)).peers[0].unanswered_for,
            None
        );
        assert!(!db.any_unanswered(start + Duration::from_millis(2500)));
        let silent = snapshot_at(&db, Duration::from_secs(4));
        assert_eq!(silent.peers[0].unanswered_for, Some(Duration::from_secs(4)));
        assert!(db.any_unanswered(start + Duration::from_secs(4)));

        let left_at = start + Duration::from_secs(10);
        db.remove_peer(&addr(1), "stopped answering pings", left_at);
        assert!(
            db.peers_with_latest("openarena").is_empty(),
            "a peer that left is no source"
        );
        let snapshot = snapshot_at(&db, Duration::from_secs(11));
        assert!(snapshot.peers.is_empty());
        assert_eq!(
            snapshot.absent_peers,
            [AbsentPeer {
                addr: addr(1),
                name: Some("seed".into()),
                status: "left".into(),
                why: "left: stopped answering pings".into(),
                game_count: 1,
            }]
        );
        let entry = snapshot.game("openarena").expect("its game is still listed");
        assert_eq!(
            (entry.state, entry.peers.len(), entry.size),
            (GameState::RemoteOnly, 0, 10)
        );
        assert_eq!(entry.left_peers[0].peer_name, "seed");
        assert_eq!(entry.latest_version, None, "a left peer's version is not on offer");

        assert!(!db.forget_departed(left_at + LEFT_PEER_MEMORY - Duration::from_secs(1)));
        assert!(db.forget_departed(left_at + LEFT_PEER_MEMORY));
        let forgotten = snapshot_at(&db, Duration::from_secs(10) + LEFT_PEER_MEMORY);
        assert!(forgotten.games.is_empty() && forgotten.absent_peers.is_empty());

        // Back before it is forgotten: a peer again, no longer listed as absent.
        db.insert_peer(addr(1), &hello("seed", 1), Duration::ZERO, left_at);
        db.remove_peer(&addr(1), "it shut down", left_at);
        assert!(db.has_departed(&addr(1)));
        db.insert_peer(addr(1), &hello("seed", 1), Duration::ZERO, left_at);
        assert!(!db.has_departed(&addr(1)));
        assert!(snapshot_at(&db, Duration::from_secs(10)).absent_peers.is_empty());
    }

    #[test]
    fn touch_requests_a_refetch_only_when_the_revision_changes() {
        let catalog = Catalog::bundled();
        let now = Instant::now();
        let mut db = PeerGameDB::default();
        db.insert_peer(addr(1), &hello("p", 3), Duration::ZERO, now);
        assert!(
            db.touch_peer(addr(1), &hello("p", 3), Duration::ZERO, now),
            "never fetched"
        );
        db.set_games(addr(1), 3, vec![], &catalog);
        assert!(!db.touch_peer(addr(1), &hello("p", 3), Duration::ZERO, now));
        assert!(db.touch_peer(addr(1), &hello("p", 4), Duration::ZERO, now));
        assert_eq!(
            db.stale_peers(now + Duration::from_secs(5), Duration::from_secs(2)),
            [addr(1)]
        );
    }

    #[test]
    fn merged_files_take_the_majority_size() {
        let catalog = Catalog::bundled();
        let now = Instant::now();
        let mut db = PeerGameDB::default();
        let file = |path: &str, size| GameFileDescription {
            path: path.into(),
            size,
            is_dir: false,
            hash: None,
        };
        for (port, size) in [(1, 100), (2, 100), (3, 7)] {
            db.insert_peer(addr(port), &hello(&port.to_string(), 1), Duration::ZERO, now);
            db.set_games(addr(port), 1, vec![summary("openarena", "1")], &catalog);
            db.set_game_files(
                addr(port),
                GameDetails {
                    id: "openarena".into(),
                    version: "1".into(),
                    files: vec![file("a.zip", size), file("version.ini", 1)],
                },
            );
        }
        let merged = db.merged_files("openarena", &[addr(1), addr(2), addr(3)]);
        assert_eq!(merged, [file("a.zip", 100), file("version.ini", 1)]);
    }
}
