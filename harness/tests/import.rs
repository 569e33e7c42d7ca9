//! `roam import` as a user runs it on the example files (core/runtime/tests/data/import):
//! the printed TOML fed back to the profile loader field by field, the findings on stderr,
//! the extracted PEM files and their mode, and the exit codes.

// Tests of the binary read files and the environment; the workspace's clippy.toml keeps
// those rules for roam-proto.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use roam_proto::config::ClientAuth;
use roam_runtime::profile::{self, Profile};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/runtime/tests/data/import")
        .join(name)
}

fn import(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roam"))
        .arg("import")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("ROAM_P12_PASSWORD")
        .env_remove("ROAM_PASSWORD")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn warnings(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("warning: ").map(str::to_string))
        .collect()
}

/// The printed TOML loaded as `roam connect --profile` would (validity checked in 2030, the
/// test PKI's own reference time).
fn load(out: &Output, dir: &Path) -> Profile {
    let text = stdout(out);
    profile::from_str(&text, dir, Some(1_900_000_000)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn assert_private_pem(path: &Path, label: &str) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "{}",
        path.display()
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.starts_with(&format!("-----BEGIN {label}-----")),
        "{text}"
    );
}

#[test]
fn sswan_eap_with_the_password_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = import(
        &[
            example("eap.sswan").to_str().unwrap(),
            "--password",
            "pw-from-cli",
        ],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = load(&out, dir.path());
    assert_eq!(p.server.host, "vpn.example.org");
    assert_eq!(p.server.port, 4500);
    assert_eq!(
        p.config.server_id.as_ref().unwrap().to_string(),
        "vpn.example.org"
    );
    assert_eq!(p.config.ca.len(), 1);
    match &p.config.auth {
        ClientAuth::EapMschapv2 { username, password } => {
            assert_eq!(username, "alice");
            assert_eq!(password.as_bytes(), b"pw-from-cli");
        }
        _ => panic!("not EAP"),
    }
    assert_eq!(p.config.ike_proposals, ["aes256gcm16-prfsha384-ecp384"]);
    assert_eq!(
        p.config.esp_proposals,
        roam_proto::crypto::proposal::default_esp()
    );
    assert_eq!(p.config.mtu, 1380);
    assert_eq!(p.config.keepalive, Duration::from_secs(25));
    let w = warnings(&out);
    assert!(!w.iter().any(|f| f.starts_with("missing:")), "{w:#?}");
    for expected in [
        "lossy: esp-proposal: \"aes256-sha1\" refused",
        "unsupported: dns-servers",
        "unsupported: split-tunneling.subnets",
        "unsupported: split-tunneling.excluded",
        "unsupported: split-tunneling.block-ipv6",
        "unsupported: proxy.host",
        "unsupported: proxy.port",
    ] {
        assert!(
            w.iter().any(|f| f.starts_with(expected)),
            "{expected} not in {w:#?}"
        );
        // The same findings head the TOML as comments.
        assert!(
            stdout(&out).contains(&format!("# {expected}")),
            "{expected}"
        );
    }
    assert_private_pem(&dir.path().join("eap-ca.pem"), "CERTIFICATE");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pw-from-cli"));
}

#[test]
fn sswan_eap_without_a_password_prints_the_toml_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = import(&[example("eap.sswan").to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: missing: auth.password"), "{err}");
    assert!(
        err.ends_with("error: import: the profile is not complete yet: auth.password: missing (required for method \"eap-mschapv2\")\n"),
        "{err}"
    );
    assert!(stdout(&out).contains("method = \"eap-mschapv2\""));
}

#[test]
fn sswan_certificate_from_the_aes_pkcs12_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roam"))
        .args(["import", example("cert.sswan").to_str().unwrap(), "--dir"])
        .arg(dir.path())
        .env("ROAM_P12_PASSWORD", "p12-aes-pw")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(warnings(&out).is_empty(), "{:#?}", warnings(&out));
    let p = load(&out, dir.path());
    assert_eq!(p.server.host, "198.51.100.1");
    assert_eq!(p.server.port, 500);
    assert_eq!(
        p.config.server_id.as_ref().unwrap().to_string(),
        "vpn.example.org"
    );
    assert_eq!(
        p.config.local_id.as_ref().unwrap().to_string(),
        "C=CH, O=ref-lab, CN=client-p256"
    );
    match &p.config.auth {
        ClientAuth::Certificate { chain, .. } => assert_eq!(chain.len(), 1),
        _ => panic!("not a certificate"),
    }
    assert_eq!(p.config.ike_proposals, ["aes128-sha256-curve25519"]);
    assert_eq!(p.config.esp_proposals, ["aes128gcm16"]);
    assert_eq!(p.config.mtu, 1400);
    assert_private_pem(&dir.path().join("cert-key.pem"), "PRIVATE KEY");
    assert_private_pem(&dir.path().join("cert-cert.pem"), "CERTIFICATE");
    assert_private_pem(&dir.path().join("cert-ca.pem"), "CERTIFICATE");
}

#[test]
fn wrong_pkcs12_password_exits_2_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = import(
        &[
            example("cert.sswan").to_str().unwrap(),
            "--p12-password",
            "wrong-one",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: import: local.p12: wrong password, or the file is damaged (its MAC does not match)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn mobileconfig_psk_with_sa_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = import(&[example("psk.mobileconfig").to_str().unwrap()], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = load(&out, dir.path());
    assert_eq!(p.server.host, "203.0.113.7");
    assert_eq!(p.server.port, 500);
    match &p.config.auth {
        ClientAuth::Psk(psk) => assert_eq!(psk.as_bytes(), b"an-example-shared-secret"),
        _ => panic!("not PSK"),
    }
    assert_eq!(
        p.config.local_id.as_ref().unwrap().to_string(),
        "psk-client@example.org"
    );
    assert_eq!(p.config.ike_proposals, ["aes256gcm16-prfsha384-ecp384"]);
    assert_eq!(p.config.esp_proposals, ["aes128gcm16-curve25519"]);
    assert!(!p.config.mobike);
    assert_eq!(p.config.dpd, Some(Duration::from_secs(60)));
    assert_eq!(p.config.keepalive, Duration::from_secs(30));
    assert_eq!(p.config.mtu, 1360);
    assert_eq!(p.config.lifetimes.ike_rekey, Duration::from_secs(480 * 60));
    assert_eq!(p.config.lifetimes.child_rekey, Duration::from_secs(3600));
    let w = warnings(&out);
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w
        .iter()
        .any(|f| f.starts_with("unsupported: OnDemandEnabled: 1")));
    assert!(w
        .iter()
        .any(|f| f.starts_with("unsupported: OnDemandRules")));
    assert!(w
        .iter()
        .any(|f| f.starts_with("unsupported: DisableRedirect: 0")));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no files for PSK"
    );
}

#[test]
fn mobileconfig_eap_refuses_des_and_reports_what_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let out = import(&[example("eap.mobileconfig").to_str().unwrap()], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = load(&out, dir.path());
    match &p.config.auth {
        ClientAuth::EapMschapv2 { username, password } => {
            assert_eq!(username, "alice");
            assert_eq!(password.as_bytes(), b"an-example-password");
        }
        _ => panic!("not EAP"),
    }
    assert_eq!(
        p.config.local_id.as_ref().unwrap().to_string(),
        "alice@example.org"
    );
    assert_eq!(p.config.ca.len(), 1);
    assert_eq!(
        p.config.ike_proposals,
        roam_proto::crypto::proposal::default_ike()
    );
    assert_eq!(p.config.dpd, Some(Duration::from_secs(600)));
    let w = warnings(&out);
    for expected in [
        "lossy: IKESecurityAssociationParameters.EncryptionAlgorithm=DES: refused for IKE",
        "lossy: IKESecurityAssociationParameters.EncryptionAlgorithm=DES: refused for ESP",
        "unsupported: TLSMinimumVersion",
        "unsupported: DNS.ServerAddresses",
    ] {
        assert!(
            w.iter().any(|f| f.starts_with(expected)),
            "{expected} not in {w:#?}"
        );
    }
    assert_eq!(w.len(), 4, "{w:#?}");
    // Apple's PPK comes across (as hex: Apple's PPK is data), mandatory as Apple's default.
    let ppk = p.config.ppk.as_ref().expect("the PPK");
    assert_eq!(ppk.id, b"ppk-alice");
    assert_eq!(ppk.key.as_bytes(), b"post-quantum-example");
    assert!(ppk.required);
}

#[test]
fn binary_mobileconfig_with_a_legacy_3des_pkcs12() {
    let dir = tempfile::tempdir().unwrap();
    let out = import(
        &[example("cert-binary.mobileconfig").to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = load(&out, dir.path());
    match &p.config.auth {
        ClientAuth::Certificate { chain, .. } => assert_eq!(chain.len(), 1),
        _ => panic!("not a certificate"),
    }
    assert_eq!(
        p.config.local_id.as_ref().unwrap().to_string(),
        "C=CH, O=ref-lab, CN=client-rsa"
    );
    assert_eq!(p.config.ca.len(), 1);
    assert_eq!(p.config.ike_proposals, ["aes256-sha256-modp2048"]);
    assert_eq!(p.config.esp_proposals, ["aes256-sha256"]);
    assert_eq!(
        warnings(&out),
        ["unsupported: EnableCertificateRevocationCheck: 1 (Roam does not check CRLs or OCSP)"]
    );
    for (file, label) in [
        ("cert-binary-key.pem", "PRIVATE KEY"),
        ("cert-binary-cert.pem", "CERTIFICATE"),
        ("cert-binary-ca.pem", "CERTIFICATE"),
    ] {
        assert_private_pem(&dir.path().join(file), label);
    }
}

#[test]
fn unreadable_or_unknown_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "hello").unwrap();
    let out = import(&[junk.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: import: neither a .sswan (JSON) nor a .mobileconfig (plist) file\n"
    );
    let broken = dir.path().join("broken.sswan");
    std::fs::write(
        &broken,
        "{\"type\": \"ikev2-eap\", \"remote\": {\"addr\": \"vpn.example.org\"}, }",
    )
    .unwrap();
    let out = import(&[broken.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("error: import: not a .sswan file: malformed JSON at line 1"));
    let out = import(
        &[dir.path().join("absent.sswan").to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: import: cannot read "));
}
