"""``agent-factory demo``: the whole system on one machine (the pool with local
worker processes, see :mod:`agent_factory.demo`), or with ``--in-process`` the
queue benchmark (pooled worker threads in this process)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from .._sync_api import Factory
from ..errors import ValidationError
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Output

__all__ = ["DemoResult", "run_demo", "register"]


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
        """Every message done once, each conversation in order."""
        return self.done == self.messages and self.duplicates == 0 and self.order_violations == 0

    def percentile(self, q: float) -> float:
        """The ``q`` quantile of the claim-to-complete latencies (ms)."""
        from ..demo import latency_percentile

        return latency_percentile(self.latencies_ms, q)

    def to_dict(self) -> dict[str, Any]:
        """The report printed by ``demo --in-process --json``."""
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
    violations = sum(1 for s in seen.values() for a, b in itertools.pairwise(s) if b <= a)
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


def _cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """``agent-factory demo``: the pool demo, or with ``--in-process`` the queue benchmark."""
    console = out.out
    messages, conversations, workers = _DEMO_SIZES["in_process" if args.in_process else "pool"]
    args.messages = messages if args.messages is None else args.messages
    args.conversations = conversations if args.conversations is None else args.conversations
    args.workers = workers if args.workers is None else args.workers
    if args.messages < 1 or args.conversations < 1 or args.workers < 1:
        raise ValidationError("--messages, --conversations and --workers must be positive")
    if not args.in_process:
        return _cmd_pool_demo(args, out)
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
            with out.bar("processing", args.messages) as (progress, task):
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
    return EXIT_OK if result.ok else EXIT_FAILED


def _pool_demo_table(report: dict[str, Any]) -> Table:
    """The human report of the pool demo."""
    from ..demo import summarize_per_worker

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


def _cmd_pool_demo(args: argparse.Namespace, out: Output) -> int:
    """``agent-factory demo``: the pool with local worker processes (see :mod:`agent_factory.demo`)."""
    import signal

    from ..demo import DemoProgress, PoolDemo

    console = out.out

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
                with out.bar("starting", args.messages) as (progress, task):

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
        return EXIT_INTERRUPTED
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
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``demo`` to the subcommands."""
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
    demo.add_argument("--waves", type=int, default=2,
                      help="send the messages in this many waves, each after the pool stopped (default 2)")
    demo.add_argument("--idle-timeout-ms", type=int, default=5000, help="an idle worker drains after this long (default 5000)")
    demo.add_argument("--timeout", type=float, default=180.0, help="give up (and fail) after this many seconds (default 180)")
    demo.add_argument("--durable", action="store_true", help="fsync every commit (synchronous=FULL)")
    demo.set_defaults(run=_cmd_demo)
