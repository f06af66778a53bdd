"""Behaviour of the queue, workers and hydration through the public API (beyond the seed)."""

from __future__ import annotations

import inspect
import os
import stat

import pytest

import agent_factory as af
from agent_factory import (
    AsyncFactory,
    Config,
    ConflictError,
    Factory,
    InvalidStateError,
    LeaseConfig,
    ManualClock,
    NotFoundError,
    ValidationError,
)
from helpers import payload


def test_pooled_worker_serves_many_conversations_one_in_flight_each(factory: Factory, support_agent: str) -> None:
    for conv in ("c1", "c2", "c3"):
        factory.queue.enqueue(conv, support_agent, payload(conv, "first"))
        factory.queue.enqueue(conv, support_agent, payload(conv, "second"))
    pooled = factory.worker("pool-1", mode="pooled")
    claims = [pooled.claim() for _ in range(4)]
    held = [c for c in claims if c is not None]
    assert sorted(c.conversation_id for c in held) == ["c1", "c2", "c3"], "one in flight per conversation"
    assert claims[3] is None
    assert all(c.payload["messageText"] == "first" for c in held)
    worker = factory.workers.get("pool-1")
    assert worker is not None and worker.mode == "pooled" and worker.assignment is None and worker.load == 3


def test_busy_pooled_worker_writes_its_row_at_most_once_a_second(
    factory: Factory, support_agent: str, manual_clock: ManualClock
) -> None:
    for conv in ("c1", "c2", "c3", "c4"):
        factory.queue.enqueue(conv, support_agent, payload(conv, "hi"))
    pooled = factory.worker("pool-1", mode="pooled")
    start = manual_clock.now_ms()
    claim = pooled.claim()
    assert claim is not None
    manual_clock.advance(400)
    claim = pooled.complete(claim, claim_next=True)
    assert claim is not None
    row = factory.workers.get("pool-1")
    assert row is not None and row.load == 1
    assert (row.heartbeat_at, row.last_claim_at) == (start, start), "a fresh row is not rewritten"
    manual_clock.advance(600)  # now a full second after the row was written
    claim = pooled.complete(claim, claim_next=True)
    assert claim is not None
    row = factory.workers.get("pool-1")
    assert row is not None and row.load == 1
    assert (row.heartbeat_at, row.last_claim_at) == (start + 1000, start + 1000)
    manual_clock.advance(10)
    assert pooled.complete(claim) is True  # a plain complete always writes the row
    row = factory.workers.get("pool-1")
    assert row is not None and row.load == 0 and row.heartbeat_at == start + 1010


def test_sticky_worker_keeps_its_first_conversation(factory: Factory, support_agent: str) -> None:
    factory.queue.enqueue("c1", support_agent, payload("a"))
    factory.queue.enqueue("c2", support_agent, payload("b"))
    sticky = factory.worker("sticky-1")
    first = sticky.claim()
    assert first is not None
    assert sticky.complete(first) is True
    assert sticky.claim() is None, "a sticky worker only serves the conversation it owns"
    other = factory.worker("sticky-2").claim()
    assert other is not None and other.conversation_id != first.conversation_id


def test_hydration_requires_the_live_lease(factory: Factory, manual_clock: ManualClock, support_agent: str) -> None:
    factory.secrets.import_plaintext("telegram.botToken", "123:secret-token")
    factory.agents.upsert_agent(support_agent, secrets_ref=["telegram.botToken"])
    factory.queue.enqueue("c1", support_agent, payload())
    w = factory.worker("w1")
    claim = w.claim()
    assert claim is not None
    assert w.hydrate(claim).telegram_bot_token == "123:secret-token"
    # Someone who merely knows the message id gets nothing through the worker path.
    forged = af.Claim(**{**claim.to_dict(), "worker_id": "intruder", "lease_id": "lease-guess"})
    with pytest.raises(ConflictError):
        factory.worker("intruder").hydrate(forged)
    manual_clock.advance(LeaseConfig().lease_ms + 1)
    with pytest.raises(ConflictError):
        w.hydrate(claim)
    assert "secret-token" not in repr(factory.queue.get_hydration_bundle(claim.message_id))


def test_telegram_token_resolution_prefers_the_profile_order(factory: Factory) -> None:
    factory.agents.upsert_agent("bot", secrets_ref=["other.secret", "telegram.botToken.bot", "telegram.botToken"])
    factory.secrets.import_plaintext("telegram.botToken", "global")
    factory.queue.enqueue("c", "bot", payload())
    w = factory.worker("w")
    c = w.claim()
    assert c is not None
    assert w.hydrate(c).telegram_bot_token == "global", "first ref with an active secret wins"
    factory.secrets.import_plaintext("telegram.botToken.bot", "per-agent")
    assert w.hydrate(c).telegram_bot_token == "per-agent"


def test_secrets_are_encrypted_at_rest_and_rotate(factory: Factory, factory_path: os.PathLike[str]) -> None:
    first = factory.secrets.import_plaintext("telegram.botToken", "PLAINTEXT-TOKEN-ONE", metadata={"owner": "ops"})
    second = factory.secrets.import_plaintext("telegram.botToken", "PLAINTEXT-TOKEN-TWO")
    assert (first.version, second.version) == (1, 2)
    (status,) = factory.secrets.status(["telegram.botToken"])
    assert status.has_active and status.version == 2
    assert factory.secrets.status(["missing.ref"])[0].has_active is False
    assert factory.secrets.reveal("telegram.botToken") == "PLAINTEXT-TOKEN-TWO"
    raw = b""
    for suffix in ("", "-wal"):
        p = f"{os.fspath(factory_path)}{suffix}"
        if os.path.exists(p):
            with open(p, "rb") as fh:
                raw += fh.read()
    assert b"PLAINTEXT-TOKEN" not in raw, "secrets must never be stored in plaintext"
    key_file = f"{os.fspath(factory_path)}.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_master_key_from_environment_and_wrong_key_is_reported(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(tmp_path, "env.db")
    monkeypatch.setenv("AGENT_FACTORY_MASTER_KEY", "11" * 32)
    Factory(path).secrets.import_plaintext("fly.apiToken", "fly-secret")
    assert not os.path.exists(path + ".key"), "the environment key is used instead of a key file"
    import subprocess
    import sys

    code = "import agent_factory as af, sys; print(af.Factory(sys.argv[1]).secrets.reveal('fly.apiToken'))"
    same = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, env={**os.environ})
    assert same.stdout.strip() == "fly-secret"
    wrong = subprocess.run(
        [sys.executable, "-c", code, path],
        capture_output=True,
        text=True,
        env={**os.environ, "AGENT_FACTORY_MASTER_KEY": "22" * 32},
    )
    assert wrong.returncode != 0 and "StorageError" in wrong.stderr and "master key" in wrong.stderr


def test_agent_rules(factory: Factory) -> None:
    profile = factory.agents.upsert_agent(
        "bridge", secrets_ref=["telegram.botToken", "telegram.botToken"], bridge_config=af.BridgeConfig(enabled=True)
    )
    assert profile.secrets_ref == [
        "telegram.botToken",
        "fly.apiToken",
        "agent-bridge.serviceKey.bridge",
        "agent-bridge.baseUrlMapJson.bridge",
    ]
    with pytest.raises(NotFoundError, match="Agent profile 'ghost' not found or disabled"):
        factory.queue.enqueue("c", "ghost", payload())
    factory.agents.disable("bridge")
    with pytest.raises(InvalidStateError, match="not found or disabled"):
        factory.queue.enqueue("c", "bridge", payload())
    factory.agents.enable("bridge")
    factory.agents.upsert_agent("other", secrets_ref=[])
    factory.queue.enqueue("c", "bridge", payload())
    with pytest.raises(ConflictError, match="Conversation 'c' is already bound to agent 'bridge', cannot enqueue for 'other'."):
        factory.queue.enqueue("c", "other", payload())
    assert [a.agent_key for a in factory.agents.list()] == ["bridge", "other"]
    assert factory.agents.get("nobody") is None


def test_idle_worker_that_polls_does_not_go_stale(factory: Factory, manual_clock: ManualClock) -> None:
    stale = LeaseConfig().stale_after_ms
    w = factory.worker("idle-1")
    factory.workers.upsert_worker_state("idle-1", status="active")
    for _ in range(5):
        manual_clock.advance(stale // 2)
        assert w.claim() is None  # an empty poll is an idle heartbeat
    assert w.control_state().should_stop is False
    manual_clock.advance(stale + 1)
    silent = factory.workers.control_state("idle-1")
    assert silent.should_stop is True and silent.reason == "stale_heartbeat"


def test_history_is_bounded_and_hydration_uses_the_delta_window(tmp_path: os.PathLike[str]) -> None:
    f = Factory(os.path.join(tmp_path, "h.db"), config=Config(queue=af.QueueConfig(history_limit=100)))
    f.agents.upsert_agent("a", secrets_ref=[])
    f.queue.enqueue("conv", "a", payload())
    w = f.worker("w")
    claim = w.claim()
    assert claim is not None
    result = w.append_conversation_messages(
        claim, [{"role": "user" if i % 2 else "assistant", "content": f"turn {i}"} for i in range(150)]
    )
    assert result == af.AppendResult(updated=True, message_count=100)
    assert len(w.hydrate(claim, workspace_id="default").context_history) == 64
    assert len(w.hydrate(claim, workspace_id="elsewhere").context_history) == 100
    view = f.queue.conversation("conv")
    assert view is not None and view.context_history[-1].content == "turn 149"
    assert f.queue.append_conversation_messages("unknown", [{"role": "user", "content": "x"}]) == af.AppendResult(False, 0)


def test_tunables_are_honoured(tmp_path: os.PathLike[str], manual_clock: ManualClock) -> None:
    f = Factory(os.path.join(tmp_path, "t.db"), clock=manual_clock, config=Config(lease=LeaseConfig(lease_ms=1_000)))
    assert f.config.tunables().lease.lease_ms == 1_000
    f.agents.upsert_agent("a", secrets_ref=[])
    f.queue.enqueue("c", "a", payload())
    claim = f.worker("w").claim()
    assert claim is not None and claim.lease_expires_at == manual_clock.now_ms() + 1_000
    with pytest.raises(ValidationError, match="lease.lease_ms"):
        f.config.set_tunables(Config(lease=LeaseConfig(lease_ms=0)))
    assert f.config.tunables().lease.lease_ms == 1_000


def test_file_modes(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "private", "nested", "f.db")
    f = Factory(path)
    f.blobs.put(b"x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert f.info()["journal_mode"] == "wal"


def test_durable_setting_and_shared_writer(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "d.db")
    a = Factory(path)
    b = Factory(path, durable=True)
    assert b.info()["durable"] is True and a.info()["durable"] is True, "one connection per file, upgraded to FULL"


def test_blob_store_verifies_content(factory: Factory) -> None:
    sha = factory.blobs.put(b"hello")
    assert factory.blobs.get(sha) == b"hello"
    with open(factory.blobs.path(sha), "wb") as fh:
        fh.write(b"tampered")
    with pytest.raises(af.StorageError, match="corrupt"):
        factory.blobs.get(sha)
    assert factory.blobs.delete(sha) is True
    with pytest.raises(NotFoundError):
        factory.blobs.get(sha)


def test_enqueue_many_and_listing(factory: Factory, support_agent: str) -> None:
    ids = factory.queue.enqueue_many(
        [{"conversation_id": f"c{i % 3}", "agent_key": support_agent, "payload": payload(str(i))} for i in range(9)]
    )
    assert len(ids) == 9 and len(set(ids)) == 9
    queued = factory.queue.list_jobs("queued", limit=100)
    assert [j.message_id for j in queued] == ids
    assert factory.queue.stats().queued_ready == 9
    assert factory.queue.conversation_counts().ready == 3
    assert factory.queue.active_conversations() == [(support_agent, "c0"), (support_agent, "c1"), (support_agent, "c2")]
    assert len(factory.queue.list_conversation_jobs("c1")) == 3


def test_dead_letter_after_max_attempts(factory: Factory, manual_clock: ManualClock, support_agent: str) -> None:
    mid = factory.queue.enqueue("c", support_agent, payload(), max_attempts=2)
    w = factory.worker("w", mode="pooled")
    c = w.claim()
    assert c is not None
    first = w.fail(c, RuntimeError("boom"))
    assert first.requeued and first.next_scheduled_for is not None
    manual_clock.set(first.next_scheduled_for)
    c2 = w.claim()
    assert c2 is not None and c2.attempt == 2
    second = w.fail(c2, "boom again")
    assert second.dead_lettered and not second.requeued
    (dead,) = factory.queue.list_jobs("dead_letter")
    assert dead.message_id == mid and dead.last_error == "boom again" and dead.attempts == 2


async def test_async_api_is_real_async_and_returns_the_same_types(async_factory: AsyncFactory) -> None:
    assert inspect.iscoroutinefunction(af.AsyncQueueApi.enqueue)
    assert inspect.iscoroutinefunction(af.AsyncWorkerHandle.complete)
    await async_factory.agents.upsert_agent("a", secrets_ref=[])
    mid = await async_factory.queue.enqueue("c", "a", payload())
    w = async_factory.worker("aw", mode="pooled")
    claim = await w.claim()
    assert isinstance(claim, af.Claim) and claim.message_id == mid
    assert await w.heartbeat(claim) is True
    bundle = await w.hydrate(claim)
    assert isinstance(bundle, af.HydrationBundle)
    assert await w.complete(claim, claim_next=True) is None
    stats = await async_factory.queue.stats()
    assert isinstance(stats, af.QueueStats) and stats.queued_ready == 0
    job = await async_factory.queue.get_job(mid)
    assert job is not None and job.status == "done"


def test_claim_with_wrong_worker_handle_is_rejected(factory: Factory, support_agent: str) -> None:
    factory.queue.enqueue("c", support_agent, payload())
    claim = factory.worker("w1").claim()
    assert claim is not None
    with pytest.raises(ValidationError, match="belongs to worker 'w1'"):
        factory.worker("w2").complete(claim)


def test_requeue_replays_a_dead_letter_behind_waiting_work(
    factory: Factory, factory_path: os.PathLike[str], manual_clock: ManualClock, support_agent: str
) -> None:
    from helpers import db_snapshot

    poison = factory.queue.enqueue("c1", support_agent, payload("c1", "poison"), max_attempts=1)
    worker = factory.worker("w1", mode="pooled")
    claim = worker.claim()
    assert claim is not None and worker.fail(claim, "boom").dead_lettered
    later = factory.queue.enqueue("c1", support_agent, payload("c1", "later"))

    before = db_snapshot(factory_path)
    with pytest.raises(InvalidStateError, match="only dead_letter"):
        factory.queue.requeue(later)
    with pytest.raises(NotFoundError):
        factory.queue.requeue("987654")
    with pytest.raises(ValidationError, match="messageId"):
        factory.queue.requeue("not-an-id")
    factory.agents.disable(support_agent)
    with pytest.raises(InvalidStateError, match="disabled"):
        factory.queue.requeue(poison)
    factory.agents.enable(support_agent)
    assert db_snapshot(factory_path)["messages"] == before["messages"]

    manual_clock.advance(1)
    job = factory.queue.requeue(poison)
    assert (job.status, job.attempts, job.last_error) == ("queued", 0, "boom")
    assert factory.queue.stats().dead_letter == 0
    order = []
    while (c := worker.claim()) is not None:
        order.append(c.payload["messageText"])
        assert worker.complete(c)
    assert order == ["later", "poison"], "a replay never overtakes queued work"
