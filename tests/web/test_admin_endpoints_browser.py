"""The admin page's live endpoints table (a real browser, the real gateway process, a fake upstream):
failures against the fake show up as degraded / ejected without a reload; a non-admin gets 403."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.support.gateway import GatewayProcess
from tests.web.conftest import acme_gateway, browser_sign_up
from tests.web.test_browser_journey import shot

ADMIN, USER = "root@example.com", "someone@example.com"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeOpenAIUpstream) -> Iterator[GatewayProcess]:
    with acme_gateway(tmp_path_factory.mktemp("admin-gateway"), fake_upstream) as process:
        yield process


def chat(gateway: GatewayProcess, key: str, model: str, stream: bool = False) -> int:
    """One request; a streamed one (read to the end) also gives the endpoint a time to first token."""
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], "stream": stream}
    response = requests.post(
        gateway.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert stream is False or b"[DONE]" in response.content
    return response.status_code


def endpoint_row(page: Page, model: str, provider: str = "acme"):  # type: ignore[no-untyped-def]
    return page.locator(f'#endpoints-body tr[data-model="{model}"][data-provider="{provider}"]')


def test_admin_sees_failures_live_and_a_non_admin_is_refused(gateway: GatewayProcess, chromium: Browser) -> None:
    admin = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = admin.new_page()
    other = chromium.new_context(viewport={"width": 375, "height": 800})
    try:
        browser_sign_up(page, gateway.root_url, ADMIN)  # the first account: admin
        key = gateway.create_key(name="admin-health", account=ADMIN, credits="10")["key"]
        page.goto(gateway.root_url + "/admin")
        for model in ("acme/error-500", "acme/error-503", "acme/mock-model"):
            expect(endpoint_row(page, model).locator("[data-state]")).to_have_text("ok")  # no traffic yet

        assert [chat(gateway, key, "acme/error-500") for _ in range(3)] == [502, 502, 502]  # upstream failed
        assert chat(gateway, key, "acme/error-503") >= 500
        assert chat(gateway, key, "acme/mock-model", stream=True) == 200

        # No reload: the table refreshes itself every 5 s.
        ejected = endpoint_row(page, "acme/error-500")
        expect(ejected.locator("[data-state]")).to_have_text("ejected", timeout=12_000)
        cells = ejected.locator("td").all_inner_texts()
        assert cells[3] == "0 %" and cells[8].endswith(" UTC"), cells  # (the count restarts at an ejection)
        degraded = endpoint_row(page, "acme/error-503")
        expect(degraded.locator("[data-state]")).to_have_text("degraded")
        assert degraded.locator("td").nth(7).inner_text() == "1" and degraded.locator("td").nth(8).inner_text() == "—"
        healthy = endpoint_row(page, "acme/mock-model").locator("td").all_inner_texts()
        assert healthy[2] == "ok" and healthy[3] == "100 %" and healthy[4].endswith(" ms"), healthy
        assert endpoint_row(page, "acme/error-500").count() == 1
        shot(page, "admin-endpoints-live")
        # A fresh load renders the same state on the server.
        page.reload()
        expect(endpoint_row(page, "acme/error-500").locator("[data-state]")).to_have_text("ejected")

        user_page = other.new_page()
        browser_sign_up(user_page, gateway.root_url, USER)
        for path in ("/admin", "/admin/endpoints.json", "/admin?endpoints=all"):
            response = user_page.goto(gateway.root_url + path)
            assert response is not None and response.status == 403, path
            assert "administrators" in user_page.content()
    finally:
        admin.close()
        other.close()
