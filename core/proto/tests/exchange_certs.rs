//! Certificate authentication step by step on the virtual clock: RFC 7427 signatures with
//! RSA, ECDSA P-256/P-384 and Ed25519 client keys, an intermediate chain, fragmented
//! IKE_AUTH, and the failures: an untrusted client, a server that is not who we expect.
#![allow(clippy::disallowed_methods)]

mod pair;

use pair::{certs, pki, psk_client, responder_config, Pair};
use roam_proto::config::ClientAuth;
use roam_proto::crypto::sign::PrivateKey;
use roam_proto::identity::Identity;
use roam_proto::ike::responder::{ResponderAuth, ResponderConfig, ResponderEvent};
use roam_proto::session::DisconnectReason;

fn cert_server() -> ResponderConfig {
    let auth = ResponderAuth::Certificate {
        chain: certs("server-san.crt"),
        key: PrivateKey::from_pem(&pki("server-san.key")).unwrap(),
    };
    let mut c = responder_config(auth, &[]);
    c.ca = certs("root-ca.crt");
    c
}

fn cert_client(name: &str, extra_chain: Option<&str>) -> roam_proto::config::ClientConfig {
    let mut c = psk_client("unused", &[], &[]);
    let mut chain = certs(&format!("{name}.crt"));
    if let Some(extra) = extra_chain {
        chain.extend(certs(extra));
    }
    c.auth = ClientAuth::Certificate {
        chain,
        key: PrivateKey::from_pem(&pki(&format!("{name}.key"))).unwrap(),
    };
    c.local_id = None; // the certificate's subject DN
    c.ca = certs("root-ca.crt");
    c
}

#[test]
fn certificates_on_both_sides_for_every_key_type() {
    for (i, name) in ["client-rsa", "client-p256", "client-p384", "client-ed25519"]
        .iter()
        .enumerate()
    {
        let mut p = Pair::new(cert_client(name, None), cert_server(), 200 + i as u64);
        p.connect();
        assert!(p.connected().is_some(), "{name}: {:?}", p.client_events);
        let client_id = p.server_events.iter().find_map(|e| match e {
            ResponderEvent::Established { client_id, .. } => Some(client_id.clone()),
            _ => None,
        });
        assert_eq!(
            client_id.as_deref(),
            Some(format!("C=CH, O=ref-lab, CN={name}").as_str())
        );
    }
}

#[test]
fn intermediate_chain_and_fragmented_auth() {
    let mut client = cert_client("leaf-inter", Some("chain.pem"));
    client.fragment_size = 576;
    let mut server = cert_server();
    server.fragment_size = 576;
    let mut p = Pair::new(client, server, 210);
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
}

#[test]
fn untrusted_client_certificate_is_rejected() {
    let mut client = cert_client("other-client", None);
    client.ca = certs("root-ca.crt");
    let mut p = Pair::new(client, cert_server(), 211);
    p.connect();
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::AuthenticationFailed(_))
        ),
        "{:?}",
        p.client_events
    );
    assert_eq!(p.server.sa_count(), 0);
}

#[test]
fn server_must_match_the_expected_identity() {
    let mut client = cert_client("client-p256", None);
    client.server_id = Some(Identity::parse("other.example.org").unwrap());
    let mut p = Pair::new(client, cert_server(), 212);
    p.connect();
    match p.disconnect_reason() {
        Some(DisconnectReason::AuthenticationFailed(why)) => {
            assert!(why.contains("other.example.org"), "{why}")
        }
        other => panic!("expected an identity failure, got {other:?}"),
    }
}

#[test]
fn server_certificate_must_chain_to_our_ca() {
    let mut client = cert_client("client-p256", None);
    client.ca = certs("other-ca.crt");
    let mut p = Pair::new(client, cert_server(), 213);
    p.connect();
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::AuthenticationFailed(_))
        ),
        "{:?}",
        p.client_events
    );
}

fn eap_client(user: &str, password: &str) -> roam_proto::config::ClientConfig {
    let mut c = psk_client("unused", &["aes256gcm16-prfsha384-ecp384"], &[]);
    c.auth = ClientAuth::EapMschapv2 {
        username: user.into(),
        password: roam_proto::crypto::Secret::from_slice(password.as_bytes()),
    };
    c.local_id = None; // the username
    c.ca = certs("root-ca.crt");
    c
}

fn eap_server() -> ResponderConfig {
    let mut s = cert_server();
    s.eap_users = vec![(
        "alice".into(),
        roam_proto::crypto::Secret::from_slice(b"wonderland"),
    )];
    s
}

#[test]
fn eap_mschapv2_after_the_server_certificate() {
    let mut p = Pair::new(eap_client("alice", "wonderland"), eap_server(), 220);
    p.connect();
    let info = p
        .connected()
        .unwrap_or_else(|| panic!("{:?}", p.client_events));
    assert!(!info.virtual_ips.is_empty());
    // IKE_SA_INIT, then IKE_AUTH: IDi; EAP identity; MSCHAPv2 response; success ack; AUTH.
    assert_eq!(p.sent[0], 6, "six requests from the client");
    let id = p.server_events.iter().find_map(|e| match e {
        ResponderEvent::Established { client_id, .. } => Some(client_id.clone()),
        _ => None,
    });
    assert_eq!(id.as_deref(), Some("alice"));
}

#[test]
fn eap_wrong_password_fails_cleanly() {
    let mut p = Pair::new(eap_client("alice", "looking-glass"), eap_server(), 221);
    p.connect();
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::AuthenticationFailed(_))
        ),
        "{:?}",
        p.client_events
    );
    assert_eq!(p.server.sa_count(), 0);
}

#[test]
fn eap_unknown_user_fails_cleanly() {
    let mut p = Pair::new(eap_client("mallory", "wonderland"), eap_server(), 222);
    p.connect();
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::AuthenticationFailed(_))
        ),
        "{:?}",
        p.client_events
    );
}

#[test]
fn a_server_naming_itself_by_dn_is_accepted_when_its_certificate_carries_our_name() {
    let mut server = cert_server();
    server.id = Identity::parse("C=CH, O=ref-lab, OU=VPN, CN=vpn.example.org").unwrap();
    let mut p = Pair::new(cert_client("client-p256", None), server, 214);
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
}

#[test]
fn with_a_psk_the_server_identity_must_be_exact() {
    let server = pair::psk_server("k");
    let mut client = psk_client("k", &[], &[]);
    client.server_id = Some(Identity::parse("other.example.org").unwrap());
    let mut p = Pair::new(client, server, 215);
    p.connect();
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::AuthenticationFailed(_))
        ),
        "{:?}",
        p.client_events
    );
}
