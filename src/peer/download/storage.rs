//! The disk side of a download: the version-sentinel transaction.
//!
//! `begin` parks an existing `version.ini` as `.version.ini.discarded` (so a
//! half-finished download never looks finished), creates the directories and
//! pre-creates every payload file at its final size. Chunks are written with
//! positional writes into those files, never truncating, so several peers can
//! fill one file. A file is open only while a chunk of it is written: a game of
//! 100,000 files must not hold 100,000 descriptors (the soft limit is often 1,024). `commit` syncs the payload, then writes `version.ini` last
//! through `.version.ini.tmp` and an atomic rename. `abort` (a cancel) sweeps the
//! temp and parked sentinels (the old one is *not* restored: its archives were
//! being overwritten) and removes the payload files this download was writing;
//! `keep_partial` (any other failure) sweeps the sentinels and keeps the payload
//! for a resume.
//!
//! `local/` and lanspread's reserved entries can never be touched: every path
//! passed the protocol's validator, which rejects them. Every call here blocks;
//! run it on a blocking thread. Errors are `TransferError::Local`, naming the
//! path that failed and the free space of its file system.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::TransferError;
use crate::beneath::{OpenError, Removal, remove_beneath};
use crate::durable::{remove_file_if_exists, replace_file, sync_dir, sync_filesystem_of};
use crate::layout::{VERSION_DISCARDED_FILE, VERSION_FILE, VERSION_TMP_FILE, resolve_in_root};
use crate::proto::GameFileDescription;

pub struct DownloadStorage {
    root: PathBuf,
    /// The game root did not exist before this download.
    created_root: bool,
    /// Payload files by relative path, created at their final size.
    files: BTreeSet<String>,
    /// Directories this download created (relative paths), parents first.
    created_dirs: Vec<String>,
    /// Payload of the version being replaced that the new file list does not have,
    /// removed at commit (see [`DownloadStorage::begin`]).
    stale: Vec<GameFileDescription>,
}

impl DownloadStorage {
    /// Starts the transaction for `files` (which may include `version.ini`; it is written at commit).
    /// `previous` is the file list the library last scanned for this game (empty if none): what
    /// of it the new list lacks is removed at commit, so an update that renamed an archive leaves
    /// no stale copy behind for the install to unpack too. Only those paths: a file the scan
    /// never listed (`local/`, reserved names, anything added since) is not provably payload.
    pub fn begin(
        game_dir: &Path,
        id: &str,
        files: &[GameFileDescription],
        previous: &[GameFileDescription],
    ) -> Result<Self, TransferError> {
        let root = game_dir.join(id);
        let created_root = !root.exists();
        let wanted: std::collections::BTreeSet<&str> = files.iter().map(|file| file.path.as_str()).collect();
        let stale = previous
            .iter()
            .filter(|file| !wanted.contains(file.path.as_str()) && file.path != VERSION_FILE)
            .cloned()
            .collect();
        let mut storage = DownloadStorage {
            root: root.clone(),
            created_root,
            files: BTreeSet::new(),
            created_dirs: Vec::new(),
            stale,
        };
        match storage.prepare(files) {
            Ok(()) => Ok(storage),
            Err(err) => {
                storage.abort();
                Err(err)
            }
        }
    }

    fn prepare(&mut self, files: &[GameFileDescription]) -> Result<(), TransferError> {
        let root = self.root.clone();
        if self.created_root {
            fs::create_dir(&root).map_err(local(&root))?;
        } else {
            ensure_real_dir(&root).map_err(local(&root))?;
        }
        let sentinel = root.join(VERSION_FILE);
        if fs::symlink_metadata(&sentinel).is_ok_and(|meta| meta.is_file()) {
            fs::rename(&sentinel, root.join(VERSION_DISCARDED_FILE))
                .and_then(|()| sync_dir(&root))
                .map_err(local(&sentinel))?;
        }
        let tmp = root.join(VERSION_TMP_FILE);
        remove_file_if_exists(&tmp).map_err(local(&tmp))?;

        let mut dirs: Vec<&str> = files.iter().filter(|f| f.is_dir).map(|f| f.path.as_str()).collect();
        dirs.extend(
            files
                .iter()
                .filter(|f| !f.is_dir)
                .filter_map(|f| f.path.rsplit_once('/').map(|(d, _)| d)),
        );
        dirs.sort_unstable();
        dirs.dedup();
        for dir in dirs {
            self.create_dirs(dir)?;
        }
        for file in files.iter().filter(|f| !f.is_dir && f.path != VERSION_FILE) {
            let path = self.path_of(&file.path).map_err(local(&root.join(&file.path)))?;
            if fs::symlink_metadata(&path).is_ok_and(|meta| !meta.is_file()) {
                return Err(TransferError::local(
                    &path,
                    io::Error::other("it exists and is not a regular file; move it away"),
                ));
            }
            let handle = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)
                .map_err(local(&path))?;
            // The final size up front: chunks land anywhere, and a bigger old file is cut to size once.
            handle.set_len(file.size).map_err(local(&path))?;
            self.files.insert(file.path.clone());
        }
        Ok(())
    }

    /// Creates `relative` and its missing parents, refusing to pass through symlinks.
    fn create_dirs(&mut self, relative: &str) -> Result<(), TransferError> {
        let (mut current, mut so_far) = (self.root.clone(), String::new());
        for component in relative.split('/') {
            current.push(component);
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(component);
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(TransferError::local(
                        &current,
                        io::Error::other("it exists and is not a directory; move it away"),
                    ));
                }
                Err(_) => {
                    fs::create_dir(&current).map_err(local(&current))?;
                    self.created_dirs.push(so_far.clone());
                }
            }
        }
        Ok(())
    }

    fn path_of(&self, relative: &str) -> io::Result<PathBuf> {
        resolve_in_root(&self.root, relative).map_err(io::Error::other)
    }

    /// The game root being written.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the prepared payload file `relative` is on disk (open it with [`open_payload`]);
    /// `None` if this download did not prepare it.
    pub fn payload_path(&self, relative: &str) -> Option<PathBuf> {
        self.files.contains(relative).then(|| self.root.join(relative))
    }

    /// Syncs the payload, then makes the download visible by writing `version.ini` last.
    /// If that fails (a full disk, say), the verified payload stays for a resume, as after
    /// any other failure ([`DownloadStorage::keep_partial`]).
    pub fn commit(self, version_ini: &[u8]) -> Result<(), TransferError> {
        let committed = self.try_commit(version_ini);
        if committed.is_err() {
            self.keep_partial();
        }
        committed
    }

    fn try_commit(&self, version_ini: &[u8]) -> Result<(), TransferError> {
        self.sync_payload()?;
        self.remove_stale()?;
        let sentinel = self.root.join(VERSION_FILE);
        replace_file(&self.root.join(VERSION_TMP_FILE), &sentinel, version_ini).map_err(local(&sentinel))?;
        let discarded = self.root.join(VERSION_DISCARDED_FILE);
        remove_file_if_exists(&discarded).map_err(local(&discarded))?;
        sync_dir(&self.root).map_err(local(&self.root))
    }

    /// Makes the whole payload durable. Every fetched chunk was synced as it finished, but
    /// blocks kept from before may not be. One `syncfs` per file system the payload lies on
    /// (a sub-folder may be a mount point), not an fsync per file: 100,000 of those took 6 s.
    fn sync_payload(&self) -> Result<(), TransferError> {
        let mut synced = Vec::new();
        for relative in &self.files {
            let path = self.root.join(relative);
            let device = fs::symlink_metadata(&path).map_err(local(&path))?.dev();
            if !synced.contains(&device) {
                open_payload(&path)
                    .and_then(|file| sync_filesystem_of(&file))
                    .map_err(local(&path))?;
                synced.push(device);
            }
        }
        Ok(())
    }

    /// Removes the replaced version's leftovers: regular files first, then their directories
    /// if that left them empty (deepest first). Never follows a symlink.
    fn remove_stale(&self) -> Result<(), TransferError> {
        let (files, dirs): (Vec<&GameFileDescription>, Vec<&GameFileDescription>) =
            self.stale.iter().partition(|file| !file.is_dir);
        let removed = remove_payload(&self.root, paths_of(&files), paths_of(&dirs)).map_err(local(&self.root))?;
        if removed > 0 {
            tracing::info!(
                "removed {removed} file(s) of {} not in the new version",
                self.root.display()
            );
        }
        Ok(())
    }

    /// Ends a failed download that may resume: the payload stays as it is (the resume journal
    /// says which of its blocks are good), only the sentinels are swept, so the game is not
    /// taken for downloaded (the old version's is not restored: its files were being
    /// rewritten). Best effort.
    pub fn keep_partial(self) {
        for name in [VERSION_TMP_FILE, VERSION_DISCARDED_FILE] {
            if let Err(err) = remove_file_if_exists(&self.root.join(name)) {
                tracing::warn!("cannot remove {}: {err}", self.root.join(name).display());
            }
        }
        let _ = sync_dir(&self.root);
    }

    /// Undoes the download (a cancel): sentinels swept, payload removed, created directories removed if empty.
    /// Best effort: what cannot be removed is logged and left.
    pub fn abort(self) {
        for name in [VERSION_TMP_FILE, VERSION_DISCARDED_FILE] {
            if let Err(err) = remove_file_if_exists(&self.root.join(name)) {
                tracing::warn!("cannot remove {}: {err}", self.root.join(name).display());
            }
        }
        let files = self.files.iter().map(String::as_str).collect();
        let dirs = self.created_dirs.iter().map(String::as_str).collect();
        // Best effort: each failure is logged there.
        let _ = remove_payload(&self.root, files, dirs);
        if self.created_root {
            let _ = fs::remove_dir(&self.root);
        }
        let _ = sync_dir(self.root.parent().unwrap_or(&self.root));
    }
}

/// Removes payload beneath the game root `root`: the regular files `files`, then the folders
/// `dirs` that this left empty, deepest first (what else is in a folder is not provably
/// ours). Each through [`remove_beneath`], so a folder swapped for a symlink (during a
/// download, or since) never leads a removal outside the game, and only regular files and
/// empty folders go. Tries every path, logging each failure; returns how many files went,
/// or the first failure. Used by a cancel, a commit (the replaced version's leftovers) and
/// `remove` of an unfinished download. Blocks.
pub(super) fn remove_payload(root: &Path, files: Vec<&str>, mut dirs: Vec<&str>) -> io::Result<usize> {
    let mut removed = 0;
    let mut first_error = None;
    let mut failed = |relative: &str, err: OpenError| {
        tracing::warn!("cannot remove {}: {err}", root.join(relative).display());
        first_error.get_or_insert_with(|| io::Error::other(err));
    };
    for relative in files {
        match remove_beneath(root, relative, Removal::File) {
            Ok(gone) => removed += usize::from(gone),
            // Not a path of this game (the lists were validated; a journal could be damaged).
            Err(OpenError::InvalidPath(_)) => {}
            Err(err) => failed(relative, err),
        }
    }
    // A folder's path is longer than its parent's, so this puts children first.
    dirs.sort_by_key(|dir| std::cmp::Reverse(dir.len()));
    for relative in dirs {
        match remove_beneath(root, relative, Removal::EmptyDir) {
            Ok(_) | Err(OpenError::InvalidPath(_)) => {}
            Err(err) => failed(relative, err),
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(removed),
    }
}

/// The paths of `files`, for [`remove_payload`].
pub(super) fn paths_of<'a>(files: &[&'a GameFileDescription]) -> Vec<&'a str> {
    files.iter().map(|file| file.path.as_str()).collect()
}

fn local(path: &Path) -> impl FnOnce(io::Error) -> TransferError + '_ {
    move |err| TransferError::local(path, err)
}

fn ensure_real_dir(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(io::Error::other("it is not a directory"))
    }
}

/// Opens a payload file that [`DownloadStorage::begin`] created, for positional writes.
/// Never through a symlink at its last component: something swapped in since then
/// is refused, not written through.
pub fn open_payload(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Writes `bytes` at `offset` of `file`, all of it.
pub fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(bytes, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> GameFileDescription {
        GameFileDescription {
            path: path.into(),
            size,
            is_dir: false,
            hash: None,
        }
    }

    fn dir(path: &str) -> GameFileDescription {
        GameFileDescription {
            path: path.into(),
            size: 0,
            is_dir: true,
            hash: None,
        }
    }

    #[test]
    fn commit_writes_the_sentinel_last_and_sweeps_the_parked_one() {
        let games = tempfile::tempdir().unwrap();
        let root = games.path().join("openarena");
        fs::create_dir_all(root.join("local")).unwrap();
        fs::write(root.join("local/keep.exe"), b"installed").unwrap();
        fs::write(root.join(VERSION_FILE), b"1").unwrap();
        fs::write(root.join("a.zip"), vec![9; 100]).unwrap();

        let files = [
            file("a.zip", 4),
            dir("maps"),
            file("maps/m.pk3", 3),
            file("version.ini", 1),
        ];
        let storage = DownloadStorage::begin(games.path(), "openarena", &files, &[]).unwrap();
        assert!(!root.join(VERSION_FILE).exists(), "parked while downloading");
        assert_eq!(fs::read(root.join(VERSION_DISCARDED_FILE)).unwrap(), b"1");
        assert_eq!(
            fs::metadata(root.join("a.zip")).unwrap().len(),
            4,
            "cut to the new size"
        );
        write_at(
            &open_payload(&storage.payload_path("maps/m.pk3").unwrap()).unwrap(),
            b"yz",
            1,
        )
        .unwrap();
        write_at(
            &open_payload(&storage.payload_path("maps/m.pk3").unwrap()).unwrap(),
            b"x",
            0,
        )
        .unwrap();
        write_at(
            &open_payload(&storage.payload_path("a.zip").unwrap()).unwrap(),
            b"abcd",
            0,
        )
        .unwrap();
        storage.commit(b"2").unwrap();

        assert_eq!(fs::read(root.join(VERSION_FILE)).unwrap(), b"2");
        assert_eq!(fs::read(root.join("maps/m.pk3")).unwrap(), b"xyz");
        assert_eq!(fs::read(root.join("a.zip")).unwrap(), b"abcd");
        assert!(!root.join(VERSION_DISCARDED_FILE).exists());
        assert!(!root.join(VERSION_TMP_FILE).exists());
        assert_eq!(fs::read(root.join("local/keep.exe")).unwrap(), b"installed");
    }

    #[test]
    fn abort_removes_payload_and_created_dirs_but_keeps_local_and_foreign_files() {
        let games = tempfile::tempdir().unwrap();
        let root = games.path().join("openarena");
        fs::create_dir_all(root.join("local")).unwrap();
        fs::write(root.join(VERSION_FILE), b"1").unwrap();
        fs::write(root.join("user-notes.txt"), b"mine").unwrap();
        let files = [file("a.zip", 4), file("new/deep/b.bin", 2)];
        let storage = DownloadStorage::begin(games.path(), "openarena", &files, &[]).unwrap();
        storage.abort();
        assert!(!root.join("a.zip").exists());
        assert!(!root.join("new").exists());
        assert!(!root.join(VERSION_FILE).exists(), "the old sentinel is not restored");
        assert!(!root.join(VERSION_DISCARDED_FILE).exists());
        assert!(root.join("local").is_dir());
        assert_eq!(fs::read(root.join("user-notes.txt")).unwrap(), b"mine");

        // A root the download created disappears entirely.
        let storage = DownloadStorage::begin(games.path(), "xonotic", &files, &[]).unwrap();
        storage.abort();
        assert!(!games.path().join("xonotic").exists());
    }

    #[test]
    fn abort_never_follows_a_folder_swapped_for_a_symlink() {
        let (games, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let root = games.path().join("openarena");
        let files = [file("maps/a.zip", 4), file("maps/deep/b.pk3", 2)];
        let storage = DownloadStorage::begin(games.path(), "openarena", &files, &[]).unwrap();
        // Mid-download, the folder is swapped for a link to one with the same names in it.
        fs::create_dir_all(outside.path().join("deep")).unwrap();
        fs::write(outside.path().join("a.zip"), b"not ours").unwrap();
        fs::write(outside.path().join("deep/b.pk3"), b"not ours either").unwrap();
        fs::rename(root.join("maps"), games.path().join("moved-maps")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("maps")).unwrap();
        storage.abort();
        assert_eq!(fs::read(outside.path().join("a.zip")).unwrap(), b"not ours");
        assert_eq!(fs::read(outside.path().join("deep/b.pk3")).unwrap(), b"not ours either");
        assert!(outside.path().join("deep").is_dir());
    }

    #[test]
    fn commit_removes_only_what_the_replaced_version_listed_and_the_new_one_lacks() {
        let games = tempfile::tempdir().unwrap();
        let root = games.path().join("openarena");
        fs::create_dir_all(root.join("old/deeper")).unwrap();
        fs::create_dir_all(root.join("local")).unwrap();
        for path in [
            "old-v1.zip",
            "old/deeper/x.pk3",
            "notes.txt",
            "keep.zip",
            "local/game.exe",
        ] {
            fs::write(root.join(path), b"1").unwrap();
        }
        fs::write(root.join(VERSION_FILE), b"1").unwrap();
        let previous = [
            file("keep.zip", 1),
            dir("old"),
            dir("old/deeper"),
            file("old/deeper/x.pk3", 1),
            file("old-v1.zip", 1),
            file("version.ini", 1),
        ];
        let files = [file("keep.zip", 1), file("new-v2.zip", 2), file("version.ini", 1)];
        let storage = DownloadStorage::begin(games.path(), "openarena", &files, &previous).unwrap();
        write_at(
            &open_payload(&storage.payload_path("new-v2.zip").unwrap()).unwrap(),
            b"22",
            0,
        )
        .unwrap();
        write_at(
            &open_payload(&storage.payload_path("keep.zip").unwrap()).unwrap(),
            b"k",
            0,
        )
        .unwrap();
        assert!(root.join("old-v1.zip").exists(), "nothing goes before the commit");
        storage.commit(b"2").unwrap();

        assert!(!root.join("old-v1.zip").exists());
        assert!(!root.join("old").exists(), "its emptied directories go too");
        assert!(root.join("notes.txt").exists(), "never listed, so not provably payload");
        assert!(root.join("local/game.exe").exists());
        assert_eq!(fs::read(root.join("new-v2.zip")).unwrap(), b"22");
        assert_eq!(fs::read(root.join(VERSION_FILE)).unwrap(), b"2");
    }

    #[test]
    fn refuses_to_write_through_symlinks() {
        let games = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = games.path().join("openarena");
        fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("maps")).unwrap();
        let err = DownloadStorage::begin(games.path(), "openarena", &[file("maps/x", 1)], &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);

        std::os::unix::fs::symlink(outside.path().join("target"), root.join("link.zip")).unwrap();
        let err = DownloadStorage::begin(games.path(), "openarena", &[file("link.zip", 1)], &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(!outside.path().join("target").exists());
        assert!(root.join("maps").is_symlink(), "existing entries are never deleted");
    }
}
