//! Packing a directory into a format-1 archive (see the parent module for the rules).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{Builder, EntryType, Header};

use super::{link_problem, ArchiveStats, STAGING_PREFIX};
use crate::error::{Error, Result};

enum Kind {
    Dir,
    File(u64),
    Link(PathBuf),
}

struct Item {
    rel: PathBuf,
    kind: Kind,
    mode: u32,
    mtime: u64,
}

#[cfg(unix)]
fn permission_bits(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn permission_bits(meta: &fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

fn mtime_secs(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn special_kind(ft: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_socket() {
            return "socket not archived";
        }
        if ft.is_fifo() {
            return "FIFO not archived";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "device file not archived";
        }
    }
    let _ = ft;
    "special file not archived"
}

/// Everything under `root`, parents before children, names sorted.
fn walk(root: &Path, stats: &mut ArchiveStats) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir_rel) = pending.pop() {
        let dir = root.join(&dir_rel);
        let mut names: Vec<OsString> = fs::read_dir(&dir)
            .map_err(|e| Error::storage(format!("cannot list {}: {e}", dir.display())))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::storage(format!("cannot list {}: {e}", dir.display())))?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            if dir_rel.as_os_str().is_empty() && name.to_string_lossy().starts_with(STAGING_PREFIX)
            {
                continue;
            }
            let rel = dir_rel.join(&name);
            let path = root.join(&rel);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => {
                    return Err(Error::storage(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )))
                }
            };
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                subdirs.push(rel.clone());
                Kind::Dir
            } else if ft.is_file() {
                Kind::File(meta.len())
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| {
                    Error::storage(format!("cannot read symlink {}: {e}", path.display()))
                })?;
                Kind::Link(target)
            } else {
                stats.skip(&rel, special_kind(&ft));
                continue;
            };
            items.push(Item {
                rel,
                kind,
                mode: permission_bits(&meta),
                mtime: mtime_secs(&meta),
            });
        }
        // Depth first, in name order: push in reverse so the smallest name pops first.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(items)
}

/// Yields exactly `remaining` bytes of a file, or fails if the file shrank.
struct Exact<'a> {
    file: File,
    remaining: u64,
    rel: &'a Path,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was archived", self.rel.display()),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Pack the contents of directory `root` as a gzip'd tar into `out`; returns `out`
/// (flushed, gzip trailer written) and what went in.
pub fn pack_directory<W: Write>(root: &Path, out: W) -> Result<(W, ArchiveStats)> {
    let meta = fs::metadata(root)
        .map_err(|e| Error::validation(format!("cannot read {}: {e}", root.display())))?;
    if !meta.is_dir() {
        return Err(Error::validation(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let mut stats = ArchiveStats::default();
    let items = walk(root, &mut stats)?;
    let links: HashSet<&Path> = items
        .iter()
        .filter(|i| matches!(i.kind, Kind::Link(_)))
        .map(|i| i.rel.as_path())
        .collect();
    let io_err =
        |rel: &Path, e: io::Error| Error::storage(format!("cannot archive {}: {e}", rel.display()));
    let mut builder = Builder::new(GzEncoder::new(out, Compression::default()));
    for item in &items {
        let mut header = Header::new_gnu();
        header.set_mtime(item.mtime);
        header.set_uid(0);
        header.set_gid(0);
        match &item.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_mode(item.mode);
                header.set_size(0);
                builder
                    .append_data(&mut header, &item.rel, io::empty())
                    .map_err(|e| io_err(&item.rel, e))?;
                stats.directories += 1;
            }
            Kind::File(len) => {
                let file = match File::open(root.join(&item.rel)) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&item.rel, e)),
                };
                header.set_entry_type(EntryType::Regular);
                header.set_mode(item.mode);
                header.set_size(*len);
                let reader = Exact {
                    file,
                    remaining: *len,
                    rel: &item.rel,
                };
                builder
                    .append_data(&mut header, &item.rel, reader)
                    .map_err(|e| io_err(&item.rel, e))?;
                stats.files += 1;
                stats.bytes += len;
            }
            Kind::Link(target) => {
                let inside = |p: &Path| links.contains(p);
                if let Some(why) = link_problem(&item.rel, target, &inside) {
                    stats.skip(&item.rel, &format!("symlink not archived: {why}"));
                    continue;
                }
                header.set_entry_type(EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, &item.rel, target)
                    .map_err(|e| io_err(&item.rel, e))?;
                stats.symlinks += 1;
            }
        }
    }
    let encoder = builder
        .into_inner()
        .map_err(|e| Error::storage(format!("cannot finish the archive: {e}")))?;
    let out = encoder
        .finish()
        .map_err(|e| Error::storage(format!("cannot finish the archive: {e}")))?;
    Ok((out, stats))
}
