//! The QUIC endpoint: one UDP socket that both serves and connects, TLS 1.3
//! with the development certificate compiled in from `certs/` (see
//! `certs/README.md`), and transport parameters sized for bulk LAN transfers.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ClientConfig, Endpoint, EndpointConfig, IdleTimeout, ServerConfig, TransportConfig, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::proto::ALPN;

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

/// Creates the endpoint bound to `listen`, ready to accept and to connect.
pub fn make_endpoint(listen: SocketAddr) -> Result<Endpoint, TransportError> {
    let socket = bind_udp(listen).map_err(|source| TransportError::Bind { addr: listen, source })?;
    let mut endpoint = Endpoint::new(
        EndpointConfig::default(),
        Some(server_config()?),
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

fn transport_config() -> Arc<TransportConfig> {
    let mut config = TransportConfig::default();
    // Windows well above the bandwidth-delay product of a gigabit LAN, so flow
    // control never limits a transfer; several chunk streams share the connection window.
    config
        .stream_receive_window(VarInt::from_u32(16 << 20))
        .receive_window(VarInt::from_u32(64 << 20))
        .send_window(64 << 20)
        .max_concurrent_bidi_streams(VarInt::from_u32(256))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(30_000))));
    Arc::new(config)
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config() -> Result<ServerConfig, TransportError> {
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
    config.transport_config(transport_config());
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
    config.transport_config(transport_config());
    Ok(config)
}
