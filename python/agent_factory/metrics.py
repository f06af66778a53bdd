"""Metrics of agent-factory: gauges, counters, Prometheus text and ``/metrics``.

``factory.metrics()`` returns a frozen :class:`Metrics`: gauges read from the
database at one instant (queue depth, in flight, dead letters, oldest ready
age, workers by status and per running worker) and the process-wide counters
kept by the Rust core (messages enqueued / claimed / completed / failed /
dead-lettered, leases recovered, provider calls and errors by provider,
spawns, drains, teardowns, push slots, Telegram updates). Counters are
monotonic since the process started and shared by every factory in it.

:meth:`Metrics.to_prometheus` renders the Prometheus text exposition format
(version 0.0.4); :class:`MetricsServer` serves it on ``GET /metrics`` from a
stdlib HTTP server thread (``agent-factory serve --metrics-port``).

The core's events go to Python :mod:`logging` under ``agent_factory.pool``,
``agent_factory.queue``, ``agent_factory.providers``, ``agent_factory.push`` and
``agent_factory.telegram`` (see :func:`set_core_log_level`).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from . import _native
from ._types import _Record

__all__ = [
    "Counters",
    "Gauges",
    "Metrics",
    "MetricsServer",
    "WorkerGauge",
    "PROMETHEUS_CONTENT_TYPE",
    "counters",
    "set_core_log_level",
]

log = logging.getLogger("agent_factory.metrics")

#: Content type of the Prometheus text exposition format.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class WorkerGauge(_Record):
    """One running (not stopped) worker: status, messages held, heartbeat age."""

    worker_id: str
    status: str
    load: int
    heartbeat_age_ms: int


@dataclass(frozen=True, slots=True)
class Gauges(_Record):
    """The queue and the pool at one instant (read from the database)."""

    queued_ready: int
    queued_waiting: int
    in_flight: int
    dead_letters: int
    oldest_ready_age_ms: int
    oldest_ready_at: int | None
    workers_by_status: dict[str, int]
    workers: list[WorkerGauge]

    _nested_lists: ClassVar[Mapping[str, type]] = {"workers": WorkerGauge}


@dataclass(frozen=True, slots=True)
class Counters(_Record):
    """Process-wide event counters (monotonic since the process started)."""

    messages_enqueued: int
    messages_claimed: int
    messages_completed: int
    messages_failed: int
    messages_dead_lettered: int
    leases_recovered: int
    workers_spawned: int
    workers_drained: int
    workers_torn_down: int
    push_slots_enqueued: int
    push_slots_failed: int
    telegram_updates_ingested: int
    telegram_updates_duplicate: int
    telegram_updates_ignored: int
    telegram_updates_rejected: int
    provider_calls: dict[str, int]
    provider_call_errors: dict[str, int]

    @classmethod
    def _from(cls, data: Mapping[str, Any]) -> Counters:
        return cls(
            **data["values"],
            provider_calls=dict(data["provider_calls"]),
            provider_call_errors=dict(data["provider_call_errors"]),
        )


# (field, metric name without prefix, help) of every counter, in exposition order.
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("messages_enqueued", "messages_enqueued_total", "Messages enqueued."),
    ("messages_claimed", "messages_claimed_total", "Messages claimed by workers."),
    ("messages_completed", "messages_completed_total", "Messages completed by their lease holder."),
    ("messages_failed", "messages_failed_total", "Failures reported by lease holders (retried or not)."),
    ("messages_dead_lettered", "messages_dead_lettered_total", "Messages dead-lettered."),
    ("leases_recovered", "leases_recovered_total", "Expired leases recovered."),
    ("workers_spawned", "workers_spawned_total", "Pool workers spawned."),
    ("workers_drained", "workers_drained_total", "Pool workers sent to drain."),
    ("workers_torn_down", "workers_torn_down_total", "Pool workers torn down."),
    ("push_slots_enqueued", "push_slots_enqueued_total", "Scheduled push slots enqueued."),
    ("push_slots_failed", "push_slots_failed_total", "Scheduled push slots that failed."),
    ("telegram_updates_ingested", "telegram_updates_ingested_total", "Telegram updates that enqueued or paired."),
    ("telegram_updates_duplicate", "telegram_updates_duplicate_total", "Telegram updates delivered again."),
    ("telegram_updates_ignored", "telegram_updates_ignored_total", "Telegram updates with nothing to do."),
    ("telegram_updates_rejected", "telegram_updates_rejected_total", "Telegram updates refused with an error."),
)


def _escape_label(value: str) -> str:
    """A label value escaped for the text format: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Exposition:
    """Builds the text format: one HELP/TYPE block per metric family."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        full = self.prefix + name
        help_escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines.append(f"# HELP {full} {help_escaped}")
        self.lines.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
                self.lines.append(f"{full}{{{inner}}} {_number(value)}")
            else:
                self.lines.append(f"{full} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass(frozen=True, slots=True)
class Metrics(_Record):
    """Gauges of one database at ``at_ms`` plus the process's counters.

    ``to_prometheus()`` renders both in the Prometheus text format."""

    at_ms: int
    gauges: Gauges
    counters: Counters

    _nested: ClassVar[Mapping[str, type]] = {"gauges": Gauges, "counters": Counters}

    def to_prometheus(self, prefix: str = "agent_factory_") -> str:
        """The Prometheus text exposition format (``text/plain; version=0.0.4``):
        ``# HELP`` and ``# TYPE`` per family, names under ``prefix``, counters
        ending in ``_total``, label values escaped."""
        g, c = self.gauges, self.counters
        out = _Exposition(prefix)
        out.family("queue_ready_messages", "gauge", "Queued messages that can be claimed now.", [({}, g.queued_ready)])
        out.family(
            "queue_waiting_messages", "gauge", "Queued messages scheduled later or backing off.", [({}, g.queued_waiting)]
        )
        out.family("queue_in_flight_messages", "gauge", "Messages leased to a worker.", [({}, g.in_flight)])
        out.family("queue_dead_letter_messages", "gauge", "Dead-lettered messages.", [({}, g.dead_letters)])
        out.family(
            "queue_oldest_ready_age_seconds",
            "gauge",
            "How long the oldest ready message has been ready (0 when none is).",
            [({}, g.oldest_ready_age_ms / 1000)],
        )
        out.family(
            "workers",
            "gauge",
            "Workers by status.",
            [({"status": s}, n) for s, n in sorted(g.workers_by_status.items())],
        )
        out.family(
            "worker_load",
            "gauge",
            "Messages held by each running worker.",
            [({"worker_id": w.worker_id, "status": w.status}, w.load) for w in g.workers],
        )
        out.family(
            "worker_heartbeat_age_seconds",
            "gauge",
            "Time since each running worker's last heartbeat.",
            [({"worker_id": w.worker_id, "status": w.status}, w.heartbeat_age_ms / 1000) for w in g.workers],
        )
        for field, name, help_text in _COUNTERS:
            out.family(name, "counter", help_text, [({}, getattr(c, field))])
        out.family(
            "provider_calls_total",
            "counter",
            "Remote provider API calls (with their retries) by provider.",
            [({"provider": p}, n) for p, n in sorted(c.provider_calls.items())],
        )
        out.family(
            "provider_call_errors_total",
            "counter",
            "Remote provider API calls that failed after retries, by provider.",
            [({"provider": p}, n) for p, n in sorted(c.provider_call_errors.items())],
        )
        return out.text()

    def _repr_html_(self) -> str:
        g = dataclasses.asdict(self.gauges)
        g.pop("workers")
        rows = {**g, **dataclasses.asdict(self.counters)}
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(repr(v))}</td></tr>"
            for k, v in rows.items()
        )
        return f"<table><caption>Metrics at {self.at_ms}</caption>{body}</table>"


def counters() -> Counters:
    """The process-wide counters alone (no database read)."""
    return Counters._from(_native.metrics_counters())


def set_core_log_level(level: str) -> None:
    """Lowest level of core events forwarded to :mod:`logging` (default ``"INFO"``;
    ``"DEBUG"`` adds e.g. ignored Telegram updates and provider answers that only
    say a resource is gone). Python logger levels still filter as usual."""
    _native.set_core_log_level(level)


class MetricsServer:
    """``GET /metrics`` (Prometheus text) from a stdlib HTTP server thread.

    ``render`` produces the body on every scrape (e.g.
    ``lambda: factory.metrics().to_prometheus()``); any other path is 404, any
    other method 405. ``port=0`` binds a free port (see :attr:`port`). Use as a
    context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, render: Callable[[], str], *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            from .errors import ValidationError

            raise ValidationError(f"metrics port must be an integer within 0..=65535, got {port!r}")
        self._render = render
        handler = _handler_class(render)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        """Serve in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="agent-factory-metrics", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_class(render: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "agent-factory-metrics"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")
                return
            try:
                body = render().encode("utf-8")
            except Exception as e:  # a scrape must not kill the server
                log.warning("rendering metrics failed: %s: %s", type(e).__name__, e)
                self._send(500, "text/plain; charset=utf-8", f"metrics unavailable: {type(e).__name__}\n".encode())
                return
            self._send(200, PROMETHEUS_CONTENT_TYPE, body)

        def do_HEAD(self) -> None:
            self._send(405, "text/plain; charset=utf-8", b"")

        def do_POST(self) -> None:
            self._send(405, "text/plain; charset=utf-8", b"method not allowed\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 405:
                self.send_header("Allow", "GET")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    return Handler
