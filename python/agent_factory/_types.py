"""Immutable result types returned by the Factory APIs.

Each type is a frozen dataclass with attribute access, a readable ``repr``,
``to_dict()`` and an HTML table for notebooks. JSON-shaped fields (``payload``,
``metadata``) are plain dicts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from . import _html, _views
from ._record_list import RecordList, plain

_R = TypeVar("_R", bound="_Record")

__all__ = [
    "Claim",
    "Job",
    "QueueStats",
    "ConversationCounts",
    "HistoryEntry",
    "ConversationView",
    "FailOutcome",
    "ReleaseOutcome",
    "Assignment",
    "Worker",
    "ControlState",
    "WorkerStats",
    "BridgeConfig",
    "AgentProfile",
    "ImportedSecret",
    "SecretStatus",
    "BridgeRuntimeConfig",
    "HydrationBundle",
    "MessageConfig",
    "ProviderConfig",
    "Machine",
    "Volume",
    "ProviderOutcome",
    "CleanupReport",
    "AppendResult",
    "SnapshotUpload",
    "Snapshot",
    "SnapshotExpiry",
    "ArchiveStats",
    "DirectorySnapshot",
    "RestoredSnapshot",
    "HeartbeatStatus",
    "Heartbeats",
    "PoolReport",
    "PoolStatus",
]


class _Record:
    """Shared behaviour: construction from native dicts, ``to_dict`` and HTML."""

    _nested: ClassVar[Mapping[str, type]] = {}
    _nested_lists: ClassVar[Mapping[str, type]] = {}
    #: Columns (dotted attribute paths) of the type's rows in a ``RecordList`` table; empty: every field.
    _html_columns: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _from(cls: type[_R], data: Mapping[str, Any]) -> _R:
        if not cls._nested and not cls._nested_lists:
            return cls(**data)  # native dicts carry exactly the fields
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            v = data.get(f.name)
            if v is not None and f.name in cls._nested:
                v = cls._nested[f.name]._from(v)  # type: ignore[attr-defined]
            elif v is not None and f.name in cls._nested_lists:
                kind = cls._nested_lists[f.name]
                v = RecordList([kind._from(x) for x in v], kind)  # type: ignore[attr-defined]
            values[f.name] = v
        return cls(**values)

    @classmethod
    def _maybe(cls: type[_R], data: Mapping[str, Any] | None) -> _R | None:
        return None if data is None else cls._from(data)

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` (nested records become dicts, record lists plain lists)."""
        return plain(self)  # type: ignore[no-any-return]

    def _repr_html_(self) -> str:
        """The record as an HTML table of its fields (times in UTC, statuses as badges)."""
        return _html.record_html(self)


@dataclass(frozen=True, slots=True)
class Claim(_Record):
    """A leased message. Pass it back to ``heartbeat``/``complete``/``fail``."""

    message_id: str
    conversation_id: str
    agent_key: str
    worker_id: str
    lease_id: str
    lease_expires_at: int
    attempt: int
    priority: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Job(_Record):
    """A message as listed by the queue."""

    _html_columns: ClassVar[tuple[str, ...]] = (
        "message_id", "status", "conversation_id", "agent_key", "priority", "attempts", "max_attempts",
        "created_at", "scheduled_for", "claimed_by", "last_error",
    )

    message_id: str
    conversation_id: str
    agent_key: str
    status: str
    priority: int
    scheduled_for: int
    next_retry_at: int | None
    attempts: int
    max_attempts: int
    last_error: str | None
    claimed_by: str | None
    lease_expires_at: int | None
    created_at: int
    finished_at: int | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueueStats(_Record):
    """Queue counters at one instant."""

    queued_ready: int
    queued_delayed: int
    processing: int
    dead_letter: int
    oldest_ready_at: int | None

    def _repr_html_(self) -> str:
        """Counts by status with bars, and since when the oldest ready message waits."""
        return _views.queue_stats_html(self)


@dataclass(frozen=True, slots=True)
class ConversationCounts(_Record):
    """Scheduler counts: claimable conversations, and those plus in-flight ones."""

    ready: int
    active: int


@dataclass(frozen=True, slots=True)
class HistoryEntry(_Record):
    """One turn of a conversation's history."""

    role: str
    content: str
    at: int


@dataclass(frozen=True, slots=True)
class ConversationView(_Record):
    """A conversation with its bounded history and recent messages (newest first)."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"context_history": HistoryEntry, "queue_items": Job}

    conversation_id: str
    agent_key: str
    state: str
    context_history: list[HistoryEntry]
    queue_items: list[Job]
    has_queued_jobs: bool
    locked_by: str | None
    last_user_message_at: int | None
    last_assistant_message_at: int | None


@dataclass(frozen=True, slots=True)
class FailOutcome(_Record):
    """What ``fail`` did: retried later, dead-lettered, or nothing (lease lost)."""

    requeued: bool
    dead_lettered: bool
    next_scheduled_for: int | None


@dataclass(frozen=True, slots=True)
class ReleaseOutcome(_Record):
    """Counts of one lease-recovery pass."""

    requeued: int
    dead_lettered: int
    unlocked: int


@dataclass(frozen=True, slots=True)
class Assignment(_Record):
    """The conversation a sticky (or pre-assigned) worker owns."""

    conversation_id: str
    agent_key: str
    lease_id: str
    assigned_at: int


@dataclass(frozen=True, slots=True)
class Worker(_Record):
    """A worker row."""

    _nested: ClassVar[Mapping[str, type]] = {"assignment": Assignment}
    _html_columns: ClassVar[tuple[str, ...]] = (
        "worker_id", "status", "provider", "mode", "load", "assignment.conversation_id", "heartbeat_at",
        "last_claim_at", "created_at", "stop_reason",
    )

    worker_id: str
    provider: str
    mode: str
    status: str
    load: int
    heartbeat_at: int
    last_claim_at: int | None
    scheduled_shutdown_at: int | None
    stopped_at: int | None
    stop_reason: str | None
    last_snapshot_id: str | None
    machine_id: str | None
    app_name: str | None
    region: str | None
    volume_id: str | None
    assignment: Assignment | None
    created_at: int


@dataclass(frozen=True, slots=True)
class ControlState(_Record):
    """Whether a worker should stop, and why (``unknown``, ``draining``, ``stopping``,
    ``stopped``, ``overdue_shutdown``, ``stale_heartbeat``)."""

    should_stop: bool
    reason: str | None
    reasons: list[str]
    status: str | None


@dataclass(frozen=True, slots=True)
class WorkerStats(_Record):
    """Counts over workers."""

    active_count: int
    idle_count: int
    by_status: dict[str, int]

    @classmethod
    def _from(cls, data: Mapping[str, Any]) -> WorkerStats:
        return cls(data["active_count"], data["idle_count"], {k: v for k, v in data["by_status"]})


@dataclass(frozen=True, slots=True)
class BridgeConfig(_Record):
    """Agent-bridge settings of an agent profile."""

    enabled: bool = False
    base_url: str | None = None
    service_id: str | None = None
    app_key: str | None = None
    service_key_secret_ref: str | None = None
    app_base_url_map_json_secret_ref: str | None = None


@dataclass(frozen=True, slots=True)
class AgentProfile(_Record):
    """An agent profile."""

    _nested: ClassVar[Mapping[str, type]] = {"bridge_config": BridgeConfig}
    _html_columns: ClassVar[tuple[str, ...]] = (
        "agent_key", "enabled", "version", "bot_identity", "secrets_ref", "updated_at",
    )

    agent_key: str
    version: str
    secrets_ref: list[str]
    bot_identity: str | None
    bridge_config: BridgeConfig | None
    enabled: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ImportedSecret(_Record):
    """Result of importing a secret version."""

    secret_id: int
    secret_ref: str
    version: int


@dataclass(frozen=True, slots=True)
class SecretStatus(_Record):
    """Whether a secret reference has an active version (never its value)."""

    secret_ref: str
    has_active: bool
    version: int | None
    updated_at: int | None


@dataclass(frozen=True, slots=True)
class BridgeRuntimeConfig(_Record):
    """Resolved agent-bridge settings handed to a worker."""

    base_url: str | None
    app_base_url_map_json: str | None
    service_id: str | None
    app_key: str | None
    service_key: str | None
    service_key_secret_ref: str | None
    bot_identity: str | None


@dataclass(frozen=True, slots=True)
class HydrationBundle(_Record):
    """Everything a worker needs to process one claimed message (contains secrets)."""

    _nested: ClassVar[Mapping[str, type]] = {"bridge_runtime_config": BridgeRuntimeConfig}
    _nested_lists: ClassVar[Mapping[str, type]] = {"context_history": HistoryEntry}

    message_id: str
    conversation_id: str
    agent_key: str
    payload: dict[str, Any]
    context_history: list[HistoryEntry]
    telegram_bot_token: str | None
    bridge_runtime_config: BridgeRuntimeConfig | None
    lease_expires_at: int | None

    def __repr__(self) -> str:  # never print secrets by accident
        token = "<set>" if self.telegram_bot_token else None
        return (
            f"HydrationBundle(message_id={self.message_id!r}, conversation_id={self.conversation_id!r}, "
            f"agent_key={self.agent_key!r}, history={len(self.context_history)} entries, telegram_bot_token={token!r}, "
            f"bridge={'<set>' if self.bridge_runtime_config else None})"
        )


@dataclass(frozen=True, slots=True)
class MessageConfig(_Record):
    """Message settings: the global system prompt and attachment retention."""

    system_prompt: str | None = None
    telegram_attachment_retention_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig(_Record):
    """Where workers run: ``local`` processes or ``fly`` machines."""

    kind: str = "local"
    app_name: str = ""
    organization_slug: str = ""
    image: str = ""
    region: str = ""
    volume_name: str = ""
    volume_path: str = "/data"
    volume_size_gb: int = 10


@dataclass(frozen=True, slots=True)
class AppendResult(_Record):
    """Result of appending conversation history."""

    updated: bool
    message_count: int


@dataclass(frozen=True, slots=True)
class SnapshotUpload(_Record):
    """A prepared snapshot upload: store the archive, then finalize (or fail) it by id."""

    snapshot_id: str
    status: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Snapshot(_Record):
    """A workspace snapshot. ``status`` is ``uploading``, ``ready``, ``failed`` or
    ``expired``; ``path`` (the archive in the blob store) is set only while the
    snapshot is ready and unexpired, so a worker can restore from it."""

    _html_columns: ClassVar[tuple[str, ...]] = (
        "snapshot_id", "conversation_id", "worker_id", "size_bytes", "created_at", "status", "reason",
    )

    snapshot_id: str
    workspace_id: str
    agent_key: str
    conversation_id: str
    worker_id: str
    reason: str
    status: str
    format_version: int
    sha256: str | None
    size_bytes: int | None
    error: str | None
    created_at: int
    completed_at: int | None
    expires_at: int
    path: str | None


@dataclass(frozen=True, slots=True)
class SnapshotExpiry(_Record):
    """Counts of one expiry sweep: ready snapshots expired, abandoned uploads failed,
    blob files deleted, and blobs kept because a live snapshot or attachment shares them."""

    expired: int
    failed: int
    blobs_deleted: int
    blobs_kept: int


@dataclass(frozen=True, slots=True)
class ArchiveStats(_Record):
    """What a directory archive holds: counts of files, directories and symlinks, the
    bytes of file contents, and the entries a snapshot left out (``"path: reason"``,
    at most 100 listed: sockets, FIFOs, device files, symlinks a restore would reject)."""

    files: int
    directories: int
    symlinks: int
    bytes: int
    skipped: list[str]


@dataclass(frozen=True, slots=True)
class DirectorySnapshot(_Record):
    """A ready snapshot taken of a directory, with what went into its archive."""

    _nested: ClassVar[Mapping[str, type]] = {"snapshot": Snapshot, "archive": ArchiveStats}

    snapshot: Snapshot
    archive: ArchiveStats


@dataclass(frozen=True, slots=True)
class RestoredSnapshot(_Record):
    """A snapshot restored into a directory, with what was extracted."""

    _nested: ClassVar[Mapping[str, type]] = {"snapshot": Snapshot, "archive": ArchiveStats}

    snapshot: Snapshot
    archive: ArchiveStats


@dataclass(frozen=True, slots=True)
class HeartbeatStatus(_Record):
    """What a heartbeat thread did: successful ``beats``, ``failures`` (errors other
    than a lost lease, retried), whether the lease was ``lost``, whether the thread is
    still ``running``, and the ``last_error``."""

    beats: int
    failures: int
    lost: bool
    running: bool
    last_error: str | None


class Heartbeats:
    """Heartbeats of one claim on a Rust thread: the lease stays alive while the
    holder works, even when it holds the GIL or blocks its event loop.

    Returned by ``WorkerHandle.start_heartbeats(claim)``; use it as a context manager
    or call :meth:`stop`. The thread stops by itself once the lease is lost
    (``lost`` becomes true): a lost lease never comes back, so the work's result
    must be discarded.
    """

    __slots__ = ("_native", "claim")

    def __init__(self, native: Any, claim: Claim) -> None:
        self._native = native
        self.claim = claim

    @property
    def lost(self) -> bool:
        """Whether the lease was lost."""
        return bool(self._native.lost)

    @property
    def beats(self) -> int:
        """Successful beats so far."""
        return int(self._native.beats)

    def status(self) -> HeartbeatStatus:
        """The status so far."""
        return HeartbeatStatus._from(self._native.status_dict())

    def stop(self) -> HeartbeatStatus:
        """Stop beating (at once; a beat in flight finishes) and return the final status. Idempotent."""
        return HeartbeatStatus._from(self._native.stop())

    def __enter__(self) -> Heartbeats:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        s = self.status()
        return f"Heartbeats(message_id={self.claim.message_id!r}, beats={s.beats}, lost={s.lost}, running={s.running})"


@dataclass(frozen=True, slots=True)
class Machine(_Record):
    """A provider machine. ``state`` is the raw provider state (``started``,
    ``stopping``, …); ``status`` is ``active`` for live states and ``stopped`` for
    everything else, unknown states included."""

    id: str
    name: str
    region: str
    state: str
    status: str
    image: str
    volume_ids: list[str]


@dataclass(frozen=True, slots=True)
class Volume(_Record):
    """A provider volume and the machine it is attached to, if any."""

    id: str
    name: str
    region: str
    size_gb: int
    state: str
    attached_machine_id: str | None


@dataclass(frozen=True, slots=True)
class ProviderOutcome(_Record):
    """Result of a teardown call: ``done``, ``already_gone`` (the machine or volume
    does not exist) or ``deferred`` (a precondition failed; ``message`` says which —
    try again later). Errors such as a 5xx raise ``ProviderError`` instead."""

    outcome: str
    message: str | None

    @property
    def done(self) -> bool:
        """The provider accepted the call."""
        return self.outcome == "done"

    @property
    def already_gone(self) -> bool:
        """The machine or volume does not exist (any more)."""
        return self.outcome == "already_gone"

    @property
    def deferred(self) -> bool:
        """A precondition failed; the same call may work later."""
        return self.outcome == "deferred"


@dataclass(frozen=True, slots=True)
class CleanupReport(_Record):
    """What a provider cleanup did: machines and volumes found, deleted (and gone at
    verification) and remaining, with their ids, warnings and errors."""

    app_name: str
    machines_found: int
    machines_deleted: int
    machines_remaining: int
    machine_ids_deleted: list[str]
    machine_ids_remaining: list[str]
    volumes_found: int
    volumes_deleted: int
    volumes_remaining: int
    volume_ids_deleted: list[str]
    volume_ids_remaining: list[str]
    warnings: list[str]
    errors: list[str]


@dataclass(frozen=True, slots=True)
class PoolReport(_Record):
    """What one pool cycle (``reconcile`` or ``check_idle_shutdowns``) did.

    ``terminated`` counts workers moved out of ``active`` (idle, stale heartbeat,
    machine gone, capacity reclaim) — the seed's reconcile ``terminated`` and
    idle-check ``stopped`` (also available as :attr:`stopped`); ``torn_down`` counts
    workers whose machine and volumes were removed and that are now ``stopped``.
    ``pending`` workers wait for a final snapshot or on the provider;
    ``next_due_at`` is when the next idle shutdown or drain timeout falls due.
    ``errors`` are failed provider calls, retried by the next cycle.
    """

    _nested: ClassVar[Mapping[str, type]] = {"released": ReleaseOutcome}

    active_workers: int
    desired_workers: int
    spawned: int
    spawned_worker_ids: list[str]
    terminated: int
    drained_worker_ids: list[str]
    torn_down: int
    torn_down_worker_ids: list[str]
    checked: int
    pending: int
    released: ReleaseOutcome | None
    next_due_at: int | None
    untracked_machines: list[str]
    warnings: list[str]
    errors: list[str]

    @property
    def stopped(self) -> int:
        """Workers moved to draining (the seed's ``checkIdleShutdowns().stopped``)."""
        return self.terminated

    @property
    def next_check_scheduled(self) -> bool:
        """Whether something is still pending (the seed's ``nextCheckScheduled``)."""
        return self.pending > 0


@dataclass(frozen=True, slots=True)
class PoolStatus(_Record):
    """The pool as the database and the provider see it: running worker rows in
    the provider's scope, the machines and volumes it lists, and listed machines
    no running worker knows (``untracked_machines``)."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"workers": Worker, "machines": Machine, "volumes": Volume}

    app_name: str
    provider_kind: str
    workers: list[Worker]
    machines: list[Machine]
    volumes: list[Volume]
    untracked_machines: list[str]
