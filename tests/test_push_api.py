"""``factory.push``: templates, jobs, dispatch (routing, exactly-once slots under
racing dispatchers, no starvation by manual jobs, newest-first listings), manual
triggers, broadcasts and stats, through both the blocking and the asyncio face."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agent_factory import (
    AsyncFactory,
    ConflictError,
    Factory,
    InvalidStateError,
    NotFoundError,
    PushJob,
    Schedule,
    ValidationError,
)
from agent_factory.testing import EPOCH_2026_MS

T0 = EPOCH_2026_MS  # 2026-01-01T00:00Z
BASE = T0 + 7 * 3_600_000 + 59 * 60_000  # 07:59Z
SLOT = BASE + 60_000  # 08:00Z
DAY = 86_400_000


def setup_user(f: Factory, user: str = "u1", agent: str = "push-agent", company: str = "co-1", **kw) -> None:
    f.agents.upsert_agent(agent, version="1.0.0", secrets_ref=[], bot_identity=kw.pop("bot", None))
    f.identity.bind(user, agent, metadata={"companyId": company}, **kw)


def daily_job(f: Factory, user: str = "u1", time_: str = "08:00", **kw) -> PushJob:
    return f.push.create_job("co-1", user, "Daily check", "Ping", "UTC", Schedule.daily(time_), now_ms=BASE, **kw)


def count(path: Path, sql: str) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------
# templates and jobs
# ---------------------------------------------------------------------------------------


def test_templates_round_trip(factory: Factory) -> None:
    t = factory.push.create_template(
        "co-1", "daily-sync", "Daily sync", "Sync now", "daily", [Schedule.daily("09:00")], actor_user_id="admin"
    )
    assert t.suggested_times == [Schedule.daily("09:00")]
    assert [x.template_key for x in factory.push.list_templates("co-1")] == ["daily-sync"]
    with pytest.raises(ConflictError, match="Template key 'daily-sync' already exists for company"):
        factory.push.create_template("co-1", "daily-sync", "x", "y", "manual", actor_user_id="admin")
    updated = factory.push.update_template(t.template_id, actor_user_id="ops", enabled=False, now_ms=T0 + 1)
    assert updated is not None and not updated.enabled and updated.updated_by == "ops"
    assert factory.push.list_templates("co-1") == []
    assert len(factory.push.list_templates("co-1", include_disabled=True)) == 1
    assert factory.push.get_template(t.template_id) == updated
    assert factory.push.delete_template(t.template_id) is True
    assert factory.push.get_template(t.template_id) is None
    assert factory.push.update_template(t.template_id, actor_user_id="ops", title="x") is None


def test_job_from_template_uses_the_first_suggested_time(factory: Factory) -> None:
    setup_user(factory)
    t = factory.push.create_template(
        "co-1", "weekly", "Weekly", "Review", "weekly",
        [{"kind": "weekly", "weekday": 1, "time": "09:00"}], actor_user_id="admin",
    )
    job = factory.push.create_job_from_template("co-1", "u1", t.template_id, "Europe/Rome", now_ms=T0)
    assert job.schedule == Schedule.weekly(1, "09:00")
    assert job.source_template_id == t.template_id
    assert job.agent_key == "push-agent"
    assert job.next_run_at == T0 + 4 * DAY + 8 * 3_600_000  # Mon 2026-01-05 09:00 CET
    with pytest.raises(ValidationError, match="Template company mismatch"):
        factory.push.create_job_from_template("co-2", "u1", t.template_id, "UTC")
    with pytest.raises(NotFoundError, match="Template not found"):
        factory.push.create_job_from_template("co-1", "u1", "ptpl-missing", "UTC")


def test_job_lifecycle_and_agent_ownership(factory: Factory) -> None:
    setup_user(factory)
    factory.agents.upsert_agent("other-agent")
    job = daily_job(factory, agent_key="push-agent")
    assert (job.next_run_at, job.periodicity, job.timezone) == (SLOT, "daily", "UTC")
    with pytest.raises(ConflictError, match="Agent key must match the current active binding for the user"):
        daily_job(factory, agent_key="other-agent")
    assert factory.push.update_job(job.job_id, title="x", agent_key="other-agent") is None
    assert factory.push.get_job(job.job_id, agent_key="other-agent") is None
    assert factory.push.delete_job(job.job_id, agent_key="other-agent") is False
    with pytest.raises(NotFoundError, match="Push job not found for agent"):
        factory.push.trigger_now(job.job_id, agent_key="other-agent")
    moved = factory.push.update_job(job.job_id, schedule={"kind": "monthly", "dayOfMonth": "last", "time": "10:00"},
                                    now_ms=BASE)
    assert moved is not None
    assert (moved.periodicity, moved.next_run_at) == ("monthly", T0 + 30 * DAY + 10 * 3_600_000)
    off = factory.push.set_job_enabled(job.job_id, False, now_ms=BASE)
    assert off is not None and (off.enabled, off.next_run_at) == (False, None)
    assert [j.job_id for j in factory.push.list_jobs_for_user("u1")] == [job.job_id]
    assert factory.push.list_jobs_for_user("u1", include_disabled=False) == []
    assert [j.job_id for j in factory.push.list_jobs_for_agent("u1", "push-agent")] == [job.job_id]
    assert factory.push.delete_job(job.job_id) is True
    assert factory.push.get_job(job.job_id) is None


# ---------------------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------------------


def test_dispatch_routes_to_the_jobs_agent_and_records_failures(factory: Factory) -> None:
    setup_user(factory)
    factory.agents.upsert_agent("other-agent")
    job = daily_job(factory)
    lonely = daily_job(factory, user="nobody")
    factory.identity.bind("u1", "other-agent")  # the job's agent is no longer the user's
    report = factory.push.dispatch_due_push_jobs(now_ms=SLOT)
    assert (report.scanned, report.enqueued, report.failed) == (2, 0, 2)
    [d] = factory.push.list_dispatches(lonely.job_id)
    assert (d.status, d.error) == ("failed", "No active agent binding for user")
    [d] = factory.push.list_dispatches(job.job_id)
    assert d.error is not None and d.error.startswith("No active agent binding for user")
    assert factory.push.get_job(job.job_id).next_run_at == SLOT + DAY  # type: ignore[union-attr]
    factory.identity.bind("u1", "push-agent")
    report = factory.push.dispatch_due_push_jobs(now_ms=SLOT + DAY)
    assert report.enqueued == 1
    claim = factory.worker("w").claim(now_ms=SLOT + DAY)
    assert claim is not None and claim.conversation_id == "user-agent:push-agent:u1"
    meta = claim.payload["metadata"]
    assert (meta["pushJobId"], meta["pushMode"], meta["runKey"]) == (
        job.job_id, "scheduled", f"scheduled:{job.job_id}:{SLOT + DAY}",
    )


def test_enabled_manual_jobs_never_starve_a_due_scheduled_job(factory: Factory) -> None:
    setup_user(factory)
    limit = 10
    for _ in range(limit + 1):
        factory.push.create_job("co-1", "u1", "Manual", "Ping", "UTC", Schedule.manual(), now_ms=BASE)
    job = daily_job(factory)
    report = factory.push.dispatch_due_push_jobs(limit=limit, now_ms=SLOT)
    assert (report.scanned, report.enqueued) == (1, 1)
    assert len(factory.push.list_dispatches(job.job_id)) == 1


def test_dispatch_listing_is_newest_first_beyond_the_limit(factory: Factory) -> None:
    setup_user(factory)
    job = daily_job(factory)
    for day in range(60):
        factory.push.dispatch_due_push_jobs(now_ms=SLOT + day * DAY)
    listed = factory.push.list_dispatches(job.job_id, limit=3)
    assert [d.scheduled_for for d in listed] == [SLOT + 59 * DAY, SLOT + 58 * DAY, SLOT + 57 * DAY]
    assert len(factory.push.list_dispatches(job.job_id, limit=200)) == 60
    for_agent = factory.push.list_dispatches_for_agent("u1", "push-agent", limit=2)
    assert [d.scheduled_for for d in for_agent] == [SLOT + 59 * DAY, SLOT + 58 * DAY]
    stats = factory.push.user_agent_push_stats("u1", "push-agent")
    assert (stats.total_dispatches, stats.latest_dispatch_at) == (60, SLOT + 59 * DAY)


def test_trigger_now_keeps_the_schedule(factory: Factory) -> None:
    setup_user(factory)
    job = daily_job(factory)
    t = factory.push.trigger_now(job.job_id, now_ms=BASE + 1)
    assert t.run_key == f"manual:{job.job_id}:{BASE + 1}"
    after = factory.push.get_job(job.job_id)
    assert after is not None and after.next_run_at == SLOT and after.last_run_key == t.run_key
    with pytest.raises(ConflictError):
        factory.push.trigger_now(job.job_id, now_ms=BASE + 1)
    lonely = daily_job(factory, user="nobody")
    with pytest.raises(InvalidStateError, match="No active agent binding for user"):
        factory.push.trigger_now(lonely.job_id)
    with pytest.raises(NotFoundError, match="Push job not found"):
        factory.push.trigger_now("pjob-missing")


RACER = textwrap.dedent(
    """
    import json, sys, time
    from agent_factory import Factory
    db, start_at, now_ms = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    f = Factory(db)
    while time.time() < start_at:
        time.sleep(0.0005)
    totals = {"enqueued": 0, "skipped": 0, "failed": 0, "scanned": 0}
    for _ in range(5):
        r = f.push.dispatch_due_push_jobs(now_ms=now_ms, limit=7)
        for k in totals:
            totals[k] += getattr(r, k)
    print(json.dumps(totals))
    """
)


def test_racing_dispatcher_processes_enqueue_each_slot_once(factory: Factory, factory_path: Path) -> None:
    setup_user(factory)
    jobs = [daily_job(factory) for _ in range(20)]
    start_at = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(factory_path), str(start_at), str(SLOT)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert sum(r["enqueued"] for r in reports) == len(jobs)
    assert sum(r["failed"] for r in reports) == 0
    assert count(factory_path, "SELECT count(*) FROM messages") == len(jobs)
    assert count(factory_path, "SELECT count(DISTINCT run_key) FROM push_dispatches") == len(jobs)
    assert count(factory_path, "SELECT count(*) FROM push_dispatches") == len(jobs)


def test_racing_dispatcher_threads_on_two_handles_enqueue_each_slot_once(factory: Factory, factory_path: Path) -> None:
    setup_user(factory)
    for _ in range(30):
        daily_job(factory)
    handles = [Factory(factory_path), Factory(factory_path)]
    results: list[int] = []
    barrier = threading.Barrier(4)

    def run(f: Factory) -> None:
        barrier.wait()
        for _ in range(5):
            results.append(f.push.dispatch_due_push_jobs(now_ms=SLOT, limit=4).enqueued)

    threads = [threading.Thread(target=run, args=(handles[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 30
    assert count(factory_path, "SELECT count(*) FROM messages") == 30


# ---------------------------------------------------------------------------------------
# broadcasts and stats
# ---------------------------------------------------------------------------------------


def test_broadcast_isolates_a_failing_target(factory: Factory) -> None:
    setup_user(factory, "u-ok", "agent-ok", company="co")
    setup_user(factory, "u-off", "agent-off", company="co")
    factory.agents.disable("agent-off")
    r = factory.push.send_broadcast("co", "Title", "Body", "admin")
    assert (r.total_targets, r.enqueued, r.failed) == (2, 1, 1)
    b = factory.push.get_broadcast(r.broadcast_id)
    assert b is not None and (b.status, b.failed_count) == ("failed", 1)
    [failed] = factory.push.list_broadcast_dispatches(r.broadcast_id, status="failed")
    assert failed.consumer_user_id == "u-off" and "agent-off" in (failed.error or "")
    assert [x.broadcast_id for x in factory.push.list_broadcasts("co")] == [r.broadcast_id]
    assert factory.queue.stats().queued_ready == 1


def test_usage_stats(factory: Factory) -> None:
    setup_user(factory)
    job = factory.push.create_job("co-1", "u1", "M", "Ping", "UTC", Schedule.manual(), now_ms=BASE)
    for i in range(3):
        factory.push.trigger_now(job.job_id, now_ms=BASE + i)
    u = factory.push.user_agent_usage_stats("u1", "push-agent")
    assert (u.total_push_jobs, u.active_push_jobs, u.total_dispatches, u.queued_messages) == (1, 1, 3, 3)
    assert u.conversation_id == "user-agent:push-agent:u1"
    c = factory.push.user_agent_conversation_stats("u1", "someone-else")
    assert (c.conversation_id, c.queued_messages) == (None, 0)


async def test_async_face(async_factory: AsyncFactory) -> None:
    await async_factory.agents.upsert_agent("push-agent")
    await async_factory.identity.bind("u1", "push-agent", metadata={"companyId": "co-1"})
    job = await async_factory.push.create_job("co-1", "u1", "T", "Ping", "UTC", Schedule.daily("08:00"), now_ms=BASE)
    assert await async_factory.push.next_run_at(Schedule.daily("08:00"), "UTC", BASE) == SLOT
    report = await async_factory.push.dispatch_due_push_jobs(now_ms=SLOT)
    assert report.enqueued == 1
    assert [d.status for d in await async_factory.push.list_dispatches(job.job_id)] == ["enqueued"]
    r = await async_factory.push.send_broadcast("co-1", "Hi", "all", "admin")
    assert r.enqueued == 1
    stats = await async_factory.push.user_agent_push_stats("u1", "push-agent")
    assert stats.total_dispatches == 1


def test_results_are_frozen_and_printable(factory: Factory) -> None:
    setup_user(factory)
    job = daily_job(factory)
    with pytest.raises(AttributeError):
        job.title = "x"  # type: ignore[misc]
    assert "PushJob(" in repr(job)
    assert job.to_dict()["schedule"]["time"] == "08:00"
    assert "<table>" in job._repr_html_()
