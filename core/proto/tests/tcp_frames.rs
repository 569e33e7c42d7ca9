//! Property tests of the TCP framing (RFC 9329): a stream of frames decodes to the same frames
//! however the stream is split into reads, and no input makes the decoder panic or hold more
//! than one frame.

use proptest::collection::vec;
use proptest::prelude::*;
use roam_proto::wire::natt::NON_ESP_MARKER;
use roam_proto::wire::tcp::{
    encode_frame, encode_ike, FrameDecoder, FrameKind, MAX_FRAME, STREAM_PREFIX,
};

/// A frame to encode: an IKE message (28..600 bytes) or an ESP packet (8..600 bytes, SPI
/// never zero).
fn frame() -> impl Strategy<Value = (bool, Vec<u8>)> {
    prop_oneof![
        vec(any::<u8>(), 28..600).prop_map(|m| (true, m)),
        (1u32.., vec(any::<u8>(), 4..600)).prop_map(|(spi, rest)| {
            let mut p = spi.to_be_bytes().to_vec();
            p.extend(rest);
            (false, p)
        }),
    ]
}

/// The stream the initiator writes: the prefix (when `prefix`) and the frames.
fn stream(frames: &[(bool, Vec<u8>)], prefix: bool) -> Vec<u8> {
    let mut s = if prefix {
        STREAM_PREFIX.to_vec()
    } else {
        Vec::new()
    };
    for (is_ike, body) in frames {
        if *is_ike {
            encode_ike(body, &mut s).unwrap();
        } else {
            encode_frame(body, &mut s).unwrap();
        }
    }
    s
}

/// What a reader gets from `s` read in pieces of the given sizes (cycled).
fn read_in_pieces(s: &[u8], sizes: &[usize], prefix: bool) -> Vec<(FrameKind, Vec<u8>)> {
    let mut d = if prefix {
        FrameDecoder::with_prefix(MAX_FRAME)
    } else {
        FrameDecoder::without_prefix(MAX_FRAME)
    };
    let mut out = Vec::new();
    let mut rest = s;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (piece, tail) = rest.split_at(n);
        d.decode(piece, |k, b| out.push((k, b.to_vec()))).unwrap();
        assert!(d.buffered() <= d.max_frame());
        rest = tail;
    }
    assert!(d.at_boundary());
    out
}

proptest! {
    #[test]
    fn any_split_of_a_stream_decodes_the_same(
        frames in vec(frame(), 0..12),
        sizes in vec(1usize..700, 1..8),
        prefix in any::<bool>(),
    ) {
        let s = stream(&frames, prefix);
        let whole = read_in_pieces(&s, &[s.len().max(1)], prefix);
        let split = read_in_pieces(&s, &sizes, prefix);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole.len(), frames.len());
        for ((is_ike, body), (kind, got)) in frames.iter().zip(&whole) {
            if *is_ike {
                prop_assert_eq!(*kind, FrameKind::Ike);
                prop_assert_eq!(&got[..4], &NON_ESP_MARKER[..]);
                prop_assert_eq!(&got[4..], &body[..]);
            } else {
                prop_assert_eq!(*kind, FrameKind::Esp);
                prop_assert_eq!(got, body);
            }
        }
    }

    #[test]
    fn hostile_streams_never_panic_and_stay_bounded(
        bytes in vec(any::<u8>(), 0..4096),
        sizes in vec(1usize..300, 1..6),
        cap in 40usize..70_000,
        prefix in any::<bool>(),
    ) {
        let mut d = if prefix {
            FrameDecoder::with_prefix(cap)
        } else {
            FrameDecoder::without_prefix(cap)
        };
        let mut rest = &bytes[..];
        let mut i = 0;
        let mut failed = false;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            i += 1;
            let (piece, tail) = rest.split_at(n);
            let r = d.decode(piece, |_, b| assert!(b.len() + 2 <= MAX_FRAME));
            prop_assert!(d.buffered() <= d.max_frame());
            if r.is_err() {
                failed = true;
            } else {
                prop_assert!(!failed, "a failed stream stays failed");
            }
            rest = tail;
        }
    }
}
