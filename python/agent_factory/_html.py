"""HTML building blocks for the notebook views (``_repr_html_``).

Invariants: every value that reaches the output passes through :func:`esc`
unless it is an :class:`Html` fragment built by this module (or the view
modules on top of it), so text from the database can never inject markup;
styles are inline (notebook front ends may strip ``<style>``) and there is no
JavaScript; colours are translucent tints over the theme's own background with
the text colour inherited, so views read the same in light and dark themes.
Tables are emitted as a bare ``<table>`` so the front end's table styling
applies; only cells carry padding and rules.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "Html",
    "esc",
    "truncate",
    "utc",
    "duration",
    "human_bytes",
    "badge",
    "status_badge",
    "priority_badge",
    "priority_colour",
    "priority_rgb",
    "chips",
    "short_id",
    "bar",
    "cell",
    "table",
    "kv_table",
    "note",
    "record_html",
    "column_value",
]

#: Characters of text shown in a table cell before it is cut with an ellipsis.
TEXT_LIMIT = 80

_RGB = {
    "green": "34,160,90",
    "teal": "20,150,160",
    "blue": "50,120,220",
    "amber": "215,150,20",
    "orange": "230,105,30",
    "red": "215,55,55",
    "purple": "140,90,210",
    "grey": "128,128,128",
}

# One palette across the areas: worker lifecycle, queue messages, snapshots, cards.
_STATUS_COLOURS = {
    "active": "green",
    "draining": "amber",
    "stopping": "orange",
    "stopped": "grey",
    "queued": "blue",
    "processing": "amber",
    "done": "green",
    "dead_letter": "red",
    "uploading": "blue",
    "ready": "teal",
    "failed": "red",
    "expired": "grey",
    "triage": "purple",
    "backlog": "grey",
    "todo": "blue",
    "scheduled": "purple",
    "running": "amber",
    "review": "orange",
    "blocked": "red",
    "enabled": "green",
    "disabled": "grey",
}

_PRIORITY_COLOURS = {"low": "grey", "normal": "blue", "high": "orange", "urgent": "red"}

_TH = "text-align:left;padding:2px 8px;border-bottom:1px solid rgba(128,128,128,.5);white-space:nowrap"
_TD = "text-align:left;padding:2px 8px;border-bottom:1px solid rgba(128,128,128,.2);vertical-align:top"
_DIM = "opacity:.55"


class Html(str):
    """A fragment of markup built here: inserted as is, never escaped again."""

    __slots__ = ()


def esc(value: Any) -> Html:
    """``value`` as text, HTML-escaped (quotes too); an :class:`Html` fragment passes through."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def truncate(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def utc(ms: int) -> str:
    """Epoch milliseconds as ``YYYY-MM-DD HH:MM:SS UTC`` (the number itself when out of range)."""
    try:
        at = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(ms: int) -> str:
    """Milliseconds as a short duration: ``850 ms``, ``12.5 s``, ``3m 12s``, ``2h 05m``, ``3d 4h``."""
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms} ms"
    if ms < 60_000:
        return f"{sign}{ms / 1000:.1f} s"
    s = ms // 1000
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60:02d}s"
    if s < 86_400:
        return f"{sign}{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{sign}{s // 86_400}d {s % 86_400 // 3600}h"


def human_bytes(n: int) -> str:
    """A byte count in binary units: ``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def badge(text: str, colour: str, *, title: str | None = None) -> Html:
    """A small rounded label tinted with one of the palette's colours (grey if unknown)."""
    rgb = _RGB.get(colour, _RGB["grey"])
    tip = f" title='{esc(title)}'" if title else ""
    return Html(
        f"<span{tip} style='display:inline-block;padding:0 6px;border-radius:9px;font-size:85%;"
        f"white-space:nowrap;background:rgba({rgb},.18);border:1px solid rgba({rgb},.6)'>{esc(text)}</span>"
    )


def status_badge(status: str) -> Html:
    """A status badge coloured by meaning (e.g. active green, draining amber, dead_letter red)."""
    return badge(status, _STATUS_COLOURS.get(status, "grey"))


def priority_colour(priority: str) -> str:
    """The palette colour of a card priority (``low`` … ``urgent``)."""
    return _PRIORITY_COLOURS.get(priority, "grey")


def priority_rgb(priority: str) -> str:
    """The ``r,g,b`` triple of a card priority's colour."""
    return _RGB[priority_colour(priority)]


def priority_badge(priority: str) -> Html:
    """A card priority badge (low grey, normal blue, high orange, urgent red)."""
    return badge(priority, priority_colour(priority))


def chips(labels: Iterable[Any]) -> Html:
    """Labels as a row of neutral chips."""
    return Html(" ".join(badge(truncate(str(label), 30), "grey") for label in labels))


def short_id(value: str, keep: int = 8) -> Html:
    """A long id cut to its first ``keep`` characters; the whole id shows on hover."""
    if len(value) <= keep + 5:
        return esc(value)
    return Html(f"<span title='{esc(value)}' style='font-family:monospace'>{esc(value[:keep])}…</span>")


def bar(fraction: float, colour: str = "blue", width_px: int = 120) -> Html:
    """A horizontal bar filled to ``fraction`` (clamped to 0..1)."""
    frac = min(max(fraction, 0.0), 1.0)
    rgb = _RGB.get(colour, _RGB["grey"])
    return Html(
        f"<div style='width:{width_px}px;height:8px;border-radius:4px;background:rgba(128,128,128,.15)'>"
        f"<div style='width:{frac * 100:.1f}%;height:8px;border-radius:4px;background:rgba({rgb},.75)'></div></div>"
    )


def note(text: str) -> Html:
    """A one-line, dimmed remark (e.g. an empty list)."""
    return Html(f"<div style='{_DIM};font-style:italic'>{esc(text)}</div>")


def _none() -> Html:
    return Html(f"<span style='{_DIM}'>—</span>")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))


def _text(value: str, limit: int = TEXT_LIMIT) -> Html:
    if len(value) <= limit:
        return esc(value)
    return Html(f"<span title='{esc(truncate(value, 1000))}'>{esc(truncate(value, limit))}</span>")


def _is_time(name: str) -> bool:
    return name.endswith(("_at", "_for")) or name in ("at", "at_ms")


def cell(name: str, value: Any) -> Html:
    """``value`` of a field named ``name`` as table-cell markup, chosen by the name's
    conventions: ``status``/``state`` as a badge, ``priority`` (text) as a priority
    badge, ``labels`` as chips, ``*_at`` / ``*_for`` epoch ms as UTC times,
    ``*_ms`` as durations, ``*bytes`` / ``byte_size`` as human sizes, long ids
    shortened (whole on hover), other text truncated with an ellipsis; nested
    records and JSON values compact."""
    if value is None:
        return _none()
    if isinstance(value, bool):
        return esc("true" if value else "false")
    if isinstance(value, str):
        if name in ("status", "state") or name.endswith("_status"):
            return status_badge(value)
        if name == "priority":
            return priority_badge(value)
        if name == "id" or name.endswith("_id"):
            return short_id(value) if len(value) >= 32 else esc(value)
        return _text(value)
    if isinstance(value, int):
        if _is_time(name):
            return Html(f"<span title='{value}' style='white-space:nowrap'>{esc(utc(value))}</span>")
        if name.endswith("_ms"):
            return Html(f"<span title='{value} ms'>{esc(duration(value))}</span>")
        if name.endswith("bytes") or name == "byte_size":
            return Html(f"<span title='{value} bytes'>{esc(human_bytes(value))}</span>")
        return esc(value)
    if name == "labels" and isinstance(value, list | tuple):
        return chips(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = [f"{f.name}={getattr(value, f.name)!r}" for f in dataclasses.fields(value)]
        return _text(f"{type(value).__name__}({', '.join(parts)})")
    if isinstance(value, list | tuple) and value and dataclasses.is_dataclass(value[0]):
        return esc(f"{len(value)} {type(value[0]).__name__} records")
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return _text(", ".join(value)) if value else _none()
    if isinstance(value, Mapping | list | tuple):
        return _text(_json(value))
    return _text(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | Html | None = None) -> Html:
    """A table: ``headers`` as text, each row's cells escaped unless already :class:`Html`."""
    head = "".join(f"<th style='{_TH}'>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='{_TD}'>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    cap = "" if caption is None else f"<caption style='text-align:left;font-weight:600'>{esc(caption)}</caption>"
    return Html(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def kv_table(pairs: Iterable[tuple[str, Any]], *, caption: str | Html | None = None) -> Html:
    """A two-column table of names and values (values escaped unless :class:`Html`)."""
    body = "".join(f"<tr><th style='{_TH}'>{esc(k)}</th><td style='{_TD}'>{esc(v)}</td></tr>" for k, v in pairs)
    cap = "" if caption is None else f"<caption style='text-align:left;font-weight:600'>{esc(caption)}</caption>"
    return Html(f"<table>{cap}<tbody>{body}</tbody></table>")


def column_value(item: Any, path: str) -> Any:
    """The value at a dotted attribute path (``assignment.conversation_id``) of a record
    or mapping; ``None`` where a step is missing."""
    value = item
    for step in path.split("."):
        if value is None:
            return None
        value = value.get(step) if isinstance(value, Mapping) else getattr(value, step, None)
    return value


def record_html(record: Any) -> Html:
    """One record as a table of its fields (``to_dict`` order), each rendered by :func:`cell`."""
    pairs = [(f.name, cell(f.name, getattr(record, f.name))) for f in dataclasses.fields(record)]
    return kv_table(pairs, caption=type(record).__name__)
