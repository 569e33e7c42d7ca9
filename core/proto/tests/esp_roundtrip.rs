//! ESP round trips for every transform, inner IPv4 and IPv6, with and without ESN; the size
//! helpers; sequence number exhaustion; dummy packets; and the packets checked against
//! independent computations with the RustCrypto primitives.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{AesGcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use roam_proto::crypto::proposal::Selected;
use roam_proto::crypto::sk::SkCipher;
use roam_proto::crypto::Secret;
use roam_proto::esp::{EspError, EspSa, ESP_HEADER_LEN};
use roam_proto::ike::child::ChildSa;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{EncrId, IntegId, ProtocolId};

const SPI_A: u32 = 0xc001_0001;
const SPI_B: u32 = 0xc002_0002;

/// Every transform Roam's ESP runs.
fn transforms() -> Vec<(EncrId, Option<u16>, IntegId)> {
    let mut v = vec![
        (EncrId::AES_GCM_16, Some(128), IntegId::NONE),
        (EncrId::AES_GCM_16, Some(192), IntegId::NONE),
        (EncrId::AES_GCM_16, Some(256), IntegId::NONE),
        (EncrId::CHACHA20_POLY1305, None, IntegId::NONE),
    ];
    for bits in [128, 192, 256] {
        for integ in [
            IntegId::HMAC_SHA2_256_128,
            IntegId::HMAC_SHA2_384_192,
            IntegId::HMAC_SHA2_512_256,
        ] {
            v.push((EncrId::AES_CBC, Some(bits), integ));
        }
    }
    v
}

fn key(len: usize, tag: u8) -> Secret {
    Secret::new((0..len).map(|i| (i as u8).wrapping_mul(7) ^ tag).collect())
}

/// The two ends of one CHILD SA: A's outbound is B's inbound and the other way round.
fn children(encr: EncrId, key_bits: Option<u16>, integ: IntegId, esn: bool) -> (ChildSa, ChildSa) {
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
    let a = ChildSa {
        selected,
        spi_in: SPI_A,
        spi_out: SPI_B,
        encr_in: key(el, 0x10),
        integ_in: key(il, 0x20),
        encr_out: key(el, 0x30),
        integ_out: key(il, 0x40),
        ts_local: vec![],
        ts_remote: vec![],
    };
    let b = ChildSa {
        spi_in: SPI_B,
        spi_out: SPI_A,
        encr_in: a.encr_out.clone(),
        integ_in: a.integ_out.clone(),
        encr_out: a.encr_in.clone(),
        integ_out: a.integ_in.clone(),
        ..a.clone()
    };
    (a, b)
}

fn pair(encr: EncrId, key_bits: Option<u16>, integ: IntegId, esn: bool) -> (EspSa, EspSa) {
    let (a, b) = children(encr, key_bits, integ, esn);
    let mut rng = SeededRng::new(7);
    (
        EspSa::new(&a, &mut rng).unwrap(),
        EspSa::new(&b, &mut rng).unwrap(),
    )
}

fn ipv4(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| i as u8).collect();
    if let Some(b) = p.first_mut() {
        *b = 0x45;
    }
    p
}

fn ipv6(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5a).collect();
    if let Some(b) = p.first_mut() {
        *b = 0x60;
    }
    p
}

/// Encapsulates at `from`, decapsulates at `to`, and checks the inner packet survives.
fn send(from: &mut EspSa, to: &mut EspSa, inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; from.outbound.encapsulated_len(inner.len())];
    let n = from.encapsulate(inner, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    let wire = buf.clone();
    let r = to.decapsulate(&mut buf).unwrap();
    assert_eq!(&buf[r], inner);
    wire
}

#[test]
fn every_transform_both_families_both_directions() {
    for (encr, bits, integ) in transforms() {
        for esn in [false, true] {
            let (mut a, mut b) = pair(encr, bits, integ, esn);
            let name = a.outbound.transform();
            for len in [20, 21, 22, 23, 24, 40, 63, 64, 65, 1280, 1400, 1500] {
                let v4 = ipv4(len);
                let v6 = ipv6(len.max(40));
                let wire = send(&mut a, &mut b, &v4);
                assert_eq!(u32::from_be_bytes(wire[..4].try_into().unwrap()), SPI_B);
                assert!(wire.len() <= v4.len() + a.outbound.overhead(), "{name}");
                send(&mut b, &mut a, &v6);
                send(&mut a, &mut b, &v6);
                send(&mut b, &mut a, &v4);
            }
            assert_eq!(a.outbound.last_seq(), 24, "{name}");
            let c = a.counters();
            assert_eq!((c.packets_out, c.packets_in), (24, 24), "{name}");
            assert_eq!(c.dropped(), 0);
            assert_eq!(b.counters().bytes_in, a.counters().bytes_out);
        }
    }
}

#[test]
fn in_place_with_headroom() {
    for (encr, bits, integ) in transforms() {
        let (mut a, mut b) = pair(encr, bits, integ, false);
        let inner = ipv6(333);
        let head = a.outbound.headroom();
        let mut buf = vec![0u8; head + inner.len() + a.outbound.tailroom(inner.len())];
        buf[head..head + inner.len()].copy_from_slice(&inner);
        let n = a
            .outbound
            .encapsulate_in_place(&mut buf, inner.len())
            .unwrap();
        assert_eq!(n, buf.len());
        let r = b.decapsulate(&mut buf).unwrap();
        assert_eq!(r.start, head);
        assert_eq!(&buf[r], &inner[..]);
        // Too little room: nothing sent, no sequence number used.
        let mut short = vec![0x45u8; n - 1];
        assert!(matches!(
            a.outbound.encapsulate_in_place(&mut short, inner.len()),
            Err(EspError::BufferTooSmall { .. })
        ));
        assert_eq!(a.outbound.last_seq(), 1);
    }
}

#[test]
fn sizes_agree() {
    for (encr, bits, integ) in transforms() {
        let (a, _) = pair(encr, bits, integ, false);
        let o = &a.outbound;
        for len in 0..200 {
            let total = o.encapsulated_len(len);
            assert_eq!(total, o.headroom() + len + o.tailroom(len));
            assert!(total - len <= o.overhead());
        }
        for mtu in 0..1600 {
            let p = o.max_payload(mtu);
            if p > 0 {
                assert!(o.encapsulated_len(p) <= mtu, "{} mtu {mtu}", o.transform());
            }
            if mtu > o.overhead() {
                assert!(
                    o.encapsulated_len(p + 1) > mtu,
                    "{} mtu {mtu}",
                    o.transform()
                );
            }
        }
        assert_eq!(o.max_payload(0), 0);
    }
    // The well-known numbers: AES-GCM over UDP-encapsulated IPv4 with a 1500-byte path.
    let (a, _) = pair(EncrId::AES_GCM_16, Some(256), IntegId::NONE, false);
    let room = roam_proto::esp::udp::esp_mtu(1500, false, true);
    assert_eq!(a.outbound.overhead(), 8 + 8 + 3 + 2 + 16);
    assert_eq!(a.outbound.max_payload(room), 1438);
}

#[test]
fn refuses_what_is_not_ip() {
    let (mut a, _) = pair(EncrId::AES_GCM_16, Some(128), IntegId::NONE, false);
    let mut out = [0u8; 200];
    for bad in [&[][..], &[0x00; 40], &[0x50; 40], &[0xff]] {
        assert_eq!(a.encapsulate(bad, &mut out), Err(EspError::NotIp));
    }
    assert_eq!(
        a.encapsulate(&ipv4(300), &mut out),
        Err(EspError::BufferTooSmall {
            needed: 8 + 8 + 304 + 16,
            have: 200
        })
    );
    assert_eq!(a.counters().out_errors, 5);
    assert_eq!(
        a.outbound.last_seq(),
        0,
        "no sequence number spent on refusals"
    );
}

#[test]
fn sequence_numbers_run_out() {
    let (mut a, mut b) = pair(EncrId::AES_GCM_16, Some(128), IntegId::NONE, false);
    send(&mut a, &mut b, &ipv4(60));
    assert_eq!(a.outbound.advance_seq(0), Err(EspError::SequenceBackwards));
    a.outbound.advance_seq(u64::from(u32::MAX) - 1).unwrap();
    assert_eq!(a.outbound.packets_left(), 1);
    send(&mut a, &mut b, &ipv4(60));
    let mut out = [0u8; 200];
    assert_eq!(
        a.encapsulate(&ipv4(60), &mut out),
        Err(EspError::SequenceExhausted)
    );
    assert_eq!(a.outbound.packets_left(), 0);
    assert_eq!(
        a.outbound.advance_seq(u64::from(u32::MAX) + 1),
        Err(EspError::SequenceExhausted)
    );

    // With ESN the limit is 2^64 - 1, and only the low half goes on the wire.
    let (mut a, _) = pair(EncrId::CHACHA20_POLY1305, None, IntegId::NONE, true);
    a.outbound.advance_seq((1u64 << 32) + 5).unwrap();
    let mut buf = vec![0u8; 200];
    a.encapsulate(&ipv4(60), &mut buf).unwrap();
    assert_eq!(&buf[4..8], &6u32.to_be_bytes());
    a.outbound.advance_seq(u64::MAX - 1).unwrap();
    a.encapsulate(&ipv4(60), &mut buf).unwrap();
    assert_eq!(a.outbound.last_seq(), u64::MAX);
    assert_eq!(
        a.encapsulate(&ipv4(60), &mut buf),
        Err(EspError::SequenceExhausted)
    );
}

#[test]
fn dummy_packets_are_dropped_quietly() {
    for (encr, bits, integ) in transforms() {
        let (mut a, mut b) = pair(encr, bits, integ, false);
        let mut buf = vec![0u8; a.outbound.encapsulated_len(100)];
        let n = a.outbound.encapsulate_dummy(100, &mut buf).unwrap();
        let e = b.decapsulate(&mut buf[..n]).unwrap_err();
        assert_eq!(e, EspError::Dummy);
        assert!(e.is_silent());
        assert_eq!(b.counters().dummy, 1);
        assert_eq!(b.counters().packets_in, 0);
        assert_eq!(b.counters().dropped(), 0);
        // The dummy's sequence number is used; real traffic goes on.
        send(&mut a, &mut b, &ipv4(50));
        assert_eq!(a.outbound.last_seq(), 2);
    }
}

#[test]
fn debug_shows_no_keys() {
    let (a, _) = children(EncrId::AES_CBC, Some(256), IntegId::HMAC_SHA2_256_128, true);
    let sa = EspSa::new(&a, &mut SeededRng::new(1)).unwrap();
    let dbg = format!("{sa:?}");
    assert!(dbg.contains("aes256-sha256"), "{dbg}");
    for k in [&a.encr_in, &a.encr_out, &a.integ_in, &a.integ_out] {
        let bytes = k.as_bytes();
        assert!(!dbg.contains(&hex::encode(&bytes[..8])));
        assert!(!dbg.contains(&format!("{:?}", &bytes[..4])), "{dbg}");
    }
}

#[test]
fn bad_sa_parameters() {
    let (mut a, _) = children(EncrId::AES_GCM_16, Some(128), IntegId::NONE, false);
    a.encr_out = Secret::new(vec![1; 16]);
    assert_eq!(
        EspSa::new(&a, &mut SeededRng::new(1)).unwrap_err(),
        EspError::KeyLength
    );
    let (mut a, _) = children(EncrId::AES_GCM_16, Some(128), IntegId::NONE, false);
    a.spi_in = 0;
    assert_eq!(
        EspSa::new(&a, &mut SeededRng::new(1)).unwrap_err(),
        EspError::InvalidSpi(0)
    );
    let (mut a, _) = children(EncrId::AES_GCM_16, Some(128), IntegId::NONE, false);
    a.selected.protocol = ProtocolId::IKE;
    assert!(matches!(
        EspSa::new(&a, &mut SeededRng::new(1)),
        Err(EspError::Unsupported(_))
    ));
    let (mut a, _) = children(EncrId::AES_GCM_16, Some(128), IntegId::NONE, false);
    a.selected.encr = EncrId::TRIPLE_DES;
    assert!(matches!(
        EspSa::new(&a, &mut SeededRng::new(1)),
        Err(EspError::Unsupported(_))
    ));
}

// Independent checks: the packets as plain RustCrypto calls see them.

type Aes256Gcm = AesGcm<aes::Aes256, U12>;

#[test]
fn gcm_packet_matches_the_primitive() {
    for esn in [false, true] {
        let (ca, _) = children(EncrId::AES_GCM_16, Some(256), IntegId::NONE, esn);
        let mut a = EspSa::new(&ca, &mut SeededRng::new(1)).unwrap();
        if esn {
            a.outbound.advance_seq(0x1_2345_6788).unwrap();
        }
        let inner = ipv4(101);
        let mut buf = vec![0u8; 300];
        let n = a.encapsulate(&inner, &mut buf).unwrap();
        let seq = a.outbound.last_seq();
        let pkt = &buf[..n];
        assert_eq!(&pkt[4..8], &(seq as u32).to_be_bytes());
        assert_eq!(
            &pkt[8..16],
            &seq.to_be_bytes(),
            "explicit IV = sequence number"
        );
        let (k, salt) = ca.encr_out.as_bytes().split_at(32);
        let mut nonce = Nonce::<Aes256Gcm>::default();
        nonce[..4].copy_from_slice(salt);
        nonce[4..].copy_from_slice(&pkt[8..16]);
        let mut aad = pkt[..4].to_vec();
        if esn {
            aad.extend_from_slice(&((seq >> 32) as u32).to_be_bytes());
        }
        aad.extend_from_slice(&pkt[4..8]);
        let mut ct = pkt[16..n - 16].to_vec();
        let tag = Tag::<Aes256Gcm>::try_from(&pkt[n - 16..]).unwrap();
        Aes256Gcm::new_from_slice(k)
            .unwrap()
            .decrypt_inout_detached(&nonce, &aad, ct.as_mut_slice().into(), &tag)
            .unwrap();
        // 101 + 2 rounds up to 104: padding 1.
        let mut expect = inner.clone();
        expect.extend_from_slice(&[1, 1, 4]);
        assert_eq!(ct, expect);
    }
}

#[test]
fn chacha_packet_matches_the_primitive() {
    let (ca, _) = children(EncrId::CHACHA20_POLY1305, None, IntegId::NONE, false);
    let mut a = EspSa::new(&ca, &mut SeededRng::new(1)).unwrap();
    let inner = ipv6(64);
    let mut buf = vec![0u8; 300];
    let n = a.encapsulate(&inner, &mut buf).unwrap();
    let pkt = &buf[..n];
    let (k, salt) = ca.encr_out.as_bytes().split_at(32);
    let mut nonce = Nonce::<ChaCha20Poly1305>::default();
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&pkt[8..16]);
    let mut ct = pkt[16..n - 16].to_vec();
    let tag = Tag::<ChaCha20Poly1305>::try_from(&pkt[n - 16..]).unwrap();
    ChaCha20Poly1305::new_from_slice(k)
        .unwrap()
        .decrypt_inout_detached(&nonce, &pkt[..8], ct.as_mut_slice().into(), &tag)
        .unwrap();
    let mut expect = inner.clone();
    expect.extend_from_slice(&[1, 2, 2, 41]);
    assert_eq!(ct, expect);
}

#[test]
fn cbc_icv_matches_an_independent_hmac() {
    use aes::cipher::{BlockModeDecrypt, KeyIvInit};
    for esn in [false, true] {
        for (integ, icv_len) in [
            (IntegId::HMAC_SHA2_256_128, 16),
            (IntegId::HMAC_SHA2_384_192, 24),
            (IntegId::HMAC_SHA2_512_256, 32),
        ] {
            let (ca, _) = children(EncrId::AES_CBC, Some(256), integ, esn);
            let mut a = EspSa::new(&ca, &mut SeededRng::new(1)).unwrap();
            if esn {
                a.outbound.advance_seq(0x7_ffff_fffe).unwrap();
            }
            let inner = ipv4(77);
            let mut buf = vec![0u8; 300];
            let n = a.encapsulate(&inner, &mut buf).unwrap();
            let seq = a.outbound.last_seq();
            let pkt = &buf[..n];
            let (signed, icv) = pkt.split_at(n - icv_len);
            let mut hi = Vec::new();
            if esn {
                hi.extend_from_slice(&((seq >> 32) as u32).to_be_bytes());
            }
            let key = ca.integ_out.as_bytes();
            let full: Vec<u8> = match integ {
                IntegId::HMAC_SHA2_256_128 => {
                    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
                    m.update(signed);
                    m.update(&hi);
                    m.finalize().into_bytes().to_vec()
                }
                IntegId::HMAC_SHA2_384_192 => {
                    let mut m = <Hmac<sha2::Sha384> as KeyInit>::new_from_slice(key).unwrap();
                    m.update(signed);
                    m.update(&hi);
                    m.finalize().into_bytes().to_vec()
                }
                _ => {
                    let mut m = <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key).unwrap();
                    m.update(signed);
                    m.update(&hi);
                    m.finalize().into_bytes().to_vec()
                }
            };
            assert_eq!(icv, &full[..icv_len], "{integ} esn {esn}");
            // And the ciphertext is plain AES-256-CBC of inner | 1..=n | n | 4.
            let iv = &pkt[8..24];
            let mut ct = pkt[24..n - icv_len].to_vec();
            assert_eq!(ct.len(), 80);
            let mut dec =
                cbc::Decryptor::<aes::Aes256>::new_from_slices(ca.encr_out.as_bytes(), iv).unwrap();
            let (blocks, _) = aes::Block::slice_as_chunks_mut(&mut ct);
            dec.decrypt_blocks(blocks);
            let mut expect = inner.clone();
            expect.extend_from_slice(&[1, 1, 4]);
            assert_eq!(ct, expect);
        }
    }
}

#[test]
fn cbc_ivs_differ() {
    let (mut a, _) = pair(
        EncrId::AES_CBC,
        Some(128),
        IntegId::HMAC_SHA2_256_128,
        false,
    );
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; 200];
    for _ in 0..1000 {
        a.encapsulate(&ipv4(40), &mut buf).unwrap();
        assert!(seen.insert(buf[8..24].to_vec()), "IV repeated");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn arbitrary_payloads_round_trip(alg in 0usize..13, esn in any::<bool>(), v6 in any::<bool>(),
                                     mut payload in proptest::collection::vec(any::<u8>(), 1..2000),
                                     start in 0u64..u64::from(u32::MAX) - 10) {
        let (encr, bits, integ) = transforms()[alg];
        let (mut a, mut b) = pair(encr, bits, integ, esn);
        payload[0] = if v6 { 0x60 | (payload[0] & 0xf) } else { 0x40 | (payload[0] & 0xf) };
        a.outbound.advance_seq(start).unwrap();
        let mut buf = vec![0u8; payload.len() + a.outbound.overhead()];
        let n = a.encapsulate(&payload, &mut buf).unwrap();
        prop_assert_eq!(n, a.outbound.encapsulated_len(payload.len()));
        prop_assert!(n >= ESP_HEADER_LEN + payload.len());
        let r = b.decapsulate(&mut buf[..n]).unwrap();
        prop_assert_eq!(&buf[r], &payload[..]);
    }
}
