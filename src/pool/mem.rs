//! An in-memory [`Provider`] with fault injection and a call log, for pool tests.
//!
//! Machines start `started`; stop makes them `stopped`; destroying a live
//! machine is deferred and deleting an attached volume is deferred, as on Fly.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{ProviderError, ProviderErrorKind, ProviderResult};
use crate::providers::{Machine, MachineSpec, MachineStatus, Outcome, Provider, Volume};

/// App of the fake.
pub const APP: &str = "app";

/// Operations the fake can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    List,
    CreateVolume,
    CreateMachine,
    CreateMachineLost,
    Destroy,
    DeleteVolume,
}

#[derive(Default)]
pub(super) struct State {
    machines: BTreeMap<String, Machine>,
    volumes: BTreeMap<String, Volume>,
    pub env: BTreeMap<String, BTreeMap<String, String>>,
    faults: Vec<Op>,
    calls: Vec<String>,
    next: u32,
}

/// An in-memory provider: machines start `started`, stop makes them `stopped`,
/// destroy of a live machine is deferred, a volume delete while attached is deferred.
#[derive(Default)]
pub struct Mem {
    pub(super) s: Mutex<State>,
}

fn server_error(what: &str) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Http,
        message: format!("{what} failed: 500 internal server error"),
        status: Some(500),
        retryable: true,
    }
}

impl Mem {
    pub fn fail(&self, op: Op) {
        self.s.lock().unwrap().faults.push(op);
    }
    fn take(&self, s: &mut State, op: Op) -> bool {
        match s.faults.iter().position(|f| *f == op) {
            Some(i) => {
                s.faults.remove(i);
                true
            }
            None => false,
        }
    }
    pub fn add_machine(&self, id: &str, name: &str, state: &str, volume: Option<&str>) {
        let mut s = self.s.lock().unwrap();
        s.machines.insert(
            id.into(),
            Machine {
                id: id.into(),
                name: name.into(),
                region: "iad".into(),
                state: state.into(),
                status: MachineStatus::from_state(state),
                image: "img".into(),
                volume_ids: volume.iter().map(|v| v.to_string()).collect(),
            },
        );
        if let Some(v) = volume.and_then(|v| s.volumes.get_mut(v)) {
            v.attached_machine_id = Some(id.into());
        }
    }
    pub fn calls(&self, prefix: &str) -> usize {
        self.s
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
    pub fn machine_count(&self) -> usize {
        self.s.lock().unwrap().machines.len()
    }
    pub fn volume_count(&self) -> usize {
        self.s.lock().unwrap().volumes.len()
    }
}

impl Provider for Mem {
    fn app_name(&self) -> &str {
        APP
    }
    fn check_access(&self) -> ProviderResult<()> {
        Ok(())
    }
    fn list_machines(&self) -> ProviderResult<Vec<Machine>> {
        let mut s = self.s.lock().unwrap();
        s.calls.push("list".into());
        if self.take(&mut s, Op::List) {
            return Err(server_error("list machines"));
        }
        Ok(s.machines.values().cloned().collect())
    }
    fn get_machine(&self, id: &str) -> ProviderResult<Option<Machine>> {
        Ok(self.s.lock().unwrap().machines.get(id).cloned())
    }
    fn create_machine(&self, spec: &MachineSpec) -> ProviderResult<Machine> {
        let mut s = self.s.lock().unwrap();
        s.calls.push(format!("create-machine {}", spec.name));
        if self.take(&mut s, Op::CreateMachine) {
            return Err(server_error("create machine"));
        }
        s.next += 1;
        let id = format!("m{}", s.next);
        let m = Machine {
            id: id.clone(),
            name: spec.name.clone(),
            region: "iad".into(),
            state: "started".into(),
            status: MachineStatus::Active,
            image: spec.image.clone(),
            volume_ids: spec.mount.iter().map(|m| m.volume_id.clone()).collect(),
        };
        for v in &m.volume_ids {
            if let Some(vol) = s.volumes.get_mut(v) {
                vol.attached_machine_id = Some(id.clone());
            }
        }
        s.machines.insert(id.clone(), m.clone());
        s.env.insert(spec.name.clone(), spec.env.clone());
        if self.take(&mut s, Op::CreateMachineLost) {
            return Err(server_error("create machine (answer lost)"));
        }
        Ok(m)
    }
    fn cordon_machine(&self, id: &str) -> ProviderResult<Outcome> {
        let mut s = self.s.lock().unwrap();
        s.calls.push(format!("cordon {id}"));
        Ok(if s.machines.contains_key(id) {
            Outcome::Done
        } else {
            Outcome::AlreadyGone
        })
    }
    fn stop_machine(&self, id: &str) -> ProviderResult<Outcome> {
        let mut s = self.s.lock().unwrap();
        s.calls.push(format!("stop {id}"));
        match s.machines.get_mut(id) {
            None => Ok(Outcome::AlreadyGone),
            Some(m) => {
                m.state = "stopped".into();
                m.status = MachineStatus::Stopped;
                Ok(Outcome::Done)
            }
        }
    }
    fn destroy_machine(&self, id: &str) -> ProviderResult<Outcome> {
        let mut s = self.s.lock().unwrap();
        s.calls.push(format!("destroy {id}"));
        if self.take(&mut s, Op::Destroy) {
            return Err(server_error("destroy machine"));
        }
        match s.machines.get(id).map(|m| m.status) {
            None => Ok(Outcome::AlreadyGone),
            Some(MachineStatus::Active) => Ok(Outcome::Deferred("not stopped".into())),
            Some(MachineStatus::Stopped) => {
                s.machines.remove(id);
                for v in s.volumes.values_mut() {
                    if v.attached_machine_id.as_deref() == Some(id) {
                        v.attached_machine_id = None;
                    }
                }
                Ok(Outcome::Done)
            }
        }
    }
    fn list_volumes(&self) -> ProviderResult<Vec<Volume>> {
        let mut s = self.s.lock().unwrap();
        s.calls.push("list-volumes".into());
        Ok(s.volumes.values().cloned().collect())
    }
    fn create_volume(&self, name: &str, region: &str, size_gb: u64) -> ProviderResult<Volume> {
        let mut s = self.s.lock().unwrap();
        s.calls.push(format!("create-volume {name}"));
        if self.take(&mut s, Op::CreateVolume) {
            return Err(server_error("create volume"));
        }
        s.next += 1;
        let v = Volume {
            id: format!("vol{}", s.next),
            name: name.into(),
            region: region.into(),
            size_gb,
            state: "created".into(),
            attached_machine_id: None,
        };
        s.volumes.insert(v.id.clone(), v.clone());
        Ok(v)
    }
    fn delete_volume(&self, id: &str) -> ProviderResult<Outcome> {
        let mut s = self.s.lock().unwrap();
        s.calls.push(format!("delete-volume {id}"));
        if self.take(&mut s, Op::DeleteVolume) {
            return Err(server_error("delete volume"));
        }
        match s.volumes.get(id) {
            None => Ok(Outcome::AlreadyGone),
            Some(v) if v.attached_machine_id.is_some() => Ok(Outcome::Deferred("attached".into())),
            Some(_) => {
                s.volumes.remove(id);
                Ok(Outcome::Done)
            }
        }
    }
}
