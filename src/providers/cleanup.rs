//! `fly_cleanup`: destroy every machine and volume of an app, verify, report (spec §3.7).
//!
//! Invariants:
//! - the access check and the first machine listing fail the whole call
//!   (nothing has been touched yet); every later problem is recorded in the
//!   report's `warnings` / `errors` and the run goes on;
//! - an id is reported deleted only when the provider accepted the delete or
//!   said it does not exist, **and** the verification listing no longer shows
//!   it; everything the verification listing still shows is reported
//!   remaining (a 5xx is never taken for "gone", so faults cannot hide a leak);
//! - a destroy deferred by a precondition (machine not stopped yet) waits for
//!   the machine to settle and is retried once; a deferred volume delete
//!   (still attached) is retried a bounded number of times;
//! - at most `machine_concurrency` / `volume_concurrency` calls run at once;
//!   the report lists ids and messages in listing order.
//!
//! Database rows are not touched: cleanup works on the provider only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::fly::{machine_is_going, volume_is_going};
use super::{Outcome, Provider};
use crate::error::ProviderResult;

/// Limits and patience of a cleanup run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Machines torn down at once (spec default 6; values below 1 mean 1).
    pub machine_concurrency: usize,
    /// Volumes deleted at once (spec default 16; values below 1 mean 1).
    pub volume_concurrency: usize,
    /// How long a deferred destroy waits for the machine to stop.
    pub settle_timeout: Duration,
    /// Poll interval while waiting.
    pub poll_interval: Duration,
    /// Delete attempts per volume while it reports a failed precondition.
    pub volume_attempts: u32,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        CleanupOptions {
            machine_concurrency: 6,
            volume_concurrency: 16,
            settle_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            volume_attempts: 3,
        }
    }
}

/// What a cleanup run did (the spec's report, snake_case).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CleanupReport {
    /// The app cleaned.
    pub app_name: String,
    /// Machines listed at the start.
    pub machines_found: usize,
    /// Machines deleted (or already gone) and absent at verification.
    pub machines_deleted: usize,
    /// Machines still listed at verification.
    pub machines_remaining: usize,
    /// Ids behind `machines_deleted`.
    pub machine_ids_deleted: Vec<String>,
    /// Ids behind `machines_remaining`.
    pub machine_ids_remaining: Vec<String>,
    /// Volumes listed before the volume phase.
    pub volumes_found: usize,
    /// Volumes deleted (or already gone) and absent at verification.
    pub volumes_deleted: usize,
    /// Volumes still listed at verification.
    pub volumes_remaining: usize,
    /// Ids behind `volumes_deleted`.
    pub volume_ids_deleted: Vec<String>,
    /// Ids behind `volumes_remaining`.
    pub volume_ids_remaining: Vec<String>,
    /// Non-fatal problems (cordon/stop failures, leftovers).
    pub warnings: Vec<String>,
    /// Failed deletes and failed listings.
    pub errors: Vec<String>,
}

/// Result of one item's teardown.
#[derive(Default)]
struct ItemResult {
    deleted: bool,
    warnings: Vec<String>,
    error: Option<String>,
}

/// `f` over `items` with at most `limit` running at once; results in input order.
fn bounded<T: Sync, R: Send>(items: &[T], limit: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = limit.max(1).min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return done;
                        };
                        done.push((i, f(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Cordon, stop and destroy one machine.
fn teardown_machine(p: &dyn Provider, id: &str, o: &CleanupOptions) -> ItemResult {
    let mut r = ItemResult::default();
    let cordon = || p.cordon_machine(id);
    let stop = || p.stop_machine(id);
    let steps: [(&str, &dyn Fn() -> ProviderResult<Outcome>); 2] =
        [("cordon", &cordon), ("stop", &stop)];
    for (step, call) in steps {
        match call() {
            Ok(Outcome::Done) => {}
            Ok(Outcome::AlreadyGone) => {
                r.deleted = true;
                return r;
            }
            Ok(Outcome::Deferred(m)) => r
                .warnings
                .push(format!("Machine {id}: {step} warning ({m})")),
            Err(e) => r
                .warnings
                .push(format!("Machine {id}: {step} warning ({})", e.message)),
        }
    }
    let mut result = p.destroy_machine(id);
    if let Ok(Outcome::Deferred(_)) = result {
        // Not stopped yet: give it time to settle, then try once more.
        match p.wait_for_state(
            id,
            &["stopped", "suspended", "failed", "destroyed"],
            o.settle_timeout,
            o.poll_interval,
        ) {
            Ok(Outcome::AlreadyGone) => result = Ok(Outcome::AlreadyGone),
            _ => result = p.destroy_machine(id),
        }
    }
    match result {
        Ok(Outcome::Done | Outcome::AlreadyGone) => r.deleted = true,
        Ok(Outcome::Deferred(m)) => r.error = Some(format!("Machine {id}: destroy failed ({m})")),
        Err(e) => r.error = Some(format!("Machine {id}: destroy failed ({})", e.message)),
    }
    r
}

/// Delete one volume, retrying while it reports a failed precondition.
fn delete_volume(p: &dyn Provider, id: &str, o: &CleanupOptions) -> ItemResult {
    let mut r = ItemResult::default();
    let attempts = o.volume_attempts.max(1);
    for attempt in 1..=attempts {
        match p.delete_volume(id) {
            Ok(Outcome::Done | Outcome::AlreadyGone) => {
                r.deleted = true;
                return r;
            }
            Ok(Outcome::Deferred(m)) if attempt == attempts => {
                r.error = Some(format!("Volume {id}: destroy failed ({m})"));
            }
            Ok(Outcome::Deferred(_)) => std::thread::sleep(o.poll_interval),
            Err(e) => {
                r.error = Some(format!("Volume {id}: destroy failed ({})", e.message));
                return r;
            }
        }
    }
    r
}

/// Split `acted` ids into (deleted, remaining) given the verification listing
/// `listed` (`None` when verification failed: only confirmed deletes count).
fn settle(acted: Vec<(String, bool)>, listed: Option<Vec<String>>) -> (Vec<String>, Vec<String>) {
    match listed {
        Some(still) => {
            let deleted = acted
                .into_iter()
                .filter(|(id, ok)| *ok && !still.contains(id))
                .map(|(id, _)| id)
                .collect();
            (deleted, still)
        }
        None => {
            let (ok, failed): (Vec<_>, Vec<_>) = acted.into_iter().partition(|(_, ok)| *ok);
            (
                ok.into_iter().map(|(id, _)| id).collect(),
                failed.into_iter().map(|(id, _)| id).collect(),
            )
        }
    }
}

/// Destroy every machine and volume of `provider`'s app and verify (spec §3.7).
///
/// Errors only when the access check or the first machine listing fails.
pub fn fly_cleanup(
    provider: &dyn Provider,
    options: &CleanupOptions,
) -> ProviderResult<CleanupReport> {
    provider.check_access()?;
    let machines = provider.list_machines()?;
    let mut report = CleanupReport {
        app_name: provider.app_name().to_string(),
        machines_found: machines.len(),
        ..Default::default()
    };

    let ids: Vec<String> = machines.into_iter().map(|m| m.id).collect();
    let results = bounded(&ids, options.machine_concurrency, |id| {
        teardown_machine(provider, id, options)
    });
    let mut acted = Vec::with_capacity(ids.len());
    for (id, r) in ids.into_iter().zip(results) {
        report.warnings.extend(r.warnings);
        report.errors.extend(r.error);
        acted.push((id, r.deleted));
    }
    let listed = match provider.list_machines() {
        Ok(ms) => Some(
            ms.into_iter()
                .filter(|m| !machine_is_going(&m.state))
                .map(|m| m.id)
                .collect(),
        ),
        Err(e) => {
            report.errors.push(format!(
                "Fly cleanup could not verify machines ({})",
                e.message
            ));
            None
        }
    };
    let (deleted, remaining) = settle(acted, listed);
    if !remaining.is_empty() {
        report.warnings.push(format!(
            "Fly cleanup left {} machine(s) after verification: {}",
            remaining.len(),
            remaining.join(", ")
        ));
    }
    report.machines_deleted = deleted.len();
    report.machines_remaining = remaining.len();
    report.machine_ids_deleted = deleted;
    report.machine_ids_remaining = remaining;

    let volumes = match provider.list_volumes() {
        Ok(v) => v,
        Err(e) => {
            report.errors.push(format!(
                "Fly cleanup could not list volumes ({})",
                e.message
            ));
            return Ok(report);
        }
    };
    report.volumes_found = volumes.len();
    let ids: Vec<String> = volumes.into_iter().map(|v| v.id).collect();
    let results = bounded(&ids, options.volume_concurrency, |id| {
        delete_volume(provider, id, options)
    });
    let mut acted = Vec::with_capacity(ids.len());
    for (id, r) in ids.into_iter().zip(results) {
        report.warnings.extend(r.warnings);
        report.errors.extend(r.error);
        acted.push((id, r.deleted));
    }
    let listed = match provider.list_volumes() {
        Ok(vs) => Some(
            vs.into_iter()
                .filter(|v| !volume_is_going(&v.state))
                .map(|v| v.id)
                .collect(),
        ),
        Err(e) => {
            report.errors.push(format!(
                "Fly cleanup could not verify volumes ({})",
                e.message
            ));
            None
        }
    };
    let (deleted, remaining) = settle(acted, listed);
    if !remaining.is_empty() {
        report.warnings.push(format!(
            "Fly cleanup left {} volume(s) after verification: {}",
            remaining.len(),
            remaining.join(", ")
        ));
    }
    report.volumes_deleted = deleted.len();
    report.volumes_remaining = remaining.len();
    report.volume_ids_deleted = deleted;
    report.volume_ids_remaining = remaining;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ProviderError, ProviderErrorKind};
    use crate::providers::{Machine, MachineSpec, MachineStatus, Volume};
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    /// In-memory provider: machines (id → state), volumes (id → attached machine).
    #[derive(Default)]
    struct Mem {
        machines: Mutex<BTreeMap<String, String>>,
        volumes: Mutex<BTreeMap<String, Option<String>>>,
        broken_destroy: BTreeSet<String>,
        gone_on_cordon: BTreeSet<String>,
        calls: Mutex<Vec<String>>,
    }

    fn boom() -> ProviderError {
        ProviderError {
            kind: ProviderErrorKind::Http,
            message: "500 internal server error".into(),
            status: Some(500),
            retryable: true,
        }
    }

    impl Mem {
        fn log(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
        fn with(machines: &[(&str, &str)], volumes: &[(&str, Option<&str>)]) -> Mem {
            let m = Mem::default();
            for (id, state) in machines {
                m.machines
                    .lock()
                    .unwrap()
                    .insert(id.to_string(), state.to_string());
            }
            for (id, att) in volumes {
                m.volumes
                    .lock()
                    .unwrap()
                    .insert(id.to_string(), att.map(str::to_string));
            }
            m
        }
    }

    impl Provider for Mem {
        fn app_name(&self) -> &str {
            "mem-app"
        }
        fn check_access(&self) -> ProviderResult<()> {
            Ok(())
        }
        fn list_machines(&self) -> ProviderResult<Vec<Machine>> {
            Ok(self
                .machines
                .lock()
                .unwrap()
                .iter()
                .map(|(id, state)| Machine {
                    id: id.clone(),
                    name: id.clone(),
                    region: String::new(),
                    state: state.clone(),
                    status: MachineStatus::from_state(state),
                    image: String::new(),
                    volume_ids: vec![],
                })
                .collect())
        }
        fn get_machine(&self, machine_id: &str) -> ProviderResult<Option<Machine>> {
            Ok(self
                .list_machines()?
                .into_iter()
                .find(|m| m.id == machine_id))
        }
        fn create_machine(&self, _spec: &MachineSpec) -> ProviderResult<Machine> {
            Err(ProviderError::invalid_input("not supported"))
        }
        fn cordon_machine(&self, id: &str) -> ProviderResult<Outcome> {
            self.log(format!("cordon {id}"));
            if self.gone_on_cordon.contains(id) {
                return Ok(Outcome::AlreadyGone);
            }
            Ok(Outcome::Done)
        }
        fn stop_machine(&self, id: &str) -> ProviderResult<Outcome> {
            self.log(format!("stop {id}"));
            match self.machines.lock().unwrap().get_mut(id) {
                Some(state) => {
                    *state = "stopped".into();
                    Ok(Outcome::Done)
                }
                None => Ok(Outcome::AlreadyGone),
            }
        }
        fn destroy_machine(&self, id: &str) -> ProviderResult<Outcome> {
            self.log(format!("destroy {id}"));
            if self.broken_destroy.contains(id) {
                return Err(boom());
            }
            if self.machines.lock().unwrap().remove(id).is_none() {
                return Ok(Outcome::AlreadyGone);
            }
            for att in self.volumes.lock().unwrap().values_mut() {
                if att.as_deref() == Some(id) {
                    *att = None;
                }
            }
            Ok(Outcome::Done)
        }
        fn list_volumes(&self) -> ProviderResult<Vec<Volume>> {
            Ok(self
                .volumes
                .lock()
                .unwrap()
                .iter()
                .map(|(id, att)| Volume {
                    id: id.clone(),
                    name: String::new(),
                    region: String::new(),
                    size_gb: 1,
                    state: "created".into(),
                    attached_machine_id: att.clone(),
                })
                .collect())
        }
        fn create_volume(&self, _n: &str, _r: &str, _s: u64) -> ProviderResult<Volume> {
            Err(ProviderError::invalid_input("not supported"))
        }
        fn delete_volume(&self, id: &str) -> ProviderResult<Outcome> {
            self.log(format!("delete-volume {id}"));
            let mut vols = self.volumes.lock().unwrap();
            match vols.get(id) {
                None => Ok(Outcome::AlreadyGone),
                Some(Some(m)) => Ok(Outcome::Deferred(format!("412 attached to {m}"))),
                Some(None) => {
                    vols.remove(id);
                    Ok(Outcome::Done)
                }
            }
        }
    }

    fn quick() -> CleanupOptions {
        CleanupOptions {
            settle_timeout: Duration::from_millis(20),
            poll_interval: Duration::from_millis(1),
            ..Default::default()
        }
    }

    #[test]
    fn cleanup_destroys_everything_and_reports_it() {
        let p = Mem::with(
            &[("m1", "started"), ("m2", "stopped")],
            &[("v1", Some("m1")), ("v2", None), ("v3", None)],
        );
        let r = fly_cleanup(&p, &quick()).unwrap();
        assert_eq!(r.app_name, "mem-app");
        assert_eq!(
            (r.machines_found, r.machines_deleted, r.machines_remaining),
            (2, 2, 0)
        );
        assert_eq!(
            (r.volumes_found, r.volumes_deleted, r.volumes_remaining),
            (3, 3, 0)
        );
        assert_eq!(r.machine_ids_deleted, vec!["m1", "m2"]);
        assert!(r.warnings.is_empty() && r.errors.is_empty(), "{r:?}");
        assert!(p.machines.lock().unwrap().is_empty() && p.volumes.lock().unwrap().is_empty());
    }

    #[test]
    fn a_destroy_that_keeps_failing_is_an_error_and_a_leftover_never_a_delete() {
        let mut p = Mem::with(
            &[("m1", "started"), ("m2", "started")],
            &[("v1", Some("m1"))],
        );
        p.broken_destroy.insert("m1".into());
        let r = fly_cleanup(&p, &quick()).unwrap();
        assert_eq!(r.machine_ids_deleted, vec!["m2"]);
        assert_eq!(r.machine_ids_remaining, vec!["m1"]);
        assert_eq!(r.volume_ids_remaining, vec!["v1"]);
        assert_eq!(
            r.errors,
            vec![
                "Machine m1: destroy failed (500 internal server error)".to_string(),
                "Volume v1: destroy failed (412 attached to m1)".to_string(),
            ]
        );
        assert_eq!(
            r.warnings,
            vec![
                "Fly cleanup left 1 machine(s) after verification: m1".to_string(),
                "Fly cleanup left 1 volume(s) after verification: v1".to_string(),
            ]
        );
    }

    #[test]
    fn a_machine_gone_at_cordon_counts_as_deleted_without_more_calls() {
        let mut p = Mem::with(&[("m1", "started")], &[]);
        p.machines.lock().unwrap().clear();
        p.machines
            .lock()
            .unwrap()
            .insert("m1".into(), "destroyed".into());
        p.gone_on_cordon.insert("m1".into());
        let r = fly_cleanup(&p, &quick()).unwrap();
        assert_eq!(r.machine_ids_deleted, vec!["m1"]);
        assert!(
            r.warnings.is_empty(),
            "destroyed machines are not leftovers: {r:?}"
        );
        assert_eq!(*p.calls.lock().unwrap(), vec!["cordon m1".to_string()]);
    }

    #[test]
    fn bounded_keeps_order_and_limits_concurrency() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..40).collect();
        let out = bounded(&items, 4, |x| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
        assert_eq!(bounded(&[1, 2], 0, |x| x + 1), vec![2, 3]);
        assert!(bounded(&Vec::<u8>::new(), 8, |x| *x).is_empty());
    }

    #[test]
    fn settle_trusts_the_verification_listing() {
        let acted = vec![
            ("a".to_string(), true),
            ("b".to_string(), true),
            ("c".to_string(), false),
        ];
        let (deleted, remaining) = settle(acted.clone(), Some(vec!["b".into(), "c".into()]));
        assert_eq!(deleted, vec!["a"]);
        assert_eq!(remaining, vec!["b", "c"]);
        let (deleted, remaining) = settle(acted, None);
        assert_eq!(deleted, vec!["a", "b"]);
        assert_eq!(remaining, vec!["c"]);
    }
}
