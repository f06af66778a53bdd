"""Workboard cards run on the worker pool (``Workboard.dispatch_to_queue``).

Real parts only: file databases, real in-thread ``agent_factory.Worker``s and a
real subprocess worker killed with SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from agent_factory import (
    Config,
    Factory,
    JobContext,
    LeaseConfig,
    RetryPolicy,
    ValidationError,
    Workboard,
    Worker,
)
from helpers import payload

AGENT = "builder"


def live(path: Path, **config: Any) -> tuple[Factory, Workboard]:
    f = Factory(path, config=Config(**config) if config else None)
    f.agents.upsert_agent(AGENT, version="1.0.0", secrets_ref=[])
    return f, Workboard(f)


def wait_until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_ready_cards_run_on_a_worker_and_are_completed(tmp_path: Path) -> None:
    f, wb = live(tmp_path / "f.db")
    low = wb.create("Low", status="ready", priority="low", agent_id=AGENT)
    urgent = wb.create("Urgent", status="ready", priority="urgent", agent_id=AGENT)
    unassigned = wb.create("Unassigned", status="ready")
    todo = wb.create("Not ready", status="todo", agent_id=AGENT)

    out = wb.dispatch_to_queue(f, default_agent_id=AGENT, ttl_seconds=600)
    assert [q.card.id for q in out.queued] == [urgent.id, unassigned.id, low.id]
    assert out.blocked == [] and out.failed == []
    first = out.queued[0]
    assert first.conversation_id == f"workboard:{urgent.board_id}:{urgent.id}"
    assert first.card.status == "running" and first.card.claim is not None
    assert first.card.claim["owner_id"] == "agent-factory"
    assert out.queued[1].card.agent_id == AGENT
    job = f.queue.get_job(first.message_id)
    assert job is not None and job.status == "queued"
    meta = job.payload["metadata"]
    assert meta["workboardCardId"] == urgent.id and meta["workboardBoardId"] == urgent.board_id
    assert meta["workboardClaimToken"] == first.card.claim["token"]
    assert job.payload["messageText"].startswith(f"# Workboard card {urgent.id}")
    # Claimed cards are not dispatched twice.
    assert wb.dispatch_to_queue(f, default_agent_id=AGENT).queued == []

    seen: list[str] = []

    def handler(ctx: JobContext) -> str:
        seen.append(ctx.payload["metadata"]["workboardCardId"])
        return "built"

    result = Worker(f, "w-1", handler, mode="pooled", max_jobs=3, poll_min_ms=5).run()
    assert result.jobs_completed == 3
    assert sorted(seen) == sorted([low.id, urgent.id, unassigned.id])
    for card in (low, urgent, unassigned):
        done = wb.get(card.id)
        assert done is not None and done.status == "done" and done.claim is None
        assert done.metadata["automation"]["summary"] == "Completed by worker w-1"
    assert wb.get(todo.id).status == "todo"  # type: ignore[union-attr]


def test_unknown_or_disabled_agent_blocks_the_card_and_queues_nothing(tmp_path: Path) -> None:
    f, wb = live(tmp_path / "f.db")
    f.agents.upsert_agent("off", version="1.0.0", secrets_ref=[], enabled=False)
    ghost = wb.create("Ghost", status="ready", agent_id="ghost-agent")
    off = wb.create("Off", status="ready", agent_id="off")
    nobody = wb.create("Nobody", status="ready")
    out = wb.dispatch_to_queue(f)
    assert out.queued == [] and {c.id for c in out.blocked} == {ghost.id, off.id, nobody.id}
    for c in out.blocked:
        assert c.status == "blocked" and c.claim is None
    assert "ghost-agent" in wb.get(ghost.id).metadata["comments"][-1]["body"]  # type: ignore[union-attr]
    stats = f.queue.stats()
    assert (stats.queued_ready, stats.queued_delayed, stats.processing) == (0, 0, 0)


def test_a_handler_that_keeps_failing_blocks_the_card_with_its_error(tmp_path: Path) -> None:
    f, wb = live(tmp_path / "f.db", retry=RetryPolicy(max_attempts=2, base_delay_ms=1, max_delay_ms=1, jitter_ratio=0))
    card = wb.create("Doomed", status="ready", agent_id=AGENT)
    (q,) = wb.dispatch_to_queue(f, ttl_seconds=60).queued
    expiry = q.card.claim["expires_at"]  # type: ignore[index]

    def handler(ctx: JobContext) -> str:
        if ctx.claim.attempt == 1:
            time.sleep(1.1)  # the retry heartbeats the card's claim at a later time
        raise RuntimeError("compiler exploded")

    w = Worker(f, "w-1", handler, mode="pooled", max_jobs=1, poll_min_ms=5)
    assert w.run().jobs_failed == 1
    running = wb.get(card.id)
    assert running is not None and running.status == "running"
    assert running.claim["expires_at"] > expiry  # type: ignore[index]
    Worker(f, "w-1", handler, mode="pooled", max_jobs=1, poll_min_ms=5).run()
    assert f.queue.get_job(q.message_id).status == "dead_letter"  # type: ignore[union-attr]
    blocked = wb.get(card.id)
    assert blocked is not None and blocked.status == "blocked" and blocked.claim is None
    assert blocked.metadata["comments"][-1]["body"] == "RuntimeError: compiler exploded"
    assert blocked.metadata["failure_count"] == 1


def test_enqueue_failure_leaves_the_card_unclaimed(tmp_path: Path) -> None:
    f, wb = live(tmp_path / "f.db")
    f.agents.upsert_agent("other", version="1.0.0", secrets_ref=[])
    card = wb.create("Rebound", status="ready", agent_id=AGENT)
    # The card's conversation is already bound to another agent: the enqueue fails.
    conv = f"workboard:{card.board_id}:{card.id}"
    f.queue.enqueue(conv, "other", payload())
    before = wb.get(card.id)
    out = wb.dispatch_to_queue(f)
    assert out.queued == [] and out.blocked == []
    assert [x["card_id"] for x in out.failed] == [card.id]
    assert "already bound to agent 'other'" in out.failed[0]["error"]
    after = wb.get(card.id)
    assert after == before and after is not None and after.claim is None and after.status == "ready"
    view = f.queue.conversation(conv)
    assert view is not None and view.agent_key == "other" and len(view.queue_items) == 1


def test_the_factory_must_be_the_workboards(tmp_path: Path) -> None:
    f, _ = live(tmp_path / "f.db")
    other = Workboard(tmp_path / "other.db")  # (the same path would share the store)
    with pytest.raises(ValidationError, match="opened on the factory"):
        other.dispatch_to_queue(f)
    wb = Workboard(f)
    with pytest.raises(ValidationError, match="limit"):
        wb.dispatch_to_queue(f, limit=0)
    with pytest.raises(TypeError):
        wb.dispatch_to_queue(object())


LEASE = LeaseConfig(lease_ms=1000, heartbeat_interval_ms=200, stale_after_ms=2000)
DOOMED_WORKER = textwrap.dedent(
    """
    import sys, time
    from agent_factory import Config, Factory, LeaseConfig, Worker

    def handle(ctx):
        print("working", flush=True)
        time.sleep(3600)  # the test kills us here, lease held

    f = Factory(sys.argv[1], config=Config(lease=LeaseConfig(lease_ms=1000, heartbeat_interval_ms=200,
                                                             stale_after_ms=2000)))
    Worker(f, "w-doomed", handle, mode="pooled", max_jobs=1, poll_min_ms=5, handle_signals=False).run()
    """
)


def test_a_worker_killed_mid_card_is_recovered_and_the_card_completed_once(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    f, wb = live(db, lease=LEASE)
    card = wb.create("Survivor", status="ready", agent_id=AGENT)
    (q,) = wb.dispatch_to_queue(f, ttl_seconds=600).queued
    proc = subprocess.Popen([sys.executable, "-c", DOOMED_WORKER, str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "working", proc.stderr
        assert f.queue.get_job(q.message_id).status == "processing"  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wb.get(card.id).status == "running"  # type: ignore[union-attr]
    time.sleep(1.2)  # the dead worker's lease expires
    assert f.queue.release_stuck_jobs().requeued == 1
    assert wb.get(card.id).status == "running"  # type: ignore[union-attr]  (retry: still running)
    result = Worker(f, "w-rescue", lambda ctx: "rescued", mode="pooled", max_jobs=1, poll_min_ms=5).run()
    assert result.jobs_completed == 1
    done = wb.get(card.id)
    assert done is not None and done.status == "done"
    completions = [e for e in done.metadata["notifications"] if e["kind"] == "completed"]
    assert len(completions) == 1 and done.metadata["automation"]["summary"] == "Completed by worker w-rescue"
    assert f.queue.get_job(q.message_id).status == "done"  # type: ignore[union-attr]
