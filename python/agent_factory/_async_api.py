"""The asyncio API of agent-factory.

This file is the single source of the public API: ``_sync_api.py`` is generated
from it by ``tools/async_to_sync.py`` (``Async`` prefixes dropped, ``await``
removed), and CI checks that the two agree. Every method here is a real
``async def``; the work runs in Rust on a blocking thread pool, never on the
event loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

from . import _guard, _native
from ._area import _KEEP, _Area, _as_dict, _dict_list, _path_arg, _str_dict, _str_list
from ._async_identity import AsyncIdentityApi
from ._async_push import AsyncPushApi
from ._async_telegram import AsyncTelegramApi
from ._async_templates import AsyncTemplatesApi
from ._control_types import ControlRun, TickReport
from ._pacing import AsyncPacer, Pacer, check_run_args  # noqa: F401  (Pacer: the generated sync module)
from ._record_list import RecordList
from ._types import (
    AgentProfile,
    AppendResult,
    Claim,
    CleanupReport,
    ControlState,
    ConversationCounts,
    ConversationView,
    DirectorySnapshot,
    FailOutcome,
    Heartbeats,
    HydrationBundle,
    ImportedSecret,
    Job,
    MessageConfig,
    PoolReport,
    PoolStatus,
    ProviderConfig,
    QueueStats,
    ReleaseOutcome,
    RestoredSnapshot,
    SecretStatus,
    Snapshot,
    SnapshotExpiry,
    SnapshotUpload,
    Worker,
    WorkerStats,
)
from .config import Config, FlyProvider, LocalProvider, ScalingPolicy
from .errors import ValidationError
from .metrics import Metrics

_IS_ASYNC = True

__all__ = [
    "AsyncFactory",
    "AsyncAgentsApi",
    "AsyncQueueApi",
    "AsyncWorkersApi",
    "AsyncSecretsApi",
    "AsyncSettingsApi",
    "AsyncBlobsApi",
    "AsyncSnapshotsApi",
    "AsyncPoolApi",
    "AsyncControlLoop",
    "AsyncWorkerHandle",
    "AsyncIdentityApi",
    "AsyncTemplatesApi",
    "AsyncPushApi",
    "AsyncTelegramApi",
]


class AsyncAgentsApi(_Area):
    """Agent profiles: ``factory.agents``."""

    __slots__ = ()

    async def upsert_agent(
        self,
        agent_key: str,
        *,
        version: str = "1.0.0",
        secrets_ref: Sequence[str] = (),
        bot_identity: str | None = None,
        bridge_config: Mapping[str, Any] | Any | None = None,
        enabled: bool = True,
        now_ms: int | None = None,
    ) -> AgentProfile:
        """Create or update an agent. The stored ``secrets_ref`` also lists ``fly.apiToken``
        and, with the bridge enabled, its service-key and base-URL-map secrets.
        ``bot_identity``/``bridge_config`` of ``None`` keep the stored values."""
        raw = await self._n.upsert_agent(
            _IS_ASYNC, agent_key, version, _str_list(secrets_ref, "secrets_ref"), bot_identity,
            _as_dict(bridge_config, "bridge_config"), enabled, now_ms,
        )
        return AgentProfile._from(raw)

    async def get(self, agent_key: str) -> AgentProfile | None:
        """One profile, or ``None``."""
        return AgentProfile._maybe(await self._n.get_agent(_IS_ASYNC, agent_key))

    async def list(self, *, enabled: bool | None = None) -> RecordList[AgentProfile]:
        """All profiles by key, optionally only enabled (``True``) or disabled (``False``) ones."""
        return RecordList([AgentProfile._from(a) for a in await self._n.list_agents(_IS_ASYNC, enabled)], AgentProfile)

    async def enable(self, agent_key: str, *, now_ms: int | None = None) -> AgentProfile:
        """Let the agent receive messages again."""
        return AgentProfile._from(await self._n.set_agent_enabled(_IS_ASYNC, agent_key, True, now_ms))

    async def disable(self, agent_key: str, *, now_ms: int | None = None) -> AgentProfile:
        """Stop accepting messages for the agent (enqueue then fails with ``InvalidStateError``)."""
        return AgentProfile._from(await self._n.set_agent_enabled(_IS_ASYNC, agent_key, False, now_ms))


class AsyncQueueApi(_Area):
    """The per-conversation queue: ``factory.queue``."""

    __slots__ = ()

    async def enqueue(
        self,
        conversation_id: str,
        agent_key: str,
        payload: Mapping[str, Any],
        *,
        priority: int | None = None,
        scheduled_for: int | None = None,
        max_attempts: int | None = None,
        now_ms: int | None = None,
    ) -> str:
        """Enqueue one message and return its id.

        ``payload`` is the wire shape workers receive (camelCase keys): ``provider``,
        ``providerUserId``, ``messageText``, optional ``externalMessageId``,
        ``rawUpdateJson``, ``metadata`` (str → str) and ``attachments``. The
        conversation is bound to ``agent_key`` on first use; the global system
        prompt is appended to ``messageText``.
        """
        return await self._n.enqueue(  # type: ignore[no-any-return]
            _IS_ASYNC, conversation_id, agent_key, payload, priority, scheduled_for, max_attempts, now_ms
        )

    async def enqueue_many(self, items: Sequence[Mapping[str, Any]], *, now_ms: int | None = None) -> list[str]:
        """Enqueue many messages in one transaction (all or nothing). Each item is a dict with
        ``conversation_id``, ``agent_key``, ``payload`` and optional ``priority``,
        ``scheduled_for``, ``max_attempts``. Ids come back in input order."""
        return await self._n.enqueue_many(_IS_ASYNC, _dict_list(items, "items", "item {i}"), now_ms)  # type: ignore[no-any-return]

    async def claim(
        self,
        worker_id: str,
        *,
        conversation_id: str | None = None,
        mode: Literal["sticky", "pooled"] | None = None,
        now_ms: int | None = None,
    ) -> Claim | None:
        """Lease the next message for ``worker_id`` (seed-style; prefer ``factory.worker(id).claim()``).
        An unknown worker is registered on its first successful claim with ``mode`` (default sticky)."""
        return Claim._maybe(await self._n.claim(_IS_ASYNC, worker_id, conversation_id, mode, now_ms))

    async def heartbeat(self, worker_id: str, message_id: str, lease_id: str, *, now_ms: int | None = None) -> bool:
        """Extend a live lease; ``False`` if it was lost or has already expired."""
        return await self._n.heartbeat(_IS_ASYNC, worker_id, message_id, lease_id, now_ms)  # type: ignore[no-any-return]

    async def complete(self, worker_id: str, message_id: str, lease_id: str, *, now_ms: int | None = None) -> bool:
        """Mark a held message done; ``False`` (and no change) if the lease is no longer held."""
        return await self._n.complete(_IS_ASYNC, worker_id, message_id, lease_id, now_ms)  # type: ignore[no-any-return]

    async def fail(
        self, worker_id: str, message_id: str, lease_id: str, error: str, *, now_ms: int | None = None
    ) -> FailOutcome:
        """Record a failure: retry after backoff, or dead-letter at ``max_attempts``."""
        return FailOutcome._from(await self._n.fail(_IS_ASYNC, worker_id, message_id, lease_id, error, now_ms))

    async def release_stuck_jobs(self, *, limit: int = 100, now_ms: int | None = None) -> ReleaseOutcome:
        """Recover expired leases: each counts as a failed attempt (retry or dead letter)."""
        return ReleaseOutcome._from(await self._n.release_stuck_jobs(_IS_ASYNC, limit, now_ms))

    async def stats(self, *, now_ms: int | None = None) -> QueueStats:
        """Queue counters."""
        return QueueStats._from(await self._n.queue_stats(_IS_ASYNC, now_ms))

    async def list_jobs(self, status: str, *, limit: int = 100) -> RecordList[Job]:
        """Messages of one status (``queued``/``processing`` oldest first, ``done``/``dead_letter`` newest first)."""
        return RecordList([Job._from(j) for j in await self._n.list_jobs(_IS_ASYNC, status, limit)], Job)

    async def get_job(self, message_id: str) -> Job | None:
        """One message, or ``None``."""
        return Job._maybe(await self._n.get_job(_IS_ASYNC, message_id))

    async def requeue(self, message_id: str, *, now_ms: int | None = None) -> Job:
        """Put a dead-lettered message back in its conversation's queue: status ``queued``,
        attempts reset to 0, scheduled for now, so in its conversation it comes after every
        message that was due before the requeue (it never overtakes waiting work); the last
        error is kept until it is claimed again. ``NotFoundError`` for an unknown id,
        ``InvalidStateError`` unless the message is dead-lettered, and the errors of
        ``enqueue`` when its agent is disabled or gone."""
        return Job._from(await self._n.requeue(_IS_ASYNC, message_id, now_ms))

    async def conversation_counts(self, *, now_ms: int | None = None) -> ConversationCounts:
        """How many conversations are ready, and ready or in flight (for the autoscaler)."""
        return ConversationCounts._from(await self._n.conversation_counts(_IS_ASYNC, now_ms))

    async def active_conversations(self, *, limit: int = 1000, now_ms: int | None = None) -> list[tuple[str, str]]:
        """``(agent_key, conversation_id)`` of conversations that need a worker, sorted."""
        return [(agent, conversation) for agent, conversation in await self._n.active_conversations(_IS_ASYNC, limit, now_ms)]

    async def has_queued_jobs(self, conversation_id: str) -> bool:
        """Whether anything is queued or in flight for the conversation."""
        return await self._n.has_queued_jobs(_IS_ASYNC, conversation_id)  # type: ignore[no-any-return]

    async def list_conversation_jobs(self, conversation_id: str, *, limit: int = 100) -> RecordList[Job]:
        """Recent messages of one conversation, newest first."""
        return RecordList(
            [Job._from(j) for j in await self._n.list_conversation_jobs(_IS_ASYNC, conversation_id, limit)], Job
        )

    async def conversation(self, conversation_id: str, *, limit: int = 50) -> ConversationView | None:
        """A conversation with its history and recent messages, or ``None``."""
        return ConversationView._maybe(await self._n.conversation_view(_IS_ASYNC, conversation_id, limit))

    async def append_conversation_messages(
        self,
        conversation_id: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        workspace_id: str | None = None,
        now_ms: int | None = None,
    ) -> AppendResult:
        """Append ``{"role", "content", "at"?}`` entries to the conversation's bounded history."""
        raw = await self._n.append_conversation_messages(
                        _IS_ASYNC, conversation_id, _dict_list(messages, "messages"), workspace_id, now_ms
        )
        return AppendResult(updated=raw[0], message_count=raw[1])

    async def get_hydration_bundle(self, message_id: str, *, workspace_id: str = "default") -> HydrationBundle | None:
        """Operator call: the bundle (with secrets) of an in-flight message, without a lease.
        Workers use ``factory.worker(id).hydrate(claim)``, which checks the lease."""
        return HydrationBundle._maybe(await self._n.operator_hydration_bundle(_IS_ASYNC, message_id, workspace_id))


class AsyncWorkersApi(_Area):
    """The worker registry: ``factory.workers``."""

    __slots__ = ()

    async def upsert_worker_state(
        self,
        worker_id: str,
        *,
        status: str,
        provider: str = "local",
        load: int = 0,
        mode: Literal["sticky", "pooled"] | None = None,
        scheduled_shutdown_at: int | None = None,
        stopped_at: int | None = None,
        machine_id: str | None = None,
        app_name: str | None = None,
        region: str | None = None,
        volume_id: str | None = None,
        assignment: Mapping[str, Any] | None = _KEEP,
        clear_last_snapshot_id: bool = False,
        clear_machine_ref: bool = False,
        clear_volume_id: bool = False,
        stop_reason: str | None = None,
        now_ms: int | None = None,
    ) -> Worker:
        """Create or update a worker row. Status changes follow
        ``active → draining → stopping → stopped`` (else ``InvalidStateError``); a stopped
        worker keeps its last heartbeat. ``assignment``: omit to keep, ``None`` to clear,
        a dict (``conversation_id``, ``agent_key``, ``lease_id``, ``assigned_at``) to set."""
        clear = assignment is None
        given = None if assignment is _KEEP or assignment is None else _as_dict(assignment, "assignment")
        raw = await self._n.upsert_worker_state(
            _IS_ASYNC, worker_id, provider, status, load, mode, scheduled_shutdown_at, stopped_at, machine_id,
            app_name, region, volume_id, given, clear, clear_last_snapshot_id, clear_machine_ref, clear_volume_id,
            stop_reason, now_ms,
        )
        return Worker._from(raw)

    async def get(self, worker_id: str) -> Worker | None:
        """One worker, or ``None``."""
        return Worker._maybe(await self._n.get_worker(_IS_ASYNC, worker_id))

    async def list(self, *, status: str | None = None, limit: int = 1000) -> RecordList[Worker]:
        """Workers, newest first, optionally of one status."""
        return RecordList([Worker._from(w) for w in await self._n.list_workers(_IS_ASYNC, status, limit)], Worker)

    async def control_state(self, worker_id: str, *, now_ms: int | None = None) -> ControlState:
        """Whether the worker should stop (read-only; the worker's own handle also heartbeats)."""
        return ControlState._from(await self._n.control_state(_IS_ASYNC, worker_id, False, now_ms))

    async def touch(self, worker_id: str, *, now_ms: int | None = None) -> bool:
        """Idle heartbeat for an active worker; ``False`` if unknown or not active."""
        return await self._n.touch_worker(_IS_ASYNC, worker_id, now_ms)  # type: ignore[no-any-return]

    async def stats(self) -> WorkerStats:
        """Busy and idle active workers, and counts by status."""
        return WorkerStats._from(await self._n.worker_stats(_IS_ASYNC))


class AsyncSecretsApi(_Area):
    """Encrypted, versioned secrets: ``factory.secrets``."""

    __slots__ = ()

    async def import_plaintext(
        self, secret_ref: str, plaintext_value: str, *, metadata: Mapping[str, str] | None = None, now_ms: int | None = None
    ) -> ImportedSecret:
        """Store a new version (encrypted with XChaCha20-Poly1305) and make it active."""
        raw = await self._n.import_secret(
            _IS_ASYNC, secret_ref, plaintext_value, _str_dict(metadata, "metadata"), now_ms
        )
        return ImportedSecret._from(raw)

    async def status(self, secret_refs: Sequence[str]) -> RecordList[SecretStatus]:
        """Whether each reference has an active version (never the value), in input order."""
        refs = _str_list(secret_refs, "secret_refs")
        return RecordList([SecretStatus._from(s) for s in await self._n.secret_status(_IS_ASYNC, refs)], SecretStatus)

    async def list_refs(self) -> list[str]:
        """References that have an active version."""
        return await self._n.list_secret_refs(_IS_ASYNC)  # type: ignore[no-any-return]

    async def reveal(self, secret_ref: str) -> str | None:
        """Operator call: the active plaintext, or ``None``."""
        return await self._n.reveal_secret(_IS_ASYNC, secret_ref)  # type: ignore[no-any-return]


class AsyncSettingsApi(_Area):
    """Runtime settings stored in the database: ``factory.config``."""

    __slots__ = ()

    async def message_config(self) -> MessageConfig | None:
        """The message settings, or ``None`` when nothing is set."""
        return MessageConfig._maybe(await self._n.message_config(_IS_ASYNC))

    async def set_message_config(
        self,
        *,
        system_prompt: str | None = None,
        telegram_attachment_retention_ms: int | None = None,
        now_ms: int | None = None,
    ) -> MessageConfig | None:
        """Replace the message settings. A blank prompt is dropped; if nothing remains the
        settings are cleared and ``None`` is returned."""
        raw = await self._n.set_message_config(_IS_ASYNC, system_prompt, telegram_attachment_retention_ms, now_ms)
        return MessageConfig._maybe(raw)

    async def provider_config(self) -> ProviderConfig | None:
        """Where workers run, or ``None``."""
        return ProviderConfig._maybe(await self._n.provider_config(_IS_ASYNC))

    async def set_provider_config(self, config: ProviderConfig | Mapping[str, Any], *, now_ms: int | None = None) -> None:
        """Store the provider settings."""
        await self._n.set_provider_config(_IS_ASYNC, _as_dict(config, "config"), now_ms)

    def tunables(self) -> Config:
        """The factory's current tunables."""
        return Config.from_dict(self._n.get_config())

    def set_tunables(self, config: Config) -> None:
        """Replace the tunables for every handle on this factory."""
        self._n.set_config(_as_dict(config, "config"))


class AsyncBlobsApi(_Area):
    """The content-addressed blob store beside the database: ``factory.blobs``."""

    __slots__ = ()

    async def put(self, data: bytes) -> str:
        """Store bytes; returns their SHA-256 (the blob id)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__} (encode a string first)")
        return await self._n.put_blob(_IS_ASYNC, bytes(data))  # type: ignore[no-any-return]

    async def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file's contents, streaming; returns ``(sha256, size)``."""
        sha, size = await self._n.put_blob_file(_IS_ASYNC, os.fspath(path))
        return sha, size

    async def get(self, sha256: str) -> bytes:
        """Read a blob, verifying its hash."""
        return bytes(await self._n.get_blob(_IS_ASYNC, sha256))

    def path(self, sha256: str) -> str:
        """Where the blob lives on disk."""
        return str(self._n.blob_path(sha256))

    async def delete(self, sha256: str) -> bool:
        """Remove a blob; ``False`` if it was not there."""
        return await self._n.delete_blob(_IS_ASYNC, sha256)  # type: ignore[no-any-return]


SnapshotReason = Literal["drain", "signal", "manual"]
RestoreMode = Literal["replace", "merge"]


class AsyncSnapshotsApi(_Area):
    """Workspace snapshots kept in the blob store: ``factory.snapshots``.

    A snapshot belongs to one ``(workspace_id, agent_key, conversation_id)``; the
    conversation id is required everywhere (``None`` raises ``ValidationError``).
    Lifecycle: ``uploading`` → ``ready`` | ``failed``, and ``ready`` → ``expired``
    after the retention (``Config.snapshots.retention_ms``, 7 days by default).
    """

    __slots__ = ()

    async def prepare_upload(
        self,
        worker_id: str,
        workspace_id: str,
        agent_key: str,
        conversation_id: str,
        reason: SnapshotReason,
        *,
        now_ms: int | None = None,
    ) -> SnapshotUpload:
        """Start an upload: an ``uploading`` snapshot that expires after the retention.
        Next, store the archive (``factory.blobs.put`` / ``put_file``) and call
        :meth:`finalize_upload` with its sha256 and size, or :meth:`fail_upload`."""
        raw = await self._n.prepare_snapshot_upload(
            _IS_ASYNC, worker_id, workspace_id, agent_key, conversation_id, reason, now_ms
        )
        return SnapshotUpload._from(raw)

    async def finalize_upload(
        self, worker_id: str, snapshot_id: str, sha256: str, size_bytes: int, *, now_ms: int | None = None
    ) -> bool:
        """Mark the upload ready once blob ``sha256`` is verified: it must be in the blob
        store (``NotFoundError``), have ``size_bytes`` bytes (``ValidationError``) and hash
        to its name (``StorageError``). The worker's ``last_snapshot_id`` becomes this
        snapshot and a ``draining`` worker moves to ``stopping``. Returns ``False`` (and
        changes nothing) if the snapshot does not exist or another worker prepared it;
        ``InvalidStateError`` if it is not ``uploading`` or has already expired."""
        return await self._n.finalize_snapshot_upload(  # type: ignore[no-any-return]
            _IS_ASYNC, worker_id, snapshot_id, sha256, size_bytes, now_ms
        )

    async def fail_upload(self, worker_id: str, snapshot_id: str, error: str, *, now_ms: int | None = None) -> bool:
        """Mark an ``uploading`` snapshot failed with ``error`` (kept up to 4000 characters).
        ``False`` if the snapshot does not exist or belongs to another worker."""
        return await self._n.fail_snapshot_upload(_IS_ASYNC, worker_id, snapshot_id, error, now_ms)  # type: ignore[no-any-return]

    async def upload(
        self,
        worker_id: str,
        workspace_id: str,
        agent_key: str,
        conversation_id: str,
        reason: SnapshotReason,
        data: bytes | bytearray | memoryview | str | os.PathLike[str],
        *,
        now_ms: int | None = None,
    ) -> Snapshot:
        """Prepare, store and finalize in one call; returns the ready snapshot.

        ``data`` is the archive's bytes, or the path (``str`` or path-like) of an archive
        file, which is streamed into the blob store. A path that cannot be read is
        rejected before anything is written; a failure after the prepare marks the
        snapshot ``failed`` and raises."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            blob, path = bytes(data), None
        elif isinstance(data, (str, os.PathLike)):
            blob, path = None, os.fspath(data)
        else:
            raise TypeError(f"data must be bytes or a file path, not {type(data).__name__}")
        raw = await self._n.upload_snapshot(
            _IS_ASYNC, worker_id, workspace_id, agent_key, conversation_id, reason, blob, path, now_ms
        )
        return Snapshot._from(raw)

    async def latest_for_restore(
        self, workspace_id: str, agent_key: str, conversation_id: str, *, now_ms: int | None = None
    ) -> Snapshot | None:
        """The newest ``ready``, unexpired snapshot of exactly this workspace, agent and
        conversation (never another conversation's), or ``None``. A newer snapshot that
        failed or is still uploading does not hide an older ready one. ``path`` is the
        archive to restore from (``factory.blobs.get(snapshot.sha256)`` reads it verified)."""
        raw = await self._n.latest_snapshot_for_restore(_IS_ASYNC, workspace_id, agent_key, conversation_id, now_ms)
        return Snapshot._maybe(raw)

    async def list_for_conversation(
        self, conversation_id: str, *, limit: int = 50, now_ms: int | None = None
    ) -> RecordList[Snapshot]:
        """Snapshots of one conversation, newest first; ``limit`` is clamped to 1..200."""
        raw = await self._n.list_snapshots_for_conversation(_IS_ASYNC, conversation_id, limit, now_ms)
        return RecordList([Snapshot._from(s) for s in raw], Snapshot)

    async def list_for_worker(self, worker_id: str, *, limit: int = 50, now_ms: int | None = None) -> RecordList[Snapshot]:
        """Snapshots taken by one worker, newest first; ``limit`` is clamped to 1..200."""
        return RecordList(
            [Snapshot._from(s) for s in await self._n.list_snapshots_for_worker(_IS_ASYNC, worker_id, limit, now_ms)], Snapshot
        )

    async def get(self, snapshot_id: str, *, now_ms: int | None = None) -> Snapshot | None:
        """One snapshot, or ``None``."""
        return Snapshot._maybe(await self._n.get_snapshot(_IS_ASYNC, snapshot_id, now_ms))

    async def snapshot_directory(
        self,
        worker_id: str,
        workspace_id: str,
        agent_key: str,
        conversation_id: str,
        reason: SnapshotReason,
        path: str | os.PathLike[str],
        *,
        now_ms: int | None = None,
    ) -> DirectorySnapshot:
        """Archive directory ``path`` (a gzip'd tar, streamed into the blob store) and
        store it as a ready snapshot, in one call.

        Symlinks are kept as links when they stay inside the directory; links a restore
        would reject, sockets, FIFOs and device files are left out and listed in
        ``archive.skipped``. Bad arguments or a missing directory raise before anything
        is written; a pack that fails part-way is recorded as a ``failed`` snapshot and
        raised."""
        raw = await self._n.snapshot_directory(
            _IS_ASYNC, worker_id, workspace_id, agent_key, conversation_id, reason, _path_arg(path, "path"), now_ms
        )
        return DirectorySnapshot._from(raw)

    async def restore_latest(
        self,
        workspace_id: str,
        agent_key: str,
        conversation_id: str,
        path: str | os.PathLike[str],
        *,
        mode: RestoreMode = "replace",
        now_ms: int | None = None,
    ) -> RestoredSnapshot | None:
        """Restore the newest ready snapshot of exactly this workspace, agent and
        conversation into directory ``path`` (created if missing); ``None`` and
        ``path`` untouched when there is none.

        ``mode="replace"`` makes ``path`` exactly the snapshot (everything else in it is
        deleted); ``"merge"`` writes the snapshot's entries over what is there and keeps
        the rest. The archive is extracted into a staging directory first and checked
        against the snapshot's sha256 and size; only then does ``path`` change. Archives
        with absolute paths, ``..``, links escaping the directory, hard links or device
        files are rejected whole (``ValidationError``); a corrupt archive raises
        ``StorageError``."""
        raw = await self._n.restore_latest_snapshot(
            _IS_ASYNC, workspace_id, agent_key, conversation_id, _path_arg(path, "path"), mode, now_ms
        )
        return RestoredSnapshot._maybe(raw)

    async def restore(
        self,
        snapshot_id: str,
        path: str | os.PathLike[str],
        *,
        mode: RestoreMode = "replace",
        now_ms: int | None = None,
    ) -> RestoredSnapshot:
        """Restore one ready snapshot by id into ``path``, with the checks and modes of
        :meth:`restore_latest` (``NotFoundError`` for an unknown id, ``InvalidStateError``
        unless it is ready)."""
        raw = await self._n.restore_snapshot(_IS_ASYNC, snapshot_id, _path_arg(path, "path"), mode, now_ms)
        return RestoredSnapshot._from(raw)

    async def expire_old(self, *, limit: int = 100, now_ms: int | None = None) -> SnapshotExpiry:
        """Retention sweep over at most ``limit`` rows: ``ready`` snapshots past their
        expiry become ``expired`` and their archives are deleted from the blob store,
        unless an unexpired ready snapshot or a ready attachment shares the same blob.
        Uploads still ``uploading`` at their expiry can never finish and become ``failed``."""
        return SnapshotExpiry._from(await self._n.expire_old_snapshots(_IS_ASYNC, limit, now_ms))


def _provider_arg(provider: LocalProvider | FlyProvider | None) -> dict[str, Any]:
    """The native provider choice: the kind, Fly overrides and local settings."""
    local = LocalProvider().to_dict()
    if provider is None:
        return {"kind": None, "fly": {}, "local": local}
    if isinstance(provider, FlyProvider):
        return {"kind": "fly", "fly": provider.to_dict(), "local": local}
    if isinstance(provider, LocalProvider):
        return {"kind": "local", "fly": {}, "local": provider.to_dict()}
    raise TypeError(f"provider must be a LocalProvider, a FlyProvider or None, got {type(provider).__name__}")


def _scaling_arg(scaling: ScalingPolicy | Mapping[str, Any] | None) -> Any:
    if scaling is not None and not isinstance(scaling, (ScalingPolicy, Mapping)):
        raise TypeError(f"scaling must be a ScalingPolicy, a dict or None, got {type(scaling).__name__}")
    return _as_dict(scaling, "scaling")


class AsyncPoolApi(_Area):
    """The autoscaled worker pool: ``factory.pool``.

    ``provider`` is a :class:`~agent_factory.LocalProvider` (worker subprocesses,
    the default when nothing is configured), a :class:`~agent_factory.FlyProvider`
    (Fly Machines), or ``None`` for the stored provider config
    (``factory.config.set_provider_config``). ``scaling`` defaults to the factory's
    ``Config.scaling`` and is used for every decision of the call. Cycles never
    overlap: a second call waits for the running one (``ConflictError`` after 30 s).

    The control loop (``run``, ``tick``, ``control_loop``) runs these cycles when
    they are due; a database lease (``pool.control``) lets only one loop act at a
    time, across threads and processes.
    """

    __slots__ = ("_control",)

    def __init__(self, native: Any) -> None:
        super().__init__(native)
        self._control: Any = None

    async def reconcile(
        self,
        *,
        provider: LocalProvider | FlyProvider | None = None,
        scaling: ScalingPolicy | Mapping[str, Any] | None = None,
        workspace_id: str = "default",
        now_ms: int | None = None,
    ) -> PoolReport:
        """One reconcile cycle (the seed's ``reconcileWorkerPool``).

        Recovers expired leases, reconciles worker rows with the provider's machines
        (grace window for fresh workers, stopped or missing machines drain),
        backfills idle shutdown times, spawns workers pre-assigned to uncovered
        active conversations (at most ``min(#active conversations, max_workers)``
        workers, live ones included, ``spawn_step`` per call; each with its own
        volume and a ``spawn:<workerId>`` assignment), drains idle workers and tears
        down stopping ones. A failed spawn is rolled back (worker ``stopped``, volume
        deleted) and raised as ``ProviderError`` after the rest of the cycle ran.
        """
        raw = await self._n.pool_reconcile(
            _IS_ASYNC, _provider_arg(provider), _scaling_arg(scaling), workspace_id, now_ms
        )
        return PoolReport._from(raw)

    async def check_idle_shutdowns(
        self,
        *,
        provider: LocalProvider | FlyProvider | None = None,
        scaling: ScalingPolicy | Mapping[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> PoolReport:
        """One idle-shutdown cycle (the seed's ``checkIdleShutdowns``): provider
        reconciliation, backfill, idle workers → ``draining`` (never reactivated),
        draining workers → ``stopping`` once their final snapshot is ready (or they
        never claimed a job, or the drain timed out), then teardown: cordon, stop and
        destroy the machine, delete its volumes, ``stopped``. No spawning."""
        raw = await self._n.pool_check_idle_shutdowns(
            _IS_ASYNC, _provider_arg(provider), _scaling_arg(scaling), now_ms
        )
        return PoolReport._from(raw)

    async def status(self, *, provider: LocalProvider | FlyProvider | None = None) -> PoolStatus:
        """Running workers in the provider's scope, the machines and volumes it lists,
        and listed machines that no running worker knows."""
        return PoolStatus._from(await self._n.pool_status(_IS_ASYNC, _provider_arg(provider)))

    async def fly_cleanup(
        self,
        *,
        provider: FlyProvider | None = None,
        machine_concurrency: int = 6,
        volume_concurrency: int = 16,
        settle_timeout_ms: int = 30_000,
        poll_interval_ms: int = 1_000,
        volume_attempts: int = 3,
    ) -> CleanupReport:
        """Destroy **every** machine and volume of the Fly app, verify and report (the
        seed's ``runFlyCleanup``). The app comes from ``provider`` or the stored
        provider config, the token from ``provider.api_token`` or the active
        ``fly.apiToken`` secret (``NotFoundError``: ``Missing active 'fly.apiToken'
        secret. Import it before running Fly cleanup.``). Worker rows are not touched."""
        if provider is not None and not isinstance(provider, FlyProvider):
            raise TypeError(f"provider must be a FlyProvider or None, got {type(provider).__name__}")
        choice = _provider_arg(provider)
        raw = await self._n.pool_fly_cleanup(
            _IS_ASYNC, choice, machine_concurrency, volume_concurrency, settle_timeout_ms, poll_interval_ms, volume_attempts
        )
        return CleanupReport._from(raw)


    def control_loop(
        self,
        *,
        provider: LocalProvider | FlyProvider | None = None,
        scaling: ScalingPolicy | Mapping[str, Any] | None = None,
        workspace_id: str = "default",
        holder: str | None = None,
        lease_ttl_ms: int = 30_000,
        idle_check_interval_ms: int = 60_000,
        sweep_interval_ms: int = 60_000,
    ) -> AsyncControlLoop:
        """A new control loop with its own lease holder id (``holder``, default
        ``hostname:pid:random``). Nothing is taken until its first ``tick``; use it as
        a context manager so the lease is released on exit. ``lease_ttl_ms`` bounds
        how long a crashed loop blocks a successor; ``idle_check_interval_ms`` and
        ``sweep_interval_ms`` pace idle-shutdown checks and snapshot expiry."""
        native = self._n.pool_control_loop(holder, lease_ttl_ms, workspace_id, idle_check_interval_ms, sweep_interval_ms)
        return AsyncControlLoop(native, _provider_arg(provider), _scaling_arg(scaling))

    async def tick(
        self,
        *,
        provider: LocalProvider | FlyProvider | None = None,
        scaling: ScalingPolicy | Mapping[str, Any] | None = None,
        workspace_id: str = "default",
        now_ms: int | None = None,
    ) -> TickReport:
        """One tick of this handle's own control loop (kept between calls; its lease is
        released by :meth:`release_control`).

        Takes or renews the ``pool.control`` lease — a standby tick (another loop
        holds it) does nothing — then runs lease recovery, a reconcile when one is
        due (first tick, ``scaling.reconcile_interval_ms`` passed, or demand: more
        active conversations than at the previous tick, or fewer live workers than
        they need), otherwise an idle-shutdown cycle when a worker falls due, and the
        snapshot expiry sweep every minute. Provider errors go into
        ``TickReport.errors`` and the failed step is retried later."""
        if self._control is None:
            self._control = self._n.pool_control_loop(None, 30_000, workspace_id)
        raw = await self._control.tick(_IS_ASYNC, _provider_arg(provider), _scaling_arg(scaling), workspace_id, now_ms)
        return TickReport._from(raw)

    async def release_control(self) -> bool:
        """Release the lease held by :meth:`tick`'s loop, so another loop can act at
        once; ``False`` when it held none."""
        if self._control is None:
            return False
        return bool(await self._control.stop(_IS_ASYNC))

    async def run(
        self,
        *,
        provider: LocalProvider | FlyProvider | None = None,
        scaling: ScalingPolicy | Mapping[str, Any] | None = None,
        workspace_id: str = "default",
        tick_ms: int = 500,
        stop: Any = None,
        max_ticks: int | None = None,
        on_tick: Any = None,
        holder: str | None = None,
        lease_ttl_ms: int = 30_000,
    ) -> ControlRun:
        """Run a control loop until ``stop`` is set, ``max_ticks`` ticks ran, or the
        caller interrupts it (Ctrl-C, task cancellation); the lease is released on
        every way out.

        Ticks every ``tick_ms`` (sooner when something falls due), so an enqueue is
        acted on within about ``tick_ms``. ``stop`` is a ``threading.Event`` (or, for
        the asyncio API, an ``asyncio.Event``); ``on_tick(report)`` is called with
        every :class:`TickReport` (the asyncio API awaits it when it returns an
        awaitable). Two loops on one database — threads or processes — never act at
        once: the standby one takes over when the holder stops (at once) or dies
        (after ``lease_ttl_ms``)."""
        check_run_args(tick_ms, max_ticks, on_tick)
        loop = self.control_loop(
            provider=provider, scaling=scaling, workspace_id=workspace_id, holder=holder, lease_ttl_ms=lease_ttl_ms
        )
        async with loop:
            return await loop.run(tick_ms=tick_ms, stop=stop, max_ticks=max_ticks, on_tick=on_tick)


class AsyncControlLoop:
    """A pool control loop: ``factory.pool.control_loop(...)``.

    Each loop has its own lease holder id; only the holder of the database lease
    ``pool.control`` acts. Use it as a context manager, or call :meth:`stop`, to
    release the lease.
    """

    __slots__ = ("_loop", "_provider", "_scaling")

    #: Shortest pause between ticks, so a step that is due at once cannot spin.
    MIN_PAUSE_MS = 50

    def __init__(self, native: Any, provider: dict[str, Any], scaling: Any) -> None:
        self._loop = native
        self._provider = provider
        self._scaling = scaling

    @property
    def holder(self) -> str:
        """The lease holder id of this loop (sent as ``User-Agent`` to Fly)."""
        return self._loop.holder  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(holder={self.holder!r})"

    async def tick(self, *, now_ms: int | None = None) -> TickReport:
        """One tick (see :meth:`AsyncPoolApi.tick`)."""
        return TickReport._from(await self._loop.tick(_IS_ASYNC, self._provider, self._scaling, None, now_ms))

    async def stop(self) -> bool:
        """Release the lease (if held), so another loop can take over at once."""
        return bool(await self._loop.stop(_IS_ASYNC))

    async def run(self, *, tick_ms: int = 500, stop: Any = None, max_ticks: int | None = None, on_tick: Any = None) -> ControlRun:
        """Tick until ``stop`` is set or ``max_ticks`` ran (see :meth:`AsyncPoolApi.run`);
        the lease is released on the way out, whatever ends the run."""
        check_run_args(tick_ms, max_ticks, on_tick)
        pacer = AsyncPacer(stop)
        ticks = acting = 0
        reason = "stop"
        try:
            while not pacer.stop_requested():
                if max_ticks is not None and ticks >= max_ticks:
                    reason = "max_ticks"
                    break
                report = await pacer.step(self.tick())
                ticks += 1
                acting += int(report.acting)
                if on_tick is not None:
                    await pacer.call(on_tick, report)
                if max_ticks is not None and ticks >= max_ticks:
                    reason = "max_ticks"
                    break
                pause_ms = min(tick_ms, max(self.MIN_PAUSE_MS, report.next_tick_at - report.at))
                if await pacer.wait(pause_ms / 1000):
                    break
        finally:
            await pacer.settle()
            await self.stop()
        return ControlRun(holder=self.holder, ticks=ticks, acting_ticks=acting, reason=reason)

    async def __aenter__(self) -> AsyncControlLoop:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class AsyncWorkerHandle:
    """A worker's view of the queue, with its id bound once: ``factory.worker("w-1")``."""

    __slots__ = ("_n", "worker_id", "mode")

    def __init__(self, native: Any, worker_id: str, mode: Literal["sticky", "pooled"]) -> None:
        if mode not in ("sticky", "pooled"):
            raise ValidationError(f"mode must be 'sticky' or 'pooled', got {mode!r}")
        self._n = native
        self.worker_id = worker_id
        self.mode = mode

    def __repr__(self) -> str:
        return f"WorkerHandle(worker_id={self.worker_id!r}, mode={self.mode!r})"

    def _own(self, claim: Claim) -> Claim:
        if not isinstance(claim, Claim):
            raise ValidationError(f"expected a Claim, got {type(claim).__name__}")
        if claim.worker_id != self.worker_id:
            raise ValidationError(
                f"claim of message {claim.message_id} belongs to worker {claim.worker_id!r}, not {self.worker_id!r}"
            )
        return claim

    async def claim(self, *, conversation_id: str | None = None, now_ms: int | None = None) -> Claim | None:
        """Lease the next message this worker may take, or ``None``. An empty claim also
        counts as an idle heartbeat."""
        return Claim._maybe(await self._n.claim(_IS_ASYNC, self.worker_id, conversation_id, self.mode, now_ms))

    async def heartbeat(self, claim: Claim, *, now_ms: int | None = None) -> bool:
        """Extend the claim's lease; ``False`` if it was lost or expired."""
        c = self._own(claim)
        return await self._n.heartbeat(_IS_ASYNC, self.worker_id, c.message_id, c.lease_id, now_ms)  # type: ignore[no-any-return]

    async def hydrate(self, claim: Claim, *, workspace_id: str = "default", now_ms: int | None = None) -> HydrationBundle:
        """The hydration bundle for a live claim (``ConflictError`` once the lease is gone)."""
        c = self._own(claim)
        raw = await self._n.hydrate(_IS_ASYNC, self.worker_id, c.message_id, c.lease_id, workspace_id, now_ms)
        return HydrationBundle._from(raw)

    @overload
    async def complete(self, claim: Claim, *, claim_next: Literal[False] = False, now_ms: int | None = None) -> bool: ...

    @overload
    async def complete(self, claim: Claim, *, claim_next: Literal[True], now_ms: int | None = None) -> Claim | None: ...

    async def complete(self, claim: Claim, *, claim_next: bool = False, now_ms: int | None = None) -> bool | Claim | None:
        """Mark the claim done. Returns ``False`` if the lease was lost. With
        ``claim_next=True`` the next message is claimed in the same transaction and
        returned (``None`` if nothing is claimable); a lost lease then raises ``ConflictError``."""
        c = self._own(claim)
        if not claim_next:
            return await self._n.complete(_IS_ASYNC, self.worker_id, c.message_id, c.lease_id, now_ms)  # type: ignore[no-any-return]
        raw = await self._n.complete_and_claim(_IS_ASYNC, self.worker_id, c.message_id, c.lease_id, None, self.mode, now_ms)
        return Claim._maybe(raw)

    async def fail(self, claim: Claim, error: str | BaseException, *, now_ms: int | None = None) -> FailOutcome:
        """Record a failure (retry with backoff, or dead letter at max attempts)."""
        c = self._own(claim)
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}"
        elif isinstance(error, str):
            text = error
        else:
            raise TypeError(f"error must be a string or an exception, got {type(error).__name__}")
        return FailOutcome._from(await self._n.fail(_IS_ASYNC, self.worker_id, c.message_id, c.lease_id, text, now_ms))

    def start_heartbeats(self, claim: Claim, *, interval_ms: int | None = None) -> Heartbeats:
        """Heartbeat the claim's lease every ``interval_ms`` on a Rust thread until
        ``stop()`` (or the end of a ``with`` block). The thread never needs the GIL, so
        code that holds the GIL or blocks the event loop keeps its lease. The default
        interval is ``Config.lease.heartbeat_interval_ms`` capped at a third of the lease."""
        c = self._own(claim)
        if interval_ms is None:
            lease = self._n.get_config()["lease"]
            interval_ms = max(1, min(lease["heartbeat_interval_ms"], lease["lease_ms"] // 3))
        return Heartbeats(self._n.start_heartbeats(self.worker_id, c.message_id, c.lease_id, interval_ms), c)

    async def control_state(self, *, now_ms: int | None = None) -> ControlState:
        """Whether this worker should stop; asking also refreshes its heartbeat when it may go on."""
        return ControlState._from(await self._n.control_state(_IS_ASYNC, self.worker_id, True, now_ms))

    async def touch(self, *, now_ms: int | None = None) -> bool:
        """Idle heartbeat."""
        return await self._n.touch_worker(_IS_ASYNC, self.worker_id, now_ms)  # type: ignore[no-any-return]

    async def append_conversation_messages(
        self, claim: Claim, messages: Sequence[Mapping[str, Any]], *, workspace_id: str = "default", now_ms: int | None = None
    ) -> AppendResult:
        """Append turns to the claimed message's conversation history."""
        c = self._own(claim)
        raw = await self._n.append_conversation_messages(
                        _IS_ASYNC, c.conversation_id, _dict_list(messages, "messages"), workspace_id, now_ms
        )
        return AppendResult(updated=raw[0], message_count=raw[1])

    async def state(self) -> Worker | None:
        """This worker's registry row."""
        return Worker._maybe(await self._n.get_worker(_IS_ASYNC, self.worker_id))


class AsyncFactory:
    """An agent-factory database, opened from a path or ``":memory:"``.

    Areas: ``agents``, ``queue``, ``workers``, ``pool``, ``snapshots``, ``secrets``, ``config``, ``blobs``,
    ``identity``, ``templates``, ``push``, ``telegram``;
    ``worker(id)`` gives a worker handle. Handles on the same file in one process
    share one writer connection; several processes may share the file.

    ``durable=True`` fsyncs every commit (survives power loss); the default
    survives any process crash. ``clock`` takes a :class:`ManualClock` for tests.
    """

    __slots__ = (
        "_n", "agents", "queue", "workers", "pool", "snapshots", "secrets", "config", "blobs",
        "identity", "templates", "push", "telegram",
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        durable: bool = False,
        journal_mode: Literal["auto", "wal", "delete"] = "auto",
        config: Config | None = None,
        clock: _native.ManualClock | None = None,
    ) -> None:
        native = _guard.construct(
            _native.NativeFactory, os.fspath(path), durable, journal_mode, _as_dict(config, "config"), clock
        )
        self._n = native
        self.agents = AsyncAgentsApi(native)
        self.queue = AsyncQueueApi(native)
        self.workers = AsyncWorkersApi(native)
        self.pool = AsyncPoolApi(native)
        self.snapshots = AsyncSnapshotsApi(native)
        self.secrets = AsyncSecretsApi(native)
        self.config = AsyncSettingsApi(native)
        self.blobs = AsyncBlobsApi(native)
        self.identity = AsyncIdentityApi(native)
        self.templates = AsyncTemplatesApi(native)
        self.push = AsyncPushApi(native)
        self.telegram = AsyncTelegramApi(native)

    def worker(self, worker_id: str, *, mode: Literal["sticky", "pooled"] = "sticky") -> AsyncWorkerHandle:
        """A handle for one worker. ``sticky`` workers keep the conversation they first
        serve; ``pooled`` workers serve any conversation (still one message in flight per
        conversation, FIFO)."""
        return AsyncWorkerHandle(self._n, worker_id, mode)

    def info(self) -> dict[str, Any]:
        """Path, journal mode, durability, blob root, master-key fingerprint, schema version."""
        return self._n.info()  # type: ignore[no-any-return]

    def now_ms(self) -> int:
        """The factory clock's time."""
        return int(self._n.now_ms())

    async def metrics(self, *, now_ms: int | None = None) -> Metrics:
        """Gauges of this database at ``now_ms`` (queue depth, waiting, in flight, dead
        letters, oldest ready age, workers by status and per running worker) and the
        process-wide counters; ``.to_prometheus()`` renders the Prometheus text format."""
        return Metrics._from(await self._n.metrics(_IS_ASYNC, now_ms))

    def __repr__(self) -> str:
        i = self.info()
        path = i["path"] or ":memory:"
        return f"{type(self).__name__}(path={path!r}, journal_mode={i['journal_mode']!r}, durable={i['durable']})"

    async def __aenter__(self) -> AsyncFactory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
