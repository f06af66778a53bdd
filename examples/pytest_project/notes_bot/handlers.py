"""The bot's worker handler: ``notes_bot.handlers:handle``.

Commands: ``/note <text>`` keeps a note, ``/list`` shows them numbered, anything
else is echoed. Notes live in the worker's data directory, which agent-factory
snapshots and restores per conversation, so they survive worker restarts.
"""

from __future__ import annotations

from agent_factory import JobContext

NOTES_FILE = "notes.txt"


def handle(ctx: JobContext) -> str:
    """Answer one message of a conversation."""
    text = (ctx.message_text or "").strip()
    notes_path = ctx.data_dir / NOTES_FILE
    notes = notes_path.read_text(encoding="utf-8").splitlines() if notes_path.exists() else []
    if text.startswith("/note "):
        notes.append(text.removeprefix("/note ").strip())
        notes_path.write_text("".join(f"{n}\n" for n in notes), encoding="utf-8")
        return f"noted ({len(notes)})"
    if text == "/list":
        return "\n".join(f"{i}. {n}" for i, n in enumerate(notes, 1)) or "no notes yet"
    return f"you said: {text}"
