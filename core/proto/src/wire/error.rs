//! Typed errors for everything the wire parser can reject.

use super::consts::PayloadType;

/// Why a datagram could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what}: bad length {len}")]
    BadLength { what: &'static str, len: usize },
    #[error("unsupported IKE major version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown critical payload {0}")]
    UnsupportedCriticalPayload(PayloadType),
    #[error("too many {0} (limit reached)")]
    TooMany(&'static str),
    #[error("{0}")]
    Invalid(&'static str),
}
