//! Downloading a message's media into the blob store (outside any transaction).
//!
//! Invariants:
//! - each file is fetched with `getFile` then downloaded, at most
//!   `max_file_bytes`; bytes land in the content-addressed blob store, so a
//!   re-delivered update re-uses the same blob;
//! - a file too large for the cap (declared by the update, by `getFile`, by the
//!   answer, or found while reading; or refused by Telegram as "file is too big")
//!   is skipped with reason `too_large` — retrying could never succeed — while
//!   every other failure is an error (the caller writes nothing and Telegram
//!   re-delivers the update later);
//! - the MIME type is resolved as the seed does: the reported type (lower-cased,
//!   ignored when empty or `application/octet-stream`), then the file name's
//!   extension, then the download's `Content-Type`, then the `file_path`'s
//!   extension, then `application/octet-stream`.

use super::bot_api::BotApi;
use super::update::MediaRef;
use crate::blobs::BlobStore;
use crate::error::{Error, Result};

/// The generic MIME type that never wins.
const GENERIC: &str = "application/octet-stream";

/// A media item stored in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    /// The item as the update described it.
    pub item: MediaRef,
    /// Resolved MIME type.
    pub mime_type: String,
    /// Stored size.
    pub size_bytes: i64,
    /// Blob SHA-256.
    pub sha256: String,
}

/// A media item that was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMedia {
    /// The item as the update described it.
    pub item: MediaRef,
    /// Why (`too_large`).
    pub reason: String,
}

/// What fetching the media of one message gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedMedia {
    /// Stored items, in message order.
    pub stored: Vec<StoredMedia>,
    /// Skipped items, in message order.
    pub skipped: Vec<SkippedMedia>,
}

/// MIME type by file extension.
pub fn mime_from_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => return None,
    })
}

/// A usable (non-generic) MIME type: lower-cased, parameters dropped.
fn specific(mime: Option<&str>) -> Option<String> {
    let m = mime?.split(';').next()?.trim().to_ascii_lowercase();
    (!m.is_empty() && m != GENERIC && m.len() <= 255).then_some(m)
}

/// The MIME type of a stored item (see the module invariants for the order).
pub fn resolve_mime(item: &MediaRef, content_type: Option<&str>, file_path: &str) -> String {
    specific(item.mime_type.as_deref())
        .or_else(|| {
            item.file_name
                .as_deref()
                .and_then(mime_from_name)
                .map(str::to_string)
        })
        .or_else(|| specific(content_type))
        .or_else(|| mime_from_name(file_path).map(str::to_string))
        .unwrap_or_else(|| GENERIC.to_string())
}

fn is_too_big(err: &crate::error::ProviderError) -> bool {
    err.status == Some(400) && err.message.to_ascii_lowercase().contains("file is too big")
}

/// Fetch every item of `media` into `blobs`; see the module invariants.
pub fn fetch(
    api: &BotApi,
    blobs: &BlobStore,
    media: &[MediaRef],
    max_bytes: u64,
) -> Result<FetchedMedia> {
    let mut out = FetchedMedia::default();
    let too_large = |item: &MediaRef| SkippedMedia {
        item: item.clone(),
        reason: "too_large".into(),
    };
    for item in media {
        if item.file_size.is_some_and(|n| n as u64 > max_bytes) {
            out.skipped.push(too_large(item));
            continue;
        }
        let file = match api.get_file(&item.file_id) {
            Ok(f) => f,
            Err(e) if is_too_big(&e) => {
                out.skipped.push(too_large(item));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if file.file_size.is_some_and(|n| n as u64 > max_bytes) {
            out.skipped.push(too_large(item));
            continue;
        }
        let path = file
            .file_path
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| Error::Provider("Telegram getFile failed: missing file_path".into()))?;
        let downloaded = match api.download(&path, max_bytes)? {
            Ok(d) => d,
            Err(_) => {
                out.skipped.push(too_large(item));
                continue;
            }
        };
        let sha256 = blobs
            .put(&downloaded.bytes)
            .map_err(|e| e.with_context(&format!("storing Telegram {} attachment", item.kind)))?;
        out.stored.push(StoredMedia {
            item: item.clone(),
            mime_type: resolve_mime(item, downloaded.content_type.as_deref(), &path),
            size_bytes: downloaded.bytes.len() as i64,
            sha256,
        });
    }
    Ok(out)
}
