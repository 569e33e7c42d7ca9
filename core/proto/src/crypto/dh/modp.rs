//! The MODP groups 14 and 15 (RFC 3526): 2048- and 3072-bit safe primes with generator 2.
//! Exponentiation uses crypto-bigint's Montgomery arithmetic, constant-time in the private
//! exponent; peer values are range-checked before use.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::BoxedUint;
use zeroize::Zeroize;

use super::KeyExchange;
use crate::crypto::error::CryptoError;
use crate::crypto::secret::Secret;
use crate::rng::Rng;
use crate::wire::DhGroup;

/// Bits of the random private exponent (at least twice the groups' ~128-bit strength).
const EXPONENT_BITS: u32 = 512;

/// RFC 3526 §3: 2^2048 - 2^1984 - 1 + 2^64 * ([2^1918 pi] + 124476).
pub(super) const MODP_2048_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

/// RFC 3526 §4: 2^3072 - 2^3008 - 1 + 2^64 * ([2^2942 pi] + 1690314).
pub(super) const MODP_3072_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// The prime of a MODP group as big-endian bytes and its bit length.
pub(super) fn prime(group: DhGroup) -> Option<(Vec<u8>, u32)> {
    let (hex, bits) = match group {
        DhGroup::MODP_2048 => (MODP_2048_HEX, 2048),
        DhGroup::MODP_3072 => (MODP_3072_HEX, 3072),
        _ => return None,
    };
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    Some((bytes, bits))
}

/// An ephemeral MODP key pair.
pub(super) struct ModpKeyExchange {
    group: DhGroup,
    /// p - 1, big-endian, for the range check of peer values.
    p_minus_1: Vec<u8>,
    params: BoxedMontyParams,
    bits: u32,
    exponent: BoxedUint,
    public: Vec<u8>,
}

impl ModpKeyExchange {
    pub(super) fn new(group: DhGroup, rng: &mut dyn Rng) -> Result<Self, CryptoError> {
        let (p, bits) = prime(group).ok_or_else(|| CryptoError::Unsupported(format!("{group}")))?;
        let modulus = BoxedUint::from_be_slice(&p, bits).map_err(|_| CryptoError::KeyLength)?;
        let odd = Option::<crypto_bigint::Odd<BoxedUint>>::from(modulus.to_odd())
            .ok_or(CryptoError::KeyLength)?;
        let params = BoxedMontyParams::new(odd);
        let mut p_minus_1 = p;
        // The prime ends in 0xff, so subtracting one touches only the last byte.
        if let Some(last) = p_minus_1.last_mut() {
            *last = last.wrapping_sub(1);
        }
        let mut x = vec![0u8; (EXPONENT_BITS / 8) as usize];
        rng.fill(&mut x);
        let exponent = BoxedUint::from_be_slice(&x, bits).map_err(|_| CryptoError::KeyLength);
        x.zeroize();
        let exponent = exponent?;
        let g = BoxedMontyForm::new(
            BoxedUint::from_be_slice(&[2], bits).map_err(|_| CryptoError::KeyLength)?,
            &params,
        );
        let mut kx = Self {
            group,
            p_minus_1,
            params,
            bits,
            exponent,
            public: Vec::new(),
        };
        kx.public = kx.pow_to_bytes(&g);
        Ok(kx)
    }

    /// base^x mod p, left-padded to the prime's length.
    fn pow_to_bytes(&self, base: &BoxedMontyForm) -> Vec<u8> {
        let mut m = base.pow_bounded_exp(&self.exponent, EXPONENT_BITS);
        let mut y = m.retrieve();
        m.zeroize();
        let bytes = y.to_be_bytes();
        y.zeroize();
        let len = self.p_minus_1.len();
        let mut out = vec![0u8; len];
        let take = bytes.len().min(len);
        let (dst, src) = (out.len() - take, bytes.len() - take);
        if let (Some(d), Some(s)) = (out.get_mut(dst..), bytes.get(src..)) {
            d.copy_from_slice(s);
        }
        let mut bytes = bytes;
        bytes.zeroize();
        out
    }
}

impl KeyExchange for ModpKeyExchange {
    fn group(&self) -> DhGroup {
        self.group
    }
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn shared_secret(&self, peer: &[u8]) -> Result<Secret, CryptoError> {
        // Exactly the prime's length, and 1 < y < p - 1 (big-endian byte strings of equal
        // length compare like the numbers they encode).
        if peer.len() != self.p_minus_1.len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        let mut one = vec![0u8; peer.len()];
        if let Some(last) = one.last_mut() {
            *last = 1;
        }
        if peer <= one.as_slice() || peer >= self.p_minus_1.as_slice() {
            return Err(CryptoError::InvalidPublicValue);
        }
        let y = BoxedUint::from_be_slice(peer, self.bits)
            .map_err(|_| CryptoError::InvalidPublicValue)?;
        let base = BoxedMontyForm::new(y, &self.params);
        Ok(Secret::new(self.pow_to_bytes(&base)))
    }
}

impl Drop for ModpKeyExchange {
    fn drop(&mut self) {
        self.exponent.zeroize();
    }
}
