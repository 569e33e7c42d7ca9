//! The kernel's routing tables and interface addresses through rtnetlink (no `ip` processes):
//! add an address, replace a route through a device, look up the route the kernel takes to an
//! address (as `ip route get`), delete a route. One netlink connection, on its own task.

use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::task::JoinHandle;

use super::routes::Prefix;

/// The metric of the host route that pins the server outside the tunnel.
pub const PINNED_METRIC: u32 = 1;

/// The path the kernel takes toward an address: a gateway (or on-link) and an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    pub gateway: Option<IpAddr>,
    pub interface: Option<u32>,
}

/// A netlink connection to the kernel's routing.
pub struct Netlink {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn error(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl Netlink {
    /// Opens the connection (needs a tokio runtime).
    pub fn new() -> io::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok(Self {
            handle,
            connection: tokio::spawn(connection),
        })
    }

    /// Removes `ip` (any prefix length) from interface `index`; absent is not an error.
    pub async fn delete_address(&self, index: u32, ip: IpAddr) -> io::Result<()> {
        let mut found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(ip)
            .execute();
        while let Some(msg) = found
            .try_next()
            .await
            .map_err(|e| error(&format!("address {ip}"), e))?
        {
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| error(&format!("address {ip} delete"), e))?;
        }
        Ok(())
    }

    /// Adds `ip/len` to interface `index`.
    pub async fn add_address(&self, index: u32, ip: IpAddr, len: u8) -> io::Result<()> {
        self.handle
            .address()
            .add(index, ip, len)
            .replace()
            .execute()
            .await
            .map_err(|e| error(&format!("address {ip}/{len}"), e))
    }

    /// The route toward `prefix` through interface `index` (on-link), with `source` as the
    /// preferred source address when given.
    pub fn device_route(
        prefix: Prefix,
        index: u32,
        source: Option<IpAddr>,
    ) -> io::Result<RouteMessage> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(prefix.addr, prefix.len)
            .map_err(|e| error("route", e))?
            .output_interface(index)
            .scope(RouteScope::Link);
        if let Some(src) = source {
            builder = builder
                .pref_source(src)
                .map_err(|e| error("route source", e))?;
        }
        Ok(builder.build())
    }

    /// The route toward `prefix` along `path`, with Roam's own metric ([`PINNED_METRIC`]):
    /// it wins over the system's routes to the same prefix without replacing them, so they
    /// are still there to follow when the network changes.
    pub fn path_route(prefix: Prefix, path: Path) -> io::Result<RouteMessage> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(prefix.addr, prefix.len)
            .map_err(|e| error("route", e))?
            .priority(PINNED_METRIC);
        if let Some(gw) = path.gateway {
            builder = builder.gateway(gw).map_err(|e| error("route gateway", e))?;
        } else {
            builder = builder.scope(RouteScope::Link);
        }
        if let Some(index) = path.interface {
            builder = builder.output_interface(index);
        }
        Ok(builder.build())
    }

    /// Adds `route`, replacing one to the same destination (left by a killed run, say).
    pub async fn replace_route(&self, route: RouteMessage) -> io::Result<()> {
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| error("route", e))
    }

    /// Deletes `route`.
    pub async fn delete_route(&self, route: RouteMessage) -> io::Result<()> {
        self.handle
            .route()
            .del(route)
            .execute()
            .await
            .map_err(|e| error("route delete", e))
    }

    /// The path the kernel would take to `ip` now (`ip route get`); `None` when `ip` is one
    /// of ours (a local route: nothing to pin).
    pub async fn path_to(&self, ip: IpAddr) -> io::Result<Option<Path>> {
        let query = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(ip, Prefix::host(ip).len)
            .map_err(|e| error("route lookup", e))?
            .build();
        let mut answers = self.handle.route().get(query).execute();
        let answer = answers
            .try_next()
            .await
            .map_err(|e| error(&format!("route lookup for {ip}"), e))?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no route to {ip}")))?;
        if answer.header.kind != RouteType::Unicast {
            return Ok(None);
        }
        Ok(Some(path_of(&answer)))
    }
}

impl Netlink {
    /// The path the main routing table offers toward `ip` when the routes through interface
    /// `tunnel` (ours) and the host route `pinned` (ours, maybe stale) are left out: the best
    /// of the rest by longest prefix, then lowest metric. `None` when no such route exists.
    pub async fn path_outside(
        &self,
        ip: IpAddr,
        tunnel: u32,
        pinned: Option<Path>,
    ) -> io::Result<Option<Path>> {
        let query = match ip {
            IpAddr::V4(_) => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            IpAddr::V6(_) => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        };
        let mut routes = self.handle.route().get(query).execute();
        let mut best: Option<(u8, u32, Path)> = None;
        while let Some(route) = routes
            .try_next()
            .await
            .map_err(|e| error("route dump", e))?
        {
            let Some(candidate) = outside_candidate(&route, ip, tunnel, pinned) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((len, metric, _)) => {
                    candidate.0 > len || (candidate.0 == len && candidate.1 < metric)
                }
            };
            if better {
                best = Some(candidate);
            }
        }
        Ok(best.map(|(_, _, path)| path))
    }
}

/// A main-table unicast route that covers `ip`, not through `tunnel` and not the `pinned`
/// host route: its prefix length, metric and path.
fn outside_candidate(
    route: &RouteMessage,
    ip: IpAddr,
    tunnel: u32,
    pinned: Option<Path>,
) -> Option<(u8, u32, Path)> {
    const MAIN: u8 = 254;
    let h = &route.header;
    let mut table = u32::from(h.table);
    let mut destination: Option<IpAddr> = None;
    let mut metric = 0;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = Some((*a).into()),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = Some((*a).into()),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    if table != u32::from(MAIN) || h.kind != RouteType::Unicast {
        return None;
    }
    let len = h.destination_prefix_length;
    let covers = match destination {
        Some(d) => Prefix::new(d, len).is_some_and(|p| p.contains(ip)),
        None => len == 0 && Prefix::new(ip, 0).is_some(),
    };
    let path = path_of(route);
    let host = Prefix::host(ip).len == len;
    if !covers || path.interface == Some(tunnel) || (host && Some(path) == pinned) {
        return None;
    }
    Some((len, metric, path))
}

/// The gateway and interface of a route message.
pub fn path_of(route: &RouteMessage) -> Path {
    let mut path = Path {
        gateway: None,
        interface: None,
    };
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => path.gateway = Some((*a).into()),
            RouteAttribute::Gateway(RouteAddress::Inet6(a)) => path.gateway = Some((*a).into()),
            RouteAttribute::Oif(i) => path.interface = Some(*i),
            _ => {}
        }
    }
    path
}
