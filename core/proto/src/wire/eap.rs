//! EAP messages carried in the EAP payload (RFC 3748 §4).

use super::consts::{EapCode, EapType};
use super::error::WireError;

/// An EAP packet. `eap_type` and `data` are present for Request/Response only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EapMessage<'a> {
    pub code: EapCode,
    pub identifier: u8,
    pub eap_type: Option<EapType>,
    pub data: &'a [u8],
}

impl<'a> EapMessage<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<EapMessage<'a>, WireError> {
        let _ = buf;
        Err(WireError::Invalid("not implemented"))
    }
    /// Appends this EAP packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let _ = out;
    }
}
