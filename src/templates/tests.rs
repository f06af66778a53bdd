//! Unit tests of message templates.

use super::*;
use crate::error::Error;
use crate::factory::Factory;
use crate::identity::BindRequest;
use crate::test_support::{factory_with_agent, T0};

fn input(title: &str) -> TemplateInput {
    TemplateInput {
        title: title.into(),
        text: "Hello.".into(),
        tags: vec![],
        enabled: true,
        actor_user_id: "admin".into(),
    }
}

fn keys(f: &Factory) -> Vec<String> {
    f.list_message_templates(true, 200)
        .unwrap()
        .into_iter()
        .map(|t| t.template_key)
        .collect()
}

#[test]
fn keys_follow_the_seed_rule() {
    assert_eq!(key_base(" Status Update "), "status-update");
    assert_eq!(key_base("--Hello,  World!!"), "hello-world");
    assert_eq!(key_base("Café ☕ 2"), "caf-2");
    assert_eq!(key_base("!!!"), FALLBACK_KEY);
    assert_eq!(
        normalize_tags(&[
            " Urgent ".into(),
            "follow-up".into(),
            "urgent".into(),
            " Team ".into(),
            "  ".into()
        ])
        .unwrap(),
        ["follow-up", "team", "urgent"]
    );
}

#[test]
fn keys_are_unique_and_reuse_the_smallest_free_suffix() {
    let f = factory_with_agent("a");
    let a = f
        .create_message_template(&input("Daily check-in"), None)
        .unwrap();
    let b = f
        .create_message_template(&input("Daily check-in"), None)
        .unwrap();
    let c = f
        .create_message_template(&input("daily CHECK in"), None)
        .unwrap();
    assert_eq!(
        (
            a.template_key.as_str(),
            b.template_key.as_str(),
            c.template_key.as_str()
        ),
        ("daily-check-in", "daily-check-in-2", "daily-check-in-3")
    );
    assert!(f.delete_message_template(&b.template_id).unwrap());
    let d = f
        .create_message_template(&input("Daily check-in"), None)
        .unwrap();
    assert_eq!(d.template_key, "daily-check-in-2");
    // Retitling to the same key base keeps the key; another title moves it.
    let same = TemplateUpdate {
        title: Some("Daily check in".into()),
        actor_user_id: "admin".into(),
        ..Default::default()
    };
    let kept = f
        .update_message_template(&a.template_id, &same, None)
        .unwrap()
        .unwrap();
    assert_eq!(kept.template_key, "daily-check-in");
    let other = TemplateUpdate {
        title: Some("Weekly".into()),
        actor_user_id: "admin".into(),
        ..Default::default()
    };
    let moved = f
        .update_message_template(&d.template_id, &other, None)
        .unwrap()
        .unwrap();
    assert_eq!(moved.template_key, "weekly");
    let text_only = TemplateUpdate {
        text: Some("new".into()),
        actor_user_id: "admin".into(),
        ..Default::default()
    };
    assert_eq!(
        f.update_message_template(&c.template_id, &text_only, None)
            .unwrap()
            .unwrap()
            .template_key,
        "daily-check-in-3"
    );
    assert!(f
        .update_message_template("tpl-missing", &text_only, None)
        .unwrap()
        .is_none());
    assert_eq!(keys(&f).len(), 3);
}

#[test]
fn sending_counts_usage_and_ranks_the_listing() {
    let f = factory_with_agent("a");
    f.bind_user_agent(&BindRequest::new("u1", "a"), None)
        .unwrap();
    let a = f.create_message_template(&input("A"), Some(T0)).unwrap();
    let b = f
        .create_message_template(&input("B"), Some(T0 + 1))
        .unwrap();
    let mut off = input("Off");
    off.enabled = false;
    let off = f.create_message_template(&off, Some(T0 + 2)).unwrap();
    for _ in 0..2 {
        f.send_message_template_to_user_agent("u1", "a", &a.template_id, None, None)
            .unwrap();
    }
    let sent = f
        .send_message_template_to_user_agent("u1", "a", &b.template_id, None, None)
        .unwrap();
    assert_eq!(sent.usage_count, 1);
    let job = f.get_job(&sent.message_id).unwrap().unwrap();
    assert_eq!(job.payload["metadata"]["source"], "message_template");
    assert_eq!(job.payload["metadata"]["templateKey"], "b");
    let titles: Vec<_> = f
        .list_message_templates(false, 10)
        .unwrap()
        .into_iter()
        .map(|t| (t.title, t.usage_count))
        .collect();
    assert_eq!(titles, [("A".to_string(), 2), ("B".to_string(), 1)]);
    assert_eq!(
        f.send_message_template_to_user_agent("u1", "a", &off.template_id, None, None)
            .unwrap_err(),
        Error::not_found("Message template not found")
    );
    assert_eq!(
        f.send_message_template_to_user_agent("u2", "a", &a.template_id, None, None)
            .unwrap_err(),
        Error::not_found("No active binding found for consumerUserId and agentKey")
    );
    assert_eq!(
        f.get_message_template(&a.template_id)
            .unwrap()
            .unwrap()
            .usage_count,
        2
    );
}

#[test]
fn listing_reads_the_ranking_index() {
    let f = factory_with_agent("a");
    let plans: Vec<String> = f
        .store
        .read(|tx| {
            let mut out = Vec::new();
            for sql in [
                "SELECT * FROM message_templates ORDER BY usage_count DESC, updated_at DESC, id DESC LIMIT 5",
                "SELECT * FROM message_templates WHERE enabled = 1 ORDER BY usage_count DESC, updated_at DESC, id DESC LIMIT 5",
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
        assert!(p.contains("INDEX message_templates_"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }
}

#[test]
fn bad_input_is_rejected_before_writing() {
    let f = factory_with_agent("a");
    assert_eq!(
        f.create_message_template(&input("   "), None).unwrap_err(),
        Error::validation("Template title is required")
    );
    let mut no_text = input("t");
    no_text.text = " ".into();
    assert_eq!(
        f.create_message_template(&no_text, None).unwrap_err(),
        Error::validation("Template text is required")
    );
    let mut many = input("t");
    many.tags = (0..40).map(|i| format!("t{i}")).collect();
    assert!(f.create_message_template(&many, None).is_err());
    let mut actor = input("t");
    actor.actor_user_id = "".into();
    assert!(f.create_message_template(&actor, None).is_err());
    assert!(f.list_message_templates(true, 0).is_err());
    assert!(f.list_message_templates(true, 201).is_err());
    assert!(keys(&f).is_empty());
}
