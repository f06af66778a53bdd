//! Worker lifecycle: `active → draining → stopping → stopped`.
//!
//! Invariants: statuses only move forward (each may repeat itself); a stopped
//! worker is terminal and never reactivated; only `active` workers claim.

use crate::error::{Error, Result};

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    /// Claims work.
    Active,
    /// No new claims; waiting for its final snapshot.
    Draining,
    /// Snapshot ready or not needed; provider teardown in progress.
    Stopping,
    /// Terminal.
    Stopped,
}

impl WorkerStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Active => "active",
            WorkerStatus::Draining => "draining",
            WorkerStatus::Stopping => "stopping",
            WorkerStatus::Stopped => "stopped",
        }
    }

    /// Parse a stored or user-given name.
    pub fn parse(s: &str) -> Result<WorkerStatus> {
        match s {
            "active" => Ok(WorkerStatus::Active),
            "draining" => Ok(WorkerStatus::Draining),
            "stopping" => Ok(WorkerStatus::Stopping),
            "stopped" => Ok(WorkerStatus::Stopped),
            other => Err(Error::validation(format!(
                "worker status {other:?} must be one of active, draining, stopping, stopped"
            ))),
        }
    }

    /// The worker process is (or may be) running.
    pub fn is_running(self) -> bool {
        !matches!(self, WorkerStatus::Stopped)
    }

    /// Whether `self → next` is allowed.
    pub fn can_transition(self, next: WorkerStatus) -> bool {
        use WorkerStatus::*;
        matches!(
            (self, next),
            (Active, Active | Draining)
                | (Draining, Draining | Stopping)
                | (Stopping, Stopping | Stopped)
                | (Stopped, Stopped)
        )
    }
}

/// How a worker picks conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerMode {
    /// Keeps the conversation it first served (its workspace stays local).
    Sticky,
    /// Serves any conversation, one message in flight per conversation.
    Pooled,
}

impl WorkerMode {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerMode::Sticky => "sticky",
            WorkerMode::Pooled => "pooled",
        }
    }

    /// Parse a stored or user-given name.
    pub fn parse(s: &str) -> Result<WorkerMode> {
        match s {
            "sticky" => Ok(WorkerMode::Sticky),
            "pooled" => Ok(WorkerMode::Pooled),
            other => Err(Error::validation(format!(
                "worker mode {other:?} must be 'sticky' or 'pooled'"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerStatus::*;

    #[test]
    fn seed_transition_table() {
        assert!(Active.can_transition(Active));
        assert!(Active.can_transition(Draining));
        assert!(!Active.can_transition(Stopping));
        assert!(!Active.can_transition(Stopped));
        assert!(!Draining.can_transition(Stopped));
        assert!(Draining.can_transition(Stopping));
        assert!(Stopping.can_transition(Stopped));
        for s in [Draining, Stopping, Stopped] {
            assert!(!s.can_transition(Active), "{s:?} must never be reactivated");
        }
        assert!(Stopped.can_transition(Stopped));
    }
}
