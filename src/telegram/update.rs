//! Parsing Telegram `Update` objects into what ingestion needs.
//!
//! Invariants:
//! - parsing is pure (no I/O) and total: any JSON gives either a
//!   [`ParsedUpdate`] or a validation error naming the field, never a panic;
//! - a field that is present with the wrong type is a validation error; an
//!   update of a kind agent-factory does not handle (callback queries, channel
//!   posts, ...) or a message without a chat, a sender or any content is
//!   [`UpdateBody::Ignored`] with the reason;
//! - unknown fields are accepted (Telegram adds fields over time);
//! - of a photo's sizes the largest is taken (by `file_size`, then pixel count;
//!   ties go to the later entry, as Telegram lists sizes ascending).

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Largest webhook body / update accepted, in bytes.
pub const MAX_UPDATE_BYTES: usize = 1024 * 1024;
/// Longest file id accepted.
const MAX_FILE_ID: usize = 512;
/// Longest text or caption accepted, in characters.
const MAX_TEXT_CHARS: usize = 65_536;

/// Update kinds that carry a message agent-factory enqueues.
const MESSAGE_KINDS: &[&str] = &["message", "edited_message"];
/// Update kinds Telegram defines that agent-factory ignores (named in the reason).
const OTHER_KINDS: &[&str] = &[
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
];

/// A media item of a message (not yet downloaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// photo, video, audio, voice or document.
    pub kind: &'static str,
    /// Telegram file id (what `getFile` takes).
    pub file_id: String,
    /// Original file name, when Telegram gives one.
    pub file_name: Option<String>,
    /// MIME type Telegram reports (photos: `image/jpeg`).
    pub mime_type: Option<String>,
    /// Size Telegram reports.
    pub file_size: Option<i64>,
}

/// A message (new or edited) from a user in a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// Whether it came as `edited_message`.
    pub edited: bool,
    /// Telegram message id (unique within the chat).
    pub message_id: i64,
    /// Chat id, as a string.
    pub chat_id: String,
    /// Sender's user id, as a string.
    pub user_id: String,
    /// Trimmed text, else trimmed caption; `None` when both are empty.
    pub text: Option<String>,
    /// Media in the order photo, video, audio, voice, document.
    pub media: Vec<MediaRef>,
}

/// What an update holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateBody {
    /// A message to route.
    Message(IncomingMessage),
    /// Nothing agent-factory handles; the reason says why.
    Ignored(String),
}

/// A parsed update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// `update_id`.
    pub update_id: i64,
    /// Its content.
    pub body: UpdateBody,
}

/// Parse a webhook body: at most [`MAX_UPDATE_BYTES`] of UTF-8 JSON.
pub fn parse_body(body: &[u8]) -> Result<Value> {
    if body.len() > MAX_UPDATE_BYTES {
        return Err(Error::validation(format!(
            "update body is {} bytes; the limit is {MAX_UPDATE_BYTES}",
            body.len()
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::validation(format!("update body is not valid JSON: {e}")))
}

fn int(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<i64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::validation(format!("{at}.{key} must be an integer"))),
    }
}

fn string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::validation(format!("{at}.{key} must be a string"))),
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| Error::validation(format!("{at} must be an object")))
}

fn text_field(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>> {
    let Some(s) = string(obj, key, at)? else {
        return Ok(None);
    };
    crate::validate::optional_text(&format!("{at}.{key}"), &s, MAX_TEXT_CHARS)?;
    let t = s.trim();
    Ok((!t.is_empty()).then(|| t.to_string()))
}

fn media_item(value: &Value, kind: &'static str, at: &str) -> Result<MediaRef> {
    let obj = object(value, at)?;
    let file_id = string(obj, "file_id", at)?
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| Error::validation(format!("{at}.file_id is required")))?;
    if file_id.len() > MAX_FILE_ID || file_id.chars().any(char::is_control) {
        return Err(Error::validation(format!(
            "{at}.file_id must be at most {MAX_FILE_ID} bytes without control characters"
        )));
    }
    let file_size = int(obj, "file_size", at)?;
    if file_size.is_some_and(|n| n < 0) {
        return Err(Error::validation(format!(
            "{at}.file_size must not be negative"
        )));
    }
    let file_name = string(obj, "file_name", at)?.filter(|n| !n.trim().is_empty());
    let mime_type = if kind == "photo" {
        Some("image/jpeg".to_string())
    } else {
        string(obj, "mime_type", at)?.filter(|m| !m.trim().is_empty())
    };
    for (field, v) in [("file_name", &file_name), ("mime_type", &mime_type)] {
        if let Some(v) = v {
            crate::validate::optional_text(&format!("{at}.{field}"), v, 1024)?;
        }
    }
    Ok(MediaRef {
        kind,
        file_id,
        file_name,
        mime_type,
        file_size,
    })
}

/// The largest size of a `photo` array.
fn largest_photo(items: &[Value], at: &str) -> Result<Option<MediaRef>> {
    let mut best: Option<((i64, i64), MediaRef)> = None;
    for (i, item) in items.iter().enumerate() {
        let where_ = format!("{at}[{i}]");
        let m = media_item(item, "photo", &where_)?;
        let obj = object(item, &where_)?;
        let w = int(obj, "width", &where_)?.unwrap_or(0);
        let h = int(obj, "height", &where_)?.unwrap_or(0);
        let key = (m.file_size.unwrap_or(0), w.saturating_mul(h));
        if best.as_ref().is_none_or(|(k, _)| key >= *k) {
            best = Some((key, m));
        }
    }
    Ok(best.map(|(_, m)| m))
}

fn media_of(msg: &Map<String, Value>, at: &str) -> Result<Vec<MediaRef>> {
    let mut out = Vec::new();
    match msg.get("photo") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => out.extend(largest_photo(items, &format!("{at}.photo"))?),
        Some(_) => return Err(Error::validation(format!("{at}.photo must be a list"))),
    }
    for kind in ["video", "audio", "voice", "document"] {
        match msg.get(kind) {
            None | Some(Value::Null) => {}
            Some(v) => out.push(media_item(v, kind, &format!("{at}.{kind}"))?),
        }
    }
    Ok(out)
}

fn message(value: &Value, edited: bool, at: &str) -> Result<UpdateBody> {
    let msg = object(value, at)?;
    let message_id = int(msg, "message_id", at)?
        .ok_or_else(|| Error::validation(format!("{at}.message_id is required")))?;
    let chat_id = match msg.get("chat") {
        None | Some(Value::Null) => return Ok(UpdateBody::Ignored("message has no chat".into())),
        Some(chat) => {
            let chat = object(chat, &format!("{at}.chat"))?;
            int(chat, "id", &format!("{at}.chat"))?
                .ok_or_else(|| Error::validation(format!("{at}.chat.id is required")))?
        }
    };
    let user_id = match msg.get("from") {
        None | Some(Value::Null) => {
            return Ok(UpdateBody::Ignored(
                "message has no sender (channel posts and anonymous admins are not handled)".into(),
            ))
        }
        Some(from) => {
            let from = object(from, &format!("{at}.from"))?;
            int(from, "id", &format!("{at}.from"))?
                .ok_or_else(|| Error::validation(format!("{at}.from.id is required")))?
        }
    };
    let text = text_field(msg, "text", at)?;
    let caption = text_field(msg, "caption", at)?;
    let media = media_of(msg, at)?;
    let text = text.or(caption);
    if text.is_none() && media.is_empty() {
        return Ok(UpdateBody::Ignored(
            "message has no text, caption or supported media".into(),
        ));
    }
    Ok(UpdateBody::Message(IncomingMessage {
        edited,
        message_id,
        chat_id: chat_id.to_string(),
        user_id: user_id.to_string(),
        text,
        media,
    }))
}

/// Parse an `Update` object.
pub fn parse_update(update: &Value) -> Result<ParsedUpdate> {
    let obj = object(update, "update")?;
    let update_id = int(obj, "update_id", "update")?
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            Error::validation("update.update_id is required and must be a non-negative integer")
        })?;
    for kind in MESSAGE_KINDS {
        if let Some(v) = obj.get(*kind).filter(|v| !v.is_null()) {
            let body = message(v, *kind == "edited_message", &format!("update.{kind}"))?;
            return Ok(ParsedUpdate { update_id, body });
        }
    }
    let reason = match obj.keys().find(|k| OTHER_KINDS.contains(&k.as_str())) {
        Some(k) => format!("unsupported update kind '{k}'"),
        None => "update carries no message".to_string(),
    };
    Ok(ParsedUpdate {
        update_id,
        body: UpdateBody::Ignored(reason),
    })
}

/// The pairing code of a `/start <code>` command: `None` when the text is not
/// a `/start` command, `Some(None)` when it is one without a valid code.
/// Codes are 4-128 characters of `A-Za-z0-9_-`; `/start@BotName` is accepted.
pub fn start_command(text: &str) -> Option<Option<&str>> {
    let rest = text.trim().strip_prefix("/start")?;
    let rest = match rest.strip_prefix('@') {
        Some(r) => {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            &r[end..]
        }
        None => rest,
    };
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None; // e.g. "/started": not the command
    }
    let code = rest.trim();
    let valid = (4..=128).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    Some(valid.then_some(code))
}
