"""Issue #10: the whole suite's traffic leaves no secret and no prompt in any log (the session-wide scan).

While pytest runs, a registry lives in a session directory named by `$POLYROUTE_TEST_LEAK_SCAN_DIR`
(made by `start_session`, inherited by subprocesses and xdist workers). It lists every log the suite
writes (each `GatewayProcess`'s gateway.log and CLI stderr, the spans fake collectors received, this
process's own polyroute records) and every secret the suite used: the environment's secret-named values,
the keys the CLI created, the provider keys and prompts the fake upstreams received, the test modules'
secret-named constants (passwords, tokens, canary prompts) and whatever a test registers itself.
`finish_session` then scans each log for each registered secret (whole, or its last 20 characters) and
for anything shaped like one of our API keys, a session cookie or a password hash, and fails the run on
a find. Its report names the file, the kind and a short prefix only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from polyroute.accounts.keys import KEY_PREFIX, KEY_RANDOM_BYTES
from polyroute.accounts.sessions import SESSION_TOKEN_BYTES

SESSION_DIR_ENV = "POLYROUTE_TEST_LEAK_SCAN_DIR"
MIN_SECRET_CHARS = 8
MIN_PROMPT_CHARS = 12  # shorter prompts ("hi", "Checking.") could match ordinary log text
MAX_PROMPT_CHARS = 200
TAIL_CHARS = 20  # a secret longer than TAIL_CHARS + 4 also counts as leaked when its tail shows
SHOWN_CHARS = 6  # how much of a secret a report may print
API_KEY_PATTERN = re.compile(re.escape(KEY_PREFIX).encode() + rb"[0-9a-f]{%d}" % (2 * KEY_RANDOM_BYTES))
# A session cookie, named, with its value (token_urlsafe(SESSION_TOKEN_BYTES) is 43 characters).
SESSION_COOKIE_PATTERN = re.compile(
    rb"(?:__Host-)?polyroute_session[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9_\-]{%d,})" % (SESSION_TOKEN_BYTES * 4 // 3)
)
PASSWORD_HASH_PATTERN = re.compile(rb"\$argon2(?:id|i|d)\$[A-Za-z0-9+/=$,.\-]{20,}")
# Secret-named constants and environment variables (like polyroute/observability/scrub.py).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|COOKIE|PROMPT)", re.IGNORECASE)
_NOT_SECRET_SUFFIX = re.compile(r"_(ENV|NAME|FIELD|HEADER|PATH|PREFIX|BYTES|PATTERN|RE|URL|FILE|DIR|LEN|CHARS|S|MS)$")
_LIMIT_SUFFIX = re.compile(r"_(RPM|TPM|RPD|TTL|TTL_S|LIMIT)$")
_PROMPT_FIELDS = {"content", "text", "prompt", "system", "input"}
_KEY_HEADERS = {"x-api-key", "x-goog-api-key", "api-key"}
_PATTERNS = (
    (API_KEY_PATTERN, "API key"),
    (SESSION_COOKIE_PATTERN, "session cookie"),
    (PASSWORD_HASH_PATTERN, "password hash"),
)
_lock = threading.Lock()
_seen: set[tuple[str, str, str, str]] = set()  # (session directory, registry file, kind, value)


def session_dir() -> Path | None:
    value = os.environ.get(SESSION_DIR_ENV)
    return Path(value) if value else None


def active() -> bool:
    return session_dir() is not None


def _append(name: str, record: tuple[str, str]) -> None:
    directory = session_dir()
    if directory is None:
        return
    entry = (str(directory), name, *record)
    with _lock:
        if entry in _seen:
            return
        _seen.add(entry)
        with (directory / f"{name}.jsonl").open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


# --- registering logs and secrets ------------------------------------------------------------------------
def register_log(path: Path | str, kind: str = "gateway log") -> None:
    """A file to scan at the end of the session (it need not exist yet)."""
    _append("logs", (kind, str(Path(path).resolve())))


def keep_for_scan(kind: str, data: bytes) -> None:
    """Bytes that left a gateway another way (a fake OTLP collector's exports), kept in a scanned file."""
    directory = session_dir()
    if directory is None:
        return
    path = directory / f"{re.sub(r'[^a-z0-9]+', '-', kind.lower())}-{os.getpid()}.bin"
    register_log(path, kind)
    with _lock, path.open("ab") as file:
        file.write(data + b"\n")


def register_secret(kind: str, value: object, min_chars: int = MIN_SECRET_CHARS) -> None:
    """A value that must appear in no registered log; too-short values are ignored."""
    if isinstance(value, str) and len(value.strip()) >= min_chars:
        _append("secrets", (kind, value))


def register_env(env: Mapping[str, str]) -> None:
    """Secret-named variables (provider keys, tokens), OTLP header values, passwords in URLs."""
    for name, value in env.items():
        if name.startswith("OTEL_EXPORTER_OTLP_") and name.endswith("HEADERS"):
            for pair in value.split(","):
                register_secret(f"env {name}", pair.partition("=")[2].strip())
        elif _SECRET_NAME.search(name) and not _is_setting(name, value):
            register_secret(f"env {name}", value)
        elif "://" in value:
            register_secret(f"password in {name}", _url_password(value))


def _is_setting(name: str, value: str) -> bool:
    """A secret-sounding name holding no secret: a path, a number (POLYROUTE_KEY_RPM=100000), a TTL."""
    return (
        value.startswith(("/", "."))
        or value.replace(".", "", 1).isdigit()
        or bool(_NOT_SECRET_SUFFIX.search(name) or _LIMIT_SUFFIX.search(name))
    )


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:  # not a URL after all
        return ""


def register_request(body: Any, headers: Mapping[str, str], path: str = "") -> None:
    """What a fake upstream received: its credentials and the prompt texts in the JSON body."""
    for name, value in headers.items():
        if name.lower() == "authorization" and value.lower().startswith("bearer "):
            register_secret("provider key", value[7:].strip())
        elif name.lower() in _KEY_HEADERS:
            register_secret("provider key", value)
    for name, value in parse_qsl(urlsplit(path).query):
        if name == "key":
            register_secret("provider key", value)
    for text in prompt_texts(body):
        for part in {text[:MAX_PROMPT_CHARS], text[-MAX_PROMPT_CHARS:]}:  # a long prompt by its two ends
            register_secret("prompt", part, MIN_PROMPT_CHARS)


def prompt_texts(body: Any) -> Iterator[str]:
    """Every string under a prompt-like field (`content`, `text`, `system`, ...) of a JSON document."""
    if isinstance(body, dict):
        for name, value in body.items():
            if name in _PROMPT_FIELDS and isinstance(value, str):
                yield value
            else:
                yield from prompt_texts(value)
    elif isinstance(body, list):
        for value in body:
            yield from prompt_texts(value)


def register_module_constants(modules: Iterable[ModuleType]) -> None:
    """Secret-named string constants of test modules: PASSWORD, METRICS_TOKEN, CANARY_PROMPT, ..."""
    for module in modules:
        for name, value in vars(module).items():
            if name.isupper() and _SECRET_NAME.search(name) and not _NOT_SECRET_SUFFIX.search(name):
                register_secret(f"{name} ({module.__name__})", value)


# --- scanning ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    path: str
    kind: str
    shown: str  # the first SHOWN_CHARS characters, then "..."
    count: int

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} {self.shown!r} x{self.count}"


@dataclass
class ScanReport:
    logs: int = 0
    missing: list[str] = field(default_factory=list)
    bytes_scanned: int = 0
    secrets: int = 0
    findings: list[Finding] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self) -> str:
        verdict = f"{len(self.findings)} LEAK(S)" if self.findings else "clean"
        return (
            f"leak scan: {self.logs} log files ({len(self.missing)} gone), {self.bytes_scanned:,} bytes, "
            f"{self.secrets} registered secrets + API-key, session-cookie and password-hash patterns "
            f"in {self.elapsed_s:.2f} s: {verdict}"
        )


def _shown(secret: bytes | str) -> str:
    text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
    return text[:SHOWN_CHARS] + "..."


def _needles(value: str) -> tuple[list[bytes], list[bytes]]:
    """The forms a leaked value takes in a log: whole (as is or JSON-escaped), and, if long, its tail."""

    def forms(text: str) -> list[bytes]:
        escaped = [json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]]
        return [form.encode("utf-8") for form in dict.fromkeys([text, *escaped])]

    return forms(value), forms(value[-TAIL_CHARS:]) if len(value) > TAIL_CHARS + 4 else []


def _count(data: bytes, needles: tuple[list[bytes], list[bytes]]) -> int:
    whole, tails = needles
    return sum(data.count(form) for form in whole) or sum(data.count(form) for form in tails)


def read_registry(directory: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(logs, secrets) registered in a session directory, each as (kind, value), deduplicated."""

    def load(name: str) -> list[tuple[str, str]]:
        path = directory / f"{name}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return list(dict.fromkeys(tuple(json.loads(line)) for line in lines if line.strip()))

    return load("logs"), load("secrets")


def scan(directory: Path) -> ScanReport:
    """Search every registered log for every registered secret and for key- and cookie-shaped text."""
    started = time.perf_counter()
    logs, secrets = read_registry(directory)
    report = ScanReport(secrets=len({value for _kind, value in secrets}))
    needles = [(kind, value, _needles(value)) for kind, value in secrets]
    for path, log_kind in dict((path, kind) for kind, path in logs).items():
        try:
            data = Path(path).read_bytes()
        except OSError:
            report.missing.append(path)
            continue
        report.logs += 1
        report.bytes_scanned += len(data)
        where = f"{path} ({log_kind})"
        for kind, value, forms in needles:
            if count := _count(data, forms):
                report.findings.append(Finding(where, kind, _shown(value), count))
        for pattern, kind in _PATTERNS:
            found = pattern.findall(data)
            for value in dict.fromkeys(found):
                report.findings.append(Finding(where, f"{kind} (pattern)", _shown(value), found.count(value)))
    report.elapsed_s = time.perf_counter() - started
    return report


# --- the pytest session ------------------------------------------------------------------------------------
def start_session() -> bool:
    """Make the session directory and name it in the environment (False when a parent process, the
    xdist controller or an outer pytest, already did: this process registers but does not scan), and
    capture this process's own polyroute log records."""
    owner = not active()
    if owner:
        os.environ[SESSION_DIR_ENV] = tempfile.mkdtemp(prefix="polyroute-leak-scan-")
    _capture_in_process_logs()
    return owner


_in_process: list[tuple[logging.Handler, int]] = []  # (the handler, the `polyroute` logger's old level)


def _capture_in_process_logs() -> None:
    """Apps and stores that tests run inside pytest (TestClient, the relay in unit tests) log here: every
    `polyroute.*` record at DEBUG, formatted and scrubbed as the gateway does, into a scanned file."""
    from polyroute.observability.log_format import JsonFormatter, RequestIdFilter
    from polyroute.observability.scrub import Scrubber

    directory = session_dir()
    assert directory is not None
    path = directory / f"in-process-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter(Scrubber.from_env(os.environ)))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("polyroute")
    _in_process.append((handler, logger.level))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    register_log(path, "in-process log")


def _stop_in_process_logs() -> None:
    logger = logging.getLogger("polyroute")
    while _in_process:
        handler, level = _in_process.pop()
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def finish_session(owner: bool) -> ScanReport | None:
    """Scan (only in the process that made the directory: not in an xdist worker) and clean up."""
    _stop_in_process_logs()
    directory = session_dir()
    if directory is None or not owner:
        return None
    try:
        return scan(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        os.environ.pop(SESSION_DIR_ENV, None)
        _seen.clear()
