"""``agent-factory worker`` (the worker runtime) and ``agent-factory serve`` (the
pool control loop). Both keep their own exit codes (see their ``--help``): a
missing database is bad usage (2) for them, since a worker or loop given a wrong
path must never start on a fresh empty file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from ..errors import AgentFactoryError, ValidationError
from ._common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Output

__all__ = ["register"]


def _env(*names: str) -> str | None:
    """The first of ``names`` set to a non-empty value in the environment."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_int(name: str) -> int | None:
    """``$name`` as an integer, ``None`` when unset."""
    value = _env(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{name} must be an integer, got {value!r}") from None


def _cmd_worker(args: argparse.Namespace, out: Output) -> int:
    """``agent-factory worker``: run :class:`agent_factory.Worker` until it stops."""
    from ..worker import EXIT_FAILED, Worker

    db = getattr(args, "db", None)
    if not db:
        raise ValidationError("worker needs --db PATH or AGENT_FACTORY_DB")
    if not os.path.exists(db):
        raise ValidationError(f"no database at {db}")
    handler = args.handler or _env("AGENT_FACTORY_HANDLER")
    if not handler:
        raise ValidationError("worker needs --handler module:function or AGENT_FACTORY_HANDLER")
    worker_id = args.worker_id or _env("AGENT_FACTORY_WORKER_ID", "WORKER_ID") or f"afw-{int(time.time() * 1000)}"
    idle_timeout = args.idle_timeout_ms if args.idle_timeout_ms is not None else _env_int("WORKER_IDLE_TIMEOUT_MS")
    poll_max = args.poll_interval_ms if args.poll_interval_ms is not None else _env_int("POLL_INTERVAL_MS")
    heartbeat = args.heartbeat_interval_ms if args.heartbeat_interval_ms is not None else _env_int("HEARTBEAT_INTERVAL_MS")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    worker = Worker(
        db,
        worker_id,
        handler,
        mode=args.mode,
        data_dir=args.data_dir or _env("AGENT_FACTORY_DATA_DIR"),
        workspace_id=args.workspace_id or _env("WORKSPACE_ID") or "default",
        conversation_id=args.conversation_id or _env("OPENCLAW_CONVERSATION_ID"),
        agent_key=args.agent_key or _env("OPENCLAW_AGENT_KEY"),
        max_jobs=args.max_jobs,
        idle_timeout_ms=idle_timeout,
        poll_max_ms=poll_max if poll_max is not None else 2000,
        heartbeat_interval_ms=heartbeat,
        restore=not args.no_restore,
    )
    try:
        result = worker.run()
    except ValidationError:
        raise  # bad configuration (e.g. a malformed worker id): usage, exit 2
    except AgentFactoryError as e:
        print(f"agent-factory worker {worker_id}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # a second SIGINT: stop at once, the lease recovers the job
        print(f"agent-factory worker {worker_id}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if getattr(args, "json", False):
        print(json.dumps(result.to_dict(), indent=2))
    else:
        snapshot = result.final_snapshot.snapshot_id if result.final_snapshot else result.snapshot_error or "none"
        print(
            f"worker {worker_id} stopped ({result.exit_reason}): {result.jobs_completed} completed, "
            f"{result.jobs_failed} failed, {result.leases_lost} leases lost; final snapshot: {snapshot}",
            file=sys.stderr,
        )
    return result.exit_code


def _cmd_serve(args: argparse.Namespace, out: Output) -> int:
    """``agent-factory serve``: run the pool control loop until a signal."""
    from ..errors import NotFoundError
    from ..serve import ServeOptions, serve

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    options = ServeOptions(
        db=getattr(args, "db", None) or "",
        provider=args.provider,
        handler=args.handler or _env("AGENT_FACTORY_HANDLER"),
        tick_ms=args.tick_ms,
        max_ticks=args.max_ticks,
        json_lines=bool(getattr(args, "json", False)),
        holder=args.holder,
        lease_ttl_ms=args.lease_ttl_ms,
        workspace_id=args.workspace_id,
        max_workers=args.max_workers,
        idle_timeout_ms=args.idle_timeout_ms,
        reconcile_interval_ms=args.reconcile_interval_ms,
        fly_app=args.fly_app,
        fly_base_url=args.fly_base_url or _env("AGENT_FACTORY_FLY_BASE_URL"),
        fly_api_token=_env("FLY_API_TOKEN"),
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )
    try:
        serve(options)
    except NotFoundError as e:  # e.g. no Fly token or app configured: a usage problem
        print(f"agent-factory serve: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``worker`` and ``serve`` to the subcommands."""
    worker = sub.add_parser(
        "worker",
        parents=[common],
        help="run the worker runtime: claim, handle, complete, snapshot on exit",
        description=(
            "Run agent_factory.Worker until the control state says stop, a signal arrives (SIGTERM/SIGINT: "
            "finish the job, snapshot, exit 0), the idle timeout passes or --max-jobs are handled. Each option "
            "falls back to the environment variable named in its help. Exit codes: 0 stopped cleanly, 1 failed, "
            "2 bad usage, 3 stopped but the final snapshot failed."
        ),
    )
    worker.add_argument("--worker-id", help="worker id (env AGENT_FACTORY_WORKER_ID, then WORKER_ID; default afw-<now ms>)")
    worker.add_argument("--handler",
                        help="handler as module:function (env AGENT_FACTORY_HANDLER), e.g. agent_factory.worker:echo_handler")
    worker.add_argument("--mode", choices=["sticky", "pooled"], default="sticky", help="sticky (default) or pooled")
    worker.add_argument("--data-dir",
                        help="state directory, snapshotted on exit (env AGENT_FACTORY_DATA_DIR; default a temporary one)")
    worker.add_argument("--workspace-id", help="workspace (env WORKSPACE_ID; default 'default')")
    worker.add_argument("--conversation-id",
                        help="pinned conversation (env OPENCLAW_CONVERSATION_ID); its snapshot is restored on start")
    worker.add_argument("--agent-key", help="agent of the pinned conversation (env OPENCLAW_AGENT_KEY)")
    worker.add_argument("--max-jobs", type=int, help="stop after handling this many messages")
    worker.add_argument("--idle-timeout-ms", type=int, help="stop after this long without a claim (env WORKER_IDLE_TIMEOUT_MS)")
    worker.add_argument("--poll-interval-ms", type=int, help="longest idle poll interval (env POLL_INTERVAL_MS; default 2000)")
    worker.add_argument("--heartbeat-interval-ms", type=int, help="lease heartbeat period (env HEARTBEAT_INTERVAL_MS)")
    worker.add_argument("--no-restore", action="store_true", help="do not restore the pinned conversation's snapshot on start")
    worker.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    worker.set_defaults(run=_cmd_worker)
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="run the pool control loop: reconcile, idle shutdown, lease recovery, snapshot expiry",
        description=(
            "Run the pool control loop until SIGINT or SIGTERM (or --max-ticks), then release its database "
            "lease and exit 0. Every tick recovers expired job leases; a reconcile runs at start, every "
            "scaling reconcile interval and as soon as queued conversations need workers; idle workers are "
            "drained, snapshotted and torn down when due; expired snapshots are swept every minute. Any "
            "number of serve processes may share one database: only the holder of the 'pool.control' lease "
            "acts, a standby takes over when it stops (at once) or dies (after --lease-ttl-ms). Output: one "
            "JSON line per tick that did something with --json, log lines on stderr otherwise. Exit codes: "
            "0 stopped, 1 failed, 2 bad usage."
        ),
    )
    serve.add_argument("--provider", choices=["local", "fly", "stored"], default="local",
                       help="local worker processes (default), Fly Machines, or the kind of the stored provider config")
    serve.add_argument("--handler", help="local workers' handler as module:function (env AGENT_FACTORY_HANDLER; "
                       "default agent_factory.worker:echo_handler)")
    serve.add_argument("--tick-ms", type=int, default=500, help="longest pause between ticks (default 500)")
    serve.add_argument("--max-ticks", type=int, help="stop after this many ticks")
    serve.add_argument("--holder", help="lease holder id, also sent as Fly User-Agent (default hostname:pid:random)")
    serve.add_argument("--lease-ttl-ms", type=int, default=30_000,
                       help="control lease time: a crashed loop is replaced after this long (default 30000)")
    serve.add_argument("--workspace-id", default="default", help="workspace passed to spawned workers")
    serve.add_argument("--max-workers", type=int, help="scaling: most live workers (default from the config)")
    serve.add_argument("--idle-timeout-ms", type=int, help="scaling: idle time before a worker drains")
    serve.add_argument("--reconcile-interval-ms", type=int, help="scaling: time between periodic reconciles")
    serve.add_argument("--fly-app", help="Fly app (default: the stored provider config's)")
    serve.add_argument("--fly-base-url", help="Machines API base URL (env AGENT_FACTORY_FLY_BASE_URL); the "
                       "API token is FLY_API_TOKEN or the active fly.apiToken secret")
    serve.add_argument("--metrics-port", type=int, metavar="PORT",
                       help="serve Prometheus metrics on GET /metrics at this port (0: a free one, logged)")
    serve.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                       help="address of the metrics endpoint (default 127.0.0.1)")
    serve.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    serve.set_defaults(run=_cmd_serve)
