//! In-process data-path check: a client `Tunnel` and the `Server` over loopback UDP, both with
//! channel packet paths; sends COUNT (default 20000) 1400-byte UDP packets up the tunnel, then
//! as many down, and prints what arrived and how fast. Run under `strace -c -f` to count the
//! system calls per packet: `cargo run -p roam-runtime --example blast -- 20000`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig};
use roam_proto::rng::SeededRng;
use roam_proto::session::{Event, Session};
use roam_runtime::driver::Tunnel;
use roam_runtime::packet_io::ChannelPackets;
use roam_runtime::serve::Server;
use tokio::sync::mpsc;

const PSK: &[u8] = b"blast psk";
const SIZE: usize = 1400;

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

fn session() -> Session {
    let mut c = ClientConfig::new(ClientAuth::Psk(Secret::from_slice(PSK)));
    c.local_id = Identity::parse("client@example.org").ok();
    c.server_id = Identity::parse("vpn.example.org").ok();
    c.ike_proposals = vec!["aes256gcm16-prfsha256-curve25519".into()];
    c.esp_proposals = vec!["aes256gcm16".into()];
    Session::new(c, Box::new(SeededRng::new(7))).unwrap()
}

/// An IPv4/UDP packet of SIZE bytes from `src` to `dst` carrying `seq`.
fn packet(src: Ipv4Addr, dst: Ipv4Addr, seq: u32) -> Vec<u8> {
    let mut p = vec![0u8; SIZE];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(SIZE as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&9u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((SIZE - 20) as u16).to_be_bytes());
    p[28..32].copy_from_slice(&seq.to_be_bytes());
    p
}

/// Sends `count` packets into `tx` while counting what comes out of `rx` (until `count` or a
/// second of silence); returns (received, in order, elapsed).
async fn blast(
    tx: mpsc::Sender<Vec<u8>>,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    count: u32,
) -> (u32, bool, Duration) {
    #[allow(clippy::disallowed_methods)] // a measurement, not the protocol
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for seq in 0..count {
            if tx.send(packet(src, dst, seq)).await.is_err() {
                break;
            }
        }
    });
    let (mut got, mut ordered, mut last) = (0u32, true, None::<u32>);
    while got < count {
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some(p)) => {
                let seq = u32::from_be_bytes([p[28], p[29], p[30], p[31]]);
                ordered &= last.is_none_or(|l| seq > l);
                last = Some(seq);
                got += 1;
            }
            _ => break,
        }
    }
    let _ = sender.await;
    (got, ordered, start.elapsed())
}

fn show(what: &str, count: u32, (got, ordered, t): (u32, bool, Duration)) {
    let mbit = f64::from(got) * (SIZE * 8) as f64 / t.as_secs_f64() / 1e6;
    println!(
        "{what}: {got}/{count} packets in {:.3} s ({mbit:.0} Mbit/s of inner packets){}",
        t.as_secs_f64(),
        if ordered { "" } else { ", reordered" }
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let (server_packets, mut server_app) = ChannelPackets::new(count as usize + 16);
    let server =
        Server::start_with_packets(responder(), "127.0.0.1:0".parse().unwrap(), server_packets)
            .await
            .unwrap();
    let (client_packets, mut client_app) = ChannelPackets::new(count as usize + 16);
    let to: SocketAddr = server.local_addr();
    let mut tunnel = Tunnel::start_with_packets(session(), to, client_packets)
        .await
        .unwrap();
    let vip = loop {
        match tunnel.next_event().await {
            Some(Event::Connected(info)) => break info.virtual_ips[0],
            Some(Event::Disconnected(r)) => panic!("{r}"),
            None => panic!("driver ended"),
            _ => {}
        }
    };
    let IpAddr::V4(vip) = vip else {
        panic!("no IPv4 address")
    };
    let far = Ipv4Addr::new(192, 0, 2, 1);
    let up = blast(
        client_app.to_tunnel.clone(),
        &mut server_app.from_tunnel,
        vip,
        far,
        count,
    )
    .await;
    show("up", count, up);
    let down = blast(
        server_app.to_tunnel.clone(),
        &mut client_app.from_tunnel,
        far,
        vip,
        count,
    )
    .await;
    show("down", count, down);
    tunnel.close();
    let _ = tunnel.finish().await;
    let _ = server.stop().await;
}
