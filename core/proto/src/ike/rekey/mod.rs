//! Rekeying (RFC 7296 §1.3, §2.8, §2.8.1, §2.18): the client's rekey state and deadlines
//! (`state`), its CREATE_CHILD_SA exchanges as initiator and responder (`client`), the
//! exchanges' payloads and keys shared with our responder (`exchange`), the collision rule
//! (`collision`), replaced IKE SAs kept until deleted (`old_ike`), and the IKE_FOLLOWUP_KE
//! exchanges of rekeys with additional key exchanges (`followup`, the client's part in
//! `client_followup`).

mod client;
mod client_followup;
pub mod collision;
pub mod exchange;
pub mod followup;
pub mod old_ike;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Lifetimes;
use crate::ike::child::ChildSa;
use crate::ike::lifetime::SaLifetime;
use crate::rng::Rng;
use crate::wire::Payload;

use exchange::{ChildAccepted, ChildOffer, IkeAccepted, IkeOffer, NewIkeSa};
use followup::{Answers, Chain};
use old_ike::OldIkeSa;

/// Most CHILD SAs kept besides the current one (replaced, redundant after a collision).
pub const MAX_OTHER_CHILDREN: usize = 4;
/// Most replaced IKE SAs kept until deleted.
pub const MAX_OLD_IKE: usize = 3;
/// How long our own DELETE of a replaced IKE SA may take before it is dropped anyway.
pub const OUR_DELETE_WAIT: Duration = Duration::from_secs(300);
/// After TEMPORARY_FAILURE: retry after this, plus up to as much again at random.
pub const RETRY_TEMPORARY: Duration = Duration::from_secs(2);
/// After a refusal that will not go away by itself (NO_PROPOSAL_CHOSEN, a bad answer).
pub const RETRY_FAILED: Duration = Duration::from_secs(30);
/// INVALID_KE_PAYLOAD retries in one rekey.
pub const MAX_KE_RETRIES: u32 = 2;

/// Our rekey request in flight.
#[derive(Debug)]
pub(crate) enum Pending {
    Child(ChildOffer),
    Ike(IkeOffer),
}

impl Pending {
    /// The CREATE_CHILD_SA request's payloads.
    pub(crate) fn payloads(&self) -> Vec<Payload<'_>> {
        match self {
            Self::Child(offer) => offer.payloads(),
            Self::Ike(offer) => offer.payloads(),
        }
    }

    /// The IKE_FOLLOWUP_KE request's payloads, once the CREATE_CHILD_SA chose additional
    /// key exchanges.
    pub(crate) fn followup_payloads(&self) -> Vec<Payload<'_>> {
        let chain = match self {
            Self::Child(offer) => offer.chain.as_ref().map(|(_, c)| c),
            Self::Ike(offer) => offer.chain.as_ref().map(|(_, c)| c),
        };
        chain.map(Chain::payloads).unwrap_or_default()
    }
}

/// Where the additional key exchanges of our rekey stand: the answer accepted and the
/// IKE_FOLLOWUP_KE chain (in `ChildOffer::chain` / `IkeOffer::chain`).
pub(crate) type ChildChain = Option<(ChildAccepted, Chain)>;
pub(crate) type IkeChain = Option<(IkeAccepted, Chain)>;

/// Our rekey finished while the peer's rekey of the same SA (with additional key exchanges)
/// is still running: kept until that one ends, then the collision rule decides.
#[derive(Debug)]
pub(crate) enum OursDone {
    Child {
        new: Box<ChildSa>,
        ni: Vec<u8>,
        nr: Vec<u8>,
        old_spi_in: u32,
    },
    Ike(Box<NewIkeSa>),
}

/// The peer rekeyed the same SA while our request was in flight: what its exchange made.
#[derive(Debug)]
pub(crate) enum Collision {
    /// The CHILD SA we created answering the peer (nonces of its exchange).
    Child {
        ni: Vec<u8>,
        nr: Vec<u8>,
        spi_in: u32,
    },
    /// The IKE SA we created answering the peer.
    Ike { new: Box<NewIkeSa> },
}

/// The client's rekey state.
#[derive(Debug)]
pub struct RekeyState {
    pub(crate) lifetimes: Lifetimes,
    /// When to start the next CHILD / IKE rekey (the soft lifetime, a retry, or now).
    pub(crate) child_next: Option<Instant>,
    pub(crate) child_expire: Option<Instant>,
    pub(crate) ike_next: Option<Instant>,
    pub(crate) ike_expire: Option<Instant>,
    pub(crate) pending: Option<Pending>,
    pub(crate) collision: Option<Collision>,
    /// CHILD SAs alive besides the current one: replaced ones until deleted, redundant ones.
    pub(crate) others: Vec<ChildSa>,
    /// Our inbound SPIs of CHILD SAs we must delete, and the one whose DELETE is in flight.
    pub(crate) delete_queue: VecDeque<u32>,
    pub(crate) deleting_child: Option<u32>,
    pub(crate) old_ike: Vec<OldIkeSa>,
    pub(crate) ke_retries: u32,
    /// The server's rekeys with additional key exchanges we answer (IKE_FOLLOWUP_KE).
    pub(crate) answering: Answers,
    pub(crate) ours_done: Option<OursDone>,
}

impl RekeyState {
    pub fn new(lifetimes: Lifetimes) -> Self {
        Self {
            lifetimes,
            child_next: None,
            child_expire: None,
            ike_next: None,
            ike_expire: None,
            pending: None,
            collision: None,
            others: Vec::new(),
            delete_queue: VecDeque::new(),
            deleting_child: None,
            old_ike: Vec::new(),
            ke_retries: 0,
            answering: Answers::default(),
            ours_done: None,
        }
    }

    /// A new CHILD SA is current from `now`.
    pub(crate) fn child_started(&mut self, now: Instant, rng: &mut dyn Rng) {
        let l = &self.lifetimes;
        let life = SaLifetime::new(now, l.child_rekey, l.jitter, rng);
        self.child_next = Some(life.rekey_at);
        self.child_expire = Some(life.expire_at);
    }

    /// A new IKE SA is current from `now`.
    pub(crate) fn ike_started(&mut self, now: Instant, rng: &mut dyn Rng) {
        let l = &self.lifetimes;
        let life = SaLifetime::new(now, l.ike_rekey, l.jitter, rng);
        self.ike_next = Some(life.rekey_at);
        self.ike_expire = Some(life.expire_at);
    }

    /// The next instant rekeying needs the clock: an expiry, a replaced IKE SA's timer, and,
    /// when a request could go out (`busy` is false), the next rekey start or queued DELETE.
    pub fn deadline(&self, busy: bool) -> Option<Instant> {
        let can_start = !busy && !self.in_progress();
        let mut d = [
            self.child_expire,
            self.ike_expire,
            self.answering.deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(self.old_ike.iter().map(OldIkeSa::deadline))
        .min();
        if can_start {
            let starts = [self.child_next, self.ike_next].into_iter().flatten().min();
            d = match (d, starts) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        d
    }

    /// A rekey is under way: ours in flight or waiting for the peer's, or one we answer.
    pub(crate) fn in_progress(&self) -> bool {
        self.pending.is_some() || self.ours_done.is_some() || !self.answering.is_empty()
    }

    /// The CHILD SA with inbound SPI `spi_in` among the others.
    pub fn other(&self, spi_in: u32) -> Option<&ChildSa> {
        self.others.iter().find(|c| c.spi_in == spi_in)
    }
}

/// A retry delay of `base` plus up to `base` more at random.
pub(crate) fn retry_delay(base: Duration, rng: &mut dyn Rng) -> Duration {
    let ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    base + Duration::from_millis(rng.next_u64() % ms)
}
