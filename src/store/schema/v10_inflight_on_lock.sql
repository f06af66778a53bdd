-- Migration 10: a message in flight is recorded on its conversation's lock only.
--
-- Until V9 a claim wrote the message row too (status 'processing', the lease id,
-- its expiry and the claim time), duplicating what the conversation lock
-- (`lock_message`, `lock_lease_id`, `lock_worker_id`, `lock_expires_at`) already
-- says, and moving the message's `messages_conversation` entry twice per
-- delivery. From V10 a claim writes the conversation row alone: the message stays
-- `queued` until `complete`, `fail` or lease recovery settles it, and readers
-- report it as `processing` while `conversations.lock_message` names it. The
-- table's CHECK still admits 'processing' (SQLite cannot alter a CHECK in place);
-- nothing writes it any more.
--
-- Messages in flight at the upgrade keep their lock: they only change status.

UPDATE messages SET status = 'queued' WHERE status = 'processing';
ALTER TABLE messages DROP COLUMN lease_id;
ALTER TABLE messages DROP COLUMN lease_expires_at;
ALTER TABLE messages DROP COLUMN claimed_at;

-- A finished message's entry in `messages_conversation` now sorts newest first
-- (`order_key = -id`), right behind its conversation's pending entries. Settling
-- a message moves its entry from the pending range to the front of the finished
-- range: the neighbouring position, so the move rewrites one index page. With
-- oldest-first order the entry moved to the far end of the conversation's
-- history, a different page as soon as the history outgrew part of a page.
DROP INDEX messages_conversation;
ALTER TABLE messages DROP COLUMN order_key;
ALTER TABLE messages ADD COLUMN order_key INTEGER
  GENERATED ALWAYS AS (CASE WHEN status = 'queued' THEN scheduled_for ELSE -id END) VIRTUAL;
CREATE INDEX messages_conversation ON messages(conversation_ref, pending_rank, order_key, id);
