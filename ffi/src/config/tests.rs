use super::*;

fn psk_config() -> VpnConfig {
    VpnConfig {
        server: ServerConfig {
            address: "vpn.example.org".into(),
            port: 4500,
            id: Some("vpn.example.org".into()),
            ca_pem: None,
        },
        auth: AuthConfig::Psk {
            local_id: "phone@example.org".into(),
            psk: SecretText::new("a long shared secret".into()),
        },
        crypto: None,
        tunnel: None,
        ppk: None,
    }
}

fn key_of(r: Result<Validated, VpnError>) -> String {
    match r {
        Err(VpnError::Config { key, .. }) => key,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn a_psk_config_validates_with_the_defaults() {
    let v = validate(&psk_config(), None).unwrap();
    assert_eq!(v.server.host, "vpn.example.org");
    assert_eq!(v.server.port, 4500);
    assert_eq!(v.config.mtu, 1400);
    assert_eq!(v.config.ike_proposals, proposal::default_ike());
    assert!(v.config.mobike);
    // UDP first, TCP (RFC 9329) when UDP goes unanswered for 2 s: as the profile's default
    assert_eq!(
        v.transport,
        profile::transport_policy(None, None, None).unwrap()
    );
    assert!(v.config.ppk.is_none() && !v.config.pq_fallback);
}

#[test]
fn transport_ppk_and_pq_fallback_reach_the_session() {
    let mut c = psk_config();
    c.tunnel = Some(TunnelConfig {
        transport: "tcp".into(),
        tcp_port: 443,
        ..TunnelConfig::default()
    });
    c.crypto = Some(CryptoConfig {
        ike: vec!["aes256gcm16-prfsha384-x25519-ke1_mlkem768".into()],
        pq_fallback: true,
        ..CryptoConfig::default()
    });
    c.ppk = Some(PpkConfig {
        id: "alice-ppk".into(),
        key: SecretText::new("a post-quantum preshared key".into()),
        key_is_hex: false,
        required: false,
    });
    let v = validate(&c, None).unwrap();
    assert_eq!(v.transport.mode, roam_runtime::tcp::TransportMode::Tcp);
    assert_eq!(v.transport.tcp_port, 443);
    assert!(v.config.pq_fallback);
    let ppk = v.config.ppk.as_ref().unwrap();
    assert_eq!(ppk.id, b"alice-ppk");
    assert!(!ppk.required);

    let mut bad = c.clone();
    bad.tunnel = Some(TunnelConfig {
        transport: "quic".into(),
        ..TunnelConfig::default()
    });
    assert_eq!(key_of(validate(&bad, None)), "tunnel.transport");
    let mut bad = c.clone();
    bad.ppk = Some(PpkConfig {
        id: "alice-ppk".into(),
        key: SecretText::new("short".into()),
        key_is_hex: false,
        required: true,
    });
    assert_eq!(key_of(validate(&bad, None)), "auth.ppk");
    // A key that is not text travels as hex digits.
    let mut hex = c.clone();
    hex.ppk = Some(PpkConfig {
        id: "bin".into(),
        key: SecretText::new("00ff00ff00ff00ff00ff00ff00ff00ff".into()),
        key_is_hex: true,
        required: true,
    });
    let v = validate(&hex, None).unwrap();
    assert_eq!(v.config.ppk.unwrap().key.as_bytes(), [0, 0xff].repeat(8));
    let mut bad = hex.clone();
    if let Some(p) = bad.ppk.as_mut() {
        p.key = SecretText::new("00ff00ff00ff00ff00ff00ff00ff00fg".into());
    }
    assert_eq!(key_of(validate(&bad, None)), "ppk.key");
}

#[test]
fn errors_name_the_field() {
    let mut c = psk_config();
    c.server.address = "not a host!".into();
    assert_eq!(key_of(validate(&c, None)), "server.address");

    let mut c = psk_config();
    c.server.port = 0;
    assert_eq!(key_of(validate(&c, None)), "server.port");

    let mut c = psk_config();
    c.auth = AuthConfig::Psk {
        local_id: "me@example.org".into(),
        psk: SecretText::new(String::new()),
    };
    assert_eq!(key_of(validate(&c, None)), "auth.psk");

    let mut c = psk_config();
    c.crypto = Some(CryptoConfig {
        ike: vec!["aes256-sha256-modp2048".into(), "nonsense".into()],
        ..CryptoConfig::default()
    });
    assert_eq!(key_of(validate(&c, None)), "crypto.ike[1]");

    let mut c = psk_config();
    c.tunnel = Some(TunnelConfig {
        mtu: 100,
        ..TunnelConfig::default()
    });
    assert_eq!(key_of(validate(&c, None)), "tunnel.mtu");

    let mut c = psk_config();
    c.auth = AuthConfig::EapMschapv2 {
        username: "alice".into(),
        password: SecretText::new("pw-123456".into()),
        local_id: None,
    };
    assert_eq!(key_of(validate(&c, None)), "server.ca");

    let mut c = psk_config();
    c.auth = AuthConfig::Certificate {
        certificate_pem: "garbage".into(),
        private_key_pem: SecretText::new("also garbage".into()),
        local_id: None,
    };
    assert_eq!(key_of(validate(&c, None)), "auth.certificate");
}

#[test]
fn secrets_stay_out_of_debug_and_errors() {
    let c = psk_config();
    assert!(!format!("{c:?}").contains("a long shared secret"));
    let mut c = psk_config();
    c.auth = AuthConfig::Certificate {
        certificate_pem: "garbage".into(),
        private_key_pem: SecretText::new("SECRET-KEY-MATERIAL".into()),
        local_id: None,
    };
    let e = validate(&c, None).unwrap_err().to_string();
    assert!(!e.contains("SECRET-KEY-MATERIAL"), "{e}");
}

#[test]
fn a_profile_source_reports_profile_keys() {
    let source = ConfigSource::Profile {
        text: Arc::new(Zeroizing::new(
            "[server]\naddress = \"192.0.2.1\"\n[auth]\nmethod = \"psk\"\nlocal_id = \"a@b.example\"\n"
                .into(),
        )),
        base_dir: ".".into(),
    };
    match source.build() {
        Err(VpnError::Config { key, .. }) => assert_eq!(key, "auth.psk"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tcp_tls_reaches_the_transport_and_is_checked() {
    use roam_runtime::tls::{TlsPolicy, TlsVerify};
    let with = |tunnel: TunnelConfig| {
        let mut c = psk_config();
        c.tunnel = Some(tunnel);
        c
    };
    // Off by default, and nothing to say about it then.
    assert_eq!(validate(&psk_config(), None).unwrap().transport.tls, None);
    let tls_on = TunnelConfig {
        transport: "tcp".into(),
        tcp_tls: true,
        ..TunnelConfig::default()
    };
    if !roam_runtime::tls::SUPPORTED {
        // A build without TLS refuses it by name rather than connecting in clear.
        assert_eq!(key_of(validate(&with(tls_on), None)), "tunnel.tcp_tls");
        return;
    }
    let v = validate(&with(tls_on.clone()), None).unwrap();
    assert_eq!(
        v.transport.tls,
        Some(TlsPolicy {
            server_name: Some("vpn.example.org".into()),
            verify: TlsVerify::None,
        })
    );
    // "ca" needs the CA the record gives IKE; with it, that CA is the TLS trust anchor.
    let ca_on = TunnelConfig {
        tcp_tls_verify: "ca".into(),
        tcp_tls_server_name: Some("gw.example.net".into()),
        ..tls_on.clone()
    };
    assert_eq!(key_of(validate(&with(ca_on.clone()), None)), "server.ca");
    let mut c = with(ca_on);
    c.server.ca_pem = Some(include_str!("../../../core/runtime/testdata/ca.crt").into());
    let tls = validate(&c, None).unwrap().transport.tls.unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("gw.example.net"));
    assert!(matches!(&tls.verify, TlsVerify::Ca(cas) if cas.len() == 1));
    // Unknown modes, bad names, and TLS settings while TLS is off name their field.
    let bad = TunnelConfig {
        tcp_tls_verify: "pinned".into(),
        ..tls_on.clone()
    };
    assert_eq!(key_of(validate(&with(bad), None)), "tunnel.tcp_tls_verify");
    let bad = TunnelConfig {
        tcp_tls_server_name: Some("no spaces please".into()),
        ..tls_on
    };
    assert_eq!(
        key_of(validate(&with(bad), None)),
        "tunnel.tcp_tls_server_name"
    );
    let bad = TunnelConfig {
        tcp_tls_verify: "ca".into(),
        ..TunnelConfig::default()
    };
    assert_eq!(key_of(validate(&with(bad), None)), "tunnel.tcp_tls_verify");
}
