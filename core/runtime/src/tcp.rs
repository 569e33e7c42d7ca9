//! The client's TCP transport (RFC 9329) and the choice between UDP and TCP.
//!
//! [`TransportPolicy`] is what the profile asks for: `udp`, `tcp`, or `auto` (UDP first; when
//! IKE_SA_INIT gets no answer within `fallback`, start over on TCP; remember per network which
//! worked; after a network change try UDP again first unless TCP is what worked there).
//!
//! [`TcpPaths`] holds the TCP connections to the server, at most one per address family (one
//! per path: MOBIKE over TCP moves to a new connection). Each connection starts with the
//! "IKETCP" prefix, then carries frames both ways; what the session sends (`Transmit` payloads
//! and ESP datagrams, already in the NAT-T framing) is written as one frame each, and frames
//! read are handed to the session as datagrams. A reset, an end of stream or a framing error
//! closes the connection and is reported, so the session can count its path as lost.
//!
//! With [`TransportPolicy::tls`] each connection is a TLS session first (RFC 9329 section 8;
//! see [`crate::tls`]) and the prefix and frames travel inside it.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use roam_proto::session::Transport;
use roam_proto::wire::tcp::{length_field, FrameDecoder, LENGTH_LEN, MAX_FRAME, STREAM_PREFIX};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpSocket;

use crate::driver::ProtectSocket;
use crate::tls::{ClientStream, TlsPolicy};

/// The TCP port a profile's server listens on for TCP when it names none (RFC 9329 suggests
/// the NAT-T port).
pub const DEFAULT_TCP_PORT: u16 = 4500;
/// How long UDP may go unanswered before `auto` starts over on TCP. A server answers
/// IKE_SA_INIT in one round trip (well under 500 ms even across continents, and our first
/// retransmission is at 4 s), so two seconds without a single answer means UDP is blocked far
/// more often than slow; waiting for the whole UDP schedule (over a minute) would look like a
/// failure to the user.
pub const DEFAULT_FALLBACK: Duration = Duration::from_millis(2000);
/// `auto` on TCP: UDP is tried again this often (one IKE_SA_INIT of a throwaway SA).
pub const DEFAULT_UDP_RETRY: Duration = Duration::from_secs(120);
/// How long opening a TCP connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most networks whose working transport is remembered.
const MAX_REMEMBERED: usize = 64;
/// Bytes read from a connection at once.
const READ_CHUNK: usize = 16 * 1024;

/// Which transport the client uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransportMode {
    /// UDP only (the library's default).
    #[default]
    Udp,
    /// TCP only.
    Tcp,
    /// UDP first, TCP when UDP goes unanswered (the profile's default).
    Auto,
}

impl TransportMode {
    /// The profile's spelling: "auto", "udp" or "tcp".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "udp" => Some(Self::Udp),
            "tcp" => Some(Self::Tcp),
            _ => None,
        }
    }
}

/// The transport the profile asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportPolicy {
    pub mode: TransportMode,
    /// The server's TCP port.
    pub tcp_port: u16,
    /// `auto`: how long UDP may stay unanswered before TCP is tried.
    pub fallback: Duration,
    /// TLS around each TCP connection (None: plain TCP, the default).
    pub tls: Option<TlsPolicy>,
    /// `auto` on TCP: how often to try whether UDP gets through again (None: never).
    pub udp_retry: Option<Duration>,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        Self {
            mode: TransportMode::Udp,
            tcp_port: DEFAULT_TCP_PORT,
            fallback: DEFAULT_FALLBACK,
            tls: None,
            udp_retry: Some(DEFAULT_UDP_RETRY),
        }
    }
}

/// The transport that worked on each network (the set of local addresses), bounded.
#[derive(Debug, Default)]
pub struct Memory {
    worked: HashMap<Vec<IpAddr>, Transport>,
}

impl Memory {
    /// The key of the network whose local addresses are `locals`.
    pub fn key(locals: &[SocketAddr]) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = locals.iter().map(SocketAddr::ip).collect();
        ips.sort();
        ips.dedup();
        ips
    }

    pub fn remember(&mut self, network: Vec<IpAddr>, transport: Transport) {
        if self.worked.len() >= MAX_REMEMBERED && !self.worked.contains_key(&network) {
            self.worked.clear();
        }
        self.worked.insert(network, transport);
    }

    pub fn recall(&self, network: &[IpAddr]) -> Option<Transport> {
        self.worked.get(network).copied()
    }
}

/// One TCP connection to the server and the decoder of what it reads.
#[derive(Debug)]
struct Conn {
    stream: ClientStream,
    local: SocketAddr,
    remote: SocketAddr,
    decoder: FrameDecoder,
    read: Box<[u8]>,
    /// `read[pos..end]` was read but not fed to the decoder yet.
    pos: usize,
    end: usize,
}

/// What a connection delivered.
#[derive(Debug)]
pub enum TcpEvent {
    /// A frame's body (a NAT-T datagram) is in the caller's buffer: `len` bytes, from
    /// `remote`, on the connection bound to `local`.
    Frame {
        local: SocketAddr,
        remote: SocketAddr,
        len: usize,
    },
    /// The connection from `local` closed (reset, end of stream, a framing error); it is gone.
    Closed { local: SocketAddr, reason: String },
}

/// The client's TCP connections to the server (at most one per address family).
#[derive(Debug, Default)]
pub struct TcpPaths {
    conns: Vec<Conn>,
    protect: Option<ProtectSocket>,
    /// Which connection is read first (turns, so one busy connection cannot starve another).
    turn: usize,
    /// TLS around each connection, when the profile asks for it.
    tls: Option<TlsPolicy>,
    /// The TLS configuration, made at the first connection and kept (so a reconnect can resume
    /// the TLS session).
    #[cfg(feature = "tls")]
    connector: Option<crate::tls::Connector>,
}

impl TcpPaths {
    pub fn new(protect: Option<ProtectSocket>) -> Self {
        Self {
            protect,
            ..Self::default()
        }
    }

    /// The same, with TLS around each connection when `tls` is set.
    pub fn with_tls(mut self, tls: Option<TlsPolicy>) -> Self {
        self.tls = tls;
        self
    }

    /// Whether any connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The local addresses of the open connections.
    pub fn locals(&self) -> Vec<SocketAddr> {
        self.conns.iter().map(|c| c.local).collect()
    }

    /// Opens a connection from `source` (port chosen by the OS) to `server` and sends the
    /// stream prefix, replacing any connection of that family. Returns its local address.
    pub async fn connect(&mut self, source: IpAddr, server: SocketAddr) -> io::Result<SocketAddr> {
        let socket = if server.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        self.protect(&socket)?;
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(server))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let mut stream = match self.tls.is_some() {
            false => ClientStream::Plain(stream),
            true => self.wrap_tls(stream, server).await?,
        };
        stream.write_all(&STREAM_PREFIX).await?;
        stream.flush().await?;
        log::info!(
            "TCP connection {local} -> {server} open (RFC 9329{})",
            if self.tls.is_some() { ", TLS" } else { "" }
        );
        self.conns.retain(|c| c.local.is_ipv4() != local.is_ipv4());
        self.conns.push(Conn {
            stream,
            local,
            remote: server,
            decoder: FrameDecoder::without_prefix(MAX_FRAME),
            read: vec![0; READ_CHUNK].into_boxed_slice(),
            pos: 0,
            end: 0,
        });
        Ok(local)
    }

    /// Keeps the connections from the addresses of `sources` (one per family), opens one from
    /// each of the others to `server` (same family), closes the rest. Returns the local
    /// addresses in the order of `sources`.
    pub async fn connect_from(
        &mut self,
        sources: &[IpAddr],
        server_for: impl Fn(bool) -> Option<SocketAddr>,
    ) -> Vec<SocketAddr> {
        let mut wanted = Vec::new();
        for &ip in sources {
            if wanted
                .iter()
                .any(|w: &SocketAddr| w.is_ipv4() == ip.is_ipv4())
            {
                continue;
            }
            if let Some(c) = self.conns.iter().find(|c| c.local.ip() == ip) {
                wanted.push(c.local);
                continue;
            }
            let Some(server) = server_for(ip.is_ipv4()) else {
                continue;
            };
            match self.connect(ip, server).await {
                Ok(local) => wanted.push(local),
                Err(e) => log::warn!("cannot open TCP from {ip} to {server}: {e}"),
            }
        }
        self.conns.retain(|c| wanted.contains(&c.local));
        wanted
    }

    /// Closes every connection.
    pub fn close_all(&mut self) {
        if !self.conns.is_empty() {
            log::info!("closing the TCP connections {:?}", self.locals());
        }
        self.conns.clear();
    }

    /// Closes the connection from `local`.
    pub fn close(&mut self, local: SocketAddr) {
        self.conns.retain(|c| c.local != local);
    }

    /// The TLS handshake on a new connection to `server`, within [`CONNECT_TIMEOUT`].
    #[cfg(feature = "tls")]
    async fn wrap_tls(
        &mut self,
        stream: tokio::net::TcpStream,
        server: SocketAddr,
    ) -> io::Result<ClientStream> {
        let connector = match (&self.connector, &self.tls) {
            (Some(c), _) => c.clone(),
            (None, Some(policy)) => {
                let c = crate::tls::Connector::new(policy)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
                self.connector = Some(c.clone());
                c
            }
            (None, None) => return Ok(ClientStream::Plain(stream)),
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(stream, server))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(ClientStream::Tls(Box::new(tls)))
    }

    #[cfg(not(feature = "tls"))]
    async fn wrap_tls(
        &mut self,
        _stream: tokio::net::TcpStream,
        _server: SocketAddr,
    ) -> io::Result<ClientStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            crate::tls::TlsError::NotBuilt.to_string(),
        ))
    }

    fn protect(&self, socket: &TcpSocket) -> io::Result<()> {
        self.protect.as_ref().map_or(Ok(()), |p| p.apply(socket))
    }

    /// Sends `body` (a NAT-T datagram) as one frame on the connection from `local` (or the one
    /// of `remote`'s family).
    pub async fn send(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        body: &[u8],
    ) -> io::Result<()> {
        let field = length_field(body.len())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // One write for the length field and the body (no Nagle: nodelay is on).
        self.write(
            local,
            remote,
            &mut [io::IoSlice::new(&field), io::IoSlice::new(body)],
        )
        .await
    }

    /// Sends `frames`, frames already framed (length field and body each, see
    /// [`FrameBatch`]), in one write on the connection from `local`.
    pub async fn send_frames(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        frames: &[u8],
    ) -> io::Result<()> {
        self.write(local, remote, &mut [io::IoSlice::new(frames)])
            .await
    }

    /// Writes `parts` on the connection from `local` (or the one of `remote`'s family), then
    /// flushes it.
    async fn write(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        parts: &mut [io::IoSlice<'_>],
    ) -> io::Result<()> {
        let i = self
            .conns
            .iter()
            .position(|c| c.local == local)
            .or_else(|| {
                self.conns
                    .iter()
                    .position(|c| c.remote.is_ipv4() == remote.is_ipv4())
            })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("no TCP connection for {local}"),
                )
            })?;
        let Some(conn) = self.conns.get_mut(i) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let mut slices: &mut [io::IoSlice<'_>] = parts;
        while !slices.is_empty() {
            let n = conn.stream.write_vectored(slices).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            io::IoSlice::advance_slices(&mut slices, n);
        }
        // TLS may hold the record back until flushed (a no-op on plain TCP).
        conn.stream.flush().await
    }

    /// Waits for the next frame (copied into `buf`) or closed connection; never resolves
    /// while no connection is open.
    pub async fn recv(&mut self, buf: &mut [u8]) -> TcpEvent {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<TcpEvent> {
        let n = self.conns.len();
        for k in 0..n {
            let i = (self.turn + k) % n;
            let Some(conn) = self.conns.get_mut(i) else {
                continue;
            };
            match conn.poll_frame(cx, buf) {
                Poll::Ready(Ok(len)) => {
                    self.turn = self.turn.wrapping_add(1);
                    return Poll::Ready(TcpEvent::Frame {
                        local: conn.local,
                        remote: conn.remote,
                        len,
                    });
                }
                Poll::Ready(Err(e)) => {
                    let local = conn.local;
                    log::info!("TCP connection {local} -> {} closed: {e}", conn.remote);
                    self.conns.remove(i);
                    return Poll::Ready(TcpEvent::Closed {
                        local,
                        reason: e.to_string(),
                    });
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

impl Conn {
    /// The next whole frame's body, copied into `buf`; an error when the stream ends or breaks.
    fn poll_frame(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            while self.pos < self.end {
                let input = self.read.get(self.pos..self.end).unwrap_or_default();
                let fed = self
                    .decoder
                    .feed(input)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                self.pos += fed.consumed;
                if fed.frame.is_some() {
                    let body = self.decoder.frame().unwrap_or_default();
                    let Some(dst) = buf.get_mut(..body.len()) else {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "frame larger than the receive buffer",
                        )));
                    };
                    dst.copy_from_slice(body);
                    return Poll::Ready(Ok(body.len()));
                }
                if fed.consumed == 0 {
                    break;
                }
            }
            let mut read = ReadBuf::new(&mut self.read);
            match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    if n == 0 {
                        let what = if self.decoder.at_boundary() {
                            "end of stream"
                        } else {
                            "end of stream inside a frame"
                        };
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            what,
                        )));
                    }
                    self.pos = 0;
                    self.end = n;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// ESP frames gathered for one write on one TCP path: a wakeup's packets from the TUN are
/// sealed straight into it (no copy) and leave in one write (and over TLS one record or a
/// few), not a write each. Allocated on first use: a session that stays on UDP never pays
/// for it.
#[derive(Debug)]
pub struct FrameBatch {
    buf: Vec<u8>,
    /// Bytes of whole frames at the front of `buf`.
    filled: usize,
    path: Option<(SocketAddr, SocketAddr)>,
}

impl FrameBatch {
    /// Bytes gathered before the batch must be sent.
    pub const CAPACITY: usize = 64 * 1024;

    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            filled: 0,
            path: None,
        }
    }

    /// Whether a frame of up to `body_len` bytes fits after those gathered.
    pub fn has_room(&self, body_len: usize) -> bool {
        self.filled + LENGTH_LEN + body_len <= Self::CAPACITY
    }

    /// Where the next frame's body goes: seal into it, then [`Self::commit`].
    pub fn free(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; Self::CAPACITY];
        }
        let at = self.filled + LENGTH_LEN;
        self.buf.get_mut(at..).unwrap_or_default()
    }

    /// Takes the `len` bytes written at [`Self::free`] as a frame on the path from `local` to
    /// `remote`. False, nothing taken, when the gathered frames are another path's (send
    /// them, then [`Self::commit_alone`]) or `len` does not fit a frame.
    pub fn commit(&mut self, local: SocketAddr, remote: SocketAddr, len: usize) -> bool {
        if self.path.is_some_and(|p| p != (local, remote)) {
            return false;
        }
        let (Ok(field), Some(head)) = (
            length_field(len),
            self.buf
                .get_mut(self.filled..self.filled + LENGTH_LEN + len),
        ) else {
            return false;
        };
        head[..LENGTH_LEN].copy_from_slice(&field);
        self.filled += LENGTH_LEN + len;
        self.path = Some((local, remote));
        true
    }

    /// After [`Self::clear`]: the frame written at `free()` before it (at byte `at` of the
    /// buffer) becomes the batch's first, on its own path (a path change: rare).
    pub fn commit_alone(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        len: usize,
    ) -> bool {
        if at + len > self.buf.len() || self.filled != 0 {
            return false;
        }
        self.buf.copy_within(at..at + len, LENGTH_LEN);
        self.commit(local, remote, len)
    }

    /// Byte offset of [`Self::free`] in the buffer (for [`Self::commit_alone`]).
    pub fn free_at(&self) -> usize {
        self.filled + LENGTH_LEN
    }

    /// The path of the frames gathered (None when there are none).
    pub fn path(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.path
    }

    /// The frames gathered, each its length field and body.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.filled).unwrap_or_default()
    }

    pub fn clear(&mut self) {
        self.filled = 0;
        self.path = None;
    }
}

impl Default for FrameBatch {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roam_proto::wire::tcp::FrameKind;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_frame_batch_holds_one_path_up_to_its_capacity_and_decodes_back() {
        let (l, r) = (a("192.0.2.2:40000"), a("198.51.100.1:4500"));
        let mut b = FrameBatch::new();
        assert_eq!(
            (b.path(), b.buf.capacity()),
            (None, 0),
            "no memory before the first frame"
        );
        let body = vec![0x11u8; 1400];
        let mut n = 0;
        while b.has_room(body.len()) {
            b.free()[..body.len()].copy_from_slice(&body);
            assert!(b.commit(l, r, body.len()));
            n += 1;
        }
        assert_eq!(n, FrameBatch::CAPACITY / (body.len() + LENGTH_LEN));
        assert_eq!(b.path(), Some((l, r)));
        // Another path's frame is not taken beside them; after a send it comes first alone.
        let other = a("192.0.2.3:40000");
        let mut c = FrameBatch::new();
        c.free()[..8].copy_from_slice(b"esp, one");
        assert!(c.commit(l, r, 8));
        let at = c.free_at();
        c.free()[..8].copy_from_slice(b"esp, two");
        assert!(!c.commit(other, r, 8));
        assert_eq!(c.bytes(), b"\x00\x0aesp, one");
        c.clear();
        assert!(c.commit_alone(at, other, r, 8));
        assert_eq!(
            (c.path(), c.bytes()),
            (Some((other, r)), &b"\x00\x0aesp, two"[..])
        );
        // The bytes are frames a reader takes apart again.
        let mut d = FrameDecoder::without_prefix(MAX_FRAME);
        let (mut rest, mut got) = (b.bytes(), 0);
        while !rest.is_empty() {
            let fed = d.feed(rest).unwrap();
            rest = rest.get(fed.consumed..).unwrap();
            if let Some(kind) = fed.frame {
                assert_eq!(kind, FrameKind::Esp);
                assert_eq!(d.frame().unwrap(), &body[..]);
                got += 1;
            }
        }
        assert_eq!(got, n);
        b.clear();
        assert_eq!((b.path(), b.bytes().len()), (None, 0));
        // Longer than the batch: refused, nothing taken.
        assert!(!b.has_room(FrameBatch::CAPACITY));
        assert!(!b.commit(l, r, FrameBatch::CAPACITY));
        assert_eq!(b.path(), None);
    }
}
