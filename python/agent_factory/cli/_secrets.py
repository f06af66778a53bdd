"""``agent-factory secrets import|status|rotate``: encrypted secrets.

A secret value only ever comes from stdin (``--stdin``; typed at a terminal it
is asked for without echo) or a file (``--from-file``), never from the command
line (argv is visible to every user of the machine). One trailing newline is
dropped (``echo`` and editors add one).
The value is never printed, and an error message that would contain it has it
replaced by ``***``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from ..errors import AgentFactoryError, NotFoundError, ValidationError
from ._common import EXIT_FAILED, EXIT_OK, Output, fmt_ms, kv_table, open_factory, read_text_input, rows_table

__all__ = ["register", "read_secret_value"]


def read_secret_value(args: argparse.Namespace) -> str:
    """The value from ``--stdin`` or ``--from-file``, one trailing newline dropped;
    empty is a ``ValidationError``."""
    if args.stdin:
        if sys.stdin is None:
            raise ValidationError("--stdin given but there is no stdin")
        if sys.stdin.isatty():  # typed by hand: ask without echoing it on the screen
            value = getpass.getpass(f"value of secret {args.secret_ref} (not shown): ")
        else:
            value = read_text_input("-")
        source = "stdin"
    else:
        value = read_text_input(args.from_file)
        source = args.from_file
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise ValidationError(f"the secret value from {source} is empty")
    return value


@contextmanager
def _scrubbed(value: str) -> Iterator[None]:
    """Re-raise an agent-factory error with ``value`` masked in its message."""
    try:
        yield
    except AgentFactoryError as e:
        message = str(e)
        if value in message:
            raise type(e)(message.replace(value, "***")) from None
        raise


def _status_rows(statuses: list[Any]) -> Iterator[list[Any]]:
    for s in statuses:
        yield [s.secret_ref, "active" if s.has_active else "missing", s.version, fmt_ms(s.updated_at)]


def _cmd_import(args: argparse.Namespace, out: Output) -> int:
    """Store a new version of a secret (the first, or a replacement) and make it active."""
    value = read_secret_value(args)
    factory = open_factory(args, create=True)
    with _scrubbed(value):
        imported = factory.secrets.import_plaintext(args.secret_ref, value)
    rows = [("secret", imported.secret_ref), ("version", imported.version)]
    out.emit(imported.to_dict(), lambda c: c.print(kv_table("secret imported", rows)))
    return EXIT_OK


def _cmd_rotate(args: argparse.Namespace, out: Output) -> int:
    """Store a new version of a secret that already has an active one."""
    value = read_secret_value(args)
    factory = open_factory(args)
    (current,) = factory.secrets.status([args.secret_ref])
    if not current.has_active:
        raise NotFoundError(f"secret {args.secret_ref!r} has no active version to rotate; use 'secrets import'")
    with _scrubbed(value):
        imported = factory.secrets.import_plaintext(args.secret_ref, value)
    data = {**imported.to_dict(), "previous_version": current.version}
    rows = [("secret", imported.secret_ref), ("version", f"{imported.version} (was {current.version})")]
    out.emit(data, lambda c: c.print(kv_table("secret rotated", rows)))
    return EXIT_OK


def _cmd_status(args: argparse.Namespace, out: Output) -> int:
    """Whether each secret has an active version (every stored one when none are named)."""
    factory = open_factory(args)
    refs = list(dict.fromkeys(args.secret_refs)) or factory.secrets.list_refs()
    statuses = factory.secrets.status(refs) if refs else []

    def render(console: Console) -> None:
        console.print(rows_table(f"secrets ({len(statuses)})", ("secret", "state", "version", "updated"),
                                 _status_rows(statuses)))

    out.emit([s.to_dict() for s in statuses], render)
    return EXIT_OK if all(s.has_active for s in statuses) else EXIT_FAILED


def _value_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stdin", action="store_true", help="read the value from stdin")
    source.add_argument("--from-file", metavar="PATH", help="read the value from a file")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``secrets`` to the subcommands."""
    secrets = sub.add_parser(
        "secrets", help="import, check and rotate encrypted secrets (values are never printed)",
        description="Encrypted, versioned secrets. Values are read from stdin or a file, never from the command "
                    "line, and never printed.",
    )
    secrets_sub = secrets.add_subparsers(dest="secrets_command", required=True, metavar="{import,status,rotate}")
    imp = secrets_sub.add_parser(
        "import", parents=[common], help="store a secret's value (a new active version)",
        description="Store a new version of REF and make it active; the value comes from --stdin or --from-file "
                    "(one trailing newline dropped; empty is an error). Creates the database if needed.",
    )
    imp.add_argument("secret_ref", metavar="REF")
    _value_source(imp)
    imp.set_defaults(run=_cmd_import)

    status = secrets_sub.add_parser(
        "status", parents=[common], help="which secrets have an active version",
        description="Whether each REF has an active version (never the value); every stored secret when no REF "
                    "is given. Exit 1 if a named REF has no active version.",
    )
    status.add_argument("secret_refs", metavar="REF", nargs="*")
    status.set_defaults(run=_cmd_status)

    rotate = secrets_sub.add_parser(
        "rotate", parents=[common], help="replace an existing secret's value (a new version)",
        description="Store a new version of REF, which must have an active version (exit 4 otherwise); the "
                    "value comes from --stdin or --from-file.",
    )
    rotate.add_argument("secret_ref", metavar="REF")
    _value_source(rotate)
    rotate.set_defaults(run=_cmd_rotate)
