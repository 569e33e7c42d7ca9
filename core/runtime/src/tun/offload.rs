//! A tun-rs device as a batching packet path. Created with offload (`IFF_VNET_HDR`, TSO and
//! checksum offload), one read returns a TCP super-packet of up to 64 KB that tun-rs splits
//! into MTU-size packets, and a batch of decrypted packets is coalesced (TCP/UDP GRO) into a
//! few large writes. Without offload (an adopted descriptor) it is one packet per call.
//! Linux only; used by the client's [`super::TunDevice`] and the server's TUN.

use std::io::{self, IoSlice};

use tun_rs::{AsyncDevice, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use crate::packet_io::{BatchShape, PacketBatch, MAX_PACKET};

/// Whether to create TUN devices with offload: yes unless `ROAM_TUN_OFFLOAD=0` (to measure
/// without it, or to step around a kernel that mishandles it).
pub fn wanted() -> bool {
    std::env::var("ROAM_TUN_OFFLOAD").map_or(true, |v| v != "0")
}

/// A TUN device and what batching it needs.
pub struct OffloadTun {
    device: AsyncDevice,
    /// Offload is on: every read and write carries a virtio-net header.
    vnet: bool,
    /// The largest packet the device hands over (its MTU), for sizing batches.
    mtu: usize,
    /// One raw read (header + super-packet), split into a batch.
    raw: Vec<u8>,
    gro: GROTable,
    /// Packets of a read split for `recv`, handed out one by one (allocated on first use).
    pending: Option<PacketBatch>,
    next: usize,
}

impl std::fmt::Debug for OffloadTun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffloadTun")
            .field("vnet", &self.vnet)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

impl OffloadTun {
    pub fn new(device: AsyncDevice) -> Self {
        let vnet = device.tcp_gso();
        let mtu = device.mtu().map_or(MAX_PACKET, usize::from);
        Self {
            device,
            vnet,
            mtu,
            raw: if vnet {
                vec![0; VIRTIO_NET_HDR_LEN + MAX_PACKET]
            } else {
                Vec::new()
            },
            gro: GROTable::new(),
            pending: None,
            next: 0,
        }
    }

    pub fn device(&self) -> &AsyncDevice {
        &self.device
    }

    /// Whether offload (virtio-net headers, TSO/GRO) is on.
    pub fn offload(&self) -> bool {
        self.vnet
    }

    pub fn shape(&self) -> BatchShape {
        if !self.vnet {
            return BatchShape {
                slot_len: self.mtu.max(1280),
                ..BatchShape::SINGLE
            };
        }
        // Room for an MTU-size packet and then some (the kernel may send a little more).
        let slot_len = self.mtu.max(1280) + 256;
        BatchShape {
            // A 64 KB super-packet splits into at most 64 KB / segment packets, a segment
            // being the MTU less the IP and TCP headers (at most 120 bytes): 53 at MTU 1400.
            // More slots would be memory no read touches.
            slots: (MAX_PACKET / self.mtu.saturating_sub(120).max(512) + 2).min(IDEAL_BATCH_SIZE),
            slot_len,
            offset: VIRTIO_NET_HDR_LEN,
            batched_send: true,
        }
    }

    pub async fn recv_batch(&mut self, batch: &mut PacketBatch) -> io::Result<()> {
        batch.clear();
        if !self.vnet {
            let Some(slot) = batch.slot_mut(0) else {
                return Err(io::ErrorKind::InvalidInput.into());
            };
            let n = self.device.recv(slot).await?;
            batch.set_received(&[n]);
            return Ok(());
        }
        if self.pending_left() > 0 {
            // Packets split for `recv` earlier go first.
            while let Some(p) = self.pending.as_ref().and_then(|b| b.packet(self.next)) {
                if !batch.put(p) {
                    break;
                }
                self.next += 1;
            }
            return Ok(());
        }
        let offset = batch.offset();
        let (bufs, sizes) = batch.parts_mut();
        match self
            .device
            .recv_multiple(&mut self.raw, bufs, sizes, offset)
            .await
        {
            Ok(n) => {
                batch.set_count(n);
                Ok(())
            }
            // Not the OS's error: one read tun-rs could not split. Drop it, keep the device.
            Err(e) if e.raw_os_error().is_none() && e.kind() != io::ErrorKind::WouldBlock => {
                log::debug!("TUN: dropping a read that cannot be split: {e}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub async fn send_batch(&mut self, batch: &mut PacketBatch) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let result = if self.vnet {
            let offset = batch.offset();
            self.device
                .send_multiple(&mut self.gro, batch.filled_mut(), offset)
                .await
                .map(|_| ())
        } else {
            let mut result = Ok(());
            for i in 0..batch.len() {
                if let Some(p) = batch.packet(i) {
                    if let Err(e) = self.device.send(p).await {
                        result = Err(e);
                    }
                }
            }
            result
        };
        batch.clear();
        result
    }

    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.vnet {
            return self.device.recv(buf).await;
        }
        loop {
            if let Some(n) = self.pending_into(buf) {
                return Ok(n);
            }
            let shape = self.shape();
            let mut pending = self
                .pending
                .take()
                .unwrap_or_else(|| PacketBatch::for_recv(shape));
            let result = self.recv_batch_raw(&mut pending).await;
            self.pending = Some(pending);
            self.next = 0;
            result?;
        }
    }

    async fn recv_batch_raw(&mut self, batch: &mut PacketBatch) -> io::Result<()> {
        batch.clear();
        let offset = batch.offset();
        let (bufs, sizes) = batch.parts_mut();
        let n = self
            .device
            .recv_multiple(&mut self.raw, bufs, sizes, offset)
            .await?;
        batch.set_count(n);
        Ok(())
    }

    fn pending_left(&self) -> usize {
        self.pending
            .as_ref()
            .map_or(0, |p| p.len().saturating_sub(self.next))
    }

    fn pending_into(&mut self, buf: &mut [u8]) -> Option<usize> {
        let packet = self.pending.as_ref()?.packet(self.next)?;
        self.next += 1;
        let n = packet.len().min(buf.len());
        buf.get_mut(..n)?.copy_from_slice(packet.get(..n)?);
        Some(n)
    }

    pub async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        if !self.vnet {
            return self.device.send(packet).await.map(|_| ());
        }
        // A zero header: no GSO, checksums complete.
        let header = [0u8; VIRTIO_NET_HDR_LEN];
        self.device
            .send_vectored(&[IoSlice::new(&header), IoSlice::new(packet)])
            .await
            .map(|_| ())
    }
}
