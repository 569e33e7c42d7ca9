//! Signature algorithms named by an X.509 / RFC 7427 AlgorithmIdentifier, and the hashes
//! they use: decoding the AlgorithmIdentifier and the fixed encodings we send.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::Decode;
use pkcs8::spki::AlgorithmIdentifierRef;
use rsa::pkcs1::RsaPssParams;
use sha2::Digest;

use super::CertError;

/// A hash of the SHA-2 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Hash> {
        [
            (OID_SHA256, Hash::Sha256),
            (OID_SHA384, Hash::Sha384),
            (OID_SHA512, Hash::Sha512),
        ]
        .into_iter()
        .find_map(|(o, h)| (o == *oid).then_some(h))
    }
}

/// A signature algorithm we verify (and partly create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigAlg {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Hash),
    /// RSASSA-PSS, MGF1 with the same hash.
    RsaPss { hash: Hash, salt_len: usize },
    /// ECDSA, the signature DER-encoded.
    Ecdsa(Hash),
    /// Pure Ed25519 over the message.
    Ed25519,
}

const OID_SHA1_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const OID_SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const OID_ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The AlgorithmIdentifiers we put into RFC 7427 AUTH data (the encodings of RFC 7427
/// Appendix A and RFC 8420).
pub(crate) const ALGID_SHA256_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
pub(crate) const ALGID_SHA384_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
pub(crate) const ALGID_SHA512_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
pub(crate) const ALGID_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
pub(crate) const ALGID_ECDSA_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
pub(crate) const ALGID_ECDSA_SHA512: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
];
pub(crate) const ALGID_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

impl SigAlg {
    /// Reads a DER AlgorithmIdentifier.
    pub(crate) fn from_der(der: &[u8]) -> Result<SigAlg, CertError> {
        let alg = AlgorithmIdentifierRef::from_der(der)
            .map_err(|_| CertError::Parse("malformed signature AlgorithmIdentifier".into()))?;
        Self::from_alg(&alg)
    }

    fn from_alg(alg: &AlgorithmIdentifierRef<'_>) -> Result<SigAlg, CertError> {
        let params = alg.parameters;
        let no_params = || match params {
            None => Ok(()),
            Some(_) => Err(CertError::Parse(format!(
                "unexpected parameters for {}",
                alg.oid
            ))),
        };
        let null_or_no_params = || match params {
            None => Ok(()),
            Some(p) if p == AnyRef::NULL => Ok(()),
            Some(_) => Err(CertError::Parse(format!(
                "unexpected parameters for {}",
                alg.oid
            ))),
        };
        let oid = alg.oid;
        let rsa = [
            (OID_SHA256_RSA, Hash::Sha256),
            (OID_SHA384_RSA, Hash::Sha384),
            (OID_SHA512_RSA, Hash::Sha512),
        ];
        if let Some(h) = rsa.iter().find_map(|(o, h)| (*o == oid).then_some(*h)) {
            null_or_no_params()?;
            return Ok(SigAlg::RsaPkcs1(h));
        }
        let ec = [
            (OID_ECDSA_SHA256, Hash::Sha256),
            (OID_ECDSA_SHA384, Hash::Sha384),
            (OID_ECDSA_SHA512, Hash::Sha512),
        ];
        if let Some(h) = ec.iter().find_map(|(o, h)| (*o == oid).then_some(*h)) {
            no_params()?;
            return Ok(SigAlg::Ecdsa(h));
        }
        if oid == OID_ED25519 {
            no_params()?;
            return Ok(SigAlg::Ed25519);
        }
        if oid == OID_RSA_PSS {
            return Self::pss(params);
        }
        if oid == OID_SHA1_RSA || oid == OID_ECDSA_SHA1 {
            return Err(CertError::Unsupported(
                "SHA-1 signatures are too weak".into(),
            ));
        }
        Err(CertError::Unsupported(format!("signature algorithm {oid}")))
    }

    fn pss(params: Option<AnyRef<'_>>) -> Result<SigAlg, CertError> {
        let bad = || CertError::Parse("malformed RSASSA-PSS parameters".into());
        let params: RsaPssParams<der::asn1::Any> =
            params.ok_or_else(bad)?.decode_as().map_err(|_| bad())?;
        let hash = Hash::from_oid(&params.hash.oid).ok_or_else(|| {
            CertError::Unsupported(format!("RSASSA-PSS with hash {}", params.hash.oid))
        })?;
        let mgf_hash = params.mask_gen.parameters.as_ref().map(|p| p.oid);
        if params.mask_gen.oid != OID_MGF1 || mgf_hash != Some(params.hash.oid) {
            return Err(CertError::Unsupported(
                "RSASSA-PSS with a different mask generation hash".into(),
            ));
        }
        Ok(SigAlg::RsaPss {
            hash,
            salt_len: usize::from(params.salt_len),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_encodings_decode_to_their_algorithms() {
        assert_eq!(
            SigAlg::from_der(ALGID_SHA256_RSA),
            Ok(SigAlg::RsaPkcs1(Hash::Sha256))
        );
        assert_eq!(
            SigAlg::from_der(ALGID_SHA384_RSA),
            Ok(SigAlg::RsaPkcs1(Hash::Sha384))
        );
        assert_eq!(
            SigAlg::from_der(ALGID_SHA512_RSA),
            Ok(SigAlg::RsaPkcs1(Hash::Sha512))
        );
        assert_eq!(
            SigAlg::from_der(ALGID_ECDSA_SHA256),
            Ok(SigAlg::Ecdsa(Hash::Sha256))
        );
        assert_eq!(
            SigAlg::from_der(ALGID_ECDSA_SHA384),
            Ok(SigAlg::Ecdsa(Hash::Sha384))
        );
        assert_eq!(
            SigAlg::from_der(ALGID_ECDSA_SHA512),
            Ok(SigAlg::Ecdsa(Hash::Sha512))
        );
        assert_eq!(SigAlg::from_der(ALGID_ED25519), Ok(SigAlg::Ed25519));
    }

    #[test]
    fn pss_parameters() {
        // RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt length 32, trailer field 1.
        let der = [
            0x30, 0x46, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
            0x39, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
            0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
            0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
            0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20, 0xa3, 0x03, 0x02,
            0x01, 0x01,
        ];
        assert_eq!(
            SigAlg::from_der(&der),
            Ok(SigAlg::RsaPss {
                hash: Hash::Sha256,
                salt_len: 32
            })
        );
    }

    #[test]
    fn rejects_weak_and_unknown() {
        let sha1_rsa = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05,
            0x00,
        ];
        assert!(matches!(
            SigAlg::from_der(&sha1_rsa),
            Err(CertError::Unsupported(_))
        ));
        let unknown = [0x30, 0x04, 0x06, 0x02, 0x2a, 0x03];
        assert!(matches!(
            SigAlg::from_der(&unknown),
            Err(CertError::Unsupported(_))
        ));
        // PSS without parameters (SHA-1 defaults) is not accepted.
        let pss_default = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
            0x00,
        ];
        assert!(SigAlg::from_der(&pss_default).is_err());
        assert!(SigAlg::from_der(&[0x30, 0x05]).is_err());
    }
}
