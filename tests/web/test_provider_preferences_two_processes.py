"""A preference saved on one process routes the next request on another at once: two gateway processes
on one PostgreSQL and one Redis, the per-account cache TTL raised far above the test's time, so only the
cache bus can carry the change."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import delete_prefix, shared_redis_url, unique_prefix
from tests.support.scale_out import postgres_database
from tests.web.conftest import PASSWORD, acme_gateway
from tests.web.test_provider_preferences_browser import DUAL_TOML, served_by

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
EMAIL = "two@example.com"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def pair(tmp_path: Path, fake_upstream: FakeOpenAIUpstream) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    redis_url, prefix = shared_redis_url(), unique_prefix()
    env = {"POLYROUTE_REDIS_URL": redis_url, "POLYROUTE_REDIS_PREFIX": prefix, "POLYROUTE_KEY_CACHE_TTL_S": "60"}
    with postgres_database(tmp_path) as database_url:
        first = acme_gateway(tmp_path / "first", fake_upstream, DUAL_TOML, database_url=database_url, **env)
        second = acme_gateway(tmp_path / "second", fake_upstream, DUAL_TOML, database_url=database_url, **env)
        try:
            first.start()
            second.start()
            yield first, second
        finally:
            first.stop()
            second.stop()
            delete_prefix(redis_url, prefix)


def test_a_preference_saved_on_one_process_applies_on_the_other_at_once(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = pair
    with requests.Session() as browser:
        page = browser.get(first.root_url + "/signup", timeout=30)
        form = {"csrf_token": CSRF.findall(page.text)[0], "email": EMAIL, "password": PASSWORD}
        assert browser.post(first.root_url + "/signup", data=form, timeout=30).status_code == 200  # -> /keys
        key = first.create_key(name="two", account=EMAIL, credits="10")["key"]
        assert set(served_by(second, key, 20)) == {"acme", "acme-bad"}  # cached on the second: no preference

        csrf = CSRF.findall(browser.get(first.root_url + "/settings", timeout=30).text)[0]
        form = {"csrf_token": csrf, "sort": "price", "allow_fallbacks": "1", "data_collection": "allow"}
        saved = browser.post(first.root_url + "/settings/providers", data=form, timeout=30)
        assert saved.status_code == 200 and "Provider preferences saved" in saved.text
        saved_at = time.monotonic()
        while served_by(second, key, 1) != {"acme-bad": 1}:  # the cheaper one, once the change arrives
            assert time.monotonic() - saved_at < 1.0, "the second process still routes without the preference"
            time.sleep(0.02)
        print(f"preference applied on the second process {1000 * (time.monotonic() - saved_at):.0f} ms after saving")
        assert served_by(second, key, 10) == {"acme-bad": 10}
