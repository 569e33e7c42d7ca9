//! The server's side of TLS (rustls on ring): its certificate chain and key from PEM, and the
//! handshake on an accepted connection. Sessions are remembered (rustls's bounded in-memory
//! cache) so a client that reconnects resumes instead of a full handshake.

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::TlsError;

#[derive(Clone)]
pub(super) struct Acceptor {
    config: Arc<ServerConfig>,
}

impl Acceptor {
    pub(super) fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::BadCertificate("no CERTIFICATE in the PEM".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::BadKey(e.to_string()))?;
        let config = ServerConfig::builder_with_provider(super::client::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    TlsError::BadKey("does not belong to the certificate".into())
                }
                e => TlsError::BadKey(e.to_string()),
            })?;
        Ok(Self {
            config: Arc::new(config),
        })
    }

    pub(super) async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        TlsAcceptor::from(self.config.clone()).accept(stream).await
    }

    pub(super) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}
