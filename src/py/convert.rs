//! Python → Rust argument conversion for JSON-shaped values.

use pyo3::prelude::*;
use pythonize::depythonize;
use serde_json::{Map, Value};

use super::errors::invalid;

/// A Python object as JSON (dicts, lists, str, int, float, bool, None).
pub fn json(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    depythonize::<Value>(obj).map_err(|e| invalid(format!("{field} must be JSON-compatible: {e}")))
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

/// A serde-deserialisable value from a Python dict.
pub fn typed<T: serde::de::DeserializeOwned>(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<T> {
    depythonize::<T>(obj).map_err(|e| invalid(format!("{field}: {e}")))
}
