//! `NativeFactory` identity methods: bindings, pairing codes, user-agent views.

use pyo3::prelude::*;

use super::convert;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::identity::BindRequest;

#[pymethods]
impl NativeFactory {
    #[pyo3(signature = (is_async, consumer_user_id, agent_key, bot_identity = None, source = None,
        telegram_user_id = None, telegram_chat_id = None, metadata = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn bind_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        bot_identity: Option<String>,
        source: Option<String>,
        telegram_user_id: Option<String>,
        telegram_chat_id: Option<String>,
        metadata: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let req = BindRequest {
            consumer_user_id,
            agent_key,
            bot_identity,
            source: source.unwrap_or_else(|| "api".into()),
            telegram_user_id,
            telegram_chat_id,
            metadata: convert::object("metadata", metadata)?,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.bind_user_agent(&req, now_ms))
    }

    #[pyo3(signature = (is_async, consumer_user_id, now_ms = None))]
    fn revoke_user_agent_binding(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.revoke_user_agent_binding(&consumer_user_id, now_ms)
        })
    }

    fn resolve_agent_for_user(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.resolve_agent_for_user(&consumer_user_id)
        })
    }

    #[pyo3(signature = (is_async, bot_identity = None, telegram_user_id = None, telegram_chat_id = None))]
    fn resolve_agent_for_telegram(
        &self,
        py: Python<'_>,
        is_async: bool,
        bot_identity: Option<String>,
        telegram_user_id: Option<String>,
        telegram_chat_id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.resolve_agent_for_telegram(
                bot_identity.as_deref(),
                telegram_user_id.as_deref(),
                telegram_chat_id.as_deref(),
            )
        })
    }

    fn get_user_agent_binding(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.get_user_agent_binding(&consumer_user_id)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, limit = 100))]
    fn list_user_bindings(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_user_bindings(&consumer_user_id, limit)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, ttl_ms = None, now_ms = None))]
    fn create_pairing_code(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        ttl_ms: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.create_pairing_code(&consumer_user_id, &agent_key, ttl_ms, now_ms)
        })
    }

    #[pyo3(signature = (is_async, code, bot_identity, telegram_user_id, telegram_chat_id, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn consume_pairing_code(
        &self,
        py: Python<'_>,
        is_async: bool,
        code: String,
        bot_identity: Option<String>,
        telegram_user_id: String,
        telegram_chat_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.consume_pairing_code(
                &code,
                bot_identity.as_deref(),
                &telegram_user_id,
                &telegram_chat_id,
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, code, now_ms = None))]
    fn pairing_code_status(
        &self,
        py: Python<'_>,
        is_async: bool,
        code: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.pairing_code_status(&code, now_ms))
    }

    #[pyo3(signature = (is_async, consumer_user_id, include_disabled = true, now_ms = None))]
    fn list_user_agents(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        include_disabled: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_user_agents(&consumer_user_id, include_disabled, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, now_ms = None))]
    fn get_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.get_user_agent(&consumer_user_id, &agent_key, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, now_ms = None))]
    fn active_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.active_user_agent(&consumer_user_id, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, now_ms = None))]
    fn user_agents_overview(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.user_agents_overview(&consumer_user_id, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, ttl_ms = None, now_ms = None))]
    fn create_user_agent_pairing(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        ttl_ms: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.create_user_agent_pairing(&consumer_user_id, &agent_key, ttl_ms, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, now_ms = None))]
    fn user_agent_pairing_status(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.user_agent_pairing_status(&consumer_user_id, &agent_key, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, statuses = None, limit = 100))]
    fn list_queue_items_for_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        statuses: Option<Vec<String>>,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_queue_items_for_user_agent(
                &consumer_user_id,
                &agent_key,
                statuses.as_deref(),
                limit,
            )
        })
    }

    #[pyo3(signature = (is_async, conversation_id, limit = 100))]
    fn list_queue_items_for_conversation(
        &self,
        py: Python<'_>,
        is_async: bool,
        conversation_id: String,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_queue_items_for_conversation(&conversation_id, limit)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, limit = 100))]
    fn user_agent_conversation_view(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.user_agent_conversation_view(&consumer_user_id, &agent_key, limit)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, content, metadata = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn send_message_to_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        content: String,
        metadata: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let metadata = convert::object("metadata", metadata)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.send_message_to_user_agent(
                &consumer_user_id,
                &agent_key,
                &content,
                metadata.as_ref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, limit = None, now_ms = None))]
    fn list_snapshots_for_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_snapshots_for_user_agent(&consumer_user_id, &agent_key, limit, now_ms)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, now_ms = None))]
    fn latest_snapshot_for_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.latest_snapshot_for_user_agent(&consumer_user_id, &agent_key, now_ms)
        })
    }
}
