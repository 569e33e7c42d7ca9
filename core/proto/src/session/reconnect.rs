//! When the session makes a new IKE SA after losing one: exponential backoff with jitter,
//! capped, attempted forever until the user stops it; the attempt count starts over once a
//! connection is up again. Which losses are worth a retry is `DisconnectReason::is_permanent`.

use std::time::{Duration, Instant};

use crate::rng::Rng;

/// How long to wait before each reconnect attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first attempt after a loss.
    pub first_delay: Duration,
    /// Each further attempt waits this many times longer ...
    pub factor: f64,
    /// ... up to this delay.
    pub max_delay: Duration,
    /// Each delay is shortened by a random fraction up to this (0.0 to 1.0), so clients that
    /// lost the same server do not come back in lockstep.
    pub jitter: f64,
}

impl Default for ReconnectPolicy {
    /// 1 s, doubling, at most 2 minutes apart, up to 20% earlier at random.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            factor: 2.0,
            max_delay: Duration::from_secs(120),
            jitter: 0.2,
        }
    }
}

/// The attempts since the connection was last up, and when the next one is due.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    attempts: u32,
    due: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(policy: ReconnectPolicy) -> Self {
        Self {
            policy,
            attempts: 0,
            due: None,
        }
    }

    /// Schedules the next attempt: its number (1-based) and its delay from `now`.
    pub(crate) fn schedule(&mut self, now: Instant, rng: &mut dyn Rng) -> (u32, Duration) {
        self.attempts = self.attempts.saturating_add(1);
        let delay = self.delay(self.attempts, rng);
        self.due = Some(now + delay);
        (self.attempts, delay)
    }

    /// The delay before attempt `n` (1-based), jitter included.
    fn delay(&self, n: u32, rng: &mut dyn Rng) -> Duration {
        let p = &self.policy;
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let max = p.max_delay.as_secs_f64();
        let base = (p.first_delay.as_secs_f64() * p.factor.max(1.0).powi(exponent)).min(max);
        // A uniform fraction in [0, 1) from 53 random bits.
        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let jitter = p.jitter.clamp(0.0, 1.0) * unit;
        Duration::try_from_secs_f64(base * (1.0 - jitter)).unwrap_or(p.max_delay)
    }

    /// When the scheduled attempt is due.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Takes the scheduled attempt if it is due at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        match self.due {
            Some(t) if t <= now => {
                self.due = None;
                true
            }
            _ => false,
        }
    }

    /// Brings the scheduled attempt forward to `now` (a new network appeared: waiting longer
    /// helps nobody). The attempt count stays, so a flapping network still backs off.
    pub(crate) fn hurry(&mut self, now: Instant) {
        if let Some(due) = self.due.as_mut() {
            *due = (*due).min(now);
        }
    }

    /// Forgets the scheduled attempt (the user closed the session).
    pub(crate) fn cancel(&mut self) {
        self.due = None;
    }

    /// The connection is up: the next loss starts from the first delay again.
    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
        self.due = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::test_clock::epoch;
    use crate::rng::SeededRng;

    #[test]
    fn delays_grow_to_the_cap_with_bounded_jitter() {
        let policy = ReconnectPolicy::default();
        let mut b = Backoff::new(policy);
        let mut rng = SeededRng::new(7);
        let now = epoch();
        let mut last_base = 0.0;
        for n in 1..=12u32 {
            let (attempt, delay) = b.schedule(now, &mut rng);
            assert_eq!(attempt, n);
            let base = (2f64.powi(n as i32 - 1)).min(120.0);
            let d = delay.as_secs_f64();
            assert!(
                d <= base + 1e-9 && d >= base * 0.8 - 1e-9,
                "attempt {n}: {d} vs {base}"
            );
            assert!(base >= last_base);
            last_base = base;
            assert_eq!(b.due(), Some(now + delay));
        }
        b.reset();
        let (attempt, delay) = b.schedule(now, &mut rng);
        assert_eq!(attempt, 1);
        assert!(delay <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_clients() {
        let policy = ReconnectPolicy::default();
        let delays: Vec<Duration> = (0..20)
            .map(|seed| {
                let mut b = Backoff::new(policy);
                b.schedule(epoch(), &mut SeededRng::new(seed)).1
            })
            .collect();
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 15, "{delays:?}");
    }

    #[test]
    fn due_is_taken_once() {
        let mut b = Backoff::new(ReconnectPolicy::default());
        let now = epoch();
        let (_, d) = b.schedule(now, &mut SeededRng::new(1));
        assert!(!b.take_due(now));
        assert!(b.take_due(now + d));
        assert!(!b.take_due(now + d));
        assert_eq!(b.due(), None);
    }
}
