//! Liveness of an established IKE SA's path: dead peer detection (an empty INFORMATIONAL when
//! nothing came in for `config.dpd`, or at once when our ESP goes unanswered for
//! `config.silence`), NAT keepalives (RFC 3948) while a NAT is in front of us, detection of a
//! device that slept (a timer that fires far too late), and the unauthenticated
//! INVALID_IKE_SPI a restarted server answers with (RFC 7296 §2.21.4).
//!
//! All of it runs on ONE deadline computed from a few stored instants: the data path only
//! stores `now` per packet (`note_inbound` / `note_outbound`), nothing is allocated. Behind a
//! NAT a due DPD waits for the next keepalive tick and goes out instead of that keepalive, so
//! an idle session wakes once per keepalive interval (once per DPD interval without a NAT).
//!
//! Bounds: an unanswered check ends the IKE SA after `config.liveness_retransmit` runs out
//! (22 s by default) with `DisconnectReason::Timeout`. Behind a NAT without MOBIKE, a check
//! that was answered while ESP stays silent for another `config.silence` ends it with
//! `DisconnectReason::PathLost` (the server still sends to a stale mapping; a new connection
//! fixes it). Elsewhere an answered check proves the path, and silence is checked again only
//! after a DPD interval.

use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::ike::initiator::{Initiator, Phase};
use crate::ike::task_manager::RequestKind;
use crate::session::DisconnectReason;
use crate::wire::{ExchangeType, Message, NotifyType, Payload};

/// A timer that fires this much later than its deadline means the device slept (the session
/// clock counts time asleep): the path is checked at once.
pub const SLEEP_SLACK: Duration = Duration::from_secs(10);

/// The instants liveness decides on, and what it has to send.
#[derive(Debug, Default)]
pub struct Liveness {
    /// Last authentic datagram from the server (IKE or ESP).
    last_in: Option<Instant>,
    /// Last datagram we sent (IKE, ESP or keepalive).
    last_out: Option<Instant>,
    /// First ESP packet out since the last ESP packet in.
    data_silent_since: Option<Instant>,
    /// A check of the path (after silence or sleep) was answered at this instant; ESP from
    /// the server clears it.
    check_answered: Option<Instant>,
    /// The request in flight is such a check.
    pub(super) checking: bool,
    keepalive_due: bool,
    /// The address the message being handled came from.
    pub(super) from: Option<std::net::SocketAddr>,
    /// What liveness sent so far.
    pub stats: LivenessStats,
}

/// Counters of liveness traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LivenessStats {
    pub keepalives: u64,
    pub dpds: u64,
    /// Checks made at once: ESP unanswered, or the device woke up.
    pub checks: u64,
    pub wakes: u64,
}

/// When each liveness action is due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Due {
    keepalive: Option<Instant>,
    dpd: Option<Instant>,
    /// How long a due DPD may wait for a keepalive tick (zero without a NAT).
    dpd_slack: Duration,
    silence: Option<Instant>,
    lost: Option<Instant>,
}

impl Due {
    fn earliest(&self) -> Option<Instant> {
        let dpd = self.dpd.map(|t| t + self.dpd_slack);
        [self.keepalive, dpd, self.silence, self.lost]
            .into_iter()
            .flatten()
            .min()
    }
}

fn after(t: Option<Instant>, d: Duration) -> Option<Instant> {
    if d.is_zero() {
        return None;
    }
    t.map(|t| t + d)
}

impl Liveness {
    /// Something authentic came from the server.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_in = Some(now);
    }

    /// We sent something.
    pub(super) fn sent(&mut self, now: Instant) {
        self.last_out = Some(now);
    }

    /// The path was checked (a DPD or an update answered).
    fn answered(&mut self, now: Instant) {
        if std::mem::take(&mut self.checking) {
            self.check_answered = Some(now);
            self.data_silent_since = None;
        }
    }
}

impl Initiator {
    /// An authentic ESP packet arrived (the session's data path, once per packet).
    pub fn note_inbound(&mut self, now: Instant) {
        let l = &mut self.live;
        l.last_in = Some(now);
        l.data_silent_since = None;
        l.check_answered = None;
    }

    /// An ESP packet went out (the session's data path, once per packet).
    pub fn note_outbound(&mut self, now: Instant) {
        let l = &mut self.live;
        l.last_out = Some(now);
        if l.data_silent_since.is_none() {
            l.data_silent_since = Some(now);
        }
    }

    /// Whether a NAT keepalive (one 0xFF byte, no marker) must be sent now.
    pub fn poll_keepalive(&mut self) -> bool {
        std::mem::take(&mut self.live.keepalive_due)
    }

    /// What liveness sent so far.
    pub fn liveness_stats(&self) -> LivenessStats {
        self.live.stats
    }

    /// A NAT sits between us and the server (its NATD_DESTINATION hash does not match our
    /// real address): keepalives keep the mapping open.
    pub fn behind_nat(&self) -> bool {
        self.peer.nat.local_behind_nat
    }

    fn liveness_active(&self) -> bool {
        self.phase == Phase::Established && !self.mobike.offline
    }

    /// No network: everything waits, except our DELETE (closing must end).
    pub(super) fn holding(&self) -> bool {
        self.mobike.offline && self.phase != Phase::Deleting
    }

    fn due(&self) -> Due {
        if !self.liveness_active() {
            return Due::default();
        }
        let cfg = &self.params.config;
        let l = &self.live;
        let keepalive = if self.behind_nat() && !self.over_tcp() {
            after(l.last_out, cfg.keepalive)
        } else {
            None
        };
        if self.tm.busy() {
            // The request in flight is itself a check: its retransmissions decide.
            return Due {
                keepalive,
                ..Due::default()
            };
        }
        let dpd = cfg.dpd.and_then(|d| after(l.last_in, d));
        let (mut silence, mut lost) = (None, None);
        if let Some(s) = l.data_silent_since {
            // Only behind a NAT without MOBIKE can an answered check leave ESP on a stale
            // mapping; elsewhere silence after an answer is the traffic's own business (a
            // black hole inside the tunnel), checked again only after a while.
            let stale_mapping_possible = self.behind_nat() && !self.mobike_active();
            match l.check_answered {
                Some(a) if stale_mapping_possible && s <= a + cfg.silence => {
                    lost = after(Some(s), cfg.silence)
                }
                Some(a) => {
                    let backoff = cfg.dpd.unwrap_or(Duration::from_secs(30)).max(cfg.silence);
                    silence = after(Some(s), cfg.silence).map(|t| t.max(a + backoff));
                }
                None => silence = after(Some(s), cfg.silence),
            }
        }
        Due {
            keepalive,
            dpd,
            dpd_slack: keepalive.map_or(Duration::ZERO, |_| cfg.keepalive),
            silence,
            lost,
        }
    }

    /// The next instant liveness needs `handle_timeout` (None: nothing is due).
    pub(super) fn liveness_deadline(&self) -> Option<Instant> {
        self.due().earliest()
    }

    /// Liveness's part of `handle_timeout`; `deadline` is what `liveness_deadline` said
    /// before the timer fired (a timer far too late means the device slept).
    pub(super) fn liveness_timeout(&mut self, now: Instant, deadline: Option<Instant>) {
        if !self.liveness_active() {
            return;
        }
        let due = self.due();
        let reached = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        if deadline.is_some_and(|d| now >= d + SLEEP_SLACK) && !self.tm.busy() {
            self.live.stats.wakes += 1;
            info!(
                "timer {:?} late: the device slept; checking the path",
                deadline.map(|d| now - d)
            );
            return self.check_path(now, self.behind_nat());
        }
        if reached(due.lost) {
            warn!("the server answers IKE but ESP stays silent: path lost");
            return self.finish(DisconnectReason::PathLost);
        }
        if reached(due.silence) {
            info!(
                "ESP unanswered for {:?}: checking the path",
                self.params.config.silence
            );
            return self.check_path(now, true);
        }
        // Behind a NAT, a due DPD goes out at the next keepalive tick, instead of the
        // keepalive: an idle session wakes once per keepalive interval.
        let dpd_now = due.dpd.is_some_and(|t| {
            now >= t
                && (due.keepalive.is_none() || reached(due.keepalive) || now >= t + due.dpd_slack)
        });
        if dpd_now {
            return self.send_dpd(now, false);
        }
        if reached(due.keepalive) {
            debug!("NAT keepalive");
            self.live.keepalive_due = true;
            self.live.stats.keepalives += 1;
            self.live.sent(now);
        }
    }

    /// Checks the path at once: a MOBIKE update (which also tells the server our current NAT
    /// mapping) when `update` and MOBIKE is on, else a DPD.
    pub(super) fn check_path(&mut self, now: Instant, update: bool) {
        self.live.stats.checks += 1;
        if update && self.mobike_active() {
            self.live.checking = true;
            self.refresh_path(now);
        } else {
            self.send_dpd(now, true);
        }
    }

    /// Sends an empty INFORMATIONAL request (RFC 7296 §1.4) on the liveness schedule.
    fn send_dpd(&mut self, now: Instant, check: bool) {
        if self.tm.busy() {
            return;
        }
        debug!("DPD (check: {check})");
        self.live.stats.dpds += 1;
        self.live.checking = check;
        let schedule = if check {
            self.params.config.check_retransmit
        } else {
            self.params.config.liveness_retransmit
        };
        self.send_request_scheduled(
            now,
            RequestKind::Dpd,
            ExchangeType::INFORMATIONAL,
            &[],
            schedule,
        );
    }

    /// Our DPD or update was answered.
    pub(super) fn path_answered(&mut self, now: Instant) {
        self.live.answered(now);
    }

    /// An unprotected response to our outstanding request. The only one we take is the
    /// INVALID_IKE_SPI of a server that restarted and lost our IKE SA; it is unauthenticated,
    /// so it counts only from the server's address while a request of ours is in flight.
    pub(super) fn handle_unprotected_response(&mut self, msg: &Message<'_>) {
        let h = msg.header;
        let invalid_spi = h.exchange == ExchangeType::INFORMATIONAL
            && msg
                .payloads
                .iter()
                .any(|p| matches!(p, Payload::Notify(n) if n.kind == NotifyType::INVALID_IKE_SPI));
        let from = self.live.from;
        let from_server = from.is_some_and(|f| self.is_server_address(f.ip()));
        if !invalid_spi || !from_server || self.tm.outstanding_id() != Some(h.message_id) {
            debug!("dropping an unprotected {} response", h.exchange);
            self.drops.unexpected += 1;
            return;
        }
        match self.phase {
            Phase::Established => {
                warn!(
                    "unauthenticated INVALID_IKE_SPI from {from:?} answering our request {}: \
                     the server no longer knows IKE SA {:016x}_{:016x} (restarted)",
                    h.message_id, self.spi_i, self.spi_r
                );
                self.finish(DisconnectReason::ServerRestarted);
            }
            Phase::Deleting => self.finish(DisconnectReason::Closed),
            _ => self.drops.unexpected += 1,
        }
    }
}
