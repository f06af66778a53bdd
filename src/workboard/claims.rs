//! Claims: a lease `{owner_id, token, claimed_at, last_heartbeat_at, expires_at}`
//! on a card.
//!
//! Invariants: a claim is active iff its expiry is a valid timestamp in the
//! future; expiries never pass `MAX_DATE_TIMESTAMP_MS`; a heartbeat extends by the
//! claim's original TTL; heartbeat and release must name the claim (token or
//! owner; the token wins and is compared in constant time), so an anonymous
//! caller or a zombie with an old token cannot act on someone else's claim.

use serde::Serialize;
use serde_json::Value;

use super::cards::{apply_update, write};
use super::deps::promote_in;
use super::model::*;
use super::normalize::{self as n, new_id, Input};
use super::persist::require;
use super::{secret_eq, Workboard};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Result of `claim`: the card and the claim token (the capability).
#[derive(Debug, Clone, Serialize)]
pub struct ClaimResult {
    pub card: Card,
    pub token: String,
}

/// `now + ttl`, capped at the largest Date timestamp.
pub fn add_duration(now: i64, ttl_ms: i64) -> i64 {
    now.saturating_add(ttl_ms).min(MAX_DATE_TIMESTAMP_MS)
}

/// TTL in ms for `ttl_seconds` (`max(1, trunc(s)) * 1000`, capped).
pub fn ttl_ms(ttl_seconds: Option<f64>) -> Result<i64> {
    match ttl_seconds {
        None => Ok(DEFAULT_CLAIM_TTL_MS),
        Some(s) if s.is_finite() => {
            let ms = s.trunc().max(1.0) * 1000.0;
            Ok(if ms >= MAX_DATE_TIMESTAMP_MS as f64 {
                MAX_DATE_TIMESTAMP_MS
            } else {
                ms as i64
            })
        }
        Some(_) => Err(Error::validation("ttlSeconds must be a finite number.")),
    }
}

fn check_identity(claim: &Claim, token: Option<&str>, owner_id: Option<&str>) -> Result<()> {
    match (token, owner_id) {
        (Some(t), _) if !secret_eq(t, &claim.token) => {
            Err(Error::conflict("claim token does not match."))
        }
        (Some(_), _) => Ok(()),
        (None, Some(o)) if o != claim.owner_id => {
            Err(Error::conflict("claim owner does not match."))
        }
        (None, Some(_)) => Ok(()),
        (None, None) => Err(Error::validation("claim ownerId or token is required.")),
    }
}

fn clear_diagnostic(meta: &mut Metadata, kind: &str) {
    meta.diagnostics.retain(|d| d.kind != kind);
}

fn trimmed(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// `claim` inside `tx` (inputs already normalised): holds, schedule and retry
/// budget checked, the claim set and a `backlog`/`todo`/`ready` card started.
pub(crate) fn claim_in(
    tx: &Tx,
    id: &str,
    owner: &str,
    token: &str,
    ttl: i64,
    now: i64,
) -> Result<ClaimResult> {
    let card = promote_in(tx, require(tx, id.trim())?, now)?;
    let active = card.claim().filter(|c| c.is_active(now)).cloned();
    if !card.parent_ids().is_empty() && card.status != "ready" && active.is_none() {
        return Err(Error::invalid_state("card dependencies are not done."));
    }
    if card.status == "scheduled" {
        return Err(Error::invalid_state("card is scheduled for later."));
    }
    if card.retry_budget_exhausted() {
        return Err(Error::invalid_state("card exhausted its retry budget."));
    }
    if let Some(c) = active {
        return Err(Error::conflict(format!(
            "card already claimed by {}.",
            c.owner_id
        )));
    }
    let mut next = card.clone();
    let mut meta = next.meta();
    clear_diagnostic(&mut meta, "stranded_ready");
    meta.claim = Some(Claim {
        owner_id: owner.to_string(),
        token: token.to_string(),
        claimed_at: now,
        last_heartbeat_at: now,
        expires_at: Some(add_duration(now, ttl)),
    });
    next.set_meta(meta);
    let claimed = write(tx, &card, next, now)?;
    let mut next = claimed.clone();
    if ["backlog", "todo", "ready"].contains(&claimed.status.as_str()) {
        next.status = "running".into();
        if next.started_at.is_none() {
            next.started_at = Some(now);
        }
    }
    if next.agent_id.is_none() {
        next.agent_id = Some(owner.to_string());
    }
    let card = if next != claimed {
        write(tx, &claimed, next, now)?
    } else {
        claimed
    };
    Ok(ClaimResult {
        card,
        token: token.to_string(),
    })
}

impl Workboard {
    /// Claim a card for `owner_id` for `ttl_seconds` (default 30 min).
    pub fn claim(
        &self,
        id: &str,
        owner_id: &str,
        token: Option<&str>,
        ttl_seconds: Option<f64>,
        now_ms: Option<i64>,
    ) -> Result<ClaimResult> {
        let now = self.now(now_ms)?;
        let owner = n::required_text(Some(&Value::String(owner_id.into())), "claim ownerId", 120)?;
        let token = match token {
            Some(t) => {
                n::text(Some(&Value::String(t.into())), "claim token", 160)?.unwrap_or_else(new_id)
            }
            None => new_id(),
        };
        let ttl = ttl_ms(ttl_seconds)?;
        self.store
            .write(|tx| claim_in(tx, id, &owner, &token, ttl, now))
    }

    /// Extend the claim by its original TTL; a note becomes a comment.
    pub fn heartbeat(
        &self,
        id: &str,
        token: Option<&str>,
        owner_id: Option<&str>,
        note: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let note = n::text(
            note.map(|s| Value::String(s.into())).as_ref(),
            "heartbeat note",
            400,
        )?;
        let (token, owner_id) = (trimmed(token), trimmed(owner_id));
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            let Some(claim) = card.claim().cloned() else {
                return Err(Error::invalid_state("card is not claimed."));
            };
            check_identity(&claim, token, owner_id)?;
            let beat = now.max(claim.last_heartbeat_at.saturating_add(1));
            let expires_at = claim.expires_at.map(|e| {
                let ttl = if e > claim.claimed_at {
                    e - claim.last_heartbeat_at
                } else {
                    DEFAULT_CLAIM_TTL_MS
                };
                add_duration(beat, ttl.max(1))
            });
            let mut next = card.clone();
            let mut meta = next.meta();
            clear_diagnostic(&mut meta, "running_without_heartbeat");
            meta.claim = Some(Claim {
                last_heartbeat_at: beat,
                expires_at,
                ..claim
            });
            if let Some(body) = &note {
                meta.comments.push(Comment {
                    id: new_id(),
                    body: body.clone(),
                    created_at: now,
                    updated_at: None,
                });
                super::normalize_meta::keep_last(&mut meta.comments, MAX_CARD_COMMENTS);
            }
            next.set_meta(meta);
            write(tx, &card, next, now)
        })
    }

    /// Release the claim, optionally moving the card to `status` (holds enforced).
    pub fn release_claim(
        &self,
        id: &str,
        token: Option<&str>,
        owner_id: Option<&str>,
        status: Option<&str>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let status = match status {
            Some(s) => Some(n::status(Some(&Value::String(s.into())), "todo")?),
            None => None,
        };
        let (token, owner_id) = (trimmed(token), trimmed(owner_id));
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            let Some(claim) = card.claim().cloned() else {
                return Err(Error::invalid_state("card is not claimed."));
            };
            check_identity(&claim, token, owner_id)?;
            let mut patch = Input::new();
            if let Some(s) = &status {
                patch.insert("status".into(), Value::String(s.clone()));
            }
            patch.insert("metadata".into(), serde_json::json!({ "claim": null }));
            apply_update(tx, &card, &patch, true, now)
        })
    }
}
