"""Turning notes into workboard cards."""

from __future__ import annotations

from agent_factory import Card, Workboard

BOARD = "notes"


def card_from_note(workboard: Workboard, text: str, *, chat: str) -> Card:
    """File ``/todo <title>``-style note text as a card on the notes board, labelled
    and noted with where it came from; the same note from the same chat is filed once."""
    title = text.strip()
    if not title:
        raise ValueError("a note needs some text to become a card")
    return workboard.create(
        title,
        board_id=BOARD,
        labels=["from-chat"],
        notes=f"filed from {chat}",
        idempotency_key=f"{chat}:{title}",
    )
