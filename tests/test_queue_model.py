"""Model-based (stateful) test of the per-conversation queue.

A hypothesis ``RuleBasedStateMachine`` drives a real ``Factory`` (file database,
``ManualClock``) with enqueue / claim (pooled and sticky workers) / heartbeat /
complete / ``complete(claim_next=True)`` / fail / clock moves / lease recovery /
calls by stale owners (also right after their message was re-issued to another
worker), and keeps a pure-Python model of what the queue and the worker rows
must contain: which message each claim returns, attempts, backoff, lease ends,
worker load, heartbeat and sticky assignment. After every step the database is compared with the model;
at the end every run is drained and every message must be ``done`` (completed
exactly once) or ``dead_letter``.

The model follows the documented rules of the core:

- a claim first recovers expired leases (each expiry is a failed attempt: retry
  with backoff, or dead letter at ``max_attempts``), then takes the ready
  conversation head with the highest priority, then the oldest;
- within a conversation, strict FIFO: the head is the oldest pending message, a
  retried message keeps its place;
- a conversation assigned to another active sticky worker with a fresh heartbeat
  is skipped; sticky workers take the conversation they claim, pooled ones do not;
- heartbeat / complete / fail are fenced by ``(worker, lease)``; an expired lease
  cannot be extended but may still be completed or failed until recovery.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agent_factory import (
    Claim,
    Config,
    ConflictError,
    Factory,
    FailOutcome,
    LeaseConfig,
    ManualClock,
    RetryPolicy,
    retry_delay_ms,
)
from agent_factory.testing import EPOCH_2026_MS

AGENT = "bot"
CONVERSATIONS = ("conv-a", "conv-b", "conv-c", "conv-d")
WORKERS = {"pool-1": "pooled", "sticky-1": "sticky", "sticky-2": "sticky"}
DRAINER = "drainer"
LEASE_MS = 10_000
BOOKKEEPING_INTERVAL_MS = 1000  # claim.rs: a busy pooled worker's row is rewritten at most once a second
STALE_AFTER_MS = 20_000
MAX_ATTEMPTS = 3
RETRY = RetryPolicy(max_attempts=MAX_ATTEMPTS, base_delay_ms=100, max_delay_ms=1000)
CONFIG = Config(lease=LeaseConfig(lease_ms=LEASE_MS, stale_after_ms=STALE_AFTER_MS), retry=RETRY)
LEASE_EXPIRED = "Lease expired while processing"
STATUSES = ("queued", "processing", "done", "dead_letter")


def payload(n: int) -> dict[str, object]:
    return {"provider": "telegram", "providerUserId": "u", "messageText": f"message {n}"}


def expected_delay(attempts: int, now: int) -> int:
    """Backoff after ``attempts`` failures; the jitter itself comes from the core's
    pure function, but it must stay inside the documented bounds."""
    bounded = min(RETRY.max_delay_ms, max(RETRY.base_delay_ms, RETRY.base_delay_ms * RETRY.backoff_factor ** (attempts - 1)))
    delay = retry_delay_ms(attempts, now, dataclasses.asdict(RETRY))
    assert bounded <= delay <= bounded * (1 + RETRY.jitter_ratio), (attempts, delay, bounded)
    return delay


@dataclass
class MMessage:
    key: int
    mid: str
    conv: str
    priority: int
    scheduled_for: int
    ready_at: int
    status: str = "queued"
    attempts: int = 0
    next_retry_at: int | None = None
    lease_id: str | None = None
    lease_expires_at: int | None = None
    claimed_by: str | None = None
    finished_at: int | None = None
    last_error: str | None = None
    completions: int = 0


@dataclass
class MWorker:
    mode: str
    registered: bool = False
    heartbeat_at: int = 0
    last_claim_at: int | None = None
    load: int = 0
    assignment: str | None = None


@dataclass
class Model:
    messages: dict[str, MMessage] = field(default_factory=dict)
    workers: dict[str, MWorker] = field(default_factory=dict)

    def in_conv(self, conv: str) -> list[MMessage]:
        return sorted((m for m in self.messages.values() if m.conv == conv), key=lambda m: m.key)

    def head(self, conv: str) -> MMessage | None:
        queued = [m for m in self.in_conv(conv) if m.status == "queued"]
        return min(queued, key=lambda m: (m.scheduled_for, m.key)) if queued else None

    def busy(self, conv: str) -> bool:
        return any(m.status == "processing" for m in self.in_conv(conv))

    def release_load(self, worker_id: str, now: int, refresh: bool, clear_for: str | None) -> None:
        w = self.workers[worker_id]
        old = w.load
        w.load = max(0, old - 1)
        if refresh:
            w.heartbeat_at = max(w.heartbeat_at, now)
        if old - 1 <= 0 and clear_for is not None and w.assignment == clear_for:
            w.assignment = None

    def retry_or_bury(self, m: MMessage, error: str, now: int) -> FailOutcome:
        m.attempts += 1
        m.last_error = error
        m.lease_id = None
        m.lease_expires_at = None
        if m.attempts >= MAX_ATTEMPTS:
            m.status = "dead_letter"
            m.finished_at = now
            m.next_retry_at = None
            return FailOutcome(requeued=False, dead_lettered=True, next_scheduled_for=None)
        retry_at = now + expected_delay(m.attempts, now)
        m.status = "queued"
        m.next_retry_at = retry_at
        m.ready_at = max(m.scheduled_for, retry_at)
        return FailOutcome(requeued=True, dead_lettered=False, next_scheduled_for=retry_at)

    def recover(self, now: int, limit: int) -> tuple[int, int, int]:
        expired = sorted(
            (m for m in self.messages.values() if m.status == "processing" and m.lease_expires_at <= now),
            key=lambda m: m.lease_expires_at,
        )
        # Ties in expiry order are not specified; only take them all at once.
        assert len(expired) <= limit, "model only recovers whole batches"
        requeued = dead = 0
        for m in expired:
            holder = m.claimed_by
            out = self.retry_or_bury(m, LEASE_EXPIRED, now)
            requeued += out.requeued
            dead += out.dead_lettered
            assert holder is not None
            self.release_load(holder, now, refresh=False, clear_for=m.conv)
        return requeued, dead, len(expired)

    def owned_elsewhere(self, conv: str, worker_id: str, now: int) -> bool:
        return any(
            wid != worker_id and w.registered and w.assignment == conv and w.heartbeat_at > now - STALE_AFTER_MS
            for wid, w in self.workers.items()
        )

    def predict_claim(self, worker_id: str, now: int) -> MMessage | None:
        """Mutates recovery state, returns the message that must be claimed (not yet applied)."""
        recovered = self.recover(now, 16)[2]
        if recovered:
            event("inline recovery", recovered)
        w = self.workers[worker_id]
        target = w.assignment if w.registered else None
        best: tuple[tuple[int, int, int], MMessage] | None = None
        for conv in CONVERSATIONS:
            if target is not None and conv != target:
                continue
            if self.busy(conv):
                continue
            h = self.head(conv)
            if h is None or h.ready_at > now:
                continue
            if self.owned_elsewhere(conv, worker_id, now):
                event("skipped a conversation owned by a fresh sticky worker")
                continue
            rank = (-h.priority, h.scheduled_for, h.key)
            if best is None or rank < best[0]:
                best = (rank, h)
        if best is None:
            if w.registered:
                w.heartbeat_at = max(w.heartbeat_at, now)
            return None
        return best[1]


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="af-model-"))
        self.clock = ManualClock(EPOCH_2026_MS)
        self.f = Factory(self.tmp / "model.db", config=CONFIG, clock=self.clock)
        self.model = Model(workers={w: MWorker(mode) for w, mode in {**WORKERS, DRAINER: "pooled"}.items()})
        self.issued: list[Claim] = []
        self.claimed_order: dict[str, list[int]] = {c: [] for c in CONVERSATIONS}
        self.broken = False
        self.counter = 0

    # --- helpers -------------------------------------------------------------

    @contextlib.contextmanager
    def _step(self) -> Iterator[None]:
        """Mark the run broken when a step fails, so teardown does not drain on top of it."""
        try:
            yield
        except BaseException:
            self.broken = True
            raise

    def now(self) -> int:
        return self.clock.now_ms()

    def handle(self, worker_id: str):
        return self.f.worker(worker_id, mode=self.model.workers[worker_id].mode)  # type: ignore[arg-type]

    def live(self) -> list[Claim]:
        out = []
        for c in self.issued:
            m = self.model.messages[c.message_id]
            if m.status == "processing" and m.lease_id == c.lease_id:
                out.append(c)
        return out

    def stale(self) -> list[Claim]:
        live = {c.lease_id for c in self.live()}
        return [c for c in self.issued if c.lease_id not in live]

    def do_claim(self, worker_id: str, via: Callable[[], Claim | None] | None = None) -> Claim | None:
        """Claim for ``worker_id`` (or through ``via``, e.g. ``complete(claim_next=True)``)
        and check the result against the model."""
        now = self.now()
        expected = self.model.predict_claim(worker_id, now)
        got = via() if via is not None else self.handle(worker_id).claim()
        if expected is None:
            assert got is None, f"{worker_id} claimed {got} but nothing was claimable"
            return None
        assert got is not None, f"{worker_id} claimed nothing, expected message {expected.mid}"
        assert got.message_id == expected.mid, (got, expected)
        assert got.conversation_id == expected.conv
        assert got.worker_id == worker_id
        assert got.attempt == expected.attempts + 1
        assert got.priority == expected.priority
        assert got.lease_expires_at == now + LEASE_MS
        assert got.lease_id not in {c.lease_id for c in self.issued}, "lease id reused"
        # strict FIFO: everything enqueued earlier in this conversation is finished
        for j in self.f.queue.list_conversation_jobs(got.conversation_id, limit=500):
            if int(j.message_id) < int(got.message_id):
                assert j.status in ("done", "dead_letter"), f"{got.message_id} claimed before earlier {j}"
        done_before = [k for k in self.claimed_order[got.conversation_id] if self.model.messages[str(k)].status == "done"]
        assert all(int(got.message_id) > k for k in done_before), "claim went back behind a completed message"
        self.claimed_order[got.conversation_id].append(int(got.message_id))
        # apply to the model
        w = self.model.workers[worker_id]
        if not w.registered:
            w.registered = True
            w.heartbeat_at = now
            w.load = 0
            w.assignment = None
        expected.status = "processing"
        expected.claimed_by = worker_id
        expected.lease_id = got.lease_id
        expected.lease_expires_at = now + LEASE_MS
        w.load += 1
        w.heartbeat_at = max(w.heartbeat_at, now)
        w.last_claim_at = now
        if w.mode == "sticky" or w.assignment is not None:
            w.assignment = expected.conv
        self.issued.append(got)
        return got

    def model_complete(self, claim: Claim, now: int) -> bool:
        m = self.model.messages[claim.message_id]
        held = m.status == "processing" and m.lease_id == claim.lease_id and m.claimed_by == claim.worker_id
        if held:
            m.status = "done"
            m.finished_at = now
            m.lease_id = None
            m.lease_expires_at = None
            m.last_error = None
            m.next_retry_at = None
            m.completions += 1
            self.model.release_load(claim.worker_id, now, refresh=True, clear_for=None)
        return held

    def do_complete(self, claim: Claim) -> bool:
        held = self.model_complete(claim, self.now())
        ok = self.handle(claim.worker_id).complete(claim)
        assert ok is held, (claim, self.model.messages[claim.message_id])
        return ok

    def do_release(self, limit: int = 100) -> None:
        expected = self.model.recover(self.now(), limit)
        out = self.f.queue.release_stuck_jobs(limit=limit)
        assert (out.requeued, out.dead_lettered, out.unlocked) == expected
        if out.unlocked:
            event("release_stuck_jobs recovered", out.unlocked)

    # --- rules ---------------------------------------------------------------

    @initialize(batch=st.lists(st.tuples(st.sampled_from(CONVERSATIONS), st.integers(0, 3)), min_size=1, max_size=12))
    def setup(self, batch: list[tuple[str, int]]) -> None:
        with self._step():
            self.f.agents.upsert_agent(AGENT)
            now = self.now()
            items = []
            for conv, priority in batch:
                self.counter += 1
                items.append(
                    {"conversation_id": conv, "agent_key": AGENT, "payload": payload(self.counter), "priority": priority}
                )
            ids = self.f.queue.enqueue_many(items)
            assert len(ids) == len(batch) and [int(i) for i in ids] == sorted(int(i) for i in ids)
            for mid, (conv, priority) in zip(ids, batch, strict=True):
                self.model.messages[mid] = MMessage(
                    key=int(mid), mid=mid, conv=conv, priority=priority, scheduled_for=now, ready_at=now
                )

    @rule(conv=st.sampled_from(CONVERSATIONS), priority=st.integers(0, 3))
    def enqueue(self, conv: str, priority: int) -> None:
        with self._step():
            now = self.now()
            self.counter += 1
            mid = self.f.queue.enqueue(conv, AGENT, payload(self.counter), priority=priority)
            assert mid not in self.model.messages
            assert all(int(mid) > m.key for m in self.model.messages.values()), "ids must grow"
            self.model.messages[mid] = MMessage(
                key=int(mid), mid=mid, conv=conv, priority=priority, scheduled_for=now, ready_at=now
            )

    @rule(worker_id=st.sampled_from(sorted(w for w, mode in WORKERS.items() if mode == "pooled")))
    def claim_pooled(self, worker_id: str) -> None:
        with self._step():
            got = self.do_claim(worker_id)
            event("pooled claim", "none" if got is None else f"attempt {got.attempt}")

    @rule(worker_id=st.sampled_from(sorted(w for w, mode in WORKERS.items() if mode == "sticky")))
    def claim_sticky(self, worker_id: str) -> None:
        with self._step():
            got = self.do_claim(worker_id)
            event("sticky claim", "none" if got is None else f"attempt {got.attempt}")

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        with self._step():
            claim = data.draw(st.sampled_from(self.live()), label="claim")
            now = self.now()
            m = self.model.messages[claim.message_id]
            expect = m.lease_expires_at > now  # an expired lease cannot be extended
            assert self.handle(claim.worker_id).heartbeat(claim) is expect
            if expect:
                m.lease_expires_at = now + LEASE_MS
                w = self.model.workers[claim.worker_id]
                w.heartbeat_at = max(w.heartbeat_at, now)
                if w.mode == "sticky":
                    w.assignment = m.conv

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        with self._step():
            claim = data.draw(st.sampled_from(self.live()), label="claim")
            assert self.do_complete(claim) is True

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def complete_and_claim_next(self, data: st.DataObject) -> None:
        """``complete(claim_next=True)``: completion and the next claim in one transaction."""
        with self._step():
            claim = data.draw(st.sampled_from(self.live()), label="claim")
            now = self.now()
            w = self.model.workers[claim.worker_id]
            # A pooled worker whose row is under a second old is not rewritten
            # when its load does not change (BOOKKEEPING_INTERVAL_MS).
            def fresh(t: int | None) -> bool:
                return t is not None and t <= now and now - t < BOOKKEEPING_INTERVAL_MS

            quiet = w.mode == "pooled" and w.assignment is None and fresh(w.heartbeat_at) and fresh(w.last_claim_at)
            before = (w.heartbeat_at, w.last_claim_at)
            assert self.model_complete(claim, now) is True
            got = self.do_claim(claim.worker_id, via=lambda: self.handle(claim.worker_id).complete(claim, claim_next=True))
            if got is not None and quiet:
                w.heartbeat_at, w.last_claim_at = before
                event("complete and claim next", "worker row not rewritten")
            event("complete and claim next", "none" if got is None else "claimed")

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        with self._step():
            claim = data.draw(st.sampled_from(self.live()), label="claim")
            now = self.now()
            m = self.model.messages[claim.message_id]
            out = self.handle(claim.worker_id).fail(claim, "boom")
            expected = self.model.retry_or_bury(m, "boom", now)
            self.model.release_load(claim.worker_id, now, refresh=True, clear_for=None)
            assert out == expected
            event("fail", "dead letter" if out.dead_lettered else "requeued")

    @rule(
        ms=st.one_of(
            st.integers(1, 600),
            st.sampled_from([LEASE_MS, STALE_AFTER_MS]),  # exactly on the boundaries
            st.integers(LEASE_MS - 50, LEASE_MS + 50),
            st.integers(STALE_AFTER_MS, STALE_AFTER_MS + 1000),
        )
    )
    def advance(self, ms: int) -> None:
        with self._step():
            self.clock.advance(ms)

    @rule()
    def release_stuck_jobs(self) -> None:
        with self._step():
            self.do_release()

    @precondition(lambda self: bool(self.stale()))
    @rule(data=st.data(), op=st.sampled_from(["heartbeat", "complete", "complete_next", "fail"]))
    def stale_owner(self, data: st.DataObject, op: str) -> None:
        with self._step():
            claim = data.draw(st.sampled_from(self.stale()), label="stale claim")
            m = self.model.messages[claim.message_id]
            event("stale owner", f"{op} on a {m.status} message")
            self.check_stale_call(claim, op)

    @precondition(lambda self: bool(self.live()))
    @rule(data=st.data(), op=st.sampled_from(["heartbeat", "complete", "complete_next", "fail"]))
    def takeover_then_stale_owner(self, data: st.DataObject, op: str) -> None:
        """The holder goes silent, its lease expires and is recovered, the message is
        handed to another worker; then the old holder wakes up and reports."""
        with self._step():
            old = data.draw(st.sampled_from(self.live()), label="claim")
            m = self.model.messages[old.message_id]
            self.clock.advance(max(0, m.lease_expires_at - self.now()))
            self.do_release()
            self.clock.advance(2 * RETRY.max_delay_ms)  # past any backoff
            new = None
            for _ in range(len(CONVERSATIONS)):
                got = self.do_claim(DRAINER)
                if got is None or got.message_id == old.message_id:
                    new = got
                    break
            if new is None:
                event("takeover", "not re-issued" if m.status != "dead_letter" else "dead-lettered by the expiry")
                self.check_stale_call(old, op)
                return
            event("takeover", "re-issued")
            assert new.lease_id != old.lease_id and new.attempt == old.attempt + 1
            self.check_stale_call(old, op)
            assert self.handle(DRAINER).heartbeat(new) is True  # the new lease is intact
            m.lease_expires_at = self.now() + LEASE_MS
            self.model.workers[DRAINER].heartbeat_at = max(self.model.workers[DRAINER].heartbeat_at, self.now())

    def check_stale_call(self, claim: Claim, op: str) -> None:
        before = self.f.queue.get_job(claim.message_id)
        worker_before = self.f.workers.get(claim.worker_id)
        h = self.handle(claim.worker_id)
        if op == "heartbeat":
            assert h.heartbeat(claim) is False
        elif op == "complete":
            assert h.complete(claim) is False
        elif op == "complete_next":
            with pytest.raises(ConflictError):
                h.complete(claim, claim_next=True)  # fenced off: nothing is completed or claimed
        else:
            assert h.fail(claim, "late") == FailOutcome(requeued=False, dead_lettered=False, next_scheduled_for=None)
        assert self.f.queue.get_job(claim.message_id) == before, "a stale owner changed the message"
        assert self.f.workers.get(claim.worker_id) == worker_before, "a stale owner changed its worker row"

    # --- invariants ----------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        with self._step():
            now = self.now()
            seen: dict[str, str] = {}
            for status in STATUSES:
                for j in self.f.queue.list_jobs(status, limit=10_000):
                    assert j.message_id not in seen, f"message {j.message_id} listed twice"
                    seen[j.message_id] = status
                    m = self.model.messages.get(j.message_id)
                    assert m is not None, f"unknown message {j}"
                    got = (j.status, j.attempts, j.conversation_id, j.priority)
                    assert got == (m.status, m.attempts, m.conv, m.priority), (j, m)
                    assert j.last_error == m.last_error, (j, m)
                    if status == "processing":
                        assert (j.claimed_by, j.lease_expires_at) == (m.claimed_by, m.lease_expires_at), (j, m)
                    else:
                        assert j.lease_expires_at is None, j
                    if status == "queued":
                        assert j.next_retry_at == m.next_retry_at, (j, m)
                    if status in ("done", "dead_letter"):
                        assert j.finished_at == m.finished_at, (j, m)
            assert set(seen) == set(self.model.messages), "messages lost or invented"
            by_status = {s: sum(1 for m in self.model.messages.values() if m.status == s) for s in STATUSES}
            assert {s: sum(1 for v in seen.values() if v == s) for s in STATUSES} == by_status
            stats = self.f.queue.stats()
            queued = [m for m in self.model.messages.values() if m.status == "queued"]
            assert stats.processing == by_status["processing"]
            assert stats.dead_letter == by_status["dead_letter"]
            assert stats.queued_ready == sum(1 for m in queued if m.ready_at <= now)
            assert stats.queued_delayed == sum(1 for m in queued if m.ready_at > now)

    @invariant()
    def one_in_flight_per_conversation_and_one_lease_per_message(self) -> None:
        with self._step():
            processing = self.f.queue.list_jobs("processing", limit=10_000)
            convs = [j.conversation_id for j in processing]
            assert len(convs) == len(set(convs)), f"two messages in flight in one conversation: {processing}"
            live = self.live()
            held = [c.message_id for c in live]
            assert len(held) == len(set(held)), "a message is held by two leases"
            assert sorted(held) == sorted(j.message_id for j in processing)
            for conv in CONVERSATIONS:
                view = self.f.queue.conversation(conv)
                if view is None:
                    continue
                holder = [c.worker_id for c in live if c.conversation_id == conv]
                assert view.locked_by == (holder[0] if holder else None), (conv, view.locked_by, holder)
                assert (view.state == "busy") == bool(holder), (conv, view.state)

    @invariant()
    def workers_match_model(self) -> None:
        with self._step():
            live = self.live()
            for wid, mw in self.model.workers.items():
                row = self.f.workers.get(wid)
                if not mw.registered:
                    assert row is None
                    continue
                assert row is not None
                assert row.mode == mw.mode
                assert row.load == mw.load == sum(1 for c in live if c.worker_id == wid), (wid, row, mw)
                assert row.heartbeat_at == mw.heartbeat_at, (wid, row, mw)
                assert row.last_claim_at == mw.last_claim_at, (wid, row, mw)
                assert (row.assignment.conversation_id if row.assignment else None) == mw.assignment, (wid, row, mw)

    # --- final drain -----------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.broken:
                self.drain()
        finally:
            del self.f
            shutil.rmtree(self.tmp, ignore_errors=True)

    def drain(self) -> None:
        for _ in range(4 * MAX_ATTEMPTS * max(1, len(self.model.messages)) + 10):
            if all(m.status in ("done", "dead_letter") for m in self.model.messages.values()):
                break
            # past every lease, every backoff and every sticky owner's staleness
            self.clock.advance(STALE_AFTER_MS + LEASE_MS)
            self.do_release()
            while (claim := self.do_claim(DRAINER)) is not None:
                assert self.do_complete(claim) is True
            self.database_matches_model()
        self.database_matches_model()
        self.one_in_flight_per_conversation_and_one_lease_per_message()
        final = {s: self.f.queue.list_jobs(s, limit=10_000) for s in STATUSES}
        assert final["queued"] == [] and final["processing"] == [], "messages left behind after the drain"
        ids = [j.message_id for j in final["done"] + final["dead_letter"]]
        assert sorted(ids) == sorted(self.model.messages), "a message was lost"
        for j in final["done"]:
            assert self.model.messages[j.message_id].completions == 1, f"{j.message_id} completed more than once"
        for j in final["dead_letter"]:
            m = self.model.messages[j.message_id]
            assert m.completions == 0 and j.attempts == MAX_ATTEMPTS, (j, m)
        # per conversation, completions follow enqueue order (finished_at is monotone in id)
        for conv in CONVERSATIONS:
            done = sorted((m for m in self.model.messages.values() if m.conv == conv), key=lambda m: m.key)
            finished = [m.finished_at for m in done]
            assert finished == sorted(finished), (conv, [(m.key, m.status, m.finished_at) for m in done])


QueueMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestQueueModel = QueueMachine.TestCase
