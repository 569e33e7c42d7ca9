//! Curve25519 (group 31, RFC 8031 with X25519 of RFC 7748): 32-byte public values; an
//! all-zero shared secret (a low-order peer point) is rejected.

use x25519_dalek::{PublicKey, StaticSecret};

use super::KeyExchange;
use crate::crypto::error::CryptoError;
use crate::crypto::secret::Secret;
use crate::rng::Rng;
use crate::wire::DhGroup;

/// An ephemeral X25519 key pair (the secret zeroizes itself on drop).
pub(super) struct X25519 {
    secret: StaticSecret,
    public: [u8; 32],
}

impl X25519 {
    pub(super) fn new(rng: &mut dyn Rng) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes);
        let secret = StaticSecret::from(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        let public = PublicKey::from(&secret).to_bytes();
        Self { secret, public }
    }
}

impl KeyExchange for X25519 {
    fn group(&self) -> DhGroup {
        DhGroup::CURVE25519
    }
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn shared_secret(&self, peer: &[u8]) -> Result<Secret, CryptoError> {
        let peer: [u8; 32] = peer
            .try_into()
            .map_err(|_| CryptoError::InvalidPublicValue)?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(peer));
        // Constant-time check that the result is not all zeros (RFC 7748 §6.1).
        if !shared.was_contributory() {
            return Err(CryptoError::InvalidPublicValue);
        }
        Ok(Secret::from_slice(shared.as_bytes()))
    }
}
