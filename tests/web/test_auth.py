"""Sign up, sign in, sign out: first-user admin, identical failures, rate limit, cookies, sign-up toggle."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from starlette.testclient import TestClient

from polyroute.accounts import passwords
from polyroute.web.login_limits import FAILURES_PER_EMAIL
from tests.support.gateway import REPO_ROOT, clean_env, run_cli
from tests.web.conftest import PASSWORD, csrf_of, sign_in, sign_up

Clients = Callable[[], TestClient]


def _account_flags(client: TestClient) -> str:
    return client.get("/settings").text


def test_first_sign_up_is_admin_and_later_ones_are_not(app_client: Clients) -> None:
    first, second = app_client(), app_client()
    sign_up(first, "first@example.com")
    sign_up(second, "second@example.com")
    assert "(admin)" in _account_flags(first)
    assert "(admin)" not in _account_flags(second)
    assert first.get("/admin").status_code == 200
    assert second.get("/admin").status_code == 403


def test_unknown_email_and_wrong_password_get_the_same_answer(app_client: Clients) -> None:
    sign_up(app_client(), "known@example.com")
    answers = []
    for email in ("known@example.com", "nobody@example.com"):
        client = app_client()
        page = client.get("/login")
        response = client.post(
            "/login", data={"csrf_token": csrf_of(page.text), "email": email, "password": "wrong-pw1"}
        )
        body = response.text.replace(email, "EMAIL").replace(csrf_of(response.text), "TOKEN")
        answers.append(
            (
                response.status_code,
                body,
                "set-cookie" in response.headers and "session" in response.headers["set-cookie"],
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == 400 and "Incorrect email or password." in answers[0][1]


def test_sign_in_is_rate_limited_per_email(app_client: Clients) -> None:
    sign_up(app_client(), "target@example.com")
    client = app_client()
    for _ in range(FAILURES_PER_EMAIL):
        assert sign_in(client, "target@example.com", "wrong-password") == 400
    assert sign_in(client, "target@example.com", PASSWORD) == 429  # even the right password waits
    assert sign_in(client, "TARGET@example.com ", "wrong-password") == 429  # the email is normalised


def test_session_cookie_is_httponly_lax_and_rotated_at_each_sign_in(app_client: Clients) -> None:
    client = app_client()
    sign_up(client, "cookie@example.com")
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/keys").text)})
    tokens = []
    for _ in range(2):
        page = client.get("/login")
        response = client.post(
            "/login", data={"csrf_token": csrf_of(page.text), "email": "cookie@example.com", "password": PASSWORD}
        )
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("polyroute_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback
        tokens.append(re.match(r"polyroute_session=([^;]+)", cookie).group(1))  # type: ignore[union-attr]
    assert tokens[0] != tokens[1]


def test_over_tls_the_cookie_is_secure_with_the_host_prefix(app_client: Clients) -> None:
    client = app_client()
    client.base_url = client.base_url.copy_with(scheme="https")  # type: ignore[attr-defined]
    page = client.get("/signup")
    response = client.post(
        "/signup", data={"csrf_token": csrf_of(page.text), "email": "tls@example.com", "password": PASSWORD}
    )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-polyroute_session=") and "Secure" in cookie and "Path=/" in cookie


def test_sign_out_ends_the_session_and_revokes_the_chat_key(app_client: Clients) -> None:
    client = app_client()
    csrf = sign_up(client, "out@example.com")
    key = client.post("/chat/key", headers={"X-CSRF-Token": csrf}).json()["key"]
    assert client.get("/api/v1/key", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/keys").status_code == 303  # back to the sign-in page
    assert client.get("/api/v1/key", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_an_admin_can_close_sign_up(app_client: Clients) -> None:
    admin = app_client()
    csrf = sign_up(admin, "admin@example.com")
    assert admin.post("/admin/signup", data={"csrf_token": csrf, "open": "0"}).status_code == 200
    visitor = app_client()
    assert visitor.get("/signup").status_code == 403
    assert admin.post("/admin/signup", data={"csrf_token": csrf, "open": "1"}).status_code == 200
    assert visitor.get("/signup").status_code == 200


def test_passwords_use_argon2id_at_owasp_parameters_and_old_hashes_are_upgraded(app_client: Clients) -> None:
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert passwords.needs_rehash(weak) and not passwords.needs_rehash(stored)
    assert passwords.verify_password(weak, PASSWORD)
    assert not passwords.verify_password(None, PASSWORD)


def test_cli_creates_an_admin_with_a_password_that_can_sign_in(tmp_path: Path, app_client: Clients) -> None:
    env = clean_env({"POLYROUTE_DATA_DIR": str(tmp_path)})
    args = ["accounts", "create", "ops@example.com", "--admin", "--password-stdin"]
    result = run_cli(args, env, REPO_ROOT, input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert "(admin)" in result.stdout
    client = app_client()  # the same data dir: the fixture's app uses tmp_path too
    assert sign_in(client, "ops@example.com") == 303
    assert client.get("/admin").status_code == 200
