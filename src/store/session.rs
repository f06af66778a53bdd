//! The store's connection, with prepared statements for the hot path kept by address.
//!
//! rusqlite's statement cache finds a statement by its SQL text: each use hashes
//! the text twice (to take the statement out and to put it back) and copies it
//! into a fresh `Arc<str>`. On the queue's longer statements that bookkeeping
//! cost about 5 % of an enqueue + claim + complete cycle. [`Tx::prepare_hot`]
//! finds a statement by the address of its `&'static str` instead: a lookup
//! compares a few pointers. Every other statement still goes through
//! `prepare_cached`, which `Tx` reaches through `Deref<Target = Connection>`.
//!
//! Invariants:
//! - every kept statement was prepared on the connection owned by the same
//!   `Tx`; that connection lives in a `Box` that is never moved out or replaced,
//!   and the statements are finalized before it closes ([`Drop`]);
//! - a statement is taken out of its slot while in use and put back when its
//!   handle drops, so a nested use of the same SQL prepares a second,
//!   short-lived statement instead of sharing one;
//! - rusqlite resets a statement when its step sequence ends (`execute`, the
//!   drop of `Rows`), and every use binds all parameters again, so a statement
//!   handed out carries nothing over from its previous use.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use rusqlite::{Connection, PrepFlags, Statement};

use crate::error::Result;

/// One kept statement, keyed by the address and length of its SQL text.
struct Slot {
    sql: (usize, usize),
    /// `None` while the statement is handed out.
    statement: Option<Statement<'static>>,
}

/// A connection as every operation receives it, inside an open transaction.
pub struct Tx {
    /// Declared before `conn`: the statements are dropped (finalized) first.
    slots: RefCell<Vec<Slot>>,
    conn: Box<Connection>,
}

// SAFETY: `Connection` is `Send`; the kept statements belong to it and move with
// it (they never leave this struct except as handles borrowing `&self`). SQLite
// lets a connection and its statements be used from any thread as long as no two
// threads use them at once, which the store's mutex guarantees: a `Tx` is only
// reached through it, and `Tx` is not `Sync`.
unsafe impl Send for Tx {}

impl Tx {
    /// Take ownership of `conn`.
    pub fn new(conn: Connection) -> Tx {
        Tx {
            slots: RefCell::new(Vec::new()),
            conn: Box::new(conn),
        }
    }

    /// The prepared statement for `sql`, kept for the life of the connection and
    /// found by the address of `sql` (use it for statements that run on every
    /// message; everything else uses `prepare_cached`).
    pub fn prepare_hot(&self, sql: &'static str) -> Result<HotStatement<'_>> {
        let key = (sql.as_ptr() as usize, sql.len());
        let mut slots = self.slots.borrow_mut();
        let found = slots.iter().position(|s| s.sql == key);
        if let Some(i) = found {
            if let Some(statement) = slots[i].statement.take() {
                return Ok(HotStatement {
                    tx: self,
                    index: Some(i),
                    statement: Some(statement),
                });
            }
        }
        drop(slots);
        let statement = self
            .conn
            .prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT)?;
        // A slot that exists but is empty is handed out right now: this nested
        // use keeps its own statement, finalized when its handle drops. Otherwise
        // the new statement gets a slot (only once it prepared successfully).
        let index = match found {
            Some(_) => None,
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(Slot {
                    sql: key,
                    statement: None,
                });
                Some(slots.len() - 1)
            }
        };
        Ok(HotStatement {
            tx: self,
            index,
            statement: Some(statement),
        })
    }
}

impl Deref for Tx {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Finalize every statement while the connection is still open.
        self.slots.get_mut().clear();
    }
}

/// A kept statement, handed out by [`Tx::prepare_hot`] and returned on drop.
pub struct HotStatement<'a> {
    tx: &'a Tx,
    /// The slot to return the statement to; `None` for a nested use's own statement.
    index: Option<usize>,
    statement: Option<Statement<'a>>,
}

impl<'a> Deref for HotStatement<'a> {
    type Target = Statement<'a>;

    fn deref(&self) -> &Statement<'a> {
        self.statement
            .as_ref()
            .expect("a hot statement is present until it is dropped")
    }
}

impl<'a> DerefMut for HotStatement<'a> {
    fn deref_mut(&mut self) -> &mut Statement<'a> {
        self.statement
            .as_mut()
            .expect("a hot statement is present until it is dropped")
    }
}

impl Drop for HotStatement<'_> {
    fn drop(&mut self) {
        let (Some(index), Some(statement)) = (self.index, self.statement.take()) else {
            return;
        };
        // SAFETY: the statement was prepared on `self.tx.conn`, which outlives
        // every slot (see `Tx`'s invariants); only the borrow's name changes.
        let statement =
            unsafe { std::mem::transmute::<Statement<'_>, Statement<'static>>(statement) };
        self.tx.slots.borrow_mut()[index].statement = Some(statement);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNT: &str = "SELECT count(*) FROM t";

    fn tx() -> Tx {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        Tx::new(conn)
    }

    /// Statements SQLite has open on the connection.
    fn open_statements(tx: &Tx) -> usize {
        let db = unsafe { tx.handle() };
        let mut n = 0;
        let mut s = unsafe { rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut()) };
        while !s.is_null() {
            n += 1;
            s = unsafe { rusqlite::ffi::sqlite3_next_stmt(db, s) };
        }
        n
    }

    #[test]
    fn a_statement_is_prepared_once_and_reused() {
        let tx = tx();
        for _ in 0..3 {
            let n: i64 = tx
                .prepare_hot(COUNT)
                .unwrap()
                .query_row([], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 2);
        }
        assert_eq!(tx.slots.borrow().len(), 1);
        assert_eq!(open_statements(&tx), 1);
    }

    #[test]
    fn a_nested_use_of_the_same_sql_gets_its_own_statement() {
        let tx = tx();
        let mut outer = tx.prepare_hot(COUNT).unwrap();
        let mut inner = tx.prepare_hot(COUNT).unwrap();
        assert_eq!(open_statements(&tx), 2);
        let a: i64 = outer.query_row([], |r| r.get(0)).unwrap();
        let b: i64 = inner.query_row([], |r| r.get(0)).unwrap();
        assert_eq!((a, b), (2, 2));
        drop(inner);
        // The nested statement is finalized; the kept one goes back to its slot.
        assert_eq!(open_statements(&tx), 1);
        drop(outer);
        assert!(tx.slots.borrow()[0].statement.is_some());
        assert_eq!(open_statements(&tx), 1);
    }

    #[test]
    fn sql_that_fails_to_prepare_takes_no_slot() {
        let tx = tx();
        let err = tx.prepare_hot("SELECT nothing FROM nowhere").err().unwrap();
        assert!(err.to_string().contains("nowhere"), "{err}");
        assert!(tx.slots.borrow().is_empty());
    }

    #[test]
    fn kept_statements_are_finalized_before_the_connection_closes() {
        let mut tx = tx();
        tx.prepare_hot(COUNT).unwrap().execute([]).ok();
        tx.prepare_hot("SELECT x FROM t").unwrap();
        assert_eq!(open_statements(&tx), 2);
        tx.slots.get_mut().clear();
        assert_eq!(open_statements(&tx), 0);
        // Dropping the rest closes the connection without leftover statements.
        drop(tx);
    }

    #[test]
    fn a_kept_statement_sees_later_schema_changes() {
        let tx = tx();
        let before: i64 = tx
            .prepare_hot(COUNT)
            .unwrap()
            .query_row([], |r| r.get(0))
            .unwrap();
        tx.execute_batch("DROP TABLE t; CREATE TABLE t(x, y); INSERT INTO t VALUES (1, 2);")
            .unwrap();
        let after: i64 = tx
            .prepare_hot(COUNT)
            .unwrap()
            .query_row([], |r| r.get(0))
            .unwrap();
        assert_eq!((before, after), (2, 1));
    }
}
