"""In-process fakes of the remote APIs agent-factory talks to, for tests.

They speak the real paths and JSON shapes over real HTTP on loopback, so the
code under test runs unchanged; see :class:`agent_factory.fakes.fly.FakeFly` and
:class:`agent_factory.fakes.telegram.FakeTelegram`.
"""

from __future__ import annotations

from .fly import FakeCall, FakeFly, FakeMachine, FakeVolume
from .telegram import FakeBot, FakeTelegram, FakeTelegramCall, FakeTelegramFile, FakeWebhook

__all__ = [
    "FakeBot",
    "FakeCall",
    "FakeFly",
    "FakeMachine",
    "FakeTelegram",
    "FakeTelegramCall",
    "FakeTelegramFile",
    "FakeVolume",
    "FakeWebhook",
]
