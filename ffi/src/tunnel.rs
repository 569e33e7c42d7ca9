//! `VpnTunnel`: the one object an app holds. It owns its own tokio runtime (one worker
//! thread; no global runtime), a callback thread that calls the app in order with no lock
//! held, and the packet path between the app (a TUN fd or packet-flow calls) and the engine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use roam_proto::session::{Event, RekeyKind};
use roam_runtime::driver::{unix_ms, ProtectSocket, TimedEvent};
use roam_runtime::packet_io::ChannelPackets;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::callbacks::{guarded, PacketFlow, PlatformCallbacks};
use crate::config::{ConfigSource, VpnConfig};
use crate::engine::{Engine, EngineEvent, EngineSink};
use crate::error::VpnError;
use crate::tun_fd::{self, TunFd};
use crate::types::{
    disconnect_reason, network_settings, NetworkInfo, NetworkSettings, TunnelState, TunnelStatus,
    VpnEvent,
};

/// Packets queued each way between the app and the engine.
const PACKET_QUEUE: usize = 256;
/// Most packets handed to `PacketFlow.write_packets` in one call.
const FLOW_BATCH: usize = 64;
/// Largest packet read from a TUN fd.
const MAX_PACKET: usize = 65_535;

/// Objects alive (tunnels and their shared state), for leak tests.
pub(crate) static LIVE_OBJECTS: AtomicU64 = AtomicU64::new(0);

/// A VPN tunnel: configure it, start it, tell it what the platform sees, stop it.
#[derive(uniffi::Object)]
pub struct VpnTunnel {
    runtime: Option<Runtime>,
    shared: Arc<Shared>,
}

/// Where decrypted packets go.
#[derive(Clone)]
enum Output {
    None,
    Flow(Arc<dyn PacketFlow>),
    Fd(Arc<TunFd>),
}

/// A call into the app, made on the callback thread.
enum Call {
    Event(VpnEvent),
    Settings(NetworkSettings),
}

/// The current run.
struct Running {
    generation: u64,
    engine: Engine,
    to_tunnel: mpsc::Sender<Vec<u8>>,
}

/// What the tasks, the callback thread and the object share.
struct Shared {
    source: ConfigSource,
    platform: Arc<dyn PlatformCallbacks>,
    mtu: u16,
    status: Mutex<TunnelStatus>,
    running: Mutex<Option<Running>>,
    generation: AtomicU64,
    output: watch::Sender<Output>,
    calls: std_mpsc::Sender<Call>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    packets_to_tunnel: AtomicU64,
    bytes_to_tunnel: AtomicU64,
    packets_from_tunnel: AtomicU64,
    bytes_from_tunnel: AtomicU64,
    dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[uniffi::export]
impl VpnTunnel {
    /// A tunnel for `config` (validated now: a bad field is a `VpnError::Config`).
    #[uniffi::constructor]
    pub fn new(
        config: VpnConfig,
        platform: Arc<dyn PlatformCallbacks>,
    ) -> Result<Arc<Self>, VpnError> {
        Self::with_source(ConfigSource::Records(Box::new(config)), platform)
    }

    /// A tunnel for a profile in the TOML format of `roam connect`; relative file names in it
    /// are relative to `base_dir`.
    #[uniffi::constructor]
    pub fn from_profile(
        profile_toml: String,
        base_dir: String,
        platform: Arc<dyn PlatformCallbacks>,
    ) -> Result<Arc<Self>, VpnError> {
        let source = ConfigSource::Profile {
            text: Arc::new(Zeroizing::new(profile_toml)),
            base_dir,
        };
        Self::with_source(source, platform)
    }

    /// Connects. Progress arrives through `on_event`; settings through
    /// `apply_network_settings`. An error here is immediate (state, configuration).
    pub fn start(&self) -> Result<(), VpnError> {
        let validated = self.shared.source.build()?;
        let runtime = self.runtime()?;
        let mut running = lock(&self.shared.running);
        if running.is_some() {
            return Err(VpnError::state(
                "already running: stop() it and wait for Disconnected first",
            ));
        }
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut status = lock(&self.shared.status);
            *status = TunnelStatus {
                state: TunnelState::Connecting,
                network: status.network.clone(),
                asleep: status.asleep,
                ..TunnelStatus::default()
            };
        }
        let (driver_packets, app) = ChannelPackets::new(PACKET_QUEUE);
        runtime.spawn(output_pump(
            app.from_tunnel,
            self.shared.output.subscribe(),
            Arc::downgrade(&self.shared),
        ));
        if let Output::Fd(tun) = &*self.shared.output.borrow() {
            self.spawn_fd_input(runtime, tun.clone(), app.to_tunnel.clone());
        }
        let platform = self.shared.platform.clone();
        let protect = ProtectSocket(Arc::new(move |fd| {
            guarded("protect_socket", false, || platform.protect_socket(fd))
        }));
        let sink = Arc::new(Sink {
            shared: Arc::downgrade(&self.shared),
            generation,
        });
        let engine = Engine::spawn(runtime.handle(), validated, protect, driver_packets, sink);
        *running = Some(Running {
            generation,
            engine,
            to_tunnel: app.to_tunnel,
        });
        drop(running);
        log::info!("tunnel starting");
        Ok(())
    }

    /// Closes the session (DELETE to the server); `Disconnected` follows. Does nothing when not
    /// running. Does not wait.
    pub fn stop(&self) {
        match &*lock(&self.shared.running) {
            Some(r) => r.engine.close(),
            None => log::debug!("stop: not running"),
        }
    }

    /// Hands over the TUN file descriptor (Android `ParcelFileDescriptor.detachFd()`, iOS utun).
    /// The tunnel owns it from now on and closes it when replaced or dropped.
    pub fn set_tun_fd(&self, fd: i32) -> Result<(), VpnError> {
        let runtime = self.runtime()?;
        let owned =
            tun_fd::adopt(fd).map_err(|e| VpnError::platform(format!("TUN fd {fd}: {e}")))?;
        let tun = {
            let _entered = runtime.enter();
            TunFd::new(owned, tun_fd::UTUN_HEADER)
                .map_err(|e| VpnError::platform(format!("TUN fd {fd}: {e}")))?
        };
        let tun = Arc::new(tun);
        self.shared.output.send_replace(Output::Fd(tun.clone()));
        let to_tunnel = lock(&self.shared.running)
            .as_ref()
            .map(|r| r.to_tunnel.clone());
        if let Some(to_tunnel) = to_tunnel {
            self.spawn_fd_input(runtime, tun, to_tunnel);
        }
        log::info!("TUN fd adopted");
        Ok(())
    }

    /// Packet-flow mode (iOS `NEPacketTunnelFlow`): decrypted packets go to `flow`; packets
    /// from the OS come in through `send_packets`.
    pub fn set_packet_flow(&self, flow: Arc<dyn PacketFlow>) {
        self.shared.output.send_replace(Output::Flow(flow));
    }

    /// Packet-flow mode: IP packets the OS read (`packetFlow.readPackets`) for the tunnel.
    /// Returns how many were queued; the rest were dropped (not running, queue full).
    pub fn send_packets(&self, packets: Vec<Vec<u8>>) -> u32 {
        let to_tunnel = lock(&self.shared.running)
            .as_ref()
            .map(|r| r.to_tunnel.clone());
        let mut queued = 0u32;
        for p in packets {
            let len = p.len() as u64;
            let ok = to_tunnel.as_ref().is_some_and(|t| t.try_send(p).is_ok());
            if ok {
                queued += 1;
                self.shared.counters.count_to_tunnel(len);
            } else {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        queued
    }

    /// The platform's default network changed (or went away: `kind = None`). Recorded as the
    /// current path, reported as `NetworkChanged`, and handed to the running session: the
    /// driver asks the routing (through protected sockets) which local address reaches the
    /// server now, and the session moves its SAs there (MOBIKE; `Roamed` follows) or
    /// reconnects (`Reconnecting` follows).
    pub fn network_changed(&self, network: NetworkInfo) {
        log::info!(
            "network changed: {:?} ({} addresses)",
            network.kind,
            network.addresses.len()
        );
        lock(&self.shared.status).network = Some(network.clone());
        if let Some(r) = &*lock(&self.shared.running) {
            r.engine.network_changed();
        }
        self.shared.call(Call::Event(VpnEvent::NetworkChanged {
            network,
            roamed: false,
        }));
    }

    /// The device goes to sleep (iOS `sleep`). Recorded; the session's timers need no change
    /// (the clock counts sleep, so the liveness check runs at once on wake).
    pub fn sleep(&self) {
        log::info!("sleep");
        lock(&self.shared.status).asleep = true;
    }

    /// The device woke (iOS `wake`). The session's clock counted the sleep, so its liveness
    /// check runs at once; the network may have changed meanwhile, so the paths are probed
    /// again too.
    pub fn wake(&self) {
        log::info!("wake");
        lock(&self.shared.status).asleep = false;
        if let Some(r) = &*lock(&self.shared.running) {
            r.engine.network_changed();
        }
    }

    /// A snapshot: state, addresses, counters, path, last error.
    pub fn status(&self) -> TunnelStatus {
        let mut s = lock(&self.shared.status).clone();
        let c = &self.shared.counters;
        s.packets_to_tunnel = c.packets_to_tunnel.load(Ordering::Relaxed);
        s.bytes_to_tunnel = c.bytes_to_tunnel.load(Ordering::Relaxed);
        s.packets_from_tunnel = c.packets_from_tunnel.load(Ordering::Relaxed);
        s.bytes_from_tunnel = c.bytes_from_tunnel.load(Ordering::Relaxed);
        s.packets_dropped = c.dropped.load(Ordering::Relaxed);
        s
    }
}

impl VpnTunnel {
    fn with_source(
        source: ConfigSource,
        platform: Arc<dyn PlatformCallbacks>,
    ) -> Result<Arc<Self>, VpnError> {
        crate::logging::install();
        let mtu = source.build()?.config.mtu;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("roam-tunnel")
            .enable_all()
            .build()
            .map_err(VpnError::internal)?;
        let (calls, calls_rx) = std_mpsc::channel();
        let (output, _) = watch::channel(Output::None);
        let shared = Arc::new(Shared {
            source,
            platform: platform.clone(),
            mtu,
            status: Mutex::new(TunnelStatus::default()),
            running: Mutex::new(None),
            generation: AtomicU64::new(0),
            output,
            calls,
            counters: Counters::default(),
        });
        LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("roam-callbacks".into())
            .spawn(move || callback_thread(calls_rx, platform, weak))
            .map_err(VpnError::internal)?;
        LIVE_OBJECTS.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(Self {
            runtime: Some(runtime),
            shared,
        }))
    }

    fn runtime(&self) -> Result<&Runtime, VpnError> {
        self.runtime
            .as_ref()
            .ok_or_else(|| VpnError::internal("the runtime is gone"))
    }

    fn spawn_fd_input(&self, runtime: &Runtime, tun: Arc<TunFd>, to_tunnel: mpsc::Sender<Vec<u8>>) {
        runtime.spawn(fd_input(
            tun,
            to_tunnel,
            self.shared.output.subscribe(),
            Arc::downgrade(&self.shared),
        ));
    }
}

impl Drop for VpnTunnel {
    fn drop(&mut self) {
        if let Some(r) = lock(&self.shared.running).as_ref() {
            log::warn!("VpnTunnel dropped while running: the session ends without a DELETE");
            r.engine.close();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        LIVE_OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counters {
    fn count_to_tunnel(&self, len: u64) {
        self.packets_to_tunnel.fetch_add(1, Ordering::Relaxed);
        self.bytes_to_tunnel.fetch_add(len, Ordering::Relaxed);
    }
    fn count_from_tunnel(&self, len: u64) {
        self.packets_from_tunnel.fetch_add(1, Ordering::Relaxed);
        self.bytes_from_tunnel.fetch_add(len, Ordering::Relaxed);
    }
}

impl Shared {
    /// Queues a call into the app (made on the callback thread, in order).
    fn call(&self, call: Call) {
        let _ = self.calls.send(call);
    }

    /// The app could not do its part: record it and close the run.
    fn fail(&self, problem: &str) {
        log::warn!("{problem}: stopping");
        lock(&self.status).last_error = Some(problem.to_string());
        if let Some(r) = lock(&self.running).as_ref() {
            r.engine.close();
        }
    }

    fn on_engine(&self, generation: u64, event: EngineEvent) {
        if self.generation.load(Ordering::SeqCst) != generation {
            return; // a late event of an earlier run
        }
        match event {
            EngineEvent::Bound { local, server } => {
                let mut s = lock(&self.status);
                s.local_address = Some(local.to_string());
                s.server_address = Some(server.to_string());
            }
            EngineEvent::Session(timed) => self.on_session(timed),
            EngineEvent::Failed(e) => {
                let error = e.to_string();
                log::warn!("tunnel failed: {error}");
                let was = {
                    let mut s = lock(&self.status);
                    s.last_error = Some(error.clone());
                    std::mem::replace(&mut s.state, TunnelState::Disconnected)
                };
                if was != TunnelState::Disconnected {
                    self.call(Call::Event(VpnEvent::Disconnected {
                        reason: "error".into(),
                        error: Some(error),
                        at_unix_ms: unix_ms(wall_clock_now()),
                    }));
                }
            }
            EngineEvent::Ended => {
                let mut running = lock(&self.running);
                if running.as_ref().is_some_and(|r| r.generation == generation) {
                    *running = None;
                }
                drop(running);
                let mut s = lock(&self.status);
                if s.state != TunnelState::Disconnected {
                    s.state = TunnelState::Disconnected;
                }
            }
        }
    }
}

impl Shared {
    /// One event of the session: the status follows it, the app hears of it.
    fn on_session(&self, timed: TimedEvent) {
        let at_unix_ms = timed.unix_ms();
        let event = match timed.event {
            Event::StateChanged(state) => {
                let state = TunnelState::from(state);
                lock(&self.status).state = state;
                VpnEvent::StateChanged { state, at_unix_ms }
            }
            Event::Connected(info) => {
                let server = {
                    let mut s = lock(&self.status);
                    s.virtual_ips = info.virtual_ips.iter().map(|a| a.to_string()).collect();
                    s.server_address.clone().unwrap_or_default()
                };
                let server_ip = server
                    .parse::<SocketAddr>()
                    .map(|a| a.ip().to_string())
                    .unwrap_or(server);
                let settings = network_settings(&info, &server_ip, self.mtu);
                self.call(Call::Settings(settings));
                VpnEvent::Connected {
                    info: (&info).into(),
                    at_unix_ms,
                }
            }
            Event::Roamed { local, remote } => {
                let mut s = lock(&self.status);
                s.local_address = Some(local.to_string());
                s.server_address = Some(remote.to_string());
                VpnEvent::Roamed {
                    local_address: local.to_string(),
                    server_address: remote.to_string(),
                    at_unix_ms,
                }
            }
            Event::Rekeyed(kind) => VpnEvent::Rekeyed {
                sa: match kind {
                    RekeyKind::Child { .. } => "child",
                    RekeyKind::Ike { .. } => "ike",
                }
                .to_string(),
                at_unix_ms,
            },
            Event::Reconnecting {
                attempt,
                delay,
                reason,
            } => VpnEvent::Reconnecting {
                attempt,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                reason: reason.to_string(),
                at_unix_ms,
            },
            Event::Disconnected(reason) => {
                let (reason, error) = disconnect_reason(&reason);
                {
                    let mut s = lock(&self.status);
                    s.state = TunnelState::Disconnected;
                    if error.is_some() {
                        s.last_error = error.clone();
                    }
                }
                VpnEvent::Disconnected {
                    reason,
                    error,
                    at_unix_ms,
                }
            }
        };
        self.call(Call::Event(event));
    }
}

// The FFI layer owns clocks (the lint is for the sans-IO protocol).
#[allow(clippy::disallowed_methods)]
fn wall_clock_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// Routes one run's engine events to the shared state (without keeping it alive).
struct Sink {
    shared: Weak<Shared>,
    generation: u64,
}

impl EngineSink for Sink {
    fn engine_event(&self, event: EngineEvent) {
        if let Some(shared) = self.shared.upgrade() {
            shared.on_engine(self.generation, event);
        }
    }
}

/// Calls the app in order, with no lock held; ends when the tunnel is gone.
fn callback_thread(
    calls: std_mpsc::Receiver<Call>,
    platform: Arc<dyn PlatformCallbacks>,
    shared: Weak<Shared>,
) {
    for call in calls {
        match call {
            Call::Event(event) => guarded("on_event", (), || platform.on_event(event)),
            Call::Settings(settings) => {
                let applied = guarded("apply_network_settings", false, || {
                    platform.apply_network_settings(settings)
                });
                if !applied {
                    if let Some(shared) = shared.upgrade() {
                        shared.fail("the app could not apply the network settings");
                    }
                }
            }
        }
    }
}

/// Decrypted packets to wherever the app wants them now (flow callback or TUN fd).
async fn output_pump(
    mut from_tunnel: mpsc::Receiver<Vec<u8>>,
    output: watch::Receiver<Output>,
    shared: Weak<Shared>,
) {
    while let Some(first) = from_tunnel.recv().await {
        let mut batch = vec![first];
        while batch.len() < FLOW_BATCH {
            match from_tunnel.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let out = output.borrow().clone();
        match out {
            Output::Flow(flow) => {
                for p in &batch {
                    shared.counters.count_from_tunnel(p.len() as u64);
                }
                guarded("write_packets", (), || flow.write_packets(batch));
            }
            Output::Fd(tun) => {
                for p in batch {
                    match tun.write(&p).await {
                        Ok(()) => shared.counters.count_from_tunnel(p.len() as u64),
                        Err(e) => {
                            log::debug!("TUN write: {e}");
                            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Output::None => {
                shared
                    .counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Packets read from an adopted TUN fd into the tunnel, until the fd is replaced or the run ends.
async fn fd_input(
    tun: Arc<TunFd>,
    to_tunnel: mpsc::Sender<Vec<u8>>,
    mut output: watch::Receiver<Output>,
    shared: Weak<Shared>,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        tokio::select! {
            read = tun.read(&mut buf) => {
                let n = match read {
                    Ok(n) => n,
                    Err(e) => { log::warn!("TUN read: {e}"); return; }
                };
                let Some(shared) = shared.upgrade() else { return };
                let packet = buf.get(..n).unwrap_or_default().to_vec();
                match to_tunnel.try_send(packet) {
                    Ok(()) => shared.counters.count_to_tunnel(n as u64),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            changed = output.changed() => {
                let still_ours = changed.is_ok()
                    && matches!(&*output.borrow(), Output::Fd(t) if Arc::ptr_eq(t, &tun));
                if !still_ours {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
