//! SA lifetimes: the instant an IKE or CHILD SA is rekeyed (its soft lifetime, made earlier
//! by a random jitter chosen per SA) and the instant it is gone (its hard lifetime), plus the
//! ESP sequence-number and volume budgets that force an early CHILD SA rekey.

use std::time::{Duration, Instant};

use crate::rng::Rng;

/// The two deadlines of one SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaLifetime {
    /// Start a rekey at this instant.
    pub rekey_at: Instant,
    /// Past this instant without a successful rekey, the SA is gone.
    pub expire_at: Instant,
}

impl SaLifetime {
    /// The lifetime of an SA made at `now` that should be rekeyed after `rekey`, jittered
    /// earlier by a random amount of at most `jitter_cap(rekey, jitter)`.
    pub fn new(now: Instant, rekey: Duration, jitter: Duration, rng: &mut dyn Rng) -> Self {
        let cap = jitter_cap(rekey, jitter);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        let early = if cap_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rng.next_u64() % cap_ms.saturating_add(1))
        };
        Self {
            rekey_at: now + rekey.saturating_sub(early),
            expire_at: now + hard_lifetime(rekey),
        }
    }

    /// The earlier of the two deadlines that is still ahead of the SA's state: the rekey
    /// instant unless a rekey is already under way, then the expiry.
    pub fn next(&self, rekeying: bool) -> Instant {
        if rekeying {
            self.expire_at
        } else {
            self.rekey_at.min(self.expire_at)
        }
    }
}

/// The largest jitter for an SA: the configured one, but never more than a tenth of the
/// soft lifetime (a rekey is never more than 10% early).
pub fn jitter_cap(rekey: Duration, jitter: Duration) -> Duration {
    jitter.min(rekey / 10)
}

/// The least time between an SA's rekey and its end: room for the rekey's retransmissions on
/// a lossy path, however short the configured lifetime.
pub const MIN_REKEY_MARGIN: Duration = Duration::from_secs(30);

/// The hard lifetime: the soft one plus a tenth, and at least [`MIN_REKEY_MARGIN`] more.
pub fn hard_lifetime(rekey: Duration) -> Duration {
    rekey.saturating_add((rekey / 10).max(MIN_REKEY_MARGIN))
}

/// Whether an outbound ESP SA with `packets_left` sequence numbers to go must be rekeyed now:
/// when less than an eighth of its sequence space remains.
pub fn seq_exhausting(packets_left: u64, esn: bool) -> bool {
    let space = if esn { u64::MAX } else { u64::from(u32::MAX) };
    packets_left < space / 8
}

/// Whether the CHILD SA's traffic crossed a configured volume limit.
pub fn volume_exceeded(
    packets: u64,
    bytes: u64,
    max_packets: Option<u64>,
    max_bytes: Option<u64>,
) -> bool {
    max_packets.is_some_and(|m| packets >= m) || max_bytes.is_some_and(|m| bytes >= m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    #[test]
    fn jitter_is_at_most_a_tenth_and_random_per_sa() {
        let now = crate::ike::test_clock::epoch();
        let hour = Duration::from_secs(3600);
        let mut rng = SeededRng::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let l = SaLifetime::new(now, hour, Duration::from_secs(24 * 60), &mut rng);
            assert!(l.rekey_at <= now + hour);
            assert!(
                l.rekey_at >= now + hour - Duration::from_secs(360),
                "at most 10% early"
            );
            assert_eq!(
                l.expire_at,
                now + Duration::from_secs(3960),
                "hard = soft + 10%"
            );
            seen.insert(l.rekey_at);
        }
        assert!(seen.len() > 150, "jitter differs per SA: {}", seen.len());
        // A small configured jitter is the cap.
        let l = SaLifetime::new(now, hour, Duration::from_secs(5), &mut rng);
        assert!(l.rekey_at >= now + hour - Duration::from_secs(5));
        // No jitter: exactly the soft lifetime.
        let l = SaLifetime::new(now, hour, Duration::ZERO, &mut rng);
        assert_eq!(l.rekey_at, now + hour);
        assert_eq!(l.next(false), now + hour);
        assert_eq!(l.next(true), l.expire_at);
    }

    #[test]
    fn defaults_are_strongswan_like() {
        let d = crate::config::Lifetimes::default();
        assert_eq!(d.ike_rekey, Duration::from_secs(4 * 3600));
        assert_eq!(d.child_rekey, Duration::from_secs(3600));
        assert_eq!(
            jitter_cap(d.child_rekey, d.jitter),
            Duration::from_secs(360)
        );
        assert_eq!(
            jitter_cap(d.ike_rekey, d.jitter),
            Duration::from_secs(24 * 60)
        );
        assert_eq!(
            hard_lifetime(d.ike_rekey),
            Duration::from_secs(4 * 3600 + 1440)
        );
    }

    #[test]
    fn sequence_and_volume_budgets() {
        assert!(!seq_exhausting(u64::from(u32::MAX), false));
        assert!(!seq_exhausting(u64::from(u32::MAX) / 8 + 1, false));
        assert!(seq_exhausting(u64::from(u32::MAX) / 8 - 1, false));
        assert!(seq_exhausting(0, false));
        assert!(!seq_exhausting(u64::MAX - 5, true), "ESN has room");
        assert!(!volume_exceeded(10, 10, None, None));
        assert!(volume_exceeded(10, 0, Some(10), None));
        assert!(!volume_exceeded(9, 0, Some(10), None));
        assert!(volume_exceeded(0, 1 << 20, None, Some(1 << 20)));
    }
}
