"""The asyncio API of ``factory.telegram``; ``_sync_telegram.py`` is generated from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._area import _Area, _str_dict
from ._telegram_types import (
    AttachmentExpiry,
    BotIdentity,
    ImportedTelegramToken,
    IngestResult,
    OnboardingState,
    ProviderReadiness,
    TelegramApiConfig,
    TelegramReadiness,
    WebhookSetup,
    WebhookStatus,
)

_IS_ASYNC = True

__all__ = ["AsyncTelegramApi", "DEFAULT_WEBHOOK_PATH", "SECRET_TOKEN_HEADER"]

#: Where ``configure_webhook`` points the bot unless told otherwise.
DEFAULT_WEBHOOK_PATH = "/agent-factory/telegram/webhook"
#: The request header carrying the webhook secret token (pass its value to ``handle_webhook``).
SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _body_arg(body: Any) -> bytes | str:
    if isinstance(body, (bytes, str)):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"body must be bytes or str, got {type(body).__name__}")


def _update_arg(update: Any) -> Any:
    if isinstance(update, (Mapping, str, bytes)):
        return dict(update) if isinstance(update, Mapping) else update
    if isinstance(update, (bytearray, memoryview)):
        return bytes(update)
    raise TypeError(f"update must be a dict, str or bytes, got {type(update).__name__}")


class AsyncTelegramApi(_Area):
    """Telegram ingestion, attachments and webhooks: ``factory.telegram``.

    Network calls (``getMe``, ``getFile``, file downloads, ``setWebhook``,
    ``getWebhookInfo``) never run inside a database transaction, and the bot
    token never appears in an error message. Point the client at a fake with
    :meth:`set_api_config` (``base_url=fake_telegram.base_url``).
    """

    __slots__ = ()

    async def api_config(self) -> TelegramApiConfig:
        """The stored Bot API client settings (defaults: ``https://api.telegram.org``,
        30 s timeout, 3 retries, 20 MiB file cap)."""
        return TelegramApiConfig._from(await self._n.telegram_api_config(_IS_ASYNC))

    async def set_api_config(
        self,
        *,
        base_url: str | None = None,
        timeout_ms: int | None = None,
        max_retries: int | None = None,
        backoff_ms: int | None = None,
        max_backoff_ms: int | None = None,
        max_retry_after_ms: int | None = None,
        max_file_bytes: int | None = None,
        now_ms: int | None = None,
    ) -> TelegramApiConfig:
        """Change the Bot API client settings; arguments left ``None`` keep their value.
        Stored in the database, so every process on it uses them. Returns the result."""
        changes = {
            k: v
            for k, v in (
                ("base_url", base_url),
                ("timeout_ms", timeout_ms),
                ("max_retries", max_retries),
                ("backoff_ms", backoff_ms),
                ("max_backoff_ms", max_backoff_ms),
                ("max_retry_after_ms", max_retry_after_ms),
                ("max_file_bytes", max_file_bytes),
            )
            if v is not None
        }
        return TelegramApiConfig._from(await self._n.set_telegram_api_config(_IS_ASYNC, changes, now_ms))

    async def ingest_update(
        self,
        update: Mapping[str, Any] | str | bytes,
        *,
        agent_key: str | None = None,
        bot_identity: str | None = None,
        now_ms: int | None = None,
    ) -> IngestResult:
        """Ingest one Telegram ``Update`` (a dict, or its JSON text) received by the bot
        of ``agent_key`` (or the agent whose bot is ``bot_identity``).

        A message from a bound Telegram user goes to the binding's agent and stable
        conversation ``user-agent:<agent>:<user>``; otherwise to
        ``telegram:<bot>:<chat>`` on the bot's agent. ``/start <code>`` consumes the
        pairing code (``paired``; a bad code is ``ignored`` with the reason). Media are
        downloaded (``getFile`` + download, outside the transaction) into the blob
        store and attached with ``expires_at = now + retention``. A re-delivered
        update is ``duplicate`` and enqueues nothing. Malformed updates raise
        ``ValidationError``; a download failure raises ``ProviderError``; either way
        nothing is written."""
        raw = await self._n.ingest_telegram_update(_IS_ASYNC, _update_arg(update), agent_key, bot_identity, now_ms)
        return IngestResult._from(raw)

    async def handle_webhook(
        self,
        body: bytes | str,
        secret_token: str | None,
        *,
        agent_key: str,
        now_ms: int | None = None,
    ) -> IngestResult:
        """Handle a webhook request for ``agent_key``'s bot: ``body`` is the raw
        request body, ``secret_token`` the ``X-Telegram-Bot-Api-Secret-Token`` header
        (``None`` when absent). The token is compared in constant time with the one
        :meth:`configure_webhook` stored; a missing or wrong token (including the
        derivable ``af_v1_<botId>`` of older versions) raises ``AuthenticationError``
        and nothing is written. Then as :meth:`ingest_update`.

        Answer Telegram 200 for any result, 401 for ``AuthenticationError`` (the
        request is not from Telegram), 200 with an error for ``ValidationError``
        (re-sending a malformed update could never work) and 5xx for other errors
        such as ``ProviderError`` (Telegram re-delivers the update later). See
        ``examples/telegram_webhook_sync.py`` / ``telegram_webhook_async.py``."""
        raw = await self._n.handle_telegram_webhook(_IS_ASYNC, _body_arg(body), secret_token, agent_key, now_ms)
        return IngestResult._from(raw)

    async def configure_webhook(
        self,
        agent_key: str,
        public_base_url: str,
        *,
        path: str = DEFAULT_WEBHOOK_PATH,
        now_ms: int | None = None,
    ) -> WebhookSetup:
        """Point the agent's bot at ``public_base_url + path`` (``https://`` required)
        with a fresh random secret token: ``getMe`` (bot identity, unique across
        agents), ``setWebhook``, ``getWebhookInfo``; the secret is stored encrypted
        (``telegram.webhookSecret.<agentKey>``) and the webhook state persisted
        (``is_ready`` / verified only when Telegram reports exactly that URL). Each
        bot needs its own URL when several agents share a server: pass a distinct
        ``path`` per agent."""
        raw = await self._n.configure_telegram_webhook(_IS_ASYNC, agent_key, public_base_url, path, now_ms)
        return WebhookSetup._from(raw)

    async def webhook_status(self, agent_key: str, *, now_ms: int | None = None) -> WebhookStatus:
        """Ask ``getWebhookInfo`` and record the answer: the current URL, pending
        updates, the last delivery error, and whether it is the configured URL
        (another URL clears the verification). Without a bot token nothing is asked."""
        return WebhookStatus._from(await self._n.telegram_webhook_status(_IS_ASYNC, agent_key, now_ms))

    async def delete_webhook(
        self, agent_key: str, *, drop_pending_updates: bool = False, now_ms: int | None = None
    ) -> WebhookStatus:
        """Remove the agent's webhook at Telegram (``deleteWebhook``) and forget its
        URL and verification."""
        raw = await self._n.delete_telegram_webhook(_IS_ASYNC, agent_key, drop_pending_updates, now_ms)
        return WebhookStatus._from(raw)

    async def import_token(
        self,
        consumer_user_id: str,
        agent_key: str,
        token: str,
        metadata: Mapping[str, str] | None = None,
        *,
        now_ms: int | None = None,
    ) -> ImportedTelegramToken:
        """Check a bot token with ``getMe`` and store it for the agent: in the profile's
        first ``telegram.botToken[.*]`` secret ref, else ``telegram.botToken.<agentKey>``
        (added to the profile), with metadata ``telegramBotId`` / ``telegramUsername``.
        The bot identity must not belong to another agent (``ConflictError``); the
        user must have a binding or pairing code for the agent unless the per-agent
        ref is used. The token never appears in an error."""
        raw = await self._n.import_telegram_token(
            _IS_ASYNC, consumer_user_id, agent_key, token, _str_dict(metadata, "metadata"), now_ms
        )
        return ImportedTelegramToken._from(raw)

    async def reconcile_bot_identity(
        self, agent_key: str, *, secret_ref: str | None = None, now_ms: int | None = None
    ) -> BotIdentity:
        """Ask ``getMe`` which bot the agent's token (or ``secret_ref``) belongs to and
        record it on the profile (unique across agents)."""
        raw = await self._n.reconcile_telegram_bot_identity(_IS_ASYNC, agent_key, secret_ref, now_ms)
        return BotIdentity._from(raw)

    async def onboarding_state(
        self, consumer_user_id: str, agent_key: str, *, now_ms: int | None = None
    ) -> OnboardingState:
        """The user's onboarding state for the agent's bot; ``next_action`` is
        ``import_token``, ``configure_webhook`` (until Telegram verified the webhook),
        ``create_pairing``, ``complete_pairing`` (a pending code; ``pairing_deep_link``
        uses the bot's real username) or ``ready`` (paired)."""
        raw = await self._n.telegram_onboarding_state(_IS_ASYNC, consumer_user_id, agent_key, now_ms)
        return OnboardingState._from(raw)

    async def readiness(self, consumer_user_id: str, agent_key: str) -> TelegramReadiness:
        """Whether the agent can receive Telegram messages: missing secrets, token,
        bot identity, verified webhook, runtime configs, and the ``issues`` list
        (``missing_provider_runtime_config``, ``missing_message_runtime_config``,
        ``missing_telegram_token``, ``missing_bot_identity``, ``webhook_not_verified``)."""
        return TelegramReadiness._from(await self._n.telegram_readiness(_IS_ASYNC, consumer_user_id, agent_key))

    async def provider_readiness(self) -> ProviderReadiness:
        """Whether the provider and message runtime configs are stored."""
        return ProviderReadiness._from(await self._n.provider_readiness(_IS_ASYNC))

    async def expire_old_attachments(self, limit: int = 100, *, now_ms: int | None = None) -> AttachmentExpiry:
        """Expire ``ready`` attachments past their ``expires_at`` (oldest first, at most
        ``limit``), mark them expired in the stored message payloads, delete blobs
        nothing else uses, and prune update de-duplication rows older than 7 days."""
        return AttachmentExpiry._from(await self._n.expire_old_telegram_attachments(_IS_ASYNC, limit, now_ms))
