"""The Python worker runtime (``agent_factory.Worker``, ``agent-factory worker``).

Real parts only: file databases, real threads, subprocess workers and signals,
archives in the blob store and real directories.
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import agent_factory as af
from agent_factory import (
    AsyncFactory,
    AsyncWorkerHandle,
    Config,
    Factory,
    JobContext,
    LeaseConfig,
    ManualClock,
    RetryPolicy,
    ValidationError,
    Worker,
    WorkerHandle,
    echo_handler,
)
from helpers import payload

AGENT = "support-agent"


def live_factory(path: Path, **config: Any) -> Factory:
    """A factory on the wall clock (leases expire for real) with ``support-agent``."""
    f = Factory(path, config=Config(**config) if config else None)
    f.agents.upsert_agent(AGENT, version="1.0.0", secrets_ref=[])
    return f


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- handlers


def test_sync_handler_reply_is_appended_and_the_message_completed(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    ids = [f.queue.enqueue("conv-1", AGENT, payload(text=t)) for t in ("hello", "again")]
    data = tmp_path / "data"
    result = Worker(f, "w-1", echo_handler, data_dir=data, max_jobs=2).run()

    assert (result.exit_reason, result.jobs_completed, result.jobs_failed, result.leases_lost) == ("max_jobs", 2, 0, 0)
    assert [f.queue.get_job(i).status for i in ids] == ["done", "done"]  # type: ignore[union-attr]
    history = f.queue.conversation("conv-1").context_history  # type: ignore[union-attr]
    assert [(h.role, h.content) for h in history] == [
        ("user", "hello"), ("assistant", "echo: hello"), ("user", "again"), ("assistant", "echo: again"),
    ]
    assert (data / "echo" / "messages.log").read_text() == f"{ids[0]}\thello\n{ids[1]}\tagain\n"
    assert result.final_snapshot is not None and result.final_snapshot.reason == "manual"
    assert result.exit_code == af.worker.EXIT_OK


def test_handler_exception_fails_the_message_with_its_text_and_retries_then_dead_letters(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db", retry=RetryPolicy(max_attempts=2, base_delay_ms=1, max_delay_ms=1, jitter_ratio=0))
    mid = f.queue.enqueue("conv-1", AGENT, payload(text="boom"))
    seen: list[int] = []

    def handler(ctx: JobContext) -> str:
        seen.append(ctx.claim.attempt)
        raise ValueError(f"cannot handle {ctx.message_text}")

    result = Worker(f, "w-1", handler, max_jobs=2, poll_min_ms=5).run()
    job = f.queue.get_job(mid)
    assert job is not None and job.status == "dead_letter"
    assert job.last_error == "ValueError: cannot handle boom"
    assert len(seen) == 2 and result.jobs_failed == 2 and result.jobs_completed == 0
    assert f.queue.conversation("conv-1").context_history == []  # type: ignore[union-attr]


def test_handler_returning_a_bad_type_fails_the_message(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    mid = f.queue.enqueue("conv-1", AGENT, payload())
    result = Worker(f, "w-1", lambda ctx: 42, max_jobs=1).run()
    job = f.queue.get_job(mid)
    assert result.jobs_failed == 1
    assert job is not None and job.last_error is not None and job.last_error.startswith("TypeError: handler returned int")


def test_handler_may_return_history_entries_and_gets_a_blocking_context(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    f.queue.enqueue("conv-1", AGENT, payload(text="q"))
    contexts: list[JobContext] = []

    def handler(ctx: JobContext) -> list[dict[str, Any]]:
        contexts.append(ctx)
        return [{"role": "tool", "content": "looked it up"}, af.HistoryEntry(role="assistant", content="a", at=5)]

    Worker(f, "w-1", handler, max_jobs=1).run()
    (ctx,) = contexts
    assert isinstance(ctx.worker, WorkerHandle) and ctx.factory is f
    assert ctx.hydration.message_id == ctx.message_id and ctx.payload["messageText"] == "q"
    history = f.queue.conversation("conv-1").context_history  # type: ignore[union-attr]
    assert [(h.role, h.content) for h in history] == [("tool", "looked it up"), ("assistant", "a")]
    assert history[1].at == 5


async def test_async_handler_runs_on_the_loop_with_async_handles(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    live_factory(path)
    f = AsyncFactory(path)
    mid = await f.queue.enqueue("conv-1", AGENT, payload(text="ping"))
    kinds: list[tuple[type, type]] = []

    async def handler(ctx: JobContext) -> str:
        kinds.append((type(ctx.worker), type(ctx.factory)))
        state = await ctx.worker.state()  # type: ignore[misc]
        await asyncio.sleep(0.01)
        return f"pong from {state.worker_id}"  # type: ignore[union-attr]

    result = await Worker(f, "w-async", handler, max_jobs=1).arun()
    assert result.jobs_completed == 1
    assert kinds == [(AsyncWorkerHandle, AsyncFactory)]
    job = await f.queue.get_job(mid)
    assert job is not None and job.status == "done"
    view = await f.queue.conversation("conv-1")
    assert view is not None and view.context_history[-1].content == "pong from w-async"


def test_async_handler_through_the_blocking_run(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    f.queue.enqueue("conv-1", AGENT, payload())

    async def handler(ctx: JobContext) -> None:
        await asyncio.sleep(0)

    assert Worker(str(tmp_path / "f.db"), "w-1", handler, max_jobs=1).run().jobs_completed == 1


async def test_run_inside_a_running_loop_blocks_on_a_helper_thread(tmp_path: Path) -> None:
    """As in a Jupyter cell: the blocking run() works where a loop already runs."""
    f = live_factory(tmp_path / "f.db")
    mid = f.queue.enqueue("conv-1", AGENT, payload(text="ping"))
    threads: list[str] = []

    def handler(ctx: JobContext) -> str:
        threads.append(threading.current_thread().name)
        return "pong"

    result = Worker(f, "w-1", handler, max_jobs=1).run()
    assert result.jobs_completed == 1
    assert threads == ["agent-factory-worker-w-1"], "the private loop ran on the helper thread"
    job = f.queue.get_job(mid)
    assert job is not None and job.status == "done"


# ---------------------------------------------------------------- leases


def _gil_holding_sleep(seconds: int) -> None:
    """``sleep(3)`` from libc through ``PyDLL``: ctypes keeps the GIL for the whole call."""
    libc = ctypes.PyDLL(None)
    libc.sleep.argtypes = [ctypes.c_uint]
    libc.sleep(seconds)


def test_a_handler_holding_the_gil_past_the_lease_keeps_it_and_completes(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db", lease=LeaseConfig(lease_ms=600))
    mid = f.queue.enqueue("conv-1", AGENT, payload())
    ticks = [0]
    stop_ticker = threading.Event()

    def ticker() -> None:
        while not stop_ticker.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    observed: dict[str, Any] = {}

    def handler(ctx: JobContext) -> str:
        before = ticks[0]
        _gil_holding_sleep(2)  # 2 s, more than three leases, GIL held throughout
        observed["ticks_while_held"] = ticks[0] - before
        observed["beats"] = ctx.heartbeats.beats
        # Lease recovery now finds nothing expired: the Rust thread kept extending it.
        observed["requeued"] = f.queue.release_stuck_jobs().requeued
        return "survived"

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    try:
        result = Worker(f, "w-gil", handler, max_jobs=1).run()
    finally:
        stop_ticker.set()
    # A tick can slip in at the interpreter's GIL hand-offs just before and just
    # after the call; 2 s with the GIL released would be about 2 000 ticks.
    assert observed["ticks_while_held"] <= 5, "the GIL was not held"
    assert observed["beats"] >= 4 and observed["requeued"] == 0
    assert result.jobs_completed == 1 and result.leases_lost == 0
    assert f.queue.get_job(mid).status == "done"  # type: ignore[union-attr]


def test_without_heartbeats_the_same_handler_loses_its_lease_and_nothing_is_recorded(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db", lease=LeaseConfig(lease_ms=600))
    mid = f.queue.enqueue("conv-1", AGENT, payload(text="hi"))

    def handler(ctx: JobContext) -> str:
        _gil_holding_sleep(1)
        assert f.queue.release_stuck_jobs().requeued == 1
        return "too late"

    result = Worker(f, "w-slow", handler, max_jobs=1, heartbeat_interval_ms=60_000).run()
    job = f.queue.get_job(mid)
    assert result.leases_lost == 1 and result.jobs_completed == 0
    assert job is not None and job.status == "queued" and job.attempts == 1
    assert f.queue.conversation("conv-1").context_history == []  # type: ignore[union-attr]


async def test_an_async_handler_blocking_the_event_loop_keeps_its_lease(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    live_factory(path, lease=LeaseConfig(lease_ms=600))
    f = AsyncFactory(path, config=Config(lease=LeaseConfig(lease_ms=600)))
    mid = await f.queue.enqueue("conv-1", AGENT, payload())

    async def handler(ctx: JobContext) -> str:
        time.sleep(1.5)  # blocks the loop: no coroutine could heartbeat now
        recovered = await f.queue.release_stuck_jobs()
        assert recovered.requeued == 0, "the lease expired while the loop was blocked"
        return "done"

    result = await Worker(f, "w-loop", handler, max_jobs=1).arun()
    assert result.jobs_completed == 1
    job = await f.queue.get_job(mid)
    assert job is not None and job.status == "done"


def test_a_lease_lost_mid_job_discards_the_result_and_another_worker_completes_it(
    tmp_path: Path, manual_clock: ManualClock
) -> None:
    f = Factory(tmp_path / "f.db", clock=manual_clock)
    f.agents.upsert_agent(AGENT, version="1.0.0", secrets_ref=[])
    mid = f.queue.enqueue("conv-1", AGENT, payload(text="hi"))
    lost_seen: list[bool] = []

    def handler(ctx: JobContext) -> str:
        manual_clock.advance(400_000)  # past the 360 s lease
        f.queue.release_stuck_jobs()  # recovery hands the message back
        wait_until(lambda: ctx.heartbeats.lost, what="the heartbeat thread to notice")
        lost_seen.append(ctx.heartbeats.lost)
        return "stale reply"

    result = Worker(f, "w-old", handler, max_jobs=1, heartbeat_interval_ms=10).run()
    assert lost_seen == [True]
    assert result.leases_lost == 1 and result.jobs_completed == 0
    assert f.queue.conversation("conv-1").context_history == []  # type: ignore[union-attr]
    job = f.queue.get_job(mid)
    assert job is not None and job.status == "queued"

    manual_clock.advance(600_000)  # past the retry backoff
    again = Worker(f, "w-new", echo_handler, max_jobs=1).run()
    assert again.jobs_completed == 1
    assert [h.content for h in f.queue.conversation("conv-1").context_history] == ["hi", "echo: hi"]  # type: ignore[union-attr]


def test_heartbeats_api_beats_stops_and_checks_its_arguments(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    f.queue.enqueue("conv-1", AGENT, payload())
    w = f.worker("w-1")
    claim = w.claim()
    assert claim is not None
    with w.start_heartbeats(claim, interval_ms=10) as hb:
        wait_until(lambda: hb.beats >= 3, what="three beats")
        assert not hb.lost and hb.status().running
    final = hb.stop()
    assert isinstance(final, af.HeartbeatStatus) and not final.running and final.beats >= 3
    with pytest.raises(ValidationError, match="interval"):
        w.start_heartbeats(claim, interval_ms=0)
    with pytest.raises(ValidationError, match="belongs to worker"):
        f.worker("w-2").start_heartbeats(claim)
    assert w.complete(claim)


# ---------------------------------------------------------------- drain, snapshots, restore


def test_drain_finishes_the_job_and_uploads_a_final_snapshot_that_restores(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    mid = f.queue.enqueue("conv-1", AGENT, payload(text="remember this"))
    f.queue.enqueue("conv-1", AGENT, payload(text="never handled"))
    data = tmp_path / "data"

    def handler(ctx: JobContext) -> str:
        (ctx.data_dir / "workspace").mkdir(exist_ok=True)
        (ctx.data_dir / "workspace" / "memory.md").write_text(ctx.message_text or "")
        # The pool drains this worker while it works: it must finish, then stop.
        f.workers.upsert_worker_state("w-1", status="draining", load=1)
        return "noted"

    result = Worker(f, "w-1", handler, data_dir=data).run()
    assert result.exit_reason == "drain" and result.jobs_completed == 1
    assert f.queue.get_job(mid).status == "done"  # type: ignore[union-attr]
    assert f.queue.stats().queued_ready == 1, "no new job after the drain request"
    snap = result.final_snapshot
    assert snap is not None and snap.reason == "drain" and snap.status == "ready"
    row = f.workers.get("w-1")
    assert row is not None and row.status == "stopping" and row.last_snapshot_id == snap.snapshot_id

    fresh = tmp_path / "fresh"
    restored = f.snapshots.restore_latest("default", AGENT, "conv-1", fresh)
    assert restored is not None and restored.snapshot.snapshot_id == snap.snapshot_id
    assert listing(fresh) == listing(data) == {"workspace/memory.md": b"remember this"}


def test_an_idle_worker_obeys_should_stop_without_a_snapshot(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    f.workers.upsert_worker_state("w-idle", status="active", load=0)
    worker = Worker(f, "w-idle", echo_handler, conversation_id="conv-9", agent_key=AGENT, control_interval_ms=50)
    out: list[af.WorkerResult] = []
    t = threading.Thread(target=lambda: out.append(worker.run()))
    t.start()
    time.sleep(0.2)
    f.workers.upsert_worker_state("w-idle", status="draining", load=0)
    t.join(10)
    assert not t.is_alive()
    assert out[0].exit_reason == "drain" and out[0].final_snapshot is None  # never claimed: nothing to save


def test_stop_and_idle_timeout_end_the_loop(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    assert Worker(f, "w-1", echo_handler, idle_timeout_ms=100).run().exit_reason == "idle_timeout"
    worker = Worker(f, "w-2", echo_handler)
    threading.Timer(0.1, worker.stop).start()
    assert worker.run().exit_reason == "stopped"


def test_a_pinned_worker_restores_the_latest_snapshot_on_start(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    mid = f.queue.enqueue("conv-p", AGENT, payload(text="what do you remember?"))
    old = tmp_path / "old-worker"
    (old / "workspace").mkdir(parents=True)
    (old / "workspace" / "memory.md").write_text("the user likes tea")
    taken = f.snapshots.snapshot_directory("w-old", "default", AGENT, "conv-p", "drain", old)
    other = tmp_path / "other-conversation"
    other.mkdir()
    (other / "memory.md").write_text("wrong conversation")
    f.snapshots.snapshot_directory("w-other", "default", AGENT, "conv-other", "drain", other)

    def handler(ctx: JobContext) -> str:
        return (ctx.data_dir / "workspace" / "memory.md").read_text()

    data = tmp_path / "new-worker"
    result = Worker(f, "w-new", handler, data_dir=data, conversation_id="conv-p", max_jobs=1).run()
    assert result.restored is not None and result.restored.snapshot.snapshot_id == taken.snapshot.snapshot_id
    assert result.jobs_completed == 1 and f.queue.get_job(mid).status == "done"  # type: ignore[union-attr]
    assert f.queue.conversation("conv-p").context_history[-1].content == "the user likes tea"  # type: ignore[union-attr]

    # Local state is never overwritten by a restore.
    kept = tmp_path / "has-state"
    kept.mkdir()
    (kept / "mine").write_text("local")
    again = Worker(f, "w-3", echo_handler, data_dir=kept, conversation_id="conv-p", agent_key=AGENT, idle_timeout_ms=50).run()
    assert again.restored is None and (kept / "mine").read_text() == "local"


# ---------------------------------------------------------------- archives


def _malicious(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, data: bytes = b"x", **attrs: Any) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data) if attrs.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
            for k, v in attrs.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if info.size else None)

        add("fine.txt")
        if kind == "dotdot":
            add("../escaped.txt")
        elif kind == "absolute":
            add(str(Path("/tmp") / "agent-factory-absolute-escape.txt"))
        elif kind == "symlink":
            add("link", type=tarfile.SYMTYPE, linkname="../../escaped-dir")
        elif kind == "through-symlink":
            add("link", type=tarfile.SYMTYPE, linkname="sub")
            add("link/escaped.txt")
        elif kind == "hardlink":
            add("hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        elif kind == "device":
            add("dev", type=tarfile.CHRTYPE)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "through-symlink", "hardlink", "device"])
def test_a_malicious_archive_is_rejected_whole_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    f = live_factory(tmp_path / "f.db")
    f.snapshots.upload("w-evil", "default", AGENT, "conv-1", "manual", _malicious(kind))
    dest = tmp_path / "a" / "dest"
    dest.mkdir(parents=True)
    (dest / "keep").write_text("mine")
    with pytest.raises(ValidationError, match="unsafe or corrupt snapshot archive"):
        f.snapshots.restore_latest("default", AGENT, "conv-1", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["keep"]
    assert not (tmp_path / "a" / "escaped.txt").exists() and not (tmp_path / "escaped-dir").exists()
    assert not Path("/tmp/agent-factory-absolute-escape.txt").exists()


def test_snapshot_directory_skips_unsafe_links_and_restore_modes(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.txt").write_text("A")
    os.symlink("d/a.txt", src / "inner")
    os.symlink("/etc/passwd", src / "outer")
    taken = f.snapshots.snapshot_directory("w-1", "default", AGENT, "conv-1", "manual", src)
    assert (taken.archive.files, taken.archive.symlinks) == (1, 1)
    assert [s.split(":")[0] for s in taken.archive.skipped] == ["outer"]

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "local").write_text("L")
    f.snapshots.restore(taken.snapshot.snapshot_id, dest, mode="merge")
    assert sorted(p.name for p in dest.iterdir()) == ["d", "inner", "local"]
    assert os.readlink(dest / "inner") == "d/a.txt"
    restored = f.snapshots.restore_latest("default", AGENT, "conv-1", dest)
    assert restored is not None and sorted(p.name for p in dest.iterdir()) == ["d", "inner"]


def test_snapshot_helpers_reject_bad_input(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    with pytest.raises(ValidationError, match="cannot be read"):
        f.snapshots.snapshot_directory("w-1", "default", AGENT, "conv-1", "drain", tmp_path / "missing")
    with pytest.raises(ValidationError, match="conversationId is required"):
        f.snapshots.snapshot_directory("w-1", "default", AGENT, None, "drain", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="mode"):
        f.snapshots.restore_latest("default", AGENT, "conv-1", tmp_path, mode="wipe")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        f.snapshots.restore_latest("default", AGENT, "conv-1", 42)  # type: ignore[arg-type]
    with pytest.raises(af.NotFoundError):
        f.snapshots.restore("snap-unknown", tmp_path / "x")
    assert f.snapshots.list_for_worker("w-1") == []


def test_worker_rejects_bad_configuration(tmp_path: Path) -> None:
    f = live_factory(tmp_path / "f.db")
    with pytest.raises(ValidationError, match="module:function"):
        Worker(f, "w-1", "no_colon")
    with pytest.raises(ValidationError, match="cannot import"):
        Worker(f, "w-1", "agent_factory_no_such_module:handler")
    with pytest.raises(ValidationError, match="has no attribute"):
        Worker(f, "w-1", "agent_factory.worker:no_such_handler")
    with pytest.raises(ValidationError, match="max_jobs"):
        Worker(f, "w-1", echo_handler, max_jobs=0)
    with pytest.raises(TypeError, match="factory"):
        Worker(42, "w-1", echo_handler)  # type: ignore[arg-type]


# ---------------------------------------------------------------- subprocess workers


def worker_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT_FACTORY_", "OPENCLAW_")) and k not in ("WORKER_ID", "WORKSPACE_ID")
    }
    env.update(extra)
    return env


def spawn_worker(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent_factory", "worker", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_sigterm_mid_job_finishes_the_job_snapshots_with_reason_signal_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    f = live_factory(db)
    mid = f.queue.enqueue("conv-sig", AGENT, payload(text="slow one", metadata={"echo_sleep_ms": "1500"}))
    data = tmp_path / "data"
    proc = spawn_worker(env=worker_env(
        AGENT_FACTORY_DB=str(db),
        AGENT_FACTORY_WORKER_ID="w-sig",
        AGENT_FACTORY_HANDLER="agent_factory.worker:echo_handler",
        AGENT_FACTORY_DATA_DIR=str(data),
        WORKSPACE_ID="default",
    ))
    try:
        wait_until(lambda: f.queue.get_job(mid).status == "processing", what="the worker to claim")  # type: ignore[union-attr]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "received SIGTERM" in stderr
    assert f.queue.get_job(mid).status == "done"  # type: ignore[union-attr]
    (snap,) = f.snapshots.list_for_worker("w-sig")
    assert snap.reason == "signal" and snap.status == "ready" and snap.conversation_id == "conv-sig"
    fresh = tmp_path / "fresh"
    f.snapshots.restore(snap.snapshot_id, fresh)
    assert (fresh / "echo" / "messages.log").read_text() == f"{mid}\tslow one\n"


def test_sigint_while_idle_stops_at_once_with_exit_0(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    live_factory(db)
    proc = spawn_worker("--db", str(db), "--worker-id", "w-int", "--handler", "agent_factory.worker:echo_handler",
                        "--json", env=worker_env())
    try:
        time.sleep(1.0)  # polling with nothing to do
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["exit_reason"] == "signal" and report["final_snapshot"] is None


def test_pinned_subprocess_worker_uses_the_spawn_environment_and_restores(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    f = live_factory(db)
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "restored.txt").write_text("from the last worker")
    f.snapshots.snapshot_directory("w-before", "ws-1", AGENT, "conv-pin", "drain", seed)
    f.queue.enqueue("conv-other", AGENT, payload(text="not mine"))
    mid = f.queue.enqueue("conv-pin", AGENT, payload(text="mine"))
    data = tmp_path / "volume"
    proc = spawn_worker("--max-jobs", "1", "--json", env=worker_env(
        AGENT_FACTORY_DB=str(db),
        WORKER_ID="w-pinned",
        AGENT_FACTORY_HANDLER="agent_factory.worker:echo_handler",
        AGENT_FACTORY_DATA_DIR=str(data),
        WORKSPACE_ID="ws-1",
        OPENCLAW_AGENT_KEY=AGENT,
        OPENCLAW_CONVERSATION_ID="conv-pin",
    ))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["worker_id"] == "w-pinned" and report["exit_reason"] == "max_jobs" and report["exit_code"] == 0
    assert report["restored"]["snapshot"]["worker_id"] == "w-before"
    assert f.queue.get_job(mid).status == "done"  # type: ignore[union-attr]
    assert f.queue.stats().queued_ready == 1, "the other conversation is left alone"
    assert (data / "restored.txt").read_text() == "from the last worker"
    assert (data / "echo" / "messages.log").read_text() == f"{mid}\tmine\n"
    assert report["final_snapshot"]["workspace_id"] == "ws-1"


def test_cli_worker_options_and_usage_errors(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    f = live_factory(db)
    f.queue.enqueue("conv-1", AGENT, payload(text="x"))
    ok = subprocess.run(
        [sys.executable, "-m", "agent_factory", "worker", "--db", str(db), "--worker-id", "w-cli", "--mode", "pooled",
         "--handler", "agent_factory.worker:echo_handler", "--max-jobs", "1", "--quiet"],
        env=worker_env(), capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "w-cli stopped (max_jobs): 1 completed" in ok.stderr
    row = f.workers.get("w-cli")
    assert row is not None and row.mode == "pooled"

    def usage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent_factory", "worker", *args], env=worker_env(**env),
                              capture_output=True, text=True, timeout=60)

    no_db = usage("--handler", "agent_factory.worker:echo_handler")
    assert no_db.returncode == 2 and "AGENT_FACTORY_DB" in no_db.stderr
    missing = usage("--db", str(tmp_path / "missing.db"), "--handler", "m:f")
    assert missing.returncode == 2 and "no database" in missing.stderr
    no_handler = usage(AGENT_FACTORY_DB=str(db))
    assert no_handler.returncode == 2 and "AGENT_FACTORY_HANDLER" in no_handler.stderr
    bad_handler = usage("--db", str(db), "--handler", "nope_module:f")
    assert bad_handler.returncode == 2 and "cannot import" in bad_handler.stderr
    bad_env = usage("--db", str(db), "--handler", "agent_factory.worker:echo_handler", WORKER_IDLE_TIMEOUT_MS="soon")
    assert bad_env.returncode == 2 and "WORKER_IDLE_TIMEOUT_MS" in bad_env.stderr


def test_a_failed_final_snapshot_exits_3(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    f = live_factory(db)
    f.queue.enqueue("conv-1", AGENT, payload())
    data = tmp_path / "data"
    # A handler that leaves an unreadable file behind makes the archive fail (not as root).
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Root reads everything: break the snapshot by removing the data directory instead.
        handler = "test_worker_runtime:remove_data_dir_handler"
    else:
        handler = "test_worker_runtime:unreadable_file_handler"
    proc = subprocess.run(
        [sys.executable, "-m", "agent_factory", "worker", "--db", str(db), "--worker-id", "w-3",
         "--handler", handler, "--data-dir", str(data), "--max-jobs", "1"],
        env=worker_env(PYTHONPATH=str(Path(__file__).parent)), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "final snapshot failed" in proc.stderr


def remove_data_dir_handler(ctx: JobContext) -> None:
    """Test handler: deletes its own data directory, so the final snapshot cannot be taken."""
    import shutil

    shutil.rmtree(ctx.data_dir)


def unreadable_file_handler(ctx: JobContext) -> None:
    """Test handler: leaves a file the worker cannot read."""
    p = ctx.data_dir / "secret"
    p.write_text("x")
    p.chmod(0)


def test_a_worker_opening_the_database_records_its_idle_timeout_as_the_shutdown_time(tmp_path: Path) -> None:
    """The pool hands its idle timeout to worker processes (``WORKER_IDLE_TIMEOUT_MS``); a
    worker that opens the database itself must record that timeout, not the 30-minute
    default, when a job ends — otherwise the pool's idle shutdown never falls due."""
    db = tmp_path / "f.db"
    f = live_factory(db)
    f.queue.enqueue("conv-1", AGENT, payload())
    Worker(db, "w-idle", echo_handler, data_dir=tmp_path / "data", idle_timeout_ms=4_321, max_jobs=1).run()
    row = f.workers.get("w-idle")
    assert row is not None and row.last_claim_at is not None
    assert row.scheduled_shutdown_at == row.last_claim_at + 4_321
    # Given a factory, the worker keeps that factory's policy.
    f.queue.enqueue("conv-2", AGENT, payload())
    Worker(f, "w-given", echo_handler, data_dir=tmp_path / "data2", idle_timeout_ms=4_321, max_jobs=1).run()
    given = f.workers.get("w-given")
    assert given is not None and given.last_claim_at is not None
    assert given.scheduled_shutdown_at == given.last_claim_at + f.config.tunables().scaling.idle_timeout_ms
