"""Immutable result types of ``factory.telegram``.

Frozen dataclasses built on :class:`agent_factory._types._Record`: attribute
access, a readable ``repr``, ``to_dict()`` and an HTML table for notebooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from ._types import _Record

__all__ = [
    "AttachmentExpiry",
    "BotIdentity",
    "ImportedTelegramToken",
    "IngestResult",
    "IngestStatus",
    "NextAction",
    "OnboardingState",
    "ProviderReadiness",
    "SkippedAttachment",
    "TelegramApiConfig",
    "TelegramReadiness",
    "WebhookSetup",
    "WebhookStatus",
]

#: What happened to an update.
IngestStatus = Literal["enqueued", "duplicate", "paired", "ignored"]
#: The next onboarding step.
NextAction = Literal["import_token", "configure_webhook", "create_pairing", "complete_pairing", "ready"]


@dataclass(frozen=True, slots=True)
class TelegramApiConfig(_Record):
    """How agent-factory talks to the Bot API (stored in the database, shared by
    every process on it). ``max_retry_after_ms``: a 429 asking to wait longer fails
    the call at once; ``max_file_bytes``: larger attachments are skipped."""

    base_url: str
    timeout_ms: int
    max_retries: int
    backoff_ms: int
    max_backoff_ms: int
    max_retry_after_ms: int
    max_file_bytes: int


@dataclass(frozen=True, slots=True)
class SkippedAttachment(_Record):
    """A media item of an update that was not stored (``reason``: ``too_large``)."""

    kind: str
    telegram_file_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class IngestResult(_Record):
    """What ingesting one update did.

    ``status``: ``enqueued`` (``message_id`` / ``conversation_id`` name the new
    message), ``duplicate`` (handled before; the first delivery's message),
    ``paired`` (a ``/start <code>`` bound ``consumer_user_id`` to ``agent_key``) or
    ``ignored`` (``reason`` says why). ``attachments`` counts stored files."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"skipped_attachments": SkippedAttachment}

    status: IngestStatus
    update_id: int
    bot_identity: str | None
    agent_key: str | None
    message_id: str | None
    conversation_id: str | None
    consumer_user_id: str | None
    reason: str | None
    attachments: int
    skipped_attachments: list[SkippedAttachment]


@dataclass(frozen=True, slots=True)
class WebhookSetup(_Record):
    """The result of ``configure_webhook``: the URL set, what ``getWebhookInfo``
    reported (``is_ready`` when it is exactly ``webhook_url``), and the bot."""

    agent_key: str
    webhook_url: str
    current_url: str | None
    bot_identity: str
    bot_username: str | None
    secret_token_configured: bool
    is_ready: bool
    pending_update_count: int
    last_error_message: str | None
    last_error_date: int | None
    description: str


@dataclass(frozen=True, slots=True)
class WebhookStatus(_Record):
    """An agent's webhook as Telegram reports it now. ``webhook_ready`` when the
    reported URL is the configured one (``expected_url``) and a secret is stored."""

    agent_key: str
    bot_identity: str | None
    secret_ref: str | None
    expected_url: str | None
    current_url: str | None
    pending_update_count: int
    last_error_message: str | None
    last_error_date: int | None
    secret_configured: bool
    webhook_ready: bool


@dataclass(frozen=True, slots=True)
class ImportedTelegramToken(_Record):
    """A bot token stored for an agent after ``getMe`` accepted it."""

    secret_id: int
    secret_ref: str
    version: int
    bot_identity: str
    telegram_username: str | None


@dataclass(frozen=True, slots=True)
class BotIdentity(_Record):
    """The bot behind an agent's token, as ``getMe`` reported it."""

    agent_key: str
    secret_ref: str
    bot_identity: str
    telegram_username: str | None


@dataclass(frozen=True, slots=True)
class OnboardingState(_Record):
    """Where a consumer user stands in connecting an agent's Telegram bot;
    ``next_action`` walks ``import_token`` → ``configure_webhook`` →
    ``create_pairing`` → ``complete_pairing`` → ``ready``."""

    agent_key: str
    telegram_username: str | None
    bot_identity: str | None
    token_secret_ref: str
    token_imported: bool
    webhook_ready: bool
    pairing_code: str | None
    pairing_status: str | None
    pairing_deep_link: str | None
    next_action: NextAction


@dataclass(frozen=True, slots=True)
class ProviderReadiness(_Record):
    """Whether the provider and message runtime configs are stored."""

    provider_runtime_config_present: bool
    worker_runtime_config_present: bool
    issues: list[str]


@dataclass(frozen=True, slots=True)
class TelegramReadiness(_Record):
    """Whether an agent can receive Telegram messages; ``issues`` lists what is in the way."""

    agent_key: str
    missing_secrets: list[str]
    has_telegram_token: bool
    bot_identity: str | None
    webhook_ready: bool
    paired: bool
    provider_runtime_config_present: bool
    worker_runtime_config_present: bool
    issues: list[str]


@dataclass(frozen=True, slots=True)
class AttachmentExpiry(_Record):
    """Counts of one attachment sweep: attachments expired (the seed's count),
    payloads updated, blob files deleted or kept (still shared), old update
    de-duplication rows pruned."""

    expired: int
    payloads_updated: int
    blobs_deleted: int
    blobs_kept: int
    updates_pruned: int
