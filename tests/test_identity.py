"""Identity: bindings, pairing codes, user-agent views and conversation views.

Seed ports have docstrings starting with ``Seed: <title>``. The other tests pin the
fixed weaknesses of the original (§10 items 9, 10, 22 of the inventory): an expired
pairing code stays expired after the error, a code works once (also under
concurrent consumers), codes come from a CSPRNG alphabet, deep links never guess a
bot username, and queue-item status filters apply before the limit.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agent_factory import (
    AsyncFactory,
    Binding,
    Factory,
    InvalidStateError,
    ManualClock,
    NotFoundError,
    PairingCode,
    UserAgent,
    ValidationError,
)
from agent_factory.testing import EPOCH_2026_MS

T0 = EPOCH_2026_MS
ALPHABET = set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")


def agent(f: Factory, key: str, bot: str | None = None, *, enabled: bool = True) -> None:
    f.agents.upsert_agent(key, version="1.0.0", secrets_ref=[], bot_identity=bot, enabled=enabled)


# ---------------------------------------------------------------------------------------
# seed ports
# ---------------------------------------------------------------------------------------


def test_seed_identity_binding_should_resolve_rebind_and_revoke(factory: Factory) -> None:
    """Seed: identity binding should resolve, rebind and revoke"""
    agent(factory, "agent-a", "bot-agent-a")
    agent(factory, "agent-b", "bot-agent-b")
    first = factory.identity.bind(
        "u-1",
        "agent-a",
        bot_identity="bot-agent-a",
        source="telegram_pairing",
        telegram_user_id="tg-user-1",
        telegram_chat_id="tg-chat-1",
    )
    assert first.agent_key == "agent-a"
    assert factory.identity.resolve_agent_for_user("u-1") == "agent-a"
    by_telegram = factory.identity.resolve_for_telegram(telegram_user_id="tg-user-1")
    assert by_telegram is not None
    assert by_telegram.agent_key == "agent-a"
    assert by_telegram.conversation_id == "user-agent:agent-a:u-1"

    factory.identity.bind(
        "u-1", "agent-b", source="manual", telegram_user_id="tg-user-1", telegram_chat_id="tg-chat-1"
    )
    assert factory.identity.resolve_agent_for_user("u-1") == "agent-b"
    assert factory.identity.revoke("u-1") == 1
    assert factory.identity.resolve_for_telegram(telegram_chat_id="tg-chat-1") is None


def test_seed_user_agent_snapshot_listing_should_stay_isolated_per_conversation(factory: Factory) -> None:
    """Seed: user-agent snapshot listing should stay isolated per conversation"""
    now = T0 + 17 * 3_600_000 + 54 * 60_000
    agent(factory, "snapshot-agent")
    factory.identity.bind("snapshot-user-a", "snapshot-agent", source="manual")
    factory.identity.bind("snapshot-user-b", "snapshot-agent", source="manual")
    factory.snapshots.upload(
        "worker-snapshot-a", "default", "snapshot-agent", "user-agent:snapshot-agent:snapshot-user-a",
        "manual", b"snapshot-a", now_ms=now,
    )
    factory.snapshots.upload(
        "worker-snapshot-b", "default", "snapshot-agent", "user-agent:snapshot-agent:snapshot-user-b",
        "manual", b"snapshot-b", now_ms=now + 2,
    )
    listed = factory.identity.snapshots("snapshot-user-a", "snapshot-agent", now_ms=now + 4)
    assert len(listed) == 1
    assert listed[0].conversation_id == "user-agent:snapshot-agent:snapshot-user-a"
    latest = factory.identity.latest_snapshot("snapshot-user-a", "snapshot-agent", now_ms=now + 4)
    assert latest is not None
    assert latest.conversation_id == "user-agent:snapshot-agent:snapshot-user-a"


# ---------------------------------------------------------------------------------------
# bindings
# ---------------------------------------------------------------------------------------


def test_binding_view_and_history(factory: Factory, manual_clock: ManualClock) -> None:
    agent(factory, "a", "bot-a")
    agent(factory, "b")
    b1 = factory.identity.bind("u1", "a", metadata={"companyId": "co", "displayName": "Ada"})
    assert isinstance(b1, Binding)
    assert (b1.status, b1.source, b1.bot_identity, b1.bound_at) == ("active", "api", "bot-a", T0)
    assert b1.metadata == {"companyId": "co", "displayName": "Ada"}
    manual_clock.advance(10)
    factory.identity.bind("u1", "b", source="manual")
    history = factory.identity.list_bindings("u1")
    assert [(b.agent_key, b.status) for b in history] == [("b", "active"), ("a", "revoked")]
    assert history[1].revoked_at == T0 + 10
    assert factory.identity.get_binding("u1") == history[0]
    assert factory.identity.get_binding("nobody") is None
    assert factory.identity.revoke("nobody") == 0
    assert "consumer_user_id" in b1.to_dict()


def test_rebinding_keeps_one_stable_conversation(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    ids = set()
    for i in range(3):
        b = factory.identity.bind("u1", "a", telegram_user_id=f"tg-{i}", telegram_chat_id=f"chat-{i}")
        ids.add(b.conversation_id)
    assert ids == {"user-agent:a:u1"}
    # The old Telegram ids no longer resolve; the newest do.
    assert factory.identity.resolve_for_telegram(bot_identity="bot-a", telegram_user_id="tg-0") is None
    target = factory.identity.resolve_for_telegram(bot_identity="bot-a", telegram_user_id="tg-2")
    assert target is not None and target.telegram_chat_id == "chat-2"


def test_a_bot_identity_lookup_never_falls_back_to_other_bots(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    factory.identity.bind("u1", "a", telegram_user_id="tg-1", telegram_chat_id="chat-1")
    assert factory.identity.resolve_for_telegram(bot_identity="bot-b", telegram_user_id="tg-1") is None
    assert factory.identity.resolve_for_telegram(bot_identity="bot-b", telegram_chat_id="chat-1") is None
    hit = factory.identity.resolve_for_telegram(bot_identity="bot-a", telegram_user_id="x", telegram_chat_id="chat-1")
    assert hit is not None and hit.consumer_user_id == "u1"
    assert factory.identity.resolve_for_telegram() is None


class BindingModel(RuleBasedStateMachine):
    """Random binds and revokes against a model: one active binding per user, one per
    (bot, Telegram user) and (bot, Telegram chat), and the stable conversation id."""

    USERS: ClassVar[list[str]] = ["u0", "u1", "u2", "u3"]
    AGENTS: ClassVar[dict[str, str]] = {"a": "bot-a", "b": "bot-b"}
    TG: ClassVar[list[str | None]] = [None, "t0", "t1"]
    CHATS: ClassVar[list[str | None]] = [None, "c0", "c1"]

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.f = Factory(":memory:", clock=self.clock)
        for key, bot in self.AGENTS.items():
            agent(self.f, key, bot)
        self.active: dict[str, tuple[str, str | None, str | None]] = {}

    @rule(
        user=st.sampled_from(USERS),
        agent_key=st.sampled_from(sorted(AGENTS)),
        tg=st.sampled_from(TG),
        chat=st.sampled_from(CHATS),
    )
    def bind(self, user: str, agent_key: str, tg: str | None, chat: str | None) -> None:
        self.clock.advance(1)
        b = self.f.identity.bind(user, agent_key, telegram_user_id=tg, telegram_chat_id=chat)
        assert b.conversation_id == f"user-agent:{agent_key}:{user}"
        bot = self.AGENTS[agent_key]
        self.active.pop(user, None)
        for other, (a, t, c) in list(self.active.items()):
            if self.AGENTS[a] == bot and ((tg is not None and t == tg) or (chat is not None and c == chat)):
                del self.active[other]
        self.active[user] = (agent_key, tg, chat)

    @rule(user=st.sampled_from(USERS))
    def revoke(self, user: str) -> None:
        self.clock.advance(1)
        expected = 1 if user in self.active else 0
        assert self.f.identity.revoke(user) == expected
        self.active.pop(user, None)

    @invariant()
    def matches_the_model(self) -> None:
        for user in self.USERS:
            history = self.f.identity.list_bindings(user)
            active = [b for b in history if b.status == "active"]
            assert len(active) <= 1
            assert all(b.conversation_id == f"user-agent:{b.agent_key}:{user}" for b in history)
            want = self.active.get(user)
            assert self.f.identity.resolve_agent_for_user(user) == (want[0] if want else None)
        for bot in self.AGENTS.values():
            for tg in self.TG[1:]:
                owners = [u for u, (a, t, _) in self.active.items() if self.AGENTS[a] == bot and t == tg]
                assert len(owners) <= 1
                hit = self.f.identity.resolve_for_telegram(bot_identity=bot, telegram_user_id=tg)
                if owners:
                    assert hit is not None and hit.consumer_user_id == owners[0]
                else:
                    assert hit is None or hit.telegram_user_id != tg


TestBindingModel = BindingModel.TestCase
TestBindingModel.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ---------------------------------------------------------------------------------------
# pairing codes
# ---------------------------------------------------------------------------------------


def test_pairing_lifecycle(factory: Factory) -> None:
    agent(factory, "default", "telegram-bot-default")
    pairing = factory.identity.create_pairing_code("anonymous", "default", ttl_ms=60_000)
    assert isinstance(pairing, PairingCode)
    assert pairing.status == "pending" and len(pairing.code) == 12 and set(pairing.code) <= ALPHABET
    assert pairing.expires_at == T0 + 60_000
    status = factory.identity.pairing_status(pairing.code)
    assert status is not None and status.status == "pending"
    used = factory.identity.consume_pairing_code(
        pairing.code, bot_identity="telegram-bot-default", telegram_user_id="tg-u", telegram_chat_id="tg-c"
    )
    assert (used.status, used.telegram_chat_id, used.used_at) == ("used", "tg-c", T0)
    status = factory.identity.pairing_status(pairing.code)
    assert status is not None and status.status == "used"
    hit = factory.identity.resolve_for_telegram(telegram_chat_id="tg-c")
    assert hit is not None and (hit.consumer_user_id, hit.agent_key) == ("anonymous", "default")
    binding = factory.identity.get_binding("anonymous")
    assert binding is not None and binding.source == "telegram_pairing"
    assert factory.identity.pairing_status("NOSUCHCODE") is None


def test_ttl_is_clamped(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    assert factory.identity.create_pairing_code("u", "a").expires_at == T0 + 900_000
    assert factory.identity.create_pairing_code("u", "a", ttl_ms=1).expires_at == T0 + 60_000
    assert factory.identity.create_pairing_code("u", "a", ttl_ms=10**12).expires_at == T0 + 86_400_000


def test_codes_are_unique_and_random(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    codes = {factory.identity.create_pairing_code(f"u{i}", "a").code for i in range(200)}
    assert len(codes) == 200
    assert set("".join(codes)) <= ALPHABET
    # 2400 symbols from a 31-letter alphabet: every symbol shows up.
    assert set("".join(codes)) == ALPHABET


def test_an_expired_code_stays_expired_after_the_error(factory_path: Path, manual_clock: ManualClock) -> None:
    f = Factory(factory_path, clock=manual_clock)
    agent(f, "a", "bot-a")
    code = f.identity.create_pairing_code("u1", "a", ttl_ms=60_000).code
    manual_clock.advance(60_000)
    with pytest.raises(InvalidStateError, match="^Pairing code expired$"):
        f.identity.consume_pairing_code(code, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c")
    del f  # drop this handle: the file alone must hold the expiry
    con = sqlite3.connect(factory_path)
    try:
        assert con.execute("SELECT status FROM pairing_codes WHERE code = ?", (code,)).fetchone() == ("expired",)
        assert con.execute("SELECT count(*) FROM identity_bindings").fetchone() == (0,)
    finally:
        con.close()
    reopened = Factory(factory_path, clock=manual_clock)
    manual_clock.advance(-60_000)  # even back before the expiry, the code stays dead
    with pytest.raises(InvalidStateError, match="^Pairing code already used or expired$"):
        reopened.identity.consume_pairing_code(code, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c")
    status = reopened.identity.pairing_status(code)
    assert status is not None and status.status == "expired"


def test_a_code_is_consumed_once(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    code = factory.identity.create_pairing_code("u1", "a").code
    factory.identity.consume_pairing_code(code, bot_identity="bot-a", telegram_user_id="t1", telegram_chat_id="c1")
    with pytest.raises(InvalidStateError, match="^Pairing code already used or expired$"):
        factory.identity.consume_pairing_code(code, bot_identity="bot-a", telegram_user_id="t2", telegram_chat_id="c2")
    target = factory.identity.resolve_for_telegram(bot_identity="bot-a", telegram_user_id="t1")
    assert target is not None and target.consumer_user_id == "u1"
    assert factory.identity.resolve_for_telegram(bot_identity="bot-a", telegram_user_id="t2") is None


def test_two_threads_consuming_one_code_have_exactly_one_winner(factory_path: Path) -> None:
    setup = Factory(factory_path)
    agent(setup, "a", "bot-a")
    code = setup.identity.create_pairing_code("u1", "a").code
    handles = [Factory(factory_path) for _ in range(2)]  # two connections to one file
    barrier = threading.Barrier(len(handles))
    results: list[str] = []
    lock = threading.Lock()

    def consume(i: int) -> None:
        barrier.wait()
        try:
            handles[i].identity.consume_pairing_code(
                code, bot_identity="bot-a", telegram_user_id=f"t{i}", telegram_chat_id=f"c{i}"
            )
            outcome = "won"
        except InvalidStateError as e:
            outcome = str(e)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["Pairing code already used or expired", "won"]
    assert len([b for b in setup.identity.list_bindings("u1") if b.status == "active"]) == 1


def test_pairing_errors_in_seed_order(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    agent(factory, "nobot")
    agent(factory, "off", "bot-off", enabled=False)
    with pytest.raises(NotFoundError, match="^Agent profile 'ghost' not found or disabled$"):
        factory.identity.create_pairing_code("u1", "ghost")
    with pytest.raises(InvalidStateError, match="^Agent profile 'off' not found or disabled$"):
        factory.identity.create_pairing_code("u1", "off")
    with pytest.raises(InvalidStateError, match="missing botIdentity. Import and verify the Telegram token first."):
        factory.identity.create_pairing_code("u1", "nobot")
    with pytest.raises(NotFoundError, match="^Pairing code not found$"):
        factory.identity.consume_pairing_code("ABCDEF", bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c")
    code = factory.identity.create_pairing_code("u1", "a").code
    with pytest.raises(ValidationError, match="^Missing bot identity for Telegram pairing$"):
        factory.identity.consume_pairing_code(code, bot_identity="  ", telegram_user_id="t", telegram_chat_id="c")
    with pytest.raises(ValidationError, match="^Pairing code belongs to a different Telegram bot$"):
        factory.identity.consume_pairing_code(code, bot_identity="bot-x", telegram_user_id="t", telegram_chat_id="c")
    # None of the rejections used the code up.
    status = factory.identity.pairing_status(code)
    assert status is not None and status.status == "pending"


def test_a_new_code_expires_the_users_pending_code_for_the_same_agent(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    agent(factory, "b", "bot-b")
    a1 = factory.identity.create_pairing_code("u1", "a").code
    b1 = factory.identity.create_pairing_code("u1", "b").code
    factory.identity.create_pairing_code("u1", "a")
    statuses = {c: factory.identity.pairing_status(c).status for c in (a1, b1)}  # type: ignore[union-attr]
    assert statuses == {a1: "expired", b1: "pending"}
    with pytest.raises(InvalidStateError, match="^Pairing code already used or expired$"):
        factory.identity.consume_pairing_code(a1, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c")


# ---------------------------------------------------------------------------------------
# user-agent views
# ---------------------------------------------------------------------------------------


def test_user_agent_statuses_and_overview(factory: Factory, manual_clock: ManualClock) -> None:
    agent(factory, "a", "bot-a")
    agent(factory, "b", "bot-b")
    draft = factory.identity.get_user_agent("u1", "a")
    assert isinstance(draft, UserAgent)
    assert (draft.status, draft.binding_status, draft.pairing_status, draft.version) == ("draft", None, None, "1.0.0")
    assert factory.identity.get_user_agent("u1", "ghost") is None

    pairing = factory.identity.create_pairing_code("u1", "a", ttl_ms=60_000)
    v = factory.identity.get_user_agent("u1", "a")
    assert v is not None and (v.status, v.pairing_status) == ("pairing", "pending")
    manual_clock.advance(60_000)
    v = factory.identity.get_user_agent("u1", "a")
    assert v is not None and (v.status, v.pairing_status) == ("draft", "expired")

    pairing = factory.identity.create_pairing_code("u1", "a")
    factory.identity.consume_pairing_code(pairing.code, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c")
    active = factory.identity.active_user_agent("u1")
    assert active is not None
    assert (active.agent_key, active.status, active.pairing_status, active.binding_status) == ("a", "active", "used", "active")
    assert active.can_chat and active.can_disable and active.can_manage_push_jobs and not active.can_create_new_agent
    assert active.conversation_id == "user-agent:a:u1"

    manual_clock.advance(1)
    factory.identity.bind("u1", "b", metadata={"displayName": "Second"})
    overview = factory.identity.overview("u1")
    assert overview.active_agent_key == "b" and not overview.can_create_new_agent
    assert [(a.agent_key, a.status, a.display_name) for a in overview.agents] == [
        ("b", "active", "Second"),
        ("a", "disabled", None),
    ]
    assert [a.agent_key for a in factory.identity.list_user_agents("u1", include_disabled=False)] == ["b"]
    factory.agents.disable("b")
    failed = factory.identity.active_user_agent("u1")
    assert failed is not None and failed.status == "failed" and not failed.can_chat
    factory.identity.revoke("u1")
    overview = factory.identity.overview("u1")
    assert overview.active_agent_key is None and overview.can_create_new_agent
    assert factory.identity.active_user_agent("u1") is None
    assert factory.identity.overview("stranger").agents == []


def test_deep_link_is_none_without_a_known_username(factory: Factory) -> None:
    agent(factory, "my-agent", "4242")
    made = factory.identity.create_user_agent_pairing("u1", "my-agent")
    assert made.deep_link is None  # never https://t.me/my-agent?...
    assert made.pairing.status == "pending"
    # A token secret recorded for another bot does not lend its username.
    factory.secrets.import_plaintext(
        "telegram.botToken", "1:x", metadata={"telegramBotId": "1", "telegramUsername": "someone_else_bot"}
    )
    assert factory.identity.create_user_agent_pairing("u1", "my-agent").deep_link is None


def test_deep_link_uses_the_token_secret_username(factory: Factory) -> None:
    agent(factory, "my-agent", "4242")
    factory.secrets.import_plaintext(
        "telegram.botToken.my-agent", "4242:x", metadata={"telegramBotId": "4242", "telegramUsername": "my_agent_bot"}
    )
    made = factory.identity.create_user_agent_pairing("u1", "my-agent", ttl_ms=120_000)
    assert made.deep_link == f"https://t.me/my_agent_bot?start={made.pairing.code}"
    assert made.pairing.expires_at == T0 + 120_000
    status = factory.identity.user_agent_pairing_status("u1", "my-agent")
    assert status is not None and status.code == made.pairing.code
    assert factory.identity.user_agent_pairing_status("u1", "other") is None
    view = factory.identity.get_user_agent("u1", "my-agent")
    assert view is not None and view.telegram_username == "my_agent_bot"


def test_deep_link_prefers_the_binding_metadata_username(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    factory.identity.bind("u1", "a", metadata={"telegramUsername": "@bound_bot"})
    made = factory.identity.create_user_agent_pairing("u1", "a")
    assert made.deep_link == f"https://t.me/bound_bot?start={made.pairing.code}"


# ---------------------------------------------------------------------------------------
# conversation views and sends
# ---------------------------------------------------------------------------------------


def test_send_message_routes_through_the_binding(factory: Factory) -> None:
    agent(factory, "a", "bot-a")
    with pytest.raises(NotFoundError, match="^No active binding found for consumerUserId and agentKey$"):
        factory.identity.send_message("u1", "a", "hi")
    factory.identity.bind("u1", "a", source="manual")
    mid = factory.identity.send_message("u1", "a", "plain", metadata={"source": "mine", "k": "v"})
    job = factory.queue.get_job(mid)
    assert job is not None
    assert job.conversation_id == "user-agent:a:u1"
    assert job.payload["provider"] == "system_push" and job.payload["providerUserId"] == "u1"
    assert job.payload["metadata"]["source"] == "user_agent_api"
    assert job.payload["metadata"]["k"] == "v" and job.payload["metadata"]["consumerUserId"] == "u1"
    factory.identity.bind("u1", "a", telegram_user_id="tg-1", telegram_chat_id="chat-1")
    job = factory.queue.get_job(factory.identity.send_message("u1", "a", "telegram"))
    assert job is not None
    assert (job.payload["provider"], job.payload["providerUserId"]) == ("telegram", "tg-1")
    assert job.payload["metadata"]["telegramChatId"] == "chat-1"
    with pytest.raises(NotFoundError):
        factory.identity.send_message("u1", "other-agent", "wrong agent")


def test_status_filter_applies_before_the_limit(factory: Factory, manual_clock: ManualClock) -> None:
    agent(factory, "a")
    factory.identity.bind("u1", "a")
    first = factory.identity.send_message("u1", "a", "first")
    claim = factory.queue.claim("w1")
    assert claim is not None and claim.message_id == first
    for i in range(30):
        manual_clock.advance(1)
        factory.identity.send_message("u1", "a", f"m{i}")
    processing = factory.identity.queue_items("u1", "a", statuses=["processing"], limit=5)
    assert [j.message_id for j in processing] == [first]
    queued = factory.identity.queue_items("u1", "a", statuses=["queued"], limit=3)
    assert [j.payload["messageText"] for j in queued] == ["m29", "m28", "m27"]
    everything = factory.identity.queue_items("u1", "a", limit=500)
    assert len(everything) == 31 and everything[-1].message_id == first
    by_conv = factory.identity.list_queue_items_for_conversation("user-agent:a:u1", limit=2)
    assert [j.payload["messageText"] for j in by_conv] == ["m29", "m28"]
    assert factory.identity.queue_items("u2", "a") == []


def test_conversation_view(factory: Factory) -> None:
    agent(factory, "a")
    empty = factory.identity.conversation_view("u1", "a")
    assert (empty.state, empty.context_history, empty.queue_items, empty.latest_message_id) == ("idle", [], [], None)
    assert not empty.has_queued_jobs
    factory.identity.bind("u1", "a")
    mid = factory.identity.send_message("u1", "a", "hello")
    factory.queue.append_conversation_messages(
        "user-agent:a:u1",
        [{"role": "user", "content": "hello", "at": T0 + 1}, {"role": "assistant", "content": "hi", "at": T0 + 2}],
    )
    view = factory.identity.conversation_view("u1", "a", limit=10)
    assert view.consumer_user_id == "u1" and view.conversation_id == "user-agent:a:u1"
    assert view.has_queued_jobs and view.latest_message_id == mid
    assert (view.last_user_message_at, view.last_assistant_message_at) == (T0 + 1, T0 + 2)
    assert [h.content for h in view.context_history] == ["hello", "hi"]


# ---------------------------------------------------------------------------------------
# asyncio face
# ---------------------------------------------------------------------------------------


async def test_async_pairing_and_views(async_factory: AsyncFactory) -> None:
    await async_factory.agents.upsert_agent("a", bot_identity="bot-a")
    made = await async_factory.identity.create_user_agent_pairing("u1", "a")
    assert made.deep_link is None
    used = await async_factory.identity.consume_pairing_code(
        made.pairing.code, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"
    )
    assert used.status == "used"
    assert await async_factory.identity.resolve_agent_for_user("u1") == "a"
    target = await async_factory.identity.resolve_for_telegram(bot_identity="bot-a", telegram_chat_id="c")
    assert target is not None and target.consumer_user_id == "u1"
    overview = await async_factory.identity.overview("u1")
    assert overview.active_agent_key == "a"
    mid = await async_factory.identity.send_message("u1", "a", "hi")
    items = await async_factory.identity.queue_items("u1", "a", statuses=["queued"])
    assert [j.message_id for j in items] == [mid]
    view = await async_factory.identity.conversation_view("u1", "a")
    assert view.latest_message_id == mid
    assert await async_factory.identity.snapshots("u1", "a") == []
    assert await async_factory.identity.revoke("u1") == 1
    assert (await async_factory.identity.list_bindings("u1"))[0].status == "revoked"


async def test_async_expired_code(async_factory: AsyncFactory, manual_clock: ManualClock) -> None:
    await async_factory.agents.upsert_agent("a", bot_identity="bot-a")
    code = (await async_factory.identity.create_pairing_code("u1", "a")).code
    manual_clock.advance(900_000)
    with pytest.raises(InvalidStateError, match="^Pairing code expired$"):
        await async_factory.identity.consume_pairing_code(
            code, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"
        )
    status = await async_factory.identity.pairing_status(code)
    assert status is not None and status.status == "expired"
