//! Which journal mode a database path can safely use.
//!
//! WAL needs shared memory between processes, which network filesystems do not
//! provide, so NFS/SMB/CIFS volumes get the rollback journal (`DELETE`) and SSHFS
//! is refused outright. Detection uses `statfs(2)` magic numbers, then the mount
//! table. Callers may force a mode with [`JournalChoice`].

use std::path::Path;

/// Caller's journal preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalChoice {
    /// Detect from the filesystem.
    #[default]
    Auto,
    /// Force WAL.
    Wal,
    /// Force the rollback journal.
    Delete,
}

/// What the detection concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalPolicy {
    /// WAL; `mmap` only when the filesystem is a verified local one.
    Wal { mmap: bool },
    /// Rollback journal (network volume).
    Rollback,
    /// Refuse to open (SSHFS cannot coordinate SQLite locks).
    Refuse,
}

const NFS: i64 = 0x6969;
const SMB: i64 = 0x517b;
const CIFS: i64 = 0xff53_4d42;
const SMB2: i64 = 0xfe53_4d42;

/// Policy for a `statfs` magic number, if the number alone decides it.
pub fn policy_for_magic(magic: i64) -> Option<JournalPolicy> {
    match magic {
        NFS | SMB | CIFS | SMB2 => Some(JournalPolicy::Rollback),
        _ => None,
    }
}

/// Policy for a mount-table filesystem type and source.
pub fn policy_for_mount(fstype: &str, source: &str) -> JournalPolicy {
    let t = fstype.to_ascii_lowercase();
    if t.starts_with("nfs") || matches!(t.as_str(), "cifs" | "smbfs" | "smb2" | "smb3") {
        return JournalPolicy::Rollback;
    }
    if t == "fuse.sshfs" || (t.starts_with("fuse") && source.to_ascii_lowercase().contains("sshfs"))
    {
        return JournalPolicy::Refuse;
    }
    const LOCAL: &[&str] = &[
        "ext2", "ext3", "ext4", "xfs", "btrfs", "jfs", "reiserfs", "reiser4", "f2fs", "zfs", "ufs",
        "ntfs", "ntfs3", "vfat", "msdos", "exfat", "iso9660", "udf", "hfs", "hfsplus", "apfs",
        "tmpfs",
    ];
    JournalPolicy::Wal {
        mmap: LOCAL.contains(&t.as_str()),
    }
}

/// Detect the policy for the directory holding a database file.
pub fn detect(dir: &Path) -> JournalPolicy {
    if let Some(magic) = std::env::var("AGENT_FACTORY_FS_MAGIC_OVERRIDE")
        .ok()
        .and_then(|v| i64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
    {
        return policy_for_magic(magic).unwrap_or(JournalPolicy::Wal { mmap: false });
    }
    if let Some(policy) = statfs_magic(dir).and_then(policy_for_magic) {
        return policy;
    }
    match mount_entry(dir) {
        Some((fstype, source)) => policy_for_mount(&fstype, &source),
        None => JournalPolicy::Wal { mmap: false },
    }
}

#[cfg(target_os = "linux")]
fn statfs_magic(dir: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `buf` a properly sized out-parameter.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut buf) };
    (rc == 0).then_some(buf.f_type as i64 & 0xffff_ffff)
}

#[cfg(not(target_os = "linux"))]
fn statfs_magic(_dir: &Path) -> Option<i64> {
    None
}

/// The (fstype, source) of the longest mount point containing `dir`.
fn mount_entry(dir: &Path) -> Option<(String, String)> {
    let canonical = dir.canonicalize().ok()?;
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in table.lines() {
        // mountinfo: id parent major:minor root mountpoint opts ... - fstype source superopts
        let mut halves = line.splitn(2, " - ");
        let (left, right) = (halves.next()?, halves.next().unwrap_or(""));
        let mount_point = left.split(' ').nth(4).unwrap_or("").replace("\\040", " ");
        let mut rest = right.split(' ');
        let (fstype, source) = (rest.next().unwrap_or(""), rest.next().unwrap_or(""));
        if canonical.starts_with(&mount_point)
            && best.as_ref().is_none_or(|b| mount_point.len() > b.0)
        {
            best = Some((mount_point.len(), fstype.to_string(), source.to_string()));
        }
    }
    best.map(|(_, t, s)| (t, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_magics_use_the_rollback_journal() {
        for m in [NFS, SMB, CIFS, SMB2] {
            assert_eq!(policy_for_magic(m), Some(JournalPolicy::Rollback));
        }
        assert_eq!(policy_for_magic(0xef53), None);
    }

    #[test]
    fn mount_types_map_to_policies() {
        assert_eq!(
            policy_for_mount("nfs4", "server:/x"),
            JournalPolicy::Rollback
        );
        assert_eq!(
            policy_for_mount("fuse.sshfs", "me@host:/"),
            JournalPolicy::Refuse
        );
        assert_eq!(
            policy_for_mount("ext4", "/dev/vda"),
            JournalPolicy::Wal { mmap: true }
        );
        assert_eq!(
            policy_for_mount("overlay", "overlay"),
            JournalPolicy::Wal { mmap: false }
        );
    }
}
