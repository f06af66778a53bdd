#!/usr/bin/env python3
"""Write ``examples/notebook_tour.ipynb`` (without outputs) from the cells below.

The notebook is the source users open; this script keeps it reviewable as Python
and reproducible. ``tests/test_notebook.py`` executes the written notebook end to
end and checks its HTML outputs by the cells' tags.

Usage: ``tools/make_notebook_tour.py`` writes the file; ``--check`` exits 1 if it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "examples" / "notebook_tour.ipynb"

CELLS: list[tuple[str, str, str]] = [
    ("md", "", """\
# agent-factory in a notebook

A tour of the whole system on one machine: a factory on a temporary database, an
agent, messages across several conversations, a pooled worker handling them in this
kernel, the queue, workers and snapshots as tables, and a workboard drawn as a kanban
board. Every list the API returns is a `RecordList`: it renders as a table here and
`to_pandas()` turns it into a DataFrame (`pip install 'agent-factory[notebook]'`)."""),
    ("code", "setup", """\
import tempfile
from pathlib import Path

from agent_factory import Factory, JobContext, Workboard, Worker

workdir = Path(tempfile.mkdtemp(prefix="agent-factory-tour-"))
factory = Factory(workdir / "factory.db")
factory"""),
    ("md", "", "## An agent and some messages\n\nConversations are bound to the agent on first use."),
    ("code", "agents", """\
factory.agents.upsert_agent("support-agent")
factory.agents.list()"""),
    ("code", "enqueue", """\
for i in range(6):
    chat = i % 3
    factory.queue.enqueue(
        f"telegram:chat:{chat}",
        "support-agent",
        {"provider": "telegram", "providerUserId": str(chat), "messageText": f"hello #{i}"},
        priority=50 + i,
    )
factory.queue.stats()"""),
    ("code", "queued", 'factory.queue.list_jobs("queued")'),
    ("md", "", """\
## A pooled worker, in this kernel

`Worker` runs claim → hydrate → handler → complete with heartbeats on a Rust thread.
A pooled worker serves any conversation (still one message in flight per
conversation). `idle_timeout_ms` stops it once the queue is empty. A notebook already
runs an event loop, so the cell awaits `arun()`; a script calls `run()`."""),
    ("code", "worker", """\
def handle(ctx: JobContext) -> str:
    return f"echo: {ctx.message_text}"

worker = Worker(
    factory, "pool-worker-1", handle,
    mode="pooled", data_dir=workdir / "pool-worker-1", idle_timeout_ms=300, handle_signals=False,
)
result = await worker.arun()   # in a script: worker.run()
result.jobs_completed"""),
    ("code", "stats", "factory.queue.stats()"),
    ("code", "jobs", 'factory.queue.list_jobs("done")'),
    ("code", "workers", "factory.workers.list()"),
    ("md", "", "## Snapshots\n\nA worker's data directory, archived into the content-addressed blob store."),
    ("code", "snapshots", """\
(workdir / "pool-worker-1" / "notes.md").write_text("what the agent remembers\\n")
factory.snapshots.snapshot_directory(
    "pool-worker-1", "default", "support-agent", "telegram:chat:0", "manual", workdir / "pool-worker-1"
)
factory.snapshots.list_for_conversation("telegram:chat:0")"""),
    ("code", "metrics", "factory.metrics()"),
    ("md", "", """\
## A workboard as a kanban board

The workboard shares the factory's database. `kanban()` draws one column per status,
each card with its priority, labels and claim owner."""),
    ("code", "board", """\
board = Workboard(factory)
board.upsert_board("ops", name="Operations")
board.create("Rotate the API keys", board_id="ops", status="ready", priority="urgent",
             labels=["security"], agent_id="support-agent")
board.create("Update the runbook", board_id="ops", status="ready", labels=["docs"], agent_id="support-agent")
design = board.create("Design the on-call rota", board_id="ops", status="todo", priority="high", labels=["people"])
board.create("Hire an SRE", board_id="ops", status="backlog", parents=[design.id])
review = board.create("Review the alert thresholds", board_id="ops", status="ready", priority="high")
claim = board.claim(review.id, owner_id="alice")
board.create("Migrate the database", board_id="ops", status="blocked", priority="urgent", labels=["infra", "db"])
board.create("Write the postmortem", board_id="ops", status="done", labels=["docs"])
board.kanban("ops")"""),
    ("code", "card", "board.get(review.id)"),
    ("md", "", """\
## The board, run by the worker pool

`dispatch_to_queue` claims each ready card with an agent and enqueues it as a message
whose text is the card's worker context; the worker's completion completes the card."""),
    ("code", "dispatch", """\
out = board.dispatch_to_queue(factory, board_id="ops")
await Worker(
    factory, "pool-worker-2", handle,
    mode="pooled", data_dir=workdir / "pool-worker-2", idle_timeout_ms=300, handle_signals=False,
).arun()
board.kanban("ops")"""),
    ("md", "", "## pandas\n\nEvery table is one call away from a DataFrame."),
    ("code", "pandas_jobs", """\
jobs = factory.queue.list_jobs("done").to_pandas()
jobs.groupby("conversation_id").size()"""),
    ("code", "pandas_board", """\
cards = board.kanban("ops").to_pandas()
cards[["title", "status", "priority", "claim_owner"]]"""),
    ("code", "cleanup", """\
import shutil

shutil.rmtree(workdir)"""),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs or execution counts."""
    cells = []
    for kind, tag, source in CELLS:
        if kind == "md":
            cells.append(new_markdown_cell(source))
        else:
            cells.append(new_code_cell(source, metadata={"tags": [tag]} if tag else {}))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def render() -> str:
    """The notebook file's text (stable: fixed cell ids)."""
    nb = build()
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"tour-{i:02d}"
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run tools/make_notebook_tour.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
