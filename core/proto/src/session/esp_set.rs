//! The session's ESP SAs across rekeys: the current outbound SA, every inbound SA found by
//! its SPI, and replaced inbound SAs retired once a newer one is in use (a packet arrived on
//! it) or after a grace time, so packets in flight during a rekey are not lost. Counters of
//! removed SAs are carried, so totals survive rekeys. Nothing here allocates per packet.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::esp::{peek_spi, Counters, EspError, EspSa};

/// How long a replaced inbound SA keeps receiving when the new one stays unused.
pub const RETIRE_GRACE: Duration = Duration::from_secs(10);
/// Most ESP SAs held at once (current, replaced, and a collision's extra ones).
pub const MAX_SAS: usize = 6;

#[derive(Debug)]
struct Entry {
    esp: EspSa,
    /// Install order: a packet on a newer SA retires older retiring ones.
    generation: u64,
    retire_at: Option<Instant>,
}

/// Why the set could not open a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Open {
    /// No SA at all.
    NoSa,
    Esp(EspError),
}

/// The ESP SAs of the session.
#[derive(Debug, Default)]
pub struct EspSet {
    entries: Vec<Entry>,
    /// Inbound SPI of the SA that carries outbound packets.
    current: Option<u32>,
    generation: u64,
    carried: Counters,
}

impl EspSet {
    /// Drops every SA and the counters (the IKE SA is gone).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an SA with inbound SPI `spi_in` is held (which connection a packet is for).
    pub fn contains(&self, spi_in: u32) -> bool {
        self.index(spi_in).is_some()
    }

    /// Adds the counters of SAs held elsewhere that are gone now (a replaced connection's),
    /// so totals stay monotonic.
    pub fn carry(&mut self, counters: &Counters) {
        self.carried = self.carried.sum(counters);
    }

    fn index(&self, spi_in: u32) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.esp.inbound.spi() == spi_in)
    }

    /// Adds an SA for inbound packets (a no-op when its SPI is already there).
    pub fn install(&mut self, esp: EspSa) {
        if self.index(esp.inbound.spi()).is_some() {
            return;
        }
        if self.entries.len() >= MAX_SAS {
            // Full: the oldest SA that is not the current one goes first.
            let current = self.current;
            if let Some(i) = self
                .entries
                .iter()
                .position(|e| Some(e.esp.inbound.spi()) != current)
            {
                self.remove(i);
            }
        }
        self.generation += 1;
        self.entries.push(Entry {
            esp,
            generation: self.generation,
            retire_at: None,
        });
    }

    /// Outbound packets go into SA `spi_in` from now on (it must be installed).
    pub fn make_current(&mut self, spi_in: u32) -> bool {
        match self.index(spi_in) {
            Some(i) => {
                self.current = Some(spi_in);
                if let Some(e) = self.entries.get_mut(i) {
                    e.retire_at = None;
                }
                true
            }
            None => false,
        }
    }

    /// SA `spi_in` is replaced or deleted: it keeps receiving until a newer SA is used or
    /// `now + RETIRE_GRACE`. The current SA is never retired.
    pub fn retire(&mut self, spi_in: u32, now: Instant) {
        if self.current == Some(spi_in) {
            return;
        }
        if let Some(i) = self.index(spi_in) {
            let e = &mut self.entries[i];
            let at = now + RETIRE_GRACE;
            e.retire_at = Some(e.retire_at.map_or(at, |t| t.min(at)));
        }
    }

    fn remove(&mut self, i: usize) {
        let e = self.entries.remove(i);
        self.carried = self.carried.sum(&e.esp.counters());
        if self.current == Some(e.esp.inbound.spi()) {
            self.current = None;
        }
    }

    /// The SA outbound packets go into.
    pub fn outbound(&mut self) -> Option<&mut EspSa> {
        let spi = self.current?;
        self.entries
            .iter_mut()
            .find(|e| e.esp.inbound.spi() == spi)
            .map(|e| &mut e.esp)
    }

    pub fn current(&self) -> Option<&EspSa> {
        let spi = self.current?;
        self.entries
            .iter()
            .find(|e| e.esp.inbound.spi() == spi)
            .map(|e| &e.esp)
    }

    /// Inbound SPIs held now.
    pub fn spis(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.esp.inbound.spi())
    }

    /// Decrypts an ESP packet in place with the SA its SPI names. A packet on an SA that is
    /// not retiring ends the grace of older retiring ones.
    pub fn decapsulate(&mut self, data: &mut [u8]) -> Result<Range<usize>, Open> {
        let spi = peek_spi(data);
        let i = match spi.and_then(|s| self.index(s)) {
            Some(i) => i,
            // Unknown SPI: the current SA counts and reports it.
            None => match self.current.and_then(|s| self.index(s)) {
                Some(i) => i,
                None => return Err(Open::NoSa),
            },
        };
        let e = &mut self.entries[i];
        let range = e.esp.decapsulate(data).map_err(Open::Esp)?;
        if e.retire_at.is_none() {
            let g = e.generation;
            let mut j = 0;
            while j < self.entries.len() {
                let x = &self.entries[j];
                if x.retire_at.is_some() && x.generation < g {
                    self.remove(j);
                } else {
                    j += 1;
                }
            }
        }
        Ok(range)
    }

    /// The next instant a retiring SA goes.
    pub fn deadline(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|e| e.retire_at).min()
    }

    /// Removes retiring SAs whose grace is over.
    pub fn on_timeout(&mut self, now: Instant) {
        let mut j = 0;
        while j < self.entries.len() {
            if self.entries[j].retire_at.is_some_and(|t| now >= t) {
                self.remove(j);
            } else {
                j += 1;
            }
        }
    }

    /// Counters of every SA held now and of those removed since the set was cleared.
    pub fn counters(&self) -> Counters {
        self.entries
            .iter()
            .fold(self.carried, |acc, e| acc.sum(&e.esp.counters()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::proposal::{choose, ProposalSpec};
    use crate::crypto::Secret;
    use crate::ike::child::{ts_any, ChildSa};
    use crate::rng::SeededRng;

    /// Both ends of one SA: ours (inbound `spi_in`) and the peer's.
    fn pair(spi_in: u32, spi_out: u32, key: u8) -> (EspSa, EspSa) {
        let spec = ProposalSpec::parse_esp("aes256gcm16", &[]).unwrap();
        let (selected, _, _) = choose(
            std::slice::from_ref(&spec),
            &[spec.to_wire(1, &[0, 0, 1, 0])],
        )
        .unwrap();
        let k = |b: u8| Secret::from_slice(&[b; 36]);
        let mk = |i, o, ein: u8, eout: u8| ChildSa {
            selected,
            spi_in: i,
            spi_out: o,
            encr_in: k(ein),
            integ_in: Secret::default(),
            encr_out: k(eout),
            integ_out: Secret::default(),
            ts_local: vec![ts_any(false)],
            ts_remote: vec![ts_any(false)],
        };
        let mut rng = SeededRng::new(u64::from(key));
        (
            EspSa::new(&mk(spi_in, spi_out, key, key + 1), &mut rng).unwrap(),
            EspSa::new(&mk(spi_out, spi_in, key + 1, key), &mut rng).unwrap(),
        )
    }

    fn packet(peer: &mut EspSa) -> Vec<u8> {
        let inner = [0x45u8; 40];
        let mut out = vec![0u8; 256];
        let n = peer.encapsulate(&inner, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn old_inbound_lives_until_the_new_one_is_used() {
        let now = crate::ike::test_clock::epoch();
        let mut set = EspSet::default();
        let (old, mut peer_old) = pair(0x1000, 0x2000, 1);
        let (new, mut peer_new) = pair(0x1001, 0x2001, 5);
        set.install(old);
        assert!(set.make_current(0x1000));
        let mut out = vec![0u8; 256];
        set.outbound()
            .unwrap()
            .encapsulate(&[0x45; 40], &mut out)
            .unwrap();
        assert!(set.decapsulate(&mut packet(&mut peer_old)).is_ok());
        // Rekeyed: outbound moves, the old inbound keeps working.
        set.install(new);
        assert!(set.make_current(0x1001));
        set.retire(0x1000, now);
        assert_eq!(set.outbound().unwrap().outbound.spi(), 0x2001);
        assert_eq!(set.deadline(), Some(now + RETIRE_GRACE));
        let late = packet(&mut peer_old);
        assert!(set.decapsulate(&mut packet(&mut peer_old)).is_ok());
        // The first packet on the new SA retires the old one at once.
        assert!(set.decapsulate(&mut packet(&mut peer_new)).is_ok());
        assert_eq!(set.spis().collect::<Vec<_>>(), vec![0x1001]);
        assert_eq!(
            set.decapsulate(&mut late.clone()),
            Err(Open::Esp(EspError::BadSpi {
                got: 0x1000,
                want: 0x1001
            }))
        );
        // Counters survive: 1 out, 3 in (2 old + 1 new), and the bad SPI counted.
        let c = set.counters();
        assert_eq!((c.packets_out, c.packets_in, c.bad_spi), (1, 3, 1));
        assert_eq!(set.deadline(), None);
    }

    #[test]
    fn grace_time_retires_an_unused_old_sa() {
        let now = crate::ike::test_clock::epoch();
        let mut set = EspSet::default();
        let (old, _) = pair(0x1000, 0x2000, 1);
        let (new, _) = pair(0x1001, 0x2001, 5);
        set.install(old);
        set.make_current(0x1000);
        set.retire(0x1000, now);
        assert_eq!(set.deadline(), None, "the current SA never retires");
        set.install(new);
        set.make_current(0x1001);
        set.retire(0x1000, now);
        set.on_timeout(now + RETIRE_GRACE - Duration::from_millis(1));
        assert_eq!(set.spis().count(), 2);
        set.on_timeout(now + RETIRE_GRACE);
        assert_eq!(set.spis().collect::<Vec<_>>(), vec![0x1001]);
        set.clear();
        assert!(set.is_empty() && set.outbound().is_none());
        assert_eq!(set.decapsulate(&mut [0u8; 40]), Err(Open::NoSa));
    }

    #[test]
    fn the_set_is_bounded() {
        let mut set = EspSet::default();
        for i in 0..(MAX_SAS as u32 + 3) {
            let (sa, _) = pair(0x1000 + i, 0x2000 + i, 1);
            set.install(sa);
            if i == 0 {
                set.make_current(0x1000);
            }
        }
        assert_eq!(set.spis().count(), MAX_SAS);
        assert!(set.current().is_some(), "the current SA is kept");
    }
}
