//! Exchange tests on the sans-IO core: a client session and our responder, step by step on a
//! virtual clock, through a link that can lose, repeat or corrupt datagrams.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::time::Duration;

use pair::{psk_client, psk_server, responder_config, Dir, Fate, Pair};
use roam_proto::crypto::Secret;
use roam_proto::ike::responder::{ResponderAuth, ResponderEvent};
use roam_proto::session::{DisconnectReason, Event, State};

const PSK: &str = "correct horse battery staple";

fn assert_keys_match(p: &Pair) {
    let spi_r = p.server_established().expect("server established");
    let server_child = p.server.child(spi_r).expect("server CHILD SA");
    let client_child = p.client.ike().child().expect("client CHILD SA");
    assert_eq!(client_child.spi_out, server_child.spi_in);
    assert_eq!(client_child.spi_in, server_child.spi_out);
    assert_eq!(
        client_child.encr_out, server_child.encr_in,
        "client->server keys agree"
    );
    assert_eq!(
        client_child.encr_in, server_child.encr_out,
        "server->client keys agree"
    );
    assert_eq!(client_child.integ_out, server_child.integ_in);
    assert_eq!(client_child.selected, server_child.selected);
}

#[test]
fn psk_connects_with_every_lab_proposal() {
    for (i, ike) in [
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-prfsha256-curve25519",
        "aes256-sha256-modp2048",
        "chacha20poly1305-prfsha256-curve25519",
    ]
    .iter()
    .enumerate()
    {
        for esp in ["aes256gcm16", "aes256-sha256", "chacha20poly1305"] {
            let mut p = Pair::new(
                psk_client(PSK, &[ike], &[esp]),
                psk_server(PSK),
                100 + i as u64,
            );
            p.connect();
            let info = p
                .connected()
                .unwrap_or_else(|| panic!("{ike}/{esp}: not connected: {:?}", p.client_events));
            assert_eq!(info.ike_proposal, *ike);
            assert_eq!(info.esp_proposal, esp);
            assert!(!info.nat_detected, "no NAT between the two");
            assert!(
                info.udp_encapsulation,
                "we always ask for UDP encapsulation"
            );
            assert_eq!(
                info.virtual_ips,
                vec![
                    "198.18.0.1".parse::<std::net::IpAddr>().unwrap(),
                    "2001:db8:ffff::1".parse().unwrap()
                ]
            );
            assert_eq!(info.dns.len(), 2);
            assert_eq!(p.client.state(), State::Connected);
            assert_keys_match(&p);
            // IKE_SA_INIT on 500, then everything on 4500.
            assert_eq!(p.client.ike().path().1.port(), 4500);
        }
    }
}

#[test]
fn default_proposals_connect() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 7);
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert_keys_match(&p);
}

#[test]
fn state_changes_come_in_order() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 8);
    p.connect();
    let states: Vec<State> = p
        .client_events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![State::Connecting, State::IkeSaEstablished, State::Connected]
    );
}

#[test]
fn wrong_psk_fails_cleanly_on_both_ends() {
    let mut p = Pair::new(psk_client("wrong", &[], &[]), psk_server(PSK), 9);
    p.connect();
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::AuthenticationFailed(_))
        ),
        "{:?}",
        p.client_events
    );
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e, ResponderEvent::Closed { .. })));
    assert_eq!(
        p.server.sa_count(),
        0,
        "the responder keeps nothing of a failed client"
    );
    assert_eq!(p.client.poll_timeout(), None, "no timer after the end");
}

#[test]
fn no_common_proposal_fails() {
    let server = responder_config(
        ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes())),
        &["aes256gcm16-prfsha384-ecp384"],
    );
    let mut p = Pair::new(
        psk_client(PSK, &["chacha20poly1305-prfsha256-curve25519"], &[]),
        server,
        10,
    );
    p.connect();
    // The unauthenticated NO_PROPOSAL_CHOSEN is believed once the retransmitted request
    // draws it again (RFC 7296 §2.21.1).
    assert!(p.disconnect_reason().is_none(), "{:?}", p.client_events);
    p.run_for(Duration::from_secs(60));
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::NegotiationFailed(why)) if why.contains("NO_PROPOSAL_CHOSEN")
        ),
        "{:?}",
        p.client_events
    );
    assert_eq!(p.sent[0], 2, "the request and one retransmission");
}

#[test]
fn invalid_ke_payload_makes_the_client_switch_groups() {
    // The client guesses curve25519 first; the server only takes ecp384.
    let server = responder_config(
        ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes())),
        &["aes256gcm16-prfsha384-ecp384"],
    );
    let client = psk_client(PSK, &["aes256gcm16-prfsha384-curve25519-ecp384"], &[]);
    let mut p = Pair::new(client, server, 11);
    p.connect();
    let info = p
        .connected()
        .unwrap_or_else(|| panic!("{:?}", p.client_events));
    assert_eq!(info.ike_proposal, "aes256gcm16-prfsha384-ecp384");
    assert_eq!(p.sent[0], 3, "INIT, INIT again with ecp384, AUTH");
}

#[test]
fn cookie_is_returned() {
    let mut server = psk_server(PSK);
    server.require_cookie = true;
    let mut p = Pair::new(
        psk_client(PSK, &["aes256gcm16-prfsha384-ecp384"], &[]),
        server,
        12,
    );
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert_eq!(p.sent[0], 3, "INIT, INIT with COOKIE, AUTH");
}

#[test]
fn lost_datagrams_are_retransmitted() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 13);
    // Lose the first IKE_SA_INIT request and the first IKE_AUTH response.
    p.filter = Some(Box::new(|dir, n, _| match (dir, n) {
        (Dir::ToServer, 0) | (Dir::ToClient, 1) => Fate::Drop,
        _ => Fate::Deliver,
    }));
    p.connect();
    assert!(p.connected().is_none());
    p.run_for(Duration::from_secs(60));
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert_keys_match(&p);
}

#[test]
fn unreachable_server_times_out_with_bounded_tries() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 14);
    p.filter = Some(Box::new(|dir, _, _| {
        if dir == Dir::ToServer {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let start = p.now;
    p.connect();
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Timeout));
    assert_eq!(p.sent[0], 5, "five sends in all");
    let waited = p.now - start;
    assert!(
        waited > Duration::from_secs(30) && waited < Duration::from_secs(180),
        "{waited:?}"
    );
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn small_mtu_fragments_ike_auth() {
    let mut client = psk_client(PSK, &[], &[]);
    client.fragment_size = 300;
    let mut server = psk_server(PSK);
    server.fragment_size = 300;
    let mut p = Pair::new(client, server, 15);
    let sizes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s2 = sizes.clone();
    p.filter = Some(Box::new(move |dir, _, d| {
        // Only what travels with the non-ESP marker: the protected messages.
        if d.starts_with(&[0, 0, 0, 0]) {
            s2.borrow_mut().push((dir, d.len()));
        }
        Fate::Deliver
    }));
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    let sizes = sizes.borrow();
    assert!(
        sizes.iter().filter(|(d, _)| *d == Dir::ToServer).count() >= 2,
        "request in fragments: {sizes:?}"
    );
    assert!(
        sizes.iter().filter(|(d, _)| *d == Dir::ToClient).count() >= 2,
        "response in fragments: {sizes:?}"
    );
    assert!(
        sizes.iter().all(|(_, n)| *n <= 300 + 4),
        "every fragment fits (plus the marker): {sizes:?}"
    );
    assert_keys_match(&p);
}

#[test]
fn close_deletes_on_both_ends() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 16);
    p.connect();
    assert!(p.connected().is_some());
    let now = p.now;
    p.client.close(now);
    p.pump();
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Closed));
    assert_eq!(p.server.sa_count(), 0);
    assert_eq!(p.client.state(), State::Disconnected);
}

#[test]
fn close_without_answer_ends_after_retransmissions() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 17);
    p.connect();
    p.filter = Some(Box::new(|_, _, _| Fate::Drop));
    let now = p.now;
    p.client.close(now);
    p.pump();
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Closed));
}

#[test]
fn liveness_checks_from_the_server_are_answered() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 18);
    p.connect();
    let spi_r = p.server_established().unwrap();
    for _ in 0..3 {
        let now = p.now;
        assert!(p.server.send_liveness_check(now, spi_r));
        p.pump();
    }
    assert_eq!(p.client.state(), State::Connected);
    assert!(
        p.server.send_liveness_check(p.now, spi_r),
        "the window moved: every check was answered"
    );
}

#[test]
fn hostile_datagrams_are_dropped_and_the_session_lives_on() {
    // Corrupt, truncate and inject datagrams toward the client at every step.
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 20);
    let mut junk_rng = roam_proto::rng::SeededRng::new(99);
    p.connect();
    assert!(p.connected().is_some());
    let server = pair::server_addr();
    let natt_server = std::net::SocketAddr::new(server.ip(), 4500);
    let client = pair::client_addr();
    for len in [0usize, 1, 3, 4, 5, 27, 28, 29, 100, 1500] {
        let mut junk = vec![0u8; len];
        roam_proto::rng::Rng::fill(&mut junk_rng, &mut junk);
        let now = p.now;
        p.client
            .handle_datagram(now, client, natt_server, &mut junk.clone());
        let mut marked = vec![0u8; 4];
        marked.extend_from_slice(&junk);
        p.client
            .handle_datagram(now, client, natt_server, &mut marked);
        p.client.handle_datagram(now, client, server, &mut junk);
    }
    // A real message with a flipped bit in the ciphertext: dropped as unauthentic.
    let spi_r = p.server_established().unwrap();
    p.filter = Some(Box::new(|dir, _, d| {
        if dir == Dir::ToClient {
            let mut d = d.to_vec();
            let last = d.len() - 1;
            d[last] ^= 1;
            Fate::Replace(d)
        } else {
            Fate::Deliver
        }
    }));
    assert!(p.server.send_liveness_check(p.now, spi_r));
    p.pump();
    let (_, drops) = p.client.dropped();
    assert!(drops.integrity >= 1, "{drops:?}");
    assert!(drops.malformed >= 1, "{drops:?}");
    assert_eq!(p.client.state(), State::Connected);
    // The session still works: it closes cleanly.
    p.filter = None;
    let now = p.now;
    p.client.close(now);
    p.pump();
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Closed));
}

#[test]
fn a_refused_first_child_sa_deletes_the_ike_sa_at_the_server() {
    // The server takes the IKE proposal but none of the ESP ones: it answers IKE_AUTH with
    // its AUTH and NO_PROPOSAL_CHOSEN, and its IKE SA stands (RFC 7296 §1.2).
    let mut p = Pair::new(
        psk_client(PSK, &["aes256gcm16-prfsha384-ecp384"], &["aes128gcm16"]),
        psk_server(PSK),
        10,
    );
    p.connect();
    p.run_for(Duration::from_secs(1));
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::NegotiationFailed(why)) if why.contains("CHILD SA: NO_PROPOSAL_CHOSEN")
        ),
        "{:?}",
        p.client_events
    );
    // The client told the server with a DELETE: nothing is left there.
    assert_eq!(p.sent[0], 3, "IKE_SA_INIT, IKE_AUTH and the DELETE");
    assert_eq!(
        p.server.sa_count(),
        0,
        "the server keeps no unusable IKE SA"
    );
    assert_eq!(
        p.client.poll_timeout(),
        None,
        "the DELETE is not waited for"
    );
}
