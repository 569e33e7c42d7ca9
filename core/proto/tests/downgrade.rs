//! Downgrade resistance (issue 7, item 4). A man in the middle who strips our strong
//! proposals from IKE_SA_INIT gets the responder to pick a weaker one, but both AUTH payloads
//! cover the IKE_SA_INIT messages as each end saw them (RFC 7296 §2.15), so the exchange ends
//! in an authentication failure, never a weaker tunnel. And the defaults never offer nor
//! accept DES, 3DES, MD5, SHA-1, MODP below 2048 or NULL encryption unless a profile names
//! them in allow_weak: a server choosing one we did not offer is refused with a typed error.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::time::Duration;

use pair::{psk_client, responder_config, Dir, Fate, Pair};
use roam_proto::crypto::proposal::{default_esp, default_ike, ProposalError, ProposalSpec};
use roam_proto::crypto::Secret;
use roam_proto::ike::responder::{ResponderAuth, ResponderEvent};
use roam_proto::session::{DisconnectReason, Session};
use roam_proto::wire::message::write_message;
use roam_proto::wire::{
    DhGroup, EncrId, ExchangeType, IntegId, Message, Payload, PrfId, TransformType,
};

const PSK: &str = "correct horse battery staple";
const STRONG: &str = "aes256gcm16-prfsha384-ecp384";
const WEAKER: &str = "aes128-sha256-ecp384";

fn server(ike: &[&str]) -> roam_proto::ike::responder::ResponderConfig {
    responder_config(ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes())), ike)
}

/// Rewrites every IKE_SA_INIT request on the link: only its last proposal is left.
fn strip_all_but_the_last(dir: Dir, _: usize, d: &[u8]) -> Fate {
    let Ok(m) = Message::parse(d) else {
        return Fate::Deliver;
    };
    if dir != Dir::ToServer || m.header.exchange != ExchangeType::IKE_SA_INIT {
        return Fate::Deliver;
    }
    let mut payloads = m.payloads.clone();
    for p in payloads.iter_mut() {
        if let Payload::Sa(props) = p {
            let last = props.pop().expect("proposals");
            *props = vec![last];
        }
    }
    let mut out = Vec::new();
    write_message(&m.header, &payloads, &mut out);
    Fate::Replace(out)
}

#[test]
fn stripping_our_strong_proposal_ends_in_an_authentication_failure() {
    // Both ends accept the weaker proposal; without the man in the middle they agree on the
    // strong one.
    let client = || psk_client(PSK, &[STRONG, WEAKER], &[]);
    let mut honest = Pair::new(client(), server(&[STRONG, WEAKER]), 1);
    honest.connect();
    assert_eq!(honest.connected().expect("connects").ike_proposal, STRONG);

    let mut p = Pair::new(client(), server(&[STRONG, WEAKER]), 2);
    p.filter = Some(Box::new(strip_all_but_the_last));
    p.connect();
    p.run_for(Duration::from_secs(120));
    // The responder did pick the weaker proposal, and the client did not end up with it.
    assert!(
        p.connected().is_none(),
        "a weaker tunnel: {:?}",
        p.client_events
    );
    assert!(
        matches!(
            p.disconnect_reason(),
            Some(DisconnectReason::AuthenticationFailed(_))
        ),
        "{:?}",
        p.client_events
    );
    assert_eq!(
        p.client.ike().ike_proposal().map(|s| s.name()).as_deref(),
        Some(WEAKER)
    );
    assert!(
        !p.server_events
            .iter()
            .any(|e| matches!(e, ResponderEvent::Established { .. })),
        "the responder rejected the client's AUTH: {:?}",
        p.server_events
    );
    assert_eq!(p.server.sa_count(), 0);
}

/// The ids a weak algorithm has on the wire, by transform type.
fn is_weak(kind: TransformType, id: u16) -> bool {
    match kind {
        TransformType::ENCR => [EncrId::DES.0, EncrId::TRIPLE_DES.0, EncrId::NULL.0].contains(&id),
        TransformType::INTEG => [IntegId::HMAC_MD5_96.0, IntegId::HMAC_SHA1_96.0].contains(&id),
        TransformType::PRF => [PrfId::HMAC_MD5.0, PrfId::HMAC_SHA1.0].contains(&id),
        TransformType::DH => [
            DhGroup::MODP_768.0,
            DhGroup::MODP_1024.0,
            DhGroup::MODP_1536.0,
        ]
        .contains(&id),
        _ => false,
    }
}

#[test]
fn the_default_offer_contains_nothing_weak() {
    let ike: Vec<_> = default_ike()
        .iter()
        .map(|s| ProposalSpec::parse_ike(s, &[]).expect("defaults parse without allow_weak"))
        .collect();
    let esp: Vec<_> = default_esp()
        .iter()
        .map(|s| ProposalSpec::parse_esp(s, &[]).expect("defaults parse without allow_weak"))
        .collect();
    let mut transforms = 0;
    for (i, spec) in ike.iter().chain(esp.iter()).enumerate() {
        for t in spec.to_wire(i as u8 + 1, &[]).transforms {
            transforms += 1;
            assert!(!is_weak(t.kind, t.id), "{t:?} in the default offer");
        }
    }
    assert!(transforms > 10);
    // And what a client sends when it is built with the defaults.
    let mut s = Session::new(
        psk_client(PSK, &[], &[]),
        Box::new(roam_proto::rng::SeededRng::new(3)),
    )
    .unwrap();
    s.connect(
        std::time::Instant::now(),
        pair::client_addr(),
        pair::server_addr(),
    );
    let request = s.poll_transmit().expect("IKE_SA_INIT").payload;
    let m = Message::parse(&request).unwrap();
    let Some(Payload::Sa(props)) = m.payloads.iter().find(|p| matches!(p, Payload::Sa(_))) else {
        panic!("no SA payload")
    };
    for t in props.iter().flat_map(|p| p.transforms.iter()) {
        assert!(!is_weak(t.kind, t.id), "{t:?} on the wire");
    }
    let groups = props
        .iter()
        .flat_map(|p| p.transforms.iter())
        .filter(|t| t.kind == TransformType::DH);
    for t in groups {
        assert!(
            ![
                DhGroup::MODP_768.0,
                DhGroup::MODP_1024.0,
                DhGroup::MODP_1536.0
            ]
            .contains(&t.id),
            "MODP below 2048: {t:?}"
        );
    }
}

#[test]
fn weak_algorithms_need_allow_weak() {
    for (ike, word) in [
        ("des-sha256-modp2048", "des"),
        ("3des-sha256-modp2048", "3des"),
        ("aes256-md5-modp2048", "md5"),
        ("aes256-sha1-modp2048", "sha1"),
        ("aes256-sha256-prfsha1-modp2048", "prfsha1"),
        ("aes256gcm16-prfsha256-modp1024", "modp1024"),
        ("aes256gcm16-prfsha256-modp1536", "modp1536"),
        ("aes256gcm16-prfsha256-modp768", "modp768"),
    ] {
        assert_eq!(
            ProposalSpec::parse_ike(ike, &[]),
            Err(ProposalError::Weak(word.into()))
        );
        assert!(
            ProposalSpec::parse_ike(ike, &[word.to_string()]).is_ok(),
            "{ike} with allow_weak = [{word}]"
        );
        // A profile with one is refused as a whole.
        let err = Session::new(
            psk_client(PSK, &[ike], &[]),
            Box::new(roam_proto::rng::SeededRng::new(4)),
        )
        .err()
        .unwrap_or_else(|| panic!("{ike} accepted"));
        assert!(err.to_string().contains(word), "{err}");
    }
    // NULL encryption: ESP only when allowed, never for IKE.
    assert_eq!(
        ProposalSpec::parse_esp("null-sha256", &[]),
        Err(ProposalError::Weak("null".into()))
    );
    let esp = ProposalSpec::parse_esp("null-sha256", &["null".into()]).unwrap();
    assert_eq!(esp.encr, [(EncrId::NULL, None)]);
    assert_eq!(
        ProposalSpec::parse_ike("null-sha256-modp2048", &[]),
        Err(ProposalError::Weak("null".into()))
    );
    assert!(matches!(
        ProposalSpec::parse_ike("null-sha256-modp2048", &["null".into()]),
        Err(ProposalError::Incomplete(..))
    ));
}

#[test]
fn a_server_choosing_a_weak_algorithm_we_did_not_offer_is_refused() {
    // Our offer: the strong aes256-sha256-modp2048 (the lab server takes it). The answer is
    // rewritten to carry a weak algorithm in place of one of ours.
    let ike = "aes256-sha256-modp2048";
    let cases: [(TransformType, u16, Option<u16>); 7] = [
        (TransformType::ENCR, EncrId::TRIPLE_DES.0, None),
        (TransformType::ENCR, EncrId::DES.0, None),
        (TransformType::ENCR, EncrId::NULL.0, None),
        (TransformType::INTEG, IntegId::HMAC_MD5_96.0, None),
        (TransformType::INTEG, IntegId::HMAC_SHA1_96.0, None),
        (TransformType::PRF, PrfId::HMAC_SHA1.0, None),
        (TransformType::DH, DhGroup::MODP_1024.0, None),
    ];
    for (i, (kind, id, key_length)) in cases.into_iter().enumerate() {
        let mut p = Pair::new(psk_client(PSK, &[ike], &[]), server(&[]), 20 + i as u64);
        p.filter = Some(Box::new(move |dir, _, d| {
            let Ok(m) = Message::parse(d) else {
                return Fate::Deliver;
            };
            if dir != Dir::ToClient || m.header.exchange != ExchangeType::IKE_SA_INIT {
                return Fate::Deliver;
            }
            let mut payloads = m.payloads.clone();
            for pl in payloads.iter_mut() {
                match pl {
                    Payload::Sa(props) => {
                        for t in props.iter_mut().flat_map(|p| p.transforms.iter_mut()) {
                            if t.kind == kind {
                                t.id = id;
                                t.key_length = key_length;
                            }
                        }
                    }
                    Payload::Ke { group, .. } if kind == TransformType::DH => {
                        *group = DhGroup(id);
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            write_message(&m.header, &payloads, &mut out);
            Fate::Replace(out)
        }));
        p.connect();
        p.run_for(Duration::from_secs(120));
        assert!(p.connected().is_none(), "{kind:?} {id}");
        match p.disconnect_reason() {
            Some(DisconnectReason::NegotiationFailed(why)) => {
                assert!(why.contains("did not offer"), "{kind:?} {id}: {why}")
            }
            other => panic!("{kind:?} {id}: {other:?}"),
        }
        assert!(
            p.client.ike().ike_proposal().is_none(),
            "nothing was selected"
        );
    }
}

#[test]
fn our_responder_refuses_a_weak_only_offer() {
    // A client that allows 3DES and offers nothing else finds no proposal on our responder.
    let mut client = psk_client(PSK, &["3des-sha256-modp2048"], &[]);
    client.allow_weak = vec!["3des".into()];
    let mut p = Pair::new(client, server(&[]), 30);
    p.connect();
    p.run_for(Duration::from_secs(60));
    match p.disconnect_reason() {
        Some(DisconnectReason::NegotiationFailed(why)) => {
            assert!(why.contains("NO_PROPOSAL_CHOSEN"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}
