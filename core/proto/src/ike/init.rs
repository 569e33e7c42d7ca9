//! The IKE_SA_INIT exchange, initiator side (RFC 7296 §1.2, §2.6, §2.23): proposals, key
//! exchange, nonces, NAT detection, COOKIE and INVALID_KE_PAYLOAD retries, and the key
//! derivation once the responder answers.

use std::time::Instant;

use log::{debug, info};

use crate::crypto::dh::{self, new_key_exchange};
use crate::crypto::proposal::accept_response;
use crate::ike::initiator::{Initiator, PeerInfo, Phase};
use crate::ike::keys::{Role, SaKeys};
use crate::ike::natd::{self, NatState};
use crate::session::DisconnectReason;
use crate::wire::message::write_message;
use crate::wire::{
    flags, DhGroup, ExchangeType, HashAlgorithm, Header, Message, NotifyType, Payload,
};

/// Nonce length we send (RFC 7296 §2.10: at least half the PRF key size, 16..=256).
pub const NONCE_LEN: usize = 32;
/// How many COOKIE / INVALID_KE_PAYLOAD retries we make before giving up.
const MAX_INIT_RETRIES: u32 = 4;
/// An unacceptable IKE_SA_INIT response ends the attempt once the request was sent this
/// many times (so a single forged answer to the first send does not).
const INIT_SENDS_BEFORE_BELIEVING: u32 = 2;

/// The SIGNATURE_HASH_ALGORITHMS data: our hashes as 16-bit numbers.
pub fn hash_algorithms_data() -> Vec<u8> {
    crate::crypto::cert::supported_hashes()
        .iter()
        .flat_map(|h| h.0.to_be_bytes())
        .collect()
}

/// Reads the peer's SIGNATURE_HASH_ALGORITHMS data.
pub fn parse_hash_algorithms(data: &[u8]) -> Vec<HashAlgorithm> {
    data.chunks_exact(2)
        .map(|c| HashAlgorithm(u16::from_be_bytes([c[0], c[1]])))
        .collect()
}

impl Initiator {
    /// Builds and sends the IKE_SA_INIT request (again, after a COOKIE or INVALID_KE).
    pub(super) fn send_init_request(&mut self, now: Instant) {
        let group = match &self.ke {
            Some(ke) => ke.group(),
            None => match self.params.first_group() {
                Some(g) => g,
                None => {
                    return self.fail(DisconnectReason::NegotiationFailed(
                        "no key exchange group".into(),
                    ))
                }
            },
        };
        if self.ke.is_none() {
            match new_key_exchange(group, self.rng.as_mut()) {
                Ok(k) => self.ke = Some(k),
                Err(e) => {
                    return self.fail(DisconnectReason::NegotiationFailed(format!(
                        "key exchange {group}: {e}"
                    )))
                }
            }
        }
        if self.ni.is_empty() {
            self.ni = vec![0; NONCE_LEN];
            self.rng.fill(&mut self.ni);
        }
        let Some(ke) = self.ke.as_ref() else { return };
        let ke_pub = ke.public_key().to_vec();
        let sa = self.params.ike_wire();
        // NAT detection. Phones cannot send raw ESP, so we always want UDP encapsulation:
        // a source hash that cannot match makes every responder see a NAT (RFC 7296 §2.23
        // allows this for a host that wants to float to port 4500).
        let mut src_hash = [0u8; 20];
        self.rng.fill(&mut src_hash);
        let dst_hash = natd::hash(self.spi_i, 0, self.remote);
        let hashes = hash_algorithms_data();
        let mut payloads = Vec::with_capacity(8);
        if let Some(c) = &self.cookie {
            payloads.push(Payload::notify(NotifyType::COOKIE, c));
        }
        payloads.push(Payload::Sa(sa));
        payloads.push(Payload::Ke {
            group,
            data: &ke_pub,
        });
        payloads.push(Payload::Nonce(&self.ni));
        payloads.push(Payload::notify(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            &src_hash,
        ));
        payloads.push(Payload::notify(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            &dst_hash,
        ));
        payloads.push(Payload::notify(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            &[],
        ));
        payloads.push(Payload::notify(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            &hashes,
        ));
        if self.wants_ppk() {
            payloads.push(Payload::notify(NotifyType::USE_PPK, &[]));
        }
        if self.intermediate_notifies() {
            payloads.push(Payload::notify(
                NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED,
                &[],
            ));
        }
        let header = Header::new(
            self.spi_i,
            0,
            ExchangeType::IKE_SA_INIT,
            flags::INITIATOR,
            0,
        );
        let mut bytes = Vec::with_capacity(512);
        write_message(&header, &payloads, &mut bytes);
        self.init_request = bytes.clone();
        debug!("IKE_SA_INIT request: {} bytes, group {group}", bytes.len());
        self.send_plain_init(now, bytes);
    }

    /// Handles the IKE_SA_INIT response (plaintext).
    ///
    /// The response is not authenticated: anyone who saw our request can forge one. So an
    /// unacceptable response (an error notify, a proposal we did not offer, a mismatched KE,
    /// a bad nonce) does not end the attempt at once (RFC 7296 §2.21.1: the recipient should
    /// keep trying for some time and not act on an unauthenticated error unless the
    /// specification defines a corrective action, as for COOKIE and INVALID_KE_PAYLOAD). It
    /// is refused (`refuse_init_response`); a genuine response may still come.
    pub(super) fn process_init_response(&mut self, now: Instant, msg: &Message<'_>) {
        let p = &msg.payloads;
        // Error notifies first: they carry no SA.
        for pl in p {
            if let Payload::Notify(n) = pl {
                match n.kind {
                    NotifyType::COOKIE => return self.retry_with_cookie(now, n.data),
                    NotifyType::INVALID_KE_PAYLOAD => return self.retry_with_group(now, n.data),
                    k if k.is_error() => {
                        let reason = self.pq_hint(&format!("IKE_SA_INIT: {k}"));
                        return self
                            .refuse_init_response(DisconnectReason::NegotiationFailed(reason));
                    }
                    _ => {}
                }
            }
        }
        if msg.header.spi_r == 0 {
            return self.refuse_init_response(DisconnectReason::ProtocolError(
                "IKE_SA_INIT response without SPIr".into(),
            ));
        }
        let mut sa = None;
        let mut ke = None;
        let mut nonce = None;
        let mut src = Vec::new();
        let mut dst = Vec::new();
        // What the response tells about the peer, kept only if the response is accepted.
        let mut peer = PeerInfo {
            wants_cert: false,
            fragmentation: false,
            hash_algorithms: Vec::new(),
            ..self.peer.clone()
        };
        let mut peer_intermediate = false;
        let mut peer_ppk = false;
        for pl in p {
            match pl {
                Payload::Sa(props) => sa = Some(props),
                Payload::Ke { group, data } => ke = Some((*group, *data)),
                Payload::Nonce(n) => nonce = Some(*n),
                Payload::CertReq { .. } => peer.wants_cert = true,
                Payload::Notify(n) => match n.kind {
                    NotifyType::NAT_DETECTION_SOURCE_IP => src.push(n.data),
                    NotifyType::NAT_DETECTION_DESTINATION_IP => dst.push(n.data),
                    NotifyType::IKEV2_FRAGMENTATION_SUPPORTED => peer.fragmentation = true,
                    NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED => peer_intermediate = true,
                    NotifyType::USE_PPK => peer_ppk = true,
                    NotifyType::SIGNATURE_HASH_ALGORITHMS => {
                        peer.hash_algorithms = parse_hash_algorithms(n.data);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let (Some(sa), Some((group, ke_data)), Some(nonce)) = (sa, ke, nonce) else {
            return self.refuse_init_response(DisconnectReason::ProtocolError(
                "IKE_SA_INIT response misses SA, KE or Nonce".into(),
            ));
        };
        let offered = self.params.ike_wire();
        let selected = match sa.as_slice() {
            [one] => accept_response(&offered, one),
            _ => None,
        };
        let Some(selected) = selected else {
            let reason = self.pq_hint("responder chose a proposal we did not offer");
            return self.refuse_init_response(DisconnectReason::NegotiationFailed(reason));
        };
        let Some(ours) = self.ke.as_ref() else { return };
        if selected.dh != Some(group) || group != ours.group() {
            return self.refuse_init_response(DisconnectReason::ProtocolError(
                "KE group does not match the chosen proposal".into(),
            ));
        }
        if !(16..=256).contains(&nonce.len()) {
            return self
                .refuse_init_response(DisconnectReason::ProtocolError("bad nonce length".into()));
        }
        let g_ir = match ours.shared_secret(ke_data) {
            Ok(s) => s,
            Err(e) => {
                return self.refuse_init_response(DisconnectReason::ProtocolError(format!(
                    "key exchange: {e}"
                )))
            }
        };
        self.spi_r = msg.header.spi_r;
        self.peer = peer;
        self.pq.ppk.peer = peer_ppk;
        self.init_refused = None;
        self.nr = nonce.to_vec();
        let keys = SaKeys::derive(
            Role::Initiator,
            &selected,
            &self.ni,
            &self.nr,
            g_ir.as_bytes(),
            self.spi_i,
            self.spi_r,
        );
        let keys = match keys {
            Ok(k) => k,
            Err(e) => return self.fail(DisconnectReason::NegotiationFailed(format!("keys: {e}"))),
        };
        self.peer.nat =
            NatState::evaluate(self.spi_i, self.spi_r, self.local, self.remote, &src, &dst);
        info!(
            "IKE_SA_INIT done: {} spi {:016x}_{:016x}, nat local={} remote={}",
            selected.name(),
            self.spi_i,
            self.spi_r,
            self.peer.nat.local_behind_nat,
            self.peer.nat.remote_behind_nat
        );
        self.init_response = msg.raw.to_vec();
        self.keys = Some(keys);
        self.ike_selected = Some(selected);
        self.ke = None;
        // The response ends the IKE_SA_INIT request.
        let _ = self.tm.match_response(msg.header.message_id);
        self.phase = Phase::Auth;
        self.after_init(now, selected, peer_intermediate);
    }

    fn retry_with_cookie(&mut self, now: Instant, cookie: &[u8]) {
        self.init_retries += 1;
        if self.init_retries > MAX_INIT_RETRIES || cookie.is_empty() || cookie.len() > 64 {
            return self.refuse_init_response(DisconnectReason::NegotiationFailed(
                "COOKIE retries exhausted".into(),
            ));
        }
        debug!("responder asked for a COOKIE ({} bytes)", cookie.len());
        self.cookie = Some(cookie.to_vec());
        self.send_init_request(now);
    }

    fn retry_with_group(&mut self, now: Instant, data: &[u8]) {
        self.init_retries += 1;
        let wanted = match data {
            [a, b] => DhGroup(u16::from_be_bytes([*a, *b])),
            _ => {
                return self.refuse_init_response(DisconnectReason::ProtocolError(
                    "malformed INVALID_KE_PAYLOAD".into(),
                ))
            }
        };
        let current = self.ke.as_ref().map(|k| k.group());
        if self.init_retries > MAX_INIT_RETRIES
            || Some(wanted) == current
            || !self.params.offers_group(wanted)
            || !dh::is_supported(wanted)
        {
            return self.refuse_init_response(DisconnectReason::NegotiationFailed(format!(
                "responder wants group {wanted}"
            )));
        }
        debug!("responder wants key exchange group {wanted}");
        match new_key_exchange(wanted, self.rng.as_mut()) {
            Ok(k) => self.ke = Some(k),
            Err(e) => return self.fail(DisconnectReason::NegotiationFailed(format!("{e}"))),
        }
        // Same SPIi and nonce; a cookie the responder gave stays valid for them.
        self.send_init_request(now);
    }

    /// An IKE_SA_INIT response we cannot accept. It is unauthenticated, so it ends the attempt
    /// only once the request was sent again and still drew no acceptable answer (the server
    /// really means it); before that it is counted and remembered, and the request stays in
    /// flight for a genuine response. Refused responses never make us send anything: a flood
    /// of them costs the attacker as much as us. When the retransmissions run out, the last
    /// refusal is the reason given instead of a timeout.
    pub(super) fn refuse_init_response(&mut self, reason: DisconnectReason) {
        self.drops.refused += 1;
        if self.tm.outstanding_sends() >= INIT_SENDS_BEFORE_BELIEVING {
            return self.fail(reason);
        }
        debug!("IKE_SA_INIT response refused ({reason}); waiting for another");
        self.init_refused = Some(reason);
    }
}
