//! IKE and ESP over TCP (RFC 9329) on loopback, real sockets and real time: a client tunnel on
//! TCP only against the server's TCP listener (its UDP "server" port never answers), the
//! `auto` fallback from an unanswering UDP port to TCP (timed), and a TCP reset under an
//! established session (the session reconnects on a new connection).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig};
use roam_proto::rng::SeededRng;
use roam_proto::session::{DisconnectReason, Event, Session};
use roam_runtime::driver::{SocketOptions, Tunnel};
use roam_runtime::echo::{echo, probe, reply_tag, Kind};
use roam_runtime::packet_io::{AppPackets, ChannelPackets};
use roam_runtime::serve::{ServeOptions, Server};
use roam_runtime::tcp::{TransportMode, TransportPolicy};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;

const PSK: &[u8] = b"tcp loopback test psk";

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
        mobike: true,
        require_cookie: false,
        retransmit: Default::default(),
        fragment_size: 1280,
        unix_time: None,
    };
    Responder::new(cfg, Box::new(SeededRng::new(7)))
}

fn session(seed: u64) -> Session {
    let mut c = ClientConfig::new(ClientAuth::Psk(Secret::from_slice(PSK)));
    c.local_id = Identity::parse("client@example.org").ok();
    c.server_id = Identity::parse("vpn.example.org").ok();
    c.ike_proposals = vec!["aes256gcm16-prfsha256-curve25519".into()];
    c.esp_proposals = vec!["aes256gcm16".into()];
    c.request_ipv6 = false;
    Session::new(c, Box::new(SeededRng::new(seed))).unwrap()
}

/// A server on loopback listening on UDP and TCP, echoing what comes out of the tunnel.
async fn server() -> Server {
    let (packets, app) = ChannelPackets::new(64);
    let _echo = echo(app, 0);
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let options = ServeOptions {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        tls: None,
    };
    Server::start_with_options(responder(), bind, packets, options)
        .await
        .unwrap()
}

/// A UDP port that never answers (UDP blocked on the way).
async fn black_hole() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn policy(mode: TransportMode, tcp_port: u16, fallback: Duration) -> SocketOptions {
    SocketOptions {
        transport: TransportPolicy {
            mode,
            tcp_port,
            fallback,
            tls: None,
            ..TransportPolicy::default()
        },
        ..SocketOptions::default()
    }
}

/// Events until `Connected` (panics on `Disconnected` or after 20 s).
async fn until_connected(
    tunnel: &mut Tunnel<ChannelPackets>,
    seen: &mut Vec<Event>,
) -> roam_proto::session::ConnectedInfo {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(20), tunnel.next_event())
            .await
            .expect("connects in time")
            .expect("the driver runs");
        seen.push(e.clone());
        match e {
            Event::Connected(info) => return info,
            Event::Disconnected(r) => panic!("disconnected: {r}; {seen:?}"),
            _ => {}
        }
    }
}

/// An echo through the tunnel and back (a few tries: the first may meet a SA in flux).
async fn ping(app: &mut AppPackets, vip: IpAddr, tag: u32) -> bool {
    let dst: IpAddr = "203.0.113.9".parse().unwrap();
    for t in 0..5 {
        let p = probe(Kind::Icmp, vip, dst, tag + t, 64).unwrap();
        app.to_tunnel.send(p).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(2), app.from_tunnel.recv()).await {
            Ok(Some(r)) if reply_tag(&r).is_some_and(|(_, got)| got == tag + t) => return true,
            _ => {}
        }
    }
    false
}

fn vip(info: &roam_proto::session::ConnectedInfo) -> IpAddr {
    *info.virtual_ips.first().expect("a virtual IP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_only_connects_and_carries_packets() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let tcp = server.tcp_addr().unwrap();
    let (_hole, udp) = black_hole().await;
    let (packets, mut app) = ChannelPackets::new(64);
    let options = policy(TransportMode::Tcp, tcp.port(), Duration::from_secs(2));
    let mut tunnel = Tunnel::start_with(session(1), udp, Some(packets), options)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let info = until_connected(&mut tunnel, &mut seen).await;
    assert!(
        ping(&mut app, vip(&info), 100).await,
        "ESP both ways in TCP frames"
    );
    tunnel.close();
    tunnel.finish().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_tcp_when_udp_never_answers() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let tcp = server.tcp_addr().unwrap();
    let (_hole, udp) = black_hole().await;
    let fallback = roam_runtime::tcp::DEFAULT_FALLBACK;
    let (packets, mut app) = ChannelPackets::new(64);
    let options = policy(TransportMode::Auto, tcp.port(), fallback);
    let start = tokio::time::Instant::now();
    let mut tunnel = Tunnel::start_with(session(2), udp, Some(packets), options)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let info = until_connected(&mut tunnel, &mut seen).await;
    let took = start.elapsed();
    eprintln!("auto: connected over TCP {took:?} after the start (fallback {fallback:?})");
    assert!(took >= fallback, "{took:?}");
    assert!(
        took < fallback + Duration::from_millis(1500),
        "TCP right after the fallback time: {took:?}"
    );
    assert!(ping(&mut app, vip(&info), 200).await);
    tunnel.close();
    tunnel.finish().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_stays_on_udp_when_udp_answers() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    // The TCP port is one nobody listens on: only UDP can work.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_tcp = closed.local_addr().unwrap().port();
    drop(closed);
    let (packets, mut app) = ChannelPackets::new(64);
    let options = policy(TransportMode::Auto, dead_tcp, Duration::from_millis(300));
    let mut tunnel = Tunnel::start_with(session(3), server.local_addr(), Some(packets), options)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let info = until_connected(&mut tunnel, &mut seen).await;
    // Well past the fallback time, still on UDP and working.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(ping(&mut app, vip(&info), 300).await);
    tunnel.close();
    tunnel.finish().await.unwrap();
    server.stop().await.unwrap();
}

/// A TCP forwarder between the client and the server whose client sides can be reset.
struct Proxy {
    addr: SocketAddr,
    reset: Arc<Notify>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reset = Arc::new(Notify::new());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, a) = (reset.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let reset = r.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        () = reset.notified() => {
                            // SO_LINGER 0: closing sends a RST.
                            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                        }
                    }
                });
            }
        });
        Self {
            addr,
            reset,
            accepted,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_reset_mid_session_reconnects_on_a_new_connection() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let proxy = Proxy::start(server.tcp_addr().unwrap()).await;
    let (_hole, udp) = black_hole().await;
    let (packets, mut app) = ChannelPackets::new(64);
    let options = policy(
        TransportMode::Tcp,
        proxy.addr.port(),
        Duration::from_secs(2),
    );
    let mut tunnel = Tunnel::start_with(session(4), udp, Some(packets), options)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let first = until_connected(&mut tunnel, &mut seen).await;
    assert!(ping(&mut app, vip(&first), 400).await);
    let reset_at = tokio::time::Instant::now();
    proxy.reset.notify_waiters();
    let second = until_connected(&mut tunnel, &mut seen).await;
    eprintln!("reconnected {:?} after the reset", reset_at.elapsed());
    assert!(
        seen.iter().any(|e| matches!(
            e,
            Event::Reconnecting {
                reason: DisconnectReason::PathLost,
                ..
            }
        )),
        "{seen:?}"
    );
    assert_ne!(first.spi_i, second.spi_i, "a new IKE SA");
    assert_eq!(
        proxy.accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "a new TCP connection"
    );
    assert!(ping(&mut app, vip(&second), 500).await);
    tunnel.close();
    tunnel.finish().await.unwrap();
    server.stop().await.unwrap();
}

/// Reads until the server closes the connection (end of stream or reset); false on a timeout.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closes_streams_that_break_the_framing() {
    use tokio::io::AsyncWriteExt;
    let server = server().await;
    let tcp = server.tcp_addr().unwrap();
    // Not the IKETCP prefix.
    let mut s = TcpStream::connect(tcp).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(closed_by_server(&mut s).await, "a bad prefix closes");
    // The prefix, then a length under the minimum.
    let mut s = TcpStream::connect(tcp).await.unwrap();
    s.write_all(b"IKETCP\x00\x03\xff").await.unwrap();
    assert!(
        closed_by_server(&mut s).await,
        "a keepalive-sized frame closes"
    );
    // A well-formed stream with an IKE message the responder drops stays open.
    let mut s = TcpStream::connect(tcp).await.unwrap();
    let mut junk = b"IKETCP".to_vec();
    junk.extend_from_slice(&(2u16 + 4 + 28).to_be_bytes());
    junk.extend_from_slice(&[0; 4]);
    junk.extend_from_slice(&[0x55; 28]);
    s.write_all(&junk).await.unwrap();
    assert!(
        !closed_by_server(&mut s).await,
        "the stream itself was fine"
    );
    server.stop().await.unwrap();
}
