//! The NIST curve groups 19 and 20 (RFC 5903): KE data is x | y without the SEC1 0x04 prefix,
//! and the shared secret is the x coordinate of the product.

use p256::elliptic_curve::sec1::ToSec1Point;
use zeroize::Zeroize;

use super::KeyExchange;
use crate::crypto::error::CryptoError;
use crate::crypto::secret::Secret;
use crate::rng::Rng;
use crate::wire::DhGroup;

/// Tries to draw a valid scalar this many times before giving up (a failure has probability
/// ~2^-32 per try for P-256 and less for P-384; repeated failure means a broken RNG).
const MAX_TRIES: usize = 16;

macro_rules! ecp_group {
    ($name:ident, $curve:ident, $group:expr, $len:expr) => {
        /// An ephemeral key pair on this curve.
        pub(super) struct $name {
            secret: $curve::SecretKey,
            public: Vec<u8>,
        }

        impl $name {
            /// Coordinate length in bytes.
            pub(super) const COORD_LEN: usize = $len;

            pub(super) fn new(rng: &mut dyn Rng) -> Result<Self, CryptoError> {
                let mut bytes = [0u8; $len];
                for _ in 0..MAX_TRIES {
                    rng.fill(&mut bytes);
                    let key = $curve::SecretKey::from_slice(&bytes);
                    bytes.zeroize();
                    if let Ok(secret) = key {
                        let point = secret.public_key().as_affine().to_sec1_point(false);
                        // Uncompressed SEC1: 0x04 | x | y.
                        let public = point.as_bytes().get(1..).unwrap_or_default().to_vec();
                        return Ok(Self { secret, public });
                    }
                }
                Err(CryptoError::KeyLength)
            }
        }

        impl KeyExchange for $name {
            fn group(&self) -> DhGroup {
                $group
            }
            fn public_key(&self) -> &[u8] {
                &self.public
            }
            fn shared_secret(&self, peer: &[u8]) -> Result<Secret, CryptoError> {
                if peer.len() != 2 * $len {
                    return Err(CryptoError::InvalidPublicValue);
                }
                let mut sec1 = Vec::with_capacity(1 + peer.len());
                sec1.push(0x04);
                sec1.extend_from_slice(peer);
                // Decoding checks the point is on the curve and not the identity.
                let point = $curve::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let shared = self.secret.diffie_hellman(&point);
                Ok(Secret::from_slice(shared.raw_secret_bytes()))
            }
        }
    };
}

ecp_group!(Ecp256, p256, DhGroup::ECP_256, 32);
ecp_group!(Ecp384, p384, DhGroup::ECP_384, 48);
