"""The ``agent-factory`` command line.

Commands:

- ``demo``: the whole system on one machine (a temporary database, a demo
  agent, messages over many conversations in waves, the pool spawning local
  worker processes that drain when idle, snapshot and stop, and restore the
  snapshots when their conversation comes back) with a report of the checks;
  ``--in-process`` runs the queue benchmark instead (thousands of messages,
  pooled worker threads in this process);
- ``serve``: run the pool control loop (lease recovery, reconcile on demand and
  periodically, idle shutdown, snapshot expiry) until SIGINT/SIGTERM; several
  ``serve`` processes may share a database — a database lease lets one act at a
  time and a standby takes over when it stops or dies (see
  ``agent-factory serve --help`` and :mod:`agent_factory.serve`);
- ``status``: queue counters and workers of a database;
- ``worker``: run the worker runtime (:class:`agent_factory.Worker`) with a
  handler given as ``module:function``; every option falls back to the worker
  environment the pool's local provider sets (see ``agent-factory worker --help``).

Exit codes: 0 success, 1 a check failed (e.g. the demo saw an ordering
violation) or the worker failed, 2 bad usage or input, 3 the worker stopped but
its final snapshot failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import AgentFactoryError, Factory, ValidationError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass
class DemoResult:
    """What the demo measured."""

    messages: int
    conversations: int
    workers: int
    done: int
    dead_letter: int
    duplicates: int
    order_violations: int
    enqueue_seconds: float
    drain_seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    per_worker: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.done == self.messages and self.duplicates == 0 and self.order_violations == 0

    def percentile(self, q: float) -> float:
        from .demo import latency_percentile

        return latency_percentile(self.latencies_ms, q)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "in_process",
            "messages": self.messages,
            "conversations": self.conversations,
            "workers": self.workers,
            "done": self.done,
            "dead_letter": self.dead_letter,
            "duplicates": self.duplicates,
            "order_violations": self.order_violations,
            "order_verified": self.order_violations == 0 and self.duplicates == 0,
            "enqueue_seconds": round(self.enqueue_seconds, 4),
            "drain_seconds": round(self.drain_seconds, 4),
            "enqueue_per_second": round(self.messages / self.enqueue_seconds) if self.enqueue_seconds else None,
            "drain_per_second": round(self.done / self.drain_seconds) if self.drain_seconds else None,
            "claim_to_complete_p50_ms": round(self.percentile(0.50), 3),
            "claim_to_complete_p99_ms": round(self.percentile(0.99), 3),
            "per_worker": self.per_worker,
            "ok": self.ok,
        }


def run_demo(
    factory: Factory,
    *,
    messages: int,
    conversations: int,
    workers: int,
    batch: int = 500,
    on_progress: Any = None,
) -> DemoResult:
    """Enqueue ``messages`` over ``conversations`` and drain them with ``workers`` pooled
    worker threads; verify that each conversation was processed in order, exactly once."""
    factory.agents.upsert_agent("demo-agent", version="1.0.0", secrets_ref=[])
    started = time.perf_counter()
    items = [
        {
            "conversation_id": f"demo:conversation:{i % conversations}",
            "agent_key": "demo-agent",
            "payload": {
                "provider": "demo",
                "providerUserId": f"user-{i % conversations}",
                "messageText": f"message {i // conversations} of conversation {i % conversations}",
                "metadata": {"seq": str(i // conversations)},
            },
        }
        for i in range(messages)
    ]
    for start in range(0, messages, batch):
        factory.queue.enqueue_many(items[start : start + batch])
    enqueue_seconds = time.perf_counter() - started

    seen: dict[str, list[int]] = defaultdict(list)
    latencies: list[float] = []
    per_worker: dict[str, int] = {}
    lock = threading.Lock()

    def work(worker_id: str) -> None:
        handle = factory.worker(worker_id, mode="pooled")
        count, local_latencies, idle_polls = 0, [], 0
        claim = handle.claim()
        while True:
            if claim is None:
                # Nothing claimable right now: other workers hold the remaining conversations.
                s = factory.queue.stats()
                if s.queued_ready + s.queued_delayed + s.processing == 0:
                    break
                idle_polls += 1
                time.sleep(0.0005)
                claim = handle.claim()
                continue
            t0 = time.perf_counter()
            seq = int(claim.payload["metadata"]["seq"])  # the handler reads its message
            with lock:
                seen[claim.conversation_id].append(seq)
            claim_next = handle.complete(claim, claim_next=True)
            local_latencies.append((time.perf_counter() - t0) * 1000)
            count += 1
            if on_progress is not None:
                on_progress(1)
            claim = claim_next
        with lock:
            latencies.extend(local_latencies)
            per_worker[worker_id] = count

    drain_started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(f"demo-worker-{n}",), daemon=True) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drain_seconds = time.perf_counter() - drain_started

    duplicates = sum(len(s) - len(set(s)) for s in seen.values())
    violations = sum(1 for s in seen.values() for a, b in zip(s, s[1:]) if b <= a)
    stats = factory.queue.stats()
    done = sum(len(set(s)) for s in seen.values())
    return DemoResult(
        messages=messages,
        conversations=conversations,
        workers=workers,
        done=done,
        dead_letter=stats.dead_letter,
        duplicates=duplicates,
        order_violations=violations,
        enqueue_seconds=enqueue_seconds,
        drain_seconds=drain_seconds,
        latencies_ms=latencies,
        per_worker=dict(sorted(per_worker.items())),
    )


#: Defaults of ``demo`` (pool mode) and ``demo --in-process``: messages, conversations, workers.
_DEMO_SIZES = {"pool": (400, 20, 8), "in_process": (5000, 300, 4)}


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    messages, conversations, workers = _DEMO_SIZES["in_process" if args.in_process else "pool"]
    args.messages = messages if args.messages is None else args.messages
    args.conversations = conversations if args.conversations is None else args.conversations
    args.workers = workers if args.workers is None else args.workers
    if args.messages < 1 or args.conversations < 1 or args.workers < 1:
        raise ValidationError("--messages, --conversations and --workers must be positive")
    if not args.in_process:
        return _cmd_pool_demo(args, console)
    with tempfile.TemporaryDirectory(prefix="agent-factory-demo-") as tmp:
        path = args.db or os.path.join(tmp, "demo.db")
        factory = Factory(path, durable=args.durable)
        if args.json:
            result = run_demo(factory, messages=args.messages, conversations=args.conversations, workers=args.workers)
        else:
            console.print(
                f"[bold]agent-factory demo[/]: {args.messages} messages over {args.conversations} conversations, "
                f"{args.workers} pooled workers, database {path} ({'durable' if args.durable else 'default durability'})"
            )
            with Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as progress:
                task = progress.add_task("processing", total=args.messages)
                result = run_demo(
                    factory,
                    messages=args.messages,
                    conversations=args.conversations,
                    workers=args.workers,
                    on_progress=lambda n: progress.advance(task, n),
                )
    report = result.to_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        table = Table(title="demo report", show_header=False)
        for key in (
            "done", "dead_letter", "duplicates", "order_verified", "enqueue_per_second", "drain_per_second",
            "claim_to_complete_p50_ms", "claim_to_complete_p99_ms",
        ):
            table.add_row(key.replace("_", " "), str(report[key]))
        table.add_row("messages per worker", ", ".join(f"{k}={v}" for k, v in report["per_worker"].items()))
        console.print(table)
        console.print("[green]OK[/]: every message done once, each conversation in order" if result.ok else "[red]FAILED[/]")
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


def _pool_demo_table(report: dict[str, Any]) -> Table:
    """The human report of the pool demo."""
    from .demo import summarize_per_worker

    table = Table(title="demo report", show_header=False)
    rows = [
        ("messages done", f"{report['done']} of {report['messages']} ({report['dead_letter']} dead-lettered)"),
        ("order verified", str(report["order_verified"])),
        ("duplicates / retried", f"{report['duplicates']} / {report['retried']}"),
        ("workers spawned", str(report["workers_spawned"])),
        ("workers stopped", f"{report['workers_stopped']}" + (
            " (" + ", ".join(f"{k} {v}" for k, v in report["stop_reasons"].items()) + ")" if report["stop_reasons"] else ""
        )),
        ("workers left running", str(report["workers_left_running"])),
        ("snapshots taken", f"{report['snapshots_taken']} ({report['snapshots_failed']} failed, "
         f"{report['snapshots_missing']} missing)"),
        ("restores verified", f"{report['restores_verified']} of {report['restores_expected']}"),
        ("enqueue per second", str(report["enqueue_per_second"])),
        ("drain per second", f"{report['drain_per_second']} (incl. worker start-up)"),
        ("claim to complete p50 ms", str(report["claim_to_complete_p50_ms"])),
        ("claim to complete p99 ms", str(report["claim_to_complete_p99_ms"])),
        ("messages per worker", summarize_per_worker(report["per_worker"])),
        ("total seconds", str(report["total_seconds"])),
    ]
    if report["pool_errors"]:
        rows.append(("pool errors (retried)", "; ".join(report["pool_errors"])))
    for key, value in rows:
        table.add_row(key, value)
    return table


def _cmd_pool_demo(args: argparse.Namespace, console: Console) -> int:
    """``agent-factory demo``: the pool with local worker processes (see :mod:`agent_factory.demo`)."""
    import signal

    from .demo import DemoProgress, PoolDemo

    if args.waves < 1 or args.idle_timeout_ms < 1 or args.timeout <= 0:
        raise ValidationError("--waves, --idle-timeout-ms and --timeout must be positive")
    if args.db and os.path.exists(args.db):
        raise ValidationError(f"{args.db} exists; the demo needs a fresh database")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # stop like Ctrl-C: drain and tear down every worker

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="agent-factory-demo-") as tmp:
            path = args.db or os.path.join(tmp, "demo.db")
            factory = Factory(path, durable=args.durable)
            options = dict(
                messages=args.messages, conversations=args.conversations, workers=args.workers,
                waves=args.waves, idle_timeout_ms=args.idle_timeout_ms, timeout_s=args.timeout,
            )
            if args.json:
                result = PoolDemo(factory, **options).run()
            else:
                console.print(
                    f"[bold]agent-factory demo[/]: {args.messages} messages over {args.conversations} conversations "
                    f"in {args.waves} wave(s); the pool runs at most {args.workers} local worker processes "
                    f"(idle timeout {args.idle_timeout_ms} ms); database {path}"
                )
                with Progress(
                    TextColumn("[progress.description]{task.description}"),
                    BarColumn(bar_width=24),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                    transient=False,
                ) as progress:
                    task = progress.add_task("starting", total=args.messages)

                    def show(p: DemoProgress) -> None:
                        stage = "stopping" if p.stopping else f"wave {p.wave}/{p.waves}"
                        progress.update(
                            task,
                            completed=p.done,
                            description=f"{stage} · workers {p.running} up {p.stopped} stopped · {p.snapshots} snapshots",
                        )

                    result = PoolDemo(factory, on_progress=show, **options).run()
    except KeyboardInterrupt:  # while checking: every worker has stopped already
        print("agent-factory demo: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    report = result.to_dict()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        console.print(_pool_demo_table(report))
        if result.interrupted and not report["workers_left_running"]:
            console.print("[yellow]interrupted[/]: every worker was drained and stopped")
        elif result.interrupted:
            console.print("[red]interrupted[/]: " + "; ".join(result.problems))
        elif result.ok:
            console.print(
                "[green]OK[/]: every message handled once and in order, every worker snapshotted and stopped, "
                "snapshots restored by the next workers"
            )
        else:
            console.print("[red]FAILED[/]: " + "; ".join(result.problems))
    if result.interrupted:
        return 130
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


def _cmd_status(args: argparse.Namespace, console: Console) -> int:
    if not args.db:
        raise ValidationError("status needs --db PATH or AGENT_FACTORY_DB")
    if not os.path.exists(args.db):
        raise ValidationError(f"no database at {args.db}")
    f = Factory(args.db)
    stats = f.queue.stats()
    workers = f.workers.stats()
    dead = f.queue.list_jobs("dead_letter", limit=10)
    data = {
        "queue": stats.to_dict(),
        "workers": workers.to_dict(),
        "dead_letters": [{"message_id": j.message_id, "conversation_id": j.conversation_id, "last_error": j.last_error} for j in dead],
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    table = Table(title=f"queue {args.db}", show_header=False)
    for k, v in data["queue"].items():
        table.add_row(k.replace("_", " "), str(v))
    for status, n in workers.by_status.items():
        table.add_row(f"workers {status}", str(n))
    console.print(table)
    if dead:
        dl = Table(title="recent dead letters")
        for col in ("message", "conversation", "last error"):
            dl.add_column(col)
        for j in dead:
            dl.add_row(j.message_id, j.conversation_id, j.last_error or "")
        console.print(dl)
    return EXIT_OK


def _env(*names: str) -> str | None:
    """The first of ``names`` set to a non-empty value in the environment."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _env_int(name: str) -> int | None:
    value = _env(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{name} must be an integer, got {value!r}") from None


def _cmd_worker(args: argparse.Namespace, console: Console) -> int:
    from .worker import EXIT_FAILED, Worker

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
        return 130
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


def _cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from .errors import NotFoundError
    from .serve import ServeOptions, serve

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-factory", description="Control plane for fleets of chat agents.")
    parser.add_argument("--db", default=os.environ.get("AGENT_FACTORY_DB"), help="database path (env AGENT_FACTORY_DB)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    # The same options after the subcommand; SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="database path (env AGENT_FACTORY_DB)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="run the whole system on one machine (or --in-process: the queue benchmark) and report",
        description=(
            "By default: a temporary database, a demo agent and messages over many conversations sent in "
            "waves; the pool spawns local worker processes (one per active conversation, at most --workers), "
            "idle workers drain, upload a final snapshot and stop, and the next wave's workers restore those "
            "snapshots. The report checks that every message was handled once and in order (from the final "
            "snapshots), that every worker left a snapshot and that no worker is left running. "
            "--in-process instead drains the queue with pooled worker threads in this process (a benchmark). "
            "Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage, 130 interrupted."
        ),
    )
    demo.add_argument("--in-process", action="store_true", help="the queue benchmark: pooled worker threads in this process")
    demo.add_argument("--messages", type=int, help="messages to send (default 400; 5000 with --in-process)")
    demo.add_argument("--conversations", type=int, help="conversations they go to (default 20; 300 with --in-process)")
    demo.add_argument("--workers", type=int, help="most worker processes at once (default 8; threads with --in-process: 4)")
    demo.add_argument("--waves", type=int, default=2, help="send the messages in this many waves, each after the pool stopped (default 2)")
    demo.add_argument("--idle-timeout-ms", type=int, default=5000, help="an idle worker drains after this long (default 5000)")
    demo.add_argument("--timeout", type=float, default=180.0, help="give up (and fail) after this many seconds (default 180)")
    demo.add_argument("--durable", action="store_true", help="fsync every commit (synchronous=FULL)")
    demo.set_defaults(run=_cmd_demo)
    status = sub.add_parser("status", parents=[common], help="queue counters, workers and dead letters")
    status.set_defaults(run=_cmd_status)
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
    worker.add_argument("--handler", help="handler as module:function (env AGENT_FACTORY_HANDLER), e.g. agent_factory.worker:echo_handler")
    worker.add_argument("--mode", choices=["sticky", "pooled"], default="sticky", help="sticky (default) or pooled")
    worker.add_argument("--data-dir", help="state directory, snapshotted on exit (env AGENT_FACTORY_DATA_DIR; default a temporary one)")
    worker.add_argument("--workspace-id", help="workspace (env WORKSPACE_ID; default 'default')")
    worker.add_argument("--conversation-id", help="pinned conversation (env OPENCLAW_CONVERSATION_ID); its snapshot is restored on start")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agent-factory`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    try:
        return int(args.run(args, console))
    except ValidationError as e:
        print(f"agent-factory: {e}", file=sys.stderr)
        return EXIT_USAGE
    except AgentFactoryError as e:
        print(f"agent-factory: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
