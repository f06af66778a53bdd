//! The workboard: a kanban store for agent work (boards, cards, claims with TTL,
//! a parent/child dependency DAG, attachments), in the factory's SQLite store.
//!
//! Invariants:
//! - every public operation is one transaction (`store.write` / `store.read`): a
//!   failed call writes nothing, and concurrent writers (threads or processes)
//!   never drop each other's changes;
//! - every card write appends exactly one event (the seed's priority rules),
//!   bumps the change revision, and logs a status change to the durable log;
//! - time comes from the clock unless `now_ms` is given;
//! - error texts are the seed's (`card not found: <id>`, `card dependencies are not done.`, ...).

mod attachments;
mod boards;
pub mod budget;
mod cards;
mod claims;
mod context;
mod deps;
mod diagnostics;
mod dispatch;
pub mod events;
mod kanban;
mod metadata;
pub mod model;
pub mod normalize;
pub mod normalize_meta;
mod notify;
#[cfg(test)]
mod perf_tests;
mod persist;
mod plan;
pub(crate) mod pool_bridge;
#[cfg(test)]
mod tests;
mod workflow;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::{Store, StoreOptions, Tx};

pub use attachments::decode_canonical;
pub use attachments::{AttachmentContent, AttachmentInput, AttachmentRecord, CardAttachments};
pub use boards::{BoardSummary, BoardsList, Stats};
pub use cards::{BulkResult, Deleted, Export, ListQuery, Runs};
pub use claims::ClaimResult;
pub use deps::Promoted;
pub use diagnostics::{CardDiagnostics, DiagnosticsReport};
pub use dispatch::DispatchResult;
pub use kanban::{Kanban, KanbanColumn, MAX_LIMIT_PER_STATUS};
pub use model::{Board, Card, Metadata};
pub use notify::{EventsQuery, NotificationEvent, NotificationEvents, Subscription, Subscriptions};
pub use plan::Decomposed;
pub use pool_bridge::{QueueDispatchOptions, QueueDispatchResult, QueueFailure, QueuedCard};

/// How to open a workboard.
#[derive(Debug, Clone, Default)]
pub struct WorkboardOptions {
    /// Store options (durability, journal, directory hardening).
    pub store: StoreOptions,
    /// Time source.
    pub clock: Clock,
}

/// Who is mutating a card: a worker passes its claim owner and/or token.
/// `None` (no scope) is the operator, who may override claims.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Claim owner id.
    pub owner_id: Option<String>,
    /// Claim token (the capability returned by `claim`).
    pub token: Option<String>,
}

/// The change revision: committed workboard mutations, and SQLite's `data_version`.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRevision {
    /// Count of committed workboard mutations (all processes).
    pub revision: i64,
    /// `PRAGMA data_version` of this process's connection (changes on other processes' commits).
    pub data_version: i64,
}

/// The workboard core handle.
#[derive(Debug, Clone)]
pub struct Workboard {
    store: Arc<Store>,
    clock: Clock,
}

/// Constant-time string equality (claim tokens).
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `card is claimed by <owner>.` unless the scope may mutate the card. A scope
/// with a token must present the current token (a zombie holding an old token is
/// refused even under the same owner id); otherwise the owner id must match.
pub(crate) fn assert_scope(card: &Card, scope: Option<&Scope>) -> Result<()> {
    let (Some(scope), Some(claim)) = (scope, card.claim()) else {
        return Ok(());
    };
    let ok = match (&scope.token, &scope.owner_id) {
        (Some(t), _) => secret_eq(t, &claim.token),
        (None, Some(o)) => *o == claim.owner_id,
        (None, None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "card is claimed by {}.",
            claim.owner_id
        )))
    }
}

impl Workboard {
    /// Open a workboard on `path` (`":memory:"` for a private one); a path shared
    /// with a factory shares its database and writer connection.
    pub fn open(path: &str, options: WorkboardOptions) -> Result<Workboard> {
        let store = Store::open(path, &options.store)?;
        Ok(Workboard {
            store,
            clock: options.clock,
        })
    }

    /// A workboard over an open store (e.g. a factory's).
    pub fn with_store(store: Arc<Store>, clock: Clock) -> Workboard {
        Workboard { store, clock }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// `explicit` or the clock's time; negative explicit times are rejected.
    pub fn now(&self, explicit: Option<i64>) -> Result<i64> {
        crate::validate::timestamp("nowMs", explicit)?;
        Ok(self.clock.resolve(explicit))
    }

    /// The change revision (sees commits by other processes too).
    pub fn change_revision(&self) -> Result<ChangeRevision> {
        self.store.read(|tx: &Tx| {
            let revision = tx.query_row(
                "SELECT revision FROM workboard_revision WHERE id = 1",
                [],
                |r| r.get(0),
            )?;
            let data_version = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            Ok(ChangeRevision {
                revision,
                data_version,
            })
        })
    }
}
