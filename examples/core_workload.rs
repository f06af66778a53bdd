//! The `benches/compare_peers.py` workload through the Rust core alone, to
//! separate the core's cost from the Python layer's: N messages (default
//! 20 000) over 1 000 conversations, enqueued one by one, then drained by a
//! pooled worker with `complete_and_claim`. Prints msg/s per phase.
//!
//! Run: `cargo run --release --example core_workload [N]`
use std::time::Instant;

use _native::agents::AgentInput;
use _native::queue::{ClaimOptions, EnqueueRequest};
use _native::workers::WorkerMode;
use _native::{Factory, FactoryOptions};
use serde_json::json;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("af.db");
    let f = Factory::open(path.to_str().expect("utf-8"), FactoryOptions::default()).expect("open");
    f.upsert_agent(
        AgentInput {
            agent_key: "a".into(),
            version: "1".into(),
            enabled: true,
            ..Default::default()
        },
        None,
    )
    .expect("agent");
    let reqs: Vec<EnqueueRequest> = (0..n)
        .map(|i| {
            let c = i % 1000;
            EnqueueRequest {
                conversation_id: format!("conv-{c:05}"),
                agent_key: "a".into(),
                payload: json!({"provider": "telegram", "providerUserId": format!("user-{c:05}"),
                    "messageText": format!("Message {i:07} in conversation {c:05}. Please summarise the attached notes and reply with three short bullet points, thanks.")}),
                priority: None,
                scheduled_for: None,
                max_attempts: None,
            }
        })
        .collect();
    let t0 = Instant::now();
    for r in &reqs {
        f.enqueue(r, None).expect("enqueue");
    }
    let t1 = Instant::now();
    let opts = ClaimOptions {
        conversation_id: None,
        mode: Some(WorkerMode::Pooled),
    };
    let mut c = f.claim("w", &opts, None).expect("claim");
    let mut done = 0;
    while let Some(cl) = c {
        done += 1;
        c = f
            .complete_and_claim("w", &cl.message_id, &cl.lease_id, &opts, None)
            .expect("cc");
    }
    let t2 = Instant::now();
    assert_eq!(done, n);
    let (e, d) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
    println!(
        "core enq {:.0}/s ({:.1} us) drain {:.0}/s ({:.1} us) e2e {:.0}/s",
        n as f64 / e,
        1e6 * e / n as f64,
        n as f64 / d,
        1e6 * d / n as f64,
        n as f64 / (e + d)
    );
}
