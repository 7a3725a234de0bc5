"""Run the real gateway as a child process on a loopback port, for end-to-end tests.

`GatewayProcess` owns one `python -m polyroute serve` process with a clean environment, a log file,
and its CLI (`keys create`, ...) pointed at the same database. `acme_config_toml` writes an operator
config whose models are backed by the fake OpenAI upstream (tests/fakes/openai_upstream.py).

Under pytest (tests/support/leak_scan.py) every gateway logs at DEBUG unless its `env` sets
`POLYROUTE_LOG_LEVEL` ($POLYROUTE_TEST_GATEWAY_LOG_LEVEL changes the default), and its log, its CLI's
stderr, its secret-named environment values and the keys `create_key` made join the session's leak scan.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from tests.support import leak_scan

REPO_ROOT = Path(__file__).resolve().parents[2]
# Parent variables the child may inherit; anything else (provider keys, POLYROUTE_*, proxies) is dropped.
_INHERITED = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP"}
_INHERITED |= {"SYSTEMROOT", "VIRTUAL_ENV"}
_INHERITED_PREFIXES = ("LC_", "COVERAGE_", "SSL_CERT_")
_HEALTH_PATHS = ("/healthz", "/api/v1/healthz")
DEFAULT_LOG_LEVEL_ENV = "POLYROUTE_TEST_GATEWAY_LOG_LEVEL"  # the gateways' level during a leak-scanned run


class GatewayStartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's harmless variables, our source tree on PYTHONPATH, and `extra` on top."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}
    paths = [str(REPO_ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra or {})
    return env


def run_cli(
    args: Iterable[str],
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    *,
    timeout_s: float = 60.0,
    input: str | None = None,
    stderr_log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m polyroute <args>`. During a leak-scanned run its stderr is also appended to
    `stderr_log` (by default a file in the scan's session directory), which joins the scan."""
    argv = list(args)
    result = subprocess.run(
        [sys.executable, "-m", "polyroute", *argv],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    scan_dir = leak_scan.session_dir()
    if scan_dir is not None:
        log = stderr_log or scan_dir / f"cli-stderr-{os.getpid()}.log"
        leak_scan.register_log(log, "cli stderr")
        with log.open("a", encoding="utf-8") as file:  # the subcommand only: an argument may be a secret
            file.write(f"=== {time.strftime('%H:%M:%S')} polyroute {' '.join(argv[:2])} (exit {result.returncode})\n")
            file.write(result.stderr)
    return result


class GatewayProcess:
    """Context manager: starts the gateway, waits for `/healthz`, stops it on exit."""

    def __init__(
        self,
        workdir: Path,
        config_toml: str,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        *,
        port: int | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "polyroute.toml"
        self.config_path.write_text(config_toml)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path = self.workdir / "gateway.log"
        self.cli_log_path = self.workdir / "cli-stderr.log"  # every `cli(...)` run's stderr, for the leak scan
        self.startup_timeout_s = startup_timeout_s
        self.port = port or 0
        self._fixed_port = port is not None
        settings = {"POLYROUTE_DATA_DIR": str(self.data_dir), "POLYROUTE_CONFIG": str(self.config_path)}
        if database_url:
            settings["POLYROUTE_DATABASE_URL"] = database_url
        if leak_scan.active():  # the whole suite's traffic at DEBUG, scanned for secrets at the end
            settings["POLYROUTE_LOG_LEVEL"] = os.environ.get(DEFAULT_LOG_LEVEL_ENV, "DEBUG")
        self.env = clean_env({**settings, **(env or {})})
        leak_scan.register_env(self.env)
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []  # more `serve` flags, e.g. ["--workers", "2"]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/v1"

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Self:
        for _attempt in range(3):
            if not self._fixed_port:
                self.port = free_port()
            self._launch()
            try:
                self._wait_healthy()
                return self
            except GatewayStartError:
                # Another process may have grabbed the port between our probe and the bind: retry.
                if self._fixed_port or "address already in use" not in self.log_tail().lower():
                    raise
            except BaseException:
                self.kill()  # never leave a half-started child behind (Ctrl-C, pytest timeout)
                raise
        raise GatewayStartError(f"no free port after 3 attempts\n{self.log_tail()}")

    def _launch(self) -> None:
        command = [sys.executable, "-m", "polyroute", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--config", str(self.config_path), *self.extra_args]
        leak_scan.register_log(self.log_path)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                code = self.process.returncode
                raise GatewayStartError(f"gateway exited with {code} while starting; log:\n{self.log_tail()}")
            if any(self._answers_200(path) for path in _HEALTH_PATHS):
                return
            time.sleep(0.05)
        self.kill()
        raise GatewayStartError(
            f"gateway not healthy after {self.startup_timeout_s}s on {self.root_url}; log:\n{self.log_tail()}"
        )

    def _answers_200(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.root_url + path, timeout=1) as response:  # noqa: S310 (loopback)
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush or settle anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def restart(self) -> Self:
        """Stop and start again on the same port, so `base_url` and existing clients stay valid."""
        self.stop()
        self._fixed_port = True
        return self.start()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- CLI and diagnostics ---------------------------------------------------------------------
    def cli(self, *args: str, timeout_s: float = 60.0, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `python -m polyroute <args>` against the same database and config (`input` on its stdin)."""
        return run_cli(args, self.env, self.workdir, timeout_s=timeout_s, input=input, stderr_log=self.cli_log_path)

    def create_key(
        self,
        name: str = "t",
        account: str = "user@example.com",
        management: bool = False,
        credits: str | None = "100",
        extra_args: Iterable[str] = (),
    ) -> dict[str, Any]:
        """`keys create --json`: returns its JSON (at least `key` and `hash`).

        Grants `credits` USD to the account first (paid models need a balance); None grants nothing."""
        args = ["keys", "create", "--name", name, "--account", account, "--json", *extra_args]
        if credits is not None:
            args += ["--credits", credits]
        result = self.cli(*args, *(["--management"] if management else []))
        if result.returncode != 0:
            raise RuntimeError(f"keys create failed ({result.returncode}):\n{result.stderr}\n{result.stdout}")
        start = result.stdout.find("{")  # tolerate a log line before the JSON object
        try:
            document, _end = json.JSONDecoder().raw_decode(result.stdout[start:])
        except ValueError:
            raise RuntimeError(f"keys create printed no JSON:\n{result.stdout}") from None
        leak_scan.register_secret("API key (create_key)", document.get("key"))
        return dict(document)

    def child_pids(self) -> list[int]:
        """Processes whose parent is the server process (uvicorn's workers with `--workers N`)."""
        assert self.process is not None
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return children

    def stream_then_leave(self, api_key: str, body: dict[str, Any], until: bytes) -> tuple[bytes, float]:
        """POST a streaming chat over a raw socket, read until `until` arrives, then drop the connection
        (a client that leaves mid-stream). Returns what was received and time.monotonic() at the drop."""
        payload = json.dumps(body).encode()
        request = (
            f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            received = b""
            while until not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    raise AssertionError(f"stream ended before {until!r}: {received[-300:]!r}")
                received += chunk
        return received, time.monotonic()

    def generations(self) -> list[dict[str, Any]]:
        """Every generation record in the gateway's database, oldest first (read-only, for assertions)."""
        from polyroute.settings import normalize_database_url

        url = self.env.get("POLYROUTE_DATABASE_URL") or f"sqlite+aiosqlite:///{self.data_dir / 'polyroute.db'}"
        return asyncio.run(_read_generations(normalize_database_url(url)))

    @property
    def database_url(self) -> str:
        from polyroute.settings import normalize_database_url

        url = self.env.get("POLYROUTE_DATABASE_URL") or f"sqlite+aiosqlite:///{self.data_dir / 'polyroute.db'}"
        return normalize_database_url(url)

    def sql(self, statement: str, **params: Any) -> list[dict[str, Any]]:
        """Run one SQL statement against the gateway's database (for assertions); returns the rows."""
        return asyncio.run(_run_sql(self.database_url, statement, params))

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def _read_generations(url: str) -> list[dict[str, Any]]:
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from polyroute.db.tables import generations

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(generations).order_by(generations.c.created_at))
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def _run_sql(url: str, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return [dict(row._mapping) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


# --- operator config wired to the fake upstream -----------------------------------------------------
SCENARIO_MODELS = (
    "mock-model",
    "tool-model",
    "error-400",
    "error-401",
    "error-429",
    "error-500",
    "error-503",
    "garbage",
    "empty",
    "slow-500",  # slower than usual, within the first-byte timeout
    "slow-2500",  # long enough for keep-alive comments (every 1 s in e2e)
    "slow-8000",  # beyond the e2e first-byte timeout (5 s)
    "stall-after-0",  # silent before any content: the gateway may still fail over
    "stall-after-2",  # silent after content: must end with an error event, never switch
    "cut-after-0",
    "cut-after-2",
    "long-100",
    "long-2000",
)
UPSTREAM_KEY_ENV = "ACME_API_KEY"


def _model_toml(model_id: str, endpoints: Iterable[tuple[str, str, str, str]]) -> str:
    name = model_id.split("/", 1)[1]
    lines = ["[[models]]", f'id = "{model_id}"', f'name = "Acme: {name}"', "context_length = 8192"]
    for provider, upstream_id, prompt_price, completion_price in endpoints:
        lines += [
            "[[models.endpoints]]",
            f'provider = "{provider}"',
            f'upstream_id = "{upstream_id}"',
            f'prompt_price = "{prompt_price}"',
            f'completion_price = "{completion_price}"',
        ]
    return "\n".join(lines) + "\n"


def acme_config_toml(upstream_base_url: str, extra_scenarios: Iterable[str] = (), extra_toml: str = "") -> str:
    """Config for providers `acme` and `acme-bad` (both the fake) and one `acme/<scenario>` model each.

    `acme/failover` has two endpoints: `acme-bad` serving `error-503` (cheaper, so tried first), then
    `acme` serving `mock-model`. Prices are USD per million tokens: 0.50 prompt, 1.50 completion.
    """
    parts = []
    for slug in ("acme", "acme-bad"):
        parts.append(
            f'[providers.{slug}]\ntype = "openai"\nbase_url = "{upstream_base_url}"\n'
            f'api_key_env = "{UPSTREAM_KEY_ENV}"\n'
        )
    for scenario in dict.fromkeys([*SCENARIO_MODELS, *extra_scenarios]):
        parts.append(_model_toml(f"acme/{scenario}", [("acme", scenario, "0.50", "1.50")]))
    failover = [("acme-bad", "error-503", "0.10", "0.30"), ("acme", "mock-model", "0.50", "1.50")]
    parts.append(_model_toml("acme/failover", failover))
    return "\n".join([*parts, extra_toml])
