"""The asyncio API of ``factory.identity``; ``_sync_identity.py`` is generated from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from ._area import _Area, _str_dict, _str_list
from ._identity_types import (
    Binding,
    BindingTarget,
    PairingCode,
    UserAgent,
    UserAgentConversation,
    UserAgentPairing,
    UserAgentsOverview,
)
from ._record_list import RecordList
from ._types import Job, Snapshot

_IS_ASYNC = True

__all__ = ["AsyncIdentityApi"]

BindingSource = Literal["manual", "telegram_pairing", "api"]


class AsyncIdentityApi(_Area):
    """Identity bindings, pairing codes and user-agent views: ``factory.identity``.

    A consumer user has at most one active binding to an agent; its conversation
    is always ``user-agent:<agent_key>:<consumer_user_id>``, so history survives
    rebinding and re-pairing. Pairing codes (12 characters from a 31-symbol
    alphabet drawn by the OS CSPRNG, ≈59 bits) bind a Telegram user and chat when
    the bot receives ``/start <code>``.
    """

    __slots__ = ()

    # -- bindings --

    async def bind(
        self,
        consumer_user_id: str,
        agent_key: str,
        *,
        bot_identity: str | None = None,
        source: BindingSource = "api",
        telegram_user_id: str | None = None,
        telegram_chat_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Binding:
        """Bind a user to an agent and return the new active binding.

        The agent's profile must exist (``NotFoundError``; it need not be enabled).
        ``bot_identity`` defaults to the profile's; Telegram ids need a bot identity
        (``ValidationError``). The user's previous binding is revoked, and so is any
        other user's active binding of the same Telegram user or chat on that bot.
        ``metadata`` values must be strings (``companyId``, ``displayName``,
        ``telegramUsername``, ...)."""
        raw = await self._n.bind_user_agent(
            _IS_ASYNC,
            consumer_user_id,
            agent_key,
            bot_identity,
            source,
            telegram_user_id,
            telegram_chat_id,
            _str_dict(metadata, "metadata"),
            now_ms,
        )
        return Binding._from(raw)

    async def revoke(self, consumer_user_id: str, *, now_ms: int | None = None) -> int:
        """Revoke the user's active binding; returns how many were revoked (0 or 1)."""
        return await self._n.revoke_user_agent_binding(_IS_ASYNC, consumer_user_id, now_ms)  # type: ignore[no-any-return]

    async def resolve_agent_for_user(self, consumer_user_id: str) -> str | None:
        """The agent key of the user's active binding, or ``None``."""
        return await self._n.resolve_agent_for_user(_IS_ASYNC, consumer_user_id)  # type: ignore[no-any-return]

    async def resolve_for_telegram(
        self,
        *,
        bot_identity: str | None = None,
        telegram_user_id: str | None = None,
        telegram_chat_id: str | None = None,
    ) -> BindingTarget | None:
        """The active binding a Telegram user or chat belongs to, or ``None``.

        With ``bot_identity``: that bot's binding of the user, else of the chat —
        never another bot's. Without one: any bot's newest binding of the user,
        else of the chat."""
        raw = await self._n.resolve_agent_for_telegram(
            _IS_ASYNC, bot_identity, telegram_user_id, telegram_chat_id
        )
        return BindingTarget._maybe(raw)

    async def get_binding(self, consumer_user_id: str) -> Binding | None:
        """The user's active binding, or ``None``."""
        return Binding._maybe(await self._n.get_user_agent_binding(_IS_ASYNC, consumer_user_id))

    async def list_bindings(self, consumer_user_id: str, *, limit: int = 100) -> RecordList[Binding]:
        """The user's bindings (every agent and status), newest first; ``limit`` 1..1000."""
        raw = await self._n.list_user_bindings(_IS_ASYNC, consumer_user_id, limit)
        return RecordList([Binding._from(b) for b in raw], Binding)

    # -- pairing codes --

    async def create_pairing_code(
        self, consumer_user_id: str, agent_key: str, *, ttl_ms: int | None = None, now_ms: int | None = None
    ) -> PairingCode:
        """Create a pending pairing code for an enabled agent with a bot identity.

        ``ttl_ms`` (positive) is clamped to 1 minute .. 24 hours, default 15 minutes.
        The user's stale pending codes and their pending codes for the same agent
        become ``expired``. ``NotFoundError``/``InvalidStateError`` for a missing or
        disabled agent; ``InvalidStateError`` when the agent has no bot identity."""
        raw = await self._n.create_pairing_code(_IS_ASYNC, consumer_user_id, agent_key, ttl_ms, now_ms)
        return PairingCode._from(raw)

    async def consume_pairing_code(
        self,
        code: str,
        *,
        bot_identity: str | None,
        telegram_user_id: str,
        telegram_chat_id: str,
        now_ms: int | None = None,
    ) -> PairingCode:
        """Consume a code received by bot ``bot_identity``: bind the code's user to its
        agent with these Telegram ids and mark the code ``used`` (returned).

        Errors, in this order: ``NotFoundError("Pairing code not found")``;
        ``InvalidStateError("Pairing code already used or expired")``;
        ``InvalidStateError("Pairing code expired")`` — the code is then stored as
        ``expired``; ``ValidationError("Missing bot identity for Telegram pairing")``;
        ``ValidationError("Pairing code belongs to a different Telegram bot")``.
        Codes are case-insensitive."""
        raw = await self._n.consume_pairing_code(
            _IS_ASYNC, code, bot_identity, telegram_user_id, telegram_chat_id, now_ms
        )
        return PairingCode._from(raw)

    async def pairing_status(self, code: str, *, now_ms: int | None = None) -> PairingCode | None:
        """A code as of ``now_ms`` (pending past expiry reads ``expired``), or ``None``."""
        return PairingCode._maybe(await self._n.pairing_code_status(_IS_ASYNC, code, now_ms))

    # -- user-agent views --

    async def list_user_agents(
        self, consumer_user_id: str, *, include_disabled: bool = True, now_ms: int | None = None
    ) -> RecordList[UserAgent]:
        """The user's agents: newest bindings first, then agents with pending codes.
        ``include_disabled=False`` leaves out agents whose status is ``disabled``."""
        raw = await self._n.list_user_agents(_IS_ASYNC, consumer_user_id, include_disabled, now_ms)
        return RecordList([UserAgent._from(a) for a in raw], UserAgent)

    async def get_user_agent(
        self, consumer_user_id: str, agent_key: str, *, now_ms: int | None = None
    ) -> UserAgent | None:
        """One agent of the user (``draft`` when never bound or paired), or ``None``
        when the agent has no profile and no history with the user."""
        return UserAgent._maybe(await self._n.get_user_agent(_IS_ASYNC, consumer_user_id, agent_key, now_ms))

    async def active_user_agent(self, consumer_user_id: str, *, now_ms: int | None = None) -> UserAgent | None:
        """The agent of the user's active binding, or ``None``."""
        return UserAgent._maybe(await self._n.active_user_agent(_IS_ASYNC, consumer_user_id, now_ms))

    async def overview(self, consumer_user_id: str, *, now_ms: int | None = None) -> UserAgentsOverview:
        """All agents of the user, the active agent's key and whether a new agent may be created."""
        return UserAgentsOverview._from(await self._n.user_agents_overview(_IS_ASYNC, consumer_user_id, now_ms))

    async def create_user_agent_pairing(
        self, consumer_user_id: str, agent_key: str, *, ttl_ms: int | None = None, now_ms: int | None = None
    ) -> UserAgentPairing:
        """Create a pairing code (as :meth:`create_pairing_code`) and its Telegram deep
        link. The link uses the bot's username from the binding metadata
        (``telegramUsername``) or from the agent's active Telegram token secret; it is
        ``None`` when neither is known (the agent key is never taken for a username)."""
        raw = await self._n.create_user_agent_pairing(_IS_ASYNC, consumer_user_id, agent_key, ttl_ms, now_ms)
        return UserAgentPairing._from(raw)

    async def user_agent_pairing_status(
        self, consumer_user_id: str, agent_key: str, *, now_ms: int | None = None
    ) -> PairingCode | None:
        """The newest pairing code of the user for the agent as of ``now_ms``, or ``None``."""
        raw = await self._n.user_agent_pairing_status(_IS_ASYNC, consumer_user_id, agent_key, now_ms)
        return PairingCode._maybe(raw)

    # -- the user's agent conversation --

    async def queue_items(
        self,
        consumer_user_id: str,
        agent_key: str,
        *,
        statuses: Sequence[str] | None = None,
        limit: int = 100,
    ) -> RecordList[Job]:
        """Messages of the user's agent conversation, newest scheduled first.
        ``statuses`` (``queued``, ``processing``, ``done``, ``dead_letter``; default
        all) is applied before ``limit`` (1..500)."""
        wanted = None if statuses is None else _str_list(statuses, "statuses")
        raw = await self._n.list_queue_items_for_user_agent(_IS_ASYNC, consumer_user_id, agent_key, wanted, limit)
        return RecordList([Job._from(j) for j in raw], Job)

    async def list_queue_items_for_conversation(self, conversation_id: str, *, limit: int = 100) -> RecordList[Job]:
        """Messages of any conversation, newest scheduled first; ``limit`` 1..500."""
        raw = await self._n.list_queue_items_for_conversation(_IS_ASYNC, conversation_id, limit)
        return RecordList([Job._from(j) for j in raw], Job)

    async def conversation_view(
        self, consumer_user_id: str, agent_key: str, *, limit: int = 100
    ) -> UserAgentConversation:
        """History, recent queue items (at most ``limit``, 1..500) and state of the
        user's agent conversation; an untouched conversation gives an empty view."""
        raw = await self._n.user_agent_conversation_view(_IS_ASYNC, consumer_user_id, agent_key, limit)
        return UserAgentConversation._from(raw)

    async def send_message(
        self,
        consumer_user_id: str,
        agent_key: str,
        content: str,
        *,
        metadata: Mapping[str, str] | None = None,
        now_ms: int | None = None,
    ) -> str:
        """Enqueue ``content`` for the user's agent now and return the message id.

        Needs the user's active binding for ``agent_key``
        (``NotFoundError("No active binding found for consumerUserId and agentKey")``).
        Routed over Telegram when the binding has a chat, else ``system_push``;
        metadata gets ``consumerUserId``, ``source: "user_agent_api"`` and the
        Telegram ids."""
        return await self._n.send_message_to_user_agent(  # type: ignore[no-any-return]
            _IS_ASYNC, consumer_user_id, agent_key, content, _str_dict(metadata, "metadata"), now_ms
        )

    async def snapshots(
        self, consumer_user_id: str, agent_key: str, *, limit: int | None = None, now_ms: int | None = None
    ) -> RecordList[Snapshot]:
        """Workspace snapshots of the user's agent conversation only, newest first
        (``limit`` clamped to 1..200, default 50)."""
        raw = await self._n.list_snapshots_for_user_agent(_IS_ASYNC, consumer_user_id, agent_key, limit, now_ms)
        return RecordList([Snapshot._from(s) for s in raw], Snapshot)

    async def latest_snapshot(
        self, consumer_user_id: str, agent_key: str, *, now_ms: int | None = None
    ) -> Snapshot | None:
        """The newest snapshot (any status) of the user's agent conversation, or ``None``."""
        raw = await self._n.latest_snapshot_for_user_agent(_IS_ASYNC, consumer_user_id, agent_key, now_ms)
        return Snapshot._maybe(raw)
