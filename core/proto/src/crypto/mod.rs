//! Cryptography for IKEv2 and ESP, built on RustCrypto: PRFs and prf+, key derivation, the SK
//! payload's ciphers, key exchange groups, proposals in strongSwan syntax, signatures and
//! certificates for AUTH, and MSCHAPv2. Every key is zeroized on drop and never printed.

pub mod aead;
pub mod cert;
pub mod dh;
pub mod error;
pub mod kem;
pub mod kex;
pub mod keymat;
pub mod mschapv2;
pub mod prf;
pub mod proposal;
pub mod secret;
pub mod sign;
pub mod sk;

pub use error::CryptoError;
pub use secret::Secret;

/// Constant-time equality of two MACs or secrets (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
