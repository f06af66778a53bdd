"""``agent-factory serve``: the pool control loop as a long-running process.

:func:`serve` opens the database, builds the provider (local worker processes,
Fly Machines, or whatever the stored provider config names) and runs
``factory.pool.run`` until SIGINT or SIGTERM (or ``max_ticks``), then releases
the control lease so a standby ``serve`` elsewhere takes over at once. Any
number of ``serve`` processes may point at one database: the ``pool.control``
lease lets exactly one act; the others wait and take over when it stops (at
once) or dies (after the lease TTL).

Output: with ``json_lines`` one JSON object per tick that did something
(:meth:`TickReport.to_dict`) on stdout; otherwise human log lines through
:mod:`logging` (logger ``agent_factory.serve``) on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from ._control_types import ControlRun, TickReport
from ._sync_api import Factory
from .config import FlyProvider, LocalProvider, ScalingPolicy
from .errors import ValidationError

__all__ = ["ServeOptions", "serve", "DEFAULT_HANDLER", "PROVIDER_KINDS"]

log = logging.getLogger("agent_factory.serve")

#: Handler of local workers unless one is given.
DEFAULT_HANDLER = "agent_factory.worker:echo_handler"
#: Accepted ``--provider`` values.
PROVIDER_KINDS = ("local", "fly", "stored")


@dataclass(frozen=True)
class ServeOptions:
    """What ``agent-factory serve`` was asked to do (see ``agent-factory serve --help``)."""

    db: str
    provider: str = "local"
    handler: str | None = None
    tick_ms: int = 500
    max_ticks: int | None = None
    json_lines: bool = False
    holder: str | None = None
    lease_ttl_ms: int = 30_000
    workspace_id: str = "default"
    max_workers: int | None = None
    idle_timeout_ms: int | None = None
    reconcile_interval_ms: int | None = None
    fly_app: str | None = None
    fly_base_url: str | None = None
    fly_api_token: str | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


def _provider(factory: Factory, o: ServeOptions) -> LocalProvider | FlyProvider:
    kind = o.provider
    if kind not in PROVIDER_KINDS:
        raise ValidationError(f"--provider must be one of {', '.join(PROVIDER_KINDS)}, got {kind!r}")
    if kind == "stored":
        stored = factory.config.provider_config()
        kind = stored.kind if stored is not None else "local"
    if kind == "fly":
        return FlyProvider(app_name=o.fly_app, base_url=o.fly_base_url, api_token=o.fly_api_token)
    return LocalProvider(handler=o.handler or DEFAULT_HANDLER)


def _scaling(factory: Factory, o: ServeOptions) -> ScalingPolicy:
    base = factory.config.tunables().scaling
    overrides = {
        k: v
        for k, v in (
            ("max_workers", o.max_workers),
            ("idle_timeout_ms", o.idle_timeout_ms),
            ("reconcile_interval_ms", o.reconcile_interval_ms),
        )
        if v is not None
    }
    return ScalingPolicy(**{**base.to_dict(), **overrides})


class _Output:
    """Per-tick output: JSON lines, or log lines for ticks that matter."""

    def __init__(self, json_lines: bool, out: TextIO) -> None:
        self.json_lines = json_lines
        self.out = out
        self.acting: bool | None = None

    def __call__(self, report: TickReport) -> None:
        if self.json_lines:
            if report.did_something:
                self.out.write(json.dumps(report.to_dict(), sort_keys=True) + "\n")
                self.out.flush()
            return
        if report.acting != self.acting and not report.acting and not report.lost_lease:
            log.info("standby: the control lease is held by %s", report.lease_holder or "nobody")
        self.acting = report.acting
        if report.did_something:
            level = logging.WARNING if report.errors or report.lost_lease else logging.INFO
            log.log(level, "%s", report.summary())


def serve(options: ServeOptions, *, out: TextIO | None = None, stop: threading.Event | None = None) -> ControlRun:
    """Run the control loop on ``options.db`` until SIGINT/SIGTERM, ``stop`` or
    ``max_ticks``; the lease is released before this returns.

    Signal handlers are installed only when called from the main thread (and
    restored afterwards). Raises :class:`ValidationError` for bad options."""
    if not options.db:
        raise ValidationError("serve needs --db PATH or AGENT_FACTORY_DB")
    parent = os.path.dirname(os.path.abspath(options.db))
    if not os.path.isdir(parent):
        raise ValidationError(f"no directory {parent} for the database {options.db}")
    factory = Factory(options.db)
    provider = _provider(factory, options)
    scaling = _scaling(factory, options)
    stop = stop if stop is not None else threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the current tick", signal.Signals(signum).name)
        stop.set()

    metrics_server = None
    if options.metrics_port is not None:
        from .metrics import MetricsServer

        metrics_server = MetricsServer(
            lambda: factory.metrics().to_prometheus(), host=options.metrics_host, port=options.metrics_port
        ).start()
        log.info("metrics on %s", metrics_server.url)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        loop = factory.pool.control_loop(
            provider=provider,
            scaling=scaling,
            workspace_id=options.workspace_id,
            holder=options.holder,
            lease_ttl_ms=options.lease_ttl_ms,
        )
        kind = "fly" if isinstance(provider, FlyProvider) else "local"
        log.info(
            "serving %s as %s (provider %s, tick %d ms, lease TTL %d ms, max workers %d)",
            options.db, loop.holder, kind, options.tick_ms, options.lease_ttl_ms, scaling.max_workers,
        )
        with loop:
            result = loop.run(
                tick_ms=options.tick_ms,
                stop=stop,
                max_ticks=options.max_ticks,
                on_tick=_Output(options.json_lines, out or sys.stdout),
            )
        log.info("stopped (%s) after %d ticks, %d acting; lease released", result.reason, result.ticks, result.acting_ticks)
        return result
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_server is not None:
            metrics_server.stop()
