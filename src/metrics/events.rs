//! Core events held back until their transaction commits.
//!
//! Invariants:
//! - [`Store::write`](crate::store::Store::write) opens a [`Scope`] around its
//!   transaction; while one is open on this thread, [`event`] and counter
//!   increments are kept in thread-local buffers instead of going out;
//! - when the scope ends they are released only if the transaction committed
//!   (and after the connection lock is released), and dropped if it rolled
//!   back (also on a panic): a count or a log line always describes a committed
//!   change, and no log handler ever runs while this thread holds the
//!   database writer (a handler may call back into the factory);
//! - outside a scope an event goes out at once;
//! - an event whose level no logger wants costs one level check (no
//!   formatting, no allocation).

use std::cell::{Cell, RefCell};

use std::panic::Location;

use log::{Level, Record};

use super::{Counter, COUNTERS, VALUES};

/// One held-back log record.
struct Pending {
    level: Level,
    target: &'static str,
    message: String,
    at: &'static Location<'static>,
}

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static LOGS: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    static COUNTS: RefCell<[u64; COUNTERS]> = const { RefCell::new([0; COUNTERS]) };
}

/// Whether a scope is open on this thread.
pub(super) fn in_scope() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// Add `n` to this thread's held-back count of `counter`.
pub(super) fn hold_count(counter: Counter, n: u64) {
    COUNTS.with(|c| c.borrow_mut()[counter as usize] += n);
}

/// Log `message()` at `level` on `target` — now, or when the open scope
/// commits; the record names the caller's file and line.
#[track_caller]
pub fn event(level: Level, target: &'static str, message: impl FnOnce() -> String) {
    if !log::log_enabled!(target: target, level) {
        return;
    }
    let pending = Pending {
        level,
        target,
        message: message(),
        at: Location::caller(),
    };
    if in_scope() {
        LOGS.with(|l| l.borrow_mut().push(pending));
    } else {
        emit(&pending);
    }
}

fn emit(p: &Pending) {
    log::logger().log(
        &Record::builder()
            .args(format_args!("{}", p.message))
            .level(p.level)
            .target(p.target)
            .file(Some(p.at.file()))
            .line(Some(p.at.line()))
            .build(),
    );
}

/// Events of one transaction; see the module invariants.
#[must_use = "a scope holds events until `finish`"]
pub struct Scope {
    finished: bool,
}

impl Scope {
    /// Open a scope on this thread (scopes nest; the outermost one releases).
    pub fn enter() -> Scope {
        DEPTH.with(|d| d.set(d.get() + 1));
        Scope { finished: false }
    }

    /// Close the scope: release its events if `committed`, else drop them.
    pub fn finish(mut self, committed: bool) {
        self.finished = true;
        close(committed);
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.finished {
            close(false);
        }
    }
}

fn close(committed: bool) {
    let depth = DEPTH.with(|d| {
        let v = d.get().saturating_sub(1);
        d.set(v);
        v
    });
    if depth > 0 {
        return;
    }
    let counts = COUNTS.with(|c| std::mem::replace(&mut *c.borrow_mut(), [0; COUNTERS]));
    let logs = LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()));
    if !committed {
        return;
    }
    for (i, n) in counts.iter().enumerate() {
        if *n > 0 {
            VALUES[i].fetch_add(*n, std::sync::atomic::Ordering::Relaxed);
        }
    }
    for p in &logs {
        emit(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{add, get};

    #[test]
    fn counts_are_released_on_commit_and_dropped_on_rollback() {
        // Each test thread has its own buffers; the counter is process-wide, so
        // compare lower bounds (other tests may count in parallel).
        let c = Counter::PushSlotsFailed;
        let before = get(c);
        let scope = Scope::enter();
        add(c, 1_000_000);
        assert!(in_scope());
        scope.finish(false);
        assert!(get(c) < before + 1_000_000);

        let scope = Scope::enter();
        add(c, 7);
        let inner = Scope::enter();
        add(c, 3);
        inner.finish(true);
        scope.finish(true);
        assert!(get(c) >= before + 10);
        assert!(!in_scope());
    }

    #[test]
    fn a_dropped_scope_discards() {
        let c = Counter::TelegramUpdatesIgnored;
        let before = get(c);
        {
            let _scope = Scope::enter();
            add(c, 1_000_000);
        }
        assert!(get(c) < before + 1_000_000);
        assert!(!in_scope());
    }
}
