"""A local worker pool for tests: the helper behind the ``local_pool`` fixture.

:class:`LocalPool` owns one real-clock :class:`~agent_factory.Factory` on a
database file, the local provider (worker *processes* running
``python -m agent_factory worker`` with the test's handler) and a pool control
loop ticking in a background thread. A test enqueues, waits, and looks at the
results; :meth:`LocalPool.close` stops the loop, drains every worker (it
finishes its message, uploads its final snapshot and exits), lets the pool tear
them down, kills whatever would not stop and checks that no worker process is
left.

Worker processes need real time, so the pool never uses a manual clock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._control_types import TickReport
from ._sync_api import ControlLoop, Factory
from ._types import QueueStats
from ._types import Worker as WorkerRecord
from .config import LocalProvider, ScalingPolicy
from .demo import kill_worker_processes, python_worker_pool
from .errors import AgentFactoryError, InvalidStateError, ValidationError

__all__ = ["DEFAULT_TEST_AGENT", "LocalPool"]

#: The agent :meth:`LocalPool.enqueue` uses unless told otherwise.
DEFAULT_TEST_AGENT = "test-agent"
_RUNNING = ("active", "draining", "stopping")
_LOG_TAIL_LINES = 20


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    return value


def _positive_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValidationError(f"timeout must be a positive number of seconds, got {value!r}")
    return float(value)


class LocalPool:
    """A pool of local worker processes on ``db_path``, driven from a background thread.

    ``pythonpath`` entries are put in front of the workers' ``PYTHONPATH`` (so a
    handler module of the test project imports in the worker processes) and
    ``cwd`` is their working directory. Nothing runs until :meth:`start`.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        pythonpath: Sequence[str | os.PathLike[str]] = (),
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        #: A real-clock factory on the pool's database (enqueue and inspect through it).
        self.factory = Factory(self.db_path)
        #: Where the local provider keeps worker records, data directories and logs.
        self.data_root = Path(f"{self.db_path}.workers")
        self.pythonpath = [str(p) for p in pythonpath]
        self.cwd = str(cwd) if cwd is not None else None
        #: Every error a control-loop tick reported (the loop retries the failed step).
        self.errors: list[str] = []
        #: Ids of every worker the pool spawned.
        self.spawned: list[str] = []
        self.provider: LocalProvider | None = None
        self.scaling: ScalingPolicy | None = None
        self._loop: ControlLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self.running else "idle"
        return f"{type(self).__name__}(db_path={str(self.db_path)!r}, {state}, spawned={len(self.spawned)})"

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """Whether the control loop thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        handler: str,
        *,
        max_workers: int = 4,
        idle_timeout_ms: int = 60_000,
        tick_ms: int = 100,
        poll_interval_ms: int = 100,
        env: Mapping[str, str] | None = None,
        stop_grace_ms: int = 5_000,
        drain_timeout_ms: int = 30_000,
    ) -> None:
        """Start the control loop: it spawns up to ``max_workers`` worker processes,
        one per conversation with work, each running ``handler`` (``module:function``).

        Workers poll every ``poll_interval_ms`` and drain after ``idle_timeout_ms``
        without work (a new one is spawned when their conversation gets a message).
        ``env`` is added to every worker's environment; ``stop_grace_ms`` separates
        SIGTERM from SIGKILL when a worker is torn down. ``InvalidStateError`` when
        the pool is already running or closed."""
        if self._closed:
            raise InvalidStateError("the local pool is closed")
        if self.running:
            raise InvalidStateError("the local pool is already running; close() it before starting another")
        if not isinstance(handler, str) or handler.count(":") != 1 or not all(handler.split(":")):
            raise ValidationError(f"handler must look like 'module:function', got {handler!r}")
        for name, value in (
            ("max_workers", max_workers),
            ("idle_timeout_ms", idle_timeout_ms),
            ("tick_ms", tick_ms),
            ("poll_interval_ms", poll_interval_ms),
            ("stop_grace_ms", stop_grace_ms),
            ("drain_timeout_ms", drain_timeout_ms),
        ):
            _positive_int(name, value)
        worker_env = dict(env or {})
        inherited = worker_env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        worker_env["PYTHONPATH"] = os.pathsep.join([*self.pythonpath, *([inherited] if inherited else [])])
        self.provider, self.scaling = python_worker_pool(
            handler=handler,
            max_workers=max_workers,
            poll_interval_ms=poll_interval_ms,
            idle_timeout_ms=idle_timeout_ms,
            drain_timeout_ms=drain_timeout_ms,
            reconcile_interval_ms=max(tick_ms, 500),
            stop_grace_ms=stop_grace_ms,
            env=worker_env,
            cwd=self.cwd,
        )
        self._loop = self.factory.pool.control_loop(
            provider=self.provider, scaling=self.scaling, idle_check_interval_ms=max(tick_ms, 500)
        )
        self._stop.clear()
        self._failure = None
        self._thread = threading.Thread(
            target=self._run, args=(self._loop, tick_ms), name="agent-factory-local-pool", daemon=True
        )
        self._thread.start()

    def _run(self, loop: ControlLoop, tick_ms: int) -> None:
        try:
            loop.run(tick_ms=tick_ms, stop=self._stop, on_tick=self._on_tick)
        except BaseException as e:  # surfaced by wait_* and close()
            self._failure = e

    def _on_tick(self, report: TickReport) -> None:
        with self._lock:
            for cycle in (report.reconcile, report.idle_shutdown):
                if cycle is not None:
                    self.spawned.extend(cycle.spawned_worker_ids)
            self.errors.extend(report.errors)

    def stop_loop(self, timeout: float = 10.0) -> None:
        """Stop the control loop thread (workers keep running); the loop's lease is released."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(_positive_timeout(timeout))
        if self._thread.is_alive():
            raise TimeoutError(f"the local pool's control loop did not stop within {timeout:g} s")
        self._thread = None
        self._loop = None

    def close(self, timeout: float = 30.0) -> None:
        """Stop the loop, drain and tear down every worker, and make sure no worker
        process is left (what does not stop within ``timeout`` seconds is killed).
        Raises ``AssertionError`` when a worker process survives even that."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop_loop()
        finally:
            self._drain_all(_positive_timeout(timeout))
            kill_worker_processes(self.data_root)
            deadline = time.monotonic() + 10
            survivors = self._live_worker_pids()
            while survivors and time.monotonic() < deadline:
                time.sleep(0.05)
                survivors = self._live_worker_pids()
            assert not survivors, f"worker processes still alive after teardown: {sorted(survivors)}"

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain_all(self, timeout: float) -> None:
        """Every active worker → draining; idle-shutdown cycles until none is running."""
        if self.provider is None:
            return
        for w in self.factory.workers.list(status="active", limit=100_000):
            try:
                self.factory.workers.upsert_worker_state(
                    w.worker_id,
                    status="draining",
                    provider=w.provider,
                    load=w.load,
                    stop_reason="test_teardown",
                    clear_last_snapshot_id=w.last_claim_at is not None,
                )
            except InvalidStateError:
                pass  # it moved on meanwhile; the cycles below take it from there
        deadline = time.monotonic() + timeout
        while self.running_workers() and time.monotonic() < deadline:
            try:
                report = self.factory.pool.check_idle_shutdowns(provider=self.provider, scaling=self.scaling)
                self.errors.extend(report.errors)
            except AgentFactoryError as e:
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.1)
        if self.running_workers():
            # Killed processes show up as stopped machines: one more cycle tears their rows down.
            kill_worker_processes(self.data_root)
            time.sleep(0.2)
            try:
                self.factory.pool.check_idle_shutdowns(provider=self.provider, scaling=self.scaling)
            except AgentFactoryError as e:
                self.errors.append(f"{type(e).__name__}: {e}")

    def _live_worker_pids(self) -> set[int]:
        """Pids of live worker processes recorded under the data root."""
        pids: set[int] = set()
        for record in sorted((self.data_root / "machines").glob("*.json")):
            try:
                pid = int(json.loads(record.read_text(encoding="utf-8"))["pid"])
                with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                continue
            if state not in ("Z", "X"):
                pids.add(pid)
        return pids

    # ------------------------------------------------------------------ the work

    def enqueue(
        self,
        conversation_id: str,
        text: str,
        *,
        agent_key: str = DEFAULT_TEST_AGENT,
        provider: str = "test",
        user: str | None = None,
        metadata: Mapping[str, str] | None = None,
        priority: int | None = None,
    ) -> str:
        """Enqueue one message (``messageText`` = ``text``) and return its id; the agent
        is created (enabled, no secrets) when it does not exist yet."""
        if self.factory.agents.get(agent_key) is None:
            self.factory.agents.upsert_agent(agent_key, secrets_ref=[])
        payload: dict[str, Any] = {
            "provider": provider,
            "providerUserId": user if user is not None else conversation_id,
            "messageText": text,
        }
        if metadata:
            payload["metadata"] = dict(metadata)
        return self.factory.queue.enqueue(conversation_id, agent_key, payload, priority=priority)

    def wait_until(self, condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
        """Poll ``condition()`` every 50 ms until it is true; ``TimeoutError`` naming
        ``what`` (with the queue counters, loop errors and the workers' log tails)
        after ``timeout`` seconds, or at once when the control loop died."""
        deadline = time.monotonic() + _positive_timeout(timeout)
        while not condition():
            if self._failure is not None:
                raise RuntimeError(f"the local pool's control loop failed: {self._failure!r}") from self._failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not reached within {timeout:g} s\n{self.diagnostics()}")
            time.sleep(0.05)

    def wait_until_idle(self, *, timeout: float = 30.0) -> QueueStats:
        """Wait until nothing is queued (ready or delayed) or in flight; returns the
        queue counters then. ``InvalidStateError`` when the pool was not started."""
        if not self.running:
            raise InvalidStateError("the local pool is not running; call start(handler=...) first")
        self.wait_until(self.idle, timeout=timeout, what="queue idle")
        return self.factory.queue.stats()

    def wait_for(self, message_ids: Iterable[str], *, timeout: float = 30.0) -> None:
        """Wait until every message in ``message_ids`` is finished (``done`` or ``dead_letter``)."""
        pending = list(message_ids)

        def finished() -> bool:
            while pending:
                job = self.factory.queue.get_job(pending[0])
                if job is None:
                    raise ValidationError(f"unknown message id {pending[0]!r}")
                if job.status not in ("done", "dead_letter"):
                    return False
                pending.pop(0)
            return True

        self.wait_until(finished, timeout=timeout, what=f"{len(pending)} messages finished")

    def idle(self) -> bool:
        """Nothing queued (ready or delayed) and nothing in flight."""
        s = self.factory.queue.stats()
        return s.queued_ready + s.queued_delayed + s.processing == 0

    def replies(self, conversation_id: str) -> list[str]:
        """The assistant turns of the conversation's history, oldest first."""
        view = self.factory.queue.conversation(conversation_id)
        if view is None:
            return []
        return [entry.content for entry in view.context_history if entry.role == "assistant"]

    def running_workers(self) -> list[WorkerRecord]:
        """Worker rows that are ``active``, ``draining`` or ``stopping``."""
        return [w for w in self.factory.workers.list(limit=100_000) if w.status in _RUNNING]

    def worker_logs(self) -> dict[str, str]:
        """Each spawned worker's log (stdout and stderr), by worker id."""
        logs = self.data_root / "logs"
        if not logs.is_dir():
            return {}
        return {p.stem: p.read_text(encoding="utf-8", errors="replace") for p in sorted(logs.glob("*.log"))}

    def diagnostics(self) -> str:
        """Queue counters, worker statuses, loop errors and the tail of every worker log."""
        s = self.factory.queue.stats()
        lines = [
            f"queue: ready={s.queued_ready} delayed={s.queued_delayed} processing={s.processing} "
            f"dead_letter={s.dead_letter}",
            "workers: " + (", ".join(f"{w.worker_id}={w.status}" for w in self.factory.workers.list()) or "none"),
        ]
        with self._lock:
            errors = list(dict.fromkeys(self.errors))
        if errors:
            lines.append("control loop errors: " + "; ".join(errors[-10:]))
        for worker_id, log in self.worker_logs().items():
            tail = log.splitlines()[-_LOG_TAIL_LINES:]
            lines.append(f"--- log of {worker_id} (last {len(tail)} lines)")
            lines.extend(tail)
        return "\n".join(lines)
