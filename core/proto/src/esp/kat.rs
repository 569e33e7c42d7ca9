//! Known-answer tests with whole ESP packets: the AES-GCM cases of draft-mcgrew-gcm-test-01
//! §4 and the ChaCha20-Poly1305 example of RFC 7634 Appendix A. Their explicit IVs are not
//! sequence numbers, so these tests seal through `Outbound::seal_with`, and place the
//! replay window for the ESN cases.

use super::cipher::Cipher;
use super::{EspError, Inbound, Outbound};
use crate::crypto::aead::Backend;
use crate::rng::SeededRng;
use crate::wire::{EncrId, IntegId};

struct Case {
    name: &'static str,
    encr: EncrId,
    key_bits: Option<u16>,
    /// Key followed by the 4-byte salt, as IKE derives it.
    key_salt: &'static str,
    spi: u32,
    seq: u64,
    esn: bool,
    iv: &'static str,
    /// Inner packet, padding, pad length, next header.
    plaintext: &'static str,
    /// SPI | seq | IV | ciphertext | ICV.
    packet: &'static str,
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(s).unwrap()
}

const CASES: &[Case] = &[
    Case {
        name: "draft-mcgrew-gcm-test-01 case 2: AES-128, 32-bit seq",
        encr: EncrId::AES_GCM_16,
        key_bits: Some(128),
        key_salt: "feffe9928665731c6d6a8f9467308308 cafebabe",
        spi: 0x0000a5f8,
        seq: 0x0a,
        esn: false,
        iv: "facedbaddecaf888",
        plaintext: "4500003e698f000080114dccc0a80102 c0a801010a980035002a2343b2d00100
                    00010000000000000373697009637962 65726369747902646b00000100010001",
        packet: "0000a5f80000000afacedbaddecaf888 deb22cd9b07c72c16e3a65beeb8df304
                 a5a5897d33ae530f1ba76d5d114d2a5c 3de81827c10e9a4f51330d0eec416642
                 cfbb85a5b47e48a4ec3b9ba95d918bd1 83b70d3aa8bc6ee4c309e9d85a41ad4a",
    },
    Case {
        name: "draft-mcgrew-gcm-test-01 case 3: AES-256, padding",
        encr: EncrId::AES_GCM_16,
        key_bits: Some(256),
        key_salt: "abbccddef00112233445566778899aab abbccddef00112233445566778899aab
                   11223344",
        spi: 0x4a2cbfe3,
        seq: 2,
        esn: false,
        iv: "0102030405060708",
        plaintext: "4500003069a6400080062690c0a80102 9389155e0a9e008b2dc57ee000000000
                    7002400020bf0000020405b401010402 01020201",
        packet: "4a2cbfe3000000020102030405060708 ff425c9b724599df7a3bcd510194e00d
                 6a78107f1b0b1cbf06efae9d65a5d763 748a637985771d347f0545659f14e99d
                 ef842d8eb335f4eecfdbf831824b4c49 15956c96",
    },
    Case {
        name: "draft-mcgrew-gcm-test-01 case 1: AES-128, ESN",
        encr: EncrId::AES_GCM_16,
        key_bits: Some(128),
        key_salt: "4c80cdefbb5d10da906ac73c3613a634 2e443b68",
        spi: 0x00004321,
        seq: 0x8765_4321_0000_0000,
        esn: true,
        iv: "4956ed7e3b244cfe",
        plaintext: "45000048699a000080114db7c0a80102 c0a801010a9bf15638d3010000010000
                    00000000045f736970045f7564700373 69700963796265726369747902646b00
                    0021000101020201",
        packet: "00004321000000004956ed7e3b244cfe fecf537e729d5b07dc30df528dd22b76
                 8d1b98736696a6fd348509fa13ceac34 cfa2436f14a3f3cf65925bf1f4a13c5d
                 15b21e1884f5ff6247aeabb786b93bce 61bc17d768fd9732459018148f6cbe72
                 2fd04796562dfdb4",
    },
    Case {
        name: "draft-mcgrew-gcm-test-01 case 7: AES-192",
        encr: EncrId::AES_GCM_16,
        key_bits: Some(192),
        key_salt: "feffe9928665731c6d6a8f9467308308 feffe9928665731c cafebabe",
        spi: 0x0000a5f8,
        seq: 0x0a,
        esn: false,
        iv: "facedbaddecaf888",
        plaintext: "45000028a4ad4000400678800a01038f 0a010612802306b8cb712602dd6bb03e
                    501016d075680001",
        packet: "0000a5f80000000afacedbaddecaf888 a5b1f8066029aea40e598b8122de0242
                 0938b3ab33f828e687b8858b5bfbdbd0 315b27452144cc7795457b9652037f53
                 18027b5b4cd7a636",
    },
    Case {
        name: "draft-mcgrew-gcm-test-01 case 14: AES-256, ESN 2^64 - 1",
        encr: EncrId::AES_GCM_16,
        key_bits: Some(256),
        key_salt: "6c6567616c697a656d6172696a75616e 61616e64646f69746265666f72656961
                   7475726e",
        spi: 0x796b6963,
        seq: u64::MAX,
        esn: true,
        iv: "333021696765746d",
        plaintext: "45000030da3a00008001df3bc0a80005 c0a800010800c6cd0200070061626364
                    65666768696a6b6c6d6e6f7071727374 01020201",
        packet: "796b6963ffffffff333021696765746d f97ab2aa356d8edce17644ac8c78e25d
                 d24dedbb29ebf1b64a274b39b49c3a86 4cd3d78ca4ae68a32b42458fb57dbe82
                 1dcc63b9d0937ba2945f669368661a32 9fb4c053",
    },
    Case {
        name: "RFC 7634 Appendix A: ChaCha20-Poly1305 ESP",
        encr: EncrId::CHACHA20_POLY1305,
        key_bits: None,
        key_salt: "808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f
                   a0a1a2a3",
        spi: 0x01020304,
        seq: 5,
        esn: false,
        iv: "1011121314151617",
        plaintext: "45000054a6f200004001e778c6336405 c000020508005b7a3a080000553bec10
                    000736270809 0a0b0c0d0e0f10111213 1415161718191a1b1c1d1e1f20212223
                    2425262728292a2b2c2d2e2f30313233 3435363701020204",
        packet: "01020304000000051011121314151617
                 24039428b97f417e3c13753a4f05087b 67c352e6a7fab1b982d466ef407ae5c6
                 14ee8099d52844eb61aa95dfab4c02f7 2aa71e7c4c4f64c9befe2facc638e8f3
                 cbec163fac469b502773f6fb94e664da 9165b82829f641e0
                 76aaa8266b7fb0f7b11b369907e1ad43",
    },
];

fn cipher(c: &Case, backend: Backend) -> Cipher {
    Cipher::with_backend(
        backend,
        c.encr,
        c.key_bits,
        IntegId::NONE,
        &unhex(c.key_salt),
        &[],
    )
    .unwrap()
}

/// Every case with every AEAD backend compiled in.
fn cases() -> impl Iterator<Item = (&'static Case, Backend)> {
    CASES
        .iter()
        .flat_map(|c| Backend::ALL.iter().map(move |&b| (c, b)))
}

#[test]
fn encapsulate_known_answers() {
    for (c, backend) in cases() {
        let plain = unhex(c.plaintext);
        let (nh, pad_len) = (plain[plain.len() - 1], plain[plain.len() - 2]);
        let payload = &plain[..plain.len() - 2 - usize::from(pad_len)];
        let out = Outbound::with_cipher(c.spi, c.esn, cipher(c, backend), &mut SeededRng::new(1))
            .unwrap();
        let mut buf = vec![0u8; out.encapsulated_len(payload.len())];
        let head = out.headroom();
        buf[head..head + payload.len()].copy_from_slice(payload);
        let n = out
            .seal_with(c.seq, &unhex(c.iv), nh, &mut buf, payload.len())
            .unwrap();
        assert_eq!(
            hex::encode(&buf[..n]),
            hex::encode(unhex(c.packet)),
            "{} ({backend:?})",
            c.name
        );
    }
}

#[test]
fn decapsulate_known_answers() {
    for (c, backend) in cases() {
        let plain = unhex(c.plaintext);
        let nh = plain[plain.len() - 1];
        let pad_len = usize::from(plain[plain.len() - 2]);
        let mut packet = unhex(c.packet);
        let mut inb = Inbound::with_cipher(c.spi, c.esn, cipher(c, backend)).unwrap();
        inb.reset_window(c.seq - 1);
        let r = inb.decapsulate(&mut packet);
        let head = 16;
        // Whatever the next header, the buffer now holds the plaintext.
        assert_eq!(
            hex::encode(&packet[head..head + plain.len()]),
            hex::encode(&plain),
            "{}",
            c.name
        );
        let inner = head..head + plain.len() - 2 - pad_len;
        if nh == 4 {
            assert_eq!(r, Ok(inner), "{}", c.name);
            assert_eq!(inb.counters().packets_in, 1);
        } else {
            // The draft's packets carry next header 1, which tunnel mode refuses.
            assert_eq!(r, Err(EspError::NextHeader(nh)), "{}", c.name);
            assert_eq!(inb.counters().next_header, 1);
        }
        assert_eq!(inb.window().top(), c.seq, "{}", c.name);
        // The same packet again is a replay, caught before decryption.
        let mut again = unhex(c.packet);
        assert_eq!(inb.decapsulate(&mut again), Err(EspError::Replayed(c.seq)));
        assert_eq!(again, unhex(c.packet), "untouched");
    }
}

/// Packets sealed with one AEAD backend open with every other, for each AEAD and ESN mode.
#[test]
fn backends_interoperate() {
    for c in CASES {
        for &a in Backend::ALL {
            for &b in Backend::ALL {
                let mut out =
                    Outbound::with_cipher(c.spi, c.esn, cipher(c, a), &mut SeededRng::new(1))
                        .unwrap();
                let mut inb = Inbound::with_cipher(c.spi, c.esn, cipher(c, b)).unwrap();
                for len in [20usize, 40, 1400] {
                    let mut inner = vec![0x5au8; len];
                    inner[0] = 0x45;
                    let mut buf = vec![0u8; out.encapsulated_len(len)];
                    let n = out.encapsulate(&inner, &mut buf).unwrap();
                    let r = inb.decapsulate(&mut buf[..n]).unwrap();
                    assert_eq!(&buf[r], &inner[..], "{} {a:?} -> {b:?} {len}", c.name);
                }
                assert_eq!(inb.counters().packets_in, 3);
            }
        }
    }
}
