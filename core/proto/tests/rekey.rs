//! Rekeying on the virtual clock: CHILD SA rekeys by either end (with and without PFS) while
//! traffic flows, IKE SA rekeys by either end (message IDs restart, the original initiator
//! may change), simultaneous rekeys, many rekeys through a lossy link, and the hard lifetime.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::time::Duration;

use pair::{psk_client, psk_server, Dir, Fate, Pair};
use roam_proto::config::{Lifetimes, Retransmit};
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::session::{DisconnectReason, Event, RekeyKind, State};
use roam_proto::wire::natt::NON_ESP_MARKER;
use roam_proto::wire::{DhGroup, Header};

const PSK: &str = "rekey psk";
const VIP: [u8; 4] = [198, 18, 0, 1];
const LAN: [u8; 4] = [203, 0, 113, 2];

fn icmp(src: [u8; 4], dst: [u8; 4], seq: u16) -> Vec<u8> {
    pair::icmp_seq(src, dst, seq, &[0x5a; 20])
}

/// A client for rekey tests: liveness checks and reconnects are off (tests/liveness.rs and
/// tests/reconnect.rs cover them), so every wakeup and every end here is the rekeying's.
fn rekey_client(esp: &[&str]) -> roam_proto::config::ClientConfig {
    let mut c = psk_client(PSK, &[], esp);
    c.dpd = None;
    c.silence = Duration::from_secs(24 * 3600);
    c.reconnect = None;
    c
}

fn connected(client_esp: &[&str], server_esp: Option<&str>, seed: u64) -> (Pair, u64) {
    let mut server = psk_server(PSK);
    if let Some(e) = server_esp {
        server.esp = vec![ProposalSpec::parse_esp(e, &[]).unwrap()];
    }
    let p = Pair::connected_with(rekey_client(client_esp), server, seed);
    let spi_r = p.server_established().unwrap();
    (p, spi_r)
}

/// Sends one packet each way (numbered `seq`).
fn both_ways(p: &mut Pair, seq: u16) {
    assert!(
        p.client_enqueue(&icmp(VIP, LAN, seq)),
        "client refused packet {seq}"
    );
    assert!(
        p.server_enqueue(&icmp(LAN, VIP, seq)),
        "server refused packet {seq}"
    );
}

fn rekeyed(p: &Pair) -> Vec<RekeyKind> {
    p.client_events
        .iter()
        .filter_map(|e| match e {
            Event::Rekeyed(k) => Some(*k),
            _ => None,
        })
        .collect()
}

/// Both ends agree on one CHILD SA and nothing else is left.
fn assert_one_child(p: &Pair, spi_r: u64) {
    let c = p.client.ike().child().expect("client CHILD SA");
    let s = p.server.child(spi_r).expect("server CHILD SA");
    assert_eq!((c.spi_in, c.spi_out), (s.spi_out, s.spi_in));
    assert_eq!(c.encr_out, s.encr_in);
    assert_eq!(c.encr_in, s.encr_out);
    assert!(
        p.client.ike().other_children().is_empty(),
        "client keeps old SAs"
    );
    assert!(
        p.server.other_children(spi_r).is_empty(),
        "server keeps old SAs"
    );
}

/// Traffic flows both ways on what is current now: every packet arrives.
fn assert_traffic(p: &mut Pair, from: u16) {
    let (c0, s0) = (p.client_received.len(), p.server_received.len());
    for i in 0..5 {
        both_ways(p, from + i);
    }
    p.pump();
    assert_eq!(p.client_received.len() - c0, 5);
    assert_eq!(p.server_received.len() - s0, 5);
}

/// Starts a rekey and puts a packet on the link each way before every datagram delivered,
/// so ESP of the old and new SAs is in flight at every stage of the exchange.
fn interleave(p: &mut Pair, start: impl FnOnce(&mut Pair)) -> u16 {
    let mut seq = 0;
    both_ways(p, seq);
    start(p);
    loop {
        seq += 1;
        both_ways(p, seq);
        if !p.step() || seq > 200 {
            break;
        }
    }
    p.pump();
    seq + 1
}

fn child_rekey_by_client(client_esp: &str, server_esp: Option<&str>, seed: u64) -> Pair {
    let (mut p, spi_r) = connected(&[client_esp], server_esp, seed);
    let old = p.client.ike().child().unwrap().clone();
    let sent = interleave(&mut p, |p| {
        let now = p.now;
        p.client.rekey_child(now)
    });
    assert_eq!(
        p.client_received.len(),
        usize::from(sent),
        "no packet lost to the client"
    );
    assert_eq!(
        p.server_received.len(),
        usize::from(sent),
        "no packet lost to the server"
    );
    let new = p.client.ike().child().unwrap().clone();
    assert_ne!(new.spi_in, old.spi_in);
    assert_ne!(new.spi_out, old.spi_out);
    assert_ne!(new.encr_out, old.encr_out);
    assert_eq!(
        rekeyed(&p),
        vec![RekeyKind::Child {
            spi_in: new.spi_in,
            spi_out: new.spi_out
        }]
    );
    assert_one_child(&p, spi_r);
    assert_eq!(p.client.state(), State::Connected);
    // Packets after the rekey use the new SPI.
    let mut out = vec![0u8; 2048];
    let now = p.now;
    let d = p
        .client
        .handle_packet(now, &icmp(VIP, LAN, 999), &mut out)
        .unwrap();
    assert_eq!(&out[..4], &new.spi_out.to_be_bytes());
    assert!(d.len > 0);
    assert_traffic(&mut p, 1000);
    let stats = p.client.data_stats();
    assert_eq!(
        stats.esp.packets_in,
        u64::from(sent) + 5,
        "counters survive the rekey"
    );
    p
}

#[test]
fn child_rekey_by_the_client_without_pfs() {
    let p = child_rekey_by_client("aes256gcm16", None, 600);
    assert_eq!(p.client.ike().child().unwrap().selected.dh, None);
}

#[test]
fn child_rekey_by_the_client_with_pfs() {
    let p = child_rekey_by_client(
        "aes256gcm16-curve25519",
        Some("aes256gcm16-curve25519"),
        601,
    );
    assert_eq!(
        p.client.ike().child().unwrap().selected.dh,
        Some(DhGroup::CURVE25519)
    );
}

#[test]
fn pfs_rekey_retries_with_the_group_the_server_wants() {
    // We offer curve25519 first, the server only takes ecp256: INVALID_KE_PAYLOAD, retried.
    let p = child_rekey_by_client(
        "aes256gcm16-curve25519-ecp256",
        Some("aes256gcm16-ecp256"),
        602,
    );
    assert_eq!(
        p.client.ike().child().unwrap().selected.dh,
        Some(DhGroup::ECP_256)
    );
}

#[test]
fn child_rekey_by_the_server() {
    let (mut p, spi_r) = connected(&["aes256gcm16"], None, 610);
    let old = p.client.ike().child().unwrap().spi_in;
    let sent = interleave(&mut p, |p| {
        let now = p.now;
        assert!(p.server.rekey_child(now, spi_r));
    });
    assert_eq!(p.client_received.len(), usize::from(sent));
    assert_eq!(p.server_received.len(), usize::from(sent));
    assert_ne!(p.client.ike().child().unwrap().spi_in, old);
    assert_eq!(rekeyed(&p).len(), 1);
    assert_one_child(&p, spi_r);
    assert_traffic(&mut p, 500);
}

/// The message ID of the next IKE request the client sends, seen on the link.
fn watch_client_requests(p: &mut Pair) -> std::sync::Arc<std::sync::Mutex<Vec<(u64, u32)>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    p.filter = Some(Box::new(move |dir, _, data| {
        if dir == Dir::ToServer && data.starts_with(&NON_ESP_MARKER) {
            if let Ok(h) = Header::parse(&data[4..]) {
                if !h.is_response() {
                    s.lock().unwrap().push((h.spi_i, h.message_id));
                }
            }
        }
        Fate::Deliver
    }));
    seen
}

#[test]
fn ike_rekey_by_the_client() {
    let (mut p, spi_r) = connected(&["aes256gcm16"], None, 620);
    let old = p.client.ike().spis();
    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    let new = p.client.ike().spis();
    assert_ne!(new.0, old.0);
    assert_ne!(new.1, old.1);
    assert!(p.client.ike().is_original_initiator());
    assert_eq!(p.server.ike_spis(spi_r), Some(new));
    assert_eq!(
        rekeyed(&p),
        vec![RekeyKind::Ike {
            spi_i: new.0,
            spi_r: new.1
        }]
    );
    assert_eq!(p.client.ike().old_ike_sas(), 0, "old IKE SA deleted");
    assert_eq!(p.server.old_ike_sas(spi_r), 0);
    // The CHILD SA moved over; further exchanges use the new SA from message ID 0.
    let seen = watch_client_requests(&mut p);
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    assert_eq!(seen.lock().unwrap().first(), Some(&(new.0, 0)));
    assert_one_child(&p, spi_r);
    assert!(p.server.send_liveness_check(p.now, spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Connected);
    assert_traffic(&mut p, 100);
}

#[test]
fn ike_rekey_by_the_server() {
    let (mut p, spi_r) = connected(&["aes256gcm16"], None, 630);
    let old = p.client.ike().spis();
    let now = p.now;
    assert!(p.server.rekey_ike(now, spi_r));
    p.pump();
    let new = p.client.ike().spis();
    assert_ne!(new, old);
    assert!(
        !p.client.ike().is_original_initiator(),
        "the server initiated the new IKE SA"
    );
    assert_eq!(p.server.ike_spis(spi_r), Some(new));
    assert_eq!(p.client.ike().old_ike_sas(), 0);
    assert_eq!(p.server.old_ike_sas(spi_r), 0);
    assert!(matches!(rekeyed(&p).as_slice(), [RekeyKind::Ike { .. }]));
    // Our requests on the new SA start at message ID 0, without the I flag.
    let seen = watch_client_requests(&mut p);
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    assert_eq!(seen.lock().unwrap().first(), Some(&(new.0, 0)));
    assert_one_child(&p, spi_r);
    // A liveness check from the server is answered; the server can start another exchange.
    assert!(p.server.send_liveness_check(p.now, spi_r));
    p.pump();
    assert!(
        p.server.rekey_child(p.now, spi_r),
        "the server's window is free again"
    );
    p.pump();
    assert_one_child(&p, spi_r);
    // And we can rekey the IKE SA back: we are its original initiator again.
    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    assert!(p.client.ike().is_original_initiator());
    assert_eq!(p.server.ike_spis(spi_r), Some(p.client.ike().spis()));
    assert_eq!(rekeyed(&p).len(), 4);
    assert_eq!(p.client.state(), State::Connected);
    assert_traffic(&mut p, 200);
}

#[test]
fn simultaneous_child_rekeys_leave_one_sa() {
    for seed in 640..648 {
        let (mut p, spi_r) = connected(&["aes256gcm16"], None, seed);
        let old = p.client.ike().child().unwrap().spi_in;
        let now = p.now;
        p.client.rekey_child(now);
        assert!(p.server.rekey_child(now, spi_r));
        p.pump();
        let c = p.client.ike().child().unwrap().spi_in;
        assert_ne!(c, old, "seed {seed}");
        assert_one_child(&p, spi_r);
        assert_eq!(p.client.state(), State::Connected);
        assert_traffic(&mut p, 0);
    }
}

#[test]
fn simultaneous_ike_rekeys_leave_one_sa() {
    for seed in 650..656 {
        let (mut p, spi_r) = connected(&["aes256gcm16"], None, seed);
        let old = p.client.ike().spis();
        let now = p.now;
        p.client.rekey_ike(now);
        assert!(p.server.rekey_ike(now, spi_r));
        p.pump();
        let new = p.client.ike().spis();
        assert_ne!(new, old, "seed {seed}");
        assert_eq!(p.server.ike_spis(spi_r), Some(new), "seed {seed}");
        assert_eq!(p.client.ike().old_ike_sas(), 0, "seed {seed}");
        assert_eq!(p.server.old_ike_sas(spi_r), 0, "seed {seed}");
        // The surviving SA works: a CHILD rekey and a liveness check on it.
        let now = p.now;
        p.client.rekey_child(now);
        p.pump();
        assert_one_child(&p, spi_r);
        assert!(p.server.send_liveness_check(p.now, spi_r));
        p.pump();
        assert_eq!(p.client.state(), State::Connected);
        assert_traffic(&mut p, 0);
    }
}

#[test]
fn rekeys_in_a_row_through_a_lossy_link() {
    let mut client = rekey_client(&["aes256gcm16"]);
    client.lifetimes = Lifetimes {
        ike_rekey: Duration::from_secs(900),
        child_rekey: Duration::from_secs(300),
        jitter: Duration::from_secs(20),
        child_rekey_bytes: None,
        child_rekey_packets: None,
    };
    client.retransmit = Retransmit {
        initial: Duration::from_millis(500),
        factor: 1.2,
        max_timeout: Duration::from_secs(2),
        tries: 30,
    };
    let mut p = Pair::new(client, psk_server(PSK), 660);
    p.connect();
    assert!(p.connected().is_some());
    let spi_r = p.server_established().unwrap();
    // 30% of datagrams lost, either way, decided by a fixed sequence.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    p.filter = Some(Box::new(move |_, _, _| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 10 < 3 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let start = p.now;
    let mut seq = 0u16;
    while p.now < start + Duration::from_secs(3 * 3600) {
        seq = seq.wrapping_add(1);
        both_ways(&mut p, seq);
        p.pump();
        let next = p.now + Duration::from_secs(20);
        p.run_for(Duration::from_secs(20));
        p.now = p.now.max(next);
        p.client.handle_timeout(p.now);
        p.pump();
        assert_eq!(
            p.client.state(),
            State::Connected,
            "{:?}",
            p.disconnect_reason()
        );
    }
    let kinds = rekeyed(&p);
    let child = kinds
        .iter()
        .filter(|k| matches!(k, RekeyKind::Child { .. }))
        .count();
    let ike = kinds.len() - child;
    assert!(child >= 30, "{child} CHILD rekeys");
    assert!(ike >= 10, "{ike} IKE rekeys");
    // The link heals: the current SAs agree and carry everything.
    p.filter = None;
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.server.ike_spis(spi_r), Some(p.client.ike().spis()));
    let c = p.client.ike().child().unwrap();
    let s = p.server.child(spi_r).unwrap();
    assert_eq!((c.spi_in, c.spi_out), (s.spi_out, s.spi_in));
    assert_traffic(&mut p, 60000);
}

#[test]
fn hard_lifetime_without_an_answer_ends_the_ike_sa() {
    let mut client = rekey_client(&["aes256gcm16"]);
    client.lifetimes.child_rekey = Duration::from_secs(100);
    client.lifetimes.jitter = Duration::ZERO;
    // Retransmissions alone would not give up before the hard lifetime.
    client.retransmit.tries = 100;
    let mut p = Pair::new(client, psk_server(PSK), 670);
    p.connect();
    assert!(p.connected().is_some());
    let start = p.now;
    p.filter = Some(Box::new(|dir, _, _| {
        if dir == Dir::ToClient {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    p.run_for(Duration::from_secs(300));
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Timeout));
    assert_eq!(
        p.now - start,
        Duration::from_secs(130),
        "soft + the least margin (30 s, more than 10% of 100 s)"
    );
    assert_eq!(p.client.state(), State::Disconnected);
}

#[test]
fn idle_session_wakes_only_for_its_rekeys() {
    let (mut p, _) = connected(&["aes256gcm16"], None, 680);
    let start = p.now;
    let before = p.sent[0];
    let deadline = p.client.poll_timeout().expect("a rekey deadline");
    let child_max = start + Duration::from_secs(3600);
    assert!(deadline <= child_max && deadline >= start + Duration::from_secs(3240));
    p.run_for(Duration::from_secs(3 * 3600));
    // In three hours: three CHILD rekeys, one DELETE each; the IKE SA (4 h) not yet.
    assert_eq!(
        rekeyed(&p)
            .iter()
            .filter(|k| matches!(k, RekeyKind::Child { .. }))
            .count(),
        3
    );
    // One CREATE_CHILD_SA and one DELETE each, nothing else.
    assert_eq!(p.sent[0] - before, 3 * 2);
}

#[test]
fn child_rekey_after_the_configured_volume() {
    let mut client = rekey_client(&["aes256gcm16"]);
    client.lifetimes.child_rekey_packets = Some(20);
    let mut p = Pair::new(client, psk_server(PSK), 690);
    p.connect();
    let spi_r = p.server_established().unwrap();
    for i in 0..9 {
        both_ways(&mut p, i);
        p.pump();
    }
    assert!(rekeyed(&p).is_empty(), "18 packets: not yet");
    for i in 9..12 {
        both_ways(&mut p, i);
        p.pump();
    }
    assert_eq!(rekeyed(&p).len(), 1, "rekeyed at 20 packets");
    assert_eq!(p.client_received.len(), 12);
    assert_eq!(p.server_received.len(), 12);
    assert_one_child(&p, spi_r);
}

#[test]
fn child_rekey_during_an_ike_rekey_is_refused_and_the_ike_rekey_retried() {
    let (mut p, spi_r) = connected(&["aes256gcm16"], None, 695);
    let old = p.client.ike().spis();
    let now = p.now;
    p.client.rekey_ike(now);
    assert!(p.server.rekey_child(now, spi_r));
    p.pump();
    // Each end refused the other with TEMPORARY_FAILURE; the client retries shortly.
    assert_eq!(p.client.ike().spis(), old);
    p.run_for(Duration::from_secs(10));
    assert_ne!(p.client.ike().spis(), old);
    assert_eq!(p.server.ike_spis(spi_r), Some(p.client.ike().spis()));
    assert_one_child(&p, spi_r);
    assert_eq!(p.client.state(), State::Connected);
    assert_traffic(&mut p, 0);
}
