//! The imported profile in Roam's one profile schema (README "The profile"), with the
//! certificates and key inline as PEM; and its rendering as TOML plus the files it names.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use zeroize::Zeroizing;

use super::report::Findings;

/// A profile as the import made it. Optional fields left `None` take the loader's defaults;
/// a credential left `None` is reported as missing in `findings`.
pub struct ImportedProfile {
    /// The profile's display name in the source file.
    pub name: Option<String>,
    pub server: ImportedServer,
    pub auth: ImportedAuth,
    /// IKE and ESP proposals in strongSwan syntax; empty means Roam's defaults.
    pub ike: Vec<String>,
    pub esp: Vec<String>,
    pub mobike: Option<bool>,
    pub dpd_seconds: Option<u64>,
    pub keepalive_seconds: Option<u64>,
    pub mtu: Option<u16>,
    pub ike_rekey_seconds: Option<u64>,
    pub child_rekey_seconds: Option<u64>,
    /// A post-quantum preshared key (RFC 8784), with any method.
    pub ppk: Option<ImportedPpk>,
    /// Whether the IKE proposals may also be offered without their post-quantum key exchanges.
    pub pq_fallback: Option<bool>,
    pub findings: Findings,
}

/// `[auth] ppk_hex`, `ppk_id`, `ppk_required`.
pub struct ImportedPpk {
    pub id: String,
    pub key: Zeroizing<Vec<u8>>,
    /// `None` leaves the profile's default (required).
    pub required: Option<bool>,
}

impl fmt::Debug for ImportedPpk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedPpk")
            .field("id", &self.id)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("required", &self.required)
            .finish()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportedServer {
    pub address: String,
    pub port: Option<u16>,
    pub id: Option<String>,
    /// Trust anchors for the server's certificate, PEM.
    pub ca_pem: Option<String>,
}

/// `[auth]`, with whatever the file carried.
pub enum ImportedAuth {
    Psk {
        local_id: Option<String>,
        psk: Option<Zeroizing<String>>,
    },
    EapMschapv2 {
        username: Option<String>,
        password: Option<Zeroizing<String>>,
        local_id: Option<String>,
    },
    Certificate {
        /// Ours first, then intermediates, PEM.
        certificate_pem: Option<String>,
        /// PKCS#8 PEM.
        private_key_pem: Option<Zeroizing<String>>,
        local_id: Option<String>,
    },
}

impl ImportedAuth {
    /// The profile's `auth.method` value.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Psk { .. } => "psk",
            Self::EapMschapv2 { .. } => "eap-mschapv2",
            Self::Certificate { .. } => "certificate",
        }
    }
}

impl fmt::Debug for ImportedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: bool| if o { "<set>" } else { "<none>" };
        match self {
            Self::Psk { local_id, psk } => f
                .debug_struct("Psk")
                .field("local_id", local_id)
                .field("psk", &set(psk.is_some()))
                .finish(),
            Self::EapMschapv2 {
                username,
                password,
                local_id,
            } => f
                .debug_struct("EapMschapv2")
                .field("username", username)
                .field("password", &set(password.is_some()))
                .field("local_id", local_id)
                .finish(),
            Self::Certificate {
                certificate_pem,
                private_key_pem,
                local_id,
            } => f
                .debug_struct("Certificate")
                .field("certificate_pem", &set(certificate_pem.is_some()))
                .field("private_key_pem", &set(private_key_pem.is_some()))
                .field("local_id", local_id)
                .finish(),
        }
    }
}

impl fmt::Debug for ImportedProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedProfile")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("auth", &self.auth)
            .field("ike", &self.ike)
            .field("esp", &self.esp)
            .field("mobike", &self.mobike)
            .field("dpd_seconds", &self.dpd_seconds)
            .field("keepalive_seconds", &self.keepalive_seconds)
            .field("mtu", &self.mtu)
            .field("ike_rekey_seconds", &self.ike_rekey_seconds)
            .field("child_rekey_seconds", &self.child_rekey_seconds)
            .field("ppk", &self.ppk)
            .field("pq_fallback", &self.pq_fallback)
            .field("findings", &self.findings)
            .finish()
    }
}

/// A file the TOML names: a certificate bundle or a private key, PEM.
pub struct ExtractedFile {
    /// The file name (no directory): `<stem>-ca.pem`, `<stem>-cert.pem`, `<stem>-key.pem`.
    pub name: String,
    pub contents: Zeroizing<Vec<u8>>,
    /// Holds a private key.
    pub secret: bool,
}

impl fmt::Debug for ExtractedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractedFile")
            .field("name", &self.name)
            .field("bytes", &self.contents.len())
            .field("secret", &self.secret)
            .finish()
    }
}

/// The profile as TOML text (it may hold a PSK or password: zeroized on drop) and the files
/// it names.
pub struct Rendered {
    pub toml: Zeroizing<String>,
    pub files: Vec<ExtractedFile>,
}

// The TOML shape: the loader's keys, in its order; `None` is left out.
#[derive(Serialize)]
struct TomlProfile<'a> {
    server: TomlServer<'a>,
    auth: TomlAuth<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crypto: Option<TomlCrypto<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<TomlTunnel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetimes: Option<TomlLifetimes>,
}

#[derive(Serialize)]
struct TomlServer<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<String>,
}

#[derive(Serialize)]
struct TomlAuth<'a> {
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    psk: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ppk_hex: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ppk_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ppk_required: Option<bool>,
}

#[derive(Serialize)]
struct TomlCrypto<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ike: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    esp: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pq_fallback: Option<bool>,
}

#[derive(Serialize)]
struct TomlTunnel {
    #[serde(skip_serializing_if = "Option::is_none")]
    mobike: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpd_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keepalive_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u16>,
}

#[derive(Serialize)]
struct TomlLifetimes {
    #[serde(skip_serializing_if = "Option::is_none")]
    ike_rekey_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_rekey_seconds: Option<u64>,
}

impl ImportedProfile {
    /// Renders the profile as TOML in the schema `roam connect --profile` reads. Certificates
    /// and the key become files named `<stem>-ca.pem`, `<stem>-cert.pem` and `<stem>-key.pem`,
    /// referenced in the TOML as `dir/<name>` (pass the directory the files will be written
    /// to; an absolute one makes the profile work from anywhere). The findings head the text
    /// as comments.
    pub fn render(&self, stem: &str, dir: &Path) -> Rendered {
        let mut files = Vec::new();
        let mut file = |suffix: &str, pem: &[u8], secret: bool| {
            let name = format!("{stem}-{suffix}");
            let path = dir.join(&name).to_string_lossy().into_owned();
            files.push(ExtractedFile {
                name,
                contents: Zeroizing::new(pem.to_vec()),
                secret,
            });
            path
        };
        let ca = self
            .server
            .ca_pem
            .as_ref()
            .map(|pem| file("ca.pem", pem.as_bytes(), false));
        let ppk_hex = self
            .ppk
            .as_ref()
            .map(|p| Zeroizing::new(hex::encode(&*p.key)));
        let auth = match &self.auth {
            ImportedAuth::Psk { local_id, psk } => TomlAuth {
                method: self.auth.method(),
                local_id: local_id.as_deref(),
                psk: psk.as_ref().map(|s| s.as_str()),
                username: None,
                password: None,
                certificate: None,
                private_key: None,
                ppk_hex: None,
                ppk_id: None,
                ppk_required: None,
            },
            ImportedAuth::EapMschapv2 {
                username,
                password,
                local_id,
            } => TomlAuth {
                method: self.auth.method(),
                local_id: local_id.as_deref(),
                psk: None,
                username: username.as_deref(),
                password: password.as_ref().map(|s| s.as_str()),
                certificate: None,
                private_key: None,
                ppk_hex: None,
                ppk_id: None,
                ppk_required: None,
            },
            ImportedAuth::Certificate {
                certificate_pem,
                private_key_pem,
                local_id,
            } => TomlAuth {
                method: self.auth.method(),
                local_id: local_id.as_deref(),
                psk: None,
                username: None,
                password: None,
                certificate: certificate_pem
                    .as_ref()
                    .map(|pem| file("cert.pem", pem.as_bytes(), false)),
                private_key: private_key_pem
                    .as_ref()
                    .map(|pem| file("key.pem", pem.as_bytes(), true)),
                ppk_hex: None,
                ppk_id: None,
                ppk_required: None,
            },
        };
        let auth = TomlAuth {
            ppk_hex: ppk_hex.as_ref().map(|h| h.as_str()),
            ppk_id: self.ppk.as_ref().map(|p| p.id.as_str()),
            ppk_required: self.ppk.as_ref().and_then(|p| p.required),
            ..auth
        };
        let crypto = (!self.ike.is_empty() || !self.esp.is_empty() || self.pq_fallback.is_some())
            .then_some(TomlCrypto {
                ike: &self.ike,
                esp: &self.esp,
                pq_fallback: self.pq_fallback,
            });
        let tunnel = TomlTunnel {
            mobike: self.mobike,
            dpd_seconds: self.dpd_seconds,
            keepalive_seconds: self.keepalive_seconds,
            mtu: self.mtu,
        };
        let tunnel = (tunnel.mobike.is_some()
            || tunnel.dpd_seconds.is_some()
            || tunnel.keepalive_seconds.is_some()
            || tunnel.mtu.is_some())
        .then_some(tunnel);
        let lifetimes = (self.ike_rekey_seconds.is_some() || self.child_rekey_seconds.is_some())
            .then_some(TomlLifetimes {
                ike_rekey_seconds: self.ike_rekey_seconds,
                child_rekey_seconds: self.child_rekey_seconds,
            });
        let doc = TomlProfile {
            server: TomlServer {
                address: &self.server.address,
                port: self.server.port,
                id: self.server.id.as_deref(),
                ca,
            },
            auth,
            crypto,
            tunnel,
            lifetimes,
        };
        let mut text = Zeroizing::new(String::new());
        if let Some(name) = &self.name {
            text.push_str(&format!("# Imported profile \"{}\"\n", name.escape_debug()));
        }
        for f in self.findings.iter() {
            text.push_str(&format!("# {}\n", f.to_string().replace('\n', " ")));
        }
        if !text.is_empty() {
            text.push('\n');
        }
        // Serializing plain strings, numbers and tables cannot fail.
        let body = Zeroizing::new(toml::to_string(&doc).unwrap_or_default());
        text.push_str(&body);
        Rendered { toml: text, files }
    }
}
