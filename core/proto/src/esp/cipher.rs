//! The ESP transforms keyed for one direction, working in place on a whole ESP packet:
//! AES-GCM-16 (RFC 4106) and ChaCha20-Poly1305 (RFC 7634) with a 4-byte salt and an 8-byte
//! explicit IV, and AES-CBC (RFC 3602) with HMAC-SHA2 (RFC 4868), with the ESN high half
//! authenticated as RFC 4303 §2.2.1 and §3.3.2.1 and RFC 4106 §5 describe.
//!
//! The packet layout every function here sees is
//! `SPI (4) | seq low (4) | IV | ciphertext | ICV`, with the IV already in place.

use aes::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit};
use aes::{Aes128, Aes192, Aes256};
use aes_gcm::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use super::EspError;
use crate::crypto::aead::{self, Aead, Backend};
use crate::crypto::sk::SkCipher;
use crate::wire::{EncrId, IntegId};

/// SPI and sequence number.
pub(crate) const ESP_HEADER_LEN: usize = 8;
/// AES block size: the CBC IV length and padding unit.
const AES_BLOCK: usize = 16;
/// ESP aligns the ciphertext to 4 bytes even for stream-like ciphers (RFC 4303 §2.4).
const ESP_ALIGN: usize = 4;

/// AES keyed for CBC.
enum CbcKey {
    Aes128(Box<Aes128>),
    Aes192(Box<Aes192>),
    Aes256(Box<Aes256>),
}

/// HMAC-SHA2 keyed once; each packet clones the keyed state.
enum Integ {
    Sha256(Box<Hmac<Sha256>>),
    Sha384(Box<Hmac<Sha384>>),
    Sha512(Box<Hmac<Sha512>>),
}

enum Mode {
    Aead(Aead),
    Cbc { key: CbcKey, integ: Integ },
}

/// One direction's ESP transform.
pub(crate) struct Cipher {
    mode: Mode,
    name: &'static str,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The ICV input beyond the packet bytes: the ESN high half, or nothing.
fn esn_bytes(seq_hi: Option<u32>) -> ([u8; 4], usize) {
    match seq_hi {
        Some(hi) => (hi.to_be_bytes(), 4),
        None => ([0; 4], 0),
    }
}

impl Cipher {
    /// Keys the transform `encr`/`key_bits`/`integ` with key material as IKE derives it
    /// (RFC 7296 §2.17): AEAD keys end with the 4-byte salt. The AEAD comes from `backend`
    /// (CBC and HMAC are RustCrypto's in any case).
    pub(crate) fn with_backend(
        backend: Backend,
        encr: EncrId,
        key_bits: Option<u16>,
        integ: IntegId,
        encr_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, EspError> {
        let unsupported = || EspError::Unsupported(format!("{encr} {key_bits:?} with {integ}"));
        let encr_len = SkCipher::encr_key_len(encr, key_bits).map_err(|_| unsupported())?;
        let integ_len = SkCipher::integ_key_len(integ).map_err(|_| unsupported())?;
        if encr_key.len() != encr_len || integ_key.len() != integ_len {
            return Err(EspError::KeyLength);
        }
        let bad = |_| EspError::KeyLength;
        if SkCipher::is_aead(encr) {
            if integ != IntegId::NONE {
                return Err(unsupported());
            }
            let aead =
                Aead::with_backend(backend, encr, encr_key).map_err(|_| EspError::KeyLength)?;
            let name = aead.name();
            return Ok(Self {
                mode: Mode::Aead(aead),
                name,
            });
        }
        if encr != EncrId::AES_CBC {
            return Err(unsupported());
        }
        let key = match encr_key.len() {
            16 => CbcKey::Aes128(Box::new(Aes128::new_from_slice(encr_key).map_err(bad)?)),
            24 => CbcKey::Aes192(Box::new(Aes192::new_from_slice(encr_key).map_err(bad)?)),
            32 => CbcKey::Aes256(Box::new(Aes256::new_from_slice(encr_key).map_err(bad)?)),
            _ => return Err(EspError::KeyLength),
        };
        let integ = match integ {
            IntegId::HMAC_SHA2_256_128 => Integ::Sha256(Box::new(
                <Hmac<Sha256> as KeyInit>::new_from_slice(integ_key).map_err(bad)?,
            )),
            IntegId::HMAC_SHA2_384_192 => Integ::Sha384(Box::new(
                <Hmac<Sha384> as KeyInit>::new_from_slice(integ_key).map_err(bad)?,
            )),
            IntegId::HMAC_SHA2_512_256 => Integ::Sha512(Box::new(
                <Hmac<Sha512> as KeyInit>::new_from_slice(integ_key).map_err(bad)?,
            )),
            _ => return Err(unsupported()),
        };
        let name = match (&key, &integ) {
            (CbcKey::Aes128(_), Integ::Sha256(_)) => "aes128-sha256",
            (CbcKey::Aes128(_), Integ::Sha384(_)) => "aes128-sha384",
            (CbcKey::Aes128(_), Integ::Sha512(_)) => "aes128-sha512",
            (CbcKey::Aes192(_), Integ::Sha256(_)) => "aes192-sha256",
            (CbcKey::Aes192(_), Integ::Sha384(_)) => "aes192-sha384",
            (CbcKey::Aes192(_), Integ::Sha512(_)) => "aes192-sha512",
            (CbcKey::Aes256(_), Integ::Sha256(_)) => "aes256-sha256",
            (CbcKey::Aes256(_), Integ::Sha384(_)) => "aes256-sha384",
            (CbcKey::Aes256(_), Integ::Sha512(_)) => "aes256-sha512",
        };
        Ok(Self {
            mode: Mode::Cbc { key, integ },
            name,
        })
    }

    /// The transform's name in proposal syntax (`aes256gcm16`, `aes128-sha256`).
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn iv_len(&self) -> usize {
        match self.mode {
            Mode::Aead(_) => aead::IV_LEN,
            Mode::Cbc { .. } => AES_BLOCK,
        }
    }

    pub(crate) fn icv_len(&self) -> usize {
        match &self.mode {
            Mode::Aead(_) => aead::ICV_LEN,
            Mode::Cbc { integ, .. } => match integ {
                Integ::Sha256(_) => 16,
                Integ::Sha384(_) => 24,
                Integ::Sha512(_) => 32,
            },
        }
    }

    /// What the ciphertext (payload, padding, pad length, next header) is a multiple of.
    pub(crate) fn align(&self) -> usize {
        match self.mode {
            Mode::Aead(_) => ESP_ALIGN,
            Mode::Cbc { .. } => AES_BLOCK,
        }
    }

    /// Whether `ct_len` bytes of ciphertext can be a valid packet's.
    pub(crate) fn ciphertext_len_ok(&self, ct_len: usize) -> bool {
        match self.mode {
            Mode::Aead(_) => ct_len >= 2,
            Mode::Cbc { .. } => ct_len >= AES_BLOCK && ct_len.is_multiple_of(AES_BLOCK),
        }
    }

    /// Splits a packet into `header | IV`, ciphertext and ICV.
    fn split<'a>(&self, packet: &'a mut [u8]) -> Option<(&'a [u8], &'a mut [u8], &'a mut [u8])> {
        let head_len = ESP_HEADER_LEN + self.iv_len();
        let icv_len = self.icv_len();
        if packet.len() < head_len + icv_len {
            return None;
        }
        let (head, rest) = packet.split_at_mut(head_len);
        let ct_len = rest.len() - icv_len;
        let (ct, icv) = rest.split_at_mut(ct_len);
        Some((head, ct, icv))
    }

    /// Encrypts the plaintext between IV and ICV in place and writes the ICV. The header and
    /// IV must already be in place; `seq_hi` is the ESN high half when ESN is on.
    pub(crate) fn seal(&self, packet: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let (head, ct, icv) = self.split(packet).ok_or(EspError::Malformed)?;
        match &self.mode {
            Mode::Aead(aead) => {
                let (aad, aad_len) = aead_aad(head, seq_hi)?;
                let aad = aad.get(..aad_len).ok_or(EspError::Malformed)?;
                let tag = aead
                    .seal_in_place(explicit_iv(head)?, aad, ct)
                    .map_err(|_| EspError::Malformed)?;
                icv.copy_from_slice(&tag);
            }
            Mode::Cbc { key, integ } => {
                let iv = head.get(ESP_HEADER_LEN..).ok_or(EspError::Malformed)?;
                cbc_encrypt(key, iv, ct)?;
                let (hi, hi_len) = esn_bytes(seq_hi);
                integ.compute(&[head, ct, hi.get(..hi_len).unwrap_or(&[])], icv);
            }
        }
        Ok(())
    }

    /// Verifies the ICV and, only if it is right, decrypts the ciphertext in place.
    pub(crate) fn open(&self, packet: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let (head, ct, icv) = self.split(packet).ok_or(EspError::Malformed)?;
        match &self.mode {
            Mode::Aead(aead) => {
                let (aad, aad_len) = aead_aad(head, seq_hi)?;
                let aad = aad.get(..aad_len).ok_or(EspError::Malformed)?;
                aead.open_in_place(explicit_iv(head)?, aad, ct, icv)
                    .map_err(|e| match e {
                        crate::crypto::CryptoError::Integrity => EspError::Auth,
                        _ => EspError::Malformed,
                    })?;
            }
            Mode::Cbc { key, integ } => {
                if !ct.len().is_multiple_of(AES_BLOCK) {
                    return Err(EspError::Malformed);
                }
                let (hi, hi_len) = esn_bytes(seq_hi);
                integ.verify(&[head, ct, hi.get(..hi_len).unwrap_or(&[])], icv)?;
                let iv = head.get(ESP_HEADER_LEN..).ok_or(EspError::Malformed)?;
                cbc_decrypt(key, iv, ct)?;
            }
        }
        Ok(())
    }
}

/// AAD = SPI | seq (RFC 4106 §5, RFC 7634 §2.1), with ESN: SPI | seq high | seq low.
fn aead_aad(head: &[u8], seq_hi: Option<u32>) -> Result<([u8; 12], usize), EspError> {
    let spi = head.get(..4).ok_or(EspError::Malformed)?;
    let seq_lo = head.get(4..8).ok_or(EspError::Malformed)?;
    let mut aad = [0u8; 12];
    let (a, rest) = aad.split_at_mut(4);
    a.copy_from_slice(spi);
    match seq_hi {
        Some(hi) => {
            let (b, c) = rest.split_at_mut(4);
            b.copy_from_slice(&hi.to_be_bytes());
            c.copy_from_slice(seq_lo);
            Ok((aad, 12))
        }
        None => {
            let (b, _) = rest.split_at_mut(4);
            b.copy_from_slice(seq_lo);
            Ok((aad, 8))
        }
    }
}

/// The explicit IV after SPI and sequence number.
fn explicit_iv(head: &[u8]) -> Result<&[u8], EspError> {
    head.get(ESP_HEADER_LEN..ESP_HEADER_LEN + aead::IV_LEN)
        .ok_or(EspError::Malformed)
}

impl Integ {
    /// Writes the truncated HMAC over the concatenation of `data` into `icv`.
    fn compute(&self, data: &[&[u8]], icv: &mut [u8]) {
        fn run<M: Mac + Clone>(mac: &M, data: &[&[u8]], icv: &mut [u8]) {
            let mut mac = mac.clone();
            data.iter().for_each(|d| mac.update(d));
            let full = mac.finalize().into_bytes();
            for (o, i) in icv.iter_mut().zip(full.iter()) {
                *o = *i;
            }
        }
        match self {
            Self::Sha256(m) => run(m.as_ref(), data, icv),
            Self::Sha384(m) => run(m.as_ref(), data, icv),
            Self::Sha512(m) => run(m.as_ref(), data, icv),
        }
    }

    /// Constant-time check of the truncated HMAC.
    fn verify(&self, data: &[&[u8]], icv: &[u8]) -> Result<(), EspError> {
        fn run<M: Mac + Clone>(mac: &M, data: &[&[u8]], icv: &[u8]) -> Result<(), EspError> {
            let mut mac = mac.clone();
            data.iter().for_each(|d| mac.update(d));
            mac.verify_truncated_left(icv).map_err(|_| EspError::Auth)
        }
        match self {
            Self::Sha256(m) => run(m.as_ref(), data, icv),
            Self::Sha384(m) => run(m.as_ref(), data, icv),
            Self::Sha512(m) => run(m.as_ref(), data, icv),
        }
    }
}

fn cbc_encrypt(key: &CbcKey, iv: &[u8], buf: &mut [u8]) -> Result<(), EspError> {
    fn run<C>(cipher: &C, iv: &[u8], buf: &mut [u8]) -> Result<(), EspError>
    where
        C: BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16> + Clone,
    {
        let iv = aes::Block::try_from(iv).map_err(|_| EspError::Malformed)?;
        let mut enc = cbc::Encryptor::<C>::inner_iv_init(cipher.clone(), &iv);
        let (blocks, tail) = aes::Block::slice_as_chunks_mut(buf);
        if !tail.is_empty() {
            return Err(EspError::Malformed);
        }
        enc.encrypt_blocks(blocks);
        Ok(())
    }
    match key {
        CbcKey::Aes128(c) => run(c.as_ref(), iv, buf),
        CbcKey::Aes192(c) => run(c.as_ref(), iv, buf),
        CbcKey::Aes256(c) => run(c.as_ref(), iv, buf),
    }
}

fn cbc_decrypt(key: &CbcKey, iv: &[u8], buf: &mut [u8]) -> Result<(), EspError> {
    fn run<C>(cipher: &C, iv: &[u8], buf: &mut [u8]) -> Result<(), EspError>
    where
        C: aes::cipher::BlockCipherDecrypt<BlockSize = aes::cipher::consts::U16> + Clone,
    {
        let iv = aes::Block::try_from(iv).map_err(|_| EspError::Malformed)?;
        let mut dec = cbc::Decryptor::<C>::inner_iv_init(cipher.clone(), &iv);
        let (blocks, tail) = aes::Block::slice_as_chunks_mut(buf);
        if !tail.is_empty() {
            return Err(EspError::Malformed);
        }
        dec.decrypt_blocks(blocks);
        Ok(())
    }
    match key {
        CbcKey::Aes128(c) => run(c.as_ref(), iv, buf),
        CbcKey::Aes192(c) => run(c.as_ref(), iv, buf),
        CbcKey::Aes256(c) => run(c.as_ref(), iv, buf),
    }
}

/// Makes CBC IVs for one outbound SA: AES-128 under a random key drawn when the SA is made,
/// applied to the 64-bit sequence number. Every IV is distinct and unpredictable to anyone
/// without that key (NIST SP 800-38A, Appendix C), and no packet needs the RNG.
pub(crate) struct IvGen(Box<Aes128>);

impl IvGen {
    pub(crate) fn new(key: &[u8; 16]) -> Self {
        Self(Box::new(Aes128::new(key.into())))
    }
    pub(crate) fn iv(&self, seq: u64) -> [u8; AES_BLOCK] {
        let mut block = aes::Block::default();
        let (_, lo) = block.split_at_mut(8);
        lo.copy_from_slice(&seq.to_be_bytes());
        self.0.encrypt_block(&mut block);
        block.into()
    }
}

impl std::fmt::Debug for IvGen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IvGen")
    }
}
