"""Tunables of a factory, with the core's built-in defaults.

The defaults are read from the Rust core at import, so there is one source of
truth. Build a custom config with keyword overrides::

    Config(lease=LeaseConfig(lease_ms=60_000), retry=RetryPolicy(max_attempts=3))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from . import _native

_D: dict[str, Any] = _native.default_config()

__all__ = ["QueueConfig", "RetryPolicy", "LeaseConfig", "ScalingPolicy", "SnapshotConfig", "Config"]


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Queue behaviour."""

    default_priority: int = _D["queue"]["default_priority"]
    max_priority: int = _D["queue"]["max_priority"]
    history_limit: int = _D["queue"]["history_limit"]
    max_payload_bytes: int = _D["queue"]["max_payload_bytes"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries: ``base * factor**(attempt-1)`` capped at ``max_delay_ms``, plus up to ``jitter_ratio``."""

    max_attempts: int = _D["retry"]["max_attempts"]
    base_delay_ms: int = _D["retry"]["base_delay_ms"]
    max_delay_ms: int = _D["retry"]["max_delay_ms"]
    backoff_factor: float = _D["retry"]["backoff_factor"]
    jitter_ratio: float = _D["retry"]["jitter_ratio"]


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """Leases: how long a claim lasts and when a silent worker counts as stale."""

    lease_ms: int = _D["lease"]["lease_ms"]
    heartbeat_interval_ms: int = _D["lease"]["heartbeat_interval_ms"]
    stale_after_ms: int = _D["lease"]["stale_after_ms"]


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """Worker-pool scaling."""

    max_workers: int = _D["scaling"]["max_workers"]
    queue_per_worker_target: int = _D["scaling"]["queue_per_worker_target"]
    spawn_step: int = _D["scaling"]["spawn_step"]
    idle_timeout_ms: int = _D["scaling"]["idle_timeout_ms"]
    reconcile_interval_ms: int = _D["scaling"]["reconcile_interval_ms"]


@dataclass(frozen=True, slots=True)
class SnapshotConfig:
    """Workspace snapshots: how long one is kept after its upload is prepared (7 days)."""

    retention_ms: int = _D["snapshots"]["retention_ms"]


@dataclass(frozen=True, slots=True)
class Config:
    """All tunables. Every field has the seed's default."""

    queue: QueueConfig = field(default_factory=QueueConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    scaling: ScalingPolicy = field(default_factory=ScalingPolicy)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build from a nested dict (unknown keys are an error)."""
        return cls(
            queue=QueueConfig(**data.get("queue", {})),
            retry=RetryPolicy(**data.get("retry", {})),
            lease=LeaseConfig(**data.get("lease", {})),
            scaling=ScalingPolicy(**data.get("scaling", {})),
            snapshots=SnapshotConfig(**data.get("snapshots", {})),
        )
