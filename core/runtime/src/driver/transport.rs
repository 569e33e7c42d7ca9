//! The driver's choice of transport and its TCP connections (RFC 9329), kept out of the event
//! loop: which transport the session starts on, the fallback from UDP to TCP when UDP goes
//! unanswered (`auto`), what worked on each network, the TCP paths after a network change,
//! and a connection that closes under the session (a lost path; a new connection is opened
//! at once for the reconnect).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use roam_proto::session::{Event, Transport};

use super::{now, Buffers, Driver, Protocol};
use crate::packet_io::PacketIo;
use crate::tcp::{FrameBatch, Memory, TcpEvent, TcpPaths, TransportMode, TransportPolicy};

/// The largest frame RFC 9329's 16-bit length allows (read into one buffer).
const MAX_FRAME: usize = 65_535;

/// The driver's transport state.
#[derive(Debug)]
pub(super) struct TransportState {
    policy: TransportPolicy,
    paths: TcpPaths,
    /// The session's path is TCP now.
    pub(super) active: bool,
    /// `auto` on UDP: when to start over on TCP unless the server answered by then.
    fallback_at: Option<tokio::time::Instant>,
    /// `auto` on TCP: when to try UDP again.
    probe_at: Option<tokio::time::Instant>,
    /// `auto` on TCP: the server answered over UDP (a probe, or a late answer): move back.
    udp_answered: bool,
    memory: Memory,
    /// A frame read from a TCP connection (taken out while the session handles it); empty
    /// until the first connection opens.
    buf: Vec<u8>,
    /// ESP frames waiting for one write.
    frames: FrameBatch,
}

/// What woke the transport up.
pub(super) enum Wake {
    Tcp(TcpEvent),
    Fallback,
    /// Time to try UDP again.
    Probe,
}

impl TransportState {
    pub(super) fn new(policy: TransportPolicy, protect: Option<super::ProtectSocket>) -> Self {
        let paths = TcpPaths::new(protect).with_tls(policy.tls.clone());
        Self {
            policy,
            paths,
            active: false,
            fallback_at: None,
            probe_at: None,
            udp_answered: false,
            memory: Memory::default(),
            buf: Vec::new(),
            frames: FrameBatch::new(),
        }
    }

    /// The transport of the session's path now.
    pub(super) fn transport(&self) -> Transport {
        if self.active {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    /// The next frame or closed connection, or the fallback deadline; never while neither
    /// can come.
    pub(super) async fn wake(&mut self) -> Wake {
        // The frame buffer exists only once a connection does: a session on UDP never has it.
        if !self.paths.is_empty() && self.buf.len() < MAX_FRAME {
            self.buf.resize(MAX_FRAME, 0);
        }
        let at = |t: Option<tokio::time::Instant>| async move {
            match t {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = self.paths.recv(&mut self.buf) => Wake::Tcp(ev),
            () = at(self.fallback_at) => Wake::Fallback,
            () = at(self.probe_at) => Wake::Probe,
        }
    }
}

impl<P: Protocol, I: PacketIo> Driver<P, I> {
    /// The server's address of that family on its TCP port.
    fn tcp_server(&self, v4: bool) -> Option<SocketAddr> {
        let port = self.transport.policy.tcp_port;
        self.servers
            .iter()
            .chain(std::iter::once(&self.server))
            .find(|s| s.is_ipv4() == v4)
            .map(|s| SocketAddr::new(s.ip(), port))
    }

    /// Opens (or keeps) a TCP connection from each local address's IP; returns their local
    /// addresses, preferred first.
    async fn open_tcp_paths(&mut self) -> Vec<SocketAddr> {
        let ips: Vec<IpAddr> = self.locals.iter().map(SocketAddr::ip).collect();
        let servers: Vec<SocketAddr> = [true, false]
            .into_iter()
            .filter_map(|v4| self.tcp_server(v4))
            .collect();
        let server_for = |v4: bool| servers.iter().find(|s| s.is_ipv4() == v4).copied();
        self.transport.paths.connect_from(&ips, server_for).await
    }

    /// Where the session starts: the local address and the server's address on the
    /// transport the policy (and the memory of this network) picks.
    pub(super) async fn start_transport(&mut self) -> (SocketAddr, SocketAddr) {
        let network = Memory::key(&self.locals);
        let tcp = match self.transport.policy.mode {
            TransportMode::Udp => false,
            TransportMode::Tcp => true,
            TransportMode::Auto => self.transport.memory.recall(&network) == Some(Transport::Tcp),
        };
        if !tcp {
            self.arm_fallback();
            return (self.local, self.server);
        }
        self.transport.active = true;
        self.arm_probe();
        self.protocol.set_transport(Transport::Tcp);
        let server = self
            .tcp_server(self.server.is_ipv4())
            .unwrap_or(self.server);
        let locals = self.open_tcp_paths().await;
        log::info!("connecting over TCP (RFC 9329) to {server}");
        (locals.first().copied().unwrap_or(self.local), server)
    }

    /// `auto` on UDP: TCP is tried if UDP stays unanswered for the fallback time.
    fn arm_fallback(&mut self) {
        if self.transport.policy.mode == TransportMode::Auto && !self.transport.active {
            self.transport.fallback_at =
                Some(tokio::time::Instant::now() + self.transport.policy.fallback);
        }
    }

    /// A datagram came in on UDP from `remote`: UDP works (no fallback).
    pub(super) fn note_udp(&mut self, remote: SocketAddr) {
        if self
            .servers
            .iter()
            .chain(std::iter::once(&self.server))
            .any(|s| s.ip() == remote.ip())
        {
            self.transport.fallback_at = None;
            if self.transport.active && self.transport.policy.mode == TransportMode::Auto {
                self.transport.udp_answered = true;
            }
        }
    }

    /// `auto` on TCP: UDP is tried again after the policy's interval.
    fn arm_probe(&mut self) {
        self.transport.probe_at = match self.transport.policy.udp_retry {
            Some(every)
                if self.transport.policy.mode == TransportMode::Auto && self.transport.active =>
            {
                Some(tokio::time::Instant::now() + every)
            }
            _ => None,
        };
    }

    /// Sends a UDP probe (an IKE_SA_INIT of a throwaway SA) from our UDP address to the
    /// server's, and arms the next one.
    async fn probe_udp(&mut self) {
        let (local, server) = (self.local, self.server);
        if let Some(probe) = self.protocol.udp_probe(now(), local, server) {
            log::debug!("on TCP: trying whether UDP to {server} gets through again");
            if let Err(e) = self.sockets.send(local, server, &probe).await {
                log::debug!("UDP probe to {server}: {e}");
            }
        }
        self.arm_probe();
    }

    /// The server answered over UDP while the session runs on TCP (`auto`): UDP works again
    /// here, so the session moves back to it (a new IKE SA, as after a network change) and
    /// this network is remembered for UDP.
    pub(super) async fn back_to_udp_if_answered(&mut self) {
        if !std::mem::take(&mut self.transport.udp_answered) || !self.transport.active {
            return;
        }
        log::info!("UDP gets through to the server again: moving back from TCP");
        self.transport
            .memory
            .remember(Memory::key(&self.locals), Transport::Udp);
        self.switch_to_udp();
        self.arm_fallback();
    }

    /// Moves the session from TCP to UDP (a new IKE SA there) and closes the TCP connections.
    fn switch_to_udp(&mut self) {
        self.transport.active = false;
        self.transport.probe_at = None;
        let locals = self.locals.clone();
        self.protocol
            .switch_transport(now(), Transport::Udp, &locals, self.server);
        self.transport.paths.close_all();
    }

    /// An event of the session: a connection that came up tells what works on this network.
    pub(super) fn note_event(&mut self, event: &Event) {
        if matches!(event, Event::Connected(_)) {
            let transport = self.transport.transport();
            log::debug!("{transport} works on this network");
            self.transport
                .memory
                .remember(Memory::key(&self.locals), transport);
        }
    }

    /// What woke the transport: a frame for the session, a closed connection, or the time to
    /// fall back to TCP.
    pub(super) async fn on_transport(&mut self, wake: Wake, bufs: &mut Buffers) {
        match wake {
            Wake::Tcp(TcpEvent::Frame { local, remote, len }) => {
                let mut frame = std::mem::take(&mut self.transport.buf);
                if let Some(data) = frame.get_mut(..len) {
                    self.datagram(now(), local, remote, data, &mut bufs.to_os)
                        .await;
                }
                self.transport.buf = frame;
                self.flush_to_os(&mut bufs.to_os).await;
            }
            Wake::Tcp(TcpEvent::Closed { local, reason }) => {
                log::warn!("the TCP connection from {local} closed ({reason})");
                self.protocol.transport_closed(now(), local);
                if self.transport.active && self.transport.paths.is_empty() {
                    // Only the initiator opens connections: a new one for the reconnect.
                    let locals = self.open_tcp_paths().await;
                    if !locals.is_empty() {
                        self.protocol.network_changed(now(), &locals);
                    }
                }
            }
            Wake::Fallback => {
                self.transport.fallback_at = None;
                self.fall_back_to_tcp().await;
            }
            Wake::Probe => self.probe_udp().await,
        }
    }

    /// UDP went unanswered for the fallback time: start over on TCP.
    async fn fall_back_to_tcp(&mut self) {
        let Some(server) = self.tcp_server(self.server.is_ipv4()) else {
            return;
        };
        log::info!(
            "no answer over UDP within {:?}: trying TCP to {server}",
            self.transport.policy.fallback
        );
        let locals = self.open_tcp_paths().await;
        if locals.is_empty() {
            log::warn!("TCP to {server} failed too: staying on UDP");
            return;
        }
        self.transport.active = true;
        self.protocol
            .switch_transport(now(), Transport::Tcp, &locals, server);
        self.arm_probe();
    }

    /// The network changed (the driver's UDP `locals` are new): the session learns its paths
    /// on the transport this network should use (`auto`: UDP first unless TCP is what worked
    /// here; then the fallback is armed again).
    pub(super) async fn network_changed_on_transport(&mut self) {
        let network = Memory::key(&self.locals);
        let tcp = match self.transport.policy.mode {
            TransportMode::Udp => false,
            TransportMode::Tcp => true,
            TransportMode::Auto => self.transport.memory.recall(&network) == Some(Transport::Tcp),
        };
        let was_tcp = self.transport.active;
        if tcp {
            let locals = self.open_tcp_paths().await;
            let server = self
                .tcp_server(self.server.is_ipv4())
                .unwrap_or(self.server);
            self.transport.active = true;
            self.arm_probe();
            if was_tcp {
                self.protocol.network_changed(now(), &locals);
            } else {
                self.protocol
                    .switch_transport(now(), Transport::Tcp, &locals, server);
            }
            return;
        }
        if was_tcp {
            log::info!("a new network: trying UDP again first");
            self.switch_to_udp();
        } else {
            let locals = self.locals.clone();
            self.protocol.network_changed(now(), &locals);
        }
        self.arm_fallback();
    }

    /// Sends `payload` from `local` to `remote` on the session's transport (a TCP frame, or a
    /// UDP datagram). Over TCP without a connection, one is opened first.
    pub(super) async fn send_on_transport(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        if !self.transport.active {
            return self.sockets.send(local, remote, payload).await;
        }
        self.ensure_tcp_path(local).await?;
        self.transport.paths.send(local, remote, payload).await
    }

    /// Over TCP: seals `packet` straight into the frame batch (sent by `flush_frames`, or
    /// first when the batch is full or holds another path's frames).
    pub(super) async fn seal_frame(&mut self, now: Instant, packet: &[u8]) {
        if !self
            .transport
            .frames
            .has_room(packet.len() + super::ESP_OVERHEAD)
        {
            self.flush_frames().await;
        }
        let at = self.transport.frames.free_at();
        let d = match self
            .protocol
            .handle_packet(now, packet, self.transport.frames.free())
        {
            Ok(d) => d,
            Err(reason) => return log::trace!("packet dropped: {reason}"),
        };
        if self.transport.frames.commit(d.local, d.remote, d.len) {
            return;
        }
        // A new path (MOBIKE): the frames gathered for the old one leave first.
        self.flush_frames().await;
        if !self
            .transport
            .frames
            .commit_alone(at, d.local, d.remote, d.len)
        {
            log::debug!("ESP of {} bytes does not fit a TCP frame", d.len);
        }
    }

    /// Sends the queued ESP frames in one write (lost like datagrams when that fails).
    pub(super) async fn flush_frames(&mut self) {
        let Some((local, remote)) = self.transport.frames.path() else {
            return;
        };
        let sent = match self.ensure_tcp_path(local).await {
            Ok(()) => {
                let t = &mut self.transport;
                t.paths.send_frames(local, remote, t.frames.bytes()).await
            }
            Err(e) => Err(e),
        };
        self.transport.frames.clear();
        if let Err(e) = sent {
            log::debug!("cannot send ESP to {remote}: {e}");
        }
    }

    /// Over TCP: a connection to send on, opened when there is none.
    async fn ensure_tcp_path(&mut self, local: SocketAddr) -> io::Result<()> {
        if !self.transport.paths.is_empty() {
            return Ok(());
        }
        let locals = self.open_tcp_paths().await;
        if locals.is_empty() {
            // The attempt has no path: the session backs off and tries again (a request
            // sent into no connection would wait for an answer that cannot come, since
            // nothing is retransmitted over TCP).
            self.protocol.transport_closed(now(), local);
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no TCP connection to the server",
            ));
        }
        self.protocol.network_changed(now(), &locals);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_frame_buffer_waits_for_a_connection() {
        let mut state = TransportState::new(TransportPolicy::default(), None);
        let quiet = tokio::time::timeout(Duration::from_millis(5), state.wake()).await;
        assert!(
            quiet.is_err(),
            "nothing wakes the transport of a session on UDP"
        );
        assert_eq!(
            state.buf.capacity(),
            0,
            "a session on UDP holds no frame buffer"
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.1".parse().unwrap();
        state.paths.connect(source, server).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(5), state.wake()).await;
        assert_eq!(
            state.buf.len(),
            MAX_FRAME,
            "a connection gets the whole frame buffer"
        );
    }
}
