//! X.509 certificates for IKE: parsing (PEM/DER), chain validation to configured CAs, the
//! identity check of a peer against its certificate, and CERTREQ authority hashes.

use std::net::IpAddr;

use der::{Decode, Reader, SliceReader};
use sha1::{Digest, Sha1};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::Identity;
use crate::wire::{AuthMethod, HashAlgorithm};

pub(crate) mod pem;
pub(crate) mod sigalg;

use sigalg::{Hash, SigAlg};

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

/// The largest certificate we accept.
const MAX_CERT_LEN: usize = 64 * 1024;
/// The most certificates between an end entity and its trust anchor (anchor included).
const MAX_DEPTH: usize = 8;

/// A parsed X.509 certificate (owns its DER).
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Vec<u8>,
    sig_alg: Vec<u8>,
    signature: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    spki: Vec<u8>,
    not_before: i64,
    not_after: i64,
    /// basicConstraints cA, and its pathLenConstraint.
    ca: Option<Option<u32>>,
    sans: Vec<San>,
    subject_key_id: Option<Vec<u8>>,
}

/// The subjectAltName entries we match identities against.
#[derive(Clone, Debug, PartialEq, Eq)]
enum San {
    Dns(String),
    Email(String),
    Ip(Vec<u8>),
}

impl Certificate {
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        if der.len() > MAX_CERT_LEN {
            return Err(CertError::Parse("certificate too large".into()));
        }
        let (tbs, sig_alg, signature) = split_signed(der)?;
        let (rest, x509) = X509Certificate::from_der(der)
            .map_err(|e| CertError::Parse(format!("invalid X.509: {e}")))?;
        if !rest.is_empty() {
            return Err(CertError::Parse("trailing data after certificate".into()));
        }
        let tbs_cert = &x509.tbs_certificate;
        let ca = match tbs_cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => Some(bc.value.path_len_constraint),
            Ok(_) => None,
            Err(_) => return Err(CertError::Parse("duplicate basicConstraints".into())),
        };
        let mut sans = Vec::new();
        let mut subject_key_id = None;
        for ext in tbs_cert.iter_extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    sans.extend(san.general_names.iter().filter_map(|gn| match gn {
                        GeneralName::DNSName(s) => Some(San::Dns(s.to_string())),
                        GeneralName::RFC822Name(s) => Some(San::Email(s.to_string())),
                        GeneralName::IPAddress(ip) => Some(San::Ip(ip.to_vec())),
                        _ => None,
                    }))
                }
                ParsedExtension::SubjectKeyIdentifier(kid) => subject_key_id = Some(kid.0.to_vec()),
                _ => {}
            }
        }
        Ok(Certificate {
            der: der.to_vec(),
            tbs: tbs.to_vec(),
            sig_alg: sig_alg.to_vec(),
            signature: signature.to_vec(),
            subject: tbs_cert.subject.as_raw().to_vec(),
            issuer: tbs_cert.issuer.as_raw().to_vec(),
            spki: tbs_cert.subject_pki.raw.to_vec(),
            not_before: tbs_cert.validity.not_before.timestamp(),
            not_after: tbs_cert.validity.not_after.timestamp(),
            ca,
            sans,
            subject_key_id,
        })
    }
    /// Every certificate in a PEM file (or one DER file).
    pub fn parse_pem_or_der(data: &[u8]) -> Result<Vec<Self>, CertError> {
        if !pem::is_pem(data) {
            return Ok(vec![Self::from_der(data)?]);
        }
        let certs = pem::blocks(data)
            .map_err(CertError::Parse)?
            .iter()
            .filter(|b| b.label == "CERTIFICATE" || b.label == "X509 CERTIFICATE")
            .map(|b| Self::from_der(&b.der))
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(CertError::Parse("no CERTIFICATE block in PEM".into()));
        }
        Ok(certs)
    }
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The subject DN in DER (for ID_DER_ASN1_DN).
    pub fn subject_der(&self) -> Vec<u8> {
        self.subject.clone()
    }
    /// The issuer DN in DER.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.issuer.clone()
    }
    /// The subject DN as an identity.
    pub fn subject_identity(&self) -> Identity {
        Identity::Dn(self.subject.clone())
    }
    /// The DER subjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    /// SHA-1 of the subjectPublicKeyInfo: what CERTREQ lists for a CA (RFC 7296 §3.7).
    pub fn spki_sha1(&self) -> [u8; 20] {
        Sha1::digest(&self.spki).into()
    }
    /// Whether basicConstraints marks this certificate as a CA.
    pub fn is_ca(&self) -> bool {
        self.ca.is_some()
    }
    /// The validity period (notBefore, notAfter) in Unix seconds.
    pub fn validity(&self) -> (i64, i64) {
        (self.not_before, self.not_after)
    }
    /// Whether `id` names this certificate: the subject DN, or a subjectAltName (DNS, email,
    /// IP address).
    pub fn matches_identity(&self, id: &Identity) -> bool {
        match id {
            Identity::Dn(der) => crate::identity::dn_equal(&self.subject, der),
            Identity::Fqdn(name) => self
                .sans
                .iter()
                .any(|s| matches!(s, San::Dns(d) if d.eq_ignore_ascii_case(name))),
            Identity::Email(addr) => self
                .sans
                .iter()
                .any(|s| matches!(s, San::Email(e) if e.eq_ignore_ascii_case(addr))),
            Identity::Ipv4(a) => self.has_ip(IpAddr::V4(*a)),
            Identity::Ipv6(a) => self.has_ip(IpAddr::V6(*a)),
            Identity::KeyId(kid) => {
                self.subject_key_id.as_deref() == Some(kid.as_slice())
                    || kid.as_slice() == self.spki_sha1()
            }
        }
    }
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        PublicKey::from_spki_der(&self.spki)
    }

    fn has_ip(&self, ip: IpAddr) -> bool {
        let octets = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        self.sans
            .iter()
            .any(|s| matches!(s, San::Ip(o) if *o == octets))
    }

    /// Whether `time` (Unix seconds) lies within the validity period.
    fn valid_at(&self, time: u64) -> bool {
        let t = i64::try_from(time).unwrap_or(i64::MAX);
        self.not_before <= t && t <= self.not_after
    }

    /// Whether `issuer`'s key made this certificate's signature.
    fn verify_signed_by(&self, issuer: &Certificate) -> Result<(), CertError> {
        let alg = SigAlg::from_der(&self.sig_alg)?;
        issuer
            .public_key()?
            .verify_signature(alg, &self.tbs, &self.signature)
    }
}

/// The three parts of a Certificate SEQUENCE: the TBSCertificate TLV, the signature
/// AlgorithmIdentifier TLV and the signature bits.
type SignedParts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn split_signed(der: &[u8]) -> Result<SignedParts<'_>, CertError> {
    let parse = || -> der::Result<SignedParts<'_>> {
        let mut reader = SliceReader::new(der)?;
        let parts = reader.sequence(|r| -> der::Result<_> {
            let tbs = r.tlv_bytes()?;
            let alg = r.tlv_bytes()?;
            let sig = der::asn1::BitStringRef::decode(r)?;
            Ok((tbs, alg, sig))
        })?;
        reader.finish()?;
        let (tbs, alg, sig) = parts;
        let sig = sig.as_bytes().ok_or_else(|| {
            der::Error::from(der::ErrorKind::Noncanonical {
                tag: der::Tag::BitString,
            })
        })?;
        Ok((tbs, alg, sig))
    };
    parse().map_err(|e| CertError::Parse(format!("invalid certificate structure: {e}")))
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subject = Identity::Dn(self.subject.clone());
        write!(f, "Certificate({subject}, {} bytes)", self.der.len())
    }
}

/// Checks that `end_entity` chains through `intermediates` to one of `anchors`, every
/// signature valid and (when `unix_time` is given) every certificate valid at that time.
///
/// Issuers are found by subject DN; every issuer (trust anchors too) must be a CA by
/// basicConstraints and respect its pathLenConstraint. A certificate that is itself one of
/// the anchors is trusted as is. At most 8 certificates above the end entity.
pub fn verify_chain(
    end_entity: &Certificate,
    intermediates: &[Certificate],
    anchors: &[Certificate],
    unix_time: Option<u64>,
) -> Result<(), CertError> {
    let check_time = |c: &Certificate| match unix_time {
        Some(t) if !c.valid_at(t) => {
            log::debug!("certificate {c:?} not valid at {t}");
            Err(CertError::Expired)
        }
        _ => Ok(()),
    };
    check_time(end_entity)?;
    if anchors.iter().any(|a| a.der == end_entity.der) {
        return Ok(());
    }
    let mut current = end_entity;
    // A signature that failed on a certificate named as the issuer, reported if nothing
    // else leads to an anchor.
    let mut bad_signature = false;
    for depth in 0..MAX_DEPTH {
        // CA certificates already between the end entity and the next issuer.
        let ca_below = depth;
        let fits = |c: &&Certificate| {
            crate::identity::dn_equal(&c.subject, &current.issuer)
                && c.der != current.der
                && matches!(c.ca, Some(limit) if limit.is_none_or(|n| usize::try_from(n).unwrap_or(usize::MAX) >= ca_below))
        };
        for anchor in anchors.iter().filter(fits) {
            match current.verify_signed_by(anchor) {
                Ok(()) => return check_time(anchor),
                Err(e) => {
                    log::debug!("{current:?} not signed by anchor {anchor:?}: {e}");
                    bad_signature = true;
                }
            }
        }
        let mut next = None;
        for inter in intermediates.iter().filter(fits) {
            match current.verify_signed_by(inter) {
                Ok(()) => {
                    next = Some(inter);
                    break;
                }
                Err(e) => {
                    log::debug!("{current:?} not signed by {inter:?}: {e}");
                    bad_signature = true;
                }
            }
        }
        match next {
            Some(inter) => {
                check_time(inter)?;
                current = inter;
            }
            None if bad_signature => return Err(CertError::BadSignature),
            None => return Err(CertError::Untrusted),
        }
    }
    Err(CertError::Untrusted)
}

/// The key types we verify with.
#[derive(Clone, PartialEq)]
pub(crate) enum KeyKind {
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A peer's public key, for verifying its AUTH payload.
#[derive(Clone, PartialEq)]
pub struct PublicKey {
    kind: KeyKind,
}

impl PublicKey {
    /// Reads a DER subjectPublicKeyInfo (RSA, ECDSA P-256/P-384 or Ed25519).
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, CertError> {
        use pkcs8::DecodePublicKey;
        let kind = if let Ok(k) = rsa::PublicKey::from_public_key_der(spki) {
            KeyKind::Rsa(k)
        } else if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) {
            KeyKind::P256(k)
        } else if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(spki) {
            KeyKind::P384(k)
        } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(spki) {
            KeyKind::Ed25519(k)
        } else {
            return Err(CertError::Unsupported("public key type or size".into()));
        };
        Ok(PublicKey { kind })
    }

    pub(crate) fn from_kind(kind: KeyKind) -> Self {
        PublicKey { kind }
    }

    /// Verifies AUTH data for `method` (RSA_SIG, ECDSA_SHA*_P*, DIGITAL_SIGNATURE per RFC 7427
    /// with RSA PKCS#1 v1.5, RSA-PSS, ECDSA P-256/P-384 and Ed25519) over `octets`.
    pub fn verify_auth(
        &self,
        method: AuthMethod,
        auth_data: &[u8],
        octets: &[u8],
    ) -> Result<(), CertError> {
        match method {
            AuthMethod::DIGITAL_SIGNATURE => {
                let (&len, rest) = auth_data.split_first().ok_or(CertError::BadSignature)?;
                let alg_der = rest
                    .get(..usize::from(len))
                    .ok_or(CertError::BadSignature)?;
                let sig = rest.get(usize::from(len)..).unwrap_or_default();
                let alg = SigAlg::from_der(alg_der)?;
                self.verify_signature(alg, octets, sig)
            }
            AuthMethod::ECDSA_SHA256_P256 => match &self.kind {
                KeyKind::P256(k) => {
                    let sig = p256::ecdsa::Signature::from_slice(auth_data)
                        .map_err(|_| CertError::BadSignature)?;
                    verify_prehash(k, &Hash::Sha256.digest(octets), &sig)
                }
                _ => Err(CertError::Unsupported(
                    "ECDSA_SHA256_P256 needs a P-256 key".into(),
                )),
            },
            AuthMethod::ECDSA_SHA384_P384 => match &self.kind {
                KeyKind::P384(k) => {
                    let sig = p384::ecdsa::Signature::from_slice(auth_data)
                        .map_err(|_| CertError::BadSignature)?;
                    verify_prehash(k, &Hash::Sha384.digest(octets), &sig)
                }
                _ => Err(CertError::Unsupported(
                    "ECDSA_SHA384_P384 needs a P-384 key".into(),
                )),
            },
            AuthMethod::RSA_SIG => {
                Err(CertError::Unsupported("RSA_SIG (SHA-1) is too weak".into()))
            }
            other => Err(CertError::Unsupported(format!("AUTH method {other}"))),
        }
    }

    /// Verifies `sig` over `msg` with the algorithm `alg`, which must fit the key type.
    pub(crate) fn verify_signature(
        &self,
        alg: SigAlg,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CertError> {
        use rsa::signature::Verifier;
        match (&self.kind, alg) {
            (KeyKind::Rsa(k), SigAlg::RsaPkcs1(h)) => {
                let scheme = match h {
                    Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                k.verify(scheme, &h.digest(msg), sig)
                    .map_err(|_| CertError::BadSignature)
            }
            (KeyKind::Rsa(k), SigAlg::RsaPss { hash, salt_len }) => {
                let hashed = hash.digest(msg);
                let result = match hash {
                    Hash::Sha256 => k.verify(
                        rsa::Pss::<sha2::Sha256>::new_with_salt(salt_len),
                        &hashed,
                        sig,
                    ),
                    Hash::Sha384 => k.verify(
                        rsa::Pss::<sha2::Sha384>::new_with_salt(salt_len),
                        &hashed,
                        sig,
                    ),
                    Hash::Sha512 => k.verify(
                        rsa::Pss::<sha2::Sha512>::new_with_salt(salt_len),
                        &hashed,
                        sig,
                    ),
                };
                result.map_err(|_| CertError::BadSignature)
            }
            (KeyKind::P256(k), SigAlg::Ecdsa(h)) => {
                let sig =
                    p256::ecdsa::Signature::from_der(sig).map_err(|_| CertError::BadSignature)?;
                verify_prehash(k, &h.digest(msg), &sig)
            }
            (KeyKind::P384(k), SigAlg::Ecdsa(h)) => {
                let sig =
                    p384::ecdsa::Signature::from_der(sig).map_err(|_| CertError::BadSignature)?;
                verify_prehash(k, &h.digest(msg), &sig)
            }
            (KeyKind::Ed25519(k), SigAlg::Ed25519) => {
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| CertError::BadSignature)?;
                k.verify_strict(msg, &sig)
                    .or_else(|_| k.verify(msg, &sig))
                    .map_err(|_| CertError::BadSignature)
            }
            (_, alg) => Err(CertError::Unsupported(format!(
                "{alg:?} signature with a {} key",
                self.kind_name()
            ))),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            KeyKind::Rsa(_) => "RSA",
            KeyKind::P256(_) => "ECDSA P-256",
            KeyKind::P384(_) => "ECDSA P-384",
            KeyKind::Ed25519(_) => "Ed25519",
        }
    }
}

fn verify_prehash<S, K: rsa::signature::hazmat::PrehashVerifier<S>>(
    key: &K,
    prehash: &[u8],
    sig: &S,
) -> Result<(), CertError> {
    key.verify_prehash(prehash, sig)
        .map_err(|_| CertError::BadSignature)
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            KeyKind::Rsa(k) => {
                use rsa::traits::PublicKeyParts;
                write!(f, "PublicKey(RSA-{})", k.size() * 8)
            }
            _ => write!(f, "PublicKey({})", self.kind_name()),
        }
    }
}

/// The hash algorithms we announce in SIGNATURE_HASH_ALGORITHMS.
pub fn supported_hashes() -> &'static [HashAlgorithm] {
    &[
        HashAlgorithm::SHA2_256,
        HashAlgorithm::SHA2_384,
        HashAlgorithm::SHA2_512,
        HashAlgorithm::IDENTITY,
    ]
}
