//! The client's rekey exchanges: starting CHILD and IKE SA rekeys when their time comes,
//! completing them from the response (with the collision rule when the server rekeyed the
//! same SA at once), answering the server's rekey requests, deleting what a rekey replaced,
//! and the hard lifetimes that end the IKE SA when no rekey succeeded.

use std::time::Instant;

use log::{debug, info, warn};

use super::collision::our_exchange_loses;
use super::exchange::{
    draft_child, draft_ike, fresh_spi, ChildAnswer, ChildOffer, CreateChild, IkeOffer, NewIkeSa,
    Outcome, Refusal,
};
use super::followup::{Answers, Chain, Making};
use super::old_ike::{self, OldIkeSa};
use super::{
    retry_delay, Collision, OursDone, Pending, MAX_KE_RETRIES, MAX_OTHER_CHILDREN, RETRY_FAILED,
    RETRY_TEMPORARY,
};
use crate::ike::child::ChildSa;
use crate::ike::initiator::{IkeEvent, Initiator, Phase};
use crate::ike::task_manager::{RequestKind, TaskManager};
use crate::session::DisconnectReason;
use crate::wire::{DhGroup, ExchangeType, Header, Message, NotifyType, Payload};

impl Initiator {
    /// Asks for a CHILD SA rekey as soon as the window allows (volume limits, tests).
    pub fn rekey_child(&mut self, now: Instant) {
        if self.child.is_some() {
            self.rekey.child_next = Some(now);
            self.drive_rekey(now);
        }
    }

    /// Asks for an IKE SA rekey as soon as the window allows.
    pub fn rekey_ike(&mut self, now: Instant) {
        if self.phase == Phase::Established {
            self.rekey.ike_next = Some(now);
            self.drive_rekey(now);
        }
    }

    /// When SAs are rekeyed.
    pub fn lifetimes(&self) -> crate::config::Lifetimes {
        self.rekey.lifetimes
    }

    /// Whether the IKE SA is the original initiator's end (false after the server rekeyed it).
    pub fn is_original_initiator(&self) -> bool {
        self.original_initiator
    }

    /// The CHILD SA with inbound SPI `spi_in`: the current one or one still being replaced.
    pub fn child_sa(&self, spi_in: u32) -> Option<&ChildSa> {
        self.child
            .as_ref()
            .filter(|c| c.spi_in == spi_in)
            .or_else(|| self.rekey.other(spi_in))
    }

    /// Inbound SPIs of the CHILD SAs alive besides the current one.
    pub fn other_children(&self) -> Vec<u32> {
        self.rekey.others.iter().map(|c| c.spi_in).collect()
    }

    /// Replaced IKE SAs not yet deleted.
    pub fn old_ike_sas(&self) -> usize {
        self.rekey.old_ike.len()
    }

    /// The next instant rekeying needs the clock.
    pub fn rekey_deadline(&self) -> Option<Instant> {
        if self.phase != Phase::Established {
            return None;
        }
        self.rekey.deadline(self.tm.busy())
    }

    /// Starts lifetimes of new SAs, ends expired ones, and sends what is due when the window
    /// is free: a queued CHILD SA DELETE, then an IKE rekey, then a CHILD rekey.
    pub(crate) fn drive_rekey(&mut self, now: Instant) {
        if self.phase != Phase::Established {
            return;
        }
        if self.rekey.ike_expire.is_none() {
            self.rekey.ike_started(now, self.rng.as_mut());
        }
        if self.child.is_some() && self.rekey.child_expire.is_none() {
            self.rekey.child_started(now, self.rng.as_mut());
        }
        let expired = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        if expired(self.rekey.ike_expire)
            || (self.child.is_some() && expired(self.rekey.child_expire))
        {
            warn!("SA hard lifetime reached without a successful rekey");
            return self.finish(DisconnectReason::Timeout);
        }
        if self.tm.busy() || self.rekey.in_progress() {
            return;
        }
        if let Some(spi) = self.rekey.delete_queue.pop_front() {
            return self.send_child_delete(now, spi);
        }
        if expired(self.rekey.ike_next) {
            self.rekey.ke_retries = 0;
            return self.start_ike_rekey(now, None);
        }
        if self.child.is_some() && expired(self.rekey.child_next) {
            self.rekey.ke_retries = 0;
            self.start_child_rekey(now, None);
        }
    }

    fn start_child_rekey(&mut self, now: Instant, wanted: Option<DhGroup>) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        let others = &self.rekey.others;
        let current = child.spi_in;
        let spi_in = fresh_spi(self.rng.as_mut(), |s| {
            s == current || others.iter().any(|c| c.spi_in == s)
        });
        match ChildOffer::new(&self.params.esp, wanted, child, spi_in, self.rng.as_mut()) {
            Ok(offer) => {
                info!(
                    "rekeying CHILD SA {:08x} (new inbound SPI {spi_in:08x})",
                    offer.old_spi_in
                );
                self.send_rekey_request(now, Pending::Child(offer));
            }
            Err(e) => {
                warn!("cannot rekey the CHILD SA: {e}");
                self.rekey.child_next = Some(now + RETRY_FAILED);
            }
        }
    }

    fn start_ike_rekey(&mut self, now: Instant, wanted: Option<DhGroup>) {
        let group = wanted
            .or_else(|| self.ike_selected.and_then(|s| s.dh))
            .or_else(|| self.params.first_group());
        let Some(group) = group else { return };
        match IkeOffer::new(&self.params.ike, group, self.rng.as_mut()) {
            Ok(offer) => {
                info!("rekeying IKE SA {:016x}_{:016x}", self.spi_i, self.spi_r);
                self.send_rekey_request(now, Pending::Ike(offer));
            }
            Err(e) => {
                warn!("cannot rekey the IKE SA: {e}");
                self.rekey.ike_next = Some(now + RETRY_FAILED);
            }
        }
    }

    /// Sends our rekey request and keeps it until the response.
    fn send_rekey_request(&mut self, now: Instant, pending: Pending) {
        let p = pending.payloads();
        self.send_request(
            now,
            RequestKind::CreateChildSa,
            ExchangeType::CREATE_CHILD_SA,
            &p,
        );
        drop(p);
        self.rekey.pending = Some(pending);
    }

    /// The response to our CREATE_CHILD_SA request.
    pub(crate) fn process_create_child_response(&mut self, now: Instant, p: &[Payload<'_>]) {
        let Some(pending) = self.rekey.pending.take() else {
            debug!("CREATE_CHILD_SA response without a rekey of ours");
            return;
        };
        let r = CreateChild::parse(p);
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let (prf, rng) = (keys.prf, self.rng.as_mut());
        match pending {
            Pending::Child(mut offer) => {
                let accepted = offer.accept(&r).and_then(|a| {
                    let chain = Chain::start(&a.selected, r.link, rng)?;
                    Ok((a, chain))
                });
                let result = match accepted {
                    Ok((a, Some(chain))) => {
                        offer.chain = Some((a, chain));
                        return self.send_followup(now, Pending::Child(offer));
                    }
                    Ok((a, None)) => a
                        .derive(&offer, prf, keys.sk_d.as_bytes(), &[])
                        .map(|c| (c, a.nr)),
                    Err(o) => Err(o),
                };
                self.finish_child_rekey(now, offer, result)
            }
            Pending::Ike(mut offer) => {
                let accepted = offer.accept(&r).and_then(|a| {
                    let chain = Chain::start(&a.selected, r.link, rng)?;
                    Ok((a, chain))
                });
                let result = match accepted {
                    Ok((a, Some(chain))) => {
                        offer.chain = Some((a, chain));
                        return self.send_followup(now, Pending::Ike(offer));
                    }
                    Ok((a, None)) => a.derive(&offer, prf, keys.sk_d.as_bytes(), &[]),
                    Err(o) => Err(o),
                };
                self.finish_ike_rekey(now, result)
            }
        }
    }

    /// Our CHILD SA rekey ended: the new SA (and the responder's nonce) or why not.
    pub(super) fn finish_child_rekey(
        &mut self,
        now: Instant,
        offer: ChildOffer,
        result: Result<(ChildSa, Vec<u8>), Outcome>,
    ) {
        let collision = match self.rekey.collision.take() {
            Some(Collision::Child { ni, nr, spi_in }) => Some((ni, nr, spi_in)),
            other => {
                self.rekey.collision = other;
                None
            }
        };
        let (new, nr) = match result {
            Ok(c) => c,
            Err(outcome) => {
                if let Some((_, _, theirs)) = collision {
                    // The server's rekey of the same SA stands alone.
                    return self.adopt_child(now, theirs);
                }
                return self.rekey_refused(now, false, outcome);
            }
        };
        info!(
            "CHILD SA {:08x} rekeyed: in {:08x} out {:08x} ({})",
            offer.old_spi_in,
            new.spi_in,
            new.spi_out,
            new.selected.name()
        );
        let theirs_running = self
            .rekey
            .answering
            .making()
            .any(|m| matches!(m, Making::Child(_)));
        if collision.is_none() && theirs_running {
            debug!("the server's rekey of the same CHILD SA is still running: waiting for it");
            self.rekey.ours_done = Some(OursDone::Child {
                new: Box::new(new),
                ni: offer.ni,
                nr,
                old_spi_in: offer.old_spi_in,
            });
            return;
        }
        self.resolve_child(now, new, &offer.ni, &nr, offer.old_spi_in, collision);
    }

    /// Our new CHILD SA `new` (exchange nonces `ni`, `nr`, replacing `old_spi_in`) against
    /// the server's rekey of the same SA, if one ran (its nonces and our inbound SPI).
    pub(super) fn resolve_child(
        &mut self,
        now: Instant,
        new: ChildSa,
        ni: &[u8],
        nr: &[u8],
        old_spi_in: u32,
        collision: Option<(Vec<u8>, Vec<u8>, u32)>,
    ) {
        match collision {
            Some((ni2, nr2, theirs)) if our_exchange_loses((ni, nr), (&ni2, &nr2)) => {
                info!("rekey collision: ours ({:08x}) is redundant", new.spi_in);
                let spi = new.spi_in;
                self.keep_other(new);
                self.rekey.delete_queue.push_back(spi);
                self.adopt_child(now, theirs);
            }
            won => {
                if won.is_some() {
                    info!("rekey collision: ours ({:08x}) survives", new.spi_in);
                }
                self.make_current(now, new);
                self.rekey.delete_queue.push_back(old_spi_in);
            }
        }
    }

    /// Makes `new` the current CHILD SA; the one it replaces stays among the others.
    fn make_current(&mut self, now: Instant, new: ChildSa) {
        let spi_in = new.spi_in;
        if let Some(old) = self.child.replace(new) {
            let old_spi_in = old.spi_in;
            self.keep_other(old);
            self.emit(IkeEvent::ChildRekeyed { old_spi_in, spi_in });
        }
        self.rekey.child_started(now, self.rng.as_mut());
    }

    /// Makes the other CHILD SA `spi_in` (made answering the server) the current one.
    fn adopt_child(&mut self, now: Instant, spi_in: u32) {
        if let Some(i) = self.rekey.others.iter().position(|c| c.spi_in == spi_in) {
            let c = self.rekey.others.remove(i);
            self.make_current(now, c);
        }
    }

    fn keep_other(&mut self, c: ChildSa) {
        if self.rekey.others.len() >= MAX_OTHER_CHILDREN {
            let gone = self.rekey.others.remove(0);
            self.emit(IkeEvent::ChildRetired {
                spi_in: gone.spi_in,
            });
        }
        self.rekey.others.push(c);
    }

    /// Our IKE SA rekey ended: the new SA or why not.
    pub(super) fn finish_ike_rekey(&mut self, now: Instant, result: Result<NewIkeSa, Outcome>) {
        let collision = match self.rekey.collision.take() {
            Some(Collision::Ike { new }) => Some(*new),
            other => {
                self.rekey.collision = other;
                None
            }
        };
        let ours = match result {
            Ok(n) => n,
            Err(outcome) => {
                if let Some(theirs) = collision {
                    return self.switch_ike(now, theirs, false);
                }
                return self.rekey_refused(now, true, outcome);
            }
        };
        let theirs_running = self
            .rekey
            .answering
            .making()
            .any(|m| matches!(m, Making::Ike(_)));
        if collision.is_none() && theirs_running {
            debug!("the server's rekey of the IKE SA is still running: waiting for it");
            self.rekey.ours_done = Some(OursDone::Ike(Box::new(ours)));
            return;
        }
        self.resolve_ike(now, ours, collision);
    }

    /// Our new IKE SA against the server's rekey of it, if one ran.
    pub(super) fn resolve_ike(
        &mut self,
        now: Instant,
        ours: NewIkeSa,
        collision: Option<NewIkeSa>,
    ) {
        match collision {
            Some(theirs) if our_exchange_loses((&ours.ni, &ours.nr), (&theirs.ni, &theirs.nr)) => {
                info!("IKE rekey collision: ours is redundant");
                self.switch_ike(now, theirs, false);
                self.retire_new_ike(now, ours, true);
            }
            Some(theirs) => {
                info!("IKE rekey collision: ours survives");
                self.switch_ike(now, ours, true);
                self.retire_new_ike(now, theirs, false);
            }
            None => self.switch_ike(now, ours, true),
        }
    }

    /// Keeps a redundant new IKE SA until it is deleted (by us when `ours`).
    fn retire_new_ike(&mut self, now: Instant, sa: NewIkeSa, ours: bool) {
        let (old, d) = OldIkeSa::retire(
            sa.spi_i,
            sa.spi_r,
            sa.original_initiator,
            sa.keys,
            TaskManager::new(self.params.config.retransmit),
            self.fragment_size(),
            now,
            ours,
            self.rng.as_mut(),
        );
        self.queue_datagrams(d);
        old_ike::keep(&mut self.rekey.old_ike, old);
    }

    fn fragment_size(&self) -> Option<usize> {
        self.peer
            .fragmentation
            .then_some(self.params.config.fragment_size)
    }

    /// Makes `new` the IKE SA; the replaced one is deleted by us (`delete_old`) or the peer.
    fn switch_ike(&mut self, now: Instant, new: NewIkeSa, delete_old: bool) {
        let Some(old_keys) = self.keys.take() else {
            return;
        };
        let old_tm = std::mem::replace(
            &mut self.tm,
            TaskManager::new(self.params.config.retransmit),
        );
        let (old, d) = OldIkeSa::retire(
            self.spi_i,
            self.spi_r,
            self.original_initiator,
            old_keys,
            old_tm,
            self.fragment_size(),
            now,
            delete_old,
            self.rng.as_mut(),
        );
        self.queue_datagrams(d);
        old_ike::keep(&mut self.rekey.old_ike, old);
        info!(
            "IKE SA {:016x}_{:016x} rekeyed to {:016x}_{:016x} ({}, we are the original {})",
            self.spi_i,
            self.spi_r,
            new.spi_i,
            new.spi_r,
            new.selected.name(),
            if new.original_initiator {
                "initiator"
            } else {
                "responder"
            }
        );
        self.spi_i = new.spi_i;
        self.spi_r = new.spi_r;
        self.original_initiator = new.original_initiator;
        self.keys = Some(new.keys);
        self.ike_selected = Some(new.selected);
        // Exchanges we answered on the replaced SA belong to it.
        self.rekey.answering = Answers::default();
        self.clear_reassembly();
        self.rekey.ike_started(now, self.rng.as_mut());
        self.emit(IkeEvent::IkeRekeyed);
    }

    /// Our rekey was refused or answered badly: retry with the group the peer wants, or later.
    fn rekey_refused(&mut self, now: Instant, ike: bool, outcome: Outcome) {
        let what = if ike { "IKE" } else { "CHILD" };
        if let Some(g) = outcome.wanted_group() {
            let offered = if ike {
                self.params.offers_group(g)
            } else {
                self.params.esp.iter().any(|s| s.dh.contains(&g))
            };
            if offered && self.rekey.ke_retries < MAX_KE_RETRIES {
                self.rekey.ke_retries += 1;
                debug!("{what} rekey: the server wants group {g}");
                return if ike {
                    self.start_ike_rekey(now, Some(g))
                } else {
                    self.start_child_rekey(now, Some(g))
                };
            }
        }
        let delay = match &outcome {
            Outcome::Refused(NotifyType::TEMPORARY_FAILURE, _) => {
                debug!("{what} rekey: server busy, retrying");
                retry_delay(RETRY_TEMPORARY, self.rng.as_mut())
            }
            other => {
                warn!("{what} rekey failed: {other:?}");
                retry_delay(RETRY_FAILED, self.rng.as_mut())
            }
        };
        let next = Some(now + delay);
        if ike {
            self.rekey.ike_next = next;
        } else {
            self.rekey.child_next = next;
        }
    }

    /// A CREATE_CHILD_SA request from the server: a rekey of the CHILD or IKE SA.
    pub(crate) fn process_create_child_request(
        &mut self,
        now: Instant,
        h: Header,
        p: &[Payload<'_>],
    ) {
        let r = CreateChild::parse(p);
        let refusal = if self.phase != Phase::Established {
            Some(Refusal::new(NotifyType::TEMPORARY_FAILURE))
        } else if r.is_ike_rekey() {
            return self.answer_ike_rekey(now, h.message_id, &r);
        } else if let Some(spi) = r.rekeyed_esp_spi() {
            return self.answer_child_rekey(now, h.message_id, &r, spi);
        } else if r.rekey.is_some() {
            Some(Refusal::new(NotifyType::CHILD_SA_NOT_FOUND))
        } else {
            Some(Refusal::new(NotifyType::NO_ADDITIONAL_SAS))
        };
        if let Some(refusal) = refusal {
            debug!("refusing CREATE_CHILD_SA request: {}", refusal.kind);
            self.send_response(
                ExchangeType::CREATE_CHILD_SA,
                h.message_id,
                &[refusal.payload()],
            );
        }
    }

    /// Answers the server's CREATE_CHILD_SA whose proposal has additional key exchanges: the
    /// response carries a link, the SA (`making`) waits for the IKE_FOLLOWUP_KE exchanges
    /// (RFC 9370 §2.2.4), at most as many as `answering` has room for.
    fn answer_first_of_several(&mut self, now: Instant, message_id: u32, making: Making) {
        if !self.rekey.answering.has_room(now) {
            return self.refuse(message_id, NotifyType::TEMPORARY_FAILURE);
        }
        let link = Answers::new_link(self.rng.as_mut());
        let p = making.payloads(&link);
        self.send_response(ExchangeType::CREATE_CHILD_SA, message_id, &p);
        drop(p);
        self.rekey.answering.insert(now, link, making);
    }

    fn refuse(&mut self, message_id: u32, kind: NotifyType) {
        debug!("refusing the server's rekey: {kind}");
        let r = Refusal::new(kind);
        self.send_response(ExchangeType::CREATE_CHILD_SA, message_id, &[r.payload()]);
    }

    /// Sends the answer to the server's CREATE_CHILD_SA request (its `payloads`), or the
    /// refusal; the answer comes back when it is one.
    fn send_answer<A>(
        &mut self,
        message_id: u32,
        answer: Result<A, Refusal>,
        payloads: impl Fn(&A) -> Vec<Payload<'_>>,
    ) -> Option<A> {
        let p = match &answer {
            Ok(a) => payloads(a),
            Err(refusal) => vec![refusal.payload()],
        };
        self.send_response(ExchangeType::CREATE_CHILD_SA, message_id, &p);
        drop(p);
        answer.ok()
    }

    fn answer_child_rekey(
        &mut self,
        now: Instant,
        message_id: u32,
        r: &CreateChild<'_>,
        spi_out: u32,
    ) {
        let ike_running = matches!(self.rekey.pending, Some(Pending::Ike(_)))
            || matches!(self.rekey.ours_done, Some(OursDone::Ike(_)))
            || !self.rekey.answering.is_empty();
        if ike_running {
            return self.refuse(message_id, NotifyType::TEMPORARY_FAILURE);
        }
        let is_current = self.child.as_ref().is_some_and(|c| c.spi_out == spi_out);
        if !is_current {
            let known = self.rekey.others.iter().any(|c| c.spi_out == spi_out);
            let kind = if known {
                // Being replaced or deleted already (§2.25.1).
                NotifyType::TEMPORARY_FAILURE
            } else {
                NotifyType::CHILD_SA_NOT_FOUND
            };
            return self.refuse(message_id, kind);
        }
        let (Some(keys), Some(child)) = (self.keys.as_ref(), self.child.as_ref()) else {
            return;
        };
        let others = &self.rekey.others;
        let current = child.spi_in;
        let spi_in = fresh_spi(self.rng.as_mut(), |s| {
            s == current || others.iter().any(|c| c.spi_in == s)
        });
        let draft = draft_child(&self.params.esp, r, child, spi_in, self.rng.as_mut());
        let draft = match draft {
            Ok(d) if d.selected.has_additional() => {
                debug!("server rekeys CHILD SA {current:08x} with additional key exchanges");
                return self.answer_first_of_several(now, message_id, Making::Child(d));
            }
            other => other,
        };
        let answer = draft.and_then(|d| {
            d.finish(keys.prf, keys.sk_d.as_bytes(), &[])
                .map(|a| (d, a))
                .map_err(|_| Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN))
        });
        let Some((_, answer)) = self.send_answer(message_id, answer, |(d, _)| d.payloads(None))
        else {
            return;
        };
        self.answered_child(now, answer);
    }

    /// The server's rekey of the current CHILD SA made `answer`.
    pub(super) fn answered_child(&mut self, now: Instant, answer: ChildAnswer) {
        let current = self.child.as_ref().map_or(0, |c| c.spi_in);
        info!(
            "server rekeyed CHILD SA {current:08x}: in {:08x} out {:08x}",
            answer.child.spi_in, answer.child.spi_out
        );
        let ours_done = matches!(self.rekey.ours_done, Some(OursDone::Child { .. }));
        if matches!(self.rekey.pending, Some(Pending::Child(_))) || ours_done {
            // Both ends rekey it: keep the server's SA for inbound until ours is answered.
            let spi_in = answer.child.spi_in;
            self.rekey.collision = Some(Collision::Child {
                ni: answer.ni,
                nr: answer.nr,
                spi_in,
            });
            self.keep_other(answer.child);
            self.emit(IkeEvent::ChildInstalled { spi_in });
            if let Some(OursDone::Child {
                new,
                ni,
                nr,
                old_spi_in,
            }) = self.rekey.ours_done.take()
            {
                let collision = match self.rekey.collision.take() {
                    Some(Collision::Child { ni, nr, spi_in }) => Some((ni, nr, spi_in)),
                    _ => None,
                };
                self.resolve_child(now, *new, &ni, &nr, old_spi_in, collision);
            }
        } else {
            self.make_current(now, answer.child);
        }
    }

    fn answer_ike_rekey(&mut self, now: Instant, message_id: u32, r: &CreateChild<'_>) {
        let colliding = matches!(self.rekey.pending, Some(Pending::Ike(_)));
        let child_work = self.rekey.in_progress()
            || self.rekey.deleting_child.is_some()
            || !self.rekey.delete_queue.is_empty();
        if !colliding && (child_work || self.tm.busy()) {
            return self.refuse(message_id, NotifyType::TEMPORARY_FAILURE);
        }
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let draft = draft_ike(&self.params.ike, r, self.rng.as_mut());
        let draft = match draft {
            Ok(d) if d.selected.has_additional() => {
                debug!("server rekeys the IKE SA with additional key exchanges");
                return self.answer_first_of_several(now, message_id, Making::Ike(d));
            }
            other => other,
        };
        let answer = draft.and_then(|d| {
            d.finish(keys.prf, keys.sk_d.as_bytes(), &[])
                .map(|n| (d, n))
                .map_err(|_| Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN))
        });
        let Some((_, new)) = self.send_answer(message_id, answer, |(d, _)| d.payloads(None)) else {
            return;
        };
        self.answered_ike(now, new);
    }

    /// The server's rekey of the IKE SA made `new`.
    pub(super) fn answered_ike(&mut self, now: Instant, new: NewIkeSa) {
        if matches!(self.rekey.pending, Some(Pending::Ike(_))) {
            self.rekey.collision = Some(Collision::Ike { new: Box::new(new) });
        } else if let Some(OursDone::Ike(ours)) = self.rekey.ours_done.take() {
            self.resolve_ike(now, *ours, Some(new));
        } else {
            self.switch_ike(now, new, false);
        }
    }

    /// The server deleted CHILD SAs (its inbound SPIs = our outbound): those a rekey
    /// replaced are answered here. Returns false when the current CHILD SA is among them
    /// (or none is ours), for the caller's own handling.
    pub(crate) fn rekey_child_deleted(&mut self, message_id: u32, spis_out: &[u32]) -> bool {
        if self
            .child
            .as_ref()
            .is_some_and(|c| spis_out.contains(&c.spi_out))
        {
            return false;
        }
        let mut gone = Vec::new();
        self.rekey.others.retain(|c| {
            let hit = spis_out.contains(&c.spi_out);
            if hit {
                gone.push(c.spi_in);
            }
            !hit
        });
        if gone.is_empty() {
            return false;
        }
        let mut reply = Vec::with_capacity(gone.len() * 4);
        for spi in &gone {
            let ours_in_flight = self.rekey.deleting_child == Some(*spi);
            let queued = self.rekey.delete_queue.contains(spi);
            self.rekey.delete_queue.retain(|s| s != spi);
            if !ours_in_flight && !queued {
                reply.extend_from_slice(&spi.to_be_bytes());
            }
            debug!("server deleted CHILD SA {spi:08x}");
            self.emit(IkeEvent::ChildRetired { spi_in: *spi });
        }
        let d = [Payload::delete_esp(&reply)];
        let p: &[Payload<'_>] = if reply.is_empty() { &[] } else { &d };
        self.send_response(ExchangeType::INFORMATIONAL, message_id, p);
        true
    }

    fn send_child_delete(&mut self, now: Instant, spi_in: u32) {
        if !self.rekey.others.iter().any(|c| c.spi_in == spi_in) {
            return;
        }
        debug!("deleting CHILD SA {spi_in:08x}");
        let spi = spi_in.to_be_bytes();
        let d = [Payload::delete_esp(&spi)];
        self.send_request(
            now,
            RequestKind::DeleteChild,
            ExchangeType::INFORMATIONAL,
            &d,
        );
        self.rekey.deleting_child = Some(spi_in);
    }

    /// The response to our DELETE of a replaced CHILD SA.
    pub(crate) fn child_delete_done(&mut self) {
        if let Some(spi) = self.rekey.deleting_child.take() {
            self.rekey.others.retain(|c| c.spi_in != spi);
            self.emit(IkeEvent::ChildRetired { spi_in: spi });
        }
    }

    /// A message for a replaced IKE SA: handled there. Returns whether it was one.
    pub(crate) fn route_to_old_ike(&mut self, msg: &Message<'_>) -> bool {
        let Some(i) = self
            .rekey
            .old_ike
            .iter()
            .position(|o| o.matches(&msg.header))
        else {
            return false;
        };
        let out = self.rekey.old_ike[i].handle(msg, self.rng.as_mut());
        self.queue_datagrams(out.datagrams);
        if out.done {
            self.rekey.old_ike.remove(i);
        }
        true
    }

    /// Timers of replaced IKE SAs, then whatever rekey is due.
    pub(crate) fn rekey_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.rekey.old_ike.len() {
            let out = self.rekey.old_ike[i].on_timeout(now);
            self.queue_datagrams(out.datagrams);
            if out.done {
                self.rekey.old_ike.remove(i);
            } else {
                i += 1;
            }
        }
        self.settle_ours(now);
        self.drive_rekey(now);
    }
}
