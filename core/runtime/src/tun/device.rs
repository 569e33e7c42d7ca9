//! The TUN device itself (tun-rs, tokio): created here with a name and an MTU, or adopted
//! from a file descriptor the OS handed over (Android `VpnService`, iOS utun). It is the
//! driver's [`PacketIo`], batching through [`OffloadTun`] (a created device has offload on: TSO
//! reads, GRO writes; an adopted one moves a packet per call). A created device is not persistent: the kernel removes it, and every
//! route through it, when its last descriptor closes (also when the process is killed).

use std::io;
use std::os::fd::RawFd;

use super::offload::OffloadTun;
use crate::packet_io::{BatchShape, PacketBatch, PacketIo};

/// An open TUN device carrying raw IP packets (no packet-information header).
pub struct TunDevice {
    device: OffloadTun,
    name: String,
    index: u32,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("index", &self.index)
            .finish()
    }
}

impl TunDevice {
    /// Creates (non-persistent) and brings up the TUN device `name` with `mtu`. Needs
    /// CAP_NET_ADMIN. Addresses and routes are the caller's (see `tun::Tun`).
    pub fn create(name: &str, mtu: u16) -> io::Result<Self> {
        let device = tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .packet_information(false)
            .offload(super::offload::wanted())
            .enable(true)
            .build_async()?;
        Self::wrap(device)
    }

    /// Adopts an open TUN descriptor (its addresses and routes are already set, by the OS).
    /// The device takes ownership: dropping it closes `fd`.
    ///
    /// # Safety
    /// `fd` must be an open descriptor of a TUN device that nothing else owns or closes, set
    /// up for raw IP packets (Linux: `IFF_TUN | IFF_NO_PI`, without `IFF_VNET_HDR`), as
    /// Android's `ParcelFileDescriptor.detachFd()` gives one.
    pub unsafe fn from_fd(fd: RawFd) -> io::Result<Self> {
        // SAFETY: the caller guarantees that `fd` is an open, unowned TUN descriptor with raw
        // IP framing, which is what tun-rs's `from_fd` requires; ownership moves to it.
        let device = unsafe { tun_rs::AsyncDevice::from_fd(fd)? };
        Self::wrap(device)
    }

    fn wrap(device: tun_rs::AsyncDevice) -> io::Result<Self> {
        let name = device.name()?;
        let index = device.if_index()?;
        let device = OffloadTun::new(device);
        log::debug!("TUN {name}: offload {}", device.offload());
        Ok(Self {
            device,
            name,
            index,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index (for routes).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The interface MTU.
    pub fn mtu(&self) -> io::Result<u16> {
        self.device.device().mtu()
    }
}

impl PacketIo for TunDevice {
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
