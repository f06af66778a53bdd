"""What every ``agent-factory`` command shares: the common options, the database
path, exit codes, errors, and output (rich tables for people, one JSON document
for scripts, progress on stderr).

Output rules:

- with ``--json`` stdout holds exactly one JSON document (the result, or
  ``{"error": {"kind", "message"}}``) and nothing else;
- without it, results are rich tables on stdout; progress bars and spinners go
  to stderr, and only when stderr is a terminal;
- every error is one line on stderr: ``agent-factory: error: <message>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..errors import (
    AuthenticationError,
    ConflictError,
    InvalidStateError,
    NotFoundError,
    ProviderError,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    from .._sync_api import Factory
    from .._sync_workboard import Workboard

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_SNAPSHOT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_CONFLICT",
    "EXIT_PROVIDER",
    "EXIT_INTERRUPTED",
    "EXIT_CODES_TEXT",
    "DB_ENV",
    "CliParser",
    "Output",
    "common_options",
    "classify",
    "db_path",
    "open_factory",
    "open_workboard",
    "parse_time_ms",
    "positive_int",
    "read_text_input",
    "fmt_ms",
    "fmt_age",
    "cell",
    "kv_table",
    "rows_table",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SNAPSHOT_FAILED = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_PROVIDER = 6
EXIT_INTERRUPTED = 130

#: The exit-code table shown in ``agent-factory --help`` and the package docstring.
EXIT_CODES_TEXT = """exit codes:
  0    success
  1    a check or operation failed (e.g. a demo check, a failed cleanup, a missing secret)
  2    usage or invalid input (bad options, ValidationError)
  3    the worker stopped but its final snapshot failed
  4    not found (NotFoundError, no database at --db)
  5    conflict or invalid state (ConflictError, InvalidStateError)
  6    provider or storage error (ProviderError, StorageError)
  130  interrupted"""

#: The environment variable ``--db`` falls back to.
DB_ENV = "AGENT_FACTORY_DB"

_PROG = "agent-factory"
_PIPE_WIDTH = 1000

# The command line being parsed: known before parsing finishes so that argparse's
# own usage errors can be reported as JSON too, and never echo a secret value.
_argv: list[str] = []


def set_argv(argv: Sequence[str]) -> None:
    """Remember the command line being parsed (see :class:`CliParser`)."""
    global _argv
    _argv = list(argv)


#: Error kind and exit code per exception class, most specific first.
_ERROR_KINDS: tuple[tuple[type[BaseException], str, int], ...] = (
    (ValidationError, "validation", EXIT_USAGE),
    (NotFoundError, "not_found", EXIT_NOT_FOUND),
    (ConflictError, "conflict", EXIT_CONFLICT),
    (InvalidStateError, "invalid_state", EXIT_CONFLICT),
    (ProviderError, "provider", EXIT_PROVIDER),
    (StorageError, "storage", EXIT_PROVIDER),
    (AuthenticationError, "authentication", EXIT_FAILED),
)


def classify(exc: BaseException) -> tuple[str, int]:
    """The error kind (for ``{"error": {"kind": ...}}``) and exit code of an exception."""
    for cls, kind, code in _ERROR_KINDS:
        if isinstance(exc, cls):
            return kind, code
    return "failed", EXIT_FAILED


def report_error(kind: str, message: str, *, json_mode: bool) -> None:
    """Write an error: one line on stderr and, in JSON mode, the error document on stdout."""
    line = " ".join(message.split()) or kind
    print(f"{_PROG}: error: {line}", file=sys.stderr)
    if json_mode:
        print(json.dumps({"error": {"kind": kind, "message": message}}, indent=2))
    sys.stderr.flush()
    sys.stdout.flush()


class CliParser(argparse.ArgumentParser):
    """``argparse`` with the CLI's error format: usage, then one
    ``agent-factory: error: ...`` line (and the JSON error document with ``--json``); exit 2."""

    def error(self, message: str) -> NoReturn:
        """Report a usage error and exit 2."""
        if "secrets" in _argv and message.startswith("unrecognized arguments"):
            # A value typed on the command line must not be echoed into logs as well.
            message = ("unexpected arguments; a secret value is never taken from the command line, "
                       "use --stdin or --from-file")
        self.print_usage(sys.stderr)
        report_error("usage", message, json_mode="--json" in _argv)
        raise SystemExit(EXIT_USAGE)


def common_options() -> argparse.ArgumentParser:
    """The parent parser of every subcommand: ``--db`` and ``--json``.

    The defaults are ``SUPPRESS`` so a value given before the subcommand (on the
    top-level parser) is kept."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help=f"database path (env {DB_ENV})")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document on stdout instead of tables")
    return common


def _stdout_console() -> Console:
    # Not a terminal (a pipe, a file, a test): wide enough that ids and values are
    # never wrapped or cut, so `grep` finds them (COLUMNS is for terminals).
    width = None if sys.stdout.isatty() else _PIPE_WIDTH
    return Console(width=width, highlight=False, soft_wrap=False)


class Output:
    """Where a command writes: tables or JSON on stdout, notes and progress on stderr."""

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode
        self.out = _stdout_console()
        self.err = Console(stderr=True, highlight=False)

    @property
    def interactive(self) -> bool:
        """Whether progress may be drawn: a terminal on stderr and no ``--json``."""
        return not self.json and self.err.is_terminal

    def emit(self, data: Any, render: Callable[[Console], None]) -> None:
        """``data`` as JSON with ``--json``, otherwise ``render(stdout console)``."""
        if self.json:
            print(json.dumps(data, indent=2, default=str))
        else:
            render(self.out)

    def note(self, message: str) -> None:
        """A line for people on stderr (never in JSON mode's stdout)."""
        self.err.print(Text(message))

    @contextmanager
    def bar(self, description: str, total: int) -> Iterator[tuple[Progress, TaskID]]:
        """A progress bar on stderr that stays when done, for long work whose caller
        updates it (``progress.update(task, completed=..., description=...)``); yields
        ``(progress, task)``. Draws nothing unless :attr:`interactive`."""
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            transient=False,
            disable=not self.interactive,
        ) as progress:
            yield progress, progress.add_task(description, total=total)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar on stderr (a spinner when ``total`` is ``None``); yields
        ``advance(n)``. Draws nothing unless :attr:`interactive`."""
        if not self.interactive:
            yield lambda n: None
            return
        columns: list[Any] = [SpinnerColumn(), TextColumn("[progress.description]{task.description}")]
        if total is not None:
            columns += [BarColumn(bar_width=30), MofNCompleteColumn()]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def db_path(args: argparse.Namespace, *, must_exist: bool = True) -> str:
    """The database of the command: ``--db``, else ``$AGENT_FACTORY_DB``.

    Neither given is a usage error; with ``must_exist`` a path with no file is
    ``NotFoundError`` (read commands never create an empty database)."""
    path = getattr(args, "db", None) or os.environ.get(DB_ENV) or ""
    if not path:
        raise ValidationError(f"no database given: pass --db PATH or set {DB_ENV}")
    if must_exist and path != ":memory:" and not os.path.exists(path):
        raise NotFoundError(f"no database at {path}")
    return path


def open_factory(args: argparse.Namespace, *, create: bool = False) -> Factory:
    """A :class:`~agent_factory.Factory` on the command's database (see :func:`db_path`)."""
    from .._sync_api import Factory

    return Factory(db_path(args, must_exist=not create))


def open_workboard(args: argparse.Namespace, *, create: bool = False) -> Workboard:
    """A :class:`~agent_factory.Workboard` on the command's database (the factory's file)."""
    from .._sync_workboard import Workboard

    return Workboard(db_path(args, must_exist=not create))


def parse_time_ms(value: str, option: str) -> int:
    """Epoch milliseconds from ``value``: an integer, or an ISO 8601 time with a zone
    (``2026-03-01T09:00:00Z``, ``...+02:00``)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValidationError(f"{option} must be epoch milliseconds or an ISO 8601 time, got {value!r}") from None
    if when.tzinfo is None:
        raise ValidationError(f"{option} needs a time zone (e.g. {text}Z or {text}+02:00), got {value!r}")
    return int(when.timestamp() * 1000)


def positive_int(value: str) -> int:
    """argparse ``type=``: an integer >= 1."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def read_text_input(path: str) -> str:
    """The text of file ``path`` (``-``: stdin), UTF-8. A missing file is
    ``NotFoundError``; unreadable or non-UTF-8 input is ``ValidationError``."""
    if path == "-":
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise ValidationError("stdin is not UTF-8 text") from None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise NotFoundError(f"no file at {path}") from None
    except IsADirectoryError:
        raise ValidationError(f"{path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{path} is not UTF-8 text") from None
    except OSError as e:
        raise ValidationError(f"cannot read {path}: {e.strerror}") from None


def fmt_ms(ms: int | None) -> str:
    """An epoch-ms timestamp as ``YYYY-MM-DD HH:MM:SSZ`` (UTC), or ``-``."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_age(ms: int | None) -> str:
    """A duration in ms as ``1h 2m``, ``3m 4s``, ``5.2s``, or ``-``."""
    if ms is None:
        return "-"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def cell(value: Any) -> Text:
    """A table cell showing ``value`` literally (no rich markup), ``-`` for ``None``."""
    if value is None:
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (list, tuple)):
        return Text(", ".join(str(v) for v in value) or "-")
    if isinstance(value, dict):
        return Text(json.dumps(value, sort_keys=True))
    return Text(str(value))


def kv_table(title: str, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column key/value table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(Text(key), cell(value))
    return table


def rows_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table with a header row; cells go through :func:`cell`."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    return table
