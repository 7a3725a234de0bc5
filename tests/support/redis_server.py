"""Redis for tests: the shared server (fail, never skip, when it is missing), a unique key prefix per
test run, and throwaway `redis-server` processes that a test may stop and start (degraded modes).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Self

import pytest
import redis

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


def shared_redis_url() -> str:
    """The shared test Redis; the test fails (never skips) when it does not answer."""
    url = os.environ.get("POLYROUTE_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except (redis.RedisError, OSError) as exc:
        pytest.fail(f"Redis is unreachable at {url} ({exc}); start it or set POLYROUTE_TEST_REDIS_URL", pytrace=False)
    return url


def unique_prefix() -> str:
    return f"polyroute-test:{secrets.token_hex(6)}:"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class ThrowawayRedis:
    """A private `redis-server` on a fixed free port, which the test may stop and start again."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.fail("redis-server is not installed; the degraded-mode tests need it", pytrace=False)
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir)]
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return self
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"throwaway redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
