"""The asyncio API of ``factory.push``; ``_sync_push.py`` is generated from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ._area import _Area
from ._push_types import (
    Broadcast,
    BroadcastDispatch,
    BroadcastResult,
    DispatchReport,
    Periodicity,
    PushDispatch,
    PushJob,
    PushTemplate,
    PushTrigger,
    Schedule,
    UserAgentConversationStats,
    UserAgentPushStats,
    UserAgentUsageStats,
)
from ._record_list import RecordList

_IS_ASYNC = True

__all__ = ["AsyncPushApi"]

ScheduleArg = Schedule | Mapping[str, Any]


def _schedule(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{field} must be a Schedule or a dict, got {type(value).__name__}")


def _maybe_schedule(value: Any, field: str) -> dict[str, Any] | None:
    return None if value is None else _schedule(value, field)


def _schedules(value: Any, field: str) -> list[dict[str, Any]]:
    if isinstance(value, (str, bytes, Mapping, Schedule)) or not isinstance(value, Iterable):
        raise TypeError(f"{field} must be a list of Schedules or dicts, got {type(value).__name__}")
    return [_schedule(v, f"{field}[{i}]") for i, v in enumerate(value)]


class AsyncPushApi(_Area):
    """Push templates, scheduled push jobs, dispatch and broadcasts: ``factory.push``.

    A job sends its text to one consumer user through the user's agent, into the
    stable conversation ``user-agent:<agentKey>:<consumerUserId>`` (over Telegram
    when the binding has a Telegram chat, else ``system_push``). Recurring jobs run
    at local wall-clock slots in an IANA time zone; the control loop (or your own
    timer) calls :meth:`dispatch_due_push_jobs`, and each slot is enqueued exactly
    once even when several dispatchers race. Errors: ``ValidationError`` for bad
    input (the message names the field), ``NotFoundError``, ``ConflictError``
    (ownership, duplicates), ``InvalidStateError`` (no usable binding).
    """

    __slots__ = ()

    # -- schedules ---------------------------------------------------------------

    async def next_run_at(self, schedule: ScheduleArg, timezone: str, after_ms: int) -> int | None:
        """The first slot of ``schedule`` in ``timezone`` strictly after ``after_ms``
        (``None`` for a manual schedule). Writes nothing.

        Daylight saving: a local time that does not exist (spring-forward gap) runs
        once, at the first instant after the gap (Europe/Rome 2026-03-29 02:30 →
        03:00 CEST); a local time that exists twice (fall-back) runs once, at its
        first occurrence. A monthly day past the month's end runs on its last day.
        Iterating ``next_run_at`` from its own result never repeats or skips a slot."""
        return await self._n.push_next_run_at(_IS_ASYNC, _schedule(schedule, "schedule"), timezone, after_ms)  # type: ignore[no-any-return]

    # -- templates ---------------------------------------------------------------

    async def create_template(
        self,
        company_id: str,
        template_key: str,
        title: str,
        text: str,
        periodicity: Periodicity,
        suggested_times: Iterable[ScheduleArg] = (),
        *,
        actor_user_id: str,
        enabled: bool = True,
        now_ms: int | None = None,
    ) -> PushTemplate:
        """Create a push template of a company. A manual template takes no suggested
        times; the others' suggested times must all have the template's periodicity.
        ``ConflictError`` if ``template_key`` already exists for the company."""
        raw = await self._n.push_create_template(
            _IS_ASYNC, company_id, template_key, title, text, periodicity,
            _schedules(suggested_times, "suggested_times"), enabled, actor_user_id, now_ms,
        )
        return PushTemplate._from(raw)

    async def update_template(
        self,
        template_id: str,
        *,
        actor_user_id: str,
        title: str | None = None,
        text: str | None = None,
        periodicity: Periodicity | None = None,
        suggested_times: Iterable[ScheduleArg] | None = None,
        enabled: bool | None = None,
        now_ms: int | None = None,
    ) -> PushTemplate | None:
        """Change a template (``None`` keeps a field); ``None`` if it does not exist.
        Jobs already made from it keep their copied text."""
        times = None if suggested_times is None else _schedules(suggested_times, "suggested_times")
        raw = await self._n.push_update_template(
            _IS_ASYNC, template_id, actor_user_id, title, text, periodicity, times, enabled, now_ms
        )
        return PushTemplate._maybe(raw)

    async def delete_template(self, template_id: str) -> bool:
        """Delete a template; ``False`` if it did not exist."""
        return await self._n.push_delete_template(_IS_ASYNC, template_id)  # type: ignore[no-any-return]

    async def get_template(self, template_id: str) -> PushTemplate | None:
        """One template, or ``None``."""
        return PushTemplate._maybe(await self._n.push_get_template(_IS_ASYNC, template_id))

    async def list_templates(self, company_id: str, *, include_disabled: bool = False) -> RecordList[PushTemplate]:
        """A company's templates, most recently changed first."""
        raw = await self._n.push_list_templates(_IS_ASYNC, company_id, include_disabled)
        return RecordList([PushTemplate._from(t) for t in raw], PushTemplate)

    # -- jobs --------------------------------------------------------------------

    async def create_job(
        self,
        company_id: str,
        consumer_user_id: str,
        title: str,
        text: str,
        timezone: str,
        schedule: ScheduleArg,
        *,
        periodicity: Periodicity | None = None,
        enabled: bool = True,
        agent_key: str | None = None,
        now_ms: int | None = None,
    ) -> PushJob:
        """Create a custom push job for a user (the seed's ``createPushJobCustom``).

        ``periodicity`` defaults to the schedule's kind (if given it must match:
        ``Schedule kind must match periodicity``). With ``agent_key`` (the seed's
        ``...ForAgent``), it must be the agent of the user's active binding
        (``ConflictError``); without it the job takes that agent when there is one,
        or adopts one at its first run."""
        raw = await self._n.push_create_job(
            _IS_ASYNC, company_id, consumer_user_id, title, text, timezone,
            _schedule(schedule, "schedule"), periodicity, enabled, agent_key, now_ms,
        )
        return PushJob._from(raw)

    async def create_job_from_template(
        self,
        company_id: str,
        consumer_user_id: str,
        template_id: str,
        timezone: str,
        *,
        schedule: ScheduleArg | None = None,
        enabled: bool = True,
        agent_key: str | None = None,
        now_ms: int | None = None,
    ) -> PushJob:
        """Create a job from a template of the same company (title, text and
        periodicity are copied). The schedule is ``schedule``, else the template's
        first suggested time (manual templates: manual). Errors: ``Template not
        found``, ``Template company mismatch``, ``Schedule is required for
        non-manual template``; ``agent_key`` as in :meth:`create_job`."""
        raw = await self._n.push_create_job_from_template(
            _IS_ASYNC, company_id, consumer_user_id, template_id, timezone,
            _maybe_schedule(schedule, "schedule"), enabled, agent_key, now_ms,
        )
        return PushJob._from(raw)

    async def update_job(
        self,
        job_id: str,
        *,
        title: str | None = None,
        text: str | None = None,
        periodicity: Periodicity | None = None,
        timezone: str | None = None,
        schedule: ScheduleArg | None = None,
        enabled: bool | None = None,
        agent_key: str | None = None,
        now_ms: int | None = None,
    ) -> PushJob | None:
        """Change a job (``None`` keeps a field); ``None`` if it does not exist or,
        with ``agent_key``, belongs to another agent. A new schedule alone also sets
        the periodicity. The next slot is re-planned from now when the schedule,
        time zone or enabled flag changes; editing only the text keeps it."""
        raw = await self._n.push_update_job(
            _IS_ASYNC, job_id, title, text, periodicity, timezone,
            _maybe_schedule(schedule, "schedule"), enabled, agent_key, now_ms,
        )
        return PushJob._maybe(raw)

    async def set_job_enabled(
        self, job_id: str, enabled: bool, *, agent_key: str | None = None, now_ms: int | None = None
    ) -> PushJob | None:
        """Enable (plans the first slot after now) or disable a job; ``None`` if it
        does not exist or belongs to another agent."""
        return PushJob._maybe(await self._n.push_set_job_enabled(_IS_ASYNC, job_id, enabled, agent_key, now_ms))

    async def delete_job(self, job_id: str, *, agent_key: str | None = None) -> bool:
        """Delete a job and its dispatch history; ``False`` if it does not exist or
        belongs to another agent."""
        return await self._n.push_delete_job(_IS_ASYNC, job_id, agent_key)  # type: ignore[no-any-return]

    async def get_job(self, job_id: str, *, agent_key: str | None = None) -> PushJob | None:
        """One job, or ``None`` (also when it belongs to another agent than ``agent_key``)."""
        return PushJob._maybe(await self._n.push_get_job(_IS_ASYNC, job_id, agent_key))

    async def list_jobs_for_user(self, consumer_user_id: str, *, include_disabled: bool = True) -> RecordList[PushJob]:
        """A user's jobs, most recently changed first."""
        raw = await self._n.push_list_jobs_for_user(_IS_ASYNC, consumer_user_id, include_disabled)
        return RecordList([PushJob._from(j) for j in raw], PushJob)

    async def list_jobs_for_agent(
        self, consumer_user_id: str, agent_key: str, *, include_disabled: bool = True
    ) -> RecordList[PushJob]:
        """A user's jobs that belong to ``agent_key``, most recently changed first."""
        raw = await self._n.push_list_jobs_for_agent(_IS_ASYNC, consumer_user_id, agent_key, include_disabled)
        return RecordList([PushJob._from(j) for j in raw], PushJob)

    # -- running -----------------------------------------------------------------

    async def trigger_now(
        self, job_id: str, *, agent_key: str | None = None, now_ms: int | None = None
    ) -> PushTrigger:
        """Send a job's text now (any periodicity), run key ``manual:<jobId>:<now>``.
        The job's next scheduled slot is not changed. ``NotFoundError``: ``Push job
        not found`` (or ``... for agent`` when ``agent_key`` does not own it);
        ``InvalidStateError``: ``No active agent binding for user``."""
        return PushTrigger._from(await self._n.push_trigger_now(_IS_ASYNC, job_id, agent_key, now_ms))

    async def dispatch_due_push_jobs(self, *, limit: int | None = None, now_ms: int | None = None) -> DispatchReport:
        """Enqueue every due slot (enabled recurring jobs with ``next_run_at <= now``),
        at most ``limit`` jobs (default 200, at most 1000), oldest slot first, in one
        transaction. A slot (run key ``scheduled:<jobId>:<nextRunAt>``) is enqueued
        at most once; a user without a usable binding gives a ``failed`` run; each
        job then moves to its first slot after now (missed periods are not
        back-filled). Cheap when nothing is due."""
        return DispatchReport._from(await self._n.push_dispatch_due(_IS_ASYNC, limit, now_ms))

    async def list_dispatches(self, job_id: str, *, limit: int = 50) -> RecordList[PushDispatch]:
        """A job's runs, newest first (``limit`` 1..200). ``NotFoundError`` for an unknown job."""
        return RecordList(
            [PushDispatch._from(d) for d in await self._n.push_list_dispatches(_IS_ASYNC, job_id, limit)], PushDispatch
        )

    async def list_dispatches_for_agent(
        self, consumer_user_id: str, agent_key: str, *, limit: int = 50
    ) -> RecordList[PushDispatch]:
        """A user's runs routed to ``agent_key``, newest first (``limit`` 1..200)."""
        raw = await self._n.push_list_dispatches_for_agent(_IS_ASYNC, consumer_user_id, agent_key, limit)
        return RecordList([PushDispatch._from(d) for d in raw], PushDispatch)

    # -- broadcasts --------------------------------------------------------------

    async def send_broadcast(
        self, company_id: str, title: str, text: str, requested_by: str, *, now_ms: int | None = None
    ) -> BroadcastResult:
        """Send ``f"{title}\\n\\n{text}".strip()`` to every active binding of
        ``company_id`` (bindings whose metadata has that ``companyId``): one message
        per user into their user-agent conversation, routed like a push. A target
        whose enqueue fails is recorded as failed; the others still get it. One
        transaction."""
        raw = await self._n.push_send_broadcast(_IS_ASYNC, company_id, title, text, requested_by, now_ms)
        return BroadcastResult._from(raw)

    async def get_broadcast(self, broadcast_id: str) -> Broadcast | None:
        """One broadcast, or ``None``."""
        return Broadcast._maybe(await self._n.push_get_broadcast(_IS_ASYNC, broadcast_id))

    async def list_broadcasts(self, company_id: str, *, limit: int = 50) -> RecordList[Broadcast]:
        """A company's broadcasts, newest first (``limit`` 1..200)."""
        return RecordList(
            [Broadcast._from(b) for b in await self._n.push_list_broadcasts(_IS_ASYNC, company_id, limit)], Broadcast
        )

    async def list_broadcast_dispatches(
        self,
        broadcast_id: str,
        *,
        status: Literal["enqueued", "failed"] | None = None,
        limit: int = 200,
    ) -> RecordList[BroadcastDispatch]:
        """The targets of a broadcast by user id, optionally only ``enqueued`` or
        ``failed`` ones (``limit`` 1..1000). ``NotFoundError`` for an unknown broadcast."""
        raw = await self._n.push_list_broadcast_dispatches(_IS_ASYNC, broadcast_id, status, limit)
        return RecordList([BroadcastDispatch._from(d) for d in raw], BroadcastDispatch)

    # -- stats -------------------------------------------------------------------

    async def user_agent_push_stats(self, consumer_user_id: str, agent_key: str) -> UserAgentPushStats:
        """A user's jobs for ``agent_key`` (total, enabled) and the runs routed to it
        (exact count, newest time)."""
        return UserAgentPushStats._from(await self._n.push_user_agent_push_stats(_IS_ASYNC, consumer_user_id, agent_key))

    async def user_agent_conversation_stats(self, consumer_user_id: str, agent_key: str) -> UserAgentConversationStats:
        """History entries, queued/in-flight and dead-lettered messages of the
        user-agent conversation; zeros unless ``agent_key`` is the user's active agent."""
        raw = await self._n.push_user_agent_conversation_stats(_IS_ASYNC, consumer_user_id, agent_key)
        return UserAgentConversationStats._from(raw)

    async def user_agent_usage_stats(self, consumer_user_id: str, agent_key: str) -> UserAgentUsageStats:
        """Push and conversation stats of a user's agent, read from one snapshot."""
        return UserAgentUsageStats._from(await self._n.push_user_agent_usage_stats(_IS_ASYNC, consumer_user_id, agent_key))
