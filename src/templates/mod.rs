//! Message templates: reusable one-shot texts, globally keyed, usage-counted.
//!
//! Invariants:
//! - `template_key` is derived from the title (lowercase, runs of `[^a-z0-9]`
//!   become `-`, trimmed, fallback `message-template`) and is globally unique
//!   (the smallest free `-2`, `-3`, … suffix; a UNIQUE index backs it); an update
//!   regenerates it only when the title changes, ignoring the template's own key;
//! - tags are trimmed, lower-cased, de-duplicated and sorted; empty ones dropped;
//! - listings are ordered by `usage_count desc, updated_at desc` over *all*
//!   rows (read in that order from an index), then limited;
//! - a send enqueues the text for the user's active binding and increments the
//!   usage count in the same transaction: both happen or neither does.

mod store;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::error::{Error, Result};

pub use store::TemplateSend;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest text, in characters.
pub const MAX_TEXT_CHARS: usize = 32_768;
/// Most tags on one template.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Default page of a listing.
pub const DEFAULT_LIST_LIMIT: i64 = 100;
/// Largest page of a listing.
pub const MAX_LIST_LIMIT: i64 = 200;
/// Key used when a title has no letters or digits.
pub const FALLBACK_KEY: &str = "message-template";

/// A stored template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageTemplate {
    /// Opaque id.
    pub template_id: String,
    /// Unique key derived from the title.
    pub template_key: String,
    /// Title (trimmed).
    pub title: String,
    /// Text sent to the agent (trimmed).
    pub text: String,
    /// Normalised tags.
    pub tags: Vec<String>,
    /// How many times it was sent.
    pub usage_count: i64,
    /// Disabled templates are hidden from default listings and cannot be sent.
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

/// Input of [`crate::factory::Factory::create_message_template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInput {
    /// Title (trimmed; required).
    pub title: String,
    /// Text (trimmed; required).
    pub text: String,
    /// Tags (normalised).
    pub tags: Vec<String>,
    /// Whether it can be listed by default and sent.
    pub enabled: bool,
    /// Who creates it.
    pub actor_user_id: String,
}

/// Input of [`crate::factory::Factory::update_message_template`]; `None` keeps a field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateUpdate {
    /// New title (regenerates the key when it differs).
    pub title: Option<String>,
    /// New text.
    pub text: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// Who changes it.
    pub actor_user_id: String,
}

/// The key a title asks for (before uniqueness suffixes).
pub fn key_base(title: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in title.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    if out.is_empty() {
        FALLBACK_KEY.to_string()
    } else {
        out
    }
}

/// Tags trimmed, lower-cased, without empties and duplicates, sorted.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        let t = t.trim().to_lowercase();
        if t.chars().count() > MAX_TAG_CHARS {
            return Err(Error::validation(format!(
                "tags[{i}] has more than {MAX_TAG_CHARS} characters"
            )));
        }
        if t.chars().any(char::is_control) {
            return Err(Error::validation(format!(
                "tags[{i}] must not contain control characters"
            )));
        }
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(Error::validation(format!(
            "tags has {} distinct tags; the limit is {MAX_TAGS}",
            out.len()
        )));
    }
    out.sort();
    Ok(out)
}

/// A trimmed, required title.
pub fn normalize_title(title: &str) -> Result<String> {
    let t = title.trim();
    if t.is_empty() {
        return Err(Error::validation("Template title is required"));
    }
    crate::validate::optional_text("title", t, MAX_TITLE_CHARS)?;
    Ok(t.to_string())
}

/// A trimmed, required text.
pub fn normalize_text(text: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::validation("Template text is required"));
    }
    crate::validate::optional_text("text", t, MAX_TEXT_CHARS)?;
    Ok(t.to_string())
}

/// An actor id: not blank, at most 256 characters.
pub fn validate_actor(actor_user_id: &str) -> Result<()> {
    crate::validate::text("actorUserId", actor_user_id, 256)
}

/// A template id as issued by this module.
pub fn validate_template_id(template_id: &str) -> Result<()> {
    crate::validate::identifier("templateId", template_id, 128, false)
}
