"""Stateful (model-based) test of the workboard: random sequences of create (with
random parents), link_cards, claim, heartbeat, release_claim, complete, block, move,
dispatch, promote_ready and delete on a file-backed :class:`Workboard` driven by a
:class:`ManualClock`, with these invariants checked after every step:

- the dependency graph (the cards' ``parent`` links) is acyclic, every parent link
  has its paired ``child`` link and no link points at a deleted card;
- the holds of spec §5.1-5.3: a card that entered ``ready`` / ``running`` /
  ``review`` / ``done`` in a step has every parent ``done``, and one that entered
  ``ready`` / ``running`` / ``review`` is not scheduled for later; after a dispatch
  or promote pass no unclaimed ``ready`` card has an unfinished parent;
- a claim has one owner and one token, lives on an existing card, and the indexed
  claim columns agree with the card's document; a claim we hold is never silently
  taken over by another worker before it expired;
- every status change appears exactly once in the notification log: a board
  subscription with the ``status`` kind is advanced after every step and, per card,
  its events chain from the status observed before the step to the one after;
- every error is typed (ValidationError / NotFoundError / ConflictError /
  InvalidStateError) and leaves the database byte-for-byte unchanged.

A fresh database file per example; ``derandomize=True`` keeps CI deterministic.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agent_factory import ManualClock, Workboard
from agent_factory.errors import ConflictError, InvalidStateError, NotFoundError, ValidationError
from agent_factory.testing import EPOCH_2026_MS
from helpers import db_snapshot

TYPED_ERRORS = (ValidationError, NotFoundError, ConflictError, InvalidStateError)
STATUSES = ("triage", "backlog", "todo", "scheduled", "ready", "running", "review", "blocked", "done")
RUNNABLE = frozenset({"ready", "running", "review", "done"})
SCHEDULE_HELD = frozenset({"ready", "running", "review"})
OWNERS = ("w1", "w2")
MISSING_ID = "00000000-0000-4000-8000-000000000000"



def db_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class WorkboardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="wb-stateful-"))
        self.path = self.dir / "wb.db"
        self.clock = ManualClock(EPOCH_2026_MS)
        self.wb = Workboard(self.path, clock=self.clock)
        self.sub = self.wb.subscribe_notifications(board_id="default", target="stateful", event_kinds=["status"])
        # Model: every id ever created (deleted ones stay, to exercise NotFoundError).
        self.ids: list[str] = []
        self.deleted: set[str] = set()
        self.status: dict[str, str] = {}  # live card -> status observed after the last step
        self.held: dict[str, tuple[str, str, int]] = {}  # card -> (owner, token, expires_at) we were granted
        self.seqs: list[int] = []
        self.last_op = "init"

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- helpers ----

    def _call(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one operation; an error must be typed and leave the database unchanged."""
        self.last_op = name
        before = db_snapshot(self.path)
        try:
            return fn()
        except TYPED_ERRORS as exc:
            after = db_snapshot(self.path)
            changed = [t for t in before if before[t] != after.get(t)]
            assert not changed, f"{name} raised {exc!r} but changed tables {changed}"
            return exc
        except Exception as exc:  # pragma: no cover - reported as a failure
            raise AssertionError(f"{name} raised an untyped {type(exc).__name__}: {exc}") from exc

    def _pick(self, data: st.DataObject) -> str:
        """A live card most of the time; sometimes a deleted or never-existing id."""
        live = self._live()
        if live and data.draw(st.integers(0, 9)) > 0:
            return data.draw(st.sampled_from(live))
        return data.draw(st.sampled_from([*sorted(self.deleted), MISSING_ID]))

    def _live(self) -> list[str]:
        return [i for i in self.ids if i not in self.deleted]

    def _cards(self) -> dict[str, Any]:
        return {c.id: c for c in self.wb.list()}

    # ---- rules ----

    @initialize(n=st.integers(1, 4))
    def seed_cards(self, n: int) -> None:
        for k in range(n):
            self.ids.append(self._call("create(seed)", lambda k=k: self.wb.create(f"seed {k}")).id)

    @rule(data=st.data(), status=st.sampled_from((None, *STATUSES)), scheduled=st.booleans(),
          n_parents=st.integers(0, 3))
    def create(self, data: st.DataObject, status: str | None, scheduled: bool, n_parents: int) -> None:
        live = self._live()
        parents = data.draw(st.lists(st.sampled_from(live), max_size=n_parents, unique=True)) if live else []
        if data.draw(st.booleans()) and n_parents and self.deleted:
            parents.append(data.draw(st.sampled_from(sorted(self.deleted))))
        kwargs: dict[str, Any] = {}
        if status is not None:
            kwargs["status"] = status
        if scheduled and data.draw(st.integers(0, 4)) == 0:
            kwargs["scheduled_at"] = self.clock.now_ms() + 10_000
        result = self._call(f"create(status={status}, parents={parents}, {kwargs})",
                            lambda: self.wb.create(f"card {len(self.ids)}", parents=parents or None, **kwargs))
        if not isinstance(result, Exception):
            self.ids.append(result.id)

    @rule(data=st.data())
    def link_cards(self, data: st.DataObject) -> None:
        parent = self._pick(data)
        live = [i for i in self._live() if i != parent]
        child = data.draw(st.sampled_from(live)) if live and data.draw(st.integers(0, 9)) > 0 else self._pick(data)
        self._call(f"link_cards({parent}, {child})", lambda: self.wb.link_cards(parent, child))

    @rule(data=st.data(), owner=st.sampled_from(OWNERS), ttl=st.sampled_from((None, 1.0, 60.0)))
    def claim(self, data: st.DataObject, owner: str, ttl: float | None) -> None:
        card = self._pick(data)
        now = self.clock.now_ms()
        prior = self.held.get(card)
        result = self._call(f"claim({card}, {owner}, ttl={ttl})", lambda: self.wb.claim(card, owner, ttl_seconds=ttl))
        if isinstance(result, Exception):
            return
        # A live claim of another owner is never taken over.
        if prior is not None and prior[0] != owner and now < prior[2]:  # active iff expires_at > now (§6)
            still = self.wb.get(card)
            raise AssertionError(f"claim by {owner} took over {prior[0]}'s live claim on {card}: {still}")
        claim = result.card.claim
        assert claim is not None and claim["owner_id"] == owner and claim["token"] == result.token, claim
        self.held[card] = (owner, claim["token"], claim["expires_at"])

    @rule(data=st.data(), by_token=st.booleans())
    def heartbeat(self, data: st.DataObject, by_token: bool) -> None:
        card = self._pick(data)
        owner, token, _ = self.held.get(card, (data.draw(st.sampled_from(OWNERS)), "not-a-token", 0))
        kwargs = {"token": token} if by_token else {"owner_id": owner}
        result = self._call(f"heartbeat({card}, {kwargs})", lambda: self.wb.heartbeat(card, **kwargs))
        if not isinstance(result, Exception) and result.claim is not None:
            c = result.claim
            self.held[card] = (c["owner_id"], c["token"], c["expires_at"])

    @rule(data=st.data(), status=st.sampled_from((None, "todo", "ready", "review", "done", "blocked")))
    def release_claim(self, data: st.DataObject, status: str | None) -> None:
        card = self._pick(data)
        owner = self.held.get(card, (data.draw(st.sampled_from(OWNERS)),))[0]
        self._call(f"release_claim({card}, {owner}, status={status})",
                   lambda: self.wb.release_claim(card, owner_id=owner, status=status))

    @rule(data=st.data(), as_worker=st.booleans())
    def complete(self, data: st.DataObject, as_worker: bool) -> None:
        card = self._pick(data)
        kwargs: dict[str, Any] = {}
        if as_worker:
            kwargs["owner_id"] = self.held.get(card, (data.draw(st.sampled_from(OWNERS)),))[0]
        self._call(f"complete({card}, {kwargs})", lambda: self.wb.complete(card, summary="done", **kwargs))

    @rule(data=st.data())
    def block(self, data: st.DataObject) -> None:
        card = self._pick(data)
        self._call(f"block({card})", lambda: self.wb.block(card, "stuck"))

    @rule(data=st.data(), status=st.sampled_from(STATUSES))
    def move(self, data: st.DataObject, status: str) -> None:
        card = self._pick(data)
        self._call(f"move({card}, {status})", lambda: self.wb.move(card, status))

    @rule()
    def dispatch(self) -> None:
        self._call("dispatch()", self.wb.dispatch)
        self._check_no_stale_ready()

    @rule()
    def promote_ready(self) -> None:
        self._call("promote_ready()", self.wb.promote_ready)
        self._check_no_stale_ready()

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        card = self._pick(data)
        result = self._call(f"delete({card})", lambda: self.wb.delete(card))
        if result is True:
            self.deleted.add(card)
            self.held.pop(card, None)
        else:
            assert result is False and card not in self.status, f"delete({card}) -> {result!r}"

    @rule(ms=st.sampled_from((500, 5_000, 60_000, 400_000)))
    def tick(self, ms: int) -> None:
        self.last_op = f"tick({ms})"
        self.clock.advance(ms)

    # ---- invariants ----

    def _check_no_stale_ready(self) -> None:
        cards = self._cards()
        for c in cards.values():
            if c.status == "ready" and c.claim is None and not (c.metadata or {}).get("archived_at"):
                bad = [p for p in c.parent_ids if cards[p].status != "done"]
                assert not bad, f"after {self.last_op}: ready card {c.id} has unfinished parents {bad}"

    @invariant()
    def dependency_graph_is_acyclic_and_paired(self) -> None:
        cards = self._cards()
        assert set(cards) == {i for i in self.ids if i not in self.deleted}, "card set differs from the model"
        for c in cards.values():
            links = (c.metadata or {}).get("links") or []
            for p in c.parent_ids:
                assert p in cards, f"after {self.last_op}: {c.id} has a parent link to missing card {p}"
                back = (cards[p].metadata or {}).get("links") or []
                assert any(link.get("type") == "child" and link.get("target_card_id") == c.id for link in back), \
                    f"after {self.last_op}: parent {p} lacks the child link to {c.id}"
            for link in links:
                if link.get("type") == "child":
                    assert link["target_card_id"] in cards, f"after {self.last_op}: {c.id} has a child link to a missing card"
        # Iterative DFS with colours.
        colour: dict[str, int] = {}
        for start in cards:
            if colour.get(start):
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            colour[start] = 1
            while stack:
                node, i = stack.pop()
                parents = cards[node].parent_ids
                if i < len(parents):
                    stack.append((node, i + 1))
                    nxt = parents[i]
                    state = colour.get(nxt, 0)
                    assert state != 1, f"after {self.last_op}: dependency cycle through {nxt}"
                    if state == 0:
                        colour[nxt] = 1
                        stack.append((nxt, 0))
                else:
                    colour[node] = 2

    @invariant()
    def counters_and_open_parents_match_the_cards(self) -> None:
        """The trigger-kept stats counters and open-parent counts agree with the cards."""
        cards = self._cards()
        stats = self.wb.stats()
        by_status: dict[str, int] = {}
        for c in cards.values():
            by_status[c.status] = by_status.get(c.status, 0) + 1
        assert stats.total == len(cards) and stats.by_status == by_status, \
            f"after {self.last_op}: stats {stats.by_status} != cards {by_status}"
        for card_id, open_parents in db_rows(self.path, "SELECT id, open_parents FROM workboard_cards"):
            expect = sum(1 for p in cards[card_id].parent_ids if p not in cards or cards[p].status != "done")
            assert open_parents == expect, f"after {self.last_op}: {card_id} open_parents {open_parents} != {expect}"

    @invariant()
    def holds_and_claims_and_log(self) -> None:
        cards = self._cards()
        now = self.clock.now_ms()
        sched = dict(db_rows(self.path, "SELECT id, scheduled_at FROM workboard_cards"))
        # Holds: a card that entered a runnable status in this step has every parent done.
        for c in cards.values():
            before = self.status.get(c.id)
            if c.status != before and c.status in RUNNABLE:
                bad = [p for p in c.parent_ids if cards[p].status != "done"]
                assert not bad, (f"after {self.last_op}: card {c.id} went {before} -> {c.status} "
                                 f"with unfinished parents {bad}")
            if c.status != before and c.status in SCHEDULE_HELD and sched.get(c.id) is not None:
                assert sched[c.id] <= now, (f"after {self.last_op}: card {c.id} went {before} -> {c.status} "
                                            f"while scheduled for {sched[c.id]} > {now}")
        # Claims: one owner + token on an existing card; indexed columns agree with the doc.
        rows = db_rows(self.path, "SELECT id, claim_owner, claim_token, claim_expires_at FROM workboard_cards")
        for card_id, owner, token, expires in rows:
            claim = cards[card_id].claim
            if claim is None:
                assert (owner, token, expires) == (None, None, None), f"claim columns without a claim on {card_id}"
            else:
                assert isinstance(claim["owner_id"], str) and claim["owner_id"], claim
                assert isinstance(claim["token"], str) and claim["token"], claim
                assert (owner, token, expires) == (claim["owner_id"], claim["token"], claim["expires_at"]), \
                    f"after {self.last_op}: claim columns {owner, token, expires} != document {claim}"
        for card_id in list(self.held):
            claim = cards[card_id].claim if card_id in cards else None
            if claim is None or claim["token"] != self.held[card_id][1]:
                del self.held[card_id]  # released / completed / blocked / expired
        # Notification log: each status change exactly once, chained per card.
        events = []
        while True:
            batch = self.wb.advance_notification_events(self.sub.id, limit=200).events
            if not batch:
                break
            events.extend(batch)
        per_card: dict[str, list[Any]] = {}
        for e in events:
            assert e.kind == "status", e
            assert not self.seqs or e.sequence > self.seqs[-1], f"sequence went back: {e.sequence} after {self.seqs[-1]}"
            self.seqs.append(e.sequence)
            per_card.setdefault(e.card_id, []).append(e)
        for card_id in set(per_card) | set(cards) | set(self.status):
            chain = per_card.get(card_id, [])
            before = self.status.get(card_id)
            after = cards[card_id].status if card_id in cards else None
            cur = before
            for e in chain:
                assert e.from_status == cur, (f"after {self.last_op}: event {e.from_status}->{e.to_status} on "
                                              f"{card_id} but the card was {cur}")
                assert e.from_status != e.to_status, f"no-op status event on {card_id}: {e}"
                cur = e.to_status
            if card_id in cards:
                assert cur == after, (f"after {self.last_op}: card {card_id} is {after} but the log says {cur} "
                                      f"(events {[(e.from_status, e.to_status) for e in chain]})")
        self.status = {i: c.status for i, c in cards.items()}


WorkboardMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestWorkboardStateful = WorkboardMachine.TestCase
