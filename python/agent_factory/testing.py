"""pytest plugin: fixtures that give a test a working agent-factory in one line.

Registered through the ``pytest11`` entry point, so installing the package makes
these fixtures available to every test suite (no ``conftest.py`` import needed).
All fixtures are function-scoped: each test gets fresh ones.

``manual_clock``
    A :class:`ManualClock` at 2026-01-01T00:00:00Z (:data:`EPOCH_2026_MS`); it
    only moves when the test calls ``set`` / ``advance``. No teardown.
``factory_path``
    ``tmp_path / "factory.db"``: a fresh database path (the file is created by the
    first factory opened on it). pytest's ``tmp_path`` cleanup removes it.
``factory``
    A blocking :class:`Factory` on ``factory_path``, driven by ``manual_clock``.
``async_factory``
    An :class:`AsyncFactory` on the same file and clock as ``factory``.
``workboard`` / ``async_workboard``
    A :class:`Workboard` / :class:`AsyncWorkboard` on the same file and clock as
    ``factory`` (a card dispatched to the queue is visible to both).
``fake_fly``
    A running :class:`FakeFly`: the Fly Machines REST API on loopback (app
    ``agent-factory-workers-test``, token ``fly-token``); point
    ``FlyMachines(base_url=fake_fly.base_url)`` or a ``FlyProvider`` at it. Its
    server is shut down after the test.
``fake_telegram``
    A running :class:`FakeTelegram`: the Telegram Bot API on loopback with one
    bot; point ``factory.telegram.set_api_config(base_url=fake_telegram.base_url)``
    at it. Its server is shut down after the test.
``local_pool``
    A :class:`LocalPool` on ``factory_path``, not yet started: call
    ``local_pool.start(handler="pkg.mod:handle", max_workers=4)`` to run a pool
    control loop in a background thread that spawns real worker *processes*
    (``python -m agent_factory worker``) running the handler, then
    ``local_pool.enqueue(...)`` (or ``local_pool.factory.queue.enqueue(...)``)
    and ``local_pool.wait_until_idle(timeout=30)``. ``local_pool.factory`` is a
    real-clock :class:`Factory` on the same file (processes need real time, so
    the pool never uses ``manual_clock``). Workers run in the pytest root
    directory with it on their ``PYTHONPATH``, so a handler module of the project
    under test imports. Teardown stops the loop, drains every worker (it
    finishes its message and uploads its final snapshot), tears them down, kills
    what would not stop and fails the test if a worker process is still alive.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import AsyncFactory, AsyncWorkboard, Factory, ManualClock, Workboard
from ._testing_pool import DEFAULT_TEST_AGENT, LocalPool
from .fakes.fly import FakeFly
from .fakes.telegram import FakeTelegram

__all__ = ["DEFAULT_TEST_AGENT", "EPOCH_2026_MS", "FakeFly", "FakeTelegram", "LocalPool"]

#: 2026-01-01T00:00:00Z, the default start of ``manual_clock``.
EPOCH_2026_MS = 1_767_225_600_000


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that only moves when the test says so."""
    return ManualClock(EPOCH_2026_MS)


@pytest.fixture
def factory_path(tmp_path: Path) -> Path:
    """A database path inside the test's temporary directory."""
    return tmp_path / "factory.db"


@pytest.fixture
def factory(factory_path: Path, manual_clock: ManualClock) -> Factory:
    """A blocking factory on a fresh file database."""
    return Factory(factory_path, clock=manual_clock)


@pytest.fixture
def async_factory(factory_path: Path, manual_clock: ManualClock) -> AsyncFactory:
    """An asyncio factory on the same fresh database file as ``factory``."""
    return AsyncFactory(factory_path, clock=manual_clock)


@pytest.fixture
def workboard(factory_path: Path, manual_clock: ManualClock) -> Workboard:
    """A blocking workboard on the same database file and clock as ``factory``."""
    return Workboard(factory_path, clock=manual_clock)


@pytest.fixture
def async_workboard(factory_path: Path, manual_clock: ManualClock) -> AsyncWorkboard:
    """An asyncio workboard on the same database file and clock as ``factory``."""
    return AsyncWorkboard(factory_path, clock=manual_clock)


@pytest.fixture
def fake_fly() -> Iterator[FakeFly]:
    """A fake Fly Machines API on loopback; point ``FlyMachines(base_url=fake_fly.base_url)`` at it."""
    with FakeFly() as fake:
        yield fake


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """A fake Telegram Bot API on loopback; point ``factory.telegram.set_api_config(base_url=fake_telegram.base_url)`` at it."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def local_pool(factory_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalPool]:
    """A local worker pool on ``factory_path``; ``start(handler=...)`` it, enqueue, ``wait_until_idle()``."""
    root = request.config.rootpath
    pool = LocalPool(factory_path, pythonpath=[root], cwd=root)
    try:
        yield pool
    finally:
        pool.close()
