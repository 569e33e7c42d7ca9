//! The client profile: a TOML file (see the project's profile contract) read, checked and
//! turned into a validated `roam_proto::config::ClientConfig` plus the server's name and port.
//! Every problem is a `ProfileError` naming the key and what is wrong with it; secrets are kept
//! in zeroizing buffers and never appear in an error or a log line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roam_proto::config::{ClientAuth, ClientConfig, Lifetimes};
use roam_proto::crypto::cert::Certificate;
use roam_proto::crypto::proposal::{self, ProposalSpec};
use roam_proto::crypto::sign::PrivateKey;
use roam_proto::crypto::Secret;
use roam_proto::identity::Identity;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::tcp::{TransportMode, TransportPolicy};
use crate::tls::{TlsPolicy, TlsVerify};

/// The IKE port used when the profile names none.
pub const DEFAULT_PORT: u16 = 500;
pub const DEFAULT_DPD_SECONDS: u64 = 30;
pub const DEFAULT_KEEPALIVE_SECONDS: u64 = 20;
pub const DEFAULT_MTU: u16 = 1400;
/// IKE messages larger than this are fragmented (RFC 7383), a size that passes IPv6's minimum
/// MTU with room for the headers.
pub use roam_proto::config::DEFAULT_FRAGMENT_SIZE;
/// Profiles, certificates and keys larger than this are refused (they are a few KiB).
const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// A loaded, validated profile: where the server is and the session's configuration.
#[derive(Debug)]
pub struct Profile {
    pub server: ServerAddress,
    pub config: ClientConfig,
    /// `[tunnel] transport`, `tcp_port`, `tcp_fallback_ms`: UDP, TCP or auto (the default);
    /// `tcp_tls`, `tcp_tls_server_name`, `tcp_tls_verify`: TLS around TCP (default off).
    pub transport: TransportPolicy,
}

/// The server as the profile names it: a host name or an IP address, and the UDP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a profile was rejected. `Display` is `<key>: <problem>` wherever a key is to blame.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile file itself could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed (`key` is set when the error can be tied to one).
    #[error("{}: {message}", key.as_deref().unwrap_or(location.as_str()))]
    Syntax {
        key: Option<String>,
        location: String,
        message: String,
    },
    /// A key the profile format does not know.
    #[error("{key}: unknown key")]
    UnknownKey { key: String },
    /// A required key is absent; `why` says why it is required here.
    #[error("{key}: missing{}", why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Missing { key: String, why: Option<String> },
    /// A key has a value of the wrong type or out of range.
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
    /// A key names a file that cannot be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    File {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A valid value the client does not support yet.
    #[error("{key}: \"{value}\" is not supported yet")]
    NotSupported { key: String, value: String },
}

impl ProfileError {
    /// The profile key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { key, .. } => key.as_deref(),
            Self::UnknownKey { key }
            | Self::Missing { key, .. }
            | Self::Invalid { key, .. }
            | Self::File { key, .. }
            | Self::NotSupported { key, .. } => Some(key),
        }
    }

    fn missing(key: &str, why: Option<String>) -> Self {
        Self::Missing {
            key: key.to_string(),
            why,
        }
    }
    fn invalid(key: &str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

// ---- the TOML shape ------------------------------------------------------------------------

/// Every field is optional here so that the loader, not serde, says what is missing and why.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawProfile {
    server: Option<RawServer>,
    auth: Option<RawAuth>,
    crypto: Option<RawCrypto>,
    tunnel: Option<RawTunnel>,
    lifetimes: Option<RawLifetimes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawLifetimes {
    ike_rekey_seconds: Option<u64>,
    child_rekey_seconds: Option<u64>,
    /// Each SA is rekeyed up to this much earlier, at random (at most a tenth of its lifetime).
    jitter_seconds: Option<u64>,
    child_rekey_bytes: Option<u64>,
    child_rekey_packets: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawServer {
    address: Option<String>,
    port: Option<u16>,
    id: Option<String>,
    ca: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawAuth {
    method: Option<String>,
    local_id: Option<String>,
    psk: Option<Zeroizing<String>>,
    username: Option<String>,
    password: Option<Zeroizing<String>>,
    certificate: Option<String>,
    private_key: Option<String>,
    /// A post-quantum preshared key (RFC 8784), with any method.
    ppk: Option<Zeroizing<String>>,
    /// The same key as hex digits, for keys that are not text (instead of `ppk`).
    ppk_hex: Option<Zeroizing<String>>,
    ppk_id: Option<String>,
    ppk_required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawCrypto {
    ike: Option<Vec<String>>,
    esp: Option<Vec<String>>,
    allow_weak: Option<Vec<String>>,
    /// Also offer the IKE proposals without their post-quantum key exchanges (default false).
    pq_fallback: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawTunnel {
    mobike: Option<bool>,
    dpd_seconds: Option<u64>,
    keepalive_seconds: Option<u64>,
    mtu: Option<u16>,
    /// Reconnect by itself after losing the connection (default true).
    reconnect: Option<bool>,
    /// First retransmission of a request after this long (default 4000), growing by 1.8.
    retransmit_initial_ms: Option<u64>,
    /// Sends of a request before the peer counts as gone (default 5).
    retransmit_tries: Option<u32>,
    /// Sends of a liveness check before the path counts as dead (default 4).
    dpd_tries: Option<u32>,
    /// "auto" (default), "udp" or "tcp" (RFC 9329).
    transport: Option<String>,
    /// The server's TCP port (default 4500).
    tcp_port: Option<u16>,
    /// `auto`: how long UDP may stay unanswered before TCP is tried (default 2000).
    tcp_fallback_ms: Option<u64>,
    /// `auto` on TCP: how often UDP is tried again (default 120; 0: never).
    udp_retry_seconds: Option<u64>,
    /// TLS around the TCP connections (RFC 9329 section 8; default false).
    tcp_tls: Option<bool>,
    /// The TLS server name (SNI); default the server's host name, none for an IP address.
    tcp_tls_server_name: Option<String>,
    /// "none" (default: IKE authenticates the server) or "ca" (the chain must end at
    /// `server.ca` and name the server).
    tcp_tls_verify: Option<String>,
}

/// Keys whose values are secret: a type error there must not echo the value.
const SECRET_KEYS: &[&str] = &["auth.psk", "auth.password", "auth.ppk", "auth.ppk_hex"];

// ---- loading -------------------------------------------------------------------------------

/// Reads and validates the profile at `path`. Relative file names in it are relative to the
/// profile's directory; certificate validity is checked against the current wall-clock time.
pub fn load(path: &Path) -> Result<Profile, ProfileError> {
    let (text, base) = read_profile_text(path)?;
    from_str(&text, &base, wall_clock_unix_time())
}

/// Reads a profile file (bounded, zeroized on drop: it may hold secrets) and the directory its
/// relative file names are relative to.
pub(crate) fn read_profile_text(path: &Path) -> Result<(Zeroizing<String>, PathBuf), ProfileError> {
    let bytes = read_limited(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ProfileError::Syntax {
        key: None,
        location: "profile".into(),
        message: "not UTF-8".into(),
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    Ok((Zeroizing::new(text.to_string()), base.to_path_buf()))
}

/// Validates a profile given as text. `base_dir` anchors relative file names; `unix_time` is
/// what the session checks certificate validity against (None skips that check).
///
/// First the shape: every key present that the method needs, every value in range, the files
/// read; then the contents: identities, certificates and the key parsed and matched.
pub fn from_str(
    text: &str,
    base_dir: &Path,
    unix_time: Option<u64>,
) -> Result<Profile, ProfileError> {
    let raw = parse_toml(text)?;
    let server = raw
        .server
        .ok_or_else(|| ProfileError::missing("server", None))?;
    let auth = raw
        .auth
        .ok_or_else(|| ProfileError::missing("auth", None))?;

    let address = server_address(&server)?;
    let method = Method::parse(auth.method.as_deref())?;
    method.check_unused_keys(&auth)?;
    let credentials = Credentials::check(method, &auth)?;
    if server.ca.is_none() && method.needs_ca() {
        return Err(ProfileError::missing(
            "server.ca",
            Some(method.requirement()),
        ));
    }
    let mut tunnel = tunnel(raw.tunnel)?;
    let lifetimes = lifetimes(raw.lifetimes)?;
    let ppk = ppk(&auth)?;
    let pq_fallback = raw
        .crypto
        .as_ref()
        .and_then(|c| c.pq_fallback)
        .unwrap_or(false);
    let (ike_proposals, esp_proposals, allow_weak) = crypto(raw.crypto)?;
    let ca_file = server
        .ca
        .as_deref()
        .map(|p| FileData::read("server.ca", base_dir, p))
        .transpose()?;
    let credentials = credentials.read_files(base_dir)?;

    let server_id = server
        .id
        .as_deref()
        .map(|s| parse_identity("server.id", s))
        .transpose()?;
    let local_id = auth
        .local_id
        .as_deref()
        .map(|s| parse_identity("auth.local_id", s))
        .transpose()?;
    let ca = match &ca_file {
        Some(file) => file.certificates()?,
        None => Vec::new(),
    };
    let (auth, local_id) = credentials.into_auth(local_id)?;
    tunnel.transport.tls = tls_policy(
        tunnel.tls.enabled.unwrap_or(false),
        tunnel.tls.server_name.as_deref(),
        tunnel.tls.verify.as_deref(),
        &address.host,
        &ca,
    )?;

    let mut config = ClientConfig::new(auth);
    config.local_id = local_id;
    config.server_id = server_id;
    config.ca = ca;
    config.ike_proposals = ike_proposals;
    config.esp_proposals = esp_proposals;
    config.allow_weak = allow_weak;
    config.pq_fallback = pq_fallback;
    config.ppk = ppk;
    config.mobike = tunnel.mobike;
    config.dpd = tunnel.dpd;
    config.keepalive = tunnel.keepalive;
    config.mtu = tunnel.mtu;
    config.lifetimes = lifetimes;
    if let Some(initial) = tunnel.retransmit_initial {
        config.retransmit.initial = initial;
    }
    if let Some(n) = tunnel.retransmit_tries {
        config.retransmit.tries = n;
    }
    if let Some(n) = tunnel.dpd_tries {
        config.liveness_retransmit.tries = n;
        config.check_retransmit.tries = n;
    }
    if !tunnel.reconnect {
        config.reconnect = None;
    }
    config.unix_time = unix_time;
    Ok(Profile {
        server: address,
        config,
        transport: tunnel.transport,
    })
}

fn parse_toml(text: &str) -> Result<RawProfile, ProfileError> {
    let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, None, &e))?;
    serde_path_to_error::deserialize::<_, RawProfile>(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().to_string();
        if let Some(name) = unknown_field(&message) {
            // The path already ends with the unknown key (serde_path_to_error records it).
            let key = if key == name || key.ends_with(&format!(".{name}")) {
                key
            } else {
                format!("{key}.{name}")
            };
            let key = key.trim_start_matches('.').to_string();
            return ProfileError::UnknownKey { key };
        }
        let key = if key.is_empty() || key == "." {
            None
        } else {
            Some(key)
        };
        if let Some(k) = key.as_deref().filter(|k| SECRET_KEYS.contains(k)) {
            return ProfileError::invalid(k, "must be a string");
        }
        syntax_error(text, key, &inner)
    })
}

/// serde's "unknown field `x`, expected ..." names the key; pull it out.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Only the message and the position: toml's own `Display` quotes the source line, and that
/// line may hold a secret.
fn syntax_error(text: &str, key: Option<String>, e: &toml::de::Error) -> ProfileError {
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
}

fn server_address(server: &RawServer) -> Result<ServerAddress, ProfileError> {
    let host = server
        .address
        .as_deref()
        .ok_or_else(|| ProfileError::missing("server.address", None))?;
    ServerAddress::parse(host, server.port.unwrap_or(DEFAULT_PORT))
}

impl ServerAddress {
    /// Checks `server.address` (an IP address, `[v6]`, or a host name) and `server.port`.
    pub fn parse(host: &str, port: u16) -> Result<Self, ProfileError> {
        let host = host.trim();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(ProfileError::invalid("server.address", "empty"));
        }
        if host.parse::<IpAddr>().is_err() && !is_host_name(host) {
            return Err(ProfileError::invalid(
                "server.address",
                format!("'{host}' is neither an IP address nor a host name"),
            ));
        }
        if port == 0 {
            return Err(ProfileError::invalid("server.port", "must be 1 to 65535"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

/// A DNS name: dot-separated labels of letters, digits, '-' and '_', at most 253 characters.
fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Psk,
    EapMschapv2,
    Certificate,
}

impl Method {
    fn parse(value: Option<&str>) -> Result<Self, ProfileError> {
        match value {
            None => Err(ProfileError::missing("auth.method", None)),
            Some("psk") => Ok(Self::Psk),
            Some("eap-mschapv2") => Ok(Self::EapMschapv2),
            Some("certificate") => Ok(Self::Certificate),
            Some(v @ "eap-tls") => Err(ProfileError::NotSupported { key: "auth.method".into(), value: v.into() }),
            Some(other) => Err(ProfileError::invalid(
                "auth.method",
                format!("unknown method \"{other}\" (expected \"psk\", \"eap-mschapv2\" or \"certificate\")"),
            )),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Psk => "psk",
            Self::EapMschapv2 => "eap-mschapv2",
            Self::Certificate => "certificate",
        }
    }
    fn requirement(self) -> String {
        format!("required for method \"{}\"", self.name())
    }
    /// Whether the server authenticates with a certificate, so we need a CA to check it.
    fn needs_ca(self) -> bool {
        !matches!(self, Self::Psk)
    }
    /// A key of another method is most likely a mistake (a secret left where it is not used).
    fn check_unused_keys(self, auth: &RawAuth) -> Result<(), ProfileError> {
        let present = [
            ("auth.psk", auth.psk.is_some(), Self::Psk),
            ("auth.username", auth.username.is_some(), Self::EapMschapv2),
            ("auth.password", auth.password.is_some(), Self::EapMschapv2),
            (
                "auth.certificate",
                auth.certificate.is_some(),
                Self::Certificate,
            ),
            (
                "auth.private_key",
                auth.private_key.is_some(),
                Self::Certificate,
            ),
        ];
        for (key, is_set, owner) in present {
            if is_set && owner != self {
                return Err(ProfileError::invalid(
                    key,
                    format!("not used with method \"{}\"", self.name()),
                ));
            }
        }
        Ok(())
    }
}

/// A required, non-empty string value.
fn required<'a>(
    value: Option<&'a str>,
    key: &str,
    method: Method,
) -> Result<&'a str, ProfileError> {
    match value {
        None => Err(ProfileError::missing(key, Some(method.requirement()))),
        Some("") => Err(ProfileError::invalid(key, "empty")),
        Some(v) => Ok(v),
    }
}

fn parse_identity(key: &str, s: &str) -> Result<Identity, ProfileError> {
    Identity::parse(s).map_err(|e| ProfileError::invalid(key, e.to_string()))
}

/// The method's credentials, checked for presence; files still to be read.
enum Credentials<'a> {
    Psk(Secret),
    EapMschapv2 {
        username: &'a str,
        password: Secret,
    },
    Certificate {
        certificate: &'a str,
        private_key: &'a str,
    },
}

impl<'a> Credentials<'a> {
    fn check(method: Method, auth: &'a RawAuth) -> Result<Self, ProfileError> {
        match method {
            Method::Psk => {
                let psk = required(auth.psk.as_deref().map(String::as_str), "auth.psk", method)?;
                required(auth.local_id.as_deref(), "auth.local_id", method)?;
                Ok(Self::Psk(Secret::from_slice(psk.as_bytes())))
            }
            Method::EapMschapv2 => {
                let username = required(auth.username.as_deref(), "auth.username", method)?;
                let password = required(
                    auth.password.as_deref().map(String::as_str),
                    "auth.password",
                    method,
                )?;
                Ok(Self::EapMschapv2 {
                    username,
                    password: Secret::from_slice(password.as_bytes()),
                })
            }
            Method::Certificate => Ok(Self::Certificate {
                certificate: required(auth.certificate.as_deref(), "auth.certificate", method)?,
                private_key: required(auth.private_key.as_deref(), "auth.private_key", method)?,
            }),
        }
    }

    fn read_files(self, base_dir: &Path) -> Result<LoadedCredentials<'a>, ProfileError> {
        Ok(match self {
            Self::Psk(psk) => LoadedCredentials::Psk(psk),
            Self::EapMschapv2 { username, password } => {
                LoadedCredentials::EapMschapv2 { username, password }
            }
            Self::Certificate {
                certificate,
                private_key,
            } => LoadedCredentials::Certificate {
                certificate: FileData::read("auth.certificate", base_dir, certificate)?,
                private_key: FileData::read("auth.private_key", base_dir, private_key)?,
            },
        })
    }
}

/// The method's credentials with their files read.
enum LoadedCredentials<'a> {
    Psk(Secret),
    EapMschapv2 {
        username: &'a str,
        password: Secret,
    },
    Certificate {
        certificate: FileData,
        private_key: FileData,
    },
}

impl LoadedCredentials<'_> {
    /// Parses what was read; `local_id` is auth.local_id when the profile gives one.
    fn into_auth(
        self,
        local_id: Option<Identity>,
    ) -> Result<(ClientAuth, Option<Identity>), ProfileError> {
        match self {
            Self::Psk(psk) => Ok((ClientAuth::Psk(psk), local_id)),
            Self::EapMschapv2 { username, password } => {
                let local_id = match local_id {
                    Some(id) => id,
                    None => parse_identity("auth.username", username)?,
                };
                Ok((
                    ClientAuth::EapMschapv2 {
                        username: username.to_string(),
                        password,
                    },
                    Some(local_id),
                ))
            }
            Self::Certificate {
                certificate,
                private_key,
            } => {
                let chain = certificate.certificates()?;
                let key =
                    PrivateKey::from_pem(&private_key.data).map_err(|e| private_key.problem(e))?;
                if !chain.first().is_some_and(|c| key.matches(c)) {
                    return Err(private_key
                        .problem("does not belong to the certificate in auth.certificate"));
                }
                // Without auth.local_id the session uses the certificate's subject DN.
                Ok((ClientAuth::Certificate { chain, key }, local_id))
            }
        }
    }
}

/// `[auth] ppk` (text) or `ppk_hex` (hex digits), `ppk_id`, `ppk_required` (default true: a
/// PPK is there to be used).
fn ppk(auth: &RawAuth) -> Result<Option<roam_proto::ike::ppk::Ppk>, ProfileError> {
    let key = match (&auth.ppk, &auth.ppk_hex) {
        (Some(_), Some(_)) => {
            return Err(ProfileError::invalid(
                "auth.ppk_hex",
                "give the key once: auth.ppk (text) or auth.ppk_hex (hex)",
            ))
        }
        (Some(text), None) => Some(Zeroizing::new(text.as_bytes().to_vec())),
        (None, Some(digits)) => Some(Zeroizing::new(hex::decode(digits.trim()).map_err(
            // The error names a position, never the key.
            |_| {
                ProfileError::invalid(
                    "auth.ppk_hex",
                    "not hex (an even number of digits 0-9, a-f)",
                )
            },
        )?)),
        (None, None) => None,
    };
    ppk_settings(
        key.as_deref().map(Vec::as_slice),
        auth.ppk_id.as_deref(),
        auth.ppk_required,
    )
}

/// A post-quantum preshared key (RFC 8784) from its settings, checked as the profile's
/// `[auth] ppk`, `ppk_id` and `ppk_required` are (the FFI's records use the same rules).
pub fn ppk_settings(
    key: Option<&[u8]>,
    id: Option<&str>,
    required: Option<bool>,
) -> Result<Option<roam_proto::ike::ppk::Ppk>, ProfileError> {
    let Some(key) = key else {
        for (k, set) in [
            ("auth.ppk_id", id.is_some()),
            ("auth.ppk_required", required.is_some()),
        ] {
            if set {
                return Err(ProfileError::invalid(k, "only with auth.ppk"));
            }
        }
        return Ok(None);
    };
    if key.len() < 16 {
        return Err(ProfileError::invalid(
            "auth.ppk",
            "too short (at least 16 bytes; RFC 8784 wants 256 bits of entropy)",
        ));
    }
    let id = match id {
        Some(id) if !id.is_empty() && id.len() < roam_proto::ike::ppk::MAX_PPK_ID => id,
        Some(_) => return Err(ProfileError::invalid("auth.ppk_id", "empty or too long")),
        None => {
            return Err(ProfileError::missing(
                "auth.ppk_id",
                Some("required with auth.ppk".into()),
            ))
        }
    };
    Ok(Some(roam_proto::ike::ppk::Ppk {
        id: id.as_bytes().to_vec(),
        key: Secret::from_slice(key),
        required: required.unwrap_or(true),
    }))
}

type Proposals = (Vec<String>, Vec<String>, Vec<String>);

fn crypto(raw: Option<RawCrypto>) -> Result<Proposals, ProfileError> {
    let (ike, esp, allow_weak) = match raw {
        Some(c) => (c.ike, c.esp, c.allow_weak.unwrap_or_default()),
        None => (None, None, Vec::new()),
    };
    let ike = proposals("crypto.ike", ike, proposal::default_ike, |s| {
        ProposalSpec::parse_ike(s, &allow_weak)
    })?;
    let esp = proposals("crypto.esp", esp, proposal::default_esp, |s| {
        ProposalSpec::parse_esp(s, &allow_weak)
    })?;
    Ok((ike, esp, allow_weak))
}

fn proposals(
    key: &str,
    given: Option<Vec<String>>,
    default: fn() -> Vec<String>,
    parse: impl Fn(&str) -> Result<ProposalSpec, proposal::ProposalError>,
) -> Result<Vec<String>, ProfileError> {
    let Some(list) = given else {
        return Ok(default());
    };
    if list.is_empty() {
        return Err(ProfileError::invalid(
            key,
            "empty (name at least one proposal, or leave the key out for the defaults)",
        ));
    }
    for (i, p) in list.iter().enumerate() {
        parse(p).map_err(|e| ProfileError::invalid(&format!("{key}[{i}]"), e.to_string()))?;
    }
    Ok(list)
}

struct Tunnel {
    mobike: bool,
    dpd: Option<Duration>,
    keepalive: Duration,
    mtu: u16,
    reconnect: bool,
    retransmit_initial: Option<Duration>,
    retransmit_tries: Option<u32>,
    dpd_tries: Option<u32>,
    transport: TransportPolicy,
    /// `tcp_tls*`, checked once the server's name and CA are known.
    tls: RawTls,
}

struct RawTls {
    enabled: Option<bool>,
    server_name: Option<String>,
    verify: Option<String>,
}

/// `[tunnel] transport`, `tcp_port` and `tcp_fallback_ms` (the FFI's records use the same
/// rules).
pub fn transport_policy(
    mode: Option<&str>,
    tcp_port: Option<u16>,
    fallback_ms: Option<u64>,
) -> Result<TransportPolicy, ProfileError> {
    let mode = match mode {
        None => TransportMode::Auto,
        Some(m) => TransportMode::parse(m).ok_or_else(|| {
            ProfileError::invalid("tunnel.transport", "must be \"auto\", \"udp\" or \"tcp\"")
        })?,
    };
    let tcp_port = tcp_port.unwrap_or(crate::tcp::DEFAULT_TCP_PORT);
    if tcp_port == 0 {
        return Err(ProfileError::invalid(
            "tunnel.tcp_port",
            "must be 1 to 65535",
        ));
    }
    let fallback = match fallback_ms {
        None => crate::tcp::DEFAULT_FALLBACK,
        Some(ms) if (100..=60_000).contains(&ms) => Duration::from_millis(ms),
        Some(_) => {
            return Err(ProfileError::invalid(
                "tunnel.tcp_fallback_ms",
                "must be 100 to 60000",
            ))
        }
    };
    Ok(TransportPolicy {
        mode,
        tcp_port,
        fallback,
        tls: None,
        udp_retry: Some(crate::tcp::DEFAULT_UDP_RETRY),
    })
}

/// `[tunnel] udp_retry_seconds`: how often `auto` on TCP tries UDP again (default 120; 0:
/// never; else 5 to 86400) (the FFI's records use the same rules).
pub fn udp_retry(seconds: Option<u64>) -> Result<Option<Duration>, ProfileError> {
    match seconds {
        None => Ok(Some(crate::tcp::DEFAULT_UDP_RETRY)),
        Some(0) => Ok(None),
        Some(s) if (5..=86_400).contains(&s) => Ok(Some(Duration::from_secs(s))),
        Some(_) => Err(ProfileError::invalid(
            "tunnel.udp_retry_seconds",
            "must be 0 (never) or 5 to 86400",
        )),
    }
}

/// `[tunnel] tcp_tls`, `tcp_tls_server_name` and `tcp_tls_verify` for the server `host` (its
/// name or IP address) whose CA certificates are `ca` (the FFI's records use the same rules).
/// None when TLS is off.
pub fn tls_policy(
    enabled: bool,
    server_name: Option<&str>,
    verify: Option<&str>,
    host: &str,
    ca: &[Certificate],
) -> Result<Option<TlsPolicy>, ProfileError> {
    if !enabled {
        for (key, set) in [
            ("tunnel.tcp_tls_server_name", server_name.is_some()),
            ("tunnel.tcp_tls_verify", verify.is_some()),
        ] {
            if set {
                return Err(ProfileError::invalid(key, "only used with tcp_tls = true"));
            }
        }
        return Ok(None);
    }
    if !crate::tls::SUPPORTED {
        return Err(ProfileError::invalid(
            "tunnel.tcp_tls",
            "this build has no TLS support (roam-runtime's `tls` feature)",
        ));
    }
    let verify = match verify {
        None | Some("none") => TlsVerify::None,
        Some("ca") if ca.is_empty() => {
            return Err(ProfileError::missing(
                "server.ca",
                Some("required by tunnel.tcp_tls_verify = \"ca\"".into()),
            ))
        }
        Some("ca") => TlsVerify::Ca(ca.iter().map(|c| c.der().to_vec()).collect()),
        Some(_) => {
            return Err(ProfileError::invalid(
                "tunnel.tcp_tls_verify",
                "must be \"none\" or \"ca\"",
            ))
        }
    };
    let server_name = match server_name.map(str::trim) {
        Some(n) if n.parse::<IpAddr>().is_ok() || is_host_name(n) => Some(n.to_string()),
        Some(n) => {
            return Err(ProfileError::invalid(
                "tunnel.tcp_tls_server_name",
                format!("'{n}' is neither a host name nor an IP address"),
            ))
        }
        None => (host.parse::<IpAddr>().is_err()).then(|| host.to_string()),
    };
    let policy = TlsPolicy {
        server_name,
        verify,
    };
    policy.check().map_err(|e| {
        let key = match e {
            crate::tls::TlsError::BadName(_) => "tunnel.tcp_tls_server_name",
            crate::tls::TlsError::BadCa(_) => "server.ca",
            _ => "tunnel.tcp_tls",
        };
        ProfileError::invalid(key, e.to_string())
    })?;
    Ok(Some(policy))
}

fn tunnel(raw: Option<RawTunnel>) -> Result<Tunnel, ProfileError> {
    let raw = raw.unwrap_or(RawTunnel {
        mobike: None,
        dpd_seconds: None,
        keepalive_seconds: None,
        mtu: None,
        reconnect: None,
        retransmit_initial_ms: None,
        retransmit_tries: None,
        dpd_tries: None,
        transport: None,
        tcp_port: None,
        tcp_fallback_ms: None,
        tcp_tls: None,
        tcp_tls_server_name: None,
        tcp_tls_verify: None,
        udp_retry_seconds: None,
    });
    let mut transport =
        transport_policy(raw.transport.as_deref(), raw.tcp_port, raw.tcp_fallback_ms)?;
    transport.udp_retry = udp_retry(raw.udp_retry_seconds)?;
    let dpd = raw.dpd_seconds.unwrap_or(DEFAULT_DPD_SECONDS);
    if dpd > 86_400 {
        return Err(ProfileError::invalid(
            "tunnel.dpd_seconds",
            "must be 0 (off) to 86400",
        ));
    }
    let keepalive = raw.keepalive_seconds.unwrap_or(DEFAULT_KEEPALIVE_SECONDS);
    if !(1..=3_600).contains(&keepalive) {
        return Err(ProfileError::invalid(
            "tunnel.keepalive_seconds",
            "must be 1 to 3600",
        ));
    }
    let mtu = raw.mtu.unwrap_or(DEFAULT_MTU);
    if !(576..=9_000).contains(&mtu) {
        return Err(ProfileError::invalid("tunnel.mtu", "must be 576 to 9000"));
    }
    let tries = |v: Option<u32>, key: &str| match v {
        Some(n) if !(1..=20).contains(&n) => Err(ProfileError::invalid(key, "must be 1 to 20")),
        v => Ok(v),
    };
    let retransmit_tries = tries(raw.retransmit_tries, "tunnel.retransmit_tries")?;
    let dpd_tries = tries(raw.dpd_tries, "tunnel.dpd_tries")?;
    let retransmit_initial = match raw.retransmit_initial_ms {
        Some(ms) if !(100..=60_000).contains(&ms) => {
            return Err(ProfileError::invalid(
                "tunnel.retransmit_initial_ms",
                "must be 100 to 60000",
            ))
        }
        v => v.map(Duration::from_millis),
    };
    Ok(Tunnel {
        transport,
        tls: RawTls {
            enabled: raw.tcp_tls,
            server_name: raw.tcp_tls_server_name,
            verify: raw.tcp_tls_verify,
        },
        retransmit_initial,
        retransmit_tries,
        dpd_tries,
        mobike: raw.mobike.unwrap_or(true),
        dpd: (dpd > 0).then(|| Duration::from_secs(dpd)),
        keepalive: Duration::from_secs(keepalive),
        mtu,
        reconnect: raw.reconnect.unwrap_or(true),
    })
}

/// Rekey times: strongSwan-like defaults (IKE 4 h, CHILD 1 h), each at least 10 s.
fn lifetimes(raw: Option<RawLifetimes>) -> Result<Lifetimes, ProfileError> {
    let mut l = Lifetimes::default();
    let Some(raw) = raw else {
        return Ok(l);
    };
    let seconds = |v: Option<u64>, key: &str, default: Duration| match v {
        None => Ok(default),
        Some(s) if (10..=7 * 86_400).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(ProfileError::invalid(key, "must be 10 to 604800")),
    };
    l.ike_rekey = seconds(
        raw.ike_rekey_seconds,
        "lifetimes.ike_rekey_seconds",
        l.ike_rekey,
    )?;
    l.child_rekey = seconds(
        raw.child_rekey_seconds,
        "lifetimes.child_rekey_seconds",
        l.child_rekey,
    )?;
    if let Some(j) = raw.jitter_seconds {
        if j > 86_400 {
            return Err(ProfileError::invalid(
                "lifetimes.jitter_seconds",
                "must be 0 to 86400",
            ));
        }
        l.jitter = Duration::from_secs(j);
    }
    let nonzero = |v: Option<u64>, key: &str| match v {
        Some(0) => Err(ProfileError::invalid(key, "must be at least 1 (or absent)")),
        v => Ok(v),
    };
    l.child_rekey_bytes = nonzero(raw.child_rekey_bytes, "lifetimes.child_rekey_bytes")?;
    l.child_rekey_packets = nonzero(raw.child_rekey_packets, "lifetimes.child_rekey_packets")?;
    Ok(l)
}

// ---- files ---------------------------------------------------------------------------------

pub(crate) fn resolve(base_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// Reads a file of at most `MAX_FILE_SIZE` bytes into a buffer zeroized on drop.
pub(crate) fn read_limited(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 1 MiB",
        ));
    }
    Ok(buf)
}

/// A file a profile key names, read (zeroized on drop: it may hold a private key).
struct FileData {
    key: &'static str,
    path: PathBuf,
    data: Zeroizing<Vec<u8>>,
}

impl FileData {
    fn read(key: &'static str, base_dir: &Path, name: &str) -> Result<Self, ProfileError> {
        let path = resolve(base_dir, name);
        match read_limited(&path) {
            Ok(data) => Ok(Self { key, path, data }),
            Err(source) => Err(ProfileError::File {
                key: key.to_string(),
                path,
                source,
            }),
        }
    }

    fn problem(&self, problem: impl std::fmt::Display) -> ProfileError {
        ProfileError::invalid(self.key, format!("{}: {problem}", self.path.display()))
    }

    /// Every certificate in the file (PEM or DER); at least one.
    fn certificates(&self) -> Result<Vec<Certificate>, ProfileError> {
        let certs = Certificate::parse_pem_or_der(&self.data).map_err(|e| self.problem(e))?;
        if certs.is_empty() {
            return Err(self.problem("no certificate in it"));
        }
        Ok(certs)
    }
}

/// The wall-clock time for certificate validity checks. The runtime, not the sans-IO core,
/// reads the clock.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_unix_time() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests;
