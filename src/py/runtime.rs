//! Bindings for the Python worker runtime: lease heartbeats on a Rust thread,
//! and snapshots of directories (archive and restore).
//!
//! `NativeHeartbeat` wraps [`crate::workers::heartbeat::Heartbeat`]; its thread
//! never takes the GIL, so a handler that holds the GIL or blocks an event loop
//! keeps its lease. Stopping joins the thread with the GIL released.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;

use super::errors::{invalid, to_py};
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::snapshots::{PrepareSnapshot, RestoreMode};
use crate::workers::heartbeat::{Heartbeat, HeartbeatStatus};

/// Heartbeats of one lease on a background thread (wrapped by
/// `agent_factory.WorkerHandle.start_heartbeats`).
#[pyclass(module = "agent_factory._native", frozen)]
pub struct NativeHeartbeat {
    inner: Mutex<Heartbeat>,
    message_id: String,
}

impl NativeHeartbeat {
    fn status(&self) -> HeartbeatStatus {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status()
    }
}

#[pymethods]
impl NativeHeartbeat {
    /// Stop beating (at once) and wait for the thread; returns the final status dict.
    fn stop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let inner = &self.inner;
        let status = py.detach(|| inner.lock().unwrap_or_else(|e| e.into_inner()).stop());
        dispatch(py, false, move || Ok(status))
    }

    /// The status so far: `beats`, `failures`, `lost`, `running`, `last_error`.
    fn status_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let status = self.status();
        dispatch(py, false, move || Ok(status))
    }

    /// Whether the lease was lost (a beat was refused, or the message is gone).
    #[getter]
    fn lost(&self) -> bool {
        self.status().lost
    }

    /// Successful beats so far.
    #[getter]
    fn beats(&self) -> u64 {
        self.status().beats
    }

    /// Whether the thread is still beating.
    #[getter]
    fn running(&self) -> bool {
        self.status().running
    }

    /// The most recent error, if any.
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.status().last_error
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let s = self.status();
        format!(
            "Heartbeats(message_id={:?}, beats={}, lost={}, running={})",
            self.message_id,
            s.beats,
            if s.lost { "True" } else { "False" },
            if s.running { "True" } else { "False" }
        )
    }
}

#[pymethods]
impl NativeFactory {
    /// Start heartbeating a lease every `interval_ms` on a Rust thread.
    fn start_heartbeats(
        &self,
        py: Python<'_>,
        worker_id: String,
        message_id: String,
        lease_id: String,
        interval_ms: i64,
    ) -> PyResult<NativeHeartbeat> {
        let interval = u64::try_from(interval_ms)
            .map(Duration::from_millis)
            .map_err(|_| invalid(format!("interval_ms must be positive, got {interval_ms}")))?;
        let f = self.core();
        let hb = py
            .detach(|| Heartbeat::start(f, &worker_id, &message_id, &lease_id, interval))
            .map_err(to_py)?;
        Ok(NativeHeartbeat {
            inner: Mutex::new(hb),
            message_id,
        })
    }

    #[pyo3(signature = (is_async, worker_id, workspace_id, agent_key, conversation_id, reason, path, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn snapshot_directory(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        workspace_id: String,
        agent_key: String,
        conversation_id: Option<String>,
        reason: String,
        path: std::path::PathBuf,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let req = PrepareSnapshot {
            worker_id,
            workspace_id,
            agent_key,
            conversation_id,
            reason,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.snapshot_directory(&req, &path, now_ms)
        })
    }

    #[pyo3(signature = (is_async, workspace_id, agent_key, conversation_id, path, mode = "replace", now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn restore_latest_snapshot(
        &self,
        py: Python<'_>,
        is_async: bool,
        workspace_id: String,
        agent_key: String,
        conversation_id: Option<String>,
        path: std::path::PathBuf,
        mode: &str,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let mode = RestoreMode::parse(mode).map_err(to_py)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.restore_latest_snapshot(
                &workspace_id,
                &agent_key,
                conversation_id.as_deref(),
                &path,
                mode,
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, snapshot_id, path, mode = "replace", now_ms = None))]
    fn restore_snapshot(
        &self,
        py: Python<'_>,
        is_async: bool,
        snapshot_id: String,
        path: std::path::PathBuf,
        mode: &str,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let mode = RestoreMode::parse(mode).map_err(to_py)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.restore_snapshot_by_id(&snapshot_id, &path, mode, now_ms)
        })
    }
}
