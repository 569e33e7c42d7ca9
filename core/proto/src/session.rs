//! The client's whole life as one sans-IO object: connect, established, closing. The caller
//! feeds datagrams and the time, and polls transmits, the next deadline and events.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::ClientConfig;
use crate::rng::Rng;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from (the one given to `connect`).
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
    /// Whether a NAT was detected (ESP then goes in UDP on port 4500).
    pub nat_detected: bool,
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
        }
    }
}

/// Something the caller should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    StateChanged(State),
    Connected(ConnectedInfo),
    Disconnected(DisconnectReason),
}

/// Why a session could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("crypto.{key}: {source}")]
    Proposal { key: &'static str, source: crate::crypto::proposal::ProposalError },
    #[error("{0}")]
    Invalid(String),
}

/// The client session.
pub struct Session {
    _config: ClientConfig,
    _rng: Box<dyn Rng>,
}

impl Session {
    /// Builds a session, checking the configuration (proposals, identities).
    pub fn new(config: ClientConfig, rng: Box<dyn Rng>) -> Result<Self, ConfigError> {
        Ok(Self { _config: config, _rng: rng })
    }
    /// Starts connecting from `local` to `server` (port 500, or the profile's port).
    pub fn connect(&mut self, now: Instant, local: SocketAddr, server: SocketAddr) {
        let _ = (now, local, server);
    }
    /// A datagram arrived from `remote` on the socket bound to `local`.
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let _ = (now, local, remote, data);
    }
    /// The deadline from `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }
    /// Deletes the SAs (a DELETE request) and ends the session when answered or timed out.
    pub fn close(&mut self, now: Instant) {
        let _ = now;
    }
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    /// The next instant `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        None
    }
    pub fn state(&self) -> State {
        State::Idle
    }
}
