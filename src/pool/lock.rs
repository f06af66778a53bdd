//! One pool cycle at a time per database, across threads and processes.
//!
//! The original let reconciles overlap (every enqueue, claim and reconcile
//! scheduled another), which duplicated provider calls and could spawn twice.
//! Here `reconcile` and `check_idle_shutdowns` hold a lock row
//! (`runtime_config` key `pool.cycle_lock`) for their whole run.
//!
//! Invariants:
//! - the lock is taken and released in short write transactions; it is never
//!   held as a SQLite transaction across provider calls;
//! - expiry uses the wall clock (a test's manual clock does not move by
//!   itself): `LOCK_TTL_MS` after the last refresh. While a cycle runs, a
//!   background thread refreshes the lock every third of the TTL, so a slow
//!   cycle (provider timeouts and retries) keeps it and a crashed holder loses
//!   it within one TTL; a cycle that finds its lock taken over stops at its next
//!   step ([`CycleLock::ensure_held`]);
//! - release deletes the row only if this holder still owns it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::clock::system_now_ms;
use crate::error::{Error, Result};
use crate::store::Store;

/// Key of the lock row in `runtime_config`.
pub const LOCK_KEY: &str = "pool.cycle_lock";
/// How long a lock lives without a refresh.
pub const LOCK_TTL_MS: i64 = 60_000;
/// How long a cycle waits for another to finish before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug, Serialize, Deserialize)]
struct LockValue {
    holder: String,
    expires_at_ms: i64,
}

/// A held cycle lock, kept fresh by a background thread; released on drop.
#[derive(Debug)]
pub struct CycleLock {
    store: Arc<Store>,
    holder: String,
    lost: Arc<AtomicBool>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    refresher: Option<JoinHandle<()>>,
}

fn try_take(store: &Store, holder: &str) -> Result<Option<LockValue>> {
    store.write(|tx| {
        let now = system_now_ms();
        let current: Option<String> = tx
            .prepare_cached("SELECT value FROM runtime_config WHERE key = ?1")?
            .query_row([LOCK_KEY], |r| r.get(0))
            .optional()?;
        if let Some(text) = current {
            // An unreadable row is treated as expired: it cannot name a live holder.
            if let Ok(v) = serde_json::from_str::<LockValue>(&text) {
                if v.holder != holder && v.expires_at_ms > now {
                    return Ok(Some(v));
                }
            }
        }
        let value = serde_json::to_string(&LockValue {
            holder: holder.to_string(),
            expires_at_ms: now + LOCK_TTL_MS,
        })?;
        tx.prepare_cached(
            "INSERT INTO runtime_config(key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )?
        .execute(params![LOCK_KEY, value, now])?;
        Ok(None)
    })
}

impl CycleLock {
    /// Take the lock, waiting up to `wait` for another holder to finish.
    pub fn acquire(store: &Arc<Store>, wait: Duration) -> Result<CycleLock> {
        let period = Duration::from_millis((LOCK_TTL_MS / 3).unsigned_abs());
        Self::acquire_refreshing(store, wait, period)
    }

    fn acquire_refreshing(
        store: &Arc<Store>,
        wait: Duration,
        period: Duration,
    ) -> Result<CycleLock> {
        let holder = format!(
            "pid-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        let deadline = Instant::now() + wait;
        loop {
            match try_take(store, &holder)? {
                None => break,
                Some(other) if Instant::now() >= deadline => {
                    return Err(Error::conflict(format!(
                        "another pool cycle is running (holder {}, lock expires in {} ms); try again later",
                        other.holder,
                        (other.expires_at_ms - system_now_ms()).max(0)
                    )))
                }
                Some(_) => std::thread::sleep(POLL),
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let refresher = {
            let (store, holder, lost, stop) =
                (store.clone(), holder.clone(), lost.clone(), stop.clone());
            std::thread::Builder::new()
                .name("agent-factory-pool-lock".into())
                .spawn(move || refresh_until_stopped(&store, &holder, &lost, &stop, period))
                .map_err(|e| Error::storage(format!("cannot start the pool lock refresher: {e}")))
        };
        let mut lock = CycleLock {
            store: store.clone(),
            holder,
            lost,
            stop,
            refresher: None,
        };
        lock.refresher = Some(refresher?);
        Ok(lock)
    }

    /// Fail if another holder took the lock over (this cycle must stop).
    pub fn ensure_held(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::conflict(
                "the pool cycle lock was taken over by another cycle; this cycle stopped",
            ));
        }
        Ok(())
    }
}

fn refresh_until_stopped(
    store: &Store,
    holder: &str,
    lost: &AtomicBool,
    stop: &(Mutex<bool>, Condvar),
    period: Duration,
) {
    let (flag, signal) = stop;
    let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        // Checked before waiting too: the stop may come before this thread first waits.
        if *stopped {
            return;
        }
        let (guard, timeout) = signal
            .wait_timeout(stopped, period)
            .unwrap_or_else(|e| e.into_inner());
        stopped = guard;
        if *stopped || !timeout.timed_out() {
            continue;
        }
        drop(stopped);
        // A failed refresh (storage trouble) is retried next period; a takeover is final.
        if let Ok(Some(_)) = try_take(store, holder) {
            lost.store(true, Ordering::SeqCst);
            return;
        }
        stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
    }
}

impl Drop for CycleLock {
    fn drop(&mut self) {
        {
            let (flag, signal) = &*self.stop;
            *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
            signal.notify_all();
        }
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let holder = self.holder.clone();
        let _ = self.store.write(|tx| {
            let text: Option<String> = tx
                .prepare_cached("SELECT value FROM runtime_config WHERE key = ?1")?
                .query_row([LOCK_KEY], |r| r.get(0))
                .optional()?;
            let mine = text
                .and_then(|t| serde_json::from_str::<LockValue>(&t).ok())
                .is_some_and(|v| v.holder == holder);
            if mine {
                tx.execute("DELETE FROM runtime_config WHERE key = ?1", [LOCK_KEY])?;
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[test]
    fn one_holder_at_a_time_and_release_on_drop() {
        let store = Store::open(":memory:", &StoreOptions::default()).unwrap();
        let first = CycleLock::acquire(&store, Duration::ZERO).unwrap();
        let err = CycleLock::acquire(&store, Duration::from_millis(60)).unwrap_err();
        assert!(matches!(err, Error::Conflict(m) if m.contains("another pool cycle")));
        first.ensure_held().unwrap();
        drop(first);
        let second = CycleLock::acquire(&store, Duration::ZERO).unwrap();
        drop(second);
        let rows: i64 = store
            .read(|tx| {
                Ok(tx.query_row(
                    "SELECT count(*) FROM runtime_config WHERE key = ?1",
                    [LOCK_KEY],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn a_takeover_is_noticed_and_the_new_holder_keeps_the_row() {
        let store = Store::open(":memory:", &StoreOptions::default()).unwrap();
        let lock = CycleLock::acquire_refreshing(&store, Duration::ZERO, Duration::from_millis(10))
            .unwrap();
        let far = system_now_ms() + 600_000;
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE runtime_config SET value = ?2 WHERE key = ?1",
                    params![
                        LOCK_KEY,
                        format!(r#"{{"holder":"other","expires_at_ms":{far}}}"#)
                    ],
                )?;
                Ok(())
            })
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock.ensure_held().is_ok() {
            assert!(Instant::now() < deadline, "takeover never noticed");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(lock);
        let holder: String = store
            .read(|tx| {
                Ok(tx.query_row(
                    "SELECT value FROM runtime_config WHERE key = ?1",
                    [LOCK_KEY],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert!(holder.contains("other"));
    }

    #[test]
    fn an_expired_lock_is_taken_over() {
        let store = Store::open(":memory:", &StoreOptions::default()).unwrap();
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO runtime_config(key, value, updated_at) VALUES (?1, ?2, 0)",
                    params![LOCK_KEY, r#"{"holder":"dead","expires_at_ms":1}"#],
                )?;
                Ok(())
            })
            .unwrap();
        let lock = CycleLock::acquire(&store, Duration::ZERO).unwrap();
        drop(lock);
    }
}
