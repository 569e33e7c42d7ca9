//! The TCP stream decoder of RFC 9329 fed hostile bytes in hostile pieces: never panics,
//! never holds more than its cap, every frame it yields is one its length field described,
//! and once it fails it stays failed.
//!
//! Input: [mode][cap hi][cap lo][records...], each record [bytes...] (one read of the stream);
//! mode bit 0: the responder's side (the IKETCP prefix first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_fuzz::records;
use roam_proto::wire::tcp::{FrameDecoder, FrameKind, MIN_BODY, MIN_IKE_BODY};

fuzz_target!(|data: &[u8]| {
    let [mode, hi, lo, data @ ..] = data else {
        return;
    };
    let cap = usize::from(u16::from_be_bytes([*hi, *lo]));
    let mut d = if mode % 2 == 1 {
        FrameDecoder::with_prefix(cap)
    } else {
        FrameDecoder::without_prefix(cap)
    };
    let max = d.max_frame();
    let mut failed = false;
    for read in records(data, 256) {
        let r = d.decode(read, |kind, body| {
            assert!(body.len() + 2 <= max);
            match kind {
                FrameKind::Ike => assert!(body.len() >= MIN_IKE_BODY && body[..4] == [0; 4]),
                FrameKind::Esp => assert!(body.len() >= MIN_BODY),
            }
            // The frame is writable in place.
            if let Some(b) = body.first_mut() {
                *b ^= 0xff;
            }
        });
        assert!(d.buffered() <= max);
        match r {
            Ok(()) => assert!(!failed, "a failed stream accepted bytes again"),
            Err(_) => failed = true,
        }
    }
});
