"""Notes filed as workboard cards: the ``workboard`` and ``manual_clock`` fixtures."""

from __future__ import annotations

import pytest

from agent_factory import ConflictError, ManualClock, Workboard
from notes_bot.board import BOARD, card_from_note


def test_a_note_becomes_one_card_on_the_notes_board(workboard: Workboard) -> None:
    card = card_from_note(workboard, "  buy milk ", chat="chat:1")
    again = card_from_note(workboard, "buy milk", chat="chat:1")

    assert again.id == card.id
    assert (card.title, card.board_id, card.labels, card.notes) == ("buy milk", BOARD, ["from-chat"], "filed from chat:1")
    assert [c.id for c in workboard.list(board_id=BOARD)] == [card.id]
    with pytest.raises(ValueError, match="needs some text"):
        card_from_note(workboard, "   ", chat="chat:1")


def test_a_claim_on_a_note_card_expires_with_the_clock(workboard: Workboard, manual_clock: ManualClock) -> None:
    card = card_from_note(workboard, "call Bob", chat="chat:2")
    workboard.claim(card.id, "alice", ttl_seconds=60)
    with pytest.raises(ConflictError):
        workboard.claim(card.id, "bob", ttl_seconds=60)

    manual_clock.advance(61_000)

    taken = workboard.claim(card.id, "bob", ttl_seconds=60)
    assert taken.card.claim_owner == "bob"
