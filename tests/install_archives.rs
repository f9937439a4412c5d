//! Installs from real archives: install, update and uninstall round trips in
//! every format; bad archives fail and keep the previous `local/`; and through
//! the runtime, a finished download installs itself.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use lanspread::install::intent::intent_path;
use lanspread::install::unpack::{ArchiveUnpacker, Unpacker};
use lanspread::install::{Failpoints, InstallError, Transaction};
use lanspread::layout::{BACKUP_DIR, INSTALLING_DIR};
use lanspread::peer::{GameState, PeerCommand, PeerEvent};
use support::archives::{
    Compression, TarMember, Tree, fixture, read_tree, sample_tree, tree_members, write_tar, write_zip,
};
use support::{Outcome, TestPeer, start_test_peer};

const GAME: &str = "openarena";

#[derive(Clone, Copy, Debug)]
enum Format {
    Zip,
    Tar,
    TarGz,
    TarZst,
}

impl Format {
    const ALL: [Format; 4] = [Format::Zip, Format::Tar, Format::TarGz, Format::TarZst];

    fn write(self, root: &Path, tree: &Tree) {
        match self {
            Format::Zip => write_zip(&root.join("game.zip"), tree),
            Format::Tar => write_tar(&root.join("game.tar"), &tree_members(tree), Compression::None),
            Format::TarGz => write_tar(&root.join("game.tar.gz"), &tree_members(tree), Compression::Gzip),
            Format::TarZst => write_tar(&root.join("game.tar.zst"), &tree_members(tree), Compression::Zstd),
        }
    }
}

struct Setup {
    games: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let setup = Setup {
            games: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(setup.root()).unwrap();
        fs::write(setup.root().join("version.ini"), "1").unwrap();
        setup
    }

    fn root(&self) -> PathBuf {
        self.games.path().join(GAME)
    }

    /// Replaces the game's archives with `write`'s.
    fn archives(&self, write: impl FnOnce(&Path)) {
        for entry in fs::read_dir(self.root()).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() && entry.file_name() != "version.ini" {
                fs::remove_file(entry.path()).unwrap();
            }
        }
        write(&self.root());
    }

    fn transaction(&self) -> Transaction<'_> {
        Transaction {
            game_dir: self.games.path(),
            state_dir: self.state.path(),
            id: GAME,
            failpoints: Failpoints::default(),
        }
    }

    fn install(&self) -> Result<lanspread::install::Completed, InstallError> {
        self.transaction()
            .install_downloaded(&ArchiveUnpacker, &mut |_| {}, &|| false)
    }

    fn local(&self) -> Tree {
        read_tree(&self.root().join("local"))
    }

    fn assert_clean(&self, context: &str) {
        for reserved in [INSTALLING_DIR, BACKUP_DIR] {
            assert!(!self.root().join(reserved).exists(), "{context}: {reserved} left");
        }
        assert!(
            !intent_path(self.state.path(), GAME).exists(),
            "{context}: journal left"
        );
    }
}

fn updated_tree() -> Tree {
    let mut tree = sample_tree();
    tree.remove("data/sub/deep.txt");
    tree.insert("readme.txt".into(), Some(b"version two\n".to_vec()));
    tree.insert("data/new.dat".into(), Some(vec![7; 4096]));
    tree
}

#[test]
fn install_update_and_uninstall_round_trip_in_every_format() {
    for format in Format::ALL {
        let setup = Setup::new();
        setup.archives(|root| format.write(root, &sample_tree()));
        let completed = setup.install().unwrap_or_else(|err| panic!("{format:?}: {err}"));
        assert!(!completed.updated);
        assert_eq!(
            setup.local(),
            sample_tree(),
            "{format:?}: the installed tree equals the archive"
        );

        setup.archives(|root| format.write(root, &updated_tree()));
        assert!(setup.install().unwrap().updated, "{format:?}");
        assert_eq!(
            setup.local(),
            updated_tree(),
            "{format:?}: the update replaces the whole tree"
        );
        setup.assert_clean(&format!("{format:?}"));

        setup.transaction().uninstall().unwrap();
        assert!(!setup.root().join("local").exists(), "{format:?}");
        assert!(
            setup.root().join("version.ini").exists(),
            "{format:?}: the download stays"
        );
    }
}

#[test]
fn rar_archives_install_like_the_unpacker_extracts_them() {
    for archives in [
        &["normal.rar"][..],
        &["multi.part1.rar", "multi.part2.rar", "multi.part3.rar"],
    ] {
        let setup = Setup::new();
        setup.archives(|root| {
            for name in archives {
                fs::copy(fixture(name), root.join(name)).unwrap();
            }
        });
        setup.install().unwrap_or_else(|err| panic!("{archives:?}: {err}"));
        let reference = tempfile::tempdir().unwrap();
        ArchiveUnpacker
            .unpack(&setup.root(), reference.path(), &mut |_| {}, &|| false)
            .unwrap();
        let expected = read_tree(reference.path());
        assert!(!expected.is_empty());
        assert_eq!(setup.local(), expected, "{archives:?}");
        setup.assert_clean(&format!("{archives:?}"));
    }
}

fn truncated(write: impl FnOnce(&Path)) -> impl FnOnce(&Path) {
    move |root: &Path| {
        write(root);
        let archive = fs::read_dir(root)
            .unwrap()
            .flatten()
            .find(|entry| entry.file_type().unwrap().is_file() && entry.file_name() != "version.ini")
            .unwrap()
            .path();
        let len = fs::metadata(&archive).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&archive)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    }
}

/// A stored zip member whose bytes were flipped after the CRC was recorded.
fn zip_with_bad_crc(root: &Path) {
    let mut tree = Tree::new();
    tree.insert("payload.bin".into(), Some(vec![b'a'; 1000]));
    let path = root.join("game.zip");
    write_zip(&path, &tree);
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes
        .windows(1000)
        .position(|window| window.iter().all(|b| *b == b'a'))
        .unwrap();
    bytes[at + 500] = b'b';
    fs::write(&path, bytes).unwrap();
}

fn hostile_tar(members: Vec<TarMember<'static>>) -> impl FnOnce(&Path) {
    move |root: &Path| write_tar(&root.join("game.tar"), &members, Compression::None)
}

type WriteArchives = Box<dyn FnOnce(&Path)>;

#[test]
fn bad_archives_fail_cleanly_and_keep_the_previous_install() {
    let cases: Vec<(&str, WriteArchives)> = vec![
        (
            "truncated zip",
            Box::new(truncated(|root| Format::Zip.write(root, &sample_tree()))),
        ),
        (
            "truncated tar.gz",
            Box::new(truncated(|root| Format::TarGz.write(root, &sample_tree()))),
        ),
        ("zip with a bad CRC", Box::new(zip_with_bad_crc)),
        (
            "RAR with a bad CRC",
            Box::new(|root: &Path| {
                fs::copy(fixture("corrupt-crc.rar"), root.join("corrupt-crc.rar")).unwrap();
            }),
        ),
        (
            "tar with ../ traversal",
            Box::new(hostile_tar(vec![TarMember::file("../../evil.txt", b"evil")])),
        ),
        (
            "tar with an absolute path",
            Box::new(hostile_tar(vec![TarMember::file("/tmp/evil.txt", b"evil")])),
        ),
        (
            "tar with an escaping symlink",
            Box::new(hostile_tar(vec![TarMember::link(
                "escape",
                tar::EntryType::Symlink,
                "../../../etc",
            )])),
        ),
        (
            "RAR with a traversal path",
            Box::new(|root: &Path| {
                fs::copy(fixture("traversal.rar"), root.join("traversal.rar")).unwrap();
            }),
        ),
    ];
    for (name, write_bad) in cases {
        let setup = Setup::new();
        setup.archives(|root| Format::Zip.write(root, &sample_tree()));
        setup.install().unwrap();
        setup.archives(write_bad);
        let result = setup.install();
        assert!(matches!(result, Err(InstallError::Unpack(_))), "{name}: {result:?}");
        assert_eq!(setup.local(), sample_tree(), "{name}: the previous install is intact");
        setup.assert_clean(name);
        let outside: Vec<_> = fs::read_dir(setup.games.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(outside, [GAME], "{name}: nothing written beside the game root");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_download_installs_itself() {
    let tree = sample_tree();
    let server = TestPeer::builder().zipped_game(GAME, "20240301", &tree).start();
    let mut client = TestPeer::builder()
        .static_peers(&[server.addr()])
        .config(|c| c.auto_install = true)
        .start();
    client
        .wait_for_snapshot("the game at the server", |s| s.game(GAME).is_some())
        .await;
    client.download(GAME).await;
    let downloaded = client.wait_for_download_end(GAME).await;
    assert!(
        matches!(downloaded.outcome, Outcome::Finished(_)),
        "{:?}",
        downloaded.outcome
    );
    let installed = client.wait_for_install_end(GAME).await;
    assert_eq!(installed.outcome, Outcome::Finished(false));
    assert!(
        installed
            .seen
            .iter()
            .any(|event| matches!(event, PeerEvent::InstallGameBegin { .. })),
        "the install begins after the download ends"
    );
    assert_eq!(read_tree(&client.game_dir().join(GAME).join("local")), sample_tree());
    client
        .wait_for_snapshot("installed in the library", |s| {
            s.game(GAME).is_some_and(|g| g.state == GameState::Installed)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_and_install_are_refused_while_the_game_downloads() {
    let mut tree = sample_tree();
    tree.insert("big.bin".into(), Some(support::pseudo_random_bytes(3, 20_000_000)));
    let server = TestPeer::builder()
        .config(|c| c.upload_limit = Some(5_000_000))
        .zipped_game(GAME, "2", &tree)
        .start();
    let mut client = start_test_peer(&[server.addr()], |_| {});
    client
        .wait_for_snapshot("the game at the server", |s| s.game(GAME).is_some())
        .await;
    client.download(GAME).await;
    client
        .wait_for("the download to begin", |event| {
            matches!(event, PeerEvent::DownloadGameFilesBegin { .. }).then_some(())
        })
        .await;
    for command in [
        PeerCommand::RemoveDownloadedGame { id: GAME.into() },
        PeerCommand::InstallGame { id: GAME.into() },
    ] {
        client.send(command).await;
        let reason = client.wait_for_refusal(GAME).await;
        assert!(reason.contains("download is already running"), "{reason}");
    }
    client.cancel(GAME).await;
    assert_eq!(client.wait_for_download_end(GAME).await.outcome, Outcome::Cancelled);
}
