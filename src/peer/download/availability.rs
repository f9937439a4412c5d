//! Which blocks the partial sources of a download hold (see `peer::swarm`).
//!
//! Each partial source is asked for what it verified since its last answer (a few bytes
//! per new block), and holds the answer until it verifies one (at most [`LONG_POLL`]), so a
//! downloader hears of a block about as soon as it is verified, and a source with nothing
//! new costs one request a second. A source is asked again at most every [`ASK_GAP`], so
//! its answers carry what it verified meanwhile. (Asked once a second instead, with the
//! answer at once, a block was on average half a second old news: at 16 peers the last
//! get finished 10-15 % later; README "LAN swarm harness".) Known peers that are not
//! sources yet are probed, a few per round and each at most once per [`PROBE_INTERVAL`],
//! until the download has [`MAX_PARTIAL_SOURCES`]: with 32 peers each asks at most 16
//! others, not all 31, and a peer that does not download this list costs one small
//! request every few seconds. (16, not 8: with 8, a get at a party of 16 or 32 shared its
//! sources' upload slots with about 8 other gets and waited.)

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::fetch::Fetcher;
use super::queue::{RequestId, SourceKind, WorkQueue};
use crate::peer::client::ClientError;
use crate::peer::swarm::{Availability, Bitmap};

/// How long a partial source may hold an answer for its next verified block.
const LONG_POLL: Duration = Duration::from_millis(crate::proto::MAX_AVAILABILITY_WAIT_MS as u64);
/// A partial source is asked again at most this soon after it was last asked (asks go out
/// on the download's progress tick, every 250 ms).
const ASK_GAP: Duration = Duration::from_millis(200);

/// How often one peer that is not a source is asked whether it downloads this list.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Peers probed per round at most.
const PROBES_PER_ROUND: usize = 4;
/// Partial sources one download uses at most.
pub const MAX_PARTIAL_SOURCES: usize = 16;
/// What an availability request costs besides its payload (frames, a QUIC stream).
const REQUEST_OVERHEAD: u64 = 200;

/// One answer to an availability request.
pub struct Answer {
    addr: SocketAddr,
    /// To a peer that was not a source yet.
    probe: bool,
    result: Result<Availability, ClientError>,
}

#[derive(Default)]
pub struct AvailabilityWatch {
    asking: JoinSet<Answer>,
    in_flight: HashSet<SocketAddr>,
    generations: HashMap<SocketAddr, u64>,
    last_asked: HashMap<SocketAddr, Instant>,
    /// Bytes of availability traffic so far (requests and answers, estimated).
    pub traffic: u64,
    /// Where in the known peers probing starts: random per download, so the downloads of
    /// a party do not all take the same 16 peers as sources (in address order, at 32
    /// peers the 10 highest addresses were nobody's source and their uplinks idled).
    probe_start: usize,
}

impl AvailabilityWatch {
    /// A watch that starts probing the known peers at a place chosen by `random`.
    pub fn new(random: u32) -> Self {
        AvailabilityWatch {
            probe_start: random as usize,
            ..Self::default()
        }
    }

    /// Drops the partial sources that left (no longer among the runtime's known peers: they
    /// said goodbye or stopped answering pings) and returns their requests, to abort: else
    /// a block offered to a peer that exited waits out the request deadline (5 s, and up
    /// to 15 s at the end of a download before this).
    pub fn drop_departed(known: &[SocketAddr], queue: &mut WorkQueue) -> Vec<RequestId> {
        let departed: Vec<SocketAddr> = queue
            .live_sources()
            .filter(|(addr, kind)| *kind == SourceKind::Partial && !known.contains(addr))
            .map(|(addr, _)| addr)
            .collect();
        departed
            .into_iter()
            .flat_map(|addr| {
                tracing::debug!(%addr, "partial source gone: it left");
                queue.drop_source(addr, "it left".to_owned())
            })
            .collect()
    }

    /// Asks the partial sources that are due, and probes a few of the `known` peers that are due.
    pub fn poll(&mut self, known: &[SocketAddr], fetcher: &Arc<Fetcher>, queue: &WorkQueue) {
        let now = Instant::now();
        let due = |watch: &Self, addr: &SocketAddr, every: Duration| {
            !watch.in_flight.contains(addr)
                && watch
                    .last_asked
                    .get(addr)
                    .is_none_or(|at| now.duration_since(*at) >= every)
        };
        let sources: Vec<SocketAddr> = queue
            .live_sources()
            .filter(|(addr, kind)| *kind == SourceKind::Partial && !queue.holds_all(*addr))
            .map(|(addr, _)| addr)
            .filter(|addr| due(self, addr, ASK_GAP))
            .collect();
        for addr in sources {
            self.ask(addr, false, fetcher);
        }
        if queue.partial_sources() >= MAX_PARTIAL_SOURCES {
            return;
        }
        let candidates: Vec<SocketAddr> = probe_order(known.to_vec(), self.probe_start)
            .into_iter()
            .filter(|addr| !queue.knows(*addr) && due(self, addr, PROBE_INTERVAL))
            .take(PROBES_PER_ROUND)
            .collect();
        for addr in candidates {
            self.ask(addr, true, fetcher);
        }
    }

    fn ask(&mut self, addr: SocketAddr, probe: bool, fetcher: &Arc<Fetcher>) {
        let since = if probe {
            0
        } else {
            self.generations.get(&addr).copied().unwrap_or(0)
        };
        self.in_flight.insert(addr);
        self.last_asked.insert(addr, Instant::now());
        let fetcher = fetcher.clone();
        self.asking.spawn(async move {
            let blocks = fetcher.layout.total();
            // A probe is answered at once: the peer may not download this list at all.
            let wait = if probe { Duration::ZERO } else { LONG_POLL };
            let result = fetcher
                .client
                .get_availability(addr, &fetcher.id, &fetcher.list, since, blocks, wait)
                .await;
            Answer { addr, probe, result }
        });
    }

    /// The next answer; never resolves while nothing is asked.
    pub async fn next_answer(&mut self) -> Option<Answer> {
        if self.asking.is_empty() {
            return std::future::pending().await;
        }
        self.asking.join_next().await?.ok()
    }

    /// Applies an answer to the queue: a new source, more blocks held, or a source gone
    /// (returned: its requests, to abort).
    pub fn apply(
        &mut self,
        answer: Answer,
        queue: &mut WorkQueue,
        received: &mut std::collections::BTreeMap<SocketAddr, (SourceKind, Arc<AtomicU64>)>,
    ) -> Vec<RequestId> {
        let Answer { addr, probe, result } = answer;
        self.in_flight.remove(&addr);
        self.traffic += REQUEST_OVERHEAD;
        let availability = match result {
            Ok(availability) => availability,
            Err(err) if probe => {
                tracing::trace!(%addr, "not a source: {err}");
                return Vec::new();
            }
            Err(err) => {
                tracing::debug!(%addr, "partial source gone: {err}");
                return queue.drop_source(addr, err.to_string());
            }
        };
        if !queue.knows(addr) {
            if queue.partial_sources() >= MAX_PARTIAL_SOURCES {
                return Vec::new();
            }
            tracing::debug!(%addr, "a partial source joins");
            queue.add_source(addr, SourceKind::Partial, Some(Bitmap::empty(0)));
            received
                .entry(addr)
                .or_insert_with(|| (SourceKind::Partial, Arc::default()));
        }
        match availability {
            Availability::Full => queue.source_holds_all(addr),
            Availability::Bitmap { generation, bitmap } => {
                self.traffic += bitmap.as_bytes().len() as u64;
                self.generations.insert(addr, generation);
                queue.source_holds(addr, &bitmap.iter().collect::<Vec<_>>());
            }
            Availability::Added { generation, blocks } => {
                self.traffic += blocks.len() as u64 * 4;
                self.generations.insert(addr, generation);
                queue.source_holds(addr, &blocks);
            }
        }
        Vec::new()
    }
}

/// The known peers in the order a download probes them: from `start` on, round the list.
fn probe_order(mut peers: Vec<SocketAddr>, start: usize) -> Vec<SocketAddr> {
    if !peers.is_empty() {
        let start = start % peers.len();
        peers.rotate_left(start);
    }
    peers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::BLOCK_SIZE;
    use crate::peer::swarm::BlockLayout;
    use crate::proto::GameFileDescription;

    #[test]
    fn downloads_probe_the_known_peers_from_their_own_random_start() {
        let peers: Vec<SocketAddr> = (1..=31).map(|n| SocketAddr::from(([10, 77, 0, n], 47474))).collect();
        let firsts: HashSet<SocketAddr> = (0..31).map(|start| probe_order(peers.clone(), start)[0]).collect();
        assert_eq!(firsts.len(), 31, "each start probes another peer first");
        let mut every = probe_order(peers.clone(), 40);
        every.sort_unstable();
        assert_eq!(every, peers, "every peer is probed, each once");
        assert!(probe_order(Vec::new(), 7).is_empty());
    }

    #[test]
    fn partial_sources_that_left_are_dropped_with_their_requests_and_seeds_are_kept() {
        let files = [GameFileDescription {
            path: "a.zip".into(),
            size: 4 * BLOCK_SIZE,
            is_dir: false,
            hash: None,
        }];
        let layout = Arc::new(BlockLayout::new(&files).unwrap());
        let addr = |n: u16| SocketAddr::from(([127, 0, 0, 1], n));
        let (seed, stays, leaves) = (addr(1), addr(2), addr(3));
        let mut queue = WorkQueue::new(layout, &[], &[seed], 1, 0);
        queue.add_source(stays, SourceKind::Partial, Some(Bitmap::full(4)));
        queue.add_source(leaves, SourceKind::Partial, Some(Bitmap::full(4)));
        let assigned = queue.assign(Instant::now());
        let to_leaver: Vec<RequestId> = assigned
            .iter()
            .filter(|a| a.source == leaves)
            .map(|a| a.request)
            .collect();
        assert_eq!(to_leaver.len(), 1, "{assigned:?}");

        // Neither the seed nor the partial that left are among the known peers any more.
        let aborted = AvailabilityWatch::drop_departed(&[stays], &mut queue);
        assert_eq!(aborted, to_leaver);
        let live: Vec<SocketAddr> = queue.live_sources().map(|(addr, _)| addr).collect();
        assert!(
            live.contains(&seed) && live.contains(&stays) && !live.contains(&leaves),
            "{live:?}"
        );
        assert!(
            AvailabilityWatch::drop_departed(&[stays], &mut queue).is_empty(),
            "dropped once"
        );
    }
}
