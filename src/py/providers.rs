//! `NativeFlyMachines`: the Fly Machines provider seen from Python
//! (wrapped by `agent_factory.fly.FlyMachines`).
//!
//! Thin: argument conversion, the GIL released around every network call, and
//! errors mapped to `agent_factory.errors` — bad input is a `ValidationError`,
//! every other failure a `ProviderError` carrying `status`, `retryable` and
//! `kind` attributes. The API token never leaves the core.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pythonize::pythonize;
use serde::Serialize;

use super::convert;
use super::errors::{internal, invalid, ProviderError as PyProviderError};
use crate::error::{ProviderError, ProviderErrorKind, ProviderResult};
use crate::providers::{
    fly_cleanup, CleanupOptions, FlyConfig, FlyMachines, MachineSpec, Outcome, Provider,
    RetryPolicy, DEFAULT_FLY_BASE_URL,
};

/// Longest timeout or wait accepted from Python (one hour).
const MAX_MS: i64 = 3_600_000;

/// A Fly Machines client for one app.
#[pyclass(module = "agent_factory._native", frozen)]
pub struct NativeFlyMachines {
    inner: Arc<FlyMachines>,
}

/// An [`Outcome`] as a dict: `{"outcome": "done" | "already_gone" | "deferred", "message": str | None}`.
#[derive(Serialize)]
struct OutcomeView {
    outcome: &'static str,
    message: Option<String>,
}

impl From<Outcome> for OutcomeView {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Done => OutcomeView {
                outcome: "done",
                message: None,
            },
            Outcome::AlreadyGone => OutcomeView {
                outcome: "already_gone",
                message: None,
            },
            Outcome::Deferred(m) => OutcomeView {
                outcome: "deferred",
                message: Some(m),
            },
        }
    }
}

fn to_py_err(py: Python<'_>, err: ProviderError) -> PyErr {
    if err.kind == ProviderErrorKind::InvalidInput {
        return invalid(err.message);
    }
    let kind = match err.kind {
        ProviderErrorKind::InvalidInput => "invalid_input",
        ProviderErrorKind::Http => "http",
        ProviderErrorKind::Transport => "transport",
        ProviderErrorKind::Protocol => "protocol",
    };
    let py_err = PyProviderError::new_err(err.message);
    let value = py_err.value(py);
    let attrs = value
        .setattr("status", err.status)
        .and_then(|_| value.setattr("retryable", err.retryable))
        .and_then(|_| value.setattr("kind", kind));
    match attrs {
        Ok(()) => py_err,
        Err(e) => e,
    }
}

/// Run a provider call without the GIL and convert its result to Python objects.
fn call<T, F>(py: Python<'_>, work: F) -> PyResult<Py<PyAny>>
where
    T: Serialize + Send,
    F: FnOnce() -> ProviderResult<T> + Send,
{
    let out = py.detach(work).map_err(|e| to_py_err(py, e))?;
    pythonize(py, &out)
        .map(Bound::unbind)
        .map_err(|e| internal(format!("result conversion failed: {e}")))
}

fn millis(name: &str, value: i64, min: i64) -> PyResult<Duration> {
    if !(min..=MAX_MS).contains(&value) {
        return Err(invalid(format!(
            "{name} must be between {min} and {MAX_MS}, got {value}"
        )));
    }
    Ok(Duration::from_millis(value.unsigned_abs()))
}

fn count(name: &str, value: i64, max: i64) -> PyResult<u32> {
    if !(0..=max).contains(&value) {
        return Err(invalid(format!(
            "{name} must be between 0 and {max}, got {value}"
        )));
    }
    u32::try_from(value).map_err(|_| invalid(format!("{name} is out of range")))
}

#[pymethods]
impl NativeFlyMachines {
    #[new]
    #[pyo3(signature = (app_name, api_token, base_url = None, timeout_ms = 30_000, max_retries = 3,
        backoff_ms = 250, max_backoff_ms = 10_000, retry_after_cap_ms = 30_000, user_agent = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        app_name: String,
        api_token: String,
        base_url: Option<String>,
        timeout_ms: i64,
        max_retries: i64,
        backoff_ms: i64,
        max_backoff_ms: i64,
        retry_after_cap_ms: i64,
        user_agent: Option<String>,
    ) -> PyResult<Self> {
        let config = FlyConfig {
            app_name,
            api_token,
            base_url: base_url.unwrap_or_else(|| DEFAULT_FLY_BASE_URL.to_string()),
            timeout: millis("timeout_ms", timeout_ms, 1)?,
            retry: RetryPolicy {
                max_retries: count("max_retries", max_retries, 10)?,
                base_delay: millis("backoff_ms", backoff_ms, 0)?,
                max_delay: millis("max_backoff_ms", max_backoff_ms, 0)?,
                retry_after_cap: millis("retry_after_cap_ms", retry_after_cap_ms, 0)?,
            },
            user_agent,
        };
        let inner = py
            .detach(|| FlyMachines::new(config))
            .map_err(|e| to_py_err(py, e))?;
        Ok(NativeFlyMachines {
            inner: Arc::new(inner),
        })
    }

    /// The Fly app managed.
    #[getter]
    fn app_name(&self) -> String {
        self.inner.app_name().to_string()
    }

    /// The Machines API base URL.
    #[getter]
    fn base_url(&self) -> String {
        self.inner.base_url().to_string()
    }

    /// `GET /apps/{app}`: fail unless the app is reachable with this token.
    fn check_access(&self, py: Python<'_>) -> PyResult<()> {
        let p = self.inner.clone();
        py.detach(move || p.check_access())
            .map_err(|e| to_py_err(py, e))
    }

    /// Every machine of the app, as dicts.
    fn list_machines(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let p = self.inner.clone();
        call(py, move || p.list_machines())
    }

    /// One machine (dict) or `None` when it does not exist.
    fn get_machine(&self, py: Python<'_>, machine_id: String) -> PyResult<Py<PyAny>> {
        let p = self.inner.clone();
        call(py, move || p.get_machine(&machine_id))
    }

    /// Create a machine from a spec dict (`name`, `region`, `image`, `guest`, `env`, `mount`).
    fn create_machine(&self, py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let spec: MachineSpec = convert::typed("spec", spec)?;
        let p = self.inner.clone();
        call(py, move || p.create_machine(&spec))
    }

    /// `POST …/cordon`; an outcome dict.
    fn cordon_machine(&self, py: Python<'_>, machine_id: String) -> PyResult<Py<PyAny>> {
        let p = self.inner.clone();
        call(py, move || {
            p.cordon_machine(&machine_id).map(OutcomeView::from)
        })
    }

    /// `POST …/stop`; an outcome dict.
    fn stop_machine(&self, py: Python<'_>, machine_id: String) -> PyResult<Py<PyAny>> {
        let p = self.inner.clone();
        call(py, move || {
            p.stop_machine(&machine_id).map(OutcomeView::from)
        })
    }

    /// `DELETE …/machines/{id}`; an outcome dict.
    fn destroy_machine(&self, py: Python<'_>, machine_id: String) -> PyResult<Py<PyAny>> {
        let p = self.inner.clone();
        call(py, move || {
            p.destroy_machine(&machine_id).map(OutcomeView::from)
        })
    }

    /// Poll until the machine is in one of `states`; an outcome dict.
    #[pyo3(signature = (machine_id, states, timeout_ms = 30_000, poll_ms = 500))]
    fn wait_for_state(
        &self,
        py: Python<'_>,
        machine_id: String,
        states: Vec<String>,
        timeout_ms: i64,
        poll_ms: i64,
    ) -> PyResult<Py<PyAny>> {
        if states.is_empty() {
            return Err(invalid("states must name at least one machine state"));
        }
        let timeout = millis("timeout_ms", timeout_ms, 0)?;
        let poll = millis("poll_ms", poll_ms, 1)?;
        let p = self.inner.clone();
        call(py, move || {
            let wanted: Vec<&str> = states.iter().map(String::as_str).collect();
            p.wait_for_state(&machine_id, &wanted, timeout, poll)
                .map(OutcomeView::from)
        })
    }

    /// Every volume of the app, as dicts.
    fn list_volumes(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let p = self.inner.clone();
        call(py, move || p.list_volumes())
    }

    /// Create a volume; a dict.
    fn create_volume(
        &self,
        py: Python<'_>,
        name: String,
        region: String,
        size_gb: i64,
    ) -> PyResult<Py<PyAny>> {
        let size = u64::try_from(size_gb)
            .map_err(|_| invalid(format!("size_gb must be positive, got {size_gb}")))?;
        let p = self.inner.clone();
        call(py, move || p.create_volume(&name, &region, size))
    }

    /// `DELETE …/volumes/{id}`; an outcome dict.
    fn delete_volume(&self, py: Python<'_>, volume_id: String) -> PyResult<Py<PyAny>> {
        let p = self.inner.clone();
        call(py, move || {
            p.delete_volume(&volume_id).map(OutcomeView::from)
        })
    }

    /// Destroy every machine and volume of the app and verify; a report dict.
    #[pyo3(signature = (machine_concurrency = 6, volume_concurrency = 16, settle_timeout_ms = 30_000,
        poll_interval_ms = 1_000, volume_attempts = 3))]
    fn cleanup(
        &self,
        py: Python<'_>,
        machine_concurrency: i64,
        volume_concurrency: i64,
        settle_timeout_ms: i64,
        poll_interval_ms: i64,
        volume_attempts: i64,
    ) -> PyResult<Py<PyAny>> {
        let options = CleanupOptions {
            machine_concurrency: count("machine_concurrency", machine_concurrency.max(1), 64)?
                as usize,
            volume_concurrency: count("volume_concurrency", volume_concurrency.max(1), 64)?
                as usize,
            settle_timeout: millis("settle_timeout_ms", settle_timeout_ms, 0)?,
            poll_interval: millis("poll_interval_ms", poll_interval_ms, 1)?,
            volume_attempts: count("volume_attempts", volume_attempts.max(1), 20)?,
        };
        let p = self.inner.clone();
        call(py, move || fly_cleanup(p.as_ref(), &options))
    }

    fn __repr__(&self) -> String {
        format!(
            "FlyMachines(app_name={:?}, base_url={:?})",
            self.inner.app_name(),
            self.inner.base_url()
        )
    }
}
