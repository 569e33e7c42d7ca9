//! Runs Roam's responder (`roam_proto::ike::responder::Responder`) on UDP sockets and a packet
//! path: the demo's embedded server and `roam serve`.
//!
//! Sockets: on port 500 the server also listens on 4500 (RFC 3948): port 500 carries plain IKE,
//! port 4500 IKE behind the non-ESP marker, ESP, and NAT keepalives. On any other port (the
//! demo's ephemeral one) one socket speaks the port-4500 framing, as clients do toward a port
//! other than 500. Each IKE answer leaves by the socket, and in the framing, its request came in.
//!
//! Packets: decrypted ESP goes to a [`PacketIo`] (a TUN, or the demo's channels); packets from
//! it go through `Responder::route_packet` to the client whose virtual IP they are for. Both
//! ways are batched as in the client's driver ([`crate::udp_batch`]): a receive takes every
//! datagram waiting, decrypted packets reach a batching TUN in one batch, and ESP leaves in
//! GSO runs (one system call per run of same-size datagrams to one client).

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use futures_util::FutureExt;
use roam_proto::ike::responder::{DataStats, Responder, ResponderEvent};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};
use roam_proto::wire::{IKE_PORT, NATT_PORT};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::packet_io::{NoPackets, PacketBatch, PacketIo};
use crate::udp_batch::{segments, BatchSocket, RxBatch, TxBatch};

mod tcp;

pub use tcp::TcpStats;

/// Most clients whose socket and framing we remember (a bound against floods).
const MAX_PEERS: usize = 65_536;
/// Room for what ESP and UDP add around an inner packet.
const ESP_OVERHEAD: usize = 512;
/// Most packets from the packet side routed per wakeup before the loop turns.
const TX_PACKETS: usize = 256;
/// The buffer ESP for clients is sealed into, and its most runs (see `udp_batch::TxBatch`).
const TX_BYTES: usize = 256 * 1024;
const TX_RUNS: usize = 256;

/// A responder event with what the server adds to it for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEvent {
    pub event: ResponderEvent,
    /// For `Established`: the client's CHILD SA proposal (strongSwan syntax).
    pub esp_proposal: Option<String>,
}

/// How the server listens besides UDP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeOptions {
    /// Also accept IKE and ESP over TCP (RFC 9329) on this address (port 0: any free port).
    pub tcp: Option<SocketAddr>,
    /// With `tcp`: also accept TLS clients on that port (RFC 9329 section 8) with this
    /// certificate; plain clients are still accepted there.
    pub tls: Option<crate::tls::TlsServer>,
}

/// A responder running on its own task.
#[derive(Debug)]
pub struct Server {
    locals: Vec<SocketAddr>,
    /// The TCP listener's address, when listening on TCP.
    tcp_local: Option<SocketAddr>,
    /// The TCP listener's counters, when listening on TCP.
    tcp_counters: Option<Arc<tcp::Counters>>,
    events: mpsc::UnboundedReceiver<ServerEvent>,
    stats: Arc<Mutex<DataStats>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Binds `bind` (port 0: any free port) and starts answering IKE; no packet path.
    pub async fn start(responder: Responder, bind: SocketAddr) -> io::Result<Self> {
        Self::start_with_packets(responder, bind, NoPackets).await
    }

    /// Binds `bind` (and port 4500 beside port 500) and starts answering, with `packets` as
    /// the server's packet side: decrypted packets go there, its packets go to the clients.
    pub async fn start_with_packets<P: PacketIo + 'static>(
        responder: Responder,
        bind: SocketAddr,
        packets: P,
    ) -> io::Result<Self> {
        Self::start_with_options(responder, bind, packets, ServeOptions::default()).await
    }

    /// Like [`Server::start_with_packets`], listening on TCP as well when `options` say so.
    pub async fn start_with_options<P: PacketIo + 'static>(
        responder: Responder,
        bind: SocketAddr,
        packets: P,
        options: ServeOptions,
    ) -> io::Result<Self> {
        let tcp = match options.tcp {
            Some(addr) => Some(tcp::TcpSide::bind(addr, options.tls).await?),
            None => None,
        };
        let tcp_local = tcp.as_ref().map(tcp::TcpSide::local_addr).transpose()?;
        let tcp_counters = tcp.as_ref().map(tcp::TcpSide::counters);
        let mut sockets = vec![UdpSocket::bind(bind).await?];
        if bind.port() == IKE_PORT {
            sockets.push(UdpSocket::bind(SocketAddr::new(bind.ip(), NATT_PORT)).await?);
        }
        sockets.iter().for_each(crate::socket::enlarge_buffers);
        let locals = sockets
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let sockets: Vec<BatchSocket> = sockets.into_iter().map(BatchSocket::new).collect();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let stats = Arc::new(Mutex::new(DataStats::default()));
        let server = Loop {
            responder,
            sockets,
            locals: locals.clone(),
            packets,
            peers: HashMap::new(),
            out: TxBatch::new(TX_BYTES, TX_RUNS, 1),
            turn: 0,
            events: events_tx,
            stats: stats.clone(),
            tcp,
        };
        let task = tokio::spawn(server.run(stop_rx));
        Ok(Self {
            locals,
            tcp_local,
            tcp_counters,
            events,
            stats,
            stop: Some(stop),
            task,
        })
    }

    /// The address clients reach (the IKE port).
    pub fn local_addr(&self) -> SocketAddr {
        self.locals
            .first()
            .copied()
            .unwrap_or(([0, 0, 0, 0], 0).into())
    }

    /// Every address listened on: the IKE port, then 4500 when the IKE port is 500.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.locals
    }

    /// The TCP listener's address (None: not listening on TCP).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_local
    }

    /// The TCP listener's counters (None: not listening on TCP).
    pub fn tcp_stats(&self) -> Option<TcpStats> {
        self.tcp_counters.as_ref().map(|c| c.snapshot())
    }

    /// The next responder event.
    pub async fn next_event(&mut self) -> Option<ResponderEvent> {
        self.events.recv().await.map(|e| e.event)
    }

    /// The next responder event with the server's additions.
    pub async fn next_server_event(&mut self) -> Option<ServerEvent> {
        self.events.recv().await
    }

    /// The data path's counters as of the server's last turn.
    pub fn data_stats(&self) -> DataStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the server and starts `responder` on the same address with `packets`: a restart
    /// that forgets every SA, as a rebooted server does.
    pub async fn restart_with_packets<P: PacketIo + 'static>(
        self,
        responder: Responder,
        packets: P,
    ) -> io::Result<Self> {
        let bind = self.local_addr();
        self.stop().await?;
        Self::start_with_packets(responder, bind, packets).await
    }

    /// Stops the server and waits for its task (the packet side is dropped with it).
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.map_err(io::Error::other)?
    }
}

#[allow(clippy::disallowed_methods)] // the runtime owns the clock
fn now() -> Instant {
    Instant::now()
}

/// How to reach a client: the socket its last IKE request came in on, and whether it used
/// the non-ESP marker.
#[derive(Clone, Copy, Debug)]
struct Via {
    socket: usize,
    framed: bool,
    /// On the client's TCP connection (RFC 9329) rather than a UDP socket.
    tcp: bool,
}

struct Loop<P> {
    responder: Responder,
    sockets: Vec<BatchSocket>,
    locals: Vec<SocketAddr>,
    packets: P,
    peers: HashMap<SocketAddr, Via>,
    /// ESP for clients is sealed here, end to end, and leaves in GSO runs.
    out: TxBatch,
    /// Which socket is polled first (turns, so one busy socket cannot starve the other).
    turn: usize,
    events: mpsc::UnboundedSender<ServerEvent>,
    stats: Arc<Mutex<DataStats>>,
    /// The TCP listener and its connections (RFC 9329), when listening on TCP.
    tcp: Option<tcp::TcpSide>,
}

impl<P: PacketIo> Loop<P> {
    /// The socket that carries NAT-T framing and ESP: 4500 beside 500, else the only one.
    fn natt_socket(&self) -> usize {
        self.sockets.len() - 1
    }

    /// Whether datagrams on socket `i` are plain IKE (port 500 beside 4500).
    fn plain(&self, i: usize) -> bool {
        self.sockets.len() > 1 && i == 0
    }

    async fn run(mut self, mut stop: oneshot::Receiver<()>) -> io::Result<()> {
        let mut rx = RxBatch::new();
        let shape = self.packets.batch_shape();
        let mut from_os = PacketBatch::for_recv(shape);
        let mut to_os = shape.batched_send.then(|| PacketBatch::for_send(shape));
        loop {
            tokio::select! {
                r = recv_any(&self.sockets, self.turn, &mut rx) => match r {
                    Ok(i) => {
                        self.turn = self.turn.wrapping_add(1);
                        self.datagrams(i, &mut rx, &mut to_os).await;
                    }
                    Err(e) => log::debug!("responder receive: {e}"),
                },
                r = self.packets.recv_batch(&mut from_os) => match r {
                    Ok(()) => self.route_batches(&mut from_os).await?,
                    Err(e) => {
                        log::warn!("responder packet side failed: {e}");
                        return Err(e);
                    }
                },
                w = tcp::wake(self.tcp.as_mut()) => self.on_tcp(w).await,
                _ = &mut stop => return Ok(()),
            }
            self.flush().await;
        }
    }

    /// Every datagram of `rx`, received on socket `i`; their packets go to the packet side.
    async fn datagrams(&mut self, i: usize, rx: &mut RxBatch, to_os: &mut Option<PacketBatch>) {
        for k in 0..rx.len() {
            let Some((remote, len, stride)) = rx.slot(k) else {
                continue;
            };
            for range in segments(len, stride) {
                let Some(data) = rx.slot_mut(k).and_then(|s| s.get_mut(range)) else {
                    break;
                };
                self.datagram(i, remote, data, to_os).await;
            }
        }
        if let Some(batch) = to_os.as_mut().filter(|b| !b.is_empty()) {
            if let Err(e) = self.packets.send_batch(batch).await {
                log::debug!("responder: packet side refused packets: {e}");
            }
        }
    }

    /// A datagram on socket `i` from `remote`.
    async fn datagram(
        &mut self,
        i: usize,
        remote: SocketAddr,
        data: &mut [u8],
        to_os: &mut Option<PacketBatch>,
    ) {
        let local = self.locals.get(i).copied().unwrap_or(remote);
        if self.plain(i) {
            self.remember(
                remote,
                Via {
                    socket: i,
                    framed: false,
                    tcp: false,
                },
            );
            self.responder.handle_message(now(), local, remote, data);
            return;
        }
        self.natt_datagram(
            local,
            remote,
            data,
            Via {
                socket: i,
                framed: true,
                tcp: false,
            },
            to_os,
        )
        .await;
    }

    /// A frame from a client's TCP connection: a NAT-T datagram (answers go back on it).
    async fn frame(&mut self, local: SocketAddr, remote: SocketAddr, data: &mut [u8]) {
        let via = Via {
            socket: self.natt_socket(),
            framed: true,
            tcp: true,
        };
        self.natt_datagram(local, remote, data, via, &mut None)
            .await;
    }

    /// A datagram in the NAT-T framing (or a TCP frame's body) from `remote`, reached at `local`.
    async fn natt_datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &mut [u8],
        via: Via,
        to_os: &mut Option<PacketBatch>,
    ) {
        match classify(data) {
            NattDatagram::Ike(ike) => {
                self.remember(remote, via);
                self.responder.handle_message(now(), local, remote, ike);
            }
            NattDatagram::Keepalive | NattDatagram::Esp(_) => {
                let Some(range) = self.responder.handle_esp(now(), remote, data) else {
                    return;
                };
                let Some(inner) = data.get(range) else {
                    return;
                };
                let result = match to_os.as_mut() {
                    None => self.packets.send(inner).await,
                    Some(batch) => {
                        let mut result = Ok(());
                        if batch.is_full() {
                            result = self.packets.send_batch(batch).await;
                        }
                        batch.push(inner);
                        result
                    }
                };
                if let Err(e) = result {
                    log::debug!("responder: packet side refused a packet: {e}");
                }
            }
            NattDatagram::Invalid => log::debug!("responder: unusable datagram from {remote}"),
        }
    }

    /// The packets read into `batch`, then more that are ready (up to [`TX_PACKETS`]): each
    /// to its client, in ESP: from the NAT-T socket in GSO runs, or on the client's TCP
    /// connection.
    async fn route_batches(&mut self, batch: &mut PacketBatch) -> io::Result<()> {
        let natt = self.natt_socket();
        let local = self
            .locals
            .get(natt)
            .copied()
            .unwrap_or_else(|| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0));
        let segments = self.sockets.get(natt).map_or(1, BatchSocket::max_segments);
        self.out.set_max_segments(segments);
        let mut routed = 0;
        loop {
            for k in 0..batch.len() {
                let Some(packet) = batch.packet(k) else {
                    continue;
                };
                if !self.out.has_room(packet.len() + ESP_OVERHEAD) {
                    self.send_out().await;
                }
                let Some((remote, len)) = self.responder.route_packet(packet, self.out.free())
                else {
                    continue;
                };
                // a client on TCP (RFC 9329) gets its ESP as a frame on its connection
                match self.tcp.as_mut().filter(|t| t.has(remote)) {
                    Some(tcp) => {
                        if let Some(esp) = self.out.free().get(..len) {
                            tcp.send(remote, esp);
                        }
                    }
                    None => self.out.push(local, remote, len),
                }
            }
            routed += batch.len().max(1);
            if routed >= TX_PACKETS {
                break;
            }
            match self.packets.recv_batch(batch).now_or_never() {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.send_out().await;
                    return Err(e);
                }
                None => break,
            }
        }
        self.send_out().await;
        Ok(())
    }

    /// Sends the sealed ESP runs from the NAT-T socket, one call each.
    async fn send_out(&mut self) {
        if let Some(socket) = self.sockets.get(self.natt_socket()) {
            for (run, bytes) in self.out.runs() {
                if let Err(e) = socket.send(run.remote, bytes, run.gso()).await {
                    log::debug!("responder: cannot send ESP to {}: {e}", run.remote);
                }
            }
        }
        self.out.clear();
    }

    fn remember(&mut self, remote: SocketAddr, via: Via) {
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&remote) {
            // Answers go to the request just received, which is learned again below.
            self.peers.clear();
        }
        self.peers.insert(remote, via);
    }

    /// Sends what the responder queued and hands out its events.
    async fn flush(&mut self) {
        while let Some(out) = self.responder.poll_outgoing() {
            let via = self.peers.get(&out.remote).copied().unwrap_or(Via {
                socket: self.natt_socket(),
                framed: !self.plain(self.natt_socket()),
                tcp: false,
            });
            let framed;
            let payload = if via.framed {
                framed = [&NON_ESP_MARKER[..], &out.message].concat();
                &framed
            } else {
                &out.message
            };
            if via.tcp {
                if let Some(tcp) = self.tcp.as_mut() {
                    tcp.send(out.remote, payload);
                }
                continue;
            }
            let Some(socket) = self.sockets.get(via.socket) else {
                continue;
            };
            if let Err(e) = socket.socket().send_to(payload, out.remote).await {
                log::warn!("responder: cannot send to {}: {e}", out.remote);
            }
        }
        while let Some(event) = self.responder.poll_event() {
            let esp_proposal = match &event {
                ResponderEvent::Established { spi_r, .. } => {
                    self.responder.child(*spi_r).map(|c| c.selected.name())
                }
                ResponderEvent::Closed { .. } => None,
            };
            let _ = self.events.send(ServerEvent {
                event,
                esp_proposal,
            });
        }
        if let Ok(mut s) = self.stats.lock() {
            *s = self.responder.data_stats();
        }
    }
}

/// Waits for datagrams on any of `sockets`, polling from socket `turn` on, and receives
/// what is waiting on the first ready one into `rx`; returns the socket's index.
async fn recv_any(sockets: &[BatchSocket], turn: usize, rx: &mut RxBatch) -> io::Result<usize> {
    poll_fn(|cx| {
        let n = sockets.len().max(1);
        for k in 0..n {
            let i = (turn + k) % n;
            let Some(s) = sockets.get(i) else { continue };
            match s.poll_recv(cx, rx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(i)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;
