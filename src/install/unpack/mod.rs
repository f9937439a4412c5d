//! The archive layer of an install: find a game's archives, read their members
//! safely, and extract them into a target directory.
//!
//! Formats (found at the game root only, see [`find_archives`]): ZIP, tar
//! (plain, gzip, zstd) and RAR (including multi-volume sets).
//!
//! Every member goes through one gate, the walker behind [`visit_entries`]:
//!
//! - **Paths** are normalised (`\` becomes `/`, a leading `./` and a trailing
//!   `/` are dropped) and then must pass
//!   [`crate::layout::validate_relative_path`]: no `..`, nothing absolute, no
//!   reserved names (`.local.*`, `.lanspread*`, a root-level `local`, ...).
//! - **Kinds**: only regular files and directories are unpacked. Symlinks,
//!   hard links, devices, FIFOs and RAR link/reference records fail the whole
//!   unpack with [`UnpackError::UnsafeEntry`]. This is the simplest rule that
//!   can never create a link pointing out of the target, and game archives do
//!   not need links.
//! - **Duplicates**: a path may appear once as a file; a directory may be
//!   listed again, but never as both a file and a directory, across all the
//!   archives of a game ([`UnpackError::Duplicate`]).
//! - **Checksums**: every member is hashed with crc32fast while it is read and
//!   compared with the CRC32 the archive records (ZIP, RAR), together with its
//!   recorded size. Stream checksums are verified too: the gzip trailer (CRC32
//!   and length, by our own gzip member reader) and the zstd frame checksum
//!   (by zstd, when the frame has one). A tar must end with its end-of-archive
//!   block, so a tar cut at a member boundary is caught as well.
//!
//! RAR goes through the `unrar` crate (the C++ UnRAR library). It can only
//! extract a member to a file or into memory, not to a stream, so each RAR
//! member is extracted to a scratch file, checked, handed to the visitor as a
//! `File` reader, and deleted at once: memory stays flat whatever the member
//! size. The scratch directory is the system temp dir for [`visit_entries`],
//! or the one given in [`VisitOptions::scratch_dir`]; [`ArchiveUnpacker`]
//! puts it inside the target as a `.lanspread-unpack-*` directory (a reserved
//! name no archive member can use) so it shares the target's filesystem and
//! is gone when the unpack returns. See `rar.rs` for the checks made on each
//! scratch file and why they happen before the visitor sees a byte.

mod extract;
mod gzip;
mod rar;
mod readers;
mod tar;
mod zip;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use extract::ArchiveUnpacker;

use crate::beneath::open_file_beneath;
use crate::layout;
use readers::VerifyingReader;

/// The archive formats lanspread unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Zip,
    Tar,
    TarGz,
    TarZst,
    Rar,
}

impl ArchiveFormat {
    /// The format a root-level file name announces, compared case-insensitively:
    /// `*.zip`, `*.tar`, `*.tar.gz`/`*.tgz`, `*.tar.zst`/`*.tzst`, `*.rar`.
    /// Says nothing about RAR volumes; see [`find_archives`].
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let suffixes: [(&str, ArchiveFormat); 7] = [
            (".tar.gz", ArchiveFormat::TarGz),
            (".tgz", ArchiveFormat::TarGz),
            (".tar.zst", ArchiveFormat::TarZst),
            (".tzst", ArchiveFormat::TarZst),
            (".tar", ArchiveFormat::Tar),
            (".zip", ArchiveFormat::Zip),
            (".rar", ArchiveFormat::Rar),
        ];
        suffixes
            .iter()
            .find(|(suffix, _)| lower.len() > suffix.len() && lower.ends_with(suffix))
            .map(|(_, format)| *format)
    }
}

/// What an archive member is. Links and special files never get this far:
/// they fail the unpack with [`UnpackError::UnsafeEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// One member of an archive as it is read, in archive order.
pub struct ArchiveEntry<'a> {
    /// The archive this member comes from (the first volume for a RAR set).
    pub archive: &'a Path,
    /// Relative, `/`-separated, validated by [`crate::layout::validate_relative_path`].
    pub path: String,
    pub kind: EntryKind,
    /// Uncompressed size as recorded in the archive (0 for directories).
    pub size: u64,
    /// The CRC32 the archive records for this member, if the format records one (ZIP, RAR).
    /// `None` for tar members, directories, RAR members split across volumes (unrar checks
    /// those) and RAR5 members hashed with BLAKE2 instead of CRC32.
    pub crc32: Option<u32>,
    /// The archive marks the file executable (a Unix mode with an `x` bit).
    pub executable: bool,
    /// The member's bytes, streamed. Reading it to the end verifies size and checksum;
    /// a failed verification shows up as a read error here and as the walker's error.
    pub reader: &'a mut dyn io::Read,
}

/// What [`visit_entries`] went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveStats {
    pub archives: usize,
    pub files: u64,
    /// Directory entries listed by the archives (directories only implied by a file path
    /// are not counted).
    pub dirs: u64,
    /// Sum of the sizes of the files.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    #[error(
        "no archive (.zip, .tar, .tar.gz, .tgz, .tar.zst, .tzst, .rar) found in {game_root}; \
         nothing to install: check the download or re-download the game"
    )]
    NoArchives { game_root: PathBuf },
    #[error("archive {archive} is damaged or unreadable: {reason}; re-download the game")]
    Corrupt { archive: PathBuf, reason: String },
    #[error(
        "checksum mismatch for {entry:?} in {archive}: the archive records CRC32 {expected:08x}, \
         the data has {actual:08x}; the archive is damaged, re-download the game"
    )]
    ChecksumMismatch {
        archive: PathBuf,
        entry: String,
        expected: u32,
        actual: u32,
    },
    /// A checksum failure found by the format's own decoder, which does not tell the values:
    /// a RAR member checked by unrar, a zstd frame checksum.
    #[error("checksum error for {entry:?} in {archive}: {detail}; the archive is damaged, re-download the game")]
    ChecksumFailed {
        archive: PathBuf,
        entry: String,
        detail: String,
    },
    #[error(
        "archive {archive} contains the unsafe path {entry:?} (absolute, with '..', or a name \
         lanspread reserves); refusing to unpack it: use an archive with plain relative paths"
    )]
    UnsafePath { archive: PathBuf, entry: String },
    #[error(
        "archive {archive} contains a {kind} at {entry:?}; lanspread unpacks only regular files \
         and directories: repack the game without links or special files"
    )]
    UnsafeEntry {
        archive: PathBuf,
        entry: String,
        kind: String,
    },
    #[error(
        "{entry:?} in {archive} appears twice, or as both a file and a directory, in this game's \
         archives; refusing an ambiguous unpack: remove the duplicate from the archives"
    )]
    Duplicate { archive: PathBuf, entry: String },
    #[error(
        "refusing to write through {path}: something other than a plain directory (a symlink?) is already \
         in the unpack target; unpack into a fresh directory"
    )]
    UnsafeTarget { path: PathBuf },
    #[error("I/O error on {path}: {source}; {}", crate::disk::FreeSpace(*.free))]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
        /// Bytes free on the file system holding `path` when the error happened (a full disk shows here).
        free: Option<u64>,
    },
    #[error("unpack cancelled")]
    Cancelled,
}

impl UnpackError {
    /// The archive itself is bad (damaged, failed checksum): re-downloading may help.
    pub fn is_damaged_archive(&self) -> bool {
        matches!(
            self,
            UnpackError::Corrupt { .. } | UnpackError::ChecksumMismatch { .. } | UnpackError::ChecksumFailed { .. }
        )
    }

    fn io(path: &Path, source: io::Error) -> Self {
        UnpackError::Io {
            path: path.to_path_buf(),
            source,
            free: crate::disk::free_space(path),
        }
    }

    fn corrupt(archive: &Path, reason: impl Into<String>) -> Self {
        UnpackError::Corrupt {
            archive: archive.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Progress of an extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnpackProgress {
    /// Files completely written.
    pub files: u64,
    /// Bytes written, including the file being written.
    pub bytes: u64,
}

/// The seam the runtime is given (injected), so extraction stays behind one trait.
pub trait Unpacker: Send + Sync + 'static {
    /// Extracts every archive at `game_root` into `target`, an existing directory the caller
    /// owns: empty, or holding only reserved names such as the `.lanspread_owned` marker
    /// (no archive member can use a reserved name). Blocking.
    /// Calls `progress` every few MiB / files; returns `Cancelled` soon after `cancelled()`
    /// becomes true. On error, `target` may hold partial content: the caller deletes it.
    fn unpack(
        &self,
        game_root: &Path,
        target: &Path,
        progress: &mut dyn FnMut(UnpackProgress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<ArchiveStats, UnpackError>;
}

/// The archives at a game root: root level only, regular files only (no symlinks), sorted.
///
/// A RAR set is listed by its first volume only: `name.part1.rar` (`part01`, `part001`), or a
/// `name.rar` whose later volumes are `name.r00`, `name.r01`, ... A `name.partN.rar` with N > 1
/// is listed only if unrar says it is not a later volume of a set. Everything else at the root
/// (`version.ini`, `local/`, reserved `.local.*` directories, other files) is ignored.
pub fn find_archives(game_root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut archives = Vec::new();
    for dir_entry in fs::read_dir(game_root)? {
        let dir_entry = dir_entry?;
        let Ok(name) = dir_entry.file_name().into_string() else {
            continue;
        };
        if layout::is_reserved_name(&name) || name == layout::VERSION_FILE {
            continue;
        }
        let Some(format) = ArchiveFormat::from_file_name(&name) else {
            continue;
        };
        // `DirEntry::file_type` does not follow symlinks.
        if !dir_entry.file_type()?.is_file() {
            continue;
        }
        let path = dir_entry.path();
        if format == ArchiveFormat::Rar && !rar::is_first_volume(&name, &path) {
            continue;
        }
        archives.push(path);
    }
    archives.sort();
    Ok(archives)
}

/// Opens an archive found by [`find_archives`] through the beneath opener (base: its game
/// root, the archive's parent), so an archive swapped for a symlink or a FIFO since it was
/// listed is refused instead of followed or blocked on, and what is read is what was checked.
fn open_archive(archive: &Path) -> Result<fs::File, UnpackError> {
    let (Some(game_root), Some(name)) = (archive.parent(), archive.file_name().and_then(|name| name.to_str())) else {
        return Err(UnpackError::io(
            archive,
            io::Error::new(io::ErrorKind::InvalidInput, "not an archive at a game root"),
        ));
    };
    open_file_beneath(game_root, name)
        .map(|opened| opened.file)
        .map_err(|err| UnpackError::io(archive, io::Error::other(err)))
}

/// Options for [`visit_entries_with`].
#[derive(Default, Clone, Copy)]
pub struct VisitOptions<'a> {
    /// Where RAR members are extracted to scratch files (in a fresh `.lanspread-unpack-*`
    /// subdirectory, removed afterwards). `None`: the system temp dir, which may be a RAM-backed
    /// tmpfs; callers handling large games should pass a directory on the target's disk.
    /// Each scratch file holds one whole member until it has been visited.
    pub scratch_dir: Option<&'a Path>,
    /// Checked before every member; once it returns true the walk ends with `Cancelled`.
    pub cancelled: Option<&'a dyn Fn() -> bool>,
}

/// Reads every member of every archive in `game_root` in order and hands each to `visit`.
///
/// Verifies what the format can verify (see the module docs) and fails with an
/// [`UnpackError`] naming the archive and the entry. The visitor should read the entry's
/// reader to the end; if it does not, the walker drains it so verification still happens.
/// An error from the archive wins over the visitor's own error for the same member.
pub fn visit_entries(
    game_root: &Path,
    visit: &mut dyn FnMut(ArchiveEntry<'_>) -> Result<(), UnpackError>,
) -> Result<ArchiveStats, UnpackError> {
    visit_entries_with(game_root, VisitOptions::default(), visit)
}

/// [`visit_entries`] with a scratch directory for RAR members and a cancellation check.
pub fn visit_entries_with(
    game_root: &Path,
    options: VisitOptions<'_>,
    visit: &mut dyn FnMut(ArchiveEntry<'_>) -> Result<(), UnpackError>,
) -> Result<ArchiveStats, UnpackError> {
    walk_archives(game_root, options, Reading::Data, visit)
}

/// What the archives at `game_root` expand to: the sum of their files' recorded sizes.
///
/// The same walk as an unpack, with the same checks on every member (paths, kinds,
/// duplicates), but the members' data is skipped, not read: a ZIP costs its central directory
/// (plus a local header per member), a RAR its headers, a plain tar its headers. A compressed
/// tar is decompressed once, since its headers are spread through the stream, and its gzip
/// trailer or zstd checksum is verified as in an unpack. Blocking.
pub fn expanded_size(game_root: &Path) -> Result<u64, UnpackError> {
    let stats = walk_archives(game_root, VisitOptions::default(), Reading::SizesOnly, &mut |_| Ok(()))?;
    Ok(stats.bytes)
}

/// Whether a walk reads the members' data or only their headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Every member is verified and handed to the visitor.
    Data,
    /// Members are admitted and counted, their data skipped; the visitor is never called.
    SizesOnly,
}

fn walk_archives(
    game_root: &Path,
    options: VisitOptions<'_>,
    reading: Reading,
    visit: &mut dyn FnMut(ArchiveEntry<'_>) -> Result<(), UnpackError>,
) -> Result<ArchiveStats, UnpackError> {
    let archives = find_archives(game_root).map_err(|err| UnpackError::io(game_root, err))?;
    if archives.is_empty() {
        return Err(UnpackError::NoArchives {
            game_root: game_root.to_path_buf(),
        });
    }
    let mut walker = Walker {
        options,
        reading,
        seen: HashMap::new(),
        stats: ArchiveStats::default(),
        visit,
        scratch: None,
    };
    for archive in &archives {
        walker.check_cancelled()?;
        let name = archive.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        match ArchiveFormat::from_file_name(name) {
            Some(ArchiveFormat::Zip) => zip::walk(&mut walker, archive)?,
            Some(ArchiveFormat::Tar) => tar::walk(&mut walker, archive, tar::Compression::None)?,
            Some(ArchiveFormat::TarGz) => tar::walk(&mut walker, archive, tar::Compression::Gzip)?,
            Some(ArchiveFormat::TarZst) => tar::walk(&mut walker, archive, tar::Compression::Zstd)?,
            Some(ArchiveFormat::Rar) => rar::walk(&mut walker, archive)?,
            None => continue,
        }
        walker.stats.archives += 1;
    }
    // Remove the scratch directory now (on errors, dropping it removes it best-effort), so a
    // leftover never goes unnoticed inside an unpack target.
    if let Some(scratch) = walker.scratch.take() {
        let path = scratch.path().to_path_buf();
        scratch.close().map_err(|err| UnpackError::io(&path, err))?;
    }
    Ok(walker.stats)
}

/// What a format reader says a member is, before the walker's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RawKind {
    File,
    Dir,
    /// A link or special file, described for the error message ("symlink to /etc", ...).
    Unsafe(String),
}

/// What the walker has seen at a path, across all archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    /// Listed as a directory entry.
    Dir,
    /// Only an ancestor of something listed so far.
    ImpliedDir,
}

/// A member that passed the path, kind and duplicate checks.
struct Admitted {
    path: String,
    kind: EntryKind,
}

/// Details of a member's data for [`Walker::visit`].
struct MemberData {
    size: u64,
    crc32: Option<u32>,
    executable: bool,
}

struct Walker<'v, 'o> {
    options: VisitOptions<'o>,
    reading: Reading,
    seen: HashMap<String, Seen>,
    stats: ArchiveStats,
    visit: &'v mut dyn FnMut(ArchiveEntry<'_>) -> Result<(), UnpackError>,
    /// Created on the first RAR member; removed when the walk ends.
    scratch: Option<tempfile::TempDir>,
}

impl Walker<'_, '_> {
    fn check_cancelled(&self) -> Result<(), UnpackError> {
        match self.options.cancelled {
            Some(cancelled) if cancelled() => Err(UnpackError::Cancelled),
            _ => Ok(()),
        }
    }

    /// The directory RAR members are extracted into.
    fn scratch_dir(&mut self, archive: &Path) -> Result<PathBuf, UnpackError> {
        if let Some(dir) = &self.scratch {
            return Ok(dir.path().to_path_buf());
        }
        let parent = self
            .options
            .scratch_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix(".lanspread-unpack-")
            .tempdir_in(&parent)
            .map_err(|err| {
                let source = io::Error::new(
                    err.kind(),
                    format!("creating a scratch directory for {archive:?}: {err}"),
                );
                UnpackError::io(&parent, source)
            })?;
        let path = dir.path().to_path_buf();
        self.scratch = Some(dir);
        Ok(path)
    }

    /// Normalises and validates a member's name, rejects links and special files and
    /// conflicting duplicates. `Ok(None)`: nothing to visit (the archive's root directory, or a
    /// directory already listed).
    fn admit(&mut self, archive: &Path, raw_name: &str, kind: RawKind) -> Result<Option<Admitted>, UnpackError> {
        self.check_cancelled()?;
        let path = normalize_name(raw_name);
        if path.is_empty() && kind == RawKind::Dir {
            return Ok(None);
        }
        let unsafe_path = || UnpackError::UnsafePath {
            archive: archive.to_path_buf(),
            entry: raw_name.to_owned(),
        };
        layout::validate_relative_path(&path).map_err(|_| unsafe_path())?;
        let kind = match kind {
            RawKind::File => EntryKind::File,
            RawKind::Dir => EntryKind::Dir,
            RawKind::Unsafe(kind) => {
                return Err(UnpackError::UnsafeEntry {
                    archive: archive.to_path_buf(),
                    entry: raw_name.to_owned(),
                    kind,
                });
            }
        };
        let duplicate = || UnpackError::Duplicate {
            archive: archive.to_path_buf(),
            entry: raw_name.to_owned(),
        };
        // Every ancestor must be (or become) a directory.
        for (index, _) in path.match_indices('/') {
            match self.seen.get(&path[..index]) {
                Some(Seen::File) => return Err(duplicate()),
                Some(Seen::Dir | Seen::ImpliedDir) => {}
                None => {
                    self.seen.insert(path[..index].to_owned(), Seen::ImpliedDir);
                }
            }
        }
        let previous = self.seen.get(&path).copied();
        match (kind, previous) {
            (EntryKind::File, None) => {
                self.seen.insert(path.clone(), Seen::File);
            }
            (EntryKind::File, Some(_)) | (EntryKind::Dir, Some(Seen::File)) => return Err(duplicate()),
            (EntryKind::Dir, Some(Seen::Dir)) => return Ok(None),
            (EntryKind::Dir, None | Some(Seen::ImpliedDir)) => {
                self.seen.insert(path.clone(), Seen::Dir);
            }
        }
        Ok(Some(Admitted { path, kind }))
    }

    /// Hands an admitted member to the visitor through a verifying reader, drains it, and
    /// turns a failed verification into the error that names the archive and entry.
    fn visit(
        &mut self,
        archive: &Path,
        admitted: Admitted,
        data: MemberData,
        reader: &mut dyn io::Read,
    ) -> Result<(), UnpackError> {
        let (size, crc32) = match admitted.kind {
            EntryKind::File => (data.size, data.crc32),
            EntryKind::Dir => (0, None),
        };
        if self.reading == Reading::SizesOnly {
            self.count(admitted.kind, size);
            return Ok(());
        }
        let mut verifying = VerifyingReader::new(reader, size, crc32);
        let entry = ArchiveEntry {
            archive,
            path: admitted.path.clone(),
            kind: admitted.kind,
            size,
            crc32,
            executable: data.executable,
            reader: &mut verifying,
        };
        let visited = (self.visit)(entry);
        let drained = match visited {
            Ok(()) => io::copy(&mut verifying, &mut io::sink()).map(drop),
            Err(_) => Ok(()),
        };
        if let Some(failure) = verifying.failure() {
            return Err(failure.into_error(archive, &admitted.path));
        }
        visited?;
        if let Err(err) = drained {
            return Err(UnpackError::corrupt(
                archive,
                format!("entry {:?}: {err}", admitted.path),
            ));
        }
        self.count(admitted.kind, size);
        Ok(())
    }

    fn count(&mut self, kind: EntryKind, size: u64) {
        match kind {
            EntryKind::File => {
                self.stats.files += 1;
                // Saturating: a hostile header may claim any size, and a sum is no place to panic.
                self.stats.bytes = self.stats.bytes.saturating_add(size);
            }
            EntryKind::Dir => self.stats.dirs += 1,
        }
    }

    fn sizes_only(&self) -> bool {
        self.reading == Reading::SizesOnly
    }

    /// [`Walker::admit`] + [`Walker::visit`] for formats that stream their members.
    fn member(
        &mut self,
        archive: &Path,
        raw_name: &str,
        kind: RawKind,
        data: MemberData,
        reader: &mut dyn io::Read,
    ) -> Result<(), UnpackError> {
        match self.admit(archive, raw_name, kind)? {
            Some(admitted) => self.visit(archive, admitted, data, reader),
            None => Ok(()),
        }
    }
}

/// `\` to `/`, no leading `./`, no trailing `/`; `"."` and `"./"` become empty.
fn normalize_name(raw: &str) -> String {
    let mut name = raw.replace('\\', "/");
    while let Some(rest) = name.strip_prefix("./") {
        name = rest.to_owned();
    }
    while name.ends_with('/') {
        name.pop();
    }
    if name == "." {
        name.clear();
    }
    name
}

/// Describes a Unix file type from `st_mode` bits, for error messages; `None` for regular
/// files and directories (and modes without type bits).
fn unix_special_kind(mode: u32) -> Option<&'static str> {
    match mode & 0o170_000 {
        0o120_000 => Some("symlink"),
        0o020_000 => Some("character device"),
        0o060_000 => Some("block device"),
        0o010_000 => Some("FIFO"),
        0o140_000 => Some("socket"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_swapped_after_listing_are_refused_not_followed_or_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("game");
        fs::create_dir_all(&root).unwrap();
        fs::write(dir.path().join("outside.zip"), b"outside").unwrap();
        fs::write(root.join("game.zip"), b"inside").unwrap();
        let mut content = String::new();
        io::Read::read_to_string(&mut open_archive(&root.join("game.zip")).unwrap(), &mut content).unwrap();
        assert_eq!(content, "inside");

        std::os::unix::fs::symlink(dir.path().join("outside.zip"), root.join("link.zip")).unwrap();
        assert!(matches!(
            open_archive(&root.join("link.zip")),
            Err(UnpackError::Io { .. })
        ));

        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("pipe.tar"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // An open that waited for a writer would hang the walk; fail instead.
        let (sender, receiver) = std::sync::mpsc::channel();
        let fifo = root.join("pipe.tar");
        std::thread::spawn(move || {
            let _ = sender.send(matches!(open_archive(&fifo), Err(UnpackError::Io { .. })));
        });
        let refused = receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("opening a FIFO archive returns at once");
        assert!(refused);
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize_name("./a/b/"), "a/b");
        assert_eq!(normalize_name("dir\\sub\\file.txt"), "dir/sub/file.txt");
        assert_eq!(normalize_name("./"), "");
        assert_eq!(normalize_name("."), "");
        assert_eq!(normalize_name("././x"), "x");
        assert_eq!(normalize_name("a\\..\\b"), "a/../b");
    }

    #[test]
    fn formats_from_file_names() {
        assert_eq!(ArchiveFormat::from_file_name("Game.ZIP"), Some(ArchiveFormat::Zip));
        assert_eq!(ArchiveFormat::from_file_name("g.tar.gz"), Some(ArchiveFormat::TarGz));
        assert_eq!(ArchiveFormat::from_file_name("g.tgz"), Some(ArchiveFormat::TarGz));
        assert_eq!(ArchiveFormat::from_file_name("g.tar.zst"), Some(ArchiveFormat::TarZst));
        assert_eq!(ArchiveFormat::from_file_name("g.tzst"), Some(ArchiveFormat::TarZst));
        assert_eq!(ArchiveFormat::from_file_name("g.tar"), Some(ArchiveFormat::Tar));
        assert_eq!(ArchiveFormat::from_file_name("g.part1.rar"), Some(ArchiveFormat::Rar));
        for other in ["version.ini", "g.r00", "g.gz", "g.zst", ".zip", "readme.txt", "g.7z"] {
            assert_eq!(ArchiveFormat::from_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn unix_modes_of_links_and_devices_are_special() {
        assert_eq!(unix_special_kind(0o120_777), Some("symlink"));
        assert_eq!(unix_special_kind(0o020_644), Some("character device"));
        assert_eq!(unix_special_kind(0o100_755), None);
        assert_eq!(unix_special_kind(0o040_755), None);
        assert_eq!(unix_special_kind(0o644), None);
    }
}
