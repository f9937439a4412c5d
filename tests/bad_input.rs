//! Malformed and hostile requests against a serving peer, sent over raw QUIC
//! streams: each gets the precise typed error (or, for a cut-off request, no
//! answer at all), the connection keeps serving, nothing outside a game's
//! served file list is ever returned, and nothing on disk changes.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail, ensure};
use lanspread::config::Limits;
use lanspread::content::root_of;
use lanspread::peer::transport::{SERVER_NAME, make_endpoint};
use lanspread::proto::{
    ErrorKind, FrameError, GameDetails, GameFileDescription, Hello, MAX_BATCH_FILES, MAX_CHUNK_LEN, MAX_FRAME_LEN,
    PROTOCOL_VERSION, Request, Response, read_frame, write_frame,
};
use quinn::{Connection, Endpoint};
use serde::Serialize;
use support::{TestPeer, WAIT, pseudo_random_bytes, start_test_peer, write_game};
use tokio::time::timeout;

const GAME: &str = "openarena";
const GAME_VERSION: &str = "0.8.8";
const UNCATALOGUED: &str = "not-in-catalog";
/// Content of every file outside the served set; it must never show up in a response.
const SECRET: &[u8] = b"lanspread-test-secret 5f1d0c7e-b2a4: this must never be served\n";
const DATA_LEN: usize = 200_000;
const MAP_LEN: usize = 5_000;
/// Raw bytes allowed after an error frame when draining a stream (there must be none).
const ERROR_TAIL_LIMIT: usize = 1024;

/// A serving peer with one catalog game, plus bait it must never serve.
struct Fixture {
    peer: TestPeer,
    data: Vec<u8>,
    map: Vec<u8>,
    readme: Vec<u8>,
}

impl Fixture {
    /// The per-test temp dir holding `games/`, `state/` and the secret.
    fn root(&self) -> PathBuf {
        self.peer.dir.path().to_path_buf()
    }

    /// What `GetGame` must list: the payload and `version.ini`, never `local/` or symlinks,
    /// each file with the content root of its bytes.
    fn expected_details(&self) -> GameDetails {
        let file = |path: &str, bytes: &[u8]| GameFileDescription {
            path: path.to_owned(),
            size: bytes.len() as u64,
            is_dir: false,
            hash: Some(root_of(bytes)),
        };
        GameDetails {
            id: GAME.to_owned(),
            version: GAME_VERSION.to_owned(),
            files: vec![
                file("data.pk3", &self.data),
                GameFileDescription {
                    path: "maps".to_owned(),
                    size: 0,
                    is_dir: true,
                    hash: None,
                },
                file("maps/dm1.bsp", &self.map),
                file("readme.txt", &self.readme),
                file("version.ini", GAME_VERSION.as_bytes()),
            ],
        }
    }
}

/// Starts the serving peer and waits until it has scanned (and so serves) its game dir.
///
/// Layout of the peer's temp dir:
/// - `secret.txt`, `outside/notes.txt`: outside the game dir, holding [`SECRET`]
/// - `games/openarena/`: `data.pk3`, `maps/dm1.bsp`, `readme.txt`, `version.ini`,
///   `local/game.exe` (installed game, never served), `secret-link` -> `../../secret.txt`,
///   `maps/outside-link` -> `../../../outside` (symlinks, never served)
/// - `games/not-in-catalog/`: `version.ini`, `payload.bin` (not a catalog id, never served)
async fn serving_peer() -> Fixture {
    let data = pseudo_random_bytes(11, DATA_LEN);
    let map = pseudo_random_bytes(12, MAP_LEN);
    let readme = b"OpenArena test payload\n".to_vec();
    let mut peer = start_test_peer(&[], |games| {
        let root = games.parent().expect("game dir has a parent");
        std::fs::write(root.join("secret.txt"), SECRET).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("outside/notes.txt"), SECRET).unwrap();

        let game_root = write_game(
            games,
            GAME,
            GAME_VERSION,
            &[
                ("data.pk3", data.clone()),
                ("maps/dm1.bsp", map.clone()),
                ("readme.txt", readme.clone()),
                ("local/game.exe", SECRET.to_vec()),
            ],
        );
        std::os::unix::fs::symlink(root.join("secret.txt"), game_root.join("secret-link")).unwrap();
        std::os::unix::fs::symlink(root.join("outside"), game_root.join("maps/outside-link")).unwrap();

        write_game(games, UNCATALOGUED, "1.0", &[("payload.bin", SECRET.to_vec())]);
    });
    peer.wait_for_snapshot(
        "the serving peer to scan openarena and the uncatalogued folder",
        |snapshot| {
            snapshot
                .game(GAME)
                .is_some_and(|game| game.local_version.as_deref() == Some(GAME_VERSION))
                && snapshot.uncatalogued.iter().any(|name| name == UNCATALOGUED)
        },
    )
    .await;
    peer.wait_for_hashing_done().await;
    Fixture {
        peer,
        data,
        map,
        readme,
    }
}

/// What came back on one stream.
struct Reply {
    /// The first frame, or why none could be read.
    frame: Result<Response, FrameError>,
    /// The raw bytes after it if the stream then finished, or why reading them failed (e.g. a reset).
    tail: Result<Vec<u8>, String>,
}

/// One raw client connection that records everything the server sends back.
struct Probe {
    connection: Connection,
    /// Every decoded frame (re-encoded as JSON) and every raw byte received, in order.
    transcript: Vec<u8>,
}

impl Probe {
    async fn connect(endpoint: &Endpoint, server: SocketAddr) -> Result<Self> {
        let connecting = endpoint.connect(server, SERVER_NAME)?;
        let connection = timeout(WAIT, connecting)
            .await
            .with_context(|| format!("connecting to {server} timed out"))??;
        Ok(Probe {
            connection,
            transcript: Vec::new(),
        })
    }

    /// Sends `bytes` on a new bidirectional stream, finishes it, and reads one frame and then the rest.
    async fn send_raw(&mut self, bytes: &[u8], tail_limit: usize) -> Result<Reply> {
        let connection = &self.connection;
        let exchange = async {
            let (mut send, mut recv) = connection.open_bi().await?;
            send.write_all(bytes).await?;
            send.finish()?;
            let frame = read_frame::<_, Response>(&mut recv).await;
            let tail = recv.read_to_end(tail_limit).await.map_err(|err| err.to_string());
            anyhow::Ok((frame, tail))
        };
        let (frame, tail) = timeout(WAIT, exchange)
            .await
            .context("no answer on the stream within the wait bound")??;
        if let Ok(response) = &frame {
            self.transcript.extend(serde_json::to_vec(response)?);
        }
        if let Ok(bytes) = &tail {
            self.transcript.extend_from_slice(bytes);
        }
        Ok(Reply { frame, tail })
    }

    async fn send<T: Serialize>(&mut self, message: &T, tail_limit: usize) -> Result<Reply> {
        self.send_raw(&encode(message).await?, tail_limit).await
    }

    /// Expects exactly one `Error` frame of `kind`, then a stream with nothing more; returns the message.
    async fn expect_error_raw(&mut self, what: &str, bytes: &[u8], kind: ErrorKind) -> Result<String> {
        let reply = self.send_raw(bytes, ERROR_TAIL_LIMIT).await?;
        let message = match reply.frame {
            Ok(Response::Error { kind: got, message }) => {
                ensure!(got == kind, "{what}: expected {kind:?}, got {got:?} ({message})");
                message
            }
            Ok(other) => bail!("{what}: expected a {kind:?} error, got {other:?}"),
            Err(err) => bail!(
                "{what}: expected a {kind:?} error frame, the stream gave {err} (then {:?})",
                reply.tail
            ),
        };
        // A reset after the error frame (`Err`) would carry no data either.
        if let Ok(rest) = &reply.tail {
            ensure!(
                rest.is_empty(),
                "{what}: {} raw bytes followed the error frame",
                rest.len()
            );
        }
        Ok(message)
    }

    async fn expect_error(&mut self, what: &str, request: &Request, kind: ErrorKind) -> Result<String> {
        self.expect_error_raw(what, &encode(request).await?, kind).await
    }

    /// `GetGame`: a `GameListing` header, pages of exactly its entries, then a clean end.
    async fn get_game(&mut self) -> Result<GameDetails> {
        let connection = &self.connection;
        let request = encode(&Request::GetGame { id: GAME.to_owned() }).await?;
        let exchange = async {
            let (mut send, mut recv) = connection.open_bi().await?;
            send.write_all(&request).await?;
            send.finish()?;
            let mut frames = vec![read_frame::<_, Response>(&mut recv).await?];
            let Response::GameListing(listing) = &frames[0] else {
                bail!("GetGame {GAME}: expected a GameListing, got {:?}", frames[0]);
            };
            let listing = listing.clone();
            let mut files = Vec::new();
            while (files.len() as u64) < listing.entries {
                let page = read_frame::<_, Response>(&mut recv).await?;
                match &page {
                    Response::FileListPage { files: page } if !page.is_empty() => files.extend(page.iter().cloned()),
                    other => bail!("GetGame {GAME}: expected a file-list page, got {other:?}"),
                }
                frames.push(page);
            }
            let rest = recv.read_to_end(ERROR_TAIL_LIMIT).await?;
            ensure!(
                rest.is_empty(),
                "GetGame {GAME}: {} bytes after the last page",
                rest.len()
            );
            anyhow::Ok((
                frames,
                GameDetails {
                    id: listing.id,
                    version: listing.version,
                    files,
                },
            ))
        };
        let (frames, details) = timeout(WAIT, exchange)
            .await
            .context("no whole file list within the wait bound")??;
        for frame in &frames {
            self.transcript.extend(serde_json::to_vec(frame)?);
        }
        Ok(details)
    }

    async fn get_chunk(&mut self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let request = Request::GetGameFileChunk {
            id: GAME.to_owned(),
            path: path.to_owned(),
            offset,
            len,
        };
        let reply = self.send(&request, len as usize + 1).await?;
        match (reply.frame, reply.tail) {
            (Ok(Response::FileChunk { offset: o, len: l }), Ok(bytes)) if o == offset && l == len => Ok(bytes),
            (frame, tail) => bail!(
                "chunk {path} {offset}+{len}: expected a matching FileChunk and its bytes, got {frame:?} then {:?}",
                tail.map(|bytes| bytes.len())
            ),
        }
    }

    /// `GetGameFiles`: each file's `FileData` header and bytes in turn, until an `Error`
    /// frame (returned as the last item) or the stream's end; nothing may follow either.
    async fn get_files(&mut self, paths: &[&str]) -> Result<Vec<Result<Vec<u8>, (ErrorKind, String)>>> {
        let connection = &self.connection;
        let request = encode(&files(paths)).await?;
        let mut transcript = Vec::new();
        let exchange = async {
            let (mut send, mut recv) = connection.open_bi().await?;
            send.write_all(&request).await?;
            send.finish()?;
            let mut answers = Vec::new();
            while answers.len() < paths.len() {
                let frame = read_frame::<_, Response>(&mut recv)
                    .await
                    .with_context(|| format!("after {} files", answers.len()))?;
                transcript.extend(serde_json::to_vec(&frame)?);
                match frame {
                    Response::FileData { size } => {
                        ensure!(size <= MAX_CHUNK_LEN, "a {size}-byte file in a batch");
                        let mut bytes = vec![0; size as usize];
                        recv.read_exact(&mut bytes).await?;
                        transcript.extend_from_slice(&bytes);
                        answers.push(Ok(bytes));
                    }
                    Response::Error { kind, message } => {
                        answers.push(Err((kind, message)));
                        break;
                    }
                    other => bail!("expected FileData or Error, got {other:?}"),
                }
            }
            let rest = recv.read_to_end(ERROR_TAIL_LIMIT).await?;
            ensure!(rest.is_empty(), "{} raw bytes followed the answer", rest.len());
            anyhow::Ok(answers)
        };
        let answers = timeout(WAIT, exchange)
            .await
            .context("no whole batch within the wait bound")?;
        self.transcript.extend(transcript);
        answers
    }

    async fn get_file(&mut self, path: &str, expected_len: usize) -> Result<Vec<u8>> {
        let request = Request::GetGameFileData {
            id: GAME.to_owned(),
            path: path.to_owned(),
        };
        let reply = self.send(&request, expected_len + 1).await?;
        match (reply.frame, reply.tail) {
            (Ok(Response::FileData { size }), Ok(bytes)) if size == bytes.len() as u64 => Ok(bytes),
            (frame, tail) => bail!(
                "file {path}: expected FileData and exactly its bytes, got {frame:?} then {:?}",
                tail.map(|bytes| bytes.len())
            ),
        }
    }
}

async fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    write_frame(&mut bytes, message).await?;
    Ok(bytes)
}

/// A frame whose body is `body` as is (not necessarily JSON).
fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn file_data(path: &str) -> Request {
    Request::GetGameFileData {
        id: GAME.to_owned(),
        path: path.to_owned(),
    }
}

fn files(paths: &[&str]) -> Request {
    Request::GetGameFiles {
        id: GAME.to_owned(),
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    }
}

fn file_chunk(path: &str, offset: u64, len: u64) -> Request {
    Request::GetGameFileChunk {
        id: GAME.to_owned(),
        path: path.to_owned(),
        offset,
        len,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File {
        bytes: Vec<u8>,
        modified: Option<SystemTime>,
    },
    Symlink(PathBuf),
    Other,
}

/// Every entry under `root` (symlinks not followed), except the `skip`ped top-level names.
fn tree(root: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<PathBuf, Entry>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            if dir == root && skip.iter().any(|name| relative == Path::new(name)) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = if meta.is_symlink() {
                Entry::Symlink(std::fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                walk(root, &path, skip, out);
                Entry::Dir
            } else if meta.is_file() {
                Entry::File {
                    bytes: std::fs::read(&path).unwrap(),
                    modified: meta.modified().ok(),
                }
            } else {
                Entry::Other
            };
            out.insert(relative, kind);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

/// The peer itself writes its state (and possibly logs); everything else must stay as the test left it.
const PEER_OWNED: &[&str] = &["state", "logs"];

/// One raw client against a fresh serving peer. [`Session::finish`] checks what
/// every hostile request must leave true, so each test shows one behaviour and
/// still proves it leaks nothing.
struct Session {
    fixture: Fixture,
    /// The peer's temp dir before any request, except what the peer itself writes.
    before: BTreeMap<PathBuf, Entry>,
    endpoint: Endpoint,
    probe: Probe,
}

impl Session {
    async fn start() -> Result<Self> {
        let fixture = serving_peer().await;
        let before = tree(&fixture.root(), PEER_OWNED);
        assert!(
            before.contains_key(Path::new("secret.txt"))
                && before.contains_key(Path::new("games/openarena/secret-link")),
            "fixture layout: {:?}",
            before.keys().collect::<Vec<_>>()
        );
        let endpoint = make_endpoint("127.0.0.1:0".parse()?, &Limits::default())?;
        let probe = Probe::connect(&endpoint, fixture.peer.addr()).await?;
        Ok(Session {
            fixture,
            before,
            endpoint,
            probe,
        })
    }

    /// Expects a `kind` error for `path` both as a whole-file and as a chunk request.
    async fn expect_path_error(&mut self, path: &str, kind: ErrorKind) -> Result<()> {
        self.probe
            .expect_error(&format!("file data {path}"), &file_data(path), kind)
            .await?;
        self.probe
            .expect_error(&format!("file chunk {path}"), &file_chunk(path, 0, 8), kind)
            .await?;
        self.probe
            .expect_error(&format!("files [{path}]"), &files(&[path]), kind)
            .await?;
        Ok(())
    }

    /// The same connection and a fresh one still serve exactly the served file
    /// list, nothing bait-like was ever sent back, and nothing on disk changed.
    async fn finish(mut self) -> Result<()> {
        let server = self.fixture.peer.addr();
        let probe = &mut self.probe;
        assert!(
            probe.connection.close_reason().is_none(),
            "the server closed the connection"
        );
        assert_eq!(probe.get_game().await?, self.fixture.expected_details());
        assert_eq!(
            probe.get_chunk("maps/dm1.bsp", 100, 50).await?,
            self.fixture.map[100..150]
        );

        let other_endpoint = make_endpoint("127.0.0.1:0".parse()?, &Limits::default())?;
        let mut fresh = Probe::connect(&other_endpoint, server).await?;
        assert_eq!(fresh.get_game().await?, self.fixture.expected_details());
        assert!(
            fresh.get_file("data.pk3", DATA_LEN).await? == self.fixture.data,
            "data.pk3 differs"
        );
        assert_eq!(
            fresh.get_file("readme.txt", self.fixture.readme.len()).await?,
            self.fixture.readme
        );

        for (name, transcript) in [
            ("hostile connection", &probe.transcript),
            ("fresh connection", &fresh.transcript),
        ] {
            assert!(!contains(transcript, SECRET), "the secret leaked on the {name}");
        }
        if let Ok(passwd) = std::fs::read("/etc/passwd") {
            let first_line = passwd.split(|&b| b == b'\n').next().unwrap_or_default();
            assert!(!contains(&probe.transcript, first_line), "/etc/passwd leaked");
        }
        let after = tree(&self.fixture.root(), PEER_OWNED);
        assert!(
            self.before == after,
            "files changed:\nbefore {:#?}\nafter {after:#?}",
            self.before
        );

        probe.connection.close(0u32.into(), b"done");
        fresh.connection.close(0u32.into(), b"done");
        self.endpoint.close(0u32.into(), b"done");
        other_endpoint.close(0u32.into(), b"done");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_announces_only_its_catalog_games() -> Result<()> {
    let mut session = Session::start().await?;
    let reply = session.probe.send(&Request::ListGames, ERROR_TAIL_LIMIT).await?;
    match reply.frame {
        Ok(Response::Games { games }) => {
            let ids: Vec<_> = games.iter().map(|game| game.id.as_str()).collect();
            assert_eq!(ids, [GAME], "ListGames");
        }
        other => panic!("ListGames: expected Games, got {other:?}"),
    }
    session.finish().await
}

/// Garbage whose first four bytes read as a length far over the limit is rejected
/// as too large; a valid length around garbage as malformed; a request cut off
/// mid-frame (the client finished its side early) as malformed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_cut_off_frames_are_bad_requests() -> Result<()> {
    let mut session = Session::start().await?;
    let probe = &mut session.probe;
    probe
        .expect_error_raw(
            "garbage bytes",
            b"GARBAGE!!! \x00\xff\xfe not a frame",
            ErrorKind::BadRequest,
        )
        .await?;
    probe
        .expect_error_raw(
            "a frame of non-JSON bytes",
            &raw_frame(b"GARBAGE!!!\x00\xff"),
            ErrorKind::BadRequest,
        )
        .await?;
    probe
        .expect_error_raw("an empty frame", &raw_frame(b""), ErrorKind::BadRequest)
        .await?;
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(b"{\"type\":");
    probe
        .expect_error_raw("a request cut off mid-frame", &truncated, ErrorKind::BadRequest)
        .await?;
    session.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_prefix_over_the_limit_is_refused_before_any_body_is_read() -> Result<()> {
    let mut session = Session::start().await?;
    let probe = &mut session.probe;
    let mut oversized = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    oversized.extend_from_slice(b"{\"type\":\"list_games\"}");
    let message = probe
        .expect_error_raw("a frame over MAX_FRAME_LEN", &oversized, ErrorKind::BadRequest)
        .await?;
    assert!(message.contains(&(MAX_FRAME_LEN + 1).to_string()), "{message}");
    probe
        .expect_error_raw(
            "a u32::MAX length prefix",
            &u32::MAX.to_be_bytes(),
            ErrorKind::BadRequest,
        )
        .await?;
    session.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_of_the_wrong_shape_is_a_bad_request() -> Result<()> {
    let mut session = Session::start().await?;
    for json in [
        serde_json::json!({"type": "get_game", "idd": 3}),
        serde_json::json!({"type": "nope"}),
        serde_json::json!({"id": "openarena"}),
        serde_json::json!([1, 2, 3]),
        serde_json::json!({"type": "get_game_file_chunk", "id": "openarena", "path": "data.pk3", "offset": -1, "len": 1}),
        serde_json::json!({"type": "ping", "protocol_version": "one"}),
    ] {
        session
            .probe
            .expect_error_raw(
                &format!("wrong shape {json}"),
                &encode(&json).await?,
                ErrorKind::BadRequest,
            )
            .await?;
    }
    session.finish().await
}

/// `../../secret.txt` is the real secret, so an unchecked join would serve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_out_of_the_game_root_are_invalid() -> Result<()> {
    let mut session = Session::start().await?;
    for path in [
        "../../etc/passwd",
        "../secret.txt",
        "../../secret.txt",
        "maps/../../../secret.txt",
    ] {
        session.expect_path_error(path, ErrorKind::InvalidPath).await?;
    }
    session
        .probe
        .expect_error(
            "backslash traversal",
            &file_data("..\\..\\secret.txt"),
            ErrorKind::InvalidPath,
        )
        .await?;
    session.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_paths_are_invalid_even_the_secrets_own() -> Result<()> {
    let mut session = Session::start().await?;
    let absolute_secret = session.fixture.root().join("secret.txt");
    for path in [
        "/etc/passwd",
        absolute_secret.to_str().expect("UTF-8 temp path"),
        "C:/windows/win.ini",
    ] {
        session.expect_path_error(path, ErrorKind::InvalidPath).await?;
    }
    session.finish().await
}

/// Not in the catalog, in the catalog but absent, or not an id at all. (`..` +
/// `secret.txt` would name the real secret if the id were joined unchecked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_are_not_served_are_unknown_games() -> Result<()> {
    let mut session = Session::start().await?;
    let probe = &mut session.probe;
    for id in [UNCATALOGUED, "xonotic", "../x", "..", "", "OpenArena", "openarena/maps"] {
        probe
            .expect_error(
                &format!("GetGame {id:?}"),
                &Request::GetGame { id: id.to_owned() },
                ErrorKind::UnknownGame,
            )
            .await?;
    }
    for (id, path) in [
        (UNCATALOGUED, "payload.bin"),
        (UNCATALOGUED, "version.ini"),
        ("../x", "secret.txt"),
        ("..", "secret.txt"),
        ("xonotic", "version.ini"),
    ] {
        let data = Request::GetGameFileData {
            id: id.to_owned(),
            path: path.to_owned(),
        };
        probe
            .expect_error(&format!("file data {id:?}/{path}"), &data, ErrorKind::UnknownGame)
            .await?;
        let chunk = Request::GetGameFileChunk {
            id: id.to_owned(),
            path: path.to_owned(),
            offset: 0,
            len: 4,
        };
        probe
            .expect_error(&format!("file chunk {id:?}/{path}"), &chunk, ErrorKind::UnknownGame)
            .await?;
    }
    session.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_paths_that_are_not_served_files_are_not_found() -> Result<()> {
    let mut session = Session::start().await?;
    for path in ["missing.pk3", "maps/missing.bsp", "maps"] {
        session
            .probe
            .expect_error(&format!("file data {path}"), &file_data(path), ErrorKind::NotFound)
            .await?;
    }
    session.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_game_and_reserved_names_are_invalid_paths() -> Result<()> {
    let mut session = Session::start().await?;
    for path in [
        "local/game.exe",
        "local",
        ".local.installing/x",
        ".version.ini.tmp",
        "maps/.lanspread_owned",
    ] {
        session
            .probe
            .expect_error(&format!("file data {path}"), &file_data(path), ErrorKind::InvalidPath)
            .await?;
        session
            .probe
            .expect_error(
                &format!("file chunk {path}"),
                &file_chunk(path, 0, 4),
                ErrorKind::InvalidPath,
            )
            .await?;
    }
    session.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_outside_the_file_too_long_or_overflowing_are_invalid() -> Result<()> {
    let mut session = Session::start().await?;
    let size = DATA_LEN as u64;
    for (offset, len) in [
        (size - 10, 11),
        (size, 1),
        (size + 1, 0),
        (0, size + 1),
        (u64::MAX, 2),
        (2, u64::MAX),
        (u64::MAX, u64::MAX),
    ] {
        session
            .probe
            .expect_error(
                &format!("chunk data.pk3 {offset}+{len}"),
                &file_chunk("data.pk3", offset, len),
                ErrorKind::InvalidRange,
            )
            .await?;
    }
    session.finish().await
}

/// To the secret file and to a dir outside the game dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_inside_the_game_root_are_never_served() -> Result<()> {
    let mut session = Session::start().await?;
    for path in ["secret-link", "maps/outside-link", "maps/outside-link/notes.txt"] {
        session.expect_path_error(path, ErrorKind::NotFound).await?;
    }
    session.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_with_another_protocol_version_is_a_mismatch_naming_both_versions() -> Result<()> {
    let mut session = Session::start().await?;
    let hello = Hello {
        protocol_version: 999,
        peer_id: "bad-input-test".to_owned(),
        name: "bad input".to_owned(),
        library_revision: 0,
    };
    let message = session
        .probe
        .expect_error(
            "ping with protocol 999",
            &Request::Ping(hello),
            ErrorKind::ProtocolMismatch,
        )
        .await?;
    let numbers: Vec<u32> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(
        numbers.contains(&999) && numbers.contains(&PROTOCOL_VERSION),
        "the mismatch message should name both versions: {message}"
    );
    session.finish().await
}

/// The positive control: valid requests return exactly the generated bytes, and the
/// transcript check in [`Session::finish`] does see served bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_chunks_return_exactly_the_requested_bytes() -> Result<()> {
    let fixture = serving_peer().await;
    let endpoint = make_endpoint("127.0.0.1:0".parse()?, &Limits::default())?;
    let mut probe = Probe::connect(&endpoint, fixture.peer.addr()).await?;

    let chunk = probe.get_chunk("data.pk3", 12_345, 54_321).await?;
    assert!(
        chunk == fixture.data[12_345..12_345 + 54_321],
        "chunk differs from the generated data"
    );
    let tail = probe.get_chunk("data.pk3", DATA_LEN as u64 - 10, 10).await?;
    assert_eq!(tail, fixture.data[DATA_LEN - 10..]);
    let map = probe.get_file("maps/dm1.bsp", MAP_LEN).await?;
    assert!(map == fixture.map, "dm1.bsp differs from the generated data");
    assert_eq!(
        probe.get_file("version.ini", GAME_VERSION.len()).await?,
        GAME_VERSION.as_bytes()
    );

    assert!(contains(&probe.transcript, &fixture.data[12_345..12_345 + 64]));
    assert!(!contains(&probe.transcript, SECRET));

    probe.connection.close(0u32.into(), b"done");
    endpoint.close(0u32.into(), b"done");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_files_are_bounded_and_end_at_the_first_file_not_served() -> Result<()> {
    let mut session = Session::start().await?;
    let fixture = &session.fixture;
    let (map, readme, data) = (fixture.map.clone(), fixture.readme.clone(), fixture.data.clone());
    let answers = session
        .probe
        .get_files(&["maps/dm1.bsp", "readme.txt", "data.pk3"])
        .await?;
    assert!(
        answers == [Ok(map), Ok(readme.clone()), Ok(data)],
        "each file whole, in order"
    );

    for (count, what) in [(0, "no paths"), (MAX_BATCH_FILES + 1, "one path too many")] {
        let paths = vec!["readme.txt"; count];
        let message = session
            .probe
            .expect_error(what, &files(&paths), ErrorKind::BadRequest)
            .await?;
        assert!(message.contains(&MAX_BATCH_FILES.to_string()), "{message}");
    }
    // A file that is not served ends the answer: nothing after it is sent.
    for (path, kind) in [
        ("secret-link", ErrorKind::NotFound),
        ("../secret.txt", ErrorKind::InvalidPath),
        ("local/game.exe", ErrorKind::InvalidPath),
    ] {
        let answers = session.probe.get_files(&["readme.txt", path, "readme.txt"]).await?;
        assert_eq!(answers.len(), 2, "{path}: {answers:?}");
        assert!(answers[0] == Ok(readme.clone()), "{path}");
        assert!(
            matches!(&answers[1], Err((got, _)) if *got == kind),
            "{path}: {:?}",
            answers[1]
        );
    }
    session.finish().await
}

/// A batch may not ask for more than one chunk's worth of bytes, however few its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_chunk_limit_is_refused_before_any_byte() -> Result<()> {
    const BIG: usize = 600 << 10;
    let mut peer = start_test_peer(&[], |games| {
        write_game(games, GAME, GAME_VERSION, &[("big.pk3", pseudo_random_bytes(5, BIG))]);
    });
    peer.wait_for_snapshot("the peer to scan its game", |snapshot| {
        snapshot
            .game(GAME)
            .is_some_and(|game| game.local_version.as_deref() == Some(GAME_VERSION))
    })
    .await;
    peer.wait_for_hashing_done().await;
    let endpoint = make_endpoint("127.0.0.1:0".parse()?, &Limits::default())?;
    let mut probe = Probe::connect(&endpoint, peer.addr()).await?;
    let over = MAX_CHUNK_LEN as usize / BIG + 1;
    assert!(
        over <= MAX_BATCH_FILES,
        "the fixture must reach the byte limit within the path limit"
    );
    let message = probe
        .expect_error(
            "a batch over the chunk limit",
            &files(&vec!["big.pk3"; over]),
            ErrorKind::InvalidRange,
        )
        .await?;
    assert!(message.contains(&MAX_CHUNK_LEN.to_string()), "{message}");
    let answers = probe.get_files(&vec!["big.pk3"; over - 1]).await?;
    assert_eq!(answers.len(), over - 1, "just under the limit is served");
    endpoint.close(0u32.into(), b"done");
    Ok(())
}
