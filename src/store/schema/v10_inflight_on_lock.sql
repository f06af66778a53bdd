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
