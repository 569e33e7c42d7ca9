//! A whole connection over TCP framing (RFC 9329) on the virtual clock: the link is one TCP
//! stream each way (the "IKETCP" prefix, length-counted frames), the session speaks the NAT-T
//! framing from its first message and stays on the port it connected to, sends no NAT
//! keepalives even behind a NAT, does not retransmit requests, reconnects when the connection
//! closes under it, and starts over on TCP when UDP went unanswered.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::net::SocketAddr;
use std::time::Duration;

use pair::{psk_client, psk_server, server_addr, Dir, Fate, Nat, Pair, TcpLink};
use roam_proto::session::{DisconnectReason, Event, State, Transport};

const PSK: &str = "tcp psk";

fn tcp_pair(seed: u64, port: u16, f: impl FnOnce(&mut roam_proto::config::ClientConfig)) -> Pair {
    let mut c = psk_client(PSK, &[], &[]);
    f(&mut c);
    Pair::new_tcp(c, psk_server(PSK), seed, port)
}

/// Every datagram the client put on the link, as (remote port, payload).
fn client_sends(p: &mut Pair) -> std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    p.filter = Some(Box::new(move |dir, _, d| {
        if dir == Dir::ToServer {
            s.borrow_mut().push(d.to_vec());
        }
        Fate::Deliver
    }));
    seen
}

#[test]
fn a_connection_runs_over_tcp_frames_on_any_port() {
    for (seed, port) in [(900u64, 4500u16), (901, 443)] {
        let mut p = tcp_pair(seed, port, |_| {});
        let sent = client_sends(&mut p);
        p.connect();
        assert!(p.connected().is_some(), "{:?}", p.client_events);
        assert_eq!(p.client.transport(), Transport::Tcp);
        assert_eq!(
            p.client.ike().path().1,
            SocketAddr::new(server_addr().ip(), port),
            "no switch to another port over TCP"
        );
        // IKE_SA_INIT already carried the non-ESP marker (the frame body is a NAT-T datagram).
        let first = sent.borrow()[0].clone();
        assert_eq!(&first[..4], &[0, 0, 0, 0]);
        assert!(p.ping(1) && p.ping(2), "ESP both ways in frames");
        let tcp = p.tcp.as_ref().unwrap();
        // IKE_SA_INIT, IKE_AUTH and two ESP packets toward the server, as many back.
        assert!(tcp.frames[0] >= 4 && tcp.frames[1] >= 4, "{:?}", tcp.frames);
        let info = p.connected().unwrap();
        assert!(
            info.udp_encapsulation,
            "ESP has no UDP header, but the NAT-T framing"
        );
        assert!(p.client.max_packet(1500) < 1500 - 20 - 32 - 2);
    }
}

#[test]
fn no_nat_keepalives_over_tcp_even_behind_a_nat() {
    let mut c = psk_client(PSK, &[], &[]);
    c.dpd = Some(Duration::from_secs(60));
    let mut p = Pair::new_tcp(c, psk_server(PSK), 902, 4500);
    p.nat = Some(Nat::new("192.0.2.7".parse().unwrap()));
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(p.client.ike().behind_nat(), "NAT detection still runs");
    p.timeouts = 0;
    p.wait(Duration::from_secs(600));
    let stats = p.client.ike().liveness_stats();
    assert_eq!(stats.keepalives, 0, "{stats:?}");
    assert_eq!(stats.dpds, 10, "DPD still runs, once per 60 s");
    assert_eq!(p.timeouts, 10, "the session wakes for DPD only");
    assert_eq!(p.client.state(), State::Connected);
}

#[test]
fn requests_are_not_retransmitted_over_tcp() {
    let mut p = tcp_pair(903, 4500, |c| c.reconnect = None);
    let sent = std::rc::Rc::new(std::cell::RefCell::new(0usize));
    let s = sent.clone();
    // A server that never answers (the connection stays up).
    p.filter = Some(Box::new(move |dir, _, _| {
        if dir == Dir::ToServer {
            *s.borrow_mut() += 1;
        }
        Fate::Drop
    }));
    p.connect();
    let start = p.now;
    p.run_for(Duration::from_secs(300));
    assert_eq!(*sent.borrow(), 1, "IKE_SA_INIT sent once");
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Timeout));
    // The default schedule's five sends would have taken 4 + 7.2 + 12.96 + 23.33 + 30 s.
    let took = p.client_event_times.last().unwrap().duration_since(start);
    assert!(
        took > Duration::from_secs(77) && took < Duration::from_secs(78),
        "{took:?}"
    );

    // The same over UDP retransmits five times.
    let mut c = psk_client(PSK, &[], &[]);
    c.reconnect = None;
    let mut u = Pair::new(c, psk_server(PSK), 903);
    let n = std::rc::Rc::new(std::cell::RefCell::new(0usize));
    let m = n.clone();
    u.filter = Some(Box::new(move |dir, _, _| {
        if dir == Dir::ToServer {
            *m.borrow_mut() += 1;
        }
        Fate::Drop
    }));
    u.connect();
    u.run_for(Duration::from_secs(300));
    assert_eq!(*n.borrow(), 5);
}

#[test]
fn a_closed_connection_is_a_lost_path_and_the_session_reconnects() {
    let mut p = tcp_pair(904, 4500, |_| {});
    p.connect();
    assert!(p.connected().is_some());
    let local = p.client.ike().path().0;
    // The runtime saw a reset: a new TCP connection (new port) carries the next attempt.
    p.client.transport_closed(p.now, local);
    p.pump();
    assert_eq!(p.client.state(), State::Reconnecting);
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        Event::Reconnecting {
            reason: DisconnectReason::PathLost,
            ..
        }
    )));
    p.tcp = Some(TcpLink::new(4500));
    p.run_for(Duration::from_secs(30));
    assert_eq!(p.client.state(), State::Connected, "{:?}", p.client_events);
    assert_eq!(p.connections().len(), 2);
    assert!(p.ping(3));
    // A close of some other connection is not ours.
    let before = p.client_events.len();
    p.client
        .transport_closed(p.now, "198.51.100.2:1".parse().unwrap());
    p.pump();
    assert_eq!(p.client.state(), State::Connected);
    assert_eq!(p.client_events.len(), before);
}

#[test]
fn an_unanswered_udp_attempt_starts_over_on_tcp() {
    let mut c = psk_client(PSK, &[], &[]);
    c.reconnect = None;
    let mut p = Pair::new(c, psk_server(PSK), 905);
    // UDP is blocked: nothing reaches the server while the link is UDP.
    p.filter = Some(Box::new(|dir, _, _| {
        if dir == Dir::ToServer {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    p.connect();
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.client.state(), State::Connecting);
    let udp_spi = p.client.ike().spis().0;
    // The runtime's fallback: a TCP connection from a new local port.
    p.filter = None;
    p.tcp = Some(TcpLink::new(4500));
    let local: SocketAddr = "198.51.100.2:40001".parse().unwrap();
    let server = SocketAddr::new(server_addr().ip(), 4500);
    p.client
        .switch_transport(p.now, Transport::Tcp, &[local], server);
    p.pump();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert_ne!(p.client.ike().spis().0, udp_spi, "a new IKE SA");
    assert_eq!(p.client.ike().path(), (local, server));
    assert!(p.ping(4));
}

#[test]
fn a_udp_probe_from_a_tcp_session_is_a_fresh_ike_sa_init_and_its_answer_is_harmless() {
    let mut p = tcp_pair(930, 4500, |_| {});
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    let spi_before = p.client.ike().spis();
    let local = p.client.ike().path().0;
    let udp_server = SocketAddr::new(server_addr().ip(), 500);
    let now = p.now;
    let probe = p
        .client
        .udp_probe(now, local, udp_server)
        .expect("a probe datagram");
    // On UDP port 500: no non-ESP marker, an IKE_SA_INIT request of another IKE SA.
    let h = roam_proto::wire::Header::parse(&probe).expect("an IKE header");
    assert_eq!(h.exchange, roam_proto::wire::ExchangeType::IKE_SA_INIT);
    assert!(h.is_initiator() && !h.is_response() && h.spi_r == 0);
    assert_ne!(h.spi_i, spi_before.0, "a throwaway IKE SA, not ours");
    // The server answers it as any IKE_SA_INIT (so UDP shows that it gets through).
    p.server.handle_message(now, udp_server, local, &probe);
    let answer = p.server.poll_outgoing().expect("an answer");
    assert_eq!(answer.remote, local);
    // Fed to the session, the answer changes nothing: dropped, still connected on TCP.
    let mut data = answer.message.clone();
    let _ = p.client.handle_datagram(now, local, udp_server, &mut data);
    assert_eq!(p.client.state(), State::Connected);
    assert_eq!(p.client.transport(), Transport::Tcp);
    assert_eq!(p.client.ike().spis(), spi_before);
    assert!(p.ping(1), "traffic still flows on TCP");
}
