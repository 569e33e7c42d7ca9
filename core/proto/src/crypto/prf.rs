//! PRFs (HMAC-SHA2-256/384/512, RFC 4868) and prf+ (RFC 7296 §2.13).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroize;

use super::error::CryptoError;
use super::secret::Secret;
use crate::wire::PrfId;

/// prf+ may run at most this many iterations (the counter is one octet).
pub const PRF_PLUS_MAX_BLOCKS: usize = 255;

/// A negotiated PRF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prf(PrfId);

/// HMAC over the concatenation of `data` with a key of any length.
fn hmac_concat<M: Mac + KeyInit>(key: &[u8], data: &[&[u8]]) -> Secret {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match <M as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Secret::default(),
    };
    for d in data {
        mac.update(d);
    }
    let out = mac.finalize().into_bytes();
    Secret::from_slice(&out)
}

impl Prf {
    /// The PRF for a transform ID; weak or unknown ones are `Unsupported`.
    pub fn new(id: PrfId) -> Result<Self, CryptoError> {
        match id {
            PrfId::HMAC_SHA2_256 | PrfId::HMAC_SHA2_384 | PrfId::HMAC_SHA2_512 => Ok(Self(id)),
            _ => Err(CryptoError::Unsupported(format!("{id}"))),
        }
    }
    pub fn id(&self) -> PrfId {
        self.0
    }
    /// Output (and preferred key) length in bytes.
    pub fn output_len(&self) -> usize {
        match self.0 {
            PrfId::HMAC_SHA2_384 => 48,
            PrfId::HMAC_SHA2_512 => 64,
            _ => 32,
        }
    }
    /// prf(key, data[0] | data[1] | ...).
    pub fn compute(&self, key: &[u8], data: &[&[u8]]) -> Secret {
        match self.0 {
            PrfId::HMAC_SHA2_384 => hmac_concat::<Hmac<Sha384>>(key, data),
            PrfId::HMAC_SHA2_512 => hmac_concat::<Hmac<Sha512>>(key, data),
            _ => hmac_concat::<Hmac<Sha256>>(key, data),
        }
    }
    /// prf+(key, seed) truncated to `len` bytes (at most 255 iterations).
    ///
    /// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n); the output is T1 | T2 | ...
    pub fn prf_plus(&self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Secret, CryptoError> {
        let block = self.output_len();
        let blocks = len.div_ceil(block);
        if blocks > PRF_PLUS_MAX_BLOCKS {
            return Err(CryptoError::KeyLength);
        }
        let mut out = Vec::with_capacity(blocks * block);
        let mut prev = Secret::default();
        for n in 1..=blocks {
            // `blocks` <= 255, so the counter fits in one octet.
            let counter = [u8::try_from(n).map_err(|_| CryptoError::KeyLength)?];
            let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
            parts.push(prev.as_bytes());
            parts.extend_from_slice(seed);
            parts.push(&counter);
            let t = self.compute(key, &parts);
            out.extend_from_slice(t.as_bytes());
            prev = t;
        }
        let result = Secret::from_slice(out.get(..len).unwrap_or(&out));
        out.zeroize();
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prf(id: PrfId) -> Prf {
        Prf::new(id).unwrap()
    }

    #[test]
    fn only_sha2_supported() {
        assert!(Prf::new(PrfId::HMAC_SHA1).is_err());
        assert!(Prf::new(PrfId::HMAC_MD5).is_err());
        assert!(Prf::new(PrfId::AES128_XCBC).is_err());
        assert!(Prf::new(PrfId(999)).is_err());
        assert_eq!(prf(PrfId::HMAC_SHA2_256).output_len(), 32);
        assert_eq!(prf(PrfId::HMAC_SHA2_384).output_len(), 48);
        assert_eq!(prf(PrfId::HMAC_SHA2_512).output_len(), 64);
        assert_eq!(prf(PrfId::HMAC_SHA2_384).id(), PrfId::HMAC_SHA2_384);
    }

    // RFC 4231 test case 2 (key "Jefe"), split data to exercise the concatenation.
    #[test]
    fn rfc4231_case2() {
        let key = b"Jefe";
        let data: [&[u8]; 2] = [b"what do ya want ", b"for nothing?"];
        assert_eq!(
            hex::encode(prf(PrfId::HMAC_SHA2_256).compute(key, &data).as_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(prf(PrfId::HMAC_SHA2_384).compute(key, &data).as_bytes()),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649"
        );
        assert_eq!(
            hex::encode(prf(PrfId::HMAC_SHA2_512).compute(key, &data).as_bytes()),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    // RFC 4231 test case 6: a key longer than the block size.
    #[test]
    fn rfc4231_case6_long_key() {
        let key = [0xaau8; 131];
        let data: [&[u8]; 1] = [b"Test Using Larger Than Block-Size Key - Hash Key First"];
        assert_eq!(
            hex::encode(prf(PrfId::HMAC_SHA2_256).compute(&key, &data).as_bytes()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn prf_plus_matches_definition() {
        let p = prf(PrfId::HMAC_SHA2_256);
        let key = b"key";
        let seed: [&[u8]; 2] = [b"seed-", b"part"];
        let out = p.prf_plus(key, &seed, 80).unwrap();
        let t1 = p.compute(key, &[b"seed-part", &[1]]);
        let t2 = p.compute(key, &[t1.as_bytes(), b"seed-part", &[2]]);
        let t3 = p.compute(key, &[t2.as_bytes(), b"seed-part", &[3]]);
        let mut expect = Vec::new();
        expect.extend_from_slice(t1.as_bytes());
        expect.extend_from_slice(t2.as_bytes());
        expect.extend_from_slice(&t3.as_bytes()[..16]);
        assert_eq!(out.as_bytes(), &expect[..]);
        // Shorter outputs are prefixes.
        assert_eq!(p.prf_plus(key, &seed, 5).unwrap().as_bytes(), &expect[..5]);
        assert!(p.prf_plus(key, &seed, 0).unwrap().is_empty());
    }

    #[test]
    fn prf_plus_limit() {
        for id in [
            PrfId::HMAC_SHA2_256,
            PrfId::HMAC_SHA2_384,
            PrfId::HMAC_SHA2_512,
        ] {
            let p = prf(id);
            let max = 255 * p.output_len();
            assert_eq!(p.prf_plus(b"k", &[b"s"], max).unwrap().len(), max);
            assert_eq!(
                p.prf_plus(b"k", &[b"s"], max + 1),
                Err(CryptoError::KeyLength)
            );
        }
    }
}
