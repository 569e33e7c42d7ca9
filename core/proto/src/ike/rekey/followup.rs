//! IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): the additional key exchanges that follow a
//! CREATE_CHILD_SA whose chosen proposal has ADDITIONAL_KEY_EXCHANGE transforms, both ends.
//! The exchange's initiator runs one IKE_FOLLOWUP_KE per chosen method in slot order
//! ([`Chain`]), each request carrying the link data the responder handed out last in
//! N(ADDITIONAL_KEY_EXCHANGE). The responder keeps the half-made SA under that link until
//! the last exchange ([`Answers`]: a table of at most [`MAX_ANSWERS`] entries, each dropped
//! after [`FOLLOWUP_WAIT`] without its next request; an unknown link is answered with
//! STATE_NOT_FOUND, a request without link or with the wrong KE with INVALID_SYNTAX). The
//! shared secrets SK(1)..SK(n) are collected in order (zeroized `Secret`s) for the keys of
//! RFC 9370 §2.2.4; the SA exists only once every exchange is done.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::crypto::dh::KeyExchange;
use crate::crypto::proposal::{Selected, MAX_ADDITIONAL};
use crate::crypto::{kex, CryptoError, Secret};
use crate::rng::Rng;
use crate::wire::{DhGroup, NotifyType, Payload};

use super::exchange::{ChildDraft, IkeDraft, Outcome, Refusal};

/// How long the responder keeps a half-finished exchange for its next IKE_FOLLOWUP_KE
/// request (RFC 9370 suggests 5 to 20 seconds).
pub const FOLLOWUP_WAIT: Duration = Duration::from_secs(20);
/// Half-finished exchanges one IKE SA answers at once (a rekey of each side may collide).
pub const MAX_ANSWERS: usize = 2;
/// Longest link data accepted from the peer.
pub const MAX_LINK: usize = 64;
/// Length of our own link data.
pub const LINK_LEN: usize = 16;

/// The methods still to run: the chosen additional key exchanges in slot order.
fn methods(selected: &Selected) -> VecDeque<DhGroup> {
    selected.additional_kes().map(|(_, g)| g).collect()
}

/// The KE payload of `group` among `p`.
fn ke_of<'a>(p: &'a [Payload<'a>], group: DhGroup) -> Option<&'a [u8]> {
    p.iter().find_map(|pl| match pl {
        Payload::Ke { group: g, data } if *g == group => Some(*data),
        _ => None,
    })
}

/// The data of N(ADDITIONAL_KEY_EXCHANGE) among `p`.
pub fn link_of<'a>(p: &'a [Payload<'a>]) -> Option<&'a [u8]> {
    p.iter().find_map(|pl| match pl {
        Payload::Notify(n) if n.kind == NotifyType::ADDITIONAL_KEY_EXCHANGE => Some(n.data),
        _ => None,
    })
}

/// The initiator's side of the IKE_FOLLOWUP_KE exchanges after one CREATE_CHILD_SA.
pub struct Chain {
    methods: VecDeque<DhGroup>,
    ke: Option<Box<dyn KeyExchange>>,
    link: Vec<u8>,
    /// SK(1).. so far, in order.
    shares: Vec<Secret>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("methods", &self.methods)
            .field("done", &self.shares.len())
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// The chain for the answer that chose `selected` with link data `link`, and its first
    /// request's key exchange. None when the answer chose no additional key exchange.
    pub fn start(
        selected: &Selected,
        link: Option<&[u8]>,
        rng: &mut dyn Rng,
    ) -> Result<Option<Self>, Outcome> {
        let methods = methods(selected);
        if methods.is_empty() {
            return Ok(None);
        }
        let link = link
            .filter(|l| !l.is_empty() && l.len() <= MAX_LINK)
            .ok_or_else(|| {
                Outcome::Invalid("additional key exchanges chosen without a usable link".into())
            })?;
        let mut c = Self {
            methods,
            ke: None,
            link: link.to_vec(),
            shares: Vec::with_capacity(MAX_ADDITIONAL),
        };
        c.next_ke(rng)
            .map_err(|e| Outcome::Invalid(format!("additional key exchange: {e}")))?;
        Ok(Some(c))
    }

    fn next_ke(&mut self, rng: &mut dyn Rng) -> Result<(), CryptoError> {
        self.ke = match self.methods.front() {
            Some(g) => Some(kex::initiate(*g, rng)?),
            None => None,
        };
        Ok(())
    }

    /// The method of the request in flight.
    pub fn method(&self) -> Option<DhGroup> {
        self.methods.front().copied()
    }

    /// Additional key exchanges completed so far.
    pub fn done(&self) -> usize {
        self.shares.len()
    }

    /// The request's payloads: KEi(n) and N(ADDITIONAL_KEY_EXCHANGE) with the last link.
    pub fn payloads(&self) -> Vec<Payload<'_>> {
        let mut p = Vec::with_capacity(2);
        if let Some(ke) = &self.ke {
            p.push(Payload::Ke {
                group: ke.group(),
                data: ke.public_key(),
            });
        }
        p.push(Payload::notify(
            NotifyType::ADDITIONAL_KEY_EXCHANGE,
            &self.link,
        ));
        p
    }

    /// The response to our request: its KE gives the next shared secret. Returns the
    /// secrets SK(1)..SK(n) when that was the last exchange, None when another one follows
    /// (its key exchange is ready for `payloads`).
    pub fn on_response(
        &mut self,
        p: &[Payload<'_>],
        rng: &mut dyn Rng,
    ) -> Result<Option<Vec<Secret>>, Outcome> {
        for pl in p {
            if let Payload::Notify(n) = pl {
                if n.kind.is_error() {
                    return Err(Outcome::Refused(n.kind, n.data.to_vec()));
                }
            }
        }
        let bad = |s: String| Outcome::Invalid(s);
        let (Some(group), Some(ke)) = (self.methods.front().copied(), self.ke.take()) else {
            return Err(bad("IKE_FOLLOWUP_KE response with no exchange left".into()));
        };
        let data = ke_of(p, group)
            .ok_or_else(|| bad(format!("IKE_FOLLOWUP_KE without a KE of {group}")))?;
        let secret = ke
            .shared_secret(data)
            .map_err(|e| bad(format!("additional key exchange {group}: {e}")))?;
        self.shares.push(secret);
        self.methods.pop_front();
        if self.methods.is_empty() {
            return Ok(Some(std::mem::take(&mut self.shares)));
        }
        let link = link_of(p)
            .filter(|l| !l.is_empty() && l.len() <= MAX_LINK)
            .ok_or_else(|| bad("IKE_FOLLOWUP_KE response without the next link".into()))?;
        self.link = link.to_vec();
        self.next_ke(rng)
            .map_err(|e| bad(format!("additional key exchange: {e}")))?;
        Ok(None)
    }
}

/// The SA a half-finished exchange we answer will make.
#[derive(Debug)]
pub enum Making {
    Child(ChildDraft),
    Ike(IkeDraft),
}

impl Making {
    /// Its CREATE_CHILD_SA response's payloads, carrying `link` for the IKE_FOLLOWUP_KE
    /// exchanges to come.
    pub fn payloads<'a>(&'a self, link: &'a [u8]) -> Vec<Payload<'a>> {
        match self {
            Self::Child(d) => d.payloads(Some(link)),
            Self::Ike(d) => d.payloads(Some(link)),
        }
    }

    /// The nonces of its CREATE_CHILD_SA (the collision rule compares them).
    pub fn nonces(&self) -> (&[u8], &[u8]) {
        match self {
            Self::Child(d) => (&d.ni, &d.nr),
            Self::Ike(d) => (&d.ni, &d.nr),
        }
    }

    fn selected(&self) -> &Selected {
        match self {
            Self::Child(d) => &d.selected,
            Self::Ike(d) => &d.selected,
        }
    }
}

/// One exchange we answer, waiting for its next IKE_FOLLOWUP_KE request.
#[derive(Debug)]
struct Answering {
    link: [u8; LINK_LEN],
    methods: VecDeque<DhGroup>,
    shares: Vec<Secret>,
    deadline: Instant,
    making: Making,
}

/// What to answer an IKE_FOLLOWUP_KE request with.
#[derive(Debug)]
pub enum Reply {
    /// An error notify (the exchange, if known, is dropped).
    Refuse(Refusal),
    /// KEr(n) and the link of the next request.
    More {
        ke: (DhGroup, Vec<u8>),
        link: [u8; LINK_LEN],
    },
    /// KEr(n), the last one: the SA can be made with every secret.
    Done {
        ke: (DhGroup, Vec<u8>),
        making: Box<Making>,
        shares: Vec<Secret>,
    },
}

/// The exchanges one IKE SA answers and has not finished (capped, expiring).
#[derive(Debug, Default)]
pub struct Answers {
    entries: Vec<Answering>,
}

fn fresh_link(rng: &mut dyn Rng) -> [u8; LINK_LEN] {
    let mut l = [0u8; LINK_LEN];
    rng.fill(&mut l);
    l
}

impl Answers {
    /// Whether another exchange fits (after dropping overdue ones); when not, the
    /// CREATE_CHILD_SA is answered with TEMPORARY_FAILURE.
    pub fn has_room(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.entries.len() < MAX_ANSWERS
    }

    /// A new link for a CREATE_CHILD_SA response.
    pub fn new_link(rng: &mut dyn Rng) -> [u8; LINK_LEN] {
        fresh_link(rng)
    }

    /// Keeps `making` (whose proposal has additional key exchanges) under `link` for its
    /// first IKE_FOLLOWUP_KE request (the oldest exchange makes room if needed).
    pub fn insert(&mut self, now: Instant, link: [u8; LINK_LEN], making: Making) {
        if self.entries.len() >= MAX_ANSWERS {
            self.entries.remove(0);
        }
        self.entries.push(Answering {
            link,
            methods: methods(making.selected()),
            shares: Vec::with_capacity(MAX_ADDITIONAL),
            deadline: now + FOLLOWUP_WAIT,
            making,
        });
    }

    /// `has_room`, `new_link` and `insert` in one: the link, or None when full.
    pub fn open(
        &mut self,
        now: Instant,
        making: Making,
        rng: &mut dyn Rng,
    ) -> Option<[u8; LINK_LEN]> {
        if !self.has_room(now) {
            return None;
        }
        let link = fresh_link(rng);
        self.insert(now, link, making);
        Some(link)
    }

    /// Drops the exchanges whose next request is overdue; returns what they would have made.
    pub fn expire(&mut self, now: Instant) -> Vec<Making> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].deadline <= now {
                gone.push(self.entries.remove(i).making);
            } else {
                i += 1;
            }
        }
        gone
    }

    /// The earliest instant an exchange expires.
    pub fn deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.deadline).min()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the exchanges in progress will make.
    pub fn making(&self) -> impl Iterator<Item = &Making> {
        self.entries.iter().map(|e| &e.making)
    }

    /// Forgets every exchange (the IKE SA they belong to is replaced or gone).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Answers an IKE_FOLLOWUP_KE request.
    pub fn answer(&mut self, now: Instant, p: &[Payload<'_>], rng: &mut dyn Rng) -> Reply {
        self.expire(now);
        let Some(link) = link_of(p) else {
            return Reply::Refuse(Refusal::new(NotifyType::INVALID_SYNTAX));
        };
        let Some(i) = self
            .entries
            .iter()
            .position(|e| crate::crypto::ct_eq(&e.link, link))
        else {
            return Reply::Refuse(Refusal::new(NotifyType::STATE_NOT_FOUND));
        };
        let Some(group) = self.entries[i].methods.front().copied() else {
            self.entries.remove(i);
            return Reply::Refuse(Refusal::new(NotifyType::STATE_NOT_FOUND));
        };
        let answer = ke_of(p, group).map(|data| kex::respond(group, data, rng));
        let Some(Ok((ours, secret))) = answer else {
            // A missing or wrong KE ends the exchange (RFC 9370: the SA is not created).
            self.entries.remove(i);
            return Reply::Refuse(Refusal::new(NotifyType::INVALID_SYNTAX));
        };
        let e = &mut self.entries[i];
        e.methods.pop_front();
        e.shares.push(secret);
        if e.methods.is_empty() {
            let e = self.entries.remove(i);
            return Reply::Done {
                ke: (group, ours),
                making: Box::new(e.making),
                shares: e.shares,
            };
        }
        e.link = fresh_link(rng);
        e.deadline = now + FOLLOWUP_WAIT;
        Reply::More {
            ke: (group, ours),
            link: e.link,
        }
    }
}

/// The payloads of a reply that carries a KE: KEr(n) and, unless it is the last,
/// N(ADDITIONAL_KEY_EXCHANGE) with the next link.
pub fn reply_payloads<'a>(ke: &'a (DhGroup, Vec<u8>), link: Option<&'a [u8]>) -> Vec<Payload<'a>> {
    let mut p = vec![Payload::Ke {
        group: ke.0,
        data: &ke.1,
    }];
    if let Some(l) = link {
        p.push(Payload::notify(NotifyType::ADDITIONAL_KEY_EXCHANGE, l));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::proposal::{choose, ProposalSpec};
    use crate::ike::rekey::exchange::{draft_ike, CreateChild};
    use crate::ike::test_clock::epoch;
    use crate::rng::SeededRng;

    /// A drafted IKE rekey answer for `proposal` (from a request made of the same).
    fn draft(proposal: &str, rng: &mut SeededRng) -> IkeDraft {
        let spec = ProposalSpec::parse_ike(proposal, &[]).unwrap();
        let offer = spec.to_wire(1, &7u64.to_be_bytes());
        let (sel, _, _) =
            choose(std::slice::from_ref(&spec), std::slice::from_ref(&offer)).unwrap();
        let ke = kex::initiate(sel.dh.unwrap(), rng).unwrap();
        let sa = [offer];
        let ni = [3u8; 32];
        let r = CreateChild {
            sa: Some(&sa),
            nonce: Some(&ni),
            ke: Some((ke.group(), ke.public_key())),
            ..Default::default()
        };
        draft_ike(std::slice::from_ref(&spec), &r, rng).unwrap()
    }

    const TWO: &str = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024";

    #[test]
    fn both_sides_agree_on_every_secret_in_order() {
        let mut rng = SeededRng::new(1);
        let now = epoch();
        let d = draft(TWO, &mut rng);
        let selected = d.selected;
        let mut answers = Answers::default();
        let link = answers.open(now, Making::Ike(d), &mut rng).unwrap();
        let mut chain = Chain::start(&selected, Some(&link), &mut rng)
            .unwrap()
            .unwrap();
        assert_eq!(chain.method(), Some(DhGroup::ML_KEM_768));
        // First exchange: more to come, with a new link.
        let reply = answers.answer(now, &chain.payloads(), &mut rng);
        let Reply::More { ke, link: link2 } = reply else {
            panic!("{reply:?}")
        };
        assert_ne!(link2, link);
        assert!(chain
            .on_response(&reply_payloads(&ke, Some(&link2)), &mut rng)
            .unwrap()
            .is_none());
        assert_eq!(chain.method(), Some(DhGroup::ML_KEM_1024));
        // The old link is no longer known.
        let mut stale = chain.payloads();
        stale.pop();
        stale.push(Payload::notify(NotifyType::ADDITIONAL_KEY_EXCHANGE, &link));
        assert!(matches!(
            answers.answer(now, &stale, &mut rng),
            Reply::Refuse(r) if r.kind == NotifyType::STATE_NOT_FOUND
        ));
        // Second and last.
        let reply = answers.answer(now, &chain.payloads(), &mut rng);
        let Reply::Done { ke, shares, .. } = reply else {
            panic!("{reply:?}")
        };
        let ours = chain
            .on_response(&reply_payloads(&ke, None), &mut rng)
            .unwrap()
            .unwrap();
        assert_eq!(ours.len(), 2);
        assert_eq!(ours, shares);
        assert_ne!(ours[0], ours[1]);
        assert_eq!(ours[0].len(), 32);
        assert!(answers.is_empty());
    }

    #[test]
    fn unknown_links_missing_kes_and_timeouts() {
        let mut rng = SeededRng::new(2);
        let now = epoch();
        let d = draft(TWO, &mut rng);
        let selected = d.selected;
        let mut answers = Answers::default();
        let link = answers.open(now, Making::Ike(d), &mut rng).unwrap();
        let chain = Chain::start(&selected, Some(&link), &mut rng)
            .unwrap()
            .unwrap();
        let refused = |r: Reply, kind: NotifyType| matches!(r, Reply::Refuse(x) if x.kind == kind);
        // No link at all: INVALID_SYNTAX; a link we never gave: STATE_NOT_FOUND.
        let no_link = [chain.payloads().remove(0)];
        assert!(refused(
            answers.answer(now, &no_link, &mut rng),
            NotifyType::INVALID_SYNTAX
        ));
        let other = [Payload::notify(
            NotifyType::ADDITIONAL_KEY_EXCHANGE,
            &[9; 16],
        )];
        assert!(refused(
            answers.answer(now, &other, &mut rng),
            NotifyType::STATE_NOT_FOUND
        ));
        assert!(
            !answers.is_empty(),
            "a stranger's request leaves ours alone"
        );
        // The right link but no KE: INVALID_SYNTAX, and the exchange is gone.
        let only_link = [Payload::notify(NotifyType::ADDITIONAL_KEY_EXCHANGE, &link)];
        assert!(refused(
            answers.answer(now, &only_link, &mut rng),
            NotifyType::INVALID_SYNTAX
        ));
        assert!(answers.is_empty());
        // Overdue: dropped, and its request then finds no state.
        let d = draft(TWO, &mut rng);
        let link = answers.open(now, Making::Ike(d), &mut rng).unwrap();
        assert_eq!(answers.deadline(), Some(now + FOLLOWUP_WAIT));
        let chain = Chain::start(&selected, Some(&link), &mut rng)
            .unwrap()
            .unwrap();
        assert!(refused(
            answers.answer(now + FOLLOWUP_WAIT, &chain.payloads(), &mut rng),
            NotifyType::STATE_NOT_FOUND
        ));
        // The table is capped.
        for _ in 0..MAX_ANSWERS {
            let d = draft(TWO, &mut rng);
            assert!(answers.open(now, Making::Ike(d), &mut rng).is_some());
        }
        let d = draft(TWO, &mut rng);
        assert!(answers.open(now, Making::Ike(d), &mut rng).is_none());
        assert_eq!(answers.expire(now + FOLLOWUP_WAIT).len(), MAX_ANSWERS);
    }

    #[test]
    fn the_initiator_refuses_bad_answers() {
        let mut rng = SeededRng::new(3);
        let d = draft(TWO, &mut rng);
        // Chosen additional exchanges need a link; none chosen needs no chain.
        assert!(Chain::start(&d.selected, None, &mut rng).is_err());
        assert!(Chain::start(&d.selected, Some(&[0u8; MAX_LINK + 1]), &mut rng).is_err());
        let classical = draft("aes256gcm16-prfsha384-x25519", &mut rng);
        assert!(Chain::start(&classical.selected, None, &mut rng)
            .unwrap()
            .is_none());
        let mut chain = Chain::start(&d.selected, Some(&[1; 8]), &mut rng)
            .unwrap()
            .unwrap();
        // STATE_NOT_FOUND from the responder aborts it.
        let nf = [Payload::notify(NotifyType::STATE_NOT_FOUND, &[])];
        assert_eq!(
            chain.on_response(&nf, &mut rng).unwrap_err(),
            Outcome::Refused(NotifyType::STATE_NOT_FOUND, Vec::new())
        );
        // A KE of the wrong method is refused.
        let mut chain = Chain::start(&d.selected, Some(&[1; 8]), &mut rng)
            .unwrap()
            .unwrap();
        let wrong = (DhGroup::ML_KEM_1024, vec![0u8; 1568]);
        assert!(matches!(
            chain.on_response(&reply_payloads(&wrong, Some(&[2; 8])), &mut rng),
            Err(Outcome::Invalid(_))
        ));
    }
}
