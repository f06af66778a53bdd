"""Bad input to ``factory.identity`` and ``factory.templates``: a typed exception
that names the problem, and the database file unchanged afterwards.

Each case runs against its own populated database (agents with and without a bot,
a disabled agent, active and revoked bindings, pending / used / expired pairing
codes, templates, queued messages) and compares a dump of every table, the schema
and ``user_version`` (read through a separate read-only connection) before and
after the call. Wrong Python types raise ``TypeError`` naming the argument.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import (
    Factory,
    InvalidStateError,
    ManualClock,
    NotFoundError,
    ValidationError,
)
from agent_factory.testing import EPOCH_2026_MS
from helpers import db_snapshot

T0 = EPOCH_2026_MS

#: Unicode White_Space: what the core trims (Python's ``str.strip`` also drops \x1c-\x1f).
WS = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u2028\u2029\u202f\u205f\u3000"



def problem_text(err: BaseException) -> str:
    """The message plus its notes (pyo3 names a mistyped argument in a note)."""
    return "\n".join([str(err), *getattr(err, "__notes__", ())])


@dataclasses.dataclass
class World:
    f: Factory
    path: Path
    pending: str  # pending code of u-pending for agent a
    used: str  # used code (u1 bound through it)
    expired: str  # code stored as expired
    template: str  # enabled template
    disabled_template: str


@pytest.fixture
def world(tmp_path: Path) -> World:
    path = tmp_path / "world.db"
    clock = ManualClock(T0)
    f = Factory(path, clock=clock)
    f.agents.upsert_agent("a", bot_identity="bot-a")
    f.agents.upsert_agent("nobot")
    f.agents.upsert_agent("off", bot_identity="bot-off", enabled=False)
    used = f.identity.create_pairing_code("u1", "a").code
    f.identity.consume_pairing_code(used, bot_identity="bot-a", telegram_user_id="tg-1", telegram_chat_id="chat-1")
    f.identity.send_message("u1", "a", "hello")
    f.identity.bind("u2", "nobot", metadata={"companyId": "co"})
    f.identity.revoke("u2")
    f.identity.bind("u3", "off")
    expired = f.identity.create_pairing_code("u-exp", "a", ttl_ms=60_000).code
    clock.advance(60_000)
    with pytest.raises(InvalidStateError):
        f.identity.consume_pairing_code(expired, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c")
    pending = f.identity.create_pairing_code("u-pending", "a").code
    template = f.templates.create("Hello", "hi", ["x"], actor_user_id="admin").template_id
    disabled = f.templates.create("Off", "off", enabled=False, actor_user_id="admin").template_id
    return World(f, path, pending, used, expired, template, disabled)


Case = tuple[str, Callable[[World], Any], type[BaseException], str]

CASES: list[Case] = [
    # -- bind --
    ("bind user type", lambda w: w.f.identity.bind(1, "a"), TypeError, "consumer_user_id"),  # type: ignore[arg-type]
    ("bind blank user", lambda w: w.f.identity.bind("", "a"), ValidationError, "consumerUserId"),
    ("bind padded user", lambda w: w.f.identity.bind(" u9", "a"), ValidationError, "consumerUserId"),
    ("bind long user", lambda w: w.f.identity.bind("u" * 257, "a"), ValidationError, "consumerUserId"),
    ("bind control user", lambda w: w.f.identity.bind("u\n9", "a"), ValidationError, "consumerUserId"),
    ("bind bad agent", lambda w: w.f.identity.bind("u9", "bad key"), ValidationError, "agentKey"),
    ("bind unknown agent", lambda w: w.f.identity.bind("u9", "ghost"), NotFoundError, "Agent profile 'ghost' not found"),
    ("bind source", lambda w: w.f.identity.bind("u9", "a", source="pigeon"), ValidationError, "source"),  # type: ignore[arg-type]
    ("bind bot", lambda w: w.f.identity.bind("u9", "a", bot_identity="bad bot"), ValidationError, "botIdentity"),
    ("bind tg without bot", lambda w: w.f.identity.bind("u1", "nobot", telegram_user_id="t"), ValidationError, "missing botIdentity"),
    ("bind tg user", lambda w: w.f.identity.bind("u1", "a", telegram_user_id="t t"), ValidationError, "telegramUserId"),
    ("bind tg chat", lambda w: w.f.identity.bind("u1", "a", telegram_chat_id="c" * 129), ValidationError, "telegramChatId"),
    ("bind meta value", lambda w: w.f.identity.bind("u1", "a", metadata={"k": 1}), ValidationError, "metadata.k"),  # type: ignore[dict-item]
    ("bind meta nan", lambda w: w.f.identity.bind("u1", "a", metadata={"k": math.nan}), ValidationError, "metadata"),  # type: ignore[dict-item]
    ("bind meta type", lambda w: w.f.identity.bind("u1", "a", metadata="k=v"), TypeError, "metadata"),  # type: ignore[arg-type]
    ("bind meta size", lambda w: w.f.identity.bind("u1", "a", metadata={f"k{i}": "v" for i in range(65)}), ValidationError, "metadata"),
    ("bind meta long", lambda w: w.f.identity.bind("u1", "a", metadata={"k": "v" * 2001}), ValidationError, "metadata.k"),
    ("bind now", lambda w: w.f.identity.bind("u1", "a", now_ms=-1), ValidationError, "nowMs"),
    # -- revoke / resolve / get / list --
    ("revoke blank", lambda w: w.f.identity.revoke(""), ValidationError, "consumerUserId"),
    ("revoke now", lambda w: w.f.identity.revoke("u1", now_ms=-1), ValidationError, "nowMs"),
    ("resolve user", lambda w: w.f.identity.resolve_agent_for_user(""), ValidationError, "consumerUserId"),
    ("resolve tg bot", lambda w: w.f.identity.resolve_for_telegram(bot_identity="b b", telegram_user_id="t"), ValidationError, "botIdentity"),
    ("resolve tg type", lambda w: w.f.identity.resolve_for_telegram(telegram_chat_id=5), TypeError, "telegram_chat_id"),  # type: ignore[arg-type]
    ("get binding", lambda w: w.f.identity.get_binding(" "), ValidationError, "consumerUserId"),
    ("list bindings limit", lambda w: w.f.identity.list_bindings("u1", limit=0), ValidationError, "limit"),
    ("list bindings big", lambda w: w.f.identity.list_bindings("u1", limit=1001), ValidationError, "limit"),
    # -- pairing --
    ("pair user", lambda w: w.f.identity.create_pairing_code("", "a"), ValidationError, "consumerUserId"),
    ("pair agent", lambda w: w.f.identity.create_pairing_code("u9", "bad key"), ValidationError, "agentKey"),
    ("pair ghost", lambda w: w.f.identity.create_pairing_code("u9", "ghost"), NotFoundError, "'ghost' not found or disabled"),
    ("pair disabled", lambda w: w.f.identity.create_pairing_code("u9", "off"), InvalidStateError, "'off' not found or disabled"),
    ("pair nobot", lambda w: w.f.identity.create_pairing_code("u9", "nobot"), InvalidStateError, "missing botIdentity"),
    ("pair ttl zero", lambda w: w.f.identity.create_pairing_code("u9", "a", ttl_ms=0), ValidationError, "ttlMs"),
    ("pair ttl type", lambda w: w.f.identity.create_pairing_code("u9", "a", ttl_ms="60s"), TypeError, "ttl_ms"),  # type: ignore[arg-type]
    ("pair now", lambda w: w.f.identity.create_pairing_code("u9", "a", now_ms=-2), ValidationError, "nowMs"),
    ("consume blank", lambda w: w.f.identity.consume_pairing_code("", bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"), ValidationError, "code"),
    ("consume chars", lambda w: w.f.identity.consume_pairing_code("AB-CD", bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"), ValidationError, "code"),
    ("consume unknown", lambda w: w.f.identity.consume_pairing_code("ZZZZZZ", bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"), NotFoundError, "Pairing code not found"),
    ("consume used", lambda w: w.f.identity.consume_pairing_code(w.used, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"), InvalidStateError, "already used or expired"),
    ("consume expired", lambda w: w.f.identity.consume_pairing_code(w.expired, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"), InvalidStateError, "already used or expired"),
    ("consume no bot", lambda w: w.f.identity.consume_pairing_code(w.pending, bot_identity=None, telegram_user_id="t", telegram_chat_id="c"), ValidationError, "Missing bot identity"),
    ("consume other bot", lambda w: w.f.identity.consume_pairing_code(w.pending, bot_identity="bot-x", telegram_user_id="t", telegram_chat_id="c"), ValidationError, "different Telegram bot"),
    ("consume tg user", lambda w: w.f.identity.consume_pairing_code(w.pending, bot_identity="bot-a", telegram_user_id=" ", telegram_chat_id="c"), ValidationError, "telegramUserId"),
    ("consume tg chat", lambda w: w.f.identity.consume_pairing_code(w.pending, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c/1"), ValidationError, "telegramChatId"),
    ("consume code type", lambda w: w.f.identity.consume_pairing_code(123, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c"), TypeError, "code"),  # type: ignore[arg-type]
    ("consume now", lambda w: w.f.identity.consume_pairing_code(w.pending, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c", now_ms=-1), ValidationError, "nowMs"),
    ("pairing status", lambda w: w.f.identity.pairing_status("??"), ValidationError, "code"),
    # -- user-agent views --
    ("list agents", lambda w: w.f.identity.list_user_agents(""), ValidationError, "consumerUserId"),
    ("get agent", lambda w: w.f.identity.get_user_agent("u1", "bad key"), ValidationError, "agentKey"),
    ("active agent", lambda w: w.f.identity.active_user_agent("u1", now_ms=-1), ValidationError, "nowMs"),
    ("overview", lambda w: w.f.identity.overview("\t"), ValidationError, "consumerUserId"),
    ("ua pairing ghost", lambda w: w.f.identity.create_user_agent_pairing("u9", "ghost"), NotFoundError, "ghost"),
    ("ua pairing ttl", lambda w: w.f.identity.create_user_agent_pairing("u9", "a", ttl_ms=-5), ValidationError, "ttlMs"),
    ("ua pairing status", lambda w: w.f.identity.user_agent_pairing_status("u1", ""), ValidationError, "agentKey"),
    # -- conversation views and sends --
    ("items status", lambda w: w.f.identity.queue_items("u1", "a", statuses=["nope"]), ValidationError, "status"),
    ("items statuses str", lambda w: w.f.identity.queue_items("u1", "a", statuses="queued"), TypeError, "statuses"),
    ("items statuses empty", lambda w: w.f.identity.queue_items("u1", "a", statuses=[]), ValidationError, "statuses"),
    ("items limit", lambda w: w.f.identity.queue_items("u1", "a", limit=0), ValidationError, "limit"),
    ("items limit big", lambda w: w.f.identity.queue_items("u1", "a", limit=501), ValidationError, "limit"),
    ("conv items id", lambda w: w.f.identity.list_queue_items_for_conversation("  "), ValidationError, "conversationId"),
    ("conv items limit", lambda w: w.f.identity.list_queue_items_for_conversation("c", limit=-1), ValidationError, "limit"),
    ("view limit", lambda w: w.f.identity.conversation_view("u1", "a", limit=0), ValidationError, "limit"),
    ("view user", lambda w: w.f.identity.conversation_view("", "a"), ValidationError, "consumerUserId"),
    ("send blank", lambda w: w.f.identity.send_message("u1", "a", "   "), ValidationError, "content"),
    ("send long", lambda w: w.f.identity.send_message("u1", "a", "x" * 32_769), ValidationError, "content"),
    ("send type", lambda w: w.f.identity.send_message("u1", "a", b"hi"), TypeError, "content"),  # type: ignore[arg-type]
    ("send meta", lambda w: w.f.identity.send_message("u1", "a", "hi", metadata={"n": 2}), ValidationError, "metadata.n"),  # type: ignore[dict-item]
    ("send unbound", lambda w: w.f.identity.send_message("u2", "nobot", "hi"), NotFoundError, "No active binding found"),
    ("send other agent", lambda w: w.f.identity.send_message("u1", "nobot", "hi"), NotFoundError, "No active binding found"),
    ("send disabled agent", lambda w: w.f.identity.send_message("u3", "off", "hi"), InvalidStateError, "'off' not found or disabled"),
    ("send now", lambda w: w.f.identity.send_message("u1", "a", "hi", now_ms=-1), ValidationError, "nowMs"),
    ("snapshots user", lambda w: w.f.identity.snapshots("", "a"), ValidationError, "consumerUserId"),
    ("latest snapshot", lambda w: w.f.identity.latest_snapshot("u1", "bad key"), ValidationError, "agentKey"),
    # -- templates --
    ("tpl title", lambda w: w.f.templates.create("  ", "t", actor_user_id="a"), ValidationError, "Template title is required"),
    ("tpl text", lambda w: w.f.templates.create("t", "\n", actor_user_id="a"), ValidationError, "Template text is required"),
    ("tpl title long", lambda w: w.f.templates.create("t" * 201, "t", actor_user_id="a"), ValidationError, "title"),
    ("tpl text long", lambda w: w.f.templates.create("t", "x" * 32_769, actor_user_id="a"), ValidationError, "text"),
    ("tpl tags str", lambda w: w.f.templates.create("t", "t", "urgent", actor_user_id="a"), TypeError, "tags"),
    ("tpl tag type", lambda w: w.f.templates.create("t", "t", [1], actor_user_id="a"), TypeError, "tags[0]"),  # type: ignore[list-item]
    ("tpl many tags", lambda w: w.f.templates.create("t", "t", [f"t{i}" for i in range(33)], actor_user_id="a"), ValidationError, "tags"),
    ("tpl long tag", lambda w: w.f.templates.create("t", "t", ["x" * 65], actor_user_id="a"), ValidationError, "tags[0]"),
    ("tpl actor", lambda w: w.f.templates.create("t", "t", actor_user_id=" "), ValidationError, "actorUserId"),
    ("tpl enabled type", lambda w: w.f.templates.create("t", "t", actor_user_id="a", enabled="yes"), TypeError, "enabled"),  # type: ignore[arg-type]
    ("tpl now", lambda w: w.f.templates.create("t", "t", actor_user_id="a", now_ms=-1), ValidationError, "nowMs"),
    ("tpl update id", lambda w: w.f.templates.update("bad id!", actor_user_id="a", text="x"), ValidationError, "templateId"),
    ("tpl update title", lambda w: w.f.templates.update(w.template, actor_user_id="a", title=" "), ValidationError, "Template title is required"),
    ("tpl update actor", lambda w: w.f.templates.update(w.template, actor_user_id="", text="x"), ValidationError, "actorUserId"),
    ("tpl update tags", lambda w: w.f.templates.update(w.template, actor_user_id="a", tags=[None]), TypeError, "tags[0]"),  # type: ignore[list-item]
    ("tpl delete id", lambda w: w.f.templates.delete(""), ValidationError, "templateId"),
    ("tpl get id", lambda w: w.f.templates.get("a/b"), ValidationError, "templateId"),
    ("tpl list limit", lambda w: w.f.templates.list(limit=0), ValidationError, "limit"),
    ("tpl list big", lambda w: w.f.templates.list(limit=201), ValidationError, "limit"),
    ("tpl send missing", lambda w: w.f.templates.send_to_user_agent("u1", "a", "tpl-missing"), NotFoundError, "Message template not found"),
    ("tpl send disabled", lambda w: w.f.templates.send_to_user_agent("u1", "a", w.disabled_template), NotFoundError, "Message template not found"),
    ("tpl send unbound", lambda w: w.f.templates.send_to_user_agent("u2", "nobot", w.template), NotFoundError, "No active binding found"),
    ("tpl send id", lambda w: w.f.templates.send_to_user_agent("u1", "a", "x y"), ValidationError, "templateId"),
    ("tpl send meta", lambda w: w.f.templates.send_to_user_agent("u1", "a", w.template, metadata={"k": []}), ValidationError, "metadata.k"),  # type: ignore[dict-item]
    ("tpl send user", lambda w: w.f.templates.send_to_user_agent("", "a", w.template), ValidationError, "consumerUserId"),
]


@pytest.mark.parametrize(("name", "call", "exc", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_and_changes_nothing(
    world: World, name: str, call: Callable[[World], Any], exc: type[BaseException], needle: str
) -> None:
    before = db_snapshot(world.path)
    with pytest.raises(exc) as info:
        call(world)
    assert type(info.value) is exc or (exc is TypeError and isinstance(info.value, TypeError)), name
    assert needle in problem_text(info.value), problem_text(info.value)
    assert db_snapshot(world.path) == before


def test_an_expired_code_is_the_one_documented_write(world: World, tmp_path: Path) -> None:
    """The only rejected call that writes: consuming a stale pending code marks it expired."""
    code = world.f.identity.create_pairing_code("u-late", "a", ttl_ms=60_000, now_ms=T0).code
    before = db_snapshot(world.path)
    with pytest.raises(InvalidStateError, match="^Pairing code expired$"):
        world.f.identity.consume_pairing_code(code, bot_identity="bot-a", telegram_user_id="t", telegram_chat_id="c")
    after = db_snapshot(world.path)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"pairing_codes"}


ids_text = st.text(min_size=0, max_size=20)
maybe_ids = st.none() | ids_text
metadata_values = st.dictionaries(
    st.text(max_size=8), st.text(max_size=10) | st.integers() | st.none() | st.booleans(), max_size=4
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user=ids_text,
    agent_key=st.sampled_from(["a", "nobot", "off", "ghost", "bad key", ""]) | ids_text,
    bot=maybe_ids,
    source=st.sampled_from(["api", "manual", "telegram_pairing", "other", ""]),
    tg_user=maybe_ids,
    tg_chat=maybe_ids,
    metadata=st.none() | metadata_values,
)
def test_bind_with_arbitrary_input_succeeds_or_changes_nothing(
    world: World,
    user: str,
    agent_key: str,
    bot: str | None,
    source: str,
    tg_user: str | None,
    tg_chat: str | None,
    metadata: dict[str, Any] | None,
) -> None:
    before = db_snapshot(world.path)
    try:
        b = world.f.identity.bind(
            user, agent_key, bot_identity=bot, source=source,  # type: ignore[arg-type]
            telegram_user_id=tg_user, telegram_chat_id=tg_chat, metadata=metadata,
        )
    except (ValidationError, NotFoundError) as e:
        assert str(e)
        assert db_snapshot(world.path) == before
        return
    assert b.status == "active" and b.conversation_id == f"user-agent:{agent_key}:{user}"
    assert world.f.identity.resolve_agent_for_user(user) == agent_key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=st.text(max_size=30),
    text=st.text(max_size=30),
    tags=st.lists(st.text(max_size=10), max_size=5),
    actor=st.text(max_size=10),
)
def test_template_create_with_arbitrary_input_succeeds_or_changes_nothing(
    world: World, title: str, text: str, tags: list[str], actor: str
) -> None:
    before = db_snapshot(world.path)
    try:
        t = world.f.templates.create(title, text, tags, actor_user_id=actor)
    except ValidationError as e:
        assert any(word in str(e) for word in ("title", "text", "tags", "actorUserId")), str(e)
        assert db_snapshot(world.path) == before
        return
    assert t.title == title.strip(WS) and t.text == text.strip(WS)
