//! The autoscaled worker pool: reconcile, idle shutdown, teardown (spec §3.6,
//! §5), over any [`Provider`] (local processes or Fly Machines).
//!
//! One pool *cycle* runs the spec's lifecycle steps in order: lease recovery
//! (reconcile only), provider-state reconciliation, shutdown-time backfill,
//! spawning (reconcile only), idle drain, drain progress, teardown.
//!
//! Invariants (fixing the original's weaknesses, spec §10):
//! - cycles never overlap: a named lease (`pool.cycle`) admits one cycle per
//!   database at a time across threads and processes ([`lock`]);
//! - at most one control loop acts per database: the loop's steps run only
//!   while it holds the `pool.control` lease ([`control`]);
//! - database writes are short transactions and never span a provider call,
//!   so the write lock is never held during HTTP or process management;
//! - `max_workers` bounds the live workers, not only the desired ones, and the
//!   caller's [`ScalingPolicy`] is used for every decision of the cycle;
//! - spawned worker ids keep the `afw-<nowMs>-<i>` shape and never collide;
//! - a provider error never counts as "machine gone" and never moves a worker
//!   whose machine is live; a deferred teardown is retried by the next cycle;
//! - a worker that ever claimed a job keeps its volume until its final
//!   snapshot is `ready`, or until the bounded drain timeout says it never
//!   will be (recorded as stop reason `drain_timeout`).

pub mod control;
mod cycle;
pub mod env;
pub mod idle;
pub mod lock;
#[cfg(test)]
mod mem;
pub mod naming;
pub mod provider_state;
pub mod rows;
pub mod scaling;
pub mod select;
pub mod spawn;
pub mod teardown;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::ScalingPolicy;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::providers::{Guest, Machine, Provider, Volume};
use crate::queue::ReleaseOutcome;
use crate::settings::ProviderConfig;
use crate::workers::Worker;

pub use control::{ControlLoop, ControlOptions, TickReport};
pub use naming::dedicated_volume_name;
pub use select::{FlyOptions, LocalOptions, ProviderChoice};

/// Default workspace id passed to spawned workers.
pub const DEFAULT_WORKSPACE_ID: &str = "default";
/// Expired leases recovered at the start of a reconcile.
pub const RECONCILE_RELEASE_LIMIT: i64 = 500;
/// Active conversations considered by one reconcile.
pub const ACTIVE_CONVERSATION_LIMIT: i64 = 1000;

/// What spawned machines look like.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// Recorded as the worker rows' `provider` (`fly`, `local`).
    pub provider_kind: String,
    /// Worker image (Fly).
    pub image: String,
    /// Region of machines and volumes (Fly).
    pub region: String,
    /// Prefix of dedicated volume names.
    pub volume_name: String,
    /// Mount path of the volume (Fly).
    pub volume_path: String,
    /// Volume size.
    pub volume_size_gb: i64,
    /// Machine size (Fly).
    pub guest: Guest,
    /// Extra environment for every machine.
    pub env: BTreeMap<String, String>,
}

impl PoolSettings {
    /// Settings from a stored provider config.
    pub fn from_provider_config(c: &ProviderConfig) -> Self {
        PoolSettings {
            provider_kind: c.kind.clone(),
            image: c.image.clone(),
            region: c.region.clone(),
            volume_name: c.volume_name.clone(),
            volume_path: c.volume_path.clone(),
            volume_size_gb: c.volume_size_gb,
            guest: Guest::default(),
            env: BTreeMap::new(),
        }
    }

    /// Settings of a local pool (data directories named with `volume_prefix`).
    pub fn local(volume_prefix: String) -> Self {
        PoolSettings {
            provider_kind: "local".into(),
            image: String::new(),
            region: String::new(),
            volume_name: volume_prefix,
            volume_path: "/data".into(),
            volume_size_gb: 1,
            guest: Guest::default(),
            env: BTreeMap::new(),
        }
    }

    /// Fail with the spec's message when a Fly spawn lacks a required setting.
    pub fn check_spawnable(&self) -> Result<()> {
        if self.provider_kind != "fly" {
            return Ok(());
        }
        let missing = |field: &str| {
            Error::validation(format!(
                "Missing providerConfig.{field}. Pass providerConfig explicitly when starting/reconciling workers."
            ))
        };
        for (field, value) in [
            ("image", &self.image),
            ("region", &self.region),
            ("volumePath", &self.volume_path),
        ] {
            if value.trim().is_empty() {
                return Err(missing(field));
            }
        }
        if self.volume_size_gb <= 0 {
            return Err(missing("volumeSizeGb"));
        }
        Ok(())
    }
}

/// A resolved provider with its spawn settings.
#[derive(Clone)]
pub struct PoolTarget {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// Spawn settings.
    pub settings: PoolSettings,
}

impl std::fmt::Debug for PoolTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolTarget")
            .field("app_name", &self.provider.app_name())
            .field("settings", &self.settings)
            .finish()
    }
}

/// What one cycle did. Counts follow the seed: `terminated` is the number of
/// workers moved out of `active` (the seed's reconcile `terminated` and
/// idle-check `stopped`), not machines destroyed (`torn_down`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolReport {
    /// Active workers in scope with a fresh heartbeat, after the cycle.
    pub active_workers: i64,
    /// `min(#active conversations, max_workers)` (0 for idle checks).
    pub desired_workers: i64,
    /// Workers spawned.
    pub spawned: i64,
    /// Their ids.
    pub spawned_worker_ids: Vec<String>,
    /// Workers moved to draining (idle, stale, machine gone, capacity).
    pub terminated: i64,
    /// Their ids.
    pub drained_worker_ids: Vec<String>,
    /// Workers whose machine and volumes were removed and that are now stopped.
    pub torn_down: i64,
    /// Their ids.
    pub torn_down_worker_ids: Vec<String>,
    /// Workers looked at by the shutdown steps (idle due, draining, stopping).
    pub checked: i64,
    /// Workers still waiting: for a final snapshot, or on the provider.
    pub pending: i64,
    /// Lease recovery done first (reconcile only).
    pub released: Option<ReleaseOutcome>,
    /// The next time something becomes due (an idle shutdown or a drain timeout).
    pub next_due_at: Option<i64>,
    /// Listed machines that no running worker row knows (by id or name).
    pub untracked_machines: Vec<String>,
    /// Non-fatal provider problems (cordon/stop answers, deferred teardown).
    pub warnings: Vec<String>,
    /// Failed provider calls; the affected workers are retried next cycle.
    pub errors: Vec<String>,
}

/// The pool as the provider and the database see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStatus {
    /// Provider app (`local` for local processes).
    pub app_name: String,
    /// Provider kind of the target.
    pub provider_kind: String,
    /// Running worker rows in scope.
    pub workers: Vec<Worker>,
    /// Machines the provider lists.
    pub machines: Vec<Machine>,
    /// Volumes the provider lists.
    pub volumes: Vec<Volume>,
    /// Listed machines that no running worker row knows.
    pub untracked_machines: Vec<String>,
}

impl Factory {
    /// One reconcile cycle (spec `reconcileWorkerPool`): lease recovery, provider
    /// reconciliation, spawning for uncovered conversations, idle shutdown and
    /// teardown. `policy` is used for every decision; `workspace_id` is passed
    /// to spawned workers (`"default"` when `None`).
    ///
    /// A spawn failure is rolled back (worker `stopped`, volume deleted) and,
    /// after the rest of the cycle ran, returned as the error.
    pub fn reconcile(
        &self,
        provider: &dyn Provider,
        settings: &PoolSettings,
        policy: &ScalingPolicy,
        workspace_id: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<PoolReport> {
        let workspace = workspace_id.unwrap_or(DEFAULT_WORKSPACE_ID);
        crate::validate::workspace_id(workspace)?;
        let now = self.now(now_ms)?;
        cycle::run(
            self,
            cycle::CycleInput {
                provider,
                settings,
                policy,
                workspace_id: workspace,
                now,
                spawn: true,
                fence: None,
            },
        )
    }

    /// One idle-shutdown cycle (spec `checkIdleShutdowns`): provider
    /// reconciliation, backfill, idle drain, drain progress and teardown; no
    /// spawning and no lease recovery.
    pub fn check_idle_shutdowns(
        &self,
        provider: &dyn Provider,
        settings: &PoolSettings,
        policy: &ScalingPolicy,
        now_ms: Option<i64>,
    ) -> Result<PoolReport> {
        let now = self.now(now_ms)?;
        cycle::run(
            self,
            cycle::CycleInput {
                provider,
                settings,
                policy,
                workspace_id: DEFAULT_WORKSPACE_ID,
                now,
                spawn: false,
                fence: None,
            },
        )
    }

    /// The running workers in the provider's scope next to what it lists.
    pub fn pool_status(
        &self,
        provider: &dyn Provider,
        settings: &PoolSettings,
    ) -> Result<PoolStatus> {
        let app = provider.app_name().to_string();
        let workers = self.store.read(|tx| rows::running_in_scope(tx, &app))?;
        let machines = provider
            .list_machines()
            .map_err(|e| Error::from(e).with_context("listing machines"))?;
        let volumes = provider
            .list_volumes()
            .map_err(|e| Error::from(e).with_context("listing volumes"))?;
        Ok(PoolStatus {
            untracked_machines: cycle::untracked(&machines, &workers),
            provider_kind: settings.provider_kind.clone(),
            app_name: app,
            workers,
            machines,
            volumes,
        })
    }
}
