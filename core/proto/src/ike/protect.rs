//! Protecting IKE messages after IKE_SA_INIT: sealing the inner payload chain into an SK
//! payload (or into SKF fragments, RFC 7383, when it would not fit the path), and opening
//! received SK messages and reassembling SKF fragments.
//!
//! Reassembly is bounded (RFC 7383 §2.6 leaves the limits to us): one partial message per
//! [`Reassembly`] (an IKE SA keeps one per direction), at most [`MAX_FRAGMENTS`] fragments and
//! [`MAX_REASSEMBLED`] bytes, and a partial message older than [`REASSEMBLY_TIMEOUT`] is
//! dropped when the next fragment comes. Fragments are authenticated before they are kept,
//! so only the peer holding the keys can fill it at all. Refusals are typed errors
//! ([`ProtectError::TooManyFragments`], [`ProtectError::TooLarge`]) the caller counts.

use std::time::{Duration, Instant};

use crate::crypto::sk::SkCipher;
use crate::crypto::CryptoError;
use crate::rng::Rng;
use crate::wire::message::{write_sk_prefix, write_skf_prefix};
use crate::wire::{
    parse_payloads, write_payloads, Header, Message, Payload, PayloadType, WireError, HEADER_LEN,
};

/// Why a protected message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("message has no SK or SKF payload")]
    NotEncrypted,
    #[error("bad fragment: {0}")]
    Fragment(&'static str),
    /// A fragment claims more than [`MAX_FRAGMENTS`] in its message.
    #[error("fragment of a message of {0} fragments (at most {MAX_FRAGMENTS})")]
    TooManyFragments(u16),
    /// The fragments would make a message over [`MAX_REASSEMBLED`] bytes.
    #[error("reassembled message over {MAX_REASSEMBLED} bytes")]
    TooLarge,
}

/// Most fragments we accept for one message (strongSwan sends 2-3 for a large IKE_AUTH).
pub const MAX_FRAGMENTS: u16 = 32;
/// Most bytes a reassembled message may have.
pub const MAX_REASSEMBLED: usize = 64 * 1024;
/// A partial message whose first fragment came longer ago than this is dropped (the peer
/// retransmits every fragment of a message it still wants answered).
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Serializes `payloads` and seals them for `header` into one message, or into fragments of
/// at most `fragment_size` bytes each when `fragment_size` is Some and the message is larger.
pub fn seal(
    cipher: &SkCipher,
    rng: &mut dyn Rng,
    header: &Header,
    payloads: &[Payload<'_>],
    fragment_size: Option<usize>,
) -> Vec<Vec<u8>> {
    let mut plain = Vec::new();
    let first = write_payloads(payloads, &mut plain);
    let whole_len = HEADER_LEN + 4 + cipher.sealed_len(plain.len());
    match fragment_size {
        Some(max) if whole_len > max => seal_fragments(cipher, rng, header, first, &plain, max),
        _ => {
            let mut out = Vec::with_capacity(whole_len);
            write_sk_prefix(header, first, cipher.sealed_len(plain.len()), &mut out);
            let aad = out.clone();
            cipher.seal(rng, &aad, &plain, &mut out);
            vec![out]
        }
    }
}

fn seal_fragments(
    cipher: &SkCipher,
    rng: &mut dyn Rng,
    header: &Header,
    first: PayloadType,
    plain: &[u8],
    max: usize,
) -> Vec<Vec<u8>> {
    // Largest chunk whose sealed fragment fits in `max`.
    let overhead = HEADER_LEN + 8;
    let mut chunk = max.saturating_sub(overhead).max(64);
    while chunk > 64 && overhead + cipher.sealed_len(chunk) > max {
        chunk -= 1;
    }
    let total = plain.len().div_ceil(chunk).max(1);
    let total = u16::try_from(total).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(usize::from(total));
    for (i, part) in plain.chunks(chunk).enumerate() {
        let number = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let inner = if number == 1 {
            first
        } else {
            PayloadType::NONE
        };
        let mut dgram = Vec::with_capacity(max);
        write_skf_prefix(
            header,
            inner,
            number,
            total,
            cipher.sealed_len(part.len()),
            &mut dgram,
        );
        let aad = dgram.clone();
        cipher.seal(rng, &aad, part, &mut dgram);
        out.push(dgram);
    }
    out
}

/// The decrypted inner payload chain of a message: the plaintext and its first payload type.
#[derive(Debug)]
pub struct Opened {
    pub first: PayloadType,
    pub plain: Vec<u8>,
}

impl Opened {
    /// Parses the inner chain (borrowing from `self`).
    pub fn payloads(&self) -> Result<Vec<Payload<'_>>, WireError> {
        parse_payloads(self.first, &self.plain, 0)
    }
}

/// Opens an SK message.
pub fn open(cipher: &SkCipher, msg: &Message<'_>) -> Result<Opened, ProtectError> {
    let sk = msg.encrypted().ok_or(ProtectError::NotEncrypted)?;
    let aad = msg
        .raw
        .get(..sk.aad_len)
        .ok_or(ProtectError::Fragment("aad"))?;
    let plain = cipher.open(aad, sk.body)?;
    Ok(Opened {
        first: sk.first_inner,
        plain,
    })
}

/// Collects the SKF fragments of one message (identified by its message ID) until complete.
#[derive(Debug)]
pub struct Reassembly {
    message_id: Option<u32>,
    total: u16,
    first: PayloadType,
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
    /// When the partial message's first fragment came (with `add_at`).
    started: Option<Instant>,
}

impl Default for Reassembly {
    fn default() -> Self {
        Self {
            message_id: None,
            total: 0,
            first: PayloadType::NONE,
            parts: Vec::new(),
            bytes: 0,
            started: None,
        }
    }
}

impl Reassembly {
    /// [`Reassembly::add`] at `now`: a partial message older than [`REASSEMBLY_TIMEOUT`] is
    /// dropped first.
    pub fn add_at(
        &mut self,
        now: Instant,
        cipher: &SkCipher,
        msg: &Message<'_>,
    ) -> Result<Option<Opened>, ProtectError> {
        if self
            .started
            .is_some_and(|t| now.saturating_duration_since(t) >= REASSEMBLY_TIMEOUT)
        {
            log::debug!("dropping a partial fragmented message: too old");
            self.clear();
        }
        let r = self.add(cipher, msg);
        if self.message_id.is_some() && self.started.is_none() {
            self.started = Some(now);
        }
        r
    }

    /// Fragments held now (of the one partial message), and their bytes.
    pub fn held(&self) -> (usize, usize) {
        (self.parts.iter().flatten().count(), self.bytes)
    }

    /// Adds a fragment (checked and decrypted here). Returns the whole message once every
    /// fragment has arrived. Fragments of another message ID replace an older, incomplete set.
    pub fn add(
        &mut self,
        cipher: &SkCipher,
        msg: &Message<'_>,
    ) -> Result<Option<Opened>, ProtectError> {
        let f = msg.fragment().ok_or(ProtectError::NotEncrypted)?;
        if f.total > MAX_FRAGMENTS {
            return Err(ProtectError::TooManyFragments(f.total));
        }
        if f.total == 0 || f.number == 0 || f.number > f.total {
            return Err(ProtectError::Fragment("number out of range"));
        }
        let aad = msg
            .raw
            .get(..f.aad_len)
            .ok_or(ProtectError::Fragment("aad"))?;
        let plain = cipher.open(aad, f.body)?;
        let id = msg.header.message_id;
        if self.message_id != Some(id) || self.total != f.total {
            if self.message_id == Some(id) && f.total < self.total {
                return Err(ProtectError::Fragment("total changed"));
            }
            *self = Reassembly {
                message_id: Some(id),
                total: f.total,
                first: PayloadType::NONE,
                parts: vec![None; usize::from(f.total)],
                bytes: 0,
                started: None,
            };
        }
        let idx = usize::from(f.number - 1);
        if f.number == 1 {
            self.first = f.first_inner;
        }
        let slot = self
            .parts
            .get_mut(idx)
            .ok_or(ProtectError::Fragment("index"))?;
        if slot.is_none() {
            self.bytes += plain.len();
            if self.bytes > MAX_REASSEMBLED {
                *self = Reassembly::default();
                return Err(ProtectError::TooLarge);
            }
            *slot = Some(plain);
        }
        if self.parts.iter().all(Option::is_some) {
            let mut whole = Vec::with_capacity(self.bytes);
            for p in self.parts.iter().flatten() {
                whole.extend_from_slice(p);
            }
            let first = self.first;
            *self = Reassembly::default();
            return Ok(Some(Opened {
                first,
                plain: whole,
            }));
        }
        Ok(None)
    }

    /// Forgets any partial message.
    pub fn clear(&mut self) {
        *self = Reassembly::default();
    }
}
