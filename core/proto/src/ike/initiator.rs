//! The initiator's IKE SA: its state, the dispatch of received messages to the task of each
//! exchange (`init`, `auth`, `eap`, `info`), and the sending of requests and responses
//! through the task manager. IKE messages in and out carry no non-ESP marker: the session
//! layer frames them for the path.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{debug, info, warn};

use crate::crypto::dh::KeyExchange;
use crate::crypto::proposal::Selected;
use crate::ike::child::ChildSa;
use crate::ike::keys::SaKeys;
use crate::ike::natd::NatState;
use crate::ike::params::IkeParams;
use crate::ike::protect::{self, Opened, Reassembly};
use crate::ike::task_manager::{
    RequestKind, RequestMatch, ResponseMatch, TaskManager, TimeoutAction,
};
use crate::rng::Rng;
use crate::session::DisconnectReason;
use crate::wire::{flags, ExchangeType, HashAlgorithm, Header, Message, Payload};

/// Where the IKE SA is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    /// IKE_SA_INIT in flight.
    Init,
    /// IKE_AUTH rounds in flight (including EAP).
    Auth,
    Established,
    /// Our DELETE is in flight.
    Deleting,
    Dead,
}

/// What the IKE SA tells the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IkeEvent {
    /// The IKE SA is authenticated both ways.
    IkeEstablished,
    /// The first CHILD SA exists (keys on both ends).
    ChildEstablished,
    /// The IKE SA is gone.
    Down(DisconnectReason),
    /// A MOBIKE update to another path started.
    Roaming,
    /// The IKE SA and ESP now travel between `local` and `remote` (MOBIKE).
    Roamed {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A CHILD SA made by a rekey exists (`Initiator::child_sa(spi_in)`): accept inbound
    /// packets on it; outbound stays where it is.
    ChildInstalled { spi_in: u32 },
    /// Outbound moves to the CHILD SA `spi_in` (now `Initiator::child()`), which replaces
    /// `old_spi_in`; the old one keeps receiving for a while.
    ChildRekeyed { old_spi_in: u32, spi_in: u32 },
    /// The CHILD SA `spi_in` is deleted: drop it once packets in flight had their chance.
    ChildRetired { spi_in: u32 },
    /// The IKE SA was rekeyed: new SPIs (`Initiator::spis()`), message IDs from 0.
    IkeRekeyed,
}

/// What we learned about the responder during the handshake.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    pub fragmentation: bool,
    pub hash_algorithms: Vec<HashAlgorithm>,
    pub nat: NatState,
    pub mobike: bool,
    pub additional_addresses: Vec<IpAddr>,
    /// The responder asked for certificates (CERTREQ).
    pub wants_cert: bool,
}

/// The configuration the responder handed out (CP reply).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignedConfig {
    pub addresses: Vec<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub domains: Vec<String>,
}

/// Counters of what was dropped and why, never reset during the SA's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub malformed: u64,
    pub unknown_spi: u64,
    pub unexpected: u64,
    pub integrity: u64,
    /// Unauthenticated IKE_SA_INIT responses refused (an error notify, a proposal we did
    /// not offer, a mismatched KE, a bad nonce) while waiting for an acceptable one.
    pub refused: u64,
    /// Fragments refused by reassembly's caps (count, bytes; `protect`).
    pub fragments: u64,
}

/// The IKE SA, initiator role.
pub struct Initiator {
    pub(super) params: std::sync::Arc<IkeParams>,
    pub(super) rng: Box<dyn Rng>,
    pub(super) spi_i: u64,
    pub(super) spi_r: u64,
    /// Whether we are the IKE SA's original initiator (false after the server rekeyed it):
    /// the I flag, and which keys are SK_ei/SK_er. `spi_i`/`spi_r` stay in header order.
    pub(super) original_initiator: bool,
    pub(super) rekey: super::rekey::RekeyState,
    pub(super) phase: Phase,
    pub(super) tm: TaskManager,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    // IKE_SA_INIT
    pub(super) ke: Option<Box<dyn KeyExchange>>,
    pub(super) ni: Vec<u8>,
    pub(super) nr: Vec<u8>,
    pub(super) cookie: Option<Vec<u8>>,
    pub(super) init_retries: u32,
    pub(super) init_request: Vec<u8>,
    pub(super) init_response: Vec<u8>,
    /// Why the last IKE_SA_INIT response was refused (the reason given if none is accepted).
    pub(super) init_refused: Option<DisconnectReason>,
    pub(super) ike_selected: Option<Selected>,
    pub(super) keys: Option<SaKeys>,
    pub(super) peer: PeerInfo,
    // IKE_AUTH
    pub(super) auth: super::auth::AuthState,
    pub(super) child: Option<ChildSa>,
    pub(super) assigned: AssignedConfig,
    // plumbing
    reassembly_responses: Reassembly,
    reassembly_requests: Reassembly,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<IkeEvent>,
    pub(super) drops: DropCounters,
    // staying connected
    pub(super) live: super::liveness::Liveness,
    pub(super) mobike: super::mobike::Mobike,
    /// UDP, or a TCP stream (RFC 9329: no keepalives, fragments or retransmissions).
    pub(super) transport: crate::session::Transport,
    /// Additional key exchanges (IKE_INTERMEDIATE) and IntAuth.
    pub(super) pq: super::intermediate::PqState,
}

impl Initiator {
    /// A new IKE SA that will connect with `params`.
    pub fn new(params: std::sync::Arc<IkeParams>, mut rng: Box<dyn Rng>) -> Self {
        let mut spi_i = 0;
        while spi_i == 0 {
            spi_i = rng.next_u64();
        }
        let retransmit = params.config.retransmit;
        let lifetimes = params.config.lifetimes;
        Self {
            params,
            rng,
            spi_i,
            spi_r: 0,
            original_initiator: true,
            rekey: super::rekey::RekeyState::new(lifetimes),
            phase: Phase::Idle,
            tm: TaskManager::new(retransmit),
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
            ke: None,
            ni: Vec::new(),
            nr: Vec::new(),
            cookie: None,
            init_retries: 0,
            init_refused: None,
            init_request: Vec::new(),
            init_response: Vec::new(),
            ike_selected: None,
            keys: None,
            peer: PeerInfo::default(),
            auth: super::auth::AuthState::default(),
            child: None,
            assigned: AssignedConfig::default(),
            reassembly_responses: Reassembly::default(),
            reassembly_requests: Reassembly::default(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            drops: DropCounters::default(),
            live: Default::default(),
            mobike: Default::default(),
            transport: Default::default(),
            pq: Default::default(),
        }
    }

    /// Starts IKE_SA_INIT from `local` to `remote`.
    pub fn start(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        if self.phase != Phase::Idle {
            return;
        }
        self.local = local;
        self.remote = remote;
        self.phase = Phase::Init;
        self.send_init_request(now);
    }

    /// Updates the addresses the messages travel between (a switch to port 4500).
    pub fn set_path(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.local = local;
        self.remote = remote;
    }

    /// An IKE message (no non-ESP marker) arrived from `from`.
    pub fn handle_message_from(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.live.from = Some(from);
        self.handle_message(now, data);
        self.live.from = None;
    }

    /// An IKE message (no non-ESP marker) arrived.
    pub fn handle_message(&mut self, now: Instant, data: &[u8]) {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                debug!("dropping malformed IKE message: {e}");
                self.drops.malformed += 1;
                return;
            }
        };
        let h = msg.header;
        if self.route_to_old_ike(&msg) {
            return;
        }
        let spi_r_ok = self.phase == Phase::Init || h.spi_r == self.spi_r;
        // A restarted server may answer INVALID_IKE_SPI without our SPIr (liveness checks it).
        let spi_r_ok = spi_r_ok
            || (h.spi_r == 0 && h.exchange == ExchangeType::INFORMATIONAL && h.is_response());
        if h.spi_i != self.spi_i || !spi_r_ok {
            debug!(
                "dropping IKE message for unknown SPIs {:016x}_{:016x}",
                h.spi_i, h.spi_r
            );
            self.drops.unknown_spi += 1;
            return;
        }
        if h.is_initiator() == self.original_initiator {
            // Our own role's flag on a message to us: a reflection, not the peer.
            self.drops.unexpected += 1;
            return;
        }
        if h.is_response() {
            self.handle_response(now, &msg);
        } else {
            self.handle_request(now, &msg);
        }
        self.drive_rekey(now);
    }

    fn handle_response(&mut self, now: Instant, msg: &Message<'_>) {
        let h = msg.header;
        if self.tm.outstanding_id() != Some(h.message_id) {
            self.drops.unexpected += 1;
            return;
        }
        if h.exchange == ExchangeType::IKE_SA_INIT {
            if self.phase == Phase::Init
                && self.tm.outstanding_kind() == Some(RequestKind::IkeSaInit)
            {
                self.process_init_response(now, msg);
            } else {
                self.drops.unexpected += 1;
            }
            return;
        }
        if msg.encrypted().is_none() && msg.fragment().is_none() {
            return self.handle_unprotected_response(msg);
        }
        let Some(opened) = self.open(now, msg, true) else {
            return;
        };
        self.live.heard(now);
        let payloads = opened.payloads();
        if self.tm.outstanding_kind() == Some(RequestKind::UpdateSa)
            && !payloads.as_ref().is_ok_and(|p| self.update_response_ok(p))
        {
            debug!("dropping a response to our update without its COOKIE2");
            self.drops.unexpected += 1;
            return;
        }
        let kind = match self.tm.match_response(h.message_id) {
            ResponseMatch::Expected(k) => k,
            ResponseMatch::Unexpected => return,
        };
        let payloads = match payloads {
            Ok(p) => p,
            Err(e) => {
                warn!("malformed payloads in {} response: {e}", h.exchange);
                self.fail(DisconnectReason::ProtocolError(format!(
                    "malformed {} response",
                    h.exchange
                )));
                return;
            }
        };
        match kind {
            RequestKind::IkeAuth => self.process_auth_response(now, &payloads),
            RequestKind::IkeIntermediate => {
                self.process_intermediate_response(now, &h, &opened, &payloads)
            }
            RequestKind::Delete => self.finish(DisconnectReason::Closed),
            RequestKind::Dpd => self.path_answered(now),
            RequestKind::UpdateSa => self.process_update_response(now, &payloads),
            RequestKind::CreateChildSa => self.process_create_child_response(now, &payloads),
            RequestKind::FollowupKe => self.process_followup_response(now, &payloads),
            RequestKind::DeleteChild => self.child_delete_done(),
            RequestKind::Informational | RequestKind::IkeSaInit => {
                debug!("response to {kind:?} with {} payloads", payloads.len());
            }
        }
        self.send_pending_update(now);
    }

    fn handle_request(&mut self, now: Instant, msg: &Message<'_>) {
        if !matches!(
            self.phase,
            Phase::Established | Phase::Deleting | Phase::Auth
        ) {
            self.drops.unexpected += 1;
            return;
        }
        let h = msg.header;
        match self.tm.match_request(h.message_id) {
            RequestMatch::New => {}
            RequestMatch::Retransmitted(d) => {
                debug!(
                    "peer retransmitted request {}: resending our response",
                    h.message_id
                );
                self.outbox.extend(d);
                return;
            }
            RequestMatch::Invalid => {
                self.drops.unexpected += 1;
                return;
            }
        }
        let Some(opened) = self.open(now, msg, false) else {
            return;
        };
        self.live.heard(now);
        let payloads = match opened.payloads() {
            Ok(p) => p,
            Err(e) => {
                debug!("malformed payloads in {} request: {e}", h.exchange);
                self.drops.malformed += 1;
                return;
            }
        };
        self.process_request(now, h, &payloads);
    }

    /// Decrypts an SK message or feeds an SKF fragment to reassembly.
    fn open(&mut self, now: Instant, msg: &Message<'_>, response: bool) -> Option<Opened> {
        let Some(keys) = self.keys.as_ref() else {
            self.drops.unexpected += 1;
            return None;
        };
        let result = if msg.fragment().is_some() {
            let r = if response {
                &mut self.reassembly_responses
            } else {
                &mut self.reassembly_requests
            };
            r.add_at(now, &keys.inbound, msg)
        } else {
            protect::open(&keys.inbound, msg).map(Some)
        };
        match result {
            Ok(o) => o,
            Err(
                e @ (protect::ProtectError::TooLarge | protect::ProtectError::TooManyFragments(_)),
            ) => {
                debug!("dropping fragment: {e}");
                self.drops.fragments += 1;
                None
            }
            Err(e) => {
                debug!("dropping protected message: {e}");
                self.drops.integrity += 1;
                None
            }
        }
    }

    pub(super) fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        let role = if self.original_initiator {
            flags::INITIATOR
        } else {
            0
        };
        Header::new(
            self.spi_i,
            self.spi_r,
            exchange,
            role | if response { flags::RESPONSE } else { 0 },
            message_id,
        )
    }

    /// Queues datagrams already sealed (a replaced IKE SA's messages).
    pub(super) fn queue_datagrams(&mut self, d: Vec<Vec<u8>>) {
        self.outbox.extend(d);
    }

    /// Forgets partial fragmented messages (the IKE SA's keys changed).
    pub(super) fn clear_reassembly(&mut self) {
        self.reassembly_requests.clear();
        self.reassembly_responses.clear();
    }

    fn seal(&mut self, header: &Header, payloads: &[Payload<'_>]) -> Vec<Vec<u8>> {
        let frag = (self.peer.fragmentation && !self.over_tcp())
            .then_some(self.params.config.fragment_size);
        match self.keys.as_ref() {
            Some(k) => protect::seal(&k.outbound, self.rng.as_mut(), header, payloads, frag),
            None => Vec::new(),
        }
    }

    /// Seals and sends a request of ours, tracked for retransmission.
    pub(super) fn send_request(
        &mut self,
        now: Instant,
        kind: RequestKind,
        exchange: ExchangeType,
        payloads: &[Payload<'_>],
    ) {
        let header = self.header(exchange, false, self.tm.next_request_id());
        let datagrams = self.seal(&header, payloads);
        self.outbox.extend(datagrams.iter().cloned());
        self.live.sent(now);
        self.tm.sent_request(now, kind, datagrams);
    }

    /// Like `send_request`, retransmitted on `schedule` (liveness checks, MOBIKE).
    pub(super) fn send_request_scheduled(
        &mut self,
        now: Instant,
        kind: RequestKind,
        exchange: ExchangeType,
        payloads: &[Payload<'_>],
        schedule: crate::config::Retransmit,
    ) {
        let header = self.header(exchange, false, self.tm.next_request_id());
        let datagrams = self.seal(&header, payloads);
        self.outbox.extend(datagrams.iter().cloned());
        self.live.sent(now);
        self.tm.sent_request_with(now, kind, datagrams, schedule);
    }

    /// Seals request `message_id` without tracking it (a new version of the request in
    /// flight: the caller replaces its datagrams).
    pub(super) fn seal_request(
        &mut self,
        exchange: ExchangeType,
        message_id: u32,
        payloads: &[Payload<'_>],
    ) -> Vec<Vec<u8>> {
        let header = self.header(exchange, false, message_id);
        self.seal(&header, payloads)
    }

    pub(super) fn outbox_extend(&mut self, datagrams: Vec<Vec<u8>>) {
        self.outbox.extend(datagrams);
    }

    /// Seals and sends our response to the peer's request `message_id`.
    pub(super) fn send_response(
        &mut self,
        exchange: ExchangeType,
        message_id: u32,
        payloads: &[Payload<'_>],
    ) {
        let header = self.header(exchange, true, message_id);
        let datagrams = self.seal(&header, payloads);
        self.outbox.extend(datagrams.iter().cloned());
        self.tm.sent_response(message_id, datagrams);
    }

    /// Sends a plaintext IKE_SA_INIT request (first send or a retry with the same ID).
    pub(super) fn send_plain_init(&mut self, now: Instant, bytes: Vec<u8>) {
        self.outbox.push_back(bytes.clone());
        if self.tm.busy() {
            self.tm.resend_as_new(now, vec![bytes]);
        } else {
            self.tm
                .sent_request(now, RequestKind::IkeSaInit, vec![bytes]);
        }
    }

    /// The retransmission timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.holding() {
            // No network: hold everything until it comes back.
            return;
        }
        let live_deadline = self.liveness_deadline();
        match self.tm.on_timeout(now) {
            TimeoutAction::Nothing => {}
            TimeoutAction::Retransmit(d) => {
                debug!("retransmitting {:?}", self.tm.outstanding_kind());
                self.live.sent(now);
                if self.tm.outstanding_kind() == Some(RequestKind::UpdateSa) {
                    self.update_retransmit(now, d);
                } else {
                    self.outbox.extend(d);
                }
            }
            TimeoutAction::GaveUp(kind) => match kind {
                RequestKind::Delete => self.finish(DisconnectReason::Closed),
                RequestKind::IkeSaInit if self.init_refused.is_some() => {
                    let reason = self
                        .init_refused
                        .take()
                        .unwrap_or(DisconnectReason::Timeout);
                    self.fail(reason)
                }
                RequestKind::UpdateSa => self.update_failed(),
                _ => {
                    warn!("no response to {kind:?}: giving up");
                    self.finish(DisconnectReason::Timeout);
                }
            },
        }
        self.liveness_timeout(now, live_deadline);
        self.send_pending_update(now);
        self.rekey_timeout(now);
    }

    /// Deletes the IKE SA: a DELETE request once established, or just stops before.
    pub fn close(&mut self, now: Instant) {
        match self.phase {
            Phase::Established | Phase::Auth if self.keys.is_some() => {
                self.tm.abandon();
                self.phase = Phase::Deleting;
                self.send_delete(now);
            }
            Phase::Deleting | Phase::Dead => {}
            _ => self.finish(DisconnectReason::Closed),
        }
    }

    /// Ends the IKE SA with an error.
    pub(super) fn fail(&mut self, reason: DisconnectReason) {
        warn!("IKE SA failed: {reason}");
        self.finish(reason);
    }

    /// Ends the IKE SA.
    pub(super) fn finish(&mut self, reason: DisconnectReason) {
        if self.phase == Phase::Dead {
            return;
        }
        info!(
            "IKE SA {:016x}_{:016x} down: {reason}",
            self.spi_i, self.spi_r
        );
        self.phase = Phase::Dead;
        self.tm.abandon();
        self.reassembly_requests.clear();
        self.reassembly_responses.clear();
        self.keys = None;
        self.ke = None;
        self.events.push_back(IkeEvent::Down(reason));
    }

    pub(super) fn emit(&mut self, e: IkeEvent) {
        self.events.push_back(e);
    }

    pub fn poll_message(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<IkeEvent> {
        self.events.pop_front()
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Dead || self.holding() {
            return None;
        }
        [
            self.tm.deadline(),
            self.liveness_deadline(),
            self.rekey_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn spis(&self) -> (u64, u64) {
        (self.spi_i, self.spi_r)
    }
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
    pub fn child(&self) -> Option<&ChildSa> {
        self.child.as_ref()
    }
    pub fn assigned(&self) -> &AssignedConfig {
        &self.assigned
    }
    pub fn ike_proposal(&self) -> Option<&Selected> {
        self.ike_selected.as_ref()
    }
    /// The random generator, for the data plane's keys and IVs.
    pub fn rng(&mut self) -> &mut dyn Rng {
        self.rng.as_mut()
    }
    pub fn drops(&self) -> DropCounters {
        self.drops
    }
    /// The path of IKE messages: local and remote addresses.
    pub fn path(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.remote)
    }
    /// The current IKE SA's keys (only with the `test-keys` feature: tests that look for
    /// key bytes where they must not be).
    #[cfg(feature = "test-keys")]
    pub fn sa_keys(&self) -> Option<&SaKeys> {
        self.keys.as_ref()
    }

    /// The CHILD SA's and IKE SA's keys exist on our side.
    pub fn has_keys(&self) -> bool {
        self.keys.is_some()
    }
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}
