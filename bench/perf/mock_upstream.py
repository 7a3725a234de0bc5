"""The nginx mock upstream and the fixed bodies every measurement uses.

Upstream bodies come from `bench/stack/fixtures.py` (the same bytes ADR 0001 measured): a ~690 B
chat completion and a 5.7 KB SSE stream of 20 content chunks, a usage chunk and `data: [DONE]`.
Client bodies ask for `mock/fast` (served from `<mock>/v1`) or `mock/stream` (from `<mock>/sse/v1`).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

from procs import Proc, Processes, free_port, wait_for_port

HERE = Path(__file__).resolve().parent
STACK_FIXTURES = HERE.parent / "stack" / "fixtures.py"

MODEL_JSON = "mock/fast"
MODEL_SSE = "mock/stream"
MODEL_SLOW = "mock/slow"


def stack_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_stack_fixtures", STACK_FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def client_body(model: str, *, stream: bool) -> bytes:
    request = dict(stack_fixtures().REQUEST)
    request.update(model=model, stream=stream)
    return json.dumps(request, separators=(",", ":")).encode()


def write_bodies(root: Path) -> dict[str, Path]:
    """Write upstream bodies under root/nginx/body and client bodies under root/client; return the paths."""
    fixtures = stack_fixtures()
    body_dir = root / "nginx" / "body"
    body_dir.mkdir(parents=True, exist_ok=True)
    (body_dir / "chat.json").write_bytes(fixtures.chat_body())
    (body_dir / "stream.sse").write_bytes(fixtures.sse_body())
    client_dir = root / "client"
    client_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": client_dir / "request.json",
        "sse": client_dir / "request_stream.json",
        "slow": client_dir / "request_slow.json",
    }
    paths["json"].write_bytes(client_body(MODEL_JSON, stream=False))
    paths["sse"].write_bytes(client_body(MODEL_SSE, stream=True))
    paths["slow"].write_bytes(client_body(MODEL_SLOW, stream=True))
    return paths


def start_nginx(procs: Processes, root: Path, cpus: str | None) -> tuple[Proc, int]:
    """Start nginx with its prefix under root/nginx (bodies must already be written)."""
    port = free_port()
    prefix = root / "nginx"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = (HERE / "nginx.conf").read_text().replace("@PORT@", str(port))
    if os.geteuid() == 0:  # nginx's workers would run as nobody, who may not reach a 0700 temp dir
        conf = "user root;\n" + conf
    (prefix / "nginx.conf").write_text(conf)
    proc = procs.start("nginx", ["nginx", "-e", "stderr", "-p", str(prefix), "-c", "nginx.conf"], cpus=cpus)
    wait_for_port(port, proc, 10)
    return proc, port
