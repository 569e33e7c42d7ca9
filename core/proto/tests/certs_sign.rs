//! AUTH signatures: every key format `pki` (and openssl's PKCS#8 conversion) writes, signed
//! with `PrivateKey::sign_auth` and verified with the matching certificate's public key.

use roam_proto::crypto::cert::{supported_hashes, CertError, Certificate, PublicKey};
use roam_proto::crypto::sign::PrivateKey;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{AuthMethod, HashAlgorithm};

const OCTETS: &[u8] = b"IKE_SA_INIT message | Nr | prf(SK_pi, IDi')";
const ALL: &[HashAlgorithm] = &[
    HashAlgorithm::SHA2_256,
    HashAlgorithm::SHA2_384,
    HashAlgorithm::SHA2_512,
    HashAlgorithm::IDENTITY,
];

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/pki/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn key(name: &str) -> PrivateKey {
    PrivateKey::from_pem(&data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn public(cert: &str) -> PublicKey {
    Certificate::parse_pem_or_der(&data(&format!("{cert}.crt"))).unwrap()[0]
        .public_key()
        .unwrap()
}

fn cert(name: &str) -> Certificate {
    Certificate::parse_pem_or_der(&data(&format!("{name}.crt")))
        .unwrap()
        .remove(0)
}

/// Signs, verifies, and checks that a changed octet or signature byte fails.
fn sign_and_verify(
    key: &PrivateKey,
    pk: &PublicKey,
    hashes: &[HashAlgorithm],
) -> (AuthMethod, Vec<u8>) {
    let mut rng = SeededRng::new(7);
    let (method, auth) = key.sign_auth(OCTETS, hashes, &mut rng).unwrap();
    pk.verify_auth(method, &auth, OCTETS).unwrap();
    let mut other = OCTETS.to_vec();
    other[3] ^= 0x80;
    assert_eq!(
        pk.verify_auth(method, &auth, &other),
        Err(CertError::BadSignature)
    );
    let mut bad = auth.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    assert!(pk.verify_auth(method, &bad, OCTETS).is_err());
    assert!(pk
        .verify_auth(method, &auth[..auth.len() - 1], OCTETS)
        .is_err());
    (method, auth)
}

#[test]
fn every_key_format_loads_and_matches_its_certificate() {
    for (k, c) in [
        ("client-rsa.key", "client-rsa"),     // PKCS#1
        ("client-rsa.pk8.key", "client-rsa"), // PKCS#8 RSA
        ("root-ca.key", "root-ca"),
        ("client-p256.key", "client-p256"), // SEC1
        ("client-p256.pk8.key", "client-p256"),
        ("client-p384.key", "client-p384"),
        ("client-p384.pk8.key", "client-p384"),
        ("client-ed25519.key", "client-ed25519"), // PKCS#8 Ed25519
        ("leaf-inter.key", "leaf-inter"),
        ("inter1-ca.key", "inter1-ca"),
    ] {
        let key = key(k);
        assert!(key.matches(&cert(c)), "{k}");
        assert!(!key.matches(&cert("server-san")), "{k}");
    }
}

#[test]
fn rejects_what_is_not_a_key() {
    assert!(PrivateKey::from_pem(&data("client-rsa.crt")).is_err());
    assert!(PrivateKey::from_pem(b"").is_err());
    assert!(PrivateKey::from_pem(
        b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
    )
    .is_err());
    let enc = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert!(matches!(PrivateKey::from_pem(enc), Err(CertError::Key(m)) if m.contains("encrypted")));
}

#[test]
fn debug_never_prints_the_key() {
    assert_eq!(format!("{:?}", key("client-p256.key")), "PrivateKey(..)");
}

#[test]
fn rsa_signs_pkcs1_v15_with_the_best_common_sha2() {
    let k = key("client-rsa.key");
    let pk = public("client-rsa");
    let (method, auth) = sign_and_verify(&k, &pk, ALL);
    assert_eq!(method, AuthMethod::DIGITAL_SIGNATURE);
    // Length byte, sha256WithRSAEncryption, then a 3072-bit signature.
    assert_eq!(auth[0], 15);
    assert_eq!(
        &auth[1..16],
        &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
            0x00
        ]
    );
    assert_eq!(auth.len(), 16 + 384);
    // PKCS#1 v1.5 is deterministic: the PKCS#8 copy of the key signs the same bytes.
    let again = key("client-rsa.pk8.key")
        .sign_auth(OCTETS, ALL, &mut SeededRng::new(99))
        .unwrap();
    assert_eq!(again.1, auth);
    let (_, auth) = sign_and_verify(&k, &pk, &[HashAlgorithm::SHA2_512, HashAlgorithm::SHA2_384]);
    assert_eq!(auth[13], 0x0c); // sha384WithRSAEncryption
    let (_, auth) = sign_and_verify(&k, &pk, &[HashAlgorithm::SHA2_512]);
    assert_eq!(auth[13], 0x0d); // sha512WithRSAEncryption
}

#[test]
fn rsa_needs_rfc7427() {
    let k = key("client-rsa.key");
    let mut rng = SeededRng::new(1);
    assert!(matches!(
        k.sign_auth(OCTETS, &[], &mut rng),
        Err(CertError::Unsupported(_))
    ));
    assert!(matches!(
        k.sign_auth(OCTETS, &[HashAlgorithm::SHA1], &mut rng),
        Err(CertError::Unsupported(_))
    ));
    // RSA_SIG (PKCS#1 v1.5 over SHA-1) is refused when verifying too.
    let pk = public("client-rsa");
    assert!(matches!(
        pk.verify_auth(AuthMethod::RSA_SIG, &[0; 384], OCTETS),
        Err(CertError::Unsupported(_))
    ));
}

#[test]
fn ecdsa_p256_digital_signature_and_classic() {
    let k = key("client-p256.key");
    let pk = public("client-p256");
    let (method, auth) = sign_and_verify(&k, &pk, ALL);
    assert_eq!(method, AuthMethod::DIGITAL_SIGNATURE);
    assert_eq!(
        &auth[..13],
        &[12, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
    );
    assert_eq!(auth[13], 0x30, "DER ECDSA-Sig-Value");
    let (method, auth) = sign_and_verify(&k, &pk, &[]);
    assert_eq!(method, AuthMethod::ECDSA_SHA256_P256);
    assert_eq!(auth.len(), 64, "raw r|s");
    // Only IDENTITY announced: no fitting hash, so the classic method.
    let (method, _) = sign_and_verify(&k, &pk, &[HashAlgorithm::IDENTITY]);
    assert_eq!(method, AuthMethod::ECDSA_SHA256_P256);
    // The wrong classic method for the key type.
    assert!(pk
        .verify_auth(AuthMethod::ECDSA_SHA384_P384, &[0; 96], OCTETS)
        .is_err());
}

#[test]
fn ecdsa_p384_digital_signature_and_classic() {
    let k = key("client-p384.pk8.key");
    let pk = public("client-p384");
    let (method, auth) = sign_and_verify(&k, &pk, ALL);
    assert_eq!(method, AuthMethod::DIGITAL_SIGNATURE);
    assert_eq!(auth[12], 0x03, "ecdsa-with-SHA384");
    let (method, auth) = sign_and_verify(&k, &pk, &[]);
    assert_eq!(method, AuthMethod::ECDSA_SHA384_P384);
    assert_eq!(auth.len(), 96);
}

#[test]
fn ed25519_needs_identity() {
    let k = key("client-ed25519.key");
    let pk = public("client-ed25519");
    let (method, auth) = sign_and_verify(&k, &pk, ALL);
    assert_eq!(method, AuthMethod::DIGITAL_SIGNATURE);
    assert_eq!(&auth[..8], &[7, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);
    assert_eq!(auth.len(), 8 + 64);
    let mut rng = SeededRng::new(1);
    assert!(k.sign_auth(OCTETS, &[], &mut rng).is_err());
    assert!(k
        .sign_auth(OCTETS, &[HashAlgorithm::SHA2_256], &mut rng)
        .is_err());
}

#[test]
fn signature_from_another_key_fails() {
    let (method, auth) = key("client-p256.key")
        .sign_auth(OCTETS, ALL, &mut SeededRng::new(3))
        .unwrap();
    assert_eq!(
        public("server-san").verify_auth(method, &auth, OCTETS),
        Err(CertError::BadSignature)
    );
    // An algorithm that does not fit the key type.
    assert!(public("client-rsa")
        .verify_auth(method, &auth, OCTETS)
        .is_err());
}

#[test]
fn malformed_auth_data_never_panics() {
    let pk = public("client-p256");
    for data in [
        &[][..],
        &[0],
        &[200, 1, 2],
        &[2, 0x30, 0x00, 1],
        &[12, 0x30],
    ] {
        assert!(pk
            .verify_auth(AuthMethod::DIGITAL_SIGNATURE, data, OCTETS)
            .is_err());
        assert!(pk
            .verify_auth(AuthMethod::ECDSA_SHA256_P256, data, OCTETS)
            .is_err());
    }
    assert!(pk
        .verify_auth(AuthMethod::SHARED_KEY_MIC, &[0; 32], OCTETS)
        .is_err());
}

#[test]
fn rsa_pss_auth_data_verifies() {
    // A DIGITAL_SIGNATURE with RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32), as strongSwan
    // sends with `rsa/pss` signature schemes, made here with the rsa crate directly.
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use sha2::{Digest, Sha256};
    let pem = String::from_utf8(data("client-rsa.key")).unwrap();
    let sk = rsa::PrivateKey::from_pkcs1_pem(&pem).unwrap();
    let mut rng = rand_core_rng::Seeded(SeededRng::new(5));
    let sig = sk
        .sign_with_rng(
            &mut rng,
            rsa::Pss::<Sha256>::new_with_salt(32),
            &Sha256::digest(OCTETS),
        )
        .unwrap();
    let alg: &[u8] = &[
        0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34,
        0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
        0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
    ];
    let mut auth = vec![alg.len() as u8];
    auth.extend_from_slice(alg);
    auth.extend_from_slice(&sig);
    let pk = public("client-rsa");
    pk.verify_auth(AuthMethod::DIGITAL_SIGNATURE, &auth, OCTETS)
        .unwrap();
    assert_eq!(
        pk.verify_auth(AuthMethod::DIGITAL_SIGNATURE, &auth, b"other"),
        Err(CertError::BadSignature)
    );
    // The same signature claimed with a different salt length fails.
    let mut wrong_salt = auth.clone();
    let salt_pos = 1 + alg.len() - 1;
    wrong_salt[salt_pos] = 20;
    assert_eq!(
        pk.verify_auth(AuthMethod::DIGITAL_SIGNATURE, &wrong_salt, OCTETS),
        Err(CertError::BadSignature)
    );
}

/// A rand_core view of the test generator, for calling the rsa crate directly.
mod rand_core_rng {
    use roam_proto::rng::{Rng, SeededRng};
    use rsa::rand_core::{TryCryptoRng, TryRng};
    pub struct Seeded(pub SeededRng);
    impl TryRng for Seeded {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.0.next_u64() as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(self.0.next_u64())
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            self.0.fill(dst);
            Ok(())
        }
    }
    impl TryCryptoRng for Seeded {}
}

#[test]
fn announces_sha2_and_identity() {
    assert_eq!(
        supported_hashes(),
        &[
            HashAlgorithm::SHA2_256,
            HashAlgorithm::SHA2_384,
            HashAlgorithm::SHA2_512,
            HashAlgorithm::IDENTITY
        ]
    );
}
