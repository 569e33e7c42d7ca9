//! A whole IKE message: header plus payload chain, and the prefixes of encrypted messages.

use super::consts::PayloadType;
use super::error::WireError;
use super::header::{Header, HEADER_LEN};
use super::payload::{
    parse_payloads, write_payloads, Encrypted, Fragment, Payload, GENERIC_HEADER_LEN,
    SKF_FIELDS_LEN,
};
use super::reader::patch_u32;

/// Offset of the next-payload byte inside the IKE header.
const NEXT_PAYLOAD_AT: usize = 16;
/// Offset of the length field inside the IKE header.
const LENGTH_AT: usize = 24;

/// A parsed IKE message, borrowing from the datagram.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    pub header: Header,
    pub payloads: Vec<Payload<'a>>,
    /// The whole message as received (the AAD of SK/SKF is a prefix of it).
    pub raw: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses an IKE message (no non-ESP marker) and its unencrypted payload chain.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, WireError> {
        let header = Header::parse(buf)?;
        let chain = buf.get(HEADER_LEN..).unwrap_or_default();
        let payloads = parse_payloads(header.next_payload, chain, HEADER_LEN)?;
        Ok(Message {
            header,
            payloads,
            raw: buf,
        })
    }

    /// The SK payload, if the message has one.
    pub fn encrypted(&self) -> Option<&Encrypted<'a>> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Sk(e) => Some(e),
            _ => None,
        })
    }

    /// The SKF payload, if the message has one.
    pub fn fragment(&self) -> Option<&Fragment<'a>> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Skf(f) => Some(f),
            _ => None,
        })
    }
}

/// Appends a plaintext message (header with its length fixed up, then the chain) to `out`.
/// `header.next_payload` is replaced by the type of the first payload written.
pub fn write_message(header: &Header, payloads: &[Payload<'_>], out: &mut Vec<u8>) {
    let start = out.len();
    header.write(out);
    let first = write_payloads(payloads, out);
    if let Some(b) = out.get_mut(start + NEXT_PAYLOAD_AT) {
        *b = first.0;
    }
    let len = out.len() - start;
    patch_u32(out, start + LENGTH_AT, len);
}

/// Appends the IKE header and SK generic header for an encrypted message whose SK body
/// (IV || ciphertext || ICV) will be `body_len` bytes; the caller then seals with AAD = `out`
/// and appends the body. `header.length` and `header.next_payload` are overwritten.
pub fn write_sk_prefix(
    header: &Header,
    first_inner: PayloadType,
    body_len: usize,
    out: &mut Vec<u8>,
) {
    let payload_len = GENERIC_HEADER_LEN.saturating_add(body_len);
    write_prefix(header, PayloadType::SK, payload_len, out);
    out.push(first_inner.0);
    out.push(0);
    out.extend_from_slice(&u16::try_from(payload_len).unwrap_or(u16::MAX).to_be_bytes());
}

/// The same for an SKF fragment (RFC 7383 §2.5): `first_inner` only in fragment 1 (the
/// next-payload field of every other fragment is written as 0).
pub fn write_skf_prefix(
    header: &Header,
    first_inner: PayloadType,
    number: u16,
    total: u16,
    body_len: usize,
    out: &mut Vec<u8>,
) {
    let payload_len = (GENERIC_HEADER_LEN + SKF_FIELDS_LEN).saturating_add(body_len);
    write_prefix(header, PayloadType::SKF, payload_len, out);
    out.push(if number == 1 {
        first_inner.0
    } else {
        PayloadType::NONE.0
    });
    out.push(0);
    out.extend_from_slice(&u16::try_from(payload_len).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(&total.to_be_bytes());
}

/// Writes `header` with the given next payload and a length covering one payload of
/// `payload_len` bytes.
fn write_prefix(header: &Header, next: PayloadType, payload_len: usize, out: &mut Vec<u8>) {
    let length = u32::try_from(HEADER_LEN.saturating_add(payload_len)).unwrap_or(u32::MAX);
    Header {
        next_payload: next,
        length,
        ..*header
    }
    .write(out);
}

/// Returns `Err` on a message whose parse fails; kept for symmetry of the module API.
pub fn check(buf: &[u8]) -> Result<(), WireError> {
    Message::parse(buf).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::{flags, ExchangeType, NotifyType, ProtocolId};
    use crate::wire::payload::Notify;

    fn header() -> Header {
        Header {
            spi_i: 0x1111_2222_3333_4444,
            spi_r: 0x5555_6666_7777_8888,
            next_payload: PayloadType::NONE,
            version: 0x20,
            exchange: ExchangeType::IKE_AUTH,
            flags: flags::INITIATOR,
            message_id: 1,
            length: 0,
        }
    }

    #[test]
    fn empty_message_round_trips() {
        let mut out = Vec::new();
        write_message(&header(), &[], &mut out);
        assert_eq!(out.len(), HEADER_LEN);
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.header.length, 28);
        assert_eq!(m.header.next_payload, PayloadType::NONE);
        assert!(m.payloads.is_empty());
        assert!(m.encrypted().is_none() && m.fragment().is_none());
        assert!(check(&out).is_ok());
    }

    #[test]
    fn write_message_appends_and_fixes_up() {
        let mut out = vec![0xee; 3]; // something already in the buffer
        let n = Payload::Notify(Notify {
            protocol: ProtocolId::NONE,
            spi: &[],
            kind: NotifyType::INITIAL_CONTACT,
            data: &[],
        });
        let mut h = header();
        h.length = 999;
        h.next_payload = PayloadType::SA;
        write_message(&h, std::slice::from_ref(&n), &mut out);
        assert_eq!(&out[..3], &[0xee; 3]);
        let m = Message::parse(&out[3..]).unwrap();
        assert_eq!(m.header.next_payload, PayloadType::NOTIFY);
        assert_eq!(m.header.length as usize, out.len() - 3);
        assert_eq!(m.payloads, vec![n]);
    }

    #[test]
    fn sk_prefix_then_body_parses() {
        let body = [0xabu8; 48];
        let mut out = Vec::new();
        write_sk_prefix(&header(), PayloadType::IDI, body.len(), &mut out);
        assert_eq!(out.len(), 32);
        out.extend_from_slice(&body);
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.header.next_payload, PayloadType::SK);
        let e = m.encrypted().unwrap();
        assert_eq!(e.first_inner, PayloadType::IDI);
        assert_eq!(e.aad_len, 32);
        assert_eq!(e.body, &body);
        assert_eq!(&m.raw[e.aad_len..], &body);
    }

    #[test]
    fn skf_prefixes_then_body_parse() {
        let body = [0x5au8; 20];
        for (number, want_first) in [(1u16, PayloadType::IDI), (2, PayloadType::NONE)] {
            let mut out = Vec::new();
            write_skf_prefix(&header(), PayloadType::IDI, number, 2, body.len(), &mut out);
            assert_eq!(out.len(), 36);
            out.extend_from_slice(&body);
            let m = Message::parse(&out).unwrap();
            let f = m.fragment().unwrap();
            assert_eq!((f.number, f.total, f.first_inner), (number, 2, want_first));
            assert_eq!(f.aad_len, 36);
            assert_eq!(f.body, &body);
            assert!(m.encrypted().is_none());
        }
    }

    #[test]
    fn sk_after_a_plain_payload_has_the_right_aad_len() {
        let mut out = Vec::new();
        write_message(&header(), &[Payload::Vendor(b"roam")], &mut out);
        // Append an SK payload after the vendor payload by hand: patch the chain.
        out[HEADER_LEN] = PayloadType::SK.0;
        out.extend_from_slice(&[PayloadType::AUTH.0, 0, 0, 4 + 16]);
        out.extend_from_slice(&[7; 16]);
        let len = out.len() as u32;
        out[24..28].copy_from_slice(&len.to_be_bytes());
        let m = Message::parse(&out).unwrap();
        assert_eq!(m.payloads.len(), 2);
        let e = m.encrypted().unwrap();
        assert_eq!(e.aad_len, HEADER_LEN + 8 + 4);
        assert_eq!(e.first_inner, PayloadType::AUTH);
    }

    #[test]
    fn header_errors_propagate() {
        assert!(matches!(
            Message::parse(&[0; 10]),
            Err(WireError::Truncated { .. })
        ));
        let mut out = Vec::new();
        write_message(&header(), &[Payload::Vendor(b"x")], &mut out);
        out.pop();
        assert!(matches!(
            Message::parse(&out),
            Err(WireError::BadLength { .. })
        ));
        assert!(check(&out).is_err());
    }
}
