//! Where a message for a user's agent goes: the conversation and the channel.
//!
//! Push dispatch, broadcasts, template sends and Telegram replies all route
//! through [`ConversationTarget`], so every path keeps the stable conversation
//! id and the same channel rule: Telegram when the binding carries a Telegram
//! chat, else `system_push`.

use rusqlite::{params, OptionalExtension, Row};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::ids;
use crate::store::Tx;

/// The routing of one active binding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConversationTarget {
    /// The bound consumer user.
    pub consumer_user_id: String,
    /// The bound agent.
    pub agent_key: String,
    /// The binding's conversation (the stable user-agent id when none was stored).
    pub conversation_id: String,
    /// Bot identity of the binding, if any.
    pub bot_identity: Option<String>,
    /// Telegram user id of the binding, if paired.
    pub telegram_user_id: Option<String>,
    /// Telegram chat id of the binding, if paired.
    pub telegram_chat_id: Option<String>,
}

impl ConversationTarget {
    /// `telegram` when the binding has a Telegram chat, else `system_push`.
    pub fn provider(&self) -> &'static str {
        if self.telegram_chat_id.is_some() {
            "telegram"
        } else {
            "system_push"
        }
    }

    /// The provider's user id: Telegram user, else Telegram chat, else the consumer user.
    pub fn provider_user_id(&self) -> &str {
        self.telegram_user_id
            .as_deref()
            .or(self.telegram_chat_id.as_deref())
            .unwrap_or(&self.consumer_user_id)
    }

    /// An enqueue payload for `text` on this target. `metadata` is extended with
    /// `consumerUserId` and the Telegram ids (when paired); its own keys win for
    /// anything else.
    pub fn payload(&self, text: &str, mut metadata: Map<String, Value>) -> Value {
        metadata.insert(
            "consumerUserId".into(),
            self.consumer_user_id.clone().into(),
        );
        if let Some(chat) = &self.telegram_chat_id {
            metadata.insert("telegramChatId".into(), chat.clone().into());
        }
        if let Some(user) = &self.telegram_user_id {
            metadata.insert("telegramUserId".into(), user.clone().into());
        }
        serde_json::json!({
            "provider": self.provider(),
            "providerUserId": self.provider_user_id(),
            "messageText": text,
            "metadata": Value::Object(metadata),
        })
    }
}

const COLUMNS: &str =
    "consumer_user_id, agent_key, conversation_id, bot_identity, telegram_user_id, telegram_chat_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ConversationTarget> {
    let consumer_user_id: String = r.get(0)?;
    let agent_key: String = r.get(1)?;
    let stored: String = r.get(2)?;
    let conversation_id = if stored.trim().is_empty() {
        ids::user_agent_conversation_id(&agent_key, &consumer_user_id)
    } else {
        stored.trim().to_string()
    };
    Ok(ConversationTarget {
        consumer_user_id,
        agent_key,
        conversation_id,
        bot_identity: r.get(3)?,
        telegram_user_id: r.get(4)?,
        telegram_chat_id: r.get(5)?,
    })
}

/// The user's active binding (any agent), if any.
pub(crate) fn active_target(tx: &Tx, consumer_user_id: &str) -> Result<Option<ConversationTarget>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM identity_bindings WHERE consumer_user_id = ?1 AND status = 'active'"
    );
    Ok(tx
        .prepare_cached(&sql)?
        .query_row(params![consumer_user_id], from_row)
        .optional()?)
}

/// The user's active binding if it is for `agent_key`.
pub(crate) fn active_target_for_agent(
    tx: &Tx,
    consumer_user_id: &str,
    agent_key: &str,
) -> Result<Option<ConversationTarget>> {
    Ok(active_target(tx, consumer_user_id)?.filter(|t| t.agent_key == agent_key))
}

/// Active bindings whose metadata names `company_id` (`metadata.companyId`),
/// oldest binding first.
pub(crate) fn active_targets_for_company(
    tx: &Tx,
    company_id: &str,
) -> Result<Vec<ConversationTarget>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM identity_bindings
         WHERE company_id = ?1 AND status = 'active' ORDER BY bound_at, id"
    );
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![company_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::factory;

    fn bind(tx: &Tx, user: &str, agent: &str, chat: Option<&str>, company: Option<&str>, at: i64) {
        let metadata = company.map(|c| serde_json::json!({ "companyId": c }).to_string());
        tx.execute(
            "INSERT INTO identity_bindings(consumer_user_id, agent_key, conversation_id, status, source,
               telegram_chat_id, metadata, bound_at) VALUES (?1, ?2, ?3, 'active', 'manual', ?4, ?5, ?6)",
            params![user, agent, ids::user_agent_conversation_id(agent, user), chat, metadata, at],
        )
        .unwrap();
    }

    #[test]
    fn routes_telegram_only_when_a_chat_is_bound() {
        let f = factory();
        f.store
            .write(|tx| {
                bind(tx, "u1", "a", Some("chat-1"), Some("co"), 1);
                bind(tx, "u2", "b", None, Some("co"), 2);
                bind(tx, "u3", "b", None, Some("other"), 3);
                let t1 = active_target(tx, "u1")?.unwrap();
                assert_eq!(
                    (t1.provider(), t1.provider_user_id()),
                    ("telegram", "chat-1")
                );
                assert_eq!(t1.conversation_id, "user-agent:a:u1");
                let t2 = active_target_for_agent(tx, "u2", "b")?.unwrap();
                assert_eq!(
                    (t2.provider(), t2.provider_user_id()),
                    ("system_push", "u2")
                );
                assert!(active_target_for_agent(tx, "u2", "a")?.is_none());
                let company: Vec<_> = active_targets_for_company(tx, "co")?
                    .into_iter()
                    .map(|t| t.consumer_user_id)
                    .collect();
                assert_eq!(company, ["u1", "u2"]);
                let payload = t1.payload("hi", Map::new());
                assert_eq!(payload["metadata"]["telegramChatId"], "chat-1");
                assert_eq!(payload["metadata"]["consumerUserId"], "u1");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn one_active_binding_per_user_is_enforced_by_the_schema() {
        let f = factory();
        let second = f.store.write(|tx| {
            bind(tx, "u1", "a", None, None, 1);
            tx.execute(
                "INSERT INTO identity_bindings(consumer_user_id, agent_key, conversation_id, status, source, bound_at)
                 VALUES ('u1', 'b', 'x', 'active', 'api', 2)",
                [],
            )?;
            Ok(())
        });
        assert!(second.is_err());
    }
}
