//! The configuration records the app fills (mirroring the profile's `[server]`, `[auth]`,
//! `[crypto]` and `[tunnel]` tables) and their validation into a `ClientConfig`. Every error
//! names its field with the profile's key. Secrets travel as `SecretText` objects, so they
//! never show up in a generated `toString()`/`description` nor in a Rust `Debug`.

use std::sync::Arc;
use std::time::Duration;

use roam_proto::config::{ClientAuth, ClientConfig};
use roam_proto::crypto::cert::Certificate;
use roam_proto::crypto::proposal::{self, ProposalSpec};
use roam_proto::crypto::sign::PrivateKey;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use roam_runtime::profile::{self, ServerAddress};
use roam_runtime::tcp::TransportPolicy;
use zeroize::Zeroizing;

use crate::error::VpnError;

/// Largest PEM text accepted for a certificate chain, a CA bundle or a key.
const MAX_PEM: usize = 1024 * 1024;

/// A secret (pre-shared key, password, private key), zeroized when the last reference goes.
#[derive(uniffi::Object)]
pub struct SecretText {
    value: Zeroizing<String>,
}

#[uniffi::export]
impl SecretText {
    #[uniffi::constructor]
    pub fn new(value: String) -> Arc<Self> {
        Arc::new(Self {
            value: Zeroizing::new(value),
        })
    }

    /// Whether the secret is empty (the value itself never crosses back).
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl SecretText {
    pub(crate) fn expose(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// `[server]`: where the VPN server is and how we recognise it.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ServerConfig {
    /// Host name or IP address.
    pub address: String,
    #[uniffi(default = 500)]
    pub port: u16,
    /// The identity we expect the server to prove (IDr); None accepts what it sends.
    #[uniffi(default = None)]
    pub id: Option<String>,
    /// Trust anchors for the server's certificate, PEM (needed unless the method is PSK).
    #[uniffi(default = None)]
    pub ca_pem: Option<String>,
}

/// `[auth]`: how we authenticate.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum AuthConfig {
    Psk {
        local_id: String,
        psk: Arc<SecretText>,
    },
    EapMschapv2 {
        username: String,
        password: Arc<SecretText>,
        /// IDi; defaults to the user name.
        local_id: Option<String>,
    },
    Certificate {
        /// Our certificate first, then intermediates, PEM.
        certificate_pem: String,
        private_key_pem: Arc<SecretText>,
        /// IDi; defaults to the certificate's subject.
        local_id: Option<String>,
    },
}

/// `[crypto]`: proposals in strongSwan syntax; empty lists mean Roam's strong defaults.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct CryptoConfig {
    #[uniffi(default)]
    pub ike: Vec<String>,
    #[uniffi(default)]
    pub esp: Vec<String>,
    /// Weak algorithms accepted by name (e.g. "sha1", "modp1024").
    #[uniffi(default)]
    pub allow_weak: Vec<String>,
    /// A server without the hybrid post-quantum exchange the proposals name may be used
    /// classically (like Apple's AllowPostQuantumKeyExchangeFallback); off by default.
    #[uniffi(default = false)]
    pub pq_fallback: bool,
}

/// `[tunnel]`: liveness and size.
#[derive(Clone, Debug, uniffi::Record)]
pub struct TunnelConfig {
    #[uniffi(default = true)]
    pub mobike: bool,
    /// Dead peer detection interval; 0 turns it off.
    #[uniffi(default = 30)]
    pub dpd_seconds: u32,
    #[uniffi(default = 20)]
    pub keepalive_seconds: u32,
    #[uniffi(default = 1400)]
    pub mtu: u16,
    /// "auto" (UDP, then TCP when UDP goes unanswered), "udp" or "tcp" (RFC 9329).
    #[uniffi(default = "auto")]
    pub transport: String,
    /// The server's TCP port (443 is common).
    #[uniffi(default = 4500)]
    pub tcp_port: u16,
    /// "auto": how long UDP may stay unanswered before TCP is tried, 100 to 60000 ms.
    #[uniffi(default = 2000)]
    pub tcp_fallback_ms: u32,
    /// TLS around the TCP connections (RFC 9329 section 8), for networks that pass only
    /// HTTPS-like traffic; off by default. IKE still authenticates the server.
    #[uniffi(default = false)]
    pub tcp_tls: bool,
    /// The TLS server name (SNI). None: the server's host name, or no SNI for an IP address.
    #[uniffi(default = None)]
    pub tcp_tls_server_name: Option<String>,
    /// "none" (any TLS certificate: IKE authenticates the server) or "ca" (the TLS chain must
    /// end at `server.ca_pem` and name the server).
    #[uniffi(default = "none")]
    pub tcp_tls_verify: String,
    /// "auto" on TCP: how often to try whether UDP gets through again, 5 to 86400 s (0: never).
    #[uniffi(default = 120)]
    pub udp_retry_seconds: u32,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        Self {
            mobike: true,
            dpd_seconds: profile::DEFAULT_DPD_SECONDS as u32,
            keepalive_seconds: profile::DEFAULT_KEEPALIVE_SECONDS as u32,
            mtu: profile::DEFAULT_MTU,
            transport: "auto".into(),
            tcp_port: 4500,
            tcp_fallback_ms: 2000,
            udp_retry_seconds: 120,
            tcp_tls: false,
            tcp_tls_server_name: None,
            tcp_tls_verify: "none".into(),
        }
    }
}

/// A post-quantum preshared key (RFC 8784): the profile's `[auth] ppk`, `ppk_id`,
/// `ppk_required`.
#[derive(Clone, Debug, uniffi::Record)]
pub struct PpkConfig {
    pub id: String,
    /// At least 16 bytes (as text, or as hex digits when `key_is_hex`).
    pub key: Arc<SecretText>,
    /// `key` holds hex digits: for keys that are not text (an imported Apple `PPK`).
    #[uniffi(default = false)]
    pub key_is_hex: bool,
    /// Fail when the server has no PPK support or not this PPK (else connect without it).
    #[uniffi(default = true)]
    pub required: bool,
}

/// A whole profile as records.
#[derive(Clone, Debug, uniffi::Record)]
pub struct VpnConfig {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    #[uniffi(default = None)]
    pub crypto: Option<CryptoConfig>,
    #[uniffi(default = None)]
    pub tunnel: Option<TunnelConfig>,
    #[uniffi(default = None)]
    pub ppk: Option<PpkConfig>,
}

/// Checks a configuration without starting anything; the error names the first bad field.
#[uniffi::export]
pub fn validate_config(config: VpnConfig) -> Result<(), VpnError> {
    validate(&config, None).map(|_| ())
}

/// Where a tunnel's configuration comes from; it is validated again at every start (a
/// `ClientConfig` holds keys and is consumed by the session).
#[derive(Clone, Debug)]
pub(crate) enum ConfigSource {
    Records(Box<VpnConfig>),
    Profile {
        text: Arc<Zeroizing<String>>,
        base_dir: String,
    },
}

impl ConfigSource {
    pub(crate) fn build(&self) -> Result<Validated, VpnError> {
        let now = wall_clock_unix_time();
        match self {
            Self::Records(c) => validate(c, now),
            Self::Profile { text, base_dir } => {
                let p = profile::from_str(text, std::path::Path::new(base_dir), now)?;
                Ok(Validated {
                    server: p.server,
                    config: p.config,
                    transport: p.transport,
                })
            }
        }
    }
}

/// A configuration the session can run on.
#[derive(Debug)]
pub(crate) struct Validated {
    pub server: ServerAddress,
    pub config: ClientConfig,
    pub transport: TransportPolicy,
}

pub(crate) fn validate(c: &VpnConfig, unix_time: Option<u64>) -> Result<Validated, VpnError> {
    let server = server_address(&c.server)?;
    let server_id = c
        .server
        .id
        .as_deref()
        .map(|s| identity("server.id", s))
        .transpose()?;
    let ca = match c.server.ca_pem.as_deref() {
        Some(pem) => certificates("server.ca", pem)?,
        None => Vec::new(),
    };
    let (auth, local_id, needs_ca) = auth(&c.auth)?;
    if needs_ca && ca.is_empty() {
        return Err(VpnError::config(
            "server.ca",
            "missing (the server signs with a certificate for this method)",
        ));
    }
    let crypto = c.crypto.clone().unwrap_or_default();
    let ike = proposals("crypto.ike", &crypto.ike, proposal::default_ike, |s| {
        ProposalSpec::parse_ike(s, &crypto.allow_weak).map(|_| ())
    })?;
    let esp = proposals("crypto.esp", &crypto.esp, proposal::default_esp, |s| {
        ProposalSpec::parse_esp(s, &crypto.allow_weak).map(|_| ())
    })?;
    let tunnel = c.tunnel.clone().unwrap_or_default();
    if tunnel.dpd_seconds > 86_400 {
        return Err(VpnError::config(
            "tunnel.dpd_seconds",
            "must be 0 (off) to 86400",
        ));
    }
    if !(1..=3_600).contains(&tunnel.keepalive_seconds) {
        return Err(VpnError::config(
            "tunnel.keepalive_seconds",
            "must be 1 to 3600",
        ));
    }
    if !(576..=9_000).contains(&tunnel.mtu) {
        return Err(VpnError::config("tunnel.mtu", "must be 576 to 9000"));
    }
    let mut transport = profile::transport_policy(
        Some(&tunnel.transport),
        Some(tunnel.tcp_port),
        Some(tunnel.tcp_fallback_ms.into()),
    )?;
    transport.udp_retry = profile::udp_retry(Some(tunnel.udp_retry_seconds.into()))?;
    // The record always holds a mode; like the profile's key, one other than the default is
    // an error while TLS is off.
    let verify = (tunnel.tcp_tls || tunnel.tcp_tls_verify != "none")
        .then_some(tunnel.tcp_tls_verify.as_str());
    transport.tls = profile::tls_policy(
        tunnel.tcp_tls,
        tunnel.tcp_tls_server_name.as_deref(),
        verify,
        &server.host,
        &ca,
    )?;
    let ppk = match &c.ppk {
        Some(p) => {
            let key = if p.key_is_hex {
                Zeroizing::new(hex::decode(p.key.expose().trim()).map_err(|_| {
                    VpnError::config("ppk.key", "not hex (an even number of digits 0-9, a-f)")
                })?)
            } else {
                Zeroizing::new(p.key.expose().as_bytes().to_vec())
            };
            profile::ppk_settings(Some(&key), Some(&p.id), Some(p.required))?
        }
        None => None,
    };

    let mut config = ClientConfig::new(auth);
    config.local_id = local_id;
    config.server_id = server_id;
    config.ca = ca;
    config.ike_proposals = ike;
    config.esp_proposals = esp;
    config.allow_weak = crypto.allow_weak;
    config.pq_fallback = crypto.pq_fallback;
    config.ppk = ppk;
    config.mobike = tunnel.mobike;
    config.dpd = (tunnel.dpd_seconds > 0).then(|| Duration::from_secs(tunnel.dpd_seconds.into()));
    config.keepalive = Duration::from_secs(tunnel.keepalive_seconds.into());
    config.mtu = tunnel.mtu;
    config.unix_time = unix_time;
    Ok(Validated {
        server,
        config,
        transport,
    })
}

fn server_address(s: &ServerConfig) -> Result<ServerAddress, VpnError> {
    Ok(ServerAddress::parse(&s.address, s.port)?)
}

fn identity(key: &str, s: &str) -> Result<Identity, VpnError> {
    Identity::parse(s).map_err(|e| VpnError::config(key, e.to_string()))
}

fn non_empty<'a>(key: &str, s: &'a str) -> Result<&'a str, VpnError> {
    if s.is_empty() {
        Err(VpnError::config(key, "empty"))
    } else {
        Ok(s)
    }
}

fn certificates(key: &str, pem: &str) -> Result<Vec<Certificate>, VpnError> {
    if pem.len() > MAX_PEM {
        return Err(VpnError::config(key, "larger than 1 MiB"));
    }
    let certs = Certificate::parse_pem_or_der(pem.as_bytes())
        .map_err(|e| VpnError::config(key, e.to_string()))?;
    if certs.is_empty() {
        return Err(VpnError::config(key, "no certificate in it"));
    }
    Ok(certs)
}

/// The session's credentials, our identity, and whether the server must show a certificate.
fn auth(a: &AuthConfig) -> Result<(ClientAuth, Option<Identity>, bool), VpnError> {
    match a {
        AuthConfig::Psk { local_id, psk } => {
            let id = identity("auth.local_id", non_empty("auth.local_id", local_id)?)?;
            let psk = non_empty("auth.psk", psk.expose())?;
            Ok((
                ClientAuth::Psk(Secret::from_slice(psk.as_bytes())),
                Some(id),
                false,
            ))
        }
        AuthConfig::EapMschapv2 {
            username,
            password,
            local_id,
        } => {
            let username = non_empty("auth.username", username)?;
            let password = non_empty("auth.password", password.expose())?;
            let id = match local_id {
                Some(id) => identity("auth.local_id", id)?,
                None => identity("auth.username", username)?,
            };
            Ok((
                ClientAuth::EapMschapv2 {
                    username: username.to_string(),
                    password: Secret::from_slice(password.as_bytes()),
                },
                Some(id),
                true,
            ))
        }
        AuthConfig::Certificate {
            certificate_pem,
            private_key_pem,
            local_id,
        } => {
            let chain = certificates("auth.certificate", certificate_pem)?;
            let key_pem = non_empty("auth.private_key", private_key_pem.expose())?;
            if key_pem.len() > MAX_PEM {
                return Err(VpnError::config("auth.private_key", "larger than 1 MiB"));
            }
            // The key's parse error never quotes the key.
            let key = PrivateKey::from_pem(key_pem.as_bytes())
                .map_err(|e| VpnError::config("auth.private_key", e.to_string()))?;
            if !chain.first().is_some_and(|c| key.matches(c)) {
                return Err(VpnError::config(
                    "auth.private_key",
                    "does not belong to the certificate in auth.certificate",
                ));
            }
            let id = local_id
                .as_deref()
                .map(|s| identity("auth.local_id", s))
                .transpose()?;
            Ok((ClientAuth::Certificate { chain, key }, id, true))
        }
    }
}

fn proposals(
    key: &str,
    given: &[String],
    default: fn() -> Vec<String>,
    parse: impl Fn(&str) -> Result<(), proposal::ProposalError>,
) -> Result<Vec<String>, VpnError> {
    if given.is_empty() {
        return Ok(default());
    }
    for (i, p) in given.iter().enumerate() {
        parse(p).map_err(|e| VpnError::config(format!("{key}[{i}]"), e.to_string()))?;
    }
    Ok(given.to_vec())
}

/// The wall-clock time for certificate validity checks (the runtime side reads the clock).
#[allow(clippy::disallowed_methods)]
fn wall_clock_unix_time() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests;
