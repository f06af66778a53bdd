"""Ported seed tests of the OpenClaw workboard store (part 1: cards, metadata,
attachments, claims, dependencies, boards). Each docstring cites the seed test.

The seed's camelCase fields are snake_case here (``metadata["automation"]["board_id"]``);
its keyed in-memory stores are the SQLite tables of the workboard.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from agent_factory import ManualClock, Workboard
from agent_factory.errors import ConflictError, InvalidStateError, NotFoundError, ValidationError

MAX_DATE_TIMESTAMP_MS = 8_640_000_000_000_000
MAX_SAFE_INTEGER = 9_007_199_254_740_991


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def wb() -> Workboard:
    return Workboard(":memory:", clock=ManualClock(1_767_225_600_000))


def execution(**over):
    base = {
        "id": "exec-1", "kind": "agent-session", "engine": "codex", "mode": "autonomous", "status": "running",
        "model": "openai/gpt-5.5", "session_key": "agent:main:dashboard:1", "run_id": "run-1",
        "started_at": 1, "updated_at": 1000,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_sqlite_persistence(tmp_path: Path) -> None:
    """Seed: persists boards, cards, subscriptions, and attachment blobs in sqlite

    Subscriptions are part 2 (notifications); the rest is asserted here."""
    directory = tmp_path / "wbdir"
    directory.mkdir()
    os.chmod(directory, 0o755)
    db = directory / "workboard.sqlite"
    store = Workboard(db)
    board = store.upsert_board("planning", name="Planning")
    card = store.create(
        "Persist it", board_id=board.id, labels=["sqlite", "doctor"],
        execution=execution(model="gpt-5.5", session_key="agent:main:test", started_at=1, updated_at=2),
    )
    store.add_comment(card.id, "round trip")
    attached = store.add_attachment(card.id, "proof.txt", content_base64=b64(b"ok"))
    assert attached.events[-1]["kind"] == "attachment_added"
    store.add_attachment(card.id, "large-proof.bin", content_base64=b64(bytes(70 * 1024)))
    store.update(card.id, metadata={"lifecycle_status_source_updated_at": 1234})
    attachment_id = attached.metadata["attachments"][0]["id"]
    assert mode(directory) == 0o700
    assert mode(db) == 0o600
    for side in ("-wal", "-shm", "-journal"):
        p = Path(f"{db}{side}")
        if p.exists():
            assert mode(p) == 0o600
    del store
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    reopened = Workboard(db)
    boards = reopened.list_boards()
    assert [b.id for b in boards] == ["default", "planning"]
    assert boards[1].name == "Planning"
    got = reopened.get(card.id)
    assert got is not None
    assert got.labels == ["sqlite", "doctor"]
    assert got.metadata["automation"]["board_id"] == "planning"
    assert got.metadata["lifecycle_status_source_updated_at"] == 1234
    assert [c["body"] for c in got.metadata["comments"]] == ["round trip"]
    assert {a["file_name"] for a in got.metadata["attachments"]} == {"proof.txt", "large-proof.bin"}
    content = reopened.get_attachment(attachment_id)
    assert content is not None and content.content_base64 == b64(b"ok")
    reopened.delete(card.id)
    assert reopened.get_attachment(attachment_id) is None


def test_rollback_journal_on_network_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed: uses rollback journaling on network-backed volumes

    The filesystem-type probe is injected with AGENT_FACTORY_FS_MAGIC_OVERRIDE (CIFS magic)."""
    monkeypatch.setenv("AGENT_FACTORY_FS_MAGIC_OVERRIDE", "0xff534d42")
    db = tmp_path / "net" / "workboard.sqlite"
    store = Workboard(db)
    store.create("on a share")
    assert store.info()["journal_mode"] == "delete"
    del store
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    raw.close()
    assert not Path(f"{db}-wal").exists()
    assert not Path(f"{db}-shm").exists()


def test_list_order(wb: Workboard) -> None:
    """Seed: creates and lists cards by status order and position"""
    review = wb.create("Review release notes", status="review", priority="high", labels="release, docs")
    todo = wb.create("Fix dashboard copy", status="todo")
    assert [c.id for c in wb.list()] == [todo.id, review.id]
    assert review.labels == ["release", "docs"]
    assert review.priority == "high"
    assert review.events[0]["kind"] == "created" and review.events[0]["to_status"] == "review"


def test_no_empty_metadata(wb: Workboard, tmp_path: Path) -> None:
    """Seed: does not persist empty metadata for default cards"""
    card = wb.create("Plain card")
    assert card.metadata is None
    db = tmp_path / "plain.db"
    store = Workboard(db)
    stored = store.create("Plain card")
    doc = sqlite3.connect(db).execute("SELECT doc FROM workboard_cards WHERE id = ?", (stored.id,)).fetchone()[0]
    assert "metadata" not in json.loads(doc) or json.loads(doc)["metadata"] is None


def test_zero_position(wb: Workboard) -> None:
    """Seed: preserves explicit zero positions"""
    assert wb.create("Top card", status="todo", position=0).position == 0


def test_initial_links(wb: Workboard) -> None:
    """Seed: keeps initial session, run, and task links when creating cards"""
    card = wb.create(
        "Follow up", session_key="agent:main:dashboard:1", run_id="run-1", task_id="task-1",
        execution=execution(engine="claude", mode="manual", model="anthropic/claude-sonnet-4-6", run_id=None,
                            started_at=10, updated_at=10),
    )
    assert (card.session_key, card.run_id, card.task_id) == ("agent:main:dashboard:1", "run-1", "task-1")
    assert card.execution["engine"] == "claude" and card.execution["mode"] == "manual"
    assert card.execution["model"] == "anthropic/claude-sonnet-4-6"
    attempt = card.metadata["attempts"][0]
    assert attempt["id"] == "agent:main:dashboard:1"
    assert attempt["status"] == "running" and attempt["engine"] == "claude" and attempt["mode"] == "manual"
    assert attempt["session_key"] == "agent:main:dashboard:1" and attempt["started_at"] == 10


def test_generic_metadata_cannot_link_dependencies(wb: Workboard) -> None:
    """Seed: ignores dependency links from generic metadata writes"""
    parent = wb.create("Parent")
    child = wb.create("Child", metadata={"links": [
        {"id": "raw-parent", "type": "parent", "target_card_id": parent.id, "created_at": 1}]})
    assert (child.metadata or {}).get("links") is None
    updated = wb.update(child.id, metadata={"links": [
        {"id": "raw-parent-2", "type": "parent", "target_card_id": parent.id, "created_at": 2}]})
    assert (updated.metadata or {}).get("links") is None


def test_templates_and_metadata_in_record(tmp_path: Path) -> None:
    """Seed: stores card templates and metadata in the card record"""
    store = Workboard(tmp_path / "t.db")
    card = store.create("Fix flaky lane", template_id="bugfix", metadata={
        "comments": [{"id": "comment-1", "body": "Seen twice", "created_at": 10}],
        "links": [{"id": "link-1", "type": "blocks", "target_card_id": "card-2", "created_at": 11}],
        "proof": [{"id": "proof-1", "status": "passed", "command": "pnpm test", "created_at": 12}],
    })
    stored = Workboard(tmp_path / "t.db").get(card.id)
    assert stored is not None
    m = stored.metadata
    assert m["template_id"] == "bugfix"
    assert m["comments"][0]["body"] == "Seen twice"
    assert m["links"][0]["type"] == "blocks" and m["links"][0]["target_card_id"] == "card-2"
    assert m["proof"][0]["status"] == "passed" and m["proof"][0]["command"] == "pnpm test"


def test_automation_from_top_level_fields(wb: Workboard) -> None:
    """Seed: updates automation metadata from top-level patch fields"""
    card = wb.create("Tune automation")
    updated = wb.update(card.id, tenant="release", idempotency_key="release:1", skills=["testing", "docs"],
                        workspace={"kind": "scratch"}, max_runtime_seconds=120, max_retries=2, scheduled_at=10_000)
    a = updated.metadata["automation"]
    assert a["tenant"] == "release" and a["idempotency_key"] == "release:1"
    assert a["skills"] == ["testing", "docs"] and a["workspace"] == {"kind": "scratch"}
    assert (a["max_runtime_seconds"], a["max_retries"], a["scheduled_at"]) == (120, 2, 10_000)
    cleared = wb.update(card.id, scheduled_at=None)
    assert "scheduled_at" not in cleared.metadata["automation"]
    assert cleared.metadata["automation"]["tenant"] == "release" and cleared.metadata["automation"]["max_retries"] == 2
    preserved = wb.update(card.id, scheduled_at=20_000)
    assert preserved.metadata["automation"]["scheduled_at"] == 20_000
    assert preserved.metadata["automation"]["max_runtime_seconds"] == 120


def test_move_and_timestamps(wb: Workboard) -> None:
    """Seed: moves cards and records lifecycle timestamps"""
    card = wb.create("Ship workboard")
    running = wb.move(card.id, "running", 500)
    assert running.status == "running" and running.position == 500
    assert running.started_at >= card.created_at
    assert running.events[-1] == {**running.events[-1], "kind": "moved", "from_status": "todo", "to_status": "running"}
    done = wb.update(card.id, status="done")
    assert done.completed_at >= done.started_at
    back = wb.update(card.id, status="todo", started_at=None, completed_at=None)
    assert back.started_at is None and back.completed_at is None


def test_lifecycle_provenance() -> None:
    """Seed: tracks lifecycle status provenance and clears it on manual status changes"""
    wb = Workboard(":memory:", clock=ManualClock(1_767_225_600_000))
    card = wb.create("Sync status provenance")
    src = "lifecycle_status_source_updated_at"
    zero = wb.update(card.id, status="running", metadata={src: 0})
    assert zero.metadata[src] == 0
    assert wb.update(card.id, status="running", metadata={src: 1000}).metadata[src] == 1000
    assert wb.update(card.id, status="review", metadata={src: 3000}).metadata[src] == 3000
    manual = wb.move(card.id, "running", 2000)
    assert src not in (manual.metadata or {})
    stale_zero = wb.update(card.id, status="review", metadata={src: 0})
    assert stale_zero == manual and stale_zero.status == "running"
    stale = wb.update(card.id, status="review", metadata={src: 2000})
    assert stale == manual
    assert stale.updated_at == manual.updated_at and len(stale.events) == len(manual.events)
    fresh_src = wb.now_ms() + 1000
    fresh = wb.update(card.id, status="review", metadata={src: fresh_src})
    assert fresh.status == "review" and fresh.metadata[src] == fresh_src


def test_creation_status_vs_stale_patch() -> None:
    """Seed: keeps creation status from stale lifecycle patches"""
    wb = Workboard(":memory:", clock=ManualClock(2000))
    card = wb.create("Initial running status", status="running")
    stale = wb.update(card.id, status="review", metadata={"lifecycle_status_source_updated_at": 1000})
    assert stale == card and stale.status == "running"
    fresh = wb.update(card.id, status="review", metadata={"lifecycle_status_source_updated_at": 3000})
    assert fresh.status == "review" and fresh.metadata["lifecycle_status_source_updated_at"] == 3000


def test_bulk_stale_patch() -> None:
    """Seed: does not let one stale bulk lifecycle patch strip later card updates"""
    clock = ManualClock(1000)
    wb = Workboard(":memory:", clock=clock)
    stale_card = wb.create("Stale bulk target")
    fresh_card = wb.create("Fresh bulk target")
    clock.set(3000)
    wb.move(stale_card.id, "running", 1000)
    patch = {"status": "review", "metadata": {"lifecycle_status_source_updated_at": 2000}}
    cards = wb.bulk_update([stale_card.id, fresh_card.id], patch=patch)
    assert cards[0].id == stale_card.id and cards[0].status == "running"
    assert "lifecycle_status_source_updated_at" not in (cards[0].metadata or {})
    assert cards[1].id == fresh_card.id and cards[1].status == "review"
    assert cards[1].metadata["lifecycle_status_source_updated_at"] == 2000
    assert patch == {"status": "review", "metadata": {"lifecycle_status_source_updated_at": 2000}}


def test_stale_patch_keeps_other_fields(wb: Workboard) -> None:
    """Seed: keeps non-status fields from stale lifecycle patches"""
    card = wb.create("Keep stale sync details", execution=execution())
    moved = wb.update(card.id, status="review", metadata={
        "lifecycle_status_source_updated_at": 1000,
        "stale": {"detected_at": 1000, "last_session_updated_at": 1000,
                  "reason": "Session has not reported recent activity."},
    })
    manual = wb.update(card.id, status="running", metadata=moved.metadata)
    synced = wb.update(card.id, status="review", execution=execution(status="done", updated_at=2000),
                       metadata={"lifecycle_status_source_updated_at": 1000, "stale": None})
    assert manual.metadata.get("stale") is not None
    assert synced.status == "running"
    assert synced.execution["run_id"] == "run-1" and synced.execution["status"] == "done"
    assert synced.execution["updated_at"] == 2000
    assert "stale" not in synced.metadata
    assert "lifecycle_status_source_updated_at" not in synced.metadata
    assert synced.events[-1]["kind"] == "attempt_updated" and synced.events[-1]["run_id"] == "run-1"


def test_copied_provenance_cleared(wb: Workboard) -> None:
    """Seed: clears copied lifecycle provenance on manual status patches"""
    card = wb.create("Clear copied provenance")
    moved = wb.update(card.id, status="review", metadata={
        "lifecycle_status_source_updated_at": 1000,
        "stale": {"kind": "session", "status": "done", "updated_at": 1000, "observed_at": 1000},
    })
    manual = wb.update(card.id, status="running", metadata={**moved.metadata, "stale": None})
    assert manual.status == "running"
    assert "lifecycle_status_source_updated_at" not in (manual.metadata or {})
    stale = wb.update(card.id, status="review", metadata={"lifecycle_status_source_updated_at": 1000})
    assert stale.status == "running"
    assert "lifecycle_status_source_updated_at" not in (stale.metadata or {})


def test_session_relink(wb: Workboard) -> None:
    """Seed: keeps execution session links aligned with edited card links"""
    card = wb.create("Relink me", session_key="agent:main:dashboard:1",
                     execution=execution(run_id=None, started_at=10, updated_at=10))
    relinked = wb.update(card.id, session_key="agent:main:dashboard:2")
    assert relinked.session_key == "agent:main:dashboard:2"
    assert relinked.execution["session_key"] == "agent:main:dashboard:2"
    assert relinked.events[-1]["kind"] == "linked"
    assert relinked.events[-1]["session_key"] == "agent:main:dashboard:2"
    unlinked = wb.update(card.id, session_key="")
    assert unlinked.session_key is None and "session_key" not in unlinked.execution
    assert wb.update(card.id, execution=None).execution is None


def test_attempts(wb: Workboard) -> None:
    """Seed: tracks execution attempts as card metadata"""
    card = wb.create("Run worker")
    running = wb.update(card.id, status="running", execution=execution(started_at=10, updated_at=10))
    attempts = running.metadata["attempts"]
    assert len(attempts) == 1
    assert attempts[0]["id"] == "run-1" and attempts[0]["status"] == "running"
    assert attempts[0]["engine"] == "codex" and attempts[0]["run_id"] == "run-1"
    assert running.events[-1]["kind"] == "moved"
    blocked = wb.update(card.id, execution={**running.execution, "status": "blocked", "updated_at": 20})
    assert blocked.metadata["attempts"][0]["status"] == "blocked"
    assert blocked.metadata["attempts"][0]["ended_at"] == 20
    assert blocked.metadata["failure_count"] == 1
    assert blocked.events[-1]["kind"] == "attempt_updated" and blocked.events[-1]["run_id"] == "run-1"
    commented = wb.add_comment(card.id, "Need provider follow-up.")
    assert commented.metadata["failure_count"] == 1
    assert commented.metadata["attempts"][0]["status"] == "blocked"
    retry = wb.update(card.id, execution={**running.execution, "id": "exec-2", "run_id": "run-2",
                                         "status": "running", "started_at": 30, "updated_at": 30})
    assert retry.metadata["failure_count"] == 1
    second = retry.metadata["attempts"][1]
    assert (second["id"], second["started_at"], second["status"]) == ("run-2", 30, "running")
    again = wb.update(card.id, execution={**retry.execution, "status": "blocked", "updated_at": 40})
    assert again.metadata["failure_count"] == 2


def test_comment_link_proof_archive_events(wb: Workboard) -> None:
    """Seed: adds comments, links, proof, and archive metadata"""
    card = wb.create("Track proof")
    commented = wb.add_comment(card.id, "Reviewer asked for screenshots.")
    assert commented.metadata["comments"][0]["body"] == "Reviewer asked for screenshots."
    assert commented.events[-1]["kind"] == "comment_added"
    linked = wb.add_link(card.id, type="blocked_by", target_card_id="card-upstream", title="Upstream fix")
    assert linked.metadata["links"][0]["type"] == "blocked_by"
    assert linked.metadata["links"][0]["target_card_id"] == "card-upstream"
    assert linked.events[-1]["kind"] == "link_added"
    with pytest.raises(ValidationError, match="linkDependency"):
        wb.add_link(card.id, type="parent", target_card_id="card-upstream")
    proven = wb.add_proof(card.id, status="passed", command="pnpm test extensions/workboard")
    assert proven.metadata["proof"][0]["status"] == "passed"
    assert proven.metadata["proof"][0]["command"] == "pnpm test extensions/workboard"
    assert proven.events[-1]["kind"] == "proof_added"
    art = wb.add_artifact(card.id, label="Screenshot", path="/tmp/workboard.png", mime_type="image/png")
    assert art.metadata["artifacts"][0]["label"] == "Screenshot"
    assert art.metadata["artifacts"][0]["path"] == "/tmp/workboard.png"
    assert art.events[-1]["kind"] == "artifact_added"
    archived = wb.archive(card.id, True)
    assert archived.metadata["archived_at"] > 0 and archived.events[-1]["kind"] == "archived"
    restored = wb.archive(card.id, False)
    assert "archived_at" not in restored.metadata and restored.events[-1]["kind"] == "unarchived"


def test_attachments(wb: Workboard) -> None:
    """Seed: stores attachments in the plugin kv namespace and adds worker context"""
    card = wb.create("Review attached log")
    attached = wb.add_attachment(card.id, "failure.log", content_base64=b64(b"stack trace"),
                                 mime_type="text/plain", note="Captured failing run")
    meta = attached.metadata["attachments"][0]
    assert meta["file_name"] == "failure.log" and meta["byte_size"] == len("stack trace")
    assert meta["mime_type"] == "text/plain"
    assert attached.events[-1]["kind"] == "attachment_added"
    persisted = wb.get_attachment(meta["id"])
    assert persisted is not None and persisted.content == b"stack trace"
    with pytest.raises(ValidationError, match="attachment must be"):
        wb.add_attachment(card.id, "huge.bin", content_base64=b64(bytes(256 * 1024 + 1)))
    big = wb.add_attachment(card.id, "sqlite-sized.bin", content_base64=b64(bytes(70 * 1024)))
    assert any(a["file_name"] == "sqlite-sized.bin" for a in big.metadata["attachments"])
    with pytest.raises(ValidationError, match="canonical base64"):
        wb.add_attachment(card.id, "padded.txt", content_base64=b64(b"ok") + "\n")
    assert "failure.log" in wb.build_worker_context(card.id)
    deleted = wb.delete_attachment(card.id, meta["id"])
    assert [a["file_name"] for a in deleted.metadata["attachments"]] == ["sqlite-sized.bin"]
    assert deleted.events[-1]["kind"] == "edited"
    assert wb.get_attachment(meta["id"]) is None


def test_attachment_pruning(wb: Workboard) -> None:
    """Seed: removes attachment blobs when the card attachment index prunes old entries"""
    card = wb.create("Many attachments")
    first = ""
    for i in range(21):
        updated = wb.add_attachment(card.id, f"log-{i}.txt", content_base64=b64(f"log {i}".encode()))
        first = first or updated.metadata["attachments"][0]["id"]
    saved = wb.get(card.id)
    assert saved is not None and len(saved.metadata["attachments"]) == 20
    assert wb.get_attachment(first) is None
    exported = wb.export_cards()
    assert len(exported.attachments) == 20
    assert not hasattr(exported.attachments[0], "content_base64")


def test_worker_log_and_protocol_violation(wb: Workboard) -> None:
    """Seed: records worker logs and protocol violations on cards"""
    card = wb.create("Protocol card", status="running", session_key="session-protocol", run_id="run-protocol",
                     execution=execution(id="exec-protocol", session_key=None, run_id=None,
                                         started_at=10, updated_at=10))
    logged = wb.add_worker_log(card.id, "Worker nearing timeout.", level="warning")
    assert logged.metadata["worker_logs"][0]["level"] == "warning"
    assert logged.metadata["worker_logs"][0]["message"] == "Worker nearing timeout."
    assert logged.events[-1]["kind"] == "orchestration"
    v = wb.record_protocol_violation(card.id, detail="Worker exited without workboard_complete.",
                                     session_key="observed-session", run_id="observed-run")
    assert v.status == "blocked" and v.execution["status"] == "blocked"
    assert len(v.metadata["attempts"]) == 1
    assert v.metadata["attempts"][0]["status"] == "blocked"
    assert v.metadata["attempts"][0]["error"] == "Worker exited without workboard_complete."
    assert v.metadata["worker_protocol"]["state"] == "violated"
    assert v.metadata["worker_protocol"]["detail"] == "Worker exited without workboard_complete."
    assert v.metadata["failure_count"] == 1
    [n] = v.metadata["notifications"]
    assert (n["kind"], n["session_key"], n["run_id"]) == ("failed", "observed-session", "observed-run")
    assert v.events[-1]["kind"] == "protocol_violation"


def test_concurrent_appends(wb: Workboard) -> None:
    """Seed: keeps concurrent metadata appends from dropping siblings"""
    import threading

    card = wb.create("Collect notes")
    threads = [threading.Thread(target=wb.add_comment, args=(card.id, body)) for body in ("First note.", "Second note.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = wb.get(card.id)
    assert saved is not None
    assert sorted(c["body"] for c in saved.metadata["comments"]) == ["First note.", "Second note."]


def test_metadata_budget(wb: Workboard) -> None:
    """Seed: keeps metadata under the keyed-store value budget"""
    card = wb.create("Collect a lot of notes")
    for i in range(50):
        wb.add_comment(card.id, f"{i:02d} {'x' * 1990}")
    saved = wb.get(card.id)
    assert saved is not None
    size = len(json.dumps(saved.metadata, separators=(",", ":"), ensure_ascii=False).encode())
    assert size <= 24 * 1024
    assert "49 " in saved.metadata["comments"][-1]["body"]
    assert len(saved.metadata["comments"]) < 50


def test_retention_events(wb: Workboard) -> None:
    """Seed: records append events when metadata retention drops old comments"""
    card = wb.create("Track retained comments")
    updated = card
    for i in range(51):
        updated = wb.add_comment(card.id, f"Note {i}")
    assert len(updated.metadata["comments"]) == 50
    assert updated.metadata["comments"][0]["body"] == "Note 1"
    assert updated.events[-1]["kind"] == "comment_added"


def test_queued_stale_update_and_comment(wb: Workboard) -> None:
    """Seed: keeps queued metadata when lifecycle updates add stale state"""
    import threading

    card = wb.create("Sync stale state")
    stale = {"detected_at": 10, "last_session_updated_at": 1, "reason": "Linked session has not reported recent activity."}
    t1 = threading.Thread(target=lambda: wb.update(card.id, status="running", metadata={"stale": stale}))
    t2 = threading.Thread(target=lambda: wb.add_comment(card.id, "Operator note."))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    saved = wb.get(card.id)
    assert saved is not None and saved.status == "running"
    assert saved.metadata["stale"]["last_session_updated_at"] == 1
    assert "Operator note." in [c["body"] for c in saved.metadata["comments"]]


def test_export(wb: Workboard) -> None:
    """Seed: exports card records with metadata"""
    card = wb.create("Export me", template_id="docs")
    exported = wb.export_cards()
    assert [(c.id, c.metadata) for c in exported.cards] == [(card.id, {"template_id": "docs"})]
    assert isinstance(exported.exported_at, int)


def test_claim_heartbeat_release(wb: Workboard) -> None:
    """Seed: claims cards, heartbeats, and releases the claim"""
    card = wb.create("Coordinate worker", status="todo")
    claimed = wb.claim(card.id, "main", ttl_seconds=60)
    assert claimed.token
    assert claimed.card.status == "running" and claimed.card.agent_id == "main"
    assert claimed.card.claim["owner_id"] == "main"
    with pytest.raises(ConflictError, match="already claimed"):
        wb.claim(card.id, "other")
    hb = wb.heartbeat(card.id, owner_id="main", note="Still running tests.")
    assert hb.events[-1]["kind"] == "heartbeat"
    assert hb.metadata["comments"][-1]["body"] == "Still running tests."
    with pytest.raises(ConflictError, match="owner"):
        wb.heartbeat(card.id, owner_id="other")
    released = wb.release_claim(card.id, owner_id="main", status="review")
    assert released.status == "review" and released.claim is None


def test_claim_ttl_cap() -> None:
    """Seed: caps oversized claim TTL seconds to a valid Date timestamp"""
    wb = Workboard(":memory:", clock=ManualClock(1_000))
    card = wb.create("Bound claim", status="todo")
    claimed = wb.claim(card.id, "main", ttl_seconds=MAX_SAFE_INTEGER)
    assert claimed.card.claim["expires_at"] == MAX_DATE_TIMESTAMP_MS


def test_invalid_stored_expiry(wb: Workboard) -> None:
    """Seed: does not let invalid stored claim expiry block a fresh claim"""
    import sys

    card = wb.create("Invalid claim expiry", status="todo", metadata={"claim": {
        "owner_id": "stale-worker", "token": "stale-token", "claimed_at": 1, "last_heartbeat_at": 1,
        "expires_at": sys.float_info.max}})
    claimed = wb.claim(card.id, "main", token="fresh-token")
    assert claimed.card.claim["owner_id"] == "main" and claimed.card.claim["token"] == "fresh-token"


def test_idempotent_child_promotion(wb: Workboard) -> None:
    """Seed: creates idempotent child cards and promotes them when parents finish

    ``complete`` is part 2: the parent is finished with ``move(..., "done")``."""
    parent = wb.create("Parent", status="running")
    child = wb.create("Child", status="todo", parents=[parent.id], tenant="release", idempotency_key="fanout:1",
                      skills=["testing"], workspace={"kind": "scratch"})
    assert child.status == "todo"
    assert [(link["type"], link["target_card_id"]) for link in child.metadata["links"]] == [("parent", parent.id)]
    p = wb.get(parent.id)
    assert p is not None and [(link["type"], link["target_card_id"]) for link in p.metadata["links"]] == [("child", child.id)]
    assert wb.create("Duplicate child", tenant="release", idempotency_key="fanout:1").id == child.id
    assert wb.create("Different tenant child", tenant="qa", idempotency_key="fanout:1").title == "Different tenant child"
    assert wb.create("Unscoped child", idempotency_key="fanout:1").title == "Unscoped child"
    wb.move(parent.id, "done")
    promoted = wb.promote_ready()
    assert [(c.id, c.status) for c in promoted.cards] == [(child.id, "ready")]
    got = wb.get(child.id)
    assert got is not None and got.status == "ready"
    a = got.metadata["automation"]
    assert (a["tenant"], a["idempotency_key"], a["skills"], a["workspace"]) == (
        "release", "fanout:1", ["testing"], {"kind": "scratch"})


def test_idempotent_retry_after_parent_deleted(wb: Workboard) -> None:
    """Seed: returns an idempotent child retry when its original parent was deleted"""
    parent = wb.create("Ephemeral parent")
    child = wb.create("Retryable child", parents=[parent.id], tenant="release", idempotency_key="fanout:deleted-parent")
    wb.delete(parent.id)
    again = wb.create("Retryable child", parents=[parent.id], tenant="release", idempotency_key="fanout:deleted-parent")
    assert again.id == child.id


def test_workspaces(wb: Workboard) -> None:
    """Seed: accepts POSIX and Windows absolute directory workspaces"""
    for path in ("/Users/me/repo", r"C:\Users\me\repo", r"\\server\share\repo"):
        card = wb.create("Workspace", workspace={"kind": "dir", "path": path})
        assert card.metadata["automation"]["workspace"] == {"kind": "dir", "path": path}
    with pytest.raises(ValidationError, match="absolute"):
        wb.create("Relative workspace", workspace={"kind": "dir", "path": "repo"})


def test_terminal_children(wb: Workboard) -> None:
    """Seed: rejects terminal children with incomplete dependency parents"""
    running_parent = wb.create("Running parent", status="running")
    done_child = wb.create("Done child", status="done")
    with pytest.raises(InvalidStateError, match="terminal child"):
        wb.link_cards(running_parent.id, done_child.id)
    with pytest.raises(InvalidStateError, match="terminal child"):
        wb.create("Already done", status="done", parents=[running_parent.id])
    assert not any(c.title == "Already done" for c in wb.list())
    done_parent = wb.create("Done parent", status="done")
    linked = wb.link_cards(done_parent.id, done_child.id)
    assert (linked.id, linked.status) == (done_child.id, "done")


def test_dependency_links_survive_cap(wb: Workboard) -> None:
    """Seed: preserves dependency links across link caps and parent deletion"""
    parent = wb.create("Parent", status="running")
    child = wb.create("Child", parents=[parent.id])
    for i in range(60):
        wb.add_link(child.id, type="relates_to", url=f"https://example.com/{i}")
    with pytest.raises(InvalidStateError, match="dependencies"):
        wb.claim(child.id, "main")
    wb.delete(parent.id)
    claimed = wb.claim(child.id, "main")
    assert claimed.card.status == "running"
    assert not any(link.get("target_card_id") == parent.id for link in claimed.card.metadata["links"])


def test_rollback_on_link_capacity(wb: Workboard) -> None:
    """Seed: rolls back card creation when dependency link capacity rejects the parent"""
    parent = wb.create("Fanout parent")
    for i in range(50):
        wb.create(f"Child {i}", parents=[parent.id])
    with pytest.raises(InvalidStateError, match="link limit"):
        wb.create("Overflow child", parents=[parent.id], idempotency_key="overflow")
    assert not any(c.title == "Overflow child" for c in wb.list())


def test_invalid_parents(wb: Workboard) -> None:
    """Seed: rejects invalid parent creates without persisting partial cards"""
    parents = [wb.create(f"Parent {i}").id for i in range(21)]
    with pytest.raises(ValidationError, match="parents supports at most 20 entries"):
        wb.create("Too many parents", parents=parents)
    with pytest.raises(ValidationError, match="parents entries must be strings"):
        wb.create("Malformed parents", parents=[parents[0], 123])  # type: ignore[list-item]
    with pytest.raises(NotFoundError, match="card not found: missing-parent"):
        wb.create("Orphan child", parents=["missing-parent"], idempotency_key="fanout:missing")
    titles = {c.title for c in wb.list()}
    assert not titles & {"Too many parents", "Malformed parents", "Orphan child"}


def test_cycles(wb: Workboard) -> None:
    """Seed: rejects dependency cycles"""
    first = wb.create("First")
    second = wb.create("Second", parents=[first.id])
    with pytest.raises(InvalidStateError, match="cycle"):
        wb.link_cards(second.id, first.id)


def test_heartbeat_extends_by_original_ttl() -> None:
    """Seed: extends claim expiry by the original TTL on heartbeat"""
    clock = ManualClock(1_000)
    wb = Workboard(":memory:", clock=clock)
    card = wb.create("Long run")
    wb.claim(card.id, "main", ttl_seconds=60)
    clock.set(31_000)
    c = wb.heartbeat(card.id, owner_id="main").claim
    assert (c["claimed_at"], c["last_heartbeat_at"], c["expires_at"]) == (1_000, 31_000, 91_000)
    clock.set(61_000)
    c = wb.heartbeat(card.id, owner_id="main").claim
    assert (c["claimed_at"], c["last_heartbeat_at"], c["expires_at"]) == (1_000, 61_000, 121_000)


def test_heartbeat_cap() -> None:
    """Seed: caps heartbeat claim renewal to a valid Date timestamp"""
    clock = ManualClock(MAX_DATE_TIMESTAMP_MS - 30_000)
    wb = Workboard(":memory:", clock=clock)
    card = wb.create("Near date limit")
    wb.claim(card.id, "main", ttl_seconds=60)
    clock.set(MAX_DATE_TIMESTAMP_MS - 10_000)
    assert wb.heartbeat(card.id, owner_id="main").claim["expires_at"] == MAX_DATE_TIMESTAMP_MS


def test_release_validation_keeps_claim(wb: Workboard) -> None:
    """Seed: keeps the claim when release status validation fails"""
    card = wb.create("Keep claim")
    wb.claim(card.id, "main", token="token-1")
    with pytest.raises(ValidationError, match="status must be one of"):
        wb.release_claim(card.id, owner_id="main", token="token-1", status="invalid")
    got = wb.get(card.id)
    assert got is not None and (got.claim["owner_id"], got.claim["token"]) == ("main", "token-1")


def test_scope_inside_queued_writes(wb: Workboard) -> None:
    """Seed: checks mutation claim scope inside queued card writes"""
    card = wb.create("Scoped mutation")
    wb.claim(card.id, "main", token="token-1")
    with pytest.raises(ConflictError, match="claimed by main"):
        wb.add_comment(card.id, "stale write", owner_id="other")
    got = wb.get(card.id)
    assert got is not None and "comments" not in got.metadata
    ok = wb.add_comment(card.id, "owner write", owner_id="main")
    assert [c["body"] for c in ok.metadata["comments"]] == ["owner write"]


def test_board_scoped_idempotency_and_stats(wb: Workboard) -> None:
    """Seed: scopes idempotent creates and stats by board"""
    ops = wb.create("Ops work", board_id="ops", idempotency_key="same")
    product = wb.create("Product work", board_id="product", idempotency_key="same")
    assert wb.create("Duplicate ops", board_id="ops", idempotency_key="same").id == ops.id
    assert product.id != ops.id
    assert len(wb.list(board_id="ops")) == 1
    totals = {b.id: b.total for b in wb.list_boards()}
    assert totals["ops"] == 1 and totals["product"] == 1
    stats = wb.stats(board_id="product")
    assert (stats.id, stats.total, stats.by_status) == ("product", 1, {"todo": 1})
    wb.create("Prototype safe", board_id="product", agent_id="__proto__")
    assert wb.stats(board_id="product").by_agent["__proto__"] == 1


def test_invalid_status(wb: Workboard) -> None:
    """Seed: rejects invalid status values"""
    with pytest.raises(ValidationError, match="status must be one of"):
        wb.create("Bad card", status="later")
