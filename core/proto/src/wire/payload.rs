//! The payloads of RFC 7296 §3.2-3.16 and SKF (RFC 7383), parsed zero-copy where possible,
//! and the payload chain: parse from bytes, write into a caller's buffer.

use std::net::IpAddr;

use super::consts::*;
use super::error::WireError;
use super::sa::Proposal;

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
    Ke { group: DhGroup, data: &'a [u8] },
    IdI(Id<'a>),
    IdR(Id<'a>),
    Cert { encoding: CertEncoding, data: &'a [u8] },
    CertReq { encoding: CertEncoding, data: &'a [u8] },
    Auth { method: AuthMethod, data: &'a [u8] },
    Nonce(&'a [u8]),
    Notify(Notify<'a>),
    Delete(Delete<'a>),
    Vendor(&'a [u8]),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    Sk(Encrypted<'a>),
    Skf(Fragment<'a>),
    Cp { cfg_type: CfgType, attrs: Vec<CfgAttribute<'a>> },
    /// A whole EAP message (see `wire::eap`).
    Eap(&'a [u8]),
    /// A payload we do not know, without the critical bit (with it: an error).
    Unknown { kind: PayloadType, data: &'a [u8] },
}

impl Payload<'_> {
    /// The payload type of this payload.
    pub fn kind(&self) -> PayloadType {
        PayloadType::NONE
    }
}

/// Parses a payload chain starting with `first` from `buf`. `offset` is the position of
/// `buf` inside the whole message (for `aad_len`). SK and SKF end the chain.
pub fn parse_payloads<'a>(
    first: PayloadType,
    buf: &'a [u8],
    offset: usize,
) -> Result<Vec<Payload<'a>>, WireError> {
    let _ = (first, buf, offset);
    Err(WireError::Invalid("not implemented"))
}

/// Appends `payloads` as a chain (each generic header's next-payload field filled in) to
/// `out`, and returns the type of the first one (NONE if empty). SK/SKF are not written here.
pub fn write_payloads(payloads: &[Payload<'_>], out: &mut Vec<u8>) -> PayloadType {
    let _ = (payloads, out);
    PayloadType::NONE
}
