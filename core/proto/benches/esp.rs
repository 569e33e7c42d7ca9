//! ESP cost per 1400-byte packet next to the raw AEAD of the same crate on the same size:
//! `raw seal` / `raw seal+open` are the reference, `esp encapsulate` /
//! `esp encapsulate+decapsulate` are Roam's data plane over it.
//!
//! Quick run: `cargo bench -p roam-proto --bench esp -- --quick`.

use std::hint::black_box;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, Nonce};
use aes_gcm::{AesGcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use roam_proto::crypto::proposal::Selected;
use roam_proto::crypto::sk::SkCipher;
use roam_proto::crypto::Secret;
use roam_proto::esp::EspSa;
use roam_proto::ike::child::ChildSa;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{EncrId, IntegId, ProtocolId};

const LEN: usize = 1400;

/// An SA that sends to itself, so every encapsulated packet decapsulates.
fn loopback(encr: EncrId, key_bits: Option<u16>) -> EspSa {
    let el = SkCipher::encr_key_len(encr, key_bits).unwrap();
    let key = Secret::new((0..el as u8).collect());
    let child = ChildSa {
        selected: Selected {
            protocol: ProtocolId::ESP,
            encr,
            key_bits,
            prf: None,
            integ: IntegId::NONE,
            dh: None,
            esn: true,
        },
        spi_in: 0x1234_5678,
        spi_out: 0x1234_5678,
        encr_in: key.clone(),
        integ_in: Secret::default(),
        encr_out: key,
        integ_out: Secret::default(),
        ts_local: vec![],
        ts_remote: vec![],
    };
    EspSa::new(&child, &mut SeededRng::new(1)).unwrap()
}

fn inner() -> Vec<u8> {
    let mut p = vec![0xabu8; LEN];
    p[0] = 0x45;
    p
}

fn bench_alg<A: AeadInOut + KeyInit>(
    c: &mut Criterion,
    name: &str,
    encr: EncrId,
    bits: Option<u16>,
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(LEN as u64));

    let key_len = SkCipher::encr_key_len(encr, bits).unwrap() - 4;
    let aead = A::new_from_slice(&vec![7u8; key_len]).unwrap();
    let aad = [1u8; 8];
    let mut buf = vec![0u8; LEN];
    let mut n = 0u64;
    g.bench_function("raw seal", |b| {
        b.iter(|| {
            n += 1;
            let mut nonce = Nonce::<A>::default();
            nonce[4..].copy_from_slice(&n.to_be_bytes());
            let tag = aead
                .encrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into())
                .unwrap();
            black_box(tag);
        })
    });
    g.bench_function("raw seal+open", |b| {
        b.iter(|| {
            n += 1;
            let mut nonce = Nonce::<A>::default();
            nonce[4..].copy_from_slice(&n.to_be_bytes());
            let tag = aead
                .encrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into())
                .unwrap();
            aead.decrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into(), &tag)
                .unwrap();
        })
    });

    let mut sa = loopback(encr, bits);
    let packet = inner();
    let mut out = vec![0u8; sa.outbound.encapsulated_len(LEN)];
    g.bench_function("esp encapsulate", |b| {
        b.iter(|| black_box(sa.encapsulate(black_box(&packet), &mut out).unwrap()))
    });
    let mut sa = loopback(encr, bits);
    g.bench_function("esp encapsulate+decapsulate", |b| {
        b.iter(|| {
            let n = sa.encapsulate(black_box(&packet), &mut out).unwrap();
            black_box(sa.decapsulate(&mut out[..n]).unwrap())
        })
    });
    g.finish();
}

fn esp(c: &mut Criterion) {
    bench_alg::<AesGcm<aes::Aes256, U12>>(c, "aes256gcm16", EncrId::AES_GCM_16, Some(256));
    bench_alg::<ChaCha20Poly1305>(c, "chacha20poly1305", EncrId::CHACHA20_POLY1305, None);
}

criterion_group!(benches, esp);
criterion_main!(benches);
