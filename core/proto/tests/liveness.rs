//! Liveness on the virtual clock: how often an idle session wakes up (behind a NAT and
//! without), DPD against a dead server and after the device slept, checks when traffic goes
//! unanswered, and the INVALID_IKE_SPI of a restarted server.
#![allow(clippy::disallowed_methods)]

mod pair;

use std::net::SocketAddr;
use std::time::Duration;

use pair::{psk_client, psk_server, Dir, Fate, Nat, Pair};
use roam_proto::ike::responder::Responder;
use roam_proto::rng::SeededRng;
use roam_proto::session::{DisconnectReason, Event, State};
use roam_proto::wire::{flags, ExchangeType, Header, NotifyType, Payload};

const PSK: &str = "liveness psk";

/// A connected pair. Reconnecting is off: these tests look at how the IKE SA ends (the
/// reconnect that follows a loss is tested in reconnect.rs).
fn connected(seed: u64, f: impl FnOnce(&mut roam_proto::config::ClientConfig)) -> Pair {
    Pair::connected_with(client(f), psk_server(PSK), seed)
}

/// The client of these tests (no reconnect), changed by `f`.
fn client(
    f: impl FnOnce(&mut roam_proto::config::ClientConfig),
) -> roam_proto::config::ClientConfig {
    let mut c = psk_client(PSK, &[], &[]);
    c.reconnect = None;
    f(&mut c);
    c
}

fn behind_nat(seed: u64, f: impl FnOnce(&mut roam_proto::config::ClientConfig)) -> Pair {
    let mut p = Pair::new(client(f), psk_server(PSK), seed);
    p.nat = Some(Nat::new("192.0.2.7".parse().unwrap()));
    p.connect();
    assert!(p.connected().is_some(), "{:?}", p.client_events);
    assert!(p.client.ike().behind_nat(), "NAT detection saw the NAT");
    p
}

#[test]
fn idle_session_without_nat_wakes_once_per_dpd_interval() {
    let mut p = connected(400, |_| {});
    assert!(!p.client.ike().behind_nat());
    p.timeouts = 0;
    p.wait(Duration::from_secs(600));
    assert_eq!(p.timeouts, 20, "one wake-up per 30 s DPD interval");
    let stats = p.client.ike().liveness_stats();
    assert_eq!(stats.dpds, 20, "each wake-up was a DPD");
    assert_eq!(stats.keepalives, 0, "no NAT, no keepalives");
    assert_eq!(p.server.data_stats().keepalives, 0);
    assert_eq!(p.client.state(), State::Connected);
}

#[test]
fn idle_session_behind_nat_wakes_once_per_keepalive_interval() {
    // DPD 60 s: every third keepalive tick carries the DPD instead of a keepalive.
    let mut p = behind_nat(401, |c| c.dpd = Some(Duration::from_secs(60)));
    p.timeouts = 0;
    p.wait(Duration::from_secs(600));
    assert_eq!(p.timeouts, 30, "one wake-up per 20 s keepalive interval");
    let stats = p.client.ike().liveness_stats();
    assert_eq!((stats.keepalives, stats.dpds), (20, 10), "{stats:?}");
    assert_eq!(p.server.data_stats().keepalives, stats.keepalives);
    assert_eq!(p.client.state(), State::Connected);
}

#[test]
fn default_dpd_behind_nat_rides_on_the_keepalive_ticks() {
    let mut p = behind_nat(402, |_| {});
    p.timeouts = 0;
    p.wait(Duration::from_secs(600));
    assert_eq!(p.timeouts, 30, "not a separate wake-up for DPD");
    // DPD due at 30 s goes out at the 40 s tick: keepalive, DPD, keepalive, DPD...
    let stats = p.client.ike().liveness_stats();
    assert_eq!((stats.keepalives, stats.dpds), (15, 15), "{stats:?}");
    assert_eq!(p.client.state(), State::Connected);
}

#[test]
fn no_timer_while_nothing_is_due() {
    let p = connected(403, |c| c.dpd = None);
    // No DPD, no NAT: the only thing to wake for is the CHILD SA's rekey (1 h, minus at most
    // a tenth of jitter).
    let next = p.client.poll_timeout().expect("the rekey deadline");
    assert!(
        next - p.now >= std::time::Duration::from_secs(54 * 60),
        "{:?}",
        next - p.now
    );
}

#[test]
fn traffic_keeps_keepalives_away() {
    let mut p = behind_nat(404, |c| c.dpd = None);
    // A packet every 10 s: never 20 s without sending.
    for i in 0..30 {
        assert!(p.ping(i));
        p.wait(Duration::from_secs(10));
    }
    assert_eq!(p.client.ike().liveness_stats().keepalives, 0);
    p.wait(Duration::from_secs(60));
    assert_eq!(p.client.ike().liveness_stats().keepalives, 3, "idle again");
}

#[test]
fn dead_server_ends_the_session_with_timeout_within_the_bound() {
    let mut p = connected(405, |_| {});
    let up = p.now;
    p.filter = Some(Box::new(|_, _, _| Fate::Drop));
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Timeout));
    // DPD at 30 s, sends at +0, +2, +6, +14, given up at +22.
    assert_eq!(p.now - up, Duration::from_secs(30 + 22));
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn unanswered_traffic_checks_the_path_at_once() {
    let mut p = connected(406, |c| c.mobike = false);
    p.filter = Some(Box::new(|dir, _, _| match dir {
        Dir::ToClient => Fate::Drop,
        Dir::ToServer => Fate::Deliver,
    }));
    let start = p.now;
    let mut first_dpd = None;
    for i in 0..40 {
        p.ping(i);
        p.wait(Duration::from_secs(1));
        if first_dpd.is_none() && p.client.ike().liveness_stats().dpds > 0 {
            first_dpd = Some(p.now - start);
        }
        if p.disconnect_reason().is_some() {
            break;
        }
    }
    let first = first_dpd.expect("a DPD went out");
    assert!(
        first <= Duration::from_secs(6),
        "after 5 s of silence: {first:?}"
    );
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Timeout));
    assert!(
        p.now - start <= Duration::from_secs(5 + 22 + 1),
        "{:?}",
        p.now - start
    );
}

#[test]
fn wake_after_a_long_sleep_checks_at_once() {
    let mut p = connected(407, |_| {});
    let before = p.sent[0];
    // The device sleeps an hour; the session clock counts it.
    p.now += Duration::from_secs(3600);
    let now = p.now;
    p.client.handle_timeout(now);
    let out: Vec<_> = std::iter::from_fn(|| p.client.poll_transmit()).collect();
    assert_eq!(out.len(), 1, "one check right away");
    assert!(out[0].payload.starts_with(&[0, 0, 0, 0]), "an IKE message");
    let stats = p.client.ike().liveness_stats();
    assert_eq!((stats.wakes, stats.dpds), (1, 1));
    assert_eq!(p.sent[0], before);
    // Had the server gone meanwhile, the check ends the session within the bound.
    let mut p = connected(408, |_| {});
    p.filter = Some(Box::new(|_, _, _| Fate::Drop));
    p.now += Duration::from_secs(3600);
    let woke = p.now;
    let now = p.now;
    p.client.handle_timeout(now);
    p.pump();
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Timeout));
    // A check of a suspect path runs on the quick schedule: 1 + 1.5 + 2 + 2 s.
    assert_eq!(p.now - woke, Duration::from_millis(6500));
}

#[test]
fn restarted_server_answers_invalid_ike_spi() {
    let mut p = connected(409, |_| {});
    // The server restarts: same address, no memory of our IKE SA.
    p.server = Responder::new(psk_server(PSK), Box::new(SeededRng::new(77)));
    p.run_for(Duration::from_secs(31));
    assert_eq!(
        p.disconnect_reason(),
        Some(&DisconnectReason::ServerRestarted)
    );
    assert_eq!(p.client.state(), State::Disconnected);
}

/// An unprotected INVALID_IKE_SPI answering message `id` of our IKE SA.
fn invalid_spi(p: &Pair, id: u32) -> Vec<u8> {
    let (spi_i, spi_r) = p.client.ike().spis();
    let h = Header::new(
        spi_i,
        spi_r,
        ExchangeType::INFORMATIONAL,
        flags::RESPONSE,
        id,
    );
    let mut m = vec![0, 0, 0, 0];
    roam_proto::wire::message::write_message(
        &h,
        &[Payload::notify(NotifyType::INVALID_IKE_SPI, &[])],
        &mut m,
    );
    m
}

#[test]
fn invalid_ike_spi_counts_only_from_the_server_while_we_wait() {
    let mut p = connected(410, |_| {});
    let client = pair::client_addr();
    let server = SocketAddr::new(pair::server_addr().ip(), 4500);
    // Nothing of ours outstanding: ignored (IKE_AUTH was message 1, the next is 2).
    let now = p.now;
    p.client
        .handle_datagram(now, client, server, &mut invalid_spi(&p, 2));
    assert_eq!(p.client.state(), State::Connected);
    // A DPD in flight that the link loses.
    p.filter = Some(Box::new(|_, _, _| Fate::Drop));
    p.advance(Duration::from_secs(31));
    assert!(p.client.ike().liveness_stats().dpds == 1);
    // From another address, or for another message: ignored.
    let elsewhere: SocketAddr = "203.0.113.66:4500".parse().unwrap();
    let now = p.now;
    p.client
        .handle_datagram(now, client, elsewhere, &mut invalid_spi(&p, 2));
    p.client
        .handle_datagram(now, client, server, &mut invalid_spi(&p, 7));
    assert_eq!(p.client.state(), State::Connected);
    // From the server, answering our DPD: the server restarted.
    p.client
        .handle_datagram(now, client, server, &mut invalid_spi(&p, 2));
    assert_eq!(p.client.state(), State::Disconnected);
    let reason = std::iter::from_fn(|| p.client.poll_event()).find_map(|e| match e {
        Event::Disconnected(r) => Some(r),
        _ => None,
    });
    assert_eq!(reason, Some(DisconnectReason::ServerRestarted));
}

#[test]
fn one_way_traffic_without_nat_is_checked_but_not_ended() {
    // Packets into a black hole inside the tunnel: ESP goes out, nothing comes back, while
    // the server answers every check.
    let mut p = connected(411, |c| c.mobike = false);
    let vip = [198, 18, 0, 1];
    for i in 0..120u8 {
        p.client_send(&pair::icmp(vip, [203, 0, 113, 77], &[i; 16]));
        p.wait(Duration::from_secs(1));
    }
    assert!(p.disconnect_reason().is_none(), "{:?}", p.client_events);
    let dpds = p.client.ike().liveness_stats().dpds;
    assert!((2..=6).contains(&dpds), "checked, then backed off: {dpds}");
}

#[test]
fn closing_without_network_still_ends() {
    let mut p = connected(412, |_| {});
    let now = p.now;
    p.client.network_changed(now, &[]);
    p.client.close(now);
    p.filter = Some(Box::new(|_, _, _| Fate::Drop));
    p.pump();
    p.run_for(Duration::from_secs(600));
    assert_eq!(p.disconnect_reason(), Some(&DisconnectReason::Closed));
}
