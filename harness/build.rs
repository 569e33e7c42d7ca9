//! Build script of the `roam` command: links it for memory (docs/PERFORMANCE.md, "Memory").
//!
//! - The functions `roam connect` runs (connect, handshake, data path) are listed in
//!   `link/roam.order`, written by `scripts/order-file.sh`. lld places them first, side by
//!   side, so the pages the kernel maps around each fault hold code that runs rather than code
//!   that never does. `ROAM_ORDER_FILE` names another list, or none when empty.
//! - Relative relocations are packed (DT_RELR, glibc 2.36 or later): the loader reads a few KB
//!   at start instead of about 120 KB of RELA entries, which stayed resident.
//!
//! Only for the target whose default linker is lld (x86_64 Linux), in release builds.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=link/roam.order");
    println!("cargo:rerun-if-env-changed=ROAM_ORDER_FILE");
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var("PROFILE").as_deref() != Ok("release")
    {
        return;
    }
    println!("cargo:rustc-link-arg-bin=roam=-Wl,-z,pack-relative-relocs");
    let file = match env::var("ROAM_ORDER_FILE") {
        Ok(path) if path.is_empty() => return,
        Ok(path) => PathBuf::from(path),
        Err(_) => PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
            .join("link/roam.order"),
    };
    if !file.is_file() {
        return;
    }
    // A symbol that is not in this build (another version of a crate) is skipped, not an error.
    println!(
        "cargo:rustc-link-arg-bin=roam=-Wl,--symbol-ordering-file={}",
        file.display()
    );
    println!("cargo:rustc-link-arg-bin=roam=-Wl,--no-warn-symbol-ordering");
}
