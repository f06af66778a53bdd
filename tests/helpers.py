"""Small builders shared by tests (import as ``from helpers import payload``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any


def read_only(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to a database file for checks next to a live handle.

    Python's ``sqlite3`` is a second copy of SQLite in this process, and the two
    copies do not see each other's locks: a read-write connection that closes
    believes it is the last one, checkpoints and deletes the WAL under the live
    handle, whose later commits then go to a file nobody else reads. A read-only
    connection never does that."""
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)


def payload(user: str = "u1", text: str = "hello", **extra: Any) -> dict[str, Any]:
    """A minimal valid Telegram-style payload."""
    return {"provider": "telegram", "providerUserId": user, "messageText": text, **extra}


def db_snapshot(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Schema, ``user_version`` and every row of every table of a database file, sorted,
    read through its own read-only connection (so no handle's caches play a part).
    Compare two snapshots to prove a rejected call wrote nothing."""
    con = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        out: dict[str, Any] = {
            "__schema__": sorted(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(), key=repr),
            "__user_version__": con.execute("PRAGMA user_version").fetchone()[0],
        }
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall():
            # sqlite_stat* are SQLite's planner statistics; sqlite_sequence is kept
            # (ids must never be consumed by a rejected call).
            if not name.startswith("sqlite_stat"):
                out[name] = sorted(con.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
        return out
    finally:
        con.close()
