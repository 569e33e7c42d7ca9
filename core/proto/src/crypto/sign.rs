//! Our private key and the AUTH payload we sign with it: RFC 7427 digital signatures with
//! RSA (PKCS#1 v1.5), ECDSA P-256/P-384 and Ed25519, and the classic ECDSA methods of
//! RFC 4754 for peers that announce no signature hashes.

use std::convert::Infallible;

use rsa::rand_core::{TryCryptoRng, TryRng};

use super::cert::pem;
use super::cert::sigalg::{self, Hash};
use super::cert::{CertError, Certificate, KeyKind, PublicKey};
use crate::rng::Rng;
use crate::wire::{AuthMethod, HashAlgorithm};

/// A private key loaded from PEM (PKCS#1, SEC1 or PKCS#8). Zeroized on drop, never printed.
///
/// Every variant's key type zeroizes its secret on drop itself (`rsa::PrivateKey`,
/// `ecdsa::SigningKey`, `ed25519_dalek::SigningKey` with its `zeroize` feature); the DER read
/// from the PEM is held in `Zeroizing` buffers.
pub struct PrivateKey {
    kind: PrivKind,
}

enum PrivKind {
    Rsa(Box<rsa::PrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

// Compile-time proof that every key type wipes itself.
const _: () = {
    const fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroize_on_drop::<rsa::PrivateKey>();
    zeroize_on_drop::<p256::ecdsa::SigningKey>();
    zeroize_on_drop::<p384::ecdsa::SigningKey>();
    zeroize_on_drop::<ed25519_dalek::SigningKey>();
};

impl PrivateKey {
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let blocks = pem::blocks(pem).map_err(CertError::Key)?;
        for block in &blocks {
            let kind = match block.label.as_str() {
                "RSA PRIVATE KEY" => Some(from_pkcs1(&block.der)?),
                "EC PRIVATE KEY" => Some(from_sec1(&block.der)?),
                "PRIVATE KEY" => Some(from_pkcs8(&block.der)?),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(CertError::Key(
                        "encrypted private keys are not supported".into(),
                    ))
                }
                // "EC PARAMETERS" and anything else around the key.
                _ => None,
            };
            if let Some(kind) = kind {
                return Ok(PrivateKey { kind });
            }
        }
        Err(CertError::Key("no private key block in PEM".into()))
    }
    /// The public half of this key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_kind(match &self.kind {
            PrivKind::Rsa(k) => KeyKind::Rsa(k.to_public_key()),
            PrivKind::P256(k) => KeyKind::P256(*k.verifying_key()),
            PrivKind::P384(k) => KeyKind::P384(*k.verifying_key()),
            PrivKind::Ed25519(k) => KeyKind::Ed25519(k.verifying_key()),
        })
    }
    /// Whether `cert` carries this key's public half.
    pub fn matches(&self, cert: &Certificate) -> bool {
        cert.public_key().is_ok_and(|k| k == self.public_key())
    }
    /// Signs `octets` for an AUTH payload: returns the method (DIGITAL_SIGNATURE when the peer
    /// announced hash algorithms, else the classic method for the key type) and the AUTH data
    /// (for DIGITAL_SIGNATURE: the length-prefixed AlgorithmIdentifier then the signature).
    ///
    /// RSA and Ed25519 need RFC 7427 (RSA_SIG would mean SHA-1; Ed25519 needs IDENTITY in
    /// `peer_hashes`). ECDSA falls back to ECDSA_SHA256_P256 / ECDSA_SHA384_P384 when the
    /// peer announced no hash that fits.
    pub fn sign_auth(
        &self,
        octets: &[u8],
        peer_hashes: &[HashAlgorithm],
        rng: &mut dyn Rng,
    ) -> Result<(AuthMethod, Vec<u8>), CertError> {
        let pick = |order: &[(HashAlgorithm, Hash)]| {
            order
                .iter()
                .find(|(h, _)| peer_hashes.contains(h))
                .map(|(_, h)| *h)
        };
        let sha256_first = [
            (HashAlgorithm::SHA2_256, Hash::Sha256),
            (HashAlgorithm::SHA2_384, Hash::Sha384),
            (HashAlgorithm::SHA2_512, Hash::Sha512),
        ];
        let sha384_first = [
            (HashAlgorithm::SHA2_384, Hash::Sha384),
            (HashAlgorithm::SHA2_512, Hash::Sha512),
            (HashAlgorithm::SHA2_256, Hash::Sha256),
        ];
        let sign_err = |e: &dyn std::fmt::Display| CertError::Key(format!("signing failed: {e}"));
        match &self.kind {
            PrivKind::Rsa(key) => {
                if peer_hashes.is_empty() {
                    return Err(CertError::Unsupported(
                        "RSA signatures need RFC 7427 (the peer announced no signature hashes)"
                            .into(),
                    ));
                }
                let hash = pick(&sha256_first).ok_or_else(|| {
                    CertError::Unsupported("no SHA-2 hash in common with the peer".into())
                })?;
                let (scheme, alg_id) = match hash {
                    Hash::Sha256 => (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                        sigalg::ALGID_SHA256_RSA,
                    ),
                    Hash::Sha384 => (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                        sigalg::ALGID_SHA384_RSA,
                    ),
                    Hash::Sha512 => (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                        sigalg::ALGID_SHA512_RSA,
                    ),
                };
                let sig = key
                    .sign_with_rng(&mut RngAdapter(rng), scheme, &hash.digest(octets))
                    .map_err(|e| sign_err(&e))?;
                Ok((
                    AuthMethod::DIGITAL_SIGNATURE,
                    digital_signature(alg_id, &sig),
                ))
            }
            PrivKind::P256(key) => match pick(&sha256_first) {
                Some(hash) => {
                    let sig: p256::ecdsa::Signature = sign_prehash(key, &hash.digest(octets))?;
                    Ok((
                        AuthMethod::DIGITAL_SIGNATURE,
                        digital_signature(ecdsa_alg_id(hash), sig.to_der().as_bytes()),
                    ))
                }
                None => {
                    let sig: p256::ecdsa::Signature =
                        sign_prehash(key, &Hash::Sha256.digest(octets))?;
                    Ok((AuthMethod::ECDSA_SHA256_P256, sig.to_bytes().to_vec()))
                }
            },
            PrivKind::P384(key) => match pick(&sha384_first) {
                Some(hash) => {
                    let sig: p384::ecdsa::Signature = sign_prehash(key, &hash.digest(octets))?;
                    Ok((
                        AuthMethod::DIGITAL_SIGNATURE,
                        digital_signature(ecdsa_alg_id(hash), sig.to_der().as_bytes()),
                    ))
                }
                None => {
                    let sig: p384::ecdsa::Signature =
                        sign_prehash(key, &Hash::Sha384.digest(octets))?;
                    Ok((AuthMethod::ECDSA_SHA384_P384, sig.to_bytes().to_vec()))
                }
            },
            PrivKind::Ed25519(key) => {
                if !peer_hashes.contains(&HashAlgorithm::IDENTITY) {
                    return Err(CertError::Unsupported(
                        "Ed25519 needs the peer to announce the IDENTITY hash (RFC 8420)".into(),
                    ));
                }
                use ed25519_dalek::Signer;
                let sig = key.sign(octets);
                Ok((
                    AuthMethod::DIGITAL_SIGNATURE,
                    digital_signature(sigalg::ALGID_ED25519, &sig.to_bytes()),
                ))
            }
        }
    }
}

fn sign_prehash<S, K: rsa::signature::hazmat::PrehashSigner<S>>(
    key: &K,
    prehash: &[u8],
) -> Result<S, CertError> {
    key.sign_prehash(prehash)
        .map_err(|e| CertError::Key(format!("signing failed: {e}")))
}

fn ecdsa_alg_id(hash: Hash) -> &'static [u8] {
    match hash {
        Hash::Sha256 => sigalg::ALGID_ECDSA_SHA256,
        Hash::Sha384 => sigalg::ALGID_ECDSA_SHA384,
        Hash::Sha512 => sigalg::ALGID_ECDSA_SHA512,
    }
}

/// RFC 7427 §3 AUTH data: the AlgorithmIdentifier's length in one octet, the
/// AlgorithmIdentifier, then the signature.
fn digital_signature(alg_id: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + alg_id.len() + sig.len());
    // Our AlgorithmIdentifiers are constants well below 256 bytes.
    out.push(u8::try_from(alg_id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(alg_id);
    out.extend_from_slice(sig);
    out
}

fn from_pkcs1(der: &[u8]) -> Result<PrivKind, CertError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    rsa::PrivateKey::from_pkcs1_der(der)
        .map(|k| PrivKind::Rsa(Box::new(k)))
        .map_err(|e| CertError::Key(format!("invalid PKCS#1 RSA key: {e}")))
}

fn from_sec1(der: &[u8]) -> Result<PrivKind, CertError> {
    if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
        return Ok(PrivKind::P256(k.into()));
    }
    if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
        return Ok(PrivKind::P384(k.into()));
    }
    Err(CertError::Key(
        "invalid or unsupported SEC1 EC key (P-256 and P-384 only)".into(),
    ))
}

fn from_pkcs8(der: &[u8]) -> Result<PrivKind, CertError> {
    use pkcs8::DecodePrivateKey;
    if let Ok(k) = rsa::PrivateKey::from_pkcs8_der(der) {
        return Ok(PrivKind::Rsa(Box::new(k)));
    }
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
        return Ok(PrivKind::P256(k));
    }
    if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
        return Ok(PrivKind::P384(k));
    }
    if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
        return Ok(PrivKind::Ed25519(Box::new(k)));
    }
    Err(CertError::Key(
        "invalid or unsupported PKCS#8 key (RSA, EC P-256/P-384, Ed25519)".into(),
    ))
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// Lends our injected [`Rng`] to RustCrypto APIs, which take `rand_core` generators.
pub(crate) struct RngAdapter<'a>(pub &'a mut dyn Rng);

impl TryRng for RngAdapter<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

/// Our `Rng` contract is "cryptographically strong".
impl TryCryptoRng for RngAdapter<'_> {}
