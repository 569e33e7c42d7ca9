//! The cipher of the SK and SKF payloads (RFC 7296 §3.14, RFC 5282 for AEAD, RFC 7634 for
//! ChaCha20-Poly1305): AES-GCM-16 (128/192/256), ChaCha20-Poly1305, AES-CBC with HMAC-SHA2
//! (RFC 3602, RFC 4868).
//!
//! The plaintext that gets encrypted is `payloads | padding | pad length`. AEAD ciphers use no
//! padding (pad length 0); AES-CBC pads to its 16-byte block. AEAD IVs come from a per-cipher
//! counter that starts at a random value, so they never repeat under one key.

use std::sync::Mutex;

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use aes::{Aes128, Aes192, Aes256};
use aes_gcm::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroize;

use super::aead::{self, Aead};
use super::error::CryptoError;
use super::secret::Secret;
use crate::rng::Rng;
use crate::wire::{EncrId, IntegId};

/// AES block size, also the CBC IV length.
const AES_BLOCK: usize = 16;

/// The HMAC-SHA2 integrity algorithms of RFC 4868.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Integ {
    Sha256_128,
    Sha384_192,
    Sha512_256,
}

impl Integ {
    fn new(id: IntegId) -> Result<Self, CryptoError> {
        match id {
            IntegId::HMAC_SHA2_256_128 => Ok(Self::Sha256_128),
            IntegId::HMAC_SHA2_384_192 => Ok(Self::Sha384_192),
            IntegId::HMAC_SHA2_512_256 => Ok(Self::Sha512_256),
            _ => Err(CryptoError::Unsupported(format!("{id}"))),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Sha256_128 => "HMAC-SHA2-256-128",
            Self::Sha384_192 => "HMAC-SHA2-384-192",
            Self::Sha512_256 => "HMAC-SHA2-512-256",
        }
    }
    fn key_len(self) -> usize {
        match self {
            Self::Sha256_128 => 32,
            Self::Sha384_192 => 48,
            Self::Sha512_256 => 64,
        }
    }
    fn icv_len(self) -> usize {
        self.key_len() / 2
    }
    /// The truncated HMAC over the concatenation of `data`.
    fn icv(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[&[u8]], len: usize) -> Vec<u8> {
            let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
                return Vec::new();
            };
            data.iter().for_each(|d| mac.update(d));
            let full = mac.finalize().into_bytes();
            full.get(..len).unwrap_or(&full).to_vec()
        }
        match self {
            Self::Sha256_128 => run::<Hmac<Sha256>>(key, data, self.icv_len()),
            Self::Sha384_192 => run::<Hmac<Sha384>>(key, data, self.icv_len()),
            Self::Sha512_256 => run::<Hmac<Sha512>>(key, data, self.icv_len()),
        }
    }
    /// Constant-time check of a truncated ICV.
    fn verify(self, key: &[u8], data: &[&[u8]], icv: &[u8]) -> Result<(), CryptoError> {
        fn run<M: Mac + KeyInit>(
            key: &[u8],
            data: &[&[u8]],
            icv: &[u8],
        ) -> Result<(), CryptoError> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).map_err(|_| CryptoError::KeyLength)?;
            data.iter().for_each(|d| mac.update(d));
            mac.verify_truncated_left(icv)
                .map_err(|_| CryptoError::Integrity)
        }
        if icv.len() != self.icv_len() {
            return Err(CryptoError::Malformed);
        }
        match self {
            Self::Sha256_128 => run::<Hmac<Sha256>>(key, data, icv),
            Self::Sha384_192 => run::<Hmac<Sha384>>(key, data, icv),
            Self::Sha512_256 => run::<Hmac<Sha512>>(key, data, icv),
        }
    }
}

/// What one `SkCipher` runs.
enum Mode {
    Aead {
        alg: Aead,
        /// The next explicit IV; seeded from the RNG on first use.
        counter: Mutex<Option<u64>>,
    },
    Cbc {
        key: Secret,
        integ: Integ,
        integ_key: Secret,
    },
}

/// One direction's SK cipher.
pub struct SkCipher {
    mode: Mode,
}

fn aes_key_bytes(key_bits: Option<u16>) -> Result<usize, CryptoError> {
    match key_bits {
        Some(128) => Ok(16),
        Some(192) => Ok(24),
        Some(256) => Ok(32),
        _ => Err(CryptoError::KeyLength),
    }
}

impl SkCipher {
    /// Bytes of encryption key material for `encr` with `key_bits` (includes the 4-byte salt
    /// of AES-GCM and ChaCha20-Poly1305). `key_bits` is None for fixed-size ciphers.
    pub fn encr_key_len(encr: EncrId, key_bits: Option<u16>) -> Result<usize, CryptoError> {
        match encr {
            EncrId::AES_CBC => aes_key_bytes(key_bits),
            EncrId::AES_GCM_16 => Ok(aes_key_bytes(key_bits)? + aead::SALT_LEN),
            EncrId::CHACHA20_POLY1305 => match key_bits {
                None | Some(256) => Ok(32 + aead::SALT_LEN),
                Some(_) => Err(CryptoError::KeyLength),
            },
            _ => Err(CryptoError::Unsupported(format!("{encr}"))),
        }
    }
    /// Bytes of integrity key for `integ` (0 for NONE).
    pub fn integ_key_len(integ: IntegId) -> Result<usize, CryptoError> {
        if integ == IntegId::NONE {
            return Ok(0);
        }
        Ok(Integ::new(integ)?.key_len())
    }
    /// Whether `encr` is an AEAD (then INTEG must be NONE).
    pub fn is_aead(encr: EncrId) -> bool {
        Aead::is_aead(encr)
    }
    pub fn new(
        encr: EncrId,
        key_bits: Option<u16>,
        integ: IntegId,
        encr_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, CryptoError> {
        let key_len = Self::encr_key_len(encr, key_bits)?;
        if encr_key.len() != key_len {
            return Err(CryptoError::KeyLength);
        }
        if Self::is_aead(encr) {
            if integ != IntegId::NONE {
                return Err(CryptoError::Unsupported(format!("{encr} with {integ}")));
            }
            if !integ_key.is_empty() {
                return Err(CryptoError::KeyLength);
            }
            let mode = Mode::Aead {
                alg: Aead::new(encr, encr_key)?,
                counter: Mutex::new(None),
            };
            return Ok(Self { mode });
        }
        let integ = Integ::new(integ)?;
        if integ_key.len() != integ.key_len() {
            return Err(CryptoError::KeyLength);
        }
        let mode = Mode::Cbc {
            key: Secret::from_slice(encr_key),
            integ,
            integ_key: Secret::from_slice(integ_key),
        };
        Ok(Self { mode })
    }

    fn iv_len(&self) -> usize {
        match self.mode {
            Mode::Aead { .. } => aead::IV_LEN,
            Mode::Cbc { .. } => AES_BLOCK,
        }
    }
    fn icv_len(&self) -> usize {
        match &self.mode {
            Mode::Aead { .. } => aead::ICV_LEN,
            Mode::Cbc { integ, .. } => integ.icv_len(),
        }
    }
    /// Length of the encrypted part (payloads, padding, pad length) for `plaintext_len`.
    fn padded_len(&self, plaintext_len: usize) -> usize {
        match self.mode {
            Mode::Aead { .. } => plaintext_len + 1,
            Mode::Cbc { .. } => (plaintext_len + 1).div_ceil(AES_BLOCK) * AES_BLOCK,
        }
    }

    /// Length of IV || ciphertext (padded, with pad length byte) || ICV for `plaintext_len`.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        self.iv_len() + self.padded_len(plaintext_len) + self.icv_len()
    }

    /// Appends IV || ciphertext || ICV to `out`. `aad` is every byte of the message before the
    /// IV (it must already carry the final lengths). AEAD: AAD = `aad`; CBC: ICV over
    /// `aad` || IV || ciphertext.
    pub fn seal(&self, rng: &mut dyn Rng, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let iv = match &self.mode {
            Mode::Aead { counter, .. } => {
                let mut guard = counter.lock().unwrap_or_else(|e| e.into_inner());
                let next = guard.unwrap_or_else(|| rng.next_u64());
                *guard = Some(next.wrapping_add(1));
                next.to_be_bytes().to_vec()
            }
            Mode::Cbc { .. } => {
                let mut iv = vec![0u8; AES_BLOCK];
                rng.fill(&mut iv);
                iv
            }
        };
        if let Err(e) = self.seal_with_iv(&iv, aad, plaintext, out) {
            // Only reachable with an IV of the wrong size, which `seal` never makes.
            log::error!("SK seal failed: {e}");
        }
    }

    /// `seal` with a caller-chosen IV (tests use fixed IVs; never reuse one under a key).
    pub(crate) fn seal_with_iv(
        &self,
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let padded_len = self.padded_len(plaintext.len());
        let pad_len = padded_len - plaintext.len() - 1;
        let mut buf = Vec::with_capacity(padded_len);
        buf.extend_from_slice(plaintext);
        buf.resize(padded_len - 1, 0);
        // pad_len < 16 for CBC and 0 for AEAD.
        buf.push(u8::try_from(pad_len).map_err(|_| CryptoError::Malformed)?);
        let r = self.encrypt_padded(iv, aad, &mut buf, out);
        buf.zeroize();
        r
    }

    /// Encrypts an already padded `buf` in place and appends IV || ciphertext || ICV to `out`.
    fn encrypt_padded(
        &self,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        if iv.len() != self.iv_len() {
            return Err(CryptoError::Malformed);
        }
        match &self.mode {
            Mode::Aead { alg, .. } => {
                let tag = alg.seal_in_place(iv, aad, buf)?;
                out.extend_from_slice(iv);
                out.extend_from_slice(buf);
                out.extend_from_slice(&tag);
            }
            Mode::Cbc {
                key,
                integ,
                integ_key,
            } => {
                if !buf.len().is_multiple_of(AES_BLOCK) {
                    return Err(CryptoError::Malformed);
                }
                cbc_encrypt(key.as_bytes(), iv, buf)?;
                let icv = integ.icv(integ_key.as_bytes(), &[aad, iv, buf]);
                out.extend_from_slice(iv);
                out.extend_from_slice(buf);
                out.extend_from_slice(&icv);
            }
        }
        Ok(())
    }

    /// Checks and decrypts `body` (IV || ciphertext || ICV) and returns the plaintext with
    /// padding and pad length removed.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        if body.len() < iv_len + icv_len + 1 {
            return Err(CryptoError::Malformed);
        }
        let (iv, rest) = body.split_at(iv_len);
        let (ct, icv) = rest.split_at(rest.len() - icv_len);
        let mut buf = ct.to_vec();
        match &self.mode {
            Mode::Aead { alg, .. } => {
                if let Err(e) = alg.open_in_place(iv, aad, &mut buf, icv) {
                    buf.zeroize();
                    return Err(e);
                }
            }
            Mode::Cbc {
                key,
                integ,
                integ_key,
            } => {
                if !ct.len().is_multiple_of(AES_BLOCK) {
                    return Err(CryptoError::Malformed);
                }
                integ.verify(integ_key.as_bytes(), &[aad, iv, ct], icv)?;
                cbc_decrypt(key.as_bytes(), iv, &mut buf)?;
            }
        }
        strip_padding(buf)
    }
}

/// Removes `padding | pad length` from decrypted data.
fn strip_padding(mut buf: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
    let pad = usize::from(*buf.last().ok_or(CryptoError::Malformed)?);
    if pad + 1 > buf.len() {
        buf.zeroize();
        return Err(CryptoError::Malformed);
    }
    let keep = buf.len() - pad - 1;
    buf[keep..].zeroize();
    buf.truncate(keep);
    Ok(buf)
}

/// Applies `f` to each 16-byte block of `buf` (a multiple of 16 bytes long).
fn for_blocks(buf: &mut [u8], mut f: impl FnMut(&mut aes::Block)) {
    for chunk in buf.chunks_exact_mut(AES_BLOCK) {
        let mut block = aes::Block::default();
        block.copy_from_slice(chunk);
        f(&mut block);
        chunk.copy_from_slice(&block);
        block.zeroize();
    }
}

fn cbc_encrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
    fn run<C: BlockModeEncrypt<BlockSize = aes::cipher::consts::U16> + KeyIvInit>(
        key: &[u8],
        iv: &[u8],
        buf: &mut [u8],
    ) -> Result<(), CryptoError> {
        let mut enc = C::new_from_slices(key, iv).map_err(|_| CryptoError::KeyLength)?;
        for_blocks(buf, |b| enc.encrypt_block(b));
        Ok(())
    }
    match key.len() {
        16 => run::<cbc::Encryptor<Aes128>>(key, iv, buf),
        24 => run::<cbc::Encryptor<Aes192>>(key, iv, buf),
        32 => run::<cbc::Encryptor<Aes256>>(key, iv, buf),
        _ => Err(CryptoError::KeyLength),
    }
}

fn cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), CryptoError> {
    fn run<C: BlockModeDecrypt<BlockSize = aes::cipher::consts::U16> + KeyIvInit>(
        key: &[u8],
        iv: &[u8],
        buf: &mut [u8],
    ) -> Result<(), CryptoError> {
        let mut dec = C::new_from_slices(key, iv).map_err(|_| CryptoError::KeyLength)?;
        for_blocks(buf, |b| dec.decrypt_block(b));
        Ok(())
    }
    match key.len() {
        16 => run::<cbc::Decryptor<Aes128>>(key, iv, buf),
        24 => run::<cbc::Decryptor<Aes192>>(key, iv, buf),
        32 => run::<cbc::Decryptor<Aes256>>(key, iv, buf),
        _ => Err(CryptoError::KeyLength),
    }
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.mode {
            Mode::Aead { alg, .. } => match alg.name() {
                "aes128gcm16" => "AES-GCM-16-128",
                "aes192gcm16" => "AES-GCM-16-192",
                "aes256gcm16" => "AES-GCM-16-256",
                _ => "ChaCha20-Poly1305",
            },
            Mode::Cbc { key, integ, .. } => {
                return write!(f, "SkCipher(AES-CBC-{}/{})", key.len() * 8, integ.name());
            }
        };
        write!(f, "SkCipher({name})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// (encr, key bits, integ) of every supported SK cipher.
    const ALL: [(EncrId, Option<u16>, IntegId); 10] = [
        (EncrId::AES_GCM_16, Some(128), IntegId::NONE),
        (EncrId::AES_GCM_16, Some(192), IntegId::NONE),
        (EncrId::AES_GCM_16, Some(256), IntegId::NONE),
        (EncrId::CHACHA20_POLY1305, None, IntegId::NONE),
        (EncrId::AES_CBC, Some(128), IntegId::HMAC_SHA2_256_128),
        (EncrId::AES_CBC, Some(192), IntegId::HMAC_SHA2_384_192),
        (EncrId::AES_CBC, Some(256), IntegId::HMAC_SHA2_512_256),
        (EncrId::AES_CBC, Some(256), IntegId::HMAC_SHA2_256_128),
        (EncrId::AES_CBC, Some(128), IntegId::HMAC_SHA2_512_256),
        (EncrId::AES_CBC, Some(192), IntegId::HMAC_SHA2_256_128),
    ];

    fn cipher(i: usize) -> SkCipher {
        let (e, k, g) = ALL[i];
        let ek: Vec<u8> = (0..SkCipher::encr_key_len(e, k).unwrap())
            .map(|b| b as u8)
            .collect();
        let ik: Vec<u8> = (0..SkCipher::integ_key_len(g).unwrap())
            .map(|b| (b as u8) ^ 0x5a)
            .collect();
        SkCipher::new(e, k, g, &ek, &ik).unwrap()
    }

    const CHACHA_KEY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
    const CHACHA_AAD: &str = "50515253c0c1c2c3c4c5c6c7";
    const CHACHA_PT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    const CHACHA_CT: &str = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
        3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
        92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
        3ff4def08e4b7a9de576d26586cec64b6116";
    const CHACHA_TAG: &str = "1ae10b594f09e26a7e902ecbd0600691";

    /// RFC 7539 §2.8.2 through the SK cipher: salt 07000000, IV 4041424344454647.
    #[test]
    fn rfc7539_chacha20_poly1305_vector() {
        let mut key = h(CHACHA_KEY);
        key.extend_from_slice(&[7, 0, 0, 0]);
        let c = SkCipher::new(EncrId::CHACHA20_POLY1305, None, IntegId::NONE, &key, &[]).unwrap();
        let iv = h("4041424344454647");
        let aad = h(CHACHA_AAD);
        // The raw AEAD layer reproduces the vector exactly.
        let mut buf = CHACHA_PT.to_vec();
        let mut out = Vec::new();
        c.encrypt_padded(&iv, &aad, &mut buf, &mut out).unwrap();
        let expect = [iv.clone(), h(CHACHA_CT), h(CHACHA_TAG)].concat();
        assert_eq!(hex::encode(&out), hex::encode(&expect));
        // `open` authenticates and decrypts it, then reads the last byte ('.' = 46) as the pad
        // length and strips 47 bytes.
        let pt = c.open(&aad, &expect).unwrap();
        assert_eq!(pt, &CHACHA_PT[..CHACHA_PT.len() - 47]);
        // And what `seal_with_iv` makes of that is a message `open` gives back.
        let mut sealed = Vec::new();
        c.seal_with_iv(&iv, &aad, &pt, &mut sealed).unwrap();
        assert_eq!(sealed.len(), c.sealed_len(pt.len()));
        assert_eq!(&sealed[8..8 + pt.len()], &h(CHACHA_CT)[..pt.len()]);
        assert_eq!(c.open(&aad, &sealed).unwrap(), pt);
    }

    /// McGrew & Viega GCM test cases 4 (AES-128) and 16 (AES-256): salt cafebabe, IV
    /// facedbaddecaf888.
    #[test]
    fn gcm_spec_vectors() {
        let pt = h(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                    1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let iv = h("facedbaddecaf888");
        let cases = [
            (
                128,
                "feffe9928665731c6d6a8f9467308308",
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
                 21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                "5bc94fbc3221a5db94fae95ae7121a47",
            ),
            (
                256,
                "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
        ];
        for (bits, key, ct, tag) in cases {
            let key = [h(key), h("cafebabe")].concat();
            let c =
                SkCipher::new(EncrId::AES_GCM_16, Some(bits), IntegId::NONE, &key, &[]).unwrap();
            let mut buf = pt.clone();
            let mut out = Vec::new();
            c.encrypt_padded(&iv, &aad, &mut buf, &mut out).unwrap();
            let expect = [iv.clone(), h(ct), h(tag)].concat();
            assert_eq!(hex::encode(&out), hex::encode(&expect), "AES-{bits}-GCM");
            // Last plaintext byte 0x39 = 57: 58 bytes of "padding" go.
            assert_eq!(c.open(&aad, &expect).unwrap(), &pt[..2]);
        }
    }

    /// RFC 3602 case 1 through the CBC layer; the HMAC over it checks out, but the decrypted
    /// block's last byte ('g' = 103) is no valid pad length.
    #[test]
    fn rfc3602_aes_cbc_vector_and_bad_padding() {
        let key = h("06a9214036b8a15b512e03d534120006");
        let iv = h("3dafba429d9eb430b422da802c9fac41");
        let ik = [0x0b; 32];
        let c = SkCipher::new(
            EncrId::AES_CBC,
            Some(128),
            IntegId::HMAC_SHA2_256_128,
            &key,
            &ik,
        )
        .unwrap();
        let mut buf = b"Single block msg".to_vec();
        let mut out = Vec::new();
        c.encrypt_padded(&iv, b"hdr", &mut buf, &mut out).unwrap();
        assert_eq!(
            hex::encode(&out[16..32]),
            "e353779c1079aeb82708942dbe77181a"
        );
        assert_eq!(out.len(), 16 + 16 + 16);
        assert_eq!(c.open(b"hdr", &out), Err(CryptoError::Malformed));
    }

    /// RFC 4868 §2.7.2: HMAC-SHA-256-128, -384-192, -512-256 (key 0x0b.., "Hi There").
    #[test]
    fn rfc4868_truncation() {
        let cases = [
            (
                IntegId::HMAC_SHA2_256_128,
                "198a607eb44bfbc69903a0f1cf2bbdc5",
            ),
            (
                IntegId::HMAC_SHA2_384_192,
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973",
            ),
            (
                IntegId::HMAC_SHA2_512_256,
                "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8",
            ),
        ];
        for (id, expect) in cases {
            let integ = Integ::new(id).unwrap();
            let key = vec![0x0b; integ.key_len()];
            assert_eq!(hex::encode(integ.icv(&key, &[b"Hi ", b"There"])), expect);
            assert!(integ.verify(&key, &[b"Hi There"], &h(expect)).is_ok());
            let mut bad = h(expect);
            bad[0] ^= 1;
            assert_eq!(
                integ.verify(&key, &[b"Hi There"], &bad),
                Err(CryptoError::Integrity)
            );
        }
    }

    /// The CBC ICV is the truncated HMAC over aad | IV | ciphertext.
    #[test]
    fn cbc_icv_covers_aad_iv_ciphertext() {
        for i in 4..ALL.len() {
            let c = cipher(i);
            let mut out = Vec::new();
            c.seal_with_iv(&[9u8; 16], b"header", b"payload bytes", &mut out)
                .unwrap();
            let Mode::Cbc {
                integ, integ_key, ..
            } = &c.mode
            else {
                panic!()
            };
            let icv_at = out.len() - integ.icv_len();
            let expect = integ.icv(integ_key.as_bytes(), &[b"header", &out[..icv_at]]);
            assert_eq!(&out[icv_at..], &expect[..]);
            // 13 bytes + pad length -> one block.
            assert_eq!(out.len(), 16 + 16 + integ.icv_len());
        }
    }

    #[test]
    fn key_lengths() {
        assert_eq!(
            SkCipher::encr_key_len(EncrId::AES_GCM_16, Some(128)),
            Ok(20)
        );
        assert_eq!(
            SkCipher::encr_key_len(EncrId::AES_GCM_16, Some(192)),
            Ok(28)
        );
        assert_eq!(
            SkCipher::encr_key_len(EncrId::AES_GCM_16, Some(256)),
            Ok(36)
        );
        assert_eq!(
            SkCipher::encr_key_len(EncrId::AES_GCM_16, None),
            Err(CryptoError::KeyLength)
        );
        assert_eq!(
            SkCipher::encr_key_len(EncrId::CHACHA20_POLY1305, None),
            Ok(36)
        );
        assert_eq!(SkCipher::encr_key_len(EncrId::AES_CBC, Some(192)), Ok(24));
        assert_eq!(
            SkCipher::encr_key_len(EncrId::AES_CBC, Some(100)),
            Err(CryptoError::KeyLength)
        );
        assert!(matches!(
            SkCipher::encr_key_len(EncrId::TRIPLE_DES, None),
            Err(CryptoError::Unsupported(_))
        ));
        assert_eq!(SkCipher::integ_key_len(IntegId::NONE), Ok(0));
        assert_eq!(SkCipher::integ_key_len(IntegId::HMAC_SHA2_256_128), Ok(32));
        assert_eq!(SkCipher::integ_key_len(IntegId::HMAC_SHA2_384_192), Ok(48));
        assert_eq!(SkCipher::integ_key_len(IntegId::HMAC_SHA2_512_256), Ok(64));
        assert!(SkCipher::integ_key_len(IntegId::HMAC_SHA1_96).is_err());
        assert!(SkCipher::is_aead(EncrId::AES_GCM_16));
        assert!(SkCipher::is_aead(EncrId::CHACHA20_POLY1305));
        assert!(!SkCipher::is_aead(EncrId::AES_CBC));
    }

    #[test]
    fn new_rejects_bad_keys_and_combinations() {
        let k36 = [0u8; 36];
        assert!(SkCipher::new(EncrId::AES_GCM_16, Some(256), IntegId::NONE, &k36, &[]).is_ok());
        assert_eq!(
            SkCipher::new(
                EncrId::AES_GCM_16,
                Some(256),
                IntegId::NONE,
                &k36[..35],
                &[]
            )
            .err(),
            Some(CryptoError::KeyLength)
        );
        assert!(SkCipher::new(
            EncrId::AES_GCM_16,
            Some(256),
            IntegId::HMAC_SHA2_256_128,
            &k36,
            &[0; 32]
        )
        .is_err());
        assert!(SkCipher::new(EncrId::AES_CBC, Some(256), IntegId::NONE, &k36[..32], &[]).is_err());
        assert_eq!(
            SkCipher::new(
                EncrId::AES_CBC,
                Some(256),
                IntegId::HMAC_SHA2_256_128,
                &k36[..32],
                &[0; 31]
            )
            .err(),
            Some(CryptoError::KeyLength)
        );
        assert!(SkCipher::new(EncrId::AES_CTR, Some(128), IntegId::NONE, &k36[..20], &[]).is_err());
    }

    #[test]
    fn sealed_len_matches() {
        let mut rng = SeededRng::new(1);
        for i in 0..ALL.len() {
            let c = cipher(i);
            for len in [0usize, 1, 14, 15, 16, 17, 100] {
                let mut out = b"prefix".to_vec();
                c.seal(&mut rng, b"aad", &vec![0x42; len], &mut out);
                assert_eq!(out.len(), 6 + c.sealed_len(len), "{c:?} {len}");
                assert_eq!(&out[..6], b"prefix");
                assert_eq!(c.open(b"aad", &out[6..]).unwrap(), vec![0x42; len]);
            }
        }
    }

    #[test]
    fn aead_ivs_are_a_counter() {
        let mut rng = SeededRng::new(7);
        let c = cipher(2);
        let mut ivs = Vec::new();
        for _ in 0..3 {
            let mut out = Vec::new();
            c.seal(&mut rng, b"", b"x", &mut out);
            ivs.push(u64::from_be_bytes(out[..8].try_into().unwrap()));
        }
        assert_eq!(ivs[1], ivs[0].wrapping_add(1));
        assert_eq!(ivs[2], ivs[0].wrapping_add(2));
        // CBC IVs are random.
        let c = cipher(4);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c.seal(&mut rng, b"", b"x", &mut a);
        c.seal(&mut rng, b"", b"x", &mut b);
        assert_ne!(a[..16], b[..16]);
    }

    #[test]
    fn tampering_any_byte_fails_integrity() {
        let mut rng = SeededRng::new(3);
        for i in 0..ALL.len() {
            let c = cipher(i);
            let aad = b"IKE header and SK payload header".to_vec();
            let mut body = Vec::new();
            c.seal(&mut rng, &aad, b"some IKE payloads", &mut body);
            for pos in 0..aad.len() {
                let mut a = aad.clone();
                a[pos] ^= 0x80;
                assert_eq!(
                    c.open(&a, &body),
                    Err(CryptoError::Integrity),
                    "{c:?} aad {pos}"
                );
            }
            for pos in 0..body.len() {
                let mut b = body.clone();
                b[pos] ^= 0x01;
                assert_eq!(
                    c.open(&aad, &b),
                    Err(CryptoError::Integrity),
                    "{c:?} body {pos}"
                );
            }
            assert!(c.open(&aad, &body).is_ok());
        }
    }

    #[test]
    fn truncated_bodies_are_errors() {
        let mut rng = SeededRng::new(4);
        for i in 0..ALL.len() {
            let c = cipher(i);
            let mut body = Vec::new();
            c.seal(&mut rng, b"a", b"0123456789abcdef0123", &mut body);
            for len in 0..body.len() {
                assert!(c.open(b"a", &body[..len]).is_err(), "{c:?} {len}");
            }
            // Too short for IV + ICV + 1 is Malformed, not Integrity.
            let min = c.iv_len() + c.icv_len();
            assert_eq!(c.open(b"a", &body[..min]), Err(CryptoError::Malformed));
        }
        // A CBC ciphertext that is not a multiple of the block size.
        let c = cipher(4);
        assert_eq!(
            c.open(b"a", &[0u8; 16 + 17 + 16]),
            Err(CryptoError::Malformed)
        );
    }

    #[test]
    fn debug_never_prints_keys() {
        let key = [0xa5u8; 36];
        let c = SkCipher::new(EncrId::AES_GCM_16, Some(256), IntegId::NONE, &key, &[]).unwrap();
        let dbg = format!("{c:?} {c:#?}");
        assert_eq!(format!("{c:?}"), "SkCipher(AES-GCM-16-256)");
        assert!(!dbg.contains("a5") && !dbg.contains("165"));
        let c = SkCipher::new(
            EncrId::AES_CBC,
            Some(128),
            IntegId::HMAC_SHA2_256_128,
            &key[..16],
            &[0xa5; 32],
        )
        .unwrap();
        assert_eq!(format!("{c:?}"), "SkCipher(AES-CBC-128/HMAC-SHA2-256-128)");
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SkCipher>();
    }

    proptest! {
        #[test]
        fn round_trip(i in 0..ALL.len(), aad in proptest::collection::vec(any::<u8>(), 0..64),
                      pt in proptest::collection::vec(any::<u8>(), 0..300), seed in any::<u64>()) {
            let c = cipher(i);
            let mut rng = SeededRng::new(seed);
            let mut body = Vec::new();
            c.seal(&mut rng, &aad, &pt, &mut body);
            prop_assert_eq!(body.len(), c.sealed_len(pt.len()));
            prop_assert_eq!(c.open(&aad, &body).unwrap(), pt);
        }

        #[test]
        fn open_never_panics(i in 0..ALL.len(), body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = cipher(i).open(b"aad", &body);
        }
    }
}
