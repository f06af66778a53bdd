//! Teardown of `stopping` workers: cordon → stop → destroy the machine, delete
//! its volumes, then `stopped` (spec §5.4 step 8, without its leaks).
//!
//! Invariants:
//! - a worker reaches `stopped` only after every machine found for it is
//!   destroyed (or reported gone) and every volume found for it is deleted
//!   (or reported gone); anything deferred or failed keeps it `stopping`, and
//!   the next cycle tries again — a 5xx is an error, never "gone";
//! - the machines of a worker are the listed ones with its recorded id or
//!   named after it (a create whose answer was lost); its volumes are the
//!   recorded one, those mounted in its machines, and orphans carrying its
//!   dedicated volume name — but never a volume another running worker records
//!   or one attached to a machine that is not being torn down here;
//! - a machine absent from the cycle's listing is not called at all (the seed:
//!   no `GET` of a machine that is already gone).

use std::collections::BTreeSet;

use super::naming::dedicated_volume_name;
use super::rows;
use crate::error::Result;
use crate::factory::Factory;
use crate::providers::fly::{machine_is_going, volume_is_going};
use crate::providers::{Machine, Outcome, Provider, Volume};
use crate::workers::Worker;

/// How one teardown ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeardownResult {
    /// The worker is `stopped`.
    Done,
    /// Waiting on the provider (a deferred destroy or delete); retried next cycle.
    Pending(String),
    /// A provider call failed; retried next cycle.
    Failed(String),
}

/// Teardown state shared by the workers of one cycle.
pub struct Teardown<'a> {
    f: &'a Factory,
    provider: &'a dyn Provider,
    machines: &'a [Machine],
    volumes: Option<Vec<Volume>>,
    volume_prefix: &'a str,
    /// Volume ids recorded by running workers (never touched for another worker).
    recorded: BTreeSet<String>,
    /// Non-fatal problems (cordon or stop answers).
    pub warnings: Vec<String>,
}

enum Step {
    Ok,
    Gone,
    Wait(String),
    Fail(String),
}

fn outcome(what: String, result: crate::error::ProviderResult<Outcome>) -> Step {
    match result {
        Ok(Outcome::Done) => Step::Ok,
        Ok(Outcome::AlreadyGone) => Step::Gone,
        Ok(Outcome::Deferred(m)) => Step::Wait(format!("{what} deferred: {m}")),
        Err(e) => Step::Fail(format!("{what} failed: {}", e.message)),
    }
}

impl<'a> Teardown<'a> {
    /// Teardown over one cycle's machine listing; `running` are the rows in scope.
    pub fn new(
        f: &'a Factory,
        provider: &'a dyn Provider,
        machines: &'a [Machine],
        volume_prefix: &'a str,
        running: &[Worker],
    ) -> Self {
        Teardown {
            f,
            provider,
            machines,
            volumes: None,
            volume_prefix,
            recorded: running.iter().filter_map(|w| w.volume_id.clone()).collect(),
            warnings: Vec::new(),
        }
    }

    fn volume_listing(&mut self) -> std::result::Result<&[Volume], String> {
        if self.volumes.is_none() {
            let listed = self
                .provider
                .list_volumes()
                .map_err(|e| format!("listing volumes failed: {}", e.message))?;
            self.volumes = Some(listed);
        }
        Ok(self.volumes.as_deref().unwrap_or_default())
    }

    fn destroy_machine(&mut self, m: &Machine) -> Step {
        let id = &m.id;
        // Cordon and stop problems are warnings: the destroy's answer decides.
        for step in ["cordon", "stop"] {
            let result = if step == "cordon" {
                self.provider.cordon_machine(id)
            } else {
                self.provider.stop_machine(id)
            };
            match outcome(format!("machine {id} {step}"), result) {
                Step::Gone => return Step::Gone,
                Step::Wait(msg) | Step::Fail(msg) => self.warnings.push(msg),
                Step::Ok => {}
            }
        }
        outcome(
            format!("machine {id} destroy"),
            self.provider.destroy_machine(id),
        )
    }

    /// Tear `w` down; on success it is `stopped`.
    pub fn run(&mut self, w: &Worker) -> Result<TeardownResult> {
        let mine: Vec<&Machine> = self
            .machines
            .iter()
            .filter(|m| w.machine_id.as_deref() == Some(m.id.as_str()) || m.name == w.worker_id)
            .filter(|m| !machine_is_going(&m.state))
            .collect();
        let mut waiting = Vec::new();
        for m in &mine {
            match self.destroy_machine(m) {
                Step::Ok | Step::Gone => {}
                Step::Wait(msg) => waiting.push(msg),
                Step::Fail(msg) => return Ok(TeardownResult::Failed(msg)),
            }
        }
        if !waiting.is_empty() {
            return Ok(TeardownResult::Pending(waiting.join("; ")));
        }
        let torn: BTreeSet<&str> = mine.iter().map(|m| m.id.as_str()).collect();
        let dedicated = dedicated_volume_name(self.volume_prefix, &w.worker_id);
        let mut wanted: BTreeSet<String> = w.volume_id.iter().cloned().collect();
        wanted.extend(mine.iter().flat_map(|m| m.volume_ids.iter().cloned()));
        let recorded_elsewhere: BTreeSet<String> = self
            .recorded
            .iter()
            .filter(|v| w.volume_id.as_ref() != Some(*v))
            .cloned()
            .collect();
        let listing = match self.volume_listing() {
            Ok(l) => l,
            Err(msg) => return Ok(TeardownResult::Failed(msg)),
        };
        let targets: Vec<String> = listing
            .iter()
            .filter(|v| !volume_is_going(&v.state))
            .filter(|v| {
                let named = v.name == dedicated
                    && (w.region.is_none()
                        || v.region.is_empty()
                        || w.region.as_deref() == Some(v.region.as_str()));
                wanted.contains(&v.id) || named
            })
            .filter(|v| !recorded_elsewhere.contains(&v.id))
            .filter(|v| {
                v.attached_machine_id
                    .as_deref()
                    .is_none_or(|m| torn.contains(m) || wanted.contains(&v.id))
            })
            .map(|v| v.id.clone())
            .collect();
        for id in &targets {
            match outcome(
                format!("volume {id} delete"),
                self.provider.delete_volume(id),
            ) {
                Step::Ok | Step::Gone => {
                    if let Some(l) = self.volumes.as_mut() {
                        l.retain(|v| &v.id != id);
                    }
                }
                Step::Wait(msg) => waiting.push(msg),
                Step::Fail(msg) => return Ok(TeardownResult::Failed(msg)),
            }
        }
        if !waiting.is_empty() {
            return Ok(TeardownResult::Pending(waiting.join("; ")));
        }
        self.f.store.write(|tx| rows::finish(tx, &w.worker_id))?;
        Ok(TeardownResult::Done)
    }
}
