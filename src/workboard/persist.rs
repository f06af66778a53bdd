//! Reading and writing card rows inside a transaction.
//!
//! Invariants: a card's indexed columns are derived from its document on every
//! write; links are rewritten as rows in metadata order; attachment rows missing
//! from the card's index are deleted with their bytes in the same transaction;
//! every committed mutation bumps the change revision once; every status change
//! appends a `status` row to the durable log.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Row};

use super::model::*;
use super::normalize::new_id;
use crate::error::{Error, Result};
use crate::store::Tx;

/// `card not found: <id>`.
pub fn not_found(id: &str) -> Error {
    Error::not_found(format!("card not found: {id}"))
}

fn parse_doc(doc: &str) -> Result<Card> {
    Ok(serde_json::from_str(doc)?)
}

fn link_from(r: &Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        id: r.get(0)?,
        kind: r.get(1)?,
        target_card_id: r.get(2)?,
        title: r.get(3)?,
        url: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// Attachment index columns (no content).
pub const ATTACHMENT_COLUMNS: &str =
    "id, card_id, created_at, file_name, byte_size, mime_type, note";

/// An attachment index entry from [`ATTACHMENT_COLUMNS`].
pub fn attachment_from(r: &Row<'_>) -> rusqlite::Result<AttachmentMeta> {
    Ok(AttachmentMeta {
        id: r.get(0)?,
        card_id: r.get(1)?,
        created_at: r.get(2)?,
        file_name: r.get(3)?,
        byte_size: r.get(4)?,
        mime_type: r.get(5)?,
        note: r.get(6)?,
    })
}

/// Attach the child rows (links, attachment index) to a card read from its document.
fn hydrate(tx: &Tx, mut card: Card) -> Result<Card> {
    let links: Vec<Link> = tx
        .prepare_cached(
            "SELECT id, type, target_card_id, title, url, created_at FROM workboard_card_links
             WHERE card_id = ?1 ORDER BY ordinal",
        )?
        .query_map([&card.id], link_from)?
        .collect::<rusqlite::Result<_>>()?;
    let attachments: Vec<AttachmentMeta> = tx
        .prepare_cached(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM workboard_attachments WHERE card_id = ?1 ORDER BY ordinal"
        ))?
        .query_map([&card.id], attachment_from)?
        .collect::<rusqlite::Result<_>>()?;
    if !links.is_empty() || !attachments.is_empty() {
        let mut meta = card.meta();
        meta.links = links;
        meta.attachments = attachments;
        card.set_meta(meta);
    }
    Ok(card)
}

/// The card `id`, if it exists.
pub fn load(tx: &Tx, id: &str) -> Result<Option<Card>> {
    let doc: Option<String> = tx
        .prepare_cached("SELECT doc FROM workboard_cards WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match doc {
        Some(d) => Ok(Some(hydrate(tx, parse_doc(&d)?)?)),
        None => Ok(None),
    }
}

/// The card `id`, or `card not found: <id>`.
pub fn require(tx: &Tx, id: &str) -> Result<Card> {
    load(tx, id)?.ok_or_else(|| not_found(id))
}

/// Cards from a query whose first column is `doc`.
pub fn load_many(tx: &Tx, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Card>> {
    let docs: Vec<String> = tx
        .prepare_cached(sql)?
        .query_map(params, |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut cards: Vec<Card> = docs.iter().map(|d| parse_doc(d)).collect::<Result<_>>()?;
    hydrate_many(tx, &mut cards)?;
    Ok(cards)
}

/// [`hydrate`] for a page of cards with two queries (links, attachment index)
/// instead of two per card.
fn hydrate_many(tx: &Tx, cards: &mut [Card]) -> Result<()> {
    if cards.len() < 2 {
        for card in cards.iter_mut() {
            *card = hydrate(tx, card.clone())?;
        }
        return Ok(());
    }
    let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
    let ids = serde_json::to_string(&ids)?;
    let mut links: HashMap<String, Vec<Link>> = HashMap::new();
    let mut stmt = tx.prepare_cached(
        "SELECT l.card_id, l.id, l.type, l.target_card_id, l.title, l.url, l.created_at
         FROM json_each(?1) j JOIN workboard_card_links l ON l.card_id = j.value
         ORDER BY l.card_id, l.ordinal",
    )?;
    let rows = stmt.query_map([&ids], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Link {
                id: r.get(1)?,
                kind: r.get(2)?,
                target_card_id: r.get(3)?,
                title: r.get(4)?,
                url: r.get(5)?,
                created_at: r.get(6)?,
            },
        ))
    })?;
    for row in rows {
        let (card_id, link) = row?;
        links.entry(card_id).or_default().push(link);
    }
    let mut attachments: HashMap<String, Vec<AttachmentMeta>> = HashMap::new();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM workboard_attachments
         WHERE card_id IN (SELECT value FROM json_each(?1)) ORDER BY card_id, ordinal"
    ))?;
    for a in stmt.query_map([&ids], attachment_from)? {
        let a = a?;
        attachments.entry(a.card_id.clone()).or_default().push(a);
    }
    for card in cards.iter_mut() {
        let l = links.remove(&card.id).unwrap_or_default();
        let a = attachments.remove(&card.id).unwrap_or_default();
        if !l.is_empty() || !a.is_empty() {
            let mut meta = card.meta();
            meta.links = l;
            meta.attachments = a;
            card.set_meta(meta);
        }
    }
    Ok(())
}

/// Status of each of `ids` that exists.
pub fn statuses(tx: &Tx, ids: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut stmt = tx.prepare_cached("SELECT status FROM workboard_cards WHERE id = ?1")?;
    for id in ids {
        if let Some(s) = stmt.query_row([id], |r| r.get::<_, String>(0)).optional()? {
            out.push((id.clone(), s));
        }
    }
    Ok(out)
}

/// Whether every parent of `card` exists and is done.
pub fn parents_done(tx: &Tx, card: &Card) -> Result<bool> {
    let parents = card.parent_ids();
    let found = statuses(tx, &parents)?;
    Ok(found.len() == parents.len() && found.iter().all(|(_, s)| s == "done"))
}

/// Write the card row and its links; delete attachment rows the index dropped.
pub fn save(tx: &Tx, card: &Card) -> Result<()> {
    let meta = card.meta();
    let automation = meta.automation.clone().unwrap_or_default();
    let board = card.board_id();
    let tenant = automation.tenant.clone().unwrap_or_default();
    if let Some(key) = &automation.idempotency_key {
        let other: Option<String> = tx
            .prepare_cached(
                "SELECT id FROM workboard_cards WHERE board_id = ?1 AND tenant = ?2
                 AND idempotency_key = ?3 AND id <> ?4",
            )?
            .query_row(params![board, tenant, key, card.id], |r| r.get(0))
            .optional()?;
        if let Some(other) = other {
            return Err(Error::conflict(format!(
                "idempotency key {key:?} is already used by card {other} on board {board}."
            )));
        }
    }
    let mut doc = card.clone();
    let mut doc_meta = meta.clone();
    doc_meta.links.clear();
    doc_meta.attachments.clear();
    doc.set_meta(doc_meta);
    let claim = meta.claim.as_ref();
    tx.prepare_cached(
        "INSERT INTO workboard_cards(id, board_id, title, status, status_rank, priority, position,
           agent_id, session_key, run_id, tenant, idempotency_key, claim_owner, claim_token,
           claim_expires_at, scheduled_at, max_runtime_ms, started_at, archived_at,
           execution_status, failure_count, created_at, updated_at, doc, has_parents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21, ?22, ?23, ?24, ?25)
         ON CONFLICT(id) DO UPDATE SET board_id = excluded.board_id, title = excluded.title,
           status = excluded.status, status_rank = excluded.status_rank,
           priority = excluded.priority, position = excluded.position,
           agent_id = excluded.agent_id, session_key = excluded.session_key,
           run_id = excluded.run_id, tenant = excluded.tenant,
           idempotency_key = excluded.idempotency_key, claim_owner = excluded.claim_owner,
           claim_token = excluded.claim_token, claim_expires_at = excluded.claim_expires_at,
           scheduled_at = excluded.scheduled_at, max_runtime_ms = excluded.max_runtime_ms,
           started_at = excluded.started_at, archived_at = excluded.archived_at,
           execution_status = excluded.execution_status, failure_count = excluded.failure_count,
           updated_at = excluded.updated_at, doc = excluded.doc,
           has_parents = excluded.has_parents",
    )?
    .execute(params![
        card.id,
        board,
        card.title,
        card.status,
        status_rank(&card.status),
        card.priority,
        card.position,
        card.agent_id,
        card.card_session_key(),
        card.card_run_id(),
        tenant,
        automation.idempotency_key,
        claim.map(|c| &c.owner_id),
        claim.map(|c| &c.token),
        claim.and_then(|c| c.expires_at),
        automation.scheduled_at,
        automation
            .max_runtime_seconds
            .map(|s| s.saturating_mul(1000).min(MAX_DATE_TIMESTAMP_MS)),
        card.started_at,
        meta.archived_at,
        card.execution.as_ref().map(|e| &e.status),
        meta.failure_count,
        card.created_at,
        card.updated_at,
        serde_json::to_string(&doc)?,
        meta.links.iter().any(|l| l.kind == "parent"),
    ])?;
    tx.prepare_cached("DELETE FROM workboard_card_links WHERE card_id = ?1")?
        .execute([&card.id])?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO workboard_card_links(card_id, id, ordinal, type, target_card_id, title, url, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, l) in meta.links.iter().enumerate() {
        insert.execute(params![
            card.id,
            l.id,
            i as i64,
            l.kind,
            l.target_card_id,
            l.title,
            l.url,
            l.created_at
        ])?;
    }
    let keep: Vec<&str> = meta.attachments.iter().map(|a| a.id.as_str()).collect();
    tx.prepare_cached(
        "DELETE FROM workboard_attachments WHERE card_id = ?1
         AND id NOT IN (SELECT value FROM json_each(?2))",
    )?
    .execute(params![card.id, serde_json::to_string(&keep)?])?;
    let mut order = tx.prepare_cached(
        "UPDATE workboard_attachments SET ordinal = ?3 WHERE card_id = ?1 AND id = ?2",
    )?;
    for (i, id) in keep.iter().enumerate() {
        order.execute(params![card.id, id, i as i64])?;
    }
    Ok(())
}

/// Count one committed mutation.
pub fn bump_revision(tx: &Tx) -> Result<()> {
    tx.prepare_cached("UPDATE workboard_revision SET revision = revision + 1 WHERE id = 1")?
        .execute([])?;
    Ok(())
}

/// An entry for the durable log.
pub struct LogEntry<'a> {
    pub kind: &'a str,
    pub message: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub session_key: Option<String>,
    pub run_id: Option<String>,
}

/// Append to the durable log; returns `(id, sequence)`.
pub fn log(tx: &Tx, card: &Card, entry: &LogEntry<'_>, now: i64) -> Result<(String, i64)> {
    let id = new_id();
    tx.prepare_cached(
        "INSERT INTO workboard_log(id, board_id, card_id, kind, message, from_status, to_status,
           session_key, run_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        id,
        card.board_id(),
        card.id,
        entry.kind,
        entry.message,
        entry.from_status,
        entry.to_status,
        entry.session_key,
        entry.run_id,
        now
    ])?;
    Ok((id, tx.last_insert_rowid()))
}

/// Log a status transition `from` → `card.status` (`from = None` on create).
pub fn log_status(tx: &Tx, card: &Card, from: Option<&str>, now: i64) -> Result<()> {
    if from == Some(card.status.as_str()) {
        return Ok(());
    }
    let message = match from {
        Some(f) => format!("status {f} -> {}", card.status),
        None => format!("created as {}", card.status),
    };
    log(
        tx,
        card,
        &LogEntry {
            kind: "status",
            message: &message,
            from_status: from,
            to_status: Some(&card.status),
            session_key: card.card_session_key(),
            run_id: card.card_run_id(),
        },
        now,
    )?;
    Ok(())
}

/// Delete a card row (links, attachments cascade) and subscriptions scoped to it.
pub fn delete_row(tx: &Tx, id: &str) -> Result<bool> {
    tx.prepare_cached("DELETE FROM workboard_subscriptions WHERE card_id = ?1")?
        .execute([id])?;
    let n = tx
        .prepare_cached("DELETE FROM workboard_cards WHERE id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}
