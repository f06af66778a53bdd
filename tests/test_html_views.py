"""Notebook views: ``RecordList`` (tables, ``to_pandas``), the specific record views
(queue stats, workers, jobs, snapshots, cards) and the kanban ``BoardView``.

The views are asserted on content (values, badges, order), on escaping (a
``<script>`` in a title, a label or an error never reaches the markup) and on
the DataFrame shapes. Real factories and workboards on temporary files."""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from agent_factory import (
    AsyncWorkboard,
    BoardColumn,
    BoardView,
    Card,
    Factory,
    Job,
    ManualClock,
    NotFoundError,
    RecordList,
    Snapshot,
    ValidationError,
    Workboard,
    WorkerRecord,
)
from agent_factory._board_view import CARD_STATUSES
from agent_factory._html import duration, human_bytes, truncate, utc

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _statuses_in(markup: str) -> list[str]:
    return re.findall(r"data-status='([^']+)'", markup)


def _enqueue(factory: Factory, agent: str, n: int, *, text: str = "hi") -> list[str]:
    return [
        factory.queue.enqueue(
            f"chat-{i}", agent, {"provider": "telegram", "providerUserId": str(i), "messageText": text}
        )
        for i in range(n)
    ]


# ---- formatting helpers ----


def test_formatting_helpers_are_readable() -> None:
    assert utc(0) == "1970-01-01 00:00:00 UTC"
    assert utc(1_767_225_600_000) == "2026-01-01 00:00:00 UTC"
    assert utc(10**20) == str(10**20)  # out of range: the number, not an exception
    assert [duration(850), duration(12_500), duration(192_000), duration(7_500_000)] == [
        "850 ms", "12.5 s", "3m 12s", "2h 05m",
    ]
    assert [human_bytes(512), human_bytes(1536), human_bytes(5 * 1024**3)] == ["512 B", "1.5 KiB", "5.0 GiB"]
    assert truncate("x" * 100, 10) == "x" * 9 + "…" and truncate("short", 10) == "short"


# ---- RecordList ----


def test_every_listing_returns_a_typed_record_list(factory: Factory, workboard: Workboard, support_agent: str) -> None:
    _enqueue(factory, support_agent, 2)
    workboard.create("a card")
    listings: dict[str, RecordList[Any]] = {
        "agents": factory.agents.list(),
        "jobs": factory.queue.list_jobs("queued"),
        "conversation jobs": factory.queue.list_conversation_jobs("chat-0"),
        "workers": factory.workers.list(),
        "snapshots": factory.snapshots.list_for_conversation("chat-0"),
        "cards": workboard.list(),
        "boards": workboard.list_boards(),
        "subscriptions": workboard.list_notification_subscriptions(),
        "templates": factory.templates.list(),
        "push jobs": factory.push.list_jobs_for_user("u-1"),
    }
    for name, got in listings.items():
        assert isinstance(got, RecordList) and isinstance(got, list), name
        assert got.item_type is not None, f"{name}: the record type is known even when empty"
    assert listings["jobs"].item_type is Job and listings["workers"].item_type is WorkerRecord
    assert listings["cards"].item_type is Card and len(listings["jobs"]) == 2


def test_record_list_behaves_as_a_list(factory: Factory, support_agent: str) -> None:
    _enqueue(factory, support_agent, 3)
    jobs = factory.queue.list_jobs("queued")
    head = jobs[:2]
    assert isinstance(head, RecordList) and head.item_type is Job and len(head) == 2
    assert jobs[0] is list.__getitem__(jobs, 0) and jobs == list(jobs) and jobs.copy() == jobs
    again = pickle.loads(pickle.dumps(jobs))
    assert again == jobs and again.item_type is Job
    dumped = json.loads(json.dumps(jobs.to_dicts()))
    assert [d["message_id"] for d in dumped] == [j.message_id for j in jobs]
    empty: RecordList[Job] = RecordList([], Job)
    assert empty == [] and empty.item_type is Job and RecordList().item_type is None


def test_nested_record_lists_and_to_dict_stay_plain(workboard: Workboard) -> None:
    parent = workboard.create("parent")
    out = workboard.decompose(parent.id, [{"title": "child 1"}, {"title": "child 2"}])
    assert isinstance(out.children, RecordList) and out.children.item_type is Card
    as_dict = out.to_dict()
    assert type(as_dict["children"]) is list and as_dict["children"][0]["title"] == "child 1"
    json.dumps(as_dict)


def test_record_list_html_is_a_table_of_the_type_columns(factory: Factory, support_agent: str) -> None:
    _enqueue(factory, support_agent, 2)
    markup = factory.queue.list_jobs("queued")._repr_html_()
    assert "<table>" in markup and "Job · 2 rows" in markup
    for column in ("message_id", "status", "conversation_id", "agent_key", "attempts", "created_at", "scheduled_for"):
        assert f">{column}</th>" in markup
    assert "2026-01-01 00:00:00 UTC" in markup  # created / scheduled as readable UTC times
    assert "chat-0" in markup and "chat-1" in markup and ">queued</span>" in markup


def test_empty_record_list_is_a_one_line_note(factory: Factory) -> None:
    markup = factory.workers.list()._repr_html_()
    assert "<table" not in markup and "no rows" in markup and "Worker" in markup


def test_long_text_is_truncated_and_large_lists_are_capped(workboard: Workboard) -> None:
    long_title = ("word " * 30).strip()
    workboard.create(long_title)
    markup = workboard.list()._repr_html_()
    shown = truncate(long_title)
    assert shown.endswith("…") and len(shown) == 80
    assert f"title='{long_title}'>{shown}</span>" in markup  # cut in the cell, whole on hover
    cards = RecordList([workboard.list()[0]] * 5, Card)
    cards_html = cards._repr_html_()
    assert cards_html.count("<tr>") == 6  # header and five rows
    small = type("Capped", (RecordList,), {"html_max_rows": 2})(cards, Card)
    capped = small._repr_html_()
    assert capped.count("<tr>") == 3 and "3 more rows" in capped


# ---- escaping ----


def test_values_are_escaped_everywhere(factory: Factory, workboard: Workboard, support_agent: str) -> None:
    card = workboard.create(SCRIPT, labels=[SCRIPT], notes=SCRIPT, status="ready", priority="urgent")
    workboard.claim(card.id, "owner-<b>")
    views = {
        "card": workboard.get(card.id)._repr_html_(),  # type: ignore[union-attr]
        "cards": workboard.list()._repr_html_(),
        "kanban": workboard.kanban()._repr_html_(),
    }
    _enqueue(factory, support_agent, 1, text=SCRIPT)
    worker = factory.worker("w-1", mode="pooled")
    claim = worker.claim()
    assert claim is not None
    worker.fail(claim, f"boom {SCRIPT}")
    views["jobs"] = factory.queue.list_jobs("queued")._repr_html_()
    views["job"] = factory.queue.list_jobs("queued")[0]._repr_html_()
    for name, markup in views.items():
        assert "<script>" not in markup, name
        assert ESCAPED in markup or "&lt;script&gt;" in markup, name
    assert "owner-&lt;b&gt;" in views["kanban"] and "<b>" not in views["kanban"]


# ---- specific views ----


def test_queue_stats_view_counts_and_oldest_ready_age(factory: Factory, support_agent: str, manual_clock: ManualClock) -> None:
    _enqueue(factory, support_agent, 3)
    manual_clock.advance(192_000)
    stats = factory.queue.stats()
    markup = stats._repr_html_()
    assert "QueueStats · 3 messages" in markup and ">ready</span>" in markup and ">dead letter</span>" in markup
    assert "oldest ready message since 2026-01-01 00:00:00 UTC" in markup
    from agent_factory._views import queue_stats_html

    assert "(waiting 3m 12s)" in queue_stats_html(stats, now_ms=manual_clock.now_ms())
    empty = Factory(":memory:").queue.stats()._repr_html_()
    assert "QueueStats · 0 messages" in empty and "no message is ready" in empty


def test_workers_list_has_status_badges(factory: Factory) -> None:
    for worker_id, path in {
        "w-active": ["active"],
        "w-draining": ["active", "draining"],
        "w-stopping": ["active", "draining", "stopping"],
        "w-stopped": ["active", "draining", "stopping", "stopped"],
    }.items():
        for status in path:
            factory.workers.upsert_worker_state(worker_id, status=status)
    markup = factory.workers.list()._repr_html_()
    badges = dict(re.findall(r"rgba\(([\d,]+),\.18\);border:1px solid rgba\([\d,]+,\.6\)'>(\w+)</span>", markup))
    by_status = {status: rgb for rgb, status in badges.items()}
    assert set(by_status) >= {"active", "draining", "stopping", "stopped"}
    assert len({by_status[s] for s in ("active", "draining", "stopping", "stopped")}) == 4  # four colours
    assert "Worker · 4 rows" in markup and ">w-draining<" in markup


def test_snapshot_list_shows_human_sizes(factory: Factory, support_agent: str, tmp_path: Path) -> None:
    data = tmp_path / "ws"
    data.mkdir()
    (data / "notes.md").write_text("x" * 5000)
    factory.snapshots.snapshot_directory("w-1", "default", support_agent, "chat-0", "manual", data)
    snaps = factory.snapshots.list_for_conversation("chat-0")
    markup = snaps._repr_html_()
    assert snaps.item_type is Snapshot and len(snaps) == 1
    for column in ("snapshot_id", "conversation_id", "worker_id", "size_bytes", "created_at", "status"):
        assert f">{column}</th>" in markup
    size = snaps[0].size_bytes
    assert size is not None and f"title='{size} bytes'>{human_bytes(size)}<" in markup
    assert ">ready</span>" in markup and "chat-0" in markup


def test_card_view_shows_claim_dependencies_and_events(workboard: Workboard, manual_clock: ManualClock) -> None:
    parent = workboard.create("Design the rota")
    child = workboard.create("Staff the rota", labels=["people", "ops"], priority="high", parents=[parent.id])
    workboard.update(parent.id, status="done")
    workboard.update(child.id, status="ready")
    claimed = workboard.claim(child.id, "alice", ttl_seconds=600)
    card = claimed.card
    markup = card._repr_html_()
    assert "<table>" in markup and "Staff the rota" in markup
    assert ">running</span>" in markup and ">high</span>" in markup
    assert ">people</span>" in markup and ">ops</span>" in markup
    assert ">alice<" in markup and card.claim_owner == "alice"
    assert card.claim_expires_at == manual_clock.now_ms() + 600_000
    assert utc(card.claim_expires_at) in markup
    assert parent.id[:8] in markup and f"title='{parent.id}'" in markup  # dependency, whole id on hover
    assert "recent events" in markup and "claimed" in markup and "ready → running" in markup


# ---- kanban ----


def test_card_statuses_match_the_core_order(workboard: Workboard) -> None:
    for status in reversed(CARD_STATUSES):
        workboard.create(f"in {status}", status=status)
    assert [c.status for c in workboard.list()] == list(CARD_STATUSES)


def test_kanban_columns_counts_and_html(workboard: Workboard) -> None:
    for i in range(5):
        workboard.create(f"todo {i}", board_id="ops", labels=["l1"], priority="high" if i == 0 else "normal")
    ready = workboard.create("ready one", board_id="ops", status="ready")
    workboard.claim(ready.id, "bob")
    workboard.create("elsewhere", board_id="other", status="blocked")
    view = workboard.kanban("ops", limit_per_status=2)
    assert isinstance(view, BoardView) and view.board_id == "ops" and view.limit_per_status == 2
    assert view.statuses == list(CARD_STATUSES)
    todo = view.column("todo")
    assert isinstance(todo, BoardColumn) and todo.total == 5 and len(todo.cards) == 2 and todo.more == 3
    assert [c.title for c in todo.cards] == ["todo 0", "todo 1"]  # board order
    assert view.column("running").total == 1 and view.column("blocked").total == 0
    assert view.total == 6 and len(view.cards) == 3
    markup = view._repr_html_()
    assert _statuses_in(markup) == list(CARD_STATUSES)
    assert "board ops · 6 cards" in markup and "… 3 more" in markup and "claimed by bob" in markup
    assert "todo 0" in markup and "todo 2" not in markup and "elsewhere" not in markup
    assert ">l1</span>" in markup and ">high</span>" in markup
    everything = workboard.kanban()
    assert everything.board_id is None and everything.total == 7 and everything.column("blocked").total == 1
    with pytest.raises(NotFoundError, match="no column 'nope'"):
        view.column("nope")


def test_kanban_leaves_archived_cards_out_of_columns_and_totals(workboard: Workboard) -> None:
    cards = [workboard.create(f"done {i}", status="done") for i in range(6)]
    for card in cards[:3]:
        workboard.archive(card.id)
    assert workboard.stats().by_status["done"] == 6  # the stats count archived cards
    for limit in (2, 3, 10):  # full page (total from stats less the archived) and partial page
        done = workboard.kanban(limit_per_status=limit).column("done")
        assert done.total == 3 and len(done.cards) == min(limit, 3), limit
        assert all(c.title in {"done 3", "done 4", "done 5"} for c in done.cards)


def test_kanban_of_an_empty_or_unknown_board(workboard: Workboard) -> None:
    view = workboard.kanban("nothing-here")
    assert view.total == 0 and all(c.total == 0 and not c.cards for c in view.columns)
    markup = view._repr_html_()
    assert _statuses_in(markup) == list(CARD_STATUSES) and markup.count("no cards") == len(CARD_STATUSES)


@pytest.mark.parametrize("bad", [0, -1, 1001, True, 2.5, "5", None])
def test_kanban_rejects_a_bad_limit(workboard: Workboard, bad: object) -> None:
    with pytest.raises(ValidationError, match="limit_per_status must be an integer within 1..=1000"):
        workboard.kanban(limit_per_status=bad)  # type: ignore[arg-type]


def test_kanban_rejects_a_bad_board_id(workboard: Workboard) -> None:
    with pytest.raises(TypeError, match="board_id"):
        workboard.kanban(42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="80 characters"):
        workboard.kanban("b" * 200)


def test_async_kanban(async_workboard: AsyncWorkboard) -> None:
    async def run() -> BoardView:
        await async_workboard.create("async card", status="review")
        return await async_workboard.kanban()

    view = asyncio.run(run())
    assert view.column("review").total == 1 and "async card" in view._repr_html_()


# ---- pandas ----


def test_to_pandas_shapes(factory: Factory, workboard: Workboard, support_agent: str) -> None:
    pd = pytest.importorskip("pandas")
    _enqueue(factory, support_agent, 3)
    jobs = factory.queue.list_jobs("queued").to_pandas()
    assert isinstance(jobs, pd.DataFrame) and jobs.shape == (3, len(fields(Job)))
    assert list(jobs.columns) == [f.name for f in fields(Job)]
    assert jobs["payload"][0]["messageText"] == "hi"  # JSON fields stay dicts
    empty = factory.workers.list().to_pandas()
    assert empty.shape == (0, len(fields(WorkerRecord))) and "assignment" in empty.columns
    worker = factory.worker("w-1", mode="sticky")
    assert worker.claim() is not None
    workers = factory.workers.list().to_pandas()
    assert workers.loc[0, "assignment"]["conversation_id"] == "chat-0"  # nested records kept as dicts

    for status in ("todo", "ready", "done"):
        workboard.create(f"{status} card", status=status, labels=["x"])
    board = workboard.kanban().to_pandas()
    assert board.shape == (3, len(fields(Card)) + 2)
    assert list(board["status"]) == ["todo", "ready", "done"] and board["title"][0] == "todo card"
    assert {"board_id", "claim_owner"} <= set(board.columns) and board["labels"][0] == ["x"]
    assert workboard.kanban("none").to_pandas().shape == (0, len(fields(Card)) + 2)


def test_to_pandas_without_pandas_says_how_to_install(factory: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` sees when it is missing
    with pytest.raises(ImportError, match=r"pip install pandas"):
        factory.workers.list().to_pandas()
    with pytest.raises(ImportError, match=r"agent-factory\[notebook\]"):
        Workboard(":memory:").kanban().to_pandas()
