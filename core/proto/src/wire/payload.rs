//! The payloads of RFC 7296 §3.2-3.16 and SKF (RFC 7383), parsed zero-copy where possible,
//! and the payload chain: parse from bytes, write into a caller's buffer.

use std::net::IpAddr;

use super::consts::*;
use super::error::WireError;
use super::reader::{patch_u16, Reader};
use super::sa::{parse_sa, write_sa, Proposal};

mod cp;
mod ts;

pub use cp::MAX_CFG_ATTRIBUTES;
pub use ts::MAX_SELECTORS;

/// At most this many payloads in one chain (outer or inner).
pub const MAX_PAYLOADS: usize = 128;
/// The generic payload header: next payload, flags, length.
pub const GENERIC_HEADER_LEN: usize = 4;
/// The critical bit of the generic payload header's flags byte.
pub const CRITICAL: u8 = 0x80;
/// Smallest nonce (RFC 7296 §3.9).
pub const NONCE_MIN: usize = 16;
/// Largest nonce (RFC 7296 §3.9).
pub const NONCE_MAX: usize = 256;
/// SKF's fragment number and total, between the generic header and the body.
pub const SKF_FIELDS_LEN: usize = 4;

/// An IDi/IDr payload (also used for EAP identities elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Id<'a> {
    pub id_type: IdType,
    pub data: &'a [u8],
}

/// A Notify payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notify<'a> {
    pub protocol: ProtocolId,
    pub spi: &'a [u8],
    pub kind: NotifyType,
    pub data: &'a [u8],
}

/// A Delete payload: `spis` is the concatenation of `spi_size`-byte SPIs (empty for IKE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delete<'a> {
    pub protocol: ProtocolId,
    pub spi_size: u8,
    pub spis: &'a [u8],
}

/// One traffic selector (RFC 7296 §3.13.1). Both addresses have the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

/// One configuration attribute (RFC 7296 §3.15.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CfgAttribute<'a> {
    pub kind: CfgAttr,
    pub value: &'a [u8],
}

/// An SK payload: `body` is IV || ciphertext || ICV; `first_inner` is the type of the first
/// payload inside. `aad_len` is the number of bytes of the whole message before `body`
/// (IKE header and every payload before it, plus SK's generic header): the AEAD's AAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encrypted<'a> {
    pub first_inner: PayloadType,
    pub aad_len: usize,
    pub body: &'a [u8],
}

/// An SKF payload (RFC 7383): like SK, with its fragment number and total.
/// `first_inner` is meaningful only in fragment 1 (0 elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub first_inner: PayloadType,
    pub number: u16,
    pub total: u16,
    pub aad_len: usize,
    pub body: &'a [u8],
}

/// Every payload Roam understands, borrowing from the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    Sa(Vec<Proposal>),
    Ke {
        group: DhGroup,
        data: &'a [u8],
    },
    IdI(Id<'a>),
    IdR(Id<'a>),
    Cert {
        encoding: CertEncoding,
        data: &'a [u8],
    },
    CertReq {
        encoding: CertEncoding,
        data: &'a [u8],
    },
    Auth {
        method: AuthMethod,
        data: &'a [u8],
    },
    Nonce(&'a [u8]),
    Notify(Notify<'a>),
    Delete(Delete<'a>),
    Vendor(&'a [u8]),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    Sk(Encrypted<'a>),
    Skf(Fragment<'a>),
    Cp {
        cfg_type: CfgType,
        attrs: Vec<CfgAttribute<'a>>,
    },
    /// A whole EAP message (see `wire::eap`).
    Eap(&'a [u8]),
    /// A payload we do not know, without the critical bit (with it: an error).
    Unknown {
        kind: PayloadType,
        data: &'a [u8],
    },
}

impl<'a> Payload<'a> {
    /// A Notify payload about the IKE SA (no protocol, no SPI).
    pub fn notify(kind: NotifyType, data: &'a [u8]) -> Self {
        Payload::Notify(Notify {
            protocol: ProtocolId::NONE,
            spi: &[],
            kind,
            data,
        })
    }
    /// A Delete payload of the IKE SA itself (no SPIs).
    pub fn delete_ike() -> Self {
        Payload::Delete(Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: &[],
        })
    }
    /// A Delete payload of ESP SAs: `spis` are their 4-byte SPIs back to back.
    pub fn delete_esp(spis: &'a [u8]) -> Self {
        Payload::Delete(Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis,
        })
    }
    /// The payload type of this payload.
    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke { .. } => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert { .. } => PayloadType::CERT,
            Payload::CertReq { .. } => PayloadType::CERTREQ,
            Payload::Auth { .. } => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::Vendor(_) => PayloadType::VENDOR,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Sk(_) => PayloadType::SK,
            Payload::Skf(_) => PayloadType::SKF,
            Payload::Cp { .. } => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Unknown { kind, .. } => *kind,
        }
    }
}

/// Parses a payload chain starting with `first` from `buf`. `offset` is the position of
/// `buf` inside the whole message (for `aad_len`). SK and SKF end the chain.
pub fn parse_payloads<'a>(
    first: PayloadType,
    buf: &'a [u8],
    offset: usize,
) -> Result<Vec<Payload<'a>>, WireError> {
    let mut r = Reader::new(buf, "payload chain");
    let mut out = Vec::new();
    let mut current = first;
    while current != PayloadType::NONE {
        if out.len() >= MAX_PAYLOADS {
            return Err(WireError::TooMany("payloads"));
        }
        let start = r.position();
        let next = PayloadType(r.u8()?);
        let flags = r.u8()?;
        let len = usize::from(r.u16()?);
        if len < GENERIC_HEADER_LEN {
            return Err(WireError::BadLength {
                what: "payload",
                len,
            });
        }
        let body = r
            .take(len - GENERIC_HEADER_LEN)
            .map_err(|_| WireError::BadLength {
                what: "payload",
                len,
            })?;
        let body_offset = offset.saturating_add(start + GENERIC_HEADER_LEN);
        match current {
            PayloadType::SK | PayloadType::SKF => {
                if !r.is_empty() {
                    return Err(WireError::Invalid("data after the SK/SKF payload"));
                }
                out.push(parse_encrypted(current, next, body, body_offset)?);
                return Ok(out);
            }
            _ => out.push(parse_body(current, flags, body)?),
        }
        current = next;
    }
    if !r.is_empty() {
        return Err(WireError::Invalid("data after the last payload"));
    }
    Ok(out)
}

/// Builds an SK or SKF payload; `body_offset` is where `body` starts in the message.
fn parse_encrypted<'a>(
    kind: PayloadType,
    first_inner: PayloadType,
    body: &'a [u8],
    body_offset: usize,
) -> Result<Payload<'a>, WireError> {
    if kind == PayloadType::SK {
        return Ok(Payload::Sk(Encrypted {
            first_inner,
            aad_len: body_offset,
            body,
        }));
    }
    let mut r = Reader::new(body, "SKF payload");
    let number = r.u16()?;
    let total = r.u16()?;
    if number == 0 || number > total {
        return Err(WireError::Invalid("bad SKF fragment number"));
    }
    Ok(Payload::Skf(Fragment {
        // RFC 7383 §2.5: only the first fragment names the first inner payload.
        first_inner: if number == 1 {
            first_inner
        } else {
            PayloadType::NONE
        },
        number,
        total,
        aad_len: body_offset.saturating_add(SKF_FIELDS_LEN),
        body: r.rest(),
    }))
}

/// Parses the body of one (non-SK) payload of type `kind`.
fn parse_body<'a>(kind: PayloadType, flags: u8, body: &'a [u8]) -> Result<Payload<'a>, WireError> {
    let what = kind.name().unwrap_or("payload");
    let mut r = Reader::new(body, what);
    let payload = match kind {
        PayloadType::SA => Payload::Sa(parse_sa(body)?),
        PayloadType::KE => {
            let group = DhGroup(r.u16()?);
            r.skip(2)?;
            Payload::Ke {
                group,
                data: r.rest(),
            }
        }
        PayloadType::IDI | PayloadType::IDR => {
            let id_type = IdType(r.u8()?);
            r.skip(3)?;
            let id = Id {
                id_type,
                data: r.rest(),
            };
            if kind == PayloadType::IDI {
                Payload::IdI(id)
            } else {
                Payload::IdR(id)
            }
        }
        PayloadType::CERT => Payload::Cert {
            encoding: CertEncoding(r.u8()?),
            data: r.rest(),
        },
        PayloadType::CERTREQ => Payload::CertReq {
            encoding: CertEncoding(r.u8()?),
            data: r.rest(),
        },
        PayloadType::AUTH => {
            let method = AuthMethod(r.u8()?);
            r.skip(3)?;
            Payload::Auth {
                method,
                data: r.rest(),
            }
        }
        PayloadType::NONCE => {
            if !(NONCE_MIN..=NONCE_MAX).contains(&body.len()) {
                return Err(WireError::BadLength {
                    what: "Nonce",
                    len: body.len(),
                });
            }
            Payload::Nonce(body)
        }
        PayloadType::NOTIFY => {
            let protocol = ProtocolId(r.u8()?);
            let spi_size = usize::from(r.u8()?);
            let kind = NotifyType(r.u16()?);
            let spi = r.take(spi_size)?;
            Payload::Notify(Notify {
                protocol,
                spi,
                kind,
                data: r.rest(),
            })
        }
        PayloadType::DELETE => {
            let protocol = ProtocolId(r.u8()?);
            let spi_size = r.u8()?;
            let count = usize::from(r.u16()?);
            if spi_size == 0 && count != 0 {
                return Err(WireError::Invalid("Delete: SPIs of size 0"));
            }
            let spis = r.rest();
            if spis.len() != usize::from(spi_size) * count {
                return Err(WireError::BadLength {
                    what: "Delete SPIs",
                    len: spis.len(),
                });
            }
            Payload::Delete(Delete {
                protocol,
                spi_size,
                spis,
            })
        }
        PayloadType::VENDOR => Payload::Vendor(body),
        PayloadType::TSI => Payload::TsI(ts::parse_ts(body)?),
        PayloadType::TSR => Payload::TsR(ts::parse_ts(body)?),
        PayloadType::CP => {
            let (cfg_type, attrs) = cp::parse_cp(body)?;
            Payload::Cp { cfg_type, attrs }
        }
        PayloadType::EAP => Payload::Eap(body),
        _ if flags & CRITICAL != 0 => return Err(WireError::UnsupportedCriticalPayload(kind)),
        _ => {
            log::debug!("skipping unknown payload {kind:?} ({} bytes)", body.len());
            Payload::Unknown { kind, data: body }
        }
    };
    Ok(payload)
}

/// Appends `payloads` as a chain (each generic header's next-payload field filled in) to
/// `out`, and returns the type of the first one (NONE if empty). SK/SKF are not written here:
/// they are skipped (use `message::write_sk_prefix`/`write_skf_prefix`). Each payload must
/// stay below 64 KiB; a longer one gets a saturated, wrong length.
pub fn write_payloads(payloads: &[Payload<'_>], out: &mut Vec<u8>) -> PayloadType {
    let mut chain = payloads
        .iter()
        .filter(|p| !matches!(p, Payload::Sk(_) | Payload::Skf(_)));
    let Some(mut current) = chain.next() else {
        return PayloadType::NONE;
    };
    let first = current.kind();
    loop {
        let following = chain.next();
        let next = following.map_or(PayloadType::NONE, Payload::kind);
        let start = out.len();
        out.extend_from_slice(&[next.0, 0, 0, 0]);
        write_body(current, out);
        let len = out.len() - start;
        patch_u16(out, start + 2, len);
        match following {
            Some(p) => current = p,
            None => return first,
        }
    }
}

/// Appends the body of one payload (nothing for SK/SKF).
fn write_body(payload: &Payload<'_>, out: &mut Vec<u8>) {
    match payload {
        Payload::Sa(proposals) => write_sa(proposals, out),
        Payload::Ke { group, data } => {
            out.extend_from_slice(&group.0.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(data);
        }
        Payload::IdI(id) | Payload::IdR(id) => {
            out.extend_from_slice(&[id.id_type.0, 0, 0, 0]);
            out.extend_from_slice(id.data);
        }
        Payload::Cert { encoding, data } | Payload::CertReq { encoding, data } => {
            out.push(encoding.0);
            out.extend_from_slice(data);
        }
        Payload::Auth { method, data } => {
            out.extend_from_slice(&[method.0, 0, 0, 0]);
            out.extend_from_slice(data);
        }
        Payload::Nonce(data) | Payload::Vendor(data) | Payload::Eap(data) => {
            out.extend_from_slice(data)
        }
        Payload::Notify(n) => {
            out.push(n.protocol.0);
            out.push(u8::try_from(n.spi.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&n.kind.0.to_be_bytes());
            out.extend_from_slice(n.spi);
            out.extend_from_slice(n.data);
        }
        Payload::Delete(d) => {
            let count = match d.spi_size {
                0 => 0,
                size => d.spis.len() / usize::from(size),
            };
            out.push(d.protocol.0);
            out.push(d.spi_size);
            out.extend_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_be_bytes());
            out.extend_from_slice(d.spis);
        }
        Payload::TsI(sel) | Payload::TsR(sel) => ts::write_ts(sel, out),
        Payload::Cp { cfg_type, attrs } => cp::write_cp(*cfg_type, attrs, out),
        Payload::Unknown { data, .. } => out.extend_from_slice(data),
        Payload::Sk(_) | Payload::Skf(_) => {}
    }
}

#[cfg(test)]
mod tests;
