"""`polyroute credits grant|show`, `keys create --credits/--limit`, and balances in `accounts list`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration.test_cli_keys import assert_one_line_error, cli_env, polyroute


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "data")


def test_grant_and_show_exact_decimal_amounts(env: dict[str, str]) -> None:
    assert polyroute(env, "accounts", "create", "pay@example.com").returncode == 0
    first = polyroute(
        env, "credits", "grant", "--account", "pay@example.com", "--amount", "12.50", "--note", "invoice 7"
    )
    assert first.returncode == 0 and "granted $12.5 to pay@example.com; balance $12.5" in first.stdout
    second = polyroute(env, "credits", "grant", "--account", "pay@example.com", "--amount", "0.000000000001", "--json")
    assert json.loads(second.stdout)["balance_usd"] == "12.500000000001"  # one pUSD, exactly
    shown = json.loads(polyroute(env, "credits", "show", "--account", "pay@example.com", "--json").stdout)
    assert shown == {
        "account": "pay@example.com",
        "credits_usd": "12.500000000001",
        "usage_usd": "0",
        "reserved_usd": "0",
        "balance_usd": "12.500000000001",
    }
    listed = json.loads(polyroute(env, "accounts", "list", "--json").stdout)
    assert listed[0]["balance_usd"] == "12.500000000001"


def test_a_grant_run_again_with_its_ref_is_not_added_twice(env: dict[str, str]) -> None:
    assert polyroute(env, "accounts", "create", "pay@example.com").returncode == 0
    grant = ("credits", "grant", "--account", "pay@example.com", "--amount", "10", "--ref", "grant-invoice-9", "--json")
    first = json.loads(polyroute(env, *grant).stdout)
    again = json.loads(polyroute(env, *grant).stdout)
    assert first["ref"] == again["ref"] == "grant-invoice-9"
    assert first["balance_usd"] == again["balance_usd"] == "10"
    other = polyroute(
        env, "credits", "grant", "--account", "pay@example.com", "--amount", "11", "--ref", "grant-invoice-9"
    )
    assert_one_line_error(other, "grant grant-invoice-9 was already made with another account or amount")
    fresh = json.loads(
        polyroute(env, "credits", "grant", "--account", "pay@example.com", "--amount", "1", "--json").stdout
    )
    assert fresh["ref"].startswith("grant-") and fresh["ref"] != "grant-invoice-9" and fresh["balance_usd"] == "11"


def test_keys_create_with_credits_and_a_limit(env: dict[str, str]) -> None:
    result = polyroute(
        env,
        "keys", "create", "--name", "team", "--account", "team@example.com", "--credits", "5",
        "--limit", "1.25", "--limit-reset", "monthly", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["account_balance_usd"] == "5"
    assert (created["limit_pusd"], created["limit_reset"]) == (1_250_000_000_000, "monthly")


def test_bad_grants_are_one_line_errors(env: dict[str, str]) -> None:
    polyroute(env, "accounts", "create", "pay@example.com")
    for args, fragment in [
        (["--account", "ghost@example.com", "--amount", "1"], "no account"),
        (["--account", "pay@example.com", "--amount", "-1"], "negative"),
        (["--account", "pay@example.com", "--amount", "0"], "positive"),
        (["--account", "pay@example.com", "--amount", "0.0000000000001"], "finer than 1 pUSD"),
        (["--account", "pay@example.com", "--amount", "lots"], "not a decimal"),
    ]:
        assert_one_line_error(polyroute(env, "credits", "grant", *args), fragment)
