//! The AEAD transforms shared by IKE's SK payload and ESP: AES-GCM-16 with 128/192/256-bit
//! keys (RFC 5282, RFC 4106) and ChaCha20-Poly1305 (RFC 7634), keyed for one direction from
//! key material that ends in a 4-byte salt. Nonce = salt | 8-byte explicit IV; 16-byte ICV;
//! encryption and decryption in place with the tag apart.
//!
//! The primitive comes from a [`Backend`] behind the small [`AeadKey`] trait:
//! - [`Backend::RustCrypto`] (aes-gcm, chacha20poly1305): pure Rust, builds for every target
//!   without a C toolchain, zeroizes its key schedules. Always compiled in.
//! - `Backend::Ring` (cargo feature `ring`): ring's assembly. Measured on the project's
//!   machines (docs/PERFORMANCE.md) it seals 1400-byte packets about 2.5 times as fast with
//!   AES-256-GCM and about 3.5 times as fast with ChaCha20-Poly1305, so it is
//!   [`Backend::DEFAULT`] whenever it is compiled in, and the app builds (`roam` desktop
//!   command, the Android and iOS libraries) turn the feature on. It needs the target's C
//!   toolchain (NDK, Xcode), has no AES-192-GCM (RustCrypto keys that one), and does not
//!   zeroize its expanded keys on drop.
//!
//! After a failed [`Aead::open_in_place`] the buffer's contents are unspecified (RustCrypto
//! leaves the ciphertext, ring overwrites what it decrypted); callers drop it.

#[cfg(feature = "ring")]
mod ring;
mod rustcrypto;

use zeroize::Zeroizing;

use super::error::CryptoError;
use crate::wire::EncrId;

/// The explicit IV carried in each message or packet.
pub const IV_LEN: usize = 8;
/// The implicit salt at the end of the key material.
pub const SALT_LEN: usize = 4;
/// The ICV (tag).
pub const ICV_LEN: usize = 16;
/// The whole nonce: salt | explicit IV.
pub const NONCE_LEN: usize = SALT_LEN + IV_LEN;

/// The AEAD algorithms here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadAlg {
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl AeadAlg {
    /// Every algorithm.
    pub const ALL: [Self; 4] = [
        Self::Aes128Gcm,
        Self::Aes192Gcm,
        Self::Aes256Gcm,
        Self::ChaCha20Poly1305,
    ];

    /// The algorithm for `encr` with a key of `key_len` bytes (salt excluded).
    pub fn from_encr(encr: EncrId, key_len: usize) -> Result<Self, CryptoError> {
        match (encr, key_len) {
            (EncrId::CHACHA20_POLY1305, 32) => Ok(Self::ChaCha20Poly1305),
            (EncrId::AES_GCM_16, 16) => Ok(Self::Aes128Gcm),
            (EncrId::AES_GCM_16, 24) => Ok(Self::Aes192Gcm),
            (EncrId::AES_GCM_16, 32) => Ok(Self::Aes256Gcm),
            (EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305, _) => Err(CryptoError::KeyLength),
            _ => Err(CryptoError::Unsupported(format!("{encr}"))),
        }
    }

    /// Key bytes, salt excluded.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes192Gcm => 24,
            Self::Aes256Gcm | Self::ChaCha20Poly1305 => 32,
        }
    }

    /// The transform's name in strongSwan syntax (`aes256gcm16`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "aes128gcm16",
            Self::Aes192Gcm => "aes192gcm16",
            Self::Aes256Gcm => "aes256gcm16",
            Self::ChaCha20Poly1305 => "chacha20poly1305",
        }
    }
}

/// What a backend provides: one AEAD keyed, sealing and opening in place under a whole
/// 12-byte nonce with a detached 16-byte tag.
pub trait AeadKey: Send + Sync {
    /// Encrypts `buf` in place and returns the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; ICV_LEN], CryptoError>;

    /// Decrypts `buf` in place if `icv` authenticates it; [`CryptoError::Integrity`] if not.
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        icv: &[u8; ICV_LEN],
    ) -> Result<(), CryptoError>;
}

/// The implementations of [`AeadKey`] compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// aes-gcm and chacha20poly1305: pure Rust.
    RustCrypto,
    /// ring (cargo feature `ring`).
    #[cfg(feature = "ring")]
    Ring,
}

impl Backend {
    /// The backend [`Aead::new`] uses: the fastest one compiled in (see the module doc).
    #[cfg(feature = "ring")]
    pub const DEFAULT: Self = Self::Ring;
    /// The backend [`Aead::new`] uses: the fastest one compiled in (see the module doc).
    #[cfg(not(feature = "ring"))]
    pub const DEFAULT: Self = Self::RustCrypto;

    /// Every backend compiled in.
    pub const ALL: &'static [Self] = &[
        Self::RustCrypto,
        #[cfg(feature = "ring")]
        Self::Ring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::RustCrypto => "rustcrypto",
            #[cfg(feature = "ring")]
            Self::Ring => "ring",
        }
    }

    /// Whether this backend implements `alg`.
    #[cfg_attr(not(feature = "ring"), allow(unused_variables))]
    pub fn supports(self, alg: AeadAlg) -> bool {
        match self {
            Self::RustCrypto => true,
            #[cfg(feature = "ring")]
            Self::Ring => ring::supports(alg),
        }
    }

    /// Keys `alg` with `key` (salt excluded).
    pub fn key(self, alg: AeadAlg, key: &[u8]) -> Result<Box<dyn AeadKey>, CryptoError> {
        if key.len() != alg.key_len() {
            return Err(CryptoError::KeyLength);
        }
        match self {
            Self::RustCrypto => rustcrypto::key(alg, key),
            #[cfg(feature = "ring")]
            Self::Ring => ring::key(alg, key),
        }
    }
}

/// An AEAD keyed for one direction, with its salt.
pub struct Aead {
    key: Box<dyn AeadKey>,
    salt: Zeroizing<[u8; SALT_LEN]>,
    alg: AeadAlg,
    backend: Backend,
}

impl Aead {
    /// Whether `encr` is one of the AEADs here.
    pub fn is_aead(encr: EncrId) -> bool {
        matches!(encr, EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305)
    }

    /// Keys `encr` from `key_material` = key | salt (as IKE derives it) with
    /// [`Backend::DEFAULT`]; the key length selects AES-128/192/256, ChaCha20 takes 32 bytes.
    pub fn new(encr: EncrId, key_material: &[u8]) -> Result<Self, CryptoError> {
        Self::with_backend(Backend::DEFAULT, encr, key_material)
    }

    /// The same with `backend`, or with RustCrypto where `backend` lacks the algorithm.
    pub fn with_backend(
        backend: Backend,
        encr: EncrId,
        key_material: &[u8],
    ) -> Result<Self, CryptoError> {
        let split = key_material
            .len()
            .checked_sub(SALT_LEN)
            .ok_or(CryptoError::KeyLength)?;
        let (key, salt_bytes) = key_material.split_at(split);
        let alg = AeadAlg::from_encr(encr, key.len())?;
        let backend = if backend.supports(alg) {
            backend
        } else {
            Backend::RustCrypto
        };
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        salt.copy_from_slice(salt_bytes);
        Ok(Self {
            key: backend.key(alg, key)?,
            salt,
            alg,
            backend,
        })
    }

    /// The transform's name in strongSwan syntax (`aes256gcm16`).
    pub fn name(&self) -> &'static str {
        self.alg.name()
    }

    pub fn alg(&self) -> AeadAlg {
        self.alg
    }

    /// The backend that keyed this AEAD.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn nonce(&self, iv: &[u8]) -> Result<[u8; NONCE_LEN], CryptoError> {
        let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| CryptoError::Malformed)?;
        let mut n = [0u8; NONCE_LEN];
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
        self.key.seal_in_place(&self.nonce(iv)?, aad, buf)
    }

    /// Checks `icv` and decrypts `buf` in place; on an error the contents of `buf` are
    /// unspecified (see the module doc).
    pub fn open_in_place(
        &self,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        icv: &[u8],
    ) -> Result<(), CryptoError> {
        let icv: &[u8; ICV_LEN] = icv.try_into().map_err(|_| CryptoError::Malformed)?;
        self.key.open_in_place(&self.nonce(iv)?, aad, buf, icv)
    }
}

impl std::fmt::Debug for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.alg.name(), self.backend.name())
    }
}

#[cfg(test)]
mod tests;
