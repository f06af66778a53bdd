"""Telegram updates in, answers out: ``fake_telegram`` (the Bot API on loopback) and ``local_pool``."""

from __future__ import annotations

from agent_factory.testing import FakeTelegram, LocalPool

AGENT = "notes-bot"


def test_telegram_messages_are_ingested_and_answered_by_a_worker(
    local_pool: LocalPool, fake_telegram: FakeTelegram
) -> None:
    factory = local_pool.factory
    factory.telegram.set_api_config(base_url=fake_telegram.base_url, backoff_ms=1, max_backoff_ms=5)
    factory.agents.upsert_agent(AGENT, secrets_ref=[])
    bot = factory.telegram.import_token("owner", AGENT, fake_telegram.token).bot_identity
    local_pool.start(handler="notes_bot.handlers:handle", max_workers=2)

    first = factory.telegram.ingest_update(fake_telegram.message_update(text="/note call Bob", chat_id=42), agent_key=AGENT)
    second = factory.telegram.ingest_update(fake_telegram.message_update(text="/list", chat_id=42), agent_key=AGENT)
    assert first.status == second.status == "enqueued"
    assert first.conversation_id == second.conversation_id == f"telegram:{bot}:42"
    local_pool.wait_until_idle(timeout=60)

    assert local_pool.replies(first.conversation_id) == ["noted (1)", "1. call Bob"]
    # The token was checked against the fake Bot API once, when it was imported.
    assert [call.method for call in fake_telegram.calls] == ["getMe"]
