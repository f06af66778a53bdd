"""Immutable result types of ``factory.push`` (push templates, jobs, dispatch,
broadcasts, stats), plus :class:`Schedule`, which is also accepted as input.

Times are epoch milliseconds (UTC). Schedules are local wall-clock slots in the
job's IANA time zone; see :meth:`agent_factory.Factory.push` ``.next_run_at`` for
the daylight-saving rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ._types import _Record

__all__ = [
    "Schedule",
    "PushTemplate",
    "PushJob",
    "PushTrigger",
    "PushDispatch",
    "DispatchReport",
    "BroadcastResult",
    "Broadcast",
    "BroadcastDispatch",
    "UserAgentPushStats",
    "UserAgentConversationStats",
    "UserAgentUsageStats",
]

Periodicity = Literal["manual", "daily", "weekly", "monthly"]


@dataclass(frozen=True, slots=True)
class Schedule(_Record):
    """When a push runs: ``manual``, ``daily`` at ``time``, ``weekly`` on ``weekday``
    (1 = Monday … 7 = Sunday) at ``time``, or ``monthly`` on ``day_of_month`` (1..31,
    clamped to the month's last day, or ``"last"``) at ``time`` (``"HH:mm"``, local).

    Build one with :meth:`manual`, :meth:`daily`, :meth:`weekly` or :meth:`monthly`;
    every ``schedule=`` argument also takes the equivalent dict, e.g.
    ``{"kind": "daily", "time": "08:00"}`` (``dayOfMonth`` is accepted as an alias of
    ``day_of_month``)."""

    kind: Periodicity
    time: str | None = None
    weekday: int | None = None
    day_of_month: int | Literal["last"] | None = None

    @classmethod
    def manual(cls) -> Schedule:
        """Only when triggered (``factory.push.trigger_now``)."""
        return cls("manual")

    @classmethod
    def daily(cls, time: str) -> Schedule:
        """Every day at ``time`` (``"HH:mm"``)."""
        return cls("daily", time=time)

    @classmethod
    def weekly(cls, weekday: int, time: str) -> Schedule:
        """Every week on ``weekday`` (1 = Monday … 7 = Sunday) at ``time``."""
        return cls("weekly", time=time, weekday=weekday)

    @classmethod
    def monthly(cls, day_of_month: int | Literal["last"], time: str) -> Schedule:
        """Every month on ``day_of_month`` (1..31 or ``"last"``) at ``time``."""
        return cls("monthly", time=time, day_of_month=day_of_month)

    def to_dict(self) -> dict[str, Any]:
        """The schedule dict (only the fields of its kind)."""
        out: dict[str, Any] = {"kind": self.kind}
        for name in ("time", "weekday", "day_of_month"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class PushTemplate(_Record):
    """A company's reusable push text with suggested schedules."""

    _nested_lists: ClassVar[Mapping[str, type]] = {"suggested_times": Schedule}

    template_id: str
    company_id: str
    template_key: str
    title: str
    text: str
    periodicity: Periodicity
    suggested_times: list[Schedule]
    enabled: bool
    created_by: str
    updated_by: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class PushJob(_Record):
    """One user's push on a schedule. ``next_run_at`` is ``None`` exactly when the
    job is disabled or manual; ``agent_key`` is the user's agent it goes through
    (adopted from the active binding at the first run when it was unset)."""

    _nested: ClassVar[Mapping[str, type]] = {"schedule": Schedule}

    job_id: str
    company_id: str
    consumer_user_id: str
    agent_key: str | None
    source_template_id: str | None
    title: str
    text: str
    periodicity: Periodicity
    timezone: str
    schedule: Schedule
    enabled: bool
    next_run_at: int | None
    last_run_at: int | None
    last_run_key: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class PushTrigger(_Record):
    """A manual run: the enqueued message and its run key ``manual:<jobId>:<now>``."""

    enqueued_message_id: str
    run_key: str


@dataclass(frozen=True, slots=True)
class PushDispatch(_Record):
    """One run of a job (audit row): ``enqueued`` with its message, or ``failed``
    with the reason."""

    dispatch_id: str
    job_id: str
    consumer_user_id: str
    agent_key: str | None
    run_key: str
    push_mode: Literal["scheduled", "manual"]
    status: Literal["enqueued", "failed"]
    scheduled_for: int
    enqueued_message_id: str | None
    error: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class DispatchReport(_Record):
    """Counts of one ``dispatch_due_push_jobs`` pass."""

    scanned: int
    enqueued: int
    skipped: int
    failed: int


@dataclass(frozen=True, slots=True)
class BroadcastResult(_Record):
    """What ``send_broadcast`` did: one target per active binding of the company."""

    broadcast_id: str
    total_targets: int
    enqueued: int
    failed: int


@dataclass(frozen=True, slots=True)
class Broadcast(_Record):
    """A stored broadcast; ``status`` is ``failed`` when at least one target failed."""

    broadcast_id: str
    company_id: str
    title: str
    text: str
    requested_by: str
    requested_at: int
    status: Literal["done", "failed"]
    total_targets: int
    enqueued_count: int
    failed_count: int
    completed_at: int | None


@dataclass(frozen=True, slots=True)
class BroadcastDispatch(_Record):
    """One target of a broadcast."""

    consumer_user_id: str
    agent_key: str
    conversation_id: str
    run_key: str
    status: Literal["enqueued", "failed"]
    enqueued_message_id: str | None
    error: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class UserAgentPushStats(_Record):
    """A user's jobs for one agent (total, enabled) and the runs routed to it."""

    total_push_jobs: int
    active_push_jobs: int
    total_dispatches: int
    latest_dispatch_at: int | None


@dataclass(frozen=True, slots=True)
class UserAgentConversationStats(_Record):
    """Counters of the user-agent conversation; zeros (and no conversation) unless
    the agent is the user's active agent."""

    conversation_id: str | None
    context_messages: int
    queued_messages: int
    failed_messages: int


@dataclass(frozen=True, slots=True)
class UserAgentUsageStats(_Record):
    """:class:`UserAgentPushStats` and :class:`UserAgentConversationStats` together."""

    total_push_jobs: int
    active_push_jobs: int
    total_dispatches: int
    latest_dispatch_at: int | None
    conversation_id: str | None
    context_messages: int
    queued_messages: int
    failed_messages: int
