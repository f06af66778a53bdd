"""Immutable result types of the workboard (``Workboard`` / ``AsyncWorkboard``).

Frozen dataclasses with attribute access, ``to_dict()`` and an HTML table for
notebooks. JSON-shaped parts of a card (``execution``, ``events``, ``metadata``)
are plain dicts and lists, with snake_case keys.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from . import _views
from ._record_list import RecordList
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

    _html_columns: ClassVar[tuple[str, ...]] = (
        "id", "title", "status", "priority", "labels", "claim_owner", "agent_id", "board_id", "updated_at",
    )

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
    def claim_owner(self) -> str | None:
        """The owner of the current claim, if any."""
        owner = (self.claim or {}).get("owner_id")
        return None if owner is None else str(owner)

    @property
    def claim_expires_at(self) -> int | None:
        """When the current claim expires (epoch ms), if claimed."""
        expires = (self.claim or {}).get("expires_at")
        return None if expires is None else int(expires)

    @property
    def parent_ids(self) -> list[str]:
        """Ids of the cards this card depends on."""
        links = (self.metadata or {}).get("links") or []
        return list(dict.fromkeys(link["target_card_id"] for link in links if link.get("type") == "parent"))

    def _repr_html_(self) -> str:
        """Title, status, priority, labels, claim owner and expiry, dependencies, recent events."""
        return _views.card_html(self)


def cards_html(cards: list[Card]) -> str:
    """An HTML table of cards (one row each) for notebooks."""
    return RecordList(cards, Card)._repr_html_()


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

    _html_columns: ClassVar[tuple[str, ...]] = ("id", "name", "total", "active", "archived", "by_status", "updated_at")

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


# -- 2b: notifications (subscriptions, durable event log) and planning --

__all__ += ["NotificationSubscription", "NotificationEvent", "NotificationEvents", "Decomposition"]


@dataclass(frozen=True, slots=True)
class NotificationSubscription(_Record):
    """A notification subscription and its durable cursor (``last_event_sequence`` is
    the log position of the last delivered event). ``event_kinds`` ``None`` means
    ``completed``, ``failed`` and ``stale``; ask for ``status`` to get every status
    transition."""

    id: str
    board_id: str
    card_id: str | None
    session_key: str | None
    run_id: str | None
    target: str | None
    event_kinds: list[str] | None
    last_event_at: int | None
    last_event_id: str | None
    last_event_sequence: int | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class NotificationEvent(_Record):
    """One event of the durable log. ``sequence`` is strictly increasing in commit
    order across processes; ``session_key`` / ``run_id`` fall back to the card's;
    ``from_status`` / ``to_status`` are set on ``status`` events."""

    id: str
    kind: str
    created_at: int
    sequence: int
    message: str
    card_id: str
    board_id: str
    session_key: str | None
    run_id: str | None
    from_status: str | None
    to_status: str | None


@dataclass(frozen=True, slots=True)
class NotificationEvents(_Record):
    """Events after a subscription's cursor (or a board's / card's from the start) and
    the subscription (updated when the cursor advanced)."""

    _nested: ClassVar[Mapping[str, type]] = {"subscription": NotificationSubscription}
    _nested_lists: ClassVar[Mapping[str, type]] = {"events": NotificationEvent}

    subscription: NotificationSubscription | None
    events: list[NotificationEvent]


@dataclass(frozen=True, slots=True)
class Decomposition(_Record):
    """Result of ``decompose``: the parent and its children in input order."""

    _nested: ClassVar[Mapping[str, type]] = {"parent": Card}
    _nested_lists: ClassVar[Mapping[str, type]] = {"children": Card}

    parent: Card
    children: list[Card]


# -- 2a: hand-offs, dispatch, diagnostics --

__all__ += ["DispatchResult", "CardDiagnostics", "DiagnosticsReport"]


@dataclass(frozen=True, slots=True)
class DispatchResult(_Record):
    """Result of ``dispatch``: the cards it promoted (or demoted), whose expired claim
    it cleared, that it blocked (timeout, expired claim, retry budget) and that it
    marked for orchestration; ``count`` is their total."""

    _nested_lists: ClassVar[Mapping[str, type]] = {
        "promoted": Card, "reclaimed": Card, "blocked": Card, "orchestrated": Card,
    }

    promoted: list[Card]
    reclaimed: list[Card]
    blocked: list[Card]
    orchestrated: list[Card]
    count: int

    def _repr_html_(self) -> str:
        parts = []
        for name in ("promoted", "reclaimed", "blocked", "orchestrated"):
            cards = getattr(self, name)
            if cards:
                parts.append(f"<h4>{name} ({len(cards)})</h4>{cards_html(cards)}")
        return "".join(parts) or "<p>dispatch changed nothing</p>"


@dataclass(frozen=True, slots=True)
class CardDiagnostics(_Record):
    """A card and its diagnostics (dicts: ``kind``, ``severity``, ``title``, ``detail``,
    ``first_seen_at``, ``last_seen_at``, ``count``, ``actions``)."""

    _nested: ClassVar[Mapping[str, type]] = {"card": Card}

    card: Card
    diagnostics: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DiagnosticsReport(_Record):
    """Cards with at least one diagnostic, in board order, and the total number of
    diagnostics (``count``)."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"diagnostics": CardDiagnostics}

    diagnostics: list[CardDiagnostics]
    count: int

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("card", "status", "severity", "kind", "title", "count"))
        rows = "".join(
            "<tr>" + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (e.card.id[:8], e.card.status, d["severity"], d["kind"], d["title"], d["count"])
            ) + "</tr>"
            for e in self.diagnostics
            for d in e.diagnostics
        )
        return f"<table><tr>{head}</tr>{rows}</table>"


# -- 3a: run cards on the worker pool --


@dataclass(frozen=True, slots=True)
class QueuedCard(_Record):
    """A card handed to the worker pool: the card (``running`` under the
    dispatcher's claim), its queued message, conversation and agent."""

    _nested: ClassVar[Mapping[str, type]] = {"card": Card}

    card: Card
    message_id: str
    conversation_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class QueueDispatchResult(_Record):
    """Result of ``dispatch_to_queue``: cards queued, cards blocked because their
    agent is missing, unknown or disabled, and cards left unchanged because their
    claim or enqueue failed (dicts ``card_id``, ``error``)."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"queued": QueuedCard, "blocked": Card}

    queued: list[QueuedCard]
    blocked: list[Card]
    failed: list[dict[str, Any]]

    def _repr_html_(self) -> str:
        parts = []
        if self.queued:
            parts.append(f"<h4>queued ({len(self.queued)})</h4>{cards_html([q.card for q in self.queued])}")
        if self.blocked:
            parts.append(f"<h4>blocked ({len(self.blocked)})</h4>{cards_html(self.blocked)}")
        for f in self.failed:
            parts.append(f"<p>failed {html.escape(str(f['card_id']))}: {html.escape(str(f['error']))}</p>")
        return "".join(parts) or "<p>nothing dispatched</p>"
