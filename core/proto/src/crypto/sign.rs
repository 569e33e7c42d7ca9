//! Our private key and the AUTH payload we sign with it: RFC 7427 digital signatures with
//! RSA (PKCS#1 v1.5 and PSS), ECDSA P-256/P-384 and Ed25519.

use super::cert::{CertError, Certificate};
use crate::rng::Rng;
use crate::wire::{AuthMethod, HashAlgorithm};

/// A private key loaded from PEM (PKCS#1, SEC1 or PKCS#8). Zeroized on drop, never printed.
pub struct PrivateKey {
    _private: (),
}

impl PrivateKey {
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let _ = pem;
        Err(CertError::Key("not implemented".into()))
    }
    /// Whether `cert` carries this key's public half.
    pub fn matches(&self, cert: &Certificate) -> bool {
        let _ = cert;
        false
    }
    /// Signs `octets` for an AUTH payload: returns the method (DIGITAL_SIGNATURE when the peer
    /// announced hash algorithms, else the classic method for the key type) and the AUTH data
    /// (for DIGITAL_SIGNATURE: the length-prefixed AlgorithmIdentifier then the signature).
    pub fn sign_auth(
        &self,
        octets: &[u8],
        peer_hashes: &[HashAlgorithm],
        rng: &mut dyn Rng,
    ) -> Result<(AuthMethod, Vec<u8>), CertError> {
        let _ = (octets, peer_hashes, rng);
        Err(CertError::Key("not implemented".into()))
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}
