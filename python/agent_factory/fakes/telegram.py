"""A fake Telegram Bot API on loopback, with files, webhooks, fault injection and a call log.

``FakeTelegram`` answers the methods agent-factory uses with the real shapes:
``{"ok": true, "result": ...}`` on success and ``{"ok": false, "error_code": N,
"description": "..."}`` (plus ``"parameters": {"retry_after": S}`` for a 429) on
failure. Methods: ``getMe``, ``getFile``, ``setWebhook``, ``getWebhookInfo``,
``deleteWebhook``, and file downloads at ``/file/bot<token>/<file_path>``.
Parameters are read from the query string, a JSON body or a form body, as the
Bot API accepts them.

Bots are keyed by token (an unknown token answers 401 ``Unauthorized``); the
fake starts with one and :meth:`FakeTelegram.add_bot` adds more. A test
registers downloadable files with :meth:`FakeTelegram.add_file`, builds updates
with :meth:`FakeTelegram.message_update`, and can play Telegram's part of the
webhook: :meth:`FakeTelegram.deliver` POSTs an update to a URL with the
``X-Telegram-Bot-Api-Secret-Token`` that the bot received in ``setWebhook``.
Faults are injected per method with :meth:`FakeTelegram.fail_next` (any status,
optionally a ``retry_after``); ``"file"`` names downloads. Every request is
recorded in :attr:`FakeTelegram.calls` (without the token).

Example::

    with FakeTelegram() as tg:
        factory.telegram.set_api_config(base_url=tg.base_url)
        photo = tg.add_file(b"jpeg bytes", file_path="photos/file_1.jpg")
        tg.fail_next("file", 429, retry_after=0)
        factory.telegram.ingest_update(tg.message_update(caption="hi", photo=[photo]), agent_key="support")
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeBot", "FakeTelegram", "FakeTelegramCall", "FakeTelegramFile", "FakeWebhook", "SECRET_TOKEN_HEADER"]

#: The header Telegram sends with the webhook secret token.
SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"

#: The Bot API refuses ``getFile`` for larger files.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_METHODS = ("getMe", "getFile", "setWebhook", "getWebhookInfo", "deleteWebhook")


@dataclass(frozen=True)
class FakeTelegramCall:
    """One request the fake answered (the bot token is not recorded)."""

    #: Bot API method, or ``"file"`` for a download.
    method: str
    #: The bot's id (``None`` for an unknown token).
    bot_id: int | None
    #: Parameters (query, JSON or form); for downloads ``{"file_path": ...}``.
    params: dict[str, Any]
    status: int
    #: ``time.monotonic()`` when it arrived.
    at: float


@dataclass
class FakeTelegramFile:
    """A downloadable file registered with :meth:`FakeTelegram.add_file`."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    content_type: str | None = None
    #: Whether ``getFile`` and updates report ``file_size``.
    report_size: bool = True

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes (the blob id agent-factory stores them under)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)


@dataclass
class FakeWebhook:
    """A bot's webhook as set by ``setWebhook``."""

    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    pending_update_count: int = 0
    last_error_date: int | None = None
    last_error_message: str | None = None
    max_connections: int = 40
    #: When set, ``getWebhookInfo`` reports this URL instead of ``url`` (a mismatch,
    #: as when another deployment re-registered the bot); ``setWebhook`` keeps it.
    reported_url: str | None = None

    def info(self) -> dict[str, Any]:
        """The ``WebhookInfo`` object."""
        out: dict[str, Any] = {
            "url": self.url if self.reported_url is None else self.reported_url,
            "has_custom_certificate": False,
            "pending_update_count": self.pending_update_count,
        }
        if self.url:
            out["max_connections"] = self.max_connections
        if self.allowed_updates is not None:
            out["allowed_updates"] = list(self.allowed_updates)
        if self.last_error_date is not None:
            out["last_error_date"] = self.last_error_date
            out["last_error_message"] = self.last_error_message or ""
        return out


@dataclass
class FakeBot:
    """A bot the fake knows, by token."""

    token: str
    id: int
    username: str
    first_name: str = "Test Bot"
    webhook: FakeWebhook = field(default_factory=FakeWebhook)

    def me(self) -> dict[str, Any]:
        """The ``getMe`` answer."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }


@dataclass
class _Rule:
    method: str
    status: int
    description: str
    retry_after: int | None
    times: int


def _bot_id(token: str) -> int:
    prefix = token.split(":", 1)[0]
    if not prefix.isdigit():
        raise ValueError("a bot token looks like '<digits>:<secret>'")
    return int(prefix)


def _default_description(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
    }.get(status, f"Error {status}")


class FakeTelegram:
    """A threaded fake of the Telegram Bot API on ``127.0.0.1`` (random port).

    Use as a context manager or call :meth:`close`. ``token`` and ``username``
    describe the first bot (its id is the token's numeric prefix).
    ``max_download_bytes`` is where ``getFile`` starts answering "file is too big".
    """

    def __init__(
        self,
        token: str = "7000000001:AAFakeToken_for-agent-factory-tests",
        *,
        username: str = "agent_factory_test_bot",
        first_name: str = "Test Bot",
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
    ) -> None:
        self.max_download_bytes = max_download_bytes
        self._lock = threading.Lock()
        self._bots: dict[str, FakeBot] = {}
        self._files: dict[str, FakeTelegramFile] = {}
        self._calls: list[FakeTelegramCall] = []
        self._rules: list[_Rule] = []
        self._next_update_id = 100_000
        self._next_message_id = 1
        self.add_bot(token, username=username, first_name=first_name)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-telegram", daemon=True
        )
        self._thread.start()

    # --- lifecycle -------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: pass it as ``factory.telegram.set_api_config(base_url=...)``."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        """Stop serving. Idempotent."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeTelegram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FakeTelegram(base_url={self.base_url!r}, bots={[b.username for b in self._bots.values()]!r})"

    # --- bots, files, webhooks -------------------------------------------

    def add_bot(self, token: str, *, username: str, first_name: str = "Test Bot") -> FakeBot:
        """Register another bot (its id is the token's numeric prefix)."""
        bot = FakeBot(token=token, id=_bot_id(token), username=username, first_name=first_name)
        with self._lock:
            self._bots[token] = bot
        return bot

    def bot(self, token: str | None = None) -> FakeBot:
        """The bot with ``token`` (default: the first one)."""
        with self._lock:
            if token is None:
                return next(iter(self._bots.values()))
            return self._bots[token]

    @property
    def token(self) -> str:
        """The first bot's token."""
        return self.bot().token

    @property
    def bot_id(self) -> int:
        """The first bot's id."""
        return self.bot().id

    @property
    def username(self) -> str:
        """The first bot's username."""
        return self.bot().username

    def webhook(self, token: str | None = None) -> FakeWebhook:
        """A bot's webhook state (mutable: set ``reported_url`` or errors to simulate Telegram)."""
        return self.bot(token).webhook

    def add_file(
        self,
        data: bytes,
        *,
        file_path: str | None = None,
        file_id: str | None = None,
        content_type: str | None = None,
        report_size: bool = True,
    ) -> FakeTelegramFile:
        """Register a downloadable file; ``getFile`` answers for its ``file_id``."""
        fid = file_id or f"AgAC{secrets.token_urlsafe(12)}"
        f = FakeTelegramFile(
            file_id=fid,
            file_unique_id=secrets.token_hex(8),
            file_path=file_path or f"documents/file_{len(self._files) + 1}",
            data=bytes(data),
            content_type=content_type,
            report_size=report_size,
        )
        with self._lock:
            self._files[fid] = f
        return f

    # --- updates ---------------------------------------------------------

    def message_update(
        self,
        *,
        text: str | None = None,
        caption: str | None = None,
        chat_id: int = 1001,
        user_id: int = 2002,
        photo: list[FakeTelegramFile] | None = None,
        video: FakeTelegramFile | None = None,
        audio: FakeTelegramFile | None = None,
        voice: FakeTelegramFile | None = None,
        document: FakeTelegramFile | None = None,
        edited: bool = False,
        update_id: int | None = None,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """An ``Update`` with a ``message`` (or ``edited_message``) as Telegram sends it.

        ``photo`` lists the sizes of one photo, smallest first (Telegram's order).
        """
        with self._lock:
            uid = update_id if update_id is not None else self._next_update_id
            self._next_update_id = max(self._next_update_id, uid) + 1
            mid = message_id if message_id is not None else self._next_message_id
            self._next_message_id += 1
        msg: dict[str, Any] = {
            "message_id": mid,
            "from": {"id": user_id, "is_bot": False, "first_name": "Ada", "language_code": "en"},
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "first_name": "Ada"},
            "date": int(time.time()),
        }
        if edited:
            msg["edit_date"] = int(time.time())
        if text is not None:
            msg["text"] = text
        if caption is not None:
            msg["caption"] = caption
        if photo:
            msg["photo"] = [
                {**self._file_json(p), "width": 90 * (i + 1), "height": 90 * (i + 1)} for i, p in enumerate(photo)
            ]
        for kind, f, extra in (
            ("video", video, {"width": 640, "height": 360, "duration": 3}),
            ("audio", audio, {"duration": 5}),
            ("voice", voice, {"duration": 2}),
            ("document", document, {}),
        ):
            if f is not None:
                item = {**self._file_json(f), **extra}
                if kind != "voice":
                    item["file_name"] = f.file_path.rsplit("/", 1)[-1]
                if f.content_type:
                    item["mime_type"] = f.content_type
                msg[kind] = item
        return {"update_id": uid, ("edited_message" if edited else "message"): msg}

    @staticmethod
    def _file_json(f: FakeTelegramFile) -> dict[str, Any]:
        out: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id}
        if f.report_size:
            out["file_size"] = f.size
        return out

    def deliver(
        self, update: dict[str, Any] | bytes | str, url: str | None = None, *, token: str | None = None, timeout: float = 10.0
    ) -> tuple[int, bytes]:
        """POST ``update`` as Telegram would: JSON body, the bot's webhook secret in
        ``X-Telegram-Bot-Api-Secret-Token``. ``url`` defaults to the webhook URL set
        with ``setWebhook`` (pass a loopback URL to reach a local server). Returns
        ``(status, body)`` (HTTP errors are returned, not raised)."""
        hook = self.webhook(token)
        target = url or hook.url
        if not target:
            raise ValueError("no webhook URL: call setWebhook (configure_webhook) or pass url=")
        if isinstance(update, bytes):
            body = update
        else:
            body = update.encode() if isinstance(update, str) else json.dumps(update).encode()
        req = urllib.request.Request(target, data=body, method="POST", headers={"Content-Type": "application/json"})
        if hook.secret_token is not None:
            req.add_header(SECRET_TOKEN_HEADER, hook.secret_token)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    # --- call log and faults ---------------------------------------------

    @property
    def calls(self) -> list[FakeTelegramCall]:
        """Every request answered so far."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[FakeTelegramCall]:
        """Calls of one method (``"file"`` for downloads)."""
        return [c for c in self.calls if c.method == method]

    def clear_calls(self) -> None:
        """Forget the call log."""
        with self._lock:
            self._calls.clear()

    def fail_next(
        self,
        method: str,
        status: int,
        *,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (a Bot API method, ``"file"``
        for downloads, or ``"*"``) with ``status`` and a Bot API error body."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if method != "*" and method != "file" and method not in _METHODS:
            raise ValueError(f"unknown method {method!r}; one of {', '.join(_METHODS)}, 'file' or '*'")
        rule = _Rule(method, status, description or _default_description(status), retry_after, times)
        with self._lock:
            self._rules.append(rule)

    def clear_faults(self) -> None:
        """Drop every fault not yet used."""
        with self._lock:
            self._rules.clear()

    def _take_fault(self, method: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.times > 0 and rule.method in ("*", method):
                    rule.times -= 1
                    self._rules = [r for r in self._rules if r.times > 0]
                    return rule
        return None

    # --- request handling ------------------------------------------------

    def _handle(self, verb: str, raw_path: str, headers: Any, raw_body: bytes) -> tuple[int, bytes, str]:
        split = urlsplit(raw_path)
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(split.query).items()}
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if raw_body and ctype == "application/json":
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.update(body)
        elif raw_body and ctype == "application/x-www-form-urlencoded":
            params.update({k: v[-1] for k, v in parse_qs(raw_body.decode()).items()})
        arrived = time.monotonic()
        m = re.fullmatch(r"/(file/)?bot([^/]+)/(.+)", unquote(split.path))
        bot = None
        method = "?"
        if m is None:
            status, payload = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        else:
            with self._lock:
                bot = self._bots.get(m.group(2))
            if m.group(1):
                method = "file"
                params = {"file_path": m.group(3)}
            else:
                method = m.group(3)
            status, payload = self._answer(bot, method, params)
        with self._lock:
            self._calls.append(FakeTelegramCall(method, bot.id if bot else None, params, status, arrived))
        if isinstance(payload, FakeTelegramFile):
            return status, payload.data, payload.content_type or "application/octet-stream"
        return status, json.dumps(payload).encode(), "application/json"

    def _answer(self, bot: FakeBot | None, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        if bot is None:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        fault = self._take_fault(method)
        if fault is not None:
            err: dict[str, Any] = {"ok": False, "error_code": fault.status, "description": fault.description}
            if fault.retry_after is not None:
                err["parameters"] = {"retry_after": fault.retry_after}
            return fault.status, err
        if method == "file":
            return self._download(params["file_path"])
        handler = {
            "getMe": lambda: (200, bot.me()),
            "getWebhookInfo": lambda: (200, bot.webhook.info()),
            "setWebhook": lambda: self._set_webhook(bot, params),
            "deleteWebhook": lambda: self._delete_webhook(bot, params),
            "getFile": lambda: self._get_file(params),
        }.get(method)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        status, result = handler()
        if status != 200:
            return status, {"ok": False, "error_code": status, "description": result}
        return 200, {"ok": True, "result": result}

    def _set_webhook(self, bot: FakeBot, params: dict[str, Any]) -> tuple[int, Any]:
        url = str(params.get("url") or "")
        if url and not url.lower().startswith("https://"):
            return 400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(str(secret)):
            return 400, "Bad Request: secret token contains unallowed characters"
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        with self._lock:
            bot.webhook.url = url
            bot.webhook.secret_token = None if secret is None else str(secret)
            bot.webhook.allowed_updates = allowed if isinstance(allowed, list) else None
        return 200, True

    def _delete_webhook(self, bot: FakeBot, params: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            bot.webhook.url = ""
            bot.webhook.secret_token = None
            bot.webhook.reported_url = None
            if params.get("drop_pending_updates") in (True, "true", "True", "1"):
                bot.webhook.pending_update_count = 0
        return 200, True

    def _get_file(self, params: dict[str, Any]) -> tuple[int, Any]:
        f = self._files.get(str(params.get("file_id") or ""))
        if f is None:
            return 400, "Bad Request: invalid file_id"
        if f.size > self.max_download_bytes:
            return 400, "Bad Request: file is too big"
        out: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id, "file_path": f.file_path}
        if f.report_size:
            out["file_size"] = f.size
        return 200, out

    def _download(self, file_path: str) -> tuple[int, Any]:
        with self._lock:
            found = next((f for f in self._files.values() if f.file_path == file_path), None)
        if found is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return 200, found


def _handler_for(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            status, data, ctype = fake._handle(self.command, self.path, self.headers, raw)
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log (the call log is on the fake)."""

    return Handler
