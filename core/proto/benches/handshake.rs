//! The CPU cost of a whole IKE_SA_INIT + IKE_AUTH (with the first CHILD SA) in process, per
//! side: the client `Session` and our `Responder` on a direct in-memory link. Each iteration
//! makes a fresh pair (not timed) and runs the handshake to `Connected`; `client` sums the
//! time spent inside the client's calls only, `server` the responder's only, so each figure
//! is one side's CPU per handshake. Cases: PSK with X25519, PSK with ECP-384, and
//! certificates (client RSA-3072, server ECDSA P-256, both verified against the test CA).
//!
//! Run: `cargo bench -p roam-proto --features ring --bench handshake -- --warm-up-time 1
//! --measurement-time 3`.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/pair/mod.rs"]
mod pair;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pair::{client_addr, psk_client, responder_config, server_addr};
use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::cert::Certificate;
use roam_proto::crypto::sign::PrivateKey;
use roam_proto::crypto::Secret;
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig};
use roam_proto::rng::SeededRng;
use roam_proto::session::{Event, Session};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};

fn pki(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pki")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn certs(name: &str) -> Vec<Certificate> {
    Certificate::parse_pem_or_der(&pki(name)).unwrap()
}

/// One case: how to make both configurations.
struct Case {
    name: &'static str,
    client: fn() -> ClientConfig,
    server: fn() -> ResponderConfig,
}

const X25519: &str = "aes256gcm16-prfsha256-curve25519";
const ECP384: &str = "aes256gcm16-prfsha384-ecp384";

fn psk_only(psk: &str, ike: &str) -> ResponderConfig {
    let auth = ResponderAuth::Psk(Secret::from_slice(psk.as_bytes()));
    responder_config(auth, &[ike])
}

fn cert_server() -> ResponderConfig {
    let auth = ResponderAuth::Certificate {
        chain: certs("server-san.crt"),
        key: PrivateKey::from_pem(&pki("server-san.key")).unwrap(),
    };
    let mut c = responder_config(auth, &[X25519]);
    c.ca = certs("root-ca.crt");
    c
}

fn cert_client() -> ClientConfig {
    let mut c = psk_client("unused", &[X25519], &["aes256gcm16"]);
    c.auth = ClientAuth::Certificate {
        chain: certs("client-rsa.crt"),
        key: PrivateKey::from_pem(&pki("client-rsa.key")).unwrap(),
    };
    c.local_id = None;
    c.ca = certs("root-ca.crt");
    c
}

const CASES: &[Case] = &[
    Case {
        name: "psk x25519",
        client: || psk_client("bench secret", &[X25519], &["aes256gcm16"]),
        server: || psk_only("bench secret", X25519),
    },
    Case {
        name: "psk ecp384",
        client: || psk_client("bench secret", &[ECP384], &["aes256gcm16"]),
        server: || psk_only("bench secret", ECP384),
    },
    Case {
        name: "cert rsa3072 client, p256 server",
        client: cert_client,
        server: cert_server,
    },
];

/// Time spent in each side's calls during one handshake.
#[derive(Default)]
struct Spent {
    client: Duration,
    server: Duration,
}

fn timed<T>(acc: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    *acc += t.elapsed();
    r
}

/// Runs one handshake to the client's `Connected`; panics if it does not get there.
fn handshake(case: &Case, seed: u64) -> Spent {
    let (cc, sc) = ((case.client)(), (case.server)());
    let mut s = Spent::default();
    let now = Instant::now();
    let mut client = Session::new(cc, Box::new(SeededRng::new(seed))).unwrap();
    let mut server = Responder::new(sc, Box::new(SeededRng::new(seed ^ 0x5eed)));
    timed(&mut s.client, || {
        client.connect(now, client_addr(), server_addr())
    });
    // Where the client last sent: the responder answers from there.
    let mut server_local: SocketAddr = server_addr();
    for _ in 0..50 {
        let mut quiet = true;
        while let Some(t) = timed(&mut s.client, || client.poll_transmit()) {
            quiet = false;
            server_local = t.remote;
            timed(&mut s.server, || {
                if t.remote.port() == 4500 {
                    if let NattDatagram::Ike(m) = classify(&t.payload) {
                        server.handle_message(now, t.remote, t.local, m);
                    }
                } else {
                    server.handle_message(now, t.remote, t.local, &t.payload);
                }
            });
        }
        while let Some(o) = timed(&mut s.server, || server.poll_outgoing()) {
            quiet = false;
            let mut data = if server_local.port() == 4500 {
                let mut v = NON_ESP_MARKER.to_vec();
                v.extend_from_slice(&o.message);
                v
            } else {
                o.message
            };
            timed(&mut s.client, || {
                client.handle_datagram(now, o.remote, server_local, &mut data)
            });
        }
        let mut connected = false;
        while let Some(e) = client.poll_event() {
            connected |= matches!(e, Event::Connected(_));
        }
        if connected {
            return s;
        }
        assert!(!quiet, "{}: the handshake stalled", case.name);
    }
    panic!("{}: no Connected after 50 rounds", case.name)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.sample_size(20);
    for case in CASES {
        let mut seed = 0u64;
        g.bench_function(BenchmarkId::new("client", case.name), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        seed += 1;
                        handshake(case, seed).client
                    })
                    .sum()
            })
        });
        g.bench_function(BenchmarkId::new("server", case.name), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        seed += 1;
                        handshake(case, seed).server
                    })
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
