"""``agent-factory snapshots list``: workspace snapshots of a conversation or a worker."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from ._common import EXIT_OK, Output, fmt_ms, open_factory, positive_int, rows_table

__all__ = ["register"]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def _cmd_list(args: argparse.Namespace, out: Output) -> int:
    """Snapshots of one conversation or one worker, newest first."""
    snapshots = open_factory(args).snapshots
    if args.conversation:
        items = snapshots.list_for_conversation(args.conversation, limit=args.limit)
        title = f"snapshots of conversation {args.conversation}"
    else:
        items = snapshots.list_for_worker(args.worker, limit=args.limit)
        title = f"snapshots of worker {args.worker}"

    def render(console: Console) -> None:
        console.print(rows_table(
            f"{title} ({len(items)})",
            ("snapshot", "status", "reason", "worker", "agent", "conversation", "size", "created", "expires", "error"),
            ([s.snapshot_id, s.status, s.reason, s.worker_id, s.agent_key, s.conversation_id, _size(s.size_bytes),
              fmt_ms(s.created_at), fmt_ms(s.expires_at), s.error] for s in items),
        ))

    out.emit([s.to_dict() for s in items], render)
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``snapshots`` to the subcommands."""
    snaps = sub.add_parser("snapshots", help="list workspace snapshots",
                           description="Workspace snapshots kept in the blob store.")
    s_sub = snaps.add_subparsers(dest="snapshots_command", required=True, metavar="{list}")
    listing = s_sub.add_parser("list", parents=[common], help="snapshots of a conversation or a worker",
                               description="Snapshots of one conversation or one worker, newest first.")
    which = listing.add_mutually_exclusive_group(required=True)
    which.add_argument("--conversation", metavar="C", help="conversation id")
    which.add_argument("--worker", metavar="W", help="worker id")
    listing.add_argument("--limit", type=positive_int, default=50, metavar="N", help="at most N (1..200, default 50)")
    listing.set_defaults(run=_cmd_list)
