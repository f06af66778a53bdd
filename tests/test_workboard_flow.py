"""Workboard part 2a: hand-offs (complete / block), operator recovery, dispatch,
diagnostics and the worker context. Ported seed tests cite their seed title; the
rest test the API, the fencing, bad input and the indexed dispatch.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import AsyncWorkboard, DiagnosticsReport, DispatchResult, ManualClock, Workboard
from agent_factory.errors import ConflictError, InvalidStateError, NotFoundError, ValidationError
from helpers import db_snapshot, read_only

MAX_DATE_TIMESTAMP_MS = 8_640_000_000_000_000
MAX_SAFE_INTEGER = 9_007_199_254_740_991
DAY = 24 * 60 * 60 * 1000


def execution(**over: Any) -> dict[str, Any]:
    base = {"kind": "agent-session", "engine": "codex", "mode": "autonomous", "status": "running",
            "model": "openai/gpt-5.5", "started_at": 1_000, "updated_at": 1_000}
    base.update(over)
    return base



@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000)


@pytest.fixture
def wb(clock: ManualClock) -> Workboard:
    return Workboard(":memory:", clock=clock)


# ---- seed: hand-offs ----


def test_complete_and_block_handoff(wb: Workboard) -> None:
    """Seed: completes and blocks claimed cards with structured handoff metadata"""
    card = wb.create("Ship child", status="running", execution=execution(id="exec-complete"))
    child = wb.create("Follow-up", parents=[card.id])
    claimed = wb.claim(card.id, "main", token="token-1")
    completed = wb.complete(
        claimed.card.id, owner_id="main", token="token-1", summary="Implemented and verified.",
        proof={"status": "passed", "command": "pnpm test extensions/workboard"},
        artifacts=[{"path": "/tmp/log.txt", "label": "log"}], created_card_ids=[child.id],
    )
    meta = completed.metadata
    assert completed.status == "done" and completed.execution["status"] == "done"
    assert [a["status"] for a in meta["attempts"]] == ["succeeded"] and meta["attempts"][0]["ended_at"] > 0
    assert [c["body"] for c in meta["comments"]] == ["Implemented and verified."]
    assert [p["status"] for p in meta["proof"]] == ["passed"]
    assert [a["path"] for a in meta["artifacts"]] == ["/tmp/log.txt"]
    assert meta["automation"] == {"summary": "Implemented and verified.", "created_card_ids": [child.id]}
    assert [n["kind"] for n in meta["notifications"]] == ["completed"]
    assert "claim" not in meta

    blocked_card = wb.create("Blocked work", status="running",
                             execution=execution(id="exec-block", engine="claude",
                                                 model="anthropic/claude-sonnet-4.6"))
    wb.claim(blocked_card.id, "main", token="token-2")
    blocked = wb.block(blocked_card.id, "Needs owner decision.", owner_id="main", token="token-2")
    meta = blocked.metadata
    assert blocked.status == "blocked" and blocked.execution["status"] == "blocked"
    assert len(meta["attempts"]) == 1
    assert meta["attempts"][0]["status"] == "blocked" and meta["attempts"][0]["error"] == "Needs owner decision."
    assert meta["attempts"][0]["ended_at"] > 0
    assert meta["failure_count"] == 1 and "claim" not in meta
    assert [(n["kind"], n["message"]) for n in meta["notifications"]] == [("failed", "Needs owner decision.")]

    recovered = wb.complete(
        wb.create("Recovered work", status="running", metadata={"failure_count": 2}).id, summary="Recovered."
    )
    assert "failure_count" not in (recovered.metadata or {})


def test_long_handoffs(wb: Workboard) -> None:
    """Seed: keeps long lifecycle handoffs in comments while capping notifications"""
    complete_card = wb.create("Long complete")
    block_card = wb.create("Long block")
    completed = wb.complete(complete_card.id, summary="x" * 1000)
    blocked = wb.block(block_card.id, "y" * 1000)
    assert completed.metadata["comments"][0]["body"] == "x" * 1000
    assert len(completed.metadata["notifications"][0]["message"]) <= 240
    assert blocked.metadata["comments"][0]["body"] == "y" * 1000
    assert len(blocked.metadata["notifications"][0]["message"]) <= 240


def test_completion_manifest(wb: Workboard) -> None:
    """Seed: rejects completed manifests for cards not created from the parent"""
    parent = wb.create("Parent", status="running")
    unrelated = wb.create("Unrelated")
    with pytest.raises(ValidationError, match="not linked"):
        wb.complete(parent.id, created_card_ids=[unrelated.id])
    spoofed = wb.create("Spoofed", created_by_card_id=parent.id)
    with pytest.raises(ValidationError, match="not linked"):
        wb.complete(parent.id, created_card_ids=[spoofed.id])
    with pytest.raises(NotFoundError, match="created card not found: ghost"):
        wb.complete(parent.id, created_card_ids=["ghost"])
    child = wb.create("Child", parents=[parent.id])
    done = wb.complete(parent.id, created_card_ids=[child.id], summary="done")
    assert done.status == "done"
    assert done.metadata["automation"]["created_card_ids"] == [child.id]


def test_operator_recovery(wb: Workboard, clock: ManualClock) -> None:
    """Seed: promotes, reassigns, and reclaims cards for operator recovery"""
    card = wb.create("Recover me", status="blocked", agent_id="old-agent", metadata={"failure_count": 2})
    wb.refresh_diagnostics(now_ms=clock.now_ms() + 2 * DAY)
    reassigned = wb.reassign(card.id, "new-agent", status="todo", reason="route to fresh agent")
    assert reassigned.agent_id == "new-agent" and reassigned.status == "todo"
    assert "failure_count" not in reassigned.metadata
    assert "repeated_failures" not in [d["kind"] for d in reassigned.metadata.get("diagnostics", [])]
    assert wb.promote(card.id).status == "ready"
    claimed = wb.claim(card.id, "new-agent")
    reclaimed = wb.reclaim(claimed.card.id, reason="stale session")
    assert reclaimed.status == "ready" and "claim" not in reclaimed.metadata

    running = wb.create("Running recovery", status="running",
                        execution=execution(id="exec-reclaim", started_at=100, updated_at=100))
    stopped = wb.reclaim(running.id, reason="replace worker")
    assert stopped.execution is None
    assert [a["status"] for a in stopped.metadata["attempts"]] == ["stopped"]
    assert "failure_count" not in stopped.metadata


# ---- seed: dispatch ----


def test_scheduled_cards(clock: ManualClock) -> None:
    """Seed: keeps future scheduled cards scheduled until their time arrives"""
    clock.set(0)
    wb = Workboard(":memory:", clock=clock)
    card = wb.create("Later", status="scheduled", scheduled_at=10_000)
    manual = wb.create("Manual scheduled", status="scheduled")
    implicit = wb.create("Implicit later", scheduled_at=10_000)
    active = wb.create("Active requested later", status="running", scheduled_at=10_000,
                       execution=execution(id="exec-scheduled", started_at=0, updated_at=0))
    parent = wb.create("Parent", status="running")
    dependent = wb.create("Dependent later", status="scheduled", parents=[parent.id], scheduled_at=10_000)
    assert wb.dispatch(now_ms=1_000).promoted == []
    for c in (card, manual, implicit, active, dependent):
        assert wb.get(c.id).status == "scheduled"
    assert wb.get(active.id).execution is None
    assert "attempts" not in (wb.get(active.id).metadata or {})
    for c in (card, manual, implicit):
        with pytest.raises(InvalidStateError, match="scheduled"):
            wb.claim(c.id, "main")
    with pytest.raises(InvalidStateError, match="scheduled"):
        wb.move(manual.id, "running", manual.position)
    wb.complete(parent.id, summary="Parent done.")
    assert wb.dispatch(now_ms=5_000).promoted == []
    assert wb.get(dependent.id).status == "scheduled"
    promoted = wb.dispatch(now_ms=20_000).promoted
    assert [(c.id, c.status) for c in promoted] == [
        (card.id, "ready"), (implicit.id, "ready"), (active.id, "ready"), (dependent.id, "ready")
    ]
    assert wb.get(manual.id).status == "scheduled"


def test_dependency_holds(wb: Workboard) -> None:
    """Seed: holds dependent cards out of runnable statuses until parents finish"""
    parent = wb.create("Parent", status="running")
    child = wb.create("Child", status="running", parents=[parent.id],
                      execution=execution(id="exec-held", started_at=1, updated_at=1))
    assert child.status == "todo" and child.execution is None
    assert "attempts" not in child.metadata
    with pytest.raises(InvalidStateError, match="dependencies"):
        wb.claim(child.id, "main")
    for status in ("ready", "running", "done"):
        with pytest.raises(InvalidStateError, match="dependencies"):
            wb.move(child.id, status, child.position)
    for status in ("ready", "done"):
        with pytest.raises(InvalidStateError, match="dependencies"):
            wb.update(child.id, status=status)
    with pytest.raises(InvalidStateError, match="dependencies"):
        wb.complete(child.id, summary="Too early.")
    linked = wb.update(child.id, metadata={"links": [
        {"id": "ordinary-link", "type": "relates_to", "created_at": 1_000, "url": "https://example.com/work"}
    ]})
    pairs = {(link["type"], link.get("target_card_id") or link.get("url")) for link in linked.metadata["links"]}
    assert {("parent", parent.id), ("relates_to", "https://example.com/work")} <= pairs
    with pytest.raises(InvalidStateError, match="dependencies"):
        wb.claim(child.id, "main")
    wb.complete(parent.id, summary="Parent done.")
    result = wb.dispatch()
    assert [(c.id, c.status) for c in result.promoted] == [(child.id, "ready")]
    claimed = wb.claim(child.id, "main")
    assert claimed.card.status == "running"
    wb.update(parent.id, status="running")
    wb.dispatch()
    after = wb.get(child.id)
    assert after.status == "running" and after.claim["owner_id"] == "main"
    with pytest.raises(InvalidStateError, match="dependencies"):
        wb.release_claim(child.id, owner_id="main", status="done")
    after = wb.get(child.id)
    assert after.status == "running" and after.claim["owner_id"] == "main"
    late_parent = wb.create("Late parent")
    with pytest.raises(InvalidStateError, match="active child"):
        wb.link_cards(late_parent.id, child.id)


def test_dispatch_timeouts_and_expiry(wb: Workboard) -> None:
    """Seed: dispatches ready cards and blocks expired or timed-out work"""
    ready = wb.create("Ready", status="ready")
    expired = wb.create("Expired", status="running")
    wb.claim(expired.id, "main", token="token-1", ttl_seconds=1)
    timed = wb.create("Timed", status="running", max_runtime_seconds=1, execution=execution(id="exec-1"))
    claimed_timed = wb.create("Claimed timed", status="ready", max_runtime_seconds=1)
    wb.claim(claimed_timed.id, "main", token="token-2", ttl_seconds=60)
    created_running_timed = wb.create("Created running timed", status="running", max_runtime_seconds=1)
    result = wb.dispatch(now_ms=10 * 60 * 1000)
    assert created_running_timed.started_at == 1_000
    assert result.count == 4
    after = wb.get(ready.id)
    assert after.updated_at == ready.updated_at
    assert after.metadata["automation"] == {"dispatch_count": 1, "last_dispatch_at": 600_000}
    assert any(e["kind"] == "dispatch" for e in after.events)
    blocked_expired = wb.get(expired.id)
    assert blocked_expired.status == "blocked" and "claim" not in blocked_expired.metadata
    timed_after = wb.get(timed.id)
    assert timed_after.status == "blocked" and timed_after.execution["status"] == "blocked"
    assert [(a["status"], a["ended_at"]) for a in timed_after.metadata["attempts"]] == [("blocked", 600_000)]
    blocked_claimed = wb.get(claimed_timed.id)
    assert blocked_claimed.status == "blocked" and "claim" not in blocked_claimed.metadata
    assert "Run exceeded the card max runtime." in [n["message"] for n in blocked_claimed.metadata["notifications"]]
    running_after = wb.get(created_running_timed.id)
    assert running_after.status == "blocked"
    assert "Run exceeded the card max runtime." in [n["message"] for n in running_after.metadata["notifications"]]
    assert "Claim expired without a recent heartbeat." in [
        n["message"] for n in blocked_expired.metadata["notifications"]
    ]


def test_dispatch_caps_oversized_max_runtime(wb: Workboard) -> None:
    """Seed: caps oversized max runtime seconds during dispatch timeout checks"""
    card = wb.create("Bound runtime", status="running", max_runtime_seconds=MAX_SAFE_INTEGER)
    assert card.started_at is not None
    assert wb.dispatch(now_ms=card.started_at + MAX_DATE_TIMESTAMP_MS).blocked == []
    result = wb.dispatch(now_ms=card.started_at + MAX_SAFE_INTEGER + 1)
    assert [c.id for c in result.blocked] == [card.id]
    assert wb.get(card.id).status == "blocked"


def test_retry_budget(wb: Workboard) -> None:
    """Seed: lets in-flight retries finish before enforcing the retry budget"""
    retrying = wb.create("Retrying", status="ready", max_retries=1, metadata={"failure_count": 1})
    wb.claim(retrying.id, "main", token="token-1")
    assert wb.dispatch().blocked == []
    assert wb.get(retrying.id).status == "running"
    exhausted = wb.create("Exhausted", status="ready", max_retries=1, metadata={"failure_count": 2})
    exhausted_todo = wb.create("Exhausted todo", status="todo", max_retries=1, metadata={"failure_count": 2})
    exhausted_backlog = wb.create("Exhausted backlog", status="backlog", max_retries=1,
                                  metadata={"failure_count": 2})
    with pytest.raises(InvalidStateError, match="retry budget"):
        wb.claim(exhausted.id, "main")
    result = wb.dispatch()
    assert {(c.id, c.status) for c in result.blocked} >= {
        (exhausted.id, "blocked"), (exhausted_todo.id, "blocked"), (exhausted_backlog.id, "blocked")
    }
    assert [n["message"] for n in wb.get(exhausted.id).metadata["notifications"]] == [
        "Card exhausted its retry budget."
    ]
    parent = wb.create("Parent retry gate", status="running")
    dependent = wb.create("Dependent exhausted", parents=[parent.id], max_retries=1, metadata={"failure_count": 2})
    wb.complete(parent.id, summary="Parent done.")
    result = wb.dispatch()
    assert dependent.id not in [c.id for c in result.promoted]
    assert [(c.id, c.status) for c in result.blocked] == [(dependent.id, "blocked")]


def test_auto_orchestration(wb: Workboard) -> None:
    """Seed: marks triage cards as orchestration candidates during dispatch"""
    wb.upsert_board("planning", orchestration={"auto_decompose": True, "auto_decompose_per_dispatch": 1})
    first = wb.create("Break down import flow", status="triage", board_id="planning")
    archived = wb.create("Archived import flow", status="triage", board_id="planning")
    wb.archive(archived.id, True)
    second = wb.create("Break down export flow", status="triage", board_id="planning")
    result = wb.dispatch(now_ms=10)
    assert [(c.id, c.status) for c in result.orchestrated] == [(first.id, "triage")]
    assert result.count == 1
    marked = wb.get(first.id)
    assert marked.metadata["worker_protocol"]["state"] == "idle"
    assert marked.metadata["worker_protocol"]["detail"] == "Awaiting workboard_specify or workboard_decompose."
    assert [entry["level"] for entry in marked.metadata["worker_logs"]] == ["info"]
    assert any(e["kind"] == "orchestration" for e in marked.events)
    assert "worker_protocol" not in (wb.get(second.id).metadata or {})
    assert "worker_protocol" not in (wb.get(archived.id).metadata or {})
    # Marked cards are not marked again: the next pass takes the next one.
    assert [c.id for c in wb.dispatch(now_ms=20).orchestrated] == [second.id]


def test_auto_orchestration_caps_per_board(wb: Workboard) -> None:
    """Seed: applies auto orchestration dispatch caps per board"""
    for board in ("ops", "product"):
        wb.upsert_board(board, orchestration={"auto_decompose": True, "auto_decompose_per_dispatch": 1})
    ops = wb.create("Ops rough", status="triage", board_id="ops")
    product = wb.create("Product rough", status="triage", board_id="product")
    result = wb.dispatch(now_ms=10)
    assert sorted(c.id for c in result.orchestrated) == sorted([ops.id, product.id])


def test_dispatch_board_scope(wb: Workboard) -> None:
    """Seed: scopes dispatch mutations by board"""
    for board in ("ops", "product"):
        wb.upsert_board(board, orchestration={"auto_decompose": True, "auto_decompose_per_dispatch": 1})
    ops = wb.create("Ops rough", status="triage", board_id="ops")
    product = wb.create("Product rough", status="triage", board_id="product")
    result = wb.dispatch(now_ms=10, board_id="ops")
    assert [c.id for c in result.orchestrated] == [ops.id]
    assert "worker_protocol" in wb.get(ops.id).metadata
    assert "worker_protocol" not in (wb.get(product.id).metadata or {})


# ---- seed: diagnostics ----


def test_add_proof_clears_missing_proof(wb: Workboard, clock: ManualClock) -> None:
    """Seed: clears resolved proof diagnostics when adding proof"""
    card = wb.create("Needs proof", status="done")
    report = wb.refresh_diagnostics()
    assert [d["kind"] for d in report.diagnostics[0].diagnostics] == ["missing_proof"]
    updated = wb.add_proof(card.id, status="passed", label="CI")
    assert [p["label"] for p in updated.metadata["proof"]] == ["CI"]
    assert "diagnostics" not in updated.metadata


def test_add_artifact_clears_missing_proof(wb: Workboard) -> None:
    """Seed: clears resolved proof diagnostics when adding an artifact"""
    card = wb.create("Needs artifact", status="done")
    wb.refresh_diagnostics()
    assert wb.get(card.id).metadata["diagnostics"][0]["kind"] == "missing_proof"
    updated = wb.add_artifact(card.id, label="log", path="/tmp/log.txt")
    assert [a["label"] for a in updated.metadata["artifacts"]] == ["log"]
    assert "diagnostics" not in updated.metadata


def test_proof_with_artifact_is_atomic(wb: Workboard) -> None:
    """Seed: does not commit proof when proof artifact validation fails"""
    card = wb.create("Atomic proof")
    with pytest.raises(ValidationError, match="artifact path"):
        wb.add_proof_with_artifact(card.id, {"status": "passed", "label": "CI"}, {"path": "x" * 2001})
    assert "proof" not in (wb.get(card.id).metadata or {})


def test_refresh_diagnostics(wb: Workboard, clock: ManualClock) -> None:
    """Seed: computes and refreshes card diagnostics"""
    ready = wb.create("Ready too long", agent_id="main", position=10)
    running = wb.create("Loose run", status="running", session_key="s1")
    failed = wb.create("Failed twice", status="blocked", metadata={"failure_count": 2})
    done = wb.create("Done with attachment", status="done")
    done = wb.add_attachment(done.id, "result.log", b"1")
    events_before = len(wb.get(ready.id).events)
    now = clock.now_ms() + 2 * DAY
    assert wb.diagnostics(now_ms=now).count >= 4
    assert "diagnostics" not in (wb.get(ready.id).metadata or {})  # diagnostics() writes nothing
    report = wb.refresh_diagnostics(now_ms=now)
    assert isinstance(report, DiagnosticsReport) and report.count >= 4

    def kinds(card_id: str) -> list[str]:
        return [d["kind"] for d in (wb.get(card_id).metadata or {}).get("diagnostics", [])]

    after = wb.get(ready.id)
    assert after.updated_at == ready.updated_at and len(after.events) == events_before
    assert kinds(ready.id) == ["stranded_ready"]
    assert {"running_without_heartbeat", "orphaned_session"} <= set(kinds(running.id))
    assert {"blocked_too_long", "repeated_failures"} <= set(kinds(failed.id))
    assert "missing_proof" not in kinds(done.id)
    # A kind seen again keeps its first sighting and counts up.
    again = wb.refresh_diagnostics(now_ms=now + 1000)
    entry = next(e for e in again.diagnostics if e.card.id == ready.id).diagnostics[0]
    assert (entry["first_seen_at"], entry["last_seen_at"], entry["count"]) == (now, now + 1000, 2)
    # Kinds that no longer apply are dropped.
    wb.claim(ready.id, "main")
    assert "stranded_ready" not in kinds(ready.id)


def test_refresh_diagnostics_keeps_concurrent_updates(tmp_path: Path, clock: ManualClock) -> None:
    """Seed: does not drop concurrent updates while refreshing diagnostics

    Two writers on one file race: a diagnostics refresh and a proof append. Every
    call is one transaction, so both writes persist whatever the interleaving."""
    path = tmp_path / "wb.db"
    a, b = Workboard(path, clock=clock), Workboard(path, clock=clock)
    cards = [a.create(f"Ready too long {i}", agent_id="main").id for i in range(20)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            barrier.wait()
            a.refresh_diagnostics(now_ms=clock.now_ms() + 2 * DAY)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def proofs() -> None:
        try:
            barrier.wait()
            for c in cards:
                b.add_proof(c, status="passed", label="CI")
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=refresh), threading.Thread(target=proofs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for c in cards:
        meta = a.get(c).metadata
        assert [d["kind"] for d in meta["diagnostics"]] == ["stranded_ready"]
        assert [p["label"] for p in meta["proof"]] == ["CI"]


# ---- seed: worker context ----


def test_worker_context(wb: Workboard) -> None:
    """Seed: builds bounded worker context from card metadata"""
    card = wb.create(
        "Write docs", notes="Acceptance:\n- mention tools", agent_id="main",
        metadata={
            "comments": [{"id": "comment-1", "body": "Need proof.", "created_at": 10}],
            "proof": [{"id": "proof-1", "status": "passed", "command": "pnpm test", "created_at": 12}],
            "artifacts": [{"id": "artifact-1", "label": "Failure screenshot", "path": "/tmp/fail.png",
                           "created_at": 13}],
        },
    )
    context = wb.build_worker_context(card.id)
    assert "## Recent comments" in context
    assert "pnpm test" in context
    assert "Failure screenshot" in context
    assert context.startswith(f"# Workboard card {card.id}\nTitle: Write docs\nStatus: todo\n")
    assert "\n\n## Notes\nAcceptance:\n- mention tools\n" in context
    assert "- passed: pnpm test" in context
    with pytest.raises(NotFoundError, match="card not found: nope"):
        wb.build_worker_context("nope")


def test_worker_context_parents_and_recent_work(wb: Workboard) -> None:
    """Seed: includes parent results and recent assignee work in worker context"""
    parent = wb.create("Design", status="running", agent_id="agent-a")
    wb.complete(parent.id, summary="Use board-scoped queues.")
    wb.create("Older task", status="done", agent_id="agent-a",
              metadata={"automation": {"summary": "Finished related cleanup."}})
    child = wb.create("Implement", agent_id="agent-a", parents=[parent.id])
    context = wb.build_worker_context(child.id)
    assert "## Parent results" in context
    assert "Use board-scoped queues." in context
    assert "## Recent done work by agent-a" in context
    assert "Finished related cleanup." in context
    cross = wb.create("Cross-board child", board_id="product", parents=[parent.id])
    assert "Use board-scoped queues." in wb.build_worker_context(cross.id)


def test_worker_context_is_bounded(wb: Workboard) -> None:
    card = wb.create("Busy", agent_id="a", skills=["rust", "sql"], workspace={"kind": "dir", "path": "/srv/repo"})
    for i in range(30):
        wb.add_comment(card.id, f"comment {i} " + "z" * 500)
        wb.add_worker_log(card.id, f"log {i}", level="warning")
    wb.add_attachment(card.id, "trace.txt", b"abc", mime_type="text/plain", note="run 1")
    context = wb.build_worker_context(card.id)
    assert "comment 17 " not in context and "comment 18 " in context and "comment 29 " in context
    assert "log 21\n" not in context and "log 22\n" in context
    assert all(len(line) <= 402 for line in context.splitlines())
    assert "z" * 400 not in context and "z" * 300 + "\u2026" in context
    assert "- trace.txt \u00b7 3 bytes \u00b7 text/plain \u00b7 run 1" in context
    assert "## Automation\nSkills: rust, sql\nWorkspace: dir /srv/repo" in context


# ---- API beyond the seed ----


def test_zombie_worker_cannot_complete_after_reclaim(wb: Workboard, clock: ManualClock) -> None:
    """A worker whose claim was reclaimed and re-granted (same owner id) cannot
    complete with its old token: the token fences the claim."""
    card = wb.create("Fenced")
    old = wb.claim(card.id, "worker-1", ttl_seconds=60)
    wb.reclaim(card.id, reason="lost heartbeat")
    new = wb.claim(card.id, "worker-1")
    with pytest.raises(ConflictError, match="card is claimed by worker-1."):
        wb.complete(card.id, owner_id="worker-1", token=old.token, summary="late")
    with pytest.raises(ConflictError, match="card is claimed by worker-1."):
        wb.block(card.id, "late", token=old.token)
    assert wb.get(card.id).status == "running"
    with pytest.raises(ConflictError, match="card is claimed by worker-1."):
        wb.complete(card.id, owner_id="other", summary="not mine")
    assert wb.complete(card.id, token=new.token, summary="ok").status == "done"


def test_unblock_and_promote_force(wb: Workboard) -> None:
    parent = wb.create("Parent")
    child = wb.create("Child", parents=[parent.id])
    blocked = wb.block(child.id, "stuck")
    assert wb.unblock(child.id).status == "todo"
    with pytest.raises(InvalidStateError, match="card dependencies are not done."):
        wb.promote(child.id)
    forced = wb.promote(child.id, force=True, reason="operator says go")
    assert forced.status == "ready" and forced.metadata["comments"][-1]["body"] == "operator says go"
    assert blocked.metadata["failure_count"] == 1
    kept = wb.reassign(child.id, "b", reset_failures=False)
    assert kept.metadata["failure_count"] == 1 and kept.agent_id == "b"


def test_dispatch_promotes_due_scheduled_and_dependency_ready_cards(wb: Workboard) -> None:
    scheduled = wb.create("Later", scheduled_at=10_000)
    manual = wb.create("Manual hold", status="scheduled")
    parent = wb.create("Parent", status="running")
    child = wb.create("Child", parents=[parent.id])
    assert wb.dispatch(now_ms=5_000).promoted == []
    wb.complete(parent.id, summary="done")
    result = wb.dispatch(now_ms=20_000)
    assert isinstance(result, DispatchResult)
    assert {c.id for c in result.promoted} == {scheduled.id, child.id}
    assert wb.get(manual.id).status == "scheduled"
    # A reopened parent demotes its ready child at the next pass (reported as promoted).
    wb.update(parent.id, status="todo")
    demoted = wb.dispatch(now_ms=21_000)
    assert [(c.id, c.status) for c in demoted.promoted] == [(child.id, "todo")]


def test_dispatch_clears_expired_claims_of_cards_not_running(wb: Workboard) -> None:
    card = wb.create("Review me", status="ready")
    wb.claim(card.id, "main", ttl_seconds=1)
    wb.move(card.id, "review")
    result = wb.dispatch(now_ms=1_000 + 1_000 + 5 * 60 * 1000 + 1)
    assert [c.id for c in result.reclaimed] == [card.id]
    after = wb.get(card.id)
    assert after.status == "review" and "claim" not in (after.metadata or {})


def test_dispatch_cost_does_not_visit_finished_cards(tmp_path: Path, clock: ManualClock) -> None:
    """Finished and quiet cards are not read by a pass: the candidate queries use the
    indexes (asserted with EXPLAIN QUERY PLAN: no full scan of workboard_cards)."""
    path = tmp_path / "wb.db"
    wb = Workboard(path, clock=clock)
    for i in range(50):
        wb.complete(wb.create(f"done {i}").id, summary="ok")
    ready = wb.create("ready", status="ready")
    result = wb.dispatch()
    assert result.count == 0 and wb.get(ready.id).metadata["automation"]["dispatch_count"] == 1
    con = read_only(path)
    plans = [
        "SELECT id FROM workboard_cards WHERE status = 'running' AND max_runtime_ms IS NOT NULL",
        "SELECT id FROM workboard_cards WHERE claim_owner IS NOT NULL AND claim_expires_at < 5",
        "SELECT c.id FROM workboard_cards c WHERE c.status_rank IN (1, 2, 3, 4) AND c.archived_at IS NULL",
    ]
    for sql in plans:
        for row in con.execute("EXPLAIN QUERY PLAN " + sql):
            assert "USING" in row[3], (sql, row[3])  # an index search, or a scan of a partial index
    con.close()


def test_bad_input_is_rejected_and_writes_nothing(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "wb.db"
    wb = Workboard(path, clock=clock)
    card = wb.create("Target", status="running")
    before = db_snapshot(path)
    cases = [
        (lambda: wb.complete("missing"), NotFoundError, "card not found: missing"),
        (lambda: wb.complete(card.id, summary="s" * 2001), ValidationError, "summary must be 2000"),
        (lambda: wb.complete(card.id, proof="passed"), ValidationError, "proof must be a dict"),  # type: ignore[arg-type]
        (lambda: wb.complete(card.id, artifacts=[{"label": "x"}]), ValidationError, "artifact url or path"),
        (lambda: wb.complete(card.id, artifacts=["x"]), ValidationError, "artifacts entries must be dicts"),  # type: ignore[list-item]
        (lambda: wb.complete(card.id, created_card_ids=[str(i) for i in range(21)]), ValidationError,
         "created card ids supports at most 20"),
        (lambda: wb.complete(card.id, created_card_ids=[1]), ValidationError, "entries must be strings"),  # type: ignore[list-item]
        (lambda: wb.block(card.id, "r" * 2001), ValidationError, "reason must be 2000"),
        (lambda: wb.reassign(card.id, "a" * 121), ValidationError, "agent id must be 120"),
        (lambda: wb.reassign(card.id, status="later"), ValidationError, "status must be one of"),
        (lambda: wb.reclaim(card.id, reason="r" * 1001), ValidationError, "reason must be 1000"),
        (lambda: wb.promote(card.id, reason="r" * 1001), ValidationError, "reason must be 1000"),
        (lambda: wb.unblock("missing"), NotFoundError, "card not found"),
        (lambda: wb.dispatch(board_id="Not A Board!"), ValidationError, "board id must start"),
        (lambda: wb.dispatch(now_ms=-1), ValidationError, "nowMs must be >= 0"),
        (lambda: wb.refresh_diagnostics(now_ms=-5), ValidationError, "nowMs must be >= 0"),
    ]
    for call, exc, text in cases:
        with pytest.raises(exc, match=text):
            call()
    with pytest.raises(TypeError):
        wb.reassign(card.id, reset_failures="no")  # type: ignore[arg-type]
    assert db_snapshot(path) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(summary=st.one_of(st.none(), st.text(max_size=2100)),
       ids=st.lists(st.text(max_size=130), max_size=23))
def test_complete_rejects_or_applies_whole(tmp_path: Path, summary: str | None, ids: list[str]) -> None:
    """Any summary / manifest either completes the card or raises a typed error and
    leaves the database unchanged."""
    path = tmp_path / f"h-{uuid.uuid4().hex}.db"
    wb = Workboard(path, clock=ManualClock(1_000))
    card = wb.create("Target", status="running")
    before = db_snapshot(path)
    try:
        done = wb.complete(card.id, summary=summary, created_card_ids=ids)
    except (ValidationError, NotFoundError):
        assert db_snapshot(path) == before
    else:
        assert done.status == "done"
        assert not [i for i in ids if i.strip()]  # only an empty manifest can pass: no children exist


def test_async_workboard_flow(clock: ManualClock) -> None:
    async def run() -> None:
        wb = AsyncWorkboard(":memory:", clock=clock)
        card = await wb.create("Async", status="ready", agent_id="a")
        claim = await wb.claim(card.id, "a")
        blocked = await wb.block(card.id, "nope", token=claim.token)
        assert blocked.status == "blocked"
        assert (await wb.unblock(card.id)).status == "todo"
        assert (await wb.dispatch(now_ms=2_000)).count == 0
        report = await wb.refresh_diagnostics(now_ms=2 * DAY)
        assert report.count == 1 and len(report.diagnostics) == 1 and report._repr_html_().startswith("<table>")
        assert "Agent: a" in await wb.build_worker_context(card.id)

    asyncio.run(run())
