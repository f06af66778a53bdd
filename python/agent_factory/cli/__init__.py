"""The ``agent-factory`` command line (also ``python -m agent_factory``).

Commands (``agent-factory <command> --help`` for each):

- ``demo``: the whole system on one machine (the pool with local worker
  processes) with a report of the checks; ``--in-process``: the queue benchmark;
- ``serve``: the pool control loop (several may share a database; a lease lets
  one act at a time); ``worker``: the worker runtime with a ``module:function``
  handler;
- ``status``: queue counters, the oldest ready message, workers by status, dead
  letters;
- ``enqueue``: one message, or a JSON Lines file of them (all or nothing);
- ``jobs list|show|requeue``: messages, and putting a dead letter back;
- ``agents list|show|upsert|enable|disable``: agent profiles;
- ``secrets import|status|rotate``: encrypted secrets, values read from stdin or
  a file and never printed;
- ``push list|show|dispatch|trigger``: scheduled push jobs;
- ``board list|show|create|move|claim|complete|dispatch``: the workboard;
- ``fly cleanup``: destroy every machine and volume of the Fly app;
- ``snapshots list``: workspace snapshots of a conversation or a worker.

Every command takes ``--db PATH`` (default ``$AGENT_FACTORY_DB``) and ``--json``
(before or after the command name). Read commands never create a database: a
missing file exits 4. Output is rich tables on stdout; with ``--json`` stdout
holds exactly one JSON document (records as their ``to_dict()``). Progress bars
go to stderr, only on a terminal. Errors are one ``agent-factory: error: ...``
line on stderr and, with ``--json``, ``{"error": {"kind": ..., "message": ...}}``
on stdout.

Exit codes:

====  =========================================================================
0     success
1     a check or operation failed (a demo check, a cleanup that left something,
      ``secrets status`` of a ref with no active version)
2     usage or invalid input (bad options, ``ValidationError``)
3     the worker stopped but its final snapshot failed
4     not found (``NotFoundError``, no database at ``--db``, no input file)
5     conflict or invalid state (``ConflictError``, ``InvalidStateError``)
6     provider or storage error (``ProviderError``, ``StorageError``)
130   interrupted
====  =========================================================================

``worker`` and ``serve`` keep their own rules for a missing database (exit 2:
they must never start on a fresh empty file by mistake).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import AgentFactoryError
from . import _agents, _board, _demo, _enqueue, _fly, _push, _queue, _runtime, _secrets, _snapshots
from ._common import (
    DB_ENV,
    EXIT_CODES_TEXT,
    EXIT_INTERRUPTED,
    CliParser,
    Output,
    classify,
    common_options,
    report_error,
    set_argv,
)
from ._demo import DemoResult, run_demo

__all__ = ["main", "build_parser", "DemoResult", "run_demo"]

_MODULES = (_demo, _runtime, _queue, _enqueue, _agents, _secrets, _push, _board, _fly, _snapshots)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``agent-factory`` with every subcommand."""
    parser = CliParser(
        prog="agent-factory",
        description="Control plane for fleets of chat agents: queue, worker pool, secrets, push and workboard.",
        epilog=f"{EXIT_CODES_TEXT}\n\nenvironment:\n  {DB_ENV}  the database when --db is not given",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", default=os.environ.get(DB_ENV) or None, metavar="PATH",
                        help=f"database path (env {DB_ENV})")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of tables")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()
    for module in _MODULES:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agent-factory`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    set_argv(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    json_mode = bool(getattr(args, "json", False))
    out = Output(json_mode)
    try:
        return int(args.run(args, out))
    except AgentFactoryError as e:
        kind, code = classify(e)
        report_error(kind, str(e), json_mode=json_mode)
        return code
    except KeyboardInterrupt:
        report_error("interrupted", "interrupted", json_mode=json_mode)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `agent-factory jobs list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
