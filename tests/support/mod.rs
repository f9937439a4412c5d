//! Helpers shared by the integration tests: generated games, in-process peers
//! on 127.0.0.1, and bounded waits for runtime events.
#![allow(dead_code)] // each test binary uses a different subset

pub mod archives;
pub mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lanspread::catalog::Catalog;
use lanspread::config::Config;
use lanspread::peer::{LibrarySnapshot, PeerEvent, PeerRuntimeHandle, start_peer};

/// Upper bound for any wait in a test; generous so a loaded CI machine does not flake.
pub const WAIT: Duration = Duration::from_secs(20);

/// Deterministic pseudo-random bytes, so failures reproduce (the demo's generator).
pub use lanspread::demo::noise as pseudo_random_bytes;

/// Writes `<game_dir>/<id>/` with the given files and a `version.ini` holding `version`.
pub fn write_game(game_dir: &Path, id: &str, version: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let root = game_dir.join(id);
    for (path, bytes) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("version.ini"), version).unwrap();
    root
}

pub struct TestPeer {
    pub runtime: PeerRuntimeHandle,
    pub dir: tempfile::TempDir,
    /// The latest library snapshot seen by [`TestPeer::wait_for_snapshot`].
    pub snapshot: LibrarySnapshot,
}

impl TestPeer {
    pub fn game_dir(&self) -> PathBuf {
        self.dir.path().join("games")
    }

    pub fn addr(&self) -> SocketAddr {
        self.runtime.local_addr()
    }

    /// Waits (bounded by [`WAIT`]) for an event that `pick` accepts.
    pub async fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&PeerEvent) -> Option<T>) -> T {
        let runtime = &mut self.runtime;
        let snapshot = &mut self.snapshot;
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                let event = runtime.next_event().await.expect("runtime stopped while a test waited");
                if let PeerEvent::LibraryUpdated(update) = &event {
                    *snapshot = update.clone();
                }
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
    }

    /// Waits for a library snapshot that satisfies `accept`.
    pub async fn wait_for_snapshot(
        &mut self,
        what: &str,
        accept: impl Fn(&LibrarySnapshot) -> bool,
    ) -> LibrarySnapshot {
        if accept(&self.snapshot) {
            return self.snapshot.clone();
        }
        self.wait_for(what, |event| match event {
            PeerEvent::LibraryUpdated(snapshot) if accept(snapshot) => Some(snapshot.clone()),
            _ => None,
        })
        .await
    }
}

/// A config rooted in a fresh temp dir: loopback, no mDNS, fast pings.
pub fn test_config() -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_local_test(dir.path());
    std::fs::create_dir_all(&config.game_dir).unwrap();
    (config, dir)
}

/// Starts a peer; `prepare` may put games into its game dir before the runtime scans it.
pub fn start_test_peer(static_peers: &[SocketAddr], prepare: impl FnOnce(&Path)) -> TestPeer {
    let (mut config, dir) = test_config();
    config.static_peers = static_peers.to_vec();
    prepare(&config.game_dir);
    let runtime = start_peer(config, Catalog::bundled()).expect("peer starts");
    TestPeer {
        runtime,
        dir,
        snapshot: LibrarySnapshot::default(),
    }
}

/// Polls `done` (bounded by [`WAIT`]) until it holds.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
