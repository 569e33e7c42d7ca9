//! The seam between the driver and the operating system's packet path: a TUN device created
//! here (desktop), a TUN file descriptor handed over by the OS (Android `VpnService`, iOS
//! utun), or a pair of callbacks (iOS `NEPacketTunnelFlow`, the demo's userspace path).
//! The driver is generic over [`PacketIo`]; [`ChannelPackets`] is the callback flavour and
//! [`NoPackets`] runs the control plane alone. A path that can move many packets per call (a
//! Linux TUN with offload) says so in its [`BatchShape`] and overrides
//! [`PacketIo::recv_batch`] / [`PacketIo::send_batch`]; the others move one packet per call.

use std::future::Future;
use std::io;

use tokio::sync::mpsc;

/// The largest inner packet a path without a known MTU may hand over.
pub const MAX_PACKET: usize = 65_535;
/// Most packets in one batch handed to a packet path. Sixteen keep a TUN's GRO writes at
/// about 22 KB each; more saves few system calls and costs memory (each slot can be the head
/// a whole batch coalesces into).
pub const MAX_SEND_SLOTS: usize = 16;

/// Where inner IP packets come from and go to.
pub trait PacketIo: Send {
    /// Waits for the next packet from the OS and copies it into `buf`; returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Hands one packet to the OS.
    fn send(&mut self, packet: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// The batches this path reads and writes (default: one packet per call, no headroom).
    fn batch_shape(&self) -> BatchShape {
        BatchShape::SINGLE
    }

    /// Waits for packets and reads what one call to the OS gives into `batch` (made with
    /// [`PacketBatch::for_recv`] from this path's shape): usually at least one packet, none
    /// when the OS gave something the path had to drop. Cancel-safe, like `recv`.
    fn recv_batch(
        &mut self,
        batch: &mut PacketBatch,
    ) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            batch.clear();
            let Some(slot) = batch.slot_mut(0) else {
                return Err(io::ErrorKind::InvalidInput.into());
            };
            let n = self.recv(slot).await?;
            batch.set_received(&[n]);
            Ok(())
        }
    }

    /// Hands every packet of `batch` (made with [`PacketBatch::for_send`]) to the OS and
    /// empties it; one packet's error does not stop the others (the last error is returned).
    fn send_batch(
        &mut self,
        batch: &mut PacketBatch,
    ) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            let mut result = Ok(());
            for i in 0..batch.len() {
                let Some(packet) = batch.packet(i) else {
                    continue;
                };
                if let Err(e) = self.send(packet).await {
                    result = Err(e);
                }
            }
            batch.clear();
            result
        }
    }
}

/// How a packet path batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    /// Packets one receive may return.
    pub slots: usize,
    /// The largest packet one slot holds.
    pub slot_len: usize,
    /// Headroom before each packet that the path's framing needs (a virtio-net header).
    pub offset: usize,
    /// Whether sending a batch beats sending packet by packet (then decrypted packets are
    /// copied into a send batch; otherwise they are sent from where they were decrypted).
    pub batched_send: bool,
}

impl BatchShape {
    /// One packet per call of up to [`MAX_PACKET`] bytes.
    pub const SINGLE: Self = Self {
        slots: 1,
        slot_len: MAX_PACKET,
        offset: 0,
        batched_send: false,
    };
}

/// Packets for one call to a packet path: `slots` buffers, each packet at `offset` in its
/// own. Allocated once; filling and emptying it allocates nothing.
#[derive(Debug)]
pub struct PacketBatch {
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    count: usize,
    offset: usize,
}

impl PacketBatch {
    /// Buffers to receive into: every slot `offset + slot_len` bytes long.
    pub fn for_recv(shape: BatchShape) -> Self {
        let slots = shape.slots.max(1);
        Self {
            bufs: (0..slots)
                .map(|_| vec![0; shape.offset + shape.slot_len])
                .collect(),
            sizes: vec![0; slots],
            count: 0,
            offset: shape.offset,
        }
    }

    /// Buffers to send from: empty slots (at most [`MAX_SEND_SLOTS`]), each with room for
    /// the headroom and the whole batch (up to 64 KB), so that a path coalescing the batch
    /// into one slot (TUN GRO) does not reallocate.
    pub fn for_send(shape: BatchShape) -> Self {
        let slots = shape.slots.clamp(1, MAX_SEND_SLOTS);
        let room = shape.slot_len.saturating_mul(slots).min(MAX_PACKET);
        Self {
            bufs: (0..slots)
                .map(|_| Vec::with_capacity(shape.offset + room))
                .collect(),
            sizes: vec![0; slots],
            count: 0,
            offset: shape.offset,
        }
    }

    /// How many packets it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= self.bufs.len()
    }

    /// The headroom before each packet.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Packet `i`.
    pub fn packet(&self, i: usize) -> Option<&[u8]> {
        if i >= self.count {
            return None;
        }
        let size = *self.sizes.get(i)?;
        self.bufs
            .get(i)?
            .get(self.offset..self.offset.checked_add(size)?)
    }

    /// Copies `packet` into the next slot (after the headroom); false when the batch is full.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let (Some(buf), Some(size)) = (
            self.bufs.get_mut(self.count),
            self.sizes.get_mut(self.count),
        ) else {
            return false;
        };
        buf.clear();
        buf.resize(self.offset, 0);
        buf.extend_from_slice(packet);
        *size = packet.len();
        self.count += 1;
        true
    }

    /// Copies `packet` into the next slot of a receive batch (its buffers keep their
    /// length); false when the batch is full or the packet does not fit a slot.
    pub fn put(&mut self, packet: &[u8]) -> bool {
        let offset = self.offset;
        let (Some(buf), Some(size)) = (
            self.bufs.get_mut(self.count),
            self.sizes.get_mut(self.count),
        ) else {
            return false;
        };
        let Some(dst) = buf
            .get_mut(offset..)
            .and_then(|b| b.get_mut(..packet.len()))
        else {
            return false;
        };
        dst.copy_from_slice(packet);
        *size = packet.len();
        self.count += 1;
        true
    }

    /// The room of slot `i` after the headroom (to receive one packet into).
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let offset = self.offset;
        self.bufs.get_mut(i)?.get_mut(offset..)
    }

    /// The slots and their sizes, for a path that fills or sends several at once.
    pub fn parts_mut(&mut self) -> (&mut [Vec<u8>], &mut [usize]) {
        (&mut self.bufs[..], &mut self.sizes[..])
    }

    /// The slots holding packets (to send them), for a path that sends several at once.
    pub fn filled_mut(&mut self) -> &mut [Vec<u8>] {
        let n = self.count.min(self.bufs.len());
        self.bufs.get_mut(..n).unwrap_or_default()
    }

    /// Records that a receive filled the first slots with packets of `sizes`.
    pub fn set_received(&mut self, sizes: &[usize]) {
        let n = sizes.len().min(self.sizes.len());
        for (dst, &src) in self.sizes.iter_mut().zip(sizes) {
            *dst = src;
        }
        self.count = n;
    }

    /// Records that a receive into [`PacketBatch::parts_mut`] filled its first `n` slots.
    pub fn set_count(&mut self, n: usize) {
        self.count = n.min(self.bufs.len());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_batch_copies_after_the_headroom_until_full() {
        let shape = BatchShape {
            slots: 2,
            slot_len: 100,
            offset: 10,
            batched_send: true,
        };
        let mut b = PacketBatch::for_send(shape);
        assert!(b.push(&[1; 40]));
        assert!(b.push(&[2; 1400])); // a send slot is not limited to `slot_len`
        assert!(b.is_full());
        assert!(!b.push(&[3; 5]));
        assert_eq!(b.packet(0), Some(&[1u8; 40][..]));
        assert_eq!(b.packet(1).map(<[u8]>::len), Some(1400));
        assert!(b.packet(2).is_none());
        // Each slot starts with the headroom the device's header goes into.
        assert!(b.filled_mut().iter().all(|s| s.len() >= 10));
        b.clear();
        assert!(b.is_empty() && b.packet(0).is_none());
    }

    #[test]
    fn a_receive_batch_keeps_its_slots_and_refuses_what_does_not_fit() {
        let shape = BatchShape {
            slots: 2,
            slot_len: 100,
            offset: 10,
            batched_send: false,
        };
        let mut b = PacketBatch::for_recv(shape);
        assert_eq!(b.slot_mut(0).map(|s| s.len()), Some(100));
        assert!(!b.put(&[9; 101]));
        assert!(b.put(&[7; 100]));
        assert_eq!(b.packet(0), Some(&[7u8; 100][..]));
        b.set_received(&[3, 4, 5]); // more sizes than slots: cut
        assert_eq!(b.len(), 2);
        assert_eq!(b.packet(1).map(<[u8]>::len), Some(4));
        assert!(b.slot_mut(2).is_none());
    }

    /// A path that fails every other packet.
    struct Flaky {
        sent: Vec<Vec<u8>>,
    }

    impl PacketIo for Flaky {
        async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf[..3].copy_from_slice(&[1, 2, 3]);
            Ok(3)
        }
        async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
            if packet[0] % 2 == 1 {
                return Err(io::ErrorKind::Other.into());
            }
            self.sent.push(packet.to_vec());
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_default_batch_calls_move_one_packet_each_and_go_on_after_errors() {
        let mut path = Flaky { sent: Vec::new() };
        assert_eq!(path.batch_shape(), BatchShape::SINGLE);
        let mut rx = PacketBatch::for_recv(path.batch_shape());
        path.recv_batch(&mut rx).await.unwrap();
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.packet(0), Some(&[1u8, 2, 3][..]));

        let mut tx = PacketBatch::for_send(BatchShape {
            slots: 4,
            ..BatchShape::SINGLE
        });
        for first in 0..4u8 {
            assert!(tx.push(&[first, 0]));
        }
        assert!(path.send_batch(&mut tx).await.is_err());
        assert_eq!(path.sent, [vec![0, 0], vec![2, 0]]);
        assert!(tx.is_empty());
    }
}
