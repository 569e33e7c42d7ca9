//! The SA payload (RFC 7296 §3.3): proposals, transforms and the key-length attribute.
//! Proposals are small, so they are parsed into owned values.

use super::consts::{ProtocolId, TransformType};

/// One transform of a proposal: a type, an algorithm ID and an optional key length in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transform {
    pub kind: TransformType,
    pub id: u16,
    pub key_length: Option<u16>,
}

/// One proposal of an SA payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number, 1-based.
    pub number: u8,
    pub protocol: ProtocolId,
    /// The sender's SPI: empty for IKE_SA_INIT, 8 bytes for an IKE rekey, 4 bytes for ESP/AH.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}
