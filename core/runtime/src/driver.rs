//! The event loop that runs a sans-IO session over real UDP sockets and a tokio timer.
//!
//! [`Driver`] owns the sockets and the protocol state machine; one turn of its loop sends what
//! the session wants sent, hands its events to the caller, then waits for the first of: a
//! datagram, the session's deadline, or a command. It ends when the session is disconnected.
//! [`Tunnel`] runs a driver on its own task and is the caller's handle to it.
//!
//! The driver is written against the [`Protocol`] trait (implemented for
//! `roam_proto::session::Session`) so its plumbing can be tested with a fake peer.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use roam_proto::session::{Event, Received, Session, State, Transmit};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::socket::{self, Sockets};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
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
    /// The deadline from `poll_timeout` has passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Starts closing (a DELETE); the session ends when answered or timed out.
    fn close(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_event(&mut self) -> Option<Event>;
    fn state(&self) -> State;
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
}

/// What the caller can ask of a running driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Close the session (DELETE the IKE SA); the driver ends once the session has.
    Close,
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

impl std::fmt::Debug for ProtectSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProtectSocket(..)")
    }
}

/// Optional platform settings for the driver's sockets (`Default`: none, as on a desktop).
#[derive(Clone, Debug, Default)]
pub struct SocketOptions {
    pub protect: Option<ProtectSocket>,
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

/// Runs `protocol` against `server` until it is disconnected: binds, connects, loops.
pub async fn run<P: Protocol>(
    protocol: P,
    server: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    commands: mpsc::Receiver<Command>,
) -> Result<(), DriverError> {
    Driver::bind(protocol, server)
        .await?
        .run(events, commands)
        .await
}

/// A session, its sockets and its timer.
pub struct Driver<P> {
    protocol: P,
    sockets: Sockets,
    local: SocketAddr,
    server: SocketAddr,
}

impl<P: Protocol> Driver<P> {
    /// Opens the socket toward `server`. Nothing is sent until `run`.
    pub async fn bind(protocol: P, server: SocketAddr) -> Result<Self, DriverError> {
        Self::bind_with(protocol, server, SocketOptions::default()).await
    }

    /// `bind` with platform socket options (a protect hook).
    pub async fn bind_with(
        protocol: P,
        server: SocketAddr,
        options: SocketOptions,
    ) -> Result<Self, DriverError> {
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
        })
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
        mut self,
        events: mpsc::UnboundedSender<Event>,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<(), DriverError> {
        log::info!("connecting from {} to {}", self.local, self.server);
        self.protocol.connect(now(), self.local, self.server);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut commands_open = true;
        loop {
            self.flush_transmits().await;
            if self.deliver_events(&events) {
                // Whatever the session queued on its way out has been sent above.
                log::debug!("session disconnected, driver ends");
                return Ok(());
            }
            let deadline = self
                .protocol
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                received = self.sockets.recv(&mut buf) => match received {
                    Ok(r) => {
                        log::trace!("received {} bytes from {} on {}", r.len, r.remote, r.local);
                        if let Some(data) = buf.get_mut(..r.len) {
                            // Inner packets reach a TUN once the driver has one.
                            let _ = self.protocol.handle_datagram(now(), r.local, r.remote, data);
                        }
                    }
                    Err(e) if socket::is_transient(&e) => log::debug!("receive: {e}"),
                    Err(e) => return Err(DriverError::Socket(e)),
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.protocol.handle_timeout(now());
                }
                command = commands.recv(), if commands_open => match command {
                    Some(Command::Close) => {
                        log::info!("closing the session");
                        self.protocol.close(now());
                    }
                    None => {
                        log::debug!("the tunnel handle is gone: closing the session");
                        commands_open = false;
                        self.protocol.close(now());
                    }
                },
            }
        }
    }

    async fn flush_transmits(&mut self) {
        while let Some(t) = self.protocol.poll_transmit() {
            log::trace!(
                "sending {} bytes from {} to {}",
                t.payload.len(),
                t.local,
                t.remote
            );
            if let Err(e) = self.sockets.send(t.local, t.remote, &t.payload).await {
                // Lost like any datagram: the session's retransmission covers it.
                log::warn!("cannot send to {}: {e}", t.remote);
            }
        }
    }

    /// Hands the session's events to the caller; true once the session is disconnected.
    fn deliver_events(&mut self, events: &mpsc::UnboundedSender<Event>) -> bool {
        let mut disconnected = false;
        while let Some(event) = self.protocol.poll_event() {
            log::debug!("event: {event:?}");
            disconnected |= matches!(event, Event::Disconnected(_));
            // A caller that stopped listening still wants the session run to its end.
            let _ = events.send(event);
        }
        disconnected || self.protocol.state() == State::Disconnected
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A driver running on its own tokio task: read its events, ask it to close, wait for its end.
#[derive(Debug)]
pub struct Tunnel {
    commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<Result<(), DriverError>>,
    local: SocketAddr,
    server: SocketAddr,
}

impl Tunnel {
    /// Binds toward `server` and starts the driver on a new task (it connects at once).
    pub async fn start<P: Protocol + Send + 'static>(
        protocol: P,
        server: SocketAddr,
    ) -> Result<Self, DriverError> {
        Self::start_with(protocol, server, SocketOptions::default()).await
    }

    /// `start` with platform socket options (a protect hook called before any socket is used).
    pub async fn start_with<P: Protocol + Send + 'static>(
        protocol: P,
        server: SocketAddr,
        options: SocketOptions,
    ) -> Result<Self, DriverError> {
        let driver = Driver::bind_with(protocol, server, options).await?;
        let (local, server) = (driver.local_addr(), driver.server_addr());
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(driver.run(events_tx, commands_rx));
        Ok(Self {
            commands,
            events,
            task,
            local,
            server,
        })
    }

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
        self.events.recv().await
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
