//! Hybrid post-quantum IKE SAs roam to roam on the virtual link: additional key exchanges
//! (RFC 9370) over IKE_INTERMEDIATE (RFC 9242) with ML-KEM on top of X25519 or ECP, the
//! classical fallback only where the profile allows it, a middlebox's downgrade caught by
//! AUTH, and PPK (RFC 8784).

mod pair;

use pair::{psk_client, responder_config, Dir, Fate, Pair};
use roam_proto::crypto::Secret;
use roam_proto::ike::responder::ResponderAuth;
use roam_proto::session::DisconnectReason;
use roam_proto::wire::{ExchangeType, Header, Message, Payload};

const PSK: &str = "correct horse battery staple";

fn psk() -> ResponderAuth {
    ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes()))
}

type Seen = Vec<(Dir, ExchangeType, usize, u32)>;

/// Direction, exchange, length and message ID of every datagram (fragments each).
fn record(p: &mut Pair) -> std::rc::Rc<std::cell::RefCell<Seen>> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s = seen.clone();
    p.filter = Some(Box::new(move |dir, _, d: &[u8]| {
        let d = d.strip_prefix(&[0, 0, 0, 0][..]).unwrap_or(d);
        if let Ok(h) = Header::parse(d) {
            s.borrow_mut()
                .push((dir, h.exchange, d.len(), h.message_id));
        }
        Fate::Deliver
    }));
    seen
}

fn hybrid(client_ike: &str, server_ike: &str, seed: u64) -> (Pair, Seen) {
    let mut p = Pair::new(
        psk_client(PSK, &[client_ike], &[]),
        responder_config(psk(), &[server_ike]),
        seed,
    );
    let seen = record(&mut p);
    p.connect();
    let seen = seen.borrow().clone();
    (p, seen)
}

fn intermediates(seen: &Seen) -> Vec<(Dir, usize)> {
    seen.iter()
        .filter(|(_, e, _, _)| *e == ExchangeType::IKE_INTERMEDIATE)
        .map(|(d, _, l, _)| (*d, *l))
        .collect()
}

#[test]
fn x25519_with_mlkem768() {
    let ike = "aes256gcm16-prfsha384-x25519-ke1_mlkem768";
    let (mut p, seen) = hybrid(ike, ike, 1);
    let info = p.connected().expect("connected").clone();
    assert_eq!(
        info.ike_proposal,
        "aes256gcm16-prfsha384-curve25519-ke1_mlkem768"
    );
    // One IKE_INTERMEDIATE each way, between IKE_SA_INIT and IKE_AUTH, carrying the
    // encapsulation key (1184 bytes) out and the ciphertext (1088 bytes) back.
    let im = intermediates(&seen);
    assert_eq!(im.len(), 2, "{seen:?}");
    assert_eq!(im[0].0, Dir::ToServer);
    assert!(im[0].1 > 1184 && im[0].1 < 1184 + 100, "{im:?}");
    assert_eq!(im[1].0, Dir::ToClient);
    assert!(im[1].1 > 1088 && im[1].1 < 1088 + 100, "{im:?}");
    let order: Vec<ExchangeType> = seen.iter().map(|s| s.1).collect();
    let first_auth = order
        .iter()
        .position(|e| *e == ExchangeType::IKE_AUTH)
        .unwrap();
    let last_im = order
        .iter()
        .rposition(|e| *e == ExchangeType::IKE_INTERMEDIATE)
        .unwrap();
    assert!(last_im < first_auth);
    assert!(p.server_established().is_some());
    assert!(p.ping(3), "ESP works on the hybrid SA's CHILD SA");
}

#[test]
fn ecp384_with_mlkem1024() {
    let ike = "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024";
    let (mut p, seen) = hybrid(ike, ike, 2);
    let info = p.connected().expect("connected").clone();
    assert_eq!(
        info.ike_proposal,
        "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024"
    );
    let im = intermediates(&seen);
    // The 1568-byte encapsulation key exceeds the 1280-byte fragment size: fragments.
    assert!(
        im.iter().filter(|(d, _)| *d == Dir::ToServer).count() >= 2,
        "{im:?}"
    );
    assert!(p.ping(2));
}

#[test]
fn x25519_with_two_additional_exchanges() {
    let ike = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024";
    let (mut p, seen) = hybrid(ike, ike, 3);
    let info = p.connected().expect("connected").clone();
    assert_eq!(
        info.ike_proposal,
        "aes256gcm16-prfsha384-curve25519-ke1_mlkem768-ke2_mlkem1024"
    );
    let mut ids: Vec<u32> = seen
        .iter()
        .filter(|s| s.0 == Dir::ToClient && s.1 == ExchangeType::IKE_INTERMEDIATE)
        .map(|s| s.3)
        .collect();
    ids.dedup();
    assert_eq!(ids, vec![1, 2], "two IKE_INTERMEDIATE exchanges: {seen:?}");
    // IKE_AUTH follows with message ID 3.
    assert!(seen
        .iter()
        .any(|s| s.1 == ExchangeType::IKE_AUTH && s.3 == 3));
    assert!(p.ping(2));
}

#[test]
fn server_preference_among_offered_methods() {
    let (p, _) = hybrid(
        "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_mlkem1024",
        "aes256gcm16-prfsha384-x25519-ke1_mlkem1024",
        4,
    );
    assert_eq!(
        p.connected().expect("connected").ike_proposal,
        "aes256gcm16-prfsha384-curve25519-ke1_mlkem1024"
    );
}

/// Rewrites the IKE_SA_INIT request: drops every ADDITIONAL_KEY_EXCHANGE transform, and
/// with `dedup` also the proposals that became copies of a later one (so the responder's
/// answer names a proposal the client offered as classical).
fn strip_additional(d: &[u8], dedup: bool) -> Option<Vec<u8>> {
    let msg = Message::parse(d).ok()?;
    if msg.header.exchange != ExchangeType::IKE_SA_INIT || msg.header.is_response() {
        return None;
    }
    let payloads: Vec<Payload<'_>> = msg
        .payloads
        .iter()
        .map(|p| match p {
            Payload::Sa(props) => Payload::Sa(
                props
                    .iter()
                    .map(|pr| {
                        let mut pr = pr.clone();
                        pr.transforms.retain(|t| !(6..=12).contains(&t.kind.0));
                        pr
                    })
                    .collect::<Vec<_>>()
                    .iter()
                    .enumerate()
                    .filter(|(i, pr)| {
                        let later = props.iter().skip(i + 1);
                        !dedup || !later.clone().any(|o| o.transforms == pr.transforms)
                    })
                    .map(|(_, pr)| pr.clone())
                    .collect(),
            ),
            other => other.clone(),
        })
        .collect();
    let mut out = Vec::new();
    roam_proto::wire::message::write_message(&msg.header, &payloads, &mut out);
    Some(out)
}

#[test]
fn downgrade_by_a_middlebox_fails_authentication() {
    // The client allows the fallback, so the stripped proposal is acceptable to it: only
    // AUTH, which covers the IKE_SA_INIT request as sent, reveals the tampering.
    let mut client = psk_client(PSK, &["aes256gcm16-prfsha384-x25519-ke1_mlkem768"], &[]);
    client.pq_fallback = true;
    let server = responder_config(
        psk(),
        &[
            "aes256gcm16-prfsha384-x25519-ke1_mlkem768",
            "aes256gcm16-prfsha384-x25519",
        ],
    );
    let mut p = Pair::new(client, server, 5);
    p.filter = Some(Box::new(|dir, _, d: &[u8]| {
        if dir == Dir::ToServer {
            if let Some(m) = strip_additional(d, true) {
                return Fate::Replace(m);
            }
        }
        Fate::Deliver
    }));
    p.connect();
    p.run_for(std::time::Duration::from_secs(60));
    assert!(p.connected().is_none(), "{:?}", p.client_events);
    assert!(p.server_established().is_none());
    match p.disconnect_reason() {
        Some(DisconnectReason::AuthenticationFailed(_)) => {}
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

#[test]
fn stripped_additional_exchange_is_refused_without_fallback() {
    let ike = "aes256gcm16-prfsha384-x25519-ke1_mlkem768";
    let server = responder_config(psk(), &[ike, "aes256gcm16-prfsha384-x25519"]);
    let mut p = Pair::new(psk_client(PSK, &[ike], &[]), server, 10);
    p.filter = Some(Box::new(|dir, _, d: &[u8]| {
        if dir == Dir::ToServer {
            if let Some(m) = strip_additional(d, false) {
                return Fate::Replace(m);
            }
        }
        Fate::Deliver
    }));
    p.connect();
    p.run_for(std::time::Duration::from_secs(30));
    assert!(p.connected().is_none());
    match p.disconnect_reason() {
        Some(DisconnectReason::NegotiationFailed(why)) => {
            assert!(why.contains("pq_fallback"), "{why}")
        }
        other => panic!("expected a negotiation failure, got {other:?}"),
    }
}

#[test]
fn fallback_refused_by_default() {
    // A server without post-quantum support.
    let mut p = Pair::new(
        psk_client(PSK, &["aes256gcm16-prfsha384-x25519-ke1_mlkem768"], &[]),
        responder_config(psk(), &["aes256gcm16-prfsha384-x25519"]),
        6,
    );
    p.connect();
    p.run_for(std::time::Duration::from_secs(30));
    assert!(p.connected().is_none());
    match p.disconnect_reason() {
        Some(DisconnectReason::NegotiationFailed(why)) => {
            assert!(why.contains("NO_PROPOSAL_CHOSEN"), "{why}");
            assert!(why.contains("pq_fallback"), "{why}");
        }
        other => panic!("expected a negotiation failure, got {other:?}"),
    }
}

#[test]
fn fallback_allowed_by_the_profile() {
    let mut client = psk_client(PSK, &["aes256gcm16-prfsha384-x25519-ke1_mlkem768"], &[]);
    client.pq_fallback = true;
    let (p, seen) = {
        let mut p = Pair::new(
            client,
            responder_config(psk(), &["aes256gcm16-prfsha384-x25519"]),
            7,
        );
        let seen = record(&mut p);
        p.connect();
        let s = seen.borrow().clone();
        (p, s)
    };
    assert_eq!(
        p.connected().expect("connected classically").ike_proposal,
        "aes256gcm16-prfsha384-curve25519"
    );
    assert!(intermediates(&seen).is_empty());
}

#[test]
fn hybrid_still_preferred_with_fallback_allowed() {
    let mut client = psk_client(PSK, &["aes256gcm16-prfsha384-x25519-ke1_mlkem768"], &[]);
    client.pq_fallback = true;
    let p = Pair::connected_with(
        client,
        responder_config(
            psk(),
            &[
                "aes256gcm16-prfsha384-x25519",
                "aes256gcm16-prfsha384-x25519-ke1_mlkem768",
            ],
        ),
        8,
    );
    // The responder walks its own list first, but only a classical proposal of ours matches
    // its first entry: a server that prefers classical gets classical. Ours come in order.
    let name = &p.connected().unwrap().ike_proposal;
    assert!(
        name.starts_with("aes256gcm16-prfsha384-curve25519"),
        "{name}"
    );
}

#[test]
fn tampered_intermediate_response_is_dropped() {
    // A flipped bit in the IKE_INTERMEDIATE response fails its integrity check: dropped,
    // and the retransmission that follows gets through.
    let ike = "aes256gcm16-prfsha384-x25519-ke1_mlkem768";
    let mut p = Pair::new(
        psk_client(PSK, &[ike], &[]),
        responder_config(psk(), &[ike]),
        9,
    );
    let mut done = false;
    p.filter = Some(Box::new(move |dir, _, d: &[u8]| {
        let body = d.strip_prefix(&[0, 0, 0, 0][..]).unwrap_or(d);
        let is_im = Header::parse(body).is_ok_and(|h| h.exchange == ExchangeType::IKE_INTERMEDIATE);
        if dir == Dir::ToClient && is_im && !done {
            done = true;
            let mut m = d.to_vec();
            let last = m.len() - 1;
            m[last] ^= 1;
            return Fate::Replace(m);
        }
        Fate::Deliver
    }));
    p.connect();
    p.run_for(std::time::Duration::from_secs(20));
    assert!(p.connected().is_some(), "{:?}", p.client_events);
}

// ---- PPK (RFC 8784) ----

use roam_proto::ike::ppk::{Ppk, ResponderPpks};

fn client_ppk(id: &str, key: &str, required: bool) -> Ppk {
    Ppk {
        id: id.as_bytes().to_vec(),
        key: Secret::from_slice(key.as_bytes()),
        required,
    }
}

fn server_ppks(keys: &[(&str, &str)], required: bool) -> ResponderPpks {
    ResponderPpks {
        keys: keys
            .iter()
            .map(|(i, k)| (i.as_bytes().to_vec(), Secret::from_slice(k.as_bytes())))
            .collect(),
        required,
    }
}

const PPK: &str = "a long post-quantum preshared key, 32+ bytes of it";

/// A pair whose server has `ppks` (None: no PPK support at all).
fn ppk_pair(client: Option<Ppk>, server: Option<ResponderPpks>, ike: &str, seed: u64) -> Pair {
    let mut c = psk_client(PSK, &[ike], &[]);
    c.ppk = client;
    let mut p = Pair::new(c, responder_config(psk(), &[ike]), seed);
    if let Some(s) = server {
        let r = std::mem::replace(
            &mut p.server,
            roam_proto::ike::responder::Responder::new(
                responder_config(psk(), &[ike]),
                Box::new(roam_proto::rng::SeededRng::new(seed ^ 0x5eed)),
            ),
        );
        p.server = r.with_ppks(s);
    }
    p.connect();
    p.run_for(std::time::Duration::from_secs(20));
    p
}

const CLASSIC: &str = "aes256gcm16-prfsha256-x25519";

#[test]
fn ppk_mandatory_both_ends() {
    let mut p = ppk_pair(
        Some(client_ppk("alice", PPK, true)),
        Some(server_ppks(&[("bob", "other"), ("alice", PPK)], true)),
        CLASSIC,
        20,
    );
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(p.client.ike().ppk_used());
    assert!(p.ping(2), "CHILD SA keys from SK_d' agree");
}

#[test]
fn ppk_with_hybrid_key_exchange() {
    let mut p = ppk_pair(
        Some(client_ppk("alice", PPK, true)),
        Some(server_ppks(&[("alice", PPK)], false)),
        "aes256gcm16-prfsha384-x25519-ke1_mlkem768",
        21,
    );
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(p.client.ike().ppk_used());
    assert!(p.ping(2));
}

#[test]
fn ppk_mandatory_fails_without_server_support() {
    let p = ppk_pair(Some(client_ppk("alice", PPK, true)), None, CLASSIC, 22);
    assert!(p.connected().is_none());
    match p.disconnect_reason() {
        Some(DisconnectReason::NegotiationFailed(why)) => assert!(why.contains("PPK"), "{why}"),
        other => panic!("expected a negotiation failure, got {other:?}"),
    }
}

#[test]
fn ppk_optional_falls_back_without_server_support() {
    let mut p = ppk_pair(Some(client_ppk("alice", PPK, false)), None, CLASSIC, 23);
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(!p.client.ike().ppk_used());
    assert!(p.ping(1));
}

#[test]
fn ppk_optional_falls_back_when_the_server_lacks_our_ppk() {
    // The server supports PPK but not ours: it checks NO_PPK_AUTH and both keep plain keys.
    let mut p = ppk_pair(
        Some(client_ppk("alice", PPK, false)),
        Some(server_ppks(&[("bob", "bob's key")], false)),
        CLASSIC,
        24,
    );
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(!p.client.ike().ppk_used());
    assert!(p.ping(1));
}

#[test]
fn ppk_mismatch_fails_authentication() {
    // Same identity, different key: AUTH with SK_pi' does not verify.
    let p = ppk_pair(
        Some(client_ppk("alice", PPK, true)),
        Some(server_ppks(&[("alice", "not the same key at all")], false)),
        CLASSIC,
        25,
    );
    assert!(p.connected().is_none());
    match p.disconnect_reason() {
        Some(DisconnectReason::AuthenticationFailed(_)) => {}
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

#[test]
fn ppk_required_by_the_server() {
    // The client has no PPK; the server requires one.
    let p = ppk_pair(
        None,
        Some(server_ppks(&[("alice", PPK)], true)),
        CLASSIC,
        26,
    );
    assert!(p.connected().is_none());
    assert!(matches!(
        p.disconnect_reason(),
        Some(DisconnectReason::AuthenticationFailed(_))
    ));
    // A client whose mandatory PPK the server lacks fails too.
    let p = ppk_pair(
        Some(client_ppk("carol", PPK, true)),
        Some(server_ppks(&[("alice", PPK)], true)),
        CLASSIC,
        27,
    );
    assert!(p.connected().is_none());
}

#[test]
fn hybrid_ike_sa_rekeys_with_its_additional_exchange() {
    // The rekey's CREATE_CHILD_SA offers the proposal with its additional exchange, which
    // then runs in IKE_FOLLOWUP_KE (tests/pq_rekey.rs goes through it in detail).
    let ike = "aes256gcm16-prfsha384-x25519-ke1_mlkem768";
    let mut p = Pair::connected_with(
        psk_client(PSK, &[ike], &[]),
        responder_config(psk(), &[ike]),
        30,
    );
    let old = p.client.ike().spis();
    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    let new = p.client.ike().spis();
    assert_ne!(new.0, old.0, "IKE SA rekeyed");
    assert_eq!(
        p.client.ike().ike_proposal().map(|s| s.name()).as_deref(),
        Some("aes256gcm16-prfsha384-curve25519-ke1_mlkem768")
    );
    assert!(p.ping(2));
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    assert!(p.ping(2), "CHILD SA rekeyed on the new IKE SA");
}
