//! One pool cycle at a time per database, across threads and processes.
//!
//! The original let reconciles overlap (every enqueue, claim and reconcile
//! scheduled another), which duplicated provider calls and could spawn twice.
//! Here `reconcile` and `check_idle_shutdowns` hold the named lease
//! [`LOCK_NAME`] ([`crate::leases`]) for their whole run.
//!
//! Invariants:
//! - the lease is taken, refreshed and released in short write transactions;
//!   it is never held as a SQLite transaction across provider calls;
//! - expiry uses the wall clock (a test's manual clock does not move by
//!   itself): `LOCK_TTL_MS` after the last refresh. While a cycle runs, a
//!   background thread refreshes the lease every third of the TTL, so a slow
//!   cycle (provider timeouts and retries) keeps it and a crashed holder loses
//!   it within one TTL; a cycle that finds its lease taken over — another
//!   holder has it, or its own tenure lapsed (new fencing token) — stops at its
//!   next step ([`CycleLock::ensure_held`]);
//! - release gives the lease up only if this holder still owns the tenure it
//!   took (holder and token), so it never frees a successor's lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::system_now_ms;
use crate::error::{Error, Result};
use crate::leases::{self, LeaseGrant};
use crate::store::Store;

/// Name of the cycle lease in the `leases` table.
pub const LOCK_NAME: &str = "pool.cycle";
/// How long the lease lives without a refresh.
pub const LOCK_TTL_MS: i64 = 60_000;
/// How long a cycle waits for another to finish before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

/// A held cycle lease, kept fresh by a background thread; released on drop.
#[derive(Debug)]
pub struct CycleLock {
    store: Arc<Store>,
    grant: LeaseGrant,
    lost: Arc<AtomicBool>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    refresher: Option<JoinHandle<()>>,
}

/// Take or renew the cycle lease for `holder` at the wall clock's now.
fn try_take(store: &Store, holder: &str) -> Result<Option<LeaseGrant>> {
    store.write(|tx| leases::acquire_in(tx, LOCK_NAME, holder, LOCK_TTL_MS, system_now_ms()))
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
        let holder = leases::holder_id();
        let deadline = Instant::now() + wait;
        let grant = loop {
            if let Some(grant) = try_take(store, &holder)? {
                break grant;
            }
            if Instant::now() >= deadline {
                let current = store.read(|tx| leases::get_in(tx, LOCK_NAME))?;
                let (other, left) = current.map_or_else(
                    || ("unknown".to_string(), 0),
                    |g| (g.holder, (g.expires_at - system_now_ms()).max(0)),
                );
                return Err(Error::conflict(format!(
                    "another pool cycle is running (holder {other}, lock expires in {left} ms); try again later"
                )));
            }
            std::thread::sleep(POLL);
        };
        let lost = Arc::new(AtomicBool::new(false));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let refresher = {
            let (store, grant, lost, stop) =
                (store.clone(), grant.clone(), lost.clone(), stop.clone());
            std::thread::Builder::new()
                .name("agent-factory-pool-lock".into())
                .spawn(move || refresh_until_stopped(&store, &grant, &lost, &stop, period))
        };
        let mut lock = CycleLock {
            store: store.clone(),
            grant,
            lost,
            stop,
            refresher: None,
        };
        // On failure `lock` is dropped here, which releases the lease just taken.
        lock.refresher =
            Some(refresher.map_err(|e| {
                Error::storage(format!("cannot start the pool lock refresher: {e}"))
            })?);
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
    grant: &LeaseGrant,
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
        match try_take(store, &grant.holder) {
            Ok(Some(renewed)) if renewed.token == grant.token => {}
            Ok(Some(lapsed)) => {
                // The tenure lapsed and this refresh started a new one: another
                // cycle may have run in between, so this one must stop. The new
                // tenure is not this cycle's to keep.
                lost.store(true, Ordering::SeqCst);
                let _ = store
                    .write(|tx| leases::release_in(tx, LOCK_NAME, &lapsed.holder, lapsed.token));
                return;
            }
            Ok(None) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(_) => {}
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
        let (holder, token) = (&self.grant.holder, self.grant.token);
        // Best effort: a lease that cannot be released lapses within its TTL.
        let _ = self
            .store
            .write(|tx| leases::release_in(tx, LOCK_NAME, holder, token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use rusqlite::params;

    fn lease(store: &Store) -> Option<LeaseGrant> {
        store.read(|tx| leases::get_in(tx, LOCK_NAME)).unwrap()
    }

    #[test]
    fn one_holder_at_a_time_and_release_on_drop() {
        let store = Store::open(":memory:", &StoreOptions::default()).unwrap();
        let first = CycleLock::acquire(&store, Duration::ZERO).unwrap();
        let err = CycleLock::acquire(&store, Duration::from_millis(60)).unwrap_err();
        assert!(matches!(err, Error::Conflict(m) if m.contains("another pool cycle")));
        first.ensure_held().unwrap();
        let first_token = first.grant.token;
        drop(first);
        let released = lease(&store).unwrap();
        assert!(released.expires_at <= system_now_ms(), "released at once");
        let second = CycleLock::acquire(&store, Duration::ZERO).unwrap();
        assert_eq!(second.grant.token, first_token + 1, "a new tenure");
        drop(second);
    }

    #[test]
    fn a_live_holder_refreshes_its_lease() {
        let store = Store::open(":memory:", &StoreOptions::default()).unwrap();
        let lock = CycleLock::acquire_refreshing(&store, Duration::ZERO, Duration::from_millis(5))
            .unwrap();
        let before = lease(&store).unwrap().expires_at;
        let deadline = Instant::now() + Duration::from_secs(5);
        while lease(&store).unwrap().expires_at == before {
            assert!(Instant::now() < deadline, "never refreshed");
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = lease(&store).unwrap();
        assert_eq!(
            (now.holder.as_str(), now.token),
            (lock.grant.holder.as_str(), lock.grant.token)
        );
        lock.ensure_held().unwrap();
    }

    #[test]
    fn a_takeover_is_noticed_and_the_new_holder_keeps_the_lease() {
        let store = Store::open(":memory:", &StoreOptions::default()).unwrap();
        let lock = CycleLock::acquire_refreshing(&store, Duration::ZERO, Duration::from_millis(10))
            .unwrap();
        let far = system_now_ms() + 600_000;
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE leases SET holder = 'other', token = token + 1, expires_at = ?2 WHERE name = ?1",
                    params![LOCK_NAME, far],
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
        let now = lease(&store).unwrap();
        assert_eq!((now.holder.as_str(), now.expires_at), ("other", far));
    }

    #[test]
    fn an_expired_lock_is_taken_over() {
        let store = Store::open(":memory:", &StoreOptions::default()).unwrap();
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO leases(name, holder, token, acquired_at, renewed_at, expires_at)
                     VALUES (?1, 'dead', 7, 0, 0, 1)",
                    [LOCK_NAME],
                )?;
                Ok(())
            })
            .unwrap();
        let lock = CycleLock::acquire(&store, Duration::ZERO).unwrap();
        assert_eq!(lock.grant.token, 8);
        lock.ensure_held().unwrap();
    }
}
