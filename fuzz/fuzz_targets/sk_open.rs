//! SK payload decryption with valid keys: hostile ciphertext must be rejected with an error
//! (never a panic), and a plaintext sealed with the same keys must open to itself and its
//! inner chain parse without panicking.
//!
//! Input: [alg pick][mode][first inner payload][rest...]. Mode even: `rest` is the SK body
//! (IV || ciphertext || ICV) of an IKE_AUTH message, and also parsed as a whole message.
//! Mode odd: `rest` is a plaintext to seal and open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_fuzz::sk_cipher;
use roam_proto::ike::protect;
use roam_proto::rng::SeededRng;
use roam_proto::wire::header::Header;
use roam_proto::wire::message::{write_sk_prefix, Message};
use roam_proto::wire::{ExchangeType, PayloadType};

fn header() -> Header {
    Header {
        spi_i: 0x1122_3344_5566_7788,
        spi_r: 0x99aa_bbcc_ddee_ff00,
        next_payload: PayloadType::SK,
        version: 0x20,
        exchange: ExchangeType::IKE_AUTH,
        flags: 0x20,
        message_id: 1,
        length: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, mode, first, rest @ ..] = data else {
        return;
    };
    let cipher = sk_cipher(*pick);
    let first = PayloadType(*first);
    if mode % 2 == 0 {
        let mut msg = Vec::new();
        write_sk_prefix(&header(), first, rest.len(), &mut msg);
        let aad_len = msg.len();
        msg.extend_from_slice(rest);
        let _ = cipher.open(&msg[..aad_len], rest);
        if let Ok(m) = Message::parse(&msg) {
            if let Ok(opened) = protect::open(&cipher, &m) {
                let _ = opened.payloads();
            }
        }
        if let Ok(m) = Message::parse(rest) {
            if let Ok(opened) = protect::open(&cipher, &m) {
                let _ = opened.payloads();
            }
        }
    } else if rest.len() <= 60_000 {
        let mut rng = SeededRng::new(u64::from(*pick));
        let mut msg = Vec::new();
        write_sk_prefix(&header(), first, cipher.sealed_len(rest.len()), &mut msg);
        let aad_len = msg.len();
        let aad = msg.clone();
        cipher.seal(&mut rng, &aad, rest, &mut msg);
        assert_eq!(msg.len(), aad_len + cipher.sealed_len(rest.len()));
        let m = Message::parse(&msg).expect("a sealed message parses");
        let opened = protect::open(&cipher, &m).expect("a sealed message opens");
        assert_eq!(opened.plain, rest, "open(seal(p)) != p");
        assert_eq!(opened.first, first);
        let _ = opened.payloads();
    }
});
