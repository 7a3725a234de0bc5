"""The sign-in limit holds across processes: two gateway processes on one PostgreSQL and one Redis;
failed sign-ins alternating between them, or racing in parallel, hit the per-email and per-address
budgets at the configured count in total (per process, each would have its own budget)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from polyroute.web.login_limits import FAILURES_PER_ADDRESS, FAILURES_PER_EMAIL, WINDOW_S
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import delete_prefix, shared_redis_url, unique_prefix
from tests.support.scale_out import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
EMAIL, PASSWORD = "victim@example.com", "the right password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    redis_url, prefix = shared_redis_url(), unique_prefix()
    env = {"POLYROUTE_REDIS_URL": redis_url, "POLYROUTE_REDIS_PREFIX": prefix}
    with postgres_database(tmp_path) as database_url:
        first = GatewayProcess(tmp_path / "first", "", env, database_url).start()
        second = GatewayProcess(tmp_path / "second", "", env, database_url)
        try:
            second.start()
            created = first.cli("accounts", "create", EMAIL, "--password-stdin", input=PASSWORD + "\n")
            assert created.returncode == 0, created.stderr
            yield first, second
        finally:
            first.stop()
            second.stop()
            delete_prefix(redis_url, prefix)


def sign_in(gateway: GatewayProcess, email: str, password: str) -> requests.Response:
    with requests.Session() as browser:  # a fresh visitor each time: the limit is not in a cookie
        page = browser.get(gateway.root_url + "/login", timeout=30)
        token = CSRF.search(page.text)
        assert token, page.text
        form = {"csrf_token": token.group(1), "email": email, "password": password}
        return browser.post(gateway.root_url + "/login", data=form, allow_redirects=False, timeout=30)


def test_failed_sign_ins_spread_over_two_processes_share_one_budget(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = pair
    for i in range(2 * FAILURES_PER_EMAIL):  # successes give their slot back
        assert sign_in(pair[i % 2], EMAIL, PASSWORD).status_code == 303
    statuses = [sign_in(pair[i % 2], EMAIL, "wrong password").status_code for i in range(FAILURES_PER_EMAIL)]
    assert statuses == [400] * FAILURES_PER_EMAIL
    for gateway in (first, second):  # the budget is spent on both, even for the right password
        refused = sign_in(gateway, EMAIL, PASSWORD)
        assert refused.status_code == 429, refused.text
        retry_after = int(refused.headers["Retry-After"])
        assert 0 < retry_after <= WINDOW_S // FAILURES_PER_EMAIL
        assert "Too many sign-in attempts" in refused.text
    # The address budget: every email's failures from this address count, over both processes.
    spent = FAILURES_PER_EMAIL  # the failures above came from this address too
    for i in range(FAILURES_PER_ADDRESS - spent):
        assert sign_in(pair[i % 2], f"guess{i}@example.com", "wrong password").status_code == 400
    for gateway in (first, second):
        assert sign_in(gateway, "fresh@example.com", "wrong password").status_code == 429


def test_a_concurrent_burst_over_two_processes_gets_exactly_the_budget(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    """Each attempt takes its slot atomically before the password is checked: racing attempts cannot
    all pass a check made before any of them was counted."""

    def attempt(i: int) -> int:
        return sign_in(pair[i % 2], EMAIL, "wrong password").status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    print(
        f"20 concurrent failed sign-ins over 2 processes: {statuses.count(400)} checked, {statuses.count(429)} refused"
    )
    assert statuses.count(400) == FAILURES_PER_EMAIL and statuses.count(429) == 20 - FAILURES_PER_EMAIL, statuses
    assert sign_in(pair[0], EMAIL, PASSWORD).status_code == 429
