//! Cryptography for IKEv2 and ESP, built on RustCrypto: PRFs and prf+, key derivation, the SK
//! payload's ciphers, key exchange groups, proposals in strongSwan syntax, signatures and
//! certificates for AUTH, and MSCHAPv2. Every key is zeroized on drop and never printed.

pub mod cert;
pub mod dh;
pub mod error;
pub mod keymat;
pub mod mschapv2;
pub mod prf;
pub mod proposal;
pub mod secret;
pub mod sign;
pub mod sk;

pub use error::CryptoError;
pub use secret::Secret;
