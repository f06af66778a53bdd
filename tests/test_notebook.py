"""The example notebook runs end to end (so it never rots) and its HTML outputs
show what the tour promises: tables of agents, jobs, workers and snapshots, queue
stats, a card, and a kanban board with a column per status.

Executed with nbclient on the ``python3`` kernel of the current interpreter (the
kernelspec's ``python`` resolves to ``sys.executable``), working directory a
temporary one. Skipped only where nbclient is not installed (the test extra has it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent_factory._board_view import CARD_STATUSES

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook_tour.ipynb"


def _by_tag(nb: Any) -> dict[str, Any]:
    return {tag: cell for cell in nb.cells if cell.cell_type == "code" for tag in cell.metadata.get("tags", [])}


def _html(cell: Any) -> str:
    return "".join(
        "".join(out["data"]["text/html"])
        for out in cell.get("outputs", [])
        if out.get("output_type") == "execute_result" and "text/html" in out.get("data", {})
    )


def _plain(cell: Any) -> str:
    return "".join(
        "".join(out["data"].get("text/plain", ""))
        for out in cell.get("outputs", [])
        if out.get("output_type") == "execute_result"
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("notebook")
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return _by_tag(nb)


def test_notebook_is_committed_without_outputs_and_matches_its_generator() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_notebook_tour.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_notebook_runs_and_shows_the_queue(executed: dict[str, Any]) -> None:
    assert "support-agent" in _html(executed["agents"]) and "AgentProfile · 1 row" in _html(executed["agents"])
    assert "QueueStats · 6 messages" in _html(executed["enqueue"])
    queued = _html(executed["queued"])
    assert "Job · 6 rows" in queued and queued.count(">queued</span>") == 6 and "telegram:chat:2" in queued
    assert _plain(executed["worker"]).strip() == "6"  # the pooled worker handled every message
    stats = _html(executed["stats"])
    assert "QueueStats · 0 messages" in stats and "no message is ready" in stats
    done = _html(executed["jobs"])
    assert "Job · 6 rows" in done and done.count(">done</span>") == 6 and "pool-worker-1" in done
    workers = _html(executed["workers"])
    assert "pool-worker-1" in workers and re.search(r">active</span>", workers)
    snapshots = _html(executed["snapshots"])
    assert "Snapshot · 1 row" in snapshots and "telegram:chat:0" in snapshots and ">ready</span>" in snapshots
    assert "queued_ready" in _html(executed["metrics"])


def test_notebook_draws_the_board_as_kanban(executed: dict[str, Any]) -> None:
    board = _html(executed["board"])
    assert re.findall(r"data-status='([^']+)'", board) == list(CARD_STATUSES)
    assert "board ops · 7 cards" in board
    for title in ("Rotate the API keys", "Review the alert thresholds", "Migrate the database", "Write the postmortem"):
        assert title in board
    assert "claimed by alice" in board and ">urgent</span>" in board and ">security</span>" in board
    card = _html(executed["card"])
    assert "Review the alert thresholds" in card and ">running</span>" in card and "alice" in card

    after = _html(executed["dispatch"])
    done = after.split("data-status='done'", 1)[1]
    assert "Rotate the API keys" in done and "Update the runbook" in done  # run by the worker pool


def test_notebook_turns_tables_into_dataframes(executed: dict[str, Any]) -> None:
    per_conversation = _plain(executed["pandas_jobs"])
    assert "telegram:chat:0" in per_conversation and "workboard:ops:" in per_conversation
    cards = _html(executed["pandas_board"])
    assert "claim_owner" in cards and "alice" in cards and "Rotate the API keys" in cards
