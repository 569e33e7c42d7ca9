//! A source file's settings flattened to dotted names (`remote.addr`,
//! `IKESecurityAssociationParameters.EncryptionAlgorithm`), so that the format readers take
//! what they understand and whatever is left is reported by name, never dropped in silence.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::report::Findings;

/// Deeper nesting than this is kept as one opaque value (and reported as such).
const MAX_DEPTH: usize = 8;

/// One leaf value. Strings and data are zeroized on drop: some are secrets.
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Real(f64),
    Str(Zeroizing<String>),
    Data(Zeroizing<Vec<u8>>),
    /// An array: its scalar items (complex items are counted, not kept).
    List(Vec<Value>),
    /// Something with no use here (a date, a UID, a too-deep table, JSON null).
    Other(&'static str),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Real(_) => "a number",
            Self::Str(_) => "a string",
            Self::Data(_) => "data",
            Self::List(_) => "an array",
            Self::Other(what) => what,
        }
    }

    /// A short, non-secret description for findings (`secret` hides strings and data).
    pub(crate) fn describe(&self, secret: bool) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Real(r) => r.to_string(),
            Self::Str(s) if !secret && s.len() <= 80 => format!("\"{}\"", s.escape_debug()),
            Self::Str(s) => format!("<{} characters>", s.chars().count()),
            Self::Data(d) => format!("<{} bytes>", d.len()),
            Self::List(items) if !secret && items.len() <= 8 => {
                let parts: Vec<String> = items.iter().map(|v| v.describe(false)).collect();
                format!("[{}]", parts.join(", "))
            }
            Self::List(items) => format!("<{} items>", items.len()),
            Self::Other(what) => format!("<{what}>"),
        }
    }
}

/// Whether a setting's name says it holds a secret (its value is then never described).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    ["secret", "password", "ppk", "p12", "key"]
        .iter()
        .any(|w| last.contains(w))
        && !last.contains("keepalive")
}

/// The flattened settings still to be taken.
#[derive(Default)]
pub(crate) struct Settings {
    map: BTreeMap<String, Value>,
}

impl Settings {
    pub(crate) fn insert(&mut self, name: String, value: Value) {
        self.map.insert(name, value);
    }

    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    /// Removes and returns every setting named `prefix.*`.
    pub(crate) fn take_prefix(&mut self, prefix: &str) -> Vec<(String, Value)> {
        let dotted = format!("{prefix}.");
        let names: Vec<String> = self
            .map
            .keys()
            .filter(|k| k.starts_with(&dotted))
            .cloned()
            .collect();
        names
            .into_iter()
            .filter_map(|k| self.map.remove(&k).map(|v| (k, v)))
            .collect()
    }

    /// Removes and returns every setting whose name starts with `prefix` (no dot needed).
    pub(crate) fn take_matching(&mut self, prefix: &str) -> Vec<(String, Value)> {
        let names: Vec<String> = self
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        names
            .into_iter()
            .filter_map(|k| self.map.remove(&k).map(|v| (k, v)))
            .collect()
    }

    fn wrong_type(findings: &mut Findings, name: &str, v: &Value, want: &str) {
        findings.lossy(
            name,
            format!("is {} where {want} belongs; ignored", v.type_name()),
        );
    }

    /// A string setting; a value of another type is reported and ignored.
    pub(crate) fn string(
        &mut self,
        name: &str,
        findings: &mut Findings,
    ) -> Option<Zeroizing<String>> {
        match self.take(name)? {
            Value::Str(s) => Some(s),
            other => {
                Self::wrong_type(findings, name, &other, "a string");
                None
            }
        }
    }

    /// A boolean; Apple profiles often write 0/1 integers for these, and both are taken.
    pub(crate) fn boolean(&mut self, name: &str, findings: &mut Findings) -> Option<bool> {
        match self.take(name)? {
            Value::Bool(b) => Some(b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            other => {
                Self::wrong_type(findings, name, &other, "a boolean");
                None
            }
        }
    }

    /// An integer (a numeric string is taken too: some generators quote numbers).
    pub(crate) fn integer(&mut self, name: &str, findings: &mut Findings) -> Option<i64> {
        match self.take(name)? {
            Value::Int(i) => Some(i),
            Value::Str(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            other => {
                Self::wrong_type(findings, name, &other, "an integer");
                None
            }
        }
    }

    /// `integer(name)` when it lies in `range`; outside it the setting is reported (as `shown`)
    /// as lossy and Roam's default stands.
    pub(crate) fn integer_in(
        &mut self,
        name: &str,
        shown: &str,
        range: std::ops::RangeInclusive<i64>,
        findings: &mut Findings,
    ) -> Option<i64> {
        let v = self.integer(name, findings)?;
        if range.contains(&v) {
            return Some(v);
        }
        findings.lossy(
            shown,
            format!(
                "{v} is outside {} to {}; Roam's default used",
                range.start(),
                range.end()
            ),
        );
        None
    }

    /// Reports every setting not taken as unsupported, with `why` as the detail.
    pub(crate) fn report_rest(self, findings: &mut Findings, display_prefix: &str, why: &str) {
        for (name, value) in self.map {
            let shown = name
                .strip_prefix(display_prefix)
                .unwrap_or(&name)
                .to_string();
            let detail = format!("{} ({why})", value.describe(is_secret_name(&name)));
            findings.unsupported(shown, detail);
        }
    }
}

// ---- flattening ----------------------------------------------------------------------------

pub(crate) fn from_json(object: &serde_json::Map<String, serde_json::Value>) -> Settings {
    let mut s = Settings::default();
    for (k, v) in object {
        json_into(&mut s, k.clone(), v, 1);
    }
    s
}

fn json_into(s: &mut Settings, name: String, v: &serde_json::Value, depth: usize) {
    use serde_json::Value as J;
    let leaf = match v {
        J::Object(map) if depth < MAX_DEPTH => {
            for (k, v) in map {
                json_into(s, format!("{name}.{k}"), v, depth + 1);
            }
            return;
        }
        J::Object(_) => Value::Other("a table nested too deep"),
        J::Null => Value::Other("null"),
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(t) => Value::Str(Zeroizing::new(t.clone())),
        J::Array(items) => Value::List(
            items
                .iter()
                .map(|i| match i {
                    J::String(t) => Value::Str(Zeroizing::new(t.clone())),
                    J::Bool(b) => Value::Bool(*b),
                    J::Number(n) => n.as_i64().map_or(Value::Other("a number"), Value::Int),
                    _ => Value::Other("a table"),
                })
                .collect(),
        ),
    };
    s.insert(name, leaf);
}

pub(crate) fn from_plist(dict: &plist::Dictionary, prefix: &str) -> Settings {
    let mut s = Settings::default();
    for (k, v) in dict {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        plist_into(&mut s, name, v, 1);
    }
    s
}

fn plist_scalar(v: &plist::Value) -> Option<Value> {
    use plist::Value as P;
    Some(match v {
        P::Boolean(b) => Value::Bool(*b),
        P::Integer(i) => Value::Int(i.as_signed().unwrap_or(i64::MAX)),
        P::Real(r) => Value::Real(*r),
        P::String(t) => Value::Str(Zeroizing::new(t.clone())),
        P::Data(d) => Value::Data(Zeroizing::new(d.clone())),
        P::Date(_) => Value::Other("a date"),
        P::Uid(_) => Value::Other("a UID"),
        _ => return None,
    })
}

fn plist_into(s: &mut Settings, name: String, v: &plist::Value, depth: usize) {
    use plist::Value as P;
    let leaf = match v {
        P::Dictionary(d) if depth < MAX_DEPTH => {
            for (k, v) in d {
                plist_into(s, format!("{name}.{k}"), v, depth + 1);
            }
            return;
        }
        P::Dictionary(_) => Value::Other("a dictionary nested too deep"),
        P::Array(items) => Value::List(
            items
                .iter()
                .map(|i| plist_scalar(i).unwrap_or(Value::Other("a dictionary")))
                .collect(),
        ),
        other => plist_scalar(other).unwrap_or(Value::Other("an unknown value")),
    };
    s.insert(name, leaf);
}
