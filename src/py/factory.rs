//! `NativeFactory`: construction, config, agents, settings, secrets and blobs.
//! Queue and worker methods live in `queue.rs` and `workers.rs`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::clock::ManualClock;
use super::convert;
use super::errors::{invalid, to_py};
use super::run::dispatch;
use crate::agents::{AgentInput, BridgeConfig};
use crate::clock::Clock;
use crate::config::Config;
use crate::factory::{Factory, FactoryOptions};
use crate::settings::{MessageConfig, ProviderConfig};
use crate::store::{JournalChoice, StoreOptions};

/// The core handle seen from Python (wrapped by `agent_factory.Factory`).
#[pyclass(module = "agent_factory._native", frozen)]
pub struct NativeFactory {
    pub(crate) core: Arc<Factory>,
}

impl NativeFactory {
    pub(crate) fn core(&self) -> Arc<Factory> {
        self.core.clone()
    }
}

fn journal(choice: &str) -> PyResult<JournalChoice> {
    match choice {
        "auto" => Ok(JournalChoice::Auto),
        "wal" => Ok(JournalChoice::Wal),
        "delete" => Ok(JournalChoice::Delete),
        other => Err(invalid(format!(
            "journal_mode must be 'auto', 'wal' or 'delete', got {other:?}"
        ))),
    }
}

#[pymethods]
impl NativeFactory {
    #[new]
    #[pyo3(signature = (path, durable = false, journal_mode = "auto", config = None, clock = None, harden_dir = false))]
    fn new(
        py: Python<'_>,
        path: String,
        durable: bool,
        journal_mode: &str,
        config: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, ManualClock>>,
        harden_dir: bool,
    ) -> PyResult<Self> {
        let config: Config = match config {
            Some(c) if !c.is_none() => convert::typed("config", c)?,
            _ => Config::default(),
        };
        let options = FactoryOptions {
            store: StoreOptions {
                durable,
                journal: journal(journal_mode)?,
                harden_dir,
            },
            config,
            clock: clock
                .map(|c| c.get().clock.clone())
                .unwrap_or(Clock::System),
        };
        let core = py.detach(|| Factory::open(&path, options)).map_err(to_py)?;
        Ok(NativeFactory {
            core: Arc::new(core),
        })
    }

    /// Facts about the open database.
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let f = self.core();
        let info = serde_json::json!({
            "path": f.store().path().map(|p| p.display().to_string()),
            "journal_mode": f.store().journal_mode(),
            "durable": f.store().durable(),
            "blob_root": f.blobs().root().display().to_string(),
            "master_key_id": f.master_key_id(),
            "schema_version": crate::store::migrations::LATEST,
        });
        dispatch(py, false, move || Ok(info))
    }

    fn now_ms(&self) -> i64 {
        self.core.clock().now_ms()
    }

    fn get_config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let cfg = self.core.config();
        dispatch(py, false, move || Ok((*cfg).clone()))
    }

    fn set_config(&self, config: &Bound<'_, PyAny>) -> PyResult<()> {
        let cfg: Config = convert::typed("config", config)?;
        self.core.set_config(cfg).map_err(to_py)
    }

    // ---- agents ----

    #[pyo3(signature = (is_async, agent_key, version, secrets_ref, bot_identity, bridge_config, enabled, now_ms))]
    #[allow(clippy::too_many_arguments)]
    fn upsert_agent(
        &self,
        py: Python<'_>,
        is_async: bool,
        agent_key: String,
        version: String,
        secrets_ref: Vec<String>,
        bot_identity: Option<String>,
        bridge_config: Option<&Bound<'_, PyAny>>,
        enabled: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let bridge_config: Option<BridgeConfig> = match bridge_config {
            Some(b) if !b.is_none() => Some(convert::typed("bridge_config", b)?),
            _ => None,
        };
        let input = AgentInput {
            agent_key,
            version,
            secrets_ref,
            bot_identity,
            bridge_config,
            enabled,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.upsert_agent(input, now_ms))
    }

    fn get_agent(&self, py: Python<'_>, is_async: bool, agent_key: String) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.get_agent(&agent_key))
    }

    #[pyo3(signature = (is_async, enabled = None))]
    fn list_agents(
        &self,
        py: Python<'_>,
        is_async: bool,
        enabled: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.list_agents(enabled))
    }

    #[pyo3(signature = (is_async, agent_key, enabled, now_ms = None))]
    fn set_agent_enabled(
        &self,
        py: Python<'_>,
        is_async: bool,
        agent_key: String,
        enabled: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || {
            f.set_agent_enabled(&agent_key, enabled, now_ms)
        })
    }

    // ---- settings ----

    fn message_config(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.message_config())
    }

    #[pyo3(signature = (is_async, system_prompt = None, telegram_attachment_retention_ms = None, now_ms = None))]
    fn set_message_config(
        &self,
        py: Python<'_>,
        is_async: bool,
        system_prompt: Option<String>,
        telegram_attachment_retention_ms: Option<i64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        let cfg = MessageConfig {
            system_prompt,
            telegram_attachment_retention_ms,
        };
        dispatch(py, is_async, move || f.set_message_config(cfg, now_ms))
    }

    fn provider_config(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.provider_config())
    }

    #[pyo3(signature = (is_async, config, now_ms = None))]
    fn set_provider_config(
        &self,
        py: Python<'_>,
        is_async: bool,
        config: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let cfg: ProviderConfig = convert::typed("provider_config", config)?;
        let f = self.core();
        dispatch(py, is_async, move || f.set_provider_config(cfg, now_ms))
    }

    // ---- secrets ----

    #[pyo3(signature = (is_async, secret_ref, plaintext_value, metadata = None, now_ms = None))]
    fn import_secret(
        &self,
        py: Python<'_>,
        is_async: bool,
        secret_ref: String,
        plaintext_value: String,
        metadata: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let metadata = convert::object("metadata", metadata)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            f.import_secret(&secret_ref, &plaintext_value, metadata, now_ms)
        })
    }

    fn secret_status(
        &self,
        py: Python<'_>,
        is_async: bool,
        secret_refs: Vec<String>,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.secret_status(&secret_refs))
    }

    fn list_secret_refs(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.list_secret_refs())
    }

    fn reveal_secret(
        &self,
        py: Python<'_>,
        is_async: bool,
        secret_ref: String,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.reveal_secret(&secret_ref))
    }

    // ---- blobs ----

    fn put_blob(&self, py: Python<'_>, is_async: bool, data: Vec<u8>) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.blobs().put(&data))
    }

    fn put_blob_file(
        &self,
        py: Python<'_>,
        is_async: bool,
        path: std::path::PathBuf,
    ) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.blobs().put_file(&path))
    }

    fn get_blob(&self, py: Python<'_>, is_async: bool, sha256: String) -> PyResult<Py<PyAny>> {
        let f = self.core();
        if !is_async {
            let bytes = py.detach(|| f.blobs().get(&sha256)).map_err(to_py)?;
            return Ok(PyBytes::new(py, &bytes).into_any().unbind());
        }
        dispatch(py, true, move || {
            f.blobs().get(&sha256).map(serde_bytes::ByteBuf::from)
        })
    }

    fn blob_path(&self, sha256: String) -> PyResult<String> {
        self.core
            .blobs()
            .path_of(&sha256)
            .map(|p| p.display().to_string())
            .map_err(to_py)
    }

    fn delete_blob(&self, py: Python<'_>, is_async: bool, sha256: String) -> PyResult<Py<PyAny>> {
        let f = self.core();
        dispatch(py, is_async, move || f.blobs().delete(&sha256))
    }
}
