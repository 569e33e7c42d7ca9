//! Reconnecting after a lost IKE SA, on the virtual clock: the server deletes the SA or
//! restarts, the path is dead for a while, authentication is refused; backoff, events and
//! the data path while waiting.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::time::Duration;

use pair::{psk_client, psk_server, Dir, Fate, Pair};
use roam_proto::ike::responder::Responder;
use roam_proto::rng::SeededRng;
use roam_proto::session::{DisconnectReason, Event, PacketDrop, State};

const PSK: &str = "reconnect-test-psk-0123456789";

fn connected_pair(seed: u64) -> Pair {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), seed);
    p.connect();
    assert_eq!(p.client.state(), State::Connected);
    p
}

fn reconnecting(p: &Pair) -> Vec<(u32, Duration, DisconnectReason)> {
    p.client_events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting {
                attempt,
                delay,
                reason,
            } => Some((*attempt, *delay, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn server_delete_is_followed_by_a_new_connection() {
    let mut p = connected_pair(1);
    let spi_r = p.server_established().unwrap();
    assert!(p.server.delete_ike_sa(p.now, spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Reconnecting);
    let r = reconnecting(&p);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, 1);
    assert_eq!(r[0].2, DisconnectReason::DeletedByPeer);
    assert!(r[0].1 <= Duration::from_secs(1));
    // Nothing is due but the attempt: the deadline is exactly the backoff delay.
    let due = p.client.poll_timeout().unwrap();
    assert_eq!(due, p.now + r[0].1);
    // While waiting, packets from the TUN are refused, never sent.
    let packet = icmp_echo("198.18.0.1", "203.0.113.2");
    let mut out = vec![0u8; 2048];
    assert_eq!(
        p.client.handle_packet(p.now, &packet, &mut out),
        Err(PacketDrop::NotConnected)
    );
    assert!(p.client.poll_transmit().is_none());
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.client.state(), State::Connected);
    let spis = p.connections();
    assert_eq!(spis.len(), 2, "{:?}", p.client_events);
    assert_ne!(spis[0], spis[1], "a new IKE SA");
    assert!(p.disconnect_reason().is_none());
    // The data path works on the new SA.
    assert!(p.client.handle_packet(p.now, &packet, &mut out).is_ok());
}

#[test]
fn an_unreachable_server_is_retried_with_growing_delays_forever() {
    let mut p = connected_pair(2);
    let spi_r = p.server_established().unwrap();
    assert!(p.server.delete_ike_sa(p.now, spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Reconnecting);
    // The server is unreachable for four minutes: every attempt times out.
    p.filter = Some(Box::new(|_, _, _| Fate::Drop));
    p.run_for(Duration::from_secs(240));
    let r = reconnecting(&p);
    assert!(r.len() >= 3, "{r:?}");
    for w in r.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1);
        assert!(w[1].1 > w[0].1 * 3 / 2, "delays grow: {r:?}");
        assert_eq!(w[1].2, DisconnectReason::Timeout);
    }
    assert!(p.disconnect_reason().is_none(), "never gives up by itself");
    // The path comes back: the next attempt connects.
    p.filter = None;
    p.run_for(Duration::from_secs(300));
    assert_eq!(p.client.state(), State::Connected);
    assert_eq!(p.connections().len(), 2);
}

#[test]
fn refused_authentication_stops_for_good() {
    let mut p = connected_pair(3);
    let spi_r = p.server_established().unwrap();
    assert!(p.server.delete_ike_sa(p.now, spi_r));
    p.pump();
    // The server now wants another key: the reconnect is refused.
    p.server = Responder::new(
        psk_server("another-key-entirely-42"),
        Box::new(SeededRng::new(5)),
    );
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.client.state(), State::Disconnected);
    assert!(matches!(
        p.disconnect_reason(),
        Some(DisconnectReason::AuthenticationFailed(_))
    ));
    assert_eq!(reconnecting(&p).len(), 1);
    assert_eq!(
        p.client.poll_timeout(),
        None,
        "no timer after a permanent error"
    );
}

#[test]
fn close_while_waiting_ends_at_once() {
    let mut p = connected_pair(4);
    let spi_r = p.server_established().unwrap();
    assert!(p.server.delete_ike_sa(p.now, spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Reconnecting);
    p.client.close(p.now);
    p.pump();
    assert_eq!(p.client.state(), State::Disconnected);
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Closed));
    assert_eq!(p.client.poll_timeout(), None);
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.connections().len(), 1, "no attempt after close");
}

#[test]
fn first_connection_failure_is_reported_not_retried() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 6);
    p.filter = Some(Box::new(|d, _, _| {
        if d == Dir::ToServer {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    p.connect();
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Timeout));
    assert!(reconnecting(&p).is_empty());
}

#[test]
fn reconnect_off_in_the_config_ends_the_session() {
    let mut c = psk_client(PSK, &[], &[]);
    c.reconnect = None;
    let mut p = Pair::new(c, psk_server(PSK), 7);
    p.connect();
    let spi_r = p.server_established().unwrap();
    assert!(p.server.delete_ike_sa(p.now, spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Disconnected);
    assert_eq!(
        p.disconnect_reason(),
        Some(&DisconnectReason::DeletedByPeer)
    );
}

#[test]
fn events_carry_the_time_they_happened() {
    let mut p = connected_pair(8);
    let t_connected = p.now;
    p.now += Duration::from_millis(1500);
    let t_deleted = p.now;
    let spi_r = p.server_established().unwrap();
    assert!(p.server.delete_ike_sa(p.now, spi_r));
    p.pump();
    p.run_for(Duration::from_secs(5));
    let stamped: Vec<_> = p.client_event_times.iter().zip(&p.client_events).collect();
    for w in stamped.windows(2) {
        assert!(w[0].0 <= w[1].0, "in order: {stamped:?}");
    }
    let at = |f: &dyn Fn(&Event) -> bool| {
        stamped
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(t, _)| **t)
            .collect::<Vec<_>>()
    };
    let connected = at(&|e| matches!(e, Event::Connected(_)));
    assert_eq!(connected[0], t_connected);
    let waits = at(&|e| matches!(e, Event::Reconnecting { .. }));
    assert_eq!(waits, vec![t_deleted]);
    let (_, delay, _) = reconnecting(&p)[0].clone();
    assert_eq!(
        connected[1],
        t_deleted + delay,
        "the attempt starts when due"
    );
}

/// An ICMP echo request from `src` to `dst` (no checksum: the session does not check it).
fn icmp_echo(src: &str, dst: &str) -> Vec<u8> {
    let src: std::net::Ipv4Addr = src.parse().unwrap();
    let dst: std::net::Ipv4Addr = dst.parse().unwrap();
    let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
    p
}
