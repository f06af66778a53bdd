"""``agent-factory enqueue``: one message from options, or many from a JSON Lines
file in one all-or-nothing transaction (``factory.queue.enqueue_many``).

A message is described by the same fields either way (a JSONL line is an object
with the option names in snake_case):

- ``agent`` (or ``agent_key``), ``conversation`` (or ``conversation_id``): required;
- ``text``: the ``messageText``; ``provider_user_id``: the ``providerUserId``;
  ``provider``: the ``provider`` (default ``cli``);
- ``priority``, ``max_attempts``: integers; ``scheduled_for``: epoch ms or an ISO
  8601 time with a zone;
- ``payload``: a payload object (the wire shape of ``Factory.queue.enqueue``:
  ``provider``, ``providerUserId``, ``messageText``, ``externalMessageId``,
  ``rawUpdateJson``, ``metadata``, ``attachments``) that the fields above fill in
  or override.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console

from ..errors import ValidationError
from ._common import EXIT_OK, Output, cell, open_factory, parse_time_ms, read_text_input

__all__ = ["register", "build_item", "parse_jsonl"]

_ALIASES = {"agent_key": "agent", "conversation_id": "conversation"}
_FIELDS = ("agent", "conversation", "text", "provider_user_id", "provider", "priority", "scheduled_for",
           "max_attempts", "payload")
_DEFAULT_PROVIDER = "cli"


def _int_field(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer, got {value!r}")
    return value


def build_item(fields: Mapping[str, Any], where: str = "", *, options: bool = False) -> dict[str, Any]:
    """One ``enqueue_many`` item from the CLI's message fields (see the module doc).
    ``where`` prefixes error messages (e.g. ``"line 3: "``); ``options`` names the
    fields as command-line options (``--conversation``) in them."""

    def label(name: str) -> str:
        return "--" + name.replace("_", "-") if options else name

    given: dict[str, Any] = {}
    for key, value in fields.items():
        name = _ALIASES.get(key, key)
        if name not in _FIELDS:
            raise ValidationError(f"{where}unknown field {key!r}; allowed: {', '.join(_FIELDS)}")
        if name in given and value is not None:
            raise ValidationError(f"{where}{name!r} is given twice (as {key!r} too)")
        if value is not None:
            given[name] = value
    for name in ("agent", "conversation"):
        if not isinstance(given.get(name), str) or not given[name]:
            raise ValidationError(f"{where}{label(name)} is required (a non-empty string)")
    base = given.get("payload", {})
    if not isinstance(base, dict):
        raise ValidationError(f"{where}{label('payload_json') if options else 'payload'} must be a JSON object, "
                              f"got {type(base).__name__}")
    payload = dict(base)
    for name, key in (("text", "messageText"), ("provider_user_id", "providerUserId"), ("provider", "provider")):
        if name in given:
            if not isinstance(given[name], str):
                raise ValidationError(f"{where}{name} must be a string, got {given[name]!r}")
            payload[key] = given[name]
    payload.setdefault("provider", _DEFAULT_PROVIDER)
    if "messageText" not in payload:
        raise ValidationError(f"{where}{label('text')} is required (or messageText in the payload)")
    item: dict[str, Any] = {"conversation_id": given["conversation"], "agent_key": given["agent"], "payload": payload}
    for name in ("priority", "max_attempts"):
        if name in given:
            item[name] = _int_field(given[name], f"{where}{label(name)}")
    if "scheduled_for" in given:
        when = given["scheduled_for"]
        if isinstance(when, str):
            item["scheduled_for"] = parse_time_ms(when, f"{where}{label('scheduled_for')}")
        else:
            item["scheduled_for"] = _int_field(when, f"{where}{label('scheduled_for')}")
    return item


def parse_jsonl(text: str, advance: Callable[[int], None] = lambda n: None) -> list[dict[str, Any]]:
    """``enqueue_many`` items from JSON Lines (blank lines skipped); ``advance`` is
    called with each line's length in bytes. Any bad line is a ``ValidationError``
    naming its number, and nothing is enqueued."""
    items: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        advance(len(line.encode("utf-8")))
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValidationError(f"line {number}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(fields, dict):
            raise ValidationError(f"line {number}: expected a JSON object, got {type(fields).__name__}")
        items.append(build_item(fields, f"line {number}: "))
    if not items:
        raise ValidationError("the file holds no messages")
    return items


def _cmd_enqueue(args: argparse.Namespace, out: Output) -> int:
    """Enqueue one message (options) or a JSON Lines file of them (all or nothing)."""
    single = {
        "agent": args.agent, "conversation": args.conversation, "text": args.text,
        "provider_user_id": args.provider_user_id, "provider": args.provider, "priority": args.priority,
        "scheduled_for": args.scheduled_for, "max_attempts": args.max_attempts,
    }
    if args.payload_json is not None:
        try:
            single["payload"] = json.loads(args.payload_json)
        except json.JSONDecodeError as e:
            raise ValidationError(f"--payload-json is not valid JSON ({e.msg} at column {e.colno})") from None
    if args.file is not None:
        clashing = [f"--{k.replace('_', '-')}" for k, v in single.items() if v is not None]
        if clashing:
            raise ValidationError(f"--file takes every field from the file; drop {', '.join(clashing)}")
        text = read_text_input(args.file)
        with out.progress(f"reading {args.file}", len(text.encode("utf-8"))) as advance:
            items = parse_jsonl(text, advance)
    else:
        items = [build_item({k: v for k, v in single.items() if v is not None}, options=True)]
    factory = open_factory(args)
    with out.progress(f"enqueueing {len(items)} messages", None):
        ids = factory.queue.enqueue_many(items)

    def render(console: Console) -> None:
        if len(ids) == 1:
            console.print(cell(f"enqueued message {ids[0]}"))
        else:
            console.print(cell(f"enqueued {len(ids)} messages: {ids[0]} … {ids[-1]}"))

    out.emit({"count": len(ids), "message_ids": ids}, render)
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``enqueue`` to the subcommands."""
    enqueue = sub.add_parser(
        "enqueue", parents=[common],
        help="enqueue a message, or a JSON Lines file of messages (all or nothing)",
        description=(
            "Enqueue one message described by the options, or with --file every message of a JSON Lines file "
            "(one object per line with the option names in snake_case: agent, conversation, text, "
            "provider_user_id, provider, priority, scheduled_for, max_attempts, payload) in one transaction: "
            "one bad line or unknown agent and nothing is enqueued. Prints the message ids. Exit 2 for bad "
            "input, 4 for an unknown agent or missing file/database, 5 for a disabled agent."
        ),
    )
    enqueue.add_argument("--agent", help="agent key")
    enqueue.add_argument("--conversation", help="conversation id")
    enqueue.add_argument("--text", help="message text (payload messageText)")
    enqueue.add_argument("--provider-user-id", metavar="U", help="payload providerUserId")
    enqueue.add_argument("--provider", help=f"payload provider (default {_DEFAULT_PROVIDER!r})")
    enqueue.add_argument("--priority", type=int, metavar="N", help="priority (higher is served first)")
    enqueue.add_argument("--scheduled-for", metavar="ISO|MS", help="not before this time (ISO 8601 with zone, or epoch ms)")
    enqueue.add_argument("--max-attempts", type=int, metavar="N", help="attempts before dead letter")
    enqueue.add_argument("--payload-json", metavar="JSON", help="payload object the options fill in or override")
    enqueue.add_argument("--file", metavar="PATH", help="JSON Lines file of messages ('-' for stdin)")
    enqueue.set_defaults(run=_cmd_enqueue)
