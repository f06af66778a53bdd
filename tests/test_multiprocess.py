"""Several real worker processes on one database file, one of them SIGKILLed
while it holds a lease.

Every worker is a pooled worker in its own process with a short lease. A worker
logs a message id only after ``complete`` returned True, so the union of the logs
is exactly what was acknowledged. The first delivery of the ``HOLD`` message makes
its worker announce itself and hang; the test kills that process with SIGKILL.
The survivors must recover the lease (claims recover expired leases inline) and
finish everything, each message exactly once and in order within a conversation.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path

from agent_factory import Config, Factory, LeaseConfig, RetryPolicy

N_MESSAGES = 300
N_CONVERSATIONS = 30
N_WORKERS = 4
AGENT = "bot"
CONFIG = Config(
    lease=LeaseConfig(lease_ms=1500, stale_after_ms=3000),
    retry=RetryPolicy(max_attempts=3, base_delay_ms=100, max_delay_ms=500),
)

WORKER_SCRIPT = textwrap.dedent(
    """
    import json, os, random, sys, time
    from agent_factory import Config, Factory

    db, worker_id, log_path, hold_marker, config_json, deadline = sys.argv[1:7]
    deadline = float(deadline)
    f = Factory(db, config=Config.from_dict(json.loads(config_json)))
    w = f.worker(worker_id, mode="pooled")
    log = open(log_path, "a", buffering=1)
    while True:
        if time.time() > deadline:
            print("worker gave up: deadline passed", file=sys.stderr)
            sys.exit(3)
        claim = w.claim()
        if claim is None:
            s = f.queue.stats()
            if s.queued_ready + s.queued_delayed + s.processing == 0:
                break
            time.sleep(0.01)
            continue
        claimed_ns = time.time_ns()
        if claim.payload["messageText"] == "HOLD" and claim.attempt == 1:
            tmp = hold_marker + ".tmp"
            with open(tmp, "w") as fh:
                json.dump({"pid": os.getpid(), "worker_id": worker_id, "message_id": claim.message_id}, fh)
            os.replace(tmp, hold_marker)
            time.sleep(3600)  # the test kills us here, lease held
        time.sleep(random.random() * 0.003)
        completing_ns = time.time_ns()
        if w.complete(claim):
            log.write(json.dumps({
                "id": claim.message_id, "conv": claim.conversation_id, "attempt": claim.attempt,
                "claimed_ns": claimed_ns, "completing_ns": completing_ns,
            }) + "\\n")
            log.flush()
        else:
            print(f"lost lease on {claim.message_id}", file=sys.stderr)
    log.close()
    """
)


def test_workers_in_processes_survive_a_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    f = Factory(db, config=CONFIG)
    f.agents.upsert_agent(AGENT)
    items = [
        {
            "conversation_id": f"conv-{i % N_CONVERSATIONS:02d}",
            "agent_key": AGENT,
            "payload": {"provider": "telegram", "providerUserId": "u", "messageText": "HOLD" if i == 0 else f"m{i}"},
        }
        for i in range(N_MESSAGES)
    ]
    ids = f.queue.enqueue_many(items)
    hold_id = ids[0]
    enqueue_order: dict[str, list[str]] = defaultdict(list)
    for mid, item in zip(ids, items, strict=True):
        enqueue_order[item["conversation_id"]].append(mid)

    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    marker = tmp_path / "holding.json"
    deadline = time.time() + 60
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    errs: dict[str, Path] = {}
    try:
        for n in range(N_WORKERS):
            wid = f"proc-{n}"
            logs[wid] = tmp_path / f"{wid}.log"
            errs[wid] = tmp_path / f"{wid}.err"
            procs[wid] = subprocess.Popen(
                [sys.executable, str(script), str(db), wid, str(logs[wid]), str(marker),
                 json.dumps(CONFIG.to_dict()), str(deadline)],
                stdout=subprocess.DEVNULL,
                stderr=errs[wid].open("wb"),
            )

        # wait for a worker to hold the HOLD message, then kill it mid-handler
        while not marker.exists():
            assert time.time() < deadline - 40, "no worker claimed the HOLD message"
            dead = {w: p.returncode for w, p in procs.items() if p.poll() is not None}
            assert not dead, f"workers exited early: {dead}; stderr: {[errs[w].read_text() for w in dead]}"
            time.sleep(0.005)
        held = json.loads(marker.read_text())
        victim = held["worker_id"]
        assert held["message_id"] == hold_id
        assert procs[victim].pid == held["pid"]
        assert f.queue.get_job(hold_id).status == "processing"  # type: ignore[union-attr]
        os.kill(held["pid"], signal.SIGKILL)
        assert procs[victim].wait(timeout=10) == -signal.SIGKILL

        for wid, p in procs.items():
            if wid == victim:
                continue
            rc = p.wait(timeout=max(1.0, deadline - time.time()))
            assert rc == 0, f"{wid} exited with {rc}: {errs[wid].read_text()}"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    # --- nothing lost, nothing stuck -------------------------------------------
    stats = f.queue.stats()
    assert (stats.queued_ready, stats.queued_delayed, stats.processing) == (0, 0, 0), stats
    done = f.queue.list_jobs("done", limit=10_000)
    dead_letter = f.queue.list_jobs("dead_letter", limit=10_000)
    assert dead_letter == [], f"unexpected dead letters: {dead_letter}"
    assert sorted(j.message_id for j in done) == sorted(ids)

    # --- each completion acknowledged exactly once -------------------------------
    records = []
    for wid, path in logs.items():
        for line in path.read_text().splitlines() if path.exists() else []:
            rec = json.loads(line)
            rec["worker"] = wid
            records.append(rec)
    counts = Counter(r["id"] for r in records)
    assert [m for m, c in counts.items() if c > 1] == [], "a message was completed twice"
    assert set(counts) == set(ids), f"completions missing from logs: {set(ids) - set(counts)}"
    by_id = {r["id"]: r for r in records}
    jobs = {j.message_id: j for j in done}
    for mid, rec in by_id.items():
        assert jobs[mid].claimed_by == rec["worker"], (mid, jobs[mid].claimed_by, rec["worker"])

    # --- the killed worker's message was finished by a survivor -------------------
    hold_job = jobs[hold_id]
    assert hold_job.claimed_by != victim
    assert by_id[hold_id]["worker"] != victim
    assert by_id[hold_id]["attempt"] == 2
    assert hold_job.attempts == 1, "the expired lease must count as one failed attempt"
    assert hold_job.last_error is None
    victim_row = f.workers.get(victim)
    assert victim_row is not None and victim_row.load == 0, victim_row

    # --- per conversation, strict enqueue order ----------------------------------
    for conv, order in enqueue_order.items():
        finished = [jobs[m].finished_at for m in order]
        assert finished == sorted(finished), (conv, finished)
        for earlier, later in itertools.pairwise(order):
            # the later message was handed out only after the earlier one's completion started
            assert by_id[later]["claimed_ns"] > by_id[earlier]["completing_ns"], (conv, earlier, later)
    # the work was really shared between the surviving processes
    assert len({r["worker"] for r in records} - {victim}) >= 2
