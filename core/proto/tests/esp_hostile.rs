//! Hostile input to decapsulation: random bytes, truncation at every length, a wrong SPI,
//! every bit flipped, and authentic packets with bad padding or next headers (made here with
//! AES-256-GCM directly). Each is dropped with a typed error, counted, never panics, and the
//! SA still takes the next good packet.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, Nonce};
use aes_gcm::{AesGcm, KeyInit};
use proptest::prelude::*;
use roam_proto::crypto::proposal::Selected;
use roam_proto::crypto::sk::SkCipher;
use roam_proto::crypto::Secret;
use roam_proto::esp::{peek_spi, udp, Counters, EspError, EspSa};
use roam_proto::ike::child::ChildSa;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{EncrId, IntegId, ProtocolId};

const SPI: u32 = 0x0bad_cafe;

fn child(encr: EncrId, key_bits: Option<u16>, integ: IntegId, esn: bool) -> ChildSa {
    let el = SkCipher::encr_key_len(encr, key_bits).unwrap();
    let il = SkCipher::integ_key_len(integ).unwrap();
    let key: Vec<u8> = (0..el as u8).map(|i| i.wrapping_mul(13)).collect();
    let ikey: Vec<u8> = (0..il as u8).map(|i| i ^ 0x77).collect();
    ChildSa {
        selected: Selected {
            protocol: ProtocolId::ESP,
            encr,
            key_bits,
            prf: None,
            integ,
            dh: None,
            esn,
            additional: Default::default(),
        },
        spi_in: SPI,
        spi_out: SPI,
        encr_in: Secret::new(key.clone()),
        integ_in: Secret::new(ikey.clone()),
        encr_out: Secret::new(key),
        integ_out: Secret::new(ikey),
        ts_local: vec![],
        ts_remote: vec![],
    }
}

/// An SA that talks to itself (same SPI and keys both ways).
fn loopback(encr: EncrId, key_bits: Option<u16>, integ: IntegId, esn: bool) -> EspSa {
    EspSa::new(&child(encr, key_bits, integ, esn), &mut SeededRng::new(9)).unwrap()
}

fn algs() -> Vec<(EncrId, Option<u16>, IntegId)> {
    vec![
        (EncrId::AES_GCM_16, Some(128), IntegId::NONE),
        (EncrId::AES_GCM_16, Some(256), IntegId::NONE),
        (EncrId::CHACHA20_POLY1305, None, IntegId::NONE),
        (EncrId::AES_CBC, Some(128), IntegId::HMAC_SHA2_256_128),
        (EncrId::AES_CBC, Some(256), IntegId::HMAC_SHA2_512_256),
    ]
}

fn packet(sa: &mut EspSa, len: usize) -> Vec<u8> {
    let inner: Vec<u8> = std::iter::once(0x45)
        .chain((1..len).map(|i| i as u8))
        .collect();
    let mut buf = vec![0u8; sa.outbound.encapsulated_len(len)];
    sa.encapsulate(&inner, &mut buf).unwrap();
    buf
}

/// The SA still works: a fresh packet goes through.
fn still_works(sa: &mut EspSa) {
    let mut p = packet(sa, 60);
    let r = sa.decapsulate(&mut p).unwrap();
    assert_eq!(r.len(), 60);
}

fn total_drops(c: &Counters) -> u64 {
    c.dropped() + c.dummy
}

#[test]
fn truncated_at_every_length() {
    for (e, k, i) in algs() {
        let mut sa = loopback(e, k, i, false);
        let good = packet(&mut sa, 100);
        for len in 0..good.len() {
            let mut p = good[..len].to_vec();
            let err = sa.decapsulate(&mut p).unwrap_err();
            assert!(
                matches!(err, EspError::Malformed | EspError::Auth),
                "len {len}: {err}"
            );
        }
        assert_eq!(total_drops(&sa.counters()), good.len() as u64);
        assert_eq!(sa.counters().packets_in, 0);
        // The original, untruncated, is still fresh.
        let mut p = good.clone();
        sa.decapsulate(&mut p).unwrap();
        still_works(&mut sa);
    }
}

#[test]
fn wrong_spi() {
    for (e, k, i) in algs() {
        let mut sa = loopback(e, k, i, false);
        let mut p = packet(&mut sa, 80);
        p[..4].copy_from_slice(&0x0bad_caffu32.to_be_bytes());
        assert_eq!(
            sa.decapsulate(&mut p),
            Err(EspError::BadSpi {
                got: 0x0bad_caff,
                want: SPI
            })
        );
        assert_eq!(sa.counters().bad_spi, 1);
        still_works(&mut sa);
    }
}

#[test]
fn every_bit_flipped() {
    for (e, k, i) in algs() {
        for esn in [false, true] {
            let mut sa = loopback(e, k, i, esn);
            let good = packet(&mut sa, 50);
            for byte in 0..good.len() {
                for bit in 0..8 {
                    let mut p = good.clone();
                    p[byte] ^= 1 << bit;
                    let err = sa.decapsulate(&mut p).unwrap_err();
                    match byte {
                        0..=3 => assert!(matches!(err, EspError::BadSpi { .. })),
                        // A changed sequence number is a different (fresh) number whose ICV
                        // fails, or one the window places out of reach.
                        4..=7 => {
                            assert!(matches!(err, EspError::Auth | EspError::TooOld(_)), "{err}")
                        }
                        _ => assert_eq!(err, EspError::Auth, "byte {byte} bit {bit}"),
                    }
                }
            }
            let c = sa.counters();
            assert_eq!(c.dropped(), good.len() as u64 * 8);
            assert_eq!(c.bad_spi, 32);
            assert_eq!(c.packets_in, 0);
            let mut p = good.clone();
            sa.decapsulate(&mut p).unwrap();
            still_works(&mut sa);
        }
    }
}

/// An authentic AES-256-GCM ESP packet with any plaintext, independent of Roam's sealing.
fn forge_gcm(seq: u32, plaintext: &[u8]) -> Vec<u8> {
    let c = child(EncrId::AES_GCM_16, Some(256), IntegId::NONE, false);
    let (k, salt) = c.encr_out.as_bytes().split_at(32);
    let iv = u64::from(seq).to_be_bytes();
    let mut nonce = Nonce::<AesGcm<aes::Aes256, U12>>::default();
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&iv);
    let mut p = SPI.to_be_bytes().to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&iv);
    let mut ct = plaintext.to_vec();
    let tag = AesGcm::<aes::Aes256, U12>::new_from_slice(k)
        .unwrap()
        .encrypt_inout_detached(&nonce, &p[..8], ct.as_mut_slice().into())
        .unwrap();
    p.extend_from_slice(&ct);
    p.extend_from_slice(&tag);
    p
}

#[test]
fn authentic_packets_with_bad_trailers() {
    let mut sa = loopback(EncrId::AES_GCM_16, Some(256), IntegId::NONE, false);
    let inner = [0x45u8; 21];
    let with = |trailer: &[u8]| [&inner[..], trailer].concat();
    let cases: Vec<(Vec<u8>, EspError)> = vec![
        (with(&[1, 2, 4, 3, 4]), EspError::Padding),
        (with(&[0, 2, 3, 3, 4]), EspError::Padding),
        (with(&[1, 2, 3]), EspError::Padding), // pad length 2 over 0x45, 1
        (with(&[200, 4]), EspError::Padding),  // pad length beyond the packet
        (vec![1], EspError::Malformed),        // no room for the trailer
        (with(&[1, 2, 3, 3, 17]), EspError::NextHeader(17)),
        (with(&[1, 2, 3, 3, 0]), EspError::NextHeader(0)),
        (with(&[1, 2, 3, 3, 59]), EspError::Dummy),
    ];
    for (n, (pt, want)) in cases.iter().enumerate() {
        let mut p = forge_gcm(n as u32 + 1, pt);
        assert_eq!(sa.decapsulate(&mut p).as_ref(), Err(want), "case {n}");
    }
    let c = sa.counters();
    assert_eq!(
        (c.padding, c.next_header, c.dummy, c.malformed),
        (4, 2, 1, 1)
    );
    // Authentic packets move the window even when their contents are refused; the
    // malformed one never got that far.
    assert_eq!(sa.inbound.window().top(), 8);
    let mut p = forge_gcm(5, &with(&[1, 2, 3, 3, 4]));
    assert!(sa.decapsulate(&mut p).is_ok());
    // The forger's good packets are accepted: the independent construction agrees.
    let mut p = forge_gcm(100, &with(&[1, 2, 3, 3, 4]));
    assert_eq!(sa.decapsulate(&mut p), Ok(16..16 + inner.len()));
    let mut p = forge_gcm(101, &with(&[0, 41]));
    assert_eq!(sa.decapsulate(&mut p), Ok(16..16 + inner.len()));
    // No padding is fine, and so is an empty inner packet (not ESP's business).
    let mut p = forge_gcm(102, &[9, 0, 4]);
    assert_eq!(sa.decapsulate(&mut p), Ok(16..17));
    let mut p = forge_gcm(103, &[1, 2, 2, 4]);
    assert_eq!(sa.decapsulate(&mut p), Ok(16..16));
}

#[test]
fn udp_framing_and_demux() {
    let mut sa = loopback(EncrId::CHACHA20_POLY1305, None, IntegId::NONE, false);
    let mut datagram = packet(&mut sa, 64);
    assert_eq!(peek_spi(&datagram), Some(SPI));
    assert_eq!(peek_spi(&datagram[..3]), None);
    let esp = udp::esp_payload_mut(&mut datagram).unwrap();
    sa.decapsulate(esp).unwrap();
    assert_eq!(udp::esp_payload(&udp::KEEPALIVE_DATAGRAM), None);
    assert_eq!(udp::esp_payload(&[0, 0, 0, 0, 1, 2, 3, 4]), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn random_bytes_never_panic(alg in 0usize..5, esn in any::<bool>(), keep_spi in any::<bool>(),
                                mut junk in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (e, k, i) = algs()[alg];
        let mut sa = loopback(e, k, i, esn);
        if keep_spi && junk.len() >= 4 {
            junk[..4].copy_from_slice(&SPI.to_be_bytes());
        }
        let r = sa.decapsulate(&mut junk);
        prop_assert!(r.is_err());
        prop_assert_eq!(total_drops(&sa.counters()), 1);
        still_works(&mut sa);
    }

    #[test]
    fn corrupted_packets_never_pass(alg in 0usize..5, len in 20usize..300,
                                    edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4)) {
        let (e, k, i) = algs()[alg];
        let mut sa = loopback(e, k, i, false);
        let mut p = packet(&mut sa, len);
        for (at, x) in edits {
            let n = p.len();
            p[at % n] ^= x;
        }
        // Several edits may cancel out; otherwise the packet must be refused.
        let orig_ok = {
            let mut s2 = loopback(e, k, i, false);
            let q = packet(&mut s2, len);
            q == p
        };
        let r = sa.decapsulate(&mut p);
        prop_assert_eq!(r.is_ok(), orig_ok);
        still_works(&mut sa);
    }
}
