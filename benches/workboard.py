"""Workboard cost vs. number of cards (issue 5 "Prove").

For each size (1 000, 10 000, 100 000 cards; ``--quick``: 1 000 only) it builds a
file database through the public API (one ``create`` transaction per card, about
0.1-0.4 ms each, so 100 000 cards take ~30-40 s), then times, on that board:

- ``create``    one more card;
- ``claim``     claim a todo card;
- ``complete``  complete the claimed card (as its owner);
- ``list``      one board page of 100 cards (``list(board_id=..., limit=100)``);
- ``stats``     ``stats()`` over every card;
- ``dispatch``  one ``dispatch`` pass with 100 due scheduled cards.

The background cards model a board that has been used for a while: 60 % done
(history), 30 % todo/backlog/triage without parents, 10 % done children of done
parents; one card in 100 is a held child (todo, parent not done). Cost should
stay flat in the number of cards: only the count of cards that can change
matters. Goals checked at the largest size: claim, complete and a 100-card page
under 5 ms; dispatch of 100 due cards under 50 ms; every operation at most
``FLAT_RATIO`` times its cost at the smallest size (``stats`` and ``list_boards``
read counters kept by triggers, ``promote_ready`` and ``dispatch`` skip cards still
waiting on their parents: schema V9).

Each figure is the median of ``REPS`` runs, in milliseconds. Run:

    python benches/workboard.py            # 1k, 10k, 100k (~2 minutes)
    python benches/workboard.py --quick    # 1k only (a smoke run, a few seconds)
    python benches/workboard.py --sizes 1000 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from agent_factory import Workboard

REPS = 15
DISPATCH_REPS = 5
DUE = 100
FLAT_RATIO = 3.0
GOALS_MS = {"claim": 5.0, "complete": 5.0, "list": 5.0, "dispatch": 50.0}
NOW = 1_700_000_000_000
BOARD = "bench"
OPS = ("create", "claim", "complete", "list", "stats", "list_boards", "promote_ready", "dispatch")


def build(wb: Workboard, n: int) -> list[str]:
    """``n`` background cards; returns ids of todo cards free to claim."""
    todo: list[str] = []

    i = 0
    while i < n:
        k = i % 10
        if k < 6:
            wb.create(f"done {i}", status="done", board_id=BOARD, now_ms=NOW)
        elif k < 9:
            status = ("todo", "backlog", "triage")[k - 6]
            c = wb.create(f"{status} {i}", status=status, board_id=BOARD, now_ms=NOW)
            if status == "todo":
                todo.append(c.id)
        else:
            parent = wb.create(f"parent {i}", status="done", board_id=BOARD, now_ms=NOW)
            i += 1
            if i % 100 == 0:  # one held child (todo, parent not done) per 100 cards
                held_parent = wb.create(f"held parent {i}", board_id=BOARD, now_ms=NOW).id
                wb.create(f"held child {i}", board_id=BOARD, parents=[held_parent], now_ms=NOW)
                i += 1
            else:
                child = wb.create(f"child {i}", board_id=BOARD, parents=[parent.id], now_ms=NOW)
                wb.complete(child.id, now_ms=NOW)
        i += 1
    return todo


def median_ms(fn: Callable[[], object], reps: int) -> float:
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        wb = Workboard(os.path.join(d, "wb.db"))
        t = time.perf_counter()
        todo = build(wb, n)
        print(f"  built {n} cards in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        out: dict[str, float] = {}
        out["create"] = median_ms(lambda: wb.create("new", board_id=BOARD, now_ms=NOW), REPS)
        pending = iter(todo)
        claimed: list[str] = []

        def claim() -> None:
            cid = next(pending)
            wb.claim(cid, "bench-worker", now_ms=NOW)
            claimed.append(cid)

        out["claim"] = median_ms(claim, REPS)
        done = iter(claimed)
        out["complete"] = median_ms(
            lambda: wb.complete(next(done), summary="ok", owner_id="bench-worker", now_ms=NOW), REPS
        )
        page = wb.list(board_id=BOARD, limit=100)
        assert len(page) == 100, len(page)
        out["list"] = median_ms(lambda: wb.list(board_id=BOARD, limit=100), REPS)
        out["stats"] = median_ms(lambda: wb.stats(now_ms=NOW), REPS)
        out["list_boards"] = median_ms(wb.list_boards, REPS)
        out["promote_ready"] = median_ms(lambda: wb.promote_ready(now_ms=NOW), REPS)
        wb.dispatch(now_ms=NOW)  # settle: the first pass counts nothing new
        samples = []
        for r in range(DISPATCH_REPS):
            due_at = NOW + 1000 * (r + 1)
            for j in range(DUE):
                wb.create(f"due {r}.{j}", board_id=BOARD, scheduled_at=due_at, now_ms=NOW)
            t = time.perf_counter()
            res = wb.dispatch(now_ms=due_at)
            samples.append((time.perf_counter() - t) * 1000)
            assert len(res.promoted) == DUE, (len(res.promoted), res.count)
            # Move the promoted cards out of `ready` so the next pass sees only new due cards.
            wb.bulk_update([c.id for c in res.promoted], patch={"status": "done"}, now_ms=due_at)
        out["dispatch"] = statistics.median(samples)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 000 cards only (smoke run)")
    ap.add_argument("--sizes", type=int, nargs="*", help="card counts (default 1000 10000 100000)")
    args = ap.parse_args(argv)
    sizes = [1000] if args.quick else (args.sizes or [1000, 10_000, 100_000])
    results = {}
    for n in sizes:
        print(f"size {n} ...", file=sys.stderr)
        results[n] = measure(n)
    head = "operation (ms, median)".ljust(24) + "".join(f"{n:>12,}" for n in sizes)
    print(head)
    print("-" * len(head))
    for op in OPS:
        print(op.ljust(24) + "".join(f"{results[n][op]:>12.3f}" for n in sizes))
    big, small = sizes[-1], sizes[0]
    ok = True
    print()
    for op, limit in GOALS_MS.items():
        v = results[big][op]
        good = v < limit
        ok &= good
        print(f"goal {op} < {limit:g} ms at {big:,} cards: {v:.3f} ms {'OK' if good else 'MISSED'}")
    if big != small:
        for op in OPS:
            ratio = results[big][op] / max(results[small][op], 1e-9)
            good = ratio <= FLAT_RATIO
            ok &= good
            print(f"flat {op}: {big:,} / {small:,} cards = {ratio:.2f}x {'OK' if good else 'NOT FLAT'}")
    print("ALL GOALS MET" if ok else "SOME GOALS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
