//! Where worker machines run: the provider abstraction the pool drives.
//!
//! A [`Provider`] manages the machines and volumes of one app (a Fly app, or the
//! local process pool). Calls are synchronous and may block on the network:
//! run them on worker threads (or `spawn_blocking`), never on the Python thread
//! with the GIL held and never inside an async task.
//!
//! Invariants:
//! - teardown calls (`cordon`, `stop`, `destroy`, `delete_volume`) report an
//!   [`Outcome`]: `AlreadyGone` only for a definite "does not exist" answer
//!   (404-like), `Deferred` for a precondition failure worth retrying later;
//!   anything else, notably a 5xx such as `internal server error`, is an error
//!   and never means "gone";
//! - [`Machine::status`] follows the spec's state mapping: only the live states
//!   are `active`, everything else (including unknown or missing states) is
//!   `stopped`.

pub mod classify;
pub mod cleanup;
pub mod fly;
pub mod http;
pub mod local;
pub mod retry;
mod wire;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::error::{ProviderError, ProviderErrorKind, ProviderResult};
pub use cleanup::{fly_cleanup, CleanupOptions, CleanupReport};
pub use fly::{FlyConfig, FlyMachines, DEFAULT_FLY_BASE_URL};
pub use http::DEFAULT_USER_AGENT;
pub use local::{LocalProvider, LocalProviderConfig, LOCAL_APP_NAME};
pub use retry::RetryPolicy;

/// Raw machine states that count as a live machine.
pub const ACTIVE_STATES: [&str; 7] = [
    "creating",
    "created",
    "starting",
    "started",
    "restarting",
    "updating",
    "replacing",
];

/// Provider-neutral liveness of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineStatus {
    /// Running or on its way to running.
    Active,
    /// Stopped, stopping, failed, destroyed, or in a state nobody knows.
    Stopped,
}

impl MachineStatus {
    /// The status of a raw provider state; unknown states are `Stopped`.
    pub fn from_state(state: &str) -> Self {
        if ACTIVE_STATES.contains(&state) {
            MachineStatus::Active
        } else {
            MachineStatus::Stopped
        }
    }
}

/// A machine as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// Provider id.
    pub id: String,
    /// Name (the worker id for machines the pool spawned; the id when unnamed).
    pub name: String,
    /// Region (empty when not reported).
    pub region: String,
    /// Raw provider state (`started`, `stopping`, …; empty when not reported).
    pub state: String,
    /// Liveness derived from `state`.
    pub status: MachineStatus,
    /// Image reference (empty when not reported).
    pub image: String,
    /// Ids of the volumes mounted into the machine.
    pub volume_ids: Vec<String>,
}

/// A persistent volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Provider id.
    pub id: String,
    /// Name (not unique on Fly).
    pub name: String,
    /// Region (empty when not reported).
    pub region: String,
    /// Size in GB (0 when not reported).
    pub size_gb: u64,
    /// Raw provider state (`created`, `pending_destroy`, …).
    pub state: String,
    /// The machine it is attached to, if any.
    pub attached_machine_id: Option<String>,
}

/// CPU and memory of a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    /// `shared` or `performance`.
    #[serde(default = "default_cpu_kind")]
    pub cpu_kind: String,
    /// Number of CPUs.
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    /// Memory in MB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
}

fn default_cpu_kind() -> String {
    "shared".into()
}
fn default_cpus() -> u32 {
    1
}
fn default_memory_mb() -> u32 {
    2048
}

impl Default for Guest {
    /// The spec's worker guest: `shared`, 1 CPU, 2048 MB.
    fn default() -> Self {
        Guest {
            cpu_kind: default_cpu_kind(),
            cpus: default_cpus(),
            memory_mb: default_memory_mb(),
        }
    }
}

/// A volume mounted into a new machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// Volume id.
    pub volume_id: String,
    /// Absolute mount path inside the machine, e.g. `/data`.
    pub path: String,
}

/// What to create: one worker machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// Machine name: the worker id. Unique within the app.
    pub name: String,
    /// Region (empty lets the provider choose).
    #[serde(default)]
    pub region: String,
    /// Image reference.
    pub image: String,
    /// CPU and memory.
    #[serde(default)]
    pub guest: Guest,
    /// Environment. The provider adds `AGENT_FACTORY_WORKER_ID` = `name`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Optional volume mount.
    #[serde(default)]
    pub mount: Option<VolumeMount>,
}

/// Result of a teardown call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted the call.
    Done,
    /// The machine or volume does not exist (any more).
    AlreadyGone,
    /// A precondition failed (e.g. a machine not stopped yet); try again later.
    Deferred(String),
}

/// Machines and volumes of one app.
pub trait Provider: Send + Sync {
    /// The app (Fly) or pool (local) this provider manages.
    fn app_name(&self) -> &str;
    /// Fail unless the app exists and the credentials may manage it.
    fn check_access(&self) -> ProviderResult<()>;
    /// Every machine of the app.
    fn list_machines(&self) -> ProviderResult<Vec<Machine>>;
    /// One machine with its mounted volumes, `None` when it does not exist.
    fn get_machine(&self, machine_id: &str) -> ProviderResult<Option<Machine>>;
    /// Create and start a machine.
    fn create_machine(&self, spec: &MachineSpec) -> ProviderResult<Machine>;
    /// Take the machine out of service (no new traffic).
    fn cordon_machine(&self, machine_id: &str) -> ProviderResult<Outcome>;
    /// Ask the machine to stop.
    fn stop_machine(&self, machine_id: &str) -> ProviderResult<Outcome>;
    /// Delete the machine (it must be stopped, else the outcome is `Deferred`).
    fn destroy_machine(&self, machine_id: &str) -> ProviderResult<Outcome>;
    /// Every volume of the app.
    fn list_volumes(&self) -> ProviderResult<Vec<Volume>>;
    /// Create a volume.
    fn create_volume(&self, name: &str, region: &str, size_gb: u64) -> ProviderResult<Volume>;
    /// Delete a volume (`Deferred` while it is still attached).
    fn delete_volume(&self, volume_id: &str) -> ProviderResult<Outcome>;

    /// Poll [`Provider::get_machine`] until the machine is in one of `states`
    /// (`Done`), is gone (`AlreadyGone`), or `timeout` passes (`Deferred`).
    fn wait_for_state(
        &self,
        machine_id: &str,
        states: &[&str],
        timeout: Duration,
        poll: Duration,
    ) -> ProviderResult<Outcome> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = match self.get_machine(machine_id)? {
                None => return Ok(Outcome::AlreadyGone),
                Some(m) if states.contains(&m.state.as_str()) => return Ok(Outcome::Done),
                Some(m) => m.state,
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Outcome::Deferred(format!(
                    "machine {machine_id} is still {state:?} after {} ms, expected one of {states:?}",
                    timeout.as_millis()
                )));
            }
            std::thread::sleep(poll.max(Duration::from_millis(1)).min(deadline - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_states_are_active() {
        for s in ACTIVE_STATES {
            assert_eq!(MachineStatus::from_state(s), MachineStatus::Active, "{s}");
        }
    }

    #[test]
    fn every_other_state_is_stopped() {
        for s in [
            "stopping",
            "suspending",
            "destroying",
            "launch_failed",
            "failed",
            "stopped",
            "destroyed",
            "suspended",
            "replaced",
            "migrated",
            "",
            "Started",
            "something-new",
        ] {
            assert_eq!(MachineStatus::from_state(s), MachineStatus::Stopped, "{s}");
        }
    }

    #[test]
    fn default_guest_is_the_spec_worker_size() {
        let g = Guest::default();
        assert_eq!(
            (g.cpu_kind.as_str(), g.cpus, g.memory_mb),
            ("shared", 1, 2048)
        );
        let spec: MachineSpec =
            serde_json::from_value(serde_json::json!({"name": "w", "image": "img"})).unwrap();
        assert_eq!(spec.guest, Guest::default());
        assert!(spec.env.is_empty() && spec.mount.is_none());
    }
}
