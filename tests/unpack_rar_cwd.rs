//! UnRAR resolves the targets of RAR hard-link records and the sources of
//! file-reference records (`rar -oh` / `rar -oi`) against the process's working
//! directory. This test puts "secret" files under those names in the working
//! directory and checks that the unpack refuses the records without copying a
//! byte of them into the target. It changes the working directory, so it lives
//! alone in its own test binary (its own process).

use std::fs;
use std::path::Path;

use lanspread::install::unpack::{ArchiveUnpacker, UnpackError, Unpacker};

#[test]
fn rar_link_records_cannot_pull_in_files_from_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("cwd");
    fs::create_dir(&cwd).unwrap();
    let secret = b"top secret, not part of any game\n";
    fs::write(cwd.join("real.txt"), secret).unwrap(); // hardlink.rar: hard.txt -> real.txt
    fs::write(cwd.join("one.bin"), secret).unwrap(); // fileref.rar: two.bin -> one.bin
    std::env::set_current_dir(&cwd).unwrap();

    for (fixture, entry_name, expected_kind) in [
        // unrar links the scratch file to ./real.txt: caught by its link count.
        ("hardlink.rar", "hard.txt", "hard link"),
        // unrar copies ./one.bin into the scratch file: caught by the record's missing CRC.
        (
            "fileref.rar",
            "two.bin",
            "hard link or file reference record (rar -oh / -oi)",
        ),
    ] {
        let root = dir.path().join(format!("game-{fixture}"));
        let target = dir.path().join(format!("target-{fixture}"));
        fs::create_dir(&root).unwrap();
        fs::create_dir(&target).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rar")
            .join(fixture);
        fs::copy(source, root.join(fixture)).unwrap();

        let err = ArchiveUnpacker
            .unpack(&root, &target, &mut |_| {}, &|| false)
            .expect_err(fixture);
        match err {
            UnpackError::UnsafeEntry { entry, kind, .. } => {
                assert_eq!(entry, entry_name, "{fixture}");
                assert_eq!(kind, expected_kind, "{fixture}");
            }
            other => panic!("{fixture}: expected UnsafeEntry, got {other:?}"),
        }
        assert!(!target.join(entry_name).exists(), "{fixture}");
        for entry in fs::read_dir(&target).unwrap() {
            let path = entry.unwrap().path();
            assert_ne!(fs::read(&path).ok().as_deref(), Some(&secret[..]), "{path:?}");
        }
    }
    // The working directory's files are untouched.
    assert_eq!(fs::read(cwd.join("real.txt")).unwrap(), secret);
    assert_eq!(fs::read(cwd.join("one.bin")).unwrap(), secret);
    let metadata = fs::metadata(cwd.join("real.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&metadata),
        1,
        "the scratch link is gone"
    );
}
