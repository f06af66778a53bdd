"""The pool with the local-process provider: real worker subprocesses and data directories.

The worker command here is a tiny recorder script (not the worker runtime): it
writes its pid and environment to ``$AGENT_FACTORY_DATA_DIR/env.json`` and
sleeps, so the tests see exactly what a spawned worker receives and can kill it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_factory import Factory, LocalProvider, ManualClock, ScalingPolicy, ValidationError
from helpers import payload

RECORDER = """
import json, os, signal, sys, time
if os.environ.get("RECORDER_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
path = os.path.join(os.environ.get("AGENT_FACTORY_DATA_DIR", "."), "env.json")
with open(path + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "env": dict(os.environ)}, f)
os.replace(path + ".tmp", path)
time.sleep(float(os.environ.get("RECORDER_SLEEP", "60")))
"""

SCALING = ScalingPolicy(max_workers=3, spawn_step=3, idle_timeout_ms=300_000)
# A spawned worker not yet heard from (the recorder below never talks to the
# database) gets the startup grace on top of its idle timeout.
STARTUP_GRACE_MS = 90_000


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not met in time"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def exists(pid: int) -> bool:
    """Whether ``pid`` exists at all (a zombie counts)."""
    return Path(f"/proc/{pid}").exists()


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    return script


@pytest.fixture
def data_root(factory_path: Path) -> Path:
    return Path(f"{factory_path}.workers")


@pytest.fixture
def local(recorder: Path) -> Callable[..., LocalProvider]:
    def make(**env: str) -> LocalProvider:
        return LocalProvider(command=[sys.executable, str(recorder)], env=env or None, stop_grace_ms=2_000)

    return make


@pytest.fixture(autouse=True)
def no_stray_workers(data_root: Path) -> Iterator[None]:
    """Kill whatever a failing test left running."""
    yield
    for env_file in data_root.glob("volumes/*/env.json"):
        pid = json.loads(env_file.read_text())["pid"]
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def agent(factory: Factory) -> str:
    factory.agents.upsert_agent("support-agent", secrets_ref=[])
    return "support-agent"


def spawn(factory: Factory, provider: LocalProvider, agent: str, conversation: str = "telegram:chat:1") -> str:
    factory.queue.enqueue(conversation, agent, payload())
    report = factory.pool.reconcile(provider=provider, scaling=SCALING)
    assert report.spawned == 1, report
    return report.spawned_worker_ids[0]


def recorded(factory: Factory, data_root: Path, worker_id: str) -> dict[str, Any]:
    w = factory.workers.get(worker_id)
    assert w is not None and w.volume_id is not None
    env_file = data_root / "volumes" / w.volume_id / "env.json"
    wait_until(env_file.exists, what=f"{env_file} written")
    return json.loads(env_file.read_text())  # type: ignore[no-any-return]


def test_spawn_passes_the_environment_contract(
    factory: Factory, factory_path: Path, data_root: Path, recorder: Path, agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.agents.upsert_agent("support-agent", secrets_ref=[], bridge_config={"enabled": True, "service_id": "svc-1"})
    factory.secrets.import_plaintext("agent-bridge.linkingSharedSecret", "link-secret")
    monkeypatch.setenv("AGENT_FACTORY_MASTER_KEY", "inherited-master-key")
    monkeypatch.setenv("OPENCLAW_SERVICE_KEY", "stale-parent-value")  # contract keys are never inherited
    provider = LocalProvider(
        command=[sys.executable, str(recorder)], handler="my_bot.handlers:handle", env={"EXTRA_FLAG": "1"}
    )
    wid = spawn(factory, provider, agent)
    w = factory.workers.get(wid)
    assert w is not None and w.provider == "local" and w.app_name == "local" and w.machine_id
    env = recorded(factory, data_root, wid)["env"]
    assert env["AGENT_FACTORY_DB"] == str(factory_path)
    assert env["AGENT_FACTORY_WORKER_ID"] == env["WORKER_ID"] == wid
    assert env["WORKSPACE_ID"] == "default"
    assert env["WORKER_IDLE_TIMEOUT_MS"] == "300000"
    assert env["OPENCLAW_AGENT_KEY"] == "support-agent"
    assert env["OPENCLAW_CONVERSATION_ID"] == "telegram:chat:1"
    assert env["AGENT_FACTORY_DATA_DIR"] == str(data_root / "volumes" / (w.volume_id or ""))
    assert env["AGENT_FACTORY_HANDLER"] == "my_bot.handlers:handle"
    assert env["OPENCLAW_SERVICE_ID"] == "svc-1"
    assert env["OPENCLAW_LINKING_SHARED_SECRET"] == "link-secret"
    assert "OPENCLAW_SERVICE_KEY" not in env
    assert env["AGENT_FACTORY_MASTER_KEY"] == "inherited-master-key"
    assert env["EXTRA_FLAG"] == "1"
    assert (data_root / "logs" / f"{wid}.log").exists()
    assert oct((data_root / "volumes").stat().st_mode & 0o777) == "0o700"


def test_a_killed_worker_is_seen_stopped_reaped_and_torn_down(
    factory: Factory, data_root: Path, local: Callable[..., LocalProvider], agent: str
) -> None:
    provider = local()
    wid = spawn(factory, provider, agent)
    pid = recorded(factory, data_root, wid)["pid"]
    status = factory.pool.status(provider=provider)
    assert [(m.name, m.state) for m in status.machines] == [(wid, "started")]
    os.kill(pid, signal.SIGKILL)

    def seen_stopped() -> bool:
        return factory.pool.status(provider=provider).machines[0].state == "stopped"

    wait_until(seen_stopped, what="killed worker seen as stopped")
    assert not exists(pid), "the killed worker was not reaped (zombie)"
    report = factory.pool.check_idle_shutdowns(provider=provider, scaling=SCALING)
    assert report.drained_worker_ids == [wid] and report.torn_down_worker_ids == [wid]
    w = factory.workers.get(wid)
    assert w is not None and w.status == "stopped" and w.stop_reason == "machine_stopped"
    assert list((data_root / "volumes").iterdir()) == []
    assert list((data_root / "machines").iterdir()) == []


def test_machines_survive_a_restart_of_the_control_loop(
    factory: Factory, factory_path: Path, data_root: Path, local: Callable[..., LocalProvider], agent: str
) -> None:
    provider = local()
    wid = spawn(factory, provider, agent)
    pid = recorded(factory, data_root, wid)["pid"]
    # Another process (a restarted control loop) opens the database and looks.
    probe = (
        "import json, sys; from agent_factory import Factory, LocalProvider\n"
        f"s = Factory({str(factory_path)!r}).pool.status(provider=LocalProvider())\n"
        "print(json.dumps({'machines': [[m.name, m.state] for m in s.machines], 'untracked': s.untracked_machines,"
        " 'workers': [w.worker_id for w in s.workers]}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(out.stdout)
    assert seen == {"machines": [[wid, "started"]], "untracked": [], "workers": [wid]}
    assert alive(pid)
    # A second reconcile here neither respawns nor loses it.
    report = factory.pool.reconcile(provider=local(), scaling=SCALING)
    assert report.spawned == 0 and report.active_workers == 1


def test_teardown_stops_the_process_and_removes_its_directories(
    factory: Factory, manual_clock: ManualClock, data_root: Path, local: Callable[..., LocalProvider], agent: str
) -> None:
    provider = local()
    wid = spawn(factory, provider, agent)
    pid = recorded(factory, data_root, wid)["pid"]
    manual_clock.advance(SCALING.idle_timeout_ms + STARTUP_GRACE_MS + 1)
    report = factory.pool.check_idle_shutdowns(provider=provider, scaling=SCALING)
    assert report.torn_down_worker_ids == [wid]
    assert not exists(pid)
    w = factory.workers.get(wid)
    assert w is not None and w.status == "stopped" and w.stop_reason == "idle_timeout"
    assert (w.machine_id, w.volume_id) == (None, None)
    assert list((data_root / "volumes").iterdir()) == []
    assert list((data_root / "machines").iterdir()) == []
    assert factory.pool.status(provider=provider).machines == []


def test_stop_escalates_to_sigkill_after_the_grace(
    factory: Factory, manual_clock: ManualClock, data_root: Path, recorder: Path, agent: str
) -> None:
    provider = LocalProvider(
        command=[sys.executable, str(recorder)], env={"RECORDER_IGNORE_TERM": "1"}, stop_grace_ms=300
    )
    wid = spawn(factory, provider, agent)
    pid = recorded(factory, data_root, wid)["pid"]
    manual_clock.advance(SCALING.idle_timeout_ms + STARTUP_GRACE_MS + 1)
    started = time.monotonic()
    report = factory.pool.check_idle_shutdowns(provider=provider, scaling=SCALING)
    assert report.torn_down_worker_ids == [wid]
    assert time.monotonic() - started >= 0.3
    assert not exists(pid)


def test_an_exited_worker_is_not_a_zombie(
    factory: Factory, data_root: Path, local: Callable[..., LocalProvider], agent: str
) -> None:
    provider = local(RECORDER_SLEEP="0")
    wid = spawn(factory, provider, agent)
    pid = recorded(factory, data_root, wid)["pid"]
    wait_until(
        lambda: factory.pool.status(provider=provider).machines[0].state == "stopped", what="exited worker stopped"
    )
    assert not exists(pid)


def test_several_conversations_get_distinct_workers_and_directories(
    factory: Factory, data_root: Path, local: Callable[..., LocalProvider], agent: str
) -> None:
    for i in range(3):
        factory.queue.enqueue(f"telegram:chat:{i}", agent, payload())
    report = factory.pool.reconcile(provider=local(), scaling=SCALING)
    assert report.spawned == 3
    assert len(set(report.spawned_worker_ids)) == 3
    envs = [recorded(factory, data_root, wid)["env"] for wid in report.spawned_worker_ids]
    assert sorted(e["OPENCLAW_CONVERSATION_ID"] for e in envs) == [f"telegram:chat:{i}" for i in range(3)]
    assert len({e["AGENT_FACTORY_DATA_DIR"] for e in envs}) == 3
    # max_workers bounds live workers: a fourth conversation waits.
    factory.queue.enqueue("telegram:chat:3", agent, payload())
    assert factory.pool.reconcile(provider=local(), scaling=SCALING).spawned == 0


def test_the_local_provider_needs_a_database_file(recorder: Path) -> None:
    factory = Factory(":memory:")
    factory.agents.upsert_agent("a", secrets_ref=[])
    with pytest.raises(ValidationError, match="database file"):
        factory.pool.reconcile(provider=LocalProvider(command=[sys.executable, str(recorder)]))


def test_the_stored_config_selects_the_local_provider_by_default(
    factory: Factory, data_root: Path, recorder: Path, agent: str
) -> None:
    """With no provider configured, the pool runs local processes (the embedded default)."""
    report = factory.pool.reconcile(scaling=SCALING)
    assert report.spawned == 0
    assert (data_root / "machines").is_dir()
    with pytest.raises(TypeError, match="LocalProvider, a FlyProvider or None"):
        factory.pool.reconcile(provider="local")  # type: ignore[arg-type]
