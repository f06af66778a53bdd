"""The Fly Machines provider over real HTTP against FakeFly on loopback.

Covers every provider call, the state mapping, retries (429 with Retry-After,
5xx, timeouts) counted from the fake's call log, the error classification
(404 → already gone, 412 → deferred, 500 never gone), token hygiene, lost
answers on creates, and cleanup reports — including that injected faults never
leave a machine or volume behind unreported.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from agent_factory import FlyMachines, ProviderError, ValidationError
from agent_factory.testing import FakeFly

APP = "agent-factory-workers-test"
MACHINE = r"/apps/[^/]+/machines/[^/]+"
MACHINES = r"/apps/[^/]+/machines"
VOLUME = r"/apps/[^/]+/volumes/[^/]+"
VOLUMES = r"/apps/[^/]+/volumes"


def client(fake: FakeFly, **kw: int | str) -> FlyMachines:
    """A client with tiny backoffs so retry tests stay fast."""
    options: dict[str, int | str] = {"timeout_ms": 2_000, "max_retries": 3, "backoff_ms": 1, "max_backoff_ms": 5}
    options.update(kw)
    return FlyMachines(fake.app_name, fake.token, base_url=fake.base_url, **options)  # type: ignore[arg-type]


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def statuses(fake: FakeFly, method: str, pattern: str) -> list[int]:
    return [c.status for c in fake.calls_to(method, pattern)]


@pytest.fixture
def fly(fake_fly: FakeFly) -> FlyMachines:
    return client(fake_fly)


@pytest.fixture
def slow_fake() -> Iterator[FakeFly]:
    with FakeFly(start_delay=0.3, stop_delay=0.3) as fake:
        yield fake


# --- calls, shapes and states -------------------------------------------------


def test_access_check_and_repr(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fly.check_access()
    assert fake_fly.calls[-1].path == f"/apps/{APP}" and fake_fly.calls[-1].status == 200
    assert fly.app_name == APP
    assert fly.base_url == fake_fly.base_url
    assert fake_fly.token not in repr(fly)


def test_create_machine_sends_the_spec_shape_and_mounts_the_volume(fake_fly: FakeFly, fly: FlyMachines) -> None:
    vol = fly.create_volume("openclaw_data_ab12", region="iad", size_gb=10)
    assert (vol.name, vol.region, vol.size_gb, vol.attached_machine_id) == ("openclaw_data_ab12", "iad", 10, None)
    machine = fly.create_machine(
        "afw-1", image="registry.fly.io/app:1", region="iad", env={"WORKER_ID": "afw-1", "X": "y"}, volume_id=vol.id
    )
    assert machine.name == "afw-1"
    assert machine.volume_ids == [vol.id]
    assert machine.state == "created" and machine.status == "active"

    sent = fake_fly.calls_to("POST", MACHINES)[0].body
    assert sent == {
        "name": "afw-1",
        "region": "iad",
        "config": {
            "image": "registry.fly.io/app:1",
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 2048},
            "env": {"AGENT_FACTORY_WORKER_ID": "afw-1", "WORKER_ID": "afw-1", "X": "y"},
            "mounts": [{"volume": vol.id, "path": "/data"}],
        },
    }
    held = fake_fly.machines[machine.id]
    assert held.env["AGENT_FACTORY_WORKER_ID"] == "afw-1"
    assert held.mounts == [{"volume": vol.id, "path": "/data"}]
    assert fake_fly.volumes[vol.id].attached_machine_id == machine.id
    assert fake_fly.calls_to("POST", VOLUMES)[0].body == {"name": "openclaw_data_ab12", "region": "iad", "size_gb": 10}


def test_list_and_get_report_volume_ids_and_images(fake_fly: FakeFly, fly: FlyMachines) -> None:
    vol = fake_fly.add_volume("data")
    m = fake_fly.add_machine("worker-7", image="img:7", volume_id=vol.id)
    [listed] = fly.list_machines()
    assert (listed.id, listed.name, listed.region, listed.image) == (m.id, "worker-7", "iad", "img:7")
    assert listed.volume_ids == [vol.id]
    got = fly.get_machine(m.id)
    assert got == listed
    assert fly.get_machine("nope") is None
    [v] = fly.list_volumes()
    assert (v.id, v.attached_machine_id) == (vol.id, m.id)


def test_machine_states_progress_and_map_to_status(slow_fake: FakeFly) -> None:
    fly = client(slow_fake)
    m = fly.create_machine("w1", image="img", region="iad")
    assert (m.state, m.status) == ("created", "active")
    assert fly.wait_for_state(m.id, "started", timeout_ms=5_000, poll_ms=20).done
    assert fly.get_machine(m.id).state == "started"  # type: ignore[union-attr]

    assert fly.stop_machine(m.id).done
    stopping = fly.get_machine(m.id)
    assert stopping is not None and (stopping.state, stopping.status) == ("stopping", "stopped")
    assert fly.destroy_machine(m.id).deferred, "not stopped yet"
    assert fly.wait_for_state(m.id, ["stopped"], timeout_ms=5_000, poll_ms=20).done
    assert fly.destroy_machine(m.id).done
    assert fly.get_machine(m.id) is None
    assert slow_fake.machines[m.id].state == "destroyed"
    assert fly.list_machines() == []
    assert fly.wait_for_state(m.id, "stopped", timeout_ms=100).already_gone


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("creating", "active"),
        ("created", "active"),
        ("starting", "active"),
        ("started", "active"),
        ("restarting", "active"),
        ("updating", "active"),
        ("replacing", "active"),
        ("stopping", "stopped"),
        ("stopped", "stopped"),
        ("suspending", "stopped"),
        ("suspended", "stopped"),
        ("destroying", "stopped"),
        ("launch_failed", "stopped"),
        ("failed", "stopped"),
        ("replaced", "stopped"),
        ("migrated", "stopped"),
        ("something-new", "stopped"),
    ],
)
def test_state_mapping(fake_fly: FakeFly, fly: FlyMachines, state: str, status: str) -> None:
    fake_fly.add_machine("w", state=state)
    [m] = fly.list_machines()
    assert (m.state, m.status) == (state, status)


def test_wait_for_state_times_out_as_deferred(fake_fly: FakeFly, fly: FlyMachines) -> None:
    m = fake_fly.add_machine("w", state="started")
    out = fly.wait_for_state(m.id, "stopped", timeout_ms=50, poll_ms=10)
    assert out.deferred and "still 'started'" in (out.message or "").replace('"', "'")


# --- retries -------------------------------------------------------------------


def test_5xx_is_retried_until_success(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fake_fly.add_machine("w")
    fake_fly.fail_next("GET", MACHINES, 503, times=2)
    assert len(fly.list_machines()) == 1
    assert statuses(fake_fly, "GET", MACHINES) == [503, 503, 200]


def test_retries_are_bounded_and_the_error_says_so(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, max_retries=2)
    fake_fly.fail_next("GET", MACHINES, 500, times=10)
    with pytest.raises(ProviderError) as info:
        fly.list_machines()
    err = info.value
    assert str(err) == (
        f'Fly API GET /apps/{APP}/machines failed: 500 {{"error": "internal server error"}} (after 3 attempts)'
    )
    assert (err.status, err.retryable, err.kind) == (500, True, "http")  # type: ignore[attr-defined]
    assert statuses(fake_fly, "GET", MACHINES) == [500, 500, 500]


def test_429_honours_retry_after(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fake_fly.fail_next("GET", VOLUMES, 429, retry_after=0.3)
    assert fly.list_volumes() == []
    first, second = fake_fly.calls_to("GET", VOLUMES)
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.25, "waited at least the server's Retry-After"


def test_retry_after_is_capped(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, retry_after_cap_ms=20)
    fake_fly.fail_next("GET", VOLUMES, 429, retry_after=600)
    started = time.monotonic()
    assert fly.list_volumes() == []
    assert time.monotonic() - started < 60, "a 10-minute Retry-After is capped"
    assert statuses(fake_fly, "GET", VOLUMES) == [429, 200]


def test_client_errors_are_not_retried(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fake_fly.fail_next("GET", MACHINES, 400, body={"error": "bad request"})
    with pytest.raises(ProviderError) as info:
        fly.list_machines()
    assert info.value.retryable is False  # type: ignore[attr-defined]
    assert statuses(fake_fly, "GET", MACHINES) == [400]


def test_a_timeout_is_retried(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, timeout_ms=300)
    fake_fly.add_machine("w")
    fake_fly.delay_next("GET", MACHINES, 1.0)
    assert len(fly.list_machines()) == 1
    wait_until(lambda: len(fake_fly.calls_to("GET", MACHINES)) == 2)


def test_timeouts_exhaust_retries_as_a_transport_error(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, timeout_ms=200, max_retries=1)
    fake_fly.delay_next("GET", MACHINES, 1.0, times=5)
    with pytest.raises(ProviderError) as info:
        fly.list_machines()
    err = info.value
    assert str(err) == f"Fly API GET /apps/{APP}/machines failed: timed out after 200 ms (after 2 attempts)"
    assert (err.status, err.retryable, err.kind) == (None, True, "transport")  # type: ignore[attr-defined]


def test_calls_release_the_gil(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fake_fly.delay_next("GET", MACHINES, 0.5)
    worker = threading.Thread(target=fly.list_machines)
    worker.start()
    time.sleep(0.05)
    spins, until = 0, time.monotonic() + 0.2
    while time.monotonic() < until:
        spins += 1
    worker.join()
    assert spins > 10_000, "the main thread ran while the call was waiting on the network"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_use_the_client(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fly.list_machines()  # the parent's HTTP client is up and running
    pid = os.fork()
    if pid == 0:  # child: the parent's client thread does not exist here
        try:
            fly.list_machines()
            os._exit(0)
        except BaseException:
            os._exit(1)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on its first call")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(fake_fly.calls_to("GET", MACHINES)) == 2


# --- classification --------------------------------------------------------------


def test_not_found_is_already_gone(fake_fly: FakeFly, fly: FlyMachines) -> None:
    assert fly.cordon_machine("missing").already_gone
    assert fly.stop_machine("missing").already_gone
    assert fly.destroy_machine("missing").already_gone
    assert fly.delete_volume("vol_missing").already_gone
    fake_fly.fail_next("DELETE", MACHINE, 404, body={"error": "unknown machine"})
    m = fake_fly.add_machine("w", state="stopped")
    assert fly.destroy_machine(m.id).already_gone


def test_precondition_failures_are_deferred(fake_fly: FakeFly, fly: FlyMachines) -> None:
    vol = fake_fly.add_volume("data")
    m = fake_fly.add_machine("w", state="started", volume_id=vol.id)
    out = fly.destroy_machine(m.id)
    assert out.deferred and "failed_precondition" in (out.message or "")
    assert fly.delete_volume(vol.id).deferred, "attached to a live machine"
    fake_fly.fail_next("POST", MACHINE + "/cordon", 412)
    assert fly.cordon_machine(m.id).deferred
    assert statuses(fake_fly, "POST", MACHINE + "/cordon") == [412], "deferred is not retried"
    assert m.id in fake_fly.live_machines() and vol.id in fake_fly.volumes


@pytest.mark.parametrize(
    "body", [{"error": "internal server error"}, {"error": "machine not found"}, "does not exist", ""]
)
def test_a_500_is_never_taken_for_gone(fake_fly: FakeFly, body: object) -> None:
    fly = client(fake_fly, max_retries=1)
    m = fake_fly.add_machine("w", state="stopped")
    for method, pattern in [("DELETE", MACHINE), ("GET", MACHINE), ("POST", MACHINE + "/stop")]:
        fake_fly.fail_next(method, pattern, 500, body=body, times=2)
    with pytest.raises(ProviderError) as info:
        fly.destroy_machine(m.id)
    assert info.value.status == 500  # type: ignore[attr-defined]
    with pytest.raises(ProviderError):
        fly.get_machine(m.id)
    with pytest.raises(ProviderError):
        fly.stop_machine(m.id)
    assert m.id in fake_fly.live_machines()


def test_a_wrong_app_or_base_url_is_an_error_not_gone(fake_fly: FakeFly) -> None:
    wrong_app = FlyMachines("another-app", fake_fly.token, base_url=fake_fly.base_url, backoff_ms=1)
    with pytest.raises(ProviderError, match="app not found"):
        wrong_app.destroy_machine("m1")
    wrong_path = FlyMachines(APP, fake_fly.token, base_url=fake_fly.base_url[: -len("/v1")], backoff_ms=1)
    with pytest.raises(ProviderError, match="404 page not found"):
        wrong_path.delete_volume("vol_1")


def test_a_bad_token_is_a_401_that_is_not_retried_and_not_echoed(fake_fly: FakeFly) -> None:
    fly = FlyMachines(APP, "wrong-token-123", base_url=fake_fly.base_url, backoff_ms=1)
    with pytest.raises(ProviderError) as info:
        fly.check_access()
    assert info.value.status == 401 and info.value.retryable is False  # type: ignore[attr-defined]
    assert "wrong-token-123" not in str(info.value)
    assert statuses(fake_fly, "GET", f"/apps/{APP}") == [401]


def test_the_token_never_appears_in_errors(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fake_fly.fail_next("GET", VOLUMES, 403, body=f"denied for Bearer {fake_fly.token}")
    with pytest.raises(ProviderError) as info:
        fly.list_volumes()
    assert fake_fly.token not in str(info.value) and "[redacted]" in str(info.value)
    closed = FlyMachines(APP, fake_fly.token, base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(ProviderError) as info:
        closed.list_machines()
    assert fake_fly.token not in str(info.value)
    assert info.value.kind == "transport"  # type: ignore[attr-defined]
    assert fake_fly.token not in repr(closed)


def test_bad_input_is_a_validation_error_and_sends_nothing(fake_fly: FakeFly, fly: FlyMachines) -> None:
    with pytest.raises(ValidationError, match="Fly app name is required"):
        FlyMachines(" ", "t0ken")
    with pytest.raises(ValidationError, match="token is required"):
        FlyMachines(APP, "  ")
    with pytest.raises(ValidationError, match="timeout_ms"):
        FlyMachines(APP, "t0ken", timeout_ms=0)
    with pytest.raises(ValidationError, match="max_retries"):
        FlyMachines(APP, "t0ken", max_retries=-1)
    with pytest.raises(ValidationError, match="base_url"):
        FlyMachines(APP, "t0ken", base_url="ftp://example.com")
    with pytest.raises(ValidationError, match="not a valid path segment"):
        fly.destroy_machine("..")
    with pytest.raises(ValidationError, match="volume name"):
        fly.create_volume("Bad Name", region="iad", size_gb=1)
    with pytest.raises(ValidationError, match="size_gb"):
        fly.create_volume("data", region="iad", size_gb=0)
    with pytest.raises(ValidationError, match="image"):
        fly.create_machine("w1", image=" ")
    with pytest.raises(ValidationError, match="mount path"):
        fly.create_machine("w1", image="img", volume_id="vol_1", volume_path="data")
    assert fake_fly.calls == []


# --- lost answers on creates ---------------------------------------------------------


def test_a_lost_create_machine_answer_is_recovered_not_repeated(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fake_fly.fail_next("POST", MACHINES, 500, after_apply=True)
    m = fly.create_machine("afw-lost", image="img", region="iad")
    live = fake_fly.live_machines()
    assert list(live) == [m.id] and live[m.id].name == "afw-lost"
    assert statuses(fake_fly, "POST", MACHINES) == [500], "found by name, not created twice"


def test_a_create_machine_that_times_out_leaves_one_machine(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, timeout_ms=300)
    fake_fly.delay_next("POST", MACHINES, 1.0)
    m = fly.create_machine("afw-slow", image="img", region="iad")
    wait_until(lambda: len(fake_fly.calls_to("POST", MACHINES)) == 2)
    assert sorted(statuses(fake_fly, "POST", MACHINES)) == [200, 409], "the late create hit the unique name"
    assert list(fake_fly.live_machines()) == [m.id]


def test_a_taken_name_returns_the_existing_machine(fake_fly: FakeFly, fly: FlyMachines) -> None:
    existing = fake_fly.add_machine("afw-again", state="started")
    m = fly.create_machine("afw-again", image="img", region="iad")
    assert m.id == existing.id
    assert statuses(fake_fly, "POST", MACHINES) == [409]
    assert list(fake_fly.live_machines()) == [existing.id]


def test_a_lost_destroy_answer_is_retried_into_already_gone(fake_fly: FakeFly, fly: FlyMachines) -> None:
    m = fake_fly.add_machine("w", state="stopped")
    fake_fly.fail_next("DELETE", MACHINE, 500, after_apply=True)
    assert fly.destroy_machine(m.id).already_gone
    assert statuses(fake_fly, "DELETE", MACHINE) == [500, 404]
    assert fake_fly.live_machines() == {}


def test_a_lost_create_volume_answer_adopts_the_volume(fake_fly: FakeFly, fly: FlyMachines) -> None:
    fake_fly.fail_next("POST", VOLUMES, 502, after_apply=True)
    v = fly.create_volume("openclaw_data_x", region="iad", size_gb=3)
    assert list(fake_fly.volumes) == [v.id]
    assert statuses(fake_fly, "POST", VOLUMES) == [502]


# --- cleanup -------------------------------------------------------------------------


def seed_app(fake: FakeFly) -> tuple[list[str], list[str]]:
    """Two machines (one running with a volume) and three volumes."""
    v1, v2, v3 = (fake.add_volume(f"data_{i}").id for i in range(3))
    m1 = fake.add_machine("worker-1", state="started", volume_id=v1).id
    m2 = fake.add_machine("worker-2", state="stopped").id
    return [m1, m2], [v1, v2, v3]


def test_cleanup_destroys_machines_and_volumes_with_final_verification(fake_fly: FakeFly, fly: FlyMachines) -> None:
    """Provider half of seed: runFlyCleanup should destroy machines and volumes with final verification"""
    machines, volumes = seed_app(fake_fly)
    report = fly.cleanup()
    assert report.app_name == APP
    assert (report.machines_found, report.machines_deleted, report.machines_remaining) == (2, 2, 0)
    assert (report.volumes_found, report.volumes_deleted, report.volumes_remaining) == (3, 3, 0)
    assert sorted(report.machine_ids_deleted) == sorted(machines)
    assert sorted(report.volume_ids_deleted) == sorted(volumes)
    assert report.machine_ids_remaining == [] and report.volume_ids_remaining == []
    assert report.errors == [] and report.warnings == []
    assert fake_fly.live_machines() == {} and fake_fly.volumes == {}
    assert set(report.to_dict()) >= {"machines_found", "volume_ids_remaining", "warnings", "errors"}

    calls = [(c.method, c.path) for c in fake_fly.calls]
    assert calls[:2] == [("GET", f"/apps/{APP}"), ("GET", f"/apps/{APP}/machines")]
    for mid in machines:
        steps = [c for c in calls if c[1].startswith(f"/apps/{APP}/machines/{mid}")]
        assert steps == [
            ("POST", f"/apps/{APP}/machines/{mid}/cordon"),
            ("POST", f"/apps/{APP}/machines/{mid}/stop"),
            ("DELETE", f"/apps/{APP}/machines/{mid}"),
        ]
    assert [c for c in calls if c[0] == "GET"][2:] == [
        ("GET", f"/apps/{APP}/machines"),
        ("GET", f"/apps/{APP}/volumes"),
        ("GET", f"/apps/{APP}/volumes"),
    ]


def test_cleanup_of_an_empty_app(fake_fly: FakeFly, fly: FlyMachines) -> None:
    report = fly.cleanup(machine_concurrency=0, volume_concurrency=0)
    assert (report.machines_found, report.volumes_found, report.warnings, report.errors) == (0, 0, [], [])


def test_cleanup_fails_fast_when_access_is_denied(fake_fly: FakeFly) -> None:
    seed_app(fake_fly)
    fly = FlyMachines(APP, "not-the-token", base_url=fake_fly.base_url, backoff_ms=1)
    with pytest.raises(ProviderError, match="401"):
        fly.cleanup()
    assert [c.method for c in fake_fly.calls] == ["GET"]
    assert len(fake_fly.live_machines()) == 2


def test_cleanup_reports_a_destroy_that_keeps_failing_as_a_leftover(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, max_retries=1)
    machines, volumes = seed_app(fake_fly)
    stuck, attached = machines[0], volumes[0]
    fake_fly.fail_next("DELETE", rf"/apps/[^/]+/machines/{stuck}", 500, times=100)
    report = fly.cleanup(poll_interval_ms=1, settle_timeout_ms=100)
    path = f"/apps/{APP}/machines/{stuck}"
    assert report.errors == [
        f'Machine {stuck}: destroy failed (Fly API DELETE {path} failed: 500 {{"error": "internal server error"}}'
        " (after 2 attempts))",
        f"Volume {attached}: destroy failed (Fly API DELETE /apps/{APP}/volumes/{attached} failed: 412 "
        f'{{"error": "failed_precondition: volume {attached} is attached to machine {stuck}; destroy the machine first"}})',
    ]
    assert report.warnings == [
        f"Fly cleanup left 1 machine(s) after verification: {stuck}",
        f"Fly cleanup left 1 volume(s) after verification: {attached}",
    ]
    assert report.machine_ids_remaining == [stuck] and report.machine_ids_deleted == [machines[1]]
    assert report.volume_ids_remaining == [attached] and sorted(report.volume_ids_deleted) == sorted(volumes[1:])
    assert (report.machines_deleted, report.machines_remaining) == (1, 1)
    assert list(fake_fly.live_machines()) == [stuck] and list(fake_fly.volumes) == [attached]


def test_cleanup_turns_cordon_and_stop_failures_into_warnings(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, max_retries=0)
    m = fake_fly.add_machine("worker-1", state="started")
    fake_fly.fail_next("POST", MACHINE + "/cordon", 400, body={"error": "cannot cordon"})
    fake_fly.fail_next("POST", MACHINE + "/stop", 503)
    report = fly.cleanup(poll_interval_ms=5, settle_timeout_ms=50)
    base = f"Fly API POST /apps/{APP}/machines/{m.id}"
    assert report.warnings[:2] == [
        f'Machine {m.id}: cordon warning ({base}/cordon failed: 400 {{"error": "cannot cordon"}})',
        f'Machine {m.id}: stop warning ({base}/stop failed: 503 {{"error": "service unavailable"}})',
    ]
    # Never stopped, so the destroy stays deferred: an error and a leftover, not a delete.
    assert len(report.errors) == 1 and report.errors[0].startswith(f"Machine {m.id}: destroy failed (")
    assert "failed_precondition" in report.errors[0]
    assert report.warnings[2] == f"Fly cleanup left 1 machine(s) after verification: {m.id}"
    assert report.machine_ids_remaining == [m.id] and report.machine_ids_deleted == []


def test_cleanup_waits_for_a_stopping_machine_before_destroying(slow_fake: FakeFly) -> None:
    fly = client(slow_fake)
    v = slow_fake.add_volume("data")
    m = slow_fake.add_machine("worker-1", state="started", volume_id=v.id)
    report = fly.cleanup(poll_interval_ms=20, settle_timeout_ms=5_000)
    assert report.errors == [] and report.warnings == []
    assert report.machine_ids_deleted == [m.id] and report.volume_ids_deleted == [v.id]
    assert statuses(slow_fake, "DELETE", MACHINE) == [412, 200], "deferred, waited, destroyed"


def test_cleanup_retries_a_deferred_volume_delete(fake_fly: FakeFly, fly: FlyMachines) -> None:
    v = fake_fly.add_volume("data")
    fake_fly.fail_next("DELETE", VOLUME, 412, times=2)
    report = fly.cleanup(poll_interval_ms=1, volume_attempts=3)
    assert report.volume_ids_deleted == [v.id] and report.errors == []
    assert statuses(fake_fly, "DELETE", VOLUME) == [412, 412, 200]


def test_cleanup_fails_fast_when_the_first_listing_fails(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, max_retries=0)
    seed_app(fake_fly)
    fake_fly.fail_next("GET", MACHINES, 500)
    with pytest.raises(ProviderError, match="500"):
        fly.cleanup()
    assert len(fake_fly.live_machines()) == 2
    assert not fake_fly.calls_to("DELETE") and not fake_fly.calls_to("POST")


def test_cleanup_reports_a_failed_verification(fake_fly: FakeFly) -> None:
    fly = client(fake_fly, max_retries=0)
    (stuck, gone), _ = seed_app(fake_fly)
    fake_fly.fail_next("DELETE", rf"/apps/[^/]+/machines/{stuck}", 500, times=100)
    fake_fly.fail_next("GET", MACHINES, 500, skip=1)
    report = fly.cleanup(poll_interval_ms=1, settle_timeout_ms=30)
    verify = [e for e in report.errors if e.startswith("Fly cleanup could not verify machines (")]
    assert len(verify) == 1 and f"GET /apps/{APP}/machines failed: 500" in verify[0]
    assert report.machine_ids_deleted == [gone], "only confirmed deletes count"
    assert report.machine_ids_remaining == [stuck]
    assert report.volumes_found == 3, "the volume phase still runs"


@pytest.mark.parametrize(
    "faults",
    [
        [("DELETE", MACHINE, 500, 2), ("DELETE", VOLUME, 503, 2), ("GET", MACHINES, 429, 1)],
        [("POST", MACHINE + "/cordon", 500, 10), ("POST", MACHINE + "/stop", 500, 10)],
        [("DELETE", MACHINE, 500, 100)],
        [("DELETE", VOLUME, 500, 100), ("GET", VOLUMES, 502, 1)],
        [("DELETE", MACHINE, 412, 100), ("DELETE", VOLUME, 412, 100)],
        [("*", r".*", 503, 2)],
    ],
)
def test_injected_faults_never_hide_a_machine_or_volume(
    fake_fly: FakeFly, faults: list[tuple[str, str, int, int]]
) -> None:
    fly = client(fake_fly, max_retries=2)
    seed_app(fake_fly)
    fake_fly.add_machine("worker-3", state="created")
    for method, pattern, status, times in faults:
        fake_fly.fail_next(method, pattern, status, times=times)
    report = fly.cleanup(poll_interval_ms=1, settle_timeout_ms=30, volume_attempts=2)

    live_machines, live_volumes = set(fake_fly.live_machines()), set(fake_fly.volumes)
    assert set(report.machine_ids_remaining) == live_machines
    assert set(report.volume_ids_remaining) == live_volumes
    assert not live_machines & set(report.machine_ids_deleted), "nothing alive is reported deleted"
    assert not live_volumes & set(report.volume_ids_deleted)
    assert report.machines_deleted + report.machines_remaining == report.machines_found
    assert report.volumes_deleted + report.volumes_remaining == report.volumes_found
    for mid in live_machines:
        assert any(mid in line for line in report.errors), f"{mid} left without an error"
    if not live_machines and not live_volumes:
        assert report.errors == []


# --- the fake itself ------------------------------------------------------------------


def test_fake_fly_speaks_fly_errors(fake_fly: FakeFly) -> None:
    import json
    import urllib.error
    import urllib.request

    def get(path: str, token: str | None) -> tuple[int, str]:
        req = urllib.request.Request(fake_fly.base_url + path)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    assert get(f"/apps/{APP}/machines", None)[0] == 401
    assert get(f"/apps/{APP}/machines", fake_fly.token) == (200, "[]")
    assert get("/nowhere", fake_fly.token) == (404, "404 page not found\n")
    status, body = get("/apps/other/machines", fake_fly.token)
    assert (status, json.loads(body)) == (404, {"error": "app not found"})
    assert [(c.method, c.path, c.status) for c in fake_fly.calls][-1] == ("GET", "/apps/other/machines", 404)
    with pytest.raises(ValueError):
        fake_fly.fail_next("GET", ".*", 500, times=0)
