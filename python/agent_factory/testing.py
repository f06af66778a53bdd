"""pytest plugin: fixtures that give a test a working agent-factory in one line.

Registered through the ``pytest11`` entry point, so installing the package makes
these fixtures available everywhere:

- ``manual_clock``: a :class:`ManualClock` starting at 2026-01-01T00:00:00Z;
- ``factory_path``: a fresh database path in ``tmp_path``;
- ``factory``: a :class:`Factory` on that path, driven by ``manual_clock``;
- ``async_factory``: an :class:`AsyncFactory` on the same file and clock;
- ``workboard`` / ``async_workboard``: a :class:`Workboard` / :class:`AsyncWorkboard`
  on the same file and clock as ``factory``;
- ``fake_fly``: a running :class:`FakeFly` (fake Fly Machines API on loopback,
  app ``agent-factory-workers-test``, token ``fly-token``), closed after the test;
- ``fake_telegram``: a running :class:`FakeTelegram` (fake Telegram Bot API on
  loopback with one bot), closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import AsyncFactory, AsyncWorkboard, Factory, ManualClock, Workboard
from .fakes.fly import FakeFly
from .fakes.telegram import FakeTelegram

__all__ = ["EPOCH_2026_MS", "FakeFly", "FakeTelegram"]

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
