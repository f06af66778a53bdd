"""Small builders shared by tests (import as ``from helpers import payload``)."""

from __future__ import annotations

from typing import Any


def payload(user: str = "u1", text: str = "hello", **extra: Any) -> dict[str, Any]:
    """A minimal valid Telegram-style payload."""
    return {"provider": "telegram", "providerUserId": user, "messageText": text, **extra}
