//! Crash and failure injection at every step of install, update, uninstall and
//! remove-downloaded, followed by startup recovery. Every case must end with
//! either the old `local/` or the new one complete (never a mix, never nothing
//! when something was there), no reserved directory and no journal left.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use lanspread::catalog::Catalog;
use lanspread::install::intent::intent_path;
use lanspread::install::unpack::UnpackError;
use lanspread::install::{Failpoints, InstallError, Step, Transaction, recover};
use lanspread::layout::{BACKUP_DIR, INSTALLING_DIR, OWNED_MARKER, REMOVING_DIR};
use lanspread::peer::download::TransferError;

const GAME: &str = "openarena";

type Tree = BTreeMap<PathBuf, Vec<u8>>;

fn tree(root: &Path) -> Option<Tree> {
    if !root.is_dir() {
        return None;
    }
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.strip_prefix(root).unwrap().to_path_buf(), fs::read(&path).unwrap());
            }
        }
    }
    Some(files)
}

fn old_tree() -> Tree {
    [("game.exe", b"old exe".to_vec()), ("data/old.pak", vec![1; 5000])]
        .into_iter()
        .map(|(p, b)| (PathBuf::from(p), b))
        .collect()
}

fn new_tree() -> Tree {
    [
        ("game.exe", b"new exe".to_vec()),
        ("data/new.pak", vec![2; 7000]),
        ("data/maps/a.bsp", vec![3; 10]),
    ]
    .into_iter()
    .map(|(p, b)| (PathBuf::from(p), b))
    .collect()
}

fn write_tree(root: &Path, tree: &Tree) {
    for (path, bytes) in tree {
        let full = root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, bytes).unwrap();
    }
}

struct Setup {
    games: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Setup {
    /// A downloaded game; with `installed`, also an old `local/`.
    fn new(installed: bool) -> Self {
        let setup = Setup {
            games: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(setup.root()).unwrap();
        fs::write(setup.root().join("version.ini"), "2").unwrap();
        fs::write(setup.root().join("game.zip"), b"archive bytes").unwrap();
        if installed {
            write_tree(&setup.root().join("local"), &old_tree());
        }
        setup
    }

    fn root(&self) -> PathBuf {
        self.games.path().join(GAME)
    }

    fn transaction(&self, failpoints: Failpoints) -> Transaction<'_> {
        Transaction {
            game_dir: self.games.path(),
            state_dir: self.state.path(),
            id: GAME,
            failpoints,
        }
    }

    fn local(&self) -> Option<Tree> {
        tree(&self.root().join("local"))
    }

    fn assert_settled(&self, context: &str) {
        for reserved in [INSTALLING_DIR, BACKUP_DIR, REMOVING_DIR] {
            assert!(
                !self.root().join(reserved).exists(),
                "{context}: {reserved} left behind"
            );
        }
        assert!(
            !intent_path(self.state.path(), GAME).exists(),
            "{context}: journal left behind"
        );
        if let Some(local) = self.local() {
            assert!(
                !local.contains_key(Path::new(OWNED_MARKER)),
                "{context}: marker left in local/"
            );
        }
    }
}

/// Fills staging with the new tree, as an unpacker would.
fn fill_new(staging: &Path) -> Result<(), InstallError> {
    write_tree(staging, &new_tree());
    Ok(())
}

#[test]
fn install_crash_at_every_step_recovers_to_nothing_or_the_new_install() {
    for &step in Step::INSTALL {
        let setup = Setup::new(false);
        let result = setup
            .transaction(Failpoints {
                crash_after: Some(step),
                fail_at: None,
            })
            .install(None, fill_new);
        assert!(
            matches!(result, Err(InstallError::InjectedCrash(s)) if s == step),
            "{step:?}: {result:?}"
        );
        let report = recover(setup.games.path(), setup.state.path());
        let context = format!("install crash after {step:?}");
        assert!(report.left_alone.is_empty(), "{context}: {report:?}");
        setup.assert_settled(&context);
        match setup.local() {
            None => assert!(
                matches!(
                    step,
                    Step::IntentWritten | Step::StagingCreated | Step::Staged | Step::PromotionRecorded
                ),
                "{context}: lost a promoted install"
            ),
            Some(local) => assert_eq!(local, new_tree(), "{context}"),
        }
        assert!(
            setup.root().join("version.ini").exists(),
            "{context}: the download is untouched"
        );
    }
}

#[test]
fn update_crash_at_every_step_recovers_to_the_old_or_the_new_install() {
    for &step in Step::UPDATE {
        let setup = Setup::new(true);
        let result = setup
            .transaction(Failpoints {
                crash_after: Some(step),
                fail_at: None,
            })
            .install(None, fill_new);
        assert!(
            matches!(result, Err(InstallError::InjectedCrash(s)) if s == step),
            "{step:?}: {result:?}"
        );
        let context = format!("update crash after {step:?}");
        let report = recover(setup.games.path(), setup.state.path());
        assert!(report.left_alone.is_empty(), "{context}: {report:?}");
        setup.assert_settled(&context);
        let local = setup
            .local()
            .unwrap_or_else(|| panic!("{context}: nothing installed after recovery"));
        let promoted =
            Step::UPDATE.iter().position(|s| *s == step) >= Step::UPDATE.iter().position(|s| *s == Step::Promoted);
        assert_eq!(local, if promoted { new_tree() } else { old_tree() }, "{context}");
    }
}

#[test]
fn uninstall_crash_at_every_step_recovers_to_installed_or_uninstalled() {
    for &step in Step::UNINSTALL {
        let setup = Setup::new(true);
        let result = setup
            .transaction(Failpoints {
                crash_after: Some(step),
                fail_at: None,
            })
            .uninstall();
        assert!(
            matches!(result, Err(InstallError::InjectedCrash(s)) if s == step),
            "{step:?}: {result:?}"
        );
        let context = format!("uninstall crash after {step:?}");
        let report = recover(setup.games.path(), setup.state.path());
        assert!(report.left_alone.is_empty(), "{context}: {report:?}");
        setup.assert_settled(&context);
        match setup.local() {
            Some(local) => {
                assert_eq!(
                    step,
                    Step::IntentWritten,
                    "{context}: local/ survived a completed rename"
                );
                assert_eq!(local, old_tree(), "{context}: a half-deleted local/");
            }
            None => assert_ne!(step, Step::IntentWritten, "{context}"),
        }
        assert!(
            setup.root().join("version.ini").exists(),
            "{context}: uninstall keeps the download"
        );
    }
}

#[test]
fn remove_downloaded_crash_at_every_step_recovers_to_present_or_gone() {
    let catalog = Catalog::bundled();
    for &step in Step::REMOVE_DOWNLOADED {
        let setup = Setup::new(false);
        let result = setup
            .transaction(Failpoints {
                crash_after: Some(step),
                fail_at: None,
            })
            .remove_downloaded(&catalog);
        assert!(
            matches!(result, Err(InstallError::InjectedCrash(s)) if s == step),
            "{step:?}: {result:?}"
        );
        let context = format!("remove crash after {step:?}");
        recover(setup.games.path(), setup.state.path());
        setup.assert_settled(&context);
        // The journal is written before anything is deleted, so recovery always completes the removal.
        assert!(!setup.root().exists(), "{context}: root should be gone");
    }
}

#[test]
fn failures_at_every_step_roll_back_or_complete_without_recovery() {
    // `Staged` is a checkpoint with no I/O of its own; a failing fill is its own test below.
    for &step in Step::UPDATE.iter().filter(|step| **step != Step::Staged) {
        let setup = Setup::new(true);
        let result = setup
            .transaction(Failpoints {
                crash_after: None,
                fail_at: Some(step),
            })
            .install(None, fill_new);
        let context = format!("update failing at {step:?}");
        let promoted =
            Step::UPDATE.iter().position(|s| *s == step) > Step::UPDATE.iter().position(|s| *s == Step::Promoted);
        match result {
            Ok(completed) => {
                assert!(promoted, "{context}: succeeded although promotion failed");
                assert!(
                    !completed.warnings.is_empty(),
                    "{context}: a failed cleanup is reported as a warning"
                );
                assert_eq!(setup.local().unwrap(), new_tree(), "{context}");
            }
            Err(err) => {
                assert!(
                    !promoted,
                    "{context}: post-promotion cleanup failure reported as failure: {err}"
                );
                assert_eq!(setup.local().unwrap(), old_tree(), "{context}: old install restored");
                assert!(
                    !setup.root().join(INSTALLING_DIR).exists(),
                    "{context}: staging removed"
                );
                assert!(!setup.root().join(BACKUP_DIR).exists(), "{context}");
            }
        }
        // Whatever a failed cleanup left, recovery finishes it.
        recover(setup.games.path(), setup.state.path());
        setup.assert_settled(&context);
    }
}

#[test]
fn a_failing_unpack_keeps_the_old_install_and_leaves_nothing() {
    let setup = Setup::new(true);
    let result = setup.transaction(Failpoints::default()).install(None, |staging| {
        fs::write(staging.join("half.pak"), b"partial").unwrap();
        Err(InstallError::Unpack(UnpackError::Corrupt {
            archive: "game.zip".into(),
            reason: "truncated".into(),
        }))
    });
    assert!(matches!(result, Err(InstallError::Unpack(_))), "{result:?}");
    assert_eq!(setup.local().unwrap(), old_tree());
    setup.assert_settled("failed unpack");
}

#[test]
fn a_failed_install_removes_a_root_it_created_but_keeps_a_pre_existing_one() {
    let setup = Setup::new(false);
    let fail = |_: &Path| -> Result<(), InstallError> {
        Err(InstallError::Transfer(TransferError::Peer("sender vanished".into())))
    };
    let fresh = Transaction {
        game_dir: setup.games.path(),
        state_dir: setup.state.path(),
        id: "xonotic",
        failpoints: Failpoints::default(),
    };
    assert!(fresh.install(None, fail).is_err());
    assert!(
        !setup.games.path().join("xonotic").exists(),
        "the root this install created is gone"
    );

    assert!(setup.transaction(Failpoints::default()).install(None, fail).is_err());
    assert!(
        setup.root().join("version.ini").exists(),
        "a pre-existing root and its download stay"
    );
    setup.assert_settled("failed install into an existing root");
}

#[test]
fn install_update_and_uninstall_round_trip() {
    let setup = Setup::new(false);
    setup
        .transaction(Failpoints::default())
        .install(None, fill_new)
        .unwrap();
    assert_eq!(setup.local().unwrap(), new_tree());
    setup.assert_settled("install");
    let launch = lanspread::install::launch::load(setup.state.path(), GAME)
        .unwrap()
        .unwrap();
    assert_eq!(launch.executable.as_deref(), Some("game.exe"));

    setup
        .transaction(Failpoints::default())
        .install(None, |staging| {
            write_tree(staging, &old_tree());
            Ok(())
        })
        .unwrap();
    assert_eq!(setup.local().unwrap(), old_tree(), "update replaces the whole tree");
    setup.assert_settled("update");

    setup.transaction(Failpoints::default()).uninstall().unwrap();
    assert_eq!(setup.local(), None);
    setup.assert_settled("uninstall");
    assert!(
        lanspread::install::launch::load(setup.state.path(), GAME)
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        setup.transaction(Failpoints::default()).uninstall(),
        Err(InstallError::NotInstalled(_))
    ));
}

#[test]
fn remove_downloaded_refuses_what_it_cannot_prove_is_a_removable_download() {
    let catalog = Catalog::bundled();
    // Installed.
    let setup = Setup::new(true);
    let result = setup.transaction(Failpoints::default()).remove_downloaded(&catalog);
    assert!(matches!(result, Err(InstallError::Installed(_))), "{result:?}");
    assert!(setup.root().join("version.ini").exists());

    // A directory named version.ini, and a symlinked version.ini.
    let setup = Setup::new(false);
    fs::remove_file(setup.root().join("version.ini")).unwrap();
    fs::create_dir(setup.root().join("version.ini")).unwrap();
    let result = setup.transaction(Failpoints::default()).remove_downloaded(&catalog);
    assert!(matches!(result, Err(InstallError::NotDownloaded(_))), "{result:?}");
    fs::remove_dir(setup.root().join("version.ini")).unwrap();
    let elsewhere = setup.games.path().join("elsewhere.ini");
    fs::write(&elsewhere, "1").unwrap();
    std::os::unix::fs::symlink(&elsewhere, setup.root().join("version.ini")).unwrap();
    let result = setup.transaction(Failpoints::default()).remove_downloaded(&catalog);
    assert!(matches!(result, Err(InstallError::NotDownloaded(_))), "{result:?}");
    assert!(setup.root().join("game.zip").exists());

    // Not a direct child / not a catalog id.
    for id in ["../openarena", "openarena/local", "not-in-catalog", ""] {
        let transaction = Transaction {
            game_dir: setup.games.path(),
            state_dir: setup.state.path(),
            id,
            failpoints: Failpoints::default(),
        };
        let result = transaction.remove_downloaded(&catalog);
        assert!(
            matches!(result, Err(InstallError::UnknownGame(_))),
            "{id:?}: {result:?}"
        );
    }

    // A symlinked game root.
    let target = tempfile::tempdir().unwrap();
    fs::write(target.path().join("version.ini"), "1").unwrap();
    std::os::unix::fs::symlink(target.path(), setup.games.path().join("xonotic")).unwrap();
    let transaction = Transaction {
        game_dir: setup.games.path(),
        state_dir: setup.state.path(),
        id: "xonotic",
        failpoints: Failpoints::default(),
    };
    assert!(matches!(
        transaction.remove_downloaded(&catalog),
        Err(InstallError::NotAGameRoot(_))
    ));
    assert!(
        target.path().join("version.ini").exists(),
        "nothing behind the symlink is touched"
    );

    // And the happy path.
    let setup = Setup::new(false);
    setup
        .transaction(Failpoints::default())
        .remove_downloaded(&catalog)
        .unwrap();
    assert!(!setup.root().exists());
    setup.assert_settled("remove");
}

#[test]
fn recovery_leaves_an_unowned_staging_dir_without_a_journal_and_logs_it() {
    let setup = Setup::new(true);
    let staging = setup.root().join(INSTALLING_DIR);
    fs::create_dir(&staging).unwrap();
    fs::write(staging.join("precious"), b"someone else's").unwrap();
    let report = recover(setup.games.path(), setup.state.path());
    assert_eq!(fs::read(staging.join("precious")).unwrap(), b"someone else's");
    assert!(
        report.left_alone.iter().any(|line| line.contains(INSTALLING_DIR)),
        "{report:?}"
    );
    assert_eq!(setup.local().unwrap(), old_tree());

    // With the marker it is provably ours and goes.
    fs::write(staging.join(OWNED_MARKER), b"").unwrap();
    recover(setup.games.path(), setup.state.path());
    assert!(!staging.exists());
}
