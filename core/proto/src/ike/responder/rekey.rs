//! The responder's rekeys, so tests can play a server that rekeys: answering a client's
//! CREATE_CHILD_SA rekeys of the CHILD and IKE SA, rekeying them itself on request
//! ([`Responder::rekey_child`], [`Responder::rekey_ike`]), the collision rule when both ends
//! rekey at once, DELETEs of replaced CHILD SAs both ways, and replaced IKE SAs kept until
//! deleted. Replaced CHILD SAs keep receiving until deleted. Proposals with additional key
//! exchanges run IKE_FOLLOWUP_KE after the CREATE_CHILD_SA either way (`followup`).

use std::time::Instant;

use log::{debug, info, warn};

use super::{Outgoing, Responder, ResponderSa, SaPhase};
use crate::esp::EspSa;
use crate::ike::child::ChildSa;
use crate::ike::protect;
use crate::ike::rekey::collision::our_exchange_loses;
use crate::ike::rekey::exchange::{
    draft_child, draft_ike, fresh_spi, ChildAnswer, ChildOffer, CreateChild, IkeOffer, NewIkeSa,
    Outcome, Refusal,
};
use crate::ike::rekey::followup::{reply_payloads, Answers, Chain, Making, Reply};
use crate::ike::rekey::old_ike::{self, OldIkeSa};
use crate::ike::rekey::{Collision, OursDone, Pending, MAX_OTHER_CHILDREN};
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
    /// The client's rekeys with additional key exchanges we answer (IKE_FOLLOWUP_KE).
    pub(super) answering: Answers,
    /// Our finished rekey waiting for the client's colliding one.
    pub(super) ours_done: Option<OursDone>,
    /// Fragments of a response to our request (an IKE_FOLLOWUP_KE answer with a large KE).
    responses: protect::Reassembly,
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
        sa.phase == SaPhase::Established
            && !sa.tm.busy()
            && sa.rekey.pending.is_none()
            && sa.rekey.ours_done.is_none()
            && sa.rekey.answering.is_empty()
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

    /// Answers a CREATE_CHILD_SA whose proposal has additional key exchanges: the response
    /// carries a link, the SA (`making`) waits for the IKE_FOLLOWUP_KE exchanges (RFC 9370
    /// §2.2.4), at most as many per IKE SA as `answering` has room for.
    fn answer_first_of_several(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        message_id: u32,
        making: Making,
    ) {
        if !sa.rekey.answering.has_room(now) {
            let r = Refusal::new(NotifyType::TEMPORARY_FAILURE);
            return self.refuse_rekey(sa, message_id, &r);
        }
        let link = Answers::new_link(self.rng.as_mut());
        let p = making.payloads(&link);
        self.respond(sa, ExchangeType::CREATE_CHILD_SA, message_id, &p);
        drop(p);
        sa.rekey.answering.insert(now, link, making);
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
        // A colliding rekey of the client it may have abandoned first (we have no timers).
        self.settle_ours(now, sa);
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
        let ike_running = matches!(sa.rekey.pending, Some(Pending::Ike(_)))
            || matches!(sa.rekey.ours_done, Some(OursDone::Ike(_)))
            || !sa.rekey.answering.is_empty();
        if ike_running {
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
        let draft = match draft_child(&self.cfg.esp, &r, child, spi_in, self.rng.as_mut()) {
            Ok(d) => d,
            Err(refusal) => return self.refuse_rekey(sa, message_id, &refusal),
        };
        if draft.selected.has_additional() {
            debug!("responder: client rekeys CHILD SA with additional key exchanges");
            return self.answer_first_of_several(now, sa, message_id, Making::Child(draft));
        }
        let made = draft
            .finish(sa.keys.prf, sa.keys.sk_d.as_bytes(), &[])
            .ok()
            .and_then(|a| EspSa::new(&a.child, self.rng.as_mut()).ok().map(|e| (a, e)));
        let Some((answer, esp)) = made else {
            let r = Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN);
            return self.refuse_rekey(sa, message_id, &r);
        };
        let p = draft.payloads(None);
        self.respond(sa, ExchangeType::CREATE_CHILD_SA, message_id, &p);
        drop(p);
        self.answered_child(now, sa, answer, esp);
    }

    /// The client's rekey of the CHILD SA made `answer` (its ESP SA `esp`).
    pub(super) fn answered_child(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        answer: ChildAnswer,
        esp: EspSa,
    ) {
        info!(
            "responder: client rekeyed CHILD SA: in {:08x} out {:08x}",
            answer.child.spi_in, answer.child.spi_out
        );
        let spi_in = answer.child.spi_in;
        self.by_spi.insert(spi_in, sa.handle);
        let ours_done = matches!(sa.rekey.ours_done, Some(OursDone::Child { .. }));
        if matches!(sa.rekey.pending, Some(Pending::Child(_))) || ours_done {
            self.keep_other(sa, answer.child, esp);
            let theirs = Some((answer.ni, answer.nr, spi_in));
            match sa.rekey.ours_done.take() {
                Some(OursDone::Child {
                    new,
                    ni,
                    nr,
                    old_spi_in,
                }) => self.resolve_child(now, sa, *new, &ni, &nr, old_spi_in, theirs),
                other => {
                    sa.rekey.ours_done = other;
                    if let Some((ni, nr, spi_in)) = theirs {
                        sa.rekey.collision = Some(Collision::Child { ni, nr, spi_in });
                    }
                }
            }
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
        let busy = sa.tm.busy()
            || sa.rekey.pending.is_some()
            || sa.rekey.ours_done.is_some()
            || !sa.rekey.answering.is_empty()
            || sa.rekey.deleting_child.is_some();
        if !colliding && busy {
            return self.refuse_rekey(sa, message_id, &Refusal::new(NotifyType::TEMPORARY_FAILURE));
        }
        let draft = match draft_ike(&self.cfg.ike, r, self.rng.as_mut()) {
            Ok(d) => d,
            Err(refusal) => return self.refuse_rekey(sa, message_id, &refusal),
        };
        if draft.selected.has_additional() {
            debug!("responder: client rekeys the IKE SA with additional key exchanges");
            return self.answer_first_of_several(now, sa, message_id, Making::Ike(draft));
        }
        let Ok(new) = draft.finish(sa.keys.prf, sa.keys.sk_d.as_bytes(), &[]) else {
            let r = Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN);
            return self.refuse_rekey(sa, message_id, &r);
        };
        let p = draft.payloads(None);
        self.respond(sa, ExchangeType::CREATE_CHILD_SA, message_id, &p);
        drop(p);
        self.answered_ike(now, sa, new);
    }

    /// The client's rekey of the IKE SA made `new`.
    pub(super) fn answered_ike(&mut self, now: Instant, sa: &mut ResponderSa, new: NewIkeSa) {
        if matches!(sa.rekey.pending, Some(Pending::Ike(_))) {
            sa.rekey.collision = Some(Collision::Ike { new: Box::new(new) });
        } else if let Some(OursDone::Ike(ours)) = sa.rekey.ours_done.take() {
            self.resolve_ike(now, sa, *ours, Some(new));
        } else {
            self.switch_ike(now, sa, new, false);
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
        sa.rekey.responses.clear();
        sa.rekey.answering = Answers::default();
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
        let opened = if msg.fragment().is_some() {
            match sa.rekey.responses.add_at(now, &sa.keys.inbound, msg) {
                Ok(Some(o)) => o,
                Ok(None) => return,
                Err(e) => {
                    debug!("responder: bad response fragment: {e}");
                    self.dropped += 1;
                    return;
                }
            }
        } else {
            let Ok(opened) = protect::open(&sa.keys.inbound, msg) else {
                self.dropped += 1;
                return;
            };
            opened
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
            RequestKind::FollowupKe => self.continue_followup(now, sa, &p),
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
        let (prf, rng) = (sa.keys.prf, self.rng.as_mut());
        match pending {
            Pending::Child(mut offer) => {
                let accepted = offer.accept(&r).and_then(|a| {
                    let chain = Chain::start(&a.selected, r.link, rng)?;
                    Ok((a, chain))
                });
                let result = match accepted {
                    Ok((a, Some(chain))) => {
                        offer.chain = Some((a, chain));
                        return self.send_followup(now, sa, Pending::Child(offer));
                    }
                    Ok((a, None)) => a
                        .derive(&offer, prf, sa.keys.sk_d.as_bytes(), &[])
                        .map(|c| (c, a.nr)),
                    Err(o) => Err(o),
                };
                self.finish_child(now, sa, offer, result);
            }
            Pending::Ike(mut offer) => {
                let accepted = offer.accept(&r).and_then(|a| {
                    let chain = Chain::start(&a.selected, r.link, rng)?;
                    Ok((a, chain))
                });
                let result = match accepted {
                    Ok((a, Some(chain))) => {
                        offer.chain = Some((a, chain));
                        return self.send_followup(now, sa, Pending::Ike(offer));
                    }
                    Ok((a, None)) => a.derive(&offer, prf, sa.keys.sk_d.as_bytes(), &[]),
                    Err(o) => Err(o),
                };
                self.finish_ike(now, sa, result);
            }
        }
    }

    /// Sends the next IKE_FOLLOWUP_KE request of our rekey and keeps it until the response.
    fn send_followup(&mut self, now: Instant, sa: &mut ResponderSa, pending: Pending) {
        let p = pending.followup_payloads();
        self.send_sa_request(
            now,
            sa,
            RequestKind::FollowupKe,
            ExchangeType::IKE_FOLLOWUP_KE,
            &p,
        );
        drop(p);
        sa.rekey.pending = Some(pending);
    }

    /// The response to our IKE_FOLLOWUP_KE request: the next one, or the rekey's end.
    fn continue_followup(&mut self, now: Instant, sa: &mut ResponderSa, p: &[Payload<'_>]) {
        let Some(pending) = sa.rekey.pending.take() else {
            return;
        };
        let (prf, rng) = (sa.keys.prf, self.rng.as_mut());
        match pending {
            Pending::Child(mut offer) => {
                let Some((accepted, mut chain)) = offer.chain.take() else {
                    return;
                };
                let result = match chain.on_response(p, rng) {
                    Ok(None) => {
                        offer.chain = Some((accepted, chain));
                        return self.send_followup(now, sa, Pending::Child(offer));
                    }
                    Ok(Some(shares)) => accepted
                        .derive(&offer, prf, sa.keys.sk_d.as_bytes(), &shares)
                        .map(|c| (c, accepted.nr)),
                    Err(o) => Err(o),
                };
                self.finish_child(now, sa, offer, result);
            }
            Pending::Ike(mut offer) => {
                let Some((accepted, mut chain)) = offer.chain.take() else {
                    return;
                };
                let result = match chain.on_response(p, rng) {
                    Ok(None) => {
                        offer.chain = Some((accepted, chain));
                        return self.send_followup(now, sa, Pending::Ike(offer));
                    }
                    Ok(Some(shares)) => {
                        accepted.derive(&offer, prf, sa.keys.sk_d.as_bytes(), &shares)
                    }
                    Err(o) => Err(o),
                };
                self.finish_ike(now, sa, result);
            }
        }
    }

    /// Our CHILD SA rekey ended: the new SA (and the client's nonce) or why not.
    fn finish_child(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        offer: ChildOffer,
        result: Result<(ChildSa, Vec<u8>), Outcome>,
    ) {
        let theirs = match sa.rekey.collision.take() {
            Some(Collision::Child { ni, nr, spi_in }) => Some((ni, nr, spi_in)),
            other => {
                sa.rekey.collision = other;
                None
            }
        };
        let (new, nr) = match result {
            Ok(c) => c,
            Err(outcome) => {
                if let Some((_, _, spi)) = theirs {
                    return self.adopt_child(sa, spi);
                }
                return self.rekey_refused(now, sa, false, &outcome);
            }
        };
        sa.rekey.ke_retried = false;
        let running = sa
            .rekey
            .answering
            .making()
            .any(|m| matches!(m, Making::Child(_)));
        if theirs.is_none() && running {
            sa.rekey.ours_done = Some(OursDone::Child {
                new: Box::new(new),
                ni: offer.ni,
                nr,
                old_spi_in: offer.old_spi_in,
            });
            return;
        }
        self.resolve_child(now, sa, new, &offer.ni, &nr, offer.old_spi_in, theirs);
    }

    /// Our new CHILD SA against the client's rekey of the same SA, if one ran.
    #[allow(clippy::too_many_arguments)]
    fn resolve_child(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        new: ChildSa,
        ni: &[u8],
        nr: &[u8],
        old_spi_in: u32,
        theirs: Option<(Vec<u8>, Vec<u8>, u32)>,
    ) {
        let Ok(esp) = EspSa::new(&new, self.rng.as_mut()) else {
            return;
        };
        self.by_spi.insert(new.spi_in, sa.handle);
        match theirs {
            Some((ni2, nr2, spi)) if our_exchange_loses((ni, nr), (&ni2, &nr2)) => {
                info!("responder: rekey collision, ours is redundant");
                let redundant = new.spi_in;
                self.keep_other(sa, new, esp);
                self.adopt_child(sa, spi);
                self.send_child_delete(now, sa, redundant);
            }
            _ => {
                self.switch_child(sa, new, esp);
                self.send_child_delete(now, sa, old_spi_in);
            }
        }
    }

    /// Our IKE SA rekey ended: the new SA or why not.
    fn finish_ike(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        result: Result<NewIkeSa, Outcome>,
    ) {
        let theirs = match sa.rekey.collision.take() {
            Some(Collision::Ike { new }) => Some(*new),
            other => {
                sa.rekey.collision = other;
                None
            }
        };
        let ours = match result {
            Ok(n) => n,
            Err(outcome) => {
                if let Some(t) = theirs {
                    return self.switch_ike(now, sa, t, false);
                }
                return self.rekey_refused(now, sa, true, &outcome);
            }
        };
        sa.rekey.ke_retried = false;
        let running = sa
            .rekey
            .answering
            .making()
            .any(|m| matches!(m, Making::Ike(_)));
        if theirs.is_none() && running {
            sa.rekey.ours_done = Some(OursDone::Ike(Box::new(ours)));
            return;
        }
        self.resolve_ike(now, sa, ours, theirs);
    }

    /// Our new IKE SA against the client's rekey of it, if one ran.
    fn resolve_ike(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        ours: NewIkeSa,
        theirs: Option<NewIkeSa>,
    ) {
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

    /// An IKE_FOLLOWUP_KE request of the client's rekey.
    pub(super) fn answer_followup(
        &mut self,
        now: Instant,
        sa: &mut ResponderSa,
        message_id: u32,
        p: &[Payload<'_>],
    ) {
        let reply = sa.rekey.answering.answer(now, p, self.rng.as_mut());
        let out = ExchangeType::IKE_FOLLOWUP_KE;
        let failed = Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN);
        match reply {
            Reply::Refuse(r) => {
                debug!("responder: refusing IKE_FOLLOWUP_KE: {}", r.kind);
                self.respond(sa, out, message_id, &[r.payload()]);
            }
            Reply::More { ke, link } => {
                self.respond(sa, out, message_id, &reply_payloads(&ke, Some(&link)));
            }
            Reply::Done { ke, making, shares } => {
                let (prf, sk_d) = (sa.keys.prf, sa.keys.sk_d.as_bytes());
                match *making {
                    Making::Child(d) => {
                        let made = d.finish(prf, sk_d, &shares).ok().and_then(|a| {
                            EspSa::new(&a.child, self.rng.as_mut()).ok().map(|e| (a, e))
                        });
                        match made {
                            Some((answer, esp)) => {
                                self.respond(sa, out, message_id, &reply_payloads(&ke, None));
                                self.answered_child(now, sa, answer, esp);
                            }
                            None => self.respond(sa, out, message_id, &[failed.payload()]),
                        }
                    }
                    Making::Ike(d) => match d.finish(prf, sk_d, &shares) {
                        Ok(new) => {
                            self.respond(sa, out, message_id, &reply_payloads(&ke, None));
                            self.answered_ike(now, sa, new);
                        }
                        Err(_) => self.respond(sa, out, message_id, &[failed.payload()]),
                    },
                }
            }
        }
        self.settle_ours(now, sa);
    }

    /// Drops the client's overdue exchanges; our finished rekey that waited for one of
    /// them then stands alone.
    pub(super) fn settle_ours(&mut self, now: Instant, sa: &mut ResponderSa) {
        sa.rekey.answering.expire(now);
        let running = |want_child: bool| {
            sa.rekey
                .answering
                .making()
                .any(|m| matches!(m, Making::Child(_)) == want_child)
        };
        match sa.rekey.ours_done.take() {
            Some(OursDone::Child {
                new,
                ni,
                nr,
                old_spi_in,
            }) if !running(true) => {
                self.resolve_child(now, sa, *new, &ni, &nr, old_spi_in, None);
            }
            Some(OursDone::Ike(ours)) if !running(false) => self.resolve_ike(now, sa, *ours, None),
            other => sa.rekey.ours_done = other,
        }
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
