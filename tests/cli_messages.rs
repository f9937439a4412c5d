//! What the command line says, as real processes: errors name their path and cause once,
//! colour codes only reach a terminal, the TUI refuses a pipe, each command's help has its
//! own text and only the flags it uses, and the completions and man page come from the
//! same definitions.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::process::{BIN, as_unprivileged};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `lanspread ARGS` isolated from the user's config file and log filter.
fn lanspread(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    command
}

fn run(home: &Path, args: &[&str]) -> Output {
    lanspread(home, args).output().unwrap()
}

#[test]
fn a_missing_file_is_named_with_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let out = run(
        dir.path(),
        &["list", "--no-mdns", "--config", missing.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "lanspread: cannot read config file {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_file_where_the_game_dir_or_state_dir_should_be_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let afile = dir.path().join("afile");
    std::fs::write(&afile, b"not a folder").unwrap();
    let state = dir.path().join("state");
    let (afile_arg, state_arg) = (afile.to_str().unwrap(), state.to_str().unwrap());

    let out = run(
        dir.path(),
        &[
            "install",
            "openarena",
            "--game-dir",
            afile_arg,
            "--state-dir",
            state_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "lanspread: cannot make the game-dir {0}: {0} is not a folder; pass --game-dir a folder (it is created if missing)",
            afile.display()
        )
    );

    // The state dir is where the logs go, so it is the first thing made.
    let games = dir.path().join("games");
    let out = run(
        dir.path(),
        &[
            "install",
            "openarena",
            "--game-dir",
            games.to_str().unwrap(),
            "--state-dir",
            afile_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "lanspread: cannot set up logging in {}: {} is not a folder",
            afile.join("logs").display(),
            afile.display()
        )
    );
    assert_eq!(
        std::fs::read(&afile).unwrap(),
        b"not a folder",
        "the file is left alone"
    );
    assert!(!games.exists(), "nothing is made after the refusal");
}

#[test]
fn a_permission_error_names_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let open = |path: &Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    // `nobody` must be able to reach the binary: a copy in a folder anyone may enter.
    open(dir.path(), 0o755);
    let bin = dir.path().join("lanspread");
    std::fs::copy(BIN, &bin).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    open(&state, 0o777);
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    open(&locked, 0o555);
    let games = locked.join("games");

    let mut command = Command::new(&bin);
    command
        .args(["install", "openarena", "--game-dir", games.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env_remove("RUST_LOG");
    let out = as_unprivileged(command).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "lanspread: cannot create the game-dir {}: Permission denied (os error 13)",
            games.display()
        )
    );
}

/// `serve` with a game dir it cannot use: it logs its start line, then fails, quickly.
fn serve_that_fails(dir: &Path) -> Vec<String> {
    let afile = dir.join("afile");
    std::fs::write(&afile, b"").unwrap();
    ["serve", "--no-mdns", "--listen", "127.0.0.1:0", "--game-dir"]
        .into_iter()
        .map(str::to_owned)
        .chain([
            afile.display().to_string(),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
        ])
        .collect()
}

#[test]
fn serve_logs_colour_only_to_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let args = serve_that_fails(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Into a file: plain text.
    let log = dir.path().join("serve.err");
    let status = lanspread(dir.path(), &args)
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains("INFO lanspread::ui::line::serve: starting lanspread serve"),
        "{written}"
    );
    assert!(!written.contains('\x1b'), "colour codes in a file: {written:?}");

    // On a terminal (`script` gives it one): coloured, unless NO_COLOR is set.
    let on_terminal = |no_color: bool| {
        let line = std::iter::once(BIN)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let mut script = Command::new("script");
        script
            .args(["-qec", &line, "/dev/null"])
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        if no_color {
            script.env("NO_COLOR", "1");
        } else {
            script.env_remove("NO_COLOR");
        }
        let out = script.output().unwrap();
        let shown = text(&out.stdout);
        assert!(shown.contains("starting lanspread serve"), "{shown:?}");
        shown
    };
    assert!(on_terminal(false).contains("\x1b["), "no colour on a terminal");
    let plain = on_terminal(true);
    assert!(!plain.contains('\x1b'), "colour despite NO_COLOR: {plain:?}");
}

#[test]
fn the_tui_and_the_demo_refuse_to_start_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (games, state) = (dir.path().join("games"), dir.path().join("state"));
    let tui_args = [
        "--no-mdns",
        "--game-dir",
        games.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    for args in [&tui_args[..], &["demo"][..]] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} wrote to a pipe: {:?}",
            text(&out.stdout)
        );
        let stderr = text(&out.stderr);
        assert!(stderr.contains("needs a terminal"), "{args:?}: {stderr}");
    }
    assert!(!games.exists(), "the refused TUI started no peer");
}

#[test]
fn each_command_has_its_own_help_and_only_the_flags_it_uses() {
    let dir = tempfile::tempdir().unwrap();
    let help = |command: &str| {
        let out = run(dir.path(), &[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        text(&out.stdout)
    };
    let install = help("install");
    assert!(install.starts_with("Unpack a downloaded game's archives"), "{install}");
    assert!(
        install.contains("<ID>\n          The game id (its folder name in the game dir)"),
        "{install}"
    );
    let get = help("get");
    assert!(get.starts_with("Download a game from the peers"), "{get}");
    assert!(
        get.contains("<ID>\n          The game id, as in `lanspread list`"),
        "{get}"
    );
    assert!(get.contains("--upload-limit"), "get shares while it runs:\n{get}");

    // `list` and `verify` share nothing, the local commands do not touch the network.
    for command in ["list", "verify"] {
        let text = help(command);
        assert!(text.contains("--peer"), "{text}");
        assert!(
            !text.contains("--upload-limit") && !text.contains("--upload-slots"),
            "{text}"
        );
    }
    for command in ["install", "uninstall", "remove"] {
        let text = help(command);
        assert!(text.contains("--game-dir"), "{text}");
        for flag in ["--peer", "--listen", "--no-mdns", "--upload-limit", "--name"] {
            assert!(!text.contains(flag), "{command} --help offers {flag}:\n{text}");
        }
    }
    let out = run(dir.path(), &["install", "openarena", "--peer", "127.0.0.1:1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses a flag the command does not take"
    );
    assert!(
        text(&out.stderr).contains("unexpected argument '--peer'"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definitions() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["serve", "verify", "game-dir", "upload-limit"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = run(dir.path(), &["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH lanspread 1"), "{page}");
    for command in ["serve", "list", "install", "get", "verify", "completions"] {
        assert!(
            page.contains(&format!("lanspread\\-{command}(1)")),
            "man page lacks {command}"
        );
    }

    // One page per command, for `man lanspread-serve`.
    let pages = dir.path().join("man1");
    std::fs::create_dir(&pages).unwrap();
    let out = run(dir.path(), &["man", "--out-dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let serve = std::fs::read_to_string(pages.join("lanspread-serve.1")).unwrap();
    assert!(serve.contains("\\-\\-upload\\-limit"), "{serve}");
    let install = std::fs::read_to_string(pages.join("lanspread-install.1")).unwrap();
    assert!(!install.contains("upload"), "{install}");
    assert!(pages.join("lanspread.1").exists());
    assert!(
        !dir.path().join("state").exists(),
        "no state dir made for generated text"
    );
}
