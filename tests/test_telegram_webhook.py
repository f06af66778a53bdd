"""Telegram webhooks, tokens, bot identities, onboarding and readiness against
FakeTelegram on loopback; webhook authentication and malformed bodies leave the
database unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import (
    AsyncFactory,
    AuthenticationError,
    ConflictError,
    Factory,
    InvalidStateError,
    NotFoundError,
    ProviderError,
    ValidationError,
)
from agent_factory.fakes.telegram import FakeTelegram
from test_bad_input import blob_files, db_snapshot
from test_telegram_ingest import AGENT, USER, connect

PUBLIC = "https://bots.example.test"
HOOK = PUBLIC + "/agent-factory/telegram/webhook"


def state(factory_path: Path) -> tuple[Any, Any]:
    return db_snapshot(factory_path), blob_files(str(factory_path) + ".blobs")


def configured(factory: Factory, fake: FakeTelegram) -> str:
    """Connect the agent and configure its webhook; returns the secret Telegram holds."""
    connect(factory, fake)
    factory.telegram.configure_webhook(AGENT, PUBLIC)
    secret = fake.webhook().secret_token
    assert secret is not None
    return secret


def test_configure_sets_a_random_secret_and_verifies_the_url(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram
) -> None:
    connect(factory, fake_telegram)
    setup = factory.telegram.configure_webhook(AGENT, PUBLIC + "/")
    assert setup.webhook_url == HOOK
    assert setup.current_url == HOOK
    assert setup.is_ready and setup.secret_token_configured
    assert setup.bot_identity == str(fake_telegram.bot_id)
    assert setup.bot_username == fake_telegram.username
    assert setup.description == "Telegram webhook configured and verified."
    hook = fake_telegram.webhook()
    assert hook.url == HOOK
    assert hook.allowed_updates == ["message", "edited_message"]
    first = hook.secret_token
    assert first is not None and re.fullmatch(r"[A-Za-z0-9_-]{48}", first)
    assert first != f"af_v1_{fake_telegram.bot_id}"
    # The secret is stored encrypted, never in the clear.
    for f in factory_path.parent.glob(factory_path.name + "*"):
        if f.is_file():
            assert first.encode() not in f.read_bytes()
    assert factory.secrets.status([f"telegram.webhookSecret.{AGENT}"])[0].has_active
    # Reconfiguring rotates it.
    factory.telegram.configure_webhook(AGENT, PUBLIC)
    assert fake_telegram.webhook().secret_token != first
    status = factory.telegram.webhook_status(AGENT)
    assert status.webhook_ready and status.current_url == HOOK and status.expected_url == HOOK


def test_a_webhook_info_mismatch_is_not_ready(factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    fake_telegram.webhook().reported_url = "https://someone-else.example/hook"
    setup = factory.telegram.configure_webhook(AGENT, PUBLIC)
    assert not setup.is_ready
    assert setup.current_url == "https://someone-else.example/hook"
    assert "instead of" in setup.description
    assert factory.telegram.onboarding_state(USER, AGENT).next_action == "configure_webhook"
    # Once Telegram reports our URL the status check records it as verified ...
    fake_telegram.webhook().reported_url = None
    assert factory.telegram.webhook_status(AGENT).webhook_ready
    assert factory.telegram.onboarding_state(USER, AGENT).webhook_ready
    # ... and a later mismatch clears the verification again.
    fake_telegram.webhook().reported_url = ""
    fake_telegram.webhook().last_error_date = 1_700_000_000
    fake_telegram.webhook().last_error_message = "Wrong response from the webhook: 500"
    status = factory.telegram.webhook_status(AGENT)
    assert not status.webhook_ready and status.current_url is None
    assert status.last_error_message == "Wrong response from the webhook: 500"
    assert not factory.telegram.onboarding_state(USER, AGENT).webhook_ready


def test_configure_rejects_bad_urls_and_missing_tokens(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram
) -> None:
    factory.telegram.set_api_config(base_url=fake_telegram.base_url)
    factory.agents.upsert_agent(AGENT, secrets_ref=[])
    before = state(factory_path)
    with pytest.raises(InvalidStateError, match=rf"Missing Telegram token\. Import an active 'telegram\.botToken\.{AGENT}'"):
        factory.telegram.configure_webhook(AGENT, PUBLIC)
    with pytest.raises(ValidationError, match="publicBaseUrl must start with https://"):
        factory.telegram.configure_webhook(AGENT, "http://bots.example.test")
    with pytest.raises(ValidationError, match=r"publicBaseUrl is required\."):
        factory.telegram.configure_webhook(AGENT, "  ")
    with pytest.raises(ValidationError, match="path"):
        factory.telegram.configure_webhook(AGENT, PUBLIC, path="no-slash")
    with pytest.raises(NotFoundError, match="Agent profile 'ghost' not found"):
        factory.telegram.configure_webhook("ghost", PUBLIC)
    assert state(factory_path) == before
    assert fake_telegram.calls_to("setWebhook") == []


def test_set_webhook_failures_store_nothing(factory: Factory, factory_path: Path, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    before = state(factory_path)
    fake_telegram.fail_next("setWebhook", 400, description="Bad Request: bad webhook: Failed to resolve host")
    with pytest.raises(ProviderError, match="Telegram setWebhook failed: Bad Request: bad webhook"):
        factory.telegram.configure_webhook(AGENT, PUBLIC)
    assert state(factory_path) == before


def test_handle_webhook_accepts_the_configured_secret(factory: Factory, fake_telegram: FakeTelegram) -> None:
    secret = configured(factory, fake_telegram)
    update = fake_telegram.message_update(text="via webhook")
    result = factory.telegram.handle_webhook(json.dumps(update).encode(), secret, agent_key=AGENT)
    assert result.status == "enqueued"
    again = factory.telegram.handle_webhook(bytearray(json.dumps(update).encode()), secret, agent_key=AGENT)
    assert again.status == "duplicate"


@pytest.mark.parametrize("presented", [None, "", "wrong-secret", "af_v1_{bot}", "af:v1:{bot}", "{secret}x", "{secret_short}"])
def test_forged_or_missing_secrets_are_rejected_and_change_nothing(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram, presented: str | None
) -> None:
    secret = configured(factory, fake_telegram)
    if presented is not None:
        presented = presented.format(bot=fake_telegram.bot_id, secret=secret, secret_short=secret[:-1])
    body = json.dumps(fake_telegram.message_update(text="forged"))
    before = state(factory_path)
    with pytest.raises(AuthenticationError, match="missing or invalid telegram webhook secret token") as err:
        factory.telegram.handle_webhook(body, presented, agent_key=AGENT)
    assert isinstance(err.value, PermissionError)
    assert secret not in str(err.value)
    assert state(factory_path) == before


def test_an_agent_without_a_webhook_secret_rejects_everything(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram
) -> None:
    connect(factory, fake_telegram)
    before = state(factory_path)
    with pytest.raises(AuthenticationError, match="no webhook secret is configured"):
        factory.telegram.handle_webhook("{}", f"af_v1_{fake_telegram.bot_id}", agent_key=AGENT)
    assert state(factory_path) == before


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "update body is not valid JSON"),
        (b"", "update body is not valid JSON"),
        (b"[1, 2]", "update must be an object"),
        (b'{"update_id": "7"}', "update.update_id"),
        (
            b'{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 1}, "text": 5}}',
            "update.message.text must be a string",
        ),
        (b"\xff\xfe", "update body is not valid JSON"),
        (b'{"update_id": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}', "the limit is 1048576"),
    ],
)
def test_malformed_bodies_are_validation_errors_and_change_nothing(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram, body: bytes, problem: str
) -> None:
    secret = configured(factory, fake_telegram)
    before = state(factory_path)
    with pytest.raises(ValidationError, match=re.escape(problem)):
        factory.telegram.handle_webhook(body, secret, agent_key=AGENT)
    assert state(factory_path) == before


def test_wrong_argument_types_raise_type_errors(factory: Factory, fake_telegram: FakeTelegram) -> None:
    secret = configured(factory, fake_telegram)
    with pytest.raises(TypeError, match="body must be bytes or str"):
        factory.telegram.handle_webhook({"update_id": 1}, secret, agent_key=AGENT)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="agentKey"):
        factory.telegram.handle_webhook("{}", secret, agent_key="bad key")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
message_fields = st.fixed_dictionaries(
    {},
    optional={
        "message_id": json_values | st.integers(0, 10**9),
        "chat": json_values | st.fixed_dictionaries({"id": json_values | st.integers(-(10**12), 10**12)}),
        "from": json_values | st.fixed_dictionaries({"id": json_values | st.integers(1, 10**12)}),
        "text": json_values | st.text(max_size=50),
        "caption": json_values,
        "photo": json_values
        | st.lists(st.dictionaries(st.sampled_from(["file_id", "file_size", "width"]), json_values), max_size=3),
        "document": json_values,
    },
)
updates = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"update_id": json_values | st.integers(0, 10**9)},
        optional={"message": json_values | message_fields, "edited_message": message_fields, "poll": json_values},
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(update=updates)
def test_arbitrary_updates_never_crash_and_rejections_change_nothing(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram, update: Any
) -> None:
    if not factory.agents.get(AGENT):
        configured(factory, fake_telegram)
    secret = fake_telegram.webhook().secret_token
    before = state(factory_path)
    try:
        result = factory.telegram.handle_webhook(json.dumps(update), secret, agent_key=AGENT)
    except ValidationError:
        assert state(factory_path) == before
    except ProviderError:
        # Media with file ids the fake does not know: the download fails, nothing is written.
        assert state(factory_path) == before
    else:
        assert result.status in ("enqueued", "duplicate", "ignored", "paired")
        # Only enqueues and pairing attempts (`/start <code>`) write.
        text = json.dumps(update)
        if result.status in ("ignored", "duplicate") and "/start" not in text:
            assert state(factory_path) == before


def test_import_token_checks_the_bot_and_keeps_identities_unique(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram
) -> None:
    factory.telegram.set_api_config(base_url=fake_telegram.base_url, backoff_ms=1)
    factory.agents.upsert_agent(AGENT, secrets_ref=[])
    factory.agents.upsert_agent("other-agent", secrets_ref=["telegram.botToken"])
    imported = factory.telegram.import_token(USER, AGENT, fake_telegram.token, {"note": "first"})
    assert imported.secret_ref == f"telegram.botToken.{AGENT}"
    assert (imported.version, imported.bot_identity) == (1, str(fake_telegram.bot_id))
    assert imported.telegram_username == fake_telegram.username
    profile = factory.agents.get(AGENT)
    assert profile is not None and profile.bot_identity == str(fake_telegram.bot_id)
    assert f"telegram.botToken.{AGENT}" in profile.secrets_ref
    assert factory.secrets.reveal(f"telegram.botToken.{AGENT}") == fake_telegram.token
    before = state(factory_path)
    # The other agent lists the global ref: the user must be known to it first.
    with pytest.raises(InvalidStateError, match="Agent is not yet associated with the provided consumerUserId"):
        factory.telegram.import_token(USER, "other-agent", fake_telegram.token)
    factory.identity.bind(USER, "other-agent")
    before = state(factory_path)
    with pytest.raises(ConflictError) as err:
        factory.telegram.import_token(USER, "other-agent", fake_telegram.token)
    assert str(err.value) == f"Telegram bot identity '{fake_telegram.bot_id}' is already assigned to agent '{AGENT}'"
    assert state(factory_path) == before
    second = fake_telegram.add_bot("7000000002:AASecondBot_token-xyz", username="second_bot")
    ok = factory.telegram.import_token(USER, "other-agent", second.token)
    assert (ok.secret_ref, ok.bot_identity) == ("telegram.botToken", "7000000002")


@pytest.mark.parametrize(
    ("token", "error", "problem"),
    [
        ("   ", ValidationError, "Telegram token is required"),
        ("not a token", ValidationError, "Telegram token is malformed"),
        ("123:abc/../x", ValidationError, "Telegram token is malformed"),
        ("999999:AAUnknownToken", ProviderError, "Telegram getMe failed: Unauthorized"),
    ],
)
def test_bad_tokens_are_rejected_without_echo(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram, token: str, error: type, problem: str
) -> None:
    factory.telegram.set_api_config(base_url=fake_telegram.base_url)
    factory.agents.upsert_agent(AGENT, secrets_ref=[])
    before = state(factory_path)
    with pytest.raises(error) as err:
        factory.telegram.import_token(USER, AGENT, token)
    assert problem in str(err.value)
    if token.strip():
        assert token not in str(err.value)
    assert state(factory_path) == before


def test_reconcile_reads_the_bot_behind_the_stored_token(factory: Factory, fake_telegram: FakeTelegram) -> None:
    factory.telegram.set_api_config(base_url=fake_telegram.base_url)
    factory.agents.upsert_agent(AGENT, secrets_ref=[])
    missing = rf"Missing Telegram token\. Import an active 'telegram\.botToken\.{AGENT}' secret first\."
    with pytest.raises(InvalidStateError, match=missing):
        factory.telegram.reconcile_bot_identity(AGENT)
    factory.secrets.import_plaintext(f"telegram.botToken.{AGENT}", fake_telegram.token)
    found = factory.telegram.reconcile_bot_identity(AGENT)
    assert (found.bot_identity, found.telegram_username) == (str(fake_telegram.bot_id), fake_telegram.username)
    assert found.secret_ref == f"telegram.botToken.{AGENT}"
    profile = factory.agents.get(AGENT)
    assert profile is not None and profile.bot_identity == str(fake_telegram.bot_id)


def test_onboarding_walks_every_step(factory: Factory, fake_telegram: FakeTelegram, manual_clock: Any) -> None:
    factory.telegram.set_api_config(base_url=fake_telegram.base_url)
    factory.agents.upsert_agent(AGENT, secrets_ref=[])
    step = factory.telegram.onboarding_state(USER, AGENT)
    assert step.next_action == "import_token"
    assert (step.token_imported, step.token_secret_ref, step.telegram_username) == (False, f"telegram.botToken.{AGENT}", None)

    factory.telegram.import_token(USER, AGENT, fake_telegram.token)
    step = factory.telegram.onboarding_state(USER, AGENT)
    assert step.next_action == "configure_webhook"
    assert step.token_imported and step.bot_identity == str(fake_telegram.bot_id)
    assert step.telegram_username == fake_telegram.username  # the real username, not the agent key

    factory.telegram.configure_webhook(AGENT, PUBLIC)
    step = factory.telegram.onboarding_state(USER, AGENT)
    assert (step.next_action, step.webhook_ready, step.pairing_status) == ("create_pairing", True, None)

    code = factory.identity.create_pairing_code(USER, AGENT).code
    step = factory.telegram.onboarding_state(USER, AGENT)
    assert (step.next_action, step.pairing_code, step.pairing_status) == ("complete_pairing", code, "pending")
    assert step.pairing_deep_link == f"https://t.me/{fake_telegram.username}?start={code}"

    manual_clock.advance(24 * 3_600_000)
    step = factory.telegram.onboarding_state(USER, AGENT)
    assert (step.next_action, step.pairing_status, step.pairing_code) == ("create_pairing", "expired", None)

    code = factory.identity.create_pairing_code(USER, AGENT).code
    secret = fake_telegram.webhook().secret_token
    update = fake_telegram.message_update(text=f"/start {code}")
    assert factory.telegram.handle_webhook(json.dumps(update), secret, agent_key=AGENT).status == "paired"
    step = factory.telegram.onboarding_state(USER, AGENT)
    assert (step.next_action, step.pairing_status, step.pairing_deep_link) == ("ready", "used", None)
    assert factory.telegram.readiness(USER, AGENT).paired


def test_readiness_lists_the_issues(factory: Factory, fake_telegram: FakeTelegram) -> None:
    factory.telegram.set_api_config(base_url=fake_telegram.base_url)
    factory.agents.upsert_agent(AGENT, secrets_ref=[])
    r = factory.telegram.readiness(USER, AGENT)
    assert r.issues == [
        "missing_provider_runtime_config",
        "missing_message_runtime_config",
        "missing_telegram_token",
        "missing_bot_identity",
        "webhook_not_verified",
    ]
    assert r.missing_secrets == ["fly.apiToken"]
    p = factory.telegram.provider_readiness()
    assert p.issues == ["missing_provider_runtime_config", "missing_message_runtime_config"]
    factory.config.set_message_config(system_prompt="be brief")
    factory.config.set_provider_config({"kind": "local"})
    factory.telegram.import_token(USER, AGENT, fake_telegram.token)
    factory.telegram.configure_webhook(AGENT, PUBLIC)
    factory.secrets.import_plaintext("fly.apiToken", "fly-token")
    r = factory.telegram.readiness(USER, AGENT)
    assert (r.issues, r.missing_secrets, r.has_telegram_token, r.webhook_ready) == ([], [], True, True)
    assert factory.telegram.provider_readiness().issues == []


def test_delete_webhook_forgets_the_url(factory: Factory, fake_telegram: FakeTelegram) -> None:
    configured(factory, fake_telegram)
    status = factory.telegram.delete_webhook(AGENT, drop_pending_updates=True)
    assert not status.webhook_ready and status.expected_url is None
    assert fake_telegram.webhook().url == ""
    assert factory.telegram.onboarding_state(USER, AGENT).next_action == "configure_webhook"


def test_api_config_is_validated(factory: Factory) -> None:
    default = factory.telegram.api_config()
    assert default.base_url == "https://api.telegram.org"
    for bad, problem in [
        ({"base_url": "ftp://x"}, "baseUrl"),
        ({"base_url": "http://x?y=1"}, "baseUrl"),
        ({"timeout_ms": 0}, "timeoutMs"),
        ({"max_retries": 11}, "maxRetries"),
        ({"max_file_bytes": -1}, "maxFileBytes"),
    ]:
        with pytest.raises(ValidationError, match=problem):
            factory.telegram.set_api_config(**bad)
    assert factory.telegram.api_config() == default
    changed = factory.telegram.set_api_config(base_url="http://127.0.0.1:9/", max_retries=0)
    assert (changed.base_url, changed.max_retries, changed.timeout_ms) == ("http://127.0.0.1:9", 0, 30_000)


def test_the_async_face_configures_and_handles(
    async_factory: AsyncFactory, factory: Factory, fake_telegram: FakeTelegram
) -> None:
    connect(factory, fake_telegram)

    async def go() -> Any:
        setup = await async_factory.telegram.configure_webhook(AGENT, PUBLIC)
        secret = fake_telegram.webhook().secret_token
        update = json.dumps(fake_telegram.message_update(text="async hook"))
        result = await async_factory.telegram.handle_webhook(update, secret, agent_key=AGENT)
        with pytest.raises(AuthenticationError):
            await async_factory.telegram.handle_webhook(update, "nope", agent_key=AGENT)
        status = await async_factory.telegram.webhook_status(AGENT)
        onboarding = await async_factory.telegram.onboarding_state(USER, AGENT)
        readiness = await async_factory.telegram.readiness(USER, AGENT)
        provider = await async_factory.telegram.provider_readiness()
        bot = await async_factory.telegram.reconcile_bot_identity(AGENT)
        return setup, result, status, onboarding, readiness, provider, bot

    setup, result, status, onboarding, readiness, provider, bot = asyncio.run(go())
    assert setup.is_ready and status.webhook_ready
    assert result.status == "enqueued"
    assert onboarding.next_action == "create_pairing"
    assert "webhook_not_verified" not in readiness.issues
    assert provider.issues
    assert bot.bot_identity == str(fake_telegram.bot_id)
