"""The real `polyroute` CLI, run as a subprocess on a fresh data directory (and once on PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.support.databases import fresh_database
from tests.support.gateway import run_cli

from polyroute.accounts.keys import hash_key, looks_like_key
from polyroute.db.migrate import head_revision

SRC_DIR = Path(__file__).resolve().parents[2] / "src"


def cli_env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYROUTE_")}
    env.update(PYTHONPATH=str(SRC_DIR), POLYROUTE_DATA_DIR=str(data_dir))
    if database_url is not None:
        env["POLYROUTE_DATABASE_URL"] = database_url
    return env


def polyroute(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(args, env)  # its stderr joins the suite's leak scan


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr.startswith("polyroute: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "data")


def test_keys_create_on_a_fresh_data_dir_prints_only_the_key(env: dict[str, str], tmp_path: Path) -> None:
    result = polyroute(env, "keys", "create", "--name", "laptop")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert result.stdout == key + "\n" and looks_like_key(key)
    assert "only once" in result.stderr and key not in result.stderr
    assert (tmp_path / "data" / "polyroute.db").exists()
    listed = json.loads(polyroute(env, "keys", "list", "--json").stdout)
    assert [(k["hash"], k["name"], k["account"]) for k in listed] == [(hash_key(key), "laptop", "admin@localhost")]
    assert key not in json.dumps(listed)


def test_keys_create_json_names_the_key_and_creates_the_account(env: dict[str, str]) -> None:
    result = polyroute(env, "keys", "create", "--name", "ops", "--account", "Ops@Example.com", "--management", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert looks_like_key(created["key"]) and created["hash"] == hash_key(created["key"])
    assert (created["name"], created["account"], created["is_management"]) == ("ops", "ops@example.com", True)
    assert created["label"].startswith("sk-pr-v1-") and "..." in created["label"]
    accounts = json.loads(polyroute(env, "accounts", "list", "--json").stdout)
    assert [(a["email"], a["is_admin"]) for a in accounts] == [("ops@example.com", False)]


def test_default_account_is_created_as_admin(env: dict[str, str]) -> None:
    assert polyroute(env, "keys", "create", "--name", "first").returncode == 0
    accounts = json.loads(polyroute(env, "accounts", "list", "--json").stdout)
    assert [(a["email"], a["is_admin"]) for a in accounts] == [("admin@localhost", True)]


def test_keys_list_filters_by_account_and_hides_revoked_keys(env: dict[str, str]) -> None:
    alice = json.loads(polyroute(env, "keys", "create", "--name", "a", "--account", "alice@x.io", "--json").stdout)
    bob = json.loads(polyroute(env, "keys", "create", "--name", "b", "--account", "bob@x.io", "--json").stdout)
    only_alice = json.loads(polyroute(env, "keys", "list", "--account", "alice@x.io", "--json").stdout)
    assert [k["hash"] for k in only_alice] == [alice["hash"]]
    assert polyroute(env, "keys", "revoke", bob["hash"]).returncode == 0
    assert [k["hash"] for k in json.loads(polyroute(env, "keys", "list", "--json").stdout)] == [alice["hash"]]
    table = polyroute(env, "keys", "list", "--include-revoked").stdout
    assert alice["hash"] in table and bob["hash"] in table and "revoked" in table
    assert alice["key"] not in table


def test_keys_create_and_update_set_the_keys_own_rate_limits(env: dict[str, str]) -> None:
    created = json.loads(polyroute(env, "keys", "create", "--name", "r", "--rpm", "30", "--tpm", "0", "--json").stdout)
    assert (created["rpm"], created["tpm"]) == (30, 0)
    result = polyroute(env, "keys", "update", created["hash"], "--tpm", "9000", "--json")
    assert result.returncode == 0, result.stderr
    assert (json.loads(result.stdout)["rpm"], json.loads(result.stdout)["tpm"]) == (30, 9000)
    result = polyroute(env, "keys", "update", created["key"], "--rpm", "default")  # the key itself works too
    assert result.returncode == 0 and "rpm default, tpm 9000" in result.stdout, result
    listed = json.loads(polyroute(env, "keys", "list", "--json").stdout)
    assert [(k["rpm"], k["tpm"]) for k in listed] == [(None, 9000)]


@pytest.mark.parametrize("value", ["-1", "1.5", "lots", "1000000001"])
def test_keys_rate_limits_refuse_bad_values(env: dict[str, str], value: str) -> None:
    result = polyroute(env, "keys", "create", "--name", "r", "--rpm", value)
    assert result.returncode == 2 and "--rpm" in result.stderr and "Traceback" not in result.stderr


def test_keys_update_needs_a_change_and_a_known_key(env: dict[str, str]) -> None:
    created = json.loads(polyroute(env, "keys", "create", "--name", "r", "--json").stdout)
    assert_one_line_error(polyroute(env, "keys", "update", created["hash"]), "nothing to change")
    assert_one_line_error(polyroute(env, "keys", "update", "0" * 64, "--rpm", "5"), "no API key with hash")


def test_keys_revoke_of_an_unknown_hash_exits_1_with_one_line(env: dict[str, str]) -> None:
    assert_one_line_error(polyroute(env, "keys", "revoke", "0" * 64), "no API key with hash")


def test_keys_list_for_an_unknown_account_exits_1(env: dict[str, str]) -> None:
    assert_one_line_error(polyroute(env, "keys", "list", "--account", "nobody@x.io"), "no account")


def test_accounts_create_and_list(env: dict[str, str]) -> None:
    result = polyroute(env, "accounts", "create", "Root@Example.com", "--admin")
    assert result.returncode == 0 and "root@example.com" in result.stdout and "admin" in result.stdout
    table = polyroute(env, "accounts", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "EMAIL", "ADMIN", "BALANCE", "CREATED"]
    assert table[1].split()[:4] == ["1", "root@example.com", "yes", "$0"]


def test_user_errors_are_one_line_never_a_traceback(env: dict[str, str]) -> None:
    assert polyroute(env, "accounts", "create", "dup@example.com").returncode == 0
    assert_one_line_error(polyroute(env, "accounts", "create", "DUP@example.com"), "already exists")
    assert_one_line_error(polyroute(env, "accounts", "create", "not-an-email"), "not an email")
    assert_one_line_error(polyroute(env, "keys", "create", "--name", " "), "non-empty name")


def test_unreachable_database_is_one_line_without_password(tmp_path: Path) -> None:
    env = cli_env(tmp_path, "postgresql://postgres:hunter2@127.0.0.1:1/nowhere")
    result = polyroute(env, "keys", "list")
    assert_one_line_error(result, "127.0.0.1:1/nowhere")
    assert "hunter2" not in result.stderr


def test_migrate_reports_the_revision(env: dict[str, str]) -> None:
    result = polyroute(env, "migrate")
    assert result.returncode == 0 and f"revision {head_revision()}" in result.stdout
    assert polyroute(env, "migrate").returncode == 0


@pytest.mark.postgres
async def test_keys_commands_work_on_postgresql(tmp_path: Path) -> None:
    async with fresh_database("postgres", tmp_path) as url:
        env = cli_env(tmp_path / "unused", url.replace("postgresql+asyncpg://", "postgresql://"))
        created = polyroute(env, "keys", "create", "--name", "pg", "--json")
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)
        listed = json.loads(polyroute(env, "keys", "list", "--json").stdout)
        assert [k["hash"] for k in listed] == [key["hash"]]
        assert polyroute(env, "keys", "revoke", key["hash"]).returncode == 0
        assert json.loads(polyroute(env, "keys", "list", "--json").stdout) == []
    assert not (tmp_path / "unused").exists()
