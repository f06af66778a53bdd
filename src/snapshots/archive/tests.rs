//! Archive round trips, restore modes, and rejection of unsafe archives.

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{Builder, EntryType, Header};

use super::*;
use crate::clock::Clock;
use crate::factory::{Factory, FactoryOptions};
use crate::snapshots::PrepareSnapshot;

fn pack_bytes(dir: &Path) -> (Vec<u8>, ArchiveStats) {
    pack_directory(dir, Vec::new()).unwrap()
}

fn unpack(bytes: &[u8], dest: &Path, mode: RestoreMode) -> Result<ArchiveStats> {
    unpack_archive(bytes, dest, mode, |_| Ok(()))
}

/// Every path under `dir` with a short description, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    fs::read_link(e.path()).unwrap().display()
                ));
            } else if ft.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(e.path());
            } else {
                out.push(format!("{rel} = {:?}", fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A raw gzip'd tar whose entries are written byte for byte (no path checks).
struct Raw(Builder<Vec<u8>>);

impl Raw {
    fn new() -> Raw {
        Raw(Builder::new(Vec::new()))
    }

    fn entry(mut self, kind: EntryType, path: &str, link: Option<&str>, data: &[u8]) -> Raw {
        let mut h = Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Raw {
        self.entry(EntryType::Regular, path, None, data)
    }

    fn symlink(self, path: &str, target: &str) -> Raw {
        self.entry(EntryType::Symlink, path, Some(target), b"")
    }

    fn gz(self) -> Vec<u8> {
        let tar = self.0.into_inner().unwrap();
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&tar).unwrap();
        enc.finish().unwrap()
    }
}

#[cfg(unix)]
fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
#[test]
fn round_trip_keeps_files_dirs_modes_and_inner_symlinks() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    fs::create_dir_all(root.join("workspace/notes")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("workspace/notes/a.md"), b"alpha").unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    let long = "n".repeat(180);
    fs::write(root.join("workspace").join(&long), vec![9u8; 70_000]).unwrap();
    symlink("workspace/notes/a.md", root.join("latest")).unwrap();
    symlink("../../run.sh", root.join("workspace/notes/run")).unwrap();
    symlink("/etc/passwd", root.join("absolute")).unwrap();
    symlink("../outside", root.join("escape")).unwrap();
    symlink("latest/../x", root.join("through")).unwrap();
    let fifo = root.join("pipe");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

    let (bytes, stats) = pack_bytes(root);
    assert_eq!((stats.files, stats.symlinks), (3, 2), "{stats:?}");
    assert_eq!(stats.bytes, 5 + 10 + 70_000);
    assert_eq!(stats.skipped.len(), 4, "{:?}", stats.skipped);
    assert!(stats.skipped.iter().any(|s| s.starts_with("pipe: FIFO")));
    assert!(stats
        .skipped
        .iter()
        .any(|s| s.contains("absolute: symlink not archived")));

    fs::remove_file(&fifo).unwrap(); // `listing` would block reading it
    let out = tempfile::tempdir().unwrap();
    let restored = unpack(&bytes, out.path(), RestoreMode::Replace).unwrap();
    assert_eq!(
        (restored.files, restored.symlinks, restored.bytes),
        (3, 2, stats.bytes)
    );
    let expected: Vec<String> = listing(root)
        .into_iter()
        .filter(|l| {
            !["absolute", "escape", "through", "pipe"]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .collect();
    assert_eq!(listing(out.path()), expected);
    assert_eq!(
        mode_of(&out.path().join("run.sh")),
        0o755,
        "setuid stripped"
    );
    assert_eq!(fs::read(out.path().join("latest")).unwrap(), b"alpha");
}

#[test]
fn empty_directory_packs_and_restores() {
    let src = tempfile::tempdir().unwrap();
    let (bytes, stats) = pack_bytes(src.path());
    assert_eq!(stats, ArchiveStats::default());
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("old"), b"x").unwrap();
    unpack(&bytes, out.path(), RestoreMode::Replace).unwrap();
    assert!(listing(out.path()).is_empty());
}

#[test]
fn replace_clears_the_destination_and_merge_keeps_other_entries() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("d")).unwrap();
    fs::write(src.path().join("d/new"), b"new").unwrap();
    fs::write(src.path().join("same"), b"snapshot").unwrap();
    let (bytes, _) = pack_bytes(src.path());

    let prepare = |dir: &Path| {
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("d/local"), b"local").unwrap();
        fs::write(dir.join("same"), b"local").unwrap();
        fs::write(dir.join("other"), b"local").unwrap();
    };
    let replace = tempfile::tempdir().unwrap();
    prepare(replace.path());
    unpack(&bytes, replace.path(), RestoreMode::Replace).unwrap();
    assert_eq!(listing(replace.path()), listing(src.path()));

    let merge = tempfile::tempdir().unwrap();
    prepare(merge.path());
    unpack(&bytes, merge.path(), RestoreMode::Merge).unwrap();
    assert_eq!(fs::read(merge.path().join("same")).unwrap(), b"snapshot");
    assert_eq!(fs::read(merge.path().join("d/new")).unwrap(), b"new");
    assert_eq!(fs::read(merge.path().join("d/local")).unwrap(), b"local");
    assert_eq!(fs::read(merge.path().join("other")).unwrap(), b"local");
}

#[test]
fn missing_destination_is_created() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), b"1").unwrap();
    let (bytes, _) = pack_bytes(src.path());
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("a/b");
    unpack(&bytes, &dest, RestoreMode::Replace).unwrap();
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"1");
}

/// Each archive is rejected, the destination is untouched, nothing lands outside it.
#[test]
fn unsafe_archives_are_rejected_without_touching_anything() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            Raw::new().file("ok", b"1").file("../evil", b"x").gz(),
        ),
        ("nested dotdot", Raw::new().file("a/../../evil", b"x").gz()),
        (
            "absolute",
            Raw::new().file("/tmp/agent-factory-evil", b"x").gz(),
        ),
        (
            "escaping symlink",
            Raw::new().symlink("l", "../outside").gz(),
        ),
        ("absolute symlink", Raw::new().symlink("l", "/etc").gz()),
        (
            "write through symlink",
            Raw::new().symlink("l", "sub").file("l/evil", b"x").gz(),
        ),
        (
            "symlink chain escape",
            Raw::new()
                .entry(EntryType::Directory, "d/", None, b"")
                .symlink("d/l", "..")
                .symlink("a", "d/l/..")
                .gz(),
        ),
        (
            "hard link",
            Raw::new()
                .file("f", b"1")
                .entry(EntryType::Link, "h", Some("/etc/passwd"), b"")
                .gz(),
        ),
        (
            "char device",
            Raw::new().entry(EntryType::Char, "dev", None, b"").gz(),
        ),
        (
            "fifo",
            Raw::new().entry(EntryType::Fifo, "p", None, b"").gz(),
        ),
        (
            "file and dir",
            Raw::new().file("x", b"1").file("x/y", b"2").gz(),
        ),
        ("not gzip", b"definitely not an archive".to_vec()),
    ];
    let base = tempfile::tempdir().unwrap();
    for (name, bytes) in cases {
        let dest = base.path().join("dest");
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("keep"), b"mine").unwrap();
        let err = unpack(&bytes, &dest, RestoreMode::Replace)
            .expect_err(&format!("{name} must be rejected"));
        assert!(
            matches!(err, Error::Validation(_) | Error::Storage(_)),
            "{name}: {err:?}"
        );
        assert_eq!(
            listing(&dest),
            vec!["keep = [109, 105, 110, 101]".to_string()],
            "{name}"
        );
        assert!(!base.path().join("evil").exists(), "{name}");
        assert!(!base.path().join("outside").exists(), "{name}");
        fs::remove_dir_all(&dest).unwrap();
    }
    assert!(!Path::new("/tmp/agent-factory-evil").exists());
}

#[test]
fn a_failed_check_leaves_the_destination_untouched() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), b"snapshot").unwrap();
    let (bytes, _) = pack_bytes(src.path());
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("f"), b"local").unwrap();
    let err = unpack_archive(&bytes[..], out.path(), RestoreMode::Replace, |_| {
        Err(Error::storage("hash mismatch"))
    })
    .unwrap_err();
    assert_eq!(err, Error::storage("hash mismatch"));
    assert_eq!(
        listing(out.path()),
        vec!["f = [108, 111, 99, 97, 108]".to_string()]
    );
}

#[test]
fn merge_rejects_a_link_through_an_existing_destination_symlink() {
    let dest = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("..", dest.path().join("up")).unwrap();
    let bytes = Raw::new().symlink("a", "up/../x").gz();
    #[cfg(unix)]
    assert!(unpack(&bytes, dest.path(), RestoreMode::Merge).is_err());
    // Replacing removes `up` first, and the archive alone resolves inside the root.
    unpack(&bytes, dest.path(), RestoreMode::Replace).unwrap();
}

#[test]
fn restore_mode_parses_its_names() {
    assert_eq!(RestoreMode::parse("replace").unwrap(), RestoreMode::Replace);
    assert_eq!(RestoreMode::parse("merge").unwrap(), RestoreMode::Merge);
    assert!(matches!(
        RestoreMode::parse("wipe"),
        Err(Error::Validation(_))
    ));
}

fn factory(dir: &Path) -> Factory {
    Factory::open(
        dir.join("f.db").to_str().unwrap(),
        FactoryOptions {
            clock: Clock::manual(1_767_225_600_000),
            ..Default::default()
        },
    )
    .unwrap()
}

fn req(reason: &str) -> PrepareSnapshot {
    PrepareSnapshot {
        worker_id: "w-1".into(),
        workspace_id: "default".into(),
        agent_key: "agent".into(),
        conversation_id: Some("conv-1".into()),
        reason: reason.into(),
    }
}

#[test]
fn snapshot_directory_then_restore_latest_round_trips_through_the_blob_store() {
    let tmp = tempfile::tempdir().unwrap();
    let f = factory(tmp.path());
    let data = tmp.path().join("data");
    fs::create_dir_all(data.join("workspace")).unwrap();
    fs::write(data.join("workspace/memory.md"), b"remember").unwrap();
    let taken = f.snapshot_directory(&req("drain"), &data, None).unwrap();
    assert_eq!(taken.snapshot.status.as_str(), "ready");
    assert_eq!(taken.archive.files, 1);
    let leftovers: Vec<_> = fs::read_dir(f.blobs().root())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary archive removed");

    let dest = tmp.path().join("fresh");
    let restored = f
        .restore_latest_snapshot(
            "default",
            "agent",
            Some("conv-1"),
            &dest,
            RestoreMode::Replace,
            None,
        )
        .unwrap()
        .unwrap();
    assert_eq!(restored.snapshot.snapshot_id, taken.snapshot.snapshot_id);
    assert_eq!(
        fs::read(dest.join("workspace/memory.md")).unwrap(),
        b"remember"
    );
    assert!(f
        .restore_latest_snapshot(
            "default",
            "agent",
            Some("conv-2"),
            &dest,
            RestoreMode::Replace,
            None
        )
        .unwrap()
        .is_none());
}

#[test]
fn a_tampered_archive_is_not_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let f = factory(tmp.path());
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), b"original").unwrap();
    let taken = f.snapshot_directory(&req("manual"), &data, None).unwrap();
    let blob = f
        .blobs()
        .path_of(taken.snapshot.sha256.as_deref().unwrap())
        .unwrap();
    // Same size, different bytes: a valid archive of other contents.
    let other = tmp.path().join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("f"), b"tampered").unwrap();
    let (evil, _) = pack_bytes(&other);
    fs::write(&blob, &evil).unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("keep"), b"1").unwrap();
    let err = f
        .restore_snapshot(&taken.snapshot, &dest, RestoreMode::Replace)
        .unwrap_err();
    assert!(
        matches!(err, Error::Storage(ref m) if m.contains("corrupt")),
        "{err:?}"
    );
    assert_eq!(listing(&dest), vec!["keep = [49]".to_string()]);
}

#[test]
fn snapshot_directory_checks_its_inputs_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let f = factory(tmp.path());
    let missing = tmp.path().join("missing");
    assert!(matches!(
        f.snapshot_directory(&req("drain"), &missing, None),
        Err(Error::Validation(_))
    ));
    let mut bad = req("drain");
    bad.conversation_id = None;
    assert!(matches!(
        f.snapshot_directory(&bad, tmp.path(), None),
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        f.snapshot_directory(&req("sometimes"), tmp.path(), None),
        Err(Error::Validation(_))
    ));
    assert!(f
        .list_snapshots_for_worker("w-1", None, None)
        .unwrap()
        .is_empty());
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_records_a_failed_snapshot() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe { libc::geteuid() } == 0 {
        return; // root reads everything; nothing to provoke
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = factory(tmp.path());
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("secret"), b"x").unwrap();
    fs::set_permissions(data.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    assert!(matches!(
        f.snapshot_directory(&req("drain"), &data, None),
        Err(Error::Storage(_))
    ));
    let listed = f.list_snapshots_for_worker("w-1", None, None).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status.as_str(), "failed");
    assert!(listed[0]
        .error
        .as_deref()
        .unwrap()
        .contains("archive failed"));
}

#[test]
fn only_a_ready_snapshot_is_restored_by_id() {
    let tmp = tempfile::tempdir().unwrap();
    let f = factory(tmp.path());
    let up = f.prepare_snapshot_upload(&req("manual"), None).unwrap();
    let dest = tmp.path().join("dest");
    let err = f
        .restore_snapshot_by_id(&up.snapshot_id, &dest, RestoreMode::Replace, None)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidState(ref m) if m.contains("uploading")),
        "{err:?}"
    );
    assert!(matches!(
        f.restore_snapshot_by_id("snap-missing", &dest, RestoreMode::Replace, None),
        Err(Error::NotFound(_))
    ));
    assert!(!dest.exists());
}
