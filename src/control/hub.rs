//! Serving front ends on the control socket. The hub sits between the runtime's event
//! channel and the front end that started the runtime: every event goes on to that front
//! end as before, and to each attached front end, which first gets a welcome and a
//! snapshot. An attached front end's commands go to the runtime's command channel.
//!
//! A slow front end never slows the runtime: each has a bounded buffer of frames, the hub
//! never waits for it, and one whose buffer is full misses events until it drains and is
//! then sent a fresh snapshot instead (a resync). One that takes no frame for
//! [`WRITE_DEADLINE`] is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::socket::ControlSocket;
pub use super::wire::Identity;
use super::wire::{self, FromRuntime, Snapshot, ToRuntime};
use crate::peer::{PeerCommand, PeerEvent};
use crate::proto::FrameError;

/// Frames buffered for one front end before it misses events and is resynced.
const CLIENT_BUFFER: usize = 256;
/// Front ends attached at once; more are refused.
const MAX_CLIENTS: usize = 16;
/// How long a front end has for its hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);
/// How long the hub waits after a failed accept before it accepts again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a front end may take to read one frame before it is dropped.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// An encoded frame, shared by every front end it goes to.
type Frame = Arc<[u8]>;

/// One attached front end, as the hub sees it.
struct Client {
    frames: mpsc::Sender<Frame>,
    /// Its buffer was full: it has missed events and gets a snapshot once there is room.
    behind: bool,
}

/// Runs the hub until the runtime's events end (the runtime stopped); the socket file is
/// removed then. `front` is the event channel of the front end that started the runtime.
pub async fn run(
    socket: Option<ControlSocket>,
    identity: Identity,
    mut events: mpsc::Receiver<PeerEvent>,
    front: mpsc::Sender<PeerEvent>,
    commands: mpsc::Sender<PeerCommand>,
) {
    let listener = socket.as_ref().and_then(|socket| {
        match socket
            .listener
            .try_clone()
            .and_then(|std| std.set_nonblocking(true).map(|()| std))
            .and_then(UnixListener::from_std)
        {
            Ok(listener) => Some(listener),
            Err(err) => {
                tracing::error!("control socket: cannot listen: {err}; front ends cannot attach");
                None
            }
        }
    });
    let mut state = Snapshot::default();
    let mut clients: Vec<Client> = Vec::new();
    let mut sessions = JoinSet::new();
    let mut front = Some(front);
    loop {
        tokio::select! {
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(stream) => {
                    clients.retain(|client| !client.frames.is_closed());
                    if clients.len() >= MAX_CLIENTS {
                        sessions.spawn(refuse(stream, format!("{MAX_CLIENTS} front ends are attached already")));
                        continue;
                    }
                    let (frames, outgoing) = mpsc::channel(CLIENT_BUFFER);
                    // The snapshot goes first: the events after it follow in order.
                    if let Some(snapshot) = snapshot_frame(&state) {
                        let _ = frames.try_send(snapshot);
                    }
                    clients.push(Client { frames, behind: false });
                    sessions.spawn(session(stream, outgoing, commands.clone(), identity.clone()));
                }
                Err(err) => {
                    // E.g. out of file descriptors: wait a little rather than spin on it.
                    tracing::warn!("control socket: accept failed: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            event = events.recv() => {
                let Some(event) = event else { break };
                state.apply(&event);
                broadcast(&mut clients, &event, &state);
                if let Some(sender) = &front
                    && sender.send(event).await.is_err()
                {
                    // The front end that started the runtime is gone; attached ones stay.
                    front = None;
                }
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    // Dropping the senders ends each session once it has written what it was sent.
    drop(clients);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    drop(socket);
}

async fn accept(listener: Option<&UnixListener>) -> std::io::Result<UnixStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Sends `event` to every front end, and a snapshot instead to those that fell behind and
/// have room again.
fn broadcast(clients: &mut Vec<Client>, event: &PeerEvent, state: &Snapshot) {
    clients.retain(|client| !client.frames.is_closed());
    if clients.is_empty() {
        return;
    }
    let frame: Option<Frame> = encode(&FromRuntime::Event(Box::new(event.clone())));
    let mut snapshot: Option<Option<Frame>> = None;
    for client in clients.iter_mut() {
        if client.behind {
            if client.frames.capacity() > 0 {
                let snapshot = snapshot.get_or_insert_with(|| snapshot_frame(state));
                if let Some(snapshot) = snapshot
                    && client.frames.try_send(snapshot.clone()).is_ok()
                {
                    client.behind = false;
                }
            }
            continue;
        }
        if let Some(frame) = &frame
            && client.frames.try_send(frame.clone()).is_err()
        {
            client.behind = true;
        }
    }
}

fn snapshot_frame(state: &Snapshot) -> Option<Frame> {
    let mut snapshot = state.clone();
    snapshot.log = crate::logging::recent_lines();
    encode(&FromRuntime::Snapshot(Box::new(snapshot)))
}

fn encode(message: &FromRuntime) -> Option<Frame> {
    match wire::encode(message) {
        Ok(frame) => Some(frame.into()),
        // Front ends miss what does not fit a frame (e.g. the file list of a game of a
        // million files); the runtime goes on.
        Err(err) => {
            tracing::warn!("control socket: a message was not sent to front ends: {err}");
            None
        }
    }
}

/// One front end: its hello, then the frames the hub sends it, and its commands.
async fn session(
    stream: UnixStream,
    mut outgoing: mpsc::Receiver<Frame>,
    commands: mpsc::Sender<PeerCommand>,
    identity: Identity,
) {
    let (mut reader, mut writer) = stream.into_split();
    let answer = match tokio::time::timeout(HELLO_DEADLINE, wire::receive::<_, ToRuntime>(&mut reader)).await {
        Ok(Ok(first)) => wire::welcome(&first, &identity),
        Ok(Err(err)) => FromRuntime::Refused {
            reason: not_a_message(&err),
        },
        Err(_) => FromRuntime::Refused {
            reason: format!("no hello within {HELLO_DEADLINE:?}"),
        },
    };
    let refused = matches!(answer, FromRuntime::Refused { .. });
    if let FromRuntime::Refused { reason } = &answer {
        tracing::info!("control socket: a front end was refused: {reason}");
    }
    if wire::send(&mut writer, &answer).await.is_err() || refused {
        return;
    }
    let mut listening = tokio::spawn(forward_commands(reader, commands));
    loop {
        tokio::select! {
            ended = &mut listening => {
                if let Ok(Some(reason)) = ended {
                    tracing::info!("control socket: a front end was dropped: {reason}");
                    let _ = wire::send(&mut writer, &FromRuntime::Refused { reason }).await;
                }
                return;
            }
            frame = outgoing.recv() => {
                let Some(frame) = frame else { break };
                match tokio::time::timeout(WRITE_DEADLINE, writer.write_all(&frame)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::warn!("control socket: a front end read nothing for {WRITE_DEADLINE:?}; dropped");
                        break;
                    }
                }
            }
        }
    }
    listening.abort();
}

/// Passes a front end's commands to the runtime until it closes (`None`) or sends what is
/// not a command (the reason).
async fn forward_commands(
    mut reader: tokio::net::unix::OwnedReadHalf,
    commands: mpsc::Sender<PeerCommand>,
) -> Option<String> {
    loop {
        match wire::receive::<_, ToRuntime>(&mut reader).await {
            Ok(ToRuntime::Command(command)) => {
                if commands.send(command).await.is_err() {
                    return None;
                }
            }
            Ok(ToRuntime::Hello { .. }) => return Some("a session says hello once".to_owned()),
            Err(FrameError::Truncated) => return None,
            Err(err) => return Some(not_a_message(&err)),
        }
    }
}

fn not_a_message(err: &FrameError) -> String {
    format!("not a control message: {err}")
}

/// Tells a front end beyond the limit why it is refused.
async fn refuse(stream: UnixStream, reason: String) {
    let (_, mut writer) = stream.into_split();
    let _ = tokio::time::timeout(
        WRITE_DEADLINE,
        wire::send(&mut writer, &FromRuntime::Refused { reason }),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::control::socket::{bind, socket_path};
    use crate::control::wire::CONTROL_VERSION;

    struct Hub {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        events: mpsc::Sender<PeerEvent>,
        front: mpsc::Receiver<PeerEvent>,
        commands: mpsc::Receiver<PeerCommand>,
    }

    fn start_hub() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let socket = bind(dir.path()).unwrap();
        let (events, events_rx) = mpsc::channel(16);
        let (front_tx, front) = mpsc::channel(16);
        let (commands_tx, commands) = mpsc::channel(16);
        let identity = Identity {
            pid: 4242,
            runtime: "serve".into(),
            listen: "127.0.0.1:47474".parse().unwrap(),
        };
        tokio::spawn(run(Some(socket), identity, events_rx, front_tx, commands_tx));
        Hub {
            path: socket_path(dir.path()),
            _dir: dir,
            events,
            front,
            commands,
        }
    }

    async fn hello(path: &std::path::Path) -> UnixStream {
        let mut stream = UnixStream::connect(path).await.unwrap();
        wire::send(
            &mut stream,
            &ToRuntime::Hello {
                version: CONTROL_VERSION,
            },
        )
        .await
        .unwrap();
        stream
    }

    fn unavailable(id: &str, reason_len: usize) -> PeerEvent {
        PeerEvent::GameFilesUnavailable {
            id: id.into(),
            reason: "x".repeat(reason_len),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_front_end_that_stops_reading_never_holds_up_the_runtime_and_is_resynced() {
        let mut hub = start_hub();
        let mut stalled = hello(&hub.path).await;
        let welcome: FromRuntime = wire::receive(&mut stalled).await.unwrap();
        assert!(matches!(welcome, FromRuntime::Welcome { pid: 4242, .. }), "{welcome:?}");

        // 600 events of 64 KiB, 39 MiB: more than the front end's buffer (256 frames) and
        // its socket hold. The runtime's own front end gets every one, in order (a hub that
        // waited for the stalled front end would stop here: the deadline fails the test).
        const EVENTS: usize = 600;
        let sender = hub.events.clone();
        let pushing = tokio::spawn(async move {
            for n in 0..EVENTS {
                sender.send(unavailable(&n.to_string(), 64 << 10)).await.unwrap();
            }
        });
        let front = &mut hub.front;
        let all_arrive = async {
            for n in 0..EVENTS {
                match front.recv().await.unwrap() {
                    PeerEvent::GameFilesUnavailable { id, .. } => assert_eq!(id, n.to_string()),
                    other => panic!("{other:?}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all_arrive)
            .await
            .expect("the runtime's front end got every event though another stopped reading");
        pushing.await.unwrap();

        // The stalled front end reads again: the snapshot it was sent first, some of the
        // events, then, once it has drained, a fresh snapshot instead of what it missed.
        let reading = tokio::spawn(async move {
            let mut events = 0;
            let mut snapshots = 0;
            loop {
                match wire::receive::<_, FromRuntime>(&mut stalled).await.unwrap() {
                    FromRuntime::Snapshot(_) => {
                        snapshots += 1;
                        if snapshots == 2 {
                            break;
                        }
                    }
                    FromRuntime::Event(_) => events += 1,
                    other => panic!("{other:?}"),
                }
            }
            let after: FromRuntime = wire::receive(&mut stalled).await.unwrap();
            (events, after)
        });
        let mut ticks = 0;
        while !reading.is_finished() {
            assert!(ticks < 2000, "no resync after {ticks} more events");
            hub.events.send(unavailable("tick", 10)).await.unwrap();
            hub.front.recv().await.unwrap();
            ticks += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (events, after) = reading.await.unwrap();
        assert!(events < EVENTS, "it missed events while behind: got {events}");
        assert!(
            matches!(after, FromRuntime::Event(ref event) if matches!(**event, PeerEvent::GameFilesUnavailable { ref id, .. } if id == "tick")),
            "live events follow the resync: {after:?}"
        );
    }

    #[tokio::test]
    async fn garbage_oversized_and_unknown_messages_get_an_error_and_the_hub_keeps_serving() {
        let mut hub = start_hub();
        let refusal = |message: FromRuntime| match message {
            FromRuntime::Refused { reason } => reason,
            other => panic!("refused, not {other:?}"),
        };

        let mut garbage = UnixStream::connect(&hub.path).await.unwrap();
        garbage.write_all(&5u32.to_be_bytes()).await.unwrap();
        garbage.write_all(b"{nope").await.unwrap();
        let reason = refusal(wire::receive(&mut garbage).await.unwrap());
        assert!(reason.contains("not a control message"), "{reason}");

        let mut oversized = UnixStream::connect(&hub.path).await.unwrap();
        oversized.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let reason = refusal(wire::receive(&mut oversized).await.unwrap());
        assert!(reason.contains("exceeds"), "{reason}");

        // Unknown after a good hello: the session gets its error and ends.
        let mut unknown = hello(&hub.path).await;
        let _welcome: FromRuntime = wire::receive(&mut unknown).await.unwrap();
        let _snapshot: FromRuntime = wire::receive(&mut unknown).await.unwrap();
        let body = br#"{"type":"command","body":"FormatDisk"}"#;
        unknown.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
        unknown.write_all(body).await.unwrap();
        let reason = refusal(wire::receive(&mut unknown).await.unwrap());
        assert!(reason.contains("not a control message"), "{reason}");

        // And the hub still serves: a front end attaches, its command reaches the runtime,
        // and it gets the runtime's events.
        let mut good = hello(&hub.path).await;
        assert!(matches!(
            wire::receive(&mut good).await.unwrap(),
            FromRuntime::Welcome { .. }
        ));
        assert!(matches!(
            wire::receive(&mut good).await.unwrap(),
            FromRuntime::Snapshot(_)
        ));
        wire::send(&mut good, &ToRuntime::Command(PeerCommand::ListGames))
            .await
            .unwrap();
        assert!(matches!(hub.commands.recv().await, Some(PeerCommand::ListGames)));
        hub.events.send(unavailable("openarena", 3)).await.unwrap();
        hub.front.recv().await.unwrap();
        assert!(matches!(wire::receive(&mut good).await.unwrap(), FromRuntime::Event(_)));
    }
}
