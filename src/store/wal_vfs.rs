//! A VFS shim that hands each WAL commit to the kernel as one write.
//!
//! SQLite appends a WAL frame with two writes (the 24-byte frame header, then
//! the page), so a commit of N pages costs 2N `pwrite` calls, and on this
//! class of machine those syscalls, not SQL, dominate a small transaction.
//! The shim wraps the platform's default VFS. Every file except a WAL passes
//! straight through. For a WAL file, writes that continue the current run are
//! collected in memory and given to the real file as one write.
//!
//! Invariants:
//! - the real file receives the same bytes at the same offsets, in the same
//!   order, as without the shim; only the number of calls changes;
//! - a commit's frames reach the file inside the `xWrite` of the commit
//!   frame's page, i.e. before SQLite publishes the commit in the wal-index,
//!   so another connection or process never sees a frame that is not in the
//!   file, and a failed write fails that commit (it is never published);
//! - a commit frame whose header does not extend a run being collected (a
//!   single-frame commit, or a checksum rewrite) is written through at once,
//!   together with the page that follows it;
//! - every other operation on the file (read, sync, truncate, size, locks,
//!   file controls, close) first writes out whatever is collected, so SQLite
//!   and the OS always agree on the file's content when it looks.
//!
//! Crash behaviour is unchanged: until the commit frame's page is written the
//! transaction is not committed, with or without the shim.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::size_of;
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

use crate::error::{Error, Result};

/// Name under which the shim is registered with SQLite.
pub const VFS_NAME: &str = "agent-factory";
const VFS_NAME_C: &CStr = c"agent-factory";

/// Size of a WAL frame header (SQLite's `WAL_FRAME_HDRSIZE`).
const FRAME_HEADER: usize = 24;
/// Collected bytes above which the run is written out even mid-commit.
const MAX_BUFFER: usize = 1 << 20;
/// Largest single write handed to the real file: the unix VFS masks a write
/// length with `0x1ffff`, so one call must stay below 128 KiB.
const MAX_WRITE: usize = 124 << 10;

/// What a file opened through the shim looks like to SQLite. The real file
/// lives in the same allocation, right after this header.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    wal: bool,
    /// Collected bytes, to be written at `buf_offset`.
    buf: Vec<u8>,
    buf_offset: i64,
    /// The next write is the page of a commit frame whose header is collected.
    commit_page_next: bool,
    /// The next write is the page of a commit frame whose header was written
    /// through; write it through too.
    write_through_next: bool,
}

struct Registration {
    real: *mut ffi::sqlite3_vfs,
}

// SAFETY: the pointer is to SQLite's process-global default VFS, which SQLite
// never frees and which is safe to use from any thread.
unsafe impl Send for Registration {}
unsafe impl Sync for Registration {}

static REGISTERED: OnceLock<std::result::Result<Registration, String>> = OnceLock::new();

/// Environment variable that turns the shim off (diagnostics: every WAL
/// write then goes straight to the file, as with plain SQLite).
pub const DISABLE_ENV: &str = "AGENT_FACTORY_DISABLE_WAL_SHIM";

/// The VFS a file database is opened with: the shim (registered once per
/// process), or SQLite's default when [`DISABLE_ENV`] is set to a non-empty value
/// other than `0`.
pub fn vfs_name() -> Result<Option<&'static str>> {
    let disabled = std::env::var(DISABLE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    if disabled {
        return Ok(None);
    }
    ensure_registered().map(Some)
}

/// Register the shim (once per process); returns its name for `open_with_flags_and_vfs`.
pub fn ensure_registered() -> Result<&'static str> {
    let outcome = REGISTERED.get_or_init(|| unsafe { register() });
    match outcome {
        Ok(_) => Ok(VFS_NAME),
        Err(e) => Err(Error::storage(format!(
            "cannot register the {VFS_NAME} SQLite VFS: {e}"
        ))),
    }
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Ok(r)) => r.real,
        _ => ptr::null_mut(),
    }
}

unsafe fn register() -> std::result::Result<Registration, String> {
    let rc = ffi::sqlite3_initialize();
    if rc != ffi::SQLITE_OK {
        return Err(format!("sqlite3_initialize returned {rc}"));
    }
    let real = ffi::sqlite3_vfs_find(ptr::null());
    if real.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    let real_size = usize::try_from((*real).szOsFile).map_err(|_| "negative szOsFile")?;
    let total = real_file_offset() + real_size;
    // Copy the default VFS (its path, time and randomness methods stay its
    // own) and take over only file opening.
    let mut vfs: ffi::sqlite3_vfs = ptr::read(real);
    vfs.szOsFile = c_int::try_from(total).map_err(|_| "file size overflows c_int")?;
    vfs.pNext = ptr::null_mut();
    vfs.zName = VFS_NAME_C.as_ptr();
    vfs.xOpen = Some(x_open);
    let leaked: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
    let rc = ffi::sqlite3_vfs_register(leaked, 0);
    if rc != ffi::SQLITE_OK {
        return Err(format!("sqlite3_vfs_register returned {rc}"));
    }
    Ok(Registration { real })
}

/// Offset of the real file inside a shim allocation (8-byte aligned).
const fn real_file_offset() -> usize {
    (size_of::<ShimFile>() + 7) & !7
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real_vfs = real_vfs();
    let Some(open) = (if real_vfs.is_null() {
        None
    } else {
        (*real_vfs).xOpen
    }) else {
        return ffi::SQLITE_CANTOPEN;
    };
    let real = (file as *mut u8).add(real_file_offset()) as *mut ffi::sqlite3_file;
    (*real).pMethods = ptr::null();
    let rc = open(real_vfs, name, real, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
        (*file).pMethods = ptr::null();
        return if rc == ffi::SQLITE_OK {
            ffi::SQLITE_CANTOPEN
        } else {
            rc
        };
    }
    let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    ptr::write(
        file as *mut ShimFile,
        ShimFile {
            base: ffi::sqlite3_file { pMethods: &METHODS },
            real,
            wal,
            buf: Vec::new(),
            buf_offset: 0,
            commit_page_next: false,
            write_through_next: false,
        },
    );
    ffi::SQLITE_OK
}

unsafe fn shim<'a>(file: *mut ffi::sqlite3_file) -> &'a mut ShimFile {
    &mut *(file as *mut ShimFile)
}

unsafe fn methods(s: &ShimFile) -> &'static ffi::sqlite3_io_methods {
    &*(*s.real).pMethods
}

impl ShimFile {
    /// Write out the collected run, if any.
    unsafe fn flush(&mut self) -> c_int {
        if self.buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let Some(write) = methods(self).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut offset = self.buf_offset;
        for chunk in self.buf.chunks(MAX_WRITE) {
            #[cfg(test)]
            tests::count_real_write();
            // A chunk is at most MAX_WRITE bytes, so the cast cannot truncate.
            rc = write(
                self.real,
                chunk.as_ptr().cast(),
                chunk.len() as c_int,
                offset,
            );
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        self.buf.clear();
        self.commit_page_next = false;
        rc
    }

    unsafe fn write_through(&mut self, data: *const c_void, amt: c_int, offset: i64) -> c_int {
        #[cfg(test)]
        tests::count_real_write();
        match methods(self).xWrite {
            Some(write) => write(self.real, data, amt, offset),
            None => ffi::SQLITE_IOERR_WRITE,
        }
    }

    unsafe fn wal_write(&mut self, data: *const c_void, amt: c_int, offset: i64) -> c_int {
        let Ok(len) = usize::try_from(amt) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        if self.write_through_next {
            self.write_through_next = false;
            let rc = self.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            return self.write_through(data, amt, offset);
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
        let extends_run = !self.buf.is_empty() && offset == self.buf_offset + self.buf.len() as i64;
        if !self.buf.is_empty() && !extends_run {
            let rc = self.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let commit_header = len == FRAME_HEADER && bytes[4..8] != [0, 0, 0, 0];
        if commit_header && !extends_run {
            // Not part of an append run: a single-frame commit or a checksum
            // rewrite. Write it (and the page that may follow) straight away.
            self.write_through_next = true;
            return self.write_through(data, amt, offset);
        }
        if self.buf.is_empty() {
            self.buf_offset = offset;
        }
        self.buf.extend_from_slice(bytes);
        let ends_commit = self.commit_page_next;
        self.commit_page_next = commit_header;
        if ends_commit || self.buf.len() >= MAX_BUFFER {
            return self.flush();
        }
        ffi::SQLITE_OK
    }

    /// Any operation other than a write: write out the run first, and stop
    /// treating the next write as the page of a written-through commit frame.
    unsafe fn settle(&mut self) -> c_int {
        self.write_through_next = false;
        self.flush()
    }
}

/// Forward a method to the real file after settling collected writes.
macro_rules! forward {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let s = shim(file);
            let rc = s.settle();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            match methods(s).$method {
                Some(f) => f(s.real $(, $arg)*),
                None => $missing,
            }
        }
    };
}

forward!(x_read, xRead, (buf: *mut c_void, amt: c_int, offset: i64), ffi::SQLITE_IOERR_READ);
forward!(x_truncate, xTruncate, (size: i64), ffi::SQLITE_IOERR_TRUNCATE);
forward!(x_sync, xSync, (flags: c_int), ffi::SQLITE_IOERR_FSYNC);
forward!(x_file_size, xFileSize, (size: *mut i64), ffi::SQLITE_IOERR_FSTAT);
forward!(x_lock, xLock, (level: c_int), ffi::SQLITE_IOERR_LOCK);
forward!(x_unlock, xUnlock, (level: c_int), ffi::SQLITE_IOERR_UNLOCK);
forward!(x_check_reserved_lock, xCheckReservedLock, (out: *mut c_int), ffi::SQLITE_IOERR_CHECKRESERVEDLOCK);
forward!(x_file_control, xFileControl, (op: c_int, arg: *mut c_void), ffi::SQLITE_NOTFOUND);
forward!(x_shm_map, xShmMap, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void), ffi::SQLITE_IOERR_SHMMAP);
forward!(x_shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int), ffi::SQLITE_IOERR_SHMLOCK);
forward!(x_shm_unmap, xShmUnmap, (delete: c_int), ffi::SQLITE_OK);
forward!(x_fetch, xFetch, (offset: i64, amt: c_int, out: *mut *mut c_void), {
    *out = ptr::null_mut();
    ffi::SQLITE_OK
});
forward!(x_unfetch, xUnfetch, (offset: i64, page: *mut c_void), ffi::SQLITE_OK);

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amt: c_int,
    offset: i64,
) -> c_int {
    let s = shim(file);
    if s.wal {
        s.wal_write(data, amt, offset)
    } else {
        s.write_through(data, amt, offset)
    }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    let s = shim(file);
    let flushed = s.settle();
    let closed = match methods(s).xClose {
        Some(close) => close(s.real),
        None => ffi::SQLITE_OK,
    };
    ptr::drop_in_place(&mut s.buf);
    (*file).pMethods = ptr::null();
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let s = shim(file);
    methods(s).xSectorSize.map_or(4096, |f| f(s.real))
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let s = shim(file);
    methods(s).xDeviceCharacteristics.map_or(0, |f| f(s.real))
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    let s = shim(file);
    // By construction nothing is collected here (a commit is written out in
    // its last write); settling keeps it so even if SQLite's calls change.
    let _ = s.settle();
    if let Some(f) = methods(s).xShmBarrier {
        f(s.real);
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::{params, Connection, OpenFlags};

    use super::*;

    thread_local! {
        static REAL_WRITES: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn count_real_write() {
        REAL_WRITES.with(|c| c.set(c.get() + 1));
    }

    fn real_writes() -> usize {
        REAL_WRITES.with(Cell::get)
    }

    fn open_pair(dir: &std::path::Path) -> (Connection, Connection) {
        let path = dir.join("shim.db");
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let shimmed =
            Connection::open_with_flags_and_vfs(&path, flags, ensure_registered().unwrap())
                .unwrap();
        shimmed.pragma_update(None, "page_size", 2048).unwrap();
        let mode: String = shimmed
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        shimmed
            .execute_batch(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX t_k ON t(k);",
            )
            .unwrap();
        // A reader on SQLite's own VFS, as another process would be.
        let plain = Connection::open(&path).unwrap();
        (shimmed, plain)
    }

    #[test]
    fn a_multi_page_commit_is_one_write_and_visible_to_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let (shimmed, plain) = open_pair(dir.path());
        for round in 0..50_i64 {
            let before = real_writes();
            let tx = shimmed.unchecked_transaction().unwrap();
            for i in 0..20_i64 {
                tx.execute(
                    "INSERT INTO t(k, v) VALUES (?1, zeroblob(300))",
                    params![format!("key-{}", (round * 7919 + i * 104_729) % 100_003)],
                )
                .unwrap();
            }
            tx.commit().unwrap();
            assert_eq!(
                real_writes() - before,
                1,
                "commit {round} took more than one write"
            );
            let n: i64 = plain
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(
                n,
                (round + 1) * 20,
                "the other connection sees every commit at once"
            );
            let ok: String = plain
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
        }
    }

    #[test]
    fn a_transaction_larger_than_the_page_cache_spills_and_commits_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (shimmed, plain) = open_pair(dir.path());
        shimmed.pragma_update(None, "cache_size", 50).unwrap();
        let tx = shimmed.unchecked_transaction().unwrap();
        for i in 0..6000_i64 {
            tx.execute(
                "INSERT INTO t(k, v) VALUES (?1, randomblob(700))",
                params![format!("k{}", (i * 7919) % 6007)],
            )
            .unwrap();
        }
        // Rewrite spilled pages so SQLite overwrites frames of this transaction
        // and recomputes their checksums at commit.
        tx.execute("UPDATE t SET k = k || '-x' WHERE id % 3 = 0", [])
            .unwrap();
        tx.commit().unwrap();
        let (n, renamed): (i64, i64) = plain
            .query_row("SELECT count(*), sum(k LIKE '%-x') FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, renamed), (6000, 2000));
        let ok: String = plain
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        drop(shimmed);
        drop(plain);
        // Reopened after a full checkpoint and WAL removal, the data is all there.
        let again = Connection::open(dir.path().join("shim.db")).unwrap();
        let n: i64 = again
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6000);
    }
}
