//! The TUI event loop. [`run_tui`] takes the terminal and runs [`run_loop`],
//! which `select!`s terminal input, the runtime's events, a spinner tick (armed
//! only while something animates) and a slow free-space probe. After one event
//! it drains whatever else is pending, then draws once, and only when the
//! `App` says something changed: an idle TUI sleeps.
//!
//! `run_loop` is generic over the backend and the input stream so tests drive
//! it on a `TestBackend` with injected events and a paused clock.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures_util::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::app::{App, Attachment, Level};
use super::input::action_for;
use super::render::render;
use super::terminal::{TerminalGuard, colour_wanted};
use crate::peer::{PeerCommand, PeerEvent, PeerRuntimeHandle};

/// Spinner frame interval, while something without progress samples runs.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the free space of the game dir is read.
pub const FREE_SPACE_INTERVAL: Duration = Duration::from_secs(2);
/// At most this many queued runtime events are folded in before a draw.
const MAX_BATCH: usize = 256;

/// Reads the free bytes of the file system holding a path; `None` when it cannot tell.
/// Runs on a blocking thread (a stalled network file system must not freeze the UI).
pub type FreeSpaceProbe = Arc<dyn Fn(&Path) -> Option<u64> + Send + Sync>;

use super::saved::{SavedQueue, SavedView};
use crate::disk::free_space;

/// What the TUI shows about this box besides the runtime's events.
#[derive(Clone)]
pub struct TuiContext {
    /// The game dir at start (later snapshots carry the current one).
    pub game_dir: PathBuf,
    /// The address the runtime's QUIC endpoint listens on.
    pub listen_addr: SocketAddr,
    /// Where the log files are, shown in the help overlay.
    pub log_dir: Option<PathBuf>,
    /// Where the library's sort and filter, and the download queue, are kept between runs.
    pub state_dir: Option<PathBuf>,
    pub free_space: FreeSpaceProbe,
    /// Downloads run at once; more wait in the queue.
    pub downloads_at_once: usize,
    /// The runtime is another process's, reached on its control socket.
    pub attached: Option<Attachment>,
}

/// The disk work the loop hands to blocking threads: free-space readings of the game dir,
/// and saving the download queue into the state dir (none in tests and the demo).
pub struct LoopDisk {
    pub free_space: FreeSpaceProbe,
    pub state_dir: Option<PathBuf>,
}

impl TuiContext {
    /// A context that reads free space with `statvfs`.
    pub fn new(game_dir: PathBuf, listen_addr: SocketAddr) -> TuiContext {
        TuiContext {
            game_dir,
            listen_addr,
            log_dir: None,
            state_dir: None,
            free_space: Arc::new(free_space),
            downloads_at_once: crate::config::DEFAULT_DOWNLOADS_AT_ONCE,
            attached: None,
        }
    }

    /// The TUI drives the runtime of another process; it keeps nothing in that process's
    /// state dir (the queue and view stay with the runtime's own front end).
    pub fn attached_to(mut self, attached: Attachment) -> TuiContext {
        self.attached = Some(attached);
        self.state_dir = None;
        self
    }

    pub fn with_downloads_at_once(mut self, downloads: usize) -> TuiContext {
        self.downloads_at_once = downloads;
        self
    }

    pub fn with_log_dir(mut self, log_dir: PathBuf) -> TuiContext {
        self.log_dir = Some(log_dir);
        self
    }

    pub fn with_state_dir(mut self, state_dir: PathBuf) -> TuiContext {
        self.state_dir = Some(state_dir);
        self
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuiError {
    #[error("cannot use the terminal: {0} (the TUI needs an interactive terminal; `lanspread serve` runs without one)")]
    Terminal(#[source] io::Error),
    #[error(
        "the terminal UI needs a terminal, and {0} is not one; run it in a terminal, or use `lanspread serve` (no UI) or `lanspread list`/`get`"
    )]
    NotATerminal(&'static str),
    #[error("cannot read terminal input: {0}")]
    Input(#[source] io::Error),
    #[error("cannot draw the screen: {0}")]
    Draw(String),
    #[error("the runtime's events were already taken by another consumer")]
    EventsTaken,
}

/// What one run of the loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopReport {
    /// Frames drawn.
    pub draws: usize,
}

/// Refuses to start the TUI on a pipe or a file: escape codes written there help nobody.
/// Checked before anything starts (a runtime, the demo's seed peers).
pub fn require_terminal() -> Result<(), TuiError> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal("standard output"));
    }
    if !io::stdin().is_terminal() {
        return Err(TuiError::NotATerminal("standard input"));
    }
    Ok(())
}

/// Runs the TUI on a runtime of its own until the user quits, SIGTERM / SIGHUP arrives or
/// input ends. Takes the runtime's event receiver; the caller shuts the runtime down
/// afterwards. The terminal is restored before this returns, whatever happened.
pub async fn run_tui(runtime: &mut PeerRuntimeHandle, context: TuiContext) -> Result<(), TuiError> {
    let events = runtime.take_events().ok_or(TuiError::EventsTaken)?;
    run_tui_on(events, runtime.commands(), context).await
}

/// Runs the TUI on a runtime's channels: its own, or those of one it attached to.
pub async fn run_tui_on(
    events: mpsc::Receiver<PeerEvent>,
    commands: mpsc::Sender<PeerCommand>,
    context: TuiContext,
) -> Result<(), TuiError> {
    // A fresh snapshot, in case the caller consumed the first one before the TUI started.
    let _ = commands.try_send(PeerCommand::ListGames);
    let view = context.state_dir.as_deref().map(SavedView::load).unwrap_or_default();
    let queue = context.state_dir.as_deref().map(SavedQueue::load).unwrap_or_default();
    let mut app = App::new(context.game_dir, context.listen_addr)
        .with_log_dir(context.log_dir)
        .with_attached(context.attached)
        .with_view(view)
        .with_queue(queue.downloads, context.downloads_at_once);
    let env = |name| std::env::var(name).ok();
    app.set_monochrome(!colour_wanted(env("NO_COLOR").as_deref(), env("TERM").as_deref()));
    let mut guard = TerminalGuard::enter().map_err(TuiError::Terminal)?;
    let report = run_loop(
        guard.terminal_mut(),
        &mut app,
        EventStream::new(),
        events,
        commands,
        LoopDisk {
            free_space: context.free_space,
            state_dir: context.state_dir.clone(),
        },
        stop_signal(),
    )
    .await;
    drop(guard);
    if let Some(state_dir) = &context.state_dir {
        // The downloads that run now are in it, at the front: the shutdown pauses them.
        let (view, queue) = (
            app.view(),
            SavedQueue {
                downloads: app.queue_to_keep(),
            },
        );
        let state_dir = state_dir.clone();
        let saved = tokio::task::spawn_blocking(move || (view.save(&state_dir), queue.save(&state_dir))).await;
        if let Ok((view, queue)) = saved {
            if let Err(err) = view {
                tracing::warn!(%err, "cannot keep the library's sort and filter for the next start");
            }
            if let Err(err) = queue {
                tracing::warn!(%err, "cannot keep the download queue for the next start");
            }
        }
    }
    report.map(|_| ())
}

/// SIGTERM or SIGHUP (the SSH session went away): leave like `q` would.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
        (Ok(mut terminate), Ok(mut hangup)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = hangup.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// The event loop proper; returns when the user quits, `stop` completes or `input` ends.
pub async fn run_loop<B, I, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: I,
    mut peer_events: mpsc::Receiver<PeerEvent>,
    commands: mpsc::Sender<PeerCommand>,
    disk: LoopDisk,
    stop: S,
) -> Result<LoopReport, TuiError>
where
    B: Backend,
    B::Error: Display,
    I: Stream<Item = io::Result<Event>> + Unpin,
    S: Future<Output = ()>,
{
    let mut draws = 0;
    let mut logged = app.log_total();
    let mut events_open = true;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut disk_tick = tokio::time::interval(FREE_SPACE_INTERVAL);
    disk_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut probes: JoinSet<Option<u64>> = JoinSet::new();
    // The queue as last written; one write at a time, the next one once it is done.
    let mut kept_queue = app.queue_to_keep();
    let mut saves: JoinSet<io::Result<()>> = JoinSet::new();
    tokio::pin!(stop);
    loop {
        copy_log_to_file(app, &mut logged);
        if let Some(state_dir) = &disk.state_dir {
            let queue = app.queue_to_keep();
            if queue != kept_queue && saves.is_empty() {
                kept_queue = queue.clone();
                let state_dir = state_dir.clone();
                saves.spawn_blocking(move || SavedQueue { downloads: queue }.save(&state_dir));
            }
        }
        if app.should_quit() {
            break;
        }
        if app.take_dirty() {
            let drawn = terminal
                .draw(|frame| render(frame, app))
                .map_err(|err| TuiError::Draw(err.to_string()))?
                .area;
            app.set_screen_size(drawn.width, drawn.height);
            draws += 1;
        }
        tokio::select! {
            () = &mut stop => break,
            event = input.next() => {
                let mut next = event;
                // Handle everything already typed (key repeat, a paste) before drawing.
                loop {
                    match next {
                        None => return Ok(LoopReport { draws }),
                        Some(event) => handle_input(app, event.map_err(TuiError::Input)?, &commands),
                    }
                    // Polled with this task's own waker: crossterm's EventStream remembers only
                    // the first waker it sees while pending, so a throwaway one (`now_or_never`)
                    // would lose the wake-up of the next key.
                    match std::future::poll_fn(|cx| Poll::Ready(input.poll_next_unpin(cx))).await {
                        Poll::Ready(event) => next = event,
                        Poll::Pending => break,
                    }
                }
            }
            event = peer_events.recv(), if events_open => match event {
                Some(event) => {
                    handle_peer_event(app, event, &commands);
                    for _ in 0..MAX_BATCH {
                        let Ok(event) = peer_events.try_recv() else { break };
                        handle_peer_event(app, event, &commands);
                    }
                }
                None => {
                    events_open = false;
                    app.runtime_stopped();
                }
            },
            _ = tick.tick(), if app.is_animating() => app.tick(),
            Some(saved) = saves.join_next(), if !saves.is_empty() => {
                if let Ok(Err(err)) = saved {
                    tracing::warn!(%err, "cannot keep the download queue in the state dir");
                }
            }
            _ = disk_tick.tick(), if probes.is_empty() => {
                let probe = Arc::clone(&disk.free_space);
                let dir = app.game_dir().to_owned();
                probes.spawn_blocking(move || probe(&dir));
            }
            Some(result) = probes.join_next(), if !probes.is_empty() => {
                if let Ok(free) = result {
                    app.set_free_space(free);
                }
            }
        }
    }
    Ok(LoopReport { draws })
}

fn handle_input(app: &mut App, event: Event, commands: &mpsc::Sender<PeerCommand>) {
    match event {
        Event::Key(key) => {
            if let Some(action) = action_for(app.input_mode(), &key) {
                let wanted = app.apply(action);
                send(app, commands, wanted);
            }
        }
        // The next draw picks up the new size; keys before it already see it.
        Event::Resize(width, height) => {
            app.set_screen_size(width, height);
            app.mark_dirty();
        }
        _ => {}
    }
}

fn handle_peer_event(app: &mut App, event: PeerEvent, commands: &mpsc::Sender<PeerCommand>) {
    let wanted = app.update(event);
    send(app, commands, wanted);
}

/// Hands commands to the runtime without waiting: a full queue is reported, never awaited.
fn send(app: &mut App, commands: &mpsc::Sender<PeerCommand>, wanted: Vec<PeerCommand>) {
    for command in wanted {
        match commands.try_send(command) {
            Ok(()) => {}
            Err(TrySendError::Full(command)) => app.command_not_sent(&command, "the runtime is busy"),
            Err(TrySendError::Closed(command)) => app.command_not_sent(&command, "the peer runtime has stopped"),
        }
    }
}

/// The log pane's lines also go to the log file, through tracing.
fn copy_log_to_file(app: &App, logged: &mut u64) {
    for line in app.log_lines_since(*logged) {
        match line.level {
            Level::Info => tracing::info!(target: "lanspread::ui", "{}", line.text),
            Level::Warn => tracing::warn!(target: "lanspread::ui", "{}", line.text),
            Level::Error => tracing::error!(target: "lanspread::ui", "{}", line.text),
        }
    }
    *logged = app.log_total();
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::peer::OperationKind;
    use crate::ui::test_support::*;

    type Input = Pin<Box<dyn Stream<Item = io::Result<Event>> + Send>>;

    /// Everything a test needs to drive [`run_loop`] from outside.
    struct Harness {
        keys: mpsc::UnboundedSender<Event>,
        events: mpsc::Sender<PeerEvent>,
        commands: mpsc::Receiver<PeerCommand>,
    }

    struct Loop {
        terminal: Terminal<TestBackend>,
        app: App,
        input: Input,
        peer_events: mpsc::Receiver<PeerEvent>,
        commands: mpsc::Sender<PeerCommand>,
        probe: FreeSpaceProbe,
    }

    const FREE: u64 = 100 * GIB;

    fn setup(app: App) -> (Loop, Harness) {
        let (keys, key_rx) = mpsc::unbounded_channel();
        let input: Input = Box::pin(futures_util::stream::unfold(key_rx, |mut rx| async move {
            rx.recv().await.map(|event| (Ok(event), rx))
        }));
        let (events, peer_events) = mpsc::channel(1024);
        let (commands, command_rx) = mpsc::channel(16);
        let terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let under_test = Loop {
            terminal,
            app,
            input,
            peer_events,
            commands,
            probe: Arc::new(|_: &Path| Some(FREE)),
        };
        let harness = Harness {
            keys,
            events,
            commands: command_rx,
        };
        (under_test, harness)
    }

    impl Loop {
        async fn run(&mut self) -> LoopReport {
            run_loop(
                &mut self.terminal,
                &mut self.app,
                &mut self.input,
                std::mem::replace(&mut self.peer_events, mpsc::channel(1).1),
                self.commands.clone(),
                LoopDisk {
                    free_space: Arc::clone(&self.probe),
                    state_dir: None,
                },
                std::future::pending(),
            )
            .await
            .unwrap()
        }
    }

    impl Loop {
        /// Runs the loop as its own task, so it is woken only by its own wakers.
        fn spawn(mut self) -> tokio::task::JoinHandle<Loop> {
            tokio::spawn(async move {
                self.run().await;
                self
            })
        }
    }

    fn key(c: char) -> Event {
        Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    #[test]
    fn behind_the_too_small_screen_only_quit_acts() {
        let mut app = app_with_library();
        let (commands, mut sent) = mpsc::channel(16);
        handle_input(&mut app, Event::Resize(60, 20), &commands);
        // Uninstall and its "yes", a download, the help: none of them may act unseen.
        for c in ['x', 'y', 'd', 'j', '?'] {
            handle_input(&mut app, key(c), &commands);
        }
        assert!(sent.try_recv().is_err(), "no command was sent");
        assert!(app.dialog().is_none() && !app.is_help_open() && !app.should_quit());
        handle_input(&mut app, Event::Resize(80, 24), &commands);
        handle_input(&mut app, key('?'), &commands);
        assert!(app.is_help_open(), "at 80x24 keys act again");
        handle_input(&mut app, Event::Resize(79, 24), &commands);
        handle_input(&mut app, key('q'), &commands);
        assert!(app.should_quit(), "q quits from the too-small screen");
    }

    /// An app whose free space already reads what the probe returns, so probing changes nothing.
    fn settled_app() -> App {
        let mut app = app_with_library();
        app.set_free_space(Some(FREE));
        app
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_loop_draws_once_and_then_sleeps() {
        let (mut under_test, harness) = setup(settled_app());
        let drive = async {
            // Ten minutes of fake time with nothing happening: free-space probes run, nothing redraws.
            tokio::time::sleep(Duration::from_secs(600)).await;
            harness.keys.send(key('q')).unwrap();
        };
        let (report, ()) = tokio::join!(under_test.run(), drive);
        assert_eq!(report.draws, 1, "only the first frame");
        assert!(under_test.app.should_quit());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_is_drawn_once() {
        let (mut under_test, harness) = setup(settled_app());
        for port in 100..150 {
            harness
                .events
                .send(PeerEvent::PeerJoined {
                    addr: addr(port),
                    peer_id: format!("p{port}"),
                    name: format!("peer{port}"),
                })
                .await
                .unwrap();
        }
        let drive = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            harness.keys.send(key('q')).unwrap();
        };
        let (report, ()) = tokio::join!(under_test.run(), drive);
        assert_eq!(under_test.app.peer_count(), 52);
        assert_eq!(report.draws, 2, "the first frame, then one for the whole burst");
    }

    #[tokio::test(start_paused = true)]
    async fn the_spinner_ticks_only_while_an_operation_without_progress_runs() {
        let (mut under_test, harness) = setup(settled_app());
        harness
            .events
            .send(active("openarena", OperationKind::Uninstall))
            .await
            .unwrap();
        let drive = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            harness
                .events
                .send(PeerEvent::ActiveOperations(Vec::new()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(600)).await;
            harness.keys.send(key('q')).unwrap();
        };
        let (report, ()) = tokio::join!(under_test.run(), drive);
        // 10 s of spinner at 4 frames a second, and nothing over the 600 s after it.
        assert!(report.draws > 10, "the spinner moved: {}", report.draws);
        assert!(report.draws < 100, "it stopped with the operation: {}", report.draws);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_and_events_drive_the_download_flow_through_the_loop() {
        let (mut under_test, mut harness) = setup(settled_app());
        select(&mut under_test.app, "Xonotic");
        let drive = async {
            harness.keys.send(key('d')).unwrap();
            let command = harness.commands.recv().await.unwrap();
            assert!(
                matches!(&command, PeerCommand::GetGame { id } if id == "xonotic"),
                "{command:?}"
            );
            harness
                .events
                .send(PeerEvent::GotGameFiles {
                    id: "xonotic".into(),
                    version: "0.8.6".into(),
                    files: files(),
                    peers: vec![addr(1), addr(2)],
                })
                .await
                .unwrap();
            let command = harness.commands.recv().await.unwrap();
            assert!(matches!(&command, PeerCommand::DownloadGameFiles { id, .. } if id == "xonotic"));
            harness.keys.send(key('q')).unwrap();
        };
        let (_, ()) = tokio::join!(under_test.run(), drive);
        assert!(under_test.app.should_quit());
    }

    /// Terminal input that, like crossterm's `EventStream`, remembers only the
    /// first waker it is polled with while pending, until that waker fires.
    #[derive(Clone, Default)]
    struct Keyboard(Arc<std::sync::Mutex<(std::collections::VecDeque<Event>, Option<std::task::Waker>)>>);

    impl Keyboard {
        fn press(&self, event: Event) {
            let mut state = self.0.lock().unwrap();
            state.0.push_back(event);
            if let Some(waker) = state.1.take() {
                waker.wake();
            }
        }
    }

    impl Stream for Keyboard {
        type Item = io::Result<Event>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Self::Item>> {
            let mut state = self.0.lock().unwrap();
            if let Some(event) = state.0.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if state.1.is_none() {
                state.1 = Some(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_key_wakes_the_loop_with_input_that_keeps_one_waker() {
        let (mut under_test, mut harness) = setup(settled_app());
        let keyboard = Keyboard::default();
        under_test.input = Box::pin(keyboard.clone());
        select(&mut under_test.app, "Xonotic");
        let probed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&probed);
        under_test.probe = Arc::new(move |_: &Path| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Some(FREE)
        });
        let running = under_test.spawn();
        // Nothing else may wake the loop later: let the first free-space probe come back first.
        while !probed.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        let settle = || async {
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        };
        settle().await;
        keyboard.press(Event::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
        // The loop handles Esc and goes back to waiting for input.
        settle().await;
        keyboard.press(key('d'));
        // On the paused clock this fires before any timer of the loop (the free-space
        // probe, 2 s): the key alone must wake the loop.
        let command = tokio::time::timeout(Duration::from_millis(1), harness.commands.recv()).await;
        assert!(
            matches!(&command, Ok(Some(PeerCommand::GetGame { id })) if id == "xonotic"),
            "the key was not seen: {command:?}"
        );
        // The file list request is still open, so quitting asks first.
        keyboard.press(key('q'));
        keyboard.press(key('y'));
        let under_test = running.await.unwrap();
        assert!(under_test.app.should_quit());
    }

    #[tokio::test(start_paused = true)]
    async fn resizing_the_terminal_redraws_at_the_new_size() {
        let (mut under_test, harness) = setup(settled_app());
        under_test.terminal.backend_mut().resize(120, 40);
        let drive = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            harness.keys.send(Event::Resize(120, 40)).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            harness.keys.send(key('q')).unwrap();
        };
        let (report, ()) = tokio::join!(under_test.run(), drive);
        assert_eq!(report.draws, 2);
        assert_eq!(under_test.terminal.backend().buffer().area.width, 120);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_runtime_is_reported_and_q_still_quits() {
        let (mut under_test, harness) = setup(settled_app());
        let Harness { keys, events, .. } = harness;
        drop(events);
        let drive = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            keys.send(key('q')).unwrap();
        };
        let (_, ()) = tokio::join!(under_test.run(), drive);
        assert!(under_test.app.should_quit());
        let last = &under_test.app.log_lines().back().unwrap().text;
        assert!(last.starts_with("the peer runtime stopped"), "{last}");
        // The last frame, drawn before q, had it in the status line.
        let screen = screen(under_test.terminal.backend().buffer());
        assert!(screen.iter().any(|row| row.contains("the peer runtime stopped")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_ends_when_input_ends() {
        let (mut under_test, harness) = setup(settled_app());
        drop(harness.keys);
        let report = under_test.run().await;
        assert_eq!(report.draws, 1);
        assert!(!under_test.app.should_quit());
    }
}
