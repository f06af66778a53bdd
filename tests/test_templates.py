"""Message templates: ported seed tests, global unique keys, ranking over all rows,
sends that count usage atomically, sync + async faces.

Seed ports have docstrings starting with ``Seed: <title>``. The original listed
templates by taking the first ``limit`` rows in index order and sorting only those
(inventory §10 item 9); here the ranking covers every template.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import (
    AsyncFactory,
    Factory,
    InvalidStateError,
    ManualClock,
    MessageTemplate,
    NotFoundError,
    ValidationError,
)
from agent_factory.testing import EPOCH_2026_MS

T0 = EPOCH_2026_MS

#: Unicode White_Space: what the core trims (Python's ``str.strip`` also drops \x1c-\x1f).
WS = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u2028\u2029\u202f\u205f\u3000"


def bound_user(f: Factory, user: str = "user-template-1", agent_key: str = "template-agent") -> None:
    f.agents.upsert_agent(agent_key, version="1.0.0", secrets_ref=[], enabled=True)
    f.identity.bind(user, agent_key, source="manual", metadata={"companyId": "co-templates"})


# ---------------------------------------------------------------------------------------
# seed ports
# ---------------------------------------------------------------------------------------


def test_seed_message_templates_should_normalize_tags_and_auto_generate_key(factory: Factory) -> None:
    """Seed: message templates should normalize tags and auto-generate key"""
    created = factory.templates.create(
        " Status Update ",
        " Share your latest progress. ",
        [" Urgent ", "follow-up", "urgent", " Team "],
        actor_user_id="user-admin-1",
    )
    assert created.template_id
    templates = factory.templates.list(include_disabled=True)
    assert len(templates) == 1
    t = templates[0]
    assert isinstance(t, MessageTemplate)
    assert (t.template_key, t.title, t.text, t.tags, t.usage_count, t.enabled) == (
        "status-update",
        "Status Update",
        "Share your latest progress.",
        ["follow-up", "team", "urgent"],
        0,
        True,
    )


def test_seed_message_templates_should_generate_a_unique_key_globally(factory: Factory) -> None:
    """Seed: message templates should generate a unique key globally"""
    first = factory.templates.create("Daily check-in", "Share your update.", [], actor_user_id="user-admin-1")
    second = factory.templates.create("Daily check-in", "Duplicate title", [], actor_user_id="user-admin-2")
    assert first.template_id and second.template_id and first.template_id != second.template_id
    keys = sorted(t.template_key for t in factory.templates.list(include_disabled=True))
    assert keys == ["daily-check-in", "daily-check-in-2"]


def test_seed_message_templates_should_track_usage_and_surface_most_used_templates_first(factory: Factory) -> None:
    """Seed: message templates should track usage and surface most used templates first"""
    bound_user(factory)
    weekly = factory.templates.create(
        "Weekly recap", "Condividi il recap della settimana.", ["weekly", "recap"], actor_user_id="user-admin-1"
    )
    nudge = factory.templates.create(
        "Quick nudge", "Mandami un aggiornamento rapido.", ["follow-up"], actor_user_id="user-admin-1"
    )
    for template_id in (weekly.template_id, weekly.template_id, nudge.template_id):
        factory.templates.send_to_user_agent("user-template-1", "template-agent", template_id)
    ranked = factory.templates.list(include_disabled=True)
    assert [(t.title, t.usage_count) for t in ranked] == [("Weekly recap", 2), ("Quick nudge", 1)]
    items = factory.identity.queue_items("user-template-1", "template-agent", limit=10)
    assert len(items) == 3
    assert sorted(i.payload["messageText"] for i in items) == sorted(
        [
            "Condividi il recap della settimana.",
            "Condividi il recap della settimana.",
            "Mandami un aggiornamento rapido.",
        ]
    )


# ---------------------------------------------------------------------------------------
# keys, updates, deletes
# ---------------------------------------------------------------------------------------


def test_key_rules(factory: Factory) -> None:
    def key(title: str) -> str:
        return factory.templates.create(title, "t", actor_user_id="a").template_key

    assert key("--Hello,  World!!") == "hello-world"
    assert key("???") == "message-template"
    assert key("!!!") == "message-template-2"
    assert key("Crème brûlée") == "cr-me-br-l-e"


def test_update_regenerates_the_key_only_on_title_change(factory: Factory, manual_clock: ManualClock) -> None:
    a = factory.templates.create("Alpha", "one", ["x"], actor_user_id="admin")
    b = factory.templates.create("Alpha", "two", actor_user_id="admin")
    assert b.template_key == "alpha-2"
    manual_clock.advance(5)
    text_only = factory.templates.update(b.template_id, actor_user_id="editor", text=" changed ")
    assert text_only is not None
    assert (text_only.template_key, text_only.text, text_only.updated_by, text_only.updated_at) == (
        "alpha-2", "changed", "editor", T0 + 5,
    )
    assert text_only.created_by == "admin" and text_only.created_at == T0
    # Same title again: no change of key, and its own key is no collision.
    same = factory.templates.update(a.template_id, actor_user_id="editor", title="Alpha")
    assert same is not None and same.template_key == "alpha"
    renamed = factory.templates.update(b.template_id, actor_user_id="editor", title="Beta", tags=["Z", "a"], enabled=False)
    assert renamed is not None
    assert (renamed.template_key, renamed.tags, renamed.enabled) == ("beta", ["a", "z"], False)
    assert factory.templates.update("tpl-missing", actor_user_id="editor", text="x") is None
    assert [t.template_key for t in factory.templates.list()] == ["alpha"]
    assert factory.templates.delete(b.template_id) is True
    assert factory.templates.delete(b.template_id) is False
    assert factory.templates.get(b.template_id) is None
    got = factory.templates.get(a.template_id)
    assert got is not None and got.tags == ["x"]


def test_listing_is_ranked_over_more_rows_than_the_limit(factory: Factory, manual_clock: ManualClock) -> None:
    bound_user(factory, "u1", "a")
    ids = []
    for i in range(30):
        manual_clock.advance(1)
        ids.append(factory.templates.create(f"T{i:02d}", f"text {i}", actor_user_id="admin").template_id)
    # The newest-created rows are sent most, the oldest-created one least but more than the rest.
    for n, template_id in [(3, ids[29]), (2, ids[0]), (1, ids[15])]:
        for _ in range(n):
            factory.templates.send_to_user_agent("u1", "a", template_id)
    top = factory.templates.list(limit=3)
    assert [(t.title, t.usage_count) for t in top] == [("T29", 3), ("T00", 2), ("T15", 1)]
    # Ties on usage: most recently updated first.
    rest = factory.templates.list(limit=200)
    assert len(rest) == 30
    assert [t.title for t in rest[3:6]] == ["T28", "T27", "T26"]
    assert [t.title for t in factory.templates.list(limit=1)] == ["T29"]


def test_disabled_templates_are_hidden_and_cannot_be_sent(factory: Factory) -> None:
    bound_user(factory, "u1", "a")
    off = factory.templates.create("Off", "never", enabled=False, actor_user_id="admin")
    assert factory.templates.list() == []
    assert [t.title for t in factory.templates.list(include_disabled=True)] == ["Off"]
    with pytest.raises(NotFoundError, match="^Message template not found$"):
        factory.templates.send_to_user_agent("u1", "a", off.template_id)
    with pytest.raises(NotFoundError, match="^Message template not found$"):
        factory.templates.send_to_user_agent("u1", "a", "tpl-gone")
    assert factory.identity.queue_items("u1", "a") == []


def test_send_metadata_and_atomic_usage(factory: Factory) -> None:
    bound_user(factory, "u1", "a")
    t = factory.templates.create("Ping", "ping!", actor_user_id="admin")
    sent = factory.templates.send_to_user_agent("u1", "a", t.template_id, metadata={"campaign": "c1", "source": "x"})
    assert sent.usage_count == 1
    job = factory.queue.get_job(sent.message_id)
    assert job is not None
    meta = job.payload["metadata"]
    assert (meta["source"], meta["templateId"], meta["templateKey"], meta["campaign"]) == (
        "message_template", t.template_id, "ping", "c1",
    )
    # Without an active binding nothing is enqueued and the count does not move.
    factory.identity.revoke("u1")
    with pytest.raises(NotFoundError, match="^No active binding found for consumerUserId and agentKey$"):
        factory.templates.send_to_user_agent("u1", "a", t.template_id)
    got = factory.templates.get(t.template_id)
    assert got is not None and got.usage_count == 1
    # A disabled agent rejects the enqueue: the count does not move either.
    factory.identity.bind("u1", "a")
    factory.agents.disable("a")
    with pytest.raises(InvalidStateError, match="not found or disabled"):
        factory.templates.send_to_user_agent("u1", "a", t.template_id)
    got = factory.templates.get(t.template_id)
    assert got is not None and got.usage_count == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != ""),
    tags=st.lists(st.text(max_size=12), max_size=8),
)
def test_created_templates_are_normalised(factory: Factory, title: str, tags: list[str]) -> None:
    try:
        t = factory.templates.create(title, "text", tags, actor_user_id="admin")
    except ValidationError as e:  # control characters in a tag are refused, by name
        assert "tags[" in str(e)
        return
    assert t.title == title.strip(WS)
    base = t.template_key
    assert base and all(c.islower() or c.isdigit() or c == "-" for c in base)
    assert not base.startswith("-") and not base.endswith("-") and "--" not in base
    expected = sorted({x.strip(WS).lower() for x in tags if x.strip(WS)})
    assert t.tags == expected
    keys = [x.template_key for x in factory.templates.list(include_disabled=True, limit=200)]
    assert len(keys) == len(set(keys))


# ---------------------------------------------------------------------------------------
# asyncio face
# ---------------------------------------------------------------------------------------


async def test_async_templates(async_factory: AsyncFactory) -> None:
    await async_factory.agents.upsert_agent("a")
    await async_factory.identity.bind("u1", "a")
    t = await async_factory.templates.create("Hello there", "hi", ["B", "a"], actor_user_id="admin")
    assert (t.template_key, t.tags) == ("hello-there", ["a", "b"])
    sent = await async_factory.templates.send_to_user_agent("u1", "a", t.template_id)
    assert sent.usage_count == 1
    listed = await async_factory.templates.list()
    assert [x.usage_count for x in listed] == [1]
    updated = await async_factory.templates.update(t.template_id, actor_user_id="admin", enabled=False)
    assert updated is not None and not updated.enabled
    assert await async_factory.templates.list() == []
    assert (await async_factory.templates.get(t.template_id)) == updated
    assert await async_factory.templates.delete(t.template_id)
