//! Snapshots of directories through the factory: archive a directory into a
//! ready snapshot, restore a snapshot (verified against its sha256 and size while
//! it is read) into a directory.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::unpack::new_file;
use super::{pack_directory, unpack_archive, ArchiveStats, RestoreMode};
use crate::error::{Error, Result};
use crate::factory::Factory;
use crate::snapshots::{
    PrepareSnapshot, Snapshot, SnapshotReason, SnapshotSource, SnapshotStatus, FORMAT_VERSION,
};

/// A snapshot taken of a directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectorySnapshot {
    /// The ready snapshot.
    pub snapshot: Snapshot,
    /// What went into the archive.
    pub archive: ArchiveStats,
}

/// A snapshot restored into a directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoredSnapshot {
    /// The snapshot that was restored.
    pub snapshot: Snapshot,
    /// What was extracted.
    pub archive: ArchiveStats,
}

/// Hashes and counts every byte read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Removes a temporary file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn check_request(req: &PrepareSnapshot) -> Result<()> {
    crate::workers::validate_worker_id(&req.worker_id)?;
    crate::validate::workspace_id(&req.workspace_id)?;
    crate::agents::validate_agent_key(&req.agent_key)?;
    crate::snapshots::require_conversation_id(req.conversation_id.as_deref())?;
    SnapshotReason::parse(&req.reason).map(|_| ())
}

impl Factory {
    /// Archive directory `dir` and store it as a ready snapshot of `req`'s
    /// (workspace, agent, conversation), in one call.
    ///
    /// The request and the directory are checked before anything is written. A
    /// pack that fails part-way (unreadable file, disk full) is recorded as a
    /// `failed` snapshot with the reason and returned as the error; an upload
    /// failure is handled as in [`Factory::upload_snapshot`].
    pub fn snapshot_directory(
        &self,
        req: &PrepareSnapshot,
        dir: &Path,
        now_ms: Option<i64>,
    ) -> Result<DirectorySnapshot> {
        check_request(req)?;
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::validation(format!(
                    "path {} is not a directory",
                    dir.display()
                )))
            }
            Err(e) => {
                return Err(Error::validation(format!(
                    "path {} cannot be read: {e}",
                    dir.display()
                )))
            }
        }
        let now = self.now(now_ms)?;
        let root = self.blobs().root();
        if !root.exists() {
            fs::create_dir_all(root)?;
            crate::store::set_mode(root, 0o700)?;
        }
        let temp = TempFile(root.join(format!(
            ".tmp-archive-{}.tar.gz",
            uuid::Uuid::now_v7().simple()
        )));
        let packed = new_file(&temp.0)
            .map_err(|e| Error::storage(format!("cannot create {}: {e}", temp.0.display())))
            .and_then(|file| pack_directory(dir, io::BufWriter::new(file)))
            .and_then(|(out, stats)| {
                let file = out
                    .into_inner()
                    .map_err(|e| Error::storage(format!("cannot write the archive: {e}")))?;
                file.sync_all()?;
                Ok(stats)
            });
        let stats = match packed {
            Ok(stats) => stats,
            Err(err) => {
                let prepared = self.prepare_snapshot_upload(req, Some(now))?;
                let reason = format!("archive failed: {err}");
                self.fail_snapshot_upload(
                    &req.worker_id,
                    &prepared.snapshot_id,
                    &reason,
                    Some(now),
                )?;
                return Err(err);
            }
        };
        let snapshot =
            self.upload_snapshot(req, &SnapshotSource::File(temp.0.clone()), Some(now))?;
        Ok(DirectorySnapshot {
            snapshot,
            archive: stats,
        })
    }

    /// Restore a ready snapshot into `dest` (see the module docs for `mode` and
    /// the safety rules). The archive's sha256 and size are checked against the
    /// snapshot while it is read; `dest` changes only if everything matches.
    pub fn restore_snapshot(
        &self,
        snapshot: &Snapshot,
        dest: &Path,
        mode: RestoreMode,
    ) -> Result<ArchiveStats> {
        let id = &snapshot.snapshot_id;
        if snapshot.format_version != FORMAT_VERSION {
            return Err(Error::invalid_state(format!(
                "snapshot {id} has archive format {}; this version reads format {FORMAT_VERSION}",
                snapshot.format_version
            )));
        }
        let archive = (snapshot.sha256.as_deref(), snapshot.size_bytes);
        let (SnapshotStatus::Ready, (Some(sha), Some(size))) = (snapshot.status, archive) else {
            return Err(Error::invalid_state(format!(
                "snapshot {id} is {}; only a ready snapshot can be restored",
                snapshot.status.as_str()
            )));
        };
        let path = self.blobs().path_of(sha)?;
        let file = File::open(&path).map_err(|e| {
            Error::not_found(format!(
                "archive {sha} of snapshot {id} cannot be opened: {e}"
            ))
        })?;
        let reader = Hashing {
            inner: io::BufReader::new(file),
            hasher: Sha256::new(),
            size: 0,
        };
        unpack_archive(reader, dest, mode, |mut rest| {
            io::copy(&mut rest, &mut io::sink())?;
            let actual = hex::encode(rest.hasher.finalize());
            if actual != sha || i64::try_from(rest.size).ok() != Some(size) {
                return Err(Error::storage(format!(
                    "archive of snapshot {id} is corrupt: expected sha256 {sha} and {size} bytes, read {actual} and {} bytes",
                    rest.size
                )));
            }
            Ok(())
        })
    }

    /// Restore the snapshot `snapshot_id` (it must be ready) into `dest`.
    pub fn restore_snapshot_by_id(
        &self,
        snapshot_id: &str,
        dest: &Path,
        mode: RestoreMode,
        now_ms: Option<i64>,
    ) -> Result<RestoredSnapshot> {
        let snapshot = self
            .get_snapshot(snapshot_id, now_ms)?
            .ok_or_else(|| Error::not_found(format!("snapshot {snapshot_id} not found")))?;
        let archive = self.restore_snapshot(&snapshot, dest, mode)?;
        Ok(RestoredSnapshot { snapshot, archive })
    }

    /// Restore the newest ready snapshot of (workspace, agent, conversation) into
    /// `dest`; `None` (and `dest` untouched) when there is none.
    pub fn restore_latest_snapshot(
        &self,
        workspace_id: &str,
        agent_key: &str,
        conversation_id: Option<&str>,
        dest: &Path,
        mode: RestoreMode,
        now_ms: Option<i64>,
    ) -> Result<Option<RestoredSnapshot>> {
        let Some(snapshot) =
            self.latest_snapshot_for_restore(workspace_id, agent_key, conversation_id, now_ms)?
        else {
            return Ok(None);
        };
        let archive = self.restore_snapshot(&snapshot, dest, mode)?;
        Ok(Some(RestoredSnapshot { snapshot, archive }))
    }
}
