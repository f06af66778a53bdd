//! Unit tests of the Telegram module: parsing, the Bot API client against a
//! scripted loopback server, secret tokens, ingestion without media, expiry.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::bot_api::{validate_token, BotApi};
use super::ingest::IngestStatus;
use super::settings::TelegramApiConfig;
use super::update::{parse_update, start_command, UpdateBody};
use super::webhook::{
    generate_secret_token, legacy_token_bot_identity, verify_secret_in, webhook_url,
};
use crate::agents::AgentInput;
use crate::error::Error;
use crate::factory::Factory;
use crate::queue::EnqueueRequest;
use crate::test_support::{factory, T0};

const TOKEN: &str = "123456:AAH-secret_token-value";

type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// A loopback server answering each connection with the next scripted reply;
/// returns its base URL and the request lines it saw.
fn serve(replies: Vec<Reply>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut queue: VecDeque<Reply> = replies.into();
    std::thread::spawn(move || {
        while let Some((status, headers, body)) = queue.pop_front() {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut b = vec![0u8; length];
            reader.read_exact(&mut b).unwrap();
            log.lock().unwrap().push(line.trim().to_string());
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut stream = reader.into_inner();
            stream.write_all(out.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    (base, seen)
}

fn ok(result: Value) -> Reply {
    (
        200,
        vec![],
        json!({"ok": true, "result": result})
            .to_string()
            .into_bytes(),
    )
}

fn config(base: &str) -> TelegramApiConfig {
    TelegramApiConfig {
        base_url: base.to_string(),
        timeout_ms: 5_000,
        max_retries: 2,
        backoff_ms: 1,
        max_backoff_ms: 2,
        max_retry_after_ms: 2_000,
        ..Default::default()
    }
}

#[test]
fn get_me_retries_429_honouring_retry_after_and_5xx() {
    let (base, seen) = serve(vec![
        (
            429,
            vec![],
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 0",
                   "parameters": {"retry_after": 0}})
            .to_string()
            .into_bytes(),
        ),
        (502, vec![], b"bad gateway".to_vec()),
        ok(json!({"id": 42, "is_bot": true, "first_name": "Bot", "username": "the_bot"})),
    ]);
    let api = BotApi::new(&config(&base), TOKEN).unwrap();
    let me = api.get_me().unwrap();
    assert_eq!((me.id, me.username.as_deref()), (42, Some("the_bot")));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[0].starts_with(&format!("GET /bot{TOKEN}/getMe ")),
        "{}",
        seen[0]
    );
}

#[test]
fn errors_name_the_method_and_never_the_token() {
    let (base, _) = serve(vec![(
        401,
        vec![],
        json!({"ok": false, "error_code": 401, "description": format!("Unauthorized {TOKEN}")})
            .to_string()
            .into_bytes(),
    )]);
    let err = BotApi::new(&config(&base), TOKEN)
        .unwrap()
        .get_me()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Provider(_)));
    assert!(
        text.starts_with("Telegram getMe failed: Unauthorized"),
        "{text}"
    );
    assert!(!text.contains("secret_token-value"), "{text}");
    // Connection refused: the URL (with the token) is stripped from the error.
    let dead = config("http://127.0.0.1:9");
    let err = BotApi::new(&dead, TOKEN)
        .unwrap()
        .get_me()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Telegram getMe failed: request error"),
        "{err}"
    );
    assert!(err.ends_with("(after 3 attempts)"), "{err}");
    assert!(!err.contains("secret_token-value"), "{err}");
    assert!(!format!("{:?}", BotApi::new(&dead, TOKEN).unwrap()).contains("secret"));
}

#[test]
fn a_long_retry_after_ends_the_call_at_once() {
    let (base, seen) = serve(vec![(
        429,
        vec![],
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 60",
               "parameters": {"retry_after": 60}})
        .to_string()
        .into_bytes(),
    )]);
    let err = BotApi::new(&config(&base), TOKEN)
        .unwrap()
        .get_me()
        .unwrap_err();
    assert!(err.to_string().contains("retry after 60"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn downloads_are_capped() {
    let (base, _) = serve(vec![
        (
            200,
            vec![("Content-Type", "image/png".into())],
            vec![7u8; 10],
        ),
        (200, vec![], vec![7u8; 11]),
        (404, vec![], b"{}".to_vec()),
    ]);
    let api = BotApi::new(&config(&base), TOKEN).unwrap();
    let d = api.download("photos/file_1.png", 10).unwrap().unwrap();
    assert_eq!(
        (d.bytes.len(), d.content_type.as_deref()),
        (10, Some("image/png"))
    );
    let too_large = api.download("photos/file_2.png", 10).unwrap().unwrap_err();
    assert_eq!(too_large.size, Some(11));
    let err = api.download("photos/x.png", 10).unwrap_err();
    assert_eq!(err.message, "Telegram file download failed with status 404");
    assert!(api.download("../etc/passwd", 10).is_err());
    assert!(api.download("/abs", 10).is_err());
}

#[test]
fn tokens_are_shape_checked_without_echo() {
    assert!(validate_token(TOKEN).is_ok());
    for bad in [
        "", "  ", "nocolon", ":abc", "12a:abc", "123:", "123:a/b", "123:a b",
    ] {
        let err = validate_token(bad).unwrap_err().to_string();
        assert!(
            !bad.trim().is_empty() || err == "Telegram token is required",
            "{bad:?}: {err}"
        );
        if bad.len() > 3 {
            assert!(!err.contains(bad), "{err}");
        }
    }
}

#[test]
fn updates_parse_text_caption_media_and_edits() {
    let u = json!({"update_id": 7, "message": {"message_id": 3, "chat": {"id": -100}, "from": {"id": 5},
        "caption": "  look  ",
        "photo": [{"file_id": "small", "file_size": 10, "width": 90, "height": 90},
                  {"file_id": "big", "file_size": 900, "width": 800, "height": 800},
                  {"file_id": "mid", "file_size": 100, "width": 320, "height": 320}],
        "document": {"file_id": "doc", "file_name": "a.pdf", "mime_type": "application/pdf", "file_size": 3}}});
    let p = parse_update(&u).unwrap();
    let UpdateBody::Message(m) = p.body else {
        panic!("not a message")
    };
    assert_eq!(
        (m.chat_id.as_str(), m.user_id.as_str(), m.text.as_deref()),
        ("-100", "5", Some("look"))
    );
    let kinds: Vec<_> = m
        .media
        .iter()
        .map(|x| (x.kind, x.file_id.as_str()))
        .collect();
    assert_eq!(kinds, [("photo", "big"), ("document", "doc")]);
    assert_eq!(m.media[0].mime_type.as_deref(), Some("image/jpeg"));
    let edited = json!({"update_id": 8, "edited_message": {"message_id": 3, "chat": {"id": 1}, "from": {"id": 5}, "text": "x"}});
    let UpdateBody::Message(m) = parse_update(&edited).unwrap().body else {
        panic!()
    };
    assert!(m.edited);
}

#[test]
fn malformed_updates_are_named_and_odd_ones_ignored() {
    let bad = [
        (json!([]), "update must be an object"),
        (json!({"message": {}}), "update.update_id"),
        (json!({"update_id": -1}), "update.update_id"),
        (
            json!({"update_id": 1, "message": 5}),
            "update.message must be an object",
        ),
        (
            json!({"update_id": 1, "message": {"chat": {"id": 1}}}),
            "update.message.message_id is required",
        ),
        (
            json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": "x"}, "from": {"id": 1}}}),
            "update.message.chat.id must be an integer",
        ),
        (
            json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 1}, "text": 3}}),
            "update.message.text must be a string",
        ),
        (
            json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 1}, "photo": [{}]}}),
            "update.message.photo[0].file_id is required",
        ),
    ];
    for (u, want) in bad {
        let err = parse_update(&u).unwrap_err();
        assert!(
            matches!(err, Error::Validation(_)) && err.to_string().contains(want),
            "{u}: {err}"
        );
    }
    let ignored = [
        (
            json!({"update_id": 1, "callback_query": {"id": "q"}}),
            "unsupported update kind 'callback_query'",
        ),
        (json!({"update_id": 1}), "update carries no message"),
        (
            json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "text": "hi"}}),
            "no sender",
        ),
        (
            json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 1}, "sticker": {}}}),
            "no text",
        ),
    ];
    for (u, want) in ignored {
        match parse_update(&u).unwrap().body {
            UpdateBody::Ignored(r) => assert!(r.contains(want), "{r}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn start_commands_are_recognised() {
    assert_eq!(start_command("/start ABCD1234"), Some(Some("ABCD1234")));
    assert_eq!(
        start_command("  /start@my_bot  ab_c-d  "),
        Some(Some("ab_c-d"))
    );
    assert_eq!(start_command("/start"), Some(None));
    assert_eq!(start_command("/start x"), Some(None));
    assert_eq!(start_command("/start a b c d"), Some(None));
    assert_eq!(start_command("/started"), None);
    assert_eq!(start_command("hello /start X"), None);
}

#[test]
fn secret_tokens_are_random_and_legacy_ones_recognised() {
    let a = generate_secret_token();
    let b = generate_secret_token();
    assert_ne!(a, b);
    assert_eq!(a.len(), 48);
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
    assert_eq!(legacy_token_bot_identity("af_v1_123"), Some("123"));
    assert_eq!(legacy_token_bot_identity("af:v1: 9 "), Some("9"));
    assert_eq!(legacy_token_bot_identity("af_v1_"), None);
    assert_eq!(legacy_token_bot_identity(&a), None);
}

#[test]
fn webhook_urls_must_be_https() {
    assert_eq!(
        webhook_url(" https://Example.com/ ", "/agent-factory/telegram/webhook").unwrap(),
        "https://Example.com/agent-factory/telegram/webhook"
    );
    assert_eq!(
        webhook_url("", "/x").unwrap_err().to_string(),
        "publicBaseUrl is required."
    );
    assert_eq!(
        webhook_url("http://example.com", "/x")
            .unwrap_err()
            .to_string(),
        "publicBaseUrl must start with https://"
    );
    assert!(webhook_url("https://example.com?q=1", "/x").is_err());
    assert!(webhook_url("https://example.com", "x").is_err());
    assert!(webhook_url("https://example.com", "/a b").is_err());
}

fn with_bot(f: &Factory, agent: &str, bot: &str) {
    f.upsert_agent(
        AgentInput {
            agent_key: agent.into(),
            version: "1.0.0".into(),
            bot_identity: Some(bot.into()),
            enabled: true,
            ..Default::default()
        },
        None,
    )
    .unwrap();
}

fn text_update(update_id: i64, chat: i64, user: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id * 10, "chat": {"id": chat},
        "from": {"id": user}, "text": text}})
}

#[test]
fn webhook_secrets_are_compared_and_missing_ones_reject() {
    let f = factory();
    with_bot(&f, "a", "111");
    let check = |presented: Option<&str>| {
        f.store
            .read(|tx| verify_secret_in(tx, &f.key, "a", presented))
    };
    assert!(
        matches!(check(Some("x")), Err(Error::Unauthorized(m)) if m.contains("no webhook secret"))
    );
    let secret = generate_secret_token();
    f.import_secret(&super::webhook_secret_ref("a"), &secret, None, None)
        .unwrap();
    check(Some(&secret)).unwrap();
    assert!(matches!(check(None), Err(Error::Unauthorized(_))));
    assert!(matches!(
        check(Some(&secret[..47])),
        Err(Error::Unauthorized(_))
    ));
    assert!(
        matches!(check(Some("af_v1_111")), Err(Error::Unauthorized(m)) if m.contains("af_v1_"))
    );
}

#[test]
fn text_updates_route_to_the_bot_conversation_once() {
    let f = factory();
    with_bot(&f, "a", "111");
    let u = text_update(1, 55, 66, " hello ");
    let first = f.ingest_telegram_update(&u, Some("a"), None, None).unwrap();
    assert_eq!(first.status, IngestStatus::Enqueued);
    assert_eq!(first.conversation_id.as_deref(), Some("telegram:111:55"));
    let again = f
        .ingest_telegram_update(&u, None, Some("111"), None)
        .unwrap();
    assert_eq!(again.status, IngestStatus::Duplicate);
    assert_eq!(again.message_id, first.message_id);
    let claim = f.claim("w1", &Default::default(), None).unwrap().unwrap();
    assert_eq!(claim.payload["messageText"], "hello");
    assert_eq!(claim.payload["providerUserId"], "66");
    assert_eq!(claim.payload["metadata"]["telegramChatId"], "55");
    assert_eq!(claim.payload["metadata"]["telegramUpdateId"], "1");
    assert!(f.claim("w2", &Default::default(), None).unwrap().is_none());
}

#[test]
fn start_codes_pair_and_later_messages_follow_the_binding() {
    let f = factory();
    with_bot(&f, "a", "111");
    let code = f
        .create_pairing_code("user-1", "a", None, None)
        .unwrap()
        .code;
    let paired = f
        .ingest_telegram_update(
            &text_update(1, 55, 66, &format!("/start {code}")),
            Some("a"),
            None,
            None,
        )
        .unwrap();
    assert_eq!(paired.status, IngestStatus::Paired);
    assert_eq!(paired.consumer_user_id.as_deref(), Some("user-1"));
    let routed = f
        .ingest_telegram_update(&text_update(2, 55, 66, "hi"), Some("a"), None, None)
        .unwrap();
    assert_eq!(
        routed.conversation_id.as_deref(),
        Some("user-agent:a:user-1")
    );
    let bad = f
        .ingest_telegram_update(
            &text_update(3, 55, 66, "/start NOPE1234"),
            Some("a"),
            None,
            None,
        )
        .unwrap();
    assert_eq!(
        (bad.status, bad.reason.as_deref()),
        (IngestStatus::Ignored, Some("Pairing code not found"))
    );
    let ignored = f
        .ingest_telegram_update(&text_update(4, 55, 66, "/start"), Some("a"), None, None)
        .unwrap();
    assert_eq!(ignored.status, IngestStatus::Ignored);
}

#[test]
fn media_without_a_token_is_refused_before_any_write() {
    let f = factory();
    with_bot(&f, "a", "111");
    let u = json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 2},
        "voice": {"file_id": "v1", "duration": 1}}});
    let err = f
        .ingest_telegram_update(&u, Some("a"), None, None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("missing active telegram bot token for agent 'a'"),
        "{err}"
    );
    assert_eq!(f.queue_stats(None).unwrap().queued_ready, 0);
}

#[test]
fn expiry_marks_rows_and_payloads_and_deletes_unshared_blobs() {
    let f = factory();
    with_bot(&f, "a", "111");
    let sha = f.blobs().put(b"document-binary").unwrap();
    let shared = f.blobs().put(b"shared").unwrap();
    let attachment = |sha: &str, file: &str, expires: i64| json!({"kind": "document", "status": "ready", "storageId": sha, "telegramFileId": file, "expiresAt": expires});
    for (conv, atts) in [
        (
            "c1",
            vec![
                attachment(&sha, "f1", T0 + 10),
                attachment(&shared, "f2", T0 + 10),
            ],
        ),
        ("c2", vec![attachment(&shared, "f3", T0 + 1_000)]),
    ] {
        f.enqueue(
            &EnqueueRequest {
                conversation_id: conv.into(),
                agent_key: "a".into(),
                payload: json!({"provider": "telegram", "providerUserId": "u", "messageText": "m", "attachments": atts}),
                priority: None,
                scheduled_for: None,
                max_attempts: None,
            },
            Some(T0),
        )
        .unwrap();
    }
    let out = f
        .expire_old_telegram_attachments(10, Some(T0 + 11))
        .unwrap();
    assert_eq!(
        (
            out.expired,
            out.payloads_updated,
            out.blobs_deleted,
            out.blobs_kept
        ),
        (2, 1, 1, 1)
    );
    assert!(!f.blobs().exists(&sha).unwrap());
    assert!(f.blobs().exists(&shared).unwrap());
    let again = f
        .expire_old_telegram_attachments(10, Some(T0 + 11))
        .unwrap();
    assert_eq!(again.expired, 0);
    assert!(f.expire_old_telegram_attachments(0, None).is_err());
}
