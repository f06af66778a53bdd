"""``factory.pool`` as an API: asyncio parity, config objects, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

import agent_factory as af
from agent_factory import AsyncFactory, Factory, FlyProvider, LocalProvider, ScalingPolicy, ValidationError
from agent_factory.testing import FakeFly
from helpers import payload, read_only

APP = "agent-factory-workers-test"


def fly(fake: FakeFly) -> FlyProvider:
    return FlyProvider(
        app_name=APP, image="img:1", region="iad", volume_name="data", api_token="fly-token",
        base_url=fake.base_url, timeout_ms=2_000, max_retries=1, backoff_ms=1, max_backoff_ms=5,
    )


def snapshot(path: Path) -> list[tuple[object, ...]]:
    with read_only(path) as db:
        return db.execute("SELECT * FROM workers ORDER BY worker_id").fetchall()


async def test_async_pool_matches_the_blocking_one(async_factory: AsyncFactory, fake_fly: FakeFly) -> None:
    await async_factory.agents.upsert_agent("support-agent", secrets_ref=[])
    await async_factory.queue.enqueue("c1", "support-agent", payload())
    report = await async_factory.pool.reconcile(provider=fly(fake_fly), scaling=ScalingPolicy(max_workers=2))
    assert isinstance(report, af.PoolReport)
    assert report.spawned == 1 and report.released is not None
    status = await async_factory.pool.status(provider=fly(fake_fly))
    assert isinstance(status, af.PoolStatus)
    assert [w.worker_id for w in status.workers] == report.spawned_worker_ids
    assert [m.name for m in status.machines] == report.spawned_worker_ids
    idle = await async_factory.pool.check_idle_shutdowns(provider=fly(fake_fly))
    assert idle.released is None and idle.stopped == idle.terminated == 0
    assert idle.next_check_scheduled is False
    cleanup = await async_factory.pool.fly_cleanup(provider=fly(fake_fly), poll_interval_ms=10)
    assert cleanup.machines_deleted == 1 and cleanup.volumes_deleted == 1


def test_report_is_a_readable_record(factory: Factory, fake_fly: FakeFly) -> None:
    report = factory.pool.check_idle_shutdowns(provider=fly(fake_fly))
    d = report.to_dict()
    assert d["spawned"] == 0 and d["errors"] == [] and d["released"] is None
    assert "PoolReport(" in repr(report) and "<table>" in report._repr_html_()


def test_config_objects_have_defaults_and_hide_the_token() -> None:
    assert ScalingPolicy().drain_timeout_ms == 900_000
    assert af.default_worker_command()[1:] == ["-m", "agent_factory", "worker"]
    assert LocalProvider().to_dict()["command"] == af.default_worker_command()
    assert "secret-token" not in repr(FlyProvider(api_token="secret-token"))
    assert FlyProvider(cpus=2).to_dict()["guest"] == {"cpus": 2}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"provider": "fly"}, TypeError, "LocalProvider, a FlyProvider or None"),
        ({"scaling": 5}, TypeError, "ScalingPolicy"),
        ({"scaling": ScalingPolicy(max_workers=-1)}, ValidationError, "scaling.max_workers"),
        ({"scaling": ScalingPolicy(drain_timeout_ms=0)}, ValidationError, "scaling.drain_timeout_ms"),
        ({"scaling": {"max_workers": 1, "bogus": 2}}, ValidationError, "bogus"),
        ({"provider": LocalProvider(command="python")}, TypeError, "command must be a list"),
        ({"provider": LocalProvider(env={"A": 1})}, TypeError, "env must map strings"),  # type: ignore[dict-item]
        ({"provider": LocalProvider(handler="no-colon")}, ValidationError, "module:function"),
        ({"provider": LocalProvider(stop_grace_ms=-1)}, ValidationError, "local.stop_grace_ms"),
        ({"provider": FlyProvider(app_name="a", api_token="t", timeout_ms=0)}, ValidationError, "fly.timeout_ms"),
        ({"provider": FlyProvider(app_name="a", api_token="t", max_retries=99)}, ValidationError, "fly.max_retries"),
        ({"provider": FlyProvider(app_name=" ", api_token="t")}, ValidationError, r"providerConfig\.appName"),
        ({"provider": FlyProvider(app_name="a")}, af.NotFoundError, "Missing Fly API token"),
        ({"workspace_id": " "}, ValidationError, "workspaceId"),
        ({"now_ms": -1}, ValidationError, "nowMs"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(
    factory: Factory, factory_path: Path, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    factory.agents.upsert_agent("support-agent", secrets_ref=[])
    factory.queue.enqueue("c1", "support-agent", payload())
    before = snapshot(factory_path)
    with pytest.raises(error, match=match):
        factory.pool.reconcile(**kwargs)  # type: ignore[arg-type]
    assert snapshot(factory_path) == before


def test_fly_cleanup_refuses_a_local_configuration(factory: Factory) -> None:
    factory.config.set_provider_config(af.ProviderConfig(kind="local"))
    with pytest.raises(af.InvalidStateError, match=r"^Fly cleanup requires a Fly provider configuration\.$"):
        factory.pool.fly_cleanup()
    factory.config.set_provider_config(af.ProviderConfig(kind="fly", app_name=""))
    with pytest.raises(ValidationError, match=r"^Fly cleanup requires a non-empty Fly app name\.$"):
        factory.pool.fly_cleanup()
    with pytest.raises(TypeError, match="FlyProvider"):
        factory.pool.fly_cleanup(provider=LocalProvider())  # type: ignore[arg-type]


def test_a_fly_spawn_needs_an_image_and_region(factory: Factory, fake_fly: FakeFly) -> None:
    factory.agents.upsert_agent("support-agent", secrets_ref=[])
    factory.queue.enqueue("c1", "support-agent", payload())
    provider = FlyProvider(app_name=APP, api_token="fly-token", base_url=fake_fly.base_url, max_retries=0)
    with pytest.raises(ValidationError, match=r"^Missing providerConfig\.image\."):
        factory.pool.reconcile(provider=provider)
    assert factory.workers.list() == [] and fake_fly.calls_to("POST") == []
