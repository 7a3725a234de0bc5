"""LiteLLM's proxy as the reference, in its own venv, against the same nginx mock and the same client bodies.

The venv lives in `~/.cache/polyroute-bench/litellm-venv` (override: `POLYROUTE_BENCH_CACHE`) and is
reused while its marker file names the same pip spec (`LITELLM_SPEC`, pinned below). The proxy runs
with a master key (its key auth), no database (so no spend tracking: it does less work per request
than polyroute does), one worker, and an environment that keeps it on 127.0.0.1: every remote
fetch LiteLLM knows (cost map, blog posts, beta headers, ...) is switched to its bundled copy, the
URLs are pointed at a closed loopback port, and HTTP(S)_PROXY is a closed loopback port too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from gateway import base_env, http
from mock_upstream import MODEL_JSON, MODEL_SSE
from procs import Proc, Processes, free_port, wait_for_port

LITELLM_SPEC = os.environ.get("LITELLM_SPEC", "litellm[proxy]==1.106.2")
CACHE = Path(os.environ.get("POLYROUTE_BENCH_CACHE") or Path.home() / ".cache" / "polyroute-bench")
VENV = CACHE / "litellm-venv"
MARKER = VENV / ".polyroute-bench-installed"
MASTER_KEY = "sk-litellm-bench"
_CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens, so any stray fetch fails locally

CONFIG = """\
model_list:
  - model_name: {json_model}
    litellm_params:
      model: openai/fast
      api_base: http://127.0.0.1:{nginx}/v1
      api_key: sk-mock
  - model_name: {sse_model}
    litellm_params:
      model: openai/fast
      api_base: http://127.0.0.1:{nginx}/sse/v1
      api_key: sk-mock
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
"""


def ensure_venv(log: Path) -> str:
    """Create or reuse the venv; returns the installed version. Raises RuntimeError if pip fails."""
    if MARKER.exists() and MARKER.read_text().strip() == LITELLM_SPEC:
        return LITELLM_SPEC
    shutil.rmtree(VENV, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or "python3"
    with open(log, "ab") as out:
        subprocess.run([python, "-m", "venv", str(VENV)], check=True, stdout=out, stderr=out, timeout=120)
        pip = [str(VENV / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", LITELLM_SPEC]
        done = subprocess.run(pip, stdout=out, stderr=out, timeout=600)
    if done.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        raise RuntimeError(f"pip install {LITELLM_SPEC} failed (see {log.name})")
    MARKER.write_text(LITELLM_SPEC + "\n")
    return LITELLM_SPEC


def loopback_only_env() -> dict[str, str]:
    env = base_env({})
    for name in ("MODEL_COST_MAP", "BLOG_POSTS", "ANTHROPIC_BETA_HEADERS", "POLICY_TEMPLATES", "AUTOROUTER_PRESETS"):
        env[f"LITELLM_LOCAL_{name}"] = "True"
    for name in ("MODEL_COST_MAP_URL", "BLOG_POSTS_URL", "ANTHROPIC_BETA_HEADERS_URL", "AUTOROUTER_PRESETS_URL"):
        env[f"LITELLM_{name}"] = _CLOSED + "/blocked"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env[name] = _CLOSED
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False", DISABLE_ADMIN_UI="True", PYTHONDONTWRITEBYTECODE="1")
    return env


def start(procs: Processes, root: Path, nginx_port: int, cpus: str | None) -> tuple[Proc, int]:
    config = root / "litellm.yaml"
    config.write_text(
        CONFIG.format(json_model=MODEL_JSON, sse_model=MODEL_SSE, nginx=nginx_port, master_key=MASTER_KEY)
    )
    port = free_port()
    argv = [str(VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    workdir = root / "litellm-cwd"  # LiteLLM reads a .env from its working directory: give it an empty one
    workdir.mkdir(exist_ok=True)
    proc = procs.start("litellm", [*argv, "--num_workers", "1"], cpus=cpus, env=loopback_only_env(), cwd=workdir)
    wait_for_port(port, proc, 180)
    return proc, port


def check(port: int, json_body: bytes, sse_body: bytes) -> str:
    """One request of each kind must succeed, or the LiteLLM rows are dropped."""
    status, _, body = http("POST", port, "/v1/chat/completions", json_body, MASTER_KEY, timeout_s=60)
    if status != 200:
        return f"non-stream HTTP {status}: {body[:200]!r}"
    status, _, body = http("POST", port, "/v1/chat/completions", sse_body, MASTER_KEY, timeout_s=60)
    if status != 200 or b"data: [DONE]" not in body:
        return f"stream HTTP {status}: {body[-200:]!r}"
    return "ok"
