//! Fly Machines JSON shapes ⇄ provider-neutral types.
//!
//! Invariants:
//! - reading is lenient about optional fields (a list entry may carry only an
//!   `id`, as the seed's fakes do) but strict about identity: an entry without
//!   a string `id` is an error, never silently skipped (a skipped machine would
//!   be a leaked machine);
//! - the machine request body is exactly the spec's §6 shape; the provider's
//!   `AGENT_FACTORY_WORKER_ID` is written last, so it always equals the name.

use serde_json::{json, Map, Value};

use super::{Machine, MachineSpec, MachineStatus, Volume};

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A machine from a Fly machine object; `None` without an id.
pub(crate) fn machine(v: &Value) -> Option<Machine> {
    let id = id_of(v)?;
    let config = v.get("config").unwrap_or(&Value::Null);
    let name = Some(text(v, "name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.clone());
    let state = text(v, "state");
    let image = Some(text(config, "image"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text(config, "image_ref"));
    let volume_ids = config
        .get("mounts")
        .and_then(Value::as_array)
        .map(|mounts| {
            mounts
                .iter()
                .filter_map(|m| m.get("volume").and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Machine {
        status: MachineStatus::from_state(&state),
        region: text(v, "region"),
        id,
        name,
        state,
        image,
        volume_ids,
    })
}

/// A volume from a Fly volume object; `None` without an id.
pub(crate) fn volume(v: &Value) -> Option<Volume> {
    let id = id_of(v)?;
    Some(Volume {
        name: text(v, "name"),
        region: text(v, "region"),
        size_gb: v.get("size_gb").and_then(Value::as_u64).unwrap_or(0),
        state: text(v, "state"),
        attached_machine_id: v
            .get("attached_machine_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        id,
    })
}

/// Every entry of a list answer, or the index of the first entry without an id.
pub(crate) fn list<T>(v: &Value, read: fn(&Value) -> Option<T>) -> Result<Vec<T>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| "returned something other than a JSON array".to_string())?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| read(item).ok_or_else(|| format!("returned entry {i} without an id")))
        .collect()
}

/// The `POST /apps/{app}/machines` body for `spec`.
pub(crate) fn create_machine_body(spec: &MachineSpec) -> Value {
    let mut env: Map<String, Value> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    env.insert(
        "AGENT_FACTORY_WORKER_ID".into(),
        Value::String(spec.name.clone()),
    );
    let mut config = json!({
        "image": spec.image,
        "guest": {
            "cpu_kind": spec.guest.cpu_kind,
            "cpus": spec.guest.cpus,
            "memory_mb": spec.guest.memory_mb,
        },
        "env": env,
    });
    if let Some(m) = &spec.mount {
        config["mounts"] = json!([{ "volume": m.volume_id, "path": m.path }]);
    }
    let mut body = json!({ "name": spec.name, "config": config });
    if !spec.region.is_empty() {
        body["region"] = Value::String(spec.region.clone());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Guest, VolumeMount};

    #[test]
    fn a_full_machine_object_maps_every_field() {
        let m = machine(&json!({
            "id": "3d8d", "name": "worker-1", "region": "iad", "state": "started",
            "config": {"image": "registry/img:1", "mounts": [{"volume": "vol_1", "path": "/data"}]}
        }))
        .unwrap();
        assert_eq!(m.id, "3d8d");
        assert_eq!(m.name, "worker-1");
        assert_eq!((m.region.as_str(), m.state.as_str()), ("iad", "started"));
        assert_eq!(m.status, MachineStatus::Active);
        assert_eq!(m.image, "registry/img:1");
        assert_eq!(m.volume_ids, vec!["vol_1".to_string()]);
    }

    #[test]
    fn a_bare_machine_defaults_name_to_id_and_status_to_stopped() {
        let m = machine(&json!({"id": "machine-1"})).unwrap();
        assert_eq!(m.name, "machine-1");
        assert_eq!(m.state, "");
        assert_eq!(m.status, MachineStatus::Stopped);
        assert!(m.volume_ids.is_empty() && m.image.is_empty());
        let m = machine(&json!({"id": "m", "config": {"image_ref": "ref:2"}})).unwrap();
        assert_eq!(m.image, "ref:2");
        assert!(machine(&json!({"name": "x"})).is_none());
        assert!(machine(&json!({"id": 5})).is_none());
    }

    #[test]
    fn volumes_map_attachment_and_size() {
        let v = volume(
            &json!({"id": "vol_1", "name": "data", "region": "iad", "size_gb": 10,
            "state": "created", "attached_machine_id": "m1"}),
        )
        .unwrap();
        assert_eq!(v.attached_machine_id.as_deref(), Some("m1"));
        assert_eq!(v.size_gb, 10);
        let v = volume(&json!({"id": "vol_2", "attached_machine_id": null})).unwrap();
        assert_eq!(v.attached_machine_id, None);
        assert_eq!((v.name.as_str(), v.size_gb), ("", 0));
    }

    #[test]
    fn lists_refuse_entries_without_ids_and_non_arrays() {
        let ok = list(&json!([{"id": "a"}, {"id": "b"}]), machine).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            list(&json!([{"id": "a"}, {}]), machine).unwrap_err(),
            "returned entry 1 without an id"
        );
        assert!(list(&json!({"machines": []}), volume).is_err());
    }

    #[test]
    fn the_create_body_is_the_spec_shape_and_the_worker_id_wins() {
        let mut spec = MachineSpec {
            name: "afw-1".into(),
            region: "iad".into(),
            image: "img".into(),
            guest: Guest::default(),
            env: [
                ("A".to_string(), "1".to_string()),
                ("AGENT_FACTORY_WORKER_ID".to_string(), "spoof".to_string()),
            ]
            .into(),
            mount: Some(VolumeMount {
                volume_id: "vol_1".into(),
                path: "/data".into(),
            }),
        };
        assert_eq!(
            create_machine_body(&spec),
            json!({
                "name": "afw-1", "region": "iad",
                "config": {
                    "image": "img",
                    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 2048},
                    "env": {"A": "1", "AGENT_FACTORY_WORKER_ID": "afw-1"},
                    "mounts": [{"volume": "vol_1", "path": "/data"}],
                }
            })
        );
        spec.mount = None;
        spec.region.clear();
        let body = create_machine_body(&spec);
        assert!(body.get("region").is_none() && body["config"].get("mounts").is_none());
    }
}
