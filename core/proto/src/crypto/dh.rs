//! Key exchange groups: MODP 2048/3072 (RFC 3526), ECP 256/384 (RFC 5903), Curve25519
//! (RFC 8031).

use super::error::CryptoError;
use super::secret::Secret;
use crate::rng::Rng;
use crate::wire::DhGroup;

/// One ephemeral key exchange: our public value, and the shared secret with the peer's.
pub trait KeyExchange: Send {
    fn group(&self) -> DhGroup;
    /// Our public value as it goes into the KE payload.
    fn public_key(&self) -> &[u8];
    /// g^ir from the peer's KE payload data (validated: wrong length or a point not on the
    /// curve is `InvalidPublicValue`).
    fn shared_secret(&self, peer: &[u8]) -> Result<Secret, CryptoError>;
}

/// Whether Roam implements `group`.
pub fn is_supported(group: DhGroup) -> bool {
    let _ = group;
    false
}

/// A fresh ephemeral key pair for `group`.
pub fn new_key_exchange(group: DhGroup, rng: &mut dyn Rng) -> Result<Box<dyn KeyExchange>, CryptoError> {
    let _ = rng;
    Err(CryptoError::Unsupported(format!("{group}")))
}
