"""``agent-factory agents list|show|upsert|enable|disable``: agent profiles."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from ..errors import NotFoundError
from ._common import EXIT_OK, Output, fmt_ms, kv_table, open_factory, rows_table

__all__ = ["register"]


def _details(agent: Any) -> list[tuple[str, Any]]:
    return [
        ("agent", agent.agent_key), ("version", agent.version), ("enabled", agent.enabled),
        ("secret refs", agent.secrets_ref), ("bot identity", agent.bot_identity),
        ("bridge", agent.bridge_config.to_dict() if agent.bridge_config else None),
        ("created", fmt_ms(agent.created_at)), ("updated", fmt_ms(agent.updated_at)),
    ]


def _show(out: Output, agent: Any, title: str) -> None:
    out.emit(agent.to_dict(), lambda c: c.print(kv_table(title, _details(agent))))


def _cmd_list(args: argparse.Namespace, out: Output) -> int:
    """Every agent profile, optionally only enabled or disabled ones."""
    agents = open_factory(args).agents.list(enabled=args.enabled)

    def render(console: Console) -> None:
        console.print(rows_table(
            f"agents ({len(agents)})", ("agent", "version", "enabled", "secret refs", "updated"),
            ([a.agent_key, a.version, a.enabled, a.secrets_ref, fmt_ms(a.updated_at)] for a in agents),
        ))

    out.emit([a.to_dict() for a in agents], render)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace, out: Output) -> int:
    """One agent profile."""
    agent = open_factory(args).agents.get(args.agent_key)
    if agent is None:
        raise NotFoundError(f"agent {args.agent_key!r} not found")
    _show(out, agent, f"agent {agent.agent_key}")
    return EXIT_OK


def _cmd_upsert(args: argparse.Namespace, out: Output) -> int:
    """Create an agent or update it; what no option names keeps its stored value."""
    factory = open_factory(args, create=True)
    existing = factory.agents.get(args.agent_key)
    if args.clear_secret_refs:
        refs: list[str] = []
    elif args.secret_ref is not None:
        refs = list(dict.fromkeys(args.secret_ref))
    else:
        refs = list(existing.secrets_ref) if existing is not None else []
    version = args.version or (existing.version if existing is not None else "1.0.0")
    enabled = args.enabled if args.enabled is not None else (existing.enabled if existing is not None else True)
    agent = factory.agents.upsert_agent(
        args.agent_key, version=version, secrets_ref=refs, bot_identity=args.bot_identity, enabled=enabled,
    )
    _show(out, agent, f"agent {agent.agent_key} {'updated' if existing is not None else 'created'}")
    return EXIT_OK


def _cmd_enable(args: argparse.Namespace, out: Output) -> int:
    """Let an agent receive messages again."""
    _show(out, open_factory(args).agents.enable(args.agent_key), f"agent {args.agent_key} enabled")
    return EXIT_OK


def _cmd_disable(args: argparse.Namespace, out: Output) -> int:
    """Stop accepting messages for an agent."""
    _show(out, open_factory(args).agents.disable(args.agent_key), f"agent {args.agent_key} disabled")
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``agents`` to the subcommands."""
    agents = sub.add_parser("agents", help="list, show, create/update, enable and disable agents",
                            description="Agent profiles: the agents messages are enqueued for.")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True,
                                       metavar="{list,show,upsert,enable,disable}")
    listing = agents_sub.add_parser("list", parents=[common], help="every agent",
                                    description="Every agent profile by key.")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--enabled", dest="enabled", action="store_const", const=True, default=None,
                       help="only enabled agents")
    which.add_argument("--disabled", dest="enabled", action="store_const", const=False, help="only disabled agents")
    listing.set_defaults(run=_cmd_list)

    show = agents_sub.add_parser("show", parents=[common], help="one agent",
                                 description="One agent profile; exit 4 if it does not exist.")
    show.add_argument("agent_key", metavar="KEY")
    show.set_defaults(run=_cmd_show)

    upsert = agents_sub.add_parser(
        "upsert", parents=[common], help="create or update an agent",
        description="Create an agent, or update it: options not given keep the stored values (a new agent: "
                    "version 1.0.0, no secret refs, enabled). Creates the database if it does not exist. "
                    "The stored secret refs always include fly.apiToken.",
    )
    upsert.add_argument("agent_key", metavar="KEY")
    upsert.add_argument("--version", help="agent version")
    refs = upsert.add_mutually_exclusive_group()
    refs.add_argument("--secret-ref", action="append", metavar="REF",
                      help="a secret the agent's workers receive (repeat for several; replaces the stored list)")
    refs.add_argument("--clear-secret-refs", action="store_true", help="store no secret refs")
    upsert.add_argument("--bot-identity", help="bot identity (kept when not given)")
    state = upsert.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None,
                       help="enable the agent")
    state.add_argument("--disable", dest="enabled", action="store_const", const=False, help="disable the agent")
    upsert.set_defaults(run=_cmd_upsert)

    for name, run, text in (("enable", _cmd_enable, "let the agent receive messages again"),
                            ("disable", _cmd_disable, "stop accepting messages for the agent")):
        p = agents_sub.add_parser(name, parents=[common], help=text, description=f"{text[0].upper()}{text[1:]}; "
                                  "exit 4 if it does not exist.")
        p.add_argument("agent_key", metavar="KEY")
        p.set_defaults(run=run)
