//! The client's TUN: [`up`] creates the device once the session is connected, gives it the
//! virtual IPs (`/32`, `/128`) and the MTU, and routes the negotiated remote selectors into it
//! (see [`routes`]), with a host route to the server along its current path when a tunnel
//! route would otherwise swallow IKE and ESP. [`TunSetup::down`] removes those routes and the
//! host route; the device itself (non-persistent) disappears with its last descriptor, taking
//! its routes along, also when the process is killed. Routes are replaced, never just added,
//! so a run killed before cleaning up does not stop the next one. Linux (rtnetlink + tun-rs).

pub mod routes;

#[cfg(target_os = "linux")]
mod device;
#[cfg(target_os = "linux")]
pub mod netlink;
#[cfg(target_os = "linux")]
pub mod offload;

#[cfg(target_os = "linux")]
pub use device::TunDevice;
#[cfg(target_os = "linux")]
pub use linux::{up, TunSetup};

use std::io;
use std::net::IpAddr;

use routes::Prefix;

/// The default interface name.
pub const DEFAULT_NAME: &str = "roam0";

/// Why the TUN could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("cannot create TUN device {name}: {source}{hint}", hint = root_hint(source))]
    Create { name: String, source: io::Error },
    #[error("cannot configure TUN device {name}: {source}")]
    Configure { name: String, source: io::Error },
    #[error("cannot find the current path to the server {server}: {source}")]
    ServerPath { server: IpAddr, source: io::Error },
    #[error("cannot add the route {prefix}: {source}")]
    Route { prefix: Prefix, source: io::Error },
}

fn root_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (needs root or CAP_NET_ADMIN; --no-tun runs without a TUN)"
    } else {
        ""
    }
}

/// The addresses the TUN gets for `virtual_ips`: each as a host prefix, no repeats.
pub fn addresses(virtual_ips: &[IpAddr]) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = Vec::new();
    for ip in virtual_ips {
        let p = Prefix::host(*ip);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(target_os = "linux")]
mod linux {
    use std::net::IpAddr;

    use roam_proto::session::ConnectedInfo;
    use rtnetlink::packet_route::route::RouteMessage;

    use super::netlink::{Netlink, Path};
    use super::routes::{self, Prefix};
    use super::{addresses, TunDevice, TunError};

    /// What [`up`] set up besides the device: for the status line and for [`TunSetup::down`].
    pub struct TunSetup {
        netlink: Netlink,
        name: String,
        index: u32,
        mtu: u16,
        addresses: Vec<Prefix>,
        routes: Vec<Prefix>,
        sources: (Option<IpAddr>, Option<IpAddr>),
        /// The host route to the server, when we added one.
        server_route: Option<(Prefix, RouteMessage)>,
    }

    impl std::fmt::Debug for TunSetup {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TunSetup")
                .field("name", &self.name)
                .field("mtu", &self.mtu)
                .field("addresses", &self.addresses)
                .field("routes", &self.routes)
                .field("server_route", &self.server_route.as_ref().map(|r| r.0))
                .finish()
        }
    }

    /// Creates the TUN `name` with `mtu` for the connected session `info` (whose server is at
    /// `server`): addresses, the server's host route if needed, then the selector routes.
    /// On error everything added so far is removed again (the device closes with its routes).
    pub async fn up(
        name: &str,
        mtu: u16,
        info: &ConnectedInfo,
        server: IpAddr,
    ) -> Result<(TunDevice, TunSetup), TunError> {
        let device = TunDevice::create(name, mtu).map_err(|source| TunError::Create {
            name: name.to_string(),
            source,
        })?;
        let configure = |source| TunError::Configure {
            name: device.name().to_string(),
            source,
        };
        let netlink = Netlink::new().map_err(configure)?;
        let mut setup = TunSetup {
            netlink,
            name: device.name().to_string(),
            index: device.index(),
            mtu: device.mtu().unwrap_or(mtu),
            addresses: addresses(&info.virtual_ips),
            routes: routes::plan(&info.remote_ts),
            sources: (
                info.virtual_ips.iter().copied().find(IpAddr::is_ipv4),
                info.virtual_ips.iter().copied().find(IpAddr::is_ipv6),
            ),
            server_route: None,
        };
        if let Err(e) = setup.configure(server).await {
            setup.down().await;
            return Err(e);
        }
        Ok((device, setup))
    }

    impl TunSetup {
        async fn configure(&mut self, server: IpAddr) -> Result<(), TunError> {
            for a in &self.addresses {
                self.netlink
                    .add_address(self.index, a.addr, a.len)
                    .await
                    .map_err(|source| TunError::Configure {
                        name: self.name.clone(),
                        source,
                    })?;
            }
            if self.routes.iter().any(|r| r.contains(server)) {
                self.add_server_route(server).await?;
            }
            for &prefix in &self.routes {
                let source = if prefix.addr.is_ipv4() {
                    self.sources.0
                } else {
                    // An IPv6 source is picked from the device anyway; naming it could race
                    // the address becoming usable.
                    None
                };
                let route = Netlink::device_route(prefix, self.index, source)
                    .map_err(|source| TunError::Route { prefix, source })?;
                self.netlink
                    .replace_route(route)
                    .await
                    .map_err(|source| TunError::Route { prefix, source })?;
            }
            Ok(())
        }

        /// Pins the server to the path it takes now, before the tunnel routes would take it.
        async fn add_server_route(&mut self, server: IpAddr) -> Result<(), TunError> {
            let path_error = |source| TunError::ServerPath { server, source };
            let Some(path) = self.netlink.path_to(server).await.map_err(path_error)? else {
                log::debug!("{server} is a local address: no host route");
                return Ok(());
            };
            self.pin_server_route(server, path).await
        }

        /// Installs the server's host route along `path` and remembers it.
        async fn pin_server_route(&mut self, server: IpAddr, path: Path) -> Result<(), TunError> {
            let prefix = Prefix::host(server);
            let route = Netlink::path_route(prefix, path)
                .map_err(|source| TunError::ServerPath { server, source })?;
            self.netlink
                .replace_route(route.clone())
                .await
                .map_err(|source| TunError::Route { prefix, source })?;
            log::info!(
                "host route to the server {prefix} via {:?} dev #{:?}",
                path.gateway,
                path.interface
            );
            self.server_route = Some((prefix, route));
            Ok(())
        }

        /// Pins the server's host route again after the network changed: to the best path
        /// outside the tunnel now, if that differs from the pinned one (the old path's
        /// interface may be gone, taking the pinned route with it). True when it changed.
        pub async fn repin_server_route(&mut self, server: IpAddr) -> Result<bool, TunError> {
            let Some((prefix, old)) = self.server_route.clone() else {
                return Ok(false);
            };
            let path_error = |source| TunError::ServerPath { server, source };
            let pinned = super::netlink::path_of(&old);
            let now = self
                .netlink
                .path_outside(server, self.index, Some(pinned))
                .await
                .map_err(path_error)?;
            // When no other route exists, the pinned one (if still there) is the only way out.
            let Some(path) = now else {
                log::info!(
                    "no path to the server {server} outside the tunnel besides the pinned one"
                );
                return Ok(false);
            };
            if path == pinned {
                return Ok(false);
            }
            if let Err(e) = self.netlink.delete_route(old).await {
                log::debug!("old host route to {prefix}: {e} (gone with its interface)");
            }
            self.pin_server_route(server, path).await?;
            Ok(true)
        }

        /// A reconnect brought other virtual IPs: the device gets the new addresses, the
        /// routes the new preferred source, and the old addresses go. Returns whether anything
        /// changed.
        pub async fn readdress(&mut self, virtual_ips: &[IpAddr]) -> Result<bool, TunError> {
            let new = addresses(virtual_ips);
            if new == self.addresses {
                return Ok(false);
            }
            let configure = |source| TunError::Configure {
                name: self.name.clone(),
                source,
            };
            for a in new.iter().filter(|a| !self.addresses.contains(a)) {
                self.netlink
                    .add_address(self.index, a.addr, a.len)
                    .await
                    .map_err(configure)?;
            }
            let old = std::mem::replace(&mut self.addresses, new);
            self.sources = (
                virtual_ips.iter().copied().find(IpAddr::is_ipv4),
                virtual_ips.iter().copied().find(IpAddr::is_ipv6),
            );
            for &prefix in &self.routes {
                let source = prefix.addr.is_ipv4().then_some(self.sources.0).flatten();
                let route = Netlink::device_route(prefix, self.index, source)
                    .map_err(|source| TunError::Route { prefix, source })?;
                self.netlink
                    .replace_route(route)
                    .await
                    .map_err(|source| TunError::Route { prefix, source })?;
            }
            for a in old.iter().filter(|a| !self.addresses.contains(a)) {
                if let Err(e) = self.netlink.delete_address(self.index, a.addr).await {
                    log::warn!("cannot remove the old address {a}: {e}");
                }
            }
            Ok(true)
        }

        /// The interface index of the TUN.
        pub fn index(&self) -> u32 {
            self.index
        }

        /// The interface name.
        pub fn name(&self) -> &str {
            &self.name
        }
        pub fn mtu(&self) -> u16 {
            self.mtu
        }
        /// The addresses given to the device.
        pub fn addresses(&self) -> &[Prefix] {
            &self.addresses
        }
        /// The routes into the device.
        pub fn routes(&self) -> &[Prefix] {
            &self.routes
        }
        /// The host route to the server outside the tunnel, if one was needed.
        pub fn server_route(&self) -> Option<Prefix> {
            self.server_route.as_ref().map(|r| r.0)
        }

        /// Removes the routes into the device (those the kernel has not removed with the
        /// device already) and the server's host route.
        pub async fn down(self) {
            for &prefix in &self.routes {
                if let Ok(route) = Netlink::device_route(prefix, self.index, None) {
                    if let Err(e) = self.netlink.delete_route(route).await {
                        log::debug!("route {prefix}: {e} (gone with the device)");
                    }
                }
            }
            if let Some((prefix, route)) = self.server_route {
                match self.netlink.delete_route(route).await {
                    Ok(()) => log::info!("removed the host route to the server {prefix}"),
                    Err(e) => log::warn!("cannot remove the host route {prefix}: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_prefixes() {
        let ips: Vec<IpAddr> = vec![
            "198.18.0.1".parse().unwrap(),
            "2001:db8:ffff::1".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
        ];
        let shown: Vec<String> = addresses(&ips).iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["198.18.0.1/32", "2001:db8:ffff::1/128"]);
    }

    #[test]
    fn a_permission_error_says_what_is_needed() {
        let e = TunError::Create {
            name: "roam0".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let line = e.to_string();
        assert!(
            line.starts_with("cannot create TUN device roam0: "),
            "{line}"
        );
        assert!(line.contains("CAP_NET_ADMIN"), "{line}");
        assert!(!line.contains('\n'));
    }
}
