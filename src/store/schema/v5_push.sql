-- Migration 5: push templates, push jobs, dispatch audit, broadcasts.

-- Reusable push texts of one company, with suggested schedules (JSON list of
-- schedule objects whose kind equals `periodicity`).
CREATE TABLE push_templates (
  id              INTEGER PRIMARY KEY,
  template_id     TEXT NOT NULL UNIQUE,
  company_id      TEXT NOT NULL,
  template_key    TEXT NOT NULL,
  title           TEXT NOT NULL,
  text            TEXT NOT NULL,
  periodicity     TEXT NOT NULL CHECK (periodicity IN ('manual','daily','weekly','monthly')),
  suggested_times TEXT NOT NULL,
  enabled         INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  created_by      TEXT NOT NULL,
  updated_by      TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  UNIQUE (company_id, template_key)
);
CREATE INDEX push_templates_company ON push_templates(company_id, updated_at);

-- One user's push: a schedule in an IANA time zone. `next_run_at` is set exactly
-- when the job is enabled and recurring (the CHECK), so the due index holds only
-- jobs the dispatcher may run: manual and disabled jobs never take its window.
CREATE TABLE push_jobs (
  id                 INTEGER PRIMARY KEY,
  job_id             TEXT NOT NULL UNIQUE,
  company_id         TEXT NOT NULL,
  consumer_user_id   TEXT NOT NULL,
  agent_key          TEXT,
  source_template_id TEXT,
  title              TEXT NOT NULL,
  text               TEXT NOT NULL,
  periodicity        TEXT NOT NULL CHECK (periodicity IN ('manual','daily','weekly','monthly')),
  timezone           TEXT NOT NULL,
  schedule           TEXT NOT NULL,
  enabled            INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  next_run_at        INTEGER,
  last_run_at        INTEGER,
  last_run_key       TEXT,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL,
  CHECK ((next_run_at IS NOT NULL) = (enabled = 1 AND periodicity <> 'manual'))
);
CREATE INDEX push_jobs_due ON push_jobs(next_run_at, id) WHERE next_run_at IS NOT NULL;
CREATE INDEX push_jobs_user ON push_jobs(consumer_user_id, updated_at);
CREATE INDEX push_jobs_user_agent ON push_jobs(consumer_user_id, agent_key, updated_at);

-- Audit of each run of a job: one row per (job, run key), so a slot
-- (`scheduled:<jobId>:<nextRunAt>`) is enqueued at most once even when two
-- dispatchers race. `agent_key` is the agent the run was routed to (or the
-- job's agent when it could not be routed). Rows go with their job.
CREATE TABLE push_dispatches (
  id                  INTEGER PRIMARY KEY,
  job_ref             INTEGER NOT NULL REFERENCES push_jobs(id) ON DELETE CASCADE,
  consumer_user_id    TEXT NOT NULL,
  agent_key           TEXT,
  run_key             TEXT NOT NULL,
  push_mode           TEXT NOT NULL CHECK (push_mode IN ('scheduled','manual')),
  scheduled_for       INTEGER NOT NULL,
  enqueued_message_id TEXT,
  status              TEXT NOT NULL CHECK (status IN ('enqueued','failed')),
  error               TEXT,
  created_at          INTEGER NOT NULL,
  UNIQUE (job_ref, run_key)
);
CREATE INDEX push_dispatches_job ON push_dispatches(job_ref, created_at, id);
CREATE INDEX push_dispatches_user_agent ON push_dispatches(consumer_user_id, agent_key, created_at, id);

-- An admin message to every active binding of one company. Written in one
-- transaction: `running` is never visible outside it.
CREATE TABLE push_broadcasts (
  id             INTEGER PRIMARY KEY,
  broadcast_id   TEXT NOT NULL UNIQUE,
  company_id     TEXT NOT NULL,
  title          TEXT NOT NULL,
  text           TEXT NOT NULL,
  requested_by   TEXT NOT NULL,
  requested_at   INTEGER NOT NULL,
  status         TEXT NOT NULL CHECK (status IN ('running','done','failed')),
  total_targets  INTEGER NOT NULL,
  enqueued_count INTEGER NOT NULL,
  failed_count   INTEGER NOT NULL,
  completed_at   INTEGER
);
CREATE INDEX push_broadcasts_company ON push_broadcasts(company_id, requested_at, id);

-- One row per target of a broadcast (one per consumer user).
CREATE TABLE push_broadcast_dispatches (
  id                  INTEGER PRIMARY KEY,
  broadcast_ref       INTEGER NOT NULL REFERENCES push_broadcasts(id) ON DELETE CASCADE,
  consumer_user_id    TEXT NOT NULL,
  agent_key           TEXT NOT NULL,
  conversation_id     TEXT NOT NULL,
  run_key             TEXT NOT NULL,
  enqueued_message_id TEXT,
  status              TEXT NOT NULL CHECK (status IN ('enqueued','failed')),
  error               TEXT,
  created_at          INTEGER NOT NULL,
  UNIQUE (broadcast_ref, consumer_user_id)
);
