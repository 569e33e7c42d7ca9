//! The one place the FFI drives roam-runtime: resolve the server, build the session, start
//! `driver::Tunnel` with the platform's protect hook, forward its events (with their time),
//! close or re-probe the network on request.
//! The driver's end of the packet channel (`ChannelPackets`) carries the app's packets through
//! ESP for the run.

use std::net::SocketAddr;
use std::sync::Arc;

use roam_proto::session::Session;
use roam_runtime::driver::{self, ProtectSocket, SocketOptions, TimedEvent, Tunnel};
use roam_runtime::packet_io::ChannelPackets;
use roam_runtime::rng::OsRng;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::config::Validated;
use crate::error::VpnError;

/// What a run reports, in order; `Ended` comes last, exactly once.
#[derive(Debug)]
pub(crate) enum EngineEvent {
    /// Sockets are open: our local address and the server's.
    Bound {
        local: SocketAddr,
        server: SocketAddr,
    },
    Session(TimedEvent),
    /// The run failed (before or after connecting).
    Failed(VpnError),
    Ended,
}

/// Where a run's events go (called on a runtime thread; must not block).
pub(crate) trait EngineSink: Send + Sync + 'static {
    fn engine_event(&self, event: EngineEvent);
}

/// What the app asks of a running engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Close,
    NetworkChanged,
}

/// A running engine: ask it to close, or tell it the network changed.
#[derive(Debug)]
pub(crate) struct Engine {
    requests: mpsc::UnboundedSender<Request>,
}

impl Engine {
    /// Starts a run on `runtime`: resolve, bind (sockets protected first), connect.
    pub(crate) fn spawn(
        runtime: &Handle,
        validated: Validated,
        protect: ProtectSocket,
        packets: ChannelPackets,
        sink: Arc<dyn EngineSink>,
    ) -> Self {
        let (requests, requests_rx) = mpsc::unbounded_channel();
        runtime.spawn(async move {
            if let Err(e) = run(validated, protect, packets, &*sink, requests_rx).await {
                sink.engine_event(EngineEvent::Failed(e));
            }
            sink.engine_event(EngineEvent::Ended);
        });
        Self { requests }
    }

    /// Closes the session (DELETE); `Disconnected` and `Ended` follow. Does not wait.
    pub(crate) fn close(&self) {
        let _ = self.requests.send(Request::Close);
    }

    /// The platform's network changed: the driver finds its local addresses again and the
    /// session moves (MOBIKE) or reconnects. Does not wait.
    pub(crate) fn network_changed(&self) {
        let _ = self.requests.send(Request::NetworkChanged);
    }
}

async fn run(
    validated: Validated,
    protect: ProtectSocket,
    packets: ChannelPackets,
    sink: &dyn EngineSink,
    mut requests: mpsc::UnboundedReceiver<Request>,
) -> Result<(), VpnError> {
    let Validated {
        server,
        config,
        transport,
    } = validated;
    let address = driver::resolve(&server.host, server.port).await?;
    let session = Session::new(config, Box::new(OsRng))?;
    let options = SocketOptions {
        protect: Some(protect),
        server_name: Some((server.host, server.port)),
        transport,
    };
    let server = address;
    let mut tunnel = Tunnel::start_with(session, server, Some(packets), options).await?;
    sink.engine_event(EngineEvent::Bound {
        local: tunnel.local_addr(),
        server: tunnel.server_addr(),
    });
    let mut requests_open = true;
    loop {
        tokio::select! {
            event = tunnel.next_timed_event() => match event {
                Some(e) => sink.engine_event(EngineEvent::Session(e)),
                None => break,
            },
            request = requests.recv(), if requests_open => match request {
                Some(Request::NetworkChanged) => tunnel.network_changed(),
                Some(Request::Close) => tunnel.close(),
                None => {
                    // A dropped handle closes too.
                    requests_open = false;
                    tunnel.close();
                }
            }
        }
    }
    tunnel.finish().await?;
    Ok(())
}
