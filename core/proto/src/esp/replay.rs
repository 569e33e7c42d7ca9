//! The inbound anti-replay window (RFC 4303 §3.4.3): a 1024-packet bitmap behind the highest
//! authenticated sequence number, and with ESN the inference of the unsent high 32 bits
//! (RFC 4303 Appendix A). `check` is the cheap test before decryption; `accept` moves the
//! window and runs only for packets whose ICV verified.

/// Packets the window covers.
pub const REPLAY_WINDOW: u64 = 1024;

const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Why `check` refused a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayReject {
    /// Already received.
    Duplicate(u64),
    /// Behind the window, or no valid sequence number at all (0, or past 2^64 - 1).
    TooOld(u64),
}

/// The receive window of one inbound SA.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    esn: bool,
    /// Highest authenticated sequence number; 0 before the first packet.
    top: u64,
    /// Bit `s % 1024` is set when `s` in `top - 1023 ..= top` was received.
    bits: [u64; WORDS],
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("esn", &self.esn)
            .field("top", &self.top)
            .finish()
    }
}

fn slot(seq: u64) -> (usize, u64) {
    let i = seq % REPLAY_WINDOW;
    // i < 1024, so i / 64 < WORDS.
    ((i / 64) as usize, 1u64 << (i % 64))
}

impl ReplayWindow {
    pub fn new(esn: bool) -> Self {
        Self {
            esn,
            top: 0,
            bits: [0; WORDS],
        }
    }

    /// The highest sequence number accepted so far (0 for none).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full sequence number a packet carrying `seq_lo` stands for: itself without ESN,
    /// with ESN the high half inferred from the window (RFC 4303 Appendix A2.2).
    pub fn infer(&self, seq_lo: u32) -> Option<u64> {
        if !self.esn {
            return Some(u64::from(seq_lo));
        }
        let w = REPLAY_WINDOW as u32;
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        let bottom = tl.wrapping_sub(w - 1);
        let hi = if tl >= w - 1 {
            // The window lies within one 2^32 span.
            if seq_lo >= bottom {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else if seq_lo >= bottom && th > 0 {
            // The window straddles a 2^32 boundary and seq_lo is in its older part.
            Some(th - 1)
        } else {
            // In the first span nothing lies below 0: seq_lo is ahead.
            Some(th)
        };
        hi.map(|hi| (u64::from(hi) << 32) | u64::from(seq_lo))
    }

    /// Whether a packet carrying `seq_lo` may be new; returns its full sequence number.
    /// Changes nothing.
    pub fn check(&self, seq_lo: u32) -> Result<u64, ReplayReject> {
        let seq = self
            .infer(seq_lo)
            .ok_or(ReplayReject::TooOld(u64::from(seq_lo)))?;
        if seq == 0 {
            return Err(ReplayReject::TooOld(0));
        }
        if seq > self.top {
            return Ok(seq);
        }
        if self.top - seq >= REPLAY_WINDOW {
            return Err(ReplayReject::TooOld(seq));
        }
        let (w, bit) = slot(seq);
        match self.bits.get(w) {
            Some(word) if word & bit == 0 => Ok(seq),
            _ => Err(ReplayReject::Duplicate(seq)),
        }
    }

    /// Records `seq` (from `check`, after its ICV verified), sliding the window if it is the
    /// new highest. Refuses what `check` would refuse.
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayReject> {
        if seq == 0 {
            return Err(ReplayReject::TooOld(0));
        }
        if seq > self.top {
            let ahead = seq - self.top;
            if ahead >= REPLAY_WINDOW {
                self.bits = [0; WORDS];
            } else {
                for s in self.top + 1..=seq {
                    let (w, bit) = slot(s);
                    if let Some(word) = self.bits.get_mut(w) {
                        *word &= !bit;
                    }
                }
            }
            self.top = seq;
        } else if self.top - seq >= REPLAY_WINDOW {
            return Err(ReplayReject::TooOld(seq));
        }
        let (w, bit) = slot(seq);
        match self.bits.get_mut(w) {
            Some(word) if *word & bit == 0 => {
                *word |= bit;
                Ok(())
            }
            _ => Err(ReplayReject::Duplicate(seq)),
        }
    }

    /// Places the window as if `top` were the highest packet received (tests and SAs taken
    /// over from elsewhere).
    pub fn reset_to(&mut self, top: u64) {
        self.top = top;
        self.bits = [0; WORDS];
        if top != 0 {
            let (w, bit) = slot(top);
            if let Some(word) = self.bits.get_mut(w) {
                *word |= bit;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn take(w: &mut ReplayWindow, lo: u32) -> Result<u64, ReplayReject> {
        let s = w.check(lo)?;
        w.accept(s)?;
        Ok(s)
    }

    #[test]
    fn in_order_duplicates_and_zero() {
        let mut w = ReplayWindow::new(false);
        assert_eq!(w.check(0), Err(ReplayReject::TooOld(0)));
        for s in 1..=3000u32 {
            assert_eq!(take(&mut w, s), Ok(u64::from(s)));
            assert_eq!(w.check(s), Err(ReplayReject::Duplicate(u64::from(s))));
        }
        assert_eq!(w.top(), 3000);
    }

    #[test]
    fn reorder_inside_window_and_too_old() {
        let mut w = ReplayWindow::new(false);
        assert_eq!(take(&mut w, 2000), Ok(2000));
        // Everything within the last 1024 is still fresh, in any order.
        for s in (977..2000u32).rev() {
            assert_eq!(take(&mut w, s), Ok(u64::from(s)), "{s}");
        }
        assert_eq!(w.check(976), Err(ReplayReject::TooOld(976)));
        assert_eq!(w.check(1), Err(ReplayReject::TooOld(1)));
        assert_eq!(w.check(1500), Err(ReplayReject::Duplicate(1500)));
        // Slide by 10: the 10 oldest fall out, the rest stay marked.
        assert_eq!(take(&mut w, 2010), Ok(2010));
        assert_eq!(w.check(986), Err(ReplayReject::TooOld(986)));
        assert_eq!(w.check(987), Err(ReplayReject::Duplicate(987)));
        for s in 2001..2010u32 {
            assert_eq!(w.check(s), Ok(u64::from(s)), "gap {s} is fresh");
        }
    }

    #[test]
    fn jump_far_ahead_clears() {
        let mut w = ReplayWindow::new(false);
        for s in 1..=100u32 {
            take(&mut w, s).unwrap();
        }
        assert_eq!(take(&mut w, 1_000_000), Ok(1_000_000));
        assert_eq!(w.check(100), Err(ReplayReject::TooOld(100)));
        // Slots reused by the new window are clear.
        for s in 1_000_000 - 1023..1_000_000u32 {
            assert_eq!(w.check(s), Ok(u64::from(s)));
        }
    }

    #[test]
    fn accept_refuses_what_check_refuses() {
        let mut w = ReplayWindow::new(false);
        w.accept(5000).unwrap();
        assert_eq!(w.accept(5000), Err(ReplayReject::Duplicate(5000)));
        assert_eq!(w.accept(10), Err(ReplayReject::TooOld(10)));
        assert_eq!(w.accept(0), Err(ReplayReject::TooOld(0)));
    }

    #[test]
    fn esn_inference_across_a_boundary() {
        let mut w = ReplayWindow::new(true);
        // Fresh window: low numbers are in span 0.
        assert_eq!(w.check(1), Ok(1));
        assert_eq!(w.check(0), Err(ReplayReject::TooOld(0)));
        w.reset_to(0xffff_fff0);
        // Ahead within the span, then past it.
        assert_eq!(w.check(0xffff_fff5), Ok(0xffff_fff5));
        assert_eq!(w.check(0), Ok(0x1_0000_0000));
        assert_eq!(w.check(3), Ok(0x1_0000_0003));
        // Behind within the window.
        assert_eq!(w.check(0xffff_fc00), Ok(0xffff_fc00));
        // Take 0x1_0000_0002: now the window straddles the boundary.
        assert_eq!(take(&mut w, 2), Ok(0x1_0000_0002));
        assert_eq!(w.top(), 0x1_0000_0002);
        assert_eq!(
            w.check(0xffff_fff0),
            Err(ReplayReject::Duplicate(0xffff_fff0))
        );
        assert_eq!(w.check(0xffff_fff1), Ok(0xffff_fff1));
        assert_eq!(take(&mut w, 0xffff_ffff), Ok(0xffff_ffff));
        assert_eq!(take(&mut w, 0), Ok(0x1_0000_0000));
        assert_eq!(take(&mut w, 1), Ok(0x1_0000_0001));
        assert_eq!(w.check(1), Err(ReplayReject::Duplicate(0x1_0000_0001)));
        // 0xffff_fc03 is the oldest the window still holds; one before it is in span 1+1.
        assert_eq!(w.check(0xffff_fc03), Ok(0xffff_fc03));
        assert_eq!(w.check(0xffff_fc02), Ok(0x1_ffff_fc02));
        // Far ahead in the same span.
        assert_eq!(take(&mut w, 0x8000_0000), Ok(0x1_8000_0000));
    }

    #[test]
    fn esn_top_of_the_range() {
        let mut w = ReplayWindow::new(true);
        w.reset_to(u64::MAX - 5);
        assert_eq!(w.check(u32::MAX), Ok(u64::MAX));
        // Lower low halves would need a high half past 2^32 - 1.
        assert_eq!(w.check(5), Err(ReplayReject::TooOld(5)));
        // Below span 0 nothing exists: a big low half early on is a jump ahead.
        let mut w = ReplayWindow::new(true);
        w.reset_to(10);
        assert_eq!(w.check(0xffff_ff00), Ok(0xffff_ff00));
        assert_eq!(w.check(3), Ok(3));
    }

    proptest! {
        /// Against a model: a set of everything accepted and the rule of the window.
        #[test]
        fn matches_a_model(seqs in proptest::collection::vec(1u64..5000, 1..400)) {
            let mut w = ReplayWindow::new(false);
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for s in seqs {
                let lo = s as u32;
                let expect_ok = !seen.contains(&s) && (s > top || top - s < REPLAY_WINDOW);
                let got = w.check(lo);
                prop_assert_eq!(got.is_ok(), expect_ok, "seq {} top {}", s, top);
                if got.is_ok() {
                    w.accept(s).unwrap();
                    seen.insert(s);
                    top = top.max(s);
                }
            }
        }

        /// With ESN, any sequence number within the window's reach is inferred exactly.
        #[test]
        fn esn_infers_exactly(top in 2048u64..u64::MAX / 2, back in 0u64..1023, ahead in 1u64..1 << 31) {
            let mut w = ReplayWindow::new(true);
            w.reset_to(top);
            let behind = top - back;
            prop_assert_eq!(w.infer(behind as u32), Some(behind));
            let fwd = top + ahead;
            prop_assert_eq!(w.infer(fwd as u32), Some(fwd));
        }
    }
}
