"""Workboard API beyond the seed: sharing the factory file, SQL filters and paging,
fenced claims, the durable log and change revision, bad input (hypothesis), two
writers (threads and processes), and the acyclic dependency graph (hypothesis)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import AsyncWorkboard, Card, Factory, ManualClock, Workboard
from agent_factory.errors import ConflictError, ValidationError
from helpers import db_snapshot, read_only


def test_workboard_shares_the_factory_file(factory: Factory, workboard: Workboard, factory_path: Path) -> None:
    card = workboard.create("Shared file")
    on_factory = Workboard(factory)
    assert on_factory.get(card.id) == card
    assert on_factory.now_ms() == factory.now_ms()
    assert workboard.info()["path"] == factory.info()["path"]
    tables = {n for (n,) in read_only(factory_path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"workboard_cards", "messages"} <= tables


def test_list_filters_and_pages_in_sql(workboard: Workboard) -> None:
    ids = [workboard.create(f"Card {i}", board_id="ops", agent_id="a" if i % 2 else "b").id for i in range(10)]
    workboard.create("Elsewhere", board_id="product")
    workboard.archive(ids[0])
    page1 = workboard.list(board_id="ops", limit=4)
    page2 = workboard.list(board_id="ops", limit=4, offset=4)
    assert [c.id for c in page1 + page2] == ids[:8]
    assert len(workboard.list(board_id="ops", archived=False)) == 9
    assert [c.id for c in workboard.list(archived=True)] == [ids[0]]
    assert {c.agent_id for c in workboard.list(agent_id="a")} == {"a"}
    workboard.move(ids[1], "ready")
    assert [c.id for c in workboard.list(status=["ready"])] == [ids[1]]
    with pytest.raises(ValidationError, match="status must be one of"):
        workboard.list(status="later")
    with pytest.raises(ValidationError, match="board id"):
        workboard.list(board_id="-bad")


def test_claims_are_fenced_by_token(workboard: Workboard) -> None:
    card = workboard.create("Fenced")
    first = workboard.claim(card.id, "worker-1", ttl_seconds=60)
    workboard.release_claim(card.id, token=first.token, status="todo")
    second = workboard.claim(card.id, "worker-1", ttl_seconds=60)
    assert second.token != first.token
    # The zombie holding the old token cannot act, even under the same owner id.
    with pytest.raises(ConflictError, match="card is claimed by worker-1."):
        workboard.add_comment(card.id, "zombie", owner_id="worker-1", token=first.token)
    with pytest.raises(ConflictError, match="claim token does not match."):
        workboard.heartbeat(card.id, token=first.token)
    with pytest.raises(ValidationError, match="ownerId or token is required"):
        workboard.heartbeat(card.id)
    assert workboard.add_comment(card.id, "live", token=second.token).metadata["comments"][-1]["body"] == "live"


def test_release_of_unclaimed_card_is_refused(workboard: Workboard) -> None:
    card = workboard.create("Free")
    with pytest.raises(Exception, match="card is not claimed."):
        workboard.release_claim(card.id, owner_id="main", status="done")


def test_cards_sharing_a_session_key_do_not_collide(workboard: Workboard) -> None:
    exe = {"id": "x", "engine": "codex", "status": "running", "model": "m", "session_key": "agent:main:dashboard:1"}
    a = workboard.create("A", execution=exe)
    b = workboard.create("B", execution=exe)
    assert a.metadata["attempts"][0]["id"] == b.metadata["attempts"][0]["id"] == "agent:main:dashboard:1"
    assert workboard.get(a.id).metadata["attempts"] and workboard.get(b.id).metadata["attempts"]  # type: ignore[union-attr]


def test_status_transitions_are_logged_durably(workboard: Workboard, factory_path: Path) -> None:
    card = workboard.create("Logged")
    workboard.move(card.id, "ready")
    workboard.claim(card.id, "main")
    workboard.record_protocol_violation(card.id)
    rows = read_only(factory_path).execute(
        "SELECT seq, kind, from_status, to_status FROM workboard_log WHERE card_id = ? ORDER BY seq", (card.id,)
    ).fetchall()
    assert [(k, f, t) for _, k, f, t in rows] == [
        ("status", None, "todo"), ("status", "todo", "ready"), ("status", "ready", "running"),
        ("failed", None, None), ("status", "running", "blocked"),
    ]
    seqs = [s for s, *_ in rows]
    assert seqs == sorted(seqs)
    note = workboard.get(card.id).metadata["notifications"][0]  # type: ignore[union-attr]
    assert note["sequence"] == rows[3][0]


def test_change_revision_counts_commits(workboard: Workboard) -> None:
    before = workboard.change_revision()
    card = workboard.create("Rev")
    workboard.add_comment(card.id, "one")
    after = workboard.change_revision()
    assert after.revision == before.revision + 2
    with pytest.raises(ValidationError):
        workboard.add_comment(card.id, "   ")
    assert workboard.change_revision().revision == after.revision


def test_idempotency_key_collisions_on_update_are_conflicts(workboard: Workboard) -> None:
    workboard.create("One", idempotency_key="k")
    two = workboard.create("Two")
    with pytest.raises(ConflictError, match="idempotency key"):
        workboard.update(two.id, idempotency_key="k")


def test_unknown_metadata_fields_are_rejected(workboard: Workboard) -> None:
    with pytest.raises(ValidationError, match='metadata has no field "failureCount"'):
        workboard.create("camel", metadata={"failureCount": 2})
    with pytest.raises(ValidationError, match="card.metadata"):
        workboard.create("bad json", metadata={"x": object()})


def test_async_workboard(async_workboard: AsyncWorkboard) -> None:
    async def run() -> Card:
        card = await async_workboard.create("Async card", labels=["a"])
        await async_workboard.add_comment(card.id, "hello")
        got = await async_workboard.get(card.id)
        assert got is not None
        return got

    got = asyncio.run(run())
    assert got.metadata["comments"][0]["body"] == "hello"
    assert "<table>" in got._repr_html_()


# ---- bad input: typed exception naming the field, database unchanged ----

_BAD_CREATE = st.one_of(
    st.fixed_dictionaries({"title": st.sampled_from(["", "   ", "x" * 181])}),
    st.fixed_dictionaries({"title": st.just("ok"), "status": st.text(min_size=1).filter(
        lambda s: s.strip() != ""
        and s.strip().lower()
        not in {"triage", "backlog", "todo", "scheduled", "ready", "running", "review", "blocked", "done"})}),
    st.fixed_dictionaries({"title": st.just("ok"), "priority": st.sampled_from(["low!", "none", "critical"])}),
    st.fixed_dictionaries({"title": st.just("ok"), "notes": st.just("n" * 4001)}),
    st.fixed_dictionaries({"title": st.just("ok"), "labels": st.just(["l" * 41])}),
    st.fixed_dictionaries({"title": st.just("ok"), "board_id": st.sampled_from(["-x", "a b", "x" * 81, "é"])}),
    st.fixed_dictionaries({"title": st.just("ok"), "tenant": st.just("t" * 81)}),
    st.fixed_dictionaries({"title": st.just("ok"), "idempotency_key": st.just("k" * 161)}),
    st.fixed_dictionaries({"title": st.just("ok"), "workspace": st.sampled_from(
        [{"kind": "cloud"}, {"kind": "dir", "path": "rel"}, {"kind": "dir"}])}),
    st.fixed_dictionaries({"title": st.just("ok"), "max_retries": st.sampled_from(["3", [1], {"a": 1}])}),
    st.fixed_dictionaries({"title": st.just("ok"), "parents": st.sampled_from([[1], "x" * 121, ["missing"]])}),
    st.fixed_dictionaries({"title": st.just("ok"), "agent_id": st.just("a" * 121)}),
    st.fixed_dictionaries({"title": st.just("ok"), "metadata": st.sampled_from(
        [{"comments": "no"}, {"bogus": 1}, {"claim": {"token": "t"}}, {"stale": 3}])}),
)

_FIELD_WORDS = ("title", "status", "priority", "notes", "label", "board id", "tenant", "idempotency key",
                "workspace", "max retries", "parents", "card not found", "agent id", "metadata", "claim", "stale")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=_BAD_CREATE)
def test_bad_create_input_names_the_field_and_writes_nothing(tmp_path_factory: pytest.TempPathFactory,
                                                             fields: dict[str, Any]) -> None:
    path = tmp_path_factory.mktemp("bad") / "wb.db"
    wb = Workboard(path, clock=ManualClock(1_000))
    wb.create("existing", board_id="ops")
    before = db_snapshot(path)
    title = fields.pop("title")
    with pytest.raises((ValidationError, LookupError)) as info:
        wb.create(title, **fields)
    assert any(w in str(info.value) for w in _FIELD_WORDS), str(info.value)
    assert db_snapshot(path) == before


# ---- two writers ----

def test_two_threads_interleave_and_both_persist(workboard: Workboard) -> None:
    card = workboard.create("Busy")
    def writer(tag: str) -> None:
        for i in range(25):
            workboard.add_comment(card.id, f"{tag}-{i}")
    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bodies = [c["body"] for c in workboard.get(card.id).metadata["comments"]]  # type: ignore[union-attr]
    assert sorted(bodies) == sorted([f"a-{i}" for i in range(25)] + [f"b-{i}" for i in range(25)])


_WRITER = """
import sys
from agent_factory import Workboard
wb = Workboard(sys.argv[1])
for i in range(int(sys.argv[4])):
    wb.add_comment(sys.argv[2], f"{sys.argv[3]}-{i}")
"""


def test_two_processes_interleave_and_both_persist(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    wb = Workboard(path)
    card = wb.create("Shared between processes")
    rev = wb.change_revision()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), card.id, t, "20"]) for t in ("p", "q")]
    for p in procs:
        assert p.wait(120) == 0
    bodies = sorted(c["body"] for c in wb.get(card.id).metadata["comments"])  # type: ignore[union-attr]
    assert bodies == sorted([f"p-{i}" for i in range(20)] + [f"q-{i}" for i in range(20)])
    after = wb.change_revision()
    assert after.revision == rev.revision + 40
    assert after.data_version != rev.data_version, "commits by other processes are seen"


# ---- the dependency graph stays acyclic ----

def _has_cycle(wb: Workboard) -> bool:
    parents = {c.id: c.parent_ids for c in wb.list()}
    state: dict[str, int] = {}
    def visit(n: str) -> bool:
        state[n] = 1
        for p in parents.get(n, []):
            if state.get(p) == 1 or (state.get(p) is None and visit(p)):
                return True
        state[n] = 2
        return False
    return any(state.get(n) is None and visit(n) for n in parents)


@settings(max_examples=40, deadline=None)
@given(edges=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=25))
def test_random_links_keep_the_graph_acyclic(edges: list[tuple[int, int]]) -> None:
    wb = Workboard(":memory:", clock=ManualClock(1_000))
    ids = [wb.create(f"n{i}").id for i in range(7)]
    for p, c in edges:
        try:
            wb.link_cards(ids[p], ids[c])
        except (ValidationError, Exception) as exc:  # cycles, self links are refused
            assert any(s in str(exc) for s in ("cycle", "must differ")), str(exc)
        assert not _has_cycle(wb)
    for card in wb.list():
        for parent in card.parent_ids:
            p = wb.get(parent)
            assert p is not None and card.id in [link["target_card_id"] for link in p.metadata["links"]
                                                 if link["type"] == "child"]
