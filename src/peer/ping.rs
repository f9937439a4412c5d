//! The ping service: every `ping_interval` each candidate address (static
//! peers, mDNS finds, known peers) gets a `Ping`; a pong makes or keeps it a
//! peer, and a peer silent for `peer_timeout` is pruned. This module decides
//! what a pong means; the actor applies the decision.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::{ClientError, PeerClient};
use super::db::PeerGameDB;
use crate::proto::Hello;

pub struct PingResult {
    pub addr: SocketAddr,
    pub result: Result<(Hello, Duration), ClientError>,
}

pub async fn ping(client: PeerClient, addr: SocketAddr, hello: Hello) -> PingResult {
    let started = Instant::now();
    let result = client
        .ping(addr, &hello)
        .await
        .map(|theirs| (theirs, started.elapsed()));
    PingResult { addr, result }
}

/// What a successful pong from `addr` means.
#[derive(Debug, PartialEq, Eq)]
pub enum PongOutcome {
    /// We pinged ourselves (our own mDNS record, or our address among the static peers).
    OurOwnAddress,
    /// A peer we already know under another address.
    KnownElsewhere(SocketAddr),
    /// A new peer.
    Joined,
    /// A different process now answers at a known peer's address: the old one left.
    Restarted,
    /// A known peer is alive; `refetch` if its library changed.
    Alive { refetch: bool },
}

pub fn classify_pong(
    db: &mut PeerGameDB,
    own_peer_id: &str,
    addr: SocketAddr,
    hello: &Hello,
    now: Instant,
    latency: Duration,
) -> PongOutcome {
    if hello.peer_id == own_peer_id {
        return PongOutcome::OurOwnAddress;
    }
    match db.get(&addr) {
        Some(peer) if peer.peer_id == hello.peer_id => PongOutcome::Alive {
            refetch: db.touch_peer(addr, hello, latency, now),
        },
        Some(_) => PongOutcome::Restarted,
        None => match db.find_by_peer_id(&hello.peer_id) {
            Some(other) => PongOutcome::KnownElsewhere(other),
            None => PongOutcome::Joined,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(peer_id: &str, revision: u64) -> Hello {
        Hello {
            protocol_version: crate::proto::PROTOCOL_VERSION,
            peer_id: peer_id.into(),
            name: "n".into(),
            library_revision: revision,
        }
    }

    #[test]
    fn pongs_are_classified() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let now = Instant::now();
        let mut db = PeerGameDB::default();
        let zero = Duration::ZERO;
        assert_eq!(
            classify_pong(&mut db, "me", a, &hello("me", 1), now, zero),
            PongOutcome::OurOwnAddress
        );
        assert_eq!(
            classify_pong(&mut db, "me", a, &hello("p", 1), now, zero),
            PongOutcome::Joined
        );
        db.insert_peer(a, &hello("p", 1), zero, now);
        assert_eq!(
            classify_pong(&mut db, "me", b, &hello("p", 1), now, zero),
            PongOutcome::KnownElsewhere(a)
        );
        assert_eq!(
            classify_pong(&mut db, "me", a, &hello("p", 1), now, zero),
            PongOutcome::Alive { refetch: true }
        );
        assert_eq!(
            classify_pong(&mut db, "me", a, &hello("q", 1), now, zero),
            PongOutcome::Restarted
        );
    }
}
