//! Two ends of an IKE SA in one test: a client `Session` and a `Responder`, joined by a
//! virtual link on a virtual clock. The link can drop or rewrite datagrams, so loss,
//! retransmission and hostile input are replayed deterministically.
#![allow(dead_code, clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roam_proto::config::{ClientAuth, ClientConfig, Retransmit};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig, ResponderEvent};
use roam_proto::rng::SeededRng;
use roam_proto::session::{Event, Session, Transmit};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};

pub const CLIENT: &str = "198.51.100.2:40000";
pub const SERVER: &str = "198.51.100.1:500";

pub fn client_addr() -> SocketAddr {
    CLIENT.parse().unwrap()
}
pub fn server_addr() -> SocketAddr {
    SERVER.parse().unwrap()
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
    pub server_events: Vec<ResponderEvent>,
    /// Datagrams sent each way so far (after the filter's verdict, counted before it).
    pub sent: [usize; 2],
    pub filter: Option<Filter>,
    in_flight: VecDeque<(Dir, SocketAddr, SocketAddr, Vec<u8>)>,
    /// Inner packets that came out of ESP at the client and at the server.
    pub client_received: Vec<Vec<u8>>,
    pub server_received: Vec<Vec<u8>>,
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
            server_events: Vec::new(),
            sent: [0, 0],
            filter: None,
            in_flight: VecDeque::new(),
            client_received: Vec::new(),
            server_received: Vec::new(),
        }
    }

    pub fn connect(&mut self) {
        self.client.connect(self.now, client_addr(), server_addr());
        self.pump();
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
            // The responder answers on the port it was reached on: NAT-T framing there.
            let framed = if !self.client_uses_natt() {
                o.message
            } else {
                let mut v = NON_ESP_MARKER.to_vec();
                v.extend_from_slice(&o.message);
                v
            };
            self.in_flight
                .push_back((Dir::ToClient, server_addr(), o.remote, framed));
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    fn client_uses_natt(&self) -> bool {
        self.client.ike().path().1.port() == 4500
    }

    /// Puts an inner packet from the client's TUN on the link as ESP (false: refused).
    pub fn client_send(&mut self, packet: &[u8]) -> bool {
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

    /// Puts an inner packet from the server's packet side on the link as ESP.
    pub fn server_send(&mut self, packet: &[u8]) -> bool {
        let mut out = vec![0u8; 2048];
        match self.server.route_packet(packet, &mut out) {
            Some((to, len)) => {
                out.truncate(len);
                let from = SocketAddr::new(server_addr().ip(), 4500);
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
            match dir {
                Dir::ToServer => {
                    let server_local = SocketAddr::new(server_addr().ip(), to.port());
                    if to.port() == 4500 {
                        match classify(&data) {
                            NattDatagram::Ike(m) => {
                                self.server.handle_message(self.now, server_local, from, m)
                            }
                            NattDatagram::Esp(_) => {
                                let mut data = data;
                                if let Some(r) = self.server.handle_esp(self.now, from, &mut data) {
                                    self.server_received.push(data[r].to_vec());
                                }
                            }
                            _ => {}
                        }
                    } else {
                        self.server
                            .handle_message(self.now, server_local, from, &data);
                    }
                }
                Dir::ToClient => {
                    let src = if self.client_uses_natt() {
                        SocketAddr::new(from.ip(), 4500)
                    } else {
                        from
                    };
                    let mut data = data;
                    if let roam_proto::session::Received::Packet(r) =
                        self.client.handle_datagram(self.now, to, src, &mut data)
                    {
                        self.client_received.push(data[r].to_vec());
                    }
                }
            }
            self.collect();
            return true;
        }
        false
    }

    /// Advances the virtual clock to the client's next deadline (if any, and within `limit`)
    /// and handles it.
    pub fn advance(&mut self, limit: Duration) -> bool {
        match self.client.poll_timeout() {
            Some(t) if t <= self.now + limit => {
                if t > self.now {
                    self.now = t;
                }
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

    pub fn connected(&self) -> Option<&roam_proto::session::ConnectedInfo> {
        self.client_events.iter().find_map(|e| match e {
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
