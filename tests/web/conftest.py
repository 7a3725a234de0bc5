"""Web-app fixtures: the real ASGI app (real SQLite database, real catalog) driven through Starlette's
TestClient, and helpers that sign up and read CSRF tokens the way a browser does."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.testclient import TestClient

from polyroute.http.app import create_app
from polyroute.settings import load_settings
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, acme_config_toml
from tests.web.browser import CHROMIUM_ARGS, RESULTS_DIR, require_chromium

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[Callable[[], TestClient]]:
    """A factory of clients (each its own cookie jar) on one app and database."""
    settings = load_settings({"POLYROUTE_DATA_DIR": str(tmp_path)})
    app = create_app(settings)
    clients: list[TestClient] = []
    first = TestClient(app, follow_redirects=False)
    first.__enter__()
    clients.append(first)

    def make() -> TestClient:
        if len(clients) == 1 and not getattr(first, "_handed_out", False):
            first._handed_out = True  # type: ignore[attr-defined]
            return first
        client = TestClient(app, follow_redirects=False)
        client.__enter__()  # shares the running app (lifespan ran once in the first client)
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


def sign_up(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign up through the form; returns the session's CSRF token."""
    page = client.get("/signup")
    assert page.status_code == 200, page.text
    response = client.post("/signup", data={"csrf_token": csrf_of(page.text), "email": email, "password": password})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/keys").text)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> int:
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(page.text), "email": email, "password": password})
    return response.status_code


# --- the real gateway process behind a fake upstream, and Debian's Chromium (browser tests) -----------
@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(require_chromium()), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def acme_gateway(
    workdir: Path, upstream: FakeOpenAIUpstream, extra_toml: str = "", database_url: str | None = None, **env: str
) -> GatewayProcess:
    """The gateway with the fake's `acme/*` models (tests/support/gateway.py), not yet started."""
    config = acme_config_toml(upstream.base_url, extra_toml=extra_toml)
    return GatewayProcess(workdir, config, {UPSTREAM_KEY_ENV: upstream.api_key, **env}, database_url)


def browser_sign_up(page: Page, root: str, email: str, password: str = PASSWORD) -> None:
    page.goto(root + "/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/keys")
