//! ML-KEM (FIPS 203) as an IKEv2 key exchange (draft-ietf-ipsecme-ikev2-mlkem, transform IDs
//! 35-37): the initiator sends its encapsulation key, the responder answers with a ciphertext
//! and both ends get a 32-byte shared secret. Only ever an additional key exchange of RFC 9370
//! in Roam (IKE_INTERMEDIATE, CREATE_CHILD_SA), never the one of IKE_SA_INIT.
//!
//! The initiator side is a [`KeyExchange`] like the DH groups (public value out, peer's value
//! in); the responder side is [`encapsulate`]. Peer values of the wrong length are
//! `CryptoError::BadLength`; an encapsulation key failing FIPS 203's modulus check is
//! `InvalidPublicValue`. Decapsulation keys are zeroized on drop (ml-kem's `zeroize`).

use ml_kem::array::Array;
use ml_kem::kem::Decapsulate;
use ml_kem::{DecapsulationKey, EncapsulationKey, KeyExport, MlKem1024, MlKem512, MlKem768};
use zeroize::Zeroize;

use super::dh::KeyExchange;
use super::error::CryptoError;
use super::secret::Secret;
use crate::rng::Rng;
use crate::wire::DhGroup;

/// Whether `group` is one of the ML-KEM parameter sets.
pub fn is_kem(group: DhGroup) -> bool {
    matches!(
        group,
        DhGroup::ML_KEM_512 | DhGroup::ML_KEM_768 | DhGroup::ML_KEM_1024
    )
}

/// Length of the encapsulation key (the initiator's KE data) of `group`.
pub fn encapsulation_key_len(group: DhGroup) -> Option<usize> {
    match group {
        DhGroup::ML_KEM_512 => Some(800),
        DhGroup::ML_KEM_768 => Some(1184),
        DhGroup::ML_KEM_1024 => Some(1568),
        _ => None,
    }
}

/// Length of the ciphertext (the responder's KE data) of `group`.
pub fn ciphertext_len(group: DhGroup) -> Option<usize> {
    match group {
        DhGroup::ML_KEM_512 => Some(768),
        DhGroup::ML_KEM_768 => Some(1088),
        DhGroup::ML_KEM_1024 => Some(1568),
        _ => None,
    }
}

fn check_len(what: &'static str, got: usize, expected: Option<usize>) -> Result<(), CryptoError> {
    match expected {
        Some(e) if e == got => Ok(()),
        Some(e) => Err(CryptoError::BadLength {
            what,
            got,
            expected: e,
        }),
        None => Err(CryptoError::Unsupported("not an ML-KEM group".into())),
    }
}

/// The decapsulation key of one parameter set.
enum Dk {
    K512(Box<DecapsulationKey<MlKem512>>),
    K768(Box<DecapsulationKey<MlKem768>>),
    K1024(Box<DecapsulationKey<MlKem1024>>),
}

/// The initiator's ephemeral ML-KEM key pair.
pub struct MlKem {
    group: DhGroup,
    dk: Dk,
    public: Vec<u8>,
}

impl MlKem {
    /// A fresh key pair: the 64-byte seed (d | z) comes from `rng`.
    pub fn generate(group: DhGroup, rng: &mut dyn Rng) -> Result<Self, CryptoError> {
        let mut seed = [0u8; 64];
        rng.fill(&mut seed);
        let kp = Self::from_seed(group, &seed);
        seed.zeroize();
        kp
    }

    /// The key pair of ML-KEM.KeyGen_internal(d, z) with `seed` = d | z (FIPS 203 §6.1).
    pub fn from_seed(group: DhGroup, seed: &[u8; 64]) -> Result<Self, CryptoError> {
        let s = Array::from(*seed);
        let (dk, public) = match group {
            DhGroup::ML_KEM_512 => {
                let dk = DecapsulationKey::<MlKem512>::from_seed(s);
                let p = dk.encapsulation_key().to_bytes().to_vec();
                (Dk::K512(Box::new(dk)), p)
            }
            DhGroup::ML_KEM_768 => {
                let dk = DecapsulationKey::<MlKem768>::from_seed(s);
                let p = dk.encapsulation_key().to_bytes().to_vec();
                (Dk::K768(Box::new(dk)), p)
            }
            DhGroup::ML_KEM_1024 => {
                let dk = DecapsulationKey::<MlKem1024>::from_seed(s);
                let p = dk.encapsulation_key().to_bytes().to_vec();
                (Dk::K1024(Box::new(dk)), p)
            }
            _ => return Err(CryptoError::Unsupported(format!("{group} is not ML-KEM"))),
        };
        Ok(Self { group, dk, public })
    }

    /// The shared secret of the responder's ciphertext (ML-KEM.Decaps; a forged ciphertext
    /// gives an unrelated secret, by implicit rejection, and fails later at AUTH).
    pub fn decapsulate(&self, ct: &[u8]) -> Result<Secret, CryptoError> {
        check_len("ML-KEM ciphertext", ct.len(), ciphertext_len(self.group))?;
        let bad = |_| CryptoError::Malformed;
        let k = match &self.dk {
            Dk::K512(dk) => dk.decapsulate_slice(ct).map_err(bad)?,
            Dk::K768(dk) => dk.decapsulate_slice(ct).map_err(bad)?,
            Dk::K1024(dk) => dk.decapsulate_slice(ct).map_err(bad)?,
        };
        Ok(Secret::from_slice(&k))
    }
}

impl KeyExchange for MlKem {
    fn group(&self) -> DhGroup {
        self.group
    }
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn shared_secret(&self, peer: &[u8]) -> Result<Secret, CryptoError> {
        self.decapsulate(peer)
    }
}

/// Responder: encapsulates to the initiator's key `ek`; returns the ciphertext (our KE data)
/// and the shared secret.
pub fn encapsulate(
    group: DhGroup,
    ek: &[u8],
    rng: &mut dyn Rng,
) -> Result<(Vec<u8>, Secret), CryptoError> {
    let mut m = [0u8; 32];
    rng.fill(&mut m);
    let r = encapsulate_deterministic(group, ek, &m);
    m.zeroize();
    r
}

/// ML-KEM.Encaps_internal(ek, m): `encapsulate` with the randomness `m` given (known-answer
/// tests only; reusing `m` is catastrophic).
pub fn encapsulate_deterministic(
    group: DhGroup,
    ek: &[u8],
    m: &[u8; 32],
) -> Result<(Vec<u8>, Secret), CryptoError> {
    check_len(
        "ML-KEM encapsulation key",
        ek.len(),
        encapsulation_key_len(group),
    )?;
    let m = Array::from(*m);
    macro_rules! encaps {
        ($p:ty) => {{
            let key = Array::try_from(ek).map_err(|_| CryptoError::InvalidPublicValue)?;
            let ek =
                EncapsulationKey::<$p>::new(&key).map_err(|_| CryptoError::InvalidPublicValue)?;
            let (ct, k) = ek.encapsulate_deterministic(&m);
            (ct.to_vec(), Secret::from_slice(&k))
        }};
    }
    Ok(match group {
        DhGroup::ML_KEM_512 => encaps!(MlKem512),
        DhGroup::ML_KEM_768 => encaps!(MlKem768),
        DhGroup::ML_KEM_1024 => encaps!(MlKem1024),
        _ => return Err(CryptoError::Unsupported(format!("{group} is not ML-KEM"))),
    })
}

#[cfg(test)]
mod tests;
