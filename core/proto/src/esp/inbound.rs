//! The receiving half of an ESP SA: length and SPI checks, the anti-replay check before
//! decryption, ICV verification and decryption in place, the window update after it, and
//! the trailer checks (padding `1, 2, 3, ...`, next header 4, 41, or 59 for a dummy).

use std::ops::Range;

use super::cipher::{Cipher, ESP_HEADER_LEN};
use super::replay::ReplayWindow;
use super::{
    child_cipher, Counters, EspError, NEXT_HEADER_DUMMY, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6,
};
use crate::crypto::aead::Backend;
use crate::ike::child::ChildSa;

/// Decapsulates the peer's packets for the SA's inbound SPI.
#[derive(Debug)]
pub struct Inbound {
    spi: u32,
    esn: bool,
    cipher: Cipher,
    window: ReplayWindow,
    counters: Counters,
}

impl Inbound {
    /// Keys the inbound half of `child` (its `spi_in`, `encr_in`, `integ_in`).
    pub fn new(child: &ChildSa) -> Result<Self, EspError> {
        Self::with_backend(child, Backend::DEFAULT)
    }

    /// The same with the AEAD from `backend`.
    pub fn with_backend(child: &ChildSa, backend: Backend) -> Result<Self, EspError> {
        let cipher = child_cipher(child, backend, &child.encr_in, &child.integ_in)?;
        Self::with_cipher(child.spi_in, child.selected.esn, cipher)
    }

    pub(crate) fn with_cipher(spi: u32, esn: bool, cipher: Cipher) -> Result<Self, EspError> {
        if spi == 0 {
            return Err(EspError::InvalidSpi(spi));
        }
        Ok(Self {
            spi,
            esn,
            cipher,
            window: ReplayWindow::new(esn),
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

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The anti-replay window.
    pub fn window(&self) -> &ReplayWindow {
        &self.window
    }

    /// Replaces the window's state as if `top` were the highest sequence number received.
    #[cfg(test)]
    pub(crate) fn reset_window(&mut self, top: u64) {
        self.window.reset_to(top);
    }

    /// Checks and decrypts the ESP packet `packet` in place and returns where the inner IP
    /// packet lies in it. Every failure is counted; the SA is unchanged by a packet that
    /// fails before its ICV verified.
    pub fn decapsulate(&mut self, packet: &mut [u8]) -> Result<Range<usize>, EspError> {
        let r = self.open(packet);
        let c = &mut self.counters;
        match &r {
            Ok(range) => {
                c.packets_in += 1;
                c.bytes_in += range.len() as u64;
            }
            Err(e) => {
                log::trace!("ESP SPI {:#010x}: dropped: {e}", self.spi);
                match e {
                    EspError::BadSpi { .. } => c.bad_spi += 1,
                    EspError::Replayed(_) | EspError::TooOld(_) => c.replay += 1,
                    EspError::Auth => c.auth += 1,
                    EspError::Padding => c.padding += 1,
                    EspError::NextHeader(_) => c.next_header += 1,
                    EspError::Dummy => c.dummy += 1,
                    _ => c.malformed += 1,
                }
            }
        }
        r
    }

    fn open(&mut self, packet: &mut [u8]) -> Result<Range<usize>, EspError> {
        let head = ESP_HEADER_LEN + self.cipher.iv_len();
        let icv = self.cipher.icv_len();
        let ct_len = packet
            .len()
            .checked_sub(head + icv)
            .ok_or(EspError::Malformed)?;
        if !self.cipher.ciphertext_len_ok(ct_len) {
            return Err(EspError::Malformed);
        }
        let (spi, seq_lo) = match packet.first_chunk::<ESP_HEADER_LEN>() {
            Some([a, b, c, d, e, f, g, h]) => (
                u32::from_be_bytes([*a, *b, *c, *d]),
                u32::from_be_bytes([*e, *f, *g, *h]),
            ),
            None => return Err(EspError::Malformed),
        };
        if spi != self.spi {
            return Err(EspError::BadSpi {
                got: spi,
                want: self.spi,
            });
        }
        let seq = self.window.check(seq_lo)?;
        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        self.cipher.open(packet, seq_hi)?;
        self.window.accept(seq)?;

        // The trailer: `padding | pad length | next header` at the end of the plaintext.
        let ct = packet.get(head..head + ct_len).ok_or(EspError::Malformed)?;
        let (rest, [pad_len, next_header]) =
            ct.split_last_chunk::<2>().ok_or(EspError::Malformed)?;
        let pad_len = usize::from(*pad_len);
        let payload_len = rest.len().checked_sub(pad_len).ok_or(EspError::Padding)?;
        let padding = rest.get(payload_len..).ok_or(EspError::Padding)?;
        if !padding
            .iter()
            .enumerate()
            .all(|(i, &b)| usize::from(b) == i + 1)
        {
            return Err(EspError::Padding);
        }
        match *next_header {
            NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6 => Ok(head..head + payload_len),
            NEXT_HEADER_DUMMY => Err(EspError::Dummy),
            nh => Err(EspError::NextHeader(nh)),
        }
    }
}
