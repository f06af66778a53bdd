"""Workspace snapshots: ported seed tests, the fixed weaknesses, sync + async, bad input.

Seed ports have docstrings starting with ``Seed: <title>``. The seed stored archives in
Convex storage and never checked the hash; here archives live in the content-addressed
blob store, so a finalize names the blob by its real sha256 and size.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import sqlite3
import string
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent_factory as af
from agent_factory import (
    AsyncFactory,
    Config,
    Factory,
    InvalidStateError,
    ManualClock,
    NotFoundError,
    SnapshotConfig,
    StorageError,
    ValidationError,
)
from agent_factory.testing import EPOCH_2026_MS
from helpers import payload

T0 = EPOCH_2026_MS
RETENTION = SnapshotConfig().retention_ms
DAY = 86_400_000


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def db_dump(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Every row of every table, sorted, through a separate read-only connection."""
    con = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: sorted(con.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        con.close()


def blob_files(factory: Factory) -> list[str]:
    root = Path(factory.info()["blob_root"])
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def state(factory: Factory, path: Path) -> tuple[dict[str, Any], list[str]]:
    return db_dump(path), blob_files(factory)


def make_ready(
    f: Factory, worker: str, conversation: str, data: bytes, now_ms: int, *,
    workspace: str = "default", agent: str = "support-agent"
) -> str:
    up = f.snapshots.prepare_upload(worker, workspace, agent, conversation, "drain", now_ms=now_ms)
    sha = f.blobs.put(data)
    assert f.snapshots.finalize_upload(worker, up.snapshot_id, sha, len(data), now_ms=now_ms + 1) is True
    return up.snapshot_id


def walk_to(f: Factory, worker: str, *statuses: str) -> None:
    for s in statuses:
        f.workers.upsert_worker_state(worker, status=s)


# ---------------------------------------------------------------------------------------
# Seed ports
# ---------------------------------------------------------------------------------------


def test_seed_restore_requires_a_matching_conversation(factory: Factory) -> None:
    """Seed: snapshot restore should require a matching conversation when conversationId is provided"""
    now = T0 + (17 * 60 + 50) * 60_000  # Date.UTC(2026, 0, 1, 17, 50, 0)
    snapshot = factory.snapshots.prepare_upload(
        "worker-snapshot-1", "default", "support-agent", "telegram:chat:snapshot-a", "manual", now_ms=now
    )
    sha = factory.blobs.put(b"snapshot-a")
    finalized = factory.snapshots.finalize_upload("worker-snapshot-1", snapshot.snapshot_id, sha, 10, now_ms=now + 1)
    assert finalized is True
    missing = factory.snapshots.latest_for_restore(
        "default", "support-agent", "telegram:chat:snapshot-b", now_ms=now + 2
    )
    assert missing is None
    found = factory.snapshots.latest_for_restore("default", "support-agent", "telegram:chat:snapshot-a", now_ms=now + 2)
    assert found is not None and found.snapshot_id == snapshot.snapshot_id


def test_seed_snapshot_apis_reject_missing_conversation_id(factory: Factory, factory_path: Path) -> None:
    """Seed: snapshot APIs should reject missing conversationId"""
    now = T0 + (17 * 60 + 52) * 60_000
    before = state(factory, factory_path)
    with pytest.raises(ValidationError, match="conversationId is required"):
        factory.snapshots.prepare_upload(
            "worker-snapshot-missing", "default", "support-agent", None, "manual", now_ms=now  # type: ignore[arg-type]
        )
    with pytest.raises(ValidationError, match="conversationId is required"):
        factory.snapshots.latest_for_restore("default", "support-agent", None, now_ms=now)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        factory.snapshots.prepare_upload("worker-snapshot-missing", "default", "support-agent", reason="manual")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        factory.snapshots.latest_for_restore("default", "support-agent")  # type: ignore[call-arg]
    assert state(factory, factory_path) == before


# ---------------------------------------------------------------------------------------
# Lifecycle and the fixed weaknesses
# ---------------------------------------------------------------------------------------


def test_prepare_returns_an_uploading_snapshot_with_seven_day_expiry(factory: Factory) -> None:
    up = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain")
    assert isinstance(up, af.SnapshotUpload)
    assert (up.status, up.created_at, up.expires_at) == ("uploading", T0, T0 + 604_800_000)
    got = factory.snapshots.get(up.snapshot_id)
    assert got is not None and got.status == "uploading" and got.format_version == 1 and got.path is None
    assert got.to_dict()["reason"] == "drain" and "<table>" in got._repr_html_()


def test_older_ready_snapshot_survives_a_newer_failed_or_open_upload(factory: Factory) -> None:
    """The seed looked only at the newest row, so a failed or unfinished newer upload lost the memory."""
    good = make_ready(factory, "w1", "c1", b"memory v1", T0)
    failed = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain", now_ms=T0 + 10)
    assert factory.snapshots.fail_upload("w1", failed.snapshot_id, "tar: disk full", now_ms=T0 + 11)
    factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "signal", now_ms=T0 + 20)
    latest = factory.snapshots.latest_for_restore("default", "support-agent", "c1", now_ms=T0 + 30)
    assert latest is not None and latest.snapshot_id == good
    assert latest.path is not None and Path(latest.path).read_bytes() == b"memory v1"
    assert latest.sha256 == hashlib.sha256(b"memory v1").hexdigest() and latest.size_bytes == 9
    assert factory.blobs.get(latest.sha256) == b"memory v1"


def test_restore_never_crosses_workspace_or_agent(factory: Factory) -> None:
    make_ready(factory, "w1", "c1", b"x", T0)
    assert factory.snapshots.latest_for_restore("other", "support-agent", "c1") is None
    assert factory.snapshots.latest_for_restore("default", "other-agent", "c1") is None


def test_restore_ignores_snapshots_past_retention_before_the_sweep(factory: Factory) -> None:
    sid = make_ready(factory, "w1", "c1", b"x", T0)
    assert factory.snapshots.latest_for_restore("default", "support-agent", "c1", now_ms=T0 + RETENTION - 1) is not None
    assert factory.snapshots.latest_for_restore("default", "support-agent", "c1", now_ms=T0 + RETENTION) is None
    snap = factory.snapshots.get(sid, now_ms=T0 + RETENTION)
    assert snap is not None and snap.status == "ready" and snap.path is None


def test_finalize_moves_a_draining_worker_to_stopping(factory: Factory) -> None:
    walk_to(factory, "w-drain", "active", "draining")
    sid = make_ready(factory, "w-drain", "c1", b"final", T0 + 100)
    w = factory.workers.get("w-drain")
    assert w is not None
    assert (w.status, w.stopped_at, w.last_snapshot_id) == ("stopping", T0 + 101, sid)
    # An active worker only records the snapshot; a stopping one keeps its stop time.
    walk_to(factory, "w-active", "active")
    sid2 = make_ready(factory, "w-active", "c2", b"periodic", T0 + 200)
    w2 = factory.workers.get("w-active")
    assert w2 is not None and (w2.status, w2.stopped_at, w2.last_snapshot_id) == ("active", None, sid2)
    walk_to(factory, "w-stopping", "active", "draining", "stopping")
    stopping = factory.workers.get("w-stopping")
    assert stopping is not None
    make_ready(factory, "w-stopping", "c3", b"late", T0 + 300)
    after = factory.workers.get("w-stopping")
    assert after is not None and after.status == "stopping" and after.stopped_at == stopping.stopped_at
    # Control state now tells the worker to stop.
    assert factory.workers.control_state("w-drain").should_stop is True


def test_unregistered_worker_can_snapshot(factory: Factory) -> None:
    """The seed's workers snapshot before the registry knows them; no row is created."""
    make_ready(factory, "never-registered", "c1", b"x", T0)
    assert factory.workers.get("never-registered") is None


def test_finalize_and_fail_return_false_for_missing_or_foreign_snapshots(factory: Factory, factory_path: Path) -> None:
    up = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain")
    sha = factory.blobs.put(b"archive")
    before = state(factory, factory_path)
    assert factory.snapshots.finalize_upload("intruder", up.snapshot_id, sha, 7) is False
    assert factory.snapshots.fail_upload("intruder", up.snapshot_id, "nope") is False
    assert factory.snapshots.finalize_upload("w1", "snap-does-not-exist", sha, 7) is False
    assert factory.snapshots.fail_upload("w1", "snap-does-not-exist", "nope") is False
    assert state(factory, factory_path) == before


def test_only_an_uploading_snapshot_can_be_finalized_or_failed(factory: Factory, factory_path: Path) -> None:
    sid = make_ready(factory, "w1", "c1", b"archive", T0)
    sha = hashlib.sha256(b"archive").hexdigest()
    before = state(factory, factory_path)
    with pytest.raises(InvalidStateError, match=f"snapshot {sid} is ready"):
        factory.snapshots.finalize_upload("w1", sid, sha, 7)
    with pytest.raises(InvalidStateError, match="only an uploading snapshot can be failed"):
        factory.snapshots.fail_upload("w1", sid, "too late")
    assert state(factory, factory_path) == before
    up = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain")
    assert factory.snapshots.fail_upload("w1", up.snapshot_id, "x" * 5000) is True
    failed = factory.snapshots.get(up.snapshot_id)
    assert failed is not None and failed.status == "failed" and failed.error == "x" * 4000 and failed.path is None
    with pytest.raises(InvalidStateError, match="is failed"):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, sha, 7)


def test_an_upload_past_its_expiry_cannot_be_finalized(factory: Factory) -> None:
    up = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain")
    sha = factory.blobs.put(b"x")
    with pytest.raises(InvalidStateError, match="expired"):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, sha, 1, now_ms=up.expires_at)


def test_finalize_rejects_a_wrong_sha_or_size_and_changes_nothing(factory: Factory, factory_path: Path) -> None:
    walk_to(factory, "w1", "active", "draining")
    up = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain")
    sha = factory.blobs.put(b"the real archive")
    before = state(factory, factory_path)
    # A sha256 that is not in the blob store (what the seed's fake "beadfeed" would be, padded).
    unknown = hashlib.sha256(b"something never stored").hexdigest()
    with pytest.raises(NotFoundError, match=unknown):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, unknown, 16)
    with pytest.raises(ValidationError, match="sizeBytes 10 does not match"):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, sha, 10)
    with pytest.raises(ValidationError, match="sha256"):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, "beadfeed", 16)
    with pytest.raises(ValidationError, match="sha256"):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, sha.upper(), 16)
    with pytest.raises(ValidationError, match="sizeBytes must be >= 0"):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, sha, -1)
    assert state(factory, factory_path) == before
    # The file on disk no longer matches its name (same length, other bytes).
    Path(factory.blobs.path(sha)).write_bytes(b"a forged archive")
    corrupt_before = state(factory, factory_path)
    with pytest.raises(StorageError, match="corrupt"):
        factory.snapshots.finalize_upload("w1", up.snapshot_id, sha, 16)
    assert state(factory, factory_path) == corrupt_before
    snap = factory.snapshots.get(up.snapshot_id)
    worker = factory.workers.get("w1")
    assert snap is not None and snap.status == "uploading"
    assert worker is not None and worker.status == "draining" and worker.last_snapshot_id is None


def test_listing_is_newest_first_with_clamped_limit_and_restorable_paths(factory: Factory) -> None:
    ids = [make_ready(factory, "w1", "c1", f"v{i}".encode(), T0 + i * 10) for i in range(3)]
    open_upload = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "manual", now_ms=T0 + 100)
    make_ready(factory, "w2", "c-other", b"z", T0)
    listed = factory.snapshots.list_for_conversation("c1", now_ms=T0 + 200)
    assert [s.snapshot_id for s in listed] == [open_upload.snapshot_id, *reversed(ids)]
    assert listed[0].path is None and all(s.path for s in listed[1:])
    assert all(isinstance(s, af.Snapshot) and s.conversation_id == "c1" for s in listed)
    assert len(factory.snapshots.list_for_conversation("c1", limit=0)) == 1
    assert len(factory.snapshots.list_for_conversation("c1", limit=-3)) == 1
    assert len(factory.snapshots.list_for_conversation("c1", limit=2)) == 2
    assert len(factory.snapshots.list_for_conversation("c1", limit=10_000)) == 4
    assert [s.snapshot_id for s in factory.snapshots.list_for_worker("w2")] != []
    assert factory.snapshots.list_for_conversation("c-none") == []
    late = factory.snapshots.list_for_conversation("c1", now_ms=T0 + RETENTION + 100)
    assert all(s.path is None for s in late)


def test_user_agent_conversations_are_listed_in_isolation(factory: Factory) -> None:
    """The listing half of the seed test "user-agent snapshot listing should stay isolated per
    conversation": the user→conversation resolution arrives with identity bindings."""
    conv_a = "user-agent:snapshot-agent:snapshot-user-a"
    conv_b = "user-agent:snapshot-agent:snapshot-user-b"
    make_ready(factory, "worker-snapshot-a", conv_a, b"snapshot-a", T0, agent="snapshot-agent")
    make_ready(factory, "worker-snapshot-b", conv_b, b"snapshot-b", T0 + 2, agent="snapshot-agent")
    listed = factory.snapshots.list_for_conversation(conv_a, now_ms=T0 + 4)
    assert [s.conversation_id for s in listed] == [conv_a]
    latest = factory.snapshots.latest_for_restore("default", "snapshot-agent", conv_a, now_ms=T0 + 4)
    assert latest is not None and latest.conversation_id == conv_a


# ---------------------------------------------------------------------------------------
# Expiry
# ---------------------------------------------------------------------------------------


def test_expiry_deletes_the_blob_of_an_expired_snapshot(factory: Factory) -> None:
    sid = make_ready(factory, "w1", "c1", b"old workspace", T0)
    sha = hashlib.sha256(b"old workspace").hexdigest()
    assert factory.snapshots.expire_old(now_ms=T0 + RETENTION - 1) == af.SnapshotExpiry(0, 0, 0, 0)
    out = factory.snapshots.expire_old(now_ms=T0 + RETENTION)
    assert (out.expired, out.failed, out.blobs_deleted, out.blobs_kept) == (1, 0, 1, 0)
    snap = factory.snapshots.get(sid)
    assert snap is not None and snap.status == "expired" and snap.path is None
    assert not Path(factory.blobs.path(sha)).exists()
    with pytest.raises(NotFoundError):
        factory.blobs.get(sha)
    assert factory.snapshots.expire_old(now_ms=T0 + RETENTION + 1).expired == 0


def test_expiry_keeps_a_blob_that_a_live_snapshot_shares(factory: Factory) -> None:
    """Identical archives share one content-addressed file: expiring one must not break the other."""
    old = make_ready(factory, "w1", "c1", b"same bytes", T0)
    new = make_ready(factory, "w2", "c2", b"same bytes", T0 + DAY)
    sha = hashlib.sha256(b"same bytes").hexdigest()
    out = factory.snapshots.expire_old(now_ms=T0 + RETENTION + 1)
    assert (out.expired, out.blobs_deleted, out.blobs_kept) == (1, 0, 1)
    restorable = factory.snapshots.latest_for_restore("default", "support-agent", "c2")
    assert restorable is not None and restorable.snapshot_id == new
    assert factory.blobs.get(sha) == b"same bytes"
    out = factory.snapshots.expire_old(now_ms=T0 + DAY + RETENTION)
    assert (out.expired, out.blobs_deleted) == (1, 1)
    assert not Path(factory.blobs.path(sha)).exists()
    assert {factory.snapshots.get(old).status, factory.snapshots.get(new).status} == {"expired"}  # type: ignore[union-attr]


def test_expiry_keeps_a_blob_that_a_ready_attachment_uses(factory: Factory, support_agent: str) -> None:
    data = b"a photo that is also in a workspace"
    make_ready(factory, "w1", "c1", data, T0)
    sha = hashlib.sha256(data).hexdigest()
    attachment = {"kind": "photo", "storageId": sha, "telegramFileId": "tg-1", "expiresAt": T0 + 10 * RETENTION}
    factory.queue.enqueue("c-att", support_agent, payload(attachments=[attachment]))
    out = factory.snapshots.expire_old(now_ms=T0 + RETENTION)
    assert (out.expired, out.blobs_deleted, out.blobs_kept) == (1, 0, 1)
    assert factory.blobs.get(sha) == data


def test_abandoned_uploads_fail_at_expiry_instead_of_living_forever(factory: Factory) -> None:
    up = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain", now_ms=T0)
    assert factory.snapshots.expire_old(now_ms=T0 + RETENTION - 1).failed == 0
    out = factory.snapshots.expire_old(now_ms=T0 + RETENTION)
    assert (out.expired, out.failed) == (0, 1)
    snap = factory.snapshots.get(up.snapshot_id)
    assert snap is not None and snap.status == "failed" and snap.completed_at == T0 + RETENTION
    assert snap.error is not None and "abandoned" in snap.error


def test_expiry_limit_bounds_one_sweep(factory: Factory) -> None:
    for i in range(5):
        make_ready(factory, "w1", "c1", f"blob-{i}".encode(), T0 + i)
    first = factory.snapshots.expire_old(limit=3, now_ms=T0 + RETENTION + 10)
    second = factory.snapshots.expire_old(limit=3, now_ms=T0 + RETENTION + 10)
    assert (first.expired, first.blobs_deleted, second.expired, second.blobs_deleted) == (3, 3, 2, 2)
    with pytest.raises(ValidationError, match="limit"):
        factory.snapshots.expire_old(limit=0)


def test_retention_is_a_tunable(factory_path: Path, manual_clock: ManualClock) -> None:
    f = Factory(factory_path, clock=manual_clock, config=Config(snapshots=SnapshotConfig(retention_ms=60_000)))
    assert f.config.tunables().snapshots.retention_ms == 60_000
    assert f.snapshots.prepare_upload("w1", "default", "a", "c1", "manual").expires_at == T0 + 60_000
    with pytest.raises(ValidationError, match="snapshots.retention_ms"):
        f.config.set_tunables(Config(snapshots=SnapshotConfig(retention_ms=0)))
    assert SnapshotConfig().retention_ms == 604_800_000


# ---------------------------------------------------------------------------------------
# One-call upload and restoring files
# ---------------------------------------------------------------------------------------


def test_upload_from_bytes_and_from_a_file(factory: Factory, tmp_path: Path) -> None:
    walk_to(factory, "w1", "active", "draining")
    snap = factory.snapshots.upload("w1", "default", "support-agent", "c1", "drain", b"tarball")
    assert isinstance(snap, af.Snapshot) and snap.status == "ready" and snap.size_bytes == 7
    worker = factory.workers.get("w1")
    assert worker is not None and worker.status == "stopping" and worker.last_snapshot_id == snap.snapshot_id
    archive = tmp_path / "ws.tar.gz"
    archive.write_bytes(os.urandom(300_000))
    from_file = factory.snapshots.upload("w2", "default", "support-agent", "c2", "signal", archive)
    assert from_file.size_bytes == 300_000 and from_file.path is not None
    assert Path(from_file.path).read_bytes() == archive.read_bytes()
    from_str = factory.snapshots.upload("w2", "default", "support-agent", "c2", "manual", str(archive))
    assert from_str.sha256 == from_file.sha256
    assert factory.snapshots.upload("w3", "default", "support-agent", "c3", "manual", bytearray(b"ab")).size_bytes == 2


def test_upload_rejects_bad_sources_before_writing(factory: Factory, factory_path: Path, tmp_path: Path) -> None:
    before = state(factory, factory_path)
    with pytest.raises(ValidationError, match="missing.tar.gz"):
        factory.snapshots.upload("w1", "default", "support-agent", "c1", "drain", tmp_path / "missing.tar.gz")
    with pytest.raises(ValidationError, match="not a regular file"):
        factory.snapshots.upload("w1", "default", "support-agent", "c1", "drain", tmp_path)
    with pytest.raises(TypeError, match="data must be bytes or a file path"):
        factory.snapshots.upload("w1", "default", "support-agent", "c1", "drain", 42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="reason"):
        factory.snapshots.upload("w1", "default", "support-agent", "c1", "crash", b"x")  # type: ignore[arg-type]
    assert state(factory, factory_path) == before


def test_a_new_worker_restores_the_files_of_the_last_snapshot(factory: Factory, tmp_path: Path) -> None:
    """What the worker runtime does: tar the data directory on drain, untar it on start."""
    data_dir = tmp_path / "worker-1" / "data"
    (data_dir / "workspace").mkdir(parents=True)
    (data_dir / "workspace" / "MEMORY.md").write_text("remember the user likes tea\n")
    (data_dir / ".clawdbot").mkdir()
    (data_dir / ".clawdbot" / "state.json").write_text('{"turns": 3}')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(data_dir, arcname=".")
    factory.snapshots.upload("worker-1", "default", "support-agent", "telegram:chat:9", "drain", buf.getvalue())

    latest = factory.snapshots.latest_for_restore("default", "support-agent", "telegram:chat:9")
    assert latest is not None and latest.path is not None and latest.sha256 is not None
    restored = tmp_path / "worker-2" / "data"
    restored.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(factory.blobs.get(latest.sha256)), mode="r:gz") as tar:
        tar.extractall(restored, filter="data")
    assert (restored / "workspace" / "MEMORY.md").read_text() == "remember the user likes tea\n"
    assert (restored / ".clawdbot" / "state.json").read_text() == '{"turns": 3}'


def test_snapshots_survive_reopening_the_database(factory_path: Path, manual_clock: ManualClock) -> None:
    first = Factory(factory_path, clock=manual_clock)
    sid = first.snapshots.upload("w1", "default", "support-agent", "c1", "manual", b"persisted").snapshot_id
    del first
    again = Factory(factory_path, clock=manual_clock)
    latest = again.snapshots.latest_for_restore("default", "support-agent", "c1")
    assert latest is not None and latest.snapshot_id == sid and again.info()["schema_version"] >= 2


# ---------------------------------------------------------------------------------------
# asyncio
# ---------------------------------------------------------------------------------------


async def test_async_snapshot_api_is_real_async_and_returns_the_same_types(
    async_factory: AsyncFactory, factory: Factory
) -> None:
    for name in ("prepare_upload", "finalize_upload", "fail_upload", "upload", "latest_for_restore",
                 "list_for_conversation", "list_for_worker", "get", "expire_old"):
        assert inspect.iscoroutinefunction(getattr(af.AsyncSnapshotsApi, name)), name
        assert not inspect.iscoroutinefunction(getattr(af.SnapshotsApi, name)), name
    await async_factory.workers.upsert_worker_state("aw", status="active")
    await async_factory.workers.upsert_worker_state("aw", status="draining")
    up = await async_factory.snapshots.prepare_upload("aw", "default", "support-agent", "c1", "drain")
    assert isinstance(up, af.SnapshotUpload)
    sha = await async_factory.blobs.put(b"async archive")
    assert await async_factory.snapshots.finalize_upload("aw", up.snapshot_id, sha, 13) is True
    latest = await async_factory.snapshots.latest_for_restore("default", "support-agent", "c1")
    assert isinstance(latest, af.Snapshot) and latest.snapshot_id == up.snapshot_id
    # The blocking factory on the same file sees the same rows.
    assert factory.snapshots.get(up.snapshot_id) == latest
    worker = await async_factory.workers.get("aw")
    assert worker is not None and worker.status == "stopping"
    one_call = await async_factory.snapshots.upload("aw", "default", "support-agent", "c1", "manual", b"again")
    assert [s.snapshot_id for s in await async_factory.snapshots.list_for_conversation("c1")] == [
        one_call.snapshot_id,
        up.snapshot_id,
    ]
    failing = await async_factory.snapshots.prepare_upload("aw", "default", "support-agent", "c1", "drain")
    assert await async_factory.snapshots.fail_upload("aw", failing.snapshot_id, "boom") is True
    with pytest.raises(NotFoundError):
        await async_factory.snapshots.finalize_upload("aw", (await async_factory.snapshots.prepare_upload(
            "aw", "default", "support-agent", "c1", "drain")).snapshot_id, "cd" * 32, 1)
    with pytest.raises(ValidationError, match="conversationId is required"):
        await async_factory.snapshots.latest_for_restore("default", "support-agent", None)  # type: ignore[arg-type]
    out = await async_factory.snapshots.expire_old(now_ms=T0 + RETENTION)
    assert isinstance(out, af.SnapshotExpiry) and out.expired == 2 and out.failed == 1


# ---------------------------------------------------------------------------------------
# Bad input: typed exception naming the field, database unchanged
# ---------------------------------------------------------------------------------------

GOOD = {"worker_id": "w1", "workspace_id": "default", "agent_key": "support-agent", "conversation_id": "c1", "reason": "drain"}


def prepare_with(**changes: Any) -> Callable[[Factory], Any]:
    args = {**GOOD, **changes}
    return lambda f: f.snapshots.prepare_upload(
        args["worker_id"], args["workspace_id"], args["agent_key"], args["conversation_id"], args["reason"]
    )


BAD_CALLS = [
    pytest.param(prepare_with(worker_id="bad id"), ValidationError, "workerId", id="prepare/worker_id"),
    pytest.param(prepare_with(worker_id=""), ValidationError, "workerId", id="prepare/worker_id-empty"),
    pytest.param(prepare_with(workspace_id="  "), ValidationError, "workspaceId", id="prepare/workspace-blank"),
    pytest.param(prepare_with(workspace_id="w" * 201), ValidationError, "workspaceId", id="prepare/workspace-long"),
    pytest.param(prepare_with(agent_key="a b"), ValidationError, "agentKey", id="prepare/agent_key"),
    pytest.param(prepare_with(conversation_id=""), ValidationError, "conversationId", id="prepare/conversation-empty"),
    pytest.param(prepare_with(conversation_id="c" * 513), ValidationError, "conversationId", id="prepare/conversation-long"),
    pytest.param(prepare_with(reason="crash"), ValidationError, "reason", id="prepare/reason"),
    pytest.param(prepare_with(reason="Drain"), ValidationError, "reason", id="prepare/reason-case"),
    pytest.param(prepare_with(worker_id=7), TypeError, "worker_id", id="prepare/worker_id-int"),
    pytest.param(prepare_with(reason=None), TypeError, "reason", id="prepare/reason-none"),
    pytest.param(lambda f: f.snapshots.prepare_upload(**GOOD, now_ms=-1), ValidationError, "nowMs", id="prepare/now"),
    pytest.param(lambda f: f.snapshots.finalize_upload("w1", "bad id", "ab" * 32, 1), ValidationError, "snapshotId",
                 id="finalize/snapshot_id"),
    pytest.param(lambda f: f.snapshots.finalize_upload("w1", "snap-x", "ab" * 32, "1"), TypeError, "size_bytes",
                 id="finalize/size-str"),
    pytest.param(lambda f: f.snapshots.fail_upload("w1", "snap-x", "  "), ValidationError, "error", id="fail/blank-error"),
    pytest.param(lambda f: f.snapshots.fail_upload("w/1", "snap-x", "e"), ValidationError, "workerId", id="fail/worker"),
    pytest.param(lambda f: f.snapshots.latest_for_restore("", "a", "c"), ValidationError, "workspaceId", id="latest/workspace"),
    pytest.param(lambda f: f.snapshots.latest_for_restore("default", "", "c"), ValidationError, "agentKey", id="latest/agent"),
    pytest.param(lambda f: f.snapshots.list_for_conversation(None), ValidationError, "conversationId", id="list/none"),
    pytest.param(lambda f: f.snapshots.list_for_worker("bad id"), ValidationError, "workerId", id="list_worker/id"),
    pytest.param(lambda f: f.snapshots.get("bad id"), ValidationError, "snapshotId", id="get/id"),
    pytest.param(lambda f: f.snapshots.expire_old(limit=100_001), ValidationError, "limit", id="expire/limit"),
    pytest.param(lambda f: f.snapshots.expire_old(now_ms=-5), ValidationError, "nowMs", id="expire/now"),
]


@pytest.fixture
def populated(factory: Factory) -> Factory:
    """A database with a ready, a failed and an open snapshot, and workers in several states."""
    walk_to(factory, "w1", "active", "draining")
    make_ready(factory, "w1", "c1", b"ready", T0)
    failed = factory.snapshots.prepare_upload("w1", "default", "support-agent", "c1", "drain")
    factory.snapshots.fail_upload("w1", failed.snapshot_id, "boom")
    factory.snapshots.prepare_upload("w2", "default", "support-agent", "c2", "manual")
    walk_to(factory, "w2", "active")
    return factory


@pytest.mark.parametrize(("call", "exc", "needle"), BAD_CALLS)
def test_bad_input_is_rejected_and_changes_nothing(
    populated: Factory, factory_path: Path, call: Callable[[Factory], Any], exc: type[BaseException], needle: str
) -> None:
    before = state(populated, factory_path)
    with pytest.raises(exc) as info:
        call(populated)
    text = "\n".join([str(info.value), *getattr(info.value, "__notes__", ())])
    assert needle in text, text
    assert state(populated, factory_path) == before


ID_ALPHABET = string.ascii_letters + string.digits + "._:-/ @é"
texts = st.one_of(st.text(max_size=20), st.text(alphabet=ID_ALPHABET, max_size=140), st.sampled_from(["", " ", "w1", "c1"]))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    op=st.sampled_from(["prepare", "finalize", "fail", "latest", "list", "upload"]),
    a=texts,
    b=texts,
    c=texts,
    reason=st.one_of(st.sampled_from(["drain", "signal", "manual"]), st.text(max_size=8)),
    size=st.integers(min_value=-(2**40), max_value=2**40),
)
def test_hypothesis_invalid_inputs_never_change_the_database(
    populated: Factory, factory_path: Path, op: str, a: str, b: str, c: str, reason: str, size: int
) -> None:
    f = populated
    calls: dict[str, Callable[[], Any]] = {
        "prepare": lambda: f.snapshots.prepare_upload(a, b, c, a, reason),  # type: ignore[arg-type]
        "finalize": lambda: f.snapshots.finalize_upload(a, b, c, size),
        "fail": lambda: f.snapshots.fail_upload(a, b, c),
        "latest": lambda: f.snapshots.latest_for_restore(a, b, c),
        "list": lambda: f.snapshots.list_for_conversation(a, limit=size % 500 - 100),
        "upload": lambda: f.snapshots.upload(a, b, c, a, reason, c.encode()),  # type: ignore[arg-type]
    }
    before = state(f, factory_path)
    try:
        calls[op]()
    except (ValidationError, NotFoundError, InvalidStateError) as err:
        assert str(err), "empty error message"
        assert state(f, factory_path) == before, f"rejected {op} changed the database: {err}"
