"""The pytest plugin: fixtures arrive through the ``pytest11`` entry point, and
``local_pool`` runs real worker processes with a project's handler and leaves
none behind."""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from pathlib import Path

import pytest

from agent_factory import InvalidStateError, ValidationError
from agent_factory.testing import LocalPool

pytest_plugins = ("pytester",)

ECHO = "agent_factory.worker:echo_handler"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "agent_factory"]
    assert entry.value == "agent_factory.testing"


def test_every_fixture_is_documented_in_the_module_docstring() -> None:
    import agent_factory.testing as plugin

    fixtures = [name for name, value in vars(plugin).items() if hasattr(value, "_fixture_function_marker")
                or type(value).__name__ == "FixtureFunctionDefinition"]
    assert set(fixtures) >= {"manual_clock", "factory_path", "factory", "async_factory", "workboard",
                             "async_workboard", "fake_fly", "fake_telegram", "local_pool"}
    for name in fixtures:
        assert f"``{name}``" in (plugin.__doc__ or ""), name


SUITE = '''
from agent_factory import Factory, FlyMachines, ManualClock, Workboard
from agent_factory.testing import EPOCH_2026_MS

def test_clock_factory_and_board_share_one_file(factory, workboard, manual_clock, factory_path):
    assert manual_clock.now_ms() == EPOCH_2026_MS
    factory.agents.upsert_agent("bot", secrets_ref=[])
    message = factory.queue.enqueue("c1", "bot", {"provider": "t", "providerUserId": "u", "messageText": "hi"})
    card = workboard.create("Card")
    assert Factory(factory_path).queue.get_job(message).status == "queued"
    assert Workboard(factory_path).get(card.id).title == "Card"
    manual_clock.advance(1_000)
    assert factory.now_ms() == workboard.now_ms() == EPOCH_2026_MS + 1_000

async def test_async_fixtures(async_factory, async_workboard):
    await async_factory.agents.upsert_agent("bot", secrets_ref=[])
    assert (await async_workboard.create("Async card")).title == "Async card"

def test_fakes_answer_on_loopback(fake_fly, fake_telegram):
    assert fake_fly.base_url.startswith("http://127.0.0.1:")
    assert fake_telegram.base_url.startswith("http://127.0.0.1:")
'''


def test_a_suite_gets_the_fixtures_without_any_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


#: A user project: a handler package and a test that uses only the plugin's fixtures.
PROJECT_HANDLER = '''
import os
from pathlib import Path

def handle(ctx):
    Path(os.environ["PIDS_DIR"], str(os.getpid())).touch()
    return "seen: " + (ctx.message_text or "")
'''

PROJECT_TEST = '''
import os

def test_pool(local_pool, tmp_path):
    local_pool.start(handler="mybot.handlers:handle", max_workers=2, env={"PIDS_DIR": os.environ["PIDS_DIR"]})
    ids = [local_pool.enqueue(f"chat:{i % 2}", f"m{i}") for i in range(6)]
    local_pool.wait_until_idle(timeout=60)
    assert local_pool.replies("chat:0") == ["seen: m0", "seen: m2", "seen: m4"]
    assert local_pool.replies("chat:1") == ["seen: m1", "seen: m3", "seen: m5"]
    assert {local_pool.factory.queue.get_job(i).status for i in ids} == {"done"}
    assert os.listdir(os.environ["PIDS_DIR"]) and str(os.getpid()) not in os.listdir(os.environ["PIDS_DIR"])
'''


def test_local_pool_runs_the_projects_handler_in_worker_processes_and_leaves_none(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    monkeypatch.setenv("PIDS_DIR", str(pids_dir))
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\naddopts = "-p no:asyncio"\n')
    pytester.mkpydir("mybot")
    (pytester.path / "mybot" / "handlers.py").write_text(PROJECT_HANDLER)
    pytester.makepyfile(test_project=PROJECT_TEST)
    # The handler package is not installed: the fixture makes the project root importable
    # for the workers. Run from elsewhere to prove the root (not the cwd) is what counts.
    monkeypatch.chdir(tmp_path)
    result = pytester.runpytest_subprocess(str(pytester.path), "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pids = [int(p.name) for p in pids_dir.iterdir()]
    assert pids and os.getpid() not in pids
    assert not any(alive(pid) for pid in pids), "worker processes outlived the test session"


def test_close_drains_every_worker_with_a_final_snapshot(local_pool: LocalPool) -> None:
    local_pool.start(handler=ECHO, max_workers=2)
    for i in range(4):
        local_pool.enqueue(f"chat:{i % 2}", f"hello {i}")
    local_pool.wait_until_idle(timeout=60)
    assert local_pool.replies("chat:0") == ["echo: hello 0", "echo: hello 2"]
    workers = local_pool.running_workers()
    assert len(workers) == 2
    records = [json.loads(p.read_text()) for p in (local_pool.data_root / "machines").glob("*.json")]
    pids = [int(r["pid"]) for r in records]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)

    local_pool.close()

    assert not local_pool.running and local_pool.running_workers() == []
    for w in workers:
        row = local_pool.factory.workers.get(w.worker_id)
        assert row is not None and row.status == "stopped"
        assert [s.status for s in local_pool.factory.snapshots.list_for_worker(w.worker_id)] == ["ready"]
    assert not any(alive(pid) for pid in pids)
    assert local_pool.errors == []
    local_pool.close()  # idempotent


def test_wait_for_waits_for_the_given_messages(local_pool: LocalPool) -> None:
    local_pool.start(handler=ECHO, max_workers=1)
    ids = [local_pool.enqueue("chat:w", f"m{i}") for i in range(3)]
    local_pool.wait_for(ids, timeout=60)
    assert [local_pool.factory.queue.get_job(i).status for i in ids] == ["done"] * 3  # type: ignore[union-attr]
    unknown = str(max(int(i) for i in ids) + 1_000)  # well-formed, never issued
    with pytest.raises(ValidationError, match="unknown message id"):
        local_pool.wait_for([unknown], timeout=1)
    with pytest.raises(ValidationError, match="not a valid message id"):
        local_pool.wait_for(["no-such-message"], timeout=1)


def test_a_handler_that_cannot_be_imported_times_out_with_the_worker_log(local_pool: LocalPool) -> None:
    local_pool.start(handler="no_such_package.handlers:handle", max_workers=1)
    local_pool.enqueue("chat:x", "hello")
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        local_pool.wait_until_idle(timeout=3)
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "queue idle: not reached within 3 s" in message
    assert "queue: ready=" in message
    assert "cannot import handler module 'no_such_package.handlers'" in message


def test_bad_arguments_and_states_are_rejected(local_pool: LocalPool) -> None:
    with pytest.raises(InvalidStateError, match="not running"):
        local_pool.wait_until_idle(timeout=1)
    for handler in ("no_colon", "a:b:c", ":handle", "mod:", 42):
        with pytest.raises(ValidationError, match="module:function"):
            local_pool.start(handler=handler)  # type: ignore[arg-type]
    for name in ("max_workers", "idle_timeout_ms", "tick_ms", "poll_interval_ms"):
        for value in (0, -1, 1.5, True, "3"):
            with pytest.raises(ValidationError, match=name):
                local_pool.start(handler=ECHO, **{name: value})  # type: ignore[arg-type]
    assert not local_pool.running and local_pool.running_workers() == []
    local_pool.start(handler=ECHO, max_workers=1)
    with pytest.raises(InvalidStateError, match="already running"):
        local_pool.start(handler=ECHO)
    with pytest.raises(ValidationError, match="timeout"):
        local_pool.wait_until_idle(timeout=0)
    local_pool.close()
    with pytest.raises(InvalidStateError, match="closed"):
        local_pool.start(handler=ECHO)
