"""Result types of the pool control loop (``factory.pool.tick`` / ``run``).

Kept apart from ``_types`` because a tick reports on several areas (pool,
push, snapshots, Telegram).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from ._push_types import DispatchReport
from ._telegram_types import AttachmentExpiry
from ._types import PoolReport, ReleaseOutcome, SnapshotExpiry, _Record

__all__ = ["TickReport", "ControlRun"]


@dataclass(frozen=True, slots=True)
class TickReport(_Record):
    """What one tick of the pool control loop did (``factory.pool.tick``, ``run``).

    ``acting`` says whether this loop held the database lease ``pool.control``
    and ran its steps; a standby loop (another holder is live) does nothing and
    names the holder in ``lease_holder``. ``ran`` lists the steps in order —
    ``recovery`` (expired job leases, every tick), ``reconcile`` (why:
    ``reconcile_reason`` = ``start`` | ``demand`` | ``interval`` | ``retry``),
    ``push`` (due push jobs dispatched, every tick), ``idle_shutdown`` and
    ``sweep`` (snapshot and Telegram attachment expiry) — with their results in
    ``released``, ``reconcile``, ``push``, ``idle_shutdown``, ``expiry`` and
    ``attachment_expiry``. Failed steps
    are listed in ``errors`` and retried later; the loop goes on.
    ``did_something`` is true when the tick changed something or has something
    to say. ``next_tick_at`` is the latest time the next tick should run
    (epoch ms; compare with ``at``, the tick's own time).
    """

    _nested: ClassVar[Mapping[str, type]] = {
        "released": ReleaseOutcome,
        "reconcile": PoolReport,
        "idle_shutdown": PoolReport,
        "push": DispatchReport,
        "expiry": SnapshotExpiry,
        "attachment_expiry": AttachmentExpiry,
    }

    holder: str
    acting: bool
    lease_holder: str | None
    lease_token: int | None
    lease_expires_at: int | None
    took_over: bool
    lost_lease: bool
    at: int
    ran: list[str]
    reconcile_reason: str | None
    active_conversations: int | None
    released: ReleaseOutcome | None
    reconcile: PoolReport | None
    idle_shutdown: PoolReport | None
    push: DispatchReport | None
    expiry: SnapshotExpiry | None
    attachment_expiry: AttachmentExpiry | None
    errors: list[str]
    did_something: bool
    next_tick_at: int

    def summary(self) -> str:
        """One human-readable line: lease state, steps that changed something, errors."""
        if not self.acting:
            state = "lost the lease" if self.lost_lease else "standby"
            return f"{state}: lease held by {self.lease_holder or 'nobody'}"
        parts = [f"took over the lease (token {self.lease_token})"] if self.took_over else []
        if self.released is not None and (self.released.requeued or self.released.dead_lettered):
            parts.append(f"recovered {self.released.requeued} job(s), dead-lettered {self.released.dead_lettered}")
        for name, r in (("reconcile", self.reconcile), ("idle shutdown", self.idle_shutdown)):
            if r is not None and (r.spawned or r.terminated or r.torn_down or r.warnings):
                why = f" ({self.reconcile_reason})" if name == "reconcile" and self.reconcile_reason else ""
                parts.append(
                    f"{name}{why}: spawned {r.spawned}, drained {r.terminated}, torn down {r.torn_down}, "
                    f"active {r.active_workers}/{r.desired_workers}"
                    + (f", warnings: {'; '.join(r.warnings)}" if r.warnings else "")
                )
        if self.push is not None and (self.push.enqueued or self.push.failed):
            parts.append(f"push: enqueued {self.push.enqueued}, failed {self.push.failed}")
        if self.expiry is not None and (self.expiry.expired or self.expiry.failed):
            parts.append(f"expired {self.expiry.expired} snapshot(s), failed {self.expiry.failed} upload(s)")
        if self.attachment_expiry is not None and self.attachment_expiry.expired:
            parts.append(f"expired {self.attachment_expiry.expired} attachment(s)")
        parts.extend(f"error: {e}" for e in self.errors)
        return "; ".join(parts) if parts else "nothing to do"


@dataclass(frozen=True, slots=True)
class ControlRun(_Record):
    """How a control loop run ended: its ``holder`` id, ``ticks`` run, ``acting_ticks``
    (ticks that held the lease) and ``reason`` (``max_ticks`` or ``stop``)."""

    holder: str
    ticks: int
    acting_ticks: int
    reason: str
