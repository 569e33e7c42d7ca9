//! The AEAD transforms shared by IKE's SK payload and ESP: AES-GCM-16 with 128/192/256-bit
//! keys (RFC 5282, RFC 4106) and ChaCha20-Poly1305 (RFC 7634), keyed for one direction from
//! key material that ends in a 4-byte salt. Nonce = salt | 8-byte explicit IV; 16-byte ICV;
//! encryption and decryption in place with the tag apart.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{AesGcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::Zeroizing;

use super::error::CryptoError;
use crate::wire::EncrId;

/// The explicit IV carried in each message or packet.
pub const IV_LEN: usize = 8;
/// The implicit salt at the end of the key material.
pub const SALT_LEN: usize = 4;
/// The ICV (tag).
pub const ICV_LEN: usize = 16;

type Aes128Gcm = AesGcm<Aes128, U12>;
type Aes192Gcm = AesGcm<Aes192, U12>;
type Aes256Gcm = AesGcm<Aes256, U12>;

/// The keyed primitive. Boxed: the key schedules are large.
enum Alg {
    Gcm128(Box<Aes128Gcm>),
    Gcm192(Box<Aes192Gcm>),
    Gcm256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// An AEAD keyed for one direction, with its salt.
pub struct Aead {
    alg: Alg,
    salt: Zeroizing<[u8; SALT_LEN]>,
    name: &'static str,
}

impl Aead {
    /// Whether `encr` is one of the AEADs here.
    pub fn is_aead(encr: EncrId) -> bool {
        matches!(encr, EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305)
    }

    /// Keys `encr` from `key_material` = key | salt (as IKE derives it); the key length
    /// selects AES-128/192/256, ChaCha20 takes 32 bytes.
    pub fn new(encr: EncrId, key_material: &[u8]) -> Result<Self, CryptoError> {
        let split = key_material
            .len()
            .checked_sub(SALT_LEN)
            .ok_or(CryptoError::KeyLength)?;
        let (key, salt_bytes) = key_material.split_at(split);
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        salt.copy_from_slice(salt_bytes);
        let bad = |_| CryptoError::KeyLength;
        let (alg, name) = match (encr, key.len()) {
            (EncrId::CHACHA20_POLY1305, 32) => (
                Alg::ChaCha(Box::new(
                    ChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
                )),
                "chacha20poly1305",
            ),
            (EncrId::AES_GCM_16, 16) => (
                Alg::Gcm128(Box::new(Aes128Gcm::new_from_slice(key).map_err(bad)?)),
                "aes128gcm16",
            ),
            (EncrId::AES_GCM_16, 24) => (
                Alg::Gcm192(Box::new(Aes192Gcm::new_from_slice(key).map_err(bad)?)),
                "aes192gcm16",
            ),
            (EncrId::AES_GCM_16, 32) => (
                Alg::Gcm256(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?)),
                "aes256gcm16",
            ),
            (EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305, _) => {
                return Err(CryptoError::KeyLength)
            }
            _ => return Err(CryptoError::Unsupported(format!("{encr}"))),
        };
        Ok(Self { alg, salt, name })
    }

    /// The transform's name in strongSwan syntax (`aes256gcm16`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn nonce(&self, iv: &[u8]) -> Result<Nonce<Aes128Gcm>, CryptoError> {
        if iv.len() != IV_LEN {
            return Err(CryptoError::Malformed);
        }
        let mut n = Nonce::<Aes128Gcm>::default();
        let (s, i) = n.split_at_mut(SALT_LEN);
        s.copy_from_slice(self.salt.as_slice());
        i.copy_from_slice(iv);
        Ok(n)
    }

    /// Encrypts `buf` in place and returns the ICV.
    pub fn seal_in_place(
        &self,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; ICV_LEN], CryptoError> {
        let nonce = self.nonce(iv)?;
        let tag = match &self.alg {
            Alg::Gcm128(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
            Alg::Gcm192(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
            Alg::Gcm256(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
            Alg::ChaCha(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
        }
        .map_err(|_| CryptoError::Malformed)?;
        Ok(tag.into())
    }

    /// Checks `icv` and, only if it is right, decrypts `buf` in place.
    pub fn open_in_place(
        &self,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        let nonce = self.nonce(iv)?;
        let tag = Tag::<Aes128Gcm>::try_from(icv).map_err(|_| CryptoError::Malformed)?;
        match &self.alg {
            Alg::Gcm128(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Alg::Gcm192(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Alg::Gcm256(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Alg::ChaCha(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        }
        .map_err(|_| CryptoError::Integrity)
    }
}

impl std::fmt::Debug for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}
