//! The seam between the driver and the operating system's packet path: a TUN device created
//! here (desktop), a TUN file descriptor handed over by the OS (Android `VpnService`, iOS
//! utun), or a pair of callbacks (iOS `NEPacketTunnelFlow`, the demo's userspace path).
//! The driver is generic over [`PacketIo`]; [`ChannelPackets`] is the callback flavour and
//! [`NoPackets`] runs the control plane alone.

use std::future::Future;
use std::io;

use tokio::sync::mpsc;

/// Where inner IP packets come from and go to.
pub trait PacketIo: Send {
    /// Waits for the next packet from the OS and copies it into `buf`; returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Hands one packet to the OS.
    fn send(&mut self, packet: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

/// No packet path: only IKE runs (`recv` never completes, `send` drops).
#[derive(Debug, Default)]
pub struct NoPackets;

impl PacketIo for NoPackets {
    async fn recv(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        std::future::pending().await
    }
    async fn send(&mut self, _packet: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Packets through channels: the app (or the demo) writes packets for the tunnel into
/// `to_tunnel` and reads decrypted packets from `from_tunnel`. Both are bounded; a full
/// `from_tunnel` drops the packet (as a full TUN queue would) rather than stalling IKE.
#[derive(Debug)]
pub struct ChannelPackets {
    to_tunnel: mpsc::Receiver<Vec<u8>>,
    from_tunnel: mpsc::Sender<Vec<u8>>,
}

/// The app's end of a [`ChannelPackets`].
#[derive(Debug)]
pub struct AppPackets {
    /// Packets for the tunnel (what the OS would read from a TUN).
    pub to_tunnel: mpsc::Sender<Vec<u8>>,
    /// Packets out of the tunnel (what the OS would write to a TUN).
    pub from_tunnel: mpsc::Receiver<Vec<u8>>,
}

impl ChannelPackets {
    /// A channel pair holding at most `depth` packets each way.
    pub fn new(depth: usize) -> (Self, AppPackets) {
        let (to_tx, to_rx) = mpsc::channel(depth);
        let (from_tx, from_rx) = mpsc::channel(depth);
        (
            Self {
                to_tunnel: to_rx,
                from_tunnel: from_tx,
            },
            AppPackets {
                to_tunnel: to_tx,
                from_tunnel: from_rx,
            },
        )
    }
}

impl PacketIo for ChannelPackets {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.to_tunnel.recv().await {
            Some(p) => {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                Ok(n)
            }
            // The app is gone: no more packets, but IKE goes on.
            None => std::future::pending().await,
        }
    }
    async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        if self.from_tunnel.try_send(packet.to_vec()).is_err() {
            log::debug!("app packet queue full or closed: dropping a packet");
        }
        Ok(())
    }
}
