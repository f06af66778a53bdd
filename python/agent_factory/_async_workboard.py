"""The asyncio workboard API: ``AsyncWorkboard``.

Single source of the blocking ``Workboard`` (``_sync_workboard.py`` is generated
by ``tools/async_to_sync.py``). Every method is one transaction in the Rust core;
the work runs on Rust threads, never on the event loop. Method names are the
OpenClaw workboard store's in snake_case; keyword arguments are its input fields
in snake_case; every mutating call takes ``now_ms``.

Claimed cards: calls that take ``owner_id`` / ``token`` act as that worker and
fail with ``ConflictError("card is claimed by <owner>.")`` when another worker
holds the claim (a token, when given, must be the current one). Calls without
them act as the operator and may override claims.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from . import _guard, _native
from ._area import _KEEP
from ._board_view import BoardView, check_limit_per_status
from ._record_list import RecordList
from ._workboard_types import (
    AttachmentContent,
    BoardStats,
    BoardSummary,
    Card,
    CardAttachments,
    CardClaim,
    CardExport,
    CardRuns,
    ChangeRevision,
    Decomposition,
    DiagnosticsReport,
    DispatchResult,
    NotificationEvents,
    NotificationSubscription,
    PromotedCards,
    QueueDispatchResult,
    WorkboardBoard,
    cards_html,
)

_IS_ASYNC = True

__all__ = ["AsyncWorkboard"]

_UPDATE_FIELDS = (
    "title", "notes", "status", "priority", "labels", "agent_id", "session_key", "run_id", "task_id",
    "source_url", "execution", "metadata", "template_id", "position", "tenant", "board_id",
    "created_by_card_id", "idempotency_key", "skills", "workspace", "max_runtime_seconds",
    "max_retries", "scheduled_at", "started_at", "completed_at",
)


def _scope(owner_id: str | None, token: str | None) -> dict[str, str] | None:
    if owner_id is None and token is None:
        return None
    scope: dict[str, str] = {}
    if owner_id is not None:
        scope["owner_id"] = owner_id
    if token is not None:
        scope["token"] = token
    return scope


def _given(values: Mapping[str, Any], keep: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not keep}


class AsyncWorkboard:
    """A workboard (kanban store for agent work) on a database path, ``":memory:"``,
    or a :class:`Factory` / :class:`AsyncFactory` (same file, connection and clock).

    Several handles and processes may share one file; every call is one
    transaction, so concurrent writers never drop each other's changes.
    ``clock`` takes a :class:`ManualClock` for tests.
    """

    __slots__ = ("_n",)

    def __init__(
        self,
        path: str | os.PathLike[str] | Any = ":memory:",
        *,
        durable: bool = False,
        journal_mode: Literal["auto", "wal", "delete"] = "auto",
        clock: _native.ManualClock | None = None,
    ) -> None:
        factory_native = getattr(getattr(path, "_n", None), "_native", None)
        if isinstance(factory_native, _native.NativeFactory):
            self._n = _guard.GuardedNative(_native.NativeWorkboard.from_factory(factory_native))
        else:
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(f"path must be a str, os.PathLike or a Factory, got {type(path).__name__}")
            self._n = _guard.construct(_native.NativeWorkboard, os.fspath(path), durable, journal_mode, clock)

    def info(self) -> dict[str, Any]:
        """Path, journal mode, durability and schema version of the database."""
        return self._n.info()  # type: ignore[no-any-return]

    def now_ms(self) -> int:
        """The workboard clock's time."""
        return self._n.now_ms()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        i = self.info()
        return f"{type(self).__name__}(path={i['path'] or ':memory:'!r}, journal_mode={i['journal_mode']!r})"

    async def __aenter__(self) -> AsyncWorkboard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # ---- cards ----

    async def create(
        self,
        title: str,
        *,
        notes: str | None = None,
        status: str | None = None,
        priority: str | None = None,
        labels: Sequence[str] | str | None = None,
        agent_id: str | None = None,
        session_key: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        source_url: str | None = None,
        execution: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        template_id: str | None = None,
        position: int | None = None,
        tenant: str | None = None,
        board_id: str | None = None,
        created_by_card_id: str | None = None,
        idempotency_key: str | None = None,
        skills: Sequence[str] | str | None = None,
        workspace: Mapping[str, Any] | None = None,
        max_runtime_seconds: int | None = None,
        max_retries: int | None = None,
        scheduled_at: int | None = None,
        started_at: int | None = None,
        completed_at: int | None = None,
        parents: Sequence[str] | str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Create a card (status ``todo`` by default). With ``idempotency_key`` an existing
        card of the same board and tenant with that key is returned unchanged. ``parents``
        (at most 20) are linked in the same transaction: a failure leaves no card behind."""
        fields = {k: v for k, v in locals().items() if k not in ("self", "now_ms") and v is not None}
        if isinstance(fields.get("labels"), tuple):
            fields["labels"] = builtins.list(fields["labels"])
        return Card._from(await self._n.create(_IS_ASYNC, fields, now_ms))

    async def get(self, card_id: str) -> Card | None:
        """One card, or ``None``."""
        return Card._maybe(await self._n.get(_IS_ASYNC, card_id))

    async def list(
        self,
        *,
        board_id: str | None = None,
        status: str | Sequence[str] | None = None,
        agent_id: str | None = None,
        archived: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> RecordList[Card]:
        """Cards in board order (status order, position, creation), filtered and paged in SQL.
        ``archived=None`` includes archived cards, ``False`` hides them, ``True`` shows only them."""
        statuses = [status] if isinstance(status, str) else (builtins.list(status) if status is not None else None)
        raw = await self._n.list(_IS_ASYNC, board_id, statuses, agent_id, archived, limit, offset)
        return RecordList([Card._from(c) for c in raw], Card)

    async def update(
        self,
        card_id: str,
        *,
        title: Any = _KEEP,
        notes: Any = _KEEP,
        status: Any = _KEEP,
        priority: Any = _KEEP,
        labels: Any = _KEEP,
        agent_id: Any = _KEEP,
        session_key: Any = _KEEP,
        run_id: Any = _KEEP,
        task_id: Any = _KEEP,
        source_url: Any = _KEEP,
        execution: Any = _KEEP,
        metadata: Any = _KEEP,
        template_id: Any = _KEEP,
        position: Any = _KEEP,
        tenant: Any = _KEEP,
        board_id: Any = _KEEP,
        created_by_card_id: Any = _KEEP,
        idempotency_key: Any = _KEEP,
        skills: Any = _KEEP,
        workspace: Any = _KEEP,
        max_runtime_seconds: Any = _KEEP,
        max_retries: Any = _KEEP,
        scheduled_at: Any = _KEEP,
        started_at: Any = _KEEP,
        completed_at: Any = _KEEP,
        now_ms: int | None = None,
    ) -> Card:
        """Patch a card: omitted fields keep their value, ``None`` clears. Setting a status
        enforces the holds (``card dependencies are not done.``, ``card is scheduled for
        later.``); a status older than the card's lifecycle source is ignored."""
        patch = _given({k: v for k, v in locals().items() if k in _UPDATE_FIELDS}, _KEEP)
        return Card._from(await self._n.update(_IS_ASYNC, card_id, patch, now_ms))

    async def move(
        self,
        card_id: str,
        status: str,
        position: int | None = None,
        *,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Move a card to ``status`` (and ``position``), with the status holds."""
        raw = await self._n.move_card(_IS_ASYNC, card_id, status, position, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def bulk_update(
        self,
        ids: Sequence[str],
        *,
        patch: Mapping[str, Any] | None = None,
        archived: bool | None = None,
        now_ms: int | None = None,
    ) -> RecordList[Card]:
        """Apply one ``patch`` (the fields of :meth:`update`) or an ``archived`` flag to
        several cards in one transaction: all succeed or none."""
        if isinstance(ids, str):
            raise TypeError("ids must be a list of card ids, got str")
        raw = await self._n.bulk_update(
            _IS_ASYNC, builtins.list(ids), dict(patch) if patch is not None else None, archived, now_ms
        )
        return RecordList([Card._from(c) for c in raw["cards"]], Card)

    async def archive(self, card_id: str, archived: bool = True, *, now_ms: int | None = None) -> Card:
        """Archive (or with ``archived=False`` unarchive) a card."""
        return Card._from(await self._n.archive(_IS_ASYNC, card_id, archived, now_ms))

    async def delete(self, card_id: str, *, now_ms: int | None = None) -> bool:
        """Delete a card with its attachments and subscriptions; links to it are removed
        from other cards (so its children become free). ``False`` if it did not exist."""
        return bool((await self._n.delete(_IS_ASYNC, card_id, now_ms))["deleted"])

    async def export_cards(self, *, now_ms: int | None = None) -> CardExport:
        """Every card and the attachment index (no content)."""
        return CardExport._from(await self._n.export_cards(_IS_ASYNC, now_ms))

    async def runs(self, card_id: str) -> CardRuns:
        """The card and its run attempts."""
        return CardRuns._from(await self._n.runs(_IS_ASYNC, card_id))

    # ---- metadata ----

    async def add_comment(
        self, card_id: str, body: str, *, owner_id: str | None = None, token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Append a comment (at most 2000 characters; the last 50 are kept)."""
        return Card._from(await self._n.add_comment(_IS_ASYNC, card_id, body, _scope(owner_id, token), now_ms))

    async def add_link(
        self,
        card_id: str,
        *,
        type: str = "relates_to",
        target_card_id: str | None = None,
        url: str | None = None,
        title: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Append an ordinary link (``blocks``, ``blocked_by``, ``relates_to``) to a card or URL.
        Dependencies use :meth:`link_cards`."""
        link = {"type": type, "target_card_id": target_card_id, "url": url, "title": title}
        return Card._from(await self._n.add_link(_IS_ASYNC, card_id, link, now_ms))

    async def link_cards(
        self, parent_id: str, child_id: str, *, owner_id: str | None = None, token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Make ``parent_id`` a dependency of ``child_id``; returns the child. Rejects
        cycles, active children and terminal children with unfinished parents."""
        raw = await self._n.link_cards(_IS_ASYNC, parent_id, child_id, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def add_proof(
        self,
        card_id: str,
        *,
        status: str = "unknown",
        label: str | None = None,
        command: str | None = None,
        url: str | None = None,
        note: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Append proof (``passed``, ``failed``, ``skipped``, ``unknown``)."""
        proof = {"status": status, "label": label, "command": command, "url": url, "note": note}
        raw = await self._n.add_record(_IS_ASYNC, card_id, "proof", proof, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def add_artifact(
        self,
        card_id: str,
        *,
        label: str | None = None,
        url: str | None = None,
        path: str | None = None,
        mime_type: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Append an artifact (a ``url`` or a ``path`` is required)."""
        artifact = {"label": label, "url": url, "path": path, "mime_type": mime_type}
        raw = await self._n.add_record(_IS_ASYNC, card_id, "artifact", artifact, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def add_proof_with_artifact(
        self,
        card_id: str,
        proof: Mapping[str, Any],
        artifact: Mapping[str, Any],
        *,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Append proof and an artifact atomically (both are validated first)."""
        raw = await self._n.add_proof_with_artifact(
            _IS_ASYNC, card_id, dict(proof), dict(artifact), _scope(owner_id, token), now_ms
        )
        return Card._from(raw)

    async def add_worker_log(
        self,
        card_id: str,
        message: str,
        *,
        level: str = "info",
        session_key: str | None = None,
        run_id: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Append a worker log line (``info``, ``warning``, ``error``; the last 40 are kept)."""
        log = {"message": message, "level": level, "session_key": session_key, "run_id": run_id}
        raw = await self._n.add_record(_IS_ASYNC, card_id, "worker_log", log, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def record_protocol_violation(
        self,
        card_id: str,
        *,
        detail: str | None = None,
        session_key: str | None = None,
        run_id: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Record that a worker stopped without completing or blocking: the card is blocked,
        its claim cleared, a failure counted and a ``failed`` notification logged."""
        v = {"detail": detail, "session_key": session_key, "run_id": run_id}
        raw = await self._n.add_record(
            _IS_ASYNC, card_id, "protocol_violation", v, _scope(owner_id, token), now_ms
        )
        return Card._from(raw)

    # ---- attachments ----

    async def add_attachment(
        self,
        card_id: str,
        file_name: str,
        content: bytes | None = None,
        *,
        content_base64: str | None = None,
        mime_type: str | None = None,
        note: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Attach a file: ``content`` bytes or canonical ``content_base64`` (1 byte to 256 KiB;
        the oldest beyond 20 per card is pruned with its bytes)."""
        if content is not None and not isinstance(content, (bytes, bytearray, memoryview)):
            raise TypeError(f"content must be bytes, got {type(content).__name__}")
        raw = await self._n.add_attachment(
            _IS_ASYNC, card_id, file_name, bytes(content) if content is not None else None, content_base64,
            mime_type, note, _scope(owner_id, token), now_ms,
        )
        return Card._from(raw)

    async def get_attachment(self, attachment_id: str) -> AttachmentContent | None:
        """An attachment with its content, or ``None``."""
        return AttachmentContent._maybe(await self._n.get_attachment(_IS_ASYNC, attachment_id))

    async def list_attachments(self, card_id: str) -> CardAttachments:
        """A card and its attachment index."""
        return CardAttachments._from(await self._n.list_attachments(_IS_ASYNC, card_id))

    async def delete_attachment(
        self, card_id: str, attachment_id: str, *, owner_id: str | None = None, token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Delete one attachment (index entry and bytes)."""
        raw = await self._n.delete_attachment(_IS_ASYNC, card_id, attachment_id, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    # ---- claims ----

    async def claim(
        self,
        card_id: str,
        owner_id: str,
        *,
        token: str | None = None,
        ttl_seconds: float | None = None,
        now_ms: int | None = None,
    ) -> CardClaim:
        """Claim a card for ``ttl_seconds`` (default 30 min). Backlog, todo and ready cards
        become ``running``. Keep the returned token: it fences heartbeats and writes."""
        raw = await self._n.claim(_IS_ASYNC, card_id, owner_id, token, ttl_seconds, now_ms)
        return CardClaim._from(raw)

    async def heartbeat(
        self,
        card_id: str,
        *,
        token: str | None = None,
        owner_id: str | None = None,
        note: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Extend the claim by its original TTL (``token`` or ``owner_id`` required); a
        ``note`` becomes a comment."""
        return Card._from(await self._n.heartbeat(_IS_ASYNC, card_id, token, owner_id, note, now_ms))

    async def release_claim(
        self,
        card_id: str,
        *,
        token: str | None = None,
        owner_id: str | None = None,
        status: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Release the claim, optionally moving the card to ``status`` (holds enforced; on
        any error the claim is kept)."""
        return Card._from(await self._n.release_claim(_IS_ASYNC, card_id, token, owner_id, status, now_ms))

    async def promote_ready(self, *, now_ms: int | None = None) -> PromotedCards:
        """Promote cards whose parents are done or whose schedule arrived (and demote
        ready cards whose parent reopened); returns the changed cards."""
        return PromotedCards._from(await self._n.promote_ready(_IS_ASYNC, now_ms))

    # ---- boards ----

    async def upsert_board(
        self,
        board_id: str = "default",
        *,
        name: Any = _KEEP,
        description: Any = _KEEP,
        icon: Any = _KEEP,
        color: Any = _KEEP,
        default_workspace: Any = _KEEP,
        orchestration: Any = _KEEP,
        archived: bool | None = None,
        now_ms: int | None = None,
    ) -> WorkboardBoard:
        """Create or update a board; omitted fields keep their value, ``None`` clears."""
        board = _given(
            {"id": board_id, "name": name, "description": description, "icon": icon, "color": color,
             "default_workspace": default_workspace, "orchestration": orchestration, "archived": archived},
            _KEEP,
        )
        return WorkboardBoard._from(await self._n.upsert_board(_IS_ASYNC, board, now_ms))

    async def archive_board(self, board_id: str, archived: bool = True, *, now_ms: int | None = None) -> WorkboardBoard:
        """Archive (or unarchive) a board."""
        return WorkboardBoard._from(await self._n.archive_board(_IS_ASYNC, board_id, archived, now_ms))

    async def delete_board(self, board_id: str) -> bool:
        """Delete an empty board and its subscriptions (``default`` cannot be deleted)."""
        return bool((await self._n.delete_board(_IS_ASYNC, board_id))["deleted"])

    async def list_boards(self) -> RecordList[BoardSummary]:
        """Every board (stored, ``default``, and boards only cards name) with counts;
        ``default`` first, then by id."""
        raw = await self._n.list_boards(_IS_ASYNC)
        return RecordList([BoardSummary._from(b) for b in raw["boards"]], BoardSummary)

    async def stats(self, *, board_id: str | None = None, now_ms: int | None = None) -> BoardStats:
        """Counts by status and agent, the oldest ready card's age and the latest update."""
        return BoardStats._from(await self._n.stats(_IS_ASYNC, board_id, now_ms))

    async def change_revision(self) -> ChangeRevision:
        """The change revision; it also moves when another process commits."""
        return ChangeRevision._from(await self._n.change_revision(_IS_ASYNC))

    async def board_html(self, board_id: str | None = None) -> str:
        """An HTML table of a board's cards (for notebooks)."""
        return cards_html(await self.list(board_id=board_id))

    async def kanban(self, board_id: str | None = None, *, limit_per_status: int = 50) -> BoardView:
        """The board (every board when ``board_id`` is ``None``) as kanban columns: one per
        status in the workboard's order, each with its first ``limit_per_status`` (1..1000)
        unarchived cards in board order and its total of unarchived cards, all read in one
        transaction. Renders as columns side by side in Jupyter; ``to_pandas()`` gives one
        row per card shown."""
        limit = check_limit_per_status(limit_per_status)
        return BoardView._from(await self._n.kanban(_IS_ASYNC, board_id, limit))

    # -- notifications (durable event log with cursors) and planning --

    async def subscribe_notifications(
        self,
        *,
        board_id: str | None = None,
        card_id: str | None = None,
        session_key: str | None = None,
        run_id: str | None = None,
        target: str | None = None,
        event_kinds: Sequence[str] | str | None = None,
        subscription_id: str | None = None,
        now_ms: int | None = None,
    ) -> NotificationSubscription:
        """Subscribe to the notification log of a board (default ``"default"``), a card
        (on any board), a session or a run. At least one of ``card_id``, ``session_key``,
        ``run_id`` or ``target`` is required. ``event_kinds`` (a list or a comma-separated
        string) filters ``completed``, ``failed``, ``stale`` and ``status`` (every status
        transition); by default the first three. A new subscription starts at the
        beginning of the log; re-subscribing with an existing ``subscription_id``
        replaces its filters and keeps its cursor."""
        fields: dict[str, Any] = {
            k: v
            for k, v in (
                ("id", subscription_id), ("board_id", board_id), ("card_id", card_id),
                ("session_key", session_key), ("run_id", run_id), ("target", target),
            )
            if v is not None
        }
        if event_kinds is not None:
            fields["event_kinds"] = event_kinds if isinstance(event_kinds, str) else builtins.list(event_kinds)
        return NotificationSubscription._from(await self._n.subscribe_notifications(_IS_ASYNC, fields, now_ms))

    async def list_notification_subscriptions(
        self, *, board_id: str | None = None, card_id: str | None = None
    ) -> RecordList[NotificationSubscription]:
        """Subscriptions (of a board and/or a card), oldest first."""
        raw = await self._n.list_notification_subscriptions(_IS_ASYNC, board_id, card_id)
        return RecordList([NotificationSubscription._from(s) for s in raw["subscriptions"]], NotificationSubscription)

    async def delete_notification_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription; ``False`` if it did not exist."""
        return bool((await self._n.delete_notification_subscription(_IS_ASYNC, subscription_id))["deleted"])

    async def notification_events(
        self,
        *,
        subscription_id: str | None = None,
        board_id: str | None = None,
        card_id: str | None = None,
        limit: int | None = None,
    ) -> NotificationEvents:
        """Preview the next events (read-only: the cursor does not move). With
        ``subscription_id``: the subscription's events after its cursor; otherwise a
        card's or a board's events from the start. ``limit`` defaults to 50, clamped
        to 1..200. Events come in log order (commit order, across processes)."""
        raw = await self._n.notification_events(_IS_ASYNC, subscription_id, board_id, card_id, limit)
        return NotificationEvents._from(raw)

    async def advance_notification_events(
        self,
        subscription_id: str | None = None,
        *,
        limit: int | None = None,
        now_ms: int | None = None,
    ) -> NotificationEvents:
        """Take the subscription's next events and move its cursor past the last one,
        in one transaction: across calls and processes every event is delivered exactly
        once, in log order."""
        raw = await self._n.advance_notification_events(_IS_ASYNC, subscription_id, None, None, limit, now_ms)
        return NotificationEvents._from(raw)

    async def specify(
        self,
        card_id: str,
        *,
        summary: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
        **patch: Any,
    ) -> Card:
        """Clarify a ``triage`` / ``backlog`` / ``todo`` card: apply ``patch`` (the fields of
        :meth:`update`), move it to ``todo`` (any other requested status fails with
        ``specified cards must move to todo.``), keep ``summary`` as a comment and in
        ``automation.summary``; the last event is ``specified``."""
        fields = dict(patch)
        if summary is not None:
            fields["summary"] = summary
        raw = await self._n.specify(_IS_ASYNC, card_id, fields, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def decompose(
        self,
        card_id: str,
        children: Sequence[Mapping[str, Any]],
        *,
        summary: str | None = None,
        complete_parent: bool = True,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Decomposition:
        """Split a card into 1..20 children (dicts with the fields of :meth:`create`), each
        linked to it, inheriting its board and tenant, keyed ``<parent key>:child:<n>``
        when the parent has an idempotency key (an existing card with that key is
        reused and linked). By default the parent is completed with the children as
        ``created_card_ids``; ``complete_parent=False`` keeps it open (``triage`` /
        ``backlog`` move to ``todo``). One transaction: any error writes nothing."""
        fields: dict[str, Any] = {
            "children": children if isinstance(children, (str, bytes, Mapping)) else builtins.list(children),
            "complete_parent": complete_parent,
        }
        if summary is not None:
            fields["summary"] = summary
        raw = await self._n.decompose(_IS_ASYNC, card_id, fields, _scope(owner_id, token), now_ms)
        return Decomposition._from(raw)

    # -- hand-offs, operator recovery, dispatch, diagnostics, worker context --

    async def complete(
        self,
        card_id: str,
        *,
        summary: str | None = None,
        proof: Mapping[str, Any] | None = None,
        artifacts: Sequence[Mapping[str, Any]] | None = None,
        created_card_ids: Sequence[str] | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Complete a card: ``done``, claim cleared, running attempts ``succeeded``,
        failure count reset, the ``summary`` kept in full as a comment and in
        ``automation.summary``, ``proof`` (one dict) and ``artifacts`` appended, and a
        ``completed`` notification. ``created_card_ids`` must be children linked to this
        card (``created card is not linked to this card: <id>``). Dependency holds
        apply. With ``owner_id`` / ``token`` the caller must hold the claim; without
        them it acts as the operator."""
        fields: dict[str, Any] = {}
        if summary is not None:
            fields["summary"] = summary
        if proof is not None:
            fields["proof"] = proof
        if artifacts is not None:
            fields["artifacts"] = artifacts if isinstance(artifacts, (str, bytes, Mapping)) else builtins.list(artifacts)
        if created_card_ids is not None:
            fields["created_card_ids"] = (
                created_card_ids if isinstance(created_card_ids, str) else builtins.list(created_card_ids)
            )
        raw = await self._n.complete(_IS_ASYNC, card_id, fields, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def block(
        self,
        card_id: str,
        reason: str | None = None,
        *,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Block a card: ``blocked``, claim cleared, running attempts ``blocked`` with the
        ``reason`` (default ``Workboard card blocked.``, kept in full as a comment), one
        failure counted, a ``failed`` notification. Holds do not apply."""
        raw = await self._n.block(_IS_ASYNC, card_id, reason, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def unblock(
        self, card_id: str, *, owner_id: str | None = None, token: str | None = None, now_ms: int | None = None,
    ) -> Card:
        """Move a card back to ``todo``, clearing ``blocked_too_long`` and the stale marker."""
        return Card._from(await self._n.unblock(_IS_ASYNC, card_id, _scope(owner_id, token), now_ms))

    async def reassign(
        self,
        card_id: str,
        agent_id: str | None = None,
        *,
        status: str | None = None,
        reset_failures: bool = True,
        reason: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Reassign a card to ``agent_id`` (and move it to ``status``, holds enforced).
        Unless ``reset_failures=False`` the failure count and the ``blocked_too_long`` /
        ``repeated_failures`` diagnostics are cleared. A ``reason`` becomes a comment."""
        raw = await self._n.reassign(
            _IS_ASYNC, card_id, agent_id, status, reset_failures, reason, _scope(owner_id, token), now_ms
        )
        return Card._from(raw)

    async def reclaim(
        self,
        card_id: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Take a card back from its worker: claim cleared, a running execution removed,
        running attempts ``stopped`` with the ``reason`` (default ``Workboard claim
        reclaimed.``, kept as a comment); a ``running`` card goes to ``ready`` unless
        ``status`` is given (holds enforced). The failure count is unchanged."""
        raw = await self._n.reclaim(_IS_ASYNC, card_id, status, reason, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def promote(
        self,
        card_id: str,
        *,
        force: bool = False,
        reason: str | None = None,
        owner_id: str | None = None,
        token: str | None = None,
        now_ms: int | None = None,
    ) -> Card:
        """Move a card to ``ready`` (holds enforced unless ``force``), clearing
        ``stranded_ready``, ``blocked_too_long`` and the stale marker."""
        raw = await self._n.promote(_IS_ASYNC, card_id, force, reason, _scope(owner_id, token), now_ms)
        return Card._from(raw)

    async def dispatch(self, *, board_id: str | None = None, now_ms: int | None = None) -> DispatchResult:
        """One dispatch pass (every board, or only ``board_id``), in one transaction:
        promote due scheduled and dependency-ready cards, block running cards past their
        max runtime or whose claim expired more than 5 minutes ago, clear other expired
        claims, block unclaimed cards that exhausted their retry budget, count the pass
        on ready cards (``automation.dispatch_count``) and mark triage cards of
        auto-decompose boards for orchestration (up to the board's cap)."""
        return DispatchResult._from(await self._n.dispatch(_IS_ASYNC, now_ms, board_id))

    async def diagnostics(self, *, now_ms: int | None = None) -> DiagnosticsReport:
        """The diagnostics (``stranded_ready``, ``running_without_heartbeat``,
        ``blocked_too_long``, ``repeated_failures``, ``missing_proof``,
        ``orphaned_session``) every card has at ``now_ms``; writes nothing."""
        return DiagnosticsReport._from(await self._n.diagnostics(_IS_ASYNC, now_ms))

    async def refresh_diagnostics(self, *, now_ms: int | None = None) -> DiagnosticsReport:
        """Recompute and store every card's diagnostics (a kind seen again keeps its
        ``first_seen_at`` and counts up; kinds that no longer apply are dropped) without
        touching ``updated_at`` or the event history."""
        return DiagnosticsReport._from(await self._n.refresh_diagnostics(_IS_ASYNC, now_ms))

    async def build_worker_context(self, card_id: str, *, now_ms: int | None = None) -> str:
        """The bounded markdown brief a worker gets for a card: its fields, recent
        attempts, comments, proof, artifacts, attachments, worker protocol and logs,
        links, the results of its done parents, recent done work of its agent on its
        board, its automation and its active diagnostics."""
        return str(await self._n.build_worker_context(_IS_ASYNC, card_id, now_ms))

    # -- run cards on the worker pool --

    async def dispatch_to_queue(
        self,
        factory: Any,
        *,
        board_id: str | None = None,
        limit: int = 50,
        owner_id: str = "agent-factory",
        ttl_seconds: float | None = None,
        default_agent_id: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        now_ms: int | None = None,
    ) -> QueueDispatchResult:
        """Hand the ready cards (every board, or ``board_id``; urgent first, then by
        position; at most ``limit``) to the worker pool of ``factory``, which must be
        the factory this workboard was opened on (``Workboard(factory)``).

        Per card, in one transaction: claim it for ``owner_id`` (``ttl_seconds``,
        default 30 min) and enqueue one message to its agent (or
        ``default_agent_id``) in conversation ``workboard:<boardId>:<cardId>``, with
        the worker context as ``messageText`` and metadata ``workboardCardId``,
        ``workboardBoardId``, ``workboardClaimToken``. A card whose agent is
        missing, unknown or disabled is blocked; a card whose claim or enqueue fails
        is left unchanged and reported in ``failed``.

        The queue then settles the card in its own transactions: completing the
        message completes the card (summary ``Completed by worker <id>``); a dead
        letter (last failed attempt or expired lease) blocks it with the last error;
        a retry keeps it running and heartbeats its claim."""
        native = getattr(getattr(factory, "_n", None), "_native", None)
        if not isinstance(native, _native.NativeFactory):
            raise TypeError(f"factory must be a Factory or AsyncFactory, got {type(factory).__name__}")
        raw = await self._n.dispatch_to_queue(
            _IS_ASYNC, native, board_id, limit, owner_id, ttl_seconds, default_agent_id,
            priority, max_attempts, now_ms,
        )
        return QueueDispatchResult._from(raw)
