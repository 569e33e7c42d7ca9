//! Resource bounds against hostile input: each cap on what an outsider (or a hostile peer) can
//! fill is pushed past its limit, the structure is checked to stay at the cap, the refusal to
//! be counted, and the session to keep working. A counting global allocator (live bytes of
//! the calling thread) shows that floods of 10 000 hostile IKE_SA_INIT requests or fragments
//! leave memory bounded.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use pair::{psk_client, psk_server, server_addr, Pair};
use roam_proto::crypto::sk::SkCipher;
use roam_proto::ike::protect::{self, MAX_FRAGMENTS, MAX_REASSEMBLED};
use roam_proto::ike::responder::{COOKIE_THRESHOLD, HALF_OPEN_TIMEOUT, MAX_HALF_OPEN};
use roam_proto::rng::SeededRng;
use roam_proto::session::State;
use roam_proto::wire::message::write_message;
use roam_proto::wire::natt::NON_ESP_MARKER;
use roam_proto::wire::{ExchangeType, Header, Message, NotifyType, Payload};

struct Counting;

thread_local! {
    // Const-initialized with no destructor: using it inside the allocator cannot allocate.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + n));
}

/// Bytes allocated and not yet freed by this thread.
fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PSK: &str = "bounds psk";
/// One cheap key exchange (the flood tests make a thousand half-open SAs).
const IKE: &str = "aes256gcm16-prfsha256-curve25519";

/// A real IKE_SA_INIT request from a client of ours (no marker).
fn init_request() -> Vec<u8> {
    let mut s = roam_proto::session::Session::new(
        psk_client(PSK, &[IKE], &[]),
        Box::new(SeededRng::new(1)),
    )
    .unwrap();
    s.connect(
        std::time::Instant::now(),
        pair::client_addr(),
        server_addr(),
    );
    s.poll_transmit().unwrap().payload
}

/// `init` from another initiator SPI, with a COOKIE notify first when given.
fn variant(init: &[u8], spi_i: u64, cookie: Option<&[u8]>) -> Vec<u8> {
    let msg = Message::parse(init).unwrap();
    let mut h = msg.header;
    h.spi_i = spi_i;
    let mut payloads: Vec<Payload<'_>> = Vec::new();
    if let Some(c) = cookie {
        payloads.push(Payload::notify(NotifyType::COOKIE, c));
    }
    payloads.extend(msg.payloads.iter().cloned());
    let mut out = Vec::new();
    write_message(&h, &payloads, &mut out);
    out
}

/// A spoofed source address for flood message `i`.
fn spoofed(i: u32) -> SocketAddr {
    let b = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b[1], b[2], b[3])), 500)
}

/// The COOKIE in the responder's last answer, if it asked for one.
fn cookie_asked(p: &mut Pair) -> Option<Vec<u8>> {
    let mut cookie = None;
    while let Some(o) = p.server.poll_outgoing() {
        let m = Message::parse(&o.message).unwrap();
        for pl in &m.payloads {
            if let Payload::Notify(n) = pl {
                if n.kind == NotifyType::COOKIE {
                    cookie = Some(n.data.to_vec());
                }
            }
        }
    }
    cookie
}

#[test]
fn a_spoofed_init_flood_meets_cookies_and_the_client_still_connects() {
    let init = init_request();
    let mut p = Pair::new(psk_client(PSK, &[IKE], &[]), psk_server(PSK), 1);
    let local = server_addr();
    let mut before = 0;
    for i in 0..10_000u32 {
        if i == 1_000 {
            before = live();
        }
        let m = variant(&init, 0x1000 + u64::from(i), None);
        p.server.handle_message(p.now, local, spoofed(i), &m);
        // The spoofer never sees the answers.
        while p.server.poll_outgoing().is_some() {}
    }
    let grown = live() - before;
    assert_eq!(p.server.half_open_count(), COOKIE_THRESHOLD);
    assert_eq!(p.server.sa_count(), COOKIE_THRESHOLD);
    let stats = p.server.admission_stats();
    assert_eq!(stats.cookies_demanded, 10_000 - COOKIE_THRESHOLD as u64);
    // 9 000 requests past the threshold left (almost) nothing behind.
    assert!(
        grown < 16 * 1024,
        "{grown} bytes kept by 9 000 spoofed requests"
    );

    // A real client answers the cookie and gets its tunnel.
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(p.ping(1));
    assert!(p.server.admission_stats().cookies_demanded > stats.cookies_demanded);
}

#[test]
fn half_open_sas_stop_at_the_cap_and_expire_to_make_room() {
    let init = init_request();
    let mut p = Pair::new(psk_client(PSK, &[IKE], &[]), psk_server(PSK), 2);
    let local = server_addr();
    // An attacker that sees the answers: it returns every cookie.
    let send = |p: &mut Pair, i: u32| {
        let from = spoofed(i);
        let spi = 0x2000 + u64::from(i);
        p.server
            .handle_message(p.now, local, from, &variant(&init, spi, None));
        if let Some(c) = cookie_asked(p) {
            p.server
                .handle_message(p.now, local, from, &variant(&init, spi, Some(&c)));
            while p.server.poll_outgoing().is_some() {}
        }
    };
    for i in 0..MAX_HALF_OPEN as u32 {
        send(&mut p, i);
    }
    assert_eq!(p.server.half_open_count(), MAX_HALF_OPEN);
    let before = live();
    for i in 0..2_000u32 {
        send(&mut p, 100_000 + i);
    }
    let grown = live() - before;
    assert_eq!(
        p.server.half_open_count(),
        MAX_HALF_OPEN,
        "stays at the cap"
    );
    assert_eq!(p.server.admission_stats().half_open_full, 2_000);
    assert!(
        grown < 16 * 1024,
        "{grown} bytes kept by 2 000 refused requests"
    );

    // While full, a real client is refused too; once the half-open SAs are old, they make
    // room for it.
    p.now += HALF_OPEN_TIMEOUT;
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(p.server.admission_stats().half_open_expired >= MAX_HALF_OPEN as u64);
    assert!(p.server.half_open_count() < MAX_HALF_OPEN);
    assert!(p.ping(1));
}

/// The client's view of the server's SK cipher (to forge authentic messages to it, as a
/// hostile server would).
fn server_cipher(p: &Pair) -> SkCipher {
    let ike = p.client.ike();
    let sel = ike.ike_proposal().unwrap();
    let k = &ike.sa_keys().unwrap().derived;
    SkCipher::new(
        sel.encr,
        sel.key_bits,
        sel.integ,
        k.sk_er.as_bytes(),
        k.sk_ar.as_bytes(),
    )
    .unwrap()
}

/// Hands an IKE message from the server to the client on its current path.
fn to_client(p: &mut Pair, msg: &[u8]) {
    let (local, remote) = p.client.ike().path();
    let mut framed = if remote.port() == 4500 {
        NON_ESP_MARKER.to_vec()
    } else {
        Vec::new()
    };
    framed.extend_from_slice(msg);
    let now = p.now;
    let _ = p.client.handle_datagram(now, local, remote, &mut framed);
}

/// A server request `message_id` of `chunks` notify payloads of `size` bytes, sealed into
/// fragments of `fragment` bytes.
fn fragments(
    p: &Pair,
    message_id: u32,
    chunks: usize,
    size: usize,
    fragment: usize,
) -> Vec<Vec<u8>> {
    let (spi_i, spi_r) = p.client.ike().spis();
    let header = Header::new(spi_i, spi_r, ExchangeType::INFORMATIONAL, 0, message_id);
    let data = vec![0x42u8; size];
    let payloads: Vec<Payload<'_>> = (0..chunks)
        .map(|_| Payload::notify(NotifyType(40_000), &data))
        .collect();
    let cipher = server_cipher(p);
    protect::seal(
        &cipher,
        &mut SeededRng::new(9),
        &header,
        &payloads,
        Some(fragment),
    )
}

fn connected(seed: u64) -> Pair {
    let mut c = psk_client(PSK, &[IKE], &[]);
    c.fragment_size = 1280;
    Pair::connected_with(c, psk_server(PSK), seed)
}

#[test]
fn fragments_over_the_caps_are_refused_counted_and_the_session_goes_on() {
    let mut p = connected(3);
    assert!(p.client.ike().peer().fragmentation);

    // Too many fragments: a 40-fragment message.
    let many = fragments(&p, 0, 40, 1000, 1100);
    assert!(many.len() > usize::from(MAX_FRAGMENTS));
    for f in &many {
        to_client(&mut p, f);
    }
    let refused = p.client.dropped().1.fragments;
    assert_eq!(refused, many.len() as u64);

    // Too many bytes: 30 fragments of 2 400 bytes (72 000 > 64 KiB).
    let big = fragments(&p, 0, 30, 2_390, 2_500);
    assert!(big.len() <= usize::from(MAX_FRAGMENTS));
    assert!(big.len() * 2_390 > MAX_REASSEMBLED);
    for f in &big {
        to_client(&mut p, f);
    }
    assert!(p.client.dropped().1.fragments > refused);

    // The session is unharmed, and answers the server's next request.
    assert_eq!(p.client.state(), State::Connected);
    assert!(p.ping(1));
    let spi_r = p.server_established().unwrap();
    let now = p.now;
    assert!(p.server.send_liveness_check(now, spi_r));
    p.pump();
    assert!(p.ping(2));
    assert_eq!(p.client.state(), State::Connected);
}

#[test]
fn ten_thousand_partial_fragmented_messages_keep_memory_bounded() {
    let mut p = connected(4);
    // Only the next message ID reaches reassembly (others are out of the window), so the
    // hostile messages vary their fragment count: each misses its last fragment, and each
    // new one replaces (or is refused by) the partial one before.
    let proto: Vec<Vec<Vec<u8>>> = (0..4).map(|i| fragments(&p, 0, 3 + i, 100, 200)).collect();
    assert!(proto.iter().all(|m| m.len() >= 3));
    let mut before = 0;
    for n in 0..10_000usize {
        if n == 100 {
            before = live();
        }
        let msg = &proto[n % proto.len()];
        for f in msg.iter().take(msg.len() - 1) {
            to_client(&mut p, f);
        }
    }
    let grown = live() - before;
    assert!(
        grown < 32 * 1024,
        "{grown} bytes kept by 10 000 partial messages"
    );
    assert_eq!(p.client.state(), State::Connected);
    assert!(p.ping(1));
}

#[test]
fn a_partial_message_is_dropped_after_the_reassembly_timeout() {
    let mut p = connected(5);
    let msg = fragments(&p, 0, 4, 1000, 1100);
    assert!(msg.len() >= 3);
    // All but the last now; the last after the timeout: the message never completes.
    for f in msg.iter().take(msg.len() - 1) {
        to_client(&mut p, f);
    }
    p.now += protect::REASSEMBLY_TIMEOUT + Duration::from_secs(1);
    to_client(&mut p, msg.last().unwrap());
    assert!(
        p.client.poll_transmit().is_none(),
        "the stale parts were dropped: nothing complete to answer"
    );
    assert_eq!(p.client.state(), State::Connected);
    // Its message ID is still the next one, so a complete copy is processed and answered.
    for f in &msg {
        to_client(&mut p, f);
    }
    assert!(
        p.client.poll_transmit().is_some(),
        "the complete request was answered"
    );
}

// Held packets: while the session reconnects it holds nothing. Packets from the TUN are
// refused at once (and the app's counter says so), so a flood of them while the server is
// away cannot grow memory, and none goes out.
#[test]
fn packets_while_reconnecting_are_refused_not_held() {
    let mut p = connected(6);
    let spi_r = p.server_established().unwrap();
    assert!(p.server.delete_ike_sa(p.now, spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Reconnecting);
    let packet = pair::icmp([198, 18, 0, 1], [203, 0, 113, 2], &[0u8; 1200]);
    let mut out = vec![0u8; 2048];
    let before = live();
    let mut refused = 0;
    for _ in 0..10_000 {
        if p.client.handle_packet(p.now, &packet, &mut out).is_err() {
            refused += 1;
        }
    }
    let grown = live() - before;
    assert_eq!(refused, 10_000);
    assert!(grown <= 0, "{grown} bytes held by 10 000 refused packets");
    assert!(p.client.poll_transmit().is_none(), "a packet went out");
    // the reconnect still happens and carries traffic
    p.run_for(Duration::from_secs(3));
    assert_eq!(p.client.state(), State::Connected);
    assert!(p.ping(3));
}
