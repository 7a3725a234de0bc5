"""Every state-changing web route refuses a request without a valid CSRF token (the routes are
enumerated from the route table), and one user can never read or change another's data."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from starlette.routing import Route
from starlette.testclient import TestClient

from polyroute.db.tables import generations, utc_now
from polyroute.web.routes import web_routes
from tests.web.conftest import csrf_of, sign_up

Clients = Callable[[], TestClient]
SAFE = {"GET", "HEAD"}


def state_changing_routes() -> list[tuple[str, str]]:
    found = []
    for route in web_routes():
        if isinstance(route, Route):
            found.extend((method, route.path) for method in sorted((route.methods or set()) - SAFE))
    return found


def _create_key(client: TestClient, csrf: str, name: str) -> str:
    response = client.post("/keys", data={"csrf_token": csrf, "name": name})
    assert response.status_code == 201
    keys = client.app.state.services.accounts  # type: ignore[attr-defined]
    found = client.portal.call(keys.list_keys)  # type: ignore[union-attr]
    return next(key.hash for key in found if key.name == name)


def _add_generation(client: TestClient, account_id: int, key_hash: str, model: str) -> str:
    generation_id = f"gen-{uuid.uuid4().hex}"
    row: dict[str, Any] = {
        "id": generation_id, "account_id": account_id, "key_hash": key_hash, "model": model, "provider": "local",
        "status": "ok", "prompt_tokens": 5, "completion_tokens": 7, "cost_pusd": 1234, "created_at": utc_now(),
    }  # fmt: skip

    async def insert() -> None:
        async with client.app.state.services.engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(generations.insert().values(row))

    client.portal.call(insert)  # type: ignore[union-attr]
    return generation_id


def test_the_route_table_has_the_state_changing_routes_we_expect() -> None:
    paths = {path for _, path in state_changing_routes()}
    assert {"/login", "/signup", "/logout", "/keys", "/keys/{hash}/toggle", "/chat/key", "/admin/grant"} <= paths
    assert len(state_changing_routes()) >= 13


def test_every_state_changing_route_refuses_a_missing_wrong_or_cross_site_token(app_client: Clients) -> None:
    client = app_client()
    csrf = sign_up(client, "admin@example.com")  # the first account: an admin, so admin routes are reachable
    key_hash = _create_key(client, csrf, "victim-key")
    for method, template in state_changing_routes():
        path = template.replace("{hash}", key_hash)
        attempts = {
            "no token": {"data": {"name": "x", "amount": "5", "email": "admin@example.com", "open": "0"}},
            "wrong token": {"data": {"csrf_token": "forged", "name": "x", "amount": "5"}},
            "wrong header": {"headers": {"X-CSRF-Token": "forged"}},
            "foreign origin": {"data": {"csrf_token": csrf, "name": "x"}, "headers": {"Origin": "https://evil.test"}},
        }
        for what, kwargs in attempts.items():
            response = client.request(method, path, **kwargs)
            assert response.status_code == 403, f"{method} {path} with {what}: {response.status_code}"
    keys = client.get("/keys").text
    assert "victim-key" in keys and ">active<" in keys and "x</td>" not in keys
    assert client.get("/signup").status_code == 200  # sign-up was not closed by a forged request


def test_anonymous_forms_need_their_double_submit_token(app_client: Clients) -> None:
    client = app_client()
    client.get("/signup")  # sets the double-submit cookie
    for path in ("/signup", "/login"):
        response = client.post(path, data={"email": "a@example.com", "password": "long enough pw"})
        assert response.status_code == 403
        response = client.post(path, data={"csrf_token": "guess", "email": "a@example.com", "password": "pw12345678"})
        assert response.status_code == 403


def test_a_user_can_never_read_or_change_another_users_keys_generations_or_settings(app_client: Clients) -> None:
    alice, bob = app_client(), app_client()
    alice_csrf = sign_up(alice, "alice@example.com")
    bob_csrf = sign_up(bob, "bob@example.com")
    alice_key = _create_key(alice, alice_csrf, "alice-secret-key")
    accounts = alice.app.state.services.accounts  # type: ignore[attr-defined]
    alice_id = alice.portal.call(accounts.get_account_by_email, "alice@example.com").id  # type: ignore[union-attr]
    generation_id = _add_generation(alice, alice_id, alice_key, "google/gemma-3-270m")
    alice.post("/settings/default-model", data={"csrf_token": alice_csrf, "default_model": "google/gemma-3-270m"})

    # reads: nothing of Alice's shows up anywhere Bob looks
    for path in ("/keys", "/activity", f"/activity?key={alice_key}", "/activity.csv", f"/activity.csv?key={alice_key}",
                 "/credits", "/settings", "/chat"):  # fmt: skip
        body = bob.get(path).text
        assert "alice-secret-key" not in body and generation_id not in body, path
        assert alice_key in path or alice_key not in body, path  # (a page may echo Bob's own query string)
    # writes: Alice's key is not Bob's to disable or delete
    for action in ("toggle", "delete"):
        assert bob.post(f"/keys/{alice_key}/{action}", data={"csrf_token": bob_csrf}).status_code == 404
    key = alice.portal.call(accounts.find_key, alice_key)  # type: ignore[union-attr]
    assert key is not None and not key.disabled and key.revoked_at is None
    # settings: Bob's change stays Bob's
    bob.post(
        "/settings/default-model", data={"csrf_token": bob_csrf, "default_model": "huggingfacetb/smollm2-135m-instruct"}
    )
    alice_account = alice.portal.call(accounts.get_account, alice_id)  # type: ignore[union-attr]
    assert alice_account.default_model == "google/gemma-3-270m"
    alice.post("/settings/providers", data={"csrf_token": alice_csrf, "sort": "latency", "allow_fallbacks": "1"})
    bob.post("/settings/providers", data={"csrf_token": bob_csrf, "sort": "price", "allow_fallbacks": "1"})
    defaults = alice.app.state.services.provider_defaults  # type: ignore[attr-defined]
    assert alice.portal.call(defaults.get, alice_id) == {"sort": "latency"}  # type: ignore[union-attr]
    assert '<option value="latency" selected>' in alice.get("/settings").text
    assert '<option value="latency" selected>' not in bob.get("/settings").text
    # and Alice does see her own generation
    assert generation_id in alice.get("/activity.csv").text
    assert "alice-secret-key" in alice.get("/activity").text


def test_a_non_admin_cannot_use_admin_routes(app_client: Clients) -> None:
    admin, user = app_client(), app_client()
    sign_up(admin, "root@example.com")
    csrf = sign_up(user, "user@example.com")
    attempts = [
        ("/admin/grant", {"email": "user@example.com", "amount": "100"}),
        ("/admin/codes", {"amount": "5"}),
        ("/admin/signup", {"open": "0"}),
    ]
    for path, data in attempts:
        assert user.post(path, data={"csrf_token": csrf, **data}).status_code == 403
    assert "$0" in user.get("/credits").text


def test_credit_codes_pay_out_once(app_client: Clients) -> None:
    admin, user = app_client(), app_client()
    admin_csrf = sign_up(admin, "root@example.com")
    csrf = sign_up(user, "user@example.com")
    page = admin.post("/admin/codes", data={"csrf_token": admin_csrf, "amount": "2.5"})
    code = csrf_of(page.text) and page.text.split('id="new-code" readonly value="')[1].split('"')[0]
    assert user.post("/credits/redeem", data={"csrf_token": csrf, "code": code}).status_code == 200
    assert user.post("/credits/redeem", data={"csrf_token": csrf, "code": code}).status_code == 400
    assert "$2.5" in user.get("/credits").text
    grant = admin.post("/admin/grant", data={"csrf_token": admin_csrf, "email": "user@example.com", "amount": "1"})
    assert grant.status_code == 200
    assert "$3.5" in user.get("/credits").text
