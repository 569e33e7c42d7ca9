//! Every backend on the same known answers, and sealing with one backend then opening with
//! another.

use super::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

struct Kat {
    name: &'static str,
    encr: EncrId,
    key: &'static str,
    nonce: &'static str,
    aad: &'static str,
    plain: &'static str,
    cipher: &'static str,
    tag: &'static str,
}

const KATS: &[Kat] = &[
    Kat {
        name: "RFC 8439 §2.8.2 ChaCha20-Poly1305",
        encr: EncrId::CHACHA20_POLY1305,
        key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
        nonce: "070000004041424344454647",
        aad: "50515253c0c1c2c3c4c5c6c7",
        plain: "4c616469657320616e642047656e746c656d656e206f662074686520636c6173
                73206f66202739393a204966204920636f756c64206f6666657220796f75206f
                6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73
                637265656e20776f756c642062652069742e",
        cipher: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
                 3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
                 92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
                 3ff4def08e4b7a9de576d26586cec64b6116",
        tag: "1ae10b594f09e26a7e902ecbd0600691",
    },
    Kat {
        name: "NIST CAVP GCMVS AES-256 with AAD",
        encr: EncrId::AES_GCM_16,
        key: "83688deb4af8007f9b713b47cfa6c73e35ea7a3aa4ecdb414dded03bf7a0fd3a",
        nonce: "0b459724904e010a46901cf3",
        aad: "794a14ccd178c8ebfd1379dc704c5e208f9d8424",
        plain: "33d893a2114ce06fc15d55e454cf90c3",
        cipher: "cc66bee423e3fcd4c0865715e9586696",
        tag: "0fb291bd3dba94a1dfd8b286cfb97ac5",
    },
];

/// Key material = key | salt, and the explicit IV, from a whole 12-byte nonce.
fn keyed(backend: Backend, k: &Kat) -> (Aead, Vec<u8>) {
    let nonce = h(k.nonce);
    let mut km = h(k.key);
    km.extend_from_slice(&nonce[..SALT_LEN]);
    let aead = Aead::with_backend(backend, k.encr, &km).unwrap();
    (aead, nonce[SALT_LEN..].to_vec())
}

#[test]
fn every_backend_meets_the_known_answers() {
    for &backend in Backend::ALL {
        for k in KATS {
            let (aead, iv) = keyed(backend, k);
            assert_eq!(aead.backend(), backend, "{}", k.name);
            let mut buf = h(k.plain);
            let tag = aead.seal_in_place(&iv, &h(k.aad), &mut buf).unwrap();
            assert_eq!(
                hex::encode(&buf),
                hex::encode(h(k.cipher)),
                "{backend:?} {}",
                k.name
            );
            assert_eq!(hex::encode(tag), k.tag, "{backend:?} {}", k.name);
            aead.open_in_place(&iv, &h(k.aad), &mut buf, &tag).unwrap();
            assert_eq!(buf, h(k.plain), "{backend:?} {}", k.name);
        }
    }
}

#[test]
fn every_backend_refuses_a_changed_bit() {
    for &backend in Backend::ALL {
        for k in KATS {
            let (aead, iv) = keyed(backend, k);
            let aad = h(k.aad);
            let mut tag = h(k.tag);
            tag[3] ^= 0x10;
            let mut buf = h(k.cipher);
            assert_eq!(
                aead.open_in_place(&iv, &aad, &mut buf, &tag),
                Err(CryptoError::Integrity),
                "{backend:?} {}: tag",
                k.name
            );
            let mut buf = h(k.cipher);
            buf[0] ^= 1;
            assert_eq!(
                aead.open_in_place(&iv, &aad, &mut buf, &h(k.tag)),
                Err(CryptoError::Integrity),
                "{backend:?} {}: ciphertext",
                k.name
            );
            let mut buf = h(k.cipher);
            let mut bad_aad = aad.clone();
            bad_aad[0] ^= 1;
            assert_eq!(
                aead.open_in_place(&iv, &bad_aad, &mut buf, &h(k.tag)),
                Err(CryptoError::Integrity),
                "{backend:?} {}: aad",
                k.name
            );
        }
    }
}

fn material(alg: AeadAlg) -> Vec<u8> {
    (0..alg.key_len() + SALT_LEN)
        .map(|i| (i as u8).wrapping_mul(37))
        .collect()
}

fn encr(alg: AeadAlg) -> EncrId {
    match alg {
        AeadAlg::ChaCha20Poly1305 => EncrId::CHACHA20_POLY1305,
        _ => EncrId::AES_GCM_16,
    }
}

#[test]
fn sealed_by_one_backend_opens_with_every_other() {
    for alg in AeadAlg::ALL {
        let km = material(alg);
        for &a in Backend::ALL {
            for &b in Backend::ALL {
                let sealer = Aead::with_backend(a, encr(alg), &km).unwrap();
                let opener = Aead::with_backend(b, encr(alg), &km).unwrap();
                assert_eq!(sealer.alg(), alg);
                for len in [0usize, 1, 15, 16, 17, 64, 255, 1400, 9000] {
                    let plain: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                    let iv = (len as u64).to_be_bytes();
                    let aad = [0xa5u8; 12];
                    let mut buf = plain.clone();
                    let tag = sealer.seal_in_place(&iv, &aad, &mut buf).unwrap();
                    if len > 0 {
                        assert_ne!(buf, plain, "{alg:?} {a:?}: encrypted");
                    }
                    opener.open_in_place(&iv, &aad, &mut buf, &tag).unwrap();
                    assert_eq!(
                        buf, plain,
                        "{alg:?} sealed by {a:?} opened by {b:?} len {len}"
                    );
                }
            }
        }
    }
}

#[test]
fn default_backend_and_fallback() {
    assert!(Backend::ALL.contains(&Backend::DEFAULT));
    assert_eq!(
        Backend::ALL.len(),
        if cfg!(feature = "ring") { 2 } else { 1 }
    );
    let aead = Aead::new(EncrId::AES_GCM_16, &material(AeadAlg::Aes256Gcm)).unwrap();
    assert_eq!(aead.backend(), Backend::DEFAULT);
    assert_eq!(aead.name(), "aes256gcm16");
    // A backend without AES-192-GCM hands it to RustCrypto.
    for &b in Backend::ALL {
        let a = Aead::with_backend(b, EncrId::AES_GCM_16, &material(AeadAlg::Aes192Gcm)).unwrap();
        assert_eq!(a.alg(), AeadAlg::Aes192Gcm);
        let want = if b.supports(AeadAlg::Aes192Gcm) {
            b
        } else {
            Backend::RustCrypto
        };
        assert_eq!(a.backend(), want);
    }
    assert!(Backend::RustCrypto.supports(AeadAlg::Aes192Gcm));
}

#[test]
fn bad_keys_and_ivs_are_errors() {
    for &b in Backend::ALL {
        for len in [0usize, 3, 4, 19, 21, 31, 35, 37] {
            let km = vec![1u8; len];
            assert!(
                Aead::with_backend(b, EncrId::AES_GCM_16, &km).is_err(),
                "{len}"
            );
        }
        assert_eq!(
            Aead::with_backend(b, EncrId::CHACHA20_POLY1305, &[1u8; 20]).err(),
            Some(CryptoError::KeyLength)
        );
        assert!(matches!(
            Aead::with_backend(b, EncrId::AES_CBC, &[1u8; 20]),
            Err(CryptoError::Unsupported(_))
        ));
        assert_eq!(
            b.key(AeadAlg::Aes128Gcm, &[0u8; 32]).err(),
            Some(CryptoError::KeyLength)
        );
        let aead = Aead::with_backend(b, EncrId::AES_GCM_16, &[9u8; 20]).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            aead.seal_in_place(&[0u8; 7], &[], &mut buf),
            Err(CryptoError::Malformed)
        );
        assert_eq!(
            aead.open_in_place(&[0u8; 8], &[], &mut buf, &[0u8; 15]),
            Err(CryptoError::Malformed)
        );
        // Debug names the transform and backend, never key bytes.
        assert_eq!(format!("{aead:?}"), format!("aes128gcm16 ({})", b.name()));
    }
}
