//! The QUIC endpoint: one UDP socket that both serves and connects, TLS 1.3
//! with the development certificate compiled in from `certs/` (see
//! `certs/README.md`). Each direction gets the transport parameters of its
//! role: a connection we accept carries requests in and file bytes out, so it
//! grants the other side little (small receive windows, a capped number of
//! streams, a capped send buffer: `[limits]`); a connection we open carries
//! file bytes in, so it grants large receive windows and no streams at all.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ClientConfig, Endpoint, EndpointConfig, IdleTimeout, ServerConfig, TransportConfig, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Limits;
use crate::proto::{ALPN, MAX_REQUEST_LEN};

/// The name in the development certificate; every peer presents the same one.
pub const SERVER_NAME: &str = "lanspread";

const CA_CERT_PEM: &[u8] = include_bytes!("../../certs/ca.pem");
const PEER_CERT_PEM: &[u8] = include_bytes!("../../certs/peer.pem");
const PEER_KEY_PEM: &[u8] = include_bytes!("../../certs/peer.key");

/// The UDP socket buffer we ask for; at LAN rates the default drops packets.
const UDP_BUFFER_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen on {addr}: {source} (is another lanspread using that port? pick another with --listen)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the compiled-in certificates are unusable: {0}")]
    Certificates(String),
}

/// Keep-alives keep an idle cached connection open; the idle timeout (the smaller of the two
/// sides') drops a vanished peer, and with it everything it held: a serving peer's send
/// buffers for a receiver that stopped acknowledging are freed within this long.
const KEEP_ALIVE: Duration = Duration::from_secs(3);
const IDLE_TIMEOUT_MS: u32 = 10_000;
/// Datagrams buffered for one connection attempt before the server accepts or refuses it.
const INCOMING_BUFFER: u64 = 64 << 10;

/// Creates the endpoint bound to `listen`, ready to accept (within `limits`) and to connect.
pub fn make_endpoint(listen: SocketAddr, limits: &Limits) -> Result<Endpoint, TransportError> {
    let socket = bind_udp(listen).map_err(|source| TransportError::Bind { addr: listen, source })?;
    let mut endpoint = Endpoint::new(
        EndpointConfig::default(),
        Some(server_config(limits)?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|source| TransportError::Bind { addr: listen, source })?;
    endpoint.set_default_client_config(client_config()?);
    Ok(endpoint)
}

fn bind_udp(listen: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(listen);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    if let Err(err) = socket.set_recv_buffer_size(UDP_BUFFER_BYTES) {
        tracing::debug!("cannot enlarge the UDP receive buffer: {err}");
    }
    if let Err(err) = socket.set_send_buffer_size(UDP_BUFFER_BYTES) {
        tracing::debug!("cannot enlarge the UDP send buffer: {err}");
    }
    socket.bind(&listen.into())?;
    Ok(socket.into())
}

/// For connections we accept: requests come in, file bytes go out.
fn serving_transport(limits: &Limits) -> Arc<TransportConfig> {
    // One request frame fits a stream's window; the server reads it and nothing more.
    let request_window = (MAX_REQUEST_LEN + 4) as u64;
    let mut config = TransportConfig::default();
    config
        .stream_receive_window(VarInt::from_u64(request_window).unwrap_or(VarInt::MAX))
        .receive_window(
            VarInt::from_u64(request_window * u64::from(limits.streams_per_connection)).unwrap_or(VarInt::MAX),
        )
        // quinn blocks writes once this many bytes are unacknowledged: the per-connection
        // send buffer. Well above the bandwidth-delay product of a gigabit LAN.
        .send_window(limits.send_buffer_per_connection)
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.streams_per_connection))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(IDLE_TIMEOUT_MS))));
    Arc::new(config)
}

/// For connections we open: requests go out, file bytes come in.
fn fetching_transport() -> Arc<TransportConfig> {
    let mut config = TransportConfig::default();
    // Windows well above the bandwidth-delay product of a gigabit LAN, so flow
    // control never limits a transfer; several chunk streams share the connection window.
    config
        .stream_receive_window(VarInt::from_u32(16 << 20))
        .receive_window(VarInt::from_u32(64 << 20))
        .send_window(1 << 20)
        // The serving side never opens streams toward us.
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(IDLE_TIMEOUT_MS))));
    Arc::new(config)
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(limits: &Limits) -> Result<ServerConfig, TransportError> {
    let bad = |err: &dyn std::fmt::Display| TransportError::Certificates(err.to_string());
    let chain = CertificateDer::pem_slice_iter(PEER_CERT_PEM)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(PEER_KEY_PEM).map_err(|e| bad(&e))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| bad(&e))?;
    let mut config = ServerConfig::with_crypto(Arc::new(quic));
    // Attempts beyond the connection limit are refused by the server component; these bound
    // what quinn holds for attempts it has not handed over yet.
    let attempts = 2 * limits.connections as usize;
    config
        .transport_config(serving_transport(limits))
        .max_incoming(attempts)
        .incoming_buffer_size(INCOMING_BUFFER)
        .incoming_buffer_size_total(INCOMING_BUFFER * attempts as u64);
    Ok(config)
}

fn client_config() -> Result<ClientConfig, TransportError> {
    let bad = |err: &dyn std::fmt::Display| TransportError::Certificates(err.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA_CERT_PEM) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| bad(&e))?;
    let mut config = ClientConfig::new(Arc::new(quic));
    config.transport_config(fetching_transport());
    Ok(config)
}
