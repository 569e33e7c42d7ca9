//! Anti-replay through whole ESP packets: duplicates and packets behind the window are
//! dropped (and counted) before decryption; reordering inside the window and jumps ahead are
//! accepted; the window slides; ESN carries the high half across 2^32.

use roam_proto::crypto::proposal::Selected;
use roam_proto::crypto::sk::SkCipher;
use roam_proto::crypto::Secret;
use roam_proto::esp::{EspError, EspSa, REPLAY_WINDOW};
use roam_proto::ike::child::ChildSa;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{EncrId, IntegId, ProtocolId};

fn pair(encr: EncrId, key_bits: Option<u16>, integ: IntegId, esn: bool) -> (EspSa, EspSa) {
    let selected = Selected {
        protocol: ProtocolId::ESP,
        encr,
        key_bits,
        prf: None,
        integ,
        dh: None,
        esn,
        additional: Default::default(),
    };
    let el = SkCipher::encr_key_len(encr, key_bits).unwrap();
    let il = SkCipher::integ_key_len(integ).unwrap();
    let k = |t: u8, n: usize| Secret::new(vec![t; n]);
    let a = ChildSa {
        selected,
        spi_in: 0x1000_0001,
        spi_out: 0x2000_0002,
        encr_in: k(1, el),
        integ_in: k(2, il),
        encr_out: k(3, el),
        integ_out: k(4, il),
        ts_local: vec![],
        ts_remote: vec![],
    };
    let b = ChildSa {
        spi_in: a.spi_out,
        spi_out: a.spi_in,
        encr_in: a.encr_out.clone(),
        integ_in: a.integ_out.clone(),
        encr_out: a.encr_in.clone(),
        integ_out: a.integ_in.clone(),
        ..a.clone()
    };
    let mut rng = SeededRng::new(3);
    (
        EspSa::new(&a, &mut rng).unwrap(),
        EspSa::new(&b, &mut rng).unwrap(),
    )
}

/// `count` packets from `a`, in sending order.
fn make(a: &mut EspSa, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let inner: Vec<u8> = [0x45, i as u8].iter().copied().chain(0..38).collect();
            let mut buf = vec![0u8; a.outbound.encapsulated_len(inner.len())];
            a.encapsulate(&inner, &mut buf).unwrap();
            buf
        })
        .collect()
}

fn deliver(b: &mut EspSa, p: &[u8]) -> Result<(), EspError> {
    let mut p = p.to_vec();
    b.decapsulate(&mut p).map(|_| ())
}

fn algs() -> [(EncrId, Option<u16>, IntegId); 3] {
    [
        (EncrId::AES_GCM_16, Some(256), IntegId::NONE),
        (EncrId::CHACHA20_POLY1305, None, IntegId::NONE),
        (EncrId::AES_CBC, Some(128), IntegId::HMAC_SHA2_256_128),
    ]
}

#[test]
fn duplicates_are_dropped_and_counted() {
    for (e, k, i) in algs() {
        let (mut a, mut b) = pair(e, k, i, false);
        let pkts = make(&mut a, 10);
        for p in &pkts {
            deliver(&mut b, p).unwrap();
        }
        for (n, p) in pkts.iter().enumerate() {
            assert_eq!(deliver(&mut b, p), Err(EspError::Replayed(n as u64 + 1)));
        }
        let c = b.counters();
        assert_eq!((c.packets_in, c.replay, c.auth), (10, 10, 0));
    }
}

#[test]
fn reordering_inside_the_window_and_too_old() {
    let w = REPLAY_WINDOW as usize;
    for (e, k, i) in algs() {
        let (mut a, mut b) = pair(e, k, i, false);
        let pkts = make(&mut a, w + 200);
        // The newest first, then everything else still inside the window, backwards.
        let newest = pkts.len() - 1;
        deliver(&mut b, &pkts[newest]).unwrap();
        for n in (newest + 1 - w..newest).rev() {
            deliver(&mut b, &pkts[n]).unwrap_or_else(|e| panic!("seq {}: {e}", n + 1));
        }
        // One further back is behind the window.
        let old = newest - w;
        assert_eq!(
            deliver(&mut b, &pkts[old]),
            Err(EspError::TooOld(old as u64 + 1))
        );
        assert_eq!(b.counters().packets_in, w as u64);
        assert_eq!(b.counters().replay, 1);
    }
}

#[test]
fn jumps_ahead_and_the_window_slides() {
    let (mut a, mut b) = pair(EncrId::AES_GCM_16, Some(128), IntegId::NONE, false);
    let pkts = make(&mut a, 5000);
    // Packets 1, 2, 3; then jump to 2000; the gap below 2000 within the window is open.
    for n in [0, 1, 2, 1999] {
        deliver(&mut b, &pkts[n]).unwrap();
    }
    assert_eq!(b.inbound.window().top(), 2000);
    assert_eq!(deliver(&mut b, &pkts[3]), Err(EspError::TooOld(4)));
    deliver(&mut b, &pkts[1500]).unwrap();
    deliver(&mut b, &pkts[976]).unwrap(); // seq 977: the oldest the window holds.
    assert_eq!(deliver(&mut b, &pkts[975]), Err(EspError::TooOld(976)));
    // Slide by 100: 977..1076 fall out, 1501 is still marked.
    deliver(&mut b, &pkts[2099]).unwrap();
    assert_eq!(deliver(&mut b, &pkts[1000]), Err(EspError::TooOld(1001)));
    assert_eq!(deliver(&mut b, &pkts[1500]), Err(EspError::Replayed(1501)));
    deliver(&mut b, &pkts[1100]).unwrap();
    // A jump further than the window clears it entirely.
    deliver(&mut b, &pkts[4999]).unwrap();
    assert_eq!(deliver(&mut b, &pkts[2099]), Err(EspError::TooOld(2100)));
    for p in &pkts[4999 - 1023..4999] {
        deliver(&mut b, p).unwrap();
    }
    assert_eq!(b.counters().replay, 5);
}

#[test]
fn esn_crosses_2_pow_32() {
    for (e, k, i) in algs() {
        let (mut a, mut b) = pair(e, k, i, true);
        // Both ends far into their life: B has seen up to A's starting point.
        let start = (1u64 << 32) - 600;
        a.outbound.advance_seq(start - 1).unwrap();
        let pkts = make(&mut a, 1200);
        // In order up to just below the boundary.
        for p in &pkts[..590] {
            deliver(&mut b, p).unwrap();
        }
        assert_eq!(b.inbound.window().top(), start + 589);
        // Over the boundary, out of order: 2^32 + 100, then some behind the boundary.
        let at = |seq: u64| &pkts[(seq - start) as usize];
        deliver(&mut b, at((1 << 32) + 100)).unwrap();
        assert_eq!(b.inbound.window().top(), (1 << 32) + 100);
        for seq in ((1u64 << 32) - 10..(1 << 32) + 100).rev() {
            deliver(&mut b, at(seq)).unwrap_or_else(|e| panic!("{seq:#x}: {e}"));
        }
        // Replays on either side of the boundary, told apart by the inferred high half.
        assert_eq!(
            deliver(&mut b, at((1 << 32) - 1)),
            Err(EspError::Replayed((1 << 32) - 1))
        );
        assert_eq!(
            deliver(&mut b, at(1 << 32)),
            Err(EspError::Replayed(1 << 32))
        );
        // And on past it in order.
        for seq in (1u64 << 32) + 101..start + 1200 {
            deliver(&mut b, at(seq)).unwrap();
        }
        assert_eq!(b.inbound.window().top(), start + 1199);
        assert_eq!(b.counters().auth, 0);
        assert_eq!(b.counters().replay, 2);
    }
}

#[test]
fn esn_high_half_is_authenticated() {
    // The same packet bytes mean a different sequence number to a receiver whose window
    // sits in another 2^32 span: the ICV, which covers the high half, must fail.
    let (mut a, mut b) = pair(EncrId::AES_GCM_16, Some(128), IntegId::NONE, true);
    a.outbound.advance_seq((1 << 32) + 9).unwrap();
    let pkts = make(&mut a, 1);
    assert_eq!(deliver(&mut b, &pkts[0]), Err(EspError::Auth));
    assert_eq!(b.counters().auth, 1);
    assert_eq!(
        b.inbound.window().top(),
        0,
        "window untouched by a failed ICV"
    );
}

#[test]
fn a_forged_packet_does_not_move_the_window() {
    for (e, k, i) in algs() {
        let (mut a, mut b) = pair(e, k, i, false);
        let pkts = make(&mut a, 3000);
        deliver(&mut b, &pkts[0]).unwrap();
        // A packet claiming seq 2999 with a broken ICV.
        let mut forged = pkts[2998].clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(deliver(&mut b, &forged), Err(EspError::Auth));
        assert_eq!(b.inbound.window().top(), 1);
        // Packets the forgery would have pushed out are still accepted, and the real 2999.
        deliver(&mut b, &pkts[1]).unwrap();
        deliver(&mut b, &pkts[2998]).unwrap();
    }
}
