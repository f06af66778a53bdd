"""`agent-factory agents` and `agent-factory secrets`, driven as a real console script.
Secret values must never show up in any output, nor in the database files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from agent_factory import Factory
from test_cli import db_state, run_cli

SECRET = "sk-live-4f9c2e-DO-NOT-PRINT"
ROTATED = "sk-live-77aa01-ALSO-SECRET"


def test_agents_upsert_list_show_enable_disable(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"  # upsert may create the database
    out = run_cli("agents", "upsert", "support-bot", "--version", "2.1.0", "--secret-ref", "tg.token",
                  "--secret-ref", "openai.key", "--bot-identity", "@support", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    f = Factory(db)
    stored = f.agents.get("support-bot")
    assert stored is not None and json.loads(out.stdout) == stored.to_dict()
    assert stored.version == "2.1.0" and stored.secrets_ref[:2] == ["tg.token", "openai.key"]

    # An update names only what changes: the refs, identity and enabled flag are kept.
    assert run_cli("agents", "disable", "support-bot", "--db", str(db)).returncode == 0
    again = run_cli("agents", "upsert", "support-bot", "--version", "2.2.0", "--db", str(db), "--json")
    assert again.returncode == 0, again.stderr
    updated = f.agents.get("support-bot")
    assert updated is not None and json.loads(again.stdout) == updated.to_dict()
    assert (updated.version, updated.secrets_ref, updated.bot_identity, updated.enabled) == (
        "2.2.0", stored.secrets_ref, "@support", False,
    )
    f.agents.upsert_agent("other-bot", secrets_ref=[])

    disabled = run_cli("agents", "list", "--disabled", "--db", str(db), "--json")
    assert [a["agent_key"] for a in json.loads(disabled.stdout)] == ["support-bot"]
    assert run_cli("agents", "enable", "support-bot", "--db", str(db)).returncode == 0
    agent = f.agents.get("support-bot")
    assert agent is not None and agent.enabled
    listed = run_cli("agents", "list", "--db", str(db))
    assert listed.returncode == 0
    for text in ("support-bot", "other-bot", "2.2.0", "tg.token, openai.key"):
        assert text in listed.stdout, text
    shown = run_cli("agents", "show", "support-bot", "--db", str(db))
    assert "@support" in shown.stdout and "2.2.0" in shown.stdout

    before = db_state(db)
    for command in (["show", "ghost"], ["enable", "ghost"], ["disable", "ghost"]):
        missing = run_cli("agents", *command, "--db", str(db))
        assert missing.returncode == 4 and "ghost" in missing.stderr, (command, missing.stderr)
    assert run_cli("agents", "list", "--enabled", "--disabled", "--db", str(db)).returncode == 2
    assert db_state(db) == before


def test_secrets_import_status_rotate_never_show_the_value(tmp_path: Path) -> None:
    db = tmp_path / "secrets.db"
    outputs: list[subprocess.CompletedProcess[str]] = []

    def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        out = run_cli(*args, "--db", str(db), input=input)
        outputs.append(out)
        return out

    imported = cli("secrets", "import", "tg.token", "--stdin", "--json", input=SECRET + "\n")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"secret_id": 1, "secret_ref": "tg.token", "version": 1}
    f = Factory(db)
    assert f.secrets.reveal("tg.token") == SECRET  # one trailing newline dropped

    value_file = tmp_path / "value.txt"
    value_file.write_text(ROTATED + "\n")
    rotated = cli("secrets", "rotate", "tg.token", "--from-file", str(value_file))
    assert rotated.returncode == 0, rotated.stderr
    assert "tg.token" in rotated.stdout and "2 (was 1)" in rotated.stdout
    assert f.secrets.reveal("tg.token") == ROTATED
    assert cli("secrets", "import", "fly.apiToken", "--from-file", str(value_file)).returncode == 0

    status = cli("secrets", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == [s.to_dict() for s in f.secrets.status(f.secrets.list_refs())]
    human = cli("secrets", "status", "tg.token", "missing.ref")
    assert human.returncode == 1  # a named ref has no active version
    assert "tg.token" in human.stdout and "active" in human.stdout and "missing" in human.stdout

    for out in outputs:
        for value in (SECRET, ROTATED):
            assert value not in out.stdout and value not in out.stderr
    for path in tmp_path.iterdir():  # the database, its WAL and the key file
        if path.is_file() and path != value_file:
            data = path.read_bytes()
            assert SECRET.encode() not in data and ROTATED.encode() not in data, path.name


def test_bad_secret_input_exits_with_its_code_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "secrets.db"
    Factory(db).secrets.import_plaintext("kept", "v1")
    before = db_state(db)
    empty = run_cli("secrets", "import", "x.ref", "--stdin", "--db", str(db), input="\n")
    assert empty.returncode == 2 and "empty" in empty.stderr
    no_source = run_cli("secrets", "import", "x.ref", "--db", str(db))
    assert no_source.returncode == 2 and "--stdin" in no_source.stderr
    on_argv = run_cli("secrets", "import", "x.ref", SECRET, "--stdin", "--db", str(db), input="v")
    assert on_argv.returncode == 2 and SECRET not in on_argv.stderr + on_argv.stdout
    no_file = run_cli("secrets", "import", "x.ref", "--from-file", str(tmp_path / "absent"), "--db", str(db))
    assert no_file.returncode == 4 and "absent" in no_file.stderr
    unknown = run_cli("secrets", "rotate", "x.ref", "--stdin", "--db", str(db), "--json", input=SECRET)
    assert unknown.returncode == 4 and json.loads(unknown.stdout)["error"]["kind"] == "not_found"
    assert SECRET not in unknown.stdout + unknown.stderr
    assert db_state(db) == before
