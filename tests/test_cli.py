"""The ``agent-factory`` console script, run as a real subprocess."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent_factory import Factory, WorkerRecord
from helpers import payload


def db_state(path: Path) -> Any:
    """``helpers.db_snapshot(path)`` taken in a child process.

    The test process holds agent-factory connections (its own bundled SQLite) while
    the CLI processes write; opening and closing a second SQLite library's
    connection on the same file here (Python's ``sqlite3``) would drop the POSIX
    locks the bundled one holds (SQLite's "multiple copies of SQLite in one
    process" hazard) and let a CLI process checkpoint under its feet."""
    code = (
        "import pickle, sys; sys.path.insert(0, sys.argv[1]); from helpers import db_snapshot; "
        "sys.stdout.buffer.write(pickle.dumps(db_snapshot(sys.argv[2])))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(path)],
                         capture_output=True, check=True, timeout=60)
    return pickle.loads(out.stdout)


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``agent-factory`` console script (``python -m agent_factory``
    without one). stdin is ``input``, else empty (never a terminal)."""
    exe = shutil.which("agent-factory")
    cmd = [exe] if exe else [sys.executable, "-m", "agent_factory"]
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=env, input=input, stdin=stdin, timeout=120
    )


def test_in_process_demo_reports_every_message_done_in_order() -> None:
    out = run_cli("demo", "--in-process", "--messages", "1200", "--conversations", "60", "--workers", "3", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["done"] == 1200 and report["duplicates"] == 0
    assert report["order_verified"] is True and report["ok"] is True
    assert sum(report["per_worker"].values()) == 1200
    assert report["claim_to_complete_p99_ms"] >= report["claim_to_complete_p50_ms"] > 0


def test_in_process_demo_human_output_has_a_report() -> None:
    out = run_cli("demo", "--in-process", "--messages", "200", "--conversations", "20", "--workers", "2")
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
    assert run_cli("status", "--db", str(tmp_path / "missing.db")).returncode == 4  # not found
    assert run_cli("demo", "--messages", "0").returncode == 2
    assert run_cli("demo", "--waves", "0").returncode == 2
    (tmp_path / "taken.db").write_text("")
    taken = run_cli("demo", "--db", str(tmp_path / "taken.db"))
    assert taken.returncode == 2 and "fresh database" in taken.stderr
    assert run_cli("no-such-command").returncode == 2


# ---------------------------------------------------------------- the pool demo
# `agent-factory demo` (default mode): local worker processes spawned by the pool.


def worker_rows(db: Path) -> list[WorkerRecord]:
    return Factory(db).workers.list()


def live(pid: int) -> bool:
    """Whether ``pid`` is a running (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def assert_nothing_left(db: Path) -> None:
    """Every worker row stopped, no machine record or data directory left."""
    rows = worker_rows(db)
    assert rows and all(w.status == "stopped" for w in rows), [(w.worker_id, w.status) for w in rows]
    root = Path(f"{db}.workers")
    assert list((root / "machines").iterdir()) == []
    assert list((root / "volumes").iterdir()) == []


def test_demo_runs_the_pool_with_worker_processes_and_checks_everything(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = run_cli(
        "demo", "--messages", "48", "--conversations", "6", "--workers", "3", "--idle-timeout-ms", "3000",
        "--db", str(db), "--json",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["mode"] == "pool" and report["ok"] is True and report["problems"] == []
    assert report["done"] == 48 and report["dead_letter"] == 0 and report["duplicates"] == 0
    assert report["order_verified"] is True and report["missing_from_snapshots"] == 0
    # Two waves over six conversations: every conversation gets a worker in each wave,
    # and the second wave's workers continue from the first wave's snapshots.
    assert report["waves"] == 2 and report["restores_verified"] == report["restores_expected"] == 6
    assert report["workers_spawned"] >= 12 and report["workers_stopped"] == report["workers_spawned"]
    assert report["workers_left_running"] == 0 and report["snapshots_missing"] == 0
    assert report["snapshots_taken"] >= 12 and report["snapshots_failed"] == 0
    assert sum(report["per_worker"].values()) == 48
    assert report["claim_to_complete_p99_ms"] >= report["claim_to_complete_p50_ms"] >= 0
    assert report["drain_per_second"] > 0
    # What the report claims is what the database and the data root show.
    assert_nothing_left(db)
    f = Factory(db)
    assert len(f.workers.list()) == report["workers_spawned"]
    for c in range(6):
        ready = [s for s in f.snapshots.list_for_conversation(f"demo:conversation:{c}") if s.status == "ready"]
        assert len(ready) >= 2


def test_demo_human_output_reports_the_pool(tmp_path: Path) -> None:
    out = run_cli(
        "demo", "--messages", "12", "--conversations", "3", "--workers", "3", "--waves", "1", "--idle-timeout-ms", "1500"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for text in ("workers spawned", "workers stopped", "snapshots taken", "restores verified", "order verified", "OK"):
        assert text in out.stdout, text


def test_demo_that_fails_a_check_exits_1_and_still_stops_every_worker(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = run_cli("demo", "--messages", "40", "--conversations", "4", "--timeout", "0.5", "--db", str(db), "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is False and report["done"] < 40
    assert any("did not finish" in p for p in report["problems"]) and report["workers_left_running"] == 0
    assert_nothing_left(db)
    assert {w.stop_reason for w in worker_rows(db)} <= {"demo_failed", "idle_timeout", "machine_stopped"}


def test_demo_interrupted_drains_and_stops_every_worker(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    exe = shutil.which("agent-factory")
    cmd = [exe] if exe else [sys.executable, "-m", "agent_factory"]
    proc = subprocess.Popen(
        [*cmd, "demo", "--messages", "400", "--conversations", "4", "--workers", "4", "--db", str(db), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        machines = Path(f"{db}.workers") / "machines"
        deadline = time.monotonic() + 30
        while not (machines.is_dir() and len(list(machines.glob("*.json"))) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "no worker process started"
            time.sleep(0.05)
        time.sleep(0.5)
        pids = [json.loads(p.read_text())["pid"] for p in machines.glob("*.json")]
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert json.loads(stdout)["interrupted"] is True
    assert not any(live(pid) for pid in pids)
    assert_nothing_left(db)
    stopped = worker_rows(db)
    assert {w.stop_reason for w in stopped} <= {"interrupted", "capacity", "idle_timeout", "machine_stopped"}
    assert any(w.stop_reason == "interrupted" for w in stopped)
