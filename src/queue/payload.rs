//! Message payload validation and normalisation.
//!
//! The payload is the wire shape workers receive, so it keeps the seed's
//! camelCase keys: `provider`, `providerUserId`, `messageText`,
//! `externalMessageId`, `rawUpdateJson`, `metadata`, `attachments`. Unknown keys
//! are rejected (a snake_case typo would otherwise be silently dropped).
//! Normalisation: `providerUserId` is trimmed and copied into `metadata`, the
//! global system prompt is appended, attachments must reference stored blobs.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::blobs::{validate_sha256, BlobStore};
use crate::error::{Error, Result};

const KNOWN_KEYS: &[&str] = &[
    "provider",
    "providerUserId",
    "messageText",
    "externalMessageId",
    "rawUpdateJson",
    "metadata",
    "attachments",
];
const ATTACHMENT_KEYS: &[&str] = &[
    "kind",
    "status",
    "storageId",
    "telegramFileId",
    "fileName",
    "mimeType",
    "sizeBytes",
    "expiresAt",
    "downloadUrl",
    "path",
];
/// Attachment kinds.
pub const ATTACHMENT_KINDS: &[&str] = &["photo", "video", "audio", "voice", "document"];

/// An attachment of a payload, as stored in `message_attachments`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// photo, video, audio, voice or document.
    pub kind: String,
    /// ready or expired.
    pub status: String,
    /// Blob SHA-256.
    pub storage_id: String,
    /// Telegram file id.
    pub telegram_file_id: String,
    /// Original name.
    pub file_name: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Size.
    pub size_bytes: Option<i64>,
    /// Expiry.
    pub expires_at: i64,
}

/// A validated payload ready to store.
#[derive(Debug, Clone)]
pub struct PreparedPayload {
    /// The normalised JSON object.
    pub json: String,
    /// Its attachments.
    pub attachments: Vec<Attachment>,
    /// The provider name.
    pub provider: String,
}

fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::validation(format!("{at}.{key} must be a string"))),
    }
}

fn optional_int(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<i64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.as_i64().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
                Error::validation(format!("{at}.{key} must be a non-negative integer"))
            })
        }
    }
}

fn reject_unknown(obj: &Map<String, Value>, known: &[&str], at: &str) -> Result<()> {
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::validation(format!(
            "{at} has an unknown key {k:?}; allowed keys are {}",
            known.join(", ")
        )));
    }
    Ok(())
}

fn parse_attachment(value: &Value, index: usize, blobs: &BlobStore) -> Result<Attachment> {
    let at = format!("payload.attachments[{index}]");
    let obj = value
        .as_object()
        .ok_or_else(|| Error::validation(format!("{at} must be an object")))?;
    reject_unknown(obj, ATTACHMENT_KEYS, &at)?;
    let kind = optional_string(obj, "kind", &at)?.unwrap_or_default();
    if !ATTACHMENT_KINDS.contains(&kind) {
        return Err(Error::validation(format!(
            "{at}.kind must be one of {}, got {kind:?}",
            ATTACHMENT_KINDS.join(", ")
        )));
    }
    let status = optional_string(obj, "status", &at)?.unwrap_or("ready");
    if !matches!(status, "ready" | "expired") {
        return Err(Error::validation(format!(
            "{at}.status must be 'ready' or 'expired', got {status:?}"
        )));
    }
    let storage_id = optional_string(obj, "storageId", &at)?.ok_or_else(|| {
        Error::validation(format!("{at}.storageId is required (the blob's sha256)"))
    })?;
    validate_sha256(storage_id).map_err(|_| {
        Error::validation(format!(
            "{at}.storageId {storage_id:?} is not a blob sha256"
        ))
    })?;
    if status == "ready" && !blobs.exists(storage_id)? {
        return Err(Error::not_found(format!(
            "{at}.storageId {storage_id} is not in the blob store"
        )));
    }
    let telegram_file_id = optional_string(obj, "telegramFileId", &at)?
        .ok_or_else(|| Error::validation(format!("{at}.telegramFileId is required")))?;
    let expires_at = optional_int(obj, "expiresAt", &at)?
        .ok_or_else(|| Error::validation(format!("{at}.expiresAt is required")))?;
    Ok(Attachment {
        kind: kind.to_string(),
        status: status.to_string(),
        storage_id: storage_id.to_string(),
        telegram_file_id: telegram_file_id.to_string(),
        file_name: optional_string(obj, "fileName", &at)?.map(str::to_string),
        mime_type: optional_string(obj, "mimeType", &at)?.map(str::to_string),
        size_bytes: optional_int(obj, "sizeBytes", &at)?,
        expires_at,
    })
}

/// The JSON form of an attachment inside a payload.
pub fn attachment_json(a: &Attachment) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), a.kind.clone().into());
    m.insert("status".into(), a.status.clone().into());
    m.insert("storageId".into(), a.storage_id.clone().into());
    m.insert("telegramFileId".into(), a.telegram_file_id.clone().into());
    if let Some(v) = &a.file_name {
        m.insert("fileName".into(), v.clone().into());
    }
    if let Some(v) = &a.mime_type {
        m.insert("mimeType".into(), v.clone().into());
    }
    if let Some(v) = a.size_bytes {
        m.insert("sizeBytes".into(), v.into());
    }
    m.insert("expiresAt".into(), a.expires_at.into());
    Value::Object(m)
}

/// The normalised payload, serialised straight from the caller's object (no copy
/// of it is built). Keys come out sorted, as a `serde_json::Map` would order them.
struct StoredPayload<'a> {
    source: &'a Map<String, Value>,
    provider: &'a str,
    provider_user_id: &'a str,
    message_text: &'a str,
    metadata: Option<&'a Map<String, Value>>,
    attachments: &'a [Attachment],
}

impl Serialize for StoredPayload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.attachments.is_empty() {
            let list: Vec<Value> = self.attachments.iter().map(attachment_json).collect();
            map.serialize_entry("attachments", &list)?;
        }
        if let Some(v) = self.source.get("externalMessageId") {
            map.serialize_entry("externalMessageId", v)?;
        }
        map.serialize_entry("messageText", self.message_text)?;
        map.serialize_entry(
            "metadata",
            &Metadata {
                base: self.metadata,
                provider_user_id: self.provider_user_id,
            },
        )?;
        map.serialize_entry("provider", self.provider)?;
        map.serialize_entry("providerUserId", self.provider_user_id)?;
        if let Some(v) = self.source.get("rawUpdateJson") {
            map.serialize_entry("rawUpdateJson", v)?;
        }
        map.end()
    }
}

/// The caller's metadata with `providerUserId` set, in key order.
struct Metadata<'a> {
    base: Option<&'a Map<String, Value>>,
    provider_user_id: &'a str,
}

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        const KEY: &str = "providerUserId";
        let mut map = serializer.serialize_map(None)?;
        let mut written = false;
        for (k, v) in self.base.into_iter().flatten() {
            if k == KEY {
                continue;
            }
            if !written && k.as_str() > KEY {
                map.serialize_entry(KEY, self.provider_user_id)?;
                written = true;
            }
            map.serialize_entry(k, v)?;
        }
        if !written {
            map.serialize_entry(KEY, self.provider_user_id)?;
        }
        map.end()
    }
}

/// Validate and normalise a payload. `system_prompt` is the stored global prompt.
pub fn prepare(
    payload: &Value,
    system_prompt: Option<&str>,
    blobs: &BlobStore,
    max_bytes: usize,
) -> Result<PreparedPayload> {
    let obj = payload
        .as_object()
        .ok_or_else(|| Error::validation("payload must be an object"))?;
    reject_unknown(obj, KNOWN_KEYS, "payload")?;
    let provider = match obj.get("provider") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            return Err(Error::validation(
                "payload.provider is required and must be a non-empty string",
            ))
        }
    };
    let provider_user_id = match obj.get("providerUserId") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        other => {
            let shown = other
                .map(Value::to_string)
                .unwrap_or_else(|| "undefined".into());
            return Err(Error::validation(format!(
                "providerUserId is required but missing in payload.providerUserId={shown}"
            )));
        }
    };
    let text = match obj.get("messageText") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(Error::validation(
                "payload.messageText is required and must be a string",
            ))
        }
    };
    optional_string(obj, "externalMessageId", "payload")?;
    optional_string(obj, "rawUpdateJson", "payload")?;
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_string()) {
                return Err(Error::validation(format!(
                    "payload.metadata.{k} must be a string"
                )));
            }
            Some(m)
        }
        Some(_) => {
            return Err(Error::validation(
                "payload.metadata must be an object of strings",
            ))
        }
    };
    let attachments = match obj.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_attachment(v, i, blobs))
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(Error::validation("payload.attachments must be a list")),
    };
    let message_text = match system_prompt {
        Some(prompt) => {
            let trimmed = text.trim_end();
            if trimmed.is_empty() {
                prompt.to_string()
            } else {
                format!("{trimmed}\n\n{prompt}")
            }
        }
        None => text.to_string(),
    };
    let stored = StoredPayload {
        source: obj,
        provider: &provider,
        provider_user_id: &provider_user_id,
        message_text: &message_text,
        metadata,
        attachments: &attachments,
    };
    let json = serde_json::to_string(&stored)?;
    if json.len() > max_bytes {
        return Err(Error::validation(format!(
            "payload is {} bytes; the limit is {max_bytes}",
            json.len()
        )));
    }
    Ok(PreparedPayload {
        json,
        attachments,
        provider,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blobs() -> BlobStore {
        BlobStore::for_database(None).unwrap()
    }

    #[test]
    fn blank_provider_user_id_is_named() {
        let err = prepare(
            &json!({"provider": "telegram", "providerUserId": "   ", "messageText": "hi"}),
            None,
            &blobs(),
            1 << 20,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "providerUserId is required but missing in payload.providerUserId=\"   \""
        );
    }

    #[test]
    fn system_prompt_is_appended_and_metadata_gets_the_user() {
        let p = prepare(
            &json!({"provider": "telegram", "providerUserId": " u1 ", "messageText": "Come va?  "}),
            Some("Be brief."),
            &blobs(),
            1 << 20,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&p.json).unwrap();
        assert_eq!(v["messageText"], "Come va?\n\nBe brief.");
        assert_eq!(v["providerUserId"], "u1");
        assert_eq!(v["metadata"]["providerUserId"], "u1");
    }

    #[test]
    fn unknown_keys_and_missing_blobs_are_rejected() {
        let b = blobs();
        assert!(prepare(&json!({"provider": "t", "provider_user_id": "u", "providerUserId": "u", "messageText": ""}), None, &b, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("provider_user_id"));
        let missing = "a".repeat(64);
        let err = prepare(
            &json!({"provider": "t", "providerUserId": "u", "messageText": "",
                    "attachments": [{"kind": "photo", "storageId": missing, "telegramFileId": "f", "expiresAt": 1}]}),
            None,
            &b,
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
    }
}
