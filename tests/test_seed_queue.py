"""Ports of the seed tests (seed-agent-factory.test.ts) covering the queue core.

Each test's docstring starts with ``Seed: <the seed test title>``. The seed ran
against Convex with fake timers; here a ManualClock plays that role and time is
passed explicitly with ``now_ms`` where the seed did.
"""

from __future__ import annotations

import pytest

import agent_factory as af
from agent_factory import Factory, ManualClock, ValidationError
from helpers import payload

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z (the manual_clock fixture's start)
IDLE_TIMEOUT = af.ScalingPolicy().idle_timeout_ms
LEASE_MS = af.LeaseConfig().lease_ms
STALE_MS = af.LeaseConfig().stale_after_ms


def test_worker_status_transitions() -> None:
    """Seed: worker status transitions should enforce draining before stopping"""
    assert af.can_transition("active", "active") is True
    assert af.can_transition("active", "draining") is True
    assert af.can_transition("active", "stopping") is False
    assert af.can_transition("active", "stopped") is False
    assert af.can_transition("draining", "stopped") is False


def test_enqueue_and_claim_flow(factory: Factory, support_agent: str) -> None:
    """Seed: enqueue and claim should respect queue flow"""
    message_id = factory.queue.enqueue("telegram:chat:1", support_agent, payload("u1", "Ciao"))
    assert message_id
    claimed = factory.queue.claim("worker-1")
    assert claimed is not None
    assert claimed.conversation_id == "telegram:chat:1"


def test_minimal_agent_profile(factory: Factory) -> None:
    """Seed: minimal agent profile should work when payload provides providerUserId"""
    factory.agents.upsert_agent("minimal-agent", version="1.0.0", secrets_ref=[], enabled=True)
    message_id = factory.queue.enqueue("telegram:chat:minimal", "minimal-agent", payload("u-minimal-1"))
    w = factory.worker("worker-minimal-1")
    claim = w.claim()
    assert claim is not None and claim.message_id == message_id
    assert claim.payload["providerUserId"] == "u-minimal-1"
    bundle = w.hydrate(claim, workspace_id="default")
    assert bundle.payload["providerUserId"] == "u-minimal-1"
    assert bundle.bridge_runtime_config is None
    # The operator call sees the same bundle without a lease.
    operator = factory.queue.get_hydration_bundle(message_id, workspace_id="default")
    assert operator is not None and operator.payload == bundle.payload


def test_global_system_prompt_is_appended(factory: Factory) -> None:
    """Seed: enqueue should append global system prompt to queued message"""
    factory.agents.upsert_agent("system-prompt-agent", secrets_ref=[])
    factory.config.set_message_config(system_prompt=" Rispondi sempre con un breve riassunto finale. ")
    assert factory.config.message_config() == af.MessageConfig(
        system_prompt="Rispondi sempre con un breve riassunto finale."
    )
    message_id = factory.queue.enqueue(
        "telegram:chat:system-prompt", "system-prompt-agent", payload("u-system-prompt-1", "Come va?")
    )
    claim = factory.queue.claim("worker-system-prompt-1")
    assert claim is not None and claim.message_id == message_id
    assert claim.payload["messageText"] == "Come va?\n\nRispondi sempre con un breve riassunto finale."


def test_blank_system_prompt_changes_nothing(factory: Factory) -> None:
    """Seed: blank global system prompt should not modify queued messages"""
    factory.agents.upsert_agent("blank-system-prompt-agent", secrets_ref=[])
    assert factory.config.set_message_config(system_prompt="   ") is None
    assert factory.config.message_config() is None
    message_id = factory.queue.enqueue(
        "telegram:chat:blank-system-prompt", "blank-system-prompt-agent", payload("u-blank-system-prompt-1", "hello")
    )
    claim = factory.queue.claim("worker-blank-system-prompt-1")
    assert claim is not None and claim.message_id == message_id
    assert claim.payload["messageText"] == "hello"


def test_message_config_attachment_retention(factory: Factory) -> None:
    """Seed: message runtime config should store telegram attachment retention"""
    factory.config.set_message_config(telegram_attachment_retention_ms=60_000)
    assert factory.config.message_config() == af.MessageConfig(telegram_attachment_retention_ms=60_000)


def test_enqueue_persists_attachments(factory: Factory) -> None:
    """Seed: enqueue should persist telegram attachments for claimed jobs"""
    now = T0 + 9 * 3_600_000
    factory.agents.upsert_agent("attachment-agent", secrets_ref=[])
    storage_id = factory.blobs.put(b"photo-binary")
    attachment = {
        "kind": "photo",
        "status": "ready",
        "storageId": storage_id,
        "telegramFileId": "telegram-photo-1",
        "mimeType": "image/jpeg",
        "sizeBytes": 12,
        "expiresAt": now + 60_000,
    }
    message_id = factory.queue.enqueue(
        "telegram:chat:attachment",
        "attachment-agent",
        payload("u-attachment-1", "[telegram media] photo message", attachments=[attachment]),
        now_ms=now,
    )
    w = factory.worker("worker-attachment-1")
    claim = w.claim(now_ms=now)
    assert claim is not None and claim.message_id == message_id
    assert len(claim.payload["attachments"]) == 1
    assert claim.payload["attachments"][0]["telegramFileId"] == "telegram-photo-1"
    bundle = w.hydrate(claim, now_ms=now)
    (hydrated,) = bundle.payload["attachments"]
    assert hydrated["storageId"] == storage_id
    assert isinstance(hydrated["downloadUrl"], str) and hydrated["downloadUrl"].startswith("file://")
    with open(hydrated["path"], "rb") as fh:
        assert fh.read() == b"photo-binary"
    # One attachment row, ready: visible through the stored message.
    job = factory.queue.get_job(message_id)
    assert job is not None and job.payload["attachments"][0]["status"] == "ready"


def test_blank_provider_user_id_is_rejected(factory: Factory) -> None:
    """Seed: enqueue should fail when providerUserId is blank in payload"""
    factory.agents.upsert_agent("missing-provider-user-agent", secrets_ref=[])
    with pytest.raises(ValidationError, match="^providerUserId is required but missing in payload"):
        factory.queue.enqueue(
            "telegram:chat:missing-provider-user", "missing-provider-user-agent", payload(" ", "hello")
        )
    assert factory.queue.stats().queued_ready == 0


def test_idle_shutdown_from_last_claim(factory: Factory, manual_clock: ManualClock, support_agent: str) -> None:
    """Seed: worker scheduling should set idle shutdown from last claim time"""
    now = manual_clock.now_ms()
    message_id = factory.queue.enqueue("telegram:chat:2", support_agent, payload("u2", "ciao"))
    claim = factory.queue.claim("worker-2")
    assert claim is not None and claim.message_id == message_id
    manual_clock.set(now + 60_000)
    assert factory.queue.complete("worker-2", message_id, claim.lease_id) is True
    worker = factory.workers.get("worker-2")
    assert worker is not None
    assert worker.status == "active"
    assert worker.load == 0
    assert worker.scheduled_shutdown_at == now + IDLE_TIMEOUT


def test_hydration_bundle_bridge_config(factory: Factory) -> None:
    """Seed: hydration bundle should include resolved agent-bridge runtime config"""
    factory.agents.upsert_agent(
        "bridge-agent",
        secrets_ref=[],
        bridge_config={
            "enabled": True, "base_url": "https://consumer.example.com", "service_id": "openclaw-prod", "app_key": "crm"
        },
    )
    factory.secrets.import_plaintext("agent-bridge.serviceKey.bridge-agent", "abs_live_bridge_key")
    url_map = '{"crm":"https://consumer.example.com","billing":"https://billing.example.com"}'
    factory.secrets.import_plaintext("agent-bridge.baseUrlMapJson.bridge-agent", url_map)
    message_id = factory.queue.enqueue("bridge:chat:1", "bridge-agent", payload("bridge-user", "test"))
    w = factory.worker("worker-bridge-1")
    claim = w.claim()
    assert claim is not None and claim.message_id == message_id
    bundle = w.hydrate(claim, workspace_id="default")
    assert bundle.bridge_runtime_config == af.BridgeRuntimeConfig(
        base_url="https://consumer.example.com",
        app_base_url_map_json=url_map,
        service_id="openclaw-prod",
        app_key="crm",
        service_key="abs_live_bridge_key",
        service_key_secret_ref="agent-bridge.serviceKey.bridge-agent",
        bot_identity=None,
    )


def test_control_state_stopped_and_unknown(factory: Factory) -> None:
    """Seed: worker control state should signal stop for stopped worker"""
    factory.workers.upsert_worker_state("worker-stop-1", provider="fly", status="stopped", load=0)
    control = factory.workers.control_state("worker-stop-1")
    assert control.should_stop is True and control.reason == "stopped"
    unknown = factory.workers.control_state("worker-nonexistent")
    assert unknown.should_stop is True and unknown.reason == "unknown"


def test_control_state_overdue_shutdown(factory: Factory, manual_clock: ManualClock) -> None:
    """Seed: worker control state should stop active workers past scheduled shutdown"""
    now = manual_clock.now_ms()
    factory.workers.upsert_worker_state(
        "worker-overdue-1", provider="fly", status="active", load=0, now_ms=now - 60_000, scheduled_shutdown_at=now - 1
    )
    control = factory.workers.control_state("worker-overdue-1")
    assert control.should_stop is True
    assert control.reason == "overdue_shutdown"


def test_scheduler_counts(factory: Factory, support_agent: str) -> None:
    """Seed: scheduler count includes queued and in-progress conversations"""
    factory.queue.enqueue("telegram:chat:active-1", support_agent, payload("u-active-1", "uno"))
    factory.queue.enqueue("telegram:chat:active-2", support_agent, payload("u-active-2", "due"))
    assert factory.queue.claim("worker-active-1") is not None
    counts = factory.queue.conversation_counts()
    assert counts.ready == 1
    assert counts.active == 2


def test_upsert_worker_state_preserves_heartbeat(factory: Factory) -> None:
    """Seed: upsertWorkerState should preserve heartbeat for stopped workers"""
    first = 1_700_000_000_000
    draining_at, stopping_at, stopped_at = first + 60_000, first + 120_000, first + 180_000
    ws = factory.workers
    ws.upsert_worker_state("worker-heartbeat-1", provider="fly", status="active", load=0, now_ms=first)
    ws.upsert_worker_state(
        "worker-heartbeat-1", provider="fly", status="draining", load=0, now_ms=draining_at, scheduled_shutdown_at=stopping_at
    )
    ws.upsert_worker_state(
        "worker-heartbeat-1", provider="fly", status="stopping", load=0, now_ms=stopping_at,
        scheduled_shutdown_at=stopping_at, stopped_at=stopping_at,
    )
    ws.upsert_worker_state(
        "worker-heartbeat-1", provider="fly", status="stopped", load=0, now_ms=stopped_at,
        scheduled_shutdown_at=stopping_at, stopped_at=stopped_at,
    )
    worker = ws.get("worker-heartbeat-1")
    assert worker is not None
    assert worker.status == "stopped"
    assert worker.heartbeat_at == stopping_at
    assert worker.scheduled_shutdown_at == stopping_at
    assert worker.stopped_at == stopped_at


def test_assignment_prevents_cross_conversation_claims(factory: Factory, support_agent: str) -> None:
    """Seed: worker assignment should prevent cross-conversation claims after completion"""
    now = T0 + 17 * 3_600_000 + 30 * 60_000
    a, b = "telegram:chat:sticky-a", "telegram:chat:sticky-b"
    message_a = factory.queue.enqueue(a, support_agent, payload("u-sticky-a", "first"), now_ms=now)
    first = factory.queue.claim("worker-sticky-1", conversation_id=a, now_ms=now)
    assert first is not None and first.message_id == message_a
    assert factory.queue.complete("worker-sticky-1", message_a, first.lease_id, now_ms=now + 1_000) is True
    factory.queue.enqueue(b, support_agent, payload("u-sticky-b", "second"), now_ms=now + 2_000)
    assert factory.queue.claim("worker-sticky-1", now_ms=now + 2_000) is None
    queued = factory.queue.list_jobs("queued", limit=10)
    assert any(j.conversation_id == b for j in queued)
    worker = factory.workers.get("worker-sticky-1")
    assert worker is not None
    assert worker.assignment == af.Assignment(
        conversation_id=a, agent_key=support_agent, lease_id=first.lease_id, assigned_at=now
    )


def test_preassigned_worker_claims_its_conversation(factory: Factory, support_agent: str) -> None:
    """Seed: preassigned workers should claim only their assigned conversation on first claim"""
    now = T0 + 17 * 3_600_000 + 35 * 60_000
    factory.queue.enqueue("telegram:chat:preassign-a", support_agent, payload("u-preassign-a", "first"), now_ms=now)
    message_b = factory.queue.enqueue(
        "telegram:chat:preassign-b", support_agent, payload("u-preassign-b", "second"), now_ms=now + 1
    )
    factory.workers.upsert_worker_state(
        "worker-preassigned-1",
        provider="fly",
        status="active",
        load=0,
        now_ms=now,
        assignment={
            "conversation_id": "telegram:chat:preassign-b",
            "agent_key": support_agent,
            "lease_id": "spawn:worker-preassigned-1",
            "assigned_at": now,
        },
    )
    claim = factory.queue.claim("worker-preassigned-1", now_ms=now + 10)
    assert claim is not None
    assert claim.message_id == message_b
    assert claim.conversation_id == "telegram:chat:preassign-b"


def test_exclusive_ownership(factory: Factory, support_agent: str) -> None:
    """Seed: exclusive ownership should block another worker and let the owner reclaim"""
    now = T0 + 17 * 3_600_000 + 40 * 60_000
    conv = "telegram:chat:exclusive-owner"
    first_id = factory.queue.enqueue(conv, support_agent, payload("u-exclusive-1", "first"), now_ms=now)
    first = factory.queue.claim("worker-exclusive-1", conversation_id=conv, now_ms=now)
    assert first is not None and first.message_id == first_id
    factory.queue.complete("worker-exclusive-1", first_id, first.lease_id, now_ms=now + 1_000)
    second_id = factory.queue.enqueue(conv, support_agent, payload("u-exclusive-2", "second"), now_ms=now + 2_000)
    assert factory.queue.claim("worker-exclusive-2", conversation_id=conv, now_ms=now + 2_000) is None
    reclaim = factory.queue.claim("worker-exclusive-1", now_ms=now + 2_000)
    assert reclaim is not None
    assert reclaim.message_id == second_id
    assert reclaim.conversation_id == conv


def test_stale_owner_takeover(factory: Factory, support_agent: str) -> None:
    """Seed: stale owner should allow another worker to take over the conversation"""
    now = T0 + 17 * 3_600_000 + 47 * 60_000
    conv = "telegram:chat:stale-owner"
    first_id = factory.queue.enqueue(conv, support_agent, payload("u-stale-1", "first"), now_ms=now)
    first = factory.queue.claim("worker-stale-1", conversation_id=conv, now_ms=now)
    assert first is not None and first.message_id == first_id
    factory.queue.complete("worker-stale-1", first_id, first.lease_id, now_ms=now + 1_000)
    # The seed patched the owner's heartbeat into the past; here the owner simply
    # stays silent until its last heartbeat (the completion) is older than stale_after_ms.
    later = now + 1_000 + STALE_MS + 1
    second_id = factory.queue.enqueue(conv, support_agent, payload("u-stale-2", "second"), now_ms=later)
    takeover = factory.queue.claim("worker-stale-2", conversation_id=conv, now_ms=later)
    assert takeover is not None
    assert takeover.message_id == second_id
    assert takeover.conversation_id == conv


def test_release_stuck_jobs_clears_assignment(factory: Factory, support_agent: str) -> None:
    """Seed: release stuck jobs should clear worker assignment when the lease is recovered"""
    now = T0 + 17 * 3_600_000 + 55 * 60_000
    conv = "telegram:chat:lease-clear"
    message_id = factory.queue.enqueue(conv, support_agent, payload("u-lease-clear", "recover me"), now_ms=now)
    claim = factory.queue.claim("worker-lease-clear-1", conversation_id=conv, now_ms=now)
    assert claim is not None and claim.message_id == message_id
    released = factory.queue.release_stuck_jobs(now_ms=now + LEASE_MS + 1, limit=10)
    assert released.requeued == 1
    assert released.unlocked == 1
    worker = factory.workers.get("worker-lease-clear-1")
    assert worker is not None
    assert worker.assignment is None
