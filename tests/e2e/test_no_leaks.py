"""Issue #10's acceptance: a representative mix of the suite's traffic, with the gateway at DEBUG,
leaves no canary secret (API keys, provider key, password, session cookie, metrics token, the
OTLP exporter's header) nor the canary prompt text in the gateway's log, in the CLI's stderr, or in
the OpenTelemetry spans it exported (tracing is on, to a fake OTLP collector).

The mix: web sign-up and sign-in (canary password), good / unknown / revoked keys, the management
API, chat JSON and SSE with a canary prompt, upstream failures (400 echoing the request, 401, 429,
500, garbage, cut streams), bad JSON, unknown routes and models, /metrics with right and wrong tokens.

The whole suite's traffic is checked too, at the end of every pytest run (tests/support/leak_scan.py,
hooks in tests/conftest.py): every `GatewayProcess` logs at DEBUG and registers its log and its CLI's
stderr, and the test process's own polyroute records (TestClient apps) go to a scanned file at DEBUG;
the secrets the suite used register themselves (secret-named environment values and test-module
constants, keys from `create_key`, the provider keys and prompts the fake upstreams received, and what a
test adds, like this one's canaries and session cookies); then each log is searched for each secret and
for anything shaped like an API key, a session cookie or a password hash, and a find fails the run
(file, kind, a 6-character prefix). tests/support/test_leak_scan.py shows that it does.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest
import requests
from tests.e2e.conftest import E2E_TIMEOUTS
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.fakes.otlp_collector import FakeOtlpCollector
from tests.support import leak_scan
from tests.support.gateway import UPSTREAM_KEY_ENV, GatewayProcess, acme_config_toml

RUN = secrets.token_hex(6)
PROVIDER_KEY = f"sk-canaryprovider{RUN}0123456789"
METRICS_TOKEN = f"canary-metrics-token-{RUN}"
PASSWORD = f"Canary-Passw0rd-{RUN}!"
WRONG_PASSWORD = f"Wrong-Canary-Passw0rd-{RUN}!"
UNKNOWN_KEY = f"sk-pr-v1-{RUN}{'c' * 52}"
PROMPT = f"CANARY PROMPT {RUN}: the treasure is buried under the old oak"
EMAIL = f"canary-{RUN}@example.com"
OTLP_HEADER_KEY = f"canary-otlp-header-{RUN}"


@pytest.fixture(scope="module")
def leak_upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(api_key=PROVIDER_KEY) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def collector() -> Iterator[FakeOtlpCollector]:
    with FakeOtlpCollector() as fake:
        yield fake


@pytest.fixture(scope="module")
def debug_gateway(leak_upstream, collector, tmp_path_factory) -> Iterator[GatewayProcess]:
    env = {
        UPSTREAM_KEY_ENV: PROVIDER_KEY,
        "POLYROUTE_LOG_LEVEL": "DEBUG",
        "POLYROUTE_METRICS_TOKEN": METRICS_TOKEN,
        "POLYROUTE_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-collector-key={OTLP_HEADER_KEY}",
        **E2E_TIMEOUTS,
    }
    with GatewayProcess(tmp_path_factory.mktemp("leaks"), acme_config_toml(leak_upstream.base_url), env) as gateway:
        yield gateway


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def _web_traffic(gateway: GatewayProcess) -> list[str]:
    """Sign up and in through the web app; returns the session cookie values seen."""
    web = requests.Session()
    page = web.get(f"{gateway.root_url}/signup", timeout=10)
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(page.text)}
    assert web.post(f"{gateway.root_url}/signup", data=form, timeout=30).status_code == 200
    cookies = [c.value for c in web.cookies if "session" in c.name]
    assert cookies, "sign-up set no session cookie"
    web.get(f"{gateway.root_url}/keys", timeout=10)
    other = requests.Session()
    page = other.get(f"{gateway.root_url}/login", timeout=10)
    bad = {"email": EMAIL, "password": WRONG_PASSWORD, "csrf_token": _csrf(page.text)}
    assert other.post(f"{gateway.root_url}/login", data=bad, timeout=30).status_code == 400
    good = {"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(page.text)}
    assert other.post(f"{gateway.root_url}/login", data=good, timeout=30).status_code == 200
    cookies += [c.value for c in other.cookies if "session" in c.name]
    other.get(f"{gateway.root_url}/keys", timeout=10)
    return cookies


def _chat(gateway: GatewayProcess, key: str, model: str, stream: bool = False) -> requests.Response:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
    return requests.post(
        f"{gateway.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _api_traffic(gateway: GatewayProcess, key: str, management: str) -> str:
    """Inference, errors and the management API; returns the revoked key's value."""
    for model in ("acme/mock-model", "acme/tool-model", "acme/failover"):
        assert _chat(gateway, key, model).status_code == 200
        assert _chat(gateway, key, model, stream=True).status_code == 200
    for model in ("acme/error-400", "acme/error-401", "acme/error-429", "acme/error-500", "acme/garbage"):
        assert _chat(gateway, key, model).status_code >= 400
    for model in ("acme/cut-after-2", "acme/error-500", "acme/no-such-model"):
        _chat(gateway, key, model, stream=True)
    assert _chat(gateway, UNKNOWN_KEY, "acme/mock-model").status_code == 401
    assert _chat(gateway, management, "acme/mock-model").status_code == 403
    auth = {"Authorization": f"Bearer {key}"}
    bad_json = requests.post(f"{gateway.base_url}/chat/completions", data=PROMPT.encode(), headers=auth, timeout=10)
    assert bad_json.status_code == 400
    for path in ("key", "credits", "models", "no-such-route"):
        requests.get(f"{gateway.base_url}/{path}", headers=auth, timeout=10)
    admin = {"Authorization": f"Bearer {management}"}
    created = requests.post(f"{gateway.base_url}/keys", json={"name": "to-revoke"}, headers=admin, timeout=10)
    assert created.status_code == 201, created.text
    revoked, revoked_hash = created.json()["key"], created.json()["data"]["hash"]
    assert _chat(gateway, revoked, "acme/mock-model").status_code in (200, 402)
    requests.patch(f"{gateway.base_url}/keys/{revoked_hash}", json={"name": "x"}, headers=admin, timeout=10)
    assert requests.delete(f"{gateway.base_url}/keys/{revoked_hash}", headers=admin, timeout=10).status_code == 200
    requests.get(f"{gateway.base_url}/keys", headers=admin, timeout=10)
    requests.get(f"{gateway.base_url}/activity", headers=admin, timeout=10)
    for _ in range(3):  # the authenticator's cache may still hold it for a moment
        _chat(gateway, revoked, "acme/mock-model")
    metrics = f"{gateway.root_url}/metrics"
    assert requests.get(metrics, headers={"Authorization": f"Bearer {METRICS_TOKEN}x"}, timeout=10).status_code == 401
    assert requests.get(metrics, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).status_code == 200
    return revoked


def test_debug_logs_cli_output_and_spans_carry_no_secret_and_no_prompt(debug_gateway, leak_upstream, collector):
    cookies = _web_traffic(debug_gateway)
    cli_runs: list[subprocess.CompletedProcess[str]] = []
    record = debug_gateway.create_key(name="leak", account=EMAIL, credits="50")
    management = debug_gateway.create_key(name="leak-admin", account=EMAIL, management=True, credits=None)["key"]
    cli_runs.append(debug_gateway.cli("keys", "list", "--account", EMAIL))
    cli_runs.append(debug_gateway.cli("keys", "create", "--account", "nobody", "--name", PASSWORD))
    revoked = _api_traffic(debug_gateway, record["key"], management)
    assert leak_upstream.chat_requests(), "the upstream saw no traffic"
    debug_gateway.stop()  # also exports the last spans

    log = debug_gateway.log_path.read_text(errors="replace")
    assert re.search(r'"level": ?"DEBUG"', log), "the gateway did not log at DEBUG"
    assert "polyroute.access" in log
    canaries = {
        "api key": record["key"],
        "management key": management,
        "revoked key": revoked,
        "unknown key": UNKNOWN_KEY,
        "provider key": PROVIDER_KEY,
        "metrics token": METRICS_TOKEN,
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "prompt": RUN + ": the treasure",
        "OTLP exporter header": OTLP_HEADER_KEY,
        **{f"session cookie {i}": value for i, value in enumerate(cookies)},
    }
    places = {"gateway log": log, **{f"cli stderr {i}": run.stderr for i, run in enumerate(cli_runs)}}
    places["cli stdout (keys list)"] = cli_runs[0].stdout
    assert len(collector.spans) > 50, "the gateway exported (almost) no spans"
    places["exported spans"] = b"".join(collector.exports).decode("latin-1")
    leaks = [
        f"{name} in {place}"
        for name, secret in canaries.items()
        for place, text in places.items()
        if secret in text or (len(secret) > 24 and secret[-20:] in text)
    ]
    for name, secret in canaries.items():  # and the whole suite's logs too, at the end of the run
        leak_scan.register_secret(name, secret)
    assert not leaks, leaks
    assert "$argon2" not in log, "a password hash reached the log"
    assert any(PROMPT in str(request.body) for request in leak_upstream.chat_requests()), "the canary prompt was sent"
