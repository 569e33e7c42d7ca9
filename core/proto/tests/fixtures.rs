//! Real strongSwan 5.9.8 IKEv2 messages, captured in the lab (`scripts/capture-fixtures.sh`:
//! the strongSwan reference client against the lab's responder, RSA-3072 certificates so that
//! IKE_AUTH is fragmented), parsed with `roam_proto::wire::Message::parse`.
//!
//! `tests/fixtures/manifest.tsv` holds what an independent parser (the Python extractor in the
//! capture script) read from each file: header fields and the outer payload chain. The tests
//! compare roam's parse with it, then check what RFC 7296 / RFC 7383 say these exchanges carry,
//! and that truncated or damaged copies are rejected without a panic.

use std::path::{Path, PathBuf};

use roam_proto::wire::{
    CertEncoding, DhGroup, ExchangeType, Message, NotifyType, Payload, PayloadType, ProtocolId,
    HEADER_LEN,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One line of manifest.tsv.
#[derive(Debug)]
struct Row {
    file: String,
    exchange: u8,
    flags: u8,
    msgid: u32,
    length: u32,
    spi_i: u64,
    spi_r: u64,
    version: u8,
    chain: Vec<String>,
    first_inner: Option<u8>,
    skf: Option<(u16, u16)>,
}

fn hex_u8(s: &str) -> u8 {
    u8::from_str_radix(s.trim_start_matches("0x"), 16).expect("manifest: hex byte")
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(fixture_dir().join("manifest.tsv"))
        .expect("tests/fixtures/manifest.tsv (scripts/capture-fixtures.sh writes it)");
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 11, "manifest line: {l}");
            Row {
                file: f[0].to_string(),
                exchange: f[1].parse().expect("exchange"),
                flags: hex_u8(f[2]),
                msgid: f[3].parse().expect("msgid"),
                length: f[4].parse().expect("length"),
                spi_i: u64::from_str_radix(f[5], 16).expect("spi_i"),
                spi_r: u64::from_str_radix(f[6], 16).expect("spi_r"),
                version: hex_u8(f[7]),
                chain: f[8].split(',').map(str::to_string).collect(),
                first_inner: (f[9] != "-").then(|| f[9].parse().expect("first_inner")),
                skf: (f[10] != "-").then(|| {
                    let (n, t) = f[10].split_once('/').expect("n/t");
                    (n.parse().expect("number"), t.parse().expect("total"))
                }),
            }
        })
        .collect();
    assert!(
        rows.len() >= 20,
        "expected the psk, eap and cert captures, got {} rows",
        rows.len()
    );
    rows
}

fn load(file: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The files of one capture (psk, eap, cert), in capture order.
fn capture(mode: &str) -> Vec<(String, Vec<u8>)> {
    let rows: Vec<(String, Vec<u8>)> = manifest()
        .into_iter()
        .filter(|r| r.file.starts_with(&format!("{mode}/")))
        .map(|r| {
            let b = load(&r.file);
            (r.file, b)
        })
        .collect();
    assert!(!rows.is_empty(), "no fixtures for {mode}");
    rows
}

fn parse<'a>(file: &str, buf: &'a [u8]) -> Message<'a> {
    Message::parse(buf).unwrap_or_else(|e| panic!("{file}: Message::parse failed: {e}"))
}

/// The manifest's name for a payload: the registry name, notifies with their type number.
fn chain_name(p: &Payload<'_>) -> String {
    match p {
        Payload::Notify(n) => format!("NOTIFY({})", n.kind.0),
        other => {
            let k = other.kind();
            k.name()
                .map(str::to_string)
                .unwrap_or_else(|| k.0.to_string())
        }
    }
}

fn notify_kinds(m: &Message<'_>) -> Vec<NotifyType> {
    m.payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.kind),
            _ => None,
        })
        .collect()
}

#[test]
fn headers_and_outer_chains_match_the_independent_parser() {
    for row in manifest() {
        let buf = load(&row.file);
        let m = parse(&row.file, &buf);
        let h = &m.header;
        let f = &row.file;
        assert_eq!(h.spi_i, row.spi_i, "{f}: spi_i");
        assert_eq!(h.spi_r, row.spi_r, "{f}: spi_r");
        assert_eq!(h.version, row.version, "{f}: version");
        assert_eq!(h.exchange, ExchangeType(row.exchange), "{f}: exchange");
        assert_eq!(h.flags, row.flags, "{f}: flags");
        assert_eq!(h.message_id, row.msgid, "{f}: message id");
        assert_eq!(h.length, row.length, "{f}: length");
        assert_eq!(h.length as usize, buf.len(), "{f}: length vs file size");
        assert_eq!(m.raw.len(), buf.len(), "{f}: raw");
        assert_eq!(h.is_response(), row.flags & 0x20 != 0, "{f}: is_response");
        assert_eq!(h.is_initiator(), row.flags & 0x08 != 0, "{f}: is_initiator");
        let chain: Vec<String> = m.payloads.iter().map(chain_name).collect();
        assert_eq!(chain, row.chain, "{f}: outer payload chain");
        assert_eq!(
            h.next_payload,
            m.payloads
                .first()
                .map(|p| p.kind())
                .unwrap_or(PayloadType::NONE),
            "{f}: header next payload"
        );

        match (m.encrypted(), m.fragment()) {
            (Some(sk), None) => {
                assert_eq!(chain.last().map(String::as_str), Some("SK"), "{f}");
                assert_eq!(
                    Some(sk.first_inner.0),
                    row.first_inner,
                    "{f}: SK first inner"
                );
                // only the SK payload: AAD = IKE header + SK generic header
                assert_eq!(sk.aad_len, HEADER_LEN + 4, "{f}: SK aad_len");
                assert_eq!(
                    sk.aad_len + sk.body.len(),
                    buf.len(),
                    "{f}: SK body reaches the end"
                );
                assert!(
                    matches!(m.payloads.last(), Some(Payload::Sk(e)) if e == sk),
                    "{f}"
                );
            }
            (None, Some(skf)) => {
                assert_eq!(chain.last().map(String::as_str), Some("SKF"), "{f}");
                assert_eq!(
                    Some((skf.number, skf.total)),
                    row.skf,
                    "{f}: fragment number/total"
                );
                assert_eq!(
                    Some(skf.first_inner.0),
                    row.first_inner,
                    "{f}: SKF first inner"
                );
                // AAD = IKE header + SKF generic header + fragment number + total (RFC 7383 §2.5)
                assert_eq!(skf.aad_len, HEADER_LEN + 8, "{f}: SKF aad_len");
                assert_eq!(
                    skf.aad_len + skf.body.len(),
                    buf.len(),
                    "{f}: SKF body reaches the end"
                );
                assert!(
                    matches!(m.payloads.last(), Some(Payload::Skf(e)) if e == skf),
                    "{f}"
                );
            }
            (None, None) => {
                assert!(
                    row.first_inner.is_none() && row.skf.is_none(),
                    "{f}: plaintext"
                );
                assert_eq!(
                    h.exchange,
                    ExchangeType::IKE_SA_INIT,
                    "{f}: only IKE_SA_INIT is plaintext"
                );
            }
            (Some(_), Some(_)) => panic!("{f}: both SK and SKF"),
        }
    }
}

#[test]
fn ike_sa_init_request_from_strongswan() {
    for mode in ["psk", "eap", "cert"] {
        let (file, buf) = capture(mode).into_iter().next().expect("first message");
        let m = parse(&file, &buf);
        assert_eq!(m.header.exchange, ExchangeType::IKE_SA_INIT, "{file}");
        assert!(m.header.is_initiator() && !m.header.is_response(), "{file}");
        assert_eq!(m.header.message_id, 0, "{file}");
        assert_eq!(m.header.spi_r, 0, "{file}: responder SPI unknown yet");
        assert_ne!(m.header.spi_i, 0, "{file}");

        let sa = m
            .payloads
            .iter()
            .find_map(|p| match p {
                Payload::Sa(props) => Some(props),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{file}: no SA"));
        // the reference client offers the lab's four IKE proposals
        assert_eq!(sa.len(), 4, "{file}: proposals");
        for (i, p) in sa.iter().enumerate() {
            assert_eq!(p.number as usize, i + 1, "{file}: proposal numbers");
            assert_eq!(p.protocol, ProtocolId::IKE, "{file}");
            assert!(p.spi.is_empty(), "{file}: no SPI in IKE_SA_INIT");
        }
        // first proposal: aes256gcm16-prfsha384-ecp384 (ENCR 20 / 256, PRF 6, DH 20)
        let first = &sa[0].transforms;
        assert!(
            first
                .iter()
                .any(|t| t.kind.0 == 1 && t.id == 20 && t.key_length == Some(256)),
            "{file}: {first:?}"
        );
        assert!(first.iter().any(|t| t.kind.0 == 2 && t.id == 6), "{file}");
        assert!(first.iter().any(|t| t.kind.0 == 4 && t.id == 20), "{file}");
        // third: aes256-sha256-modp2048 has an integrity transform (12 = HMAC_SHA2_256_128)
        assert!(
            sa[2].transforms.iter().any(|t| t.kind.0 == 3 && t.id == 12),
            "{file}"
        );

        let ke = m.payloads.iter().find_map(|p| match p {
            Payload::Ke { group, data } => Some((*group, data.len())),
            _ => None,
        });
        assert_eq!(
            ke,
            Some((DhGroup::ECP_384, 96)),
            "{file}: KE for the first proposal's group"
        );
        let nonce = m.payloads.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(n.len()),
            _ => None,
        });
        assert!(
            matches!(nonce, Some(16..=256)),
            "{file}: nonce length {nonce:?}"
        );

        let kinds = notify_kinds(&m);
        for want in [
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
        ] {
            assert!(kinds.contains(&want), "{file}: missing {want}");
        }
        for p in &m.payloads {
            if let Payload::Notify(n) = p {
                if n.kind == NotifyType::NAT_DETECTION_SOURCE_IP
                    || n.kind == NotifyType::NAT_DETECTION_DESTINATION_IP
                {
                    assert_eq!(n.data.len(), 20, "{file}: NAT-D is a SHA-1 hash");
                    assert!(n.spi.is_empty(), "{file}");
                }
            }
        }
    }
}

#[test]
fn ike_sa_init_response_from_strongswan() {
    for mode in ["psk", "eap", "cert"] {
        let msgs = capture(mode);
        let (rfile, rbuf) = &msgs[0];
        let (file, buf) = &msgs[1];
        let req = parse(rfile, rbuf);
        let m = parse(file, buf);
        assert_eq!(m.header.exchange, ExchangeType::IKE_SA_INIT, "{file}");
        assert!(m.header.is_response() && !m.header.is_initiator(), "{file}");
        assert_eq!(
            m.header.spi_i, req.header.spi_i,
            "{file}: same initiator SPI"
        );
        assert_ne!(m.header.spi_r, 0, "{file}");

        let sa: Vec<_> = m
            .payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Sa(props) => Some(props.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(sa.len(), 1, "{file}: one SA payload");
        assert_eq!(sa[0].len(), 1, "{file}: the responder picks one proposal");
        assert_eq!(sa[0][0].number, 1, "{file}: the first offer was chosen");
        assert!(
            matches!(
                m.payloads.iter().find(|p| p.kind() == PayloadType::KE),
                Some(Payload::Ke { group: DhGroup::ECP_384, data }) if data.len() == 96
            ),
            "{file}"
        );
        let certreq = m.payloads.iter().find_map(|p| match p {
            Payload::CertReq { encoding, data } => Some((*encoding, data.len())),
            _ => None,
        });
        // one CA: one 20-byte SHA-1 hash of its public key
        assert_eq!(certreq, Some((CertEncoding::X509_SIGNATURE, 20)), "{file}");
        let kinds = notify_kinds(&m);
        for want in [
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            NotifyType::CHILDLESS_IKEV2_SUPPORTED,
            NotifyType::MULTIPLE_AUTH_SUPPORTED,
        ] {
            assert!(kinds.contains(&want), "{file}: missing {want}");
        }
    }
}

#[test]
fn ike_auth_is_encrypted_and_fragmented_where_expected() {
    for mode in ["psk", "eap", "cert"] {
        let msgs = capture(mode);
        let spi_r = parse(&msgs[1].0, &msgs[1].1).header.spi_r;
        let mut fragments = 0;
        for (file, buf) in &msgs[2..] {
            let m = parse(file, buf);
            assert_eq!(m.header.spi_r, spi_r, "{file}: same IKE SA");
            assert_eq!(m.payloads.len(), 1, "{file}: only SK or SKF outside");
            if let Some(f) = m.fragment() {
                fragments += 1;
                assert_eq!(m.header.exchange, ExchangeType::IKE_AUTH, "{file}");
                assert!(
                    f.total >= 2 && (1..=f.total).contains(&f.number),
                    "{file}: {}/{}",
                    f.number,
                    f.total
                );
                if f.number == 1 {
                    let want = if m.header.is_response() {
                        PayloadType::IDR
                    } else {
                        PayloadType::IDI
                    };
                    assert_eq!(
                        f.first_inner, want,
                        "{file}: fragment 1 names the first inner payload"
                    );
                } else {
                    assert_eq!(
                        f.first_inner,
                        PayloadType::NONE,
                        "{file}: only fragment 1 has it"
                    );
                }
            } else {
                assert!(m.encrypted().is_some(), "{file}: SK");
            }
        }
        let want = match mode {
            "psk" => 0,
            "eap" => 2, // the server's IDr CERT AUTH EAP response
            _ => 4,     // both sides send an RSA-3072 certificate
        };
        assert_eq!(fragments, want, "{mode}: number of SKF messages");
    }
}

#[test]
fn message_ids_pair_requests_and_responses() {
    for mode in ["psk", "eap", "cert"] {
        let mut next_req = 0u32;
        for (file, buf) in capture(mode) {
            let m = parse(&file, &buf);
            if m.header.is_response() {
                assert_eq!(
                    m.header.message_id + 1,
                    next_req,
                    "{file}: answers the last request"
                );
            } else if m.header.message_id + 1 != next_req {
                // a new request (fragments 2.. of one request share its id)
                assert_eq!(m.header.message_id, next_req, "{file}: next message id");
                next_req += 1;
            }
        }
        assert!(
            next_req >= 3,
            "{mode}: IKE_SA_INIT, IKE_AUTH.., INFORMATIONAL"
        );
    }
}

#[test]
fn truncated_fixtures_are_rejected() {
    for row in manifest() {
        let buf = load(&row.file);
        for cut in 0..buf.len() {
            assert!(
                Message::parse(&buf[..cut]).is_err(),
                "{}: parsed a {cut}-byte prefix",
                row.file
            );
        }
    }
}

#[test]
fn damaged_fixtures_never_panic() {
    for row in manifest() {
        let buf = load(&row.file);
        // a wrong total length is an error
        let mut longer = buf.clone();
        longer.push(0);
        assert!(
            Message::parse(&longer).is_err(),
            "{}: trailing byte accepted",
            row.file
        );
        // every single-byte change in the headers and the first payloads: no panic
        for i in 0..buf.len().min(200) {
            for v in [0x00u8, 0xff, buf[i] ^ 0x80] {
                let mut b = buf.clone();
                b[i] = v;
                let _ = Message::parse(&b);
            }
        }
    }
}
