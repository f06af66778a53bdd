//! `NativeFactory` push methods (`factory.push`): thin wrappers; schedules and
//! suggested times arrive as dicts and are parsed by the core's
//! [`Schedule::from_json`].

use pyo3::prelude::*;

use super::convert;
use super::errors::to_py;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::push::{
    parse_timezone, NewPushJob, NewPushTemplate, PushJobFromTemplate, PushJobPatch,
    PushTemplatePatch, Schedule,
};

fn schedule(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Schedule> {
    let value = convert::json(field, obj)?;
    Schedule::from_json(field, &value).map_err(to_py)
}

fn optional_schedule(field: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Schedule>> {
    match obj {
        Some(o) if !o.is_none() => schedule(field, o).map(Some),
        _ => Ok(None),
    }
}

fn schedules(field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<Schedule>> {
    let value = convert::json(field, obj)?;
    Schedule::list_from_json(field, &value).map_err(to_py)
}

#[pymethods]
impl NativeFactory {
    #[pyo3(signature = (is_async, schedule, timezone, after_ms))]
    fn push_next_run_at(
        &self,
        py: Python<'_>,
        is_async: bool,
        schedule: &Bound<'_, PyAny>,
        timezone: String,
        after_ms: i64,
    ) -> PyResult<Py<PyAny>> {
        let s = self::schedule("schedule", schedule)?;
        dispatch(py, is_async, move || {
            crate::push::next_run_at(&s, parse_timezone(&timezone)?, after_ms)
        })
    }

    #[pyo3(signature = (is_async, company_id, template_key, title, text, periodicity, suggested_times, enabled, actor_user_id, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_create_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        company_id: String,
        template_key: String,
        title: String,
        text: String,
        periodicity: String,
        suggested_times: &Bound<'_, PyAny>,
        enabled: bool,
        actor_user_id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let input = NewPushTemplate {
            company_id,
            template_key,
            title,
            text,
            periodicity,
            suggested_times: schedules("suggested_times", suggested_times)?,
            enabled,
            actor_user_id,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.create_push_template(&input, now_ms))
    }

    #[pyo3(signature = (is_async, template_id, actor_user_id, title = None, text = None, periodicity = None, suggested_times = None, enabled = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_update_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        template_id: String,
        actor_user_id: String,
        title: Option<String>,
        text: Option<String>,
        periodicity: Option<String>,
        suggested_times: Option<&Bound<'_, PyAny>>,
        enabled: Option<bool>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let patch = PushTemplatePatch {
            title,
            text,
            periodicity,
            suggested_times: match suggested_times {
                Some(o) if !o.is_none() => Some(schedules("suggested_times", o)?),
                _ => None,
            },
            enabled,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.update_push_template(&template_id, &patch, &actor_user_id, now_ms)
        })
    }

    #[pyo3(signature = (is_async, template_id))]
    fn push_delete_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        template_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.delete_push_template(&template_id))
    }

    #[pyo3(signature = (is_async, template_id))]
    fn push_get_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        template_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.get_push_template(&template_id))
    }

    #[pyo3(signature = (is_async, company_id, include_disabled))]
    fn push_list_templates(
        &self,
        py: Python<'_>,
        is_async: bool,
        company_id: String,
        include_disabled: bool,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_push_templates(&company_id, include_disabled)
        })
    }

    #[pyo3(signature = (is_async, company_id, consumer_user_id, title, text, timezone, schedule, periodicity, enabled, agent_key = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_create_job(
        &self,
        py: Python<'_>,
        is_async: bool,
        company_id: String,
        consumer_user_id: String,
        title: String,
        text: String,
        timezone: String,
        schedule: &Bound<'_, PyAny>,
        periodicity: Option<String>,
        enabled: bool,
        agent_key: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let input = NewPushJob {
            company_id,
            consumer_user_id,
            title,
            text,
            periodicity,
            timezone,
            schedule: self::schedule("schedule", schedule)?,
            enabled,
            agent_key,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.create_push_job(&input, now_ms))
    }

    #[pyo3(signature = (is_async, company_id, consumer_user_id, template_id, timezone, schedule, enabled, agent_key = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_create_job_from_template(
        &self,
        py: Python<'_>,
        is_async: bool,
        company_id: String,
        consumer_user_id: String,
        template_id: String,
        timezone: String,
        schedule: Option<&Bound<'_, PyAny>>,
        enabled: bool,
        agent_key: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let input = PushJobFromTemplate {
            company_id,
            consumer_user_id,
            template_id,
            timezone,
            schedule: optional_schedule("schedule", schedule)?,
            enabled,
            agent_key,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.create_push_job_from_template(&input, now_ms)
        })
    }

    #[pyo3(signature = (is_async, job_id, title = None, text = None, periodicity = None, timezone = None, schedule = None, enabled = None, agent_key = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_update_job(
        &self,
        py: Python<'_>,
        is_async: bool,
        job_id: String,
        title: Option<String>,
        text: Option<String>,
        periodicity: Option<String>,
        timezone: Option<String>,
        schedule: Option<&Bound<'_, PyAny>>,
        enabled: Option<bool>,
        agent_key: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let patch = PushJobPatch {
            title,
            text,
            periodicity,
            timezone,
            schedule: optional_schedule("schedule", schedule)?,
            enabled,
        };
        let f = self.core();
        dispatch(py, is_async, move || {
            f.update_push_job(&job_id, &patch, agent_key.as_deref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, job_id, enabled, agent_key = None, now_ms = None))]
    fn push_set_job_enabled(
        &self,
        py: Python<'_>,
        is_async: bool,
        job_id: String,
        enabled: bool,
        agent_key: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.set_push_job_enabled(&job_id, enabled, agent_key.as_deref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, job_id, agent_key = None))]
    fn push_delete_job(
        &self,
        py: Python<'_>,
        is_async: bool,
        job_id: String,
        agent_key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.delete_push_job(&job_id, agent_key.as_deref())
        })
    }

    #[pyo3(signature = (is_async, job_id, agent_key = None))]
    fn push_get_job(
        &self,
        py: Python<'_>,
        is_async: bool,
        job_id: String,
        agent_key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.get_push_job(&job_id, agent_key.as_deref())
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, include_disabled))]
    fn push_list_jobs_for_user(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        include_disabled: bool,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_push_jobs_for_user(&consumer_user_id, include_disabled)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, include_disabled))]
    fn push_list_jobs_for_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        include_disabled: bool,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_push_jobs_for_agent(&consumer_user_id, &agent_key, include_disabled)
        })
    }

    #[pyo3(signature = (is_async, job_id, agent_key = None, now_ms = None))]
    fn push_trigger_now(
        &self,
        py: Python<'_>,
        is_async: bool,
        job_id: String,
        agent_key: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.trigger_push_job_now(&job_id, agent_key.as_deref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, limit = None, now_ms = None))]
    fn push_dispatch_due(
        &self,
        py: Python<'_>,
        is_async: bool,
        limit: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.dispatch_due_push_jobs(limit, now_ms)
        })
    }

    #[pyo3(signature = (is_async, job_id, limit = None))]
    fn push_list_dispatches(
        &self,
        py: Python<'_>,
        is_async: bool,
        job_id: String,
        limit: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.list_push_dispatches(&job_id, limit))
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key, limit = None))]
    fn push_list_dispatches_for_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
        limit: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_push_dispatches_for_agent(&consumer_user_id, &agent_key, limit)
        })
    }

    #[pyo3(signature = (is_async, company_id, title, text, requested_by, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_send_broadcast(
        &self,
        py: Python<'_>,
        is_async: bool,
        company_id: String,
        title: String,
        text: String,
        requested_by: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.send_push_broadcast(&company_id, &title, &text, &requested_by, now_ms)
        })
    }

    #[pyo3(signature = (is_async, broadcast_id))]
    fn push_get_broadcast(
        &self,
        py: Python<'_>,
        is_async: bool,
        broadcast_id: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.get_push_broadcast(&broadcast_id))
    }

    #[pyo3(signature = (is_async, company_id, limit = None))]
    fn push_list_broadcasts(
        &self,
        py: Python<'_>,
        is_async: bool,
        company_id: String,
        limit: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_push_broadcasts(&company_id, limit)
        })
    }

    #[pyo3(signature = (is_async, broadcast_id, status = None, limit = None))]
    fn push_list_broadcast_dispatches(
        &self,
        py: Python<'_>,
        is_async: bool,
        broadcast_id: String,
        status: Option<String>,
        limit: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.list_push_broadcast_dispatches(&broadcast_id, status.as_deref(), limit)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key))]
    fn push_user_agent_push_stats(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.user_agent_push_stats(&consumer_user_id, &agent_key)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key))]
    fn push_user_agent_conversation_stats(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.user_agent_conversation_stats(&consumer_user_id, &agent_key)
        })
    }

    #[pyo3(signature = (is_async, consumer_user_id, agent_key))]
    fn push_user_agent_usage_stats(
        &self,
        py: Python<'_>,
        is_async: bool,
        consumer_user_id: String,
        agent_key: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.user_agent_usage_stats(&consumer_user_id, &agent_key)
        })
    }
}
