//! The plain records and enums that cross the FFI besides the configuration: the network the
//! platform reports, the network settings the app applies, the tunnel's state, status and
//! events, and their conversion from the session's types.

use std::net::IpAddr;

use roam_proto::session::{ConnectedInfo, DisconnectReason, State};
use roam_proto::wire::TrafficSelector;

/// What kind of network carries the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum NetworkKind {
    /// No usable network at all.
    None,
    Wifi,
    Cellular,
    Ethernet,
    Other,
}

/// The platform's view of the default network (Android `NetworkCallback`, iOS `NWPathMonitor`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NetworkInfo {
    pub kind: NetworkKind,
    /// The interface name when known (wlan0, rmnet0, en0, pdp_ip0).
    #[uniffi(default = None)]
    pub interface_name: Option<String>,
    /// The interface's addresses, as text.
    #[uniffi(default)]
    pub addresses: Vec<String>,
    /// Metered / expensive (cellular, hotspot).
    #[uniffi(default = false)]
    pub expensive: bool,
}

/// An address or route: `address/prefix_len`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct IpNetwork {
    pub address: String,
    pub prefix_len: u8,
}

/// What the app gives the OS to build the tunnel interface (Android `VpnService.Builder`,
/// iOS `NEPacketTunnelNetworkSettings`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NetworkSettings {
    /// The server's address (iOS `tunnelRemoteAddress`).
    pub server_address: String,
    /// Our virtual addresses, each a host prefix (/32, /128).
    pub addresses: Vec<IpNetwork>,
    /// What goes through the tunnel (the negotiated remote selectors as prefixes).
    pub routes: Vec<IpNetwork>,
    pub dns_servers: Vec<String>,
    pub search_domains: Vec<String>,
    pub mtu: u16,
}

/// The tunnel's coarse state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum TunnelState {
    /// Not started (or stopped and ended).
    Idle,
    Connecting,
    /// IKE SA authenticated, CHILD SA not yet in place.
    Authenticated,
    Connected,
    /// Connected, moving to another network path.
    Roaming,
    /// The connection was lost; a new one is being made.
    Reconnecting,
    Closing,
    Disconnected,
}

impl From<State> for TunnelState {
    fn from(s: State) -> Self {
        match s {
            State::Idle => Self::Idle,
            State::Connecting => Self::Connecting,
            State::IkeSaEstablished => Self::Authenticated,
            State::Connected => Self::Connected,
            State::Closing => Self::Closing,
            State::Roaming => Self::Roaming,
            State::Reconnecting => Self::Reconnecting,
            State::Disconnected => Self::Disconnected,
        }
    }
}

/// What the session negotiated.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ConnectionInfo {
    pub virtual_ips: Vec<String>,
    pub dns_servers: Vec<String>,
    pub ike_proposal: String,
    pub esp_proposal: String,
    pub nat_detected: bool,
    pub udp_encapsulation: bool,
}

impl From<&ConnectedInfo> for ConnectionInfo {
    fn from(i: &ConnectedInfo) -> Self {
        Self {
            virtual_ips: i.virtual_ips.iter().map(IpAddr::to_string).collect(),
            dns_servers: i.dns.iter().map(IpAddr::to_string).collect(),
            ike_proposal: i.ike_proposal.clone(),
            esp_proposal: i.esp_proposal.clone(),
            nat_detected: i.nat_detected,
            udp_encapsulation: i.udp_encapsulation,
        }
    }
}

/// Something the app should know about (delivered to `PlatformCallbacks.on_event`, in order).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
///
/// `at_unix_ms` is when the session saw it happen (milliseconds since the Unix epoch).
pub enum VpnEvent {
    StateChanged {
        state: TunnelState,
        at_unix_ms: u64,
    },
    /// The tunnel is up (again, after a reconnect); the network settings were applied just
    /// before.
    Connected {
        info: ConnectionInfo,
        at_unix_ms: u64,
    },
    /// `network_changed` was seen and handed to the session, which moves its SAs (`Roamed`
    /// follows) or reconnects (`Reconnecting` follows) when it must; nothing follows when the
    /// path it uses is still there. `roamed` is always false here (kept for compatibility).
    NetworkChanged {
        network: NetworkInfo,
        roamed: bool,
    },
    /// The SAs moved to another path (MOBIKE) without a new connection.
    Roamed {
        local_address: String,
        server_address: String,
        at_unix_ms: u64,
    },
    /// An SA was rekeyed: "child" or "ike"; traffic kept flowing.
    Rekeyed {
        sa: String,
        at_unix_ms: u64,
    },
    /// The connection was lost for `reason`; attempt `attempt` starts in `delay_ms`. The TUN
    /// stays up and nothing leaves outside the tunnel meanwhile.
    Reconnecting {
        attempt: u32,
        delay_ms: u64,
        reason: String,
        at_unix_ms: u64,
    },
    /// The session ended: `reason` is the session's (closed, timeout, authentication-failed:
    /// ...), `error` is set when it ended on an error.
    Disconnected {
        reason: String,
        error: Option<String>,
        at_unix_ms: u64,
    },
}

/// A snapshot of the tunnel (`VpnTunnel.status()`).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TunnelStatus {
    pub state: TunnelState,
    /// Our virtual addresses once connected.
    pub virtual_ips: Vec<String>,
    /// The server's address and our local address on the current path.
    pub server_address: Option<String>,
    pub local_address: Option<String>,
    /// The network the platform last reported (the current path).
    pub network: Option<NetworkInfo>,
    /// Packets and bytes the app handed to the tunnel and the tunnel handed to the app.
    pub packets_to_tunnel: u64,
    pub bytes_to_tunnel: u64,
    pub packets_from_tunnel: u64,
    pub bytes_from_tunnel: u64,
    /// Packets dropped at the boundary (queue full, not running).
    pub packets_dropped: u64,
    /// Between `sleep` and `wake`.
    pub asleep: bool,
    pub last_error: Option<String>,
}

impl Default for TunnelStatus {
    fn default() -> Self {
        Self {
            state: TunnelState::Idle,
            virtual_ips: Vec::new(),
            server_address: None,
            local_address: None,
            network: None,
            packets_to_tunnel: 0,
            bytes_to_tunnel: 0,
            packets_from_tunnel: 0,
            bytes_from_tunnel: 0,
            packets_dropped: 0,
            asleep: false,
            last_error: None,
        }
    }
}

pub(crate) fn disconnect_reason(r: &DisconnectReason) -> (String, Option<String>) {
    let error = match r {
        DisconnectReason::Closed => None,
        other => Some(other.to_string()),
    };
    (r.to_string(), error)
}

/// The network settings for a connection: host prefixes for the virtual IPs, the remote
/// selectors as routes (ports and protocols are not expressible as routes and are ignored:
/// the session still enforces them per packet).
pub(crate) fn network_settings(info: &ConnectedInfo, server: &str, mtu: u16) -> NetworkSettings {
    let addresses = info
        .virtual_ips
        .iter()
        .map(|ip| IpNetwork {
            address: ip.to_string(),
            prefix_len: if ip.is_ipv4() { 32 } else { 128 },
        })
        .collect();
    let mut routes = Vec::new();
    for ts in &info.remote_ts {
        routes.extend(selector_routes(ts));
    }
    NetworkSettings {
        server_address: server.to_string(),
        addresses,
        routes,
        dns_servers: info.dns.iter().map(IpAddr::to_string).collect(),
        search_domains: info.dns_domains.clone(),
        mtu,
    }
}

fn selector_routes(ts: &TrafficSelector) -> Vec<IpNetwork> {
    match (ts.start_addr, ts.end_addr) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            range_to_prefixes(u32::from(s).into(), u32::from(e).into(), 32)
                .into_iter()
                .map(|(a, len)| IpNetwork {
                    address: std::net::Ipv4Addr::from(a as u32).to_string(),
                    prefix_len: len,
                })
                .collect()
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => range_to_prefixes(s.into(), e.into(), 128)
            .into_iter()
            .map(|(a, len)| IpNetwork {
                address: std::net::Ipv6Addr::from(a).to_string(),
                prefix_len: len,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The fewest prefixes covering `start..=end` in a `bits`-wide address space (at most 2*bits).
fn range_to_prefixes(start: u128, end: u128, bits: u32) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    let mut cur = start;
    while cur <= end && out.len() < 2 * bits as usize {
        let align = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        let remaining = end - cur; // block size - 1 must not exceed this
        let mut size = align;
        while size > 0 && (size >= 128 || (1u128 << size) - 1 > remaining) {
            if size == 128 && remaining == u128::MAX {
                break;
            }
            size -= 1;
        }
        out.push((cur, (bits - size) as u8));
        if size >= 128 {
            break;
        }
        match cur.checked_add(1u128 << size) {
            Some(next) => cur = next,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_prefixes() {
        assert_eq!(range_to_prefixes(0, u32::MAX as u128, 32), vec![(0, 0)]);
        assert_eq!(range_to_prefixes(0, u128::MAX, 128), vec![(0, 0)]);
        // 10.0.0.0 - 10.0.0.255
        assert_eq!(
            range_to_prefixes(0x0a00_0000, 0x0a00_00ff, 32),
            vec![(0x0a00_0000, 24)]
        );
        // 10.0.0.1 - 10.0.0.6: .1/32 .2/31 .4/31 .6/32
        assert_eq!(
            range_to_prefixes(0x0a00_0001, 0x0a00_0006, 32),
            vec![
                (0x0a00_0001, 32),
                (0x0a00_0002, 31),
                (0x0a00_0004, 31),
                (0x0a00_0006, 32)
            ]
        );
        assert_eq!(range_to_prefixes(5, 4, 32), vec![]);
        // the worst case stays bounded
        assert!(range_to_prefixes(1, u128::MAX - 1, 128).len() <= 256);
    }

    #[test]
    fn settings_hold_host_prefixes_and_routes() {
        let info = ConnectedInfo {
            virtual_ips: vec![
                "198.18.0.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
            dns: vec!["203.0.113.53".parse().unwrap()],
            dns_domains: vec!["corp.example".into()],
            ike_proposal: String::new(),
            esp_proposal: String::new(),
            local_ts: vec![],
            remote_ts: vec![
                roam_proto::ike::child::ts_any(false),
                roam_proto::ike::child::ts_any(true),
            ],
            spi_i: 0,
            spi_r: 0,
            esp_spi_in: 0,
            esp_spi_out: 0,
            nat_detected: false,
            udp_encapsulation: true,
            transport: roam_proto::session::Transport::Udp,
        };
        let s = network_settings(&info, "192.0.2.1", 1400);
        assert_eq!(s.addresses[0].prefix_len, 32);
        assert_eq!(s.addresses[1].prefix_len, 128);
        assert_eq!(
            s.routes,
            vec![
                IpNetwork {
                    address: "0.0.0.0".into(),
                    prefix_len: 0
                },
                IpNetwork {
                    address: "::".into(),
                    prefix_len: 0
                }
            ]
        );
        assert_eq!(s.dns_servers, vec!["203.0.113.53"]);
        assert_eq!(s.search_domains, vec!["corp.example"]);
        assert_eq!(s.mtu, 1400);
    }
}
