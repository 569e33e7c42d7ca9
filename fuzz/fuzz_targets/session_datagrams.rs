//! A client `Session` fed arbitrary datagrams on ports 500 and 4500 at a virtual clock.
//!
//! Input: [mode][records...] (see `roam_fuzz::records`), each record [op][bytes...].
//! Mode even: the session has only sent IKE_SA_INIT (state Connecting). Mode odd (the
//! structure-aware variant): a real handshake with our `Responder` first, which must reach
//! Connected; afterwards the session's requests still reach the responder, and its answers
//! are queued for op 3 to deliver mutated.
//! Ops (low two bits): 0 a datagram from the server's port 500; 1 from its port 4500;
//! 2 time advances by bytes[0] * 250 ms; 3 the next queued responder message, its bytes
//! XORed with the record's (pairs of [offset, mask]). Bit 2 set: from another address.
//! Never panics; whatever the input, the session keeps answering `poll_*`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_fuzz::{epoch, records};
use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::ts_any;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig};
use roam_proto::rng::SeededRng;
use roam_proto::session::{Session, State};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PSK: &[u8] = b"fuzzing-psk-of-some-length";

fn client() -> Session {
    let mut c = ClientConfig::new(ClientAuth::Psk(Secret::from_slice(PSK)));
    c.local_id = Some(Identity::parse("client@example.org").expect("id"));
    c.server_id = Some(Identity::parse("vpn.example.org").expect("id"));
    c.ike_proposals = vec!["aes256gcm16-prfsha256-curve25519".into()];
    c.esp_proposals = vec!["aes256gcm16".into()];
    Session::new(c, Box::new(SeededRng::new(1))).expect("client config")
}

fn responder() -> Responder {
    let cfg = ResponderConfig {
        id: Identity::parse("vpn.example.org").expect("id"),
        auth: ResponderAuth::Psk(Secret::from_slice(PSK)),
        ca: Vec::new(),
        eap_users: Vec::new(),
        ike: vec![ProposalSpec::parse_ike("aes256gcm16-prfsha256-curve25519", &[]).expect("ike")],
        esp: vec![ProposalSpec::parse_esp("aes256gcm16", &[]).expect("esp")],
        pool4: Some(("198.18.0.1".parse().expect("ip"), 254)),
        pool6: Some(("2001:db8:ffff::1".parse().expect("ip"), 1000)),
        dns: vec![],
        subnets: vec![ts_any(false), ts_any(true)],
        mobike: true,
        require_cookie: false,
        retransmit: Default::default(),
        fragment_size: 1280,
        unix_time: None,
    };
    Responder::new(cfg, Box::new(SeededRng::new(2)))
}

struct World {
    now: Instant,
    client: Session,
    server: Option<Responder>,
    local: SocketAddr,
    server_ip: std::net::IpAddr,
    /// Responder messages not yet delivered: (client address, server port, datagram as it
    /// goes on the wire, with the non-ESP marker from port 4500).
    queued: VecDeque<(SocketAddr, u16, Vec<u8>)>,
}

impl World {
    /// Hands the client's output to the responder (if any) and queues its answers.
    fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            let Some(server) = self.server.as_mut() else {
                continue;
            };
            let server_port = t.remote.port();
            if server_port == 4500 {
                if let NattDatagram::Ike(m) = classify(&t.payload) {
                    server.handle_message(self.now, t.remote, t.local, m);
                }
            } else {
                server.handle_message(self.now, t.remote, t.local, &t.payload);
            }
            while let Some(o) = server.poll_outgoing() {
                let framed = if server_port == 4500 {
                    [&NON_ESP_MARKER[..], &o.message].concat()
                } else {
                    o.message
                };
                if self.queued.len() < 64 {
                    self.queued.push_back((o.remote, server_port, framed));
                }
            }
            while server.poll_event().is_some() {}
        }
        while self.client.poll_event().is_some() {}
        let _ = self.client.poll_timeout();
    }

    fn deliver(&mut self, local: SocketAddr, remote: SocketAddr, data: &mut [u8]) {
        let _ = self.client.handle_datagram(self.now, local, remote, data);
        self.flush();
    }

    /// Delivers queued responder messages, unmodified, until both ends go quiet.
    fn pump(&mut self) {
        let mut steps = 0;
        while let Some((local, port, mut d)) = self.queued.pop_front() {
            let remote = SocketAddr::new(self.server_ip, port);
            self.deliver(local, remote, &mut d);
            steps += 1;
            if steps > 100 {
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, data)) = data.split_first() else {
        return;
    };
    let local: SocketAddr = "192.0.2.10:500".parse().expect("addr");
    let server_addr: SocketAddr = "203.0.113.1:500".parse().expect("addr");
    let mut w = World {
        now: epoch(),
        client: client(),
        server: (mode % 2 == 1).then(responder),
        local,
        server_ip: server_addr.ip(),
        queued: VecDeque::new(),
    };
    w.client.connect(w.now, local, server_addr);
    w.flush();
    if w.server.is_some() {
        w.pump();
        assert_eq!(w.client.state(), State::Connected, "the handshake prefix");
    }
    let stranger: std::net::IpAddr = "198.51.100.7".parse().expect("ip");
    for r in records(data, 64) {
        let Some((op, body)) = r.split_first() else {
            continue;
        };
        let from = if op & 4 == 0 { w.server_ip } else { stranger };
        match op & 3 {
            0 | 1 => {
                let port = if op & 3 == 0 { 500 } else { 4500 };
                let mut d = body.to_vec();
                w.deliver(w.local, SocketAddr::new(from, port), &mut d);
            }
            2 => {
                let step = u64::from(body.first().copied().unwrap_or(1)) * 250;
                w.now += Duration::from_millis(step);
                w.client.handle_timeout(w.now);
                w.flush();
            }
            _ => {
                let Some((local, port, mut d)) = w.queued.pop_front() else {
                    continue;
                };
                for pair in body.chunks_exact(2) {
                    if let Some(b) = d.get_mut(usize::from(pair[0])) {
                        *b ^= pair[1];
                    }
                }
                w.deliver(local, SocketAddr::new(from, port), &mut d);
            }
        }
    }
    let _ = w.client.state();
    let _ = w.client.dropped();
});
