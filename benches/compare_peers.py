#!/usr/bin/env python3
"""agent-factory against Python SQLite job queues, one workload, two durability settings.

Workload (per system, per run, on a fresh database FILE in a fresh temp dir):
  enqueue N messages one by one (message i goes to conversation i % C), then drain
  them one by one (claim + complete / dequeue + execute / get + ack / pop + done).
  Every drained payload is read (its ``messageText``), so all systems do the same work.

Systems:
  af-sync        agent_factory ``Factory``: ``f.queue.enqueue``; drain with a pooled worker,
                 ``c = w.claim()`` then ``c = w.complete(c, claim_next=True)``
  af-async       the same through ``AsyncFactory`` (every call awaited, inside ``asyncio.run``)
  huey           huey with ``SqliteStorage``: enqueue by calling a task; drain with
                 ``huey.dequeue()`` + ``huey.execute(task)`` (the consumer's own two calls).
                 No lease/ack: a dequeued task is deleted.
  persist-queue  ``persistqueue.SQLiteAckQueue``: ``put``; ``get(block=False, raw=True)`` + ``ack``
  litequeue      ``litequeue.LiteQueue``: ``put(json)``; ``pop`` + ``done`` (it stores text only,
                 so the payload is JSON-encoded on put and decoded on pop)

Payload: the same dict for everyone, ``{"provider", "providerUserId", "messageText"}``,
about 200 bytes as JSON, unique per message. huey and persist-queue pickle it.

Settings (peers are put on the same one as agent_factory, read back with ``PRAGMA synchronous``):
  default  agent_factory default (WAL + synchronous=NORMAL); peers' connections at NORMAL (1)
  durable  agent_factory ``durable=True`` (WAL + FULL); peers at FULL (2)
Before each round of durable runs a 1 s fsync probe (4 KiB pwrite at offset 0 + os.fsync,
in the temp dir) is printed, so durable figures can be read against the disk.

Runs are interleaved round-robin (run 1 of every system, then run 2, ...), so a slow stretch
of the shared disk or CPU hits every system. Tables show medians; every run is printed too.

Usage:
  /work/venv/bin/python benches/compare_peers.py
  ... --n 20000 --conversations 1000 --runs 3 --settings default,durable \
      --systems af-sync,af-async,huey,persist-queue,litequeue [--json out.json]

Peers: ``/work/venv/bin/pip install huey persist-queue litequeue``; a missing one is skipped
with a note. persist-queue's and litequeue's drains are quadratic in N (they scan past
finished rows), so their drain rate depends on N; at N=20000 one run of each takes 20-50 s;
the whole default run (3 runs, both settings) takes about 11 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

SYSTEMS = ("af-sync", "af-async", "huey", "persist-queue", "litequeue")
SETTINGS = ("default", "durable")
SYNC_LEVEL = {"default": 1, "durable": 2}  # PRAGMA synchronous: NORMAL / FULL
AGENT = "bench-agent"
WORKER = "bench-worker"

# Targets of the issue, on e2e msg/s: (setting, peer) -> minimum af-sync / peer ratio.
TARGETS = {
    ("default", "huey"): 1.5,
    ("default", "persist-queue"): 10.0,
    ("default", "litequeue"): 10.0,
    ("durable", "huey"): 1.0,
}


# --------------------------------------------------------------------------- workload


def make_payloads(n: int, conversations: int) -> tuple[list[dict], list[str]]:
    """N payload dicts (~200 bytes as JSON, unique) and the conversation of each."""
    filler = "Please summarise the attached notes and reply with three short bullet points, thanks."
    payloads = []
    convs = []
    for i in range(n):
        c = i % conversations
        payloads.append(
            {
                "provider": "telegram",
                "providerUserId": f"user-{c:05d}",
                "messageText": f"Message {i:07d} in conversation {c:05d}. {filler}",
            }
        )
        convs.append(f"conv-{c:05d}")
    return payloads, convs


@dataclass
class Outcome:
    t_enqueue: float
    t_drain: float
    cpu: float  # process CPU seconds over both phases
    drained: int
    checksum: int


def _check(name: str, got: int, want: int) -> None:
    if got != want:
        raise RuntimeError(f"{name}: drained {got} messages, expected {want}")


# --------------------------------------------------------------------------- systems


def run_af_sync(setting: str, d: str, payloads: list[dict], convs: list[str]) -> Outcome:
    from agent_factory import Factory

    durable = setting == "durable"
    f = Factory(os.path.join(d, "af.db"), durable=durable)
    info = f.info()
    if info["durable"] != durable or info["journal_mode"] != "wal":
        raise RuntimeError(f"unexpected store settings: {info}")
    f.agents.upsert_agent(AGENT)
    enqueue = f.queue.enqueue
    c0 = time.process_time()
    t0 = time.perf_counter()
    for conv, p in zip(convs, payloads, strict=True):
        enqueue(conv, AGENT, p)
    t1 = time.perf_counter()
    w = f.worker(WORKER, mode="pooled")
    n = 0
    checksum = 0
    c = w.claim()
    while c is not None:
        checksum += len(c.payload["messageText"])
        n += 1
        c = w.complete(c, claim_next=True)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    del w, f
    return Outcome(t1 - t0, t2 - t1, cpu, n, checksum)


def run_af_async(setting: str, d: str, payloads: list[dict], convs: list[str]) -> Outcome:
    from agent_factory import AsyncFactory

    durable = setting == "durable"

    async def main() -> Outcome:
        f = AsyncFactory(os.path.join(d, "af.db"), durable=durable)
        info = f.info()
        if info["durable"] != durable or info["journal_mode"] != "wal":
            raise RuntimeError(f"unexpected store settings: {info}")
        await f.agents.upsert_agent(AGENT)
        enqueue = f.queue.enqueue
        c0 = time.process_time()
        t0 = time.perf_counter()
        for conv, p in zip(convs, payloads, strict=True):
            await enqueue(conv, AGENT, p)
        t1 = time.perf_counter()
        w = f.worker(WORKER, mode="pooled")
        n = 0
        checksum = 0
        c = await w.claim()
        while c is not None:
            checksum += len(c.payload["messageText"])
            n += 1
            c = await w.complete(c, claim_next=True)
        t2 = time.perf_counter()
        cpu = time.process_time() - c0
        return Outcome(t1 - t0, t2 - t1, cpu, n, checksum)

    return asyncio.run(main())


def run_huey(setting: str, d: str, payloads: list[dict], convs: list[str]) -> Outcome:
    from huey import Huey
    from huey.storage import SqliteStorage

    level = SYNC_LEVEL[setting]

    class Storage(SqliteStorage):
        # huey's only knob (fsync=) picks FULL or OFF; set the level we compare at.
        def _create_connection(self):  # type: ignore[no-untyped-def]
            conn = super()._create_connection()
            conn.execute(f"pragma synchronous={level}")
            return conn

    huey = Huey("bench", storage_class=Storage, filename=os.path.join(d, "huey.db"))
    conn = huey.storage.conn
    got = conn.execute("pragma synchronous").fetchone()[0]
    mode = conn.execute("pragma journal_mode").fetchone()[0]
    if got != level or mode != "wal":
        raise RuntimeError(f"huey connection at synchronous={got}, journal_mode={mode}")
    seen = [0, 0]

    @huey.task()
    def handle(payload):  # type: ignore[no-untyped-def]
        seen[0] += 1
        seen[1] += len(payload["messageText"])

    c0 = time.process_time()
    t0 = time.perf_counter()
    for p in payloads:
        handle(p)
    t1 = time.perf_counter()
    dequeue, execute = huey.dequeue, huey.execute
    while True:
        task = dequeue()
        if task is None:
            break
        execute(task)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    huey.storage.close()
    return Outcome(t1 - t0, t2 - t1, cpu, seen[0], seen[1])


def run_persist_queue(setting: str, d: str, payloads: list[dict], convs: list[str]) -> Outcome:
    from persistqueue import Empty, SQLiteAckQueue

    level = SYNC_LEVEL[setting]
    q = SQLiteAckQueue(os.path.join(d, "pq"), auto_commit=True, multithreading=False)
    # multithreading=False: getter and putter are one connection.
    q._conn.execute(f"PRAGMA synchronous={level}")
    got = q._conn.execute("PRAGMA synchronous").fetchone()[0]
    mode = q._conn.execute("PRAGMA journal_mode").fetchone()[0]
    if got != level or mode != "wal" or q._putter is not q._getter:
        raise RuntimeError(f"persist-queue connection at synchronous={got}, journal_mode={mode}")
    c0 = time.process_time()
    t0 = time.perf_counter()
    for p in payloads:
        q.put(p)
    t1 = time.perf_counter()
    n = 0
    checksum = 0
    while True:
        try:
            item = q.get(block=False, raw=True)
        except Empty:
            break
        checksum += len(item["data"]["messageText"])
        n += 1
        q.ack(id=item["pqid"])
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    q.close()
    return Outcome(t1 - t0, t2 - t1, cpu, n, checksum)


def run_litequeue(setting: str, d: str, payloads: list[dict], convs: list[str]) -> Outcome:
    from litequeue import LiteQueue

    level = SYNC_LEVEL[setting]
    q = LiteQueue(os.path.join(d, "lq.db"))
    q.conn.execute(f"PRAGMA synchronous={level}")
    got = q.conn.execute("PRAGMA synchronous").fetchone()[0]
    mode = q.conn.execute("PRAGMA journal_mode").fetchone()[0]
    if got != level or mode != "wal":
        raise RuntimeError(f"litequeue connection at synchronous={got}, journal_mode={mode}")
    dumps, loads = json.dumps, json.loads
    c0 = time.process_time()
    t0 = time.perf_counter()
    for p in payloads:
        q.put(dumps(p))
    t1 = time.perf_counter()
    n = 0
    checksum = 0
    while True:
        m = q.pop()
        if m is None:
            break
        checksum += len(loads(m.data)["messageText"])
        n += 1
        q.done(m.message_id)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    q.conn.close()
    return Outcome(t1 - t0, t2 - t1, cpu, n, checksum)


RUNNERS: dict[str, Callable[[str, str, list[dict], list[str]], Outcome]] = {
    "af-sync": run_af_sync,
    "af-async": run_af_async,
    "huey": run_huey,
    "persist-queue": run_persist_queue,
    "litequeue": run_litequeue,
}
MODULES = {
    "af-sync": "agent_factory",
    "af-async": "agent_factory",
    "huey": "huey",
    "persist-queue": "persistqueue",
    "litequeue": "litequeue",
}
PIP_NAMES = {"agent_factory": "agent-factory", "huey": "huey", "persistqueue": "persist-queue", "litequeue": "litequeue"}


def package_version(system: str) -> str:
    try:
        return importlib.metadata.version(PIP_NAMES[MODULES[system]])
    except importlib.metadata.PackageNotFoundError:
        return "?"


def available(systems: list[str]) -> list[str]:
    """The systems whose package imports; a note for each one that does not."""
    keep = []
    for s in systems:
        module = MODULES[s]
        try:
            __import__(module)
        except Exception as e:  # any import failure means "skip it"
            print(
                f"note: skipping {s}: cannot import {module} ({type(e).__name__}: {e}); "
                f"install it with `{sys.executable} -m pip install {PIP_NAMES[module]}`",
                file=sys.stderr,
            )
            continue
        keep.append(s)
    return keep


# --------------------------------------------------------------------------- measurement


def fsync_probe(d: str, seconds: float = 1.0) -> float:
    """fsyncs/s of a 4 KiB overwrite at offset 0 + os.fsync, for ``seconds``."""
    path = os.path.join(d, "fsync-probe.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        buf = b"\x5a" * 4096
        os.pwrite(fd, buf, 0)
        os.fsync(fd)
        n = 0
        t0 = time.perf_counter()
        while True:
            os.pwrite(fd, buf, 0)
            os.fsync(fd)
            n += 1
            t = time.perf_counter() - t0
            if t >= seconds:
                return n / t
    finally:
        os.close(fd)
        os.unlink(path)


@dataclass
class Result:
    system: str
    setting: str
    run: int
    n: int
    outcome: Outcome | None = None
    error: str | None = None
    load: float = 0.0

    @property
    def enqueue_rate(self) -> float:
        return self.n / self.outcome.t_enqueue  # type: ignore[union-attr]

    @property
    def drain_rate(self) -> float:
        return self.n / self.outcome.t_drain  # type: ignore[union-attr]

    @property
    def e2e_rate(self) -> float:
        o = self.outcome
        return self.n / (o.t_enqueue + o.t_drain)  # type: ignore[union-attr]

    @property
    def cpu_share(self) -> float:
        o = self.outcome
        return o.cpu / (o.t_enqueue + o.t_drain)  # type: ignore[union-attr]


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    probes: dict[str, list[float]] = field(default_factory=dict)


def run_one(system: str, setting: str, run: int, payloads: list[dict], convs: list[str]) -> Result:
    res = Result(system, setting, run, len(payloads), load=os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix=f"cmp-{system}-") as d:
        gc.collect()
        try:
            out = RUNNERS[system](setting, d, payloads, convs)
            _check(system, out.drained, len(payloads))
            res.outcome = out
        except Exception as e:  # report and go on with the others
            res.error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        gc.collect()
    return res


def fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def summarise(report: Report, setting: str, systems: list[str]) -> None:
    rows = [r for r in report.results if r.setting == setting]
    if not rows:
        return
    n = rows[0].n
    print()
    probes = report.probes.get(setting)
    probe_txt = ""
    if probes:
        probe_txt = f"; fsync probe {statistics.median(probes):,.0f}/s median of {', '.join(f'{p:,.0f}' for p in probes)}"
    print(f"== setting: {setting} (synchronous={'FULL' if setting == 'durable' else 'NORMAL'}), N={n}{probe_txt}")
    med: dict[str, dict[str, float]] = {}
    for s in systems:
        ok = [r for r in rows if r.system == s and r.outcome is not None]
        if not ok:
            continue
        med[s] = {
            "enq": statistics.median(r.enqueue_rate for r in ok),
            "drain": statistics.median(r.drain_rate for r in ok),
            "e2e": statistics.median(r.e2e_rate for r in ok),
            "e2e_min": min(r.e2e_rate for r in ok),
            "e2e_max": max(r.e2e_rate for r in ok),
            "runs": len(ok),
        }
    ours = med.get("af-sync", {}).get("e2e")
    header = (
        f"{'system':<15} {'enqueue msg/s':>14} {'drain msg/s':>12} {'e2e msg/s':>10} {'e2e [min-max]':>19} {'runs':>4} "
        f"{'af-sync ÷ this (e2e)':>21}"
    )
    print(header)
    print("-" * len(header))
    for s in systems:
        if s not in med:
            errs = [r.error for r in rows if r.system == s and r.error]
            if errs:
                print(f"{s:<15} failed: {errs[0]}")
            continue
        m = med[s]
        ratio = f"{ours / m['e2e']:.2f}x" if ours and s != "af-sync" else ("1.00x" if ours else "-")
        rng = f"[{m['e2e_min']:,.0f}-{m['e2e_max']:,.0f}]"
        print(
            f"{s:<15} {fmt_rate(m['enq']):>14} {fmt_rate(m['drain']):>12} {fmt_rate(m['e2e']):>10} {rng:>19} "
            f"{m['runs']:>4} {ratio:>21}"
        )
    for (st, peer), want in TARGETS.items():
        if st != setting or peer not in med or ours is None:
            continue
        got = ours / med[peer]["e2e"]
        verdict = "met" if got >= want else "NOT met"
        print(f"target: af-sync >= {want:g}x {peer} (e2e): {got:.2f}x -> {verdict}")


def print_run(r: Result) -> None:
    if r.outcome is None:
        print(f"  run {r.run} {r.setting:<8} {r.system:<15} FAILED: {r.error}", flush=True)
        return
    o = r.outcome
    print(
        f"  run {r.run} {r.setting:<8} {r.system:<15} enqueue {o.t_enqueue:7.2f}s {r.enqueue_rate:>9,.0f}/s"
        f" | drain {o.t_drain:7.2f}s {r.drain_rate:>9,.0f}/s | e2e {r.e2e_rate:>9,.0f}/s"
        f" | cpu {100 * r.cpu_share:3.0f}% | load1 {r.load:.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=20_000, help="messages per run (default 20000)")
    ap.add_argument("--conversations", type=int, default=1_000, help="conversations (default 1000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per system and setting; tables show the median (default 3)")
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma list of: default, durable")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma list of: {', '.join(SYSTEMS)}")
    ap.add_argument("--json", metavar="PATH", help="also write every run as JSON")
    args = ap.parse_args(argv)

    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in settings if s not in SETTINGS] + [s for s in systems if s not in SYSTEMS]
    if bad:
        ap.error(f"unknown setting/system: {', '.join(bad)}")
    if args.n < 1 or args.conversations < 1 or args.runs < 1:
        ap.error("--n, --conversations and --runs must be >= 1")
    systems = available(systems)
    if not systems:
        print("nothing to run", file=sys.stderr)
        return 2

    payloads, convs = make_payloads(args.n, args.conversations)
    sizes = [len(json.dumps(p)) for p in payloads]
    print(
        f"N={args.n} conversations={args.conversations} runs={args.runs} payload {min(sizes)}-{max(sizes)} bytes as JSON;"
        f" python {sys.version.split()[0]}, sqlite3 module on SQLite {sqlite3.sqlite_version}, nproc {os.cpu_count()}"
    )
    print("versions: " + ", ".join(f"{s} {package_version(s)}" for s in systems))
    report = Report()
    for setting in settings:
        print(f"\n-- {setting}", flush=True)
        for run in range(1, args.runs + 1):
            if setting == "durable":
                with tempfile.TemporaryDirectory(prefix="cmp-probe-") as d:
                    p = fsync_probe(d)
                report.probes.setdefault(setting, []).append(p)
                print(f"  fsync probe before durable run {run}: {p:,.0f} fsyncs/s (4 KiB overwrite + fsync)", flush=True)
            for system in systems:
                r = run_one(system, setting, run, payloads, convs)
                report.results.append(r)
                print_run(r)

    for setting in settings:
        summarise(report, setting, systems)

    if args.json:
        rows = []
        for r in report.results:
            row = {"system": r.system, "setting": r.setting, "run": r.run, "n": r.n, "load1": r.load, "error": r.error}
            if r.outcome is not None:
                row.update(
                    t_enqueue=r.outcome.t_enqueue,
                    t_drain=r.outcome.t_drain,
                    cpu_seconds=r.outcome.cpu,
                    enqueue_rate=r.enqueue_rate,
                    drain_rate=r.drain_rate,
                    e2e_rate=r.e2e_rate,
                )
            rows.append(row)
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "fsync_probes": report.probes, "runs": rows}, fh, indent=1)
    failed = [r for r in report.results if r.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
