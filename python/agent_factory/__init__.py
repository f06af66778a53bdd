"""agent-factory: the control plane for fleets of chat agents.

A durable per-conversation queue (leases, heartbeats, fencing, retries, dead
letter, sticky or pooled workers), a worker registry, encrypted secrets and
hydration bundles over SQLite, with a Rust core. ``Factory`` is the blocking
API, ``AsyncFactory`` the asyncio one; both return the same types.
"""

from __future__ import annotations

from ._async_api import (
    AsyncAgentsApi,
    AsyncBlobsApi,
    AsyncFactory,
    AsyncQueueApi,
    AsyncSecretsApi,
    AsyncSettingsApi,
    AsyncWorkerHandle,
    AsyncWorkersApi,
)
from ._native import ManualClock, can_transition, retry_delay_ms
from ._native import __version__ as __version__
from ._sync_api import AgentsApi, BlobsApi, Factory, QueueApi, SecretsApi, SettingsApi, WorkerHandle, WorkersApi
from ._types import (
    AgentProfile,
    AppendResult,
    Assignment,
    BridgeConfig,
    BridgeRuntimeConfig,
    Claim,
    ControlState,
    ConversationCounts,
    ConversationView,
    FailOutcome,
    HistoryEntry,
    HydrationBundle,
    ImportedSecret,
    Job,
    MessageConfig,
    ProviderConfig,
    QueueStats,
    ReleaseOutcome,
    SecretStatus,
    Worker,
    WorkerStats,
)
from .config import Config, LeaseConfig, QueueConfig, RetryPolicy, ScalingPolicy
from .errors import (
    AgentFactoryError,
    ConflictError,
    InvalidStateError,
    NotFoundError,
    ProviderError,
    StorageError,
    ValidationError,
)

__all__ = [
    "Factory",
    "AsyncFactory",
    "WorkerHandle",
    "AsyncWorkerHandle",
    "AgentsApi",
    "AsyncAgentsApi",
    "QueueApi",
    "AsyncQueueApi",
    "WorkersApi",
    "AsyncWorkersApi",
    "SecretsApi",
    "AsyncSecretsApi",
    "SettingsApi",
    "AsyncSettingsApi",
    "BlobsApi",
    "AsyncBlobsApi",
    "ManualClock",
    "can_transition",
    "retry_delay_ms",
    "Config",
    "QueueConfig",
    "RetryPolicy",
    "LeaseConfig",
    "ScalingPolicy",
    "AgentProfile",
    "AppendResult",
    "Assignment",
    "BridgeConfig",
    "BridgeRuntimeConfig",
    "Claim",
    "ControlState",
    "ConversationCounts",
    "ConversationView",
    "FailOutcome",
    "HistoryEntry",
    "HydrationBundle",
    "ImportedSecret",
    "Job",
    "MessageConfig",
    "ProviderConfig",
    "QueueStats",
    "ReleaseOutcome",
    "SecretStatus",
    "Worker",
    "WorkerStats",
    "AgentFactoryError",
    "ValidationError",
    "NotFoundError",
    "ConflictError",
    "InvalidStateError",
    "ProviderError",
    "StorageError",
]
