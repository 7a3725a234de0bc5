"""polyroute under test: its config, database, key and credits, its processes, and which features are on.

The gateway gets a minimal environment (no inherited provider keys, so no preset can point anywhere
but the mock), `POLYROUTE_LOCAL_MODELS=off`, and an operator config with three OpenAI-compatible
providers on 127.0.0.1: the nginx mock's JSON and SSE base URLs and the drip server. Credits are
granted through the CLI when the build has a ledger (`polyroute credits grant`); which features
were on is probed over HTTP and reported next to the figures.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mock_upstream import MODEL_JSON, MODEL_SLOW, MODEL_SSE
from procs import Proc, Processes, cmdline, free_port, group_members, rss_mb, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
POLYROUTE = ROOT / ".venv" / "bin" / "polyroute"
CREDITS_USD = "100000"
METRICS_TOKEN = "bench-metrics-token"  # noqa: S105 (a throwaway token for the bench gateway)
# Operator limits on every paid request (per key and per account), high enough never to refuse:
# the limiter's work is measured without 429s spoiling the load.
LIMITS_ENV = {"POLYROUTE_KEY_RPM": "100000000", "POLYROUTE_ACCOUNT_RPM": "100000000"}
FREE_MODEL = "mock/fast:free"

CONFIG = """\
[providers.mock]
type = "openai"
base_url = "http://127.0.0.1:{nginx}/v1"
api_key_env = "MOCK_API_KEY"

[providers.mocksse]
type = "openai"
base_url = "http://127.0.0.1:{nginx}/sse/v1"
api_key_env = "MOCK_API_KEY"

[providers.mockslow]
type = "openai"
base_url = "http://127.0.0.1:{drip}/v1"
api_key_env = "MOCK_API_KEY"
{models}
[[models]]
id = "{free}"
name = "Mock: Fast (free)"
context_length = 8192
[[models.endpoints]]
provider = "mock"
upstream_id = "fast"
prompt_price = "0"
completion_price = "0"
"""

MODEL = """
[[models]]
id = "{id}"
name = "{name}"
context_length = 8192
[[models.endpoints]]
provider = "{provider}"
upstream_id = "fast"
prompt_price = "0.50"
completion_price = "1.50"
"""


@dataclass
class Setup:
    env: dict[str, str]
    config: Path
    key: str
    credits: str  # how credits were granted, for the report
    notes: list[str] = field(default_factory=list)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    """A clean environment: PATH/HOME/locale/TMPDIR only, plus `extra`."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    return {name: os.environ[name] for name in keep if name in os.environ} | extra


def prepare(root: Path, nginx_port: int, drip_port: int, database_url: str | None, extra_env: dict[str, str]) -> Setup:
    models = "".join(
        MODEL.format(id=model_id, name=name, provider=provider)
        for model_id, name, provider in (
            (MODEL_JSON, "Mock: Fast", "mock"),
            (MODEL_SSE, "Mock: Stream", "mocksse"),
            (MODEL_SLOW, "Mock: Slow", "mockslow"),
        )
    )
    config = root / "polyroute.toml"
    config.write_text(CONFIG.format(nginx=nginx_port, drip=drip_port, models=models, free=FREE_MODEL))
    env = base_env(
        {
            "POLYROUTE_DATA_DIR": str(root / "data"),
            "POLYROUTE_LOCAL_MODELS": "off",
            "MOCK_API_KEY": "sk-mock",
            "PYTHONDONTWRITEBYTECODE": "1",
            "POLYROUTE_METRICS_TOKEN": METRICS_TOKEN,
            **LIMITS_ENV,
        }
    )
    if database_url:
        env["POLYROUTE_DATABASE_URL"] = database_url
    env.update(extra_env)
    created = _cli(env, "keys", "create", "--name", "bench", "--json")
    key_info = json.loads(created)
    setup = Setup(env=env, config=config, key=key_info["key"], credits="none")
    if _cli_has(env, "credits", "grant"):
        _cli(env, "credits", "grant", "--account", key_info["account"], "--amount", CREDITS_USD, "--note", "bench")
        setup.credits = f"${CREDITS_USD} via `polyroute credits grant`"
    else:
        setup.notes.append("`polyroute credits grant` not in this build: no credits granted")
    return setup


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(POLYROUTE), *args], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"polyroute {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return done.stdout


def _cli_has(env: dict[str, str], *command: str) -> bool:
    done = subprocess.run([str(POLYROUTE), *command, "--help"], env=env, capture_output=True, timeout=60)
    return done.returncode == 0


def launch(procs: Processes, setup: Setup, name: str, cpus: str | None, workers: int) -> tuple[Proc, int]:
    """Start `polyroute serve`; pair with `wait_ready` (so several can start at once)."""
    port = free_port()
    argv = [str(POLYROUTE), "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(setup.config)]
    proc = procs.start(name, [*argv, "--workers", str(workers)], cpus=cpus, env=setup.env)
    return proc, port


def wait_ready(proc: Proc, port: int) -> None:
    wait_for_port(port, proc, 60)
    _wait_ready(port, proc)


def _wait_ready(port: int, proc: Proc, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status, _, _ = http("GET", port, "/healthz")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or not proc.alive():
            raise RuntimeError(f"{proc.name} not healthy:\n{proc.log_tail()}")
        time.sleep(0.1)


def workers(proc: Proc) -> list[int]:
    """The pids that serve requests: the process itself with one worker, else its worker children."""
    members = [pid for pid in group_members(proc.pid) if "resource_tracker" not in cmdline(pid)]
    children = [pid for pid in members if pid != proc.pid]
    return children or [proc.pid]


def worker_rss_mb(proc: Proc) -> list[float]:
    return [rss_mb(pid) for pid in workers(proc)]


def http(
    method: str, port: int, path: str, body: bytes | None = None, key: str | None = None, timeout_s: float = 10
) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": "application/json"} if body is not None else {}
    if key:
        headers["authorization"] = f"Bearer {key}"
    url = f"http://127.0.0.1:{port}{path}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def probe_features(port: int, key: str, json_body: bytes) -> tuple[dict[str, str], str]:
    """Check what is on, over HTTP. Returns ({feature: finding}, generation id of a paid request)."""
    found: dict[str, str] = {}
    status, _, _ = http("POST", port, "/api/v1/chat/completions", json_body)
    found["key auth"] = "on (no key: 401)" if status == 401 else f"NOT ENFORCED (no key: HTTP {status})"
    status, headers, body = http("POST", port, "/api/v1/chat/completions", json_body, key)
    if status != 200:
        raise RuntimeError(f"gateway answered {status} to a paid request: {body[:300]!r}")
    found["rate limiting"] = _probe_limits(port, key, json_body)
    status, _, text = http("GET", port, "/metrics", key=METRICS_TOKEN)
    counted = b"polyroute_chat_requests_total{" in text
    found["metrics"] = (
        "on (GET /metrics counts the probe)" if status == 200 and counted else f"not detected (GET /metrics: {status})"
    )
    generation_id = headers.get("x-generation-id") or json.loads(body).get("id", "")
    return found, generation_id


def _probe_limits(port: int, key: str, json_body: bytes) -> str:
    """Rate limiting is on when the free tier refuses the 21st `:free` request in a minute with a 429
    and x-ratelimit-* headers; the operator's per-key and per-account rules (LIMITS_ENV) then run
    on every paid request too (same limiter, same store)."""
    body = json.loads(json_body)
    body["model"] = FREE_MODEL
    free_body = json.dumps(body).encode()
    for _ in range(40):
        status, headers, _ = http("POST", port, "/api/v1/chat/completions", free_body, key)
        if status == 429:
            names = sorted(name for name in headers if name.startswith("x-ratelimit"))
            rules = " and ".join(f"{name}={value}" for name, value in LIMITS_ENV.items())
            return f"on ({rules} on every request; the free tier answered 429 with {', '.join(names)})"
        if status != 200:
            return f"not detected (a `:free` request got HTTP {status})"
    return "not detected (40 `:free` requests in a row were all served)"


def confirm_records(port: int, key: str, generation_id: str, found: dict[str, str]) -> None:
    """After the load: is the probe request's generation record readable, and was usage settled?"""
    status = 0
    for _ in range(30):
        status, _, _ = http("GET", port, f"/api/v1/generation?id={generation_id}", key=key)
        if status == 200:
            break
        time.sleep(0.1)
    found["generation records"] = "on (GET /generation: 200)" if status == 200 else f"not found (HTTP {status})"
    status, _, body = http("GET", port, "/api/v1/credits", key=key)
    usage = json.loads(body).get("data", {}).get("total_usage") if status == 200 else None
    if usage:
        found["ledger reserve+settle"] = f"on (settled usage ${usage:,.4f})"
    else:
        found["ledger reserve+settle"] = f"not detected (GET /credits: {status}, usage {usage})"


def version_note() -> str:
    """The commit measured, marked when the working tree has changes (others may be editing src/)."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", "src")
    return head + (" + uncommitted changes in src/" if dirty else "")


def export_src(rev: str, dest: Path) -> tuple[str, Path]:
    """`git archive REV src/` into dest; returns (short hash, the src dir to put on the gateway's PYTHONPATH).

    Measures committed code exactly, whatever is being edited in the working tree; the dependencies
    are still the project venv's."""
    short = _git("rev-parse", "--short", f"{rev}^{{commit}}")
    if not short:
        raise RuntimeError(f"not a commit: {rev}")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", short, "src"], capture_output=True, timeout=60)
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {rev} src failed: {archive.stderr.decode(errors='replace')[-300:]}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return short, dest / "src"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


_SAFE = re.compile(r"^[A-Z][A-Z0-9_]*=")


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    bad = [pair for pair in pairs if not _SAFE.match(pair)]
    if bad:
        raise SystemExit(f"--gateway-env expects NAME=VALUE, got {bad}")
    return dict(pair.split("=", 1) for pair in pairs)
