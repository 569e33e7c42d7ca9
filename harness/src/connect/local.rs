//! What `roam connect` changes on this host once the session is connected, and takes back at
//! the end: the TUN device with its addresses and routes (handed to the driver as its packet
//! path), and the resolv.conf file named by `--resolv-conf`. Prints the `tun …` and `dns …`
//! lines.

use std::fmt::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use roam_proto::session::ConnectedInfo;
use roam_runtime::driver::Tunnel;
use roam_runtime::resolv::ResolvConf;
use roam_runtime::tun::routes::Prefix;
use roam_runtime::tun::{self, TunDevice, TunSetup};

/// The connect options about this host.
#[derive(Debug)]
pub struct LocalOptions {
    /// The TUN's name; `None` with `--no-tun`.
    pub tun: Option<String>,
    pub mtu: u16,
    pub resolv_conf: Option<PathBuf>,
}

/// The host-side setup of one session.
pub struct Local {
    options: LocalOptions,
    server: IpAddr,
    done: bool,
    tun: Option<TunSetup>,
    resolv: Option<ResolvConf>,
}

impl Local {
    pub fn new(options: LocalOptions, server: IpAddr) -> Self {
        Self {
            options,
            server,
            done: false,
            tun: None,
            resolv: None,
        }
    }

    /// Sets up the TUN (attached to `tunnel`) and the DNS file for the connected session; the
    /// lines to print. Once per session: a later `Connected` (after a reconnect) only gives the
    /// TUN the new virtual IPs when they changed. On error, what was set up stays for
    /// [`Local::down`].
    pub async fn up(
        &mut self,
        info: &ConnectedInfo,
        tunnel: &mut Tunnel<TunDevice>,
    ) -> Result<Vec<String>, String> {
        if std::mem::replace(&mut self.done, true) {
            // Connected again (a reconnect): the TUN stays, with the new addresses if any.
            return Ok(self.reconnected(info).await.into_iter().collect());
        }
        let mut lines = Vec::new();
        if let Some(name) = &self.options.tun {
            let (device, setup) = tun::up(name, self.options.mtu, info, self.server)
                .await
                .map_err(|e| e.to_string())?;
            if tunnel.attach(device).is_err() {
                return Err("the driver ended before its TUN was ready".to_string());
            }
            lines.push(tun_line(
                setup.name(),
                setup.mtu(),
                setup.addresses(),
                setup.routes(),
            ));
            if let Some(host) = setup.server_route() {
                log::info!("the server {host} is routed outside the tunnel");
            }
            self.tun = Some(setup);
        }
        if let Some(path) = &self.options.resolv_conf {
            let written = ResolvConf::write(path, &info.dns, &info.dns_domains)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            lines.push(format!("dns file={}", path.display()));
            self.resolv = Some(written);
        }
        Ok(lines)
    }

    /// A reconnect (or a replaced connection) brought other virtual IPs: the TUN follows.
    /// The `tun …` line to print when it changed.
    pub async fn reconnected(&mut self, info: &ConnectedInfo) -> Option<String> {
        let setup = self.tun.as_mut()?;
        match setup.readdress(&info.virtual_ips).await {
            Ok(true) => Some(tun_line(
                setup.name(),
                setup.mtu(),
                setup.addresses(),
                setup.routes(),
            )),
            Ok(false) => None,
            Err(e) => {
                log::warn!("cannot give the TUN the new addresses: {e}");
                None
            }
        }
    }

    /// The TUN's interface index, once it is up.
    pub fn tun_index(&self) -> Option<u32> {
        self.tun.as_ref().map(TunSetup::index)
    }

    /// The network changed: the server's host route follows the best path outside the tunnel.
    pub async fn network_changed(&mut self) {
        let Some(setup) = self.tun.as_mut() else {
            return;
        };
        match setup.repin_server_route(self.server).await {
            Ok(true) => log::info!("the server {} is routed along the new path", self.server),
            Ok(false) => {}
            Err(e) => log::warn!("cannot pin the route to the server again: {e}"),
        }
    }

    /// Removes the routes and the server's host route, puts the DNS file back.
    pub async fn down(&mut self) {
        if let Some(setup) = self.tun.take() {
            setup.down().await;
        }
        if let Some(resolv) = self.resolv.take() {
            let path = resolv.path().display().to_string();
            if let Err(e) = resolv.restore() {
                log::warn!("cannot restore {path}: {e}");
            }
        }
    }
}

/// `tun name=roam0 mtu=1400 addresses=198.18.0.1/32,… routes=203.0.113.0/24,…`.
pub fn tun_line(name: &str, mtu: u16, addresses: &[Prefix], routes: &[Prefix]) -> String {
    let mut line = String::new();
    let _ = write!(
        line,
        "tun name={name} mtu={mtu} addresses={} routes={}",
        list(addresses),
        list(routes)
    );
    line
}

/// `a,b`, or `none`.
fn list(prefixes: &[Prefix]) -> String {
    if prefixes.is_empty() {
        return "none".to_string();
    }
    prefixes
        .iter()
        .map(Prefix::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn the_contract_line() {
        assert_eq!(
            tun_line(
                "roam0",
                1400,
                &[p("198.18.0.1/32"), p("2001:db8:ffff::1/128")],
                &[p("203.0.113.0/24"), p("0.0.0.0/1"), p("128.0.0.0/1")]
            ),
            "tun name=roam0 mtu=1400 addresses=198.18.0.1/32,2001:db8:ffff::1/128 \
             routes=203.0.113.0/24,0.0.0.0/1,128.0.0.0/1"
        );
        assert_eq!(
            tun_line("t", 576, &[], &[]),
            "tun name=t mtu=576 addresses=none routes=none"
        );
    }
}
