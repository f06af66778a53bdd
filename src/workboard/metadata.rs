//! Metadata appends: comments, links, proof, artifacts, worker logs and protocol
//! violations. Each is one transaction that re-reads the card, checks the claim
//! scope, appends, and writes once (one event).

use serde_json::Value;

use super::budget::close_running_attempts;
use super::cards::write;
use super::deps::append_link;
use super::model::*;
use super::normalize::{self as n, new_id, Input};
use super::normalize_meta::{self as nm, keep_last};
use super::persist::{self, require, LogEntry};
use super::{assert_scope, Scope, Workboard};
use crate::error::{Error, Result};
use crate::store::Tx;

fn clear_missing_proof(meta: &mut Metadata) {
    meta.diagnostics.retain(|d| d.kind != "missing_proof");
}

/// Append a notification to the card and the durable log (sequence = log position).
#[allow(clippy::too_many_arguments)]
pub(crate) fn notify(
    tx: &Tx,
    card: &Card,
    meta: &mut Metadata,
    kind: &str,
    message: &str,
    session_key: Option<String>,
    run_id: Option<String>,
    now: i64,
) -> Result<()> {
    let message = cap_text(message, 240).unwrap_or_else(|| "Workboard notification.".into());
    let session_key = session_key.and_then(|s| cap_text(&s, 240));
    let run_id = run_id.and_then(|s| cap_text(&s, 160));
    let (id, seq) = persist::log(
        tx,
        card,
        &LogEntry {
            kind,
            message: &message,
            from_status: None,
            to_status: None,
            session_key: session_key.clone(),
            run_id: run_id.clone(),
        },
        now,
    )?;
    meta.notifications.push(Notification {
        id,
        kind: kind.to_string(),
        created_at: now,
        sequence: Some(seq),
        message,
        session_key,
        run_id,
    });
    keep_last(&mut meta.notifications, MAX_CARD_NOTIFICATIONS);
    Ok(())
}

impl Workboard {
    fn append(
        &self,
        id: &str,
        scope: Option<&Scope>,
        now: i64,
        f: impl FnOnce(&Tx, &Card, &mut Card) -> Result<()>,
    ) -> Result<Card> {
        self.store.write(|tx| {
            let card = require(tx, id.trim())?;
            assert_scope(&card, scope)?;
            let mut next = card.clone();
            f(tx, &card, &mut next)?;
            write(tx, &card, next, now)
        })
    }

    /// [`Self::append`] for writes that only change the card's metadata.
    fn append_meta(
        &self,
        id: &str,
        scope: Option<&Scope>,
        now: i64,
        f: impl FnOnce(&mut Metadata),
    ) -> Result<Card> {
        self.append(id, scope, now, |_, _, next| {
            let mut meta = next.meta();
            f(&mut meta);
            next.set_meta(meta);
            Ok(())
        })
    }

    /// Append a comment (`comment body is required.`; at most 2000 characters).
    pub fn add_comment(
        &self,
        id: &str,
        body: &str,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let body = n::text(Some(&Value::String(body.into())), "comment body", 2000)?
            .ok_or_else(|| Error::validation("comment body is required."))?;
        self.append_meta(id, scope, now, |meta| {
            meta.comments.push(Comment {
                id: new_id(),
                body,
                created_at: now,
                updated_at: None,
            });
            keep_last(&mut meta.comments, MAX_CARD_COMMENTS);
        })
    }

    /// Append an ordinary link (`type`, `target_card_id` or `url`, `title`).
    pub fn add_link(&self, id: &str, input: &Input, now_ms: Option<i64>) -> Result<Card> {
        let now = self.now(now_ms)?;
        let kind = input.get("type").and_then(Value::as_str).map(str::trim);
        if matches!(kind, Some("parent") | Some("child")) {
            return Err(Error::validation(
                "parent and child dependency links must use linkDependency.",
            ));
        }
        let link = nm::link(input, now)?
            .ok_or_else(|| Error::validation("link targetCardId or url is required."))?;
        self.append(id, None, now, |_, _, next| {
            let mut meta = next.meta();
            append_link(
                &mut meta,
                Link {
                    id: new_id(),
                    created_at: now,
                    ..link
                },
            )?;
            next.set_meta(meta);
            Ok(())
        })
    }

    /// Append proof (`status`, `label`, `command`, `url`, `note`); clears `missing_proof`.
    pub fn add_proof(
        &self,
        id: &str,
        input: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let proof = Proof {
            id: new_id(),
            created_at: now,
            ..nm::proof(input, now)?
        };
        self.append_meta(id, scope, now, |meta| {
            clear_missing_proof(meta);
            meta.proof.push(proof);
            keep_last(&mut meta.proof, MAX_CARD_PROOF);
        })
    }

    /// Append an artifact (`url` or `path` required); clears `missing_proof`.
    pub fn add_artifact(
        &self,
        id: &str,
        input: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let artifact = nm::artifact(input, now)?
            .ok_or_else(|| Error::validation("artifact url or path is required."))?;
        let artifact = Artifact {
            id: new_id(),
            created_at: now,
            ..artifact
        };
        self.append_meta(id, scope, now, |meta| {
            clear_missing_proof(meta);
            meta.artifacts.push(artifact);
            keep_last(&mut meta.artifacts, MAX_CARD_ARTIFACTS);
        })
    }

    /// Append proof and an artifact atomically (both validated before anything is written).
    pub fn add_proof_with_artifact(
        &self,
        id: &str,
        proof: &Input,
        artifact: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let proof = Proof {
            id: new_id(),
            created_at: now,
            ..nm::proof(proof, now)?
        };
        let artifact = nm::artifact(artifact, now)?
            .ok_or_else(|| Error::validation("artifact url or path is required."))?;
        let artifact = Artifact {
            id: new_id(),
            created_at: now,
            ..artifact
        };
        self.append_meta(id, scope, now, |meta| {
            clear_missing_proof(meta);
            meta.proof.push(proof);
            meta.artifacts.push(artifact);
            keep_last(&mut meta.proof, MAX_CARD_PROOF);
            keep_last(&mut meta.artifacts, MAX_CARD_ARTIFACTS);
        })
    }

    /// Append a worker log line (`level`: info, warning, error).
    pub fn add_worker_log(
        &self,
        id: &str,
        input: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        if let Some(level) = input.get("level").filter(|v| !v.is_null()) {
            if !level
                .as_str()
                .is_some_and(|l| ["info", "warning", "error"].contains(&l.trim()))
            {
                return Err(Error::validation(
                    "worker log level must be one of: info, warning, error.",
                ));
            }
        }
        let log = nm::worker_log(input, now)?
            .ok_or_else(|| Error::validation("worker log message is required."))?;
        let log = WorkerLog {
            id: new_id(),
            created_at: now,
            ..log
        };
        self.append_meta(id, scope, now, |meta| {
            meta.worker_logs.push(log);
            keep_last(&mut meta.worker_logs, MAX_CARD_WORKER_LOGS);
        })
    }

    /// Record that a worker stopped without completing or blocking the card:
    /// blocks it, closes running attempts, clears the claim, counts a failure and
    /// notifies `failed`.
    pub fn record_protocol_violation(
        &self,
        id: &str,
        input: &Input,
        scope: Option<&Scope>,
        now_ms: Option<i64>,
    ) -> Result<Card> {
        let now = self.now(now_ms)?;
        let detail = n::text(input.get("detail"), "protocol violation detail", 800)?
            .unwrap_or_else(|| "Worker stopped without completing or blocking the card.".into());
        let session_key = n::text(
            input.get("session_key"),
            "protocol violation sessionKey",
            240,
        )?;
        let run_id = n::text(input.get("run_id"), "protocol violation runId", 160)?;
        self.append(id, scope, now, |tx, card, next| {
            let mut meta = next.meta();
            meta.worker_logs.push(WorkerLog {
                id: new_id(),
                created_at: now,
                level: "error".into(),
                message: detail.clone(),
                session_key: session_key.clone(),
                run_id: run_id.clone(),
            });
            keep_last(&mut meta.worker_logs, MAX_CARD_WORKER_LOGS);
            if next.status != "done" {
                next.status = "blocked".into();
            }
            if let Some(e) = next.execution.as_mut().filter(|e| e.status == "running") {
                e.status = "blocked".into();
                e.updated_at = now;
            }
            close_running_attempts(&mut meta, now, "blocked", Some(&detail));
            meta.worker_protocol = Some(WorkerProtocol {
                state: "violated".into(),
                updated_at: now,
                detail: Some(detail.clone()),
            });
            meta.claim = None;
            meta.failure_count += 1;
            notify(
                tx,
                card,
                &mut meta,
                "failed",
                &detail,
                session_key.clone().or_else(|| card.card_session_key()),
                run_id.clone().or_else(|| card.card_run_id()),
                now,
            )?;
            next.set_meta(meta);
            Ok(())
        })
    }
}
