//! The SA payload (RFC 7296 §3.3): proposals, transforms and the key-length attribute.
//! Proposals are small, so they are parsed into owned values.

use super::consts::{ProtocolId, TransformType, ATTR_KEY_LENGTH};
use super::error::WireError;
use super::reader::{patch_u16, Reader};

/// At most this many proposals in one SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// At most this many transforms in one proposal.
pub const MAX_TRANSFORMS: usize = 64;

/// "Last Substruc" values (RFC 7296 §3.3.1, §3.3.2).
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;

/// The attribute-format bit: set for TV (2-byte value), clear for TLV.
const ATTR_TV: u16 = 0x8000;

const PROPOSAL_HEADER_LEN: usize = 8;
const TRANSFORM_HEADER_LEN: usize = 8;

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

/// Parses the body of an SA payload. A transform carrying an attribute we do not know is
/// left out of its proposal (RFC 7296 §3.3.6: such a transform must be rejected), so the
/// proposal can still be chosen if what remains suffices.
pub(crate) fn parse_sa(body: &[u8]) -> Result<Vec<Proposal>, WireError> {
    let mut r = Reader::new(body, "SA payload");
    let mut proposals = Vec::new();
    loop {
        if proposals.len() >= MAX_PROPOSALS {
            return Err(WireError::TooMany("proposals"));
        }
        let last = r.u8()?;
        r.skip(1)?;
        let len = usize::from(r.u16()?);
        if len < PROPOSAL_HEADER_LEN {
            return Err(WireError::BadLength {
                what: "proposal",
                len,
            });
        }
        // The length counts the 4 bytes already read.
        let rest = r.take(len - 4).map_err(|_| WireError::BadLength {
            what: "proposal",
            len,
        })?;
        proposals.push(parse_proposal(rest)?);
        match last {
            LAST if r.is_empty() => return Ok(proposals),
            LAST => return Err(WireError::Invalid("data after the last proposal")),
            MORE_PROPOSALS if r.is_empty() => {
                return Err(WireError::Invalid(
                    "SA payload ends before its last proposal",
                ))
            }
            MORE_PROPOSALS => {}
            _ => return Err(WireError::Invalid("bad proposal last-substruc")),
        }
    }
}

/// Parses a proposal after its first four bytes (last, reserved, length).
fn parse_proposal(buf: &[u8]) -> Result<Proposal, WireError> {
    let mut r = Reader::new(buf, "proposal");
    let number = r.u8()?;
    let protocol = ProtocolId(r.u8()?);
    let spi_size = usize::from(r.u8()?);
    let count = usize::from(r.u8()?);
    if count > MAX_TRANSFORMS {
        return Err(WireError::TooMany("transforms"));
    }
    let spi = r.take(spi_size)?.to_vec();
    let mut transforms = Vec::with_capacity(count);
    let mut seen = 0usize;
    while !r.is_empty() {
        if seen >= count {
            return Err(WireError::Invalid("more transforms than announced"));
        }
        seen += 1;
        let last = r.u8()?;
        r.skip(1)?;
        let len = usize::from(r.u16()?);
        if len < TRANSFORM_HEADER_LEN {
            return Err(WireError::BadLength {
                what: "transform",
                len,
            });
        }
        let rest = r.take(len - 4).map_err(|_| WireError::BadLength {
            what: "transform",
            len,
        })?;
        if let Some(t) = parse_transform(rest)? {
            transforms.push(t);
        }
        match (last, r.is_empty()) {
            (LAST, true) | (MORE_TRANSFORMS, false) => {}
            (LAST, false) => return Err(WireError::Invalid("data after the last transform")),
            (MORE_TRANSFORMS, true) => {
                return Err(WireError::Invalid(
                    "proposal ends before its last transform",
                ))
            }
            _ => return Err(WireError::Invalid("bad transform last-substruc")),
        }
    }
    if seen != count {
        return Err(WireError::Invalid("fewer transforms than announced"));
    }
    Ok(Proposal {
        number,
        protocol,
        spi,
        transforms,
    })
}

/// Parses a transform after its first four bytes; `None` if it carries an attribute we do
/// not understand.
fn parse_transform(buf: &[u8]) -> Result<Option<Transform>, WireError> {
    let mut r = Reader::new(buf, "transform");
    let kind = TransformType(r.u8()?);
    r.skip(1)?;
    let id = r.u16()?;
    let mut key_length = None;
    let mut understood = true;
    while !r.is_empty() {
        let raw_type = r.u16()?;
        if raw_type & ATTR_TV != 0 {
            let value = r.u16()?;
            if raw_type & !ATTR_TV == ATTR_KEY_LENGTH && key_length.is_none() {
                key_length = Some(value);
            } else {
                understood = false;
            }
        } else {
            // TLV: we know no TLV attribute (the key length is always TV).
            let len = usize::from(r.u16()?);
            r.take(len).map_err(|_| WireError::BadLength {
                what: "transform attribute",
                len,
            })?;
            understood = false;
        }
    }
    if !understood {
        log::debug!("dropping transform {kind:?}/{id} with an unknown attribute");
        return Ok(None);
    }
    Ok(Some(Transform {
        kind,
        id,
        key_length,
    }))
}

/// Appends the body of an SA payload carrying `proposals`.
pub(crate) fn write_sa(proposals: &[Proposal], out: &mut Vec<u8>) {
    for (i, p) in proposals.iter().enumerate() {
        let start = out.len();
        out.push(if i + 1 == proposals.len() {
            LAST
        } else {
            MORE_PROPOSALS
        });
        out.extend_from_slice(&[0, 0, 0]);
        out.push(p.number);
        out.push(p.protocol.0);
        out.push(u8::try_from(p.spi.len()).unwrap_or(u8::MAX));
        out.push(u8::try_from(p.transforms.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            write_transform(t, j + 1 == p.transforms.len(), out);
        }
        let len = out.len() - start;
        patch_u16(out, start + 2, len);
    }
}

fn write_transform(t: &Transform, last: bool, out: &mut Vec<u8>) {
    let len = TRANSFORM_HEADER_LEN + if t.key_length.is_some() { 4 } else { 0 };
    out.push(if last { LAST } else { MORE_TRANSFORMS });
    out.push(0);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(t.kind.0);
    out.push(0);
    out.extend_from_slice(&t.id.to_be_bytes());
    if let Some(bits) = t.key_length {
        out.extend_from_slice(&(ATTR_TV | ATTR_KEY_LENGTH).to_be_bytes());
        out.extend_from_slice(&bits.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::{DhGroup, EncrId, PrfId};

    /// One IKE proposal: ENCR_AES_CBC/256, PRF_HMAC_SHA2_256, DH 19 — by hand.
    const ONE_PROPOSAL: [u8; 36] = [
        0, 0, 0, 36, // last, reserved, length
        1, 1, 0, 3, // number 1, IKE, spi size 0, 3 transforms
        3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 1, 0, // ENCR AES_CBC, key length 256
        3, 0, 0, 8, 2, 0, 0, 5, // PRF HMAC_SHA2_256
        0, 0, 0, 8, 4, 0, 0, 19, // DH ECP_256
    ];

    fn one_proposal() -> Proposal {
        Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform {
                    kind: TransformType::ENCR,
                    id: EncrId::AES_CBC.0,
                    key_length: Some(256),
                },
                Transform {
                    kind: TransformType::PRF,
                    id: PrfId::HMAC_SHA2_256.0,
                    key_length: None,
                },
                Transform {
                    kind: TransformType::DH,
                    id: DhGroup::ECP_256.0,
                    key_length: None,
                },
            ],
        }
    }

    #[test]
    fn parses_a_hand_made_proposal() {
        assert_eq!(parse_sa(&ONE_PROPOSAL).unwrap(), vec![one_proposal()]);
    }

    #[test]
    fn writes_the_same_bytes() {
        let mut out = Vec::new();
        write_sa(&[one_proposal()], &mut out);
        assert_eq!(out, ONE_PROPOSAL);
    }

    #[test]
    fn two_proposals_with_spis_round_trip() {
        let mut a = one_proposal();
        a.protocol = ProtocolId::ESP;
        a.spi = vec![1, 2, 3, 4];
        let mut b = one_proposal();
        b.number = 2;
        b.transforms.truncate(1);
        let mut out = Vec::new();
        write_sa(&[a.clone(), b.clone()], &mut out);
        assert_eq!(out[0], MORE_PROPOSALS);
        assert_eq!(parse_sa(&out).unwrap(), vec![a, b]);
    }

    #[test]
    fn transform_with_unknown_tv_attribute_is_dropped() {
        let mut b = ONE_PROPOSAL.to_vec();
        b[16] = 0x80;
        b[17] = 15; // attribute type 15 instead of 14
        let p = parse_sa(&b).unwrap();
        assert_eq!(p[0].transforms, one_proposal().transforms[1..]);
    }

    #[test]
    fn transform_with_tlv_attribute_is_dropped() {
        // Replace the TV key length by a TLV attribute of 2 bytes: transform grows by 2.
        let mut b = ONE_PROPOSAL[..16].to_vec();
        b[11] = 14; // transform length 14
        b.extend_from_slice(&[0x00, 14, 0, 2, 1, 0]);
        b.extend_from_slice(&ONE_PROPOSAL[20..]);
        b[3] = b.len() as u8;
        let p = parse_sa(&b).unwrap();
        assert_eq!(p[0].transforms.len(), 2);
    }

    #[test]
    fn duplicate_key_length_drops_the_transform() {
        let mut b = ONE_PROPOSAL[..20].to_vec();
        b[11] = 16;
        b.extend_from_slice(&[0x80, 14, 0, 128]);
        b.extend_from_slice(&ONE_PROPOSAL[20..]);
        b[3] = b.len() as u8;
        assert_eq!(parse_sa(&b).unwrap()[0].transforms.len(), 2);
    }

    #[test]
    fn tlv_attribute_overrunning_its_transform_is_an_error() {
        let mut b = ONE_PROPOSAL[..16].to_vec();
        b[11] = 12;
        b.extend_from_slice(&[0x00, 14, 0, 9]); // claims 9 value bytes, none left in transform
        b.extend_from_slice(&ONE_PROPOSAL[20..]);
        b[3] = b.len() as u8;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::BadLength {
                what: "transform attribute",
                len: 9
            })
        );
    }

    #[test]
    fn transform_count_must_match() {
        let mut b = ONE_PROPOSAL;
        b[7] = 2;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::Invalid("more transforms than announced"))
        );
        b[7] = 4;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::Invalid("fewer transforms than announced"))
        );
    }

    #[test]
    fn too_many_transforms() {
        let mut b = ONE_PROPOSAL;
        b[7] = 65;
        assert_eq!(parse_sa(&b), Err(WireError::TooMany("transforms")));
    }

    #[test]
    fn too_many_proposals() {
        let p = Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![],
        };
        let mut out = Vec::new();
        write_sa(&vec![p.clone(); 64], &mut out);
        assert_eq!(parse_sa(&out).unwrap().len(), 64);
        out.clear();
        write_sa(&vec![p; 65], &mut out);
        assert_eq!(parse_sa(&out), Err(WireError::TooMany("proposals")));
    }

    #[test]
    fn bad_lengths() {
        // Proposal length below its header.
        let mut b = ONE_PROPOSAL;
        b[3] = 7;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::BadLength {
                what: "proposal",
                len: 7
            })
        );
        // Proposal length past the payload.
        b[3] = 37;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::BadLength {
                what: "proposal",
                len: 37
            })
        );
        // Transform length below its header.
        let mut b = ONE_PROPOSAL;
        b[11] = 4;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::BadLength {
                what: "transform",
                len: 4
            })
        );
        // Transform length past its proposal.
        let mut b = ONE_PROPOSAL;
        b[35 - 4] = 9;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::BadLength {
                what: "transform",
                len: 9
            })
        );
        // SPI larger than the proposal.
        let mut b = ONE_PROPOSAL;
        b[6] = 200;
        assert!(matches!(
            parse_sa(&b),
            Err(WireError::Truncated {
                what: "proposal",
                ..
            })
        ));
        // Odd attribute bytes.
        let mut b = ONE_PROPOSAL[..20].to_vec();
        b[11] = 13;
        b.push(0);
        b.extend_from_slice(&ONE_PROPOSAL[20..]);
        b[3] = b.len() as u8;
        assert!(matches!(
            parse_sa(&b),
            Err(WireError::Truncated {
                what: "transform",
                ..
            })
        ));
    }

    #[test]
    fn truncated_and_empty() {
        assert!(matches!(parse_sa(&[]), Err(WireError::Truncated { .. })));
        assert!(matches!(
            parse_sa(&ONE_PROPOSAL[..3]),
            Err(WireError::Truncated { .. })
        ));
        assert!(parse_sa(&ONE_PROPOSAL[..35]).is_err());
    }

    #[test]
    fn last_substruc_must_be_consistent() {
        let mut b = ONE_PROPOSAL;
        b[0] = 2;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::Invalid(
                "SA payload ends before its last proposal"
            ))
        );
        b[0] = 1;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::Invalid("bad proposal last-substruc"))
        );
        let mut two = ONE_PROPOSAL.to_vec();
        two.extend_from_slice(&ONE_PROPOSAL);
        assert_eq!(
            parse_sa(&two),
            Err(WireError::Invalid("data after the last proposal"))
        );
        let mut b = ONE_PROPOSAL;
        b[20] = 0; // middle transform says "last"
        assert_eq!(
            parse_sa(&b),
            Err(WireError::Invalid("data after the last transform"))
        );
        let mut b = ONE_PROPOSAL;
        b[28] = 3; // final transform says "more"
        assert_eq!(
            parse_sa(&b),
            Err(WireError::Invalid(
                "proposal ends before its last transform"
            ))
        );
        let mut b = ONE_PROPOSAL;
        b[8] = 7;
        assert_eq!(
            parse_sa(&b),
            Err(WireError::Invalid("bad transform last-substruc"))
        );
    }
}
