//! Shared fixtures of the core's unit tests.

use crate::agents::AgentInput;
use crate::clock::Clock;
use crate::factory::{Factory, FactoryOptions};

/// 2026-01-01T00:00:00Z: where the tests' manual clock starts.
pub const T0: i64 = 1_767_225_600_000;

/// An in-memory factory on a manual clock at [`T0`].
pub fn factory() -> Factory {
    Factory::open(
        ":memory:",
        FactoryOptions {
            clock: Clock::manual(T0),
            ..Default::default()
        },
    )
    .expect("open an in-memory factory")
}

/// [`factory`] with one enabled agent.
pub fn factory_with_agent(agent_key: &str) -> Factory {
    let f = factory();
    f.upsert_agent(
        AgentInput {
            agent_key: agent_key.into(),
            version: "1.0.0".into(),
            enabled: true,
            ..Default::default()
        },
        None,
    )
    .expect("upsert the test agent");
    f
}

/// An in-memory workboard on a manual clock at 1 000 ms (the workboard seed's epoch).
pub fn workboard() -> crate::workboard::Workboard {
    crate::workboard::Workboard::open(
        ":memory:",
        crate::workboard::WorkboardOptions {
            store: Default::default(),
            clock: Clock::manual(1_000),
        },
    )
    .expect("open an in-memory workboard")
}
