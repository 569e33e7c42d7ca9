//! The keys of an established IKE SA, arranged by direction for one role, and the AUTH
//! payload's MAC (RFC 7296 §2.15).

use crate::crypto::keymat::{derive_ike_keys, IkeKeys};
use crate::crypto::prf::Prf;
use crate::crypto::proposal::Selected;
use crate::crypto::sk::SkCipher;
use crate::crypto::{CryptoError, Secret};

/// Which end of the IKE SA we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// An IKE SA's keys as one end uses them.
#[derive(Debug)]
pub struct SaKeys {
    pub prf: Prf,
    pub sk_d: Secret,
    /// SK_pi for the initiator, SK_pr for the responder: MACs our own ID.
    pub sk_p_ours: Secret,
    /// The other end's SK_p.
    pub sk_p_theirs: Secret,
    /// Protects what we send.
    pub outbound: SkCipher,
    /// Checks what we receive.
    pub inbound: SkCipher,
    /// All seven keys as derived, for tests that look for key bytes where they must not
    /// be (logs, freed memory). Only with the `test-keys` feature; never in a real build.
    #[cfg(feature = "test-keys")]
    pub derived: IkeKeys,
}

impl SaKeys {
    /// Derives the keys of a new IKE SA (SKEYSEED and the seven keys) for `role`.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        role: Role,
        selected: &Selected,
        ni: &[u8],
        nr: &[u8],
        g_ir: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<Self, CryptoError> {
        let (prf, encr_len, integ_len) = Self::suite(selected)?;
        let k = derive_ike_keys(prf, ni, nr, g_ir, spi_i, spi_r, encr_len, integ_len)?;
        Self::arrange(role, selected, prf, k)
    }

    /// The PRF of an IKE proposal and the lengths of its SK_e and SK_a keys: what a new IKE
    /// SA's keys are derived with (first or rekeyed).
    pub fn suite(selected: &Selected) -> Result<(Prf, usize, usize), CryptoError> {
        let prf_id = selected
            .prf
            .ok_or_else(|| CryptoError::Unsupported("IKE proposal without PRF".into()))?;
        let prf = Prf::new(prf_id)?;
        let encr_len = SkCipher::encr_key_len(selected.encr, selected.key_bits)?;
        let integ_len = SkCipher::integ_key_len(selected.integ)?;
        Ok((prf, encr_len, integ_len))
    }

    /// Arranges derived keys by direction for `role`.
    pub fn arrange(
        role: Role,
        selected: &Selected,
        prf: Prf,
        k: IkeKeys,
    ) -> Result<Self, CryptoError> {
        let cipher_i = SkCipher::new(
            selected.encr,
            selected.key_bits,
            selected.integ,
            k.sk_ei.as_bytes(),
            k.sk_ai.as_bytes(),
        )?;
        let cipher_r = SkCipher::new(
            selected.encr,
            selected.key_bits,
            selected.integ,
            k.sk_er.as_bytes(),
            k.sk_ar.as_bytes(),
        )?;
        Ok(match role {
            Role::Initiator => Self {
                prf,
                sk_d: k.sk_d.clone(),
                sk_p_ours: k.sk_pi.clone(),
                sk_p_theirs: k.sk_pr.clone(),
                outbound: cipher_i,
                inbound: cipher_r,
                #[cfg(feature = "test-keys")]
                derived: k.clone(),
            },
            Role::Responder => Self {
                prf,
                sk_d: k.sk_d.clone(),
                sk_p_ours: k.sk_pr.clone(),
                sk_p_theirs: k.sk_pi.clone(),
                outbound: cipher_r,
                inbound: cipher_i,
                #[cfg(feature = "test-keys")]
                derived: k.clone(),
            },
        })
    }
}

/// The pad string of shared-key AUTH (RFC 7296 §2.15).
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// The octets an end signs or MACs: its IKE_SA_INIT message, the other end's nonce, and
/// prf(SK_p, its ID payload body).
pub fn signed_octets(
    prf: Prf,
    init_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.compute(sk_p, &[id_body]);
    let mut out = Vec::with_capacity(init_message.len() + peer_nonce.len() + maced_id.len());
    out.extend_from_slice(init_message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(maced_id.as_bytes());
    out
}

/// AUTH data for a shared key (a PSK, or an EAP MSK): prf(prf(key, "Key Pad for IKEv2"), octets).
pub fn shared_key_auth(prf: Prf, key: &[u8], octets: &[u8]) -> Secret {
    let padded = prf.compute(key, &[KEY_PAD]);
    prf.compute(padded.as_bytes(), &[octets])
}

/// The body of an ID payload as it enters the AUTH computation: type, three reserved bytes,
/// then the data.
pub fn id_body(id_type: crate::wire::IdType, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + data.len());
    v.extend_from_slice(&[id_type.0, 0, 0, 0]);
    v.extend_from_slice(data);
    v
}
