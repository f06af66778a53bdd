"""Shared helpers for the test suite (fixtures come from agent_factory.testing)."""

from __future__ import annotations

import pytest

from agent_factory import Factory


@pytest.fixture
def support_agent(factory: Factory) -> str:
    """An enabled agent named ``support-agent`` with no secrets."""
    factory.agents.upsert_agent("support-agent", version="1.0.0", secrets_ref=[], enabled=True)
    return "support-agent"
