use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::*;
use crate::profile;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn with_password(pw: &str) -> ImportOptions {
    ImportOptions {
        p12_password: Some(Zeroizing::new(pw.to_string())),
    }
}

fn findings(p: &ImportedProfile) -> Vec<String> {
    p.findings.iter().map(|f| f.to_string()).collect()
}

fn has(p: &ImportedProfile, prefix: &str) -> bool {
    findings(p).iter().any(|f| f.starts_with(prefix))
}

/// Renders into `dir`, writes the files, and loads the TOML with the profile loader
/// (certificate validity checked at a fixed time in 2030, like the PKI's own tests).
fn round_trip(p: &ImportedProfile, dir: &Path) -> (String, profile::Profile) {
    let rendered = p.render("t", dir);
    for f in &rendered.files {
        std::fs::write(dir.join(&f.name), &*f.contents).unwrap();
    }
    let text = rendered.toml.to_string();
    let loaded = profile::from_str(&text, dir, Some(1_900_000_000))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, loaded)
}

fn tmp() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "roam-import-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn detects_the_format_by_name_then_content() {
    assert_eq!(Kind::detect(Some("a.sswan"), b"<"), Some(Kind::Sswan));
    assert_eq!(
        Kind::detect(Some("A.MobileConfig"), b"{"),
        Some(Kind::Mobileconfig)
    );
    assert_eq!(Kind::detect(None, b"  {\"uuid\":1}"), Some(Kind::Sswan));
    assert_eq!(Kind::detect(None, b"bplist00"), Some(Kind::Mobileconfig));
    assert_eq!(Kind::detect(None, b"<?xml"), Some(Kind::Mobileconfig));
    assert_eq!(Kind::detect(Some("x.txt"), b"hello"), None);
    assert_eq!(Kind::detect(None, b""), None);
}

#[test]
fn sswan_eap_maps_every_field_and_reports_the_rest() {
    let p = import(
        &fixture("eap.sswan"),
        Kind::Sswan,
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(p.name.as_deref(), Some("Example EAP"));
    assert_eq!(p.server.address, "vpn.example.org");
    assert_eq!(p.server.port, Some(4500));
    assert_eq!(p.server.id.as_deref(), Some("vpn.example.org"));
    assert!(p
        .server
        .ca_pem
        .as_deref()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    match &p.auth {
        ImportedAuth::EapMschapv2 {
            username,
            password,
            local_id,
        } => {
            assert_eq!(username.as_deref(), Some("alice"));
            assert!(password.is_none());
            assert!(local_id.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.ike, vec!["aes256gcm16-prfsha384-ecp384".to_string()]);
    // aes256-sha1 is weak: refused, defaults stand in.
    assert!(p.esp.is_empty());
    assert_eq!(p.mtu, Some(1380));
    assert_eq!(p.keepalive_seconds, Some(25));
    let got = findings(&p);
    for expected in [
        "missing: auth.password",
        "lossy: esp-proposal: \"aes256-sha1\" refused: weak algorithm 'sha1'",
        "unsupported: dns-servers: \"10.8.0.53 2001:db8::53\"",
        "unsupported: split-tunneling.subnets: \"10.8.0.0/16\"",
        "unsupported: split-tunneling.excluded: \"10.8.99.0/24\"",
        "unsupported: split-tunneling.block-ipv6: true",
        "unsupported: proxy.host",
        "unsupported: proxy.port: 3128",
    ] {
        assert!(
            got.iter().any(|f| f.starts_with(expected)),
            "{expected} not in {got:#?}"
        );
    }
    // uuid, name, type, remote.*, local.eap_id, mtu, nat-keepalive: taken, not reported.
    assert_eq!(got.len(), 9, "{got:#?}");
    assert!(p.findings.has_missing());
}

#[test]
fn sswan_eap_loads_once_the_password_is_added() {
    let mut p = import(
        &fixture("eap.sswan"),
        Kind::Sswan,
        &ImportOptions::default(),
    )
    .unwrap();
    if let ImportedAuth::EapMschapv2 { password, .. } = &mut p.auth {
        *password = Some(Zeroizing::new("pw".into()));
    }
    let dir = tmp();
    let (text, loaded) = round_trip(&p, &dir);
    assert!(text.contains("# missing: auth.password"), "{text}");
    assert_eq!(loaded.server.host, "vpn.example.org");
    assert_eq!(loaded.server.port, 4500);
    assert_eq!(loaded.config.mtu, 1380);
    assert_eq!(loaded.config.keepalive, std::time::Duration::from_secs(25));
    assert_eq!(loaded.config.ca.len(), 1);
    assert_eq!(
        loaded.config.ike_proposals,
        vec!["aes256gcm16-prfsha384-ecp384".to_string()]
    );
    assert_eq!(
        loaded.config.esp_proposals,
        roam_proto::crypto::proposal::default_esp()
    );
}

#[test]
fn sswan_cert_decrypts_the_aes_pkcs12() {
    let p = import(
        &fixture("cert.sswan"),
        Kind::Sswan,
        &with_password("p12-aes-pw"),
    )
    .unwrap();
    match &p.auth {
        ImportedAuth::Certificate {
            certificate_pem,
            private_key_pem,
            local_id,
        } => {
            assert_eq!(
                certificate_pem
                    .as_deref()
                    .unwrap()
                    .matches("BEGIN CERTIFICATE")
                    .count(),
                1
            );
            assert!(private_key_pem
                .as_deref()
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(local_id.as_deref(), Some("C=CH, O=ref-lab, CN=client-p256"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.server.address, "198.51.100.1");
    assert_eq!(p.server.id.as_deref(), Some("vpn.example.org"));
    assert!(findings(&p).is_empty(), "{:#?}", findings(&p));
    let dir = tmp();
    let (_, loaded) = round_trip(&p, &dir);
    assert!(matches!(
        loaded.config.auth,
        roam_proto::config::ClientAuth::Certificate { .. }
    ));
    assert_eq!(loaded.config.esp_proposals, vec!["aes128gcm16".to_string()]);
    assert_eq!(
        loaded.config.ike_proposals,
        vec!["aes128-sha256-curve25519".to_string()]
    );
}

#[test]
fn sswan_cert_without_or_with_a_wrong_password() {
    let p = import(
        &fixture("cert.sswan"),
        Kind::Sswan,
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(has(&p, "missing: auth.certificate: local.p12 is encrypted"));
    let e = import(&fixture("cert.sswan"), Kind::Sswan, &with_password("nope")).unwrap_err();
    assert!(
        matches!(
            e,
            ImportError::Pkcs12 {
                source: Pkcs12Error::BadPassword,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("nope"));
}

#[test]
fn mobileconfig_psk_maps_sa_parameters() {
    let p = import(
        &fixture("psk.mobileconfig"),
        Kind::Mobileconfig,
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(p.name.as_deref(), Some("Example PSK"));
    assert_eq!(p.server.address, "203.0.113.7");
    match &p.auth {
        ImportedAuth::Psk { local_id, psk } => {
            assert_eq!(local_id.as_deref(), Some("psk-client@example.org"));
            assert_eq!(
                psk.as_deref().map(String::as_str),
                Some("an-example-shared-secret")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.ike, vec!["aes256gcm16-prfsha384-ecp384".to_string()]);
    assert_eq!(p.esp, vec!["aes128gcm16-curve25519".to_string()]);
    assert_eq!(p.ike_rekey_seconds, Some(480 * 60));
    assert_eq!(p.child_rekey_seconds, Some(3600));
    assert_eq!(p.dpd_seconds, Some(60));
    assert_eq!(p.mobike, Some(false));
    assert_eq!(p.mtu, Some(1360));
    assert_eq!(p.keepalive_seconds, Some(30));
    let got = findings(&p);
    assert!(
        got.iter()
            .any(|f| f.starts_with("unsupported: OnDemandEnabled: 1")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|f| f.starts_with("unsupported: OnDemandRules")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|f| f.starts_with("unsupported: DisableRedirect: 0")),
        "{got:#?}"
    );
    assert_eq!(got.len(), 3, "{got:#?}");
    // The secret never appears in a finding.
    assert!(!got.iter().any(|f| f.contains("an-example-shared-secret")));
    let dir = tmp();
    let (_, loaded) = round_trip(&p, &dir);
    assert!(!loaded.config.mobike);
    assert_eq!(loaded.config.dpd, Some(std::time::Duration::from_secs(60)));
    assert_eq!(
        loaded.config.lifetimes.ike_rekey,
        std::time::Duration::from_secs(28_800)
    );
}

#[test]
fn mobileconfig_eap_refuses_des_takes_the_ppk_and_reports_dns() {
    let p = import(
        &fixture("eap.mobileconfig"),
        Kind::Mobileconfig,
        &ImportOptions::default(),
    )
    .unwrap();
    match &p.auth {
        ImportedAuth::EapMschapv2 {
            username,
            password,
            local_id,
        } => {
            assert_eq!(username.as_deref(), Some("alice"));
            assert_eq!(
                password.as_deref().map(String::as_str),
                Some("an-example-password")
            );
            assert_eq!(local_id.as_deref(), Some("alice@example.org"));
        }
        other => panic!("{other:?}"),
    }
    assert!(p.server.ca_pem.is_some());
    assert!(p.ike.is_empty() && p.esp.is_empty());
    assert_eq!(p.dpd_seconds, Some(600));
    let got = findings(&p);
    for expected in [
        // Without CHILD parameters Apple applies the IKE ones to ESP too.
        "lossy: IKESecurityAssociationParameters.EncryptionAlgorithm=DES: refused for IKE (\"des-sha1-modp1024\": weak algorithm 'des'",
        "lossy: IKESecurityAssociationParameters.EncryptionAlgorithm=DES: refused for ESP (\"des-sha1\"",
        "unsupported: TLSMinimumVersion",
        "unsupported: DNS.ServerAddresses: [\"10.8.0.53\"]",
    ] {
        assert!(got.iter().any(|f| f.starts_with(expected)), "{expected} not in {got:#?}");
    }
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(!p.findings.has_missing());
    assert!(!got.iter().any(|f| f.contains("an-example-password")));
    let ppk = p.ppk.as_ref().expect("the PPK is imported");
    assert_eq!(ppk.id, "ppk-alice");
    assert_eq!(&*ppk.key, b"post-quantum-example");
    assert_eq!(
        ppk.required, None,
        "Apple's default (mandatory) is the profile's too"
    );
    let dir = tmp();
    let (_, loaded) = round_trip(&p, &dir);
    assert_eq!(
        loaded.config.ike_proposals,
        roam_proto::crypto::proposal::default_ike()
    );
}

#[test]
fn binary_mobileconfig_with_a_3des_pkcs12_payload() {
    let p = import(
        &fixture("cert-binary.mobileconfig"),
        Kind::Mobileconfig,
        &ImportOptions::default(),
    )
    .unwrap();
    match &p.auth {
        ImportedAuth::Certificate {
            certificate_pem,
            private_key_pem,
            local_id,
        } => {
            assert!(certificate_pem.is_some() && private_key_pem.is_some());
            assert_eq!(local_id.as_deref(), Some("C=CH, O=ref-lab, CN=client-rsa"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.ike, vec!["aes256-sha256-modp2048".to_string()]);
    assert_eq!(p.esp, vec!["aes256-sha256".to_string()]);
    let got = findings(&p);
    assert_eq!(
        got,
        vec![
            "unsupported: EnableCertificateRevocationCheck: 1 (Roam does not check CRLs or OCSP)"
                .to_string()
        ]
    );
    let dir = tmp();
    let (_, loaded) = round_trip(&p, &dir);
    assert!(matches!(
        loaded.config.auth,
        roam_proto::config::ClientAuth::Certificate { .. }
    ));
    assert_eq!(loaded.config.ca.len(), 1);
}

#[test]
fn hostile_inputs_are_typed_errors() {
    let none = ImportOptions::default();
    let big = vec![b' '; MAX_IMPORT_SIZE + 1];
    assert!(matches!(
        import(&big, Kind::Sswan, &none),
        Err(ImportError::TooLarge)
    ));
    assert!(matches!(
        import(b"[1,2]", Kind::Sswan, &none),
        Err(ImportError::Syntax(_))
    ));
    assert!(matches!(
        import(b"{\"type\":\"ikev2-eap\"}", Kind::Sswan, &none),
        Err(ImportError::Missing { .. })
    ));
    let e = import(
        b"{\"type\":\"ikev2-eap-tls\",\"remote\":{\"addr\":\"a.b\"}}",
        Kind::Sswan,
        &none,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "type: \"ikev2-eap-tls\" is not supported yet (EAP-TLS)"
    );
    let e = import(
        b"{\"type\":\"ikev2-eap\",\"remote\":{\"addr\":\"a b\"}}",
        Kind::Sswan,
        &none,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("remote.addr:"), "{e}");
    assert!(matches!(
        import(b"<plist><dict/></plist>", Kind::Mobileconfig, &none),
        Err(ImportError::NoIkev2Payload)
    ));
    assert!(matches!(
        import(b"<plist><dict>", Kind::Mobileconfig, &none),
        Err(ImportError::Syntax(_))
    ));
    assert!(matches!(
        import(&[0x30, 0x03, 0x02, 0x01, 0x00], Kind::Mobileconfig, &none),
        Err(ImportError::Syntax(_))
    ));
    // Deep nesting neither overflows nor hides: it is reported.
    let deep = format!(
        "{{\"type\":\"ikev2-eap\",\"remote\":{{\"addr\":\"a.b\"}},\"x\":{}1{}}}",
        "{\"a\":".repeat(20),
        "}".repeat(20)
    );
    let p = import(deep.as_bytes(), Kind::Sswan, &none).unwrap();
    assert!(
        has(
            &p,
            "unsupported: x.a.a.a.a.a.a.a: <a table nested too deep>"
        ),
        "{:#?}",
        findings(&p)
    );
}

#[test]
fn deeply_nested_plists_do_not_overflow_the_stack() {
    let none = ImportOptions::default();
    let depth = (MAX_IMPORT_SIZE - 100) / "<array></array>".len();
    let xml = format!(
        "<plist>{}{}</plist>",
        "<array>".repeat(depth),
        "</array>".repeat(depth)
    );
    assert!(xml.len() <= MAX_IMPORT_SIZE);
    // Run on a thread with a small stack, the way an app's worker thread might be.
    let r = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || import(xml.as_bytes(), Kind::Mobileconfig, &none).map(|_| ()))
        .unwrap()
        .join()
        .expect("no stack overflow");
    match r {
        Err(ImportError::Syntax(m)) => assert!(m.ends_with("nested too deep"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn deeply_nested_binary_plists_are_refused_too() {
    // A binary plist of 2000 nested one-element arrays, built by hand: header, objects
    // (0xA1 = array of one, then the next object's 2-byte reference), the innermost an empty
    // array, the offset table (4-byte offsets) and the trailer.
    let n: usize = 2000;
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    for i in 0..n {
        offsets.push(out.len());
        if i + 1 < n {
            out.push(0xA1);
            out.extend_from_slice(&((i + 1) as u16).to_be_bytes());
        } else {
            out.push(0xA0);
        }
    }
    let table = out.len();
    for o in &offsets {
        out.extend_from_slice(&(*o as u32).to_be_bytes());
    }
    out.extend_from_slice(&[0; 6]);
    out.push(4); // offset size
    out.push(2); // reference size
    out.extend_from_slice(&(n as u64).to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&(table as u64).to_be_bytes());
    let r = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || import(&out, Kind::Mobileconfig, &ImportOptions::default()).map(|_| ()))
        .unwrap()
        .join()
        .expect("no stack overflow");
    match r {
        Err(ImportError::Syntax(m)) => assert!(m.ends_with("nested too deep"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn a_signed_mobileconfig_is_unwrapped_and_says_the_signature_is_unchecked() {
    let signed = import(
        &fixture("psk-signed.mobileconfig"),
        Kind::Mobileconfig,
        &ImportOptions::default(),
    )
    .unwrap();
    let plain = import(
        &fixture("psk.mobileconfig"),
        Kind::Mobileconfig,
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(signed.server, plain.server);
    assert_eq!(signed.ike, plain.ike);
    let got = findings(&signed);
    assert_eq!(
        got.first().map(String::as_str),
        Some("lossy: signature: the profile is signed; Roam does not check the signature")
    );
    assert_eq!(&got[1..], &findings(&plain)[..]);
    assert_eq!(
        Kind::detect(None, &fixture("psk-signed.mobileconfig")),
        Some(Kind::Mobileconfig)
    );
}

#[test]
fn mobileconfig_post_quantum_methods_fallback_and_a_binary_ppk() {
    let p = import(
        &fixture("pq.mobileconfig"),
        Kind::Mobileconfig,
        &ImportOptions::default(),
    )
    .unwrap();
    // IANA 36 and 37 become the first and second additional key exchange.
    assert_eq!(
        p.ike,
        vec!["aes256gcm16-prfsha384-curve25519-ke1_mlkem768-ke2_mlkem1024".to_string()]
    );
    // Without EnablePFS the CHILD SA has no key exchange of its own: said, not dropped.
    assert_eq!(p.esp, vec!["aes256gcm16".to_string()]);
    assert!(has(
        &p,
        "lossy: ChildSecurityAssociationParameters.PostQuantumKeyExchangeMethods: without EnablePFS"
    ));
    assert_eq!(p.pq_fallback, Some(true));
    let ppk = p.ppk.as_ref().expect("PPK");
    assert_eq!(ppk.id, "ppk-pq-client");
    assert_eq!(&*ppk.key, &(0xa0..0xc0).collect::<Vec<u8>>()[..]);
    assert_eq!(ppk.required, Some(false));
    let got = findings(&p);
    assert_eq!(got.len(), 1, "{got:#?}");
    // The key is in the profile as hex (it is not text), and nowhere in the findings.
    assert!(!got.iter().any(|f| f.contains("a0a1a2")));
    let dir = tmp();
    let (text, loaded) = round_trip(&p, &dir);
    assert!(text.contains("ppk_hex = \"a0a1a2a3"), "{text}");
    let c = &loaded.config;
    let loaded_ppk = c.ppk.as_ref().expect("the loader reads the PPK back");
    assert_eq!(loaded_ppk.key.as_bytes(), &*ppk.key);
    assert_eq!(loaded_ppk.id, b"ppk-pq-client");
    assert!(!loaded_ppk.required);
    assert!(c.pq_fallback);
    assert_eq!(c.ike_proposals, p.ike);
}

/// The pq.mobileconfig fixture changed into `variant` (which must differ from it), imported.
fn pq_variant(original: &str, variant: &str) -> ImportedProfile {
    assert_ne!(variant, original, "the change did not apply");
    import(
        variant.as_bytes(),
        Kind::Mobileconfig,
        &ImportOptions::default(),
    )
    .unwrap()
}

#[test]
fn mobileconfig_half_a_ppk_or_an_unknown_method_is_reported() {
    let text = String::from_utf8(fixture("pq.mobileconfig")).unwrap();
    // No identifier: the key is left out, loudly.
    let no_id = text.replace(
        "<key>PPKIdentifier</key>\n\t\t\t\t<string>ppk-pq-client</string>",
        "",
    );
    let p = pq_variant(&text, &no_id);
    assert!(p.ppk.is_none());
    assert!(
        has(&p, "lossy: PPK: no PPKIdentifier"),
        "{:#?}",
        findings(&p)
    );
    // A short key: left out with its identifier.
    let short = text.replace(
        "oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8=",
        "c2hvcnQ=", // "short"
    );
    let p = pq_variant(&text, &short);
    assert!(p.ppk.is_none());
    assert!(
        has(&p, "lossy: PPK: 5 bytes, shorter than the 16"),
        "{:#?}",
        findings(&p)
    );
    // With EnablePFS the CHILD SA's rekeys run the post-quantum exchange too.
    let pfs = text.replace(
        "<key>EnablePFS</key>\n\t\t\t\t<integer>0</integer>",
        "<key>EnablePFS</key>\n\t\t\t\t<integer>1</integer>",
    );
    let p = pq_variant(&text, &pfs);
    assert_eq!(
        p.esp,
        vec!["aes256gcm16-curve25519-ke1_mlkem768".to_string()]
    );
    assert!(findings(&p).is_empty(), "{:#?}", findings(&p));
    round_trip(&p, &tmp());
    // A method Roam does not know: the IKE proposal falls back to Roam's defaults, said so.
    let unknown = text.replacen("<integer>37</integer>", "<integer>99</integer>", 1);
    let p = pq_variant(&text, &unknown);
    assert!(p.ike.is_empty());
    assert!(
        has(
            &p,
            "lossy: IKESecurityAssociationParameters.PostQuantumKeyExchangeMethods=99: unknown method"
        ),
        "{:#?}",
        findings(&p)
    );
}
