//! The responder's address pools: one per family, a contiguous range from a first address.
//! Each lease is unique while its client is connected and returns to the pool when the client
//! leaves. Memory is bounded by the leases in use (never by the pool's size): a counter hands
//! out fresh addresses in order, and released ones are reused first.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One family's pool: `size` addresses from `base`.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    base: IpAddr,
    size: u32,
    /// Offsets below this were handed out at least once.
    next: u32,
    /// Offsets handed out before and returned since (lowest reused first).
    free: BTreeSet<u32>,
    in_use: HashSet<u32>,
}

impl Pool {
    pub(crate) fn new(base: IpAddr, size: u32) -> Self {
        // An IPv4 pool never runs past 255.255.255.255.
        let size = match base {
            IpAddr::V4(b) => {
                let room = u64::from(u32::MAX - u32::from(b)) + 1;
                u32::try_from(u64::from(size).min(room)).unwrap_or(u32::MAX)
            }
            IpAddr::V6(_) => size,
        };
        Self {
            base,
            size,
            next: 0,
            free: BTreeSet::new(),
            in_use: HashSet::new(),
        }
    }

    fn at(&self, offset: u32) -> IpAddr {
        match self.base {
            IpAddr::V4(b) => IpAddr::V4(Ipv4Addr::from(u32::from(b).wrapping_add(offset))),
            IpAddr::V6(b) => IpAddr::V6(Ipv6Addr::from(
                u128::from(b).wrapping_add(u128::from(offset)),
            )),
        }
    }

    fn offset_of(&self, addr: IpAddr) -> Option<u32> {
        let off = match (self.base, addr) {
            (IpAddr::V4(b), IpAddr::V4(a)) => u128::from(u32::from(a).checked_sub(u32::from(b))?),
            (IpAddr::V6(b), IpAddr::V6(a)) => u128::from(a).checked_sub(u128::from(b))?,
            _ => return None,
        };
        u32::try_from(off).ok().filter(|o| *o < self.size)
    }

    /// A free address, or None when every address is leased.
    pub(crate) fn lease(&mut self) -> Option<IpAddr> {
        let offset = if let Some(o) = self.free.pop_first() {
            o
        } else if self.next < self.size {
            self.next += 1;
            self.next - 1
        } else {
            return None;
        };
        self.in_use.insert(offset);
        Some(self.at(offset))
    }

    /// Returns `addr` to the pool (addresses not leased from it are ignored).
    pub(crate) fn release(&mut self, addr: IpAddr) {
        if let Some(o) = self.offset_of(addr) {
            if self.in_use.remove(&o) {
                self.free.insert(o);
            }
        }
    }

    /// Addresses leased now.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn leases_are_unique_and_return() {
        let mut p = Pool::new(v4("198.18.0.2"), 3);
        let a = p.lease().unwrap();
        let b = p.lease().unwrap();
        let c = p.lease().unwrap();
        assert_eq!(
            (a, b, c),
            (v4("198.18.0.2"), v4("198.18.0.3"), v4("198.18.0.4"))
        );
        assert_eq!(p.lease(), None, "exhausted: no address is shared");
        p.release(b);
        p.release(b);
        p.release(v4("192.0.2.1"));
        p.release(v4("198.18.0.9"));
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.lease(), Some(b));
        assert_eq!(p.lease(), None);
    }

    #[test]
    fn churn_stays_bounded() {
        let mut p = Pool::new(v4("2001:db8:ffff::2"), u32::MAX);
        for _ in 0..10_000 {
            let a = p.lease().unwrap();
            p.release(a);
        }
        assert_eq!(p.lease(), Some(v4("2001:db8:ffff::2")));
        assert!(p.free.is_empty() && p.in_use() == 1);
    }

    #[test]
    fn ipv4_pool_stops_at_the_last_address() {
        let mut p = Pool::new(v4("255.255.255.254"), 10);
        assert_eq!(p.size, 2);
        assert!(p.lease().is_some() && p.lease().is_some());
        assert_eq!(p.lease(), None);
    }
}
