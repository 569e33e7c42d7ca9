//! Apple's `.mobileconfig` (a plist, XML or binary, optionally CMS-signed): the first
//! `com.apple.vpn.managed` payload with `VPNType` IKEv2, and the certificate payloads of the
//! same file it refers to (`com.apple.security.pkcs12` for our identity; `.root`, `.pem`,
//! `.pkcs1` for the CA).

use zeroize::Zeroizing;

use super::model::{ImportedAuth, ImportedPpk, ImportedProfile, ImportedServer};
use super::plist_depth;
use super::report::Findings;
use super::settings::{self, Settings, Value};
use super::{
    certificates_pem, check_proposal, checked_identity, checked_server, pkcs12, ImportError,
    ImportOptions,
};
use roam_proto::crypto::cert::Certificate;
use roam_proto::crypto::proposal::ProposalError;

/// More payloads than this in one profile is not a VPN profile.
const MAX_PAYLOADS: usize = 64;
const VPN: &str = "com.apple.vpn.managed";
const PKCS12: &str = "com.apple.security.pkcs12";
const CERT_TYPES: &[&str] = &[
    "com.apple.security.root",
    "com.apple.security.pem",
    "com.apple.security.pkcs1",
];

/// Why a setting without an equivalent is left out, by name prefix (inside the payload).
const REASONS: &[(&str, &str)] = &[
    (
        "IKEv2.OnDemand",
        "connecting on demand is up to the app embedding Roam",
    ),
    ("IKEv2.TLS", "EAP-TLS is not implemented yet"),
    (
        "IKEv2.DisconnectOnIdle",
        "Roam stays connected until told to close",
    ),
    (
        "IKEv2.IncludeAllNetworks",
        "routing is up to the app embedding Roam",
    ),
    ("IKEv2.Exclude", "routing is up to the app embedding Roam"),
    (
        "IKEv2.EnforceRoutes",
        "routing is up to the app embedding Roam",
    ),
    (
        "IKEv2.EnableCertificateRevocationCheck",
        "Roam does not check CRLs or OCSP",
    ),
    (
        "IKEv2.NATKeepAliveOffloadEnable",
        "keepalives are sent by Roam itself",
    ),
    (
        "IKEv2.UseConfigurationAttributeInternalIPSubnet",
        "Roam uses the traffic selectors",
    ),
    ("DNS", "Roam uses the DNS servers the server assigns"),
    ("Proxies", "Roam has no proxy setting"),
    (
        "OnDemand",
        "connecting on demand is up to the app embedding Roam",
    ),
];

/// The payload metadata: identifies the payload, configures nothing.
const METADATA: &[&str] = &[
    "PayloadType",
    "PayloadIdentifier",
    "PayloadUUID",
    "PayloadVersion",
    "PayloadDisplayName",
    "PayloadDescription",
    "PayloadOrganization",
    "UserDefinedName",
    "VPNType",
];

struct CertPayload {
    uuid: String,
    kind: String,
    name: String,
    content: Option<Zeroizing<Vec<u8>>>,
    password: Option<Zeroizing<String>>,
}

pub(super) fn import(
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<ImportedProfile, ImportError> {
    let mut f = Findings::default();
    let unsigned = unwrap_signed(bytes, &mut f)?;
    let root = plist_depth::parse(&unsigned).map_err(|e| {
        // The crate's message may quote the input; only the depth limit is worth naming.
        let why = if e.to_string().contains("nested deeper") {
            "nested too deep"
        } else {
            "not a property list"
        };
        ImportError::Syntax(format!("not a .mobileconfig file: {why}"))
    })?;
    let top = root.as_dictionary().ok_or_else(|| {
        ImportError::Syntax("not a .mobileconfig file: no top-level dictionary".into())
    })?;
    let payloads = top
        .get("PayloadContent")
        .and_then(plist::Value::as_array)
        .ok_or(ImportError::NoIkev2Payload)?;
    if payloads.len() > MAX_PAYLOADS {
        return Err(ImportError::invalid(
            "PayloadContent",
            format!("more than {MAX_PAYLOADS} payloads"),
        ));
    }

    let mut vpn: Option<&plist::Dictionary> = None;
    let mut certs = Vec::new();
    for p in payloads.iter().filter_map(plist::Value::as_dictionary) {
        let text = |k: &str| p.get(k).and_then(plist::Value::as_string).unwrap_or("");
        let kind = text("PayloadType");
        let display = match text("PayloadDisplayName") {
            "" => text("PayloadIdentifier"),
            d => d,
        };
        if kind == VPN {
            let vpn_type = text("VPNType");
            if vpn_type != "IKEv2" {
                f.unsupported(
                    format!("payload {VPN} \"{}\"", display.escape_debug()),
                    format!("VPNType \"{}\" is not IKEv2", vpn_type.escape_debug()),
                );
            } else if vpn.is_some() {
                f.unsupported(
                    format!("payload {VPN} \"{}\"", display.escape_debug()),
                    "only the first IKEv2 VPN payload is imported",
                );
            } else {
                vpn = Some(p);
            }
        } else if kind == PKCS12 || CERT_TYPES.contains(&kind) {
            certs.push(CertPayload {
                uuid: text("PayloadUUID").to_string(),
                kind: kind.to_string(),
                name: display.to_string(),
                content: p
                    .get("PayloadContent")
                    .and_then(plist::Value::as_data)
                    .map(|d| Zeroizing::new(d.to_vec())),
                password: p
                    .get("Password")
                    .and_then(plist::Value::as_string)
                    .map(|s| Zeroizing::new(s.to_string())),
            });
        } else {
            f.unsupported(
                format!(
                    "payload {} \"{}\"",
                    kind.escape_debug(),
                    display.escape_debug()
                ),
                "not a VPN or certificate payload",
            );
        }
    }
    let vpn = vpn.ok_or(ImportError::NoIkev2Payload)?;
    let mut s = settings::from_plist(vpn, "");
    let mut name = s.string("UserDefinedName", &mut f).map(|n| n.to_string());
    for key in METADATA {
        s.take(key);
    }
    if name.is_none() {
        name = top
            .get("PayloadDisplayName")
            .and_then(plist::Value::as_string)
            .map(str::to_string);
    }
    if let Some(Value::Str(sub)) = s.take("VPNSubType") {
        if !sub.is_empty() {
            f.unsupported(
                "VPNSubType",
                format!("\"{}\" (reserved for IKEv2)", sub.escape_debug()),
            );
        }
    }
    if s.boolean("IPv4.OverridePrimary", &mut f) == Some(false) {
        f.unsupported(
            "IPv4.OverridePrimary",
            "0 (Roam tunnels what the negotiated traffic selectors cover)",
        );
    }

    // ---- IKEv2 ---------------------------------------------------------------------------
    let address = s
        .string("IKEv2.RemoteAddress", &mut f)
        .ok_or_else(|| ImportError::missing("IKEv2.RemoteAddress"))?
        .trim()
        .to_string();
    checked_server(&address, crate::profile::DEFAULT_PORT, "RemoteAddress")?;
    let remote_id = s.string("IKEv2.RemoteIdentifier", &mut f);
    let server_id = remote_id
        .as_ref()
        .and_then(|id| checked_identity(id, "RemoteIdentifier", &mut f));
    if let Some(cn) = s.string("IKEv2.ServerCertificateCommonName", &mut f) {
        if remote_id.as_deref().map(String::as_str) != Some(cn.as_str()) {
            f.lossy(
                "ServerCertificateCommonName",
                format!(
                    "\"{}\": Roam checks the server's certificate against server.id (RemoteIdentifier)",
                    cn.escape_debug()
                ),
            );
        }
    }
    let local_id = s
        .string("IKEv2.LocalIdentifier", &mut f)
        .and_then(|id| checked_identity(&id, "LocalIdentifier", &mut f));
    let method = s.string("IKEv2.AuthenticationMethod", &mut f);
    let eap = s
        .boolean("IKEv2.ExtendedAuthEnabled", &mut f)
        .unwrap_or(false);
    let auth_name = s.string("IKEv2.AuthName", &mut f).map(|v| v.to_string());
    let auth_password = s.string("IKEv2.AuthPassword", &mut f);
    let shared_secret = match s.take("IKEv2.SharedSecret") {
        Some(Value::Str(t)) => Some(t),
        // Older profiles carry it as <data>.
        Some(Value::Data(d)) => std::str::from_utf8(&d)
            .ok()
            .map(|t| Zeroizing::new(t.to_string())),
        Some(_) => {
            f.lossy("SharedSecret", "neither a string nor data; ignored");
            None
        }
        None => None,
    };
    let cert_uuid = s
        .string("IKEv2.PayloadCertificateUUID", &mut f)
        .map(|v| v.to_string());
    if let Some(t) = s.string("IKEv2.CertificateType", &mut f) {
        if t.as_str() == "RSA-PSS" {
            f.lossy(
                "CertificateType",
                "\"RSA-PSS\": Roam signs with RSA PKCS#1 v1.5 through RFC 7427",
            );
        }
    }
    let issuer_cn = s
        .string("IKEv2.ServerCertificateIssuerCommonName", &mut f)
        .map(|v| v.to_string());
    // Apple names a password for the certificate's payload here too.
    let ikev2_password = s.string("IKEv2.Password", &mut f);

    let has_auth_password = auth_password.is_some();
    let method = method.as_deref().map(String::as_str).unwrap_or("None");
    let mut p12_ca = None;
    let auth = match (method, eap) {
        ("SharedSecret", false) | ("None", false) => {
            if local_id.is_none() {
                f.missing(
                    "auth.local_id",
                    "no LocalIdentifier; Roam needs our identity for PSK",
                );
            }
            if shared_secret.as_ref().is_none_or(|p| p.is_empty()) {
                f.missing("auth.psk", "no SharedSecret in the payload");
            }
            ImportedAuth::Psk {
                local_id,
                psk: shared_secret,
            }
        }
        ("None", true) => {
            let username = auth_name.filter(|u| !u.is_empty());
            if username.is_none() {
                f.missing(
                    "auth.username",
                    "no AuthName in the payload; add the user name",
                );
            }
            if auth_password.as_ref().is_none_or(|p| p.is_empty()) {
                f.missing(
                    "auth.password",
                    "no AuthPassword in the payload; add the password",
                );
            }
            if cert_uuid.is_some() {
                return Err(ImportError::Unsupported {
                    setting: "ExtendedAuthEnabled".into(),
                    value: "EAP with PayloadCertificateUUID".into(),
                    why: Some("EAP-TLS".into()),
                });
            }
            ImportedAuth::EapMschapv2 {
                username,
                password: auth_password,
                local_id,
            }
        }
        ("Certificate", false) => {
            let identity = match cert_uuid.as_deref() {
                None => {
                    f.missing(
                        "auth.certificate",
                        "no PayloadCertificateUUID; add the certificate and auth.private_key",
                    );
                    None
                }
                Some(uuid) => {
                    let payload = certs
                        .iter()
                        .find(|c| c.uuid == uuid && c.kind == PKCS12)
                        .ok_or_else(|| {
                            ImportError::invalid(
                                "PayloadCertificateUUID",
                                format!(
                                    "no {PKCS12} payload with UUID \"{}\" in the file",
                                    uuid.escape_debug()
                                ),
                            )
                        })?;
                    let password = options
                        .p12_password
                        .as_ref()
                        .or(payload.password.as_ref())
                        .or(ikev2_password.as_ref());
                    match (password, payload.content.as_ref()) {
                        (_, None) => {
                            return Err(ImportError::invalid(
                                &format!("payload {PKCS12} \"{}\"", payload.name.escape_debug()),
                                "no PayloadContent data",
                            ))
                        }
                        (None, Some(_)) => {
                            f.missing(
                                "auth.certificate",
                                "the PKCS#12 payload has no Password and none was given",
                            );
                            None
                        }
                        (Some(pw), Some(der)) => {
                            let id =
                                pkcs12::decrypt(der, pw).map_err(|source| ImportError::Pkcs12 {
                                    setting: format!(
                                        "payload {PKCS12} \"{}\"",
                                        payload.name.escape_debug()
                                    ),
                                    source,
                                })?;
                            p12_ca = id.ca_pem;
                            Some((id.chain_pem, id.key_pem))
                        }
                    }
                }
            };
            let (certificate_pem, private_key_pem) = match identity {
                Some((c, k)) => (Some(c), Some(k)),
                None => (None, None),
            };
            ImportedAuth::Certificate {
                certificate_pem,
                private_key_pem,
                local_id,
            }
        }
        (m @ ("SharedSecret" | "Certificate"), true) => {
            return Err(ImportError::Unsupported {
                setting: "ExtendedAuthEnabled".into(),
                value: format!("EAP after AuthenticationMethod \"{m}\""),
                why: Some("two authentication rounds, RFC 4739".into()),
            })
        }
        (other, _) => {
            return Err(ImportError::invalid(
                "AuthenticationMethod",
                format!("unknown method \"{}\"", other.escape_debug()),
            ))
        }
    };
    if matches!(auth, ImportedAuth::Psk { .. }) && has_auth_password {
        f.unsupported("AuthPassword", "not used with a shared secret");
    }

    // The server's CA: the certificate payloads (not our identity), narrowed to the issuer
    // Apple names when it names one.
    let anchors: Vec<&CertPayload> = certs
        .iter()
        .filter(|c| CERT_TYPES.contains(&c.kind.as_str()))
        .collect();
    let mut ca_pem = String::new();
    for c in &anchors {
        let Some(data) = &c.content else { continue };
        match certificates_pem(data) {
            Ok(pem) => {
                let keep = match &issuer_cn {
                    Some(cn) => subject_cn_is(&pem, cn),
                    None => true,
                };
                if keep {
                    ca_pem.push_str(&pem);
                }
            }
            Err(e) => f.lossy(
                format!("payload {} \"{}\"", c.kind, c.name.escape_debug()),
                format!("not a certificate ({e}); left out"),
            ),
        }
    }
    if ca_pem.is_empty() && issuer_cn.is_some() && !anchors.is_empty() {
        f.lossy(
            "ServerCertificateIssuerCommonName",
            "no certificate payload has that common name; every certificate payload is taken as server.ca",
        );
        for c in &anchors {
            if let Some(pem) = c.content.as_ref().and_then(|d| certificates_pem(d).ok()) {
                ca_pem.push_str(&pem);
            }
        }
    }
    if ca_pem.is_empty() {
        if let Some(ca) = p12_ca {
            f.lossy(
                "PayloadCertificateUUID",
                "the PKCS#12's CA certificate is taken as server.ca",
            );
            ca_pem = ca;
        }
    }
    let ca_pem = (!ca_pem.is_empty()).then_some(ca_pem);
    if ca_pem.is_none() && !matches!(auth, ImportedAuth::Psk { .. }) {
        f.missing(
            "server.ca",
            "no certificate payload in the file (the device would trust its system CAs); add \
             the CA certificate that issued the server's",
        );
    }

    // ---- SA parameters and tunnel ----------------------------------------------------------
    let ike_sa = SaParams::take(&mut s, "IKESecurityAssociationParameters", &mut f);
    let child_sa = SaParams::take(&mut s, "ChildSecurityAssociationParameters", &mut f);
    let pfs = s.boolean("IKEv2.EnablePFS", &mut f).unwrap_or(false);
    let ike = ike_sa
        .as_ref()
        .and_then(|p| p.proposal(false, false, &mut f))
        .into_iter()
        .collect();
    // Apple applies the IKE parameters to the CHILD SA when there are no CHILD ones.
    let child_source = child_sa.as_ref().or(ike_sa.as_ref());
    let esp = child_source
        .and_then(|p| p.proposal(true, pfs, &mut f))
        .into_iter()
        .collect::<Vec<_>>();
    if pfs && child_source.is_none() {
        f.lossy(
            "EnablePFS",
            "no ChildSecurityAssociationParameters to take the group from; Roam's default ESP proposals (no PFS) used",
        );
    }
    let ike_rekey_seconds = ike_sa.as_ref().and_then(|p| p.lifetime_seconds(&mut f));
    let child_rekey_seconds = child_sa.as_ref().and_then(|p| p.lifetime_seconds(&mut f));

    let dpd_seconds = match s
        .string("IKEv2.DeadPeerDetectionRate", &mut f)
        .as_deref()
        .map(String::as_str)
    {
        None => None,
        Some("None") => Some(0),
        Some("Low") => Some(1800),
        Some("Medium") => Some(600),
        Some("High") => Some(60),
        Some(other) => {
            f.lossy(
                "DeadPeerDetectionRate",
                format!(
                    "unknown rate \"{}\"; Roam's default used",
                    other.escape_debug()
                ),
            );
            None
        }
    };
    let mobike = s.boolean("IKEv2.DisableMOBIKE", &mut f).map(|d| !d);
    if s.boolean("IKEv2.DisableRedirect", &mut f) == Some(false) {
        f.unsupported(
            "DisableRedirect",
            "0 (Roam does not follow IKEv2 redirects)",
        );
    }
    let mtu = s
        .integer_in("IKEv2.MTU", "MTU", 576..=9000, &mut f)
        .and_then(|m| u16::try_from(m).ok());
    let keepalive_seconds = s
        .integer_in(
            "IKEv2.NATKeepAliveInterval",
            "NATKeepAliveInterval",
            1..=3600,
            &mut f,
        )
        .and_then(|k| u64::try_from(k).ok());

    let ppk = take_ppk(&mut s, &mut f);
    let pq_fallback = s.boolean("IKEv2.AllowPostQuantumKeyExchangeFallback", &mut f);

    report_rest(s, &mut f);
    Ok(ImportedProfile {
        name,
        server: ImportedServer {
            address,
            port: None,
            id: server_id,
            ca_pem,
        },
        auth,
        ike,
        esp,
        mobike,
        dpd_seconds,
        keepalive_seconds,
        mtu,
        ike_rekey_seconds,
        child_rekey_seconds,
        ppk,
        pq_fallback,
        findings: f,
    })
}

/// `PPK` (data), `PPKIdentifier` and `PPKMandatory` (RFC 8784): both of the first two or
/// neither, the key at least 16 bytes as the profile wants; anything else is reported as lossy
/// and left out (a PPK is never half imported).
fn take_ppk(s: &mut Settings, f: &mut Findings) -> Option<ImportedPpk> {
    let key = match s.take("IKEv2.PPK") {
        None => None,
        Some(Value::Data(d)) => Some(d),
        Some(Value::Str(t)) => Some(Zeroizing::new(t.as_bytes().to_vec())),
        Some(other) => {
            f.lossy("PPK", format!("is {}; ignored", other.describe(true)));
            None
        }
    };
    let id = s.string("IKEv2.PPKIdentifier", f);
    let required = s.boolean("IKEv2.PPKMandatory", f);
    match (key, id) {
        (None, None) => {
            if let Some(r) = required {
                f.unsupported("PPKMandatory", format!("{r} without a PPK"));
            }
            None
        }
        (Some(_), None) => {
            f.lossy("PPK", "no PPKIdentifier beside it; the PPK is left out");
            None
        }
        (None, Some(_)) => {
            f.lossy("PPKIdentifier", "no PPK beside it; left out");
            None
        }
        (Some(key), Some(id)) if key.len() < 16 => {
            f.lossy(
                "PPK",
                format!(
                    "{} bytes, shorter than the 16 Roam accepts (RFC 8784 wants 256 bits); left out, as is PPKIdentifier \"{}\"",
                    key.len(),
                    id.escape_debug()
                ),
            );
            None
        }
        (Some(_), Some(id)) if id.is_empty() || id.len() >= roam_proto::ike::ppk::MAX_PPK_ID => {
            f.lossy("PPKIdentifier", "empty or too long; the PPK is left out");
            None
        }
        (Some(key), Some(id)) => Some(ImportedPpk {
            id: id.to_string(),
            key,
            required,
        }),
    }
}

/// Reports what is left: known settings with their reason, the rest as having no
/// equivalent. Names inside the IKEv2 dictionary are shown without the `IKEv2.` prefix.
fn report_rest(mut s: Settings, f: &mut Findings) {
    for (prefix, why) in REASONS {
        let mut taken = s.take_prefix(prefix);
        // A prefix may also name leaf keys that merely start with it (IKEv2.OnDemandEnabled).
        taken.extend(s.take_matching(prefix));
        for (name, v) in taken {
            let shown = name.strip_prefix("IKEv2.").unwrap_or(&name).to_string();
            f.unsupported(
                shown,
                format!("{} ({why})", v.describe(settings::is_secret_name(&name))),
            );
        }
    }
    s.report_rest(f, "IKEv2.", "no equivalent in Roam's profile");
}

/// Whether a PEM bundle's (first) certificate has `cn` as its subject's common name.
fn subject_cn_is(pem: &str, cn: &str) -> bool {
    let Ok(certs) = Certificate::parse_pem_or_der(pem.as_bytes()) else {
        return false;
    };
    certs.iter().any(|c| {
        let subject = c.subject_identity().to_string();
        subject
            .split(',')
            .filter_map(|part| part.trim().strip_prefix("CN="))
            .any(|v| v == cn)
    })
}

/// `IKESecurityAssociationParameters` / `ChildSecurityAssociationParameters`.
struct SaParams {
    setting: &'static str,
    encryption: String,
    integrity: String,
    group: i64,
    lifetime_minutes: Option<i64>,
    /// `PostQuantumKeyExchangeMethods`: IANA key exchange methods (36 ML-KEM-768,
    /// 37 ML-KEM-1024), one additional key exchange each, in order.
    post_quantum: Vec<i64>,
}

impl SaParams {
    fn take(s: &mut Settings, setting: &'static str, f: &mut Findings) -> Option<Self> {
        let key = |k: &str| format!("IKEv2.{setting}.{k}");
        let encryption = s.string(&key("EncryptionAlgorithm"), f);
        let integrity = s.string(&key("IntegrityAlgorithm"), f);
        let group = s.integer(&key("DiffieHellmanGroup"), f);
        let lifetime_minutes = s.integer(&key("LifeTimeInMinutes"), f);
        let post_quantum = match s.take(&key("PostQuantumKeyExchangeMethods")) {
            None => Vec::new(),
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::Int(m) => Some(*m),
                    other => {
                        f.lossy(
                            format!("{setting}.PostQuantumKeyExchangeMethods"),
                            format!(
                                "an item is {} where an integer belongs; ignored",
                                other.describe(false)
                            ),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                f.lossy(
                    format!("{setting}.PostQuantumKeyExchangeMethods"),
                    format!(
                        "is {} where an array belongs; ignored",
                        other.describe(false)
                    ),
                );
                Vec::new()
            }
        };
        if encryption.is_none()
            && integrity.is_none()
            && group.is_none()
            && lifetime_minutes.is_none()
            && post_quantum.is_empty()
        {
            return None;
        }
        // Apple's defaults.
        Some(Self {
            setting,
            encryption: encryption.map_or_else(|| "AES-256".to_string(), |e| e.to_string()),
            integrity: integrity.map_or_else(|| "SHA2-256".to_string(), |i| i.to_string()),
            group: group.unwrap_or(14),
            lifetime_minutes,
            post_quantum,
        })
    }

    fn lifetime_seconds(&self, f: &mut Findings) -> Option<u64> {
        let minutes = self.lifetime_minutes?;
        match u64::try_from(minutes) {
            Ok(m) if (1..=10_080).contains(&m) => Some(m * 60),
            _ => {
                f.lossy(
                    format!("{}.LifeTimeInMinutes", self.setting),
                    format!("{minutes} is outside 1 to 10080; Roam's default used"),
                );
                None
            }
        }
    }

    /// The proposal in strongSwan syntax, or a lossy finding naming the refused parameter.
    fn proposal(&self, esp: bool, pfs: bool, f: &mut Findings) -> Option<String> {
        let field = |name: &str, value: &str| format!("{}.{name}={value}", self.setting);
        let Some((encr, aead)) = encryption_keyword(&self.encryption) else {
            f.lossy(
                field("EncryptionAlgorithm", &self.encryption),
                "unknown algorithm; Roam's defaults used",
            );
            return None;
        };
        let Some(hash) = integrity_keyword(&self.integrity) else {
            f.lossy(
                field("IntegrityAlgorithm", &self.integrity),
                "unknown algorithm; Roam's defaults used",
            );
            return None;
        };
        let group_text = self.group.to_string();
        let Some(group) = group_keyword(self.group) else {
            f.lossy(
                field("DiffieHellmanGroup", &group_text),
                "unknown group; Roam's defaults used",
            );
            return None;
        };
        let mut words = vec![encr.to_string()];
        if esp {
            if !aead {
                words.push(hash.to_string());
            }
            if pfs {
                words.push(group.to_string());
            }
        } else {
            if aead {
                words.push(prf_keyword(hash).to_string());
            } else {
                words.push(hash.to_string());
            }
            words.push(group.to_string());
        }
        if esp && !pfs && !self.post_quantum.is_empty() {
            f.lossy(
                format!("{}.PostQuantumKeyExchangeMethods", self.setting),
                "without EnablePFS the CHILD SA takes its keys from the IKE SA (post-quantum when its proposal is); left out of ESP",
            );
        } else {
            for (n, method) in self.post_quantum.iter().enumerate() {
                let Some(kem) = post_quantum_keyword(*method) else {
                    f.lossy(
                        field("PostQuantumKeyExchangeMethods", &method.to_string()),
                        "unknown method (36 ML-KEM-768 and 37 ML-KEM-1024 are known); Roam's defaults used",
                    );
                    return None;
                };
                words.push(format!("ke{}_{kem}", n + 1));
            }
        }
        let proposal = words.join("-");
        match check_proposal(&proposal, esp) {
            Ok(()) => Some(proposal),
            Err(e) => {
                // Name the Apple parameter behind the refused keyword.
                let culprit = match &e {
                    ProposalError::Weak(w) | ProposalError::Unknown(w) => {
                        if w.starts_with("ke") && w.contains('_') {
                            self.setting.to_string() + ".PostQuantumKeyExchangeMethods"
                        } else if w == encr {
                            field("EncryptionAlgorithm", &self.encryption)
                        } else if w == group {
                            field("DiffieHellmanGroup", &group_text)
                        } else {
                            field("IntegrityAlgorithm", &self.integrity)
                        }
                    }
                    ProposalError::Incomplete(..) => self.setting.to_string(),
                };
                let role = if esp { "ESP" } else { "IKE" };
                f.lossy(
                    culprit,
                    format!("refused for {role} (\"{proposal}\": {e}); Roam's defaults used"),
                );
                None
            }
        }
    }
}

/// Apple's `PostQuantumKeyExchangeMethods` value (the IANA transform ID) as a strongSwan
/// key exchange keyword.
fn post_quantum_keyword(method: i64) -> Option<&'static str> {
    match method {
        36 => Some("mlkem768"),
        37 => Some("mlkem1024"),
        _ => None,
    }
}

fn encryption_keyword(apple: &str) -> Option<(&'static str, bool)> {
    Some(match apple {
        "DES" => ("des", false),
        "3DES" => ("3des", false),
        "AES-128" => ("aes128", false),
        "AES-256" => ("aes256", false),
        "AES-128-GCM" => ("aes128gcm16", true),
        "AES-256-GCM" => ("aes256gcm16", true),
        "ChaCha20Poly1305" => ("chacha20poly1305", true),
        _ => return None,
    })
}

fn integrity_keyword(apple: &str) -> Option<&'static str> {
    Some(match apple {
        "SHA1-96" => "sha1",
        "SHA1-160" => "sha1_160",
        "SHA2-256" => "sha256",
        "SHA2-384" => "sha384",
        "SHA2-512" => "sha512",
        _ => return None,
    })
}

fn prf_keyword(hash: &str) -> &'static str {
    match hash {
        "sha1" | "sha1_160" => "prfsha1",
        "sha384" => "prfsha384",
        "sha512" => "prfsha512",
        _ => "prfsha256",
    }
}

fn group_keyword(group: i64) -> Option<&'static str> {
    Some(match group {
        1 => "modp768",
        2 => "modp1024",
        5 => "modp1536",
        14 => "modp2048",
        15 => "modp3072",
        16 => "modp4096",
        17 => "modp6144",
        18 => "modp8192",
        19 => "ecp256",
        20 => "ecp384",
        21 => "ecp521",
        31 => "curve25519",
        32 => "curve448",
        _ => return None,
    })
}

/// A signed profile is a CMS SignedData around the plist: the plist is taken out and the
/// signature reported as not checked. Anything else is returned as it is.
fn unwrap_signed(bytes: &[u8], f: &mut Findings) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use der::{asn1::OctetString, Decode};

    if bytes.first() != Some(&0x30) {
        return Ok(Zeroizing::new(bytes.to_vec()));
    }
    let bad = |what: &str| ImportError::Syntax(format!("not a .mobileconfig file: {what}"));
    let info = ContentInfo::from_der(bytes).map_err(|_| bad("DER but not a CMS signed profile"))?;
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|_| bad("a CMS message but not SignedData"))?;
    let content = signed
        .encap_content_info
        .econtent
        .ok_or_else(|| bad("a signed profile without its content"))?;
    let octets: OctetString = content
        .decode_as()
        .map_err(|_| bad("a signed profile whose content is not an OCTET STRING"))?;
    f.lossy(
        "signature",
        "the profile is signed; Roam does not check the signature",
    );
    Ok(Zeroizing::new(octets.into_bytes().into_vec()))
}
