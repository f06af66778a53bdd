"""A Telegram bot webhook endpoint on asyncio that enqueues into agent-factory
(stdlib only: ``asyncio.start_server`` and a minimal HTTP/1.1 reader).

Same contract as ``telegram_webhook_sync.py``: the raw body and the
``X-Telegram-Bot-Api-Secret-Token`` header go to
``await factory.telegram.handle_webhook(...)`` (an ``AsyncFactory``: the work runs
in Rust off the event loop). Answers 200 for handled updates (and malformed ones,
which re-sending could never fix), 401 for a wrong or missing secret token, 500
for transient failures (Telegram re-delivers).

    python examples/telegram_webhook_async.py --db factory.db --agent support --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

import agent_factory as af

log = logging.getLogger("telegram-webhook")

MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_LINES = 100
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 500: "Internal Server Error"}


async def answer(factory: af.AsyncFactory, agent_key: str, body: bytes, secret: str | None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for one webhook request."""
    try:
        result = await factory.telegram.handle_webhook(body, secret, agent_key=agent_key)
    except af.AuthenticationError:
        return 401, {"ok": False, "error": "missing or invalid telegram webhook secret token"}
    except af.ValidationError as e:
        log.warning("dropping a malformed update: %s", e)
        return 200, {"ok": False, "error": str(e)}
    except af.AgentFactoryError as e:
        log.error("update not handled, Telegram will retry: %s", e)
        return 500, {"ok": False, "error": "temporary failure"}
    return 200, {"ok": True, "status": result.status, "message_id": result.message_id}


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | int:
    """``(method, path, headers, body)`` of one request, or an HTTP error status."""
    line = await reader.readline()
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        return 400
    method, target, _version = parts
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        return 400
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return 400
    if length < 0 or length > MAX_BODY_BYTES:
        return 413
    body = await reader.readexactly(length)
    return method, target.split("?", 1)[0], headers, body


def connection_handler(factory: af.AsyncFactory, agent_key: str, path: str = af.DEFAULT_WEBHOOK_PATH) -> Any:
    """A ``start_server`` callback serving ``POST <path>`` (one request per connection)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(read_request(reader), timeout=30)
            if isinstance(request, int):
                status, payload = request, {"ok": False, "error": "bad request"}
            else:
                method, target, headers, body = request
                if target != path:
                    status, payload = 404, {"ok": False, "error": "not found"}
                elif method != "POST":
                    status, payload = 405, {"ok": False, "error": "POST only"}
                else:
                    secret = headers.get(af.SECRET_TOKEN_HEADER.lower())
                    status, payload = await answer(factory, agent_key, body, secret)
            data = json.dumps(payload).encode()
            head = (
                f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + data)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    return handle


async def start(
    factory: af.AsyncFactory, agent_key: str, host: str = "127.0.0.1", port: int = 8080, path: str = af.DEFAULT_WEBHOOK_PATH
) -> asyncio.Server:
    """Start serving the webhook; returns the ``asyncio.Server``."""
    return await asyncio.start_server(connection_handler(factory, agent_key, path), host, port)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="factory.db")
    parser.add_argument("--agent", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--path", default=af.DEFAULT_WEBHOOK_PATH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = await start(af.AsyncFactory(args.db), args.agent, args.host, args.port, args.path)
    log.info("listening on %s", ", ".join(str(s.getsockname()) for s in server.sockets))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
