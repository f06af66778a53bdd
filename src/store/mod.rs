//! The SQLite store: one writer connection per database file per process.
//!
//! Invariants:
//! - every write runs in one `BEGIN IMMEDIATE` transaction ([`Store::write`]); an
//!   error inside rolls the whole operation back;
//! - handles opened on the same file in one process share one connection behind a
//!   mutex, so writers in a process queue in order instead of starving each other
//!   in SQLite's busy retries; other processes are arbitrated by a short, jittered
//!   busy handler so every process keeps making progress;
//! - WAL with `synchronous=NORMAL` survives any process crash; `durable` switches
//!   to `synchronous=FULL`, which also survives power loss; network filesystems get
//!   the rollback journal;
//! - new directories are created 0700 and the database files are 0600;
//! - file databases go through the `wal_vfs` shim, which writes each WAL commit
//!   with one system call instead of two per page.

mod fs_policy;
pub mod migrations;
mod session;
pub mod wal_vfs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use fs_policy::{JournalChoice, JournalPolicy};

use crate::error::{Error, Result};

/// Page size of new database files. Queue rows are a few hundred bytes and each
/// operation dirties a handful of pages, so every commit appends whole pages to
/// the WAL that are mostly untouched bytes: 2 KiB pages halve what is copied,
/// checksummed, written and checkpointed per message (the drain ran ≈20 % faster
/// than with 4 KiB pages in `examples/core_workload.rs`), while a typical
/// payload (up to ≈2 KB) still fits a single page.
pub const PAGE_SIZE: i64 = 2048;

/// How to open a database.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// `synchronous=FULL` (survives power loss) instead of `NORMAL`.
    pub durable: bool,
    /// Journal selection; `Auto` detects network volumes.
    pub journal: JournalChoice,
    /// Also `chmod 0700` an existing parent directory (a store that owns its directory).
    pub harden_dir: bool,
}

/// An open database shared by every handle of this process on the same file.
pub struct Store {
    conn: Mutex<Tx>,
    path: Option<PathBuf>,
    durable: AtomicBool,
    journal_mode: String,
    /// Clock time (ms) of the last time-driven maintenance pass in this process.
    maintained_at: AtomicI64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("journal_mode", &self.journal_mode)
            .finish()
    }
}

type Registry = Mutex<HashMap<PathBuf, Weak<Store>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Sleep a little, with jitter, while another process holds the write lock.
/// Gives up after roughly 30 seconds.
fn busy_handler(attempt: i32) -> bool {
    if attempt > 60_000 {
        return false;
    }
    let spread = 50 + 25 * u64::from(attempt.clamp(0, 20) as u32);
    let micros = 20 + rand::random::<u64>() % spread;
    std::thread::sleep(Duration::from_micros(micros));
    true
}

impl Store {
    /// Open (or share) the database at `path`; `":memory:"` gives a private in-memory database.
    pub fn open(path: &str, options: &StoreOptions) -> Result<Arc<Store>> {
        if path.trim().is_empty() {
            return Err(Error::validation("database path is required"));
        }
        if path == ":memory:" {
            let conn = Connection::open_in_memory()?;
            return Self::finish_open(conn, None, options, "memory".into(), None);
        }
        let file = absolute(Path::new(path))?;
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = reg.get(&file).and_then(Weak::upgrade) {
            if options.durable {
                existing.make_durable()?;
            }
            return Ok(existing);
        }
        let store = Self::open_file(&file, options)?;
        reg.retain(|_, w| w.strong_count() > 0);
        reg.insert(file, Arc::downgrade(&store));
        Ok(store)
    }

    fn open_file(file: &Path, options: &StoreOptions) -> Result<Arc<Store>> {
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        prepare_dir(&dir, options.harden_dir)?;
        create_private_file(file)?;
        let policy = match options.journal {
            JournalChoice::Wal => JournalPolicy::Wal { mmap: false },
            JournalChoice::Delete => JournalPolicy::Rollback,
            JournalChoice::Auto => fs_policy::detect(&dir),
        };
        if policy == JournalPolicy::Refuse {
            return Err(Error::storage(format!(
                "database at {} is on SSHFS, which cannot safely coordinate SQLite writes across mounts; refusing to open the database",
                file.display()
            )));
        }
        let (conn, mode) = Self::connect_file(file, policy)?;
        let reconnect = || Self::connect_file(file, policy).map(|(c, _)| c);
        let store = Self::finish_open(
            conn,
            Some(file.to_path_buf()),
            options,
            mode.to_ascii_lowercase(),
            Some(&reconnect),
        )?;
        harden_files(file)?;
        Ok(store)
    }

    /// A new connection to `file` in the journal mode `policy` asks for; also the
    /// mode SQLite reports.
    fn connect_file(file: &Path, policy: JournalPolicy) -> Result<(Connection, String)> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let vfs = wal_vfs::vfs_name()?;
        let mut conn = match vfs {
            Some(vfs) => Connection::open_with_flags_and_vfs(file, flags, vfs)?,
            None => Connection::open_with_flags(file, flags)?,
        };
        conn.busy_handler(Some(busy_handler))?;
        // Only takes effect on a new file (before the journal mode is set).
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        let wanted = if policy == JournalPolicy::Rollback {
            "delete"
        } else {
            "wal"
        };
        let mode: String =
            conn.query_row(&format!("PRAGMA journal_mode = {wanted}"), [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case(wanted) {
            return Err(Error::storage(format!(
                "database at {} could not switch to journal_mode={wanted}; SQLite kept journal_mode={mode}",
                file.display()
            )));
        }
        if let JournalPolicy::Wal { mmap: true } = policy {
            conn.pragma_update(None, "mmap_size", 67_108_864_i64)?;
        }
        conn.pragma_update(None, "journal_size_limit", 67_108_864_i64)?;
        Ok((conn, mode))
    }

    /// Configure `conn`, apply pending migrations and wrap it in a store. When
    /// migrations ran and `reconnect` is given, the store continues on a fresh
    /// connection: schema changes (`ALTER TABLE`, a schema reload) leave SQLite's
    /// TEMP database open on the migrating connection, and every later
    /// `BEGIN IMMEDIATE` would then also open and commit a write transaction on it.
    fn finish_open(
        conn: Connection,
        path: Option<PathBuf>,
        options: &StoreOptions,
        journal_mode: String,
        reconnect: Option<&dyn Fn() -> Result<Connection>>,
    ) -> Result<Arc<Store>> {
        Self::configure(&conn, options)?;
        let store = Store {
            conn: Mutex::new(Tx::new(conn)),
            path,
            durable: AtomicBool::new(options.durable),
            journal_mode,
            maintained_at: AtomicI64::new(i64::MIN),
        };
        let migrated = store.write(|tx| migrations::apply(tx))?;
        if let (true, Some(reconnect)) = (migrated, reconnect) {
            let fresh = reconnect()?;
            Self::configure(&fresh, options)?;
            *store.lock() = Tx::new(fresh);
        }
        Ok(Arc::new(store))
    }

    /// The per-connection settings every store connection runs with.
    fn configure(conn: &Connection, options: &StoreOptions) -> Result<()> {
        conn.pragma_update(
            None,
            "synchronous",
            if options.durable { "FULL" } else { "NORMAL" },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // 2 MiB of page cache. After a b-tree rebalance SQLite re-keys a page
        // through the lock-byte page number, and the next commit then scans the
        // whole page hash (`pcache1TruncateUnsafe`): with 16 MiB that scan cost up
        // to 8 % of a queue cycle on a large database. The OS page cache keeps
        // the pages this one evicts close at hand.
        conn.pragma_update(None, "cache_size", -2048_i64)?;
        conn.set_prepared_statement_cache_capacity(128);
        // Plans must not depend on bound values: otherwise SQLite re-prepares a
        // statement every time the cache hands it out with fresh bindings.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        Ok(())
    }

    /// The database file, or `None` for `:memory:`.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether commits are fsynced (`synchronous=FULL`).
    pub fn durable(&self) -> bool {
        self.durable.load(Ordering::SeqCst)
    }

    /// Switch the shared connection to `synchronous=FULL` (a handle asked for durability).
    fn make_durable(&self) -> Result<()> {
        if !self.durable.swap(true, Ordering::SeqCst) {
            self.lock().pragma_update(None, "synchronous", "FULL")?;
        }
        Ok(())
    }

    /// The journal mode SQLite reported (`wal`, `delete` or `memory`).
    pub fn journal_mode(&self) -> &str {
        &self.journal_mode
    }

    /// Whether time-driven maintenance (due promotions, lease expiry) should run at
    /// `now`, given that it may be skipped for `interval_ms` after a pass. With an
    /// interval of 0 it is skipped only when the previous pass ran at exactly the same
    /// millisecond: writes at one instant never create work due at that same instant
    /// (retries and leases always end later), so nothing is delayed at all. A clock
    /// that goes backwards always runs a pass.
    pub fn maintenance_due(&self, now: i64, interval_ms: i64) -> bool {
        let last = self.maintained_at.load(Ordering::SeqCst);
        let due = now < last
            || now > last.saturating_add(interval_ms)
            || (interval_ms == 0 && now != last);
        due && self
            .maintained_at
            .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Undo [`Store::maintenance_due`] after the transaction that ran the pass rolled back.
    pub fn forget_maintenance(&self) {
        self.maintained_at.store(i64::MIN, Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, Tx> {
        // A panic inside a transaction drops (rolls back) it, so the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction; commit on `Ok`, roll back on `Err`.
    /// Events and counts raised inside go out after a commit, once the
    /// connection is unlocked ([`crate::metrics::events`]).
    pub fn write<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let events = crate::metrics::Scope::enter();
        let out = {
            let conn = self.lock();
            run_in_transaction(&conn, "BEGIN IMMEDIATE", f)
        };
        events.finish(out.is_ok());
        out
    }

    /// Run `f` in a read transaction (one consistent snapshot).
    pub fn read<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let conn = self.lock();
        run_in_transaction(&conn, "BEGIN DEFERRED", f)
    }
}

pub use session::{HotStatement, Tx};

/// Rolls back unless committed, also when `f` panics.
struct Open<'a> {
    tx: &'a Tx,
    committed: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self
                .tx
                .prepare_hot("ROLLBACK")
                .and_then(|mut s| Ok(s.execute([])?));
        }
    }
}

/// BEGIN/COMMIT as kept statements (no re-parsing per transaction).
fn run_in_transaction<T>(
    tx: &Tx,
    begin: &'static str,
    f: impl FnOnce(&Tx) -> Result<T>,
) -> Result<T> {
    tx.prepare_hot(begin)?.execute([])?;
    let mut open = Open {
        tx,
        committed: false,
    };
    let out = f(tx)?;
    tx.prepare_hot("COMMIT")?.execute([])?;
    open.committed = true;
    Ok(out)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    // Canonicalise the directory (it may not exist yet) so two spellings share one writer.
    match (joined.parent(), joined.file_name()) {
        (Some(dir), Some(name)) if dir.exists() => Ok(dir.canonicalize()?.join(name)),
        _ => Ok(joined),
    }
}

fn prepare_dir(dir: &Path, harden: bool) -> Result<()> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        set_mode(dir, 0o700)?;
    } else if harden {
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

fn create_private_file(file: &Path) -> Result<()> {
    if file.exists() {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(file)?;
    Ok(())
}

fn harden_files(file: &Path) -> Result<()> {
    let name = file.as_os_str().to_string_lossy().to_string();
    for candidate in [
        name.clone(),
        format!("{name}-wal"),
        format!("{name}-shm"),
        format!("{name}-journal"),
    ] {
        let p = Path::new(&candidate);
        if p.exists() {
            set_mode(p, 0o600)?;
        }
    }
    Ok(())
}

/// Set unix permission bits (no-op elsewhere).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_databases(store: &Store) -> Vec<String> {
        store
            .read(|c| {
                let names = c
                    .prepare("PRAGMA database_list")?
                    .query_map([], |r| r.get(1))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok(names)
            })
            .unwrap()
    }

    /// Migrating leaves SQLite's TEMP database open on the connection that ran
    /// the schema changes; the store continues on a fresh one, so a write
    /// transaction involves the main database only.
    #[test]
    fn a_migrated_file_store_runs_on_a_connection_without_the_temp_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let store = Store::open(path.to_str().unwrap(), &StoreOptions::default()).unwrap();
        assert_eq!(open_databases(&store), ["main"]);
        drop(store);
        // Reopening an up-to-date file migrates nothing and opens no TEMP either.
        let store = Store::open(path.to_str().unwrap(), &StoreOptions::default()).unwrap();
        assert_eq!(open_databases(&store), ["main"]);
        assert!(!store.durable());
        store
            .write(|c| {
                Ok(c.execute(
                    "INSERT INTO runtime_config(key, value, updated_at) VALUES ('k', 'v', 1)",
                    [],
                )?)
            })
            .unwrap();
    }

    #[test]
    fn file_store_uses_wal_private_modes_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/db.sqlite");
        let a = Store::open(path.to_str().unwrap(), &StoreOptions::default()).unwrap();
        let b = Store::open(path.to_str().unwrap(), &StoreOptions::default()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one writer per file per process");
        assert_eq!(a.journal_mode(), "wal");
        let version: i64 = a
            .read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(version, migrations::LATEST);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn forced_rollback_journal_leaves_no_wal_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.db");
        let opts = StoreOptions {
            journal: JournalChoice::Delete,
            ..Default::default()
        };
        let s = Store::open(path.to_str().unwrap(), &opts).unwrap();
        assert_eq!(s.journal_mode(), "delete");
        assert!(!dir.path().join("net.db-wal").exists());
    }

    #[test]
    fn failed_write_rolls_back() {
        let s = Store::open(":memory:", &StoreOptions::default()).unwrap();
        let r: Result<()> = s.write(|tx| {
            tx.execute(
                "INSERT INTO runtime_config(key, value, updated_at) VALUES ('k', '1', 0)",
                [],
            )?;
            Err(Error::validation("boom"))
        });
        assert!(r.is_err());
        let n: i64 = s
            .read(|c| Ok(c.query_row("SELECT count(*) FROM runtime_config", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 0);
    }
}
