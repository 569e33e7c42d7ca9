//! A whole IKE message: header plus payload chain, and the prefixes of encrypted messages.

use super::consts::PayloadType;
use super::error::WireError;
use super::header::Header;
use super::payload::{Encrypted, Fragment, Payload};

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
        let _ = buf;
        Err(WireError::Invalid("not implemented"))
    }
    /// The SK payload, if the message has one.
    pub fn encrypted(&self) -> Option<&Encrypted<'a>> {
        None
    }
    /// The SKF payload, if the message has one.
    pub fn fragment(&self) -> Option<&Fragment<'a>> {
        None
    }
}

/// Appends a plaintext message (header with its length fixed up, then the chain) to `out`.
pub fn write_message(header: &Header, payloads: &[Payload<'_>], out: &mut Vec<u8>) {
    let _ = (header, payloads, out);
}

/// Appends the IKE header and SK generic header for an encrypted message whose SK body
/// (IV || ciphertext || ICV) will be `body_len` bytes; the caller then seals with AAD = `out`
/// and appends the body. `header.length` and `header.next_payload` are overwritten.
pub fn write_sk_prefix(header: &Header, first_inner: PayloadType, body_len: usize, out: &mut Vec<u8>) {
    let _ = (header, first_inner, body_len, out);
}

/// The same for an SKF fragment (RFC 7383 §2.5): `first_inner` only in fragment 1.
pub fn write_skf_prefix(
    header: &Header,
    first_inner: PayloadType,
    number: u16,
    total: u16,
    body_len: usize,
    out: &mut Vec<u8>,
) {
    let _ = (header, first_inner, number, total, body_len, out);
}

/// Returns `Err` on a message whose parse fails; kept for symmetry of the module API.
pub fn check(buf: &[u8]) -> Result<(), WireError> {
    Message::parse(buf).map(|_| ())
}
