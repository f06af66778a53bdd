//! `NativeWorkboard` binding of `dispatch_to_queue` (run cards on the worker
//! pool). Thin: conversions only.

use pyo3::prelude::*;

use super::factory::NativeFactory;
use super::run::dispatch;
use super::workboard::NativeWorkboard;
use crate::workboard::QueueDispatchOptions;

#[pymethods]
impl NativeWorkboard {
    #[pyo3(signature = (is_async, factory, board_id = None, limit = None, owner_id = None, ttl_seconds = None, default_agent_id = None, priority = None, max_attempts = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn dispatch_to_queue(
        &self,
        py: Python<'_>,
        is_async: bool,
        factory: &Bound<'_, NativeFactory>,
        board_id: Option<String>,
        limit: Option<i64>,
        owner_id: Option<String>,
        ttl_seconds: Option<f64>,
        default_agent_id: Option<String>,
        priority: Option<i64>,
        max_attempts: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = factory.get().core();
        let opts = QueueDispatchOptions {
            board_id,
            limit,
            owner_id,
            ttl_seconds,
            default_agent_id,
            priority,
            max_attempts,
        };
        let w = self.core.clone();
        dispatch(py, is_async, move || w.dispatch_to_queue(&f, &opts, now_ms))
    }
}
