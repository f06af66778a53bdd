"""``agent-factory board list|create|show|move|claim|complete|dispatch``: the
workboard (kanban store for agent work), on the factory's database file."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from .._board_view import CARD_STATUSES as STATUSES
from ..errors import NotFoundError
from ._common import EXIT_OK, Output, cell, fmt_age, fmt_ms, kv_table, open_workboard, positive_int, rows_table

__all__ = ["register", "PRIORITIES"]

#: Card priorities, lowest first.
PRIORITIES = ("low", "normal", "high", "urgent")


def _card_rows(card: Any) -> list[tuple[str, Any]]:
    claim = card.claim or {}
    return [
        ("card", card.id), ("title", card.title), ("board", card.board_id), ("status", card.status),
        ("priority", card.priority), ("labels", card.labels), ("agent", card.agent_id),
        ("claimed by", claim.get("owner_id")), ("claim expires", fmt_ms(claim.get("expires_at"))),
        ("parents", card.parent_ids), ("updated", fmt_ms(card.updated_at)),
    ]


def _show_card(out: Output, card: Any, title: str) -> None:
    out.emit(card.to_dict(), lambda c: c.print(kv_table(title, _card_rows(card))))


def _cmd_list(args: argparse.Namespace, out: Output) -> int:
    """Every board with its card counts, by status and the oldest ready card's age."""
    wb = open_workboard(args)
    boards = [(b, wb.stats(board_id=b.id)) for b in wb.list_boards()]
    if not args.all:
        boards = [(b, s) for b, s in boards if b.archived_at is None]
    data = [{**b.to_dict(), "stats": s.to_dict()} for b, s in boards]

    def render(console: Console) -> None:
        console.print(rows_table(
            f"boards ({len(boards)})",
            ("board", "name", "cards", "active", "archived", "by status", "oldest ready"),
            ([b.id, b.name, b.total, b.active, b.archived,
              ", ".join(f"{k} {v}" for k, v in sorted(b.by_status.items(), key=lambda kv: _order(kv[0]))),
              fmt_age(s.oldest_ready_age_ms)] for b, s in boards),
        ))

    out.emit(data, render)
    return EXIT_OK


def _order(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


def _cmd_show(args: argparse.Namespace, out: Output) -> int:
    """A board's unarchived cards in columns by status (``Workboard.kanban``)."""
    wb = open_workboard(args)
    summary = next((b for b in wb.list_boards() if b.id == args.board_id), None)
    if summary is None:
        raise NotFoundError(f"board {args.board_id!r} not found")
    view = wb.kanban(args.board_id, limit_per_status=args.limit)

    def render(console: Console) -> None:
        table = Table(title=f"board {args.board_id} ({view.total} cards)", title_justify="left")
        for name in ("status", "card", "title", "priority", "labels", "agent", "claimed by"):
            table.add_column(name)
        for column in view.columns:
            for i, card in enumerate(column.cards):
                more = f", {column.more} more" if column.more else ""
                table.add_row(
                    cell(f"{column.status} ({column.total}{more})" if i == 0 else ""), cell(card.id), cell(card.title),
                    cell(card.priority), cell(card.labels), cell(card.agent_id),
                    cell(card.claim_owner), end_section=i == len(column.cards) - 1,
                )
        console.print(table)

    data = {
        "board": summary.to_dict(),
        "columns": {c.status: [card.to_dict() for card in c.cards] for c in view.columns},
        "totals": {c.status: c.total for c in view.columns},
    }
    out.emit(data, render)
    return EXIT_OK


def _cmd_create(args: argparse.Namespace, out: Output) -> int:
    """Create a card."""
    card = open_workboard(args, create=True).create(
        args.title, board_id=args.board, agent_id=args.agent, priority=args.priority, labels=args.label,
        notes=args.notes, status=args.status, parents=args.parent,
    )
    _show_card(out, card, f"card created on board {card.board_id}")
    return EXIT_OK


def _cmd_move(args: argparse.Namespace, out: Output) -> int:
    """Move a card to a status (dependency and schedule holds apply)."""
    card = open_workboard(args).move(args.card_id, args.status, args.position, owner_id=args.worker, token=args.token)
    _show_card(out, card, f"card moved to {card.status}")
    return EXIT_OK


def _cmd_claim(args: argparse.Namespace, out: Output) -> int:
    """Claim a card for a worker; prints the claim token."""
    ttl = None if args.ttl_ms is None else args.ttl_ms / 1000
    claim = open_workboard(args).claim(args.card_id, args.worker, ttl_seconds=ttl)
    expires = (claim.card.claim or {}).get("expires_at")

    def render(console: Console) -> None:
        console.print(cell(claim.token))
        out.note(f"card {claim.card.id} claimed by {args.worker} until {fmt_ms(expires)}; the token above "
                 "fences its heartbeats and completion")

    out.emit({"token": claim.token, "card": claim.card.to_dict()}, render)
    return EXIT_OK


def _cmd_complete(args: argparse.Namespace, out: Output) -> int:
    """Complete a claimed card with its token."""
    card = open_workboard(args).complete(args.card_id, summary=args.summary, token=args.token, owner_id=args.worker)
    _show_card(out, card, "card completed")
    return EXIT_OK


def _cmd_dispatch(args: argparse.Namespace, out: Output) -> int:
    """One dispatch pass: promote, reclaim, block and count."""
    result = open_workboard(args).dispatch(board_id=args.board)

    def render(console: Console) -> None:
        rows = [(kind, getattr(result, kind)) for kind in ("promoted", "reclaimed", "blocked", "orchestrated")]
        console.print(rows_table(
            f"dispatch{' of board ' + args.board if args.board else ''}: {result.count} cards changed",
            ("change", "card", "title", "status"),
            ([kind, c.id, c.title, c.status] for kind, cards in rows for c in cards),
        ))

    out.emit(result.to_dict(), render)
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``board`` to the subcommands."""
    board = sub.add_parser(
        "board", help="the workboard: boards, cards, claims and dispatch",
        description="The workboard (kanban store for agent work) in the factory's database. Exit 4 for an unknown "
                    "card or board, 5 when a card is claimed by someone else or a status hold applies.",
    )
    b_sub = board.add_subparsers(dest="board_command", required=True,
                                 metavar="{list,show,create,move,claim,complete,dispatch}")
    listing = b_sub.add_parser("list", parents=[common], help="boards with card counts",
                               description="Every board with its card counts by status and the oldest ready card's age.")
    listing.add_argument("--all", action="store_true", help="include archived boards")
    listing.set_defaults(run=_cmd_list)

    show = b_sub.add_parser("show", parents=[common], help="a board's cards by status",
                            description="A board's unarchived cards in status columns (board order), at most "
                                        "--limit per status, with each column's total.")
    show.add_argument("board_id", metavar="BOARD")
    show.add_argument("--limit", type=positive_int, default=50, metavar="N",
                      help="cards shown per status, 1..1000 (default 50)")
    show.set_defaults(run=_cmd_show)

    create = b_sub.add_parser("create", parents=[common], help="create a card",
                              description="Create a card (status todo unless --status). Creates the database if needed.")
    create.add_argument("--board", default="default", metavar="B", help="board id (default 'default')")
    create.add_argument("--title", required=True, metavar="T")
    create.add_argument("--agent", metavar="A", help="agent id the card is for")
    create.add_argument("--priority", choices=PRIORITIES, help="priority (default normal)")
    create.add_argument("--label", action="append", metavar="L", help="a label (repeat for several)")
    create.add_argument("--notes", metavar="TEXT")
    create.add_argument("--status", choices=STATUSES, help="initial status (default todo)")
    create.add_argument("--parent", action="append", metavar="CARD", help="a card this one depends on (repeatable)")
    create.set_defaults(run=_cmd_create)

    move = b_sub.add_parser("move", parents=[common], help="move a card to a status",
                            description="Move a card to STATUS (dependency and schedule holds apply: exit 5).")
    move.add_argument("card_id", metavar="CARD")
    move.add_argument("status", metavar="STATUS", choices=STATUSES)
    move.add_argument("--position", type=int, metavar="N", help="position in the column")
    move.add_argument("--worker", metavar="W", help="act as this claim owner")
    move.add_argument("--token", metavar="T", help="act with this claim token")
    move.set_defaults(run=_cmd_move)

    claim = b_sub.add_parser("claim", parents=[common], help="claim a card for a worker (prints the token)",
                             description="Claim a card for a worker (backlog/todo/ready cards become running) and "
                                         "print the claim token. Exit 5 if another worker holds it.")
    claim.add_argument("card_id", metavar="CARD")
    claim.add_argument("--worker", required=True, metavar="W", help="claim owner id")
    claim.add_argument("--ttl-ms", type=positive_int, metavar="N", help="claim time to live in ms (default 30 minutes)")
    claim.set_defaults(run=_cmd_claim)

    complete = b_sub.add_parser("complete", parents=[common], help="complete a claimed card",
                                description="Complete a card as the holder of its claim (exit 5 for a wrong token).")
    complete.add_argument("card_id", metavar="CARD")
    complete.add_argument("--token", required=True, metavar="T", help="the claim token from 'board claim'")
    complete.add_argument("--worker", metavar="W", help="the claim owner (checked too when given)")
    complete.add_argument("--summary", metavar="S", help="what was done (kept as a comment)")
    complete.set_defaults(run=_cmd_complete)

    dispatch = b_sub.add_parser("dispatch", parents=[common], help="one dispatch pass",
                                description="Promote due and dependency-ready cards, reclaim expired claims, block "
                                            "cards past their runtime or retry budget; report what changed.")
    dispatch.add_argument("--board", metavar="B", help="only this board")
    dispatch.set_defaults(run=_cmd_dispatch)

