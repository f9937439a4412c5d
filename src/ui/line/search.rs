//! Where a line-mode command looks for peers (the configured ones and, unless it is off,
//! mDNS), when it has heard enough, and what it says about the peers it did not hear.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::peer::LibrarySnapshot;

#[derive(Debug, Clone)]
pub struct PeerSearch {
    /// The `--peer` / `peers =` addresses.
    pub configured: Vec<SocketAddr>,
    pub mdns: bool,
    /// How long to look.
    pub wait: Duration,
}

impl PeerSearch {
    pub fn of(config: &Config, wait: Duration) -> Self {
        PeerSearch {
            configured: config.static_peers.clone(),
            mdns: config.mdns,
            wait,
        }
    }

    /// Without mDNS, every configured peer answered with its library: nobody else can.
    pub fn heard_everyone(&self, snapshot: &LibrarySnapshot) -> bool {
        !self.mdns
            && self.configured.iter().all(|addr| {
                snapshot
                    .peers
                    .iter()
                    .any(|peer| peer.addr == *addr && peer.library_loaded)
            })
    }

    /// One line per configured peer that does not answer, with why when the runtime knows.
    pub fn unanswered(&self, snapshot: &LibrarySnapshot) -> Vec<String> {
        let wait = self.wait.as_secs_f64();
        self.configured
            .iter()
            .filter(|addr| !snapshot.peers.iter().any(|peer| peer.addr == **addr))
            .map(
                |addr| match snapshot.absent_peers.iter().find(|peer| peer.addr == *addr) {
                    Some(absent) => format!("configured peer: {}", absent.why),
                    None => format!("configured peer {addr}: no answer within {wait:.1}s"),
                },
            )
            .collect()
    }

    /// Prints [`Self::unanswered`] to stderr.
    pub fn report_unanswered(&self, snapshot: &LibrarySnapshot) {
        for line in self.unanswered(snapshot) {
            eprintln!("lanspread: {line}");
        }
    }

    /// What to check when nobody answered: mDNS only when it was used.
    pub fn nobody_answered(&self) -> String {
        let wait = self.wait.as_secs_f64();
        let check = match (self.mdns, self.configured.is_empty()) {
            (true, true) => "that peers run `lanspread serve` and that mDNS (UDP 5353) reaches this network",
            (true, false) => {
                "the --peer addresses, that peers run `lanspread serve`, and that mDNS (UDP 5353) reaches this network"
            }
            (false, _) => "that each --peer address and port is right and that it runs `lanspread serve`",
        };
        format!("no peer answered within {wait:.1}s; check {check}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{AbsentPeer, PeerSummary};

    fn search(mdns: bool) -> PeerSearch {
        PeerSearch {
            configured: vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()],
            mdns,
            wait: Duration::from_secs(3),
        }
    }

    fn answered(port: u16) -> PeerSummary {
        PeerSummary {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            peer_id: "p".into(),
            name: "seed".into(),
            game_count: 1,
            latency: Duration::from_millis(1),
            library_loaded: true,
            unanswered_for: None,
        }
    }

    #[test]
    fn the_configured_peers_that_did_not_answer_are_named_with_why() {
        let snapshot = LibrarySnapshot {
            peers: vec![answered(1)],
            absent_peers: vec![AbsentPeer {
                addr: "127.0.0.1:2".parse().unwrap(),
                name: None,
                status: "no answer".into(),
                why: "127.0.0.1:2 did not answer within 5s".into(),
                game_count: 0,
            }],
            ..LibrarySnapshot::default()
        };
        assert_eq!(
            search(false).unanswered(&snapshot),
            ["configured peer: 127.0.0.1:2 did not answer within 5s"]
        );
        let silent = LibrarySnapshot {
            peers: vec![answered(2)],
            ..LibrarySnapshot::default()
        };
        assert_eq!(
            search(false).unanswered(&silent),
            ["configured peer 127.0.0.1:1: no answer within 3.0s"]
        );
        assert!(!search(false).heard_everyone(&silent));
        let both = LibrarySnapshot {
            peers: vec![answered(1), answered(2)],
            ..LibrarySnapshot::default()
        };
        assert!(search(false).heard_everyone(&both));
        assert!(!search(true).heard_everyone(&both), "mDNS may still find others");
    }

    #[test]
    fn without_mdns_nobody_answering_does_not_suggest_mdns() {
        assert!(!search(false).nobody_answered().contains("mDNS"));
        assert!(search(true).nobody_answered().contains("mDNS"));
    }
}
