"""The ``agent-factory`` console script, run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import payload

from agent_factory import Factory


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("agent-factory")
    cmd = [exe] if exe else [sys.executable, "-m", "agent_factory"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120)


def test_demo_reports_every_message_done_in_order() -> None:
    out = run_cli("demo", "--messages", "1200", "--conversations", "60", "--workers", "3", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["done"] == 1200 and report["duplicates"] == 0
    assert report["order_verified"] is True and report["ok"] is True
    assert sum(report["per_worker"].values()) == 1200
    assert report["claim_to_complete_p99_ms"] >= report["claim_to_complete_p50_ms"] > 0


def test_demo_human_output_has_a_report() -> None:
    out = run_cli("demo", "--messages", "200", "--conversations", "20", "--workers", "2")
    assert out.returncode == 0, out.stderr
    assert "order verified" in out.stdout and "OK" in out.stdout


def test_status_shows_counts_and_dead_letters(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    f = Factory(db)
    f.agents.upsert_agent("a", secrets_ref=[])
    f.queue.enqueue("c1", "a", payload(), max_attempts=1)
    f.queue.enqueue("c2", "a", payload())
    w = f.worker("w", mode="pooled")
    claim = w.claim()
    assert claim is not None
    w.fail(claim, "handler exploded")
    out = run_cli("status", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["queue"]["dead_letter"] == 1 and data["queue"]["queued_ready"] == 1
    assert data["dead_letters"][0]["last_error"] == "handler exploded"
    human = run_cli("status", env={**os.environ, "AGENT_FACTORY_DB": str(db)})
    assert human.returncode == 0 and "handler exploded" in human.stdout


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    assert run_cli("status", "--db", str(tmp_path / "missing.db")).returncode == 2
    assert run_cli("demo", "--messages", "0").returncode == 2
    assert run_cli("no-such-command").returncode == 2
