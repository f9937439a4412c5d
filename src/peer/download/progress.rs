//! `DownloadProgressTracker`: turns byte counters into the samples the UI
//! shows. `bytes_done` counts each chunk once, when its first copy is safely
//! written, so retries and endgame duplicates never double count and the total
//! is reached exactly. Per-peer figures count the bytes each peer actually
//! sent (including wasted duplicates), which is what its rate means.
//!
//! Time is passed in, so tests drive it with a fake clock.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Speeds are averaged over this window.
pub const SPEED_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq)]
pub struct DownloadProgress {
    pub id: String,
    pub bytes_done: u64,
    pub total_bytes: u64,
    /// Bytes per second over the last few seconds.
    pub bytes_per_second: f64,
    /// `None` until there is a speed to extrapolate from.
    pub eta: Option<Duration>,
    /// Peers with a request in flight right now.
    pub active_peers: usize,
    /// Sources taking part: full peers, and peers downloading the same list (see `swarm`).
    pub seeds: usize,
    pub partial_sources: usize,
    pub peers: Vec<PeerProgress>,
    pub elapsed: Duration,
}

impl DownloadProgress {
    pub fn fraction(&self) -> f64 {
        if self.total_bytes == 0 {
            1.0
        } else {
            self.bytes_done as f64 / self.total_bytes as f64
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerProgress {
    pub addr: SocketAddr,
    /// A partial source (downloading the game too), not a full peer.
    pub partial: bool,
    pub bytes: u64,
    pub bytes_per_second: f64,
}

/// A counter with a sliding window of (time, value) samples for its rate.
#[derive(Debug, Default)]
struct RateCounter {
    value: u64,
    history: VecDeque<(Instant, u64)>,
}

impl RateCounter {
    fn rate(&mut self, now: Instant) -> f64 {
        self.history.push_back((now, self.value));
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > SPEED_WINDOW)
        {
            self.history.pop_front();
        }
        let Some(&(oldest_at, oldest_value)) = self.history.front() else {
            return 0.0;
        };
        let span = now.saturating_duration_since(oldest_at).as_secs_f64();
        if span <= 0.0 {
            0.0
        } else {
            (self.value - oldest_value) as f64 / span
        }
    }
}

#[derive(Debug)]
pub struct DownloadProgressTracker {
    id: String,
    total: u64,
    started: Instant,
    done: RateCounter,
    peers: BTreeMap<SocketAddr, (bool, RateCounter)>,
    sources: (usize, usize),
}

impl DownloadProgressTracker {
    pub fn new(id: &str, total: u64, peers: &[SocketAddr], now: Instant) -> Self {
        let mut done = RateCounter::default();
        done.history.push_back((now, 0));
        DownloadProgressTracker {
            id: id.to_owned(),
            total,
            started: now,
            done,
            peers: peers
                .iter()
                .map(|addr| (*addr, (false, RateCounter::default())))
                .collect(),
            sources: (peers.len(), 0),
        }
    }

    /// `bytes` were already on disk (reused): they count as done, but not towards the rate,
    /// which measures what arrives from now on.
    pub fn reused(&mut self, bytes: u64, now: Instant) {
        self.done.value = bytes.min(self.total);
        self.done.history.clear();
        self.done.history.push_back((now, self.done.value));
    }

    /// A chunk's first copy is written: it counts towards `bytes_done`, once.
    pub fn chunk_done(&mut self, bytes: u64) {
        self.done.value = (self.done.value + bytes).min(self.total);
    }

    /// All bytes received from `peer` so far (any block, any copy); `partial` if it is a
    /// partial source.
    pub fn set_peer_bytes(&mut self, peer: SocketAddr, total: u64, partial: bool) {
        let (kind, counter) = self.peers.entry(peer).or_default();
        *kind = partial;
        counter.value = total;
    }

    /// How many full peers and partial sources take part now.
    pub fn set_sources(&mut self, seeds: usize, partial: usize) {
        self.sources = (seeds, partial);
    }

    pub fn bytes_done(&self) -> u64 {
        self.done.value
    }

    pub fn sample(&mut self, now: Instant, active_peers: usize) -> DownloadProgress {
        let bytes_per_second = self.done.rate(now);
        let left = self.total - self.done.value;
        let eta = if left == 0 {
            Some(Duration::ZERO)
        } else if bytes_per_second > 0.0 {
            Some(Duration::from_secs_f64(left as f64 / bytes_per_second))
        } else {
            None
        };
        let peers = self
            .peers
            .iter_mut()
            .map(|(addr, (partial, counter))| PeerProgress {
                addr: *addr,
                partial: *partial,
                bytes: counter.value,
                bytes_per_second: counter.rate(now),
            })
            .collect();
        DownloadProgress {
            id: self.id.clone(),
            bytes_done: self.done.value,
            total_bytes: self.total,
            bytes_per_second,
            eta,
            active_peers,
            seeds: self.sources.0,
            partial_sources: self.sources.1,
            peers,
            elapsed: now.saturating_duration_since(self.started),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_monotone_reach_the_total_and_report_speed_eta_and_peers() {
        let t0 = Instant::now();
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
        );
        let mut tracker = DownloadProgressTracker::new("g", 1000, &[a, b], t0);
        let first = tracker.sample(t0, 0);
        assert_eq!((first.bytes_done, first.eta), (0, None));

        let mut last = 0;
        for second in 1..=10u64 {
            // 100 bytes a second: a sends 100, b sends 50 wasted duplicate bytes.
            tracker.set_peer_bytes(a, 100 * second, false);
            tracker.set_peer_bytes(b, 50 * second, true);
            tracker.chunk_done(100);
            let sample = tracker.sample(t0 + Duration::from_secs(second), 2);
            assert!(sample.bytes_done >= last, "monotone");
            last = sample.bytes_done;
            assert_eq!(sample.active_peers, 2);
            assert!(
                (sample.bytes_per_second - 100.0).abs() < 1e-6,
                "{}",
                sample.bytes_per_second
            );
            if second == 5 {
                assert_eq!(sample.eta, Some(Duration::from_secs(5)));
                assert_eq!(sample.peers[0].bytes, 500);
                assert!((sample.peers[1].bytes_per_second - 50.0).abs() < 1e-6);
                assert!(!sample.peers[0].partial && sample.peers[1].partial);
            }
        }
        let done = tracker.sample(t0 + Duration::from_secs(11), 0);
        assert_eq!(done.bytes_done, 1000);
        assert_eq!(done.fraction(), 1.0);
        assert_eq!(done.eta, Some(Duration::ZERO));
        // Nothing arrived in the last second, but the window still spans the earlier ones.
        assert!(done.bytes_per_second > 0.0);
        let idle = tracker.sample(t0 + Duration::from_secs(20), 0);
        assert_eq!(idle.bytes_per_second, 0.0, "the window forgets old bytes");
    }

    #[test]
    fn over_reporting_cannot_pass_the_total() {
        let t0 = Instant::now();
        let mut tracker = DownloadProgressTracker::new("g", 10, &[], t0);
        tracker.chunk_done(7);
        tracker.chunk_done(7);
        assert_eq!(tracker.sample(t0, 0).bytes_done, 10);
    }
}
