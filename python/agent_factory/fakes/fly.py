"""A fake Fly Machines API on loopback, with fault injection and a call log.

``FakeFly`` serves the paths and JSON shapes agent-factory uses (spec §6) under
``/v1``: the app access check, machines (list, create, get, cordon, stop, start,
wait, destroy) and volumes (list, create, get, delete). Machines move through
Fly's states (``created`` → ``started``; ``stop`` → ``stopping`` → ``stopped``;
``destroy`` → ``destroyed``, after which the machine answers 404). Destroying a
machine that is not stopped, and deleting a volume that is attached to a live
machine, fail with a 412 ``failed_precondition`` like Fly does.

Every request is checked for ``Authorization: Bearer <token>`` (401 otherwise)
and recorded in :attr:`FakeFly.calls` as ``(method, path, status)`` with the
path relative to ``/v1``, the request's ``User-Agent`` (a control loop puts
its holder id there, so calls can be attributed to the loop that made them)
and when it arrived and was answered. Faults are injected per request pattern with
:meth:`FakeFly.fail_next` (any status, body and headers, e.g. a 429 with
``Retry-After``, optionally *after* applying the request, as when an answer is
lost) and :meth:`FakeFly.delay_next` (slow answers that outlast a client's
timeout).

Example::

    with FakeFly() as fly:
        client = FlyMachines(fly.app_name, fly.token, base_url=fly.base_url)
        fly.fail_next("DELETE", r"/apps/.*/machines/.*", 500, times=2)
        ...
        assert [c.status for c in fly.calls_to("DELETE")] == [500, 500, 200]
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeCall", "FakeFly", "FakeMachine", "FakeVolume"]

#: States from which Fly lets a machine be destroyed without ``force``.
DESTROYABLE_STATES = frozenset({"stopped", "suspended", "failed", "created"})

_Reply = tuple[int, Any, dict[str, str]]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> _Reply:
    return status, {"error": message}, {}


@dataclass(frozen=True)
class FakeCall:
    """One request the fake answered."""

    method: str
    #: Path relative to ``/v1`` (as in error messages), without the query.
    path: str
    status: int
    query: dict[str, str]
    #: Parsed JSON request body (``None`` when there was none).
    body: Any
    #: ``time.monotonic()`` when the request arrived.
    at: float
    #: The ``User-Agent`` header (``None`` when absent).
    user_agent: str | None = None
    #: ``time.monotonic()`` when the answer was ready (after any injected delay).
    done: float = 0.0


@dataclass
class FakeMachine:
    """A machine held by the fake. ``env``, ``mounts`` and ``guest`` are as created."""

    id: str
    name: str
    region: str
    image: str
    env: dict[str, str] = field(default_factory=dict)
    guest: dict[str, Any] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    cordoned: bool = False
    created_at: str = field(default_factory=_now_iso)
    _state: str = "created"
    _pending: tuple[str, float] | None = None

    @property
    def state(self) -> str:
        """The current Fly state (transient states settle as time passes)."""
        if self._pending is not None and time.monotonic() >= self._pending[1]:
            self._state, self._pending = self._pending[0], None
        return self._state

    def _move(self, state: str, then: str | None = None, after: float = 0.0) -> None:
        self._state = state
        self._pending = None if then is None else (then, time.monotonic() + after)

    @property
    def config(self) -> dict[str, Any]:
        """The machine ``config`` object as Fly returns it."""
        return {"image": self.image, "env": dict(self.env), "guest": dict(self.guest), "mounts": list(self.mounts)}

    def to_json(self) -> dict[str, Any]:
        """The machine object as Fly returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": self.region,
            "instance_id": self.id.upper(),
            "config": self.config,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }


@dataclass
class FakeVolume:
    """A volume held by the fake."""

    id: str
    name: str
    region: str
    size_gb: int
    state: str = "created"
    attached_machine_id: str | None = None
    created_at: str = field(default_factory=_now_iso)

    def to_json(self) -> dict[str, Any]:
        """The volume object as Fly returns it."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "size_gb": self.size_gb,
            "region": self.region,
            "zone": "a1b2",
            "encrypted": True,
            "attached_machine_id": self.attached_machine_id,
            "attached_alloc_id": None,
            "created_at": self.created_at,
        }


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    times: int
    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    after_apply: bool = False
    seconds: float = 0.0
    skip: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and self.pattern.fullmatch(path) is not None


def _default_fault_body(status: int) -> Any:
    if status == 412:
        return {"error": "failed_precondition: injected precondition failure"}
    if status == 429:
        return {"error": "rate limit exceeded, slow down"}
    if status == 500:
        return {"error": "internal server error"}
    try:
        return {"error": HTTPStatus(status).phrase.lower()}
    except ValueError:
        return {"error": f"status {status}"}


class FakeFly:
    """A threaded fake of the Fly Machines API on ``127.0.0.1`` (random port).

    Use as a context manager or call :meth:`close`. ``start_delay`` and
    ``stop_delay`` (seconds) are how long ``starting``/``stopping`` last.
    """

    def __init__(
        self,
        app_name: str = "agent-factory-workers-test",
        token: str = "fly-token",
        *,
        start_delay: float = 0.0,
        stop_delay: float = 0.0,
    ) -> None:
        self.app_name = app_name
        self.token = token
        self.start_delay = start_delay
        self.stop_delay = stop_delay
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._machines: dict[str, FakeMachine] = {}
        self._volumes: dict[str, FakeVolume] = {}
        self._calls: list[FakeCall] = []
        self._rules: list[_Rule] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-fly", daemon=True
        )
        self._thread.start()

    # --- lifecycle -------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: pass it as the client's ``base_url``."""
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def close(self) -> None:
        """Stop serving (pending delays end at once). Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeFly:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FakeFly(app_name={self.app_name!r}, base_url={self.base_url!r})"

    # --- state ------------------------------------------------------------

    @property
    def machines(self) -> dict[str, FakeMachine]:
        """Every machine ever created, by id, destroyed ones included (state ``destroyed``)."""
        with self._cond:
            return dict(self._machines)

    def live_machines(self) -> dict[str, FakeMachine]:
        """Machines that are not destroyed, by id."""
        with self._cond:
            return {k: m for k, m in self._machines.items() if m.state != "destroyed"}

    @property
    def volumes(self) -> dict[str, FakeVolume]:
        """Volumes that exist, by id."""
        with self._cond:
            return dict(self._volumes)

    def add_machine(
        self,
        name: str | None = None,
        *,
        state: str = "started",
        region: str = "iad",
        image: str = "registry.fly.io/worker:test",
        env: dict[str, str] | None = None,
        volume_id: str | None = None,
        machine_id: str | None = None,
    ) -> FakeMachine:
        """Seed a machine directly (no request, not logged); mounts ``volume_id`` at ``/data``."""
        with self._cond:
            mid = machine_id or secrets.token_hex(7)
            m = FakeMachine(
                id=mid,
                name=name or mid,
                region=region,
                image=image,
                env=dict(env or {}),
                guest={"cpu_kind": "shared", "cpus": 1, "memory_mb": 2048},
            )
            m._move(state)
            if volume_id is not None:
                m.mounts.append({"volume": volume_id, "path": "/data"})
                if volume_id in self._volumes:
                    self._volumes[volume_id].attached_machine_id = mid
            self._machines[mid] = m
            return m

    def add_volume(
        self,
        name: str = "data",
        *,
        region: str = "iad",
        size_gb: int = 1,
        attached_machine_id: str | None = None,
        volume_id: str | None = None,
    ) -> FakeVolume:
        """Seed a volume directly (no request, not logged)."""
        with self._cond:
            v = FakeVolume(
                id=volume_id or f"vol_{secrets.token_hex(8)}",
                name=name,
                region=region,
                size_gb=size_gb,
                attached_machine_id=attached_machine_id,
            )
            self._volumes[v.id] = v
            return v

    # --- call log and faults ---------------------------------------------

    @property
    def calls(self) -> list[FakeCall]:
        """Every request answered so far, in arrival order of completion."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str | None = None, path_pattern: str | None = None) -> list[FakeCall]:
        """Calls with this method (any when ``None``) whose path fully matches the regex."""
        pattern = re.compile(path_pattern) if path_pattern is not None else None
        return [
            c
            for c in self.calls
            if (method is None or c.method == method) and (pattern is None or pattern.fullmatch(c.path))
        ]

    def clear_calls(self) -> None:
        """Forget the call log."""
        with self._cond:
            self._calls.clear()

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        body: Any = None,
        times: int = 1,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        after_apply: bool = False,
        skip: int = 0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``.

        ``method`` is an HTTP method or ``"*"``; ``path_pattern`` is a regex that
        must match the whole path relative to ``/v1`` (e.g.
        ``r"/apps/[^/]+/machines/[^/]+"``). ``body`` is JSON (dict/list) or text;
        by default a Fly-style ``{"error": ...}``. With ``after_apply`` the request
        takes effect first and only its answer is replaced (a lost response).
        ``skip`` lets that many matching requests through untouched first.
        """
        if times < 1 or skip < 0:
            raise ValueError(f"times must be at least 1 and skip non-negative, got {times}/{skip}")
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = f"{retry_after:g}"
        rule = _Rule(
            method=method.upper(),
            pattern=re.compile(path_pattern),
            times=times,
            status=status,
            body=_default_fault_body(status) if body is None else body,
            headers=extra,
            after_apply=after_apply,
            skip=skip,
        )
        with self._cond:
            self._rules.append(rule)

    def delay_next(self, method: str, path_pattern: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` before handling them.

        The request still takes effect afterwards, as on a slow server whose client
        gave up: use it to make a client time out.
        """
        if times < 1 or seconds < 0:
            raise ValueError("times must be at least 1 and seconds non-negative")
        with self._cond:
            self._rules.append(
                _Rule(method=method.upper(), pattern=re.compile(path_pattern), times=times, seconds=seconds)
            )

    def _take_rules(self, method: str, path: str) -> tuple[float, _Rule | None]:
        delay, fault = 0.0, None
        with self._cond:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                elif rule.status == 0 and delay == 0.0:
                    rule.times -= 1
                    delay = rule.seconds
                elif rule.status != 0 and fault is None:
                    rule.times -= 1
                    fault = rule
            self._rules = [r for r in self._rules if r.times > 0]
        return delay, fault

    # --- request handling ------------------------------------------------

    def _handle(
        self, method: str, raw_path: str, auth: str | None, raw_body: bytes, user_agent: str | None = None
    ) -> _Reply:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
        path = split.path[len("/v1") :] if split.path.startswith("/v1/") else None
        shown = path if path is not None else split.path
        arrived = time.monotonic()
        status, payload, headers = self._answer(method, path, query, auth, body)
        with self._cond:
            self._calls.append(FakeCall(method, shown, status, query, body, arrived, user_agent, time.monotonic()))
        return status, payload, headers

    def _answer(self, method: str, path: str | None, query: dict[str, str], auth: str | None, body: Any) -> _Reply:
        if path is None:
            return 404, "404 page not found\n", {}
        delay, fault = self._take_rules(method, path)
        if delay:
            self._closing.wait(delay)
        if auth != f"Bearer {self.token}":
            return _error(401, "You must be authenticated to view this.")
        if fault is not None and not fault.after_apply:
            return fault.status, fault.body, dict(fault.headers)
        with self._cond:
            reply = self._route(method, [unquote(s) for s in path.split("/")[1:]], query, body)
            self._cond.notify_all()
        if fault is not None:
            return fault.status, fault.body, dict(fault.headers)
        return reply

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> _Reply:
        if len(parts) < 2 or parts[0] != "apps":
            return 404, "404 page not found\n", {}
        if parts[1] != self.app_name:
            return _error(404, "app not found")
        rest = parts[2:]
        routes: dict[tuple[str, int, str], Callable[..., _Reply]] = {
            ("GET", 0, ""): lambda: (
                200, {"name": self.app_name, "status": "deployed", "organization": {"slug": "personal"}}, {}
            ),
            ("GET", 1, "machines"): self._list_machines,
            ("POST", 1, "machines"): lambda: self._create_machine(body),
            ("GET", 1, "volumes"): lambda: (200, [v.to_json() for v in self._volumes.values()], {}),
            ("POST", 1, "volumes"): lambda: self._create_volume(body),
        }
        key = (method, len(rest), rest[0] if rest else "")
        if key in routes:
            return routes[key]()
        if len(rest) >= 2 and rest[0] == "machines":
            return self._machine_action(method, rest[1], rest[2:], query)
        if len(rest) == 2 and rest[0] == "volumes":
            return self._volume_action(method, rest[1])
        return 404, "404 page not found\n", {}

    def _list_machines(self) -> _Reply:
        return 200, [m.to_json() for m in self._machines.values() if m.state != "destroyed"], {}

    def _create_machine(self, body: Any) -> _Reply:
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            return _error(400, "invalid request: config is required")
        config = body["config"]
        if not isinstance(config.get("image"), str) or not config["image"]:
            return _error(400, "invalid request: config.image is required")
        name = body.get("name") or None
        if name is not None and any(m.name == name and m.state != "destroyed" for m in self._machines.values()):
            return _error(409, f"already_exists: a machine named {name!r} already exists")
        mounts = list(config.get("mounts") or [])
        for mount in mounts:
            vol = self._volumes.get(str(mount.get("volume")))
            if vol is None:
                return _error(400, f"invalid request: volume {mount.get('volume')!r} does not exist")
            if vol.attached_machine_id is not None:
                return _error(412, f"failed_precondition: volume {vol.id} is attached to another machine")
        mid = secrets.token_hex(7)
        m = FakeMachine(
            id=mid,
            name=name or mid,
            region=str(body.get("region") or "iad"),
            image=config["image"],
            env={str(k): str(v) for k, v in (config.get("env") or {}).items()},
            guest=dict(config.get("guest") or {}),
            mounts=mounts,
        )
        m._move("created", then="started", after=self.start_delay)
        for mount in mounts:
            self._volumes[str(mount["volume"])].attached_machine_id = mid
        self._machines[mid] = m
        return 200, {**m.to_json(), "state": "created"}, {}

    def _machine_action(self, method: str, machine_id: str, action: list[str], query: dict[str, str]) -> _Reply:
        m = self._machines.get(machine_id)
        if action == ["wait"] and method == "GET":
            return self._wait(machine_id, query)
        if m is None or m.state == "destroyed":
            return _error(404, "machine not found")
        if not action and method == "GET":
            return 200, m.to_json(), {}
        if not action and method == "DELETE":
            if m.state not in DESTROYABLE_STATES and query.get("force") != "true":
                return _error(412, "failed_precondition: unable to destroy machine, not currently stopped, suspended or failed")
            m._move("destroyed")
            for vol in self._volumes.values():
                if vol.attached_machine_id == m.id:
                    vol.attached_machine_id = None
            return 200, {"ok": True}, {}
        if method != "POST" or len(action) != 1:
            return 404, "404 page not found\n", {}
        if action[0] in ("cordon", "uncordon"):
            m.cordoned = action[0] == "cordon"
        elif action[0] == "stop":
            if m.state in ("created", "starting", "started", "restarting", "updating", "replacing"):
                m._move("stopping", then="stopped", after=self.stop_delay)
        elif action[0] == "start":
            if m.state in ("stopped", "suspended", "created"):
                m._move("starting", then="started", after=self.start_delay)
        else:
            return 404, "404 page not found\n", {}
        return 200, {"ok": True}, {}

    def _wait(self, machine_id: str, query: dict[str, str]) -> _Reply:
        wanted = query.get("state", "started")
        try:
            timeout = min(float(query.get("timeout", "60")), 60.0)
        except ValueError:
            return _error(400, "invalid timeout")
        deadline = time.monotonic() + timeout
        while not self._closing.is_set():
            m = self._machines.get(machine_id)
            if m is None:
                return _error(404, "machine not found")
            if m.state == wanted:
                return 200, {"ok": True}, {}
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(min(left, 0.02))
        return _error(408, f"deadline_exceeded: machine did not reach {wanted} in time")

    def _create_volume(self, body: Any) -> _Reply:
        if not isinstance(body, dict):
            return _error(400, "invalid request body")
        name, region, size = body.get("name"), body.get("region"), body.get("size_gb")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,30}", name):
            return _error(400, "invalid request: name must be 1-30 lowercase letters, digits or underscores")
        if not isinstance(region, str) or not region:
            return _error(400, "invalid request: region is required")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            return _error(400, "invalid request: size_gb must be a positive integer")
        v = FakeVolume(id=f"vol_{secrets.token_hex(8)}", name=name, region=region, size_gb=size)
        self._volumes[v.id] = v
        return 200, v.to_json(), {}

    def _volume_action(self, method: str, volume_id: str) -> _Reply:
        v = self._volumes.get(volume_id)
        if v is None:
            return _error(404, "volume not found")
        if method == "GET":
            return 200, v.to_json(), {}
        if method != "DELETE":
            return 404, "404 page not found\n", {}
        owner = self._machines.get(v.attached_machine_id or "")
        if owner is not None and owner.state != "destroyed":
            return _error(
                412, f"failed_precondition: volume {v.id} is attached to machine {owner.id}; destroy the machine first"
            )
        del self._volumes[volume_id]
        return 200, {**v.to_json(), "state": "destroyed"}, {}


def _handler_for(fake: FakeFly) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            status, payload, headers = fake._handle(
                self.command, self.path, self.headers.get("Authorization"), raw, self.headers.get("User-Agent")
            )
            if isinstance(payload, str):
                data, ctype = payload.encode(), "text/plain; charset=utf-8"
            else:
                data, ctype = json.dumps(payload).encode(), "application/json"
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client gave up (timeout)

        do_GET = do_POST = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log (the call log is on the fake)."""

    return Handler
