//! Push templates of a company: reusable texts with suggested schedules.
//!
//! Invariants: `(company_id, template_key)` is unique; a manual template has no
//! suggested times and every suggested time of the others has the template's
//! periodicity (re-checked on update against the merged values); jobs copy a
//! template's text at creation, so editing a template never changes a job.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::schedule::{Periodicity, Schedule};
use super::{column_error, new_id, validate_company_id, validate_id, validate_title_text};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::store::Tx;

/// A push template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushTemplate {
    /// Id.
    pub template_id: String,
    /// Owning company.
    pub company_id: String,
    /// Key, unique within the company.
    pub template_key: String,
    /// Title.
    pub title: String,
    /// Text a job sends.
    pub text: String,
    /// Periodicity of the suggested times.
    pub periodicity: Periodicity,
    /// Suggested schedules (empty for manual templates).
    pub suggested_times: Vec<Schedule>,
    /// Whether new jobs may be created from it.
    pub enabled: bool,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub updated_by: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Input of [`Factory::create_push_template`].
#[derive(Debug, Clone)]
pub struct NewPushTemplate {
    /// Owning company.
    pub company_id: String,
    /// Key, unique within the company.
    pub template_key: String,
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// `manual`, `daily`, `weekly` or `monthly`.
    pub periodicity: String,
    /// Suggested schedules.
    pub suggested_times: Vec<Schedule>,
    /// Enabled (default true).
    pub enabled: bool,
    /// Acting user.
    pub actor_user_id: String,
}

/// Changes of [`Factory::update_push_template`]; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct PushTemplatePatch {
    /// New title.
    pub title: Option<String>,
    /// New text.
    pub text: Option<String>,
    /// New periodicity.
    pub periodicity: Option<String>,
    /// New suggested times.
    pub suggested_times: Option<Vec<Schedule>>,
    /// New enabled flag.
    pub enabled: Option<bool>,
}

const COLUMNS: &str =
    "template_id, company_id, template_key, title, text, periodicity, suggested_times, \
    enabled, created_by, updated_by, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<PushTemplate> {
    let periodicity: String = r.get(5)?;
    let suggested: String = r.get(6)?;
    let value: serde_json::Value =
        serde_json::from_str(&suggested).map_err(|e| column_error(6, e.into()))?;
    let suggested_times =
        Schedule::list_from_json("suggestedTimes", &value).map_err(|e| column_error(6, e))?;
    Ok(PushTemplate {
        template_id: r.get(0)?,
        company_id: r.get(1)?,
        template_key: r.get(2)?,
        title: r.get(3)?,
        text: r.get(4)?,
        periodicity: Periodicity::parse(&periodicity).map_err(|e| column_error(5, e))?,
        suggested_times,
        enabled: r.get(7)?,
        created_by: r.get(8)?,
        updated_by: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

/// Load a template inside a transaction.
pub(crate) fn get_in(tx: &Tx, template_id: &str) -> Result<Option<PushTemplate>> {
    let sql = format!("SELECT {COLUMNS} FROM push_templates WHERE template_id = ?1");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([template_id], from_row)
        .optional()?)
}

fn check_suggested(periodicity: Periodicity, times: &[Schedule]) -> Result<()> {
    if times.len() > super::MAX_SUGGESTED_TIMES {
        return Err(Error::validation(format!(
            "suggestedTimes has {} entries; the limit is {}",
            times.len(),
            super::MAX_SUGGESTED_TIMES
        )));
    }
    if periodicity == Periodicity::Manual {
        if !times.is_empty() {
            return Err(Error::validation(
                "Manual template does not accept suggested times",
            ));
        }
    } else if times.iter().any(|t| t.periodicity() != periodicity) {
        return Err(Error::validation(
            "All suggested times must match template periodicity",
        ));
    }
    Ok(())
}

fn suggested_json(times: &[Schedule]) -> Result<String> {
    Ok(serde_json::to_string(times)?)
}

fn check_actor(actor: &str) -> Result<()> {
    crate::validate::text("actorUserId", actor, 200)
}

fn check_key(key: &str) -> Result<()> {
    crate::validate::identifier("templateKey", key, 128, false)
}

impl Factory {
    /// Create a push template of a company. A duplicate key within the company is
    /// a conflict (`Template key '<key>' already exists for company`).
    pub fn create_push_template(
        &self,
        input: &NewPushTemplate,
        now_ms: Option<i64>,
    ) -> Result<PushTemplate> {
        validate_company_id(&input.company_id)?;
        check_key(&input.template_key)?;
        validate_title_text(&input.title, &input.text)?;
        check_actor(&input.actor_user_id)?;
        let periodicity = Periodicity::parse(&input.periodicity)?;
        check_suggested(periodicity, &input.suggested_times)?;
        let suggested = suggested_json(&input.suggested_times)?;
        let now = self.now(now_ms)?;
        let template_id = new_id("ptpl");
        self.store.write(|tx| {
            let taken: bool = tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM push_templates WHERE company_id = ?1 AND template_key = ?2)",
                )?
                .query_row(params![input.company_id, input.template_key], |r| r.get(0))?;
            if taken {
                return Err(Error::conflict(format!(
                    "Template key '{}' already exists for company",
                    input.template_key
                )));
            }
            tx.prepare_cached(
                "INSERT INTO push_templates(template_id, company_id, template_key, title, text, periodicity,
                   suggested_times, enabled, created_by, updated_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?10)",
            )?
            .execute(params![
                template_id,
                input.company_id,
                input.template_key,
                input.title,
                input.text,
                periodicity.as_str(),
                suggested,
                input.enabled,
                input.actor_user_id,
                now
            ])?;
            get_in(tx, &template_id)?
                .ok_or_else(|| Error::storage("push template vanished after insert"))
        })
    }

    /// Change a template; `None` if it does not exist. The merged periodicity and
    /// suggested times are validated together.
    pub fn update_push_template(
        &self,
        template_id: &str,
        patch: &PushTemplatePatch,
        actor_user_id: &str,
        now_ms: Option<i64>,
    ) -> Result<Option<PushTemplate>> {
        validate_id("templateId", template_id)?;
        check_actor(actor_user_id)?;
        let periodicity = patch
            .periodicity
            .as_deref()
            .map(Periodicity::parse)
            .transpose()?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let Some(old) = get_in(tx, template_id)? else {
                return Ok(None);
            };
            let title = patch.title.as_deref().unwrap_or(&old.title);
            let text = patch.text.as_deref().unwrap_or(&old.text);
            validate_title_text(title, text)?;
            let periodicity = periodicity.unwrap_or(old.periodicity);
            let times = patch.suggested_times.as_deref().unwrap_or(&old.suggested_times);
            check_suggested(periodicity, times)?;
            tx.prepare_cached(
                "UPDATE push_templates SET title = ?2, text = ?3, periodicity = ?4, suggested_times = ?5,
                   enabled = ?6, updated_by = ?7, updated_at = ?8 WHERE template_id = ?1",
            )?
            .execute(params![
                template_id,
                title,
                text,
                periodicity.as_str(),
                suggested_json(times)?,
                patch.enabled.unwrap_or(old.enabled),
                actor_user_id,
                now
            ])?;
            get_in(tx, template_id)
        })
    }

    /// Delete a template; `false` if it did not exist. Jobs made from it keep
    /// their copied text and their `source_template_id`.
    pub fn delete_push_template(&self, template_id: &str) -> Result<bool> {
        validate_id("templateId", template_id)?;
        self.store.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM push_templates WHERE template_id = ?1")?
                .execute([template_id])?
                > 0)
        })
    }

    /// One template, or `None`.
    pub fn get_push_template(&self, template_id: &str) -> Result<Option<PushTemplate>> {
        validate_id("templateId", template_id)?;
        self.store.read(|tx| get_in(tx, template_id))
    }

    /// A company's templates, most recently changed first; disabled ones only
    /// when `include_disabled`.
    pub fn list_push_templates(
        &self,
        company_id: &str,
        include_disabled: bool,
    ) -> Result<Vec<PushTemplate>> {
        validate_company_id(company_id)?;
        self.store.read(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM push_templates WHERE company_id = ?1 AND (?2 OR enabled = 1)
                 ORDER BY updated_at DESC, id DESC"
            );
            let rows = tx
                .prepare_cached(&sql)?
                .query_map(params![company_id, include_disabled], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
