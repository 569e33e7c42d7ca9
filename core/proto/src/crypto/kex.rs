//! Any key exchange method by its transform ID, for the additional key exchanges of RFC 9370
//! (IKE_INTERMEDIATE and, later, IKE_FOLLOWUP_KE): a DH group (both ends send a public value)
//! or ML-KEM (the initiator sends an encapsulation key, the responder a ciphertext). The
//! initiator side is a [`KeyExchange`]; the responder side is [`respond`], which needs the
//! initiator's value first.

use super::dh::{self, KeyExchange};
use super::error::CryptoError;
use super::kem;
use super::secret::Secret;
use crate::rng::Rng;
use crate::wire::DhGroup;

/// Whether Roam implements `group` as an additional key exchange.
pub fn is_supported(group: DhGroup) -> bool {
    dh::is_supported(group) || kem::is_kem(group)
}

/// Length of the initiator's KE data for `group`.
pub fn initiator_len(group: DhGroup) -> Option<usize> {
    dh::public_key_len(group).or_else(|| kem::encapsulation_key_len(group))
}

/// Length of the responder's KE data for `group`.
pub fn responder_len(group: DhGroup) -> Option<usize> {
    dh::public_key_len(group).or_else(|| kem::ciphertext_len(group))
}

/// The initiator's side: a fresh key pair (DH) or decapsulation key (ML-KEM).
pub fn initiate(group: DhGroup, rng: &mut dyn Rng) -> Result<Box<dyn KeyExchange>, CryptoError> {
    if kem::is_kem(group) {
        Ok(Box::new(kem::MlKem::generate(group, rng)?))
    } else {
        dh::new_key_exchange(group, rng)
    }
}

/// The responder's side: our KE data for the initiator's `peer` value, and the shared secret.
pub fn respond(
    group: DhGroup,
    peer: &[u8],
    rng: &mut dyn Rng,
) -> Result<(Vec<u8>, Secret), CryptoError> {
    if kem::is_kem(group) {
        kem::encapsulate(group, peer, rng)
    } else {
        let ours = dh::new_key_exchange(group, rng)?;
        let secret = ours.shared_secret(peer)?;
        Ok((ours.public_key().to_vec(), secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn every_method_agrees_both_ways() {
        let mut rng = SeededRng::new(7);
        for g in [
            DhGroup::CURVE25519,
            DhGroup::ECP_384,
            DhGroup::ML_KEM_512,
            DhGroup::ML_KEM_768,
            DhGroup::ML_KEM_1024,
        ] {
            assert!(is_supported(g));
            let i = initiate(g, &mut rng).unwrap();
            assert_eq!(Some(i.public_key().len()), initiator_len(g), "{g}");
            let (r_pub, r_secret) = respond(g, i.public_key(), &mut rng).unwrap();
            assert_eq!(Some(r_pub.len()), responder_len(g), "{g}");
            assert_eq!(i.shared_secret(&r_pub).unwrap(), r_secret, "{g}");
        }
        assert!(!is_supported(DhGroup(1234)));
        assert!(initiate(DhGroup::CURVE448, &mut rng).is_err());
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        let mut rng = SeededRng::new(8);
        let i = initiate(DhGroup::ML_KEM_768, &mut rng).unwrap();
        let short = &i.public_key()[..100];
        assert_eq!(
            respond(DhGroup::ML_KEM_768, short, &mut rng),
            Err(CryptoError::BadLength {
                what: "ML-KEM encapsulation key",
                got: 100,
                expected: 1184
            })
        );
        assert_eq!(
            i.shared_secret(&[0u8; 1087]),
            Err(CryptoError::BadLength {
                what: "ML-KEM ciphertext",
                got: 1087,
                expected: 1088
            })
        );
        // A 1024 key offered for 768 is refused by its length too.
        let big = initiate(DhGroup::ML_KEM_1024, &mut rng).unwrap();
        assert!(matches!(
            respond(DhGroup::ML_KEM_768, big.public_key(), &mut rng),
            Err(CryptoError::BadLength { .. })
        ));
        assert!(matches!(
            respond(DhGroup::CURVE25519, &[9u8; 31], &mut rng),
            Err(CryptoError::InvalidPublicValue)
        ));
    }
}
