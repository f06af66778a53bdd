"""`agent-factory board ...`, driven as a real console script, checked through the
Python API on the same database file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent_factory import Workboard
from test_cli import db_state, run_cli


def test_board_create_list_show_claim_complete_move_dispatch(tmp_path: Path) -> None:
    db = tmp_path / "board.db"
    env = {**os.environ, "AGENT_FACTORY_DB": str(db)}
    created = run_cli("board", "create", "--board", "ops", "--title", "[bug] rotate the keys", "--agent", "fixer",
                      "--priority", "urgent", "--label", "security", "--label", "ops", "--json", env=env)
    assert created.returncode == 0, created.stderr
    wb = Workboard(db)
    card = wb.get(json.loads(created.stdout)["id"])
    assert card is not None and json.loads(created.stdout) == card.to_dict()
    assert (card.board_id, card.title, card.priority, card.labels, card.agent_id, card.status) == (
        "ops", "[bug] rotate the keys", "urgent", ["security", "ops"], "fixer", "todo",
    )
    second = wb.create("write the runbook", board_id="ops", status="backlog")

    listed = run_cli("board", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    boards = {b["id"]: b for b in json.loads(listed.stdout)}
    assert boards["ops"]["total"] == 2 and boards["ops"]["by_status"] == {"todo": 1, "backlog": 1}
    assert boards["ops"]["stats"] == wb.stats(board_id="ops").to_dict()
    assert "default" in boards

    claimed = run_cli("board", "claim", card.id, "--worker", "w-1", "--ttl-ms", "60000", env=env)
    assert claimed.returncode == 0, claimed.stderr
    token = claimed.stdout.strip()  # the token alone on stdout, for scripts
    now = wb.get(card.id)
    assert now is not None and now.status == "running" and now.claim is not None
    assert now.claim["token"] == token and now.claim["owner_id"] == "w-1"
    assert 59_000 <= now.claim["expires_at"] - now.claim["claimed_at"] <= 60_000

    human = run_cli("board", "show", "ops", env=env)
    assert human.returncode == 0, human.stderr
    for text in ("running (1)", "backlog (1)", "[bug] rotate the keys", "write the runbook", card.id, "w-1",
                 "urgent", "security, ops"):
        assert text in human.stdout, text
    assert human.stdout.index("backlog (1)") < human.stdout.index("running (1)")  # board order
    shown = run_cli("board", "show", "ops", "--json", env=env)
    columns = json.loads(shown.stdout)["columns"]
    assert [c["id"] for c in columns["running"]] == [card.id] and [c["id"] for c in columns["backlog"]] == [second.id]
    assert all(columns[s] == [] for s in ("triage", "todo", "scheduled", "ready", "review", "blocked", "done"))

    before = db_state(db)
    taken = run_cli("board", "claim", card.id, "--worker", "w-2", "--json", env=env)
    assert taken.returncode == 5 and json.loads(taken.stdout)["error"]["kind"] == "conflict"
    wrong = run_cli("board", "complete", card.id, "--token", "not-the-token", env=env)
    assert wrong.returncode == 5 and "claimed by w-1" in wrong.stderr
    assert run_cli("board", "move", "no-such-card", "done", env=env).returncode == 4
    assert run_cli("board", "move", card.id, "finished", env=env).returncode == 2
    assert run_cli("board", "show", "no-such-board", env=env).returncode == 4
    assert run_cli("board", "create", "--board", "ops", "--title", "", env=env).returncode == 2
    assert db_state(db) == before

    done = run_cli("board", "complete", card.id, "--token", token, "--summary", "keys rotated", "--json", env=env)
    assert done.returncode == 0, done.stderr
    finished = wb.get(card.id)
    assert finished is not None and finished.status == "done" and finished.claim is None
    assert json.loads(done.stdout) == finished.to_dict()

    moved = run_cli("board", "move", second.id, "ready", env=env)
    assert moved.returncode == 0 and "ready" in moved.stdout
    dispatched = run_cli("board", "dispatch", "--board", "ops", "--json", env=env)
    assert dispatched.returncode == 0, dispatched.stderr
    assert set(json.loads(dispatched.stdout)) == {"promoted", "reclaimed", "blocked", "orchestrated", "count"}
    ready = wb.get(second.id)
    assert ready is not None and ready.status == "ready"
