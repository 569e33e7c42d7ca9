//! EAP messages carried in the EAP payload (RFC 3748 §4).

use super::consts::{EapCode, EapType};
use super::error::WireError;
use super::reader::Reader;

/// Code, identifier and length.
pub const EAP_HEADER_LEN: usize = 4;

/// An EAP packet. `eap_type` and `data` are present for Request/Response only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EapMessage<'a> {
    pub code: EapCode,
    pub identifier: u8,
    pub eap_type: Option<EapType>,
    pub data: &'a [u8],
}

impl<'a> EapMessage<'a> {
    /// Parses a whole EAP packet: the length field must equal `buf.len()`. Request and
    /// Response carry a type; Success and Failure are exactly 4 bytes; other codes are
    /// rejected (RFC 3748 §4: unknown codes are discarded).
    pub fn parse(buf: &'a [u8]) -> Result<EapMessage<'a>, WireError> {
        let mut r = Reader::new(buf, "EAP message");
        let code = EapCode(r.u8()?);
        let identifier = r.u8()?;
        let len = usize::from(r.u16()?);
        if len != buf.len() {
            return Err(WireError::BadLength {
                what: "EAP message",
                len,
            });
        }
        match code {
            EapCode::REQUEST | EapCode::RESPONSE => {
                let eap_type = Some(EapType(r.u8()?));
                Ok(EapMessage {
                    code,
                    identifier,
                    eap_type,
                    data: r.rest(),
                })
            }
            EapCode::SUCCESS | EapCode::FAILURE => {
                if len != EAP_HEADER_LEN {
                    return Err(WireError::BadLength {
                        what: "EAP Success/Failure",
                        len,
                    });
                }
                Ok(EapMessage {
                    code,
                    identifier,
                    eap_type: None,
                    data: &[],
                })
            }
            _ => Err(WireError::Invalid("unknown EAP code")),
        }
    }

    /// Appends this EAP packet to `out`. Success and Failure are written as their 4 header
    /// bytes; a Request/Response without `eap_type` gets type 0. `data` must stay below
    /// 64 KiB (the length field saturates).
    pub fn write(&self, out: &mut Vec<u8>) {
        let has_type = matches!(self.code, EapCode::REQUEST | EapCode::RESPONSE);
        let body: &[u8] = if has_type { self.data } else { &[] };
        let len = EAP_HEADER_LEN + usize::from(has_type) + body.len();
        out.push(self.code.0);
        out.push(self.identifier);
        out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        if has_type {
            out.push(self.eap_type.unwrap_or(EapType(0)).0);
        }
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_request_and_response() {
        let req = [1, 7, 0, 5, 1];
        let m = EapMessage::parse(&req).unwrap();
        assert_eq!(
            m,
            EapMessage {
                code: EapCode::REQUEST,
                identifier: 7,
                eap_type: Some(EapType::IDENTITY),
                data: &[]
            }
        );
        let resp = EapMessage {
            code: EapCode::RESPONSE,
            identifier: 7,
            eap_type: Some(EapType::IDENTITY),
            data: b"alice",
        };
        let mut out = Vec::new();
        resp.write(&mut out);
        assert_eq!(out, [2, 7, 0, 10, 1, b'a', b'l', b'i', b'c', b'e']);
        assert_eq!(EapMessage::parse(&out).unwrap(), resp);
    }

    #[test]
    fn success_and_failure() {
        for code in [EapCode::SUCCESS, EapCode::FAILURE] {
            let b = [code.0, 9, 0, 4];
            let m = EapMessage::parse(&b).unwrap();
            assert_eq!(
                m,
                EapMessage {
                    code,
                    identifier: 9,
                    eap_type: None,
                    data: &[]
                }
            );
            let mut out = Vec::new();
            m.write(&mut out);
            assert_eq!(out, b);
            assert_eq!(
                EapMessage::parse(&[code.0, 9, 0, 5, 0]),
                Err(WireError::BadLength {
                    what: "EAP Success/Failure",
                    len: 5
                })
            );
        }
    }

    #[test]
    fn length_must_match_the_buffer() {
        assert_eq!(
            EapMessage::parse(&[1, 1, 0, 6, 1]),
            Err(WireError::BadLength {
                what: "EAP message",
                len: 6
            })
        );
        assert_eq!(
            EapMessage::parse(&[1, 1, 0, 4, 1]),
            Err(WireError::BadLength {
                what: "EAP message",
                len: 4
            })
        );
    }

    #[test]
    fn truncated_and_unknown() {
        assert!(matches!(
            EapMessage::parse(&[1, 1, 0]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            EapMessage::parse(&[]),
            Err(WireError::Truncated { .. })
        ));
        // A Request without its type byte.
        assert!(matches!(
            EapMessage::parse(&[1, 1, 0, 4]),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(
            EapMessage::parse(&[5, 1, 0, 4]),
            Err(WireError::Invalid("unknown EAP code"))
        );
    }
}
