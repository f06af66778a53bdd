//! `factory.metrics()` and the process-wide counters, seen from Python.

use pyo3::prelude::*;

use super::factory::NativeFactory;
use super::run::dispatch;

#[pymethods]
impl NativeFactory {
    /// Gauges of this database at `now_ms` and the process's counters (a dict).
    #[pyo3(signature = (is_async, now_ms = None))]
    fn metrics(&self, py: Python<'_>, is_async: bool, now_ms: Option<i64>) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.metrics(now_ms))
    }
}

/// The process-wide counters alone (no database read), as a dict.
#[pyfunction]
pub(super) fn metrics_counters(py: Python<'_>) -> PyResult<Py<PyAny>> {
    dispatch(py, false, || Ok(crate::metrics::counters()))
}
