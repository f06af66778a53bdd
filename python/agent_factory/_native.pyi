"""Type stubs for the Rust extension ``agent_factory._native``.

This module is private: use ``agent_factory.Factory`` / ``AsyncFactory``. Every
``NativeFactory`` method that touches the database takes ``is_async`` first: with
``False`` it blocks (GIL released) and returns the result as plain dicts/lists;
with ``True`` it returns an awaitable of the same.
"""

import builtins
from types import TracebackType
from typing import Any, final

__all__ = [
    "NativeFactory",
    "ManualClock",
    "NativeHeartbeat",
    "NativeFlyMachines",
    "NativeControlLoop",
    "NativeWorkboard",
    "default_config",
    "can_transition",
    "retry_delay_ms",
    "metrics_counters",
    "set_core_log_level",
    "__version__",
]

__version__: str

@final
class ManualClock:
    """A clock that only moves when told to; share one between factories."""

    def __new__(cls, start_ms: int = 1767225600000) -> ManualClock: ...
    def now_ms(self) -> int: ...
    def set(self, ms: int) -> None: ...
    def advance(self, delta_ms: int) -> int: ...

def default_config() -> dict[str, Any]: ...
def can_transition(current: str, next: str) -> bool: ...
def retry_delay_ms(attempts: int, now_ms: int, policy: dict[str, Any] | None = None) -> int: ...
def metrics_counters() -> dict[str, Any]: ...
def set_core_log_level(level: str) -> None: ...

@final
class NativeHeartbeat:
    """Heartbeats of one lease on a Rust thread (never takes the GIL); wrapped by ``Heartbeats``."""

    @property
    def lost(self) -> bool: ...
    @property
    def beats(self) -> int: ...
    @property
    def running(self) -> bool: ...
    @property
    def last_error(self) -> str | None: ...
    def stop(self) -> dict[str, Any]: ...
    def status_dict(self) -> dict[str, Any]: ...
    def __enter__(self) -> NativeHeartbeat: ...
    def __exit__(
        self, _exc_type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> bool: ...

@final
class NativeControlLoop:
    """A pool control loop's state; wrapped by ``agent_factory.ControlLoop`` / ``AsyncControlLoop``."""

    @property
    def holder(self) -> str: ...
    def tick(
        self,
        is_async: bool,
        provider: dict[str, Any],
        scaling: dict[str, Any] | None = None,
        workspace_id: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def stop(self, is_async: bool) -> Any: ...

@final
class NativeFlyMachines:
    """Fly Machines client for one app; wrapped by ``agent_factory.fly.FlyMachines``."""

    def __new__(
        cls,
        app_name: str,
        api_token: str,
        base_url: str | None = None,
        timeout_ms: int = 30000,
        max_retries: int = 3,
        backoff_ms: int = 250,
        max_backoff_ms: int = 10000,
        retry_after_cap_ms: int = 30000,
        user_agent: str | None = None,
    ) -> NativeFlyMachines: ...
    @property
    def app_name(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    def check_access(self) -> None: ...
    def list_machines(self) -> list[dict[str, Any]]: ...
    def get_machine(self, machine_id: str) -> dict[str, Any] | None: ...
    def create_machine(self, spec: dict[str, Any]) -> dict[str, Any]: ...
    def cordon_machine(self, machine_id: str) -> dict[str, Any]: ...
    def stop_machine(self, machine_id: str) -> dict[str, Any]: ...
    def destroy_machine(self, machine_id: str) -> dict[str, Any]: ...
    def wait_for_state(
        self, machine_id: str, states: list[str], timeout_ms: int = 30000, poll_ms: int = 500
    ) -> dict[str, Any]: ...
    def list_volumes(self) -> list[dict[str, Any]]: ...
    def create_volume(self, name: str, region: str, size_gb: int) -> dict[str, Any]: ...
    def delete_volume(self, volume_id: str) -> dict[str, Any]: ...
    def cleanup(
        self,
        machine_concurrency: int = 6,
        volume_concurrency: int = 16,
        settle_timeout_ms: int = 30000,
        poll_interval_ms: int = 1000,
        volume_attempts: int = 3,
    ) -> dict[str, Any]: ...


@final
class NativeWorkboard:
    # -- workboard (agent_factory.Workboard) --
    def __new__(
        cls, path: str, durable: bool = False, journal_mode: str = "auto", clock: ManualClock | None = None,
        harden_dir: bool = True,
    ) -> NativeWorkboard: ...
    @staticmethod
    def from_factory(factory: NativeFactory) -> NativeWorkboard: ...
    def info(self) -> dict[str, Any]: ...
    def now_ms(self) -> int: ...
    def change_revision(self, is_async: bool) -> Any: ...
    def create(self, is_async: bool, fields: dict[str, Any], now_ms: int | None = None) -> Any: ...
    def get(self, is_async: bool, id: str) -> Any: ...
    def list(
        self, is_async: bool, board_id: str | None = None, statuses: builtins.list[str] | None = None,
        agent_id: str | None = None, archived: bool | None = None, limit: int | None = None,
        offset: int | None = None,
    ) -> Any: ...
    def update(self, is_async: bool, id: str, patch: dict[str, Any], now_ms: int | None = None) -> Any: ...
    def move_card(
        self, is_async: bool, id: str, status: str, position: int | None = None,
        scope_: dict[str, str] | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def bulk_update(
        self, is_async: bool, ids: builtins.list[str], patch: dict[str, Any] | None = None, archived: bool | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def archive(self, is_async: bool, id: str, archived: bool = True, now_ms: int | None = None) -> Any: ...
    def delete(self, is_async: bool, id: str, now_ms: int | None = None) -> Any: ...
    def export_cards(self, is_async: bool, now_ms: int | None = None) -> Any: ...
    def runs(self, is_async: bool, id: str) -> Any: ...
    def add_comment(
        self, is_async: bool, id: str, body: str, scope_: dict[str, str] | None = None, now_ms: int | None = None
    ) -> Any: ...
    def add_link(self, is_async: bool, id: str, link: dict[str, Any], now_ms: int | None = None) -> Any: ...
    def link_cards(
        self, is_async: bool, parent_id: str, child_id: str, scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def add_record(
        self, is_async: bool, id: str, kind: str, fields: dict[str, Any], scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def add_proof_with_artifact(
        self, is_async: bool, id: str, proof: dict[str, Any], artifact: dict[str, Any],
        scope_: dict[str, str] | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def add_attachment(
        self, is_async: bool, id: str, file_name: str | None, content: bytes | None = None,
        content_base64: str | None = None, mime_type: str | None = None, note: str | None = None,
        scope_: dict[str, str] | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def get_attachment(self, is_async: bool, attachment_id: str) -> Any: ...
    def list_attachments(self, is_async: bool, id: str) -> Any: ...
    def delete_attachment(
        self, is_async: bool, id: str, attachment_id: str, scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def claim(
        self, is_async: bool, id: str, owner_id: str, token: str | None = None, ttl_seconds: float | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def heartbeat(
        self, is_async: bool, id: str, token: str | None = None, owner_id: str | None = None,
        note: str | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def release_claim(
        self, is_async: bool, id: str, token: str | None = None, owner_id: str | None = None,
        status: str | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def promote_ready(self, is_async: bool, now_ms: int | None = None) -> Any: ...
    def upsert_board(self, is_async: bool, board: dict[str, Any], now_ms: int | None = None) -> Any: ...
    def archive_board(self, is_async: bool, id: str, archived: bool = True, now_ms: int | None = None) -> Any: ...
    def delete_board(self, is_async: bool, id: str) -> Any: ...
    def list_boards(self, is_async: bool) -> Any: ...
    def stats(self, is_async: bool, board_id: str | None = None, now_ms: int | None = None) -> Any: ...
    def kanban(self, is_async: bool, board_id: str | None, limit_per_status: int, now_ms: int | None = None) -> Any: ...
    # -- 2b: notifications and planning --
    def subscribe_notifications(self, is_async: bool, fields: dict[str, Any], now_ms: int | None = None) -> Any: ...
    def list_notification_subscriptions(
        self, is_async: bool, board_id: str | None = None, card_id: str | None = None,
    ) -> Any: ...
    def delete_notification_subscription(self, is_async: bool, id: str) -> Any: ...
    def notification_events(
        self, is_async: bool, subscription_id: str | None = None, board_id: str | None = None,
        card_id: str | None = None, limit: int | None = None,
    ) -> Any: ...
    def advance_notification_events(
        self, is_async: bool, subscription_id: str | None = None, board_id: str | None = None,
        card_id: str | None = None, limit: int | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def specify(
        self, is_async: bool, id: str, fields: dict[str, Any], scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def decompose(
        self, is_async: bool, id: str, fields: dict[str, Any], scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    # -- 2a: hand-offs, recovery, dispatch, diagnostics, worker context --
    def complete(
        self, is_async: bool, id: str, fields: dict[str, Any], scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def block(
        self, is_async: bool, id: str, reason: str | None = None, scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def unblock(self, is_async: bool, id: str, scope_: dict[str, str] | None = None, now_ms: int | None = None) -> Any: ...
    def reassign(
        self, is_async: bool, id: str, agent_id: str | None = None, status: str | None = None,
        reset_failures: bool | None = None, reason: str | None = None, scope_: dict[str, str] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def reclaim(
        self, is_async: bool, id: str, status: str | None = None, reason: str | None = None,
        scope_: dict[str, str] | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def promote(
        self, is_async: bool, id: str, force: bool = False, reason: str | None = None,
        scope_: dict[str, str] | None = None, now_ms: int | None = None,
    ) -> Any: ...
    def dispatch(self, is_async: bool, now_ms: int | None = None, board_id: str | None = None) -> Any: ...
    def diagnostics(self, is_async: bool, now_ms: int | None = None) -> Any: ...
    def refresh_diagnostics(self, is_async: bool, now_ms: int | None = None) -> Any: ...
    def build_worker_context(self, is_async: bool, id: str, now_ms: int | None = None) -> Any: ...
    # -- 3a: run cards on the worker pool --
    def dispatch_to_queue(
        self, is_async: bool, factory: NativeFactory, board_id: str | None = None, limit: int | None = None,
        owner_id: str | None = None, ttl_seconds: float | None = None, default_agent_id: str | None = None,
        priority: int | None = None, max_attempts: int | None = None, now_ms: int | None = None,
    ) -> Any: ...


@final
class NativeFactory:
    def __new__(
        cls,
        path: str,
        durable: bool = False,
        journal_mode: str = "auto",
        config: dict[str, Any] | None = None,
        clock: ManualClock | None = None,
        harden_dir: bool = False,
    ) -> NativeFactory: ...
    def info(self) -> dict[str, Any]: ...
    def now_ms(self) -> int: ...
    def get_config(self) -> dict[str, Any]: ...
    def set_config(self, config: dict[str, Any]) -> None: ...
    # agents
    def upsert_agent(
        self,
        is_async: bool,
        agent_key: str,
        version: str,
        secrets_ref: list[str],
        bot_identity: str | None,
        bridge_config: dict[str, Any] | None,
        enabled: bool,
        now_ms: int | None,
    ) -> Any: ...
    def get_agent(self, is_async: bool, agent_key: str) -> Any: ...
    def list_agents(self, is_async: bool, enabled: bool | None = None) -> Any: ...
    def set_agent_enabled(self, is_async: bool, agent_key: str, enabled: bool, now_ms: int | None = None) -> Any: ...
    # settings
    def message_config(self, is_async: bool) -> Any: ...
    def set_message_config(
        self,
        is_async: bool,
        system_prompt: str | None = None,
        telegram_attachment_retention_ms: int | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def provider_config(self, is_async: bool) -> Any: ...
    def set_provider_config(self, is_async: bool, config: dict[str, Any], now_ms: int | None = None) -> Any: ...
    # secrets
    def import_secret(
        self,
        is_async: bool,
        secret_ref: str,
        plaintext_value: str,
        metadata: dict[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def secret_status(self, is_async: bool, secret_refs: list[str]) -> Any: ...
    def list_secret_refs(self, is_async: bool) -> Any: ...
    def reveal_secret(self, is_async: bool, secret_ref: str) -> Any: ...
    # blobs
    def put_blob(self, is_async: bool, data: bytes) -> Any: ...
    def put_blob_file(self, is_async: bool, path: str) -> Any: ...
    def get_blob(self, is_async: bool, sha256: str) -> Any: ...
    def blob_path(self, sha256: str) -> str: ...
    def delete_blob(self, is_async: bool, sha256: str) -> Any: ...
    # queue
    def enqueue(
        self,
        is_async: bool,
        conversation_id: str,
        agent_key: str,
        payload: Any,
        priority: int | None = None,
        scheduled_for: int | None = None,
        max_attempts: int | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def enqueue_many(self, is_async: bool, items: list[dict[str, Any]], now_ms: int | None = None) -> Any: ...
    def claim(
        self,
        is_async: bool,
        worker_id: str,
        conversation_id: str | None = None,
        mode: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def heartbeat(self, is_async: bool, worker_id: str, message_id: str, lease_id: str, now_ms: int | None = None) -> Any: ...
    def complete(self, is_async: bool, worker_id: str, message_id: str, lease_id: str, now_ms: int | None = None) -> Any: ...
    def complete_and_claim(
        self,
        is_async: bool,
        worker_id: str,
        message_id: str,
        lease_id: str,
        conversation_id: str | None = None,
        mode: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def fail(
        self, is_async: bool, worker_id: str, message_id: str, lease_id: str, error: str, now_ms: int | None = None
    ) -> Any: ...
    def release_stuck_jobs(self, is_async: bool, limit: int = 100, now_ms: int | None = None) -> Any: ...
    def queue_stats(self, is_async: bool, now_ms: int | None = None) -> Any: ...
    def list_jobs(self, is_async: bool, status: str, limit: int) -> Any: ...
    def get_job(self, is_async: bool, message_id: str) -> Any: ...
    def requeue(self, is_async: bool, message_id: str, now_ms: int | None = None) -> Any: ...
    def conversation_counts(self, is_async: bool, now_ms: int | None = None) -> Any: ...
    def active_conversations(self, is_async: bool, limit: int, now_ms: int | None = None) -> Any: ...
    def has_queued_jobs(self, is_async: bool, conversation_id: str) -> Any: ...
    def list_conversation_jobs(self, is_async: bool, conversation_id: str, limit: int) -> Any: ...
    def conversation_view(self, is_async: bool, conversation_id: str, limit: int) -> Any: ...
    def append_conversation_messages(
        self,
        is_async: bool,
        conversation_id: str,
        messages: list[dict[str, Any]],
        workspace_id: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def hydrate(
        self,
        is_async: bool,
        worker_id: str,
        message_id: str,
        lease_id: str,
        workspace_id: str = ...,
        now_ms: int | None = None,
    ) -> Any: ...
    def operator_hydration_bundle(self, is_async: bool, message_id: str, workspace_id: str = ...) -> Any: ...
    # workers
    def upsert_worker_state(
        self,
        is_async: bool,
        worker_id: str,
        provider: str,
        status: str,
        load: int,
        mode: str | None = None,
        scheduled_shutdown_at: int | None = None,
        stopped_at: int | None = None,
        machine_id: str | None = None,
        app_name: str | None = None,
        region: str | None = None,
        volume_id: str | None = None,
        assignment: dict[str, Any] | None = None,
        clear_assignment: bool = False,
        clear_last_snapshot_id: bool = False,
        clear_machine_ref: bool = False,
        clear_volume_id: bool = False,
        stop_reason: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def get_worker(self, is_async: bool, worker_id: str) -> Any: ...
    def list_workers(self, is_async: bool, status: str | None = None, limit: int = 1000) -> Any: ...
    def control_state(self, is_async: bool, worker_id: str, touch: bool = False, now_ms: int | None = None) -> Any: ...
    def touch_worker(self, is_async: bool, worker_id: str, now_ms: int | None = None) -> Any: ...
    def worker_stats(self, is_async: bool) -> Any: ...
    # snapshots
    def prepare_snapshot_upload(
        self,
        is_async: bool,
        worker_id: str,
        workspace_id: str,
        agent_key: str,
        conversation_id: str | None,
        reason: str,
        now_ms: int | None = None,
    ) -> Any: ...
    def finalize_snapshot_upload(
        self, is_async: bool, worker_id: str, snapshot_id: str, sha256: str, size_bytes: int, now_ms: int | None = None
    ) -> Any: ...
    def fail_snapshot_upload(
        self, is_async: bool, worker_id: str, snapshot_id: str, error: str, now_ms: int | None = None
    ) -> Any: ...
    def upload_snapshot(
        self,
        is_async: bool,
        worker_id: str,
        workspace_id: str,
        agent_key: str,
        conversation_id: str | None,
        reason: str,
        data: bytes | None = None,
        path: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def latest_snapshot_for_restore(
        self, is_async: bool, workspace_id: str, agent_key: str, conversation_id: str | None, now_ms: int | None = None
    ) -> Any: ...
    def list_snapshots_for_conversation(
        self, is_async: bool, conversation_id: str | None, limit: int | None = None, now_ms: int | None = None
    ) -> Any: ...
    def list_snapshots_for_worker(
        self, is_async: bool, worker_id: str, limit: int | None = None, now_ms: int | None = None
    ) -> Any: ...
    def get_snapshot(self, is_async: bool, snapshot_id: str, now_ms: int | None = None) -> Any: ...
    def expire_old_snapshots(self, is_async: bool, limit: int = 100, now_ms: int | None = None) -> Any: ...
    def snapshot_directory(
        self,
        is_async: bool,
        worker_id: str,
        workspace_id: str,
        agent_key: str,
        conversation_id: str | None,
        reason: str,
        path: str,
        now_ms: int | None = None,
    ) -> Any: ...
    def restore_latest_snapshot(
        self,
        is_async: bool,
        workspace_id: str,
        agent_key: str,
        conversation_id: str | None,
        path: str,
        mode: str = "replace",
        now_ms: int | None = None,
    ) -> Any: ...
    def restore_snapshot(
        self, is_async: bool, snapshot_id: str, path: str, mode: str = "replace", now_ms: int | None = None
    ) -> Any: ...
    # worker runtime
    def start_heartbeats(self, worker_id: str, message_id: str, lease_id: str, interval_ms: int) -> NativeHeartbeat: ...
    # pool
    def pool_reconcile(
        self,
        is_async: bool,
        provider: dict[str, Any],
        scaling: dict[str, Any] | None = None,
        workspace_id: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def pool_check_idle_shutdowns(
        self, is_async: bool, provider: dict[str, Any], scaling: dict[str, Any] | None = None, now_ms: int | None = None
    ) -> Any: ...
    def pool_status(self, is_async: bool, provider: dict[str, Any]) -> Any: ...
    def pool_control_loop(
        self,
        holder: str | None = None,
        lease_ttl_ms: int = 30000,
        workspace_id: str | None = None,
        idle_check_interval_ms: int = 60000,
        sweep_interval_ms: int = 60000,
    ) -> NativeControlLoop: ...
    def pool_fly_cleanup(
        self,
        is_async: bool,
        provider: dict[str, Any],
        machine_concurrency: int = 6,
        volume_concurrency: int = 16,
        settle_timeout_ms: int = 30000,
        poll_interval_ms: int = 1000,
        volume_attempts: int = 3,
    ) -> Any: ...

    # -- identity (factory.identity) --
    def bind_user_agent(
        self,
        is_async: bool,
        consumer_user_id: str,
        agent_key: str,
        bot_identity: str | None = None,
        source: str | None = None,
        telegram_user_id: str | None = None,
        telegram_chat_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def revoke_user_agent_binding(self, is_async: bool, consumer_user_id: str, now_ms: int | None = None) -> Any: ...
    def resolve_agent_for_user(self, is_async: bool, consumer_user_id: str) -> Any: ...
    def resolve_agent_for_telegram(
        self,
        is_async: bool,
        bot_identity: str | None = None,
        telegram_user_id: str | None = None,
        telegram_chat_id: str | None = None,
    ) -> Any: ...
    def get_user_agent_binding(self, is_async: bool, consumer_user_id: str) -> Any: ...
    def list_user_bindings(self, is_async: bool, consumer_user_id: str, limit: int = 100) -> Any: ...
    def create_pairing_code(
        self, is_async: bool, consumer_user_id: str, agent_key: str, ttl_ms: int | None = None, now_ms: int | None = None
    ) -> Any: ...
    def consume_pairing_code(
        self,
        is_async: bool,
        code: str,
        bot_identity: str | None,
        telegram_user_id: str,
        telegram_chat_id: str,
        now_ms: int | None = None,
    ) -> Any: ...
    def pairing_code_status(self, is_async: bool, code: str, now_ms: int | None = None) -> Any: ...
    def list_user_agents(
        self, is_async: bool, consumer_user_id: str, include_disabled: bool = True, now_ms: int | None = None
    ) -> Any: ...
    def get_user_agent(self, is_async: bool, consumer_user_id: str, agent_key: str, now_ms: int | None = None) -> Any: ...
    def active_user_agent(self, is_async: bool, consumer_user_id: str, now_ms: int | None = None) -> Any: ...
    def user_agents_overview(self, is_async: bool, consumer_user_id: str, now_ms: int | None = None) -> Any: ...
    def create_user_agent_pairing(
        self, is_async: bool, consumer_user_id: str, agent_key: str, ttl_ms: int | None = None, now_ms: int | None = None
    ) -> Any: ...
    def user_agent_pairing_status(
        self, is_async: bool, consumer_user_id: str, agent_key: str, now_ms: int | None = None
    ) -> Any: ...
    def list_queue_items_for_user_agent(
        self,
        is_async: bool,
        consumer_user_id: str,
        agent_key: str,
        statuses: list[str] | None = None,
        limit: int = 100,
    ) -> Any: ...
    def list_queue_items_for_conversation(self, is_async: bool, conversation_id: str, limit: int = 100) -> Any: ...
    def user_agent_conversation_view(
        self, is_async: bool, consumer_user_id: str, agent_key: str, limit: int = 100
    ) -> Any: ...
    def send_message_to_user_agent(
        self,
        is_async: bool,
        consumer_user_id: str,
        agent_key: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def list_snapshots_for_user_agent(
        self,
        is_async: bool,
        consumer_user_id: str,
        agent_key: str,
        limit: int | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def latest_snapshot_for_user_agent(
        self, is_async: bool, consumer_user_id: str, agent_key: str, now_ms: int | None = None
    ) -> Any: ...

    # -- templates (factory.templates) --
    def create_message_template(
        self,
        is_async: bool,
        title: str,
        text: str,
        tags: list[str],
        actor_user_id: str,
        enabled: bool = True,
        now_ms: int | None = None,
    ) -> Any: ...
    def update_message_template(
        self,
        is_async: bool,
        template_id: str,
        actor_user_id: str,
        title: str | None = None,
        text: str | None = None,
        tags: list[str] | None = None,
        enabled: bool | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def delete_message_template(self, is_async: bool, template_id: str) -> Any: ...
    def get_message_template(self, is_async: bool, template_id: str) -> Any: ...
    def list_message_templates(self, is_async: bool, include_disabled: bool = False, limit: int = 100) -> Any: ...
    def send_message_template_to_user_agent(
        self,
        is_async: bool,
        consumer_user_id: str,
        agent_key: str,
        template_id: str,
        metadata: dict[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...

    # -- push (factory.push) --
    def push_next_run_at(self, is_async: bool, schedule: dict[str, Any], timezone: str, after_ms: int) -> Any: ...
    def push_create_template(
        self,
        is_async: bool,
        company_id: str,
        template_key: str,
        title: str,
        text: str,
        periodicity: str,
        suggested_times: list[dict[str, Any]],
        enabled: bool,
        actor_user_id: str,
        now_ms: int | None = None,
    ) -> Any: ...
    def push_update_template(
        self,
        is_async: bool,
        template_id: str,
        actor_user_id: str,
        title: str | None = None,
        text: str | None = None,
        periodicity: str | None = None,
        suggested_times: list[dict[str, Any]] | None = None,
        enabled: bool | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def push_delete_template(self, is_async: bool, template_id: str) -> Any: ...
    def push_get_template(self, is_async: bool, template_id: str) -> Any: ...
    def push_list_templates(self, is_async: bool, company_id: str, include_disabled: bool) -> Any: ...
    def push_create_job(
        self,
        is_async: bool,
        company_id: str,
        consumer_user_id: str,
        title: str,
        text: str,
        timezone: str,
        schedule: dict[str, Any],
        periodicity: str | None,
        enabled: bool,
        agent_key: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def push_create_job_from_template(
        self,
        is_async: bool,
        company_id: str,
        consumer_user_id: str,
        template_id: str,
        timezone: str,
        schedule: dict[str, Any] | None,
        enabled: bool,
        agent_key: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def push_update_job(
        self,
        is_async: bool,
        job_id: str,
        title: str | None = None,
        text: str | None = None,
        periodicity: str | None = None,
        timezone: str | None = None,
        schedule: dict[str, Any] | None = None,
        enabled: bool | None = None,
        agent_key: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def push_set_job_enabled(
        self, is_async: bool, job_id: str, enabled: bool, agent_key: str | None = None, now_ms: int | None = None
    ) -> Any: ...
    def push_delete_job(self, is_async: bool, job_id: str, agent_key: str | None = None) -> Any: ...
    def push_get_job(self, is_async: bool, job_id: str, agent_key: str | None = None) -> Any: ...
    def push_list_jobs_for_user(self, is_async: bool, consumer_user_id: str, include_disabled: bool) -> Any: ...
    def push_list_jobs_for_agent(
        self, is_async: bool, consumer_user_id: str, agent_key: str, include_disabled: bool
    ) -> Any: ...
    def push_trigger_now(
        self, is_async: bool, job_id: str, agent_key: str | None = None, now_ms: int | None = None
    ) -> Any: ...
    def push_dispatch_due(self, is_async: bool, limit: int | None = None, now_ms: int | None = None) -> Any: ...
    def push_list_dispatches(self, is_async: bool, job_id: str, limit: int | None = None) -> Any: ...
    def push_list_dispatches_for_agent(
        self, is_async: bool, consumer_user_id: str, agent_key: str, limit: int | None = None
    ) -> Any: ...
    def push_send_broadcast(
        self, is_async: bool, company_id: str, title: str, text: str, requested_by: str, now_ms: int | None = None
    ) -> Any: ...
    def push_get_broadcast(self, is_async: bool, broadcast_id: str) -> Any: ...
    def push_list_broadcasts(self, is_async: bool, company_id: str, limit: int | None = None) -> Any: ...
    def push_list_broadcast_dispatches(
        self, is_async: bool, broadcast_id: str, status: str | None = None, limit: int | None = None
    ) -> Any: ...
    def push_user_agent_push_stats(self, is_async: bool, consumer_user_id: str, agent_key: str) -> Any: ...
    def push_user_agent_conversation_stats(self, is_async: bool, consumer_user_id: str, agent_key: str) -> Any: ...
    def push_user_agent_usage_stats(self, is_async: bool, consumer_user_id: str, agent_key: str) -> Any: ...

    # -- telegram (factory.telegram) --
    def telegram_api_config(self, is_async: bool) -> Any: ...
    def set_telegram_api_config(self, is_async: bool, changes: dict[str, Any], now_ms: int | None = None) -> Any: ...
    def ingest_telegram_update(
        self,
        is_async: bool,
        update: dict[str, Any] | str | bytes,
        agent_key: str | None = None,
        bot_identity: str | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def handle_telegram_webhook(
        self, is_async: bool, body: bytes | str, secret_token: str | None, agent_key: str, now_ms: int | None = None
    ) -> Any: ...
    def configure_telegram_webhook(
        self, is_async: bool, agent_key: str, public_base_url: str, path: str, now_ms: int | None = None
    ) -> Any: ...
    def telegram_webhook_status(self, is_async: bool, agent_key: str, now_ms: int | None = None) -> Any: ...
    def delete_telegram_webhook(
        self, is_async: bool, agent_key: str, drop_pending_updates: bool = False, now_ms: int | None = None
    ) -> Any: ...
    def import_telegram_token(
        self,
        is_async: bool,
        consumer_user_id: str,
        agent_key: str,
        token: str,
        metadata: dict[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> Any: ...
    def reconcile_telegram_bot_identity(
        self, is_async: bool, agent_key: str, secret_ref: str | None = None, now_ms: int | None = None
    ) -> Any: ...
    def telegram_onboarding_state(
        self, is_async: bool, consumer_user_id: str, agent_key: str, now_ms: int | None = None
    ) -> Any: ...
    def telegram_readiness(self, is_async: bool, consumer_user_id: str, agent_key: str) -> Any: ...
    def provider_readiness(self, is_async: bool) -> Any: ...
    def expire_old_telegram_attachments(self, is_async: bool, limit: int = 100, now_ms: int | None = None) -> Any: ...
    # -- metrics (factory.metrics) --
    def metrics(self, is_async: bool, now_ms: int | None = None) -> Any: ...
