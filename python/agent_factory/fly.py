"""Fly Machines: the REST client the worker pool drives, usable on its own.

``FlyMachines`` manages the machines and volumes of one Fly app through the
Machines API (``https://api.machines.dev/v1`` by default). Every call is
blocking, releases the GIL, has a timeout and retries 429/5xx/timeouts with
exponential backoff and jitter (honouring ``Retry-After``). Teardown calls
return a :class:`ProviderOutcome` — ``done``, ``already_gone`` or ``deferred`` —
and raise :class:`~agent_factory.errors.ProviderError` for anything else; a 5xx
is never taken to mean "gone". The error carries ``status`` (HTTP status or
``None``), ``retryable`` and ``kind`` (``http``, ``transport``, ``protocol``).
The token never appears in messages or ``repr``.

Tests point ``base_url`` at :class:`agent_factory.testing.FakeFly`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._native import NativeFlyMachines
from ._types import CleanupReport, Machine, ProviderOutcome, Volume

__all__ = ["FlyMachines", "DEFAULT_BASE_URL"]

#: The public Machines API.
DEFAULT_BASE_URL = "https://api.machines.dev/v1"


class FlyMachines:
    """Machines and volumes of one Fly app.

    ``timeout_ms`` bounds each HTTP request; a call makes at most
    ``1 + max_retries`` attempts, waiting ``backoff_ms`` doubling up to
    ``max_backoff_ms`` (with jitter) or the server's ``Retry-After`` capped at
    ``retry_after_cap_ms``. ``user_agent`` replaces the default ``User-Agent``
    (``agent-factory/<version>``).
    """

    __slots__ = ("_native",)

    def __init__(
        self,
        app_name: str,
        api_token: str,
        *,
        base_url: str | None = None,
        timeout_ms: int = 30_000,
        max_retries: int = 3,
        backoff_ms: int = 250,
        max_backoff_ms: int = 10_000,
        retry_after_cap_ms: int = 30_000,
        user_agent: str | None = None,
    ) -> None:
        self._native = NativeFlyMachines(
            app_name,
            api_token,
            base_url,
            timeout_ms,
            max_retries,
            backoff_ms,
            max_backoff_ms,
            retry_after_cap_ms,
            user_agent,
        )

    @property
    def app_name(self) -> str:
        """The Fly app managed."""
        return self._native.app_name

    @property
    def base_url(self) -> str:
        """The Machines API base URL in use."""
        return self._native.base_url

    def __repr__(self) -> str:
        return repr(self._native)

    def check_access(self) -> None:
        """Raise ``ProviderError`` unless the app exists and the token may manage it."""
        self._native.check_access()

    def list_machines(self) -> list[Machine]:
        """Every machine of the app."""
        return [Machine._from(m) for m in self._native.list_machines()]

    def get_machine(self, machine_id: str) -> Machine | None:
        """One machine with its mounted volume ids, or ``None`` when it does not exist."""
        return Machine._maybe(self._native.get_machine(machine_id))

    def create_machine(
        self,
        name: str,
        *,
        image: str,
        region: str = "",
        env: Mapping[str, str] | None = None,
        volume_id: str | None = None,
        volume_path: str = "/data",
        cpu_kind: str = "shared",
        cpus: int = 1,
        memory_mb: int = 2048,
    ) -> Machine:
        """Create and start a machine named ``name`` (the worker id).

        ``AGENT_FACTORY_WORKER_ID=name`` is added to ``env``. With ``volume_id`` the
        volume is mounted at ``volume_path``. If the answer is lost (timeout, 5xx)
        the machine is looked up by name before any retry, so it is never created
        twice; for the same reason, when the name is already taken (409) the live
        machine of that name is returned.
        """
        spec = {
            "name": name,
            "region": region,
            "image": image,
            "guest": {"cpu_kind": cpu_kind, "cpus": cpus, "memory_mb": memory_mb},
            "env": dict(env or {}),
            "mount": None if volume_id is None else {"volume_id": volume_id, "path": volume_path},
        }
        return Machine._from(self._native.create_machine(spec))

    def cordon_machine(self, machine_id: str) -> ProviderOutcome:
        """Take the machine out of service (``POST …/cordon``)."""
        return ProviderOutcome._from(self._native.cordon_machine(machine_id))

    def stop_machine(self, machine_id: str) -> ProviderOutcome:
        """Ask the machine to stop (``POST …/stop``)."""
        return ProviderOutcome._from(self._native.stop_machine(machine_id))

    def destroy_machine(self, machine_id: str) -> ProviderOutcome:
        """Delete the machine (``DELETE``, no force): ``deferred`` while it is not stopped."""
        return ProviderOutcome._from(self._native.destroy_machine(machine_id))

    def wait_for_state(
        self,
        machine_id: str,
        states: str | Iterable[str] = ("stopped",),
        *,
        timeout_ms: int = 30_000,
        poll_ms: int = 500,
    ) -> ProviderOutcome:
        """Poll until the machine is in one of ``states`` (``done``), gone
        (``already_gone``) or ``timeout_ms`` passes (``deferred``)."""
        wanted = [states] if isinstance(states, str) else list(states)
        return ProviderOutcome._from(self._native.wait_for_state(machine_id, wanted, timeout_ms, poll_ms))

    def list_volumes(self) -> list[Volume]:
        """Every volume of the app."""
        return [Volume._from(v) for v in self._native.list_volumes()]

    def create_volume(self, name: str, *, region: str, size_gb: int) -> Volume:
        """Create a volume (name: 1-30 of ``a-z0-9_``). After a lost answer an
        unattached volume with this name and region is adopted instead of a second one."""
        return Volume._from(self._native.create_volume(name, region, size_gb))

    def delete_volume(self, volume_id: str) -> ProviderOutcome:
        """Delete a volume: ``deferred`` while it is attached to a live machine."""
        return ProviderOutcome._from(self._native.delete_volume(volume_id))

    def cleanup(
        self,
        *,
        machine_concurrency: int = 6,
        volume_concurrency: int = 16,
        settle_timeout_ms: int = 30_000,
        poll_interval_ms: int = 1_000,
        volume_attempts: int = 3,
    ) -> CleanupReport:
        """Destroy **every** machine and volume of the app, verify, and report.

        Checks access first (raises ``ProviderError`` if that or the first listing
        fails); then cordons, stops and destroys each machine, re-lists them,
        deletes each volume and re-lists them. Problems along the way are reported
        in ``warnings``/``errors``; anything still listed at verification is in the
        ``*_remaining`` fields. Database rows are not touched.
        """
        return CleanupReport._from(
            self._native.cleanup(
                machine_concurrency,
                volume_concurrency,
                settle_timeout_ms,
                poll_interval_ms,
                volume_attempts,
            )
        )
