//! Python bindings ONLY: argument conversion, GIL release, awaitables and
//! exception mapping. No queue or lifecycle logic lives here.

mod clock;
mod control;
mod convert;
mod errors;
mod factory;
mod identity;
mod log_bridge;
mod metrics;
mod pool;
mod providers;
mod push;
mod queue;
mod run;
mod runtime;
mod snapshots;
mod telegram;
mod templates;
mod workboard;
mod workboard_notify_plan;
mod workboard_pool;
mod workboard_workflow;
mod workers;

use pyo3::prelude::*;

/// The native extension `agent_factory._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<factory::NativeFactory>()?;
    m.add_class::<clock::ManualClock>()?;
    m.add_class::<runtime::NativeHeartbeat>()?;
    m.add_class::<providers::NativeFlyMachines>()?;
    m.add_class::<control::NativeControlLoop>()?;
    m.add_class::<workboard::NativeWorkboard>()?;
    m.add_function(wrap_pyfunction!(default_config, m)?)?;
    m.add_function(wrap_pyfunction!(can_transition, m)?)?;
    m.add_function(wrap_pyfunction!(retry_delay_ms, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::metrics_counters, m)?)?;
    m.add_function(wrap_pyfunction!(log_bridge::set_core_log_level, m)?)?;
    log_bridge::install(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The built-in defaults of every tunable, as a dict.
#[pyfunction]
fn default_config(py: Python<'_>) -> PyResult<Py<PyAny>> {
    run::dispatch(py, false, || Ok(crate::config::Config::default()))
}

/// Whether a worker may move from status `current` to `next`.
#[pyfunction]
fn can_transition(current: &str, next: &str) -> PyResult<bool> {
    use crate::workers::WorkerStatus;
    let parse = |s| WorkerStatus::parse(s).map_err(errors::to_py);
    Ok(parse(current)?.can_transition(parse(next)?))
}

/// Backoff delay before retry `attempts` under a retry policy dict (defaults when `None`).
#[pyfunction]
#[pyo3(signature = (attempts, now_ms, policy = None))]
fn retry_delay_ms(attempts: i64, now_ms: i64, policy: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let p: crate::config::RetryPolicy = match policy {
        Some(p) if !p.is_none() => convert::typed("policy", p)?,
        _ => Default::default(),
    };
    Ok(p.retry_delay_ms(attempts, now_ms))
}
