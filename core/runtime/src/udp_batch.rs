//! Batched UDP for the data path: a tokio socket with quinn-udp's state, so one system call
//! moves many datagrams. On Linux a receive is one `recvmmsg` into [`RX_SLOTS`] buffers, each
//! of which may hold many same-size datagrams coalesced by UDP GRO; a send of a run of
//! same-size datagrams to one peer is one `sendmsg` with UDP GSO (`UDP_SEGMENT`). Elsewhere
//! quinn-udp moves one datagram per call and GSO is off ([`BatchSocket::max_segments`] = 1).
//!
//! [`TxBatch`] lays ESP datagrams end to end in one buffer and groups them into the runs a
//! GSO send can take: same local socket, same peer, same size (the last of a run may be
//! shorter), at most [`BatchSocket::max_segments`] and [`MAX_GSO_BYTES`]. The buffers are
//! allocated once; nothing is allocated per datagram.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::ops::Range;
use std::task::{Context, Poll};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Receive buffers per call (one `recvmmsg` fills up to this many). Two GRO buffers hold up
/// to about 90 full-size datagrams; more buys no rate measurable in the lab (4 and 8 were
/// tried: docs/PERFORMANCE.md, "Memory") and costs 64 KB of memory each.
pub const RX_SLOTS: usize = 2;
/// One receive buffer: the largest UDP payload (a GRO buffer holds up to 64 KB of datagrams).
pub const RX_SLOT: usize = 65_535;
/// Most payload bytes in one GSO send (the kernel's limit is one IP packet's worth, 64 KB,
/// minus the headers).
pub const MAX_GSO_BYTES: usize = 65_000;
/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub const MAX_GSO_SEGMENTS: usize = 64;

/// A UDP socket and quinn-udp's batching state for it (none when the platform refused it:
/// then one datagram per call through tokio).
#[derive(Debug)]
pub struct BatchSocket {
    socket: UdpSocket,
    state: Option<UdpSocketState>,
}

impl BatchSocket {
    /// Wraps `socket`: enables GRO (Linux) and the ancillary data quinn-udp reads, then puts
    /// the path MTU setting back to the system's default so large IKE messages still leave
    /// fragmented as before (quinn-udp sets don't-fragment for QUIC's own MTU probing).
    pub fn new(socket: UdpSocket) -> Self {
        let state = match UdpSocketState::new(UdpSockRef::from(&socket)) {
            Ok(state) => Some(state),
            Err(e) => {
                log::debug!("no batched UDP on this socket ({e}): one datagram per call");
                None
            }
        };
        if state.is_some() {
            restore_pmtu_default(&socket);
        }
        Self { socket, state }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// How many datagrams one send may carry (GSO); 1 where the platform has no GSO.
    pub fn max_segments(&self) -> usize {
        self.state
            .as_ref()
            .map_or(1, UdpSocketState::max_gso_segments)
            .clamp(1, MAX_GSO_SEGMENTS)
    }

    /// Whether received buffers may hold several datagrams (GRO is on).
    pub fn gro(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.gro_segments() > 1)
    }

    /// Receives what is waiting into `rx` (at least one datagram), or registers the waker.
    pub fn poll_recv(&self, cx: &mut Context<'_>, rx: &mut RxBatch) -> Poll<io::Result<()>> {
        loop {
            match self.socket.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match self.try_recv(rx) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Receives what is already waiting into `rx`, without waiting (`WouldBlock` if nothing).
    pub fn try_recv(&self, rx: &mut RxBatch) -> io::Result<()> {
        rx.count = 0;
        let Some(state) = &self.state else {
            return self.try_recv_one(rx);
        };
        let mut chunks = rx.buf.chunks_mut(RX_SLOT);
        let mut iovs: [IoSliceMut<'_>; RX_SLOTS] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let n = self.socket.try_io(Interest::READABLE, || {
            state.recv(UdpSockRef::from(&self.socket), &mut iovs, &mut rx.meta)
        })?;
        rx.count = n.min(RX_SLOTS);
        Ok(())
    }

    fn try_recv_one(&self, rx: &mut RxBatch) -> io::Result<()> {
        let Some(buf) = rx.buf.get_mut(..RX_SLOT) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let (len, remote) = self.socket.try_recv_from(buf)?;
        rx.meta[0] = single_meta(remote, len);
        rx.count = 1;
        Ok(())
    }

    /// Sends `contents` to `remote`: one datagram, or (with `segment`) datagrams of `segment`
    /// bytes each, the last maybe shorter, in one GSO call. When the kernel refuses GSO on
    /// this path, quinn-udp turns it off for the socket and the run leaves one datagram at a
    /// time instead.
    pub async fn send(
        &self,
        remote: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) -> io::Result<()> {
        let segment = segment.filter(|&s| s > 0 && s < contents.len());
        let Some(state) = &self.state else {
            return self.send_each(remote, contents, segment).await;
        };
        let transmit = Transmit {
            destination: remote,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        let sent = self
            .socket
            .async_io(Interest::WRITABLE, || {
                state.try_send(UdpSockRef::from(&self.socket), &transmit)
            })
            .await;
        match sent {
            Err(e) if segment.is_some() && state.max_gso_segments() <= 1 => {
                log::info!("UDP GSO refused ({e}): sending datagrams one by one");
                self.send_each(remote, contents, segment).await
            }
            other => other,
        }
    }

    /// One `send_to` per datagram of the run.
    async fn send_each(
        &self,
        remote: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) -> io::Result<()> {
        let mut result = Ok(());
        for range in segments(contents.len(), segment.unwrap_or(contents.len())) {
            let Some(datagram) = contents.get(range) else {
                break;
            };
            match self.socket.send_to(datagram, remote).await {
                Ok(n) if n == datagram.len() => {}
                Ok(n) => {
                    result = Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("sent {n} of {} bytes", datagram.len()),
                    ))
                }
                // One datagram's error does not stop the others.
                Err(e) => result = Err(e),
            }
        }
        result
    }
}

fn single_meta(remote: SocketAddr, len: usize) -> RecvMeta {
    let mut meta = RecvMeta::default();
    meta.addr = remote;
    meta.len = len;
    meta.stride = len;
    meta
}

/// Puts `IP(V6)_MTU_DISCOVER` back to the kernel's default (`WANT`: don't-fragment on what
/// fits the path, local fragmentation of what does not).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn restore_pmtu_default(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let (level, name, value) = match socket.local_addr() {
        Ok(a) if a.is_ipv6() => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_WANT,
        ),
        _ => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_WANT,
        ),
    };
    // SAFETY: a valid descriptor we own for the call, and a c_int option value whose size
    // we pass.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!(
            "cannot restore the path MTU default: {}",
            io::Error::last_os_error()
        );
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn restore_pmtu_default(_socket: &UdpSocket) {}

/// The datagrams `0..len` of a buffer holding datagrams of `stride` bytes (GRO), the last
/// maybe shorter. A stride of 0 means one datagram.
pub fn segments(len: usize, stride: usize) -> impl Iterator<Item = Range<usize>> {
    let stride = if stride == 0 { len.max(1) } else { stride };
    (0..len)
        .step_by(stride)
        .map(move |start| start..start.saturating_add(stride).min(len))
}

/// The buffers one receive call fills: [`RX_SLOTS`] slots of [`RX_SLOT`] bytes and what
/// arrived in each.
pub struct RxBatch {
    buf: Vec<u8>,
    meta: [RecvMeta; RX_SLOTS],
    count: usize,
}

impl std::fmt::Debug for RxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxBatch")
            .field("count", &self.count)
            .finish()
    }
}

impl Default for RxBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RxBatch {
    pub fn new() -> Self {
        Self {
            buf: vec![0; RX_SLOTS * RX_SLOT],
            meta: [RecvMeta::default(); RX_SLOTS],
            count: 0,
        }
    }

    /// How many slots the last receive filled.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Slot `i`: the sender, the bytes received and the size of each datagram in them (see
    /// [`segments`]; the bytes are [`RxBatch::slot_mut`]).
    pub fn slot(&self, i: usize) -> Option<(SocketAddr, usize, usize)> {
        let meta = self.meta.get(i).filter(|_| i < self.count)?;
        Some((meta.addr, meta.len.min(RX_SLOT), meta.stride))
    }

    /// The bytes of slot `i` (datagrams are decrypted in place here).
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let start = i.checked_mul(RX_SLOT)?;
        self.buf.get_mut(start..start.checked_add(RX_SLOT)?)
    }

    /// Test and fallback use: puts one datagram from `remote` into slot `i`.
    #[cfg(test)]
    pub(crate) fn fill(&mut self, i: usize, remote: SocketAddr, data: &[u8], stride: usize) {
        if let Some(slot) = self.slot_mut(i) {
            let n = data.len().min(slot.len());
            slot[..n].copy_from_slice(&data[..n]);
            self.meta[i] = single_meta(remote, n);
            self.meta[i].stride = stride;
            self.count = self.count.max(i + 1);
        }
    }
}

/// One GSO run in a [`TxBatch`]: datagrams of `segment` bytes (the last maybe shorter) from
/// the socket of `local` to `remote`, at `range` of the batch's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub range: Range<usize>,
    pub segment: usize,
    pub count: usize,
    /// A shorter datagram ended it: nothing more may join.
    closed: bool,
}

impl Run {
    /// The GSO segment size to send with (`None`: a single datagram).
    pub fn gso(&self) -> Option<usize> {
        (self.count > 1).then_some(self.segment)
    }
}

/// Datagrams written end to end into one buffer, grouped into GSO runs.
#[derive(Debug)]
pub struct TxBatch {
    buf: Vec<u8>,
    filled: usize,
    runs: Vec<Run>,
    max_segments: usize,
}

impl TxBatch {
    /// A batch of `bytes` bytes holding at most `max_runs` runs before it must be flushed;
    /// a run holds at most `max_segments` datagrams.
    pub fn new(bytes: usize, max_runs: usize, max_segments: usize) -> Self {
        Self {
            buf: vec![0; bytes],
            filled: 0,
            runs: Vec::with_capacity(max_runs.max(1)),
            max_segments: max_segments.clamp(1, MAX_GSO_SEGMENTS),
        }
    }

    /// Caps the datagrams per run (the socket's GSO limit; 1 turns GSO off).
    pub fn set_max_segments(&mut self, max: usize) {
        self.max_segments = max.clamp(1, MAX_GSO_SEGMENTS);
    }

    /// The free space the next datagram is written into.
    pub fn free(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.filled..).unwrap_or_default()
    }

    /// Whether `need` bytes fit in the free space and one more run would fit too.
    pub fn has_room(&self, need: usize) -> bool {
        self.buf.len() - self.filled >= need && self.runs.len() < self.runs.capacity()
    }

    /// The datagram of `len` bytes just written at the start of [`TxBatch::free`], from
    /// `local` to `remote`: joins the last run when it can, else starts one.
    pub fn push(&mut self, local: SocketAddr, remote: SocketAddr, len: usize) {
        let len = len.min(self.buf.len() - self.filled);
        if len == 0 {
            return;
        }
        let start = self.filled;
        self.filled += len;
        let max_segments = self.max_segments;
        if let Some(run) = self.runs.last_mut() {
            let joins = !run.closed
                && run.local == local
                && run.remote == remote
                && run.range.end == start
                && len <= run.segment
                && run.count < max_segments
                && run.range.len() + len <= MAX_GSO_BYTES;
            if joins {
                run.range.end = self.filled;
                run.count += 1;
                run.closed = len < run.segment;
                return;
            }
        }
        self.runs.push(Run {
            local,
            remote,
            range: start..self.filled,
            segment: len,
            count: 1,
            closed: false,
        });
    }

    /// The runs and their bytes.
    pub fn runs(&self) -> impl Iterator<Item = (&Run, &[u8])> {
        self.runs
            .iter()
            .map(|r| (r, self.buf.get(r.range.clone()).unwrap_or_default()))
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// How many datagrams are waiting.
    pub fn datagrams(&self) -> usize {
        self.runs.iter().map(|r| r.count).sum()
    }

    /// Forgets every run (after they were sent).
    pub fn clear(&mut self) {
        self.runs.clear();
        self.filled = 0;
    }
}

#[cfg(test)]
mod tests;
