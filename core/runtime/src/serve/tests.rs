//! The server loop over real loopback UDP: a client `Session` driven by hand connects, its
//! packets come out of the server's packet side, and the packets put back in reach it.

use std::net::SocketAddr;
use std::time::Duration;

use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig, ResponderEvent};
use roam_proto::rng::SeededRng;
use roam_proto::session::{Event, Received, Session};
use tokio::net::UdpSocket;

use super::*;
use crate::packet_io::ChannelPackets;

const PSK: &[u8] = b"serve loop test psk";

fn responder() -> Responder {
    let cfg = ResponderConfig {
        id: Identity::parse("vpn.example.org").unwrap(),
        auth: ResponderAuth::Psk(Secret::from_slice(PSK)),
        ca: Vec::new(),
        eap_users: Vec::new(),
        ike: vec![ProposalSpec::parse_ike("aes256gcm16-prfsha256-curve25519", &[]).unwrap()],
        esp: vec![ProposalSpec::parse_esp("aes256gcm16", &[]).unwrap()],
        pool4: Some(("198.18.0.2".parse().unwrap(), 250)),
        pool6: None,
        dns: Vec::new(),
        subnets: vec![ts_any(false)],
        mobike: false,
        require_cookie: false,
        retransmit: Default::default(),
        fragment_size: 1280,
        unix_time: None,
    };
    Responder::new(cfg, Box::new(SeededRng::new(1)))
}

fn session(seed: u64) -> Session {
    let mut c = ClientConfig::new(ClientAuth::Psk(Secret::from_slice(PSK)));
    c.local_id = Identity::parse("client@example.org").ok();
    c.server_id = Identity::parse("vpn.example.org").ok();
    c.ike_proposals = vec!["aes256gcm16-prfsha256-curve25519".into()];
    c.esp_proposals = vec!["aes256gcm16".into()];
    Session::new(c, Box::new(SeededRng::new(seed))).unwrap()
}

/// A client session on its own loopback socket, driven by hand.
struct Client {
    session: Session,
    socket: UdpSocket,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl Client {
    async fn new(seed: u64) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        Self {
            session: session(seed),
            socket,
            local,
            buf: vec![0u8; 65_535],
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            self.socket.send_to(&t.payload, t.remote).await.unwrap();
        }
    }

    /// Runs until connected.
    async fn connect(&mut self, server: SocketAddr) -> roam_proto::session::ConnectedInfo {
        self.session.connect(now(), self.local, server);
        loop {
            self.flush().await;
            while let Some(e) = self.session.poll_event() {
                match e {
                    Event::Connected(info) => return info,
                    Event::Disconnected(r) => panic!("disconnected: {r}"),
                    _ => {}
                }
            }
            let _ = self.receive().await;
        }
    }

    /// Waits for one datagram and handles it; returns the decrypted packet if it was one.
    async fn receive(&mut self) -> Option<Vec<u8>> {
        let (n, remote) =
            tokio::time::timeout(Duration::from_secs(5), self.socket.recv_from(&mut self.buf))
                .await
                .expect("the server answers")
                .unwrap();
        let data = &mut self.buf[..n];
        match self
            .session
            .handle_datagram(now(), self.local, remote, data)
        {
            Received::Packet(r) => Some(data[r].to_vec()),
            _ => None,
        }
    }

    async fn send_packet(&mut self, packet: &[u8]) {
        let mut out = vec![0u8; 2048];
        let d = self.session.handle_packet(now(), packet, &mut out).unwrap();
        self.socket.send_to(&out[..d.len], d.remote).await.unwrap();
    }
}

fn icmp(src: [u8; 4], dst: [u8; 4], seq: u8) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 36, 0, 1, 0, 0, 64, 1, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, seq]);
    p.extend_from_slice(&[seq; 8]);
    p
}

fn swapped(p: &[u8]) -> Vec<u8> {
    let mut r = p.to_vec();
    r[12..16].copy_from_slice(&p[16..20]);
    r[16..20].copy_from_slice(&p[12..16]);
    r
}

/// Connects a client to `server`, then sends pings the server's app side echoes.
async fn ping_through(mut server: Server, mut app: crate::packet_io::AppPackets, to: SocketAddr) {
    let mut client = Client::new(7).await;
    let info = client.connect(to).await;
    let vip = match info.virtual_ips.first() {
        Some(std::net::IpAddr::V4(a)) => a.octets(),
        other => panic!("{other:?}"),
    };
    let ev = server.next_server_event().await.unwrap();
    assert!(
        matches!(ev.event, ResponderEvent::Established { .. }),
        "{ev:?}"
    );
    assert_eq!(ev.esp_proposal.as_deref(), Some("aes256gcm16"));
    for seq in 0..10u8 {
        let p = icmp(vip, [203, 0, 113, 9], seq);
        client.send_packet(&p).await;
        let got = tokio::time::timeout(Duration::from_secs(5), app.from_tunnel.recv())
            .await
            .expect("decrypted on the server")
            .unwrap();
        assert_eq!(got, p);
        app.to_tunnel.send(swapped(&p)).await.unwrap();
        let back = loop {
            if let Some(b) = client.receive().await {
                break b;
            }
        };
        assert_eq!(back, swapped(&p));
    }
    // Keepalives and junk on the NAT-T port are absorbed.
    let natt = if to.port() == 500 {
        SocketAddr::new(to.ip(), 4500)
    } else {
        to
    };
    client.socket.send_to(&[0xff], natt).await.unwrap();
    client
        .socket
        .send_to(&[1, 2, 3, 4, 5, 6, 7, 8, 9], natt)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Flushed after the next turn: send one more ping to be sure the counters moved.
    client.send_packet(&icmp(vip, [203, 0, 113, 9], 99)).await;
    let _ = app.from_tunnel.recv().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = server.data_stats();
    assert_eq!((s.packets_in, s.packets_out), (11, 10));
    assert_eq!((s.keepalives, s.unknown_spi), (1, 1));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn one_port_carries_ike_and_esp() {
    let (packets, app) = ChannelPackets::new(16);
    let server = Server::start_with_packets(responder(), "127.0.0.1:0".parse().unwrap(), packets)
        .await
        .unwrap();
    assert_eq!(server.local_addrs().len(), 1);
    let to = server.local_addr();
    ping_through(server, app, to).await;
}

#[tokio::test]
async fn port_500_also_listens_on_4500() {
    let (packets, app) = ChannelPackets::new(16);
    // Port 500 needs root and a free port: skip where either is missing.
    let bind: SocketAddr = "127.0.0.1:500".parse().unwrap();
    let server = match Server::start_with_packets(responder(), bind, packets).await {
        Ok(s) => s,
        Err(e) => {
            // Loud past the capture: scripts/test.sh fails CI on any SKIPPED line.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (needs root and free ports 500/4500): port_500_also_listens_on_4500: {e}"
            );
            return;
        }
    };
    assert_eq!(
        server.local_addrs(),
        &[
            "127.0.0.1:500".parse().unwrap(),
            "127.0.0.1:4500".parse().unwrap()
        ][..]
    );
    ping_through(server, app, bind).await;
}

/// An IPv4/UDP packet of `size` bytes from `src` to `dst` carrying `seq`.
fn udp(src: [u8; 4], dst: [u8; 4], seq: u16, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    p[28..30].copy_from_slice(&seq.to_be_bytes());
    p
}

/// Takes `n` packets from `rx` (each within 5 s).
async fn take(rx: &mut mpsc::Receiver<Vec<u8>>, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(p)) => got.push(p),
            _ => break,
        }
    }
    got
}

/// A burst both ways through the batched data path of both ends (the client's `Tunnel` and
/// the server, over loopback: GSO runs, recvmmsg/GRO): every packet arrives, in order, intact,
/// also when sizes change in the middle of a run.
#[tokio::test]
async fn a_burst_crosses_the_batched_path_both_ways_in_order() {
    const N: usize = 300;
    let (packets, mut server_app) = ChannelPackets::new(N + 8);
    let server = Server::start_with_packets(responder(), "127.0.0.1:0".parse().unwrap(), packets)
        .await
        .unwrap();
    let (client_packets, mut client_app) = ChannelPackets::new(N + 8);
    let mut tunnel =
        crate::driver::Tunnel::start_with_packets(session(3), server.local_addr(), client_packets)
            .await
            .unwrap();
    let vip = loop {
        match tokio::time::timeout(Duration::from_secs(5), tunnel.next_event()).await {
            Ok(Some(Event::Connected(info))) => match info.virtual_ips.first() {
                Some(std::net::IpAddr::V4(a)) => break a.octets(),
                other => panic!("{other:?}"),
            },
            Ok(Some(Event::Disconnected(r))) => panic!("{r}"),
            Ok(Some(_)) => {}
            other => panic!("no connection: {other:?}"),
        }
    };
    let far = [203, 0, 113, 9];
    // Mostly full-size packets, with a short one every 50 (it ends a GSO run).
    let size = |i: usize| if i % 50 == 49 { 200 } else { 1400 };
    let up: Vec<Vec<u8>> = (0..N).map(|i| udp(vip, far, i as u16, size(i))).collect();
    for p in &up {
        client_app.to_tunnel.send(p.clone()).await.unwrap();
    }
    assert_eq!(take(&mut server_app.from_tunnel, N).await, up);

    let down: Vec<Vec<u8>> = (0..N).map(|i| udp(far, vip, i as u16, size(i))).collect();
    for p in &down {
        server_app.to_tunnel.send(p.clone()).await.unwrap();
    }
    assert_eq!(take(&mut client_app.from_tunnel, N).await, down);
    tunnel.close();
    tunnel.finish().await.unwrap();
    server.stop().await.unwrap();
}
