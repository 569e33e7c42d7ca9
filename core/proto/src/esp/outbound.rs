//! The sending half of an ESP SA: sequence numbers (from 1, never wrapping), IVs, padding
//! (`1, 2, 3, ...` up to the cipher's alignment), the trailer, and sealing in place.

use super::cipher::{Cipher, IvGen, ESP_HEADER_LEN};
use super::{child_cipher, next_header_of, Counters, EspError, NEXT_HEADER_DUMMY};
use crate::crypto::aead::Backend;
use crate::ike::child::ChildSa;
use crate::rng::Rng;

/// Pad length and next header.
const TRAILER_LEN: usize = 2;

/// Encapsulates inner packets for the peer under the SA's outbound SPI and keys.
#[derive(Debug)]
pub struct Outbound {
    spi: u32,
    esn: bool,
    /// The last sequence number used; 0 before the first packet.
    seq: u64,
    cipher: Cipher,
    /// CBC only.
    iv_gen: Option<IvGen>,
    counters: Counters,
}

impl Outbound {
    /// Keys the outbound half of `child` (its `spi_out`, `encr_out`, `integ_out`).
    pub fn new(child: &ChildSa, rng: &mut dyn Rng) -> Result<Self, EspError> {
        Self::with_backend(child, Backend::DEFAULT, rng)
    }

    /// The same with the AEAD from `backend`.
    pub fn with_backend(
        child: &ChildSa,
        backend: Backend,
        rng: &mut dyn Rng,
    ) -> Result<Self, EspError> {
        let cipher = child_cipher(child, backend, &child.encr_out, &child.integ_out)?;
        Self::with_cipher(child.spi_out, child.selected.esn, cipher, rng)
    }

    pub(crate) fn with_cipher(
        spi: u32,
        esn: bool,
        cipher: Cipher,
        rng: &mut dyn Rng,
    ) -> Result<Self, EspError> {
        if spi == 0 {
            return Err(EspError::InvalidSpi(spi));
        }
        let iv_gen = (cipher.iv_len() == 16).then(|| {
            let mut key = zeroize::Zeroizing::new([0u8; 16]);
            rng.fill(key.as_mut());
            IvGen::new(&key)
        });
        Ok(Self {
            spi,
            esn,
            seq: 0,
            cipher,
            iv_gen,
            counters: Counters::default(),
        })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The transform in proposal syntax (`aes256gcm16`, `aes128-sha256`).
    pub fn transform(&self) -> &'static str {
        self.cipher.name()
    }

    /// The last sequence number sent (0 before the first packet).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// How many more packets this SA may send.
    pub fn packets_left(&self) -> u64 {
        self.max_seq() - self.seq
    }

    fn max_seq(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Continues numbering after `last`: sequence numbers only move forward, so this can
    /// never reuse one (or an IV). For simulations and tests that start an SA late in its
    /// life; `last` must not be below `last_seq()` nor beyond the SA's range.
    pub fn advance_seq(&mut self, last: u64) -> Result<(), EspError> {
        if last < self.seq {
            return Err(EspError::SequenceBackwards);
        }
        if last > self.max_seq() {
            return Err(EspError::SequenceExhausted);
        }
        self.seq = last;
        Ok(())
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Bytes in front of the inner packet: ESP header and IV. `encapsulate_in_place` wants
    /// the inner packet at this offset.
    pub fn headroom(&self) -> usize {
        ESP_HEADER_LEN + self.cipher.iv_len()
    }

    /// The ESP packet's length for an inner packet of `payload_len` bytes.
    pub fn encapsulated_len(&self, payload_len: usize) -> usize {
        self.headroom()
            .saturating_add(self.padded_len(payload_len))
            .saturating_add(self.cipher.icv_len())
    }

    /// Bytes behind the inner packet: padding, trailer and ICV.
    pub fn tailroom(&self, payload_len: usize) -> usize {
        self.encapsulated_len(payload_len)
            .saturating_sub(self.headroom())
            .saturating_sub(payload_len)
    }

    /// The most an ESP packet can exceed its inner packet by (largest padding).
    pub fn overhead(&self) -> usize {
        self.headroom() + self.cipher.align() - 1 + TRAILER_LEN + self.cipher.icv_len()
    }

    /// The largest inner packet whose ESP packet fits in `mtu` bytes (0 if none does). For
    /// the datagram size of UDP encapsulation see [`super::udp::esp_mtu`].
    pub fn max_payload(&self, mtu: usize) -> usize {
        let align = self.cipher.align();
        let room = mtu.saturating_sub(self.headroom() + self.cipher.icv_len());
        (room / align * align).saturating_sub(TRAILER_LEN)
    }

    /// Length of payload, padding and trailer: a multiple of the cipher's alignment.
    fn padded_len(&self, payload_len: usize) -> usize {
        let align = self.cipher.align();
        payload_len
            .saturating_add(TRAILER_LEN)
            .div_ceil(align)
            .saturating_mul(align)
    }

    /// Encapsulates the inner IP packet `packet` into `out`; returns the ESP packet's length.
    /// `out` needs [`Self::encapsulated_len`] bytes. The next header (4 or 41) comes from the
    /// packet's version nibble.
    pub fn encapsulate(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, EspError> {
        let r = next_header_of(packet).and_then(|nh| self.copy_and_seal(nh, packet, out));
        self.count(r, packet.len())
    }

    /// Encapsulates in place: the inner packet is `buf[headroom()..headroom() + payload_len]`
    /// and the ESP packet is written over `buf[..n]`, `n` returned. `buf` needs
    /// [`Self::encapsulated_len`] bytes.
    pub fn encapsulate_in_place(
        &mut self,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EspError> {
        let head = self.headroom();
        let needed = self.encapsulated_len(payload_len);
        let r = match buf.get(head..head.saturating_add(payload_len)) {
            _ if buf.len() < needed => Err(EspError::BufferTooSmall {
                needed,
                have: buf.len(),
            }),
            Some(inner) => next_header_of(inner),
            None => Err(EspError::NotIp),
        };
        let r = r.and_then(|nh| self.seal_in_place(nh, buf, payload_len));
        self.count(r, payload_len)
    }

    /// A dummy packet of `len` zero bytes with next header 59, which the peer drops
    /// (traffic flow confidentiality, RFC 4303 §2.6). Not counted as traffic.
    pub fn encapsulate_dummy(&mut self, len: usize, out: &mut [u8]) -> Result<usize, EspError> {
        let head = self.headroom();
        let needed = self.encapsulated_len(len);
        let have = out.len();
        let payload = out
            .get_mut(head..head.saturating_add(len))
            .ok_or(EspError::BufferTooSmall { needed, have })?;
        payload.fill(0);
        self.seal_in_place(NEXT_HEADER_DUMMY, out, len)
    }

    fn count(&mut self, r: Result<usize, EspError>, len: usize) -> Result<usize, EspError> {
        match r {
            Ok(_) => {
                self.counters.packets_out += 1;
                self.counters.bytes_out += len as u64;
            }
            Err(_) => self.counters.out_errors += 1,
        }
        r
    }

    fn copy_and_seal(
        &mut self,
        next_header: u8,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let head = self.headroom();
        let needed = self.encapsulated_len(packet.len());
        let have = out.len();
        let dst = out
            .get_mut(head..head + packet.len())
            .ok_or(EspError::BufferTooSmall { needed, have })?;
        dst.copy_from_slice(packet);
        self.seal_in_place(next_header, out, packet.len())
    }

    /// Takes the next sequence number, or says the SA is used up.
    fn next_seq(&mut self) -> Result<u64, EspError> {
        if self.seq >= self.max_seq() {
            return Err(EspError::SequenceExhausted);
        }
        self.seq += 1;
        Ok(self.seq)
    }

    fn seal_in_place(
        &mut self,
        next_header: u8,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EspError> {
        let total = self.encapsulated_len(payload_len);
        if buf.len() < total {
            return Err(EspError::BufferTooSmall {
                needed: total,
                have: buf.len(),
            });
        }
        let seq = self.next_seq()?;
        let mut iv = [0u8; 16];
        let iv = match &self.iv_gen {
            Some(g) => {
                iv = g.iv(seq);
                &iv[..]
            }
            None => {
                let (a, _) = iv.split_at_mut(8);
                a.copy_from_slice(&seq.to_be_bytes());
                &iv[..8]
            }
        };
        self.seal_with(seq, iv, next_header, buf, payload_len)
    }

    /// Writes header, IV, padding and trailer around the payload at `headroom()` and seals
    /// it under sequence number `seq` with explicit IV `iv`. Tests use it for fixed IVs.
    pub(crate) fn seal_with(
        &self,
        seq: u64,
        iv: &[u8],
        next_header: u8,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EspError> {
        let head = self.headroom();
        let total = self.encapsulated_len(payload_len);
        let have = buf.len();
        let packet = buf.get_mut(..total).ok_or(EspError::BufferTooSmall {
            needed: total,
            have,
        })?;
        if iv.len() != self.cipher.iv_len() {
            return Err(EspError::Malformed);
        }
        let (hdr, rest) = packet.split_at_mut(ESP_HEADER_LEN);
        let (spi_b, seq_b) = hdr.split_at_mut(4);
        spi_b.copy_from_slice(&self.spi.to_be_bytes());
        seq_b.copy_from_slice(&(seq as u32).to_be_bytes());
        let (iv_b, rest) = rest.split_at_mut(iv.len());
        iv_b.copy_from_slice(iv);
        let padded = self.padded_len(payload_len);
        let trailer = rest
            .get_mut(payload_len..padded)
            .ok_or(EspError::Malformed)?;
        let pad_len = trailer.len() - TRAILER_LEN;
        // pad_len < 16: the cipher aligns to at most 16.
        for (i, b) in trailer.iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        if let Some([pl, nh]) = trailer.get_mut(pad_len..).and_then(|t| t.first_chunk_mut()) {
            *pl = pad_len as u8;
            *nh = next_header;
        }
        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        debug_assert_eq!(head + padded + self.cipher.icv_len(), total);
        self.cipher.seal(packet, seq_hi)?;
        Ok(total)
    }
}
