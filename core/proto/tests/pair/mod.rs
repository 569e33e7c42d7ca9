//! Two ends of an IKE SA in one test: a client `Session` and a `Responder`, joined by a
//! virtual link on a virtual clock. The link can drop or rewrite datagrams, so loss,
//! retransmission and hostile input are replayed deterministically. The link is also a small
//! network: the client's addresses can come and go (`client_ips`), server addresses can be
//! unreachable (`server_down`), a NAT can rewrite the client's address and port (`nat`, with
//! `Nat::rebind`), and ESP travels both ways (`client_send`, `server_send`).
#![allow(dead_code, clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use roam_proto::config::{ClientAuth, ClientConfig, Retransmit};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig, ResponderEvent};
use roam_proto::rng::SeededRng;
use roam_proto::session::{Event, Received, Session, Transmit};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};
use roam_proto::wire::tcp::{encode_frame, FrameDecoder, MAX_FRAME, STREAM_PREFIX};

pub const CLIENT: &str = "198.51.100.2:40000";
pub const SERVER: &str = "198.51.100.1:500";

pub fn client_addr() -> SocketAddr {
    CLIENT.parse().unwrap()
}
pub fn server_addr() -> SocketAddr {
    SERVER.parse().unwrap()
}
/// A socket address written out (`"198.51.100.2:40000"`, `"[2001:db8::2]:40000"`).
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
/// `ip` on the NAT-T port.
pub fn natt(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 4500)
}
/// The server's IPv6 address (the responder listens on every address it is sent to).
pub fn server6() -> IpAddr {
    "2001:db8::1".parse().unwrap()
}

/// A NAT in front of the client: it maps each inside address of its family to a port of
/// `public`, and lets back only what comes to a mapping it has.
#[derive(Debug)]
pub struct Nat {
    pub public: IpAddr,
    next_port: u16,
    map: Vec<(SocketAddr, SocketAddr)>,
}

impl Nat {
    pub fn new(public: IpAddr) -> Self {
        Self {
            public,
            next_port: 61000,
            map: Vec::new(),
        }
    }

    fn outbound(&mut self, inside: SocketAddr) -> SocketAddr {
        if inside.is_ipv4() != self.public.is_ipv4() {
            return inside;
        }
        if let Some((_, o)) = self.map.iter().find(|(i, _)| *i == inside) {
            return *o;
        }
        let o = SocketAddr::new(self.public, self.next_port);
        self.next_port = self.next_port.wrapping_add(1);
        self.map.push((inside, o));
        o
    }

    fn inbound(&self, outside: SocketAddr) -> Option<SocketAddr> {
        if outside.ip() != self.public {
            return Some(outside);
        }
        self.map
            .iter()
            .find(|(_, o)| *o == outside)
            .map(|(i, _)| *i)
    }

    /// The NAT forgets its mappings (a reboot, a timeout): the client's next datagrams get new
    /// outside ports, and what comes to the old ones is dropped.
    pub fn rebind(&mut self) {
        self.map.clear();
    }

    /// The outside address of `inside`, if mapped.
    pub fn mapping(&self, inside: SocketAddr) -> Option<SocketAddr> {
        self.map.iter().find(|(i, _)| *i == inside).map(|(_, o)| *o)
    }
}

/// An ICMP echo request between two IPv4 addresses (checksums are not checked by ESP).
pub fn icmp(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    icmp_seq(src, dst, 1, payload)
}

/// The same with ICMP sequence number `seq`.
pub fn icmp_seq(src: [u8; 4], dst: [u8; 4], seq: u16, payload: &[u8]) -> Vec<u8> {
    let len = (20 + 8 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0];
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[8, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A client configuration with PSK authentication and the given proposals (empty: defaults).
pub fn psk_client(psk: &str, ike: &[&str], esp: &[&str]) -> ClientConfig {
    let mut c = ClientConfig::new(ClientAuth::Psk(Secret::from_slice(psk.as_bytes())));
    c.local_id = Some(Identity::parse("client@example.org").unwrap());
    c.server_id = Some(Identity::parse("vpn.example.org").unwrap());
    c.ike_proposals = ike.iter().map(|s| s.to_string()).collect();
    c.esp_proposals = esp.iter().map(|s| s.to_string()).collect();
    c
}

/// A responder configuration: the given auth, proposals (empty: all four lab proposals),
/// pools 198.18.0.0/24 and 2001:db8:ffff::/112, full-tunnel subnets.
pub fn responder_config(auth: ResponderAuth, ike: &[&str]) -> ResponderConfig {
    let ike: Vec<&str> = if ike.is_empty() {
        vec![
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16-prfsha256-curve25519",
            "aes256-sha256-modp2048",
            "chacha20poly1305-prfsha256-curve25519",
        ]
    } else {
        ike.to_vec()
    };
    ResponderConfig {
        id: Identity::parse("vpn.example.org").unwrap(),
        auth,
        ca: Vec::new(),
        eap_users: Vec::new(),
        ike: ike
            .iter()
            .map(|s| ProposalSpec::parse_ike(s, &[]).unwrap())
            .collect(),
        esp: ["aes256gcm16", "aes256-sha256", "chacha20poly1305"]
            .iter()
            .map(|s| ProposalSpec::parse_esp(s, &[]).unwrap())
            .collect(),
        pool4: Some(("198.18.0.1".parse().unwrap(), 254)),
        pool6: Some(("2001:db8:ffff::1".parse().unwrap(), 1000)),
        dns: vec![
            "203.0.113.53".parse().unwrap(),
            "2001:db8:203::53".parse().unwrap(),
        ],
        subnets: vec![
            roam_proto::ike::child::ts_any(false),
            roam_proto::ike::child::ts_any(true),
        ],
        mobike: true,
        require_cookie: false,
        retransmit: Retransmit::default(),
        fragment_size: 1280,
        unix_time: None,
    }
}

/// The link as one TCP connection (RFC 9329) to `port`: every datagram is framed into the
/// stream of its direction (the prefix first toward the server) and decoded on the other end.
#[derive(Debug)]
pub struct TcpLink {
    pub port: u16,
    to_server: FrameDecoder,
    to_client: FrameDecoder,
    prefix_sent: bool,
    /// Frames decoded each way, and stream bytes carried each way.
    pub frames: [usize; 2],
    pub bytes: [usize; 2],
}

impl TcpLink {
    pub fn new(port: u16) -> Self {
        Self {
            port,
            to_server: FrameDecoder::with_prefix(MAX_FRAME),
            to_client: FrameDecoder::without_prefix(MAX_FRAME),
            prefix_sent: false,
            frames: [0, 0],
            bytes: [0, 0],
        }
    }

    /// The datagram through the stream: the frame bodies the other end decodes.
    fn carry(&mut self, dir: Dir, data: &[u8]) -> Vec<Vec<u8>> {
        let mut stream = Vec::new();
        if dir == Dir::ToServer && !std::mem::replace(&mut self.prefix_sent, true) {
            stream.extend_from_slice(&STREAM_PREFIX);
        }
        encode_frame(data, &mut stream).expect("a datagram the framing can carry");
        let (decoder, i) = match dir {
            Dir::ToServer => (&mut self.to_server, 0),
            Dir::ToClient => (&mut self.to_client, 1),
        };
        self.bytes[i] += stream.len();
        let mut out = Vec::new();
        // Split in two reads, as a stream may deliver it.
        let (a, b) = stream.split_at(stream.len() / 2);
        for part in [a, b] {
            decoder
                .decode(part, |_, body| out.push(body.to_vec()))
                .expect("a well-formed stream");
        }
        self.frames[i] += out.len();
        out
    }
}

/// What the link does to a datagram.
pub enum Fate {
    Deliver,
    Drop,
    Replace(Vec<u8>),
}

/// Direction of a datagram on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

pub type Filter = Box<dyn FnMut(Dir, usize, &[u8]) -> Fate>;

/// The two ends, the link and the clock.
pub struct Pair {
    pub now: Instant,
    pub client: Session,
    pub server: Responder,
    pub client_events: Vec<Event>,
    /// When each of `client_events` happened (the session's own stamp).
    pub client_event_times: Vec<Instant>,
    pub server_events: Vec<ResponderEvent>,
    /// Datagrams sent each way so far (after the filter's verdict, counted before it).
    pub sent: [usize; 2],
    pub filter: Option<Filter>,
    in_flight: VecDeque<(Dir, SocketAddr, SocketAddr, Vec<u8>)>,
    /// Client addresses that exist on the network (None: every address works).
    pub client_ips: Option<Vec<IpAddr>>,
    /// Server addresses that deliver nothing either way.
    pub server_down: Vec<IpAddr>,
    pub nat: Option<Nat>,
    /// The server address each client address (as the server sees it) last reached.
    server_seen: HashMap<SocketAddr, SocketAddr>,
    /// Inner packets the server's and the client's packet sides received.
    pub server_received: Vec<Vec<u8>>,
    pub client_received: Vec<Vec<u8>>,
    /// `handle_timeout` calls made by `advance`.
    pub timeouts: usize,
    /// The link is a TCP connection (None: UDP datagrams).
    pub tcp: Option<TcpLink>,
}

impl Pair {
    pub fn new(client: ClientConfig, server: ResponderConfig, seed: u64) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let session = Session::new(client, Box::new(SeededRng::new(seed))).expect("client config");
        let responder = Responder::new(server, Box::new(SeededRng::new(seed ^ 0x5eed)));
        Self {
            now: Instant::now(),
            client: session,
            server: responder,
            client_events: Vec::new(),
            client_event_times: Vec::new(),
            server_events: Vec::new(),
            sent: [0, 0],
            filter: None,
            in_flight: VecDeque::new(),
            client_ips: None,
            server_down: Vec::new(),
            nat: None,
            server_seen: HashMap::new(),
            server_received: Vec::new(),
            client_received: Vec::new(),
            timeouts: 0,
            tcp: None,
        }
    }

    /// A pair whose link is one TCP connection to the server's `port` (RFC 9329).
    pub fn new_tcp(client: ClientConfig, server: ResponderConfig, seed: u64, port: u16) -> Self {
        let mut p = Self::new(client, server, seed);
        p.client.set_transport(roam_proto::session::Transport::Tcp);
        p.tcp = Some(TcpLink::new(port));
        p
    }

    pub fn connect(&mut self) {
        let server = match &self.tcp {
            Some(t) => SocketAddr::new(server_addr().ip(), t.port),
            None => server_addr(),
        };
        self.client.connect(self.now, client_addr(), server);
        self.pump();
    }

    /// Where the server answers `client` (as it sees it) from: the address it last reached.
    fn server_side(&self, client: SocketAddr) -> SocketAddr {
        if let Some(t) = &self.tcp {
            return SocketAddr::new(server_addr().ip(), t.port);
        }
        self.server_seen.get(&client).copied().unwrap_or_else(|| {
            let port = if self.client_uses_natt() { 4500 } else { 500 };
            SocketAddr::new(server_addr().ip(), port)
        })
    }

    fn client_ip_up(&self, ip: IpAddr) -> bool {
        self.client_ips.as_ref().is_none_or(|v| v.contains(&ip))
    }

    /// The network between the ends: addresses that are gone, unreachable servers, the NAT.
    /// Returns the addresses as the receiver sees them, None when dropped.
    fn carry(
        &mut self,
        dir: Dir,
        from: SocketAddr,
        to: SocketAddr,
    ) -> Option<(SocketAddr, SocketAddr)> {
        match dir {
            Dir::ToServer => {
                if !self.client_ip_up(from.ip()) || self.server_down.contains(&to.ip()) {
                    return None;
                }
                let from = match self.nat.as_mut() {
                    Some(n) => n.outbound(from),
                    None => from,
                };
                self.server_seen.insert(from, to);
                Some((from, to))
            }
            Dir::ToClient => {
                let inside = match self.nat.as_ref() {
                    Some(n) => n.inbound(to)?,
                    None => to,
                };
                if !self.client_ip_up(inside.ip()) || self.server_down.contains(&from.ip()) {
                    return None;
                }
                Some((from, inside))
            }
        }
    }

    /// A packet from the client's TUN, through ESP and the link to the server's packet side.
    /// Returns whether the server's packet side got it.
    pub fn client_send(&mut self, packet: &[u8]) -> bool {
        let mut out = vec![0u8; 2048];
        let before = self.server_received.len();
        let Ok(d) = self.client.handle_packet(self.now, packet, &mut out) else {
            return false;
        };
        out.truncate(d.len);
        self.in_flight
            .push_back((Dir::ToServer, d.local, d.remote, out));
        self.pump();
        self.server_received.len() > before
    }

    /// A packet from the server's packet side, through ESP and the link to the client's TUN.
    /// Returns whether the client's TUN got it.
    pub fn server_send(&mut self, packet: &[u8]) -> bool {
        let mut out = vec![0u8; 2048];
        let before = self.client_received.len();
        let Some((peer, len)) = self.server.route_packet(packet, &mut out) else {
            return false;
        };
        out.truncate(len);
        let from = self.server_side(peer);
        self.in_flight.push_back((Dir::ToClient, from, peer, out));
        self.pump();
        self.client_received.len() > before
    }

    /// One echo from the client's first virtual IPv4 address to a LAN host and back.
    pub fn ping(&mut self, n: u8) -> bool {
        let vip = match self
            .connected()
            .and_then(|i| i.virtual_ips.iter().find(|a| a.is_ipv4()))
        {
            Some(IpAddr::V4(a)) => a.octets(),
            _ => return false,
        };
        let lan = [203, 0, 113, 2];
        let there = self.client_send(&icmp(vip, lan, &[n; 32]));
        let back = self.server_send(&icmp(lan, vip, &[n; 32]));
        there && back
    }

    /// Lets `d` of virtual time pass, running the client's timers on the way.
    pub fn wait(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_for(d);
        self.now = self.now.max(end);
    }

    fn collect(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            let Transmit {
                local,
                remote,
                payload,
            } = t;
            self.in_flight
                .push_back((Dir::ToServer, local, remote, payload));
        }
        while let Some(o) = self.server.poll_outgoing() {
            // The responder answers from where it was reached: NAT-T framing on 4500.
            let from = self.server_side(o.remote);
            let framed = if from.port() != 4500 && self.tcp.is_none() {
                o.message
            } else {
                let mut v = NON_ESP_MARKER.to_vec();
                v.extend_from_slice(&o.message);
                v
            };
            self.in_flight
                .push_back((Dir::ToClient, from, o.remote, framed));
        }
        while let Some((at, e)) = self.client.poll_timed_event() {
            self.client_events.push(e);
            self.client_event_times.push(at);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    fn client_uses_natt(&self) -> bool {
        self.client.ike().path().1.port() == 4500
    }

    /// Puts an inner packet from the client's TUN on the link as ESP without delivering it
    /// (false: refused); `step` or `pump` delivers it.
    pub fn client_enqueue(&mut self, packet: &[u8]) -> bool {
        let mut out = vec![0u8; 2048];
        match self.client.handle_packet(self.now, packet, &mut out) {
            Ok(d) => {
                out.truncate(d.len);
                self.in_flight
                    .push_back((Dir::ToServer, d.local, d.remote, out));
                true
            }
            Err(_) => false,
        }
    }

    /// Puts an inner packet from the server's packet side on the link as ESP without
    /// delivering it; `step` or `pump` delivers it.
    pub fn server_enqueue(&mut self, packet: &[u8]) -> bool {
        let mut out = vec![0u8; 2048];
        match self.server.route_packet(packet, &mut out) {
            Some((to, len)) => {
                out.truncate(len);
                let from = self.server_side(to);
                self.in_flight.push_back((Dir::ToClient, from, to, out));
                true
            }
            None => false,
        }
    }

    /// Datagrams on the link now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Delivers datagrams until the link is quiet (bounded).
    pub fn pump(&mut self) {
        self.collect();
        let mut steps = 0;
        while self.step() {
            steps += 1;
            assert!(steps < 10_000, "the ends never go quiet");
        }
    }

    /// Delivers the next datagram on the link, if any (and collects what it caused).
    pub fn step(&mut self) -> bool {
        self.collect();
        if let Some((dir, from, to, data)) = self.in_flight.pop_front() {
            let idx = if dir == Dir::ToServer { 0 } else { 1 };
            let n = self.sent[idx];
            self.sent[idx] += 1;
            let fate = match self.filter.as_mut() {
                Some(f) => f(dir, n, &data),
                None => Fate::Deliver,
            };
            let data = match fate {
                Fate::Deliver => data,
                Fate::Drop => return true,
                Fate::Replace(d) => d,
            };
            let Some((from, to)) = self.carry(dir, from, to) else {
                return true;
            };
            if let Some(t) = self.tcp.as_mut() {
                for body in t.carry(dir, &data) {
                    self.deliver(dir, from, to, body);
                }
            } else {
                self.deliver(dir, from, to, data);
            }
            self.collect();
            return true;
        }
        false
    }

    /// Hands a datagram (or a TCP frame's body) to its receiver.
    fn deliver(&mut self, dir: Dir, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        {
            match dir {
                Dir::ToServer => {
                    let server_local = to;
                    if to.port() == 4500 || self.tcp.is_some() {
                        match classify(&data) {
                            NattDatagram::Ike(m) => {
                                self.server.handle_message(self.now, server_local, from, m)
                            }
                            NattDatagram::Esp(_) | NattDatagram::Keepalive => {
                                let mut data = data;
                                if let Some(r) = self.server.handle_esp(self.now, from, &mut data) {
                                    self.server_received.push(data[r].to_vec());
                                }
                            }
                            NattDatagram::Invalid => {}
                        }
                    } else {
                        self.server
                            .handle_message(self.now, server_local, from, &data);
                    }
                }
                Dir::ToClient => {
                    let mut data = data;
                    if let Received::Packet(r) =
                        self.client.handle_datagram(self.now, to, from, &mut data)
                    {
                        self.client_received.push(data[r].to_vec());
                    }
                }
            }
        }
    }

    /// Advances the virtual clock to the client's next deadline (if any, and within `limit`)
    /// and handles it.
    pub fn advance(&mut self, limit: Duration) -> bool {
        match self.client.poll_timeout() {
            Some(t) if t <= self.now + limit => {
                if t > self.now {
                    self.now = t;
                }
                self.timeouts += 1;
                self.client.handle_timeout(self.now);
                self.pump();
                true
            }
            _ => false,
        }
    }

    /// Runs timers until the client is quiet, at most `limit` of virtual time.
    pub fn run_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        for _ in 0..1000 {
            if !self.advance(end.saturating_duration_since(self.now)) {
                break;
            }
        }
    }

    /// A pair of `client` and `server` that connected (asserted).
    pub fn connected_with(client: ClientConfig, server: ResponderConfig, seed: u64) -> Self {
        let mut p = Self::new(client, server, seed);
        p.connect();
        assert!(p.connected().is_some(), "{:?}", p.client_events);
        p
    }

    /// The IKE SPIs (initiator's) of every connection made, in order.
    pub fn connections(&self) -> Vec<u64> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                Event::Connected(i) => Some(i.spi_i),
                _ => None,
            })
            .collect()
    }

    /// The latest connection's details (after a reconnect: the new one's).
    pub fn connected(&self) -> Option<&roam_proto::session::ConnectedInfo> {
        self.client_events.iter().rev().find_map(|e| match e {
            Event::Connected(i) => Some(i),
            _ => None,
        })
    }

    pub fn disconnect_reason(&self) -> Option<&roam_proto::session::DisconnectReason> {
        self.client_events.iter().find_map(|e| match e {
            Event::Disconnected(r) => Some(r),
            _ => None,
        })
    }

    pub fn server_established(&self) -> Option<u64> {
        self.server_events.iter().find_map(|e| match e {
            ResponderEvent::Established { spi_r, .. } => Some(*spi_r),
            _ => None,
        })
    }
}

pub fn psk_server(psk: &str) -> ResponderConfig {
    responder_config(ResponderAuth::Psk(Secret::from_slice(psk.as_bytes())), &[])
}

/// A file of the test PKI (tests/data/pki, made by its generate.sh).
pub fn pki(name: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pki")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The certificates of a PEM or DER file of the test PKI.
pub fn certs(name: &str) -> Vec<roam_proto::crypto::cert::Certificate> {
    roam_proto::crypto::cert::Certificate::parse_pem_or_der(&pki(name)).unwrap()
}
