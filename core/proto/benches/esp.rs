//! ESP encapsulation and decapsulation beside the raw AEAD of the same backend, algorithm and
//! size, in one run: `raw seal` / `raw open` call the backend crate directly (aes-gcm and
//! chacha20poly1305, or ring) on `size` bytes; `esp encapsulate` copies an inner packet of
//! `size` bytes into the ESP buffer and seals it (what `Session::handle_packet` does),
//! `esp encapsulate in place` seals an inner packet already at `Outbound::headroom()` (no
//! copy), `esp decapsulate` checks the replay window, opens and strips the trailer in place.
//! Every figure is throughput of inner bytes. `scripts/bench-table.py` prints the ESP/raw
//! ratios from criterion's results.
//!
//! Run: `cargo bench -p roam-proto --features ring --bench esp -- --warm-up-time 1
//! --measurement-time 3` (without `--features ring` only RustCrypto is measured).
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use roam_proto::crypto::aead::Backend;
use roam_proto::crypto::proposal::Selected;
use roam_proto::crypto::sk::SkCipher;
use roam_proto::crypto::Secret;
use roam_proto::esp::EspSa;
use roam_proto::ike::child::ChildSa;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{EncrId, IntegId, ProtocolId};

const SIZES: [usize; 4] = [64, 512, 1400, 9000];
const AAD: [u8; 8] = [1, 2, 3, 4, 0, 0, 0, 1];

/// The raw AEAD of one backend: seal and open in place, tag apart, 12-byte nonce.
trait Raw {
    fn seal(&self, nonce: [u8; 12], buf: &mut [u8]) -> [u8; 16];
    fn open(&self, nonce: [u8; 12], buf: &mut [u8], tag: [u8; 16]) -> bool;
}

mod rustcrypto {
    use aes_gcm::aead::consts::{U12, U16};
    use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};

    pub struct Raw<A>(pub A);

    impl<A: AeadInOut<NonceSize = U12, TagSize = U16>> super::Raw for Raw<A> {
        fn seal(&self, nonce: [u8; 12], buf: &mut [u8]) -> [u8; 16] {
            let n = Nonce::<A>::from(nonce);
            self.0
                .encrypt_inout_detached(&n, &super::AAD, buf.into())
                .unwrap()
                .into()
        }
        fn open(&self, nonce: [u8; 12], buf: &mut [u8], tag: [u8; 16]) -> bool {
            let n = Nonce::<A>::from(nonce);
            self.0
                .decrypt_inout_detached(&n, &super::AAD, buf.into(), &Tag::<A>::from(tag))
                .is_ok()
        }
    }

    pub fn new<A: AeadInOut<NonceSize = U12, TagSize = U16> + KeyInit + 'static>(
        key: &[u8],
    ) -> Box<dyn super::Raw> {
        Box::new(Raw(A::new_from_slice(key).unwrap()))
    }
}

#[cfg(feature = "ring")]
mod ring_raw {
    use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey};

    pub struct Raw(pub LessSafeKey);

    impl super::Raw for Raw {
        fn seal(&self, nonce: [u8; 12], buf: &mut [u8]) -> [u8; 16] {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(super::AAD),
                    buf,
                )
                .unwrap();
            tag.as_ref().try_into().unwrap()
        }
        fn open(&self, nonce: [u8; 12], buf: &mut [u8], tag: [u8; 16]) -> bool {
            self.0
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(super::AAD),
                    Tag::from(tag),
                    buf,
                    0..,
                )
                .is_ok()
        }
    }

    pub fn new(alg: &'static ring::aead::Algorithm, key: &[u8]) -> Box<dyn super::Raw> {
        Box::new(Raw(LessSafeKey::new(UnboundKey::new(alg, key).unwrap())))
    }
}

fn raw(backend: Backend, encr: EncrId, key: &[u8]) -> Box<dyn Raw> {
    use aes_gcm::aead::consts::U12;
    match (backend, encr) {
        (Backend::RustCrypto, EncrId::CHACHA20_POLY1305) => {
            rustcrypto::new::<chacha20poly1305::ChaCha20Poly1305>(key)
        }
        (Backend::RustCrypto, _) => rustcrypto::new::<aes_gcm::AesGcm<aes::Aes256, U12>>(key),
        #[cfg(feature = "ring")]
        (Backend::Ring, EncrId::CHACHA20_POLY1305) => {
            ring_raw::new(&ring::aead::CHACHA20_POLY1305, key)
        }
        #[cfg(feature = "ring")]
        (Backend::Ring, _) => ring_raw::new(&ring::aead::AES_256_GCM, key),
    }
}

/// An SA that sends to itself, so every encapsulated packet decapsulates.
fn loopback(encr: EncrId, key_bits: Option<u16>, backend: Backend) -> EspSa {
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
            additional: Default::default(),
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
    EspSa::with_backend(&child, backend, &mut SeededRng::new(1)).unwrap()
}

fn inner(len: usize) -> Vec<u8> {
    let mut p = vec![0xabu8; len];
    p[0] = 0x45;
    p
}

fn nonce(n: u64) -> [u8; 12] {
    let mut x = [7u8; 12];
    x[4..].copy_from_slice(&n.to_be_bytes());
    x
}

fn bench_one(c: &mut Criterion, backend: Backend, name: &str, encr: EncrId, bits: Option<u16>) {
    let mut g = c.benchmark_group(format!("esp_{name}_{}", backend.name()));
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));

        let key_len = SkCipher::encr_key_len(encr, bits).unwrap() - 4;
        let aead = raw(backend, encr, &vec![7u8; key_len]);
        let mut buf = vec![0u8; size];
        let mut n = 0u64;
        g.bench_function(BenchmarkId::new("raw seal", size), |b| {
            b.iter(|| {
                n += 1;
                black_box(aead.seal(nonce(n), black_box(&mut buf)))
            })
        });
        let plain = inner(size);
        let mut sealed = plain.clone();
        let tag = aead.seal(nonce(1), &mut sealed);
        g.bench_function(BenchmarkId::new("raw open", size), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| assert!(aead.open(nonce(1), black_box(buf), tag)),
                BatchSize::SmallInput,
            )
        });

        let mut sa = loopback(encr, bits, backend);
        let packet = inner(size);
        let mut out = vec![0u8; sa.outbound.encapsulated_len(size)];
        g.bench_function(BenchmarkId::new("esp encapsulate", size), |b| {
            b.iter(|| black_box(sa.encapsulate(black_box(&packet), &mut out).unwrap()))
        });
        let head = sa.outbound.headroom();
        out[head..head + size].copy_from_slice(&packet);
        g.bench_function(BenchmarkId::new("esp encapsulate in place", size), |b| {
            b.iter(|| {
                // The previous round encrypted the packet: give it its version nibble back.
                out[head] = 0x45;
                black_box(sa.outbound.encapsulate_in_place(&mut out, size).unwrap())
            })
        });

        // Fresh packets from a sender on the same keys: the replay window takes each once.
        let mut sender = loopback(encr, bits, backend);
        let mut receiver = loopback(encr, bits, backend);
        g.bench_function(BenchmarkId::new("esp decapsulate", size), |b| {
            b.iter_batched_ref(
                || {
                    let mut p = vec![0u8; sender.outbound.encapsulated_len(size)];
                    let len = sender.encapsulate(&packet, &mut p).unwrap();
                    p.truncate(len);
                    p
                },
                |p| black_box(receiver.decapsulate(black_box(p)).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn esp(c: &mut Criterion) {
    for &backend in Backend::ALL {
        bench_one(c, backend, "aes256gcm16", EncrId::AES_GCM_16, Some(256));
        bench_one(
            c,
            backend,
            "chacha20poly1305",
            EncrId::CHACHA20_POLY1305,
            None,
        );
    }
}

criterion_group!(benches, esp);
criterion_main!(benches);
