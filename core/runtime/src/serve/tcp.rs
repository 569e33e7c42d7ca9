//! The responder's TCP listener (RFC 9329): each accepted connection must start with the
//! "IKETCP" prefix (within `PREFIX_TIMEOUT`), then carries frames both ways. A task per
//! connection decodes frames and hands them to the server loop, which treats each like a
//! datagram on the NAT-T socket (the frame body is one); answers and ESP for that client go
//! back as frames through the same task. Only clients open connections (the responder never
//! does); the connection is the client's address until it closes.
//!
//! With a TLS certificate (RFC 9329 section 8) the same port takes both kinds of client, told
//! apart by the first byte: `I` starts the plain prefix, 0x16 a TLS handshake record (the
//! prefix and frames then travel inside TLS). Any other first byte is refused and counted
//! ([`TcpStats`]); the first byte, the TLS handshake and the prefix must all come within
//! `PREFIX_TIMEOUT` of the accept.
//!
//! Bounds: at most `MAX_CONNECTIONS` connections (more are closed at once), frames of at most
//! `MAX_FRAME` bytes (a larger length closes the connection), `WRITE_QUEUE` frames queued per
//! connection (more are dropped, as a full UDP socket would), and `INBOUND_QUEUE` frames
//! waiting for the loop in all (readers wait: TCP flow control slows the clients).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use roam_proto::wire::tcp::{length_field, FrameDecoder, STREAM_PREFIX};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::tls::{TlsServer, TLS_HANDSHAKE};

/// Most TCP connections at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The largest frame a client may send (IKE messages with certificate chains, ESP of a jumbo
/// inner packet): the length field's own limit.
pub const MAX_FRAME: usize = roam_proto::wire::tcp::MAX_FRAME;
/// Frames queued toward one client.
const WRITE_QUEUE: usize = 256;
/// Frames from every connection waiting for the server loop.
const INBOUND_QUEUE: usize = 1024;
/// How long a new connection may take to send the prefix (and, with TLS, to finish the
/// handshake before it).
pub const PREFIX_TIMEOUT: Duration = Duration::from_secs(10);

/// What the TCP listener has seen since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections that started with the plain "IKETCP" prefix.
    pub plain: u64,
    /// Connections whose TLS handshake succeeded.
    pub tls: u64,
    /// Of those, the ones that resumed an earlier TLS session.
    pub tls_resumed: u64,
    /// Connections refused for their first byte (neither the prefix nor, with a certificate,
    /// a TLS handshake).
    pub refused: u64,
    /// TLS handshakes that failed.
    pub tls_failed: u64,
    /// Connections that sent nothing, or did not finish TLS, within `PREFIX_TIMEOUT`.
    pub timed_out: u64,
    /// Connections closed at once because `MAX_CONNECTIONS` were open.
    pub over_cap: u64,
}

/// The listener's counters, shared with the [`super::Server`] handle.
#[derive(Debug, Default)]
pub(super) struct Counters {
    plain: AtomicU64,
    tls: AtomicU64,
    tls_resumed: AtomicU64,
    refused: AtomicU64,
    tls_failed: AtomicU64,
    timed_out: AtomicU64,
    over_cap: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> TcpStats {
        TcpStats {
            plain: self.plain.load(Ordering::Relaxed),
            tls: self.tls.load(Ordering::Relaxed),
            tls_resumed: self.tls_resumed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            tls_failed: self.tls_failed.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            over_cap: self.over_cap.load(Ordering::Relaxed),
        }
    }
}

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
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
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
    /// The certificate for TLS clients (None: plain TCP only).
    tls: Option<TlsServer>,
    counters: Arc<Counters>,
}

/// What woke the TCP side.
pub(super) enum TcpWake {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Inbound(Inbound),
}

impl TcpSide {
    pub(super) async fn bind(addr: SocketAddr, tls: Option<TlsServer>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        Ok(Self {
            listener,
            inbound_tx,
            inbound,
            conns: HashMap::new(),
            max_connections: MAX_CONNECTIONS,
            tls,
            counters: Arc::default(),
        })
    }

    /// The counters, to read from outside the loop.
    pub(super) fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
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
            Counters::bump(&self.counters.over_cap);
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
        let (frames, frames_rx) = mpsc::channel(WRITE_QUEUE);
        let ends = Ends {
            local,
            remote,
            inbound: self.inbound_tx.clone(),
            frames: frames_rx,
        };
        let task = tokio::spawn(serve_conn(
            stream,
            self.tls.clone(),
            ends,
            self.counters.clone(),
        ));
        self.conns.insert(remote, Conn { frames, task });
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

/// A connection's ends toward the server loop.
struct Ends {
    local: SocketAddr,
    remote: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    frames: mpsc::Receiver<Vec<u8>>,
}

/// What a connection's first byte says it is.
enum Kind {
    Plain,
    Tls,
}

/// One connection from accept to close: its kind by the first byte, the TLS handshake when it
/// is TLS, then frames both ways; the loop learns when it is over.
async fn serve_conn(
    stream: TcpStream,
    tls: Option<TlsServer>,
    ends: Ends,
    counters: Arc<Counters>,
) {
    let deadline = Instant::now() + PREFIX_TIMEOUT;
    let (remote, inbound) = (ends.remote, ends.inbound.clone());
    let reason = match first_byte(&stream, deadline, tls.is_some()).await {
        Ok(Kind::Plain) => {
            Counters::bump(&counters.plain);
            let (read, write) = stream.into_split();
            frames_both_ways(read, write, deadline, ends).await
        }
        Ok(Kind::Tls) => match tls_handshake(stream, tls, deadline).await {
            Ok((stream, resumed)) => {
                Counters::bump(&counters.tls);
                if resumed {
                    Counters::bump(&counters.tls_resumed);
                }
                let (read, write) = tokio::io::split(stream);
                frames_both_ways(read, write, deadline, ends).await
            }
            Err((reason, timed_out)) => {
                Counters::bump(if timed_out {
                    &counters.timed_out
                } else {
                    &counters.tls_failed
                });
                reason
            }
        },
        Err(Refused::Silent) => {
            Counters::bump(&counters.timed_out);
            "nothing sent in time".to_string()
        }
        Err(Refused::Ended(reason)) => reason,
        Err(Refused::Byte(b)) => {
            Counters::bump(&counters.refused);
            format!("refused: first byte {b:#04x} is neither IKETCP nor a TLS handshake")
        }
    };
    log::debug!("TCP: {remote}: {reason}");
    let _ = inbound.send(Inbound::Closed { remote }).await;
}

/// Why a connection was turned away before its first byte was accepted.
enum Refused {
    /// Nothing came within the deadline.
    Silent,
    /// The stream ended or broke first.
    Ended(String),
    /// A first byte that starts neither kind.
    Byte(u8),
}

/// Peeks at the first byte (it stays in the stream for the reader or the TLS handshake).
async fn first_byte(stream: &TcpStream, deadline: Instant, tls: bool) -> Result<Kind, Refused> {
    let mut byte = [0u8; 1];
    let n = match tokio::time::timeout_at(deadline, stream.peek(&mut byte)).await {
        Err(_) => return Err(Refused::Silent),
        Ok(Err(e)) => return Err(Refused::Ended(e.to_string())),
        Ok(Ok(n)) => n,
    };
    match (n, byte[0]) {
        (0, _) => Err(Refused::Ended("end of stream".into())),
        (_, b) if Some(&b) == STREAM_PREFIX.first() => Ok(Kind::Plain),
        (_, TLS_HANDSHAKE) if tls => Ok(Kind::Tls),
        (_, b) => Err(Refused::Byte(b)),
    }
}

/// The server's TLS handshake within the deadline, and whether it resumed a session; on
/// failure the reason and whether it was the deadline.
#[cfg(feature = "tls")]
async fn tls_handshake(
    stream: TcpStream,
    tls: Option<TlsServer>,
    deadline: Instant,
) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, bool), (String, bool)> {
    let Some(tls) = tls else {
        return Err(("no TLS certificate".into(), false));
    };
    match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
        Ok(Ok(s)) => {
            let resumed = s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            Ok((s, resumed))
        }
        Ok(Err(e)) => Err((format!("TLS handshake failed: {e}"), false)),
        Err(_) => Err(("TLS handshake not done in time".into(), true)),
    }
}

#[cfg(not(feature = "tls"))]
async fn tls_handshake(
    _stream: TcpStream,
    _tls: Option<TlsServer>,
    _deadline: Instant,
) -> Result<(TcpStream, bool), (String, bool)> {
    Err(("this build has no TLS support".into(), false))
}

/// Frames from the client to the loop and from the loop to the client until either side
/// ends; the reason it ended.
async fn frames_both_ways<R, W>(read: R, write: W, prefix_by: Instant, ends: Ends) -> String
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::select! {
        reason = read_frames(read, ends.local, ends.remote, prefix_by, ends.inbound) => reason,
        () = write_frames(write, ends.frames) => "write side closed".to_string(),
    }
}

/// Reads the prefix (by `prefix_by`), then frames, until the stream ends or breaks; the
/// reason it ended.
async fn read_frames<R: AsyncRead + Unpin>(
    mut read: R,
    local: SocketAddr,
    remote: SocketAddr,
    prefix_by: Instant,
    inbound: mpsc::Sender<Inbound>,
) -> String {
    let mut decoder = FrameDecoder::with_prefix(MAX_FRAME);
    let mut buf = vec![0u8; 16 * 1024];
    let mut prefix_by = Some(prefix_by);
    loop {
        let n = match prefix_by {
            Some(t) => match tokio::time::timeout_at(t, read.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => return "no IKETCP prefix in time".to_string(),
            },
            None => read.read(&mut buf).await,
        };
        let n = match n {
            Ok(0) => return "end of stream".to_string(),
            Ok(n) => n,
            Err(e) => return e.to_string(),
        };
        let mut frames = Vec::new();
        if let Err(e) = decoder.decode(buf.get(..n).unwrap_or_default(), |_, body| {
            frames.push(body.to_vec())
        }) {
            return e.to_string();
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
                return "the server stopped".to_string();
            }
        }
    }
}

/// Bytes of queued frames gathered into one write (and one TLS record or a few).
const WRITE_BATCH: usize = 64 * 1024;

/// Writes queued frames until the queue closes or the stream breaks: what is queued when the
/// writer wakes goes out in one write (up to [`WRITE_BATCH`] bytes), not a write per frame.
async fn write_frames<W: AsyncWrite + Unpin>(mut write: W, mut frames: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while let Some(frame) = frames.recv().await {
        batch.clear();
        batch.extend_from_slice(&frame);
        while batch.len() < WRITE_BATCH {
            match frames.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        // Flushed per batch: TLS may hold a record back until then (a no-op on plain TCP).
        if let Err(e) = async {
            write.write_all(&batch).await?;
            write.flush().await
        }
        .await
        {
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
        let mut side = TcpSide::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
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
