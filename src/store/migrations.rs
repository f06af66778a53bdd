//! Numbered schema migrations, applied in order at open.
//!
//! `PRAGMA user_version` records how many have run. Each migration runs inside
//! the opening `BEGIN IMMEDIATE` transaction, so two processes opening a fresh
//! file at once apply it exactly once. Migrations are append-only: never edit a
//! released one, add the next number instead.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// Migration 1: agents, conversations, messages, attachments, history, workers,
/// secrets and runtime config.
const V1: &str = r#"
CREATE TABLE agents (
  agent_key      TEXT PRIMARY KEY,
  version        TEXT NOT NULL,
  secrets_ref    TEXT NOT NULL,
  bot_identity   TEXT,
  bridge_config  TEXT,
  enabled        INTEGER NOT NULL,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);
CREATE INDEX agents_bot_identity ON agents(bot_identity) WHERE bot_identity IS NOT NULL;

-- One row per conversation. `state` summarises its pending messages:
--   idle    nothing pending;
--   waiting the head (oldest pending message) is not due yet (schedule or retry backoff);
--   ready   the head may be claimed now;
--   busy    a message of this conversation is in flight (lock_* set).
-- The head_* columns copy the head message so claim reads one index only.
-- sched_k1..3 (generated) are the scheduling key of a non-idle conversation, one
-- index for all three states: ready by (priority desc, head age, head message),
-- waiting by due time, busy by lease expiry. A claim moves a conversation from
-- the front of the ready range to the end of the busy range next to it, so both
-- changes usually land on one index page. sched_k1 is NULL exactly when idle.
CREATE TABLE conversations (
  id                INTEGER PRIMARY KEY,
  conversation_id   TEXT NOT NULL UNIQUE,
  agent_key         TEXT NOT NULL,
  state             TEXT NOT NULL DEFAULT 'idle' CHECK (state IN ('idle','waiting','ready','busy')),
  head_message      INTEGER,
  head_priority     INTEGER,
  head_order_at     INTEGER,
  head_ready_at     INTEGER,
  lock_message      INTEGER,
  lock_lease_id     TEXT,
  lock_worker_id    TEXT,
  lock_expires_at   INTEGER,
  lock_heartbeat_at INTEGER,
  created_at        INTEGER NOT NULL,
  sched_k1 INTEGER GENERATED ALWAYS AS (CASE state WHEN 'ready' THEN -head_priority
                                                   WHEN 'waiting' THEN head_ready_at
                                                   WHEN 'busy' THEN lock_expires_at END) VIRTUAL,
  sched_k2 INTEGER GENERATED ALWAYS AS (CASE state WHEN 'ready' THEN head_order_at ELSE 0 END) VIRTUAL,
  sched_k3 INTEGER GENERATED ALWAYS AS (CASE state WHEN 'ready' THEN head_message ELSE id END) VIRTUAL
);
CREATE INDEX conversations_sched ON conversations(state, sched_k1, sched_k2, sched_k3) WHERE sched_k1 IS NOT NULL;
CREATE INDEX conversations_agent ON conversations(agent_key);

CREATE TABLE messages (
  id               INTEGER PRIMARY KEY,
  conversation_ref INTEGER NOT NULL REFERENCES conversations(id),
  agent_key        TEXT NOT NULL,
  payload          TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('queued','processing','done','dead_letter')),
  priority         INTEGER NOT NULL,
  scheduled_for    INTEGER NOT NULL,
  ready_at         INTEGER NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL,
  claimed_by       TEXT,
  lease_id         TEXT,
  lease_expires_at INTEGER,
  claimed_at       INTEGER,
  last_error       TEXT,
  next_retry_at    INTEGER,
  dead_lettered_at INTEGER,
  finished_at      INTEGER,
  created_at       INTEGER NOT NULL,
  -- One index per conversation serves both its FIFO head (pending messages by
  -- (scheduled_for, id)) and its history (the others by id), so an enqueue
  -- touches one conversation-keyed index. A processing message is found through
  -- its conversation's lock (conversations_sched, state busy).
  pending_rank     INTEGER GENERATED ALWAYS AS (status <> 'queued') VIRTUAL,
  order_key        INTEGER GENERATED ALWAYS AS (CASE WHEN status = 'queued' THEN scheduled_for ELSE id END) VIRTUAL
);
CREATE INDEX messages_conversation ON messages(conversation_ref, pending_rank, order_key, id);
CREATE INDEX messages_dead ON messages(dead_lettered_at) WHERE status = 'dead_letter';

CREATE TABLE message_attachments (
  id               INTEGER PRIMARY KEY,
  message_ref      INTEGER NOT NULL REFERENCES messages(id),
  conversation_id  TEXT NOT NULL,
  agent_key        TEXT NOT NULL,
  provider         TEXT NOT NULL,
  kind             TEXT NOT NULL CHECK (kind IN ('photo','video','audio','voice','document')),
  status           TEXT NOT NULL CHECK (status IN ('ready','expired')),
  blob_sha256      TEXT NOT NULL,
  telegram_file_id TEXT NOT NULL,
  file_name        TEXT,
  mime_type        TEXT,
  size_bytes       INTEGER,
  created_at       INTEGER NOT NULL,
  expires_at       INTEGER NOT NULL
);
CREATE INDEX message_attachments_message ON message_attachments(message_ref);
CREATE INDEX message_attachments_expiry ON message_attachments(expires_at) WHERE status = 'ready';

CREATE TABLE conversation_history (
  id               INTEGER PRIMARY KEY,
  conversation_ref INTEGER NOT NULL REFERENCES conversations(id),
  role             TEXT NOT NULL CHECK (role IN ('system','user','assistant','tool')),
  content          TEXT NOT NULL,
  at               INTEGER NOT NULL
);
CREATE INDEX conversation_history_conversation ON conversation_history(conversation_ref, id);

CREATE TABLE hydration_cache (
  conversation_ref  INTEGER PRIMARY KEY REFERENCES conversations(id),
  snapshot_key      TEXT NOT NULL,
  last_hydrated_at  INTEGER NOT NULL,
  delta_fingerprint TEXT NOT NULL
);

CREATE TABLE workers (
  worker_id              TEXT PRIMARY KEY,
  provider               TEXT NOT NULL,
  mode                   TEXT NOT NULL CHECK (mode IN ('sticky','pooled')),
  status                 TEXT NOT NULL CHECK (status IN ('active','draining','stopping','stopped')),
  load                   INTEGER NOT NULL DEFAULT 0,
  heartbeat_at           INTEGER NOT NULL,
  last_claim_at          INTEGER,
  scheduled_shutdown_at  INTEGER,
  stopped_at             INTEGER,
  stop_reason            TEXT,
  last_snapshot_id       TEXT,
  machine_id             TEXT,
  app_name               TEXT,
  region                 TEXT,
  volume_id              TEXT,
  assignment_conversation_id TEXT,
  assignment_agent_key   TEXT,
  assignment_lease_id    TEXT,
  assignment_assigned_at INTEGER,
  created_at             INTEGER NOT NULL
);
CREATE INDEX workers_assignment ON workers(assignment_conversation_id) WHERE assignment_conversation_id IS NOT NULL;
CREATE INDEX workers_status ON workers(status);

CREATE TABLE secrets (
  id           INTEGER PRIMARY KEY,
  secret_ref   TEXT NOT NULL,
  version      INTEGER NOT NULL,
  algorithm    TEXT NOT NULL,
  key_id       TEXT NOT NULL,
  nonce        BLOB NOT NULL,
  ciphertext   BLOB NOT NULL,
  active       INTEGER NOT NULL,
  rotated_from INTEGER,
  metadata     TEXT,
  created_at   INTEGER NOT NULL,
  UNIQUE (secret_ref, version)
);
CREATE UNIQUE INDEX secrets_active ON secrets(secret_ref) WHERE active = 1;

CREATE TABLE runtime_config (
  key        TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
"#;

/// Migration 2: workspace snapshots (archives live in the blob store by sha256).
///
/// Indexes serve, without scanning finished rows: the newest ready snapshot of one
/// (workspace, agent, conversation); one conversation's or one worker's snapshots
/// newest first; the expiry sweep by (status, expires_at); and the "is this blob
/// still referenced" checks of the sweep, for snapshots and for attachments (which
/// share the content-addressed blob store).
const V2: &str = r#"
CREATE TABLE snapshots (
  id              INTEGER PRIMARY KEY,
  snapshot_id     TEXT NOT NULL UNIQUE,
  workspace_id    TEXT NOT NULL,
  agent_key       TEXT NOT NULL,
  worker_id       TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  reason          TEXT NOT NULL CHECK (reason IN ('drain','signal','manual')),
  format_version  INTEGER NOT NULL DEFAULT 1,
  blob_sha256     TEXT,
  size_bytes      INTEGER,
  status          TEXT NOT NULL CHECK (status IN ('uploading','ready','failed','expired')),
  error           TEXT,
  created_at      INTEGER NOT NULL,
  completed_at    INTEGER,
  expires_at      INTEGER NOT NULL,
  CHECK (status NOT IN ('ready','expired') OR (blob_sha256 IS NOT NULL AND size_bytes IS NOT NULL))
);
CREATE INDEX snapshots_restore ON snapshots(workspace_id, agent_key, conversation_id, created_at DESC, id DESC)
  WHERE status = 'ready';
CREATE INDEX snapshots_conversation ON snapshots(conversation_id, created_at DESC, id DESC);
CREATE INDEX snapshots_worker ON snapshots(worker_id, created_at DESC, id DESC);
CREATE INDEX snapshots_expiry ON snapshots(status, expires_at);
CREATE INDEX snapshots_blob ON snapshots(blob_sha256) WHERE blob_sha256 IS NOT NULL;
CREATE INDEX message_attachments_blob ON message_attachments(blob_sha256);
"#;

/// Migration 3: named leases (one live holder per name; the token fences tenures).
const V3: &str = r#"
CREATE TABLE leases (
  name        TEXT PRIMARY KEY,
  holder      TEXT NOT NULL,
  token       INTEGER NOT NULL,
  acquired_at INTEGER NOT NULL,
  renewed_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL
);
"#;

/// Migration 4: identity bindings, pairing codes, message templates.
const V4: &str = include_str!("schema/v4_identity.sql");

/// Migration 5: push templates, jobs, dispatches, broadcasts.
const V5: &str = include_str!("schema/v5_push.sql");

/// Migration 6: Telegram ingestion.
const V6: &str = include_str!("schema/v6_telegram.sql");

/// Migration 7: the workboard (cards, links, attachments, boards, subscriptions, log).
const V7: &str = include_str!("schema/v7_workboard.sql");
/// Migration 8: workboard `has_parents` column and indexes that keep its cost flat.
const V8: &str = include_str!("schema/v8_workboard_perf.sql");
/// Migration 9: workboard counters and open-parent counts kept by triggers, so `stats`,
/// `list_boards` and `promote_ready` stay flat.
const V9: &str = include_str!("schema/v9_workboard_flat.sql");
/// Migration 10: a message in flight lives on its conversation's lock only (the
/// claim no longer writes the message row); then [`v10_state_checks`].
const V10: &str = include_str!("schema/v10_inflight_on_lock.sql");

/// The `CHECK`s of the queue's hot tables as V1 wrote them, and as V10 rewrites them.
///
/// SQLite evaluates `x IN (a, b, c, …)` with more than two constants by building a
/// temporary b-tree of the list, every time the statement runs; the same test as a
/// chain of `=` costs a few comparisons. Every enqueue, claim and settle writes
/// these columns, so V10 rewrites the two constraints in place (SQLite's documented
/// `writable_schema` procedure for constraint changes that leave the stored rows
/// alone; every row already satisfies the new text, as V10's first step makes the
/// status `processing` unused).
const STATE_CHECKS: [(&str, &str, &str); 2] = [
    (
        "conversations",
        "CHECK (state IN ('idle','waiting','ready','busy'))",
        "CHECK (state = 'idle' OR state = 'waiting' OR state = 'ready' OR state = 'busy')",
    ),
    (
        "messages",
        "CHECK (status IN ('queued','processing','done','dead_letter'))",
        "CHECK (status = 'queued' OR status = 'done' OR status = 'dead_letter')",
    ),
];

/// Second step of V10: rewrite [`STATE_CHECKS`] and bump the schema cookie so the
/// connections of other processes reload the schema.
fn v10_state_checks(conn: &Connection) -> Result<()> {
    let cookie: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    conn.pragma_update(None, "writable_schema", true)?;
    let rewritten = (|| -> Result<()> {
        for (table, old, new) in STATE_CHECKS {
            let changed = conn.execute(
                "UPDATE sqlite_schema SET sql = replace(sql, ?2, ?3) WHERE type = 'table' AND name = ?1 AND instr(sql, ?2) > 0",
                rusqlite::params![table, old, new],
            )?;
            if changed != 1 {
                return Err(Error::storage(format!(
                    "migration 10: table {table} does not have the expected constraint {old}"
                )));
            }
        }
        conn.pragma_update(None, "schema_version", cookie + 1)?;
        Ok(())
    })();
    // RESET turns writing off and makes this connection re-read the schema now
    // (it set the new cookie itself, so it would not notice the change).
    conn.execute_batch("PRAGMA writable_schema = RESET")?;
    rewritten
}

/// One schema step: SQL, then optionally a step that needs Rust.
struct Migration {
    sql: &'static str,
    then: Option<fn(&Connection) -> Result<()>>,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, then: None }
}

/// All migrations in order; index + 1 is the resulting `user_version`.
const MIGRATIONS: &[Migration] = &[
    sql(V1),
    sql(V2),
    sql(V3),
    sql(V4),
    sql(V5),
    sql(V6),
    sql(V7),
    sql(V8),
    sql(V9),
    Migration {
        sql: V10,
        then: Some(v10_state_checks),
    },
];

/// Latest schema version this build knows.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Apply every migration newer than the file's `user_version`; whether any ran.
/// The caller holds a write transaction on `conn`.
pub fn apply(conn: &Connection) -> Result<bool> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(Error::storage(format!(
            "database schema version {current} is newer than this agent-factory build supports ({LATEST}); upgrade the package"
        )));
    }
    for (index, m) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        conn.execute_batch(m.sql)?;
        if let Some(then) = m.then {
            then(conn)?;
        }
        conn.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    Ok(current < LATEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message in flight when a V9 database is upgraded keeps its lease: its row
    /// turns `queued` (the lock records the delivery), readers still see it in
    /// flight, and its holder completes it.
    #[test]
    fn v10_keeps_a_message_in_flight_with_its_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v9.db");
        {
            let conn = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..9] {
                conn.execute_batch(m.sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 9;
                 INSERT INTO agents(agent_key, version, secrets_ref, enabled, created_at, updated_at)
                   VALUES ('a', '1', '[]', 1, 1, 1);
                 INSERT INTO conversations(id, conversation_id, agent_key, state, head_message, head_priority,
                     head_order_at, head_ready_at, lock_message, lock_lease_id, lock_worker_id, lock_expires_at,
                     lock_heartbeat_at, created_at)
                   VALUES (1, 'c', 'a', 'busy', 7, 50, 10, 10, 7, 'lease-7', 'w', 9000000000000, 20, 1);
                 INSERT INTO messages(id, conversation_ref, agent_key, payload, status, priority, scheduled_for,
                     ready_at, max_attempts, claimed_by, lease_id, lease_expires_at, claimed_at, created_at)
                   VALUES (7, 1, 'a', '{\"messageText\":\"hi\"}', 'processing', 50, 10, 10, 3, 'w', 'lease-7',
                     9000000000000, 20, 10),
                          (8, 1, 'a', '{\"messageText\":\"next\"}', 'queued', 50, 11, 11, 3, NULL, NULL, NULL,
                     NULL, 11);",
            )
            .unwrap();
        }
        let f = crate::factory::Factory::open(path.to_str().unwrap(), Default::default()).unwrap();
        let (status, dropped): (String, bool) = f
            .store()
            .read(|tx| {
                let status =
                    tx.query_row("SELECT status FROM messages WHERE id = 7", [], |r| r.get(0))?;
                let dropped = tx.prepare("SELECT lease_id FROM messages").is_err();
                Ok((status, dropped))
            })
            .unwrap();
        assert_eq!(status, "queued");
        assert!(dropped, "V10 drops the message lease columns");
        let job = f.get_job("7").unwrap().unwrap();
        assert_eq!(
            (job.status.as_str(), job.claimed_by.as_deref()),
            ("processing", Some("w"))
        );
        assert!(f.complete("w", "7", "lease-7", Some(30)).unwrap());
        assert_eq!(f.get_job("7").unwrap().unwrap().status, "done");
        let next = f
            .claim("w", &crate::queue::ClaimOptions::default(), Some(40))
            .unwrap()
            .unwrap();
        assert_eq!(next.message_id, "8");
    }

    /// A V8 database with cards and a dependency upgrades to V9 with exact
    /// counters and open-parent counts (the backfill statements of V9).
    #[test]
    fn v9_backfills_counters_and_open_parents_of_an_existing_board() {
        let conn = Connection::open_in_memory().unwrap();
        for m in &MIGRATIONS[..8] {
            conn.execute_batch(m.sql).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO workboard_cards(id, board_id, title, status, status_rank, priority, position, agent_id,
                archived_at, created_at, updated_at, doc, has_parents) VALUES
               ('p', 'ops', 'parent', 'todo', 2, 'normal', 0, 'bot', NULL, 1, 1, '{}', 0),
               ('c', 'ops', 'child', 'todo', 2, 'normal', 1, NULL, NULL, 1, 1, '{}', 1),
               ('d', 'ops', 'done', 'done', 8, 'normal', 2, 'bot', 5, 1, 1, '{}', 0);
             INSERT INTO workboard_card_links(card_id, id, ordinal, type, target_card_id, created_at)
               VALUES ('c', 'l1', 0, 'parent', 'p', 1), ('c', 'l2', 1, 'parent', 'd', 1);",
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[8].sql).unwrap();
        let counts: Vec<(String, String, i64, i64)> = conn
            .prepare(
                "SELECT status, agent_key, cards, archived FROM workboard_counts ORDER BY 1, 2",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            counts,
            [
                ("done".to_string(), "bot".to_string(), 1, 1),
                ("todo".to_string(), String::new(), 1, 0),
                ("todo".to_string(), "bot".to_string(), 1, 0),
            ]
        );
        let open: i64 = conn
            .query_row(
                "SELECT open_parents FROM workboard_cards WHERE id = 'c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(open, 1);
        // From here on the triggers keep it: the parent finishing frees the child.
        conn.execute(
            "UPDATE workboard_cards SET status = 'done', status_rank = 8 WHERE id = 'p'",
            [],
        )
        .unwrap();
        let open: i64 = conn
            .query_row(
                "SELECT open_parents FROM workboard_cards WHERE id = 'c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(open, 0);
    }

    /// After V10 the queue's hot statements run no temporary b-tree for their
    /// CHECKs, the constraints still reject bad values, and the file is intact.
    #[test]
    fn v10_state_checks_are_comparisons_and_still_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        let f = crate::factory::Factory::open(path.to_str().unwrap(), Default::default()).unwrap();
        let (ephemeral, integrity, rejected) = f
            .store()
            .write(|tx| {
                let mut ephemeral = Vec::new();
                for sql in [
                    "UPDATE conversations SET state = 'ready' WHERE id = 1",
                    "UPDATE messages SET status = 'done' WHERE id = 1",
                    "INSERT INTO messages(conversation_ref, agent_key, payload, status, priority, scheduled_for, ready_at,
                       max_attempts, created_at) VALUES (1, 'a', '{}', 'queued', 0, 0, 0, 1, 0)",
                ] {
                    let ops: Vec<String> = tx
                        .prepare(&format!("EXPLAIN {sql}"))?
                        .query_map([], |r| r.get(1))?
                        .collect::<rusqlite::Result<_>>()?;
                    if ops.iter().any(|op| op == "OpenEphemeral") {
                        ephemeral.push(sql);
                    }
                }
                let integrity: String = tx.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
                tx.execute(
                    "INSERT INTO conversations(id, conversation_id, agent_key, state, created_at) VALUES (1, 'c', 'a', 'idle', 0)",
                    [],
                )?;
                let rejected = [
                    tx.execute("UPDATE conversations SET state = 'lost' WHERE id = 1", []).is_err(),
                    tx.execute(
                        "INSERT INTO messages(conversation_ref, agent_key, payload, status, priority, scheduled_for, ready_at,
                           max_attempts, created_at) VALUES (1, 'a', '{}', 'processing', 0, 0, 0, 1, 0)",
                        [],
                    )
                    .is_err(),
                ];
                Ok((ephemeral, integrity, rejected))
            })
            .expect("probe the rewritten constraints");
        assert!(ephemeral.is_empty(), "temporary b-trees in {ephemeral:?}");
        assert_eq!(integrity, "ok");
        assert_eq!(rejected, [true, true]);
    }
}
