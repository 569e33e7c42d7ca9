//! The strongSwan `.sswan` importer (JSON) on arbitrary bytes (`roam_fuzz::import_once`). Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roam_runtime::import::Kind;

fuzz_target!(|data: &[u8]| roam_fuzz::import_once(data, Kind::Sswan));
