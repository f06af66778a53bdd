//! `NativeControlLoop`: the pool control loop seen from Python (wrapped by
//! `agent_factory.ControlLoop` / `AsyncControlLoop`).
//!
//! Thin: the loop's state lives in [`crate::pool::ControlLoop`]; this keeps it
//! behind a mutex (ticks of one loop never overlap) together with the resolved
//! provider, which is reused while the caller passes the same provider settings
//! (a Fly client is built once, not per tick). A Fly provider without an
//! explicit `user_agent` sends `agent-factory/<version> (<holder>)`, so its
//! calls can be attributed to this loop.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use super::convert;
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::config::ScalingPolicy;
use crate::factory::Factory;
use crate::pool::{ControlLoop, ControlOptions, PoolTarget, ProviderChoice};
use crate::providers::DEFAULT_USER_AGENT;

struct State {
    control: ControlLoop,
    /// The resolved provider and the settings it was resolved from.
    target: Option<(String, PoolTarget)>,
}

/// One control loop: its holder id, lease tenure and schedule.
#[pyclass(module = "agent_factory._native", frozen)]
pub struct NativeControlLoop {
    factory: Arc<Factory>,
    holder: String,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[pymethods]
impl NativeFactory {
    /// A new control loop (no lease taken until its first tick).
    #[pyo3(signature = (holder = None, lease_ttl_ms = 30_000, workspace_id = None,
        idle_check_interval_ms = 60_000, sweep_interval_ms = 60_000))]
    fn pool_control_loop(
        &self,
        holder: Option<String>,
        lease_ttl_ms: i64,
        workspace_id: Option<String>,
        idle_check_interval_ms: i64,
        sweep_interval_ms: i64,
    ) -> PyResult<NativeControlLoop> {
        let defaults = ControlOptions::default();
        let options = ControlOptions {
            holder: holder.unwrap_or(defaults.holder),
            lease_ttl_ms,
            workspace_id: workspace_id.unwrap_or(defaults.workspace_id),
            idle_check_interval_ms,
            sweep_interval_ms,
        };
        let control = ControlLoop::new(options).map_err(super::errors::to_py)?;
        Ok(NativeControlLoop {
            factory: self.core(),
            holder: control.holder().to_string(),
            state: Arc::new(Mutex::new(State {
                control,
                target: None,
            })),
        })
    }
}

#[pymethods]
impl NativeControlLoop {
    /// The loop's holder id (`hostname:pid:random` unless given).
    #[getter]
    fn holder(&self) -> String {
        self.holder.clone()
    }

    /// One tick; a report dict. `workspace_id`, when given, is used for
    /// spawned workers from now on.
    #[pyo3(signature = (is_async, provider, scaling = None, workspace_id = None, now_ms = None))]
    fn tick(
        &self,
        py: Python<'_>,
        is_async: bool,
        provider: &Bound<'_, PyAny>,
        scaling: Option<&Bound<'_, PyAny>>,
        workspace_id: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let key = convert::json("provider", provider)?.to_string();
        let mut choice: ProviderChoice = convert::typed("provider", provider)?;
        if choice.fly.user_agent.is_none() {
            choice.fly.user_agent = Some(format!("{DEFAULT_USER_AGENT} ({})", self.holder));
        }
        let policy: Option<ScalingPolicy> = match scaling {
            Some(s) if !s.is_none() => Some(convert::typed("scaling", s)?),
            _ => None,
        };
        let (f, state) = (self.factory.clone(), self.state.clone());
        dispatch(py, is_async, move || {
            let policy = policy.unwrap_or_else(|| f.config().scaling.clone());
            let mut guard = lock(&state);
            let State { control, target } = &mut *guard;
            if let Some(ws) = &workspace_id {
                control.set_workspace_id(ws)?;
            }
            let resolved = match target.take() {
                Some((k, t)) if k == key => t,
                _ => f.pool_target(&choice)?,
            };
            let out = control.tick(&f, &resolved, &policy, now_ms);
            *target = Some((key, resolved));
            out
        })
    }

    /// Release the lease (if held); whether it was.
    fn stop(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let (f, state) = (self.factory.clone(), self.state.clone());
        dispatch(py, is_async, move || lock(&state).control.stop(&f))
    }

    fn __repr__(&self) -> String {
        format!("NativeControlLoop(holder={:?})", self.holder)
    }
}
