//! `NativeFactory` queue, conversation and hydration methods.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::convert;
use super::errors::invalid;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::queue::{ClaimOptions, EnqueueRequest};
use crate::workers::WorkerMode;

fn mode(m: Option<&str>) -> PyResult<Option<WorkerMode>> {
    m.map(|m| WorkerMode::parse(m).map_err(|e| invalid(e.to_string())))
        .transpose()
}

fn enqueue_item(index: usize, item: &Bound<'_, PyAny>) -> PyResult<EnqueueRequest> {
    let d = item
        .cast::<PyDict>()
        .map_err(|_| invalid(format!("item {index} must be a dict")))?;
    const KEYS: &[&str] = &[
        "conversation_id",
        "agent_key",
        "payload",
        "priority",
        "scheduled_for",
        "max_attempts",
    ];
    for k in d.keys() {
        let k: String = k
            .extract()
            .map_err(|_| invalid(format!("item {index} has a non-string key")))?;
        if !KEYS.contains(&k.as_str()) {
            return Err(invalid(format!(
                "item {index} has an unknown key {k:?}; allowed keys are {}",
                KEYS.join(", ")
            )));
        }
    }
    let text = |k: &str| -> PyResult<String> {
        d.get_item(k)?
            .ok_or_else(|| invalid(format!("item {index}: {k} is required")))?
            .extract()
            .map_err(|_| invalid(format!("item {index}: {k} must be a string")))
    };
    let int = |k: &str| -> PyResult<Option<i64>> {
        match d.get_item(k)? {
            None => Ok(None),
            Some(v) if v.is_none() => Ok(None),
            Some(v) => v
                .extract()
                .map(Some)
                .map_err(|_| invalid(format!("item {index}: {k} must be an int"))),
        }
    };
    let payload = d
        .get_item("payload")?
        .ok_or_else(|| invalid(format!("item {index}: payload is required")))?;
    Ok(EnqueueRequest {
        conversation_id: text("conversation_id")?,
        agent_key: text("agent_key")?,
        payload: convert::json(&format!("item {index}: payload"), &payload)?,
        priority: int("priority")?,
        scheduled_for: int("scheduled_for")?,
        max_attempts: int("max_attempts")?,
    })
}

#[pymethods]
impl NativeFactory {
    #[pyo3(signature = (is_async, conversation_id, agent_key, payload, priority = None, scheduled_for = None, max_attempts = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        py: Python<'_>,
        is_async: bool,
        conversation_id: String,
        agent_key: String,
        payload: &Bound<'_, PyAny>,
        priority: Option<i64>,
        scheduled_for: Option<i64>,
        max_attempts: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let req = EnqueueRequest {
            conversation_id,
            agent_key,
            payload: convert::json("payload", payload)?,
            priority,
            scheduled_for,
            max_attempts,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.enqueue(&req, now_ms))
    }

    #[pyo3(signature = (is_async, items, now_ms = None))]
    fn enqueue_many(
        &self,
        py: Python<'_>,
        is_async: bool,
        items: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let list = items
            .cast::<PyList>()
            .map_err(|_| invalid("items must be a list of dicts"))?;
        let reqs = list
            .iter()
            .enumerate()
            .map(|(i, item)| enqueue_item(i, &item))
            .collect::<PyResult<Vec<_>>>()?;
        let f = self.core();
        dispatch(py, is_async, move || f.enqueue_many(&reqs, now_ms))
    }

    #[pyo3(signature = (is_async, worker_id, conversation_id = None, mode = None, now_ms = None))]
    fn claim(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        conversation_id: Option<String>,
        mode: Option<&str>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let opts = ClaimOptions {
            conversation_id,
            mode: self::mode(mode)?,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.claim(&worker_id, &opts, now_ms))
    }

    #[pyo3(signature = (is_async, worker_id, message_id, lease_id, now_ms = None))]
    fn heartbeat(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        message_id: String,
        lease_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.heartbeat(&worker_id, &message_id, &lease_id, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, message_id, lease_id, now_ms = None))]
    fn complete(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        message_id: String,
        lease_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.complete(&worker_id, &message_id, &lease_id, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, message_id, lease_id, conversation_id = None, mode = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn complete_and_claim(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        message_id: String,
        lease_id: String,
        conversation_id: Option<String>,
        mode: Option<&str>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let opts = ClaimOptions {
            conversation_id,
            mode: self::mode(mode)?,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.complete_and_claim(&worker_id, &message_id, &lease_id, &opts, now_ms)
        })
    }

    #[pyo3(signature = (is_async, worker_id, message_id, lease_id, error, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        message_id: String,
        lease_id: String,
        error: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.fail(&worker_id, &message_id, &lease_id, &error, now_ms)
        })
    }

    #[pyo3(signature = (is_async, limit = 100, now_ms = None))]
    fn release_stuck_jobs(
        &self,
        py: Python<'_>,
        is_async: bool,
        limit: i64,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.release_stuck_jobs(limit, now_ms))
    }

    #[pyo3(signature = (is_async, now_ms = None))]
    fn queue_stats(
        &self,
        py: Python<'_>,
        is_async: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.queue_stats(now_ms))
    }

    fn list_jobs(
        &self,
        py: Python<'_>,
        is_async: bool,
        status: String,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.list_jobs(&status, limit))
    }

    fn get_job(&self, py: Python<'_>, is_async: bool, message_id: String) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.get_job(&message_id))
    }

    #[pyo3(signature = (is_async, message_id, now_ms = None))]
    fn requeue(
        &self,
        py: Python<'_>,
        is_async: bool,
        message_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.requeue(&message_id, now_ms))
    }

    #[pyo3(signature = (is_async, now_ms = None))]
    fn conversation_counts(
        &self,
        py: Python<'_>,
        is_async: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.conversation_counts(now_ms))
    }

    #[pyo3(signature = (is_async, limit, now_ms = None))]
    fn active_conversations(
        &self,
        py: Python<'_>,
        is_async: bool,
        limit: i64,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.active_conversations(limit, now_ms))
    }

    fn has_queued_jobs(
        &self,
        py: Python<'_>,
        is_async: bool,
        conversation_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.has_queued_jobs(&conversation_id))
    }

    fn list_conversation_jobs(
        &self,
        py: Python<'_>,
        is_async: bool,
        conversation_id: String,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_conversation_jobs(&conversation_id, limit)
        })
    }

    fn conversation_view(
        &self,
        py: Python<'_>,
        is_async: bool,
        conversation_id: String,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.conversation_view(&conversation_id, limit)
        })
    }

    #[pyo3(signature = (is_async, conversation_id, messages, workspace_id = None, now_ms = None))]
    fn append_conversation_messages(
        &self,
        py: Python<'_>,
        is_async: bool,
        conversation_id: String,
        messages: &Bound<'_, PyAny>,
        workspace_id: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            role: String,
            content: String,
            at: Option<i64>,
        }
        let entries: Vec<Entry> = convert::typed("messages", messages)?;
        let entries: Vec<(String, String, Option<i64>)> = entries
            .into_iter()
            .map(|e| (e.role, e.content, e.at))
            .collect();
        let f = self.core();
        dispatch(py, is_async, move || {
            f.append_conversation_messages(
                &conversation_id,
                &entries,
                workspace_id.as_deref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, worker_id, message_id, lease_id, workspace_id = "default".to_string(), now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn hydrate(
        &self,
        py: Python<'_>,
        is_async: bool,
        worker_id: String,
        message_id: String,
        lease_id: String,
        workspace_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.hydrate(&worker_id, &message_id, &lease_id, &workspace_id, now_ms)
        })
    }

    #[pyo3(signature = (is_async, message_id, workspace_id = "default".to_string()))]
    fn operator_hydration_bundle(
        &self,
        py: Python<'_>,
        is_async: bool,
        message_id: String,
        workspace_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.operator_hydration_bundle(&message_id, &workspace_id)
        })
    }
}
