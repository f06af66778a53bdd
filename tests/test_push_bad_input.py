"""Bad input to every ``factory.push`` call: a typed exception whose message names
the problem (the field or the spec's text), and the database file unchanged.

The database is dumped (every row of every table, the schema and
``user_version``) through a separate read-only connection before and after each
rejected call. Hypothesis drives arbitrary schedules and time zones through
``create_job`` and ``update_job``: each either succeeds or raises
``ValidationError`` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import (
    ConflictError,
    Factory,
    InvalidStateError,
    NotFoundError,
    Schedule,
    ValidationError,
)
from agent_factory.testing import EPOCH_2026_MS
from helpers import db_snapshot

BASE = EPOCH_2026_MS + 7 * 3_600_000 + 59 * 60_000



class World:
    """A populated database: a bound user with a job that ran, a template, a broadcast."""

    def __init__(self, f: Factory, path: Path) -> None:
        self.f, self.path = f, path
        f.agents.upsert_agent("push-agent")
        f.agents.upsert_agent("other-agent")
        f.identity.bind("u1", "push-agent", metadata={"companyId": "co-1"})
        self.template = f.push.create_template(
            "co-1", "daily-sync", "Daily", "Sync", "daily", [Schedule.daily("09:00")], actor_user_id="admin"
        )
        self.job = f.push.create_job("co-1", "u1", "Daily", "Ping", "UTC", Schedule.daily("08:00"), now_ms=BASE)
        self.lonely = f.push.create_job("co-1", "nobody", "M", "Ping", "UTC", Schedule.manual(), now_ms=BASE)
        f.push.dispatch_due_push_jobs(now_ms=BASE + 60_000)
        self.broadcast = f.push.send_broadcast("co-1", "Hello", "All", "admin", now_ms=BASE)


@pytest.fixture
def world(factory: Factory, factory_path: Path) -> World:
    return World(factory, factory_path)


def rejected(world: World, call: Callable[[], Any], exc: type[BaseException], needle: str) -> None:
    before = db_snapshot(world.path)
    with pytest.raises(exc) as info:
        call()
    text = " ".join([str(info.value), *getattr(info.value, "__notes__", [])])
    assert needle in text, f"{needle!r} not in {text!r}"
    assert db_snapshot(world.path) == before, "a rejected call changed the database"


def test_bad_schedules_and_time_zones(world: World) -> None:
    p = world.f.push
    cases: list[tuple[Callable[[], Any], type[BaseException], str]] = [
        (lambda: p.next_run_at("daily", "UTC", 0), TypeError, "schedule"),
        (lambda: p.next_run_at({"kind": "daily", "time": "8:00"}, "UTC", 0), ValidationError, "Invalid time '8:00'"),
        (lambda: p.next_run_at({"kind": "daily"}, "UTC", 0), ValidationError, "schedule.time is required"),
        (lambda: p.next_run_at({"kind": "yearly"}, "UTC", 0), ValidationError, "schedule.kind 'yearly'"),
        (lambda: p.next_run_at({"time": "08:00"}, "UTC", 0), ValidationError, "schedule.kind is required"),
        (lambda: p.next_run_at({"kind": "daily", "time": "08:00", "weekday": 1}, "UTC", 0), ValidationError,
         "unknown key 'weekday'"),
        (lambda: p.next_run_at(Schedule.weekly(0, "08:00"), "UTC", 0), ValidationError,
         "Weekly schedule weekday must be in range 1..7"),
        (lambda: p.next_run_at(Schedule.weekly(True, "08:00"), "UTC", 0), ValidationError,  # type: ignore[arg-type]
         "Weekly schedule weekday"),
        (lambda: p.next_run_at(Schedule.monthly(32, "08:00"), "UTC", 0), ValidationError,
         "Monthly schedule dayOfMonth must be 1..31 or 'last'"),
        (lambda: p.next_run_at({"kind": "monthly", "day_of_month": 1, "dayOfMonth": 2, "time": "08:00"}, "UTC", 0),
         ValidationError, "both day_of_month and dayOfMonth"),
        (lambda: p.next_run_at(Schedule.daily("08:00"), "", 0), ValidationError, "Timezone is required"),
        (lambda: p.next_run_at(Schedule.daily("08:00"), "Europe/Atlantis", 0), ValidationError,
         "Invalid timezone 'Europe/Atlantis'"),
        (lambda: p.next_run_at(Schedule.daily("08:00"), "UTC", -1), ValidationError, "afterMs"),
        (lambda: p.next_run_at(Schedule.daily("08:00"), "UTC", 2**62), ValidationError, "afterMs"),
        (lambda: p.next_run_at(Schedule.daily("08:00"), 5, 0), TypeError, "timezone"),  # type: ignore[arg-type]
    ]
    for call, exc, needle in cases:
        rejected(world, call, exc, needle)


def test_bad_template_calls(world: World) -> None:
    p, t = world.f.push, world.template

    def create(**kw: Any) -> Any:
        args: dict[str, Any] = dict(
            company_id="co-1", template_key="k2", title="T", text="X", periodicity="daily",
            suggested_times=[Schedule.daily("09:00")], actor_user_id="admin",
        )
        args.update(kw)
        return lambda: p.create_template(**args)

    cases: list[tuple[Callable[[], Any], type[BaseException], str]] = [
        (create(template_key="daily-sync"), ConflictError, "Template key 'daily-sync' already exists for company"),
        (create(template_key="bad key"), ValidationError, "templateKey"),
        (create(company_id=" "), ValidationError, "companyId"),
        (create(title=""), ValidationError, "title"),
        (create(text="x" * 20_001), ValidationError, "text"),
        (create(actor_user_id=""), ValidationError, "actorUserId"),
        (create(periodicity="hourly"), ValidationError, "periodicity 'hourly'"),
        (create(periodicity="manual"), ValidationError, "Manual template does not accept suggested times"),
        (create(suggested_times=[Schedule.weekly(1, "09:00")]), ValidationError,
         "All suggested times must match template periodicity"),
        (create(suggested_times=[Schedule.daily("09:00"), {"kind": "daily", "time": "25:00"}]), ValidationError,
         "suggested_times[1]: Invalid time '25:00'"),
        (create(suggested_times=Schedule.daily("09:00")), TypeError, "suggested_times"),
        (create(suggested_times=[Schedule.daily("09:00")] * 51), ValidationError, "suggestedTimes"),
        (create(enabled="yes"), TypeError, "enabled"),
        (lambda: p.update_template(t.template_id, actor_user_id="a", periodicity="weekly"), ValidationError,
         "All suggested times must match template periodicity"),
        (lambda: p.update_template(t.template_id, actor_user_id="a", title=" "), ValidationError, "title"),
        (lambda: p.update_template("bad id", actor_user_id="a"), ValidationError, "templateId"),
        (lambda: p.update_template(t.template_id, actor_user_id=""), ValidationError, "actorUserId"),
        (lambda: p.delete_template("bad id"), ValidationError, "templateId"),
        (lambda: p.get_template(""), ValidationError, "templateId"),
        (lambda: p.list_templates(""), ValidationError, "companyId"),
        (lambda: p.list_templates("co-1", include_disabled=1), TypeError, "include_disabled"),
    ]
    for call, exc, needle in cases:
        rejected(world, call, exc, needle)
    before = db_snapshot(world.path)
    assert p.update_template("ptpl-unknown", actor_user_id="a", title="x") is None
    assert p.delete_template("ptpl-unknown") is False
    assert db_snapshot(world.path) == before


def test_bad_job_calls(world: World) -> None:
    p, job = world.f.push, world.job

    def create(**kw: Any) -> Any:
        args: dict[str, Any] = dict(
            company_id="co-1", consumer_user_id="u1", title="T", text="X", timezone="UTC",
            schedule=Schedule.daily("08:00"),
        )
        args.update(kw)
        return lambda: p.create_job(**args)

    cases: list[tuple[Callable[[], Any], type[BaseException], str]] = [
        (create(consumer_user_id=""), ValidationError, "consumerUserId"),
        (create(consumer_user_id="u1\n"), ValidationError, "consumerUserId"),
        (create(company_id=""), ValidationError, "companyId"),
        (create(title="x" * 201), ValidationError, "title"),
        (create(text=" "), ValidationError, "text"),
        (create(timezone="Mars/Olympus"), ValidationError, "Invalid timezone 'Mars/Olympus'"),
        (create(schedule={"kind": "daily", "time": "08:60"}), ValidationError, "Invalid time '08:60'"),
        (create(schedule=None), TypeError, "schedule"),
        (create(periodicity="weekly"), ValidationError, "Schedule kind must match periodicity"),
        (create(agent_key="other-agent"), ConflictError,
         "Agent key must match the current active binding for the user"),
        (create(agent_key="bad key"), ValidationError, "agentKey"),
        (create(now_ms=-5), ValidationError, "nowMs"),
        (create(enabled=None), TypeError, "enabled"),
        (lambda: p.create_job_from_template("co-1", "u1", "ptpl-none", "UTC"), NotFoundError, "Template not found"),
        (lambda: p.create_job_from_template("co-2", "u1", world.template.template_id, "UTC"), ValidationError,
         "Template company mismatch"),
        (lambda: p.create_job_from_template("co-1", "u1", world.template.template_id, "UTC",
                                            schedule=Schedule.manual()), ValidationError,
         "Schedule kind must match periodicity"),
        (lambda: p.create_job_from_template("co-1", "u1", world.template.template_id, "nowhere"), ValidationError,
         "Invalid timezone"),
        (lambda: p.update_job(job.job_id, timezone=""), ValidationError, "Timezone is required"),
        (lambda: p.update_job(job.job_id, periodicity="weekly"), ValidationError,
         "Schedule kind must match periodicity"),
        (lambda: p.update_job(job.job_id, schedule={"kind": "weekly", "time": "08:00"}), ValidationError,
         "Weekly schedule weekday"),
        (lambda: p.update_job(job.job_id, text=""), ValidationError, "text"),
        (lambda: p.update_job("bad id", text="x"), ValidationError, "jobId"),
        (lambda: p.update_job(job.job_id, agent_key="bad key"), ValidationError, "agentKey"),
        (lambda: p.set_job_enabled(job.job_id, "yes"), TypeError, "enabled"),  # type: ignore[arg-type]
        (lambda: p.set_job_enabled(job.job_id, True, now_ms=-1), ValidationError, "nowMs"),
        (lambda: p.delete_job(""), ValidationError, "jobId"),
        (lambda: p.get_job("a b"), ValidationError, "jobId"),
        (lambda: p.list_jobs_for_user(" u1"), ValidationError, "consumerUserId"),
        (lambda: p.list_jobs_for_agent("u1", "bad key"), ValidationError, "agentKey"),
        (lambda: p.trigger_now("pjob-none"), NotFoundError, "Push job not found"),
        (lambda: p.trigger_now(job.job_id, agent_key="other-agent"), NotFoundError, "Push job not found for agent"),
        (lambda: p.trigger_now(world.lonely.job_id), InvalidStateError, "No active agent binding for user"),
        (lambda: p.trigger_now(job.job_id, now_ms=-1), ValidationError, "nowMs"),
        (lambda: p.dispatch_due_push_jobs(limit=0), ValidationError, "limit"),
        (lambda: p.dispatch_due_push_jobs(limit=1001), ValidationError, "limit"),
        (lambda: p.dispatch_due_push_jobs(now_ms=-1), ValidationError, "nowMs"),
        (lambda: p.dispatch_due_push_jobs(limit="5"), TypeError, "limit"),  # type: ignore[arg-type]
        (lambda: p.list_dispatches(job.job_id, limit=0), ValidationError, "limit"),
        (lambda: p.list_dispatches(job.job_id, limit=201), ValidationError, "limit"),
        (lambda: p.list_dispatches("pjob-none"), NotFoundError, "Push job not found"),
        (lambda: p.list_dispatches_for_agent("", "push-agent"), ValidationError, "consumerUserId"),
        (lambda: p.list_dispatches_for_agent("u1", "push-agent", limit=-1), ValidationError, "limit"),
    ]
    for call, exc, needle in cases:
        rejected(world, call, exc, needle)
    before = db_snapshot(world.path)
    assert p.update_job("pjob-unknown", text="x") is None
    assert p.update_job(job.job_id, text="x", agent_key="other-agent") is None
    assert p.set_job_enabled("pjob-unknown", False) is None
    assert p.delete_job("pjob-unknown") is False
    assert db_snapshot(world.path) == before


def test_bad_broadcast_and_stats_calls(world: World) -> None:
    p, b = world.f.push, world.broadcast
    cases: list[tuple[Callable[[], Any], type[BaseException], str]] = [
        (lambda: p.send_broadcast("", "t", "x", "admin"), ValidationError, "companyId"),
        (lambda: p.send_broadcast("co-1", " ", "\n", "admin"), ValidationError, "title and text are both blank"),
        (lambda: p.send_broadcast("co-1", "t" * 201, "x", "admin"), ValidationError, "title"),
        (lambda: p.send_broadcast("co-1", "t", "x", ""), ValidationError, "requestedBy"),
        (lambda: p.send_broadcast("co-1", "t", "x", "admin", now_ms=-1), ValidationError, "nowMs"),
        (lambda: p.send_broadcast("co-1", None, "x", "admin"), TypeError, "title"),  # type: ignore[arg-type]
        (lambda: p.get_broadcast("bad id"), ValidationError, "broadcastId"),
        (lambda: p.list_broadcasts("co-1", limit=0), ValidationError, "limit"),
        (lambda: p.list_broadcast_dispatches(b.broadcast_id, status="skipped"), ValidationError, "status 'skipped'"),
        (lambda: p.list_broadcast_dispatches(b.broadcast_id, limit=1001), ValidationError, "limit"),
        (lambda: p.list_broadcast_dispatches("pbc-none"), NotFoundError, "Broadcast 'pbc-none' not found"),
        (lambda: p.user_agent_push_stats("", "push-agent"), ValidationError, "consumerUserId"),
        (lambda: p.user_agent_conversation_stats("u1", ""), ValidationError, "agentKey"),
        (lambda: p.user_agent_usage_stats("u1", "bad key"), ValidationError, "agentKey"),
    ]
    for call, exc, needle in cases:
        rejected(world, call, exc, needle)


schedule_values = st.one_of(
    st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 30), st.integers(0, 70)),
    st.text(max_size=6),
    st.integers(-1, 2500),
    st.none(),
)
schedule_dicts = st.fixed_dictionaries(
    {"kind": st.sampled_from(["manual", "daily", "weekly", "monthly", "hourly", ""])},
    optional={
        "time": schedule_values,
        "weekday": st.one_of(st.integers(-1, 9), st.text(max_size=3), st.booleans()),
        "day_of_month": st.one_of(st.integers(-1, 33), st.just("last"), st.text(max_size=4)),
        "bogus": st.integers(),
    },
)
zones = st.one_of(
    st.sampled_from(["UTC", "Europe/Rome", "america/new_york", "Asia/Kathmandu", "Etc/GMT+5"]),
    st.text(max_size=30),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=schedule_dicts, tz=zones)
def test_any_schedule_and_zone_is_accepted_or_rejected_without_writing(world: World, schedule, tz) -> None:
    p = world.f.push
    before = db_snapshot(world.path)
    try:
        job = p.create_job("co-1", "u1", "T", "X", tz, schedule, now_ms=BASE)
    except ValidationError as e:
        assert str(e)
        assert db_snapshot(world.path) == before
    else:
        assert job.schedule.kind == schedule["kind"]
        assert (job.next_run_at is None) == (schedule["kind"] == "manual")
        assert job.next_run_at is None or job.next_run_at > BASE
        assert p.delete_job(job.job_id)
    before = db_snapshot(world.path)
    try:
        updated = p.update_job(world.job.job_id, schedule=schedule, timezone=tz, now_ms=BASE)
    except ValidationError:
        assert db_snapshot(world.path) == before
    else:
        assert updated is not None and updated.timezone.lower() == tz.strip().lower()
