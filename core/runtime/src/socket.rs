//! The driver's UDP sockets: one per local address the routing picks toward the server's
//! addresses (one per family at most), each bound to that address and an ephemeral port, so
//! the session knows the exact local address it sends from (NAT detection hashes it). When the
//! network changes, [`Sockets::refresh`] asks the routing again, keeps the sockets whose
//! address is still the choice, opens new ones and closes the rest: the session gets the new
//! list (MOBIKE). Also resolves the server's name.
//!
//! The data path is batched ([`crate::udp_batch`]): a receive takes every datagram waiting
//! on a socket (recvmmsg, GRO), ESP leaves in GSO runs; IKE is sent one message at a time.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::{Context, Poll};

use tokio::net::UdpSocket;

use crate::udp_batch::{BatchSocket, RxBatch};

/// One bound socket and the concrete address it is bound to.
#[derive(Debug)]
struct Bound {
    socket: BatchSocket,
    local: SocketAddr,
}

/// The sockets the driver sends and receives on.
#[derive(Debug, Default)]
pub struct Sockets {
    /// At most one per address family (the routing's choice toward the server).
    bound: Vec<Bound>,
    /// Called with every new socket before it sends or connects (Android `VpnService.protect`).
    protect: Option<crate::driver::ProtectSocket>,
}

impl Sockets {
    /// Sockets whose every new socket is first handed to `protect` (None: no hook).
    pub fn with_protect(protect: Option<crate::driver::ProtectSocket>) -> Self {
        Self {
            protect,
            ..Self::default()
        }
    }

    /// The platform hook, if any, on a new socket before its first use.
    fn protect(&self, socket: &UdpSocket) -> io::Result<()> {
        self.protect.as_ref().map_or(Ok(()), |p| p.apply(socket))
    }

    /// Opens a socket toward `server`: asks the routing which source address it would use (a
    /// connected probe socket sends nothing), then binds that address and an ephemeral port.
    /// Returns the bound local address.
    pub async fn open_toward(&mut self, server: SocketAddr) -> io::Result<SocketAddr> {
        let source = source_address_toward(server, |probe| self.protect(probe)).await?;
        self.bind_source(source, server).await
    }

    /// The socket bound to `source` (kept if one is), replacing any other of its family.
    async fn bind_source(&mut self, source: IpAddr, server: SocketAddr) -> io::Result<SocketAddr> {
        if let Some(b) = self.bound.iter().find(|b| b.local.ip() == source) {
            return Ok(b.local);
        }
        let socket = UdpSocket::bind(SocketAddr::new(source, 0)).await?;
        enlarge_buffers(&socket);
        self.protect(&socket)?;
        let local = socket.local_addr()?;
        let socket = BatchSocket::new(socket);
        log::debug!(
            "bound UDP socket {local} toward {server} (GSO {} segments, GRO {})",
            socket.max_segments(),
            socket.gro()
        );
        self.bound.retain(|b| b.local.is_ipv4() != local.is_ipv4());
        self.bound.push(Bound { socket, local });
        Ok(local)
    }

    /// Asks the routing again which source address reaches each of `servers` (the first of
    /// each family counts), keeps or opens a socket for each, and closes the others. Returns
    /// the bound local addresses, the first family's first (empty: no route at all).
    pub async fn refresh(&mut self, servers: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut wanted: Vec<SocketAddr> = Vec::new();
        for v4 in [true, false] {
            let Some(&server) = servers.iter().find(|s| s.is_ipv4() == v4) else {
                continue;
            };
            match source_address_toward(server, |probe| self.protect(probe)).await {
                Ok(source) => match self.bind_source(source, server).await {
                    Ok(local) => wanted.push(local),
                    Err(e) => log::warn!("cannot bind {source} toward {server}: {e}"),
                },
                Err(e) => log::info!("no route toward {server}: {e}"),
            }
        }
        self.bound.retain(|b| wanted.contains(&b.local));
        if servers.first().is_some_and(|s| s.is_ipv6()) {
            wanted.sort_by_key(|a| a.is_ipv4());
        }
        wanted
    }

    /// Keeps or opens a socket on each of `ips` (at most one per family: the first wins) and
    /// closes the others. Returns the bound addresses in the order of `ips`.
    pub async fn bind_exactly(&mut self, ips: &[IpAddr]) -> Vec<SocketAddr> {
        let mut wanted: Vec<SocketAddr> = Vec::new();
        for &ip in ips {
            if wanted.iter().any(|w| w.is_ipv4() == ip.is_ipv4()) {
                continue;
            }
            let toward = SocketAddr::new(ip, 0);
            match self.bind_source(ip, toward).await {
                Ok(local) => wanted.push(local),
                Err(e) => log::warn!("cannot bind {ip}: {e}"),
            }
        }
        self.bound.retain(|b| wanted.contains(&b.local));
        wanted
    }

    fn bound(&self) -> impl Iterator<Item = &Bound> {
        self.bound.iter()
    }

    /// The socket to send from: the one bound to `local`, else one of `remote`'s family.
    fn for_transmit(&self, local: SocketAddr, remote: SocketAddr) -> Option<&Bound> {
        self.bound()
            .find(|b| b.local == local)
            .or_else(|| self.bound().find(|b| b.local.is_ipv4() == remote.is_ipv4()))
    }

    /// Sends `payload` to `remote` from the socket bound to `local` (or one of the right family).
    pub async fn send(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let bound = self.transmit_socket(local, remote)?;
        let sent = bound.socket.socket().send_to(payload, remote).await?;
        if sent != payload.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", payload.len()),
            ));
        }
        Ok(())
    }

    fn transmit_socket(&self, local: SocketAddr, remote: SocketAddr) -> io::Result<&Bound> {
        self.for_transmit(local, remote).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("no socket for {local} -> {remote}"),
            )
        })
    }

    /// Sends a run of datagrams (`gso`: each of that size, the last maybe shorter; `None`: one
    /// datagram) to `remote` from the socket bound to `local`, in one call where GSO works.
    pub async fn send_run(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        contents: &[u8],
        gso: Option<usize>,
    ) -> io::Result<()> {
        let bound = self.transmit_socket(local, remote)?;
        bound.socket.send(remote, contents, gso).await
    }

    /// The fewest datagrams one send of any socket can carry (1: no GSO).
    pub fn max_segments(&self) -> usize {
        self.bound()
            .map(|b| b.socket.max_segments())
            .min()
            .unwrap_or(1)
    }

    /// Waits for datagrams on any socket and receives every one waiting on it (up to what
    /// `rx` holds); returns the address of the socket they arrived on.
    pub async fn recv_batch(&self, rx: &mut RxBatch) -> io::Result<SocketAddr> {
        poll_fn(|cx| self.poll_recv_batch(cx, rx)).await
    }

    /// Datagrams already waiting on any socket, without waiting (`WouldBlock` when none
    /// are): the driver drains a few batches after each wakeup.
    pub fn try_recv_batch(&self, rx: &mut RxBatch) -> io::Result<SocketAddr> {
        for bound in self.bound() {
            match bound.socket.try_recv(rx) {
                Ok(()) => return Ok(bound.local),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        rx: &mut RxBatch,
    ) -> Poll<io::Result<SocketAddr>> {
        for bound in self.bound() {
            match bound.socket.poll_recv(cx, rx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(bound.local)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        // Every socket registered the waker (or there is none: then wait forever, as a driver
        // without sockets has only its timer and commands left).
        Poll::Pending
    }
}

/// What a tunnel socket asks for as receive and send buffers: a burst of full-size ESP
/// datagrams at a few hundred Mbit/s (the kernel's default, about 200 KB, drops them: TCP
/// inside then backs off). The kernel caps it at `net.core.rmem_max` / `wmem_max` unless
/// the process may raise it.
pub const TUNNEL_BUFFER: usize = 4 << 20;

/// Asks for [`TUNNEL_BUFFER`] each way; a refusal only costs throughput, so it is logged.
pub fn enlarge_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    for (what, result) in [
        ("receive", s.set_recv_buffer_size(TUNNEL_BUFFER)),
        ("send", s.set_send_buffer_size(TUNNEL_BUFFER)),
    ] {
        if let Err(e) = result {
            log::debug!("cannot enlarge the {what} buffer: {e}");
        }
    }
}

/// The source address the routing table picks toward `server` (`protect` sees the probe
/// socket before it connects).
async fn source_address_toward(
    server: SocketAddr,
    protect: impl FnOnce(&UdpSocket) -> io::Result<()>,
) -> io::Result<IpAddr> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let probe = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    protect(&probe)?;
    probe.connect(server).await?;
    Ok(probe.local_addr()?.ip())
}

/// Resolves `host` (a name or an IP address literal) to every address it has, in the
/// resolver's order.
pub async fn resolve_all(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await?
        .take(16)
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
    }
    Ok(addrs)
}

/// Resolves `host` (a name or an IP address literal) and picks the first address the resolver
/// prefers.
pub async fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = tokio::net::lookup_host((host, port)).await?;
    addrs
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}

/// Whether a receive error is about one datagram or an ICMP message (and the socket is fine).
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
