//! `NativeWorkboard`: the workboard core seen from Python (wrapped by
//! `agent_factory.Workboard` / `AsyncWorkboard`). Thin: conversions only.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde_json::Map;

use super::clock::ManualClock;
use super::convert;
use super::errors::{invalid, to_py};
use super::factory::NativeFactory;
use super::run::dispatch;
use crate::clock::Clock;
use crate::store::{JournalChoice, StoreOptions};
use crate::workboard::{
    AttachmentContent, AttachmentInput, ListQuery, Scope, Workboard, WorkboardOptions,
};

/// The workboard handle seen from Python.
#[pyclass(module = "agent_factory._native", frozen)]
pub struct NativeWorkboard {
    pub(super) core: Arc<Workboard>,
}

type Input = Map<String, serde_json::Value>;

fn journal(choice: &str) -> PyResult<JournalChoice> {
    match choice {
        "auto" => Ok(JournalChoice::Auto),
        "wal" => Ok(JournalChoice::Wal),
        "delete" => Ok(JournalChoice::Delete),
        other => Err(invalid(format!(
            "journal_mode must be 'auto', 'wal' or 'delete', got {other:?}"
        ))),
    }
}

pub(super) fn input(field: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Input> {
    Ok(convert::object(field, obj)?.unwrap_or_default())
}

pub(super) fn scope(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Scope>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(convert::typed("scope", o)?)),
        _ => Ok(None),
    }
}

#[pymethods]
impl NativeWorkboard {
    #[new]
    #[pyo3(signature = (path, durable = false, journal_mode = "auto", clock = None, harden_dir = true))]
    fn new(
        py: Python<'_>,
        path: String,
        durable: bool,
        journal_mode: &str,
        clock: Option<&Bound<'_, ManualClock>>,
        harden_dir: bool,
    ) -> PyResult<Self> {
        let options = WorkboardOptions {
            store: StoreOptions {
                durable,
                journal: journal(journal_mode)?,
                harden_dir,
            },
            clock: clock
                .map(|c| c.get().clock.clone())
                .unwrap_or(Clock::System),
        };
        let core = py
            .detach(|| Workboard::open(&path, options))
            .map_err(to_py)?;
        Ok(NativeWorkboard {
            core: Arc::new(core),
        })
    }

    /// A workboard on a factory's database (same file, connection and clock).
    #[staticmethod]
    fn from_factory(factory: &Bound<'_, NativeFactory>) -> Self {
        let f = factory.get().core();
        NativeWorkboard {
            core: Arc::new(Workboard::with_store(f.store().clone(), f.clock().clone())),
        }
    }

    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let s = self.core.store().clone();
        let info = serde_json::json!({
            "path": s.path().map(|p| p.display().to_string()),
            "journal_mode": s.journal_mode(),
            "durable": s.durable(),
            "schema_version": crate::store::migrations::LATEST,
        });
        dispatch(py, false, move || Ok(info))
    }

    fn now_ms(&self) -> i64 {
        self.core.clock().now_ms()
    }

    fn change_revision(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.change_revision())
    }

    #[pyo3(signature = (is_async, fields, now_ms = None))]
    fn create(
        &self,
        py: Python<'_>,
        is_async: bool,
        fields: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let fields = input("card", Some(fields))?;
        let w = self.core.clone();
        dispatch(py, is_async, move || w.create(&fields, now_ms))
    }

    fn get(&self, py: Python<'_>, is_async: bool, id: String) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.get(&id))
    }

    #[pyo3(signature = (is_async, board_id = None, statuses = None, agent_id = None, archived = None, limit = None, offset = None))]
    #[allow(clippy::too_many_arguments)]
    fn list(
        &self,
        py: Python<'_>,
        is_async: bool,
        board_id: Option<String>,
        statuses: Option<Vec<String>>,
        agent_id: Option<String>,
        archived: Option<bool>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let q = ListQuery {
            board_id,
            statuses,
            agent_id,
            archived,
            limit,
            offset,
        };
        let w = self.core.clone();
        dispatch(py, is_async, move || w.list(&q))
    }

    #[pyo3(signature = (is_async, id, patch, now_ms = None))]
    fn update(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        patch: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let patch = input("patch", Some(patch))?;
        let w = self.core.clone();
        dispatch(py, is_async, move || w.update(&id, &patch, now_ms))
    }

    #[pyo3(signature = (is_async, id, status, position = None, scope_ = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn move_card(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        status: String,
        position: Option<i64>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.move_card(&id, &status, position, s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, ids, patch = None, archived = None, now_ms = None))]
    fn bulk_update(
        &self,
        py: Python<'_>,
        is_async: bool,
        ids: Vec<String>,
        patch: Option<&Bound<'_, PyAny>>,
        archived: Option<bool>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let patch = convert::object("patch", patch)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.bulk_update(&ids, patch.as_ref(), archived, now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, archived = true, now_ms = None))]
    fn archive(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        archived: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.archive(&id, archived, now_ms))
    }

    #[pyo3(signature = (is_async, id, now_ms = None))]
    fn delete(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.delete(&id, now_ms))
    }

    #[pyo3(signature = (is_async, now_ms = None))]
    fn export_cards(
        &self,
        py: Python<'_>,
        is_async: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.export_cards(now_ms))
    }

    fn runs(&self, py: Python<'_>, is_async: bool, id: String) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.runs(&id))
    }

    #[pyo3(signature = (is_async, id, body, scope_ = None, now_ms = None))]
    fn add_comment(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        body: String,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.add_comment(&id, &body, s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, link, now_ms = None))]
    fn add_link(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        link: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let link = input("link", Some(link))?;
        let w = self.core.clone();
        dispatch(py, is_async, move || w.add_link(&id, &link, now_ms))
    }

    #[pyo3(signature = (is_async, parent_id, child_id, scope_ = None, now_ms = None))]
    fn link_cards(
        &self,
        py: Python<'_>,
        is_async: bool,
        parent_id: String,
        child_id: String,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.link_cards(&parent_id, &child_id, s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, kind, fields, scope_ = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn add_record(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        kind: &str,
        fields: &Bound<'_, PyAny>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let fields = input(kind, Some(fields))?;
        let s = scope(scope_)?;
        let w = self.core.clone();
        match kind {
            "proof" => dispatch(py, is_async, move || {
                w.add_proof(&id, &fields, s.as_ref(), now_ms)
            }),
            "artifact" => dispatch(py, is_async, move || {
                w.add_artifact(&id, &fields, s.as_ref(), now_ms)
            }),
            "worker_log" => dispatch(py, is_async, move || {
                w.add_worker_log(&id, &fields, s.as_ref(), now_ms)
            }),
            "protocol_violation" => dispatch(py, is_async, move || {
                w.record_protocol_violation(&id, &fields, s.as_ref(), now_ms)
            }),
            other => Err(invalid(format!("unknown record kind {other:?}"))),
        }
    }

    #[pyo3(signature = (is_async, id, proof, artifact, scope_ = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn add_proof_with_artifact(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        proof: &Bound<'_, PyAny>,
        artifact: &Bound<'_, PyAny>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let proof = input("proof", Some(proof))?;
        let artifact = input("artifact", Some(artifact))?;
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.add_proof_with_artifact(&id, &proof, &artifact, s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, file_name, content = None, content_base64 = None, mime_type = None, note = None, scope_ = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn add_attachment(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        file_name: Option<String>,
        content: Option<&Bound<'_, PyBytes>>,
        content_base64: Option<String>,
        mime_type: Option<String>,
        note: Option<String>,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let content = match (content, content_base64) {
            (Some(b), None) => Some(AttachmentContent::Bytes(b.as_bytes().to_vec())),
            (None, Some(t)) => Some(AttachmentContent::Base64(t)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "pass content (bytes) or content_base64 (str), not both",
                ))
            }
        };
        let req = AttachmentInput {
            file_name,
            content,
            mime_type,
            note,
        };
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.add_attachment(&id, req, s.as_ref(), now_ms)
        })
    }

    fn get_attachment(
        &self,
        py: Python<'_>,
        is_async: bool,
        attachment_id: String,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.get_attachment(&attachment_id))
    }

    fn list_attachments(&self, py: Python<'_>, is_async: bool, id: String) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.list_attachments(&id))
    }

    #[pyo3(signature = (is_async, id, attachment_id, scope_ = None, now_ms = None))]
    fn delete_attachment(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        attachment_id: String,
        scope_: Option<&Bound<'_, PyAny>>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let s = scope(scope_)?;
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.delete_attachment(&id, &attachment_id, s.as_ref(), now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, owner_id, token = None, ttl_seconds = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        owner_id: String,
        token: Option<String>,
        ttl_seconds: Option<f64>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.claim(&id, &owner_id, token.as_deref(), ttl_seconds, now_ms)
        })
    }

    #[pyo3(signature = (is_async, id, token = None, owner_id = None, note = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn heartbeat(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        token: Option<String>,
        owner_id: Option<String>,
        note: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.heartbeat(
                &id,
                token.as_deref(),
                owner_id.as_deref(),
                note.as_deref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, id, token = None, owner_id = None, status = None, now_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn release_claim(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        token: Option<String>,
        owner_id: Option<String>,
        status: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.release_claim(
                &id,
                token.as_deref(),
                owner_id.as_deref(),
                status.as_deref(),
                now_ms,
            )
        })
    }

    #[pyo3(signature = (is_async, now_ms = None))]
    fn promote_ready(
        &self,
        py: Python<'_>,
        is_async: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.promote_ready(now_ms))
    }

    #[pyo3(signature = (is_async, board, now_ms = None))]
    fn upsert_board(
        &self,
        py: Python<'_>,
        is_async: bool,
        board: &Bound<'_, PyAny>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let board = input("board", Some(board))?;
        let w = self.core.clone();
        dispatch(py, is_async, move || w.upsert_board(&board, now_ms))
    }

    #[pyo3(signature = (is_async, id, archived = true, now_ms = None))]
    fn archive_board(
        &self,
        py: Python<'_>,
        is_async: bool,
        id: String,
        archived: bool,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.archive_board(&id, archived, now_ms))
    }

    fn delete_board(&self, py: Python<'_>, is_async: bool, id: String) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.delete_board(&id))
    }

    fn list_boards(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.list_boards())
    }

    #[pyo3(signature = (is_async, board_id = None, now_ms = None))]
    fn stats(
        &self,
        py: Python<'_>,
        is_async: bool,
        board_id: Option<String>,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || w.stats(board_id.as_deref(), now_ms))
    }

    #[pyo3(signature = (is_async, board_id, limit_per_status, now_ms = None))]
    fn kanban(
        &self,
        py: Python<'_>,
        is_async: bool,
        board_id: Option<String>,
        limit_per_status: i64,
        now_ms: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let w = self.core.clone();
        dispatch(py, is_async, move || {
            w.kanban(board_id.as_deref(), limit_per_status, now_ms)
        })
    }
}
