"""The session-wide leak scan (tests/support/leak_scan.py) finds what it is meant to find: a registered
secret, a key- or cookie-shaped value, a prompt, in any registered log, and fails a pytest run over it.

Each test registers into its own session directory, never the running session's (a planted secret
there would fail this very run).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import types
from pathlib import Path

import pytest

from polyroute.accounts.keys import generate_key, mask_key
from polyroute.accounts.sessions import SESSION_TOKEN_BYTES
from tests.support import leak_scan
from tests.support.gateway import REPO_ROOT, clean_env

SECRET = "canary-password-0123456789-abcdef"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "registry"
    directory.mkdir()
    monkeypatch.setenv(leak_scan.SESSION_DIR_ENV, str(directory))
    return directory


def _log(tmp_path: Path, text: str, name: str = "gateway.log") -> Path:
    path = tmp_path / name
    path.write_text(text)
    leak_scan.register_log(path)
    return path


def test_a_registered_secret_in_a_log_is_reported_by_file_kind_and_prefix_only(registry: Path, tmp_path: Path):
    leak_scan.register_secret("password", SECRET)
    clean = _log(tmp_path, '{"level": "DEBUG", "message": "sign-in failed"}\n', "clean.log")
    leaky = _log(tmp_path, f'{{"level": "DEBUG", "message": "form {SECRET} {SECRET}"}}\n', "leaky.log")

    report = leak_scan.scan(registry)

    assert [(f.path, f.kind, f.count) for f in report.findings] == [(f"{leaky} (gateway log)", "password", 2)]
    assert report.findings[0].shown == SECRET[: leak_scan.SHOWN_CHARS] + "..."
    assert SECRET not in str(report.findings[0]) + report.summary()
    assert (report.logs, report.secrets, report.bytes_scanned) == (2, 1, clean.stat().st_size + leaky.stat().st_size)
    assert "1 LEAK(S)" in report.summary()


def test_any_full_api_key_is_a_leak_even_unregistered_but_a_masked_one_is_not(registry: Path, tmp_path: Path):
    key, other = generate_key(), generate_key()
    _log(tmp_path, f"auth ok for {mask_key(other)}\nAuthorization: Bearer [REDACTED]\nbad key {key}\n")

    findings = leak_scan.scan(registry).findings

    assert [(f.kind, f.shown) for f in findings] == [("API key (pattern)", key[:6] + "...")]


def test_a_named_session_cookie_or_a_password_hash_is_a_leak_but_redacted_ones_are_not(registry, tmp_path):
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    digest = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
    _log(tmp_path, f'cookie: polyroute_session=[REDACTED]\nhash [REDACTED]\n{{"polyroute_session": "{token}"}}\n')
    _log(tmp_path, f"verify {digest}\n", "other.log")

    findings = leak_scan.scan(registry).findings

    assert [(f.kind, f.shown, f.count) for f in findings] == [
        ("session cookie (pattern)", token[:6] + "...", 1),
        ("password hash (pattern)", "$argon...", 1),
    ]


def test_a_prompt_is_found_json_escaped_and_by_its_tail(registry: Path, tmp_path: Path):
    prompt = 'Say "bonjour"\nthen tell me where the treasure is buried, in detail'
    leak_scan.register_request({"messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}, {})
    escaped = _log(tmp_path, json.dumps({"message": f"upstream said: {prompt}"}), "escaped.log")
    tail = _log(tmp_path, f"truncated: ...{prompt[-25:]}", "tail.log")

    findings = leak_scan.scan(registry).findings

    assert sorted((f.path, f.kind) for f in findings) == [
        (f"{escaped} (gateway log)", "prompt"),
        (f"{tail} (gateway log)", "prompt"),
    ]


def test_bytes_a_fake_collector_received_are_scanned_too(registry: Path):
    leak_scan.register_secret("metrics token", SECRET)
    leak_scan.keep_for_scan("exported spans", b"\x0a\x12protobuf\x1a" + SECRET.encode() + b"\x00")
    leak_scan.keep_for_scan("exported spans", b"\x0a\x05clean")

    findings = leak_scan.scan(registry).findings

    assert [(f.path.rsplit(" (", 1)[1], f.kind, f.count) for f in findings] == [("exported spans)", "metrics token", 1)]


def test_what_the_suite_used_is_registered_without_listing_it(registry: Path):
    leak_scan.register_env(
        {
            "ACME_API_KEY": "sk-provider-key-from-env-0001",
            "POLYROUTE_METRICS_TOKEN": "metrics-token-0002",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-key=otlp-header-value-0003,x-b=short",
            "POLYROUTE_REDIS_URL": "redis://user:redis-password-0004@127.0.0.1:6379/0",
            "POLYROUTE_DATA_DIR": "/tmp/some/data/dir",
            "POLYROUTE_KEY_CACHE_PATH": "/tmp/not/a/secret",
            "POLYROUTE_KEY_TPM": "100000000000",  # settings with secret-sounding names, numbers
            "POLYROUTE_KEY_CACHE_TTL_S": "30.5",
            "POLYROUTE_ACCOUNT_RPM": "100000000",
        }
    )
    headers = {"Authorization": "Bearer sk-upstream-bearer-0005", "x-goog-api-key": "AIza-goog-0006"}
    leak_scan.register_request({"system": "You are terse 0007", "messages": [{"content": "hi"}]}, headers)
    leak_scan.register_request(None, {}, "/v1beta/models/x:generateContent?key=gemini-query-key-0008&alt=sse")
    module = types.ModuleType("tests.fake_module")
    module.PASSWORD, module.UPSTREAM_KEY_ENV, module.MAX_TOKENS = "a long enough password", "ACME_API_KEY", 100
    leak_scan.register_module_constants([module])

    _logs, secrets = leak_scan.read_registry(registry)
    values = sorted(value for _kind, value in secrets)

    assert values == sorted(
        [
            "sk-provider-key-from-env-0001",
            "metrics-token-0002",
            "otlp-header-value-0003",
            "redis-password-0004",
            "sk-upstream-bearer-0005",
            "AIza-goog-0006",
            "You are terse 0007",
            "gemini-query-key-0008",
            "a long enough password",
        ]
    )


def _run_pytest(tmp_path: Path, source: str) -> tuple[int, str]:
    """A real pytest session on one test file, with the suite's hooks (tests/conftest.py)."""
    test_file = tmp_path / "test_planted.py"
    test_file.write_text(source)
    env = clean_env({"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])})
    env.pop(leak_scan.SESSION_DIR_ENV, None)  # its own session, not this one
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider"]
    command += ["-o", "asyncio_default_fixture_loop_scope=function", "--rootdir", str(tmp_path), "-c", os.devnull]
    command.append(str(test_file))
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    return result.returncode, result.stdout + result.stderr


def test_a_leak_fails_the_pytest_run_and_the_report_never_shows_the_secret(tmp_path: Path):
    """A log registered as GatewayProcess does, carrying a secret a test registered, fails the run
    although every test passed."""
    code, output = _run_pytest(
        tmp_path,
        "from tests.support import leak_scan\n\n"
        "def test_passes_but_logs_a_secret(tmp_path):\n"
        f"    leak_scan.register_secret('password', {SECRET!r})\n"
        "    log = tmp_path / 'gateway.log'\n"
        f"    log.write_text('DEBUG form field {SECRET}\\n')\n"
        "    leak_scan.register_log(log)\n\n"
        "def test_clean(tmp_path):\n"
        "    leak_scan.register_log(tmp_path / 'gone.log')\n",
    )

    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert "2 passed" in output, output
    assert f"secret0/gateway.log (gateway log): password '{SECRET[:6]}...' x1" in output, output
    assert "2 log files (1 gone), 51 bytes" in output and "1 LEAK(S)" in output, output  # + its in-process log
    assert SECRET not in output.replace(f"{SECRET!r}", ""), "the report printed the secret"


def test_a_real_gateway_logging_a_test_constant_fails_the_run(tmp_path: Path):
    """End to end: a GatewayProcess (at DEBUG by default) logs a caller's `X-Request-Id`; the test
    module's CANARY_TOKEN constant registers itself; the scan finds it in gateway.log. An API key sent
    the same way is masked by the gateway's scrubber, so the key pattern finds nothing."""
    code, output = _run_pytest(
        tmp_path,
        "import requests\n"
        "from polyroute.accounts.keys import generate_key\n"
        "from tests.support.gateway import GatewayProcess\n\n"
        "CANARY_TOKEN = 'canary-token-f00dfeedcafe'\n\n"
        "def test_a_gateway_logs_the_request_id(tmp_path):\n"
        "    with GatewayProcess(tmp_path / 'gw', '') as gateway:\n"
        "        for request_id in (CANARY_TOKEN, generate_key()):\n"
        "            headers = {'X-Request-Id': request_id}\n"
        "            assert requests.get(gateway.root_url + '/healthz', headers=headers, timeout=10).ok\n"
        "    assert gateway.env['POLYROUTE_LOG_LEVEL'] == 'DEBUG'\n"
        '    assert \'"level":"DEBUG"\' in gateway.log_path.read_text()\n',
    )

    assert code == pytest.ExitCode.TESTS_FAILED, output
    assert "1 passed" in output, output
    assert "gw/gateway.log (gateway log): CANARY_TOKEN (test_planted) 'canary...'" in output, output
    assert "1 LEAK(S)" in output and "(pattern)" not in output, output


def test_the_test_process_own_polyroute_records_are_captured_at_debug_for_the_scan():
    """TestClient apps and stores run inside pytest: their records join the scan like a gateway's log."""
    assert leak_scan.active(), "pytest runs with the leak scan's session"
    marker = f"probe-{secrets.token_hex(8)}"
    logging.getLogger("polyroute.leak_scan_probe").debug("in-process %s, Bearer sk-pr-v1-%s", marker, "0" * 64)

    logs, _secrets = leak_scan.read_registry(leak_scan.session_dir() or Path())
    captured = [Path(path).read_text() for kind, path in logs if kind == "in-process log" and Path(path).exists()]
    assert any(marker in text and "Bearer [REDACTED]" in text for text in captured), "not captured, or not scrubbed"
