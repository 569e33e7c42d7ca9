//! Key derivation: SKEYSEED and the seven IKE SA keys (RFC 7296 §2.14), CHILD SA keys
//! (§2.17).

use super::error::CryptoError;
use super::prf::Prf;
use super::secret::Secret;

/// The keys of an IKE SA.
#[derive(Debug, Clone)]
pub struct IkeKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

/// SKEYSEED = prf(Ni | Nr, g^ir), then prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) split into the
/// seven keys. `encr_len` includes any salt (AES-GCM: key + 4); `integ_len` is 0 for AEAD.
/// (For an IKE rekey, use `derive_rekeyed_ike_keys`.)
#[allow(clippy::too_many_arguments)]
pub fn derive_ike_keys(
    prf: Prf,
    ni: &[u8],
    nr: &[u8],
    g_ir: &[u8],
    spi_i: u64,
    spi_r: u64,
    encr_len: usize,
    integ_len: usize,
) -> Result<IkeKeys, CryptoError> {
    let _ = (prf, ni, nr, g_ir, spi_i, spi_r, encr_len, integ_len);
    Err(CryptoError::KeyLength)
}

/// The keys of a CHILD SA, by direction.
#[derive(Debug, Clone)]
pub struct ChildKeys {
    /// Initiator to responder: encryption key (with salt) and integrity key.
    pub encr_i: Secret,
    pub integ_i: Secret,
    /// Responder to initiator.
    pub encr_r: Secret,
    pub integ_r: Secret,
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken as encr_i, integ_i, encr_r, integ_r.
pub fn derive_child_keys(
    prf: Prf,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    encr_len: usize,
    integ_len: usize,
) -> Result<ChildKeys, CryptoError> {
    let _ = (prf, sk_d, g_ir, ni, nr, encr_len, integ_len);
    Err(CryptoError::KeyLength)
}
