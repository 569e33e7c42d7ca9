//! Which routes send traffic into the tunnel: the negotiated remote traffic selectors as IP
//! prefixes. A full tunnel (`0.0.0.0/0`, `::/0`) becomes two halves (`/1`) so it wins over the
//! default route without replacing it; an address range that is not a prefix becomes the
//! prefixes that cover it exactly. Ports and protocols cannot be routed: the session drops
//! what the selectors do not allow. Pure computation, no OS calls.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use roam_proto::wire::TrafficSelector;

/// An IP prefix: `addr/len`, `addr` with its host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// `addr/len` with the host bits cleared; `None` when `len` is too long for the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let bits = bits(addr);
        if len > bits {
            return None;
        }
        let host = host_mask(bits, len);
        Some(Self {
            addr: from_u128(addr, to_u128(addr) & !host),
            len,
        })
    }

    /// The prefix of one address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            len: bits(addr),
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let host = host_mask(bits(ip), self.len);
        to_u128(ip) & !host == to_u128(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The routes for `remote_ts`, in order, without repeats.
pub fn plan(remote_ts: &[TrafficSelector]) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = Vec::new();
    for ts in remote_ts {
        for p in covering(ts.start_addr, ts.end_addr) {
            let halves = split_default(p);
            for p in halves.into_iter().flatten() {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// A `/0` as its two halves; any other prefix as itself.
fn split_default(p: Prefix) -> [Option<Prefix>; 2] {
    if p.len != 0 {
        return [Some(p), None];
    }
    let bits = bits(p.addr);
    let upper = from_u128(p.addr, 1u128 << (bits - 1));
    [Prefix::new(p.addr, 1), Prefix::new(upper, 1)]
}

/// The fewest prefixes that cover exactly `start..=end` (nothing for a reversed range or
/// mixed families). At most 2 × 128 of them.
pub fn covering(start: IpAddr, end: IpAddr) -> Vec<Prefix> {
    if start.is_ipv4() != end.is_ipv4() {
        return Vec::new();
    }
    let bits = bits(start);
    let (mut lo, hi) = (to_u128(start), to_u128(end));
    let mut out = Vec::new();
    while lo <= hi {
        // The shortest prefix starting at `lo` that stays inside the range.
        let Some(len) = (0..=bits)
            .find(|&len| lo & host_mask(bits, len) == 0 && lo | host_mask(bits, len) <= hi)
        else {
            break;
        };
        out.push(Prefix {
            addr: from_u128(start, lo),
            len,
        });
        let last = lo | host_mask(bits, len);
        match last.checked_add(1) {
            Some(next) if last < max(bits) => lo = next,
            _ => break,
        }
    }
    out
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn max(bits: u8) -> u128 {
    host_mask(bits, 0)
}

/// The host bits of a `/len` in a `bits`-bit family.
fn host_mask(bits: u8, len: u8) -> u128 {
    let host = u32::from(bits.saturating_sub(len));
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of `like`'s family whose value is `v` (truncated to the family's width).
fn from_u128(like: IpAddr, v: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roam_proto::ike::child::ts_any;

    fn ts(start: &str, end: &str) -> TrafficSelector {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: start.parse().unwrap(),
            end_addr: end.parse().unwrap(),
        }
    }

    fn shown(p: &[Prefix]) -> Vec<String> {
        p.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_full_tunnel_is_split_in_halves() {
        assert_eq!(
            shown(&plan(&[ts_any(false), ts_any(true)])),
            ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]
        );
    }

    #[test]
    fn narrowed_selectors_are_their_prefixes() {
        assert_eq!(
            shown(&plan(&[
                ts("203.0.113.0", "203.0.113.255"),
                ts("198.51.100.7", "198.51.100.7"),
                ts("2001:db8:1::", "2001:db8:1::ffff"),
            ])),
            ["203.0.113.0/24", "198.51.100.7/32", "2001:db8:1::/112"]
        );
    }

    #[test]
    fn a_range_that_is_no_prefix_is_covered_exactly() {
        assert_eq!(
            shown(&covering(
                "192.0.2.1".parse().unwrap(),
                "192.0.2.10".parse().unwrap()
            )),
            [
                "192.0.2.1/32",
                "192.0.2.2/31",
                "192.0.2.4/30",
                "192.0.2.8/31",
                "192.0.2.10/32"
            ]
        );
        assert_eq!(
            shown(&covering(
                "0.0.0.0".parse().unwrap(),
                "255.255.255.254".parse().unwrap()
            ))
            .len(),
            32
        );
    }

    #[test]
    fn repeats_and_nonsense_are_skipped() {
        assert_eq!(
            shown(&plan(&[
                ts("203.0.113.0", "203.0.113.255"),
                ts("203.0.113.0", "203.0.113.255"),
                ts("203.0.113.9", "203.0.113.1"),
                ts("203.0.113.1", "2001:db8::1"),
            ])),
            ["203.0.113.0/24"]
        );
    }

    #[test]
    fn the_top_of_the_space_ends_the_walk() {
        assert_eq!(
            shown(&covering(
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe".parse().unwrap(),
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()
            )),
            ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"]
        );
        assert_eq!(
            shown(&covering(
                "255.255.255.255".parse().unwrap(),
                "255.255.255.255".parse().unwrap()
            )),
            ["255.255.255.255/32"]
        );
    }

    #[test]
    fn containment() {
        let p = Prefix::new("203.0.113.77".parse().unwrap(), 24).unwrap();
        assert_eq!(p.to_string(), "203.0.113.0/24");
        assert!(p.contains("203.0.113.2".parse().unwrap()));
        assert!(!p.contains("203.0.114.2".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let low = Prefix::new("0.0.0.0".parse().unwrap(), 1).unwrap();
        let high = Prefix::new("128.0.0.0".parse().unwrap(), 1).unwrap();
        assert!(!low.contains("198.51.100.1".parse().unwrap()));
        assert!(high.contains("198.51.100.1".parse().unwrap()));
        assert!(Prefix::new("::".parse().unwrap(), 0)
            .unwrap()
            .contains("2001:db8::1".parse().unwrap()));
        assert_eq!(Prefix::new("192.0.2.1".parse().unwrap(), 33), None);
        assert_eq!(
            Prefix::host("2001:db8::1".parse().unwrap()).to_string(),
            "2001:db8::1/128"
        );
    }

    proptest::proptest! {
        #[test]
        fn covering_is_exact_and_minimal_in_size(a: u32, b: u32) {
            let (lo, hi) = (a.min(b), a.max(b));
            let ps = covering(Ipv4Addr::from(lo).into(), Ipv4Addr::from(hi).into());
            proptest::prop_assert!(ps.len() <= 62);
            let mut next = u64::from(lo);
            for p in &ps {
                let IpAddr::V4(start) = p.addr else { unreachable!() };
                proptest::prop_assert_eq!(u64::from(u32::from(start)), next, "contiguous");
                next += 1u64 << (32 - u32::from(p.len));
            }
            proptest::prop_assert_eq!(next, u64::from(hi) + 1, "ends at the range's end");
        }
    }
}
