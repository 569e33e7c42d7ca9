//! The client's data path on the sans-IO core: packets from the TUN go into ESP only when
//! connected and inside the selectors; decrypted packets come out only when the selectors
//! allow them; hostile ESP is dropped and counted and the tunnel keeps working.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::net::SocketAddr;

use pair::{icmp, psk_client, psk_server, Pair};
use roam_proto::esp::EspSa;
use roam_proto::rng::SeededRng;
use roam_proto::session::{PacketDrop, Received};

const PSK: &str = "data path psk";

fn natt_server() -> SocketAddr {
    pair::natt(pair::server_addr().ip())
}

/// A connected pair and the responder's half of the ESP SA.
fn connected() -> (Pair, EspSa) {
    let p = Pair::connected_with(psk_client(PSK, &[], &["aes256gcm16"]), psk_server(PSK), 300);
    let spi_r = p.server_established().unwrap();
    let child = p.server.child(spi_r).unwrap().clone();
    let esp = EspSa::new(&child, &mut SeededRng::new(1)).unwrap();
    (p, esp)
}

#[test]
fn packets_cross_both_ways() {
    let (mut p, mut server_esp) = connected();
    let vip = [198, 18, 0, 1];
    let lan = [203, 0, 113, 2];
    let mut out = vec![0u8; 2048];
    for i in 0..50u8 {
        let packet = icmp(vip, lan, &[i; 64]);
        let now = p.now;
        let d = p
            .client
            .handle_packet(now, &packet, &mut out)
            .expect("carried");
        assert_eq!(d.remote, natt_server());
        // The responder's side opens it.
        let mut esp = out[..d.len].to_vec();
        let inner = server_esp.decapsulate(&mut esp).expect("authentic");
        assert_eq!(&esp[inner], &packet[..]);
        // ... and answers.
        let reply = icmp(lan, vip, &[i; 64]);
        let mut back = vec![0u8; 2048];
        let n = server_esp.encapsulate(&reply, &mut back).unwrap();
        match p
            .client
            .handle_datagram(now, pair::client_addr(), natt_server(), &mut back[..n])
        {
            Received::Packet(r) => assert_eq!(&back[r], &reply[..]),
            other => panic!("{other:?}"),
        }
    }
    let stats = p.client.data_stats();
    assert_eq!((stats.esp.packets_out, stats.esp.packets_in), (50, 50));
    assert!(
        p.client.max_packet(1500) >= 1400,
        "{}",
        p.client.max_packet(1500)
    );
}

#[test]
fn nothing_leaves_in_the_clear() {
    let mut p = Pair::new(psk_client(PSK, &[], &[]), psk_server(PSK), 301);
    let mut out = vec![0u8; 2048];
    let packet = icmp([198, 18, 0, 1], [203, 0, 113, 2], b"early");
    // Before connecting, and during the handshake.
    assert_eq!(
        p.client.handle_packet(p.now, &packet, &mut out),
        Err(PacketDrop::NotConnected)
    );
    p.client
        .connect(p.now, pair::client_addr(), pair::server_addr());
    assert_eq!(
        p.client.handle_packet(p.now, &packet, &mut out),
        Err(PacketDrop::NotConnected)
    );
    p.pump();
    assert!(p.connected().is_some());
    // Not from our virtual IP: outside TSi.
    let spoofed = icmp([10, 9, 9, 9], [203, 0, 113, 2], b"spoof");
    assert_eq!(
        p.client.handle_packet(p.now, &spoofed, &mut out),
        Err(PacketDrop::OutsideSelectors)
    );
    assert_eq!(
        p.client.handle_packet(p.now, b"\x00\x01garbage", &mut out),
        Err(PacketDrop::NotIp)
    );
    // After closing.
    let now = p.now;
    p.client.close(now);
    p.pump();
    assert_eq!(
        p.client.handle_packet(p.now, &packet, &mut out),
        Err(PacketDrop::NotConnected)
    );
    assert_eq!(p.client.data_stats().dropped_outbound, 5);
}

#[test]
fn hostile_esp_is_dropped_and_counted() {
    let (mut p, mut server_esp) = connected();
    let vip = [198, 18, 0, 1];
    let lan = [203, 0, 113, 2];
    let from = natt_server();
    let to = pair::client_addr();
    let now = p.now;
    // A genuine packet, then replayed.
    let reply = icmp(lan, vip, b"pong");
    let mut buf = vec![0u8; 2048];
    let n = server_esp.encapsulate(&reply, &mut buf).unwrap();
    let genuine = buf[..n].to_vec();
    assert!(matches!(
        p.client
            .handle_datagram(now, to, from, &mut genuine.clone()),
        Received::Packet(_)
    ));
    assert!(matches!(
        p.client
            .handle_datagram(now, to, from, &mut genuine.clone()),
        Received::Dropped(PacketDrop::Esp(_))
    ));
    // Truncated at every length, and one bit flipped at every position.
    for cut in 0..genuine.len() {
        let _ = p
            .client
            .handle_datagram(now, to, from, &mut genuine[..cut].to_vec());
    }
    let n = server_esp.encapsulate(&reply, &mut buf).unwrap();
    for i in 0..n {
        let mut bad = buf[..n].to_vec();
        bad[i] ^= 0x40;
        assert!(
            !matches!(
                p.client.handle_datagram(now, to, from, &mut bad),
                Received::Packet(_)
            ),
            "flip at {i}"
        );
    }
    // Wrong SPI.
    let mut wrong = buf[..n].to_vec();
    wrong[0] ^= 0xff;
    assert!(matches!(
        p.client.handle_datagram(now, to, from, &mut wrong),
        Received::Dropped(_)
    ));
    // The tunnel still works.
    let n = server_esp.encapsulate(&reply, &mut buf).unwrap();
    assert!(matches!(
        p.client.handle_datagram(now, to, from, &mut buf[..n]),
        Received::Packet(_)
    ));
    let stats = p.client.data_stats();
    assert!(
        stats.esp.dropped() > 0 && stats.esp.replay >= 1 && stats.esp.auth >= 1,
        "{stats:?}"
    );
}

#[test]
fn decrypted_packets_must_match_the_selectors() {
    // Ask only for the LAN: the CHILD SA's TSr is 203.0.113.0/24.
    let mut client = psk_client(PSK, &[], &["aes256gcm16"]);
    client.remote_ts = vec![roam_proto::ike::child::ts_prefix(
        "203.0.113.0".parse().unwrap(),
        24,
    )];
    let mut p = Pair::new(client, psk_server(PSK), 302);
    p.connect();
    let info = p.connected().expect("connected").clone();
    assert_eq!(info.remote_ts.len(), 1);
    let spi_r = p.server_established().unwrap();
    let mut server_esp =
        EspSa::new(p.server.child(spi_r).unwrap(), &mut SeededRng::new(2)).unwrap();
    let vip = [198, 18, 0, 1];
    let mut buf = vec![0u8; 2048];
    let (to, from, now) = (pair::client_addr(), natt_server(), p.now);
    // Authentic, but its source is outside TSr: dropped, never handed to the TUN.
    let odd = icmp([192, 0, 2, 9], vip, b"odd");
    let n = server_esp.encapsulate(&odd, &mut buf).unwrap();
    assert_eq!(
        p.client.handle_datagram(now, to, from, &mut buf[..n]),
        Received::Dropped(PacketDrop::OutsideSelectors)
    );
    // And outbound to an address outside TSr is refused too.
    let mut out = vec![0u8; 2048];
    let to_elsewhere = icmp(vip, [192, 0, 2, 9], b"x");
    assert_eq!(
        p.client.handle_packet(now, &to_elsewhere, &mut out),
        Err(PacketDrop::OutsideSelectors)
    );
    let ok = icmp([203, 0, 113, 2], vip, b"ok");
    let n = server_esp.encapsulate(&ok, &mut buf).unwrap();
    assert!(matches!(
        p.client.handle_datagram(now, to, from, &mut buf[..n]),
        Received::Packet(_)
    ));
    let stats = p.client.data_stats();
    assert_eq!(
        (stats.dropped_inbound_selectors, stats.dropped_outbound),
        (1, 1)
    );
}
