//! The UniFFI binding generator as a workspace binary (`cargo run -p roam-ffi --features
//! bindgen-cli --bin uniffi-bindgen -- generate ...`), so the generator's version is the
//! library's: scripts/gen-bindings.sh runs it in library mode.

fn main() {
    uniffi::uniffi_bindgen_main()
}
