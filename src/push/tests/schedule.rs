//! Schedules: parsing with the spec's error texts, time zones, DST gaps and
//! overlaps, month ends, leap years, and iteration that never repeats or skips.

use chrono::{Datelike, NaiveDate, TimeZone, Timelike, Utc};
use serde_json::json;

use crate::error::Error;
use crate::push::schedule::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

fn sched(v: serde_json::Value) -> Schedule {
    Schedule::from_json("schedule", &v).unwrap()
}

fn err(v: serde_json::Value) -> String {
    match Schedule::from_json("schedule", &v).unwrap_err() {
        Error::Validation(m) => m,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn next(s: &Schedule, tz: &str, after: i64) -> i64 {
    next_run_at(s, parse_timezone(tz).unwrap(), after)
        .unwrap()
        .unwrap()
}

#[test]
fn parsing_uses_the_spec_texts() {
    assert_eq!(
        err(json!({"kind": "daily", "time": "24:00"})),
        "Invalid time '24:00', expected HH:mm"
    );
    assert_eq!(
        err(json!({"kind": "daily", "time": "9:00"})),
        "Invalid time '9:00', expected HH:mm"
    );
    assert_eq!(
        err(json!({"kind": "weekly", "weekday": 0, "time": "09:00"})),
        "Weekly schedule weekday must be in range 1..7"
    );
    assert_eq!(
        err(json!({"kind": "weekly", "weekday": 1.5, "time": "09:00"})),
        "Weekly schedule weekday must be in range 1..7"
    );
    assert_eq!(
        err(json!({"kind": "monthly", "dayOfMonth": 32, "time": "09:00"})),
        "Monthly schedule dayOfMonth must be 1..31 or 'last'"
    );
    assert_eq!(
        err(json!({"kind": "monthly", "day_of_month": "first", "time": "09:00"})),
        "Monthly schedule dayOfMonth must be 1..31 or 'last'"
    );
    assert!(err(json!({"kind": "hourly"})).starts_with("schedule.kind 'hourly' must be one of"));
    assert!(err(json!({"kind": "daily"})).starts_with("schedule.time is required"));
    assert!(err(json!({"kind": "daily", "time": "08:00", "tz": "x"})).contains("unknown key 'tz'"));
    assert!(err(json!("daily")).starts_with("schedule must be a dict"));
    assert_eq!(
        sched(json!({"kind": "daily", "time": " 08:05 "})),
        sched(json!({"kind": "daily", "time": "08:05"}))
    );
    assert_eq!(
        check_kind(
            Periodicity::Weekly,
            &sched(json!({"kind": "daily", "time": "08:00"}))
        )
        .unwrap_err()
        .to_string(),
        "Schedule kind must match periodicity"
    );
}

#[test]
fn schedules_round_trip_through_their_stored_form() {
    for v in [
        json!({"kind": "manual"}),
        json!({"kind": "daily", "time": "23:59"}),
        json!({"kind": "weekly", "weekday": 7, "time": "00:00"}),
        json!({"kind": "monthly", "day_of_month": "last", "time": "12:30"}),
        json!({"kind": "monthly", "day_of_month": 31, "time": "12:30"}),
    ] {
        let s = sched(v.clone());
        assert_eq!(serde_json::to_value(s).unwrap(), v);
        assert_eq!(Schedule::from_stored(&s.to_json()).unwrap(), s);
    }
}

#[test]
fn time_zones_are_validated_and_canonicalised() {
    assert_eq!(
        parse_timezone(" ").unwrap_err().to_string(),
        "Timezone is required"
    );
    assert_eq!(
        parse_timezone("Mars/Olympus").unwrap_err().to_string(),
        "Invalid timezone 'Mars/Olympus'"
    );
    assert_eq!(parse_timezone("europe/rome").unwrap().name(), "Europe/Rome");
    assert_eq!(parse_timezone("UTC").unwrap().name(), "UTC");
}

#[test]
fn manual_has_no_slot_and_instants_are_bounded() {
    let tz = parse_timezone("UTC").unwrap();
    assert_eq!(next_run_at(&Schedule::Manual, tz, 0).unwrap(), None);
    let daily = sched(json!({"kind": "daily", "time": "08:00"}));
    assert!(matches!(
        next_run_at(&daily, tz, -1),
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        next_run_at(&daily, tz, i64::MAX),
        Err(Error::Validation(_))
    ));
}

#[test]
fn daily_is_strictly_after() {
    let s = sched(json!({"kind": "daily", "time": "08:00"}));
    let at8 = utc(2026, 1, 1, 8, 0);
    assert_eq!(next(&s, "UTC", at8 - 60_000), at8);
    assert_eq!(next(&s, "UTC", at8 - 1), at8, "no +1 s start offset");
    assert_eq!(next(&s, "UTC", at8), at8 + 86_400_000);
    // 08:00 in Rome (CET, +1) is 07:00 UTC.
    assert_eq!(
        next(&s, "Europe/Rome", utc(2026, 1, 1, 0, 0)),
        utc(2026, 1, 1, 7, 0)
    );
}

#[test]
fn rome_spring_forward_gap_runs_once_at_the_transition() {
    let s = sched(json!({"kind": "daily", "time": "02:30"}));
    // 2026-03-29 02:00 CET → 03:00 CEST (01:00 UTC). 02:30 does not exist.
    let first = next(&s, "Europe/Rome", utc(2026, 3, 28, 12, 0));
    assert_eq!(first, utc(2026, 3, 29, 1, 0));
    let second = next(&s, "Europe/Rome", first);
    assert_eq!(second, utc(2026, 3, 30, 0, 30));
    // The day before ran at 02:30 CET = 01:30 UTC.
    assert_eq!(
        next(&s, "Europe/Rome", utc(2026, 3, 27, 12, 0)),
        utc(2026, 3, 28, 1, 30)
    );
}

#[test]
fn rome_fall_back_overlap_runs_once_at_the_first_occurrence() {
    let s = sched(json!({"kind": "daily", "time": "02:30"}));
    // 2026-10-25 03:00 CEST → 02:00 CET: 02:30 happens at 00:30 UTC and 01:30 UTC.
    let first = next(&s, "Europe/Rome", utc(2026, 10, 24, 12, 0));
    assert_eq!(first, utc(2026, 10, 25, 0, 30));
    let second = next(&s, "Europe/Rome", first);
    assert_eq!(
        second,
        utc(2026, 10, 26, 1, 30),
        "the second 02:30 is not a new slot"
    );
}

#[test]
fn new_york_both_directions() {
    let s = sched(json!({"kind": "daily", "time": "02:30"}));
    // 2026-03-08 02:00 EST → 03:00 EDT at 07:00 UTC.
    assert_eq!(
        next(&s, "America/New_York", utc(2026, 3, 7, 12, 0)),
        utc(2026, 3, 8, 7, 0)
    );
    let early = sched(json!({"kind": "daily", "time": "01:30"}));
    // 2026-11-01 02:00 EDT → 01:00 EST: 01:30 EDT = 05:30 UTC first.
    let first = next(&early, "America/New_York", utc(2026, 10, 31, 12, 0));
    assert_eq!(first, utc(2026, 11, 1, 5, 30));
    assert_eq!(
        next(&early, "America/New_York", first),
        utc(2026, 11, 2, 6, 30)
    );
}

#[test]
fn weekly_across_dst_keeps_the_local_time() {
    // Sundays at 09:00 in Rome: CET before 2026-03-29, CEST from it.
    let s = sched(json!({"kind": "weekly", "weekday": 7, "time": "09:00"}));
    let a = next(&s, "Europe/Rome", utc(2026, 3, 20, 0, 0));
    assert_eq!(a, utc(2026, 3, 22, 8, 0));
    let b = next(&s, "Europe/Rome", a);
    assert_eq!(b, utc(2026, 3, 29, 7, 0));
    assert_eq!(b - a, 7 * 86_400_000 - 3_600_000);
    // Sunday 02:30 on the transition day runs at 03:00 CEST.
    let gap = sched(json!({"kind": "weekly", "weekday": 7, "time": "02:30"}));
    assert_eq!(
        next(&gap, "Europe/Rome", utc(2026, 3, 23, 0, 0)),
        utc(2026, 3, 29, 1, 0)
    );
    // Monday = 1.
    let monday = sched(json!({"kind": "weekly", "weekday": 1, "time": "00:00"}));
    assert_eq!(
        next(&monday, "UTC", utc(2026, 1, 1, 0, 0)),
        utc(2026, 1, 5, 0, 0)
    );
}

#[test]
fn monthly_clamps_to_month_ends_and_knows_leap_years() {
    let d31 = sched(json!({"kind": "monthly", "day_of_month": 31, "time": "10:00"}));
    assert_eq!(
        next(&d31, "UTC", utc(2026, 4, 1, 0, 0)),
        utc(2026, 4, 30, 10, 0)
    );
    assert_eq!(
        next(&d31, "UTC", utc(2027, 2, 1, 0, 0)),
        utc(2027, 2, 28, 10, 0)
    );
    assert_eq!(
        next(&d31, "UTC", utc(2028, 2, 1, 0, 0)),
        utc(2028, 2, 29, 10, 0)
    );
    let d29 = sched(json!({"kind": "monthly", "dayOfMonth": 29, "time": "10:00"}));
    assert_eq!(
        next(&d29, "UTC", utc(2027, 2, 1, 0, 0)),
        utc(2027, 2, 28, 10, 0)
    );
    assert_eq!(
        next(&d29, "UTC", utc(2028, 2, 1, 0, 0)),
        utc(2028, 2, 29, 10, 0)
    );
    let last = sched(json!({"kind": "monthly", "day_of_month": "last", "time": "23:59"}));
    assert_eq!(
        next(&last, "UTC", utc(2026, 12, 31, 23, 59)),
        utc(2027, 1, 31, 23, 59)
    );
    assert_eq!(
        next(&last, "UTC", utc(2028, 2, 2, 0, 0)),
        utc(2028, 2, 29, 23, 59)
    );
    // The 31st of a 31-day month after the slot went by: next month's end.
    assert_eq!(
        next(&d31, "UTC", utc(2026, 1, 31, 10, 0)),
        utc(2026, 2, 28, 10, 0)
    );
    // Monthly in a DST gap: 2026-03-29 02:30 Rome.
    let gap = sched(json!({"kind": "monthly", "day_of_month": 29, "time": "02:30"}));
    assert_eq!(
        next(&gap, "Europe/Rome", utc(2026, 3, 1, 0, 0)),
        utc(2026, 3, 29, 1, 0)
    );
}

#[test]
fn a_whole_skipped_day_runs_once_after_the_gap() {
    // Pacific/Apia skipped 2011-12-30 entirely (23:59:59 on the 29th → 00:00 on the 31st).
    let s = sched(json!({"kind": "daily", "time": "08:00"}));
    let tz = "Pacific/Apia";
    let d29 = next(&s, tz, utc(2011, 12, 28, 20, 0));
    let d30 = next(&s, tz, d29);
    let d31 = next(&s, tz, d30);
    let z = parse_timezone(tz).unwrap();
    let local = |ms: i64| z.timestamp_millis_opt(ms).unwrap().naive_local();
    assert_eq!(
        local(d29).date(),
        NaiveDate::from_ymd_opt(2011, 12, 29).unwrap()
    );
    // The 30th's slot runs at the first instant after the gap: 00:00 on the 31st.
    assert_eq!((local(d30).day(), local(d30).hour()), (31, 0));
    assert_eq!((local(d31).day(), local(d31).hour()), (31, 8));
}

/// Iterating never yields a slot twice and never skips a local day, week or month.
#[test]
fn iteration_never_repeats_or_skips_a_slot() {
    let cases = [
        (
            json!({"kind": "daily", "time": "02:30"}),
            "Europe/Rome",
            1_i64,
        ),
        (
            json!({"kind": "daily", "time": "01:30"}),
            "America/New_York",
            1,
        ),
        (
            json!({"kind": "daily", "time": "02:00"}),
            "Australia/Lord_Howe",
            1,
        ),
        (
            json!({"kind": "weekly", "weekday": 7, "time": "02:30"}),
            "Europe/Rome",
            7,
        ),
        (
            json!({"kind": "weekly", "weekday": 7, "time": "01:30"}),
            "America/New_York",
            7,
        ),
    ];
    for (v, tz_name, step) in cases {
        let s = sched(v);
        let tz = parse_timezone(tz_name).unwrap();
        let mut at = utc(2025, 12, 31, 0, 0);
        let mut prev_date: Option<NaiveDate> = None;
        for _ in 0..(800 / step) {
            let n = next_run_at(&s, tz, at).unwrap().unwrap();
            assert!(n > at, "{tz_name}: not strictly after");
            let local = tz.timestamp_millis_opt(n).unwrap().naive_local();
            if let Some(p) = prev_date {
                assert_eq!(
                    (local.date() - p).num_days(),
                    step,
                    "{tz_name}: skipped or repeated at {local}"
                );
            }
            prev_date = Some(local.date());
            at = n;
        }
    }
    let s = sched(json!({"kind": "monthly", "day_of_month": 31, "time": "02:30"}));
    let tz = parse_timezone("Europe/Rome").unwrap();
    let mut at = utc(2025, 12, 31, 0, 0);
    let mut months = Vec::new();
    for _ in 0..60 {
        at = next_run_at(&s, tz, at).unwrap().unwrap();
        let d = tz.timestamp_millis_opt(at).unwrap().naive_local().date();
        months.push(d.year() * 12 + d.month0() as i32);
    }
    assert!(months.windows(2).all(|w| w[1] == w[0] + 1));
}
