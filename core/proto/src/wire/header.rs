//! The fixed 28-byte IKE header (RFC 7296 §3.1).

use super::consts::{ExchangeType, PayloadType};
use super::error::WireError;
use super::reader::Reader;

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

/// The only IKE major version Roam speaks.
pub const IKE_MAJOR_VERSION: u8 = 2;

/// The version byte Roam sends (major 2, minor 0).
pub const IKE_VERSION: u8 = 0x20;

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
    /// An IKEv2 header; `length` and `next_payload` are filled in when the message is written.
    pub fn new(spi_i: u64, spi_r: u64, exchange: ExchangeType, flags: u8, message_id: u32) -> Self {
        Header {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            version: 0x20,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    /// Parses the header from the start of `buf` (checks the version and that `length`
    /// matches `buf.len()`).
    pub fn parse(buf: &[u8]) -> Result<Header, WireError> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::Truncated {
                what: "IKE header",
                need: HEADER_LEN,
                have: buf.len(),
            });
        }
        let mut r = Reader::new(buf, "IKE header");
        let header = Header {
            spi_i: r.u64()?,
            spi_r: r.u64()?,
            next_payload: PayloadType(r.u8()?),
            version: r.u8()?,
            exchange: ExchangeType(r.u8()?),
            flags: r.u8()?,
            message_id: r.u32()?,
            length: r.u32()?,
        };
        let major = header.version >> 4;
        if major != IKE_MAJOR_VERSION {
            return Err(WireError::UnsupportedVersion(major));
        }
        if usize::try_from(header.length).ok() != Some(buf.len()) {
            return Err(WireError::BadLength {
                what: "IKE header length",
                len: header.length as usize,
            });
        }
        Ok(header)
    }

    /// Appends the 28 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN);
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload.0);
        out.push(self.version);
        out.push(self.exchange.0);
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }

    pub fn is_response(&self) -> bool {
        self.flags & super::consts::flags::RESPONSE != 0
    }

    pub fn is_initiator(&self) -> bool {
        self.flags & super::consts::flags::INITIATOR != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::flags;

    fn sample() -> Header {
        Header {
            spi_i: 0x0102_0304_0506_0708,
            spi_r: 0,
            next_payload: PayloadType::SA,
            version: 0x20,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: flags::INITIATOR,
            message_id: 0,
            length: 28,
        }
    }

    const SAMPLE_BYTES: [u8; 28] = [
        1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 28,
    ];

    #[test]
    fn writes_the_rfc_layout() {
        let mut out = Vec::new();
        sample().write(&mut out);
        assert_eq!(out, SAMPLE_BYTES);
    }

    #[test]
    fn parses_what_it_writes() {
        let h = Header::parse(&SAMPLE_BYTES).unwrap();
        assert_eq!(h, sample());
        assert!(h.is_initiator());
        assert!(!h.is_response());
    }

    #[test]
    fn minor_version_is_ignored() {
        let mut b = SAMPLE_BYTES;
        b[17] = 0x2f;
        assert_eq!(Header::parse(&b).unwrap().version, 0x2f);
    }

    #[test]
    fn other_major_versions_are_rejected() {
        let mut b = SAMPLE_BYTES;
        b[17] = 0x10;
        assert_eq!(Header::parse(&b), Err(WireError::UnsupportedVersion(1)));
        b[17] = 0x30;
        assert_eq!(Header::parse(&b), Err(WireError::UnsupportedVersion(3)));
    }

    #[test]
    fn short_buffers_are_truncated() {
        assert_eq!(
            Header::parse(&SAMPLE_BYTES[..27]),
            Err(WireError::Truncated {
                what: "IKE header",
                need: 28,
                have: 27
            })
        );
        assert!(matches!(
            Header::parse(&[]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn length_field_must_match_the_buffer() {
        let mut b = SAMPLE_BYTES.to_vec();
        b.push(0);
        assert_eq!(
            Header::parse(&b),
            Err(WireError::BadLength {
                what: "IKE header length",
                len: 28
            })
        );
        let mut b = SAMPLE_BYTES;
        b[27] = 29;
        assert_eq!(
            Header::parse(&b),
            Err(WireError::BadLength {
                what: "IKE header length",
                len: 29
            })
        );
    }

    #[test]
    fn response_flag() {
        let mut h = sample();
        h.flags = flags::RESPONSE;
        assert!(h.is_response());
        assert!(!h.is_initiator());
    }
}
