//! The responder's data path with real client `Session`s: packets cross client -> responder ->
//! back, each client gets its own addresses and only its own packets, hostile ESP is dropped
//! and counted, leases return to the pool when a client leaves, and a client that moves is
//! followed. One responder and several clients on a virtual link and a virtual clock.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use pair::{psk_client, psk_server};
use roam_proto::esp::EspSa;
use roam_proto::ike::responder::{Responder, ResponderConfig, ResponderEvent};
use roam_proto::rng::SeededRng;
use roam_proto::session::{DisconnectReason, Event, Received, Session};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};

const PSK: &str = "responder data path psk";

fn server_natt() -> SocketAddr {
    SocketAddr::new(pair::server_addr().ip(), 4500)
}

/// An IPv4 packet: ICMP echo request (protocol 1) or UDP (17), checksums left zero.
fn ipv4(protocol: u8, src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let l4: Vec<u8> = if protocol == 1 {
        [&[8, 0, 0, 0, 0, 1, 0, 1][..], payload].concat()
    } else {
        let len = (8 + payload.len()) as u16;
        let mut u = vec![0x9c, 0x40, 0, 7];
        u.extend_from_slice(&len.to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    };
    let len = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, protocol, 0, 0];
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    p.extend_from_slice(&l4);
    p
}

/// The packet with source and destination swapped: what an echo responder sends back.
fn swapped(p: &[u8]) -> Vec<u8> {
    let mut r = p.to_vec();
    r[12..16].copy_from_slice(&p[16..20]);
    r[16..20].copy_from_slice(&p[12..16]);
    r
}

fn lan() -> IpAddr {
    "203.0.113.2".parse().unwrap()
}

struct Client {
    session: Session,
    addr: SocketAddr,
    events: Vec<Event>,
}

impl Client {
    fn info(&self) -> Option<&roam_proto::session::ConnectedInfo> {
        self.events.iter().find_map(|e| match e {
            Event::Connected(i) => Some(i),
            _ => None,
        })
    }
    fn vip4(&self) -> IpAddr {
        *self
            .info()
            .expect("connected")
            .virtual_ips
            .iter()
            .find(|a| a.is_ipv4())
            .expect("an IPv4 lease")
    }
}

/// One responder, many clients, a lossless link, decrypted packets collected on the server.
struct Net {
    now: Instant,
    server: Responder,
    server_events: Vec<ResponderEvent>,
    clients: Vec<Client>,
    /// Inner packets the responder decrypted (what its TUN would get).
    server_packets: Vec<Vec<u8>>,
}

impl Net {
    fn new(cfg: ResponderConfig) -> Self {
        Self {
            now: Instant::now(),
            server: Responder::new(cfg, Box::new(SeededRng::new(77))),
            server_events: Vec::new(),
            clients: Vec::new(),
            server_packets: Vec::new(),
        }
    }

    /// Adds a client at `addr` and runs its handshake; returns its index.
    fn connect(&mut self, addr: &str, seed: u64) -> usize {
        let session = Session::new(
            psk_client(PSK, &[], &["aes256gcm16"]),
            Box::new(SeededRng::new(seed)),
        )
        .unwrap();
        let addr: SocketAddr = addr.parse().unwrap();
        self.clients.push(Client {
            session,
            addr,
            events: Vec::new(),
        });
        let i = self.clients.len() - 1;
        let now = self.now;
        self.clients[i]
            .session
            .connect(now, addr, pair::server_addr());
        self.pump();
        i
    }

    /// Delivers IKE both ways until quiet; ESP from clients goes through `handle_esp`.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for c in 0..self.clients.len() {
                while let Some(t) = self.clients[c].session.poll_transmit() {
                    moved = true;
                    self.deliver_to_server(t.remote.port(), self.clients[c].addr, t.payload);
                }
                while let Some(e) = self.clients[c].session.poll_event() {
                    self.clients[c].events.push(e);
                }
            }
            while let Some(o) = self.server.poll_outgoing() {
                moved = true;
                let Some(c) = self.clients.iter_mut().find(|c| c.addr == o.remote) else {
                    continue;
                };
                let natt = c.session.ike().path().1.port() == 4500;
                let (from, mut data) = if natt {
                    (server_natt(), [&NON_ESP_MARKER[..], &o.message].concat())
                } else {
                    (pair::server_addr(), o.message)
                };
                c.session.handle_datagram(self.now, c.addr, from, &mut data);
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("the link never went quiet");
    }

    /// A datagram from `from` to the responder's port `port`.
    fn deliver_to_server(&mut self, port: u16, from: SocketAddr, mut data: Vec<u8>) {
        let local = SocketAddr::new(pair::server_addr().ip(), port);
        if port != 4500 {
            self.server.handle_message(self.now, local, from, &data);
            return;
        }
        match classify(&data) {
            NattDatagram::Ike(m) => self.server.handle_message(self.now, local, from, m),
            _ => {
                if let Some(r) = self.server.handle_esp(self.now, from, &mut data) {
                    self.server_packets.push(data[r].to_vec());
                }
            }
        }
    }

    /// Client `c` sends `packet` through its tunnel; returns the ESP datagram it produced.
    fn client_sends(&mut self, c: usize, packet: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 2048];
        let now = self.now;
        let d = self.clients[c]
            .session
            .handle_packet(now, packet, &mut out)
            .expect("the client carries it");
        assert_eq!(d.remote, server_natt());
        out.truncate(d.len);
        out
    }

    /// The responder routes `packet`; the client it went to (by address) decrypts it.
    /// Returns that client's index and what it got.
    fn server_sends(&mut self, packet: &[u8]) -> Option<(usize, Received, Vec<u8>)> {
        let mut out = vec![0u8; 2048];
        let (to, len) = self.server.route_packet(packet, &mut out)?;
        out.truncate(len);
        let c = self.clients.iter().position(|c| c.addr == to)?;
        let addr = self.clients[c].addr;
        let now = self.now;
        let r = self.clients[c]
            .session
            .handle_datagram(now, addr, server_natt(), &mut out);
        Some((c, r, out))
    }
}

#[test]
fn packets_cross_client_responder_and_back() {
    let mut net = Net::new(psk_server(PSK));
    let c = net.connect(pair::CLIENT, 1);
    let vip = net.clients[c].vip4();
    assert_eq!(vip, "198.18.0.1".parse::<IpAddr>().unwrap());
    let mut bytes = 0;
    for i in 0..40u8 {
        let proto = if i % 2 == 0 { 1 } else { 17 };
        let packet = ipv4(proto, vip, lan(), &[i; 100]);
        bytes += packet.len() as u64;
        let esp = net.client_sends(c, &packet);
        net.deliver_to_server(4500, net.clients[c].addr, esp);
        assert_eq!(net.server_packets.last(), Some(&packet), "packet {i}");
        let reply = swapped(&packet);
        match net.server_sends(&reply) {
            Some((to, Received::Packet(r), data)) => {
                assert_eq!(to, c);
                assert_eq!(&data[r], &reply[..]);
            }
            other => panic!("reply {i}: {other:?}"),
        }
    }
    let s = net.server.data_stats();
    assert_eq!((s.packets_in, s.packets_out), (40, 40));
    assert_eq!((s.bytes_in, s.bytes_out), (bytes, bytes));
    assert_eq!((s.dropped_inbound(), s.dropped_outbound()), (0, 0));
    let spi_r = net.clients[c].info().unwrap().spi_r;
    let per_client = net.server.client_esp_stats(spi_r).unwrap();
    assert_eq!((per_client.packets_in, per_client.packets_out), (40, 40));
    let cs = net.clients[c].session.data_stats();
    assert_eq!((cs.esp.packets_out, cs.esp.packets_in), (40, 40));
}

#[test]
fn hostile_esp_to_the_responder_is_dropped_and_counted() {
    let mut net = Net::new(psk_server(PSK));
    let c = net.connect(pair::CLIENT, 2);
    let vip = net.clients[c].vip4();
    let from = net.clients[c].addr;
    let now = net.now;
    let genuine = net.client_sends(c, &ipv4(1, vip, lan(), b"ping"));
    // Keepalives are ignored, not dropped.
    assert_eq!(net.server.handle_esp(now, from, &mut [0xff]), None);
    // Truncated at every length.
    for cut in 0..genuine.len() {
        assert_eq!(
            net.server
                .handle_esp(now, from, &mut genuine[..cut].to_vec()),
            None
        );
    }
    // A bit flipped anywhere.
    for i in 0..genuine.len() {
        let mut bad = genuine.clone();
        bad[i] ^= 0x10;
        assert_eq!(net.server.handle_esp(now, from, &mut bad), None, "flip {i}");
    }
    // An SPI nobody has.
    let mut unknown = genuine.clone();
    unknown[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(net.server.handle_esp(now, from, &mut unknown), None);
    // The genuine one passes once, and its replay does not.
    assert!(net
        .server
        .handle_esp(now, from, &mut genuine.clone())
        .is_some());
    assert_eq!(net.server.handle_esp(now, from, &mut genuine.clone()), None);
    // Authentic but spoofed: a source address that is not the client's lease. (Sealed with
    // the client's keys outside its Session, which would refuse to send it.)
    let child = net.clients[c].session.ike().child().unwrap().clone();
    let mut forger = EspSa::new(&child, &mut SeededRng::new(9)).unwrap();
    forger.outbound.advance_seq(1000).unwrap();
    let spoofed = ipv4(1, "198.18.0.77".parse().unwrap(), lan(), b"spoof");
    let mut out = vec![0u8; 2048];
    let n = forger.encapsulate(&spoofed, &mut out).unwrap();
    assert_eq!(net.server.handle_esp(now, from, &mut out[..n]), None);

    let s = net.server.data_stats();
    assert_eq!(s.keepalives, 1);
    assert_eq!(s.outside_selectors_in, 1);
    assert!(s.unknown_spi >= 5, "{s:?}");
    assert!(s.esp_rejected >= genuine.len() as u64, "{s:?}");
    assert_eq!(s.packets_in, 1);
    assert_eq!(
        s.dropped_inbound(),
        s.unknown_spi + s.esp_rejected + s.outside_selectors_in
    );
    // The tunnel still works.
    let next = net.client_sends(c, &ipv4(1, vip, lan(), b"still"));
    net.deliver_to_server(4500, from, next);
    assert_eq!(net.server.data_stats().packets_in, 2);
    assert_eq!(net.server.client_addr(child_spi_r(&net, c)), Some(from));
}

fn child_spi_r(net: &Net, c: usize) -> u64 {
    net.clients[c].info().unwrap().spi_r
}

#[test]
fn two_clients_get_their_own_addresses_and_packets() {
    let mut net = Net::new(psk_server(PSK));
    let a = net.connect("198.51.100.2:40000", 3);
    let b = net.connect("198.51.100.3:40001", 4);
    let (va, vb) = (net.clients[a].vip4(), net.clients[b].vip4());
    assert_ne!(va, vb);
    let v6 = |c: &Client| c.info().unwrap().virtual_ips.clone();
    assert_ne!(v6(&net.clients[a]), v6(&net.clients[b]));
    assert_eq!(net.server.leases_in_use(), (2, 2));
    for (c, vip) in [(a, va), (b, vb), (a, va), (b, vb)] {
        let p = ipv4(17, vip, lan(), vip.to_string().as_bytes());
        let esp = net.client_sends(c, &p);
        net.deliver_to_server(4500, net.clients[c].addr, esp);
        assert_eq!(net.server_packets.last(), Some(&p));
        let reply = swapped(&p);
        let (to, got, data) = net.server_sends(&reply).expect("routed");
        assert_eq!(to, c, "the reply for {vip} went to client {to}");
        let Received::Packet(r) = got else {
            panic!("{got:?}")
        };
        assert_eq!(&data[r], &reply[..]);
    }
    // A's packet delivered to B's address is not B's: B cannot open it.
    let mut out = vec![0u8; 2048];
    let (_, n) = net
        .server
        .route_packet(&ipv4(1, lan(), va, b"for a"), &mut out)
        .unwrap();
    let b_addr = net.clients[b].addr;
    let now = net.now;
    assert!(matches!(
        net.clients[b]
            .session
            .handle_datagram(now, b_addr, server_natt(), &mut out[..n]),
        Received::Dropped(_)
    ));
    // B cannot send as A either.
    let child_b = net.clients[b].session.ike().child().unwrap().clone();
    let mut forger = EspSa::new(&child_b, &mut SeededRng::new(5)).unwrap();
    forger.outbound.advance_seq(1000).unwrap();
    let n = forger
        .encapsulate(&ipv4(1, va, lan(), b"as a"), &mut out)
        .unwrap();
    assert_eq!(net.server.handle_esp(now, b_addr, &mut out[..n]), None);
    // Packets to nobody are dropped and counted.
    assert!(net
        .server
        .route_packet(
            &ipv4(1, lan(), "198.18.0.200".parse().unwrap(), b"?"),
            &mut out
        )
        .is_none());
    assert!(net.server.route_packet(b"not ip", &mut out).is_none());
    let s = net.server.data_stats();
    assert_eq!((s.no_route, s.outside_selectors_out), (1, 1));
    assert_eq!(s.outside_selectors_in, 1);
}

#[test]
fn leases_return_to_the_pool_and_the_sa_goes_with_the_client() {
    let mut cfg = psk_server(PSK);
    cfg.pool4 = Some(("198.18.0.10".parse().unwrap(), 1));
    cfg.pool6 = None;
    let mut net = Net::new(cfg);
    let a = net.connect("198.51.100.2:40000", 10);
    let va = net.clients[a].vip4();
    assert_eq!(va, "198.18.0.10".parse::<IpAddr>().unwrap());
    let old_esp = net.client_sends(a, &ipv4(1, va, lan(), b"before"));
    // The pool is empty: a second client gets no address (and no CHILD SA).
    let b = net.connect("198.51.100.3:40000", 11);
    assert!(
        net.clients[b].info().is_none(),
        "{:?}",
        net.clients[b].events
    );
    assert_eq!(net.server.leases_in_use(), (1, 0));
    // A leaves: its lease and its SAs go.
    let now = net.now;
    net.clients[a].session.close(now);
    net.pump();
    assert!(net.clients[a]
        .events
        .contains(&Event::Disconnected(DisconnectReason::Closed)));
    assert_eq!(net.server.leases_in_use(), (0, 0));
    let from = net.clients[a].addr;
    assert_eq!(net.server.handle_esp(now, from, &mut old_esp.clone()), None);
    assert_eq!(net.server.data_stats().unknown_spi, 1);
    let mut out = vec![0u8; 2048];
    assert!(net
        .server
        .route_packet(&ipv4(1, lan(), va, b"gone"), &mut out)
        .is_none());
    assert_eq!(net.server.data_stats().no_route, 1);
    // The address is free for the next client, again and again (bounded churn).
    for i in 0..20 {
        let c = net.connect("198.51.100.4:40000", 100 + i);
        assert_eq!(net.clients[c].vip4(), va, "round {i}");
        let now = net.now;
        net.clients[c].session.close(now);
        net.pump();
        net.clients.pop();
    }
    assert_eq!(net.server.leases_in_use(), (0, 0));
    assert_eq!(
        net.server.sa_count(),
        0,
        "the client that got no CHILD SA deleted its IKE SA as well"
    );
}

#[test]
fn a_client_that_moves_is_followed() {
    let mut net = Net::new(psk_server(PSK));
    let c = net.connect(pair::CLIENT, 20);
    let vip = net.clients[c].vip4();
    let spi_r = child_spi_r(&net, c);
    let now = net.now;
    // Forged ESP from elsewhere does not move it.
    let elsewhere: SocketAddr = "203.0.113.99:1234".parse().unwrap();
    let mut junk = net.client_sends(c, &ipv4(1, vip, lan(), b"x"));
    let last = junk.len() - 1;
    junk[last] ^= 1;
    assert_eq!(net.server.handle_esp(now, elsewhere, &mut junk), None);
    assert_eq!(net.server.client_addr(spi_r), Some(net.clients[c].addr));
    // Authentic ESP from a new address (a NAT rebinding) does.
    let moved: SocketAddr = "198.51.100.2:45000".parse().unwrap();
    let esp = net.client_sends(c, &ipv4(1, vip, lan(), b"from the new port"));
    net.clients[c].addr = moved;
    net.deliver_to_server(4500, moved, esp);
    assert_eq!(net.server.client_addr(spi_r), Some(moved));
    assert_eq!(net.server.data_stats().moved, 1);
    let (to, got, _) = net
        .server_sends(&ipv4(1, lan(), vip, b"reply"))
        .expect("routed to the new address");
    assert_eq!(to, c);
    assert!(matches!(got, Received::Packet(_)));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    #[test]
    fn garbage_esp_never_panics_nor_passes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200), spi_known in proptest::bool::ANY) {
        let mut net = Net::new(psk_server(PSK));
        let c = net.connect(pair::CLIENT, 30);
        let mut d = data;
        if spi_known && d.len() >= 4 {
            let spi = net.clients[c].info().unwrap().esp_spi_out;
            d[..4].copy_from_slice(&spi.to_be_bytes());
        }
        let from = net.clients[c].addr;
        proptest::prop_assert_eq!(net.server.handle_esp(net.now, from, &mut d), None);
        let mut out = vec![0u8; 2048];
        let _ = net.server.route_packet(&d, &mut out);
    }
}
