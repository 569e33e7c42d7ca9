//! Runs Roam's responder (`roam_proto::ike::responder::Responder`) on one UDP socket: the demo's
//! embedded server today, `roam serve` tomorrow. IKE arrives plain (port-500 style) or behind
//! the non-ESP marker (NAT-T style); each client is answered in the framing it used.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use roam_proto::ike::responder::{Responder, ResponderEvent};
use roam_proto::wire::natt::{classify, NattDatagram, NON_ESP_MARKER};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most clients whose framing we remember (a bound against floods).
const MAX_PEERS: usize = 65_536;

/// A responder running on its own task.
#[derive(Debug)]
pub struct Server {
    local: SocketAddr,
    events: mpsc::UnboundedReceiver<ResponderEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Binds `bind` (port 0: any free port) and starts answering.
    pub async fn start(responder: Responder, bind: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(bind).await?;
        let local = socket.local_addr()?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(responder, socket, events_tx, stop_rx));
        Ok(Self {
            local,
            events,
            stop: Some(stop),
            task,
        })
    }

    /// The address clients reach.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next responder event.
    pub async fn next_event(&mut self) -> Option<ResponderEvent> {
        self.events.recv().await
    }

    /// Stops the server and waits for its task.
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

async fn run(
    mut responder: Responder,
    socket: UdpSocket,
    events: mpsc::UnboundedSender<ResponderEvent>,
    mut stop: oneshot::Receiver<()>,
) -> io::Result<()> {
    let local = socket.local_addr()?;
    let mut framed_peers: HashSet<SocketAddr> = HashSet::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (len, remote) = match r {
                    Ok(x) => x,
                    Err(e) => { log::debug!("responder receive: {e}"); continue; }
                };
                let data = buf.get(..len).unwrap_or_default();
                match classify(data) {
                    NattDatagram::Ike(ike) => {
                        if framed_peers.len() < MAX_PEERS { framed_peers.insert(remote); }
                        responder.handle_message(now(), local, remote, ike);
                    }
                    NattDatagram::Keepalive => {}
                    // Not NAT-T framed: a plain IKE message (ESP arrives with the data plane).
                    _ => responder.handle_message(now(), local, remote, data),
                }
            }
            _ = &mut stop => return Ok(()),
        }
        while let Some(out) = responder.poll_outgoing() {
            let mut framed;
            let payload = if framed_peers.contains(&out.remote) {
                framed = NON_ESP_MARKER.to_vec();
                framed.extend_from_slice(&out.message);
                &framed
            } else {
                &out.message
            };
            if let Err(e) = socket.send_to(payload, out.remote).await {
                log::warn!("responder: cannot send to {}: {e}", out.remote);
            }
        }
        while let Some(e) = responder.poll_event() {
            let _ = events.send(e);
        }
    }
}
