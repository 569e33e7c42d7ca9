//! strongSwan Android's `.sswan` profile (JSON, documented as "VPN Profile Import for the
//! Android VPN Client"): `type`, `remote.*`, `local.*`, proposals, tunnel settings.
//!
//! The server always authenticates with a certificate; the client by EAP (`ikev2-eap`,
//! `ikev2-byod-eap`) or a certificate from the embedded PKCS#12 (`ikev2-cert`). A `.sswan`
//! never carries the EAP password nor the PKCS#12 password: the first is reported missing, the
//! second comes from [`ImportOptions::p12_password`].

use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use super::model::{ImportedAuth, ImportedProfile, ImportedServer};
use super::report::Findings;
use super::settings::{self, Settings};
use super::{
    certificates_pem, check_proposal, checked_identity, checked_server, pkcs12, ImportError,
    ImportOptions,
};

/// Why a setting without an equivalent is left out, by name prefix.
const REASONS: &[(&str, &str)] = &[
    (
        "dns-servers",
        "Roam uses the DNS servers the server assigns",
    ),
    (
        "split-tunneling",
        "Roam tunnels what the negotiated traffic selectors cover",
    ),
    ("proxy", "Roam has no proxy setting"),
    (
        "included-apps",
        "per-app routing is up to the app embedding Roam",
    ),
    (
        "excluded-apps",
        "per-app routing is up to the app embedding Roam",
    ),
    (
        "selected-apps",
        "per-app routing is up to the app embedding Roam",
    ),
    ("remote.revocation", "Roam does not check CRLs or OCSP"),
];

pub(super) fn import(
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<ImportedProfile, ImportError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        // Only the category and position: serde_json's message may quote a value.
        let what = match e.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "unexpected JSON",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        ImportError::Syntax(format!(
            "not a .sswan file: {what} at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| ImportError::Syntax("not a .sswan file: not a JSON object".into()))?;
    let mut s = settings::from_json(object);
    let mut f = Findings::default();

    let name = s.string("name", &mut f).map(|n| n.to_string());
    // The UUID only identifies the profile inside the strongSwan app.
    s.take("uuid");
    let kind = s
        .string("type", &mut f)
        .ok_or_else(|| ImportError::missing("type"))?;

    let address = s
        .string("remote.addr", &mut f)
        .ok_or_else(|| ImportError::missing("remote.addr"))?
        .trim()
        .to_string();
    let port = match s.integer("remote.port", &mut f) {
        None => None,
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(ImportError::invalid("remote.port", "must be 1 to 65535")),
        },
    };
    checked_server(
        &address,
        port.unwrap_or(crate::profile::DEFAULT_PORT),
        "remote.addr",
    )?;
    // Without remote.id the app checks the server's certificate against remote.addr.
    let server_id = match s.string("remote.id", &mut f) {
        Some(id) => checked_identity(&id, "remote.id", &mut f),
        None => checked_identity(&address, "remote.addr", &mut f),
    };
    let mut ca_pem = match s.string("remote.cert", &mut f) {
        Some(b64) => {
            Some(decode_certificate(&b64).map_err(|p| ImportError::invalid("remote.cert", p))?)
        }
        None => None,
    };
    if s.boolean("remote.certreq", &mut f) == Some(false) {
        f.unsupported(
            "remote.certreq",
            "false (Roam always sends certificate requests)",
        );
    }

    let local_id = s.string("local.id", &mut f).map(|v| v.to_string());
    let eap_id = s.string("local.eap_id", &mut f).map(|v| v.to_string());
    let p12 = s.string("local.p12", &mut f);
    if s.boolean("local.rsa-pss", &mut f) == Some(true) {
        f.lossy(
            "local.rsa-pss",
            "true: Roam signs with RSA PKCS#1 v1.5 through RFC 7427",
        );
    }

    let auth = match kind.as_str() {
        "ikev2-eap" | "ikev2-byod-eap" => {
            if kind.as_str() == "ikev2-byod-eap" {
                f.lossy(
                    "type",
                    "\"ikev2-byod-eap\": imported as plain EAP-MSCHAPv2, the BYOD (EAP-TNC) \
                     assessment is not supported",
                );
            }
            if let Some(_p12) = &p12 {
                f.unsupported("local.p12", "a client certificate is not used with EAP");
            }
            // The EAP identity is local.eap_id, else local.id (the app's own rule).
            let (username, local_id) = match eap_id {
                Some(e) => (Some(e), local_id),
                None => (local_id, None),
            };
            let username = username.filter(|u| !u.is_empty());
            if username.is_none() {
                f.missing(
                    "auth.username",
                    "the file names no EAP identity (local.eap_id); add the user name",
                );
            }
            f.missing(
                "auth.password",
                "a .sswan never carries the password; add it to the profile",
            );
            let local_id = local_id.and_then(|id| checked_identity(&id, "local.id", &mut f));
            ImportedAuth::EapMschapv2 {
                username,
                password: None,
                local_id,
            }
        }
        "ikev2-cert" => {
            if eap_id.is_some() {
                f.unsupported("local.eap_id", "not used with certificate authentication");
            }
            let local_id = local_id.and_then(|id| checked_identity(&id, "local.id", &mut f));
            let (certificate_pem, private_key_pem) = match (&p12, &options.p12_password) {
                (None, _) => {
                    f.missing(
                        "auth.certificate",
                        "the file has no local.p12 (the app would use an installed \
                         certificate); add the certificate and auth.private_key",
                    );
                    (None, None)
                }
                (Some(_), None) => {
                    f.missing(
                        "auth.certificate",
                        "local.p12 is encrypted and no PKCS#12 password was given",
                    );
                    (None, None)
                }
                (Some(b64), Some(password)) => {
                    let der =
                        decode_base64(b64).map_err(|p| ImportError::invalid("local.p12", p))?;
                    let id =
                        pkcs12::decrypt(&der, password).map_err(|source| ImportError::Pkcs12 {
                            setting: "local.p12".into(),
                            source,
                        })?;
                    if ca_pem.is_none() {
                        if let Some(ca) = id.ca_pem {
                            f.lossy(
                                "local.p12",
                                "its CA certificate is taken as server.ca (the app would \
                                 also trust the system's CAs)",
                            );
                            ca_pem = Some(ca);
                        }
                    }
                    (Some(id.chain_pem), Some(id.key_pem))
                }
            };
            ImportedAuth::Certificate {
                certificate_pem,
                private_key_pem,
                local_id,
            }
        }
        "ikev2-cert-eap" => {
            return Err(ImportError::Unsupported {
                setting: "type".into(),
                value: "\"ikev2-cert-eap\"".into(),
                why: Some("certificate and EAP authentication in sequence, RFC 4739".into()),
            })
        }
        "ikev2-eap-tls" => {
            return Err(ImportError::Unsupported {
                setting: "type".into(),
                value: "\"ikev2-eap-tls\"".into(),
                why: Some("EAP-TLS".into()),
            })
        }
        other => {
            return Err(ImportError::invalid(
                "type",
                format!("unknown profile type \"{}\"", other.escape_debug()),
            ))
        }
    };
    if ca_pem.is_none() {
        f.missing(
            "server.ca",
            "the file has no remote.cert (the app would trust the system's CAs); add the \
             CA certificate that issued the server's",
        );
    }

    let ike = proposals(&mut s, "ike-proposal", false, &mut f);
    let esp = proposals(&mut s, "esp-proposal", true, &mut f);
    let mtu = s
        .integer_in("mtu", "mtu", 576..=9000, &mut f)
        .and_then(|m| u16::try_from(m).ok());
    let keepalive_seconds = s
        .integer_in("nat-keepalive", "nat-keepalive", 1..=3600, &mut f)
        .and_then(|k| u64::try_from(k).ok());

    report_rest(s, &mut f);
    Ok(ImportedProfile {
        name,
        server: ImportedServer {
            address,
            port,
            id: server_id,
            ca_pem,
        },
        auth,
        ike,
        esp,
        mobike: None,
        dpd_seconds: None,
        keepalive_seconds,
        mtu,
        ike_rekey_seconds: None,
        child_rekey_seconds: None,
        ppk: None,
        pq_fallback: None,
        findings: f,
    })
}

/// The proposal setting split at commas, each kept when Roam accepts it without weak
/// algorithms; a refused one is reported and Roam's defaults stand in.
fn proposals(s: &mut Settings, setting: &str, esp: bool, f: &mut Findings) -> Vec<String> {
    let Some(value) = s.string(setting, f) else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match check_proposal(p, esp) {
            Ok(()) => kept.push(p.to_string()),
            Err(e) => f.lossy(setting, format!("\"{}\" refused: {e}", p.escape_debug())),
        }
    }
    if kept.is_empty() && !value.trim().is_empty() {
        f.lossy(
            setting,
            "nothing usable left; Roam's default proposals used",
        );
    }
    kept
}

fn report_rest(s: Settings, f: &mut Findings) {
    // Group by reason: each leftover setting is reported with why it has no equivalent.
    let mut rest = s;
    for (prefix, why) in REASONS {
        let mut taken = rest.take_prefix(prefix);
        if let Some(v) = rest.take(prefix) {
            taken.push((prefix.to_string(), v));
        }
        for (name, v) in taken {
            f.unsupported(
                name.clone(),
                format!("{} ({why})", v.describe(settings::is_secret_name(&name))),
            );
        }
    }
    rest.report_rest(f, "", "no equivalent in Roam's profile");
}

fn decode_base64(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    Base64::decode_vec(&compact)
        .map(Zeroizing::new)
        .map_err(|_| "not valid base64".to_string())
}

/// `remote.cert`: base64 of a DER or PEM certificate.
fn decode_certificate(text: &str) -> Result<String, String> {
    let bytes = decode_base64(text)?;
    certificates_pem(&bytes)
}
