//! INTERIM, to be deleted when the driver carries packets: a minimal client loop that runs a
//! `Session` over one UDP socket with a `ChannelPackets` packet path, shaped like
//! `roam_runtime::driver::Tunnel` (same method names) so the demo can switch to
//! `Tunnel::start_with_packets` by changing one line (see the `ClientTunnel` alias in
//! `demo.rs`). It does only what the demo needs: IKE, ESP both ways, timers, close.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use roam_proto::session::{Event, Received, Session, State};
use roam_runtime::packet_io::{ChannelPackets, PacketIo};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A session running on its own task with a packet path.
#[derive(Debug)]
pub struct PacketTunnel {
    close: mpsc::Sender<()>,
    events: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<Result<(), String>>,
    local: SocketAddr,
}

impl PacketTunnel {
    /// Binds toward `server` and starts connecting; packets flow once connected.
    pub async fn start_with_packets(
        session: Session,
        server: SocketAddr,
        packets: ChannelPackets,
    ) -> Result<Self, String> {
        let any: IpAddr = if server.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let probe = UdpSocket::bind((any, 0)).await.map_err(|e| e.to_string())?;
        probe.connect(server).await.map_err(|e| e.to_string())?;
        let source = probe.local_addr().map_err(|e| e.to_string())?.ip();
        let socket = UdpSocket::bind((source, 0))
            .await
            .map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (close, close_rx) = mpsc::channel(1);
        let task = tokio::spawn(run(
            session, socket, local, server, packets, events_tx, close_rx,
        ));
        Ok(Self {
            close,
            events,
            task,
            local,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    pub fn close(&self) {
        let _ = self.close.try_send(());
    }

    pub async fn finish(self) -> Result<(), String> {
        self.task.await.map_err(|e| e.to_string())?
    }
}

async fn run(
    mut session: Session,
    socket: UdpSocket,
    local: SocketAddr,
    server: SocketAddr,
    mut packets: ChannelPackets,
    events: mpsc::UnboundedSender<Event>,
    mut close: mpsc::Receiver<()>,
) -> Result<(), String> {
    session.connect(now(), local, server);
    let mut buf = vec![0u8; 65_535];
    let mut packet = vec![0u8; 65_535];
    let mut out = vec![0u8; 66_000];
    let mut closing = false;
    loop {
        while let Some(t) = session.poll_transmit() {
            if let Err(e) = socket.send_to(&t.payload, t.remote).await {
                log::debug!("demo client: send: {e}");
            }
        }
        let mut down = false;
        while let Some(e) = session.poll_event() {
            down |= matches!(e, Event::Disconnected(_));
            let _ = events.send(e);
        }
        if down || session.state() == State::Disconnected {
            return Ok(());
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, remote) = r.map_err(|e| e.to_string())?;
                if let Some(data) = buf.get_mut(..n) {
                    if let Received::Packet(range) = session.handle_datagram(now(), local, remote, data) {
                        if let Some(inner) = data.get(range) {
                            let _ = packets.send(inner).await;
                        }
                    }
                }
            }
            r = packets.recv(&mut packet) => {
                let n = r.map_err(|e| e.to_string())?;
                if let Some(p) = packet.get(..n) {
                    match session.handle_packet(now(), p, &mut out) {
                        Ok(d) => {
                            if let Some(esp) = out.get(..d.len) {
                                let _ = socket.send_to(esp, d.remote).await;
                            }
                        }
                        Err(e) => log::debug!("demo client: packet dropped: {e}"),
                    }
                }
            }
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => session.handle_timeout(now()),
            c = close.recv(), if !closing => {
                let _ = c;
                closing = true;
                session.close(now());
            }
        }
    }
}
