//! Operator requeue of a dead-lettered message.
//!
//! A dead-lettered message goes back to its conversation as a fresh delivery:
//! status `queued`, attempts reset to 0 and its `scheduled_for` set to now, so
//! within its conversation it comes after every message that was due before
//! the requeue (a replay never overtakes work already waiting). Its last error is kept for
//! context until it is claimed again. Only `dead_letter` messages can be
//! requeued; the agent must still exist and be enabled. The conversation's head
//! is recomputed in the same transaction unless a message is in flight there
//! (then completing that message picks the next head as usual).

use rusqlite::{params, OptionalExtension};

use super::conversations;
use super::stats::{job_in, JobView};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::ids;
use crate::metrics::{self, target};

impl Factory {
    /// Put a dead-lettered message back in its conversation's queue (see the module docs).
    /// `NotFound` for an unknown id, `InvalidState` unless the message is dead-lettered.
    pub fn requeue(&self, message_id: &str, now_ms: Option<i64>) -> Result<JobView> {
        let key = ids::parse_message_id(message_id)?;
        let now = self.now(now_ms)?;
        self.store.write(|tx| {
            let found: Option<(String, String, i64, String)> = tx
                .prepare_cached(
                    "SELECT m.status, m.agent_key, m.conversation_ref, c.state
                     FROM messages m JOIN conversations c ON c.id = m.conversation_ref WHERE m.id = ?1",
                )?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?;
            let Some((status, agent_key, conv_ref, conv_state)) = found else {
                return Err(Error::not_found(format!("message {message_id} not found")));
            };
            if status != "dead_letter" {
                return Err(Error::invalid_state(format!(
                    "message {message_id} is {status}; only dead_letter messages can be requeued"
                )));
            }
            crate::agents::require_enabled(tx, &agent_key)?;
            tx.prepare_cached(
                "UPDATE messages SET status = 'queued', attempts = 0, scheduled_for = ?2, ready_at = ?2,
                   next_retry_at = NULL, dead_lettered_at = NULL, finished_at = NULL, claimed_by = NULL
                 WHERE id = ?1",
            )?
            .execute(params![key, now])?;
            if conv_state != "busy" {
                conversations::refresh_head(tx, conv_ref, now)?;
            }
            metrics::event(log::Level::Info, target::QUEUE, || {
                format!("dead-lettered message {message_id} requeued by an operator")
            });
            job_in(tx, key)?.ok_or_else(|| Error::storage("requeued message vanished"))
        })
    }
}
