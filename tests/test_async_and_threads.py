"""Cancellation of awaited calls, many threads on one factory, and several
factories on one file in one process.

- A cancelled ``await`` does not cancel the work in the core: a cancelled claim
  may have committed. Its lease then simply expires, is recovered, and the
  message is delivered again; nothing is lost or completed twice.
- Threads share one blocking ``Factory``: every message is processed exactly once
  and a conversation never has two messages in flight.
- ``Factory`` objects opened on the same file in one process share one writer.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from agent_factory import AsyncFactory, Claim, Config, Factory, LeaseConfig, ManualClock, RetryPolicy

AGENT = "bot"
LEASE_MS = 10_000
CONFIG = Config(
    lease=LeaseConfig(lease_ms=LEASE_MS, stale_after_ms=20_000),
    retry=RetryPolicy(max_attempts=3, base_delay_ms=100, max_delay_ms=1000),
)


def items(n: int, n_conversations: int) -> list[dict[str, object]]:
    return [
        {
            "conversation_id": f"conv-{i % n_conversations:02d}",
            "agent_key": AGENT,
            "payload": {"provider": "telegram", "providerUserId": "u", "messageText": f"m{i}"},
        }
        for i in range(n)
    ]


async def settle(af: AsyncFactory) -> None:
    """Let work whose awaiting task was cancelled finish in the background:
    wait until the set of in-flight messages stops changing."""
    last = None
    for _ in range(50):
        now = sorted(j.message_id for j in await af.queue.list_jobs("processing", limit=10_000))
        if now == last:
            return
        last = now
        await asyncio.sleep(0.05)


async def drain(af: AsyncFactory, clock: ManualClock, worker_id: str, completions: Counter[str], claims: Counter[str]) -> None:
    """Move past every lease and backoff, recover, and claim/complete until nothing is left."""
    w = af.worker(worker_id, mode="pooled")
    for _ in range(20):
        s = await af.queue.stats()
        if s.queued_ready + s.queued_delayed + s.processing == 0:
            return
        clock.advance(LEASE_MS + 1_000)
        await af.queue.release_stuck_jobs()
        while (c := await w.claim()) is not None:
            claims[c.message_id] += 1
            assert await w.complete(c) is True
            completions[c.message_id] += 1
    pytest.fail("the queue did not drain")


async def test_cancelled_claims_lose_nothing_and_complete_nothing_twice(factory_path: Path, manual_clock: ManualClock) -> None:
    af = AsyncFactory(factory_path, config=CONFIG, clock=manual_clock)
    await af.agents.upsert_agent(AGENT)
    ids = await af.queue.enqueue_many(items(80, 40))
    w = af.worker("canceller", mode="pooled")
    completions: Counter[str] = Counter()
    claims: Counter[str] = Counter()
    cancelled = 0
    for i in range(48):
        if i % 6 == 5:
            # cancelled by a timeout before the call is even dispatched
            try:
                c = await asyncio.wait_for(w.claim(), timeout=0)
            except TimeoutError:
                cancelled += 1
                continue
        else:
            task = asyncio.ensure_future(w.claim())
            if i % 6 == 4:
                await asyncio.sleep(0.005)  # usually finished by now: the cancel comes too late
            for _ in range(i % 6 if i % 6 < 4 else 0):  # 0 yields: never started; 1-3: dispatched, then cancelled
                await asyncio.sleep(0)
            task.cancel()
            try:
                c = await task
            except asyncio.CancelledError:
                cancelled += 1
                continue
        # the claim finished before the cancellation landed: it is ours to settle
        if c is not None:
            claims[c.message_id] += 1
            assert await w.complete(c) is True
            completions[c.message_id] += 1
    assert cancelled > 0
    await settle(af)
    # claims that committed although their await was cancelled: held by nobody who knows
    orphaned = {j.message_id for j in await af.queue.list_jobs("processing", limit=10_000)}
    assert orphaned, "expected some cancelled claims to have committed"
    assert not orphaned & set(completions)
    for mid in orphaned:
        job = await af.queue.get_job(mid)
        assert job is not None and job.claimed_by == "canceller" and job.status == "processing"
    # a conversation whose message is orphaned is blocked until the lease expires
    assert len({(await af.queue.get_job(m)).conversation_id for m in orphaned}) == len(orphaned)  # type: ignore[union-attr]

    await drain(af, manual_clock, "drainer", completions, claims)

    done = await af.queue.list_jobs("done", limit=10_000)
    assert sorted(j.message_id for j in done) == sorted(ids), "a message was lost"
    assert await af.queue.list_jobs("dead_letter", limit=10_000) == []
    assert all(n == 1 for n in completions.values()) and set(completions) == set(ids)
    assert all(n == 1 for n in claims.values()), "a message we saw was delivered twice"
    for j in done:
        # an orphaned claim's lease expired once: one failed attempt, then redelivered
        assert j.attempts == (1 if j.message_id in orphaned else 0), j
        if j.message_id in orphaned:
            assert j.claimed_by == "drainer"


async def test_cancelled_complete_ends_done_exactly_once(factory_path: Path, manual_clock: ManualClock) -> None:
    af = AsyncFactory(factory_path, config=CONFIG, clock=manual_clock)
    await af.agents.upsert_agent(AGENT)
    ids = await af.queue.enqueue_many(items(24, 24))  # one message per conversation
    w = af.worker("w", mode="pooled")
    completions: Counter[str] = Counter()
    claims: Counter[str] = Counter()
    interrupted: list[Claim] = []
    for i in range(len(ids)):
        c = await w.claim()
        assert c is not None
        claims[c.message_id] += 1
        task = asyncio.ensure_future(w.complete(c))
        for _ in range(i % 3):  # 0 yields: never sent; 1-2: sent, then cancelled
            await asyncio.sleep(0)
        task.cancel()
        try:
            ok = await task
        except asyncio.CancelledError:
            interrupted.append(c)
        else:
            assert ok is True
            completions[c.message_id] += 1
    assert interrupted
    await settle(af)
    committed = set()
    for c in interrupted:
        job = await af.queue.get_job(c.message_id)
        assert job is not None and job.status in ("done", "processing"), job
        if job.status == "done":
            committed.add(c.message_id)
            completions[c.message_id] += 1  # the cancelled call did complete it
        else:
            # not committed: a second complete with the same lease still works...
            # ...but we leave it to expire to show redelivery instead
            assert job.claimed_by == "w"
    assert committed, "some cancelled completes were already sent and must have committed"
    assert len(committed) < len(interrupted), "some cancelled completes were never sent"

    await drain(af, manual_clock, "drainer", completions, claims)

    done = {j.message_id: j for j in await af.queue.list_jobs("done", limit=10_000)}
    assert sorted(done) == sorted(ids)
    assert all(n == 1 for n in completions.values()) and set(completions) == set(ids)
    redelivered = {c.message_id for c in interrupted} - committed
    for mid in ids:
        assert claims[mid] == (2 if mid in redelivered else 1), mid
        assert done[mid].attempts == (1 if mid in redelivered else 0)
    # an old claim of a committed complete cannot complete again
    for c in interrupted:
        assert await w.complete(c) is False


def test_threads_share_one_factory(factory: Factory) -> None:
    n_threads, n_messages, n_conversations = 8, 400, 40
    factory.agents.upsert_agent(AGENT)
    msgs = items(n_messages, n_conversations)
    ids = factory.queue.enqueue_many(msgs)
    enqueue_order: dict[str, list[str]] = defaultdict(list)
    for mid, m in zip(ids, msgs, strict=True):
        enqueue_order[str(m["conversation_id"])].append(mid)

    lock = threading.Lock()
    in_flight: set[str] = set()
    claimed_order: dict[str, list[str]] = defaultdict(list)
    completions: Counter[str] = Counter()
    per_thread: Counter[str] = Counter()
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)
    deadline = time.monotonic() + 60

    def run(worker_id: str) -> None:
        try:
            w = factory.worker(worker_id, mode="pooled")
            start.wait()
            while time.monotonic() < deadline:
                c = w.claim()
                if c is None:
                    s = factory.queue.stats()
                    if s.queued_ready + s.queued_delayed + s.processing == 0:
                        return
                    time.sleep(0.0005)
                    continue
                with lock:
                    assert c.conversation_id not in in_flight, f"two messages of {c.conversation_id} in flight"
                    in_flight.add(c.conversation_id)
                    claimed_order[c.conversation_id].append(c.message_id)
                time.sleep(0.0002)
                with lock:
                    # unmark before completing: after complete another thread may take the next one
                    in_flight.remove(c.conversation_id)
                assert w.complete(c) is True, f"lost lease on {c.message_id}"
                with lock:
                    completions[c.message_id] += 1
                    per_thread[worker_id] += 1
            raise AssertionError("deadline passed")
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(f"thread-{i}",)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert [m for m, n in completions.items() if n > 1] == [], "a message was processed twice"
    assert set(completions) == set(ids), "a message was lost"
    assert sorted(j.message_id for j in factory.queue.list_jobs("done", limit=10_000)) == sorted(ids)
    assert dict(claimed_order) == dict(enqueue_order), "FIFO per conversation broken"
    assert len(per_thread) >= 2, f"work was not shared: {per_thread}"
    for j in factory.queue.list_jobs("done", limit=10_000):
        assert j.attempts == 0


def test_two_factories_on_one_file_share_one_writer(factory_path: Path, manual_clock: ManualClock) -> None:
    f1 = Factory(factory_path, config=CONFIG, clock=manual_clock)
    f2 = Factory(factory_path, config=CONFIG, clock=manual_clock, durable=True)
    i1, i2 = f1.info(), f2.info()
    assert i1["path"] == i2["path"] == str(factory_path.resolve())
    assert i1["journal_mode"] == i2["journal_mode"]
    # opening the second handle durable switched the one shared connection
    assert i1["durable"] is True and i2["durable"] is True

    f1.agents.upsert_agent(AGENT)
    ids = f1.queue.enqueue_many(items(100, 20))
    assert f2.queue.get_job(ids[-1]) is not None  # a write through f1 is visible to f2 at once

    done: dict[str, Counter[str]] = {"f1": Counter(), "f2": Counter()}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(name: str, f: Factory) -> None:
        try:
            w = f.worker(f"worker-{name}", mode="pooled")
            barrier.wait()
            for _ in range(10_000):
                c = w.claim()
                if c is None:
                    s = f.queue.stats()
                    if s.queued_ready + s.queued_delayed + s.processing == 0:
                        return
                    time.sleep(0.0005)
                    continue
                time.sleep(0.0002)
                assert w.complete(c) is True
                done[name][c.message_id] += 1
            raise AssertionError("did not drain")
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=("f1", f1)), threading.Thread(target=run, args=("f2", f2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert done["f1"] and done["f2"], f"both handles must make progress: {len(done['f1'])}, {len(done['f2'])}"
    total = done["f1"] + done["f2"]
    assert set(total) == set(ids) and all(n == 1 for n in total.values())
    jobs = {j.message_id: j for j in f2.queue.list_jobs("done", limit=10_000)}
    assert sorted(jobs) == sorted(ids)
    for name, counter in done.items():
        for mid in counter:
            assert jobs[mid].claimed_by == f"worker-{name}"


_SHORT_ASYNC_PROGRAM = """
import asyncio, sys
import agent_factory as af

async def main():
    f = af.AsyncFactory(sys.argv[1])
    for _ in range(3):
        await f.queue.stats()

asyncio.run(main())
"""


def test_short_asyncio_programs_exit_cleanly(tmp_path: Path) -> None:
    """A pool thread handing the last result back must not hold or retake the GIL
    while the interpreter finalizes (it used to abort such programs now and then)."""
    failures = []
    for round_ in range(15):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SHORT_ASYNC_PROGRAM, str(tmp_path / f"exit-{round_}-{i}.db")],
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(3)
        ]
        for p in procs:
            _, err = p.communicate(timeout=60)
            if p.returncode != 0:
                failures.append((p.returncode, err[-500:]))
    assert failures == []
