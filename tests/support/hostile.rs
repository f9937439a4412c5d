//! Pieces for hostile-peer tests against real `lanspread serve` processes: a raw
//! QUIC client whose transport parameters the test chooses, a UDP relay that
//! can make a client vanish, a bounded response reader, and the memory figures
//! of a process.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lanspread::peer::transport::SERVER_NAME;
use lanspread::proto::{ALPN, MAX_FRAME_LEN, Request, Response};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ClientConfig, Connection, Endpoint, IdleTimeout, RecvStream, SendStream, TransportConfig, VarInt};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::process::{Lanspread, free_addr};

const CA_CERT_PEM: &[u8] = include_bytes!("../../certs/ca.pem");

/// Bound for one request/response exchange or one connection attempt.
pub const EXCHANGE_WAIT: Duration = Duration::from_secs(5);

/// Transport parameters like a well-behaved peer's (the project's own sizes).
pub fn ordinary_transport() -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .stream_receive_window(VarInt::from_u32(16 << 20))
        .receive_window(VarInt::from_u32(64 << 20))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(Duration::from_secs(2)))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(30_000))));
    config
}

/// An attacker granting 1 GiB windows, so flow control never holds the server back
/// and only what it buffers for the client limits it.
pub fn greedy_transport() -> TransportConfig {
    let mut config = ordinary_transport();
    config
        .stream_receive_window(VarInt::from_u32(1 << 30))
        .receive_window(VarInt::from_u32(1 << 30));
    config
}

/// A receiver whose connection window (1 MiB) is no larger than one stream's, so a
/// single unread stream can exhaust the connection's flow-control window.
pub fn narrow_transport() -> TransportConfig {
    let mut config = ordinary_transport();
    config
        .stream_receive_window(VarInt::from_u32(1 << 20))
        .receive_window(VarInt::from_u32(1 << 20));
    config
}

fn client_config(transport: TransportConfig) -> Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA_CERT_PEM) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// A client-only quinn endpoint on its own UDP socket.
pub struct RawClient {
    pub endpoint: Endpoint,
}

impl RawClient {
    /// Binds `ip:0` (127.0.0.1, or another loopback address to be a second host).
    pub fn new(ip: IpAddr, transport: TransportConfig) -> Result<Self> {
        let mut endpoint = Endpoint::client(SocketAddr::new(ip, 0))?;
        endpoint.set_default_client_config(client_config(transport)?);
        Ok(RawClient { endpoint })
    }

    pub fn local(transport: TransportConfig) -> Result<Self> {
        Self::new([127, 0, 0, 1].into(), transport)
    }

    /// Connects, bounded by [`EXCHANGE_WAIT`]; a timeout is an error like a refusal.
    pub async fn connect(&self, server: SocketAddr) -> Result<Connection> {
        let connecting = self.endpoint.connect(server, SERVER_NAME)?;
        let connection = timeout(EXCHANGE_WAIT, connecting)
            .await
            .with_context(|| format!("connecting to {server} timed out"))??;
        Ok(connection)
    }
}

/// `[u32 BE length][body]`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("test frames fit a u32");
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

pub fn request_frame(request: &Request) -> Vec<u8> {
    frame(&serde_json::to_vec(request).expect("requests serialize"))
}

/// Reads one response frame incrementally: the length (at most [`MAX_FRAME_LEN`]), then
/// the body as it arrives, so a lying server cannot make the test allocate much.
pub async fn read_response(recv: &mut RecvStream) -> Result<Response> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.context("reading the length")?;
    let len = u32::from_be_bytes(len) as usize;
    ensure!(len <= MAX_FRAME_LEN, "response frame announces {len} bytes");
    let mut body = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    while body.len() < len {
        let want = buffer.len().min(len - body.len());
        match recv.read(&mut buffer[..want]).await.context("reading the body")? {
            Some(read) => body.extend_from_slice(&buffer[..read]),
            None => bail!("stream ended after {} of {len} bytes", body.len()),
        }
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Sends `bytes` as a whole request on a new stream and reads the response frame (bounded).
pub async fn exchange_raw(connection: &Connection, bytes: &[u8]) -> Result<Response> {
    let exchange = async {
        let (mut send, mut recv) = connection.open_bi().await?;
        // A server may answer (e.g. BadRequest) and stop the stream before taking all of
        // the request; the answer is still there to read.
        let written = send.write_all(bytes).await;
        if written.is_ok() {
            send.finish()?;
        }
        let response = read_response(&mut recv).await;
        match written {
            Ok(()) => response,
            Err(err) => response.with_context(|| format!("the request was cut off: {err}")),
        }
    };
    timeout(EXCHANGE_WAIT, exchange)
        .await
        .context("no response within the exchange bound")?
}

/// Opens a stream and sends `request` whole (bounded); the response is the caller's to read.
pub async fn send_request(connection: &Connection, request: &Request) -> Result<(SendStream, RecvStream)> {
    let send = async {
        let (mut send, recv) = connection.open_bi().await?;
        send.write_all(&request_frame(request)).await?;
        send.finish()?;
        anyhow::Ok((send, recv))
    };
    timeout(EXCHANGE_WAIT, send)
        .await
        .context("sending a request timed out")?
}

pub async fn exchange(connection: &Connection, request: &Request) -> Result<Response> {
    exchange_raw(connection, &request_frame(request)).await
}

/// Ids of the games a `ListGames` on `connection` returns.
pub async fn list_games(connection: &Connection) -> Result<Vec<String>> {
    match exchange(connection, &Request::ListGames).await? {
        Response::Games { games } => Ok(games.into_iter().map(|game| game.id).collect()),
        other => bail!("ListGames answered {other:?}"),
    }
}

/// Polls `ListGames` on `connection` (bounded by [`super::WAIT`]) until `id` is served.
pub async fn wait_for_game(connection: &Connection, id: &str) {
    let deadline = tokio::time::Instant::now() + super::WAIT;
    loop {
        let listed = list_games(connection).await;
        if listed.as_ref().is_ok_and(|ids| ids.iter().any(|listed| listed == id)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the serve did not list {id} within {:?}: {listed:?}",
            super::WAIT
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `lanspread serve` on a free loopback port with `config` (TOML) as its config file.
pub fn serve(root: &Path, config: &str) -> (Lanspread, SocketAddr) {
    let file = root.join("config.toml");
    std::fs::create_dir_all(root.join("games")).unwrap();
    std::fs::write(&file, config).unwrap();
    let listen = free_addr();
    let serve = Lanspread::serve(root, listen, &[], &["--config", file.to_str().unwrap()]);
    (serve, listen)
}

/// Resident and peak resident memory of a process, in MiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is alive");
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
        let kib: f64 = line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or_else(|err| panic!("cannot parse {line:?}: {err}"));
        kib / 1024.0
    };
    Memory {
        rss_mib: field("VmRSS:"),
        peak_mib: field("VmHWM:"),
    }
}

/// How a process's RSS fell (or did not) while a test waited for it.
#[derive(Debug)]
pub struct Settling {
    /// The last figure.
    pub memory: Memory,
    /// How long the wait took.
    pub took: Duration,
    /// `(seconds, RSS MiB)` every 2 s of the wait, for the failure message.
    pub trace: Vec<(u64, u64)>,
}

/// Polls the RSS of `pid` every 500 ms, up to `bound`, until it is under `limit_mib`.
pub async fn wait_for_rss_under(pid: u32, limit_mib: f64, bound: Duration) -> Settling {
    let start = tokio::time::Instant::now();
    let mut trace = Vec::new();
    let mut poll = 0u64;
    loop {
        let now = memory(pid);
        if poll.is_multiple_of(4) {
            trace.push((start.elapsed().as_secs(), now.rss_mib as u64));
        }
        if now.rss_mib < limit_mib || start.elapsed() >= bound {
            return Settling {
                memory: now,
                took: start.elapsed(),
                trace,
            };
        }
        poll += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A UDP relay on 127.0.0.1 between one client socket and a server. It forwards both
/// ways until told to drop everything (the client vanishes from the server's point of
/// view while the test keeps its connection objects), and stops when switched off or dropped.
pub struct Relay {
    /// Where clients connect instead of the server.
    pub addr: SocketAddr,
    dropping: Arc<AtomicBool>,
    /// Datagrams from the server are lost (the client's still reach it).
    holding: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(server: SocketAddr) -> Result<Self> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let dropping = Arc::new(AtomicBool::new(false));
        let flag = dropping.clone();
        let holding = Arc::new(AtomicBool::new(false));
        let hold = holding.clone();
        let task = tokio::spawn(async move {
            let mut client = None;
            let mut up = vec![0u8; 65_536];
            let mut down = vec![0u8; 65_536];
            loop {
                // Send errors (a full buffer, an ICMP unreachable) lose a datagram, as a network would.
                tokio::select! {
                    received = front.recv_from(&mut up) => {
                        let Ok((len, from)) = received else { continue };
                        client = Some(from);
                        if !flag.load(Ordering::Relaxed) {
                            let _ = back.send(&up[..len]).await;
                        }
                    }
                    received = back.recv(&mut down) => {
                        let Ok(len) = received else { continue };
                        let lost = flag.load(Ordering::Relaxed) || hold.load(Ordering::Relaxed);
                        if let Some(client) = client.filter(|_| !lost) {
                            let _ = front.send_to(&down[..len], client).await;
                        }
                    }
                }
            }
        });
        Ok(Relay {
            addr,
            dropping,
            holding,
            task,
        })
    }

    /// While `on`, what the server sends is lost on the way (it retransmits, and nothing it
    /// sends is acknowledged); the client's datagrams still reach it.
    pub fn hold_answers(&self, on: bool) {
        self.holding.store(on, Ordering::Relaxed);
    }

    /// From now on every datagram, either way, is lost.
    pub fn drop_everything(&self) {
        self.dropping.store(true, Ordering::Relaxed);
    }

    /// Closes the relay's sockets.
    pub fn off(&self) {
        self.task.abort();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
