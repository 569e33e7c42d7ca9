//! The responder role: a small road-warrior server for tests, the demo and benchmarks. It
//! answers IKE_SA_INIT (with optional COOKIE and INVALID_KE_PAYLOAD), IKE_AUTH with PSK or
//! certificates (and checks the client's), hands out addresses and DNS from a pool through
//! CP, creates one CHILD SA per client, and answers INFORMATIONAL requests (MOBIKE updates
//! and unknown SPIs in `mobility`). Sans-IO, like
//! the initiator: datagrams in, datagrams and events out.
//!
//! Its data path (`data`) carries each client's ESP: [`Responder::handle_esp`] opens ESP from
//! the network for the server's packet side, [`Responder::route_packet`] seals packets from the
//! packet side for the client whose virtual IP they go to. Leases come from `pool` and return
//! to it when the client's IKE SA goes.
//!
//! What an outsider can fill is capped: IKE SAs at `MAX_SAS`, half-open ones at
//! [`MAX_HALF_OPEN`] with a COOKIE demanded from [`COOKIE_THRESHOLD`] on (`admission`), one
//! fragment reassembly per SA (`protect`), one cached response per SA (the task manager's
//! window of one), leases at the pools' sizes, and `mobility`'s lists at their own caps.

mod admission;
mod data;
mod mobility;
mod pool;
mod rekey;

pub use admission::{AdmissionStats, COOKIE_THRESHOLD, HALF_OPEN_TIMEOUT, MAX_HALF_OPEN};
pub use data::DataStats;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use log::{debug, info};

use crate::config::Retransmit;
use crate::crypto::cert::Certificate;
use crate::crypto::dh::new_key_exchange;
use crate::crypto::proposal::{choose, ProposalSpec};
use crate::crypto::sign::PrivateKey;
use crate::crypto::{ct_eq, Secret};
use crate::esp::EspSa;
use crate::identity::Identity;
use crate::ike::child::ChildSa;
use crate::ike::init::{hash_algorithms_data, parse_hash_algorithms, NONCE_LEN};
use crate::ike::keys::{Role, SaKeys};
use crate::ike::natd::{self, NatState};
use crate::ike::protect::{self, Opened, Reassembly};
use crate::ike::task_manager::{RequestMatch, TaskManager};
use crate::rng::Rng;
use crate::wire::message::write_message;
use crate::wire::{
    flags, CertEncoding, ExchangeType, HashAlgorithm, Header, Message, NotifyType, Payload,
    ProtocolId, TrafficSelector,
};

/// How the responder authenticates itself and its clients.
#[derive(Debug)]
pub enum ResponderAuth {
    /// One PSK shared with every client.
    Psk(Secret),
    /// We sign with our certificate; clients sign with theirs, checked against `ca`.
    Certificate {
        chain: Vec<Certificate>,
        key: PrivateKey,
    },
}

/// The responder's configuration.
#[derive(Debug)]
pub struct ResponderConfig {
    pub id: Identity,
    pub auth: ResponderAuth,
    /// Trust anchors for client certificates.
    pub ca: Vec<Certificate>,
    /// EAP-MSCHAPv2 users (name, password): clients that send no AUTH are asked for EAP
    /// (our side then signs with its certificate).
    pub eap_users: Vec<(String, Secret)>,
    pub ike: Vec<ProposalSpec>,
    pub esp: Vec<ProposalSpec>,
    /// First address of the IPv4 / IPv6 pools and how many addresses each has.
    pub pool4: Option<(Ipv4Addr, u32)>,
    pub pool6: Option<(Ipv6Addr, u32)>,
    pub dns: Vec<IpAddr>,
    /// What clients may reach (TSr is narrowed to these).
    pub subnets: Vec<TrafficSelector>,
    pub mobike: bool,
    /// Demand a COOKIE in IKE_SA_INIT (RFC 7296 §2.6), as under load.
    pub require_cookie: bool,
    pub retransmit: Retransmit,
    pub fragment_size: usize,
    pub unix_time: Option<u64>,
}

/// What the responder reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponderEvent {
    /// A client authenticated and has its CHILD SA.
    Established {
        spi_r: u64,
        peer: SocketAddr,
        client_id: String,
        virtual_ips: Vec<IpAddr>,
    },
    /// An IKE SA ended (deleted by the client, or failed authentication).
    Closed { spi_r: u64, reason: String },
}

/// A datagram the responder sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub remote: SocketAddr,
    /// The IKE message, without a non-ESP marker (the caller frames it for its port).
    pub message: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SaPhase {
    AwaitAuth,
    Established,
}

/// One client's IKE SA.
pub(super) struct ResponderSa {
    pub(super) phase: SaPhase,
    pub(super) spi_i: u64,
    pub(super) spi_r: u64,
    pub(super) peer: SocketAddr,
    pub(super) keys: SaKeys,
    pub(super) ni: Vec<u8>,
    pub(super) nr: Vec<u8>,
    pub(super) init_request: Vec<u8>,
    pub(super) init_response: Vec<u8>,
    pub(super) peer_hashes: Vec<HashAlgorithm>,
    pub(super) fragmentation: bool,
    /// NAT detection as we saw it (ESP goes in UDP when any side is behind one).
    pub(crate) nat: NatState,
    pub(super) tm: TaskManager,
    pub(super) reassembly: Reassembly,
    pub(super) child: Option<ChildSa>,
    pub(super) leases: Vec<IpAddr>,
    pub(super) eap: Option<super::responder_auth::EapServer>,
    /// The CHILD SA's data plane, once established.
    pub(super) esp: Option<EspSa>,
    /// Both ends agreed to MOBIKE: the client moves with UPDATE_SA_ADDRESSES.
    pub(super) mobike: bool,
    /// The SPI it was made with: its key in `Responder::sas` for life (rekeys change SPIs).
    pub(super) handle: u64,
    /// Whether we are the original initiator (after we rekeyed the IKE SA).
    pub(super) original_initiator: bool,
    pub(super) rekey: rekey::ServerRekey,
    /// When IKE_SA_INIT made it (half-open SAs expire by it when room is needed).
    pub(super) created: Instant,
    /// Additional key exchanges (IKE_INTERMEDIATE) and IntAuth.
    pub(super) pq: super::intermediate::PqState,
}

/// The responder.
pub struct Responder {
    pub(super) cfg: ResponderConfig,
    pub(super) rng: Box<dyn Rng>,
    sas: HashMap<u64, ResponderSa>,
    /// (peer, SPIi) of IKE SAs past IKE_SA_INIT, to answer retransmitted IKE_SA_INIT requests.
    half_open: HashMap<(SocketAddr, u64), u64>,
    cookie_secret: [u8; 32],
    pool4: Option<pool::Pool>,
    pool6: Option<pool::Pool>,
    /// Inbound ESP SPI -> IKE SA.
    by_spi: HashMap<u32, u64>,
    /// Virtual IP -> IKE SA.
    by_vip: HashMap<IpAddr, u64>,
    /// Our SPI of a rekeyed IKE SA -> the SA's handle.
    by_ike_spi: HashMap<u64, u64>,
    data: DataStats,
    outbox: VecDeque<Outgoing>,
    pub(super) events: VecDeque<ResponderEvent>,
    dropped: u64,
    mobility: mobility::Mobility,
    admission: AdmissionStats,
    /// Post-quantum preshared keys (RFC 8784), see `with_ppks`.
    pub(super) ppks: super::ppk::ResponderPpks,
}

/// Most IKE SAs one responder keeps (tests and demos; a bound against floods).
pub const MAX_SAS: usize = 4096;

impl Responder {
    pub fn new(cfg: ResponderConfig, mut rng: Box<dyn Rng>) -> Self {
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        let pool4 = cfg
            .pool4
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| pool::Pool::new(a.into(), n));
        let pool6 = cfg
            .pool6
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| pool::Pool::new(a.into(), n));
        Self {
            cfg,
            rng,
            sas: HashMap::new(),
            half_open: HashMap::new(),
            cookie_secret,
            pool4,
            pool6,
            by_spi: HashMap::new(),
            by_vip: HashMap::new(),
            by_ike_spi: HashMap::new(),
            data: DataStats::default(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
            mobility: mobility::Mobility::default(),
            admission: AdmissionStats::default(),
            ppks: Default::default(),
        }
    }

    /// An IKE message (no marker) arrived from `remote` at our `local` address.
    pub fn handle_message(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                debug!("responder: malformed message from {remote}: {e}");
                self.dropped += 1;
                return;
            }
        };
        let h = msg.header;
        self.mobility.local = Some(local);
        if h.exchange == ExchangeType::IKE_SA_INIT && h.spi_r == 0 {
            if !h.is_initiator() || h.is_response() {
                self.dropped += 1;
                return;
            }
            return self.handle_init(now, local, remote, &msg);
        }
        // Our SPI is SPIr unless we became the original initiator by rekeying the IKE SA.
        let ours = if h.is_initiator() { h.spi_r } else { h.spi_i };
        let handle = self.by_ike_spi.get(&ours).copied().unwrap_or(ours);
        let Some(mut sa) = self.sas.remove(&handle) else {
            self.dropped += 1;
            self.answer_unknown_spi(remote, &msg);
            return;
        };
        if self.rekey_old_ike(&mut sa, &msg) {
            self.sas.insert(handle, sa);
            return;
        }
        if sa.spi_i != h.spi_i || sa.spi_r != h.spi_r || h.is_initiator() == sa.original_initiator {
            self.dropped += 1;
            self.sas.insert(handle, sa);
            return;
        }
        if h.is_response() {
            // An answer to one of our requests: authentic and expected, then the rekey task.
            self.handle_sa_response(now, &mut sa, &msg);
            self.sas.insert(handle, sa);
            return;
        }
        let keep = self.handle_sa_request(now, &mut sa, remote, &msg);
        if keep {
            self.sas.insert(handle, sa);
        } else {
            self.forget(&mut sa);
        }
    }

    /// Sends a liveness check (an empty INFORMATIONAL request) on IKE SA `spi_r`.
    pub fn send_liveness_check(&mut self, now: Instant, spi_r: u64) -> bool {
        self.send_request(now, spi_r, ExchangeType::INFORMATIONAL, &[])
    }

    /// Deletes IKE SA `spi_r` (an INFORMATIONAL request with a DELETE; the SA is gone at once).
    pub fn delete_ike_sa(&mut self, now: Instant, spi_r: u64) -> bool {
        let d = [Payload::delete_ike()];
        let sent = self.send_request(now, spi_r, ExchangeType::INFORMATIONAL, &d);
        if let Some(mut sa) = self.sas.remove(&spi_r) {
            self.forget(&mut sa);
            self.events.push_back(ResponderEvent::Closed {
                spi_r,
                reason: "deleted by us".into(),
            });
        }
        sent
    }

    /// Sends a request of ours on an established IKE SA.
    fn send_request(
        &mut self,
        now: Instant,
        spi_r: u64,
        exchange: ExchangeType,
        payloads: &[Payload<'_>],
    ) -> bool {
        let Some(mut sa) = self.sas.remove(&spi_r) else {
            return false;
        };
        let ready = sa.phase == SaPhase::Established && !sa.tm.busy();
        if ready {
            self.send_sa_request(
                now,
                &mut sa,
                crate::ike::task_manager::RequestKind::Informational,
                exchange,
                payloads,
            );
        }
        self.sas.insert(spi_r, sa);
        ready
    }

    /// Seals, queues and tracks a request of ours on `sa` (whose window must be free).
    pub(super) fn send_sa_request(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        kind: crate::ike::task_manager::RequestKind,
        exchange: ExchangeType,
        payloads: &[Payload<'_>],
    ) {
        let f = if sa.original_initiator {
            flags::INITIATOR
        } else {
            0
        };
        let header = Header::new(sa.spi_i, sa.spi_r, exchange, f, sa.tm.next_request_id());
        let datagrams = self.seal_and_queue(sa, &header, payloads);
        sa.tm.sent_request(now, kind, datagrams);
    }

    pub fn poll_outgoing(&mut self) -> Option<Outgoing> {
        self.outbox.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<ResponderEvent> {
        self.events.pop_front()
    }
    /// The responder only answers, so it has no timers yet.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    /// Whether the client of IKE SA `spi_r` is behind a NAT as NAT detection showed.
    pub fn client_behind_nat(&self, spi_r: u64) -> Option<bool> {
        self.sas.get(&spi_r).map(|s| s.nat.remote_behind_nat)
    }
    /// The CHILD SA of the IKE SA `spi_r` (the responder's view: inbound = from the client).
    pub fn child(&self, spi_r: u64) -> Option<&ChildSa> {
        self.sas.get(&spi_r).and_then(|s| s.child.as_ref())
    }

    fn cookie_for(&self, remote: SocketAddr, spi_i: u64, ni: &[u8]) -> Vec<u8> {
        let prf = crate::crypto::prf::Prf::new(crate::wire::PrfId::HMAC_SHA2_256);
        let remote_s = remote.to_string();
        match prf {
            Ok(p) => p
                .compute(
                    &self.cookie_secret,
                    &[ni, remote_s.as_bytes(), &spi_i.to_be_bytes()],
                )
                .as_bytes()
                .to_vec(),
            Err(_) => Vec::new(),
        }
    }

    fn send_plain(
        &mut self,
        remote: SocketAddr,
        header: Header,
        payloads: &[Payload<'_>],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        write_message(&header, payloads, &mut out);
        self.outbox.push_back(Outgoing {
            remote,
            message: out.clone(),
        });
        out
    }

    fn handle_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) {
        let h = msg.header;
        if let Some(spi_r) = self.half_open.get(&(remote, h.spi_i)) {
            // A retransmitted IKE_SA_INIT: resend our response.
            if let Some(sa) = self.sas.get(spi_r) {
                if sa.init_request == msg.raw {
                    let m = sa.init_response.clone();
                    self.outbox.push_back(Outgoing { remote, message: m });
                }
            }
            return;
        }
        if !self.admit(now) {
            return;
        }
        let mut sa_p = None;
        let mut ke = None;
        let mut ni = None;
        let mut cookie = None;
        let mut src = Vec::new();
        let mut dst = Vec::new();
        let mut frag = false;
        let mut intermediate = false;
        let mut use_ppk = false;
        let mut hashes = Vec::new();
        for p in &msg.payloads {
            match p {
                Payload::Sa(s) => sa_p = Some(s),
                Payload::Ke { group, data } => ke = Some((*group, *data)),
                Payload::Nonce(n) => ni = Some(*n),
                Payload::Notify(n) => match n.kind {
                    NotifyType::COOKIE => cookie = Some(n.data),
                    NotifyType::NAT_DETECTION_SOURCE_IP => src.push(n.data),
                    NotifyType::NAT_DETECTION_DESTINATION_IP => dst.push(n.data),
                    NotifyType::IKEV2_FRAGMENTATION_SUPPORTED => frag = true,
                    NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED => intermediate = true,
                    NotifyType::USE_PPK => use_ppk = true,
                    NotifyType::SIGNATURE_HASH_ALGORITHMS => hashes = parse_hash_algorithms(n.data),
                    _ => {}
                },
                _ => {}
            }
        }
        let reply_header = |spi_r: u64| {
            Header::new(
                h.spi_i,
                spi_r,
                ExchangeType::IKE_SA_INIT,
                flags::RESPONSE,
                0,
            )
        };
        let (Some(sa_p), Some((group, ke_data)), Some(ni)) = (sa_p, ke, ni) else {
            self.send_plain(
                remote,
                reply_header(0),
                &[Payload::notify(NotifyType::INVALID_SYNTAX, &[])],
            );
            return;
        };
        if self.cookie_required() {
            let expected = self.cookie_for(remote, h.spi_i, ni);
            if cookie.is_none_or(|c| !ct_eq(c, &expected)) {
                debug!("responder: asking {remote} for a cookie");
                self.admission.cookies_demanded += 1;
                self.send_plain(
                    remote,
                    reply_header(0),
                    &[Payload::notify(NotifyType::COOKIE, &expected)],
                );
                return;
            }
        }
        let Some((selected, number, _)) = choose(&self.cfg.ike, sa_p) else {
            self.send_plain(
                remote,
                reply_header(0),
                &[Payload::notify(NotifyType::NO_PROPOSAL_CHOSEN, &[])],
            );
            return;
        };
        if selected.has_additional() && !intermediate {
            // An additional key exchange needs IKE_INTERMEDIATE (RFC 9370 §2.2.1).
            self.send_plain(
                remote,
                reply_header(0),
                &[Payload::notify(NotifyType::NO_PROPOSAL_CHOSEN, &[])],
            );
            return;
        }
        let Some(want) = selected.dh else { return };
        if want != group {
            let g = want.0.to_be_bytes();
            self.send_plain(
                remote,
                reply_header(0),
                &[Payload::notify(NotifyType::INVALID_KE_PAYLOAD, &g)],
            );
            return;
        }
        let Ok(our_ke) = new_key_exchange(group, self.rng.as_mut()) else {
            return;
        };
        let Ok(g_ir) = our_ke.shared_secret(ke_data) else {
            self.send_plain(
                remote,
                reply_header(0),
                &[Payload::notify(NotifyType::INVALID_SYNTAX, &[])],
            );
            return;
        };
        let mut spi_r = 0;
        while spi_r == 0 || self.sas.contains_key(&spi_r) || self.by_ike_spi.contains_key(&spi_r) {
            spi_r = self.rng.next_u64();
        }
        let mut nr = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut nr);
        let Ok(keys) = SaKeys::derive(
            Role::Responder,
            &selected,
            ni,
            &nr,
            g_ir.as_bytes(),
            h.spi_i,
            spi_r,
        ) else {
            return;
        };
        // The request's hashes use SPIr = 0; SOURCE is the client's claim about itself.
        let nat = NatState {
            supported: !src.is_empty() && !dst.is_empty(),
            local_behind_nat: !dst.iter().any(|d| *d == natd::hash(h.spi_i, 0, local)),
            remote_behind_nat: !src.iter().any(|d| *d == natd::hash(h.spi_i, 0, remote)),
        };
        let src_hash = natd::hash(h.spi_i, spi_r, local);
        let dst_hash = natd::hash(h.spi_i, spi_r, remote);
        let hash_data = hash_algorithms_data();
        let ke_pub = our_ke.public_key().to_vec();
        let certreq: Vec<u8> = self.cfg.ca.iter().flat_map(|c| c.spki_sha1()).collect();
        let mut p = vec![
            Payload::Sa(vec![selected.to_wire(number, &[])]),
            Payload::Ke {
                group,
                data: &ke_pub,
            },
            Payload::Nonce(&nr),
            Payload::notify(NotifyType::NAT_DETECTION_SOURCE_IP, &src_hash),
            Payload::notify(NotifyType::NAT_DETECTION_DESTINATION_IP, &dst_hash),
        ];
        if !certreq.is_empty() {
            p.push(Payload::CertReq {
                encoding: CertEncoding::X509_SIGNATURE,
                data: &certreq,
            });
        }
        if frag {
            p.push(Payload::notify(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                &[],
            ));
        }
        p.push(Payload::notify(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            &hash_data,
        ));
        if intermediate {
            p.push(Payload::notify(
                NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED,
                &[],
            ));
        }
        let use_ppk = self.ppk_announce(use_ppk);
        if use_ppk {
            p.push(Payload::notify(NotifyType::USE_PPK, &[]));
        }
        let init_response = self.send_plain(remote, reply_header(spi_r), &p);
        debug!(
            "responder: IKE_SA_INIT from {remote}: {} spi_r {spi_r:016x}",
            selected.name()
        );
        self.half_open.insert((remote, h.spi_i), spi_r);
        let mut tm = TaskManager::new(self.cfg.retransmit);
        tm.sent_response(0, vec![init_response.clone()]);
        self.sas.insert(
            spi_r,
            ResponderSa {
                phase: SaPhase::AwaitAuth,
                spi_i: h.spi_i,
                spi_r,
                peer: remote,
                keys,
                ni: ni.to_vec(),
                nr,
                init_request: msg.raw.to_vec(),
                init_response,
                peer_hashes: hashes,
                fragmentation: frag,
                nat,
                tm,
                reassembly: Reassembly::default(),
                child: None,
                leases: Vec::new(),
                eap: None,
                esp: None,
                mobike: false,
                handle: spi_r,
                original_initiator: false,
                rekey: rekey::ServerRekey::default(),
                created: now,
                pq: Default::default(),
            },
        );
        if let Some(sa) = self.sas.get_mut(&spi_r) {
            Self::intermediate_start(sa, selected);
            sa.pq.ppk.peer = use_ppk;
        }
    }

    /// Handles a request on an existing IKE SA; returns whether the SA stays.
    fn handle_sa_request(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        remote: SocketAddr,
        msg: &Message<'_>,
    ) -> bool {
        let _ = now;
        let h = msg.header;
        match sa.tm.match_request(h.message_id) {
            RequestMatch::New => {}
            RequestMatch::Retransmitted(d) => {
                self.outbox
                    .extend(d.into_iter().map(|message| Outgoing { remote, message }));
                return true;
            }
            RequestMatch::Invalid => {
                self.dropped += 1;
                return true;
            }
        }
        let opened: Option<Opened> = if msg.fragment().is_some() {
            match sa.reassembly.add_at(now, &sa.keys.inbound, msg) {
                Ok(o) => o,
                Err(e) => {
                    debug!("responder: bad fragment: {e}");
                    self.dropped += 1;
                    return true;
                }
            }
        } else {
            match protect::open(&sa.keys.inbound, msg) {
                Ok(o) => Some(o),
                Err(e) => {
                    debug!("responder: cannot open message: {e}");
                    self.dropped += 1;
                    return true;
                }
            }
        };
        let Some(opened) = opened else { return true };
        let Ok(payloads) = opened.payloads() else {
            self.dropped += 1;
            return true;
        };
        // A NAT may have moved the client; answer where the request came from.
        let home = sa.peer;
        let stay_home = sa.phase == SaPhase::Established && !self.mobility.follow_nat;
        sa.peer = remote;
        if sa.phase == SaPhase::Established && Self::is_update(sa, h.exchange, &payloads) {
            return self.handle_update(sa, remote, h.message_id, &payloads);
        }
        let keep = match (h.exchange, sa.phase) {
            (ExchangeType::IKE_INTERMEDIATE, SaPhase::AwaitAuth) => {
                self.handle_intermediate(sa, &h, &opened, &payloads)
            }
            (ExchangeType::IKE_AUTH, SaPhase::AwaitAuth) => {
                self.intermediate_complete(sa, h.message_id)
                    && match self.ppk_request(sa, h.message_id, &payloads) {
                        Some(p) => self.handle_auth(sa, h.message_id, &p),
                        None => false,
                    }
            }
            (ExchangeType::CREATE_CHILD_SA, SaPhase::Established) => {
                self.answer_rekey(now, sa, h.message_id, &payloads);
                true
            }
            (ExchangeType::IKE_FOLLOWUP_KE, SaPhase::Established) => {
                self.answer_followup(now, sa, h.message_id, &payloads);
                true
            }
            (ExchangeType::INFORMATIONAL, SaPhase::Established) => {
                let delete_ike = payloads
                    .iter()
                    .any(|p| matches!(p, Payload::Delete(d) if d.protocol == ProtocolId::IKE));
                if !delete_ike && self.rekey_child_deleted(sa, h.message_id, &payloads) {
                    return true;
                }
                self.respond(sa, ExchangeType::INFORMATIONAL, h.message_id, &[]);
                if delete_ike {
                    info!("responder: client deleted IKE SA {:016x}", sa.spi_r);
                    self.events.push_back(ResponderEvent::Closed {
                        spi_r: sa.handle,
                        reason: "deleted".into(),
                    });
                    return false;
                }
                true
            }
            _ => {
                self.respond(
                    sa,
                    h.exchange,
                    h.message_id,
                    &[Payload::notify(NotifyType::INVALID_SYNTAX, &[])],
                );
                true
            }
        };
        if stay_home {
            sa.peer = home;
        }
        keep
    }

    pub(super) fn respond(
        &mut self,
        sa: &mut ResponderSa,
        exchange: ExchangeType,
        message_id: u32,
        payloads: &[Payload<'_>],
    ) {
        let role = if sa.original_initiator {
            flags::INITIATOR
        } else {
            0
        };
        let header = Header::new(
            sa.spi_i,
            sa.spi_r,
            exchange,
            flags::RESPONSE | role,
            message_id,
        );
        let datagrams = self.seal_and_queue(sa, &header, payloads);
        sa.tm.sent_response(message_id, datagrams);
    }

    /// Seals a message of IKE SA `sa` (in fragments where agreed) and queues it to the peer.
    fn seal_and_queue(
        &mut self,
        sa: &ResponderSa,
        header: &Header,
        payloads: &[Payload<'_>],
    ) -> Vec<Vec<u8>> {
        let frag = sa.fragmentation.then_some(self.cfg.fragment_size);
        let datagrams = protect::seal(&sa.keys.outbound, self.rng.as_mut(), header, payloads, frag);
        let remote = sa.peer;
        self.outbox.extend(
            datagrams
                .iter()
                .cloned()
                .map(|message| Outgoing { remote, message }),
        );
        datagrams
    }

    /// A free address of each configured pool (none of a family whose pool is exhausted).
    pub(super) fn lease(&mut self) -> Vec<IpAddr> {
        [self.pool4.as_mut(), self.pool6.as_mut()]
            .into_iter()
            .flatten()
            .filter_map(pool::Pool::lease)
            .collect()
    }

    /// Whether any address pool is configured.
    pub(super) fn has_pools(&self) -> bool {
        self.pool4.is_some() || self.pool6.is_some()
    }

    fn release_lease(&mut self, a: IpAddr) {
        let pool = if a.is_ipv4() {
            self.pool4.as_mut()
        } else {
            self.pool6.as_mut()
        };
        if let Some(p) = pool {
            p.release(a);
        }
    }

    /// Addresses leased now (IPv4, IPv6).
    pub fn leases_in_use(&self) -> (usize, usize) {
        (
            self.pool4.as_ref().map_or(0, pool::Pool::in_use),
            self.pool6.as_ref().map_or(0, pool::Pool::in_use),
        )
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("sas", &self.sas.len())
            .finish_non_exhaustive()
    }
}
