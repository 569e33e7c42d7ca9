//! The server's TUN device (`roam serve`): created with the server's own pool addresses and
//! their prefixes, so the kernel routes each pool into it; a [`PacketIo`] for the server loop.
//! Closing it (dropping it) removes the device and its routes. The device is Linux only
//! (tun-rs); the settings are everywhere.

#[cfg(target_os = "linux")]
use std::io;
use std::net::IpAddr;

#[cfg(target_os = "linux")]
use crate::packet_io::{BatchShape, PacketBatch, PacketIo};
#[cfg(target_os = "linux")]
use crate::tun::offload::OffloadTun;

/// What the TUN is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunSettings {
    pub name: String,
    pub mtu: u16,
    /// The server's own addresses with the prefix length of their pool (the kernel adds the
    /// pool's route with each).
    pub addresses: Vec<(IpAddr, u8)>,
}

impl TunSettings {
    /// The routes the addresses bring: each pool's network.
    pub fn routes(&self) -> Vec<(IpAddr, u8)> {
        self.addresses
            .iter()
            .map(|&(a, p)| (network(a, p), p))
            .collect()
    }

    /// `tun name=roams0 mtu=1400 addresses=198.18.0.1/24,... routes=198.18.0.0/24,...`
    pub fn status_line(&self) -> String {
        let list = |v: &[(IpAddr, u8)]| {
            v.iter()
                .map(|(a, p)| format!("{a}/{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "tun name={} mtu={} addresses={} routes={}",
            self.name,
            self.mtu,
            list(&self.addresses),
            list(&self.routes())
        )
    }
}

/// The network address of `a` under a `prefix`-bit mask.
pub fn network(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v4) => {
            let p = u32::from(prefix.min(32));
            let mask = u32::MAX.checked_shl(32 - p).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let p = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - p).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// The server's TUN device.
#[cfg(target_os = "linux")]
pub struct ServerTun {
    device: OffloadTun,
    name: String,
}

#[cfg(target_os = "linux")]
impl ServerTun {
    /// Creates the device, sets its MTU and addresses and brings it up (needs CAP_NET_ADMIN).
    pub fn create(s: &TunSettings) -> io::Result<Self> {
        let mut b = tun_rs::DeviceBuilder::new().name(&s.name).mtu(s.mtu);
        for &(a, p) in &s.addresses {
            b = match a {
                IpAddr::V4(v4) => b.ipv4(v4, p, None),
                IpAddr::V6(v6) => b.ipv6(v6, p),
            };
        }
        let device = b
            .offload(crate::tun::offload::wanted())
            .enable(true)
            .build_async()?;
        let name = device.name().unwrap_or_else(|_| s.name.clone());
        let device = OffloadTun::new(device);
        log::info!(
            "TUN {name} up (offload {}): {}",
            device.offload(),
            s.status_line()
        );
        Ok(Self { device, name })
    }

    /// The device's name as the kernel has it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(target_os = "linux")]
impl std::fmt::Debug for ServerTun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTun")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(target_os = "linux")]
impl PacketIo for ServerTun {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.device.recv(buf).await
    }
    async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.device.send(packet).await
    }
    fn batch_shape(&self) -> BatchShape {
        self.device.shape()
    }
    async fn recv_batch(&mut self, batch: &mut PacketBatch) -> io::Result<()> {
        self.device.recv_batch(batch).await
    }
    async fn send_batch(&mut self, batch: &mut PacketBatch) -> io::Result<()> {
        self.device.send_batch(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_pools_networks() {
        let s = TunSettings {
            name: "roams0".into(),
            mtu: 1400,
            addresses: vec![
                ("198.18.0.1".parse().unwrap(), 24),
                ("2001:db8:ffff::1".parse().unwrap(), 112),
            ],
        };
        assert_eq!(
            s.status_line(),
            "tun name=roams0 mtu=1400 addresses=198.18.0.1/24,2001:db8:ffff::1/112 \
             routes=198.18.0.0/24,2001:db8:ffff::/112"
        );
        assert_eq!(
            network("10.1.2.3".parse().unwrap(), 0),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            network("10.1.2.3".parse().unwrap(), 32),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }
}
