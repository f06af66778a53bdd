//! Template rows: create, update, delete, get, ranked listing and sending.
//!
//! Invariants: see the module header; every operation is one transaction and
//! validates its input before the first write.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    key_base, normalize_tags, normalize_text, normalize_title, validate_actor,
    validate_template_id, MessageTemplate, TemplateInput, TemplateUpdate, MAX_LIST_LIMIT,
};
use crate::agents::validate_agent_key;
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::identity::{validate_consumer_user_id, validate_metadata};
use crate::store::Tx;

/// What a template send did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateSend {
    /// The enqueued message.
    pub message_id: String,
    /// The template's usage count after this send.
    pub usage_count: i64,
}

const COLUMNS: &str = "template_id, template_key, title, text, tags, usage_count, enabled, \
     created_by, updated_by, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<MessageTemplate> {
    let tags: String = r.get(4)?;
    let tags = serde_json::from_str(&tags).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(MessageTemplate {
        template_id: r.get(0)?,
        template_key: r.get(1)?,
        title: r.get(2)?,
        text: r.get(3)?,
        tags,
        usage_count: r.get(5)?,
        enabled: r.get(6)?,
        created_by: r.get(7)?,
        updated_by: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn get_in(tx: &Tx, template_id: &str) -> Result<Option<MessageTemplate>> {
    let sql = format!("SELECT {COLUMNS} FROM message_templates WHERE template_id = ?1");
    Ok(tx
        .prepare_cached(&sql)?
        .query_row([template_id], from_row)
        .optional()?)
}

/// The smallest free key for `title`: its base, else `base-2`, `base-3`, ...
/// The template `own` (being updated) does not collide with itself. Reads
/// only the unique key index range of `base` and `base-*`.
fn unique_key(tx: &Tx, title: &str, own: Option<&str>) -> Result<String> {
    let base = key_base(title);
    let mut stmt = tx.prepare_cached(
        "SELECT template_key FROM message_templates
         WHERE (template_key = ?1 OR (template_key >= ?1 || '-' AND template_key < ?1 || '.'))
           AND template_id IS NOT ?2",
    )?;
    let taken = stmt
        .query_map(params![base, own], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !taken.contains(&base) {
        return Ok(base);
    }
    let prefix = format!("{base}-");
    let mut used: Vec<u64> = taken
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix))
        .filter(|s| !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|s| s.parse().ok())
        .collect();
    used.sort_unstable();
    let mut n = 2u64;
    for u in used {
        if u == n {
            n += 1;
        } else if u > n {
            break;
        }
    }
    Ok(format!("{base}-{n}"))
}

fn check_limit(limit: i64) -> Result<()> {
    if (1..=MAX_LIST_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "limit must be within 1..={MAX_LIST_LIMIT}, got {limit}"
        )))
    }
}

impl Factory {
    /// Create a template; returns it with its generated id and unique key.
    pub fn create_message_template(
        &self,
        input: &TemplateInput,
        now_ms: Option<i64>,
    ) -> Result<MessageTemplate> {
        let title = normalize_title(&input.title)?;
        let text = normalize_text(&input.text)?;
        let tags = serde_json::to_string(&normalize_tags(&input.tags)?)?;
        validate_actor(&input.actor_user_id)?;
        let now = self.now(now_ms)?;
        let template_id = format!("tpl-{}", uuid::Uuid::now_v7().simple());
        self.store.write(|tx| {
            let key = unique_key(tx, &title, None)?;
            tx.prepare_cached(
                "INSERT INTO message_templates(template_id, template_key, title, text, tags, usage_count, enabled,
                    created_by, updated_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7, ?8, ?8)",
            )?
            .execute(params![template_id, key, title, text, tags, input.enabled, input.actor_user_id, now])?;
            get_in(tx, &template_id)?.ok_or_else(|| Error::storage("template vanished after insert"))
        })
    }

    /// Change a template; `None` if it does not exist. The key is regenerated
    /// only when the title changes.
    pub fn update_message_template(
        &self,
        template_id: &str,
        update: &TemplateUpdate,
        now_ms: Option<i64>,
    ) -> Result<Option<MessageTemplate>> {
        validate_template_id(template_id)?;
        let title = update.title.as_deref().map(normalize_title).transpose()?;
        let text = update.text.as_deref().map(normalize_text).transpose()?;
        let tags = update
            .tags
            .as_deref()
            .map(normalize_tags)
            .transpose()?
            .map(|t| serde_json::to_string(&t))
            .transpose()?;
        validate_actor(&update.actor_user_id)?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let Some(current) = get_in(tx, template_id)? else {
                return Ok(None);
            };
            let key = match &title {
                Some(t) if *t != current.title => unique_key(tx, t, Some(template_id))?,
                _ => current.template_key.clone(),
            };
            tx.prepare_cached(
                "UPDATE message_templates SET template_key = ?2, title = coalesce(?3, title), text = coalesce(?4, text),
                   tags = coalesce(?5, tags), enabled = coalesce(?6, enabled), updated_by = ?7, updated_at = ?8
                 WHERE template_id = ?1",
            )?
            .execute(params![template_id, key, title, text, tags, update.enabled, update.actor_user_id, now])?;
            get_in(tx, template_id)
        })
    }

    /// Delete a template; `false` if it did not exist.
    pub fn delete_message_template(&self, template_id: &str) -> Result<bool> {
        validate_template_id(template_id)?;
        self.store.write(|tx| {
            Ok(tx
                .prepare_cached("DELETE FROM message_templates WHERE template_id = ?1")?
                .execute([template_id])?
                == 1)
        })
    }

    /// One template, or `None`.
    pub fn get_message_template(&self, template_id: &str) -> Result<Option<MessageTemplate>> {
        validate_template_id(template_id)?;
        self.store.read(|tx| get_in(tx, template_id))
    }

    /// Templates by usage (most used first), then most recently updated;
    /// enabled ones only unless `include_disabled`. `limit` is 1..=200.
    pub fn list_message_templates(
        &self,
        include_disabled: bool,
        limit: i64,
    ) -> Result<Vec<MessageTemplate>> {
        check_limit(limit)?;
        let filter = if include_disabled {
            ""
        } else {
            "WHERE enabled = 1"
        };
        self.store.read(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM message_templates {filter}
                 ORDER BY usage_count DESC, updated_at DESC, id DESC LIMIT ?1"
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt
                .query_map([limit], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Send an enabled template's text to the user's agent (needs the user's
    /// active binding for `agent_key`) and count the use, in one transaction.
    /// Metadata gets `source: message_template`, `templateId` and `templateKey`.
    pub fn send_message_template_to_user_agent(
        &self,
        consumer_user_id: &str,
        agent_key: &str,
        template_id: &str,
        metadata: Option<&Map<String, Value>>,
        now_ms: Option<i64>,
    ) -> Result<TemplateSend> {
        validate_consumer_user_id(consumer_user_id)?;
        validate_agent_key(agent_key)?;
        validate_template_id(template_id)?;
        if let Some(m) = metadata {
            validate_metadata("metadata", m)?;
        }
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let template = get_in(tx, template_id)?
                .filter(|t| t.enabled)
                .ok_or_else(|| Error::not_found("Message template not found"))?;
            let mut meta = metadata.cloned().unwrap_or_default();
            meta.insert("source".into(), "message_template".into());
            meta.insert("templateId".into(), template.template_id.clone().into());
            meta.insert("templateKey".into(), template.template_key.clone().into());
            let message_id =
                self.send_to_user_agent_in(tx, consumer_user_id, agent_key, &template.text, meta, now)?;
            let usage_count: i64 = tx
                .prepare_cached(
                    "UPDATE message_templates SET usage_count = usage_count + 1 WHERE template_id = ?1
                     RETURNING usage_count",
                )?
                .query_row([template_id], |r| r.get(0))?;
            Ok(TemplateSend {
                message_id,
                usage_count,
            })
        })
    }
}
