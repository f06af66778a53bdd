"""The whole system on one machine: what ``agent-factory demo`` runs by default.

A fresh database, a demo agent and messages over many conversations, sent in
waves. The pool's control loop (``factory.pool.control_loop``, the loop of
``agent-factory serve``) spawns one worker *process* per active conversation
with the local provider, at most ``workers`` at a time; each runs ``python -m
agent_factory worker`` with :func:`demo_handler`. Workers that run out of work
drain (capacity reclaim, or the idle timeout), upload a final snapshot of their
data directory and stop; the pool then removes their process and data
directory. The next wave reaches conversations whose workers are gone, so new
workers restore the snapshots and carry on.

Afterwards everything is checked from the database and the snapshots alone:

- every message is ``done`` (nothing lost or dead-lettered);
- the latest snapshot of each conversation holds the handler's log of *every*
  done message of the conversation, each once and in enqueue order — so order,
  exactly-once handling and snapshot continuity across workers are proven by
  the files the workers left, not by what the demo remembers;
- every worker that handled a message left a ready snapshot; every worker row
  is ``stopped``, the provider lists no machine or volume and no worker process
  is alive.

:class:`PoolDemo` is the driver; ``PoolDemo.run`` returns a
:class:`PoolDemoResult`. Interrupted (Ctrl-C), it drains and tears down every
worker before returning, and kills what would not stop.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._sync_api import ControlLoop, Factory
from .config import LocalProvider, ScalingPolicy, default_worker_command
from .errors import AgentFactoryError, InvalidStateError, ValidationError
from .worker import JobContext, echo_handler

__all__ = [
    "DEMO_AGENT",
    "HANDLED_LOG",
    "demo_handler",
    "kill_worker_processes",
    "DemoProgress",
    "PoolDemo",
    "PoolDemoResult",
]

#: The agent the demo's conversations belong to.
DEMO_AGENT = "demo-agent"
#: Where :func:`demo_handler` records the messages it handled, inside the data directory.
HANDLED_LOG = "demo/handled.tsv"
_WORKSPACE = "default"
_RUNNING = ("active", "draining", "stopping")


def demo_handler(ctx: JobContext) -> str:
    """The handler of ``agent-factory demo``: :func:`~agent_factory.worker.echo_handler`,
    then one line in ``<data_dir>/demo/handled.tsv`` per message (tab-separated:
    message id, attempt, worker id, process id, claim time in ms). The file travels
    with the conversation through snapshots, so the demo can check order,
    exactly-once handling and continuity across workers from the final snapshots,
    and measure claim-to-complete latency. Replies ``"echo: <text> (#<n> in this
    workspace)"``, ``n`` counting the lines already there plus this one."""
    reply = echo_handler(ctx)
    lease_ms = ctx.factory.config.tunables().lease.lease_ms
    claimed_at = ctx.claim.lease_expires_at - lease_ms
    path = ctx.data_dir / HANDLED_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        f.seek(0)
        before = sum(1 for _ in f)
        f.write(f"{ctx.message_id}\t{ctx.claim.attempt}\t{ctx.claim.worker_id}\t{os.getpid()}\t{claimed_at}\n")
    return f"{reply} (#{before + 1} in this workspace)"


def latency_percentile(latencies_ms: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``latencies_ms``; 0 when there are none."""
    if not latencies_ms:
        return 0.0
    ordered = sorted(latencies_ms)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class DemoProgress:
    """What the demo reports after each pool cycle."""

    wave: int
    waves: int
    enqueued: int
    total: int
    done: int
    running: int
    spawned: int
    stopped: int
    snapshots: int
    stopping: bool = False


@dataclass
class PoolDemoResult:
    """What the pool demo measured and checked. ``problems`` lists every failed
    check; the run is ``ok`` when there are none."""

    messages: int
    conversations: int
    waves: int
    max_workers: int
    idle_timeout_ms: int
    done: int = 0
    dead_letter: int = 0
    duplicates: int = 0
    retried: int = 0
    order_violations: int = 0
    missing_from_snapshots: int = 0
    workers_spawned: int = 0
    workers_stopped: int = 0
    workers_left_running: int = 0
    stop_reasons: dict[str, int] = field(default_factory=dict)
    snapshots_taken: int = 0
    snapshots_failed: int = 0
    snapshots_missing: int = 0
    restores_verified: int = 0
    restores_expected: int = 0
    enqueue_seconds: float = 0.0
    processing_seconds: float = 0.0
    total_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    per_worker: dict[str, int] = field(default_factory=dict)
    pool_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """No check failed and the run was not interrupted."""
        return not self.problems and not self.interrupted

    def percentile(self, q: float) -> float:
        """The ``q`` quantile of the claim-to-complete latencies (0 when there are none)."""
        return latency_percentile(self.latencies_ms, q)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "mode": "pool",
            "messages": self.messages,
            "conversations": self.conversations,
            "waves": self.waves,
            "max_workers": self.max_workers,
            "idle_timeout_ms": self.idle_timeout_ms,
            "done": self.done,
            "dead_letter": self.dead_letter,
            "duplicates": self.duplicates,
            "retried": self.retried,
            "order_violations": self.order_violations,
            "missing_from_snapshots": self.missing_from_snapshots,
            "order_verified": self.done == self.messages
            and self.order_violations == 0
            and self.duplicates == 0
            and self.missing_from_snapshots == 0,
            "workers_spawned": self.workers_spawned,
            "workers_stopped": self.workers_stopped,
            "workers_left_running": self.workers_left_running,
            "stop_reasons": dict(sorted(self.stop_reasons.items())),
            "snapshots_taken": self.snapshots_taken,
            "snapshots_failed": self.snapshots_failed,
            "snapshots_missing": self.snapshots_missing,
            "restores_verified": self.restores_verified,
            "restores_expected": self.restores_expected,
            "enqueue_seconds": round(self.enqueue_seconds, 4),
            "processing_seconds": round(self.processing_seconds, 4),
            "total_seconds": round(self.total_seconds, 4),
            "enqueue_per_second": round(self.messages / self.enqueue_seconds) if self.enqueue_seconds else None,
            "drain_per_second": round(self.done / self.processing_seconds) if self.processing_seconds else None,
            "claim_to_complete_p50_ms": round(self.percentile(0.50), 3),
            "claim_to_complete_p99_ms": round(self.percentile(0.99), 3),
            "per_worker": self.per_worker,
            "pool_errors": self.pool_errors,
            "problems": self.problems,
            "interrupted": self.interrupted,
            "ok": self.ok,
        }


def _process_is_worker(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) agent-factory worker process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return False
    return state not in ("Z", "X") and b"agent_factory" in cmdline and b"worker" in cmdline


def python_worker_pool(
    *,
    handler: str,
    max_workers: int,
    poll_interval_ms: int,
    idle_timeout_ms: int,
    drain_timeout_ms: int,
    reconcile_interval_ms: int,
    stop_grace_ms: int,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[LocalProvider, ScalingPolicy]:
    """The local provider and scaling policy of a pool of ``agent-factory worker``
    processes running ``handler`` (the demo's and the ``local_pool`` fixture's): this
    interpreter's worker command, every seat spawned in one step."""
    provider = LocalProvider(
        command=[*default_worker_command(), "--poll-interval-ms", str(poll_interval_ms)],
        handler=handler,
        env=env,
        cwd=cwd,
        stop_grace_ms=stop_grace_ms,
    )
    scaling = ScalingPolicy(
        max_workers=max_workers,
        spawn_step=max_workers,
        idle_timeout_ms=idle_timeout_ms,
        drain_timeout_ms=drain_timeout_ms,
        reconcile_interval_ms=reconcile_interval_ms,
    )
    return provider, scaling


def kill_worker_processes(data_root: str | os.PathLike[str]) -> int:
    """SIGKILL the process group of every live worker process the local provider
    recorded under ``data_root`` (``machines/<id>.json``: pid and process start
    time; a pid reused by another process is left alone). Returns how many were
    alive. A last resort for leftovers: the pool's teardown is the normal way."""
    killed = 0
    for record_path in sorted(Path(data_root, "machines").glob("*.json")):
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            pid, start = int(record["pid"]), record.get("start_time")
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            state, started = fields[0], int(fields[19])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
        if state in ("Z", "X") or (start is not None and started != start):
            continue  # already dead, or the pid now belongs to another process
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        killed += 1
    return killed


class PoolDemo:
    """Drives one pool demo on ``factory`` (which must be a fresh database file).

    ``messages`` go to ``conversations`` conversations in ``waves`` waves; the pool
    keeps at most ``workers`` worker processes; an idle worker drains after
    ``idle_timeout_ms``. ``tick_ms`` is the pause between control-loop ticks
    (the loop reconciles and checks idle workers at least every
    ``check_interval_ms``) and ``timeout_s`` bounds the whole run (a check fails
    when it passes). ``on_progress`` gets a :class:`DemoProgress` after every tick.
    ``handler`` (``module:function``) and ``env`` change what the workers run: the
    checks read :data:`HANDLED_LOG`, so a handler should wrap :func:`demo_handler`.
    """

    def __init__(
        self,
        factory: Factory,
        *,
        messages: int,
        conversations: int,
        workers: int,
        waves: int = 2,
        idle_timeout_ms: int = 5_000,
        poll_interval_ms: int = 250,
        tick_ms: int = 200,
        check_interval_ms: int = 500,
        drain_timeout_ms: int = 10_000,
        stop_grace_ms: int = 5_000,
        timeout_s: float = 180.0,
        on_progress: Callable[[DemoProgress], None] | None = None,
        handler: str = "agent_factory.demo:demo_handler",
        env: dict[str, str] | None = None,
    ) -> None:
        for name, value in (
            ("messages", messages),
            ("conversations", conversations),
            ("workers", workers),
            ("waves", waves),
            ("idle_timeout_ms", idle_timeout_ms),
            ("poll_interval_ms", poll_interval_ms),
            ("tick_ms", tick_ms),
            ("check_interval_ms", check_interval_ms),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a positive integer, got {value!r}")
        db = factory.info()["path"]
        if not db:
            raise ValidationError("the pool demo needs a database file (worker processes open it)")
        self.factory = factory
        self.db_path = Path(db)
        self.data_root = Path(f"{db}.workers")
        self.messages = messages
        self.conversations = min(conversations, messages)
        self.workers = workers
        self.waves = min(waves, math.ceil(messages / self.conversations))
        self.idle_timeout_ms = idle_timeout_ms
        self.tick_s = tick_ms / 1000
        self.check_interval_ms = check_interval_ms
        self.timeout_s = timeout_s
        self.on_progress = on_progress
        self.provider, self.scaling = python_worker_pool(
            handler=handler,
            max_workers=workers,
            poll_interval_ms=poll_interval_ms,
            idle_timeout_ms=idle_timeout_ms,
            drain_timeout_ms=drain_timeout_ms,
            reconcile_interval_ms=check_interval_ms,
            stop_grace_ms=stop_grace_ms,
            env=env,
        )
        self.result = PoolDemoResult(
            messages=messages,
            conversations=self.conversations,
            waves=self.waves,
            max_workers=workers,
            idle_timeout_ms=idle_timeout_ms,
        )
        self._ids: dict[str, list[str]] = defaultdict(list)  # conversation -> message ids in enqueue order
        self._waves_of: dict[str, set[int]] = defaultdict(set)  # conversation -> waves with a message for it
        self._snapshots_of: dict[str, int] = {}  # stopped worker -> its ready snapshots
        self._enqueued = 0
        self._spawned: set[str] = set()
        self._errors: Counter[str] = Counter()
        self._deadline = 0.0
        self._loop: ControlLoop | None = None

    # ------------------------------------------------------------------ the run

    def run(self) -> PoolDemoResult:
        """Run every wave, stop every worker, then check everything (see the module docs)."""
        r = self.result
        started = time.monotonic()
        self._deadline = started + self.timeout_s
        self.factory.agents.upsert_agent(DEMO_AGENT, version="1.0.0", secrets_ref=[])
        items = [self._item(i) for i in range(self.messages)]
        bounds = [round(w * self.messages / self.waves) for w in range(self.waves + 1)]
        try:
            loop = self.factory.pool.control_loop(
                provider=self.provider,
                scaling=self.scaling,
                idle_check_interval_ms=self.check_interval_ms,
            )
            with loop:  # the lease is released however the run ends
                self._loop = loop
                for wave in range(self.waves):
                    wave_started = time.monotonic()
                    self._enqueue(items[bounds[wave] : bounds[wave + 1]], wave)
                    r.enqueue_seconds += time.monotonic() - wave_started
                    self._tick_until(wave, self._settled)
                    r.processing_seconds += time.monotonic() - wave_started
                    # Idle workers drain, snapshot and stop before the next wave comes.
                    self._tick_until(wave, lambda: self._running() == 0)
        except KeyboardInterrupt:
            r.interrupted = True
        except TimeoutError as e:
            r.problems.append(str(e))
        finally:
            self._loop = None
            if r.interrupted or self._running():
                self.shutdown("interrupted" if r.interrupted else "demo_failed")
        r.total_seconds = time.monotonic() - started
        self._verify()
        r.pool_errors = [f"{msg} (x{n})" if n > 1 else msg for msg, n in self._errors.items()]
        return r

    def _item(self, i: int) -> dict[str, Any]:
        conversation, seq = i % self.conversations, i // self.conversations
        return {
            "conversation_id": f"demo:conversation:{conversation}",
            "agent_key": DEMO_AGENT,
            "payload": {
                "provider": "demo",
                "providerUserId": f"user-{conversation}",
                "messageText": f"message {seq} of conversation {conversation}",
                "metadata": {"seq": str(seq)},
            },
        }

    def _enqueue(self, items: list[dict[str, Any]], wave: int, batch: int = 500) -> None:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            for item, message_id in zip(chunk, self.factory.queue.enqueue_many(chunk), strict=True):
                self._ids[item["conversation_id"]].append(message_id)
                self._waves_of[item["conversation_id"]].add(wave)
            self._enqueued += len(chunk)

    def _settled(self) -> bool:
        s = self.factory.queue.stats()
        return s.queued_ready + s.queued_delayed + s.processing == 0

    def _running(self) -> int:
        by_status = self.factory.workers.stats().by_status
        return sum(by_status.get(status, 0) for status in _RUNNING)

    def _tick(self) -> None:
        """One control-loop tick; failed steps are recorded (the loop retries them)."""
        assert self._loop is not None
        report = self._loop.tick()
        for cycle in (report.reconcile, report.idle_shutdown):
            if cycle is not None:
                self._spawned.update(cycle.spawned_worker_ids)
        for error in report.errors:
            self._errors[error] += 1

    def _idle_cycle(self) -> None:
        """One idle-shutdown cycle (drain, teardown; never a spawn), outside the loop."""
        try:
            report = self.factory.pool.check_idle_shutdowns(provider=self.provider, scaling=self.scaling)
        except AgentFactoryError as e:
            self._errors[f"{type(e).__name__}: {e}"] += 1
            return
        for error in report.errors:
            self._errors[error] += 1

    def _tick_until(self, wave: int, done: Callable[[], bool]) -> None:
        while True:
            self._tick()
            self._report(wave)
            if done():
                return
            if time.monotonic() > self._deadline:
                raise TimeoutError(f"the demo did not finish within {self.timeout_s:g} s (wave {wave + 1})")
            time.sleep(self.tick_s)

    def _report(self, wave: int, *, stopping: bool = False) -> None:
        if self.on_progress is None:
            return
        s = self.factory.queue.stats()
        rows = self.factory.workers.list(limit=100_000)
        self.on_progress(
            DemoProgress(
                wave=wave + 1,
                waves=self.waves,
                enqueued=self._enqueued,
                total=self.messages,
                done=self._enqueued - s.queued_ready - s.queued_delayed - s.processing - s.dead_letter,
                running=sum(1 for w in rows if w.status in _RUNNING),
                spawned=len(self._spawned),
                stopped=sum(1 for w in rows if w.status == "stopped"),
                snapshots=self._count_snapshots(rows),
                stopping=stopping,
            )
        )

    def _count_snapshots(self, rows: list[Any]) -> int:
        """Ready snapshots of the stopped workers (each worker is asked once)."""
        for w in rows:
            if w.status == "stopped" and w.worker_id not in self._snapshots_of:
                snapshots = self.factory.snapshots.list_for_worker(w.worker_id, limit=200)
                self._snapshots_of[w.worker_id] = sum(1 for s in snapshots if s.status == "ready")
        return sum(self._snapshots_of.values())

    # ------------------------------------------------------------------ stopping

    def shutdown(self, reason: str = "interrupted", timeout_s: float = 30.0) -> None:
        """Stop every worker: each active one drains with stop reason ``reason``
        (finishes its message, uploads its final snapshot, exits) and the pool tears
        it down. What is left after ``timeout_s`` (or after a second Ctrl-C) is
        killed, and the pool then tears down what the kills left behind."""
        try:
            for w in self.factory.workers.list(status="active", limit=100_000):
                try:
                    self.factory.workers.upsert_worker_state(
                        w.worker_id,
                        status="draining",
                        provider=w.provider,
                        load=w.load,
                        stop_reason=reason,
                        clear_last_snapshot_id=w.last_claim_at is not None,
                    )
                except InvalidStateError:
                    pass  # it moved on meanwhile; the pool takes it from there
            deadline = time.monotonic() + timeout_s
            while self._running() and time.monotonic() < deadline:
                self._idle_cycle()
                self._report(self.waves - 1, stopping=True)
                time.sleep(self.tick_s)
        except KeyboardInterrupt:
            pass
        finally:
            if self.kill_leftovers():
                deadline = time.monotonic() + 5
                try:
                    while self._running() and time.monotonic() < deadline:
                        self._idle_cycle()
                        time.sleep(self.tick_s)
                except KeyboardInterrupt:
                    pass  # the processes are gone; rows and directories stay for inspection

    def kill_leftovers(self) -> int:
        """Kill every worker process still recorded under this demo's data root."""
        return kill_worker_processes(self.data_root)

    # ------------------------------------------------------------------ checks

    def _verify(self) -> None:
        r = self.result
        f = self.factory
        # 1. The queue: every message done.
        attempts: dict[str, int] = {}
        finished: dict[str, int] = {}
        for ids in self._ids.values():
            for message_id in ids:
                job = f.queue.get_job(message_id)
                if job is None:
                    continue
                if job.status == "done":
                    r.done += 1
                    finished[message_id] = job.finished_at or 0
                elif job.status == "dead_letter":
                    r.dead_letter += 1
                attempts[message_id] = job.attempts
        if r.done != self.messages:
            r.problems.append(f"{self.messages - r.done} of {self.messages} messages not done ({r.dead_letter} dead-lettered)")

        # 2. The final snapshots: each conversation's log holds its done messages once, in order.
        per_worker: Counter[str] = Counter()
        pids: set[int] = set()
        with tempfile.TemporaryDirectory(prefix="verify-", dir=self.db_path.parent) as tmp:
            for n, (conversation, ids) in enumerate(sorted(self._ids.items())):
                done_ids = [message_id for message_id in ids if message_id in finished]
                target = Path(tmp) / str(n)
                restored = f.snapshots.restore_latest(_WORKSPACE, DEMO_AGENT, conversation, target)
                if restored is None:
                    if done_ids:
                        r.problems.append(f"{conversation}: no ready snapshot to verify")
                        r.missing_from_snapshots += len(done_ids)
                    continue
                log = target / HANDLED_LOG
                lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
                entries = [line.split("\t") for line in lines]
                seen = [e[0] for e in entries]
                position = {message_id: i for i, message_id in enumerate(ids)}
                r.duplicates += len(seen) - len(set(seen))
                r.missing_from_snapshots += len(set(done_ids) - set(seen))
                order = [position.get(message_id, -1) for message_id in seen]
                r.order_violations += sum(1 for a, b in itertools.pairwise(order) if b <= a)
                segments = [w for i, w in enumerate(e[2] for e in entries) if i == 0 or entries[i - 1][2] != w]
                r.restores_verified += max(0, len(segments) - 1)
                for message_id, attempt, worker_id, pid, claimed_at in entries:
                    per_worker[worker_id] += 1
                    pids.add(int(pid))
                    if int(attempt) > 1:
                        r.retried += 1
                    if message_id in finished:
                        r.latencies_ms.append(float(finished[message_id] - int(claimed_at)))
            # A message's recorded attempts count its failed ones (an expired lease included).
            r.retried = max(r.retried, sum(1 for a in attempts.values() if a > 0))
        r.per_worker = dict(sorted(per_worker.items()))
        if r.duplicates:
            r.problems.append(f"{r.duplicates} messages were handled more than once")
        if r.order_violations:
            r.problems.append(f"{r.order_violations} order violations within conversations")
        if r.missing_from_snapshots:
            r.problems.append(f"{r.missing_from_snapshots} handled messages are missing from the final snapshots")

        # 3. Workers: all stopped, each one that worked left a ready snapshot.
        rows = f.workers.list(limit=100_000)
        r.workers_spawned = len(self._spawned | {w.worker_id for w in rows})
        r.workers_stopped = sum(1 for w in rows if w.status == "stopped")
        r.stop_reasons = dict(Counter(w.stop_reason or "none" for w in rows if w.status == "stopped"))
        status = f.pool.status(provider=self.provider)
        alive = {pid for pid in pids if _process_is_worker(pid)}
        r.workers_left_running = max(
            sum(1 for w in rows if w.status in _RUNNING), len(status.machines), len(alive)
        )
        if r.workers_left_running:
            r.problems.append(
                f"{r.workers_left_running} workers left running ({len(status.machines)} machines listed, "
                f"{len(alive)} processes alive)"
            )
        if status.volumes:
            r.problems.append(f"{len(status.volumes)} worker data directories were not deleted")
        for w in rows:
            snapshots = f.snapshots.list_for_worker(w.worker_id, limit=200)
            r.snapshots_taken += sum(1 for s in snapshots if s.status == "ready")
            r.snapshots_failed += sum(1 for s in snapshots if s.status == "failed")
            if w.last_claim_at is not None and not any(s.status == "ready" for s in snapshots):
                r.snapshots_missing += 1
        if r.snapshots_missing:
            r.problems.append(f"{r.snapshots_missing} workers handled messages but left no ready snapshot")
        # Every wave after a conversation's first starts a new worker that must continue its log.
        r.restores_expected = sum(len(waves) - 1 for waves in self._waves_of.values())
        if r.restores_verified < r.restores_expected and not r.interrupted:
            r.problems.append(
                f"only {r.restores_verified} of {r.restores_expected} returning conversations continued from a restored snapshot"
            )


def summarize_per_worker(per_worker: dict[str, int]) -> str:
    """``"<n> workers, min/median/max <a>/<b>/<c>"`` for the human report."""
    counts = sorted(per_worker.values())
    if not counts:
        return "none"
    return f"{len(counts)} workers, min/median/max {counts[0]}/{statistics.median(counts):g}/{counts[-1]}"
