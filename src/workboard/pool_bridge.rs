//! Run cards on the worker pool: `dispatch_to_queue` claims ready cards and
//! enqueues one message per card to its agent; the queue's settle points report
//! the message's outcome back to the card.
//!
//! Invariants:
//! - a card's claim and its message commit in ONE transaction (per card): a card
//!   is never claimed without a message, nor a message queued for an unclaimed
//!   card; a card whose enqueue fails is left as it was and reported in `failed`;
//! - a card whose agent is unknown or disabled is blocked with the reason and no
//!   message is queued;
//! - the message's payload metadata carries `workboardCardId`,
//!   `workboardBoardId` and `workboardClaimToken`; the conversation is
//!   `workboard:<boardId>:<cardId>`;
//! - the outcome is applied in the queue's own transaction (`complete`,
//!   `complete_and_claim`, `fail`, lease recovery), so a worker that dies loses
//!   nothing: completion → card `done`; dead letter → card `blocked` with the last
//!   error; a retry → the card stays `running` and its claim is heartbeat;
//! - the outcome only applies while the card still holds the message's claim
//!   token (an operator who reclaimed or reassigned the card wins); card-level
//!   refusals never fail the queue operation, storage errors do (and roll it back);
//! - ready cards are found through the `(board, status)` index and ranked
//!   urgent → low, then position, creation time and id.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

use super::cards::write;
use super::claims::{add_duration, claim_in, ttl_ms};
use super::context;
use super::model::*;
use super::normalize::{self as n, new_id, Input};
use super::persist;
use super::workflow::{block_in, complete_in};
use super::{Scope, Workboard};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::metrics::{self, target};
use crate::queue::EnqueueRequest;
use crate::store::Tx;

/// Owner id of the claims `dispatch_to_queue` takes unless told otherwise.
pub const DEFAULT_QUEUE_OWNER: &str = "agent-factory";
/// Cards per call unless told otherwise.
pub const DEFAULT_QUEUE_LIMIT: i64 = 50;
/// Most cards per call.
pub const MAX_QUEUE_LIMIT: i64 = 1000;
/// The payload `provider` of workboard messages.
pub const WORKBOARD_PROVIDER: &str = "workboard";
const MAX_REASON_CHARS: usize = 2000;

/// Options of `dispatch_to_queue`.
#[derive(Debug, Clone, Default)]
pub struct QueueDispatchOptions {
    /// Only this board (default: every board).
    pub board_id: Option<String>,
    /// Most cards to dispatch (1..=1000, default 50).
    pub limit: Option<i64>,
    /// Claim owner (default `agent-factory`).
    pub owner_id: Option<String>,
    /// Claim TTL in seconds (default 30 min); retries heartbeat it.
    pub ttl_seconds: Option<f64>,
    /// Agent for cards that name none.
    pub default_agent_id: Option<String>,
    /// Queue priority of the messages (default from config).
    pub priority: Option<i64>,
    /// Attempts before dead letter (default from config).
    pub max_attempts: Option<i64>,
}

/// A card handed to the pool.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedCard {
    /// The card, now `running` under the dispatcher's claim.
    pub card: Card,
    /// The queued message.
    pub message_id: String,
    /// `workboard:<boardId>:<cardId>`.
    pub conversation_id: String,
    /// The agent that runs it.
    pub agent_id: String,
}

/// A card that could not be dispatched (left unchanged).
#[derive(Debug, Clone, Serialize)]
pub struct QueueFailure {
    /// The card.
    pub card_id: String,
    /// Why.
    pub error: String,
}

/// Result of `dispatch_to_queue`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueDispatchResult {
    /// Cards claimed with their message queued.
    pub queued: Vec<QueuedCard>,
    /// Cards blocked because their agent is missing, unknown or disabled.
    pub blocked: Vec<Card>,
    /// Cards left unchanged because claiming or enqueueing failed.
    pub failed: Vec<QueueFailure>,
}

/// The conversation of a card's messages.
pub fn conversation_id(board_id: &str, card_id: &str) -> String {
    format!("workboard:{board_id}:{card_id}")
}

fn ready_ids(tx: &Tx, board: Option<&str>, limit: i64, now: i64) -> Result<Vec<String>> {
    let ready = status_rank("ready");
    let sql = "SELECT id FROM workboard_cards
         WHERE (?1 IS NULL OR board_id = ?1) AND status_rank = ?2 AND archived_at IS NULL
           AND (claim_owner IS NULL OR claim_expires_at < ?4)
         ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END,
                  position, created_at, id
         LIMIT ?3";
    Ok(tx
        .prepare_cached(sql)?
        .query_map(params![board, ready, limit, now], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

fn cap(text: &str) -> String {
    cap_text(text, MAX_REASON_CHARS).unwrap_or_else(|| "unknown error".into())
}

fn refused(e: &Error) -> bool {
    !matches!(e, Error::Storage(_))
}

/// Outcome of one card's transaction.
enum One {
    Queued(QueuedCard),
    Blocked(Card),
    Skipped,
}

struct Plan<'a> {
    owner: &'a str,
    ttl: i64,
    opts: &'a QueueDispatchOptions,
}

fn dispatch_one(factory: &Factory, tx: &Tx, id: &str, plan: &Plan, now: i64) -> Result<One> {
    let Some(card) = persist::load(tx, id)? else {
        return Ok(One::Skipped);
    };
    let live = card.claim().is_some_and(|c| c.is_active(now));
    if card.status != "ready" || live || card.meta().archived_at.is_some() {
        return Ok(One::Skipped); // taken by someone else since the ranking read
    }
    let agent = card
        .agent_id
        .clone()
        .or_else(|| plan.opts.default_agent_id.clone());
    let Some(agent) = agent else {
        let why = "Card has no agent and no default agent was given.";
        return block_in(tx, &card.id, why, None, now).map(One::Blocked);
    };
    if let Err(e) = crate::agents::require_enabled(tx, &agent) {
        if !refused(&e) {
            return Err(e);
        }
        return block_in(tx, &card.id, &cap(&e.to_string()), None, now).map(One::Blocked);
    }
    let card = if card.agent_id.is_none() {
        let mut next = card.clone();
        next.agent_id = Some(agent.clone());
        write(tx, &card, next, now)?
    } else {
        card
    };
    let token = new_id();
    let claimed = claim_in(tx, &card.id, plan.owner, &token, plan.ttl, now)?;
    let board = claimed.card.board_id();
    let conversation = conversation_id(&board, &claimed.card.id);
    let text = context::build(tx, &claimed.card, now)?;
    let payload = json!({
        "provider": WORKBOARD_PROVIDER,
        "providerUserId": format!("workboard:{board}"),
        "messageText": text,
        "metadata": {
            "workboardCardId": claimed.card.id,
            "workboardBoardId": board,
            "workboardClaimToken": token,
        },
    });
    let req = EnqueueRequest {
        conversation_id: conversation.clone(),
        agent_key: agent.clone(),
        payload,
        priority: plan.opts.priority,
        scheduled_for: None,
        max_attempts: plan.opts.max_attempts,
    };
    let message_id = factory.enqueue_within(tx, &req, now)?;
    Ok(One::Queued(QueuedCard {
        card: claimed.card,
        message_id,
        conversation_id: conversation,
        agent_id: agent,
    }))
}

impl Workboard {
    /// Hand the ready cards (every board, or `board_id`; urgent first, then by
    /// position) to the worker pool: per card, in one transaction, claim it and
    /// queue one message to its agent (or `default_agent_id`) carrying the worker
    /// context. A card whose agent is missing, unknown or disabled is blocked; a
    /// card whose claim or enqueue fails is left unchanged and reported. The
    /// workboard must be opened on the factory's store (`Workboard::with_store`).
    pub fn dispatch_to_queue(
        &self,
        factory: &Factory,
        opts: &QueueDispatchOptions,
        now_ms: Option<i64>,
    ) -> Result<QueueDispatchResult> {
        if !std::sync::Arc::ptr_eq(self.store(), factory.store()) {
            return Err(Error::validation(
                "dispatch_to_queue needs a workboard opened on the factory (Workboard(factory)).",
            ));
        }
        let now = self.now(now_ms)?;
        let board = match &opts.board_id {
            Some(b) => n::board_id(Some(&Value::String(b.clone())))?,
            None => None,
        };
        let limit = opts.limit.unwrap_or(DEFAULT_QUEUE_LIMIT);
        if !(1..=MAX_QUEUE_LIMIT).contains(&limit) {
            return Err(Error::validation(format!(
                "limit must be within 1..={MAX_QUEUE_LIMIT}, got {limit}"
            )));
        }
        let owner = n::required_text(
            Some(&Value::String(
                opts.owner_id.clone().unwrap_or(DEFAULT_QUEUE_OWNER.into()),
            )),
            "claim ownerId",
            120,
        )?;
        if let Some(a) = &opts.default_agent_id {
            crate::agents::validate_agent_key(a)?;
        }
        let plan = Plan {
            owner: &owner,
            ttl: ttl_ms(opts.ttl_seconds)?,
            opts,
        };
        let ids = self
            .store
            .read(|tx| ready_ids(tx, board.as_deref(), limit, now))?;
        let mut out = QueueDispatchResult {
            queued: Vec::new(),
            blocked: Vec::new(),
            failed: Vec::new(),
        };
        for id in ids {
            match self
                .store
                .write(|tx| dispatch_one(factory, tx, &id, &plan, now))
            {
                Ok(One::Queued(q)) => out.queued.push(q),
                Ok(One::Blocked(c)) => out.blocked.push(c),
                Ok(One::Skipped) => {}
                Err(e) if refused(&e) => out.failed.push(QueueFailure {
                    card_id: id,
                    error: e.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The workboard card and claim token a message runs, if it is a workboard message.
fn card_of(tx: &Tx, message_key: i64) -> Result<Option<(String, String)>> {
    let row: Option<(Option<String>, Option<String>)> = tx
        .prepare_cached(
            "SELECT json_extract(payload, '$.metadata.workboardCardId'),
                    json_extract(payload, '$.metadata.workboardClaimToken')
             FROM messages WHERE id = ?1",
        )?
        .query_row([message_key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        Some((Some(card), Some(token))) => Some((card, token)),
        _ => None,
    })
}

/// The card if it still holds the message's claim.
fn holding(tx: &Tx, card_id: &str, token: &str) -> Result<Option<Card>> {
    let card = persist::load(tx, card_id)?;
    Ok(card.filter(|c| {
        c.claim()
            .is_some_and(|cl| super::secret_eq(&cl.token, token))
    }))
}

fn skip(message_key: i64, card_id: &str, why: &str) {
    metrics::event(log::Level::Info, target::QUEUE, || {
        format!(
            "workboard card {card_id} of message {} left unchanged: {why}",
            crate::ids::message_id(message_key)
        )
    });
}

/// Queue hook: message `message_key` was completed by `worker_id`; complete its
/// card (summary `Completed by worker <id>`) in the same transaction.
pub(crate) fn on_message_done(tx: &Tx, message_key: i64, worker_id: &str, now: i64) -> Result<()> {
    let Some((card_id, token)) = card_of(tx, message_key)? else {
        return Ok(());
    };
    if holding(tx, &card_id, &token)?.is_none() {
        skip(
            message_key,
            &card_id,
            "the card no longer holds the message's claim",
        );
        return Ok(());
    }
    let scope = Scope {
        owner_id: None,
        token: Some(token),
    };
    let mut input = Input::new();
    input.insert(
        "summary".into(),
        Value::String(format!("Completed by worker {worker_id}")),
    );
    match complete_in(tx, &card_id, &input, Some(&scope), now) {
        Ok(_) => Ok(()),
        Err(e) if refused(&e) => {
            // A hold (e.g. a parent reopened meanwhile): the work is done but the
            // card cannot be; block it so an operator sees why.
            let why = cap(&format!(
                "Worker completed the card but it could not be closed: {e}"
            ));
            block_in(tx, &card_id, &why, Some(&scope), now).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Queue hook: message `message_key` failed with `error`. Dead-lettered → block
/// the card with the error; requeued → heartbeat the card's claim.
pub(crate) fn on_message_failed(
    tx: &Tx,
    message_key: i64,
    dead_lettered: bool,
    error: &str,
    now: i64,
) -> Result<()> {
    let Some((card_id, token)) = card_of(tx, message_key)? else {
        return Ok(());
    };
    let Some(card) = holding(tx, &card_id, &token)? else {
        skip(
            message_key,
            &card_id,
            "the card no longer holds the message's claim",
        );
        return Ok(());
    };
    if dead_lettered {
        let scope = Scope {
            owner_id: None,
            token: Some(token),
        };
        return block_in(tx, &card.id, &cap(error), Some(&scope), now).map(|_| ());
    }
    let Some(claim) = card.claim().cloned() else {
        return Ok(());
    };
    let beat = now.max(claim.last_heartbeat_at.saturating_add(1));
    let ttl = match claim.expires_at {
        Some(e) if e > claim.last_heartbeat_at => e - claim.last_heartbeat_at,
        _ => DEFAULT_CLAIM_TTL_MS,
    };
    let mut next = card.clone();
    let mut meta = next.meta();
    meta.claim = Some(Claim {
        last_heartbeat_at: beat,
        expires_at: Some(add_duration(beat, ttl)),
        ..claim
    });
    next.set_meta(meta);
    write(tx, &card, next, now).map(|_| ())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::queue::ClaimOptions;
    use crate::test_support::{factory_with_agent, T0};
    use crate::workers::WorkerMode;

    fn setup(max_attempts: Option<i64>) -> (Factory, Workboard, QueuedCard) {
        let f = factory_with_agent("a");
        let w = Workboard::with_store(f.store().clone(), f.clock().clone());
        let input = json!({"title": "t", "status": "ready", "agent_id": "a"});
        w.create(input.as_object().unwrap(), Some(T0)).unwrap();
        let opts = QueueDispatchOptions {
            max_attempts,
            ..Default::default()
        };
        let mut out = w.dispatch_to_queue(&f, &opts, Some(T0)).unwrap();
        assert_eq!(out.queued.len(), 1);
        (f, w, out.queued.remove(0))
    }

    fn pooled() -> ClaimOptions {
        ClaimOptions {
            conversation_id: None,
            mode: Some(WorkerMode::Pooled),
        }
    }

    #[test]
    fn completing_the_message_completes_the_card_in_the_same_transaction() {
        let (f, w, q) = setup(None);
        let c = f.claim("w1", &pooled(), Some(T0 + 1)).unwrap().unwrap();
        assert_eq!(c.message_id, q.message_id);
        assert!(f
            .complete("w1", &c.message_id, &c.lease_id, Some(T0 + 2))
            .unwrap());
        let card = w.get(&q.card.id).unwrap().unwrap();
        assert_eq!(card.status, "done");
        assert_eq!(
            card.meta().automation.unwrap().summary.as_deref(),
            Some("Completed by worker w1")
        );
    }

    #[test]
    fn a_dead_letter_blocks_the_card_with_the_error() {
        let (f, w, q) = setup(Some(1));
        let c = f.claim("w1", &pooled(), Some(T0 + 1)).unwrap().unwrap();
        let out = f
            .fail("w1", &c.message_id, &c.lease_id, "boom", Some(T0 + 2))
            .unwrap();
        assert!(out.dead_lettered);
        let card = w.get(&q.card.id).unwrap().unwrap();
        assert_eq!(card.status, "blocked");
        assert!(card.claim().is_none());
        assert_eq!(card.meta().comments.last().unwrap().body, "boom");
    }

    #[test]
    fn an_operator_reclaim_wins_over_a_late_completion() {
        let (f, w, q) = setup(None);
        let c = f.claim("w1", &pooled(), Some(T0 + 1)).unwrap().unwrap();
        w.reclaim(&q.card.id, None, None, None, Some(T0 + 2))
            .unwrap();
        assert!(f
            .complete("w1", &c.message_id, &c.lease_id, Some(T0 + 3))
            .unwrap());
        let card = w.get(&q.card.id).unwrap().unwrap();
        assert_ne!(card.status, "done");
        assert!(card.meta().automation.and_then(|a| a.summary).is_none());
    }
}
