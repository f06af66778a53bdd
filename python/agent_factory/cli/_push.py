"""``agent-factory push list|show|dispatch|trigger``: scheduled push jobs."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from ..errors import NotFoundError
from ._common import EXIT_OK, Output, fmt_ms, kv_table, open_factory, positive_int, rows_table

__all__ = ["register"]


def _schedule_text(schedule: Any) -> str:
    parts = [schedule.kind]
    if schedule.weekday is not None:
        parts.append(f"weekday {schedule.weekday}")
    if schedule.day_of_month is not None:
        parts.append(f"day {schedule.day_of_month}")
    if schedule.time is not None:
        parts.append(f"at {schedule.time}")
    return " ".join(parts)


def _cmd_list(args: argparse.Namespace, out: Output) -> int:
    """A user's push jobs (optionally of one agent, optionally enabled only)."""
    push = open_factory(args).push
    include_disabled = not args.enabled_only
    if args.agent:
        jobs = push.list_jobs_for_agent(args.user, args.agent, include_disabled=include_disabled)
    else:
        jobs = push.list_jobs_for_user(args.user, include_disabled=include_disabled)

    def render(console: Console) -> None:
        console.print(rows_table(
            f"push jobs of {args.user} ({len(jobs)})",
            ("job", "title", "agent", "schedule", "timezone", "enabled", "next run", "last run"),
            ([j.job_id, j.title, j.agent_key, _schedule_text(j.schedule), j.timezone, j.enabled,
              fmt_ms(j.next_run_at), fmt_ms(j.last_run_at)] for j in jobs),
        ))

    out.emit([j.to_dict() for j in jobs], render)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace, out: Output) -> int:
    """One push job and its recent runs."""
    push = open_factory(args).push
    job = push.get_job(args.job_id)
    if job is None:
        raise NotFoundError(f"push job {args.job_id!r} not found")
    runs = push.list_dispatches(args.job_id, limit=args.limit)

    def render(console: Console) -> None:
        console.print(kv_table(f"push job {job.job_id}", [
            ("title", job.title), ("text", job.text), ("user", job.consumer_user_id), ("agent", job.agent_key),
            ("company", job.company_id), ("schedule", _schedule_text(job.schedule)), ("timezone", job.timezone),
            ("enabled", job.enabled), ("next run", fmt_ms(job.next_run_at)), ("last run", fmt_ms(job.last_run_at)),
            ("last run key", job.last_run_key),
        ]))
        console.print(rows_table(
            f"runs ({len(runs)})", ("run key", "mode", "status", "scheduled for", "message", "error"),
            ([d.run_key, d.push_mode, d.status, fmt_ms(d.scheduled_for), d.enqueued_message_id, d.error] for d in runs),
        ))

    out.emit({"job": job.to_dict(), "dispatches": [d.to_dict() for d in runs]}, render)
    return EXIT_OK


def _cmd_dispatch(args: argparse.Namespace, out: Output) -> int:
    """Enqueue every due slot now."""
    report = open_factory(args).push.dispatch_due_push_jobs(limit=args.limit)
    rows = [("scanned", report.scanned), ("enqueued", report.enqueued), ("skipped", report.skipped),
            ("failed", report.failed)]
    out.emit(report.to_dict(), lambda c: c.print(kv_table("push dispatch", rows)))
    return EXIT_OK


def _cmd_trigger(args: argparse.Namespace, out: Output) -> int:
    """Send a job's text now."""
    trigger = open_factory(args).push.trigger_now(args.job_id, agent_key=args.agent)
    rows = [("job", args.job_id), ("run key", trigger.run_key), ("message", trigger.enqueued_message_id)]
    out.emit(trigger.to_dict(), lambda c: c.print(kv_table("push triggered", rows)))
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``push`` to the subcommands."""
    push = sub.add_parser("push", help="list, show, dispatch and trigger scheduled push jobs",
                          description="Scheduled push jobs: messages sent to users through their agent.")
    push_sub = push.add_subparsers(dest="push_command", required=True, metavar="{list,show,dispatch,trigger}")
    listing = push_sub.add_parser("list", parents=[common], help="a user's push jobs",
                                  description="A user's push jobs, most recently changed first.")
    listing.add_argument("--user", required=True, metavar="U", help="consumer user id")
    listing.add_argument("--agent", metavar="A", help="only jobs of this agent")
    listing.add_argument("--enabled-only", action="store_true", help="hide disabled jobs")
    listing.set_defaults(run=_cmd_list)

    show = push_sub.add_parser("show", parents=[common], help="one push job and its runs",
                               description="One push job and its most recent runs; exit 4 if it does not exist.")
    show.add_argument("job_id", metavar="JOB_ID")
    show.add_argument("--limit", type=positive_int, default=20, metavar="N", help="at most N runs (default 20)")
    show.set_defaults(run=_cmd_show)

    dispatch = push_sub.add_parser(
        "dispatch", parents=[common], help="enqueue every due push slot now",
        description="Enqueue every due slot of enabled recurring jobs now (each slot once, even when several "
                    "dispatchers race) and report the counts.",
    )
    dispatch.add_argument("--limit", type=positive_int, metavar="N", help="at most N jobs (default 200, max 1000)")
    dispatch.set_defaults(run=_cmd_dispatch)

    trigger = push_sub.add_parser(
        "trigger", parents=[common], help="send a push job's text now",
        description="Send a job's text now (its schedule is unchanged). Exit 4 for an unknown job, 5 when the "
                    "user has no active agent binding.",
    )
    trigger.add_argument("job_id", metavar="JOB_ID")
    trigger.add_argument("--agent", metavar="A", help="act as this agent (the job must be its)")
    trigger.set_defaults(run=_cmd_trigger)
