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
//!
//! This module owns the `Session` itself: its lifecycle (connect, attempts, loss and
//! reconnect, close), IKE's events and the timers. The rest lives beside it: `types` (the
//! public types, re-exported here), `demux` (which connection a datagram is for), `data` (the
//! ESP data path), `paths` (network changes, MOBIKE and make-before-break), `connection`,
//! `esp_set` and `reconnect`.

mod connection;
mod data;
mod demux;
mod esp_set;
mod paths;
mod reconnect;
mod transport;
mod types;

pub use esp_set::EspSet;
pub use reconnect::ReconnectPolicy;
pub use transport::Transport;
pub use types::{
    ConfigError, ConnectedInfo, DataStats, Datagram, DisconnectReason, Event, PacketDrop, Received,
    RekeyKind, State, Transmit,
};

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use connection::Connection;

use crate::config::ClientConfig;
use crate::ike::initiator::{IkeEvent, Initiator, Phase};
use crate::ike::params::IkeParams;
use crate::rng::{Rng, SharedRng};
use crate::wire::IKE_PORT;

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
    /// UDP, or TCP frames (RFC 9329) on a connection the runtime opened (`transport`).
    transport: Transport,
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
    /// keeps carrying traffic on the old path. Boxed, as `replaced`: both are rare, and inline
    /// they made up two thirds of a session that moves by value into the driver.
    next: Option<Box<Connection>>,
    /// The connection the last make-before-break replaced: its DELETE in flight, its ESP SAs
    /// receiving packets in flight for a grace time.
    replaced: Option<Box<Connection>>,
    /// When to try the make-before-break again after the new connection failed.
    retry_next_at: Option<Instant>,
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
            transport: Transport::Udp,
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
        // Over TCP the NAT-T framing is the frame body from the first message on.
        self.natt = self.server.port() != IKE_PORT || self.transport == Transport::Tcp;
        self.ike.set_transport(self.transport);
        self.set_state(now, State::Connecting);
        self.ike.set_server_addresses(&self.server_addresses);
        self.ike.start(now, self.local, self.server);
        if !self.locals.is_empty() {
            // The new IKE SA learns where it may move later.
            let _ = self.ike.network_changed(now, &self.locals);
        }
        self.flush(now);
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
        if self.replaced.as_ref().is_some_and(|c| c.finished()) {
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
            self.replaced.as_ref().and_then(|c| c.deadline()),
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
            transport: self.transport,
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
