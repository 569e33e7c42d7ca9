//! Identities in strongSwan's syntax (IP address, FQDN, user@domain, distinguished name such
//! as `C=CH, O=Example, CN=client`) and their IDi/IDr wire form (RFC 7296 §3.5).

use crate::wire::IdType;

/// Why an identity string or IDi/IDr payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid identity '{0}': {1}")]
    Invalid(String, &'static str),
    #[error("unsupported identity type {0}")]
    UnsupportedType(IdType),
}

/// An IKE identity.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(std::net::Ipv4Addr),
    Ipv6(std::net::Ipv6Addr),
    Fqdn(String),
    Email(String),
    /// An X.500 distinguished name, kept as its DER encoding.
    Dn(Vec<u8>),
    KeyId(Vec<u8>),
}

impl Identity {
    /// Parses strongSwan's syntax: an IP address, `@fqdn` or `fqdn`, `user@domain`, a DN
    /// (`C=CH, O=Example, CN=client`, in that order, encoded as ID_DER_ASN1_DN), or `@#hex`
    /// for a key ID.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        Err(IdentityError::Invalid(s.to_string(), "not implemented"))
    }
    /// The IDi/IDr type.
    pub fn id_type(&self) -> IdType {
        IdType::ID_FQDN
    }
    /// The IDi/IDr identification data.
    pub fn to_wire(&self) -> Vec<u8> {
        Vec::new()
    }
    /// Reads an IDi/IDr payload.
    pub fn from_wire(id_type: IdType, data: &[u8]) -> Result<Self, IdentityError> {
        let _ = data;
        Err(IdentityError::UnsupportedType(id_type))
    }
}

impl std::fmt::Display for Identity {
    /// strongSwan's syntax (a DN as `C=CH, O=Example, CN=client`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("?")
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({self})")
    }
}
