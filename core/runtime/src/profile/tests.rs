//! Tests of the profile loader: every error names its key, and a full profile of each method
//! loads with the documented defaults. The PKI in `testdata/` (ECDSA P-256, valid until 2125)
//! was made with openssl for these tests.

use std::path::Path;

use super::*;
use roam_proto::config::Retransmit;
use std::net::{IpAddr, Ipv6Addr};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
const NOW: Option<u64> = Some(1_750_000_000);

fn testdata() -> &'static Path {
    Path::new(TESTDATA)
}

fn load_str(text: &str) -> Result<Profile, ProfileError> {
    from_str(text, testdata(), NOW)
}

fn err(text: &str) -> ProfileError {
    match load_str(text) {
        Ok(p) => panic!("profile accepted: {p:?}"),
        Err(e) => e,
    }
}

/// The error's message, and that it is about `key`.
fn err_for(text: &str, key: &str) -> String {
    let e = err(text);
    assert_eq!(e.key(), Some(key), "error {e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{key}: ")),
        "message '{msg}' does not start with the key {key}"
    );
    msg
}

const PSK: &str = r#"
[server]
address = "198.51.100.1"
[auth]
method = "psk"
local_id = "psk-client@example.org"
psk = "s3cret-psk-value"
"#;

const EAP: &str = r#"
[server]
address = "vpn.example.org"
ca = "ca.crt"
[auth]
method = "eap-mschapv2"
username = "alice"
password = "alice-password"
"#;

const CERT: &str = r#"
[server]
address = "2001:db8::1"
ca = "ca.crt"
[auth]
method = "certificate"
certificate = "client.crt"
private_key = "client.key"
"#;

// ---- TOML shape ----------------------------------------------------------------------------

#[test]
fn unknown_top_level_key() {
    let msg = err_for(&format!("colour = \"blue\"\n{PSK}"), "colour");
    assert_eq!(msg, "colour: unknown key");
}

#[test]
fn unknown_key_in_a_table_names_the_table() {
    assert_eq!(
        err_for(
            &PSK.replace("[server]", "[server]\nprot = 500"),
            "server.prot"
        ),
        "server.prot: unknown key"
    );
    assert_eq!(
        err_for(
            &format!("{PSK}[tunnel]\nmtu_bytes = 1400\n"),
            "tunnel.mtu_bytes"
        ),
        "tunnel.mtu_bytes: unknown key"
    );
    assert_eq!(
        err_for(&format!("{PSK}[crypto]\nik = []\n"), "crypto.ik"),
        "crypto.ik: unknown key"
    );
    err_for(&PSK.replace("method", "pw = \"x\"\nmethod"), "auth.pw");
}

#[test]
fn wrong_type_names_the_key() {
    let msg = err_for(
        &PSK.replace("[server]", "[server]\nport = \"five hundred\""),
        "server.port",
    );
    assert!(msg.contains("string"), "{msg}");
    err_for(
        &format!("{PSK}[tunnel]\nmobike = \"yes\"\n"),
        "tunnel.mobike",
    );
    err_for(
        &PSK.replace("[server]", "[server]\nport = 70000"),
        "server.port",
    );
}

#[test]
fn wrong_type_of_a_secret_does_not_echo_it() {
    let e = err(&PSK.replace("\"s3cret-psk-value\"", "123456789"));
    assert_eq!(e.to_string(), "auth.psk: must be a string");
}

#[test]
fn syntax_error_gives_the_position_but_never_the_line() {
    let text = PSK.replace("\"s3cret-psk-value\"", "\"s3cret-psk-value");
    let e = err(&text);
    let msg = e.to_string();
    assert!(matches!(e, ProfileError::Syntax { .. }), "{e:?}");
    assert!(msg.starts_with("line 7, column "), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(!format!("{e:?}").contains("s3cret"));
}

#[test]
fn missing_tables() {
    assert_eq!(
        err_for("[auth]\nmethod = \"psk\"\n", "server"),
        "server: missing"
    );
    assert_eq!(
        err_for("[server]\naddress = \"198.51.100.1\"\n", "auth"),
        "auth: missing"
    );
}

// ---- server --------------------------------------------------------------------------------

#[test]
fn server_address_is_required_and_checked() {
    assert_eq!(
        err_for(
            &PSK.replace("address = \"198.51.100.1\"", ""),
            "server.address"
        ),
        "server.address: missing"
    );
    assert_eq!(
        err_for(&PSK.replace("198.51.100.1", ""), "server.address"),
        "server.address: empty"
    );
    let msg = err_for(
        &PSK.replace("198.51.100.1", "vpn example.org"),
        "server.address",
    );
    assert!(
        msg.contains("neither an IP address nor a host name"),
        "{msg}"
    );
    err_for(&PSK.replace("198.51.100.1", "a..b"), "server.address");
}

#[test]
fn server_port_zero_is_rejected() {
    assert_eq!(
        err_for(
            &PSK.replace("[server]", "[server]\nport = 0"),
            "server.port"
        ),
        "server.port: must be 1 to 65535"
    );
}

#[test]
fn server_ca_is_required_for_certificate_servers() {
    let msg = err_for(&EAP.replace("ca = \"ca.crt\"", ""), "server.ca");
    assert_eq!(
        msg,
        "server.ca: missing (required for method \"eap-mschapv2\")"
    );
    let msg = err_for(&CERT.replace("ca = \"ca.crt\"", ""), "server.ca");
    assert_eq!(
        msg,
        "server.ca: missing (required for method \"certificate\")"
    );
}

#[test]
fn unreadable_ca_names_the_key_and_the_path() {
    let e = err(&EAP.replace("ca.crt", "/nonexistent/ca.crt"));
    assert!(
        matches!(&e, ProfileError::File { key, .. } if key == "server.ca"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("server.ca: cannot read /nonexistent/ca.crt: No such file or directory"),
        "{e}"
    );
    // A relative path is relative to the profile's directory.
    let msg = err_for(&EAP.replace("ca.crt", "pki/missing.crt"), "server.ca");
    assert!(
        msg.contains(&format!("{TESTDATA}/pki/missing.crt")),
        "{msg}"
    );
}

#[test]
fn ca_that_is_not_a_certificate() {
    let msg = err_for(
        &PSK.replace("[server]", "[server]\nca = \"client.key\""),
        "server.ca",
    );
    assert!(msg.contains("client.key"), "{msg}");
}

#[test]
fn invalid_server_id() {
    let bad = "C=CH, NOSUCHATTRIBUTE=x, CN=server";
    if Identity::parse(bad).is_ok() {
        return;
    }
    err_for(
        &PSK.replace("[server]", &format!("[server]\nid = \"{bad}\"")),
        "server.id",
    );
}

// ---- auth ----------------------------------------------------------------------------------

#[test]
fn auth_method_is_required_and_known() {
    assert_eq!(
        err_for(&PSK.replace("method = \"psk\"", ""), "auth.method"),
        "auth.method: missing"
    );
    let msg = err_for(&PSK.replace("\"psk\"", "\"xauth\""), "auth.method");
    assert!(
        msg.starts_with("auth.method: unknown method \"xauth\""),
        "{msg}"
    );
}

#[test]
fn eap_tls_is_not_supported_yet() {
    let e = err(&CERT.replace("\"certificate\"\ncertificate", "\"eap-tls\"\ncertificate"));
    assert!(matches!(e, ProfileError::NotSupported { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "auth.method: \"eap-tls\" is not supported yet"
    );
}

#[test]
fn psk_is_required_and_not_empty() {
    let msg = err_for(&PSK.replace("psk = \"s3cret-psk-value\"", ""), "auth.psk");
    assert_eq!(msg, "auth.psk: missing (required for method \"psk\")");
    assert_eq!(
        err_for(&PSK.replace("s3cret-psk-value", ""), "auth.psk"),
        "auth.psk: empty"
    );
}

#[test]
fn psk_needs_a_local_id() {
    let msg = err_for(
        &PSK.replace("local_id = \"psk-client@example.org\"", ""),
        "auth.local_id",
    );
    assert_eq!(msg, "auth.local_id: missing (required for method \"psk\")");
}

#[test]
fn eap_needs_username_and_password() {
    let msg = err_for(&EAP.replace("username = \"alice\"", ""), "auth.username");
    assert_eq!(
        msg,
        "auth.username: missing (required for method \"eap-mschapv2\")"
    );
    let msg = err_for(
        &EAP.replace("password = \"alice-password\"", ""),
        "auth.password",
    );
    assert_eq!(
        msg,
        "auth.password: missing (required for method \"eap-mschapv2\")"
    );
    assert_eq!(
        err_for(&EAP.replace("alice-password", ""), "auth.password"),
        "auth.password: empty"
    );
}

#[test]
fn certificate_needs_certificate_and_key() {
    let msg = err_for(
        &CERT.replace("certificate = \"client.crt\"", ""),
        "auth.certificate",
    );
    assert_eq!(
        msg,
        "auth.certificate: missing (required for method \"certificate\")"
    );
    let msg = err_for(
        &CERT.replace("private_key = \"client.key\"", ""),
        "auth.private_key",
    );
    assert_eq!(
        msg,
        "auth.private_key: missing (required for method \"certificate\")"
    );
}

#[test]
fn unreadable_certificate_and_key() {
    let msg = err_for(&CERT.replace("client.crt", "nope.crt"), "auth.certificate");
    assert!(
        msg.starts_with(&format!(
            "auth.certificate: cannot read {TESTDATA}/nope.crt: "
        )),
        "{msg}"
    );
    let msg = err_for(&CERT.replace("client.key", "nope.key"), "auth.private_key");
    assert!(
        msg.starts_with(&format!(
            "auth.private_key: cannot read {TESTDATA}/nope.key: "
        )),
        "{msg}"
    );
}

#[test]
fn key_that_does_not_match_the_certificate() {
    let msg = err_for(&CERT.replace("client.key", "other.key"), "auth.private_key");
    assert!(msg.contains("does not belong to the certificate"), "{msg}");
}

#[test]
fn keys_of_another_method_are_rejected() {
    let msg = err_for(
        &EAP.replace("[auth]", "[auth]\npsk = \"left over\""),
        "auth.psk",
    );
    assert_eq!(msg, "auth.psk: not used with method \"eap-mschapv2\"");
    err_for(
        &PSK.replace("[auth]", "[auth]\npassword = \"x\""),
        "auth.password",
    );
    err_for(
        &PSK.replace("[auth]", "[auth]\ncertificate = \"client.crt\""),
        "auth.certificate",
    );
}

#[test]
fn files_too_large_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.crt"), vec![b'A'; 1024 * 1024 + 1]).unwrap();
    let e = from_str(&EAP.replace("ca.crt", "big.crt"), dir.path(), NOW).unwrap_err();
    assert_eq!(e.key(), Some("server.ca"));
    assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
}

// ---- crypto and tunnel ---------------------------------------------------------------------

#[test]
fn unknown_algorithm_names_the_proposal() {
    let msg = err_for(
        &format!("{PSK}[crypto]\nike = [\"foo\"]\n"),
        "crypto.ike[0]",
    );
    assert_eq!(msg, "crypto.ike[0]: unknown algorithm 'foo'");
    let text = format!("{PSK}[crypto]\nike = [\"aes256gcm16-prfsha384-ecp384\"]\nesp = [\"aes256gcm16\", \"bar\"]\n");
    assert_eq!(
        err_for(&text, "crypto.esp[1]"),
        "crypto.esp[1]: unknown algorithm 'bar'"
    );
}

#[test]
fn empty_proposal_lists_are_rejected() {
    let msg = err_for(&format!("{PSK}[crypto]\nike = []\n"), "crypto.ike");
    assert!(msg.starts_with("crypto.ike: empty"), "{msg}");
    err_for(&format!("{PSK}[crypto]\nesp = []\n"), "crypto.esp");
}

#[test]
fn tunnel_values_out_of_range() {
    let t = |body: &str| format!("{PSK}[tunnel]\n{body}\n");
    assert_eq!(
        err_for(&t("mtu = 100"), "tunnel.mtu"),
        "tunnel.mtu: must be 576 to 9000"
    );
    assert_eq!(
        err_for(&t("mtu = 9001"), "tunnel.mtu"),
        "tunnel.mtu: must be 576 to 9000"
    );
    assert_eq!(
        err_for(&t("keepalive_seconds = 0"), "tunnel.keepalive_seconds"),
        "tunnel.keepalive_seconds: must be 1 to 3600"
    );
    assert_eq!(
        err_for(&t("dpd_seconds = 86401"), "tunnel.dpd_seconds"),
        "tunnel.dpd_seconds: must be 0 (off) to 86400"
    );
    err_for(&t("dpd_seconds = -1"), "tunnel.dpd_seconds");
}

// ---- the profile file ----------------------------------------------------------------------

#[test]
fn missing_profile_file() {
    let e = load(Path::new("/nonexistent/roam.toml")).unwrap_err();
    assert!(matches!(e, ProfileError::Read { .. }));
    assert_eq!(e.key(), None);
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/roam.toml: No such file"),
        "{e}"
    );
}

#[test]
fn profile_that_is_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, b"[server]\naddress = \"\xff\"\n").unwrap();
    assert!(matches!(
        load(&path).unwrap_err(),
        ProfileError::Syntax { .. }
    ));
}

#[test]
fn relative_paths_are_relative_to_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roam.toml");
    std::fs::write(&path, EAP.replace("ca.crt", "pki/ca.crt")).unwrap();
    let e = load(&path).unwrap_err();
    let expected = format!(
        "server.ca: cannot read {}: ",
        dir.path().join("pki/ca.crt").display()
    );
    assert!(e.to_string().starts_with(&expected), "{e}");
}

// ---- valid profiles ------------------------------------------------------------------------

#[test]
fn psk_profile_with_defaults() {
    let p = load_str(PSK).unwrap();
    assert_eq!(
        p.server,
        ServerAddress {
            host: "198.51.100.1".into(),
            port: 500
        }
    );
    assert_eq!(p.server.to_string(), "198.51.100.1:500");
    let c = &p.config;
    assert!(matches!(&c.auth, ClientAuth::Psk(s) if s.as_bytes() == b"s3cret-psk-value"));
    assert_eq!(
        c.local_id,
        Some(Identity::parse("psk-client@example.org").unwrap())
    );
    assert_eq!(c.server_id, None);
    assert!(c.ca.is_empty());
    assert_eq!(c.ike_proposals, proposal::default_ike());
    assert_eq!(c.esp_proposals, proposal::default_esp());
    assert!(c.allow_weak.is_empty());
    assert!(c.mobike);
    assert!(c.reconnect.is_some(), "reconnects by default");
    assert_eq!(c.dpd, Some(Duration::from_secs(30)));
    assert_eq!(c.keepalive, Duration::from_secs(20));
    assert_eq!(c.mtu, 1400);
    assert!(c.request_ipv4 && c.request_ipv6);
    assert_eq!(c.retransmit, Retransmit::default());
    assert_eq!(c.fragment_size, 1280);
    assert_eq!(c.unix_time, NOW);
    assert_eq!(c.remote_ts.len(), 2);
    assert_eq!(c.remote_ts[0].start_addr, IpAddr::from([0, 0, 0, 0]));
    assert_eq!(c.remote_ts[0].end_addr, IpAddr::from([255, 255, 255, 255]));
    assert_eq!(
        c.remote_ts[1].start_addr,
        IpAddr::from(Ipv6Addr::UNSPECIFIED)
    );
    assert_eq!(c.remote_ts[1].end_addr, IpAddr::from([0xffffu16; 8]));
    assert!(c
        .remote_ts
        .iter()
        .all(|ts| ts.ip_protocol == 0 && ts.start_port == 0 && ts.end_port == 65535));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let p = load_str(PSK).unwrap();
    assert!(!format!("{p:?}").contains("s3cret"));
    let p = load_str(EAP).unwrap();
    assert!(!format!("{p:?}").contains("alice-password"));
}

#[test]
fn full_psk_profile() {
    let text = r#"
[server]
address = "vpn.example.org"
port = 4500
id = "vpn.example.org"
ca = "ca.crt"

[auth]
method = "psk"
local_id = "psk-client@example.org"
psk = "s3cret-psk-value"

[crypto]
ike = ["aes256gcm16-prfsha384-ecp384", "aes128-sha256-modp2048"]
esp = ["aes256gcm16"]
allow_weak = ["modp2048"]

[tunnel]
mobike = false
dpd_seconds = 0
keepalive_seconds = 25
mtu = 1280
reconnect = false
"#;
    let p = load_str(text).unwrap();
    assert_eq!(
        p.server,
        ServerAddress {
            host: "vpn.example.org".into(),
            port: 4500
        }
    );
    let c = &p.config;
    assert_eq!(
        c.server_id,
        Some(Identity::parse("vpn.example.org").unwrap())
    );
    assert_eq!(c.ca.len(), 1);
    assert_eq!(
        c.ike_proposals,
        ["aes256gcm16-prfsha384-ecp384", "aes128-sha256-modp2048"]
    );
    assert_eq!(c.esp_proposals, ["aes256gcm16"]);
    assert_eq!(c.allow_weak, ["modp2048"]);
    assert!(!c.mobike);
    assert_eq!(c.dpd, None);
    assert_eq!(c.keepalive, Duration::from_secs(25));
    assert_eq!(c.mtu, 1280);
    assert_eq!(c.reconnect, None);
}

#[test]
fn full_eap_profile() {
    let p = load_str(EAP).unwrap();
    assert_eq!(p.server.host, "vpn.example.org");
    let c = &p.config;
    match &c.auth {
        ClientAuth::EapMschapv2 { username, password } => {
            assert_eq!(username, "alice");
            assert_eq!(password.as_bytes(), b"alice-password");
        }
        other => panic!("{other:?}"),
    }
    // The identity defaults to the user name.
    assert_eq!(c.local_id, Some(Identity::parse("alice").unwrap()));
    assert_eq!(c.ca.len(), 1);
    let with_id =
        load_str(&EAP.replace("[auth]", "[auth]\nlocal_id = \"alice@example.org\"")).unwrap();
    assert_eq!(
        with_id.config.local_id,
        Some(Identity::parse("alice@example.org").unwrap())
    );
}

#[test]
fn full_certificate_profile() {
    let p = load_str(CERT).unwrap();
    assert_eq!(
        p.server,
        ServerAddress {
            host: "2001:db8::1".into(),
            port: 500
        }
    );
    assert_eq!(p.server.to_string(), "[2001:db8::1]:500");
    let c = &p.config;
    match &c.auth {
        ClientAuth::Certificate { chain, key } => {
            assert_eq!(chain.len(), 1);
            assert!(key.matches(&chain[0]));
        }
        other => panic!("{other:?}"),
    }
    // Without local_id the session takes the certificate's subject.
    assert_eq!(c.local_id, None);
    assert_eq!(c.ca.len(), 1);
}

#[test]
fn bracketed_ipv6_address_and_host_names() {
    let p = load_str(&PSK.replace("198.51.100.1", "[2001:db8::2]")).unwrap();
    assert_eq!(p.server.host, "2001:db8::2");
    let p = load_str(&PSK.replace("198.51.100.1", "vpn-1.example.org.")).unwrap();
    assert_eq!(p.server.host, "vpn-1.example.org.");
}

#[test]
fn lifetimes_from_the_profile() {
    let p = load_str(&format!(
        "{PSK}[lifetimes]\nike_rekey_seconds = 40\nchild_rekey_seconds = 20\njitter_seconds = 0\nchild_rekey_bytes = 1000000\n"
    ))
    .unwrap();
    let l = p.config.lifetimes;
    assert_eq!(l.ike_rekey, Duration::from_secs(40));
    assert_eq!(l.child_rekey, Duration::from_secs(20));
    assert_eq!(l.jitter, Duration::ZERO);
    assert_eq!(l.child_rekey_bytes, Some(1_000_000));
    assert_eq!(l.child_rekey_packets, None);
    let d = load_str(PSK).unwrap().config.lifetimes;
    assert_eq!(d, roam_proto::config::Lifetimes::default());
    assert!(err_for(
        &format!("{PSK}[lifetimes]\nchild_rekey_seconds = 5\n"),
        "lifetimes.child_rekey_seconds"
    )
    .contains("10 to 604800"));
    assert!(err_for(
        &format!("{PSK}[lifetimes]\nchild_rekey_packets = 0\n"),
        "lifetimes.child_rekey_packets"
    )
    .contains("at least 1"));
}

#[test]
fn retransmissions_from_the_profile() {
    let p = load_str(&format!(
        "{PSK}[tunnel]\nretransmit_initial_ms = 1000\nretransmit_tries = 10\ndpd_tries = 8\n"
    ))
    .unwrap();
    let c = &p.config;
    assert_eq!(c.retransmit.initial, Duration::from_secs(1));
    assert_eq!(c.retransmit.tries, 10);
    assert_eq!(c.liveness_retransmit.tries, 8);
    assert_eq!(c.check_retransmit.tries, 8);
    assert!(err_for(
        &format!("{PSK}[tunnel]\nretransmit_tries = 0\n"),
        "tunnel.retransmit_tries"
    )
    .contains("1 to 20"));
    assert!(err_for(
        &format!("{PSK}[tunnel]\nretransmit_initial_ms = 5\n"),
        "tunnel.retransmit_initial_ms"
    )
    .contains("100 to 60000"));
}

// ---- transport (RFC 9329) ------------------------------------------------------------------

#[test]
fn transport_defaults_to_auto_on_tcp_port_4500_after_two_seconds_retrying_udp_every_two_minutes() {
    let p = load_str(PSK).unwrap();
    assert_eq!(
        p.transport,
        TransportPolicy {
            mode: TransportMode::Auto,
            tcp_port: 4500,
            fallback: Duration::from_millis(2000),
            tls: None,
            udp_retry: Some(Duration::from_secs(120)),
        }
    );
}

#[test]
fn transport_keys_are_read() {
    let p = load_str(&format!(
        "{PSK}[tunnel]\ntransport = \"tcp\"\ntcp_port = 443\ntcp_fallback_ms = 750\n"
    ))
    .unwrap();
    assert_eq!(p.transport.mode, TransportMode::Tcp);
    assert_eq!(p.transport.tcp_port, 443);
    assert_eq!(p.transport.fallback, Duration::from_millis(750));
    let p = load_str(&format!("{PSK}[tunnel]\ntransport = \"udp\"\n")).unwrap();
    assert_eq!(p.transport.mode, TransportMode::Udp);
}

// ---- TLS around TCP (RFC 9329 section 8) ---------------------------------------------------

#[test]
fn tls_is_off_by_default() {
    assert_eq!(load_str(PSK).unwrap().transport.tls, None);
    assert_eq!(load_str(EAP).unwrap().transport.tls, None);
}

#[test]
fn tls_defaults_to_no_verification_and_the_host_name_as_sni() {
    let p = load_str(&format!("{EAP}[tunnel]\ntcp_tls = true\n")).unwrap();
    assert_eq!(
        p.transport.tls,
        Some(TlsPolicy {
            server_name: Some("vpn.example.org".into()),
            verify: TlsVerify::None,
        })
    );
    // A literal IP address gives no SNI.
    let p = load_str(&format!("{PSK}[tunnel]\ntcp_tls = true\n")).unwrap();
    let tls = p.transport.tls.unwrap();
    assert_eq!(tls.server_name, None);
    assert_eq!(tls.verify, TlsVerify::None);
}

#[test]
fn tls_server_name_and_ca_verification_are_read() {
    let p = load_str(&format!(
        "{CERT}[tunnel]\ntcp_tls = true\ntcp_tls_server_name = \"gw.example.net\"\ntcp_tls_verify = \"ca\"\n"
    ))
    .unwrap();
    let tls = p.transport.tls.unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("gw.example.net"));
    let TlsVerify::Ca(cas) = &tls.verify else {
        panic!("not ca: {:?}", tls.verify);
    };
    assert_eq!(cas.len(), 1, "the profile's CA certificate");
    assert_eq!(Some(&cas[0][..]), p.config.ca.first().map(|c| c.der()));
}

#[test]
fn tls_keys_are_checked() {
    let t = |base: &str, body: &str| format!("{base}[tunnel]\n{body}\n");
    assert_eq!(
        err_for(
            &t(PSK, "tcp_tls = true\ntcp_tls_verify = \"ca\""),
            "server.ca"
        ),
        "server.ca: missing (required by tunnel.tcp_tls_verify = \"ca\")"
    );
    assert!(err_for(
        &t(EAP, "tcp_tls = true\ntcp_tls_verify = \"pinned\""),
        "tunnel.tcp_tls_verify"
    )
    .contains("\"none\" or \"ca\""));
    assert!(err_for(
        &t(EAP, "tcp_tls = true\ntcp_tls_server_name = \"not a name\""),
        "tunnel.tcp_tls_server_name"
    )
    .contains("neither a host name nor an IP address"));
    assert!(
        err_for(&t(EAP, "tcp_tls_verify = \"ca\""), "tunnel.tcp_tls_verify")
            .contains("only used with tcp_tls = true")
    );
    assert!(err_for(
        &t(EAP, "tcp_tls = false\ntcp_tls_server_name = \"x.example\""),
        "tunnel.tcp_tls_server_name"
    )
    .contains("only used with tcp_tls = true"));
    assert_eq!(
        err_for(&t(EAP, "tcp_tls = \"yes\""), "tunnel.tcp_tls"),
        "tunnel.tcp_tls: invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn transport_values_out_of_range() {
    let t = |body: &str| format!("{PSK}[tunnel]\n{body}\n");
    assert_eq!(
        err_for(&t("transport = \"quic\""), "tunnel.transport"),
        "tunnel.transport: must be \"auto\", \"udp\" or \"tcp\""
    );
    assert_eq!(
        err_for(&t("tcp_port = 0"), "tunnel.tcp_port"),
        "tunnel.tcp_port: must be 1 to 65535"
    );
    err_for(&t("tcp_port = 70000"), "tunnel.tcp_port");
    assert_eq!(
        err_for(&t("tcp_fallback_ms = 50"), "tunnel.tcp_fallback_ms"),
        "tunnel.tcp_fallback_ms: must be 100 to 60000"
    );
    err_for(&t("tcp_fallback_ms = 60001"), "tunnel.tcp_fallback_ms");
    assert_eq!(
        err_for(&t("udp_retry_seconds = 4"), "tunnel.udp_retry_seconds"),
        "tunnel.udp_retry_seconds: must be 0 (never) or 5 to 86400"
    );
    err_for(&t("udp_retry_seconds = 86401"), "tunnel.udp_retry_seconds");
}

#[test]
fn udp_retry_defaults_to_two_minutes_and_zero_turns_it_off() {
    let t = |body: &str| format!("{PSK}[tunnel]\n{body}\n");
    let retry = |text: &str| load_str(text).unwrap().transport.udp_retry;
    assert_eq!(retry(PSK), Some(std::time::Duration::from_secs(120)));
    assert_eq!(retry(&t("udp_retry_seconds = 0")), None);
    assert_eq!(
        retry(&t("udp_retry_seconds = 30")),
        Some(std::time::Duration::from_secs(30))
    );
}

#[test]
fn post_quantum_keys() {
    let text = format!(
        "{PSK}ppk = \"0123456789abcdef-post-quantum\"\nppk_id = \"alice-ppk\"\n\
         [crypto]\nike = [\"aes256gcm16-prfsha384-x25519-ke1_mlkem768\"]\npq_fallback = true\n"
    );
    let p = load_str(&text).unwrap();
    let ppk = p.config.ppk.as_ref().expect("ppk");
    assert_eq!(ppk.id, b"alice-ppk");
    assert_eq!(ppk.key.as_bytes(), b"0123456789abcdef-post-quantum");
    assert!(
        ppk.required,
        "a configured PPK is mandatory unless the profile says otherwise"
    );
    assert!(p.config.pq_fallback);
    assert_eq!(
        p.config.ike_proposals,
        vec!["aes256gcm16-prfsha384-x25519-ke1_mlkem768".to_string()]
    );
    // Defaults: no PPK, no fallback.
    let p = load_str(PSK).unwrap();
    assert!(p.config.ppk.is_none());
    assert!(!p.config.pq_fallback);
    // Optional mode.
    let text = format!(
        "{PSK}ppk = \"0123456789abcdef-post-quantum\"\nppk_id = \"x\"\nppk_required = false\n"
    );
    assert!(!load_str(&text).unwrap().config.ppk.unwrap().required);
    // A key that is not text, as hex digits (either case).
    let text = format!("{PSK}ppk_hex = \"00FF10ee0123456789abcdef00112233\"\nppk_id = \"bin\"\n");
    let ppk = load_str(&text).unwrap().config.ppk.unwrap();
    assert_eq!(
        ppk.key.as_bytes(),
        [
            0x00, 0xff, 0x10, 0xee, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x11,
            0x22, 0x33
        ]
    );
}

#[test]
fn post_quantum_key_errors() {
    err_for(
        &format!("{PSK}ppk = \"0123456789abcdef-pq\"\n"),
        "auth.ppk_id",
    );
    err_for(
        &format!("{PSK}ppk = \"short\"\nppk_id = \"a\"\n"),
        "auth.ppk",
    );
    err_for(&format!("{PSK}ppk_id = \"a\"\n"), "auth.ppk_id");
    err_for(&format!("{PSK}ppk_required = true\n"), "auth.ppk_required");
    err_for(
        &format!("{PSK}[crypto]\nike = [\"aes256gcm16-prfsha384-mlkem768\"]\n"),
        "crypto.ike[0]",
    );
    // Hex form: digits only, an even number, not beside the text form; never echoed.
    let msg = err(&format!(
        "{PSK}ppk_hex = \"00112233445566778899aabbccddeefZ\"\nppk_id = \"a\"\n"
    ))
    .to_string();
    assert!(msg.starts_with("auth.ppk_hex"), "{msg}");
    assert!(!msg.contains("0011223344"), "{msg}");
    err_for(
        &format!("{PSK}ppk_hex = \"001\"\nppk_id = \"a\"\n"),
        "auth.ppk_hex",
    );
    err_for(
        &format!("{PSK}ppk_hex = \"0011\"\nppk_id = \"a\"\n"),
        "auth.ppk",
    );
    err_for(
        &format!(
            "{PSK}ppk = \"0123456789abcdef-pq\"\nppk_hex = \"00112233445566778899aabbccddeeff\"\nppk_id = \"a\"\n"
        ),
        "auth.ppk_hex",
    );
    // A PPK of the wrong type does not echo its value.
    let msg = err(&format!("{PSK}ppk = 12345678901234567\nppk_id = \"a\"\n")).to_string();
    assert!(!msg.contains("12345678901234567"), "{msg}");
}
