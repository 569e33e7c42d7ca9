//! MOBIKE (RFC 4555) and NAT rebinding on the virtual clock: the client moves its SAs between
//! addresses and families while traffic flows, probes candidate paths, ignores a response
//! without its COOKIE2, follows a NAT that appears or disappears, holds without network, and
//! survives a NAT rebinding (or reports the path lost when the server cannot move it).
#![allow(clippy::disallowed_methods)]

mod pair;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pair::{addr, natt, psk_client, psk_server, Nat, Pair};
use roam_proto::ike::responder::ResponderEvent;
use roam_proto::session::{DisconnectReason, Event, State};

const PSK: &str = "mobike psk";

fn server4() -> IpAddr {
    pair::server_addr().ip()
}

fn connected(seed: u64) -> Pair {
    let mut p = Pair::connected_with(psk_client(PSK, &[], &[]), psk_server(PSK), seed);
    assert!(p.client.ike().mobike_active());
    assert!(p.ping(0));
    p
}

/// Why the IKE SA was lost: the reason of the reconnect that followed (or of the end).
fn lost_reason(p: &Pair) -> Option<DisconnectReason> {
    p.client_events.iter().find_map(|e| match e {
        Event::Reconnecting { reason, .. } => Some(reason.clone()),
        Event::Disconnected(r) => Some(r.clone()),
        _ => None,
    })
}

fn roamed(p: &Pair) -> Vec<(SocketAddr, SocketAddr)> {
    p.client_events
        .iter()
        .filter_map(|e| match e {
            Event::Roamed { local, remote } => Some((*local, *remote)),
            _ => None,
        })
        .collect()
}

/// The client's network now has only `locals` and the platform says so.
fn move_to(p: &mut Pair, locals: &[&str]) {
    let locals: Vec<SocketAddr> = locals.iter().map(|s| addr(s)).collect();
    p.client_ips = Some(locals.iter().map(|a| a.ip()).collect());
    let now = p.now;
    p.client.network_changed(now, &locals);
    p.pump();
}

#[test]
fn moves_between_two_ipv4_addresses_while_traffic_flows() {
    let mut p = connected(500);
    let spis = p.client.ike().spis();
    let spi_r = p.server_established().unwrap();
    let mut lost = 0;
    for i in 1..=20u8 {
        if i == 10 {
            move_to(&mut p, &["198.51.100.3:40001"]);
        }
        if !p.ping(i) {
            lost += 1;
        }
        p.wait(Duration::from_millis(200));
    }
    let new = addr("198.51.100.3:40001");
    assert_eq!(roamed(&p), vec![(new, natt(server4()))]);
    assert!(lost <= 2, "{lost} pings lost");
    assert_eq!(p.client.ike().spis(), spis, "same IKE SA");
    assert_eq!(p.client.ike().path().0, new);
    assert_eq!(p.server.client_addr(spi_r), Some(new));
    assert_eq!(p.client.state(), State::Connected);
    let states: Vec<State> = p
        .client_events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert!(
        states.ends_with(&[State::Connected, State::Roaming, State::Connected]),
        "{states:?}"
    );
    assert!(p.disconnect_reason().is_none());
}

#[test]
fn moves_from_ipv4_to_ipv6_and_back() {
    let mut p = connected(501);
    let spis = p.client.ike().spis();
    let now = p.now;
    p.client
        .set_server_addresses(now, &[server4(), pair::server6()]);
    move_to(&mut p, &["[2001:db8:1::2]:40000"]);
    assert_eq!(
        roamed(&p).last(),
        Some(&(addr("[2001:db8:1::2]:40000"), natt(pair::server6())))
    );
    assert!(p.ping(1), "traffic over IPv6");
    move_to(&mut p, &["198.51.100.9:40000"]);
    assert_eq!(
        roamed(&p).last(),
        Some(&(addr("198.51.100.9:40000"), natt(server4())))
    );
    assert!(p.ping(2), "traffic over IPv4 again");
    assert_eq!(p.client.ike().spis(), spis);
    assert_eq!(roamed(&p).len(), 2);
}

#[test]
fn the_servers_announced_addresses_are_candidates() {
    let mut server = psk_server(PSK);
    server.mobike = true;
    let mut p = Pair::new(psk_client(PSK, &[], &[]), server, 502);
    p.server.set_additional_addresses(&[pair::server6()]);
    p.connect();
    assert_eq!(
        p.client.ike().peer().additional_addresses,
        vec![pair::server6()]
    );
    // No set_server_addresses: the IPv6 address comes from the server itself.
    move_to(&mut p, &["[2001:db8:1::2]:40000"]);
    assert_eq!(
        roamed(&p),
        vec![(addr("[2001:db8:1::2]:40000"), natt(pair::server6()))]
    );
    assert!(p.ping(1));
    // A later announcement replaces the list.
    let spi_r = p.server_established().unwrap();
    p.server.set_additional_addresses(&[]);
    let now = p.now;
    assert!(p.server.announce_addresses(now, spi_r));
    p.pump();
    assert!(p.client.ike().peer().additional_addresses.is_empty());
}

#[test]
fn probing_finds_the_second_candidate_when_the_first_is_dead() {
    let mut p = connected(503);
    let spis = p.client.ike().spis();
    let dead = addr("198.51.100.4:40000");
    let good = addr("198.51.100.5:40000");
    // The platform offers both; only the second one reaches anything.
    p.client_ips = Some(vec![good.ip()]);
    let now = p.now;
    p.client.network_changed(now, &[dead, good]);
    p.pump();
    assert_eq!(p.client.state(), State::Roaming);
    assert!(roamed(&p).is_empty());
    p.run_for(Duration::from_secs(10));
    assert_eq!(roamed(&p), vec![(good, natt(server4()))]);
    assert_eq!(p.client.state(), State::Connected);
    assert_eq!(p.client.ike().spis(), spis);
    assert!(p.ping(1));
}

#[test]
fn every_candidate_dead_ends_with_path_lost() {
    let mut p = connected(504);
    p.client_ips = Some(vec![]);
    let now = p.now;
    p.client.network_changed(
        now,
        &[addr("198.51.100.4:40000"), addr("198.51.100.5:40000")],
    );
    p.pump();
    p.run_for(Duration::from_secs(60));
    assert_eq!(lost_reason(&p), Some(DisconnectReason::PathLost));
    assert!(roamed(&p).is_empty());
}

#[test]
fn a_response_without_our_cookie2_is_ignored() {
    let mut p = connected(505);
    p.server.set_corrupt_cookie2(true);
    let old = p.client.ike().path();
    let unexpected_before = p.client.dropped().1.unexpected;
    move_to(&mut p, &["198.51.100.3:40001"]);
    assert!(roamed(&p).is_empty(), "no move on a bad COOKIE2");
    assert_eq!(p.client.ike().path(), old, "the path did not change");
    assert_eq!(p.client.state(), State::Roaming);
    assert!(p.client.dropped().1.unexpected > unexpected_before);
    p.run_for(Duration::from_secs(60));
    assert!(roamed(&p).is_empty());
    assert_eq!(lost_reason(&p), Some(DisconnectReason::PathLost));
}

#[test]
fn a_nat_appearing_and_disappearing_turns_keepalives_on_and_off() {
    let mut p = connected(506);
    assert!(!p.client.ike().behind_nat());
    // Into a network behind a NAT.
    p.nat = Some(Nat::new("192.0.2.99".parse().unwrap()));
    move_to(&mut p, &["10.0.0.2:40000"]);
    assert_eq!(roamed(&p).len(), 1);
    assert!(
        p.client.ike().behind_nat(),
        "the server saw the NAT's address"
    );
    assert!(p.ping(1));
    let spi_r = p.server_established().unwrap();
    assert_eq!(
        p.server.client_addr(spi_r),
        p.nat.as_ref().unwrap().mapping(addr("10.0.0.2:40000"))
    );
    let ka0 = p.client.ike().liveness_stats().keepalives;
    p.wait(Duration::from_secs(120));
    let ka1 = p.client.ike().liveness_stats().keepalives;
    assert!(ka1 > ka0, "keepalives behind the NAT");
    // Out of it again.
    p.nat = None;
    move_to(&mut p, &["198.51.100.7:40000"]);
    assert_eq!(roamed(&p).len(), 2);
    assert!(!p.client.ike().behind_nat());
    p.wait(Duration::from_secs(120));
    assert_eq!(
        p.client.ike().liveness_stats().keepalives,
        ka1,
        "no keepalives without a NAT"
    );
    assert!(p.ping(2));
}

/// Without MOBIKE a path change means a new IKE SA from the new path, at once: the old one
/// is deleted, no update is tried, and traffic flows on the new SA.
fn assert_new_connection_from(p: &mut Pair, local: &str) {
    let old = p.connections();
    assert_eq!(old.len(), 1);
    let spi_r = p.server_established().unwrap();
    move_to(p, &[local]);
    p.run_for(Duration::from_secs(5));
    let now = p.connections();
    assert_eq!(now.len(), 2, "{:?}", p.client_events);
    assert_ne!(now[0], now[1], "a new IKE SA");
    assert_eq!(p.client.ike().path().0, addr(local));
    assert!(roamed(p).is_empty(), "no MOBIKE update");
    assert!(
        p.server_events
            .iter()
            .any(|e| matches!(e, ResponderEvent::Closed { spi_r: s, .. } if *s == spi_r)),
        "the old IKE SA was deleted"
    );
    assert!(p.disconnect_reason().is_none());
    assert!(p.ping(1));
}

#[test]
fn a_server_without_mobike_gets_a_new_connection() {
    let mut server = psk_server(PSK);
    server.mobike = false;
    let mut p = Pair::new(psk_client(PSK, &[], &[]), server, 507);
    p.connect();
    assert!(p.connected().is_some());
    assert!(!p.client.ike().mobike_active());
    assert_new_connection_from(&mut p, "198.51.100.3:40001");
}

#[test]
fn mobike_off_in_the_profile_gets_a_new_connection() {
    let mut c = psk_client(PSK, &[], &[]);
    c.mobike = false;
    let mut p = Pair::new(c, psk_server(PSK), 508);
    p.connect();
    assert_new_connection_from(&mut p, "198.51.100.3:40001");
}

#[test]
fn no_network_holds_then_resumes() {
    let mut p = connected(509);
    let spis = p.client.ike().spis();
    let sent = p.sent[0];
    move_to(&mut p, &[]);
    assert_eq!(p.client.poll_timeout(), None, "quiet without network");
    p.wait(Duration::from_secs(300));
    assert_eq!(p.sent[0], sent, "nothing sent while offline");
    assert_eq!(p.client.state(), State::Connected);
    // The same address comes back: the path is refreshed, no move.
    move_to(&mut p, &["198.51.100.2:40000"]);
    assert!(p.sent[0] > sent, "an update on the way back");
    assert!(roamed(&p).is_empty());
    assert!(p.ping(1));
    // Gone again, back somewhere else: a move.
    move_to(&mut p, &[]);
    p.wait(Duration::from_secs(60));
    move_to(&mut p, &["198.51.100.8:40000"]);
    assert_eq!(
        roamed(&p),
        vec![(addr("198.51.100.8:40000"), natt(server4()))]
    );
    assert!(p.ping(2));
    assert_eq!(p.client.ike().spis(), spis);
    assert!(p.disconnect_reason().is_none());
}

/// Pings once a second until one makes the round trip; returns how long that took.
fn until_traffic_resumes(p: &mut Pair, limit: Duration) -> Option<Duration> {
    let start = p.now;
    let mut i = 0u8;
    while p.now - start <= limit {
        i = i.wrapping_add(1);
        if p.ping(i) {
            return Some(p.now - start);
        }
        if p.disconnect_reason().is_some() {
            return None;
        }
        p.wait(Duration::from_secs(1));
    }
    None
}

fn nat_pair(seed: u64, mobike: bool) -> Pair {
    let mut c = psk_client(PSK, &[], &[]);
    c.mobike = mobike;
    let mut p = Pair::new(c, psk_server(PSK), seed);
    p.nat = Some(Nat::new("192.0.2.7".parse().unwrap()));
    p.connect();
    assert!(p.connected().is_some());
    assert!(p.ping(0));
    p
}

#[test]
fn nat_rebinding_with_mobike_keeps_the_ike_sa() {
    let mut p = nat_pair(510, true);
    // A server that moves clients only on MOBIKE updates (RFC 4555).
    p.server.set_follow_nat(false);
    let spis = p.client.ike().spis();
    let spi_r = p.server_established().unwrap();
    let before = p.server.client_addr(spi_r);
    p.nat.as_mut().unwrap().rebind();
    let took = until_traffic_resumes(&mut p, Duration::from_secs(40)).expect("traffic resumes");
    assert!(took <= Duration::from_secs(40), "{took:?}");
    assert!(
        took >= Duration::from_secs(3),
        "it needed the update after the 3 s of silence: {took:?}"
    );
    assert_eq!(p.client.ike().spis(), spis);
    assert_ne!(
        p.server.client_addr(spi_r),
        before,
        "the server learned the new port"
    );
    assert!(p.disconnect_reason().is_none());
    assert!(roamed(&p).is_empty(), "same local path: no roam");
}

#[test]
fn nat_rebinding_without_mobike_is_healed_by_a_new_connection() {
    let mut p = nat_pair(511, false);
    p.server.set_follow_nat(false);
    let first = p.connections();
    p.nat.as_mut().unwrap().rebind();
    let took = until_traffic_resumes(&mut p, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("traffic resumes: {:?}", p.client_events));
    assert!(took <= Duration::from_secs(60), "{took:?}");
    assert_eq!(lost_reason(&p), Some(DisconnectReason::PathLost));
    let now = p.connections();
    assert_eq!(now.len(), 2);
    assert_ne!(now[1], first[0], "a new IKE SA from the new mapping");
    assert!(p.disconnect_reason().is_none());
}

#[test]
fn nat_rebinding_without_mobike_heals_when_the_server_follows() {
    let mut p = nat_pair(512, false);
    let spis = p.client.ike().spis();
    p.nat.as_mut().unwrap().rebind();
    let took = until_traffic_resumes(&mut p, Duration::from_secs(40)).expect("traffic resumes");
    assert!(took <= Duration::from_secs(40));
    assert_eq!(p.client.ike().spis(), spis);
    assert!(p.disconnect_reason().is_none());
}

#[test]
fn a_forged_or_unprotected_update_moves_nothing() {
    use roam_proto::wire::{flags, ExchangeType, Header, Message, NotifyType, Payload};
    let mut p = connected(513);
    let spi_r = p.server_established().unwrap();
    let home = p.server.client_addr(spi_r).unwrap();
    // The client's real update, kept off the link.
    let captured = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let c2 = captured.clone();
    p.filter = Some(Box::new(move |dir, _, d| {
        if dir == pair::Dir::ToServer {
            c2.borrow_mut().push(d.to_vec());
        }
        pair::Fate::Drop
    }));
    move_to(&mut p, &["198.51.100.3:40001"]);
    p.filter = None;
    let update = captured.borrow()[0][4..].to_vec();
    let header = Message::parse(&update).unwrap().header;
    let server_local = natt(server4());
    let elsewhere = addr("203.0.113.66:5555");
    let now = p.now;
    // Tampered with: fails integrity.
    let mut bad = update.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    p.server.handle_message(now, server_local, elsewhere, &bad);
    assert_eq!(p.server.client_addr(spi_r), Some(home));
    // In the clear, with the right SPIs and message ID.
    let h = Header::new(
        header.spi_i,
        header.spi_r,
        ExchangeType::INFORMATIONAL,
        flags::INITIATOR,
        header.message_id,
    );
    let mut plain = Vec::new();
    roam_proto::wire::message::write_message(
        &h,
        &[Payload::notify(NotifyType::UPDATE_SA_ADDRESSES, &[])],
        &mut plain,
    );
    p.server
        .handle_message(now, server_local, elsewhere, &plain);
    assert_eq!(p.server.client_addr(spi_r), Some(home));
    assert!(p.server.poll_outgoing().is_none(), "no answer to either");
    // The authentic update moves the client to where it came from.
    let new = addr("198.51.100.3:40001");
    p.server.handle_message(now, server_local, new, &update);
    assert_eq!(p.server.client_addr(spi_r), Some(new));
}
