//! Distinguished names: strongSwan's text form (`C=CH, O=ref-lab, CN=client`) to and from the
//! DER `Name` of ID_DER_ASN1_DN and X.509 subjects, and the semantic comparison of two names.
//!
//! Encoding follows what strongSwan (and so its `pki` tool) writes, so that a DN identity is
//! byte-identical to the subject of a certificate made from the same string: RDNs in written
//! order, one attribute per RDN, a PrintableString when the value fits one and a UTF8String
//! otherwise, and an IA5String for the e-mail address attribute.

use der::asn1::{Any, ObjectIdentifier};
use der::{Encode, Tag};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The largest DN text or DER we accept (an IKE payload cannot carry more anyway).
const MAX_DN_LEN: usize = 4096;

/// How an attribute value is encoded.
#[derive(Clone, Copy)]
enum StringKind {
    /// PrintableString when every character allows it, else UTF8String.
    Directory,
    /// IA5String (ASCII only).
    Ia5,
}

struct AttrDef {
    /// Accepted keys; the first is the one we print.
    names: &'static [&'static str],
    oid: ObjectIdentifier,
    kind: StringKind,
}

const ATTRS: &[AttrDef] = &[
    AttrDef {
        names: &["C"],
        oid: ObjectIdentifier::new_unwrap("2.5.4.6"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["ST"],
        oid: ObjectIdentifier::new_unwrap("2.5.4.8"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["L"],
        oid: ObjectIdentifier::new_unwrap("2.5.4.7"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["O"],
        oid: ObjectIdentifier::new_unwrap("2.5.4.10"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["OU"],
        oid: ObjectIdentifier::new_unwrap("2.5.4.11"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["CN"],
        oid: ObjectIdentifier::new_unwrap("2.5.4.3"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["E", "emailAddress", "Email"],
        oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1"),
        kind: StringKind::Ia5,
    },
    AttrDef {
        names: &["serialNumber", "SN"],
        oid: ObjectIdentifier::new_unwrap("2.5.4.5"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["DC"],
        oid: ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
        kind: StringKind::Directory,
    },
    AttrDef {
        names: &["UID"],
        oid: ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1"),
        kind: StringKind::Directory,
    },
];

/// One attribute of a decoded name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    /// The OID's content octets.
    pub oid: Vec<u8>,
    /// The value's universal tag number.
    pub tag: u32,
    /// The value's content octets.
    pub value: Vec<u8>,
}

/// Parses the text form into the DER `Name`.
pub(crate) fn encode(text: &str) -> Result<Vec<u8>, &'static str> {
    if text.len() > MAX_DN_LEN {
        return Err("distinguished name too long");
    }
    let mut rdns = Vec::new();
    for part in split_unescaped(text, ',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty RDN in distinguished name");
        }
        let (key, raw_value) = part.split_once('=').ok_or("RDN without '='")?;
        let key = key.trim();
        let def = ATTRS
            .iter()
            .find(|d| d.names.iter().any(|n| n.eq_ignore_ascii_case(key)))
            .ok_or("unknown attribute in distinguished name")?;
        let value = unescape(raw_value.trim());
        if value.is_empty() {
            return Err("empty attribute value in distinguished name");
        }
        let tag = match def.kind {
            StringKind::Directory if value.chars().all(is_printable_string_char) => {
                Tag::PrintableString
            }
            StringKind::Directory => Tag::Utf8String,
            StringKind::Ia5 if value.is_ascii() => Tag::Ia5String,
            StringKind::Ia5 => return Err("e-mail attribute must be ASCII"),
        };
        let mut atv = def.oid.to_der().map_err(|_| "cannot encode OID")?;
        atv.extend(tlv(tag, value.as_bytes())?);
        rdns.extend(tlv(Tag::Set, &tlv(Tag::Sequence, &atv)?)?);
    }
    if rdns.is_empty() {
        return Err("empty distinguished name");
    }
    tlv(Tag::Sequence, &rdns)
}

/// Decodes a DER `Name` into its RDNs (each a list of attributes).
pub(crate) fn decode(der: &[u8]) -> Result<Vec<Vec<Attr>>, &'static str> {
    if der.len() > MAX_DN_LEN {
        return Err("distinguished name too long");
    }
    let (rest, name) = X509Name::from_der(der).map_err(|_| "malformed distinguished name")?;
    if !rest.is_empty() {
        return Err("trailing data after distinguished name");
    }
    Ok(name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| Attr {
                    oid: atv.attr_type().as_bytes().to_vec(),
                    tag: atv.attr_value().tag().0,
                    value: atv.attr_value().data.to_vec(),
                })
                .collect()
        })
        .collect())
}

/// strongSwan's text form of a DER `Name`; commas and backslashes in values are escaped
/// so that the text parses back to the same name.
pub(crate) fn to_text(der: &[u8]) -> Result<String, &'static str> {
    let rdns = decode(der)?;
    let mut out = String::new();
    for attr in rdns.iter().flatten() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        match ATTRS
            .iter()
            .find(|d| d.oid.as_bytes() == attr.oid.as_slice())
        {
            Some(def) => out.push_str(def.names.first().copied().unwrap_or("?")),
            None => match ObjectIdentifier::from_bytes(&attr.oid) {
                Ok(oid) => out.push_str(&oid.to_string()),
                Err(_) => out.push('?'),
            },
        }
        out.push('=');
        match attr_text(attr) {
            Some(s) => {
                for c in s.chars() {
                    match c {
                        ',' | '\\' => {
                            out.push('\\');
                            out.push(c);
                        }
                        c if c.is_control() => out.push('?'),
                        c => out.push(c),
                    }
                }
            }
            None => {
                out.push('#');
                for b in &attr.value {
                    out.push_str(&format!("{b:02x}"));
                }
            }
        }
    }
    Ok(out)
}

/// Whether two DER names are the same name: the same RDNs in the same order, attribute
/// types equal and string values equal ignoring case and the string type.
pub(crate) fn equal(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (Ok(a), Ok(b)) = (decode(a), decode(b)) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().zip(&b).all(|(ra, rb)| {
            ra.len() == rb.len()
                && ra
                    .iter()
                    .zip(rb)
                    .all(|(x, y)| x.oid == y.oid && attr_equal(x, y))
        })
}

fn attr_equal(a: &Attr, b: &Attr) -> bool {
    match (attr_text(a), attr_text(b)) {
        (Some(x), Some(y)) => x.trim().to_lowercase() == y.trim().to_lowercase(),
        _ => a.tag == b.tag && a.value == b.value,
    }
}

/// The value as text if it is one of the string types we read.
fn attr_text(attr: &Attr) -> Option<&str> {
    let t = attr.tag;
    let is_string = t == tag_number(Tag::Utf8String)
        || t == tag_number(Tag::PrintableString)
        || t == tag_number(Tag::Ia5String)
        || t == tag_number(Tag::TeletexString)
        || t == tag_number(Tag::NumericString)
        || t == tag_number(Tag::VisibleString);
    if is_string {
        std::str::from_utf8(&attr.value).ok()
    } else {
        None
    }
}

fn tag_number(tag: Tag) -> u32 {
    tag.number().value()
}

/// A DER TLV of `tag` around `content`.
fn tlv(tag: Tag, content: &[u8]) -> Result<Vec<u8>, &'static str> {
    Any::new(tag, content)
        .and_then(|any| any.to_der())
        .map_err(|_| "value too long for DER")
}

/// PrintableString's alphabet (X.680 §41.4).
fn is_printable_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// Splits at `sep` where it is not preceded by a backslash escape.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes backslash escapes (`\,` -> `,`, `\\` -> `\`).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_written_order_with_strongswan_string_types() {
        let der = encode("C=CH, O=ref-lab, CN=client").unwrap();
        let rdns = decode(&der).unwrap();
        assert_eq!(rdns.len(), 3);
        assert_eq!(rdns[0][0].oid, [0x55, 0x04, 0x06]);
        assert_eq!(rdns[0][0].tag, 19); // PrintableString
        assert_eq!(rdns[2][0].value, b"client");
        // A value outside PrintableString's alphabet becomes a UTF8String.
        let der = encode("CN=a_b, E=x@y.org").unwrap();
        let rdns = decode(&der).unwrap();
        assert_eq!(rdns[0][0].tag, 12);
        assert_eq!(rdns[1][0].tag, 22); // IA5String
    }

    #[test]
    fn escaped_comma_stays_in_the_value() {
        let der = encode(r"O=Acme\, Inc., CN=x").unwrap();
        let rdns = decode(&der).unwrap();
        assert_eq!(rdns[0][0].value, b"Acme, Inc.");
        assert_eq!(to_text(&der).unwrap(), r"O=Acme\, Inc., CN=x");
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(
            encode("XX=1"),
            Err("unknown attribute in distinguished name")
        );
        assert_eq!(
            encode("CN="),
            Err("empty attribute value in distinguished name")
        );
        assert_eq!(encode("CN=a,,O=b"), Err("empty RDN in distinguished name"));
        assert_eq!(encode("E=ü@x"), Err("e-mail attribute must be ASCII"));
    }

    #[test]
    fn equality_ignores_case_and_string_type() {
        let a = encode("C=CH, O=ref-lab, CN=Client").unwrap();
        let b = encode("c=ch, o=REF-LAB, cn=client").unwrap();
        assert!(equal(&a, &b));
        let utf8 = [
            0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, b'a',
            b'b',
        ];
        assert!(equal(&encode("CN=AB").unwrap(), &utf8));
        assert!(!equal(&encode("CN=AB, O=x").unwrap(), &utf8));
        assert!(!equal(&encode("O=AB").unwrap(), &utf8));
        assert!(!equal(&utf8, &[0x30, 0x00, 0x01]));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode(&[0x30, 0x05, 0x31]).is_err());
        assert!(decode(&[]).is_err());
    }
}
