//! Identities in strongSwan's syntax (IP address, FQDN, user@domain, distinguished name such
//! as `C=CH, O=Example, CN=client`) and their IDi/IDr wire form (RFC 7296 §3.5).

use std::net::IpAddr;

use crate::wire::IdType;

mod dn;

pub(crate) use dn::equal as dn_equal;

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
        let invalid = |why| IdentityError::Invalid(s.to_string(), why);
        let t = s.trim();
        if t.is_empty() {
            return Err(invalid("empty identity"));
        }
        if t.len() > MAX_ID_LEN {
            return Err(invalid("identity too long"));
        }
        if let Some(hex) = t.strip_prefix("@#") {
            let bytes = hex_decode(hex)
                .ok_or_else(|| invalid("key ID is not an even number of hex digits"))?;
            if bytes.is_empty() {
                return Err(invalid("empty key ID"));
            }
            return Ok(Identity::KeyId(bytes));
        }
        if let Some(name) = t.strip_prefix('@') {
            check_name(name).map_err(invalid)?;
            return Ok(Identity::Fqdn(name.to_string()));
        }
        if t.contains('=') {
            return dn::encode(t).map(Identity::Dn).map_err(invalid);
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(match ip {
                IpAddr::V4(a) => Identity::Ipv4(a),
                IpAddr::V6(a) => Identity::Ipv6(a),
            });
        }
        check_name(t).map_err(invalid)?;
        if let Some((user, domain)) = t.split_once('@') {
            if user.is_empty() || domain.is_empty() {
                return Err(invalid("e-mail address needs a user and a domain"));
            }
            return Ok(Identity::Email(t.to_string()));
        }
        Ok(Identity::Fqdn(t.to_string()))
    }
    /// The IDi/IDr type.
    pub fn id_type(&self) -> IdType {
        match self {
            Identity::Ipv4(_) => IdType::ID_IPV4_ADDR,
            Identity::Ipv6(_) => IdType::ID_IPV6_ADDR,
            Identity::Fqdn(_) => IdType::ID_FQDN,
            Identity::Email(_) => IdType::ID_RFC822_ADDR,
            Identity::Dn(_) => IdType::ID_DER_ASN1_DN,
            Identity::KeyId(_) => IdType::ID_KEY_ID,
        }
    }
    /// The IDi/IDr identification data.
    pub fn to_wire(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::Email(s) => s.as_bytes().to_vec(),
            Identity::Dn(der) => der.clone(),
            Identity::KeyId(k) => k.clone(),
        }
    }
    /// Reads an IDi/IDr payload.
    pub fn from_wire(id_type: IdType, data: &[u8]) -> Result<Self, IdentityError> {
        let invalid = |why| IdentityError::Invalid(printable(data), why);
        if data.len() > MAX_ID_LEN {
            return Err(invalid("identity too long"));
        }
        match id_type {
            IdType::ID_IPV4_ADDR => <[u8; 4]>::try_from(data)
                .map(|o| Identity::Ipv4(o.into()))
                .map_err(|_| invalid("IPv4 identity is not 4 bytes")),
            IdType::ID_IPV6_ADDR => <[u8; 16]>::try_from(data)
                .map(|o| Identity::Ipv6(o.into()))
                .map_err(|_| invalid("IPv6 identity is not 16 bytes")),
            IdType::ID_FQDN | IdType::ID_RFC822_ADDR => {
                let s = std::str::from_utf8(data).map_err(|_| invalid("identity is not UTF-8"))?;
                if s.is_empty() {
                    return Err(invalid("empty identity"));
                }
                if s.chars().any(char::is_control) {
                    return Err(invalid("identity contains control characters"));
                }
                Ok(if id_type == IdType::ID_FQDN {
                    Identity::Fqdn(s.to_string())
                } else {
                    Identity::Email(s.to_string())
                })
            }
            IdType::ID_DER_ASN1_DN => {
                dn::decode(data).map_err(invalid)?;
                Ok(Identity::Dn(data.to_vec()))
            }
            IdType::ID_KEY_ID if data.is_empty() => Err(invalid("empty key ID")),
            IdType::ID_KEY_ID => Ok(Identity::KeyId(data.to_vec())),
            other => Err(IdentityError::UnsupportedType(other)),
        }
    }

    /// Whether this is a DN equal to the DER name `der`: the same RDNs in the same order,
    /// values compared ignoring case and string type.
    pub fn dn_equals(&self, der: &[u8]) -> bool {
        matches!(self, Identity::Dn(own) if dn::equal(own, der))
    }
}

/// The longest identity we parse or accept (text or wire).
const MAX_ID_LEN: usize = 4096;

/// An FQDN or e-mail address: not empty, no whitespace or control characters.
fn check_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("empty name")
    } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("name contains whitespace or control characters")
    } else {
        Ok(())
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Wire data shown in an error: the text if printable, else hex.
fn printable(data: &[u8]) -> String {
    let shown = data.get(..64).unwrap_or(data);
    match std::str::from_utf8(shown) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => shown.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

impl std::fmt::Display for Identity {
    /// strongSwan's syntax (a DN as `C=CH, O=Example, CN=client`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            // An FQDN that would read back as something else gets strongSwan's '@' prefix.
            Identity::Fqdn(s) if s.contains(['@', '=']) || s.parse::<IpAddr>().is_ok() => {
                write!(f, "@{s}")
            }
            Identity::Fqdn(s) | Identity::Email(s) => f.write_str(s),
            Identity::Dn(der) => match dn::to_text(der) {
                Ok(text) => f.write_str(&text),
                Err(_) => f.write_str("(invalid ID_DER_ASN1_DN)"),
            },
            Identity::KeyId(k) => {
                f.write_str("@#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(id: &Identity) {
        let back = Identity::from_wire(id.id_type(), &id.to_wire()).unwrap();
        assert_eq!(&back, id);
        assert_eq!(&Identity::parse(&id.to_string()).unwrap(), id, "{id}");
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            Identity::parse("192.0.2.1").unwrap(),
            Identity::Ipv4("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            Identity::parse("2001:db8::1").unwrap(),
            Identity::Ipv6("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            Identity::parse("@vpn.example.org").unwrap(),
            Identity::Fqdn("vpn.example.org".into())
        );
        assert_eq!(
            Identity::parse("vpn.example.org").unwrap(),
            Identity::Fqdn("vpn.example.org".into())
        );
        assert_eq!(
            Identity::parse("user@example.org").unwrap(),
            Identity::Email("user@example.org".into())
        );
        assert_eq!(
            Identity::parse("@#0aFF").unwrap(),
            Identity::KeyId(vec![0x0a, 0xff])
        );
        let dn = Identity::parse("C=CH, O=ref-lab, CN=client").unwrap();
        assert_eq!(dn.id_type(), IdType::ID_DER_ASN1_DN);
        assert_eq!(dn.to_string(), "C=CH, O=ref-lab, CN=client");
        assert_eq!(
            dn.to_wire(),
            [
                0x30, 0x30, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'C',
                b'H', 0x31, 0x10, 0x30, 0x0e, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x13, 0x07, b'r', b'e',
                b'f', b'-', b'l', b'a', b'b', 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03,
                0x13, 0x06, b'c', b'l', b'i', b'e', b'n', b't'
            ]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s: &str| match Identity::parse(s) {
            Err(IdentityError::Invalid(_, why)) => why,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(err(""), "empty identity");
        assert_eq!(err("@#abc"), "key ID is not an even number of hex digits");
        assert_eq!(err("@#"), "empty key ID");
        assert_eq!(err("@"), "empty name");
        assert_eq!(err("a b"), "name contains whitespace or control characters");
        assert_eq!(err("user@"), "e-mail address needs a user and a domain");
        assert_eq!(err("FOO=bar"), "unknown attribute in distinguished name");
    }

    #[test]
    fn from_wire_checks_lengths_and_types() {
        assert!(Identity::from_wire(IdType::ID_IPV4_ADDR, &[1, 2, 3]).is_err());
        assert!(Identity::from_wire(IdType::ID_IPV6_ADDR, &[0; 4]).is_err());
        assert!(Identity::from_wire(IdType::ID_FQDN, &[0xff, 0xfe]).is_err());
        assert!(Identity::from_wire(IdType::ID_FQDN, b"").is_err());
        assert!(Identity::from_wire(IdType::ID_DER_ASN1_DN, &[0x30, 0x03, 0x31]).is_err());
        assert_eq!(
            Identity::from_wire(IdType::ID_DER_ASN1_GN, &[1]),
            Err(IdentityError::UnsupportedType(IdType::ID_DER_ASN1_GN))
        );
        assert_eq!(
            Identity::from_wire(IdType(200), &[1]),
            Err(IdentityError::UnsupportedType(IdType(200)))
        );
    }

    #[test]
    fn round_trips() {
        for s in [
            "192.0.2.1",
            "2001:db8::1",
            "vpn.example.org",
            "user@example.org",
            "@#00112233",
            "C=CH, O=ref-lab, CN=client",
            r"C=CH, O=Acme\, Inc., OU=VPN, CN=Zoë, E=a@b.org, serialNumber=42, DC=org, UID=u1, ST=BE, L=Bern",
        ] {
            let id = Identity::parse(s).unwrap();
            assert_eq!(id.to_string(), s);
            round_trip(&id);
        }
        // An FQDN that looks like an address keeps strongSwan's '@' prefix.
        round_trip(&Identity::Fqdn("192.0.2.1".into()));
        round_trip(&Identity::Fqdn("a@b".into()));
    }

    #[test]
    fn debug_shows_the_text() {
        assert_eq!(
            format!("{:?}", Identity::parse("@x.org").unwrap()),
            "Identity(x.org)"
        );
    }

    proptest! {
        #[test]
        fn fqdn_email_ip_round_trip(label in "[a-z0-9][a-z0-9-]{0,20}", tld in "[a-z]{2,6}", a: [u8; 4], b: [u8; 16]) {
            round_trip(&Identity::Fqdn(format!("{label}.{tld}")));
            round_trip(&Identity::Email(format!("{label}@{label}.{tld}")));
            round_trip(&Identity::Ipv4(a.into()));
            round_trip(&Identity::Ipv6(b.into()));
        }

        #[test]
        fn dn_round_trips(values in proptest::collection::vec("[A-Za-z0-9 ,.\\-_\\\\äé]{1,12}", 1..5)) {
            let keys = ["C", "O", "OU", "CN", "L"];
            let text: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = v.trim().replace('\\', "\\\\").replace(',', "\\,");
                    let v = if v.is_empty() { "x".to_string() } else { v };
                    format!("{}={}", keys[i % keys.len()], v)
                })
                .collect();
            let text = text.join(", ");
            let id = Identity::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text);
            round_trip(&id);
        }

        #[test]
        fn from_wire_never_panics(t: u8, data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(id) = Identity::from_wire(IdType(t), &data) {
                prop_assert_eq!(id.to_wire(), data);
                let _ = id.to_string();
            }
        }
    }
}
