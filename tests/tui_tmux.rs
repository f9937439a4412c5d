//! End to end in a real terminal: `lanspread demo` in a detached tmux session,
//! keys sent with `send-keys`, the screen read with `capture-pane`. Downloads
//! a game (which installs itself), quits with `q`, and checks the terminal is
//! restored and the demo's files are gone. And quitting the TUI while a
//! streamed install runs ends promptly and leaves nothing half done.
//!
//! Needs tmux (`.ci/run` installs it); without it the test says so and passes,
//! unless `LANSPREAD_REQUIRE_TMUX=1` (set in CI) makes that a failure.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::archives::{sample_tree, write_zip};
use support::process::{Lanspread, free_addr};

const BIN: &str = env!("CARGO_BIN_EXE_lanspread");
/// Bound for each wait on the screen; generous for a loaded 2-core machine.
const SCREEN_WAIT: Duration = Duration::from_secs(90);

struct Session {
    name: String,
}

impl Session {
    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux").args(args).output().expect("tmux runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Polls the screen (bounded) until `done` accepts it.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {SCREEN_WAIT:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).output();
    }
}

fn demo_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("lanspread-demo-"))
        .collect()
}

/// Whether tmux can run; without it a test says so and passes, unless CI requires it.
fn has_tmux(test: &str) -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("LANSPREAD_REQUIRE_TMUX").is_err(),
        "tmux is required (LANSPREAD_REQUIRE_TMUX is set) but not installed"
    );
    eprintln!("SKIPPED {test}: tmux is not installed");
    false
}

/// Starts `command` in a detached 100x30 tmux session; the shell keeps the pane open after
/// it exits, so its exit status and the restored screen can be read.
fn start_session(name: &str, command: &str) -> Session {
    start_sized_session(name, command, (100, 30))
}

fn start_sized_session(name: &str, command: &str, (width, height): (u16, u16)) -> Session {
    let session = Session { name: name.to_owned() };
    let shell = format!("{command}; echo EXITED:$?; sleep 600");
    let (width, height) = (width.to_string(), height.to_string());
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", name, "-x", &width, "-y", &height, &shell])
        .status()
        .unwrap();
    assert!(started.success());
    session
}

#[test]
fn quitting_the_tui_during_a_streamed_install_ends_promptly_and_leaves_nothing_half_done() {
    if !has_tmux("quitting_the_tui_during_a_streamed_install_ends_promptly_and_leaves_nothing_half_done") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed_root = dir.path().join("seed");
    let game = support::write_game(&seed_root.join("games"), "openarena", "20240301", &[]);
    let mut tree = sample_tree();
    tree.insert("big.bin".into(), Some(support::pseudo_random_bytes(51, 24_000_000)));
    write_zip(&game.join("game.zip"), &tree);
    let seed_addr = free_addr();
    // 2 MB/s: the streamed install takes about 12 s, so the quit lands in the middle of it.
    let mut seed = Lanspread::serve(&seed_root, seed_addr, &[], &["--upload-limit", "2"]);
    seed.wait_for_line(&["hashed 1 game(s)"]); // announced once hashed

    let client = dir.path().join("client");
    let session = start_session(
        &format!("lanspread-quit-{}", std::process::id()),
        &format!(
            "env TERM=xterm-256color {BIN} --no-mdns --peer {seed_addr} --game-dir {} --state-dir {}",
            client.join("games").display(),
            client.join("state").display()
        ),
    );
    session.wait_for("the seed's game", |screen| screen.contains("OpenArena"));
    session.keys(&["s"]);
    session.wait_for("the streamed install running", |screen| {
        screen.contains("stream-installing")
    });
    let staging = client.join("games/openarena/.local.installing");
    let deadline = Instant::now() + SCREEN_WAIT;
    while !staging.join("big.bin").exists() {
        assert!(Instant::now() < deadline, "no bytes arrived in staging");
        std::thread::sleep(Duration::from_millis(20));
    }

    // `q` asks while something runs; `y` confirms.
    session.keys(&["q"]);
    session.wait_for("the quit dialog", |screen| screen.contains("Quit lanspread?"));
    let quit = Instant::now();
    session.keys(&["y"]);
    let screen = session.wait_for("the TUI to exit", |screen| screen.contains("EXITED:"));
    eprintln!(
        "the TUI exited {:?} after the quit was confirmed, mid-install",
        quit.elapsed()
    );
    assert!(screen.contains("EXITED:0"), "{screen}");
    assert!(!staging.exists(), "the cancelled install's staging was rolled back");
    assert!(!client.join("games/openarena/local").exists());
    assert!(
        !client.join("state/games/openarena/install_intent.json").exists(),
        "no journal left"
    );
}

/// The first screen line containing `needle` (the Library row, for a game name).
fn row_of(screen: &str, needle: &str) -> String {
    screen
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_default()
        .to_owned()
}

/// The percentage in a Library row that says `downloading 42%`.
fn downloading_percent(row: &str) -> Option<u32> {
    let rest = &row[row.find("downloading ")? + "downloading ".len()..];
    rest[..rest.find('%')?].parse().ok()
}

#[test]
fn demo_downloads_installs_and_quits_cleanly_in_tmux() {
    if !has_tmux("demo_downloads_installs_and_quits_cleanly_in_tmux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let session = start_session(
        &format!("lanspread-test-{}", std::process::id()),
        &format!("env TMPDIR={} TERM=xterm-256color {BIN} demo", tmp.display(),),
    );

    session.wait_for("library with the demo games and 3 peers", |screen| {
        screen.contains("OpenArena") && screen.contains("Peers 3")
    });
    let dirs = demo_dirs(&tmp);
    assert_eq!(
        dirs.len(),
        2,
        "the demo works in one temp dir and logs to another: {dirs:?}"
    );
    let log_dir = dirs.iter().find(|dir| dir.starts_with("lanspread-demo-logs-"));
    let log_dir = log_dir.unwrap_or_else(|| panic!("no log dir in {dirs:?}"));
    let logs = std::fs::read_dir(tmp.join(log_dir)).unwrap().count();
    assert!(logs > 0, "the demo logs to its temp log dir");

    // OpenArena is the first row (sorted by name). Enter shows its details: the catalog's
    // description, who has it, its sizes and where it would go.
    session.keys(&["Enter"]);
    let details = session.wait_for("the details of OpenArena", |screen| {
        screen.contains("OpenArena (openarena)") && screen.contains("Esc close")
    });
    assert!(details.contains("About       Free arena shooter"), "{details}");
    assert!(details.contains("Install     not installed; it goes into"), "{details}");
    session.keys(&["Escape"]);
    session.wait_for("the details closed", |screen| !screen.contains("Esc close"));

    // `d` downloads it, then it installs itself.
    session.keys(&["d"]);
    session.wait_for("the install in the log pane", |screen| {
        screen.contains("installed OpenArena")
    });
    let screen = session.wait_for("OpenArena shown as installed", |screen| {
        screen
            .lines()
            .any(|line| line.contains("OpenArena") && line.contains("installed"))
    });
    assert!(screen.contains("downloaded OpenArena 20240301"), "{screen}");

    // The queue: two downloads run at once, so the third asked for waits in line and
    // starts when one of the first two ends. All three keys land before any answer does.
    session.keys(&["j", "d", "j", "d", "j", "d"]);
    session.wait_for("the third download queued", |screen| {
        screen.contains("Xonotic queued, 1st in line")
    });
    session.wait_for("every queued game downloaded and installed", |screen| {
        ["OpenTTD", "Teeworlds", "Xonotic"]
            .iter()
            .all(|name| row_of(screen, name).contains("installed"))
    });
    // Xonotic started only once one of the other two had finished (the log file has every
    // line; the pane only the last few). The log writer works in the background: bounded wait.
    let log = tmp.join(log_dir);
    let read_order = || {
        let text: String = std::fs::read_dir(&log)
            .unwrap()
            .flatten()
            .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
            .collect();
        let started = text.find("Xonotic: asking peers for the file list")?;
        let first_done = ["downloaded OpenTTD", "downloaded Teeworlds"]
            .iter()
            .filter_map(|line| text.find(line))
            .min()?;
        Some((first_done, started))
    };
    let mut order = None;
    for _ in 0..100 {
        order = read_order();
        if order.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (first_done, started) = order.expect("the log file records the downloads");
    assert!(
        first_done < started,
        "the queued download started before a slot was free"
    );

    session.keys(&["q"]);
    let screen = session.wait_for("the demo to exit", |screen| screen.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    assert_eq!(
        session
            .tmux(&["display", "-p", "-t", &session.name, "#{alternate_on}"])
            .trim(),
        "0"
    );
    assert!(!screen.contains("Library"), "the TUI's screen is gone:\n{screen}");
    assert_eq!(demo_dirs(&tmp), Vec::<String>::new(), "the demo removed its files");
}

#[test]
fn with_no_color_the_selected_row_is_reversed_whole_and_the_focused_pane_stands_out() {
    if !has_tmux("with_no_color_the_selected_row_is_reversed_whole_and_the_focused_pane_stands_out") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let session = start_sized_session(
        &format!("lanspread-nocolor-{}", std::process::id()),
        &format!(
            "env TMPDIR={} TERM=xterm-256color NO_COLOR=1 {BIN} demo --log-dir {}",
            tmp.display(),
            dir.path().join("logs").display()
        ),
        (80, 24),
    );
    session.wait_for("library with the demo games and 3 peers", |screen| {
        screen.contains("OpenArena") && screen.contains("Peers 3")
    });
    // With the escape sequences tmux keeps for each cell: what the terminal shows.
    let styled = session.tmux(&["capture-pane", "-e", "-p", "-t", &session.name]);
    let row = styled
        .lines()
        .find(|line| line.contains("> OpenArena"))
        .unwrap_or_else(|| panic!("no selected row:\n{styled}"));
    let reversed = row
        .find("\x1b[7m")
        .unwrap_or_else(|| panic!("the selected row is not reversed: {row:?}"));
    let marker = row.find("> OpenArena").unwrap();
    assert!(reversed < marker, "reverse video starts before the marker: {row:?}");
    // Until the pane's right border, nothing turns the reverse video off.
    let border = row.rfind(['║', '│']).unwrap();
    let inside = &row[reversed..border];
    for off in ["\x1b[0m", "\x1b[m", "\x1b[27m"] {
        assert!(!inside.contains(off), "reverse video ends part way ({off:?}): {row:?}");
    }
    // tmux writes `39`/`49` (default colours) with its resets; any other colour is ours.
    for sequence in styled.split("\x1b[").skip(1) {
        let Some(end) = sequence.find('m') else { continue };
        for code in sequence[..end].split(';').filter_map(|code| code.parse::<u32>().ok()) {
            let colour = (30..=38).contains(&code) || (40..=48).contains(&code) || (90..=107).contains(&code);
            assert!(!colour, "a colour is shown ({code}):\n{styled}");
        }
    }
    let screen = session.screen();
    assert!(screen.lines().next().unwrap().starts_with("╔ Library"), "{screen}");
    session.keys(&["q"]);
    let screen = session.wait_for("the demo to exit", |screen| screen.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
}

#[test]
fn a_killed_seed_shows_as_silent_then_left_with_its_game_kept_and_an_unreachable_peer_is_listed() {
    if !has_tmux("a_killed_seed_shows_as_silent_then_left_with_its_game_kept_and_an_unreachable_peer_is_listed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed_root = dir.path().join("seed");
    support::write_game(
        &seed_root.join("games"),
        "openarena",
        "20240301",
        &[("oa.zip", support::pseudo_random_bytes(71, 24_000_000))],
    );
    let seed_addr = free_addr();
    // 2 MB/s: the download is still running when the seed is killed.
    let mut seed = Lanspread::serve(
        &seed_root,
        seed_addr,
        &[],
        &["--upload-limit", "2", "--name", "seedbox"],
    );
    seed.wait_for_line(&["hashed 1 game(s)"]);
    // Nobody listens here (the port was free a moment ago).
    let nobody = free_addr();

    let client = dir.path().join("client");
    let session = start_sized_session(
        &format!("lanspread-dead-{}", std::process::id()),
        &format!(
            "env TERM=xterm-256color {BIN} --no-mdns --peer {seed_addr} --peer {nobody} --game-dir {} --state-dir {}",
            client.join("games").display(),
            client.join("state").display()
        ),
        (80, 24),
    );
    session.wait_for("the seed's game", |screen| screen.contains("OpenArena"));
    // The configured peer nobody answers for is listed, with why, after its ping times out.
    session.wait_for("the unreachable configured peer", |screen| {
        row_of(screen, &nobody.to_string()).contains("no answer")
    });
    session.keys(&["d"]);
    session.wait_for("the download running", |screen| screen.contains("downloading"));

    seed.signal("KILL");
    let screen = session.wait_for("the killed seed shown as not answering", |screen| {
        row_of(screen, "seedbox").contains("silent")
    });
    eprintln!("{screen}");
    // Its download fails, and keeps what it verified: the row says so, and why it cannot resume now.
    let screen = session.wait_for("the seed listed as left, its game kept and marked", |screen| {
        row_of(screen, "seedbox").contains("left") && row_of(screen, "OpenArena").contains("seedbox left")
    });
    eprintln!("{screen}");
    // The failure, cut on the status line, is read whole in the game's details.
    session.keys(&["Enter"]);
    let screen = session.wait_for("the details with the last error", |screen| {
        screen.contains("Last error")
    });
    // The last fact: its rows run to the popup's bottom border, wrapped, never cut.
    let error: Vec<&str> = screen
        .lines()
        .skip_while(|line| !line.contains("Last error"))
        .take_while(|line| !line.contains("Esc close"))
        .collect();
    assert!(error[0].contains("failed: every peer failed"), "{screen}");
    assert!(error.iter().all(|line| !line.contains('…')), "cut: {screen}");
    assert!(
        error.last().unwrap().contains(')'),
        "the reason's end is shown: {screen}"
    );
    // Esc alone: an Esc and a key sent together read as Alt and the key.
    session.keys(&["Escape"]);
    session.wait_for("the details closed", |screen| !screen.contains("Esc close"));
    session.keys(&["q"]);
    let screen = session.wait_for("the TUI to exit", |screen| screen.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
}

#[test]
fn the_queue_and_a_paused_download_survive_a_restart() {
    if !has_tmux("the_queue_and_a_paused_download_survive_a_restart") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed_root = dir.path().join("seed");
    for (id, seed) in [("openarena", 81), ("xonotic", 82)] {
        let root = support::write_game(&seed_root.join("games"), id, "1.0", &[]);
        let tree = [(
            "data.bin".to_owned(),
            Some(support::pseudo_random_bytes(seed, 16_000_000)),
        )];
        write_zip(&root.join("game.zip"), &tree.into_iter().collect());
    }
    let seed_addr = free_addr();
    // 2 MB/s: the first download still runs when the TUI quits.
    let mut seed = Lanspread::serve(&seed_root, seed_addr, &[], &["--upload-limit", "2"]);
    seed.wait_for_line(&["hashed 2 game(s)"]);
    let client = dir.path().join("client");
    let tui = format!(
        "env TERM=xterm-256color {BIN} --no-mdns --peer {seed_addr} --downloads-at-once 1 --game-dir {} --state-dir {}",
        client.join("games").display(),
        client.join("state").display()
    );

    let session = start_sized_session(&format!("lanspread-queue-{}", std::process::id()), &tui, (80, 24));
    session.wait_for("both games", |screen| {
        screen.contains("OpenArena") && screen.contains("Xonotic")
    });
    // OpenArena downloads, Xonotic waits; the user pauses OpenArena, then quits.
    session.keys(&["d", "j", "d"]);
    session.wait_for("Xonotic queued", |screen| {
        row_of(screen, "Xonotic").contains("queued, 1st in line")
    });
    session.keys(&["k"]);
    session.wait_for("OpenArena a fifth downloaded", |screen| {
        downloading_percent(&row_of(screen, "OpenArena")).is_some_and(|percent| percent >= 20)
    });
    session.keys(&["p"]);
    let screen = session.wait_for("OpenArena paused, its slot given to Xonotic", |screen| {
        row_of(screen, "OpenArena").contains("paused") && row_of(screen, "Xonotic").contains("downloading")
    });
    assert!(screen.contains("paused the download of OpenArena"), "{screen}");
    // Quit once Xonotic has some verified blocks to keep (a fifth of it: several blocks).
    session.wait_for("Xonotic a fifth downloaded", |screen| {
        downloading_percent(&row_of(screen, "Xonotic")).is_some_and(|percent| percent >= 20)
    });
    session.keys(&["q"]);
    session.wait_for("the quit question", |screen| screen.contains("Quit lanspread?"));
    session.keys(&["y"]);
    let screen = session.wait_for("the TUI to exit", |screen| screen.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    drop(session);

    let kept = std::fs::read_to_string(client.join("state/tui-queue.json")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(
        kept["downloads"],
        serde_json::json!([{"id": "xonotic", "paused": false}, {"id": "openarena", "paused": true}]),
        "the running download first, then the paused one"
    );

    // The next start resumes Xonotic (it kept what it fetched) and keeps OpenArena paused.
    let session = start_sized_session(&format!("lanspread-queue2-{}", std::process::id()), &tui, (80, 24));
    let screen = session.wait_for("Xonotic resumed and OpenArena still paused", |screen| {
        row_of(screen, "Xonotic").contains("downloading") && row_of(screen, "OpenArena").contains("paused")
    });
    assert!(row_of(&screen, "OpenArena").contains("p resumes"), "{screen}");
    session.keys(&["p"]);
    session.wait_for("both downloaded and installed", |screen| {
        row_of(screen, "OpenArena").contains("installed") && row_of(screen, "Xonotic").contains("installed")
    });
    session.keys(&["q"]);
    let screen = session.wait_for("the TUI to exit", |screen| screen.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");
    let kept = std::fs::read_to_string(client.join("state/tui-queue.json")).unwrap();
    assert!(kept.contains("\"downloads\": []"), "nothing left to resume: {kept}");
    // Both resumed from what they had verified: the quit paused Xonotic, `p` OpenArena.
    let logs: String = std::fs::read_dir(client.join("state/logs"))
        .unwrap()
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    for name in ["Xonotic", "OpenArena"] {
        let finished = logs
            .lines()
            .find(|line| line.contains(&format!("downloaded {name} 1.0:")))
            .unwrap_or_else(|| panic!("no finished download of {name} in the log:\n{logs}"));
        assert!(finished.contains(" reused)"), "{name} started over: {finished}");
    }
}

#[test]
fn a_tui_attaches_to_a_running_serve_shows_what_it_does_and_q_leaves_it_running() {
    if !has_tmux("a_tui_attaches_to_a_running_serve_shows_what_it_does_and_q_leaves_it_running") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (seed_root, root) = (dir.path().join("seed"), dir.path().join("box"));
    support::write_game(
        &seed_root.join("games"),
        "openarena",
        "20240301",
        &[("oa.zip", support::pseudo_random_bytes(72, 24_000_000))],
    );
    let seed_addr = free_addr();
    // 2 MB/s: the download still runs when the TUI detaches.
    let mut seed = Lanspread::serve(
        &seed_root,
        seed_addr,
        &[],
        &["--upload-limit", "2", "--name", "seedbox"],
    );
    seed.wait_for_line(&["hashed 1 game(s)"]);
    let mut service = Lanspread::serve(&root, free_addr(), &[seed_addr], &["--name", "thebox"]);
    service.wait_for_line(&["library: openarena"]);

    let session = start_sized_session(
        &format!("lanspread-attached-{}", std::process::id()),
        &format!(
            "env TERM=xterm-256color {BIN} --game-dir {} --state-dir {}",
            root.join("games").display(),
            root.join("state").display()
        ),
        (80, 24),
    );
    let attached = format!("attached to serve, pid {}", service.pid());
    session.wait_for(
        "the status bar saying it is attached, the serve's library and peer",
        |screen| screen.contains(&attached) && screen.contains("OpenArena") && screen.contains("seedbox"),
    );
    session.keys(&["d"]);
    session.wait_for("the serve's download shown", |screen| screen.contains("downloading"));
    session.keys(&["q"]);
    let screen = session.wait_for("the TUI to exit", |screen| screen.contains("EXITED:"));
    assert!(screen.contains("EXITED:0"), "{screen}");

    // Detaching stopped nothing: the serve runs, and so does its download.
    assert!(service.child.try_wait().unwrap().is_none(), "the serve still runs");
    let status = support::process::command(&root, &["status", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let downloading = status["snapshot"]["active"]
        .as_array()
        .unwrap()
        .iter()
        .any(|operation| operation["id"] == "openarena" && operation["kind"] == "Download");
    let downloaded = root.join("games/openarena/version.ini").exists();
    assert!(downloading || downloaded, "the download goes on: {status}");
}
