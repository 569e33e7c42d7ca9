//! MOBIKE for the initiator (RFC 4555): the local addresses the platform gives us and the
//! server's addresses (DNS and its ADDITIONAL_IP4/6_ADDRESS notifies) make candidate paths;
//! an INFORMATIONAL with UPDATE_SA_ADDRESSES, NAT detection for the path and a random COOKIE2
//! moves the IKE SA and its ESP to a path (or refreshes the current one after a NAT
//! rebinding). An update without answer probes the next candidate with the same message ID
//! (RFC 4555 §3.5) before the path is declared lost; a response without our COOKIE2 is
//! ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use log::{debug, info, warn};

use crate::config::Retransmit;
use crate::crypto::ct_eq;
use crate::ike::initiator::{IkeEvent, Initiator, Phase};
use crate::ike::natd::{self, NatState};
use crate::ike::task_manager::RequestKind;
use crate::session::DisconnectReason;
use crate::wire::{ExchangeType, NotifyType, Payload, NATT_PORT};

/// Most local addresses, server addresses and candidate paths we keep.
pub const MAX_ADDRESSES: usize = 16;
pub const MAX_CANDIDATES: usize = 16;
/// COOKIE2 length we send (RFC 4555 §3.2: 8 to 64 octets).
const COOKIE2_LEN: usize = 16;
/// Sends of an update on one candidate path before the next one is probed.
const SENDS_PER_PATH: u32 = 2;

/// What a change of the local addresses means for the IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathChange {
    /// Nothing to do (the current path is still the preferred one).
    Unchanged,
    /// No network at all: the SAs are kept, nothing is sent until the network comes back.
    Held,
    /// MOBIKE moves the SAs (an update is in flight or waits for the request in flight).
    Moving,
    /// The path changed and the server cannot move the SAs: a new IKE SA is needed.
    NeedsNewSa,
}

/// An UPDATE_SA_ADDRESSES of ours, sent or waiting for the window.
#[derive(Debug)]
struct Update {
    candidates: Vec<(SocketAddr, SocketAddr)>,
    index: usize,
    /// Sends on the current candidate.
    sends_here: u32,
    cookie2: [u8; COOKIE2_LEN],
    /// The message ID once sent.
    message_id: Option<u32>,
    /// Raised Roaming: the path is meant to change (a network change).
    moving: bool,
    /// Sends on the first candidate before the next is probed: a refresh of the current path
    /// (which worked moments ago) gets the whole schedule's tries there, a move two.
    first_sends: u32,
}

/// The initiator's MOBIKE state.
#[derive(Debug, Default)]
pub struct Mobike {
    /// Local addresses we can send from, preferred first.
    locals: Vec<SocketAddr>,
    /// The server's addresses as resolved by the caller.
    server_addresses: Vec<IpAddr>,
    /// No network at all: hold quietly until it comes back.
    pub(super) offline: bool,
    update: Option<Update>,
    /// The last NAT_DETECTION_DESTINATION_IP the server sent us (our address as it saw it).
    nat_dest: Option<[u8; 20]>,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, t: T, cap: usize) {
    if v.len() < cap && !v.contains(&t) {
        v.push(t);
    }
}

impl Initiator {
    /// Whether both ends agreed to MOBIKE on an established IKE SA.
    pub fn mobike_active(&self) -> bool {
        self.params.config.mobike && self.peer.mobike && self.phase == Phase::Established
    }

    /// The path our next IKE message travels: the candidate being probed during an update,
    /// else the IKE SA's path.
    pub fn ike_path(&self) -> (SocketAddr, SocketAddr) {
        match &self.mobike.update {
            Some(u) => u.candidates.get(u.index).copied().unwrap_or(self.path()),
            None => self.path(),
        }
    }

    /// Whether a MOBIKE update is in flight (or waiting to be sent).
    pub fn updating(&self) -> bool {
        self.mobike.update.is_some()
    }

    /// Whether datagrams from `ip` may come from the server: its current address, a
    /// candidate being probed, an address it announced or the caller resolved.
    pub fn is_server_address(&self, ip: IpAddr) -> bool {
        ip == self.remote.ip()
            || self.mobike.server_addresses.contains(&ip)
            || self.peer.additional_addresses.contains(&ip)
            || self
                .mobike
                .update
                .as_ref()
                .is_some_and(|u| u.candidates.iter().any(|(_, r)| r.ip() == ip))
    }

    /// Every address the server's name resolves to now (candidates for MOBIKE).
    pub fn set_server_addresses(&mut self, addresses: &[IpAddr]) {
        self.mobike.server_addresses = addresses.iter().take(MAX_ADDRESSES).copied().collect();
    }

    /// The local addresses we can send from changed (`locals`, preferred first; empty: no
    /// network). Starts a MOBIKE update when the current local address is gone or another
    /// is preferred, holds while there is no network.
    pub fn network_changed(&mut self, now: Instant, locals: &[SocketAddr]) -> PathChange {
        let mut list = Vec::new();
        for l in locals {
            push_unique(&mut list, *l, MAX_ADDRESSES);
        }
        self.mobike.locals = list;
        let Some(&preferred) = self.mobike.locals.first() else {
            if !self.mobike.offline {
                info!("no network: holding the SAs");
            }
            self.mobike.offline = true;
            return PathChange::Held;
        };
        let was_offline = std::mem::replace(&mut self.mobike.offline, false);
        let current_gone = !self.mobike.locals.contains(&self.local);
        match self.phase {
            Phase::Idle | Phase::Dead => return PathChange::Unchanged,
            Phase::Init | Phase::Auth => {
                // No SA to move yet: a new attempt starts from the new address.
                return if current_gone {
                    PathChange::NeedsNewSa
                } else {
                    PathChange::Unchanged
                };
            }
            Phase::Deleting => {
                if current_gone {
                    self.local = preferred;
                }
                let d = self.tm.restart(now, None);
                self.outbox_extend(d);
                return PathChange::Unchanged;
            }
            Phase::Established => {}
        }
        // Compared with where the SAs are going (an update may be in flight already).
        let changed = preferred != self.ike_path().0;
        if !changed && !was_offline {
            return PathChange::Unchanged;
        }
        if !self.mobike_active() {
            if changed {
                info!("path changed to {preferred} and the server has no MOBIKE");
                return PathChange::NeedsNewSa;
            }
            // Back on the same address after an outage: check the path.
            self.check_path(now, false);
            return PathChange::Unchanged;
        }
        info!(
            "network changed: {} -> {preferred}: MOBIKE update",
            self.local
        );
        self.start_update(now, changed);
        PathChange::Moving
    }

    /// Candidate paths: each local address (preferred first) with each server address of
    /// its family (the current one first, then the resolved ones, then the announced ones).
    fn candidates(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let locals: Vec<SocketAddr> = if self.mobike.locals.is_empty() {
            vec![self.local]
        } else {
            self.mobike.locals.clone()
        };
        let mut servers = vec![self.remote.ip()];
        for a in self
            .mobike
            .server_addresses
            .iter()
            .chain(&self.peer.additional_addresses)
        {
            push_unique(&mut servers, *a, MAX_ADDRESSES);
        }
        let port = if self.remote.port() == 0 {
            NATT_PORT
        } else {
            self.remote.port()
        };
        let mut out = Vec::new();
        for l in &locals {
            for s in &servers {
                if l.is_ipv4() == s.is_ipv4() {
                    push_unique(&mut out, (*l, SocketAddr::new(*s, port)), MAX_CANDIDATES);
                }
            }
        }
        out
    }

    /// Refreshes the current path with an update (a NAT rebinding, a wake-up): the server
    /// learns our mapping from the message's source. Other candidates follow if it fails.
    pub(super) fn refresh_path(&mut self, now: Instant) {
        self.start_update(now, false);
    }

    fn start_update(&mut self, now: Instant, moving: bool) {
        let mut candidates = self.candidates();
        // A refresh tries the current path first.
        if !moving {
            let current = self.path();
            candidates.retain(|c| *c != current);
            candidates.insert(0, current);
            candidates.truncate(MAX_CANDIDATES);
        }
        if candidates.is_empty() {
            warn!("no candidate path to the server");
            return self.finish(DisconnectReason::PathLost);
        }
        let mut cookie2 = [0u8; COOKIE2_LEN];
        self.rng.fill(&mut cookie2);
        let busy_with_update = self.tm.outstanding_kind() == Some(RequestKind::UpdateSa);
        let message_id = if busy_with_update {
            self.mobike.update.as_ref().and_then(|u| u.message_id)
        } else {
            None
        };
        let moving = moving || self.mobike.update.as_ref().is_some_and(|u| u.moving);
        let first_sends = if moving {
            SENDS_PER_PATH
        } else {
            self.path_schedule().tries.max(1)
        };
        self.mobike.update = Some(Update {
            candidates,
            index: 0,
            sends_here: 1,
            cookie2,
            message_id,
            moving,
            first_sends,
        });
        if moving {
            self.emit(IkeEvent::Roaming);
        }
        if busy_with_update {
            // Start the update in flight over on the new candidates, same message ID.
            self.send_update(now);
            let schedule = self.update_schedule();
            let _ = self.tm.restart(now, Some(schedule));
        } else if self.tm.busy() {
            // The window is taken: resend that request on the new path now, update after.
            let d = self.tm.restart(now, None);
            self.outbox_extend(d);
        } else {
            self.send_update(now);
        }
    }

    /// Sends the update waiting for the window, if any.
    pub(super) fn send_pending_update(&mut self, now: Instant) {
        let waiting = self
            .mobike
            .update
            .as_ref()
            .is_some_and(|u| u.message_id.is_none());
        if waiting && !self.tm.busy() && self.phase == Phase::Established {
            self.send_update(now);
        }
    }

    /// The retransmissions of a check of the path: a check of a suspect path gives up sooner
    /// than a move the platform asked for.
    fn path_schedule(&self) -> Retransmit {
        if self.live.checking {
            self.params.config.check_retransmit
        } else {
            self.params.config.liveness_retransmit
        }
    }

    fn update_schedule(&self) -> Retransmit {
        let base = self.path_schedule();
        let (n, first) = self
            .mobike
            .update
            .as_ref()
            .map_or((1, base.tries), |u| (u.candidates.len(), u.first_sends));
        if n <= 1 {
            return base;
        }
        let others = u32::try_from(n - 1).unwrap_or(u32::MAX);
        Retransmit {
            initial: base.initial,
            factor: 1.0,
            max_timeout: base.initial,
            tries: first.saturating_add(SENDS_PER_PATH.saturating_mul(others)),
        }
    }

    /// Sends (or re-sends on the current candidate, same message ID) the update.
    fn send_update(&mut self, now: Instant) {
        let Some(u) = self.mobike.update.as_ref() else {
            return;
        };
        let Some(&(_, remote)) = u.candidates.get(u.index) else {
            return;
        };
        let cookie2 = u.cookie2;
        let message_id = u.message_id;
        // Our source hash cannot match, like in IKE_SA_INIT: the server keeps ESP in UDP.
        let mut src = [0u8; 20];
        self.rng.fill(&mut src);
        let dst = natd::hash(self.spi_i, self.spi_r, remote);
        let p = [
            Payload::notify(NotifyType::UPDATE_SA_ADDRESSES, &[]),
            Payload::notify(NotifyType::NAT_DETECTION_SOURCE_IP, &src),
            Payload::notify(NotifyType::NAT_DETECTION_DESTINATION_IP, &dst),
            Payload::notify(NotifyType::COOKIE2, &cookie2),
        ];
        match message_id {
            Some(id) => {
                let datagrams = self.seal_request(ExchangeType::INFORMATIONAL, id, &p);
                self.outbox_extend(datagrams.clone());
                self.tm.replace_datagrams(datagrams);
            }
            None => {
                let id = self.tm.next_request_id();
                let schedule = self.update_schedule();
                self.send_request_scheduled(
                    now,
                    RequestKind::UpdateSa,
                    ExchangeType::INFORMATIONAL,
                    &p,
                    schedule,
                );
                if let Some(u) = self.mobike.update.as_mut() {
                    u.message_id = Some(id);
                }
            }
        }
        debug!("UPDATE_SA_ADDRESSES on {:?}", self.ike_path());
    }

    /// The update was not answered in time: send it again, or probe the next candidate.
    pub(super) fn update_retransmit(&mut self, now: Instant, datagrams: Vec<Vec<u8>>) {
        let Some(u) = self.mobike.update.as_mut() else {
            return self.outbox_extend(datagrams);
        };
        u.sends_here += 1;
        let here = if u.index == 0 {
            u.first_sends
        } else {
            SENDS_PER_PATH
        };
        if u.candidates.len() > 1 && u.sends_here > here && u.index + 1 < u.candidates.len() {
            u.index += 1;
            u.sends_here = 1;
            info!(
                "no answer on {:?}: probing {:?}",
                u.candidates.get(u.index - 1),
                u.candidates.get(u.index)
            );
            self.send_update(now);
        } else {
            self.outbox_extend(datagrams);
        }
    }

    /// The update got no answer on any candidate.
    pub(super) fn update_failed(&mut self) {
        let moved = self
            .mobike
            .update
            .take()
            .is_some_and(|u| u.moving || u.candidates.len() > 1);
        warn!("no candidate path answered the MOBIKE update");
        self.finish(if moved {
            DisconnectReason::PathLost
        } else {
            DisconnectReason::Timeout
        });
    }

    /// Whether a response carries the COOKIE2 of our update in flight (RFC 4555 §3.5: a
    /// response without it is not the answer to this update).
    pub(super) fn update_response_ok(&self, p: &[Payload<'_>]) -> bool {
        let Some(u) = self.mobike.update.as_ref() else {
            return false;
        };
        p.iter().any(|pl| {
            matches!(pl, Payload::Notify(n) if n.kind == NotifyType::COOKIE2 && ct_eq(n.data, &u.cookie2))
        })
    }

    /// The server answered our update: the IKE SA and ESP now use the probed path.
    pub(super) fn process_update_response(&mut self, now: Instant, p: &[Payload<'_>]) {
        let Some(u) = self.mobike.update.take() else {
            return;
        };
        if let Some(k) = p.iter().find_map(|pl| match pl {
            Payload::Notify(n) if n.kind.is_error() => Some(n.kind),
            _ => None,
        }) {
            warn!("the server refused the MOBIKE update: {k}");
            return self.finish(DisconnectReason::PathLost);
        }
        let Some(&(local, remote)) = u.candidates.get(u.index) else {
            return;
        };
        let changed = (local, remote) != self.path();
        self.local = local;
        self.remote = remote;
        let mut src = Vec::new();
        let mut dst = Vec::new();
        for pl in p {
            if let Payload::Notify(n) = pl {
                match n.kind {
                    NotifyType::NAT_DETECTION_SOURCE_IP => src.push(n.data),
                    NotifyType::NAT_DETECTION_DESTINATION_IP => dst.push(n.data),
                    _ => {}
                }
            }
        }
        if !src.is_empty() && !dst.is_empty() {
            let nat = NatState::evaluate(self.spi_i, self.spi_r, local, remote, &src, &dst);
            if nat.local_behind_nat != self.peer.nat.local_behind_nat {
                info!(
                    "NAT in front of us: {} (keepalives {})",
                    nat.local_behind_nat,
                    if nat.local_behind_nat { "on" } else { "off" }
                );
            }
            let seen = dst.first().and_then(|d| <[u8; 20]>::try_from(*d).ok());
            if let (Some(before), Some(now_seen)) = (self.mobike.nat_dest, seen) {
                if before != now_seen && !changed {
                    info!("NAT mapping changed: the server sees us at another address");
                }
            }
            self.mobike.nat_dest = seen;
            self.peer.nat = nat;
        }
        self.path_answered(now);
        info!("MOBIKE: IKE SA and ESP on {local} -> {remote}");
        if changed || u.moving {
            self.emit(IkeEvent::Roamed { local, remote });
        }
    }

    /// The server's ADDITIONAL_IP4/6_ADDRESS or NO_ADDITIONAL_ADDRESSES in one of its
    /// INFORMATIONAL requests replace what it announced before (RFC 4555 §3.6).
    pub(super) fn take_additional_addresses(&mut self, p: &[Payload<'_>]) {
        let mut seen = false;
        let mut list = Vec::new();
        for pl in p {
            let Payload::Notify(n) = pl else { continue };
            match n.kind {
                NotifyType::ADDITIONAL_IP4_ADDRESS => {
                    seen = true;
                    if let Ok(b) = <[u8; 4]>::try_from(n.data) {
                        push_unique(&mut list, IpAddr::V4(Ipv4Addr::from(b)), MAX_ADDRESSES);
                    }
                }
                NotifyType::ADDITIONAL_IP6_ADDRESS => {
                    seen = true;
                    if let Ok(b) = <[u8; 16]>::try_from(n.data) {
                        push_unique(&mut list, IpAddr::V6(Ipv6Addr::from(b)), MAX_ADDRESSES);
                    }
                }
                NotifyType::NO_ADDITIONAL_ADDRESSES => seen = true,
                _ => {}
            }
        }
        if seen {
            debug!("server addresses now {list:?}");
            self.peer.additional_addresses = list;
        }
    }

    /// The path is gone and cannot be moved: the IKE SA ends with `PathLost`.
    pub fn path_lost(&mut self) {
        self.finish(DisconnectReason::PathLost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientAuth, ClientConfig};
    use crate::crypto::Secret;
    use crate::identity::Identity;
    use crate::ike::params::IkeParams;
    use crate::rng::SeededRng;

    fn initiator() -> Initiator {
        let mut c = ClientConfig::new(ClientAuth::Psk(Secret::from_slice(b"k")));
        c.local_id = Some(Identity::parse("me@example.org").unwrap());
        Initiator::new(
            IkeParams::new(c).unwrap().into(),
            Box::new(SeededRng::new(1)),
        )
    }

    #[test]
    fn announced_addresses_replace_the_list_and_are_capped() {
        let mut ike = initiator();
        let data: Vec<[u8; 4]> = (0..40u8).map(|i| [192, 0, 2, i]).collect();
        let mut p: Vec<Payload<'_>> = data
            .iter()
            .map(|d| Payload::notify(NotifyType::ADDITIONAL_IP4_ADDRESS, d))
            .collect();
        p.push(Payload::notify(NotifyType::ADDITIONAL_IP6_ADDRESS, &[1; 3]));
        ike.take_additional_addresses(&p);
        assert_eq!(ike.peer.additional_addresses.len(), MAX_ADDRESSES);
        assert_eq!(
            ike.peer.additional_addresses[0],
            IpAddr::from([192, 0, 2, 0])
        );
        // Unrelated notifies leave the list alone; NO_ADDITIONAL_ADDRESSES empties it.
        ike.take_additional_addresses(&[Payload::notify(NotifyType::COOKIE2, &[0; 8])]);
        assert_eq!(ike.peer.additional_addresses.len(), MAX_ADDRESSES);
        ike.take_additional_addresses(&[Payload::notify(NotifyType::NO_ADDITIONAL_ADDRESSES, &[])]);
        assert!(ike.peer.additional_addresses.is_empty());
    }

    #[test]
    fn candidates_pair_families_current_server_first() {
        let mut ike = initiator();
        ike.local = "198.51.100.2:40000".parse().unwrap();
        ike.remote = "198.51.100.1:4500".parse().unwrap();
        ike.set_server_addresses(&[
            "2001:db8::1".parse().unwrap(),
            "198.51.100.9".parse().unwrap(),
        ]);
        ike.mobike.locals = vec![
            "[2001:db8:1::2]:40000".parse().unwrap(),
            "198.51.100.3:40000".parse().unwrap(),
        ];
        let c: Vec<String> = ike
            .candidates()
            .iter()
            .map(|(l, r)| format!("{l}>{r}"))
            .collect();
        assert_eq!(
            c,
            [
                "[2001:db8:1::2]:40000>[2001:db8::1]:4500",
                "198.51.100.3:40000>198.51.100.1:4500",
                "198.51.100.3:40000>198.51.100.9:4500",
            ]
        );
    }

    #[test]
    fn no_network_holds_and_a_session_not_yet_up_needs_a_new_sa() {
        let mut ike = initiator();
        let t = crate::ike::test_clock::epoch();
        let a: SocketAddr = "198.51.100.2:40000".parse().unwrap();
        ike.start(t, a, "198.51.100.1:500".parse().unwrap());
        assert_eq!(ike.network_changed(t, &[]), PathChange::Held);
        assert_eq!(ike.poll_timeout(), None, "nothing while offline");
        assert_eq!(ike.network_changed(t, &[a]), PathChange::Unchanged);
        assert!(ike.poll_timeout().is_some());
        let b: SocketAddr = "198.51.100.3:40000".parse().unwrap();
        assert_eq!(ike.network_changed(t, &[b]), PathChange::NeedsNewSa);
    }
}
