-- Migration 6: Telegram ingestion (update de-duplication, per-agent bot and webhook state).

-- Updates already handled, keyed by (bot, update_id): a retried update (Telegram
-- re-delivers when an answer is slow or not 2xx) is recognised in the same
-- transaction that would enqueue it. Ignored updates that changed nothing are not
-- recorded. Rows are pruned after the retention by the attachment sweep
-- (index on created_at).
CREATE TABLE telegram_updates (
  bot_identity    TEXT NOT NULL,
  update_id       INTEGER NOT NULL,
  agent_key       TEXT NOT NULL,
  outcome         TEXT NOT NULL CHECK (outcome IN ('enqueued','paired','ignored')),
  message_ref     INTEGER,
  conversation_id TEXT,
  reason          TEXT,
  created_at      INTEGER NOT NULL,
  PRIMARY KEY (bot_identity, update_id)
) WITHOUT ROWID;
CREATE INDEX telegram_updates_created ON telegram_updates(created_at);

-- What the Bot API last said about an agent's bot (getMe) and its webhook
-- (setWebhook / getWebhookInfo). `webhook_verified_at` is set only when
-- getWebhookInfo reported exactly `webhook_url`; onboarding reads it.
-- The webhook secret token itself is an encrypted secret (`webhook_secret_ref`).
CREATE TABLE telegram_agents (
  agent_key             TEXT PRIMARY KEY,
  bot_identity          TEXT,
  bot_username          TEXT,
  token_secret_ref      TEXT,
  identity_checked_at   INTEGER,
  webhook_url           TEXT,
  webhook_secret_ref    TEXT,
  webhook_configured_at INTEGER,
  webhook_verified_at   INTEGER,
  webhook_checked_at    INTEGER,
  pending_update_count  INTEGER,
  last_error_message    TEXT,
  last_error_date       INTEGER,
  updated_at            INTEGER NOT NULL
);
