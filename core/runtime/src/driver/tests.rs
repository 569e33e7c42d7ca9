//! Driver tests on loopback: a fake `Protocol` whose "server" is a plain UDP socket in the
//! test. They check that what the protocol polls is sent from the address it was given, that
//! datagrams, deadlines and commands reach it, that packets cross between the packet path and
//! the socket both ways (only once connected), and that the driver ends with the session.
//! `responder_peer` runs the real session against roam-proto's responder and ESP.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roam_proto::session::DisconnectReason;
use tokio::net::UdpSocket;

use super::*;
use crate::packet_io::ChannelPackets;

const RETRY: Duration = Duration::from_millis(50);

/// What the fake protocol saw, shared with the test.
#[derive(Debug, Default)]
struct Seen {
    connect: Option<(SocketAddr, SocketAddr)>,
    datagrams: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    timeouts: u32,
    closes: u32,
    /// Packets from the packet path refused (not connected).
    packet_drops: u32,
}

/// The fake's "ESP": a prefix on the inner packet.
const FAKE_ESP: &[u8] = b"esp:";

/// A toy handshake: sends "hello" (again every RETRY, three sends in all) until "welcome"
/// comes; on close sends "delete" and ends on "deleted" (or at once when not connected).
struct Fake {
    seen: Arc<Mutex<Seen>>,
    local: Option<SocketAddr>,
    server: Option<SocketAddr>,
    state: State,
    sends: u32,
    deadline: Option<Instant>,
    transmits: Vec<Transmit>,
    events: Vec<Event>,
}

impl Fake {
    fn new() -> (Self, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let fake = Self {
            seen: seen.clone(),
            local: None,
            server: None,
            state: State::Idle,
            sends: 0,
            deadline: None,
            transmits: Vec::new(),
            events: Vec::new(),
        };
        (fake, seen)
    }
    fn send(&mut self, payload: &[u8]) {
        if let (Some(local), Some(remote)) = (self.local, self.server) {
            self.transmits.push(Transmit {
                local,
                remote,
                payload: payload.to_vec(),
            });
        }
    }
    fn set_state(&mut self, state: State) {
        self.state = state;
        self.events.push(Event::StateChanged(state));
    }
    fn end(&mut self, reason: DisconnectReason) {
        self.deadline = None;
        self.set_state(State::Disconnected);
        self.events.push(Event::Disconnected(reason));
    }
}

impl Protocol for Fake {
    fn connect(&mut self, now: Instant, local: SocketAddr, server: SocketAddr) {
        self.seen.lock().unwrap().connect = Some((local, server));
        self.local = Some(local);
        self.server = Some(server);
        self.set_state(State::Connecting);
        self.send(b"hello");
        self.sends = 1;
        self.deadline = Some(now + RETRY);
    }
    fn handle_datagram(
        &mut self,
        _now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &mut [u8],
    ) -> Received {
        if self.state == State::Connected && data.starts_with(FAKE_ESP) {
            return Received::Packet(FAKE_ESP.len()..data.len());
        }
        let data: &[u8] = data;
        self.seen
            .lock()
            .unwrap()
            .datagrams
            .push((local, remote, data.to_vec()));
        match (self.state, data) {
            (State::Connecting, b"welcome") => {
                self.deadline = None;
                self.set_state(State::Connected);
            }
            (State::Closing, b"deleted") => {
                self.send(b"bye");
                self.end(DisconnectReason::Closed);
            }
            _ => {}
        }
        Received::Control
    }
    fn handle_packet(
        &mut self,
        _now: Instant,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<Datagram, PacketDrop> {
        let (State::Connected, Some(local), Some(remote)) = (self.state, self.local, self.server)
        else {
            self.seen.lock().unwrap().packet_drops += 1;
            return Err(PacketDrop::NotConnected);
        };
        // A packet starting "to:" names its own destination (the rest of its first line).
        let remote = std::str::from_utf8(packet)
            .ok()
            .and_then(|p| p.strip_prefix("to:"))
            .and_then(|p| p.split('\n').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or(remote);
        let len = FAKE_ESP.len() + packet.len();
        out[..FAKE_ESP.len()].copy_from_slice(FAKE_ESP);
        out[FAKE_ESP.len()..len].copy_from_slice(packet);
        Ok(Datagram { local, remote, len })
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.seen.lock().unwrap().timeouts += 1;
        if self.sends < 3 {
            self.send(b"hello");
            self.sends += 1;
            self.deadline = Some(now + RETRY);
        } else {
            self.end(DisconnectReason::Timeout);
        }
    }
    fn close(&mut self, _now: Instant) {
        self.seen.lock().unwrap().closes += 1;
        match self.state {
            State::Connected => {
                self.send(b"delete");
                self.set_state(State::Closing);
            }
            State::Closing | State::Disconnected => {}
            _ => self.end(DisconnectReason::Closed),
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        (!self.transmits.is_empty()).then(|| self.transmits.remove(0))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
    fn poll_event(&mut self) -> Option<Event> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }
    fn state(&self) -> State {
        self.state
    }
}

async fn recv(server: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), server.recv_from(&mut buf))
        .await
        .expect("the driver sent nothing")
        .unwrap();
    (buf[..n].to_vec(), from)
}

async fn event<I>(tunnel: &mut Tunnel<I>) -> Option<Event> {
    tokio::time::timeout(Duration::from_secs(5), tunnel.next_event())
        .await
        .expect("no event")
}

/// The whole life against a peer on `server_ip`: hello, welcome, close, delete, deleted, bye.
async fn handshake_and_close(server_ip: std::net::IpAddr) {
    let server = UdpSocket::bind((server_ip, 0)).await.unwrap();
    let server_addr = server.local_addr().unwrap();
    let (fake, seen) = Fake::new();
    let mut tunnel = Tunnel::start(fake, server_addr).await.unwrap();
    let local = tunnel.local_addr();
    assert_eq!(tunnel.server_addr(), server_addr);
    assert_eq!(
        local.ip(),
        server_ip,
        "bound to the source address toward the server"
    );
    assert_ne!(local.port(), 0);

    let (hello, from) = recv(&server).await;
    assert_eq!(hello, b"hello");
    assert_eq!(from, local, "sent from the address given to connect");
    assert_eq!(
        event(&mut tunnel).await,
        Some(Event::StateChanged(State::Connecting))
    );

    server.send_to(b"welcome", from).await.unwrap();
    assert_eq!(
        event(&mut tunnel).await,
        Some(Event::StateChanged(State::Connected))
    );

    tunnel.close();
    let (delete, _) = recv(&server).await;
    assert_eq!(delete, b"delete");
    assert_eq!(
        event(&mut tunnel).await,
        Some(Event::StateChanged(State::Closing))
    );
    server.send_to(b"deleted", from).await.unwrap();
    // The session's last datagram goes out before the driver ends.
    assert_eq!(recv(&server).await.0, b"bye");
    assert_eq!(
        event(&mut tunnel).await,
        Some(Event::StateChanged(State::Disconnected))
    );
    assert_eq!(
        event(&mut tunnel).await,
        Some(Event::Disconnected(DisconnectReason::Closed))
    );
    assert_eq!(event(&mut tunnel).await, None, "the driver ended");
    tunnel.finish().await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.connect, Some((local, server_addr)));
    assert_eq!(seen.datagrams.len(), 2);
    assert!(seen
        .datagrams
        .iter()
        .all(|(l, r, _)| *l == local && *r == server_addr));
    assert_eq!(seen.closes, 1);
}

#[tokio::test]
async fn runs_a_session_over_ipv4_loopback() {
    handshake_and_close(Ipv4Addr::LOCALHOST.into()).await;
}

#[tokio::test]
async fn runs_a_session_over_ipv6_loopback() {
    if UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await.is_err() {
        // Loud past the capture: scripts/test.sh fails CI on any SKIPPED line.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (no IPv6 loopback): runs_a_session_over_ipv6_loopback"
        );
        return;
    }
    handshake_and_close(Ipv6Addr::LOCALHOST.into()).await;
}

#[tokio::test]
async fn deadlines_drive_retransmission_and_the_end() {
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, seen) = Fake::new();
    let mut tunnel = Tunnel::start(fake, server.local_addr().unwrap())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(recv(&server).await.0, b"hello");
    }
    let mut events = Vec::new();
    while let Some(e) = event(&mut tunnel).await {
        events.push(e);
    }
    assert_eq!(
        events.last(),
        Some(&Event::Disconnected(DisconnectReason::Timeout))
    );
    assert!(started.elapsed() >= RETRY * 3, "three deadlines passed");
    tunnel.finish().await.unwrap();
    assert_eq!(seen.lock().unwrap().timeouts, 3);
}

#[tokio::test]
async fn datagrams_from_anyone_reach_the_protocol() {
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let stranger = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, seen) = Fake::new();
    let mut tunnel = Tunnel::start(fake, server.local_addr().unwrap())
        .await
        .unwrap();
    let (_, local) = recv(&server).await;
    stranger.send_to(b"noise", local).await.unwrap();
    server.send_to(b"welcome", local).await.unwrap();
    while event(&mut tunnel).await != Some(Event::StateChanged(State::Connected)) {}
    let seen_now = seen.lock().unwrap().datagrams.clone();
    assert_eq!(
        seen_now[0],
        (local, stranger.local_addr().unwrap(), b"noise".to_vec())
    );
    assert_eq!(seen_now[1].2, b"welcome");
    tunnel.abort();
}

#[tokio::test]
async fn dropping_the_commands_closes_the_session() {
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, seen) = Fake::new();
    let driver = Driver::bind(fake, server.local_addr().unwrap())
        .await
        .unwrap();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (commands, commands_rx) = mpsc::channel(1);
    drop(commands);
    // The fake ends at once when closed before it connected.
    tokio::time::timeout(Duration::from_secs(5), driver.run(events_tx, commands_rx))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.lock().unwrap().closes, 1);
    let mut last = None;
    while let Ok(e) = events.try_recv() {
        last = Some(e.event);
    }
    assert_eq!(last, Some(Event::Disconnected(DisconnectReason::Closed)));
}

#[tokio::test]
async fn a_dropped_event_receiver_does_not_stop_the_driver() {
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, seen) = Fake::new();
    let (events_tx, events) = mpsc::unbounded_channel();
    drop(events);
    let (_commands, commands_rx) = mpsc::channel(1);
    let run = tokio::spawn(run(
        fake,
        server.local_addr().unwrap(),
        events_tx,
        commands_rx,
    ));
    for _ in 0..3 {
        assert_eq!(recv(&server).await.0, b"hello");
    }
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.lock().unwrap().timeouts, 3);
}

#[tokio::test]
async fn resolves_literals_and_localhost() {
    assert_eq!(
        resolve("192.0.2.1", 500).await.unwrap(),
        "192.0.2.1:500".parse().unwrap()
    );
    assert_eq!(
        resolve("2001:db8::1", 4500).await.unwrap(),
        "[2001:db8::1]:4500".parse().unwrap()
    );
    let local = resolve("localhost", 500).await.unwrap();
    assert!(local.ip().is_loopback());
    assert_eq!(local.port(), 500);
}

#[test]
fn the_real_session_is_a_protocol() {
    fn driveable<P: Protocol + Send + 'static>() {}
    driveable::<Session>();
}

/// Waits until `cond` holds of what the fake saw (or fails after 5 s).
async fn until(seen: &Arc<Mutex<Seen>>, cond: impl Fn(&Seen) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond(&seen.lock().unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The next datagram that is not a (re)transmitted hello.
async fn recv_data(server: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    loop {
        let (d, from) = recv(server).await;
        if d != b"hello" {
            return (d, from);
        }
    }
}

#[tokio::test]
async fn packets_cross_both_ways_only_once_connected() {
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, seen) = Fake::new();
    let (packets, mut app) = ChannelPackets::new(16);
    let mut tunnel = Tunnel::start_with_packets(fake, server.local_addr().unwrap(), packets)
        .await
        .unwrap();
    let (_, local) = recv(&server).await;

    // Before the session is connected a packet is refused, and nothing goes out for it.
    app.to_tunnel.send(b"early".to_vec()).await.unwrap();
    until(&seen, |s| s.packet_drops == 1).await;
    // ESP-looking datagrams before connected are control traffic to the fake, not packets.
    server.send_to(b"esp:too-early", local).await.unwrap();
    server.send_to(b"welcome", local).await.unwrap();
    while event(&mut tunnel).await != Some(Event::StateChanged(State::Connected)) {}
    assert!(
        app.from_tunnel.try_recv().is_err(),
        "nothing reached the app"
    );

    app.to_tunnel.send(b"ping".to_vec()).await.unwrap();
    let (d, from) = recv_data(&server).await;
    assert_eq!(
        d, b"esp:ping",
        "the first data datagram is the packet sent once connected"
    );
    assert_eq!(from, local);

    server.send_to(b"esp:pong", local).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), app.from_tunnel.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"pong");
    assert_eq!(seen.lock().unwrap().packet_drops, 1);
    tunnel.abort();
}

#[tokio::test]
async fn bursts_are_carried_whole_both_ways() {
    const N: usize = 200;
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, _seen) = Fake::new();
    let (packets, mut app) = ChannelPackets::new(N);
    let mut tunnel = Tunnel::start_with_packets(fake, server.local_addr().unwrap(), packets)
        .await
        .unwrap();
    let (_, local) = recv(&server).await;
    server.send_to(b"welcome", local).await.unwrap();
    while event(&mut tunnel).await != Some(Event::StateChanged(State::Connected)) {}

    // More than a batch at once each way, queued before the driver wakes.
    for i in 0..N {
        app.to_tunnel
            .send(format!("out {i}").into_bytes())
            .await
            .unwrap();
    }
    for i in 0..N {
        let (d, _) = recv_data(&server).await;
        assert_eq!(
            d,
            format!("esp:out {i}").into_bytes(),
            "in order, none lost"
        );
    }
    for i in 0..N {
        server
            .send_to(format!("esp:in {i}").as_bytes(), local)
            .await
            .unwrap();
    }
    for i in 0..N {
        let p = tokio::time::timeout(Duration::from_secs(5), app.from_tunnel.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p, format!("in {i}").into_bytes());
    }
    tunnel.abort();
}

/// One wakeup's packets go to three destinations, one of which has no socket (an IPv6 peer of
/// an IPv4-only driver): its datagrams are lost, the runs before and after it are sent, each
/// datagram whole and in order per destination (GSO runs split where the peer changes).
#[tokio::test]
async fn a_failing_destination_does_not_drop_the_rest_of_the_batch() {
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let other = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, _seen) = Fake::new();
    let (packets, app) = ChannelPackets::new(64);
    let mut tunnel = Tunnel::start_with_packets(fake, server.local_addr().unwrap(), packets)
        .await
        .unwrap();
    let (_, local) = recv(&server).await;
    server.send_to(b"welcome", local).await.unwrap();
    while event(&mut tunnel).await != Some(Event::StateChanged(State::Connected)) {}

    let to_other = other.local_addr().unwrap();
    let nowhere = "[2001:db8::1]:4500";
    let mut plan: Vec<Vec<u8>> = Vec::new();
    for i in 0..30 {
        let packet = match i % 3 {
            0 => format!("data {i:02}").into_bytes(),
            1 => format!("to:{nowhere}\n{i:02}").into_bytes(),
            _ => format!("to:{to_other}\n{i:02}").into_bytes(),
        };
        plan.push(packet);
    }
    // Queued before the driver wakes: one wakeup seals them all.
    for p in &plan {
        app.to_tunnel.send(p.clone()).await.unwrap();
    }
    for i in (0..30).step_by(3) {
        let (d, from) = recv_data(&server).await;
        assert_eq!(d, format!("esp:data {i:02}").into_bytes());
        assert_eq!(from, local);
    }
    for i in (2..30).step_by(3) {
        let (d, _) = recv(&other).await;
        assert_eq!(d, format!("esp:to:{to_other}\n{i:02}").into_bytes());
    }
    tunnel.abort();
}

#[tokio::test]
async fn a_packet_path_attached_later_carries_packets() {
    let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let (fake, _seen) = Fake::new();
    let mut tunnel = Tunnel::start_detached(fake, server.local_addr().unwrap())
        .await
        .unwrap();
    let (_, local) = recv(&server).await;
    server.send_to(b"welcome", local).await.unwrap();
    while event(&mut tunnel).await != Some(Event::StateChanged(State::Connected)) {}
    let (packets, mut app) = ChannelPackets::new(4);
    tunnel.attach(packets).unwrap();
    let (again, _) = ChannelPackets::new(1);
    assert!(tunnel.attach(again).is_err(), "one attach only");
    app.to_tunnel.send(b"late".to_vec()).await.unwrap();
    assert_eq!(recv_data(&server).await.0, b"esp:late");
    server.send_to(b"esp:back", local).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), app.from_tunnel.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"back");
    tunnel.abort();
}
