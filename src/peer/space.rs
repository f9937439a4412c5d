//! Whether an operation fits the free space of the game dir, decided from real
//! sizes: the bytes a download fetches and what the archives expand to (the
//! serving peer reads that from the archives' headers and announces it). One
//! rule, [`check_space`], for the runtime (which refuses before starting) and
//! the TUI (which warns, and refuses early with the same words).
//!
//! What each operation needs at its peak:
//!
//! - a download: the bytes it fetches, minus the bytes of files already in the
//!   game root at the same paths (an update overwrites those in place);
//! - its install (a download with auto-install, or `i`): the expanded size on
//!   top, since the archives stay and an update keeps the old `local/` until
//!   the new one is in place (so the old `local/` frees nothing at the peak);
//! - a streamed install: the expanded size only (no archives are stored).
//!
//! When the expanded size is unknown (only peers that predate announcing it
//! have the game), the UI's old estimate stands in for it, but an estimate
//! only ever warns ([`SpaceVerdict::MayNotFit`]): refusing on a guess is how a
//! streamed install that fits was refused. Filesystem overhead (partly used
//! blocks) is not counted.

use std::collections::HashMap;
use std::path::Path;

use crate::proto::GameFileDescription;

use crate::disk::format_size;

/// The expansion assumed when the peers do not announce it: twice the archives.
pub const UNKNOWN_EXPANSION_FACTOR: u64 = 2;

/// What is about to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceOperation {
    /// Fetch the archives; with `install`, then unpack them into `local/`.
    Download { install: bool },
    /// Unpack archives that are already downloaded.
    Install,
    /// Stream the expanded files from a peer; no archives are stored.
    StreamInstall,
}

/// The sizes the rule works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GameSizes {
    /// Bytes a download fetches: the file list's total.
    pub download: u64,
    /// What the archives expand to; `None` when no peer says.
    pub expanded: Option<u64>,
    /// Bytes already on disk that the download overwrites in place.
    pub replaced: u64,
}

impl GameSizes {
    /// The sizes of fetching `files` into a game root that holds `on_disk` (the files of its
    /// last scan): files already there at the same paths are overwritten in place.
    pub fn of_download(files: &[GameFileDescription], on_disk: &[GameFileDescription], expanded: Option<u64>) -> Self {
        let on_disk: HashMap<&str, u64> = on_disk
            .iter()
            .filter(|file| !file.is_dir)
            .map(|file| (file.path.as_str(), file.size))
            .collect();
        let fetched = files.iter().filter(|file| !file.is_dir);
        GameSizes {
            download: fetched.clone().map(|file| file.size).sum(),
            expanded,
            replaced: fetched
                .filter_map(|file| on_disk.get(file.path.as_str()).map(|old| file.size.min(*old)))
                .sum(),
        }
    }
}

/// Why an operation does not (or may not) fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceShortage {
    /// What does not fit. A download with an install whose expanded size is unknown is
    /// reported as the bare download when its archives alone do not fit: that part is certain.
    pub operation: SpaceOperation,
    pub needed: u64,
    pub free: u64,
    /// The expanded size is unknown and was estimated: figures that include it are approximate.
    pub estimated: bool,
    /// For a download that does not fit: what a streamed install needs, when that fits.
    pub stream_instead: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceVerdict {
    Fits,
    /// Needs more than is free, by real sizes: refuse.
    Short(SpaceShortage),
    /// Needs more than is free by the estimate of an unknown expanded size: warn only.
    MayNotFit(SpaceShortage),
}

/// The rule (see the module docs). `free` is the caller's reading of [`crate::disk::free_space`], so tests
/// and the TUI (which reads it off the UI thread) can supply it.
pub fn check_space(operation: SpaceOperation, sizes: GameSizes, free: u64) -> SpaceVerdict {
    let fetched = sizes.download.saturating_sub(sizes.replaced);
    let estimated = sizes.expanded.is_none();
    let expanded = sizes
        .expanded
        .unwrap_or_else(|| sizes.download.saturating_mul(UNKNOWN_EXPANSION_FACTOR));
    let needed = match operation {
        SpaceOperation::Download { install: false } => fetched,
        SpaceOperation::Download { install: true } => fetched.saturating_add(expanded),
        SpaceOperation::Install | SpaceOperation::StreamInstall => expanded,
    };
    if needed <= free {
        return SpaceVerdict::Fits;
    }
    let stream_instead = match operation {
        SpaceOperation::Download { .. } if expanded <= free => Some(expanded),
        _ => None,
    };
    let shortage = |operation, needed| SpaceShortage {
        operation,
        needed,
        free,
        estimated,
        stream_instead,
    };
    match operation {
        _ if !estimated => SpaceVerdict::Short(shortage(operation, needed)),
        // The archives are known, so not fitting them is certain.
        SpaceOperation::Download { .. } if fetched > free => {
            SpaceVerdict::Short(shortage(SpaceOperation::Download { install: false }, fetched))
        }
        _ => SpaceVerdict::MayNotFit(shortage(operation, needed)),
    }
}

impl SpaceShortage {
    /// The refusal as the user reads it, in the runtime's events and the TUI alike.
    pub fn message(&self, name: &str, id: &str, game_dir: &Path) -> String {
        let approx = |includes_expanded: bool| if self.estimated && includes_expanded { "~" } else { "" };
        let (what, includes_expanded) = match self.operation {
            SpaceOperation::Download { install: true } => ("downloading and installing it needs", true),
            SpaceOperation::Download { install: false } => ("downloading it needs", false),
            SpaceOperation::Install => ("installing it needs", true),
            SpaceOperation::StreamInstall => ("even a streamed install needs", true),
        };
        let mut text = format!(
            "not enough space for {name}: {what} {}{}, {} free on {}",
            approx(includes_expanded),
            format_size(self.needed),
            format_size(self.free),
            game_dir.display()
        );
        if let Some(stream) = self.stream_instead {
            text.push_str(&format!(
                "; a streamed install needs only {}{}: press s, or `lanspread get --stream {id}`",
                approx(true),
                format_size(stream)
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn sizes(download: u64, expanded: Option<u64>) -> GameSizes {
        GameSizes {
            download,
            expanded,
            replaced: 0,
        }
    }

    fn shortage(verdict: SpaceVerdict) -> SpaceShortage {
        match verdict {
            SpaceVerdict::Short(shortage) => shortage,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_reported_case_a_700_mib_disk_and_a_500_mib_game() {
        // 300 MiB of archives expanding to 500 MiB, 700 MiB free.
        let game = sizes(300 * MIB, Some(500 * MIB));
        let free = 700 * MIB;
        let download = shortage(check_space(SpaceOperation::Download { install: true }, game, free));
        assert_eq!((download.needed, download.free), (800 * MIB, free));
        assert_eq!(download.stream_instead, Some(500 * MIB), "the streamed install fits");
        assert_eq!(
            download.message("OpenArena", "openarena", Path::new("/games")),
            "not enough space for OpenArena: downloading and installing it needs 800.0 MiB, 700.0 MiB free \
             on /games; a streamed install needs only 500.0 MiB: press s, or `lanspread get --stream openarena`"
        );
        assert_eq!(
            check_space(SpaceOperation::StreamInstall, game, free),
            SpaceVerdict::Fits
        );
        assert_eq!(
            check_space(SpaceOperation::Download { install: false }, game, free),
            SpaceVerdict::Fits,
            "the archives alone fit"
        );
    }

    #[test]
    fn a_streamed_install_needs_the_expanded_size_and_offers_nothing_else() {
        let game = sizes(300 * MIB, Some(500 * MIB));
        assert_eq!(
            check_space(SpaceOperation::StreamInstall, game, 500 * MIB),
            SpaceVerdict::Fits
        );
        let short = shortage(check_space(SpaceOperation::StreamInstall, game, 499 * MIB));
        assert_eq!((short.needed, short.stream_instead), (500 * MIB, None));
        assert_eq!(
            short.message("OpenArena", "openarena", Path::new("/g")),
            "not enough space for OpenArena: even a streamed install needs 500.0 MiB, 499.0 MiB free on /g"
        );
        let download = shortage(check_space(SpaceOperation::Download { install: true }, game, 499 * MIB));
        assert_eq!(
            download.stream_instead, None,
            "no streamed install is offered when it cannot fit either"
        );
    }

    #[test]
    fn an_update_needs_only_what_it_does_not_overwrite() {
        let update = GameSizes {
            download: 300 * MIB,
            expanded: Some(500 * MIB),
            replaced: 250 * MIB,
        };
        // 50 MiB of new archive bytes + 500 MiB unpacked next to the old local/.
        assert_eq!(
            check_space(SpaceOperation::Download { install: true }, update, 550 * MIB),
            SpaceVerdict::Fits
        );
        let short = shortage(check_space(
            SpaceOperation::Download { install: true },
            update,
            549 * MIB,
        ));
        assert_eq!(short.needed, 550 * MIB);
        assert_eq!(
            check_space(SpaceOperation::Download { install: false }, update, 50 * MIB),
            SpaceVerdict::Fits
        );
    }

    #[test]
    fn an_unknown_expanded_size_is_estimated_and_only_warns() {
        let game = sizes(300 * MIB, None);
        let SpaceVerdict::MayNotFit(warning) = check_space(SpaceOperation::StreamInstall, game, 500 * MIB) else {
            panic!("an estimate must not refuse");
        };
        assert_eq!((warning.needed, warning.estimated), (600 * MIB, true));
        assert!(
            warning.message("Q", "q", Path::new("/g")).contains("needs ~600.0 MiB"),
            "the estimate is marked"
        );
        let SpaceVerdict::MayNotFit(download) =
            check_space(SpaceOperation::Download { install: true }, game, 700 * MIB)
        else {
            panic!("the archives fit, the rest is a guess");
        };
        assert_eq!((download.needed, download.stream_instead), (900 * MIB, Some(600 * MIB)));
        // The archives themselves are known: not fitting them is certain.
        let short = shortage(check_space(SpaceOperation::Download { install: true }, game, 200 * MIB));
        assert_eq!(short.needed, 300 * MIB);
        assert_eq!(
            short.message("Q", "q", Path::new("/g")),
            "not enough space for Q: downloading it needs 300.0 MiB, 200.0 MiB free on /g"
        );
        assert_eq!(
            check_space(SpaceOperation::StreamInstall, game, 600 * MIB),
            SpaceVerdict::Fits
        );
    }

    #[test]
    fn a_download_counts_what_it_overwrites_in_place() {
        let file = |path: &str, size: u64| GameFileDescription {
            path: path.into(),
            size,
            is_dir: false,
            hash: None,
        };
        let old = [file("oa.zip", 400), file("gone.zip", 50), file("version.ini", 1)];
        let dir = GameFileDescription {
            path: "maps".into(),
            size: 0,
            is_dir: true,
            hash: None,
        };
        let new = [file("oa.zip", 300), file("extra.zip", 100), file("version.ini", 1), dir];
        let sizes = GameSizes::of_download(&new, &old, Some(9));
        assert_eq!(
            sizes,
            GameSizes {
                download: 401,
                expanded: Some(9),
                replaced: 301
            },
            "a file shrinking in place frees no more than its new size; other names free nothing"
        );
        assert_eq!(GameSizes::of_download(&new, &[], None).replaced, 0);
    }

    #[test]
    fn huge_claims_saturate_instead_of_overflowing() {
        let game = sizes(u64::MAX, Some(u64::MAX));
        let short = shortage(check_space(SpaceOperation::Download { install: true }, game, 1));
        assert_eq!(short.needed, u64::MAX);
    }
}
