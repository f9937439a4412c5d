//! What this peer sends, per game and per peer: logged every [`LOG_INTERVAL`] (the
//! `serve` log: "sent openarena: 12.3 MB to 10.0.0.3:40001 (1.2 MB/s)") and published
//! every [`REPORT_INTERVAL`] as [`PeerEvent::Uploads`] for the TUI.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::peer::{PeerEvent, Upload};
use crate::ui::format::{format_rate, format_size};

pub const REPORT_INTERVAL: Duration = Duration::from_secs(2);
const LOG_INTERVAL: Duration = Duration::from_secs(10);

type Sent = BTreeMap<(String, SocketAddr), u64>;

/// Bytes sent since the last report and since the last log line.
pub struct UploadLog {
    state: Mutex<UploadState>,
}

struct UploadState {
    report: Sent,
    log: Sent,
    reported_at: Instant,
    logged_at: Instant,
    /// The last report was not empty (so an empty one follows once, to clear the display).
    was_sending: bool,
}

impl Default for UploadLog {
    fn default() -> Self {
        let now = Instant::now();
        UploadLog {
            state: Mutex::new(UploadState {
                report: Sent::new(),
                log: Sent::new(),
                reported_at: now,
                logged_at: now,
                was_sending: false,
            }),
        }
    }
}

impl UploadLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, UploadState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn sent(&self, id: &str, to: SocketAddr, bytes: u64) {
        let mut state = self.lock();
        *state.report.entry((id.to_owned(), to)).or_default() += bytes;
        *state.log.entry((id.to_owned(), to)).or_default() += bytes;
    }

    /// The uploads since the last call as an event (`None` when there is nothing new to
    /// show), and a log line per game once per [`LOG_INTERVAL`].
    pub fn report(&self, now: Instant) -> Option<PeerEvent> {
        let mut state = self.lock();
        if now.duration_since(state.logged_at) >= LOG_INTERVAL {
            let seconds = now.duration_since(state.logged_at).as_secs_f64();
            let mut by_game: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for ((id, to), bytes) in &state.log {
                by_game.entry(id).or_default().push(format!(
                    "{} to {to} ({})",
                    format_size(*bytes),
                    format_rate(*bytes as f64 / seconds)
                ));
            }
            for (id, parts) in by_game {
                tracing::info!(game = id, "sent {id}: {}", parts.join(", "));
            }
            state.log.clear();
            state.logged_at = now;
        }
        let seconds = now.duration_since(state.reported_at).as_secs_f64().max(1e-3);
        let uploads: Vec<Upload> = std::mem::take(&mut state.report)
            .into_iter()
            .map(|((id, to), bytes)| Upload {
                id,
                to,
                bytes_per_second: bytes as f64 / seconds,
            })
            .collect();
        state.reported_at = now;
        let sending = !uploads.is_empty();
        let show = sending || state.was_sending;
        state.was_sending = sending;
        show.then_some(PeerEvent::Uploads(uploads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_each_games_rate_per_peer_then_clears_once() {
        let log = UploadLog::default();
        let start = Instant::now();
        let to: SocketAddr = "10.0.0.3:1".parse().unwrap();
        log.sent("openarena", to, 2_000_000);
        log.sent("openarena", to, 2_000_000);
        let Some(PeerEvent::Uploads(uploads)) = log.report(start + Duration::from_secs(2)) else {
            panic!("a report after sending");
        };
        assert_eq!(uploads.len(), 1);
        assert_eq!((uploads[0].id.as_str(), uploads[0].to), ("openarena", to));
        // The log's clock started just before `start`.
        assert!((uploads[0].bytes_per_second - 2e6).abs() < 2e4, "{uploads:?}");
        assert!(
            matches!(log.report(start + Duration::from_secs(4)), Some(PeerEvent::Uploads(u)) if u.is_empty()),
            "one empty report clears the display"
        );
        assert!(log.report(start + Duration::from_secs(6)).is_none(), "then nothing");
    }
}
