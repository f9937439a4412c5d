//! Human-readable sizes, rates and durations, shared by every front end.

use std::time::Duration;

use crate::peer::verify::{Reference, VerifyReport};
use crate::peer::{DownloadProgress, HashingProgress};

pub use crate::disk::format_size;

/// A transfer rate in MB/s (10^6 bytes), the unit of link speeds.
pub fn format_rate(bytes_per_second: f64) -> String {
    format!("{:.1} MB/s", bytes_per_second / 1e6)
}

/// `1h02m`, `3m07s`, `12s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match (seconds / 3600, seconds / 60 % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// A download's rate, `-- MB/s` while it is still being measured.
pub fn rate_label(progress: &DownloadProgress) -> String {
    progress
        .bytes_per_second
        .map_or_else(|| "-- MB/s".to_owned(), format_rate)
}

/// `ETA 5s`, `ETA <1s`, or `ETA --` until there is one.
pub fn eta_label(progress: &DownloadProgress) -> String {
    match progress.eta {
        None => "ETA --".to_owned(),
        Some(eta) if eta < Duration::from_secs(1) && progress.bytes_done < progress.total_bytes => "ETA <1s".to_owned(),
        Some(eta) => format!("ETA {}", format_duration(eta)),
    }
}

/// One line for a terminal: `42.0% 1.2 GiB / 2.9 GiB  350.1 MB/s  ETA 5s  3 peers`.
pub fn progress_line(progress: &DownloadProgress) -> String {
    format!(
        "{:5.1}% {} / {}  {}  {}  {}",
        progress.fraction() * 100.0,
        format_size(progress.bytes_done),
        format_size(progress.total_bytes),
        rate_label(progress),
        eta_label(progress),
        sources_label(progress)
    )
}

/// Who a download fetches from: `3 peers`, or with partial sources `from 1 seed + 12 peers`.
pub fn sources_label(progress: &DownloadProgress) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if progress.partial_sources == 0 {
        let peers = progress.active_peers;
        return format!("{peers} peer{}", plural(peers));
    }
    let (seeds, partial) = (progress.seeds, progress.partial_sources);
    format!("from {seeds} seed{} + {partial} peer{}", plural(seeds), plural(partial))
}

/// `12.4 of 40.0 GiB`: both in the unit [`format_size`] picks for the total, so the pair
/// reads at a glance.
pub fn format_size_of(done: u64, total: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut scale, mut unit) = (1.0, 0);
    while total as f64 / scale >= 1024.0 && unit < UNITS.len() - 1 {
        scale *= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{done} of {total} B");
    }
    format!(
        "{:.1} of {:.1} {}",
        done as f64 / scale,
        total as f64 / scale,
        UNITS[unit]
    )
}

/// `hashing 3 games, 12.4 of 40.0 GiB` (short enough for the TUI's status bar).
pub fn hashing_line(progress: &HashingProgress) -> String {
    let count = progress.games.len();
    format!(
        "hashing {count} game{}, {}",
        if count == 1 { "" } else { "s" },
        format_size_of(progress.done_bytes.min(progress.total_bytes), progress.total_bytes)
    )
}

/// The outcome of a verify in one line, then one line per damaged file.
pub fn verify_lines(report: &VerifyReport) -> Vec<String> {
    let against = match report.reference {
        Reference::Peers(count) => format!("against {count} peer(s) with this version"),
        Reference::Recorded => "against the hashes recorded here (no peer with this version answered)".to_owned(),
        Reference::Nothing => {
            return vec![format!(
                "cannot verify {} {}: no peer with this version answered and no hashes are recorded here",
                report.id, report.version
            )];
        }
    };
    let checked = format!("{} files, {}", report.files, format_size(report.bytes));
    let (id, version) = (&report.id, &report.version);
    let mut lines = vec![match (report.damaged.len(), report.unchecked.len()) {
        (0, 0) => format!("{id} {version} is intact ({checked} checked {against})"),
        (0, unchecked) => format!(
            "cannot verify {unchecked} of {} files of {id} {version} (no peer with this version answered); \
             the other {checked} match the hashes recorded here",
            report.files + unchecked
        ),
        (damaged, _) => format!(
            "{id} {version} is damaged: {damaged} of {} files ({checked} checked {against})",
            report.files
        ),
    }];
    lines.extend(report.damaged.iter().map(|damage| format!("  {damage}")));
    lines.extend(
        report.unchecked.iter().map(|path| {
            format!("  {path}: changed since its hashes were recorded here (or never hashed), not checked")
        }),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_naturally() {
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(3 << 20), "3.0 MiB");
        assert_eq!(format_rate(350_100_000.0), "350.1 MB/s");
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_secs(187)), "3m07s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(format_size_of(12_400 << 20, 40 << 30), "12.1 of 40.0 GiB");
        assert_eq!(format_size_of(0, 40 << 30), format!("0.0 of {}", format_size(40 << 30)));
        assert_eq!(format_size_of(300, 1000), "300 of 1000 B");
        let hashing = HashingProgress {
            games: vec!["a".into()],
            done_bytes: 5 << 20,
            total_bytes: 3 << 20,
        };
        assert_eq!(
            hashing_line(&hashing),
            "hashing 1 game, 3.0 of 3.0 MiB",
            "done never exceeds total"
        );
        let progress = DownloadProgress {
            id: "g".into(),
            bytes_done: 1 << 30,
            total_bytes: 4 << 30,
            bytes_per_second: Some(2e8),
            eta: Some(Duration::from_secs(5)),
            active_peers: 3,
            seeds: 3,
            partial_sources: 0,
            peers: vec![],
            elapsed: Duration::ZERO,
        };
        assert_eq!(
            progress_line(&progress),
            " 25.0% 1.0 GiB / 4.0 GiB  200.0 MB/s  ETA 5s  3 peers"
        );
        let swarm = DownloadProgress {
            seeds: 1,
            partial_sources: 12,
            ..progress
        };
        assert_eq!(sources_label(&swarm), "from 1 seed + 12 peers");
        let measuring = DownloadProgress {
            bytes_per_second: None,
            eta: None,
            ..swarm.clone()
        };
        assert_eq!(
            progress_line(&measuring),
            " 25.0% 1.0 GiB / 4.0 GiB  -- MB/s  ETA --  from 1 seed + 12 peers"
        );
        let almost = DownloadProgress {
            eta: Some(Duration::from_millis(300)),
            ..swarm.clone()
        };
        assert_eq!(eta_label(&almost), "ETA <1s", "never `0s` with bytes left");
        let done = DownloadProgress {
            bytes_done: 4 << 30,
            eta: Some(Duration::ZERO),
            ..swarm
        };
        assert_eq!(eta_label(&done), "ETA 0s");
    }
}
