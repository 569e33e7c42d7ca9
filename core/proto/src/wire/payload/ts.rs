//! Traffic selector payloads TSi/TSr (RFC 7296 §3.13): IPv4 and IPv6 address ranges.
//! Selectors of other types are skipped on parse (their length still checked).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::consts::TsType;
use super::super::error::WireError;
use super::super::reader::Reader;
use super::TrafficSelector;

/// At most this many selectors in one TS payload.
pub const MAX_SELECTORS: usize = 64;

const V4_LEN: usize = 16;
const V6_LEN: usize = 40;

/// Parses the body of a TSi/TSr payload.
pub(crate) fn parse_ts(body: &[u8]) -> Result<Vec<TrafficSelector>, WireError> {
    let mut r = Reader::new(body, "TS payload");
    let count = usize::from(r.u8()?);
    r.skip(3)?;
    if count > MAX_SELECTORS {
        return Err(WireError::TooMany("traffic selectors"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = TsType(r.u8()?);
        let ip_protocol = r.u8()?;
        let len = usize::from(r.u16()?);
        if len < 4 {
            return Err(WireError::BadLength {
                what: "traffic selector",
                len,
            });
        }
        let rest = r.take(len - 4).map_err(|_| WireError::BadLength {
            what: "traffic selector",
            len,
        })?;
        let addr_len = match kind {
            TsType::TS_IPV4_ADDR_RANGE => V4_LEN,
            TsType::TS_IPV6_ADDR_RANGE => V6_LEN,
            _ => {
                log::debug!("skipping traffic selector of type {kind:?}");
                continue;
            }
        };
        if len != addr_len {
            return Err(WireError::BadLength {
                what: "traffic selector",
                len,
            });
        }
        let mut s = Reader::new(rest, "traffic selector");
        let start_port = s.u16()?;
        let end_port = s.u16()?;
        let (start_addr, end_addr) = if kind == TsType::TS_IPV4_ADDR_RANGE {
            (read_v4(&mut s)?, read_v4(&mut s)?)
        } else {
            (read_v6(&mut s)?, read_v6(&mut s)?)
        };
        out.push(TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        });
    }
    if !r.is_empty() {
        return Err(WireError::Invalid("data after the last traffic selector"));
    }
    Ok(out)
}

fn read_v4(r: &mut Reader<'_>) -> Result<IpAddr, WireError> {
    Ok(IpAddr::V4(Ipv4Addr::from(r.u32()?)))
}

fn read_v6(r: &mut Reader<'_>) -> Result<IpAddr, WireError> {
    let hi = u128::from(r.u64()?);
    let lo = u128::from(r.u64()?);
    Ok(IpAddr::V6(Ipv6Addr::from((hi << 64) | lo)))
}

/// Appends the body of a TS payload. The family of each selector is that of `start_addr`; an
/// `end_addr` of the other family (a caller bug) is written converted to that family.
pub(crate) fn write_ts(selectors: &[TrafficSelector], out: &mut Vec<u8>) {
    out.push(u8::try_from(selectors.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&[0, 0, 0]);
    for ts in selectors {
        let (kind, len) = match ts.start_addr {
            IpAddr::V4(_) => (TsType::TS_IPV4_ADDR_RANGE, V4_LEN),
            IpAddr::V6(_) => (TsType::TS_IPV6_ADDR_RANGE, V6_LEN),
        };
        out.push(kind.0);
        out.push(ts.ip_protocol);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&ts.start_port.to_be_bytes());
        out.extend_from_slice(&ts.end_port.to_be_bytes());
        match (ts.start_addr, ts.end_addr) {
            (IpAddr::V4(a), end) => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&as_v4(end).octets());
            }
            (IpAddr::V6(a), end) => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&as_v6(end).octets());
            }
        }
    }
}

fn as_v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a.to_ipv4().unwrap_or(Ipv4Addr::BROADCAST),
    }
}

fn as_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two selectors by hand: TCP 10.0.0.0-10.0.0.255 ports 0-65535, and all of IPv6.
    fn sample_bytes() -> Vec<u8> {
        let mut b = vec![2, 0, 0, 0];
        b.extend_from_slice(&[7, 6, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255]);
        b.extend_from_slice(&[8, 0, 0, 40, 0, 0, 0xff, 0xff]);
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&[0xff; 16]);
        b
    }

    fn sample() -> Vec<TrafficSelector> {
        vec![
            TrafficSelector {
                ip_protocol: 6,
                start_port: 0,
                end_port: 65535,
                start_addr: "10.0.0.0".parse().unwrap(),
                end_addr: "10.0.0.255".parse().unwrap(),
            },
            TrafficSelector {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                start_addr: "::".parse().unwrap(),
                end_addr: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            },
        ]
    }

    #[test]
    fn parses_and_writes_hand_made_bytes() {
        assert_eq!(parse_ts(&sample_bytes()).unwrap(), sample());
        let mut out = Vec::new();
        write_ts(&sample(), &mut out);
        assert_eq!(out, sample_bytes());
    }

    #[test]
    fn unknown_selector_types_are_skipped() {
        let mut b = sample_bytes();
        b[0] = 3;
        b.extend_from_slice(&[9, 0, 0, 6, 0xaa, 0xbb]);
        assert_eq!(parse_ts(&b).unwrap(), sample());
    }

    #[test]
    fn wrong_selector_lengths_are_rejected() {
        let mut b = sample_bytes();
        b[7] = 40; // IPv4 selector claiming the IPv6 length
        assert_eq!(
            parse_ts(&b),
            Err(WireError::BadLength {
                what: "traffic selector",
                len: 40
            })
        );
        let mut b = sample_bytes();
        b[7] = 3;
        assert_eq!(
            parse_ts(&b),
            Err(WireError::BadLength {
                what: "traffic selector",
                len: 3
            })
        );
        let mut b = sample_bytes();
        b[23] = 41; // IPv6 selector running past the payload
        assert_eq!(
            parse_ts(&b),
            Err(WireError::BadLength {
                what: "traffic selector",
                len: 41
            })
        );
        let mut b = sample_bytes();
        b[7] = 20;
        b[23] = 36;
        assert_eq!(
            parse_ts(&b),
            Err(WireError::BadLength {
                what: "traffic selector",
                len: 20
            })
        );
    }

    #[test]
    fn count_must_match() {
        let mut b = sample_bytes();
        b[0] = 3;
        assert!(matches!(parse_ts(&b), Err(WireError::Truncated { .. })));
        b[0] = 1;
        assert_eq!(
            parse_ts(&b),
            Err(WireError::Invalid("data after the last traffic selector"))
        );
    }

    #[test]
    fn too_many_selectors() {
        let mut b = vec![65, 0, 0, 0];
        b.extend_from_slice(&[0; 16 * 65]);
        assert_eq!(parse_ts(&b), Err(WireError::TooMany("traffic selectors")));
        let many = vec![sample()[0]; 64];
        let mut out = Vec::new();
        write_ts(&many, &mut out);
        assert_eq!(parse_ts(&out).unwrap(), many);
    }

    #[test]
    fn truncated_header() {
        assert!(matches!(
            parse_ts(&[1, 0, 0]),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(parse_ts(&[0, 0, 0, 0]).unwrap(), vec![]);
    }

    #[test]
    fn mixed_family_selector_is_written_in_the_start_family() {
        let mut ts = sample()[0];
        ts.end_addr = "::ffff:10.0.0.9".parse().unwrap();
        let mut out = Vec::new();
        write_ts(&[ts], &mut out);
        assert_eq!(
            parse_ts(&out).unwrap()[0].end_addr,
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }
}
