//! `lanspread verify` on real processes: an intact game passes; a flipped byte (its file's
//! stamp unchanged, as bit rot leaves it) is found against the peers and, with no peer
//! around, against the hashes recorded here; `--repair` fetches exactly the one damaged
//! block, and the game is byte-identical again; with neither a peer nor a record, it says
//! there is nothing to compare with (exit 2). In process: peers that vanished do not
//! hold up the one that answers (verify asks them at once).

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::process::{Finished, Lanspread, command, free_addr};
use support::{pseudo_random_bytes, rot, write_game};

const GAME: &str = "openarena";
const MIB: usize = 1 << 20;

fn lanspread(root: &Path, args: &[&str], peer: Option<SocketAddr>) -> Finished {
    let peer = peer.map(|addr| addr.to_string());
    let mut all = args.to_vec();
    all.extend(["--no-mdns", "--listen", "127.0.0.1:0"]);
    if let Some(peer) = &peer {
        all.extend(["--peer", peer]);
    }
    Lanspread::spawn(command(root, &all)).finish()
}

#[test]
fn verify_finds_a_flipped_byte_and_repair_fetches_only_its_block() {
    let dir = tempfile::tempdir().unwrap();
    let pak = pseudo_random_bytes(21, 3 * MIB + 17);
    let files = [("game.pak", pak.clone()), ("readme.txt", b"hello".to_vec())];
    let seed_root = dir.path().join("seed");
    write_game(&seed_root.join("games"), GAME, "1", &files);
    let seed_addr = free_addr();
    let mut seed = Lanspread::serve(&seed_root, seed_addr, &[], &[]);
    seed.wait_for_line(&["hashed 1 game(s)"]);

    let client = dir.path().join("client");
    let got = lanspread(&client, &["get", GAME, "--no-install"], Some(seed_addr));
    assert_eq!(got.code(), Some(0), "{got}");
    let intact = lanspread(&client, &["verify", GAME], Some(seed_addr));
    assert_eq!(intact.code(), Some(0), "{intact}");
    assert!(intact.stdout.contains("openarena 1 is intact"), "{intact}");
    assert!(intact.stdout.contains("against 1 peer(s)"), "{intact}");

    let local_pak = client.join("games").join(GAME).join("game.pak");
    rot(&local_pak, [MIB as u64 + 4242]);
    let damaged = lanspread(&client, &["verify", GAME], Some(seed_addr));
    assert_eq!(damaged.code(), Some(1), "{damaged}");
    assert!(
        damaged.stdout.contains("game.pak: 1 of 4 blocks differ (block 1)"),
        "{damaged}"
    );

    // No peer around: the hashes recorded at download time still catch it.
    let offline = lanspread(&client, &["verify", GAME, "--wait", "1"], None);
    assert_eq!(offline.code(), Some(1), "{offline}");
    assert!(offline.stdout.contains("against the hashes recorded here"), "{offline}");
    assert!(
        offline.stdout.contains("game.pak: 1 of 4 blocks differ (block 1)"),
        "{offline}"
    );

    let repaired = lanspread(&client, &["verify", GAME, "--repair"], Some(seed_addr));
    assert_eq!(repaired.code(), Some(0), "{repaired}");
    // One block, and version.ini, which every download fetches last.
    let fetched = MIB + "1".len();
    assert!(
        repaired
            .stdout
            .contains(&format!("repaired openarena: fetched {fetched} bytes")),
        "{repaired}"
    );
    assert!(
        std::fs::read(&local_pak).unwrap() == pak,
        "the game is byte-identical again"
    );
    let again = lanspread(&client, &["verify", GAME], Some(seed_addr));
    assert_eq!(again.code(), Some(0), "{again}");
}

/// A downloaded game, with no peer of its version around.
fn downloaded_then_alone(dir: &Path) -> std::path::PathBuf {
    let pak = pseudo_random_bytes(22, 2 * MIB + 5);
    let seed_root = dir.join("seed");
    write_game(&seed_root.join("games"), GAME, "1", &[("game.pak", pak)]);
    let seed_addr = free_addr();
    let mut seed = Lanspread::serve(&seed_root, seed_addr, &[], &[]);
    seed.wait_for_line(&["hashed 1 game(s)"]);
    let client = dir.join("client");
    let got = lanspread(&client, &["get", GAME, "--no-install"], Some(seed_addr));
    assert_eq!(got.code(), Some(0), "{got}");
    client
}

/// Exit 2, "nothing to compare with": a game nothing is recorded about here (its state dir's
/// index and hashes lost, as for a game folder copied from another box) and no peer with its
/// version around. A byte of it is flipped, so an "intact" would be a lie: verify must not
/// hash the file and then compare it with those very hashes. A second verify says the same,
/// so the first did not record the damaged bytes as the reference either.
#[test]
fn verify_with_no_peer_and_nothing_recorded_here_has_nothing_to_compare_with() {
    let dir = tempfile::tempdir().unwrap();
    let client = downloaded_then_alone(dir.path());
    let state = client.join("state");
    std::fs::remove_file(state.join("library-index.json")).unwrap();
    std::fs::remove_file(state.join("hashes").join(format!("{GAME}.bin"))).unwrap();
    rot(&client.join("games").join(GAME).join("game.pak"), [4242]);
    let nothing = "cannot verify openarena 1: no peer with this version answered and no hashes are recorded here";
    for attempt in ["first", "second"] {
        let verified = lanspread(&client, &["verify", GAME, "--wait", "1"], None);
        assert_eq!(verified.code(), Some(2), "{attempt} verify: {verified}");
        assert!(verified.stdout.contains(nothing), "{attempt} verify: {verified}");
    }
}

/// A file written since its hashes were recorded (its stamp changed), and no peer: its
/// record no longer describes it, so it cannot be verified, and the game is not called
/// intact on the strength of the files that could (exit 2, the file named).
#[test]
fn verify_does_not_call_a_file_changed_since_its_record_intact() {
    let dir = tempfile::tempdir().unwrap();
    let client = downloaded_then_alone(dir.path());
    let pak = client.join("games").join(GAME).join("game.pak");
    let mut bytes = std::fs::read(&pak).unwrap();
    bytes[4242] ^= 0x5a;
    std::fs::write(&pak, &bytes).unwrap();
    let verified = lanspread(&client, &["verify", GAME, "--wait", "1"], None);
    assert_eq!(verified.code(), Some(2), "{verified}");
    assert!(
        verified
            .stdout
            .contains("cannot verify 1 of 2 files of openarena 1 (no peer with this version answered)"),
        "{verified}"
    );
    assert!(
        verified
            .stdout
            .contains("game.pak: changed since its hashes were recorded here"),
        "{verified}"
    );
}

/// Peers that vanished (bound UDP sockets that swallow every datagram) do not hold up the
/// one that answers: verify asks them at once. The answering peer is asked first and, as
/// a test device, sends its list only once every vanished peer has been contacted (each has
/// received a datagram), so a verify that asks one peer after another waits for it alone,
/// times out, and ends with no peer as its reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_asks_the_peers_at_once_so_vanished_ones_do_not_hold_up_the_answer() {
    use std::sync::Arc;

    use lanspread::config::Limits;
    use lanspread::content::root_of;
    use lanspread::peer::client::PeerClient;
    use lanspread::peer::transport::make_endpoint;
    use lanspread::peer::verify::{LocalGame, Reference, verify};
    use lanspread::proto::{GameDetails, GameFileDescription, Request};
    use support::fake::{fake_peer, not_scripted, send_listing};
    use tokio::sync::Semaphore;
    use tokio_util::sync::CancellationToken;

    const VANISHED: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let (game_dir, state_dir) = (dir.path().join("games"), dir.path().join("state"));
    let pak = pseudo_random_bytes(5, 100_000);
    write_game(&game_dir, GAME, "1", &[("game.pak", pak.clone())]);
    std::fs::create_dir_all(&state_dir).unwrap();
    let file = |path: &str, bytes: &[u8]| GameFileDescription {
        path: path.into(),
        size: bytes.len() as u64,
        is_dir: false,
        hash: Some(root_of(bytes)),
    };
    let files = vec![file("game.pak", &pak), file("version.ini", b"1")];

    let contacted = Arc::new(Semaphore::new(0));
    let mut peers = Vec::new();
    let details = GameDetails {
        id: GAME.into(),
        version: "1".into(),
        files: files.clone(),
    };
    let gate = contacted.clone();
    peers.push(fake_peer(GAME, "1", move |request, mut send| {
        let (gate, details) = (gate.clone(), details.clone());
        async move {
            match request {
                Request::GetGame { .. } => {
                    let _all = gate.acquire_many(VANISHED as u32).await.unwrap();
                    send_listing(&mut send, &details).await;
                }
                _ => not_scripted(send).await,
            }
        }
    }));
    for _ in 0..VANISHED {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        peers.push(socket.local_addr().unwrap());
        let contacted = contacted.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            let _ = socket.recv_from(&mut buffer).await;
            contacted.add_permits(1);
            while socket.recv_from(&mut buffer).await.is_ok() {}
        });
    }

    let client = PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    let (events, _events_rx) = tokio::sync::mpsc::channel(64);
    let game = LocalGame {
        id: GAME,
        version: "1",
        game_dir: &game_dir,
        state_dir: &state_dir,
        files: &files,
    };
    let verified = verify(game, &client, &peers, &events, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(verified.report.reference, Reference::Peers(1), "{:?}", verified.report);
    assert!(verified.report.damaged.is_empty(), "{:?}", verified.report);
    assert_eq!(verified.report.files, 2);
}
