//! Encapsulation and decapsulation allocate nothing per packet, for every transform and AEAD
//! backend: a counting global allocator watches a loop of packets (including drops). It
//! counts the calling thread's allocations only, so the test harness's own threads (which
//! allocate at times of their choosing) cannot make it fail.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use roam_proto::crypto::aead::Backend;
use roam_proto::crypto::proposal::Selected;
use roam_proto::crypto::sk::SkCipher;
use roam_proto::crypto::Secret;
use roam_proto::esp::EspSa;
use roam_proto::ike::child::ChildSa;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{EncrId, IntegId, ProtocolId};

struct Counting;

thread_local! {
    // Const-initialized with no destructor: using it inside the allocator cannot allocate.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_packet() {
    let algs = [
        (EncrId::AES_GCM_16, Some(256), IntegId::NONE),
        (EncrId::CHACHA20_POLY1305, None, IntegId::NONE),
        (EncrId::AES_CBC, Some(128), IntegId::HMAC_SHA2_384_192),
    ];
    let runs = algs
        .iter()
        .flat_map(|&a| Backend::ALL.iter().map(move |&b| (a, b)));
    for ((encr, key_bits, integ), backend) in runs {
        for esn in [false, true] {
            let el = SkCipher::encr_key_len(encr, key_bits).unwrap();
            let il = SkCipher::integ_key_len(integ).unwrap();
            let child = ChildSa {
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
                spi_in: 0x4242_4242,
                spi_out: 0x4242_4242,
                encr_in: Secret::new(vec![3; el]),
                integ_in: Secret::new(vec![4; il]),
                encr_out: Secret::new(vec![3; el]),
                integ_out: Secret::new(vec![4; il]),
                ts_local: vec![],
                ts_remote: vec![],
            };
            let mut sa = EspSa::with_backend(&child, backend, &mut SeededRng::new(1)).unwrap();
            let mut inner = vec![0x11u8; 1400];
            inner[0] = 0x45;
            let mut buf = vec![0u8; 1600];
            let mut replay = vec![0u8; 1600];

            let before = allocations();
            for i in 0..200 {
                let n = sa.encapsulate(&inner, &mut buf).unwrap();
                replay[..n].copy_from_slice(&buf[..n]);
                let r = sa.decapsulate(&mut buf[..n]).unwrap();
                assert_eq!(r.len(), inner.len());
                // Drops allocate nothing either: a replay, and a corrupted packet.
                assert!(sa.decapsulate(&mut replay[..n]).is_err());
                let n2 = sa.encapsulate(&inner, &mut buf).unwrap();
                buf[n2 - 1 - i % 8] ^= 1;
                assert!(sa.decapsulate(&mut buf[..n2]).is_err());
            }
            let after = allocations();
            assert_eq!(
                after - before,
                0,
                "{} {backend:?} esn {esn}",
                sa.outbound.transform()
            );
        }
    }
}
