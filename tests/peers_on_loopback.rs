//! Several in-process peers on 127.0.0.1 with static peer lists: they see each
//! other's libraries, serve file lists and byte ranges, and prune a peer that stops.

mod support;

use lanspread::config::Limits;
use lanspread::content::root_of;
use lanspread::peer::client::PeerClient;
use lanspread::peer::transport::make_endpoint;
use lanspread::peer::{GameState, PeerEvent};
use lanspread::proto::GameFileDescription;
use support::peer::GameFiles;
use support::{pseudo_random_bytes, start_test_peer, write_game};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_see_each_others_games_and_serve_files() {
    let data = pseudo_random_bytes(1, 300_000);
    let map = pseudo_random_bytes(2, 4096);
    let mut a = start_test_peer(&[], |games| {
        write_game(
            games,
            "openarena",
            "20240301",
            &[("oa.zip", data.clone()), ("maps/dm1.pk3", map.clone())],
        );
        // Installed, and an older version than c's: a shows "update available".
        write_game(games, "xonotic", "1.0", &[("xonotic.tar.gz", vec![7; 10])]);
        std::fs::create_dir_all(games.join("xonotic/local")).unwrap();
    });
    let mut b = start_test_peer(&[a.addr()], |games| {
        write_game(games, "teeworlds", "0.7.5", &[("tw.zip", vec![1; 1000])]);
    });
    // a has no static peers: it learns b and c from their pings.
    let mut c = start_test_peer(&[a.addr(), b.addr()], |games| {
        write_game(games, "xonotic", "1.1", &[("xonotic.tar.gz", vec![8; 20])]);
        write_game(
            games,
            "openarena",
            "20240301",
            &[("oa.zip", data.clone()), ("maps/dm1.pk3", map.clone())],
        );
    });

    // Each peer's own scan too: the peers' announcements can arrive before it ends (it hashes
    // the files), and until then every local game looks remote.
    let everyone_sees_everyone = |s: &lanspread::peer::LibrarySnapshot| {
        s.local_scanned && s.peers.len() == 2 && s.peers.iter().all(|p| p.library_loaded) && s.games.len() == 3
    };
    let snap_a = a.wait_for_snapshot("a to see b and c", everyone_sees_everyone).await;
    // A peer announces each game once it is hashed, smallest first: c's openarena may come
    // after its xonotic, so b waits for both holders of it.
    let snap_b = b
        .wait_for_snapshot("b to see a and c, and openarena on both", |s| {
            everyone_sees_everyone(s)
                && s.games
                    .iter()
                    .any(|game| game.id == "openarena" && game.peers.len() == 2)
        })
        .await;
    let snap_c = c.wait_for_snapshot("c to see a and b", everyone_sees_everyone).await;

    // a: has openarena (same version as c), an outdated installed xonotic, teeworlds only remotely.
    let game = |s: &lanspread::peer::LibrarySnapshot, id: &str| s.game(id).cloned().unwrap();
    assert_eq!(game(&snap_a, "openarena").state, GameState::Downloaded);
    assert_eq!(game(&snap_a, "openarena").latest_version.as_deref(), Some("20240301"));
    let xonotic_at_a = game(&snap_a, "xonotic");
    assert_eq!(xonotic_at_a.state, GameState::UpdateAvailable);
    assert_eq!(xonotic_at_a.local_version.as_deref(), Some("1.0"));
    assert_eq!(xonotic_at_a.latest_version.as_deref(), Some("1.1"));
    assert!(xonotic_at_a.installed);
    let teeworlds_at_a = game(&snap_a, "teeworlds");
    assert_eq!(teeworlds_at_a.state, GameState::RemoteOnly);
    assert_eq!(teeworlds_at_a.latest_version.as_deref(), Some("0.7.5"));
    assert_eq!(teeworlds_at_a.peers.len(), 1);
    assert_eq!(teeworlds_at_a.peers[0].addr, b.addr());

    // b: everything else is remote; openarena is on two peers, xonotic's latest is c's.
    let openarena_at_b = game(&snap_b, "openarena");
    assert_eq!(openarena_at_b.state, GameState::RemoteOnly);
    let mut holders: Vec<_> = openarena_at_b.peers.iter().map(|p| p.addr).collect();
    holders.sort();
    let mut expected = vec![a.addr(), c.addr()];
    expected.sort();
    assert_eq!(holders, expected);
    assert_eq!(game(&snap_b, "xonotic").latest_version.as_deref(), Some("1.1"));
    assert_eq!(game(&snap_b, "teeworlds").state, GameState::Downloaded);

    // c: its xonotic is the newest, so it is not "update available".
    assert_eq!(game(&snap_c, "xonotic").state, GameState::Downloaded);
    assert_eq!(game(&snap_c, "teeworlds").state, GameState::RemoteOnly);

    // GetGame: b asks for openarena's file list, served by both a and c.
    let GameFiles {
        version,
        files,
        mut peers,
    } = b.fetch_files("openarena").await.unwrap();
    peers.sort();
    assert_eq!(version, "20240301");
    assert_eq!(peers, expected);
    // The merged list is the entries the peers agree on: sizes and content roots.
    let file = |path: &str, bytes: &[u8]| GameFileDescription {
        path: path.into(),
        size: bytes.len() as u64,
        is_dir: false,
        hash: Some(root_of(bytes)),
    };
    let maps = GameFileDescription {
        path: "maps".into(),
        size: 0,
        is_dir: true,
        hash: None,
    };
    assert_eq!(
        files,
        [
            maps,
            file("maps/dm1.pk3", &map),
            file("oa.zip", &data),
            file("version.ini", b"20240301")
        ]
    );

    // A non-catalog id and a game nobody has are refused with a reason.
    let reason = b.fetch_files("quake3").await.unwrap_err();
    assert!(reason.contains("no peer"), "{reason}");

    // Ranged chunks return exactly the requested bytes, from either holder.
    let client = PeerClient::new(make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap());
    for (server, offset, len) in [
        (a.addr(), 0u64, 1u64),
        (c.addr(), 12_345, 65_536),
        (a.addr(), 299_000, 1000),
    ] {
        let mut received = Vec::new();
        let count = client
            .get_file_chunk(server, "openarena", "oa.zip", offset, len, &mut received)
            .await
            .unwrap();
        assert_eq!(count, len);
        assert_eq!(
            received,
            data[offset as usize..(offset + len) as usize],
            "{server} {offset}+{len}"
        );
    }
    let mut whole = Vec::new();
    client
        .get_file_data(c.addr(), "openarena", "maps/dm1.pk3", &mut whole)
        .await
        .unwrap();
    assert_eq!(whole, map);

    for peer in [a, b, c] {
        peer.runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_peer_is_reported_and_its_games_stay_listed_as_left() {
    let mut a = start_test_peer(&[], |games| {
        write_game(games, "openarena", "1", &[("a.zip", vec![1; 10])]);
    });
    let b = start_test_peer(&[a.addr()], |games| {
        write_game(games, "teeworlds", "1", &[("t.zip", vec![2; 10])]);
    });
    let b_addr = b.addr();
    a.wait_for_snapshot("a to load b's library", |s| s.game("teeworlds").is_some())
        .await;

    // b stops; a must notice through missed pings (within the 2 s test timeout) and prune it.
    b.runtime.shutdown().await;
    let left = a
        .wait_for("PeerLeft for b", |event| match event {
            PeerEvent::PeerLeft { addr, .. } => Some(*addr),
            _ => None,
        })
        .await;
    assert_eq!(left, b_addr);
    let count = a
        .wait_for("the peer count after b left", |event| match event {
            PeerEvent::PeerCount(count) => Some(*count),
            _ => None,
        })
        .await;
    assert_eq!(count, 0);
    // b's games stay listed for a while, as games of a peer that left (they cannot be
    // fetched until it is back), and b is listed as absent with why.
    let snapshot = a
        .wait_for_snapshot("b's games to be only on a peer that left", |s| {
            s.game("teeworlds")
                .is_some_and(|game| game.peers.is_empty() && !game.left_peers.is_empty())
        })
        .await;
    assert!(snapshot.peers.is_empty());
    let teeworlds = snapshot.game("teeworlds").unwrap();
    assert_eq!(teeworlds.left_peers[0].addr, b_addr);
    let absent: Vec<_> = snapshot
        .absent_peers
        .iter()
        .map(|peer| (peer.addr, peer.status.as_str()))
        .collect();
    assert_eq!(absent, [(b_addr, "left")]);
    assert!(snapshot.game("openarena").is_some(), "local games stay");
    a.runtime.shutdown().await;
}
