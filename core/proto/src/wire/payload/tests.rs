//! Hand-made byte vectors for every payload and every error path of the chain parser.

use super::*;

/// Wraps `body` in a generic header (next = NONE, flags as given).
fn wrap(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, flags];
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// Parses `body` as the single payload of type `kind`.
fn one(kind: PayloadType, body: &[u8]) -> Result<Payload<'static>, WireError> {
    let bytes: &'static [u8] = Box::leak(wrap(0, body).into_boxed_slice());
    let mut v = parse_payloads(kind, bytes, 28)?;
    assert_eq!(v.len(), 1);
    Ok(v.remove(0))
}

/// Asserts that `body` parses as `want` and that `want` writes back to exactly `body`.
fn both_ways(kind: PayloadType, body: &[u8], want: Payload<'_>) {
    assert_eq!(one(kind, body).unwrap(), want);
    assert_eq!(want.kind(), kind);
    let mut out = Vec::new();
    assert_eq!(write_payloads(std::slice::from_ref(&want), &mut out), kind);
    assert_eq!(out, wrap(0, body));
}

#[test]
fn ke() {
    both_ways(
        PayloadType::KE,
        &[0, 31, 0, 0, 1, 2, 3],
        Payload::Ke {
            group: DhGroup::CURVE25519,
            data: &[1, 2, 3],
        },
    );
    assert!(matches!(
        one(PayloadType::KE, &[0, 31, 0]),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn ids() {
    let id = Id {
        id_type: IdType::ID_FQDN,
        data: b"vpn.example.com",
    };
    let mut body = vec![2, 0, 0, 0];
    body.extend_from_slice(id.data);
    both_ways(PayloadType::IDI, &body, Payload::IdI(id));
    both_ways(PayloadType::IDR, &body, Payload::IdR(id));
    assert!(matches!(
        one(PayloadType::IDI, &[2, 0, 0]),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn cert_and_certreq() {
    let body = [4, 0x30, 0x82];
    both_ways(
        PayloadType::CERT,
        &body,
        Payload::Cert {
            encoding: CertEncoding::X509_SIGNATURE,
            data: &[0x30, 0x82],
        },
    );
    both_ways(
        PayloadType::CERTREQ,
        &body,
        Payload::CertReq {
            encoding: CertEncoding::X509_SIGNATURE,
            data: &[0x30, 0x82],
        },
    );
    assert!(matches!(
        one(PayloadType::CERT, &[]),
        Err(WireError::Truncated { .. })
    ));
    assert!(matches!(
        one(PayloadType::CERTREQ, &[]),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn auth() {
    both_ways(
        PayloadType::AUTH,
        &[2, 0, 0, 0, 9, 9],
        Payload::Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: &[9, 9],
        },
    );
    assert!(matches!(
        one(PayloadType::AUTH, &[2, 0]),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn nonce_bounds() {
    let n = [0x11u8; 256];
    both_ways(PayloadType::NONCE, &n[..16], Payload::Nonce(&n[..16]));
    both_ways(PayloadType::NONCE, &n, Payload::Nonce(&n));
    assert_eq!(
        one(PayloadType::NONCE, &n[..15]),
        Err(WireError::BadLength {
            what: "Nonce",
            len: 15
        })
    );
    let big = [0u8; 257];
    assert_eq!(
        one(PayloadType::NONCE, &big),
        Err(WireError::BadLength {
            what: "Nonce",
            len: 257
        })
    );
}

#[test]
fn notify() {
    // ESP, SPI size 4, REKEY_SA, SPI 0xdeadbeef, no data.
    both_ways(
        PayloadType::NOTIFY,
        &[3, 4, 0x40, 0x09, 0xde, 0xad, 0xbe, 0xef],
        Payload::Notify(Notify {
            protocol: ProtocolId::ESP,
            spi: &[0xde, 0xad, 0xbe, 0xef],
            kind: NotifyType::REKEY_SA,
            data: &[],
        }),
    );
    // No SPI, COOKIE with data.
    both_ways(
        PayloadType::NOTIFY,
        &[0, 0, 0x40, 0x06, 1, 2, 3],
        Payload::Notify(Notify {
            protocol: ProtocolId::NONE,
            spi: &[],
            kind: NotifyType::COOKIE,
            data: &[1, 2, 3],
        }),
    );
    assert!(matches!(
        one(PayloadType::NOTIFY, &[3, 4, 0x40, 0x09, 1, 2]),
        Err(WireError::Truncated { .. })
    ));
    assert!(matches!(
        one(PayloadType::NOTIFY, &[0, 0, 0x40]),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn delete() {
    both_ways(
        PayloadType::DELETE,
        &[3, 4, 0, 2, 1, 1, 1, 1, 2, 2, 2, 2],
        Payload::Delete(Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: &[1, 1, 1, 1, 2, 2, 2, 2],
        }),
    );
    both_ways(
        PayloadType::DELETE,
        &[1, 0, 0, 0],
        Payload::Delete(Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: &[],
        }),
    );
    assert_eq!(
        one(PayloadType::DELETE, &[3, 4, 0, 2, 1, 1, 1, 1]),
        Err(WireError::BadLength {
            what: "Delete SPIs",
            len: 4
        })
    );
    assert_eq!(
        one(PayloadType::DELETE, &[3, 4, 0, 1, 1, 1, 1, 1, 9]),
        Err(WireError::BadLength {
            what: "Delete SPIs",
            len: 5
        })
    );
    assert_eq!(
        one(PayloadType::DELETE, &[1, 0, 0, 1]),
        Err(WireError::Invalid("Delete: SPIs of size 0"))
    );
    assert!(matches!(
        one(PayloadType::DELETE, &[1, 0, 0]),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn vendor_eap_and_empty_bodies() {
    both_ways(PayloadType::VENDOR, b"roam", Payload::Vendor(b"roam"));
    both_ways(PayloadType::VENDOR, b"", Payload::Vendor(b""));
    both_ways(
        PayloadType::EAP,
        &[1, 1, 0, 5, 1],
        Payload::Eap(&[1, 1, 0, 5, 1]),
    );
}

#[test]
fn ts_and_cp_through_the_chain() {
    let ts = [
        1, 0, 0, 0, 7, 0, 0, 16, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    ];
    let sel = TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 0xffff,
        start_addr: "0.0.0.0".parse().unwrap(),
        end_addr: "255.255.255.255".parse().unwrap(),
    };
    both_ways(PayloadType::TSI, &ts, Payload::TsI(vec![sel]));
    both_ways(PayloadType::TSR, &ts, Payload::TsR(vec![sel]));
    both_ways(
        PayloadType::CP,
        &[1, 0, 0, 0, 0, 1, 0, 0],
        Payload::Cp {
            cfg_type: CfgType::CFG_REQUEST,
            attrs: vec![CfgAttribute {
                kind: CfgAttr::INTERNAL_IP4_ADDRESS,
                value: &[],
            }],
        },
    );
}

#[test]
fn unknown_payloads() {
    // Non-critical: kept as Unknown, and written back unchanged.
    both_ways(
        PayloadType(50),
        &[1, 2, 3],
        Payload::Unknown {
            kind: PayloadType(50),
            data: &[1, 2, 3],
        },
    );
    // Critical: the whole message is rejected.
    let b = wrap(CRITICAL, &[1, 2, 3]);
    assert_eq!(
        parse_payloads(PayloadType(50), &b, 28),
        Err(WireError::UnsupportedCriticalPayload(PayloadType(50)))
    );
    // The critical bit on a payload we know changes nothing.
    let b = wrap(CRITICAL, b"roam");
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &b, 28).unwrap(),
        vec![Payload::Vendor(b"roam")]
    );
}

#[test]
fn chain_of_three() {
    let chain = [
        Payload::Vendor(b"a"),
        Payload::Notify(Notify {
            protocol: ProtocolId::NONE,
            spi: &[],
            kind: NotifyType::MOBIKE_SUPPORTED,
            data: &[],
        }),
        Payload::Vendor(b"bc"),
    ];
    let mut out = Vec::new();
    assert_eq!(write_payloads(&chain, &mut out), PayloadType::VENDOR);
    assert_eq!(
        out,
        [41, 0, 0, 5, b'a', 43, 0, 0, 8, 0, 0, 0x40, 0x0c, 0, 0, 0, 6, b'b', b'c']
    );
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &out, 28).unwrap(),
        chain
    );
}

#[test]
fn empty_chain() {
    let mut out = Vec::new();
    assert_eq!(write_payloads(&[], &mut out), PayloadType::NONE);
    assert!(out.is_empty());
    assert_eq!(parse_payloads(PayloadType::NONE, &[], 28).unwrap(), vec![]);
}

#[test]
fn chain_length_errors() {
    // Length below the generic header.
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &[0, 0, 0, 3], 28),
        Err(WireError::BadLength {
            what: "payload",
            len: 3
        })
    );
    // Length past the end of the buffer.
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &[0, 0, 0, 6, 1], 28),
        Err(WireError::BadLength {
            what: "payload",
            len: 6
        })
    );
    // Truncated generic header.
    assert!(matches!(
        parse_payloads(PayloadType::VENDOR, &[0, 0, 0], 28),
        Err(WireError::Truncated { .. })
    ));
    // Chain points past the end.
    assert!(matches!(
        parse_payloads(PayloadType::VENDOR, &[43, 0, 0, 4], 28),
        Err(WireError::Truncated { .. })
    ));
    // First payload announced but no bytes at all.
    assert!(matches!(
        parse_payloads(PayloadType::SA, &[], 28),
        Err(WireError::Truncated { .. })
    ));
    // Data left after the chain's end.
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &[0, 0, 0, 4, 0xaa], 28),
        Err(WireError::Invalid("data after the last payload"))
    );
    assert_eq!(
        parse_payloads(PayloadType::NONE, &[0], 28),
        Err(WireError::Invalid("data after the last payload"))
    );
}

#[test]
fn too_many_payloads() {
    let many = vec![Payload::Vendor(b""); MAX_PAYLOADS];
    let mut out = Vec::new();
    write_payloads(&many, &mut out);
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &out, 28).unwrap().len(),
        MAX_PAYLOADS
    );
    let many = vec![Payload::Vendor(b""); MAX_PAYLOADS + 1];
    out.clear();
    write_payloads(&many, &mut out);
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &out, 28),
        Err(WireError::TooMany("payloads"))
    );
}

#[test]
fn sk_ends_the_chain() {
    // Vendor "x" then SK (first inner IDi) with an 8-byte body.
    let mut b = vec![46, 0, 0, 5, b'x'];
    b.extend_from_slice(&[35, 0, 0, 12]);
    b.extend_from_slice(&[0xcc; 8]);
    let v = parse_payloads(PayloadType::VENDOR, &b, 28).unwrap();
    assert_eq!(
        v[1],
        Payload::Sk(Encrypted {
            first_inner: PayloadType::IDI,
            aad_len: 28 + 5 + 4,
            body: &[0xcc; 8]
        })
    );
    assert_eq!(v[1].kind(), PayloadType::SK);
    // Anything after SK is an error.
    b.push(0);
    assert_eq!(
        parse_payloads(PayloadType::VENDOR, &b, 28),
        Err(WireError::Invalid("data after the SK/SKF payload"))
    );
    // The offset shifts aad_len (an inner chain, say).
    let sk = [35, 0, 0, 5, 9];
    match &parse_payloads(PayloadType::SK, &sk, 100).unwrap()[0] {
        Payload::Sk(e) => assert_eq!(e.aad_len, 104),
        other => panic!("{other:?}"),
    }
}

#[test]
fn skf_fields() {
    let skf = |next: u8, number: u16, total: u16| {
        let mut b = vec![next, 0, 0, 12];
        b.extend_from_slice(&number.to_be_bytes());
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&[0xdd; 4]);
        b
    };
    let b = skf(35, 1, 3);
    let v = parse_payloads(PayloadType::SKF, &b, 28).unwrap();
    assert_eq!(
        v,
        vec![Payload::Skf(Fragment {
            first_inner: PayloadType::IDI,
            number: 1,
            total: 3,
            aad_len: 36,
            body: &[0xdd; 4]
        })]
    );
    assert_eq!(v[0].kind(), PayloadType::SKF);
    // A non-first fragment's next field is ignored.
    match &parse_payloads(PayloadType::SKF, &skf(35, 3, 3), 28).unwrap()[0] {
        Payload::Skf(f) => assert_eq!((f.first_inner, f.number), (PayloadType::NONE, 3)),
        other => panic!("{other:?}"),
    }
    for (n, t) in [(0, 3), (4, 3), (1, 0), (0, 0)] {
        assert_eq!(
            parse_payloads(PayloadType::SKF, &skf(35, n, t), 28),
            Err(WireError::Invalid("bad SKF fragment number"))
        );
    }
    // Too short for the fragment fields.
    assert!(matches!(
        parse_payloads(PayloadType::SKF, &[35, 0, 0, 7, 0, 1, 0], 28),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn write_payloads_skips_sk_and_skf() {
    let chain = [
        Payload::Vendor(b"a"),
        Payload::Sk(Encrypted {
            first_inner: PayloadType::IDI,
            aad_len: 0,
            body: &[1],
        }),
        Payload::Vendor(b"b"),
    ];
    let mut out = Vec::new();
    write_payloads(&chain, &mut out);
    assert_eq!(out, [43, 0, 0, 5, b'a', 0, 0, 0, 5, b'b']);
    out.clear();
    let only = [Payload::Skf(Fragment {
        first_inner: PayloadType::NONE,
        number: 1,
        total: 1,
        aad_len: 0,
        body: &[],
    })];
    assert_eq!(write_payloads(&only, &mut out), PayloadType::NONE);
    assert!(out.is_empty());
}
