//! Files swapped under a serving peer by someone with write access to its game
//! dir, while raw QUIC clients request them: a listed file or directory swapped
//! back and forth with a symlink to something outside the game dir (the
//! outside bytes never arrive), and a listed file replaced by a FIFO (every
//! request for it is refused at once and other requests keep being answered).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lanspread::config::Limits;
use lanspread::peer::transport::{SERVER_NAME, make_endpoint};
use lanspread::proto::{ErrorKind, Request, Response, read_frame, write_frame};
use quinn::{Connection, Endpoint};
use support::{PeerBuilder, TestPeer, WAIT, pseudo_random_bytes, write_game};
use tokio::time::timeout;

const GAME: &str = "openarena";
const GAME_VERSION: &str = "0.8.8";
/// Begins every outside file; none of its bytes may ever be served.
const SECRET_MARKER: &[u8] = b"OUTSIDE-SECRET-7c1e";
const DATA_LEN: usize = 16 * 1024;
const MAP_LEN: usize = 8 * 1024;
const OTHER_LEN: usize = 32 * 1024;
/// Requests per swap race, half whole files and half chunks.
const RACE_REQUESTS: usize = 2_000;
/// Requests in flight at once during a swap race.
const RACE_CONCURRENCY: usize = 8;
/// Upper bound on swaps per race, in case the requests never finish.
const MAX_SWAPS: u64 = 50_000_000;
const FIFO_REQUESTS: usize = 600;
/// quinn and the server limit open streams per connection, so the FIFO requests are spread.
const FIFO_CONNECTIONS: usize = 5;
/// The bound on each answer in the FIFO case.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Content as long as `len` that is recognisably the outside file's.
fn secret(len: usize) -> Vec<u8> {
    SECRET_MARKER.iter().copied().cycle().take(len).collect()
}

fn contains_secret(bytes: &[u8]) -> bool {
    bytes.windows(SECRET_MARKER.len()).any(|window| window == SECRET_MARKER)
}

struct Fixture {
    peer: TestPeer,
    /// The peer's temp dir: holds `games/` and the outside files.
    root: PathBuf,
    game_root: PathBuf,
    data: Vec<u8>,
    map: Vec<u8>,
    other: Vec<u8>,
}

/// A serving peer with `openarena` holding `data.bin`, `maps/x.bsp` and `other.bin`, and
/// outside its game dir `secret.txt` and `outside-maps/x.bsp` (outside content of the same
/// lengths). The game dir is not watched: the served listing stays the one of the first
/// scan, so every request reaches the file opener whatever the swaps do.
async fn serving_peer() -> Fixture {
    let data = pseudo_random_bytes(21, DATA_LEN);
    let map = pseudo_random_bytes(22, MAP_LEN);
    let other = pseudo_random_bytes(23, OTHER_LEN);
    let files = [
        ("data.bin", data.clone()),
        ("maps/x.bsp", map.clone()),
        ("other.bin", other.clone()),
    ];
    let mut peer = PeerBuilder::new()
        .config(|config| config.watch_game_dir = false)
        .prepare(|games| {
            let root = games.parent().expect("game dir has a parent");
            std::fs::write(root.join("secret.txt"), secret(DATA_LEN)).unwrap();
            std::fs::create_dir_all(root.join("outside-maps")).unwrap();
            std::fs::write(root.join("outside-maps/x.bsp"), secret(MAP_LEN)).unwrap();
            write_game(games, GAME, GAME_VERSION, &files);
        })
        .start();
    peer.wait_for_snapshot("the serving peer to scan openarena", |snapshot| {
        snapshot
            .game(GAME)
            .is_some_and(|game| game.local_version.as_deref() == Some(GAME_VERSION))
    })
    .await;
    peer.wait_for_hashing_done().await;
    let root = peer.dir.path().to_path_buf();
    let game_root = peer.game_dir().join(GAME);
    Fixture {
        peer,
        root,
        game_root,
        data,
        map,
        other,
    }
}

async fn connect(endpoint: &Endpoint, server: SocketAddr) -> Result<Connection> {
    let connecting = endpoint.connect(server, SERVER_NAME)?;
    Ok(timeout(WAIT, connecting)
        .await
        .with_context(|| format!("connecting to {server} timed out"))??)
}

/// One request on its own stream: the first frame and the raw bytes after it (at most `limit`).
async fn exchange(connection: &Connection, request: &Request, limit: usize) -> Result<(Response, Vec<u8>)> {
    let mut encoded = Vec::new();
    write_frame(&mut encoded, request).await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&encoded).await?;
    send.finish()?;
    let response = read_frame::<_, Response>(&mut recv).await?;
    let tail = recv.read_to_end(limit).await?;
    Ok((response, tail))
}

fn file_request(path: &str) -> Request {
    Request::GetGameFileData {
        id: GAME.to_owned(),
        path: path.to_owned(),
    }
}

fn chunk_request(path: &str, offset: u64, len: u64) -> Request {
    Request::GetGameFileChunk {
        id: GAME.to_owned(),
        path: path.to_owned(),
        offset,
        len,
    }
}

/// Swaps `a` and `b` (`renameat2` with `RENAME_EXCHANGE`) until `stop` is set or
/// [`MAX_SWAPS`] is reached; returns how many swaps were made.
fn spawn_swapper(a: PathBuf, b: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) && swaps < MAX_SWAPS {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &a,
                rustix::fs::CWD,
                &b,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .expect("RENAME_EXCHANGE works on the test's file system");
            swaps += 1;
        }
        swaps
    })
}

/// How one request of a race was answered.
#[derive(Debug, PartialEq)]
enum Answer {
    Served,
    Refused,
}

/// Served means exactly the listed file's bytes; refused means a `NotFound` error and nothing
/// else. Anything else fails the test, the outside file's bytes above all.
fn classify(request: &Request, response: Response, tail: &[u8], expected: &[u8]) -> Result<Answer> {
    if contains_secret(tail) {
        bail!("{request:?} was answered with the outside file's bytes ({response:?})");
    }
    match response {
        Response::FileData { size } if size == expected.len() as u64 && tail == expected => Ok(Answer::Served),
        Response::FileChunk { offset, len } => {
            let range = usize::try_from(offset)?..usize::try_from(offset + len)?;
            ensure!(
                expected.get(range) == Some(tail),
                "{request:?}: the chunk's bytes are not the listed file's"
            );
            Ok(Answer::Served)
        }
        Response::Error {
            kind: ErrorKind::NotFound,
            ..
        } if tail.is_empty() => Ok(Answer::Refused),
        other => bail!(
            "{request:?}: expected the listed file or NotFound, got {other:?} and {} bytes",
            tail.len()
        ),
    }
}

/// Requests `path` [`RACE_REQUESTS`] times while `a` and `b` are swapped back and forth;
/// fails unless both outcomes were seen, so the swaps really landed between requests.
async fn race(fixture: &Fixture, path: &str, expected: &[u8], a: PathBuf, b: PathBuf) -> Result<()> {
    let endpoint = make_endpoint("127.0.0.1:0".parse()?, &Limits::default())?;
    let connection = connect(&endpoint, fixture.peer.addr()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = spawn_swapper(a, b, stop.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..RACE_CONCURRENCY {
        let connection = connection.clone();
        let expected = expected.to_vec();
        let path = path.to_owned();
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for index in (task..RACE_REQUESTS).step_by(RACE_CONCURRENCY) {
                let len = expected.len() as u64;
                let request = if index % 2 == 0 {
                    file_request(&path)
                } else {
                    chunk_request(&path, (index as u64 * 997) % (len / 2), len / 4)
                };
                let (response, tail) = timeout(WAIT, exchange(&connection, &request, expected.len() + 1))
                    .await
                    .with_context(|| format!("{request:?}: no answer within {WAIT:?}"))??;
                answers.push(classify(&request, response, &tail, &expected)?);
            }
            anyhow::Ok(answers)
        });
    }
    let mut outcome = Ok(Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match (joined?, &mut outcome) {
            (Ok(answers), Ok(all)) => all.extend(answers),
            (Err(err), Ok(_)) => outcome = Err(err),
            (_, Err(_)) => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("the swapper thread does not panic");
    let answers = outcome?;
    let served = answers.iter().filter(|answer| **answer == Answer::Served).count();
    let refused = answers.len() - served;
    println!("{path}: {served} served, {refused} refused during {swaps} swaps");
    ensure!(answers.len() == RACE_REQUESTS, "every request is answered");
    // Both outcomes seen: the swaps really did land between requests.
    ensure!(
        served > 0 && refused > 0,
        "the race was not exercised ({served} served, {refused} refused)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_with_a_symlink_never_serves_the_outside_file() -> Result<()> {
    let fixture = serving_peer().await;
    let link = fixture.root.join("swap-link");
    std::os::unix::fs::symlink(fixture.root.join("secret.txt"), &link)?;
    race(
        &fixture,
        "data.bin",
        &fixture.data,
        fixture.game_root.join("data.bin"),
        link,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_with_a_symlink_never_serves_the_outside_file() -> Result<()> {
    let fixture = serving_peer().await;
    let link = fixture.root.join("maps-link");
    std::os::unix::fs::symlink(fixture.root.join("outside-maps"), &link)?;
    race(
        &fixture,
        "maps/x.bsp",
        &fixture.map,
        fixture.game_root.join("maps"),
        link,
    )
    .await
}

/// Wakes every open blocked on the FIFO at `fifo` (a reader's open waits for a writer):
/// opening it read-write never blocks and counts as a writer, and closing it again lets
/// the woken readers see end-of-file. Only a server that opens FIFOs blocks on one; this
/// lets such a server's test fail instead of leaving its threads stuck.
fn release_fifo_readers(fifo: &Path) {
    let _ = std::fs::OpenOptions::new().read(true).write(true).open(fifo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replaced_by_a_fifo_is_refused_and_others_are_still_served() -> Result<()> {
    let fixture = serving_peer().await;
    // The FIFO keeps a second name outside the game dir so the test can release its readers.
    let fifo = fixture.root.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )?;
    let staged = fixture.root.join("fifo-link");
    std::fs::hard_link(&fifo, &staged)?;
    std::fs::rename(&staged, fixture.game_root.join("data.bin"))?;

    let result = fifo_case(&fixture).await;
    // Put a regular file back first so no later open meets the FIFO, then wake any stuck ones.
    std::fs::write(fixture.game_root.join("data.bin.new"), &fixture.data)?;
    std::fs::rename(
        fixture.game_root.join("data.bin.new"),
        fixture.game_root.join("data.bin"),
    )?;
    release_fifo_readers(&fifo);
    result
}

async fn fifo_case(fixture: &Fixture) -> Result<()> {
    let endpoint = make_endpoint("127.0.0.1:0".parse()?, &Limits::default())?;
    let mut requests = tokio::task::JoinSet::new();
    for connection_index in 0..FIFO_CONNECTIONS {
        let connection = connect(&endpoint, fixture.peer.addr()).await?;
        for index in (connection_index..FIFO_REQUESTS).step_by(FIFO_CONNECTIONS) {
            let connection = connection.clone();
            requests.spawn(async move {
                let request = if index % 2 == 0 {
                    file_request("data.bin")
                } else {
                    chunk_request("data.bin", 0, 1)
                };
                let answer = timeout(ANSWER_WAIT, exchange(&connection, &request, DATA_LEN + 1))
                    .await
                    .with_context(|| format!("{request:?} for the FIFO: no answer within {ANSWER_WAIT:?}"))??;
                match answer {
                    (
                        Response::Error {
                            kind: ErrorKind::NotFound,
                            ..
                        },
                        tail,
                    ) if tail.is_empty() => anyhow::Ok(()),
                    (other, tail) => bail!(
                        "{request:?} for the FIFO: expected NotFound, got {other:?} and {} bytes",
                        tail.len()
                    ),
                }
            });
        }
    }

    // Meanwhile a separate client keeps being answered.
    let bystander = connect(&endpoint, fixture.peer.addr()).await?;
    for round in 0..5u64 {
        let (games, _) = timeout(ANSWER_WAIT, exchange(&bystander, &Request::ListGames, 0))
            .await
            .with_context(|| format!("round {round}: ListGames got no answer within {ANSWER_WAIT:?}"))??;
        ensure!(
            matches!(&games, Response::Games { games } if games.iter().any(|game| game.id == GAME)),
            "round {round}: ListGames answered {games:?}"
        );
        let offset = round * 1024;
        let request = chunk_request("other.bin", offset, 4096);
        let (response, bytes) = timeout(ANSWER_WAIT, exchange(&bystander, &request, OTHER_LEN))
            .await
            .with_context(|| format!("round {round}: a chunk of other.bin got no answer within {ANSWER_WAIT:?}"))??;
        let start = usize::try_from(offset)?;
        ensure!(
            matches!(response, Response::FileChunk { len: 4096, .. }) && bytes == fixture.other[start..start + 4096],
            "round {round}: the chunk of other.bin came back as {response:?} with {} bytes",
            bytes.len()
        );
    }

    let mut refused = 0;
    while let Some(joined) = requests.join_next().await {
        joined??;
        refused += 1;
    }
    ensure!(refused == FIFO_REQUESTS);
    Ok(())
}
