//! Profile import: a strongSwan Android `.sswan` file (JSON) or an Apple `.mobileconfig`
//! (XML or binary plist, optionally CMS-signed) turned into Roam's one profile schema, with
//! embedded PKCS#12 identities and CA certificates extracted as PEM.
//!
//! [`import`] returns the profile and its findings: every setting that was not taken
//! unchanged is reported by name (unsupported, lossy, or missing), never dropped in silence.
//! [`ImportedProfile::render`] prints it as the TOML `roam connect --profile` reads, plus the
//! PEM files it names. Input is untrusted: a size cap, typed errors, no panics, and no secret
//! (PSK, password, key) in an error or a finding.

mod mobileconfig;
mod model;
pub mod pkcs12;
mod plist_depth;
mod report;
mod settings;
mod sswan;

use roam_proto::crypto::cert::Certificate;
use roam_proto::crypto::proposal::{ProposalError, ProposalSpec};
use roam_proto::identity::Identity;
use zeroize::Zeroizing;

pub use model::{
    ExtractedFile, ImportedAuth, ImportedPpk, ImportedProfile, ImportedServer, Rendered,
};
pub use pkcs12::Pkcs12Error;
pub use report::{Finding, FindingKind, Findings};

/// Files larger than this are refused (profiles with embedded certificates are a few KiB).
pub const MAX_IMPORT_SIZE: usize = 1024 * 1024;

/// The source format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// strongSwan's Android app profile (JSON).
    Sswan,
    /// Apple configuration profile (plist).
    Mobileconfig,
}

impl Kind {
    /// The format a file name's extension names (`.sswan`, `.mobileconfig`, `.plist`), else
    /// the one the content looks like (`{` for JSON; an XML, binary-plist or DER start).
    pub fn detect(file_name: Option<&str>, bytes: &[u8]) -> Option<Self> {
        if let Some(name) = file_name {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".sswan") || lower.ends_with(".json") {
                return Some(Self::Sswan);
            }
            if lower.ends_with(".mobileconfig") || lower.ends_with(".plist") {
                return Some(Self::Mobileconfig);
            }
        }
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
        let rest = body.get(start..)?;
        if rest.starts_with(b"{") {
            Some(Self::Sswan)
        } else if rest.starts_with(b"<") || rest.starts_with(b"bplist") || rest.starts_with(&[0x30])
        {
            Some(Self::Mobileconfig)
        } else {
            None
        }
    }

    /// `sswan` / `mobileconfig` (what the FFI and the CLI accept as a kind name).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim_start_matches('.').to_ascii_lowercase().as_str() {
            "sswan" => Some(Self::Sswan),
            "mobileconfig" | "plist" => Some(Self::Mobileconfig),
            _ => None,
        }
    }
}

/// What the user supplies that a file does not carry.
#[derive(Default)]
pub struct ImportOptions {
    /// The password of an embedded PKCS#12 (a `.sswan` never carries it; an Apple payload
    /// may, in its `Password` key, which this overrides).
    pub p12_password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("p12_password", &self.p12_password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Why nothing usable came out of a file. `Display` names the setting when one is to blame.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("larger than {} KiB", MAX_IMPORT_SIZE / 1024)]
    TooLarge,
    #[error("neither a .sswan (JSON) nor a .mobileconfig (plist) file")]
    UnknownFormat,
    /// The file is not well-formed in its format (no input is quoted).
    #[error("{0}")]
    Syntax(String),
    #[error("{setting}: missing")]
    Missing { setting: String },
    #[error("{setting}: {problem}")]
    Invalid { setting: String, problem: String },
    #[error("{setting}: {value} is not supported yet{}", why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Unsupported {
        setting: String,
        value: String,
        why: Option<String>,
    },
    #[error("no com.apple.vpn.managed payload with VPNType IKEv2 in it")]
    NoIkev2Payload,
    #[error("{setting}: {source}")]
    Pkcs12 {
        setting: String,
        source: Pkcs12Error,
    },
}

impl ImportError {
    fn invalid(setting: &str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            setting: setting.to_string(),
            problem: problem.into(),
        }
    }
    fn missing(setting: &str) -> Self {
        Self::Missing {
            setting: setting.to_string(),
        }
    }
}

/// Imports `bytes` as `kind` (see [`Kind::detect`]).
pub fn import(
    bytes: &[u8],
    kind: Kind,
    options: &ImportOptions,
) -> Result<ImportedProfile, ImportError> {
    if bytes.len() > MAX_IMPORT_SIZE {
        return Err(ImportError::TooLarge);
    }
    match kind {
        Kind::Sswan => sswan::import(bytes, options),
        Kind::Mobileconfig => mobileconfig::import(bytes, options),
    }
}

// ---- helpers shared by the formats ---------------------------------------------------------

fn pem(label: &str, der: &[u8]) -> String {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der).unwrap_or_default()
}

/// Certificates given as DER or PEM, checked and re-encoded as one PEM bundle.
fn certificates_pem(data: &[u8]) -> Result<String, String> {
    let certs = Certificate::parse_pem_or_der(data).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs.iter().map(|c| pem("CERTIFICATE", c.der())).collect())
}

/// An identity string Roam can parse, else a lossy finding and `None`.
fn checked_identity(value: &str, setting: &str, findings: &mut Findings) -> Option<String> {
    match Identity::parse(value) {
        Ok(_) => Some(value.to_string()),
        Err(e) => {
            findings.lossy(
                setting,
                format!(
                    "\"{}\" is not an identity Roam can use ({e}); left out",
                    value.escape_debug()
                ),
            );
            None
        }
    }
}

/// Checks a proposal in strongSwan syntax with no weak algorithms allowed.
fn check_proposal(p: &str, esp: bool) -> Result<(), ProposalError> {
    if esp {
        ProposalSpec::parse_esp(p, &[]).map(|_| ())
    } else {
        ProposalSpec::parse_ike(p, &[]).map(|_| ())
    }
}

/// The server address and port, checked the way the profile loader checks them.
fn checked_server(host: &str, port: u16, setting: &str) -> Result<(), ImportError> {
    crate::profile::ServerAddress::parse(host, port)
        .map(|_| ())
        .map_err(|e| ImportError::invalid(setting, e.to_string()))
}

#[cfg(test)]
mod tests;
