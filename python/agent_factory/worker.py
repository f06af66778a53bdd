"""The Python worker runtime: ``agent_factory.Worker``.

A worker loops claim → hydrate → handler → complete / fail until it is told to
stop. One implementation serves both faces: :meth:`Worker.arun` is the loop and
:meth:`Worker.run` runs it with :func:`asyncio.run`. The handler may be a plain
function or an ``async def``; it receives a :class:`JobContext`.

Guarantees:

- while the handler runs, the claim's lease is heartbeated from a Rust thread
  that never needs the GIL, so a handler that holds the GIL or blocks the event
  loop keeps its lease;
- a lost lease (a beat was refused, or ``complete`` is fenced off) means the
  handler's result is discarded: nothing is appended and nothing completed;
- a handler exception fails the message with ``"<Type>: <message>"`` (the queue
  retries it with backoff or dead-letters it at ``max_attempts``);
- ``control_state().should_stop`` is checked before every claim and about once
  a second while idle; the worker then finishes the job it holds (never a new
  one), uploads a **final snapshot** of its data directory and returns. SIGTERM
  and SIGINT (in the main thread, with ``handle_signals=True``) do the same with
  snapshot reason ``"signal"``; a second signal is not caught (SIGINT raises
  ``KeyboardInterrupt``, SIGTERM terminates);
- on start, a worker pinned to a conversation restores the newest ready snapshot
  of (workspace, agent, conversation) into its data directory when that
  directory is empty (local state is never overwritten).

The handler's return value: ``None`` appends nothing; a ``str`` is the assistant's
reply, appended after the user's ``messageText`` as two history entries (at ``t``
and ``t+1``, as the original worker did); a list of history entries (dicts or
:class:`~agent_factory.HistoryEntry` with ``role``, ``content`` and optional
``at``) is appended as given. Anything else fails the message with a ``TypeError``.

The final snapshot (``drain`` when the control state said stop, ``signal`` after
a signal, ``manual`` after ``max_jobs``, the local idle timeout or :meth:`Worker.stop`)
is taken when the worker knows its conversation (pinned, or the one a sticky
worker served) and it ever claimed a job; its archive holds the whole data
directory. A pooled worker that is not pinned takes none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._async_api import AsyncFactory, AsyncQueueApi, AsyncSnapshotsApi, AsyncWorkerHandle, AsyncWorkersApi
from ._sync_api import Factory, QueueApi, SnapshotsApi, WorkerHandle, WorkersApi
from ._types import Claim, Heartbeats, HistoryEntry, HydrationBundle, RestoredSnapshot, Snapshot
from .config import Config, ScalingPolicy
from .errors import AgentFactoryError, ConflictError, StorageError, ValidationError

__all__ = [
    "Worker",
    "JobContext",
    "WorkerResult",
    "Handler",
    "load_handler",
    "echo_handler",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_SNAPSHOT_FAILED",
]

#: The worker stopped cleanly (and its final snapshot, if one was due, is ready).
EXIT_OK = 0
#: The worker failed (e.g. its database became unusable).
EXIT_FAILED = 1
#: Bad usage: missing database or handler, bad option values.
EXIT_USAGE = 2
#: The worker stopped cleanly but its final snapshot failed: the data directory was not saved.
EXIT_SNAPSHOT_FAILED = 3

ExitReason = Literal["drain", "signal", "stopped", "idle_timeout", "max_jobs"]
Handler = Callable[["JobContext"], str | list[Any] | Awaitable[str | list[Any] | None] | None]

_log = logging.getLogger("agent_factory.worker")
_SNAPSHOT_REASON = {"drain": "drain", "signal": "signal"}  # everything else: manual
_STAGING_PREFIX = ".agent-factory-restore-"
#: Consecutive storage errors (e.g. a locked database) tolerated while polling.
_MAX_STORAGE_ERRORS = 10


@dataclass(frozen=True)
class JobContext:
    """What a handler gets for one claimed message.

    ``worker`` matches the handler: a blocking :class:`WorkerHandle` for a plain
    function, an :class:`AsyncWorkerHandle` for an ``async def``. ``factory`` is the
    factory the worker was given (when it was given a path: a :class:`Factory` or an
    :class:`AsyncFactory`, again matching the handler).
    ``heartbeats`` shows whether the lease is still held (``heartbeats.lost``).
    """

    claim: Claim
    hydration: HydrationBundle
    data_dir: Path
    worker: WorkerHandle | AsyncWorkerHandle
    factory: Factory | AsyncFactory
    logger: logging.LoggerAdapter[logging.Logger]
    workspace_id: str
    heartbeats: Heartbeats

    @property
    def message_id(self) -> str:
        """The claimed message."""
        return self.claim.message_id

    @property
    def conversation_id(self) -> str:
        """Its conversation."""
        return self.claim.conversation_id

    @property
    def agent_key(self) -> str:
        """Its agent."""
        return self.claim.agent_key

    @property
    def payload(self) -> dict[str, Any]:
        """The message payload (camelCase wire keys)."""
        return self.hydration.payload

    @property
    def message_text(self) -> str | None:
        """``payload["messageText"]``, if it is a string."""
        text = self.hydration.payload.get("messageText")
        return text if isinstance(text, str) else None

    @property
    def history(self) -> list[HistoryEntry]:
        """The conversation history handed to this job."""
        return self.hydration.context_history


@dataclass(frozen=True)
class WorkerResult:
    """How a worker run ended.

    ``exit_reason`` is ``drain`` (the control state said stop), ``signal``,
    ``stopped`` (:meth:`Worker.stop`), ``idle_timeout`` or ``max_jobs``.
    """

    worker_id: str
    exit_reason: ExitReason
    jobs_completed: int
    jobs_failed: int
    leases_lost: int
    restored: RestoredSnapshot | None
    restore_error: str | None
    final_snapshot: Snapshot | None
    snapshot_error: str | None

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_OK`, or :data:`EXIT_SNAPSHOT_FAILED` when the final snapshot failed."""
        return EXIT_SNAPSHOT_FAILED if self.snapshot_error is not None else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (nested records become dicts)."""
        out = dataclasses.asdict(self)
        out["exit_code"] = self.exit_code
        return out


def load_handler(spec: str) -> Handler:
    """Import a handler given as ``"module:function"`` (``function`` may be dotted).
    The current directory is importable, as with ``python -m``."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValidationError(f"handler must look like 'module:function', got {spec!r}")
    module_name, attr = spec.split(":")
    if not module_name or not attr:
        raise ValidationError(f"handler must look like 'module:function', got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValidationError(f"cannot import handler module {module_name!r}: {e}") from e
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValidationError(f"handler {spec!r}: {module_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise ValidationError(f"handler {spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def echo_handler(ctx: JobContext) -> str:
    """Built-in demo handler: appends ``<message_id>\\t<text>`` to
    ``<data_dir>/echo/messages.log`` and replies ``"echo: <text>"``.

    Two payload ``metadata`` knobs help demos and tests: ``echo_sleep_ms`` (work this
    long first) and ``echo_fail`` (raise ``RuntimeError`` with that text)."""
    text = ctx.message_text or ""
    metadata = ctx.payload.get("metadata") or {}
    sleep_ms = metadata.get("echo_sleep_ms")
    if sleep_ms:
        time.sleep(int(sleep_ms) / 1000)
    if metadata.get("echo_fail"):
        raise RuntimeError(metadata["echo_fail"])
    log_dir = ctx.data_dir / "echo"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "messages.log", "a", encoding="utf-8") as f:
        f.write(f"{ctx.message_id}\t{text}\n")
    ctx.logger.info("echoed %d characters", len(text))
    return f"echo: {text}"


class _Ready:
    """An awaitable of a value that is already there (a blocking call made in place)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        if False:  # pragma: no cover - makes this a generator
            yield
        return self.value


class _Blocking:
    """Lets ``await api.method(...)`` run a blocking API's method in place."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        return lambda *args, **kwargs: _Ready(method(*args, **kwargs))


class _Apis:
    """The areas the loop uses, awaited either way: asyncio ones, or blocking ones
    adapted (for :meth:`Worker.run`, where nothing else shares the loop)."""

    __slots__ = ("handle", "queue", "snapshots", "workers")

    def __init__(self, native: Any, worker_id: str, mode: Literal["sticky", "pooled"], *, blocking: bool) -> None:
        if blocking:
            self.handle: Any = _Blocking(WorkerHandle(native, worker_id, mode))
            self.queue: Any = _Blocking(QueueApi(native))
            self.snapshots: Any = _Blocking(SnapshotsApi(native))
            self.workers: Any = _Blocking(WorkersApi(native))
        else:
            self.handle = AsyncWorkerHandle(native, worker_id, mode)
            self.queue = AsyncQueueApi(native)
            self.snapshots = AsyncSnapshotsApi(native)
            self.workers = AsyncWorkersApi(native)


class _JobLogger(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['worker_id']} message {self.extra['message_id']}] {msg}", kwargs  # type: ignore[index]


def _history(result: Any, ctx: JobContext, now_ms: int) -> list[dict[str, Any]]:
    """The history entries a handler's return value asks for (see the module docs)."""
    if result is None:
        return []
    if isinstance(result, str):
        entries = []
        if ctx.message_text is not None:
            entries.append({"role": "user", "content": ctx.message_text, "at": now_ms})
        entries.append({"role": "assistant", "content": result, "at": now_ms + 1})
        return entries
    if isinstance(result, (list, tuple)):
        out = []
        for i, item in enumerate(result):
            if isinstance(item, HistoryEntry):
                item = item.to_dict()
            if not isinstance(item, Mapping):
                raise TypeError(f"handler returned a list whose item {i} is a {type(item).__name__}, not a history entry dict")
            out.append(dict(item))
        return out
    raise TypeError(
        f"handler returned {type(result).__name__}; expected None, a reply string or a list of history entries"
    )


def _meaningful(path: Path) -> bool:
    """Whether a data directory holds anything (restore staging leftovers do not count)."""
    try:
        return any(not p.name.startswith(_STAGING_PREFIX) for p in path.iterdir())
    except FileNotFoundError:
        return False


class Worker:
    """Runs a handler over claimed messages until told to stop.

    ``factory`` is a :class:`Factory`, an :class:`AsyncFactory` or a database path.
    ``handler`` is a callable or a ``"module:function"`` string. ``data_dir`` is the
    worker's state directory (snapshotted on exit, restored on start when pinned);
    ``None`` uses a private temporary directory removed at exit.

    ``conversation_id`` pins the worker to one conversation (the pool's
    pre-assignment); ``agent_key`` names its agent (otherwise taken from the
    worker's assignment, its claims or the conversation). ``max_jobs`` stops after
    that many handled messages; ``idle_timeout_ms`` stops after that long without a
    claim (and, when the worker opens the database itself, is the idle timeout its
    completions record for the pool's idle shutdown). Polling backs off from
    ``poll_min_ms`` to ``poll_max_ms`` while idle.
    ``heartbeat_interval_ms`` defaults to ``Config.lease.heartbeat_interval_ms``
    capped at a third of the lease.
    """

    def __init__(
        self,
        factory: Factory | AsyncFactory | str | os.PathLike[str],
        worker_id: str,
        handler: Handler | str,
        *,
        mode: Literal["sticky", "pooled"] = "sticky",
        data_dir: str | os.PathLike[str] | None = None,
        workspace_id: str = "default",
        conversation_id: str | None = None,
        agent_key: str | None = None,
        max_jobs: int | None = None,
        idle_timeout_ms: int | None = None,
        poll_min_ms: int = 50,
        poll_max_ms: int = 2000,
        control_interval_ms: int = 1000,
        heartbeat_interval_ms: int | None = None,
        handle_signals: bool = True,
        restore: bool = True,
    ) -> None:
        self.handler: Handler = load_handler(handler) if isinstance(handler, str) else handler
        if not callable(self.handler):
            raise TypeError(f"handler must be callable or a 'module:function' string, got {type(handler).__name__}")
        self._async_handler = inspect.iscoroutinefunction(self.handler) or inspect.iscoroutinefunction(
            getattr(self.handler, "__call__", None)  # noqa: B004 -- an object with an async __call__
        )
        for name, value in (
            ("max_jobs", max_jobs),
            ("idle_timeout_ms", idle_timeout_ms),
            ("heartbeat_interval_ms", heartbeat_interval_ms),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValidationError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(factory, (Factory, AsyncFactory)):
            self.factory: Factory | AsyncFactory = factory
        elif isinstance(factory, (str, os.PathLike)):
            # The idle shutdown time recorded when a job ends (last claim + idle timeout)
            # comes from the factory's scaling policy: use the worker's idle timeout (the
            # pool's, via WORKER_IDLE_TIMEOUT_MS) rather than the 30-minute default.
            config = None if idle_timeout_ms is None else Config(scaling=ScalingPolicy(idle_timeout_ms=idle_timeout_ms))
            self.factory = (AsyncFactory if self._async_handler else Factory)(factory, config=config)
        else:
            raise TypeError(f"factory must be a Factory, an AsyncFactory or a path, got {type(factory).__name__}")
        intervals = (("poll_min_ms", poll_min_ms), ("poll_max_ms", poll_max_ms), ("control_interval_ms", control_interval_ms))
        for name, value in intervals:
            if not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a positive integer, got {value!r}")
        if poll_min_ms > poll_max_ms:
            raise ValidationError(f"poll_min_ms ({poll_min_ms}) must not exceed poll_max_ms ({poll_max_ms})")
        native = self.factory._n
        self.worker_id = worker_id
        self.mode = mode
        self._user_handle: WorkerHandle | AsyncWorkerHandle = (
            AsyncWorkerHandle(native, worker_id, mode) if self._async_handler else WorkerHandle(native, worker_id, mode)
        )
        self._api = _Apis(native, worker_id, mode, blocking=False)
        self._native = native
        self.workspace_id = workspace_id
        self.conversation_id = conversation_id
        self.agent_key = agent_key
        self._given_data_dir = None if data_dir is None else Path(data_dir)
        self.data_dir: Path | None = self._given_data_dir
        self.max_jobs = max_jobs
        self.idle_timeout_ms = idle_timeout_ms
        self.poll_min_ms = poll_min_ms
        self.poll_max_ms = poll_max_ms
        self.control_interval_ms = control_interval_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.handle_signals = handle_signals
        self.restore = restore
        self._stop_reason: ExitReason | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._signals: dict[int, Any] = {}
        self._registered = False
        self._claimed_any = False
        self._finished = False
        self._counts = {"completed": 0, "failed": 0, "lost": 0}

    def __repr__(self) -> str:
        return f"Worker(worker_id={self.worker_id!r}, mode={self.mode!r}, conversation_id={self.conversation_id!r})"

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Ask the worker to stop after the current job (thread-safe; reason ``stopped``)."""
        self._request_stop("stopped")

    def _request_stop(self, reason: ExitReason) -> None:
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile: nothing waits any more
                pass

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        _log.info("%s: received %s: finishing the current job, then snapshotting and stopping", self.worker_id, name)
        self._request_stop("signal")
        self._uninstall_signals()  # a second signal is not caught

    def _install_signals(self) -> list[int]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        installed: dict[int, Any] = {}
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self._on_signal, int(sig))
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed[int(sig)] = previous
        self._signals = installed
        return list(installed)

    def _uninstall_signals(self) -> None:
        """Give the signals back to the handlers they had before the run."""
        loop = self._loop
        for sig, previous in self._signals.items():
            if loop is not None and not loop.is_closed():
                loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)
        self._signals = {}

    async def _sleep(self, ms: int) -> None:
        """Sleep ``ms`` unless a stop is requested first."""
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), ms / 1000)
        except TimeoutError:
            pass

    async def _should_stop(self) -> bool:
        """Ask the registry (also an idle heartbeat); record a drain request."""
        state = await self._api.handle.control_state()
        if state.status is not None:
            self._registered = True
        if not state.should_stop:
            return False
        if not self._registered and state.reasons == ["unknown"]:
            return False  # not registered yet: the first claim registers it
        _log.info("%s: control state says stop (%s)", self.worker_id, ", ".join(state.reasons))
        self._request_stop("drain")
        return True

    # ------------------------------------------------------------------ running

    def run(self) -> WorkerResult:
        """Run the worker until it stops (blocking).

        The loop runs on a private event loop whose factory calls block in place
        (with the GIL released), so nothing else is left running when it returns.
        Where an event loop already runs in this thread (a Jupyter cell, an async
        framework), that private loop runs on a helper thread and this call blocks
        until the worker stops; an interrupt (Ctrl-C, the notebook's stop button)
        asks it to stop after the current job, waits for it and re-raises.
        Signals are handled only when the worker runs in the main thread itself."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._main(blocking=True))
        outcome: dict[str, Any] = {}

        def main() -> None:
            try:
                outcome["result"] = asyncio.run(self._main(blocking=True))
            except BaseException as e:  # handed to the caller's thread below
                outcome["error"] = e

        thread = threading.Thread(target=main, name=f"agent-factory-worker-{self.worker_id}", daemon=True)
        thread.start()
        try:
            thread.join()
        except KeyboardInterrupt:
            self.stop()
            thread.join()
            raise
        if "error" in outcome:
            raise outcome["error"]
        result: WorkerResult = outcome["result"]
        return result

    async def arun(self) -> WorkerResult:
        """Run the worker on the current event loop until it stops; factory calls are
        awaited, so other tasks keep running (an ``async def`` handler should not block)."""
        return await self._main(blocking=False)

    async def _main(self, *, blocking: bool) -> WorkerResult:
        self._api = _Apis(self._native, self.worker_id, self.mode, blocking=blocking)
        if self._finished:  # a second run starts afresh
            self._stop_reason, self._finished, self._claimed_any = None, False, False
            self._counts = {"completed": 0, "failed": 0, "lost": 0}
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            if self._stop_reason is not None:
                self._wake.set()
        temporary = None
        if self._given_data_dir is None:
            temporary = Path(tempfile.mkdtemp(prefix=f"agent-factory-{self.worker_id}-"))
            self.data_dir = temporary
        else:
            self.data_dir = self._given_data_dir
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ValidationError(f"data_dir {self.data_dir} cannot be used as a directory: {e}") from e
        self._install_signals()
        try:
            restored, restore_error = await self._restore_on_start()
            await self._loop_until_stopped()
            reason: ExitReason = self._stop_reason or "stopped"
            snapshot, snapshot_error = await self._final_snapshot(reason)
            return WorkerResult(
                worker_id=self.worker_id,
                exit_reason=reason,
                jobs_completed=self._counts["completed"],
                jobs_failed=self._counts["failed"],
                leases_lost=self._counts["lost"],
                restored=restored,
                restore_error=restore_error,
                final_snapshot=snapshot,
                snapshot_error=snapshot_error,
            )
        finally:
            self._finished = True
            self._uninstall_signals()
            with self._lock:
                self._loop = None
                self._wake = None
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)

    async def _resolve_agent_key(self) -> str | None:
        if self.agent_key is not None or self.conversation_id is None:
            return self.agent_key
        row = await self._api.workers.get(self.worker_id)
        if row is not None and row.assignment is not None and row.assignment.conversation_id == self.conversation_id:
            self.agent_key = row.assignment.agent_key
            return self.agent_key
        conversation = await self._api.queue.conversation(self.conversation_id, limit=1)
        if conversation is not None:
            self.agent_key = conversation.agent_key
        return self.agent_key

    async def _restore_on_start(self) -> tuple[RestoredSnapshot | None, str | None]:
        if not self.restore or self.conversation_id is None:
            return None, None
        assert self.data_dir is not None
        if _meaningful(self.data_dir):
            _log.info("%s: %s already has state; not restoring a snapshot", self.worker_id, self.data_dir)
            return None, None
        agent_key = await self._resolve_agent_key()
        if agent_key is None:
            _log.warning("%s: agent of conversation %s unknown; nothing restored", self.worker_id, self.conversation_id)
            return None, None
        try:
            restored = await self._api.snapshots.restore_latest(
                self.workspace_id, agent_key, self.conversation_id, self.data_dir
            )
        except AgentFactoryError as e:
            _log.error("%s: restoring the snapshot of %s failed: %s", self.worker_id, self.conversation_id, e)
            return None, f"{type(e).__name__}: {e}"
        if restored is not None:
            _log.info(
                "%s: restored snapshot %s (%d files) into %s",
                self.worker_id, restored.snapshot.snapshot_id, restored.archive.files, self.data_dir,
            )
        return restored, None

    async def _loop_until_stopped(self) -> None:
        delay = self.poll_min_ms
        last_control = 0.0
        idle_since = time.monotonic()
        storage_errors = 0
        handled = 0
        while self._stop_reason is None:
            try:
                if time.monotonic() - last_control >= self.control_interval_ms / 1000 or delay == self.poll_min_ms:
                    last_control = time.monotonic()
                    if await self._should_stop():
                        break
                claim = await self._api.handle.claim(conversation_id=self.conversation_id)
                storage_errors = 0
            except StorageError as e:
                storage_errors += 1
                if storage_errors >= _MAX_STORAGE_ERRORS:
                    raise
                _log.warning("%s: storage error while polling (%d in a row), retrying: %s", self.worker_id, storage_errors, e)
                await self._sleep(delay)
                delay = min(delay * 2, self.poll_max_ms)
                continue
            if claim is None:
                if self.idle_timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= self.idle_timeout_ms:
                    _log.info("%s: idle for %d ms; stopping", self.worker_id, self.idle_timeout_ms)
                    self._request_stop("idle_timeout")
                    break
                await self._sleep(delay)
                delay = min(delay * 2, self.poll_max_ms)
                continue
            self._registered = True
            self._claimed_any = True
            if self.mode == "sticky" and self.conversation_id is None:
                self.conversation_id = claim.conversation_id
            if self.agent_key is None and claim.conversation_id == self.conversation_id:
                self.agent_key = claim.agent_key
            await self._process(claim)
            handled += 1
            delay = self.poll_min_ms
            idle_since = time.monotonic()
            if self.max_jobs is not None and handled >= self.max_jobs:
                self._request_stop("max_jobs")

    async def _process(self, claim: Claim) -> None:
        """Run the handler on one claim with heartbeats, then complete or fail it."""
        log = _JobLogger(_log, {"worker_id": self.worker_id, "message_id": claim.message_id})
        heartbeats = self._user_handle.start_heartbeats(claim, interval_ms=self.heartbeat_interval_ms)
        try:
            error: BaseException | None = None
            entries: list[dict[str, Any]] = []
            try:
                hydration = await self._api.handle.hydrate(claim, workspace_id=self.workspace_id)
            except ConflictError as e:
                log.warning("lease lost before hydration: %s", e)
                self._counts["lost"] += 1
                return
            assert self.data_dir is not None
            ctx = JobContext(
                claim=claim,
                hydration=hydration,
                data_dir=self.data_dir,
                worker=self._user_handle,
                factory=self.factory,
                logger=log,
                workspace_id=self.workspace_id,
                heartbeats=heartbeats,
            )
            try:
                result = self.handler(ctx)
                if inspect.isawaitable(result):
                    result = await result
                entries = _history(result, ctx, self._native.now_ms())
            except Exception as e:  # the handler's failure is the message's failure
                error = e
            except BaseException:
                # Interrupted (second signal, cancellation): hand the message back now
                # rather than when its lease expires.
                if not heartbeats.lost:
                    try:
                        await asyncio.shield(self._api.handle.fail(claim, "worker interrupted while handling the message"))
                    except BaseException:  # best effort while already unwinding
                        pass
                raise
            if heartbeats.lost:
                self._counts["lost"] += 1
                log.warning("lease lost while handling; result discarded (%s)", heartbeats.status().last_error)
                return
            if error is not None:
                log.error("handler failed: %s: %s", type(error).__name__, error, exc_info=error)
                outcome = await self._api.handle.fail(claim, error)
                if outcome.requeued or outcome.dead_lettered:
                    self._counts["failed"] += 1
                    retry = "dead-lettered" if outcome.dead_lettered else f"retries at {outcome.next_scheduled_for}"
                    log.info("message %s", retry)
                else:
                    self._counts["lost"] += 1
                    log.warning("lease lost before the failure was recorded")
                return
            if entries:
                # The history is not fenced by the lease: confirm it is still held first.
                if not await self._api.handle.heartbeat(claim):
                    self._counts["lost"] += 1
                    log.warning("lease lost while handling; result discarded")
                    return
                await self._api.handle.append_conversation_messages(claim, entries, workspace_id=self.workspace_id)
            if await self._api.handle.complete(claim):
                self._counts["completed"] += 1
            else:
                self._counts["lost"] += 1
                log.warning("lease lost before completion; the message will be handled again")
        finally:
            heartbeats.stop()

    async def _final_snapshot(self, reason: ExitReason) -> tuple[Snapshot | None, str | None]:
        if self.conversation_id is None:
            _log.info("%s: no conversation of its own; no final snapshot", self.worker_id)
            return None, None
        if not self._claimed_any:
            row = await self._api.workers.get(self.worker_id)
            if row is None or row.last_claim_at is None:
                _log.info("%s: never claimed a job; no final snapshot", self.worker_id)
                return None, None
        agent_key = await self._resolve_agent_key()
        if agent_key is None:
            message = f"agent of conversation {self.conversation_id} unknown; cannot take the final snapshot"
            _log.error("%s: %s", self.worker_id, message)
            return None, message
        assert self.data_dir is not None
        try:
            taken = await self._api.snapshots.snapshot_directory(
                self.worker_id, self.workspace_id, agent_key, self.conversation_id,
                _SNAPSHOT_REASON.get(reason, "manual"),
                self.data_dir,
            )
        except AgentFactoryError as e:
            _log.error("%s: final snapshot failed: %s", self.worker_id, e)
            return None, f"{type(e).__name__}: {e}"
        for skipped in taken.archive.skipped:
            _log.warning("%s: not in the snapshot: %s", self.worker_id, skipped)
        _log.info(
            "%s: final snapshot %s (%s, %d files, %d bytes)",
            self.worker_id,
            taken.snapshot.snapshot_id,
            taken.snapshot.reason,
            taken.archive.files,
            taken.snapshot.size_bytes or 0,
        )
        return taken.snapshot, None
