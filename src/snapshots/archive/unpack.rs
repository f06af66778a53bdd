//! Unpacking an archive into a directory through a staging directory (see the
//! parent module for the safety rules and the restore modes).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use flate2::read::GzDecoder;
use tar::{Archive, EntryType};

use super::{
    bad_archive, is_symlink, link_problem, sanitize, ArchiveStats, RestoreMode, STAGING_PREFIX,
};
use crate::error::{Error, Result};

#[cfg(unix)]
fn set_permissions(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_permissions(path: &Path, mode: u32) -> io::Result<()> {
    let mut p = fs::metadata(path)?.permissions();
    p.set_readonly(mode & 0o200 == 0);
    fs::set_permissions(path, p)
}

pub(crate) fn new_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Remove whatever is at `path` (a directory with its contents); missing is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create directory `dir` (relative to `staging`) and its missing parents, for
/// `entry`; an existing non-directory on the way means the archive contradicts itself.
fn make_dirs(staging: &Path, dir: &Path, entry: &Path) -> Result<()> {
    let mut at = staging.to_path_buf();
    for part in dir.iter() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(bad_archive(format!(
                    "{} needs {} to be a directory, but the archive has a file there",
                    entry.display(),
                    at.strip_prefix(staging).unwrap_or(&at).display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&at)
                .map_err(|e| Error::storage(format!("cannot restore {}: {e}", entry.display())))?,
            Err(e) => {
                return Err(Error::storage(format!(
                    "cannot restore {}: {e}",
                    entry.display()
                )))
            }
        }
    }
    Ok(())
}

/// Extract every entry into the empty directory `staging`; symlinks last.
fn extract<R: Read>(
    archive: &mut Archive<GzDecoder<R>>,
    staging: &Path,
    dest: &Path,
    mode: RestoreMode,
) -> Result<ArchiveStats> {
    let mut stats = ArchiveStats::default();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut link_set: HashSet<PathBuf> = HashSet::new();
    let storage =
        |rel: &Path, e: io::Error| Error::storage(format!("cannot restore {}: {e}", rel.display()));
    let entries = archive.entries().map_err(bad_archive)?;
    for entry in entries {
        let mut entry = entry.map_err(bad_archive)?;
        let raw = entry.path().map_err(bad_archive)?.into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            continue;
        }
        let rel = sanitize(&raw)?;
        if let Some(through) = rel.ancestors().skip(1).find(|a| link_set.contains(*a)) {
            return Err(bad_archive(format!(
                "entry {} goes through the symlink {}",
                rel.display(),
                through.display()
            )));
        }
        let path = staging.join(&rel);
        let archived_mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match kind {
            EntryType::Directory => {
                make_dirs(staging, &rel, &rel)?;
                set_permissions(&path, archived_mode | 0o700).map_err(|e| storage(&rel, e))?;
                stats.directories += 1;
            }
            EntryType::Regular | EntryType::Continuous => {
                make_dirs(staging, rel.parent().unwrap_or(Path::new("")), &rel)?;
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {
                        return Err(bad_archive(format!(
                            "{} is both a directory and a file",
                            rel.display()
                        )))
                    }
                    Ok(_) => {
                        // A later entry for the same path wins, as with tar.
                        fs::remove_file(&path).map_err(|e| storage(&rel, e))?;
                        stats.files = stats.files.saturating_sub(1);
                    }
                    Err(_) => {}
                }
                let mut file = new_file(&path).map_err(|e| storage(&rel, e))?;
                let n = io::copy(&mut entry, &mut file).map_err(bad_archive)?;
                let mtime = entry.header().mtime().unwrap_or(0);
                // The mtime is informative; a file system that refuses it loses nothing.
                let _ = file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
                drop(file);
                set_permissions(&path, archived_mode).map_err(|e| storage(&rel, e))?;
                stats.files += 1;
                stats.bytes += n;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad_archive)?
                    .ok_or_else(|| bad_archive(format!("symlink {} has no target", rel.display())))?
                    .into_owned();
                if !link_set.insert(rel.clone()) {
                    links.retain(|(l, _)| l != &rel);
                }
                links.push((rel, target));
            }
            EntryType::Link => {
                return Err(bad_archive(format!(
                    "{} is a hard link (not accepted)",
                    rel.display()
                )))
            }
            EntryType::Char | EntryType::Block => {
                return Err(bad_archive(format!(
                    "{} is a device file (not accepted)",
                    rel.display()
                )))
            }
            EntryType::Fifo => {
                return Err(bad_archive(format!(
                    "{} is a FIFO (not accepted)",
                    rel.display()
                )))
            }
            other => {
                return Err(bad_archive(format!(
                    "{} has unsupported entry type {other:?}",
                    rel.display()
                )))
            }
        }
    }
    let is_link = |p: &Path| {
        link_set.contains(p) || (mode == RestoreMode::Merge && is_symlink(&dest.join(p)))
    };
    for (rel, target) in &links {
        if let Some(why) = link_problem(rel, target, &is_link) {
            return Err(bad_archive(format!(
                "symlink {} rejected: {why}",
                rel.display()
            )));
        }
    }
    for (rel, target) in links {
        let path = staging.join(&rel);
        make_dirs(staging, rel.parent().unwrap_or(Path::new("")), &rel)?;
        if fs::symlink_metadata(&path).is_ok() {
            return Err(bad_archive(format!(
                "{} is both a symlink and another entry",
                rel.display()
            )));
        }
        make_symlink(&target, &path).map_err(|e| storage(&rel, e))?;
        stats.symlinks += 1;
    }
    Ok(stats)
}

#[cfg(unix)]
fn make_symlink(target: &Path, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_symlink(_target: &Path, path: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("symlinks are not supported here ({})", path.display()),
    ))
}

/// Move the contents of `from` into `to`: real directories merge, anything else
/// replaces what is there. Never follows a symlink in `to`.
fn merge_into(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let src_is_dir = entry.file_type()?.is_dir();
        let dst_meta = fs::symlink_metadata(&dst).ok();
        match dst_meta {
            Some(m) if src_is_dir && m.file_type().is_dir() => {
                merge_into(&src, &dst)?;
                fs::remove_dir(&src)?;
            }
            Some(_) => {
                remove_any(&dst)?;
                fs::rename(&src, &dst)?;
            }
            None => fs::rename(&src, &dst)?,
        }
    }
    Ok(())
}

/// Make `dest` hold the staged snapshot, per `mode`.
fn apply(staging: &Path, dest: &Path, mode: RestoreMode) -> io::Result<()> {
    match mode {
        RestoreMode::Replace => {
            let staging_name = staging.file_name();
            for entry in fs::read_dir(dest)? {
                let entry = entry?;
                if Some(entry.file_name().as_os_str()) != staging_name {
                    remove_any(&entry.path())?;
                }
            }
            for entry in fs::read_dir(staging)? {
                let entry = entry?;
                fs::rename(entry.path(), dest.join(entry.file_name()))?;
            }
        }
        RestoreMode::Merge => merge_into(staging, dest)?,
    }
    fs::remove_dir(staging)
}

/// Unpack a gzip'd tar from `input` into directory `dest` (created if missing).
///
/// Entries are extracted into a staging directory inside `dest`; after the last
/// entry the rest of `input` is read (checking the gzip trailer) and `check` gets
/// the input back, e.g. to compare the hash of everything read with the expected
/// one. Only when `check` passes does `dest` change, according to `mode`.
pub fn unpack_archive<R: Read>(
    input: R,
    dest: &Path,
    mode: RestoreMode,
    check: impl FnOnce(R) -> Result<()>,
) -> Result<ArchiveStats> {
    match fs::metadata(dest) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::validation(format!(
                "{} exists and is not a directory",
                dest.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest)
                .map_err(|e| Error::storage(format!("cannot create {}: {e}", dest.display())))?;
            set_permissions(dest, 0o700)?;
        }
        Err(e) => {
            return Err(Error::storage(format!(
                "cannot read {}: {e}",
                dest.display()
            )))
        }
    }
    let staging = dest.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::now_v7().simple()));
    fs::create_dir(&staging)
        .and_then(|_| set_permissions(&staging, 0o700))
        .map_err(|e| Error::storage(format!("cannot create {}: {e}", staging.display())))?;
    let staged = (|| -> Result<ArchiveStats> {
        let mut archive = Archive::new(GzDecoder::new(input));
        let stats = extract(&mut archive, &staging, dest, mode)?;
        let mut decoder = archive.into_inner();
        io::copy(&mut decoder, &mut io::sink()).map_err(bad_archive)?;
        check(decoder.into_inner())?;
        Ok(stats)
    })();
    let outcome = staged.and_then(|stats| {
        apply(&staging, dest, mode).map_err(|e| {
            Error::storage(format!(
                "cannot move the restored files into {}: {e}",
                dest.display()
            ))
        })?;
        Ok(stats)
    });
    if outcome.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    outcome
}
