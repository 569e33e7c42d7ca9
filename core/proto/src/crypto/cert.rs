//! X.509 certificates for IKE: parsing (PEM/DER), chain validation to configured CAs, the
//! identity check of a peer against its certificate, and CERTREQ authority hashes.

use crate::identity::Identity;
use crate::wire::{AuthMethod, HashAlgorithm};

/// Why a certificate, key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("cannot parse certificate: {0}")]
    Parse(String),
    #[error("cannot parse private key: {0}")]
    Key(String),
    #[error("certificate chain does not lead to a trusted CA")]
    Untrusted,
    #[error("certificate expired or not yet valid")]
    Expired,
    #[error("certificate does not match identity {0}")]
    IdentityMismatch(String),
    #[error("bad signature")]
    BadSignature,
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// A parsed X.509 certificate (owns its DER).
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
}

impl Certificate {
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let _ = der;
        Err(CertError::Parse("not implemented".into()))
    }
    /// Every certificate in a PEM file (or one DER file).
    pub fn parse_pem_or_der(data: &[u8]) -> Result<Vec<Self>, CertError> {
        let _ = data;
        Err(CertError::Parse("not implemented".into()))
    }
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The subject DN in DER (for ID_DER_ASN1_DN).
    pub fn subject_der(&self) -> Vec<u8> {
        Vec::new()
    }
    /// SHA-1 of the subjectPublicKeyInfo: what CERTREQ lists for a CA (RFC 7296 §3.7).
    pub fn spki_sha1(&self) -> [u8; 20] {
        [0; 20]
    }
    /// Whether `id` names this certificate: the subject DN, or a subjectAltName (DNS, email,
    /// IP address).
    pub fn matches_identity(&self, id: &Identity) -> bool {
        let _ = id;
        false
    }
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        Err(CertError::Unsupported("not implemented".into()))
    }
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificate({} bytes)", self.der.len())
    }
}

/// Checks that `end_entity` chains through `intermediates` to one of `anchors`, every
/// signature valid and (when `unix_time` is given) every certificate valid at that time.
pub fn verify_chain(
    end_entity: &Certificate,
    intermediates: &[Certificate],
    anchors: &[Certificate],
    unix_time: Option<u64>,
) -> Result<(), CertError> {
    let _ = (end_entity, intermediates, anchors, unix_time);
    Err(CertError::Untrusted)
}

/// A peer's public key, for verifying its AUTH payload.
#[derive(Clone, Debug)]
pub struct PublicKey {
    _private: (),
}

impl PublicKey {
    /// Verifies AUTH data for `method` (RSA_SIG, ECDSA_SHA*_P*, DIGITAL_SIGNATURE per RFC 7427
    /// with RSA PKCS#1 v1.5, RSA-PSS, ECDSA P-256/P-384 and Ed25519) over `octets`.
    pub fn verify_auth(&self, method: AuthMethod, auth_data: &[u8], octets: &[u8]) -> Result<(), CertError> {
        let _ = (method, auth_data, octets);
        Err(CertError::BadSignature)
    }
}

/// The hash algorithms we announce in SIGNATURE_HASH_ALGORITHMS.
pub fn supported_hashes() -> &'static [HashAlgorithm] {
    &[]
}
