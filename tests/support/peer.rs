//! In-process peers on 127.0.0.1 and the steps tests repeat on them: start one
//! with a given config, games and static peers ([`PeerBuilder`]); fetch a
//! game's file list; start a download; wait for a download or an install to
//! end. Every wait is bounded by [`WAIT`](super::WAIT), so a hung runtime
//! fails the test with what it waited for instead of hanging CI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lanspread::catalog::Catalog;
use lanspread::config::Config;
use lanspread::peer::{DownloadSummary, LibrarySnapshot, PeerCommand, PeerEvent, PeerRuntimeHandle, start_peer};
use lanspread::proto::GameFileDescription;

use super::archives::{Tree, write_zip};
use super::{WAIT, write_game};

/// A config rooted in a fresh temp dir: loopback, no mDNS, fast pings.
pub fn test_config() -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_local_test(dir.path());
    std::fs::create_dir_all(&config.game_dir).unwrap();
    (config, dir)
}

/// Starts a peer; `prepare` may put games into its game dir before the runtime scans it.
pub fn start_test_peer(static_peers: &[SocketAddr], prepare: impl FnOnce(&Path)) -> TestPeer {
    PeerBuilder::new().static_peers(static_peers).prepare(prepare).start()
}

type Prepare<'a> = Box<dyn FnOnce(&Path) + 'a>;

/// How a test peer starts: [`test_config`] edited by [`config`](Self::config),
/// with the games given here written into its game dir before the runtime's
/// first scan (into the game dir the edited config names).
pub struct PeerBuilder<'a> {
    config: Config,
    dir: tempfile::TempDir,
    prepare: Vec<Prepare<'a>>,
}

impl Default for PeerBuilder<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> PeerBuilder<'a> {
    pub fn new() -> Self {
        let (config, dir) = test_config();
        PeerBuilder {
            config,
            dir,
            prepare: Vec::new(),
        }
    }

    /// Edits the config, e.g. `|c| c.upload_limit = Some(5_000_000)`.
    pub fn config(mut self, edit: impl FnOnce(&mut Config)) -> Self {
        edit(&mut self.config);
        self
    }

    pub fn static_peers(self, peers: &[SocketAddr]) -> Self {
        self.config(|config| config.static_peers = peers.to_vec())
    }

    /// Writes `id` at `version` with `files` (see [`write_game`]).
    pub fn game(self, id: &'a str, version: &'a str, files: &'a [(&'a str, Vec<u8>)]) -> Self {
        self.prepare(move |games| {
            write_game(games, id, version, files);
        })
    }

    /// Writes `id` at `version` as one `game.zip` holding `tree`, the way games are shared.
    pub fn zipped_game(self, id: &'a str, version: &'a str, tree: &'a Tree) -> Self {
        self.prepare(move |games| {
            let root = write_game(games, id, version, &[]);
            write_zip(&root.join("game.zip"), tree);
        })
    }

    /// Runs `prepare` on the game dir before the runtime starts.
    pub fn prepare(mut self, prepare: impl FnOnce(&Path) + 'a) -> Self {
        self.prepare.push(Box::new(prepare));
        self
    }

    pub fn start(self) -> TestPeer {
        std::fs::create_dir_all(&self.config.game_dir).unwrap();
        for prepare in self.prepare {
            prepare(&self.config.game_dir);
        }
        let game_dir = self.config.game_dir.clone();
        TestPeer {
            runtime: start_peer(self.config, Catalog::bundled()).expect("peer starts"),
            dir: self.dir,
            game_dir,
            snapshot: LibrarySnapshot::default(),
        }
    }
}

pub struct TestPeer {
    pub runtime: PeerRuntimeHandle,
    pub dir: tempfile::TempDir,
    game_dir: PathBuf,
    /// The latest library snapshot seen by [`TestPeer::wait_for_snapshot`].
    pub snapshot: LibrarySnapshot,
}

/// A game's file list as `GotGameFiles` carries it.
#[derive(Debug, Clone)]
pub struct GameFiles {
    pub version: String,
    pub files: Vec<GameFileDescription>,
    pub peers: Vec<SocketAddr>,
}

/// How an operation ended. A cancelled install has no event of its own: it
/// arrives as `Failed("cancelled")`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Finished(T),
    Failed(String),
    Cancelled,
    Paused,
}

/// What a finished download reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Downloaded {
    pub version: String,
    pub summary: DownloadSummary,
}

/// An operation's end and every event seen while waiting for it, in order.
#[derive(Debug)]
pub struct Ended<T> {
    pub outcome: Outcome<T>,
    pub seen: Vec<PeerEvent>,
}

impl TestPeer {
    pub fn builder<'a>() -> PeerBuilder<'a> {
        PeerBuilder::new()
    }

    /// The game dir the peer started with.
    pub fn game_dir(&self) -> PathBuf {
        self.game_dir.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.runtime.local_addr()
    }

    pub async fn send(&self, command: PeerCommand) {
        self.runtime.send(command).await.expect("the runtime takes commands");
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

    /// Waits for the end of the hashing of its new games, after which they are all shared
    /// (a game dir with no new game hashes nothing and sends no end).
    pub async fn wait_for_hashing_done(&mut self) {
        self.wait_for("the end of hashing", |event| {
            matches!(event, PeerEvent::HashingFinished { .. }).then_some(())
        })
        .await;
    }

    /// Waits until the library lists `id` on exactly `count` peers, so a file
    /// list fetched next asks all of them.
    pub async fn wait_for_holders(&mut self, id: &str, count: usize) -> LibrarySnapshot {
        self.wait_for_snapshot(&format!("{id} on {count} peer(s)"), |s| {
            s.game(id).is_some_and(|g| g.peers.len() == count)
        })
        .await
    }

    /// `GetGame` for `id`: its file list, or why there is none.
    pub async fn fetch_files(&mut self, id: &str) -> Result<GameFiles, String> {
        self.request_files(PeerCommand::GetGame { id: id.into() }, id).await
    }

    /// `FetchLatestFromPeers` for `id` (the update path): its file list, or why there is none.
    pub async fn fetch_latest_files(&mut self, id: &str) -> Result<GameFiles, String> {
        self.request_files(PeerCommand::FetchLatestFromPeers { id: id.into() }, id)
            .await
    }

    async fn request_files(&mut self, command: PeerCommand, id: &str) -> Result<GameFiles, String> {
        self.send(command).await;
        self.wait_for(&format!("the file list of {id}"), |event| match event {
            PeerEvent::GotGameFiles {
                id: got,
                version,
                files,
                peers,
            } if got == id => Some(Ok(GameFiles {
                version: version.clone(),
                files: files.clone(),
                peers: peers.clone(),
            })),
            PeerEvent::GameFilesUnavailable { id: got, reason } if got == id => Some(Err(reason.clone())),
            _ => None,
        })
        .await
    }

    /// Sends `DownloadGameFiles` for `id` with `files`; the download runs on.
    pub async fn start_download(&self, id: &str, files: Vec<GameFileDescription>) {
        self.send(PeerCommand::DownloadGameFiles { id: id.into(), files }).await;
    }

    /// Fetches the file list of `id` (which must be available) and starts downloading it.
    pub async fn download(&mut self, id: &str) -> GameFiles {
        let list = self
            .fetch_files(id)
            .await
            .unwrap_or_else(|reason| panic!("no file list for {id}: {reason}"));
        self.start_download(id, list.files.clone()).await;
        list
    }

    pub async fn cancel(&self, id: &str) {
        self.send(PeerCommand::CancelDownload { id: id.into() }).await;
    }

    /// Waits for the refusal of a command on `id`; returns its reason.
    pub async fn wait_for_refusal(&mut self, id: &str) -> String {
        self.wait_for(&format!("a refusal for {id}"), |event| match event {
            PeerEvent::OperationRefused { id: got, reason } if got == id => Some(reason.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for download progress on `id` with some bytes done.
    pub async fn wait_for_download_progress(&mut self, id: &str) {
        self.wait_for(&format!("download progress on {id}"), |event| {
            matches!(event, PeerEvent::DownloadProgress(sample) if sample.id == id && sample.bytes_done > 0)
                .then_some(())
        })
        .await;
    }

    /// Waits for install progress on `id` with some bytes written.
    pub async fn wait_for_install_progress(&mut self, id: &str) {
        self.wait_for(&format!("install progress on {id}"), |event| {
            matches!(event, PeerEvent::InstallGameProgress { id: got, bytes, .. } if got == id && *bytes > 0)
                .then_some(())
        })
        .await;
    }

    /// Waits for the download of `id` to finish, fail, or be cancelled or paused.
    pub async fn wait_for_download_end(&mut self, id: &str) -> Ended<Downloaded> {
        self.wait_for_end(&format!("the download of {id} to end"), |event| match event {
            PeerEvent::DownloadGameFilesFinished {
                id: got,
                version,
                summary,
            } if got == id => Some(Outcome::Finished(Downloaded {
                version: version.clone(),
                summary: summary.clone(),
            })),
            PeerEvent::DownloadGameFilesFailed { id: got, reason } if got == id => {
                Some(Outcome::Failed(reason.clone()))
            }
            PeerEvent::DownloadGameFilesCancelled { id: got } if got == id => Some(Outcome::Cancelled),
            PeerEvent::DownloadGameFilesPaused { id: got } if got == id => Some(Outcome::Paused),
            _ => None,
        })
        .await
    }

    /// Waits for the install (plain or streamed) of `id` to end; `Finished(updated)`.
    pub async fn wait_for_install_end(&mut self, id: &str) -> Ended<bool> {
        self.wait_for_end(&format!("the install of {id} to end"), |event| match event {
            PeerEvent::InstallGameFinished { id: got, updated } if got == id => Some(Outcome::Finished(*updated)),
            PeerEvent::InstallGameFailed { id: got, reason } if got == id => Some(Outcome::Failed(reason.clone())),
            _ => None,
        })
        .await
    }

    async fn wait_for_end<T>(&mut self, what: &str, end: impl Fn(&PeerEvent) -> Option<Outcome<T>>) -> Ended<T> {
        let mut seen = Vec::new();
        let outcome = self
            .wait_for(what, |event| {
                let outcome = end(event);
                if outcome.is_none() {
                    seen.push(event.clone());
                }
                outcome
            })
            .await;
        Ended { outcome, seen }
    }
}
