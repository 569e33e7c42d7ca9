//! Shared fixtures of the fuzz targets: fixed keys and ciphers, a virtual-clock epoch, and a
//! splitter that turns one fuzz input into a sequence of datagrams.

use roam_proto::crypto::proposal::Selected;
use roam_proto::crypto::sk::SkCipher;
use roam_proto::crypto::Secret;
use roam_proto::esp::EspSa;
use roam_proto::ike::child::ChildSa;
use roam_proto::rng::SeededRng;
use roam_proto::wire::{EncrId, IntegId, ProtocolId};
use std::sync::OnceLock;
use std::time::Instant;

/// The SK / ESP algorithms the targets pick from with one input byte.
pub const ALGS: [(EncrId, Option<u16>, IntegId); 4] = [
    (EncrId::AES_GCM_16, Some(256), IntegId::NONE),
    (EncrId::CHACHA20_POLY1305, None, IntegId::NONE),
    (EncrId::AES_CBC, Some(128), IntegId::HMAC_SHA2_256_128),
    (EncrId::AES_CBC, Some(256), IntegId::HMAC_SHA2_512_256),
];

/// Deterministic key material of `len` bytes.
fn key(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ salt)
        .collect()
}

/// A fixed SK cipher with known keys for algorithm `pick % ALGS.len()`.
pub fn sk_cipher(pick: u8) -> SkCipher {
    let (encr, bits, integ) = ALGS[usize::from(pick) % ALGS.len()];
    let el = SkCipher::encr_key_len(encr, bits).expect("supported");
    let il = SkCipher::integ_key_len(integ).expect("supported");
    SkCipher::new(encr, bits, integ, &key(el, 0x11), &key(il, 0x77)).expect("valid keys")
}

/// A fixed ESP SA talking to itself (same SPI and keys both ways).
pub fn esp_sa(pick: u8, spi: u32, esn: bool) -> EspSa {
    let (encr, key_bits, integ) = ALGS[usize::from(pick) % ALGS.len()];
    let el = SkCipher::encr_key_len(encr, key_bits).expect("supported");
    let il = SkCipher::integ_key_len(integ).expect("supported");
    let child = ChildSa {
        selected: Selected {
            protocol: ProtocolId::ESP,
            encr,
            key_bits,
            prf: None,
            integ,
            dh: None,
            esn,
            additional: Default::default(),
        },
        spi_in: spi,
        spi_out: spi,
        encr_in: Secret::new(key(el, 0x22)),
        integ_in: Secret::new(key(il, 0x33)),
        encr_out: Secret::new(key(el, 0x22)),
        integ_out: Secret::new(key(il, 0x33)),
        ts_local: vec![],
        ts_remote: vec![],
    };
    EspSa::new(&child, &mut SeededRng::new(9)).expect("valid SA")
}

/// One real instant, the epoch of every virtual clock (taken once per process).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Splits `data` into records: a 2-byte big-endian length then that many bytes (the last
/// record takes what is left). At most `max` records.
pub fn records(mut data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() && out.len() < max {
        let Some((len, rest)) = data.split_first_chunk::<2>() else {
            out.push(data);
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (rec, tail) = rest.split_at(len);
        out.push(rec);
        data = tail;
    }
    out
}

/// One importer run on `data` as `kind`, with a PKCS#12 password so embedded bundles are
/// decrypted too; the result rendered as TOML and every finding and error formatted.
pub fn import_once(data: &[u8], kind: roam_runtime::import::Kind) {
    use roam_runtime::import::{self, ImportOptions};
    let options = ImportOptions {
        p12_password: Some(zeroize::Zeroizing::new("p12-aes-pw".to_string())),
    };
    match import::import(data, kind, &options) {
        Ok(profile) => {
            for f in profile.findings.iter() {
                let _ = f.to_string();
            }
            let rendered = profile.render("fuzz", std::path::Path::new("/nonexistent"));
            let _ = rendered.toml.len();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
