-- Migration 9: workboard `stats`, `list_boards` and `promote_ready` flat in the
-- number of cards.
--
-- 1. Counters.
-- `workboard_counts` holds, per (board, status, agent), how many cards there are
-- and how many of them are archived (agent '' = no agent). Triggers on
-- `workboard_cards` keep it exact inside the writing transaction, whatever the
-- write path (insert, upsert, delete), so the aggregates read a handful of rows.
-- Rows that drop to zero cards are removed.
-- The newest `updated_at` per (board, status) and the oldest ready card per board
-- are single seeks in `workboard_cards_updated`, which replaces the covering
-- index that the aggregates used to scan.

DROP INDEX workboard_cards_counts;
CREATE INDEX workboard_cards_updated ON workboard_cards(board_id, status, updated_at);

CREATE TABLE workboard_counts (
  board_id  TEXT NOT NULL,
  status    TEXT NOT NULL,
  agent_key TEXT NOT NULL,
  cards     INTEGER NOT NULL CHECK (cards >= 0),
  archived  INTEGER NOT NULL CHECK (archived >= 0 AND archived <= cards),
  PRIMARY KEY (board_id, status, agent_key)
) WITHOUT ROWID;

INSERT INTO workboard_counts(board_id, status, agent_key, cards, archived)
SELECT board_id, status, coalesce(agent_id, ''), count(*), count(archived_at)
  FROM workboard_cards GROUP BY board_id, status, coalesce(agent_id, '');

CREATE TRIGGER workboard_counts_insert AFTER INSERT ON workboard_cards
BEGIN
  INSERT INTO workboard_counts(board_id, status, agent_key, cards, archived)
  VALUES (NEW.board_id, NEW.status, coalesce(NEW.agent_id, ''), 1, NEW.archived_at IS NOT NULL)
  ON CONFLICT(board_id, status, agent_key) DO UPDATE SET cards = cards + 1, archived = archived + excluded.archived;
END;

CREATE TRIGGER workboard_counts_delete AFTER DELETE ON workboard_cards
BEGIN
  UPDATE workboard_counts SET cards = cards - 1, archived = archived - (OLD.archived_at IS NOT NULL)
   WHERE board_id = OLD.board_id AND status = OLD.status AND agent_key = coalesce(OLD.agent_id, '');
  DELETE FROM workboard_counts
   WHERE board_id = OLD.board_id AND status = OLD.status AND agent_key = coalesce(OLD.agent_id, '') AND cards = 0;
END;

CREATE TRIGGER workboard_counts_update AFTER UPDATE OF board_id, status, agent_id, archived_at ON workboard_cards
WHEN OLD.board_id IS NOT NEW.board_id OR OLD.status IS NOT NEW.status OR OLD.agent_id IS NOT NEW.agent_id
  OR (OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL)
BEGIN
  UPDATE workboard_counts SET cards = cards - 1, archived = archived - (OLD.archived_at IS NOT NULL)
   WHERE board_id = OLD.board_id AND status = OLD.status AND agent_key = coalesce(OLD.agent_id, '');
  DELETE FROM workboard_counts
   WHERE board_id = OLD.board_id AND status = OLD.status AND agent_key = coalesce(OLD.agent_id, '') AND cards = 0;
  INSERT INTO workboard_counts(board_id, status, agent_key, cards, archived)
  VALUES (NEW.board_id, NEW.status, coalesce(NEW.agent_id, ''), 1, NEW.archived_at IS NOT NULL)
  ON CONFLICT(board_id, status, agent_key) DO UPDATE SET cards = cards + 1, archived = archived + excluded.archived;
END;

-- 2. Open parents. `open_parents` is the number of a card's parent links whose
-- target is missing or not done, kept exact by triggers: when a card's parent
-- links are written (every save rewrites them), and when a card that is someone's
-- parent appears, disappears or enters / leaves `done`. A todo card with open
-- parents cannot change on its own, so the watch index (V8) now leaves it out:
-- promotion and dispatch passes no longer visit cards waiting on their parents.
-- Each trigger spells the recount out: a view with GROUP BY would be scanned
-- whole for a correlated lookup (SQLite does not push the card id into it).

ALTER TABLE workboard_cards ADD COLUMN open_parents INTEGER NOT NULL DEFAULT 0;
UPDATE workboard_cards SET open_parents = (
  SELECT count(*) FROM workboard_card_links l LEFT JOIN workboard_cards p ON p.id = l.target_card_id
   WHERE l.card_id = workboard_cards.id AND l.type = 'parent' AND l.target_card_id IS NOT NULL
     AND (p.id IS NULL OR p.status <> 'done'))
 WHERE has_parents = 1;

DROP INDEX workboard_cards_watch;
CREATE INDEX workboard_cards_watch ON workboard_cards(board_id, status_rank)
  WHERE archived_at IS NULL AND status_rank <= 4
    AND (status_rank = 4 OR scheduled_at IS NOT NULL OR failure_count > 0
         OR (has_parents = 1 AND (status_rank <> 2 OR open_parents = 0)));

CREATE TRIGGER workboard_open_parents_link_added AFTER INSERT ON workboard_card_links
WHEN NEW.type = 'parent'
BEGIN
  UPDATE workboard_cards SET open_parents = (
    SELECT count(*) FROM workboard_card_links l LEFT JOIN workboard_cards p ON p.id = l.target_card_id
     WHERE l.card_id = NEW.card_id AND l.type = 'parent' AND l.target_card_id IS NOT NULL
       AND (p.id IS NULL OR p.status <> 'done'))
   WHERE id = NEW.card_id;
END;

CREATE TRIGGER workboard_open_parents_link_removed AFTER DELETE ON workboard_card_links
WHEN OLD.type = 'parent'
BEGIN
  UPDATE workboard_cards SET open_parents = (
    SELECT count(*) FROM workboard_card_links l LEFT JOIN workboard_cards p ON p.id = l.target_card_id
     WHERE l.card_id = OLD.card_id AND l.type = 'parent' AND l.target_card_id IS NOT NULL
       AND (p.id IS NULL OR p.status <> 'done'))
   WHERE id = OLD.card_id;
END;

CREATE TRIGGER workboard_open_parents_parent_added AFTER INSERT ON workboard_cards
BEGIN
  UPDATE workboard_cards SET open_parents = (
    SELECT count(*) FROM workboard_card_links l LEFT JOIN workboard_cards p ON p.id = l.target_card_id
     WHERE l.card_id = workboard_cards.id AND l.type = 'parent' AND l.target_card_id IS NOT NULL
       AND (p.id IS NULL OR p.status <> 'done'))
   WHERE id IN (SELECT card_id FROM workboard_card_links WHERE target_card_id = NEW.id AND type = 'parent');
END;

CREATE TRIGGER workboard_open_parents_parent_removed AFTER DELETE ON workboard_cards
BEGIN
  UPDATE workboard_cards SET open_parents = (
    SELECT count(*) FROM workboard_card_links l LEFT JOIN workboard_cards p ON p.id = l.target_card_id
     WHERE l.card_id = workboard_cards.id AND l.type = 'parent' AND l.target_card_id IS NOT NULL
       AND (p.id IS NULL OR p.status <> 'done'))
   WHERE id IN (SELECT card_id FROM workboard_card_links WHERE target_card_id = OLD.id AND type = 'parent');
END;

CREATE TRIGGER workboard_open_parents_parent_done AFTER UPDATE OF status ON workboard_cards
WHEN (OLD.status = 'done') <> (NEW.status = 'done')
BEGIN
  UPDATE workboard_cards SET open_parents = (
    SELECT count(*) FROM workboard_card_links l LEFT JOIN workboard_cards p ON p.id = l.target_card_id
     WHERE l.card_id = workboard_cards.id AND l.type = 'parent' AND l.target_card_id IS NOT NULL
       AND (p.id IS NULL OR p.status <> 'done'))
   WHERE id IN (SELECT card_id FROM workboard_card_links WHERE target_card_id = NEW.id AND type = 'parent');
END;
