//! `NativeFactory` worker registry methods.

use pyo3::prelude::*;

use super::convert;
use super::errors::invalid;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::workers::{Assignment, AssignmentUpdate, WorkerMode, WorkerStateInput};

#[pymethods]
impl NativeFactory {
    #[pyo3(signature = (is_async, worker_id, provider, status, load, mode = None, scheduled_shutdown_at = None,
        stopped_at = None, machine_id = None, app_name = None, region = None, volume_id = None, assignment = None,
        clear_assignment = false, clear_last_snapshot_id = false, clear_machine_ref = false, clear_volume_id = false,
        stop_reason = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn upsert_worker_state(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        provider: String,
        status: String,
        load: i64,
        mode: Option<&str>,
        scheduled_shutdown_at: Option<i64>,
        stopped_at: Option<i64>,
        machine_id: Option<String>,
        app_name: Option<String>,
        region: Option<String>,
        volume_id: Option<String>,
        assignment: Option<&Bound<'_, PyAny>>,
        clear_assignment: bool,
        clear_last_snapshot_id: bool,
        clear_machine_ref: bool,
        clear_volume_id: bool,
        stop_reason: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let assignment = match (assignment, clear_assignment) {
            (Some(a), false) if !a.is_none() => {
                AssignmentUpdate::Set(convert::typed::<Assignment>("assignment", a)?)
            }
            (_, true) => AssignmentUpdate::Clear,
            _ => AssignmentUpdate::Keep,
        };
        let input = WorkerStateInput {
            worker_id,
            provider,
            status,
            load,
            mode: mode
                .map(|m| WorkerMode::parse(m).map_err(|e| invalid(e.to_string())))
                .transpose()?,
            scheduled_shutdown_at,
            stopped_at,
            machine_id,
            app_name,
            region,
            volume_id,
            assignment,
            clear_last_snapshot_id,
            clear_machine_ref,
            clear_volume_id,
            stop_reason,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.upsert_worker_state(input, now_ms))
    }

    fn get_worker(&self, py: Python<'_>, is_async: bool, worker_id: String) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.get_worker(&worker_id))
    }

    #[pyo3(signature = (is_async, status = None, limit = 1000))]
    fn list_workers(
        &self,
        py: Python<'_>,
        is_async: bool,
        status: Option<String>,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_workers(status.as_deref(), limit)
        })
    }

    #[pyo3(signature = (is_async, worker_id, touch = false, now_ms = None))]
    fn control_state(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        touch: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.control_state(&worker_id, touch, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, now_ms = None))]
    fn touch_worker(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.touch_worker(&worker_id, now_ms))
    }

    fn worker_stats(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.worker_stats())
    }
}
