"""Workboard planning: ``specify`` (clarify a rough card, todo only) and
``decompose`` (split into linked children) with rollback.

Ported seed tests (docstrings ``Seed: <title>``) plus: the whole decomposition is
one transaction, so any failure (a child, a link, the parent's own holds, a
claim) leaves the database byte-for-byte unchanged.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import ManualClock, Workboard
from agent_factory.errors import ConflictError, InvalidStateError, NotFoundError, ValidationError
from helpers import db_snapshot


@pytest.fixture
def wb() -> Workboard:
    return Workboard(":memory:", clock=ManualClock(1_767_225_600_000))



def links(card: Any) -> list[dict[str, Any]] | None:
    return (card.metadata or {}).get("links")


# ---- seed tests ----


def test_specify_and_decompose(wb: Workboard) -> None:
    """Seed: specifies and decomposes rough cards into linked children"""
    parent = wb.create("Rough idea", status="triage", board_id="planning", tenant="qa",
                       idempotency_key="planning:rough")
    specified = wb.specify(parent.id, title="Clarified plan", notes="Acceptance: two concrete follow-up cards.",
                           summary="Clarified the outcome and acceptance criteria.", labels=["planning"])
    assert (specified.title, specified.status, specified.notes, specified.labels) == (
        "Clarified plan", "todo", "Acceptance: two concrete follow-up cards.", ["planning"])
    assert [c["body"] for c in specified.metadata["comments"]] == ["Clarified the outcome and acceptance criteria."]
    assert specified.metadata["automation"]["summary"] == "Clarified the outcome and acceptance criteria."
    assert specified.events[-1]["kind"] == "specified"
    result = wb.decompose(specified.id, [
        {"title": "Implement SQLite persistence", "priority": "high"},
        {"title": "Review Workboard flows", "agent_id": "reviewer"},
    ], summary="Split into implementation and review.")
    assert result.parent.status == "done"
    assert result.parent.events[-1]["kind"] == "decomposed"
    assert result.parent.metadata["automation"]["created_card_ids"] == [c.id for c in result.children]
    first, second = result.children
    assert (first.title, first.priority) == ("Implement SQLite persistence", "high")
    automation = first.metadata["automation"]
    assert (automation["board_id"], automation["tenant"], automation["created_by_card_id"],
            automation["idempotency_key"]) == ("planning", "qa", parent.id, "planning:rough:child:1")
    assert {"type": "parent", "target_card_id": parent.id}.items() <= links(first)[0].items()
    assert (second.title, second.agent_id) == ("Review Workboard flows", "reviewer")
    assert second.metadata["automation"]["idempotency_key"] == "planning:rough:child:2"
    runs = wb.runs(parent.id)
    assert runs.card.id == parent.id and runs.attempts == []


def test_specify_is_todo_only(wb: Workboard) -> None:
    """Seed: keeps specify as a todo-only clarification step"""
    card = wb.create("Rough idea", status="triage")
    blocked = wb.create("Blocked idea", status="blocked")
    with pytest.raises(InvalidStateError, match="must move to todo"):
        wb.specify(card.id, status="done")
    with pytest.raises(InvalidStateError, match="must move to todo"):
        wb.specify(card.id, status="running")
    with pytest.raises(InvalidStateError, match="only triage, backlog, or todo"):
        wb.specify(blocked.id, title="Specified")
    result = wb.specify(card.id, title="Specified")
    assert (result.title, result.status) == ("Specified", "todo")


def test_decompose_rolls_back_new_children(wb: Workboard) -> None:
    """Seed: rolls back newly created children when decomposition fails"""
    parent = wb.create("Parent", status="todo")
    with pytest.raises(ValidationError, match="title is required"):
        wb.decompose(parent.id, [{"title": "First child"}, {"notes": "Missing title"}])
    assert [c.id for c in wb.list()] == [parent.id]
    assert links(wb.get(parent.id)) is None


def test_decompose_rolls_back_reused_children(wb: Workboard) -> None:
    """Seed: rolls back links added to reused idempotent children when decomposition fails"""
    parent = wb.create("Parent")
    existing = wb.create("Existing child", status="ready", idempotency_key="child-key")
    wb.add_link(existing.id, type="relates_to", target_card_id=parent.id)
    with pytest.raises(ValidationError, match="title is required"):
        wb.decompose(parent.id, [{"title": "Existing child", "idempotency_key": "child-key"},
                                 {"notes": "Missing title"}])
    assert len(wb.list()) == 2
    assert links(wb.get(parent.id)) is None
    child = wb.get(existing.id)
    assert child is not None and child.status == "ready"
    assert [(link["type"], link["target_card_id"]) for link in links(child)] == [("relates_to", parent.id)]


def test_decompose_keeps_parent_open(wb: Workboard) -> None:
    """Seed: preserves parent child links when decomposition leaves the parent open"""
    parent = wb.create("Parent", status="triage")
    wb.add_link(parent.id, type="relates_to", url="https://example.com/context")
    result = wb.decompose(parent.id, [{"title": "Child"}], summary="Split and keep parent open.",
                          complete_parent=False)
    assert result.parent.status == "todo"
    kinds = {(link["type"], link.get("url") or link.get("target_card_id")) for link in links(result.parent)}
    assert kinds == {("relates_to", "https://example.com/context"), ("child", result.children[0].id)}
    assert result.parent.metadata["automation"]["summary"] == "Split and keep parent open."
    assert result.parent.events[-1]["kind"] == "decomposed"
    done = wb.complete(parent.id, created_card_ids=[c.id for c in result.children], summary="Children recorded.")
    assert done.status == "done"


def test_decompose_omits_overlong_derived_keys(wb: Workboard) -> None:
    """Seed: omits derived child idempotency keys when the parent key is already at the limit"""
    parent = wb.create("Parent", idempotency_key="p" * 160)
    result = wb.decompose(parent.id, [{"title": "Child"}])
    assert "idempotency_key" not in result.children[0].metadata["automation"]


def test_decompose_links_existing_idempotent_child(wb: Workboard) -> None:
    """Seed: links an idempotent existing child before completing decomposition"""
    existing = wb.create("Existing child", idempotency_key="child-key")
    parent = wb.create("Parent")
    result = wb.decompose(parent.id, [{"title": "Ignored duplicate", "idempotency_key": "child-key"}])
    assert result.parent.status == "done"
    assert [c.id for c in result.children] == [existing.id]
    assert result.children[0].title == "Existing child"
    assert result.parent.metadata["automation"]["created_card_ids"] == [existing.id]
    child = wb.get(existing.id)
    assert child is not None
    assert any(link["type"] == "parent" and link["target_card_id"] == parent.id for link in links(child))


# ---- beyond the seed ----


def test_decompose_notifies_completion_through_the_log(wb: Workboard) -> None:
    parent = wb.create("Parent", board_id="ops")
    sub = wb.subscribe_notifications(card_id=parent.id, target="t")
    wb.decompose(parent.id, [{"title": "A"}, {"title": "B", "board_id": "other", "tenant": "t1"}], summary="Split.")
    events = wb.advance_notification_events(sub.id).events
    assert [(e.kind, e.message) for e in events] == [("completed", "Split.")]
    other = next(c for c in wb.list() if c.title == "B")
    assert other.board_id == "other" and other.metadata["automation"]["tenant"] == "t1"


def test_children_wait_for_the_parent(wb: Workboard) -> None:
    parent = wb.create("Parent")
    result = wb.decompose(parent.id, [{"title": "Child", "status": "running"}], complete_parent=False)
    assert result.children[0].status == "todo"
    with pytest.raises(InvalidStateError, match="dependencies"):
        wb.move(result.children[0].id, "ready")


def test_failed_parent_completion_rolls_back_everything(tmp_path: Path) -> None:
    db = tmp_path / "plan.sqlite"
    wb = Workboard(db)
    grandparent = wb.create("Grandparent")
    parent = wb.create("Parent", parents=[grandparent.id])
    before = db_snapshot(db)
    with pytest.raises(InvalidStateError, match="card dependencies are not done"):
        wb.decompose(parent.id, [{"title": "A"}, {"title": "B"}])
    assert db_snapshot(db) == before


def test_claimed_parent_needs_the_claim(tmp_path: Path) -> None:
    db = tmp_path / "plan.sqlite"
    wb = Workboard(db)
    parent = wb.create("Parent", status="ready")
    claim = wb.claim(parent.id, owner_id="main", token="tok", ttl_seconds=60)
    before = db_snapshot(db)
    with pytest.raises(ConflictError, match="claimed by main"):
        wb.decompose(parent.id, [{"title": "A"}], owner_id="other")
    with pytest.raises(ConflictError, match="claimed by main"):
        wb.specify(parent.id, owner_id="other", title="x")
    assert db_snapshot(db) == before
    result = wb.decompose(parent.id, [{"title": "A"}], token=claim.token)
    assert result.parent.status == "done" and result.parent.metadata.get("claim") is None


@pytest.mark.parametrize(
    ("children", "kwargs", "error", "match"),
    [
        ([], {}, ValidationError, "children are required"),
        ([{"title": f"c{i}"} for i in range(21)], {}, ValidationError, "at most 20 children"),
        (["not a dict"], {}, ValidationError, "children must be objects"),
        ([{"title": "ok"}, {"title": "x", "parents": ["p"]}], {}, ValidationError, 'child has no field "parents"'),
        ([{"title": "ok", "bogus": 1}], {}, ValidationError, 'child has no field "bogus"'),
        ([{"title": "ok"}], {"summary": "s" * 2001}, ValidationError, "decompose summary must be 2000"),
        ([{"title": "t" * 181}], {}, ValidationError, "title must be 180"),
        ([{"title": "ok", "status": "later"}], {}, ValidationError, "status must be one of"),
    ],
)
def test_bad_decompose_changes_nothing(
    tmp_path: Path, children: Any, kwargs: dict[str, Any], error: type, match: str
) -> None:
    db = tmp_path / "plan.sqlite"
    wb = Workboard(db)
    parent = wb.create("Parent")
    before = db_snapshot(db)
    with pytest.raises(error, match=match):
        wb.decompose(parent.id, children, **kwargs)
    assert db_snapshot(db) == before


def test_bad_specify_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "plan.sqlite"
    wb = Workboard(db)
    card = wb.create("Rough", status="triage")
    before = db_snapshot(db)
    with pytest.raises(ValidationError, match="spec summary must be 2000"):
        wb.specify(card.id, summary="s" * 2001)
    with pytest.raises(ValidationError, match='specify input has no field "parents"'):
        wb.specify(card.id, parents=["x"])
    with pytest.raises(ValidationError, match="status must be one of"):
        wb.specify(card.id, status="later")
    with pytest.raises(NotFoundError, match="card not found: missing"):
        wb.specify("missing", title="x")
    with pytest.raises(NotFoundError, match="card not found: missing"):
        wb.decompose("missing", [{"title": "x"}])
    assert db_snapshot(db) == before


_child = st.one_of(
    st.fixed_dictionaries({"title": st.text(max_size=200)}),
    st.fixed_dictionaries({"notes": st.text(max_size=5)}),
    st.fixed_dictionaries({"title": st.text(min_size=1, max_size=20), "idempotency_key": st.sampled_from(["k1", "k2"])}),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(children=st.lists(_child, max_size=22), complete=st.booleans())
def test_decompose_is_all_or_nothing(tmp_path: Path, children: list[dict[str, Any]], complete: bool) -> None:
    db = tmp_path / f"h{uuid.uuid4().hex}.sqlite"
    wb = Workboard(db)
    parent = wb.create("Parent", status="triage")
    wb.create("Reusable", idempotency_key="k1")
    before = db_snapshot(db)
    try:
        result = wb.decompose(parent.id, children, complete_parent=complete)
    except (ValidationError, InvalidStateError):
        assert db_snapshot(db) == before
        return
    assert result.parent.status == ("done" if complete else "todo")
    for child in result.children:
        assert parent.id in [link["target_card_id"] for link in links(child) if link["type"] == "parent"]
    child_links = {link["target_card_id"] for link in links(result.parent) if link["type"] == "child"}
    assert child_links == {c.id for c in result.children}
