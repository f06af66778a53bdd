//! Notification subscriptions and the durable notification log.
//!
//! Invariants:
//! - every notification lives in `workboard_log`, whose `seq` is assigned inside
//!   the writing transaction; writes are serialized (`BEGIN IMMEDIATE`), so `seq`
//!   order is commit order across processes and a reader that has seen `seq = n`
//!   can never later find a committed event with a smaller `seq`;
//! - a subscription's cursor is the `seq` of the last delivered event: delivery
//!   is "every matching event with `seq > cursor`, in `seq` order", so no event is
//!   skipped or repeated, whatever the clocks or timestamps of the writers;
//! - `complete` / `block` / protocol violations / dispatch failures log through
//!   `metadata::notify`; notifications imported through generic metadata and
//!   `metadata.stale` markers are logged by [`log_card_notifications`] in the
//!   card's write (a stale marker once per `(card, detectedAt)`);
//! - every status transition is a `status` event (logged by `persist::log_status`);
//!   subscriptions receive it only when they ask for the `status` kind;
//! - `notification_events` is a read transaction (writes nothing);
//!   `advance_notification_events` collects and moves the cursor in one write
//!   transaction.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use super::cards::Deleted;
use super::model::Card;
use super::normalize::{self as n, new_id, Input};
use super::persist;
use super::Workboard;
use crate::error::{Error, Result};
use crate::store::Tx;

/// Notification kinds a subscription may ask for (`status`: status transitions).
pub const NOTIFICATION_KINDS: [&str; 4] = ["completed", "failed", "stale", "status"];
/// Kinds delivered when a subscription names none (the seed's three).
pub const DEFAULT_KINDS: [&str; 3] = ["completed", "failed", "stale"];
/// Default page of `notification_events`.
pub const DEFAULT_EVENTS_LIMIT: i64 = 50;
/// Largest page of `notification_events`.
pub const MAX_EVENTS_LIMIT: i64 = 200;

const SUBSCRIPTION_KEYS: [&str; 7] = [
    "id",
    "board_id",
    "card_id",
    "session_key",
    "run_id",
    "target",
    "event_kinds",
];

/// A notification subscription with its durable cursor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub board_id: String,
    pub card_id: Option<String>,
    pub session_key: Option<String>,
    pub run_id: Option<String>,
    pub target: Option<String>,
    /// Requested kinds; `None` means the seed's three (completed, failed, stale).
    pub event_kinds: Option<Vec<String>>,
    /// `created_at` of the last delivered event.
    pub last_event_at: Option<i64>,
    /// Id of the last delivered event.
    pub last_event_id: Option<String>,
    /// Log sequence of the last delivered event (the cursor).
    pub last_event_sequence: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Result of `list_notification_subscriptions`.
#[derive(Debug, Clone, Serialize)]
pub struct Subscriptions {
    pub subscriptions: Vec<Subscription>,
}

/// One event of the durable log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationEvent {
    pub id: String,
    /// `completed`, `failed`, `stale` or `status`.
    pub kind: String,
    pub created_at: i64,
    /// Log position: strictly increasing in commit order, across processes.
    pub sequence: i64,
    pub message: String,
    pub card_id: String,
    pub board_id: String,
    /// The event's session key, or the card's when the event has none.
    pub session_key: Option<String>,
    /// The event's run id, or the card's when the event has none.
    pub run_id: Option<String>,
    /// Status before a `status` event (`None` on creation).
    pub from_status: Option<String>,
    /// Status after a `status` event.
    pub to_status: Option<String>,
}

/// Result of `notification_events` / `advance_notification_events`.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationEvents {
    pub subscription: Option<Subscription>,
    pub events: Vec<NotificationEvent>,
}

/// What to collect: a subscription's events, or (preview only) a board's / card's.
#[derive(Debug, Clone, Default)]
pub struct EventsQuery {
    pub subscription_id: Option<String>,
    pub board_id: Option<String>,
    pub card_id: Option<String>,
    pub limit: Option<i64>,
}

/// `notification subscription not found: <id>`.
fn not_found(id: &str) -> Error {
    Error::not_found(format!("notification subscription not found: {id}"))
}

/// Kinds from a list or a comma-separated string, de-duplicated in order.
pub fn event_kinds(value: Option<&Value>) -> Result<Option<Vec<String>>> {
    let raw: Vec<String> = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_string()),
                other => Err(Error::validation(format!(
                    "event_kinds entries must be strings, got {}.",
                    n::type_name(other)
                ))),
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(Error::validation(format!(
                "event_kinds must be a list or a comma-separated string, got {}.",
                n::type_name(other)
            )))
        }
    };
    let mut out: Vec<String> = Vec::new();
    for kind in raw.into_iter().filter(|k| !k.is_empty()) {
        if !NOTIFICATION_KINDS.contains(&kind.as_str()) {
            return Err(Error::validation(format!(
                "notification kind must be one of: {}. (got {kind:?})",
                NOTIFICATION_KINDS.join(", ")
            )));
        }
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

fn subscription_id(value: &str) -> Result<String> {
    n::text(
        Some(&Value::String(value.into())),
        "notification subscription id",
        120,
    )?
    .ok_or_else(|| Error::validation("notification subscription id is required."))
}

const SUBSCRIPTION_COLUMNS: &str = "id, board_id, card_id, session_key, run_id, target,
    event_kinds_json, last_event_at, last_event_id, last_event_sequence, created_at, updated_at";

fn subscription_from(r: &Row<'_>) -> rusqlite::Result<(Subscription, Option<String>)> {
    Ok((
        Subscription {
            id: r.get(0)?,
            board_id: r.get(1)?,
            card_id: r.get(2)?,
            session_key: r.get(3)?,
            run_id: r.get(4)?,
            target: r.get(5)?,
            event_kinds: None,
            last_event_at: r.get(7)?,
            last_event_id: r.get(8)?,
            last_event_sequence: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
        },
        r.get(6)?,
    ))
}

fn with_kinds((mut s, kinds): (Subscription, Option<String>)) -> Result<Subscription> {
    s.event_kinds = kinds.map(|k| serde_json::from_str(&k)).transpose()?;
    Ok(s)
}

fn load(tx: &Tx, id: &str) -> Result<Option<Subscription>> {
    tx.prepare_cached(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM workboard_subscriptions WHERE id = ?1"
    ))?
    .query_row([id], subscription_from)
    .optional()?
    .map(with_kinds)
    .transpose()
}

fn require(tx: &Tx, id: &str) -> Result<Subscription> {
    load(tx, id)?.ok_or_else(|| not_found(id))
}

#[allow(clippy::too_many_arguments)]
/// Insert a log row with a given id and time unless that id is already logged;
/// an id logged for another card is kept apart as `<cardId>:<id>`.
fn log_with_id(
    tx: &Tx,
    card: &Card,
    id: &str,
    kind: &str,
    message: &str,
    session_key: Option<&str>,
    run_id: Option<&str>,
    created_at: i64,
) -> Result<()> {
    let owner: Option<String> = tx
        .prepare_cached("SELECT card_id FROM workboard_log WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let id = match owner {
        Some(o) if o == card.id => return Ok(()),
        Some(_) => format!("{}:{id}", card.id),
        None => id.to_string(),
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO workboard_log(id, board_id, card_id, kind, message, session_key,
           run_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        card.board_id(),
        card.id,
        kind,
        message,
        session_key,
        run_id,
        created_at
    ])?;
    Ok(())
}

/// Log what a card write adds outside `metadata::notify`: notifications imported
/// through metadata, and a new stale marker (`stale:<cardId>:<detectedAt>`).
pub(crate) fn log_card_notifications(tx: &Tx, before: Option<&Card>, next: &Card) -> Result<()> {
    let Some(meta) = next.metadata.as_ref() else {
        return Ok(());
    };
    let old = before.and_then(|b| b.metadata.as_ref());
    for note in &meta.notifications {
        if old.is_some_and(|o| o.notifications.iter().any(|p| p.id == note.id)) {
            continue;
        }
        log_with_id(
            tx,
            next,
            &note.id,
            &note.kind,
            &note.message,
            note.session_key.as_deref(),
            note.run_id.as_deref(),
            note.created_at,
        )?;
    }
    if let Some(stale) = &meta.stale {
        if old.and_then(|o| o.stale.as_ref()).map(|s| s.detected_at) != Some(stale.detected_at) {
            log_with_id(
                tx,
                next,
                &format!("stale:{}:{}", next.id, stale.detected_at),
                "stale",
                &stale.reason,
                next.card_session_key().as_deref(),
                next.card_run_id().as_deref(),
                stale.detected_at,
            )?;
        }
    }
    Ok(())
}

fn event_from(r: &Row<'_>) -> rusqlite::Result<NotificationEvent> {
    Ok(NotificationEvent {
        sequence: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        message: r.get(3)?,
        from_status: r.get(4)?,
        to_status: r.get(5)?,
        session_key: r.get(6)?,
        run_id: r.get(7)?,
        created_at: r.get(8)?,
        board_id: r.get(9)?,
        card_id: r.get(10)?,
    })
}

/// Where and what to collect, after the subscription's scoping rules.
struct Filter {
    card_id: Option<String>,
    board_id: Option<String>,
    session_key: Option<String>,
    run_id: Option<String>,
    kinds: Vec<String>,
    after: i64,
    limit: i64,
}

fn clamp_limit(limit: Option<i64>) -> i64 {
    limit
        .unwrap_or(DEFAULT_EVENTS_LIMIT)
        .clamp(1, MAX_EVENTS_LIMIT)
}

/// Matching events after the cursor, in log order (uses the card or board index).
fn collect(tx: &Tx, f: &Filter) -> Result<Vec<NotificationEvent>> {
    let scope = match (&f.card_id, &f.board_id) {
        (Some(_), _) => "l.card_id = ?1",
        (None, Some(_)) => "l.board_id = ?1",
        (None, None) => "?1 IS NULL",
    };
    let sql = format!(
        "SELECT l.seq, l.id, l.kind, l.message, l.from_status, l.to_status,
                COALESCE(l.session_key, c.session_key), COALESCE(l.run_id, c.run_id),
                l.created_at, l.board_id, l.card_id
         FROM workboard_log l LEFT JOIN workboard_cards c ON c.id = l.card_id
         WHERE {scope} AND l.seq > ?2
           AND l.kind IN (SELECT value FROM json_each(?3))
           AND (?4 IS NULL OR COALESCE(l.session_key, c.session_key) = ?4)
           AND (?5 IS NULL OR COALESCE(l.run_id, c.run_id) = ?5)
         ORDER BY l.seq LIMIT ?6"
    );
    let target = f.card_id.clone().or_else(|| f.board_id.clone());
    let events = tx
        .prepare_cached(&sql)?
        .query_map(
            params![
                target,
                f.after,
                serde_json::to_string(&f.kinds)?,
                f.session_key,
                f.run_id,
                f.limit
            ],
            event_from,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(events)
}

fn filter_for(sub: Option<&Subscription>, q: &EventsQuery) -> Result<Filter> {
    let input_board = n::board_id(
        q.board_id
            .as_ref()
            .map(|b| Value::String(b.clone()))
            .as_ref(),
    )?;
    let input_card = q
        .card_id
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let card_id = sub
        .and_then(|s| s.card_id.clone())
        .or(input_card.map(str::to_string));
    let board_id = match card_id {
        Some(_) => None,
        None => sub.map(|s| s.board_id.clone()).or(input_board),
    };
    let kinds = sub
        .and_then(|s| s.event_kinds.clone())
        .unwrap_or_else(|| DEFAULT_KINDS.iter().map(|k| k.to_string()).collect());
    Ok(Filter {
        card_id,
        board_id,
        session_key: sub.and_then(|s| s.session_key.clone()),
        run_id: sub.and_then(|s| s.run_id.clone()),
        kinds,
        after: sub.and_then(|s| s.last_event_sequence).unwrap_or(0),
        limit: clamp_limit(q.limit),
    })
}

impl Workboard {
    /// Subscribe to notifications of a board, a card, a session or a run. At least
    /// one of `card_id`, `session_key`, `run_id` or `target` is required; `board_id`
    /// defaults to `default`. Re-subscribing with an existing `id` replaces its
    /// filters and keeps its cursor.
    pub fn subscribe_notifications(
        &self,
        input: &Input,
        now_ms: Option<i64>,
    ) -> Result<Subscription> {
        let now = self.now(now_ms)?;
        if let Some(k) = input
            .keys()
            .find(|k| !SUBSCRIPTION_KEYS.contains(&k.as_str()))
        {
            return Err(Error::validation(format!(
                "notification subscription has no field {k:?}."
            )));
        }
        let id = match n::given(input, "id") {
            Some(Value::String(s)) => subscription_id(s)?,
            Some(other) => {
                return Err(Error::validation(format!(
                    "notification subscription id must be a string, got {}.",
                    n::type_name(other)
                )))
            }
            None => new_id(),
        };
        let board_id = n::board_id(input.get("board_id"))?.unwrap_or_else(|| "default".into());
        let card_id = n::text(input.get("card_id"), "subscription cardId", 120)?;
        let session_key = n::text(input.get("session_key"), "subscription sessionKey", 240)?;
        let run_id = n::text(input.get("run_id"), "subscription runId", 160)?;
        let target = n::text(input.get("target"), "subscription target", 240)?;
        if card_id.is_none() && session_key.is_none() && run_id.is_none() && target.is_none() {
            return Err(Error::validation(
                "notification subscription requires cardId, sessionKey, runId, or target.",
            ));
        }
        let kinds = event_kinds(input.get("event_kinds"))?;
        let kinds_json = kinds.as_ref().map(serde_json::to_string).transpose()?;
        self.store.write(|tx| {
            let existing = load(tx, &id)?;
            let sub = Subscription {
                id: id.clone(),
                board_id: board_id.clone(),
                card_id: card_id.clone(),
                session_key: session_key.clone(),
                run_id: run_id.clone(),
                target: target.clone(),
                event_kinds: kinds.clone(),
                last_event_at: existing.as_ref().and_then(|e| e.last_event_at),
                last_event_id: existing.as_ref().and_then(|e| e.last_event_id.clone()),
                last_event_sequence: existing.as_ref().and_then(|e| e.last_event_sequence),
                created_at: existing.as_ref().map_or(now, |e| e.created_at),
                updated_at: now,
            };
            tx.prepare_cached(
                "INSERT INTO workboard_subscriptions(id, board_id, card_id, session_key, run_id,
                   target, event_kinds_json, last_event_at, last_event_id, last_event_sequence,
                   created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO UPDATE SET board_id = excluded.board_id,
                   card_id = excluded.card_id, session_key = excluded.session_key,
                   run_id = excluded.run_id, target = excluded.target,
                   event_kinds_json = excluded.event_kinds_json, updated_at = excluded.updated_at",
            )?
            .execute(params![
                sub.id,
                sub.board_id,
                sub.card_id,
                sub.session_key,
                sub.run_id,
                sub.target,
                kinds_json,
                sub.last_event_at,
                sub.last_event_id,
                sub.last_event_sequence,
                sub.created_at,
                sub.updated_at
            ])?;
            persist::bump_revision(tx)?;
            Ok(sub)
        })
    }

    /// Subscriptions, optionally of one board and/or one card, by creation time then id.
    pub fn list_notification_subscriptions(
        &self,
        board_id: Option<&str>,
        card_id: Option<&str>,
    ) -> Result<Subscriptions> {
        let board = n::board_id(board_id.map(|b| Value::String(b.into())).as_ref())?;
        let card = card_id.map(str::trim).filter(|c| !c.is_empty());
        self.store.read(|tx| {
            let rows = tx
                .prepare_cached(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM workboard_subscriptions
                     WHERE (?1 IS NULL OR board_id = ?1) AND (?2 IS NULL OR card_id = ?2)
                     ORDER BY created_at, id"
                ))?
                .query_map(params![board, card], subscription_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let subscriptions = rows.into_iter().map(with_kinds).collect::<Result<_>>()?;
            Ok(Subscriptions { subscriptions })
        })
    }

    /// Delete a subscription (`deleted` is false when it did not exist).
    pub fn delete_notification_subscription(&self, id: &str) -> Result<Deleted> {
        let id = subscription_id(id)?;
        self.store.write(|tx| {
            let n = tx
                .prepare_cached("DELETE FROM workboard_subscriptions WHERE id = ?1")?
                .execute([&id])?;
            if n > 0 {
                persist::bump_revision(tx)?;
            }
            Ok(Deleted { deleted: n > 0 })
        })
    }

    /// Preview the next events (a subscription's after its cursor, or a board's /
    /// card's from the start); writes nothing.
    pub fn notification_events(&self, query: &EventsQuery) -> Result<NotificationEvents> {
        let sub_id = query
            .subscription_id
            .as_deref()
            .map(subscription_id)
            .transpose()?;
        self.store.read(|tx| {
            let sub = sub_id.as_deref().map(|id| require(tx, id)).transpose()?;
            let events = collect(tx, &filter_for(sub.as_ref(), query)?)?;
            Ok(NotificationEvents {
                subscription: sub,
                events,
            })
        })
    }

    /// Collect a subscription's next events and move its cursor past the last one,
    /// in one transaction (`subscriptionId is required to advance notification events.`).
    pub fn advance_notification_events(
        &self,
        query: &EventsQuery,
        now_ms: Option<i64>,
    ) -> Result<NotificationEvents> {
        let now = self.now(now_ms)?;
        let id = match query.subscription_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => subscription_id(id)?,
            _ => {
                return Err(Error::validation(
                    "subscriptionId is required to advance notification events.",
                ))
            }
        };
        self.store.write(|tx| {
            let mut sub = require(tx, &id)?;
            let events = collect(tx, &filter_for(Some(&sub), query)?)?;
            if let Some(last) = events.last() {
                sub.last_event_at = Some(last.created_at);
                sub.last_event_id = Some(last.id.clone());
                sub.last_event_sequence = Some(last.sequence);
                sub.updated_at = now;
                tx.prepare_cached(
                    "UPDATE workboard_subscriptions SET last_event_at = ?2, last_event_id = ?3,
                       last_event_sequence = ?4, updated_at = ?5 WHERE id = ?1",
                )?
                .execute(params![
                    sub.id,
                    sub.last_event_at,
                    sub.last_event_id,
                    sub.last_event_sequence,
                    now
                ])?;
                persist::bump_revision(tx)?;
            }
            Ok(NotificationEvents {
                subscription: Some(sub),
                events,
            })
        })
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
