//! The echo's packets: probes (ICMP and ICMPv6 echo requests, UDP datagrams, each carrying a
//! 4-byte tag), the reply the echo answers with (addresses swapped, ICMP type 0 / ICMPv6 type
//! 129, UDP ports swapped, checksums recomputed), and the check that a reply is well formed.
//! RFC 1071 checksums; no options or extension headers. Packets come out of a tunnel:
//! malformed ones yield `None`, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ICMP: u8 = 1;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const TTL: u8 = 64;
/// The port the server side echoes UDP on (the echo service).
pub const ECHO_PORT: u16 = 7;

/// What kind of probe a packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Icmp,
    Udp,
    Icmp6,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Icmp => "ICMP echo",
            Self::Udp => "UDP",
            Self::Icmp6 => "ICMPv6 echo",
        })
    }
}

/// RFC 1071: the one's complement sum of `data` (as 16-bit big-endian words) added to `acc`.
fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The sum of the pseudo-header that UDP and ICMPv6 checksums cover.
fn pseudo(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u64 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum(&s.octets(), acc);
            acc = sum(&d.octets(), acc);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = sum(&s.octets(), acc);
            acc = sum(&d.octets(), acc);
        }
        _ => {}
    }
    acc + u64::from(protocol) + len as u64
}

/// An IP packet's layout: header length, addresses and upper-layer protocol.
struct Ip {
    header: usize,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
}

fn parse(p: &[u8]) -> Option<Ip> {
    match p.first()? >> 4 {
        4 => {
            let header = usize::from(p.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
            if header < 20 || total != p.len() || total < header {
                return None;
            }
            let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some(Ip {
                header,
                src: Ipv4Addr::from(src).into(),
                dst: Ipv4Addr::from(dst).into(),
                protocol: *p.get(9)?,
            })
        }
        6 => {
            let payload = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
            if payload + 40 != p.len() {
                return None;
            }
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some(Ip {
                header: 40,
                src: Ipv6Addr::from(src).into(),
                dst: Ipv6Addr::from(dst).into(),
                protocol: *p.get(6)?,
            })
        }
        _ => None,
    }
}

fn put16(p: &mut [u8], at: usize, v: u16) -> Option<()> {
    p.get_mut(at..at + 2)?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// Rewrites every checksum of `p` (IPv4 header, ICMP, UDP, ICMPv6).
fn fix_checksums(p: &mut [u8]) -> Option<()> {
    let ip = parse(p)?;
    let h = ip.header;
    let l4_len = p.len().checked_sub(h)?;
    let at = match ip.protocol {
        ICMP | ICMPV6 => h + 2,
        UDP => h + 6,
        _ => return None,
    };
    put16(p, at, 0)?;
    let base = match ip.protocol {
        ICMP => 0,
        _ => pseudo(ip.src, ip.dst, ip.protocol, l4_len),
    };
    let mut c = fold(sum(p.get(h..)?, base));
    if ip.protocol == UDP && c == 0 {
        c = 0xffff;
    }
    put16(p, at, c)?;
    if p.first()? >> 4 == 4 {
        put16(p, 10, 0)?;
        let c = fold(sum(p.get(..h)?, 0));
        put16(p, 10, c)?;
    }
    Some(())
}

/// Whether every checksum of `p` verifies.
fn checksums_ok(p: &[u8]) -> bool {
    let Some(ip) = parse(p) else { return false };
    let h = ip.header;
    let Some(l4) = p.get(h..) else { return false };
    let ip_ok = p.first().is_some_and(|v| v >> 4 == 6)
        || p.get(..h).is_some_and(|hdr| fold(sum(hdr, 0)) == 0);
    let base = match ip.protocol {
        ICMP => 0,
        _ => pseudo(ip.src, ip.dst, ip.protocol, l4.len()),
    };
    ip_ok && fold(sum(l4, base)) == 0
}

fn ip_header(src: IpAddr, dst: IpAddr, protocol: u8, l4_len: usize) -> Option<Vec<u8>> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + l4_len).ok()?;
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, TTL, protocol, 0, 0];
            h.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            Some(h)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(l4_len).ok()?;
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[protocol, TTL]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            Some(h)
        }
        _ => None,
    }
}

/// A probe from `src` to `dst` carrying `tag` and `pad` bytes of padding: an ICMP (or ICMPv6)
/// echo request, or a UDP datagram to the echo port. None when the families differ.
pub fn probe(kind: Kind, src: IpAddr, dst: IpAddr, tag: u32, pad: usize) -> Option<Vec<u8>> {
    let mut l4 = match kind {
        Kind::Icmp | Kind::Icmp6 => {
            let t = if kind == Kind::Icmp {
                ECHO_REQUEST
            } else {
                ECHO_REQUEST_V6
            };
            // Identifier 0x526d ("Rm"), sequence number: the tag's low half.
            let mut v = vec![t, 0, 0, 0, 0x52, 0x6d];
            v.extend_from_slice(&(tag as u16).to_be_bytes());
            v
        }
        Kind::Udp => {
            let sport = 40_000 + (tag % 20_000) as u16;
            let mut v = sport.to_be_bytes().to_vec();
            v.extend_from_slice(&ECHO_PORT.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
            v
        }
    };
    l4.extend_from_slice(&tag.to_be_bytes());
    l4.extend((0..pad).map(|i| i as u8));
    if kind == Kind::Udp {
        let len = u16::try_from(l4.len()).ok()?;
        put16(&mut l4, 4, len)?;
    }
    let protocol = match kind {
        Kind::Icmp => ICMP,
        Kind::Udp => UDP,
        Kind::Icmp6 => ICMPV6,
    };
    let mut p = ip_header(src, dst, protocol, l4.len())?;
    p.extend_from_slice(&l4);
    fix_checksums(&mut p)?;
    Some(p)
}

/// The echo of a probe: addresses (and UDP ports) swapped, ICMP echo request -> reply,
/// checksums recomputed. None for anything else.
pub fn echo_reply(request: &[u8]) -> Option<Vec<u8>> {
    let ip = parse(request)?;
    let h = ip.header;
    let mut p = request.to_vec();
    match ip.protocol {
        ICMP if *request.get(h)? == ECHO_REQUEST => *p.get_mut(h)? = ECHO_REPLY,
        ICMPV6 if *request.get(h)? == ECHO_REQUEST_V6 => *p.get_mut(h)? = ECHO_REPLY_V6,
        UDP => {
            let ports: [u8; 4] = request.get(h..h + 4)?.try_into().ok()?;
            p.get_mut(h..h + 2)?.copy_from_slice(ports.get(2..4)?);
            p.get_mut(h + 2..h + 4)?.copy_from_slice(ports.get(..2)?);
        }
        _ => return None,
    }
    let (src, dst, ttl_at) = match (ip.src, ip.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (12..16, 16..20, 8),
        _ => (8..24, 24..40, 7),
    };
    let s = request.get(src.clone())?.to_vec();
    let d = request.get(dst.clone())?.to_vec();
    p.get_mut(src)?.copy_from_slice(&d);
    p.get_mut(dst)?.copy_from_slice(&s);
    *p.get_mut(ttl_at)? = TTL;
    fix_checksums(&mut p)?;
    Some(p)
}

/// The kind and tag of a well-formed echo reply (checksums verified); None for anything else.
pub fn reply_tag(p: &[u8]) -> Option<(Kind, u32)> {
    if !checksums_ok(p) {
        return None;
    }
    let ip = parse(p)?;
    let h = ip.header;
    let kind = match (ip.protocol, *p.get(h)?) {
        (ICMP, ECHO_REPLY) => Kind::Icmp,
        (ICMPV6, ECHO_REPLY_V6) => Kind::Icmp6,
        (UDP, _) if p.get(h..h + 2)? == ECHO_PORT.to_be_bytes() => Kind::Udp,
        _ => return None,
    };
    let tag: [u8; 4] = p.get(h + 8..h + 12)?.try_into().ok()?;
    Some((kind, u32::from_be_bytes(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (complement 220d).
        assert_eq!(
            fold(sum(&[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            !0xddf2
        );
    }

    #[test]
    fn known_icmp_echo_checksum() {
        // An ICMP echo request (id 1, seq 1, no data) has checksum f7fd.
        let mut p = vec![8, 0, 0, 0, 0, 1, 0, 1];
        let c = fold(sum(&p, 0));
        assert_eq!(c, 0xf7fd);
        p[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(fold(sum(&p, 0)), 0);
    }

    #[test]
    fn every_probe_echoes_back_with_its_tag() {
        let cases = [
            (Kind::Icmp, a("198.18.0.1"), a("203.0.113.1")),
            (Kind::Udp, a("198.18.0.1"), a("203.0.113.1")),
            (Kind::Icmp6, a("2001:db8:ffff::1"), a("2001:db8:203::1")),
            (Kind::Udp, a("2001:db8:ffff::1"), a("2001:db8:203::1")),
        ];
        for (i, (kind, src, dst)) in cases.into_iter().enumerate() {
            for pad in [0, 1, 55, 1000] {
                let tag = 0x1000 + i as u32;
                let req = probe(kind, src, dst, tag, pad).unwrap();
                assert!(checksums_ok(&req), "{kind} request");
                assert_eq!(reply_tag(&req), None, "a request is not a reply");
                let rep = echo_reply(&req).unwrap();
                assert_eq!(reply_tag(&rep), Some((kind, tag)), "{kind} pad {pad}");
                let ip = parse(&rep).unwrap();
                assert_eq!((ip.src, ip.dst), (dst, src));
                // A flipped bit breaks a checksum.
                let mut bad = rep.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert_eq!(reply_tag(&bad), None);
            }
        }
        assert_eq!(
            probe(Kind::Icmp, a("198.18.0.1"), a("2001:db8::1"), 1, 0),
            None
        );
    }

    #[test]
    fn junk_is_not_echoed() {
        for junk in [&[][..], &[0x45][..], &[0x60; 39][..], &[0x45; 20][..]] {
            assert_eq!(echo_reply(junk), None);
            assert_eq!(reply_tag(junk), None);
        }
        let reply =
            echo_reply(&probe(Kind::Icmp, a("198.18.0.1"), a("203.0.113.1"), 5, 8).unwrap())
                .unwrap();
        assert_eq!(echo_reply(&reply), None, "replies are not answered");
    }
}
