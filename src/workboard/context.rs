//! The worker context: a bounded markdown brief of a card for the agent that
//! works on it (the seed's `buildWorkerContext`).
//!
//! Invariants: every section is bounded (last 8 attempts, proof, artifacts,
//! attachments, worker logs and links; last 12 comments; last 6 done parents;
//! 5 recent done cards of the same agent on the same board) and every line is
//! capped, so the context size does not grow with the card's history; empty
//! sections are omitted; reads only (one read transaction, indexed lookups).

use rusqlite::params;

use super::diagnostics::compute;
use super::model::*;
use super::persist::{self, require};
use super::Workboard;
use crate::error::Result;
use crate::store::Tx;

const MAX_WORKER_CONTEXT_PARENTS: usize = 6;
const MAX_WORKER_CONTEXT_RECENT_CARDS: i64 = 5;

fn cap(text: &str, max: usize) -> String {
    cap_text(text, max).unwrap_or_default()
}

fn last<T>(list: &[T], n: usize) -> &[T] {
    &list[list.len().saturating_sub(n)..]
}

/// A card's result: its summary, else its last non-blank comment, else its last proof note.
fn result_of(card: &Card) -> Option<String> {
    let meta = card.meta();
    meta.automation
        .as_ref()
        .and_then(|a| a.summary.clone())
        .or_else(|| {
            meta.comments
                .iter()
                .rev()
                .find(|c| !c.body.trim().is_empty())
                .map(|c| c.body.clone())
        })
        .or_else(|| {
            meta.proof
                .iter()
                .rev()
                .find_map(|p| p.note.clone().filter(|n| !n.trim().is_empty()))
        })
}

fn section(out: &mut Vec<String>, title: &str, lines: Vec<String>) {
    if !lines.is_empty() {
        out.push(String::new());
        out.push(title.to_string());
        out.extend(lines);
    }
}

fn card_lines(card: &Card, meta: &Metadata, out: &mut Vec<String>) {
    if let Some(notes) = &card.notes {
        section(out, "## Notes", vec![cap(notes, 4000)]);
    }
    let attempts = last(&meta.attempts, 8)
        .iter()
        .map(|a| {
            let mut parts = vec!["-".to_string(), a.status.clone()];
            parts.extend(a.model.clone());
            parts.extend(a.error.as_deref().map(|e| format!("error={}", cap(e, 240))));
            parts.join(" ").trim().to_string()
        })
        .collect();
    section(out, "## Recent attempts", attempts);
    let comments = last(&meta.comments, 12)
        .iter()
        .map(|c| format!("- {}", cap(&c.body, 400)))
        .collect();
    section(out, "## Recent comments", comments);
    let proof = last(&meta.proof, 8)
        .iter()
        .map(|p| {
            let text = p
                .label
                .as_ref()
                .or(p.command.as_ref())
                .or(p.url.as_ref())
                .or(p.note.as_ref())
                .map(|t| cap(t, 400))
                .unwrap_or_default();
            format!("- {}: {text}", p.status).trim_end().to_string()
        })
        .collect();
    section(out, "## Proof", proof);
    let artifacts = last(&meta.artifacts, 8)
        .iter()
        .map(|a| {
            let text = a.label.as_ref().or(a.url.as_ref()).or(a.path.as_ref());
            format!("- {}", text.map(|t| cap(t, 400)).unwrap_or_default())
        })
        .collect();
    section(out, "## Artifacts", artifacts);
    let attachments = last(&meta.attachments, 8)
        .iter()
        .map(|a| {
            let mut parts = vec![a.file_name.clone(), format!("{} bytes", a.byte_size)];
            parts.extend(a.mime_type.clone());
            parts.extend(a.note.clone());
            format!("- {}", cap(&parts.join(" \u{b7} "), 500))
        })
        .collect();
    section(out, "## Attachments", attachments);
    if let Some(p) = &meta.worker_protocol {
        let detail = p
            .detail
            .as_deref()
            .map(|d| cap(d, 500))
            .unwrap_or_else(|| "no detail".into());
        section(
            out,
            "## Worker protocol",
            vec![format!("{}: {detail}", p.state)],
        );
    }
    let logs = last(&meta.worker_logs, 8)
        .iter()
        .map(|l| format!("- {}: {}", l.level, cap(&l.message, 500)))
        .collect();
    section(out, "## Worker logs", logs);
    let links = last(&meta.links, 8)
        .iter()
        .map(|l| {
            let text = l
                .title
                .as_ref()
                .or(l.url.as_ref())
                .or(l.target_card_id.as_ref())
                .cloned()
                .unwrap_or_default();
            format!("- {}: {text}", l.kind).trim_end().to_string()
        })
        .collect();
    section(out, "## Links", links);
}

fn related_lines(tx: &Tx, card: &Card, out: &mut Vec<String>) -> Result<()> {
    let parents = card.parent_ids();
    let mut done = Vec::new();
    for pid in &parents {
        if let Some(p) = persist::load(tx, pid)?.filter(|p| p.status == "done") {
            done.push(p);
        }
    }
    let parent_lines = last(&done, MAX_WORKER_CONTEXT_PARENTS)
        .iter()
        .map(|p| {
            let r = result_of(p).map(|r| cap(&r, 500));
            format!(
                "- {} {}: {}",
                p.id,
                p.title,
                r.unwrap_or_else(|| "done".into())
            )
        })
        .collect();
    section(out, "## Parent results", parent_lines);
    if let Some(agent) = &card.agent_id {
        let recent = persist::load_many(
            tx,
            "SELECT doc FROM workboard_cards WHERE agent_id = ?1 AND status_rank = 8
               AND board_id = ?2 AND id <> ?3 ORDER BY updated_at DESC, id LIMIT ?4",
            params![
                agent,
                card.board_id(),
                card.id,
                MAX_WORKER_CONTEXT_RECENT_CARDS
            ],
        )?;
        let lines = recent
            .iter()
            .map(|c| {
                let r = result_of(c).map(|r| cap(&r, 300));
                format!(
                    "- {} {}: {}",
                    c.id,
                    c.title,
                    r.unwrap_or_else(|| "done".into())
                )
            })
            .collect();
        section(out, &format!("## Recent done work by {agent}"), lines);
    }
    Ok(())
}

fn automation_lines(a: &Automation) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(t) = &a.tenant {
        lines.push(format!("Tenant: {t}"));
    }
    if let Some(b) = &a.board_id {
        lines.push(format!("Board: {b}"));
    }
    if let Some(s) = a.skills.as_ref().filter(|s| !s.is_empty()) {
        lines.push(format!("Skills: {}", s.join(", ")));
    }
    if let Some(w) = &a.workspace {
        match &w.path {
            Some(p) => lines.push(format!("Workspace: {} {p}", w.kind)),
            None => lines.push(format!("Workspace: {}", w.kind)),
        }
    }
    if let Some(s) = &a.summary {
        lines.push(format!("Summary: {}", cap(s, 400)));
    }
    lines
}

/// The worker context of `card` at `now`.
pub(crate) fn build(tx: &Tx, card: &Card, now: i64) -> Result<String> {
    let meta = card.meta();
    let mut out = vec![
        format!("# Workboard card {}", card.id),
        format!("Title: {}", card.title),
        format!("Status: {}", card.status),
        format!("Priority: {}", card.priority),
        format!("Board: {}", card.board_id()),
        format!("Agent: {}", card.agent_id.as_deref().unwrap_or("(default)")),
    ];
    card_lines(card, &meta, &mut out);
    related_lines(tx, card, &mut out)?;
    if let Some(a) = &meta.automation {
        section(&mut out, "## Automation", automation_lines(a));
    }
    let active = compute(card, now)
        .iter()
        .map(|d| format!("- {}: {}", d.severity, d.title))
        .collect();
    section(&mut out, "## Active diagnostics", active);
    Ok(out.join("\n"))
}

impl Workboard {
    /// The markdown brief a worker gets for card `id`: the card, its recent
    /// attempts, comments, proof, artifacts, attachments, worker protocol and logs,
    /// links, the results of its done parents (any board), recent done work of its
    /// agent on its board, its automation and the diagnostics active at `now`.
    pub fn build_worker_context(&self, id: &str, now_ms: Option<i64>) -> Result<String> {
        let now = self.now(now_ms)?;
        self.store.read(|tx| {
            let card = require(tx, id.trim())?;
            build(tx, &card, now)
        })
    }
}
