//! ESP decapsulation with a fixed SA and hostile datagrams: never panics, and the SA still
//! takes a fresh authentic packet afterwards. Records of kind odd are encapsulated by the SA
//! first (authentic packets with hostile inner contents), then decapsulated.
//!
//! Input: [alg pick][esn][records...], each record [kind][bytes...].
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_fuzz::{esp_sa, records};
use roam_proto::esp::{peek_spi, udp};

const SPI: u32 = 0x0bad_cafe;

fuzz_target!(|data: &[u8]| {
    let [pick, esn, data @ ..] = data else {
        return;
    };
    let mut sa = esp_sa(*pick, SPI, esn % 2 == 1);
    for r in records(data, 64) {
        let Some((kind, body)) = r.split_first() else {
            continue;
        };
        let mut packet = if kind % 2 == 0 {
            body.to_vec()
        } else {
            let mut buf = vec![0u8; sa.outbound.encapsulated_len(body.len())];
            if sa.encapsulate(body, &mut buf).is_err() {
                continue;
            }
            buf
        };
        let _ = peek_spi(&packet);
        let _ = udp::esp_payload(&packet);
        let len = packet.len();
        if let Ok(range) = sa.decapsulate(&mut packet) {
            assert!(range.start <= range.end && range.end <= len);
        }
    }
    // Still alive: a fresh packet goes through.
    let inner: Vec<u8> = std::iter::once(0x45).chain(1..60u8).collect();
    let mut buf = vec![0u8; sa.outbound.encapsulated_len(inner.len())];
    sa.encapsulate(&inner, &mut buf).expect("encapsulate");
    let range = sa
        .decapsulate(&mut buf)
        .expect("a fresh packet after hostile ones");
    assert_eq!(buf.get(range), Some(&inner[..]));
});
