//! Directory archives for snapshots: pack a worker's data directory into a
//! gzip'd tar in the blob store, and unpack a snapshot into a directory safely.
//!
//! Archive format 1 ([`super::FORMAT_VERSION`]): a gzip'd POSIX/GNU tar of the
//! directory's contents with relative paths, holding directories, regular files
//! and symlinks only. Owners are not recorded (uid/gid 0); modes keep only the
//! permission bits; files keep their mtime.
//!
//! Packing invariants:
//! - symlinks are stored as links, never followed; a symlink that restore would
//!   reject (absolute target, escaping the root, passing through another
//!   symlink) is left out and listed in [`ArchiveStats::skipped`], as are
//!   sockets, FIFOs and device files: an archive this module writes always restores;
//! - a file that shrinks while it is read fails the pack (the tar would be
//!   corrupt otherwise); the archive streams through a 0600 temporary file in the
//!   blob root and then into the blob store, so memory use is constant.
//!
//! Unpacking invariants (each violation rejects the whole archive):
//! - entry paths must be relative, without `..`, and must not go through a
//!   symlink of the archive; absolute paths are rejected, not stripped;
//! - only directories, regular files and symlinks are accepted: hard links,
//!   device files, FIFOs and sparse entries are rejected;
//! - a symlink's target must be relative, stay inside the root when resolved
//!   from the link's directory, and must not pass through another symlink (of the
//!   archive or, when merging, already in the destination);
//! - extraction goes into a fresh staging directory inside the destination; the
//!   destination is changed only after every entry was extracted and the
//!   caller's check (the blob's sha256 and size) passed, so a bad archive leaves
//!   it untouched. Nothing is ever written through a symlink;
//! - files get their archived permission bits without setuid/setgid/sticky;
//!   directories get theirs plus owner `rwx`.
//!
//! Restore modes: [`RestoreMode::Replace`] (the default) makes the destination
//! exactly the snapshot (everything else in it is deleted);
//! [`RestoreMode::Merge`] writes the snapshot's entries over the destination
//! and keeps everything the snapshot does not name (an entry of a different kind
//! replaces what was there; directories merge).

mod directory;
mod pack;
#[cfg(test)]
mod tests;
mod unpack;

use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

pub use directory::{DirectorySnapshot, RestoredSnapshot};
pub use pack::pack_directory;
pub use unpack::unpack_archive;

/// Name prefix of the staging directory a restore extracts into (never archived).
pub const STAGING_PREFIX: &str = ".agent-factory-restore-";
/// At most this many skipped entries are listed by name.
const MAX_SKIPPED_LISTED: usize = 100;

/// How a restore treats what is already in the destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreMode {
    /// The destination becomes exactly the snapshot.
    #[default]
    Replace,
    /// The snapshot's entries are written over the destination; others stay.
    Merge,
}

impl RestoreMode {
    /// Parse `replace` or `merge`.
    pub fn parse(s: &str) -> Result<RestoreMode> {
        match s {
            "replace" => Ok(RestoreMode::Replace),
            "merge" => Ok(RestoreMode::Merge),
            other => Err(Error::validation(format!(
                "mode {other:?} must be 'replace' or 'merge'"
            ))),
        }
    }
}

/// What an archive holds (or what a pack left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveStats {
    /// Regular files.
    pub files: u64,
    /// Directories (the root not counted).
    pub directories: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Bytes of file contents (uncompressed).
    pub bytes: u64,
    /// Entries a pack left out, each `path: reason` (at most 100 listed).
    pub skipped: Vec<String>,
}

impl ArchiveStats {
    pub(crate) fn skip(&mut self, rel: &Path, why: &str) {
        if self.skipped.len() < MAX_SKIPPED_LISTED {
            self.skipped.push(format!("{}: {why}", rel.display()));
        }
    }
}

pub(crate) fn bad_archive(what: impl std::fmt::Display) -> Error {
    Error::validation(format!("unsafe or corrupt snapshot archive: {what}"))
}

/// The relative, `.`-free form of an entry path; absolute paths and `..` are errors.
pub(crate) fn sanitize(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(bad_archive(format!(
                    "entry {} contains '..'",
                    path.display()
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad_archive(format!(
                    "entry {} has an absolute path",
                    path.display()
                )))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad_archive(format!(
            "entry {:?} names no file",
            path.display()
        )));
    }
    Ok(out)
}

/// Why the symlink at `link` (relative to the root) pointing at `target` is unsafe,
/// or `None` if it resolves inside the root. `is_link` tells whether a relative path
/// is itself a symlink: a target may not continue through one.
pub(crate) fn link_problem(
    link: &Path,
    target: &Path,
    is_link: &dyn Fn(&Path) -> bool,
) -> Option<String> {
    if target.as_os_str().is_empty() {
        return Some("its target is empty".into());
    }
    let mut at: Vec<OsString> = link
        .parent()
        .map(|p| p.iter().map(OsString::from).collect())
        .unwrap_or_default();
    let parts: Vec<Component<'_>> = target.components().collect();
    for (i, c) in parts.iter().enumerate() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Some(format!("its target {} is absolute", target.display()))
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if at.pop().is_none() {
                    return Some(format!("its target {} escapes the root", target.display()));
                }
            }
            Component::Normal(n) => {
                at.push(n.to_os_string());
                let more = parts[i + 1..]
                    .iter()
                    .any(|c| !matches!(c, Component::CurDir));
                if more && is_link(&at.iter().collect::<PathBuf>()) {
                    return Some(format!(
                        "its target {} passes through another symlink",
                        target.display()
                    ));
                }
            }
        }
    }
    None
}

pub(crate) fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}
