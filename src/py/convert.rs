//! Python → Rust argument conversion for JSON-shaped values.
//!
//! Conversion is strict: a value JSON cannot represent (NaN, ±inf, bytes, sets,
//! arbitrary objects) is a `ValidationError`, never a silent `null`, and typed
//! configs go through `serde_json` so `"false"` is not a boolean.

use std::fmt;

use pyo3::prelude::*;
use pythonize::Depythonizer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::errors::invalid;

/// A `serde_json::Value` that refuses non-finite floats.
struct Strict(Value);

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-compatible value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_none<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some((k, Strict(v))) = map.next_entry::<String, Strict>()? {
            out.insert(k, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

/// `field` or `field.path` (where inside the value the problem is).
fn located<E: std::fmt::Display>(field: &str, err: serde_path_to_error::Error<E>) -> (String, E) {
    let path = err.path().to_string();
    let place = if path == "." {
        field.to_string()
    } else {
        format!("{field}.{path}")
    };
    (place, err.into_inner())
}

/// A Python object as JSON (dicts with str keys, lists, str, int, finite float, bool, None).
pub fn json(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let mut de = Depythonizer::from_object(obj);
    serde_path_to_error::deserialize::<_, Strict>(&mut de)
        .map(|s| s.0)
        .map_err(|e| {
            let (place, inner) = located(field, e);
            invalid(format!("{place} must be JSON-compatible: {inner}"))
        })
}

/// An optional dict as a JSON object.
pub fn object(field: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Map<String, Value>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match json(field, o)? {
            Value::Object(m) => Ok(Some(m)),
            _ => Err(invalid(format!("{field} must be a dict"))),
        },
    }
}

/// A typed value from a Python dict, with JSON's strict types (no truthiness).
pub fn typed<T: serde::de::DeserializeOwned>(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<T> {
    let value = json(field, obj)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let (place, inner) = located(field, e);
        invalid(format!("{place}: {inner}"))
    })
}
