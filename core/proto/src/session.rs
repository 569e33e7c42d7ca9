//! The client's whole life as one sans-IO object: connect, established, roaming, closing. The caller
//! feeds datagrams, packets from the TUN and the time, and polls transmits, the next deadline
//! and events. The data path joins IKE and ESP: a packet from the TUN goes into the CHILD SA
//! when its selectors allow it (never in the clear), and a decrypted packet goes to the TUN
//! only when it matches the negotiated selectors; everything else is dropped and counted.
//!
//! Once connected, a lost IKE SA (dead peer, server restart, deleted by the server, path
//! lost) is replaced by a new one after a backoff (`reconnect`); the session then reports
//! `Reconnecting` rather than `Disconnected`, and drops packets from the TUN until the new
//! CHILD SA is up (never sends them in the clear).
//!
//! When the path changes and the server cannot move the SAs (no MOBIKE) while the old local
//! address still works, the session makes a new connection from the new path beside the
//! current one (make-before-break, `connection`): traffic stays on the old one until the new
//! CHILD SA is up, then moves, and the old IKE SA is deleted. The state stays `Connected`.

mod connection;
mod reconnect;

pub use reconnect::ReconnectPolicy;

mod esp_set;

pub use esp_set::EspSet;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use connection::Connection;

use crate::config::ClientConfig;
use crate::esp::{peek_spi, Counters as EspCounters, EspError};
use crate::ike::initiator::{IkeEvent, Initiator, Phase};
use crate::ike::mobike::PathChange;
use crate::ike::params::IkeParams;
use crate::packet;
use crate::rng::{Rng, SharedRng};
use crate::wire::natt::{self, NattDatagram};
use crate::wire::IKE_PORT;

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

/// The client session.
pub struct Session {
    ike: Initiator,
    /// The checked configuration every IKE SA of this session is made from.
    params: Arc<IkeParams>,
    rng: SharedRng,
    /// Reconnects after a loss, once a connection was up (None: the profile turned it off).
    backoff: Option<reconnect::Backoff>,
    /// A connection was up at least once (before that, a failure ends the session: the user
    /// is told the server cannot be reached or refused us, instead of retrying silently).
    was_connected: bool,
    /// The local addresses the platform last named (preferred first), for new attempts.
    locals: Vec<SocketAddr>,
    /// Every address the server's name resolved to last, for new attempts.
    server_addresses: Vec<IpAddr>,
    state: State,
    local: SocketAddr,
    server: SocketAddr,
    /// IKE goes to the NAT-T port with the non-ESP marker (RFC 3948).
    natt: bool,
    transmits: VecDeque<Transmit>,
    /// Events with the instant they happened.
    events: VecDeque<(Instant, Event)>,
    /// Datagrams dropped before IKE saw them (not from the server, unusable framing).
    dropped: u64,
    /// The data plane of the CHILD SAs (current, and replaced ones still receiving).
    esp: EspSet,
    stats: DataStats,
    /// A CHILD SA rekey was asked for by the data path (volume or sequence numbers).
    volume_rekey_asked: bool,
    /// Make-before-break: the connection being made from the new path while the current one
    /// keeps carrying traffic on the old path.
    next: Option<Connection>,
    /// The connection the last make-before-break replaced: its DELETE in flight, its ESP SAs
    /// receiving packets in flight for a grace time.
    replaced: Option<Connection>,
    /// When to try the make-before-break again after the new connection failed.
    retry_next_at: Option<Instant>,
}

/// Which connection a datagram is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    Current,
    Next,
    Replaced,
}

impl Session {
    /// Builds a session, checking the configuration (proposals, identities).
    pub fn new(config: ClientConfig, rng: Box<dyn Rng>) -> Result<Self, ConfigError> {
        let backoff = config.reconnect.map(reconnect::Backoff::new);
        let params = Arc::new(IkeParams::new(config)?);
        let rng = SharedRng::new(rng);
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Ok(Self {
            ike: Initiator::new(params.clone(), Box::new(rng.clone())),
            params,
            rng,
            backoff,
            was_connected: false,
            locals: Vec::new(),
            server_addresses: Vec::new(),
            state: State::Idle,
            local: unspecified,
            server: unspecified,
            natt: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
            esp: EspSet::default(),
            stats: DataStats::default(),
            volume_rekey_asked: false,
            next: None,
            replaced: None,
            retry_next_at: None,
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
        self.start_attempt(now);
    }

    /// Starts a connection attempt on a fresh IKE SA (the first, or a reconnect).
    fn start_attempt(&mut self, now: Instant) {
        if self.ike.phase() != Phase::Idle {
            self.ike = Initiator::new(self.params.clone(), Box::new(self.rng.clone()));
        }
        self.pick_path();
        self.esp.clear();
        self.natt = self.server.port() != IKE_PORT;
        self.set_state(now, State::Connecting);
        self.ike.set_server_addresses(&self.server_addresses);
        self.ike.start(now, self.local, self.server);
        if !self.locals.is_empty() {
            // The new IKE SA learns where it may move later.
            let _ = self.ike.network_changed(now, &self.locals);
        }
        self.flush(now);
    }

    /// The path of a new attempt: the preferred local address the platform named, and the
    /// server's address of that family (the current one if it fits, else a resolved one).
    fn pick_path(&mut self) {
        let Some(&local) = self.locals.first() else {
            return;
        };
        self.local = local;
        self.server = self.server_for(local);
    }

    /// The server's address for a path from `local`: the current one if the family fits,
    /// else a resolved one of that family (the profile's port either way).
    fn server_for(&self, local: SocketAddr) -> SocketAddr {
        if self.server.is_ipv4() == local.is_ipv4() {
            return self.server;
        }
        self.server_addresses
            .iter()
            .find(|ip| ip.is_ipv4() == local.is_ipv4())
            .map_or(self.server, |&ip| SocketAddr::new(ip, self.server.port()))
    }

    /// A datagram arrived from `remote` on the socket bound to `local`. IKE is handled here
    /// (poll for answers and events); ESP is decrypted in place and the inner packet, if the
    /// selectors allow it, is `data[range]` for the TUN.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &mut [u8],
    ) -> Received {
        let _ = local;
        if !self.is_server_address(remote.ip()) {
            self.dropped += 1;
            return Received::Dropped(PacketDrop::NotConnected);
        }
        // Unframed IKE on port 500 (before the switch to NAT-T) may be for a new connection.
        let raw = remote.port() == IKE_PORT
            && match self.ike_owner(connection::ike_spi_i(data)) {
                Conn::Current => !self.natt,
                Conn::Next => self.next.as_ref().is_some_and(|c| !c.natt),
                Conn::Replaced => self.replaced.as_ref().is_some_and(|c| !c.natt),
            };
        let received = if raw {
            let owner = self.ike_owner(connection::ike_spi_i(data));
            self.handle_ike(owner, now, remote, data);
            Received::Control
        } else {
            match natt::classify(data) {
                NattDatagram::Ike(ike) => {
                    let owner = self.ike_owner(connection::ike_spi_i(ike));
                    self.handle_ike(owner, now, remote, ike);
                    Received::Control
                }
                NattDatagram::Keepalive => Received::Control,
                NattDatagram::Esp(_) => self.decapsulate(now, data),
                NattDatagram::Invalid => {
                    self.dropped += 1;
                    Received::Dropped(PacketDrop::NotIp)
                }
            }
        };
        self.flush(now);
        received
    }

    /// Whether `ip` may be the server for any of our connections.
    fn is_server_address(&self, ip: IpAddr) -> bool {
        self.ike.is_server_address(ip)
            || [&self.next, &self.replaced]
                .into_iter()
                .flatten()
                .any(|c| c.ike.is_server_address(ip))
    }

    /// The connection whose IKE SA has initiator SPI `spi_i` (the current one by default:
    /// it counts what nobody owns).
    fn ike_owner(&self, spi_i: Option<u64>) -> Conn {
        let owns = |c: &Option<Connection>| {
            c.as_ref()
                .is_some_and(|c| spi_i == Some(c.ike.spis().0) && spi_i != Some(self.ike.spis().0))
        };
        if owns(&self.next) {
            Conn::Next
        } else if owns(&self.replaced) {
            Conn::Replaced
        } else {
            Conn::Current
        }
    }

    fn handle_ike(&mut self, owner: Conn, now: Instant, remote: SocketAddr, msg: &[u8]) {
        let ike = match owner {
            Conn::Current => Some(&mut self.ike),
            Conn::Next => self.next.as_mut().map(|c| &mut c.ike),
            Conn::Replaced => self.replaced.as_mut().map(|c| &mut c.ike),
        };
        if let Some(ike) = ike {
            ike.handle_message_from(now, remote, msg);
        }
    }

    /// Opens ESP with the connection holding the packet's SPI (the current one by default).
    fn decapsulate(&mut self, now: Instant, data: &mut [u8]) -> Received {
        let spi = peek_spi(data).unwrap_or(0);
        if !self.esp.contains(spi) {
            for side in [&mut self.next, &mut self.replaced] {
                if let Some(c) = side.as_mut().filter(|c| c.esp.contains(spi)) {
                    return connection::open_esp(
                        &mut c.ike,
                        &mut c.esp,
                        &mut self.stats,
                        now,
                        data,
                    );
                }
            }
        }
        connection::open_esp(&mut self.ike, &mut self.esp, &mut self.stats, now, data)
    }

    /// An IP packet from the TUN: encapsulated into `out` as an ESP datagram for the server
    /// when connected and the selectors allow it; otherwise dropped (never sent in the clear).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<Datagram, PacketDrop> {
        let result = self.encapsulate(packet, out);
        if result.is_ok() {
            self.ike.note_outbound(now);
            self.check_volume(now);
        }
        if matches!(
            result,
            Err(PacketDrop::NotConnected | PacketDrop::NotIp | PacketDrop::OutsideSelectors)
        ) {
            self.stats.dropped_outbound += 1;
        }
        result
    }

    fn encapsulate(&mut self, packet: &[u8], out: &mut [u8]) -> Result<Datagram, PacketDrop> {
        let (Some(esp), Some(child)) = (self.esp.outbound(), self.ike.child()) else {
            return Err(PacketDrop::NotConnected);
        };
        let flow = packet::flow(packet).ok_or(PacketDrop::NotIp)?;
        if !packet::allowed(&flow, &child.ts_local, &child.ts_remote) {
            return Err(PacketDrop::OutsideSelectors);
        }
        let len = esp.encapsulate(packet, out)?;
        let (local, remote) = self.ike.path();
        Ok(Datagram { local, remote, len })
    }

    /// Asks IKE for a CHILD SA rekey once the current SA nears the end of its sequence
    /// numbers or crosses the configured volume (a few comparisons per packet).
    fn check_volume(&mut self, now: Instant) {
        if self.volume_rekey_asked {
            return;
        }
        let l = self.ike.lifetimes();
        let Some(esp) = self.esp.current() else {
            return;
        };
        let c = esp.counters();
        let due =
            crate::ike::lifetime::seq_exhausting(esp.outbound.packets_left(), esp.outbound.esn())
                || crate::ike::lifetime::volume_exceeded(
                    c.packets_out + c.packets_in,
                    c.bytes_out + c.bytes_in,
                    l.child_rekey_packets,
                    l.child_rekey_bytes,
                );
        if due {
            self.volume_rekey_asked = true;
            self.ike.rekey_child(now);
            self.flush(now);
        }
    }

    /// Rekeys the CHILD SA now (as soon as no other request is in flight).
    pub fn rekey_child(&mut self, now: Instant) {
        self.ike.rekey_child(now);
        self.flush(now);
    }

    /// Rekeys the IKE SA now (as soon as no other request is in flight).
    pub fn rekey_ike(&mut self, now: Instant) {
        self.ike.rekey_ike(now);
        self.flush(now);
    }

    /// The data path's counters (summed over the CHILD SAs since connecting).
    pub fn data_stats(&self) -> DataStats {
        let replaced = self.replaced.as_ref().map(|c| c.esp.counters());
        DataStats {
            esp: self.esp.counters().sum(&replaced.unwrap_or_default()),
            ..self.stats
        }
    }

    /// The largest inner packet that fits the path MTU `mtu` after ESP in UDP (0 before the
    /// CHILD SA exists).
    pub fn max_packet(&self, mtu: usize) -> usize {
        let outer = if self.ike.path().1.is_ipv6() { 40 } else { 20 } + 8;
        self.esp
            .current()
            .map(|e| e.outbound.max_payload(mtu.saturating_sub(outer)))
            .unwrap_or(0)
    }

    /// The deadline from `poll_timeout` has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.esp.on_timeout(now);
        if self.state == State::Reconnecting {
            if self.backoff.as_mut().is_some_and(|b| b.take_due(now)) {
                self.start_attempt(now);
            }
            return;
        }
        self.ike.handle_timeout(now);
        if let Some(c) = self.next.as_mut() {
            c.ike.handle_timeout(now);
        }
        if let Some(c) = self.replaced.as_mut() {
            c.handle_timeout(now, &mut self.esp);
        }
        if self.retry_next_at.is_some_and(|t| t <= now) {
            self.retry_next_at = None;
            if self.can_make_before_break() {
                self.make_before_break(now);
            }
        }
        self.flush(now);
        if self.replaced.as_ref().is_some_and(Connection::finished) {
            self.replaced = None;
        }
    }

    /// Deletes the SAs (a DELETE request) and ends the session when answered or timed out.
    pub fn close(&mut self, now: Instant) {
        if matches!(self.state, State::Disconnected | State::Closing) {
            return;
        }
        if self.state == State::Reconnecting {
            // No IKE SA to delete: the wait for the next attempt simply ends.
            if let Some(b) = self.backoff.as_mut() {
                b.cancel();
            }
            self.set_state(now, State::Disconnected);
            self.push_event(now, Event::Disconnected(DisconnectReason::Closed));
            return;
        }
        if self.state != State::Idle {
            self.set_state(now, State::Closing);
        }
        self.retry_next_at = None;
        self.abandon_next(now);
        if let Some(c) = self.replaced.take() {
            // Its DELETE is out already; its packets in flight no longer matter.
            self.esp.carry(&c.esp.counters());
        }
        self.ike.close(now);
        self.flush(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    /// The next instant `handle_timeout` must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Reconnecting {
            return self.backoff.as_ref().and_then(|b| b.due());
        }
        [
            self.ike.poll_timeout(),
            self.esp.deadline(),
            self.next.as_ref().and_then(|c| c.ike.poll_timeout()),
            self.replaced.as_ref().and_then(Connection::deadline),
            self.retry_next_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().map(|(_, e)| e)
    }
    /// The next event with the instant it happened (the `now` of the call that raised it).
    pub fn poll_timed_event(&mut self) -> Option<(Instant, Event)> {
        self.events.pop_front()
    }

    /// The platform's view of the network changed: `locals` are the local addresses we can
    /// send from now (one bound socket each, the preferred first; empty: no network). The
    /// session moves its SAs when the current path is gone or a better one appeared (MOBIKE),
    /// or makes a new connection when the server cannot move them: beside the current one
    /// while its local address is still offered (make-before-break: the state stays
    /// `Connected`, a new `Event::Connected` tells the switch), else in its place.
    pub fn network_changed(&mut self, now: Instant, locals: &[SocketAddr]) {
        let changed = self.locals.as_slice() != locals;
        self.locals = locals.to_vec();
        match self.state {
            State::Idle | State::Disconnected => return,
            State::Reconnecting => {
                // A new network is a reason to try now rather than after the backoff.
                if changed && !locals.is_empty() {
                    if let Some(b) = self.backoff.as_mut() {
                        b.hurry(now);
                    }
                }
                return;
            }
            _ => {}
        }
        let change = self.ike.network_changed(now, locals);
        if change == PathChange::NeedsNewSa {
            if self.can_make_before_break() {
                self.make_before_break(now);
            } else {
                self.path_lost_without_mobike(now);
            }
        } else if self.next.is_some() {
            // The current path is preferred again, or there is no network: no new connection.
            log::info!("the current path is preferred again: the new connection is dropped");
            self.abandon_next(now);
        }
        self.flush(now);
    }

    /// Whether a path change can be made before break: connected (a CHILD SA carries
    /// traffic), and the current local address is still one the platform offers.
    fn can_make_before_break(&self) -> bool {
        let (local, _) = self.ike.path();
        self.state == State::Connected
            && self.ike.phase() == Phase::Established
            && self.esp.current().is_some()
            && self.locals.first().is_some_and(|&l| l != local)
            && self.locals.contains(&local)
    }

    /// The server cannot move the SAs but the old path still works: a new connection from
    /// the preferred path beside the current one, which carries traffic until the new CHILD
    /// SA is up (`switch_to_next`).
    fn make_before_break(&mut self, now: Instant) {
        let Some(&local) = self.locals.first() else {
            return;
        };
        self.retry_next_at = None;
        if let Some(c) = self.next.as_mut() {
            if c.local == local {
                // Already being made from there.
                let _ = c.ike.network_changed(now, &self.locals);
                return;
            }
        }
        self.abandon_next(now);
        let server = self.server_for(local);
        log::info!(
            "the server cannot move the SAs: a new connection from {local} while {} still carries traffic",
            self.ike.path().0
        );
        let mut ike = Initiator::new(self.params.clone(), Box::new(self.rng.clone()));
        ike.omit_initial_contact();
        ike.set_server_addresses(&self.server_addresses);
        self.next = Some(Connection::start(ike, now, local, server, &self.locals));
    }

    /// Gives up the connection being made (DELETE sent once if it has keys).
    fn abandon_next(&mut self, now: Instant) {
        if let Some(mut c) = self.next.take() {
            c.ike.close(now);
            c.drain(&mut self.transmits);
        }
    }

    /// The new connection's CHILD SA is up: outbound moves to it, the old connection is
    /// deleted on its own path and keeps receiving for a grace time.
    fn switch_to_next(&mut self, now: Instant) {
        let Some(mut c) = self.next.take() else {
            return;
        };
        if let Some(spi_in) = c.ike.child().map(|ch| ch.spi_in) {
            connection::install_child(&mut c.ike, &mut c.esp, spi_in);
            c.esp.make_current(spi_in);
        }
        if c.esp.current().is_none() {
            c.ike.close(now);
            c.drain(&mut self.transmits);
            return self.next_failed(now, DisconnectReason::NegotiationFailed("ESP keys".into()));
        }
        self.swap_current(&mut c);
        // `c` is the old connection now.
        log::info!(
            "new connection from {} is up: traffic moved, deleting the old one on {}",
            self.local,
            c.local
        );
        self.volume_rekey_asked = false;
        c.ike.close(now);
        c.receive_until = Some(now + esp_set::RETIRE_GRACE);
        c.drain(&mut self.transmits);
        if let Some(prev) = self.replaced.replace(c) {
            self.esp.carry(&prev.esp.counters());
        }
        if let Some(b) = self.backoff.as_mut() {
            b.reset();
        }
        let info = self.connected_info();
        self.push_event(now, Event::Connected(info));
    }

    /// The new connection failed: the current one keeps carrying traffic; try again after
    /// the reconnect backoff (or at the next network change).
    fn next_failed(&mut self, now: Instant, reason: DisconnectReason) {
        self.next = None;
        match self.backoff.as_mut() {
            Some(b) => {
                let (attempt, delay) = b.schedule(now, &mut self.rng);
                self.retry_next_at = Some(now + delay);
                log::warn!(
                    "new connection failed ({reason}): staying on {}, attempt {attempt} in {delay:?}",
                    self.ike.path().0
                );
            }
            None => log::warn!(
                "new connection failed ({reason}): staying on {} until the network changes",
                self.ike.path().0
            ),
        }
    }

    /// Exchanges the current connection with `c`.
    fn swap_current(&mut self, c: &mut Connection) {
        std::mem::swap(&mut self.ike, &mut c.ike);
        std::mem::swap(&mut self.esp, &mut c.esp);
        std::mem::swap(&mut self.natt, &mut c.natt);
        std::mem::swap(&mut self.local, &mut c.local);
        std::mem::swap(&mut self.server, &mut c.server);
    }

    /// Moves out what the other connections produced, and acts on their events.
    fn flush_others(&mut self, now: Instant) {
        if let Some(c) = self.replaced.as_mut() {
            c.drain(&mut self.transmits);
            while let Some(e) = c.ike.poll_event() {
                log::debug!("replaced connection: {e:?}");
            }
        }
        let Some(c) = self.next.as_mut() else {
            return;
        };
        c.drain(&mut self.transmits);
        let mut outcome = None;
        while let Some(e) = c.ike.poll_event() {
            match e {
                IkeEvent::ChildEstablished => {
                    outcome = Some(Ok(()));
                    break;
                }
                IkeEvent::Down(reason) => {
                    outcome = Some(Err(reason));
                    break;
                }
                e => log::debug!("new connection: {e:?}"),
            }
        }
        match outcome {
            Some(Ok(())) => self.switch_to_next(now),
            Some(Err(reason)) => self.next_failed(now, reason),
            None => {}
        }
    }

    /// The path changed and the IKE SA cannot move: a new connection from the new path, at
    /// once. An attempt in progress simply starts over there; an established IKE SA is
    /// deleted (from the new path: the server may still know it) before the new one starts.
    fn path_lost_without_mobike(&mut self, now: Instant) {
        self.abandon_next(now);
        self.retry_next_at = None;
        if self.ike.phase() == Phase::Established {
            log::info!("the server cannot move the SAs: a new connection from the new path");
            // The DELETE leaves from the new path: the old one is gone.
            if let Some(&local) = self.locals.first() {
                let (_, remote) = self.ike.path();
                self.ike.set_path(local, remote);
                self.local = local;
            }
            self.ike.close(now);
            self.flush(now);
        }
        self.start_attempt(now);
    }

    /// Every address the server's name resolves to now (the caller resolves it again before
    /// each reconnect attempt and after a network change). Candidates for MOBIKE and for the
    /// next connection attempt.
    pub fn set_server_addresses(&mut self, now: Instant, addresses: &[IpAddr]) {
        let _ = now;
        self.server_addresses = addresses.iter().take(16).copied().collect();
        self.ike.set_server_addresses(&self.server_addresses);
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

    fn set_state(&mut self, now: Instant, s: State) {
        if self.state != s {
            self.state = s;
            self.push_event(now, Event::StateChanged(s));
        }
    }

    fn push_event(&mut self, now: Instant, e: Event) {
        self.events.push_back((now, e));
    }

    /// Moves what IKE produced out: the switch to the NAT-T port once IKE_SA_INIT is done,
    /// datagrams framed for the path, and events.
    fn flush(&mut self, now: Instant) {
        self.flush_others(now);
        self.drain_current();
        while let Some(e) = self.ike.poll_event() {
            match e {
                IkeEvent::IkeEstablished => self.set_state(now, State::IkeSaEstablished),
                IkeEvent::ChildEstablished => {
                    self.esp.clear();
                    if let Some(spi_in) = self.ike.child().map(|c| c.spi_in) {
                        self.install_child(spi_in);
                        self.esp.make_current(spi_in);
                    }
                    let info = self.connected_info();
                    self.was_connected = true;
                    if let Some(b) = self.backoff.as_mut() {
                        b.reset();
                    }
                    self.set_state(now, State::Connected);
                    self.push_event(now, Event::Connected(info));
                }
                IkeEvent::ChildInstalled { spi_in } => self.install_child(spi_in),
                IkeEvent::ChildRekeyed { old_spi_in, spi_in } => {
                    self.install_child(spi_in);
                    self.esp.make_current(spi_in);
                    self.esp.retire(old_spi_in, now);
                    self.volume_rekey_asked = false;
                    let spi_out = self.ike.child().map(|c| c.spi_out).unwrap_or(0);
                    self.push_event(now, Event::Rekeyed(RekeyKind::Child { spi_in, spi_out }));
                }
                IkeEvent::ChildRetired { spi_in } => self.esp.retire(spi_in, now),
                IkeEvent::IkeRekeyed => {
                    let (spi_i, spi_r) = self.ike.spis();
                    self.push_event(now, Event::Rekeyed(RekeyKind::Ike { spi_i, spi_r }));
                }
                IkeEvent::Roaming => {
                    if self.state == State::Connected {
                        self.set_state(now, State::Roaming);
                    }
                }
                IkeEvent::Roamed { local, remote } => {
                    self.local = local;
                    self.server = SocketAddr::new(remote.ip(), self.server.port());
                    if self.state == State::Roaming {
                        self.set_state(now, State::Connected);
                    }
                    self.push_event(now, Event::Roamed { local, remote });
                }
                IkeEvent::Down(reason) => self.lost(now, reason),
            }
        }
    }

    /// Frames the current IKE SA's datagrams for its path.
    fn drain_current(&mut self) {
        connection::drain(
            &mut self.ike,
            &mut self.natt,
            self.local,
            self.server,
            &mut self.transmits,
        );
    }

    /// The IKE SA is gone: the connection being made takes over if there is one; else wait
    /// and reconnect when that can help, or end the session.
    fn lost(&mut self, now: Instant, reason: DisconnectReason) {
        self.esp.clear();
        if self.state != State::Closing {
            if let Some(mut c) = self.next.take() {
                log::info!(
                    "connection lost ({reason}): the one being made from {} takes over",
                    c.local
                );
                self.swap_current(&mut c);
                self.volume_rekey_asked = false;
                self.set_state(now, State::Connecting);
                self.drain_current();
                return;
            }
        }
        // A replaced connection's DELETE and grace are moot once there is none left.
        self.replaced = None;
        self.retry_next_at = None;
        let retry = self.was_connected
            && self.state != State::Closing
            && !reason.is_permanent()
            && self.backoff.is_some();
        let next = match self.backoff.as_mut() {
            Some(b) if retry => Some(b.schedule(now, &mut self.rng)),
            _ => None,
        };
        match next {
            Some((attempt, delay)) => {
                log::info!("connection lost ({reason}): attempt {attempt} in {delay:?}");
                self.set_state(now, State::Reconnecting);
                self.push_event(
                    now,
                    Event::Reconnecting {
                        attempt,
                        delay,
                        reason,
                    },
                );
            }
            None => {
                self.set_state(now, State::Disconnected);
                self.push_event(now, Event::Disconnected(reason));
            }
        }
    }

    /// Keys the ESP SA of IKE's CHILD SA `spi_in` and accepts inbound packets on it.
    fn install_child(&mut self, spi_in: u32) {
        connection::install_child(&mut self.ike, &mut self.esp, spi_in);
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
