"""Immutable result types of the workboard (``Workboard`` / ``AsyncWorkboard``).

Frozen dataclasses with attribute access, ``to_dict()`` and an HTML table for
notebooks. JSON-shaped parts of a card (``execution``, ``events``, ``metadata``)
are plain dicts and lists, with snake_case keys.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from ._types import _Record

__all__ = [
    "Card",
    "CardClaim",
    "WorkboardBoard",
    "BoardSummary",
    "BoardStats",
    "Attachment",
    "AttachmentContent",
    "CardAttachments",
    "CardRuns",
    "CardExport",
    "PromotedCards",
    "ChangeRevision",
]


@dataclass(frozen=True, slots=True)
class Card(_Record):
    """A workboard card. ``metadata`` is ``None`` when the card has none; the board is
    ``metadata["automation"]["board_id"]`` (see :attr:`board_id`)."""

    id: str
    title: str
    notes: str | None
    status: str
    priority: str
    labels: list[str]
    agent_id: str | None
    session_key: str | None
    run_id: str | None
    task_id: str | None
    source_url: str | None
    execution: dict[str, Any] | None
    position: int
    created_at: int
    updated_at: int
    started_at: int | None
    completed_at: int | None
    events: list[dict[str, Any]]
    metadata: dict[str, Any] | None

    @property
    def board_id(self) -> str:
        """The card's board (``"default"`` unless set)."""
        automation = (self.metadata or {}).get("automation") or {}
        return automation.get("board_id") or "default"

    @property
    def claim(self) -> dict[str, Any] | None:
        """The current claim (``owner_id``, ``token``, ``claimed_at``, ``last_heartbeat_at``, ``expires_at``)."""
        return (self.metadata or {}).get("claim")

    @property
    def parent_ids(self) -> list[str]:
        """Ids of the cards this card depends on."""
        links = (self.metadata or {}).get("links") or []
        return list(dict.fromkeys(l["target_card_id"] for l in links if l.get("type") == "parent"))

    def _repr_html_(self) -> str:
        fields = {
            "id": self.id, "title": self.title, "status": self.status, "priority": self.priority,
            "board": self.board_id, "agent": self.agent_id, "labels": ", ".join(self.labels),
            "claim": (self.claim or {}).get("owner_id"), "updated_at": self.updated_at,
            "events": len(self.events),
        }
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in fields.items()
        )
        return f"<table><caption>Card</caption>{rows}</table>"


def cards_html(cards: list[Card]) -> str:
    """An HTML table of cards (one row each) for notebooks."""
    head = "".join(f"<th>{h}</th>" for h in ("id", "status", "priority", "board", "agent", "title"))
    rows = "".join(
        "<tr>" + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (c.id[:8], c.status, c.priority, c.board_id, c.agent_id or "", c.title)
        ) + "</tr>"
        for c in cards
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


@dataclass(frozen=True, slots=True)
class CardClaim(_Record):
    """Result of ``claim``: the claimed card and the claim token (the capability)."""

    _nested: ClassVar[Mapping[str, type]] = {"card": Card}

    card: Card
    token: str


@dataclass(frozen=True, slots=True)
class WorkboardBoard(_Record):
    """A stored board."""

    id: str
    name: str | None
    description: str | None
    icon: str | None
    color: str | None
    default_workspace: dict[str, Any] | None
    orchestration: dict[str, Any] | None
    created_at: int
    updated_at: int
    archived_at: int | None


@dataclass(frozen=True, slots=True)
class BoardSummary(_Record):
    """A board with its card counts (``created_at`` is ``None`` for boards never stored)."""

    id: str
    name: str | None
    description: str | None
    icon: str | None
    color: str | None
    default_workspace: dict[str, Any] | None
    orchestration: dict[str, Any] | None
    created_at: int | None
    updated_at: int | None
    archived_at: int | None
    total: int
    active: int
    archived: int
    by_status: dict[str, int]


@dataclass(frozen=True, slots=True)
class BoardStats(_Record):
    """Card statistics of one board (``id``) or of all (``id == "all"``)."""

    id: str
    total: int
    active: int
    archived: int
    by_status: dict[str, int]
    by_agent: dict[str, int]
    oldest_ready_age_ms: int | None
    updated_at: int | None


@dataclass(frozen=True, slots=True)
class Attachment(_Record):
    """An attachment index entry (no content)."""

    id: str
    card_id: str
    created_at: int
    file_name: str
    byte_size: int
    mime_type: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AttachmentContent(_Record):
    """An attachment with its content."""

    _nested: ClassVar[Mapping[str, type]] = {"attachment": Attachment}

    attachment: Attachment
    content_base64: str

    @property
    def content(self) -> bytes:
        """The decoded bytes."""
        return base64.b64decode(self.content_base64)


@dataclass(frozen=True, slots=True)
class CardAttachments(_Record):
    """A card and its attachment index."""

    _nested: ClassVar[Mapping[str, type]] = {"card": Card}
    _nested_lists: ClassVar[Mapping[str, type]] = {"attachments": Attachment}

    card: Card
    attachments: list[Attachment]


@dataclass(frozen=True, slots=True)
class CardRuns(_Record):
    """A card and its run attempts (dicts, oldest first)."""

    _nested: ClassVar[Mapping[str, type]] = {"card": Card}

    card: Card
    attempts: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CardExport(_Record):
    """Every card plus the attachment index of every card (no content)."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"cards": Card, "attachments": Attachment}

    cards: list[Card]
    attachments: list[Attachment]
    exported_at: int


@dataclass(frozen=True, slots=True)
class PromotedCards(_Record):
    """Cards whose status ``promote_ready`` changed."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"cards": Card}

    cards: list[Card]
    count: int


@dataclass(frozen=True, slots=True)
class ChangeRevision(_Record):
    """Committed workboard mutations (all processes) and SQLite's ``data_version``."""

    revision: int
    data_version: int
