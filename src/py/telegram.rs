//! `NativeFactory` telegram methods (`factory.telegram`).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::convert;
use super::errors::invalid;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::telegram::TelegramApiPatch;

/// A webhook body: `bytes` or `str` (the Python layer turns `bytearray`/`memoryview` into `bytes`).
fn body_bytes(body: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = body.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = body.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    let kind = body.get_type().name()?;
    Err(invalid(format!("body must be bytes or str, got {kind}")))
}

#[pymethods]
impl NativeFactory {
    #[pyo3(signature = (is_async))]
    fn telegram_api_config(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.telegram_api_config())
    }

    #[pyo3(signature = (is_async, changes, now_ms = None))]
    fn set_telegram_api_config(
        &self,
        py: Python<'_>,
        is_async: bool,
        changes: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let patch: TelegramApiPatch = convert::typed("telegram api config", changes)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.set_telegram_api_config(&patch, now_ms)
        })
    }

    #[pyo3(signature = (is_async, update, agent_key = None, bot_identity = None, now_ms = None))]
    fn ingest_telegram_update(
        &self,
        py: Python<'_>,
        is_async: bool,
        update: &Bound<'_, PyAny>,
        agent_key: Option<String>,
        bot_identity: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let update = if update.is_instance_of::<PyString>() || update.is_instance_of::<PyBytes>() {
            crate::telegram::update::parse_body(&body_bytes(update)?)
                .map_err(super::errors::to_py)?
        } else {
            convert::json("update", update)?
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.ingest_telegram_update(
                &update,
                agent_key.as_deref(),
                bot_identity.as_deref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, body, secret_token, agent_key, now_ms = None))]
    fn handle_telegram_webhook(
        &self,
        py: Python<'_>,
        is_async: bool,
        body: &Bound<'_, PyAny>,
        secret_token: Option<String>,
        agent_key: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let body = body_bytes(body)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.handle_telegram_webhook(&body, secret_token.as_deref(), &agent_key, now_ms)
        })
    }

    #[pyo3(signature = (is_async, agent_key, public_base_url, path, now_ms = None))]
    fn configure_telegram_webhook(
        &self,
        py: Python<'_>,
        is_async: bool,
        agent_key: String,
        public_base_url: String,
        path: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.configure_telegram_webhook(&agent_key, &public_base_url, &path, now_ms)
        })
    }

    #[pyo3(signature = (is_async, agent_key, now_ms = None))]
    fn telegram_webhook_status(
        &self,
        py: Python<'_>,
        is_async: bool,
        agent_key: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.telegram_webhook_status(&agent_key, now_ms)
        })
    }

    #[pyo3(signature = (is_async, agent_key, drop_pending_updates = false, now_ms = None))]
    fn delete_telegram_webhook(
        &self,
        py: Python<'_>,
        is_async: bool,
        agent_key: String,
        drop_pending_updates: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.delete_telegram_webhook(&agent_key, drop_pending_updates, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, token, metadata = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn import_telegram_token(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        token: String,
        metadata: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let metadata = convert::object("metadata", metadata)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.import_telegram_token(&consumer_user_id, &agent_key, &token, metadata, now_ms)
        })
    }

    #[pyo3(signature = (is_async, agent_key, secret_ref = None, now_ms = None))]
    fn reconcile_telegram_bot_identity(
        &self,
        py: Python<'_>,
        is_async: bool,
        agent_key: String,
        secret_ref: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.reconcile_telegram_bot_identity(&agent_key, secret_ref.as_deref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, now_ms = None))]
    fn telegram_onboarding_state(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.telegram_onboarding_state(&consumer_user_id, &agent_key, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key))]
    fn telegram_readiness(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.telegram_readiness(&consumer_user_id, &agent_key)
        })
    }

    #[pyo3(signature = (is_async))]
    fn provider_readiness(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.provider_readiness())
    }

    #[pyo3(signature = (is_async, limit = 100, now_ms = None))]
    fn expire_old_telegram_attachments(
        &self,
        py: Python<'_>,
        is_async: bool,
        limit: i64,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.expire_old_telegram_attachments(limit, now_ms)
        })
    }
}
