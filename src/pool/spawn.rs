//! Spawning one pre-assigned worker: register, volume, machine — and a rollback
//! that leaves nothing behind when the provider fails.
//!
//! Invariants:
//! - the row is registered (under a fresh, unique id) before anything exists
//!   at the provider, and every resource is recorded on it as soon as it
//!   exists, so a crash at any point leaves a row through which the next
//!   cycles find and tear down the machine and volume;
//! - every worker gets a new dedicated volume: an existing volume with the
//!   same name is never adopted (names can collide, and an orphan holds
//!   another worker's data);
//! - on failure: a machine that was created although its answer was lost is
//!   adopted (the spawn succeeded); otherwise the row walks
//!   `active → draining → stopping` (reason `spawn_failed`) and is torn down at
//!   once — its volume deleted, then `stopped` — or, if the provider cannot
//!   confirm that now, by the next cycle. No provider call runs inside a
//!   database transaction.

use std::collections::{BTreeMap, BTreeSet};

use super::env::{spawn_env, WorkerEnv};
use super::naming::dedicated_volume_name;
use super::rows::{self, DrainGuard, Preregistration};
use super::teardown::{Teardown, TeardownResult};
use super::PoolSettings;
use crate::config::ScalingPolicy;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::providers::fly::machine_is_going;
use crate::providers::{MachineSpec, Provider, VolumeMount};
use crate::workers;

/// Everything a spawn needs besides its target.
pub struct SpawnContext<'a> {
    /// The factory.
    pub f: &'a Factory,
    /// The provider.
    pub provider: &'a dyn Provider,
    /// Image, region, volume settings.
    pub settings: &'a PoolSettings,
    /// Scaling policy (idle timeout).
    pub policy: &'a ScalingPolicy,
    /// Workspace passed to the worker.
    pub workspace_id: &'a str,
    /// Forwarded `OPENCLAW_*` bridge values.
    pub forwarded: &'a BTreeMap<String, String>,
    /// Cycle time.
    pub now: i64,
}

/// A failed spawn, already rolled back as far as the provider allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnFailure {
    /// The registered worker.
    pub worker_id: String,
    /// What failed.
    pub message: String,
    /// Whether the rollback finished (`stopped`) or continues next cycle.
    pub rolled_back: bool,
}

enum Stage {
    Volume,
    Machine,
}

/// Spawn one worker pre-assigned to `(agent_key, conversation_id)`.
/// `taken` holds the machine names that must not be reused; the new id is added.
pub fn spawn_one(
    ctx: &SpawnContext<'_>,
    index: usize,
    taken: &mut BTreeSet<String>,
    agent_key: &str,
    conversation_id: &str,
) -> Result<std::result::Result<String, SpawnFailure>> {
    let (f, provider, settings) = (ctx.f, ctx.provider, ctx.settings);
    let registration = Preregistration {
        provider_kind: &settings.provider_kind,
        app_name: provider.app_name(),
        index,
        taken,
        agent_key,
        conversation_id,
        idle_timeout_ms: ctx.policy.idle_timeout_ms,
        now: ctx.now,
    };
    let id = f.store.write(|tx| rows::preregister(tx, &registration))?;
    taken.insert(id.clone());
    let volume_name = dedicated_volume_name(&settings.volume_name, &id);
    let size = u64::try_from(settings.volume_size_gb).unwrap_or(0);
    let volume = match provider.create_volume(&volume_name, &settings.region, size) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("creating volume {volume_name} failed: {}", e.message);
            return finish_failed(ctx, id, Stage::Volume, message);
        }
    };
    f.store
        .write(|tx| rows::record_volume(tx, &id, &volume.id))?;
    let env = spawn_env(
        &settings.env,
        ctx.forwarded,
        &WorkerEnv {
            worker_id: &id,
            workspace_id: ctx.workspace_id,
            idle_timeout_ms: ctx.policy.idle_timeout_ms,
            agent_key: Some(agent_key),
            conversation_id: Some(conversation_id),
        },
    );
    let spec = MachineSpec {
        name: id.clone(),
        region: settings.region.clone(),
        image: settings.image.clone(),
        guest: settings.guest.clone(),
        env,
        mount: Some(VolumeMount {
            volume_id: volume.id.clone(),
            path: settings.volume_path.clone(),
        }),
    };
    match provider.create_machine(&spec) {
        Ok(m) => {
            f.store
                .write(|tx| rows::record_machine(tx, &id, &m.id, provider.app_name(), &m.region))?;
            Ok(Ok(id))
        }
        Err(e) => {
            let message = format!("creating machine {id} failed: {}", e.message);
            finish_failed(ctx, id, Stage::Machine, message)
        }
    }
}

fn finish_failed(
    ctx: &SpawnContext<'_>,
    id: String,
    stage: Stage,
    message: String,
) -> Result<std::result::Result<String, SpawnFailure>> {
    Ok(match rollback(ctx, &id, stage, message)? {
        Some(failure) => Err(failure),
        None => Ok(id),
    })
}

/// Undo a failed spawn; `None` when the machine turned out to exist (adopted).
fn rollback(
    ctx: &SpawnContext<'_>,
    id: &str,
    stage: Stage,
    message: String,
) -> Result<Option<SpawnFailure>> {
    let (f, provider) = (ctx.f, ctx.provider);
    let listing = provider.list_machines();
    if let (Stage::Machine, Ok(machines)) = (&stage, &listing) {
        if let Some(m) = machines
            .iter()
            .find(|m| m.name == id && !machine_is_going(&m.state))
        {
            f.store
                .write(|tx| rows::record_machine(tx, id, &m.id, provider.app_name(), &m.region))?;
            return Ok(None);
        }
    }
    f.store.write(|tx| {
        rows::drain(
            tx,
            id,
            ctx.now,
            "spawn_failed",
            DrainGuard::Heartbeat(ctx.now),
        )?;
        rows::stop(tx, id, ctx.now, Some("spawn_failed"), None)
    })?;
    let mut rolled_back = false;
    if let Ok(machines) = listing {
        let app = provider.app_name();
        let (row, running) = f
            .store
            .read(|tx| Ok((workers::get_in(tx, id)?, rows::running_in_scope(tx, app)?)))?;
        let row =
            row.ok_or_else(|| Error::storage(format!("worker {id} vanished during rollback")))?;
        let mut teardown =
            Teardown::new(f, provider, &machines, &ctx.settings.volume_name, &running);
        rolled_back = teardown.run(&row)? == TeardownResult::Done;
    }
    Ok(Some(SpawnFailure {
        worker_id: id.to_string(),
        message,
        rolled_back,
    }))
}
