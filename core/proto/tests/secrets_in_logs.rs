//! No secret in any log line: a capturing `log` logger at trace level watches full sessions on
//! the virtual clock (PSK, EAP-MSCHAPv2, certificates, hybrid ML-KEM with a PPK; CHILD and
//! IKE SA rekeys by either end; a MOBIKE roam; a close), then every captured line is searched
//! for every secret used: the PSK, the password and the PPK (as text and hex), the private keys (PEM body, DER in hex and base64)
//! and every derived key (SK_d, SK_a*, SK_e*, SK_p*, ESP keys; hex in both cases, base64 and
//! Rust's `[1, 2, ...]` byte-list form).
#![allow(clippy::disallowed_methods)]

mod pair;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use log::{LevelFilter, Log, Metadata, Record};
use pair::{addr, certs, pki, psk_client, psk_server, responder_config, Dir, Fate, Pair};
use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::sign::PrivateKey;
use roam_proto::crypto::Secret;
use roam_proto::ike::ppk::{Ppk, ResponderPpks};
use roam_proto::ike::responder::{Responder, ResponderAuth, ResponderConfig};
use roam_proto::rng::SeededRng;
use roam_proto::session::State;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LINES.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

const PSK: &str = "correct horse battery staple psk";
/// The post-quantum preshared key of the hybrid session.
const PPK: &str = "a post-quantum preshared key that never shows";
const HYBRID: &str = "aes256gcm16-prfsha384-x25519-ke1_mlkem768";
const PASSWORD: &str = "wonderland-passw0rd";

fn cert_server() -> ResponderConfig {
    let auth = ResponderAuth::Certificate {
        chain: certs("server-san.crt"),
        key: PrivateKey::from_pem(&pki("server-san.key")).unwrap(),
    };
    let mut c = responder_config(auth, &[]);
    c.ca = certs("root-ca.crt");
    c
}

fn cert_client() -> ClientConfig {
    let mut c = psk_client("unused", &[], &[]);
    c.auth = ClientAuth::Certificate {
        chain: certs("client-p256.crt"),
        key: PrivateKey::from_pem(&pki("client-p256.key")).unwrap(),
    };
    c.local_id = None;
    c.ca = certs("root-ca.crt");
    c
}

fn eap_client() -> ClientConfig {
    let mut c = psk_client("unused", &["aes256-sha256-modp2048"], &["aes256-sha256"]);
    c.auth = ClientAuth::EapMschapv2 {
        username: "alice".into(),
        password: Secret::from_slice(PASSWORD.as_bytes()),
    };
    c.local_id = None;
    c.ca = certs("root-ca.crt");
    c
}

fn eap_server() -> ResponderConfig {
    let mut s = cert_server();
    s.eap_users = vec![("alice".into(), Secret::from_slice(PASSWORD.as_bytes()))];
    s
}

/// Every key the client holds now: the IKE SA's seven and each CHILD SA's four.
fn keys_of(p: &Pair, out: &mut Vec<(String, Vec<u8>)>) {
    let ike = p.client.ike();
    if let Some(k) = ike.sa_keys() {
        let d = &k.derived;
        for (name, s) in [
            ("SK_d", &d.sk_d),
            ("SK_ai", &d.sk_ai),
            ("SK_ar", &d.sk_ar),
            ("SK_ei", &d.sk_ei),
            ("SK_er", &d.sk_er),
            ("SK_pi", &d.sk_pi),
            ("SK_pr", &d.sk_pr),
        ] {
            out.push((name.into(), s.as_bytes().to_vec()));
        }
    }
    if let Some(c) = ike.child() {
        for (name, s) in [
            ("encr_in", &c.encr_in),
            ("integ_in", &c.integ_in),
            ("encr_out", &c.encr_out),
            ("integ_out", &c.integ_out),
        ] {
            out.push((
                format!("ESP {name} {:08x}", c.spi_in),
                s.as_bytes().to_vec(),
            ));
        }
    }
}

/// Runs a session of `client` against `server` through connect, rekeys of both kinds by both
/// ends, a roam, and a close, collecting every key it used.
fn full_session(
    client: ClientConfig,
    server: ResponderConfig,
    ppks: Option<ResponderPpks>,
    seed: u64,
) -> Vec<(String, Vec<u8>)> {
    let mut keys = Vec::new();
    let mut p = Pair::new(client, server, seed);
    if let Some(ppks) = ppks {
        let placeholder = Responder::new(psk_server(PSK), Box::new(SeededRng::new(seed)));
        let responder = std::mem::replace(&mut p.server, placeholder);
        p.server = responder.with_ppks(ppks);
    }
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    let spi_r = p.server_established().unwrap();
    assert!(p.ping(1));
    keys_of(&p, &mut keys);

    // Error paths log too: the first answer to this rekey arrives damaged (an integrity
    // failure), and so does one ESP packet; the retransmission heals the rekey.
    let mut damaged = false;
    p.filter = Some(Box::new(move |dir, _, d: &[u8]| match dir {
        Dir::ToClient if !damaged => {
            damaged = true;
            Fate::Replace(flip_last(d))
        }
        _ => Fate::Deliver,
    }));
    let spi_before = p.client.ike().child().unwrap().spi_in;
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    p.run_for(Duration::from_secs(10));
    assert_ne!(p.client.ike().child().unwrap().spi_in, spi_before);
    p.filter = Some(Box::new(|_, _, d: &[u8]| Fate::Replace(flip_last(d))));
    let vip = match p.connected().unwrap().virtual_ips[0] {
        std::net::IpAddr::V4(a) => a.octets(),
        _ => unreachable!(),
    };
    assert!(!p.server_send(&pair::icmp(LAN, vip, b"damaged")));
    p.filter = None;
    assert!(p.ping(2));
    keys_of(&p, &mut keys);

    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    assert!(p.ping(3));
    keys_of(&p, &mut keys);

    let now = p.now;
    assert!(p.server.rekey_child(now, spi_r));
    p.pump();
    keys_of(&p, &mut keys);
    p.wait(Duration::from_secs(1));
    let now = p.now;
    assert!(p.server.rekey_ike(now, spi_r));
    p.pump();
    keys_of(&p, &mut keys);
    assert!(p.ping(4));

    // A roam (MOBIKE) to another address.
    let new: SocketAddr = addr("198.51.100.3:40001");
    p.client_ips = Some(vec![new.ip()]);
    let now = p.now;
    p.client.network_changed(now, &[new]);
    p.pump();
    assert_eq!(p.client.ike().path().0, new, "{:?}", p.client_events);
    assert!(p.ping(5));
    keys_of(&p, &mut keys);

    let now = p.now;
    p.client.close(now);
    p.pump();
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.client.state(), State::Disconnected);
    keys
}

const LAN: [u8; 4] = [203, 0, 113, 2];

fn flip_last(d: &[u8]) -> Vec<u8> {
    let mut d = d.to_vec();
    if let Some(b) = d.last_mut() {
        *b ^= 0x55;
    }
    d
}

fn hex(b: &[u8], upper: bool) -> String {
    b.iter()
        .map(|x| {
            if upper {
                format!("{x:02X}")
            } else {
                format!("{x:02x}")
            }
        })
        .collect()
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | u32::from(*x) << (16 - 8 * i));
        for i in 0..=c.len() {
            s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

/// The forms a key of raw bytes could take in a log line.
fn forms(key: &[u8]) -> Vec<String> {
    let mut v = vec![hex(key, false), hex(key, true)];
    // Part of a key is as bad as all of it: its first 12 bytes too.
    let head = key.get(..12).unwrap_or(key);
    v.push(hex(head, false));
    v.push(hex(head, true));
    // Trimmed so the last, partial base64 group does not matter.
    let b64 = base64(head);
    v.push(b64[..16].to_string());
    let list: Vec<String> = head.iter().map(u8::to_string).collect();
    v.push(format!("[{}", list.join(", ")));
    v
}

/// The forms a private key could take: its PEM body lines, and its DER in hex and base64,
/// in 16-byte (hex) and 24-byte (base64) aligned pieces.
fn private_key_forms(pem: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(pem).unwrap();
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .collect();
    let mut v: Vec<String> = body.iter().map(|l| l.to_string()).collect();
    let der = pem_der(&body.concat());
    for chunk in der.chunks(16).filter(|c| c.len() == 16) {
        v.push(hex(chunk, false));
        v.push(hex(chunk, true));
    }
    let b64 = body.concat();
    for i in (0..b64.len().saturating_sub(32)).step_by(32) {
        v.push(b64[i..i + 32].to_string());
    }
    v
}

fn pem_der(b64: &str) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let vals: Vec<u32> = b64
        .bytes()
        .filter(|c| *c != b'=')
        .map(|c| A.iter().position(|a| *a == c).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for g in vals.chunks(4) {
        let n = g
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | x << (18 - 6 * i));
        for i in 0..g.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn no_secret_in_any_log_line() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(LevelFilter::Trace);
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(pem_der("TWFu"), b"Man");

    let mut keys = Vec::new();
    keys.extend(full_session(
        psk_client(PSK, &[], &[]),
        psk_server(PSK),
        None,
        7001,
    ));
    keys.extend(full_session(eap_client(), eap_server(), None, 7002));
    keys.extend(full_session(cert_client(), cert_server(), None, 7003));
    // hybrid ML-KEM over IKE_INTERMEDIATE with a post-quantum preshared key (RFC 8784)
    let mut pq = psk_client(PSK, &[HYBRID], &[]);
    pq.ppk = Some(Ppk {
        id: b"alice-ppk".to_vec(),
        key: Secret::from_slice(PPK.as_bytes()),
        required: true,
    });
    let ppks = ResponderPpks {
        keys: vec![(b"alice-ppk".to_vec(), Secret::from_slice(PPK.as_bytes()))],
        required: true,
    };
    keys.extend(full_session(
        pq,
        responder_config(
            ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes())),
            &[HYBRID],
        ),
        Some(ppks),
        7004,
    ));
    assert!(keys.len() >= 4 * 6 * 7, "{} keys collected", keys.len());

    let mut secrets: Vec<(String, String)> = Vec::new();
    for (name, key) in &keys {
        assert!(
            key.len() >= 16 || key.is_empty(),
            "{name}: {} bytes",
            key.len()
        );
        if key.is_empty() {
            continue; // SK_a* of an AEAD suite
        }
        for f in forms(key) {
            secrets.push((name.clone(), f));
        }
    }
    for (name, text) in [("PSK", PSK), ("password", PASSWORD), ("PPK", PPK)] {
        secrets.push((name.into(), text.into()));
        secrets.push((name.into(), hex(text.as_bytes(), false)));
        secrets.push((name.into(), hex(text.as_bytes(), true)));
    }
    for file in ["client-p256.key", "server-san.key"] {
        for f in private_key_forms(&pki(file)) {
            secrets.push((file.into(), f));
        }
    }

    let lines = LINES.lock().unwrap().clone();
    assert!(
        lines.len() >= 80,
        "only {} log lines captured: the test would prove nothing",
        lines.len()
    );
    assert!(lines.iter().any(|l| l.starts_with("DEBUG")));
    // The search finds a key where one is.
    let (_, planted) = keys.iter().find(|(n, _)| n == "SK_d").unwrap();
    let bait = format!("DEBUG x: key {}", hex(planted, true));
    assert_eq!(leak(&bait, &secrets).map(|l| l.0), Some("SK_d".to_string()));
    let bait = format!("DEBUG x: {:?}", &planted[..]);
    assert!(leak(&bait, &secrets).is_some(), "{bait}");
    assert!(leak("DEBUG x: 0 1 2", &secrets).is_none());

    if let Some((name, form, line)) = leak(&lines.join("\n"), &secrets) {
        panic!("{name} ({form}) in a log line: {line}");
    }
    eprintln!(
        "{} log lines, {} secret forms of {} keys checked",
        lines.len(),
        secrets.len(),
        keys.len()
    );
}

/// The first secret found in `all` (its name, form and line).
fn leak(all: &str, secrets: &[(String, String)]) -> Option<(String, String, String)> {
    secrets.iter().find_map(|(name, form)| {
        let at = all.find(form.as_str())?;
        let line = all[..at].rsplit('\n').next().unwrap_or_default();
        let rest = all[at..].split('\n').next().unwrap_or_default();
        Some((name.clone(), form.clone(), format!("{line}{rest}")))
    })
}
