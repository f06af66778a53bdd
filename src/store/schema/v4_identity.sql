-- Migration 4: identity bindings, pairing codes and message templates.

-- A consumer user's binding to an agent. At most one active binding per user
-- (the partial unique index); rebinding revokes the old one in the same
-- transaction. `company_id` is read from the binding metadata (`companyId`), so
-- a broadcast finds a company's active targets through an index.
CREATE TABLE identity_bindings (
  id               INTEGER PRIMARY KEY,
  consumer_user_id TEXT NOT NULL,
  agent_key        TEXT NOT NULL,
  conversation_id  TEXT NOT NULL,
  bot_identity     TEXT,
  status           TEXT NOT NULL CHECK (status IN ('active','revoked')),
  source           TEXT NOT NULL CHECK (source IN ('manual','telegram_pairing','api')),
  telegram_user_id TEXT,
  telegram_chat_id TEXT,
  metadata         TEXT,
  bound_at         INTEGER NOT NULL,
  revoked_at       INTEGER,
  company_id       TEXT GENERATED ALWAYS AS (json_extract(metadata, '$.companyId')) VIRTUAL
);
CREATE UNIQUE INDEX identity_bindings_one_active ON identity_bindings(consumer_user_id) WHERE status = 'active';
CREATE INDEX identity_bindings_user_agent ON identity_bindings(consumer_user_id, agent_key, bound_at);
CREATE INDEX identity_bindings_telegram_user ON identity_bindings(bot_identity, telegram_user_id)
  WHERE status = 'active' AND telegram_user_id IS NOT NULL;
CREATE INDEX identity_bindings_telegram_chat ON identity_bindings(bot_identity, telegram_chat_id)
  WHERE status = 'active' AND telegram_chat_id IS NOT NULL;
CREATE INDEX identity_bindings_company ON identity_bindings(company_id) WHERE status = 'active';
-- A user's binding history across agents, newest first.
CREATE INDEX identity_bindings_user_history ON identity_bindings(consumer_user_id, bound_at, id);
-- Bot-less (legacy) Telegram lookups: any bot, newest binding first.
CREATE INDEX identity_bindings_any_bot_user ON identity_bindings(telegram_user_id, bound_at)
  WHERE status = 'active' AND telegram_user_id IS NOT NULL;
CREATE INDEX identity_bindings_any_bot_chat ON identity_bindings(telegram_chat_id, bound_at)
  WHERE status = 'active' AND telegram_chat_id IS NOT NULL;

-- One-time pairing codes (CSPRNG), consumed by `/start <code>`.
CREATE TABLE pairing_codes (
  id               INTEGER PRIMARY KEY,
  code             TEXT NOT NULL UNIQUE,
  consumer_user_id TEXT NOT NULL,
  agent_key        TEXT NOT NULL,
  bot_identity     TEXT,
  status           TEXT NOT NULL CHECK (status IN ('pending','used','expired')),
  created_at       INTEGER NOT NULL,
  expires_at       INTEGER NOT NULL,
  used_at          INTEGER,
  telegram_user_id TEXT,
  telegram_chat_id TEXT
);
CREATE INDEX pairing_codes_user ON pairing_codes(consumer_user_id, agent_key, created_at);
CREATE INDEX pairing_codes_pending ON pairing_codes(consumer_user_id, expires_at) WHERE status = 'pending';
-- A user's pending codes per agent, newest first (user-agent views).
CREATE INDEX pairing_codes_user_pending ON pairing_codes(consumer_user_id, agent_key, created_at)
  WHERE status = 'pending';

-- Reusable one-shot message templates (global). `template_key` is derived from
-- the title and unique; listings read one of the two ranking indexes (usage
-- desc, last update desc), so sorting covers every row, not a first page.
CREATE TABLE message_templates (
  id           INTEGER PRIMARY KEY,
  template_id  TEXT NOT NULL UNIQUE,
  template_key TEXT NOT NULL UNIQUE,
  title        TEXT NOT NULL,
  text         TEXT NOT NULL,
  tags         TEXT NOT NULL,
  usage_count  INTEGER NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
  enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  created_by   TEXT NOT NULL,
  updated_by   TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE INDEX message_templates_rank ON message_templates(usage_count DESC, updated_at DESC, id DESC);
CREATE INDEX message_templates_enabled_rank ON message_templates(usage_count DESC, updated_at DESC, id DESC)
  WHERE enabled = 1;
