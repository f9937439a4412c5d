//! The archive layer of an install (`lanspread::install::unpack`) on real archives:
//! ZIP, tar, tar.gz and tar.zst are generated here with the same crates' writers;
//! RAR comes from the small committed fixtures in `tests/fixtures/rar/` (see the
//! README there: made once with Debian's non-free `rar`, never needed to test).

use std::cell::Cell;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use lanspread::install::unpack::{
    ArchiveEntry, ArchiveStats, ArchiveUnpacker, EntryKind, UnpackError, UnpackProgress, Unpacker, find_archives,
    visit_entries,
};

mod support;

use support::archives::*;
use zip::write::SimpleFileOptions;

// ---------------------------------------------------------------------------------------------
// Trees and generated archives
// ---------------------------------------------------------------------------------------------

/// A temp dir with a game root (`game/`) and an empty unpack target (`target/`).
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    target: PathBuf,
}

fn new_setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("game");
    let target = dir.path().join("target");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&target).unwrap();
    fs::write(root.join("version.ini"), "1.0\n").unwrap();
    Setup {
        _dir: dir,
        root,
        target,
    }
}

fn unpack(setup: &Setup) -> Result<ArchiveStats, UnpackError> {
    ArchiveUnpacker.unpack(&setup.root, &setup.target, &mut |_| {}, &|| false)
}

fn copy_fixture(setup: &Setup, name: &str) {
    fs::copy(fixture(name), setup.root.join(name)).unwrap();
}

/// Every variant is checked by name so a wrong one fails with the whole error shown.
fn assert_variant(result: Result<ArchiveStats, UnpackError>, variant: &str) -> UnpackError {
    let err = result.expect_err("the unpack must fail");
    let debug = format!("{err:?}");
    assert!(debug.starts_with(variant), "expected {variant}, got {err:?} ({err})");
    err
}

fn no_scratch_left(target: &Path) -> bool {
    fs::read_dir(target).unwrap().all(|entry| {
        !entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".lanspread-unpack")
    })
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[test]
fn zip_and_tar_formats_unpack_to_the_archived_tree() {
    let tree = sample_tree();
    let file_bytes: u64 = tree.values().flatten().map(|bytes| bytes.len() as u64).sum();
    let formats: [(&str, Option<Compression>); 6] = [
        ("game.zip", None),
        ("game.tar", Some(Compression::None)),
        ("game.tar.gz", Some(Compression::Gzip)),
        ("game.tgz", Some(Compression::Gzip)),
        ("game.tar.zst", Some(Compression::Zstd)),
        ("game.tzst", Some(Compression::Zstd)),
    ];
    for (name, compression) in formats {
        let setup = new_setup();
        let archive = setup.root.join(name);
        match compression {
            None => write_zip(&archive, &tree),
            Some(compression) => write_tar(&archive, &tree_members(&tree), compression),
        }
        let stats = unpack(&setup).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(read_tree(&setup.target), tree, "{name}");
        assert_eq!(
            stats,
            ArchiveStats {
                archives: 1,
                files: 5,
                dirs: 4,
                bytes: file_bytes
            },
            "{name}"
        );
        assert!(is_executable(&setup.target.join("bin/start.sh")), "{name}");
        assert!(!is_executable(&setup.target.join("readme.txt")), "{name}");
    }
}

/// The content of `tests/fixtures/rar/normal.rar` (and `blake2.rar`), as its README says.
fn rar_fixture_tree() -> Tree {
    let mut tree = Tree::new();
    tree.insert("readme.txt".into(), Some(b"lanspread RAR fixture\n".to_vec()));
    tree.insert("data".into(), None);
    tree.insert(
        "data/level1.dat".into(),
        Some((0..3000u32).map(|i| ((i * 7 + 3) % 251) as u8).collect()),
    );
    tree.insert("data/empty.bin".into(), Some(Vec::new()));
    tree.insert("data/sub".into(), None);
    tree.insert("data/sub/deep.txt".into(), Some(b"deep file\n".to_vec()));
    tree.insert("bin".into(), None);
    tree.insert("bin/start.sh".into(), Some(b"#!/bin/sh\necho start\n".to_vec()));
    tree.insert("emptydir".into(), None);
    tree
}

/// xorshift32 (seed 0x2545F491), low byte of each step: `big.bin` of the multi-volume fixture.
fn xorshift32_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_F491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn rar_unpacks_to_the_archived_tree() {
    for name in ["normal.rar", "blake2.rar"] {
        let setup = new_setup();
        copy_fixture(&setup, name);
        let stats = unpack(&setup).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(read_tree(&setup.target), rar_fixture_tree(), "{name}");
        assert_eq!((stats.archives, stats.files, stats.dirs), (1, 5, 4), "{name}");
        assert_eq!(stats.bytes, 22 + 3000 + 10 + 21, "{name}");
        assert!(is_executable(&setup.target.join("bin/start.sh")), "{name}");
        assert!(no_scratch_left(&setup.target), "{name}");
    }
}

#[test]
fn multi_volume_rar_unpacks_from_its_first_volume() {
    let setup = new_setup();
    for part in ["multi.part1.rar", "multi.part2.rar", "multi.part3.rar"] {
        copy_fixture(&setup, part);
    }
    assert_eq!(
        find_archives(&setup.root).unwrap(),
        vec![setup.root.join("multi.part1.rar")]
    );
    let stats = unpack(&setup).unwrap();
    let mut expected = Tree::new();
    expected.insert("big.bin".into(), Some(xorshift32_bytes(60_000)));
    expected.insert("small.txt".into(), Some(b"after the big file\n".to_vec()));
    assert_eq!(read_tree(&setup.target), expected);
    assert_eq!((stats.archives, stats.files, stats.bytes), (1, 2, 60_019));
}

#[test]
fn multi_volume_rar_with_a_missing_volume_is_corrupt() {
    let setup = new_setup();
    copy_fixture(&setup, "multi.part1.rar");
    copy_fixture(&setup, "multi.part3.rar");
    let err = assert_variant(unpack(&setup), "Corrupt");
    assert!(err.to_string().contains("volume"), "{err}");
}

#[test]
fn several_archives_unpack_into_one_tree() {
    let setup = new_setup();
    let mut first = Tree::new();
    first.insert("a.txt".into(), Some(b"a".to_vec()));
    first.insert("shared".into(), None);
    first.insert("shared/one.txt".into(), Some(b"one".to_vec()));
    write_zip(&setup.root.join("1-base.zip"), &first);
    write_tar(
        &setup.root.join("2-extra.tar.gz"),
        &[TarMember::dir("./shared/"), TarMember::file("./shared/two.txt", b"two")],
        Compression::Gzip,
    );
    copy_fixture(&setup, "normal.rar");
    let stats = unpack(&setup).unwrap();
    let mut expected = rar_fixture_tree();
    expected.extend(first);
    expected.insert("shared/two.txt".into(), Some(b"two".to_vec()));
    assert_eq!(read_tree(&setup.target), expected);
    assert_eq!(stats.archives, 3);
}

// ---------------------------------------------------------------------------------------------
// Which files are archives
// ---------------------------------------------------------------------------------------------

#[test]
fn find_archives_lists_root_level_archives_and_first_volumes_only() {
    let setup = new_setup();
    let root = &setup.root;
    write_zip(&root.join("b.zip"), &sample_tree());
    fs::write(root.join("a.TGZ"), b"not checked here").unwrap();
    fs::write(root.join("notes.txt"), b"readme").unwrap();
    fs::write(root.join("setup.exe"), b"MZ").unwrap();
    // A multi-volume set: only its first volume counts.
    for part in ["multi.part1.rar", "multi.part2.rar", "multi.part3.rar"] {
        copy_fixture(&setup, part);
    }
    // Old-style volume names: `old.rar` is the archive, `.r00`/`.r01` are not.
    for name in ["old.rar", "old.r00", "old.r01"] {
        fs::write(root.join(name), b"x").unwrap();
    }
    // A single archive that happens to be named like a later volume is still listed.
    fs::copy(fixture("normal.rar"), root.join("patch.part2.rar")).unwrap();
    // Not archives for install: the installed tree, reserved dirs, links, dirs, nested files.
    for dir in ["local", ".local.installing", ".local.backup", "dir.zip", "sub"] {
        fs::create_dir(root.join(dir)).unwrap();
        write_zip(&root.join(dir).join("inner.zip"), &sample_tree());
    }
    fs::write(root.join(".lanspread_tmp.zip"), b"x").unwrap();
    std::os::unix::fs::symlink(root.join("b.zip"), root.join("link.zip")).unwrap();

    let names: Vec<String> = find_archives(root)
        .unwrap()
        .iter()
        .map(|path| {
            assert_eq!(path.parent(), Some(root.as_path()));
            path.file_name().unwrap().to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        names,
        ["a.TGZ", "b.zip", "multi.part1.rar", "old.rar", "patch.part2.rar"]
    );
}

#[test]
fn non_archive_files_are_ignored_by_the_unpack() {
    let setup = new_setup();
    fs::write(setup.root.join("notes.txt"), b"not an archive").unwrap();
    fs::write(setup.root.join("game.iso"), b"not unpacked").unwrap();
    fs::create_dir(setup.root.join("local")).unwrap();
    write_zip(&setup.root.join("local/old.zip"), &sample_tree());
    let mut tree = Tree::new();
    tree.insert("only.txt".into(), Some(b"only".to_vec()));
    write_zip(&setup.root.join("game.zip"), &tree);
    unpack(&setup).unwrap();
    assert_eq!(read_tree(&setup.target), tree);
}

#[test]
fn a_game_root_without_archives_fails_with_no_archives() {
    let setup = new_setup();
    fs::write(setup.root.join("notes.txt"), b"x").unwrap();
    fs::create_dir(setup.root.join("local")).unwrap();
    write_zip(&setup.root.join("local/nested.zip"), &sample_tree());
    let err = assert_variant(unpack(&setup), "NoArchives");
    assert!(err.to_string().contains("no archive"), "{err}");
    assert!(read_tree(&setup.target).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Damaged archives
// ---------------------------------------------------------------------------------------------

fn truncate(path: &Path, len: usize) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..len]).unwrap();
}

#[test]
fn truncated_archives_are_corrupt_in_every_format() {
    let tree = sample_tree();
    for (name, compression) in [
        ("game.zip", None),
        ("game.tar", Some(Compression::None)),
        ("game.tar.gz", Some(Compression::Gzip)),
        ("game.tar.zst", Some(Compression::Zstd)),
    ] {
        let setup = new_setup();
        let archive = setup.root.join(name);
        match compression {
            None => write_zip(&archive, &tree),
            Some(compression) => write_tar(&archive, &tree_members(&tree), compression),
        }
        let len = fs::metadata(&archive).unwrap().len() as usize;
        truncate(&archive, len / 2);
        let err = assert_variant(unpack(&setup), "Corrupt");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let setup = new_setup();
    copy_fixture(&setup, "normal.rar");
    let archive = setup.root.join("normal.rar");
    truncate(&archive, fs::metadata(&archive).unwrap().len() as usize / 2);
    let err = unpack(&setup).expect_err("a truncated RAR must fail");
    assert!(err.is_damaged_archive(), "{err:?}");
    assert!(no_scratch_left(&setup.target));
}

#[test]
fn a_tar_cut_at_a_member_boundary_is_truncated() {
    let setup = new_setup();
    let bytes = tar_bytes(&[TarMember::file("a.txt", b"a"), TarMember::file("b.txt", b"b")]);
    // Header + one data block of the first member, nothing after: no end-of-archive block.
    fs::write(setup.root.join("game.tar"), &bytes[..1024]).unwrap();
    let err = assert_variant(unpack(&setup), "Corrupt");
    assert!(err.to_string().contains("end-of-archive"), "{err}");
}

#[test]
fn a_zip_member_with_a_bad_crc_is_a_checksum_mismatch() {
    let setup = new_setup();
    let archive = setup.root.join("game.zip");
    let content = b"0123456789abcdef".repeat(64); // even length: stored, not deflated
    let mut tree = Tree::new();
    tree.insert("payload.bin".into(), Some(content.clone()));
    write_zip(&archive, &tree);
    let mut bytes = fs::read(&archive).unwrap();
    let at = bytes
        .windows(16)
        .position(|window| window == b"0123456789abcdef")
        .unwrap()
        + 100;
    bytes[at] ^= 0x20;
    fs::write(&archive, &bytes).unwrap();
    let mut flipped = content.clone();
    flipped[100] ^= 0x20;
    match assert_variant(unpack(&setup), "ChecksumMismatch") {
        UnpackError::ChecksumMismatch {
            entry,
            expected,
            actual,
            archive: reported,
        } => {
            assert_eq!(entry, "payload.bin");
            assert_eq!(reported, archive);
            assert_eq!(expected, crc32fast::hash(&content));
            assert_eq!(actual, crc32fast::hash(&flipped));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_visitor_that_does_not_read_still_gets_the_checksum_verified() {
    let setup = new_setup();
    let archive = setup.root.join("game.zip");
    let mut tree = Tree::new();
    tree.insert("payload.bin".into(), Some(vec![b'x'; 4096]));
    write_zip(&archive, &tree);
    let mut bytes = fs::read(&archive).unwrap();
    let at = bytes.windows(64).position(|window| window == [b'x'; 64]).unwrap();
    bytes[at] = b'y';
    fs::write(&archive, &bytes).unwrap();
    let mut visited = Vec::new();
    let result = visit_entries(&setup.root, &mut |entry: ArchiveEntry<'_>| {
        visited.push(entry.path.clone());
        Ok(())
    });
    assert_eq!(visited, ["payload.bin"]);
    assert_variant(result, "ChecksumMismatch");
}

#[test]
fn a_bad_gzip_trailer_is_a_checksum_mismatch() {
    let setup = new_setup();
    let archive = setup.root.join("game.tar.gz");
    write_tar(&archive, &tree_members(&sample_tree()), Compression::Gzip);
    let mut bytes = fs::read(&archive).unwrap();
    let crc_at = bytes.len() - 8;
    bytes[crc_at] ^= 0xff;
    fs::write(&archive, &bytes).unwrap();
    match assert_variant(unpack(&setup), "ChecksumMismatch") {
        UnpackError::ChecksumMismatch {
            entry,
            expected,
            actual,
            ..
        } => {
            assert_eq!(entry, "(gzip stream)");
            assert_eq!(expected ^ actual, 0xff);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_zstd_checksum_fails_the_unpack() {
    let setup = new_setup();
    let archive = setup.root.join("game.tar.zst");
    write_tar(&archive, &tree_members(&sample_tree()), Compression::Zstd);
    let mut bytes = fs::read(&archive).unwrap();
    let last = bytes.len() - 1; // the frame's content checksum is its last 4 bytes
    bytes[last] ^= 0x01;
    fs::write(&archive, &bytes).unwrap();
    assert_variant(unpack(&setup), "ChecksumFailed");
}

#[test]
fn a_rar_member_with_a_crc_error_fails_with_a_checksum_error() {
    let setup = new_setup();
    copy_fixture(&setup, "corrupt-crc.rar");
    match assert_variant(unpack(&setup), "ChecksumFailed") {
        UnpackError::ChecksumFailed { entry, .. } => assert_eq!(entry, "payload.txt"),
        other => panic!("{other:?}"),
    }
    assert!(
        read_tree(&setup.target).is_empty(),
        "nothing of the broken member is written"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile archives
// ---------------------------------------------------------------------------------------------

fn zip_with_names(path: &Path, names: &[&str]) {
    let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
    for name in names {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(b"payload").unwrap();
    }
    zip.finish().unwrap();
}

fn assert_unsafe_path(setup: &Setup, entry_name: &str) {
    match assert_variant(unpack(setup), "UnsafePath") {
        UnpackError::UnsafePath { entry, .. } => assert_eq!(entry, entry_name),
        other => panic!("{other:?}"),
    }
    let outside = setup.target.parent().unwrap();
    assert!(!outside.join("evil.txt").exists());
    assert!(
        read_tree(&setup.target).is_empty(),
        "nothing is written for {entry_name}"
    );
}

#[test]
fn traversal_and_absolute_paths_are_refused_in_every_format() {
    let hostile = [
        "../evil.txt",
        "a/../../evil.txt",
        "/tmp/evil.txt",
        "..\\evil.txt",
        "C:/evil.txt",
    ];
    for name in hostile {
        let setup = new_setup();
        zip_with_names(&setup.root.join("game.zip"), &[name]);
        assert_unsafe_path(&setup, name);

        let setup = new_setup();
        write_tar(
            &setup.root.join("game.tar"),
            &[TarMember::file(name, b"payload")],
            Compression::None,
        );
        assert_unsafe_path(&setup, name);
    }
    for (fixture_name, entry) in [("traversal.rar", "../../evil.txt"), ("absolute.rar", "/abs/evil.txt")] {
        let setup = new_setup();
        copy_fixture(&setup, fixture_name);
        assert_unsafe_path(&setup, entry);
    }
}

#[test]
fn reserved_names_are_refused() {
    for name in [
        "local/game.exe",
        ".lanspread_owned",
        "x/.local.installing/y",
        ".version.ini.tmp",
    ] {
        let setup = new_setup();
        write_tar(
            &setup.root.join("game.tar.gz"),
            &[TarMember::file(name, b"payload")],
            Compression::Gzip,
        );
        assert_unsafe_path(&setup, name);
    }
}

#[test]
fn links_and_special_files_are_refused() {
    let outside = "../../outside";
    let cases: Vec<(&str, Vec<TarMember<'_>>)> = vec![
        (
            "symlink",
            vec![TarMember::link("escape", tar::EntryType::Symlink, outside)],
        ),
        (
            "hard link",
            vec![
                TarMember::file("real.txt", b"real"),
                TarMember::link("hard.txt", tar::EntryType::Link, "real.txt"),
            ],
        ),
        (
            "character device",
            vec![TarMember::link("dev", tar::EntryType::Char, "")],
        ),
        ("FIFO", vec![TarMember::link("fifo", tar::EntryType::Fifo, "")]),
    ];
    for (kind_name, members) in cases {
        let setup = new_setup();
        write_tar(&setup.root.join("game.tar"), &members, Compression::None);
        match assert_variant(unpack(&setup), "UnsafeEntry") {
            UnpackError::UnsafeEntry { kind, .. } => assert!(kind.starts_with(kind_name), "{kind}"),
            other => panic!("{other:?}"),
        }
        assert!(!setup.target.parent().unwrap().join("outside").exists());
        for entry in fs::read_dir(&setup.target).unwrap() {
            let entry = entry.unwrap();
            assert!(!entry.file_type().unwrap().is_symlink(), "{:?}", entry.path());
        }
    }

    let setup = new_setup();
    let mut zip = zip::ZipWriter::new(File::create(setup.root.join("game.zip")).unwrap());
    zip.add_symlink("escape", outside, SimpleFileOptions::default())
        .unwrap();
    zip.finish().unwrap();
    match assert_variant(unpack(&setup), "UnsafeEntry") {
        UnpackError::UnsafeEntry { entry, kind, .. } => {
            assert_eq!((entry.as_str(), kind.as_str()), ("escape", "symlink"))
        }
        other => panic!("{other:?}"),
    }
    assert!(read_tree(&setup.target).is_empty());
}

#[test]
fn rar_link_and_reference_records_are_refused() {
    for (fixture_name, entry_name) in [
        ("symlink.rar", "escape"),
        ("hardlink.rar", "hard.txt"),
        ("fileref.rar", "two.bin"),
    ] {
        let setup = new_setup();
        copy_fixture(&setup, fixture_name);
        match assert_variant(unpack(&setup), "UnsafeEntry") {
            UnpackError::UnsafeEntry { entry, .. } => assert_eq!(entry, entry_name, "{fixture_name}"),
            other => panic!("{other:?}"),
        }
        assert!(no_scratch_left(&setup.target), "{fixture_name}");
        assert!(!setup.target.join(entry_name).exists(), "{fixture_name}");
    }
}

#[test]
fn duplicate_paths_are_refused() {
    // The same file twice in one tar.
    let setup = new_setup();
    write_tar(
        &setup.root.join("game.tar"),
        &[TarMember::file("a.txt", b"1"), TarMember::file("./a.txt", b"2")],
        Compression::None,
    );
    assert_variant(unpack(&setup), "Duplicate");

    // A file, then a directory of the same name (explicit or implied by a deeper path).
    for second in [TarMember::dir("a/"), TarMember::file("a/b.txt", b"b")] {
        let setup = new_setup();
        write_tar(
            &setup.root.join("game.tar"),
            &[TarMember::file("a", b"1"), second],
            Compression::None,
        );
        assert_variant(unpack(&setup), "Duplicate");
    }

    // A directory implied by a file, then a file of that name.
    let setup = new_setup();
    write_tar(
        &setup.root.join("game.tar"),
        &[TarMember::file("d/x.txt", b"x"), TarMember::file("d", b"d")],
        Compression::None,
    );
    assert_variant(unpack(&setup), "Duplicate");

    // The same file in two archives of one game.
    let setup = new_setup();
    zip_with_names(&setup.root.join("a.zip"), &["data/x.txt"]);
    write_tar(
        &setup.root.join("b.tar"),
        &[TarMember::file("data/x.txt", b"other")],
        Compression::None,
    );
    match assert_variant(unpack(&setup), "Duplicate") {
        UnpackError::Duplicate { archive, entry } => {
            assert_eq!(archive, setup.root.join("b.tar"));
            assert_eq!(entry, "data/x.txt");
        }
        other => panic!("{other:?}"),
    }

    // A name listed twice in a zip's central directory.
    let setup = new_setup();
    let archive = setup.root.join("game.zip");
    zip_with_names(&archive, &["dup1.txt", "dup2.txt"]);
    let bytes = fs::read(&archive).unwrap();
    let patched: Vec<u8> = {
        let mut out = bytes.clone();
        let mut at = 0;
        while let Some(found) = out[at..].windows(8).position(|window| window == b"dup2.txt") {
            out[at + found + 3] = b'1';
            at += found + 8;
        }
        out
    };
    assert_ne!(patched, bytes);
    fs::write(&archive, patched).unwrap();
    assert_variant(unpack(&setup), "Duplicate");
}

#[test]
fn a_directory_listed_twice_is_fine() {
    let setup = new_setup();
    write_tar(
        &setup.root.join("game.tar"),
        &[
            TarMember::dir("./"),
            TarMember::dir("d/"),
            TarMember::file("d/x.txt", b"x"),
            TarMember::dir("d"),
        ],
        Compression::None,
    );
    let stats = unpack(&setup).unwrap();
    assert_eq!((stats.files, stats.dirs), (1, 1));
}

#[test]
fn a_symlink_already_in_the_target_is_never_written_through() {
    let setup = new_setup();
    let elsewhere = setup.target.parent().unwrap().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, setup.target.join("data")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("readme.txt"), setup.target.join("readme.txt")).unwrap();
    write_zip(&setup.root.join("game.zip"), &sample_tree());
    assert_variant(unpack(&setup), "UnsafeTarget");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the links"
    );
}

// ---------------------------------------------------------------------------------------------
// Visiting, progress, cancellation
// ---------------------------------------------------------------------------------------------

#[test]
fn entries_carry_normalised_paths_and_recorded_checksums() {
    let setup = new_setup();
    zip_with_names(&setup.root.join("a.zip"), &["win\\style\\file.txt"]);
    write_tar(
        &setup.root.join("b.tar"),
        &[TarMember::dir("./"), TarMember::file("./tar/file.txt", b"tar")],
        Compression::None,
    );
    copy_fixture(&setup, "normal.rar");
    let mut seen = Vec::new();
    let stats = visit_entries(&setup.root, &mut |entry: ArchiveEntry<'_>| {
        let mut data = Vec::new();
        entry.reader.read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, entry.size);
        if let Some(crc) = entry.crc32 {
            assert_eq!(crc, crc32fast::hash(&data), "{}", entry.path);
        }
        let archive = entry.archive.file_name().unwrap().to_str().unwrap().to_owned();
        seen.push((archive, entry.path, entry.kind, entry.crc32.is_some()));
        Ok(())
    })
    .unwrap();
    assert_eq!(stats.archives, 3);
    let find = |path: &str| seen.iter().find(|item| item.1 == path).cloned().unwrap();
    assert_eq!(
        find("win/style/file.txt"),
        ("a.zip".into(), "win/style/file.txt".into(), EntryKind::File, true)
    );
    assert_eq!(
        find("tar/file.txt"),
        ("b.tar".into(), "tar/file.txt".into(), EntryKind::File, false)
    );
    assert_eq!(
        find("data/level1.dat"),
        ("normal.rar".into(), "data/level1.dat".into(), EntryKind::File, true)
    );
    assert_eq!(
        find("emptydir"),
        ("normal.rar".into(), "emptydir".into(), EntryKind::Dir, false)
    );
}

#[test]
fn a_visitor_error_stops_the_walk() {
    let setup = new_setup();
    write_zip(&setup.root.join("game.zip"), &sample_tree());
    let mut calls = 0;
    let result = visit_entries(&setup.root, &mut |_entry: ArchiveEntry<'_>| {
        calls += 1;
        Err(UnpackError::Cancelled)
    });
    assert_variant(result, "Cancelled");
    assert_eq!(calls, 1);
}

fn progress_game(setup: &Setup) -> (u64, u64) {
    // 200 small files and three files of 3 MiB: several reports by count and by size.
    let mut tree = Tree::new();
    for index in 0..200 {
        tree.insert(
            format!("small/{index:03}.txt"),
            Some(format!("file {index}\n").into_bytes()),
        );
    }
    tree.insert("small".into(), None);
    for index in 0..3 {
        tree.insert(
            format!("big{index}.bin"),
            Some(support::pseudo_random_bytes(index, 3 << 20)),
        );
    }
    write_tar(
        &setup.root.join("game.tar.zst"),
        &tree_members(&tree),
        Compression::Zstd,
    );
    let files = tree.values().flatten().count() as u64;
    let bytes = tree.values().flatten().map(|bytes| bytes.len() as u64).sum();
    (files, bytes)
}

#[test]
fn progress_is_reported_and_ends_at_the_totals() {
    let setup = new_setup();
    let (files, bytes) = progress_game(&setup);
    let mut reports: Vec<UnpackProgress> = Vec::new();
    let stats = ArchiveUnpacker
        .unpack(
            &setup.root,
            &setup.target,
            &mut |progress| reports.push(progress),
            &|| false,
        )
        .unwrap();
    assert_eq!((stats.files, stats.bytes), (files, bytes));
    assert!(reports.len() >= 5, "{} reports", reports.len());
    for pair in reports.windows(2) {
        assert!(
            pair[0].files <= pair[1].files && pair[0].bytes <= pair[1].bytes,
            "{pair:?}"
        );
    }
    assert_eq!(reports.last(), Some(&UnpackProgress { files, bytes }));
}

#[test]
fn cancellation_stops_the_unpack() {
    // Cancelled from the start: nothing is written.
    let setup = new_setup();
    progress_game(&setup);
    let result = ArchiveUnpacker.unpack(&setup.root, &setup.target, &mut |_| {}, &|| true);
    assert_variant(result, "Cancelled");
    assert!(read_tree(&setup.target).is_empty());

    // Cancelled once the first progress report arrives: the unpack stops short.
    let setup2 = new_setup();
    let (files, _) = progress_game(&setup2);
    let cancel = Cell::new(false);
    let mut last = UnpackProgress::default();
    let result = ArchiveUnpacker.unpack(
        &setup2.root,
        &setup2.target,
        &mut |progress| {
            last = progress;
            cancel.set(true);
        },
        &|| cancel.get(),
    );
    assert_variant(result, "Cancelled");
    assert!(last.files < files, "{last:?}");

    // RAR: cancelled between members.
    let setup3 = new_setup();
    copy_fixture(&setup3, "normal.rar");
    let calls = Cell::new(0);
    let result = ArchiveUnpacker.unpack(&setup3.root, &setup3.target, &mut |_| {}, &|| {
        calls.set(calls.get() + 1);
        calls.get() > 3
    });
    assert_variant(result, "Cancelled");
    assert!(no_scratch_left(&setup3.target));
}

#[test]
fn an_ownership_marker_in_the_target_is_left_alone() {
    let setup = new_setup();
    fs::write(setup.target.join(".lanspread_owned"), b"").unwrap();
    copy_fixture(&setup, "normal.rar");
    unpack(&setup).unwrap();
    let mut expected = rar_fixture_tree();
    expected.insert(".lanspread_owned".into(), Some(Vec::new()));
    assert_eq!(read_tree(&setup.target), expected);
}

#[test]
fn rar_archives_under_a_non_ascii_path_unpack() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Spiele für Jörg – ゲーム");
    let target = dir.path().join("zielördner");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&target).unwrap();
    for part in ["multi.part1.rar", "multi.part2.rar", "multi.part3.rar"] {
        fs::copy(fixture(part), root.join(part.replace("multi", "mehrteilig-ä"))).unwrap();
    }
    let stats = ArchiveUnpacker.unpack(&root, &target, &mut |_| {}, &|| false).unwrap();
    assert_eq!((stats.archives, stats.files, stats.bytes), (1, 2, 60_019));
    assert_eq!(fs::read(target.join("big.bin")).unwrap(), xorshift32_bytes(60_000));
}
