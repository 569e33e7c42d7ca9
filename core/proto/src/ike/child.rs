//! A CHILD SA as IKE negotiates it: the chosen ESP proposal, the SPIs, the keys by direction
//! and the traffic selectors. The ESP data plane uses it; IKE creates, rekeys and deletes it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::crypto::keymat::derive_child_keys_hybrid;
use crate::crypto::prf::Prf;
use crate::crypto::proposal::Selected;
use crate::crypto::sk::SkCipher;
use crate::crypto::{CryptoError, Secret};
use crate::ike::keys::Role;
use crate::wire::TrafficSelector;

/// An established CHILD SA.
#[derive(Debug, Clone)]
pub struct ChildSa {
    pub selected: Selected,
    /// The SPI the peer puts on packets to us.
    pub spi_in: u32,
    /// The SPI we put on packets to the peer.
    pub spi_out: u32,
    pub encr_in: Secret,
    pub integ_in: Secret,
    pub encr_out: Secret,
    pub integ_out: Secret,
    /// Our side's selectors (the initiator's TSi when we initiated).
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
}

impl ChildSa {
    /// Derives the CHILD SA's keys (RFC 7296 §2.17) and arranges them for `role`.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        role: Role,
        prf: Prf,
        sk_d: &[u8],
        g_ir: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        selected: Selected,
        spi_in: u32,
        spi_out: u32,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    ) -> Result<Self, CryptoError> {
        Self::derive_hybrid(
            role,
            prf,
            sk_d,
            g_ir,
            &[],
            ni,
            nr,
            selected,
            spi_in,
            spi_out,
            ts_local,
            ts_remote,
        )
    }

    /// Like [`ChildSa::derive`], with the shared secrets of the additional key exchanges
    /// (IKE_FOLLOWUP_KE, RFC 9370 §2.2.4) after the nonces.
    #[allow(clippy::too_many_arguments)]
    pub fn derive_hybrid(
        role: Role,
        prf: Prf,
        sk_d: &[u8],
        g_ir: Option<&[u8]>,
        additional: &[&[u8]],
        ni: &[u8],
        nr: &[u8],
        selected: Selected,
        spi_in: u32,
        spi_out: u32,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    ) -> Result<Self, CryptoError> {
        let encr_len = SkCipher::encr_key_len(selected.encr, selected.key_bits)?;
        let integ_len = SkCipher::integ_key_len(selected.integ)?;
        let k = derive_child_keys_hybrid(prf, sk_d, g_ir, additional, ni, nr, encr_len, integ_len)?;
        let (encr_out, integ_out, encr_in, integ_in) = match role {
            Role::Initiator => (
                k.encr_i.clone(),
                k.integ_i.clone(),
                k.encr_r.clone(),
                k.integ_r.clone(),
            ),
            Role::Responder => (
                k.encr_r.clone(),
                k.integ_r.clone(),
                k.encr_i.clone(),
                k.integ_i.clone(),
            ),
        };
        Ok(Self {
            selected,
            spi_in,
            spi_out,
            encr_in,
            integ_in,
            encr_out,
            integ_out,
            ts_local,
            ts_remote,
        })
    }
}

/// A random ESP SPI for our inbound side (1..=255 are reserved, RFC 4303 §2.1).
pub fn random_spi(rng: &mut dyn crate::rng::Rng) -> u32 {
    loop {
        let spi = (rng.next_u64() >> 32) as u32;
        if spi >= 256 {
            return spi;
        }
    }
}

/// Every address and port of one family: what a road-warrior client asks for.
pub fn ts_any(v6: bool) -> TrafficSelector {
    if v6 {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            end_addr: IpAddr::V6(Ipv6Addr::from(u128::MAX)),
        }
    } else {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            end_addr: IpAddr::V4(Ipv4Addr::BROADCAST),
        }
    }
}

/// The selector of one host address, all protocols and ports.
pub fn ts_host(addr: IpAddr) -> TrafficSelector {
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start_addr: addr,
        end_addr: addr,
    }
}

/// The selector of a CIDR prefix (`prefix` bits), all protocols and ports.
pub fn ts_prefix(addr: IpAddr, prefix: u8) -> TrafficSelector {
    let (start, end) = match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            (
                IpAddr::V4((bits & mask).into()),
                IpAddr::V4((bits | !mask).into()),
            )
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            (
                IpAddr::V6((bits & mask).into()),
                IpAddr::V6((bits | !mask).into()),
            )
        }
    };
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start_addr: start,
        end_addr: end,
    }
}

/// Whether `inner` lies within `outer` (same family, address, port and protocol ranges).
pub fn ts_contains(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    let fam = |a: &IpAddr| a.is_ipv6();
    fam(&outer.start_addr) == fam(&inner.start_addr)
        && (outer.ip_protocol == 0 || outer.ip_protocol == inner.ip_protocol)
        && outer.start_port <= inner.start_port
        && inner.end_port <= outer.end_port
        && addr_le(&outer.start_addr, &inner.start_addr)
        && addr_le(&inner.end_addr, &outer.end_addr)
}

fn addr_le(a: &IpAddr, b: &IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(*a) <= u32::from(*b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(*a) <= u128::from(*b),
        _ => false,
    }
}

/// Formats a selector like strongSwan: `198.18.0.1/32`, `0.0.0.0/0`, or a range.
pub fn ts_to_string(ts: &TrafficSelector) -> String {
    let prefix = match (ts.start_addr, ts.end_addr) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            prefix_len(u128::from(u32::from(s)), u128::from(u32::from(e)), 32)
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => prefix_len(u128::from(s), u128::from(e), 128),
        _ => None,
    };
    match prefix {
        Some(p) => format!("{}/{}", ts.start_addr, p),
        None => format!("{}..{}", ts.start_addr, ts.end_addr),
    }
}

fn prefix_len(start: u128, end: u128, bits: u32) -> Option<u32> {
    let host = start ^ end;
    let host_bits = 128 - host.leading_zeros();
    let full = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (host == full && start & full == 0 && host_bits <= bits).then_some(bits - host_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_containment() {
        let net = ts_prefix("203.0.113.77".parse().unwrap(), 24);
        assert_eq!(ts_to_string(&net), "203.0.113.0/24");
        assert_eq!(ts_to_string(&ts_any(false)), "0.0.0.0/0");
        assert_eq!(ts_to_string(&ts_any(true)), "::/0");
        let host = ts_host("203.0.113.2".parse().unwrap());
        assert_eq!(ts_to_string(&host), "203.0.113.2/32");
        assert!(ts_contains(&net, &host));
        assert!(ts_contains(&ts_any(false), &net));
        assert!(!ts_contains(&net, &ts_any(false)));
        assert!(!ts_contains(&ts_any(true), &net), "families differ");
    }
}
