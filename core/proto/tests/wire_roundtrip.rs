//! Property tests: every payload chain the writer can produce parses back to itself, and so
//! do whole messages and the SK/SKF prefixes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;
use roam_proto::wire::message::{write_message, write_sk_prefix, write_skf_prefix};
use roam_proto::wire::*;

/// An owned mirror of `Payload`, so strategies can generate the bytes the payload borrows.
#[derive(Clone, Debug)]
enum Owned {
    Sa(Vec<Proposal>),
    Ke(u16, Vec<u8>),
    IdI(u8, Vec<u8>),
    IdR(u8, Vec<u8>),
    Cert(u8, Vec<u8>),
    CertReq(u8, Vec<u8>),
    Auth(u8, Vec<u8>),
    Nonce(Vec<u8>),
    Notify {
        protocol: u8,
        spi: Vec<u8>,
        kind: u16,
        data: Vec<u8>,
    },
    Delete {
        protocol: u8,
        spi_size: u8,
        spis: Vec<u8>,
    },
    Vendor(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    Cp(u8, Vec<(u16, Vec<u8>)>),
    Eap(Vec<u8>),
    Unknown(u8, Vec<u8>),
}

impl Owned {
    fn borrow(&self) -> Payload<'_> {
        match self {
            Owned::Sa(p) => Payload::Sa(p.clone()),
            Owned::Ke(g, d) => Payload::Ke {
                group: DhGroup(*g),
                data: d,
            },
            Owned::IdI(t, d) => Payload::IdI(Id {
                id_type: IdType(*t),
                data: d,
            }),
            Owned::IdR(t, d) => Payload::IdR(Id {
                id_type: IdType(*t),
                data: d,
            }),
            Owned::Cert(e, d) => Payload::Cert {
                encoding: CertEncoding(*e),
                data: d,
            },
            Owned::CertReq(e, d) => Payload::CertReq {
                encoding: CertEncoding(*e),
                data: d,
            },
            Owned::Auth(m, d) => Payload::Auth {
                method: AuthMethod(*m),
                data: d,
            },
            Owned::Nonce(n) => Payload::Nonce(n),
            Owned::Notify {
                protocol,
                spi,
                kind,
                data,
            } => Payload::Notify(Notify {
                protocol: ProtocolId(*protocol),
                spi,
                kind: NotifyType(*kind),
                data,
            }),
            Owned::Delete {
                protocol,
                spi_size,
                spis,
            } => Payload::Delete(Delete {
                protocol: ProtocolId(*protocol),
                spi_size: *spi_size,
                spis,
            }),
            Owned::Vendor(d) => Payload::Vendor(d),
            Owned::TsI(t) => Payload::TsI(t.clone()),
            Owned::TsR(t) => Payload::TsR(t.clone()),
            Owned::Cp(t, attrs) => Payload::Cp {
                cfg_type: CfgType(*t),
                attrs: attrs
                    .iter()
                    .map(|(k, v)| CfgAttribute {
                        kind: CfgAttr(*k),
                        value: v,
                    })
                    .collect(),
            },
            Owned::Eap(d) => Payload::Eap(d),
            Owned::Unknown(k, d) => Payload::Unknown {
                kind: PayloadType(*k),
                data: d,
            },
        }
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        any::<u8>(),
        any::<u16>(),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(k, id, key_length)| Transform {
            kind: TransformType(k),
            id,
            key_length,
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u8>(),
        any::<u8>(),
        prop_oneof![Just(0usize), Just(4), Just(8)],
        vec(transform(), 0..=8),
    )
        .prop_flat_map(|(number, protocol, spi_len, transforms)| {
            vec(any::<u8>(), spi_len).prop_map(move |spi| Proposal {
                number,
                protocol: ProtocolId(protocol),
                spi,
                transforms: transforms.clone(),
            })
        })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    let v4 = (any::<u32>(), any::<u32>())
        .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b))));
    let v6 = (any::<u128>(), any::<u128>())
        .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b))));
    (any::<u8>(), any::<u16>(), any::<u16>(), prop_oneof![v4, v6]).prop_map(
        |(ip_protocol, start_port, end_port, (start_addr, end_addr))| TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        },
    )
}

/// Payload types the parser does not know (so they come back as `Unknown`).
fn unknown_kind() -> impl Strategy<Value = u8> {
    prop_oneof![1u8..=32, 49u8..=52, 54u8..=255]
}

fn delete() -> impl Strategy<Value = Owned> {
    (any::<u8>(), 0u8..=8, 0usize..=6).prop_flat_map(|(protocol, spi_size, count)| {
        let n = if spi_size == 0 {
            0
        } else {
            usize::from(spi_size) * count
        };
        vec(any::<u8>(), n).prop_map(move |spis| Owned::Delete {
            protocol,
            spi_size,
            spis,
        })
    })
}

fn payload() -> impl Strategy<Value = Owned> {
    prop_oneof![
        vec(proposal(), 1..=4).prop_map(Owned::Sa),
        (any::<u16>(), bytes(64)).prop_map(|(g, d)| Owned::Ke(g, d)),
        (any::<u8>(), bytes(32)).prop_map(|(t, d)| Owned::IdI(t, d)),
        (any::<u8>(), bytes(32)).prop_map(|(t, d)| Owned::IdR(t, d)),
        (any::<u8>(), bytes(32)).prop_map(|(e, d)| Owned::Cert(e, d)),
        (any::<u8>(), bytes(32)).prop_map(|(e, d)| Owned::CertReq(e, d)),
        (any::<u8>(), bytes(32)).prop_map(|(m, d)| Owned::Auth(m, d)),
        vec(any::<u8>(), 16..=256).prop_map(Owned::Nonce),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(32)).prop_map(|(protocol, spi, kind, data)| {
            Owned::Notify {
                protocol,
                spi,
                kind,
                data,
            }
        }),
        delete(),
        bytes(32).prop_map(Owned::Vendor),
        vec(selector(), 0..=8).prop_map(Owned::TsI),
        vec(selector(), 0..=8).prop_map(Owned::TsR),
        (any::<u8>(), vec((0u16..0x8000, bytes(16)), 0..=8)).prop_map(|(t, a)| Owned::Cp(t, a)),
        bytes(32).prop_map(Owned::Eap),
        (unknown_kind(), bytes(32)).prop_map(|(k, d)| Owned::Unknown(k, d)),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        0u8..16,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(
            |(spi_i, spi_r, minor, exchange, flags, message_id)| Header {
                spi_i,
                spi_r,
                next_payload: PayloadType::NONE,
                version: 0x20 | minor,
                exchange: ExchangeType(exchange),
                flags,
                message_id,
                length: 0,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn payload_chains_round_trip(owned in vec(payload(), 0..=10), offset in 0usize..1000) {
        let chain: Vec<Payload<'_>> = owned.iter().map(Owned::borrow).collect();
        let mut out = Vec::new();
        let first = write_payloads(&chain, &mut out);
        prop_assert_eq!(first, chain.first().map_or(PayloadType::NONE, Payload::kind));
        let parsed = parse_payloads(first, &out, offset).unwrap();
        prop_assert_eq!(parsed, chain);
    }

    #[test]
    fn messages_round_trip(h in header(), owned in vec(payload(), 0..=6)) {
        let chain: Vec<Payload<'_>> = owned.iter().map(Owned::borrow).collect();
        let mut out = vec![0xaa; 5];
        write_message(&h, &chain, &mut out);
        let m = Message::parse(&out[5..]).unwrap();
        prop_assert_eq!(m.header.length as usize, out.len() - 5);
        prop_assert_eq!(m.header.next_payload, chain.first().map_or(PayloadType::NONE, Payload::kind));
        prop_assert_eq!(Header { next_payload: PayloadType::NONE, length: 0, ..m.header }, h);
        prop_assert_eq!(m.payloads, chain);
        prop_assert_eq!(m.raw, &out[5..]);
    }

    #[test]
    fn sk_prefix_round_trips(h in header(), first in any::<u8>(), body in bytes(300)) {
        let mut out = Vec::new();
        write_sk_prefix(&h, PayloadType(first), body.len(), &mut out);
        let aad = out.len();
        out.extend_from_slice(&body);
        let m = Message::parse(&out).unwrap();
        let e = m.encrypted().unwrap();
        prop_assert_eq!(e.aad_len, aad);
        prop_assert_eq!(e.aad_len, HEADER_LEN + 4);
        prop_assert_eq!(e.first_inner, PayloadType(first));
        prop_assert_eq!(e.body, &body[..]);
    }

    #[test]
    fn skf_prefix_round_trips(
        h in header(),
        first in any::<u8>(),
        (number, total) in (1u16..=u16::MAX).prop_flat_map(|t| (1..=t, Just(t))),
        body in bytes(300),
    ) {
        let mut out = Vec::new();
        write_skf_prefix(&h, PayloadType(first), number, total, body.len(), &mut out);
        prop_assert_eq!(out.len(), HEADER_LEN + 8);
        out.extend_from_slice(&body);
        let m = Message::parse(&out).unwrap();
        let f = m.fragment().unwrap();
        prop_assert_eq!((f.number, f.total, f.aad_len), (number, total, HEADER_LEN + 8));
        let want_first = if number == 1 { PayloadType(first) } else { PayloadType::NONE };
        prop_assert_eq!(f.first_inner, want_first);
        prop_assert_eq!(f.body, &body[..]);
    }

    #[test]
    fn eap_round_trips(
        code in prop_oneof![Just(EapCode::REQUEST), Just(EapCode::RESPONSE)],
        identifier in any::<u8>(),
        t in any::<u8>(),
        data in bytes(300),
    ) {
        let m = eap::EapMessage { code, identifier, eap_type: Some(EapType(t)), data: &data };
        let mut out = Vec::new();
        m.write(&mut out);
        prop_assert_eq!(eap::EapMessage::parse(&out).unwrap(), m);
    }

    #[test]
    fn marked_ike_is_classified_as_ike(ike in vec(any::<u8>(), 28..200)) {
        let mut d = natt::NON_ESP_MARKER.to_vec();
        d.extend_from_slice(&ike);
        prop_assert_eq!(natt::classify(&d), natt::NattDatagram::Ike(&ike));
    }
}
