//! The RustCrypto AEAD backend (aes-gcm, chacha20poly1305): pure Rust, builds for every
//! target without a C toolchain, key schedules zeroized on drop. AES-NI/PCLMULQDQ (x86) and
//! the ARMv8 crypto extensions are detected at run time.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{AesGcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::{AeadAlg, AeadKey, ICV_LEN, NONCE_LEN};
use crate::crypto::error::CryptoError;

/// One RustCrypto AEAD keyed.
struct Key<A>(A);

impl<A> AeadKey for Key<A>
where
    A: AeadInOut<NonceSize = U12, TagSize = U16> + Send + Sync,
{
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; ICV_LEN], CryptoError> {
        let nonce = Nonce::<A>::from(*nonce);
        let tag = self
            .0
            .encrypt_inout_detached(&nonce, aad, buf.into())
            .map_err(|_| CryptoError::Malformed)?;
        Ok(tag.into())
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        icv: &[u8; ICV_LEN],
    ) -> Result<(), CryptoError> {
        let nonce = Nonce::<A>::from(*nonce);
        let tag = Tag::<A>::from(*icv);
        self.0
            .decrypt_inout_detached(&nonce, aad, buf.into(), &tag)
            .map_err(|_| CryptoError::Integrity)
    }
}

/// Keys `alg` with `key` (no salt).
pub(super) fn key(alg: AeadAlg, key: &[u8]) -> Result<Box<dyn AeadKey>, CryptoError> {
    fn make<A>(key: &[u8]) -> Result<Box<dyn AeadKey>, CryptoError>
    where
        A: AeadInOut<NonceSize = U12, TagSize = U16> + KeyInit + Send + Sync + 'static,
    {
        let a = A::new_from_slice(key).map_err(|_| CryptoError::KeyLength)?;
        Ok(Box::new(Key(a)))
    }
    match alg {
        AeadAlg::Aes128Gcm => make::<AesGcm<Aes128, U12>>(key),
        AeadAlg::Aes192Gcm => make::<AesGcm<Aes192, U12>>(key),
        AeadAlg::Aes256Gcm => make::<AesGcm<Aes256, U12>>(key),
        AeadAlg::ChaCha20Poly1305 => make::<ChaCha20Poly1305>(key),
    }
}
