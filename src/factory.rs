//! The core handle: one database, its blob store, master key, clock and config.
//!
//! Each area (agents, queue, workers, secrets, hydration, runtime config) adds
//! its operations to [`Factory`] in its own module. Every public operation is
//! one store transaction and reads "now" from [`Factory::now`] unless given.

use std::sync::{Arc, RwLock};

use crate::blobs::BlobStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Result;
use crate::secrets::crypto::MasterKey;
use crate::store::{Store, StoreOptions};

/// Options for opening a factory.
#[derive(Debug, Clone, Default)]
pub struct FactoryOptions {
    /// Store options (durability, journal).
    pub store: StoreOptions,
    /// Tunables.
    pub config: Config,
    /// Time source.
    pub clock: Clock,
}

/// The agent-factory core.
#[derive(Debug)]
pub struct Factory {
    pub(crate) store: Arc<Store>,
    pub(crate) blobs: BlobStore,
    pub(crate) key: MasterKey,
    pub(crate) clock: Clock,
    config: RwLock<Arc<Config>>,
}

impl Factory {
    /// Open a factory on `path` (`":memory:"` for a private in-memory one).
    pub fn open(path: &str, options: FactoryOptions) -> Result<Factory> {
        options.config.validate()?;
        let store = Store::open(path, &options.store)?;
        let blobs = BlobStore::for_database(store.path())?;
        let key = MasterKey::for_database(store.path())?;
        Ok(Factory {
            store,
            blobs,
            key,
            clock: options.clock,
            config: RwLock::new(Arc::new(options.config)),
        })
    }

    /// Current tunables (a snapshot).
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replace the tunables; rejected values leave the old ones in place.
    pub fn set_config(&self, config: Config) -> Result<()> {
        config.validate()?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// `explicit` or the clock's time; a negative explicit time is rejected.
    pub fn now(&self, explicit: Option<i64>) -> Result<i64> {
        crate::validate::timestamp("nowMs", explicit)?;
        Ok(self.clock.resolve(explicit))
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }
}
