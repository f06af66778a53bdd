//! `NativeFactory` snapshot methods.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::errors::invalid;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::snapshots::{PrepareSnapshot, SnapshotSource};

#[pymethods]
impl NativeFactory {
    #[pyo3(signature = (is_async, worker_id, workspace_id, agent_key, conversation_id, reason, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn prepare_snapshot_upload(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        workspace_id: String,
        agent_key: String,
        conversation_id: Option<String>,
        reason: String,
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
            f.prepare_snapshot_upload(&req, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, snapshot_id, sha256, size_bytes, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn finalize_snapshot_upload(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        snapshot_id: String,
        sha256: String,
        size_bytes: i64,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.finalize_snapshot_upload(&worker_id, &snapshot_id, &sha256, size_bytes, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, snapshot_id, error, now_ms = None))]
    fn fail_snapshot_upload(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        snapshot_id: String,
        error: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.fail_snapshot_upload(&worker_id, &snapshot_id, &error, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, workspace_id, agent_key, conversation_id, reason, data = None, path = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn upload_snapshot(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        workspace_id: String,
        agent_key: String,
        conversation_id: Option<String>,
        reason: String,
        data: Option<&Bound<'_, PyBytes>>,
        path: Option<std::path::PathBuf>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let source = match (data, path) {
            (Some(d), None) => SnapshotSource::Bytes(d.as_bytes().to_vec()),
            (None, Some(p)) => SnapshotSource::File(p),
            _ => return Err(invalid("exactly one of data (bytes) or path must be given")),
        };
        let req = PrepareSnapshot {
            worker_id,
            workspace_id,
            agent_key,
            conversation_id,
            reason,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.upload_snapshot(&req, &source, now_ms)
        })
    }

    #[pyo3(signature = (is_async, workspace_id, agent_key, conversation_id, now_ms = None))]
    fn latest_snapshot_for_restore(
        &self,
        py: Python<'_>,
        is_async: bool,
        workspace_id: String,
        agent_key: String,
        conversation_id: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.latest_snapshot_for_restore(
                &workspace_id,
                &agent_key,
                conversation_id.as_deref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, conversation_id, limit = None, now_ms = None))]
    fn list_snapshots_for_conversation(
        &self,
        py: Python<'_>,
        is_async: bool,
        conversation_id: Option<String>,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_snapshots_for_conversation(conversation_id.as_deref(), limit, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, limit = None, now_ms = None))]
    fn list_snapshots_for_worker(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_snapshots_for_worker(&worker_id, limit, now_ms)
        })
    }

    #[pyo3(signature = (is_async, snapshot_id, now_ms = None))]
    fn get_snapshot(
        &self,
        py: Python<'_>,
        is_async: bool,
        snapshot_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.get_snapshot(&snapshot_id, now_ms))
    }

    #[pyo3(signature = (is_async, limit = 100, now_ms = None))]
    fn expire_old_snapshots(
        &self,
        py: Python<'_>,
        is_async: bool,
        limit: i64,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.expire_old_snapshots(limit, now_ms))
    }
}
