//! The event loop that runs a sans-IO session over real UDP sockets, a tokio timer and a
//! packet path ([`PacketIo`]: a TUN, channels, or none).
//!
//! [`Driver`] owns the sockets, the packet path and the protocol state machine; one turn of its
//! loop sends what the session wants sent, hands its events to the caller, then waits for the
//! first of: a datagram, a packet from the packet path, the session's deadline, a command, or
//! the packet path being attached. The data path moves batches ([`crate::udp_batch`]): a
//! wakeup receives every datagram waiting (recvmmsg, GRO; up to [`RX_TURNS`] calls), each goes
//! through `handle_datagram` and its inner packet to the packet path (in one batch where the
//! path takes batches); packets from the packet path (up to [`TX_PACKETS`] per wakeup, many
//! per read where the TUN offloads) are sealed by `handle_packet` end to end into one buffer
//! and leave in GSO runs, one system call per run of same-size datagrams to one peer (drops
//! are counted by the session). The buffers are allocated once per run (and when a packet
//! path is attached), so nothing is allocated per packet. It ends when the session is
//! disconnected. [`Tunnel`] runs a driver on its own task and is the caller's handle to it.
//!
//! The network can change under a running driver: [`Tunnel::network_changed`] (the platform's
//! network callback, or the Linux netlink watcher) makes it ask the routing again which local
//! address reaches the server, open and close sockets to match, and hand the session the new
//! list (MOBIKE moves the SAs). The server's name is resolved again after a network change
//! and before each reconnect attempt. Events leave with the wall-clock time they happened.
//!
//! The driver is written against the [`Protocol`] trait (implemented for
//! `roam_proto::session::Session`) so its plumbing can be tested with a fake peer.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use futures_util::FutureExt;
use roam_proto::session::{
    Datagram, Event, PacketDrop, Received, Session, State, Transmit, Transport,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::packet_io::{NoPackets, PacketBatch, PacketIo};
use crate::socket::{self, Sockets};
use crate::udp_batch::{segments, RxBatch, TxBatch};

/// Room for what ESP adds around an inner packet (SPI, sequence, IV, padding, ICV, NAT-T).
const ESP_OVERHEAD: usize = 512;
/// Receive calls (each up to `udp_batch::RX_SLOTS` buffers) per wakeup before the loop turns
/// (timer, IKE, events).
pub const RX_TURNS: usize = 4;
/// Most packets from the packet path sealed per wakeup before the loop turns.
pub const TX_PACKETS: usize = 256;
/// The buffer ESP datagrams are sealed into before they leave in GSO runs.
const TX_BYTES: usize = 128 * 1024;
/// Most runs in that buffer (a run per datagram when no two go the same way).
const TX_RUNS: usize = 256;
/// Commands queued for the driver before `close` starts dropping them.
const COMMAND_QUEUE: usize = 8;

/// The sans-IO interface the driver runs: `roam_proto::session::Session`'s methods.
pub trait Protocol {
    /// Starts connecting from `local` to `server`.
    fn connect(&mut self, now: Instant, local: SocketAddr, server: SocketAddr);
    /// A datagram arrived from `remote` on the socket bound to `local`.
    /// ESP is decrypted in place; `Received::Packet(range)` is an inner packet for the TUN.
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &mut [u8],
    ) -> Received;
    /// An inner packet from the packet path: ESP-encapsulated into `out` when it may be sent
    /// (`out[..len]` goes to `remote` from `local`), else dropped and counted.
    fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<Datagram, PacketDrop>;
    /// The deadline from `poll_timeout` has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Starts closing (a DELETE); the session ends when answered or timed out.
    fn close(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_event(&mut self) -> Option<Event>;
    fn state(&self) -> State;
    /// The next event and when it happened (default: now).
    fn poll_timed_event(&mut self) -> Option<(Instant, Event)> {
        self.poll_event().map(|e| (now(), e))
    }
    /// The local addresses we can send from now (one bound socket each, preferred first).
    fn network_changed(&mut self, now: Instant, locals: &[SocketAddr]) {
        let _ = (now, locals);
    }
    /// Every address the server's name resolves to now.
    fn set_server_addresses(&mut self, now: Instant, addresses: &[IpAddr]) {
        let _ = (now, addresses);
    }
    /// The transport to connect on (before `connect`).
    fn set_transport(&mut self, transport: Transport) {
        let _ = transport;
    }
    /// The path moves to `transport` (`locals` and `server` on it): see
    /// `Session::switch_transport`.
    fn switch_transport(
        &mut self,
        now: Instant,
        transport: Transport,
        locals: &[SocketAddr],
        server: SocketAddr,
    ) {
        let _ = (now, transport, locals, server);
    }
    /// The TCP connection from `local` closed.
    fn transport_closed(&mut self, now: Instant, local: SocketAddr) {
        let _ = (now, local);
    }
    /// A datagram to send over UDP from `local` to `server` whose answer shows UDP works
    /// (see `Session::udp_probe`); None when the protocol has none.
    fn udp_probe(
        &mut self,
        now: Instant,
        local: SocketAddr,
        server: SocketAddr,
    ) -> Option<Vec<u8>> {
        let _ = (now, local, server);
        None
    }
}

impl Protocol for Session {
    fn connect(&mut self, now: Instant, local: SocketAddr, server: SocketAddr) {
        Session::connect(self, now, local, server)
    }
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &mut [u8],
    ) -> Received {
        Session::handle_datagram(self, now, local, remote, data)
    }
    fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<Datagram, PacketDrop> {
        Session::handle_packet(self, now, packet, out)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now)
    }
    fn close(&mut self, now: Instant) {
        Session::close(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Session::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Session::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Session::poll_event(self)
    }
    fn state(&self) -> State {
        Session::state(self)
    }
    fn poll_timed_event(&mut self) -> Option<(Instant, Event)> {
        Session::poll_timed_event(self)
    }
    fn network_changed(&mut self, now: Instant, locals: &[SocketAddr]) {
        Session::network_changed(self, now, locals)
    }
    fn set_server_addresses(&mut self, now: Instant, addresses: &[IpAddr]) {
        Session::set_server_addresses(self, now, addresses)
    }
    fn set_transport(&mut self, transport: Transport) {
        Session::set_transport(self, transport)
    }
    fn switch_transport(
        &mut self,
        now: Instant,
        transport: Transport,
        locals: &[SocketAddr],
        server: SocketAddr,
    ) {
        Session::switch_transport(self, now, transport, locals, server)
    }
    fn transport_closed(&mut self, now: Instant, local: SocketAddr) {
        Session::transport_closed(self, now, local)
    }
    fn udp_probe(
        &mut self,
        now: Instant,
        local: SocketAddr,
        server: SocketAddr,
    ) -> Option<Vec<u8>> {
        Session::udp_probe(self, now, local, server)
    }
}

/// An event of the session and the wall-clock time it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedEvent {
    pub at: SystemTime,
    pub event: Event,
}

impl TimedEvent {
    /// Milliseconds since the Unix epoch (0 for a clock set before 1970).
    pub fn unix_ms(&self) -> u64 {
        unix_ms(self.at)
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Turns the session's instants into wall-clock times (one reading of both clocks at start).
#[derive(Clone, Copy, Debug)]
struct WallClock {
    instant: Instant,
    system: SystemTime,
}

impl WallClock {
    // The runtime owns the clocks (the lint is for the sans-IO protocol).
    #[allow(clippy::disallowed_methods)]
    fn now() -> Self {
        Self {
            instant: now(),
            system: SystemTime::now(),
        }
    }

    fn at(&self, t: Instant) -> SystemTime {
        match t.checked_duration_since(self.instant) {
            Some(after) => self.system + after,
            None => self.system - self.instant.duration_since(t),
        }
    }
}

/// What the caller can ask of a running driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Close the session (DELETE the IKE SA); the driver ends once the session has.
    Close,
    /// The platform's network changed: find the local addresses again and tell the session.
    NetworkChanged,
    /// The platform names the local addresses to use, preferred first (a device that knows
    /// its networks better than the routing table, or a test): bind them and tell the session.
    UseLocalAddresses(Vec<IpAddr>),
}

/// Why the driver could not start or stopped early. (A session that ends, for any reason, is
/// not an error: its reason arrives as `Event::Disconnected`.)
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot open a UDP socket toward {server}: {source}")]
    Bind {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("UDP socket failed: {0}")]
    Socket(io::Error),
    #[error("the driver task failed: {0}")]
    Task(String),
}

/// A platform hook called with each new socket's file descriptor before the socket is used
/// (Android's `VpnService.protect`, so IKE and ESP do not loop into the VPN); returning false
/// refuses the socket and the driver fails to bind.
#[derive(Clone)]
pub struct ProtectSocket(pub std::sync::Arc<dyn Fn(i32) -> bool + Send + Sync>);

impl ProtectSocket {
    /// Hands a new socket to the platform hook before its first use; a refusal is an error
    /// (a socket the VPN would capture must not carry IKE or ESP).
    #[cfg(unix)]
    pub(crate) fn apply(&self, socket: &impl std::os::fd::AsRawFd) -> io::Result<()> {
        if (self.0)(socket.as_raw_fd()) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the platform refused to protect the socket",
            ))
        }
    }

    /// Other platforms have no descriptors to hand over.
    #[cfg(not(unix))]
    pub(crate) fn apply<S>(&self, _socket: &S) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for ProtectSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProtectSocket(..)")
    }
}

/// Optional platform settings for the driver's sockets (`Default`: none, as on a desktop).
#[derive(Clone, Debug, Default)]
pub struct SocketOptions {
    pub protect: Option<ProtectSocket>,
    /// The server's name as the profile gives it (with the port to use), resolved again after a
    /// network change and before each reconnect attempt. None: the address given is final.
    pub server_name: Option<(String, u16)>,
    /// UDP, TCP (RFC 9329) or UDP with a fallback to TCP (default: UDP).
    pub transport: crate::tcp::TransportPolicy,
}

/// Resolves the server's name (or IP literal) to one address.
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, DriverError> {
    socket::resolve(host, port)
        .await
        .map_err(|source| DriverError::Resolve {
            host: host.to_string(),
            source,
        })
}

/// The time the session sees: tokio's clock (so tests can pause it), as a std `Instant`.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs `protocol` against `server` until it is disconnected: binds, connects, loops
/// (control plane only: no packet path).
pub async fn run<P: Protocol>(
    protocol: P,
    server: SocketAddr,
    events: mpsc::UnboundedSender<TimedEvent>,
    commands: mpsc::Receiver<Command>,
) -> Result<(), DriverError> {
    Driver::bind(protocol, server)
        .await?
        .run(events, commands)
        .await
}

/// A session, its sockets, its timer and its packet path.
pub struct Driver<P, I = NoPackets> {
    protocol: P,
    sockets: Sockets,
    local: SocketAddr,
    server: SocketAddr,
    /// `None` until attached (see [`Driver::run_attaching`]).
    packets: Option<I>,
    /// The server's name and port, to resolve again (see [`SocketOptions::server_name`]).
    server_name: Option<(String, u16)>,
    /// Every address the server had at the last resolution (the first is `server`).
    servers: Vec<SocketAddr>,
    /// The local addresses the session was last told about.
    locals: Vec<SocketAddr>,
    /// A resolution of `server_name` in flight.
    resolving: Option<oneshot::Receiver<io::Result<Vec<SocketAddr>>>>,
    /// UDP or TCP, and the TCP connections (`transport`).
    transport: transport::TransportState,
}

impl<P: Protocol> Driver<P, NoPackets> {
    /// Opens the socket toward `server`, with no packet path. Nothing is sent until `run`.
    pub async fn bind(protocol: P, server: SocketAddr) -> Result<Self, DriverError> {
        Self::bind_with(protocol, server, Some(NoPackets), SocketOptions::default()).await
    }
}

impl<P: Protocol, I: PacketIo> Driver<P, I> {
    /// Opens the socket toward `server` with platform socket `options` (a protect hook);
    /// `packets` is the packet path (or `None` to attach one later through
    /// [`Driver::run_attaching`]). Nothing is sent until `run`.
    pub async fn bind_with(
        protocol: P,
        server: SocketAddr,
        packets: Option<I>,
        options: SocketOptions,
    ) -> Result<Self, DriverError> {
        let transport = transport::TransportState::new(options.transport, options.protect.clone());
        let mut sockets = Sockets::with_protect(options.protect);
        let local = sockets
            .open_toward(server)
            .await
            .map_err(|source| DriverError::Bind { server, source })?;
        Ok(Self {
            protocol,
            sockets,
            local,
            server,
            packets,
            server_name: options.server_name,
            servers: vec![server],
            locals: vec![local],
            resolving: None,
            transport,
        })
    }

    /// The same driver with another packet path.
    pub fn with_packets<J: PacketIo>(self, packets: J) -> Driver<P, J> {
        Driver {
            protocol: self.protocol,
            sockets: self.sockets,
            local: self.local,
            server: self.server,
            packets: Some(packets),
            server_name: self.server_name,
            servers: self.servers,
            locals: self.locals,
            resolving: self.resolving,
            transport: self.transport,
        }
    }

    /// The address we send from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Connects and drives the session until it is disconnected. Events go to `events` (a
    /// closed receiver is ignored); when `commands` is closed (every sender dropped) the
    /// session is closed as if `Command::Close` had come.
    pub async fn run(
        self,
        events: mpsc::UnboundedSender<TimedEvent>,
        commands: mpsc::Receiver<Command>,
    ) -> Result<(), DriverError> {
        self.run_attaching(events, commands, None).await
    }

    /// Like [`Driver::run`], and a packet path sent on `attach` (typically a TUN made once the
    /// `Connected` event told its addresses) replaces the current one. The packet path is
    /// dropped (a TUN closed) when the driver ends.
    pub async fn run_attaching(
        mut self,
        events: mpsc::UnboundedSender<TimedEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut attach: Option<oneshot::Receiver<I>>,
    ) -> Result<(), DriverError> {
        log::info!("connecting from {} to {}", self.local, self.server);
        let clock = WallClock::now();
        let (local, server) = self.start_transport().await;
        self.protocol.connect(now(), local, server);
        let mut bufs = Buffers::new(self.packets.as_ref());
        let mut commands_open = true;
        loop {
            self.flush_transmits().await;
            if self.deliver_events(&events, &clock) {
                // Whatever the session queued on its way out has been sent above.
                log::debug!("session disconnected, driver ends");
                return Ok(());
            }
            let deadline = self
                .protocol
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                received = self.sockets.recv_batch(&mut bufs.rx) => {
                    self.datagrams(received, &mut bufs).await?;
                }
                read = recv_packets(self.packets.as_mut(), &mut bufs.from_os) => {
                    self.packets_from_os(read, &mut bufs).await;
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.protocol.handle_timeout(now());
                }
                command = commands.recv(), if commands_open => match command {
                    Some(Command::Close) => {
                        log::info!("closing the session");
                        self.protocol.close(now());
                    }
                    Some(Command::NetworkChanged) => {
                        log::info!("the network changed");
                        self.refresh_paths(true).await;
                        self.resolve_again();
                    }
                    Some(Command::UseLocalAddresses(ips)) => {
                        log::info!("local addresses set to {ips:?}");
                        self.use_locals(&ips).await;
                    }
                    None => {
                        log::debug!("the tunnel handle is gone: closing the session");
                        commands_open = false;
                        self.protocol.close(now());
                    }
                },
                resolved = wait_resolved(self.resolving.as_mut()) => {
                    self.resolving = None;
                    self.resolved(resolved).await;
                }
                wake = self.transport.wake() => {
                    self.on_transport(wake, &mut bufs).await;
                }
                attached = wait_attach(attach.as_mut()) => {
                    attach = None;
                    if let Ok(packets) = attached {
                        log::debug!(
                            "packet path attached ({:?})",
                            packets.batch_shape()
                        );
                        bufs.shape_for(&packets);
                        self.packets = Some(packets);
                    }
                }
            }
        }
    }

    /// The first batch of datagrams of a wakeup (`first`, on the socket of that address),
    /// then up to `RX_TURNS - 1` more that are ready; their packets go to the packet path.
    async fn datagrams(
        &mut self,
        first: io::Result<SocketAddr>,
        bufs: &mut Buffers,
    ) -> Result<(), DriverError> {
        let now = now();
        let mut next = first;
        let mut result = Ok(());
        for turn in 1..=RX_TURNS {
            match next {
                Ok(local) => self.datagram_batch(now, local, bufs).await,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if socket::is_transient(&e) => log::debug!("receive: {e}"),
                Err(e) => {
                    result = Err(DriverError::Socket(e));
                    break;
                }
            }
            if turn == RX_TURNS {
                break;
            }
            next = self.sockets.try_recv_batch(&mut bufs.rx);
        }
        self.flush_to_os(&mut bufs.to_os).await;
        self.back_to_udp_if_answered().await;
        result
    }

    /// Every datagram of the batch in `bufs.rx`, received on the socket of `local`.
    async fn datagram_batch(&mut self, now: Instant, local: SocketAddr, bufs: &mut Buffers) {
        let (rx, to_os) = (&mut bufs.rx, &mut bufs.to_os);
        for i in 0..rx.len() {
            let Some((remote, len, stride)) = rx.slot(i) else {
                continue;
            };
            self.note_udp(remote);
            for range in segments(len, stride) {
                let Some(data) = rx.slot_mut(i).and_then(|s| s.get_mut(range)) else {
                    break;
                };
                self.datagram(now, local, remote, data, to_os).await;
            }
        }
    }

    /// One datagram (or TCP frame) from `remote` on `local`: to the session, and a decrypted
    /// packet on to the packet path.
    async fn datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &mut [u8],
        to_os: &mut Option<PacketBatch>,
    ) {
        log::trace!("received {} bytes from {remote} on {local}", data.len());
        match self.protocol.handle_datagram(now, local, remote, data) {
            Received::Packet(range) => {
                if let Some(packet) = data.get(range) {
                    self.deliver_packet(packet, to_os).await;
                }
            }
            Received::Control => {}
            Received::Dropped(reason) => log::trace!("datagram dropped: {reason}"),
        }
    }

    /// A decrypted packet for the packet path: into the send batch where the path takes
    /// batches, else straight from where it was decrypted.
    async fn deliver_packet(&mut self, packet: &[u8], batch: &mut Option<PacketBatch>) {
        let Some(packets) = self.packets.as_mut() else {
            return;
        };
        let Some(batch) = batch.as_mut() else {
            if let Err(e) = packets.send(packet).await {
                log::debug!("packet path refused a packet: {e}");
            }
            return;
        };
        if batch.is_full() {
            if let Err(e) = packets.send_batch(batch).await {
                log::debug!("packet path refused packets: {e}");
            }
        }
        batch.push(packet);
    }

    async fn flush_to_os(&mut self, batch: &mut Option<PacketBatch>) {
        let (Some(packets), Some(batch)) = (self.packets.as_mut(), batch.as_mut()) else {
            return;
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = packets.send_batch(batch).await {
            log::debug!("packet path refused packets: {e}");
        }
    }

    /// The first batch of packets of a wakeup (`first`), then more that are ready, up to
    /// [`TX_PACKETS`]: sealed into `bufs.tx` and sent in GSO runs.
    async fn packets_from_os(&mut self, first: io::Result<()>, bufs: &mut Buffers) {
        let now = now();
        bufs.tx.set_max_segments(self.sockets.max_segments());
        let mut next = Some(first);
        let mut sealed = 0;
        loop {
            match next {
                Some(Ok(())) => {
                    for i in 0..bufs.from_os.len() {
                        if let Some(packet) = bufs.from_os.packet(i) {
                            self.seal(now, packet, &mut bufs.tx).await;
                        }
                    }
                    sealed += bufs.from_os.len().max(1);
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => {
                    // The device is gone or broken: without it no traffic can flow, and
                    // reading it again would spin. Say so and close the session.
                    log::warn!("the packet path failed ({e}): closing the session");
                    self.packets = None;
                    self.protocol.close(now);
                    break;
                }
                None => break,
            }
            let (true, Some(packets)) = (sealed < TX_PACKETS, self.packets.as_mut()) else {
                break;
            };
            // One poll: packets already waiting, or none (nothing is lost by dropping the
            // future: `PacketIo::recv_batch` is cancel-safe, as `select!` requires anyway).
            next = packets.recv_batch(&mut bufs.from_os).now_or_never();
        }
        self.flush_tx(&mut bufs.tx).await;
    }

    /// Seals one packet into the send batch (sending the batch first when it is full).
    async fn seal(&mut self, now: Instant, packet: &[u8], tx: &mut TxBatch) {
        if self.transport.active {
            // over TCP (RFC 9329) each ESP packet is one frame, gathered for one write
            return self.seal_frame(now, packet).await;
        }
        if !tx.has_room(packet.len() + ESP_OVERHEAD) {
            self.flush_tx(tx).await;
        }
        match self.protocol.handle_packet(now, packet, tx.free()) {
            Ok(d) => tx.push(d.local, d.remote, d.len),
            Err(reason) => log::trace!("packet dropped: {reason}"),
        }
    }

    /// Sends the batch's runs, one call each; a run that fails is lost like any datagram and
    /// does not stop the others.
    async fn flush_tx(&mut self, tx: &mut TxBatch) {
        self.flush_frames().await;
        for (run, bytes) in tx.runs() {
            if let Err(e) = self
                .sockets
                .send_run(run.local, run.remote, bytes, run.gso())
                .await
            {
                log::debug!(
                    "cannot send {} ESP datagram(s) to {}: {e}",
                    run.count,
                    run.remote
                );
            }
        }
        tx.clear();
    }

    async fn flush_transmits(&mut self) {
        while let Some(t) = self.protocol.poll_transmit() {
            log::trace!(
                "sending {} bytes from {} to {}",
                t.payload.len(),
                t.local,
                t.remote
            );
            if let Err(e) = self.send_on_transport(t.local, t.remote, &t.payload).await {
                // Lost like any datagram: the session's retransmission covers it.
                log::warn!("cannot send to {}: {e}", t.remote);
            }
        }
    }

    /// Hands the session's events to the caller; true once the session is disconnected.
    fn deliver_events(
        &mut self,
        events: &mpsc::UnboundedSender<TimedEvent>,
        clock: &WallClock,
    ) -> bool {
        let mut disconnected = false;
        while let Some((at, event)) = self.protocol.poll_timed_event() {
            log::debug!("event: {event:?}");
            disconnected |= matches!(event, Event::Disconnected(_));
            self.note_event(&event);
            if matches!(event, Event::Reconnecting { .. }) {
                // The name may point elsewhere by the time the attempt starts.
                self.resolve_again();
            }
            // A caller that stopped listening still wants the session run to its end.
            let _ = events.send(TimedEvent {
                at: clock.at(at),
                event,
            });
        }
        disconnected || self.protocol.state() == State::Disconnected
    }

    /// Asks the routing again for the local address toward each server address, matches the
    /// sockets to it, and tells the session (always when `changed` says the platform saw a
    /// change; otherwise only when the list differs).
    async fn refresh_paths(&mut self, changed: bool) {
        let locals = self.sockets.refresh(&self.servers).await;
        if changed || locals != self.locals {
            log::info!("local addresses toward the server: {locals:?}");
            if let Some(&first) = locals.first() {
                self.local = first;
            }
            self.locals = locals;
            self.network_changed_on_transport().await;
        }
    }

    /// Binds exactly `ips` (preferred first) and tells the session.
    async fn use_locals(&mut self, ips: &[IpAddr]) {
        let locals = self.sockets.bind_exactly(ips).await;
        if let Some(&first) = locals.first() {
            self.local = first;
        }
        self.locals = locals;
        self.network_changed_on_transport().await;
    }

    /// Starts resolving the server's name again (when it has one and none is in flight).
    fn resolve_again(&mut self) {
        let (Some((host, port)), None) = (self.server_name.clone(), self.resolving.as_ref()) else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        self.resolving = Some(rx);
        tokio::spawn(async move {
            let _ = tx.send(socket::resolve_all(&host, port).await);
        });
    }

    /// A resolution came back: the session learns the addresses, the sockets follow them.
    async fn resolved(
        &mut self,
        result: Result<io::Result<Vec<SocketAddr>>, oneshot::error::RecvError>,
    ) {
        match result {
            Ok(Ok(addresses)) => {
                let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
                log::debug!("the server resolves to {ips:?}");
                self.protocol.set_server_addresses(now(), &ips);
                if addresses != self.servers {
                    self.servers = addresses;
                    self.refresh_paths(false).await;
                }
            }
            Ok(Err(e)) => log::info!(
                "cannot resolve the server again: {e} (keeping {:?})",
                self.servers
            ),
            Err(_) => {}
        }
    }
}

/// The driver's buffers, allocated once per run (the packet path's when it is attached).
struct Buffers {
    /// Datagrams received (ESP is decrypted in place).
    rx: RxBatch,
    /// ESP datagrams sealed for the sockets.
    tx: TxBatch,
    /// Packets read from the packet path.
    from_os: PacketBatch,
    /// Decrypted packets for a packet path that takes batches.
    to_os: Option<PacketBatch>,
}

impl Buffers {
    fn new<I: PacketIo>(packets: Option<&I>) -> Self {
        let mut bufs = Self {
            rx: RxBatch::new(),
            tx: TxBatch::new(TX_BYTES, TX_RUNS, 1),
            from_os: PacketBatch::for_recv(crate::packet_io::BatchShape::SINGLE),
            to_os: None,
        };
        if let Some(p) = packets {
            bufs.shape_for(p);
        }
        bufs
    }

    /// Shapes the packet path's buffers after it.
    fn shape_for<I: PacketIo>(&mut self, packets: &I) {
        let shape = packets.batch_shape();
        self.from_os = PacketBatch::for_recv(shape);
        self.to_os = shape.batched_send.then(|| PacketBatch::for_send(shape));
    }
}

/// The next packets from the packet path, or never when there is none (yet).
async fn recv_packets<I: PacketIo>(
    packets: Option<&mut I>,
    batch: &mut PacketBatch,
) -> io::Result<()> {
    match packets {
        Some(p) => p.recv_batch(batch).await,
        None => std::future::pending().await,
    }
}

/// The result of a resolution in flight, or never when none is.
async fn wait_resolved(
    rx: Option<&mut oneshot::Receiver<io::Result<Vec<SocketAddr>>>>,
) -> Result<io::Result<Vec<SocketAddr>>, oneshot::error::RecvError> {
    match rx {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

/// The packet path to attach, or never when none is coming.
async fn wait_attach<I>(
    attach: Option<&mut oneshot::Receiver<I>>,
) -> Result<I, oneshot::error::RecvError> {
    match attach {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A driver running on its own tokio task: read its events, ask it to close, wait for its end.
/// `I` is its packet path.
#[derive(Debug)]
pub struct Tunnel<I = NoPackets> {
    commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedReceiver<TimedEvent>,
    attach: Option<oneshot::Sender<I>>,
    task: JoinHandle<Result<(), DriverError>>,
    local: SocketAddr,
    server: SocketAddr,
}

impl Tunnel<NoPackets> {
    /// Binds toward `server` and starts the driver on a new task (it connects at once), with
    /// no packet path (the control plane alone).
    pub async fn start<P: Protocol + Send + 'static>(
        protocol: P,
        server: SocketAddr,
    ) -> Result<Self, DriverError> {
        Self::start_with(protocol, server, Some(NoPackets), SocketOptions::default()).await
    }
}

impl<I: PacketIo + 'static> Tunnel<I> {
    /// Binds toward `server` and starts the driver with the packet path `packets` (packets
    /// read before the CHILD SA exists are dropped and counted by the session).
    pub async fn start_with_packets<P: Protocol + Send + 'static>(
        protocol: P,
        server: SocketAddr,
        packets: I,
    ) -> Result<Self, DriverError> {
        Self::start_with(protocol, server, Some(packets), SocketOptions::default()).await
    }

    /// Binds toward `server` and starts the driver without a packet path: attach one with
    /// [`Tunnel::attach`] once it exists (a TUN needs the `Connected` event's addresses).
    pub async fn start_detached<P: Protocol + Send + 'static>(
        protocol: P,
        server: SocketAddr,
    ) -> Result<Self, DriverError> {
        Self::start_with(protocol, server, None, SocketOptions::default()).await
    }

    /// The general form: a packet path now (`Some`) or later (`None`, see [`Tunnel::attach`]),
    /// and platform socket options (a protect hook called before any socket is used).
    pub async fn start_with<P: Protocol + Send + 'static>(
        protocol: P,
        server: SocketAddr,
        packets: Option<I>,
        options: SocketOptions,
    ) -> Result<Self, DriverError> {
        let detached = packets.is_none();
        let driver = Driver::bind_with(protocol, server, packets, options).await?;
        let (local, server) = (driver.local_addr(), driver.server_addr());
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (attach, attach_rx) = if detached {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let task = tokio::spawn(driver.run_attaching(events_tx, commands_rx, attach_rx));
        Ok(Self {
            commands,
            events,
            attach,
            task,
            local,
            server,
        })
    }

    /// Hands the packet path to a driver started with [`Tunnel::start_detached`]. Gives it
    /// back when the driver already has one or has ended.
    pub fn attach(&mut self, packets: I) -> Result<(), I> {
        match self.attach.take() {
            Some(tx) => tx.send(packets),
            None => Err(packets),
        }
    }
}

impl<I> Tunnel<I> {
    /// The address we send from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// The next event; `None` once the driver has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await.map(|t| t.event)
    }

    /// The next event with the wall-clock time it happened.
    pub async fn next_timed_event(&mut self) -> Option<TimedEvent> {
        self.events.recv().await
    }

    /// Tells the driver the platform's network changed (an interface, address or route came or
    /// went): it finds the local addresses again and the session moves if it must. Does not wait.
    pub fn network_changed(&self) {
        if self.commands.try_send(Command::NetworkChanged).is_err() {
            log::debug!("network_changed: the driver has ended or is busy");
        }
    }

    /// Tells the driver which local addresses to send from, preferred first (bound with an
    /// ephemeral port each); the session moves to the first if it must. Does not wait.
    pub fn use_local_addresses(&self, ips: Vec<IpAddr>) {
        if self
            .commands
            .try_send(Command::UseLocalAddresses(ips))
            .is_err()
        {
            log::debug!("use_local_addresses: the driver has ended or is busy");
        }
    }

    /// Asks the session to close (DELETE); its `Disconnected` event follows. Does not wait.
    pub fn close(&self) {
        if self.commands.try_send(Command::Close).is_err() {
            log::debug!("close: the driver has ended or has closes queued already");
        }
    }

    /// Waits for the driver to end, and says why it failed if it did.
    pub async fn finish(self) -> Result<(), DriverError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(DriverError::Task(e.to_string())),
        }
    }

    /// Stops the driver at once, without closing the session.
    pub fn abort(self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
mod transport;
