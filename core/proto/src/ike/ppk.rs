//! Post-quantum preshared keys (RFC 8784), both roles. IKE_SA_INIT announces USE_PPK both
//! ways; in IKE_AUTH the initiator names its PPK (PPK_IDENTITY) and both ends mix the PPK
//! into SK_d, SK_pi and SK_pr: SK_x' = prf+(PPK, SK_x), as long as the PRF's output. AUTH is
//! then computed with SK_pi' / SK_pr', and every CHILD SA key comes from SK_d'.
//!
//! Mandatory mode: the initiator aborts when the server does not announce USE_PPK, or does
//! not confirm the PPK with PPK_IDENTITY in its IKE_AUTH answer. Optional mode: it also sends
//! NO_PPK_AUTH (its AUTH data computed with the unmixed SK_pi), which a responder that lacks
//! the PPK verifies instead; both ends then keep the unmixed keys.

use log::{info, warn};

use crate::config::ClientAuth;
use crate::crypto::{CryptoError, Secret};
use crate::ike::initiator::Initiator;
use crate::ike::keys::{id_body, shared_key_auth, signed_octets, SaKeys};
use crate::ike::responder::{Responder, ResponderSa};
use crate::session::DisconnectReason;
use crate::wire::{NotifyType, Payload};

/// PPK_IDENTITY types (RFC 8784 §5.1).
pub const PPK_ID_OPAQUE: u8 = 1;
pub const PPK_ID_FIXED: u8 = 2;
/// Longest PPK identity we accept from a peer.
pub const MAX_PPK_ID: usize = 256;

/// The client's PPK: its identity, the key, and whether the connection must use it.
#[derive(Clone, Debug)]
pub struct Ppk {
    pub id: Vec<u8>,
    pub key: Secret,
    pub required: bool,
}

/// The responder's PPKs by identity, and whether clients must use one.
#[derive(Debug, Default)]
pub struct ResponderPpks {
    pub keys: Vec<(Vec<u8>, Secret)>,
    pub required: bool,
}

/// One IKE SA's PPK negotiation, either role.
#[derive(Debug, Default)]
pub struct PpkState {
    /// The peer announced USE_PPK in IKE_SA_INIT (responder: the client did and we have PPKs).
    pub peer: bool,
    /// The PPK was mixed into our keys.
    pub used: bool,
    /// The unmixed SK_d, SK_p ours and theirs (initiator, until the server confirms).
    originals: Option<(Secret, Secret, Secret)>,
    /// The initiator checked the server's answer.
    decided: bool,
}

/// Mixes `ppk` into SK_d and both SK_p (RFC 8784 §3); returns the unmixed keys.
pub fn mix(keys: &mut SaKeys, ppk: &[u8]) -> Result<(Secret, Secret, Secret), CryptoError> {
    let len = keys.prf.output_len();
    let d = keys.prf.prf_plus(ppk, &[keys.sk_d.as_bytes()], len)?;
    let ours = keys.prf.prf_plus(ppk, &[keys.sk_p_ours.as_bytes()], len)?;
    let theirs = keys
        .prf
        .prf_plus(ppk, &[keys.sk_p_theirs.as_bytes()], len)?;
    Ok((
        std::mem::replace(&mut keys.sk_d, d),
        std::mem::replace(&mut keys.sk_p_ours, ours),
        std::mem::replace(&mut keys.sk_p_theirs, theirs),
    ))
}

/// What the initiator adds to its first IKE_AUTH request.
pub(super) struct PpkRequest {
    id: Vec<u8>,
    no_ppk_auth: Option<Vec<u8>>,
}

impl PpkRequest {
    /// PPK_IDENTITY, and NO_PPK_AUTH in optional mode.
    pub(super) fn notifies(&self) -> Vec<Payload<'_>> {
        let mut v = vec![Payload::notify(NotifyType::PPK_IDENTITY, &self.id)];
        if let Some(a) = &self.no_ppk_auth {
            v.push(Payload::notify(NotifyType::NO_PPK_AUTH, a));
        }
        v
    }
}

impl Initiator {
    /// Whether IKE_SA_INIT announces USE_PPK.
    pub(super) fn wants_ppk(&self) -> bool {
        self.params.config.ppk.is_some()
    }

    /// Before the first IKE_AUTH request: mixes the PPK into the keys when both ends
    /// announced it and computes NO_PPK_AUTH (optional mode, not with EAP). Err: the profile
    /// requires a PPK the server does not support.
    pub(super) fn ppk_start(&mut self) -> Result<Option<PpkRequest>, DisconnectReason> {
        let Some(ppk) = self.params.config.ppk.clone() else {
            return Ok(None);
        };
        if !self.pq.ppk.peer {
            if ppk.required {
                return Err(DisconnectReason::NegotiationFailed(
                    "the server does not support PPK (RFC 8784, no USE_PPK), which the profile \
                     requires (ppk_required = true)"
                        .into(),
                ));
            }
            warn!("the server does not support PPK: continuing without it (ppk_required = false)");
            return Ok(None);
        }
        let no_ppk_auth = if ppk.required {
            None
        } else {
            self.auth_without_ppk()
        };
        let Some(keys) = self.keys.as_mut() else {
            return Ok(None);
        };
        let originals = mix(keys, ppk.key.as_bytes())
            .map_err(|e| DisconnectReason::NegotiationFailed(format!("PPK: {e}")))?;
        self.pq.ppk.originals = Some(originals);
        self.pq.ppk.used = true;
        let mut id = Vec::with_capacity(1 + ppk.id.len());
        id.push(PPK_ID_FIXED);
        id.extend_from_slice(&ppk.id);
        Ok(Some(PpkRequest { id, no_ppk_auth }))
    }

    /// Our AUTH data with the unmixed SK_pi (PSK or signature; None for EAP).
    fn auth_without_ppk(&mut self) -> Option<Vec<u8>> {
        let keys = self.keys.as_ref()?;
        let id = &self.params.local_id;
        let mut octets = signed_octets(
            keys.prf,
            &self.init_request,
            &self.nr,
            keys.sk_p_ours.as_bytes(),
            &id_body(id.id_type(), &id.to_wire()),
        );
        octets.extend(self.pq.auth_octets());
        match &self.params.config.auth {
            ClientAuth::Psk(psk) => Some(
                shared_key_auth(keys.prf, psk.as_bytes(), &octets)
                    .as_bytes()
                    .to_vec(),
            ),
            ClientAuth::Certificate { key, .. } => key
                .sign_auth(&octets, &self.peer.hash_algorithms, self.rng.as_mut())
                .ok()
                .map(|(_, data)| data),
            ClientAuth::EapMschapv2 { .. } => None,
        }
    }

    /// The server's IKE_AUTH answer with its AUTH: did it use the PPK? Restores the unmixed
    /// keys when it did not and the profile allows that.
    pub(super) fn ppk_check_response(&mut self, p: &[Payload<'_>]) -> Result<(), DisconnectReason> {
        if !self.pq.ppk.used || self.pq.ppk.decided {
            return Ok(());
        }
        if !p.iter().any(|pl| matches!(pl, Payload::Auth { .. })) {
            return Ok(());
        }
        self.pq.ppk.decided = true;
        let confirmed = p
            .iter()
            .any(|pl| matches!(pl, Payload::Notify(n) if n.kind == NotifyType::PPK_IDENTITY));
        if confirmed {
            info!("PPK in use (RFC 8784)");
            self.pq.ppk.originals = None;
            return Ok(());
        }
        let required = self.params.config.ppk.as_ref().is_some_and(|k| k.required);
        if required {
            return Err(DisconnectReason::AuthenticationFailed(
                "the server did not use our PPK, which the profile requires".into(),
            ));
        }
        warn!("the server does not have our PPK: continuing without it (ppk_required = false)");
        if let (Some(keys), Some((d, ours, theirs))) =
            (self.keys.as_mut(), self.pq.ppk.originals.take())
        {
            keys.sk_d = d;
            keys.sk_p_ours = ours;
            keys.sk_p_theirs = theirs;
        }
        self.pq.ppk.used = false;
        Ok(())
    }

    /// Whether this IKE SA's keys have a PPK mixed in.
    pub fn ppk_used(&self) -> bool {
        self.pq.ppk.used
    }
}

impl Responder {
    /// Adds PPKs (RFC 8784) to the responder.
    pub fn with_ppks(mut self, ppks: ResponderPpks) -> Self {
        self.ppks = ppks;
        self
    }

    /// IKE_SA_INIT: the client announced USE_PPK; whether we answer with ours.
    pub(super) fn ppk_announce(&self, client_wants: bool) -> bool {
        client_wants && !self.ppks.keys.is_empty()
    }

    /// The first IKE_AUTH request: uses the client's PPK when we have it (mixing it into the
    /// SA's keys), else falls back to NO_PPK_AUTH when allowed. Returns the payloads to
    /// authenticate (NO_PPK_AUTH's data in place of AUTH's), or None when AUTHENTICATION_FAILED
    /// was sent.
    pub(super) fn ppk_request<'a>(
        &mut self,
        sa: &mut ResponderSa,
        message_id: u32,
        p: &[Payload<'a>],
    ) -> Option<Vec<Payload<'a>>> {
        if sa.eap.is_some() {
            return Some(p.to_vec());
        }
        let notify = |kind: NotifyType| {
            p.iter().find_map(|pl| match pl {
                Payload::Notify(n) if n.kind == kind => Some(n.data),
                _ => None,
            })
        };
        let id = notify(NotifyType::PPK_IDENTITY)
            .filter(|d| d.len() <= MAX_PPK_ID)
            .and_then(|d| match d.split_first() {
                Some((&(PPK_ID_OPAQUE | PPK_ID_FIXED), rest)) if !rest.is_empty() => Some(rest),
                _ => None,
            });
        let key = id.filter(|_| sa.pq.ppk.peer).and_then(|id| {
            self.ppks
                .keys
                .iter()
                .find(|(k, _)| crate::crypto::ct_eq(k, id))
                .map(|(_, s)| s.clone())
        });
        if let Some(key) = key {
            if mix(&mut sa.keys, key.as_bytes()).is_err() {
                self.auth_failed(sa, message_id, "PPK mixing failed");
                return None;
            }
            sa.pq.ppk.used = true;
            return Some(p.to_vec());
        }
        if self.ppks.required {
            self.auth_failed(
                sa,
                message_id,
                "the client has no PPK we know (ppk required)",
            );
            return None;
        }
        if id.is_none() {
            return Some(p.to_vec());
        }
        // A PPK we do not have: authenticate NO_PPK_AUTH with the unmixed keys.
        let Some(no_ppk) = notify(NotifyType::NO_PPK_AUTH) else {
            self.auth_failed(sa, message_id, "unknown PPK and no NO_PPK_AUTH");
            return None;
        };
        Some(
            p.iter()
                .map(|pl| match pl {
                    Payload::Auth { method, .. } => Payload::Auth {
                        method: *method,
                        data: no_ppk,
                    },
                    other => other.clone(),
                })
                .collect(),
        )
    }

    /// The notify confirming the PPK in our IKE_AUTH answer, when it was used.
    pub(super) fn ppk_confirm(sa: &ResponderSa) -> Option<Payload<'static>> {
        sa.pq
            .ppk
            .used
            .then(|| Payload::notify(NotifyType::PPK_IDENTITY, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keymat::IkeKeys;
    use crate::crypto::prf::Prf;
    use crate::crypto::proposal::ProposalSpec;
    use crate::crypto::proposal::{choose, Selected};
    use crate::ike::keys::Role;
    use crate::wire::PrfId;

    fn keys() -> SaKeys {
        let spec = ProposalSpec::parse_ike("aes256gcm16-prfsha256-x25519", &[]).unwrap();
        let (sel, _, _): (Selected, _, _) =
            choose(std::slice::from_ref(&spec), &[spec.to_wire(1, &[])]).unwrap();
        let s = |b: u8, n: usize| Secret::new(vec![b; n]);
        let k = IkeKeys {
            sk_d: s(1, 32),
            sk_ai: s(0, 0),
            sk_ar: s(0, 0),
            sk_ei: s(4, 36),
            sk_er: s(5, 36),
            sk_pi: s(6, 32),
            sk_pr: s(7, 32),
        };
        SaKeys::arrange(
            Role::Initiator,
            &sel,
            Prf::new(PrfId::HMAC_SHA2_256).unwrap(),
            k,
        )
        .unwrap()
    }

    #[test]
    fn mixing_follows_rfc8784() {
        let prf = Prf::new(PrfId::HMAC_SHA2_256).unwrap();
        let mut k = keys();
        let (d, pi, pr) = mix(&mut k, b"post-quantum ppk").unwrap();
        assert_eq!(d.as_bytes(), &[1u8; 32]);
        assert_eq!(pi.as_bytes(), &[6u8; 32]);
        assert_eq!(pr.as_bytes(), &[7u8; 32]);
        // prf+ of one block is prf(PPK, SK_x | 0x01).
        let want = |sk: &[u8]| prf.compute(b"post-quantum ppk", &[sk, &[1]]);
        assert_eq!(k.sk_d, want(&[1u8; 32]));
        assert_eq!(k.sk_p_ours, want(&[6u8; 32]));
        assert_eq!(k.sk_p_theirs, want(&[7u8; 32]));
        // Another PPK, other keys.
        let mut k2 = keys();
        mix(&mut k2, b"another ppk").unwrap();
        assert_ne!(k2.sk_d, k.sk_d);
    }
}
