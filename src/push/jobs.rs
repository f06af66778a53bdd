//! Push jobs: one user's push text on a schedule in an IANA time zone.
//!
//! Invariants: a job's periodicity equals its schedule's kind; `next_run_at` is
//! the first slot strictly after the time the schedule, time zone or enabled
//! flag last changed (or after the last dispatch), and is `None` exactly when the
//! job is disabled or manual; editing only the title or text keeps a pending
//! slot; `agent_key` set means the job belongs to that agent of the user (the
//! `agent_key=` arguments check it: a mismatch behaves like a missing job).

use chrono_tz::Tz;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::schedule::{self, check_kind, parse_timezone, Periodicity, Schedule};
use super::{
    column_error, new_id, validate_company_id, validate_id, validate_title_text, validate_user_id,
};
use crate::agents::validate_agent_key;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::identity::target::active_target;
use crate::store::Tx;

/// A push job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushJob {
    /// Id.
    pub job_id: String,
    /// Company of the user.
    pub company_id: String,
    /// Recipient.
    pub consumer_user_id: String,
    /// The user's agent it is sent through (adopted at the first run when unset).
    pub agent_key: Option<String>,
    /// Template it was created from.
    pub source_template_id: Option<String>,
    /// Title.
    pub title: String,
    /// Text sent.
    pub text: String,
    /// Equals the schedule's kind.
    pub periodicity: Periodicity,
    /// IANA time zone of the schedule.
    pub timezone: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Whether it runs.
    pub enabled: bool,
    /// Next slot (`None` when disabled or manual).
    pub next_run_at: Option<i64>,
    /// Last run (scheduled or manual).
    pub last_run_at: Option<i64>,
    /// Run key of the last run.
    pub last_run_key: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Input of [`Factory::create_push_job`].
#[derive(Debug, Clone)]
pub struct NewPushJob {
    /// Company of the user.
    pub company_id: String,
    /// Recipient.
    pub consumer_user_id: String,
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// Must equal the schedule's kind when given.
    pub periodicity: Option<String>,
    /// IANA time zone.
    pub timezone: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Enabled (default true).
    pub enabled: bool,
    /// Must be the agent of the user's active binding when given.
    pub agent_key: Option<String>,
}

/// Input of [`Factory::create_push_job_from_template`].
#[derive(Debug, Clone)]
pub struct PushJobFromTemplate {
    /// Company; must own the template.
    pub company_id: String,
    /// Recipient.
    pub consumer_user_id: String,
    /// Template to copy.
    pub template_id: String,
    /// IANA time zone.
    pub timezone: String,
    /// Schedule; default: the template's first suggested time (manual templates: manual).
    pub schedule: Option<Schedule>,
    /// Enabled (default true).
    pub enabled: bool,
    /// Must be the agent of the user's active binding when given.
    pub agent_key: Option<String>,
}

/// Changes of [`Factory::update_push_job`]; `None` keeps a field. A new schedule
/// alone also sets the periodicity.
#[derive(Debug, Clone, Default)]
pub struct PushJobPatch {
    /// New title.
    pub title: Option<String>,
    /// New text.
    pub text: Option<String>,
    /// New periodicity (must equal the resulting schedule's kind).
    pub periodicity: Option<String>,
    /// New time zone.
    pub timezone: Option<String>,
    /// New schedule.
    pub schedule: Option<Schedule>,
    /// New enabled flag.
    pub enabled: Option<bool>,
}

/// A stored job with its row key.
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub(crate) key: i64,
    pub(crate) job: PushJob,
}

impl JobRow {
    /// The job's time zone.
    pub(crate) fn tz(&self) -> Result<Tz> {
        parse_timezone(&self.job.timezone)
            .map_err(|e| Error::storage(format!("stored push job timezone is invalid: {e}")))
    }
}

pub(crate) const COLUMNS: &str = "id, job_id, company_id, consumer_user_id, agent_key, source_template_id, title, text, \
    periodicity, timezone, schedule, enabled, next_run_at, last_run_at, last_run_key, created_at, updated_at";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let periodicity: String = r.get(8)?;
    let schedule: String = r.get(10)?;
    Ok(JobRow {
        key: r.get(0)?,
        job: PushJob {
            job_id: r.get(1)?,
            company_id: r.get(2)?,
            consumer_user_id: r.get(3)?,
            agent_key: r.get(4)?,
            source_template_id: r.get(5)?,
            title: r.get(6)?,
            text: r.get(7)?,
            periodicity: Periodicity::parse(&periodicity).map_err(|e| column_error(8, e))?,
            timezone: r.get(9)?,
            schedule: Schedule::from_stored(&schedule).map_err(|e| column_error(10, e))?,
            enabled: r.get(11)?,
            next_run_at: r.get(12)?,
            last_run_at: r.get(13)?,
            last_run_key: r.get(14)?,
            created_at: r.get(15)?,
            updated_at: r.get(16)?,
        },
    })
}

/// Load a job inside a transaction.
pub(crate) fn get_in(tx: &Tx, job_id: &str) -> Result<Option<JobRow>> {
    let sql = format!("SELECT {COLUMNS} FROM push_jobs WHERE job_id = ?1");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([job_id], from_row)
        .optional()?)
}

/// The job if it exists and, when `agent_key` is given, belongs to that agent.
fn owned(tx: &Tx, job_id: &str, agent_key: Option<&str>) -> Result<Option<JobRow>> {
    Ok(get_in(tx, job_id)?
        .filter(|row| agent_key.is_none_or(|a| row.job.agent_key.as_deref() == Some(a))))
}

/// The next slot for a job in this state.
fn planned(enabled: bool, schedule: &Schedule, tz: Tz, now: i64) -> Result<Option<i64>> {
    if enabled {
        schedule::next_run_at(schedule, tz, now)
    } else {
        Ok(None)
    }
}

/// The agent a new job belongs to: `agent_key` when it is the user's active
/// agent (else a conflict), otherwise the active agent when it is enabled.
fn creation_agent(tx: &Tx, user: &str, agent_key: Option<&str>) -> Result<Option<String>> {
    let active = active_target(tx, user)?;
    match agent_key {
        Some(wanted) => match active {
            Some(t) if t.agent_key == wanted => Ok(Some(t.agent_key)),
            _ => Err(Error::conflict(
                "Agent key must match the current active binding for the user",
            )),
        },
        None => {
            let Some(t) = active else { return Ok(None) };
            let enabled: Option<bool> = tx
                .prepare_cached("SELECT enabled FROM agents WHERE agent_key = ?1")?
                .query_row([&t.agent_key], |r| r.get(0))
                .optional()?;
            Ok((enabled == Some(true)).then_some(t.agent_key))
        }
    }
}

fn check_optional_agent(agent_key: Option<&str>) -> Result<()> {
    agent_key.map(validate_agent_key).transpose().map(|_| ())
}

/// What to insert, validated.
struct Insert<'a> {
    company_id: &'a str,
    consumer_user_id: &'a str,
    source_template_id: Option<&'a str>,
    title: &'a str,
    text: &'a str,
    timezone: Tz,
    schedule: Schedule,
    enabled: bool,
    agent_key: Option<&'a str>,
}

fn insert(tx: &Tx, ins: &Insert<'_>, now: i64) -> Result<PushJob> {
    let agent = creation_agent(tx, ins.consumer_user_id, ins.agent_key)?;
    let next = planned(ins.enabled, &ins.schedule, ins.timezone, now)?;
    let job_id = new_id("pjob");
    tx.prepare_cached(
        "INSERT INTO push_jobs(job_id, company_id, consumer_user_id, agent_key, source_template_id, title, text,
           periodicity, timezone, schedule, enabled, next_run_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
    )?
    .execute(params![
        job_id,
        ins.company_id,
        ins.consumer_user_id,
        agent,
        ins.source_template_id,
        ins.title,
        ins.text,
        ins.schedule.periodicity().as_str(),
        ins.timezone.name(),
        ins.schedule.to_json(),
        ins.enabled,
        next,
        now
    ])?;
    get_in(tx, &job_id)?
        .map(|r| r.job)
        .ok_or_else(|| Error::storage("push job vanished after insert"))
}

fn list(tx: &Tx, sql_where: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<PushJob>> {
    let sql = format!("SELECT {COLUMNS} FROM push_jobs {sql_where}");
    let rows = tx
        .prepare_cached(&sql)?
        .query_map(args, from_row)?
        .map(|r| r.map(|row| row.job))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

impl Factory {
    /// Create a custom push job. Without `agent_key` the job takes the agent of the
    /// user's active binding (if any; otherwise it adopts one at its first run).
    pub fn create_push_job(&self, input: &NewPushJob, now_ms: Option<i64>) -> Result<PushJob> {
        validate_company_id(&input.company_id)?;
        validate_user_id(&input.consumer_user_id)?;
        validate_title_text(&input.title, &input.text)?;
        let tz = parse_timezone(&input.timezone)?;
        if let Some(p) = &input.periodicity {
            check_kind(Periodicity::parse(p)?, &input.schedule)?;
        }
        check_optional_agent(input.agent_key.as_deref())?;
        let now = self.now(now_ms)?;
        let ins = Insert {
            company_id: &input.company_id,
            consumer_user_id: &input.consumer_user_id,
            source_template_id: None,
            title: &input.title,
            text: &input.text,
            timezone: tz,
            schedule: input.schedule,
            enabled: input.enabled,
            agent_key: input.agent_key.as_deref(),
        };
        self.store.write(|tx| insert(tx, &ins, now))
    }

    /// Create a job from a template of the same company: its title, text and
    /// periodicity are copied; the schedule is `schedule`, else the template's
    /// first suggested time (manual templates: manual).
    pub fn create_push_job_from_template(
        &self,
        input: &PushJobFromTemplate,
        now_ms: Option<i64>,
    ) -> Result<PushJob> {
        let tz = parse_timezone(&input.timezone)?;
        validate_company_id(&input.company_id)?;
        validate_user_id(&input.consumer_user_id)?;
        validate_id("templateId", &input.template_id)?;
        check_optional_agent(input.agent_key.as_deref())?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let template = super::templates::get_in(tx, &input.template_id)?
                .ok_or_else(|| Error::not_found("Template not found"))?;
            if template.company_id != input.company_id {
                return Err(Error::validation("Template company mismatch"));
            }
            if !template.enabled {
                return Err(Error::invalid_state(format!(
                    "Template '{}' is disabled",
                    template.template_id
                )));
            }
            let schedule = match (template.periodicity, input.schedule) {
                (p, Some(s)) => {
                    check_kind(p, &s)?;
                    s
                }
                (Periodicity::Manual, None) => Schedule::Manual,
                (_, None) => *template.suggested_times.first().ok_or_else(|| {
                    Error::validation("Schedule is required for non-manual template")
                })?,
            };
            let ins = Insert {
                company_id: &input.company_id,
                consumer_user_id: &input.consumer_user_id,
                source_template_id: Some(&template.template_id),
                title: &template.title,
                text: &template.text,
                timezone: tz,
                schedule,
                enabled: input.enabled,
                agent_key: input.agent_key.as_deref(),
            };
            insert(tx, &ins, now)
        })
    }

    /// Change a job; `None` if it does not exist (or, with `agent_key`, belongs to
    /// another agent). The next slot is recomputed from now when the schedule, time
    /// zone, periodicity or enabled flag changes; a title/text edit keeps it.
    pub fn update_push_job(
        &self,
        job_id: &str,
        patch: &PushJobPatch,
        agent_key: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<Option<PushJob>> {
        validate_id("jobId", job_id)?;
        check_optional_agent(agent_key)?;
        let new_tz = patch.timezone.as_deref().map(parse_timezone).transpose()?;
        let new_periodicity = patch
            .periodicity
            .as_deref()
            .map(Periodicity::parse)
            .transpose()?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let Some(row) = owned(tx, job_id, agent_key)? else {
                return Ok(None);
            };
            let old = &row.job;
            let title = patch.title.as_deref().unwrap_or(&old.title);
            let text = patch.text.as_deref().unwrap_or(&old.text);
            validate_title_text(title, text)?;
            let schedule = patch.schedule.unwrap_or(old.schedule);
            check_kind(new_periodicity.unwrap_or(schedule.periodicity()), &schedule)?;
            let tz = match new_tz {
                Some(tz) => tz,
                None => row.tz()?,
            };
            let enabled = patch.enabled.unwrap_or(old.enabled);
            let replan = schedule != old.schedule
                || tz.name() != old.timezone
                || enabled != old.enabled;
            let next = if replan {
                planned(enabled, &schedule, tz, now)?
            } else {
                old.next_run_at
            };
            tx.prepare_cached(
                "UPDATE push_jobs SET title = ?2, text = ?3, periodicity = ?4, timezone = ?5, schedule = ?6,
                   enabled = ?7, next_run_at = ?8, updated_at = ?9 WHERE id = ?1",
            )?
            .execute(params![
                row.key,
                title,
                text,
                schedule.periodicity().as_str(),
                tz.name(),
                schedule.to_json(),
                enabled,
                next,
                now
            ])?;
            Ok(get_in(tx, job_id)?.map(|r| r.job))
        })
    }

    /// Enable or disable a job (enabling plans the first slot after now);
    /// `None` if it does not exist or belongs to another agent.
    pub fn set_push_job_enabled(
        &self,
        job_id: &str,
        enabled: bool,
        agent_key: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<Option<PushJob>> {
        let patch = PushJobPatch {
            enabled: Some(enabled),
            ..Default::default()
        };
        self.update_push_job(job_id, &patch, agent_key, now_ms)
    }

    /// Delete a job and its dispatch audit; `false` if it did not exist or
    /// belongs to another agent.
    pub fn delete_push_job(&self, job_id: &str, agent_key: Option<&str>) -> Result<bool> {
        validate_id("jobId", job_id)?;
        check_optional_agent(agent_key)?;
        self.store.write(|tx| {
            let Some(row) = owned(tx, job_id, agent_key)? else {
                return Ok(false);
            };
            tx.prepare_cached("DELETE FROM push_jobs WHERE id = ?1")?
                .execute([row.key])?;
            Ok(true)
        })
    }

    /// One job, or `None` (also when it belongs to another agent than `agent_key`).
    pub fn get_push_job(&self, job_id: &str, agent_key: Option<&str>) -> Result<Option<PushJob>> {
        validate_id("jobId", job_id)?;
        check_optional_agent(agent_key)?;
        self.store
            .read(|tx| Ok(owned(tx, job_id, agent_key)?.map(|r| r.job)))
    }

    /// A user's jobs, most recently changed first.
    pub fn list_push_jobs_for_user(
        &self,
        consumer_user_id: &str,
        include_disabled: bool,
    ) -> Result<Vec<PushJob>> {
        validate_user_id(consumer_user_id)?;
        self.store.read(|tx| {
            list(
                tx,
                "WHERE consumer_user_id = ?1 AND (?2 OR enabled = 1) ORDER BY updated_at DESC, id DESC",
                &[&consumer_user_id, &include_disabled],
            )
        })
    }

    /// A user's jobs that belong to `agent_key`, most recently changed first.
    pub fn list_push_jobs_for_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        include_disabled: bool,
    ) -> Result<Vec<PushJob>> {
        validate_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        self.store.read(|tx| {
            list(
                tx,
                "WHERE consumer_user_id = ?1 AND agent_key = ?2 AND (?3 OR enabled = 1)
                 ORDER BY updated_at DESC, id DESC",
                &[&consumer_user_id, &agent_key, &include_disabled],
            )
        })
    }
}
