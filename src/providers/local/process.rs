//! Worker processes of the local provider: liveness that survives pid reuse,
//! reaping, signals.
//!
//! Invariants: a process is "the worker" only if it exists, is not a zombie and
//! started at the recorded time; children this process spawned are registered
//! ([`register`]) and `try_wait`ed on every liveness check, so they are reaped
//! whichever provider instance spawned them.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Child;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Poll interval while waiting for a process to exit.
const EXIT_POLL: Duration = Duration::from_millis(20);

type Children = Mutex<HashMap<i32, (Option<u64>, Child)>>;

/// Children spawned by this process, by pid (shared by every provider instance).
fn children() -> &'static Children {
    static CHILDREN: OnceLock<Children> = OnceLock::new();
    CHILDREN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `(state, start time)` of a process from `/proc/<pid>/stat`; `None` when it does not exist.
pub(super) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn has_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// Whether the process `pid` that started at `start` is running (reaps our own exited children).
pub(super) fn process_alive(pid: i32, start: Option<u64>) -> bool {
    if pid <= 0 {
        return false;
    }
    {
        let mut reg = children().lock().unwrap_or_else(|e| e.into_inner());
        if let Some((recorded, child)) = reg.get_mut(&pid) {
            if *recorded == start {
                match child.try_wait() {
                    Ok(None) => return true,
                    Ok(Some(_)) | Err(_) => {
                        reg.remove(&pid);
                        return false;
                    }
                }
            }
        }
    }
    if has_proc() {
        return match proc_stat(pid) {
            Some((state, started)) => {
                !matches!(state, 'Z' | 'X' | 'x') && start.is_none_or(|s| s == started)
            }
            None => false,
        };
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Send `sig` to the worker's process group and to the worker itself.
pub(super) fn signal(pid: i32, sig: libc::c_int) {
    if pid <= 0 {
        return;
    }
    // SAFETY: plain kill(2) calls on a positive pid and its process group; the
    // caller checked just before that `pid` is still the recorded process.
    unsafe {
        libc::kill(-pid, sig);
        libc::kill(pid, sig);
    }
}

/// Wait until the process is gone or `timeout` passes; true when it is gone.
pub(super) fn wait_exit(pid: i32, start: Option<u64>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !process_alive(pid, start) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(EXIT_POLL);
    }
}

/// Keep `child` (started at `start`) so that its exit is reaped.
pub(super) fn register(pid: i32, start: Option<u64>, child: Child) {
    children()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid, (start, child));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_the_worker() {
        let me = std::process::id() as i32;
        let (_, start) = proc_stat(me).unwrap();
        assert!(process_alive(me, Some(start)));
        assert!(!process_alive(me, Some(start + 1)));
        assert!(!process_alive(0, None));
    }
}
