-- Migration 7: the workboard (kanban store for agent work).
--
-- Cards keep their hot, queryable facts in indexed columns (board, status,
-- position, agent, claim, schedule, tenant + idempotency key, archive); the rest
-- of the card (notes, labels, execution, the last 50 events and the metadata
-- document: comments, proof, artifacts, attempts, worker logs, diagnostics,
-- per-card notifications, automation, claim) is one JSON document in `doc`,
-- bounded by the 24 KiB metadata budget. Links (including the dependency DAG)
-- and attachments are child rows keyed by (card_id, id), so link targets and
-- parents are indexed and two cards can never collide on a child id.
-- `workboard_log` is the durable notification/event log: its sequence is the
-- rowid, assigned inside the writing transaction, so it is monotonic across
-- processes. `workboard_revision` counts committed workboard mutations.

CREATE TABLE workboard_boards (
  id                     TEXT PRIMARY KEY,
  name                   TEXT,
  description            TEXT,
  icon                   TEXT,
  color                  TEXT,
  default_workspace_json TEXT,
  orchestration_json     TEXT,
  created_at             INTEGER NOT NULL,
  updated_at             INTEGER NOT NULL,
  archived_at            INTEGER
);

CREATE TABLE workboard_cards (
  id               TEXT PRIMARY KEY,
  board_id         TEXT NOT NULL,
  title            TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('triage','backlog','todo','scheduled','ready','running','review','blocked','done')),
  status_rank      INTEGER NOT NULL CHECK (status_rank BETWEEN 0 AND 8),
  priority         TEXT NOT NULL CHECK (priority IN ('low','normal','high','urgent')),
  position         INTEGER NOT NULL,
  agent_id         TEXT,
  session_key      TEXT,
  run_id           TEXT,
  tenant           TEXT NOT NULL DEFAULT '',          -- '' = no tenant
  idempotency_key  TEXT,
  claim_owner      TEXT,
  claim_token      TEXT,
  claim_expires_at INTEGER,
  scheduled_at     INTEGER,
  max_runtime_ms   INTEGER,
  started_at       INTEGER,
  archived_at      INTEGER,
  execution_status TEXT,
  failure_count    INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  doc              TEXT NOT NULL
);
-- Board pages in list order (status order, position, age) and "all boards" pages.
CREATE INDEX workboard_cards_board_status ON workboard_cards(board_id, status_rank, position, created_at, id);
CREATE INDEX workboard_cards_status ON workboard_cards(status_rank, position, created_at, id);
-- Idempotent creates are scoped by (board, tenant, key).
CREATE UNIQUE INDEX workboard_cards_idempotency ON workboard_cards(board_id, tenant, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX workboard_cards_agent ON workboard_cards(agent_id, status_rank) WHERE agent_id IS NOT NULL;
CREATE INDEX workboard_cards_session ON workboard_cards(session_key, run_id) WHERE session_key IS NOT NULL;
CREATE INDEX workboard_cards_run ON workboard_cards(run_id) WHERE run_id IS NOT NULL;
-- Due scheduled cards, live claims by expiry, running cards with deadlines, archive filter.
CREATE INDEX workboard_cards_scheduled ON workboard_cards(scheduled_at) WHERE scheduled_at IS NOT NULL;
CREATE INDEX workboard_cards_claims ON workboard_cards(claim_expires_at) WHERE claim_owner IS NOT NULL;
CREATE INDEX workboard_cards_claim_owner ON workboard_cards(claim_owner) WHERE claim_owner IS NOT NULL;
CREATE INDEX workboard_cards_running ON workboard_cards(started_at) WHERE status = 'running';
CREATE INDEX workboard_cards_archived ON workboard_cards(archived_at) WHERE archived_at IS NOT NULL;

-- Links of a card in order; dependency links are `parent` (on the child, target =
-- parent) and `child` (on the parent, target = child) rows.
CREATE TABLE workboard_card_links (
  card_id        TEXT NOT NULL REFERENCES workboard_cards(id) ON DELETE CASCADE,
  id             TEXT NOT NULL,
  ordinal        INTEGER NOT NULL,
  type           TEXT NOT NULL CHECK (type IN ('parent','child','blocks','blocked_by','relates_to')),
  target_card_id TEXT,
  title          TEXT,
  url            TEXT,
  created_at     INTEGER NOT NULL,
  PRIMARY KEY (card_id, id)
) WITHOUT ROWID;
CREATE INDEX workboard_card_links_order ON workboard_card_links(card_id, ordinal);
CREATE INDEX workboard_card_links_target ON workboard_card_links(target_card_id, type, card_id)
  WHERE target_card_id IS NOT NULL;

-- Attachments: the index entry and its bytes in one row (the BLOB column), so a
-- pruned or deleted attachment loses its bytes in the same transaction.
CREATE TABLE workboard_attachments (
  id         TEXT PRIMARY KEY,
  card_id    TEXT NOT NULL REFERENCES workboard_cards(id) ON DELETE CASCADE,
  ordinal    INTEGER NOT NULL,
  file_name  TEXT NOT NULL,
  byte_size  INTEGER NOT NULL CHECK (byte_size BETWEEN 1 AND 262144),
  mime_type  TEXT,
  note       TEXT,
  created_at INTEGER NOT NULL,
  content    BLOB NOT NULL
);
CREATE INDEX workboard_attachments_card ON workboard_attachments(card_id, ordinal);

-- Notification subscriptions with a durable cursor into workboard_log.
CREATE TABLE workboard_subscriptions (
  id                  TEXT PRIMARY KEY,
  board_id            TEXT NOT NULL,
  card_id             TEXT,
  session_key         TEXT,
  run_id              TEXT,
  target              TEXT,
  event_kinds_json    TEXT,
  last_event_at       INTEGER,
  last_event_id       TEXT,
  last_event_sequence INTEGER,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL
);
CREATE INDEX workboard_subscriptions_board ON workboard_subscriptions(board_id, created_at, id);
CREATE INDEX workboard_subscriptions_card ON workboard_subscriptions(card_id) WHERE card_id IS NOT NULL;

-- The durable notification/event log. `seq` is assigned by the writing
-- transaction (AUTOINCREMENT: never reused, even after deletes). Kinds:
-- completed, failed, stale (the seed's notifications) and status (every status
-- transition, with from/to).
CREATE TABLE workboard_log (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  id          TEXT NOT NULL UNIQUE,
  board_id    TEXT NOT NULL,
  card_id     TEXT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('completed','failed','stale','status')),
  message     TEXT NOT NULL,
  from_status TEXT,
  to_status   TEXT,
  session_key TEXT,
  run_id      TEXT,
  created_at  INTEGER NOT NULL
);
CREATE INDEX workboard_log_board ON workboard_log(board_id, seq);
CREATE INDEX workboard_log_card ON workboard_log(card_id, seq);

-- One row: the count of committed workboard mutations (the change revision).
CREATE TABLE workboard_revision (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL
);
INSERT INTO workboard_revision(id, revision) VALUES (1, 0);
