//! Message IDs and reliability (RFC 7296 §2.1-2.3): our outstanding request (window size one),
//! its retransmission with exponential backoff and a bounded number of tries, and the cached
//! response to the peer's last request, resent when the peer retransmits it.

use std::time::{Duration, Instant};

use crate::config::Retransmit;

/// What our outstanding request is for, so its response goes to the right task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    IkeSaInit,
    IkeAuth,
    Informational,
    Delete,
    CreateChildSa,
    /// An empty INFORMATIONAL of ours: a liveness check (DPD).
    Dpd,
    /// A MOBIKE UPDATE_SA_ADDRESSES (RFC 4555), possibly probing several paths.
    UpdateSa,
    /// The DELETE of one CHILD SA (replaced by a rekey).
    DeleteChild,
    /// An IKE_INTERMEDIATE exchange (RFC 9242) with an additional key exchange.
    IkeIntermediate,
    /// An IKE_FOLLOWUP_KE exchange (RFC 9370) of a rekey with additional key exchanges.
    FollowupKe,
}

/// A request waiting for its response.
#[derive(Debug)]
struct Outstanding {
    message_id: u32,
    kind: RequestKind,
    datagrams: Vec<Vec<u8>>,
    sends: u32,
    deadline: Instant,
    /// The retransmission schedule of this request.
    schedule: Retransmit,
}

/// What the caller must do after a timeout.
#[derive(Debug, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Nothing was due.
    Nothing,
    /// Resend these datagrams.
    Retransmit(Vec<Vec<u8>>),
    /// Every try was used: the peer is gone.
    GaveUp(RequestKind),
}

/// How a received response relates to our outstanding request.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseMatch {
    /// It answers the outstanding request of this kind.
    Expected(RequestKind),
    /// A late or duplicate response: drop it.
    Unexpected,
}

/// How a received request relates to the peer's message IDs.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestMatch {
    /// The next request: process it.
    New,
    /// A retransmission of the last one: resend these cached datagrams.
    Retransmitted(Vec<Vec<u8>>),
    /// Out of window: drop it.
    Invalid,
}

/// The task manager's message-ID state for one IKE SA.
#[derive(Debug)]
pub struct TaskManager {
    retransmit: Retransmit,
    next_request_id: u32,
    outstanding: Option<Outstanding>,
    /// The message ID we expect for the peer's next request.
    peer_next_id: u32,
    last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// The transport delivers (TCP): a request is sent once and waits as long as its
    /// retransmissions would have taken in all.
    reliable: bool,
}

impl TaskManager {
    pub fn new(retransmit: Retransmit) -> Self {
        Self {
            retransmit,
            next_request_id: 0,
            outstanding: None,
            peer_next_id: 0,
            last_response: None,
            reliable: false,
        }
    }

    /// Whether the transport delivers by itself (TCP, RFC 9329 §6.3): requests are then not
    /// retransmitted.
    pub fn set_reliable(&mut self, reliable: bool) {
        self.reliable = reliable;
    }

    /// The first deadline of a request sent now on `schedule`, and its count of sends: the
    /// whole schedule at once on a reliable transport.
    fn first_send(&self, now: Instant, schedule: &Retransmit) -> (u32, Instant) {
        if self.reliable {
            let total = whole_schedule(schedule);
            (schedule.tries.max(1), now + total)
        } else {
            (1, now + timeout(schedule, 1))
        }
    }

    /// Whether a request of ours is in flight (the window is one).
    pub fn busy(&self) -> bool {
        self.outstanding.is_some()
    }

    /// The kind of the request in flight.
    pub fn outstanding_kind(&self) -> Option<RequestKind> {
        self.outstanding.as_ref().map(|o| o.kind)
    }

    /// The message ID our next request will carry.
    pub fn next_request_id(&self) -> u32 {
        self.next_request_id
    }

    /// Records a request just sent (its datagrams as sent, for retransmission).
    pub fn sent_request(&mut self, now: Instant, kind: RequestKind, datagrams: Vec<Vec<u8>>) {
        let schedule = self.retransmit;
        self.sent_request_with(now, kind, datagrams, schedule);
    }

    /// Records a request just sent that retransmits on its own `schedule` (liveness checks
    /// give up much sooner than the handshake).
    pub fn sent_request_with(
        &mut self,
        now: Instant,
        kind: RequestKind,
        datagrams: Vec<Vec<u8>>,
        schedule: Retransmit,
    ) {
        let message_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let (sends, deadline) = self.first_send(now, &schedule);
        self.outstanding = Some(Outstanding {
            message_id,
            kind,
            datagrams,
            sends,
            deadline,
            schedule,
        });
    }

    /// Replaces what the request in flight retransmits (same message ID, new content: a
    /// MOBIKE update probing another path), keeping its count of sends and its deadline.
    pub fn replace_datagrams(&mut self, datagrams: Vec<Vec<u8>>) {
        if let Some(o) = &mut self.outstanding {
            o.datagrams = datagrams;
        }
    }

    /// Starts the request in flight over (first send now) on a new `schedule`, and returns
    /// its datagrams to send at once (the path changed under it).
    pub fn restart(&mut self, now: Instant, schedule: Option<Retransmit>) -> Vec<Vec<u8>> {
        let Some(s) = schedule.or(self.outstanding.as_ref().map(|o| o.schedule)) else {
            return Vec::new();
        };
        let (sends, deadline) = self.first_send(now, &s);
        match &mut self.outstanding {
            Some(o) => {
                o.schedule = s;
                o.sends = sends;
                o.deadline = deadline;
                o.datagrams.clone()
            }
            None => Vec::new(),
        }
    }

    /// How many times the request in flight was sent so far.
    pub fn outstanding_sends(&self) -> u32 {
        self.outstanding.as_ref().map_or(0, |o| o.sends)
    }

    /// Replaces the datagrams of the request in flight with a new first attempt of the same
    /// message ID (IKE_SA_INIT retried with a cookie or another key exchange group).
    pub fn resend_as_new(&mut self, now: Instant, datagrams: Vec<Vec<u8>>) {
        let reliable = self.reliable;
        if let Some(o) = &mut self.outstanding {
            o.datagrams = datagrams;
            if reliable {
                let total = whole_schedule(&o.schedule);
                o.sends = o.schedule.tries.max(1);
                o.deadline = now + total;
            } else {
                o.sends = 1;
                o.deadline = now + o.schedule.initial;
            }
        }
    }

    /// Matches a response's message ID; a match ends the outstanding request.
    pub fn match_response(&mut self, message_id: u32) -> ResponseMatch {
        match &self.outstanding {
            Some(o) if o.message_id == message_id => {
                let kind = o.kind;
                self.outstanding = None;
                ResponseMatch::Expected(kind)
            }
            _ => ResponseMatch::Unexpected,
        }
    }

    /// Looks at the outstanding request's ID without ending it (IKE_SA_INIT retries, EAP
    /// rounds that keep one task going).
    pub fn outstanding_id(&self) -> Option<u32> {
        self.outstanding.as_ref().map(|o| o.message_id)
    }

    /// Matches a request's message ID against the peer's window.
    pub fn match_request(&mut self, message_id: u32) -> RequestMatch {
        if message_id == self.peer_next_id {
            return RequestMatch::New;
        }
        match &self.last_response {
            Some((id, d)) if *id == message_id => RequestMatch::Retransmitted(d.clone()),
            _ => RequestMatch::Invalid,
        }
    }

    /// Records our response to the peer's request `message_id` (cached for its retransmits).
    pub fn sent_response(&mut self, message_id: u32, datagrams: Vec<Vec<u8>>) {
        self.peer_next_id = message_id.wrapping_add(1);
        self.last_response = Some((message_id, datagrams));
    }

    /// The instant the outstanding request must be retransmitted.
    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.deadline)
    }

    /// Handles the retransmission timer.
    pub fn on_timeout(&mut self, now: Instant) -> TimeoutAction {
        let Some(o) = self.outstanding.as_mut() else {
            return TimeoutAction::Nothing;
        };
        if now < o.deadline {
            return TimeoutAction::Nothing;
        }
        if o.sends >= o.schedule.tries {
            let kind = o.kind;
            self.outstanding = None;
            return TimeoutAction::GaveUp(kind);
        }
        o.sends += 1;
        o.deadline = now + timeout(&o.schedule, o.sends);
        TimeoutAction::Retransmit(o.datagrams.clone())
    }

    /// Drops the outstanding request (the SA is going away).
    pub fn abandon(&mut self) {
        self.outstanding = None;
    }
}

/// How long all the sends of `r` take together (the wait of a request on a reliable transport).
fn whole_schedule(r: &Retransmit) -> Duration {
    (1..=r.tries.max(1))
        .map(|n| timeout(r, n))
        .sum::<Duration>()
}

/// Timeout for the n-th send (1-based) of `r`, growing by `factor` up to `max_timeout`.
fn timeout(r: &Retransmit, sends: u32) -> Duration {
    let exp = i32::try_from(sends.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = r.initial.as_secs_f64() * r.factor.powi(exp);
    Duration::from_secs_f64(secs.min(r.max_timeout.as_secs_f64()).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch() -> Instant {
        crate::ike::test_clock::epoch()
    }

    #[test]
    fn backoff_grows_and_gives_up() {
        let r = Retransmit {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max_timeout: Duration::from_secs(3),
            tries: 3,
        };
        let mut tm = TaskManager::new(r);
        let t0 = epoch();
        tm.sent_request(t0, RequestKind::IkeSaInit, vec![vec![1]]);
        assert_eq!(tm.deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(tm.on_timeout(t0), TimeoutAction::Nothing);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(tm.on_timeout(t1), TimeoutAction::Retransmit(vec![vec![1]]));
        assert_eq!(tm.deadline(), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(tm.on_timeout(t2), TimeoutAction::Retransmit(vec![vec![1]]));
        assert_eq!(
            tm.deadline(),
            Some(t2 + Duration::from_secs(3)),
            "capped at max_timeout"
        );
        let t3 = t2 + Duration::from_secs(3);
        assert_eq!(
            tm.on_timeout(t3),
            TimeoutAction::GaveUp(RequestKind::IkeSaInit)
        );
        assert!(!tm.busy());
    }

    #[test]
    fn a_request_can_carry_its_own_schedule_and_restart() {
        let mut tm = TaskManager::new(Retransmit::default());
        let fast = Retransmit {
            initial: Duration::from_secs(2),
            factor: 1.0,
            max_timeout: Duration::from_secs(2),
            tries: 2,
        };
        let t0 = epoch();
        tm.sent_request_with(t0, RequestKind::Dpd, vec![vec![1]], fast);
        assert_eq!(tm.deadline(), Some(t0 + Duration::from_secs(2)));
        tm.replace_datagrams(vec![vec![2]]);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(tm.on_timeout(t1), TimeoutAction::Retransmit(vec![vec![2]]));
        assert_eq!(tm.outstanding_sends(), 2);
        assert_eq!(tm.restart(t1, None), vec![vec![2]]);
        assert_eq!(tm.outstanding_sends(), 1);
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(tm.on_timeout(t2), TimeoutAction::Retransmit(vec![vec![2]]));
        assert_eq!(
            tm.on_timeout(t2 + Duration::from_secs(2)),
            TimeoutAction::GaveUp(RequestKind::Dpd)
        );
    }

    #[test]
    fn a_reliable_transport_sends_once_and_waits_the_whole_schedule() {
        let r = Retransmit {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max_timeout: Duration::from_secs(3),
            tries: 3,
        };
        let mut tm = TaskManager::new(r);
        tm.set_reliable(true);
        let t0 = epoch();
        tm.sent_request(t0, RequestKind::IkeSaInit, vec![vec![1]]);
        // 1 + 2 + 3 s: what the UDP retransmissions would have taken in all.
        let end = t0 + Duration::from_secs(6);
        assert_eq!(tm.deadline(), Some(end));
        assert_eq!(
            tm.on_timeout(end - Duration::from_millis(1)),
            TimeoutAction::Nothing
        );
        assert_eq!(
            tm.on_timeout(end),
            TimeoutAction::GaveUp(RequestKind::IkeSaInit)
        );
        // A retry with a cookie starts the whole wait over, still without retransmissions.
        tm.sent_request(t0, RequestKind::IkeSaInit, vec![vec![1]]);
        tm.resend_as_new(t0 + Duration::from_secs(1), vec![vec![2]]);
        assert_eq!(tm.deadline(), Some(t0 + Duration::from_secs(7)));
        assert_eq!(
            tm.on_timeout(t0 + Duration::from_secs(7)),
            TimeoutAction::GaveUp(RequestKind::IkeSaInit)
        );
    }

    #[test]
    fn responses_and_requests_match_message_ids() {
        let mut tm = TaskManager::new(Retransmit::default());
        tm.sent_request(epoch(), RequestKind::IkeSaInit, vec![]);
        assert_eq!(tm.match_response(5), ResponseMatch::Unexpected);
        assert_eq!(
            tm.match_response(0),
            ResponseMatch::Expected(RequestKind::IkeSaInit)
        );
        assert_eq!(
            tm.match_response(0),
            ResponseMatch::Unexpected,
            "a duplicate response is dropped"
        );
        assert_eq!(tm.next_request_id(), 1);

        assert_eq!(tm.match_request(0), RequestMatch::New);
        tm.sent_response(0, vec![vec![9]]);
        assert_eq!(
            tm.match_request(0),
            RequestMatch::Retransmitted(vec![vec![9]])
        );
        assert_eq!(tm.match_request(1), RequestMatch::New);
        assert_eq!(tm.match_request(7), RequestMatch::Invalid);
    }
}
