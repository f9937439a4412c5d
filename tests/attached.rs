//! `get`, `verify`, `install`, `uninstall` and `remove` on a state dir that a running `serve` holds:
//! they go through it (its control socket), with their usual lines and exit codes, and
//! Ctrl-C in an attached `get` cancels that download only. Real processes.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use support::archives::{read_tree, sample_tree, write_zip};
use support::process::{Lanspread, command, free_addr};
use support::{pseudo_random_bytes, wait_until, write_game};

/// A seed box sharing openarena (a zip of the sample tree) and `extra` games.
fn seed(root: &Path, extra: &[(&str, &str, Vec<u8>)], upload_limit: Option<&str>) -> (Lanspread, SocketAddr) {
    let game = write_game(&root.join("games"), "openarena", "20240301", &[]);
    write_zip(&game.join("game.zip"), &sample_tree());
    for (id, version, bytes) in extra {
        write_game(&root.join("games"), id, version, &[("data.zip", bytes.clone())]);
    }
    let addr = free_addr();
    let extra_args: Vec<&str> = upload_limit.map_or(vec![], |limit| vec!["--upload-limit", limit]);
    let mut serve = Lanspread::serve(root, addr, &[], &extra_args);
    serve.wait_for_line(&["hashed"]);
    (serve, addr)
}

/// The box whose state dir the commands use: a `serve` with the seed as its peer.
fn service(root: &Path, seed: SocketAddr, game: &str) -> Lanspread {
    let mut serve = Lanspread::serve(root, free_addr(), &[seed], &[]);
    serve.wait_for_line(&[&format!("library: {game}")]);
    serve
}

fn run(root: &Path, args: &[&str]) -> support::process::Finished {
    Lanspread::spawn(command(root, args)).finish()
}

#[test]
fn get_install_uninstall_and_remove_go_through_a_running_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_root, root) = (dir.path().join("seed"), dir.path().join("box"));
    let (_seed, seed_addr) = seed(&seed_root, &[], None);
    let mut serve = service(&root, seed_addr, "openarena");
    let local = root.join("games/openarena/local");

    let got = run(&root, &["get", "openarena", "--no-mdns", "--wait", "15"]);
    assert_eq!(got.code(), Some(0), "{got}");
    assert!(got.stderr.contains("attached to the serve"), "{got}");
    assert!(got.stdout.contains("downloaded openarena 20240301"), "{got}");
    assert!(got.stdout.contains("installed openarena"), "{got}");
    assert_eq!(read_tree(&local), sample_tree(), "the serve installed it");
    serve.wait_for_line(&["library: openarena", "installed"]);

    let again = run(&root, &["get", "openarena", "--no-mdns", "--wait", "15"]);
    assert_eq!(again.code(), Some(0), "{again}");
    assert!(again.stdout.contains("openarena 20240301 is up to date"), "{again}");

    let verified = run(&root, &["verify", "openarena", "--no-mdns", "--wait", "15"]);
    assert_eq!(verified.code(), Some(0), "intact, checked by the serve: {verified}");
    assert!(verified.stderr.contains("attached to the serve"), "{verified}");

    let uninstalled = run(&root, &["uninstall", "openarena"]);
    assert_eq!(uninstalled.code(), Some(0), "{uninstalled}");
    assert!(
        uninstalled.stdout.starts_with("uninstalled openarena (removed "),
        "{uninstalled}"
    );
    assert!(!local.exists());

    let installed = run(&root, &["install", "openarena"]);
    assert_eq!(installed.code(), Some(0), "{installed}");
    assert!(installed.stdout.starts_with("installed openarena into "), "{installed}");
    assert_eq!(read_tree(&local), sample_tree());

    // Refused while installed: the runtime's reason, exit 1, nothing changed.
    let refused = run(&root, &["remove", "openarena"]);
    assert_eq!(refused.code(), Some(1), "{refused}");
    assert!(local.exists());

    assert_eq!(run(&root, &["uninstall", "openarena"]).code(), Some(0));
    let removed = run(&root, &["remove", "openarena"]);
    assert_eq!(removed.code(), Some(0), "{removed}");
    assert!(removed.stdout.starts_with("removed openarena ("), "{removed}");
    assert!(!root.join("games/openarena").exists());

    // `--no-install` cannot be kept by a serve that installs what it downloads: said, exit 1.
    let no_install = run(
        &root,
        &["get", "openarena", "--no-install", "--no-mdns", "--wait", "15"],
    );
    assert_eq!(no_install.code(), Some(1), "{no_install}");
    assert!(
        no_install.stderr.contains("--no-install cannot be kept"),
        "{no_install}"
    );
    assert!(serve.child.try_wait().unwrap().is_none(), "the serve still runs");
}

#[test]
fn ctrl_c_in_an_attached_get_cancels_only_that_download() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_root, root) = (dir.path().join("seed"), dir.path().join("box"));
    // 2 MB/s from the seed: the big game takes about 10 s, long enough to cancel it.
    let big = ("teeworlds", "0.7.5", pseudo_random_bytes(3, 20_000_000));
    let (_seed, seed_addr) = seed(&seed_root, &[big], Some("2"));
    let serve = service(&root, seed_addr, "teeworlds");

    let mut cancelled = Lanspread::spawn(command(&root, &["get", "teeworlds", "--no-mdns", "--wait", "15"]));
    cancelled.wait_for_line(&["downloading teeworlds"]);
    let other = Lanspread::spawn(command(&root, &["get", "openarena", "--no-mdns", "--wait", "15"]));
    cancelled.signal("INT");
    let cancelled = cancelled.finish();
    assert_eq!(cancelled.code(), Some(130), "{cancelled}");
    assert!(
        cancelled.stderr.contains("download of teeworlds cancelled"),
        "{cancelled}"
    );

    let other = other.finish();
    assert_eq!(other.code(), Some(0), "the other download goes on: {other}");
    assert!(other.stdout.contains("installed openarena"), "{other}");
    assert_eq!(read_tree(&root.join("games/openarena/local")), sample_tree());
    assert!(!root.join("games/teeworlds/version.ini").exists());
    wait_until("the serve runs nothing", || {
        let status = command(&root, &["status", "--json"]).output().unwrap();
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        status["snapshot"]["active"].as_array().is_some_and(Vec::is_empty)
    });
    let mut serve = serve;
    assert!(serve.child.try_wait().unwrap().is_none(), "the serve still runs");
}
