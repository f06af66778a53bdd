"""Workboard notifications: subscriptions, the durable event log and cursors.

Ported seed tests (docstrings ``Seed: <title>``) plus what the seed could not do:
delivery in commit order by a log sequence assigned in the writing transaction
(a late event with an old timestamp is not skipped, two processes never make a
subscriber miss or repeat an event), status transitions as events, and bad input
that leaves the database unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import AsyncWorkboard, ManualClock, NotificationEvents, Workboard
from agent_factory.errors import NotFoundError, ValidationError
from helpers import db_snapshot, read_only


@pytest.fixture
def wb() -> Workboard:
    return Workboard(":memory:", clock=ManualClock(1_767_225_600_000))



def imported(event_id: str, kind: str = "completed", created_at: int = 1234, **extra: Any) -> dict[str, Any]:
    return {"notifications": [{"id": event_id, "kind": kind, "created_at": created_at, "message": event_id, **extra}]}


# ---- seed tests ----


def test_sqlite_persistence_of_subscriptions(tmp_path: Path) -> None:
    """Seed: persists boards, cards, subscriptions, and attachment blobs in sqlite

    The subscription part (the rest is in test_workboard_seed.py): a board
    subscription survives reopening and the deletion of a card."""
    db = tmp_path / "workboard.sqlite"
    store = Workboard(db)
    store.upsert_board("planning", name="Planning")
    card = store.create("Persist it", board_id="planning")
    sub = store.subscribe_notifications(board_id="planning", target="session:operator", event_kinds=["completed"])
    reopened = Workboard(db)
    assert reopened.delete(card.id)
    listed = reopened.list_notification_subscriptions(board_id="planning")
    assert [s.id for s in listed] == [sub.id]
    assert listed[0].event_kinds == ["completed"]


def test_separate_stores(tmp_path: Path) -> None:
    """Seed: persists board metadata and notification subscriptions in separate stores"""
    db = tmp_path / "wb.sqlite"
    store = Workboard(db)
    board = store.upsert_board(
        "ops", name="Ops", description="Operational work",
        default_workspace={"kind": "dir", "path": "/tmp/openclaw-ops"},
    )
    card = store.create("Ops card", board_id="ops")
    sub = store.subscribe_notifications(
        board_id="ops", card_id=card.id, target="session:operator", event_kinds=["completed", "failed"],
    )
    con = read_only(db)
    assert con.execute("SELECT id, name, description FROM workboard_boards WHERE id = 'ops'").fetchone() == (
        "ops", "Ops", "Operational work")
    row = con.execute(
        "SELECT id, board_id, card_id, target, event_kinds_json FROM workboard_subscriptions WHERE id = ?", (sub.id,)
    ).fetchone()
    assert row[:4] == (sub.id, "ops", card.id, "session:operator")
    assert json.loads(row[4]) == ["completed", "failed"]
    assert con.execute("SELECT 1 FROM workboard_cards WHERE id = 'ops'").fetchone() is None
    con.close()
    assert board.default_workspace == {"kind": "dir", "path": "/tmp/openclaw-ops"}
    ops = next(b for b in store.list_boards() if b.id == "ops")
    assert (ops.name, ops.total, ops.active, ops.by_status) == ("Ops", 1, 1, {"todo": 1})
    assert [(s.id, s.card_id) for s in store.list_notification_subscriptions(board_id="ops")] == [(sub.id, card.id)]


def test_replay_cursors(wb: Workboard) -> None:
    """Seed: replays notification events with subscription cursors"""
    card = wb.create("Notify me", board_id="ops")
    sub = wb.subscribe_notifications(board_id="ops", card_id=card.id, target="session:operator",
                                     event_kinds=["completed"])
    wb.complete(card.id, summary="Done.")
    preview = wb.notification_events(subscription_id=sub.id)
    assert [e.kind for e in preview.events] == ["completed"]
    stored = wb.list_notification_subscriptions(card_id=card.id)[0]
    assert stored.last_event_at is None and stored.last_event_id is None
    first = wb.advance_notification_events(sub.id)
    assert [e.kind for e in first.events] == ["completed"]
    event = first.events[0]
    stored = wb.list_notification_subscriptions(card_id=card.id)[0]
    assert (stored.last_event_at, stored.last_event_id) == (event.created_at, event.id)
    assert first.subscription == stored
    again = wb.notification_events(subscription_id=sub.id)
    assert again.subscription is not None and again.subscription.id == sub.id
    assert again.events == []
    with pytest.raises(NotFoundError, match="subscription not found"):
        wb.notification_events(subscription_id="missing")
    with pytest.raises(ValidationError, match="subscriptionId is required"):
        wb.advance_notification_events()


def test_same_millisecond_events(wb: Workboard) -> None:
    """Seed: does not skip same-millisecond notification events after cursor advancement"""
    wb.create("First same-ms event", board_id="ops", metadata=imported("z-event", sequence=1234000))
    wb.create("Second same-ms event", board_id="ops", metadata=imported("a-event", sequence=1234001))
    sub = wb.subscribe_notifications(board_id="ops", target="session:operator", event_kinds=["completed"])
    first = wb.advance_notification_events(sub.id, limit=1)
    assert [e.id for e in first.events] == ["z-event"]
    second = wb.notification_events(subscription_id=sub.id)
    assert [e.id for e in second.events] == ["a-event"]


def test_large_same_millisecond_batch(wb: Workboard) -> None:
    """Seed: drains large same-millisecond notification batches without replaying delivered ids"""
    for i in range(205):
        wb.create(f"Same-ms event {i}", board_id="ops", metadata=imported(f"event-{i}", sequence=1234000 + i))
    sub = wb.subscribe_notifications(board_id="ops", target="session:operator", event_kinds=["completed"])
    first = wb.advance_notification_events(sub.id, limit=200)
    assert [e.id for e in first.events] == [f"event-{i}" for i in range(200)]
    second = wb.advance_notification_events(sub.id)
    assert [e.id for e in second.events] == [f"event-{i}" for i in range(200, 205)]
    assert wb.notification_events(subscription_id=sub.id).events == []


def test_session_and_run_filters(wb: Workboard) -> None:
    """Seed: filters replayed notification events by session and run subscriptions"""
    matching = wb.create("Matching session", board_id="ops", session_key="session-1", run_id="run-1")
    unrelated = wb.create("Other session", board_id="ops", session_key="session-2", run_id="run-2")
    wb.create("Card-scoped failed notification", board_id="ops", session_key="session-1", run_id="run-1",
              metadata=imported("card-scoped-failed", kind="failed"))
    sub = wb.subscribe_notifications(board_id="ops", session_key="session-1", run_id="run-1",
                                     target="session:operator")
    wb.complete(unrelated.id, summary="Other done.")
    wb.complete(matching.id, summary="Matching done.")
    events = wb.notification_events(subscription_id=sub.id).events
    assert events[0].id == "card-scoped-failed"
    assert (events[0].session_key, events[0].run_id) == ("session-1", "run-1")
    assert [(e.kind, e.session_key, e.run_id, e.card_id) for e in events[1:]] == [
        ("completed", "session-1", "run-1", matching.id)]


def test_card_scoped_subscription_on_any_board(wb: Workboard) -> None:
    """Seed: replays card-scoped subscriptions without requiring the board id"""
    card = wb.create("Ops card", board_id="ops")
    sub = wb.subscribe_notifications(card_id=card.id, target="session:operator", event_kinds=["completed"])
    assert sub.board_id == "default"
    wb.complete(card.id, summary="Ops done.")
    result = wb.notification_events(subscription_id=sub.id)
    assert result.subscription is not None and result.subscription.card_id == card.id
    assert [e.kind for e in result.events] == ["completed"]


def test_stale_replay(wb: Workboard) -> None:
    """Seed: replays stale metadata as stale notification events"""
    card = wb.create("Stale card", board_id="ops", metadata={
        "stale": {"detected_at": 1234, "reason": "Session has not reported recent activity."}})
    sub = wb.subscribe_notifications(board_id="ops", target="session:operator", event_kinds=["stale"])
    events = wb.notification_events(subscription_id=sub.id).events
    assert [(e.kind, e.created_at, e.message) for e in events] == [
        ("stale", 1234, "Session has not reported recent activity.")]
    assert events[0].id == f"stale:{card.id}:1234"
    # Re-writing the same marker is the same event; a new detection is a new one.
    wb.update(card.id, metadata={"stale": {"detected_at": 1234, "reason": "again"}})
    assert len(wb.notification_events(subscription_id=sub.id).events) == 1
    wb.update(card.id, metadata={"stale": {"detected_at": 5678}})
    assert [e.id for e in wb.notification_events(subscription_id=sub.id).events] == [
        f"stale:{card.id}:1234", f"stale:{card.id}:5678"]


def test_delete_board_deletes_its_subscriptions(wb: Workboard) -> None:
    """Seed: deletes board notification subscriptions with empty board metadata"""
    wb.upsert_board("ops", name="Ops")
    wb.subscribe_notifications(board_id="ops", target="session:operator", event_kinds=["completed"])
    assert wb.delete_board("ops") is True
    assert wb.list_notification_subscriptions(board_id="ops") == []


def test_delete_card_deletes_its_subscriptions(wb: Workboard) -> None:
    """Seed: deletes card notification subscriptions with the card"""
    card = wb.create("Notify me")
    wb.subscribe_notifications(card_id=card.id, target="session:operator", event_kinds=["completed"])
    assert wb.delete(card.id) is True
    assert wb.list_notification_subscriptions(card_id=card.id) == []


# ---- better than the seed ----


def test_status_transitions_are_events(wb: Workboard) -> None:
    sub = wb.subscribe_notifications(board_id="ops", target="t", event_kinds="status, status")
    assert sub.event_kinds == ["status"]
    card = wb.create("Moves", board_id="ops")
    wb.move(card.id, "ready")
    wb.move(card.id, "running")
    wb.update(card.id, title="Renamed")  # not a transition
    wb.move(card.id, "review")
    events = wb.advance_notification_events(sub.id).events
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "todo"), ("todo", "ready"), ("ready", "running"), ("running", "review")]
    assert all(e.kind == "status" and e.card_id == card.id and e.board_id == "ops" for e in events)
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    # Default subscriptions get the seed's kinds only.
    default = wb.subscribe_notifications(board_id="ops", target="t")
    assert default.event_kinds is None
    assert wb.notification_events(subscription_id=default.id).events == []


def test_late_event_with_old_timestamp_is_not_skipped(wb: Workboard) -> None:
    """The seed's time-based cursor skipped an event committed after the cursor moved
    past its timestamp; the log cursor delivers it."""
    sub = wb.subscribe_notifications(board_id="ops", target="t")
    wb.create("Recent", board_id="ops", metadata=imported("recent", created_at=9_000))
    assert [e.id for e in wb.advance_notification_events(sub.id).events] == ["recent"]
    wb.create("Late", board_id="ops", metadata=imported("late", created_at=10, sequence=1))
    assert [e.id for e in wb.advance_notification_events(sub.id).events] == ["late"]
    assert wb.advance_notification_events(sub.id).events == []


def test_notifications_survive_the_card_budget(wb: Workboard) -> None:
    """The card keeps its last 20 notifications; the log keeps every one."""
    sub = wb.subscribe_notifications(board_id="ops", target="t", event_kinds=["failed"])
    card = wb.create("Flaky", board_id="ops")
    for i in range(25):
        wb.record_protocol_violation(card.id, detail=f"stop {i}")
        wb.update(card.id, status="todo")
    stored = wb.get(card.id)
    assert stored is not None and len(stored.metadata["notifications"]) == 20
    events = wb.advance_notification_events(sub.id, limit=200).events
    assert [e.message for e in events] == [f"stop {i}" for i in range(25)]
    # The sequence the card shows is the log position.
    assert [n["sequence"] for n in stored.metadata["notifications"]] == [e.sequence for e in events[5:]]


def test_resubscribe_keeps_the_cursor_and_preview_without_subscription(wb: Workboard) -> None:
    card = wb.create("A", board_id="ops")
    sub = wb.subscribe_notifications(subscription_id="ops-feed", board_id="ops", target="t")
    wb.complete(card.id, summary="one")
    assert len(wb.advance_notification_events("ops-feed").events) == 1
    again = wb.subscribe_notifications(subscription_id="ops-feed", board_id="ops", target="t2",
                                       event_kinds=["completed", "failed"])
    assert (again.created_at, again.last_event_sequence, again.target) == (
        sub.created_at, wb.list_notification_subscriptions()[0].last_event_sequence, "t2")
    assert wb.advance_notification_events("ops-feed").events == []
    # Without a subscription: a board's or a card's events from the start.
    assert [e.kind for e in wb.notification_events(board_id="ops").events] == ["completed"]
    assert [e.kind for e in wb.notification_events(card_id=card.id).events] == ["completed"]
    assert wb.notification_events(board_id="product").events == []
    assert wb.delete_notification_subscription("ops-feed") is True
    assert wb.delete_notification_subscription("ops-feed") is False


def test_imported_ids_never_shadow_another_cards_event(wb: Workboard) -> None:
    sub = wb.subscribe_notifications(board_id="ops", target="t")
    first = wb.create("One", board_id="ops", metadata=imported("dup"))
    second = wb.create("Two", board_id="ops", metadata=imported("dup"))
    events = wb.advance_notification_events(sub.id).events
    assert [(e.id, e.card_id) for e in events] == [("dup", first.id), (f"{second.id}:dup", second.id)]
    # Re-writing a card with the same notifications logs nothing new.
    wb.update(second.id, title="Two again")
    assert wb.advance_notification_events(sub.id).events == []


def test_limit_is_clamped(wb: Workboard) -> None:
    for i in range(3):
        wb.create(f"E{i}", board_id="ops", metadata=imported(f"e{i}"))
    sub = wb.subscribe_notifications(board_id="ops", target="t")
    assert len(wb.notification_events(subscription_id=sub.id, limit=0).events) == 1
    assert len(wb.notification_events(subscription_id=sub.id, limit=-5).events) == 1
    assert len(wb.notification_events(subscription_id=sub.id, limit=10_000).events) == 3


def test_async_face(tmp_path: Path) -> None:
    import asyncio

    async def main() -> NotificationEvents:
        wb = AsyncWorkboard(tmp_path / "a.sqlite", clock=ManualClock(1000))
        card = await wb.create("Async", board_id="ops")
        sub = await wb.subscribe_notifications(board_id="ops", target="t")
        await wb.record_protocol_violation(card.id, detail="gone")
        return await wb.advance_notification_events(sub.id)

    result = asyncio.run(main())
    assert [e.kind for e in result.events] == ["failed"]
    assert result.subscription is not None and result.subscription.last_event_id == result.events[0].id


# ---- bad input ----


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"board_id": "ops"}, ValidationError, "requires cardId, sessionKey, runId, or target"),
        ({"target": "t", "event_kinds": ["completed", "moved"]}, ValidationError, "notification kind must be one of"),
        ({"target": "t", "event_kinds": "completed,nope"}, ValidationError, "notification kind must be one of"),
        ({"target": "t", "event_kinds": [1]}, ValidationError, "event_kinds entries must be strings"),
        ({"target": "t" * 241}, ValidationError, "subscription target must be 240"),
        ({"card_id": "c" * 121}, ValidationError, "subscription cardId must be 120"),
        ({"target": "t", "session_key": "s" * 241}, ValidationError, "subscription sessionKey must be 240"),
        ({"target": "t", "run_id": "r" * 161}, ValidationError, "subscription runId must be 160"),
        ({"target": "t", "board_id": "-bad"}, ValidationError, "board id must start"),
        ({"target": "t", "subscription_id": "x" * 121}, ValidationError, "subscription id must be 120"),
    ],
)
def test_bad_subscriptions_change_nothing(tmp_path: Path, kwargs: dict[str, Any], error: type, match: str) -> None:
    db = tmp_path / "bad.sqlite"
    wb = Workboard(db)
    wb.subscribe_notifications(board_id="ops", target="existing")
    before = db_snapshot(db)
    with pytest.raises(error, match=match):
        wb.subscribe_notifications(**kwargs)
    assert db_snapshot(db) == before


def test_bad_event_queries_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bad.sqlite"
    wb = Workboard(db)
    card = wb.create("C", board_id="ops")
    wb.complete(card.id)
    before = db_snapshot(db)
    with pytest.raises(NotFoundError, match="notification subscription not found: nope"):
        wb.advance_notification_events("nope")
    with pytest.raises(ValidationError, match="subscriptionId is required"):
        wb.advance_notification_events("  ")
    with pytest.raises(ValidationError, match="board id must start"):
        wb.notification_events(board_id="-bad")
    with pytest.raises(TypeError):
        wb.notification_events(limit="10")  # type: ignore[arg-type]
    assert db_snapshot(db) == before


# The core trims Unicode White_Space (as JavaScript's trim does); Python's
# str.strip also strips the separators U+001C..U+001F, which are not White_Space.
_CORE_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c not in "\x1c\x1d\x1e\x1f")


def _core_trim(text: str) -> str:
    return text.strip(_CORE_WHITESPACE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kinds=st.one_of(st.none(), st.text(max_size=30), st.lists(st.text(max_size=12), max_size=5)),
    target=st.one_of(st.none(), st.text(max_size=260)),
    card_id=st.one_of(st.none(), st.text(max_size=130)),
)
def test_subscribe_rejects_or_stores_exactly(tmp_path: Path, kinds: Any, target: Any, card_id: Any) -> None:
    db = tmp_path / f"h{uuid.uuid4().hex}.sqlite"
    wb = Workboard(db)
    before = db_snapshot(db)
    try:
        sub = wb.subscribe_notifications(target=target, card_id=card_id, event_kinds=kinds)
    except ValidationError:
        assert db_snapshot(db) == before
        return
    assert wb.list_notification_subscriptions() == [sub]
    assert sub.event_kinds is None or set(sub.event_kinds) <= {"completed", "failed", "stale", "status"}
    assert sub.target == (_core_trim(target) or None if target is not None else None)
    wb.delete_notification_subscription(sub.id)


# ---- two processes ----

_WRITER = """
import sys
from agent_factory import Workboard
wb = Workboard(sys.argv[1])
for i in range(int(sys.argv[2])):
    card = wb.create(f"w{i}", board_id="mp")
    wb.move(card.id, "ready")
    wb.record_protocol_violation(card.id, detail=f"v{i}")
open(sys.argv[3], "w").close()
"""

_READER = """
import json, os, sys, time
from agent_factory import Workboard
wb = Workboard(sys.argv[1])
seen = []
while True:
    done = os.path.exists(sys.argv[3])
    events = wb.advance_notification_events(sys.argv[2], limit=7).events
    seen += [[e.id, e.sequence] for e in events]
    if done and not events:
        break
    if not events:
        time.sleep(0.002)
print(json.dumps(seen))
"""


def test_two_processes_every_event_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "mp.sqlite"
    wb = Workboard(db)
    sub = wb.subscribe_notifications(board_id="mp", target="t", event_kinds=["status", "failed"])
    flag = tmp_path / "writer-done"
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(db), sub.id, str(flag)],
                              stdout=subprocess.PIPE, text=True)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), "40", str(flag)])
    assert writer.wait(timeout=120) == 0
    out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0
    seen = json.loads(out)
    con = read_only(db)
    logged = [list(r) for r in con.execute(
        "SELECT id, seq FROM workboard_log WHERE board_id = 'mp' AND kind IN ('status', 'failed') ORDER BY seq")]
    con.close()
    assert len(logged) == 40 * 4  # created, todo->ready, ready->blocked, failed
    assert seen == logged  # every event exactly once, in log order
    assert wb.advance_notification_events(sub.id).events == []
