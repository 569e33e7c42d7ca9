//! IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of RFC 9370, both roles:
//! after IKE_SA_INIT, one exchange per negotiated ADDITIONAL_KEY_EXCHANGE_n in slot order
//! (initiator: KE with its public value or ML-KEM encapsulation key; responder: KE with its
//! public value or ciphertext). After each, every IKE SA key is updated (RFC 9370 §2.2.2):
//! SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), then the seven keys from prf+ as in
//! IKE_SA_INIT. Every IKE_INTERMEDIATE message is chained into IntAuth (RFC 9242 §3.3.2),
//! which both AUTH payloads cover, so a middlebox that removed or changed anything fails AUTH.

use std::collections::VecDeque;
use std::time::Instant;

use log::{debug, info, warn};

use crate::crypto::dh::KeyExchange;
use crate::crypto::kex;
use crate::crypto::keymat::derive_rekeyed_ike_keys;
use crate::crypto::prf::Prf;
use crate::crypto::proposal::Selected;
use crate::crypto::{CryptoError, Secret};
use crate::ike::initiator::Initiator;
use crate::ike::keys::{Role, SaKeys};
use crate::ike::protect::Opened;
use crate::ike::responder::{Responder, ResponderSa};
use crate::ike::task_manager::RequestKind;
use crate::session::DisconnectReason;
use crate::wire::message::write_sk_prefix;
use crate::wire::{flags, write_payloads, DhGroup, ExchangeType, Header, NotifyType, Payload};

/// The IntAuth chains of RFC 9242 §3.3.2: IntAuth_iN and IntAuth_rN.
#[derive(Debug, Default)]
pub struct IntAuth {
    i: Option<Secret>,
    r: Option<Secret>,
}

impl IntAuth {
    /// Chains one IKE_INTERMEDIATE message: IntAuth_xN = prf(SK_pxN, IntAuth_x(N-1) | A | P),
    /// with the SK_p of the keys that protected it.
    pub fn add(&mut self, prf: Prf, from_initiator: bool, sk_p: &[u8], chunk: &[u8]) {
        let slot = if from_initiator {
            &mut self.i
        } else {
            &mut self.r
        };
        let prev = slot.take().unwrap_or_default();
        *slot = Some(prf.compute(sk_p, &[prev.as_bytes(), chunk]));
    }

    /// What AUTH covers after MACedIDFor[I/R]: IntAuth_iN | IntAuth_rN | IKE_AUTH_MID, or
    /// nothing when no IKE_INTERMEDIATE exchange took place.
    pub fn octets(&self, auth_mid: u32) -> Vec<u8> {
        match (&self.i, &self.r) {
            (Some(i), Some(r)) => [i.as_bytes(), r.as_bytes(), &auth_mid.to_be_bytes()].concat(),
            _ => Vec::new(),
        }
    }
}

/// The octets of an IKE_INTERMEDIATE message that enter IntAuth: from the IKE header to the
/// Encrypted payload's generic header with both lengths as if the inner payloads were sent
/// in plaintext (no IV, padding or ICV), then the inner payloads (RFC 9242 §3.3.2, "A | P").
/// The same whether the message went whole or in fragments.
pub fn message_chunk(header: &Header, first: crate::wire::PayloadType, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crate::wire::HEADER_LEN + 4 + plain.len());
    write_sk_prefix(header, first, plain.len(), &mut out);
    out.extend_from_slice(plain);
    out
}

/// The keys after one additional key exchange with shared secret `secret` (RFC 9370 §2.2.2):
/// same nonces and SPIs as IKE_SA_INIT, SK_d of the current keys.
#[allow(clippy::too_many_arguments)]
pub fn update_keys(
    role: Role,
    selected: &Selected,
    keys: &SaKeys,
    secret: &Secret,
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> Result<SaKeys, CryptoError> {
    let (prf, encr_len, integ_len) = SaKeys::suite(selected)?;
    let k = derive_rekeyed_ike_keys(
        prf,
        keys.sk_d.as_bytes(),
        prf,
        secret.as_bytes(),
        ni,
        nr,
        spi_i,
        spi_r,
        encr_len,
        integ_len,
    )?;
    SaKeys::arrange(role, selected, prf, k)
}

/// One IKE SA's additional key exchanges and IntAuth, either role.
#[derive(Default)]
pub struct PqState {
    /// Exchanges still to run, in order.
    pub pending: VecDeque<DhGroup>,
    /// Initiator: the key exchange of the request in flight.
    pub ke: Option<Box<dyn KeyExchange>>,
    pub int_auth: IntAuth,
    /// Message ID of the first IKE_AUTH request (IKE_AUTH_MID).
    pub auth_mid: Option<u32>,
    /// The IKE proposal, for the key updates.
    pub selected: Option<Selected>,
    /// How many IKE_INTERMEDIATE exchanges completed.
    pub done: u32,
    /// PPK (RFC 8784) negotiation.
    pub ppk: super::ppk::PpkState,
}

impl PqState {
    /// The IntAuth octets AUTH covers (empty without IKE_INTERMEDIATE).
    pub fn auth_octets(&self) -> Vec<u8> {
        self.int_auth.octets(self.auth_mid.unwrap_or(0))
    }
}

impl std::fmt::Debug for PqState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PqState")
            .field("pending", &self.pending)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Initiator: did our offer include an additional key exchange?
fn offered_pq(i: &Initiator) -> bool {
    i.params.ike.iter().any(|p| p.has_additional())
}

impl Initiator {
    /// Notifies of IKE_SA_INIT announcing what we support: INTERMEDIATE_EXCHANGE_SUPPORTED
    /// when we offer an additional key exchange.
    pub(super) fn intermediate_notifies(&self) -> bool {
        offered_pq(self)
    }

    /// A clearer reason for a failed IKE_SA_INIT when we offered a post-quantum exchange.
    pub(super) fn pq_hint(&self, reason: &str) -> String {
        if offered_pq(self) && !self.params.config.pq_fallback {
            format!(
                "{reason} (we require a post-quantum key exchange, RFC 9370; the server may not \
                 support it: set [crypto] pq_fallback = true to allow a classical one)"
            )
        } else {
            reason.to_string()
        }
    }

    /// IKE_SA_INIT is done and its keys derived: run the additional key exchanges, or go on
    /// to IKE_AUTH.
    pub(super) fn after_init(&mut self, now: Instant, selected: Selected, peer_intermediate: bool) {
        if selected.has_additional() {
            if !peer_intermediate {
                return self.fail(DisconnectReason::ProtocolError(
                    "server chose additional key exchanges without IKE_INTERMEDIATE support".into(),
                ));
            }
            self.pq.pending = selected.additional_kes().map(|(_, g)| g).collect();
            self.pq.selected = Some(selected);
            return self.send_intermediate_request(now);
        }
        if offered_pq(self) {
            // Only reachable when the profile allowed a classical proposal or keN_none.
            warn!(
                "the server did not choose a post-quantum key exchange: continuing with {} \
                 (the profile allows the fallback)",
                selected.name()
            );
        }
        self.send_auth_request(now);
    }

    fn send_intermediate_request(&mut self, now: Instant) {
        let Some(group) = self.pq.pending.front().copied() else {
            return self.send_auth_request(now);
        };
        let ke = match kex::initiate(group, self.rng.as_mut()) {
            Ok(k) => k,
            Err(e) => {
                return self.fail(DisconnectReason::NegotiationFailed(format!(
                    "additional key exchange {group}: {e}"
                )))
            }
        };
        let data = ke.public_key().to_vec();
        let payloads = [Payload::Ke { group, data: &data }];
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let header = self.header(
            ExchangeType::IKE_INTERMEDIATE,
            false,
            self.tm.next_request_id(),
        );
        let mut plain = Vec::with_capacity(data.len() + 8);
        let first = write_payloads(&payloads, &mut plain);
        let chunk = message_chunk(&header, first, &plain);
        self.pq
            .int_auth
            .add(keys.prf, true, keys.sk_p_ours.as_bytes(), &chunk);
        debug!("IKE_INTERMEDIATE request: KE {group}, {} bytes", data.len());
        self.pq.ke = Some(ke);
        self.send_request(
            now,
            RequestKind::IkeIntermediate,
            ExchangeType::IKE_INTERMEDIATE,
            &payloads,
        );
    }

    /// The responder's IKE_INTERMEDIATE answer: its KE, then the key update.
    pub(super) fn process_intermediate_response(
        &mut self,
        now: Instant,
        header: &Header,
        opened: &Opened,
        payloads: &[Payload<'_>],
    ) {
        for p in payloads {
            if let Payload::Notify(n) = p {
                if n.kind.is_error() {
                    return self.fail(DisconnectReason::NegotiationFailed(format!(
                        "IKE_INTERMEDIATE: {}",
                        n.kind
                    )));
                }
            }
        }
        let (Some(group), Some(ke)) = (self.pq.pending.pop_front(), self.pq.ke.take()) else {
            return;
        };
        let peer = payloads.iter().find_map(|p| match p {
            Payload::Ke { group: g, data } => Some((*g, *data)),
            _ => None,
        });
        let Some((g, data)) = peer.filter(|(g, _)| *g == group) else {
            return self.fail(DisconnectReason::ProtocolError(format!(
                "IKE_INTERMEDIATE response without a KE of {group}"
            )));
        };
        let secret = match ke.shared_secret(data) {
            Ok(s) => s,
            Err(e) => {
                return self.fail(DisconnectReason::ProtocolError(format!(
                    "additional key exchange {g}: {e}"
                )))
            }
        };
        let (Some(keys), Some(selected)) = (self.keys.as_ref(), self.pq.selected) else {
            return;
        };
        let chunk = message_chunk(header, opened.first, &opened.plain);
        self.pq
            .int_auth
            .add(keys.prf, false, keys.sk_p_theirs.as_bytes(), &chunk);
        match update_keys(
            Role::Initiator,
            &selected,
            keys,
            &secret,
            &self.ni,
            &self.nr,
            self.spi_i,
            self.spi_r,
        ) {
            Ok(k) => self.keys = Some(k),
            Err(e) => return self.fail(DisconnectReason::NegotiationFailed(format!("keys: {e}"))),
        }
        self.clear_reassembly();
        self.pq.done += 1;
        info!("additional key exchange {g} done: IKE SA keys updated");
        self.send_intermediate_request(now);
    }
}

impl Responder {
    /// IKE_SA_INIT chose `selected`: remember its additional key exchanges.
    pub(super) fn intermediate_start(sa: &mut ResponderSa, selected: Selected) {
        sa.pq.pending = selected.additional_kes().map(|(_, g)| g).collect();
        sa.pq.selected = Some(selected);
    }

    /// An IKE_INTERMEDIATE request: answer its KE, chain IntAuth, update the keys. Returns
    /// whether the SA stays.
    pub(super) fn handle_intermediate(
        &mut self,
        sa: &mut ResponderSa,
        header: &Header,
        opened: &Opened,
        payloads: &[Payload<'_>],
    ) -> bool {
        let mid = header.message_id;
        let Some(group) = sa.pq.pending.pop_front() else {
            debug!("responder: IKE_INTERMEDIATE with no key exchange left");
            self.respond(
                sa,
                ExchangeType::IKE_INTERMEDIATE,
                mid,
                &[Payload::notify(NotifyType::INVALID_SYNTAX, &[])],
            );
            return false;
        };
        let ke = payloads.iter().find_map(|p| match p {
            Payload::Ke { group: g, data } if *g == group => Some(*data),
            _ => None,
        });
        let answer = ke.map(|data| kex::respond(group, data, self.rng.as_mut()));
        let Some(Ok((ours, secret))) = answer else {
            debug!("responder: IKE_INTERMEDIATE without a valid KE of {group}: {answer:?}");
            self.respond(
                sa,
                ExchangeType::IKE_INTERMEDIATE,
                mid,
                &[Payload::notify(NotifyType::INVALID_SYNTAX, &[])],
            );
            return false;
        };
        let Some(selected) = sa.pq.selected else {
            return false;
        };
        let chunk_i = message_chunk(header, opened.first, &opened.plain);
        sa.pq
            .int_auth
            .add(sa.keys.prf, true, sa.keys.sk_p_theirs.as_bytes(), &chunk_i);
        let reply = [Payload::Ke { group, data: &ours }];
        let role = if sa.original_initiator {
            flags::INITIATOR
        } else {
            0
        };
        let reply_header = Header::new(
            sa.spi_i,
            sa.spi_r,
            ExchangeType::IKE_INTERMEDIATE,
            flags::RESPONSE | role,
            mid,
        );
        let mut plain = Vec::with_capacity(ours.len() + 8);
        let first = write_payloads(&reply, &mut plain);
        let chunk_r = message_chunk(&reply_header, first, &plain);
        sa.pq
            .int_auth
            .add(sa.keys.prf, false, sa.keys.sk_p_ours.as_bytes(), &chunk_r);
        // The answer goes out under the keys the request came with; then they change.
        self.respond(sa, ExchangeType::IKE_INTERMEDIATE, mid, &reply);
        match update_keys(
            Role::Responder,
            &selected,
            &sa.keys,
            &secret,
            &sa.ni,
            &sa.nr,
            sa.spi_i,
            sa.spi_r,
        ) {
            Ok(k) => sa.keys = k,
            Err(e) => {
                warn!("responder: key update failed: {e}");
                return false;
            }
        }
        sa.reassembly.clear();
        sa.pq.done += 1;
        debug!(
            "responder: additional key exchange {group} done on {:016x}",
            sa.spi_r
        );
        true
    }

    /// IKE_AUTH arrived: records IKE_AUTH_MID; false (and AUTHENTICATION_FAILED sent) when
    /// a negotiated additional key exchange was skipped.
    pub(super) fn intermediate_complete(&mut self, sa: &mut ResponderSa, mid: u32) -> bool {
        if sa.pq.auth_mid.is_none() {
            sa.pq.auth_mid = Some(mid);
        }
        if sa.pq.pending.is_empty() {
            return true;
        }
        debug!("responder: IKE_AUTH before the additional key exchanges");
        self.respond(
            sa,
            ExchangeType::IKE_AUTH,
            mid,
            &[Payload::notify(NotifyType::AUTHENTICATION_FAILED, &[])],
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PayloadType, PrfId};

    #[test]
    fn chunk_has_plaintext_lengths() {
        let h = Header::new(1, 2, ExchangeType::IKE_INTERMEDIATE, flags::INITIATOR, 1);
        let plain = [0xaa; 10];
        let c = message_chunk(&h, PayloadType::KE, &plain);
        assert_eq!(c.len(), 28 + 4 + 10);
        // IKE header: next payload SK, length of header + SK header + plaintext.
        assert_eq!(c[16], PayloadType::SK.0);
        assert_eq!(u32::from_be_bytes([c[24], c[25], c[26], c[27]]), 42);
        // SK generic header: first inner payload, length 4 + plaintext.
        assert_eq!(c[28], PayloadType::KE.0);
        assert_eq!(u16::from_be_bytes([c[30], c[31]]), 14);
        assert_eq!(&c[32..], &plain);
    }

    #[test]
    fn int_auth_chains_and_is_empty_without_exchanges() {
        let prf = Prf::new(PrfId::HMAC_SHA2_256).unwrap();
        let mut a = IntAuth::default();
        assert!(a.octets(1).is_empty());
        a.add(prf, true, b"ski1", b"msg1");
        assert!(a.octets(2).is_empty(), "needs both directions");
        a.add(prf, false, b"skr1", b"resp1");
        let one = a.octets(2);
        assert_eq!(one.len(), 32 + 32 + 4);
        assert_eq!(&one[64..], &2u32.to_be_bytes());
        assert_eq!(
            &one[..32],
            prf.compute(b"ski1", &[b"msg1"]).as_bytes(),
            "IntAuth_i1 = prf(SK_pi1, A | P)"
        );
        a.add(prf, true, b"ski2", b"msg2");
        a.add(prf, false, b"skr2", b"resp2");
        let two = a.octets(3);
        let i1 = prf.compute(b"ski1", &[b"msg1"]);
        let i2 = prf.compute(b"ski2", &[i1.as_bytes(), b"msg2"]);
        assert_eq!(&two[..32], i2.as_bytes());
        assert_ne!(one[..64], two[..64]);
    }
}
