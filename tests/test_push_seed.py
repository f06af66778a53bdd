"""Ported seed tests of push jobs and broadcasts.

Each test's docstring starts with ``Seed: <the seed test title>``. The seed read the
queue at the wall clock; here time is explicit, so reads and claims pass ``now_ms``
at (or after) the dispatch time. The broadcast seed is ported to the fixed
behaviour (spec §10.13): targets are the company's active bindings and each gets
its message in its own user-agent conversation.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent_factory import Factory, Schedule


def utc_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_push_jobs_dispatch_scheduled_messages_with_a_stable_conversation(factory: Factory) -> None:
    """Seed: push jobs should dispatch scheduled messages with a stable user-agent conversation id"""
    factory.agents.upsert_agent("push-agent", version="1.0.0", secrets_ref=[], enabled=True)
    factory.identity.bind("user-push-1", "push-agent", source="manual", metadata={"companyId": "co-1"})
    base_ms = utc_ms(2026, 1, 1, 7, 59, 0)
    job = factory.push.create_job(
        "co-1",
        "user-push-1",
        "Daily check",
        "Ping automatico",
        "UTC",
        {"kind": "daily", "time": "08:00"},
        periodicity="daily",
        now_ms=base_ms,
    )
    now = base_ms + 6 * 60_000
    dispatch = factory.push.dispatch_due_push_jobs(now_ms=now, limit=50)
    assert dispatch.enqueued == 1
    assert dispatch.failed == 0
    assert factory.queue.stats(now_ms=now).queued_ready == 1
    claim = factory.worker("worker-push-fallback-1").claim(now_ms=now)
    assert claim is not None
    assert claim.conversation_id == "user-agent:push-agent:user-push-1"
    assert claim.payload["provider"] == "system_push"
    assert claim.payload["providerUserId"] == "user-push-1"
    dispatches = factory.push.list_dispatches(job.job_id, limit=10)
    assert len(dispatches) == 1
    assert dispatches[0].status == "enqueued"


def test_trigger_now_keeps_the_stable_conversation_after_telegram_pairing(factory: Factory) -> None:
    """Seed: triggerPushJobNow should keep the stable conversation id after telegram pairing"""
    factory.agents.upsert_agent(
        "push-telegram-manual-agent", version="1.0.0", secrets_ref=[], bot_identity="push-telegram-manual-bot"
    )
    factory.identity.bind(
        "user-push-telegram-manual",
        "push-telegram-manual-agent",
        bot_identity="push-telegram-manual-bot",
        source="telegram_pairing",
        telegram_user_id="tg-user-manual-1",
        telegram_chat_id="8246761447",
    )
    now = utc_ms(2026, 1, 1, 8, 0, 0)
    job = factory.push.create_job(
        "co-tg-manual",
        "user-push-telegram-manual",
        "Manual push",
        "Messaggio manuale",
        "UTC",
        Schedule.manual(),
        periodicity="manual",
        now_ms=now,
    )
    factory.push.trigger_now(job.job_id, now_ms=now)
    claim = factory.worker("worker-push-telegram-manual-1").claim(now_ms=now)
    assert claim is not None
    assert claim.conversation_id == "user-agent:push-telegram-manual-agent:user-push-telegram-manual"
    assert claim.payload["provider"] == "telegram"
    assert claim.payload["providerUserId"] == "tg-user-manual-1"
    assert claim.payload["metadata"]["telegramChatId"] == "8246761447"
    assert claim.payload["metadata"]["telegramUserId"] == "tg-user-manual-1"


def test_dispatch_keeps_the_stable_conversation_when_telegram_is_available(factory: Factory) -> None:
    """Seed: dispatchDuePushJobs should keep the stable conversation id when telegram is available"""
    factory.agents.upsert_agent(
        "push-telegram-scheduled-agent", version="1.0.0", secrets_ref=[], bot_identity="push-telegram-scheduled-bot"
    )
    factory.identity.bind(
        "user-push-telegram-scheduled",
        "push-telegram-scheduled-agent",
        bot_identity="push-telegram-scheduled-bot",
        source="telegram_pairing",
        telegram_user_id="tg-user-scheduled-1",
        telegram_chat_id="9988776655",
    )
    base_ms = utc_ms(2026, 1, 1, 7, 59, 0)
    factory.push.create_job(
        "co-tg-scheduled",
        "user-push-telegram-scheduled",
        "Daily telegram check",
        "Ping telegram",
        "UTC",
        Schedule.daily("08:00"),
        periodicity="daily",
        now_ms=base_ms,
    )
    now = base_ms + 6 * 60_000
    dispatch = factory.push.dispatch_due_push_jobs(now_ms=now, limit=50)
    assert dispatch.enqueued == 1
    assert dispatch.failed == 0
    claim = factory.worker("worker-push-telegram-scheduled-1").claim(now_ms=now)
    assert claim is not None
    assert claim.conversation_id == "user-agent:push-telegram-scheduled-agent:user-push-telegram-scheduled"
    assert claim.payload["provider"] == "telegram"
    assert claim.payload["providerUserId"] == "tg-user-scheduled-1"
    assert claim.payload["metadata"]["telegramChatId"] == "9988776655"
    assert claim.payload["metadata"]["telegramUserId"] == "tg-user-scheduled-1"
    assert claim.payload["metadata"]["pushMode"] == "scheduled"


def test_admin_broadcast_reaches_the_active_company_agents(factory: Factory) -> None:
    """Seed: admin broadcast should enqueue to all active company agents

    Fixed behaviour: a user of another company bound at the same time gets nothing,
    and each target's message lands in that user's own conversation."""
    factory.agents.upsert_agent("broadcast-agent-a", version="1.0.0", secrets_ref=[], enabled=True)
    factory.agents.upsert_agent("broadcast-agent-b", version="1.0.0", secrets_ref=[], enabled=True)
    factory.identity.bind(
        "company-user-a", "broadcast-agent-a", source="manual", metadata={"companyId": "company-broadcast"}
    )
    factory.identity.bind(
        "company-user-b", "broadcast-agent-b", source="manual", metadata={"companyId": "company-broadcast"}
    )
    factory.identity.bind("outsider", "broadcast-agent-a", source="manual", metadata={"companyId": "other-company"})
    result = factory.push.send_broadcast(
        "company-broadcast", "Aggiornamento policy", "Sincronizza le nuove istruzioni", "admin-1"
    )
    assert result.total_targets == 2
    assert result.enqueued == 2
    assert result.failed == 0
    assert factory.queue.stats().queued_ready == 2
    conversations = {
        d.conversation_id: d for d in factory.push.list_broadcast_dispatches(result.broadcast_id)
    }
    assert set(conversations) == {
        "user-agent:broadcast-agent-a:company-user-a",
        "user-agent:broadcast-agent-b:company-user-b",
    }
    assert factory.queue.conversation("user-agent:broadcast-agent-a:outsider") is None
    claim = factory.worker("w-broadcast").claim()
    assert claim is not None
    assert claim.payload["messageText"] == "Aggiornamento policy\n\nSincronizza le nuove istruzioni"
    assert claim.payload["metadata"]["adminInitiated"] == "true"
    assert claim.payload["metadata"]["broadcastId"] == result.broadcast_id
    assert claim.payload["metadata"]["companyId"] == "company-broadcast"
