//! The fixed 28-byte IKE header (RFC 7296 §3.1).

use super::consts::{ExchangeType, PayloadType};
use super::error::WireError;

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

/// The IKE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: PayloadType,
    /// Major version in the high nibble, minor in the low (0x20 for IKEv2).
    pub version: u8,
    pub exchange: ExchangeType,
    pub flags: u8,
    pub message_id: u32,
    /// Total length of the message including the header.
    pub length: u32,
}

impl Header {
    /// Parses the header from the start of `buf` (checks the version and that `length`
    /// matches `buf.len()`).
    pub fn parse(buf: &[u8]) -> Result<Header, WireError> {
        let _ = buf;
        Err(WireError::Invalid("not implemented"))
    }
    /// Appends the 28 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let _ = out;
    }
    pub fn is_response(&self) -> bool {
        self.flags & super::consts::flags::RESPONSE != 0
    }
    pub fn is_initiator(&self) -> bool {
        self.flags & super::consts::flags::INITIATOR != 0
    }
}
