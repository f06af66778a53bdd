"""`agent-factory status`, `enqueue` and `jobs`, driven as a real console script."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent_factory import Factory
from helpers import payload
from test_cli import db_state, run_cli


def env_with(db: Path) -> dict[str, str]:
    """The environment with ``AGENT_FACTORY_DB`` naming ``db`` (the ``--db`` fallback)."""
    return {**os.environ, "AGENT_FACTORY_DB": str(db)}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database with an enabled agent ``bot`` and a disabled agent ``off``."""
    path = tmp_path / "q.db"
    f = Factory(path)
    f.agents.upsert_agent("bot", secrets_ref=[])
    f.agents.upsert_agent("off", secrets_ref=[], enabled=False)
    return path


def test_enqueue_one_message_from_options_through_the_env_database(db: Path) -> None:
    out = run_cli(
        "enqueue", "--agent", "bot", "--conversation", "chat-1", "--text", "hello there", "--provider-user-id", "u-7",
        "--priority", "9", "--scheduled-for", "2030-01-02T03:04:05Z", "--max-attempts", "2",
        "--payload-json", '{"externalMessageId": "ext-1", "metadata": {"k": "v"}}', "--json",
        env=env_with(db),
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["count"] == 1 and len(data["message_ids"]) == 1
    job = Factory(db).queue.get_job(data["message_ids"][0])
    assert job is not None
    assert (job.conversation_id, job.agent_key, job.priority, job.max_attempts) == ("chat-1", "bot", 9, 2)
    assert job.scheduled_for == 1_893_553_445_000  # 2030-01-02T03:04:05Z
    assert job.payload["messageText"] == "hello there" and job.payload["providerUserId"] == "u-7"
    assert job.payload["provider"] == "cli" and job.payload["externalMessageId"] == "ext-1"
    assert job.payload["metadata"]["k"] == "v"

    shown = run_cli("jobs", "show", job.message_id, env=env_with(db))
    assert shown.returncode == 0, shown.stderr
    for text in ("chat-1", "hello there", "queued", "2030-01-02 03:04:05Z"):
        assert text in shown.stdout, text


def test_enqueue_a_jsonl_file_is_all_or_nothing(db: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    lines = [
        {"agent": "bot", "conversation": f"c{i}", "text": f"m{i}", "provider_user_id": "u", "priority": i}
        for i in range(3)
    ]
    lines.append({"agent_key": "bot", "conversation_id": "c0", "payload": payload(text="from payload"),
                  "scheduled_for": 1_900_000_000_000})
    good.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    out = run_cli("enqueue", "--file", str(good), "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)["message_ids"]
    assert len(ids) == 4
    jobs = [Factory(db).queue.get_job(i) for i in ids]
    assert [(j.conversation_id, j.priority, j.payload["messageText"]) for j in jobs if j] == [
        ("c0", 0, "m0"), ("c1", 1, "m1"), ("c2", 2, "m2"), ("c0", 50, "from payload"),
    ]
    human = run_cli("enqueue", "--file", str(good), "--db", str(db))
    assert human.returncode == 0 and "enqueued 4 messages" in human.stdout, human.stderr

    before = db_state(db)
    unknown_agent = tmp_path / "unknown.jsonl"
    unknown_agent.write_text(json.dumps(lines[0]) + "\n" + json.dumps({**lines[1], "agent": "ghost"}) + "\n")
    out = run_cli("enqueue", "--file", str(unknown_agent), "--db", str(db))
    assert out.returncode == 4 and "ghost" in out.stderr, out.stderr
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(lines[0]) + "\n{not json\n")
    out = run_cli("enqueue", "--file", str(bad_json), "--db", str(db), "--json")
    assert out.returncode == 2 and json.loads(out.stdout)["error"]["kind"] == "validation"
    assert "line 2" in out.stderr
    unknown_field = tmp_path / "field.jsonl"
    unknown_field.write_text(json.dumps({**lines[0], "colour": "red"}) + "\n")
    out = run_cli("enqueue", "--file", str(unknown_field), "--db", str(db))
    assert out.returncode == 2 and "line 1" in out.stderr and "colour" in out.stderr
    assert db_state(db) == before


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--agent", "bot", "--text", "x", "--provider-user-id", "u"], 2, "--conversation"),
        (["--agent", "bot", "--conversation", "c", "--text", "x", "--provider-user-id", "u",
          "--scheduled-for", "next tuesday"], 2, "--scheduled-for"),
        (["--agent", "bot", "--conversation", "c", "--text", "x", "--provider-user-id", "u",
          "--scheduled-for", "2030-01-01T00:00:00"], 2, "time zone"),
        (["--agent", "bot", "--conversation", "c", "--text", "x", "--payload-json", "{oops"], 2, "--payload-json"),
        (["--agent", "bot", "--conversation", "c", "--text", "x"], 2, "providerUserId"),
        (["--agent", "bot", "--file", "x.jsonl"], 2, "--file"),
        (["--agent", "ghost", "--conversation", "c", "--text", "x", "--provider-user-id", "u"], 4, "ghost"),
        (["--agent", "bot", "--conversation", "c", "--text", "x", "--priority", "high"], 2, "--priority"),
    ],
)
def test_bad_enqueue_input_exits_with_its_code_and_writes_nothing(
    db: Path, args: list[str], code: int, needle: str
) -> None:
    before = db_state(db)
    out = run_cli("enqueue", *args, "--db", str(db))
    assert out.returncode == code, out.stderr
    assert needle in out.stderr and out.stderr.count("agent-factory: error:") == 1, out.stderr
    assert out.stdout == ""  # without --json, errors (and argparse usage) go to stderr only
    assert db_state(db) == before


def test_status_shows_queue_oldest_ready_age_workers_and_dead_letters(db: Path) -> None:
    f = Factory(db)
    now = f.now_ms()
    f.queue.enqueue("old", "bot", payload(), now_ms=now - 90_000)
    f.queue.enqueue("later", "bot", payload(), scheduled_for=now + 3_600_000)
    f.queue.enqueue("dead", "bot", payload(), max_attempts=1)
    w = f.worker("w-1", mode="pooled")
    claim = w.claim(conversation_id="dead")
    assert claim is not None
    w.fail(claim, "boom at the handler")
    out = run_cli("status", "--json", env=env_with(db))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    stats = f.queue.stats()
    assert {k: data["queue"][k] for k in ("queued_ready", "queued_delayed", "processing", "dead_letter")} == {
        "queued_ready": stats.queued_ready, "queued_delayed": stats.queued_delayed,
        "processing": stats.processing, "dead_letter": stats.dead_letter,
    } == {"queued_ready": 1, "queued_delayed": 1, "processing": 0, "dead_letter": 1}
    assert data["queue"]["oldest_ready_at"] == now - 90_000 and data["queue"]["oldest_ready_age_ms"] >= 90_000
    assert data["workers"] == f.workers.stats().to_dict()
    assert [d["last_error"] for d in data["dead_letters"]] == ["boom at the handler"]
    human = run_cli("status", "--db", str(db))
    assert human.returncode == 0, human.stderr
    for text in ("oldest ready message", "1m 3", "dead letter", "boom at the handler", "workers active"):
        assert text in human.stdout, text


def test_jobs_list_show_and_requeue_a_dead_letter(db: Path) -> None:
    f = Factory(db)
    dead_id = f.queue.enqueue("c-dead", "bot", payload(text="doomed"), max_attempts=1)
    queued_id = f.queue.enqueue("c-live", "bot", payload(text="waiting"))
    w = f.worker("w-1", mode="pooled")
    claim = w.claim(conversation_id="c-dead")
    assert claim is not None
    w.fail(claim, "handler exploded")

    listed = run_cli("jobs", "list", "--status", "dead_letter", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [j.to_dict() for j in f.queue.list_jobs("dead_letter")]
    every = run_cli("jobs", "list", "--db", str(db))
    assert every.returncode == 0 and dead_id in every.stdout and "handler exploded" in every.stdout
    assert "c-live" in every.stdout and "dead_letter" in every.stdout

    before = db_state(db)
    not_dead = run_cli("jobs", "requeue", queued_id, "--db", str(db), "--json")
    assert not_dead.returncode == 5, not_dead.stderr
    assert json.loads(not_dead.stdout)["error"]["kind"] == "invalid_state"
    assert run_cli("jobs", "requeue", "99999", "--db", str(db)).returncode == 4
    assert run_cli("jobs", "show", "99999", "--db", str(db)).returncode == 4
    assert db_state(db) == before

    requeued = run_cli("jobs", "requeue", dead_id, "--db", str(db), "--json")
    assert requeued.returncode == 0, requeued.stderr
    job = f.queue.get_job(dead_id)
    assert job is not None and job.status == "queued" and job.attempts == 0
    assert json.loads(requeued.stdout)["status"] == "queued"


@pytest.mark.parametrize(
    "command",
    [["status"], ["jobs", "list"], ["agents", "list"], ["secrets", "status"], ["board", "list"],
     ["snapshots", "list", "--worker", "w"]],
)
def test_a_missing_database_is_not_found_and_not_created(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nope.db"
    out = run_cli(*command, "--db", str(missing), "--json")
    assert out.returncode == 4, out.stderr
    assert json.loads(out.stdout) == {"error": {"kind": "not_found", "message": f"no database at {missing}"}}
    assert out.stderr.strip() == f"agent-factory: error: no database at {missing}"
    assert list(tmp_path.iterdir()) == []


def test_no_database_at_all_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGENT_FACTORY_DB"}
    out = run_cli("jobs", "list", env=env)
    assert out.returncode == 2 and "AGENT_FACTORY_DB" in out.stderr
