//! The session's public types: what it sends (`Transmit`, `Datagram`), what it reports
//! (`State`, `Event`, `ConnectedInfo`, `DisconnectReason`, `RekeyKind`), what became of a
//! datagram or packet (`Received`, `PacketDrop`), its data-path counters (`DataStats`) and
//! why a configuration was refused (`ConfigError`). Re-exported from `session`.

use std::net::{IpAddr, SocketAddr};

use crate::esp::{Counters as EspCounters, EspError};

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from (the one given to `connect`, or the one MOBIKE moved to).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The UDP payload, with the non-ESP marker already in front when going to port 4500.
    pub payload: Vec<u8>,
}

/// The session's coarse state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Connecting,
    /// IKE SA authenticated, CHILD SA not (yet) in place.
    IkeSaEstablished,
    Connected,
    /// Connected, and moving the SAs to another path (MOBIKE UPDATE_SA_ADDRESSES in flight).
    Roaming,
    /// The IKE SA was lost; a new one is being made (after a backoff delay).
    Reconnecting,
    Closing,
    Disconnected,
}

/// What the session learned when it connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedInfo {
    pub virtual_ips: Vec<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub dns_domains: Vec<String>,
    /// Negotiated IKE proposal in strongSwan syntax.
    pub ike_proposal: String,
    /// Negotiated ESP proposal in strongSwan syntax.
    pub esp_proposal: String,
    pub local_ts: Vec<crate::wire::TrafficSelector>,
    pub remote_ts: Vec<crate::wire::TrafficSelector>,
    pub spi_i: u64,
    pub spi_r: u64,
    /// Inbound and outbound ESP SPIs.
    pub esp_spi_in: u32,
    pub esp_spi_out: u32,
    /// Whether NAT detection showed a NAT between us and the server.
    pub nat_detected: bool,
    /// ESP travels in UDP on the NAT-T port (always for Roam: phones cannot send raw ESP).
    pub udp_encapsulation: bool,
    /// What carries IKE and ESP: UDP datagrams, or a TCP stream (RFC 9329).
    pub transport: super::Transport,
}

/// Why the session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// We closed it (close()).
    Closed,
    /// The server deleted the IKE SA.
    DeletedByPeer,
    /// The server did not answer (retransmissions ran out).
    Timeout,
    /// Authentication failed (AUTHENTICATION_FAILED, a bad certificate or signature...).
    AuthenticationFailed(String),
    /// No proposal, traffic selector or address could be agreed.
    NegotiationFailed(String),
    /// The peer broke the protocol.
    ProtocolError(String),
    /// The path to the server is gone and could not be moved (no MOBIKE, or no candidate
    /// path answered).
    PathLost,
    /// The server no longer knows our IKE SA (INVALID_IKE_SPI: it restarted).
    ServerRestarted,
    /// The server could not take us just now (TEMPORARY_FAILURE, INTERNAL_ADDRESS_FAILURE:
    /// busy, its address pool or its authentication backend briefly unavailable).
    TemporarilyRefused(String),
}

impl DisconnectReason {
    /// Whether reconnecting cannot help (the user must change something first).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::AuthenticationFailed(_) | Self::NegotiationFailed(_) | Self::Closed
        )
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("closed"),
            Self::DeletedByPeer => f.write_str("deleted-by-peer"),
            Self::Timeout => f.write_str("timeout"),
            Self::AuthenticationFailed(s) => write!(f, "authentication-failed: {s}"),
            Self::NegotiationFailed(s) => write!(f, "negotiation-failed: {s}"),
            Self::ProtocolError(s) => write!(f, "protocol-error: {s}"),
            Self::PathLost => f.write_str("path-lost"),
            Self::ServerRestarted => f.write_str("server-restarted"),
            Self::TemporarilyRefused(s) => write!(f, "temporarily-refused: {s}"),
        }
    }
}

/// Something the caller should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    StateChanged(State),
    /// A connection is up. Raised again while `Connected` when a new connection replaced the
    /// current one (make-before-break after a path change the server could not follow): the
    /// new virtual IPs, DNS and SPIs apply from now on; no state change comes with it.
    Connected(ConnectedInfo),
    /// The SAs moved to another path (MOBIKE) without a new IKE SA.
    Roamed {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A SA was rekeyed (traffic keeps flowing).
    Rekeyed(RekeyKind),
    /// The IKE SA was lost for `reason`; attempt number `attempt` starts after `delay`.
    Reconnecting {
        attempt: u32,
        delay: std::time::Duration,
        reason: DisconnectReason,
    },
    Disconnected(DisconnectReason),
}

/// Which SA a rekey replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyKind {
    /// The CHILD SA: new ESP SPIs (`spi_in`, `spi_out`).
    Child { spi_in: u32, spi_out: u32 },
    /// The IKE SA: new IKE SPIs.
    Ike { spi_i: u64, spi_r: u64 },
}

/// Why a packet was not carried through the tunnel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketDrop {
    #[error("no CHILD SA (not connected)")]
    NotConnected,
    #[error("not an IP packet")]
    NotIp,
    #[error("outside the negotiated traffic selectors")]
    OutsideSelectors,
    #[error("esp: {0}")]
    Esp(#[from] EspError),
}

/// A datagram the data path wrote into the caller's buffer: send `out[..len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub len: usize,
}

/// What a received datagram was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A decrypted packet for the TUN: `data[range]`.
    Packet(std::ops::Range<usize>),
    /// IKE or a keepalive, handled (poll for answers and events).
    Control,
    /// Dropped and counted.
    Dropped(PacketDrop),
}

/// Counters of the data path since the CHILD SA came up (ESP's own, plus the session's drops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataStats {
    pub esp: EspCounters,
    /// Packets from the TUN refused before ESP (not connected, not IP, outside selectors).
    pub dropped_outbound: u64,
    /// Decrypted packets whose addresses the selectors do not allow.
    pub dropped_inbound_selectors: u64,
}

/// Why a session could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("crypto.{key}: {source}")]
    Proposal {
        key: &'static str,
        source: crate::crypto::proposal::ProposalError,
    },
    #[error("{0}")]
    Invalid(String),
}
