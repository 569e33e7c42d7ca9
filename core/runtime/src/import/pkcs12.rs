//! Decrypts a PKCS#12 bundle (OpenSSL 3's PBES2 AES-256-CBC + PBKDF2-SHA256, or the legacy
//! PBE-SHA1-3DES) into PEM: our private key, our certificate chain (ours first, then
//! intermediates) and the self-signed CA certificates that came with it.
//!
//! The decoding is `p12-keystore`'s (which caps the KDF and MAC iteration counts); the key is
//! copied into zeroizing buffers at once. Errors never quote the password or the key.

use p12_keystore::error::Error as P12Error;
use p12_keystore::Pkcs12Archive;
use pem_rfc7468::LineEnding;
use roam_proto::crypto::cert::Certificate;
use roam_proto::crypto::sign::PrivateKey;
use zeroize::Zeroizing;

/// More certificates than this in one bundle is not an identity but an attack.
const MAX_CERTS: usize = 16;

/// Why a PKCS#12 bundle could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    #[error("wrong password, or the file is damaged (its MAC does not match)")]
    BadPassword,
    #[error("not a PKCS#12 file Roam can read: {0}")]
    Format(String),
    #[error("no private key in it")]
    NoKey,
    #[error("its private key is not one Roam can use: {0}")]
    Key(String),
    #[error("none of its certificates belongs to its private key")]
    NoCertificate,
    #[error("more than {MAX_CERTS} certificates in it")]
    TooManyCertificates,
}

/// What a PKCS#12 bundle held, as PEM.
pub struct Pkcs12Identity {
    /// PKCS#8 `PRIVATE KEY` PEM.
    pub key_pem: Zeroizing<String>,
    /// Our certificate, then the intermediates that lead from it toward a root.
    pub chain_pem: String,
    /// Self-signed certificates in the bundle (trust anchors), if any.
    pub ca_pem: Option<String>,
}

fn pem(label: &str, der: &[u8]) -> String {
    pem_rfc7468::encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// Decrypts `der` with `password` and picks the key, its certificate and the rest.
pub fn decrypt(der: &[u8], password: &str) -> Result<Pkcs12Identity, Pkcs12Error> {
    let archive = Pkcs12Archive::from_pkcs12(der, password).map_err(|e| match e {
        P12Error::MacError(_) | P12Error::UnpadError => Pkcs12Error::BadPassword,
        other => Pkcs12Error::Format(other.to_string()),
    })?;
    if archive.certs.len() > MAX_CERTS {
        return Err(Pkcs12Error::TooManyCertificates);
    }
    let certs: Vec<Certificate> = archive
        .certs
        .iter()
        .filter_map(|bag| Certificate::from_der(bag.cert.as_der()).ok())
        .collect();
    let mut found = None;
    for bag in &archive.keys {
        let key_pem = Zeroizing::new(pem("PRIVATE KEY", bag.key.as_der()));
        let key = match PrivateKey::from_pem(key_pem.as_bytes()) {
            Ok(k) => k,
            Err(e) => {
                found.get_or_insert(Err(Pkcs12Error::Key(e.to_string())));
                continue;
            }
        };
        match certs.iter().position(|c| key.matches(c)) {
            Some(i) => {
                found = Some(Ok((key_pem, i)));
                break;
            }
            None => {
                found.get_or_insert(Err(Pkcs12Error::NoCertificate));
            }
        }
    }
    let (key_pem, leaf) = found.ok_or(Pkcs12Error::NoKey)??;

    // The chain: from our certificate, each issuer in turn among the non-self-signed ones.
    let self_signed = |c: &Certificate| c.subject_der() == c.issuer_der();
    let mut chain = vec![leaf];
    while chain.len() < certs.len() {
        let Some(last) = chain.last().and_then(|&i| certs.get(i)) else {
            break;
        };
        let issuer = last.issuer_der();
        match certs
            .iter()
            .enumerate()
            .position(|(i, c)| !chain.contains(&i) && !self_signed(c) && c.subject_der() == issuer)
        {
            Some(next) => chain.push(next),
            None => break,
        }
    }
    let mut chain_pem = String::new();
    let mut ca_pem = String::new();
    for &i in &chain {
        if let Some(c) = certs.get(i) {
            chain_pem.push_str(&pem("CERTIFICATE", c.der()));
        }
    }
    for (i, c) in certs.iter().enumerate() {
        if chain.contains(&i) {
            continue;
        }
        if self_signed(c) {
            ca_pem.push_str(&pem("CERTIFICATE", c.der()));
        } else {
            // An intermediate off our path: still sent, the server may need it.
            chain_pem.push_str(&pem("CERTIFICATE", c.der()));
        }
    }
    Ok(Pkcs12Identity {
        key_pem,
        chain_pem,
        ca_pem: (!ca_pem.is_empty()).then_some(ca_pem),
    })
}
