"""Provider preferences set on the Settings page (a real browser) route the API requests of the account's
keys (the real gateway process, a fake upstream serving one model through two providers), and a
request's own `provider` field wins field by field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.support.gateway import GatewayProcess, _model_toml
from tests.web.conftest import acme_gateway, browser_sign_up
from tests.web.test_browser_journey import shot

EMAIL = "prefs@example.com"
DUAL = "acme/dual"
# Nearly the same price, so the default load balancer splits traffic about evenly between the two.
DUAL_TOML = _model_toml(DUAL, [("acme-bad", "mock-model", "0.49", "1.50"), ("acme", "mock-model", "0.50", "1.50")])

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAIUpstream) -> Iterator[GatewayProcess]:
    with acme_gateway(tmp_path_factory.mktemp("prefs-gateway"), fake_upstream, DUAL_TOML) as process:
        yield process


def served_by(gateway: GatewayProcess, key: str, count: int, provider: dict[str, Any] | None = None) -> Counter[str]:
    body: dict[str, Any] = {"model": DUAL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    if provider is not None:
        body["provider"] = provider
    seen: Counter[str] = Counter()
    for _ in range(count):
        response = requests.post(
            gateway.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        seen[response.json()["provider"]] += 1
    return seen


def save_preferences(page: Page, root: str, sort: str, ignore: list[str]) -> None:
    page.goto(root + "/settings")
    form = page.get_by_test_id("provider-prefs")
    form.get_by_label("Sort providers by").select_option(sort)
    for slug in ("acme", "acme-bad"):
        box = form.locator(f'input[name="ignore"][value="{slug}"]')
        box.set_checked(slug in ignore)
    form.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Provider preferences saved")
    expect(form.get_by_label("Sort providers by")).to_have_value(sort)  # the saved value is shown back


def test_settings_preferences_route_the_accounts_api_requests(gateway: GatewayProcess, chromium: Browser) -> None:
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        browser_sign_up(page, gateway.root_url, EMAIL)
        key = gateway.create_key(name="prefs", account=EMAIL, credits="10")["key"]

        baseline = served_by(gateway, key, 20)  # no preference: the load balancer uses both
        assert set(baseline) == {"acme", "acme-bad"}, baseline

        save_preferences(page, gateway.root_url, "price", [])
        assert served_by(gateway, key, 10) == {"acme-bad": 10}  # sort by price: the cheaper one, always

        save_preferences(page, gateway.root_url, "price", ["acme-bad"])
        shot(page, "settings-provider-preferences")
        assert served_by(gateway, key, 10) == {"acme": 10}  # the ignored provider gets nothing

        # The request's own field wins, field by field: its `ignore` replaces the account's, while the
        # account's `sort` (which the request does not set) still applies.
        assert served_by(gateway, key, 5, {"ignore": []}) == {"acme-bad": 5}
        # A request setting only `order` keeps the account's `ignore`.
        assert served_by(gateway, key, 5, {"order": ["acme-bad"]}) == {"acme": 5}
        # `only: [acme-bad]` with the account's `ignore: [acme-bad]` leaves nothing: the API's own error.
        response = requests.post(
            gateway.base_url + "/chat/completions",
            json={"model": DUAL, "messages": [{"role": "user", "content": "hi"}], "provider": {"only": ["acme-bad"]}},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code in (400, 404) and "error" in response.json(), response.text
    finally:
        context.close()
