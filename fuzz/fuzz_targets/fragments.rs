//! IKE fragment reassembly (RFC 7383) fed a hostile sequence of SKF messages: raw datagrams,
//! and fragments sealed with the right keys but hostile numbers, totals, message IDs and
//! sizes. Never panics; a completed message never exceeds the reassembly cap.
//!
//! Input: records (see `roam_fuzz::records`); each starts with a kind byte. Kind even: the
//! rest is a datagram. Kind odd: [message id][number][total][first inner][plaintext...].
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_fuzz::{records, sk_cipher};
use roam_proto::ike::protect::{Reassembly, MAX_REASSEMBLED};
use roam_proto::rng::SeededRng;
use roam_proto::wire::header::Header;
use roam_proto::wire::message::{write_skf_prefix, Message};
use roam_proto::wire::{ExchangeType, PayloadType};

fn sealed(cipher: &roam_proto::crypto::sk::SkCipher, rng: &mut SeededRng, r: &[u8]) -> Vec<u8> {
    let [id, number, total, first, plain @ ..] = r else {
        return r.to_vec();
    };
    let header = Header {
        spi_i: 0x1122_3344_5566_7788,
        spi_r: 0x99aa_bbcc_ddee_ff00,
        next_payload: PayloadType::SKF,
        version: 0x20,
        exchange: ExchangeType::IKE_AUTH,
        flags: 0x20,
        message_id: u32::from(*id),
        length: 0,
    };
    let mut msg = Vec::new();
    write_skf_prefix(
        &header,
        PayloadType(*first),
        u16::from(*number),
        u16::from(*total),
        cipher.sealed_len(plain.len()),
        &mut msg,
    );
    let aad = msg.clone();
    cipher.seal(rng, &aad, plain, &mut msg);
    msg
}

fuzz_target!(|data: &[u8]| {
    let Some((pick, data)) = data.split_first() else {
        return;
    };
    let cipher = sk_cipher(*pick);
    let mut rng = SeededRng::new(7);
    let mut reassembly = Reassembly::default();
    for r in records(data, 256) {
        let Some((kind, body)) = r.split_first() else {
            continue;
        };
        let dgram = if kind % 2 == 0 {
            body.to_vec()
        } else {
            sealed(&cipher, &mut rng, body)
        };
        let Ok(msg) = Message::parse(&dgram) else {
            continue;
        };
        if let Ok(Some(whole)) = reassembly.add(&cipher, &msg) {
            assert!(whole.plain.len() <= MAX_REASSEMBLED);
            let _ = whole.payloads();
        }
    }
});
