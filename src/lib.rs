//! agent-factory: the control plane for fleets of chat agents.
//!
//! The core (everything outside `py`) is plain Rust over SQLite and is tested
//! with `cargo test`; `py` holds the thin pyo3 bindings that the Python package
//! `agent_factory` wraps.

pub mod agents;
pub mod blobs;
pub mod clock;
pub mod config;
pub mod error;
pub mod factory;
pub mod hydration;
pub mod identity;
pub mod ids;
pub mod leases;
pub mod metrics;
pub mod pool;
pub mod providers;
pub mod push;
pub mod queue;
pub mod secrets;
pub mod settings;
pub mod snapshots;
pub mod store;
pub mod telegram;
pub mod templates;
pub mod validate;
pub mod workboard;
pub mod workers;

mod py;
#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
pub use factory::{Factory, FactoryOptions};
