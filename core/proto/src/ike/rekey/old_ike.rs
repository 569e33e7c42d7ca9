//! An IKE SA replaced by a rekey, kept until it is deleted (RFC 7296 §2.18): by us with a
//! DELETE when we initiated the rekey that replaced it (or lost a collision with the SA we
//! made), or by the peer otherwise. Meanwhile it answers what still arrives on it: the
//! peer's DELETE, liveness checks, and any CREATE_CHILD_SA with TEMPORARY_FAILURE (§2.25.2).
//! Shared by the client and our responder.

use std::time::{Duration, Instant};

use log::debug;

use super::{MAX_OLD_IKE, OUR_DELETE_WAIT};
use crate::ike::keys::SaKeys;
use crate::ike::protect;
use crate::ike::task_manager::{
    RequestKind, RequestMatch, ResponseMatch, TaskManager, TimeoutAction,
};
use crate::rng::Rng;
use crate::wire::{flags, ExchangeType, Header, Message, NotifyType, Payload, ProtocolId};

/// How long an old IKE SA the peer should delete is kept waiting for its DELETE.
pub const PEER_DELETE_WAIT: Duration = Duration::from_secs(30);

/// A replaced IKE SA on its way out.
pub struct OldIkeSa {
    pub spi_i: u64,
    pub spi_r: u64,
    pub original_initiator: bool,
    keys: SaKeys,
    tm: TaskManager,
    fragment_size: Option<usize>,
    /// Dropped at this instant whatever happens.
    until: Instant,
}

/// What an old SA produced: datagrams to send, and whether it is gone now.
#[derive(Debug, Default)]
pub struct OldOutput {
    pub datagrams: Vec<Vec<u8>>,
    pub done: bool,
}

/// Adds `old` to the replaced IKE SAs kept, dropping the oldest beyond `MAX_OLD_IKE`.
pub(crate) fn keep(old_ike: &mut Vec<OldIkeSa>, old: OldIkeSa) {
    if old_ike.len() >= MAX_OLD_IKE {
        old_ike.remove(0);
    }
    old_ike.push(old);
}

impl std::fmt::Debug for OldIkeSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OldIkeSa")
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .finish_non_exhaustive()
    }
}

impl OldIkeSa {
    /// Keeps the SA `spi_i`/`spi_r` with its keys and message IDs until `now + linger`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spi_i: u64,
        spi_r: u64,
        original_initiator: bool,
        keys: SaKeys,
        tm: TaskManager,
        fragment_size: Option<usize>,
        now: Instant,
        linger: Duration,
    ) -> Self {
        Self {
            spi_i,
            spi_r,
            original_initiator,
            keys,
            tm,
            fragment_size,
            until: now + linger,
        }
    }

    /// Keeps a replaced (or redundant) IKE SA until it is deleted: by us at once when
    /// `we_delete` (the datagrams of our DELETE request come back with it, to send), else by
    /// the peer, waited for `PEER_DELETE_WAIT`.
    #[allow(clippy::too_many_arguments)]
    pub fn retire(
        spi_i: u64,
        spi_r: u64,
        original_initiator: bool,
        keys: SaKeys,
        tm: TaskManager,
        fragment_size: Option<usize>,
        now: Instant,
        we_delete: bool,
        rng: &mut dyn Rng,
    ) -> (Self, Vec<Vec<u8>>) {
        let wait = if we_delete {
            OUR_DELETE_WAIT
        } else {
            PEER_DELETE_WAIT
        };
        let mut old = Self::new(
            spi_i,
            spi_r,
            original_initiator,
            keys,
            tm,
            fragment_size,
            now,
            wait,
        );
        let datagrams = if we_delete {
            old.start_delete(now, rng)
        } else {
            Vec::new()
        };
        (old, datagrams)
    }

    /// Whether a message with these header SPIs belongs to this SA.
    pub fn matches(&self, h: &Header) -> bool {
        h.spi_i == self.spi_i && h.spi_r == self.spi_r
    }

    fn header(&self, exchange: ExchangeType, response: bool, id: u32) -> Header {
        let f = if self.original_initiator {
            flags::INITIATOR
        } else {
            0
        } | if response { flags::RESPONSE } else { 0 };
        Header::new(self.spi_i, self.spi_r, exchange, f, id)
    }

    fn seal(&self, rng: &mut dyn Rng, h: &Header, p: &[Payload<'_>]) -> Vec<Vec<u8>> {
        protect::seal(&self.keys.outbound, rng, h, p, self.fragment_size)
    }

    /// Sends our DELETE of this SA (any request still in flight on it is abandoned).
    pub fn start_delete(&mut self, now: Instant, rng: &mut dyn Rng) -> Vec<Vec<u8>> {
        self.tm.abandon();
        let d = [Payload::delete_ike()];
        let h = self.header(
            ExchangeType::INFORMATIONAL,
            false,
            self.tm.next_request_id(),
        );
        let datagrams = self.seal(rng, &h, &d);
        self.tm
            .sent_request(now, RequestKind::Delete, datagrams.clone());
        datagrams
    }

    /// A message for this SA arrived.
    pub fn handle(&mut self, msg: &Message<'_>, rng: &mut dyn Rng) -> OldOutput {
        let mut out = OldOutput::default();
        let h = msg.header;
        // The peer's messages carry the I flag exactly when we are not the original initiator.
        if h.is_initiator() == self.original_initiator || msg.fragment().is_some() {
            return out;
        }
        if h.is_response() {
            if self.tm.outstanding_id() != Some(h.message_id)
                || protect::open(&self.keys.inbound, msg).is_err()
            {
                return out;
            }
            if let ResponseMatch::Expected(RequestKind::Delete) =
                self.tm.match_response(h.message_id)
            {
                debug!("old IKE SA {:016x}_{:016x} deleted", self.spi_i, self.spi_r);
                out.done = true;
            }
            return out;
        }
        match self.tm.match_request(h.message_id) {
            RequestMatch::New => {}
            RequestMatch::Retransmitted(d) => {
                out.datagrams = d;
                return out;
            }
            RequestMatch::Invalid => return out,
        }
        let Ok(opened) = protect::open(&self.keys.inbound, msg) else {
            return out;
        };
        let Ok(payloads) = opened.payloads() else {
            return out;
        };
        let reply: Vec<Payload<'_>> = match h.exchange {
            ExchangeType::INFORMATIONAL => {
                out.done = payloads
                    .iter()
                    .any(|p| matches!(p, Payload::Delete(d) if d.protocol == ProtocolId::IKE));
                Vec::new()
            }
            ExchangeType::CREATE_CHILD_SA => {
                vec![Payload::notify(NotifyType::TEMPORARY_FAILURE, &[])]
            }
            _ => return out,
        };
        let rh = self.header(h.exchange, true, h.message_id);
        let d = self.seal(rng, &rh, &reply);
        self.tm.sent_response(h.message_id, d.clone());
        out.datagrams = d;
        out
    }

    /// Retransmits our DELETE, or gives up; drops the SA once its time is over.
    pub fn on_timeout(&mut self, now: Instant) -> OldOutput {
        let mut out = OldOutput::default();
        match self.tm.on_timeout(now) {
            TimeoutAction::Nothing => {}
            TimeoutAction::Retransmit(d) => out.datagrams = d,
            TimeoutAction::GaveUp(_) => out.done = true,
        }
        if now >= self.until {
            out.done = true;
        }
        out
    }

    pub fn deadline(&self) -> Instant {
        match self.tm.deadline() {
            Some(d) => d.min(self.until),
            None => self.until,
        }
    }
}
