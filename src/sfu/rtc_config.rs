//! Media transport settings of the peer connections.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Media transport settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcConfig {
    pub udp_ports: Option<(u16, u16)>,
    pub bind_ips: Vec<IpAddr>,
    pub public_ip: Option<IpAddr>,
    pub ice_servers: Vec<String>,
    /// A WHIP/WHEP session whose ICE has not connected after this long is ended (webrtc-rs
    /// itself gives up only after about 30 s, holding its sockets and tasks until then).
    pub connect_timeout: Duration,
}

impl RtcConfig {
    /// True when every bind IP is loopback: remote candidates elsewhere can never connect.
    pub fn loopback_only(&self) -> bool {
        self.bind_ips.iter().all(IpAddr::is_loopback)
    }
}

impl Default for RtcConfig {
    fn default() -> Self {
        Self {
            udp_ports: None,
            bind_ips: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ],
            public_ip: None,
            ice_servers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}
