//! Certificate parsing, identity matching and chain validation against the test PKI in
//! tests/data/pki (made by its generate.sh with strongSwan's pki tool).

use roam_proto::crypto::cert::{verify_chain, CertError, Certificate};
use roam_proto::identity::Identity;

/// 2030-03-17, inside the 20-year validity of the test certificates.
const NOW: u64 = 1_900_000_000;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/pki/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cert(name: &str) -> Certificate {
    let mut certs = Certificate::parse_pem_or_der(&data(&format!("{name}.crt"))).unwrap();
    assert_eq!(certs.len(), 1);
    certs.remove(0)
}

#[test]
fn parses_pem_bundle_and_der() {
    let chain = Certificate::parse_pem_or_der(&data("chain.pem")).unwrap();
    assert_eq!(chain.len(), 2);
    assert!(chain[0].matches_identity(
        &Identity::parse("C=CH, O=ref-lab, CN=Roam Test Intermediate 2").unwrap()
    ));
    assert!(chain[1].matches_identity(
        &Identity::parse("C=CH, O=ref-lab, CN=Roam Test Intermediate 1").unwrap()
    ));
    let der = Certificate::parse_pem_or_der(&data("root-ca.der")).unwrap();
    assert_eq!(der.len(), 1);
    assert_eq!(der[0].der(), cert("root-ca").der());
    assert!(Certificate::parse_pem_or_der(b"not a certificate").is_err());
    assert!(Certificate::parse_pem_or_der(&data("client-rsa.key")).is_err());
    assert!(Certificate::from_der(&cert("root-ca").der()[..100]).is_err());
}

#[test]
fn dn_identity_is_byte_identical_to_the_pki_subject() {
    let c = cert("client-rsa");
    let id = Identity::parse("C=CH, O=ref-lab, CN=client-rsa").unwrap();
    assert_eq!(id.to_wire(), c.subject_der());
    let back = Identity::from_wire(id.id_type(), &c.subject_der()).unwrap();
    assert_eq!(back.to_string(), "C=CH, O=ref-lab, CN=client-rsa");
    assert!(c.matches_identity(&id));
    assert_eq!(c.subject_identity(), id);
}

#[test]
fn dn_matching_is_semantic() {
    // noca-child was made by openssl, which writes UTF8Strings where strongSwan writes
    // PrintableStrings: the DER differs, the name is the same.
    let c = cert("noca-child");
    let id = Identity::parse("C=CH, O=ref-lab, CN=noca-child").unwrap();
    assert_ne!(id.to_wire(), c.subject_der());
    assert!(c.matches_identity(&id));
    assert!(c.matches_identity(&Identity::parse("c=ch, o=REF-LAB, cn=NoCa-Child").unwrap()));
    assert!(!c.matches_identity(&Identity::parse("C=CH, O=ref-lab").unwrap()));
    assert!(!c.matches_identity(&Identity::parse("O=ref-lab, C=CH, CN=noca-child").unwrap()));
    assert!(!c.matches_identity(&Identity::parse("C=CH, O=ref-lab, CN=noca-childx").unwrap()));
}

#[test]
fn subject_alt_names() {
    let c = cert("server-san");
    for id in [
        "vpn.example.org",
        "@VPN.Example.ORG",
        "198.51.100.1",
        "user@example.org",
        "User@Example.org",
    ] {
        assert!(c.matches_identity(&Identity::parse(id).unwrap()), "{id}");
    }
    for id in [
        "other.example.org",
        "198.51.100.2",
        "2001:db8::1",
        "someone@example.org",
        "example.org",
    ] {
        assert!(!c.matches_identity(&Identity::parse(id).unwrap()), "{id}");
    }
    // The subject CN alone is not enough for an FQDN.
    let rsa = cert("client-rsa");
    assert!(!cert("client-p256").matches_identity(&Identity::parse("client-p256").unwrap()));
    assert!(rsa.matches_identity(&Identity::parse("client-rsa.example.org").unwrap()));
    assert!(!rsa.matches_identity(&Identity::parse("client-rsa").unwrap()));
}

#[test]
fn key_id_identity_matches_spki_hash() {
    let c = cert("client-p256");
    let kid = Identity::KeyId(c.spki_sha1().to_vec());
    assert!(c.matches_identity(&kid));
    assert!(!cert("client-p384").matches_identity(&kid));
}

#[test]
fn spki_sha1_is_sha1_of_the_subject_public_key_info() {
    // root-ca.spki.sha1 was computed by openssl from the same certificate.
    let c = cert("root-ca");
    let expected = String::from_utf8(data("root-ca.spki.sha1")).unwrap();
    assert_eq!(hex::encode(c.spki_sha1()), expected.trim());
    assert_ne!(c.spki_sha1(), cert("other-ca").spki_sha1());
}

#[test]
fn chains_to_the_root_with_every_signature_algorithm() {
    let root = [cert("root-ca")];
    // sha256/384/512WithRSAEncryption and RSASSA-PSS, each signed by the RSA root.
    for name in [
        "client-rsa",
        "client-p256",
        "client-p384",
        "client-ed25519",
        "server-san",
    ] {
        verify_chain(&cert(name), &[], &root, Some(NOW)).unwrap_or_else(|e| panic!("{name}: {e}"));
        verify_chain(&cert(name), &[], &root, None).unwrap();
    }
    // Ed25519-signed certificates.
    verify_chain(&cert("other-client"), &[], &[cert("other-ca")], Some(NOW)).unwrap();
    // The root is trusted as itself.
    verify_chain(&root[0], &[], &root, Some(NOW)).unwrap();
}

#[test]
fn chains_through_intermediates() {
    // root (RSA) -> inter1 (P-384, sha256WithRSA) -> inter2 (P-256, ecdsa-with-SHA384)
    // -> leaf (Ed25519, ecdsa-with-SHA256).
    let leaf = cert("leaf-inter");
    let inters = Certificate::parse_pem_or_der(&data("chain.pem")).unwrap();
    let root = [cert("root-ca")];
    verify_chain(&leaf, &inters, &root, Some(NOW)).unwrap();
    // Order of the intermediates does not matter, extra certificates are ignored.
    let shuffled = [
        cert("client-rsa"),
        inters[1].clone(),
        cert("other-ca"),
        inters[0].clone(),
    ];
    verify_chain(&leaf, &shuffled, &root, Some(NOW)).unwrap();
    // Anchored at an intermediate.
    verify_chain(&leaf, &[], &[inters[0].clone()], Some(NOW)).unwrap();
    // A missing link.
    assert_eq!(
        verify_chain(&leaf, &inters[..1], &root, Some(NOW)),
        Err(CertError::Untrusted)
    );
    assert_eq!(
        verify_chain(&leaf, &[], &root, Some(NOW)),
        Err(CertError::Untrusted)
    );
}

#[test]
fn untrusted_when_issued_by_another_ca() {
    let err = verify_chain(&cert("other-client"), &[], &[cert("root-ca")], Some(NOW));
    assert_eq!(err, Err(CertError::Untrusted));
    let err = verify_chain(&cert("client-rsa"), &[], &[cert("other-ca")], Some(NOW));
    assert_eq!(err, Err(CertError::Untrusted));
    assert_eq!(
        verify_chain(&cert("client-rsa"), &[], &[], None),
        Err(CertError::Untrusted)
    );
}

#[test]
fn expired_and_not_yet_valid() {
    let root = [cert("root-ca")];
    let expired = cert("expired");
    assert_eq!(
        verify_chain(&expired, &[], &root, Some(NOW)),
        Err(CertError::Expired)
    );
    // Its signature is fine: without a time, or at a time within its validity, it chains.
    verify_chain(&expired, &[], &root, None).unwrap();
    // In 2017 the end entity was valid, but the root (made in 2026) was not yet.
    assert_eq!(
        verify_chain(&expired, &[], &root, Some(1_500_000_000)),
        Err(CertError::Expired)
    );
    assert_eq!(expired.validity(), (1_420_070_400, 1_577_836_800));
    // Before the end entity's notBefore.
    assert_eq!(
        verify_chain(&cert("client-rsa"), &[], &root, Some(1_000_000_000)),
        Err(CertError::Expired)
    );
    // After the root's notAfter (2046).
    assert_eq!(
        verify_chain(&cert("client-rsa"), &[], &root, Some(2_500_000_000)),
        Err(CertError::Expired)
    );
}

#[test]
fn wrong_issuer_key_is_a_bad_signature() {
    // "forged" names the root's DN as issuer but was signed by an impostor key.
    let forged = cert("forged");
    assert_eq!(
        verify_chain(&forged, &[], &[cert("root-ca")], Some(NOW)),
        Err(CertError::BadSignature)
    );
    // Trusting the impostor instead makes it chain, so the failure was the signature.
    verify_chain(&forged, &[], &[cert("fake-root")], Some(NOW)).unwrap();
    // An impostor intermediate with the right name does not help either.
    assert_eq!(
        verify_chain(
            &cert("client-rsa"),
            &[cert("fake-root")],
            &[cert("other-ca")],
            Some(NOW)
        ),
        Err(CertError::BadSignature)
    );
}

#[test]
fn tampered_certificate_is_a_bad_signature() {
    let root = [cert("root-ca")];
    let good = cert("client-p256");
    let der = good.der().to_vec();
    // Flip a byte of the subject's CN ("client-p256") inside the TBS.
    let pos = der.windows(11).position(|w| w == b"client-p256").unwrap();
    let mut tampered = der.clone();
    tampered[pos] ^= 0x01;
    let tampered = Certificate::from_der(&tampered).unwrap();
    assert_eq!(
        verify_chain(&tampered, &[], &root, Some(NOW)),
        Err(CertError::BadSignature)
    );
    // Flip the last byte of the signature.
    let mut tampered = der;
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let tampered = Certificate::from_der(&tampered).unwrap();
    assert_eq!(
        verify_chain(&tampered, &[], &root, Some(NOW)),
        Err(CertError::BadSignature)
    );
}

#[test]
fn issuer_must_be_a_ca() {
    // noca-child is correctly signed by client-rsa's key, but client-rsa is no CA.
    let child = cert("noca-child");
    assert_eq!(
        verify_chain(&child, &[cert("client-rsa")], &[cert("root-ca")], Some(NOW)),
        Err(CertError::Untrusted)
    );
    assert_eq!(
        verify_chain(&child, &[], &[cert("client-rsa")], Some(NOW)),
        Err(CertError::Untrusted)
    );
    assert!(!cert("client-rsa").is_ca());
    assert!(cert("inter1-ca").is_ca());
}

#[test]
fn debug_names_the_subject() {
    let s = format!("{:?}", cert("client-rsa"));
    assert!(s.contains("CN=client-rsa"), "{s}");
}
