//! The local-process provider: a "machine" is a worker subprocess, a "volume"
//! is a data directory. The embedded default: the whole pool runs on one host
//! with no account.
//!
//! Layout under the data root (default `<db>.workers/`, mode 0700):
//! `machines/<id>.json` (one record per machine: pid, process start time,
//! worker id, volume, cordon flag), `volumes/<name>/` (the data directories)
//! and `logs/<worker id>.log` (the worker's stdout and stderr).
//!
//! Invariants:
//! - a machine survives a restart of the control loop: its record is on disk,
//!   and liveness is "a process with the recorded pid exists, is not a zombie
//!   and started at the recorded time" (`/proc/<pid>/stat`), so a reused pid is
//!   never mistaken for the worker;
//! - children spawned by this process are kept in one process-wide registry and
//!   `try_wait`ed on every liveness check, so an exited worker is reaped (never
//!   a zombie counted alive), whichever provider instance spawned it;
//! - records are written atomically (temporary file + rename) with mode 0600;
//! - workers run in their own process group (a Ctrl-C of the control loop does
//!   not kill them); stop sends SIGTERM to the group, then SIGKILL after the
//!   grace period; destroy kills what is left and removes the record;
//! - a volume is deleted only when no machine record references it
//!   (`Deferred` otherwise, like Fly's "attached" precondition);
//! - the environment contract (`AGENT_FACTORY_*`, `WORKER_ID`, the `OPENCLAW_*`
//!   pre-assignment keys) is never inherited from the parent: a worker sees only
//!   the values given for it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod process;

use process::{proc_stat, process_alive, signal, wait_exit};

use super::{Machine, MachineSpec, MachineStatus, Outcome, Provider, Volume};
use crate::error::{ProviderError, ProviderErrorKind, ProviderResult};

/// App name of the local pool (worker rows record it as their `app_name`).
pub const LOCAL_APP_NAME: &str = "local";
/// Region reported for local machines and volumes.
pub const LOCAL_REGION: &str = "local";
/// Longest volume name (the Fly rule, so names work on both providers).
const MAX_VOLUME_NAME: usize = 30;
/// How long destroy waits for a SIGKILLed worker to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Variables of the worker environment contract: removed from the inherited
/// environment so a worker only ever sees the values set for it.
pub const CONTRACT_ENV: [&str; 12] = [
    "AGENT_FACTORY_DB",
    "AGENT_FACTORY_WORKER_ID",
    "AGENT_FACTORY_DATA_DIR",
    "AGENT_FACTORY_HANDLER",
    "WORKER_ID",
    "WORKSPACE_ID",
    "WORKER_IDLE_TIMEOUT_MS",
    "OPENCLAW_AGENT_KEY",
    "OPENCLAW_CONVERSATION_ID",
    "OPENCLAW_SERVICE_ID",
    "OPENCLAW_SERVICE_KEY",
    "OPENCLAW_LINKING_SHARED_SECRET",
];

/// How to run local workers.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalProviderConfig {
    /// Worker argv, e.g. `[python, "-m", "agent_factory", "worker"]`.
    pub command: Vec<String>,
    /// Where records, volumes and logs live.
    pub data_root: PathBuf,
    /// Database the workers open (`AGENT_FACTORY_DB`).
    pub db_path: Option<PathBuf>,
    /// Handler `module:function` (`AGENT_FACTORY_HANDLER`).
    pub handler: Option<String>,
    /// Extra environment for every worker (below the per-machine values).
    pub env: BTreeMap<String, String>,
    /// Working directory of the workers (`None`: the caller's).
    pub cwd: Option<PathBuf>,
    /// Time between SIGTERM and SIGKILL when stopping a worker.
    pub stop_grace: Duration,
}

impl LocalProviderConfig {
    /// A config with no database, handler, extra env or cwd and a 10 s stop grace.
    pub fn new(command: Vec<String>, data_root: impl Into<PathBuf>) -> Self {
        LocalProviderConfig {
            command,
            data_root: data_root.into(),
            db_path: None,
            handler: None,
            env: BTreeMap::new(),
            cwd: None,
            stop_grace: Duration::from_secs(10),
        }
    }

    /// The default data root of a database file: `<db>.workers` beside it.
    pub fn default_data_root(db_path: &Path) -> PathBuf {
        let mut name = db_path.as_os_str().to_os_string();
        name.push(".workers");
        PathBuf::from(name)
    }
}

/// One machine as recorded on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: String,
    name: String,
    pid: i32,
    /// Process start time in clock ticks since boot (`None` where `/proc` is missing).
    start_time: Option<u64>,
    volume_id: Option<String>,
    cordoned: bool,
    created_at_ms: i64,
    stop_requested_at_ms: Option<i64>,
    log_path: String,
}

/// Worker subprocesses and data directories under one data root.
#[derive(Debug)]
pub struct LocalProvider {
    config: LocalProviderConfig,
    machines_dir: PathBuf,
    volumes_dir: PathBuf,
    logs_dir: PathBuf,
}

fn local_error(message: String) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Transport,
        message,
        status: None,
        retryable: false,
    }
}

fn io_error(context: String, err: std::io::Error) -> ProviderError {
    local_error(format!("local provider: {context}: {err}"))
}

/// Create `dir` (and parents) with mode 0700.
fn private_dir(dir: &Path) -> ProviderResult<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io_error(format!("cannot create {}", dir.display()), e))
}

/// A name usable as one path component: `[A-Za-z0-9._:-]`, 1-128 bytes, not `.`/`..`.
fn check_component(what: &str, value: &str) -> ProviderResult<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ProviderError::invalid_input(format!(
            "{what} {value:?} must be 1-128 characters of letters, digits and . _ : -"
        )))
    }
}

fn check_volume_name(name: &str) -> ProviderResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_VOLUME_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ProviderError::invalid_input(format!(
            "volume name must be 1-{MAX_VOLUME_NAME} lowercase letters, digits or underscores, got {name:?}"
        )))
    }
}

fn now_ms() -> i64 {
    crate::clock::system_now_ms()
}

impl LocalProvider {
    /// A provider over `config.data_root` (created 0700 if missing); fails on an
    /// empty command or an unusable data root.
    pub fn new(config: LocalProviderConfig) -> ProviderResult<Self> {
        if config.command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err(ProviderError::invalid_input(
                "local provider command must name a program (e.g. [python, -m, agent_factory, worker])",
            ));
        }
        if let Some(h) = &config.handler {
            if h.trim().is_empty() || !h.contains(':') {
                return Err(ProviderError::invalid_input(format!(
                    "local provider handler must be module:function, got {h:?}"
                )));
            }
        }
        if let Some(key) = config.env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(ProviderError::invalid_input(format!(
                "local provider env key {key:?} is not a valid variable name"
            )));
        }
        let root = config.data_root.clone();
        let provider = LocalProvider {
            machines_dir: root.join("machines"),
            volumes_dir: root.join("volumes"),
            logs_dir: root.join("logs"),
            config,
        };
        for dir in [
            &root,
            &provider.machines_dir,
            &provider.volumes_dir,
            &provider.logs_dir,
        ] {
            private_dir(dir)?;
        }
        Ok(provider)
    }

    /// The configuration in use.
    pub fn config(&self) -> &LocalProviderConfig {
        &self.config
    }

    /// The directory of a volume.
    pub fn volume_dir(&self, volume_id: &str) -> PathBuf {
        self.volumes_dir.join(volume_id)
    }

    /// The pid of a machine's process, when it is alive.
    pub fn pid_of(&self, machine_id: &str) -> ProviderResult<Option<i32>> {
        Ok(self
            .read_record(machine_id)?
            .filter(|r| process_alive(r.pid, r.start_time))
            .map(|r| r.pid))
    }

    fn record_path(&self, machine_id: &str) -> PathBuf {
        self.machines_dir.join(format!("{machine_id}.json"))
    }

    fn read_record(&self, machine_id: &str) -> ProviderResult<Option<Record>> {
        check_component("machine id", machine_id)?;
        let path = self.record_path(machine_id);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                ProviderError::protocol(format!(
                    "local provider: machine record {} is corrupt: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(format!("cannot read {}", path.display()), e)),
        }
    }

    fn write_record(&self, record: &Record) -> ProviderResult<()> {
        let path = self.record_path(&record.id);
        let tmp = self.machines_dir.join(format!(".{}.tmp", record.id));
        let text = serde_json::to_vec_pretty(record)
            .map_err(|e| local_error(format!("local provider: cannot encode a record: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut file = opts.open(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| io_error(format!("cannot write {}", path.display()), e))
    }

    fn remove_record(&self, machine_id: &str) -> ProviderResult<()> {
        match fs::remove_file(self.record_path(machine_id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(format!("cannot remove machine {machine_id}"), e)),
        }
    }

    fn records(&self) -> ProviderResult<Vec<Record>> {
        let entries = fs::read_dir(&self.machines_dir)
            .map_err(|e| io_error(format!("cannot list {}", self.machines_dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("cannot list machines".into(), e))?;
            let file = entry.file_name().to_string_lossy().to_string();
            let Some(id) = file.strip_suffix(".json").filter(|s| !s.starts_with('.')) else {
                continue;
            };
            if let Some(r) = self.read_record(id)? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    fn machine_of(record: &Record) -> Machine {
        let alive = process_alive(record.pid, record.start_time);
        let state = match (alive, record.stop_requested_at_ms) {
            (true, None) => "started",
            (true, Some(_)) => "stopping",
            (false, _) => "stopped",
        };
        Machine {
            id: record.id.clone(),
            name: record.name.clone(),
            region: LOCAL_REGION.into(),
            state: state.into(),
            status: MachineStatus::from_state(state),
            image: String::new(),
            volume_ids: record.volume_id.iter().cloned().collect(),
        }
    }

    /// SIGKILL a live process and wait for it; false if it would not die.
    fn kill(record: &Record) -> bool {
        if !process_alive(record.pid, record.start_time) {
            return true;
        }
        signal(record.pid, libc::SIGKILL);
        wait_exit(record.pid, record.start_time, KILL_WAIT)
    }

    fn spawn(&self, spec: &MachineSpec, volume: Option<&str>) -> ProviderResult<Record> {
        let id = format!("local-{}", uuid::Uuid::now_v7().simple());
        let log_path = self.logs_dir.join(format!("{}.log", spec.name));
        let mut opts = fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let log = opts
            .open(&log_path)
            .map_err(|e| io_error(format!("cannot open {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| io_error("cannot share the log file".into(), e))?;
        let (program, args) = self
            .config
            .command
            .split_first()
            .ok_or_else(|| ProviderError::invalid_input("local provider command is empty"))?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        for key in CONTRACT_ENV {
            cmd.env_remove(key);
        }
        cmd.envs(&self.config.env);
        if let Some(h) = &self.config.handler {
            cmd.env("AGENT_FACTORY_HANDLER", h);
        }
        cmd.envs(&spec.env);
        cmd.env("AGENT_FACTORY_WORKER_ID", &spec.name);
        cmd.env("WORKER_ID", &spec.name);
        if let Some(db) = &self.config.db_path {
            cmd.env("AGENT_FACTORY_DB", db);
        }
        if let Some(v) = volume {
            cmd.env("AGENT_FACTORY_DATA_DIR", self.volume_dir(v));
        }
        if let Some(dir) = &self.config.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|e| {
            io_error(
                format!("cannot start worker {} ({program:?})", spec.name),
                e,
            )
        })?;
        let pid = i32::try_from(child.id()).map_err(|_| {
            local_error(format!(
                "local provider: pid {} is out of range",
                child.id()
            ))
        })?;
        // The start time is readable until the child is reaped, which only we can do.
        let start_time = proc_stat(pid).map(|(_, s)| s);
        process::register(pid, start_time, child);
        let record = Record {
            id,
            name: spec.name.clone(),
            pid,
            start_time,
            volume_id: volume.map(str::to_string),
            cordoned: false,
            created_at_ms: now_ms(),
            stop_requested_at_ms: None,
            log_path: log_path.display().to_string(),
        };
        if let Err(e) = self.write_record(&record) {
            // Without a record nobody could ever stop it: do not leave it running.
            Self::kill(&record);
            return Err(e);
        }
        Ok(record)
    }
}

impl Provider for LocalProvider {
    fn app_name(&self) -> &str {
        LOCAL_APP_NAME
    }

    fn check_access(&self) -> ProviderResult<()> {
        for dir in [&self.machines_dir, &self.volumes_dir, &self.logs_dir] {
            let meta = fs::metadata(dir)
                .map_err(|e| io_error(format!("cannot access {}", dir.display()), e))?;
            if !meta.is_dir() || meta.permissions().readonly() {
                return Err(local_error(format!(
                    "local provider: {} is not a writable directory",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    fn list_machines(&self) -> ProviderResult<Vec<Machine>> {
        Ok(self.records()?.iter().map(Self::machine_of).collect())
    }

    fn get_machine(&self, machine_id: &str) -> ProviderResult<Option<Machine>> {
        Ok(self.read_record(machine_id)?.as_ref().map(Self::machine_of))
    }

    fn create_machine(&self, spec: &MachineSpec) -> ProviderResult<Machine> {
        check_component("machine name", &spec.name)?;
        if let Some(key) = spec.env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(ProviderError::invalid_input(format!(
                "machine env key {key:?} is not a valid variable name"
            )));
        }
        let records = self.records()?;
        if let Some(taken) = records
            .iter()
            .find(|r| r.name == spec.name && process_alive(r.pid, r.start_time))
        {
            return Err(ProviderError::invalid_input(format!(
                "a local machine named {:?} is already running ({})",
                spec.name, taken.id
            )));
        }
        let volume = match &spec.mount {
            None => None,
            Some(m) => {
                check_volume_name(&m.volume_id)?;
                if !self.volume_dir(&m.volume_id).is_dir() {
                    return Err(ProviderError::invalid_input(format!(
                        "volume {:?} does not exist",
                        m.volume_id
                    )));
                }
                if let Some(r) = records
                    .iter()
                    .find(|r| r.volume_id.as_deref() == Some(m.volume_id.as_str()))
                {
                    return Err(ProviderError::invalid_input(format!(
                        "volume {:?} is attached to machine {}",
                        m.volume_id, r.id
                    )));
                }
                Some(m.volume_id.as_str())
            }
        };
        let record = self.spawn(spec, volume)?;
        Ok(Self::machine_of(&record))
    }

    fn cordon_machine(&self, machine_id: &str) -> ProviderResult<Outcome> {
        let Some(mut record) = self.read_record(machine_id)? else {
            return Ok(Outcome::AlreadyGone);
        };
        if !record.cordoned {
            record.cordoned = true;
            self.write_record(&record)?;
        }
        Ok(Outcome::Done)
    }

    fn stop_machine(&self, machine_id: &str) -> ProviderResult<Outcome> {
        let Some(mut record) = self.read_record(machine_id)? else {
            return Ok(Outcome::AlreadyGone);
        };
        if record.stop_requested_at_ms.is_none() {
            record.stop_requested_at_ms = Some(now_ms());
            self.write_record(&record)?;
        }
        if !process_alive(record.pid, record.start_time) {
            return Ok(Outcome::Done);
        }
        signal(record.pid, libc::SIGTERM);
        if wait_exit(record.pid, record.start_time, self.config.stop_grace) || Self::kill(&record) {
            Ok(Outcome::Done)
        } else {
            Ok(Outcome::Deferred(format!(
                "worker process {} of machine {machine_id} did not exit after SIGKILL",
                record.pid
            )))
        }
    }

    fn destroy_machine(&self, machine_id: &str) -> ProviderResult<Outcome> {
        let Some(record) = self.read_record(machine_id)? else {
            return Ok(Outcome::AlreadyGone);
        };
        if !Self::kill(&record) {
            return Ok(Outcome::Deferred(format!(
                "worker process {} of machine {machine_id} did not exit after SIGKILL",
                record.pid
            )));
        }
        self.remove_record(machine_id)?;
        Ok(Outcome::Done)
    }

    fn list_volumes(&self) -> ProviderResult<Vec<Volume>> {
        let records = self.records()?;
        let entries = fs::read_dir(&self.volumes_dir)
            .map_err(|e| io_error(format!("cannot list {}", self.volumes_dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("cannot list volumes".into(), e))?;
            if !entry.path().is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().to_string();
            out.push(Volume {
                attached_machine_id: records
                    .iter()
                    .find(|r| r.volume_id.as_deref() == Some(id.as_str()))
                    .map(|r| r.id.clone()),
                name: id.clone(),
                region: LOCAL_REGION.into(),
                size_gb: 0,
                state: "created".into(),
                id,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn create_volume(&self, name: &str, _region: &str, _size_gb: u64) -> ProviderResult<Volume> {
        check_volume_name(name)?;
        let dir = self.volume_dir(name);
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => Ok(Volume {
                id: name.to_string(),
                name: name.to_string(),
                region: LOCAL_REGION.into(),
                size_gb: 0,
                state: "created".into(),
                attached_machine_id: None,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(
                ProviderError::invalid_input(format!("local volume {name:?} already exists")),
            ),
            Err(e) => Err(io_error(format!("cannot create {}", dir.display()), e)),
        }
    }

    fn delete_volume(&self, volume_id: &str) -> ProviderResult<Outcome> {
        check_component("volume id", volume_id)?;
        let dir = self.volume_dir(volume_id);
        if !dir.is_dir() {
            return Ok(Outcome::AlreadyGone);
        }
        if let Some(r) = self
            .records()?
            .into_iter()
            .find(|r| r.volume_id.as_deref() == Some(volume_id))
        {
            return Ok(Outcome::Deferred(format!(
                "volume {volume_id} is attached to machine {}; destroy the machine first",
                r.id
            )));
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(Outcome::Done),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Outcome::AlreadyGone),
            Err(e) => Err(io_error(format!("cannot delete {}", dir.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::providers::VolumeMount;

    fn provider(dir: &Path, script: &str) -> LocalProvider {
        let mut c = LocalProviderConfig::new(
            vec!["/bin/sh".into(), "-c".into(), script.into()],
            dir.join("root"),
        );
        c.db_path = Some(dir.join("factory.db"));
        c.stop_grace = Duration::from_millis(500);
        LocalProvider::new(c).unwrap()
    }

    fn spec(name: &str, volume: Option<&str>) -> MachineSpec {
        MachineSpec {
            name: name.into(),
            region: String::new(),
            image: String::new(),
            guest: Default::default(),
            env: [("WORKSPACE_ID".to_string(), "default".to_string())].into(),
            mount: volume.map(|v| VolumeMount {
                volume_id: v.into(),
                path: "/data".into(),
            }),
        }
    }

    fn wait_for(path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn default_data_root_sits_beside_the_database() {
        assert_eq!(
            LocalProviderConfig::default_data_root(Path::new("/x/f.db")),
            PathBuf::from("/x/f.db.workers")
        );
    }

    #[test]
    fn spawn_env_stop_and_destroy() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(
            dir.path(),
            "env > \"$AGENT_FACTORY_DATA_DIR/env.txt\"; exec sleep 30",
        );
        p.check_access().unwrap();
        let vol = p.create_volume("data_w1", "", 1).unwrap();
        assert!(p.create_volume("data_w1", "", 1).is_err());
        let m = p.create_machine(&spec("afw-1-0", Some(&vol.id))).unwrap();
        assert_eq!(
            (m.state.as_str(), m.status),
            ("started", MachineStatus::Active)
        );
        let env_file = p.volume_dir(&vol.id).join("env.txt");
        wait_for(&env_file);
        std::thread::sleep(Duration::from_millis(50));
        let env = fs::read_to_string(&env_file).unwrap();
        for line in [
            "AGENT_FACTORY_WORKER_ID=afw-1-0",
            "WORKER_ID=afw-1-0",
            "WORKSPACE_ID=default",
        ] {
            assert!(env.lines().any(|l| l == line), "{line} missing in {env}");
        }
        assert!(env.contains("AGENT_FACTORY_DB="));
        assert!(
            p.create_machine(&spec("afw-1-0", None)).is_err(),
            "name in use"
        );
        assert_eq!(
            p.list_volumes().unwrap()[0].attached_machine_id.as_deref(),
            Some(m.id.as_str())
        );
        assert!(matches!(
            p.delete_volume(&vol.id).unwrap(),
            Outcome::Deferred(_)
        ));
        assert_eq!(p.cordon_machine(&m.id).unwrap(), Outcome::Done);
        assert_eq!(p.stop_machine(&m.id).unwrap(), Outcome::Done);
        assert_eq!(p.get_machine(&m.id).unwrap().unwrap().state, "stopped");
        assert_eq!(p.destroy_machine(&m.id).unwrap(), Outcome::Done);
        assert_eq!(p.destroy_machine(&m.id).unwrap(), Outcome::AlreadyGone);
        assert!(p.list_machines().unwrap().is_empty());
        assert_eq!(p.delete_volume(&vol.id).unwrap(), Outcome::Done);
        assert!(!p.volume_dir(&vol.id).exists());
        assert_eq!(p.delete_volume(&vol.id).unwrap(), Outcome::AlreadyGone);
    }

    #[test]
    fn an_exited_worker_is_reaped_and_seen_stopped_by_a_new_instance() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path(), "exit 0");
        let m = p.create_machine(&spec("afw-2-0", None)).unwrap();
        let again = provider(dir.path(), "exit 0");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = again.get_machine(&m.id).unwrap().unwrap();
            if seen.state == "stopped" {
                break;
            }
            assert!(Instant::now() < deadline, "exited worker still looks alive");
            std::thread::sleep(Duration::from_millis(10));
        }
        let rec = p.read_record(&m.id).unwrap().unwrap();
        assert!(
            proc_stat(rec.pid).is_none(),
            "the exited child was not reaped"
        );
    }

    #[test]
    fn bad_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LocalProvider::new(LocalProviderConfig::new(vec![], dir.path())).is_err());
        let p = provider(dir.path(), "true");
        assert!(p.create_machine(&spec("../x", None)).is_err());
        assert!(p.create_machine(&spec("w", Some("missing"))).is_err());
        assert!(p.create_volume("Bad", "", 1).is_err());
        assert!(p.delete_volume("..").is_err());
        assert!(p.get_machine("a/b").is_err());
        assert_eq!(p.stop_machine("local-none").unwrap(), Outcome::AlreadyGone);
    }
}
