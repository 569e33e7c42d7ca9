//! Profile import for apps: a `.sswan` or `.mobileconfig` file's bytes turned into the
//! [`VpnConfig`] records (certificates and key as PEM inside them) plus the findings, every
//! setting that did not come across unchanged, as `kind: setting: detail` lines to show the
//! user. The import itself is `roam_runtime::import`.

use std::sync::Arc;

use roam_runtime::import::{self, ImportOptions, ImportedAuth, Kind};
use zeroize::Zeroizing;

use crate::config::{
    validate, AuthConfig, CryptoConfig, PpkConfig, SecretText, ServerConfig, TunnelConfig,
    VpnConfig,
};
use crate::error::VpnError;

/// What an import made.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ImportedConfig {
    /// The profile's display name in the file.
    pub name: Option<String>,
    /// The configuration; a value the file did not carry (an EAP password, a PKCS#12 that
    /// could not be opened) is empty, and `findings` names it as `missing: ...`.
    pub config: VpnConfig,
    /// `unsupported: ...`, `lossy: ...`, `missing: ...` lines, never quoting a secret.
    pub findings: Vec<String>,
    /// Why `config` does not validate yet (the first problem, naming its key), or None when
    /// it is ready to start.
    pub problem: Option<String>,
}

/// Imports a strongSwan `.sswan` or Apple `.mobileconfig` file. `file_name` (or just `sswan`
/// / `mobileconfig`) names the format; without it the content decides. `p12_password` opens
/// an embedded PKCS#12 (an Apple payload may carry its own).
#[uniffi::export]
pub fn import_profile(
    data: Vec<u8>,
    file_name: Option<String>,
    p12_password: Option<Arc<SecretText>>,
) -> Result<ImportedConfig, VpnError> {
    let data = Zeroizing::new(data);
    let kind = file_name
        .as_deref()
        .and_then(Kind::from_name)
        .or_else(|| Kind::detect(file_name.as_deref(), &data))
        .ok_or_else(|| {
            VpnError::config("import", import::ImportError::UnknownFormat.to_string())
        })?;
    let options = ImportOptions {
        p12_password: p12_password.map(|p| Zeroizing::new(p.expose().to_string())),
    };
    let imported = import::import(&data, kind, &options)
        .map_err(|e| VpnError::config("import", e.to_string()))?;

    let mut findings: Vec<String> = imported.findings.iter().map(|f| f.to_string()).collect();
    let secret = |s: Option<&Zeroizing<String>>| {
        SecretText::new(s.map(|v| v.to_string()).unwrap_or_default())
    };
    let auth = match &imported.auth {
        ImportedAuth::Psk { local_id, psk } => AuthConfig::Psk {
            local_id: local_id.clone().unwrap_or_default(),
            psk: secret(psk.as_ref()),
        },
        ImportedAuth::EapMschapv2 {
            username,
            password,
            local_id,
        } => AuthConfig::EapMschapv2 {
            username: username.clone().unwrap_or_default(),
            password: secret(password.as_ref()),
            local_id: local_id.clone(),
        },
        ImportedAuth::Certificate {
            certificate_pem,
            private_key_pem,
            local_id,
        } => AuthConfig::Certificate {
            certificate_pem: certificate_pem.clone().unwrap_or_default(),
            private_key_pem: secret(private_key_pem.as_ref()),
            local_id: local_id.clone(),
        },
    };
    let defaults = TunnelConfig::default();
    let tunnel = TunnelConfig {
        mobike: imported.mobike.unwrap_or(defaults.mobike),
        dpd_seconds: imported
            .dpd_seconds
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(defaults.dpd_seconds),
        keepalive_seconds: imported
            .keepalive_seconds
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(defaults.keepalive_seconds),
        mtu: imported.mtu.unwrap_or(defaults.mtu),
        ..defaults
    };
    // The records have no lifetimes (yet): say so rather than drop them.
    for (key, value) in [
        ("lifetimes.ike_rekey_seconds", imported.ike_rekey_seconds),
        (
            "lifetimes.child_rekey_seconds",
            imported.child_rekey_seconds,
        ),
    ] {
        if let Some(v) = value {
            findings.push(format!(
                "lossy: {key}: {v} (VpnConfig has no lifetimes; Roam's defaults used)"
            ));
        }
    }
    let config = VpnConfig {
        server: ServerConfig {
            address: imported.server.address.clone(),
            port: imported
                .server
                .port
                .unwrap_or(roam_runtime::profile::DEFAULT_PORT),
            id: imported.server.id.clone(),
            ca_pem: imported.server.ca_pem.clone(),
        },
        auth,
        crypto: (!imported.ike.is_empty()
            || !imported.esp.is_empty()
            || imported.pq_fallback.is_some())
        .then(|| CryptoConfig {
            ike: imported.ike.clone(),
            esp: imported.esp.clone(),
            allow_weak: Vec::new(),
            pq_fallback: imported.pq_fallback.unwrap_or(false),
        }),
        tunnel: Some(tunnel),
        // Hex always: an imported key need not be text.
        ppk: imported.ppk.as_ref().map(|p| PpkConfig {
            id: p.id.clone(),
            key: SecretText::new(hex::encode(&*p.key)),
            key_is_hex: true,
            required: p.required.unwrap_or(true),
        }),
    };
    let problem = validate(&config, None).err().map(|e| e.to_string());
    Ok(ImportedConfig {
        name: imported.name.clone(),
        config,
        findings,
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core/runtime/tests/data/import")
            .join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_psk_mobileconfig_becomes_records_that_validate() {
        let got = import_profile(
            example("psk.mobileconfig"),
            Some("psk.mobileconfig".into()),
            None,
        )
        .unwrap();
        assert_eq!(got.name.as_deref(), Some("Example PSK"));
        assert_eq!(got.config.server.address, "203.0.113.7");
        assert_eq!(got.config.server.port, 500);
        match &got.config.auth {
            AuthConfig::Psk { local_id, psk } => {
                assert_eq!(local_id, "psk-client@example.org");
                assert_eq!(psk.expose(), "an-example-shared-secret");
            }
            other => panic!("{other:?}"),
        }
        let tunnel = got.config.tunnel.as_ref().unwrap();
        assert!(!tunnel.mobike);
        assert_eq!(
            (tunnel.dpd_seconds, tunnel.keepalive_seconds, tunnel.mtu),
            (60, 30, 1360)
        );
        assert_eq!(
            got.config.crypto.as_ref().unwrap().esp,
            ["aes128gcm16-curve25519"]
        );
        assert!(got.problem.is_none(), "{:?}", got.problem);
        assert!(got
            .findings
            .iter()
            .any(|f| f.starts_with("unsupported: OnDemandEnabled")));
        assert!(got
            .findings
            .iter()
            .any(|f| f.starts_with("lossy: lifetimes.ike_rekey_seconds: 28800")));
        // No secret in the Debug output of the whole record.
        assert!(!format!("{got:?}").contains("an-example-shared-secret"));
    }

    #[test]
    fn a_sswan_certificate_comes_out_as_pem_records() {
        let got = import_profile(
            example("cert.sswan"),
            None,
            Some(SecretText::new("p12-aes-pw".into())),
        )
        .unwrap();
        match &got.config.auth {
            AuthConfig::Certificate {
                certificate_pem,
                private_key_pem,
                ..
            } => {
                assert!(certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"));
                assert!(private_key_pem
                    .expose()
                    .starts_with("-----BEGIN PRIVATE KEY-----"));
            }
            other => panic!("{other:?}"),
        }
        assert!(got.problem.is_none(), "{:?}", got.problem);
        assert!(got.findings.is_empty(), "{:?}", got.findings);
    }

    #[test]
    fn an_incomplete_import_says_what_is_missing() {
        let got = import_profile(example("eap.sswan"), Some("sswan".into()), None).unwrap();
        assert!(got
            .findings
            .iter()
            .any(|f| f.starts_with("missing: auth.password")));
        assert_eq!(got.problem.as_deref(), Some("auth.password: empty"));
        let e = import_profile(b"hello".to_vec(), None, None).unwrap_err();
        assert!(
            matches!(e, VpnError::Config { ref key, .. } if key == "import"),
            "{e}"
        );
    }

    #[test]
    fn a_post_quantum_mobileconfig_keeps_its_ppk_and_fallback() {
        let got = import_profile(example("pq.mobileconfig"), None, None).unwrap();
        let crypto = got.config.crypto.as_ref().unwrap();
        assert_eq!(
            crypto.ike,
            ["aes256gcm16-prfsha384-curve25519-ke1_mlkem768-ke2_mlkem1024"]
        );
        assert!(crypto.pq_fallback);
        let ppk = got.config.ppk.as_ref().expect("ppk");
        assert_eq!(ppk.id, "ppk-pq-client");
        assert!(ppk.key_is_hex && !ppk.required);
        assert!(got.problem.is_none(), "{:?}", got.problem);
        let v = validate(&got.config, None).unwrap();
        let key = v.config.ppk.unwrap().key;
        assert_eq!(key.as_bytes(), (0xa0..0xc0).collect::<Vec<u8>>());
        assert!(!format!("{got:?}").contains("a0a1a2"));
    }
}
