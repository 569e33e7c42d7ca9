//! Proposals in strongSwan's syntax (`aes256gcm16-prfsha384-ecp384`), the strong defaults,
//! their wire form, and selection: the responder's choice among offers, and the initiator's
//! check that the responder chose one of ours.

use crate::wire::{DhGroup, EncrId, IntegId, PrfId, Proposal, ProtocolId};

/// Why a proposal string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("unknown algorithm '{0}'")]
    Unknown(String),
    #[error("weak algorithm '{0}' (name it in the profile's allow_weak to use it)")]
    Weak(String),
    #[error("incomplete proposal '{0}': {1}")]
    Incomplete(String, &'static str),
}

/// A proposal as configured: each transform type's algorithms in preference order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalSpec {
    pub protocol: ProtocolId,
    /// (algorithm, key length in bits where the algorithm takes one)
    pub encr: Vec<(EncrId, Option<u16>)>,
    pub prf: Vec<PrfId>,
    pub integ: Vec<IntegId>,
    pub dh: Vec<DhGroup>,
    /// ESP only: ESN choices (ESN / NO_ESN), empty means no ESN.
    pub esn: Vec<bool>,
}

impl ProposalSpec {
    /// Parses an IKE proposal; `allow_weak` names weak algorithms the profile accepts.
    pub fn parse_ike(s: &str, allow_weak: &[String]) -> Result<Self, ProposalError> {
        let _ = allow_weak;
        Err(ProposalError::Unknown(s.to_string()))
    }
    /// Parses an ESP proposal (DH groups optional, meaning PFS on rekeys).
    pub fn parse_esp(s: &str, allow_weak: &[String]) -> Result<Self, ProposalError> {
        let _ = allow_weak;
        Err(ProposalError::Unknown(s.to_string()))
    }
    /// The wire proposal (number `number`, SPI `spi`).
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> Proposal {
        Proposal { number, protocol: self.protocol, spi: spi.to_vec(), transforms: Vec::new() }
    }
}

/// The strong default IKE proposals, in strongSwan syntax.
pub fn default_ike() -> Vec<String> {
    Vec::new()
}
/// The strong default ESP proposals, in strongSwan syntax.
pub fn default_esp() -> Vec<String> {
    Vec::new()
}

/// One algorithm per transform type: what was negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    pub protocol: ProtocolId,
    pub encr: EncrId,
    pub key_bits: Option<u16>,
    /// None for ESP.
    pub prf: Option<PrfId>,
    /// `IntegId::NONE` with an AEAD.
    pub integ: IntegId,
    /// None when no key exchange was part of it.
    pub dh: Option<DhGroup>,
    pub esn: bool,
}

impl Selected {
    /// The strongSwan-syntax name, e.g. `aes256gcm16-prfsha384-ecp384` or `aes256-sha256`.
    pub fn name(&self) -> String {
        String::new()
    }
    /// Reads a single-choice wire proposal (the responder's answer); None if it has more than
    /// one transform of a type or misses a required one.
    pub fn from_wire(p: &Proposal) -> Option<Self> {
        let _ = p;
        None
    }
    /// This choice as a wire proposal.
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> Proposal {
        Proposal { number, protocol: self.protocol, spi: spi.to_vec(), transforms: Vec::new() }
    }
}

/// Initiator: checks the responder's chosen proposal is a subset of one we offered.
pub fn accept_response(offered: &[Proposal], chosen: &Proposal) -> Option<Selected> {
    let _ = (offered, chosen);
    None
}

/// Responder: picks the first of `ours` (in our order) that one of `offered` allows, and
/// returns it with the peer's proposal number and SPI.
pub fn choose(ours: &[ProposalSpec], offered: &[Proposal]) -> Option<(Selected, u8, Vec<u8>)> {
    let _ = (ours, offered);
    None
}
