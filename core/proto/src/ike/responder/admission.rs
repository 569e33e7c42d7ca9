//! Admission of new IKE SAs: the responder's defence against IKE_SA_INIT floods. A half-open
//! IKE SA (answered IKE_SA_INIT, no IKE_AUTH yet) costs a key exchange and a few KiB, and
//! anyone can make one with a spoofed source address, so:
//!
//! - [`COOKIE_THRESHOLD`]: from this many half-open SAs on, every new IKE_SA_INIT must carry
//!   a COOKIE (RFC 7296 §2.6): a spoofer never sees the cookie and cannot go on.
//! - [`MAX_HALF_OPEN`]: the hard cap. At the cap, half-open SAs older than
//!   [`HALF_OPEN_TIMEOUT`] are forgotten to make room; if none is, the request is dropped.
//!
//! Every refusal is counted in [`AdmissionStats`].

use std::time::{Duration, Instant};

use super::{Responder, SaPhase};

/// From this many half-open IKE SAs on, a COOKIE is demanded of every new IKE_SA_INIT.
pub const COOKIE_THRESHOLD: usize = 64;
/// Most half-open IKE SAs kept; IKE_SA_INIT beyond is dropped (after expiring old ones).
pub const MAX_HALF_OPEN: usize = 1024;
/// A half-open IKE SA this old may be forgotten to make room for a new one.
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What admission refused or did, since the responder started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// COOKIE notifies sent instead of an IKE_SA_INIT answer (configured or under load).
    pub cookies_demanded: u64,
    /// IKE_SA_INIT requests dropped because [`MAX_HALF_OPEN`] were waiting.
    pub half_open_full: u64,
    /// IKE_SA_INIT requests dropped because the responder's IKE SA table was full.
    pub table_full: u64,
    /// Half-open IKE SAs forgotten after [`HALF_OPEN_TIMEOUT`] to make room.
    pub half_open_expired: u64,
}

impl Responder {
    /// IKE SAs still waiting for IKE_AUTH.
    pub fn half_open_count(&self) -> usize {
        self.sas
            .values()
            .filter(|s| s.phase == SaPhase::AwaitAuth)
            .count()
    }

    /// What admission refused so far.
    pub fn admission_stats(&self) -> AdmissionStats {
        self.admission
    }

    /// Whether a new IKE_SA_INIT must carry a valid COOKIE (configured, or under load).
    pub(super) fn cookie_required(&self) -> bool {
        self.cfg.require_cookie || self.half_open_count() >= COOKIE_THRESHOLD
    }

    /// Whether a new IKE SA may be made now (at the caps, old half-open SAs are forgotten
    /// first); a refusal is counted.
    pub(super) fn admit(&mut self, now: Instant) -> bool {
        if self.half_open_count() >= MAX_HALF_OPEN {
            self.expire_half_open(now);
            if self.half_open_count() >= MAX_HALF_OPEN {
                self.admission.half_open_full += 1;
                self.dropped += 1;
                return false;
            }
        }
        if self.sas.len() >= super::MAX_SAS {
            self.admission.table_full += 1;
            self.dropped += 1;
            return false;
        }
        true
    }

    /// Forgets half-open IKE SAs made more than [`HALF_OPEN_TIMEOUT`] before `now`.
    fn expire_half_open(&mut self, now: Instant) {
        let old: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| {
                s.phase == SaPhase::AwaitAuth
                    && now.saturating_duration_since(s.created) >= HALF_OPEN_TIMEOUT
            })
            .map(|(h, _)| *h)
            .collect();
        for h in old {
            if let Some(mut sa) = self.sas.remove(&h) {
                self.forget(&mut sa);
                self.admission.half_open_expired += 1;
            }
        }
    }
}
