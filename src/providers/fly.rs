//! The Fly Machines provider: the REST calls of spec §6 over [`HttpClient`].
//!
//! Invariants:
//! - every path is built from validated, percent-encoded segments; the app
//!   name is checked once at construction;
//! - teardown answers are read through [`classify`]: 404-like → `AlreadyGone`,
//!   precondition → `Deferred`, a 5xx (after retries) → error, never "gone";
//! - creates are not blindly repeated: after a timeout or 5xx the machine is
//!   looked up by its (unique) name, the volume by name, region and "not
//!   attached", and a found one is returned instead of creating a second; a
//!   409 "name taken" on a machine create returns the live machine of that
//!   name (worker ids are unique, so it is this worker's machine);
//! - the token is held only by the HTTP client; `Debug` never prints it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::classify::{classify, Class};
use super::http::{path_segment, Failure, HttpClient, HttpOptions, RetryPolicy};
use super::{wire, Machine, MachineSpec, Outcome, Provider, Volume};
use crate::error::{ProviderError, ProviderResult};

/// The public Machines API.
pub const DEFAULT_FLY_BASE_URL: &str = "https://api.machines.dev/v1";

/// Longest Fly volume name.
const MAX_VOLUME_NAME: usize = 30;

/// Machine states after which a name may be reused.
const GONE_MACHINE_STATES: [&str; 2] = ["destroyed", "destroying"];

/// Volume states of a volume on its way out.
const GONE_VOLUME_STATES: [&str; 5] = [
    "pending_destroy",
    "destroying",
    "destroyed",
    "deleting",
    "deleted",
];

/// Whether a volume in `state` is already being deleted.
pub fn volume_is_going(state: &str) -> bool {
    GONE_VOLUME_STATES.contains(&state)
}

/// Whether a machine in `state` is already destroyed or being destroyed.
pub fn machine_is_going(state: &str) -> bool {
    GONE_MACHINE_STATES.contains(&state)
}

/// How to reach one Fly app.
#[derive(Clone)]
pub struct FlyConfig {
    /// App whose machines and volumes are managed.
    pub app_name: String,
    /// API token (sent as `Authorization: Bearer …`).
    pub api_token: String,
    /// Machines API base URL; tests point it at a loopback fake.
    pub base_url: String,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// `User-Agent` of every request (default `agent-factory/<version>`); the
    /// control loop puts its holder id here so calls can be attributed to it.
    pub user_agent: Option<String>,
}

impl FlyConfig {
    /// Defaults: the public API, 30 s per request, [`RetryPolicy::default`].
    pub fn new(app_name: impl Into<String>, api_token: impl Into<String>) -> Self {
        FlyConfig {
            app_name: app_name.into(),
            api_token: api_token.into(),
            base_url: DEFAULT_FLY_BASE_URL.into(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            user_agent: None,
        }
    }
}

impl std::fmt::Debug for FlyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyConfig")
            .field("app_name", &self.app_name)
            .field("api_token", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// Machines and volumes of one Fly app.
#[derive(Debug)]
pub struct FlyMachines {
    app_name: String,
    app_path: String,
    http: HttpClient,
}

fn require(what: &str, value: &str) -> ProviderResult<()> {
    path_segment(what, value).map(|_| ())
}

fn validate_spec(spec: &MachineSpec) -> ProviderResult<()> {
    require("machine name", &spec.name)?;
    if spec.image.trim().is_empty() {
        return Err(ProviderError::invalid_input(
            "machine image is required and must not be blank",
        ));
    }
    if spec.guest.cpu_kind.trim().is_empty() || spec.guest.cpus == 0 || spec.guest.memory_mb == 0 {
        return Err(ProviderError::invalid_input(format!(
            "machine guest needs a cpu_kind, cpus ≥ 1 and memory_mb ≥ 1, got {:?}/{}/{}",
            spec.guest.cpu_kind, spec.guest.cpus, spec.guest.memory_mb
        )));
    }
    if let Some(key) = spec.env.keys().find(|k| k.is_empty() || k.contains('=')) {
        return Err(ProviderError::invalid_input(format!(
            "machine env key {key:?} is not a valid variable name"
        )));
    }
    if let Some(m) = &spec.mount {
        require("mount volume id", &m.volume_id)?;
        if !m.path.starts_with('/') {
            return Err(ProviderError::invalid_input(format!(
                "mount path must be absolute, got {:?}",
                m.path
            )));
        }
    }
    Ok(())
}

fn validate_volume(name: &str, region: &str, size_gb: u64) -> ProviderResult<()> {
    let name_ok = !name.is_empty()
        && name.len() <= MAX_VOLUME_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(ProviderError::invalid_input(format!(
            "volume name must be 1-{MAX_VOLUME_NAME} lowercase letters, digits or underscores, got {name:?}"
        )));
    }
    if region.trim().is_empty() {
        return Err(ProviderError::invalid_input(
            "volume region is required and must not be blank",
        ));
    }
    if !(1..=500).contains(&size_gb) {
        return Err(ProviderError::invalid_input(format!(
            "volume size_gb must be between 1 and 500, got {size_gb}"
        )));
    }
    Ok(())
}

impl FlyMachines {
    /// A client for `config.app_name`; fails on a blank app name or token or a bad URL.
    pub fn new(config: FlyConfig) -> ProviderResult<Self> {
        let app_name = config.app_name.trim().to_string();
        let app_path = format!("/apps/{}", path_segment("Fly app name", &app_name)?);
        let mut http = HttpClient::new(
            HttpOptions {
                service: "Fly API",
                base_url: config.base_url,
                timeout: config.timeout,
                retry: config.retry,
            },
            &config.api_token,
        )?;
        if let Some(ua) = &config.user_agent {
            http = http.with_user_agent(ua)?;
        }
        Ok(FlyMachines {
            app_name,
            app_path,
            http,
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    fn machine_path(&self, machine_id: &str, action: &str) -> ProviderResult<String> {
        Ok(format!(
            "{}/machines/{}{action}",
            self.app_path,
            path_segment("machine id", machine_id)?
        ))
    }

    fn volume_path(&self, volume_id: &str) -> ProviderResult<String> {
        Ok(format!(
            "{}/volumes/{}",
            self.app_path,
            path_segment("volume id", volume_id)?
        ))
    }

    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> ProviderResult<Value> {
        self.http
            .send(method, path, body, None)
            .map_err(|f| f.error)
    }

    /// A teardown call read as an [`Outcome`].
    fn outcome(&self, method: Method, path: &str) -> ProviderResult<Outcome> {
        match self.http.send(method, path, None, None) {
            Ok(_) => Ok(Outcome::Done),
            Err(Failure { error, body }) => match error.status.map(|s| classify(s, &body)) {
                Some(Class::Gone) => Ok(Outcome::AlreadyGone),
                Some(Class::Deferred) => Ok(Outcome::Deferred(error.message)),
                _ => Err(error),
            },
        }
    }

    fn raw_list(&self, path: &str) -> ProviderResult<Vec<Value>> {
        match self.call(Method::GET, path, None)? {
            Value::Array(items) => Ok(items),
            _ => Err(ProviderError::protocol(format!(
                "Fly API GET {path} returned something other than a JSON array"
            ))),
        }
    }

    /// A live machine named `name` (raw JSON), for recovering a create whose answer was lost.
    fn find_machine_named(&self, name: &str) -> Option<Value> {
        let path = format!("{}/machines", self.app_path);
        self.raw_list(&path).ok()?.into_iter().find(|m| {
            m.get("name").and_then(Value::as_str) == Some(name)
                && !machine_is_going(m.get("state").and_then(Value::as_str).unwrap_or_default())
        })
    }

    /// The newest unattached volume named `name` in `region` (raw JSON).
    fn find_free_volume(&self, name: &str, region: &str) -> Option<Value> {
        let path = format!("{}/volumes", self.app_path);
        let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        self.raw_list(&path)
            .ok()?
            .into_iter()
            .filter(|v| {
                field(v, "name").as_deref() == Some(name)
                    && field(v, "region").as_deref() == Some(region)
                    && field(v, "attached_machine_id").is_none_or(|m| m.is_empty())
                    && !volume_is_going(field(v, "state").as_deref().unwrap_or_default())
            })
            .max_by_key(|v| field(v, "created_at").unwrap_or_default())
    }
}

impl Provider for FlyMachines {
    fn app_name(&self) -> &str {
        &self.app_name
    }

    fn check_access(&self) -> ProviderResult<()> {
        self.call(Method::GET, &self.app_path, None).map(|_| ())
    }

    fn list_machines(&self) -> ProviderResult<Vec<Machine>> {
        let path = format!("{}/machines", self.app_path);
        let value = self.call(Method::GET, &path, None)?;
        wire::list(&value, wire::machine)
            .map_err(|e| ProviderError::protocol(format!("Fly API GET {path} {e}")))
    }

    fn get_machine(&self, machine_id: &str) -> ProviderResult<Option<Machine>> {
        let path = self.machine_path(machine_id, "")?;
        match self.http.send(Method::GET, &path, None, None) {
            Ok(v) => wire::machine(&v).map(Some).ok_or_else(|| {
                ProviderError::protocol(format!(
                    "Fly API GET {path} returned a machine without an id"
                ))
            }),
            Err(Failure { error, body }) => match error.status.map(|s| classify(s, &body)) {
                Some(Class::Gone) => Ok(None),
                _ => Err(error),
            },
        }
    }

    fn create_machine(&self, spec: &MachineSpec) -> ProviderResult<Machine> {
        validate_spec(spec)?;
        let path = format!("{}/machines", self.app_path);
        let body = wire::create_machine_body(spec);
        let recover = || self.find_machine_named(&spec.name);
        let value = match self
            .http
            .send(Method::POST, &path, Some(&body), Some(&recover))
        {
            Ok(v) => v,
            // The name is taken: an earlier create of this worker landed after all.
            Err(f) if f.error.status == Some(409) => recover().ok_or(f.error)?,
            Err(f) => return Err(f.error),
        };
        let mut machine = match wire::machine(&value) {
            Some(m) => m,
            None => recover().as_ref().and_then(wire::machine).ok_or_else(|| {
                ProviderError::protocol(format!(
                    "Fly API POST {path} returned a machine without an id"
                ))
            })?,
        };
        if value.get("name").and_then(Value::as_str).is_none() {
            machine.name = spec.name.clone();
        }
        if machine.volume_ids.is_empty() {
            machine.volume_ids = spec.mount.iter().map(|m| m.volume_id.clone()).collect();
        }
        Ok(machine)
    }

    fn cordon_machine(&self, machine_id: &str) -> ProviderResult<Outcome> {
        self.outcome(Method::POST, &self.machine_path(machine_id, "/cordon")?)
    }

    fn stop_machine(&self, machine_id: &str) -> ProviderResult<Outcome> {
        self.outcome(Method::POST, &self.machine_path(machine_id, "/stop")?)
    }

    fn destroy_machine(&self, machine_id: &str) -> ProviderResult<Outcome> {
        self.outcome(Method::DELETE, &self.machine_path(machine_id, "")?)
    }

    fn list_volumes(&self) -> ProviderResult<Vec<Volume>> {
        let path = format!("{}/volumes", self.app_path);
        let value = self.call(Method::GET, &path, None)?;
        wire::list(&value, wire::volume)
            .map_err(|e| ProviderError::protocol(format!("Fly API GET {path} {e}")))
    }

    fn create_volume(&self, name: &str, region: &str, size_gb: u64) -> ProviderResult<Volume> {
        validate_volume(name, region, size_gb)?;
        let path = format!("{}/volumes", self.app_path);
        let body = json!({ "name": name, "region": region, "size_gb": size_gb });
        let recover = || self.find_free_volume(name, region);
        let value = self
            .http
            .send(Method::POST, &path, Some(&body), Some(&recover))
            .map_err(|f| f.error)?;
        wire::volume(&value).ok_or_else(|| {
            ProviderError::protocol(format!(
                "Fly API POST {path} returned a volume without an id"
            ))
        })
    }

    fn delete_volume(&self, volume_id: &str) -> ProviderResult<Outcome> {
        self.outcome(Method::DELETE, &self.volume_path(volume_id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProviderErrorKind;
    use crate::providers::{Guest, VolumeMount};

    fn fly(app: &str) -> ProviderResult<FlyMachines> {
        let mut c = FlyConfig::new(app, "fly-token");
        c.base_url = "http://127.0.0.1:9/v1".into();
        FlyMachines::new(c)
    }

    #[test]
    fn app_names_are_validated_and_encoded() {
        let f = fly(" my app ").unwrap();
        assert_eq!(f.app_name(), "my app");
        assert_eq!(f.app_path, "/apps/my%20app");
        assert_eq!(
            f.machine_path("m/1", "/stop").unwrap(),
            "/apps/my%20app/machines/m%2F1/stop"
        );
        assert_eq!(
            f.volume_path("vol_1").unwrap(),
            "/apps/my%20app/volumes/vol_1"
        );
        assert!(f.machine_path("..", "").is_err());
        let err = fly("  ").unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::InvalidInput);
        assert!(err.message.contains("Fly app name is required"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = FlyConfig::new("app", "fly-token-secret");
        assert!(!format!("{c:?}").contains("fly-token-secret"));
        let f = FlyMachines::new(c).unwrap();
        assert!(!format!("{f:?}").contains("fly-token-secret"));
    }

    #[test]
    fn bad_specs_are_refused_before_any_request() {
        let f = fly("app").unwrap();
        let good = MachineSpec {
            name: "w1".into(),
            region: "iad".into(),
            image: "img".into(),
            guest: Guest::default(),
            env: Default::default(),
            mount: Some(VolumeMount {
                volume_id: "vol_1".into(),
                path: "/data".into(),
            }),
        };
        assert!(validate_spec(&good).is_ok());
        type Change = Box<dyn Fn(&mut MachineSpec)>;
        let cases: Vec<Change> = vec![
            Box::new(|s| s.name = " ".into()),
            Box::new(|s| s.image = "".into()),
            Box::new(|s| s.guest.cpus = 0),
            Box::new(|s| {
                s.env.insert("A=B".into(), "x".into());
            }),
            Box::new(|s| s.mount.as_mut().unwrap().path = "data".into()),
            Box::new(|s| s.mount.as_mut().unwrap().volume_id = "..".into()),
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut spec = good.clone();
            change(&mut spec);
            let err = f.create_machine(&spec).unwrap_err();
            assert_eq!(err.kind, ProviderErrorKind::InvalidInput, "case {i}");
        }
    }

    #[test]
    fn volume_inputs_follow_fly_rules() {
        assert!(validate_volume("openclaw_data_1", "iad", 10).is_ok());
        assert!(validate_volume("Data", "iad", 10).is_err());
        assert!(validate_volume(&"a".repeat(31), "iad", 10).is_err());
        assert!(validate_volume("data", " ", 10).is_err());
        assert!(validate_volume("data", "iad", 0).is_err());
        assert!(validate_volume("data", "iad", 501).is_err());
    }

    #[test]
    fn going_states() {
        assert!(machine_is_going("destroyed") && machine_is_going("destroying"));
        assert!(!machine_is_going("stopped"));
        assert!(volume_is_going("pending_destroy") && !volume_is_going("created"));
    }
}
