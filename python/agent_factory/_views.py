"""Specific notebook views: queue stats, a workboard card, a kanban board.

Built on :mod:`._html` (so every value is escaped and every style inline). The
record types call these from their ``_repr_html_``; this module imports them
for type checking only, so it can be imported by the type modules themselves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import _html
from ._html import Html, esc

if TYPE_CHECKING:
    from ._board_view import BoardView
    from ._types import QueueStats
    from ._workboard_types import Card

__all__ = ["queue_stats_html", "card_html", "kanban_html", "card_tile"]

#: Events shown on a card view, newest first.
RECENT_EVENTS = 5

_BOX = "border:1px solid rgba(128,128,128,.35);border-radius:6px"


def queue_stats_html(stats: QueueStats, *, now_ms: int | None = None) -> Html:
    """Counts by status as a table with bars, and the oldest ready message's time and
    age (against ``now_ms``, the wall clock by default; no age for a future time)."""
    counts = [
        ("ready", stats.queued_ready, "teal"),
        ("delayed", stats.queued_delayed, "purple"),
        ("processing", stats.processing, "amber"),
        ("dead letter", stats.dead_letter, "red"),
    ]
    total = sum(n for _, n, _ in counts)
    top = max((n for _, n, _ in counts), default=0) or 1
    rows = [(_html.badge(name, colour), n, _html.bar(n / top, colour)) for name, n, colour in counts]
    out = _html.table(["status", "messages", ""], rows, caption=f"QueueStats · {total} messages")
    if stats.oldest_ready_at is None:
        return Html(out + _html.note("no message is ready"))
    now = int(time.time() * 1000) if now_ms is None else now_ms
    age = now - stats.oldest_ready_at
    waited = f" (waiting {_html.duration(age)})" if age >= 0 else ""
    line = f"oldest ready message since {_html.utc(stats.oldest_ready_at)}{waited}"
    return Html(out + f"<div style='margin-top:2px'>{esc(line)}</div>")


def _events_table(events: Iterable[Mapping[str, Any]]) -> Html:
    rows = []
    for e in events:
        frm, to = e.get("from_status"), e.get("to_status")
        move = f"{frm or '·'} → {to}" if to else ""
        text = next((str(e[k]) for k in ("message", "summary", "note", "body", "reason") if e.get(k)), "")
        at = e.get("at")
        rows.append((
            _html.cell("at", at) if isinstance(at, int) else _html.cell("at", None),
            str(e.get("kind", "")),
            move,
            _html.cell("text", text) if text else _html.cell("text", None),
        ))
    return _html.table(["at", "event", "status", "detail"], rows, caption="recent events")


def card_html(card: Card) -> Html:
    """A card: title, status, priority and labels on top; board, agent, claim owner and
    expiry, dependencies and times below; then its most recent events."""
    head = " ".join(
        [f"<span style='font-weight:600;font-size:110%'>{esc(_html.truncate(card.title, 200))}</span>",
         _html.status_badge(card.status), _html.priority_badge(card.priority), _html.chips(card.labels)]
    )
    claim = card.claim or {}
    parents = card.parent_ids
    pairs: list[tuple[str, Any]] = [
        ("id", esc(card.id)),
        ("board", esc(card.board_id)),
        ("agent", _html.cell("agent_id", card.agent_id)),
        ("claim owner", _html.cell("owner_id", claim.get("owner_id"))),
        ("claim expires", _html.cell("expires_at", claim.get("expires_at"))),
        ("depends on", Html(", ".join(_html.short_id(p) for p in parents)) if parents else _html.cell("", None)),
        ("created", _html.cell("created_at", card.created_at)),
        ("updated", _html.cell("updated_at", card.updated_at)),
    ]
    if card.completed_at is not None:
        pairs.append(("completed", _html.cell("completed_at", card.completed_at)))
    if card.notes:
        pairs.append(("notes", _html.cell("notes", card.notes)))
    out = f"<div style='margin-bottom:4px'>{head}</div>" + _html.kv_table(pairs)
    if card.events:
        recent = list(reversed(card.events))[:RECENT_EVENTS]  # the core keeps them oldest first
        out += _events_table(recent)
    return Html(f"<div>{out}</div>")


def card_tile(card: Card) -> Html:
    """A compact card for a kanban column: title, priority, labels, claim owner."""
    owner = card.claim_owner
    rgb = _html.priority_rgb(card.priority)
    lines = [
        f"<div style='font-weight:600' title='{esc(card.id)}'>{esc(_html.truncate(card.title, 90))}</div>",
        f"<div style='margin-top:2px'>{_html.priority_badge(card.priority)} {_html.chips(card.labels)}</div>",
    ]
    if owner:
        lines.append(f"<div style='opacity:.75;font-size:90%'>claimed by {esc(owner)}</div>")
    return Html(
        f"<div data-card-id='{esc(card.id)}' style='{_BOX};border-left:4px solid rgba({rgb},.8);"
        f"padding:4px 6px;margin-top:6px'>{''.join(lines)}</div>"
    )


def kanban_html(view: BoardView) -> Html:
    """Columns side by side (a scrolling flex row), one per status in the workboard's
    order, each with its badge, total count and card tiles ("… N more" when cut)."""
    columns = []
    for col in view.columns:
        tiles = "".join(card_tile(c) for c in col.cards)
        if col.total == 0:
            tiles = f"<div style='opacity:.5;font-style:italic;margin-top:6px'>{esc('no cards')}</div>"
        elif col.more:
            tiles += f"<div style='opacity:.7;margin-top:6px'>{esc(f'… {col.more} more')}</div>"
        columns.append(
            f"<div data-status='{esc(col.status)}' style='flex:0 0 210px;{_BOX};padding:6px;"
            f"background:rgba(128,128,128,.06)'>"
            f"<div style='display:flex;justify-content:space-between;align-items:center'>"
            f"{_html.status_badge(col.status)}<span style='opacity:.75'>{col.total}</span></div>{tiles}</div>"
        )
    title = "all boards" if view.board_id is None else f"board {view.board_id}"
    head = f"<div style='font-weight:600;margin-bottom:4px'>{esc(title)} · {view.total} cards</div>"
    row = f"<div style='display:flex;gap:8px;align-items:flex-start;overflow-x:auto;padding-bottom:4px'>{''.join(columns)}</div>"
    return Html(f"<div>{head}{row}</div>")
