//! Attachments: small files on a card (at most 256 KiB each, 20 per card).
//!
//! Invariants: the bytes live in the attachment row itself (a BLOB column), so
//! the index entry and its content are written, pruned and deleted in one
//! transaction: an attachment dropped from a card's index (retention of 20, the
//! metadata budget, deletion of the card) loses its bytes at the same commit.
//! Base64 input must be canonical (re-encoding reproduces it exactly).

use base64::Engine;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::cards::write;
use super::model::*;
use super::normalize::{self as n, new_id};
use super::normalize_meta::keep_last;
use super::persist::{self, require, ATTACHMENT_COLUMNS};
use super::{assert_scope, Scope, Workboard};
use crate::error::{Error, Result};

/// Content of a new attachment.
#[derive(Debug, Clone)]
pub enum AttachmentContent {
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Canonical base64 text.
    Base64(String),
}

/// Input of `add_attachment`.
#[derive(Debug, Clone)]
pub struct AttachmentInput {
    pub file_name: Option<String>,
    pub content: Option<AttachmentContent>,
    pub mime_type: Option<String>,
    pub note: Option<String>,
}

/// A stored attachment with its content.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentRecord {
    pub attachment: AttachmentMeta,
    pub content_base64: String,
}

/// A card and its attachment index.
#[derive(Debug, Clone, Serialize)]
pub struct CardAttachments {
    pub card: Card,
    pub attachments: Vec<AttachmentMeta>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Decode canonical base64 (`attachment contentBase64 must be canonical base64.`).
pub fn decode_canonical(text: &str) -> Result<Vec<u8>> {
    let bad = || Error::validation("attachment contentBase64 must be canonical base64.");
    let max_len = MAX_ATTACHMENT_BYTES.div_ceil(3) * 4;
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    if !text.len().is_multiple_of(4)
        || text.len() > max_len
        || padding > 2
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return Err(bad());
    }
    let bytes = B64.decode(text).map_err(|_| bad())?;
    if B64.encode(&bytes) != text {
        return Err(bad());
    }
    Ok(bytes)
}

fn size_error() -> Error {
    Error::validation(format!(
        "attachment must be between 1 and {MAX_ATTACHMENT_BYTES} bytes."
    ))
}

impl Workboard {
    /// Attach a file (`bytes` or canonical base64); the oldest beyond 20 is pruned with its bytes.
    pub fn add_attachment(
        &self,
        id: &str,
        input: AttachmentInput,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let s = |v: &Option<String>| v.clone().map(Value::String);
        let file_name = n::text(s(&input.file_name).as_ref(), "attachment fileName", 240)?
            .ok_or_else(|| Error::validation("attachment fileName is required."))?;
        let bytes = match &input.content {
            None => return Err(Error::validation("attachment contentBase64 is required.")),
            Some(AttachmentContent::Base64(t)) if t.is_empty() => {
                return Err(Error::validation("attachment contentBase64 is required."))
            }
            Some(AttachmentContent::Base64(t)) => decode_canonical(t)?,
            Some(AttachmentContent::Bytes(b)) => b.clone(),
        };
        if bytes.is_empty() || bytes.len() > MAX_ATTACHMENT_BYTES {
            return Err(size_error());
        }
        let mime_type = n::text(s(&input.mime_type).as_ref(), "attachment mimeType", 160)?;
        let note = n::text(s(&input.note).as_ref(), "attachment note", 400)?;
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            assert_scope(&card, scope)?;
            let meta_entry = AttachmentMeta {
                id: new_id(),
                card_id: card.id.clone(),
                created_at: now,
                file_name: file_name.clone(),
                byte_size: bytes.len() as i64,
                mime_type: mime_type.clone(),
                note: note.clone(),
            };
            tx.prepare_cached(
                "INSERT INTO workboard_attachments(id, card_id, ordinal, file_name, byte_size,
                   mime_type, note, created_at, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                meta_entry.id,
                card.id,
                i64::MAX,
                meta_entry.file_name,
                meta_entry.byte_size,
                meta_entry.mime_type,
                meta_entry.note,
                now,
                bytes
            ])?;
            let mut next = card.clone();
            let mut meta = next.meta();
            meta.diagnostics.retain(|d| d.kind != "missing_proof");
            meta.attachments.push(meta_entry.clone());
            keep_last(&mut meta.attachments, MAX_CARD_ATTACHMENTS);
            next.set_meta(meta);
            let saved = write(tx, &card, next, now)?;
            if !saved.meta().attachments.iter().any(|a| a.id == meta_entry.id) {
                return Err(Error::invalid_state(
                    "attachment metadata was trimmed before it could be indexed.",
                ));
            }
            Ok(saved)
        })
    }

    /// An attachment and its content (base64), or `None`.
    pub fn get_attachment(&self, attachment_id: &str) -> Result<Option<AttachmentRecord>> {
        let id = attachment_id.trim().to_string();
        self.store.read(|tx| {
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {ATTACHMENT_COLUMNS}, content FROM workboard_attachments WHERE id = ?1"
                ))?
                .query_row([&id], |r| {
                    Ok((persist::attachment_from(r)?, r.get::<_, Vec<u8>>(7)?))
                })
                .optional()?;
            Ok(row.map(|(attachment, bytes)| AttachmentRecord {
                attachment,
                content_base64: B64.encode(bytes),
            }))
        })
    }

    /// The card and its attachment index.
    pub fn list_attachments(&self, id: &str) -> Result<CardAttachments> {
        self.store.read(|tx| {
            let card = require(tx, id.trim())?;
            let attachments = card.meta().attachments;
            Ok(CardAttachments { card, attachments })
        })
    }

    /// Delete one attachment of a card (`attachment not found: <id>`).
    pub fn delete_attachment(
        &self,
        card_id: &str,
        attachment_id: &str,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let aid = attachment_id.trim().to_string();
        if aid.is_empty() {
            return Err(Error::validation("attachmentId is required."));
        }
        self.store.write(|tx| {
            let card = require(tx, card_id.trim())?;
            assert_scope(&card, scope)?;
            let mut next = card.clone();
            let mut meta = next.meta();
            let before = meta.attachments.len();
            meta.attachments.retain(|a| a.id != aid);
            if meta.attachments.len() == before {
                return Err(Error::not_found(format!("attachment not found: {aid}")));
            }
            next.set_meta(meta);
            write(tx, &card, next, now)
        })
    }
}
