//! Certificate parsing (PEM or DER, bundles) and chain validation against the fixed test CA
//! (core/proto/tests/data/pki/root-ca.crt). Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_proto::crypto::cert::{verify_chain, Certificate};
use std::sync::OnceLock;

const NOW: u64 = 1_900_000_000;

fn anchors() -> &'static [Certificate] {
    static CA: OnceLock<Vec<Certificate>> = OnceLock::new();
    CA.get_or_init(|| {
        let pem = include_bytes!("../../core/proto/tests/data/pki/root-ca.crt");
        Certificate::parse_pem_or_der(pem).expect("the test CA parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = Certificate::from_der(data);
    let Ok(certs) = Certificate::parse_pem_or_der(data) else {
        return;
    };
    for c in &certs {
        let _ = format!("{c:?}");
        let _ = c.subject_identity().to_string();
        let _ = c.public_key();
        let _ = c.validity();
        let _ = c.is_ca();
    }
    if let Some((leaf, rest)) = certs.split_first() {
        let _ = verify_chain(leaf, rest, anchors(), Some(NOW));
        let _ = verify_chain(leaf, rest, anchors(), None);
        // The input's own certificates as anchors: self-signed and cross chains.
        let _ = verify_chain(leaf, &[], &certs, Some(NOW));
    }
});
