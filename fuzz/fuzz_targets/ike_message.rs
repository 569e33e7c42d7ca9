//! The IKE message parser and the payload chain parser on arbitrary bytes (with and without
//! the NAT-T non-ESP marker). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_proto::wire::message::Message;
use roam_proto::wire::natt::classify;
use roam_proto::wire::{parse_payloads, PayloadType};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let _ = msg.encrypted();
        let _ = msg.fragment();
        let _ = format!("{msg:?}");
    }
    let _ = classify(data);
    if let Some((first, chain)) = data.split_first() {
        let _ = parse_payloads(PayloadType(*first), chain, 28);
    }
});
