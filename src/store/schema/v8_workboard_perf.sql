-- Migration 8: workboard cost flat in the number of cards.
--
-- `has_parents` (1 when the card has at least one `parent` dependency link) is
-- written with the row on every save, so the passes that look for cards whose
-- state can change on their own (`promote_ready`, `dispatch`) read one partial
-- index of "watched" cards instead of every card in a promotable status: a card
-- is watched while it is unarchived, in triage..ready, and ready, scheduled,
-- failing (retry budget) or held by parents. The queries repeat the index's
-- WHERE expression and name it with INDEXED BY (no ANALYZE statistics here).
-- `workboard_cards_counts` covers the stats / list_boards aggregates (no table rows read).

ALTER TABLE workboard_cards ADD COLUMN has_parents INTEGER NOT NULL DEFAULT 0;
UPDATE workboard_cards SET has_parents = 1
 WHERE id IN (SELECT card_id FROM workboard_card_links WHERE type = 'parent');

CREATE INDEX workboard_cards_watch ON workboard_cards(board_id, status_rank)
  WHERE archived_at IS NULL AND status_rank <= 4
    AND (status_rank = 4 OR scheduled_at IS NOT NULL OR failure_count > 0 OR has_parents = 1);

CREATE INDEX workboard_cards_counts ON workboard_cards(board_id, status, agent_id, archived_at, updated_at);
