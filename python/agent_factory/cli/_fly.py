"""``agent-factory fly cleanup``: destroy every machine and volume of a Fly app.

Destructive, so it asks first: ``--yes`` confirms up front; otherwise, on a
terminal, the operator types the app name; with no terminal to ask on it
refuses (exit 2) without calling the API.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rich.console import Console

from ..config import FlyProvider
from ..errors import ValidationError
from ._common import EXIT_FAILED, EXIT_OK, Output, kv_table, open_factory, positive_int

__all__ = ["register"]


def _app_name(args: argparse.Namespace, factory: Any) -> str:
    if args.app:
        return str(args.app)
    stored = factory.config.provider_config()
    if stored is not None and stored.kind == "fly" and stored.app_name:
        return str(stored.app_name)
    raise ValidationError("no Fly app: pass --app or store a Fly provider config (factory.config.set_provider_config)")


def _confirm(app: str, out: Output) -> None:
    """Ask on the terminal; raise ``ValidationError`` when there is none or the answer is not the app name."""
    if not sys.stdin.isatty():
        raise ValidationError(
            f"fly cleanup destroys every machine and volume of app {app!r}; there is no terminal to confirm on, "
            "pass --yes to confirm"
        )
    out.err.print(f"This destroys [bold]every[/] machine and volume of Fly app [bold]{app}[/].")
    out.err.print("Type the app name to confirm: ", end="")
    answer = sys.stdin.readline().strip()
    if answer != app:
        raise ValidationError(f"not confirmed (expected {app!r}); nothing was destroyed")


def _cmd_cleanup(args: argparse.Namespace, out: Output) -> int:
    """Destroy every machine and volume of the app, verify and report."""
    factory = open_factory(args)
    app = _app_name(args, factory)
    if not args.yes:
        _confirm(app, out)
    provider = FlyProvider(
        app_name=app,
        base_url=args.api_base or os.environ.get("AGENT_FACTORY_FLY_BASE_URL") or None,
        api_token=os.environ.get("FLY_API_TOKEN") or None,
    )
    with out.progress(f"destroying the machines and volumes of {app}", None):
        report = factory.pool.fly_cleanup(provider=provider, poll_interval_ms=args.poll_interval_ms)
    clean = not report.errors and report.machines_remaining == 0 and report.volumes_remaining == 0

    def render(console: Console) -> None:
        console.print(kv_table(f"fly cleanup of {report.app_name}", [
            ("machines", f"{report.machines_deleted} of {report.machines_found} destroyed, "
                         f"{report.machines_remaining} remaining"),
            ("machines destroyed", report.machine_ids_deleted),
            ("machines remaining", report.machine_ids_remaining),
            ("volumes", f"{report.volumes_deleted} of {report.volumes_found} deleted, "
                        f"{report.volumes_remaining} remaining"),
            ("volumes deleted", report.volume_ids_deleted),
            ("volumes remaining", report.volume_ids_remaining),
            ("warnings", report.warnings),
            ("errors", report.errors),
        ]))
        console.print("[green]OK[/]: nothing left" if clean else "[red]FAILED[/]: something is left or failed")

    out.emit({**report.to_dict(), "ok": clean}, render)
    return EXIT_OK if clean else EXIT_FAILED


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``fly`` to the subcommands."""
    fly = sub.add_parser("fly", help="Fly Machines operations (cleanup)",
                         description="Operations on the Fly Machines app of the pool.")
    fly_sub = fly.add_subparsers(dest="fly_command", required=True, metavar="{cleanup}")
    cleanup = fly_sub.add_parser(
        "cleanup", parents=[common], help="destroy every machine and volume of the Fly app",
        description=(
            "Destroy every machine and volume of the Fly app, then verify and report (worker rows are not "
            "touched). The app is --app or the stored Fly provider config's; the API token is FLY_API_TOKEN or "
            "the active fly.apiToken secret. Asks for the app name on a terminal unless --yes; with no terminal "
            "and no --yes it refuses (exit 2). Exit 1 when something could not be destroyed, 4 when no token is "
            "stored, 6 for a Fly API error."
        ),
    )
    cleanup.add_argument("--app", metavar="A", help="Fly app name (default: the stored provider config's)")
    cleanup.add_argument("--api-base", metavar="URL",
                         help="Machines API base URL (env AGENT_FACTORY_FLY_BASE_URL; default Fly's)")
    cleanup.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    cleanup.add_argument("--poll-interval-ms", type=positive_int, default=1000, metavar="N",
                         help="how often to poll while machines stop (default 1000)")
    cleanup.set_defaults(run=_cmd_cleanup)
