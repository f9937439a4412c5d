//! `DownloadProgressTracker`: turns byte counters into the samples the UI
//! shows. `bytes_done` counts verified blocks, each once (the download's set of
//! verified blocks is the counter: see `ServingDownload::verified_bytes`), as
//! each block is checked, not when the request that brought it ends; so retries
//! and endgame duplicates never double count and the total is reached exactly.
//! Per-peer figures count the bytes each peer actually sent (including wasted
//! duplicates), as they arrive, which is what its rate means.
//!
//! The download's rate is measured over a longer window than a peer's, as it
//! moves in whole blocks (a 1 MiB block at 5 MB/s is a fifth of a second), and
//! neither a rate nor an ETA is given before there is enough to measure.
//!
//! Time is passed in, so tests drive it with a fake clock.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A peer's rate is averaged over this window (it also sets how much is asked of it).
pub const PEER_RATE_WINDOW: Duration = Duration::from_secs(3);
/// The download's rate is averaged over this window.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);
/// No rate is given before transfer has been measured for this long.
const RATE_AFTER: Duration = Duration::from_secs(1);
/// No ETA is given before transfer has been measured for this long.
const ETA_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DownloadProgress {
    pub id: String,
    pub bytes_done: u64,
    pub total_bytes: u64,
    /// Verified bytes per second over the last few seconds; `None` while there is too little
    /// to measure.
    pub bytes_per_second: Option<f64>,
    /// `None` until the rate has been measured long enough to extrapolate from.
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

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerProgress {
    pub addr: SocketAddr,
    /// A partial source (downloading the game too), not a full peer.
    pub partial: bool,
    pub bytes: u64,
    pub bytes_per_second: f64,
}

/// A counter with a sliding window of (time, value) samples for its rate.
#[derive(Debug)]
struct RateCounter {
    value: u64,
    window: Duration,
    history: VecDeque<(Instant, u64)>,
}

impl RateCounter {
    fn new(window: Duration) -> Self {
        RateCounter {
            value: 0,
            window,
            history: VecDeque::new(),
        }
    }

    /// Starts measuring afresh at `now` from `value`.
    fn restart(&mut self, value: u64, now: Instant) {
        self.value = value;
        self.history.clear();
        self.history.push_back((now, value));
    }

    /// The rate over about the window up to `now`, and the span it was measured over
    /// (shorter than the window at the start).
    fn rate(&mut self, now: Instant) -> (f64, Duration) {
        self.history.push_back((now, self.value));
        // Keep the newest sample at or before the window's start, so the span covers it.
        while self
            .history
            .get(1)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.window)
        {
            self.history.pop_front();
        }
        let Some(&(oldest_at, oldest_value)) = self.history.front() else {
            return (0.0, Duration::ZERO);
        };
        let span = now.saturating_duration_since(oldest_at);
        if span.is_zero() {
            (0.0, span)
        } else {
            ((self.value - oldest_value) as f64 / span.as_secs_f64(), span)
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
        let mut done = RateCounter::new(RATE_WINDOW);
        done.restart(0, now);
        DownloadProgressTracker {
            id: id.to_owned(),
            total,
            started: now,
            done,
            peers: peers
                .iter()
                .map(|addr| (*addr, (false, RateCounter::new(PEER_RATE_WINDOW))))
                .collect(),
            sources: (peers.len(), 0),
        }
    }

    /// `bytes` were already on disk (reused): they count as done, but not towards the rate,
    /// which measures what arrives from now on.
    pub fn reused(&mut self, bytes: u64, now: Instant) {
        self.done.restart(bytes.min(self.total), now);
    }

    /// All verified bytes so far, reused ones included (each block once, however many
    /// copies of it arrived).
    pub fn set_done(&mut self, bytes: u64) {
        self.done.value = bytes.min(self.total);
    }

    /// All bytes received from `peer` so far (any block, any copy); `partial` if it is a
    /// partial source.
    pub fn set_peer_bytes(&mut self, peer: SocketAddr, total: u64, partial: bool) {
        let (kind, counter) = self
            .peers
            .entry(peer)
            .or_insert_with(|| (partial, RateCounter::new(PEER_RATE_WINDOW)));
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
        let (rate, measured) = self.done.rate(now);
        let left = self.total - self.done.value;
        let bytes_per_second = (measured >= RATE_AFTER || left == 0).then_some(rate);
        let eta = if left == 0 {
            Some(Duration::ZERO)
        } else if measured >= ETA_AFTER && rate > 0.0 {
            Some(Duration::from_secs_f64(left as f64 / rate))
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
                bytes_per_second: counter.rate(now).0,
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

    const MIB: u64 = 1 << 20;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Blocks of 1 MiB verified at a steady `rate` from `t0`, sampled every 250 ms (as the
    /// download does) for `seconds`: each sample with the true time left.
    fn steady(rate: f64, total: u64, seconds: u64) -> Vec<(DownloadProgress, Duration)> {
        let t0 = Instant::now();
        let mut tracker = DownloadProgressTracker::new("g", total, &[peer(1)], t0);
        let mut samples = Vec::new();
        for tick in 0..seconds * 4 {
            let at = Duration::from_millis(250 * tick);
            let arrived = (rate * at.as_secs_f64()) as u64;
            tracker.set_peer_bytes(peer(1), arrived.min(total), false);
            tracker.set_done((arrived / MIB * MIB).min(total));
            let left = Duration::from_secs_f64(total.saturating_sub(arrived) as f64 / rate);
            samples.push((tracker.sample(t0 + at, 1), left));
        }
        samples
    }

    #[test]
    fn a_steady_rate_reads_steady_from_whole_blocks_and_the_eta_is_the_time_left() {
        // The reported case: 4.9 MB/s in 1 MiB blocks, once half the samples read 0.0 MB/s.
        let rate = 4.9e6;
        for (sample, left) in steady(rate, 100 * MIB, 20) {
            let measured = sample.elapsed;
            let error = |got: f64| (got - rate).abs() / rate;
            match sample.bytes_per_second {
                None => assert!(measured < RATE_AFTER, "no rate at {measured:?}"),
                Some(got) if measured >= RATE_WINDOW => assert!(error(got) < 0.05, "{got} at {measured:?}"),
                Some(got) => assert!(error(got) < 0.25, "{got} at {measured:?}"),
            }
            match sample.eta {
                None => assert!(measured < ETA_AFTER, "no ETA at {measured:?}"),
                Some(eta) => {
                    assert!(measured >= ETA_AFTER, "an ETA at {measured:?}");
                    let off = (eta.as_secs_f64() - left.as_secs_f64()).abs();
                    assert!(off <= 0.1 * left.as_secs_f64() + 0.5, "ETA {eta:?} with {left:?} left");
                }
            }
        }
    }

    #[test]
    fn a_download_done_within_a_second_never_shows_an_eta_before_its_end() {
        // The reported case: 48 MiB in under a second once showed `ETA 4h56m`.
        let samples = steady(60e6, 48 * MIB, 2);
        let (last, _) = samples.last().unwrap();
        assert_eq!(last.bytes_done, 48 * MIB);
        assert_eq!(last.eta, Some(Duration::ZERO));
        for (sample, _) in &samples {
            if sample.bytes_done < sample.total_bytes {
                assert_eq!(sample.eta, None, "{sample:?}");
            }
        }
    }

    #[test]
    fn reused_bytes_count_as_done_but_not_towards_the_rate() {
        let t0 = Instant::now();
        let mut tracker = DownloadProgressTracker::new("g", 100 * MIB, &[], t0);
        tracker.reused(60 * MIB, t0);
        tracker.set_done(60 * MIB + 2 * MIB);
        let sample = tracker.sample(t0 + Duration::from_secs(2), 1);
        assert_eq!(sample.bytes_done, 62 * MIB);
        let rate = sample.bytes_per_second.unwrap();
        assert!((rate - MIB as f64).abs() < 1.0, "{rate}");
    }

    #[test]
    fn samples_are_monotone_reach_the_total_and_report_peers() {
        let t0 = Instant::now();
        let (a, b) = (peer(1), peer(2));
        let mut tracker = DownloadProgressTracker::new("g", 1000, &[a, b], t0);
        let first = tracker.sample(t0, 0);
        assert_eq!((first.bytes_done, first.eta, first.bytes_per_second), (0, None, None));

        let mut last = 0;
        for second in 1..=10u64 {
            // 100 bytes a second: a sends 100, b sends 50 wasted duplicate bytes.
            tracker.set_peer_bytes(a, 100 * second, false);
            tracker.set_peer_bytes(b, 50 * second, true);
            tracker.set_done(100 * second);
            let sample = tracker.sample(t0 + Duration::from_secs(second), 2);
            assert!(sample.bytes_done >= last, "monotone");
            last = sample.bytes_done;
            assert_eq!(sample.active_peers, 2);
            let rate = sample.bytes_per_second.unwrap();
            assert!((rate - 100.0).abs() < 1e-6, "{rate}");
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
        assert!(done.bytes_per_second.unwrap() > 0.0);
        let idle = tracker.sample(t0 + Duration::from_secs(20), 0);
        assert_eq!(idle.bytes_per_second, Some(0.0), "the window forgets old bytes");
    }

    #[test]
    fn over_reporting_cannot_pass_the_total() {
        let t0 = Instant::now();
        let mut tracker = DownloadProgressTracker::new("g", 10, &[], t0);
        tracker.set_done(14);
        assert_eq!(tracker.sample(t0, 0).bytes_done, 10);
    }
}
