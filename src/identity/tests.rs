//! Unit tests of bindings and pairing codes.

use super::pairing::{new_pairing_code, PAIRING_CODE_ALPHABET, PAIRING_CODE_LEN};
use super::*;
use crate::agents::AgentInput;
use crate::error::Error;
use crate::factory::Factory;
use crate::test_support::{factory, T0};

fn agent(f: &Factory, key: &str, bot: Option<&str>, enabled: bool) {
    f.upsert_agent(
        AgentInput {
            agent_key: key.into(),
            version: "1.0.0".into(),
            bot_identity: bot.map(str::to_string),
            enabled,
            ..Default::default()
        },
        None,
    )
    .unwrap();
}

fn tg(user: &str, agent: &str, bot: Option<&str>, tg_user: &str, chat: &str) -> BindRequest {
    BindRequest {
        bot_identity: bot.map(str::to_string),
        source: "telegram_pairing".into(),
        telegram_user_id: Some(tg_user.into()),
        telegram_chat_id: Some(chat.into()),
        ..BindRequest::new(user, agent)
    }
}

fn count(f: &Factory, sql: &str) -> i64 {
    f.store
        .read(|tx| Ok(tx.query_row(sql, [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn bind_resolve_rebind_and_revoke_like_the_seed() {
    let f = factory();
    agent(&f, "agent-a", Some("bot-agent-a"), true);
    agent(&f, "agent-b", Some("bot-agent-b"), true);
    let first = f
        .bind_user_agent(
            &tg(
                "u-1",
                "agent-a",
                Some("bot-agent-a"),
                "tg-user-1",
                "tg-chat-1",
            ),
            None,
        )
        .unwrap();
    assert_eq!(first.conversation_id, "user-agent:agent-a:u-1");
    assert_eq!(
        f.resolve_agent_for_user("u-1").unwrap().as_deref(),
        Some("agent-a")
    );
    let t = f
        .resolve_agent_for_telegram(None, Some("tg-user-1"), None)
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.agent_key.as_str(), t.conversation_id.as_str()),
        ("agent-a", "user-agent:agent-a:u-1")
    );
    let mut rebind = tg("u-1", "agent-b", None, "tg-user-1", "tg-chat-1");
    rebind.source = "manual".into();
    let second = f.bind_user_agent(&rebind, None).unwrap();
    assert_eq!(second.bot_identity.as_deref(), Some("bot-agent-b"));
    assert_eq!(
        f.resolve_agent_for_user("u-1").unwrap().as_deref(),
        Some("agent-b")
    );
    assert_eq!(f.revoke_user_agent_binding("u-1", None).unwrap(), 1);
    assert!(f
        .resolve_agent_for_telegram(None, None, Some("tg-chat-1"))
        .unwrap()
        .is_none());
    let history = f.list_user_bindings("u-1", 10).unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|b| b.status == "revoked"));
}

#[test]
fn a_bot_identity_never_falls_back_to_another_bots_binding() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    f.bind_user_agent(&tg("u1", "a", None, "tg-1", "chat-1"), None)
        .unwrap();
    assert!(f
        .resolve_agent_for_telegram(Some("bot-b"), Some("tg-1"), Some("chat-1"))
        .unwrap()
        .is_none());
    let by_chat = f
        .resolve_agent_for_telegram(Some("bot-a"), Some("other"), Some("chat-1"))
        .unwrap()
        .unwrap();
    assert_eq!(by_chat.consumer_user_id, "u1");
}

#[test]
fn binding_a_telegram_user_elsewhere_revokes_the_other_users_binding() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    f.bind_user_agent(&tg("u1", "a", None, "tg-1", "chat-1"), None)
        .unwrap();
    f.bind_user_agent(&tg("u2", "a", None, "tg-1", "chat-2"), None)
        .unwrap();
    assert!(f.get_user_agent_binding("u1").unwrap().is_none());
    assert_eq!(
        f.get_user_agent_binding("u2")
            .unwrap()
            .unwrap()
            .telegram_chat_id
            .as_deref(),
        Some("chat-2")
    );
}

#[test]
fn rejected_binds_write_nothing() {
    let f = factory();
    agent(&f, "nobot", None, true);
    let err = f
        .bind_user_agent(&tg("u1", "nobot", None, "tg-1", "chat-1"), None)
        .unwrap_err();
    assert!(matches!(err, Error::Validation(ref m) if m.contains("missing botIdentity")));
    let err = f
        .bind_user_agent(&BindRequest::new("u1", "ghost"), None)
        .unwrap_err();
    assert_eq!(err, Error::not_found("Agent profile 'ghost' not found"));
    let mut bad = BindRequest::new("u1", "nobot");
    bad.source = "carrier-pigeon".into();
    assert!(f.bind_user_agent(&bad, None).is_err());
    assert!(f
        .bind_user_agent(&BindRequest::new(" u1", "nobot"), None)
        .is_err());
    assert_eq!(count(&f, "SELECT count(*) FROM identity_bindings"), 0);
}

#[test]
fn pairing_codes_come_from_the_alphabet() {
    let a = new_pairing_code();
    assert_eq!(a.len(), PAIRING_CODE_LEN);
    assert!(a.bytes().all(|b| PAIRING_CODE_ALPHABET.contains(&b)));
    assert_ne!(a, new_pairing_code());
}

#[test]
fn pairing_is_consumed_once_and_binds_the_user() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    let p = f.create_pairing_code("u1", "a", Some(1), None).unwrap();
    assert_eq!(p.expires_at - p.created_at, 60_000);
    let used = f
        .consume_pairing_code(
            &p.code.to_lowercase(),
            Some("bot-a"),
            "tg-1",
            "chat-1",
            None,
        )
        .unwrap();
    assert_eq!(used.status, "used");
    let t = f
        .resolve_agent_for_telegram(Some("bot-a"), Some("tg-1"), None)
        .unwrap()
        .unwrap();
    assert_eq!(t.conversation_id, "user-agent:a:u1");
    let again = f
        .consume_pairing_code(&p.code, Some("bot-a"), "tg-1", "chat-1", None)
        .unwrap_err();
    assert_eq!(
        again,
        Error::invalid_state("Pairing code already used or expired")
    );
}

#[test]
fn an_expired_code_is_persisted_as_expired() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    let p = f.create_pairing_code("u1", "a", None, None).unwrap();
    let err = f
        .consume_pairing_code(&p.code, Some("bot-a"), "tg-1", "chat-1", Some(p.expires_at))
        .unwrap_err();
    assert_eq!(err, Error::invalid_state("Pairing code expired"));
    let status: String = f
        .store
        .read(|tx| {
            Ok(tx.query_row(
                "SELECT status FROM pairing_codes WHERE code = ?1",
                [&p.code],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(status, "expired");
    assert_eq!(count(&f, "SELECT count(*) FROM identity_bindings"), 0);
}

#[test]
fn pairing_errors_follow_the_seed_order() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    agent(&f, "nobot", None, true);
    agent(&f, "off", Some("bot-off"), false);
    assert!(matches!(
        f.create_pairing_code("u1", "nobot", None, None),
        Err(Error::InvalidState(m)) if m.contains("missing botIdentity")
    ));
    assert!(matches!(
        f.create_pairing_code("u1", "off", None, None),
        Err(Error::InvalidState(m)) if m == "Agent profile 'off' not found or disabled"
    ));
    assert_eq!(
        f.consume_pairing_code("ZZZZ", Some("bot-a"), "t", "c", None)
            .unwrap_err(),
        Error::not_found("Pairing code not found")
    );
    let p = f.create_pairing_code("u1", "a", None, None).unwrap();
    assert_eq!(
        f.consume_pairing_code(&p.code, None, "t", "c", None)
            .unwrap_err(),
        Error::validation("Missing bot identity for Telegram pairing")
    );
    assert_eq!(
        f.consume_pairing_code(&p.code, Some("bot-x"), "t", "c", None)
            .unwrap_err(),
        Error::validation("Pairing code belongs to a different Telegram bot")
    );
    assert_eq!(
        f.pairing_code_status(&p.code, None)
            .unwrap()
            .unwrap()
            .status,
        "pending"
    );
    assert_eq!(
        f.pairing_code_status(&p.code, Some(p.expires_at))
            .unwrap()
            .unwrap()
            .status,
        "expired"
    );
}

#[test]
fn a_new_code_expires_the_users_older_codes_for_the_agent() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    agent(&f, "b", Some("bot-b"), true);
    let old_a = f.create_pairing_code("u1", "a", None, Some(T0)).unwrap();
    let old_b = f.create_pairing_code("u1", "b", None, Some(T0)).unwrap();
    f.create_pairing_code("u1", "a", None, Some(T0 + 1))
        .unwrap();
    let status = |c: &str| {
        f.pairing_code_status(c, Some(T0 + 2))
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(status(&old_a.code), "expired");
    assert_eq!(status(&old_b.code), "pending");
}

#[test]
fn concurrent_consumers_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let f = std::sync::Arc::new(Factory::open(path.to_str().unwrap(), Default::default()).unwrap());
    agent(&f, "a", Some("bot-a"), true);
    let p = f.create_pairing_code("u1", "a", None, None).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let f = f.clone();
            let code = p.code.clone();
            std::thread::spawn(move || {
                f.consume_pairing_code(&code, Some("bot-a"), &format!("tg-{i}"), "chat", None)
                    .is_ok()
            })
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn lookups_and_listings_read_indexes_without_sorting() {
    let f = factory();
    let plans: Vec<String> = f
        .store
        .read(|tx| {
            let mut out = Vec::new();
            for sql in [
                "SELECT 1 FROM identity_bindings WHERE bot_identity = 'b' AND telegram_user_id = 'u' AND status = 'active' AND telegram_user_id IS NOT NULL ORDER BY bound_at DESC, id DESC LIMIT 1",
                "SELECT 1 FROM identity_bindings WHERE telegram_chat_id = 'c' AND status = 'active' AND telegram_chat_id IS NOT NULL ORDER BY bound_at DESC, id DESC LIMIT 1",
                "SELECT 1 FROM identity_bindings WHERE consumer_user_id = 'u' ORDER BY bound_at DESC, id DESC LIMIT 5",
                "SELECT 1 FROM identity_bindings WHERE consumer_user_id = 'u' AND agent_key = 'a' ORDER BY bound_at DESC, id DESC LIMIT 1",
                "SELECT code FROM pairing_codes WHERE consumer_user_id = 'u' AND agent_key = 'a' AND status = 'pending' ORDER BY created_at DESC, id DESC LIMIT 1",
                "SELECT code FROM pairing_codes WHERE consumer_user_id = 'u' AND agent_key = 'a' ORDER BY created_at DESC, id DESC LIMIT 1",
                "SELECT m.payload FROM messages m JOIN conversations c ON c.id = m.conversation_ref
                 WHERE m.conversation_ref = 1 AND m.pending_rank = 0 AND ((1 AND c.lock_message IS NOT m.id) OR (0 AND c.lock_message = m.id))
                 ORDER BY m.order_key DESC, m.id DESC LIMIT 5",
                "SELECT m.payload FROM messages m WHERE m.conversation_ref = 1 AND m.pending_rank = 1
                   AND ((0 AND m.status = 'done') OR (1 AND m.status = 'dead_letter'))
                 ORDER BY m.order_key, m.id LIMIT 5",
            ] {
                let mut stmt = tx.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(3))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push(rows.join(" | "));
            }
            Ok(out)
        })
        .unwrap();
    for p in &plans {
        assert!(p.contains(" INDEX "), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }
}

#[test]
fn user_agent_views_follow_binding_and_pairing_state() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    agent(&f, "b", Some("bot-b"), true);
    let p = f.create_pairing_code("u1", "a", None, Some(T0)).unwrap();
    let v = f.get_user_agent("u1", "a", Some(T0 + 1)).unwrap().unwrap();
    assert_eq!(
        (v.status.as_str(), v.pairing_status.as_deref()),
        ("pairing", Some("pending"))
    );
    let v = f
        .get_user_agent("u1", "a", Some(p.expires_at))
        .unwrap()
        .unwrap();
    assert_eq!(
        (v.status.as_str(), v.pairing_status.as_deref()),
        ("draft", Some("expired"))
    );
    f.consume_pairing_code(&p.code, Some("bot-a"), "tg-1", "chat-1", Some(T0 + 2))
        .unwrap();
    let v = f.active_user_agent("u1", Some(T0 + 3)).unwrap().unwrap();
    assert_eq!(v.agent_key, "a");
    assert!(v.can_chat && !v.can_create_new_agent);
    assert_eq!(v.pairing_status.as_deref(), Some("used"));
    f.bind_user_agent(&BindRequest::new("u1", "b"), Some(T0 + 4))
        .unwrap();
    let o = f.user_agents_overview("u1", Some(T0 + 5)).unwrap();
    assert_eq!(o.active_agent_key.as_deref(), Some("b"));
    let keys: Vec<_> = o
        .agents
        .iter()
        .map(|a| (a.agent_key.as_str(), a.status.as_str()))
        .collect();
    assert_eq!(keys, [("b", "active"), ("a", "disabled")]);
    let enabled_only = f.list_user_agents("u1", false, Some(T0 + 5)).unwrap();
    assert_eq!(enabled_only.len(), 1);
    f.set_agent_enabled("b", false, None).unwrap();
    assert_eq!(
        f.active_user_agent("u1", None).unwrap().unwrap().status,
        "failed"
    );
    assert!(f.get_user_agent("u1", "ghost", None).unwrap().is_none());
}

#[test]
fn deep_links_need_a_known_username() {
    let f = factory();
    agent(&f, "a", Some("42"), true);
    let none = f.create_user_agent_pairing("u1", "a", None, None).unwrap();
    assert_eq!(none.deep_link, None);
    let mut meta = serde_json::Map::new();
    meta.insert("telegramBotId".into(), "7".into());
    meta.insert("telegramUsername".into(), "other_bot".into());
    f.import_secret("telegram.botToken.a", "7:x", Some(meta), None)
        .unwrap();
    let other = f.create_user_agent_pairing("u1", "a", None, None).unwrap();
    assert_eq!(other.deep_link, None, "a secret of another bot is ignored");
    let mut meta = serde_json::Map::new();
    meta.insert("telegramBotId".into(), "42".into());
    meta.insert("telegramUsername".into(), "@agent_a_bot".into());
    f.import_secret("telegram.botToken.a", "42:x", Some(meta), None)
        .unwrap();
    let link = f.create_user_agent_pairing("u1", "a", None, None).unwrap();
    assert_eq!(
        link.deep_link,
        Some(format!(
            "https://t.me/agent_a_bot?start={}",
            link.pairing.code
        ))
    );
    assert_eq!(
        f.user_agent_pairing_status("u1", "a", None)
            .unwrap()
            .unwrap()
            .code,
        link.pairing.code
    );
    assert_eq!(
        f.get_user_agent("u1", "a", None)
            .unwrap()
            .unwrap()
            .telegram_username
            .as_deref(),
        Some("agent_a_bot")
    );
}

#[test]
fn sends_route_through_the_binding_and_filters_apply_before_the_limit() {
    let f = factory();
    agent(&f, "a", Some("bot-a"), true);
    let err = f
        .send_message_to_user_agent("u1", "a", "hi", None, None)
        .unwrap_err();
    assert_eq!(
        err,
        Error::not_found("No active binding found for consumerUserId and agentKey")
    );
    f.bind_user_agent(&tg("u1", "a", None, "tg-1", "chat-1"), None)
        .unwrap();
    let first = f
        .send_message_to_user_agent("u1", "a", "first", None, Some(T0))
        .unwrap();
    let claim = f
        .claim("w1", &Default::default(), Some(T0 + 1))
        .unwrap()
        .unwrap();
    assert_eq!(claim.message_id, first);
    assert_eq!(claim.payload["provider"], "telegram");
    assert_eq!(claim.payload["providerUserId"], "tg-1");
    assert_eq!(claim.payload["metadata"]["source"], "user_agent_api");
    for i in 0..5 {
        f.send_message_to_user_agent("u1", "a", &format!("m{i}"), None, Some(T0 + 10 + i))
            .unwrap();
    }
    let processing = f
        .list_queue_items_for_user_agent("u1", "a", Some(&["processing".to_string()]), 2)
        .unwrap();
    assert_eq!(processing.len(), 1);
    assert_eq!(processing[0].message_id, first);
    let all = f
        .list_queue_items_for_user_agent("u1", "a", None, 3)
        .unwrap();
    let texts: Vec<_> = all
        .iter()
        .map(|j| j.payload["messageText"].clone())
        .collect();
    assert_eq!(texts, ["m4", "m3", "m2"]);
    let view = f.user_agent_conversation_view("u1", "a", 10).unwrap();
    assert!(view.view.has_queued_jobs);
    assert_eq!(view.view.queue_items.len(), 6);
    assert_eq!(
        view.latest_message_id,
        Some(view.view.queue_items[0].message_id.clone())
    );
    let empty = f.user_agent_conversation_view("u2", "a", 10).unwrap();
    assert_eq!(
        (empty.view.state.as_str(), empty.latest_message_id),
        ("idle", None)
    );
}
