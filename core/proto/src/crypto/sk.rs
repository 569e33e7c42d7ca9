//! The cipher of the SK and SKF payloads (RFC 7296 §3.14, RFC 5282 for AEAD, RFC 7634 for
//! ChaCha20-Poly1305): AES-GCM-16 (128/256), ChaCha20-Poly1305, AES-CBC with HMAC-SHA2.

use super::error::CryptoError;
use crate::rng::Rng;
use crate::wire::{EncrId, IntegId};

/// One direction's SK cipher.
pub struct SkCipher {
    _private: (),
}

impl SkCipher {
    /// Bytes of encryption key material for `encr` with `key_bits` (includes the 4-byte salt
    /// of AES-GCM and ChaCha20-Poly1305). `key_bits` is None for fixed-size ciphers.
    pub fn encr_key_len(encr: EncrId, key_bits: Option<u16>) -> Result<usize, CryptoError> {
        let _ = (encr, key_bits);
        Err(CryptoError::Unsupported(format!("{encr}")))
    }
    /// Bytes of integrity key for `integ` (0 for NONE).
    pub fn integ_key_len(integ: IntegId) -> Result<usize, CryptoError> {
        Err(CryptoError::Unsupported(format!("{integ}")))
    }
    /// Whether `encr` is an AEAD (then INTEG must be NONE).
    pub fn is_aead(encr: EncrId) -> bool {
        let _ = encr;
        false
    }
    pub fn new(
        encr: EncrId,
        key_bits: Option<u16>,
        integ: IntegId,
        encr_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, CryptoError> {
        let _ = (encr, key_bits, integ, encr_key, integ_key);
        Err(CryptoError::Unsupported(format!("{encr}")))
    }
    /// Length of IV || ciphertext (padded, with pad length byte) || ICV for `plaintext_len`.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        plaintext_len
    }
    /// Appends IV || ciphertext || ICV to `out`. `aad` is every byte of the message before the
    /// IV (it must already carry the final lengths). AEAD: AAD = `aad`; CBC: ICV over
    /// `aad` || IV || ciphertext.
    pub fn seal(&self, rng: &mut dyn Rng, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let _ = (rng, aad, plaintext, out);
    }
    /// Checks and decrypts `body` (IV || ciphertext || ICV) and returns the plaintext with
    /// padding and pad length removed.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let _ = (aad, body);
        Err(CryptoError::Integrity)
    }
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkCipher")
    }
}
