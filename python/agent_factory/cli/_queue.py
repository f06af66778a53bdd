"""``agent-factory status`` and ``agent-factory jobs list|show|requeue``: the queue
as an operator sees it."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from ..errors import NotFoundError
from ._common import EXIT_OK, Output, cell, fmt_age, fmt_ms, kv_table, open_factory, positive_int, rows_table

__all__ = ["register", "JOB_STATUSES"]

#: Message statuses, in the order ``jobs list`` shows them without ``--status``.
JOB_STATUSES = ("queued", "processing", "dead_letter", "done")

_JOB_COLUMNS = ("message", "conversation", "agent", "status", "priority", "attempts", "created", "last error")


def _job_row(job: Any) -> list[Any]:
    return [
        job.message_id, job.conversation_id, job.agent_key, job.status, job.priority,
        f"{job.attempts}/{job.max_attempts}", fmt_ms(job.created_at), job.last_error,
    ]


def _cmd_status(args: argparse.Namespace, out: Output) -> int:
    """Queue counters with the oldest ready message's age, workers by status, dead letters."""
    factory = open_factory(args)
    now = factory.now_ms()
    stats = factory.queue.stats(now_ms=now)
    workers = factory.workers.stats()
    dead = factory.queue.list_jobs("dead_letter", limit=args.dead_letters)
    oldest_age = None if stats.oldest_ready_at is None else max(0, now - stats.oldest_ready_at)
    data = {
        "now_ms": now,
        "queue": {**stats.to_dict(), "oldest_ready_age_ms": oldest_age},
        "workers": workers.to_dict(),
        "dead_letters": [j.to_dict() for j in dead],
    }

    def render(console: Console) -> None:
        rows: list[tuple[str, Any]] = [
            ("queued ready", stats.queued_ready),
            ("queued delayed", stats.queued_delayed),
            ("processing", stats.processing),
            ("dead letter", stats.dead_letter),
            ("oldest ready message",
             "-" if oldest_age is None else f"{fmt_age(oldest_age)} old ({fmt_ms(stats.oldest_ready_at)})"),
            ("workers active busy / idle", f"{workers.active_count} / {workers.idle_count}"),
        ]
        rows += [(f"workers {status}", n) for status, n in sorted(workers.by_status.items())]
        console.print(kv_table(f"queue {factory.info()['path']}", rows))
        if dead:
            console.print(rows_table(
                f"recent dead letters ({len(dead)} of {stats.dead_letter})",
                ("message", "conversation", "agent", "attempts", "finished", "last error"),
                ([j.message_id, j.conversation_id, j.agent_key, j.attempts, fmt_ms(j.finished_at), j.last_error] for j in dead),
            ))

    out.emit(data, render)
    return EXIT_OK


def _cmd_jobs_list(args: argparse.Namespace, out: Output) -> int:
    """Messages of one status, or of every status (newest first) without ``--status``."""
    factory = open_factory(args)
    if args.status:
        jobs = list(factory.queue.list_jobs(args.status, limit=args.limit))
    else:
        every = [j for s in JOB_STATUSES for j in factory.queue.list_jobs(s, limit=args.limit)]
        every.sort(key=lambda j: (j.created_at, j.message_id), reverse=True)
        jobs = every[: args.limit]
    title = f"{args.status or 'all'} messages ({len(jobs)})"
    out.emit([j.to_dict() for j in jobs], lambda c: c.print(rows_table(title, _JOB_COLUMNS, map(_job_row, jobs))))
    return EXIT_OK


def _job_details(job: Any) -> list[tuple[str, Any]]:
    return [
        ("message", job.message_id), ("conversation", job.conversation_id), ("agent", job.agent_key),
        ("status", job.status), ("priority", job.priority), ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("scheduled for", fmt_ms(job.scheduled_for)), ("next retry", fmt_ms(job.next_retry_at)),
        ("claimed by", job.claimed_by), ("lease expires", fmt_ms(job.lease_expires_at)),
        ("created", fmt_ms(job.created_at)), ("finished", fmt_ms(job.finished_at)),
        ("last error", job.last_error), ("payload", job.payload),
    ]


def _cmd_jobs_show(args: argparse.Namespace, out: Output) -> int:
    """One message with its payload."""
    job = open_factory(args).queue.get_job(args.message_id)
    if job is None:
        raise NotFoundError(f"message {args.message_id!r} not found")
    out.emit(job.to_dict(), lambda c: c.print(kv_table(f"message {job.message_id}", _job_details(job))))
    return EXIT_OK


def _cmd_jobs_requeue(args: argparse.Namespace, out: Output) -> int:
    """Put a dead-lettered message back in its conversation's queue."""
    job = open_factory(args).queue.requeue(args.message_id)

    def render(console: Console) -> None:
        console.print(cell(f"requeued message {job.message_id} of conversation {job.conversation_id} (status {job.status})"))

    out.emit(job.to_dict(), render)
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``status`` and ``jobs`` to the subcommands."""
    status = sub.add_parser(
        "status", parents=[common],
        help="queue counters, oldest ready message, workers by status, dead letters",
        description="Queue counters (ready, delayed, in flight, dead-lettered), the age of the oldest ready "
                    "message, workers by status and the most recent dead letters. Exit 4 if the database "
                    "does not exist.",
    )
    status.add_argument("--dead-letters", type=positive_int, default=10, metavar="N",
                        help="show at most N recent dead letters (default 10)")
    status.set_defaults(run=_cmd_status)

    jobs = sub.add_parser("jobs", help="list, show and requeue messages",
                          description="Messages of the queue: list, show one, requeue a dead-lettered one.")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="{list,show,requeue}")
    listing = jobs_sub.add_parser("list", parents=[common], help="messages of a status (default: every status)",
                                  description="Messages of one status (queued and processing oldest first, done "
                                              "and dead_letter newest first), or of every status newest first.")
    listing.add_argument("--status", choices=("queued", "processing", "done", "dead_letter"), help="only this status")
    listing.add_argument("--limit", type=positive_int, default=50, metavar="N", help="at most N messages (default 50)")
    listing.set_defaults(run=_cmd_jobs_list)
    show = jobs_sub.add_parser("show", parents=[common], help="one message with its payload",
                               description="One message with its payload; exit 4 if it does not exist.")
    show.add_argument("message_id", metavar="ID")
    show.set_defaults(run=_cmd_jobs_show)
    requeue = jobs_sub.add_parser(
        "requeue", parents=[common], help="put a dead-lettered message back in its queue",
        description="Put a dead-lettered message back in its conversation's queue (attempts reset, behind the "
                    "messages already waiting). Exit 4 for an unknown id, 5 if the message is not dead-lettered.",
    )
    requeue.add_argument("message_id", metavar="ID")
    requeue.set_defaults(run=_cmd_jobs_requeue)

