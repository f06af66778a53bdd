"""`agent-factory push`, `fly cleanup`, `snapshots list` and the conventions every
command shares (help, exit-code table, JSON errors), as a real console script."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent_factory import Factory, ProviderConfig, Schedule
from agent_factory.testing import FakeFly
from test_cli import db_state, run_cli


def test_push_list_show_trigger_and_dispatch(tmp_path: Path) -> None:
    db = tmp_path / "push.db"
    f = Factory(db)
    f.agents.upsert_agent("push-agent", secrets_ref=[])
    f.identity.bind("u1", "push-agent", metadata={"companyId": "co-1"})
    job = f.push.create_job("co-1", "u1", "Morning digest", "Here is your digest", "Europe/Rome",
                            Schedule.daily("08:30"))
    f.push.create_job("co-1", "u1", "Paused", "off", "UTC", Schedule.manual(), enabled=False)

    listed = run_cli("push", "list", "--user", "u1", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [j.to_dict() for j in f.push.list_jobs_for_user("u1")]
    enabled = run_cli("push", "list", "--user", "u1", "--enabled-only", "--db", str(db))
    assert enabled.returncode == 0 and "Morning digest" in enabled.stdout and "Paused" not in enabled.stdout
    assert "daily at 08:30" in enabled.stdout and "Europe/Rome" in enabled.stdout

    triggered = run_cli("push", "trigger", job.job_id, "--db", str(db), "--json")
    assert triggered.returncode == 0, triggered.stderr
    data = json.loads(triggered.stdout)
    message = f.queue.get_job(data["enqueued_message_id"])
    assert message is not None and message.conversation_id == "user-agent:push-agent:u1"
    assert data["run_key"].startswith(f"manual:{job.job_id}:")
    shown = run_cli("push", "show", job.job_id, "--db", str(db))
    assert shown.returncode == 0 and data["run_key"] in shown.stdout and "Here is your digest" in shown.stdout

    before = db_state(db)
    missing = run_cli("push", "trigger", "no-such-job", "--db", str(db), "--json")
    assert missing.returncode == 4 and json.loads(missing.stdout)["error"]["kind"] == "not_found"
    assert run_cli("push", "list", "--db", str(db)).returncode == 2  # --user is required
    assert db_state(db) == before

    dispatched = run_cli("push", "dispatch", "--db", str(db), "--json")
    assert dispatched.returncode == 0, dispatched.stderr
    assert set(json.loads(dispatched.stdout)) == {"scanned", "enqueued", "skipped", "failed"}


def test_fly_cleanup_destroys_everything_with_yes_and_refuses_without(tmp_path: Path) -> None:
    db = tmp_path / "fly.db"
    f = Factory(db)
    with FakeFly() as fake:
        f.config.set_provider_config(ProviderConfig(kind="fly", app_name=fake.app_name, image="img", region="iad"))
        for mid in ("m-1", "m-2"):
            fake.add_machine(mid, machine_id=mid)
        fake.add_volume("data", volume_id="vol-1")
        env = {**os.environ, "FLY_API_TOKEN": ""}

        # No terminal and no --yes: refused before any API call.
        refused = run_cli("fly", "cleanup", "--api-base", fake.base_url, "--db", str(db), env=env)
        assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr
        # No token stored or in the environment: not found, nothing called.
        no_token = run_cli("fly", "cleanup", "--yes", "--api-base", fake.base_url, "--db", str(db), env=env)
        assert no_token.returncode == 4 and "fly.apiToken" in no_token.stderr, no_token.stderr
        assert fake.calls == [] and len(fake.live_machines()) == 2

        f.secrets.import_plaintext("fly.apiToken", fake.token)
        out = run_cli("fly", "cleanup", "--yes", "--api-base", fake.base_url, "--poll-interval-ms", "10",
                      "--db", str(db), "--json", env=env)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["ok"] is True and report["app_name"] == fake.app_name
        assert sorted(report["machine_ids_deleted"]) == ["m-1", "m-2"] and report["volume_ids_deleted"] == ["vol-1"]
        assert fake.live_machines() == {} and fake.volumes == {}
        assert fake.token not in out.stdout + out.stderr

        # The token from the environment, the app from --app (which the fake does not know): a provider error.
        wrong_app = run_cli("fly", "cleanup", "--yes", "--app", "other-app", "--api-base", fake.base_url,
                            "--db", str(db), env={**os.environ, "FLY_API_TOKEN": fake.token})
        assert wrong_app.returncode == 6 and "other-app" in wrong_app.stderr, wrong_app.stderr


def test_snapshots_list_by_conversation_and_by_worker(tmp_path: Path) -> None:
    db = tmp_path / "snap.db"
    f = Factory(db)
    snap = f.snapshots.upload("w-9", "default", "bot", "chat-9", "manual", b"archive bytes")
    listed = run_cli("snapshots", "list", "--conversation", "chat-9", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [s.to_dict() for s in f.snapshots.list_for_conversation("chat-9")]
    assert [s["snapshot_id"] for s in json.loads(listed.stdout)] == [snap.snapshot_id]
    human = run_cli("snapshots", "list", "--worker", "w-9", "--db", str(db))
    assert human.returncode == 0 and snap.snapshot_id in human.stdout and "ready" in human.stdout
    both = run_cli("snapshots", "list", "--worker", "w-9", "--conversation", "chat-9", "--db", str(db))
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_help_documents_exit_codes_and_usage_errors_are_json_with_json() -> None:
    helped = run_cli("--help")
    assert helped.returncode == 0
    for text in ("exit codes:", "4    not found", "5    conflict", "AGENT_FACTORY_DB", "board", "secrets", "fly"):
        assert text in helped.stdout, text
    sub_help = run_cli("board", "claim", "--help")
    assert sub_help.returncode == 0 and "--ttl-ms" in sub_help.stdout and "token" in sub_help.stdout
    bad = run_cli("jobs", "list", "--status", "lost", "--json")
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"]["kind"] == "usage"
    assert bad.stderr.strip().splitlines()[-1].startswith("agent-factory: error: argument --status")
