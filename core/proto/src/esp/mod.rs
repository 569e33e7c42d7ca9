//! The ESP data plane (RFC 4303) of one CHILD SA: tunnel-mode encapsulation of inner IPv4 and
//! IPv6 packets and their decapsulation, in place in caller-owned buffers with no allocation
//! per packet. Transforms: AES-GCM-16 (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-CBC with
//! HMAC-SHA2 (RFC 3602, RFC 4868); 32-bit or extended (RFC 4304) sequence numbers; a
//! 1024-packet anti-replay window; per-SA counters; and the UDP encapsulation framing of
//! RFC 3948 for port 4500 (`udp`).
//!
//! An [`EspSa`] is made from an IKE [`ChildSa`] and holds an [`Outbound`] and an [`Inbound`]
//! half. Every dropped packet is an [`EspError`] and a count in the half's [`Counters`].

mod cipher;
mod inbound;
mod outbound;
pub mod replay;
pub mod udp;

#[cfg(test)]
mod kat;

pub use inbound::Inbound;
pub use outbound::Outbound;
pub use replay::{ReplayReject, ReplayWindow, REPLAY_WINDOW};

use crate::crypto::aead::Backend;
use crate::crypto::Secret;
use crate::ike::child::ChildSa;
use crate::rng::Rng;
use cipher::Cipher;

/// Bytes of the ESP header: SPI and sequence number.
pub const ESP_HEADER_LEN: usize = cipher::ESP_HEADER_LEN;

/// Next header values of tunnel mode (IANA protocol numbers).
pub const NEXT_HEADER_IPV4: u8 = 4;
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": a dummy packet for traffic flow confidentiality (RFC 4303 §2.6).
pub const NEXT_HEADER_DUMMY: u8 = 59;

/// Why a packet was not encapsulated or was dropped on decapsulation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    // Setting up an SA.
    #[error("unsupported ESP transform: {0}")]
    Unsupported(String),
    #[error("ESP key material of the wrong length")]
    KeyLength,
    #[error("invalid SPI {0:#010x}")]
    InvalidSpi(u32),

    // Outbound.
    #[error("buffer too small: {needed} bytes needed, {have} available")]
    BufferTooSmall { needed: usize, have: usize },
    #[error("not an IPv4 or IPv6 packet")]
    NotIp,
    #[error("sequence numbers exhausted: the SA must be rekeyed")]
    SequenceExhausted,
    #[error("sequence numbers only move forward")]
    SequenceBackwards,

    // Inbound drops.
    #[error("malformed ESP packet")]
    Malformed,
    #[error("ESP packet for SPI {got:#010x}, this SA is {want:#010x}")]
    BadSpi { got: u32, want: u32 },
    #[error("replayed ESP packet, sequence number {0}")]
    Replayed(u64),
    #[error("ESP sequence number {0} is behind the replay window")]
    TooOld(u64),
    #[error("ESP integrity check failed")]
    Auth,
    #[error("bad ESP padding")]
    Padding,
    #[error("unexpected ESP next header {0}")]
    NextHeader(u8),
    #[error("dummy ESP packet (traffic flow confidentiality)")]
    Dummy,
}

impl EspError {
    /// Drops the caller should not log: dummy packets are meant to be discarded quietly.
    pub fn is_silent(&self) -> bool {
        matches!(self, Self::Dummy)
    }
}

impl From<ReplayReject> for EspError {
    fn from(r: ReplayReject) -> Self {
        match r {
            ReplayReject::Duplicate(s) => Self::Replayed(s),
            ReplayReject::TooOld(s) => Self::TooOld(s),
        }
    }
}

/// Packet, byte and drop counts of one SA half (the other half's fields stay 0). Bytes are
/// inner (plaintext IP) bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Outbound packets refused (not IP, buffer too small, sequence numbers exhausted).
    pub out_errors: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Too short, misaligned, or an invalid sequence number position.
    pub malformed: u64,
    pub bad_spi: u64,
    /// Duplicates and packets behind the window.
    pub replay: u64,
    /// ICV failures.
    pub auth: u64,
    pub padding: u64,
    pub next_header: u64,
    /// TFC dummy packets dropped.
    pub dummy: u64,
}

impl Counters {
    /// Inbound packets dropped for any reason except dummies.
    pub fn dropped(&self) -> u64 {
        self.malformed + self.bad_spi + self.replay + self.auth + self.padding + self.next_header
    }

    /// Field by field sum (totals over several SAs).
    pub fn sum(&self, o: &Self) -> Self {
        Self {
            packets_out: self.packets_out + o.packets_out,
            bytes_out: self.bytes_out + o.bytes_out,
            out_errors: self.out_errors + o.out_errors,
            packets_in: self.packets_in + o.packets_in,
            bytes_in: self.bytes_in + o.bytes_in,
            malformed: self.malformed + o.malformed,
            bad_spi: self.bad_spi + o.bad_spi,
            replay: self.replay + o.replay,
            auth: self.auth + o.auth,
            padding: self.padding + o.padding,
            next_header: self.next_header + o.next_header,
            dummy: self.dummy + o.dummy,
        }
    }
}

/// The SPI of an ESP packet, to find its SA.
pub fn peek_spi(packet: &[u8]) -> Option<u32> {
    packet.first_chunk::<4>().map(|b| u32::from_be_bytes(*b))
}

/// The ESP data plane of one CHILD SA: both directions.
#[derive(Debug)]
pub struct EspSa {
    pub outbound: Outbound,
    pub inbound: Inbound,
}

impl EspSa {
    /// Keys both halves from a CHILD SA. `rng` seeds the CBC IV generator (unused by AEADs).
    pub fn new(child: &ChildSa, rng: &mut dyn Rng) -> Result<Self, EspError> {
        Self::with_backend(child, Backend::DEFAULT, rng)
    }

    /// The same with the AEAD from `backend` (for tests and benchmarks of each backend).
    pub fn with_backend(
        child: &ChildSa,
        backend: Backend,
        rng: &mut dyn Rng,
    ) -> Result<Self, EspError> {
        Ok(Self {
            outbound: Outbound::with_backend(child, backend, rng)?,
            inbound: Inbound::with_backend(child, backend)?,
        })
    }

    /// See [`Outbound::encapsulate`].
    pub fn encapsulate(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, EspError> {
        self.outbound.encapsulate(packet, out)
    }

    /// See [`Inbound::decapsulate`].
    pub fn decapsulate(&mut self, packet: &mut [u8]) -> Result<std::ops::Range<usize>, EspError> {
        self.inbound.decapsulate(packet)
    }

    /// Both halves' counters added up.
    pub fn counters(&self) -> Counters {
        self.outbound.counters().sum(self.inbound.counters())
    }
}

/// The next header for an inner packet, from its IP version nibble.
fn next_header_of(packet: &[u8]) -> Result<u8, EspError> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => Ok(NEXT_HEADER_IPV4),
        Some(6) => Ok(NEXT_HEADER_IPV6),
        _ => Err(EspError::NotIp),
    }
}

/// The cipher of one half of `child` keyed with that half's `encr` and `integ` keys, after
/// checking the SA parameters both halves share.
fn child_cipher(
    child: &ChildSa,
    backend: Backend,
    encr: &Secret,
    integ: &Secret,
) -> Result<Cipher, EspError> {
    use crate::wire::ProtocolId;
    if child.selected.protocol != ProtocolId::ESP {
        return Err(EspError::Unsupported(format!(
            "protocol {}",
            child.selected.protocol
        )));
    }
    let s = &child.selected;
    Cipher::with_backend(
        backend,
        s.encr,
        s.key_bits,
        s.integ,
        encr.as_bytes(),
        integ.as_bytes(),
    )
}
