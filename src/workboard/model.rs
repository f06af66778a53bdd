//! The workboard data model: cards, their metadata document, boards, and the
//! seed's constants and enumerations.
//!
//! Invariants: every stored value already satisfies its cap (inputs are
//! validated once, store-generated text is capped with [`cap_text`]), so
//! re-reading and re-writing a card can never fail on an earlier value; empty
//! lists and a zero `failure_count` are never stored; a card with an empty
//! metadata document carries `metadata: None`.

use serde::{Deserialize, Serialize};

/// Statuses in list order.
pub const STATUSES: [&str; 9] = [
    "triage",
    "backlog",
    "todo",
    "scheduled",
    "ready",
    "running",
    "review",
    "blocked",
    "done",
];
/// Priorities, lowest first.
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
/// Link types.
pub const LINK_TYPES: [&str; 5] = ["parent", "child", "blocks", "blocked_by", "relates_to"];
/// Template ids kept on cards (others are dropped).
pub const TEMPLATE_IDS: [&str; 5] = ["bugfix", "docs", "release", "pr_review", "plugin"];
/// Statuses `promote_dependency_ready` may change.
pub const PROMOTABLE: [&str; 5] = ["backlog", "triage", "todo", "scheduled", "ready"];

/// Spacing of implicit positions.
pub const POSITION_STEP: i64 = 1000;
/// Events kept per card.
pub const MAX_CARD_EVENTS: usize = 50;
/// Attempts kept per card.
pub const MAX_CARD_ATTEMPTS: usize = 30;
/// Comments kept per card.
pub const MAX_CARD_COMMENTS: usize = 50;
/// Links per card (dependency links are never evicted).
pub const MAX_CARD_LINKS: usize = 50;
/// Proof entries kept per card.
pub const MAX_CARD_PROOF: usize = 40;
/// Artifacts kept per card.
pub const MAX_CARD_ARTIFACTS: usize = 40;
/// Attachments kept per card.
pub const MAX_CARD_ATTACHMENTS: usize = 20;
/// Worker logs kept per card.
pub const MAX_CARD_WORKER_LOGS: usize = 40;
/// Diagnostics kept per card.
pub const MAX_CARD_DIAGNOSTICS: usize = 12;
/// Notifications kept on the card (the durable log keeps all).
pub const MAX_CARD_NOTIFICATIONS: usize = 20;
/// Largest attachment in bytes.
pub const MAX_ATTACHMENT_BYTES: usize = 256 * 1024;
/// Budget of the serialized metadata document (UTF-8 bytes).
pub const MAX_CARD_METADATA_BYTES: usize = 24 * 1024;
/// Default claim TTL.
pub const DEFAULT_CLAIM_TTL_MS: i64 = 30 * 60 * 1000;
/// The largest JavaScript Date value; expiries are capped here.
pub const MAX_DATE_TIMESTAMP_MS: i64 = 8_640_000_000_000_000;
/// Entries of string-list inputs (`parents`, `skills`, `created_card_ids`).
pub const MAX_STRING_LIST: usize = 20;

/// Index of a status in list order.
pub fn status_rank(status: &str) -> i64 {
    STATUSES.iter().position(|s| *s == status).unwrap_or(0) as i64
}

/// `text` cut to `max` characters: the first `max - 1` plus `…`.
pub fn cap_text(text: &str, max: usize) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.chars().count() <= max {
        return Some(t.to_string());
    }
    let mut out: String = t.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    Some(out)
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// An agent session executing the card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    pub kind: String,
    pub engine: String,
    pub mode: String,
    pub status: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
}

/// One entry of the card's event history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// A run attempt (`metadata.attempts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: String,
    pub status: String,
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub body: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

/// A link to another card or a URL (dependency links are `parent`/`child`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_card_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Link {
    /// Whether this is a `parent` or `child` dependency link.
    pub fn is_dependency(&self) -> bool {
        self.kind == "parent" || self.kind == "child"
    }
}

/// A proof entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    pub id: String,
    pub status: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An artifact (a URL or a path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The index entry of an attachment (its bytes live in the attachment row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub id: String,
    pub card_id: String,
    pub created_at: i64,
    pub file_name: String,
    pub byte_size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A worker log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerLog {
    pub id: String,
    pub created_at: i64,
    pub level: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The worker protocol state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerProtocol {
    pub state: String,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A workspace the card runs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// Automation settings (`metadata.automation`); the board lives here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Automation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_card_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_card_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dispatch_at: Option<i64>,
}

impl Automation {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Automation::default()
    }
}

/// A claim (lease) on a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub owner_id: String,
    pub token: String,
    pub claimed_at: i64,
    pub last_heartbeat_at: i64,
    /// Absent when the stored expiry was not a valid Date timestamp: such a claim is inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl Claim {
    /// Active iff the expiry is a valid timestamp in the future.
    pub fn is_active(&self, now: i64) -> bool {
        matches!(self.expires_at, Some(e) if e > now && e <= MAX_DATE_TIMESTAMP_MS)
    }
}

/// An action suggested by a diagnostic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticAction {
    pub kind: String,
    pub label: String,
}

/// A diagnostic signal on a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub kind: String,
    pub severity: String,
    pub title: String,
    pub detail: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub count: i64,
    #[serde(default)]
    pub actions: Vec<DiagnosticAction>,
}

/// A notification kept on the card (the durable log in `workboard_log` keeps all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// Stale-session marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stale {
    pub detected_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_session_updated_at: Option<i64>,
    pub reason: String,
}

/// The card's metadata document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<Proof>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentMeta>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_logs: Vec<WorkerLog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_protocol: Option<WorkerProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation: Option<Automation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<Stale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_status_source_updated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failure_count: i64,
}

impl Metadata {
    /// Whether nothing would be serialized.
    pub fn is_empty(&self) -> bool {
        *self == Metadata::default()
    }

    /// Serialized size in bytes (what the 24 KiB budget measures).
    pub fn byte_size(&self) -> usize {
        serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
    }

    /// Parent card ids (de-duplicated, in link order).
    pub fn parent_ids(&self) -> Vec<String> {
        self.dependency_ids("parent")
    }

    /// Child card ids (de-duplicated, in link order).
    pub fn child_ids(&self) -> Vec<String> {
        self.dependency_ids("child")
    }

    fn dependency_ids(&self, kind: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in &self.links {
            if let (true, Some(t)) = (l.kind == kind, &l.target_card_id) {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
        }
        out
    }
}

/// A workboard card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub notes: Option<String>,
    pub status: String,
    pub priority: String,
    pub labels: Vec<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub session_key: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default)]
    pub execution: Option<Execution>,
    pub position: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub started_at: Option<i64>,
    #[serde(default)]
    pub completed_at: Option<i64>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

impl Card {
    /// The metadata document (empty when absent).
    pub fn meta(&self) -> Metadata {
        self.metadata.clone().unwrap_or_default()
    }

    /// Store `meta`, or `None` when it is empty.
    pub fn set_meta(&mut self, meta: Metadata) {
        self.metadata = if meta.is_empty() { None } else { Some(meta) };
    }

    /// The board (`metadata.automation.board_id`, default `"default"`).
    pub fn board_id(&self) -> String {
        self.metadata
            .as_ref()
            .and_then(|m| m.automation.as_ref())
            .and_then(|a| a.board_id.clone())
            .unwrap_or_else(|| "default".to_string())
    }

    /// The automation settings, if any.
    pub fn automation(&self) -> Option<&Automation> {
        self.metadata.as_ref().and_then(|m| m.automation.as_ref())
    }

    /// The claim, if any.
    pub fn claim(&self) -> Option<&Claim> {
        self.metadata.as_ref().and_then(|m| m.claim.as_ref())
    }

    /// Session key of the card or of its execution.
    pub fn card_session_key(&self) -> Option<String> {
        self.session_key
            .clone()
            .or_else(|| self.execution.as_ref().and_then(|e| e.session_key.clone()))
    }

    /// Run id of the card or of its execution.
    pub fn card_run_id(&self) -> Option<String> {
        self.run_id
            .clone()
            .or_else(|| self.execution.as_ref().and_then(|e| e.run_id.clone()))
    }

    /// Parent card ids.
    pub fn parent_ids(&self) -> Vec<String> {
        self.metadata
            .as_ref()
            .map(Metadata::parent_ids)
            .unwrap_or_default()
    }

    /// Number of failed or blocked attempts counted so far.
    pub fn failure_count(&self) -> i64 {
        self.metadata.as_ref().map(|m| m.failure_count).unwrap_or(0)
    }

    /// `max_retries && failure_count > max_retries`.
    pub fn retry_budget_exhausted(&self) -> bool {
        matches!(self.automation().and_then(|a| a.max_retries), Some(m) if m > 0 && self.failure_count() > m)
    }
}

/// A board's orchestration settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Orchestration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_decompose: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_decompose_per_dispatch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_profile: Option<String>,
}

/// A stored board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Board {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub color: Option<String>,
    pub default_workspace: Option<Workspace>,
    pub orchestration: Option<Orchestration>,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived_at: Option<i64>,
}
