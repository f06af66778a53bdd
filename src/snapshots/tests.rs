//! Core tests of the snapshot lifecycle, restore lookup, verification and expiry.

use super::*;
use crate::clock::Clock;
use crate::factory::FactoryOptions;
use crate::test_support::{factory, T0};
use crate::workers::{WorkerStateInput, WorkerStatus};

const DAY: i64 = 86_400_000;

fn req(worker: &str, conv: &str) -> PrepareSnapshot {
    PrepareSnapshot {
        worker_id: worker.into(),
        workspace_id: "default".into(),
        agent_key: "support-agent".into(),
        conversation_id: Some(conv.into()),
        reason: "drain".into(),
    }
}

fn status_of(f: &Factory, id: &str) -> SnapshotStatus {
    f.get_snapshot(id, None).unwrap().unwrap().status
}

/// Prepare, store `bytes` and finalize at `now`; returns the snapshot id.
fn ready(f: &Factory, worker: &str, conv: &str, bytes: &[u8], now: i64) -> String {
    let up = f
        .prepare_snapshot_upload(&req(worker, conv), Some(now))
        .unwrap();
    let sha = f.blobs().put(bytes).unwrap();
    assert!(f
        .finalize_snapshot_upload(
            worker,
            &up.snapshot_id,
            &sha,
            bytes.len() as i64,
            Some(now + 1)
        )
        .unwrap());
    up.snapshot_id
}

fn set_status(f: &Factory, worker: &str, statuses: &[&str]) {
    for s in statuses {
        f.upsert_worker_state(
            WorkerStateInput {
                worker_id: worker.into(),
                provider: "local".into(),
                status: (*s).into(),
                ..Default::default()
            },
            Some(T0),
        )
        .unwrap();
    }
}

#[test]
fn prepare_sets_uploading_and_seven_day_expiry() {
    let f = factory();
    let up = f.prepare_snapshot_upload(&req("w1", "c1"), None).unwrap();
    assert_eq!(up.status, SnapshotStatus::Uploading);
    assert_eq!(up.created_at, T0);
    assert_eq!(up.expires_at, T0 + DATA_SNAPSHOT_RETENTION_MS);
    assert!(up.snapshot_id.starts_with("snap-"));
    let s = f.get_snapshot(&up.snapshot_id, None).unwrap().unwrap();
    assert_eq!(
        (s.format_version, s.reason, s.path),
        (1, SnapshotReason::Drain, None)
    );
}

#[test]
fn missing_or_bad_fields_are_rejected_and_nothing_is_written() {
    let f = factory();
    let mut r = req("w1", "c1");
    r.conversation_id = None;
    let err = f.prepare_snapshot_upload(&r, None).unwrap_err();
    assert!(matches!(&err, Error::Validation(m) if m.starts_with("conversationId is required")));
    type Mutation = fn(&mut PrepareSnapshot);
    let bad: [(&str, Mutation); 5] = [
        ("conversationId", |r| r.conversation_id = Some("  ".into())),
        ("workerId", |r| r.worker_id = "bad id".into()),
        ("workspaceId", |r| r.workspace_id = "".into()),
        ("agentKey", |r| r.agent_key = "a/b".into()),
        ("reason", |r| r.reason = "crash".into()),
    ];
    for (field, mutate) in bad {
        let mut r = req("w1", "c1");
        mutate(&mut r);
        let err = f.prepare_snapshot_upload(&r, None).unwrap_err();
        assert!(
            matches!(&err, Error::Validation(m) if m.contains(field)),
            "{field}: {err}"
        );
    }
    assert!(f
        .latest_snapshot_for_restore("default", "support-agent", None, None)
        .is_err());
    assert!(f
        .list_snapshots_for_conversation(Some("c1"), None, None)
        .unwrap()
        .is_empty());
}

#[test]
fn finalize_marks_ready_and_moves_a_draining_worker_to_stopping() {
    let f = factory();
    set_status(&f, "w1", &["active", "draining"]);
    let id = ready(&f, "w1", "c1", b"archive", T0 + 10);
    let s = f.get_snapshot(&id, Some(T0 + 20)).unwrap().unwrap();
    assert_eq!(s.status, SnapshotStatus::Ready);
    assert_eq!(
        s.sha256.as_deref(),
        Some(crate::blobs::sha256_hex(b"archive").as_str())
    );
    assert_eq!((s.size_bytes, s.completed_at), (Some(7), Some(T0 + 11)));
    assert!(s.path.is_some());
    let w = f.get_worker("w1").unwrap().unwrap();
    assert_eq!(w.status, WorkerStatus::Stopping);
    assert_eq!(w.stopped_at, Some(T0 + 11));
    assert_eq!(w.last_snapshot_id.as_deref(), Some(id.as_str()));

    // An active worker keeps its status; only the snapshot reference changes.
    set_status(&f, "w2", &["active"]);
    let id2 = ready(&f, "w2", "c2", b"other", T0 + 30);
    let w2 = f.get_worker("w2").unwrap().unwrap();
    assert_eq!((w2.status, w2.stopped_at), (WorkerStatus::Active, None));
    assert_eq!(w2.last_snapshot_id.as_deref(), Some(id2.as_str()));
}

#[test]
fn finalize_and_fail_guard_ownership_and_status() {
    let f = factory();
    let up = f.prepare_snapshot_upload(&req("w1", "c1"), None).unwrap();
    let sha = f.blobs().put(b"data").unwrap();
    let id = up.snapshot_id.as_str();
    assert!(
        !f.finalize_snapshot_upload("w2", id, &sha, 4, None).unwrap(),
        "foreign"
    );
    assert!(!f
        .finalize_snapshot_upload("w1", "snap-unknown", &sha, 4, None)
        .unwrap());
    assert!(!f.fail_snapshot_upload("w2", id, "boom", None).unwrap());
    assert_eq!(status_of(&f, id), SnapshotStatus::Uploading);
    assert!(f.finalize_snapshot_upload("w1", id, &sha, 4, None).unwrap());
    for err in [
        f.finalize_snapshot_upload("w1", id, &sha, 4, None)
            .unwrap_err(),
        f.fail_snapshot_upload("w1", id, "late", None).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::InvalidState(m) if m.contains("is ready")),
            "{err}"
        );
    }
    let up2 = f.prepare_snapshot_upload(&req("w1", "c1"), None).unwrap();
    assert!(f
        .fail_snapshot_upload("w1", &up2.snapshot_id, "tar failed", None)
        .unwrap());
    let failed = f.get_snapshot(&up2.snapshot_id, None).unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (SnapshotStatus::Failed, Some("tar failed"))
    );
    assert!(matches!(
        f.fail_snapshot_upload("w1", &up2.snapshot_id, "   ", None),
        Err(Error::Validation(_))
    ));
}

#[test]
fn finalize_verifies_the_blob_and_changes_nothing_on_mismatch() {
    let f = factory();
    set_status(&f, "w1", &["active", "draining"]);
    let up = f.prepare_snapshot_upload(&req("w1", "c1"), None).unwrap();
    let id = up.snapshot_id.as_str();
    let missing = "ab".repeat(32);
    assert!(matches!(
        f.finalize_snapshot_upload("w1", id, &missing, 4, None),
        Err(Error::NotFound(m)) if m.contains(&missing)
    ));
    let sha = f.blobs().put(b"real archive").unwrap();
    assert!(matches!(
        f.finalize_snapshot_upload("w1", id, &sha, 99, None),
        Err(Error::Validation(m)) if m.contains("sizeBytes 99") && m.contains("12 bytes")
    ));
    assert!(matches!(
        f.finalize_snapshot_upload("w1", id, "beadfeed", 12, None),
        Err(Error::Validation(m)) if m.contains("sha256")
    ));
    assert!(matches!(
        f.finalize_snapshot_upload("w1", id, &sha, -1, None),
        Err(Error::Validation(m)) if m.contains("sizeBytes")
    ));
    // Same length, different bytes: the file no longer hashes to its name.
    std::fs::write(f.blobs().path_of(&sha).unwrap(), b"fake archive").unwrap();
    assert!(matches!(
        f.finalize_snapshot_upload("w1", id, &sha, 12, None),
        Err(Error::Storage(m)) if m.contains("corrupt")
    ));
    assert_eq!(status_of(&f, id), SnapshotStatus::Uploading);
    let w = f.get_worker("w1").unwrap().unwrap();
    assert_eq!(
        (w.status, w.last_snapshot_id),
        (WorkerStatus::Draining, None)
    );
}

#[test]
fn an_upload_cannot_be_finalized_after_its_expiry() {
    let f = factory();
    let up = f.prepare_snapshot_upload(&req("w1", "c1"), None).unwrap();
    let sha = f.blobs().put(b"x").unwrap();
    let err = f
        .finalize_snapshot_upload("w1", &up.snapshot_id, &sha, 1, Some(up.expires_at))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidState(m) if m.contains("expired")),
        "{err}"
    );
    // It can still be marked failed.
    assert!(f
        .fail_snapshot_upload("w1", &up.snapshot_id, "too late", Some(up.expires_at))
        .unwrap());
}

#[test]
fn restore_finds_the_newest_ready_snapshot_of_the_exact_tuple() {
    let f = factory();
    let old = ready(&f, "w1", "c1", b"v1", T0);
    // Newer attempts that failed or never finished must not hide it (seed weakness 8).
    let failed = f
        .prepare_snapshot_upload(&req("w1", "c1"), Some(T0 + 100))
        .unwrap();
    f.fail_snapshot_upload("w1", &failed.snapshot_id, "disk full", Some(T0 + 101))
        .unwrap();
    f.prepare_snapshot_upload(&req("w1", "c1"), Some(T0 + 200))
        .unwrap();
    let got = f
        .latest_snapshot_for_restore("default", "support-agent", Some("c1"), Some(T0 + 300))
        .unwrap()
        .unwrap();
    assert_eq!(got.snapshot_id, old);
    assert_eq!(
        f.blobs().get(got.sha256.as_deref().unwrap()).unwrap(),
        b"v1"
    );
    assert!(got.path.is_some());
    let newer = ready(&f, "w1", "c1", b"v2", T0 + 400);
    let got = f
        .latest_snapshot_for_restore("default", "support-agent", Some("c1"), Some(T0 + 500))
        .unwrap()
        .unwrap();
    assert_eq!(got.snapshot_id, newer);
    for (ws, agent, conv) in [
        ("default", "support-agent", "c2"),
        ("other", "support-agent", "c1"),
        ("default", "other", "c1"),
    ] {
        assert!(f
            .latest_snapshot_for_restore(ws, agent, Some(conv), Some(T0 + 500))
            .unwrap()
            .is_none());
    }
    // Past retention nothing is restorable, even before the sweep ran.
    let late = T0 + 400 + DATA_SNAPSHOT_RETENTION_MS;
    assert_eq!(
        f.latest_snapshot_for_restore("default", "support-agent", Some("c1"), Some(late - 1))
            .unwrap()
            .map(|s| s.snapshot_id),
        Some(newer)
    );
    assert!(f
        .latest_snapshot_for_restore("default", "support-agent", Some("c1"), Some(late))
        .unwrap()
        .is_none());
}

#[test]
fn listing_is_newest_first_clamped_and_paths_only_when_restorable() {
    let f = factory();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(ready(
            &f,
            "w1",
            "c1",
            format!("v{i}").as_bytes(),
            T0 + i * 10,
        ));
    }
    let open = f
        .prepare_snapshot_upload(&req("w1", "c1"), Some(T0 + 100))
        .unwrap();
    ready(&f, "w1", "elsewhere", b"z", T0);
    let listed = f
        .list_snapshots_for_conversation(Some("c1"), None, Some(T0 + 200))
        .unwrap();
    let got: Vec<_> = listed.iter().map(|s| s.snapshot_id.clone()).collect();
    assert_eq!(
        got,
        vec![
            open.snapshot_id.clone(),
            ids[2].clone(),
            ids[1].clone(),
            ids[0].clone()
        ]
    );
    assert!(listed[0].path.is_none() && listed[1].path.is_some());
    for (limit, n) in [(Some(0), 1), (Some(-5), 1), (Some(2), 2), (Some(10_000), 4)] {
        assert_eq!(
            f.list_snapshots_for_conversation(Some("c1"), limit, None)
                .unwrap()
                .len(),
            n
        );
    }
    let expired_view = f
        .list_snapshots_for_conversation(
            Some("c1"),
            None,
            Some(T0 + DATA_SNAPSHOT_RETENTION_MS + 100),
        )
        .unwrap();
    assert!(expired_view.iter().all(|s| s.path.is_none()));
    assert_eq!(
        f.list_snapshots_for_worker("w1", Some(200), None)
            .unwrap()
            .len(),
        5
    );
    assert!(matches!(
        f.list_snapshots_for_conversation(None, None, None),
        Err(Error::Validation(m)) if m.contains("conversationId")
    ));
}

#[test]
fn same_millisecond_snapshots_order_by_insertion() {
    let f = factory();
    let a = ready(&f, "w1", "c1", b"a", T0);
    let b = ready(&f, "w1", "c1", b"b", T0);
    let latest = f
        .latest_snapshot_for_restore("default", "support-agent", Some("c1"), None)
        .unwrap()
        .unwrap();
    assert_eq!(latest.snapshot_id, b);
    let listed = f
        .list_snapshots_for_conversation(Some("c1"), None, None)
        .unwrap();
    assert_eq!(listed[1].snapshot_id, a);
}

#[test]
fn expiry_deletes_unshared_blobs_and_fails_abandoned_uploads() {
    let f = factory();
    let solo = ready(&f, "w1", "c1", b"solo", T0);
    let shared_old = ready(&f, "w1", "c2", b"shared", T0);
    let shared_new = ready(&f, "w1", "c3", b"shared", T0 + DAY);
    let abandoned = f
        .prepare_snapshot_upload(&req("w1", "c4"), Some(T0))
        .unwrap();
    let (solo_sha, shared_sha) = (
        crate::blobs::sha256_hex(b"solo"),
        crate::blobs::sha256_hex(b"shared"),
    );

    let now = T0 + DATA_SNAPSHOT_RETENTION_MS + 1;
    let out = f.expire_old_snapshots(100, Some(now)).unwrap();
    assert_eq!(
        out,
        SnapshotExpiry {
            expired: 2,
            failed: 1,
            blobs_deleted: 1,
            blobs_kept: 1
        }
    );
    assert_eq!(status_of(&f, &solo), SnapshotStatus::Expired);
    assert_eq!(status_of(&f, &shared_old), SnapshotStatus::Expired);
    assert_eq!(status_of(&f, &shared_new), SnapshotStatus::Ready);
    let gone = f
        .get_snapshot(&abandoned.snapshot_id, None)
        .unwrap()
        .unwrap();
    assert_eq!(gone.status, SnapshotStatus::Failed);
    assert_eq!(gone.error.as_deref(), Some(expiry::ABANDONED_UPLOAD_ERROR));
    assert!(!f.blobs().exists(&solo_sha).unwrap());
    assert_eq!(
        f.blobs().get(&shared_sha).unwrap(),
        b"shared",
        "still restorable from c3"
    );
    assert_eq!(
        f.expire_old_snapshots(100, Some(now)).unwrap().expired,
        0,
        "idempotent"
    );

    let out = f
        .expire_old_snapshots(100, Some(T0 + DAY + DATA_SNAPSHOT_RETENTION_MS))
        .unwrap();
    assert_eq!((out.expired, out.blobs_deleted, out.blobs_kept), (1, 1, 0));
    assert!(!f.blobs().exists(&shared_sha).unwrap());
    assert!(
        matches!(f.expire_old_snapshots(0, None), Err(Error::Validation(m)) if m.contains("limit"))
    );
}

#[test]
fn expiry_respects_the_limit_ready_rows_first() {
    let f = factory();
    for i in 0..3 {
        ready(&f, "w1", "c1", format!("b{i}").as_bytes(), T0 + i);
        f.prepare_snapshot_upload(&req("w1", "c1"), Some(T0 + i))
            .unwrap();
    }
    let now = T0 + DATA_SNAPSHOT_RETENTION_MS + 10;
    let first = f.expire_old_snapshots(4, Some(now)).unwrap();
    assert_eq!((first.expired, first.failed), (3, 1));
    let second = f.expire_old_snapshots(4, Some(now)).unwrap();
    assert_eq!((second.expired, second.failed), (0, 2));
}

#[test]
fn upload_runs_prepare_put_finalize_and_marks_failures() {
    let f = factory();
    set_status(&f, "w1", &["active", "draining"]);
    let s = f
        .upload_snapshot(
            &req("w1", "c1"),
            &SnapshotSource::Bytes(b"tarball".to_vec()),
            None,
        )
        .unwrap();
    assert_eq!((s.status, s.size_bytes), (SnapshotStatus::Ready, Some(7)));
    assert_eq!(
        std::fs::read(s.path.as_deref().unwrap()).unwrap(),
        b"tarball"
    );
    assert_eq!(
        f.get_worker("w1").unwrap().unwrap().status,
        WorkerStatus::Stopping
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ws.tar.gz");
    std::fs::write(&file, vec![9u8; 100_000]).unwrap();
    let s = f
        .upload_snapshot(&req("w2", "c2"), &SnapshotSource::File(file.clone()), None)
        .unwrap();
    assert_eq!(s.size_bytes, Some(100_000));

    // A bad path is rejected before anything is written.
    let missing = SnapshotSource::File(dir.path().join("nope.tar.gz"));
    assert!(
        matches!(f.upload_snapshot(&req("w3", "c3"), &missing, None), Err(Error::Validation(m)) if m.contains("nope.tar.gz"))
    );
    assert!(matches!(
        f.upload_snapshot(
            &req("w3", "c3"),
            &SnapshotSource::File(dir.path().into()),
            None
        ),
        Err(Error::Validation(_))
    ));
    assert!(f
        .list_snapshots_for_worker("w3", None, None)
        .unwrap()
        .is_empty());
}

#[test]
fn retention_follows_the_config() {
    let mut config = crate::config::Config::default();
    config.snapshots.retention_ms = 1_000;
    let f = Factory::open(
        ":memory:",
        FactoryOptions {
            clock: Clock::manual(T0),
            config,
            ..Default::default()
        },
    )
    .unwrap();
    let up = f.prepare_snapshot_upload(&req("w1", "c1"), None).unwrap();
    assert_eq!(up.expires_at, T0 + 1_000);
    let mut bad = crate::config::Config::default();
    bad.snapshots.retention_ms = 0;
    assert!(f
        .set_config(bad)
        .unwrap_err()
        .to_string()
        .contains("snapshots.retention_ms"));
}

#[test]
fn hot_queries_use_indexes() {
    let f = factory();
    let select = |filter: &str| format!("SELECT {COLUMNS} FROM snapshots {filter}");
    let plans = [
        (select(query::RESTORE_WHERE), 4, "snapshots_restore"),
        (
            select(query::CONVERSATION_WHERE),
            2,
            "snapshots_conversation",
        ),
        (select(query::WORKER_WHERE), 2, "snapshots_worker"),
        (expiry::DUE_SQL.to_string(), 3, "snapshots_expiry"),
        (expiry::SNAPSHOT_REF_SQL.to_string(), 2, "snapshots_blob"),
        (
            expiry::ATTACHMENT_REF_SQL.to_string(),
            1,
            "message_attachments_blob",
        ),
        (
            format!("SELECT {COLUMNS} FROM snapshots WHERE snapshot_id = ?1"),
            1,
            "sqlite_autoindex_snapshots_1",
        ),
    ];
    for (sql, n, index) in plans {
        let detail: Vec<String> = f
            .store()
            .read(|tx| {
                let mut stmt = tx.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let args: Vec<i64> = vec![1; n];
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .unwrap();
        assert!(
            detail
                .iter()
                .all(|d| !d.starts_with("SCAN") || d.contains("INDEX") || d == "SCAN CONSTANT ROW"),
            "{sql}: {detail:?}"
        );
        assert!(
            detail.iter().all(|d| !d.contains("TEMP B-TREE")),
            "{sql}: {detail:?}"
        );
        assert!(
            detail
                .iter()
                .any(|d| d.contains(&format!("INDEX {index} "))),
            "{sql}: {detail:?}"
        );
    }
}
