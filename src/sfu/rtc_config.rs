//! Media transport settings of the peer connections.

use std::net::{IpAddr, Ipv4Addr};

/// Media transport settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcConfig {
    pub udp_ports: Option<(u16, u16)>,
    pub bind_ips: Vec<IpAddr>,
    pub public_ip: Option<IpAddr>,
    pub ice_servers: Vec<String>,
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
        }
    }
}
