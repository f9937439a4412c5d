//! An upload rate cap shared by every transfer a peer serves (`--upload-limit`).
//! A token bucket that may go into debt: a caller takes what it sends and, if
//! the bucket is overdrawn, sleeps until the debt is paid. Concurrent senders
//! therefore share the rate without any of them holding a lock while waiting.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How much unused allowance may accumulate, in seconds of the rate.
const BURST_SECONDS: f64 = 0.05;

#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_second: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    pub fn new(bytes_per_second: u64) -> Self {
        RateLimiter {
            bytes_per_second: bytes_per_second.max(1) as f64,
            state: Mutex::new(Bucket {
                tokens: 0.0,
                refilled_at: Instant::now(),
            }),
        }
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second as u64
    }

    /// Accounts for `bytes` about to be sent, waiting as long as the cap requires.
    pub async fn acquire(&self, bytes: usize) {
        let wait = {
            let mut bucket = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(bucket.refilled_at).as_secs_f64() * self.bytes_per_second;
            bucket.tokens = (bucket.tokens + refill).min(self.bytes_per_second * BURST_SECONDS);
            bucket.refilled_at = now;
            bucket.tokens -= bytes as f64;
            (bucket.tokens < 0.0).then(|| Duration::from_secs_f64(-bucket.tokens / self.bytes_per_second))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_senders_share_the_rate() {
        let limiter = std::sync::Arc::new(RateLimiter::new(1_000_000));
        let started = Instant::now();
        let mut senders = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let limiter = limiter.clone();
            senders.spawn(async move {
                for _ in 0..10 {
                    limiter.acquire(50_000).await;
                }
            });
        }
        while senders.join_next().await.is_some() {}
        // 2 MB at 1 MB/s on the paused clock: about two seconds of virtual time, not less.
        let elapsed = started.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&elapsed), "{elapsed}");
    }
}
