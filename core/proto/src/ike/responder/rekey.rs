//! The responder's rekeys, so tests can play a server that rekeys: answering a client's
//! CREATE_CHILD_SA rekeys of the CHILD and IKE SA, rekeying them itself on request
//! ([`Responder::rekey_child`], [`Responder::rekey_ike`]), the collision rule when both ends
//! rekey at once, DELETEs of replaced CHILD SAs both ways, and replaced IKE SAs kept until
//! deleted. Replaced CHILD SAs keep receiving until deleted.

use std::time::Instant;

use log::{debug, info, warn};

use super::{Outgoing, Responder, ResponderSa, SaPhase};
use crate::esp::EspSa;
use crate::ike::child::ChildSa;
use crate::ike::protect;
use crate::ike::rekey::collision::our_exchange_loses;
use crate::ike::rekey::exchange::{
    answer_child, answer_ike, fresh_spi, ChildOffer, CreateChild, IkeOffer, NewIkeSa, Outcome,
    Refusal,
};
use crate::ike::rekey::old_ike::{self, OldIkeSa};
use crate::ike::rekey::{Collision, Pending, MAX_OTHER_CHILDREN};
use crate::ike::task_manager::{RequestKind, ResponseMatch, TaskManager};
use crate::wire::{DhGroup, ExchangeType, Message, NotifyType, Payload, ProtocolId};

/// One client's rekey state on the responder.
#[derive(Debug, Default)]
pub(in crate::ike) struct ServerRekey {
    pending: Option<Pending>,
    collision: Option<Collision>,
    /// CHILD SAs besides the current one (replaced, or made by the losing side of a
    /// collision), and their ESP SAs (still receiving).
    others: Vec<ChildSa>,
    old_esp: Vec<EspSa>,
    old_ike: Vec<OldIkeSa>,
    deleting_child: Option<u32>,
    ke_retried: bool,
}

impl ServerRekey {
    /// Inbound SPIs of the ESP SAs besides the current one.
    pub(super) fn inbound_spis(&self) -> Vec<u32> {
        self.old_esp.iter().map(|e| e.inbound.spi()).collect()
    }

    /// The ESP SA besides the current one that receives on `spi`.
    pub(super) fn old_esp(&mut self, spi: u32) -> Option<&mut EspSa> {
        self.old_esp.iter_mut().find(|e| e.inbound.spi() == spi)
    }
}

impl Responder {
    /// Rekeys the CHILD SA of the client's IKE SA `spi_r` (its handle, as in `Established`).
    /// False when that cannot start now (no such SA, or a request of ours in flight).
    pub fn rekey_child(&mut self, now: Instant, spi_r: u64) -> bool {
        let Some(mut sa) = self.sas.remove(&spi_r) else {
            return false;
        };
        let ok = self.start_child_rekey(now, &mut sa, None);
        self.sas.insert(spi_r, sa);
        ok
    }

    /// Rekeys the client's IKE SA `spi_r` (its handle); we become the new SA's original
    /// initiator. False when that cannot start now.
    pub fn rekey_ike(&mut self, now: Instant, spi_r: u64) -> bool {
        let Some(mut sa) = self.sas.remove(&spi_r) else {
            return false;
        };
        let ok = self.start_ike_rekey(now, &mut sa, None);
        self.sas.insert(spi_r, sa);
        ok
    }

    /// The header SPIs (SPIi, SPIr) of the client's IKE SA `spi_r` now.
    pub fn ike_spis(&self, spi_r: u64) -> Option<(u64, u64)> {
        self.sas.get(&spi_r).map(|s| (s.spi_i, s.spi_r))
    }

    /// Inbound SPIs of the client's CHILD SAs besides the current one.
    pub fn other_children(&self, spi_r: u64) -> Vec<u32> {
        self.sas
            .get(&spi_r)
            .map(|s| s.rekey.others.iter().map(|c| c.spi_in).collect())
            .unwrap_or_default()
    }

    /// Replaced IKE SAs of the client not yet deleted.
    pub fn old_ike_sas(&self, spi_r: u64) -> usize {
        self.sas.get(&spi_r).map_or(0, |s| s.rekey.old_ike.len())
    }

    fn ready(sa: &ResponderSa) -> bool {
        sa.phase == SaPhase::Established && !sa.tm.busy() && sa.rekey.pending.is_none()
    }

    fn start_child_rekey(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        wanted: Option<DhGroup>,
    ) -> bool {
        let Some(child) = sa.child.as_ref().filter(|_| Self::ready(sa)) else {
            return false;
        };
        let by_spi = &self.by_spi;
        let spi_in = fresh_spi(self.rng.as_mut(), |s| by_spi.contains_key(&s));
        let offer = match ChildOffer::new(&self.cfg.esp, wanted, child, spi_in, self.rng.as_mut()) {
            Ok(o) => o,
            Err(e) => {
                warn!("responder: cannot rekey CHILD SA: {e}");
                return false;
            }
        };
        info!("responder: rekeying CHILD SA {:08x}", offer.old_spi_in);
        self.send_rekey_request(now, sa, Pending::Child(offer));
        true
    }

    fn start_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        wanted: Option<DhGroup>,
    ) -> bool {
        if !Self::ready(sa) {
            return false;
        }
        let group = wanted.or_else(|| {
            self.cfg
                .ike
                .iter()
                .flat_map(|s| s.dh.iter().copied())
                .next()
        });
        let Some(group) = group else { return false };
        let offer = match IkeOffer::new(&self.cfg.ike, group, self.rng.as_mut()) {
            Ok(o) => o,
            Err(e) => {
                warn!("responder: cannot rekey IKE SA: {e}");
                return false;
            }
        };
        info!("responder: rekeying IKE SA {:016x}", sa.handle);
        self.send_rekey_request(now, sa, Pending::Ike(offer));
        true
    }

    /// Sends our rekey request on `sa` and keeps it until the response.
    fn send_rekey_request(&mut self, now: Instant, sa: &mut ResponderSa, pending: Pending) {
        let p = pending.payloads();
        self.send_sa_request(
            now,
            sa,
            RequestKind::CreateChildSa,
            ExchangeType::CREATE_CHILD_SA,
            &p,
        );
        drop(p);
        sa.rekey.pending = Some(pending);
    }

    fn queue_to_peer(&mut self, sa: &ResponderSa, d: Vec<Vec<u8>>) {
        let remote = sa.peer;
        self.outbox
            .extend(d.into_iter().map(|message| Outgoing { remote, message }));
    }

    fn refuse_rekey(&mut self, sa: &mut ResponderSa, message_id: u32, r: &Refusal) {
        debug!("responder: refusing CREATE_CHILD_SA: {}", r.kind);
        self.respond(
            sa,
            ExchangeType::CREATE_CHILD_SA,
            message_id,
            &[r.payload()],
        );
    }

    /// A CREATE_CHILD_SA request from the client.
    pub(super) fn answer_rekey(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        message_id: u32,
        p: &[Payload<'_>],
    ) {
        let r = CreateChild::parse(p);
        if r.is_ike_rekey() {
            return self.answer_ike_rekey(now, sa, message_id, &r);
        }
        let Some(spi_out) = r.rekeyed_esp_spi() else {
            let kind = if r.rekey.is_some() {
                NotifyType::CHILD_SA_NOT_FOUND
            } else {
                NotifyType::NO_ADDITIONAL_SAS
            };
            return self.refuse_rekey(sa, message_id, &Refusal::new(kind));
        };
        if matches!(sa.rekey.pending, Some(Pending::Ike(_))) {
            return self.refuse_rekey(sa, message_id, &Refusal::new(NotifyType::TEMPORARY_FAILURE));
        }
        let Some(child) = sa.child.as_ref().filter(|c| c.spi_out == spi_out) else {
            let known = sa.rekey.others.iter().any(|c| c.spi_out == spi_out);
            let kind = if known {
                NotifyType::TEMPORARY_FAILURE
            } else {
                NotifyType::CHILD_SA_NOT_FOUND
            };
            return self.refuse_rekey(sa, message_id, &Refusal::new(kind));
        };
        let by_spi = &self.by_spi;
        let spi_in = fresh_spi(self.rng.as_mut(), |s| by_spi.contains_key(&s));
        let answer = answer_child(
            sa.keys.prf,
            sa.keys.sk_d.as_bytes(),
            &self.cfg.esp,
            &r,
            child,
            spi_in,
            self.rng.as_mut(),
        );
        let answer = match answer {
            Ok(a) => a,
            Err(refusal) => return self.refuse_rekey(sa, message_id, &refusal),
        };
        let Ok(esp) = EspSa::new(&answer.child, self.rng.as_mut()) else {
            let r = Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN);
            return self.refuse_rekey(sa, message_id, &r);
        };
        let p = answer.payloads();
        self.respond(sa, ExchangeType::CREATE_CHILD_SA, message_id, &p);
        drop(p);
        info!(
            "responder: client rekeyed CHILD SA: in {:08x} out {:08x}",
            answer.child.spi_in, answer.child.spi_out
        );
        self.by_spi.insert(spi_in, sa.handle);
        if matches!(sa.rekey.pending, Some(Pending::Child(_))) {
            sa.rekey.collision = Some(Collision::Child {
                ni: answer.ni,
                nr: answer.nr,
                spi_in,
            });
            self.keep_other(sa, answer.child, esp);
        } else {
            self.switch_child(sa, answer.child, esp);
        }
    }

    fn keep_other(&mut self, sa: &mut ResponderSa, child: ChildSa, esp: EspSa) {
        if sa.rekey.others.len() >= MAX_OTHER_CHILDREN {
            let gone = sa.rekey.others.remove(0);
            self.drop_esp(sa, gone.spi_in);
        }
        sa.rekey.others.push(child);
        sa.rekey.old_esp.push(esp);
    }

    fn drop_esp(&mut self, sa: &mut ResponderSa, spi_in: u32) {
        sa.rekey.old_esp.retain(|e| e.inbound.spi() != spi_in);
        if self.by_spi.get(&spi_in) == Some(&sa.handle) {
            self.by_spi.remove(&spi_in);
        }
    }

    /// `child` becomes current both ways; the replaced one keeps receiving.
    fn switch_child(&mut self, sa: &mut ResponderSa, child: ChildSa, esp: EspSa) {
        let old_child = sa.child.replace(child);
        let old_esp = sa.esp.replace(esp);
        if let (Some(c), Some(e)) = (old_child, old_esp) {
            self.keep_other(sa, c, e);
        }
    }

    /// The other CHILD SA `spi_in` becomes current.
    fn adopt_child(&mut self, sa: &mut ResponderSa, spi_in: u32) {
        let c = sa.rekey.others.iter().position(|c| c.spi_in == spi_in);
        let e = sa
            .rekey
            .old_esp
            .iter()
            .position(|e| e.inbound.spi() == spi_in);
        if let (Some(c), Some(e)) = (c, e) {
            let child = sa.rekey.others.remove(c);
            let esp = sa.rekey.old_esp.remove(e);
            self.switch_child(sa, child, esp);
        }
    }

    fn answer_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        message_id: u32,
        r: &CreateChild<'_>,
    ) {
        let colliding = matches!(sa.rekey.pending, Some(Pending::Ike(_)));
        let busy = sa.tm.busy() || sa.rekey.pending.is_some() || sa.rekey.deleting_child.is_some();
        if !colliding && busy {
            return self.refuse_rekey(sa, message_id, &Refusal::new(NotifyType::TEMPORARY_FAILURE));
        }
        let answer = answer_ike(
            sa.keys.prf,
            sa.keys.sk_d.as_bytes(),
            &self.cfg.ike,
            r,
            self.rng.as_mut(),
        );
        let answer = match answer {
            Ok(a) => a,
            Err(refusal) => return self.refuse_rekey(sa, message_id, &refusal),
        };
        let p = answer.payloads();
        self.respond(sa, ExchangeType::CREATE_CHILD_SA, message_id, &p);
        drop(p);
        if colliding {
            sa.rekey.collision = Some(Collision::Ike {
                new: Box::new(answer.new),
            });
        } else {
            self.switch_ike(now, sa, answer.new, false);
        }
    }

    fn switch_ike(&mut self, now: Instant, sa: &mut ResponderSa, new: NewIkeSa, delete_old: bool) {
        let our_spi = new.our_spi();
        let old_keys = std::mem::replace(&mut sa.keys, new.keys);
        let old_tm = std::mem::replace(&mut sa.tm, TaskManager::new(self.cfg.retransmit));
        let (old, d) = OldIkeSa::retire(
            sa.spi_i,
            sa.spi_r,
            sa.original_initiator,
            old_keys,
            old_tm,
            sa.fragmentation.then_some(self.cfg.fragment_size),
            now,
            delete_old,
            self.rng.as_mut(),
        );
        self.queue_to_peer(sa, d);
        old_ike::keep(&mut sa.rekey.old_ike, old);
        info!(
            "responder: IKE SA {:016x}_{:016x} rekeyed to {:016x}_{:016x}",
            sa.spi_i, sa.spi_r, new.spi_i, new.spi_r
        );
        sa.spi_i = new.spi_i;
        sa.spi_r = new.spi_r;
        sa.original_initiator = new.original_initiator;
        sa.reassembly.clear();
        self.by_ike_spi.insert(our_spi, sa.handle);
    }

    /// Keeps a redundant new IKE SA until deleted (by us when `ours`).
    fn retire_new_ike(&mut self, now: Instant, sa: &mut ResponderSa, new: NewIkeSa, ours: bool) {
        let our_spi = new.our_spi();
        let (old, d) = OldIkeSa::retire(
            new.spi_i,
            new.spi_r,
            new.original_initiator,
            new.keys,
            TaskManager::new(self.cfg.retransmit),
            sa.fragmentation.then_some(self.cfg.fragment_size),
            now,
            ours,
            self.rng.as_mut(),
        );
        self.queue_to_peer(sa, d);
        self.by_ike_spi.insert(our_spi, sa.handle);
        old_ike::keep(&mut sa.rekey.old_ike, old);
    }

    /// A message for one of `sa`'s replaced IKE SAs: handled there. Returns whether it was.
    pub(super) fn rekey_old_ike(&mut self, sa: &mut ResponderSa, msg: &Message<'_>) -> bool {
        let Some(i) = sa.rekey.old_ike.iter().position(|o| o.matches(&msg.header)) else {
            return false;
        };
        let out = sa.rekey.old_ike[i].handle(msg, self.rng.as_mut());
        self.queue_to_peer(sa, out.datagrams);
        if out.done {
            let old = sa.rekey.old_ike.remove(i);
            let ours = if old.original_initiator {
                old.spi_i
            } else {
                old.spi_r
            };
            if ours != sa.handle {
                self.by_ike_spi.remove(&ours);
            }
        }
        true
    }

    /// A response to one of our requests on `sa`'s current IKE SA.
    pub(super) fn handle_sa_response(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        msg: &Message<'_>,
    ) {
        let id = msg.header.message_id;
        if sa.tm.outstanding_id() != Some(id) {
            self.dropped += 1;
            return;
        }
        let Ok(opened) = protect::open(&sa.keys.inbound, msg) else {
            self.dropped += 1;
            return;
        };
        let ResponseMatch::Expected(kind) = sa.tm.match_response(id) else {
            return;
        };
        let Ok(p) = opened.payloads() else {
            self.dropped += 1;
            return;
        };
        match kind {
            RequestKind::CreateChildSa => self.finish_rekey(now, sa, &p),
            RequestKind::DeleteChild => {
                if let Some(spi) = sa.rekey.deleting_child.take() {
                    sa.rekey.others.retain(|c| c.spi_in != spi);
                    self.drop_esp(sa, spi);
                }
            }
            _ => {}
        }
    }

    fn finish_rekey(&mut self, now: Instant, sa: &mut ResponderSa, p: &[Payload<'_>]) {
        let Some(pending) = sa.rekey.pending.take() else {
            return;
        };
        let r = CreateChild::parse(p);
        let collision = sa.rekey.collision.take();
        match pending {
            Pending::Child(offer) => {
                let theirs = match collision {
                    Some(Collision::Child { ni, nr, spi_in }) => Some((ni, nr, spi_in)),
                    _ => None,
                };
                let new = match offer.finish(sa.keys.prf, sa.keys.sk_d.as_bytes(), &r) {
                    Ok(c) => c,
                    Err(outcome) => {
                        if let Some((_, _, spi)) = theirs {
                            return self.adopt_child(sa, spi);
                        }
                        return self.rekey_refused(now, sa, false, &outcome);
                    }
                };
                let Ok(esp) = EspSa::new(&new, self.rng.as_mut()) else {
                    return;
                };
                self.by_spi.insert(new.spi_in, sa.handle);
                let nr = r.nonce.unwrap_or_default();
                match theirs {
                    Some((ni2, nr2, spi)) if our_exchange_loses((&offer.ni, nr), (&ni2, &nr2)) => {
                        info!("responder: rekey collision, ours is redundant");
                        let redundant = new.spi_in;
                        self.keep_other(sa, new, esp);
                        self.adopt_child(sa, spi);
                        self.send_child_delete(now, sa, redundant);
                    }
                    _ => {
                        self.switch_child(sa, new, esp);
                        self.send_child_delete(now, sa, offer.old_spi_in);
                    }
                }
            }
            Pending::Ike(offer) => {
                let theirs = match collision {
                    Some(Collision::Ike { new }) => Some(*new),
                    _ => None,
                };
                let ours = match offer.finish(sa.keys.prf, sa.keys.sk_d.as_bytes(), &r) {
                    Ok(n) => n,
                    Err(outcome) => {
                        if let Some(t) = theirs {
                            return self.switch_ike(now, sa, t, false);
                        }
                        return self.rekey_refused(now, sa, true, &outcome);
                    }
                };
                match theirs {
                    Some(t) if our_exchange_loses((&ours.ni, &ours.nr), (&t.ni, &t.nr)) => {
                        info!("responder: IKE rekey collision, ours is redundant");
                        self.switch_ike(now, sa, t, false);
                        self.retire_new_ike(now, sa, ours, true);
                    }
                    Some(t) => {
                        self.switch_ike(now, sa, ours, true);
                        self.retire_new_ike(now, sa, t, false);
                    }
                    None => self.switch_ike(now, sa, ours, true),
                }
            }
        }
        sa.rekey.ke_retried = false;
    }

    /// Our rekey (of the IKE SA when `ike`) was refused or answered badly: retried once
    /// with the group the client wants, else given up.
    fn rekey_refused(&mut self, now: Instant, sa: &mut ResponderSa, ike: bool, outcome: &Outcome) {
        match outcome.wanted_group().filter(|_| !sa.rekey.ke_retried) {
            Some(g) => {
                sa.rekey.ke_retried = true;
                if ike {
                    self.start_ike_rekey(now, sa, Some(g));
                } else {
                    self.start_child_rekey(now, sa, Some(g));
                }
            }
            None if ike => warn!("responder: IKE rekey failed: {outcome:?}"),
            None => warn!("responder: CHILD rekey failed: {outcome:?}"),
        }
    }

    fn send_child_delete(&mut self, now: Instant, sa: &mut ResponderSa, spi_in: u32) {
        if sa.tm.busy() {
            return;
        }
        let spi = spi_in.to_be_bytes();
        let d = [Payload::delete_esp(&spi)];
        self.send_sa_request(
            now,
            sa,
            RequestKind::DeleteChild,
            ExchangeType::INFORMATIONAL,
            &d,
        );
        sa.rekey.deleting_child = Some(spi_in);
    }

    /// The client deleted CHILD SAs a rekey replaced: answered here (false when none of
    /// them is such an SA, for the caller's usual answer).
    pub(super) fn rekey_child_deleted(
        &mut self,
        sa: &mut ResponderSa,
        message_id: u32,
        p: &[Payload<'_>],
    ) -> bool {
        let spis: Vec<u32> = p
            .iter()
            .filter_map(|pl| match pl {
                Payload::Delete(d) if d.protocol == ProtocolId::ESP && d.spi_size == 4 => {
                    Some(d.spis)
                }
                _ => None,
            })
            .flat_map(|s| s.chunks_exact(4))
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let gone: Vec<u32> = sa
            .rekey
            .others
            .iter()
            .filter(|c| spis.contains(&c.spi_out))
            .map(|c| c.spi_in)
            .collect();
        if gone.is_empty() {
            return false;
        }
        let mut reply = Vec::new();
        for spi in gone {
            sa.rekey.others.retain(|c| c.spi_in != spi);
            self.drop_esp(sa, spi);
            if sa.rekey.deleting_child != Some(spi) {
                reply.extend_from_slice(&spi.to_be_bytes());
            }
        }
        let d = [Payload::delete_esp(&reply)];
        let out: &[Payload<'_>] = if reply.is_empty() { &[] } else { &d };
        self.respond(sa, ExchangeType::INFORMATIONAL, message_id, out);
        true
    }
}
