"""Secret scrubbing of log lines, request-id acceptance, and the JSON log format."""

from __future__ import annotations

import json
import logging

import pytest

from polyroute.domain.secret import Secret
from polyroute.observability.log_format import JsonFormatter, TextFormatter
from polyroute.observability.request_ids import accept_request_id
from polyroute.observability.scrub import MASK, Scrubber, scrub_url


def test_known_secret_values_from_the_environment_are_masked():
    scrub = Scrubber.from_env({"ACME_API_KEY": "plain-provider-secret-1", "HOME": "/home/someone-long"})
    assert scrub("upstream said plain-provider-secret-1 is bad") == f"upstream said {MASK} is bad"
    assert scrub("/home/someone-long") == "/home/someone-long"


@pytest.mark.parametrize("count", [3, 40])  # found by substring search, and by the alternation alone
def test_every_known_value_is_masked_however_many_there_are(count: int) -> None:
    values = [f"value-{i:03d}-{'x' * i}" for i in range(count)]
    scrub = Scrubber(values)
    for value in values:
        assert scrub(f"before {value} after") == f"before {MASK} after"
    assert scrub("nothing secret here") == "nothing secret here"
    # Overlapping values: the longest is masked whole.
    assert Scrubber(["abcdefgh", "abcdefghijkl"])("x abcdefghijkl y") == f"x {MASK} y"


def test_otlp_exporter_header_values_are_masked():
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=hc-team-secret-123,dataset=prod-traces-eu"}
    scrub = Scrubber.from_env(env)
    line = scrub("export failed with x-honeycomb-team=hc-team-secret-123 (dataset prod-traces-eu)")
    assert "hc-team-secret-123" not in line and "prod-traces-eu" not in line
    assert "export failed" in line


def test_secret_shaped_text_is_masked():
    scrub = Scrubber()
    line = (
        "Authorization: Bearer sk-pr-v1-0123456789abcdef0123456789 "
        "url=https://g.example/v1/models?key=AIzaSyABCDEF123&alt=sse "
        "db=postgresql://app:hunter2secret@db:5432/x cookie: polyroute_session=abcdef123456 "
        "hash=$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
    )
    out = scrub(line)
    for secret in ("sk-pr-v1-0123456789abcdef", "AIzaSyABCDEF123", "hunter2secret", "abcdef123456", "c2FsdA"):
        assert secret not in out, out
    assert "alt=sse" in out and "@db:5432" in out


def test_scrub_url_keeps_the_shape_of_the_url():
    assert scrub_url("https://h.example/v1beta/models/x:generate?key=SECRETVALUE") == (
        f"https://h.example/v1beta/models/x:generate?key={MASK}"
    )


def test_a_sane_incoming_request_id_is_kept_and_others_replaced():
    assert accept_request_id(b"lb-0123456789") == "lb-0123456789"
    for hostile in (b"short", b"x" * 200, b'a" b=1 {}', b"line\nbreak-12345", None):
        assert accept_request_id(hostile).startswith("req-")
    assert accept_request_id(None) != accept_request_id(None)


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("polyroute.test", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_json_lines_carry_request_id_and_fields_and_are_scrubbed():
    formatter = JsonFormatter(Scrubber(["provider-secret-xyz"]))
    line = formatter.format(
        _record("call failed: %s", "provider-secret-xyz", request_id="req-1", http={"status": 502, "model": "a/b"})
    )
    entry = json.loads(line)
    assert entry["request_id"] == "req-1" and entry["status"] == 502 and entry["model"] == "a/b"
    assert "provider-secret-xyz" not in line


def test_text_lines_are_scrubbed_and_a_secret_object_never_prints():
    formatter = TextFormatter(Scrubber())
    line = formatter.format(_record("key %s and %r", Secret("sk-abcdefghijklmnopqrstuvwxyz"), Secret("x" * 20)))
    assert "abcdefghijklmnop" not in line and "xxxxxxxx" not in line
