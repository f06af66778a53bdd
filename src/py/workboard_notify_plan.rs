//! `NativeWorkboard` bindings of notifications (subscriptions, the durable event
//! log and its cursors) and planning (`specify`, `decompose`). Thin: conversions only.

use pyo3::prelude::*;

use super::run::dispatch;
use super::workboard::{input, scope, NativeWorkboard};
use crate::workboard::EventsQuery;

#[pymethods]
impl NativeWorkboard {
    #[pyo3(signature = (is_async, fields, now_ms = None))]
    fn subscribe_notifications(
        &self,
        py: Python<'_>,
        is_async: bool,
        fields: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let fields = input("subscription", Some(fields))?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.subscribe_notifications(&fields, now_ms)
        })
    }

    #[pyo3(signature = (is_async, board_id = None, card_id = None))]
    fn list_notification_subscriptions(
        &self,
        py: Python<'_>,
        is_async: bool,
        board_id: Option<String>,
        card_id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.list_notification_subscriptions(board_id.as_deref(), card_id.as_deref())
        })
    }

    fn delete_notification_subscription(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.delete_notification_subscription(&id)
        })
    }

    #[pyo3(signature = (is_async, subscription_id = None, board_id = None, card_id = None, limit = None))]
    fn notification_events(
        &self,
        py: Python<'_>,
        is_async: bool,
        subscription_id: Option<String>,
        board_id: Option<String>,
        card_id: Option<String>,
        limit: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let q = EventsQuery {
            subscription_id,
            board_id,
            card_id,
            limit,
        };
        let w = self.core.clone();
        dispatch(py, is_async, move || w.notification_events(&q))
    }

    #[pyo3(signature = (is_async, subscription_id = None, board_id = None, card_id = None, limit = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn advance_notification_events(
        &self,
        py: Python<'_>,
        is_async: bool,
        subscription_id: Option<String>,
        board_id: Option<String>,
        card_id: Option<String>,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let q = EventsQuery {
            subscription_id,
            board_id,
            card_id,
            limit,
        };
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.advance_notification_events(&q, now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, fields, scope_ = None, now_ms = None))]
    fn specify(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        fields: &Bound<'_, PyAny>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let fields = input("specify", Some(fields))?;
        let scope = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.specify(&id, &fields, scope.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, fields, scope_ = None, now_ms = None))]
    fn decompose(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        fields: &Bound<'_, PyAny>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let fields = input("decompose", Some(fields))?;
        let scope = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.decompose(&id, &fields, scope.as_ref(), now_ms)
        })
    }
}
