//! The TOML profile parser on arbitrary text. Relative file names resolve against the test
//! PKI directory, so certificate and key parsing are reached too. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// 2030-03-17, inside the validity of the test PKI.
const NOW: u64 = 1_900_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Absolute paths could name a FIFO or a device and block: not what this target tests.
    if text.contains('/') || text.contains('\\') {
        return;
    }
    let base = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/proto/tests/data/pki"
    ));
    if let Err(e) = roam_runtime::profile::from_str(text, base, Some(NOW)) {
        // Error messages are built from peer-chosen text: formatting must not panic either.
        let _ = e.to_string();
    }
});
