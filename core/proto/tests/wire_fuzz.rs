//! Property tests: no input, however malformed, makes the wire parsers panic; mutations of a
//! valid message are either rejected or parse to something that writes back consistently.

use proptest::collection::vec;
use proptest::prelude::*;
use roam_proto::wire::eap::EapMessage;
use roam_proto::wire::message::write_message;
use roam_proto::wire::natt::{classify, NattDatagram};
use roam_proto::wire::*;

/// A small valid message to mutate: SA, KE, Nonce, Notify, TSi, CP, Delete.
fn seed() -> Vec<u8> {
    let sa = Payload::Sa(vec![Proposal {
        number: 1,
        protocol: ProtocolId::ESP,
        spi: vec![1, 2, 3, 4],
        transforms: vec![
            Transform {
                kind: TransformType::ENCR,
                id: 20,
                key_length: Some(256),
            },
            Transform {
                kind: TransformType::ESN,
                id: 0,
                key_length: None,
            },
        ],
    }]);
    let ts = Payload::TsI(vec![TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start_addr: "192.0.2.0".parse().unwrap(),
        end_addr: "192.0.2.255".parse().unwrap(),
    }]);
    let payloads = [
        sa,
        Payload::Ke {
            group: DhGroup::CURVE25519,
            data: &[9; 32],
        },
        Payload::Nonce(&[7; 32]),
        Payload::Notify(Notify {
            protocol: ProtocolId::NONE,
            spi: &[],
            kind: NotifyType::COOKIE,
            data: &[1, 2],
        }),
        ts,
        Payload::Cp {
            cfg_type: CfgType::CFG_REPLY,
            attrs: vec![CfgAttribute {
                kind: CfgAttr::INTERNAL_IP4_ADDRESS,
                value: &[192, 0, 2, 9],
            }],
        },
        Payload::Delete(Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: &[1, 2, 3, 4],
        }),
    ];
    let h = Header {
        spi_i: 1,
        spi_r: 2,
        next_payload: PayloadType::NONE,
        version: 0x20,
        exchange: ExchangeType::CREATE_CHILD_SA,
        flags: 0,
        message_id: 3,
        length: 0,
    };
    let mut out = Vec::new();
    write_message(&h, &payloads, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn message_parse_never_panics(buf in vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&buf);
    }

    #[test]
    fn message_parse_never_panics_on_plausible_headers(
        mut buf in vec(any::<u8>(), 28..600),
        next in prop_oneof![Just(0u8), 33u8..=48, Just(53u8), any::<u8>()],
    ) {
        // Make the header valid so the chain parser gets exercised.
        let len = buf.len() as u32;
        buf[16] = next;
        buf[17] = 0x20;
        buf[24..28].copy_from_slice(&len.to_be_bytes());
        if let Ok(m) = Message::parse(&buf) {
            prop_assert_eq!(m.header.length, len);
        }
    }

    #[test]
    fn parse_payloads_never_panics(
        first in any::<u8>(),
        buf in vec(any::<u8>(), 0..600),
        offset in any::<usize>(),
    ) {
        if let Ok(chain) = parse_payloads(PayloadType(first), &buf, offset) {
            prop_assert!(chain.len() <= MAX_PAYLOADS);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = seed();
        for (i, b) in edits {
            let at = i.index(buf.len());
            buf[at] = b;
        }
        let _ = Message::parse(&buf);
        let chain_len = buf.len() - HEADER_LEN;
        let end = HEADER_LEN + cut.index(chain_len + 1);
        // Whatever parses writes back to a chain that parses to the same payloads (but for an
        // SK or SKF payload, which `write_payloads` leaves to the sealing code).
        if let Ok(chain) = parse_payloads(PayloadType(buf[16]), &buf[HEADER_LEN..end], HEADER_LEN) {
            let mut out = Vec::new();
            let first = write_payloads(&chain, &mut out);
            let plain: Vec<_> = chain
                .iter()
                .filter(|p| !matches!(p, Payload::Sk(_) | Payload::Skf(_)))
                .cloned()
                .collect();
            prop_assert_eq!(parse_payloads(first, &out, HEADER_LEN).unwrap(), plain);
        }
    }

    #[test]
    fn eap_parse_never_panics(buf in vec(any::<u8>(), 0..300)) {
        if let Ok(m) = EapMessage::parse(&buf) {
            let mut out = Vec::new();
            m.write(&mut out);
            prop_assert_eq!(out, buf);
        }
    }

    #[test]
    fn classify_never_panics(buf in vec(any::<u8>(), 0..64)) {
        match classify(&buf) {
            NattDatagram::Ike(ike) => prop_assert_eq!(ike.len() + 4, buf.len()),
            NattDatagram::Esp(esp) => prop_assert!(esp.len() >= 8 && esp[..4] != [0; 4]),
            NattDatagram::Keepalive => prop_assert_eq!(buf, vec![0xff]),
            NattDatagram::Invalid => {}
        }
    }
}

#[test]
fn seed_is_valid() {
    let buf = seed();
    let m = Message::parse(&buf).unwrap();
    assert_eq!(m.payloads.len(), 7);
}
