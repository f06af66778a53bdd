//! Time source for every operation.
//!
//! Operations read "now" from a [`Clock`] unless the caller passes an explicit
//! `now_ms`. Timestamps are integer milliseconds since the Unix epoch.
//! A [`Clock::Manual`] clock never moves on its own, which makes tests exact.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock or a manually driven clock shared between handles.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system wall clock.
    #[default]
    System,
    /// A clock that only moves when told to.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Whether this is a manual (test) clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    /// How long time-driven maintenance may lag on this clock: exact for manual
    /// clocks, up to 50 ms on the wall clock (invisible next to 1 s retry backoffs).
    pub fn maintenance_interval_ms(&self) -> i64 {
        if self.is_manual() {
            0
        } else {
            50
        }
    }

    /// Current time in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => system_now_ms(),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// `explicit` if given, else the clock's time.
    pub fn resolve(&self, explicit: Option<i64>) -> i64 {
        explicit.unwrap_or_else(|| self.now_ms())
    }

    /// Set a manual clock; a no-op for the system clock (returns false).
    pub fn set(&self, ms: i64) -> bool {
        match self {
            Clock::System => false,
            Clock::Manual(t) => {
                t.store(ms, Ordering::SeqCst);
                true
            }
        }
    }

    /// Advance a manual clock by `delta_ms`; returns the new time.
    pub fn advance(&self, delta_ms: i64) -> i64 {
        match self {
            Clock::System => system_now_ms(),
            Clock::Manual(t) => t.fetch_add(delta_ms, Ordering::SeqCst) + delta_ms,
        }
    }
}

/// Wall-clock epoch milliseconds.
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
