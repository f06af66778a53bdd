"""A Telegram bot webhook endpoint that enqueues into agent-factory (stdlib only, blocking).

Telegram POSTs every update to the URL given to ``setWebhook`` with the secret
token in ``X-Telegram-Bot-Api-Secret-Token``. This server hands the raw body and
that header to ``factory.telegram.handle_webhook``, which checks the token in
constant time, de-duplicates re-deliveries, downloads media and enqueues the
message (or pairs a ``/start <code>``) in one transaction.

Run it behind a TLS-terminating proxy (Telegram only calls ``https://`` URLs)::

    python examples/telegram_webhook_sync.py --db factory.db --agent support --port 8080

and point the bot at the public URL once, from any process on the same database::

    Factory("factory.db").telegram.configure_webhook("support", "https://bots.example.com")

Answers: 200 for every handled update (also ``duplicate`` and ``ignored``, and for
an update that is malformed — re-sending it could never work), 401 for a missing
or wrong secret token (not Telegram), 500 when something transient failed (a
media download, the database): Telegram then re-delivers the update later.
"""

from __future__ import annotations

import argparse
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import agent_factory as af

log = logging.getLogger("telegram-webhook")

#: Telegram updates are small; refuse anything larger before reading it.
MAX_BODY_BYTES = 1024 * 1024


def answer(factory: af.Factory, agent_key: str, body: bytes, secret: str | None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for one webhook request."""
    try:
        result = factory.telegram.handle_webhook(body, secret, agent_key=agent_key)
    except af.AuthenticationError:
        return 401, {"ok": False, "error": "missing or invalid telegram webhook secret token"}
    except af.ValidationError as e:
        log.warning("dropping a malformed update: %s", e)
        return 200, {"ok": False, "error": str(e)}
    except af.AgentFactoryError as e:
        log.error("update not handled, Telegram will retry: %s", e)
        return 500, {"ok": False, "error": "temporary failure"}
    return 200, {"ok": True, "status": result.status, "message_id": result.message_id}


def make_handler(factory: af.Factory, agent_key: str, path: str = af.DEFAULT_WEBHOOK_PATH) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``POST <path>`` for ``agent_key``'s bot."""

    class WebhookHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self._send(404, {"ok": False, "error": "not found"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(413 if length > 0 else 400, {"ok": False, "error": "bad Content-Length"})
                return
            body = self.rfile.read(length)
            status, payload = answer(factory, agent_key, body, self.headers.get(af.SECRET_TOKEN_HEADER))
            self._send(status, payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return WebhookHandler


def serve(
    factory: af.Factory, agent_key: str, host: str = "127.0.0.1", port: int = 8080, path: str = af.DEFAULT_WEBHOOK_PATH
) -> ThreadingHTTPServer:
    """A threaded HTTP server for the webhook (call ``serve_forever()`` on it)."""
    server = ThreadingHTTPServer((host, port), make_handler(factory, agent_key, path))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="factory.db", help="agent-factory database file")
    parser.add_argument("--agent", required=True, help="agent whose bot posts here")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--path", default=af.DEFAULT_WEBHOOK_PATH)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = serve(af.Factory(args.db), args.agent, args.host, args.port, args.path)
    log.info("listening on http://%s:%d%s", args.host, server.server_address[1], args.path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
