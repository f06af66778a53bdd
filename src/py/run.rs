//! Running core calls from Python: blocking (GIL released) or as an awaitable.
//!
//! Every native method takes `is_async`. Blocking calls run the core inside
//! `py.detach`; async calls return an asyncio future whose work runs on tokio's
//! blocking pool (never on a tokio worker thread). If the awaiting task is
//! cancelled the work still finishes and commits; leases make that safe (an
//! unreported claim expires and is recovered).

use pyo3::prelude::*;
use pythonize::pythonize;
use serde::Serialize;

use super::errors::{internal, to_py};
use crate::error::Result;

fn to_object<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    pythonize(py, value)
        .map(Bound::unbind)
        .map_err(|e| internal(format!("result conversion failed: {e}")))
}

/// Run `work` and return its result as a Python object, or an awaitable of it.
pub fn dispatch<T, F>(py: Python<'_>, is_async: bool, work: F) -> PyResult<Py<PyAny>>
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    if !is_async {
        let out = py.detach(work).map_err(to_py)?;
        return to_object(py, &out);
    }
    let fut = pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let out = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| internal(format!("background task failed: {e}")))?
            .map_err(to_py)?;
        Python::attach(|py| to_object(py, &out))
    })?;
    Ok(fut.unbind())
}
