//! `NativeFactory` pool methods: reconcile, idle shutdown, status and Fly cleanup.
//!
//! Thin: the provider choice and scaling policy arrive as dicts (built by
//! `agent_factory.config.LocalProvider` / `FlyProvider` / `ScalingPolicy`),
//! the provider is resolved and driven inside the core, off the GIL.

use std::time::Duration;

use pyo3::prelude::*;

use super::convert;
use super::errors::invalid;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::config::ScalingPolicy;
use crate::pool::ProviderChoice;
use crate::providers::CleanupOptions;

/// Longest wait accepted for cleanup settling (one hour).
const MAX_MS: i64 = 3_600_000;

fn choice(provider: &Bound<'_, PyAny>) -> PyResult<ProviderChoice> {
    convert::typed("provider", provider)
}

fn policy(scaling: Option<&Bound<'_, PyAny>>) -> PyResult<Option<ScalingPolicy>> {
    match scaling {
        Some(s) if !s.is_none() => Ok(Some(convert::typed("scaling", s)?)),
        _ => Ok(None),
    }
}

fn bounded(name: &str, value: i64, min: i64, max: i64) -> PyResult<i64> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(format!(
            "{name} must be between {min} and {max}, got {value}"
        )))
    }
}

#[pymethods]
impl NativeFactory {
    /// One reconcile cycle; a report dict.
    #[pyo3(signature = (is_async, provider, scaling = None, workspace_id = None, now_ms = None))]
    fn pool_reconcile(
        &self,
        py: Python<'_>,
        is_async: bool,
        provider: &Bound<'_, PyAny>,
        scaling: Option<&Bound<'_, PyAny>>,
        workspace_id: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let (choice, policy) = (choice(provider)?, policy(scaling)?);
        let f = self.core();
        dispatch(py, is_async, move || {
            let policy = policy.unwrap_or_else(|| f.config().scaling.clone());
            policy.validate()?;
            let target = f.pool_target(&choice)?;
            f.reconcile(
                target.provider.as_ref(),
                &target.settings,
                &policy,
                workspace_id.as_deref(),
                now_ms,
            )
        })
    }

    /// One idle-shutdown cycle; a report dict.
    #[pyo3(signature = (is_async, provider, scaling = None, now_ms = None))]
    fn pool_check_idle_shutdowns(
        &self,
        py: Python<'_>,
        is_async: bool,
        provider: &Bound<'_, PyAny>,
        scaling: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let (choice, policy) = (choice(provider)?, policy(scaling)?);
        let f = self.core();
        dispatch(py, is_async, move || {
            let policy = policy.unwrap_or_else(|| f.config().scaling.clone());
            policy.validate()?;
            let target = f.pool_target(&choice)?;
            f.check_idle_shutdowns(target.provider.as_ref(), &target.settings, &policy, now_ms)
        })
    }

    /// Running workers next to the provider's machines and volumes; a dict.
    fn pool_status(
        &self,
        py: Python<'_>,
        is_async: bool,
        provider: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let choice = choice(provider)?;
        let f = self.core();
        dispatch(py, is_async, move || {
            let target = f.pool_target(&choice)?;
            f.pool_status(target.provider.as_ref(), &target.settings)
        })
    }

    /// Destroy every machine and volume of the Fly app and verify; a report dict.
    #[pyo3(signature = (is_async, provider, machine_concurrency = 6, volume_concurrency = 16,
        settle_timeout_ms = 30_000, poll_interval_ms = 1_000, volume_attempts = 3))]
    #[allow(clippy::too_many_arguments)]
    fn pool_fly_cleanup(
        &self,
        py: Python<'_>,
        is_async: bool,
        provider: &Bound<'_, PyAny>,
        machine_concurrency: i64,
        volume_concurrency: i64,
        settle_timeout_ms: i64,
        poll_interval_ms: i64,
        volume_attempts: i64,
    ) -> PyResult<Py<PyAny>> {
        let choice = choice(provider)?;
        let options = CleanupOptions {
            machine_concurrency: bounded("machine_concurrency", machine_concurrency.max(1), 1, 64)?
                as usize,
            volume_concurrency: bounded("volume_concurrency", volume_concurrency.max(1), 1, 64)?
                as usize,
            settle_timeout: Duration::from_millis(
                bounded("settle_timeout_ms", settle_timeout_ms, 0, MAX_MS)?.unsigned_abs(),
            ),
            poll_interval: Duration::from_millis(
                bounded("poll_interval_ms", poll_interval_ms, 1, MAX_MS)?.unsigned_abs(),
            ),
            volume_attempts: bounded("volume_attempts", volume_attempts.max(1), 1, 20)? as u32,
        };
        let f = self.core();
        dispatch(py, is_async, move || f.fly_cleanup(&choice, &options))
    }
}
