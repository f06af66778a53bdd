//! Card events: exactly one per write, chosen by the seed's priority rules, and
//! at most [`MAX_CARD_EVENTS`] kept.

use super::model::*;
use super::normalize::new_id;

/// Append `event`, keeping the last 50.
pub fn push(card: &mut Card, event: Event) {
    card.events.push(event);
    if card.events.len() > MAX_CARD_EVENTS {
        let extra = card.events.len() - MAX_CARD_EVENTS;
        card.events.drain(..extra);
    }
}

/// A bare event of `kind` at `at`.
pub fn plain(kind: &str, at: i64) -> Event {
    Event {
        id: new_id(),
        kind: kind.to_string(),
        at,
        from_status: None,
        to_status: None,
        session_key: None,
        run_id: None,
    }
}

fn last_changed<T>(a: &[T], b: &[T], id: impl Fn(&T) -> &str) -> bool {
    a.len() != b.len() || a.last().map(&id) != b.last().map(&id)
}

/// The event describing the write `existing` → `next` (`updateEvent` of the seed).
pub fn update_event(existing: &Card, next: &Card, now: i64) -> Event {
    let (a, b) = (existing.meta(), next.meta());
    let mut e = plain("edited", now);
    let state = |m: &Metadata| m.worker_protocol.as_ref().map(|p| p.state.clone());
    if state(&b).as_deref() == Some("violated") && state(&a).as_deref() != Some("violated") {
        e.kind = "protocol_violation".into();
    } else if existing.status != next.status || existing.position != next.position {
        e.kind = "moved".into();
        e.from_status = Some(existing.status.clone());
        e.to_status = Some(next.status.clone());
    } else if existing.card_session_key() != next.card_session_key() {
        e.kind = "linked".into();
        e.session_key = next.card_session_key();
    } else if a.claim.as_ref().map(|c| &c.token) != b.claim.as_ref().map(|c| &c.token) {
        e.kind = "claimed".into();
    } else if a.claim.as_ref().map(|c| c.last_heartbeat_at)
        != b.claim.as_ref().map(|c| c.last_heartbeat_at)
    {
        e.kind = "heartbeat".into();
    } else if existing.execution.as_ref().map(|x| (&x.status, &x.engine))
        != next.execution.as_ref().map(|x| (&x.status, &x.engine))
        || existing.card_run_id() != next.card_run_id()
    {
        let last = b.attempts.last();
        e.session_key = last.and_then(|t| t.session_key.clone());
        e.run_id = last.and_then(|t| t.run_id.clone());
        if b.attempts.len() > a.attempts.len() {
            e.kind = "attempt_started".into();
        } else if let Some(l) = last.filter(|l| {
            a.attempts
                .iter()
                .find(|p| p.id == l.id)
                .is_some_and(|p| p.status != l.status)
        }) {
            e.kind = "attempt_updated".into();
            e.run_id = l.run_id.clone();
        } else {
            e.kind = "execution_updated".into();
            e.session_key = next.card_session_key();
            e.run_id = next.card_run_id();
        }
    } else if last_changed(&a.comments, &b.comments, |c| &c.id) {
        e.kind = "comment_added".into();
    } else if last_changed(&a.links, &b.links, |l| &l.id) {
        e.kind = "link_added".into();
    } else if last_changed(&a.proof, &b.proof, |p| &p.id) {
        e.kind = "proof_added".into();
    } else if last_changed(&a.artifacts, &b.artifacts, |p| &p.id) {
        e.kind = "artifact_added".into();
    } else if a.attachments != b.attachments {
        e.kind = if b.attachments.len() > a.attachments.len() {
            "attachment_added".into()
        } else {
            "edited".into()
        };
    } else if state(&a) != state(&b) || a.worker_logs != b.worker_logs {
        e.kind = "orchestration".into();
    } else if a.diagnostics.len() != b.diagnostics.len() {
        e.kind = "diagnostic".into();
    } else if a.notifications != b.notifications {
        e.kind = "notification".into();
    } else if a
        .automation
        .as_ref()
        .map(|x| (x.dispatch_count, x.last_dispatch_at))
        != b.automation
            .as_ref()
            .map(|x| (x.dispatch_count, x.last_dispatch_at))
    {
        e.kind = "dispatch".into();
    } else if a.archived_at.is_none() && b.archived_at.is_some() {
        e.kind = "archived".into();
    } else if a.archived_at.is_some() && b.archived_at.is_none() {
        e.kind = "unarchived".into();
    } else if a.stale.is_none() && b.stale.is_some() {
        e.kind = "stale".into();
    }
    e
}
