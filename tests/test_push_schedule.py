"""Push schedules through ``factory.push.next_run_at``: DST in both directions,
month ends, leap years, and a property test against Python's own ``zoneinfo``.

The property: iterating ``next_run_at`` from its own result yields exactly one
instant per local slot (day, week or month), in order, never the same instant
twice, never skipping a slot; each instant is the slot's wall time in the zone
(the earlier one when the wall time happens twice), or, when the wall time does
not exist, the first instant after the gap. ``zoneinfo`` (the system tz database)
is an implementation independent of the Rust core's chrono-tz.
"""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_factory import Factory, Schedule, ValidationError

try:
    ZoneInfo("Europe/Rome")
except ZoneInfoNotFoundError:  # the oracle needs a tz database (system tzdata or the `tzdata` package)
    pytestmark = pytest.mark.skip(reason="no IANA time-zone database for zoneinfo on this machine")

ZONES = [
    "UTC",
    "Europe/Rome",
    "Europe/London",
    "Europe/Dublin",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Havana",
    "Africa/Cairo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Asia/Kathmandu",
]
START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
END = int(datetime(2030, 12, 31, tzinfo=UTC).timestamp() * 1000)


def utc_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def local(ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).replace(tzinfo=None)


@pytest.fixture(scope="module")
def push() -> object:
    return Factory(":memory:").push


# ---------------------------------------------------------------------------------------
# examples
# ---------------------------------------------------------------------------------------


def test_rome_spring_gap_runs_once_at_three_cest(push) -> None:
    s = Schedule.daily("02:30")
    first = push.next_run_at(s, "Europe/Rome", utc_ms(2026, 3, 28, 12, 0))
    assert first == utc_ms(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert local(first, "Europe/Rome") == datetime(2026, 3, 29, 3, 0)
    assert push.next_run_at(s, "Europe/Rome", first) == utc_ms(2026, 3, 30, 0, 30)


def test_rome_fall_back_runs_once_at_the_first_occurrence(push) -> None:
    s = {"kind": "daily", "time": "02:30"}
    first = push.next_run_at(s, "Europe/Rome", utc_ms(2026, 10, 24, 12, 0))
    assert first == utc_ms(2026, 10, 25, 0, 30)  # 02:30 CEST, not 02:30 CET
    assert push.next_run_at(s, "Europe/Rome", first) == utc_ms(2026, 10, 26, 1, 30)


def test_new_york_both_directions(push) -> None:
    assert push.next_run_at(Schedule.daily("02:15"), "America/New_York", utc_ms(2026, 3, 7, 12)) == utc_ms(
        2026, 3, 8, 7, 0
    )
    first = push.next_run_at(Schedule.daily("01:30"), "America/New_York", utc_ms(2026, 10, 31, 12))
    assert first == utc_ms(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert push.next_run_at(Schedule.daily("01:30"), "America/New_York", first) == utc_ms(2026, 11, 2, 6, 30)


def test_weekly_across_dst(push) -> None:
    s = Schedule.weekly(7, "09:00")  # Sundays
    a = push.next_run_at(s, "America/New_York", utc_ms(2026, 3, 2))
    b = push.next_run_at(s, "America/New_York", a)
    assert local(a, "America/New_York") == datetime(2026, 3, 8, 9, 0)
    assert local(b, "America/New_York") == datetime(2026, 3, 15, 9, 0)
    assert b - a == 7 * 86_400_000


@pytest.mark.parametrize(
    ("day", "after", "expected"),
    [
        (31, (2026, 4, 1), (2026, 4, 30)),
        (31, (2027, 2, 1), (2027, 2, 28)),
        (31, (2028, 2, 1), (2028, 2, 29)),
        (29, (2027, 2, 1), (2027, 2, 28)),
        (29, (2028, 2, 1), (2028, 2, 29)),
        ("last", (2028, 2, 1), (2028, 2, 29)),
        ("last", (2026, 12, 31, 23, 59), (2027, 1, 31)),
        (30, (2026, 1, 31), (2026, 2, 28)),
    ],
)
def test_month_ends_and_leap_years(push, day, after, expected) -> None:
    got = push.next_run_at(Schedule.monthly(day, "23:59"), "UTC", utc_ms(*after))
    assert got == utc_ms(*expected, 23, 59)


def test_manual_has_no_slot(push) -> None:
    assert push.next_run_at(Schedule.manual(), "UTC", 0) is None


def test_spec_error_texts(push) -> None:
    cases = [
        ({"kind": "daily", "time": "24:00"}, "UTC", "Invalid time '24:00', expected HH:mm"),
        ({"kind": "weekly", "weekday": 8, "time": "10:00"}, "UTC", "Weekly schedule weekday must be in range 1..7"),
        (
            {"kind": "monthly", "dayOfMonth": 0, "time": "10:00"},
            "UTC",
            "Monthly schedule dayOfMonth must be 1..31 or 'last'",
        ),
        ({"kind": "daily", "time": "10:00"}, "  ", "Timezone is required"),
        ({"kind": "daily", "time": "10:00"}, "Moon/Base", "Invalid timezone 'Moon/Base'"),
    ]
    for schedule, tz, text in cases:
        with pytest.raises(ValidationError) as e:
            push.next_run_at(schedule, tz, 0)
        assert str(e.value) == text


# ---------------------------------------------------------------------------------------
# property: one instant per local slot, in order (oracle: zoneinfo)
# ---------------------------------------------------------------------------------------


def slot_instant(d: date, hh: int, mm: int, tz: str) -> int:
    """The instant a slot on local date ``d`` must run at, by ``zoneinfo``."""
    zone = ZoneInfo(tz)
    naive = datetime(d.year, d.month, d.day, hh, mm)
    fold0 = naive.replace(tzinfo=zone)
    fold1 = naive.replace(tzinfo=zone, fold=1)
    exists = fold0.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive
    if exists:
        return int(min(fold0.timestamp(), fold1.timestamp()) * 1000)
    # In a gap: the transition lies between the two readings; find it by the
    # defining property (wall time before it < naive < wall time at it).
    lo, hi = int(min(fold0.timestamp(), fold1.timestamp()) * 1000), int(
        max(fold0.timestamp(), fold1.timestamp()) * 1000
    )
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if local(mid, tz) > naive:
            hi = mid
        else:
            lo = mid
    return hi


def slot_dates(schedule: Schedule, first: date) -> list[date]:
    """The local dates of the slots from ``first`` (a slot date) on."""
    out = [first]
    for _ in range(25):
        d = out[-1]
        if schedule.kind == "daily":
            out.append(d + timedelta(days=1))
        elif schedule.kind == "weekly":
            out.append(d + timedelta(days=7))
        else:
            y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
            last = calendar.monthrange(y, m)[1]
            dom = schedule.day_of_month
            out.append(date(y, m, last if dom == "last" else min(int(dom), last)))  # type: ignore[arg-type]
    return out


def previous_slot_date(schedule: Schedule, d: date) -> date:
    if schedule.kind == "daily":
        return d - timedelta(days=1)
    if schedule.kind == "weekly":
        return d - timedelta(days=7)
    y, m = (d.year - 1, 12) if d.month == 1 else (d.year, d.month - 1)
    last = calendar.monthrange(y, m)[1]
    dom = schedule.day_of_month
    return date(y, m, last if dom == "last" else min(int(dom), last))  # type: ignore[arg-type]


times = st.builds(
    lambda h, m: f"{h:02d}:{m:02d}",
    st.one_of(st.integers(0, 3), st.integers(0, 23)),
    st.sampled_from([0, 15, 30, 45, 59]) | st.integers(0, 59),
)
schedules = st.one_of(
    st.builds(Schedule.daily, times),
    st.builds(Schedule.weekly, st.integers(1, 7), times),
    st.builds(Schedule.monthly, st.one_of(st.integers(1, 31), st.just("last"), st.integers(28, 31)), times),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=schedules, tz=st.sampled_from(ZONES), after=st.integers(START, END))
def test_iteration_yields_each_local_slot_once_in_order(push, schedule: Schedule, tz: str, after: int) -> None:
    hh, mm = (int(x) for x in schedule.time.split(":"))  # type: ignore[union-attr]
    got: list[int] = []
    at = after
    for _ in range(12):
        at = push.next_run_at(schedule, tz, at)
        got.append(at)
    assert all(b > a for a, b in itertools.pairwise(got)), "an instant repeated or went back"
    assert got[0] > after
    first_date = local(got[0], tz).date()
    expected = [slot_instant(d, hh, mm, tz) for d in slot_dates(schedule, first_date)[: len(got)]]
    assert got == expected, f"{schedule} in {tz}: slots skipped or misplaced"
    # No slot between `after` and the first one was skipped.
    assert slot_instant(previous_slot_date(schedule, first_date), hh, mm, tz) <= after


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tz=st.one_of(st.sampled_from(ZONES), st.text(max_size=40)),
    schedule=st.one_of(
        schedules.map(Schedule.to_dict),
        st.dictionaries(
            st.sampled_from(["kind", "time", "weekday", "day_of_month", "dayOfMonth", "extra"]),
            st.one_of(st.text(max_size=8), st.integers(-5, 40), st.none(), st.booleans()),
            max_size=4,
        ),
    ),
    after=st.integers(-10, 2**62),
)
def test_any_input_gives_a_slot_or_a_validation_error(push, tz, schedule, after) -> None:
    try:
        got = push.next_run_at(schedule, tz, after)
    except ValidationError as e:
        assert str(e)
        return
    assert got is None or got > after
