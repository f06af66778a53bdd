"""The webhook examples (examples/telegram_webhook_*.py) run for real: FakeTelegram
plays Telegram, POSTing updates over loopback HTTP with the secret token it
received from ``setWebhook``; the example servers enqueue into agent-factory.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import agent_factory as af
from agent_factory import AsyncFactory, Factory
from agent_factory.fakes.telegram import FakeTelegram
from test_bad_input import db_snapshot
from test_telegram_ingest import AGENT, USER, connect

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def scenario(fake: FakeTelegram, url: str, factory: Factory, factory_path: Path) -> None:
    """Deliver updates as Telegram would, then forged and malformed ones."""
    photo = fake.add_file(b"webhook photo", file_path="photos/w.jpg")
    update = fake.message_update(caption="sent through the webhook", photo=[photo])
    status, body = fake.deliver(update, url)
    assert status == 200
    reply = json.loads(body)
    assert reply["ok"] and reply["status"] == "enqueued"
    status, body = fake.deliver(update, url)  # Telegram re-delivers
    assert (status, json.loads(body)["status"]) == (200, "duplicate")
    code = factory.identity.create_pairing_code(USER, AGENT).code
    status, body = fake.deliver(fake.message_update(text=f"/start {code}"), url)
    assert json.loads(body)["status"] == "paired"
    before = db_snapshot(factory_path)
    forged = json.dumps(fake.message_update(text="forged")).encode()
    assert post(url, forged)[0] == 401
    assert post(url, forged, {af.SECRET_TOKEN_HEADER: f"af_v1_{fake.bot_id}"})[0] == 401
    status, reply = post(url, b"{not json", {af.SECRET_TOKEN_HEADER: fake.webhook().secret_token or ""})
    assert status == 200 and reply["ok"] is False and "not valid JSON" in reply["error"]
    assert post(url.replace("/webhook", "/elsewhere"), forged)[0] == 404
    assert db_snapshot(factory_path) == before
    claim = factory.queue.claim("example-worker")
    assert claim is not None
    assert claim.payload["messageText"] == "sent through the webhook"
    assert claim.payload["attachments"][0]["storageId"] == photo.sha256


def test_the_sync_example_serves_telegram(factory: Factory, factory_path: Path, fake_telegram: FakeTelegram) -> None:
    example = load("telegram_webhook_sync")
    connect(factory, fake_telegram)
    factory.telegram.configure_webhook(AGENT, "https://bots.example.test")
    server = example.serve(factory, AGENT, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{af.DEFAULT_WEBHOOK_PATH}"
        scenario(fake_telegram, url, factory, factory_path)
        fake_telegram.fail_next("file", 500, times=10)
        f = fake_telegram.add_file(b"unreachable", file_path="documents/u.bin")
        status, _ = fake_telegram.deliver(fake_telegram.message_update(document=f), url)
        assert status == 500  # transient: Telegram will re-deliver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_async_example_serves_telegram(
    factory: Factory, async_factory: AsyncFactory, factory_path: Path, fake_telegram: FakeTelegram
) -> None:
    example = load("telegram_webhook_async")
    connect(factory, fake_telegram)
    factory.telegram.configure_webhook(AGENT, "https://bots.example.test")

    async def run() -> None:
        server = await example.start(async_factory, AGENT, port=0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}{af.DEFAULT_WEBHOOK_PATH}"
        try:
            await asyncio.get_running_loop().run_in_executor(None, scenario, fake_telegram, url, factory, factory_path)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())


@pytest.mark.parametrize("name", ["telegram_webhook_sync", "telegram_webhook_async"])
def test_the_examples_have_a_command_line(name: str) -> None:
    module = load(name)
    with pytest.raises(SystemExit):
        if name.endswith("async"):
            asyncio.run(module.main(["--help"]))
        else:
            module.main(["--help"])
