//! `NativeWorkboard` bindings of hand-offs (`complete`, `block`), operator
//! recovery (`unblock`, `reassign`, `reclaim`, `promote`), `dispatch`,
//! diagnostics and the worker context. Thin: conversions only.

use pyo3::prelude::*;

use super::run::dispatch;
use super::workboard::{input, scope, NativeWorkboard};

#[pymethods]
impl NativeWorkboard {
    #[pyo3(signature = (is_async, id, fields, scope_ = None, now_ms = None))]
    fn complete(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        fields: &Bound<'_, PyAny>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let fields = input("complete input", Some(fields))?;
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.complete(&id, &fields, s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, reason = None, scope_ = None, now_ms = None))]
    fn block(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        reason: Option<String>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.block(&id, reason.as_deref(), s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, scope_ = None, now_ms = None))]
    fn unblock(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || w.unblock(&id, s.as_ref(), now_ms))
    }

    #[pyo3(signature = (is_async, id, agent_id = None, status = None, reset_failures = None, reason = None, scope_ = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn reassign(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        agent_id: Option<String>,
        status: Option<String>,
        reset_failures: Option<bool>,
        reason: Option<String>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.reassign(
                &id,
                agent_id.as_deref(),
                status.as_deref(),
                reset_failures,
                reason.as_deref(),
                s.as_ref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, id, status = None, reason = None, scope_ = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn reclaim(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        status: Option<String>,
        reason: Option<String>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.reclaim(
                &id,
                status.as_deref(),
                reason.as_deref(),
                s.as_ref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, id, force = false, reason = None, scope_ = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn promote(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        force: bool,
        reason: Option<String>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.promote(&id, force, reason.as_deref(), s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, now_ms = None, board_id = None))]
    fn dispatch(
        &self,
        py: Python<'_>,
        is_async: bool,
        now_ms: Option<i64>,
        board_id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.dispatch(now_ms, board_id.as_deref())
        })
    }

    #[pyo3(signature = (is_async, now_ms = None))]
    fn diagnostics(
        &self,
        py: Python<'_>,
        is_async: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.diagnostics(now_ms))
    }

    #[pyo3(signature = (is_async, now_ms = None))]
    fn refresh_diagnostics(
        &self,
        py: Python<'_>,
        is_async: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.refresh_diagnostics(now_ms))
    }

    #[pyo3(signature = (is_async, id, now_ms = None))]
    fn build_worker_context(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.build_worker_context(&id, now_ms))
    }
}
