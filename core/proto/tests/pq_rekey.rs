//! Rekeys of hybrid post-quantum SAs on the virtual link (RFC 9370 §2.2.4): the
//! CREATE_CHILD_SA carries the proposal's additional key exchanges, one IKE_FOLLOWUP_KE per
//! exchange follows, and only then the new SA exists. IKE and CHILD SA rekeys by either end
//! with X25519 + ML-KEM-768 and X25519 + ML-KEM-768 + ML-KEM-1024, traffic on the new SAs, a
//! lost IKE_FOLLOWUP_KE request, the responder's timeout, an unknown link, collisions, and the
//! classical fallback only where the profile allows it.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pair::{psk_client, responder_config, Dir, Fate, Pair};
use roam_proto::config::ClientConfig;
use roam_proto::crypto::proposal::ProposalSpec;
use roam_proto::crypto::Secret;
use roam_proto::ike::protect;
use roam_proto::ike::responder::ResponderAuth;
use roam_proto::session::State;
use roam_proto::wire::{flags, DhGroup, ExchangeType, Header, Message, NotifyType, Payload};

const PSK: &str = "post-quantum rekey psk";
const ONE: &str = "aes256gcm16-prfsha384-x25519-ke1_mlkem768";
const TWO: &str = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024";
const ESP_ONE: &str = "aes256gcm16-x25519-ke1_mlkem768";
const ESP_TWO: &str = "aes256gcm16-x25519-ke1_mlkem768-ke2_mlkem1024";

/// One IKE datagram on the link: direction, exchange, response flag, length, and whether it
/// starts a message (not an SKF fragment after the first).
type Seen = Vec<(Dir, ExchangeType, bool, usize, bool)>;

/// Whether an IKE message (no marker) starts a message: not an SKF fragment numbered > 1.
fn starts_message(d: &[u8]) -> bool {
    const SKF: u8 = 53;
    match (d.get(16), d.get(32..34)) {
        (Some(&SKF), Some(n)) => u16::from_be_bytes([n[0], n[1]]) == 1,
        _ => true,
    }
}

fn client(ike: &str, esp: &str) -> ClientConfig {
    let mut c = psk_client(PSK, &[ike], &[esp]);
    // Only the rekeys wake the client here.
    c.dpd = None;
    c.silence = Duration::from_secs(24 * 3600);
    c.reconnect = None;
    c
}

fn pair(ike: &str, esp: &str, server_esp: &str, seed: u64) -> (Pair, u64) {
    let mut server = responder_config(
        ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes())),
        &[ike],
    );
    server.esp = vec![ProposalSpec::parse_esp(server_esp, &[]).unwrap()];
    let p = Pair::connected_with(client(ike, esp), server, seed);
    let spi_r = p.server_established().unwrap();
    (p, spi_r)
}

/// Records every IKE datagram; `drop` decides (by direction, exchange, response flag and
/// how many of that kind were seen before) which ones the link loses.
fn tap(
    p: &mut Pair,
    mut drop: impl FnMut(Dir, ExchangeType, bool, usize) -> bool + 'static,
) -> Rc<RefCell<Seen>> {
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let s = seen.clone();
    p.filter = Some(Box::new(move |dir, _, d: &[u8]| {
        let d = d.strip_prefix(&[0, 0, 0, 0][..]).unwrap_or(d);
        let Ok(h) = Header::parse(d) else {
            return Fate::Deliver;
        };
        let before = s
            .borrow()
            .iter()
            .filter(|x| x.0 == dir && x.1 == h.exchange && x.2 == h.is_response())
            .count();
        s.borrow_mut()
            .push((dir, h.exchange, h.is_response(), d.len(), starts_message(d)));
        if drop(dir, h.exchange, h.is_response(), before) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    seen
}

/// The messages of one kind on the link, by length: the fragments of one message count
/// once, with their lengths added.
fn count(seen: &Seen, dir: Dir, exchange: ExchangeType, response: bool) -> Vec<usize> {
    let mut out = Vec::new();
    for (d, e, r, len, starts) in seen {
        if (*d, *e, *r) != (dir, exchange, response) {
            continue;
        }
        match out.last_mut() {
            Some(total) if !starts => *total += len,
            _ => out.push(*len),
        }
    }
    out
}

/// Both ends agree on the CHILD SA (SPIs, keys) and nothing else is left; traffic flows.
fn assert_child_agrees(p: &mut Pair, spi_r: u64) {
    let c = p.client.ike().child().expect("client CHILD SA").clone();
    let s = p.server.child(spi_r).expect("server CHILD SA").clone();
    assert_eq!((c.spi_in, c.spi_out), (s.spi_out, s.spi_in));
    assert_eq!(c.encr_out, s.encr_in);
    assert_eq!(c.encr_in, s.encr_out);
    assert!(
        p.client.ike().other_children().is_empty(),
        "client keeps old SAs"
    );
    assert!(
        p.server.other_children(spi_r).is_empty(),
        "server keeps old SAs"
    );
    for n in 0..3 {
        assert!(p.ping(n), "traffic on CHILD SA {:08x}", c.spi_in);
    }
    assert_eq!(p.client.state(), State::Connected);
}

/// Both ends agree on the IKE SA and it carries an exchange: a liveness check by the server.
fn assert_ike_agrees(p: &mut Pair, spi_r: u64) {
    assert_eq!(p.server.ike_spis(spi_r), Some(p.client.ike().spis()));
    assert_eq!(p.client.ike().old_ike_sas(), 0);
    assert_eq!(p.server.old_ike_sas(spi_r), 0);
    assert!(p.server.send_liveness_check(p.now, spi_r));
    p.pump();
    assert_eq!(p.client.state(), State::Connected);
}

/// The IKE_FOLLOWUP_KE exchanges of one rekey initiated by `from`: `n` requests each way's
/// KE sizes (encapsulation key out, ciphertext back).
fn assert_followups(seen: &Seen, from: Dir, kes: &[(usize, usize)]) {
    let to = if from == Dir::ToServer {
        Dir::ToClient
    } else {
        Dir::ToServer
    };
    let req = count(seen, from, ExchangeType::IKE_FOLLOWUP_KE, false);
    let resp = count(seen, to, ExchangeType::IKE_FOLLOWUP_KE, true);
    assert_eq!(req.len(), kes.len(), "{seen:?}");
    assert_eq!(resp.len(), kes.len(), "{seen:?}");
    for ((q, r), (ek, ct)) in req.iter().zip(&resp).zip(kes) {
        assert!(
            *q > *ek && *q < ek + 200,
            "request {q} carries a {ek}-byte key"
        );
        assert!(
            *r > *ct && *r < ct + 200,
            "response {r} carries a {ct}-byte ciphertext"
        );
    }
    // They come after the CREATE_CHILD_SA, one exchange each.
    assert_eq!(
        count(seen, from, ExchangeType::CREATE_CHILD_SA, false).len(),
        1
    );
}

const KE768: (usize, usize) = (1184, 1088);
const KE1024: (usize, usize) = (1568, 1568);

#[test]
fn ike_rekey_by_the_client_with_mlkem768() {
    let (mut p, spi_r) = pair(ONE, "aes256gcm16", "aes256gcm16", 1);
    let old = p.client.ike().spis();
    let seen = tap(&mut p, |_, _, _, _| false);
    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    assert_ne!(p.client.ike().spis(), old);
    assert_eq!(
        p.client.ike().ike_proposal().unwrap().name(),
        "aes256gcm16-prfsha384-curve25519-ke1_mlkem768"
    );
    assert_followups(&seen.borrow(), Dir::ToServer, &[KE768]);
    assert_ike_agrees(&mut p, spi_r);
    // A CHILD rekey on the new IKE SA (keys from its SK_d) and traffic.
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    assert_child_agrees(&mut p, spi_r);
}

#[test]
fn ike_rekey_by_the_server_with_two_additional_exchanges() {
    let (mut p, spi_r) = pair(TWO, "aes256gcm16", "aes256gcm16", 2);
    let old = p.client.ike().spis();
    let seen = tap(&mut p, |_, _, _, _| false);
    assert!(p.server.rekey_ike(p.now, spi_r));
    p.pump();
    assert_ne!(p.client.ike().spis(), old);
    assert!(!p.client.ike().is_original_initiator());
    assert_eq!(
        p.client.ike().ike_proposal().unwrap().name(),
        "aes256gcm16-prfsha384-curve25519-ke1_mlkem768-ke2_mlkem1024"
    );
    assert_followups(&seen.borrow(), Dir::ToClient, &[KE768, KE1024]);
    assert_ike_agrees(&mut p, spi_r);
    // And back, by the client: two more IKE_FOLLOWUP_KE exchanges on the new SA.
    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    assert!(p.client.ike().is_original_initiator());
    assert_eq!(
        count(
            &seen.borrow(),
            Dir::ToServer,
            ExchangeType::IKE_FOLLOWUP_KE,
            false
        )
        .len(),
        2
    );
    assert_ike_agrees(&mut p, spi_r);
    assert!(p.ping(1));
}

#[test]
fn child_rekeys_with_pfs_and_mlkem_both_ways() {
    for (esp, kes, seed) in [
        (ESP_ONE, &[KE768][..], 3),
        (ESP_TWO, &[KE768, KE1024][..], 4),
    ] {
        let (mut p, spi_r) = pair(ONE, esp, esp, seed);
        let first = p.client.ike().child().unwrap().clone();
        assert!(
            !first.selected.has_additional(),
            "IKE_AUTH's CHILD SA has no KE"
        );
        let seen = tap(&mut p, |_, _, _, _| false);
        let now = p.now;
        p.client.rekey_child(now);
        p.pump();
        let new = p.client.ike().child().unwrap().clone();
        assert_ne!(new.spi_in, first.spi_in);
        assert_eq!(new.selected.dh, Some(DhGroup::CURVE25519));
        assert_eq!(new.selected.additional[0], Some(DhGroup::ML_KEM_768));
        assert_eq!(new.selected.additional_kes().count(), kes.len());
        assert_followups(&seen.borrow(), Dir::ToServer, kes);
        assert_child_agrees(&mut p, spi_r);
        // By the server.
        seen.borrow_mut().clear();
        assert!(p.server.rekey_child(p.now, spi_r));
        p.pump();
        assert_ne!(p.client.ike().child().unwrap().spi_in, new.spi_in);
        assert_followups(&seen.borrow(), Dir::ToClient, kes);
        assert_child_agrees(&mut p, spi_r);
    }
}

#[test]
fn no_new_sa_before_the_last_followup_exchange() {
    // The server's last IKE_FOLLOWUP_KE response never arrives: nothing changes, because the
    // keys need the ML-KEM secret, and the retransmitted request then completes the rekey.
    let (mut p, spi_r) = pair(TWO, ESP_TWO, ESP_TWO, 5);
    let old = p.client.ike().child().unwrap().spi_in;
    let seen = tap(&mut p, |dir, e, resp, n| {
        dir == Dir::ToClient && e == ExchangeType::IKE_FOLLOWUP_KE && resp && n == 1
    });
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    assert_eq!(
        p.client.ike().child().unwrap().spi_in,
        old,
        "not before the last exchange"
    );
    assert_ne!(
        p.server.child(spi_r).unwrap().spi_out,
        old,
        "the server switched when it answered the last exchange"
    );
    p.run_for(Duration::from_secs(5));
    assert_ne!(p.client.ike().child().unwrap().spi_in, old);
    // The retransmitted request got the cached response: still two exchanges' worth of KE.
    let req = count(
        &seen.borrow(),
        Dir::ToServer,
        ExchangeType::IKE_FOLLOWUP_KE,
        false,
    );
    assert_eq!(req.len(), 3);
    assert_eq!(req[1], req[2], "the same request again");
    assert_child_agrees(&mut p, spi_r);
}

#[test]
fn a_lost_followup_request_is_retransmitted() {
    let (mut p, spi_r) = pair(ONE, "aes256gcm16", "aes256gcm16", 6);
    let old = p.client.ike().spis();
    let seen = tap(&mut p, |dir, e, resp, n| {
        dir == Dir::ToServer && e == ExchangeType::IKE_FOLLOWUP_KE && !resp && n == 0
    });
    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    assert_eq!(p.client.ike().spis(), old);
    p.run_for(Duration::from_secs(5));
    assert_ne!(p.client.ike().spis(), old);
    let s = seen.borrow();
    assert_eq!(
        count(&s, Dir::ToServer, ExchangeType::IKE_FOLLOWUP_KE, false).len(),
        2
    );
    assert_eq!(
        count(&s, Dir::ToClient, ExchangeType::IKE_FOLLOWUP_KE, true).len(),
        1
    );
    drop(s);
    assert_ike_agrees(&mut p, spi_r);
    assert!(p.ping(1));
}

#[test]
fn the_responder_drops_a_half_finished_exchange_after_its_timeout() {
    // The first three IKE_FOLLOWUP_KE requests are lost; the fourth (24 s later) finds the
    // server's state gone: STATE_NOT_FOUND ends that rekey, and a later one succeeds.
    let (mut p, spi_r) = pair(ONE, "aes256gcm16", "aes256gcm16", 7);
    let old = p.client.ike().spis();
    let seen = tap(&mut p, |dir, e, resp, n| {
        dir == Dir::ToServer && e == ExchangeType::IKE_FOLLOWUP_KE && !resp && n < 3
    });
    let start = p.now;
    let now = p.now;
    p.client.rekey_ike(now);
    p.pump();
    p.run_for(Duration::from_secs(26));
    assert_eq!(p.client.ike().spis(), old, "the first rekey failed");
    assert_eq!(p.client.state(), State::Connected);
    let s = seen.borrow().clone();
    assert_eq!(
        count(&s, Dir::ToServer, ExchangeType::IKE_FOLLOWUP_KE, false).len(),
        4
    );
    // The one answer was an error notify, not a ciphertext.
    let answers = count(&s, Dir::ToClient, ExchangeType::IKE_FOLLOWUP_KE, true);
    assert_eq!(answers.len(), 1);
    assert!(answers[0] < 200, "{answers:?}");
    p.run_for(Duration::from_secs(120));
    assert_ne!(p.client.ike().spis(), old, "retried and rekeyed");
    assert!(p.now - start > Duration::from_secs(50));
    assert_eq!(
        count(
            &seen.borrow(),
            Dir::ToServer,
            ExchangeType::CREATE_CHILD_SA,
            false
        )
        .len(),
        2
    );
    assert_ike_agrees(&mut p, spi_r);
}

#[test]
fn an_unknown_link_gets_state_not_found() {
    let (mut p, spi_r) = pair(ONE, "aes256gcm16", "aes256gcm16", 8);
    // A FOLLOWUP_KE request under the client's keys with a link the server never gave.
    let keys = p.client.ike().sa_keys().unwrap();
    let (spi_i, spi_rr) = p.client.ike().spis();
    let mid = 3; // IKE_SA_INIT 0, IKE_INTERMEDIATE 1, IKE_AUTH 2
    let h = Header::new(
        spi_i,
        spi_rr,
        ExchangeType::IKE_FOLLOWUP_KE,
        flags::INITIATOR,
        mid,
    );
    let ek = [7u8; 1184];
    let payloads = [
        Payload::Ke {
            group: DhGroup::ML_KEM_768,
            data: &ek,
        },
        Payload::notify(NotifyType::ADDITIONAL_KEY_EXCHANGE, b"no such link"),
    ];
    let mut rng = roam_proto::rng::SeededRng::new(9);
    let request = protect::seal(&keys.outbound, &mut rng, &h, &payloads, None);
    let inbound = &keys.inbound;
    let (remote, local) = p.client.ike().path();
    let mut answers = Vec::new();
    for m in &request {
        p.server.handle_message(p.now, local, remote, m);
    }
    while let Some(o) = p.server.poll_outgoing() {
        answers.push(o.message);
    }
    assert_eq!(answers.len(), 1);
    let msg = Message::parse(&answers[0]).unwrap();
    assert_eq!(msg.header.exchange, ExchangeType::IKE_FOLLOWUP_KE);
    assert!(msg.header.is_response());
    let opened = protect::open(inbound, &msg).unwrap();
    let kinds: Vec<NotifyType> = opened
        .payloads()
        .unwrap()
        .iter()
        .filter_map(|pl| match pl {
            Payload::Notify(n) => Some(n.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![NotifyType::STATE_NOT_FOUND]);
    assert_eq!(
        p.server.child(spi_r).map(|c| c.spi_out),
        p.client.ike().child().map(|c| c.spi_in)
    );
}

#[test]
fn simultaneous_hybrid_rekeys_leave_one_sa() {
    for seed in 20..26 {
        let (mut p, spi_r) = pair(ONE, ESP_ONE, ESP_ONE, seed);
        let old = p.client.ike().child().unwrap().spi_in;
        let seen = tap(&mut p, |_, _, _, _| false);
        let now = p.now;
        p.client.rekey_child(now);
        assert!(p.server.rekey_child(now, spi_r));
        p.pump();
        assert_ne!(p.client.ike().child().unwrap().spi_in, old, "seed {seed}");
        assert_eq!(
            count(
                &seen.borrow(),
                Dir::ToServer,
                ExchangeType::IKE_FOLLOWUP_KE,
                false
            )
            .len(),
            1
        );
        assert_eq!(
            count(
                &seen.borrow(),
                Dir::ToClient,
                ExchangeType::IKE_FOLLOWUP_KE,
                false
            )
            .len(),
            1
        );
        assert_child_agrees(&mut p, spi_r);

        let old = p.client.ike().spis();
        let now = p.now;
        p.client.rekey_ike(now);
        assert!(p.server.rekey_ike(now, spi_r));
        p.pump();
        assert_ne!(p.client.ike().spis(), old, "seed {seed}");
        assert_ike_agrees(&mut p, spi_r);
        let now = p.now;
        p.client.rekey_child(now);
        p.pump();
        assert_child_agrees(&mut p, spi_r);
    }
}

#[test]
fn a_collision_where_ours_ends_before_theirs_still_leaves_one_sa() {
    // The server's first IKE_FOLLOWUP_KE request is held back until the client's own rekey
    // is done: the client waits for the server's before the collision rule decides.
    for seed in 30..36 {
        let (mut p, spi_r) = pair(ONE, ESP_ONE, ESP_ONE, seed);
        let old = p.client.ike().child().unwrap().spi_in;
        let held: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
        let h = held.clone();
        p.filter = Some(Box::new(move |dir, _, d: &[u8]| {
            let body = d.strip_prefix(&[0, 0, 0, 0][..]).unwrap_or(d);
            let late = dir == Dir::ToClient
                && Header::parse(body)
                    .is_ok_and(|x| x.exchange == ExchangeType::IKE_FOLLOWUP_KE && !x.is_response())
                && h.borrow().is_empty();
            if late {
                h.borrow_mut().push(d.to_vec());
                Fate::Drop
            } else {
                Fate::Deliver
            }
        }));
        let now = p.now;
        p.client.rekey_child(now);
        assert!(p.server.rekey_child(now, spi_r));
        p.pump();
        assert_eq!(held.borrow().len(), 1, "seed {seed}");
        assert_eq!(
            p.client.ike().child().unwrap().spi_in,
            old,
            "seed {seed}: ours is done but waits for the server's"
        );
        // Now the server's request arrives.
        let (local, remote) = p.client.ike().path();
        let mut d = held.borrow_mut().pop().unwrap();
        let now = p.now;
        p.client.handle_datagram(now, local, remote, &mut d);
        p.pump();
        assert_ne!(p.client.ike().child().unwrap().spi_in, old, "seed {seed}");
        assert_child_agrees(&mut p, spi_r);
    }
}

#[test]
fn the_classical_fallback_only_where_the_profile_allows_it() {
    // The server's ESP proposal has PFS but no ML-KEM.
    let ike = ONE;
    let classical = "aes256gcm16-x25519";
    let (mut p, spi_r) = pair(ike, ESP_ONE, classical, 40);
    let old = p.client.ike().child().unwrap().spi_in;
    let seen = tap(&mut p, |_, _, _, _| false);
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    assert_eq!(
        p.client.ike().child().unwrap().spi_in,
        old,
        "NO_PROPOSAL_CHOSEN"
    );
    assert!(count(
        &seen.borrow(),
        Dir::ToServer,
        ExchangeType::IKE_FOLLOWUP_KE,
        false
    )
    .is_empty());
    assert_eq!(p.client.state(), State::Connected);

    let mut c = client(ike, ESP_ONE);
    c.pq_fallback = true;
    let mut server = responder_config(
        ResponderAuth::Psk(Secret::from_slice(PSK.as_bytes())),
        &[ike],
    );
    server.esp = vec![ProposalSpec::parse_esp(classical, &[]).unwrap()];
    let mut p = Pair::connected_with(c, server, 41);
    let spi_r2 = p.server_established().unwrap();
    let seen = tap(&mut p, |_, _, _, _| false);
    let now = p.now;
    p.client.rekey_child(now);
    p.pump();
    let new = p.client.ike().child().unwrap().clone();
    assert_eq!(new.selected.name(), "aes256gcm16-curve25519");
    assert!(count(
        &seen.borrow(),
        Dir::ToServer,
        ExchangeType::IKE_FOLLOWUP_KE,
        false
    )
    .is_empty());
    assert_child_agrees(&mut p, spi_r2);
    let _ = spi_r;
}
