//! Broadcasts: company targeting, user routing, per-target failure isolation.

use super::*;
use crate::error::Error;

#[test]
fn a_broadcast_reaches_the_active_bindings_of_its_company_only() {
    let f = factory();
    agent(&f, "agent-a", true);
    agent(&f, "agent-b", true);
    bind(
        &f,
        "company-user-a",
        "agent-a",
        None,
        Some("company-broadcast"),
    );
    bind(
        &f,
        "company-user-b",
        "agent-b",
        Some(("tg-b", "chat-b")),
        Some("company-broadcast"),
    );
    bind(&f, "outsider", "agent-a", None, Some("another-company"));
    let r = f
        .send_push_broadcast(
            "company-broadcast",
            "Aggiornamento policy",
            "Sincronizza",
            "admin-1",
            Some(T0),
        )
        .unwrap();
    assert_eq!((r.total_targets, r.enqueued, r.failed), (2, 2, 0));
    let b = f.get_push_broadcast(&r.broadcast_id).unwrap().unwrap();
    assert_eq!((b.status.as_str(), b.completed_at), ("done", Some(T0)));
    let rows = f
        .list_push_broadcast_dispatches(&r.broadcast_id, None, None)
        .unwrap();
    let convs: Vec<_> = rows.iter().map(|d| d.conversation_id.as_str()).collect();
    assert_eq!(
        convs,
        [
            "user-agent:agent-a:company-user-a",
            "user-agent:agent-b:company-user-b"
        ]
    );
    assert_eq!(
        rows[0].run_key,
        format!("broadcast:{}:company-user-a", r.broadcast_id)
    );
    let payloads: Vec<serde_json::Value> = f
        .store
        .read(|tx| {
            let mut s = tx.prepare("SELECT payload FROM messages ORDER BY id")?;
            let rows = s.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows
                .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
                .collect())
        })
        .unwrap();
    assert_eq!(payloads.len(), 2);
    assert_eq!(
        payloads[0]["messageText"],
        "Aggiornamento policy\n\nSincronizza"
    );
    assert_eq!(payloads[0]["metadata"]["adminInitiated"], "true");
    assert_eq!(payloads[0]["metadata"]["companyId"], "company-broadcast");
    assert_eq!(payloads[1]["provider"], "telegram");
    assert_eq!(payloads[1]["providerUserId"], "tg-b");
    assert_eq!(
        f.list_push_broadcasts("company-broadcast", None)
            .unwrap()
            .len(),
        1
    );
    assert!(f
        .list_push_broadcasts("another-company", None)
        .unwrap()
        .is_empty());
}

#[test]
fn a_failing_target_is_recorded_and_the_others_still_get_the_message() {
    let f = factory();
    agent(&f, "agent-a", true);
    agent(&f, "agent-off", true);
    bind(&f, "u-ok", "agent-a", None, Some("co"));
    bind(&f, "u-off", "agent-off", None, Some("co"));
    agent(&f, "agent-off", false);
    let r = f
        .send_push_broadcast("co", "T", "", "admin", Some(T0))
        .unwrap();
    assert_eq!((r.total_targets, r.enqueued, r.failed), (2, 1, 1));
    assert_eq!(
        f.get_push_broadcast(&r.broadcast_id)
            .unwrap()
            .unwrap()
            .status,
        "failed"
    );
    let failed = f
        .list_push_broadcast_dispatches(&r.broadcast_id, Some("failed"), None)
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].consumer_user_id, "u-off");
    assert!(failed[0].error.as_deref().unwrap().contains("agent-off"));
    assert_eq!(count(&f, "SELECT count(*) FROM messages"), 1);
    assert_eq!(count(&f, "SELECT count(*) FROM conversations"), 1);
}

#[test]
fn an_empty_company_and_bad_input() {
    let f = factory();
    let r = f
        .send_push_broadcast("nobody", "Hello", "world", "admin", None)
        .unwrap();
    assert_eq!((r.total_targets, r.enqueued, r.failed), (0, 0, 0));
    let blank = f
        .send_push_broadcast("co", " ", "\n", "admin", None)
        .unwrap_err();
    assert!(matches!(blank, Error::Validation(_)));
    assert!(f
        .send_push_broadcast("", "a", "b", "admin", None)
        .unwrap_err()
        .to_string()
        .contains("companyId"));
    assert!(f
        .send_push_broadcast("co", "a", "b", " ", None)
        .unwrap_err()
        .to_string()
        .contains("requestedBy"));
    assert_eq!(count(&f, "SELECT count(*) FROM push_broadcasts"), 1);
    assert!(matches!(
        f.list_push_broadcast_dispatches("pbc-missing", None, None),
        Err(Error::NotFound(_))
    ));
    assert!(f
        .list_push_broadcast_dispatches(&r.broadcast_id, Some("skipped"), None)
        .is_err());
}
