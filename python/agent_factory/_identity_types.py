"""Result types of ``factory.identity`` and ``factory.templates``.

Frozen dataclasses with attribute access, a readable ``repr``, ``to_dict()`` and
an HTML table for notebooks (see ``_types._Record``). ``metadata`` fields are
plain dicts of strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ._types import HistoryEntry, Job, _Record

__all__ = [
    "Binding",
    "BindingTarget",
    "PairingCode",
    "UserAgent",
    "UserAgentsOverview",
    "UserAgentPairing",
    "UserAgentConversation",
    "MessageTemplate",
    "TemplateSend",
]


@dataclass(frozen=True, slots=True)
class Binding(_Record):
    """A user's binding to an agent. ``status`` is ``active`` or ``revoked``;
    ``source`` is ``manual``, ``telegram_pairing`` or ``api``. The conversation id
    is always ``user-agent:<agent_key>:<consumer_user_id>``, so history survives
    re-pairing."""

    consumer_user_id: str
    agent_key: str
    conversation_id: str
    bot_identity: str | None
    status: str
    source: str
    telegram_user_id: str | None
    telegram_chat_id: str | None
    metadata: dict[str, Any] | None
    bound_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class BindingTarget(_Record):
    """Where an active binding routes messages: its user, agent, stable
    conversation and Telegram ids (``None`` when not paired over Telegram)."""

    consumer_user_id: str
    agent_key: str
    conversation_id: str
    bot_identity: str | None
    telegram_user_id: str | None
    telegram_chat_id: str | None


@dataclass(frozen=True, slots=True)
class PairingCode(_Record):
    """A one-time Telegram pairing code (send ``/start <code>`` to the bot).
    ``status`` is ``pending``, ``used`` or ``expired``; a pending code past
    ``expires_at`` is reported as ``expired``."""

    code: str
    consumer_user_id: str
    agent_key: str
    bot_identity: str | None
    status: str
    created_at: int
    expires_at: int
    used_at: int | None
    telegram_user_id: str | None
    telegram_chat_id: str | None


@dataclass(frozen=True, slots=True)
class UserAgent(_Record):
    """One agent of a user as a consumer app shows it.

    ``status``: ``active`` (bound, agent enabled), ``failed`` (bound, agent
    disabled), ``pairing`` (a live pairing code), ``disabled`` (binding revoked or
    agent disabled) or ``draft``. ``pairing_status`` is ``used`` while bound, else
    the newest pending code's ``pending``/``expired``, else ``None``. The ``can_*``
    flags are true exactly when ``status == "active"`` (``can_create_new_agent``:
    the user has no active binding)."""

    consumer_user_id: str
    agent_key: str
    display_name: str | None
    telegram_username: str | None
    bot_identity: str | None
    version: str | None
    status: str
    binding_status: str | None
    pairing_status: str | None
    conversation_id: str
    can_create_new_agent: bool
    can_disable: bool
    can_chat: bool
    can_manage_push_jobs: bool


@dataclass(frozen=True, slots=True)
class UserAgentsOverview(_Record):
    """All agents of a user, the active one's key, and whether they may create a new one."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"agents": UserAgent}

    agents: list[UserAgent]
    active_agent_key: str | None
    can_create_new_agent: bool


@dataclass(frozen=True, slots=True)
class UserAgentPairing(_Record):
    """A new pairing code and its ``https://t.me/<bot>?start=<code>`` link
    (``None`` when the bot's Telegram username is not known)."""

    _nested: ClassVar[Mapping[str, type]] = {"pairing": PairingCode}

    pairing: PairingCode
    deep_link: str | None


@dataclass(frozen=True, slots=True)
class UserAgentConversation(_Record):
    """A user's agent conversation: bounded history (oldest first), recent queue
    items (newest first), whether work is pending, the newest message id and the
    last user / assistant message times."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"context_history": HistoryEntry, "queue_items": Job}

    consumer_user_id: str
    conversation_id: str
    agent_key: str
    state: str
    context_history: list[HistoryEntry]
    queue_items: list[Job]
    has_queued_jobs: bool
    locked_by: str | None
    last_user_message_at: int | None
    last_assistant_message_at: int | None
    latest_message_id: str | None


@dataclass(frozen=True, slots=True)
class MessageTemplate(_Record):
    """A reusable one-shot message. ``template_key`` is derived from the title and
    globally unique; ``tags`` are normalised (trimmed, lower-case, sorted, unique)."""

    template_id: str
    template_key: str
    title: str
    text: str
    tags: list[str]
    usage_count: int
    enabled: bool
    created_by: str
    updated_by: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class TemplateSend(_Record):
    """What sending a template did: the enqueued message and the new usage count."""

    message_id: str
    usage_count: int
