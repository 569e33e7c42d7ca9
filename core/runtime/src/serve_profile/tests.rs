//! The server profile: the contract's example loads with the documented pool split and
//! defaults; every mistake is refused naming its key; secrets never show in errors.

use std::path::Path;

use super::*;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");

const FULL: &str = r#"
[server]
listen = "198.51.100.1"
port = 500
id = "vpn.example.org"

[auth]
method = "psk"
psk = "correct horse battery staple"

[pool]
ipv4 = "198.18.0.0/24"
ipv6 = "2001:db8:ffff::/112"
dns = ["203.0.113.53", "2001:db8:203::53"]

[tunnel]
subnets = ["0.0.0.0/0", "::/0"]
mobike = true
mtu = 1400
tun_name = "roams0"

[crypto]
ike = ["aes256gcm16-prfsha256-curve25519"]
esp = ["aes256gcm16"]
"#;

const MINIMAL: &str = r#"
[server]
id = "vpn.example.org"
[auth]
method = "psk"
psk = "s3cret-psk"
[pool]
ipv4 = "198.18.0.0/24"
"#;

fn load_str(text: &str) -> Result<ServerProfile, ProfileError> {
    from_str(text, Path::new(TESTDATA), Some(1_750_000_000))
}

fn err_for(text: &str, key: &str) -> String {
    let e = match load_str(text) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e,
    };
    assert_eq!(e.key(), Some(key), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{key}: ")), "{msg}");
    assert!(!msg.contains("s3cret") && !msg.contains("horse"), "{msg}");
    msg
}

#[test]
fn the_contract_example_loads() {
    let p = load_str(FULL).unwrap();
    assert_eq!(p.listen, "198.51.100.1:500".parse().unwrap());
    let r = &p.responder;
    assert_eq!(r.id.to_string(), "vpn.example.org");
    assert!(matches!(r.auth, ResponderAuth::Psk(_)));
    // The server is .1 on the TUN; clients get .2 to .254.
    assert_eq!(r.pool4, Some(("198.18.0.2".parse().unwrap(), 253)));
    assert_eq!(r.pool6, Some(("2001:db8:ffff::2".parse().unwrap(), 65534)));
    assert_eq!(r.dns.len(), 2);
    assert_eq!(r.subnets, vec![ts_any(false), ts_any(true)]);
    assert_eq!(r.ike.len(), 1);
    assert_eq!(r.esp.len(), 1);
    assert_eq!(
        p.tun.status_line(),
        "tun name=roams0 mtu=1400 addresses=198.18.0.1/24,2001:db8:ffff::1/112 \
         routes=198.18.0.0/24,2001:db8:ffff::/112"
    );
    assert!(
        !format!("{p:?}").contains("horse"),
        "the PSK leaks in Debug"
    );
}

#[test]
fn defaults() {
    let p = load_str(MINIMAL).unwrap();
    assert_eq!(p.listen, "0.0.0.0:500".parse().unwrap());
    assert_eq!(p.tun.name, "roams0");
    assert_eq!(p.tun.mtu, 1400);
    assert!(p.responder.mobike);
    assert_eq!(p.responder.pool6, None);
    assert_eq!(p.responder.subnets, vec![ts_any(false), ts_any(true)]);
    assert_eq!(p.responder.ike.len(), proposal::default_ike().len());
}

#[test]
fn unknown_keys_are_named() {
    let msg = err_for(
        &format!("{MINIMAL}\n[tunnel]\nmtu_size = 1400\n"),
        "tunnel.mtu_size",
    );
    assert!(msg.contains("unknown key"), "{msg}");
    let e = load_str(&format!("{MINIMAL}\n[extra]\n")).unwrap_err();
    assert_eq!(e.key(), Some("extra"));
}

#[test]
fn required_keys() {
    let no_id = MINIMAL.replace("id = \"vpn.example.org\"", "");
    err_for(&no_id, "server.id");
    err_for(&MINIMAL.replace("psk = \"s3cret-psk\"", ""), "auth.psk");
    err_for(
        &MINIMAL.replace("psk = \"s3cret-psk\"", "psk = \"\""),
        "auth.psk",
    );
    err_for(&MINIMAL.replace("method = \"psk\"", ""), "auth.method");
    err_for(
        &MINIMAL.replace("method = \"psk\"", "method = \"eap\""),
        "auth.method",
    );
    err_for(
        &MINIMAL.replace("ipv4 = \"198.18.0.0/24\"", ""),
        "pool.ipv4",
    );
}

#[test]
fn bad_values_name_their_key() {
    for (text, key) in [
        (
            MINIMAL.replace("[server]\n", "[server]\nlisten = \"nowhere\"\n"),
            "server.listen",
        ),
        (
            MINIMAL.replace("[server]\n", "[server]\nport = 0\n"),
            "server.port",
        ),
        (
            MINIMAL.replace("id = \"vpn.example.org\"", "id = \"\""),
            "server.id",
        ),
    ] {
        err_for(&text, key);
    }
    for (pool, why) in [
        ("198.18.0.1/24", "host bits"),
        ("198.18.0.0/31", "/30"),
        ("198.18.0.0", "not a network"),
        ("2001:db8::/64", "not an IPv4"),
        ("198.18.0.0/33", "not a network"),
    ] {
        let msg = err_for(&MINIMAL.replace("198.18.0.0/24", pool), "pool.ipv4");
        assert!(msg.contains(why), "{pool}: {msg}");
    }
    err_for(&format!("{MINIMAL}ipv6 = \"198.18.1.0/24\"\n"), "pool.ipv6");
    err_for(&format!("{MINIMAL}dns = [\"x\"]\n"), "pool.dns[0]");
    err_for(
        &format!("{MINIMAL}[tunnel]\nsubnets = [\"0.0.0.0/0\", \"10.0.0.0/99\"]\n"),
        "tunnel.subnets[1]",
    );
    err_for(
        &format!("{MINIMAL}[tunnel]\nsubnets = []\n"),
        "tunnel.subnets",
    );
    err_for(&format!("{MINIMAL}[tunnel]\nmtu = 100\n"), "tunnel.mtu");
    let v6 = format!("{MINIMAL}ipv6 = \"2001:db8:ffff::/112\"\n[tunnel]\nmtu = 1200\n");
    assert!(err_for(&v6, "tunnel.mtu").contains("1280"));
    err_for(
        &format!("{MINIMAL}[tunnel]\ntun_name = \"a/b\"\n"),
        "tunnel.tun_name",
    );
    err_for(
        &format!("{MINIMAL}[tunnel]\ntun_name = \"much-too-long-name\"\n"),
        "tunnel.tun_name",
    );
    err_for(
        &format!("{MINIMAL}[crypto]\nike = [\"aes256-md5-modp1024\"]\n"),
        "crypto.ike[0]",
    );
    err_for(&format!("{MINIMAL}[crypto]\nesp = []\n"), "crypto.esp");
    err_for(&format!("{MINIMAL}[tunnel]\nmtu = \"big\"\n"), "tunnel.mtu");
}

#[test]
fn a_psk_of_the_wrong_type_is_not_echoed() {
    let text = MINIMAL.replace("psk = \"s3cret-psk\"", "psk = [\"s3cret\"]");
    let msg = err_for(&text, "auth.psk");
    assert!(msg.contains("must be a string"), "{msg}");
}

#[test]
fn certificate_servers() {
    let cert = r#"
[server]
id = "vpn.example.org"
certificate = "client.crt"
private_key = "client.key"
[auth]
method = "certificate"
ca = "ca.crt"
[pool]
ipv6 = "2001:db8:ffff::/64"
"#;
    let p = load_str(cert).unwrap();
    assert!(matches!(
        p.responder.auth,
        ResponderAuth::Certificate { ref chain, .. } if chain.len() == 1
    ));
    assert_eq!(p.responder.ca.len(), 1);
    assert_eq!(p.responder.pool4, None);
    assert_eq!(p.responder.pool6.map(|p| p.1), Some(u32::MAX));
    assert_eq!(
        p.tun.addresses,
        vec![("2001:db8:ffff::1".parse().unwrap(), 64)]
    );

    err_for(&cert.replace("ca = \"ca.crt\"", ""), "auth.ca");
    err_for(
        &cert.replace("private_key = \"client.key\"", ""),
        "server.private_key",
    );
    err_for(
        &cert.replace("client.key", "other.key"),
        "server.private_key",
    );
    let msg = err_for(&cert.replace("ca.crt", "missing.crt"), "auth.ca");
    assert!(msg.contains(&format!("{TESTDATA}/missing.crt")), "{msg}");
    err_for(
        &cert.replace("ca = \"ca.crt\"", "ca = \"client.key\""),
        "auth.ca",
    );
    err_for(
        &cert.replace(
            "method = \"certificate\"",
            "method = \"certificate\"\npsk = \"s3cret\"",
        ),
        "auth.psk",
    );
    // And the other way round: certificate keys are not for PSK servers.
    err_for(
        &MINIMAL.replace("[auth]", "certificate = \"client.crt\"\n[auth]"),
        "server.certificate",
    );
}

#[test]
fn tcp_port_listens_on_tcp_beside_udp() {
    let p = load_str(MINIMAL).unwrap();
    assert_eq!(p.tcp, None, "UDP only unless asked");
    let p = load_str(&FULL.replace("port = 500\n", "port = 500\ntcp_port = 443\n")).unwrap();
    assert_eq!(p.tcp, Some("198.51.100.1:443".parse().unwrap()));
    assert_eq!(p.listen, "198.51.100.1:500".parse().unwrap());
    assert_eq!(
        err_for(
            &MINIMAL.replace("[server]\n", "[server]\ntcp_port = 0\n"),
            "server.tcp_port"
        ),
        "server.tcp_port: must be 1 to 65535"
    );
}

#[test]
fn tls_cert_and_key_serve_tls_on_the_tcp_port() {
    let tcp = MINIMAL.replace("[server]\n", "[server]\ntcp_port = 443\n");
    assert_eq!(load_str(&tcp).unwrap().tls, None, "plain TCP unless asked");
    let with = |extra: &str| tcp.replace("[server]\n", &format!("[server]\n{extra}\n"));
    let p = load_str(&with("tls_cert = \"client.crt\"\ntls_key = \"client.key\"")).unwrap();
    assert!(p.tls.is_some());
    assert_eq!(
        err_for(&with("tls_cert = \"client.crt\""), "server.tls_key"),
        "server.tls_key: missing (tls_cert is set)"
    );
    err_for(&with("tls_key = \"client.key\""), "server.tls_cert");
    assert!(err_for(
        &with("tls_cert = \"client.crt\"\ntls_key = \"other.key\""),
        "server.tls_key"
    )
    .contains("does not belong to the certificate"));
    assert!(err_for(
        &with("tls_cert = \"client.key\"\ntls_key = \"client.key\""),
        "server.tls_cert"
    )
    .contains("no CERTIFICATE"));
    err_for(
        &with("tls_cert = \"client.crt\"\ntls_key = \"absent.key\""),
        "server.tls_key",
    );
    // TLS is served on the TCP port: none, no TLS.
    assert!(err_for(
        &MINIMAL.replace(
            "[server]\n",
            "[server]\ntls_cert = \"client.crt\"\ntls_key = \"client.key\"\n"
        ),
        "server.tcp_port"
    )
    .contains("TCP port"));
}
