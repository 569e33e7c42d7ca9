//! A realistic IKE_SA_INIT request, built with `write_message` and parsed back, with its
//! layout checked byte by byte where RFC 7296 fixes it.

use roam_proto::wire::message::write_message;
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};
use roam_proto::wire::*;

fn t(kind: TransformType, id: u16) -> Transform {
    Transform {
        kind,
        id,
        key_length: None,
    }
}

fn proposals() -> Vec<Proposal> {
    vec![
        Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform {
                    kind: TransformType::ENCR,
                    id: EncrId::AES_GCM_16.0,
                    key_length: Some(256),
                },
                t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
                t(TransformType::DH, DhGroup::CURVE25519.0),
                t(TransformType::DH, DhGroup::ECP_256.0),
            ],
        },
        Proposal {
            number: 2,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform {
                    kind: TransformType::ENCR,
                    id: EncrId::AES_CBC.0,
                    key_length: Some(256),
                },
                t(TransformType::INTEG, IntegId::HMAC_SHA2_256_128.0),
                t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
                t(TransformType::DH, DhGroup::CURVE25519.0),
            ],
        },
    ]
}

fn notify<'a>(kind: NotifyType, data: &'a [u8]) -> Payload<'a> {
    Payload::Notify(Notify {
        protocol: ProtocolId::NONE,
        spi: &[],
        kind,
        data,
    })
}

const KE: [u8; 32] = [0x42; 32];
const NONCE: [u8; 32] = [0x17; 32];
const NATD_SRC: [u8; 20] = [0xa1; 20];
const NATD_DST: [u8; 20] = [0xb2; 20];
/// SHA2-256, SHA2-384, SHA2-512, Identity (RFC 7427 §4).
const HASHES: [u8; 8] = [0, 2, 0, 3, 0, 4, 0, 5];

fn payloads() -> Vec<Payload<'static>> {
    vec![
        Payload::Sa(proposals()),
        Payload::Ke {
            group: DhGroup::CURVE25519,
            data: &KE,
        },
        Payload::Nonce(&NONCE),
        notify(NotifyType::NAT_DETECTION_SOURCE_IP, &NATD_SRC),
        notify(NotifyType::NAT_DETECTION_DESTINATION_IP, &NATD_DST),
        notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, &[]),
        notify(NotifyType::SIGNATURE_HASH_ALGORITHMS, &HASHES),
    ]
}

fn header() -> Header {
    Header {
        spi_i: 0x8a3c_15d2_0f6e_9b41,
        spi_r: 0,
        next_payload: PayloadType::NONE,
        version: 0x20,
        exchange: ExchangeType::IKE_SA_INIT,
        flags: flags::INITIATOR,
        message_id: 0,
        length: 0,
    }
}

fn build() -> Vec<u8> {
    let mut out = Vec::new();
    write_message(&header(), &payloads(), &mut out);
    out
}

#[test]
fn layout_matches_rfc_7296() {
    let b = build();
    // 28 header + SA (4 + 2 * 44) + KE (8 + 32) + Nonce (4 + 32) + 2 NATD (8 + 20)
    // + fragmentation (8) + hash algorithms (8 + 8).
    assert_eq!(b.len(), 28 + 92 + 40 + 36 + 56 + 8 + 16);
    assert_eq!(
        &b[..28],
        &[
            0x8a, 0x3c, 0x15, 0xd2, 0x0f, 0x6e, 0x9b, 0x41, 0, 0, 0, 0, 0, 0, 0, 0, // SPIs
            33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0x01, 0x14, // SA, v2.0, SA_INIT, I, id, 276
        ]
    );
    // SA generic header and the first proposal's substructure header and first transform.
    assert_eq!(&b[28..32], &[34, 0, 0, 92]);
    assert_eq!(&b[32..40], &[2, 0, 0, 44, 1, 1, 0, 4]);
    assert_eq!(&b[40..52], &[3, 0, 0, 12, 1, 0, 0, 20, 0x80, 14, 1, 0]);
    // The last transform of proposal 1, then proposal 2 (marked last).
    assert_eq!(&b[68..76], &[0, 0, 0, 8, 4, 0, 0, 19]);
    assert_eq!(&b[76..84], &[0, 0, 0, 44, 2, 1, 0, 4]);
    // KE: next Nonce, group 31.
    assert_eq!(&b[120..128], &[40, 0, 0, 40, 0, 31, 0, 0]);
    // Nonce: next Notify.
    assert_eq!(&b[160..164], &[41, 0, 0, 36]);
    // NATD source: protocol 0, SPI size 0, type 16388.
    assert_eq!(&b[196..204], &[41, 0, 0, 28, 0, 0, 0x40, 0x04]);
    // Fragmentation supported, then the last payload (next = NONE).
    assert_eq!(&b[252..260], &[41, 0, 0, 8, 0, 0, 0x40, 0x2e]);
    assert_eq!(&b[260..268], &[0, 0, 0, 16, 0, 0, 0x40, 0x2f]);
    assert_eq!(&b[268..], &HASHES);
}

#[test]
fn parses_back() {
    let b = build();
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.header.exchange, ExchangeType::IKE_SA_INIT);
    assert_eq!(m.header.next_payload, PayloadType::SA);
    assert_eq!(m.header.length as usize, b.len());
    assert!(m.header.is_initiator() && !m.header.is_response());
    assert_eq!(m.payloads, payloads());
    assert!(m.encrypted().is_none() && m.fragment().is_none());
    let notifies: Vec<NotifyType> = m
        .payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        notifies,
        [
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
        ]
    );
}

#[test]
fn survives_nat_t_framing() {
    let b = build();
    let mut d = NON_ESP_MARKER.to_vec();
    d.extend_from_slice(&b);
    match classify(&d) {
        NattDatagram::Ike(ike) => assert_eq!(Message::parse(ike).unwrap().payloads, payloads()),
        other => panic!("classified as {other:?}"),
    }
}

#[test]
fn every_truncation_is_rejected() {
    let b = build();
    for cut in 0..b.len() {
        let mut short = b[..cut].to_vec();
        if short.len() >= HEADER_LEN {
            // Keep the header length consistent so the chain parser sees the truncation.
            let len = short.len() as u32;
            short[24..28].copy_from_slice(&len.to_be_bytes());
        }
        assert!(Message::parse(&short).is_err(), "cut at {cut} parsed");
    }
}
