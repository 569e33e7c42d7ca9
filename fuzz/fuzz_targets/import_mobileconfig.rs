//! The Apple `.mobileconfig` importer (XML, binary and CMS-signed plists) on arbitrary bytes, with a PKCS#12
//! password given so embedded bundles are decrypted too; the result rendered as TOML and every
//! finding and error formatted. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_runtime::import::{self, ImportOptions, Kind};
use std::path::Path;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let options = ImportOptions {
        p12_password: Some(Zeroizing::new("p12-aes-pw".to_string())),
    };
    match import::import(data, Kind::Mobileconfig, &options) {
        Ok(profile) => {
            for f in profile.findings.iter() {
                let _ = f.to_string();
            }
            let rendered = profile.render("fuzz", Path::new("/nonexistent"));
            let _ = rendered.toml.len();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
