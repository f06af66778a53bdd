"""In-process fakes of the remote APIs agent-factory talks to, for tests.

They speak the real paths and JSON shapes over real HTTP on loopback, so the
code under test runs unchanged; see :class:`agent_factory.fakes.fly.FakeFly`.
"""

from __future__ import annotations

from .fly import FakeCall, FakeFly, FakeMachine, FakeVolume

__all__ = ["FakeCall", "FakeFly", "FakeMachine", "FakeVolume"]
