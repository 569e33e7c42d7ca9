//! A hostile server or path answering IKE_SA_INIT: the genuine response from our responder is
//! rewritten on the virtual link (an unknown critical payload, a proposal we did not offer, a
//! KE for another group, a bad nonce, a REDIRECT we never asked for, wrong SPIs and message
//! IDs), or forged responses are injected beside it (an INVALID_SYNTAX storm, replays).
//!
//! The response is unauthenticated, so the client refuses what it cannot accept without
//! acting on it: a genuine response that follows still connects (RFC 7296 §2.21.1), and a
//! server that keeps answering the same way ends the attempt with a typed reason once the
//! retransmitted request drew it again. Nothing the attacker sends makes the client send more.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pair::{psk_client, psk_server, Dir, Fate, Filter, Pair};
use roam_proto::session::{DisconnectReason, Received, State};
use roam_proto::wire::message::write_message;
use roam_proto::wire::{
    flags, DhGroup, ExchangeType, Header, IntegId, Message, NotifyType, Payload, PayloadType,
    PrfId, TransformType, CRITICAL,
};

const PSK: &str = "correct horse battery staple";
const IKE: &str = "aes256gcm16-prfsha384-ecp384";

fn is_init_response(d: &[u8]) -> bool {
    Message::parse(d)
        .is_ok_and(|m| m.header.exchange == ExchangeType::IKE_SA_INIT && m.header.is_response())
}

/// `d` parsed, edited and written back.
fn rewrite<F>(d: &[u8], edit: &F) -> Vec<u8>
where
    F: for<'a> Fn(&mut Header, &mut Vec<Payload<'a>>),
{
    let m = Message::parse(d).expect("a message from our responder");
    let mut header = m.header;
    let mut payloads = m.payloads.clone();
    edit(&mut header, &mut payloads);
    let mut out = Vec::new();
    write_message(&header, &payloads, &mut out);
    out
}

/// A link that rewrites IKE_SA_INIT responses: every one, or only the first.
fn rewriting<F>(edit: F, every: bool) -> Filter
where
    F: for<'a> Fn(&mut Header, &mut Vec<Payload<'a>>) + 'static,
{
    let mut done = false;
    Box::new(move |dir, _, d| {
        if dir == Dir::ToClient && is_init_response(d) && (every || !done) {
            done = true;
            Fate::Replace(rewrite(d, &edit))
        } else {
            Fate::Deliver
        }
    })
}

fn pair(ike: &[&str], seed: u64) -> Pair {
    Pair::new(psk_client(PSK, ike, &[]), psk_server(PSK), seed)
}

/// Connects through `filter` and lets retransmissions run their course.
fn attempt(ike: &[&str], seed: u64, filter: Filter) -> Pair {
    let mut p = pair(ike, seed);
    p.filter = Some(filter);
    p.connect();
    p.run_for(Duration::from_secs(600));
    p
}

fn assert_works(p: &mut Pair) {
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert_eq!(p.client.state(), State::Connected);
    assert!(p.ping(1), "traffic flows");
}

fn reason(p: &Pair) -> DisconnectReason {
    p.disconnect_reason()
        .cloned()
        .unwrap_or_else(|| panic!("no failure: {:?}", p.client_events))
}

/// Replaces the SA payload's single proposal with `edit` applied to it.
fn edit_proposal(payloads: &mut [Payload<'_>], edit: impl Fn(&mut roam_proto::wire::Proposal)) {
    for p in payloads.iter_mut() {
        if let Payload::Sa(props) = p {
            for prop in props.iter_mut() {
                edit(prop);
            }
        }
    }
}

fn set_transform(prop: &mut roam_proto::wire::Proposal, kind: TransformType, id: u16) {
    for t in prop.transforms.iter_mut().filter(|t| t.kind == kind) {
        t.id = id;
    }
}

#[test]
fn an_unknown_critical_payload_rejects_the_response() {
    // RFC 7296 §2.5: a response with an unrecognized critical payload is rejected. A
    // non-critical one is skipped.
    let add_unknown = || {
        |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
            pl.push(Payload::Unknown {
                kind: PayloadType(222),
                data: &b"surprise"[..],
            });
        }
    };
    let set_critical = |d: Vec<u8>| {
        // The unknown payload is the last one: set its critical bit.
        let mut d = d;
        let at = d.len() - 4 - b"surprise".len() + 1;
        d[at] |= CRITICAL;
        d
    };
    let mut every = pair(&[IKE], 1);
    let edit = add_unknown();
    every.filter = Some(Box::new(move |dir, _, d| {
        if dir == Dir::ToClient && is_init_response(d) {
            Fate::Replace(set_critical(rewrite(d, &edit)))
        } else {
            Fate::Deliver
        }
    }));
    every.connect();
    every.run_for(Duration::from_secs(600));
    assert_eq!(reason(&every), DisconnectReason::Timeout);
    let (_, drops) = every.client.dropped();
    assert_eq!(drops.malformed, 5, "each of the five answers rejected");
    assert_eq!(every.sent[0], 5, "no extra sends");

    // Injected once: the genuine answer to the retransmission connects.
    let mut once = pair(&[IKE], 2);
    let edit = add_unknown();
    let mut done = false;
    once.filter = Some(Box::new(move |dir, _, d| {
        if dir == Dir::ToClient && is_init_response(d) && !done {
            done = true;
            Fate::Replace(set_critical(rewrite(d, &edit)))
        } else {
            Fate::Deliver
        }
    }));
    once.connect();
    once.run_for(Duration::from_secs(30));
    assert_works(&mut once);
    assert_eq!(once.client.dropped().1.malformed, 1);

    // Not critical: skipped by the parser, but the response is no longer the one the server
    // sent, and its AUTH covers what it sent (RFC 7296 §2.15): the tampering is caught.
    let p = attempt(&[IKE], 3, rewriting(add_unknown(), true));
    assert!(
        matches!(reason(&p), DisconnectReason::AuthenticationFailed(_)),
        "{:?}",
        p.client_events
    );
}

#[test]
fn a_proposal_we_did_not_offer_is_refused() {
    // The responder "chooses" PRF HMAC-SHA1 and integrity HMAC-SHA1-96: we offered neither.
    let weaker = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        edit_proposal(pl, |prop| {
            set_transform(prop, TransformType::PRF, PrfId::HMAC_SHA1.0);
            prop.transforms.push(roam_proto::wire::Transform {
                kind: TransformType::INTEG,
                id: IntegId::HMAC_SHA1_96.0,
                key_length: None,
            });
        })
    };
    let p = attempt(&[IKE], 10, rewriting(weaker, true));
    match reason(&p) {
        DisconnectReason::NegotiationFailed(why) => assert!(why.contains("did not offer"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.sent[0], 2,
        "believed after the retransmission drew it again"
    );
    assert_eq!(p.client.dropped().1.refused, 2);
    assert!(p.connected().is_none());

    // Injected before the genuine answer: refused, and the genuine one connects.
    let mut p = attempt(&[IKE], 11, rewriting(weaker, false));
    assert_works(&mut p);
    assert_eq!(p.connected().unwrap().ike_proposal, IKE);
    assert_eq!(p.client.dropped().1.refused, 1);
}

#[test]
fn a_proposal_mixing_two_of_ours_is_refused() {
    // We offer two proposals; the answer takes proposal 1's number and cipher with
    // proposal 2's PRF: a combination we never offered.
    let ours = [
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-prfsha256-ecp384",
    ];
    let mix = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        edit_proposal(pl, |prop| {
            prop.number = 1;
            set_transform(prop, TransformType::PRF, PrfId::HMAC_SHA2_256.0);
        })
    };
    let p = attempt(&ours, 12, rewriting(mix, true));
    assert!(
        matches!(reason(&p), DisconnectReason::NegotiationFailed(_)),
        "{:?}",
        p.client_events
    );
}

#[test]
fn the_responder_may_choose_our_second_proposal() {
    // Not an attack: every proposal we offer is one we accept. (A man in the middle who
    // strips the first one is caught by AUTH: see downgrade.rs.)
    let server = pair::responder_config(
        roam_proto::ike::responder::ResponderAuth::Psk(roam_proto::crypto::Secret::from_slice(
            PSK.as_bytes(),
        )),
        &["aes256gcm16-prfsha256-curve25519"],
    );
    let client = psk_client(
        PSK,
        &[
            "aes256gcm16-prfsha384-curve25519",
            "aes256gcm16-prfsha256-curve25519",
        ],
        &[],
    );
    let mut p = Pair::new(client, server, 13);
    p.connect();
    assert_works(&mut p);
    assert_eq!(
        p.connected().unwrap().ike_proposal,
        "aes256gcm16-prfsha256-curve25519"
    );
}

#[test]
fn a_ke_for_another_group_is_refused() {
    // The KE payload claims ecp256 while the chosen proposal says ecp384.
    let other_ke = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        for p in pl.iter_mut() {
            if let Payload::Ke { group, .. } = p {
                *group = DhGroup::ECP_256;
            }
        }
    };
    let p = attempt(&[IKE], 20, rewriting(other_ke, true));
    match reason(&p) {
        DisconnectReason::ProtocolError(why) => assert!(why.contains("KE group"), "{why}"),
        other => panic!("{other:?}"),
    }

    // The proposal and the KE agree on curve25519, which we offered, but our KE was ecp384.
    let ours = "aes256gcm16-prfsha384-ecp384-curve25519";
    let switch = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        edit_proposal(pl, |prop| {
            set_transform(prop, TransformType::DH, DhGroup::CURVE25519.0)
        });
        for p in pl.iter_mut() {
            if let Payload::Ke { group, data } = p {
                *group = DhGroup::CURVE25519;
                *data = &[9u8; 32];
            }
        }
    };
    // The server takes ecp384 (our first group), so our KE is ecp384.
    let p = attempt(&[ours], 21, rewriting(switch, true));
    match reason(&p) {
        DisconnectReason::ProtocolError(why) => assert!(why.contains("KE group"), "{why}"),
        other => panic!("{other:?}"),
    }

    // The right group with a public value of the wrong length.
    let short = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        for p in pl.iter_mut() {
            if let Payload::Ke { data, .. } = p {
                *data = &data[..data.len() / 2];
            }
        }
    };
    let p = attempt(&[IKE], 22, rewriting(short, true));
    match reason(&p) {
        DisconnectReason::ProtocolError(why) => assert!(why.contains("key exchange"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Once only: the genuine answer connects.
    let mut p = attempt(&[IKE], 23, rewriting(short, false));
    assert_works(&mut p);
}

#[test]
fn a_missing_or_wrong_length_nonce_is_refused() {
    let without = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        pl.retain(|p| !matches!(p, Payload::Nonce(_)));
    };
    let p = attempt(&[IKE], 30, rewriting(without, true));
    match reason(&p) {
        DisconnectReason::ProtocolError(why) => assert!(why.contains("Nonce"), "{why}"),
        other => panic!("{other:?}"),
    }
    // 8 and 300 bytes (RFC 7296 §3.9: 16..=256): the message is malformed, never accepted.
    for (len, seed) in [(8usize, 31u64), (300, 32)] {
        let bad = move |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
            for p in pl.iter_mut() {
                if let Payload::Nonce(n) = p {
                    *n = &[7u8; 300][..len];
                }
            }
        };
        let p = attempt(&[IKE], seed, rewriting(bad, true));
        assert_eq!(reason(&p), DisconnectReason::Timeout, "nonce of {len}");
        assert_eq!(p.client.dropped().1.malformed, 5, "nonce of {len}");
        let mut p = attempt(&[IKE], seed + 10, rewriting(bad, false));
        assert_works(&mut p);
    }
}

/// A forged IKE_SA_INIT response to `request` carrying only the error notify `kind`.
fn forged_error(request: &[u8], kind: NotifyType, spi_r: u64) -> Vec<u8> {
    let h = Message::parse(request).unwrap().header;
    let header = Header::new(
        h.spi_i,
        spi_r,
        ExchangeType::IKE_SA_INIT,
        flags::RESPONSE,
        h.message_id,
    );
    let mut out = Vec::new();
    write_message(&header, &[Payload::notify(kind, &[])], &mut out);
    out
}

/// A pair whose first IKE_SA_INIT request is captured and whose answers are held back
/// (every answer when `hold_all`).
/// What a test keeps of the link: every request sent, the last answer held back.
type Kept = (Rc<RefCell<Vec<Vec<u8>>>>, Rc<RefCell<Vec<u8>>>);

fn held(seed: u64, hold_all: bool) -> (Pair, Kept) {
    let mut p = pair(&[IKE], seed);
    let requests = Rc::new(RefCell::new(Vec::new()));
    let answer = Rc::new(RefCell::new(Vec::new()));
    let (r2, a2) = (requests.clone(), answer.clone());
    p.filter = Some(Box::new(move |dir, _, d| match dir {
        Dir::ToServer => {
            r2.borrow_mut().push(d.to_vec());
            Fate::Deliver
        }
        Dir::ToClient if is_init_response(d) && (hold_all || a2.borrow().is_empty()) => {
            *a2.borrow_mut() = d.to_vec();
            Fate::Drop
        }
        Dir::ToClient => Fate::Deliver,
    }));
    p.connect();
    (p, (requests, answer))
}

fn inject(p: &mut Pair, d: &[u8]) -> Received {
    let now = p.now;
    p.client.handle_datagram(
        now,
        pair::client_addr(),
        pair::server_addr(),
        &mut d.to_vec(),
    )
}

#[test]
fn an_invalid_syntax_storm_does_not_stop_a_genuine_response() {
    let (mut p, (requests, answer)) = held(40, false);
    let request = requests.borrow()[0].clone();
    let sent = p.sent[0];
    for i in 0..200u64 {
        inject(
            &mut p,
            &forged_error(&request, NotifyType::INVALID_SYNTAX, i + 1),
        );
        inject(
            &mut p,
            &forged_error(&request, NotifyType::NO_PROPOSAL_CHOSEN, 0),
        );
    }
    assert!(
        p.client.poll_transmit().is_none(),
        "the storm drew no datagram"
    );
    assert_eq!(p.sent[0], sent);
    assert_eq!(p.client.dropped().1.refused, 400);
    assert_eq!(p.client.state(), State::Connecting);
    // The genuine answer, held back until now, connects.
    let genuine = answer.borrow().clone();
    inject(&mut p, &genuine);
    p.pump();
    assert_works(&mut p);
}

#[test]
fn an_invalid_syntax_storm_alone_ends_the_attempt_after_the_retransmission() {
    let (mut p, (requests, _)) = held(41, true);
    let request = requests.borrow()[0].clone();
    for _ in 0..100 {
        inject(
            &mut p,
            &forged_error(&request, NotifyType::INVALID_SYNTAX, 0),
        );
    }
    assert!(p.disconnect_reason().is_none(), "one round is not believed");
    assert!(p.advance(Duration::from_secs(60)), "the retransmission");
    assert_eq!(p.sent[0], 2);
    inject(
        &mut p,
        &forged_error(&request, NotifyType::INVALID_SYNTAX, 0),
    );
    p.pump();
    match reason(&p) {
        DisconnectReason::NegotiationFailed(why) => {
            assert!(why.contains("INVALID_SYNTAX"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.client.poll_timeout(), None, "nothing more to do");
    assert_eq!(p.sent[0], 2, "no further sends");
}

#[test]
fn a_redirect_we_never_asked_for_is_not_followed() {
    // We never send REDIRECT_SUPPORTED (RFC 5685), so a REDIRECT is ignored: in a response
    // that is otherwise genuine, and as a whole response (which then lacks SA, KE, Nonce).
    const GATEWAY: [u8; 6] = [1, 4, 192, 0, 2, 66];
    let beside = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        pl.push(Payload::notify(NotifyType::REDIRECT, &GATEWAY));
    };
    // Added on the path to a genuine response: not followed, and the server's AUTH, which
    // covers the response it really sent, no longer verifies.
    let p = attempt(&[IKE], 50, rewriting(beside, true));
    assert!(
        matches!(reason(&p), DisconnectReason::AuthenticationFailed(_)),
        "{:?}",
        p.client_events
    );
    assert_eq!(p.client.ike().path().1.ip(), pair::server_addr().ip());

    let instead = |_: &mut Header, pl: &mut Vec<Payload<'_>>| {
        *pl = vec![Payload::notify(NotifyType::REDIRECT, &GATEWAY)];
    };
    let mut p = attempt(&[IKE], 51, rewriting(instead, false));
    assert_works(&mut p);
    assert_eq!(p.client.ike().path().1.ip(), pair::server_addr().ip());
    let p = attempt(&[IKE], 52, rewriting(instead, true));
    assert!(matches!(reason(&p), DisconnectReason::ProtocolError(_)));
    assert_eq!(p.client.ike().path().1.ip(), pair::server_addr().ip());
}

#[test]
fn responses_with_wrong_spis_or_message_ids_are_dropped() {
    let spi = |h: &mut Header, _: &mut Vec<Payload<'_>>| h.spi_i ^= 1;
    let p = attempt(&[IKE], 60, rewriting(spi, true));
    assert_eq!(reason(&p), DisconnectReason::Timeout);
    assert_eq!(p.client.dropped().1.unknown_spi, 5);
    let mut p = attempt(&[IKE], 61, rewriting(spi, false));
    assert_works(&mut p);

    let id = |h: &mut Header, _: &mut Vec<Payload<'_>>| h.message_id = 1;
    let p = attempt(&[IKE], 62, rewriting(id, true));
    assert_eq!(reason(&p), DisconnectReason::Timeout);
    assert_eq!(p.client.dropped().1.unexpected, 5);

    // Our own request reflected back (the I flag, no R flag): not a response from the peer.
    let reflect = |h: &mut Header, _: &mut Vec<Payload<'_>>| h.flags = flags::INITIATOR;
    let p = attempt(&[IKE], 63, rewriting(reflect, true));
    assert_eq!(reason(&p), DisconnectReason::Timeout);
}

#[test]
fn old_init_responses_replayed_change_nothing() {
    // A response from another attempt (other SPIs), during the handshake of this one.
    let (mut earlier, (_, old)) = held(70, false);
    drop(earlier.filter.take());
    let old = old.borrow().clone();
    let (mut p, (_, answer)) = held(71, false);
    inject(&mut p, &old);
    assert_eq!(p.client.dropped().1.unknown_spi, 1);
    assert_eq!(p.client.state(), State::Connecting);
    let genuine = answer.borrow().clone();
    inject(&mut p, &genuine);
    p.pump();
    assert_works(&mut p);
    // This attempt's own response, replayed once connected: a response to a request we
    // no longer have.
    // Unframed on port 500 (now that IKE moved to 4500 it is not IKE there): dropped.
    assert!(matches!(inject(&mut p, &genuine), Received::Dropped(_)));
    // Framed on 4500.
    let before = p.client.dropped().1.unexpected;
    let mut framed = roam_proto::wire::natt::NON_ESP_MARKER.to_vec();
    framed.extend_from_slice(&genuine);
    let now = p.now;
    let natt = pair::natt(pair::server_addr().ip());
    p.client
        .handle_datagram(now, pair::client_addr(), natt, &mut framed);
    p.pump();
    assert_eq!(p.client.dropped().1.unexpected, before + 1);
    assert_eq!(p.client.state(), State::Connected);
    assert!(p.ping(2));
}
