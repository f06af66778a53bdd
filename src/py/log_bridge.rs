//! The core's `log` records forwarded to Python's `logging`.
//!
//! Invariants:
//! - only records whose target is under `agent_factory` are forwarded, to the
//!   logger named by the target (`agent_factory.pool`, `agent_factory.queue`,
//!   ...); the Rust-side maximum level is `Info`, so `debug!`/`trace!` in the
//!   core cost one atomic load and never touch Python unless
//!   [`set_core_log_level`] lowers it;
//! - a record is handed over with the GIL taken by the logging thread
//!   itself (`Python::try_attach`): core calls run with the GIL released
//!   (`py.detach`) or on threads that never hold it while waiting for core
//!   work, so taking it here cannot deadlock; the level check is Python's
//!   own (`Logger.isEnabledFor`), so `setLevel` and pytest's `caplog` apply at
//!   once (no stale level cache);
//! - logger objects are cached per target; the cache's mutex is only taken
//!   with the GIL held and never across a Python call;
//! - nothing is forwarded once the interpreter starts exiting (an `atexit`
//!   hook closes the bridge), and a failure inside `logging` is swallowed
//!   (the caller's pending Python exception, if any, is preserved): logging
//!   never fails or panics a core operation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Targets forwarded to Python.
const ROOT: &str = "agent_factory";

/// Set at interpreter exit: records are dropped from then on.
static CLOSED: AtomicBool = AtomicBool::new(false);

struct Bridge {
    loggers: Mutex<HashMap<String, Py<PyAny>>>,
}

fn python_level(level: Level) -> u32 {
    match level {
        Level::Error => 40,
        Level::Warn => 30,
        Level::Info => 20,
        Level::Debug => 10,
        Level::Trace => 5,
    }
}

impl Bridge {
    fn logger<'py>(&self, py: Python<'py>, target: &str) -> PyResult<Bound<'py, PyAny>> {
        let cached = {
            let map = self.loggers.lock().unwrap_or_else(|e| e.into_inner());
            map.get(target).map(|l| l.clone_ref(py))
        };
        if let Some(l) = cached {
            return Ok(l.into_bound(py));
        }
        let logger = py
            .import("logging")?
            .getattr("getLogger")?
            .call1((target,))?;
        self.loggers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(target.to_string(), logger.clone().unbind());
        Ok(logger)
    }

    fn emit(&self, py: Python<'_>, record: &Record<'_>) -> PyResult<()> {
        let target = record.target();
        let logger = self.logger(py, target)?;
        let level = python_level(record.level());
        if !logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
            return Ok(());
        }
        let message = record.args().to_string();
        let made = logger.call_method1(
            "makeRecord",
            (
                target,
                level,
                record.file().unwrap_or("<agent_factory core>"),
                record.line().unwrap_or(0),
                message,
                PyTuple::empty(py),
                py.None(),
            ),
        )?;
        logger.call_method1("handle", (made,))?;
        Ok(())
    }
}

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
            && metadata.target().starts_with(ROOT)
            && !CLOSED.load(Ordering::Relaxed)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        Python::try_attach(|py| {
            let pending = PyErr::take(py);
            // A broken handler must not break the core operation that logged.
            let _ = self.emit(py, record);
            if let Some(e) = pending {
                e.restore(py);
            }
        });
    }

    fn flush(&self) {}
}

/// The `atexit` hook: stop forwarding records.
#[pyfunction]
fn close_log_bridge() {
    CLOSED.store(true, Ordering::SeqCst);
}

/// Lowest level the core forwards (`"DEBUG"`, `"INFO"`, ...; default `"INFO"`).
/// Python's logger levels still decide what is emitted; this only lets
/// `debug` records of the core reach them.
#[pyfunction]
pub(super) fn set_core_log_level(level: &str) -> PyResult<()> {
    let filter = match level.to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::Trace,
        "DEBUG" => LevelFilter::Debug,
        "INFO" => LevelFilter::Info,
        "WARNING" | "WARN" => LevelFilter::Warn,
        "ERROR" | "CRITICAL" => LevelFilter::Error,
        "OFF" | "NONE" => LevelFilter::Off,
        other => {
            return Err(super::errors::to_py(crate::Error::validation(format!(
                "level must be one of DEBUG, INFO, WARNING, ERROR, OFF, got {other:?}"
            ))))
        }
    };
    log::set_max_level(filter);
    Ok(())
}

/// Install the bridge as the process's `log` logger (once; a logger installed
/// by someone else first is left alone) and register its `atexit` hook.
pub(super) fn install(py: Python<'_>) -> PyResult<()> {
    let bridge = Bridge {
        loggers: Mutex::new(HashMap::new()),
    };
    if log::set_boxed_logger(Box::new(bridge)).is_ok() {
        log::set_max_level(LevelFilter::Info);
        let hook = wrap_pyfunction!(close_log_bridge, py)?;
        py.import("atexit")?.call_method1("register", (hook,))?;
    }
    Ok(())
}
