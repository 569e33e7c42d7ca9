//! The client's IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4): continuing our rekey after a
//! CREATE_CHILD_SA that chose additional key exchanges, answering the server's, and ending
//! our finished rekey's wait when the server's colliding one is dropped.

use std::time::Instant;

use log::{debug, warn};

use super::exchange::Refusal;
use super::followup::{reply_payloads, Making, Reply};
use super::{Collision, OursDone, Pending};
use crate::ike::initiator::Initiator;
use crate::ike::task_manager::RequestKind;
use crate::wire::{ExchangeType, Header, NotifyType, Payload};

impl Initiator {
    /// Sends the next IKE_FOLLOWUP_KE request of our rekey and keeps it until the response.
    pub(super) fn send_followup(&mut self, now: Instant, pending: Pending) {
        let p = pending.followup_payloads();
        debug!("IKE_FOLLOWUP_KE request: {} payloads", p.len());
        self.send_request(
            now,
            RequestKind::FollowupKe,
            ExchangeType::IKE_FOLLOWUP_KE,
            &p,
        );
        drop(p);
        self.rekey.pending = Some(pending);
    }

    /// The response to our IKE_FOLLOWUP_KE request: the next one, or the rekey's end.
    pub(crate) fn process_followup_response(&mut self, now: Instant, p: &[Payload<'_>]) {
        let Some(pending) = self.rekey.pending.take() else {
            debug!("IKE_FOLLOWUP_KE response without a rekey of ours");
            return;
        };
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let (prf, rng) = (keys.prf, self.rng.as_mut());
        match pending {
            Pending::Child(mut offer) => {
                let Some((accepted, mut chain)) = offer.chain.take() else {
                    return;
                };
                let result = match chain.on_response(p, rng) {
                    Ok(None) => {
                        offer.chain = Some((accepted, chain));
                        return self.send_followup(now, Pending::Child(offer));
                    }
                    Ok(Some(shares)) => accepted
                        .derive(&offer, prf, keys.sk_d.as_bytes(), &shares)
                        .map(|c| (c, accepted.nr)),
                    Err(o) => Err(o),
                };
                self.finish_child_rekey(now, offer, result);
            }
            Pending::Ike(mut offer) => {
                let Some((accepted, mut chain)) = offer.chain.take() else {
                    return;
                };
                let result = match chain.on_response(p, rng) {
                    Ok(None) => {
                        offer.chain = Some((accepted, chain));
                        return self.send_followup(now, Pending::Ike(offer));
                    }
                    Ok(Some(shares)) => accepted.derive(&offer, prf, keys.sk_d.as_bytes(), &shares),
                    Err(o) => Err(o),
                };
                self.finish_ike_rekey(now, result);
            }
        }
    }

    /// An IKE_FOLLOWUP_KE request of the server's rekey.
    pub(crate) fn process_followup_request(&mut self, now: Instant, h: Header, p: &[Payload<'_>]) {
        let mid = h.message_id;
        let reply = self.rekey.answering.answer(now, p, self.rng.as_mut());
        match reply {
            Reply::Refuse(r) => self.refuse_followup(mid, &r),
            Reply::More { ke, link } => {
                let out = reply_payloads(&ke, Some(&link));
                self.send_response(ExchangeType::IKE_FOLLOWUP_KE, mid, &out);
            }
            Reply::Done { ke, making, shares } => {
                let Some(keys) = self.keys.as_ref() else {
                    return;
                };
                let (prf, sk_d) = (keys.prf, keys.sk_d.as_bytes());
                match *making {
                    Making::Child(d) => match d.finish(prf, sk_d, &shares) {
                        Ok(answer) => {
                            let out = reply_payloads(&ke, None);
                            self.send_response(ExchangeType::IKE_FOLLOWUP_KE, mid, &out);
                            self.answered_child(now, answer);
                        }
                        Err(e) => {
                            warn!("CHILD SA keys after IKE_FOLLOWUP_KE: {e}");
                            let r = Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN);
                            self.refuse_followup(mid, &r);
                        }
                    },
                    Making::Ike(d) => match d.finish(prf, sk_d, &shares) {
                        Ok(new) => {
                            let out = reply_payloads(&ke, None);
                            self.send_response(ExchangeType::IKE_FOLLOWUP_KE, mid, &out);
                            self.answered_ike(now, new);
                        }
                        Err(e) => {
                            warn!("IKE SA keys after IKE_FOLLOWUP_KE: {e}");
                            let r = Refusal::new(NotifyType::NO_PROPOSAL_CHOSEN);
                            self.refuse_followup(mid, &r);
                        }
                    },
                }
            }
        }
        self.settle_ours(now);
    }

    fn refuse_followup(&mut self, message_id: u32, r: &Refusal) {
        debug!("refusing IKE_FOLLOWUP_KE: {}", r.kind);
        self.send_response(ExchangeType::IKE_FOLLOWUP_KE, message_id, &[r.payload()]);
    }

    /// Drops the server's overdue exchanges; our finished rekey that waited for one of them
    /// then stands alone.
    pub(super) fn settle_ours(&mut self, now: Instant) {
        let dropped = self.rekey.answering.expire(now);
        if !dropped.is_empty() {
            debug!(
                "the server abandoned {} rekey(s) with additional key exchanges",
                dropped.len()
            );
        }
        let waits_for = |m: &Making, done: &OursDone| {
            matches!(
                (m, done),
                (Making::Child(_), OursDone::Child { .. }) | (Making::Ike(_), OursDone::Ike(_))
            )
        };
        let still_running = match &self.rekey.ours_done {
            Some(done) => self.rekey.answering.making().any(|m| waits_for(m, done)),
            None => return,
        };
        if still_running {
            return;
        }
        match self.rekey.ours_done.take() {
            Some(OursDone::Child {
                new,
                ni,
                nr,
                old_spi_in,
            }) => {
                let collision = match self.rekey.collision.take() {
                    Some(Collision::Child { ni, nr, spi_in }) => Some((ni, nr, spi_in)),
                    other => {
                        self.rekey.collision = other;
                        None
                    }
                };
                self.resolve_child(now, *new, &ni, &nr, old_spi_in, collision);
            }
            Some(OursDone::Ike(ours)) => self.resolve_ike(now, *ours, None),
            None => {}
        }
    }
}
