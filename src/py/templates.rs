//! `NativeFactory` templates methods.

use pyo3::prelude::*;

use super::convert;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::templates::{TemplateInput, TemplateUpdate};

#[pymethods]
impl NativeFactory {
    #[pyo3(signature = (is_async, title, text, tags, actor_user_id, enabled = true, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_message_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        title: String,
        text: String,
        tags: Vec<String>,
        actor_user_id: String,
        enabled: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let input = TemplateInput {
            title,
            text,
            tags,
            enabled,
            actor_user_id,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.create_message_template(&input, now_ms)
        })
    }

    #[pyo3(signature = (is_async, template_id, actor_user_id, title = None, text = None, tags = None,
        enabled = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn update_message_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        template_id: String,
        actor_user_id: String,
        title: Option<String>,
        text: Option<String>,
        tags: Option<Vec<String>>,
        enabled: Option<bool>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let update = TemplateUpdate {
            title,
            text,
            tags,
            enabled,
            actor_user_id,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.update_message_template(&template_id, &update, now_ms)
        })
    }

    fn delete_message_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        template_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.delete_message_template(&template_id)
        })
    }

    fn get_message_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        template_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.get_message_template(&template_id))
    }

    #[pyo3(signature = (is_async, include_disabled = false, limit = 100))]
    fn list_message_templates(
        &self,
        py: Python<'_>,
        is_async: bool,
        include_disabled: bool,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_message_templates(include_disabled, limit)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, template_id, metadata = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn send_message_template_to_user_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        template_id: String,
        metadata: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let metadata = convert::object("metadata", metadata)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.send_message_template_to_user_agent(
                &consumer_user_id,
                &agent_key,
                &template_id,
                metadata.as_ref(),
                now_ms,
            )
        })
    }
}
