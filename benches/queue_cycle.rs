//! Queue throughput against the plain-SQL floor.
//!
//! One criterion run measures, per message:
//! - `cycle/*`: `enqueue` + `claim` + `complete` (three transactions) through the
//!   core API, and the same three statements as plain SQL on rusqlite (the schema
//!   and SQL of `shared/notes/limits.md` §2), WAL + `synchronous=NORMAL`; the
//!   floor's connection uses the core's storage settings (its WAL write shim and
//!   page size), so the ratio measures what the queue logic costs;
//! - `cycle/agent_factory_claim_next`: `enqueue` + `complete_and_claim` in steady
//!   state (two transactions per message, one of them for the drain);
//! - `cycle_durable/*`: the same at `synchronous=FULL` (`durable: true`), with a
//!   1 s fsync probe before and after the group so the figures can be read
//!   against the disk;
//! - `enqueue_many/*`: one batch of 1000 messages (one per conversation) in one
//!   transaction, through the core (on a database kept at 1000–20 000 queued
//!   messages) and as plain SQL.
//!
//! Every database is a fresh temporary FILE. Messages go round-robin to 1000
//! conversations; the payload is the same ~200-byte JSON object everywhere (for
//! the plain SQL it is byte-for-byte what the core stores). Each claimed payload
//! is read (`black_box`).
//!
//! After the criterion groups a summary prints the median time per message of
//! each benchmark (from the measured samples, not criterion's slope) and the
//! ratios agent_factory ÷ plain SQL as throughput; then a diagnostics section
//! reads SQLite's own counters (statements run, re-prepares and WAL pages written
//! per message) for the core and the floor, and measures the core ÷ floor ratio
//! again in interleaved rounds (robust against this VM's drifting speed).
//!
//! Run: `cargo bench --bench queue_cycle` (about 2 minutes of measuring after the
//! build). A name filter works as usual (`cargo bench --bench queue_cycle --
//! cycle_durable`); the diagnostics run when `cycle/agent_factory` did.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use _native as agent_factory;
use agent_factory::agents::AgentInput;
use agent_factory::queue::{Claim, ClaimOptions, EnqueueRequest};
use agent_factory::store::StoreOptions;
use agent_factory::workers::WorkerMode;
use agent_factory::{Factory, FactoryOptions};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use rusqlite::{ffi, params, Connection};
use serde_json::{json, Value};

const CONVERSATIONS: usize = 1000;
const AGENT: &str = "bench-agent";
const WORKER: &str = "bench-worker";
const BATCH: usize = 1000;

// ---------------------------------------------------------------------------
// Payloads

/// The payload of conversation `i`: already in the normalised shape the core
/// stores (metadata carries the user), so its JSON is what the floor stores too.
fn payload(i: usize) -> Value {
    let user = format!("user-{i:04}");
    let text = format!(
        "Message for conversation {i:04}: please summarise the attached notes and reply with three short bullet points."
    );
    json!({
        "provider": "telegram",
        "providerUserId": user,
        "messageText": text,
        "metadata": { "providerUserId": user },
    })
}

fn requests() -> Vec<EnqueueRequest> {
    (0..CONVERSATIONS)
        .map(|i| EnqueueRequest {
            conversation_id: format!("conv-{i:04}"),
            agent_key: AGENT.to_string(),
            payload: payload(i),
            priority: None,
            scheduled_for: None,
            max_attempts: None,
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// agent_factory through the Rust core

struct Core {
    _dir: tempfile::TempDir,
    f: Factory,
    reqs: Vec<EnqueueRequest>,
    next: usize,
    opts: ClaimOptions,
    held: Option<Claim>,
}

impl Core {
    fn open(durable: bool) -> Core {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue.db");
        let options = FactoryOptions {
            store: StoreOptions {
                durable,
                ..Default::default()
            },
            ..Default::default()
        };
        let f = Factory::open(path.to_str().expect("utf-8 path"), options).expect("open factory");
        assert_eq!(f.store().journal_mode(), "wal");
        assert_eq!(f.store().durable(), durable);
        f.upsert_agent(
            AgentInput {
                agent_key: AGENT.into(),
                version: "1.0.0".into(),
                enabled: true,
                ..Default::default()
            },
            None,
        )
        .expect("upsert agent");
        Core {
            _dir: dir,
            f,
            reqs: requests(),
            next: 0,
            opts: ClaimOptions {
                conversation_id: None,
                mode: Some(WorkerMode::Pooled),
            },
            held: None,
        }
    }

    fn next_request(&mut self) -> usize {
        let i = self.next % self.reqs.len();
        self.next += 1;
        i
    }

    /// enqueue + claim + complete: three transactions.
    fn cycle(&mut self) {
        let i = self.next_request();
        self.f.enqueue(&self.reqs[i], None).expect("enqueue");
        let c = self
            .f
            .claim(WORKER, &self.opts, None)
            .expect("claim")
            .expect("a message to claim");
        black_box(c.payload["messageText"].as_str());
        let done = self
            .f
            .complete(WORKER, &c.message_id, &c.lease_id, None)
            .expect("complete");
        assert!(done, "lease lost");
    }

    /// enqueue + complete_and_claim: the held claim is completed and the message
    /// just enqueued (another conversation) is claimed in the same transaction.
    fn cycle_claim_next(&mut self) {
        if self.held.is_none() {
            let i = self.next_request();
            self.f.enqueue(&self.reqs[i], None).expect("enqueue");
            self.held = self.f.claim(WORKER, &self.opts, None).expect("claim");
            assert!(self.held.is_some());
        }
        let i = self.next_request();
        self.f.enqueue(&self.reqs[i], None).expect("enqueue");
        let held = self.held.take().expect("held claim");
        let next = self
            .f
            .complete_and_claim(WORKER, &held.message_id, &held.lease_id, &self.opts, None)
            .expect("complete_and_claim")
            .expect("a next message to claim");
        black_box(next.payload["messageText"].as_str());
        self.held = Some(next);
    }

    fn enqueue_many(&mut self) {
        let ids = self.f.enqueue_many(&self.reqs, None).expect("enqueue_many");
        assert_eq!(ids.len(), self.reqs.len());
        black_box(ids);
    }
}

// ---------------------------------------------------------------------------
// The plain-SQL floor (limits.md §2, verbatim)

const SCHEMA: &str = "
CREATE TABLE jobs(id INTEGER PRIMARY KEY, queue TEXT NOT NULL DEFAULT 'default',
  status TEXT NOT NULL DEFAULT 'queued', priority INTEGER NOT NULL DEFAULT 0, payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, lease_until INTEGER, worker TEXT, created_at INTEGER NOT NULL,
  finished_at INTEGER);
CREATE INDEX jobs_claim ON jobs(status, priority, id);";
const ENQUEUE: &str =
    "INSERT INTO jobs(queue, priority, payload, created_at) VALUES ('default', 0, ?1, ?2)";
const CLAIM: &str = "UPDATE jobs SET status='running', lease_until=?1, worker=?2, attempts=attempts+1
 WHERE id = (SELECT id FROM jobs WHERE status='queued' ORDER BY priority, id LIMIT 1) RETURNING id, payload";
const COMPLETE: &str = "UPDATE jobs SET status='done', finished_at=?1 WHERE id=?2 AND worker=?3";

struct Plain {
    _dir: tempfile::TempDir,
    conn: Connection,
    payloads: Vec<String>,
    next: usize,
}

impl Plain {
    fn open(durable: bool) -> Plain {
        let dir = tempfile::tempdir().expect("temp dir");
        // The same storage as the core (its VFS shim and page size), so the ratio
        // measures the queue logic, not storage settings.
        let vfs = agent_factory::store::wal_vfs::ensure_registered().expect("vfs");
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags_and_vfs(dir.path().join("plain.db"), flags, vfs)
            .expect("open");
        conn.pragma_update(None, "page_size", agent_factory::store::PAGE_SIZE)
            .expect("page_size");
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
            .expect("synchronous");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("read synchronous");
        assert_eq!(sync, if durable { 2 } else { 1 });
        conn.busy_timeout(Duration::from_secs(30))
            .expect("busy_timeout");
        conn.execute_batch(SCHEMA).expect("schema");
        let payloads = (0..CONVERSATIONS)
            .map(|i| serde_json::to_string(&payload(i)).expect("json"))
            .collect();
        Plain {
            _dir: dir,
            conn,
            payloads,
            next: 0,
        }
    }

    /// INSERT, claim (UPDATE … RETURNING), complete: each its own (autocommit) transaction.
    fn cycle(&mut self) {
        let p = &self.payloads[self.next % self.payloads.len()];
        self.next += 1;
        let now = now_ms();
        self.conn
            .prepare_cached(ENQUEUE)
            .and_then(|mut s| s.execute(params![p, now]))
            .expect("insert");
        let (id, body): (i64, String) = self
            .conn
            .prepare_cached(CLAIM)
            .and_then(|mut s| {
                s.query_row(params![now + 30_000, WORKER], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .expect("claim");
        black_box(body.as_str());
        let n = self
            .conn
            .prepare_cached(COMPLETE)
            .and_then(|mut s| s.execute(params![now, id, WORKER]))
            .expect("complete");
        assert_eq!(n, 1);
    }

    /// 1000 INSERTs in one `BEGIN IMMEDIATE` transaction.
    fn enqueue_many(&mut self) {
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        {
            let mut s = tx.prepare_cached(ENQUEUE).expect("prepare");
            for p in &self.payloads {
                s.execute(params![p, now]).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
}

// ---------------------------------------------------------------------------
// fsync probe (limits.md §1, mode 3: pwrite 4 KiB at offset 0 + fsync)

fn fsync_probe(dir: &Path, seconds: f64) -> f64 {
    let path: PathBuf = dir.join("fsync-probe.bin");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("probe file");
    let buf = [0x5a_u8; 4096];
    file.write_all_at(&buf, 0).expect("write");
    file.sync_all().expect("fsync");
    let start = Instant::now();
    let mut n = 0_u64;
    loop {
        file.write_all_at(&buf, 0).expect("write");
        file.sync_all().expect("fsync");
        n += 1;
        let t = start.elapsed().as_secs_f64();
        if t >= seconds {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return n as f64 / t;
        }
    }
}

// ---------------------------------------------------------------------------
// Sample bookkeeping: criterion's own figure is printed as usual; the summary
// uses the median of the measured samples' time per element.

struct Summary {
    /// (benchmark, median ns per element).
    rows: Vec<(String, f64)>,
    notes: Vec<String>,
    /// `--profile-time`: criterion measures nothing; print iteration counts instead.
    profiling: bool,
}

impl Summary {
    fn median_ns(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Benchmark `routine` (one call = one iteration of `elements` messages) with
/// `iter_custom`, recording every call so the summary can use the measured
/// samples (the last `sample_size` calls; earlier ones are warm-up).
#[allow(clippy::too_many_arguments)]
fn run(
    group: &mut BenchmarkGroup<'_, WallTime>,
    summary: &mut Summary,
    group_name: &str,
    name: &str,
    sample_size: usize,
    elements: u64,
    before_first: &mut dyn FnMut(),
    mut routine: impl FnMut(),
) {
    let calls: RefCell<Vec<(u64, Duration)>> = RefCell::new(Vec::new());
    group.bench_function(name, |b| {
        // Outside `iter_custom`, so neither our samples nor criterion's warm-up
        // estimate include it; runs only if this benchmark is not filtered out.
        if calls.borrow().is_empty() {
            before_first();
        }
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                routine();
            }
            let elapsed = start.elapsed();
            calls.borrow_mut().push((iters, elapsed));
            elapsed
        })
    });
    record(
        summary,
        group_name,
        name,
        sample_size,
        elements,
        calls.into_inner(),
    );
}

/// Add a benchmark's median time per element (over its last `sample_size` calls,
/// the measured samples; earlier calls are warm-up) to the summary.
fn record(
    summary: &mut Summary,
    group_name: &str,
    name: &str,
    sample_size: usize,
    elements: u64,
    calls: Vec<(u64, Duration)>,
) {
    if calls.is_empty() {
        return; // filtered out
    }
    if summary.profiling {
        let iters: u64 = calls.iter().map(|(i, _)| i).sum();
        let secs: f64 = calls.iter().map(|(_, d)| d.as_secs_f64()).sum();
        println!(
            "profiled {group_name}/{name}: {iters} iterations ({} elements), {secs:.2} s timed",
            iters * elements
        );
        return;
    }
    let measured = &calls[calls.len().saturating_sub(sample_size)..];
    let mut per_element: Vec<f64> = measured
        .iter()
        .map(|(iters, d)| d.as_nanos() as f64 / (*iters as f64 * elements as f64))
        .collect();
    per_element.sort_by(|a, b| a.total_cmp(b));
    let mid = per_element.len() / 2;
    let median = if per_element.len() % 2 == 1 {
        per_element[mid]
    } else {
        (per_element[mid - 1] + per_element[mid]) / 2.0
    };
    summary.rows.push((format!("{group_name}/{name}"), median));
}

fn bench_cycles(c: &mut Criterion, summary: &mut Summary, durable: bool) {
    let group_name = if durable { "cycle_durable" } else { "cycle" };
    let (samples, measure) = if durable {
        (10, Duration::from_secs(12))
    } else {
        (20, Duration::from_secs(10))
    };
    let probe_dir = tempfile::tempdir().expect("temp dir");
    let probed = RefCell::new(false);
    // Durable figures depend on the disk: probe it right before the first durable
    // benchmark that actually runs (not when a filter skips the group).
    let mut probe_before = || {
        if durable && !probed.replace(true) {
            let probe = fsync_probe(probe_dir.path(), 1.0);
            println!(
                "fsync probe before {group_name}: {probe:.0} fsyncs/s (4 KiB overwrite + fsync)"
            );
            summary_note(&format!("fsync probe before {group_name}: {probe:.0}/s"));
        }
    };
    let mut group = c.benchmark_group(group_name);
    group
        .throughput(Throughput::Elements(1))
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measure)
        .nresamples(20_000)
        .sampling_mode(SamplingMode::Flat);

    let mut core = Core::open(durable);
    run(
        &mut group,
        summary,
        group_name,
        "agent_factory",
        samples,
        1,
        &mut probe_before,
        || core.cycle(),
    );
    drop(core);

    let mut plain = Plain::open(durable);
    run(
        &mut group,
        summary,
        group_name,
        "plain_sql_floor",
        samples,
        1,
        &mut probe_before,
        || plain.cycle(),
    );
    drop(plain);

    let mut core = Core::open(durable);
    run(
        &mut group,
        summary,
        group_name,
        "agent_factory_claim_next",
        samples,
        1,
        &mut probe_before,
        || core.cycle_claim_next(),
    );
    drop(core);
    group.finish();

    if durable && *probed.borrow() {
        let probe = fsync_probe(probe_dir.path(), 1.0);
        println!("fsync probe after {group_name}: {probe:.0} fsyncs/s");
        summary_note(&format!("fsync probe after {group_name}: {probe:.0}/s"));
    }
    summary.notes.extend(take_notes());
}

thread_local! {
    static NOTES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn summary_note(note: &str) {
    NOTES.with(|n| n.borrow_mut().push(note.to_string()));
}

fn take_notes() -> Vec<String> {
    NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

/// `enqueue_many` of 1000 messages (one per conversation) per iteration. The
/// database is replaced (untimed) every `REFRESH` batches and primed with one
/// untimed batch, so it always holds 1000–20 000 queued messages over 1000
/// existing conversations, the size of the Python comparison's backlog, instead
/// of growing without bound with the iteration count.
fn bench_enqueue_many(c: &mut Criterion, summary: &mut Summary) {
    const REFRESH: usize = 19;
    let samples = 20;
    let mut group = c.benchmark_group("enqueue_many");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .nresamples(20_000)
        .sampling_mode(SamplingMode::Flat);

    let calls: RefCell<Vec<(u64, Duration)>> = RefCell::new(Vec::new());
    let mut slot: Option<(Core, usize)> = None;
    let fresh = || {
        let mut core = Core::open(false);
        assert_eq!(core.reqs.len(), BATCH);
        core.enqueue_many();
        (core, 0_usize)
    };
    group.bench_function("1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if slot.as_ref().is_none_or(|(_, n)| *n >= REFRESH) {
                    slot = None; // drop the old database first
                    slot = Some(fresh());
                }
                let (core, n) = slot.as_mut().expect("core");
                let start = Instant::now();
                core.enqueue_many();
                total += start.elapsed();
                *n += 1;
            }
            calls.borrow_mut().push((iters, total));
            total
        })
    });
    drop(slot);
    record(
        summary,
        "enqueue_many",
        "1000",
        samples,
        BATCH as u64,
        calls.into_inner(),
    );

    let mut plain = Plain::open(false);
    run(
        &mut group,
        summary,
        "enqueue_many",
        "plain_sql_1000",
        samples,
        BATCH as u64,
        &mut || {},
        || plain.enqueue_many(),
    );
    drop(plain);
    group.finish();
}

// ---------------------------------------------------------------------------
// Diagnostics (after the criterion groups): where the time goes, from SQLite's
// own counters, and the interleaved ratio. Not timed by criterion.

/// Counters of one connection: per prepared statement (by address) its SQL, runs
/// and re-prepares, and the pages written to the WAL (`SQLITE_DBSTATUS_CACHE_WRITE`).
struct Counters {
    stmts: HashMap<usize, (String, i64, i64, i64)>,
    pages_written: i64,
}

fn counters(conn: &Connection) -> Counters {
    let mut stmts = HashMap::new();
    let mut pages_written = 0;
    // SAFETY: read-only C calls on this thread's open connection; every statement
    // pointer comes from sqlite3_next_stmt on that connection and is only read.
    unsafe {
        let db = conn.handle();
        let mut stmt = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            let sql_ptr = ffi::sqlite3_sql(stmt);
            let sql = if sql_ptr.is_null() {
                String::new()
            } else {
                CStr::from_ptr(sql_ptr).to_string_lossy().into_owned()
            };
            let runs = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_RUN, 0);
            let reprepares = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            let steps = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_VM_STEP, 0);
            stmts.insert(
                stmt as usize,
                (
                    sql,
                    i64::from(runs),
                    i64::from(reprepares),
                    i64::from(steps),
                ),
            );
            stmt = ffi::sqlite3_next_stmt(db, stmt);
        }
        let (mut cur, mut high) = (0, 0);
        if ffi::sqlite3_db_status(db, ffi::SQLITE_DBSTATUS_CACHE_WRITE, &mut cur, &mut high, 0) == 0
        {
            pages_written = i64::from(cur);
        }
    }
    Counters {
        stmts,
        pages_written,
    }
}

fn core_counters(core: &Core) -> Counters {
    core.f
        .store()
        .write(|tx| Ok(counters(tx)))
        .expect("read counters")
}

struct Usage {
    statements: f64,
    reprepares: f64,
    pages: f64,
    reprepared_sql: Vec<(String, f64)>,
}

fn usage(before: &Counters, after: &Counters, messages: usize) -> Usage {
    let n = messages as f64;
    let (mut runs, mut reps) = (0, 0);
    let mut reprepared = Vec::new();
    for (ptr, (sql, r1, p1, v1)) in &after.stmts {
        let (r0, p0, v0) = before
            .stmts
            .get(ptr)
            .map(|(_, r, p, v)| (*r, *p, *v))
            .unwrap_or((0, 0, 0));
        runs += r1 - r0;
        reps += p1 - p0;
        if std::env::var_os("AF_BENCH_STATEMENTS").is_some() && r1 - r0 > 0 {
            let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = short.chars().take(120).collect();
            println!(
                "    {:>5.2}/msg {:>7.1} VM steps/msg  {short}",
                (r1 - r0) as f64 / n,
                (v1 - v0) as f64 / n
            );
        }
        if p1 - p0 > 0 {
            let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = short.chars().take(110).collect();
            reprepared.push((short, (p1 - p0) as f64 / n));
        }
    }
    reprepared.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Usage {
        statements: runs as f64 / n,
        reprepares: reps as f64 / n,
        pages: (after.pages_written - before.pages_written) as f64 / n,
        reprepared_sql: reprepared,
    }
}

/// Hidden fixed costs of the core cycle's statements, from their compiled
/// programs: statements that build a temporary b-tree on every run (an
/// `IN (…)` list of constants in a CHECK, `RETURNING`, a sort), and whether the
/// TEMP database is open (then every `BEGIN IMMEDIATE` also opens and commits a
/// write transaction on it).
fn per_run_costs(conn: &Connection, before: &Counters, after: &Counters) -> String {
    let mut ephemeral = Vec::new();
    for (ptr, (sql, runs, _, _)) in &after.stmts {
        let ran = runs - before.stmts.get(ptr).map_or(0, |(_, r, _, _)| *r);
        if ran == 0 {
            continue;
        }
        let Ok(mut stmt) = conn.prepare(&format!("EXPLAIN {sql}")) else {
            continue;
        };
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        let ops: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get(1))
            .and_then(|rows| rows.collect())
            .unwrap_or_default();
        if ops
            .iter()
            .any(|op| op == "OpenEphemeral" || op == "SorterOpen")
        {
            let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            ephemeral.push(short.chars().take(100).collect::<String>());
        }
    }
    ephemeral.sort();
    let temp_open = conn
        .prepare("PRAGMA database_list")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(1))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map(|names| names.iter().any(|n| n == "temp"))
        .unwrap_or(false);
    let listed = if ephemeral.is_empty() {
        "none".to_string()
    } else {
        ephemeral.join("; ")
    };
    format!(
        "core cycle statements that build a temporary b-tree on every run: {listed}; TEMP database open: {}",
        if temp_open { "yes" } else { "no" }
    )
}

/// Mean time per cycle (ns) of `n` further cycles of `cycle`.
fn time_cycles(n: usize, mut cycle: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        cycle();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn diagnostics() {
    const WARM: usize = 500;
    const N: usize = 1000;
    println!();
    println!("== diagnostics: SQLite counters per message (default setting, {N} messages after {WARM} warm-up)");
    println!(
        "{:<32} {:>9} {:>13} {:>14} {:>17}",
        "path", "txns/msg", "stmts run/msg", "reprepares/msg", "WAL pages/msg"
    );
    let mut reprepared = Vec::new();
    // Cycles run before counting (and before the interleaved rounds); the default
    // is a warm-up, AF_BENCH_PREFILL sets a larger database.
    let warm = std::env::var("AF_BENCH_PREFILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WARM);

    let mut core = Core::open(false);
    for _ in 0..warm {
        core.cycle();
    }
    let before = core_counters(&core);
    for _ in 0..N {
        core.cycle();
    }
    let after = core_counters(&core);
    let u = usage(&before, &after, N);
    println!(
        "{:<32} {:>9} {:>13.2} {:>14.2} {:>17.2}",
        "agent_factory cycle", 3, u.statements, u.reprepares, u.pages
    );
    reprepared.extend(u.reprepared_sql);
    let per_run_costs = core
        .f
        .store()
        .write(|tx| Ok(per_run_costs(tx, &before, &after)))
        .expect("inspect the cycle's statements");
    drop(core);

    let mut core = Core::open(false);
    for _ in 0..WARM {
        core.cycle_claim_next();
    }
    let before = core_counters(&core);
    for _ in 0..N {
        core.cycle_claim_next();
    }
    let u = usage(&before, &core_counters(&core), N);
    println!(
        "{:<32} {:>9} {:>13.2} {:>14.2} {:>17.2}",
        "agent_factory claim_next", 2, u.statements, u.reprepares, u.pages
    );
    drop(core);

    let mut core = Core::open(false);
    core.enqueue_many();
    let before = core_counters(&core);
    for _ in 0..3 {
        core.enqueue_many();
    }
    let u = usage(&before, &core_counters(&core), 3 * BATCH);
    println!(
        "{:<32} {:>9.3} {:>13.2} {:>14.2} {:>17.2}",
        "agent_factory enqueue_many",
        1.0 / BATCH as f64,
        u.statements,
        u.reprepares,
        u.pages
    );
    drop(core);

    let mut plain = Plain::open(false);
    for _ in 0..WARM {
        plain.cycle();
    }
    let before = counters(&plain.conn);
    for _ in 0..N {
        plain.cycle();
    }
    let u = usage(&before, &counters(&plain.conn), N);
    println!(
        "{:<32} {:>9} {:>13.2} {:>14.2} {:>17.2}",
        "plain_sql_floor cycle", 3, u.statements, u.reprepares, u.pages
    );
    drop(plain);
    println!("(BEGIN IMMEDIATE/COMMIT are not counted in stmts; WAL pages = frames (one database page each) appended at commit)");
    println!("{per_run_costs}");

    if !reprepared.is_empty() {
        println!("statements of the core cycle that SQLite re-prepares (parse + plan again) on every use:");
        for (sql, per) in &reprepared {
            println!("  {per:>5.2}/msg  {sql}");
        }
    }

    // The same ratio as the criterion summary, from interleaved rounds: each
    // round times a chunk of core cycles and then a chunk of floor cycles on two
    // long-lived databases, so a drift in the machine's speed hits both sides of
    // a round alike. The median of the per-round ratios is the robust figure.
    const ROUNDS: usize = 9;
    const CHUNK: usize = 2000;
    let mut core = Core::open(false);
    let mut plain = Plain::open(false);
    for _ in 0..warm {
        core.cycle();
        plain.cycle();
    }
    let mut ratios = Vec::new();
    let (mut core_ns, mut plain_ns) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let c = time_cycles(CHUNK, || core.cycle());
        let p = time_cycles(CHUNK, || plain.cycle());
        ratios.push(p / c);
        core_ns.push(c);
        plain_ns.push(p);
    }
    let spread = {
        let mut r = ratios.clone();
        r.sort_by(f64::total_cmp);
        (r[0], r[r.len() - 1])
    };
    println!(
        "interleaved: cycle/agent_factory {:.1} µs vs plain_sql_floor {:.1} µs per message (medians of {ROUNDS} rounds of {CHUNK}); \
         throughput ratio {:.3} (median of the rounds' ratios; range {:.3}-{:.3})",
        median(core_ns) / 1000.0,
        median(plain_ns) / 1000.0,
        median(ratios),
        spread.0,
        spread.1
    );
}

fn print_summary(s: &Summary) {
    if s.rows.is_empty() {
        return;
    }
    println!();
    println!("== summary (median of the measured samples; rate = 1 / time per message)");
    println!("{:<42} {:>12} {:>14}", "benchmark", "µs/msg", "msg/s");
    for (name, ns) in &s.rows {
        println!("{:<42} {:>12.2} {:>14.0}", name, ns / 1000.0, 1e9 / ns);
    }
    for note in &s.notes {
        println!("{note}");
    }
    println!();
    let ratio = |a: &str, b: &str| -> Option<f64> { Some(s.median_ns(b)? / s.median_ns(a)?) };
    for (group, label) in [
        ("cycle", "default (WAL, NORMAL)"),
        ("cycle_durable", "durable (WAL, FULL)"),
    ] {
        let floor = format!("{group}/plain_sql_floor");
        for af in ["agent_factory", "agent_factory_claim_next"] {
            if let Some(r) = ratio(&format!("{group}/{af}"), &floor) {
                let target = if af == "agent_factory" && group == "cycle" {
                    format!(
                        " (target >= 0.50: {})",
                        if r >= 0.5 { "met" } else { "NOT met" }
                    )
                } else {
                    String::new()
                };
                println!(
                    "{label:<22} {af:<26} / plain_sql_floor = {r:.3} (throughput ratio){target}"
                );
            }
        }
    }
    if let Some(ns) = s.median_ns("enqueue_many/1000") {
        let rate = 1e9 / ns;
        println!(
            "enqueue_many(1000): {rate:.0} msg/s (target >= 100000: {})",
            if rate >= 100_000.0 { "met" } else { "NOT met" }
        );
        if let Some(r) = ratio("enqueue_many/1000", "enqueue_many/plain_sql_1000") {
            println!("enqueue_many(1000) / plain SQL 1000-row transaction = {r:.3}");
        }
    }
}

fn main() {
    if std::env::var_os("AF_BENCH_DIAGNOSTICS_ONLY").is_some() {
        diagnostics();
        return;
    }
    let profiling =
        std::env::args().any(|a| a == "--profile-time" || a.starts_with("--profile-time="));
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Summary {
        rows: Vec::new(),
        notes: Vec::new(),
        profiling,
    };
    bench_cycles(&mut c, &mut summary, false);
    bench_cycles(&mut c, &mut summary, true);
    bench_enqueue_many(&mut c, &mut summary);
    c.final_summary();
    print_summary(&summary);
    if !summary.profiling && summary.median_ns("cycle/agent_factory").is_some() {
        diagnostics();
    }
}
