//! The client's whole life as one sans-IO object: connect, established, closing. The caller
//! feeds datagrams and the time, and polls transmits, the next deadline and events.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::ClientConfig;
use crate::ike::initiator::{IkeEvent, Initiator};
use crate::ike::params::IkeParams;
use crate::rng::Rng;
use crate::wire::natt::{self, NattDatagram};
use crate::wire::{IKE_PORT, NATT_PORT};

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
    /// Whether NAT detection showed a NAT between us and the server.
    pub nat_detected: bool,
    /// ESP travels in UDP on the NAT-T port (always for Roam: phones cannot send raw ESP).
    pub udp_encapsulation: bool,
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
    Proposal {
        key: &'static str,
        source: crate::crypto::proposal::ProposalError,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The client session.
pub struct Session {
    ike: Initiator,
    state: State,
    local: SocketAddr,
    server: SocketAddr,
    /// IKE goes to the NAT-T port with the non-ESP marker (RFC 3948).
    natt: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Datagrams dropped before IKE saw them (not from the server, unusable framing).
    dropped: u64,
}

impl Session {
    /// Builds a session, checking the configuration (proposals, identities).
    pub fn new(config: ClientConfig, rng: Box<dyn Rng>) -> Result<Self, ConfigError> {
        let params = IkeParams::new(config)?;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Ok(Self {
            ike: Initiator::new(params, rng),
            state: State::Idle,
            local: unspecified,
            server: unspecified,
            natt: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
        })
    }

    /// Starts connecting from `local` to `server` (port 500, or the profile's port; a port
    /// other than 500 is spoken to with NAT-T framing from the start).
    pub fn connect(&mut self, now: Instant, local: SocketAddr, server: SocketAddr) {
        if self.state != State::Idle {
            return;
        }
        self.local = local;
        self.server = server;
        self.natt = server.port() != IKE_PORT;
        self.set_state(State::Connecting);
        self.ike.start(now, local, server);
        self.flush();
    }

    /// A datagram arrived from `remote` on the socket bound to `local`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let _ = local;
        if remote.ip() != self.server.ip() {
            self.dropped += 1;
            return;
        }
        if remote.port() == IKE_PORT && !self.natt {
            self.ike.handle_message(now, data);
        } else {
            match natt::classify(data) {
                NattDatagram::Ike(ike) => self.ike.handle_message(now, ike),
                NattDatagram::Keepalive => {}
                NattDatagram::Esp(_) | NattDatagram::Invalid => self.dropped += 1,
            }
        }
        self.flush();
    }

    /// The deadline from `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.ike.handle_timeout(now);
        self.flush();
    }

    /// Deletes the SAs (a DELETE request) and ends the session when answered or timed out.
    pub fn close(&mut self, now: Instant) {
        if matches!(self.state, State::Disconnected | State::Closing) {
            return;
        }
        if self.state != State::Idle {
            self.set_state(State::Closing);
        }
        self.ike.close(now);
        self.flush();
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    /// The next instant `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ike.poll_timeout()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
    pub fn state(&self) -> State {
        self.state
    }
    /// Datagrams dropped by the session layer, and by IKE (by reason).
    pub fn dropped(&self) -> (u64, crate::ike::initiator::DropCounters) {
        (self.dropped, self.ike.drops())
    }
    /// The IKE SA (for inspection by tests and status reports).
    pub fn ike(&self) -> &Initiator {
        &self.ike
    }

    fn set_state(&mut self, s: State) {
        if self.state != s {
            self.state = s;
            self.events.push_back(Event::StateChanged(s));
        }
    }

    /// Moves what IKE produced out: the switch to the NAT-T port once IKE_SA_INIT is done,
    /// datagrams framed for the path, and events.
    fn flush(&mut self) {
        if !self.natt && self.ike.has_keys() && self.ike.peer().nat.supported {
            self.natt = true;
            let remote = SocketAddr::new(self.server.ip(), NATT_PORT);
            self.ike.set_path(self.local, remote);
        }
        let (_, remote) = self.ike.path();
        while let Some(msg) = self.ike.poll_message() {
            let payload = if self.natt {
                let mut v = Vec::with_capacity(4 + msg.len());
                v.extend_from_slice(&natt::NON_ESP_MARKER);
                v.extend_from_slice(&msg);
                v
            } else {
                msg
            };
            self.transmits.push_back(Transmit {
                local: self.local,
                remote,
                payload,
            });
        }
        while let Some(e) = self.ike.poll_event() {
            match e {
                IkeEvent::IkeEstablished => self.set_state(State::IkeSaEstablished),
                IkeEvent::ChildEstablished => {
                    let info = self.connected_info();
                    self.set_state(State::Connected);
                    self.events.push_back(Event::Connected(info));
                }
                IkeEvent::Down(reason) => {
                    self.set_state(State::Disconnected);
                    self.events.push_back(Event::Disconnected(reason));
                }
            }
        }
    }

    fn connected_info(&self) -> ConnectedInfo {
        let ike = &self.ike;
        let child = ike.child();
        let assigned = ike.assigned();
        let (spi_i, spi_r) = ike.spis();
        ConnectedInfo {
            virtual_ips: assigned.addresses.clone(),
            dns: assigned.dns.clone(),
            dns_domains: assigned.domains.clone(),
            ike_proposal: ike.ike_proposal().map(|s| s.name()).unwrap_or_default(),
            esp_proposal: child.map(|c| c.selected.name()).unwrap_or_default(),
            local_ts: child.map(|c| c.ts_local.clone()).unwrap_or_default(),
            remote_ts: child.map(|c| c.ts_remote.clone()).unwrap_or_default(),
            spi_i,
            spi_r,
            esp_spi_in: child.map(|c| c.spi_in).unwrap_or(0),
            esp_spi_out: child.map(|c| c.spi_out).unwrap_or(0),
            nat_detected: ike.peer().nat.any(),
            udp_encapsulation: self.natt,
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("ike", &self.ike)
            .finish_non_exhaustive()
    }
}
