//! The download scheduler: a shared work queue of chunks. Each peer keeps up
//! to `depth` chunk requests in flight and takes the next chunk when one
//! finishes, so faster peers do more. A failed chunk goes back to the front of
//! the queue for any peer, up to `MAX_RETRY_COUNT` tries; a peer that fails
//! `PEER_FAILURE_LIMIT` times in a row is dropped. When the queue is empty,
//! idle peers duplicate outstanding chunks (endgame) so one slow peer cannot
//! stall the finish; the first copy to arrive wins. Only a peer's fault
//! (`TransferError::is_peer_fault`) is retried and counted against it; any
//! other error (a full local disk) fails the download at once and blames no
//! peer, since no other peer could do better.
//!
//! Pure bookkeeping: no I/O, no clock.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;

use super::error::TransferError;

/// Tries per chunk before the download fails.
pub const MAX_RETRY_COUNT: u32 = 5;
/// Consecutive failures after which a peer is dropped from this download.
pub const PEER_FAILURE_LIMIT: u32 = 3;
/// Fetches of one chunk at the same time during the endgame.
const ENDGAME_COPIES: usize = 2;

pub type ChunkId = usize;

#[derive(Debug, Default)]
struct PeerSlot {
    in_flight: HashSet<ChunkId>,
    consecutive_failures: u32,
    dropped: bool,
    last_error: Option<String>,
}

#[derive(Debug)]
pub struct WorkQueue {
    depth: usize,
    pending: VecDeque<ChunkId>,
    /// Chunks in flight, with the peers fetching them.
    in_flight: BTreeMap<ChunkId, Vec<SocketAddr>>,
    done: Vec<bool>,
    remaining: usize,
    attempts: Vec<u32>,
    peers: BTreeMap<SocketAddr, PeerSlot>,
    /// Set when a chunk exhausted its tries.
    exhausted: Option<(ChunkId, String)>,
    /// An error no peer caused: the download fails with it as it is.
    fatal: Option<TransferError>,
}

/// What a finished fetch means for the other fetches of the same chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    /// First copy: these duplicate fetches are now useless and may be aborted.
    First { redundant: Vec<SocketAddr> },
    /// Another peer already delivered this chunk.
    Duplicate,
}

impl WorkQueue {
    pub fn new(chunk_count: usize, peers: &[SocketAddr], depth: usize) -> Self {
        WorkQueue {
            depth: depth.max(1),
            pending: (0..chunk_count).collect(),
            in_flight: BTreeMap::new(),
            done: vec![false; chunk_count],
            remaining: chunk_count,
            attempts: vec![0; chunk_count],
            peers: peers.iter().map(|addr| (*addr, PeerSlot::default())).collect(),
            exhausted: None,
            fatal: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// Peers still taking part.
    pub fn live_peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers
            .iter()
            .filter(|(_, slot)| !slot.dropped)
            .map(|(addr, _)| *addr)
    }

    /// Peers with at least one fetch in flight.
    pub fn active_peers(&self) -> usize {
        self.peers.values().filter(|slot| !slot.in_flight.is_empty()).count()
    }

    /// Whether the download can no longer finish.
    pub fn is_failed(&self) -> bool {
        self.fatal.is_some() || self.exhausted.is_some() || (!self.is_complete() && self.live_peers().next().is_none())
    }

    /// Why the download cannot finish, once it cannot (see [`WorkQueue::is_failed`]).
    /// Takes a fatal error out: once it returns `Some`, give up.
    pub fn take_failure(&mut self) -> Option<TransferError> {
        if let Some(fatal) = self.fatal.take() {
            return Some(fatal);
        }
        if let Some((chunk, error)) = &self.exhausted {
            return Some(TransferError::PeersFailed(format!(
                "a chunk failed {MAX_RETRY_COUNT} times (chunk {chunk}; last error: {error})"
            )));
        }
        if !self.is_complete() && self.live_peers().next().is_none() {
            let errors: Vec<String> = self
                .peers
                .iter()
                .map(|(addr, slot)| format!("{addr}: {}", slot.last_error.as_deref().unwrap_or("dropped")))
                .collect();
            return Some(TransferError::PeersFailed(format!(
                "every peer failed ({})",
                errors.join("; ")
            )));
        }
        None
    }

    /// Hands out work: each live peer fills its in-flight slots from the queue,
    /// or with endgame duplicates once the queue is empty.
    pub fn assign(&mut self) -> Vec<(SocketAddr, ChunkId)> {
        let mut assigned = Vec::new();
        if self.is_failed() {
            return assigned;
        }
        // Round-robin one slot at a time so peers share the queue's front fairly.
        loop {
            let mut progressed = false;
            let addrs: Vec<SocketAddr> = self.live_peers().collect();
            for addr in addrs {
                if self.peers[&addr].in_flight.len() >= self.depth {
                    continue;
                }
                let Some(chunk) = self.next_chunk_for(addr) else {
                    continue;
                };
                self.start(addr, chunk);
                assigned.push((addr, chunk));
                progressed = true;
            }
            if !progressed {
                return assigned;
            }
        }
    }

    fn next_chunk_for(&mut self, addr: SocketAddr) -> Option<ChunkId> {
        if let Some(chunk) = self.pending.pop_front() {
            return Some(chunk);
        }
        // Endgame: the outstanding chunk with the fewest fetchers that this peer is not fetching.
        self.in_flight
            .iter()
            .filter(|(_, fetchers)| fetchers.len() < ENDGAME_COPIES && !fetchers.contains(&addr))
            .min_by_key(|(_, fetchers)| fetchers.len())
            .map(|(chunk, _)| *chunk)
    }

    fn start(&mut self, addr: SocketAddr, chunk: ChunkId) {
        self.in_flight.entry(chunk).or_default().push(addr);
        if let Some(slot) = self.peers.get_mut(&addr) {
            slot.in_flight.insert(chunk);
        }
    }

    fn stop(&mut self, addr: SocketAddr, chunk: ChunkId) {
        if let Some(slot) = self.peers.get_mut(&addr) {
            slot.in_flight.remove(&chunk);
        }
        if let Some(fetchers) = self.in_flight.get_mut(&chunk) {
            fetchers.retain(|fetcher| *fetcher != addr);
            if fetchers.is_empty() {
                self.in_flight.remove(&chunk);
            }
        }
    }

    /// `addr` delivered `chunk`.
    pub fn complete(&mut self, addr: SocketAddr, chunk: ChunkId) -> Completion {
        self.stop(addr, chunk);
        if let Some(slot) = self.peers.get_mut(&addr) {
            slot.consecutive_failures = 0;
        }
        if self.done[chunk] {
            return Completion::Duplicate;
        }
        self.done[chunk] = true;
        self.remaining -= 1;
        let redundant = self.in_flight.remove(&chunk).unwrap_or_default();
        for other in &redundant {
            if let Some(slot) = self.peers.get_mut(other) {
                slot.in_flight.remove(&chunk);
            }
        }
        Completion::First { redundant }
    }

    /// `addr` failed to deliver `chunk`. Returns whether the peer has now been dropped.
    /// An error that is not the peer's fault fails the download instead (the first one is kept)
    /// and leaves the peer's record alone.
    pub fn fail(&mut self, addr: SocketAddr, chunk: ChunkId, error: TransferError) -> bool {
        self.stop(addr, chunk);
        if !error.is_peer_fault() {
            self.fatal.get_or_insert(error);
            return false;
        }
        let at_once = error.drops_peer_at_once();
        let error = error.to_string();
        let mut dropped_now = false;
        if let Some(slot) = self.peers.get_mut(&addr) {
            slot.consecutive_failures += 1;
            slot.last_error = Some(error.clone());
            if !slot.dropped && (at_once || slot.consecutive_failures >= PEER_FAILURE_LIMIT) {
                slot.dropped = true;
                dropped_now = true;
            }
        }
        if self.done[chunk] {
            return dropped_now;
        }
        self.attempts[chunk] += 1;
        if self.attempts[chunk] >= MAX_RETRY_COUNT {
            self.exhausted.get_or_insert((chunk, error));
        } else if !self.in_flight.contains_key(&chunk) && !self.pending.contains(&chunk) {
            self.pending.push_front(chunk);
        }
        dropped_now
    }

    /// The in-flight fetches of a dropped peer, which the caller aborts; their
    /// chunks go back on the queue without counting as a try.
    pub fn take_in_flight(&mut self, addr: SocketAddr) -> Vec<ChunkId> {
        let chunks: Vec<ChunkId> = self
            .peers
            .get(&addr)
            .map(|slot| slot.in_flight.iter().copied().collect())
            .unwrap_or_default();
        for &chunk in &chunks {
            self.stop(addr, chunk);
            if !self.done[chunk] && !self.in_flight.contains_key(&chunk) && !self.pending.contains(&chunk) {
                self.pending.push_front(chunk);
            }
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], n))
    }

    fn peer_error(reason: &str) -> TransferError {
        TransferError::Peer(reason.to_owned())
    }

    fn disk_full() -> TransferError {
        TransferError::Local {
            path: "/games/openarena/a.zip".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            free: Some(0),
        }
    }

    #[test]
    fn each_peer_fills_its_slots_and_faster_peers_take_more() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = WorkQueue::new(10, &[a, b], 2);
        let first = queue.assign();
        assert_eq!(first, [(a, 0), (b, 1), (a, 2), (b, 3)]);
        // a is fast: it completes both and immediately gets the next two chunks.
        assert_eq!(queue.complete(a, 0), Completion::First { redundant: vec![] });
        assert_eq!(queue.complete(a, 2), Completion::First { redundant: vec![] });
        assert_eq!(queue.assign(), [(a, 4), (a, 5)]);
        assert_eq!(queue.active_peers(), 2);
    }

    #[test]
    fn failed_chunks_are_retried_by_another_peer_and_repeat_offenders_dropped() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = WorkQueue::new(3, &[a, b], 1);
        assert_eq!(queue.assign(), [(a, 0), (b, 1)]);
        assert!(!queue.fail(a, 0, peer_error("reset")));
        // Chunk 0 is back at the front; b finishes and takes it.
        queue.complete(b, 1);
        let next = queue.assign();
        assert!(next.contains(&(a, 0)) || next.contains(&(b, 0)), "{next:?}");

        let mut queue = WorkQueue::new(5, &[a, b], 1);
        for round in 0..PEER_FAILURE_LIMIT {
            let assigned = queue.assign();
            let (_, chunk) = *assigned.iter().find(|(p, _)| *p == a).expect("a gets work while live");
            let dropped = queue.fail(a, chunk, peer_error("timeout"));
            assert_eq!(dropped, round + 1 == PEER_FAILURE_LIMIT);
        }
        assert_eq!(queue.live_peers().collect::<Vec<_>>(), [b]);
        assert!(queue.assign().iter().all(|(p, _)| *p == b));
    }

    #[test]
    fn a_chunk_failing_too_often_fails_the_download() {
        let a = peer(1);
        let mut queue = WorkQueue::new(1, &[a], 1);
        for _ in 0..MAX_RETRY_COUNT {
            let assigned = queue.assign();
            assert_eq!(assigned, [(a, 0)]);
            queue.fail(a, 0, peer_error("bad"));
            // Keep a alive: a success elsewhere would reset its streak; here we only count chunk tries.
            if let Some(slot) = queue.peers.get_mut(&a) {
                slot.consecutive_failures = 0;
            }
        }
        let reason = queue.take_failure().expect("download failed").to_string();
        assert!(reason.contains("failed 5 times") && reason.contains("bad"), "{reason}");
        assert!(queue.assign().is_empty());
    }

    #[test]
    fn endgame_duplicates_outstanding_chunks_and_first_copy_wins() {
        let (fast, slow) = (peer(1), peer(2));
        let mut queue = WorkQueue::new(2, &[fast, slow], 1);
        assert_eq!(queue.assign(), [(fast, 0), (slow, 1)]);
        queue.complete(fast, 0);
        // The queue is empty: the idle fast peer duplicates the slow peer's chunk.
        assert_eq!(queue.assign(), [(fast, 1)]);
        assert_eq!(queue.complete(fast, 1), Completion::First { redundant: vec![slow] });
        assert!(queue.is_complete());
        assert_eq!(queue.complete(slow, 1), Completion::Duplicate);
        assert_eq!(queue.active_peers(), 0);
    }

    #[test]
    fn all_peers_dropped_is_a_failure_and_their_work_returns_to_the_queue() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = WorkQueue::new(4, &[a, b], 2);
        queue.assign();
        let returned = queue.take_in_flight(a);
        assert_eq!(returned.len(), 2);
        assert!(!queue.is_failed());
        for _ in 0..PEER_FAILURE_LIMIT {
            let chunk = *queue.peers[&b].in_flight.iter().next().unwrap_or(&0);
            queue.fail(b, chunk, peer_error("gone"));
            queue.fail(a, chunk, peer_error("gone"));
        }
        let reason = queue.take_failure().expect("no live peer left").to_string();
        assert!(reason.contains("every peer failed"), "{reason}");
    }

    #[test]
    fn a_local_error_fails_at_once_and_drops_no_peer() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = WorkQueue::new(6, &[a, b], 2);
        assert_eq!(queue.assign().len(), 4);
        assert!(!queue.fail(a, 0, disk_full()), "the peer is not dropped");
        assert!(queue.is_failed(), "one local error is enough");
        assert!(queue.assign().is_empty(), "no more work once failed");
        // The other fetches still in flight end with the same cause; the first error is kept.
        assert!(!queue.fail(b, 1, TransferError::Internal("second".into())));
        assert_eq!(queue.live_peers().collect::<Vec<_>>(), [a, b], "both peers stay live");
        assert!(
            queue
                .peers
                .values()
                .all(|slot| slot.consecutive_failures == 0 && slot.last_error.is_none())
        );
        assert_eq!(queue.attempts, [0; 6], "a local error is no try of the chunk");
        let failure = queue.take_failure().expect("failed");
        assert!(matches!(failure, TransferError::Local { .. }), "{failure:?}");
    }

    #[test]
    fn corrupt_data_drops_the_peer_at_once_and_its_chunk_goes_to_another() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = WorkQueue::new(4, &[a, b], 1);
        assert_eq!(queue.assign(), [(a, 0), (b, 1)]);
        let corrupt = TransferError::Corrupt {
            peer: a,
            path: "a.zip".into(),
        };
        assert!(queue.fail(a, 0, corrupt), "dropped on the first bad block");
        assert_eq!(queue.live_peers().collect::<Vec<_>>(), [b]);
        queue.complete(b, 1);
        assert_eq!(queue.assign(), [(b, 0)], "the bad chunk is fetched again, from b");
    }

    #[test]
    fn a_stall_counts_against_the_peer_like_a_wrong_answer() {
        let (a, b) = (peer(1), peer(2));
        let mut queue = WorkQueue::new(5, &[a, b], 1);
        for round in 0..PEER_FAILURE_LIMIT {
            let assigned = queue.assign();
            let (_, chunk) = *assigned.iter().find(|(p, _)| *p == a).expect("a gets work while live");
            let stalled = TransferError::Stalled {
                peer: a,
                waited: std::time::Duration::from_secs(10),
            };
            assert_eq!(queue.fail(a, chunk, stalled), round + 1 == PEER_FAILURE_LIMIT);
        }
        assert_eq!(queue.live_peers().collect::<Vec<_>>(), [b]);
        assert!(!queue.is_failed());
    }
}
