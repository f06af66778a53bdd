"""Telegram update ingestion against FakeTelegram on loopback: routing, pairing,
media download into the blob store, de-duplication, failures, attachment expiry.

Real parts only: a real SQLite file, the real Bot API client talking HTTP to the
fake, the real blob store.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent_factory import (
    AsyncFactory,
    Factory,
    ManualClock,
    NotFoundError,
    ProviderError,
    ValidationError,
)
from agent_factory.fakes.telegram import FakeTelegram, FakeTelegramFile
from test_bad_input import blob_files, db_snapshot

AGENT = "tg-agent"
USER = "consumer-1"
SEVEN_DAYS = 604_800_000


def connect(factory: Factory, fake: FakeTelegram, agent: str = AGENT, *, token: str | None = None, **api: Any) -> str:
    """Point the factory at the fake (fast retries), create ``agent`` and import the
    bot token (which sets the agent's bot identity). Returns the bot identity."""
    settings = {"base_url": fake.base_url, "backoff_ms": 1, "max_backoff_ms": 5, "timeout_ms": 5000, **api}
    factory.telegram.set_api_config(**settings)
    factory.agents.upsert_agent(agent, secrets_ref=[])
    imported = factory.telegram.import_token("owner", agent, token or fake.token)
    return imported.bot_identity


def claim_payload(factory: Factory) -> dict[str, Any]:
    claim = factory.queue.claim("worker-tg")
    assert claim is not None
    return claim.payload


def state(factory_path: Path) -> tuple[Any, Any]:
    return db_snapshot(factory_path), blob_files(str(factory_path) + ".blobs")


def test_text_message_from_an_unbound_chat(factory: Factory, fake_telegram: FakeTelegram) -> None:
    bot = connect(factory, fake_telegram)
    assert bot == str(fake_telegram.bot_id)
    update = fake_telegram.message_update(text="  ciao  ", chat_id=555, user_id=777)
    result = factory.telegram.ingest_update(update, agent_key=AGENT)
    assert result.status == "enqueued"
    assert result.conversation_id == f"telegram:{bot}:555"
    assert (result.agent_key, result.bot_identity, result.update_id) == (AGENT, bot, update["update_id"])
    p = claim_payload(factory)
    assert p["provider"] == "telegram"
    assert p["providerUserId"] == "777"
    assert p["messageText"] == "ciao"
    assert p["externalMessageId"] == str(update["message"]["message_id"])
    assert json.loads(p["rawUpdateJson"]) == update
    meta = p["metadata"]
    assert meta["telegramChatId"] == "555"
    assert meta["telegramUserId"] == "777"
    assert meta["telegramUpdateId"] == str(update["update_id"])
    assert meta["telegramBotIdentity"] == bot
    assert "edited" not in meta
    assert fake_telegram.calls_to("getFile") == []


def test_caption_and_photo_store_the_largest_size(
    factory: Factory, fake_telegram: FakeTelegram, manual_clock: ManualClock
) -> None:
    connect(factory, fake_telegram)
    sizes = [
        fake_telegram.add_file(b"s" * 10, file_path="photos/file_0.jpg"),
        fake_telegram.add_file(b"L" * 900, file_path="photos/file_2.jpg"),
        fake_telegram.add_file(b"m" * 100, file_path="photos/file_1.jpg"),
    ]
    big = sizes[1]
    result = factory.telegram.ingest_update(
        fake_telegram.message_update(caption="look at this", photo=sizes), agent_key=AGENT
    )
    assert (result.status, result.attachments, result.skipped_attachments) == ("enqueued", 1, [])
    assert [c.params["file_id"] for c in fake_telegram.calls_to("getFile")] == [big.file_id]
    assert [c.params["file_path"] for c in fake_telegram.calls_to("file")] == [big.file_path]
    p = claim_payload(factory)
    assert p["messageText"] == "look at this"
    (att,) = p["attachments"]
    assert att["kind"] == "photo" and att["status"] == "ready"
    assert att["storageId"] == big.sha256
    assert att["telegramFileId"] == big.file_id
    assert att["mimeType"] == "image/jpeg"
    assert att["sizeBytes"] == big.size
    assert att["expiresAt"] == manual_clock.now_ms() + SEVEN_DAYS
    assert factory.blobs.get(big.sha256) == big.data
    assert p["metadata"]["telegramMediaType"] == "photo"
    assert p["metadata"]["telegramPhotoFileId"] == big.file_id


@pytest.mark.parametrize(
    ("kind", "file_path", "content_type", "expected_mime"),
    [
        ("video", "videos/clip.mp4", "video/mp4", "video/mp4"),
        ("audio", "music/song.mp3", None, "audio/mpeg"),
        ("voice", "voice/file_3.oga", None, "audio/ogg"),
        ("document", "documents/brief.pdf", "application/octet-stream", "application/pdf"),
    ],
)
def test_each_media_kind_is_downloaded_and_attached(
    factory: Factory,
    fake_telegram: FakeTelegram,
    manual_clock: ManualClock,
    kind: str,
    file_path: str,
    content_type: str | None,
    expected_mime: str,
) -> None:
    connect(factory, fake_telegram)
    factory.config.set_message_config(telegram_attachment_retention_ms=60_000)
    f = fake_telegram.add_file(f"{kind}-bytes".encode(), file_path=file_path, content_type=content_type)
    result = factory.telegram.ingest_update(fake_telegram.message_update(**{kind: f}), agent_key=AGENT)
    assert result.attachments == 1
    p = claim_payload(factory)
    assert p["messageText"] == f"[telegram media] {kind} message"
    (att,) = p["attachments"]
    assert (att["kind"], att["storageId"], att["mimeType"]) == (kind, f.sha256, expected_mime)
    assert att["expiresAt"] == manual_clock.now_ms() + 60_000
    assert p["metadata"][f"telegram{kind.capitalize()}FileId"] == f.file_id


def test_several_media_in_one_message_keep_their_order(factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    photo = fake_telegram.add_file(b"photo", file_path="photos/p.jpg")
    doc = fake_telegram.add_file(b"doc", file_path="documents/d.txt")
    factory.telegram.ingest_update(fake_telegram.message_update(photo=[photo], document=doc), agent_key=AGENT)
    p = claim_payload(factory)
    assert [a["kind"] for a in p["attachments"]] == ["photo", "document"]
    assert p["messageText"] == "[telegram media] photo + document message"
    assert p["metadata"]["telegramMediaType"] == "photo+document"


def test_edited_messages_are_enqueued_with_edited_metadata(factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    result = factory.telegram.ingest_update(
        fake_telegram.message_update(text="fixed typo", edited=True), agent_key=AGENT
    )
    assert result.status == "enqueued"
    p = claim_payload(factory)
    assert p["messageText"] == "fixed typo"
    assert p["metadata"]["edited"] == "true"


def test_start_code_pairs_and_later_messages_go_to_the_user_agent_conversation(
    factory: Factory, fake_telegram: FakeTelegram
) -> None:
    connect(factory, fake_telegram)
    code = factory.identity.create_pairing_code(USER, AGENT).code
    paired = factory.telegram.ingest_update(
        fake_telegram.message_update(text=f"/start {code}", chat_id=42, user_id=4242), agent_key=AGENT
    )
    assert paired.status == "paired"
    assert (paired.consumer_user_id, paired.agent_key) == (USER, AGENT)
    assert paired.message_id is None
    assert factory.queue.stats().queued_ready == 0  # pairing commands are never enqueued
    routed = factory.telegram.ingest_update(
        fake_telegram.message_update(text="hello agent", chat_id=42, user_id=4242), agent_key=AGENT
    )
    assert routed.conversation_id == f"user-agent:{AGENT}:{USER}"
    assert routed.consumer_user_id == USER
    p = claim_payload(factory)
    assert p["metadata"]["consumerUserId"] == USER
    assert p["providerUserId"] == "4242"


def test_bad_start_codes_are_ignored_with_the_reason(factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    unknown = factory.telegram.ingest_update(fake_telegram.message_update(text="/start ZZZZ9999"), agent_key=AGENT)
    assert (unknown.status, unknown.reason) == ("ignored", "Pairing code not found")
    missing = factory.telegram.ingest_update(fake_telegram.message_update(text="/start"), agent_key=AGENT)
    assert missing.status == "ignored"
    assert missing.reason == "missing or invalid pairing code in /start command"
    assert factory.queue.stats().queued_ready == 0


def test_unbound_users_of_a_paired_bot_still_reach_the_bot_agent(
    factory: Factory, fake_telegram: FakeTelegram
) -> None:
    bot = connect(factory, fake_telegram)
    code = factory.identity.create_pairing_code(USER, AGENT).code
    factory.telegram.ingest_update(fake_telegram.message_update(text=f"/start {code}", chat_id=1, user_id=1), agent_key=AGENT)
    other = factory.telegram.ingest_update(fake_telegram.message_update(text="hi", chat_id=2, user_id=2), agent_key=AGENT)
    assert other.conversation_id == f"telegram:{bot}:2"
    assert other.consumer_user_id is None


def test_the_same_update_twice_enqueues_once(factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    photo = fake_telegram.add_file(b"once", file_path="photos/once.jpg")
    update = fake_telegram.message_update(caption="dup", photo=[photo])
    first = factory.telegram.ingest_update(update, agent_key=AGENT)
    second = factory.telegram.ingest_update(update, agent_key=AGENT)
    third = factory.telegram.ingest_update(json.dumps(update), bot_identity=first.bot_identity)
    assert first.status == "enqueued"
    assert second.status == third.status == "duplicate"
    assert second.message_id == third.message_id == first.message_id
    assert second.conversation_id == first.conversation_id
    assert factory.queue.stats().queued_ready == 1
    assert len(fake_telegram.calls_to("file")) == 1  # no download for a known update


def test_a_429_then_success_download_honours_retry_after(factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    f = fake_telegram.add_file(b"retry me", file_path="documents/r.txt")
    fake_telegram.fail_next("getFile", 429, retry_after=0)
    fake_telegram.fail_next("file", 429, retry_after=1)
    fake_telegram.fail_next("file", 502)
    result = factory.telegram.ingest_update(fake_telegram.message_update(document=f), agent_key=AGENT)
    assert result.attachments == 1
    assert [c.status for c in fake_telegram.calls_to("getFile")] == [429, 200]
    downloads = fake_telegram.calls_to("file")
    assert [c.status for c in downloads] == [429, 502, 200]
    assert downloads[1].at - downloads[0].at >= 0.9  # retry_after: 1 second
    assert factory.blobs.get(f.sha256) == b"retry me"


@pytest.mark.parametrize("failure", ["download_500", "getfile_invalid", "getfile_403"])
def test_a_failed_download_writes_nothing(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram, failure: str
) -> None:
    connect(factory, fake_telegram)
    f = fake_telegram.add_file(b"never stored", file_path="documents/x.bin")
    if failure == "download_500":
        fake_telegram.fail_next("file", 500, times=10)
    elif failure == "getfile_invalid":
        f = FakeTelegramFile("unknown-file-id", "u", "documents/y.bin", b"?")
    else:
        fake_telegram.fail_next("getFile", 403, description="Forbidden: bot was blocked")
    update = fake_telegram.message_update(text="with a file", document=f)
    before = state(factory_path)
    with pytest.raises(ProviderError) as err:
        factory.telegram.ingest_update(update, agent_key=AGENT)
    assert fake_telegram.token not in str(err.value)
    assert str(err.value).startswith("Telegram ")
    assert state(factory_path) == before
    # Telegram re-delivers; once the file is reachable the update goes through.
    if failure == "download_500":
        fake_telegram.clear_faults()
        assert factory.telegram.ingest_update(update, agent_key=AGENT).status == "enqueued"


def test_oversized_files_are_skipped_not_stored(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram
) -> None:
    connect(factory, fake_telegram, max_file_bytes=1000)
    declared = fake_telegram.add_file(b"x" * 2000, file_path="documents/big.pdf")
    hidden = fake_telegram.add_file(b"y" * 3000, file_path="videos/big.mp4", report_size=False)
    blobs_before = blob_files(str(factory_path) + ".blobs")
    a = factory.telegram.ingest_update(fake_telegram.message_update(text="big doc", document=declared), agent_key=AGENT)
    b = factory.telegram.ingest_update(fake_telegram.message_update(video=hidden), agent_key=AGENT)
    assert (a.status, a.attachments) == ("enqueued", 0)
    assert [(s.kind, s.reason) for s in a.skipped_attachments] == [("document", "too_large")]
    assert [(s.kind, s.reason) for s in b.skipped_attachments] == [("video", "too_large")]
    assert fake_telegram.calls_to("getFile") == [fake_telegram.calls_to("getFile")[0]]  # only the undeclared one
    assert blob_files(str(factory_path) + ".blobs") == blobs_before
    p = claim_payload(factory)
    assert "attachments" not in p
    assert p["metadata"]["telegramSkippedMedia"] == "document:too_large"


def test_files_telegram_refuses_as_too_big_are_skipped(factory: Factory) -> None:
    with FakeTelegram(max_download_bytes=100) as fake:
        connect(factory, fake)
        f = fake.add_file(b"z" * 500, file_path="documents/huge.zip", report_size=False)
        result = factory.telegram.ingest_update(fake.message_update(document=f), agent_key=AGENT)
        assert [s.reason for s in result.skipped_attachments] == ["too_large"]
        assert fake.calls_to("file") == []


def test_unsupported_updates_are_ignored_and_write_nothing(
    factory: Factory, factory_path: Path, fake_telegram: FakeTelegram
) -> None:
    connect(factory, fake_telegram)
    before = state(factory_path)
    for update, reason in [
        ({"update_id": 1, "callback_query": {"id": "q", "data": "x"}}, "unsupported update kind 'callback_query'"),
        ({"update_id": 2, "channel_post": {"message_id": 1, "chat": {"id": -1}}}, "unsupported update kind 'channel_post'"),
        ({"update_id": 3, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 1}, "sticker": {}}}, "no text"),
    ]:
        result = factory.telegram.ingest_update(update, agent_key=AGENT)
        assert result.status == "ignored" and reason in (result.reason or "")
    assert state(factory_path) == before


def test_routing_arguments_are_checked(factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    update = fake_telegram.message_update(text="x")
    with pytest.raises(ValidationError, match="agent_key or bot_identity is required"):
        factory.telegram.ingest_update(update)
    with pytest.raises(NotFoundError, match="no agent has Telegram bot identity '999'"):
        factory.telegram.ingest_update(update, bot_identity="999")
    with pytest.raises(NotFoundError, match="Agent profile 'nobody' not found"):
        factory.telegram.ingest_update(update, agent_key="nobody")
    with pytest.raises(ValidationError, match="is not the bot of agent"):
        factory.telegram.ingest_update(update, agent_key=AGENT, bot_identity="999")
    with pytest.raises(TypeError, match="update must be a dict"):
        factory.telegram.ingest_update(42)  # type: ignore[arg-type]
    assert factory.telegram.ingest_update(update, bot_identity=str(fake_telegram.bot_id)).status == "enqueued"


def test_expire_old_telegram_attachments_seed(factory: Factory) -> None:
    """Seed: expireOldTelegramAttachments should expire stored attachments and queued payloads"""
    now = 1_767_225_600_000 + 10 * 3_600_000  # 2026-01-01T10:00:00Z
    factory.agents.upsert_agent("attachment-expiry-agent", version="1.0.0", secrets_ref=[], enabled=True)
    storage_id = factory.blobs.put(b"document-binary")
    message_id = factory.queue.enqueue(
        "telegram:chat:attachment-expiry",
        "attachment-expiry-agent",
        {
            "provider": "telegram",
            "providerUserId": "u-attachment-expiry-1",
            "messageText": "[telegram media] document message",
            "attachments": [
                {
                    "kind": "document",
                    "status": "ready",
                    "storageId": storage_id,
                    "telegramFileId": "telegram-document-1",
                    "fileName": "brief.pdf",
                    "mimeType": "application/pdf",
                    "sizeBytes": 15,
                    "expiresAt": now + 10,
                }
            ],
        },
        now_ms=now,
    )
    expired = factory.telegram.expire_old_attachments(limit=10, now_ms=now + 11)
    assert expired.expired == 1
    job = factory.queue.get_job(message_id)
    assert job is not None
    assert job.payload["attachments"][0]["status"] == "expired"
    # The attachment row is expired too: a second sweep finds nothing, and the
    # blob (used by nothing else) is gone.
    assert expired.blobs_deleted == 1
    assert not os.path.exists(factory.blobs.path(storage_id))
    assert factory.telegram.expire_old_attachments(limit=10, now_ms=now + 11).expired == 0


def test_ingested_attachments_expire_after_the_retention(
    factory: Factory, fake_telegram: FakeTelegram, manual_clock: ManualClock
) -> None:
    connect(factory, fake_telegram)
    factory.config.set_message_config(telegram_attachment_retention_ms=60_000)
    f = fake_telegram.add_file(b"short-lived", file_path="documents/s.txt")
    result = factory.telegram.ingest_update(fake_telegram.message_update(document=f), agent_key=AGENT)
    assert factory.telegram.expire_old_attachments(now_ms=manual_clock.now_ms() + 59_999).expired == 0
    sweep = factory.telegram.expire_old_attachments(now_ms=manual_clock.now_ms() + 60_000)
    assert (sweep.expired, sweep.payloads_updated, sweep.blobs_deleted) == (1, 1, 1)
    assert not os.path.exists(factory.blobs.path(f.sha256))
    w = factory.worker("w-exp")
    claim = w.claim(now_ms=manual_clock.now_ms() + 60_001)
    assert claim is not None and claim.message_id == result.message_id
    (att,) = claim.payload["attachments"]
    assert att["status"] == "expired"
    bundle = w.hydrate(claim, now_ms=manual_clock.now_ms() + 60_001)
    assert "path" not in bundle.payload["attachments"][0]


def test_dedup_rows_are_pruned_after_a_week(
    factory: Factory, fake_telegram: FakeTelegram, manual_clock: ManualClock
) -> None:
    connect(factory, fake_telegram)
    update = fake_telegram.message_update(text="old")
    factory.telegram.ingest_update(update, agent_key=AGENT)
    sweep = factory.telegram.expire_old_attachments(now_ms=manual_clock.now_ms() + SEVEN_DAYS)
    assert sweep.updates_pruned == 1
    with pytest.raises(ValidationError, match="limit must be within"):
        factory.telegram.expire_old_attachments(limit=0)


def test_the_async_face_ingests_too(async_factory: AsyncFactory, factory: Factory, fake_telegram: FakeTelegram) -> None:
    connect(factory, fake_telegram)
    f = fake_telegram.add_file(b"async photo", file_path="photos/a.jpg")

    async def go() -> Any:
        result = await async_factory.telegram.ingest_update(
            fake_telegram.message_update(caption="async", photo=[f]), agent_key=AGENT
        )
        sweep = await async_factory.telegram.expire_old_attachments(limit=5)
        config = await async_factory.telegram.api_config()
        return result, sweep, config

    result, sweep, config = asyncio.run(go())
    assert (result.status, result.attachments) == ("enqueued", 1)
    assert sweep.expired == 0
    assert config.base_url == fake_telegram.base_url


def test_concurrent_deliveries_of_one_update_enqueue_once(
    factory_path: Path, factory: Factory, fake_telegram: FakeTelegram, manual_clock: ManualClock
) -> None:
    import threading

    connect(factory, fake_telegram)
    photo = fake_telegram.add_file(b"raced", file_path="photos/race.jpg")
    update = fake_telegram.message_update(caption="race", photo=[photo])
    factories = [Factory(factory_path, clock=manual_clock) for _ in range(4)]
    results: list[Any] = []
    barrier = threading.Barrier(len(factories))

    def deliver(f: Factory) -> None:
        barrier.wait()
        results.append(f.telegram.ingest_update(update, agent_key=AGENT))

    threads = [threading.Thread(target=deliver, args=(f,)) for f in factories]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.status for r in results) == ["duplicate", "duplicate", "duplicate", "enqueued"]
    assert len({r.message_id for r in results}) == 1
    assert factory.queue.stats().queued_ready == 1
    assert factory.blobs.get(photo.sha256) == b"raced"
