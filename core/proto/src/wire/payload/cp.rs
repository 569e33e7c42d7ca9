//! The configuration payload CP (RFC 7296 §3.15): a config type and a list of attributes.

use super::super::consts::{CfgAttr, CfgType};
use super::super::error::WireError;
use super::super::reader::Reader;
use super::CfgAttribute;

/// At most this many attributes in one CP payload.
pub const MAX_CFG_ATTRIBUTES: usize = 128;

/// The reserved high bit of the attribute type.
const ATTR_RESERVED_BIT: u16 = 0x8000;

/// Parses the body of a CP payload.
pub(crate) fn parse_cp<'a>(body: &'a [u8]) -> Result<(CfgType, Vec<CfgAttribute<'a>>), WireError> {
    let mut r = Reader::new(body, "CP payload");
    let cfg_type = CfgType(r.u8()?);
    r.skip(3)?;
    let mut attrs = Vec::new();
    while !r.is_empty() {
        if attrs.len() >= MAX_CFG_ATTRIBUTES {
            return Err(WireError::TooMany("configuration attributes"));
        }
        let kind = CfgAttr(r.u16()? & !ATTR_RESERVED_BIT);
        let len = usize::from(r.u16()?);
        let value = r.take(len).map_err(|_| WireError::BadLength {
            what: "configuration attribute",
            len,
        })?;
        attrs.push(CfgAttribute { kind, value });
    }
    Ok((cfg_type, attrs))
}

/// Appends the body of a CP payload. The reserved bit of each attribute type is cleared.
pub(crate) fn write_cp(cfg_type: CfgType, attrs: &[CfgAttribute<'_>], out: &mut Vec<u8>) {
    out.push(cfg_type.0);
    out.extend_from_slice(&[0, 0, 0]);
    for a in attrs {
        out.extend_from_slice(&(a.kind.0 & !ATTR_RESERVED_BIT).to_be_bytes());
        let len = u16::try_from(a.value.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(a.value.get(..usize::from(len)).unwrap_or(a.value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_for_an_address_and_dns() {
        // CFG_REQUEST: INTERNAL_IP4_ADDRESS (empty), INTERNAL_IP4_DNS (empty),
        // APPLICATION_VERSION "roam".
        let b = [
            1, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 7, 0, 4, b'r', b'o', b'a', b'm',
        ];
        let (t, attrs) = parse_cp(&b).unwrap();
        assert_eq!(t, CfgType::CFG_REQUEST);
        assert_eq!(
            attrs,
            vec![
                CfgAttribute {
                    kind: CfgAttr::INTERNAL_IP4_ADDRESS,
                    value: &[]
                },
                CfgAttribute {
                    kind: CfgAttr::INTERNAL_IP4_DNS,
                    value: &[]
                },
                CfgAttribute {
                    kind: CfgAttr::APPLICATION_VERSION,
                    value: b"roam"
                },
            ]
        );
        let mut out = Vec::new();
        write_cp(t, &attrs, &mut out);
        assert_eq!(out, b);
    }

    #[test]
    fn reserved_bit_is_ignored() {
        let b = [2, 0, 0, 0, 0x80, 1, 0, 4, 192, 0, 2, 7];
        let (_, attrs) = parse_cp(&b).unwrap();
        assert_eq!(attrs[0].kind, CfgAttr::INTERNAL_IP4_ADDRESS);
        assert_eq!(attrs[0].value, &[192, 0, 2, 7]);
    }

    #[test]
    fn bad_and_truncated_attributes() {
        assert_eq!(
            parse_cp(&[2, 0, 0, 0, 0, 1, 0, 5, 192, 0, 2, 7]),
            Err(WireError::BadLength {
                what: "configuration attribute",
                len: 5
            })
        );
        assert!(matches!(
            parse_cp(&[2, 0, 0, 0, 0, 1, 0]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            parse_cp(&[2, 0]),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn too_many_attributes() {
        let mut b = vec![1, 0, 0, 0];
        for _ in 0..MAX_CFG_ATTRIBUTES {
            b.extend_from_slice(&[0, 3, 0, 0]);
        }
        assert_eq!(parse_cp(&b).unwrap().1.len(), MAX_CFG_ATTRIBUTES);
        b.extend_from_slice(&[0, 3, 0, 0]);
        assert_eq!(
            parse_cp(&b),
            Err(WireError::TooMany("configuration attributes"))
        );
    }
}
