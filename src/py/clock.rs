//! `ManualClock`: a clock tests and notebooks move by hand.

use pyo3::prelude::*;

use crate::clock::Clock;

/// A clock that only moves when told to; share one between factories.
#[pyclass(module = "agent_factory._native", frozen)]
pub struct ManualClock {
    pub(crate) clock: Clock,
}

#[pymethods]
impl ManualClock {
    #[new]
    #[pyo3(signature = (start_ms = 1_767_225_600_000))]
    fn new(start_ms: i64) -> Self {
        ManualClock {
            clock: Clock::manual(start_ms),
        }
    }

    /// Current time in epoch milliseconds.
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Jump to `ms`.
    fn set(&self, ms: i64) {
        self.clock.set(ms);
    }

    /// Move forward by `delta_ms`; returns the new time.
    fn advance(&self, delta_ms: i64) -> i64 {
        self.clock.advance(delta_ms)
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now_ms={})", self.clock.now_ms())
    }
}
