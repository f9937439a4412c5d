//! mDNS discovery (mdns-sd): advertise this peer and browse for others. Found
//! addresses only become peers once they answer a ping, so a stale or spoofed
//! announcement costs one failed ping.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

pub const SERVICE_TYPE: &str = "_lanspread._udp.local.";
const PEER_ID_PROPERTY: &str = "peer_id";

/// A peer address seen in an mDNS announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredPeer {
    pub addr: SocketAddr,
    pub peer_id: String,
}

pub struct Discovery {
    daemon: ServiceDaemon,
    advertised: Option<String>,
}

impl Discovery {
    /// Starts the mDNS daemon, advertises `port` when `advertise` is set, and browses.
    /// Found peers are sent on `found` until [`Discovery::stop`].
    pub fn start(
        peer_id: &str,
        listen: SocketAddr,
        advertise: bool,
        found: mpsc::Sender<DiscoveredPeer>,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        let advertised = if advertise {
            let properties = HashMap::from([(PEER_ID_PROPERTY.to_owned(), peer_id.to_owned())]);
            let host = format!("{peer_id}.local.");
            let info = if listen.ip().is_unspecified() {
                ServiceInfo::new(SERVICE_TYPE, peer_id, &host, "", listen.port(), properties)?.enable_addr_auto()
            } else {
                ServiceInfo::new(SERVICE_TYPE, peer_id, &host, listen.ip(), listen.port(), properties)?
            };
            let fullname = info.get_fullname().to_owned();
            daemon.register(info)?;
            Some(fullname)
        } else {
            None
        };
        let events = daemon.browse(SERVICE_TYPE)?;
        let own_id = peer_id.to_owned();
        let browse = tokio::spawn(run_peer_discovery(events, own_id, found));
        Ok((Discovery { daemon, advertised }, browse))
    }

    /// Withdraws our announcement and stops the daemon (which ends the browse task).
    pub fn stop(self) {
        if let Some(fullname) = &self.advertised
            && let Err(err) = self.daemon.unregister(fullname)
        {
            tracing::debug!("mDNS unregister failed: {err}");
        }
        if let Err(err) = self.daemon.shutdown() {
            tracing::debug!("mDNS shutdown failed: {err}");
        }
    }
}

async fn run_peer_discovery(
    events: mdns_sd::Receiver<ServiceEvent>,
    own_id: String,
    found: mpsc::Sender<DiscoveredPeer>,
) {
    while let Ok(event) = events.recv_async().await {
        let ServiceEvent::ServiceResolved(service) = event else {
            continue;
        };
        let Some(peer_id) = service.get_property_val_str(PEER_ID_PROPERTY) else {
            continue;
        };
        if peer_id == own_id {
            continue;
        }
        for ip in service.get_addresses() {
            let ip = ip.to_ip_addr();
            // Link-local IPv6 needs a scope id we do not track; the IPv4 or global address serves.
            if matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
                continue;
            }
            let peer = DiscoveredPeer {
                addr: SocketAddr::new(ip, service.get_port()),
                peer_id: peer_id.to_owned(),
            };
            tracing::debug!(addr = %peer.addr, peer_id, "mDNS found a peer");
            if found.send(peer).await.is_err() {
                return;
            }
        }
    }
}
