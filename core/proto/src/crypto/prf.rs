//! PRFs (HMAC-SHA2-256/384/512, RFC 4868) and prf+ (RFC 7296 §2.13).

use super::error::CryptoError;
use super::secret::Secret;
use crate::wire::PrfId;

/// A negotiated PRF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prf(PrfId);

impl Prf {
    /// The PRF for a transform ID; weak or unknown ones are `Unsupported`.
    pub fn new(id: PrfId) -> Result<Self, CryptoError> {
        Err(CryptoError::Unsupported(format!("{id}")))
    }
    pub fn id(&self) -> PrfId {
        self.0
    }
    /// Output (and preferred key) length in bytes.
    pub fn output_len(&self) -> usize {
        0
    }
    /// prf(key, data[0] | data[1] | ...).
    pub fn compute(&self, key: &[u8], data: &[&[u8]]) -> Secret {
        let _ = (key, data);
        Secret::default()
    }
    /// prf+(key, seed) truncated to `len` bytes (at most 255 iterations).
    pub fn prf_plus(&self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Secret, CryptoError> {
        let _ = (key, seed, len);
        Err(CryptoError::KeyLength)
    }
}
