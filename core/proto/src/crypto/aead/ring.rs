//! The ring AEAD backend (cargo feature `ring`): BoringSSL-derived assembly, the fastest here
//! (docs/PERFORMANCE.md), but it needs a C toolchain for the target (the NDK, Xcode) and
//! it has no AES-192-GCM (that one stays with RustCrypto). ring does not zeroize its key
//! schedules when they are dropped; the key bytes we pass it are ours and are zeroized.
//! On a failed open ring has already decrypted and then overwrites the buffer.

use ring::aead::{
    Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
};

use super::{AeadAlg, AeadKey, ICV_LEN, NONCE_LEN};
use crate::crypto::error::CryptoError;

/// One ring AEAD keyed. The nonces are the caller's (salt | explicit IV), unique per key by
/// the protocols' sequence numbers and message IDs.
struct Key(LessSafeKey);

impl AeadKey for Key {
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; ICV_LEN], CryptoError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| CryptoError::Malformed)?;
        let mut icv = [0u8; ICV_LEN];
        icv.copy_from_slice(tag.as_ref());
        Ok(icv)
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        icv: &[u8; ICV_LEN],
    ) -> Result<(), CryptoError> {
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                Tag::from(*icv),
                buf,
                0..,
            )
            .map(|_| ())
            .map_err(|_| CryptoError::Integrity)
    }
}

/// Whether ring has `alg`.
pub(super) fn supports(alg: AeadAlg) -> bool {
    !matches!(alg, AeadAlg::Aes192Gcm)
}

/// Keys `alg` with `key` (no salt).
pub(super) fn key(alg: AeadAlg, key: &[u8]) -> Result<Box<dyn AeadKey>, CryptoError> {
    let algorithm = match alg {
        AeadAlg::Aes128Gcm => &AES_128_GCM,
        AeadAlg::Aes256Gcm => &AES_256_GCM,
        AeadAlg::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        AeadAlg::Aes192Gcm => return Err(CryptoError::Unsupported("ring: AES-192-GCM".into())),
    };
    let unbound = UnboundKey::new(algorithm, key).map_err(|_| CryptoError::KeyLength)?;
    Ok(Box::new(Key(LessSafeKey::new(unbound))))
}
