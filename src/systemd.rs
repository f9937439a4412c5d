//! systemd's readiness protocol (`sd_notify`, `Type=notify`): one datagram of
//! `KEY=value` lines to the socket named by `$NOTIFY_SOCKET`, a path or, with a leading
//! `@`, an abstract name. Without the variable (not started by systemd) nothing is sent.

use std::os::unix::net::UnixDatagram;

#[derive(Debug, thiserror::Error)]
#[error("cannot tell systemd ({socket}): {source}")]
pub struct NotifyError {
    socket: String,
    #[source]
    source: std::io::Error,
}

/// Sends `state` (e.g. `"READY=1\nSTATUS=serving 3 games"`) when systemd asks for it.
pub fn notify(state: &str) -> Result<(), NotifyError> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = socket.to_string_lossy().into_owned();
    let failed = |source| NotifyError {
        socket: socket.clone(),
        source,
    };
    let sender = UnixDatagram::unbound().map_err(failed)?;
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(failed)?;
            sender.send_to_addr(state.as_bytes(), &addr).map_err(failed)?;
        }
        None => {
            sender.send_to(state.as_bytes(), &socket).map_err(failed)?;
        }
    }
    Ok(())
}
