"""Bad input gets a typed exception naming the problem, and leaves the database unchanged.

Every test here makes one call that must be rejected and checks three things:

1. the exception class (exactly: ``TypeError`` vs ``ValidationError`` vs ``NotFoundError`` ...);
2. that the problem text names the parameter or field. The problem text is
   ``str(exc)`` plus any ``exc.__notes__``: pyo3 reports a wrong argument type as
   e.g. ``TypeError("'int' object is not an instance of 'str'")`` with the note
   ``"while processing 'agent_key'"``, which is what a traceback shows;
3. that the database FILE holds exactly the same content afterwards: every table
   (including ``sqlite_sequence``), the schema and ``user_version`` are dumped, rows
   sorted, through a separate read-only ``sqlite3`` connection before and after the
   call. The blob directory is compared too.

Each test gets its own copy of one populated database (agents, secrets, settings, a
blob, queued / in-flight / dead-lettered messages, history, workers in every status).

Tests whose name starts with ``test_bug_`` document a problem found while writing
this file; they fail until the library is fixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import sqlite3
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import (
    AsyncFactory,
    Claim,
    Config,
    ConflictError,
    Factory,
    InvalidStateError,
    LeaseConfig,
    ManualClock,
    NotFoundError,
    ProviderConfig,
    QueueConfig,
    RetryPolicy,
    ValidationError,
)
from agent_factory.testing import EPOCH_2026_MS

# --------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------


def db_snapshot(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Every row of every table of the database file, sorted, read through its own
    read-only connection (so the factory's connection and caches play no part)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        schema = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        tables = [
            name
            for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            # sqlite_stat* and sqlite_schema are sqlite's own; sqlite_sequence is kept
            # (message ids must never be consumed by a rejected call).
            if not name.startswith("sqlite_stat")
        ]
        out: dict[str, Any] = {
            "__schema__": sorted(schema, key=repr),
            "__user_version__": con.execute("PRAGMA user_version").fetchone()[0],
        }
        for name in tables:
            rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
            out[name] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def blob_files(root: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """The blob store's files with their sizes."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def problem_text(err: BaseException) -> str:
    """The exception message plus its notes (where pyo3 names the argument)."""
    return "\n".join([str(err), *getattr(err, "__notes__", ())])


# --------------------------------------------------------------------------------------
# A populated database
# --------------------------------------------------------------------------------------

BLOB_BYTES = b"hello, attachment"
BLOB_SHA = hashlib.sha256(BLOB_BYTES).hexdigest()
MISSING_SHA = "ab" * 32
UNKNOWN_MID = "999999"
WRONG_LEASE = "lease-not-the-right-one"
P = {"provider": "telegram", "providerUserId": "u1", "messageText": "hello"}
DISABLED_AGENT = "agent-off"


@dataclasses.dataclass
class World:
    f: Factory
    path: Path
    blob_root: str
    clock: ManualClock
    claim: Claim  # held by sticky worker w1 on conversation c1
    queued_id: str  # queued in c2
    dead_id: str  # dead-lettered in c3
    blob: str

    def state(self) -> tuple[dict[str, Any], list[tuple[str, int]]]:
        return db_snapshot(self.path), blob_files(self.blob_root)

    def handle(self, worker_id: str = "w1", mode: str = "sticky") -> Any:
        return self.f.worker(worker_id, mode=mode)  # type: ignore[arg-type]

    def fake_claim(self, **changes: Any) -> Claim:
        return dataclasses.replace(self.claim, **changes)


def attachment(sha: str = BLOB_SHA, **extra: Any) -> dict[str, Any]:
    return {"kind": "photo", "storageId": sha, "telegramFileId": "tg-file-1", "expiresAt": EPOCH_2026_MS + 60_000, **extra}


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def build_world(f: Factory, path: Path, clock: ManualClock) -> World:
    f.secrets.import_plaintext("telegram.botToken", "123:first")
    f.secrets.import_plaintext("telegram.botToken", "123:second", metadata={"by": "test"})
    f.agents.upsert_agent("a1", secrets_ref=["telegram.botToken"], bot_identity="bot-1")
    f.agents.upsert_agent("a2", bridge_config={"enabled": True, "base_url": "https://bridge.example"})
    f.agents.upsert_agent(DISABLED_AGENT, enabled=False)
    f.config.set_message_config(system_prompt="Be brief.", telegram_attachment_retention_ms=86_400_000)
    f.config.set_provider_config(ProviderConfig(kind="fly", app_name="app", region="ams"))
    blob = f.blobs.put(BLOB_BYTES)
    assert blob == BLOB_SHA
    f.queue.enqueue("c1", "a1", {**P, "attachments": [attachment()], "metadata": {"chat": "1"}})
    queued_id = f.queue.enqueue("c2", "a1", P, priority=10)
    dead_id = f.queue.enqueue("c3", "a1", P, max_attempts=1)
    claim = f.worker("w1").claim(conversation_id="c1")
    assert claim is not None
    pooled = f.worker("w2", mode="pooled")
    dead_claim = pooled.claim(conversation_id="c3")
    assert dead_claim is not None and pooled.fail(dead_claim, "boom").dead_lettered
    f.queue.append_conversation_messages("c1", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}])
    f.workers.upsert_worker_state("w-active", status="active", provider="fly", machine_id="m1", app_name="app")
    for status in ("active", "draining"):
        f.workers.upsert_worker_state("w-drain", status=status)
    for status in ("active", "draining", "stopping"):
        f.workers.upsert_worker_state("w-stopping", status=status)
    for status in ("active", "draining", "stopping", "stopped"):
        f.workers.upsert_worker_state("w-stopped", status=status)
    return World(f, path, f.info()["blob_root"], clock, claim, queued_id, dead_id, blob)


@pytest.fixture(scope="session")
def template_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The populated database, built once (rollback journal, so the file alone holds it)."""
    path = tmp_path_factory.mktemp("template") / "factory.db"
    clock = ManualClock(EPOCH_2026_MS)
    return build_world(Factory(path, journal_mode="delete", clock=clock), path, clock)


@pytest.fixture
def world(template_world: World, factory_path: Path, manual_clock: ManualClock) -> World:
    """A private copy of the populated database (file, master key and blobs), opened as usual."""
    src = template_world.path
    shutil.copyfile(src, factory_path)
    shutil.copyfile(f"{src}.key", f"{factory_path}.key")
    shutil.copytree(f"{src}.blobs", f"{factory_path}.blobs")
    f = Factory(factory_path, clock=manual_clock)
    return dataclasses.replace(template_world, f=f, path=factory_path, blob_root=f.info()["blob_root"], clock=manual_clock)


def expect_rejected(
    world: World,
    call: Callable[[World], Any],
    exc: type[BaseException] | tuple[type[BaseException], ...],
    *needles: str,
) -> BaseException:
    """``call`` raises exactly ``exc`` (one of them, for a tuple), its problem text
    contains every needle, and neither the database nor the blob store changed."""
    allowed = exc if isinstance(exc, tuple) else (exc,)
    wanted = " or ".join(e.__name__ for e in allowed)
    before = world.state()
    try:
        result = call(world)
    except BaseException as err:  # a pyo3 PanicException is a BaseException
        raised: BaseException | None = err
    else:
        raised = None
    changed = world.state() != before
    problems = []
    if raised is None:
        problems.append(f"accepted, returned {result!r:.300}; expected {wanted}")
    else:
        text = problem_text(raised)
        if type(raised) not in allowed:
            problems.append(f"expected {wanted}, got {type(raised).__module__}.{type(raised).__name__}: {text!r:.300}")
        missing = [n for n in needles if n not in text]
        if missing:
            problems.append(f"problem text {text!r:.300} does not name {missing}")
    if changed:
        problems.append("the call changed the database or blob store")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
    assert raised is not None
    return raised


def case(id_: str, call: Callable[[World], Any], exc: Any, *needles: str, **kw: Any) -> Any:
    return pytest.param(call, exc, needles, id=id_, **kw)


# --------------------------------------------------------------------------------------
# Sanity: the populated world accepts good input (so rejections below are about the one bad thing)
# --------------------------------------------------------------------------------------


def test_control_good_input_is_accepted(world: World) -> None:
    f = world.f
    assert f.queue.enqueue("c-new", "a1", {**P, "attachments": [attachment()]})
    assert f.queue.heartbeat("w1", world.claim.message_id, world.claim.lease_id)
    assert world.handle().hydrate(world.claim).message_id == world.claim.message_id
    assert f.queue.complete("w1", world.queued_id, WRONG_LEASE) is False
    assert f.queue.get_job(UNKNOWN_MID) is None
    assert f.agents.get("nope") is None and f.workers.get("nope") is None
    assert f.secrets.reveal("nope") is None
    assert f.queue.append_conversation_messages("unknown-conv", []).updated is False
    assert db_snapshot(world.path)["messages"]


def test_snapshot_helper_is_stable_and_sees_one_field_changes(world: World) -> None:
    """The helper itself: reads leave the snapshot equal; a one-column update shows."""
    base = world.state()
    world.f.queue.get_job(world.claim.message_id)
    world.f.queue.stats()
    world.handle().hydrate(world.claim)
    assert world.state() == base
    assert world.f.workers.touch("w-active", now_ms=EPOCH_2026_MS + 5)
    after = db_snapshot(world.path)
    assert after["workers"] != base[0]["workers"]
    assert {k: v for k, v in after.items() if k != "workers"} == {k: v for k, v in base[0].items() if k != "workers"}


# --------------------------------------------------------------------------------------
# Wrong Python types
# --------------------------------------------------------------------------------------

WRONG_TYPES = [
    # agents
    case("agents.upsert_agent/agent_key=int", lambda w: w.f.agents.upsert_agent(5), TypeError, "agent_key"),
    case("agents.upsert_agent/version=int", lambda w: w.f.agents.upsert_agent("a9", version=1), TypeError, "version"),
    case("agents.upsert_agent/secrets_ref=[int]", lambda w: w.f.agents.upsert_agent("a9", secrets_ref=[1]), TypeError, "secrets_ref"),
    case("agents.upsert_agent/bot_identity=int", lambda w: w.f.agents.upsert_agent("a9", bot_identity=5), TypeError, "bot_identity"),
    case("agents.upsert_agent/bridge_config=list", lambda w: w.f.agents.upsert_agent("a9", bridge_config=[1]), ValidationError, "bridge_config"),
    case("agents.upsert_agent/bridge_config.base_url=int",
         lambda w: w.f.agents.upsert_agent("a9", bridge_config={"enabled": True, "base_url": 5}), ValidationError, "bridge_config"),
    case("agents.upsert_agent/enabled=str", lambda w: w.f.agents.upsert_agent("a9", enabled="yes"), TypeError, "enabled"),
    case("agents.upsert_agent/now_ms=str", lambda w: w.f.agents.upsert_agent("a9", now_ms="1"), TypeError, "now_ms"),
    case("agents.get/int", lambda w: w.f.agents.get(5), TypeError, "agent_key"),
    case("agents.list/enabled=str", lambda w: w.f.agents.list(enabled="yes"), TypeError, "enabled"),
    case("agents.enable/int", lambda w: w.f.agents.enable(5), TypeError, "agent_key"),
    case("agents.enable/now_ms=float", lambda w: w.f.agents.enable("a1", now_ms=1.5), TypeError, "now_ms"),
    case("agents.disable/None", lambda w: w.f.agents.disable(None), TypeError, "agent_key"),
    # queue
    case("queue.enqueue/conversation_id=int", lambda w: w.f.queue.enqueue(5, "a1", P), TypeError, "conversation_id"),
    case("queue.enqueue/agent_key=None", lambda w: w.f.queue.enqueue("c9", None, P), TypeError, "agent_key"),
    case("queue.enqueue/payload=list", lambda w: w.f.queue.enqueue("c9", "a1", [P]), ValidationError, "payload"),
    case("queue.enqueue/payload=str", lambda w: w.f.queue.enqueue("c9", "a1", "hello"), ValidationError, "payload"),
    case("queue.enqueue/payload=bytes-value", lambda w: w.f.queue.enqueue("c9", "a1", {**P, "messageText": b"x"}), ValidationError, "payload"),
    case("queue.enqueue/payload=int-key", lambda w: w.f.queue.enqueue("c9", "a1", {**P, 1: "x"}), ValidationError, "payload"),
    case("queue.enqueue/priority=str", lambda w: w.f.queue.enqueue("c9", "a1", P, priority="5"), TypeError, "priority"),
    case("queue.enqueue/priority=float", lambda w: w.f.queue.enqueue("c9", "a1", P, priority=1.5), TypeError, "priority"),
    case("queue.enqueue/scheduled_for=str", lambda w: w.f.queue.enqueue("c9", "a1", P, scheduled_for="now"), TypeError, "scheduled_for"),
    case("queue.enqueue/max_attempts=str", lambda w: w.f.queue.enqueue("c9", "a1", P, max_attempts="3"), TypeError, "max_attempts"),
    case("queue.enqueue/now_ms=str", lambda w: w.f.queue.enqueue("c9", "a1", P, now_ms="x"), TypeError, "now_ms"),
    case("queue.enqueue_many/conversation_id=int",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": 1, "agent_key": "a1", "payload": P}]), ValidationError, "item 0", "conversation_id"),
    case("queue.enqueue_many/priority=str",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": "c9", "agent_key": "a1", "payload": P, "priority": "x"}]),
         ValidationError, "item 0", "priority"),
    case("queue.enqueue_many/payload=list",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": "c9", "agent_key": "a1", "payload": [1]}]), ValidationError, "item 0", "payload"),
    case("queue.enqueue_many/now_ms=str",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": "c9", "agent_key": "a1", "payload": P}], now_ms="x"), TypeError, "now_ms"),
    case("queue.claim/worker_id=int", lambda w: w.f.queue.claim(5), TypeError, "worker_id"),
    case("queue.claim/conversation_id=int", lambda w: w.f.queue.claim("w9", conversation_id=5), TypeError, "conversation_id"),
    case("queue.claim/mode=int", lambda w: w.f.queue.claim("w9", mode=1), TypeError, "mode"),
    case("queue.heartbeat/message_id=int", lambda w: w.f.queue.heartbeat("w1", 1, w.claim.lease_id), TypeError, "message_id"),
    case("queue.heartbeat/lease_id=None", lambda w: w.f.queue.heartbeat("w1", w.claim.message_id, None), TypeError, "lease_id"),
    case("queue.complete/worker_id=None", lambda w: w.f.queue.complete(None, w.claim.message_id, w.claim.lease_id), TypeError, "worker_id"),
    case("queue.fail/error=int", lambda w: w.f.queue.fail("w1", w.claim.message_id, w.claim.lease_id, 5), TypeError, "error"),
    case("queue.fail/error=None", lambda w: w.f.queue.fail("w1", w.claim.message_id, w.claim.lease_id, None), TypeError, "error"),
    case("queue.release_stuck_jobs/limit=str", lambda w: w.f.queue.release_stuck_jobs(limit="5"), TypeError, "limit"),
    case("queue.stats/now_ms=str", lambda w: w.f.queue.stats(now_ms="x"), TypeError, "now_ms"),
    case("queue.list_jobs/status=int", lambda w: w.f.queue.list_jobs(5), TypeError, "status"),
    case("queue.list_jobs/limit=str", lambda w: w.f.queue.list_jobs("queued", limit="1"), TypeError, "limit"),
    case("queue.get_job/int", lambda w: w.f.queue.get_job(1), TypeError, "message_id"),
    case("queue.conversation_counts/now_ms=str", lambda w: w.f.queue.conversation_counts(now_ms="x"), TypeError, "now_ms"),
    case("queue.active_conversations/limit=None", lambda w: w.f.queue.active_conversations(limit=None), TypeError, "limit"),
    case("queue.has_queued_jobs/int", lambda w: w.f.queue.has_queued_jobs(5), TypeError, "conversation_id"),
    case("queue.list_conversation_jobs/int", lambda w: w.f.queue.list_conversation_jobs(5), TypeError, "conversation_id"),
    case("queue.list_conversation_jobs/limit=str", lambda w: w.f.queue.list_conversation_jobs("c1", limit="x"), TypeError, "limit"),
    case("queue.conversation/None", lambda w: w.f.queue.conversation(None), TypeError, "conversation_id"),
    case("queue.append_conversation_messages/content=int",
         lambda w: w.f.queue.append_conversation_messages("c1", [{"role": "user", "content": 5}]), ValidationError, "messages"),
    case("queue.append_conversation_messages/at=str",
         lambda w: w.f.queue.append_conversation_messages("c1", [{"role": "user", "content": "x", "at": "x"}]), ValidationError, "messages"),
    case("queue.append_conversation_messages/workspace_id=int",
         lambda w: w.f.queue.append_conversation_messages("c1", [], workspace_id=5), TypeError, "workspace_id"),
    case("queue.get_hydration_bundle/int", lambda w: w.f.queue.get_hydration_bundle(1), TypeError, "message_id"),
    case("queue.get_hydration_bundle/workspace_id=None",
         lambda w: w.f.queue.get_hydration_bundle(w.claim.message_id, workspace_id=None), TypeError, "workspace_id"),
    # workers
    case("workers.upsert_worker_state/worker_id=int", lambda w: w.f.workers.upsert_worker_state(5, status="active"), TypeError, "worker_id"),
    case("workers.upsert_worker_state/status=int", lambda w: w.f.workers.upsert_worker_state("w9", status=1), TypeError, "status"),
    case("workers.upsert_worker_state/provider=None",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", provider=None), TypeError, "provider"),
    case("workers.upsert_worker_state/load=str", lambda w: w.f.workers.upsert_worker_state("w9", status="active", load="1"), TypeError, "load"),
    case("workers.upsert_worker_state/mode=int", lambda w: w.f.workers.upsert_worker_state("w9", status="active", mode=1), TypeError, "mode"),
    case("workers.upsert_worker_state/machine_id=int",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", machine_id=5), TypeError, "machine_id"),
    case("workers.upsert_worker_state/stopped_at=str",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", stopped_at="x"), TypeError, "stopped_at"),
    case("workers.upsert_worker_state/clear_volume_id=str",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", clear_volume_id="yes"), TypeError, "clear_volume_id"),
    case("workers.upsert_worker_state/assignment=list",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", assignment=[1]), ValidationError, "assignment"),
    case("workers.upsert_worker_state/assignment.assigned_at=str",
         lambda w: w.f.workers.upsert_worker_state(
             "w9", status="active", assignment={"conversation_id": "c1", "agent_key": "a1", "lease_id": "l", "assigned_at": "x"}),
         ValidationError, "assignment"),
    case("workers.get/int", lambda w: w.f.workers.get(5), TypeError, "worker_id"),
    case("workers.list/status=int", lambda w: w.f.workers.list(status=5), TypeError, "status"),
    case("workers.list/limit=str", lambda w: w.f.workers.list(limit="x"), TypeError, "limit"),
    case("workers.control_state/int", lambda w: w.f.workers.control_state(5), TypeError, "worker_id"),
    case("workers.touch/int", lambda w: w.f.workers.touch(5), TypeError, "worker_id"),
    case("workers.stats/extra-arg", lambda w: w.f.workers.stats("x"), TypeError, "stats"),
    # secrets
    case("secrets.import_plaintext/secret_ref=int", lambda w: w.f.secrets.import_plaintext(5, "v"), TypeError, "secret_ref"),
    case("secrets.import_plaintext/value=bytes", lambda w: w.f.secrets.import_plaintext("r1", b"v"), TypeError, "plaintext_value"),
    case("secrets.import_plaintext/metadata-value=int",
         lambda w: w.f.secrets.import_plaintext("r1", "v", metadata={"k": 1}), ValidationError, "metadata.k"),
    case("secrets.import_plaintext/metadata-value=dict",
         lambda w: w.f.secrets.import_plaintext("r1", "v", metadata={"k": {"a": "b"}}), ValidationError, "metadata.k"),
    case("secrets.status/[int]", lambda w: w.f.secrets.status([1]), TypeError, "secret_refs"),
    case("secrets.status/str", lambda w: w.f.secrets.status("telegram.botToken"), TypeError, "secret_refs"),
    case("secrets.list_refs/extra-arg", lambda w: w.f.secrets.list_refs("x"), TypeError, "list_refs"),
    case("secrets.reveal/int", lambda w: w.f.secrets.reveal(5), TypeError, "secret_ref"),
    # runtime settings
    case("config.set_message_config/system_prompt=int", lambda w: w.f.config.set_message_config(system_prompt=5), TypeError, "system_prompt"),
    case("config.set_message_config/retention=str",
         lambda w: w.f.config.set_message_config(telegram_attachment_retention_ms="1"), TypeError, "telegram_attachment_retention_ms"),
    case("config.set_provider_config/list", lambda w: w.f.config.set_provider_config([1]), ValidationError, "config"),
    case("config.set_provider_config/volume_size_gb=str",
         lambda w: w.f.config.set_provider_config({"kind": "fly", "volume_size_gb": "1"}), ValidationError, "provider_config"),
    case("config.set_tunables/list", lambda w: w.f.config.set_tunables([1]), ValidationError, "config"),
    case("config.set_tunables/default_priority=float",
         lambda w: w.f.config.set_tunables({"queue": {"default_priority": 1.5}}), ValidationError, "config"),
    # blobs
    case("blobs.put/None", lambda w: w.f.blobs.put(None), TypeError, "bytes"),
    case("blobs.put/str", lambda w: w.f.blobs.put("text"), TypeError, "string"),
    case("blobs.put_file/int", lambda w: w.f.blobs.put_file(5), TypeError, "PathLike"),
    case("blobs.get/int", lambda w: w.f.blobs.get(5), TypeError, "sha256"),
    case("blobs.delete/None", lambda w: w.f.blobs.delete(None), TypeError, "sha256"),
    case("blobs.path/int", lambda w: w.f.blobs.path(5), TypeError, "sha256"),
    # worker handle
    case("worker.claim/worker_id=int", lambda w: w.f.worker(5).claim(), TypeError, "worker_id"),
    case("worker.claim/conversation_id=int", lambda w: w.handle().claim(conversation_id=5), TypeError, "conversation_id"),
    case("worker(mode=bad)", lambda w: w.f.worker("w1", mode="turbo"), ValidationError, "mode"),
    case("worker.heartbeat/dict", lambda w: w.handle().heartbeat(w.claim.to_dict()), ValidationError, "Claim"),
    case("worker.heartbeat/None", lambda w: w.handle().heartbeat(None), ValidationError, "Claim"),
    case("worker.hydrate/str", lambda w: w.handle().hydrate(w.claim.message_id), ValidationError, "Claim"),
    case("worker.hydrate/workspace_id=int", lambda w: w.handle().hydrate(w.claim, workspace_id=5), TypeError, "workspace_id"),
    case("worker.complete/None", lambda w: w.handle().complete(None), ValidationError, "Claim"),
    case("worker.complete/claim_next+dict", lambda w: w.handle().complete(w.claim.to_dict(), claim_next=True), ValidationError, "Claim"),
    case("worker.fail/None-claim", lambda w: w.handle().fail(None, "boom"), ValidationError, "Claim"),
    case("worker.control_state/now_ms=str", lambda w: w.handle().control_state(now_ms="x"), TypeError, "now_ms"),
    case("worker.touch/worker_id=None", lambda w: w.f.worker(None).touch(), TypeError, "worker_id"),
    case("worker.append_conversation_messages/dict-claim",
         lambda w: w.handle().append_conversation_messages(w.claim.to_dict(), [{"role": "user", "content": "x"}]), ValidationError, "Claim"),
    case("worker.append_conversation_messages/content=list",
         lambda w: w.handle().append_conversation_messages(w.claim, [{"role": "user", "content": ["x"]}]), ValidationError, "messages"),
]


@pytest.mark.parametrize("call, exc, needles", WRONG_TYPES)
def test_wrong_python_type(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    expect_rejected(world, call, exc, *needles)


# --------------------------------------------------------------------------------------
# Missing or blank required values
# --------------------------------------------------------------------------------------

MISSING_OR_BLANK = [
    case("agents.upsert_agent/key=''", lambda w: w.f.agents.upsert_agent(""), ValidationError, "agentKey"),
    case("agents.upsert_agent/version=blank", lambda w: w.f.agents.upsert_agent("a9", version="   "), ValidationError, "version"),
    case("agents.upsert_agent/secrets_ref=['']", lambda w: w.f.agents.upsert_agent("a9", secrets_ref=[""]), ValidationError, "secretRef"),
    case("agents.upsert_agent/bridge_config-missing-enabled",
         lambda w: w.f.agents.upsert_agent("a9", bridge_config={}), ValidationError, "bridge_config", "enabled"),
    case("agents.get/''", lambda w: w.f.agents.get(""), ValidationError, "agentKey"),
    case("agents.enable/''", lambda w: w.f.agents.enable(""), ValidationError, "agentKey"),
    case("agents.disable/blank", lambda w: w.f.agents.disable(" "), ValidationError, "agentKey"),
    case("queue.enqueue/conversation_id=blank", lambda w: w.f.queue.enqueue("  ", "a1", P), ValidationError, "conversationId"),
    case("queue.enqueue/conversation_id=''", lambda w: w.f.queue.enqueue("", "a1", P), ValidationError, "conversationId"),
    case("queue.enqueue/agent_key=''", lambda w: w.f.queue.enqueue("c9", "", P), ValidationError, "agentKey"),
    case("queue.enqueue/payload={}", lambda w: w.f.queue.enqueue("c9", "a1", {}), ValidationError, "payload.provider"),
    case("queue.enqueue/provider=blank", lambda w: w.f.queue.enqueue("c9", "a1", {**P, "provider": " "}), ValidationError, "payload.provider"),
    case("queue.enqueue/no-messageText", lambda w: w.f.queue.enqueue("c9", "a1", without(P, "messageText")), ValidationError, "payload.messageText"),
    case("queue.enqueue_many/no-payload",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": "c9", "agent_key": "a1"}]), ValidationError, "item 0", "payload"),
    case("queue.enqueue_many/no-conversation_id",
         lambda w: w.f.queue.enqueue_many([{"agent_key": "a1", "payload": P}]), ValidationError, "item 0", "conversation_id"),
    case("queue.enqueue_many/no-agent_key",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": "c9", "payload": P}]), ValidationError, "item 0", "agent_key"),
    case("queue.enqueue_many/blank-conversation",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": " ", "agent_key": "a1", "payload": P}]), ValidationError, "item 0", "conversationId"),
    case("queue.claim/worker_id=''", lambda w: w.f.queue.claim(""), ValidationError, "workerId"),
    case("queue.claim/conversation_id=blank", lambda w: w.f.queue.claim("w9", conversation_id=" "), ValidationError, "conversationId"),
    case("queue.heartbeat/message_id=''", lambda w: w.f.queue.heartbeat("w1", "", w.claim.lease_id), ValidationError, "messageId"),
    case("queue.heartbeat/lease_id=''", lambda w: w.f.queue.heartbeat("w1", w.claim.message_id, ""), ValidationError, "leaseId"),
    case("queue.complete/worker_id=''", lambda w: w.f.queue.complete("", w.claim.message_id, w.claim.lease_id), ValidationError, "workerId"),
    case("queue.complete/lease_id=''", lambda w: w.f.queue.complete("w1", w.claim.message_id, ""), ValidationError, "leaseId"),
    case("queue.fail/lease_id=''", lambda w: w.f.queue.fail("w1", w.claim.message_id, "", "e"), ValidationError, "leaseId"),
    case("queue.fail/worker_id=blank", lambda w: w.f.queue.fail(" ", w.claim.message_id, w.claim.lease_id, "e"), ValidationError, "workerId"),
    case("queue.get_job/''", lambda w: w.f.queue.get_job(""), ValidationError, "messageId"),
    case("queue.has_queued_jobs/blank", lambda w: w.f.queue.has_queued_jobs(" "), ValidationError, "conversationId"),
    case("queue.list_conversation_jobs/''", lambda w: w.f.queue.list_conversation_jobs(""), ValidationError, "conversationId"),
    case("queue.conversation/tab", lambda w: w.f.queue.conversation("\t"), ValidationError, "conversationId"),
    case("queue.append_conversation_messages/conversation=''",
         lambda w: w.f.queue.append_conversation_messages("", [{"role": "user", "content": "x"}]), ValidationError, "conversationId"),
    case("queue.append_conversation_messages/no-content",
         lambda w: w.f.queue.append_conversation_messages("c1", [{"role": "user"}]), ValidationError, "messages", "content"),
    case("queue.append_conversation_messages/no-role",
         lambda w: w.f.queue.append_conversation_messages("c1", [{"content": "x"}]), ValidationError, "messages", "role"),
    case("queue.get_hydration_bundle/''", lambda w: w.f.queue.get_hydration_bundle(""), ValidationError, "messageId"),
    case("queue.get_hydration_bundle/workspace=blank",
         lambda w: w.f.queue.get_hydration_bundle(w.claim.message_id, workspace_id=" "), ValidationError, "workspaceId"),
    case("workers.upsert_worker_state/worker_id=''", lambda w: w.f.workers.upsert_worker_state("", status="active"), ValidationError, "workerId"),
    case("workers.upsert_worker_state/no-status", lambda w: w.f.workers.upsert_worker_state("w9"), TypeError, "status"),
    case("workers.upsert_worker_state/status=''", lambda w: w.f.workers.upsert_worker_state("w9", status=""), ValidationError, "worker status"),
    case("workers.upsert_worker_state/provider=blank",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", provider="  "), ValidationError, "provider"),
    case("workers.upsert_worker_state/assignment-missing-field",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", assignment={"conversation_id": "c1"}), ValidationError, "assignment", "agent_key"),
    case("workers.upsert_worker_state/assignment-blank",
         lambda w: w.f.workers.upsert_worker_state(
             "w9", status="active", assignment={"conversation_id": " ", "agent_key": "a1", "lease_id": "l", "assigned_at": 1}),
         ValidationError, "assignment"),
    case("workers.get/''", lambda w: w.f.workers.get(""), ValidationError, "workerId"),
    case("workers.control_state/''", lambda w: w.f.workers.control_state(""), ValidationError, "workerId"),
    case("workers.touch/''", lambda w: w.f.workers.touch(""), ValidationError, "workerId"),
    case("secrets.import_plaintext/ref=''", lambda w: w.f.secrets.import_plaintext("", "v"), ValidationError, "secretRef"),
    case("secrets.import_plaintext/value=''", lambda w: w.f.secrets.import_plaintext("r1", ""), ValidationError, "plaintextValue"),
    case("secrets.status/['']", lambda w: w.f.secrets.status(["telegram.botToken", ""]), ValidationError, "secretRef"),
    case("secrets.reveal/''", lambda w: w.f.secrets.reveal(""), ValidationError, "secretRef"),
    case("config.set_provider_config/{}", lambda w: w.f.config.set_provider_config({}), ValidationError, "kind"),
    case("config.set_provider_config/kind=''", lambda w: w.f.config.set_provider_config({"kind": ""}), ValidationError, "providerConfig.kind"),
    case("blobs.get/''", lambda w: w.f.blobs.get(""), ValidationError, "sha256"),
    case("blobs.put_file/missing-file", lambda w: w.f.blobs.put_file("/nonexistent/file.bin"), ValidationError, "/nonexistent/file.bin"),
    case("worker.claim/worker_id=''", lambda w: w.f.worker("").claim(), ValidationError, "workerId"),
    case("worker.control_state/worker_id=''", lambda w: w.f.worker("").control_state(), ValidationError, "workerId"),
    case("worker.touch/worker_id=''", lambda w: w.f.worker("").touch(), ValidationError, "workerId"),
    case("worker.claim/conversation_id=''", lambda w: w.handle().claim(conversation_id=""), ValidationError, "conversationId"),
    case("worker.hydrate/workspace=blank", lambda w: w.handle().hydrate(w.claim, workspace_id="  "), ValidationError, "workspaceId"),
    case("worker.heartbeat/lease_id=''", lambda w: w.handle().heartbeat(w.fake_claim(lease_id="")), ValidationError, "leaseId"),
    case("worker.append_conversation_messages/no-role",
         lambda w: w.handle().append_conversation_messages(w.claim, [{"content": "x"}]), ValidationError, "role"),
]


@pytest.mark.parametrize("call, exc, needles", MISSING_OR_BLANK)
def test_missing_or_blank(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    expect_rejected(world, call, exc, *needles)


# --------------------------------------------------------------------------------------
# Oversized values
# --------------------------------------------------------------------------------------

OVERSIZED = [
    case("queue.enqueue/payload>max_payload_bytes",
         lambda w: w.f.queue.enqueue("c9", "a1", {**P, "messageText": "x" * (1 << 20)}), ValidationError, "payload is", "limit is 1048576"),
    case("queue.enqueue/agent_key=129", lambda w: w.f.queue.enqueue("c9", "k" * 129, P), ValidationError, "agentKey"),
    case("queue.enqueue/conversation_id=513", lambda w: w.f.queue.enqueue("c" * 513, "a1", P), ValidationError, "conversationId"),
    case("queue.enqueue_many/100001-items",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": "c9", "agent_key": "a1", "payload": P}] * 100_001),
         ValidationError, "at most 100000"),
    case("queue.claim/worker_id=129", lambda w: w.f.queue.claim("w" * 129), ValidationError, "workerId"),
    case("queue.claim/conversation_id=513", lambda w: w.f.queue.claim("w1", conversation_id="c" * 513), ValidationError, "conversationId"),
    case("queue.heartbeat/lease_id=201", lambda w: w.f.queue.heartbeat("w1", w.claim.message_id, "l" * 201), ValidationError, "leaseId"),
    case("queue.complete/worker_id=129", lambda w: w.f.queue.complete("w" * 129, w.claim.message_id, w.claim.lease_id), ValidationError, "workerId"),
    case("queue.get_job/message_id>i64", lambda w: w.f.queue.get_job("9" * 30), ValidationError, "messageId"),
    case("queue.has_queued_jobs/513", lambda w: w.f.queue.has_queued_jobs("c" * 513), ValidationError, "conversationId"),
    case("queue.append_conversation_messages/content>1MiB",
         lambda w: w.f.queue.append_conversation_messages("c1", [{"role": "user", "content": "x" * ((1 << 20) + 1)}]),
         ValidationError, "messages[0].content"),
    case("queue.get_hydration_bundle/workspace=201",
         lambda w: w.f.queue.get_hydration_bundle(w.claim.message_id, workspace_id="w" * 201), ValidationError, "workspaceId"),
    case("agents.upsert_agent/agent_key=129", lambda w: w.f.agents.upsert_agent("k" * 129), ValidationError, "agentKey"),
    case("agents.upsert_agent/version=65", lambda w: w.f.agents.upsert_agent("a9", version="1" * 65), ValidationError, "version"),
    case("agents.upsert_agent/bot_identity=129", lambda w: w.f.agents.upsert_agent("a9", bot_identity="b" * 129), ValidationError, "botIdentity"),
    case("agents.upsert_agent/secret-ref=201", lambda w: w.f.agents.upsert_agent("a9", secrets_ref=["r" * 201]), ValidationError, "secretRef"),
    case("agents.upsert_agent/bridge.base_url=2049",
         lambda w: w.f.agents.upsert_agent("a9", bridge_config={"enabled": True, "base_url": "u" * 2049}), ValidationError, "bridgeConfig.baseUrl"),
    case("agents.upsert_agent/bridge.service_id=257",
         lambda w: w.f.agents.upsert_agent("a9", bridge_config={"enabled": True, "service_id": "s" * 257}), ValidationError, "bridgeConfig.serviceId"),
    case("agents.get/129", lambda w: w.f.agents.get("k" * 129), ValidationError, "agentKey"),
    case("workers.upsert_worker_state/worker_id=129",
         lambda w: w.f.workers.upsert_worker_state("w" * 129, status="active"), ValidationError, "workerId"),
    case("workers.upsert_worker_state/provider=65",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", provider="p" * 65), ValidationError, "provider"),
    case("workers.get/129", lambda w: w.f.workers.get("w" * 129), ValidationError, "workerId"),
    case("workers.touch/129", lambda w: w.f.workers.touch("w" * 129), ValidationError, "workerId"),
    case("secrets.import_plaintext/value=64KiB+1",
         lambda w: w.f.secrets.import_plaintext("r1", "x" * (64 * 1024 + 1)), ValidationError, "plaintextValue", "65537 bytes", "65536"),
    case("secrets.import_plaintext/value=64KiB+multibyte",
         lambda w: w.f.secrets.import_plaintext("r1", "é" * (32 * 1024 + 1)), ValidationError, "plaintextValue", "65538 bytes"),
    case("secrets.import_plaintext/ref=201", lambda w: w.f.secrets.import_plaintext("r" * 201, "v"), ValidationError, "secretRef"),
    case("secrets.reveal/201", lambda w: w.f.secrets.reveal("r" * 201), ValidationError, "secretRef"),
    case("worker.claim/worker_id=129", lambda w: w.f.worker("w" * 129).claim(), ValidationError, "workerId"),
    case("worker.hydrate/workspace=201", lambda w: w.handle().hydrate(w.claim, workspace_id="w" * 201), ValidationError, "workspaceId"),
    case("worker.append_conversation_messages/content>1MiB",
         lambda w: w.handle().append_conversation_messages(w.claim, [{"role": "user", "content": "x" * ((1 << 20) + 1)}]),
         ValidationError, "content"),
]


@pytest.mark.parametrize("call, exc, needles", OVERSIZED)
def test_oversized(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    expect_rejected(world, call, exc, *needles)


def test_payload_over_configured_max_payload_bytes(world: World) -> None:
    world.f.config.set_tunables(Config(queue=QueueConfig(max_payload_bytes=2048)))
    expect_rejected(
        world, lambda w: w.f.queue.enqueue("c9", "a1", {**P, "messageText": "x" * 3000}), ValidationError, "limit is 2048"
    )
    expect_rejected(
        world,
        lambda w: w.f.queue.enqueue_many(
            [{"conversation_id": "c9", "agent_key": "a1", "payload": P}, {"conversation_id": "c9", "agent_key": "a1",
                                                                          "payload": {**P, "messageText": "x" * 3000}}]
        ),
        ValidationError,
        "item 1",
        "limit is 2048",
    )
    assert world.f.queue.enqueue("c9", "a1", {**P, "messageText": "x" * 1000})


# --------------------------------------------------------------------------------------
# Out-of-range numbers and bad enum names
# --------------------------------------------------------------------------------------

OUT_OF_RANGE = [
    case("queue.enqueue/max_attempts=0", lambda w: w.f.queue.enqueue("c9", "a1", P, max_attempts=0), ValidationError, "maxAttempts", "got 0"),
    case("queue.enqueue/max_attempts=-1", lambda w: w.f.queue.enqueue("c9", "a1", P, max_attempts=-1), ValidationError, "maxAttempts"),
    case("queue.enqueue/max_attempts=1001", lambda w: w.f.queue.enqueue("c9", "a1", P, max_attempts=1001), ValidationError, "maxAttempts"),
    case("queue.enqueue/scheduled_for=-1", lambda w: w.f.queue.enqueue("c9", "a1", P, scheduled_for=-1), ValidationError, "scheduledFor"),
    case("queue.enqueue_many/max_attempts=0",
         lambda w: w.f.queue.enqueue_many([{"conversation_id": "c9", "agent_key": "a1", "payload": P, "max_attempts": 0}]),
         ValidationError, "item 0", "maxAttempts"),
    case("queue.claim/mode=bad", lambda w: w.f.queue.claim("w9", mode="greedy"), ValidationError, "mode", "greedy"),
    case("queue.release_stuck_jobs/limit=0", lambda w: w.f.queue.release_stuck_jobs(limit=0), ValidationError, "limit"),
    case("queue.release_stuck_jobs/limit=-1", lambda w: w.f.queue.release_stuck_jobs(limit=-1), ValidationError, "limit", "-1"),
    case("queue.release_stuck_jobs/limit=100001", lambda w: w.f.queue.release_stuck_jobs(limit=100_001), ValidationError, "limit"),
    case("queue.list_jobs/status=bogus", lambda w: w.f.queue.list_jobs("bogus"), ValidationError, "status", "bogus"),
    case("queue.list_jobs/status=QUEUED", lambda w: w.f.queue.list_jobs("QUEUED"), ValidationError, "status"),
    case("queue.list_jobs/status=''", lambda w: w.f.queue.list_jobs(""), ValidationError, "status"),
    case("queue.list_jobs/limit=0", lambda w: w.f.queue.list_jobs("queued", limit=0), ValidationError, "limit"),
    case("queue.list_jobs/limit=-1", lambda w: w.f.queue.list_jobs("queued", limit=-1), ValidationError, "limit"),
    case("queue.list_jobs/limit=10001", lambda w: w.f.queue.list_jobs("done", limit=10_001), ValidationError, "limit"),
    case("queue.active_conversations/limit=0", lambda w: w.f.queue.active_conversations(limit=0), ValidationError, "limit"),
    case("queue.active_conversations/limit=-5", lambda w: w.f.queue.active_conversations(limit=-5), ValidationError, "limit"),
    case("queue.active_conversations/limit=100001", lambda w: w.f.queue.active_conversations(limit=100_001), ValidationError, "limit"),
    case("queue.list_conversation_jobs/limit=0", lambda w: w.f.queue.list_conversation_jobs("c1", limit=0), ValidationError, "limit"),
    case("queue.list_conversation_jobs/limit=501", lambda w: w.f.queue.list_conversation_jobs("c1", limit=501), ValidationError, "limit"),
    case("queue.conversation/limit=-1", lambda w: w.f.queue.conversation("c1", limit=-1), ValidationError, "limit"),
    case("queue.conversation/limit=501", lambda w: w.f.queue.conversation("c1", limit=501), ValidationError, "limit"),
    case("queue.append_conversation_messages/role=bot",
         lambda w: w.f.queue.append_conversation_messages("c1", [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]),
         ValidationError, "messages[1].role", "bot"),
    case("workers.upsert_worker_state/status=running",
         lambda w: w.f.workers.upsert_worker_state("w9", status="running"), ValidationError, "worker status", "running"),
    case("workers.upsert_worker_state/status=ACTIVE",
         lambda w: w.f.workers.upsert_worker_state("w9", status="ACTIVE"), ValidationError, "worker status"),
    case("workers.upsert_worker_state/load=-1",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", load=-1), ValidationError, "load"),
    case("workers.upsert_worker_state/mode=bad",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", mode="greedy"), ValidationError, "mode"),
    case("workers.list/status=bogus", lambda w: w.f.workers.list(status="bogus"), ValidationError, "worker status"),
    case("workers.list/limit=0", lambda w: w.f.workers.list(limit=0), ValidationError, "limit"),
    case("workers.list/limit=-1", lambda w: w.f.workers.list(limit=-1), ValidationError, "limit"),
    case("config.set_message_config/retention=0",
         lambda w: w.f.config.set_message_config(telegram_attachment_retention_ms=0), ValidationError, "telegramAttachmentRetentionMs"),
    case("config.set_message_config/retention=-1",
         lambda w: w.f.config.set_message_config(system_prompt="x", telegram_attachment_retention_ms=-1), ValidationError, "telegramAttachmentRetentionMs"),
    case("config.set_provider_config/kind=aws", lambda w: w.f.config.set_provider_config({"kind": "aws"}), ValidationError, "kind", "aws"),
    case("config.set_provider_config/object-kind=aws",
         lambda w: w.f.config.set_provider_config(ProviderConfig(kind="aws")), ValidationError, "kind"),
    case("config.set_provider_config/volume_size_gb=0",
         lambda w: w.f.config.set_provider_config({"kind": "fly", "volume_size_gb": 0}), ValidationError, "volumeSizeGb"),
    case("config.set_provider_config/volume_size_gb=-5",
         lambda w: w.f.config.set_provider_config({"kind": "local", "volume_size_gb": -5}), ValidationError, "volumeSizeGb"),
    case("blobs.get/not-hex", lambda w: w.f.blobs.get("xyz"), ValidationError, "sha256"),
    case("blobs.get/uppercase", lambda w: w.f.blobs.get(BLOB_SHA.upper()), ValidationError, "sha256"),
    case("blobs.delete/path-traversal", lambda w: w.f.blobs.delete("../" + BLOB_SHA[3:]), ValidationError, "sha256"),
    case("blobs.path/63-chars", lambda w: w.f.blobs.path(BLOB_SHA[:-1]), ValidationError, "sha256"),
]


@pytest.mark.parametrize("call, exc, needles", OUT_OF_RANGE)
def test_out_of_range(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    expect_rejected(world, call, exc, *needles)


BAD_TUNABLES = [
    pytest.param(Config(retry=RetryPolicy(max_attempts=0)), "retry.max_attempts", id="max_attempts=0"),
    pytest.param(Config(retry=RetryPolicy(jitter_ratio=1.5)), "retry.jitter_ratio", id="jitter_ratio=1.5"),
    pytest.param(Config(retry=RetryPolicy(backoff_factor=0.5)), "retry.backoff_factor", id="backoff_factor=0.5"),
    pytest.param(Config(retry=RetryPolicy(backoff_factor=math.inf)), "retry.backoff_factor", id="backoff_factor=inf"),
    pytest.param(Config(lease=LeaseConfig(lease_ms=0)), "lease.lease_ms", id="lease_ms=0"),
    pytest.param(Config(queue=QueueConfig(default_priority=101)), "queue.default_priority", id="default_priority>max"),
    pytest.param(Config(queue=QueueConfig(history_limit=0)), "queue.history_limit", id="history_limit=0"),
    pytest.param(Config(queue=QueueConfig(max_payload_bytes=0)), "queue.max_payload_bytes", id="max_payload_bytes=0"),
    pytest.param({"queue": {"max_payload_bytes": -1}}, "config", id="max_payload_bytes=-1"),
    pytest.param({"scaling": {"max_workers": -1}}, "scaling.max_workers", id="max_workers=-1"),
    pytest.param({"queue": {"bogus": 1}}, "bogus", id="unknown-key"),
    pytest.param({"bogus": {}}, "bogus", id="unknown-section"),
]


@pytest.mark.parametrize("config, needle", BAD_TUNABLES)
def test_set_tunables_bad_values_keep_old_tunables(world: World, config: Any, needle: str) -> None:
    before = world.f.config.tunables()
    expect_rejected(world, lambda w: w.f.config.set_tunables(config), ValidationError, needle)
    assert world.f.config.tunables() == before


# --------------------------------------------------------------------------------------
# Worker status transitions
# --------------------------------------------------------------------------------------

BAD_TRANSITIONS = [
    ("w-active", "active", "stopping"),
    ("w-active", "active", "stopped"),
    ("w-drain", "draining", "active"),
    ("w-drain", "draining", "stopped"),
    ("w-stopping", "stopping", "active"),
    ("w-stopping", "stopping", "draining"),
    ("w-stopped", "stopped", "active"),
    ("w-stopped", "stopped", "draining"),
    ("w-stopped", "stopped", "stopping"),
]


@pytest.mark.parametrize("worker_id, current, target", BAD_TRANSITIONS)
def test_bad_worker_status_transition(world: World, worker_id: str, current: str, target: str) -> None:
    expect_rejected(
        world,
        lambda w: w.f.workers.upsert_worker_state(worker_id, status=target, load=3, stop_reason="test"),
        InvalidStateError,
        worker_id,
        f"from '{current}' to '{target}'",
    )
    assert world.f.workers.get(worker_id).status == current


# --------------------------------------------------------------------------------------
# Unknown and malformed ids
# --------------------------------------------------------------------------------------

MALFORMED_MESSAGE_IDS = ["abc", "0", "-1", " 1", "+1", "١", "9" * 20]  # noqa: RUF001 -- a non-ASCII digit on purpose


@pytest.mark.parametrize("message_id", MALFORMED_MESSAGE_IDS)
@pytest.mark.parametrize(
    "op",
    ["heartbeat", "complete", "fail", "get_job", "get_hydration_bundle", "handle.heartbeat", "handle.complete",
     "handle.complete_next", "handle.fail", "handle.hydrate"],
)
def test_malformed_message_id(world: World, op: str, message_id: str) -> None:
    calls: dict[str, Callable[[World], Any]] = {
        "heartbeat": lambda w: w.f.queue.heartbeat("w1", message_id, w.claim.lease_id),
        "complete": lambda w: w.f.queue.complete("w1", message_id, w.claim.lease_id),
        "fail": lambda w: w.f.queue.fail("w1", message_id, w.claim.lease_id, "boom"),
        "get_job": lambda w: w.f.queue.get_job(message_id),
        "get_hydration_bundle": lambda w: w.f.queue.get_hydration_bundle(message_id),
        "handle.heartbeat": lambda w: w.handle().heartbeat(w.fake_claim(message_id=message_id)),
        "handle.complete": lambda w: w.handle().complete(w.fake_claim(message_id=message_id)),
        "handle.complete_next": lambda w: w.handle().complete(w.fake_claim(message_id=message_id), claim_next=True),
        "handle.fail": lambda w: w.handle().fail(w.fake_claim(message_id=message_id), RuntimeError("boom")),
        "handle.hydrate": lambda w: w.handle().hydrate(w.fake_claim(message_id=message_id)),
    }
    expect_rejected(world, calls[op], ValidationError, "messageId", message_id)


UNKNOWN_IDS = [
    case("queue.heartbeat/unknown-message", lambda w: w.f.queue.heartbeat("w1", UNKNOWN_MID, w.claim.lease_id), NotFoundError, UNKNOWN_MID),
    case("queue.complete/unknown-message", lambda w: w.f.queue.complete("w1", UNKNOWN_MID, w.claim.lease_id), NotFoundError, UNKNOWN_MID),
    case("queue.fail/unknown-message", lambda w: w.f.queue.fail("w1", UNKNOWN_MID, w.claim.lease_id, "boom"), NotFoundError, UNKNOWN_MID),
    case("worker.heartbeat/unknown-message", lambda w: w.handle().heartbeat(w.fake_claim(message_id=UNKNOWN_MID)), NotFoundError, UNKNOWN_MID),
    case("worker.complete/unknown-message", lambda w: w.handle().complete(w.fake_claim(message_id=UNKNOWN_MID)), NotFoundError, UNKNOWN_MID),
    case("worker.complete_next/unknown-message",
         lambda w: w.handle().complete(w.fake_claim(message_id=UNKNOWN_MID), claim_next=True), NotFoundError, UNKNOWN_MID),
    case("worker.fail/unknown-message", lambda w: w.handle().fail(w.fake_claim(message_id=UNKNOWN_MID), "boom"), NotFoundError, UNKNOWN_MID),
    case("worker.hydrate/unknown-message", lambda w: w.handle().hydrate(w.fake_claim(message_id=UNKNOWN_MID)), NotFoundError, UNKNOWN_MID),
    case("queue.enqueue/unknown-agent", lambda w: w.f.queue.enqueue("c9", "no-such-agent", P), NotFoundError, "no-such-agent"),
    case("queue.enqueue/unknown-agent-existing-conversation",
         lambda w: w.f.queue.enqueue("c2", "no-such-agent", P), NotFoundError, "no-such-agent"),
    case("queue.enqueue/disabled-agent", lambda w: w.f.queue.enqueue("c9", DISABLED_AGENT, P), InvalidStateError, DISABLED_AGENT, "disabled"),
    case("queue.enqueue/conversation-bound-to-other-agent",
         lambda w: w.f.queue.enqueue("c2", "a2", P), ConflictError, "c2", "a1", "a2"),
    case("queue.enqueue/attachment-not-in-blob-store",
         lambda w: w.f.queue.enqueue("c9", "a1", {**P, "attachments": [attachment(MISSING_SHA)]}), NotFoundError, "attachments[0].storageId", MISSING_SHA),
    case("agents.enable/unknown", lambda w: w.f.agents.enable("no-such-agent"), NotFoundError, "no-such-agent"),
    case("agents.disable/unknown", lambda w: w.f.agents.disable("no-such-agent"), NotFoundError, "no-such-agent"),
    case("blobs.get/unknown", lambda w: w.f.blobs.get(MISSING_SHA), NotFoundError, MISSING_SHA),
    # lost leases: typed, and nothing moves
    case("worker.hydrate/lost-lease", lambda w: w.handle().hydrate(w.fake_claim(lease_id=WRONG_LEASE)), ConflictError, WRONG_LEASE),
    case("worker.hydrate/someone-elses-message",
         lambda w: w.handle().hydrate(w.fake_claim(message_id=w.queued_id)), ConflictError, "w1", "does not hold"),
    case("worker.complete_next/lost-lease",
         lambda w: w.handle().complete(w.fake_claim(lease_id=WRONG_LEASE), claim_next=True), ConflictError, WRONG_LEASE),
    case("worker.heartbeat/claim-of-other-worker", lambda w: w.handle("w2").heartbeat(w.claim), ValidationError, "w1", "w2"),
    case("worker.fail/claim-of-other-worker", lambda w: w.handle("w2", "pooled").fail(w.claim, "x"), ValidationError, "w1", "w2"),
]


@pytest.mark.parametrize("call, exc, needles", UNKNOWN_IDS)
def test_unknown_ids(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    expect_rejected(world, call, exc, *needles)


# --------------------------------------------------------------------------------------
# Payload shape
# --------------------------------------------------------------------------------------


def enqueue_payload(make: Callable[[], Any]) -> Callable[[World], Any]:
    return lambda w: w.f.queue.enqueue("c-shape", "a1", make())


PAYLOAD_SHAPES = [
    case("not-a-dict/list", enqueue_payload(lambda: [("provider", "t")]), ValidationError, "payload must be an object"),
    case("not-a-dict/None", enqueue_payload(lambda: None), ValidationError, "payload must be an object"),
    case("not-a-dict/int", enqueue_payload(lambda: 42), ValidationError, "payload must be an object"),
    case("not-a-dict/str", enqueue_payload(lambda: '{"provider": "t"}'), ValidationError, "payload must be an object"),
    case("unknown-key/provider_user_id", enqueue_payload(lambda: {**P, "provider_user_id": "u1"}), ValidationError, "provider_user_id"),
    case("unknown-key/message_text", enqueue_payload(lambda: {**P, "message_text": "hi"}), ValidationError, "message_text"),
    case("unknown-key/only-snake-case",
         enqueue_payload(lambda: {"provider": "t", "provider_user_id": "u1", "messageText": "x"}), ValidationError, "provider_user_id"),
    case("provider=int", enqueue_payload(lambda: {**P, "provider": 7}), ValidationError, "payload.provider"),
    case("messageText=None", enqueue_payload(lambda: {**P, "messageText": None}), ValidationError, "payload.messageText"),
    case("messageText=int", enqueue_payload(lambda: {**P, "messageText": 5}), ValidationError, "payload.messageText"),
    case("externalMessageId=int", enqueue_payload(lambda: {**P, "externalMessageId": 5}), ValidationError, "payload.externalMessageId"),
    case("rawUpdateJson=dict", enqueue_payload(lambda: {**P, "rawUpdateJson": {"update_id": 1}}), ValidationError, "payload.rawUpdateJson"),
    case("metadata-value=int", enqueue_payload(lambda: {**P, "metadata": {"chat": 1}}), ValidationError, "payload.metadata.chat"),
    case("metadata-value=None", enqueue_payload(lambda: {**P, "metadata": {"chat": None}}), ValidationError, "payload.metadata.chat"),
    case("metadata-value=list", enqueue_payload(lambda: {**P, "metadata": {"ok": "y", "tags": ["a"]}}), ValidationError, "payload.metadata.tags"),
    case("metadata-value=dict", enqueue_payload(lambda: {**P, "metadata": {"chat": {"id": "1"}}}), ValidationError, "payload.metadata.chat"),
    case("metadata-value=bool", enqueue_payload(lambda: {**P, "metadata": {"bot": True}}), ValidationError, "payload.metadata.bot"),
    case("metadata=list", enqueue_payload(lambda: {**P, "metadata": [["k", "v"]]}), ValidationError, "payload.metadata"),
    case("metadata=str", enqueue_payload(lambda: {**P, "metadata": "k=v"}), ValidationError, "payload.metadata"),
    case("attachments=dict", enqueue_payload(lambda: {**P, "attachments": attachment()}), ValidationError, "payload.attachments"),
    case("attachment=int", enqueue_payload(lambda: {**P, "attachments": [5]}), ValidationError, "payload.attachments[0]"),
    case("attachment.kind=gif", enqueue_payload(lambda: {**P, "attachments": [attachment(kind="gif")]}), ValidationError, "attachments[0].kind", "gif"),
    case("attachment.kind=PHOTO", enqueue_payload(lambda: {**P, "attachments": [attachment(kind="PHOTO")]}), ValidationError, "attachments[0].kind"),
    case("attachment.kind-missing", enqueue_payload(lambda: {**P, "attachments": [without(attachment(), "kind")]}), ValidationError, "attachments[0].kind"),
    case("attachment.kind=int", enqueue_payload(lambda: {**P, "attachments": [attachment(kind=1)]}), ValidationError, "attachments[0].kind"),
    case("attachment[1].kind=sticker",
         enqueue_payload(lambda: {**P, "attachments": [attachment(), attachment(kind="sticker")]}), ValidationError, "attachments[1].kind"),
    case("attachment.status=deleted",
         enqueue_payload(lambda: {**P, "attachments": [attachment(status="deleted")]}), ValidationError, "attachments[0].status"),
    case("attachment.storageId-missing",
         enqueue_payload(lambda: {**P, "attachments": [without(attachment(), "storageId")]}), ValidationError, "attachments[0].storageId"),
    case("attachment.storageId=not-sha",
         enqueue_payload(lambda: {**P, "attachments": [attachment("not-a-sha")]}), ValidationError, "attachments[0].storageId"),
    case("attachment.storageId=uppercase",
         enqueue_payload(lambda: {**P, "attachments": [attachment(BLOB_SHA.upper())]}), ValidationError, "attachments[0].storageId"),
    case("attachment.storageId-not-stored",
         enqueue_payload(lambda: {**P, "attachments": [attachment(), attachment(MISSING_SHA)]}), NotFoundError, "attachments[1].storageId"),
    case("attachment.telegramFileId-missing",
         enqueue_payload(lambda: {**P, "attachments": [without(attachment(), "telegramFileId")]}), ValidationError, "attachments[0].telegramFileId"),
    case("attachment.expiresAt-missing",
         enqueue_payload(lambda: {**P, "attachments": [without(attachment(), "expiresAt")]}), ValidationError, "attachments[0].expiresAt"),
    case("attachment.expiresAt=-1",
         enqueue_payload(lambda: {**P, "attachments": [attachment(expiresAt=-1)]}), ValidationError, "attachments[0].expiresAt"),
    case("attachment.expiresAt=str",
         enqueue_payload(lambda: {**P, "attachments": [attachment(expiresAt="tomorrow")]}), ValidationError, "attachments[0].expiresAt"),
    case("attachment.expiresAt=float",
         enqueue_payload(lambda: {**P, "attachments": [attachment(expiresAt=1.5)]}), ValidationError, "attachments[0].expiresAt"),
    case("attachment.sizeBytes=-1",
         enqueue_payload(lambda: {**P, "attachments": [attachment(sizeBytes=-1)]}), ValidationError, "attachments[0].sizeBytes"),
    case("attachment.fileName=int",
         enqueue_payload(lambda: {**P, "attachments": [attachment(fileName=5)]}), ValidationError, "attachments[0].fileName"),
    case("attachment.unknown-key",
         enqueue_payload(lambda: {**P, "attachments": [attachment(storage_id=BLOB_SHA)]}), ValidationError, "attachments[0]", "storage_id"),
    case("json/bytes", enqueue_payload(lambda: {**P, "rawUpdateJson": b"{}"}), ValidationError, "payload"),
    case("json/int-too-big", enqueue_payload(lambda: {**P, "metadata": {"n": 2**70}}), ValidationError, "payload"),
    case("json/object", enqueue_payload(lambda: {**P, "rawUpdateJson": object()}), ValidationError, "payload"),
    case("json/surrogate", enqueue_payload(lambda: {**P, "messageText": "\ud800"}), ValidationError, "payload"),
]


@pytest.mark.parametrize("call, exc, needles", PAYLOAD_SHAPES)
def test_payload_shape(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    expect_rejected(world, call, exc, *needles)


PUID_PREFIX = "providerUserId is required but missing in payload"


@pytest.mark.parametrize(
    "value",
    [pytest.param("", id="empty"), pytest.param("   ", id="blank"), pytest.param("\t\n", id="whitespace"),
     pytest.param(None, id="None"), pytest.param(5, id="int"), pytest.param(["u1"], id="list"), pytest.param(..., id="missing")],
)
def test_blank_provider_user_id(world: World, value: Any) -> None:
    payload = without(P, "providerUserId") if value is ... else {**P, "providerUserId": value}
    err = expect_rejected(world, lambda w: w.f.queue.enqueue("c-shape", "a1", payload), ValidationError)
    assert str(err).startswith(PUID_PREFIX), str(err)
    err = expect_rejected(
        world,
        lambda w: w.f.queue.enqueue_many([{"conversation_id": "c-shape", "agent_key": "a1", "payload": P},
                                          {"conversation_id": "c-shape", "agent_key": "a1", "payload": payload}]),
        ValidationError,
    )
    assert str(err).startswith("item 1: " + PUID_PREFIX), str(err)


# --------------------------------------------------------------------------------------
# enqueue_many: all or nothing, and the error names the item
# --------------------------------------------------------------------------------------


def good_item(i: int) -> dict[str, Any]:
    # items 0 and 1 go to an existing conversation, the rest to new ones
    return {"conversation_id": "c2" if i < 2 else f"batch-{i}", "agent_key": "a1", "payload": {**P, "messageText": f"m{i}"}}


BAD_ITEMS: dict[str, tuple[Callable[[int], Any], type]] = {
    "not-a-dict": (lambda i: [("conversation_id", f"batch-{i}")], TypeError),
    "unknown-item-key": (lambda i: {**good_item(i), "priorty": 3}, ValidationError),
    "blank-conversation": (lambda i: {**good_item(i), "conversation_id": "  "}, ValidationError),
    "max_attempts=0": (lambda i: {**good_item(i), "max_attempts": 0}, ValidationError),
    "payload-unknown-key": (lambda i: {**good_item(i), "payload": {**P, "provider_user_id": "u"}}, ValidationError),
    "blank-providerUserId": (lambda i: {**good_item(i), "payload": {**P, "providerUserId": " "}}, ValidationError),
    "unknown-agent": (lambda i: {**good_item(i), "agent_key": "no-such-agent"}, NotFoundError),
    "disabled-agent": (lambda i: {**good_item(i), "agent_key": DISABLED_AGENT}, InvalidStateError),
    "missing-blob": (lambda i: {**good_item(i), "payload": {**P, "attachments": [attachment(MISSING_SHA)]}}, NotFoundError),
    "conversation-bound-elsewhere": (lambda i: {**good_item(i), "conversation_id": "c2", "agent_key": "a2"}, ConflictError),
}


@pytest.mark.parametrize("bad_index", range(5))
@pytest.mark.parametrize("kind", sorted(BAD_ITEMS))
def test_enqueue_many_is_all_or_nothing(world: World, kind: str, bad_index: int) -> None:
    """One bad item among five: nothing is enqueued, and the error names the item by
    its (0-based, like ``items[i]``) index."""
    make_bad, exc = BAD_ITEMS[kind]
    items = [make_bad(i) if i == bad_index else good_item(i) for i in range(5)]
    expect_rejected(world, lambda w: w.f.queue.enqueue_many(items), exc, f"item {bad_index}")


def test_enqueue_many_third_of_five_bad(world: World) -> None:
    """The brief's case: the third of five items is bad."""
    items = [good_item(i) for i in range(5)]
    items[2] = {**items[2], "payload": {**P, "provider_user_id": "u1"}}
    before_jobs = world.f.queue.stats()
    err = expect_rejected(world, lambda w: w.f.queue.enqueue_many(items), ValidationError, "provider_user_id")
    assert str(err).startswith("item 2: "), str(err)
    assert world.f.queue.stats() == before_jobs
    assert world.f.queue.conversation("batch-2") is None and world.f.queue.conversation("batch-3") is None


# --------------------------------------------------------------------------------------
# Factory(...) construction with bad arguments
# --------------------------------------------------------------------------------------

CONSTRUCTION = [
    pytest.param(lambda p: Factory(p, config=Config(retry=RetryPolicy(max_attempts=0))), ValidationError, ("retry.max_attempts",), id="max_attempts=0"),
    pytest.param(lambda p: Factory(p, config=Config(lease=LeaseConfig(stale_after_ms=-1))), ValidationError, ("lease.stale_after_ms",), id="stale_after_ms<0"),
    pytest.param(lambda p: Factory(p, config={"queue": {"max_payload_bytes": 0}}), ValidationError, ("queue.max_payload_bytes",), id="dict-max_payload_bytes=0"),
    pytest.param(lambda p: Factory(p, config={"retry": {"jitter_ratio": 2.0}}), ValidationError, ("retry.jitter_ratio",), id="jitter_ratio=2"),
    pytest.param(lambda p: Factory(p, config={"queue": {"bogus": 1}}), ValidationError, ("bogus",), id="unknown-key"),
    pytest.param(lambda p: Factory(p, config={"retry": {"max_attempts": "3"}}), ValidationError, ("config",), id="max_attempts=str"),
    pytest.param(lambda p: Factory(p, config=[1]), ValidationError, ("config",), id="config=list"),
    pytest.param(lambda p: Factory(p, journal_mode="wal2"), ValidationError, ("journal_mode", "wal2"), id="journal_mode=wal2"),
    pytest.param(lambda p: Factory(p, durable="yes"), TypeError, ("durable",), id="durable=str"),
    pytest.param(lambda p: Factory(p, clock=1_767_225_600_000), TypeError, ("clock",), id="clock=int"),
    pytest.param(lambda p: Factory(5), TypeError, ("PathLike",), id="path=int"),
    pytest.param(lambda p: Factory(""), ValidationError, ("path",), id="path=''"),
    pytest.param(lambda p: Factory("   "), ValidationError, ("path",), id="path=blank"),
]


@pytest.mark.parametrize("make, exc, needles", CONSTRUCTION)
def test_factory_construction_fresh_path_creates_nothing(tmp_path: Path, make: Callable[[Path], Any], exc: type, needles: tuple[str, ...]) -> None:
    folder = tmp_path / "fresh"
    folder.mkdir()
    with pytest.raises(BaseException) as info:
        make(folder / "new.db")
    assert type(info.value) is exc, problem_text(info.value)
    for n in needles:
        assert n in problem_text(info.value)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("make, exc, needles", CONSTRUCTION)
def test_factory_construction_existing_path_changes_nothing(world: World, make: Callable[[Path], Any], exc: type, needles: tuple[str, ...]) -> None:
    tunables = world.f.config.tunables()
    expect_rejected(world, lambda w: make(w.path), exc, *needles)
    assert world.f.config.tunables() == tunables
    assert world.f.queue.get_job(world.claim.message_id).status == "processing"


def test_factory_construction_directory_as_path(tmp_path: Path) -> None:
    with pytest.raises(BaseException) as info:
        Factory(tmp_path)
    assert type(info.value).__name__ == "StorageError", problem_text(info.value)
    assert str(tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# AsyncFactory: the same checks through the asyncio API
# --------------------------------------------------------------------------------------


def five_with_bad_third() -> list[dict[str, Any]]:
    items = [good_item(i) for i in range(5)]
    items[2] = {**items[2], "agent_key": "no-such-agent"}
    return items


ASYNC_CASES = [
    pytest.param(lambda af, w: af.agents.upsert_agent(5), TypeError, ("agent_key",), id="agents.upsert_agent/int"),
    pytest.param(lambda af, w: af.agents.enable("no-such-agent"), NotFoundError, ("no-such-agent",), id="agents.enable/unknown"),
    pytest.param(lambda af, w: af.queue.enqueue("c9", "a1", {**P, "provider_user_id": "u"}), ValidationError, ("provider_user_id",), id="enqueue/unknown-key"),
    pytest.param(lambda af, w: af.queue.enqueue("c9", "a1", [P]), ValidationError, ("payload",), id="enqueue/non-dict"),
    pytest.param(lambda af, w: af.queue.enqueue("c9", "a1", {**P, "providerUserId": ""}), ValidationError, (PUID_PREFIX,), id="enqueue/blank-puid"),
    pytest.param(lambda af, w: af.queue.enqueue("c9", "a1", {**P, "messageText": "x" * (1 << 20)}), ValidationError, ("limit is",), id="enqueue/too-big"),
    pytest.param(lambda af, w: af.queue.enqueue("c9", "no-such-agent", P), NotFoundError, ("no-such-agent",), id="enqueue/unknown-agent"),
    pytest.param(lambda af, w: af.queue.enqueue("c9", DISABLED_AGENT, P), InvalidStateError, (DISABLED_AGENT,), id="enqueue/disabled-agent"),
    pytest.param(lambda af, w: af.queue.enqueue("c9", "a1", P, max_attempts=0), ValidationError, ("maxAttempts",), id="enqueue/max_attempts=0"),
    pytest.param(lambda af, w: af.queue.enqueue_many(five_with_bad_third()), NotFoundError, ("item 2",), id="enqueue_many/bad-third"),
    pytest.param(lambda af, w: af.queue.complete("w1", UNKNOWN_MID, w.claim.lease_id), NotFoundError, (UNKNOWN_MID,), id="complete/unknown"),
    pytest.param(lambda af, w: af.queue.heartbeat("w1", "abc", w.claim.lease_id), ValidationError, ("messageId",), id="heartbeat/malformed"),
    pytest.param(lambda af, w: af.queue.fail("w1", UNKNOWN_MID, w.claim.lease_id, "x"), NotFoundError, (UNKNOWN_MID,), id="fail/unknown"),
    pytest.param(lambda af, w: af.queue.list_jobs("bogus"), ValidationError, ("status",), id="list_jobs/bad-status"),
    pytest.param(lambda af, w: af.queue.release_stuck_jobs(limit=-1), ValidationError, ("limit",), id="release_stuck_jobs/-1"),
    pytest.param(lambda af, w: af.workers.upsert_worker_state("w-stopped", status="active"), InvalidStateError, ("w-stopped",), id="worker/reactivate"),
    pytest.param(lambda af, w: af.secrets.import_plaintext("r1", "x" * 65537), ValidationError, ("plaintextValue",), id="secret/too-big"),
    pytest.param(lambda af, w: af.secrets.status("telegram.botToken"), TypeError, ("secret_refs",), id="secrets.status/str"),
    pytest.param(lambda af, w: af.config.set_provider_config({"kind": "aws"}), ValidationError, ("kind",), id="provider/kind"),
    pytest.param(lambda af, w: af.blobs.get("xyz"), ValidationError, ("sha256",), id="blobs.get/bad"),
    pytest.param(lambda af, w: af.worker("w1").heartbeat(w.fake_claim(message_id=UNKNOWN_MID)), NotFoundError, (UNKNOWN_MID,), id="handle.heartbeat/unknown"),
    pytest.param(lambda af, w: af.worker("w1").hydrate(w.fake_claim(lease_id=WRONG_LEASE)), ConflictError, (WRONG_LEASE,), id="handle.hydrate/lost"),
    pytest.param(lambda af, w: af.worker("w1").complete(w.fake_claim(lease_id=WRONG_LEASE), claim_next=True), ConflictError, (WRONG_LEASE,), id="handle.complete_next/lost"),
    pytest.param(lambda af, w: af.worker("w1").append_conversation_messages(w.claim, [{"role": "bot", "content": "x"}]), ValidationError, ("role",), id="handle.append/role"),
]


@pytest.mark.parametrize("call, exc, needles", ASYNC_CASES)
async def test_async_bad_input(world: World, call: Callable[..., Any], exc: type, needles: tuple[str, ...]) -> None:
    af = AsyncFactory(world.path, clock=world.clock)
    before = world.state()
    with pytest.raises(BaseException) as info:
        await call(af, world)
    assert type(info.value) is exc, problem_text(info.value)
    for n in needles:
        assert n in problem_text(info.value), problem_text(info.value)
    assert world.state() == before


async def test_async_factory_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="retry.max_attempts"):
        AsyncFactory(tmp_path / "a.db", config=Config(retry=RetryPolicy(max_attempts=0)))
    with pytest.raises(ValidationError, match="journal_mode"):
        AsyncFactory(tmp_path / "a.db", journal_mode="memory")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# Hypothesis: random payloads
# --------------------------------------------------------------------------------------

PAYLOAD_KEYS = ["provider", "providerUserId", "messageText", "externalMessageId", "rawUpdateJson", "metadata", "attachments"]
ATTACHMENT_KEYS = ["kind", "status", "storageId", "telegramFileId", "fileName", "mimeType", "sizeBytes", "expiresAt"]
def hypothesis_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=16),
    st.binary(max_size=4),
)
json_values = st.recursive(
    json_leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(PAYLOAD_KEYS + ATTACHMENT_KEYS), st.text(max_size=8)), kids, max_size=4),
    ),
    max_leaves=8,
)
random_dicts = st.dictionaries(
    st.one_of(st.sampled_from(PAYLOAD_KEYS), st.text(max_size=10), st.integers(0, 3)), json_values, max_size=7
)


@st.composite
def valid_attachments(draw: st.DrawFn) -> dict[str, Any]:
    ready = draw(st.booleans())
    att: dict[str, Any] = {
        "kind": draw(st.sampled_from(["photo", "video", "audio", "voice", "document"])),
        "status": "ready" if ready else "expired",
        "storageId": BLOB_SHA if ready else draw(st.sampled_from([MISSING_SHA, BLOB_SHA])),
        "telegramFileId": draw(st.text(min_size=1, max_size=8)),
        "expiresAt": draw(st.integers(0, 2**62)),
    }
    if draw(st.booleans()):
        att["fileName"] = draw(st.text(max_size=8))
    if draw(st.booleans()):
        att["sizeBytes"] = draw(st.integers(0, 10**9))
    return att


@st.composite
def near_valid_payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "provider": draw(st.sampled_from(["telegram", " slack ", "x"])),
        "providerUserId": draw(st.sampled_from(["u1", " u2 ", "42"])),
        "messageText": draw(st.text(max_size=20)),
    }
    if draw(st.booleans()):
        payload["metadata"] = draw(st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3))
    if draw(st.booleans()):
        payload["externalMessageId"] = draw(st.text(max_size=6))
    if draw(st.booleans()):
        payload["attachments"] = draw(st.lists(valid_attachments(), max_size=2))
    mutation = draw(st.sampled_from(
        ["none", "drop", "replace", "add-unknown", "metadata-value", "attachment-field", "attachment-drop", "attachment-unknown"]
    ))
    if mutation == "drop":
        del payload[draw(st.sampled_from(sorted(payload)))]
    elif mutation == "replace":
        payload[draw(st.sampled_from(PAYLOAD_KEYS))] = draw(json_values)
    elif mutation == "add-unknown":
        payload[draw(st.text(max_size=12).filter(lambda k: k not in PAYLOAD_KEYS))] = draw(json_values)
    elif mutation == "metadata-value":
        payload.setdefault("metadata", {})[draw(st.text(max_size=6))] = draw(json_values)
    elif mutation.startswith("attachment"):
        atts = payload.setdefault("attachments", [])
        if not atts:
            atts.append(draw(valid_attachments()))
        target = atts[draw(st.integers(0, len(atts) - 1))]
        if mutation == "attachment-field":
            target[draw(st.sampled_from(ATTACHMENT_KEYS))] = draw(json_values)
        elif mutation == "attachment-drop":
            del target[draw(st.sampled_from(sorted(target)))]
        else:
            target[draw(st.text(max_size=10).filter(lambda k: k not in [*ATTACHMENT_KEYS, "downloadUrl", "path"]))] = draw(json_values)
    return payload


@hypothesis_settings(200)
@given(payload=st.one_of(json_values, random_dicts, near_valid_payloads()))
def test_hypothesis_random_payloads(world: World, payload: Any) -> None:
    before = db_snapshot(world.path)
    try:
        message_id = world.f.queue.enqueue("hyp-conv", "a1", payload)
    except (ValidationError, NotFoundError) as err:
        assert str(err), "empty error message"
        assert db_snapshot(world.path) == before, f"rejected payload changed the database: {err}"
    else:
        after = db_snapshot(world.path)
        assert len(after["messages"]) == len(before["messages"]) + 1
        job = world.f.queue.get_job(message_id)
        assert job is not None and job.conversation_id == "hyp-conv"
        assert job.payload["providerUserId"].strip() and job.payload["metadata"]["providerUserId"] == job.payload["providerUserId"]


# --------------------------------------------------------------------------------------
# Hypothesis: random strings as ids
# --------------------------------------------------------------------------------------

ID_ALPHABET = string.ascii_letters + string.digits + "._:-/ @é"
KNOWN_IDS = ["a1", "a2", "w1", "w2", "w-drain", "w-stopped", "c1", "c2", "c3", "telegram.botToken", "1", "2", "3", BLOB_SHA, MISSING_SHA]
random_ids = st.one_of(
    st.text(max_size=24),
    st.text(alphabet=ID_ALPHABET, max_size=140),
    st.text(alphabet=ID_ALPHABET, min_size=120, max_size=600),
    st.sampled_from(KNOWN_IDS),
    st.integers(min_value=-5, max_value=10**20).map(str),
)


def conv_for(agent_key: str) -> str:
    return "probe-" + hashlib.sha256(agent_key.encode()).hexdigest()


ID_CALLS: dict[str, Callable[[World, str], Any]] = {
    "agents.get": lambda w, s: w.f.agents.get(s),
    "agents.enable": lambda w, s: w.f.agents.enable(s),
    "agents.upsert_agent": lambda w, s: w.f.agents.upsert_agent(s),
    "queue.enqueue[conversation_id]": lambda w, s: w.f.queue.enqueue(s, "a1", P),
    "queue.enqueue[agent_key]": lambda w, s: w.f.queue.enqueue(conv_for(s), s, P),
    "queue.claim[worker_id]": lambda w, s: w.f.queue.claim(s),
    "queue.claim[conversation_id]": lambda w, s: w.f.queue.claim("w-probe", conversation_id=s, mode="pooled"),
    "queue.heartbeat[message_id]": lambda w, s: w.f.queue.heartbeat("w1", s, WRONG_LEASE),
    "queue.complete[message_id]": lambda w, s: w.f.queue.complete("w1", s, WRONG_LEASE),
    "queue.complete[worker_id]": lambda w, s: w.f.queue.complete(s, w.claim.message_id, WRONG_LEASE),
    "queue.fail[message_id]": lambda w, s: w.f.queue.fail("w1", s, WRONG_LEASE, "boom"),
    "queue.fail[lease_id]": lambda w, s: w.f.queue.fail("w1", w.claim.message_id, s, "boom"),
    "queue.get_job": lambda w, s: w.f.queue.get_job(s),
    "queue.get_hydration_bundle[message_id]": lambda w, s: w.f.queue.get_hydration_bundle(s),
    "queue.has_queued_jobs": lambda w, s: w.f.queue.has_queued_jobs(s),
    "queue.list_conversation_jobs": lambda w, s: w.f.queue.list_conversation_jobs(s),
    "queue.conversation": lambda w, s: w.f.queue.conversation(s),
    "queue.append_conversation_messages": lambda w, s: w.f.queue.append_conversation_messages(s, [{"role": "user", "content": "x"}]),
    "workers.get": lambda w, s: w.f.workers.get(s),
    "workers.touch": lambda w, s: w.f.workers.touch(s),
    "workers.control_state": lambda w, s: w.f.workers.control_state(s),
    "worker.control_state": lambda w, s: w.f.worker(s).control_state(),
    "secrets.import_plaintext": lambda w, s: w.f.secrets.import_plaintext(s, "value"),
    "secrets.status": lambda w, s: w.f.secrets.status([s]),
    "secrets.reveal": lambda w, s: w.f.secrets.reveal(s),
    "blobs.get": lambda w, s: w.f.blobs.get(s),
}


@pytest.mark.parametrize("op", sorted(ID_CALLS))
@hypothesis_settings(30)
@given(value=random_ids)
def test_hypothesis_random_ids(world: World, op: str, value: str) -> None:
    before = world.state()
    try:
        ID_CALLS[op](world, value)
    except (ValidationError, NotFoundError) as err:
        assert str(err), "empty error message"
        assert world.state() == before, f"rejected id changed the database: {err}"


# ======================================================================================
# Problems found (these fail until the library is fixed)
# ======================================================================================


def test_secrets_ref_plain_string_is_not_split_into_characters(world: World) -> None:
    """``upsert_agent("a9", secrets_ref="telegram.botToken")`` stores the refs
    ``['t', 'e', 'l', 'g', ...]``: the Python wrapper calls ``list(secrets_ref)`` on the
    string (``secrets.status`` guards against exactly this; ``upsert_agent`` does not)."""
    expect_rejected(world, lambda w: w.f.agents.upsert_agent("a9", secrets_ref="telegram.botToken"),
                    (ValidationError, TypeError), "secrets_ref")


@pytest.mark.parametrize("value", ["false", "no", "0", "off"])
def test_bridge_config_enabled_string_is_rejected(world: World, value: str) -> None:
    """``bridge_config={"enabled": "false"}`` turns the bridge ON: pythonize reads a bool
    by Python truthiness, so any non-empty string is ``True``."""
    expect_rejected(world, lambda w: w.f.agents.upsert_agent("a9", bridge_config={"enabled": value}), ValidationError, "enabled")


@pytest.mark.parametrize("key", ["baseUrl", "serviceKeySecretRef", "bogus"])
def test_bridge_config_unknown_key_is_rejected(world: World, key: str) -> None:
    """``bridge_config={"enabled": True, "baseUrl": ...}`` (camelCase typo) is accepted and
    the value silently dropped; payloads, assignments and tunables reject unknown keys."""
    expect_rejected(world, lambda w: w.f.agents.upsert_agent("a9", bridge_config={"enabled": True, key: "x"}), ValidationError, key)


@pytest.mark.parametrize("key", ["appName", "volumeSizeGb", "bogus"])
def test_provider_config_unknown_key_is_rejected(world: World, key: str) -> None:
    """``set_provider_config({"kind": "fly", "appName": "x"})`` is stored without the app
    name (unknown keys silently ignored)."""
    expect_rejected(world, lambda w: w.f.config.set_provider_config({"kind": "fly", key: "x"}), ValidationError, key)


@pytest.mark.parametrize("workspace", ["", "   ", "w" * 201])
@pytest.mark.parametrize("via", ["queue", "handle"])
def test_append_conversation_messages_validates_workspace_id(world: World, via: str, workspace: str) -> None:
    """``append_conversation_messages(..., workspace_id="")`` (or 201+ chars) is accepted and
    written into ``hydration_cache.snapshot_key``; ``hydrate``/``get_hydration_bundle`` reject
    the same workspace id with ``workspaceId ... must be 1-200 characters``."""
    msgs = [{"role": "user", "content": "x"}]
    call: Callable[[World], Any] = (
        (lambda w: w.f.queue.append_conversation_messages("c1", msgs, workspace_id=workspace))
        if via == "queue"
        else (lambda w: w.handle().append_conversation_messages(w.claim, msgs, workspace_id=workspace))
    )
    expect_rejected(world, call, ValidationError, "workspaceId")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("field", ["rawUpdateJson", "externalMessageId"])
def test_non_finite_float_in_payload_is_rejected(world: World, field: str, value: float) -> None:
    """``{"rawUpdateJson": float("nan")}`` is enqueued with ``rawUpdateJson: null``, while
    ``{"rawUpdateJson": 1.5}`` is rejected with ``payload.rawUpdateJson must be a string``:
    non-finite floats silently become JSON null."""
    expect_rejected(world, lambda w: w.f.queue.enqueue("c9", "a1", {**P, field: value}), ValidationError, field)


def test_system_prompt_larger_than_payload_limit_is_rejected(world: World) -> None:
    """A system prompt bigger than ``queue.max_payload_bytes`` is accepted, after which every
    enqueue fails with ``payload is N bytes; the limit is ...``."""
    err = expect_rejected(world, lambda w: w.f.config.set_message_config(system_prompt="p" * (1 << 20)), ValidationError)
    assert "prompt" in str(err).lower(), str(err)


@pytest.mark.parametrize(
    "field, value",
    [("agent_key", "bad key!"), ("agent_key", "k" * 129), ("conversation_id", "c" * 600), ("lease_id", "")],
)
def test_worker_assignment_fields_are_validated(world: World, field: str, value: str) -> None:
    """``upsert_worker_state(assignment=...)`` only checks that conversation_id/agent_key are
    not blank: an agent key that is not a valid agentKey, a conversation id over 512 chars
    and an empty lease id are stored (and then steer sticky claims)."""
    assignment = {"conversation_id": "c1", "agent_key": "a1", "lease_id": "lease-1", "assigned_at": EPOCH_2026_MS, field: value}
    expect_rejected(world, lambda w: w.f.workers.upsert_worker_state("w9", status="active", assignment=assignment),
                    ValidationError, "assignment")


HUGE_INTS = [
    case("queue.enqueue/priority=2**70", lambda w: w.f.queue.enqueue("c9", "a1", P, priority=2**70), ValidationError, "priority"),
    case("queue.enqueue/now_ms=2**64", lambda w: w.f.queue.enqueue("c9", "a1", P, now_ms=2**64), ValidationError, "now_ms"),
    case("queue.list_jobs/limit=2**63", lambda w: w.f.queue.list_jobs("queued", limit=2**63), ValidationError, "limit"),
    case("queue.release_stuck_jobs/limit=-2**64", lambda w: w.f.queue.release_stuck_jobs(limit=-(2**64)), ValidationError, "limit"),
    case("workers.upsert_worker_state/load=2**64",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", load=2**64), ValidationError, "load"),
    case("config.set_message_config/retention=2**64",
         lambda w: w.f.config.set_message_config(telegram_attachment_retention_ms=2**64), ValidationError, "telegram_attachment_retention_ms"),
]


@pytest.mark.parametrize("call, exc, needles", HUGE_INTS)
def test_int_beyond_64_bits_raises_validation_error(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    """An int that does not fit 64 bits raises a bare ``OverflowError("Python int too large
    to convert to C long")`` instead of a ``ValidationError`` (the argument is named only in
    the exception's notes)."""
    expect_rejected(world, call, exc, *needles)


SEQUENCE_ARGS = [
    case("queue.enqueue_many/items=str", lambda w: w.f.queue.enqueue_many("abc"), (ValidationError, TypeError), "items"),
    case("queue.enqueue_many/items=dict",
         lambda w: w.f.queue.enqueue_many({"conversation_id": "c9", "agent_key": "a1", "payload": P}), (ValidationError, TypeError), "items"),
    case("queue.enqueue_many/items=[int]", lambda w: w.f.queue.enqueue_many([5]), (ValidationError, TypeError), "item 0"),
    case("queue.append_conversation_messages/messages=str",
         lambda w: w.f.queue.append_conversation_messages("c1", "hello"), (ValidationError, TypeError), "messages"),
    case("queue.append_conversation_messages/messages=dict",
         lambda w: w.f.queue.append_conversation_messages("c1", {"role": "user", "content": "x"}), (ValidationError, TypeError), "messages"),
    case("queue.append_conversation_messages/messages=[int]",
         lambda w: w.f.queue.append_conversation_messages("c1", [5]), (ValidationError, TypeError), "messages"),
    case("worker.append_conversation_messages/messages=str",
         lambda w: w.handle().append_conversation_messages(w.claim, "hello"), (ValidationError, TypeError), "messages"),
    case("secrets.import_plaintext/metadata=str",
         lambda w: w.f.secrets.import_plaintext("r1", "v", metadata="k=v"), (ValidationError, TypeError), "metadata"),
    case("agents.upsert_agent/secrets_ref=None", lambda w: w.f.agents.upsert_agent("a9", secrets_ref=None), (ValidationError, TypeError), "secrets_ref"),
    case("agents.upsert_agent/secrets_ref=int", lambda w: w.f.agents.upsert_agent("a9", secrets_ref=5), (ValidationError, TypeError), "secrets_ref"),
    case("secrets.status/None", lambda w: w.f.secrets.status(None), (ValidationError, TypeError), "secret_refs"),
]


@pytest.mark.parametrize("call, exc, needles", SEQUENCE_ARGS)
def test_wrong_container_type_is_typed_and_named(world: World, call: Callable[[World], Any], exc: Any, needles: tuple[str, ...]) -> None:
    """The Python wrapper runs ``list(x)`` / ``dict(x)`` before the core sees the argument,
    so a wrong container raises e.g. ``ValueError("dictionary update sequence element #0
    has length 1; 2 is required")`` or ``TypeError("'int' object is not iterable")``: not a
    ValidationError, and the message does not say which argument is wrong."""
    expect_rejected(world, call, exc, *needles)


@pytest.mark.parametrize("data", [5, [1, 2, 3], True], ids=["int", "list", "bool"])
def test_blobs_put_rejects_non_bytes(world: World, data: Any) -> None:
    """``blobs.put(5)`` stores five NUL bytes (``bytes(5)``) and ``blobs.put([1, 2, 3])``
    stores ``b"\\x01\\x02\\x03"`` instead of rejecting a non-bytes argument."""
    expect_rejected(world, lambda w: w.f.blobs.put(data), (TypeError, ValidationError), "data")


SURROGATE = "\ud800"
SURROGATE_CALLS = [
    case("agents.get", lambda w: w.f.agents.get(SURROGATE), ValidationError, "agent"),
    case("queue.enqueue/conversation_id", lambda w: w.f.queue.enqueue("c" + SURROGATE, "a1", P), ValidationError, "conversation"),
    case("queue.has_queued_jobs", lambda w: w.f.queue.has_queued_jobs(SURROGATE), ValidationError, "conversation"),
    case("workers.get", lambda w: w.f.workers.get(SURROGATE), ValidationError, "worker"),
    case("secrets.reveal", lambda w: w.f.secrets.reveal(SURROGATE), ValidationError, "secret"),
    case("queue.get_job", lambda w: w.f.queue.get_job(SURROGATE), ValidationError, "message"),
]


@pytest.mark.parametrize("call, exc, needles", SURROGATE_CALLS)
def test_lone_surrogate_in_id_raises_validation_error(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    """A string argument with a lone surrogate raises a bare ``UnicodeEncodeError`` from the
    binding; inside a payload the same string gives ``ValidationError`` (see
    ``test_payload_shape[json/surrogate]``)."""
    expect_rejected(world, call, exc, *needles)


NEGATIVE_TIMES = [
    case("queue.enqueue/now_ms=-5", lambda w: w.f.queue.enqueue("c9", "a1", P, now_ms=-5), ValidationError, "now"),
    case("agents.upsert_agent/now_ms=-5", lambda w: w.f.agents.upsert_agent("a9", now_ms=-5), ValidationError, "now"),
    case("workers.upsert_worker_state/scheduled_shutdown_at=-1",
         lambda w: w.f.workers.upsert_worker_state("w9", status="active", scheduled_shutdown_at=-1), ValidationError, "scheduled"),
    case("workers.upsert_worker_state/stopped_at=-1",
         lambda w: w.f.workers.upsert_worker_state("w-stopping", status="stopped", stopped_at=-1), ValidationError, "stopped"),
    case("queue.append_conversation_messages/at=-1",
         lambda w: w.f.queue.append_conversation_messages("c1", [{"role": "user", "content": "x", "at": -1}]), ValidationError, "at"),
]


@pytest.mark.parametrize("call, exc, needles", NEGATIVE_TIMES)
def test_negative_timestamps_are_rejected(world: World, call: Callable[[World], Any], exc: type, needles: tuple[str, ...]) -> None:
    """``enqueue(..., scheduled_for=-1)`` is rejected (``scheduledFor must be >= 0``) but
    ``enqueue(..., now_ms=-5)`` stores ``scheduled_for = created_at = -5``; other timestamps
    (``now_ms``, ``scheduled_shutdown_at``, ``stopped_at``, history ``at``) accept negatives too."""
    expect_rejected(world, call, exc, *needles)


@pytest.mark.parametrize("error", [None, 5, {"code": 1}], ids=["None", "int", "dict"])
def test_worker_handle_fail_rejects_non_text_error(world: World, error: Any) -> None:
    """``factory.worker("w1").fail(claim, None)`` records the failure with last_error
    ``"NoneType: None"`` (attempt counted, message requeued); ``queue.fail`` rejects a
    non-str error with TypeError. The handle accepts ``str | BaseException`` only by its
    signature."""
    expect_rejected(world, lambda w: w.handle().fail(w.claim, error), (TypeError, ValidationError), "error")
