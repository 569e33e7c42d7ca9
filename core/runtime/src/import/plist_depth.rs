//! Reads a plist (XML or binary) into a `plist::Value` with its nesting bounded: the plist
//! crate's own `Value` builder recurses once per level, and a hostile file of nested arrays
//! overflows the stack. Here the tree is built through serde with the depth counted, so
//! the recursion stops at [`MAX_DEPTH`] with an error (the crate's event readers themselves
//! are iterative).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserialize, MapAccess, SeqAccess, Visitor};

/// A configuration profile nests a handful of levels (profile, payload, IKEv2, SA
/// parameters, on-demand rules); 32 is far beyond any real one.
pub(crate) const MAX_DEPTH: usize = 32;

thread_local! {
    /// How deep the value being built on this thread is (plist's `from_bytes` takes no seed).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Parses `bytes` as a plist, refusing nesting deeper than [`MAX_DEPTH`].
pub(crate) fn parse(bytes: &[u8]) -> Result<plist::Value, plist::Error> {
    DEPTH.with(|d| d.set(0));
    plist::from_bytes::<Bounded>(bytes).map(|b| b.0)
}

/// One level deeper for as long as it lives.
struct Deeper;

impl Deeper {
    fn enter<E: de::Error>() -> Result<Self, E> {
        let depth = DEPTH.with(|d| {
            let v = d.get() + 1;
            d.set(v);
            v
        });
        let guard = Self;
        if depth > MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(guard)
    }
}

impl Drop for Deeper {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// A `plist::Value` built with the depth counted.
struct Bounded(plist::Value);

impl<'de> Deserialize<'de> for Bounded {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _level = Deeper::enter()?;
        d.deserialize_any(Level).map(Bounded)
    }
}

struct Level;

impl<'de> Visitor<'de> for Level {
    type Value = plist::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plist value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(plist::Value::Boolean(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(plist::Value::Integer(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(plist::Value::Integer(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(plist::Value::Real(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(plist::Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(plist::Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(plist::Value::Data(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        Ok(plist::Value::Data(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(plist::Value::String(String::new()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Bounded(v)) = seq.next_element::<Bounded>()? {
            items.push(v);
        }
        Ok(plist::Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut dict = plist::Dictionary::new();
        while let Some(key) = map.next_key::<String>()? {
            let Bounded(value) = map.next_value::<Bounded>()?;
            dict.insert(key, value);
        }
        Ok(plist::Value::Dictionary(dict))
    }
}
