//! The local library: which catalog games are downloaded or installed under
//! the game dir, with their versions and served file lists.
//!
//! A game is *downloaded* iff `<game_dir>/<id>/version.ini` is a regular file,
//! and *installed* iff `<game_dir>/<id>/local` is a directory. File lists leave
//! out `local/`, lanspread's reserved entries and symlinks (never followed, so
//! nothing outside the game root is ever served).
//!
//! A small index in the state dir remembers each game's stat fingerprint, so a
//! warm rescan of an unchanged game is one `stat` per entry: no directory
//! listing and no `version.ini` read.
//!
//! Each payload file carries its content root ([`crate::content`]) in its
//! listing; its block hashes are kept beside the index ([`hashes`], read with
//! [`block_hashes`]). A file is hashed when its stamp (length and mtime) is new
//! or changed; an unchanged file in a changed game keeps the hashes it had. The
//! stamp recorded is the one of the handle that was read, so a file written
//! while being hashed has a newer stamp than recorded and is hashed again by the
//! next scan.
//!
//! The runtime scans with [`Hashing::Defer`]: a scan only stats, lists and reuses
//! what the index knows, and a game with a file to hash comes out as a [`HashTask`]
//! (its entry stays in the index, unhashed, so later scans of the unchanged game are
//! warm and offer the same task again). The task runs on its own thread, without
//! the index, and its result goes back in with [`LibraryIndex::insert_hashed`] only
//! if the index still holds the scan it was made from. A game's block hashes file
//! is written only by hashing (a task, or a [`Hashing::Compute`] scan), and removed
//! when the game is forgotten.

mod hashes;

pub use hashes::{RecordedGame, record_verified};

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::beneath::open_file_beneath;
use crate::catalog::Catalog;
use crate::content::{ContentHash, FileHashes, hash_file};
use crate::install::unpack;
use crate::install::{InstallFailure, InstalledRecord};
use crate::layout::GameLayout;
use crate::layout::{LOCAL_DIR, VERSION_FILE, is_reserved_name, validate_game_id, validate_relative_path};
pub use crate::proto::GameFileDescription;
use crate::proto::GameSummary;

/// A game version as written in `version.ini`.
///
/// The format: the first line that is `version = VALUE` (any case, optionally
/// inside an INI section), otherwise the first line that is not blank, a
/// comment (`;`/`#`) or a `[section]` header. So a file holding only
/// `20240301` works. Versions compare segment by segment: digit runs as
/// numbers, other runs as text, so `1.10` > `1.9` and `20240301` > `20231224`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(String);

impl Version {
    pub fn new(text: impl Into<String>) -> Self {
        Version(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses `version.ini` content; `None` when it holds no version at all.
    pub fn parse_ini(content: &str) -> Option<Self> {
        let content = content.trim_start_matches('\u{feff}');
        let mut first_plain_line = None;
        for line in content.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                if key.trim().eq_ignore_ascii_case("version") {
                    let value = value.trim().trim_matches('"');
                    if !value.is_empty() {
                        return Some(Version::new(value));
                    }
                }
                continue;
            }
            first_plain_line.get_or_insert(line);
        }
        first_plain_line.map(Version::new)
    }

    fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        let text = self.0.as_str();
        let mut rest = text;
        std::iter::from_fn(move || {
            rest = rest.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            let first = rest.chars().next()?;
            let end = if first.is_ascii_digit() {
                rest.find(|c: char| !c.is_ascii_digit())
            } else {
                rest.find(|c: char| !c.is_ascii_alphabetic())
            }
            .unwrap_or(rest.len());
            let (segment, tail) = rest.split_at(end);
            rest = tail;
            Some(if first.is_ascii_digit() {
                Segment::Number(segment.trim_start_matches('0'))
            } else {
                Segment::Text(segment)
            })
        })
    }
}

#[derive(PartialEq, Eq)]
enum Segment<'a> {
    /// Digits without leading zeros, compared by length then lexically (no overflow).
    Number(&'a str),
    Text(&'a str),
}

impl Ord for Segment<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Segment::Number(a), Segment::Number(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Segment::Text(a), Segment::Text(b)) => a.cmp(b),
            // A release number is newer than a text suffix like "beta".
            (Segment::Number(_), Segment::Text(_)) => Ordering::Greater,
            (Segment::Text(_), Segment::Number(_)) => Ordering::Less,
        }
    }
}

impl PartialOrd for Segment<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (mut ours, mut theirs) = (self.segments(), other.segments());
        loop {
            let ordering = match (ours.next(), theirs.next()) {
                (Some(a), Some(b)) => a.cmp(&b),
                (None, None) => return self.0.cmp(&other.0),
                // `2.0` is newer than `2.0beta` but older than `2.0.1`.
                (None, Some(Segment::Text(_))) | (Some(Segment::Number(_)), None) => Ordering::Greater,
                (None, Some(Segment::Number(_))) | (Some(Segment::Text(_)), None) => Ordering::Less,
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One catalog game found under the game dir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Game {
    pub id: String,
    pub name: String,
    /// `Some` iff the game is downloaded (a regular root-level `version.ini`).
    pub version: Option<Version>,
    pub installed: bool,
    /// What `local/` holds, from its record; `None` when not installed or installed
    /// before records existed.
    pub installed_version: Option<Version>,
    /// Installed by a streamed install: `local/` only, no archives here.
    pub streamed: bool,
    /// Why the last install of the downloaded version failed, if it did.
    pub install_failure: Option<String>,
    /// Sum of the served files' sizes.
    pub size: u64,
    /// Served files, sorted by path; empty unless downloaded.
    pub files: Vec<GameFileDescription>,
    /// What the downloaded archives expand to (see [`crate::install::unpack::expanded_size`]);
    /// `None` when not downloaded or when the archives cannot be read.
    pub expanded_size: Option<u64>,
}

impl Game {
    pub fn is_downloaded(&self) -> bool {
        self.version.is_some()
    }

    /// Whether every payload file's root is known: only such a game may be shared.
    pub fn is_hashed(&self) -> bool {
        self.files.iter().all(|file| file.is_dir || file.hash.is_some())
    }

    pub fn summary(&self) -> Option<GameSummary> {
        Some(GameSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            version: self.version.as_ref()?.to_string(),
            size: self.size,
            expanded_size: self.expanded_size,
        })
    }
}

/// The scanned local library, keyed by game id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GameDB {
    pub games: BTreeMap<String, Game>,
    /// Folders under the game dir that are not catalog ids (shown, never shared).
    pub uncatalogued: Vec<String>,
}

impl GameDB {
    pub fn get(&self, id: &str) -> Option<&Game> {
        self.games.get(id)
    }

    /// What this peer announces: downloaded catalog games only.
    pub fn summaries(&self) -> Vec<GameSummary> {
        self.games.values().filter_map(Game::summary).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot read game dir {path}: {source}")]
    GameDir { path: PathBuf, source: io::Error },
}

/// What a scan does about payload files whose hashes it does not have yet.
pub enum Hashing<'a> {
    /// Lists them with `hash: None`, and keeps such a game out of the index (so a later
    /// scan hashes it): for a quick read-only look (`lanspread list`) at a library that may
    /// hold hundreds of gigabytes never hashed.
    Skip,
    /// Hashes them (blocking), reporting the progress of each game that needs any.
    Compute(&'a mut dyn FnMut(HashProgress<'_>)),
    /// Lists them with `hash: None`, keeps the game in the index as scanned but unhashed,
    /// and adds a [`HashTask`] for it: the runtime hashes it in the background.
    Defer(&'a mut Vec<HashTask>),
}

/// How far hashing one game's new or changed files has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashProgress<'a> {
    pub game: &'a str,
    pub hashed: u64,
    /// The bytes of the game's files that need hashing in this scan.
    pub total: u64,
}

/// Scans every catalog game under `game_dir`, reusing `index` where a game is unchanged.
pub fn scan_local_library(
    game_dir: &Path,
    catalog: &Catalog,
    index: &mut LibraryIndex,
    hashing: &mut Hashing<'_>,
) -> Result<GameDB, LibraryError> {
    let entries = fs::read_dir(game_dir).map_err(|source| LibraryError::GameDir {
        path: game_dir.to_owned(),
        source,
    })?;
    let mut db = GameDB::default();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if !file_type.is_dir() || name.starts_with('.') {
            continue;
        }
        if catalog.contains(&name) {
            if let Some(game) = scan_game(game_dir, &name, catalog, index, hashing) {
                db.games.insert(name, game);
            }
        } else {
            db.uncatalogued.push(name);
        }
    }
    db.uncatalogued.sort();
    let gone: Vec<String> = index
        .games
        .keys()
        .filter(|id| !db.games.contains_key(*id))
        .cloned()
        .collect();
    for id in gone {
        index.forget(&id);
    }
    Ok(db)
}

/// Scans one game root; `None` if it is neither downloaded nor installed.
pub fn scan_game(
    game_dir: &Path,
    id: &str,
    catalog: &Catalog,
    index: &mut LibraryIndex,
    hashing: &mut Hashing<'_>,
) -> Option<Game> {
    validate_game_id(id).ok()?;
    let root = game_dir.join(id);
    let installed = fs::symlink_metadata(root.join(LOCAL_DIR)).is_ok_and(|m| m.is_dir());
    let sentinel_is_file = fs::symlink_metadata(root.join(VERSION_FILE)).is_ok_and(|m| m.is_file());

    let (version, files, expanded_size) = if sentinel_is_file {
        // An unhashed entry (left by a deferring scan) is warm for every mode but hashing now.
        let computes = matches!(hashing, Hashing::Compute(_));
        let cached = index
            .games
            .get(id)
            .filter(|cached| (cached.is_hashed() || !computes) && cached.is_fresh(&root));
        match cached {
            Some(cached) => {
                index.hits += 1;
                if let Hashing::Defer(tasks) = hashing
                    && !cached.is_hashed()
                {
                    tasks.push(HashTask::new(id, &root, index.state_dir.as_deref(), cached.clone()));
                }
                (cached.version.clone(), cached.files.clone(), cached.expanded_size)
            }
            None => {
                index.misses += 1;
                let mut hasher = GameHasher {
                    id,
                    state_dir: index.state_dir.as_deref(),
                    hashing,
                    hashed_bytes: &mut index.hashed_bytes,
                    cancelled: &|| false,
                };
                match IndexedGame::scan(&root, index.games.get(id), &mut hasher) {
                    Ok(fresh) => {
                        let result = (fresh.version.clone(), fresh.files.clone(), fresh.expanded_size);
                        if let Hashing::Defer(tasks) = hashing
                            && !fresh.is_hashed()
                        {
                            tasks.push(HashTask::new(id, &root, index.state_dir.as_deref(), fresh.clone()));
                            index.games.insert(id.to_owned(), fresh);
                        } else if fresh.is_hashed() {
                            index.games.insert(id.to_owned(), fresh);
                        }
                        result
                    }
                    Err(err) => {
                        tracing::warn!(game = id, "cannot scan {}: {err}", root.display());
                        index.forget(id);
                        return None;
                    }
                }
            }
        }
    } else {
        index.forget(id);
        (None, Vec::new(), None)
    };
    if version.is_none() && !installed {
        return None;
    }
    let layout = GameLayout::new(game_dir, id);
    let record = installed.then(|| InstalledRecord::read(&layout)).flatten();
    // A failure of an older download's install no longer says anything.
    let install_failure = InstallFailure::read(&layout)
        .filter(|failure| {
            version
                .as_ref()
                .is_some_and(|version| version.as_str() == failure.version)
        })
        .map(|failure| failure.reason);
    Some(Game {
        id: id.to_owned(),
        name: catalog.display_name(id).to_owned(),
        size: files.iter().map(|file| file.size).sum(),
        version,
        installed,
        installed_version: record.as_ref().map(|record| Version::new(record.version.clone())),
        streamed: record.is_some_and(|record| record.streamed),
        install_failure,
        files,
        expanded_size,
    })
}

/// The persisted scan cache, stored as JSON in the state dir.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LibraryIndex {
    /// [`INDEX_FORMAT`] when written by this build; an index of another format is discarded,
    /// so entries from before a field existed are scanned again rather than read as empty.
    #[serde(default)]
    format: u32,
    /// The game dir the entries describe; an index for another dir is discarded.
    game_dir: PathBuf,
    games: BTreeMap<String, IndexedGame>,
    /// Games answered from the cache / rescanned since this index was loaded.
    #[serde(skip)]
    pub hits: u64,
    #[serde(skip)]
    pub misses: u64,
    /// Bytes of payload files hashed since this index was loaded.
    #[serde(skip)]
    pub hashed_bytes: u64,
    /// Where block hashes are kept ([`hashes`]); `None` for an index not loaded from a
    /// state dir, which then keeps only the roots.
    #[serde(skip)]
    state_dir: Option<PathBuf>,
}

const INDEX_FILE: &str = "library-index.json";
/// 1: entries carry `expanded_size` (an index without it would announce every game as unknown).
/// 2: payload files carry their content root, and their block hashes are in [`hashes`].
const INDEX_FORMAT: u32 = 2;

impl LibraryIndex {
    /// Loads the index for `game_dir`; a missing, unreadable or foreign one just means a cold scan.
    pub fn load_for(state_dir: &Path, game_dir: &Path) -> Self {
        let path = state_dir.join(INDEX_FILE);
        let loaded = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .inspect_err(|err| tracing::warn!("ignoring unreadable library index {}: {err}", path.display()))
                .ok(),
            Err(_) => None,
        };
        let mut index = loaded
            .filter(|index: &LibraryIndex| index.format == INDEX_FORMAT && index.is_for(game_dir))
            .unwrap_or_else(|| LibraryIndex {
                format: INDEX_FORMAT,
                game_dir: game_dir.to_owned(),
                ..LibraryIndex::default()
            });
        index.state_dir = Some(state_dir.to_owned());
        index
    }

    pub fn is_for(&self, game_dir: &Path) -> bool {
        self.game_dir == game_dir
    }

    /// Writes the index atomically (temp file + rename); it is only a cache, so no fsync.
    pub fn save(&self, state_dir: &Path) -> io::Result<()> {
        fs::create_dir_all(state_dir)?;
        let tmp = state_dir.join(format!("{INDEX_FILE}.tmp"));
        fs::write(&tmp, serde_json::to_vec(self)?)?;
        fs::rename(tmp, state_dir.join(INDEX_FILE))
    }

    /// Puts a finished hash in, if this index still holds the unhashed entry of the scan its
    /// task was made from; otherwise (the game changed or went since) drops it and says so.
    pub fn insert_hashed(&mut self, hashed: HashedGame) -> bool {
        let current = self.games.get(&hashed.id);
        if !current.is_some_and(|current| !current.is_hashed() && current.fingerprint() == hashed.scanned) {
            return false;
        }
        self.hashed_bytes += hashed.hashed_bytes;
        self.games.insert(hashed.id, hashed.game);
        true
    }

    /// Forgets one game so its next scan reads the disk.
    pub fn invalidate(&mut self, id: &str) {
        self.games.remove(id);
    }

    /// Drops a game that is no longer downloaded, with its block hashes.
    fn forget(&mut self, id: &str) {
        self.games.remove(id);
        if let Some(state_dir) = &self.state_dir {
            hashes::remove(state_dir, id);
        }
    }
}

/// The block hashes of payload file `path` of game `id`, as the last scan recorded them,
/// if the file on disk still has the stamp they were computed for; `None` otherwise (no
/// scan has hashed it yet, the file changed since, or the record is unreadable). Blocks.
pub fn block_hashes(state_dir: &Path, game_dir: &Path, id: &str, path: &str) -> Option<FileHashes> {
    validate_game_id(id).ok()?;
    validate_relative_path(path).ok()?;
    let root = game_dir.join(id);
    let stored = hashes::read_one(state_dir, &root, id, path)
        .inspect_err(|err| tracing::warn!(game = id, "cannot read the block hashes of {path}: {err}"))
        .ok()??;
    let now = PathStamp::of(&root, path)?;
    (!now.is_dir && now.len == stored.len && now.mtime_ns == stored.mtime_ns).then_some(stored.hashes)
}

/// What [`IndexedGame::scan`] needs to hash a game's files.
struct GameHasher<'a, 'h> {
    id: &'a str,
    state_dir: Option<&'a Path>,
    hashing: &'a mut Hashing<'h>,
    hashed_bytes: &'a mut u64,
    /// Asked between pieces read; a cancel fails the hashing with `Interrupted`.
    cancelled: &'a dyn Fn() -> bool,
}

/// A downloaded game with payload files to hash before it may be shared; see the module note.
#[derive(Debug, Clone)]
pub struct HashTask {
    id: String,
    root: PathBuf,
    state_dir: Option<PathBuf>,
    game: IndexedGame,
    /// Of the scan the task was made from: what [`LibraryIndex::insert_hashed`] checks.
    scanned: ContentHash,
}

/// A finished [`HashTask`]: the game's entry with every root.
#[derive(Debug)]
pub struct HashedGame {
    id: String,
    game: IndexedGame,
    scanned: ContentHash,
    hashed_bytes: u64,
}

impl HashTask {
    fn new(id: &str, root: &Path, state_dir: Option<&Path>, game: IndexedGame) -> Self {
        HashTask {
            id: id.to_owned(),
            root: root.to_owned(),
            state_dir: state_dir.map(Path::to_owned),
            scanned: game.fingerprint(),
            game,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bytes to hash, as listed by the scan.
    pub fn bytes(&self) -> u64 {
        self.game
            .files
            .iter()
            .filter(|file| !file.is_dir && file.hash.is_none())
            .map(|file| file.size)
            .sum()
    }

    /// Which game and which scan of it: two tasks with one key hash the same files.
    pub fn key(&self) -> HashKey {
        HashKey {
            id: self.id.clone(),
            scanned: self.scanned,
        }
    }

    /// Hashes the files the scan found without a root (the others keep theirs) and records
    /// the game's block hashes. `progress` gets the bytes hashed so far; a cancel fails with
    /// [`io::ErrorKind::Interrupted`]. Blocks.
    pub fn run(self, progress: &mut dyn FnMut(u64), cancelled: &dyn Fn() -> bool) -> io::Result<HashedGame> {
        let HashTask {
            id,
            root,
            state_dir,
            mut game,
            scanned,
        } = self;
        let previous = game.clone();
        let mut hashed_bytes = 0;
        let mut report = |report: HashProgress<'_>| progress(report.hashed);
        let mut hasher = GameHasher {
            id: &id,
            state_dir: state_dir.as_deref(),
            hashing: &mut Hashing::Compute(&mut report),
            hashed_bytes: &mut hashed_bytes,
            cancelled,
        };
        game.hash_files(&root, Some(&previous), &mut hasher)?;
        Ok(HashedGame {
            id,
            game,
            scanned,
            hashed_bytes,
        })
    }
}

/// A game id and a digest of the scan a [`HashTask`] was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKey {
    pub id: String,
    scanned: ContentHash,
}

impl HashedGame {
    pub fn key(&self) -> HashKey {
        HashKey {
            id: self.id.clone(),
            scanned: self.scanned,
        }
    }

    pub fn hashed_bytes(&self) -> u64 {
        self.hashed_bytes
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexedGame {
    version: Option<Version>,
    files: Vec<GameFileDescription>,
    /// Computed once per scan of a changed game: reading the headers of a compressed tar
    /// means decompressing it, far too slow to repeat on every warm start.
    expanded_size: Option<u64>,
    /// Every scanned entry (root "", dirs, files, `version.ini`) with its stat at scan time.
    stamps: Vec<PathStamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PathStamp {
    path: String,
    is_dir: bool,
    len: u64,
    mtime_ns: u128,
}

impl PathStamp {
    fn of(root: &Path, relative: &str) -> Option<Self> {
        let full = if relative.is_empty() {
            root.to_path_buf()
        } else {
            root.join(relative)
        };
        Some(PathStamp::from_metadata(relative, &fs::symlink_metadata(full).ok()?))
    }

    fn from_metadata(relative: &str, meta: &fs::Metadata) -> Self {
        let (_, mtime_ns) = hashes::stamp_of(meta);
        PathStamp {
            path: relative.to_owned(),
            is_dir: meta.is_dir(),
            // Directory sizes are filesystem-specific and carry no information here.
            len: if meta.is_dir() { 0 } else { meta.len() },
            mtime_ns,
        }
    }
}

impl IndexedGame {
    /// A directory's mtime changes when entries are added, removed or renamed in
    /// it, and a file's when it is written, so equal stamps mean an equal scan.
    fn is_fresh(&self, root: &Path) -> bool {
        self.stamps
            .iter()
            .all(|stamp| PathStamp::of(root, &stamp.path).as_ref() == Some(stamp))
    }

    /// Whether `stamps` (of a new scan) list the same files, unchanged, as this entry.
    fn same_files(&self, stamps: &[PathStamp]) -> bool {
        let files = |stamps: &[PathStamp]| -> BTreeMap<String, PathStamp> {
            stamps
                .iter()
                .filter(|stamp| !stamp.is_dir)
                .map(|stamp| (stamp.path.clone(), stamp.clone()))
                .collect()
        };
        files(&self.stamps) == files(stamps)
    }

    /// Scans `root`; `previous` (this game's stale entry) lends its expanded size when the
    /// payload files are unchanged, so installing or uninstalling (which touch only the
    /// root's directory stamps) does not read the archives again.
    fn scan(root: &Path, previous: Option<&IndexedGame>, hasher: &mut GameHasher<'_, '_>) -> io::Result<Self> {
        let content = read_version_file(root)?;
        let version = Version::parse_ini(&String::from_utf8_lossy(&content)).unwrap_or_else(|| {
            tracing::warn!(
                "{} holds no version; treating it as version \"unknown\"",
                root.join(VERSION_FILE).display()
            );
            Version::new("unknown")
        });
        let mut stamps = vec![PathStamp::of(root, "").ok_or_else(|| io::Error::other("game root vanished"))?];
        let mut files = Vec::new();
        walk(root, "", &mut files, &mut stamps)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let expanded_size = match previous.filter(|previous| previous.same_files(&stamps)) {
            Some(previous) => previous.expanded_size,
            None => unpack::expanded_size(root)
                .inspect_err(|err| {
                    // Peers then fall back to an estimate; the install will report the same problem.
                    tracing::info!("cannot tell what {} expands to: {err}", root.display());
                })
                .ok(),
        };
        let mut game = IndexedGame {
            version: Some(version),
            files,
            expanded_size,
            stamps,
        };
        game.hash_files(root, previous, hasher)?;
        Ok(game)
    }

    /// Whether every payload file has its root (false after a [`Hashing::Skip`] or
    /// [`Hashing::Defer`] scan that found files to hash).
    fn is_hashed(&self) -> bool {
        self.files.iter().all(|file| file.is_dir || file.hash.is_some())
    }

    /// A digest of the stamps: equal for two scans that saw the same game.
    fn fingerprint(&self) -> ContentHash {
        let mut hasher = blake3::Hasher::new();
        for stamp in &self.stamps {
            hasher.update(&(stamp.path.len() as u64).to_le_bytes());
            hasher.update(stamp.path.as_bytes());
            hasher.update(&[u8::from(stamp.is_dir)]);
            hasher.update(&stamp.len.to_le_bytes());
            hasher.update(&stamp.mtime_ns.to_le_bytes());
        }
        ContentHash(*hasher.finalize().as_bytes())
    }

    /// Fills each payload file's root: kept from `previous` where the file's stamp is
    /// unchanged (and, with a state dir, its blocks are on record), computed otherwise.
    fn hash_files(
        &mut self,
        root: &Path,
        previous: Option<&IndexedGame>,
        hasher: &mut GameHasher<'_, '_>,
    ) -> io::Result<()> {
        let previous_stamps: BTreeMap<&str, &PathStamp> = previous
            .iter()
            .flat_map(|previous| &previous.stamps)
            .map(|stamp| (stamp.path.as_str(), stamp))
            .collect();
        let kept_roots: BTreeMap<String, ContentHash> = previous
            .iter()
            .flat_map(|previous| &previous.files)
            .filter_map(|file| Some((file.path.clone(), file.hash?)))
            .collect();
        let current: BTreeMap<String, PathStamp> = self
            .stamps
            .iter()
            .filter(|stamp| !stamp.is_dir)
            .map(|stamp| (stamp.path.clone(), stamp.clone()))
            .collect();
        let kept_root = |path: &str| {
            let stamp = current.get(path)?;
            (previous_stamps.get(path) == Some(&stamp))
                .then(|| kept_roots.get(path).copied())
                .flatten()
        };
        if let Hashing::Skip = hasher.hashing {
            for file in self.files.iter_mut().filter(|file| !file.is_dir) {
                file.hash = kept_root(&file.path);
            }
            return Ok(());
        }

        // Read even for a game not indexed before: a download records what it verified there.
        let mut stored = match hasher.state_dir {
            Some(state_dir) => hashes::read_all(state_dir, root, hasher.id).unwrap_or_else(|err| {
                tracing::warn!(
                    game = hasher.id,
                    "rehashing: cannot read the recorded block hashes: {err}"
                );
                BTreeMap::new()
            }),
            None => BTreeMap::new(),
        };
        let mut records = BTreeMap::new();
        let mut to_hash = Vec::new();
        for (position, file) in self.files.iter_mut().enumerate().filter(|(_, file)| !file.is_dir) {
            // A root the index does not have may be on record for this very stamp (a download's).
            let recorded_root = || {
                let (stamp, record) = (current.get(&file.path)?, stored.get(&file.path)?);
                (stamp.len == record.len && stamp.mtime_ns == record.mtime_ns).then_some(record.root)
            };
            let Some(kept) = kept_root(&file.path).or_else(recorded_root) else {
                to_hash.push(position);
                continue;
            };
            if hasher.state_dir.is_none() {
                file.hash = Some(kept);
                continue;
            }
            let record = stored.remove(&file.path).filter(|record| {
                record.root == kept
                    && current
                        .get(&file.path)
                        .is_some_and(|s| s.len == record.len && s.mtime_ns == record.mtime_ns)
            });
            match record {
                Some(record) => {
                    file.hash = Some(kept);
                    records.insert(file.path.clone(), record);
                }
                None => to_hash.push(position),
            }
        }
        let Hashing::Compute(progress) = &mut *hasher.hashing else {
            // Deferred: the files in `to_hash` keep `hash: None` (a kept root counts only with
            // its blocks on record, as when computing), and the game becomes a task.
            return Ok(());
        };

        let mut total: u64 = to_hash.iter().map(|&position| self.files[position].size).sum();
        let mut hashed = 0;
        let mut rehashed_stamps = BTreeMap::new();
        for &position in &to_hash {
            let file = &mut self.files[position];
            let opened = open_file_beneath(root, &file.path).map_err(io::Error::other)?;
            // What is hashed is what this handle holds, so its stamp is the one recorded.
            let stamp = PathStamp::from_metadata(&file.path, &opened.file.metadata()?);
            total = total - file.size + stamp.len;
            let game = hasher.id;
            let blocks = hash_file(
                &opened.file,
                stamp.len,
                &mut |done| {
                    progress(HashProgress {
                        game,
                        hashed: hashed + done,
                        total,
                    })
                },
                hasher.cancelled,
            )?;
            hashed += stamp.len;
            *hasher.hashed_bytes += stamp.len;
            let content_root = blocks.root(stamp.len);
            file.size = stamp.len;
            file.hash = Some(content_root);
            if hasher.state_dir.is_some() {
                records.insert(
                    file.path.clone(),
                    hashes::StoredFile {
                        len: stamp.len,
                        mtime_ns: stamp.mtime_ns,
                        root: content_root,
                        hashes: blocks,
                    },
                );
            }
            rehashed_stamps.insert(stamp.path.clone(), stamp);
        }
        for stamp in &mut self.stamps {
            if let Some(rehashed) = rehashed_stamps.remove(&stamp.path) {
                *stamp = rehashed;
            }
        }
        // Leftover records are of files that are gone or changed.
        if let Some(state_dir) = hasher.state_dir
            && (!to_hash.is_empty() || !stored.is_empty())
            && let Err(err) = hashes::write(state_dir, root, hasher.id, &records)
        {
            // The roots are listed all the same; the blocks are computed again when needed.
            tracing::warn!(
                game = hasher.id,
                "cannot record block hashes in {}: {err}",
                state_dir.display()
            );
        }
        Ok(())
    }
}

/// The most of `version.ini` that is read; a bigger one is treated like an unreadable one.
const MAX_VERSION_FILE_LEN: u64 = 64 * 1024;

/// Reads `version.ini` through the beneath opener, so one swapped for a symlink or a FIFO
/// since its `symlink_metadata` is refused instead of followed or blocked on, and at most
/// [`MAX_VERSION_FILE_LEN`] bytes of it.
fn read_version_file(root: &Path) -> io::Result<Vec<u8>> {
    let opened = open_file_beneath(root, VERSION_FILE).map_err(io::Error::other)?;
    let mut content = Vec::new();
    opened.file.take(MAX_VERSION_FILE_LEN + 1).read_to_end(&mut content)?;
    if content.len() as u64 > MAX_VERSION_FILE_LEN {
        return Err(io::Error::other(format!(
            "{VERSION_FILE} is larger than {MAX_VERSION_FILE_LEN} bytes"
        )));
    }
    Ok(content)
}

fn walk(
    root: &Path,
    relative_dir: &str,
    files: &mut Vec<GameFileDescription>,
    stamps: &mut Vec<PathStamp>,
) -> io::Result<()> {
    let dir = if relative_dir.is_empty() {
        root.to_path_buf()
    } else {
        root.join(relative_dir)
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!("skipping non-UTF-8 name in {}", root.display());
            continue;
        };
        if is_reserved_name(&name) || (relative_dir.is_empty() && name == LOCAL_DIR) {
            continue;
        }
        let relative = if relative_dir.is_empty() {
            name
        } else {
            format!("{relative_dir}/{name}")
        };
        let file_type = entry.file_type()?;
        let Some(stamp) = PathStamp::of(root, &relative) else {
            continue;
        };
        if file_type.is_dir() {
            files.push(GameFileDescription {
                path: relative.clone(),
                size: 0,
                is_dir: true,
                hash: None,
            });
            stamps.push(stamp);
            walk(root, &relative, files, stamps)?;
        } else if file_type.is_file() {
            // Hashed after the walk, when it is known which files are new or changed.
            files.push(GameFileDescription {
                path: relative,
                size: stamp.len,
                is_dir: false,
                hash: None,
            });
            stamps.push(stamp);
        }
        // Symlinks and special files are never served.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn v(text: &str) -> Version {
        Version::new(text)
    }

    #[test]
    fn version_ini_formats_parse_tolerantly() {
        assert_eq!(Version::parse_ini("20240301"), Some(v("20240301")));
        assert_eq!(Version::parse_ini("\u{feff}  20240301 \r\n"), Some(v("20240301")));
        assert_eq!(
            Version::parse_ini("[game]\r\nname=x\r\nVersion = \"1.2.3\"\r\n"),
            Some(v("1.2.3"))
        );
        assert_eq!(Version::parse_ini("; comment\n\n2.0 beta\n"), Some(v("2.0 beta")));
        assert_eq!(Version::parse_ini("  \n; only a comment\n"), None);
    }

    #[test]
    fn versions_compare_numerically_by_segment() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("20240301") > v("20231224"));
        assert!(v("2.0") > v("2.0beta"));
        assert!(v("1.0.1") > v("1.0"));
        assert_ne!(
            v("007").cmp(&v("7")),
            Ordering::Equal,
            "different texts never compare equal"
        );
        assert!(v("99999999999999999999999") > v("9"), "no overflow on long numbers");
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    /// A scan that hashes, reporting nowhere.
    fn scan_all(games: &Path, catalog: &Catalog, index: &mut LibraryIndex) -> Result<GameDB, LibraryError> {
        scan_local_library(games, catalog, index, &mut Hashing::Compute(&mut |_| {}))
    }

    /// One game's scan with no index and no state dir.
    fn scan_alone(root: &Path) -> io::Result<IndexedGame> {
        let mut hashed_bytes = 0;
        let mut hasher = GameHasher {
            id: "openarena",
            state_dir: None,
            hashing: &mut Hashing::Compute(&mut |_| {}),
            hashed_bytes: &mut hashed_bytes,
            cancelled: &|| false,
        };
        IndexedGame::scan(root, None, &mut hasher)
    }

    #[test]
    fn scan_classifies_games_and_excludes_reserved_entries() {
        let dir = tempfile::tempdir().unwrap();
        let games = dir.path();
        let root = games.join("openarena");
        write(&root.join(VERSION_FILE), b"20240301");
        write(&root.join("oa.zip"), &[1; 100]);
        write(&root.join("maps/dm1.pk3"), &[2; 50]);
        write(&root.join("local/oa.exe"), b"installed");
        write(&root.join(".local.installing/x"), b"staging");
        write(&root.join(".version.ini.tmp"), b"tmp");
        std::os::unix::fs::symlink("/etc/passwd", root.join("escape")).unwrap();
        write(&games.join("xonotic/local/x.exe"), b"installed only");
        write(&games.join("teeworlds/partial.zip"), b"no sentinel");
        fs::create_dir_all(games.join("teeworlds/version.ini")).unwrap();
        write(&games.join("not-in-catalog/version.ini"), b"1");

        let catalog = Catalog::bundled();
        let db = scan_all(games, &catalog, &mut LibraryIndex::default()).unwrap();

        let oa = db.get("openarena").unwrap();
        assert_eq!(oa.version, Some(v("20240301")));
        assert!(oa.installed);
        let paths: Vec<_> = oa.files.iter().map(|f| (f.path.as_str(), f.size, f.is_dir)).collect();
        assert_eq!(
            paths,
            [
                ("maps", 0, true),
                ("maps/dm1.pk3", 50, false),
                ("oa.zip", 100, false),
                ("version.ini", 8, false)
            ]
        );
        assert_eq!(oa.size, 158);

        let xonotic = db.get("xonotic").unwrap();
        assert!(xonotic.installed && !xonotic.is_downloaded());
        assert!(
            db.get("teeworlds").is_none(),
            "a directory named version.ini is not a sentinel"
        );
        assert_eq!(db.uncatalogued, ["not-in-catalog"]);
        assert_eq!(db.summaries().len(), 1, "only downloaded games are announced");
    }

    #[test]
    fn a_swapped_or_oversized_version_ini_is_unreadable_not_followed_or_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("openarena");
        write(&root.join("oa.zip"), &[1; 10]);
        write(&dir.path().join("outside.ini"), b"version = 6.6.6");
        let sentinel = root.join(VERSION_FILE);
        // What a swap after scan_game's symlink_metadata check could leave there.
        std::os::unix::fs::symlink(dir.path().join("outside.ini"), &sentinel).unwrap();
        assert!(scan_alone(&root).is_err(), "a symlink");
        fs::remove_file(&sentinel).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &sentinel,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // A read that waited for a writer would hang the scan; fail instead.
        let (sender, receiver) = std::sync::mpsc::channel();
        let fifo_root = root.clone();
        std::thread::spawn(move || {
            let _ = sender.send(scan_alone(&fifo_root).is_err());
        });
        let refused = receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a FIFO version.ini does not block the scan");
        assert!(refused, "a FIFO");
        fs::remove_file(&sentinel).unwrap();
        write(&sentinel, &vec![b'1'; 64 * 1024 + 1]);
        assert!(scan_alone(&root).is_err(), "over 64 KiB");
        write(&sentinel, &vec![b'1'; 64 * 1024]);
        let scanned = scan_alone(&root).unwrap();
        assert_eq!(scanned.version, Some(v(&"1".repeat(64 * 1024))));
    }

    #[test]
    fn warm_rescan_uses_the_index_and_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = dir.path().join("openarena");
        write(&root.join(VERSION_FILE), b"1");
        write(&root.join("data/a.pk3"), &[0; 10]);
        let catalog = Catalog::bundled();

        let mut index = LibraryIndex::load_for(state.path(), dir.path());
        let cold = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!((index.hits, index.misses), (0, 1));
        index.save(state.path()).unwrap();

        let other_dir = LibraryIndex::load_for(state.path(), Path::new("/elsewhere"));
        assert!(
            other_dir.games.is_empty(),
            "an index for another game dir is not reused"
        );
        let mut index = LibraryIndex::load_for(state.path(), dir.path());
        let warm = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(
            (index.hits, index.misses),
            (1, 0),
            "unchanged game comes from the index"
        );
        assert_eq!(warm, cold);

        // Growing a file in a subdirectory changes its stamp even though no directory changed.
        write(&root.join("data/a.pk3"), &[0; 20]);
        let changed = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(index.misses, 1);
        assert_eq!(changed.get("openarena").unwrap().size, 21);
    }

    fn root_of(bytes: &[u8]) -> ContentHash {
        let mut hasher = crate::content::BlockHasher::new();
        hasher.update(bytes);
        hasher.finish().root(bytes.len() as u64)
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    fn listed_hash(db: &GameDB, path: &str) -> Option<ContentHash> {
        let file = db.get("openarena")?.files.iter().find(|file| file.path == path)?;
        file.hash
    }

    #[test]
    fn files_are_hashed_once_per_version_and_warm_starts_hash_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = dir.path().join("openarena");
        let (big, small) = (bytes(2 * 1024 * 1024 + 3, 1), bytes(1000, 2));
        write(&root.join(VERSION_FILE), b"1");
        write(&root.join("oa.zip"), &big);
        write(&root.join("maps/dm1.pk3"), &small);
        write(&root.join("empty"), b"");
        let catalog = Catalog::bundled();
        let all_bytes = (big.len() + small.len() + 1) as u64;

        let mut index = LibraryIndex::load_for(state.path(), dir.path());
        let mut reports = Vec::new();
        let mut progress =
            |report: HashProgress<'_>| reports.push((report.game.to_owned(), report.hashed, report.total));
        let cold = scan_local_library(dir.path(), &catalog, &mut index, &mut Hashing::Compute(&mut progress)).unwrap();
        assert_eq!(index.hashed_bytes, all_bytes);
        assert_eq!(reports.last(), Some(&("openarena".to_owned(), all_bytes, all_bytes)));
        assert!(
            reports.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "progress only grows"
        );
        assert_eq!(listed_hash(&cold, "oa.zip"), Some(root_of(&big)));
        assert_eq!(listed_hash(&cold, "maps/dm1.pk3"), Some(root_of(&small)));
        assert_eq!(listed_hash(&cold, "empty"), Some(root_of(b"")));
        assert_eq!(listed_hash(&cold, "version.ini"), Some(root_of(b"1")));
        assert_eq!(listed_hash(&cold, "maps"), None, "directories have no hash");
        let blocks = block_hashes(state.path(), dir.path(), "openarena", "oa.zip").unwrap();
        assert_eq!(blocks.blocks.len(), 3);
        assert_eq!(blocks.root(big.len() as u64), root_of(&big));
        index.save(state.path()).unwrap();

        let mut index = LibraryIndex::load_for(state.path(), dir.path());
        let warm = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(
            (index.hits, index.misses, index.hashed_bytes),
            (1, 0, 0),
            "a warm start hashes nothing"
        );
        assert_eq!(warm, cold);

        // A new mtime on one file: the game is rescanned, only that file is hashed again.
        let touched = fs::File::options().write(true).open(root.join("maps/dm1.pk3")).unwrap();
        touched
            .set_modified(UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
        let rescanned = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!((index.misses, index.hashed_bytes), (1, small.len() as u64));
        assert_eq!(rescanned, cold, "same bytes, same roots");
        assert!(block_hashes(state.path(), dir.path(), "openarena", "maps/dm1.pk3").is_some());
        assert_eq!(
            block_hashes(state.path(), dir.path(), "openarena", "oa.zip"),
            Some(blocks.clone()),
            "the unchanged file's blocks are kept"
        );

        // Changed content: a new root, and blocks on record only for the new version.
        let mut changed = big.clone();
        changed[1024 * 1024] ^= 0xff;
        write(&root.join("oa.zip"), &changed);
        let stale = fs::File::options().write(true).open(root.join("oa.zip")).unwrap();
        stale
            .set_modified(UNIX_EPOCH + std::time::Duration::from_secs(2_000_000))
            .unwrap();
        let db = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(index.hashed_bytes, (small.len() + changed.len()) as u64);
        assert_eq!(listed_hash(&db, "oa.zip"), Some(root_of(&changed)));
        let new_blocks = block_hashes(state.path(), dir.path(), "openarena", "oa.zip").unwrap();
        assert_eq!(
            (new_blocks.blocks[0], new_blocks.blocks[2]),
            (blocks.blocks[0], blocks.blocks[2])
        );
        assert_ne!(new_blocks.blocks[1], blocks.blocks[1]);
        // The record describes the file as it was hashed: touched since, it is not vouched for.
        stale
            .set_modified(UNIX_EPOCH + std::time::Duration::from_secs(3_000_000))
            .unwrap();
        assert_eq!(block_hashes(state.path(), dir.path(), "openarena", "oa.zip"), None);

        // A game that is gone takes its block hashes with it.
        fs::remove_dir_all(&root).unwrap();
        scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert!(!state.path().join("hashes/openarena.bin").exists());
    }

    #[test]
    fn a_listing_without_hashing_reads_no_file_and_keeps_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = dir.path().join("openarena");
        write(&root.join(VERSION_FILE), b"1");
        write(&root.join("oa.zip"), &bytes(5000, 3));
        let catalog = Catalog::bundled();
        let mut index = LibraryIndex::load_for(state.path(), dir.path());
        let db = scan_local_library(dir.path(), &catalog, &mut index, &mut Hashing::Skip).unwrap();
        assert_eq!(listed_hash(&db, "oa.zip"), None);
        assert_eq!(db.get("openarena").unwrap().size, 5001);
        assert_eq!(index.hashed_bytes, 0);
        assert!(
            index.games.is_empty(),
            "an unhashed game is not kept, so the next scan hashes it"
        );
        assert!(!state.path().join("hashes").exists());
        scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(index.hashed_bytes, 5001);
    }

    #[test]
    fn a_file_swapped_for_a_symlink_after_listing_is_not_hashed_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("openarena");
        write(&root.join(VERSION_FILE), b"1");
        write(&root.join("oa.zip"), &bytes(5000, 4));
        write(&dir.path().join("secret"), b"outside the game");
        let mut files = Vec::new();
        let mut stamps = vec![PathStamp::of(&root, "").unwrap()];
        walk(&root, "", &mut files, &mut stamps).unwrap();
        files.sort_by(|a, b| a.path.cmp(&b.path)); // as a scan does: oa.zip before version.ini
        assert!(
            files.iter().any(|file| file.path == "oa.zip"),
            "listed as a regular file"
        );
        fs::remove_file(root.join("oa.zip")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("oa.zip")).unwrap();

        let mut game = IndexedGame {
            version: Some(v("1")),
            files,
            expanded_size: None,
            stamps,
        };
        let mut hashed_bytes = 0;
        let mut hasher = GameHasher {
            id: "openarena",
            state_dir: None,
            hashing: &mut Hashing::Compute(&mut |_| {}),
            hashed_bytes: &mut hashed_bytes,
            cancelled: &|| false,
        };
        let err = game.hash_files(&root, None, &mut hasher).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(
            game.files
                .iter()
                .all(|file| file.hash != Some(root_of(b"outside the game")))
        );
        assert_eq!(hashed_bytes, 0, "nothing was read through the link");
    }

    fn write_zip(path: &Path, members: &[(&str, usize)]) {
        let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
        for (name, len) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            io::Write::write_all(&mut zip, &vec![7; *len]).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn the_expanded_size_is_read_once_per_version_of_the_archives() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = dir.path().join("openarena");
        write(&root.join(VERSION_FILE), b"1");
        write_zip(&root.join("oa.zip"), &[("a.bin", 1000), ("maps/b.bin", 234)]);
        let catalog = Catalog::bundled();
        let expanded = |db: &GameDB| db.get("openarena").unwrap().expanded_size;

        let mut index = LibraryIndex::load_for(state.path(), dir.path());
        let db = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(expanded(&db), Some(1234));
        assert_eq!(db.summaries()[0].expanded_size, Some(1234), "announced to peers");
        index.save(state.path()).unwrap();

        // A warm start answers from the index, expanded size included.
        let mut index = LibraryIndex::load_for(state.path(), dir.path());
        assert_eq!(
            expanded(&scan_all(dir.path(), &catalog, &mut index).unwrap()),
            Some(1234)
        );
        assert_eq!((index.hits, index.misses), (1, 0));

        // Installing touches the root, not the archives: rescanned, but the size is kept. (The
        // planted 99 shows that the zip was not read again.)
        let archive_stamp = PathStamp::of(&root, "oa.zip").unwrap();
        fs::create_dir(root.join(LOCAL_DIR)).unwrap();
        let game = index.games.get_mut("openarena").unwrap();
        game.stamps[0].mtime_ns = 0; // the root's stamp: force the rescan even on a coarse clock
        game.expanded_size = Some(99);
        let db = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(index.misses, 1);
        assert_eq!(expanded(&db), Some(99), "unchanged archives are not read again");
        assert_eq!(PathStamp::of(&root, "oa.zip").unwrap(), archive_stamp);

        // A new version of the archives is read again.
        write_zip(&root.join("oa.zip"), &[("a.bin", 10), ("c.bin", 5)]);
        write(&root.join(VERSION_FILE), b"2");
        let db = scan_all(dir.path(), &catalog, &mut index).unwrap();
        assert_eq!(expanded(&db), Some(15));

        // An index from before expanded sizes is not trusted: every game is scanned again.
        let mut old = serde_json::to_value(&index).unwrap();
        old.as_object_mut().unwrap().remove("format");
        fs::write(state.path().join(INDEX_FILE), old.to_string()).unwrap();
        let reloaded = LibraryIndex::load_for(state.path(), dir.path());
        assert!(reloaded.games.is_empty());
    }
}
