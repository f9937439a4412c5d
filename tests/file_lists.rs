//! Any game size (issue 12, item 2): the file list of a game with 100,000 files
//! travels as a `GameListing` header and pages no larger than
//! `FILE_LIST_PAGE_BYTES`, and such a game downloads byte-identical; a peer
//! announcing too many entries, sending more than it announced, or stalling
//! after the header gets a typed error naming the game, never a hang.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use lanspread::config::Limits;
use lanspread::content::root_of;
use lanspread::peer::client::{ClientError, PeerClient};
use lanspread::peer::transport::{SERVER_NAME, make_endpoint};
use lanspread::peer::{PeerCommand, PeerEvent};
use lanspread::proto::{
    FILE_LIST_PAGE_BYTES, GameFileDescription, GameListing, MAX_LIST_ENTRIES, Request, Response, read_frame,
    write_frame,
};
use support::fake::{fake_peer, not_scripted};
use support::{TestPeer, WAIT, start_test_peer};
use tokio::io::AsyncReadExt;

const GAME: &str = "openarena";
const VERSION: &str = "20240301";
/// Directories the generated files are spread over.
const DIRS: usize = 300;
/// Bound for the waits on a large game (scan, list, download), well past what they take.
const LONG_WAIT: Duration = Duration::from_secs(90);

/// Writes `GAME` with `files` small files (1..=100 bytes) over [`DIRS`] directories plus
/// `version.ini`; returns every listed entry (directories included), sorted by path.
fn write_many_files(games: &Path, files: usize) -> Vec<GameFileDescription> {
    let root = games.join(GAME);
    let mut listed = Vec::with_capacity(files + DIRS + 1);
    for dir in 0..DIRS {
        std::fs::create_dir_all(root.join(format!("d{dir:03}"))).unwrap();
        listed.push(GameFileDescription {
            path: format!("d{dir:03}"),
            size: 0,
            is_dir: true,
            hash: None,
        });
    }
    for index in 0..files {
        let path = format!("d{:03}/f{index:06}.dat", index % DIRS);
        let len = index % 100 + 1;
        let bytes: Vec<u8> = (0..len).map(|at| (index * 7 + at) as u8).collect();
        std::fs::write(root.join(&path), &bytes).unwrap();
        listed.push(GameFileDescription {
            path,
            size: len as u64,
            is_dir: false,
            hash: Some(root_of(&bytes)),
        });
    }
    std::fs::write(root.join("version.ini"), VERSION).unwrap();
    listed.push(GameFileDescription {
        path: "version.ini".into(),
        size: VERSION.len() as u64,
        is_dir: false,
        hash: Some(root_of(VERSION.as_bytes())),
    });
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    listed
}

/// Waits up to [`LONG_WAIT`] for an event `pick` accepts.
async fn wait_long<T>(peer: &mut TestPeer, what: &str, mut pick: impl FnMut(&PeerEvent) -> Option<T>) -> T {
    let runtime = &mut peer.runtime;
    tokio::time::timeout(LONG_WAIT, async {
        loop {
            let event = runtime.next_event().await.expect("runtime stopped while a test waited");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {LONG_WAIT:?} waiting for {what}"))
}

/// Waits until `peer` has scanned its own `GAME` at `VERSION`, and hashed it: it is shared.
async fn wait_for_own_scan(peer: &mut TestPeer) {
    wait_long(peer, "the peer's scan of its large game", |event| match event {
        PeerEvent::LibraryUpdated(snapshot)
            if snapshot
                .game(GAME)
                .is_some_and(|game| game.local_version.as_deref() == Some(VERSION)) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    wait_long(peer, "the hashing of the large game", |event| {
        matches!(event, PeerEvent::HashingFinished { .. }).then_some(())
    })
    .await;
}

/// `GetGame` on a raw stream: the header, then every page with its encoded length.
async fn raw_listing(server: SocketAddr) -> (GameListing, Vec<(usize, Vec<GameFileDescription>)>) {
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap();
    let exchange = async {
        let connection = endpoint.connect(server, SERVER_NAME).unwrap().await.unwrap();
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        write_frame(&mut send, &Request::GetGame { id: GAME.into() })
            .await
            .unwrap();
        send.finish().unwrap();
        let listing = match read_frame::<_, Response>(&mut recv).await.unwrap() {
            Response::GameListing(listing) => listing,
            other => panic!("expected a GameListing, got {other:?}"),
        };
        let mut pages = Vec::new();
        let mut received = 0u64;
        while received < listing.entries {
            let len = recv.read_u32().await.unwrap() as usize;
            let mut body = vec![0u8; len];
            recv.read_exact(&mut body).await.unwrap();
            match serde_json::from_slice::<Response>(&body).unwrap() {
                Response::FileListPage { files } => {
                    received += files.len() as u64;
                    pages.push((len, files));
                }
                other => panic!("expected a file-list page, got {other:?}"),
            }
        }
        let rest = recv.read_to_end(1024).await.unwrap();
        assert!(rest.is_empty(), "{} bytes after the last page", rest.len());
        (listing, pages)
    };
    tokio::time::timeout(LONG_WAIT, exchange)
        .await
        .expect("the whole list arrived within the wait bound")
}

/// 100,000 entries: the raw exchange is a header and pages each within the page limit,
/// carrying exactly the game's entries; `PeerClient::get_game` assembles the same list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_of_100000_entries_lists_in_bounded_pages() {
    const ENTRIES: usize = 100_000;
    let started = Instant::now();
    let mut expected = Vec::new();
    let mut server = TestPeer::builder()
        .prepare(|games| expected = write_many_files(games, ENTRIES - DIRS - 1))
        .start();
    eprintln!("wrote {ENTRIES} entries in {:?}", started.elapsed());
    assert_eq!(expected.len(), ENTRIES);
    let scan = Instant::now();
    wait_for_own_scan(&mut server).await;
    eprintln!("the serving peer scanned them in {:?}", scan.elapsed());

    let listing_started = Instant::now();
    let (listing, pages) = raw_listing(server.addr()).await;
    eprintln!(
        "raw listing: {} entries in {} pages (largest {} bytes) in {:?}",
        listing.entries,
        pages.len(),
        pages.iter().map(|(len, _)| *len).max().unwrap_or(0),
        listing_started.elapsed()
    );
    assert_eq!((listing.id.as_str(), listing.version.as_str()), (GAME, VERSION));
    assert_eq!(listing.entries, ENTRIES as u64);
    assert!(pages.len() > 1, "100,000 entries do not fit one page");
    for (len, files) in &pages {
        assert!(*len <= FILE_LIST_PAGE_BYTES, "a page of {len} bytes");
        assert!(!files.is_empty(), "an empty page");
    }
    let listed: Vec<GameFileDescription> = pages.into_iter().flat_map(|(_, files)| files).collect();
    assert!(
        listed == expected,
        "the pages carry exactly the game's entries, in order"
    );

    let client = PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    let client_started = Instant::now();
    let details = client.get_game(server.addr(), GAME).await.unwrap();
    eprintln!("PeerClient::get_game: {:?}", client_started.elapsed());
    assert_eq!(details.version, VERSION);
    assert!(details.files == expected, "the client assembles the same list");
    server.runtime.shutdown().await;
}

/// A game of 100,000 small files (its list is over 1 MiB as one frame: the original defect
/// at 20,000) downloads byte-identical between two in-process peers. The files travel in
/// batches (`GetGameFiles`), one sync per batch: a request and an fsync per file took about
/// 2 ms each, over 3 minutes for this game.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_of_100000_files_downloads_byte_identical() {
    download_many_files(100_000).await;
}

async fn download_many_files(count: usize) {
    let started = Instant::now();
    let mut expected = Vec::new();
    let mut server = TestPeer::builder()
        .prepare(|games| expected = write_many_files(games, count))
        .start();
    wait_for_own_scan(&mut server).await;
    let encoded = serde_json::to_vec(&expected).unwrap().len();
    eprintln!(
        "{} entries, {encoded} bytes as one JSON list; written and scanned at {:?}",
        expected.len(),
        started.elapsed()
    );

    let mut downloader = start_test_peer(&[server.addr()], |_| {});
    wait_long(&mut downloader, "the game on the server", |event| match event {
        PeerEvent::LibraryUpdated(snapshot) if snapshot.game(GAME).is_some_and(|g| g.peers.len() == 1) => Some(()),
        _ => None,
    })
    .await;
    eprintln!("the downloader sees the game at {:?}", started.elapsed());
    let listed = Instant::now();
    downloader.send(PeerCommand::GetGame { id: GAME.into() }).await;
    let files = wait_long(&mut downloader, "the file list", |event| match event {
        PeerEvent::GotGameFiles { id, files, .. } if id == GAME => Some(Ok(files.clone())),
        PeerEvent::GameFilesUnavailable { id, reason } if id == GAME => Some(Err(reason.clone())),
        _ => None,
    })
    .await
    .unwrap_or_else(|reason| panic!("no file list: {reason}"));
    eprintln!(
        "listing {} entries through the actor: {:?}",
        files.len(),
        listed.elapsed()
    );
    assert!(files == expected, "the downloader got the whole list");

    let downloading = Instant::now();
    downloader.start_download(GAME, files).await;
    let ended = wait_long(&mut downloader, "the download to end", |event| match event {
        PeerEvent::DownloadGameFilesFinished { id, .. } if id == GAME => Some(Ok(())),
        PeerEvent::DownloadGameFilesFailed { id, reason } if id == GAME => Some(Err(reason.clone())),
        PeerEvent::DownloadGameFilesCancelled { id } if id == GAME => Some(Err("cancelled".into())),
        _ => None,
    })
    .await;
    eprintln!("downloading {count} files: {:?}", downloading.elapsed());
    ended.unwrap_or_else(|reason| panic!("download failed: {reason}"));

    let source = server.game_dir().join(GAME);
    let copy = downloader.game_dir().join(GAME);
    for entry in &expected {
        let (from, to) = (source.join(&entry.path), copy.join(&entry.path));
        if entry.is_dir {
            assert!(to.is_dir(), "{} is not a directory", entry.path);
        } else {
            let got = std::fs::read(&to).unwrap_or_else(|err| panic!("{}: {err}", entry.path));
            assert!(got == std::fs::read(&from).unwrap(), "{} differs", entry.path);
        }
    }
    eprintln!("compared at {:?}", started.elapsed());
    downloader.runtime.shutdown().await;
    server.runtime.shutdown().await;
    eprintln!("both peers shut down at {:?}", started.elapsed());
}

/// How a fake peer answers `GetGame`.
#[derive(Clone, Copy)]
enum Hostile {
    /// Announces 2,000,000 entries and sends pages of them for as long as it may.
    TwoMillion,
    /// Announces 3 entries and sends 4.
    OneTooMany,
    /// Sends the header and then nothing, holding the stream open.
    Stalls,
}

fn entry(index: u64) -> GameFileDescription {
    GameFileDescription {
        path: format!("f{index}"),
        size: 1,
        is_dir: false,
        hash: None,
    }
}

/// A fake peer on 127.0.0.1 that pings, lists `GAME`, and answers `GetGame` as `hostile`.
fn hostile_lister(hostile: Hostile) -> SocketAddr {
    fake_peer(GAME, VERSION, move |request, mut send| async move {
        if !matches!(request, Request::GetGame { .. }) {
            return not_scripted(send).await;
        }
        let entries = match hostile {
            Hostile::TwoMillion => 2_000_000,
            Hostile::OneTooMany | Hostile::Stalls => 3,
        };
        let listing = GameListing {
            id: GAME.into(),
            version: VERSION.into(),
            entries,
        };
        if write_frame(&mut send, &Response::GameListing(listing)).await.is_err() {
            return;
        }
        match hostile {
            Hostile::TwoMillion => {
                for start in (0..entries).step_by(1000) {
                    let files = (start..start + 1000).map(entry).collect();
                    let page = Response::FileListPage { files };
                    if write_frame(&mut send, &page).await.is_err() {
                        return;
                    }
                }
            }
            Hostile::OneTooMany => {
                let page = Response::FileListPage {
                    files: (0..4).map(entry).collect(),
                };
                let _ = write_frame(&mut send, &page).await;
            }
            Hostile::Stalls => {
                // Holds the stream open with nothing more until the test ends.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        let _ = send.finish();
    })
}

/// `get_game` against a hostile peer, bounded by [`WAIT`].
async fn get_game_from(hostile: Hostile) -> (SocketAddr, ClientError, Duration) {
    let addr = hostile_lister(hostile);
    let client = PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    let started = Instant::now();
    let result = tokio::time::timeout(WAIT, client.get_game(addr, GAME))
        .await
        .expect("get_game ends within the wait bound");
    let err = result.expect_err("a hostile file list is refused");
    (addr, err, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_announcing_two_million_entries_is_refused_by_name_and_limit() {
    let (addr, err, took) = get_game_from(Hostile::TwoMillion).await;
    eprintln!("refused in {took:?}: {err}");
    assert!(
        matches!(&err, ClientError::ListTooLong { id, entries: 2_000_000, .. } if id == GAME),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("peer {addr} lists 2000000 files for {GAME}, over the {MAX_LIST_ENTRIES}-file limit")
    );

    // Through a peer runtime, the reason reaches the user as that text, not as a stream reset.
    let mut downloader = start_test_peer(&[addr], |_| {});
    downloader.wait_for_holders(GAME, 1).await;
    let reason = downloader
        .fetch_files(GAME)
        .await
        .expect_err("no file list from a hostile peer");
    assert!(reason.contains("over the 1000000-file limit"), "{reason}");
    assert!(reason.contains(GAME), "{reason}");
    downloader.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_with_more_entries_than_announced_is_refused() {
    let (_, err, _) = get_game_from(Hostile::OneTooMany).await;
    eprintln!("{err}");
    assert!(
        matches!(&err, ClientError::ListOverrun { id, announced: 3, .. } if id == GAME),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_stalls_after_its_header_times_out() {
    let (_, err, took) = get_game_from(Hostile::Stalls).await;
    eprintln!("timed out after {took:?}: {err}");
    assert!(
        matches!(&err, ClientError::ListTimeout { id, announced: 3, received: 0, .. } if id == GAME),
        "{err:?}"
    );
}
