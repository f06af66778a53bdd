"""The workboard benchmark's smoke mode keeps running (the benchmark itself is not a test).

Seed: none — this guards ``benches/workboard.py --quick`` (1 000 cards) against rot:
it must build its board through the public API, time every operation and print
its table and goal lines. Timing goals are not asserted here (shared CI machines
are too noisy); the benchmark's own exit status reports them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benches" / "workboard.py"


def test_workboard_bench_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode in (0, 1), proc.stderr
    out = proc.stdout
    for op in ("create", "claim", "complete", "list", "stats", "list_boards", "promote_ready", "dispatch"):
        assert any(line.startswith(op + " ") for line in out.splitlines()), (op, out)
    assert "goal dispatch < 50 ms at 1,000 cards" in out, out
    assert ("ALL GOALS MET" in out) or ("SOME GOALS MISSED" in out), out
