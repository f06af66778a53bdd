//! Running core calls from Python: blocking (GIL released) or as an awaitable.
//!
//! Every native method takes `is_async`. Blocking calls run the core inside
//! `py.detach`. Async calls create a future on the running asyncio loop and hand
//! the work to a small pool of dedicated threads, which resolve the future with
//! `loop.call_soon_threadsafe`: two thread hand-offs per call, and the SQLite
//! work never runs on the event loop or on a tokio worker. If the awaiting task
//! is cancelled the work still finishes and commits (the result is dropped);
//! leases make that safe (an unreported claim expires and is recovered).
//!
//! Interpreter exit: a pool thread that is handing a result back holds or
//! re-acquires the GIL, which must not happen once Python finalizes. An
//! `atexit` hook therefore closes the hand-off (later results are dropped
//! without touching Python) and waits, with the GIL released, for the
//! hand-offs already under way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pythonize::pythonize;
use serde::Serialize;

use super::errors::{internal, to_py};
use crate::error::Result;

type Job = Box<dyn FnOnce() + Send + 'static>;
/// The queue into the pool, with the pid that started its threads.
type Pool = Mutex<Option<(u32, Sender<Job>)>>;

/// Threads serving async calls (SQLite work serialises per database anyway).
const POOL_THREADS: usize = 4;
/// Longest wait at interpreter exit for hand-offs under way.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Pool threads currently handing a result to Python.
static HANDING_OFF: AtomicUsize = AtomicUsize::new(0);
/// Set at interpreter exit: results are no longer handed to Python.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// The `atexit` hook: stop handing results to Python and let the ones under
/// way finish (they need the GIL, which this releases while it waits).
#[pyfunction]
fn close_async_handoff(py: Python<'_>) {
    CLOSED.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + EXIT_WAIT;
        while HANDING_OFF.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Hand a finished call's outcome to Python, unless the interpreter is exiting.
fn hand_off(deliver: impl FnOnce(Python<'_>)) {
    HANDING_OFF.fetch_add(1, Ordering::SeqCst);
    if !CLOSED.load(Ordering::SeqCst) {
        Python::attach(deliver);
    }
    HANDING_OFF.fetch_sub(1, Ordering::SeqCst);
}

fn to_object<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    pythonize(py, value)
        .map(Bound::unbind)
        .map_err(|e| internal(format!("result conversion failed: {e}")))
}

/// The pool's queue, rebuilt in a forked child (threads do not survive `fork`).
fn submit(py: Python<'_>, job: Job) -> PyResult<()> {
    static POOL: OnceLock<Pool> = OnceLock::new();
    let mut slot = POOL
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if slot.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        if slot.is_none() {
            let hook = wrap_pyfunction!(close_async_handoff, py)?;
            py.import("atexit")?.call_method1("register", (hook,))?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..POOL_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("agent-factory-async-{i}"))
                .spawn(move || loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match next {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .map_err(|e| internal(format!("cannot start the async worker thread: {e}")))?;
        }
        *slot = Some((pid, tx));
    }
    let sender = slot
        .as_ref()
        .map(|(_, tx)| tx.clone())
        .ok_or_else(|| internal("async pool missing"))?;
    drop(slot);
    sender
        .send(job)
        .map_err(|_| internal("the async worker pool has stopped"))
}

/// `agent_factory._guard.resolve_future`, which ignores cancelled futures.
fn resolver(py: Python<'_>) -> PyResult<&Py<PyAny>> {
    static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    RESOLVE.get_or_try_init(py, || {
        Ok(py
            .import("agent_factory._guard")?
            .getattr("resolve_future")?
            .unbind())
    })
}

/// Run `work` and return its result as a Python object, or an awaitable of it.
pub fn dispatch<T, F>(py: Python<'_>, is_async: bool, work: F) -> PyResult<Py<PyAny>>
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    if !is_async {
        let out = py.detach(work).map_err(to_py)?;
        return to_object(py, &out);
    }
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let future = event_loop.call_method0("create_future")?;
    let resolve = resolver(py)?.clone_ref(py);
    let (loop_ref, future_ref) = (event_loop.unbind(), future.clone().unbind());
    submit(
        py,
        Box::new(move || {
            let out = work();
            hand_off(|py| {
                let (ok, value) = match out.map_err(to_py).and_then(|v| to_object(py, &v)) {
                    Ok(v) => (true, v),
                    Err(e) => (false, e.into_value(py).into_any()),
                };
                // A closed loop means nobody is waiting any more; the work is done either way.
                let _ = loop_ref.call_method1(
                    py,
                    "call_soon_threadsafe",
                    (resolve, future_ref, ok, value),
                );
            });
        }),
    )?;
    Ok(future.unbind())
}
