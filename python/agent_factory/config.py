"""Tunables of a factory, with the core's built-in defaults.

The defaults are read from the Rust core at import, so there is one source of
truth. Build a custom config with keyword overrides::

    Config(lease=LeaseConfig(lease_ms=60_000), retry=RetryPolicy(max_attempts=3))
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _native

_D: dict[str, Any] = _native.default_config()

__all__ = [
    "QueueConfig",
    "RetryPolicy",
    "LeaseConfig",
    "ScalingPolicy",
    "SnapshotConfig",
    "Config",
    "LocalProvider",
    "FlyProvider",
    "default_worker_command",
]


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
    #: How long a draining worker may stay silent without a final snapshot before
    #: it is torn down anyway (stop reason ``drain_timeout``).
    drain_timeout_ms: int = _D["scaling"]["drain_timeout_ms"]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return dataclasses.asdict(self)


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


def default_worker_command() -> list[str]:
    """The local worker command: this interpreter running ``python -m agent_factory worker``."""
    return [sys.executable, "-m", "agent_factory", "worker"]


def _str_map(value: Mapping[str, str] | None, field_name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{field_name} must be a dict of strings, got {type(value).__name__}")
    out = dict(value)
    for k, v in out.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{field_name} must map strings to strings, got {k!r}: {type(v).__name__}")
    return out


@dataclass(frozen=True, slots=True)
class LocalProvider:
    """Run pool workers as local subprocesses (the embedded default: no account needed).

    A machine is a worker process started with ``command`` (default
    :func:`default_worker_command`) and the worker environment (``AGENT_FACTORY_DB``,
    ``AGENT_FACTORY_WORKER_ID``/``WORKER_ID``, ``AGENT_FACTORY_DATA_DIR``,
    ``OPENCLAW_AGENT_KEY``/``OPENCLAW_CONVERSATION_ID``, …); a volume is a data
    directory under ``data_root`` (default ``<db>.workers/``), where the worker
    records and logs live too. ``handler`` (``module:function``) is passed as
    ``AGENT_FACTORY_HANDLER``; ``env`` is added to every worker's environment;
    ``stop_grace_ms`` separates SIGTERM from SIGKILL when a worker is stopped.
    """

    command: Sequence[str] | None = None
    data_root: str | None = None
    handler: str | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    stop_grace_ms: int = 10_000
    volume_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (``command`` filled in with the default)."""
        if self.command is not None and (isinstance(self.command, (str, bytes)) or not isinstance(self.command, Sequence)):
            raise TypeError(f"command must be a list of strings, got {type(self.command).__name__}")
        command = list(self.command) if self.command is not None else default_worker_command()
        if any(not isinstance(c, str) for c in command):
            raise TypeError("command must be a list of strings")
        return {
            "command": command,
            "data_root": None if self.data_root is None else str(self.data_root),
            "handler": self.handler,
            "env": _str_map(self.env, "env"),
            "cwd": None if self.cwd is None else str(self.cwd),
            "stop_grace_ms": self.stop_grace_ms,
            "volume_name": self.volume_name,
        }


@dataclass(frozen=True, slots=True)
class FlyProvider:
    """Run pool workers as Fly Machines.

    Every field left ``None`` comes from the stored provider config
    (``factory.config.set_provider_config``), so ``FlyProvider()`` uses it as is and
    ``FlyProvider(base_url=fake.base_url)`` points it at a fake. ``api_token``
    defaults to the active ``fly.apiToken`` secret. ``timeout_ms`` bounds each
    request; ``max_retries`` / ``backoff_ms`` / ``max_backoff_ms`` shape the retries
    of 429/5xx/timeouts. ``env`` is added to every machine's environment.
    ``user_agent`` is the ``User-Agent`` of the API calls (default
    ``agent-factory/<version>``; a control loop sends
    ``agent-factory/<version> (<holder id>)`` unless one is set here).
    """

    app_name: str | None = None
    image: str | None = None
    region: str | None = None
    volume_name: str | None = None
    volume_path: str | None = None
    volume_size_gb: int | None = None
    organization_slug: str | None = None
    api_token: str | None = field(default=None, repr=False)
    base_url: str | None = None
    timeout_ms: int | None = None
    max_retries: int | None = None
    backoff_ms: int | None = None
    max_backoff_ms: int | None = None
    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    env: Mapping[str, str] | None = None
    user_agent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (``None`` means "from the stored config")."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("cpu_kind", "cpus", "memory_mb", "env")
        }
        sizes = (("cpu_kind", self.cpu_kind), ("cpus", self.cpus), ("memory_mb", self.memory_mb))
        guest = {k: v for k, v in sizes if v is not None}
        out["guest"] = guest or None
        out["env"] = _str_map(self.env, "env")
        return out
