//! Make-before-break on the virtual clock: when the server cannot move the SAs (no MOBIKE on
//! its side or in the profile) and the old local address still works, the client makes a new
//! connection from the new path while traffic keeps flowing on the old one, switches once the
//! new CHILD SA is up, and deletes the old IKE SA. A failed new connection leaves the old one
//! working; a path that is gone is replaced as before (break-before-make).
#![allow(clippy::disallowed_methods)]

mod pair;

use std::net::SocketAddr;
use std::time::Duration;

use pair::{addr, psk_client, psk_server, Dir, Fate, Pair};
use roam_proto::ike::responder::ResponderEvent;
use roam_proto::session::{Event, Received, State};

const PSK: &str = "mbb psk";
const OLD: &str = "198.51.100.2:40000";
const NEW: &str = "198.51.100.3:40001";

/// A connected pair whose server (`server_mobike`) or profile (`client_mobike`) has no MOBIKE.
fn connected(seed: u64, server_mobike: bool, client_mobike: bool) -> Pair {
    let mut server = psk_server(PSK);
    server.mobike = server_mobike;
    let mut client = psk_client(PSK, &[], &[]);
    client.mobike = client_mobike;
    let mut p = Pair::connected_with(client, server, seed);
    assert!(!p.client.ike().mobike_active());
    assert_eq!(p.client.ike().path().0, addr(OLD));
    assert!(p.ping(0));
    p
}

/// States the client went through after its first connection.
fn states_after_first_connect(p: &Pair) -> Vec<State> {
    p.client_events
        .iter()
        .skip_while(|e| !matches!(e, Event::Connected(_)))
        .filter_map(|e| match e {
            Event::StateChanged(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// The platform now offers `locals` (preferred first); `up` are the ones that work.
fn offer(p: &mut Pair, locals: &[&str], up: &[&str]) {
    p.client_ips = Some(up.iter().map(|s| addr(s).ip()).collect());
    let locals: Vec<SocketAddr> = locals.iter().map(|s| addr(s)).collect();
    let now = p.now;
    p.client.network_changed(now, &locals);
    p.pump();
}

/// Pings every 100 ms for `n` pings; returns how many were lost.
fn ping_every_100ms(p: &mut Pair, n: usize) -> usize {
    let mut lost = 0;
    for i in 0..n {
        if !p.ping(i as u8) {
            lost += 1;
        }
        p.wait(Duration::from_millis(100));
    }
    lost
}

fn server_closed(p: &Pair, spi_r: u64) -> bool {
    p.server_events
        .iter()
        .any(|e| matches!(e, ResponderEvent::Closed { spi_r: s, .. } if *s == spi_r))
}

/// A second address appears and is preferred while the old one stays: traffic never stops,
/// the server ends with the new IKE SA only, and the app sees `Connected` throughout.
fn switch_without_loss(mut p: Pair) {
    let old_spis = p.client.ike().spis();
    let old_spi_r = p.server_established().unwrap();
    let old_vip = p.connected().unwrap().virtual_ips.clone();
    assert!(p.client.ike().sends_initial_contact());
    // The new path's first IKE_SA_INIT is lost: the handshake takes a retransmission (4 s)
    // while pings run on the old path.
    assert_eq!(ping_every_100ms(&mut p, 10), 0);
    let first_new = p.sent[0];
    p.filter = Some(Box::new(move |dir, n, _| {
        if dir == Dir::ToServer && n == first_new {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    offer(&mut p, &[NEW, OLD], &[NEW, OLD]);
    assert_eq!(p.client.ike().spis(), old_spis, "still on the old IKE SA");
    assert_eq!(p.client.state(), State::Connected);
    let lost = ping_every_100ms(&mut p, 100);
    assert_eq!(lost, 0, "no ping lost across the switch");
    let conns = p.connections();
    assert_eq!(conns.len(), 2, "{:?}", p.client_events);
    assert_ne!(conns[1], conns[0], "a new IKE SA");
    assert_eq!(p.client.ike().spis().0, conns[1]);
    assert_eq!(p.client.ike().path().0, addr(NEW));
    assert!(
        !p.client.ike().sends_initial_contact(),
        "the new IKE SA must not make the server drop the old one early"
    );
    assert!(server_closed(&p, old_spi_r), "the old IKE SA was deleted");
    assert_eq!(
        p.server.sa_count(),
        1,
        "the server holds the new IKE SA only"
    );
    let new_spi_r = p
        .server
        .client_by_vip(p.connected().unwrap().virtual_ips[0]);
    assert!(new_spi_r.is_some_and(|s| s != old_spi_r));
    assert_eq!(p.server.client_addr(new_spi_r.unwrap()), Some(addr(NEW)));
    assert_ne!(
        p.connected().unwrap().virtual_ips,
        old_vip,
        "both held a lease at once"
    );
    assert_eq!(
        p.server.client_by_vip(old_vip[0]),
        None,
        "the old lease went with the old IKE SA"
    );
    assert_eq!(
        states_after_first_connect(&p),
        Vec::<State>::new(),
        "no Connecting/Reconnecting visible"
    );
    assert!(p.disconnect_reason().is_none());
    // The replaced connection's timers end: no timer fires over and over.
    let timeouts = p.timeouts;
    p.wait(Duration::from_secs(30));
    assert!(
        p.timeouts - timeouts < 20,
        "{} timeouts",
        p.timeouts - timeouts
    );
    assert!(p.client.poll_timeout().is_none_or(|t| t > p.now));
    assert_eq!(ping_every_100ms(&mut p, 10), 0);
    assert_eq!(p.client.state(), State::Connected);
}

/// Starts a make-before-break whose first IKE_SA_INIT is lost: the new connection is still
/// being made when this returns (its retransmission comes 4 s later).
fn start_slow_switch(p: &mut Pair) {
    let first_new = p.sent[0];
    p.filter = Some(Box::new(move |dir, n, _| {
        if dir == Dir::ToServer && n == first_new {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    offer(p, &[NEW, OLD], &[NEW, OLD]);
    assert_eq!(p.connections().len(), 1, "still being made");
}

#[test]
fn losing_the_old_connection_meanwhile_hands_over_to_the_new_one() {
    let mut p = connected(707, false, true);
    let old_spi_r = p.server_established().unwrap();
    start_slow_switch(&mut p);
    // The server deletes the old IKE SA before the new one is up.
    let now = p.now;
    assert!(p.server.delete_ike_sa(now, old_spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Connecting);
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.connections().len(), 2, "{:?}", p.client_events);
    assert_eq!(p.client.state(), State::Connected);
    assert_eq!(p.client.ike().path().0, addr(NEW));
    assert_eq!(
        states_after_first_connect(&p),
        vec![State::Connecting, State::IkeSaEstablished, State::Connected],
        "the attempt under way continued: no backoff, no second attempt"
    );
    assert!(!p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { .. } | Event::Disconnected(_))));
    assert_eq!(p.server.sa_count(), 1);
    assert!(p.ping(1));
}

#[test]
fn closing_during_a_make_before_break_ends_both() {
    let mut p = connected(708, false, true);
    start_slow_switch(&mut p);
    let now = p.now;
    p.client.close(now);
    p.pump();
    p.run_for(Duration::from_secs(60));
    assert_eq!(
        p.disconnect_reason(),
        Some(&roam_proto::session::DisconnectReason::Closed)
    );
    assert_eq!(p.client.poll_timeout(), None, "nothing left to do");
    assert_eq!(p.connections().len(), 1, "the new one never came up");
    assert_eq!(p.server.sa_count(), 0);
}

#[test]
fn a_server_without_mobike_is_switched_without_losing_a_ping() {
    switch_without_loss(connected(700, false, true));
}

#[test]
fn mobike_off_in_the_profile_is_switched_without_losing_a_ping() {
    switch_without_loss(connected(701, true, false));
}

#[test]
fn packets_in_flight_on_the_old_path_still_arrive_for_a_grace_time() {
    let mut p = connected(702, false, true);
    let vip = match p.connected().unwrap().virtual_ips[0] {
        std::net::IpAddr::V4(a) => a.octets(),
        a => panic!("{a}"),
    };
    // Two packets from the server on the old CHILD SA, held back on the link.
    let held = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let h2 = held.clone();
    p.filter = Some(Box::new(move |dir, _, d| {
        if dir == Dir::ToClient {
            h2.borrow_mut().push(d.to_vec());
            return Fate::Drop;
        }
        Fate::Deliver
    }));
    for n in 1..=2u8 {
        assert!(p.server_enqueue(&pair::icmp([203, 0, 113, 2], vip, &[n; 16])));
    }
    p.pump();
    p.filter = None;
    let held: Vec<Vec<u8>> = held.borrow().clone();
    assert_eq!(held.len(), 2);
    offer(&mut p, &[NEW, OLD], &[NEW, OLD]);
    assert_eq!(p.connections().len(), 2, "switched");
    // Outbound leaves on the new path at once.
    let mut out = vec![0u8; 2048];
    let new_vip = match p.connected().unwrap().virtual_ips[0] {
        std::net::IpAddr::V4(a) => a.octets(),
        a => panic!("{a}"),
    };
    let d = p
        .client
        .handle_packet(
            p.now,
            &pair::icmp(new_vip, [203, 0, 113, 2], &[9; 16]),
            &mut out,
        )
        .unwrap();
    assert_eq!(d.local, addr(NEW));
    // A late packet of the old CHILD SA is still opened ...
    let server = SocketAddr::new(pair::server_addr().ip(), 4500);
    let mut late = held[0].clone();
    let now = p.now;
    assert!(matches!(
        p.client.handle_datagram(now, addr(OLD), server, &mut late),
        Received::Packet(_)
    ));
    // ... but not once the grace time is over.
    p.wait(Duration::from_secs(11));
    let mut later = held[1].clone();
    let now = p.now;
    assert!(matches!(
        p.client.handle_datagram(now, addr(OLD), server, &mut later),
        Received::Dropped(_)
    ));
    assert!(p.ping(3));
}

#[test]
fn a_failed_new_connection_keeps_the_old_one_and_is_retried() {
    let mut p = connected(703, false, true);
    let spis = p.client.ike().spis();
    let old_spi_r = p.server_established().unwrap();
    // The new address is offered and preferred, but reaches nothing.
    offer(&mut p, &[NEW, OLD], &[OLD]);
    let lost = ping_every_100ms(&mut p, 1000);
    assert_eq!(lost, 0, "the old connection carried everything");
    assert_eq!(p.client.ike().spis(), spis, "still the old IKE SA");
    assert_eq!(p.client.ike().path().0, addr(OLD));
    assert_eq!(p.connections().len(), 1);
    assert!(!server_closed(&p, old_spi_r));
    assert_eq!(states_after_first_connect(&p), Vec::<State>::new());
    assert!(
        !p.client_events
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { .. } | Event::Disconnected(_))),
        "{:?}",
        p.client_events
    );
    // The new path starts working: a later attempt (after the backoff) succeeds.
    p.client_ips = Some(vec![addr(NEW).ip(), addr(OLD).ip()]);
    let lost = ping_every_100ms(&mut p, 1500);
    assert_eq!(lost, 0);
    assert_eq!(p.connections().len(), 2, "{:?}", p.client_events);
    assert_eq!(p.client.ike().path().0, addr(NEW));
    assert!(server_closed(&p, old_spi_r));
    assert_eq!(p.server.sa_count(), 1);
    assert_eq!(states_after_first_connect(&p), Vec::<State>::new());
}

#[test]
fn the_current_path_preferred_again_drops_the_new_connection() {
    let mut p = connected(704, false, true);
    let spis = p.client.ike().spis();
    // The new path is slow to answer: its IKE_SA_INIT is lost.
    p.filter = Some(Box::new(|dir, _, _| {
        if dir == Dir::ToServer {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    offer(&mut p, &[NEW, OLD], &[NEW, OLD]);
    p.filter = None;
    offer(&mut p, &[OLD, NEW], &[NEW, OLD]);
    assert_eq!(ping_every_100ms(&mut p, 200), 0);
    assert_eq!(p.connections().len(), 1, "no new connection");
    assert_eq!(p.client.ike().spis(), spis);
    assert_eq!(p.server.sa_count(), 1, "nothing left on the server");
}

#[test]
fn the_old_path_gone_means_a_new_connection_after_the_old_is_deleted() {
    let mut p = connected(705, false, true);
    let old_spi_r = p.server_established().unwrap();
    offer(&mut p, &[NEW], &[NEW]);
    p.run_for(Duration::from_secs(5));
    let conns = p.connections();
    assert_eq!(conns.len(), 2, "{:?}", p.client_events);
    assert!(server_closed(&p, old_spi_r));
    assert_eq!(p.client.ike().path().0, addr(NEW));
    assert!(
        p.client.ike().sends_initial_contact(),
        "the only IKE SA: INITIAL_CONTACT as usual"
    );
    // Break-before-make, as before: the app saw the connection being made again.
    assert_eq!(
        states_after_first_connect(&p),
        vec![State::Connecting, State::IkeSaEstablished, State::Connected]
    );
    assert!(p.ping(1));
}

#[test]
fn the_old_path_gone_during_a_make_before_break_falls_back_to_a_new_connection() {
    let mut p = connected(706, false, true);
    let old_spi_r = p.server_established().unwrap();
    // The new connection is under way (its first IKE_SA_INIT lost) ...
    let first_new = p.sent[0];
    p.filter = Some(Box::new(move |dir, n, _| {
        if dir == Dir::ToServer && n == first_new {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    offer(&mut p, &[NEW, OLD], &[NEW, OLD]);
    assert_eq!(p.connections().len(), 1);
    // ... when the old address goes away.
    offer(&mut p, &[NEW], &[NEW]);
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.connections().len(), 2, "{:?}", p.client_events);
    assert!(server_closed(&p, old_spi_r));
    assert_eq!(p.client.ike().path().0, addr(NEW));
    assert_eq!(p.server.sa_count(), 1, "the abandoned attempt left nothing");
    assert!(p.ping(1));
    assert!(p.disconnect_reason().is_none());
}
