//! IP packet inspection for the data path: the addresses, protocol and ports of an IPv4 or
//! IPv6 packet, and whether traffic selectors allow it. Only headers are read; nothing is
//! copied or changed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::TrafficSelector;

/// What traffic selectors match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol (for IPv6, the first next header).
    pub protocol: u8,
    /// Source and destination ports of TCP, UDP and SCTP (first fragment only).
    pub ports: Option<(u16, u16)>,
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

fn ports(protocol: u8, l4: Option<&[u8]>) -> Option<(u16, u16)> {
    match (protocol, l4) {
        (TCP | UDP | SCTP, Some([a, b, c, d, ..])) => {
            Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])))
        }
        _ => None,
    }
}

/// Reads the flow of an IP packet; None if it is not a well-formed IPv4/IPv6 header.
pub fn flow(packet: &[u8]) -> Option<Flow> {
    match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            if ihl < 20 || packet.len() < ihl {
                return None;
            }
            let protocol = *packet.get(9)?;
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            let frag_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
            let l4 = if frag_offset == 0 {
                packet.get(ihl..)
            } else {
                None
            };
            Some(Flow {
                src: Ipv4Addr::from(src).into(),
                dst: Ipv4Addr::from(dst).into(),
                protocol,
                ports: ports(protocol, l4),
            })
        }
        6 => {
            let protocol = *packet.get(6)?;
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some(Flow {
                src: Ipv6Addr::from(src).into(),
                dst: Ipv6Addr::from(dst).into(),
                protocol,
                ports: ports(protocol, packet.get(40..)),
            })
        }
        _ => None,
    }
}

fn addr_in(ts: &TrafficSelector, a: IpAddr) -> bool {
    match (ts.start_addr, ts.end_addr, a) {
        (IpAddr::V4(s), IpAddr::V4(e), IpAddr::V4(a)) => {
            (u32::from(s)..=u32::from(e)).contains(&u32::from(a))
        }
        (IpAddr::V6(s), IpAddr::V6(e), IpAddr::V6(a)) => {
            (u128::from(s)..=u128::from(e)).contains(&u128::from(a))
        }
        _ => false,
    }
}

fn side_matches(ts: &TrafficSelector, addr: IpAddr, protocol: u8, port: Option<u16>) -> bool {
    let all_ports = ts.start_port == 0 && ts.end_port == u16::MAX;
    addr_in(ts, addr)
        && (ts.ip_protocol == 0 || ts.ip_protocol == protocol)
        && (all_ports || port.is_some_and(|p| (ts.start_port..=ts.end_port).contains(&p)))
}

/// Whether the selectors allow a packet of `flow`: its source within one of `src_ts`, its
/// destination within one of `dst_ts` (outbound: ours then the peer's; inbound: the reverse).
pub fn allowed(flow: &Flow, src_ts: &[TrafficSelector], dst_ts: &[TrafficSelector]) -> bool {
    let (sp, dp) = (flow.ports.map(|p| p.0), flow.ports.map(|p| p.1));
    src_ts
        .iter()
        .any(|t| side_matches(t, flow.src, flow.protocol, sp))
        && dst_ts
            .iter()
            .any(|t| side_matches(t, flow.dst, flow.protocol, dp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::child::{ts_any, ts_host, ts_prefix};

    fn v4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, UDP, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]);
        p
    }

    #[test]
    fn reads_ipv4_and_ipv6_flows() {
        let f = flow(&v4_udp([198, 18, 0, 1], [203, 0, 113, 2], 5000, 53)).unwrap();
        assert_eq!(f.src, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(f.ports, Some((5000, 53)));
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        v6.extend_from_slice(&"2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8:203::2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[128, 0, 0, 0, 0, 0, 0, 0]);
        let f = flow(&v6).unwrap();
        assert_eq!(f.protocol, 58);
        assert_eq!(f.ports, None);
        for bad in [
            &[][..],
            &[0x45][..],
            &[0x41, 0, 0, 0][..],
            &[0x70; 40][..],
            &v6[..30],
        ] {
            assert_eq!(flow(bad), None);
        }
    }

    #[test]
    fn selectors_decide() {
        let f = flow(&v4_udp([198, 18, 0, 1], [203, 0, 113, 2], 5000, 53)).unwrap();
        let local = [ts_host("198.18.0.1".parse().unwrap())];
        assert!(allowed(&f, &local, &[ts_any(false)]));
        assert!(allowed(
            &f,
            &local,
            &[ts_prefix("203.0.113.0".parse().unwrap(), 24)]
        ));
        assert!(!allowed(
            &f,
            &local,
            &[ts_prefix("192.0.2.0".parse().unwrap(), 24)]
        ));
        assert!(!allowed(
            &f,
            &[ts_host("198.18.0.9".parse().unwrap())],
            &[ts_any(false)]
        ));
        assert!(!allowed(&f, &local, &[ts_any(true)]), "family must match");
        let mut dns_only = ts_any(false);
        dns_only.ip_protocol = UDP;
        dns_only.start_port = 53;
        dns_only.end_port = 53;
        assert!(allowed(&f, &local, &[dns_only]));
        dns_only.start_port = 54;
        dns_only.end_port = 54;
        assert!(!allowed(&f, &local, &[dns_only]));
    }
}
