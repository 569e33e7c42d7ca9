//! The responder's TCP listener (RFC 9329): each accepted connection must start with the
//! "IKETCP" prefix (within `PREFIX_TIMEOUT`), then carries frames both ways. A reader task per
//! connection decodes frames and hands them to the server loop, which treats each like a
//! datagram on the NAT-T socket (the frame body is one); answers and ESP for that client go
//! back as frames through a writer task. Only clients open connections (the responder never
//! does); the connection is the client's address until it closes.
//!
//! Bounds: at most `MAX_CONNECTIONS` connections (more are closed at once), frames of at most
//! `MAX_FRAME` bytes (a larger length closes the connection), `WRITE_QUEUE` frames queued per
//! connection (more are dropped, as a full UDP socket would), and `INBOUND_QUEUE` frames
//! waiting for the loop in all (readers wait: TCP flow control slows the clients).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use roam_proto::wire::tcp::{length_field, FrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Most TCP connections at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The largest frame a client may send (IKE messages with certificate chains, ESP of a jumbo
/// inner packet): the length field's own limit.
pub const MAX_FRAME: usize = roam_proto::wire::tcp::MAX_FRAME;
/// Frames queued toward one client.
const WRITE_QUEUE: usize = 256;
/// Frames from every connection waiting for the server loop.
const INBOUND_QUEUE: usize = 1024;
/// How long a new connection may take to send the prefix.
pub const PREFIX_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection's reader hands the loop.
#[derive(Debug)]
pub(super) enum Inbound {
    /// A frame's body (a NAT-T datagram) from `remote`, on the connection accepted at `local`.
    Frame {
        local: SocketAddr,
        remote: SocketAddr,
        body: Vec<u8>,
    },
    /// The connection from `remote` is over.
    Closed { remote: SocketAddr },
}

#[derive(Debug)]
struct Conn {
    frames: mpsc::Sender<Vec<u8>>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// The listener and its connections.
#[derive(Debug)]
pub(super) struct TcpSide {
    listener: TcpListener,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound: mpsc::Receiver<Inbound>,
    conns: HashMap<SocketAddr, Conn>,
    /// `MAX_CONNECTIONS` (smaller in tests).
    max_connections: usize,
}

/// What woke the TCP side.
pub(super) enum TcpWake {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Inbound(Inbound),
}

impl TcpSide {
    pub(super) async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        Ok(Self {
            listener,
            inbound_tx,
            inbound,
            conns: HashMap::new(),
            max_connections: MAX_CONNECTIONS,
        })
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `remote` is a client on TCP.
    pub(super) fn has(&self, remote: SocketAddr) -> bool {
        self.conns.contains_key(&remote)
    }

    pub(super) async fn wake(&mut self) -> TcpWake {
        tokio::select! {
            a = self.listener.accept() => TcpWake::Accepted(a),
            Some(i) = self.inbound.recv() => TcpWake::Inbound(i),
        }
    }

    /// A new connection: refused over the cap, else its reader and writer start.
    pub(super) fn accepted(&mut self, stream: TcpStream, remote: SocketAddr) {
        if self.conns.len() >= self.max_connections {
            log::warn!(
                "TCP: {} connections already, refusing {remote}",
                self.conns.len()
            );
            return;
        }
        let local = match stream.local_addr() {
            Ok(l) => l,
            Err(e) => {
                log::debug!("TCP: {remote}: {e}");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        log::debug!("TCP: connection from {remote}");
        let (read, write) = stream.into_split();
        let (frames, frames_rx) = mpsc::channel(WRITE_QUEUE);
        let reader = tokio::spawn(read_frames(read, local, remote, self.inbound_tx.clone()));
        let writer = tokio::spawn(write_frames(write, frames_rx));
        self.conns.insert(
            remote,
            Conn {
                frames,
                reader,
                writer,
            },
        );
    }

    /// The connection from `remote` is over.
    pub(super) fn closed(&mut self, remote: SocketAddr) {
        if self.conns.remove(&remote).is_some() {
            log::debug!("TCP: connection from {remote} closed");
        }
    }

    /// Queues `body` (a NAT-T datagram) as one frame to `remote`; false when there is no
    /// connection from it or its queue is full.
    pub(super) fn send(&mut self, remote: SocketAddr, body: &[u8]) -> bool {
        let Some(conn) = self.conns.get(&remote) else {
            return false;
        };
        let Ok(field) = length_field(body.len()) else {
            return false;
        };
        let mut frame = Vec::with_capacity(field.len() + body.len());
        frame.extend_from_slice(&field);
        frame.extend_from_slice(body);
        match conn.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                log::debug!("TCP: queue to {remote} full, frame dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Reads the prefix (in time), then frames, until the stream ends or breaks.
async fn read_frames(
    mut read: OwnedReadHalf,
    local: SocketAddr,
    remote: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
) {
    let mut decoder = FrameDecoder::with_prefix(MAX_FRAME);
    let mut buf = vec![0u8; 16 * 1024];
    let mut prefix_by = Some(tokio::time::Instant::now() + PREFIX_TIMEOUT);
    let reason = loop {
        let n = match prefix_by {
            Some(t) => match tokio::time::timeout_at(t, read.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => break "no IKETCP prefix in time".to_string(),
            },
            None => read.read(&mut buf).await,
        };
        let n = match n {
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => n,
            Err(e) => break e.to_string(),
        };
        let mut frames = Vec::new();
        if let Err(e) = decoder.decode(buf.get(..n).unwrap_or_default(), |_, body| {
            frames.push(body.to_vec())
        }) {
            break e.to_string();
        }
        if decoder.past_prefix() {
            prefix_by = None;
        }
        for body in frames {
            let f = Inbound::Frame {
                local,
                remote,
                body,
            };
            if inbound.send(f).await.is_err() {
                return;
            }
        }
    };
    log::debug!("TCP: {remote}: {reason}");
    let _ = inbound.send(Inbound::Closed { remote }).await;
}

/// Writes queued frames until the queue closes or the stream breaks.
async fn write_frames(mut write: OwnedWriteHalf, mut frames: mpsc::Receiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if let Err(e) = write.write_all(&frame).await {
            log::debug!("TCP: write failed: {e}");
            return;
        }
    }
    let _ = write.shutdown().await;
}

impl<P: crate::packet_io::PacketIo> super::Loop<P> {
    /// A new connection, a frame (handled like a datagram on the NAT-T socket: IKE answered
    /// on the connection, ESP opened for the packet side) or a closed connection.
    pub(super) async fn on_tcp(&mut self, wake: TcpWake) {
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        match wake {
            TcpWake::Accepted(Ok((stream, remote))) => tcp.accepted(stream, remote),
            TcpWake::Accepted(Err(e)) => log::debug!("TCP accept: {e}"),
            TcpWake::Inbound(Inbound::Closed { remote }) => {
                tcp.closed(remote);
                self.peers.remove(&remote);
            }
            TcpWake::Inbound(Inbound::Frame {
                local,
                remote,
                mut body,
            }) => self.frame(local, remote, &mut body).await,
        }
    }
}

/// The TCP side's next wake-up, or never without one.
pub(super) async fn wake(tcp: Option<&mut TcpSide>) -> TcpWake {
    match tcp {
        Some(t) => t.wake().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The cap on connections: a flood of clients leaves the table at the cap, the refused
    // ones are closed at once, and a slot freed by a close is taken by the next client.
    #[tokio::test]
    async fn connections_stop_at_the_cap() {
        let mut side = TcpSide::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        side.max_connections = 8;
        let to = side.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..20 {
            clients.push(TcpStream::connect(to).await.unwrap());
            match tokio::time::timeout(Duration::from_secs(5), side.wake()).await {
                Ok(TcpWake::Accepted(Ok((stream, remote)))) => side.accepted(stream, remote),
                _ => panic!("no connection accepted"),
            }
        }
        assert_eq!(side.conns.len(), 8);
        // a refused client sees its connection closed
        let mut buf = [0u8; 1];
        let last = clients.last_mut().unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), last.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        // a close frees a slot
        let first = *side.conns.keys().next().unwrap();
        side.closed(first);
        let _late = TcpStream::connect(to).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(5), side.wake()).await {
            Ok(TcpWake::Accepted(Ok((stream, remote)))) => side.accepted(stream, remote),
            _ => panic!("no connection accepted"),
        }
        assert_eq!(side.conns.len(), 8);
    }
}
