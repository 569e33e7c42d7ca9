//! The client's side of TLS (rustls on ring): one configuration per policy, kept for the
//! life of the driver so a reconnect resumes the TLS session when the server allows it, and
//! the certificate check the policy asks for (none, or the profile's CA and the name).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{TlsError, TlsPolicy, TlsVerify};

/// Opens TLS sessions to the server as a policy says.
#[derive(Clone)]
pub(crate) struct Connector {
    connector: TlsConnector,
    /// The policy's name (None: the server's address is used).
    name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Connector {
    pub(crate) fn new(policy: &TlsPolicy) -> Result<Self, TlsError> {
        let name = policy
            .server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.to_string()).map_err(|_| TlsError::BadName(n.to_string()))
            })
            .transpose()?;
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let config = match &policy.verify {
            TlsVerify::None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            TlsVerify::Ca(cas) => {
                let mut roots = RootCertStore::empty();
                for der in cas {
                    roots
                        .add(CertificateDer::from(der.clone()))
                        .map_err(|e| TlsError::BadCa(e.to_string()))?;
                }
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::BadCa(e.to_string()))?;
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// The TLS handshake on `tcp`, a connection to `server`.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        server: SocketAddr,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(server.ip().into()));
        let stream = self.connector.connect(name, tcp).await?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        log::info!(
            "TLS to {server}: {:?}{}",
            stream.get_ref().1.protocol_version(),
            if resumed { ", session resumed" } else { "" }
        );
        Ok(stream)
    }
}

/// Accepts any certificate (IKE authenticates the server) but checks the handshake's
/// signatures with the key the certificate holds, so the TLS session itself is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
