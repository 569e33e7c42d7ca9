//! Typed errors of the crypto layer.

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("unsupported algorithm: {0}")]
    Unsupported(String),
    #[error("invalid key length")]
    KeyLength,
    #[error("invalid public value from the peer")]
    InvalidPublicValue,
    #[error("integrity check failed")]
    Integrity,
    #[error("malformed ciphertext")]
    Malformed,
    #[error("{what}: {got} bytes, expected {expected}")]
    BadLength {
        what: &'static str,
        got: usize,
        expected: usize,
    },
}
