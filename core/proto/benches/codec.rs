//! The IKE codec on a typical IKE_AUTH request: building the plaintext payload chain (IDi,
//! INITIAL_CONTACT, IDr, AUTH, CP request, SA with three ESP proposals, TSi, TSr and
//! MOBIKE_SUPPORTED: what the client sends) as a whole message, parsing it back, and parsing
//! a captured encrypted IKE_AUTH request (header and SK payload) from strongSwan's exchange.
//!
//! Run: `cargo bench -p roam-proto --bench codec -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use roam_proto::ike::child::ts_any;
use roam_proto::wire::message::write_message;
use roam_proto::wire::*;

fn esp_proposal(number: u8, encr: EncrId, bits: Option<u16>, integ: Option<IntegId>) -> Proposal {
    let mut transforms = vec![Transform {
        kind: TransformType::ENCR,
        id: encr.0,
        key_length: bits,
    }];
    if let Some(i) = integ {
        transforms.push(Transform {
            kind: TransformType::INTEG,
            id: i.0,
            key_length: None,
        });
    }
    for esn in [1u16, 0] {
        transforms.push(Transform {
            kind: TransformType::ESN,
            id: esn,
            key_length: None,
        });
    }
    Proposal {
        number,
        protocol: ProtocolId::ESP,
        spi: vec![0xc0, 0xff, 0xee, 0x01],
        transforms,
    }
}

const AUTH: [u8; 48] = [0x5a; 48];
const ZERO4: [u8; 0] = [];

fn payloads() -> Vec<Payload<'static>> {
    let attr = |kind| CfgAttribute {
        kind,
        value: &ZERO4,
    };
    vec![
        Payload::IdI(Id {
            id_type: IdType::ID_RFC822_ADDR,
            data: b"client@example.org",
        }),
        Payload::notify(NotifyType::INITIAL_CONTACT, &[]),
        Payload::IdR(Id {
            id_type: IdType::ID_FQDN,
            data: b"vpn.example.org",
        }),
        Payload::Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: &AUTH,
        },
        Payload::Cp {
            cfg_type: CfgType::CFG_REQUEST,
            attrs: vec![
                attr(CfgAttr::INTERNAL_IP4_ADDRESS),
                attr(CfgAttr::INTERNAL_IP4_DNS),
                attr(CfgAttr::INTERNAL_IP6_ADDRESS),
                attr(CfgAttr::INTERNAL_IP6_DNS),
            ],
        },
        Payload::Sa(vec![
            esp_proposal(1, EncrId::AES_GCM_16, Some(256), None),
            esp_proposal(2, EncrId::CHACHA20_POLY1305, None, None),
            esp_proposal(
                3,
                EncrId::AES_CBC,
                Some(256),
                Some(IntegId::HMAC_SHA2_256_128),
            ),
        ]),
        Payload::TsI(vec![ts_any(false), ts_any(true)]),
        Payload::TsR(vec![ts_any(false), ts_any(true)]),
        Payload::notify(NotifyType::MOBIKE_SUPPORTED, &[]),
    ]
}

fn bench(c: &mut Criterion) {
    let header = Header::new(
        0x1122_3344_5566_7788,
        0x99aa_bbcc_ddee_ff00,
        ExchangeType::IKE_AUTH,
        0x08,
        1,
    );
    let payloads = payloads();
    let mut out = Vec::with_capacity(2048);
    write_message(&header, &payloads, &mut out);
    let built = out.clone();
    assert_eq!(Message::parse(&built).unwrap().payloads, payloads);

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(built.len() as u64));
    g.bench_function("build ike_auth request (plaintext chain)", |b| {
        b.iter(|| {
            out.clear();
            write_message(&header, black_box(&payloads), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("parse ike_auth request (plaintext chain)", |b| {
        b.iter(|| black_box(Message::parse(black_box(&built)).unwrap().payloads.len()))
    });
    let captured = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/psk/03-ike_auth-req.bin"),
    )
    .unwrap();
    g.throughput(Throughput::Bytes(captured.len() as u64));
    g.bench_function("parse captured ike_auth request (header + SK)", |b| {
        b.iter(|| {
            black_box(
                Message::parse(black_box(&captured))
                    .unwrap()
                    .encrypted()
                    .is_some(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
