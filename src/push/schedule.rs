//! Push schedules: `manual`, `daily HH:mm`, `weekly weekday HH:mm`, `monthly
//! day|last HH:mm`, in an IANA time zone (chrono-tz's copy of the tz database).
//!
//! Invariants of [`next_run_at`]:
//! - the result is the first slot strictly after `after_ms` (the original's
//!   `+1 000 ms` start is not kept: slots fall on whole minutes, so its only
//!   effect was to skip a slot starting less than a second after the call);
//! - every local slot (day, week, month) maps to exactly one instant, and later
//!   slots map to later-or-equal instants, so iterating `next_run_at` from its
//!   own result never yields an instant twice and never skips a slot;
//! - a local time that does not exist (spring-forward gap) runs once, at the
//!   first instant after the gap (Europe/Rome 2026-03-29 02:30 → 03:00 CEST);
//! - a local time that exists twice (fall-back overlap) runs once, at its first
//!   occurrence (the earlier instant);
//! - a monthly day past the month's end runs on the month's last day.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Latest instant a schedule is computed from or to: 9999-12-31T23:59:59.999Z.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;
/// Days scanned for a daily or weekly slot before giving up.
const MAX_DAYS: u64 = 400;
/// Months scanned for a monthly slot before giving up.
const MAX_MONTHS: i64 = 48;
/// Longest value echoed back in an error message.
const SHOWN_CHARS: usize = 80;

/// `value`, cut to a length fit for an error message.
pub(crate) fn shown(value: &str) -> String {
    if value.chars().count() <= SHOWN_CHARS {
        value.to_string()
    } else {
        let head: String = value.chars().take(SHOWN_CHARS).collect();
        format!("{head}…")
    }
}

/// How often a push template or job runs; a schedule's `kind` must equal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Periodicity {
    /// Only when triggered.
    Manual,
    /// Every day at a local time.
    Daily,
    /// Every week on a weekday at a local time.
    Weekly,
    /// Every month on a day (or the last day) at a local time.
    Monthly,
}

impl Periodicity {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Periodicity::Manual => "manual",
            Periodicity::Daily => "daily",
            Periodicity::Weekly => "weekly",
            Periodicity::Monthly => "monthly",
        }
    }

    /// Parse a user-given or stored name.
    pub fn parse(value: &str) -> Result<Periodicity> {
        match value {
            "manual" => Ok(Periodicity::Manual),
            "daily" => Ok(Periodicity::Daily),
            "weekly" => Ok(Periodicity::Weekly),
            "monthly" => Ok(Periodicity::Monthly),
            other => Err(Error::validation(format!(
                "periodicity '{}' must be one of manual, daily, weekly, monthly",
                shown(other)
            ))),
        }
    }
}

/// A local wall-clock time `HH:mm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotTime {
    hour: u32,
    minute: u32,
}

impl SlotTime {
    /// Parse `HH:mm` (surrounding blanks trimmed; 00:00..23:59, two digits each).
    pub fn parse(value: &str) -> Result<SlotTime> {
        let bad = || Error::validation(format!("Invalid time '{}', expected HH:mm", shown(value)));
        let t = value.trim().as_bytes();
        if t.len() != 5
            || t[2] != b':'
            || !t
                .iter()
                .enumerate()
                .all(|(i, b)| i == 2 || b.is_ascii_digit())
        {
            return Err(bad());
        }
        let hour = u32::from(t[0] - b'0') * 10 + u32::from(t[1] - b'0');
        let minute = u32::from(t[3] - b'0') * 10 + u32::from(t[4] - b'0');
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(SlotTime { hour, minute })
    }

    /// The time as `HH:mm`.
    pub fn format(self) -> String {
        format!("{:02}:{:02}", self.hour, self.minute)
    }

    fn naive(self) -> NaiveTime {
        NaiveTime::from_hms_opt(self.hour, self.minute, 0).unwrap_or(NaiveTime::MIN)
    }
}

impl Serialize for SlotTime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.format())
    }
}

/// The day of a monthly slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayOfMonth {
    /// 1..=31; past the month's end it clamps to the last day.
    Day(u32),
    /// The month's last day.
    Last,
}

impl Serialize for DayOfMonth {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            DayOfMonth::Day(d) => s.serialize_u32(*d),
            DayOfMonth::Last => s.serialize_str("last"),
        }
    }
}

/// When a push runs. Serialized as `{"kind": ..., "time": "HH:mm", "weekday": 1..7,
/// "day_of_month": 1..31 | "last"}` (only the kind's fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// Only when triggered.
    Manual,
    /// Every day at `time`.
    Daily {
        /// Local time.
        time: SlotTime,
    },
    /// Every week on `weekday` (1 = Monday … 7 = Sunday) at `time`.
    Weekly {
        /// ISO weekday.
        weekday: u32,
        /// Local time.
        time: SlotTime,
    },
    /// Every month on `day_of_month` at `time`.
    Monthly {
        /// Day, or the last day.
        day_of_month: DayOfMonth,
        /// Local time.
        time: SlotTime,
    },
}

fn weekday_of(v: Option<&Value>) -> Result<u32> {
    v.and_then(Value::as_u64)
        .filter(|d| (1..=7).contains(d))
        .map(|d| d as u32)
        .ok_or_else(|| Error::validation("Weekly schedule weekday must be in range 1..7"))
}

fn day_of_month_of(v: Option<&Value>) -> Result<DayOfMonth> {
    match v {
        Some(Value::String(s)) if s == "last" => Ok(DayOfMonth::Last),
        Some(n) => n
            .as_u64()
            .filter(|d| (1..=31).contains(d))
            .map(|d| DayOfMonth::Day(d as u32))
            .ok_or_else(|| {
                Error::validation("Monthly schedule dayOfMonth must be 1..31 or 'last'")
            }),
        None => Err(Error::validation(
            "Monthly schedule dayOfMonth must be 1..31 or 'last'",
        )),
    }
}

fn time_of(field: &str, v: Option<&Value>) -> Result<SlotTime> {
    match v {
        Some(Value::String(s)) => SlotTime::parse(s),
        Some(other) => Err(Error::validation(format!(
            "Invalid time '{}', expected HH:mm",
            shown(&other.to_string())
        ))),
        None => Err(Error::validation(format!(
            "{field}.time is required, expected HH:mm"
        ))),
    }
}

impl Schedule {
    /// The schedule's kind as a periodicity.
    pub fn periodicity(&self) -> Periodicity {
        match self {
            Schedule::Manual => Periodicity::Manual,
            Schedule::Daily { .. } => Periodicity::Daily,
            Schedule::Weekly { .. } => Periodicity::Weekly,
            Schedule::Monthly { .. } => Periodicity::Monthly,
        }
    }

    /// Parse a schedule object (`field` names it in errors). Keys: `kind`, and per
    /// kind `time`, `weekday`, `day_of_month` (alias `dayOfMonth`); unknown keys
    /// are rejected, so a typo never silently falls back to a default.
    pub fn from_json(field: &str, value: &Value) -> Result<Schedule> {
        let obj: &Map<String, Value> = value.as_object().ok_or_else(|| {
            Error::validation(format!(
                "{field} must be a dict with a 'kind' (manual, daily, weekly or monthly)"
            ))
        })?;
        let kind = match obj.get("kind") {
            Some(Value::String(k)) => Periodicity::parse(k).map_err(|_| {
                Error::validation(format!(
                    "{field}.kind '{}' must be one of manual, daily, weekly, monthly",
                    shown(k)
                ))
            })?,
            _ => {
                return Err(Error::validation(format!(
                    "{field}.kind is required: one of manual, daily, weekly, monthly"
                )))
            }
        };
        let allowed: &[&str] = match kind {
            Periodicity::Manual => &["kind"],
            Periodicity::Daily => &["kind", "time"],
            Periodicity::Weekly => &["kind", "time", "weekday"],
            Periodicity::Monthly => &["kind", "time", "day_of_month", "dayOfMonth"],
        };
        if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::validation(format!(
                "{field} has unknown key '{}' for a {} schedule",
                shown(extra),
                kind.as_str()
            )));
        }
        Ok(match kind {
            Periodicity::Manual => Schedule::Manual,
            Periodicity::Daily => Schedule::Daily {
                time: time_of(field, obj.get("time"))?,
            },
            Periodicity::Weekly => Schedule::Weekly {
                weekday: weekday_of(obj.get("weekday"))?,
                time: time_of(field, obj.get("time"))?,
            },
            Periodicity::Monthly => {
                if obj.contains_key("day_of_month") && obj.contains_key("dayOfMonth") {
                    return Err(Error::validation(format!(
                        "{field} gives both day_of_month and dayOfMonth"
                    )));
                }
                Schedule::Monthly {
                    day_of_month: day_of_month_of(
                        obj.get("day_of_month").or_else(|| obj.get("dayOfMonth")),
                    )?,
                    time: time_of(field, obj.get("time"))?,
                }
            }
        })
    }

    /// Parse a list of schedule objects; an error names the entry (`field[i]`).
    pub fn list_from_json(field: &str, value: &Value) -> Result<Vec<Schedule>> {
        let items = value.as_array().ok_or_else(|| {
            Error::validation(format!("{field} must be a list of schedule dicts"))
        })?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let place = format!("{field}[{i}]");
                Schedule::from_json(&place, v).map_err(|e| {
                    if e.to_string().starts_with(&place) {
                        e
                    } else {
                        e.with_context(&place)
                    }
                })
            })
            .collect()
    }

    /// The stored JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"kind\":\"manual\"}".into())
    }

    /// Read a stored schedule (a corrupt one is a storage error).
    pub(crate) fn from_stored(raw: &str) -> Result<Schedule> {
        let value: Value = serde_json::from_str(raw)?;
        Schedule::from_json("schedule", &value)
            .map_err(|e| Error::storage(format!("stored push schedule is invalid: {e}")))
    }
}

/// Check that a schedule's kind equals `periodicity`.
pub fn check_kind(periodicity: Periodicity, schedule: &Schedule) -> Result<()> {
    if schedule.periodicity() == periodicity {
        Ok(())
    } else {
        Err(Error::validation("Schedule kind must match periodicity"))
    }
}

/// Parse an IANA time zone (case-insensitive; the canonical spelling is kept).
pub fn parse_timezone(value: &str) -> Result<Tz> {
    let name = value.trim();
    if name.is_empty() {
        return Err(Error::validation("Timezone is required"));
    }
    name.parse::<Tz>()
        .or_else(|_| Tz::from_str_insensitive(name))
        .map_err(|_| Error::validation(format!("Invalid timezone '{}'", shown(value))))
}

/// Check an instant a schedule is computed from.
pub fn check_instant(field: &str, ms: i64) -> Result<()> {
    if (0..=MAX_TIME_MS).contains(&ms) {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{field} must be within 0..={MAX_TIME_MS} (year 9999), got {ms}"
        )))
    }
}

fn instant(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::validation(format!("instant {ms} is out of range")))
}

/// Local wall time at `ms`.
fn local_at(tz: Tz, ms: i64) -> Result<NaiveDateTime> {
    Ok(instant(ms)?.with_timezone(&tz).naive_local())
}

/// The instant a local wall time runs at: itself when it exists once, the
/// earlier instant when it exists twice, the end of the gap when it does not exist.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> Result<i64> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(dt) => Ok(dt.timestamp_millis()),
        chrono::LocalResult::Ambiguous(a, b) => Ok(a.timestamp_millis().min(b.timestamp_millis())),
        chrono::LocalResult::None => gap_end(tz, local),
    }
}

/// First instant whose local wall time is later than `local` (which lies in a
/// gap): the transition that skipped it. Offsets are within ±26 h, so the local
/// time is before `local` at `base − 27 h` and after it at `base + 27 h`; in
/// between it only jumps forward at the gap, so bisection finds the transition.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Result<i64> {
    const SPAN: i64 = 27 * 3_600_000;
    let base = local.and_utc().timestamp_millis();
    let (mut lo, mut hi) = (base - SPAN, base + SPAN);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_at(tz, mid)? > local {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

/// The first slot of `schedule` in `tz` strictly after `after_ms`; `None` for a
/// manual schedule. See the module header for the DST rules.
pub fn next_run_at(schedule: &Schedule, tz: Tz, after_ms: i64) -> Result<Option<i64>> {
    check_instant("afterMs", after_ms)?;
    // One local day earlier than `after`: a slot of the previous local date can
    // land after midnight when a gap spans midnight.
    let start = local_at(tz, after_ms)?
        .date()
        .checked_sub_days(Days::new(1))
        .ok_or_else(|| Error::validation(format!("afterMs {after_ms} is out of range")))?;
    let found = match *schedule {
        Schedule::Manual => return Ok(None),
        Schedule::Daily { time } => scan_days(tz, start, time, after_ms, |_| true)?,
        Schedule::Weekly { weekday, time } => scan_days(tz, start, time, after_ms, |d| {
            d.weekday().number_from_monday() == weekday
        })?,
        Schedule::Monthly { day_of_month, time } => {
            scan_months(tz, start, day_of_month, time, after_ms)?
        }
    };
    let at = found.ok_or_else(|| {
        Error::invalid_state(format!(
            "Unable to compute next {} run",
            schedule.periodicity().as_str()
        ))
    })?;
    check_instant("next run", at)?;
    Ok(Some(at))
}

fn scan_days(
    tz: Tz,
    start: NaiveDate,
    time: SlotTime,
    after_ms: i64,
    matches: impl Fn(NaiveDate) -> bool,
) -> Result<Option<i64>> {
    for i in 0..MAX_DAYS {
        let Some(day) = start.checked_add_days(Days::new(i)) else {
            break;
        };
        if matches(day) {
            let at = resolve_local(tz, day.and_time(time.naive()))?;
            if at > after_ms {
                return Ok(Some(at));
            }
        }
    }
    Ok(None)
}

fn scan_months(
    tz: Tz,
    start: NaiveDate,
    day_of_month: DayOfMonth,
    time: SlotTime,
    after_ms: i64,
) -> Result<Option<i64>> {
    let first = i64::from(start.year()) * 12 + i64::from(start.month0());
    for k in 0..MAX_MONTHS {
        let index = first + k;
        let (Ok(year), Ok(month)) = (
            i32::try_from(index.div_euclid(12)),
            u32::try_from(index.rem_euclid(12) + 1),
        ) else {
            break;
        };
        let last = last_day_of_month(year, month);
        let day = match day_of_month {
            DayOfMonth::Day(d) => d.min(last),
            DayOfMonth::Last => last,
        };
        let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else {
            break;
        };
        let at = resolve_local(tz, date.and_time(time.naive()))?;
        if at > after_ms {
            return Ok(Some(at));
        }
    }
    Ok(None)
}
