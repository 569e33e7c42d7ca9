//! TLS around the TCP transport (RFC 9329 section 8): what a profile asks for
//! ([`TlsPolicy`]: the name sent as SNI and how the server's certificate is checked), the
//! server's certificate and key ([`TlsServer`]), and the client's stream that is either plain
//! TCP or TLS over it.
//!
//! The security of the tunnel comes from IKE, which authenticates the server (PSK, certificate
//! or EAP) and protects every message; TLS only makes the stream look like ordinary HTTPS to
//! middleboxes that pass nothing else. So by default ([`TlsVerify::None`]) the client accepts
//! any certificate (it still checks the handshake's signatures, so the TLS session itself is
//! sound); [`TlsVerify::Ca`] checks the chain against the CA certificates the profile already
//! gives for IKE, and the name, for networks that want the TLS layer to fail early against an
//! impostor.
//!
//! The implementation (rustls on ring) is behind the crate's `tls` feature; without it the
//! types exist, [`SUPPORTED`] is false, and a profile asking for TLS is refused by name.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
mod client;
#[cfg(feature = "tls")]
mod server;

#[cfg(feature = "tls")]
pub(crate) use client::Connector;

/// Whether this build can wrap the TCP transport in TLS (the crate's `tls` feature).
pub const SUPPORTED: bool = cfg!(feature = "tls");

/// The first byte of a TLS handshake record (a ClientHello starts every TLS stream).
pub const TLS_HANDSHAKE: u8 = 0x16;

/// How the client checks the server's TLS certificate.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// Any certificate: IKE authenticates the server (the default).
    #[default]
    None,
    /// The chain must end at one of these CA certificates (DER) and name the server.
    Ca(Vec<Vec<u8>>),
}

impl TlsVerify {
    /// The profile's spelling of the mode: "none" or "ca".
    pub fn mode(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Ca(_) => "ca",
        }
    }
}

impl std::fmt::Debug for TlsVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Ca(certs) => write!(f, "Ca({} certificates)", certs.len()),
        }
    }
}

/// TLS around the client's TCP connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// The name sent as SNI and, with [`TlsVerify::Ca`], the one the certificate must carry.
    /// None: no SNI, and the server's IP address is what a certificate must carry.
    pub server_name: Option<String>,
    pub verify: TlsVerify,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The build has no TLS (the crate's `tls` feature is off).
    #[error("this build has no TLS support")]
    NotBuilt,
    /// A name that is neither a DNS name nor an IP address.
    #[error("'{0}' is not a DNS name or an IP address")]
    BadName(String),
    /// A CA certificate rustls cannot use as a trust anchor.
    #[error("a CA certificate is not usable for TLS: {0}")]
    BadCa(String),
    /// No certificate in the PEM, or one that cannot be parsed.
    #[error("certificate: {0}")]
    BadCertificate(String),
    /// No private key in the PEM, or one of a kind TLS cannot use.
    #[error("private key: {0}")]
    BadKey(String),
    /// rustls refused the configuration.
    #[error("{0}")]
    Config(String),
}

impl TlsPolicy {
    /// Checks that this build can honour the policy (names, CA certificates).
    pub fn check(&self) -> Result<(), TlsError> {
        #[cfg(feature = "tls")]
        {
            Connector::new(self).map(|_| ())
        }
        #[cfg(not(feature = "tls"))]
        {
            Err(TlsError::NotBuilt)
        }
    }
}

/// The server's TLS certificate chain and key, ready to accept connections.
#[derive(Clone)]
pub struct TlsServer {
    #[cfg(feature = "tls")]
    inner: server::Acceptor,
}

impl TlsServer {
    /// From PEM: the certificate chain (leaf first) and its private key (PKCS#8, SEC1 or
    /// PKCS#1).
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        #[cfg(feature = "tls")]
        {
            Ok(Self {
                inner: server::Acceptor::from_pem(chain, key)?,
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (chain, key);
            Err(TlsError::NotBuilt)
        }
    }

    /// Runs the server's side of the TLS handshake on `stream`.
    #[cfg(feature = "tls")]
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        self.inner.accept(stream).await
    }
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer(..)")
    }
}

impl PartialEq for TlsServer {
    /// The same loaded configuration.
    fn eq(&self, other: &Self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.inner.same(&other.inner)
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = other;
            true
        }
    }
}

impl Eq for TlsServer {}

/// The client's connection to the server: plain TCP, or TLS over it.
#[derive(Debug)]
pub(crate) enum ClientStream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
