//! The server profile of `roam serve`: a TOML file read, checked and turned into a
//! `ResponderConfig`, the address to listen on, and the TUN's settings. Unknown keys are
//! refused; every problem is a [`ProfileError`] naming its key; relative file names are
//! relative to the profile's directory; the PSK stays in zeroizing buffers.
//!
//! Pools: `pool.ipv4 = "198.18.0.0/24"` gives the server the first host address of the network
//! (198.18.0.1, its own address on the TUN, with the pool's prefix so the kernel routes the
//! whole pool into the TUN) and the clients the rest (198.18.0.2 to 198.18.0.254). IPv6 alike:
//! `2001:db8:ffff::/112` gives the server ::1 and the clients ::2 onwards.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use roam_proto::config::{Retransmit, DEFAULT_FRAGMENT_SIZE};
use roam_proto::crypto::cert::Certificate;
use roam_proto::crypto::proposal::{self, ProposalSpec};
use roam_proto::crypto::sign::PrivateKey;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_proto::ike::child::{ts_any, ts_prefix};
use roam_proto::ike::responder::{ResponderAuth, ResponderConfig};
use roam_proto::wire::TrafficSelector;
use serde::Deserialize;
use zeroize::Zeroizing;

pub use crate::profile::ProfileError;
use crate::profile::{read_limited, read_profile_text, resolve, wall_clock_unix_time};
use crate::serve_tun::{network, TunSettings};

pub const DEFAULT_PORT: u16 = 500;
pub const DEFAULT_TUN_NAME: &str = "roams0";
pub const DEFAULT_MTU: u16 = 1400;
/// Most entries in a list key (subnets, DNS servers, proposals).
const MAX_LIST: usize = 64;

/// A loaded, validated server profile.
#[derive(Debug)]
pub struct ServerProfile {
    /// The IKE address and port (4500 is listened on beside port 500).
    pub listen: SocketAddr,
    /// `[server] tcp_port`: also accept IKE and ESP over TCP (RFC 9329) there (None: UDP only).
    pub tcp: Option<SocketAddr>,
    /// `[server] tls_cert` and `tls_key`: also accept TLS clients on the TCP port (RFC 9329
    /// section 8; None: plain TCP only).
    pub tls: Option<crate::tls::TlsServer>,
    pub responder: ResponderConfig,
    pub tun: TunSettings,
    /// The weak algorithms `[crypto] allow_weak` lets in (empty: none).
    pub allow_weak: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct Raw {
    server: Option<RawServer>,
    auth: Option<RawAuth>,
    pool: Option<RawPool>,
    tunnel: Option<RawTunnel>,
    crypto: Option<RawCrypto>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawServer {
    listen: Option<String>,
    port: Option<u16>,
    /// Listen on TCP as well, on this port (RFC 9329; 4500 or 443 are usual).
    tcp_port: Option<u16>,
    id: Option<String>,
    certificate: Option<String>,
    private_key: Option<String>,
    /// The TLS certificate chain (PEM, leaf first) for TLS clients on `tcp_port`.
    tls_cert: Option<String>,
    /// Its private key (PEM).
    tls_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawAuth {
    method: Option<String>,
    psk: Option<Zeroizing<String>>,
    ca: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawPool {
    ipv4: Option<String>,
    ipv6: Option<String>,
    dns: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawTunnel {
    subnets: Option<Vec<String>>,
    mobike: Option<bool>,
    mtu: Option<u16>,
    tun_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawCrypto {
    ike: Option<Vec<String>>,
    esp: Option<Vec<String>>,
    allow_weak: Option<Vec<String>>,
}

fn invalid(key: &str, problem: impl Into<String>) -> ProfileError {
    ProfileError::Invalid {
        key: key.to_string(),
        problem: problem.into(),
    }
}

fn missing(key: &str, why: Option<&str>) -> ProfileError {
    ProfileError::Missing {
        key: key.to_string(),
        why: why.map(str::to_string),
    }
}

/// Reads and validates the server profile at `path`.
pub fn load(path: &Path) -> Result<ServerProfile, ProfileError> {
    let (text, base) = read_profile_text(path)?;
    from_str(&text, &base, wall_clock_unix_time())
}

/// Validates a server profile given as text; `base_dir` anchors relative file names and
/// `unix_time` is what client certificates are checked against (None: not checked).
pub fn from_str(
    text: &str,
    base_dir: &Path,
    unix_time: Option<u64>,
) -> Result<ServerProfile, ProfileError> {
    let raw = parse_toml(text)?;
    let server = raw.server.ok_or_else(|| missing("server", None))?;
    let auth = raw.auth.ok_or_else(|| missing("auth", None))?;
    let pool = raw.pool.unwrap_or_default();
    let tunnel = raw.tunnel.unwrap_or_default();
    let crypto = raw.crypto.unwrap_or_default();

    let ip: IpAddr = match server.listen.as_deref() {
        None => Ipv4Addr::UNSPECIFIED.into(),
        Some(s) => s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| invalid("server.listen", format!("'{s}' is not an IP address")))?,
    };
    let port = server.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(invalid("server.port", "must be 1 to 65535"));
    }
    if server.tcp_port == Some(0) {
        return Err(invalid("server.tcp_port", "must be 1 to 65535"));
    }
    let tcp = server.tcp_port.map(|p| SocketAddr::new(ip, p));
    let tls = tls_server(&server, base_dir)?;
    let id = server
        .id
        .as_deref()
        .ok_or_else(|| missing("server.id", None))?;
    let id = Identity::parse(id).map_err(|e| invalid("server.id", e.to_string()))?;

    let (auth, ca) = credentials(&server, &auth, base_dir)?;

    let pool4 = pool
        .ipv4
        .as_deref()
        .map(|s| pool_range("pool.ipv4", s, false))
        .transpose()?;
    let pool6 = pool
        .ipv6
        .as_deref()
        .map(|s| pool_range("pool.ipv6", s, true))
        .transpose()?;
    if pool4.is_none() && pool6.is_none() {
        return Err(missing(
            "pool.ipv4",
            Some("a pool of client addresses (pool.ipv4 or pool.ipv6) is required"),
        ));
    }
    let dns = list("pool.dns", pool.dns.as_deref())?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpAddr>().map_err(|_| {
                invalid(
                    &format!("pool.dns[{i}]"),
                    format!("'{s}' is not an IP address"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let subnets = match tunnel.subnets.as_deref() {
        None => vec![ts_any(false), ts_any(true)],
        Some([]) => return Err(invalid("tunnel.subnets", "empty")),
        Some(_) => list("tunnel.subnets", tunnel.subnets.as_deref())?
            .iter()
            .enumerate()
            .map(|(i, s)| subnet(&format!("tunnel.subnets[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let mtu = tunnel.mtu.unwrap_or(DEFAULT_MTU);
    let min_mtu = if pool6.is_some() { 1280 } else { 576 };
    if !(min_mtu..=9000).contains(&mtu) {
        return Err(invalid(
            "tunnel.mtu",
            format!(
                "must be {min_mtu} to 9000{}",
                if pool6.is_some() {
                    " (IPv6 needs 1280)"
                } else {
                    ""
                }
            ),
        ));
    }
    let tun_name = tunnel.tun_name.unwrap_or_else(|| DEFAULT_TUN_NAME.into());
    if tun_name.is_empty()
        || tun_name.len() > 15
        || !tun_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(invalid(
            "tunnel.tun_name",
            "1 to 15 letters, digits, '-', '_' or '.'",
        ));
    }

    let allow_weak = crypto.allow_weak.unwrap_or_default();
    let ike = proposals("crypto.ike", crypto.ike, proposal::default_ike, |s| {
        ProposalSpec::parse_ike(s, &allow_weak)
    })?;
    let esp = proposals("crypto.esp", crypto.esp, proposal::default_esp, |s| {
        ProposalSpec::parse_esp(s, &allow_weak)
    })?;

    let addresses = [pool4, pool6]
        .into_iter()
        .flatten()
        .map(|p| (p.server, p.prefix))
        .collect();
    Ok(ServerProfile {
        listen: SocketAddr::new(ip, port),
        tcp,
        tls,
        responder: ResponderConfig {
            id,
            auth,
            ca,
            eap_users: Vec::new(),
            ike,
            esp,
            pool4: pool4.and_then(|p| match p.first {
                IpAddr::V4(a) => Some((a, p.size)),
                IpAddr::V6(_) => None,
            }),
            pool6: pool6.and_then(|p| match p.first {
                IpAddr::V6(a) => Some((a, p.size)),
                IpAddr::V4(_) => None,
            }),
            dns,
            subnets,
            mobike: tunnel.mobike.unwrap_or(true),
            require_cookie: false,
            retransmit: Retransmit::default(),
            fragment_size: DEFAULT_FRAGMENT_SIZE,
            unix_time,
        },
        tun: TunSettings {
            name: tun_name,
            mtu,
            addresses,
        },
        allow_weak,
    })
}

/// How the server authenticates, and the trust anchors for client certificates.
fn credentials(
    server: &RawServer,
    auth: &RawAuth,
    base_dir: &Path,
) -> Result<(ResponderAuth, Vec<Certificate>), ProfileError> {
    match auth.method.as_deref() {
        None => Err(missing("auth.method", None)),
        Some("psk") => {
            for (key, set) in [
                ("auth.ca", auth.ca.is_some()),
                ("server.certificate", server.certificate.is_some()),
                ("server.private_key", server.private_key.is_some()),
            ] {
                if set {
                    return Err(invalid(key, "not used with method \"psk\""));
                }
            }
            let psk = match auth.psk.as_deref().map(String::as_str) {
                None => return Err(missing("auth.psk", Some("required for method \"psk\""))),
                Some("") => return Err(invalid("auth.psk", "empty")),
                Some(p) => p,
            };
            Ok((
                ResponderAuth::Psk(Secret::from_slice(psk.as_bytes())),
                Vec::new(),
            ))
        }
        Some("certificate") => {
            if auth.psk.is_some() {
                return Err(invalid("auth.psk", "not used with method \"certificate\""));
            }
            let why = Some("required for method \"certificate\"");
            let cert = server
                .certificate
                .as_deref()
                .ok_or_else(|| missing("server.certificate", why))?;
            let key = server
                .private_key
                .as_deref()
                .ok_or_else(|| missing("server.private_key", why))?;
            let ca = auth.ca.as_deref().ok_or_else(|| missing("auth.ca", why))?;
            let chain = certificates("server.certificate", base_dir, cert)?;
            let key_data = read_file("server.private_key", base_dir, key)?;
            let key = PrivateKey::from_pem(&key_data)
                .map_err(|e| invalid("server.private_key", e.to_string()))?;
            if !chain.first().is_some_and(|c| key.matches(c)) {
                return Err(invalid(
                    "server.private_key",
                    "does not belong to the certificate in server.certificate",
                ));
            }
            let ca = certificates("auth.ca", base_dir, ca)?;
            Ok((ResponderAuth::Certificate { chain, key }, ca))
        }
        Some(other) => Err(invalid(
            "auth.method",
            format!("unknown method \"{other}\" (expected \"psk\" or \"certificate\")"),
        )),
    }
}

/// A pool as a range: the server's address, the clients' first address and their count.
#[derive(Clone, Copy, Debug)]
struct PoolRange {
    server: IpAddr,
    prefix: u8,
    first: IpAddr,
    size: u32,
}

fn pool_range(key: &str, s: &str, v6: bool) -> Result<PoolRange, ProfileError> {
    let (addr, prefix) = cidr(key, s)?;
    if addr.is_ipv6() != v6 {
        return Err(invalid(
            key,
            format!("'{s}' is not an IPv{} network", if v6 { 6 } else { 4 }),
        ));
    }
    let (server, first, size) = match addr {
        IpAddr::V4(a) => {
            if prefix > 30 {
                return Err(invalid(
                    key,
                    "a prefix of /30 or shorter is needed (the server takes one address)",
                ));
            }
            let base = u32::from(a);
            // Network and broadcast addresses aside, the server takes the first.
            let hosts = (1u64 << (32 - u32::from(prefix))) - 2;
            (
                IpAddr::V4(Ipv4Addr::from(base + 1)),
                IpAddr::V4(Ipv4Addr::from(base + 2)),
                u32::try_from(hosts - 1).unwrap_or(u32::MAX),
            )
        }
        IpAddr::V6(a) => {
            if prefix > 126 {
                return Err(invalid(
                    key,
                    "a prefix of /126 or shorter is needed (the server takes one address)",
                ));
            }
            let base = u128::from(a);
            let bits = 128 - u32::from(prefix);
            let hosts = if bits >= 64 {
                u128::from(u64::MAX)
            } else {
                (1u128 << bits) - 2
            };
            (
                IpAddr::V6(Ipv6Addr::from(base + 1)),
                IpAddr::V6(Ipv6Addr::from(base + 2)),
                u32::try_from(hosts).unwrap_or(u32::MAX),
            )
        }
    };
    Ok(PoolRange {
        server,
        prefix,
        first,
        size,
    })
}

/// `address/prefix`, the address being the network's (no host bits set).
fn cidr(key: &str, s: &str) -> Result<(IpAddr, u8), ProfileError> {
    let bad = || invalid(key, format!("'{s}' is not a network like 198.18.0.0/24"));
    let (a, p) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
    let prefix: u8 = p.trim().parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    let net = network(addr, prefix);
    if net != addr {
        return Err(invalid(
            key,
            format!("'{s}' has host bits set (the network is {net}/{prefix})"),
        ));
    }
    Ok((addr, prefix))
}

fn subnet(key: &str, s: &str) -> Result<TrafficSelector, ProfileError> {
    let (addr, prefix) = cidr(key, s)?;
    Ok(ts_prefix(addr, prefix))
}

/// A list key's entries (bounded).
fn list<'a>(key: &str, v: Option<&'a [String]>) -> Result<&'a [String], ProfileError> {
    let v = v.unwrap_or_default();
    if v.len() > MAX_LIST {
        return Err(invalid(key, format!("at most {MAX_LIST} entries")));
    }
    Ok(v)
}

fn proposals(
    key: &str,
    given: Option<Vec<String>>,
    default: fn() -> Vec<String>,
    parse: impl Fn(&str) -> Result<ProposalSpec, proposal::ProposalError>,
) -> Result<Vec<ProposalSpec>, ProfileError> {
    let list_ = match given {
        None => default(),
        Some(l) if l.is_empty() => {
            return Err(invalid(
                key,
                "empty (name at least one proposal, or leave the key out for the defaults)",
            ))
        }
        Some(l) => l,
    };
    list(key, Some(&list_))?;
    list_
        .iter()
        .enumerate()
        .map(|(i, p)| parse(p).map_err(|e| invalid(&format!("{key}[{i}]"), e.to_string())))
        .collect()
}

fn parse_toml(text: &str) -> Result<Raw, ProfileError> {
    let syntax = |key: Option<String>, e: &toml::de::Error| {
        // Only the message and the position: toml's `Display` quotes the line (maybe a PSK).
        let location = match e.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}")
            }
            None => "profile".to_string(),
        };
        ProfileError::Syntax {
            key,
            location,
            message: e.message().trim().to_string(),
        }
    };
    let de = toml::Deserializer::parse(text).map_err(|e| syntax(None, &e))?;
    serde_path_to_error::deserialize::<_, Raw>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_string();
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            let key = if path == name || path.ends_with(&format!(".{name}")) {
                path
            } else {
                format!("{path}.{name}")
            };
            return ProfileError::UnknownKey {
                key: key.trim_start_matches('.').to_string(),
            };
        }
        let key = (!path.is_empty() && path != ".").then_some(path);
        if key.as_deref() == Some("auth.psk") {
            return invalid("auth.psk", "must be a string");
        }
        syntax(key, &inner)
    })
}

/// `[server] tls_cert` and `tls_key`: both or neither, and only with `tcp_port`.
fn tls_server(
    server: &RawServer,
    base_dir: &Path,
) -> Result<Option<crate::tls::TlsServer>, ProfileError> {
    let (cert, key) = match (&server.tls_cert, &server.tls_key) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(missing("server.tls_key", Some("tls_cert is set"))),
        (None, Some(_)) => return Err(missing("server.tls_cert", Some("tls_key is set"))),
        (Some(c), Some(k)) => (c, k),
    };
    if server.tcp_port.is_none() {
        return Err(missing(
            "server.tcp_port",
            Some("TLS (tls_cert) is served on the TCP port"),
        ));
    }
    if !crate::tls::SUPPORTED {
        return Err(invalid(
            "server.tls_cert",
            "this build has no TLS support (roam-runtime's `tls` feature)",
        ));
    }
    let chain = read_file("server.tls_cert", base_dir, cert)?;
    let key_pem = read_file("server.tls_key", base_dir, key)?;
    crate::tls::TlsServer::from_pem(&chain, &key_pem)
        .map(Some)
        .map_err(|e| match e {
            crate::tls::TlsError::BadKey(_) => invalid("server.tls_key", e.to_string()),
            _ => invalid("server.tls_cert", e.to_string()),
        })
}

fn read_file(key: &str, base_dir: &Path, name: &str) -> Result<Zeroizing<Vec<u8>>, ProfileError> {
    let path = resolve(base_dir, name);
    read_limited(&path).map_err(|source| ProfileError::File {
        key: key.to_string(),
        path,
        source,
    })
}

fn certificates(key: &str, base_dir: &Path, name: &str) -> Result<Vec<Certificate>, ProfileError> {
    let data = read_file(key, base_dir, name)?;
    let certs = Certificate::parse_pem_or_der(&data)
        .map_err(|e| invalid(key, format!("{}: {e}", resolve(base_dir, name).display())))?;
    if certs.is_empty() {
        return Err(invalid(key, "no certificate in it"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
