//! The one public error type of the FFI, and the one place where internal errors (profile,
//! session configuration, driver, I/O) are mapped into it.

use roam_proto::session::ConfigError;
use roam_runtime::driver::DriverError;
use roam_runtime::profile::ProfileError;

/// Every error a call can return. Kotlin sees `VpnException.Config` etc., Swift `VpnError.config`.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum VpnError {
    /// A configuration value is wrong. `key` names it the way the profile does
    /// (`server.address`, `auth.psk`, `crypto.ike[0]`, `tunnel.mtu`).
    #[error("{key}: {problem}")]
    Config { key: String, problem: String },
    /// The call does not fit the tunnel's state (start while running, ...).
    #[error("{problem}")]
    State { problem: String },
    /// The network failed us: the server's name did not resolve, a socket could not be opened.
    #[error("network: {problem}")]
    Network { problem: String },
    /// The platform refused something (a socket not protected, a bad TUN descriptor, network
    /// settings not applied).
    #[error("platform: {problem}")]
    Platform { problem: String },
    /// A bug or an exhausted resource (a thread or runtime that could not start).
    #[error("internal: {problem}")]
    Internal { problem: String },
}

impl VpnError {
    pub(crate) fn config(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            problem: problem.into(),
        }
    }
    pub(crate) fn state(problem: impl Into<String>) -> Self {
        Self::State {
            problem: problem.into(),
        }
    }
    pub(crate) fn platform(problem: impl Into<String>) -> Self {
        Self::Platform {
            problem: problem.into(),
        }
    }
    pub(crate) fn internal(problem: impl std::fmt::Display) -> Self {
        Self::Internal {
            problem: problem.to_string(),
        }
    }
}

impl From<ProfileError> for VpnError {
    fn from(e: ProfileError) -> Self {
        let text = e.to_string();
        match e.key() {
            Some(key) => {
                let problem = text
                    .strip_prefix(&format!("{key}: "))
                    .unwrap_or(&text)
                    .to_string();
                Self::config(key, problem)
            }
            None => Self::config("profile", text),
        }
    }
}

impl From<ConfigError> for VpnError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Proposal { key, source } => {
                Self::config(format!("crypto.{key}"), source.to_string())
            }
            ConfigError::Invalid(problem) => Self::config("config", problem),
        }
    }
}

impl From<DriverError> for VpnError {
    fn from(e: DriverError) -> Self {
        match &e {
            DriverError::Bind { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Self::platform(e.to_string())
            }
            DriverError::Resolve { .. } | DriverError::Bind { .. } | DriverError::Socket(_) => {
                Self::Network {
                    problem: e.to_string(),
                }
            }
            DriverError::Task(_) => Self::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_errors_keep_their_key() {
        let e: VpnError = ProfileError::Invalid {
            key: "tunnel.mtu".into(),
            problem: "must be 576 to 9000".into(),
        }
        .into();
        match e {
            VpnError::Config { key, problem } => {
                assert_eq!(key, "tunnel.mtu");
                assert_eq!(problem, "must be 576 to 9000");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_refused_protect_is_a_platform_error() {
        let e: VpnError = DriverError::Bind {
            server: "192.0.2.1:500".parse().unwrap(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "refused"),
        }
        .into();
        assert!(matches!(e, VpnError::Platform { .. }), "{e:?}");
        let e: VpnError = DriverError::Socket(std::io::Error::other("x")).into();
        assert!(matches!(e, VpnError::Network { .. }), "{e:?}");
    }
}
