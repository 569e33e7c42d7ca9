//! NAT detection (RFC 7296 §2.23): the NAT_DETECTION_*_IP hashes, and what they tell.

use std::net::{IpAddr, SocketAddr};

use sha1::{Digest, Sha1};

/// SHA-1(SPIi | SPIr | IP address | port), as carried in the NAT detection notifies.
pub fn hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().into()
}

/// What the peer's NAT detection notifies showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatState {
    /// The peer supports NAT traversal (sent the notifies).
    pub supported: bool,
    /// Our address as the peer saw it differs from ours: we are behind a NAT.
    pub local_behind_nat: bool,
    /// The peer's address differs from what it claims: it is behind a NAT.
    pub remote_behind_nat: bool,
}

impl NatState {
    /// Evaluates the peer's notifies. `source_hashes` are the peer's NAT_DETECTION_SOURCE_IP
    /// data (any one may match `remote`), `dest_hashes` its NAT_DETECTION_DESTINATION_IP data.
    pub fn evaluate(
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        source_hashes: &[&[u8]],
        dest_hashes: &[&[u8]],
    ) -> Self {
        if source_hashes.is_empty() || dest_hashes.is_empty() {
            return Self::default();
        }
        let ours = hash(spi_i, spi_r, local);
        let theirs = hash(spi_i, spi_r, remote);
        Self {
            supported: true,
            local_behind_nat: !dest_hashes.iter().any(|h| *h == ours),
            remote_behind_nat: !source_hashes.iter().any(|h| *h == theirs),
        }
    }

    /// Whether there is a NAT anywhere on the path (then ESP goes in UDP).
    pub fn any(&self) -> bool {
        self.local_behind_nat || self.remote_behind_nat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_side() {
        let l: SocketAddr = "198.51.100.2:40000".parse().unwrap();
        let r: SocketAddr = "198.51.100.1:500".parse().unwrap();
        let nat_l: SocketAddr = "192.0.2.130:1024".parse().unwrap();
        let (i, rr) = (1u64, 2u64);
        let src = hash(i, rr, r);
        let dst = hash(i, rr, l);
        let none = NatState::evaluate(i, rr, l, r, &[&src], &[&dst]);
        assert!(none.supported && !none.any());
        let dst_nat = hash(i, rr, nat_l);
        let behind = NatState::evaluate(i, rr, l, r, &[&src], &[&dst_nat]);
        assert!(behind.local_behind_nat && !behind.remote_behind_nat);
        assert!(!NatState::evaluate(i, rr, l, r, &[], &[]).supported);
    }
}
