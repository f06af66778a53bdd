"""The bot's handler run by real agent-factory worker processes (the ``local_pool`` fixture)."""

from __future__ import annotations

from agent_factory.testing import LocalPool

HANDLER = "notes_bot.handlers:handle"


def test_each_conversation_is_answered_in_order_by_worker_processes(local_pool: LocalPool) -> None:
    local_pool.start(handler=HANDLER, max_workers=3)
    chats = [f"chat:{i}" for i in range(3)]
    ids = []
    for chat in chats:
        for text in (f"/note milk for {chat}", f"/note eggs for {chat}", "/list", "hello"):
            ids.append(local_pool.enqueue(chat, text))

    stats = local_pool.wait_until_idle(timeout=60)

    assert stats.dead_letter == 0
    assert all(local_pool.factory.queue.get_job(i).status == "done" for i in ids)  # type: ignore[union-attr]
    for chat in chats:
        # /list sees both notes only because the messages of a conversation run one at a time, in order.
        assert local_pool.replies(chat) == [
            "noted (1)",
            "noted (2)",
            f"1. milk for {chat}\n2. eggs for {chat}",
            "you said: hello",
        ]
    workers = local_pool.running_workers()
    assert 1 <= len(workers) <= 3
    assert all(w.status == "active" for w in workers)
    assert local_pool.errors == []


def test_a_conversation_picks_up_its_notes_after_its_worker_stopped(local_pool: LocalPool) -> None:
    # Workers stop after one idle second; the next worker of the chat restores its snapshot.
    local_pool.start(handler=HANDLER, max_workers=1, idle_timeout_ms=1_000)
    local_pool.enqueue("chat:return", "/note first visit")
    local_pool.wait_until_idle(timeout=60)
    local_pool.wait_until(lambda: not local_pool.running_workers(), timeout=60, what="the idle worker stopped")

    local_pool.enqueue("chat:return", "/list")
    local_pool.wait_until_idle(timeout=60)

    assert local_pool.replies("chat:return") == ["noted (1)", "1. first visit"]
    assert len(local_pool.spawned) == 2
