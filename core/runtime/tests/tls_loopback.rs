//! IKE and ESP over TLS over TCP (RFC 9329 section 8) on loopback, real sockets and real time:
//! a client tunnel over TLS to a server whose one TCP port takes TLS and plain clients alike;
//! the "ca" check passing with the profile's CA and the server's name, failing with another
//! CA or another name; what the wire shows (TLS records, never the IKETCP prefix in clear);
//! a reconnect resuming the TLS session; first bytes that are neither kind refused and
//! counted.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig};
use roam_proto::rng::SeededRng;
use roam_proto::session::{Event, Session, Transport};
use roam_runtime::driver::{SocketOptions, Tunnel};
use roam_runtime::echo::{echo, probe, reply_tag, Kind};
use roam_runtime::packet_io::{AppPackets, ChannelPackets};
use roam_runtime::serve::{ServeOptions, Server, TcpStats};
use roam_runtime::tcp::{TransportMode, TransportPolicy};
use roam_runtime::tls::{TlsPolicy, TlsServer, TlsVerify};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;

const PSK: &[u8] = b"tls loopback test psk";
const PKI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/tests/data/pki/");

fn pki(name: &str) -> Vec<u8> {
    std::fs::read(format!("{PKI}{name}")).unwrap()
}

/// The DER of the first certificate in a PEM file of the test PKI.
fn der(name: &str) -> Vec<u8> {
    roam_proto::crypto::cert::Certificate::parse_pem_or_der(&pki(name))
        .unwrap()
        .first()
        .unwrap()
        .der()
        .to_vec()
}

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
    Responder::new(cfg, Box::new(SeededRng::new(11)))
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

/// A server on loopback taking plain and TLS clients on one TCP port (the test PKI's
/// `server-san`: vpn.example.org, issued by `root-ca`), echoing what comes out of the tunnel.
async fn server() -> Server {
    let (packets, app) = ChannelPackets::new(64);
    let _echo = echo(app, 0);
    let tls = TlsServer::from_pem(&pki("server-san.crt"), &pki("server-san.key")).unwrap();
    let options = ServeOptions {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        tls: Some(tls),
    };
    Server::start_with_options(
        responder(),
        "127.0.0.1:0".parse().unwrap(),
        packets,
        options,
    )
    .await
    .unwrap()
}

/// A UDP port that never answers (UDP blocked on the way).
async fn black_hole() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// TCP only to `tcp_port`, with `tls` around it.
fn options(tcp_port: u16, tls: Option<TlsPolicy>) -> SocketOptions {
    SocketOptions {
        transport: TransportPolicy {
            mode: TransportMode::Tcp,
            tcp_port,
            fallback: Duration::from_secs(2),
            tls,
            ..TransportPolicy::default()
        },
        ..SocketOptions::default()
    }
}

fn no_verify() -> TlsPolicy {
    TlsPolicy {
        server_name: None,
        verify: TlsVerify::None,
    }
}

fn verify_ca(ca: &str, name: &str) -> TlsPolicy {
    TlsPolicy {
        server_name: Some(name.into()),
        verify: TlsVerify::Ca(vec![der(ca)]),
    }
}

/// Events until `Connected` (None on `Disconnected` or after `wait`).
async fn connected_within(
    tunnel: &mut Tunnel<ChannelPackets>,
    seen: &mut Vec<Event>,
    wait: Duration,
) -> Option<roam_proto::session::ConnectedInfo> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let e = match tokio::time::timeout_at(until, tunnel.next_event()).await {
            Ok(Some(e)) => e,
            Ok(None) | Err(_) => return None,
        };
        seen.push(e.clone());
        match e {
            Event::Connected(info) => return Some(info),
            Event::Disconnected(_) => return None,
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

/// A client tunnel over TCP to `port` (its UDP server port never answers), connected and
/// carrying an echo; closed afterwards.
async fn tunnel_works(port: u16, tls: Option<TlsPolicy>, seed: u64) {
    let (_hole, udp) = black_hole().await;
    let (packets, mut app) = ChannelPackets::new(64);
    let mut tunnel = Tunnel::start_with(session(seed), udp, Some(packets), options(port, tls))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let info = connected_within(&mut tunnel, &mut seen, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no connection: {seen:?}"));
    assert_eq!(info.transport, Transport::Tcp);
    assert!(
        ping(&mut app, vip(&info), seed as u32 * 100).await,
        "ESP both ways"
    );
    tunnel.close();
    tunnel.finish().await.unwrap();
}

async fn stats_soon(server: &Server, done: impl Fn(&TcpStats) -> bool) -> TcpStats {
    for _ in 0..50 {
        let s = server.tcp_stats().unwrap();
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.tcp_stats().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_plain_clients_share_one_port() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let port = server.tcp_addr().unwrap().port();
    tunnel_works(port, Some(no_verify()), 1).await;
    tunnel_works(port, None, 2).await;
    let stats = stats_soon(&server, |s| s.tls >= 1 && s.plain >= 1).await;
    assert_eq!((stats.tls, stats.plain), (1, 1), "{stats:?}");
    assert_eq!(stats.refused + stats.tls_failed + stats.timed_out, 0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_passes_with_the_profiles_ca_and_the_servers_name() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let port = server.tcp_addr().unwrap().port();
    tunnel_works(port, Some(verify_ca("root-ca.crt", "vpn.example.org")), 3).await;
    server.stop().await.unwrap();
}

/// A tunnel that must not come up (the TLS check fails on every attempt).
async fn never_connects(port: u16, tls: TlsPolicy, seed: u64) {
    let (_hole, udp) = black_hole().await;
    let (packets, _app) = ChannelPackets::new(64);
    let mut tunnel =
        Tunnel::start_with(session(seed), udp, Some(packets), options(port, Some(tls)))
            .await
            .unwrap();
    let mut seen = Vec::new();
    let up = connected_within(&mut tunnel, &mut seen, Duration::from_secs(3)).await;
    assert!(up.is_none(), "connected despite the TLS check: {seen:?}");
    tunnel.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tunnel.finish()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_fails_with_another_ca_or_another_name() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let port = server.tcp_addr().unwrap().port();
    never_connects(port, verify_ca("other-ca.crt", "vpn.example.org"), 4).await;
    let stats = stats_soon(&server, |s| s.tls_failed >= 1).await;
    assert!(
        stats.tls_failed >= 1,
        "the server saw the handshake fail: {stats:?}"
    );
    assert_eq!(stats.tls, 0, "{stats:?}");
    never_connects(port, verify_ca("root-ca.crt", "impostor.example.org"), 5).await;
    let after = stats_soon(&server, |s| s.tls_failed > stats.tls_failed).await;
    assert!(after.tls_failed > stats.tls_failed, "{after:?}");
    assert_eq!(after.tls, 0, "{after:?}");
    server.stop().await.unwrap();
}

/// A TCP forwarder between the client and the server that keeps what the client sent and
/// can reset the client's connections.
struct Tap {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    reset: Arc<Notify>,
}

impl Tap {
    async fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let reset = Arc::new(Notify::new());
        let (s, r) = (sent.clone(), reset.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (sent, reset) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 || uw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            sent.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                    };
                    let down = tokio::io::copy(&mut ur, &mut cw);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        () = reset.notified() => {
                            // SO_LINGER 0: closing sends a RST.
                            let client = cr.reunite(cw).unwrap();
                            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                        }
                    }
                });
            }
        });
        Self { addr, sent, reset }
    }
}

/// The TLS records (content type, length) of a client's byte stream, in order.
fn records(mut stream: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    while stream.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([stream[3], stream[4]]));
        out.push((stream[0], len));
        stream = stream.get(5 + len..).unwrap_or_default();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_shows_tls_records_and_never_the_prefix() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let tap = Tap::start(server.tcp_addr().unwrap()).await;
    tunnel_works(tap.addr.port(), Some(no_verify()), 6).await;
    let sent = tap.sent.lock().unwrap().clone();
    assert!(
        !sent.windows(6).any(|w| w == b"IKETCP"),
        "the prefix in clear"
    );
    let recs = records(&sent);
    assert_eq!(
        recs.first().map(|r| r.0),
        Some(0x16),
        "a TLS handshake first"
    );
    let data = recs.iter().filter(|r| r.0 == 0x17).count();
    assert!(
        data >= 4,
        "IKE and ESP in application data records: {recs:?}"
    );
    assert!(
        recs.iter().all(|r| [0x14, 0x15, 0x16, 0x17].contains(&r.0)),
        "nothing but TLS records: {recs:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_reconnects_on_a_new_tls_session_that_resumes() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = server().await;
    let tap = Tap::start(server.tcp_addr().unwrap()).await;
    let (_hole, udp) = black_hole().await;
    let (packets, mut app) = ChannelPackets::new(64);
    let tls = Some(verify_ca("root-ca.crt", "vpn.example.org"));
    let mut tunnel = Tunnel::start_with(
        session(7),
        udp,
        Some(packets),
        options(tap.addr.port(), tls),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let wait = Duration::from_secs(20);
    let first = connected_within(&mut tunnel, &mut seen, wait)
        .await
        .unwrap();
    assert!(ping(&mut app, vip(&first), 700).await);
    tap.reset.notify_waiters();
    let second = connected_within(&mut tunnel, &mut seen, wait)
        .await
        .unwrap_or_else(|| panic!("no reconnect: {seen:?}"));
    assert_ne!(first.spi_i, second.spi_i, "a new IKE SA");
    assert!(ping(&mut app, vip(&second), 800).await);
    let stats = stats_soon(&server, |s| s.tls >= 2).await;
    assert_eq!(stats.tls, 2, "a second TLS session: {stats:?}");
    assert_eq!(
        stats.tls_resumed, 1,
        "the second resumed the first: {stats:?}"
    );
    tunnel.close();
    tunnel.finish().await.unwrap();
    server.stop().await.unwrap();
}

/// Reads until the server closes the connection (end of stream or reset); false on a timeout.
async fn closed_by_server(s: &mut TcpStream) -> bool {
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
async fn other_first_bytes_are_refused_and_counted() {
    let server = server().await;
    let tcp = server.tcp_addr().unwrap();
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x17, 3, 3, 0, 1, 0][..],
        b"\x00",
    ] {
        let mut s = TcpStream::connect(tcp).await.unwrap();
        s.write_all(junk).await.unwrap();
        assert!(closed_by_server(&mut s).await, "{junk:?} closes");
    }
    let stats = stats_soon(&server, |s| s.refused >= 3).await;
    assert_eq!(stats.refused, 3, "{stats:?}");
    assert_eq!(stats.plain + stats.tls, 0, "{stats:?}");
    // A TLS ClientHello that is garbage inside fails the handshake (counted apart).
    let mut s = TcpStream::connect(tcp).await.unwrap();
    s.write_all(&[0x16, 3, 1, 0, 4, 1, 0, 0, 0]).await.unwrap();
    assert!(closed_by_server(&mut s).await);
    let stats = stats_soon(&server, |s| s.tls_failed >= 1).await;
    assert_eq!((stats.tls_failed, stats.refused), (1, 3), "{stats:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_a_tls_client_is_refused() {
    let (packets, app) = ChannelPackets::new(64);
    let _echo = echo(app, 0);
    let options = ServeOptions {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        tls: None,
    };
    let server = Server::start_with_options(
        responder(),
        "127.0.0.1:0".parse().unwrap(),
        packets,
        options,
    )
    .await
    .unwrap();
    let port = server.tcp_addr().unwrap().port();
    never_connects(port, no_verify(), 8).await;
    let stats = stats_soon(&server, |s| s.refused >= 1).await;
    assert!(
        stats.refused >= 1,
        "the ClientHello's first byte: {stats:?}"
    );
    assert_eq!(stats.tls, 0);
    server.stop().await.unwrap();
}
